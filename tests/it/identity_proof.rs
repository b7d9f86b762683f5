//! Rule: no user SQL runs unless the platform proved it applies the vended role or group.
//!
//! Proof of the identity the platform applied: once per minted credential,
//! before any user SQL, the server asks the platform who the credential runs
//! as (Snowflake `CURRENT_ROLE()`/`CURRENT_USER()` under the PAT; Databricks
//! `current_user()` and `is_account_group_member(<vended group>)` under the
//! group token), records it in the audit event, and fails closed when the
//! platform does not apply the vended role or group. The sandbox's
//! `ignore_obo_restriction` fault plays a misconfigured platform that answers
//! 200 as the agent's own identity.

use crate::support::{Threads, with_logs};
use immuta_mcp::app;
use immuta_mcp::identity::VerifiedUser;
use immuta_mcp::query::CallContext;
use immuta_mcp::result::Platform;
use immuta_mcp::sandbox::{
    AGENT_DATABRICKS_GROUP, AGENT_SNOWFLAKE_ROLE, Sandbox, SandboxOptions, SandboxSettings,
};
use immuta_mcp::server::{GovernedServer, UserSource};
use rmcp::model::CallToolResult;
use serde_json::json;
use tracing::Level;

const SF_PROBE: &str = "SELECT CURRENT_ROLE() AS ROLE, CURRENT_USER() AS USER_NAME";
const DB_PROBE_START: &str = "SELECT current_user() AS user, is_account_group_member(";
const SF_SQL: &str = "SELECT ORDER_ID FROM SALES.PUBLIC.ORDERS ORDER BY ORDER_ID";
const DB_SQL: &str = "SELECT order_id FROM main.sales.orders ORDER BY order_id";

async fn server(settings: SandboxSettings) -> (Sandbox, GovernedServer, VerifiedUser) {
    let sandbox = Sandbox::start(SandboxOptions {
        settings,
        ..Default::default()
    })
    .await
    .unwrap();
    let cfg = sandbox.client_config();
    assert!(
        cfg.snowflake.as_ref().unwrap().verify_identity,
        "on by default"
    );
    assert!(
        cfg.databricks.as_ref().unwrap().verify_identity,
        "on by default"
    );
    let platforms = app::build_platforms(&cfg).unwrap();
    let bob = VerifiedUser::configured("bob@example.com");
    let server = app::build_server(&cfg, &platforms, UserSource::Fixed(bob.clone()));
    (sandbox, server, bob)
}

async fn call(
    server: &GovernedServer,
    user: &VerifiedUser,
    tool: &str,
    sql: &str,
) -> CallToolResult {
    server
        .call(
            user,
            tool,
            json!({ "sql": sql }),
            CallContext::new(user.user_id.clone(), "test"),
        )
        .await
        .expect("a tool result")
}

fn text(result: &CallToolResult) -> String {
    serde_json::to_string(&result.content).unwrap_or_default()
}

#[test]
fn each_credential_is_asked_once_and_a_platform_ignoring_the_restriction_runs_no_sql() {
    with_logs(Level::INFO, Threads::Current, |logs| async move {
        let (sandbox, server, bob) = server(SandboxSettings::default()).await;

        for _ in 0..2 {
            for (tool, sql) in [("query_snowflake", SF_SQL), ("query_databricks", DB_SQL)] {
                let result = call(&server, &bob, tool, sql).await;
                assert_eq!(result.is_error, Some(false), "{}", text(&result));
            }
        }
        let executed = sandbox.state.executed();
        let sf_probes: Vec<_> = executed.iter().filter(|s| s.sql == SF_PROBE).collect();
        let db_probes: Vec<_> = executed
            .iter()
            .filter(|s| s.sql.starts_with(DB_PROBE_START))
            .collect();
        assert_eq!(
            sf_probes.len(),
            1,
            "one probe per PAT, before its first statement"
        );
        assert_eq!(db_probes.len(), 1, "one probe per group token");
        assert_eq!(sf_probes[0].platform, Platform::Snowflake);
        // The probe ran under the same vended role as the user's statements, and first.
        let sf_first = executed
            .iter()
            .position(|s| s.platform == Platform::Snowflake)
            .unwrap();
        assert_eq!(executed[sf_first].sql, SF_PROBE);
        let sf_user_role = &executed.iter().find(|s| s.sql == SF_SQL).unwrap().role;
        assert_eq!(&sf_probes[0].role, sf_user_role);

        let events = logs.audit_events();
        assert_eq!(events.len(), 4, "{events:?}");
        for event in &events {
            let applied = event["applied_identity"].as_str().unwrap_or_default();
            match event["platform"].as_str() {
                Some("snowflake") => assert_eq!(
                    applied,
                    format!(
                        "role={} user=IMMUTA_AGENT",
                        event["vended_role"].as_str().unwrap()
                    ),
                    "{event}"
                ),
                Some("databricks") => {
                    let client_id = &sandbox.credentials().databricks_client_id;
                    assert_eq!(
                        applied,
                        format!(
                            "user={client_id} group={}",
                            event["vended_role"].as_str().unwrap()
                        ),
                        "{event}"
                    )
                }
                other => panic!("unexpected platform {other:?}"),
            }
        }
        sandbox.shutdown().await;
        a_platform_that_ignores_the_restriction_runs_no_user_sql().await;
    });
}

/// Part of the test above: one test per binary, because the audit capture
/// uses a thread-scoped subscriber, and tracing's per-callsite interest cache
/// can miss events while another test thread runs without one.
async fn a_platform_that_ignores_the_restriction_runs_no_user_sql() {
    let settings = SandboxSettings {
        ignore_obo_restriction: true,
        ..Default::default()
    };
    let (sandbox, server, bob) = server(settings).await;
    for (tool, sql, applied) in [
        ("query_snowflake", SF_SQL, AGENT_SNOWFLAKE_ROLE),
        (
            "query_databricks",
            DB_SQL,
            "not a member of the vended group",
        ),
    ] {
        for _ in 0..2 {
            let result = call(&server, &bob, tool, sql).await;
            assert_eq!(result.is_error, Some(true), "{tool}: {}", text(&result));
            let message = text(&result);
            assert!(
                message.contains(applied) && message.contains("no SQL was run"),
                "{tool}: {message}"
            );
        }
    }
    let executed = sandbox.state.executed();
    assert!(
        executed
            .iter()
            .all(|s| s.sql == SF_PROBE || s.sql.starts_with(DB_PROBE_START)),
        "only the probes ran: {executed:?}"
    );
    // Each refused credential was dropped: the next call minted and asked again.
    let roles: Vec<&str> = executed.iter().map(|s| s.role.as_str()).collect();
    assert_eq!(
        roles,
        [
            AGENT_SNOWFLAKE_ROLE,
            AGENT_SNOWFLAKE_ROLE,
            AGENT_DATABRICKS_GROUP,
            AGENT_DATABRICKS_GROUP
        ],
        "the platform ran the probes as the agent's own identity"
    );
    sandbox.shutdown().await;
}
