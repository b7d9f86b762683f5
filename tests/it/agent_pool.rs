//! Rule: a user always reaches the same agent of the pool, and a load the pool cannot carry gets an
//! error naming the agents it needs.
//!
//! A pool of agent identities (`[[agents]]`) on a sandbox hosting several
//! agents: users are bound to agents by rendezvous hashing, the pool's
//! Snowflake capacity is the sum of its agents', and the capacity error says
//! how many agents the load would need.

use immuta_mcp::agents::agent_for;
use immuta_mcp::app;
use immuta_mcp::config::Config;
use immuta_mcp::query::{CallContext, GovernedQuery, QueryError, QueryRequest};
use immuta_mcp::sandbox::fixture::{GrantSpec, UserSpec};
use immuta_mcp::sandbox::{Counter, Fixture, Sandbox, SandboxOptions, SandboxSettings};
use std::sync::Arc;
use std::time::Duration;

const ORDERS_SQL: &str = "SELECT ORDER_ID FROM SALES.PUBLIC.ORDERS ORDER BY ORDER_ID";
const AGENTS: [&str; 3] = ["default", "agent-2", "agent-3"];
const PAT_LIMIT: usize = 2;

fn request() -> QueryRequest {
    QueryRequest {
        max_rows: 100,
        ..crate::support::query_request(ORDERS_SQL)
    }
}

fn user(i: usize) -> String {
    format!("u{i}@example.com")
}

/// 40 users who may read ORDERS; statements take a while, so PATs stay in use.
async fn sandbox(agents: usize) -> Sandbox {
    immuta_mcp::http_client::install_crypto_provider();
    let mut fixture = Fixture::demo();
    for i in 0..40 {
        fixture.users.push(UserSpec {
            id: user(i),
            grants: vec![GrantSpec {
                table: "SALES.PUBLIC.ORDERS".into(),
                row_filter: None,
                masked_columns: Vec::new(),
            }],
        });
    }
    let settings = SandboxSettings {
        agents,
        pat_limit_per_user: PAT_LIMIT,
        snowflake_statement_delay: Duration::from_millis(1500),
        ..SandboxSettings::default()
    };
    crate::support::bounded(
        "sandbox",
        Sandbox::start(SandboxOptions { fixture, settings }),
    )
    .await
    .expect("sandbox starts")
}

fn snowflake_path(mut cfg: Config) -> Arc<dyn GovernedQuery> {
    cfg.snowflake.as_mut().unwrap().verify_identity = false;
    app::build_platforms(&cfg)
        .expect("platforms")
        .snowflake_query()
        .expect("snowflake configured")
}

/// `PAT_LIMIT` users for each agent of the pool, by the pool's binding.
fn users_filling_every_agent() -> Vec<String> {
    let mut chosen = Vec::new();
    for agent in 0..AGENTS.len() {
        chosen.extend(
            (0..40)
                .map(user)
                .filter(|u| agent_for(AGENTS, u) == Some(agent))
                .take(PAT_LIMIT),
        );
    }
    assert_eq!(
        chosen.len(),
        AGENTS.len() * PAT_LIMIT,
        "40 users cover every agent"
    );
    chosen
}

