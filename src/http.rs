//! The HTTP face of the server: `/mcp` (streamable HTTP, bearer-protected),
//! `/.well-known/oauth-protected-resource[/mcp]` (RFC 9728), `/healthz` and
//! `/readyz` ([`crate::health`]).
//!
//! Layer order on `/mcp`: Origin check → bearer verification → scopes
//! ([`require_scopes`]: 403 `insufficient_scope`) → parse errors as JSON-RPC → rmcp's
//! `StreamableHttpService`, which hands each request's `http::request::Parts`
//! (with the [`VerifiedUser`](crate::identity::VerifiedUser) the middleware
//! inserted) to the tool call. The identity is read per request; a session id
//! is never treated as a credential.
//!
//! [`serve`] runs the listener with hyper-util's connection builder (HTTP/1
//! and HTTP/2) and [`ServeLimits`]: a header-read timeout (hyper's, with a
//! Tokio timer — `axum::serve` has no timer, so it never applies one), an
//! idle timeout on the socket (no request in flight and no bytes moving; this
//! also covers a client that never sends a byte), a deadline for the whole
//! request body, and a cap on concurrent connections (a semaphore around
//! `accept`: past the cap, new connections wait in the kernel's listen
//! backlog until a slot frees). Production deployments should still sit
//! behind a reverse proxy that enforces its own limits.

use crate::config::ServerConfig;
use crate::health::Readiness;
use crate::identity::http::{
    AuthFailureReason, BearerAuth, OriginPolicy, ProtectedResourceMetadata, metadata_router,
    require_allowed_origin, require_bearer,
};
use crate::identity::scopes::{ScopePolicy, require_scopes};
use crate::identity::session::{OwnedSessionManager, SessionOwners, bind_session_to_user};
use crate::metrics::{GaugeReading, Metrics};
use crate::server::GovernedServer;
use axum::Router;
use axum::body::{Body, Bytes, HttpBody};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;
use tower::Service;

/// rmcp answers a body that is not a JSON-RPC message with `415` and a plain
/// text; JSON-RPC 2.0 calls that a parse error (`-32700`), and the MCP
/// streamable HTTP transport says the server "MUST return an HTTP error status
/// code (e.g., 400 Bad Request)" whose body "MAY comprise a JSON-RPC error
/// response that has no id". Rewrite it so a client sees what went wrong.
async fn parse_errors_as_json_rpc(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    const RMCP_PARSE_FAILURE: &str = "fail to deserialize request body";
    let response = next.run(request).await;
    if response.status() != http::StatusCode::UNSUPPORTED_MEDIA_TYPE {
        return response;
    }
    let (parts, body) = response.into_parts();
    let Ok(text) = axum::body::to_bytes(body, 64 * 1024).await else {
        return (parts.status, parts.headers).into_response();
    };
    match std::str::from_utf8(&text)
        .ok()
        .and_then(|t| t.strip_prefix(RMCP_PARSE_FAILURE))
    {
        Some(detail) => (
            http::StatusCode::BAD_REQUEST,
            axum::Json(serde_json::json!({
                "jsonrpc": "2.0",
                "id": null,
                "error": {
                    "code": -32700,
                    "message": format!("Parse error: the request body is not a JSON-RPC message ({})", detail.trim()),
                },
            })),
        )
            .into_response(),
        None => axum::response::Response::from_parts(parts, Body::from(text)),
    }
}

/// rmcp answers a successful session `DELETE` with `202 Accepted`; the
/// session is gone at that point, and clients read 200/204 as success (the
/// Python SDK logs "Session termination failed: 202" otherwise). The MCP
/// transport names no success code, so say what happened: `204 No Content`.
async fn session_delete_answers_no_content(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let is_delete = request.method() == http::Method::DELETE;
    let mut response = next.run(request).await;
    if is_delete && response.status() == http::StatusCode::ACCEPTED {
        *response.status_mut() = http::StatusCode::NO_CONTENT;
        *response.body_mut() = Body::empty();
    }
    response
}

