//! Rule: the HTTP server's connection and session limits hold against slow or greedy clients while
//! real clients keep being served.
//!
//! Resource limits of the HTTP server (security audit F1, F11) and the
//! verbatim user claim over HTTP (F4): slowloris connections are closed,
//! real clients keep being served, the connection cap holds and releases,
//! MCP sessions are capped per user and globally, and unknown session ids
//! are refused. Also `list_tables` on Databricks with bound catalog/schema
//! parameters (F6).
//!
//! Only loopback; no timed assertions: every wait is a generous bound that
//! only keeps a regression from hanging the test, and "is still waiting" is
//! checked as "has not finished while the cause is still in place".

use crate::support::{
    ALICE, BOB, CAROL, HttpEnv, Rows, bounded, call_err, call_ok, close, text_of,
};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The request head of a slowloris attacker: never finished (no blank line).
fn half_open_head(env: &HttpEnv) -> String {
    format!("POST /mcp HTTP/1.1\r\nHost: {}\r\n", env.server.addr)
}

async fn hold(env: &HttpEnv, n: usize, send: &str) -> Vec<TcpStream> {
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        let mut s = TcpStream::connect(env.server.addr).await.expect("connect");
        s.write_all(send.as_bytes()).await.expect("write");
        held.push(s);
    }
    held
}

/// Read until the server closes the connection; true if it did (EOF or reset).
async fn closed_by_server(mut s: TcpStream) -> bool {
    let mut buf = Vec::new();
    match bounded("server closes the connection", s.read_to_end(&mut buf)).await {
        Ok(_) => true,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
    }
}

