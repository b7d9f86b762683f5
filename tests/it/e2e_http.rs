//! Rule: over HTTP the user comes from the bearer token per request; bad tokens get 401, and no
//! secret reaches a log or a result.
//!
//! End to end over streamable HTTP, in-process: the sandbox, a local OAuth
//! issuer (JWKS on loopback) and `app::start_http`, driven by rmcp's
//! streamable HTTP client with bearer tokens, plus raw `reqwest` requests
//! where the HTTP status and headers matter.
//!
//! Shows: two tokens on one server get different rows and masks; missing,
//! wrong-audience, expired, `alg: none` and key-confusion tokens get 401 with
//! `WWW-Authenticate: Bearer resource_metadata=...` and the client cannot
//! initialize; write statements are refused with no upstream request;
//! cancelling a call cancels the Snowflake / Databricks statement; progress
//! notifications arrive while a statement runs; the tool list, `whoami`,
//! `list_tables` per user, `describe_table`; protocol errors for an unknown
//! tool and wrong argument types; a foreign `Origin` gets 403; and no secret
//! appears in any TRACE log line or tool result of a whole session.
//!
//! (A call cancelled during PAT minting sends no SQL: regression test below.)

use crate::support::*;
use immuta_mcp::sandbox::{Counter, Endpoint, Fault};
use rmcp::model::ErrorCode;
use serde_json::{Value, json};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tracing::Level;