/// Everything the HTTP app needs besides the MCP handler.
pub struct HttpSettings {
    /// This server's resource URL, e.g. `http://127.0.0.1:8080/mcp` (the `aud` of accepted tokens).
    pub resource_url: String,
    /// The issuer named in the protected-resource metadata.
    pub issuer: String,
    pub allowed_origins: Vec<String>,
    /// In-memory sessions (true) or stateless (false).
    pub stateful_sessions: bool,
    /// Live sessions one user may hold (stateful mode).
    pub max_sessions_per_user: usize,
    /// Live sessions over all users (stateful mode).
    pub max_sessions: usize,
    /// OAuth scopes required of every request and per tool.
    pub scopes: ScopePolicy,
    /// Stops the MCP service's sessions on shutdown.
    pub shutdown: CancellationToken,
    /// Counts refused requests and live sessions.
    pub metrics: Metrics,
    /// What `/readyz` answers.
    pub readiness: Readiness,
}

/// Count every request the bearer layer refused, by [`AuthFailureReason`].
async fn count_auth_failures(
    axum::extract::State(metrics): axum::extract::State<Metrics>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let response = next.run(request).await;
    if let Some(AuthFailureReason(reason)) = response.extensions().get::<AuthFailureReason>() {
        metrics.auth_failure(reason);
    }
    response
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
    let origin = Arc::new(OriginPolicy {
        allowed: settings.allowed_origins.clone(),
        resource_url: settings.resource_url.clone(),
    });
    let protected: Router = if settings.stateful_sessions {
        let owners = Arc::new(SessionOwners::new(
            auth.resource_metadata_url.clone(),
            settings.max_sessions_per_user,
            settings.max_sessions,
        ));
        let live = Arc::downgrade(&owners);
        settings.metrics.add_gauge_source(Box::new(move || {
            live.upgrade()
                .map(|owners| GaugeReading::ActiveSessions(owners.len() as i64))
        }));
        let sessions = OwnedSessionManager::new(LocalSessionManager::default(), owners.clone());
        Router::new()
            .fallback_service(StreamableHttpService::new(
                move || Ok(factory_server.clone()),
                Arc::new(sessions),
                config,
            ))
            .layer(axum::middleware::from_fn_with_state(
                owners,
                bind_session_to_user,
            ))
    } else {
        // Stateless: no session ids exist, so there is nothing to bind or cap.
        Router::new().fallback_service(StreamableHttpService::new(
            move || Ok(factory_server.clone()),
            Arc::new(NeverSessionManager::default()),
            config.with_json_response(true),
        ))
    };
    let protected = protected
        .layer(axum::middleware::from_fn(parse_errors_as_json_rpc))
        .layer(axum::middleware::from_fn(session_delete_answers_no_content))
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(settings.scopes.clone()),
            require_scopes,
        ))
        .layer(axum::middleware::from_fn_with_state(auth, require_bearer))
        .layer(axum::middleware::from_fn_with_state(
            settings.metrics.clone(),
            count_auth_failures,
        ))
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
        .merge(metadata_router({
            let mut meta = ProtectedResourceMetadata::new(
                settings.resource_url.clone(),
                settings.issuer.clone(),
            );
            let supported = settings.scopes.supported();
            meta.scopes_supported = (!supported.is_empty()).then_some(supported);
            meta
        }))
        .merge(crate::health::routes(settings.readiness.clone()))
}

/// Connection-level limits of [`serve`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeLimits {
    /// A complete HTTP/1 request head must arrive within this.
    pub header_read_timeout: Duration,
    /// Close a connection with no request in flight and no bytes read or written for this long.
    pub idle_timeout: Duration,
    /// A request body must be complete this long after its head was read.
    pub body_read_timeout: Duration,
    /// Connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
}

impl Default for ServeLimits {
    fn default() -> Self {
        Self::from(&ServerConfig::default())
    }
}

impl From<&ServerConfig> for ServeLimits {
    fn from(cfg: &ServerConfig) -> Self {
        Self {
            header_read_timeout: Duration::from_secs(cfg.header_read_timeout_secs),
            idle_timeout: Duration::from_secs(cfg.idle_timeout_secs),
            body_read_timeout: Duration::from_secs(cfg.body_read_timeout_secs),
            max_connections: cfg.max_connections,
        }
    }
}

