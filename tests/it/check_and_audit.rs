//! Rule: `check` names each failing upstream without showing a secret, and every tool call leaves
//! exactly one audit event.
//!
//! `immuta-mcp check` against the sandbox, and the one-audit-event-per-call rule.

use crate::support::{Threads, with_logs};
use immuta_mcp::app;
use immuta_mcp::config::SecretRef;
use immuta_mcp::identity::VerifiedUser;
use immuta_mcp::query::CallContext;
use immuta_mcp::sandbox::{Sandbox, SandboxOptions};
use immuta_mcp::server::UserSource;
use serde_json::json;
use tracing::Level;

#[tokio::test]
async fn check_reports_each_upstream_and_names_a_bad_key() {
    let sandbox = Sandbox::start(SandboxOptions::default()).await.unwrap();
    let cfg = sandbox.client_config();
    let lines = app::check(&cfg).await;
    // The upstream lines (the prerequisite lines, `snowflake.*` and `databricks.*`,
    // are tested in check_doctor.rs).
    let components: Vec<&str> = lines
        .iter()
        .map(|l| l.component)
        .filter(|c| !c.contains('.'))
        .collect();
    assert_eq!(
        components,
        ["config", "identity", "immuta", "snowflake", "databricks"],
        "{lines:?}"
    );
    for l in &lines {
        assert!(l.ok, "{} failed: {}", l.component, l.message);
    }

    let mut bad = cfg.clone();
    bad.immuta.as_mut().unwrap().api_key = SecretRef::Value("wrong-key".into());
    let lines = app::check(&bad).await;
    let immuta = lines.iter().find(|l| l.component == "immuta").unwrap();
    assert!(!immuta.ok);
    assert!(immuta.message.contains("API key"), "{}", immuta.message);
    assert!(
        !immuta.message.contains("wrong-key"),
        "the key itself is never shown"
    );

    let mut invalid = cfg.clone();
    invalid.limits.default_max_rows = 0;
    let lines = app::check(&invalid).await;
    assert_eq!(lines.len(), 1);
    assert!(
        !lines[0].ok && lines[0].message.contains("default_max_rows"),
        "{lines:?}"
    );
}

#[test]
fn every_tool_call_leaves_exactly_one_audit_event() {
    with_logs(Level::TRACE, Threads::Current, |buffer| async move {
        let sandbox = Sandbox::start(SandboxOptions::default()).await.unwrap();
        let cfg = sandbox.client_config();
        let platforms = app::build_platforms(&cfg).unwrap();
        let alice = VerifiedUser::configured("alice@example.com");
        let server = app::build_server(&cfg, &platforms, UserSource::Fixed(alice.clone()));

        let calls = [
            (
                "query_snowflake",
                json!({"sql": "SELECT ORDER_ID, EMAIL FROM SALES.PUBLIC.ORDERS"}),
                "ok",
            ),
            (
                "query_databricks",
                json!({"sql": "SELECT * FROM main.sales.orders"}),
                "ok",
            ),
            (
                "query_snowflake",
                json!({"sql": "DELETE FROM SALES.PUBLIC.ORDERS"}),
                "guard_refused",
            ),
            (
                "query_snowflake",
                json!({"sql": "SELECT * FROM SALES.PUBLIC.NOPE"}),
                "statement_failed",
            ),
            ("whoami", json!({}), "ok"),
        ];
        // What the sandbox received during each call: the audit event's
        // `upstream_requests` must say exactly that.
        let mut received = Vec::new();
        for (tool, args, _) in &calls {
            let ctx = CallContext::new(alice.user_id.clone(), "test");
            let before = sandbox.state.total_requests();
            server
                .call(&alice, tool, args.clone(), ctx)
                .await
                .expect("a tool result");
            received.push(sandbox.state.total_requests() - before);
        }
        let text = buffer.json_text();
        let events: Vec<serde_json::Value> = text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["target"] == "immuta_mcp::audit")
            .collect();
        assert_eq!(
            events.len(),
            calls.len(),
            "one audit event per call:\n{text}"
        );
        for ((event, (tool, _, outcome)), received) in
            events.iter().zip(calls.iter()).zip(&received)
        {
            let f = &event["fields"];
            assert_eq!(f["user"], "alice@example.com");
            assert_eq!(f["tool"], *tool);
            assert_eq!(f["outcome"], *outcome, "{event}");
            assert_eq!(
                f["upstream_requests"], *received,
                "the audit event counts the requests the upstreams received: {event}"
            );
        }
        assert!(
            received[0] >= 3,
            "a cold Snowflake call vends, mints and runs: {received:?}"
        );
        assert_eq!(received[2], 0, "a refused statement reaches no upstream");
        let sf = &events[0]["fields"];
        assert!(
            sf["vended_role"]
                .as_str()
                .unwrap()
                .starts_with("IMMUTA_OBO_"),
            "{sf}"
        );
        assert_eq!(sf["rows"], 4);
        assert_ne!(sf["statement_id"], "-");
        assert_eq!(events[1]["fields"]["platform"], "databricks");
        assert_eq!(
            events[2]["fields"]["vended_role"], "-",
            "a refused statement vends nothing"
        );

        // No secret anywhere in a TRACE-level log of the session: neither the
        // agent's credentials nor the PAT and OAuth token minted for alice.
        let secrets = crate::support::sandbox_secrets(&sandbox);
        assert!(
            secrets.len() >= 5,
            "the calls minted a PAT and an OAuth token: {} secrets",
            secrets.len()
        );
        if let Err(leak) = crate::support::find_secret(&text, &secrets) {
            panic!("the TRACE log: {leak}");
        }
    });
}
