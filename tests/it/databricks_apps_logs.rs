//! Rule: no forwarded Databricks Apps token reaches a log line.
//!
//! No forwarded Databricks Apps token reaches a log line, at TRACE, over a
//! session through the emulated Apps proxy and a refused request. The log is
//! this test's own (`support::logs`: every thread of its runtime, nothing of
//! the tests running beside it).

use crate::support::*;
use immuta_mcp::identity::databricks_apps::HttpIdentitySource;
use immuta_mcp::sandbox::SandboxOptions;
use rmcp::ServiceExt;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::json;
use std::time::Duration;
use tracing::Level;

#[test]
fn no_forwarded_token_reaches_a_log_line() {
    with_logs(Level::TRACE, Threads::Current, |buffer| async move {
        let env = HttpEnv::start_with_options(SandboxOptions::default(), |cfg| {
            cfg.identity.source = HttpIdentitySource::DatabricksApps;
        })
        .await;
        let proxy = AppsProxy::start(&env.base(), &env.sandbox.databricks_url, true).await;
        let issue = |user: &str| {
            env.sandbox
                .state
                .issue_databricks_user_token(user, Duration::from_secs(600))
        };
        let token = issue(ALICE);
        let mut config = StreamableHttpClientTransportConfig::with_uri(proxy.mcp_url());
        config = config.auth_header(token.clone());
        let transport = StreamableHttpClientTransport::with_client(reqwest::Client::new(), config);
        let client = bounded("MCP initialize", Recorder::default().serve(transport))
            .await
            .unwrap();
        call_ok(
            &client,
            "query_databricks",
            json!({"sql": "SELECT * FROM main.sales.orders"}),
        )
        .await;
        close(client).await;
        let bob_token = issue(BOB);
        let refused = env
            .raw_initialize()
            .header("x-forwarded-email", ALICE)
            .header("x-forwarded-access-token", bob_token.as_str())
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 401);
        let text = buffer.json_text();
        assert!(text.contains("caller refused"), "the refusal is logged");
        let secrets = sandbox_secrets(&env.sandbox);
        assert!(
            secrets.iter().any(|(_, s)| *s == token)
                && secrets.iter().any(|(_, s)| *s == bob_token),
            "the forwarded tokens are among the secrets looked for"
        );
        if let Err(leak) = find_secret(&text, &secrets) {
            panic!("the TRACE log: {leak}");
        }
        env.shutdown().await;
    });
}
