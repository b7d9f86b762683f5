//! An emulated Databricks Apps reverse proxy for the `databricks_apps` identity tests.
//!
//! It plays what the Apps proxy does in front of an app (Databricks docs,
//! "Access HTTP headers passed to Databricks apps" and "Authentication for AI
//! agents"): it signs the user in (here: the client's `Authorization: Bearer
//! <workspace user token>`, confirmed with the workspace's SCIM `Me`), drops
//! whatever `X-Forwarded-*` headers and `Authorization` the client sent, sets
//! `X-Forwarded-Email`, `X-Forwarded-User`, `X-Forwarded-Preferred-Username`
//! and, with user authorization, `X-Forwarded-Access-Token`, and forwards the
//! request to the app, streaming the answer back (SSE included).

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

struct ProxyState {
    app_base: String,
    workspace: String,
    user_authorization: bool,
    http: reqwest::Client,
}

/// A running proxy; stops when dropped.
pub struct AppsProxy {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    stop: CancellationToken,
}

impl Drop for AppsProxy {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl AppsProxy {
    /// Proxy to the app at `app_base`, signing users in against `workspace`.
    pub async fn start(app_base: &str, workspace: &str, user_authorization: bool) -> AppsProxy {
        let state = Arc::new(ProxyState {
            app_base: app_base.trim_end_matches('/').to_string(),
            workspace: workspace.trim_end_matches('/').to_string(),
            user_authorization,
            http: reqwest::Client::new(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let app = axum::Router::new().fallback(forward).with_state(state);
        let stop = CancellationToken::new();
        let until = stop.clone().cancelled_owned();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(until)
                .await;
        });
        AppsProxy { base, stop }
    }

    /// The app's MCP endpoint behind the proxy.
    pub fn mcp_url(&self) -> String {
        format!("{}/mcp", self.base)
    }
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let v = headers.get("authorization")?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_string())
}

async fn forward(State(proxy): State<Arc<ProxyState>>, request: Request) -> Response {
    let Some(token) = bearer(request.headers()) else {
        return (StatusCode::UNAUTHORIZED, "sign in to the workspace").into_response();
    };
    // Sign-in: who does the workspace say this token belongs to?
    let me = proxy
        .http
        .get(format!("{}/api/2.0/preview/scim/v2/Me", proxy.workspace))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    if !me.status().is_success() {
        return (StatusCode::UNAUTHORIZED, "sign in to the workspace").into_response();
    }
    let me: serde_json::Value = me.json().await.unwrap();
    let user = me["userName"].as_str().unwrap().to_string();

    let (parts, body) = request.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let body = axum::body::to_bytes(body, 16 << 20).await.unwrap();
    let mut headers = reqwest::header::HeaderMap::new();
    for (name, value) in &parts.headers {
        let n = name.as_str();
        if n == "authorization"
            || n == "host"
            || n == "content-length"
            || n.starts_with("x-forwarded-")
        {
            continue; // the client cannot choose these
        }
        headers.append(name.clone(), value.clone());
    }
    let set = |h: &mut reqwest::header::HeaderMap, n: &'static str, v: &str| {
        h.insert(n, HeaderValue::from_str(v).unwrap());
    };
    set(&mut headers, "x-forwarded-email", &user);
    set(&mut headers, "x-forwarded-preferred-username", &user);
    set(
        &mut headers,
        "x-forwarded-user",
        &format!("{}@1234567890", me["id"].as_str().unwrap_or("0")),
    );
    if proxy.user_authorization {
        set(&mut headers, "x-forwarded-access-token", &token);
    }
    let upstream = proxy
        .http
        .request(parts.method, format!("{}{path}", proxy.app_base))
        .headers(headers)
        .body(body)
        .send()
        .await;
    let upstream = match upstream {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    let mut response = Response::builder().status(upstream.status().as_u16());
    for (name, value) in upstream.headers() {
        if name.as_str() != "content-length" && name.as_str() != "transfer-encoding" {
            response = response.header(name, value);
        }
    }
    // Stream the body through (an SSE answer arrives in pieces).
    let stream = futures::stream::unfold(Some(upstream), |state| async move {
        let mut r = state?;
        match r.chunk().await {
            Ok(Some(bytes)) => Some((Ok::<_, reqwest::Error>(bytes), Some(r))),
            Ok(None) => None,
            Err(e) => Some((Err(e), None)),
        }
    });
    response.body(Body::from_stream(stream)).unwrap()
}
