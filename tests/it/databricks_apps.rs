//! Rule: behind Databricks Apps, the user is the one whose forwarded token the workspace confirms,
//! never a forged header.
//!
//! `identity.source = "databricks_apps"` end to end: the sandbox, the MCP
//! server over HTTP, and an emulated Databricks Apps proxy in front of it
//! (tests/it/support/apps_proxy.rs). The proxy signs users in with workspace
//! tokens the sandbox issues and forwards `X-Forwarded-*`; the server confirms
//! each forwarded token with the Databricks emulator's SCIM `Me`.
//!
//! Shows: through the proxy each user sees their own rows; without forwarded
//! headers, with forged headers and no token, and with a token of another user
//! the server answers 401; without user authorization (no forwarded token) it
//! refuses unless `require_forwarded_token = false`; the SCIM answer is cached
//! per token; the workspace being down is 503; with the default bearer source
//! the forwarded headers change nothing. (No forwarded token in the log:
//! `databricks_apps_logs`.)

use crate::support::*;
use immuta_mcp::identity::databricks_apps::HttpIdentitySource;
use immuta_mcp::sandbox::{Endpoint, Fault, SandboxOptions};
use rmcp::ServiceExt;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::json;
use std::time::Duration;

const SF_ORDERS: &str = "SELECT ORDER_ID FROM SALES.PUBLIC.ORDERS ORDER BY ORDER_ID";

async fn apps_env(require_token: bool) -> HttpEnv {
    apps_env_with(|cfg| cfg.identity.databricks_apps.require_forwarded_token = require_token).await
}

async fn apps_env_with(tweak: impl FnOnce(&mut immuta_mcp::config::Config)) -> HttpEnv {
    HttpEnv::start_with_options(SandboxOptions::default(), |cfg| {
        cfg.identity.source = HttpIdentitySource::DatabricksApps;
        tweak(cfg);
    })
    .await
}

/// Connect rmcp's client to `url` with `Authorization: Bearer <token>`.
async fn connect_to(
    url: &str,
    token: Option<&str>,
) -> Result<Client, rmcp::service::ClientInitializeError> {
    let mut config = StreamableHttpClientTransportConfig::with_uri(url.to_string());
    if let Some(t) = token {
        config = config.auth_header(t.to_string());
    }
    let transport = StreamableHttpClientTransport::with_client(reqwest::Client::new(), config);
    bounded("MCP initialize", Recorder::default().serve(transport)).await
}

fn workspace_token(env: &HttpEnv, user: &str) -> String {
    env.sandbox
        .state
        .issue_databricks_user_token(user, Duration::from_secs(600))
}

/// A raw `initialize` straight to the server (no proxy) with these headers.
async fn raw_initialize(env: &HttpEnv, headers: &[(&str, &str)]) -> (u16, serde_json::Value) {
    let mut request = env.raw_initialize();
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = bounded("raw initialize", request.send()).await.unwrap();
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(serde_json::Value::Null);
    (status, body)
}

#[tokio::test]
async fn through_the_apps_proxy_each_user_sees_their_own_rows() {
    let env = apps_env(true).await;
    let proxy = AppsProxy::start(&env.base(), &env.sandbox.databricks_url, true).await;
    for (user, expected) in [
        (ALICE, vec!["1001", "1002", "1005", "1007"]),
        (
            BOB,
            vec![
                "1001", "1002", "1003", "1004", "1005", "1006", "1007", "1008",
            ],
        ),
    ] {
        let token = workspace_token(&env, user);
        let client = connect_to(&proxy.mcp_url(), Some(&token))
            .await
            .unwrap_or_else(|e| panic!("{user} connects through the proxy: {e}"));
        let who = call_ok(&client, "whoami", json!({})).await;
        let who = who.structured_content.unwrap();
        assert_eq!(who["user"], user);
        assert_eq!(who["identity_source"], "databricks_apps");
        let rows = Rows::of(&call_ok(&client, "query_snowflake", json!({"sql": SF_ORDERS})).await);
        assert_eq!(rows.strings("ORDER_ID"), expected, "{user}");
        close(client).await;
    }
    // The statements ran under each user's own vended role.
    let users: Vec<String> = env
        .sandbox
        .state
        .executed()
        .into_iter()
        .filter(|s| s.sql == SF_ORDERS)
        .map(|s| s.user)
        .collect();
    assert_eq!(users, [ALICE, BOB]);
    env.shutdown().await;
}

