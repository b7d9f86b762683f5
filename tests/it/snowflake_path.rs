//! Rule: every Snowflake statement runs under the caller's own vended role and PAT, never another
//! identity.
//!
//! The production Snowflake path (`SnowflakeGoverned`) against the sandbox:
//! vended roles and masks per user, PAT caching and replacement, single-flight,
//! retries, polling, cancellation, partitions and the PAT limit — and that no
//! statement ever runs under another identity.

use crate::support::query_request as request;
use crate::support::{Threads, with_logs};
use immuta_mcp::config::Config;
use immuta_mcp::immuta::client::ImmutaClient;
use immuta_mcp::query::{CallContext, GovernedQuery, ProgressSink, QueryError, QueryRequest};
use immuta_mcp::result::{ColumnType, Platform, ResultSet};
use immuta_mcp::retry::RetryPolicy;
use immuta_mcp::sandbox::fixture::{GrantSpec, UserSpec};
use immuta_mcp::sandbox::{
    Counter, Endpoint, Fault, Fixture, Sandbox, SandboxOptions, SandboxSettings,
};
use immuta_mcp::snowflake::SnowflakeGoverned;
use serde_json::json;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing::Level;

const ORDERS_SQL: &str =
    "SELECT ORDER_ID, REGION, EMAIL, AMOUNT FROM SALES.PUBLIC.ORDERS ORDER BY ORDER_ID";
/// How each PAT statement starts, for [`Env::token_statements`].
const ADD_PAT: &str = "ALTER USER ADD PROGRAMMATIC ACCESS TOKEN";
const REMOVE_PAT: &str = "ALTER USER REMOVE PROGRAMMATIC ACCESS TOKEN";
const SHOW_PATS: &str = "SHOW USER PROGRAMMATIC ACCESS TOKENS";

fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
        observer: None,
    }
}

struct Env {
    sandbox: Sandbox,
    sf: Arc<SnowflakeGoverned>,
    /// (user, vended role) of every call made through `run`.
    identities: Mutex<Vec<(String, String)>>,
}

async fn env() -> Env {
    env_with(SandboxSettings::default(), |_| {}).await
}

/// The agent user may hold a single PAT.
async fn one_pat_slot_env() -> Env {
    env_with(
        SandboxSettings {
            pat_limit_per_user: 1,
            ..SandboxSettings::default()
        },
        |_| {},
    )
    .await
}

async fn env_with(settings: SandboxSettings, tweak: impl FnOnce(&mut Config)) -> Env {
    env_with_fixture(Fixture::demo(), settings, tweak, |sf| sf).await
}

async fn env_with_fixture(
    fixture: Fixture,
    settings: SandboxSettings,
    tweak: impl FnOnce(&mut Config),
    tweak_path: impl FnOnce(SnowflakeGoverned) -> SnowflakeGoverned,
) -> Env {
    let sandbox = Sandbox::start(SandboxOptions { fixture, settings })
        .await
        .expect("sandbox starts");
    let mut cfg = sandbox.client_config();
    // The identity probe is off here: these tests count the requests and
    // statements of the other steps; it has its own tests (`identity_proof`).
    cfg.snowflake.as_mut().unwrap().verify_identity = false;
    tweak(&mut cfg);
    let http = immuta_mcp::http_client::build_for(&cfg).expect("http client");
    let immuta = ImmutaClient::new(cfg.immuta.as_ref().unwrap(), http.clone(), fast_retry())
        .expect("immuta client");
    let sf = SnowflakeGoverned::new(cfg.snowflake.as_ref().unwrap(), immuta, &cfg.limits, http)
        .expect("snowflake path")
        .with_retry(fast_retry())
        .with_polling(Duration::from_millis(10), Duration::from_millis(40));
    let sf = tweak_path(sf);
    Env {
        sandbox,
        sf: Arc::new(sf),
        identities: Mutex::new(Vec::new()),
    }
}

impl Env {
    async fn run_ctx(
        &self,
        ctx: &CallContext,
        req: &QueryRequest,
    ) -> Result<ResultSet, QueryError> {
        let result = self.sf.query(ctx, req).await;
        if let Some(role) = ctx.facts().vended_role {
            self.identities
                .lock()
                .unwrap()
                .push((ctx.user.clone(), role));
        }
        result
    }

    async fn run(&self, user: &str, sql: &str) -> Result<ResultSet, QueryError> {
        self.run_ctx(&CallContext::new(user, "query_snowflake"), &request(sql))
            .await
    }

    fn count(&self, c: Counter) -> u64 {
        self.sandbox.state.counter(c)
    }

    fn requests(&self, ep: Endpoint) -> u64 {
        self.sandbox.state.count(ep)
    }

    /// Statements the emulator was sent under the agent's JWT that contain
    /// `kind` ([`ADD_PAT`], [`REMOVE_PAT`], [`SHOW_PATS`]), resends included.
    fn token_statements(&self, kind: &str) -> usize {
        self.sandbox
            .state
            .seen(Endpoint::SnowflakeSubmit)
            .iter()
            .filter(|r| {
                r.json()["statement"]
                    .as_str()
                    .is_some_and(|s| s.starts_with(kind))
            })
            .count()
    }

    fn executed_count(&self, sql: &str) -> usize {
        self.sandbox
            .state
            .executed()
            .iter()
            .filter(|s| s.sql == sql)
            .count()
    }

    /// Every statement the emulator ran, ran as a role vended to the user it
    /// was run for, and that role was the one the caller's call reported.
    fn assert_no_foreign_identity(&self) {
        let known: HashSet<(String, String)> =
            self.identities.lock().unwrap().iter().cloned().collect();
        let executed = self.sandbox.state.executed();
        assert!(!executed.is_empty(), "some statement ran");
        for s in executed {
            assert_eq!(s.platform, Platform::Snowflake);
            assert!(
                known.contains(&(s.user.clone(), s.role.clone())),
                "statement {:?} ran as role {} for {}, which no call of that user was vended",
                s.sql,
                s.role,
                s.user
            );
            assert!(s.role.starts_with("IMMUTA_OBO_"), "ran as {}", s.role);
        }
    }
}

fn column<'a>(rs: &'a ResultSet, name: &str) -> Vec<&'a serde_json::Value> {
    let i = rs
        .columns
        .iter()
        .position(|c| c.name == name)
        .unwrap_or_else(|| panic!("column {name}"));
    rs.rows.iter().map(|r| &r[i]).collect()
}

