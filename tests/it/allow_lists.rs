//! Rule: nothing outside the operator's allow-list is read or described, and a refusal reaches no
//! upstream.
//!
//! Operator allow-lists end to end over MCP (`[guard.allow]`): table
//! references in the SQL, the tool arguments and the discovery tools obey
//! the list; a refusal names the allowed set and reaches no upstream.

use crate::support::*;
use serde_json::json;

async fn env() -> HttpEnv {
    HttpEnv::start_with(|cfg| {
        cfg.guard.allow.snowflake = Some(vec!["SALES.PUBLIC".into()]);
        cfg.guard.allow.databricks = Some(vec!["main.sales".into()]);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_outside_the_list_are_refused_before_any_upstream_request() {
    let env = env().await;
    let bob = env.connect(BOB).await;

    // Control: what is inside the list runs.
    let rows = Rows::of(
        &call_ok(
            &bob,
            "query_databricks",
            json!({"sql": "SELECT order_id FROM main.sales.orders ORDER BY order_id"}),
        )
        .await,
    );
    assert!(!rows.column("order_id").is_empty());
    call_ok(
        &bob,
        "query_snowflake",
        json!({"sql": "SELECT COUNT(*) AS N FROM SALES.PUBLIC.ORDERS o JOIN SALES.PUBLIC.CUSTOMERS c ON o.CUSTOMER_ID = c.CUSTOMER_ID"}),
    )
    .await;

    let before = env.sandbox.state.total_requests();
    for (tool, args) in [
        (
            "query_databricks",
            json!({"sql": "SELECT * FROM main.hr.employees"}),
        ),
        (
            "query_databricks",
            json!({"sql": "WITH e AS (SELECT * FROM main.hr.employees) SELECT o.* FROM main.sales.orders o JOIN e ON o.customer_email = e.email"}),
        ),
        (
            "query_databricks",
            json!({"sql": "SELECT * FROM employees", "catalog": "main", "schema": "hr"}),
        ),
        (
            "query_snowflake",
            json!({"sql": "SELECT * FROM SALES.PUBLIC.ORDERS WHERE CUSTOMER_ID IN (SELECT ID FROM HR.PUBLIC.PEOPLE)"}),
        ),
        (
            "query_snowflake",
            json!({"sql": "SELECT 1", "database": "HR"}),
        ),
        (
            "list_tables",
            json!({"platform": "databricks", "database": "main", "schema": "hr"}),
        ),
        (
            "list_tables",
            json!({"platform": "snowflake", "database": "HR"}),
        ),
        (
            "describe_table",
            json!({"platform": "databricks", "table": "main.hr.employees"}),
        ),
    ] {
        let message = call_err(&bob, tool, args.clone()).await;
        assert!(
            message.contains("allow-list")
                && (message.contains("main.sales") || message.contains("SALES.PUBLIC")),
            "{tool} {args}: the refusal names the allowed set: {message}"
        );
    }
    assert_eq!(
        env.sandbox.state.total_requests(),
        before,
        "refused calls reach no upstream"
    );
    close(bob).await;
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_tables_shows_only_what_the_list_allows() {
    let env = env().await;
    let bob = env.connect(BOB).await;
    let listed = Rows::of(&call_ok(&bob, "list_tables", json!({"platform": "databricks"})).await);
    let schemas = listed.strings("table_schema");
    assert!(!schemas.is_empty(), "bob reads main.sales tables");
    assert!(
        schemas.iter().all(|s| s == "sales"),
        "only main.sales is listed: {schemas:?}"
    );
    close(bob).await;
    env.shutdown().await;

    // Control: without a list, bob sees main.hr too.
    let open = HttpEnv::start().await;
    let bob = open.connect(BOB).await;
    let listed = Rows::of(&call_ok(&bob, "list_tables", json!({"platform": "databricks"})).await);
    assert!(listed.strings("table_schema").contains(&"hr".to_string()));
    close(bob).await;
    open.shutdown().await;
}
