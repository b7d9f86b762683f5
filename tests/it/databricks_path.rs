//! Rule: every Databricks statement runs under the caller's own vended group, whatever the faults.
//!
//! The governed Databricks path against the sandbox: vended groups, token
//! caching and renewal, single-flight, chunked results, fault handling,
//! cancellation, and proof that every statement ran as the caller's group.

use crate::support::query_request as request;
use immuta_mcp::config::Config;
use immuta_mcp::databricks::DatabricksGoverned;
use immuta_mcp::immuta::client::ImmutaClient;
use immuta_mcp::query::{CallContext, GovernedQuery, ProgressSink, QueryError};
use immuta_mcp::result::{ColumnType, Platform, ResultSet};
use immuta_mcp::retry::RetryPolicy;
use immuta_mcp::sandbox::faults::{Endpoint, Fault};
use immuta_mcp::sandbox::fixture::{Fixture, GrantSpec};
use immuta_mcp::sandbox::state::{Counter, SandboxSettings};
use immuta_mcp::sandbox::{Sandbox, SandboxOptions};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const ALICE: &str = "alice@example.com";
const BOB: &str = "bob@example.com";
const CAROL: &str = "carol@example.com";

fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        initial_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(40),
        observer: None,
    }
}

/// The path under test. The identity probe (`verify_identity`) is off here: these
/// tests count the requests and statements of the other steps; the probe has
/// its own tests in `identity_proof`.
fn governed_from(cfg: &Config) -> DatabricksGoverned {
    let http = immuta_mcp::http_client::build(&cfg.limits).unwrap();
    let immuta =
        ImmutaClient::new(cfg.immuta.as_ref().unwrap(), http.clone(), fast_retry()).unwrap();
    let mut databricks = cfg.databricks.clone().unwrap();
    databricks.verify_identity = false;
    DatabricksGoverned::new(&databricks, immuta, &cfg.limits, http)
        .unwrap()
        .with_retry(fast_retry())
        .with_polling(Duration::from_millis(5), Duration::from_millis(20))
}

async fn start(opts: SandboxOptions) -> (Sandbox, Arc<DatabricksGoverned>) {
    let sandbox = Sandbox::start(opts).await.unwrap();
    let governed = Arc::new(governed_from(&sandbox.client_config()));
    (sandbox, governed)
}

async fn demo() -> (Sandbox, Arc<DatabricksGoverned>) {
    start(SandboxOptions::default()).await
}

async fn run(g: &DatabricksGoverned, user: &str, sql: &str) -> Result<ResultSet, QueryError> {
    g.query(&CallContext::new(user, "query_databricks"), &request(sql))
        .await
}

fn column<'a>(rs: &'a ResultSet, name: &str) -> Vec<&'a Value> {
    let i = rs.columns.iter().position(|c| c.name == name).unwrap();
    rs.rows.iter().map(|r| &r[i]).collect()
}

/// Every statement the sandbox ran on Databricks ran for `user` as a group vended to them.
fn assert_all_ran_as(sandbox: &Sandbox, user: &str) {
    let executed: Vec<_> = sandbox
        .state
        .executed()
        .into_iter()
        .filter(|s| s.platform == Platform::Databricks)
        .collect();
    assert!(!executed.is_empty());
    for s in executed {
        assert_eq!(
            s.user, user,
            "statement {} ran as {}",
            s.statement_id, s.role
        );
    }
}

const ORDERS: &str =
    "SELECT order_id, customer_email, region, amount FROM main.sales.orders ORDER BY order_id";

