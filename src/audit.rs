//! One structured audit event per tool call.
//!
//! Events go to the `immuta_mcp::audit` tracing target with fixed field
//! names (user, platform, tool, vended_role, statement_id, rows, duration_ms,
//! outcome, upstream_requests). They are built only from non-secret facts:
//! nothing here ever sees a token, key or PAT.

use crate::query::CallFacts;
use std::time::Duration;

/// What happened in one tool call.
#[derive(Debug, Clone)]
pub struct AuditEvent<'a> {
    pub user: &'a str,
    pub tool: &'a str,
    /// `snowflake`, `databricks`, or `-` for tools that touch no platform.
    pub platform: &'a str,
    pub facts: CallFacts,
    pub rows: Option<usize>,
    pub duration: Duration,
    /// `ok`, or a short failure kind (`guard_refused`, `vend_failed`, ...).
    pub outcome: &'a str,
    /// Short error text for failures (already free of secrets).
    pub error: Option<&'a str>,
}

/// Emit the event at INFO on the audit target.
pub fn record(event: &AuditEvent<'_>) {
    tracing::info!(
        target: "immuta_mcp::audit",
        user = event.user,
        tool = event.tool,
        platform = event.platform,
        vended_role = event.facts.vended_role.as_deref().unwrap_or("-"),
        statement_id = event.facts.statement_id.as_deref().unwrap_or("-"),
        rows = event.rows.map(|r| r as i64).unwrap_or(-1),
        duration_ms = event.duration.as_millis() as u64,
        upstream_requests = event.facts.upstream_requests,
        applied_identity = event.facts.applied_identity.as_deref().unwrap_or("-"),
        outcome = event.outcome,
        error = event.error.unwrap_or(""),
        "tool call"
    );
}
