//! Helpers of the hardening tests (fault matrix and soak): the query each
//! demo user runs per platform, the check that a result is the one *that*
//! user may see, the leak check of a whole tool result, and process RSS.

pub use super::leak::*;
pub use super::{ALICE, BOB, CAROL};

use immuta_mcp::result::{Platform, ResultSet};
use immuta_mcp::sandbox::{ExecutedStatement, Sandbox};
use rmcp::model::CallToolResult;
use serde_json::{Value, json};

pub const USERS: [&str; 3] = [ALICE, BOB, CAROL];

/// Snowflake orders (alice: EU rows, e-mails masked; bob: all 8 rows; carol: not granted).
pub const SF_ORDERS: &str =
    "SELECT ORDER_ID, REGION, EMAIL, AMOUNT FROM SALES.PUBLIC.ORDERS ORDER BY ORDER_ID";
/// Snowflake customers (carol: all 7 rows, e-mails masked).
pub const SF_CUSTOMERS: &str =
    "SELECT CUSTOMER_ID, REGION, EMAIL FROM SALES.PUBLIC.CUSTOMERS ORDER BY CUSTOMER_ID";
/// Databricks orders (alice: 3 EU rows masked; bob and carol: all 6 rows unmasked).
pub const DB_ORDERS: &str =
    "SELECT order_id, customer_email, region, amount FROM main.sales.orders ORDER BY order_id";
/// Databricks employees (carol: not granted).
pub const DB_EMPLOYEES: &str = "SELECT full_name, email FROM main.hr.employees";

/// The MCP tool of a platform.
pub fn tool(platform: Platform) -> &'static str {
    match platform {
        Platform::Snowflake => "query_snowflake",
        Platform::Databricks => "query_databricks",
    }
}

/// The query `user` runs on `platform` in these tests (one each user may read).
pub fn readable_sql(platform: Platform, user: &str) -> &'static str {
    match (platform, user) {
        (Platform::Snowflake, CAROL) => SF_CUSTOMERS,
        (Platform::Snowflake, _) => SF_ORDERS,
        (Platform::Databricks, _) => DB_ORDERS,
    }
}

/// Tool arguments for `sql`.
pub fn args(sql: &str) -> Value {
    json!({ "sql": sql })
}

/// The text of a tool result's content blocks, joined.
pub fn result_text(result: &CallToolResult) -> String {
    let value = serde_json::to_value(result).unwrap_or_default();
    value["content"]
        .as_array()
        .map(|blocks| {
            blocks
                .iter()
                .filter_map(|b| b["text"].as_str())
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

/// The rows of a successful tool result.
pub fn result_set(result: &CallToolResult) -> Result<ResultSet, String> {
    if result.is_error == Some(true) {
        return Err(format!("tool error: {}", result_text(result)));
    }
    let structured = result
        .structured_content
        .clone()
        .ok_or_else(|| "no structuredContent".to_string())?;
    serde_json::from_value(structured).map_err(|e| format!("structuredContent: {e}"))
}

fn column<'a>(rs: &'a ResultSet, names: &[&str]) -> Result<Vec<&'a Value>, String> {
    let i = rs
        .columns
        .iter()
        .position(|c| names.iter().any(|n| c.name.eq_ignore_ascii_case(n)))
        .ok_or_else(|| format!("no column {names:?} in {:?}", rs.columns))?;
    Ok(rs.rows.iter().map(|r| &r[i]).collect())
}

fn is_real_email(v: &Value) -> bool {
    v.as_str().is_some_and(|s| s.contains('@'))
}

/// Check that `rs` is exactly what `user` may see for [`readable_sql`]: row
/// count, row filter and masks. Another user's view never passes.
pub fn check_view(platform: Platform, user: &str, rs: &ResultSet) -> Result<(), String> {
    if rs.platform != platform {
        return Err(format!(
            "result from {} for a {platform} query",
            rs.platform
        ));
    }
    let emails = column(rs, &["EMAIL", "customer_email"])?;
    let regions = column(rs, &["REGION"])?;
    let all_eu = regions.iter().all(|r| **r == json!("EU"));
    let all_masked = emails.iter().all(|e| **e == json!("***"));
    let all_real = emails.iter().all(|e| is_real_email(e));
    let (rows, want_eu_only, want_masked) = match (platform, user) {
        (Platform::Snowflake, ALICE) => (4, true, true),
        (Platform::Snowflake, BOB) => (8, false, false),
        (Platform::Snowflake, CAROL) => (7, false, true),
        (Platform::Databricks, ALICE) => (3, true, true),
        (Platform::Databricks, BOB | CAROL) => (6, false, false),
        (_, other) => return Err(format!("no expected view for {other}")),
    };
    let ok = rs.row_count == rows
        && rs.rows.len() == rows
        && all_eu == want_eu_only
        && (if want_masked { all_masked } else { all_real });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{user} on {platform}: got {} rows (want {rows}), all EU {all_eu} (want {want_eu_only}), \
             masked {all_masked}, real e-mails {all_real} (want masked {want_masked})",
            rs.row_count
        ))
    }
}

/// The whole serialized tool result (text, structured content) holds none of
/// the sandbox's secrets, none of the bearer credentials it has issued so far
/// (PAT secrets, OAuth access tokens, Immuta tokens), and nothing shaped like
/// one (PEM marker, 64-hex run, `Bearer `, a JWT's `eyJ`).
pub fn check_no_secret(result: &CallToolResult, sandbox: &Sandbox) -> Result<(), String> {
    let all = serde_json::to_string(result).map_err(|e| format!("unserializable result: {e}"))?;
    find_secret(&all, &sandbox_secrets(sandbox)).map_err(|e| format!("tool result: {e}"))
}

/// Statements run on `platform` for anyone other than `user`, or under a role
/// that is not an Immuta-vended one.
pub fn foreign_statements(
    executed: &[ExecutedStatement],
    platform: Platform,
    user: &str,
) -> Vec<String> {
    executed
        .iter()
        .filter(|s| s.platform == platform)
        .filter(|s| s.user != user || !is_vended_role(platform, &s.role))
        .map(|s| format!("{:?} ran as {} for {}", s.sql, s.role, s.user))
        .collect()
}

/// Snowflake vended roles are `IMMUTA_OBO_*`; Databricks groups are numeric ids.
pub fn is_vended_role(platform: Platform, role: &str) -> bool {
    match platform {
        Platform::Snowflake => role.starts_with("IMMUTA_OBO_"),
        Platform::Databricks => !role.is_empty() && role.chars().all(|c| c.is_ascii_digit()),
    }
}

/// Resident set size of this process, KiB (Linux `/proc/self/status`).
pub fn vm_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}