#[tokio::test]
async fn two_users_see_their_own_rows_and_masks_through_their_groups() {
    let (sandbox, g) = demo().await;
    let alice_ctx = CallContext::new(ALICE, "query_databricks");
    let alice = g.query(&alice_ctx, &request(ORDERS)).await.unwrap();
    let bob_ctx = CallContext::new(BOB, "query_databricks");
    let bob = g.query(&bob_ctx, &request(ORDERS)).await.unwrap();

    assert_eq!(
        column(&alice, "order_id"),
        [&json!(1), &json!(2), &json!(5)]
    );
    assert!(column(&alice, "region").iter().all(|r| **r == json!("EU")));
    assert!(
        column(&alice, "customer_email")
            .iter()
            .all(|e| **e == json!("***"))
    );
    assert_eq!(bob.row_count, 6);
    assert_eq!(
        column(&bob, "customer_email")[0],
        &json!("anna.schmidt@example.de")
    );
    assert_eq!(column(&bob, "amount")[0], &json!("120.50"));
    let amount = bob.columns.iter().find(|c| c.name == "amount").unwrap();
    assert_eq!(amount.column_type, ColumnType::Decimal);
    assert_eq!(amount.native_type, "DECIMAL(10,2)");
    assert!(!alice.truncated && !bob.truncated);

    // Audit facts name each user's own vended group and statement.
    let (fa, fb) = (alice_ctx.facts(), bob_ctx.facts());
    assert_ne!(fa.vended_role, fb.vended_role);
    assert_eq!(
        fa.statement_id.as_deref(),
        Some(alice.statement_id.as_str())
    );
    assert!(
        fa.upstream_requests >= 3,
        "vend + token + statement: {fa:?}"
    );

    // Non-text masked columns come back NULL; ungranted tables are not found.
    let salaries = run(&g, ALICE, "SELECT full_name, salary FROM main.hr.employees")
        .await
        .unwrap();
    assert!(column(&salaries, "salary").iter().all(|s| s.is_null()));
    let err = run(&g, CAROL, "SELECT * FROM main.hr.employees")
        .await
        .unwrap_err();
    match &err {
        QueryError::Statement {
            platform,
            sql_state,
            message,
            statement_id,
            ..
        } => {
            assert_eq!(*platform, Platform::Databricks);
            assert_eq!(sql_state.as_deref(), Some("42P01"));
            assert!(message.contains("TABLE_OR_VIEW_NOT_FOUND"), "{message}");
            assert!(statement_id.is_some());
        }
        other => panic!("unexpected {other:?}"),
    }

    // Each executed statement ran as the group vended to its caller.
    let mut matched = 0;
    for s in sandbox.state.executed() {
        let expected = if s.statement_id == alice.statement_id {
            ALICE
        } else if s.statement_id == bob.statement_id {
            BOB
        } else {
            continue;
        };
        assert_eq!(s.user, expected);
        matched += 1;
    }
    assert_eq!(matched, 2, "both answers name a statement the sandbox ran");
}

#[tokio::test]
async fn token_is_reused_while_valid_and_renewed_after_expiry() {
    let (sandbox, g) = demo().await;
    let state = &sandbox.state;
    run(&g, ALICE, ORDERS).await.unwrap();
    run(&g, ALICE, ORDERS).await.unwrap();
    assert_eq!(state.counter(Counter::VendsCreated), 1);
    assert_eq!(state.counter(Counter::OAuthTokensIssued), 1);

    // Every token issued so far expires: the next call is rejected once, re-vends, retries.
    state.expire_credentials();
    let rs = run(&g, ALICE, ORDERS).await.unwrap();
    assert_eq!(rs.row_count, 3);
    assert_eq!(state.counter(Counter::VendsCreated), 2);
    assert_eq!(state.counter(Counter::OAuthTokensIssued), 2);

    // The vended groups themselves expire.
    state.engine.expire_all_roles();
    let rs = run(&g, ALICE, ORDERS).await.unwrap();
    assert_eq!(rs.row_count, 3);
    assert_eq!(state.counter(Counter::VendsCreated), 3);
    assert_eq!(state.counter(Counter::OAuthTokensIssued), 3);

    run(&g, ALICE, ORDERS).await.unwrap();
    assert_eq!(
        state.counter(Counter::OAuthTokensIssued),
        3,
        "the renewed token is reused"
    );
    assert_all_ran_as(&sandbox, ALICE);
}

