//! Rule: a token without the required scopes gets 403 with the scope challenge before reaching any
//! upstream.
//!
//! Scoped tools over streamable HTTP: `identity.oauth.required_scopes` guards
//! every request, `identity.oauth.tool_scopes` guards single tools; a token
//! without them gets 403 with `WWW-Authenticate: Bearer
//! error="insufficient_scope", scope="…"` before anything reaches an
//! upstream, and the Protected Resource Metadata lists `scopes_supported`.

use crate::support::*;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;

const SF_ORDERS: &str =
    "SELECT ORDER_ID, REGION, EMAIL, AMOUNT FROM SALES.PUBLIC.ORDERS ORDER BY ORDER_ID";

/// A valid token for `user` whose scope claim `claim` (`scope` or `scp`) is `scopes`.
fn scoped_as(env: &HttpEnv, user: &str, claim: &str, scopes: Value) -> String {
    let now = chrono::Utc::now().timestamp();
    let mut claims = json!({
        "iss": env.issuer.issuer.issuer_url(), "sub": user, "aud": env.url(),
        "iat": now, "nbf": now, "exp": now + 300,
        "email": user, "email_verified": true,
    });
    claims[claim] = scopes;
    env.issuer.issuer.mint_claims(claims)
}

/// A valid token for `user` with the space-separated `scope` claim (RFC 9068).
fn scoped(env: &HttpEnv, user: &str, scope: &str) -> String {
    scoped_as(env, user, "scope", json!(scope))
}

/// The protected-resource metadata document.
async fn metadata(env: &HttpEnv) -> Value {
    env.http
        .get(format!(
            "{}/.well-known/oauth-protected-resource/mcp",
            env.base()
        ))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn post(
    env: &HttpEnv,
    token: &str,
    session: Option<&str>,
    body: Value,
) -> (u16, String, Value) {
    let mut request = env
        .http
        .post(env.url())
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("mcp-protocol-version", "2025-06-18")
        .json(&body);
    if let Some(s) = session {
        request = request.header("mcp-session-id", s);
    }
    let response = bounded("POST /mcp", request.send()).await.expect("answer");
    let status = response.status().as_u16();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let session_id = response
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let text = bounded("body", response.text()).await.unwrap_or_default();
    let body = serde_json::from_str::<Value>(&text)
        .ok()
        .or_else(|| {
            text.lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .find_map(|d| serde_json::from_str(d.trim()).ok())
        })
        .unwrap_or(Value::Null);
    let body = match (session_id, body) {
        (Some(id), Value::Object(mut m)) => {
            m.insert("_session".into(), json!(id));
            Value::Object(m)
        }
        (_, body) => body,
    };
    (status, challenge, body)
}

async fn open_session(env: &HttpEnv, token: &str) -> String {
    let (status, _, body) = post(
        env,
        token,
        None,
        json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
               "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                          "clientInfo": {"name": "scopes", "version": "1"}}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let session = body["_session"].as_str().expect("session id").to_string();
    let (status, _, _) = post(
        env,
        token,
        Some(&session),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    )
    .await;
    assert_eq!(status, 202);
    session
}

fn call(id: u64, tool: &str, arguments: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
           "params": {"name": tool, "arguments": arguments}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_without_the_required_or_tool_scopes_get_403_insufficient_scope() {
    let env = HttpEnv::start_with(|cfg| {
        let oauth = cfg.identity.oauth.as_mut().unwrap();
        oauth.required_scopes = vec!["mcp".into()];
        oauth.tool_scopes = BTreeMap::from([(
            "query_snowflake".to_string(),
            vec!["sql:snowflake".to_string()],
        )]);
    })
    .await;

    // The metadata names every scope the server asks for.
    let meta = metadata(&env).await;
    assert_eq!(meta["scopes_supported"], json!(["mcp", "sql:snowflake"]));

    // No `mcp` scope: refused at initialize.
    let (status, challenge, body) = post(
        &env,
        &scoped(&env, ALICE, "openid"),
        None,
        json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {}}),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(
        challenge.starts_with("Bearer error=\"insufficient_scope\", scope=\"mcp\""),
        "{challenge}"
    );
    assert!(challenge.contains("resource_metadata=\""), "{challenge}");
    assert_eq!(body["error"], "insufficient_scope");

    // `mcp` only: other tools work, query_snowflake is refused before any upstream request.
    let token = scoped(&env, ALICE, "openid mcp");
    let session = open_session(&env, &token).await;
    let (status, _, who) = post(&env, &token, Some(&session), call(1, "whoami", json!({}))).await;
    assert_eq!(status, 200);
    assert_eq!(who["result"]["structuredContent"]["user"], ALICE, "{who}");
    let before = env.sandbox.state.total_requests();
    let (status, challenge, body) = post(
        &env,
        &token,
        Some(&session),
        call(2, "query_snowflake", json!({"sql": SF_ORDERS})),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(
        challenge.contains("error=\"insufficient_scope\", scope=\"sql:snowflake\""),
        "{challenge}"
    );
    assert!(
        body["error_description"]
            .as_str()
            .unwrap_or_default()
            .contains("query_snowflake"),
        "{body}"
    );
    assert_eq!(
        env.sandbox.state.total_requests(),
        before,
        "a refused call reaches no upstream"
    );

    // With the tool's scope (here as an Entra-style `scp` list) the same call runs.
    let full = scoped_as(&env, ALICE, "scp", json!(["mcp", "sql:snowflake"]));
    let session = open_session(&env, &full).await;
    let (status, _, result) = post(
        &env,
        &full,
        Some(&session),
        call(3, "query_snowflake", json!({"sql": SF_ORDERS})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(result["result"]["isError"], false, "{result}");
    assert_eq!(result["result"]["structuredContent"]["row_count"], 4);
    assert!(env.sandbox.state.total_requests() > before);
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_configured_scopes_any_valid_token_works_and_none_are_advertised() {
    let env = HttpEnv::start().await;
    let meta = metadata(&env).await;
    assert!(meta.get("scopes_supported").is_none(), "{meta}");
    let token = env.token(BOB);
    let session = open_session(&env, &token).await;
    let (status, _, result) = post(
        &env,
        &token,
        Some(&session),
        call(1, "query_snowflake", json!({"sql": SF_ORDERS})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        result["result"]["structuredContent"]["row_count"], 8,
        "{result}"
    );
    env.shutdown().await;
}