/// Run every user's query at once; (user, outcome, vended role).
async fn run_all(
    path: &Arc<dyn GovernedQuery>,
    users: &[String],
) -> Vec<(String, Result<usize, QueryError>, Option<String>)> {
    let tasks: Vec<_> = users
        .iter()
        .map(|u| {
            let (path, u) = (path.clone(), u.clone());
            tokio::spawn(async move {
                let ctx = CallContext::new(u.clone(), "query_snowflake");
                let out = crate::support::bounded("query", path.query(&ctx, &request())).await;
                (u, out.map(|rs| rs.row_count), ctx.facts().vended_role)
            })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_serves_as_many_concurrent_users_as_its_agents_hold_pats_together() {
    let sandbox = sandbox(3).await;
    let cfg = sandbox.pool_config();
    assert_eq!(cfg.agents.len(), 2, "two agents besides the default one");
    let path = snowflake_path(cfg);
    let users = users_filling_every_agent();
    let outcomes = run_all(&path, &users).await;
    for (u, out, _) in &outcomes {
        assert!(out.is_ok(), "{u}: {out:?}");
    }
    assert_eq!(sandbox.state.counter(Counter::PatsCreated), 6);
    // Each statement ran for the user who asked, as the role vended to them.
    for s in sandbox.state.executed() {
        let (_, _, role) = outcomes
            .iter()
            .find(|(u, _, _)| *u == s.user)
            .expect("a caller");
        assert_eq!(
            role.as_deref(),
            Some(s.role.as_str()),
            "{} ran as its own role",
            s.user
        );
    }
    // A user's second call goes to the same agent and reuses the PAT.
    let again = run_all(&path, &users[..3]).await;
    assert!(again.iter().all(|(_, out, _)| out.is_ok()));
    assert_eq!(
        sandbox.state.counter(Counter::PatsCreated),
        6,
        "PATs reused"
    );
    sandbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_agent_refuses_the_same_load_and_says_how_many_agents_it_needs() {
    let sandbox = sandbox(1).await;
    let cfg = sandbox.pool_config();
    assert!(cfg.agents.is_empty());
    let path = snowflake_path(cfg);
    let outcomes = run_all(&path, &users_filling_every_agent()).await;
    let refused: Vec<String> = outcomes
        .iter()
        .filter_map(|(_, out, _)| out.as_ref().err().map(|e| e.to_string()))
        .collect();
    assert_eq!(
        refused.len(),
        6 - PAT_LIMIT,
        "only {PAT_LIMIT} users fit one agent: {refused:?}"
    );
    let needed: Vec<usize> = refused
        .iter()
        .map(|e| {
            assert!(e.contains("concurrent Snowflake user capacity"), "{e}");
            assert!(e.contains("1 agent(s)"), "{e}");
            let tail = e
                .split("would need about ")
                .nth(1)
                .expect("names the agents needed");
            tail.split(' ').next().unwrap().parse().expect("a number")
        })
        .collect();
    assert!(needed.iter().all(|n| *n >= 2), "{needed:?}");
    assert!(
        needed.iter().any(|n| *n >= 3),
        "4 users refused besides the 2 served need at least 3 agents: {needed:?}"
    );
    sandbox.shutdown().await;
}

#[tokio::test]
async fn the_sandbox_refuses_an_agents_key_for_another_agent_user() {
    // Agent 2's key signs a JWT for agent 2's user only: a pool entry that
    // pairs agent 2's user with the default agent's key is refused by `check`.
    let sandbox = sandbox(2).await;
    let mut cfg = sandbox.pool_config();
    let default_key = cfg.snowflake.as_ref().unwrap().private_key.clone();
    cfg.agents[0].snowflake_private_key = Some(default_key);
    let lines = app::check(&cfg).await;
    let snowflake: Vec<_> = lines
        .iter()
        .filter(|l| l.component == "snowflake")
        .collect();
    assert_eq!(snowflake.len(), 2, "{lines:?}");
    assert!(snowflake[0].ok, "{}", snowflake[0].message);
    assert!(
        snowflake[0].message.starts_with("agent default: "),
        "{}",
        snowflake[0].message
    );
    assert!(!snowflake[1].ok, "{}", snowflake[1].message);
    assert!(
        snowflake[1].message.starts_with("agent agent-2: "),
        "{}",
        snowflake[1].message
    );
    sandbox.shutdown().await;
}

#[tokio::test]
async fn check_finds_every_prerequisite_met_for_every_agent_of_a_correct_pool() {
    // Each agent user has its own registered key: the doctor's `DESC USER` for agent 2
    // must show agent 2's fingerprint, not the default agent's.
    let sandbox = sandbox(2).await;
    let cfg = sandbox.pool_config();
    let lines = app::check(&cfg).await;
    let failing: Vec<_> = lines.iter().filter(|l| !l.ok).collect();
    assert!(failing.is_empty(), "{failing:?}");
    let key_lines = lines
        .iter()
        .filter(|l| l.component == "snowflake.key")
        .count();
    assert_eq!(key_lines, 2, "one key line per agent: {lines:?}");
    sandbox.shutdown().await;
}