#[tokio::test]
async fn missing_forged_and_foreign_forwarded_identities_are_refused() {
    let env = apps_env(true).await;
    let alice_token = workspace_token(&env, ALICE);
    type Headers<'a> = Vec<(&'a str, &'a str)>;
    let cases: [(&str, Headers, &str); 4] = [
        ("no forwarded headers", vec![], "x-forwarded-email"),
        (
            "forged headers without a token",
            vec![
                ("x-forwarded-email", BOB),
                ("x-forwarded-preferred-username", BOB),
                ("x-forwarded-user", "123@456"),
            ],
            "X-Forwarded-Access-Token",
        ),
        (
            "a token of another user",
            vec![
                ("x-forwarded-email", BOB),
                ("x-forwarded-access-token", alice_token.as_str()),
            ],
            "another user",
        ),
        (
            "a token the workspace never issued",
            vec![
                ("x-forwarded-email", ALICE),
                ("x-forwarded-access-token", "dapi-forged-0123456789"),
            ],
            "refused the forwarded access token",
        ),
    ];
    for (name, headers, says) in cases {
        let (status, body) = raw_initialize(&env, &headers).await;
        assert_eq!(status, 401, "{name}: {body}");
        let text = body.to_string();
        assert!(text.contains(says), "{name}: {text}");
        assert!(!text.contains(&alice_token), "{name}: the token is echoed");
    }
    // The same token with its own user's header passes.
    let (status, body) = raw_initialize(
        &env,
        &[
            ("x-forwarded-email", ALICE),
            ("x-forwarded-access-token", &alice_token),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // Nothing ran for the refused requests.
    assert_eq!(env.sandbox.state.count(Endpoint::ImmutaVend), 0);
    env.shutdown().await;
}

#[tokio::test]
async fn without_user_authorization_the_server_refuses_unless_told_to_trust_the_proxy() {
    let strict = apps_env(true).await;
    let proxy = AppsProxy::start(&strict.base(), &strict.sandbox.databricks_url, false).await;
    let token = workspace_token(&strict, ALICE);
    let refused = connect_to(&proxy.mcp_url(), Some(&token)).await;
    assert!(refused.is_err(), "no forwarded token must not name a user");
    // And without signing in, the proxy itself stops the request.
    assert!(connect_to(&proxy.mcp_url(), None).await.is_err());
    strict.shutdown().await;

    let trusting = apps_env(false).await;
    let proxy = AppsProxy::start(&trusting.base(), &trusting.sandbox.databricks_url, false).await;
    let token = workspace_token(&trusting, CAROL);
    let client = connect_to(&proxy.mcp_url(), Some(&token)).await.unwrap();
    let who = call_ok(&client, "whoami", json!({})).await;
    assert_eq!(who.structured_content.unwrap()["user"], CAROL);
    close(client).await;
    // The server trusts the header alone: no SCIM Me for a request without a token.
    let before = trusting.sandbox.state.count(Endpoint::DatabricksScimMe);
    let (status, body) = raw_initialize(&trusting, &[("x-forwarded-email", CAROL)]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        trusting.sandbox.state.count(Endpoint::DatabricksScimMe),
        before
    );
    trusting.shutdown().await;
}

#[tokio::test]
async fn the_workspace_answer_is_cached_per_token_and_a_cached_token_still_names_one_user() {
    let env = apps_env(true).await;
    let token = workspace_token(&env, ALICE);
    let alice = [
        ("x-forwarded-email", ALICE),
        ("x-forwarded-access-token", token.as_str()),
    ];
    for _ in 0..3 {
        assert_eq!(raw_initialize(&env, &alice).await.0, 200);
    }
    assert_eq!(
        env.sandbox.state.count(Endpoint::DatabricksScimMe),
        1,
        "one SCIM Me for three requests with one token"
    );
    // The cached answer is alice's: bob's header with it is still refused.
    let (status, _) = raw_initialize(
        &env,
        &[
            ("x-forwarded-email", BOB),
            ("x-forwarded-access-token", token.as_str()),
        ],
    )
    .await;
    assert_eq!(status, 401);
    // The header is compared ignoring ASCII case, as e-mails are.
    let upper = ALICE.to_ascii_uppercase();
    let (status, _) = raw_initialize(
        &env,
        &[
            ("x-forwarded-email", upper.as_str()),
            ("x-forwarded-access-token", token.as_str()),
        ],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(env.sandbox.state.count(Endpoint::DatabricksScimMe), 1);

    // A new token is confirmed afresh; the workspace being down is 503, not 401.
    let fresh = workspace_token(&env, ALICE);
    env.sandbox.faults().add(
        Endpoint::DatabricksScimMe,
        Fault::Status {
            status: 503,
            retry_after: None,
            times: 1,
        },
    );
    let (status, body) = raw_initialize(
        &env,
        &[
            ("x-forwarded-email", ALICE),
            ("x-forwarded-access-token", fresh.as_str()),
        ],
    )
    .await;
    assert_eq!(status, 503, "{body}");
    assert!(
        !body.to_string().contains("scim"),
        "the workspace URL stays in the log: {body}"
    );
    env.shutdown().await;
}

#[tokio::test]
async fn the_token_cache_is_bounded() {
    let env = apps_env_with(|cfg| cfg.identity.databricks_apps.cache_max_entries = 1).await;
    let (alice, bob) = (workspace_token(&env, ALICE), workspace_token(&env, BOB));
    let scim = || env.sandbox.state.count(Endpoint::DatabricksScimMe);
    for (user, token, asked) in [
        (ALICE, &alice, 1),
        (ALICE, &alice, 1), // cached
        (BOB, &bob, 2),     // evicts alice's answer
        (ALICE, &alice, 3), // asked again
        (ALICE, &alice, 3),
    ] {
        let headers = [
            ("x-forwarded-email", user),
            ("x-forwarded-access-token", token.as_str()),
        ];
        assert_eq!(raw_initialize(&env, &headers).await.0, 200);
        assert_eq!(scim(), asked, "{user}");
    }
    env.shutdown().await;
}

#[tokio::test]
async fn with_the_bearer_source_forwarded_headers_change_nothing() {
    let env = HttpEnv::start().await;
    let bob_workspace_token = workspace_token(&env, BOB);
    let client = env
        .try_connect(
            Some(&env.token(ALICE)),
            &[
                ("x-forwarded-email", BOB),
                ("x-forwarded-preferred-username", BOB),
                ("x-forwarded-access-token", &bob_workspace_token),
            ],
        )
        .await
        .unwrap();
    let who = call_ok(&client, "whoami", json!({})).await;
    let who = who.structured_content.unwrap();
    assert_eq!(who["user"], ALICE);
    assert_eq!(who["identity_source"], "http_bearer");
    // Forged headers without a bearer token do not get in either.
    let (status, _) = raw_initialize(&env, &[("x-forwarded-email", BOB)]).await;
    assert_eq!(status, 401);
    assert_eq!(env.sandbox.state.count(Endpoint::DatabricksScimMe), 0);
    close(client).await;
    env.shutdown().await;
}