#[tokio::test]
async fn hundred_concurrent_cold_calls_make_one_vend_and_one_token() {
    let (sandbox, g) = demo().await;
    let calls = (0..100).map(|_| {
        let g = g.clone();
        tokio::spawn(async move { run(&g, BOB, "SELECT order_id FROM main.sales.orders").await })
    });
    for call in futures::future::join_all(calls).await {
        assert_eq!(call.unwrap().unwrap().row_count, 6);
    }
    assert_eq!(sandbox.state.counter(Counter::VendsCreated), 1);
    assert_eq!(sandbox.state.counter(Counter::OAuthTokensIssued), 1);
    assert_eq!(sandbox.state.count(Endpoint::DatabricksSubmit), 100);
    assert_all_ran_as(&sandbox, BOB);
}

#[tokio::test]
async fn concurrent_users_each_run_as_their_own_group() {
    let (sandbox, g) = demo().await;
    let calls = (0..30).map(|i| {
        let g = g.clone();
        let user = [ALICE, BOB, CAROL][i % 3];
        tokio::spawn(async move {
            let rs = run(&g, user, "SELECT order_id FROM main.sales.orders")
                .await
                .unwrap();
            (user, rs)
        })
    });
    let mut by_statement = std::collections::HashMap::new();
    for call in futures::future::join_all(calls).await {
        let (user, rs) = call.unwrap();
        assert_eq!(rs.row_count, if user == ALICE { 3 } else { 6 }, "{user}");
        by_statement.insert(rs.statement_id.clone(), user);
    }
    let executed = sandbox.state.executed();
    assert_eq!(executed.len(), 30);
    for s in executed {
        assert_eq!(Some(&s.user.as_str()), by_statement.get(&s.statement_id));
    }
    assert_eq!(sandbox.state.counter(Counter::VendsCreated), 3);
}

fn big_table_options(rows: usize, chunk_rows: usize) -> SandboxOptions {
    let mut fixture =
        Fixture::demo().with_generated_table(Platform::Databricks, "main.bench.events", rows);
    for user in &mut fixture.users {
        user.grants.push(GrantSpec {
            table: "main.bench.events".into(),
            row_filter: (user.id == ALICE).then(|| "region = 'EU'".into()),
            masked_columns: vec![],
        });
    }
    SandboxOptions {
        fixture,
        settings: SandboxSettings {
            databricks_chunk_rows: chunk_rows,
            ..SandboxSettings::default()
        },
    }
}

#[tokio::test]
async fn chunked_results_assemble_in_order_and_stop_at_the_limit() {
    let (sandbox, g) = start(big_table_options(1000, 10)).await;
    let sql = "SELECT id, region, amount, created FROM main.bench.events ORDER BY id";

    let mut all = request(sql);
    all.max_rows = 5000;
    let rs = g.query(&CallContext::new(BOB, "t"), &all).await.unwrap();
    assert_eq!(rs.row_count, 1000);
    assert!(!rs.truncated);
    assert_eq!(rs.total_row_count, Some(1000));
    let ids: Vec<i64> = column(&rs, "id")
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    assert_eq!(ids, (1..=1000).collect::<Vec<_>>());
    assert_eq!(
        sandbox.state.count(Endpoint::DatabricksChunk),
        99,
        "chunks 1..=99 fetched"
    );
    let created = rs.columns.iter().find(|c| c.name == "created").unwrap();
    assert_eq!(created.column_type, ColumnType::Timestamp);
    assert_eq!(column(&rs, "created")[0], &json!("2024-01-15T12:30:00"));

    let mut limited = request(sql);
    limited.max_rows = 20;
    let rs = g
        .query(&CallContext::new(BOB, "t"), &limited)
        .await
        .unwrap();
    assert_eq!(rs.row_count, 20);
    assert!(rs.truncated);
    let ids: Vec<i64> = column(&rs, "id")
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    assert_eq!(ids, (1..=20).collect::<Vec<_>>());
    assert_eq!(
        sandbox.state.count(Endpoint::DatabricksChunk),
        99 + 1,
        "20 rows = chunks 0 and 1; chunk 2 only proves more rows exist and is not fetched"
    );

    // A byte budget cuts the result too.
    let mut small = request(sql);
    small.max_bytes = 400;
    let rs = g.query(&CallContext::new(BOB, "t"), &small).await.unwrap();
    assert!(rs.truncated);
    assert!(rs.row_count > 0 && rs.row_count < 1000, "{}", rs.row_count);
    assert_all_ran_as(&sandbox, BOB);
}

