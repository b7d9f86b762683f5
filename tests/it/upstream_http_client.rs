//! Rule: upstream requests never follow a redirect, `network.resolve` changes only the address
//! (URL, TLS name and `Host` stay the host's), and certificates are always verified.
//!
//! The upstream HTTP client (`immuta_mcp::http_client`): redirects are never
//! followed (security audit F10), `network.resolve` sends a host name to a
//! loopback address while the URL, TLS name and `Host` stay the host's, and
//! `network.extra_ca_file` adds a trusted CA (without it, the sandbox's
//! HTTPS emulator is refused: certificates are really verified).

use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use immuta_mcp::config::{Limits, NetworkConfig};
use immuta_mcp::http_client;
use immuta_mcp::sandbox::{Sandbox, SandboxOptions};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    url
}

#[tokio::test]
async fn redirects_are_not_followed_so_credentials_stay_with_their_host() {
    let hits = Arc::new(AtomicUsize::new(0));
    let seen = hits.clone();
    let target = serve(Router::new().route(
        "/",
        get(move |headers: HeaderMap| {
            let seen = seen.clone();
            async move {
                seen.fetch_add(1, Ordering::SeqCst);
                format!("{:?}", headers.get(header::AUTHORIZATION))
            }
        }),
    ))
    .await;
    let location = format!("{target}/");
    let redirector = serve(Router::new().route(
        "/api",
        get(move || {
            let location = location.clone();
            async move {
                (
                    StatusCode::TEMPORARY_REDIRECT,
                    [(header::LOCATION, location)],
                )
                    .into_response()
            }
        }),
    ))
    .await;
    let client = http_client::build(&Limits::default()).expect("client");
    let resp = client
        .get(format!("{redirector}/api"))
        .bearer_auth("agent-secret")
        .send()
        .await
        .expect("answer");
    assert_eq!(
        resp.status(),
        StatusCode::TEMPORARY_REDIRECT,
        "the 3xx is handed to the caller"
    );
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "the redirect target never saw the request (or its Authorization)"
    );
}

#[tokio::test]
async fn resolve_and_extra_ca_reach_the_sandbox_at_its_account_host() {
    let sandbox = Sandbox::start(SandboxOptions::default())
        .await
        .expect("sandbox");
    let url = format!("https://{}/api/v2/statements/none", sandbox.snowflake_host);
    let resolve_only = NetworkConfig {
        resolve: vec![sandbox.snowflake_resolve()],
        extra_ca_file: None,
    };
    let untrusting = http_client::build_with(&Limits::default(), &resolve_only).expect("client");
    let err = untrusting
        .get(&url)
        .send()
        .await
        .expect_err("the sandbox CA is not trusted without extra_ca_file");
    assert!(err.is_connect() || err.is_request(), "{err:?}");

    let trusting = http_client::build_with(
        &Limits::default(),
        &NetworkConfig {
            resolve: vec![sandbox.snowflake_resolve()],
            extra_ca_file: Some(sandbox.ca_file().to_path_buf()),
        },
    )
    .expect("client");
    let resp = trusting
        .get(&url)
        .send()
        .await
        .expect("TLS to the emulator");
    // The emulator answered (it wants credentials): HTTPS, the host name
    // resolved to loopback, the certificate verified against the extra CA.
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    sandbox.shutdown().await;
}
