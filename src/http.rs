//! The HTTP face of the server: `/mcp` (streamable HTTP, bearer-protected),
//! `/.well-known/oauth-protected-resource[/mcp]` (RFC 9728) and `/healthz`.
//!
//! Layer order on `/mcp`: Origin check → bearer verification → rmcp's
//! `StreamableHttpService`, which hands each request's `http::request::Parts`
//! (with the [`VerifiedUser`](crate::identity::VerifiedUser) the middleware
//! inserted) to the tool call. The identity is read per request; a session id
//! is never treated as a credential.

use crate::identity::http::{
    BearerAuth, OriginPolicy, ProtectedResourceMetadata, metadata_router, require_allowed_origin,
    require_bearer,
};
use crate::identity::session::{SessionOwners, bind_session_to_user};
use crate::server::GovernedServer;
use axum::Router;
use axum::routing::get;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Everything the HTTP app needs besides the MCP handler.
pub struct HttpSettings {
    /// This server's resource URL, e.g. `http://127.0.0.1:8080/mcp` (the `aud` of accepted tokens).
    pub resource_url: String,
    /// The issuer named in the protected-resource metadata.
    pub issuer: String,
    pub allowed_origins: Vec<String>,
    /// In-memory sessions (true) or stateless (false).
    pub stateful_sessions: bool,
    /// Stops the MCP service's sessions on shutdown.
    pub shutdown: CancellationToken,
}

/// Host names the MCP service accepts in `Host` (DNS-rebinding protection).
fn allowed_hosts(resource_url: &str) -> Vec<String> {
    let mut hosts = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    if let Ok(url) = url::Url::parse(resource_url)
        && let Some(host) = url.host_str()
    {
        hosts.push(host.trim_matches(|c| c == '[' || c == ']').to_string());
    }
    hosts
}

/// Build the axum app.
pub fn app(server: GovernedServer, auth: Arc<BearerAuth>, settings: &HttpSettings) -> Router {
    let config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(allowed_hosts(&settings.resource_url))
        .with_cancellation_token(settings.shutdown.child_token())
        .with_legacy_session_mode(settings.stateful_sessions);
    let factory_server = server.clone();
    let mcp: Router = if settings.stateful_sessions {
        Router::new().fallback_service(StreamableHttpService::new(
            move || Ok(factory_server.clone()),
            Arc::new(LocalSessionManager::default()),
            config,
        ))
    } else {
        Router::new().fallback_service(StreamableHttpService::new(
            move || Ok(factory_server.clone()),
            Arc::new(NeverSessionManager::default()),
            config.with_json_response(true),
        ))
    };
    let origin = Arc::new(OriginPolicy {
        allowed: settings.allowed_origins.clone(),
        resource_url: settings.resource_url.clone(),
    });
    let owners = Arc::new(SessionOwners::new(
        auth.resource_metadata_url.clone(),
        100_000,
    ));
    let protected = mcp
        .layer(axum::middleware::from_fn_with_state(
            owners,
            bind_session_to_user,
        ))
        .layer(axum::middleware::from_fn_with_state(auth, require_bearer))
        .layer(axum::middleware::from_fn_with_state(
            origin,
            require_allowed_origin,
        ));
    let mcp_path = url::Url::parse(&settings.resource_url)
        .map(|u| u.path().to_string())
        .ok()
        .filter(|p| p.len() > 1)
        .unwrap_or_else(|| "/mcp".to_string());
    Router::new()
        .nest_service(&mcp_path, protected)
        .merge(metadata_router(ProtectedResourceMetadata::new(
            settings.resource_url.clone(),
            settings.issuer.clone(),
        )))
        .route("/healthz", get(|| async { "ok" }))
}

/// Serve `app` on `listener` until `shutdown` is cancelled.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}