const SF_ORDERS: &str = "SELECT ORDER_ID, REGION, EMAIL FROM SALES.PUBLIC.ORDERS ORDER BY ORDER_ID";
const DB_EMPLOYEES: &str =
    "SELECT employee_id, region, email, salary FROM main.hr.employees ORDER BY employee_id";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tokens_on_one_server_see_different_rows_and_masks() {
    let env = HttpEnv::start().await;
    let alice = env.connect(ALICE).await;
    let bob = env.connect(BOB).await;

    let (a, b) = tokio::join!(
        call_ok(&alice, "query_snowflake", json!({"sql": SF_ORDERS})),
        call_ok(&bob, "query_snowflake", json!({"sql": SF_ORDERS}))
    );
    let (a, b) = (Rows::of(&a), Rows::of(&b));
    assert_eq!(a.strings("ORDER_ID"), ["1001", "1002", "1005", "1007"]);
    assert!(a.strings("EMAIL").iter().all(|e| e == "***"));
    assert_eq!(b.rows.len(), 8);
    assert!(b.strings("EMAIL").iter().all(|e| e.contains('@')));

    let (a, b) = tokio::join!(
        call_ok(&alice, "query_databricks", json!({"sql": DB_EMPLOYEES})),
        call_ok(&bob, "query_databricks", json!({"sql": DB_EMPLOYEES}))
    );
    let (a, b) = (Rows::of(&a), Rows::of(&b));
    assert_eq!(
        a.strings("employee_id"),
        ["1", "3", "5"],
        "alice: EU employees"
    );
    assert!(
        a.strings("email").iter().all(|e| e == "***"),
        "alice: e-mails masked"
    );
    assert!(
        a.column("salary").iter().all(Value::is_null),
        "alice: salaries masked (NULL for a number)"
    );
    assert_eq!(b.rows.len(), 5);
    assert!(b.column("salary").iter().all(|s| !s.is_null()));

    // The sandbox ran each statement under the asking user's own vended role.
    let executed = env.sandbox.state.executed();
    for (sql, platform) in [
        (SF_ORDERS, immuta_mcp::result::Platform::Snowflake),
        (DB_EMPLOYEES, immuta_mcp::result::Platform::Databricks),
    ] {
        let mut users: Vec<&str> = executed
            .iter()
            .filter(|s| s.sql == sql && s.platform == platform)
            .map(|s| s.user.as_str())
            .collect();
        users.sort();
        assert_eq!(users, [ALICE, BOB], "{sql}");
        let roles: std::collections::HashSet<&str> = executed
            .iter()
            .filter(|s| s.sql == sql)
            .map(|s| s.role.as_str())
            .collect();
        assert_eq!(roles.len(), 2, "two different roles for {sql}");
    }
    close(alice).await;
    close(bob).await;
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacceptable_tokens_get_401_with_resource_metadata_and_no_session() {
    let env = HttpEnv::start().await;
    let issuer = &env.issuer.issuer;
    let claims = |aud: &str, exp: u64| {
        json!({
            "iss": issuer.issuer_url(), "sub": ALICE, "email": ALICE,
            "aud": aud, "iat": now() - 60, "nbf": now() - 60, "exp": exp,
        })
    };
    let metadata_url = format!("{}/.well-known/oauth-protected-resource/mcp", env.base());
    let cases: Vec<(&str, Option<String>)> = vec![
        ("no token", None),
        (
            "wrong audience",
            Some(issuer.mint_claims(claims("http://127.0.0.1:1/other", now() + 300))),
        ),
        (
            "expired",
            Some(issuer.mint_claims(claims(env.url(), now() - 600))),
        ),
        (
            "alg none",
            Some(issuer.unsigned_token(&claims(env.url(), now() + 300))),
        ),
        (
            "HS256 keyed with the public key",
            Some(issuer.hs256_with_public_key(&claims(env.url(), now() + 300))),
        ),
    ];
    for (name, token) in &cases {
        // Raw HTTP: 401 with an RFC 9728 challenge.
        let mut request = env.raw_initialize();
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        let response = bounded(name, request.send()).await.expect("HTTP answer");
        assert_eq!(response.status(), 401, "{name}");
        let challenge = response
            .headers()
            .get("www-authenticate")
            .unwrap_or_else(|| panic!("{name}: 401 without WWW-Authenticate"))
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            challenge.starts_with("Bearer ")
                && challenge.contains(&format!("resource_metadata=\"{metadata_url}\"")),
            "{name}: {challenge}"
        );
        if token.is_some() {
            assert!(
                challenge.contains("error=\"invalid_token\""),
                "{name}: {challenge}"
            );
        }

        // rmcp's client cannot initialize, and sees the same challenge.
        match env.try_connect(token.as_deref(), &[]).await {
            Ok(client) => {
                close(client).await;
                panic!("{name}: the MCP client initialized");
            }
            Err(e) => {
                let seen = e.auth_challenge().unwrap_or_default().to_string();
                assert!(
                    seen.contains("resource_metadata="),
                    "{name}: {e} / {seen:?}"
                );
            }
        }
    }
    // The challenge points at a real metadata document naming this resource and issuer.
    let doc: Value = bounded("metadata", env.http.get(&metadata_url).send())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["resource"], env.url());
    assert_eq!(doc["authorization_servers"], json!([issuer.issuer_url()]));
    assert_eq!(
        env.upstream_requests(),
        0,
        "no refused request reached a platform"
    );

    // Control: the same raw request with a good token is accepted.
    let response = bounded(
        "good token",
        env.raw_initialize().bearer_auth(env.token(ALICE)).send(),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 200);
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_statements_are_refused_with_no_upstream_request() {
    let env = HttpEnv::start().await;
    let bob = env.connect(BOB).await;

    // A read moves the counters (so "unchanged" below means something).
    call_ok(&bob, "query_snowflake", json!({"sql": "SELECT 1"})).await;
    call_ok(&bob, "query_databricks", json!({"sql": "SELECT 1"})).await;
    assert!(env.upstream_requests() > 0);
    let before = (
        env.upstream_requests(),
        env.sandbox.state.executed().len(),
        env.counter(Counter::VendsCreated),
    );
    assert_eq!(
        before.1, 4,
        "two reads, each after its credential's identity probe"
    );

    let writes = [
        (
            "query_snowflake",
            "INSERT INTO SALES.PUBLIC.ORDERS (ORDER_ID) VALUES (9)",
            true,
        ),
        ("query_snowflake", "DROP TABLE SALES.PUBLIC.ORDERS", true),
        (
            "query_snowflake",
            "UPDATE SALES.PUBLIC.ORDERS SET STATUS = 'X'",
            true,
        ),
        ("query_snowflake", "SELECT 1; DROP TABLE t", false),
        (
            "query_databricks",
            "INSERT INTO main.sales.orders VALUES (7)",
            true,
        ),
        ("query_databricks", "DROP TABLE main.sales.orders", true),
        ("query_databricks", "SELECT 1; DROP TABLE t", false),
    ];
    for (tool, sql, says_read_only) in writes {
        let message = call_err(&bob, tool, json!({"sql": sql})).await;
        assert!(
            message.contains("refused by the SQL guard"),
            "{sql}: {message}"
        );
        if says_read_only {
            assert!(message.contains("read-only"), "{sql}: {message}");
        } else {
            assert!(message.contains("one statement"), "{sql}: {message}");
        }
    }
    let after = (
        env.upstream_requests(),
        env.sandbox.state.executed().len(),
        env.counter(Counter::VendsCreated),
    );
    assert_eq!(
        after, before,
        "(upstream requests, executed statements, vends)"
    );
    close(bob).await;
    env.shutdown().await;
}