#[tokio::test]
async fn each_user_gets_their_own_rows_and_masks_through_the_vended_role() {
    let env = env().await;
    let alice_ctx = CallContext::new("alice@example.com", "query_snowflake");
    let alice = env.run_ctx(&alice_ctx, &request(ORDERS_SQL)).await.unwrap();
    let bob_ctx = CallContext::new("bob@example.com", "query_snowflake");
    let bob = env.run_ctx(&bob_ctx, &request(ORDERS_SQL)).await.unwrap();

    assert_eq!(alice.row_count, 4, "alice sees only EU orders");
    assert!(column(&alice, "REGION").iter().all(|r| **r == json!("EU")));
    assert!(column(&alice, "EMAIL").iter().all(|e| **e == json!("***")));
    assert_eq!(bob.row_count, 8, "bob sees every order");
    assert_eq!(column(&bob, "EMAIL")[0], &json!("anna.schmidt@example.de"));
    assert_eq!(column(&bob, "ORDER_ID")[0], &json!(1001));
    assert_eq!(column(&bob, "AMOUNT")[0], &json!("120.50"));
    let amount = bob.columns.iter().find(|c| c.name == "AMOUNT").unwrap();
    assert_eq!(amount.column_type, ColumnType::Decimal);
    assert_eq!(amount.native_type, "NUMBER(10,2)");
    assert!(!bob.truncated);
    assert_eq!(bob.total_row_count, Some(8));

    let (fa, fb) = (alice_ctx.facts(), bob_ctx.facts());
    let (ra, rb) = (fa.vended_role.unwrap(), fb.vended_role.unwrap());
    assert_ne!(ra, rb, "each user has their own vended role");
    assert_eq!(
        fa.statement_id.as_deref(),
        Some(alice.statement_id.as_str())
    );
    assert!(fa.upstream_requests >= 3, "vend + PAT + statement counted");
    let executed = env.sandbox.state.executed();
    assert_eq!(executed.len(), 2);
    assert_eq!(
        (executed[0].user.as_str(), executed[0].role.as_str()),
        ("alice@example.com", ra.as_str())
    );
    assert_eq!(
        (executed[1].user.as_str(), executed[1].role.as_str()),
        ("bob@example.com", rb.as_str())
    );
    env.assert_no_foreign_identity();
}

#[tokio::test]
async fn unauthorized_table_is_a_clear_statement_error() {
    let env = env().await;
    let err = env
        .run("carol@example.com", "SELECT * FROM SALES.PUBLIC.ORDERS")
        .await
        .unwrap_err();
    match &err {
        QueryError::Statement { code, message, .. } => {
            assert_eq!(code.as_deref(), Some("002003"));
            assert!(
                message.contains("does not exist or not authorized"),
                "{message}"
            );
        }
        other => panic!("expected a statement error, got {other:?}"),
    }
    assert_eq!(
        env.count(Counter::VendsCreated),
        1,
        "no re-vend for a SQL error"
    );
}

#[tokio::test]
async fn second_query_reuses_the_cached_pat() {
    let env = env().await;
    env.run("alice@example.com", ORDERS_SQL).await.unwrap();
    env.run("alice@example.com", ORDERS_SQL).await.unwrap();
    assert_eq!(env.count(Counter::VendsCreated), 1);
    assert_eq!(env.count(Counter::PatsCreated), 1);
    assert_eq!(env.requests(Endpoint::ImmutaVend), 1);
    // ALTER USER ADD PAT once, then the two queries.
    assert_eq!(env.requests(Endpoint::SnowflakeSubmit), 3);
    env.assert_no_foreign_identity();
}

#[tokio::test]
async fn expired_credentials_mint_a_fresh_vend_and_pat_and_remove_the_stale_one() {
    let env = env().await;
    let first = env.run("alice@example.com", ORDERS_SQL).await.unwrap();
    env.sandbox.state.expire_credentials();
    let second = env.run("alice@example.com", ORDERS_SQL).await.unwrap();
    assert_eq!(first.rows, second.rows);
    assert_eq!(env.count(Counter::VendsCreated), 2);
    assert_eq!(env.count(Counter::PatsCreated), 2);
    assert_eq!(env.count(Counter::PatsRemoved), 1, "stale PAT removed");
    let roles: HashSet<String> = env
        .sandbox
        .state
        .executed()
        .into_iter()
        .map(|s| s.role)
        .collect();
    assert_eq!(roles.len(), 2, "the second query ran as the new role");
    env.assert_no_foreign_identity();
}

/// Expires every sandbox credential the first time progress is reported
/// (the statement has been accepted and is running).
struct ExpireOnFirstProgress(
    Arc<immuta_mcp::sandbox::state::SandboxState>,
    std::sync::Once,
);

impl ProgressSink for ExpireOnFirstProgress {
    fn progress(&self, _step: u32, _message: &str) {
        self.1.call_once(|| self.0.expire_credentials());
    }
}

#[tokio::test]
async fn pat_expiring_mid_statement_is_reported_not_resubmitted_and_the_next_call_remints() {
    let env = env().await;
    env.run("alice@example.com", "SELECT 1").await.unwrap();
    env.sandbox
        .faults()
        .add(Endpoint::SnowflakeSubmit, Fault::Pending { polls: 3 });
    let mut ctx = CallContext::new("alice@example.com", "query_snowflake");
    ctx.progress = Some(Arc::new(ExpireOnFirstProgress(
        env.sandbox.state.clone(),
        std::sync::Once::new(),
    )));
    let err = env.run_ctx(&ctx, &request(ORDERS_SQL)).await.unwrap_err();
    let handle = ctx
        .facts()
        .statement_id
        .expect("the statement was accepted");
    match &err {
        QueryError::Credential(message) => {
            assert!(message.contains(&handle), "{message}");
            assert!(message.contains("Snowflake rejected the PAT"), "{message}");
            assert!(message.contains("not submitted again"), "{message}");
        }
        other => panic!("expected a credential error, got {other:?}"),
    }
    assert_eq!(
        env.executed_count(ORDERS_SQL),
        1,
        "the accepted statement is not run a second time"
    );
    assert_eq!(
        env.count(Counter::VendsCreated),
        1,
        "no re-vend in the call"
    );
    assert_eq!(env.count(Counter::PatsCreated), 1, "no re-mint in the call");
    assert_eq!(
        env.count(Counter::PatsRemoved),
        1,
        "the dead PAT is removed"
    );

    // The credential was discarded: the next call vends and mints afresh.
    let rs = env.run("alice@example.com", ORDERS_SQL).await.unwrap();
    assert!(rs.row_count > 0);
    assert_eq!(env.count(Counter::VendsCreated), 2);
    assert_eq!(env.count(Counter::PatsCreated), 2);
    assert_eq!(env.executed_count(ORDERS_SQL), 2);
    env.assert_no_foreign_identity();
}

#[tokio::test]
async fn revoked_roles_mint_a_fresh_vend_and_pat() {
    let env = env().await;
    env.run("bob@example.com", ORDERS_SQL).await.unwrap();
    env.sandbox.state.engine.expire_all_roles();
    let rs = env.run("bob@example.com", ORDERS_SQL).await.unwrap();
    assert_eq!(rs.row_count, 8);
    assert_eq!(env.count(Counter::VendsCreated), 2);
    assert_eq!(env.count(Counter::PatsCreated), 2);
    assert_eq!(env.count(Counter::PatsRemoved), 1);
    env.assert_no_foreign_identity();
}

#[tokio::test]
async fn steady_use_never_hits_the_pat_limit() {
    let env = one_pat_slot_env().await;
    for _ in 0..3 {
        env.run("alice@example.com", ORDERS_SQL).await.unwrap();
        env.sandbox.state.expire_credentials();
    }
    assert_eq!(env.count(Counter::PatsCreated), 3);
    assert_eq!(env.count(Counter::PatsRemoved), 2);
    env.assert_no_foreign_identity();
    // On shutdown only the live token is left to remove: the removed ones were
    // forgotten, so no REMOVE is sent for them again.
    env.sf.shutdown().await;
    assert_eq!(env.count(Counter::PatsRemoved), 3);
    assert_eq!(env.token_statements(REMOVE_PAT), 3);
    env.sf.shutdown().await;
    assert_eq!(
        env.token_statements(REMOVE_PAT),
        3,
        "nothing left to remove"
    );
}