/// Whether the server still holds the connection open (nothing to read, no EOF).
fn still_open(s: &TcpStream) -> bool {
    let mut buf = [0u8; 64];
    matches!(s.try_read(&mut buf), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_half_open_connections_do_not_starve_a_real_client() {
    let env = HttpEnv::start_with(|c| {
        c.server.header_read_timeout_secs = 600;
        c.server.idle_timeout_secs = 600;
    })
    .await;
    let held = hold(&env, 500, &half_open_head(&env)).await;

    let client = env.connect(ALICE).await;
    let result = call_ok(&client, "whoami", json!({})).await;
    assert!(text_of(&result).contains(ALICE), "{}", text_of(&result));
    let rows = call_ok(
        &client,
        "query_snowflake",
        json!({"sql": "SELECT COUNT(*) AS n FROM SALES.PUBLIC.ORDERS"}),
    )
    .await;
    assert_ne!(rows.is_error, Some(true));
    close(client).await;
    assert!(
        held.iter().all(still_open),
        "the attack connections were held open the whole time"
    );
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_and_silent_connections_are_closed_by_the_server() {
    let env = HttpEnv::start_with(|c| {
        c.server.header_read_timeout_secs = 1;
        c.server.idle_timeout_secs = 1;
    })
    .await;
    let half_open = hold(&env, 500, &half_open_head(&env)).await;
    let silent = hold(&env, 20, "").await;
    for s in half_open.into_iter().chain(silent) {
        assert!(closed_by_server(s).await);
    }
    // And the server still serves.
    let client = env.connect(BOB).await;
    assert!(text_of(&call_ok(&client, "whoami", json!({})).await).contains(BOB));
    close(client).await;
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_body_that_never_completes_is_cut_off() {
    let env = HttpEnv::start_with(|c| {
        c.server.body_read_timeout_secs = 1;
        c.server.idle_timeout_secs = 600;
    })
    .await;
    let token = env.token(ALICE);
    let mut s = TcpStream::connect(env.server.addr).await.unwrap();
    let head = format!(
        "POST /mcp HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n\
         Content-Length: 1000\r\n\r\n{{\"jsonrpc\":",
        env.server.addr
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let _ = bounded("the server gives up on the body", s.read_to_end(&mut buf)).await;
    let answer = String::from_utf8_lossy(&buf);
    assert!(
        answer.is_empty() || !answer.starts_with("HTTP/1.1 2"),
        "a truncated body must not be served: {answer}"
    );
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_wait_until_a_slot_frees() {
    let env = HttpEnv::start_with(|c| {
        c.server.max_connections = 8;
        c.server.header_read_timeout_secs = 600;
        c.server.idle_timeout_secs = 600;
    })
    .await;
    let held = hold(&env, 8, &half_open_head(&env)).await;
    let health = format!("{}/healthz", env.base());
    let http = reqwest::Client::new();
    let mut waiting = Box::pin(http.get(&health).send());
    // While the 8 slots are held the 9th connection is not served. (Waiting longer can
    // only make this more true; it cannot make the check fail spuriously.)
    assert!(
        tokio::time::timeout(Duration::from_millis(700), &mut waiting)
            .await
            .is_err(),
        "a connection beyond server.max_connections was served"
    );
    drop(held);
    let response = bounded("served once the slots free", waiting)
        .await
        .expect("healthz");
    assert_eq!(response.status(), 200);
    env.shutdown().await;
}

async fn initialize(env: &HttpEnv, user: &str) -> (u16, Option<String>, Value) {
    let response = bounded(
        "initialize",
        env.raw_initialize().bearer_auth(env.token(user)).send(),
    )
    .await
    .expect("initialize");
    let status = response.status().as_u16();
    let session = response
        .headers()
        .get("mcp-session-id")
        .map(|v| v.to_str().unwrap().to_string());
    let text = response.text().await.unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, session, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_capped_per_user_and_globally_and_closing_frees_a_slot() {
    let env = HttpEnv::start_with(|c| {
        c.server.max_sessions_per_user = 2;
        c.server.max_sessions = 3;
    })
    .await;
    let (s1, a1, _) = initialize(&env, ALICE).await;
    let (s2, _a2, _) = initialize(&env, ALICE).await;
    assert_eq!((s1, s2), (200, 200));
    let (status, session, body) = initialize(&env, ALICE).await;
    assert_eq!(status, 429, "{body}");
    assert!(session.is_none());
    assert_eq!(body["error"], "too_many_sessions");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("max_sessions_per_user")
    );
    let (status, _, _) = initialize(&env, BOB).await;
    assert_eq!(status, 200);
    let (status, _, body) = initialize(&env, CAROL).await;
    assert_eq!(status, 429);
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("server.max_sessions")
    );

    // Closing a session (DELETE) frees its slot.
    let a1 = a1.expect("session id");
    let deleted = env
        .http
        .delete(env.url())
        .bearer_auth(env.token(ALICE))
        .header("mcp-session-id", &a1)
        .header("mcp-protocol-version", "2025-06-18")
        .send()
        .await
        .unwrap();
    assert_eq!(
        deleted.status(),
        204,
        "a closed session is answered 204 No Content"
    );
    let (status, _, body) = initialize(&env, ALICE).await;
    assert_eq!(status, 200, "{body}");

    // The closed id, and one never issued, are refused before rmcp sees them.
    for id in [a1.as_str(), "00000000-0000-4000-8000-000000000000"] {
        let response = env
            .http
            .post(env.url())
            .bearer_auth(env.token(ALICE))
            .header("mcp-session-id", id)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{id}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "session_not_found");
    }
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn padded_or_unverified_user_claims_get_a_401_challenge() {
    let env = HttpEnv::start().await;
    let issuer = &env.issuer.issuer;
    let now = chrono::Utc::now().timestamp();
    let token = |email: &str, verified: Option<bool>| {
        let mut c = json!({
            "iss": issuer.issuer_url(), "sub": "00u-bob", "email": email,
            "aud": env.url(), "iat": now, "exp": now + 300,
        });
        if let Some(v) = verified {
            c["email_verified"] = json!(v);
        }
        issuer.mint_claims(c)
    };
    let cases = [
        (
            "NBSP",
            token("bob@example.com\u{a0}", Some(true)),
            "user claim",
        ),
        ("tab", token("\tbob@example.com", Some(true)), "user claim"),
        (
            "ideographic space",
            token("bob@example.com\u{3000}", Some(true)),
            "user claim",
        ),
        ("unverified", token(BOB, Some(false)), "not verified"),
        ("no email_verified", token(BOB, None), "not verified"),
    ];
    for (name, token, reason) in &cases {
        let response = env
            .raw_initialize()
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{name}");
        assert!(response.headers().get("mcp-session-id").is_none(), "{name}");
        let challenge = response
            .headers()
            .get("www-authenticate")
            .expect("challenge")
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            challenge.starts_with("Bearer resource_metadata=")
                && challenge.contains("error=\"invalid_token\"")
                && challenge.contains(reason),
            "{name}: {challenge}"
        );
    }
    let response = env
        .raw_initialize()
        .bearer_auth(token(BOB, Some(true)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn databricks_list_tables_binds_the_names_and_refuses_injection() {
    let env = HttpEnv::start().await;
    let bob = env.connect(BOB).await;
    let tables = |r: &rmcp::model::CallToolResult| {
        let mut v = Rows::of(r).strings("table_name");
        v.sort();
        v
    };
    let list = |args: Value| call_ok(&bob, "list_tables", args);
    assert_eq!(
        tables(&list(json!({"platform": "databricks", "database": "main"})).await),
        ["employees", "orders"]
    );
    assert_eq!(
        tables(
            &list(json!({"platform": "databricks", "database": "`main`", "schema": "sales"})).await
        ),
        ["orders"]
    );
    assert!(tables(&list(json!({"platform": "databricks", "database": "other"})).await).is_empty());
    for injected in [
        "`main' OR '1'='1`",
        "`x' UNION SELECT table_catalog, table_schema, table_name, 'x' FROM system.information_schema.tables --`",
    ] {
        let before = env.upstream_requests();
        let err = call_err(
            &bob,
            "list_tables",
            json!({"platform": "databricks", "database": injected}),
        )
        .await;
        assert!(err.contains("not a valid"), "{err}");
        assert_eq!(
            env.upstream_requests(),
            before,
            "refused before any upstream request"
        );
    }
    close(bob).await;
    env.shutdown().await;
}