/// Start a long statement, cancel the MCP request, and see the platform statement cancelled.
async fn cancel_reaches_the_platform(
    tool: &str,
    sql: &str,
    submit: Endpoint,
    status: Endpoint,
    cancel: Endpoint,
) {
    let env = HttpEnv::start().await;
    let alice = env.connect(ALICE).await;
    // Warm up: the Snowflake PAT is minted by a statement of its own; with the
    // credential cached, the fault below holds the user's statement.
    call_ok(&alice, tool, json!({"sql": "SELECT 1"})).await;
    let submits = env.sandbox.state.count(submit);
    let statuses = env.sandbox.state.count(status);
    env.sandbox
        .faults()
        .add(submit, Fault::Pending { polls: 1_000_000 });

    let handle = start_call(&alice, tool, json!({"sql": sql})).await;
    // Polling shows the server holds the statement handle and the statement is running.
    eventually("the statement is polled", || {
        env.sandbox.state.count(status) > statuses
    })
    .await;
    assert_eq!(
        env.counter(Counter::StatementsCancelled),
        0,
        "nothing cancelled yet"
    );
    assert_eq!(env.sandbox.state.count(cancel), 0);

    bounded("cancel", handle.cancel(Some("user pressed stop".into())))
        .await
        .expect("cancellation sent");
    let cancelled = tokio::time::timeout(STEP, async {
        while env.counter(Counter::StatementsCancelled) == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(
        cancelled.is_ok(),
        "{tool}: the platform statement was not cancelled: {} cancel request(s), {} status poll(s)",
        env.sandbox.state.count(cancel),
        env.sandbox.state.count(status)
    );
    assert_eq!(env.counter(Counter::StatementsCancelled), 1);
    assert_eq!(env.sandbox.state.count(cancel), 1, "one cancel request");
    assert_eq!(
        env.sandbox.state.count(submit),
        submits + 1,
        "the statement was not resubmitted"
    );

    // The session is still usable.
    let rows = Rows::of(&call_ok(&alice, tool, json!({"sql": "SELECT 1 AS one"})).await);
    assert_eq!(rows.strings("one"), ["1"]);
    close(alice).await;
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_call_cancels_the_snowflake_statement() {
    cancel_reaches_the_platform(
        "query_snowflake",
        SF_ORDERS,
        Endpoint::SnowflakeSubmit,
        Endpoint::SnowflakeStatus,
        Endpoint::SnowflakeCancel,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_call_cancels_the_databricks_statement() {
    cancel_reaches_the_platform(
        "query_databricks",
        DB_EMPLOYEES,
        Endpoint::DatabricksSubmit,
        Endpoint::DatabricksStatus,
        Endpoint::DatabricksCancel,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_notifications_arrive_while_a_statement_runs() {
    let env = HttpEnv::start().await;
    let bob = env.connect(BOB).await;
    // Warm up so the held statement is the user's own, not the PAT mint's.
    call_ok(&bob, "query_snowflake", json!({"sql": "SELECT 1"})).await;
    for (tool, sql, submit, platform) in [
        (
            "query_snowflake",
            SF_ORDERS,
            Endpoint::SnowflakeSubmit,
            "Snowflake",
        ),
        (
            "query_databricks",
            DB_EMPLOYEES,
            Endpoint::DatabricksSubmit,
            "Databricks",
        ),
    ] {
        env.sandbox
            .faults()
            .add(submit, Fault::Pending { polls: 2 });
        let handle = start_call(&bob, tool, json!({"sql": sql})).await;
        let token = handle.progress_token.clone();
        let response = bounded(tool, handle.await_response())
            .await
            .unwrap_or_else(|e| panic!("{tool}: {e}"));
        let rmcp::model::ServerResult::CallToolResult(result) = response else {
            panic!("{tool}: unexpected answer {response:?}");
        };
        assert_ne!(result.is_error, Some(true), "{}", text_of(&result));
        assert!(!Rows::of(&result).rows.is_empty());

        // The statement was held for two polls: at least two "running" notifications.
        // (The client may hand notifications to its handler after the response.)
        eventually(&format!("{tool}: progress notifications"), || {
            bob.service().progress_for(&token).len() >= 2
        })
        .await;
        let progress = bob.service().progress_for(&token);
        let values: Vec<f64> = progress.iter().map(|p| p.progress).collect();
        assert!(
            values.windows(2).all(|w| w[0] < w[1]),
            "{tool}: progress increases: {values:?}"
        );
        let message = progress[0].message.clone().unwrap_or_default();
        assert!(message.contains(platform), "{tool}: {message}");
    }
    close(bob).await;
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tools_whoami_catalog_and_protocol_errors_over_http() {
    let env = HttpEnv::start().await;
    let alice = env.connect(ALICE).await;
    let bob = env.connect(BOB).await;
    let carol = env.connect(CAROL).await;

    let tools = bounded("tools/list", alice.list_all_tools()).await.unwrap();
    let mut names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "describe_table",
            "fetch_more",
            "list_tables",
            "query_databricks",
            "query_snowflake",
            "whoami"
        ]
    );
    for t in &tools {
        assert!(t.output_schema.is_some(), "{} has an outputSchema", t.name);
        let ann = t.annotations.as_ref().expect("annotations");
        assert_eq!(ann.read_only_hint, Some(true), "{}", t.name);
        assert!(ann.open_world_hint.is_some(), "{}", t.name);
    }

    // whoami reports the token's user, per session.
    for (client, user) in [(&alice, ALICE), (&bob, BOB)] {
        let who = call_ok(client, "whoami", json!({})).await;
        let s = who.structured_content.clone().unwrap();
        assert_eq!(s["user"], user);
        assert_eq!(s["identity_source"], "http_bearer");
        assert_eq!(s["issuer"], env.issuer.issuer.issuer_url());
    }

    // list_tables: carol reads one table per platform, bob all of them.
    let listed = |r: &rmcp::model::CallToolResult, col: &str| {
        let mut v = Rows::of(r).strings(col);
        v.sort();
        v
    };
    let sf = json!({"platform": "snowflake"});
    let db = json!({"platform": "databricks"});
    assert_eq!(
        listed(&call_ok(&carol, "list_tables", sf.clone()).await, "name"),
        ["CUSTOMERS"]
    );
    assert_eq!(
        listed(&call_ok(&bob, "list_tables", sf).await, "name"),
        ["CUSTOMERS", "ORDERS"]
    );
    assert_eq!(
        listed(
            &call_ok(&carol, "list_tables", db.clone()).await,
            "table_name"
        ),
        ["orders"]
    );
    assert_eq!(
        listed(&call_ok(&bob, "list_tables", db).await, "table_name"),
        ["employees", "orders"]
    );

    // describe_table: the columns of a readable table; an unreadable one is a tool error.
    let described = call_ok(
        &bob,
        "describe_table",
        json!({"platform": "snowflake", "table": "SALES.PUBLIC.ORDERS"}),
    )
    .await;
    let columns = Rows::of(&described).strings("name");
    for c in ["ORDER_ID", "REGION", "EMAIL", "AMOUNT"] {
        assert!(columns.iter().any(|x| x == c), "{c} in {columns:?}");
    }
    let described = call_ok(
        &bob,
        "describe_table",
        json!({"platform": "databricks", "table": "main.hr.employees"}),
    )
    .await;
    assert!(
        Rows::of(&described)
            .strings("col_name")
            .contains(&"salary".to_string())
    );
    let refused = call_err(
        &carol,
        "describe_table",
        json!({"platform": "snowflake", "table": "SALES.PUBLIC.ORDERS"}),
    )
    .await;
    assert!(
        refused.contains("does not exist or not authorized") && refused.contains("ORDERS"),
        "carol is told the table is not hers to read: {refused}"
    );

    // Protocol errors.
    match call(&alice, "no_such_tool", json!({})).await {
        Err(rmcp::ServiceError::McpError(e)) => assert!(e.message.contains("no_such_tool")),
        other => panic!("unknown tool should be a protocol error, got {other:?}"),
    }
    for (tool, bad) in [
        ("query_databricks", json!({"sql": ["SELECT 1"]})),
        (
            "query_snowflake",
            json!({"sql": "SELECT 1", "max_rows": "ten"}),
        ),
        ("describe_table", json!({"platform": "snowflake"})),
        ("whoami", json!({"user": BOB})),
    ] {
        match call(&alice, tool, bad.clone()).await {
            Err(rmcp::ServiceError::McpError(e)) => {
                assert_eq!(e.code, ErrorCode::INVALID_PARAMS, "{tool} {bad}")
            }
            other => panic!("{tool} {bad} should be invalid params, got {other:?}"),
        }
    }
    for c in [alice, bob, carol] {
        close(c).await;
    }
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_origin_gets_403() {
    let env = HttpEnv::start().await;
    let token = env.token(ALICE);
    let response = bounded(
        "foreign origin",
        env.raw_initialize()
            .bearer_auth(&token)
            .header("origin", "https://evil.example")
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 403);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "forbidden_origin");

    // rmcp's client sending that Origin cannot initialize either.
    let refused = env
        .try_connect(Some(&token), &[("origin", "https://evil.example")])
        .await;
    let refusal = match refused {
        Ok(_) => panic!("a client from a foreign origin initialized"),
        Err(e) => format!("{e:?}"),
    };
    assert!(
        refusal.contains("403") || refusal.contains("Forbidden"),
        "refused for its Origin (HTTP 403), not another failure: {refusal}"
    );

    // Control: the server's own origin is fine.
    let response = bounded(
        "own origin",
        env.raw_initialize()
            .bearer_auth(&token)
            .header("origin", env.base())
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(env.upstream_requests(), 0);
    env.shutdown().await;
}

/// A whole HTTP session with TRACE logging into a buffer: no secret in any log line or result.
///
/// The capture holds every event of this test's runtime (its server, sandbox
/// and client), none of the tests running beside it (`support::logs`).
#[test]
fn no_secret_in_trace_logs_or_tool_results() {
    with_logs(Level::TRACE, Threads::Workers(2), |logs| async move {
        let env = HttpEnv::start().await;
        let token = env.token(ALICE);
        let alice = env
            .try_connect(Some(&token), &[])
            .await
            .expect("alice connects");
        let mut outputs = Vec::new();
        // Slow statements too, so the polling paths log.
        env.sandbox
            .faults()
            .add(Endpoint::SnowflakeSubmit, Fault::Pending { polls: 1 });
        env.sandbox
            .faults()
            .add(Endpoint::DatabricksSubmit, Fault::Pending { polls: 1 });
        let mut statement_ids = Vec::new();
        for (tool, arguments) in [
            ("query_snowflake", json!({"sql": SF_ORDERS})),
            ("query_databricks", json!({"sql": DB_EMPLOYEES})),
            (
                "query_snowflake",
                json!({"sql": "SELECT CURRENT_ROLE() AS r"}),
            ),
            ("list_tables", json!({"platform": "snowflake"})),
            (
                "describe_table",
                json!({"platform": "databricks", "table": "main.sales.orders"}),
            ),
            ("whoami", json!({})),
            (
                "query_databricks",
                json!({"sql": "SELECT * FROM main.secret.stuff"}),
            ),
            (
                "query_snowflake",
                json!({"sql": "DROP TABLE SALES.PUBLIC.ORDERS"}),
            ),
        ] {
            let r = call(&alice, tool, arguments).await.expect(tool);
            if let Some(id) = r
                .structured_content
                .as_ref()
                .and_then(|s| s["statement_id"].as_str())
            {
                statement_ids.push(id.to_string());
            }
            outputs.push(visible_output(&r));
        }
        // A cancelled statement as well.
        env.sandbox.faults().add(
            Endpoint::SnowflakeSubmit,
            Fault::Pending { polls: 1_000_000 },
        );
        let statuses = env.sandbox.state.count(Endpoint::SnowflakeStatus);
        let handle = start_call(&alice, "query_snowflake", json!({"sql": SF_ORDERS})).await;
        eventually("polled", || {
            env.sandbox.state.count(Endpoint::SnowflakeStatus) > statuses
        })
        .await;
        handle.cancel(None).await.expect("cancel sent");
        eventually("cancelled", || {
            env.counter(Counter::StatementsCancelled) == 1
        })
        .await;
        close(alice).await;

        // The sandbox's credentials, each line of its private key, every token it
        // issued, and the signature of alice's bearer token.
        let mut secrets = sandbox_secrets(&env.sandbox);
        assert!(
            secrets
                .iter()
                .any(|(name, _)| name.starts_with("line 5 of")),
            "the private key's body lines are looked for"
        );
        let token_signature = token.rsplit('.').next().unwrap().to_string();
        secrets.push(("end user's bearer token".to_string(), token_signature));
        env.shutdown().await;

        let log = logs.text();
        // The capture works: trace lines, this session's audit events and PAT minting are in it.
        assert!(log.contains(" TRACE "), "trace-level lines captured");
        assert!(statement_ids.len() >= 4, "{statement_ids:?}");
        for id in &statement_ids {
            assert!(
                log.lines()
                    .any(|l| l.contains("tool call") && l.contains(id.as_str())),
                "the audit line of statement {id} was captured"
            );
        }
        assert!(log.contains("minted Snowflake PAT"));
        assert!(outputs[0].contains("***"), "{}", outputs[0]);

        assert_no_secret("the TRACE log", &log, &secrets);
        for output in &outputs {
            assert_no_secret("a tool result", output, &secrets);
        }
    });
}

/// A call cancelled while its Snowflake PAT is being minted waits for the
/// shared mint but never submits the user's SQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_cancelled_during_pat_minting_runs_no_sql() {
    use immuta_mcp::query::{CallContext, QueryError, QueryRequest};
    let env = HttpEnv::start().await;
    let platforms = immuta_mcp::app::build_platforms(&env.config).expect("platforms");
    let snowflake = platforms.snowflake.clone().expect("snowflake path");
    // Hold the first Snowflake statement, which is the ALTER USER ... ADD PAT of the mint.
    env.sandbox
        .faults()
        .add(Endpoint::SnowflakeSubmit, Fault::Pending { polls: 3 });
    let ctx = CallContext::new(ALICE, "query_snowflake");
    let request = QueryRequest {
        sql: SF_ORDERS.into(),
        database: None,
        schema: None,
        warehouse: None,
        max_rows: 100,
        max_bytes: 1 << 20,
        parameters: Vec::new(),
    };
    let call_ctx = ctx.clone();
    let call = tokio::spawn(async move {
        use immuta_mcp::query::GovernedQuery;
        snowflake.query(&call_ctx, &request).await.map(|_| ())
    });
    eventually("the mint statement is polled", || {
        env.sandbox.state.count(Endpoint::SnowflakeStatus) >= 1
    })
    .await;
    ctx.cancel.cancel();
    let outcome = bounded("the cancelled call ends", call)
        .await
        .expect("joined");
    assert!(
        matches!(outcome, Err(QueryError::Cancelled { .. })),
        "{outcome:?}"
    );
    let ran: Vec<String> = env
        .sandbox
        .state
        .executed()
        .into_iter()
        .filter(|s| s.sql == SF_ORDERS)
        .map(|s| s.user)
        .collect();
    assert!(
        ran.is_empty(),
        "the cancelled call's SQL reached Snowflake and ran for {ran:?}"
    );
    // The held statement was the mint, and nothing else was submitted.
    let submitted: Vec<Value> = env
        .sandbox
        .state
        .seen(Endpoint::SnowflakeSubmit)
        .iter()
        .map(|r| r.json()["statement"].clone())
        .collect();
    assert!(!submitted.is_empty(), "the mint was submitted");
    assert!(
        submitted.iter().all(|s| s
            .as_str()
            .is_some_and(|s| s.contains("ADD PROGRAMMATIC ACCESS TOKEN"))),
        "only the PAT mint reached Snowflake: {submitted:?}"
    );
    env.shutdown().await;
}

#[test]
fn hex_run_finder_finds_runs() {
    assert_eq!(hex_run("abc 0123", 4), Some("0123".into()));
    assert_eq!(hex_run("xyz 012 g", 4), None);
    let token = "f0".repeat(32);
    assert_eq!(hex_run(&format!("token={token}!"), 64), Some(token));
}

/// Over MCP: a platform that ignores the on-behalf-of restriction (the
/// sandbox's `ignore_obo_restriction`) gets no user SQL; the tool error says
/// which identity the platform applied instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_platform_ignoring_the_vended_identity_gets_no_user_sql_over_mcp() {
    let options = immuta_mcp::sandbox::SandboxOptions {
        settings: immuta_mcp::sandbox::SandboxSettings {
            ignore_obo_restriction: true,
            ..Default::default()
        },
        ..Default::default()
    };
    let env = HttpEnv::start_with_options(options, |_| {}).await;
    let bob = env.connect(BOB).await;
    let sf = call_err(&bob, "query_snowflake", json!({"sql": SF_ORDERS})).await;
    assert!(
        sf.contains(immuta_mcp::sandbox::AGENT_SNOWFLAKE_ROLE) && sf.contains("no SQL was run"),
        "{sf}"
    );
    let db = call_err(&bob, "query_databricks", json!({"sql": DB_EMPLOYEES})).await;
    assert!(
        db.contains("not a member of the vended group") && db.contains("no SQL was run"),
        "{db}"
    );
    let ran: Vec<String> = env
        .sandbox
        .state
        .executed()
        .into_iter()
        .map(|s| s.sql)
        .collect();
    assert!(
        !ran.iter().any(|s| s == SF_ORDERS || s == DB_EMPLOYEES),
        "no user SQL ran: {ran:?}"
    );
    assert_eq!(ran.len(), 2, "only the two identity probes ran: {ran:?}");
    close(bob).await;
    env.shutdown().await;
}