#[tokio::test]
async fn a_pat_whose_removal_failed_is_removed_at_the_next_cleanup_and_then_forgotten() {
    // One attempt per request: a lost answer is not resent.
    let env = env_with_fixture(
        Fixture::demo(),
        SandboxSettings::default(),
        |_| {},
        |sf| {
            sf.with_retry(RetryPolicy {
                max_attempts: 1,
                ..fast_retry()
            })
        },
    )
    .await;
    env.run("alice@example.com", ORDERS_SQL).await.unwrap();
    // Snowflake refuses the REMOVE: the token is still ours to remove.
    env.sandbox.faults().add(
        Endpoint::SnowflakeSubmit,
        Fault::Status {
            status: 422,
            retry_after: None,
            times: 1,
        },
    );
    env.sf.shutdown().await;
    assert_eq!(env.count(Counter::PatsRemoved), 0);
    // The REMOVE runs but its answer is lost: the client cannot know.
    env.sandbox
        .faults()
        .add(Endpoint::SnowflakeSubmit, Fault::LostAnswer { times: 1 });
    env.sf.shutdown().await;
    assert_eq!(env.count(Counter::PatsRemoved), 1, "removed upstream");
    assert_eq!(env.token_statements(REMOVE_PAT), 2);
    // Next cleanup: Snowflake says the token does not exist, and it is forgotten.
    env.sf.shutdown().await;
    assert_eq!(env.token_statements(REMOVE_PAT), 3);
    env.sf.shutdown().await;
    assert_eq!(env.token_statements(REMOVE_PAT), 3, "not sent again");
    assert_eq!(env.count(Counter::PatsRemoved), 1);
}

#[tokio::test]
async fn pat_limit_frees_superseded_and_expired_tokens_before_evicting() {
    // With a reuse margin as long as the role's life, every call re-mints, and the
    // token it supersedes (or any other unusable one) is removed to make room.
    let env = env_with(
        SandboxSettings {
            pat_limit_per_user: 1,
            ..SandboxSettings::default()
        },
        |cfg| cfg.limits.credential_expiry_margin_secs = 3600,
    )
    .await;
    env.run("alice@example.com", ORDERS_SQL).await.unwrap();
    env.run("alice@example.com", ORDERS_SQL).await.unwrap();
    env.run("bob@example.com", ORDERS_SQL).await.unwrap();
    assert_eq!(env.count(Counter::PatsCreated), 3);
    assert_eq!(env.count(Counter::PatsRemoved), 2);
    assert_eq!(
        env.requests(Endpoint::ImmutaDelete),
        0,
        "unusable tokens were freed: no session was evicted"
    );
    env.assert_no_foreign_identity();
}

#[tokio::test]
async fn pat_limit_reclaims_a_dead_token_before_evicting_an_idle_live_one() {
    let env = one_pat_slot_env().await;
    env.run("alice@example.com", ORDERS_SQL).await.unwrap();
    // Alice's token dies upstream long before its local expiry.
    env.sandbox.state.expire_credentials();
    let rs = env.run("bob@example.com", ORDERS_SQL).await.unwrap();
    assert_eq!(rs.row_count, 8);
    assert_eq!(env.count(Counter::PatsCreated), 2);
    assert_eq!(
        env.count(Counter::PatsRemoved),
        1,
        "the dead token was removed"
    );
    // Freeing the dead token was enough: bob's ADD was retried at once, and
    // alice's session was not evicted (which would send a second REMOVE).
    assert_eq!(env.token_statements(REMOVE_PAT), 1);
    assert_eq!(env.token_statements(ADD_PAT), 3);

    // Bob's token is live but idle: alice (whose cached PAT died) takes its
    // slot, and bob's next call vends and mints again.
    let rs = env.run("alice@example.com", ORDERS_SQL).await.unwrap();
    assert_eq!(rs.row_count, 4);
    assert_eq!(env.count(Counter::PatsCreated), 3);
    assert_eq!(
        env.count(Counter::PatsRemoved),
        2,
        "bob's idle token evicted"
    );
    let rs = env.run("bob@example.com", ORDERS_SQL).await.unwrap();
    assert_eq!(rs.row_count, 8);
    assert_eq!(env.count(Counter::PatsCreated), 4, "bob re-minted");
    assert_eq!(env.count(Counter::VendsCreated), 4);
    env.assert_no_foreign_identity();
}

#[tokio::test]
async fn a_refused_add_after_a_slot_was_freed_is_reported_and_evicts_no_one() {
    let env = one_pat_slot_env().await;
    env.run("alice@example.com", ORDERS_SQL).await.unwrap();
    env.sandbox.state.expire_credentials();
    // Bob's mint: the ADD at the limit, the SHOW, the REMOVE of alice's dead
    // token pass; the retried ADD is refused for another reason than the limit.
    env.sandbox
        .faults()
        .add(Endpoint::SnowflakeSubmit, Fault::Pass { times: 3 });
    env.sandbox.faults().add(
        Endpoint::SnowflakeSubmit,
        Fault::Status {
            status: 400,
            retry_after: None,
            times: 1,
        },
    );
    let err = env.run("bob@example.com", ORDERS_SQL).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("could not create a PAT for the vended role"),
        "{err}"
    );
    assert_eq!(env.sandbox.faults().queued(Endpoint::SnowflakeSubmit), 0);
    assert_eq!(
        env.token_statements(REMOVE_PAT),
        1,
        "only the dead token was removed: no session evicted to retry once more"
    );
    assert_eq!(env.count(Counter::PatsCreated), 1);
    // The freed slot is there for bob's next call.
    let rs = env.run("bob@example.com", ORDERS_SQL).await.unwrap();
    assert_eq!(rs.row_count, 8);
    env.assert_no_foreign_identity();
}

/// The demo fixture plus `u1@example.com` .. `u5@example.com`; user `i` may
/// read only order `1000 + i`, so every result names the role it ran as.
fn numbered_users_fixture() -> Fixture {
    let mut fixture = Fixture::demo();
    for i in 1..=5 {
        fixture.users.push(UserSpec {
            id: numbered_user(i),
            grants: vec![GrantSpec {
                table: "SALES.PUBLIC.ORDERS".into(),
                row_filter: Some(format!("ORDER_ID = {}", 1000 + i)),
                masked_columns: Vec::new(),
            }],
        });
    }
    fixture
}

fn numbered_user(i: usize) -> String {
    format!("u{i}@example.com")
}

/// Runs `ORDERS_SQL` as `u<i>` and checks the user saw exactly their own order.
async fn run_numbered(env: &Env, i: usize) {
    let rs = env
        .run(&numbered_user(i), ORDERS_SQL)
        .await
        .unwrap_or_else(|e| panic!("call of {}: {e}", numbered_user(i)));
    assert_eq!(
        column(&rs, "ORDER_ID"),
        vec![&json!(1000 + i as i64)],
        "{} sees only their order",
        numbered_user(i)
    );
}

async fn numbered_env(pat_limit: usize) -> Env {
    env_with_fixture(
        numbered_users_fixture(),
        SandboxSettings {
            pat_limit_per_user: pat_limit,
            ..SandboxSettings::default()
        },
        |_| {},
        // Long enough that an immediate retry always falls inside it.
        |sf| sf.with_capacity_backoff(Duration::from_secs(600)),
    )
    .await
}

/// Polls (bounded) until `done` holds: for effects of background tasks.
async fn eventually(what: &str, done: impl Fn() -> bool) {
    for _ in 0..1000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{what} did not happen within 10 s");
}

