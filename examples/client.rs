//! A small MCP client for the sandbox: starts `immuta-mcp sandbox --user <user>`
//! as a child process (MCP over its stdin/stdout), lists the tools, and runs one
//! governed query, printing the text result.
//!
//! ```text
//! cargo build && cargo run --example client -- [BINARY] [USER] [PLATFORM] [SQL]
//! ```
//!
//! - `BINARY`   the `immuta-mcp` executable (default `target/debug/immuta-mcp`)
//! - `USER`     a fixture user (default `alice@example.com`; try `bob@example.com`)
//! - `PLATFORM` `snowflake` (default) or `databricks`
//! - `SQL`      the statement (default: the demo orders table of that platform)
//!
//! The child's log lines go to this program's stderr.

use anyhow::{Context, Result, bail};
use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::TokioChildProcess;
use serde_json::json;
use std::time::Duration;

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let binary = args
        .next()
        .unwrap_or_else(|| "target/debug/immuta-mcp".to_string());
    let user = args
        .next()
        .unwrap_or_else(|| "alice@example.com".to_string());
    let platform = args.next().unwrap_or_else(|| "snowflake".to_string());
    let (tool, default_sql) = match platform.as_str() {
        "snowflake" => (
            "query_snowflake",
            "SELECT ORDER_ID, REGION, EMAIL, AMOUNT FROM SALES.PUBLIC.ORDERS ORDER BY ORDER_ID",
        ),
        "databricks" => (
            "query_databricks",
            "SELECT order_id, region, customer_email, amount FROM main.sales.orders ORDER BY order_id",
        ),
        other => bail!("platform must be snowflake or databricks, not {other:?}"),
    };
    let sql = args.next().unwrap_or_else(|| default_sql.to_string());
    if !std::path::Path::new(&binary).exists() {
        bail!(
            "{binary} does not exist; run `cargo build` first or pass the binary path as the first argument"
        );
    }

    let mut command = tokio::process::Command::new(&binary);
    command.args(["sandbox", "--user", &user]);
    let transport =
        TokioChildProcess::new(command).with_context(|| format!("starting {binary}"))?;
    let client = tokio::time::timeout(Duration::from_secs(30), ().serve(transport))
        .await
        .context("the server did not initialize within 30 s")?
        .context("MCP initialize")?;

    let tools = client.list_all_tools().await.context("tools/list")?;
    println!("tools:");
    for t in &tools {
        println!(
            "  {:<17} {}",
            t.name,
            t.title.as_deref().unwrap_or_default()
        );
    }

    println!("\n{tool} as {user}:\n{sql}\n");
    let arguments = json!({ "sql": sql });
    let params = CallToolRequestParams::new(tool).with_arguments(
        arguments
            .as_object()
            .cloned()
            .context("arguments are an object")?,
    );
    let result = tokio::time::timeout(Duration::from_secs(60), client.call_tool(params))
        .await
        .context("the query did not finish within 60 s")?
        .context("tools/call")?;
    for block in &result.content {
        if let Some(text) = block.as_text() {
            println!("{}", text.text);
        }
    }
    let failed = result.is_error == Some(true);
    client.cancel().await.context("closing the session")?;
    if failed {
        bail!("the tool reported an error");
    }
    Ok(())
}
