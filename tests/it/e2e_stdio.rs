//! Rule: over stdio the configured user gets their own view, writes are refused before any
//! upstream, and nothing written carries a secret.
//!
//! End to end over stdio: the built `immuta-mcp sandbox --user <u>` binary as a
//! child process, driven by rmcp's MCP client on its stdin/stdout.
//!
//! Shows: two users get different rows and masks for the same SQL; the tool
//! list (five tools with output schemas and annotations); `whoami`; protocol
//! errors for an unknown tool and for wrong argument types; write statements
//! refused by the guard before any upstream request; an unknown `--user`
//! refused at startup; and that nothing the child writes (MCP stream and
//! `--log trace` logs) carries a secret.
//!
//! The child generates its sandbox credentials itself, so the secret check here
//! is by shape (API key `imm_`+hex, client secret `dose`+hex, PEM markers,
//! 64-hex PAT secrets / access tokens); `e2e_http` checks the exact values in-process.

use crate::support::*;
use rmcp::model::ErrorCode;
use serde_json::json;

const SF_ORDERS: &str = "SELECT ORDER_ID, REGION, EMAIL FROM SALES.PUBLIC.ORDERS ORDER BY ORDER_ID";
const DB_ORDERS: &str =
    "SELECT order_id, region, customer_email FROM main.sales.orders ORDER BY order_id";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_users_get_different_rows_and_masks_from_two_stdio_servers() {
    let (alice, bob) = tokio::join!(
        StdioChild::sandbox(ALICE, &[]),
        StdioChild::sandbox(BOB, &[])
    );

    // Snowflake: alice sees the EU rows with e-mails masked, bob every row in clear.
    let a = Rows::of(&call_ok(&alice.client, "query_snowflake", json!({"sql": SF_ORDERS})).await);
    let b = Rows::of(&call_ok(&bob.client, "query_snowflake", json!({"sql": SF_ORDERS})).await);
    assert_eq!(
        a.strings("ORDER_ID"),
        ["1001", "1002", "1005", "1007"],
        "alice: EU rows only"
    );
    assert!(a.strings("REGION").iter().all(|r| r == "EU"));
    assert!(
        a.strings("EMAIL").iter().all(|e| e == "***"),
        "alice: e-mails masked, got {:?}",
        a.strings("EMAIL")
    );
    assert_eq!(b.rows.len(), 8, "bob: every row");
    assert!(b.strings("EMAIL").iter().all(|e| e.contains('@')));
    assert!(b.strings("REGION").iter().any(|r| r == "US"));

    // Databricks: the same difference through the other platform.
    let a = Rows::of(&call_ok(&alice.client, "query_databricks", json!({"sql": DB_ORDERS})).await);
    let b = Rows::of(&call_ok(&bob.client, "query_databricks", json!({"sql": DB_ORDERS})).await);
    assert_eq!(
        a.strings("order_id"),
        ["1", "2", "5"],
        "alice: EU rows only"
    );
    assert!(a.strings("customer_email").iter().all(|e| e == "***"));
    assert_eq!(b.rows.len(), 6, "bob: every row");
    assert!(b.strings("customer_email").iter().all(|e| e.contains('@')));

    let (ok_a, _, _) = alice.finish().await;
    let (ok_b, _, _) = bob.finish().await;
    assert!(ok_a && ok_b, "both children exit cleanly when stdin closes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tools_whoami_and_protocol_errors_over_stdio() {
    let child = StdioChild::sandbox(CAROL, &[]).await;
    let client = &child.client;

    let tools = bounded("tools/list", client.list_all_tools())
        .await
        .expect("tools/list");
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
        let ann = t
            .annotations
            .as_ref()
            .unwrap_or_else(|| panic!("{} has annotations", t.name));
        assert_eq!(ann.read_only_hint, Some(true), "{} is read-only", t.name);
        assert_eq!(
            ann.destructive_hint,
            Some(false),
            "{} is not destructive",
            t.name
        );
    }

    let who = call_ok(client, "whoami", json!({})).await;
    let s = who.structured_content.as_ref().expect("structured whoami");
    assert_eq!(s["user"], CAROL);
    assert_eq!(s["identity_source"], "stdio_config");
    assert_eq!(s["read_only"], true);
    assert!(text_of(&who).contains(CAROL));

    // Unknown tool: a JSON-RPC error, not a tool result.
    match call(client, "drop_everything", json!({})).await {
        Err(rmcp::ServiceError::McpError(e)) => {
            assert!(e.message.contains("drop_everything"), "{}", e.message)
        }
        other => panic!("unknown tool should be a protocol error, got {other:?}"),
    }
    // Wrong argument type: invalid params.
    match call(client, "query_snowflake", json!({"sql": 42})).await {
        Err(rmcp::ServiceError::McpError(e)) => assert_eq!(e.code, ErrorCode::INVALID_PARAMS),
        other => panic!("sql: 42 should be invalid params, got {other:?}"),
    }
    match call(client, "list_tables", json!({"platform": "oracle"})).await {
        Err(rmcp::ServiceError::McpError(e)) => assert_eq!(e.code, ErrorCode::INVALID_PARAMS),
        other => panic!("an unknown platform should be invalid params, got {other:?}"),
    }
    // The session still works after protocol errors.
    let listed = Rows::of(&call_ok(client, "list_tables", json!({"platform": "snowflake"})).await);
    assert_eq!(
        listed.strings("name"),
        ["CUSTOMERS"],
        "carol reads one Snowflake table"
    );

    let (ok, _, _) = child.finish().await;
    assert!(ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_statements_are_refused_before_any_upstream_request_over_stdio() {
    // Debug logs of the child show its audit events and the sandbox's executed statements.
    let child = StdioChild::sandbox(BOB, &["--log", "debug"]).await;
    // Positive control: a read does reach the upstreams, and the log shows it
    // (a non-zero `upstream_requests` and the sandbox's executed line).
    call_ok(&child.client, "query_snowflake", json!({"sql": "SELECT 1"})).await;
    let writes = [
        (
            "query_snowflake",
            "INSERT INTO SALES.PUBLIC.ORDERS (ORDER_ID) VALUES (9)",
        ),
        ("query_snowflake", "DROP TABLE SALES.PUBLIC.ORDERS"),
        ("query_databricks", "DELETE FROM main.sales.orders"),
        ("query_databricks", "DROP TABLE main.sales.orders"),
    ];
    for (tool, sql) in writes {
        let message = call_err(&child.client, tool, json!({"sql": sql})).await;
        assert!(message.contains("read-only"), "{tool} {sql}: {message}");
    }
    for tool in ["query_snowflake", "query_databricks"] {
        let message = call_err(
            &child.client,
            tool,
            json!({"sql": "SELECT 1; DROP TABLE t"}),
        )
        .await;
        assert!(
            message.contains("refused by the SQL guard") && message.contains("one statement"),
            "{tool}: {message}"
        );
    }
    let (ok, _, stderr) = child.finish().await;
    assert!(ok);
    let audits: Vec<&str> = stderr.lines().filter(|l| l.contains("tool call")).collect();
    assert_eq!(audits.len(), 7, "one audit event per call:\n{stderr}");
    let (control, refused) = audits.split_first().expect("audit lines");
    let requests: u32 = control
        .split("upstream_requests=")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("the audit line names upstream_requests: {control}"));
    assert!(
        control.contains("outcome=\"ok\"") || control.contains("outcome=ok"),
        "{control}"
    );
    // The vend, mint and identity probe ran at startup (cache.prewarm, on by
    // default): the call itself needed only its statement.
    assert!(requests >= 1, "the statement: {control}");
    assert!(
        stderr.contains("credentials warmed for a new session"),
        "stdio warms the configured user's credentials at startup:\n{stderr}"
    );
    assert_eq!(
        stderr.matches("sandbox statement executed").count(),
        2,
        "the identity probe and the read ran once each, and the log shows it:\n{}",
        lines_with(&stderr, "sandbox statement executed")
    );
    for line in refused {
        assert!(line.contains("guard_refused"), "{line}");
        assert!(
            line.contains("upstream_requests=0"),
            "no upstream request: {line}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_the_stdio_server_writes_carries_a_secret() {
    let child = StdioChild::sandbox(ALICE, &["--log", "trace"]).await;
    let client = &child.client;
    let mut results = Vec::new();
    for (tool, arguments) in [
        ("query_snowflake", json!({"sql": SF_ORDERS})),
        ("query_databricks", json!({"sql": DB_ORDERS})),
        ("query_snowflake", json!({"sql": "SELECT CURRENT_ROLE()"})),
        ("list_tables", json!({"platform": "databricks"})),
        (
            "describe_table",
            json!({"platform": "snowflake", "table": "SALES.PUBLIC.ORDERS"}),
        ),
        ("whoami", json!({})),
        // Errors too: a table alice may not read, and a guard refusal.
        (
            "query_snowflake",
            json!({"sql": "SELECT * FROM SALES.PUBLIC.SECRET_TABLE"}),
        ),
        (
            "query_databricks",
            json!({"sql": "DROP TABLE main.hr.employees"}),
        ),
    ] {
        let r = call(client, tool, arguments)
            .await
            .unwrap_or_else(|e| panic!("{tool}: {e}"));
        results.push(visible_output(&r));
    }
    assert!(
        results[0].contains("***"),
        "the queries really ran: {}",
        results[0]
    );
    let (ok, stdout, stderr) = child.finish().await;
    assert!(ok);
    assert!(
        stderr.contains("TRACE"),
        "the child logged at trace level (else the check below proves little)"
    );
    assert!(
        stderr.contains("minted Snowflake PAT"),
        "PAT minting was logged"
    );
    assert!(stdout.contains("\"jsonrpc\""), "stdout is the MCP stream");

    for (what, text) in [("stdout", &stdout), ("stderr", &stderr)]
        .into_iter()
        .chain(results.iter().map(|r| ("a tool result", r)))
    {
        // The child's sandbox is in another process: its secrets are unknown
        // here, so the credential shapes are what is looked for.
        assert_no_secret(what, text, &[]);
    }
}

#[tokio::test]
async fn an_unknown_user_is_refused_at_startup() {
    let (ok, stdout, stderr) = run_to_exit(&["sandbox", "--user", "mallory@example.com"]).await;
    assert!(!ok, "the binary must exit with an error");
    assert!(stdout.is_empty(), "nothing on the MCP stream: {stdout}");
    assert!(
        stderr.contains("mallory@example.com") && stderr.contains(ALICE),
        "the error names the user and the fixture's users:\n{stderr}"
    );
}