/// Vended roles (of this env's calls) still bound in the sandbox engine.
fn live_vended_roles(env: &Env) -> usize {
    let roles: HashSet<String> = env
        .identities
        .lock()
        .unwrap()
        .iter()
        .map(|(_, role)| role.clone())
        .collect();
    roles
        .iter()
        .filter(|r| {
            env.sandbox
                .state
                .engine
                .role_user(Platform::Snowflake, r)
                .is_some()
        })
        .count()
}

#[tokio::test]
async fn more_users_than_pat_slots_are_served_by_evicting_the_least_recently_used_idle_session() {
    let env = numbered_env(2).await;
    // u1 and u2 fill both slots; u3, u4, u5 each evict the oldest idle session.
    for i in 1..=5 {
        run_numbered(&env, i).await;
    }
    assert_eq!(env.count(Counter::PatsCreated), 5);
    assert_eq!(env.count(Counter::PatsRemoved), 3, "u1, u2, u3 evicted");
    // Each of u3, u4, u5: an ADD at the limit, one SHOW finding nothing dead, the
    // eviction, one more ADD; no ADD is retried before something was freed.
    assert_eq!(env.token_statements(ADD_PAT), 2 + 3 * 2);
    assert_eq!(env.token_statements(SHOW_PATS), 3);
    assert_eq!(env.token_statements(REMOVE_PAT), 3);
    // u4 and u5 were kept: both reuse their PATs.
    run_numbered(&env, 5).await;
    run_numbered(&env, 4).await;
    assert_eq!(env.count(Counter::PatsCreated), 5);
    // u5 is now the least recently used: u1 takes its slot, u4 keeps its own.
    run_numbered(&env, 1).await;
    run_numbered(&env, 4).await;
    assert_eq!(env.count(Counter::PatsCreated), 6);
    assert_eq!(env.count(Counter::PatsRemoved), 4);
    run_numbered(&env, 5).await;
    assert_eq!(env.count(Counter::PatsCreated), 7);
    assert_eq!(env.count(Counter::PatsRemoved), 5, "u1 evicted, u4 kept");
    assert_eq!(env.count(Counter::VendsCreated), 7, "one vend per PAT");
    env.assert_no_foreign_identity();
    for s in env.sandbox.state.executed() {
        assert!(s.user.starts_with('u'), "{s:?}");
    }

    // Each evicted session's vended role is dropped at Immuta, not leaked.
    eventually("5 evicted roles dropped", || {
        env.requests(Endpoint::ImmutaDelete) >= 5
    })
    .await;
    assert_eq!(env.requests(Endpoint::ImmutaDelete), 5);
    assert_eq!(
        live_vended_roles(&env),
        2,
        "only the two cached sessions' roles are live"
    );
}

/// Holds a call inside its first progress report (its statement is running
/// and its session leased) until the test releases it.
struct HoldWhileRunning {
    running: Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
    release: Mutex<Option<std::sync::mpsc::Receiver<()>>>,
}

impl ProgressSink for HoldWhileRunning {
    fn progress(&self, _step: u32, _message: &str) {
        let Some(running) = self.running.lock().unwrap().take() else {
            return;
        };
        let _ = running.send(());
        if let Some(release) = self.release.lock().unwrap().take() {
            tokio::task::block_in_place(|| {
                let _ = release.recv();
            });
        }
    }
}