#[derive(Default)]
struct Progress(Mutex<Vec<(u32, String)>>);

impl ProgressSink for Progress {
    fn progress(&self, step: u32, message: &str) {
        self.0.lock().unwrap().push((step, message.to_string()));
    }
}

#[tokio::test]
async fn pending_statement_is_polled_with_progress() {
    let (sandbox, g) = demo().await;
    sandbox
        .faults()
        .add(Endpoint::DatabricksSubmit, Fault::Pending { polls: 3 });
    let progress = Arc::new(Progress::default());
    let mut ctx = CallContext::new(BOB, "query_databricks");
    ctx.progress = Some(progress.clone());
    let rs = g.query(&ctx, &request(ORDERS)).await.unwrap();
    assert_eq!(rs.row_count, 6);
    let seen = progress.0.lock().unwrap().clone();
    assert!(seen.len() >= 3, "{seen:?}");
    assert!(
        seen.windows(2).all(|w| w[0].0 < w[1].0),
        "steps count up: {seen:?}"
    );
    assert!(seen[0].1.contains(&rs.statement_id), "{seen:?}");
    assert!(sandbox.state.count(Endpoint::DatabricksStatus) >= 3);
}

#[tokio::test]
async fn cancelling_the_call_cancels_the_statement() {
    let (sandbox, g) = demo().await;
    sandbox.faults().add(
        Endpoint::DatabricksSubmit,
        Fault::Pending { polls: 100_000 },
    );
    let mut ctx = CallContext::new(BOB, "query_databricks");
    ctx.progress = Some(Arc::new(CancelOnFirst(ctx.cancel.clone())));
    let err = g.query(&ctx, &request(ORDERS)).await.unwrap_err();
    match err {
        QueryError::Cancelled {
            platform,
            statement_id,
            cancel_confirmed,
        } => {
            assert_eq!(platform, Platform::Databricks);
            assert!(statement_id.is_some());
            assert_eq!(statement_id, ctx.facts().statement_id);
            assert!(cancel_confirmed, "Databricks acknowledged the cancel");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(sandbox.state.counter(Counter::StatementsCancelled), 1);
    assert_eq!(sandbox.state.count(Endpoint::DatabricksCancel), 1);
}

/// Cancels its call at the first progress report.
struct CancelOnFirst(tokio_util::sync::CancellationToken);

impl ProgressSink for CancelOnFirst {
    fn progress(&self, _step: u32, _message: &str) {
        self.0.cancel();
    }
}

#[tokio::test]
async fn a_caller_cancelled_while_its_group_is_vended_leaves_the_minted_token_for_the_next_call() {
    let (sandbox, g) = demo().await;
    // The vend is pending for two polls; the caller cancels at the first
    // "waiting for Immuta" report. The vend and token are shared by every
    // caller of the user, so they are finished without that caller.
    sandbox
        .faults()
        .add(Endpoint::ImmutaVend, Fault::Pending { polls: 2 });
    let mut ctx = CallContext::new(BOB, "query_databricks");
    ctx.progress = Some(Arc::new(CancelOnFirst(ctx.cancel.clone())));
    let outcome = g.query(&ctx, &request(ORDERS)).await;
    assert!(ctx.cancel.is_cancelled());
    assert!(
        matches!(outcome, Err(QueryError::Cancelled { .. })),
        "the cancelled call says so: {outcome:?}"
    );
    assert_eq!(sandbox.state.counter(Counter::VendsCreated), 1);
    assert_eq!(
        sandbox.state.counter(Counter::OAuthTokensIssued),
        1,
        "the mint finished"
    );
    run(&g, BOB, ORDERS).await.expect("the next call");
    assert_eq!(
        sandbox.state.counter(Counter::VendsCreated),
        1,
        "the credential was kept"
    );
    assert_eq!(sandbox.state.counter(Counter::OAuthTokensIssued), 1);
    assert_all_ran_as(&sandbox, BOB);
}

#[tokio::test]
async fn statement_timeout_cancels_the_statement() {
    let sandbox = Sandbox::start(SandboxOptions::default()).await.unwrap();
    let g =
        governed_from(&sandbox.client_config()).with_statement_timeout(Duration::from_millis(150));
    sandbox.faults().add(
        Endpoint::DatabricksSubmit,
        Fault::Pending { polls: 100_000 },
    );
    let err = run(&g, BOB, ORDERS).await.unwrap_err();
    assert!(
        matches!(
            err,
            QueryError::Timeout {
                statement_id: Some(_),
                ..
            }
        ),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.starts_with("the Databricks statement did not finish within")
            && text.contains("and was cancelled"),
        "{text}"
    );
    assert_eq!(sandbox.state.counter(Counter::StatementsCancelled), 1);
}

#[tokio::test]
async fn rate_limits_server_errors_and_resets_are_survived() {
    let (sandbox, g) = demo().await;
    let faults = sandbox.faults();
    faults.add(
        Endpoint::DatabricksToken,
        Fault::Status {
            status: 503,
            retry_after: None,
            times: 1,
        },
    );
    faults.add(
        Endpoint::DatabricksSubmit,
        Fault::Status {
            status: 429,
            retry_after: Some(1),
            times: 2,
        },
    );
    let rs = run(&g, BOB, ORDERS).await.unwrap();
    assert_eq!(rs.row_count, 6);
    assert_eq!(sandbox.state.count(Endpoint::DatabricksToken), 2);
    assert_eq!(sandbox.state.count(Endpoint::DatabricksSubmit), 3);

    // A submit whose answer broke off may have run: it is not sent again (see
    // `a_lost_submit_answer_runs_the_statement_once_and_says_so`), so the
    // caller gets a clear error; the next call works.
    faults.add(
        Endpoint::DatabricksSubmit,
        Fault::ConnectionReset { times: 1 },
    );
    let err = run(&g, BOB, ORDERS).await.unwrap_err().to_string();
    assert!(err.contains("not repeated"), "{err}");
    assert_eq!(run(&g, BOB, ORDERS).await.unwrap().row_count, 6);

    faults.add(Endpoint::DatabricksSubmit, Fault::Pending { polls: 2 });
    faults.add(
        Endpoint::DatabricksStatus,
        Fault::Status {
            status: 500,
            retry_after: None,
            times: 1,
        },
    );
    assert_eq!(run(&g, BOB, ORDERS).await.unwrap().row_count, 6);

    // Chunk fetches survive a reset and a 503 too.
    let (sandbox2, g2) = start(big_table_options(30, 10)).await;
    sandbox2.faults().add(
        Endpoint::DatabricksChunk,
        Fault::ConnectionReset { times: 1 },
    );
    let rs = run(&g2, BOB, "SELECT id FROM main.bench.events ORDER BY id")
        .await
        .unwrap();
    let ids: Vec<i64> = column(&rs, "id")
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    assert_eq!(ids, (1..=30).collect::<Vec<_>>());
    sandbox2.faults().add(
        Endpoint::DatabricksChunk,
        Fault::Status {
            status: 503,
            retry_after: Some(0),
            times: 1,
        },
    );
    assert_eq!(
        run(&g2, BOB, "SELECT id FROM main.bench.events")
            .await
            .unwrap()
            .row_count,
        30
    );
    assert_eq!(
        sandbox2.state.count(Endpoint::DatabricksChunk),
        2 + 1 + 2 + 1
    );
    assert_all_ran_as(&sandbox, BOB);
    assert_all_ran_as(&sandbox2, BOB);
}

#[tokio::test]
async fn persistent_failures_are_reported_clearly_and_no_sql_runs_without_a_token() {
    let (sandbox, g) = demo().await;
    sandbox.faults().add(
        Endpoint::DatabricksToken,
        Fault::Status {
            status: 503,
            retry_after: None,
            times: 100,
        },
    );
    let err = run(&g, BOB, ORDERS).await.unwrap_err();
    assert!(
        matches!(
            err,
            QueryError::Unavailable {
                service: "Databricks OAuth",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("503"), "{err}");
    assert_eq!(sandbox.state.count(Endpoint::DatabricksSubmit), 0);
    sandbox.faults().clear();

    sandbox.faults().add(
        Endpoint::DatabricksSubmit,
        Fault::Status {
            status: 500,
            retry_after: None,
            times: 100,
        },
    );
    let err = run(&g, BOB, ORDERS).await.unwrap_err();
    assert!(
        matches!(
            err,
            QueryError::Unavailable {
                service: "Databricks",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("HTTP 500"), "{err}");
    assert!(sandbox.state.executed().is_empty());
}

#[tokio::test]
async fn wrong_client_secret_fails_closed() {
    let sandbox = Sandbox::start(SandboxOptions::default()).await.unwrap();
    let mut cfg = sandbox.client_config();
    cfg.databricks.as_mut().unwrap().client_secret =
        immuta_mcp::config::SecretRef::Value("not-the-secret".into());
    let g = governed_from(&cfg);
    let err = run(&g, BOB, ORDERS).await.unwrap_err();
    match &err {
        QueryError::Credential(message) => {
            assert!(message.contains("client_secret"), "{message}");
            assert!(!message.contains("not-the-secret"), "{message}");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(sandbox.state.count(Endpoint::DatabricksSubmit), 0);
    assert_eq!(sandbox.state.counter(Counter::OAuthTokensIssued), 0);
}

#[tokio::test]
async fn unknown_user_gets_a_vend_error_and_no_token() {
    let (sandbox, g) = demo().await;
    let err = run(&g, "mallory@example.com", ORDERS).await.unwrap_err();
    assert!(matches!(err, QueryError::Vend(_)), "{err:?}");
    assert_eq!(sandbox.state.counter(Counter::OAuthTokensIssued), 0);
    assert_eq!(sandbox.state.count(Endpoint::DatabricksSubmit), 0);
}

#[tokio::test]
async fn check_probes_the_workspace_without_minting_a_token() {
    let (sandbox, g) = demo().await;
    let report = g.check().await.unwrap();
    assert!(report.contains(&sandbox.databricks_url), "{report}");
    assert_eq!(sandbox.state.counter(Counter::OAuthTokensIssued), 0);
    assert_eq!(sandbox.state.count(Endpoint::DatabricksSubmit), 0);
}

/// An Immuta stand-in whose vend answer has a Snowflake role but no Databricks group.
async fn immuta_without_databricks() -> String {
    use axum::routing::post;
    let vend = || async {
        axum::Json(json!({"id": "v-1", "status": "ready", "userId": BOB,
            "expiresAt": "2999-01-01T00:00:00Z",
            "roles": {"Snowflake": {"roleName": "IMMUTA_OBO_1", "connectionKey": "x.snowflakecomputing.com"}}}))
    };
    let app = axum::Router::new().route("/agent/obo/roles", post(vend));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

#[tokio::test]
async fn vend_without_a_databricks_group_fails_before_any_token() {
    let sandbox = Sandbox::start(SandboxOptions::default()).await.unwrap();
    let mut cfg = sandbox.client_config();
    cfg.immuta.as_mut().unwrap().url = immuta_without_databricks().await;
    let g = governed_from(&cfg);
    let err = run(&g, BOB, ORDERS).await.unwrap_err();
    match &err {
        QueryError::Vend(message) => assert!(message.contains("no Databricks group"), "{message}"),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(sandbox.state.count(Endpoint::DatabricksToken), 0);
    assert_eq!(sandbox.state.count(Endpoint::DatabricksSubmit), 0);
}

/// Expires every sandbox credential the first time progress is reported.
struct ExpireOnFirstPoll(
    Arc<immuta_mcp::sandbox::state::SandboxState>,
    std::sync::Once,
);

impl ProgressSink for ExpireOnFirstPoll {
    fn progress(&self, _step: u32, _message: &str) {
        self.1.call_once(|| self.0.expire_credentials());
    }
}

#[tokio::test]
async fn token_expiring_mid_statement_is_reported_not_rerun_and_the_next_call_revends() {
    let (sandbox, g) = demo().await;
    sandbox
        .faults()
        .add(Endpoint::DatabricksSubmit, Fault::Pending { polls: 3 });
    let mut ctx = CallContext::new(BOB, "query_databricks");
    ctx.progress = Some(Arc::new(ExpireOnFirstPoll(
        sandbox.state.clone(),
        std::sync::Once::new(),
    )));
    let err = g.query(&ctx, &request(ORDERS)).await.unwrap_err();
    let statement_id = ctx.facts().statement_id.unwrap();
    match &err {
        QueryError::Credential(message) => {
            assert!(message.contains(&statement_id), "{message}");
            assert!(message.contains("UNAUTHENTICATED"), "{message}");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(
        sandbox.state.count(Endpoint::DatabricksSubmit),
        1,
        "not re-run"
    );

    let rs = run(&g, BOB, ORDERS).await.unwrap();
    assert_eq!(rs.row_count, 6);
    assert_eq!(sandbox.state.counter(Counter::VendsCreated), 2);
    assert_eq!(sandbox.state.counter(Counter::OAuthTokensIssued), 2);
}

#[tokio::test]
async fn a_lost_submit_answer_runs_the_statement_once_and_says_so() {
    let (sandbox, g) = demo().await;
    // Warm the token, so the only submit of the next call is the faulted one.
    assert_eq!(run(&g, BOB, ORDERS).await.unwrap().row_count, 6);
    let before = sandbox.state.counter(Counter::StatementsExecuted);
    let submits = sandbox.state.count(Endpoint::DatabricksSubmit);
    sandbox
        .faults()
        .add(Endpoint::DatabricksSubmit, Fault::LostAnswer { times: 1 });
    let err = run(&g, BOB, ORDERS).await.unwrap_err().to_string();
    assert!(err.contains("Databricks"), "{err}");
    assert!(err.contains("after the request was sent"), "{err}");
    assert!(err.contains("not repeated"), "{err}");
    assert_eq!(
        sandbox.state.count(Endpoint::DatabricksSubmit),
        submits + 1,
        "the submit was sent exactly once"
    );
    // The statement reached the warehouse and ran exactly once.
    let mut waited = 0;
    while sandbox.state.counter(Counter::StatementsExecuted) == before && waited < 1500 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        waited += 1;
    }
    assert_eq!(
        sandbox.state.counter(Counter::StatementsExecuted),
        before + 1
    );
    // 429 and 503 say the submit was not processed: those are still retried.
    sandbox.faults().add(
        Endpoint::DatabricksSubmit,
        Fault::Status {
            status: 503,
            retry_after: Some(0),
            times: 1,
        },
    );
    assert_eq!(run(&g, BOB, ORDERS).await.unwrap().row_count, 6);
    // A 500 may have run it: not repeated.
    sandbox.faults().add(
        Endpoint::DatabricksSubmit,
        Fault::Status {
            status: 500,
            retry_after: None,
            times: 1,
        },
    );
    let err = run(&g, BOB, ORDERS).await.unwrap_err().to_string();
    assert!(
        err.contains("HTTP 500") && err.contains("not repeated"),
        "{err}"
    );
}