/// Serve `app` on `listener` until `shutdown` is cancelled, within `limits`.
///
/// On shutdown the listener closes and open connections are asked to finish
/// (graceful shutdown of each hyper connection); the call returns when they have.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: CancellationToken,
    limits: ServeLimits,
) -> std::io::Result<()> {
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    builder.http2().timer(TokioTimer::new());
    loop {
        let slot = tokio::select! {
            _ = shutdown.cancelled() => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_closed) => {
                    // Nothing closes `slots`; if something ever did, stop accepting.
                    tracing::error!("the connection slots were closed; no longer accepting connections");
                    break;
                }
            },
        };
        let stream = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning (as axum::serve does).
                    tracing::error!(error = %e, "accept error");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let in_flight = Arc::new(AtomicUsize::new(0));
        let io = TokioIo::new(IdleStream::new(
            stream,
            limits.idle_timeout,
            in_flight.clone(),
        ));
        let app = app.clone();
        let body_timeout = limits.body_read_timeout;
        let service =
            hyper::service::service_fn(move |request: http::Request<hyper::body::Incoming>| {
                let mut app = app.clone();
                let guard = InFlight::enter(in_flight.clone());
                let deadline = Instant::now() + body_timeout;
                let request = request.map(|body| Body::new(DeadlineBody::new(body, deadline)));
                async move {
                    let response = app.call(request).await;
                    drop(guard);
                    response
                }
            });
        let connection = builder.serve_connection(io, service).into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Counts the requests in flight on one connection while alive.
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn enter(counter: Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, Ordering::SeqCst);
        Self(counter)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A TCP stream that fails with `TimedOut` once it has been idle for `timeout`:
/// no byte read or written and no request in flight. A streamed response (SSE)
/// writes keep-alive comments, which count as activity.
struct IdleStream {
    inner: tokio::net::TcpStream,
    timeout: Duration,
    deadline: Pin<Box<Sleep>>,
    in_flight: Arc<AtomicUsize>,
}

impl IdleStream {
    fn new(inner: tokio::net::TcpStream, timeout: Duration, in_flight: Arc<AtomicUsize>) -> Self {
        Self {
            inner,
            timeout,
            deadline: Box::pin(tokio::time::sleep(timeout)),
            in_flight,
        }
    }

    fn touch(&mut self) {
        self.deadline.as_mut().reset(Instant::now() + self.timeout);
    }

    /// Called when the inner stream is pending: an error once idle for too long.
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Error> {
        while self.deadline.as_mut().poll(cx).is_ready() {
            if self.in_flight.load(Ordering::SeqCst) == 0 {
                return Poll::Ready(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "connection idle for too long",
                ));
            }
            self.touch(); // a request is being handled: not idle
        }
        Poll::Pending
    }
}

impl AsyncRead for IdleStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if buf.filled().len() > before {
                    this.touch();
                }
                Poll::Ready(result)
            }
            Poll::Pending => this.poll_idle(cx).map(Err),
        }
    }
}

impl AsyncWrite for IdleStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write(cx, buf) {
            Poll::Ready(result) => {
                if matches!(result, Ok(n) if n > 0) {
                    this.touch();
                }
                Poll::Ready(result)
            }
            // A peer that stops reading (full TCP window) is idle too.
            Poll::Pending => this.poll_idle(cx).map(Err),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write_vectored(cx, bufs) {
            Poll::Ready(result) => {
                if matches!(result, Ok(n) if n > 0) {
                    this.touch();
                }
                Poll::Ready(result)
            }
            Poll::Pending => this.poll_idle(cx).map(Err),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// The error of a request body that did not arrive in time.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within the body read timeout")]
pub struct BodyTimeout;

/// A request body that fails with [`BodyTimeout`] if it is not complete by `deadline`.
struct DeadlineBody<B> {
    inner: B,
    deadline: Pin<Box<Sleep>>,
}

impl<B> DeadlineBody<B> {
    fn new(inner: B, deadline: Instant) -> Self {
        Self {
            inner,
            deadline: Box::pin(tokio::time::sleep_until(deadline)),
        }
    }
}

impl<B> HttpBody for DeadlineBody<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<axum::BoxError>,
{
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => Poll::Ready(frame.map(|f| f.map_err(Into::into))),
            Poll::Pending => match this.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(BodyTimeout.into()))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