/// Starts `u<i>`'s query and returns once its statement is running (held by
/// a `Pending` submit, then inside the progress report); send on the returned
/// channel to let it finish.
async fn start_held(
    env: &Arc<Env>,
    i: usize,
) -> (
    tokio::task::JoinHandle<Result<ResultSet, QueryError>>,
    std::sync::mpsc::Sender<()>,
) {
    let (running_tx, running_rx) = tokio::sync::oneshot::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel();
    let mut ctx = CallContext::new(numbered_user(i), "query_snowflake");
    ctx.progress = Some(Arc::new(HoldWhileRunning {
        running: Mutex::new(Some(running_tx)),
        release: Mutex::new(Some(release_rx)),
    }));
    env.sandbox
        .faults()
        .add(Endpoint::SnowflakeSubmit, Fault::Pending { polls: 1 });
    let call = {
        let env = env.clone();
        tokio::spawn(async move { env.run_ctx(&ctx, &request(ORDERS_SQL)).await })
    };
    if running_rx.await.is_err() {
        panic!(
            "{}'s statement never ran: {:?}",
            numbered_user(i),
            call.await
        );
    }
    (call, release_tx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_with_a_running_statement_is_never_evicted_and_capacity_is_reported() {
    let env = Arc::new(numbered_env(2).await);
    run_numbered(&env, 1).await;
    run_numbered(&env, 2).await;
    // Both slots now belong to running statements.
    let (held1, release1) = start_held(&env, 1).await;
    let (held2, release2) = start_held(&env, 2).await;

    let vends = env.count(Counter::VendsCreated);
    let err = env.run(&numbered_user(3), ORDERS_SQL).await.unwrap_err();
    assert!(matches!(err, QueryError::Credential(_)), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("reached its concurrent Snowflake user capacity")
            && msg.contains("limit of programmatic access tokens")
            && msg.contains("Retry shortly (in 600 s or later)"),
        "the configured back-off: {msg}"
    );
    assert_eq!(
        env.count(Counter::PatsRemoved),
        0,
        "no running session evicted"
    );
    assert_eq!(env.count(Counter::VendsCreated), vends + 1);
    let u3_role = env
        .identities
        .lock()
        .unwrap()
        .last()
        .cloned()
        .expect("u3's vend is reported");
    assert_eq!(u3_role.0, numbered_user(3));

    // Retrying at once costs no vend and no Snowflake request.
    let submits = env.requests(Endpoint::SnowflakeSubmit);
    let again = env.run(&numbered_user(3), ORDERS_SQL).await.unwrap_err();
    assert!(matches!(again, QueryError::Credential(_)), "{again:?}");
    let again = again.to_string();
    assert!(
        again.contains("reached its concurrent Snowflake user capacity")
            && again.contains("Retry shortly"),
        "{again}"
    );
    assert_eq!(env.count(Counter::VendsCreated), vends + 1, "no new vend");
    assert_eq!(env.requests(Endpoint::SnowflakeSubmit), submits);

    // The role vended for the failed mint is dropped.
    eventually("u3's role dropped", || {
        env.requests(Endpoint::ImmutaDelete) >= 1
    })
    .await;
    assert_eq!(
        env.sandbox
            .state
            .engine
            .role_user(Platform::Snowflake, &u3_role.1),
        None
    );

    // The held statements finish under their own sessions.
    release1.send(()).unwrap();
    release2.send(()).unwrap();
    for (i, held) in [(1, held1), (2, held2)] {
        let rs = held.await.unwrap().unwrap();
        assert_eq!(column(&rs, "ORDER_ID"), vec![&json!(1000 + i)]);
    }
    assert_eq!(env.count(Counter::PatsRemoved), 0);
    assert_eq!(env.count(Counter::PatsCreated), 2);
    assert!(
        env.sandbox
            .state
            .executed()
            .iter()
            .all(|s| s.user != numbered_user(3)),
        "no SQL ran for u3"
    );
    env.assert_no_foreign_identity();
}

#[tokio::test]
async fn a_failed_mint_drops_the_vended_role() {
    let env = env().await;
    env.sandbox.faults().add(
        Endpoint::SnowflakeSubmit,
        Fault::Status {
            status: 400,
            retry_after: None,
            times: 1,
        },
    );
    let ctx = CallContext::new("alice@example.com", "query_snowflake");
    let err = env.run_ctx(&ctx, &request(ORDERS_SQL)).await.unwrap_err();
    assert!(matches!(err, QueryError::Credential(_)), "{err:?}");
    // Not blamed on the agent's key: Snowflake accepted the JWT and refused the ADD.
    assert!(
        err.to_string().starts_with(
            "could not obtain a credential scoped to the vended role: could not create a PAT for the vended role"
        ),
        "{err}"
    );
    let role = ctx.facts().vended_role.expect("the role was vended");
    assert_eq!(env.count(Counter::VendsCreated), 1);
    assert_eq!(env.count(Counter::PatsCreated), 0);
    eventually("the vended role dropped", || {
        env.requests(Endpoint::ImmutaDelete) >= 1
    })
    .await;
    assert_eq!(env.requests(Endpoint::ImmutaDelete), 1);
    assert_eq!(
        env.sandbox
            .state
            .engine
            .role_user(Platform::Snowflake, &role),
        None,
        "the vended role is no longer bound"
    );
    assert!(env.sandbox.state.executed().is_empty(), "no SQL ran");

    // The next call vends and mints afresh and works.
    let rs = env.run("alice@example.com", ORDERS_SQL).await.unwrap();
    assert_eq!(rs.row_count, 4);
    assert_eq!(env.count(Counter::VendsCreated), 2);
    env.assert_no_foreign_identity();
}

#[test]
fn with_drop_unused_vends_off_a_failed_mint_leaves_the_role_to_expire() {
    with_logs(Level::DEBUG, Threads::Current, |logs| async move {
        // Production default: DELETE may drop every role of the agent, so it is not sent.
        let env = env_with(SandboxSettings::default(), |cfg| {
            cfg.immuta.as_mut().unwrap().drop_unused_vends = false;
        })
        .await;
        env.sandbox.faults().add(
            Endpoint::SnowflakeSubmit,
            Fault::Status {
                status: 400,
                retry_after: None,
                times: 1,
            },
        );
        let ctx = CallContext::new("alice@example.com", "query_snowflake");
        let err = env.run_ctx(&ctx, &request(ORDERS_SQL)).await.unwrap_err();
        assert!(matches!(err, QueryError::Credential(_)), "{err:?}");
        // With the flag on, a DELETE task is spawned instead of this line being logged.
        assert!(
            logs.text()
                .contains("leaving the unused vended role to expire with its TTL"),
            "the unused role was left to expire:\n{}",
            logs.text()
        );
        let role = ctx.facts().vended_role.expect("the role was vended");
        assert_eq!(
            env.sandbox
                .state
                .engine
                .role_user(Platform::Snowflake, &role)
                .as_deref(),
            Some("alice@example.com"),
            "the vended role is still bound to alice"
        );
        assert_eq!(
            env.requests(Endpoint::ImmutaDelete),
            0,
            "no DELETE was sent"
        );
        assert!(env.sandbox.state.executed().is_empty(), "no SQL ran");
        let rs = env.run("alice@example.com", ORDERS_SQL).await.unwrap();
        assert_eq!(rs.row_count, 4);
    });
}

#[tokio::test]
async fn hundred_concurrent_cold_calls_make_one_vend_and_one_pat() {
    let env = Arc::new(env().await);
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let env = env.clone();
        tasks.push(tokio::spawn(async move {
            env.run("alice@example.com", ORDERS_SQL)
                .await
                .map(|rs| rs.row_count)
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), 4);
    }
    assert_eq!(env.count(Counter::VendsCreated), 1);
    assert_eq!(env.count(Counter::PatsCreated), 1);
    assert_eq!(env.executed_count(ORDERS_SQL), 100);
    env.assert_no_foreign_identity();
}

/// The Snowflake submits of one call, as the emulator saw them: every attempt
/// carries the first attempt's `requestId`, and only the resends say `retry=true`
/// (sqlapi.yaml, `requestId`/`retry`: resubmitting with the same id does not run
/// the statement again).
fn assert_one_request_id(seen: &[immuta_mcp::sandbox::SeenRequest], what: &str) {
    assert!(seen.len() >= 2, "{what}: the call was retried ({seen:?})");
    let first = seen[0]
        .query_param("requestId")
        .unwrap_or_else(|| panic!("{what}: the first submit names a requestId"));
    assert!(
        uuid::Uuid::parse_str(&first).is_ok(),
        "{what}: requestId is a UUID: {first}"
    );
    assert_eq!(seen[0].query_param("retry"), None, "{what}: first attempt");
    for resend in &seen[1..] {
        assert_eq!(
            resend.query_param("requestId").as_deref(),
            Some(first.as_str()),
            "{what}: a resend keeps the requestId"
        );
        assert_eq!(
            resend.query_param("retry").as_deref(),
            Some("true"),
            "{what}: a resend says retry=true"
        );
    }
}

#[tokio::test]
async fn transient_submit_failures_are_retried_with_the_same_request_id() {
    let env = env().await;
    env.run("bob@example.com", "SELECT 1").await.unwrap();
    let cases = [
        (
            "SELECT ORDER_ID FROM SALES.PUBLIC.ORDERS WHERE ORDER_ID = 1001",
            Fault::Status {
                status: 429,
                retry_after: Some(1),
                times: 2,
            },
        ),
        (
            "SELECT ORDER_ID FROM SALES.PUBLIC.ORDERS WHERE ORDER_ID = 1002",
            Fault::Status {
                status: 500,
                retry_after: None,
                times: 1,
            },
        ),
        (
            "SELECT ORDER_ID FROM SALES.PUBLIC.ORDERS WHERE ORDER_ID = 1003",
            Fault::Status {
                status: 503,
                retry_after: None,
                times: 3,
            },
        ),
        (
            "SELECT ORDER_ID FROM SALES.PUBLIC.ORDERS WHERE ORDER_ID = 1004",
            Fault::ConnectionReset { times: 2 },
        ),
        // The statement ran in Snowflake, then its answer was lost: only the
        // same requestId with retry=true keeps it from running twice.
        (
            "SELECT ORDER_ID FROM SALES.PUBLIC.ORDERS WHERE ORDER_ID = 1004",
            Fault::LostAnswer { times: 1 },
        ),
    ];
    for (sql, fault) in cases {
        let before = env.requests(Endpoint::SnowflakeSubmit) as usize;
        let ran_before = env.executed_count(sql);
        let extra = match &fault {
            Fault::Status { times, .. }
            | Fault::ConnectionReset { times }
            | Fault::LostAnswer { times } => *times as usize,
            _ => 0,
        };
        env.sandbox
            .faults()
            .add(Endpoint::SnowflakeSubmit, fault.clone());
        let rs = env
            .run("bob@example.com", sql)
            .await
            .unwrap_or_else(|e| panic!("{fault:?}: {e}"));
        assert_eq!(rs.row_count, 1, "{fault:?}");
        let seen = env.sandbox.state.seen(Endpoint::SnowflakeSubmit);
        assert_eq!(
            seen.len() - before,
            extra + 1,
            "{fault:?}: one request per attempt"
        );
        assert_one_request_id(&seen[before..], &format!("{fault:?}"));
        assert!(
            seen[before..].iter().all(|r| r.json()["statement"] == sql),
            "{fault:?}: every attempt sent the user's statement"
        );
        assert_eq!(
            env.executed_count(sql) - ran_before,
            1,
            "{fault:?}: ran exactly once"
        );
    }
    assert_eq!(env.count(Counter::PatsCreated), 1);
    env.assert_no_foreign_identity();
}

#[tokio::test]
async fn rate_limiting_that_never_ends_is_reported_as_unavailable() {
    let env = env().await;
    env.run("bob@example.com", "SELECT 1").await.unwrap();
    env.sandbox.faults().add(
        Endpoint::SnowflakeSubmit,
        Fault::Status {
            status: 429,
            retry_after: Some(0),
            times: 4,
        },
    );
    let err = env.run("bob@example.com", ORDERS_SQL).await.unwrap_err();
    assert!(matches!(err, QueryError::Unavailable { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("429") && msg.contains("4 attempts"), "{msg}");
    assert_eq!(env.executed_count(ORDERS_SQL), 0);
}

#[tokio::test]
async fn failures_during_vend_and_pat_creation_are_survived() {
    let env = env().await;
    env.sandbox.faults().add(
        Endpoint::ImmutaVend,
        Fault::Status {
            status: 503,
            retry_after: None,
            times: 1,
        },
    );
    // Three failed attempts at the PAT mint; the last one created the PAT in
    // Snowflake before its answer was lost.
    env.sandbox.faults().add(
        Endpoint::SnowflakeSubmit,
        Fault::ConnectionReset { times: 1 },
    );
    env.sandbox.faults().add(
        Endpoint::SnowflakeSubmit,
        Fault::Status {
            status: 500,
            retry_after: None,
            times: 1,
        },
    );
    env.sandbox
        .faults()
        .add(Endpoint::SnowflakeSubmit, Fault::LostAnswer { times: 1 });
    let rs = env.run("alice@example.com", ORDERS_SQL).await.unwrap();
    assert_eq!(rs.row_count, 4);
    assert_eq!(env.requests(Endpoint::ImmutaVend), 2, "the 503 was retried");
    assert_eq!(env.count(Counter::VendsCreated), 1);
    let seen = env.sandbox.state.seen(Endpoint::SnowflakeSubmit);
    assert_eq!(seen.len(), 5, "four attempts at the mint, then the query");
    let mint = &seen[..4];
    assert!(
        mint.iter().all(|r| r.json()["statement"]
            .as_str()
            .is_some_and(|s| s.contains("ADD PROGRAMMATIC ACCESS TOKEN"))),
        "the first four submits are the mint"
    );
    assert_one_request_id(mint, "ALTER USER ... ADD PAT");
    assert_eq!(
        env.count(Counter::PatsCreated),
        1,
        "ALTER USER retried idempotently: the lost answer did not mint twice"
    );
    assert_eq!(seen[4].json()["statement"], ORDERS_SQL);
    env.assert_no_foreign_identity();
}

#[derive(Default)]
struct Recorder {
    messages: Mutex<Vec<(u32, String)>>,
    cancel_on_first: Option<tokio_util::sync::CancellationToken>,
}

impl ProgressSink for Recorder {
    fn progress(&self, step: u32, message: &str) {
        self.messages
            .lock()
            .unwrap()
            .push((step, message.to_string()));
        if let Some(token) = &self.cancel_on_first {
            token.cancel();
        }
    }
}

#[tokio::test]
async fn pending_statement_is_polled_with_progress() {
    let env = env().await;
    env.run("bob@example.com", "SELECT 1").await.unwrap();
    env.sandbox
        .faults()
        .add(Endpoint::SnowflakeSubmit, Fault::Pending { polls: 3 });
    let recorder = Arc::new(Recorder::default());
    let mut ctx = CallContext::new("bob@example.com", "query_snowflake");
    ctx.progress = Some(recorder.clone() as Arc<dyn ProgressSink>);
    let polls_before = env.requests(Endpoint::SnowflakeStatus);
    let rs = env.run_ctx(&ctx, &request(ORDERS_SQL)).await.unwrap();
    assert_eq!(rs.row_count, 8);
    let messages = recorder.messages.lock().unwrap().clone();
    assert!(messages.len() >= 3, "{messages:?}");
    assert!(messages[0].1.contains(&rs.statement_id), "{messages:?}");
    let steps: Vec<u32> = messages.iter().map(|m| m.0).collect();
    assert!(steps.windows(2).all(|w| w[0] < w[1]), "{steps:?}");
    assert!(env.requests(Endpoint::SnowflakeStatus) - polls_before >= 3);
    assert_eq!(
        ctx.facts().statement_id.as_deref(),
        Some(rs.statement_id.as_str())
    );
    env.assert_no_foreign_identity();
}

#[tokio::test]
async fn cancelling_a_running_statement_cancels_it_in_snowflake() {
    let env = env().await;
    env.run("bob@example.com", "SELECT 1").await.unwrap();
    env.sandbox
        .faults()
        .add(Endpoint::SnowflakeSubmit, Fault::Pending { polls: 10_000 });
    let mut ctx = CallContext::new("bob@example.com", "query_snowflake");
    ctx.progress = Some(Arc::new(Recorder {
        messages: Mutex::new(Vec::new()),
        cancel_on_first: Some(ctx.cancel.clone()),
    }));
    let err = env.run_ctx(&ctx, &request(ORDERS_SQL)).await.unwrap_err();
    match &err {
        QueryError::Cancelled {
            platform,
            statement_id,
            cancel_confirmed,
        } => {
            assert_eq!(*platform, Platform::Snowflake);
            assert!(statement_id.is_some(), "the cancelled statement is named");
            assert_eq!(statement_id, &ctx.facts().statement_id);
            assert!(*cancel_confirmed, "Snowflake acknowledged the cancel");
        }
        other => panic!("expected Cancelled, got {other:?}"),
    }
    assert_eq!(env.count(Counter::StatementsCancelled), 1);
    assert_eq!(env.requests(Endpoint::SnowflakeCancel), 1);
}

#[tokio::test]
async fn a_caller_cancelled_while_its_role_is_vended_leaves_the_minted_session_for_the_next_call() {
    let env = env().await;
    // The vend is pending for two polls; the caller cancels at the first
    // "waiting for Immuta" report. The mint is shared by every caller of the
    // user, so it runs to the end (vend, PAT) without that caller.
    env.sandbox
        .faults()
        .add(Endpoint::ImmutaVend, Fault::Pending { polls: 2 });
    let mut ctx = CallContext::new("bob@example.com", "query_snowflake");
    ctx.progress = Some(Arc::new(Recorder {
        messages: Mutex::new(Vec::new()),
        cancel_on_first: Some(ctx.cancel.clone()),
    }));
    let outcome = env.run_ctx(&ctx, &request(ORDERS_SQL)).await;
    assert!(ctx.cancel.is_cancelled());
    assert_eq!(env.count(Counter::VendsCreated), 1);
    assert_eq!(
        env.count(Counter::PatsCreated),
        1,
        "the mint finished: {outcome:?}"
    );
    let rs = env.run("bob@example.com", ORDERS_SQL).await.unwrap();
    assert_eq!(rs.row_count, 8);
    assert_eq!(env.count(Counter::VendsCreated), 1, "the session was kept");
    assert_eq!(env.count(Counter::PatsCreated), 1);
    env.assert_no_foreign_identity();
}

#[tokio::test]
async fn partitions_are_fetched_under_the_limits_and_survive_resets() {
    let env = env_with(
        SandboxSettings {
            partition_rows: 3,
            ..SandboxSettings::default()
        },
        |_| {},
    )
    .await;
    env.run("bob@example.com", "SELECT 1").await.unwrap();
    env.sandbox.faults().add(
        Endpoint::SnowflakeStatus,
        Fault::ConnectionReset { times: 1 },
    );
    let before = env.requests(Endpoint::SnowflakeStatus);
    let all = env.run("bob@example.com", ORDERS_SQL).await.unwrap();
    assert_eq!(all.row_count, 8);
    assert!(!all.truncated);
    let ids: Vec<i64> = column(&all, "ORDER_ID")
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    assert_eq!(ids, (1001..=1008).collect::<Vec<_>>());
    assert_eq!(
        env.requests(Endpoint::SnowflakeStatus) - before,
        3,
        "partitions 1 and 2, one retried after the reset"
    );

    // Row limit inside the first partition: no further partition is fetched.
    let before = env.requests(Endpoint::SnowflakeStatus);
    let mut req = request(ORDERS_SQL);
    req.max_rows = 2;
    let cut = env
        .run_ctx(
            &CallContext::new("bob@example.com", "query_snowflake"),
            &req,
        )
        .await
        .unwrap();
    assert_eq!(cut.row_count, 2);
    assert!(cut.truncated);
    assert_eq!(cut.total_row_count, Some(8));
    assert_eq!(env.requests(Endpoint::SnowflakeStatus), before);

    // Row limit at a partition boundary: stop before partition 2.
    let before = env.requests(Endpoint::SnowflakeStatus);
    req.max_rows = 6;
    let cut = env
        .run_ctx(
            &CallContext::new("bob@example.com", "query_snowflake"),
            &req,
        )
        .await
        .unwrap();
    assert_eq!(cut.row_count, 6);
    assert!(cut.truncated);
    assert_eq!(env.requests(Endpoint::SnowflakeStatus) - before, 1);

    // Byte limit: stops early as well.
    let mut req = request(ORDERS_SQL);
    req.max_bytes = 100;
    let cut = env
        .run_ctx(
            &CallContext::new("bob@example.com", "query_snowflake"),
            &req,
        )
        .await
        .unwrap();
    assert!(cut.truncated);
    assert!(cut.row_count >= 1 && cut.row_count < 8, "{}", cut.row_count);
    env.assert_no_foreign_identity();
}

#[tokio::test]
async fn check_proves_the_agent_key_pair() {
    let env = env().await;
    let report = env.sf.check().await.unwrap();
    assert!(report.contains("SANDBOX01.IMMUTA_AGENT"), "{report}");
    assert!(
        report.contains(&env.sandbox.credentials().snowflake_public_key_fingerprint),
        "{report}"
    );
    assert_eq!(
        env.sf.fingerprint(),
        env.sandbox.credentials().snowflake_public_key_fingerprint
    );
}

#[tokio::test]
async fn a_wrong_agent_key_fails_closed_with_a_clear_message() {
    let other = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap();
    let pem = rsa::pkcs8::EncodePrivateKey::to_pkcs8_pem(&other, rsa::pkcs8::LineEnding::LF)
        .unwrap()
        .to_string();
    let env = env_with(SandboxSettings::default(), |cfg| {
        cfg.snowflake.as_mut().unwrap().private_key = immuta_mcp::config::SecretRef::Value(pem);
    })
    .await;
    let err = env.run("alice@example.com", ORDERS_SQL).await.unwrap_err();
    assert!(matches!(err, QueryError::Credential(_)), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("key-pair JWT") && msg.contains("SHA256:"),
        "{msg}"
    );
    assert!(env.sandbox.state.executed().is_empty(), "no SQL ran");
    let check = env.sf.check().await.unwrap_err().to_string();
    assert!(check.contains("key-pair JWT"), "{check}");
}

#[tokio::test]
async fn statement_timeout_cancels_and_reports() {
    let env = env_with(SandboxSettings::default(), |cfg| {
        cfg.snowflake.as_mut().unwrap().statement_timeout_secs = 1;
    })
    .await;
    env.run("bob@example.com", "SELECT 1").await.unwrap();
    env.sandbox.faults().add(
        Endpoint::SnowflakeSubmit,
        Fault::Pending { polls: 1_000_000 },
    );
    let err = env.run("bob@example.com", ORDERS_SQL).await.unwrap_err();
    match &err {
        QueryError::Timeout {
            platform,
            seconds,
            statement_id,
            cancel_confirmed,
        } => {
            assert_eq!(*platform, Platform::Snowflake);
            assert_eq!(*seconds, 1);
            assert!(statement_id.is_some());
            assert!(*cancel_confirmed);
        }
        other => panic!("expected Timeout, got {other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.contains("Snowflake statement did not finish within 1 s and was cancelled"),
        "{text}"
    );
}

const TYPES_FIXTURE: &str = r#"
[[tables]]
platform = "snowflake"
name = "LAB.PUBLIC.TYPES"
columns = [
  { name = "I", type = "NUMBER(38,0)" },
  { name = "D", type = "NUMBER(10,2)" },
  { name = "F", type = "FLOAT" },
  { name = "S", type = "TEXT" },
  { name = "B", type = "BOOLEAN" },
  { name = "DT", type = "DATE" },
  { name = "T", type = "TIME" },
  { name = "NTZ", type = "TIMESTAMP_NTZ" },
  { name = "LTZ", type = "TIMESTAMP_LTZ" },
  { name = "TZ", type = "TIMESTAMP_TZ" },
  { name = "V", type = "VARIANT" },
  { name = "A", type = "ARRAY" },
  { name = "BIN", type = "BINARY" },
]
rows = [
  [-9007199254740993, 10.5, 1.25, "it's", true, 1969-12-31, "12:34:56.123456789", "1969-12-31 23:59:58.5", "2024-01-05T10:00:00Z", "2024-01-05T10:00:00+02:00", "{\"a\": [1, 2]}", "[\"x\", null]", "DEADBEEF"],
  [{}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}],
]

[[users]]
id = "dana@example.com"
grants = [ { table = "LAB.PUBLIC.TYPES" } ]
"#;

#[tokio::test]
async fn every_snowflake_type_decodes_per_the_result_conventions() {
    let sandbox = Sandbox::start(SandboxOptions {
        fixture: Fixture::from_toml_str(TYPES_FIXTURE).expect("fixture"),
        settings: SandboxSettings::default(),
    })
    .await
    .expect("sandbox");
    let cfg = sandbox.client_config();
    let http = immuta_mcp::http_client::build_for(&cfg).unwrap();
    let immuta =
        ImmutaClient::new(cfg.immuta.as_ref().unwrap(), http.clone(), fast_retry()).unwrap();
    let sf = SnowflakeGoverned::new(cfg.snowflake.as_ref().unwrap(), immuta, &cfg.limits, http)
        .unwrap()
        .with_retry(fast_retry());
    let ctx = CallContext::new("dana@example.com", "query_snowflake");
    let rs = sf
        .query(&ctx, &request("SELECT * FROM LAB.PUBLIC.TYPES"))
        .await
        .unwrap();
    let types: Vec<ColumnType> = rs.columns.iter().map(|c| c.column_type).collect();
    assert_eq!(
        types,
        vec![
            ColumnType::Integer,
            ColumnType::Decimal,
            ColumnType::Float,
            ColumnType::String,
            ColumnType::Boolean,
            ColumnType::Date,
            ColumnType::Time,
            ColumnType::Timestamp,
            ColumnType::TimestampTz,
            ColumnType::TimestampTz,
            ColumnType::Json,
            ColumnType::Json,
            ColumnType::Binary,
        ]
    );
    assert_eq!(
        rs.rows[0],
        vec![
            json!(-9007199254740993i64),
            json!("10.50"),
            json!(1.25),
            json!("it's"),
            json!(true),
            json!("1969-12-31"),
            json!("12:34:56.123456789"),
            json!("1969-12-31T23:59:58.5"),
            json!("2024-01-05T10:00:00Z"),
            json!("2024-01-05T10:00:00+02:00"),
            json!({"a": [1, 2]}),
            json!(["x", null]),
            json!("deadbeef"),
        ]
    );
    assert!(rs.rows[1].iter().all(|v| v.is_null()), "{:?}", rs.rows[1]);
}

// ---------------------------------------------------------------------------
// First contact with a real account: host, identifiers, expiry clause, JWT
// ---------------------------------------------------------------------------

#[tokio::test]
async fn the_sql_api_is_reached_over_https_at_the_vended_regional_host() {
    let env = env().await;
    let cfg = env.sandbox.client_config();
    assert_eq!(cfg.snowflake.as_ref().unwrap().base_url, None);
    assert_eq!(
        env.sandbox.snowflake_host,
        "sandbox01.us-east-1.snowflakecomputing.com"
    );
    env.run("bob@example.com", ORDERS_SQL).await.unwrap();
    assert!(env.requests(Endpoint::SnowflakeSubmit) >= 2, "ADD + SELECT");
    let checked = env.sf.check().await.unwrap();
    assert!(
        checked.contains("https://sandbox01.us-east-1.snowflakecomputing.com"),
        "{checked}"
    );
}

#[tokio::test]
async fn a_vend_naming_another_account_is_refused_before_any_credential_is_sent() {
    let env = env_with(SandboxSettings::default(), |cfg| {
        cfg.snowflake.as_mut().unwrap().account = Some("OTHER01".into());
    })
    .await;
    let err = env.run("bob@example.com", ORDERS_SQL).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("SANDBOX01") && text.contains("OTHER01"),
        "the error names both accounts: {text}"
    );
    assert_eq!(
        env.requests(Endpoint::SnowflakeSubmit),
        0,
        "no JWT or PAT was sent anywhere"
    );
    assert_eq!(env.count(Counter::StatementsExecuted), 0);
}

#[tokio::test]
async fn context_names_are_resolved_as_snowflake_identifiers() {
    let env = env_with(SandboxSettings::default(), |cfg| {
        let sf = cfg.snowflake.as_mut().unwrap();
        sf.default_database = Some("sales".into());
        sf.default_schema = Some("public".into());
    })
    .await;
    // Unquoted config defaults resolve to upper case.
    let rs = env
        .run("bob@example.com", "SELECT ORDER_ID FROM ORDERS")
        .await
        .unwrap();
    assert!(rs.row_count > 0);
    // Unquoted tool arguments too.
    let mut req = request("SELECT ORDER_ID FROM ORDERS");
    req.database = Some("Sales".into());
    req.schema = Some("Public".into());
    env.run_ctx(
        &CallContext::new("bob@example.com", "query_snowflake"),
        &req,
    )
    .await
    .unwrap();
    // A quoted name is taken verbatim: "sales" is not SALES.
    req.database = Some("\"sales\"".into());
    let err = env
        .run_ctx(
            &CallContext::new("bob@example.com", "query_snowflake"),
            &req,
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("does not exist or not authorized"),
        "{err}"
    );
    // Malformed quoting is refused before anything is sent.
    let before = env.requests(Endpoint::SnowflakeSubmit);
    req.database = Some("\"sales".into());
    let err = env
        .run_ctx(
            &CallContext::new("bob@example.com", "query_snowflake"),
            &req,
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("database"), "{err}");
    assert_eq!(env.requests(Endpoint::SnowflakeSubmit), before);
}

#[tokio::test]
async fn a_refused_mins_to_expiry_falls_back_to_days_to_expiry_once_per_process() {
    let mut settings = SandboxSettings::default();
    settings.variants.pat_expiry = immuta_mcp::sandbox::variants::PatExpiryVariant::DaysOnly;
    let env = env_with(settings, |_| {}).await;
    assert_eq!(
        env.sf.pat_expiry_clause(),
        immuta_mcp::config::PatExpiryClause::MinsToExpiry
    );
    env.run("bob@example.com", ORDERS_SQL).await.unwrap();
    assert_eq!(
        env.requests(Endpoint::SnowflakeSubmit),
        3,
        "refused ADD, ADD with DAYS_TO_EXPIRY, SELECT"
    );
    assert_eq!(
        env.sf.pat_expiry_clause(),
        immuta_mcp::config::PatExpiryClause::DaysToExpiry
    );
    env.run("alice@example.com", ORDERS_SQL).await.unwrap();
    assert_eq!(
        env.requests(Endpoint::SnowflakeSubmit),
        5,
        "the next user's mint goes straight to DAYS_TO_EXPIRY"
    );
    assert_eq!(env.count(Counter::PatsCreated), 2);
    env.assert_no_foreign_identity();
}

#[tokio::test]
async fn an_expired_key_pair_jwt_is_signed_afresh_and_sent_once_more() {
    let settings = SandboxSettings {
        snowflake_expired_jwts: 1,
        ..SandboxSettings::default()
    };
    let env = env_with(settings, |_| {}).await;
    env.run("bob@example.com", ORDERS_SQL).await.unwrap();
    assert_eq!(env.count(Counter::PatsCreated), 1);
    assert_eq!(
        env.requests(Endpoint::SnowflakeSubmit),
        3,
        "expired ADD, resent ADD, SELECT"
    );
}

#[tokio::test]
async fn a_jwt_still_expired_after_re_signing_blames_the_clock_not_the_configuration() {
    let settings = SandboxSettings {
        snowflake_expired_jwts: 2,
        ..SandboxSettings::default()
    };
    let env = env_with(settings, |_| {}).await;
    let err = env.run("bob@example.com", ORDERS_SQL).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, QueryError::Credential(_)), "{err:?}");
    assert!(text.contains("390198") && text.contains("clock"), "{text}");
    assert!(
        !text.contains("check snowflake.user"),
        "not a configuration matter: {text}"
    );
    assert_eq!(
        env.requests(Endpoint::SnowflakeSubmit),
        2,
        "one resend only"
    );
    assert_eq!(env.count(Counter::StatementsExecuted), 0);
}

#[tokio::test]
async fn a_408_statement_timeout_is_reported_as_stopped_by_snowflake() {
    let settings = SandboxSettings {
        snowflake_statement_delay: Duration::from_secs(5),
        ..SandboxSettings::default()
    };
    let env = env_with(settings, |cfg| {
        cfg.snowflake.as_mut().unwrap().statement_timeout_secs = 1;
    })
    .await;
    let err = env.run("bob@example.com", ORDERS_SQL).await.unwrap_err();
    match &err {
        QueryError::Timeout {
            seconds,
            statement_id,
            cancel_confirmed,
            ..
        } => {
            assert_eq!(*seconds, 1);
            assert!(statement_id.is_some(), "the 408 body names the statement");
            assert!(*cancel_confirmed, "Snowflake stopped it itself");
        }
        other => panic!("expected Timeout, got {other:?}"),
    }
    assert_eq!(
        env.requests(Endpoint::SnowflakeCancel),
        0,
        "nothing left to cancel"
    );
}
