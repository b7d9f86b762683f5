//! Moving JSON-RPC between the desktop client (newline-delimited JSON on
//! stdio) and the shared server (MCP streamable HTTP, 2025-06-18
//! "Transports"): every stdin message is POSTed with the bearer token, the
//! `Mcp-Session-Id` the server assigned and `MCP-Protocol-Version`; a JSON
//! answer or each event of an SSE answer goes to stdout. Requests run
//! concurrently (so a `notifications/cancelled` can overtake a long call);
//! notifications and responses are sent in order. After initialization a GET
//! stream carries server-initiated messages. At stdin EOF the session is
//! ended with DELETE.
//!
//! A 401 triggers [`Session::after_unauthorized`] and one retry. When no
//! token can be had within the login timeout, a request gets one JSON-RPC
//! error naming the cause. Only MCP frames reach stdout; tokens never do.

use super::{BridgeError, Session};
use crate::secret::Secret;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

/// JSON-RPC error code of "the bridge could not sign in" (implementation-defined range).
pub const SIGN_IN_FAILED: i64 = -32001;
/// JSON-RPC error code of "the shared server could not be reached or refused the request".
pub const UPSTREAM_FAILED: i64 = -32002;

/// Incremental parser of `text/event-stream` (WHATWG HTML §9.2.6): yields the
/// `data` of each event (lines joined by `\n`), skipping events without data.
#[derive(Default)]
pub struct SseParser {
    pending: Vec<u8>,
    data: Option<String>,
}

impl SseParser {
    pub fn push(&mut self, chunk: &[u8]) -> Vec<String> {
        self.pending.extend_from_slice(chunk);
        let mut events = Vec::new();
        while let Some(pos) = self.pending.iter().position(|b| *b == b'\n') {
            let mut line: Vec<u8> = self.pending.drain(..=pos).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            let line = String::from_utf8_lossy(&line);
            if line.is_empty() {
                if let Some(data) = self.data.take()
                    && !data.is_empty()
                {
                    events.push(data);
                }
            } else if let Some(value) = line.strip_prefix("data") {
                let value = match value.strip_prefix(':') {
                    Some(v) => v.strip_prefix(' ').unwrap_or(v),
                    None if value.is_empty() => "",
                    None => continue, // a field named e.g. "database"
                };
                let data = self.data.get_or_insert_with(String::new);
                if !data.is_empty() {
                    data.push('\n');
                }
                data.push_str(value);
            }
        }
        events
    }
}

struct Upstream {
    session: Arc<Session>,
    out: mpsc::UnboundedSender<String>,
    session_id: Mutex<Option<String>>,
    protocol_version: Mutex<Option<String>>,
    /// Ids of requests the client cancelled (as JSON text).
    cancelled: Mutex<std::collections::HashSet<String>>,
}

enum Kind {
    Request(Value),
    Notification,
    Response,
}

fn kind_of(msg: &Value) -> Kind {
    match (msg.get("method"), msg.get("id")) {
        (Some(_), Some(id)) => Kind::Request(id.clone()),
        (Some(_), None) => Kind::Notification,
        _ => Kind::Response,
    }
}

fn error_response(id: &Value, code: i64, message: String) -> String {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}}).to_string()
}

impl Upstream {
    fn emit(&self, message: String) {
        let _ = self.out.send(message);
    }

    /// A token within the login timeout, or the error text for the client.
    async fn token(&self, unauthorized: Option<&Secret>) -> Result<Secret, (i64, String)> {
        let opts = self.session.options();
        let wait = async {
            match unauthorized {
                Some(rejected) => self.session.after_unauthorized(rejected).await,
                None => self.session.access_token().await,
            }
        };
        match tokio::time::timeout(opts.login_timeout, wait).await {
            Ok(Ok(token)) => Ok(token),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "no access token");
                Err((
                    SIGN_IN_FAILED,
                    format!("immuta-mcp connect could not sign in to {}: {e}", opts.url),
                ))
            }
            Err(_) => Err((
                SIGN_IN_FAILED,
                format!(
                    "immuta-mcp connect: the sign-in to {} did not complete within {} s; \
                     complete the sign-in shown on the bridge's stderr, then restart this server",
                    opts.url,
                    opts.login_timeout.as_secs()
                ),
            )),
        }
    }

    fn request(&self, method: reqwest::Method, token: &Secret) -> reqwest::RequestBuilder {
        let mut req = self
            .session
            .mcp_http()
            .request(method, &self.session.options().url)
            .bearer_auth(token.expose())
            .header("accept", "application/json, text/event-stream");
        if let Some(id) = self
            .session_id
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            req = req.header("mcp-session-id", id);
        }
        if let Some(v) = self
            .protocol_version
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            req = req.header("mcp-protocol-version", v);
        }
        req
    }

    /// Send with the current token; on 401 renew once and resend.
    async fn send(
        &self,
        method: reqwest::Method,
        body: Option<&str>,
    ) -> Result<reqwest::Response, (i64, String)> {
        let token = self.token(None).await?;
        let response = self.send_once(&method, body, &token).await?;
        if response.status() != reqwest::StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        tracing::info!("the server refused the access token (401); renewing it");
        let renewed = self.token(Some(&token)).await?;
        self.send_once(&method, body, &renewed).await
    }

    async fn send_once(
        &self,
        method: &reqwest::Method,
        body: Option<&str>,
        token: &Secret,
    ) -> Result<reqwest::Response, (i64, String)> {
        let mut req = self.request(method.clone(), token);
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        req.send().await.map_err(|e| {
            (
                UPSTREAM_FAILED,
                format!(
                    "immuta-mcp connect cannot reach {}: {}",
                    self.session.options().url,
                    e.without_url()
                ),
            )
        })
    }

    /// Forward every message of a response body (JSON or SSE) to stdout.
    /// Returns the answer to `request_id`, if one came.
    async fn relay(
        &self,
        mut response: reqwest::Response,
        request_id: Option<&Value>,
    ) -> Option<Value> {
        let mut answer = None;
        let mut pass = |v: Value| {
            let answers =
                request_id.is_some_and(|id| v.get("id") == Some(id) && v.get("method").is_none());
            self.emit(v.to_string());
            if answers {
                answer = Some(v);
            }
        };
        let is_sse = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("text/event-stream"));
        if !is_sse {
            match response.bytes().await {
                Ok(body) if !body.is_empty() => match serde_json::from_slice::<Value>(&body) {
                    Ok(v) => pass(v),
                    Err(e) => tracing::warn!(error = %e, "the server sent a body that is not JSON"),
                },
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e.without_url(), "reading the server's answer"),
            }
            return answer;
        }
        let mut parser = SseParser::default();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    for data in parser.push(&chunk) {
                        match serde_json::from_str::<Value>(&data) {
                            Ok(v) => pass(v),
                            Err(e) => {
                                tracing::warn!(error = %e, "an SSE event that is not JSON was dropped")
                            }
                        }
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(error = %e.without_url(), "the server's event stream broke");
                    break;
                }
            }
        }
        answer
    }

    fn was_cancelled(&self, id: &Value) -> bool {
        self.cancelled
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&id.to_string())
    }

    /// Forward one stdin message and everything the server answers to it.
    async fn forward(self: Arc<Self>, line: String, msg: Value) {
        let kind = kind_of(&msg);
        if msg.get("method").and_then(Value::as_str) == Some("notifications/cancelled")
            && let Some(id) = msg.pointer("/params/requestId")
        {
            self.cancelled
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(id.to_string());
        }
        let is_initialize = msg.get("method").and_then(Value::as_str) == Some("initialize");
        if is_initialize {
            // A new session: forget the old one's id and version.
            *self.session_id.lock().unwrap_or_else(|e| e.into_inner()) = None;
            *self
                .protocol_version
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = None;
            eprintln!(
                "immuta-mcp connect: connecting to {} (signing in if needed)",
                self.session.options().url
            );
        }
        let response = match self.send(reqwest::Method::POST, Some(&line)).await {
            Ok(r) => r,
            Err((code, message)) => {
                match kind {
                    Kind::Request(id) => self.emit(error_response(&id, code, message)),
                    _ => {
                        tracing::warn!(%message, "a notification or response could not be forwarded")
                    }
                }
                return;
            }
        };
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            // A JSON-RPC error from the server is passed through as is.
            if let Ok(v) = serde_json::from_str::<Value>(&body)
                && v.get("jsonrpc").is_some()
            {
                self.emit(v.to_string());
                return;
            }
            let detail: String = body.chars().filter(|c| !c.is_control()).take(300).collect();
            tracing::warn!(%status, "the server refused a message");
            if let Kind::Request(id) = kind {
                let message = if status == reqwest::StatusCode::NOT_FOUND
                    && self
                        .session_id
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .is_some()
                {
                    "the shared server ended this MCP session; restart the server in your client"
                        .to_string()
                } else {
                    format!("the shared server answered HTTP {status}: {detail}")
                };
                self.emit(error_response(&id, UPSTREAM_FAILED, message));
            }
            return;
        }
        if is_initialize
            && let Some(id) = response
                .headers()
                .get("mcp-session-id")
                .and_then(|v| v.to_str().ok())
        {
            *self.session_id.lock().unwrap_or_else(|e| e.into_inner()) = Some(id.to_string());
        }
        let Kind::Request(id) = kind else {
            self.relay(response, None).await;
            return;
        };
        match self.relay(response, Some(&id)).await {
            Some(answer) if is_initialize => {
                let version = answer
                    .pointer("/result/protocolVersion")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                *self
                    .protocol_version
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()) = version;
            }
            Some(_) => {}
            // A cancelled request gets no answer (MCP "Cancellation"); any other must get one.
            None if self.was_cancelled(&id) => {}
            None => self.emit(error_response(
                &id,
                UPSTREAM_FAILED,
                "the shared server's answer broke off before the response; try again".into(),
            )),
        }
    }

    /// The GET stream for server-initiated messages; reconnects while the session lasts.
    async fn listen(self: Arc<Self>) {
        loop {
            let response = match self.send(reqwest::Method::GET, None).await {
                Ok(r) => r,
                Err((_, message)) => {
                    tracing::info!(%message, "no server-initiated message stream");
                    return;
                }
            };
            if response.status() == reqwest::StatusCode::METHOD_NOT_ALLOWED {
                tracing::debug!("the server offers no GET stream");
                return;
            }
            if !response.status().is_success() {
                tracing::info!(status = %response.status(), "the GET stream was refused");
                return;
            }
            self.relay(response, None).await;
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    async fn end_session(&self) {
        let has_session = self
            .session_id
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some();
        if !has_session {
            return;
        }
        let Ok(token) = tokio::time::timeout(Duration::from_secs(5), self.session.access_token())
            .await
            .unwrap_or(Err(BridgeError::Login("timed out".into())))
        else {
            return;
        };
        let _ = tokio::time::timeout(
            Duration::from_secs(5),
            self.request(reqwest::Method::DELETE, &token).send(),
        )
        .await;
    }
}

/// Run the bridge until `input` ends.
pub async fn run<R, W>(session: Arc<Session>, input: R, mut output: W) -> Result<(), BridgeError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (out, mut frames) = mpsc::unbounded_channel::<String>();
    let writer = tokio::spawn(async move {
        while let Some(frame) = frames.recv().await {
            if output.write_all(frame.as_bytes()).await.is_err()
                || output.write_all(b"\n").await.is_err()
                || output.flush().await.is_err()
            {
                break;
            }
        }
    });
    let upstream = Arc::new(Upstream {
        session,
        out: out.clone(),
        session_id: Mutex::new(None),
        protocol_version: Mutex::new(None),
        cancelled: Mutex::new(Default::default()),
    });
    let mut lines = BufReader::new(input).lines();
    let mut listener: Option<tokio::task::JoinHandle<()>> = None;
    let mut in_flight = tokio::task::JoinSet::new();
    while let Some(line) = lines.next_line().await? {
        if line.trim().is_empty() {
            continue;
        }
        let msg: Value = match serde_json::from_str(&line) {
            Ok(v) => v,
            Err(e) => {
                let _ = out.send(
                    json!({"jsonrpc": "2.0", "id": null,
                           "error": {"code": -32700, "message": format!("parse error: {e}")}})
                    .to_string(),
                );
                continue;
            }
        };
        let method = msg
            .get("method")
            .and_then(Value::as_str)
            .map(str::to_string);
        match (kind_of(&msg), method.as_deref()) {
            // initialize: wait for it (the session id comes with its answer).
            (Kind::Request(_), Some("initialize")) => {
                Arc::clone(&upstream).forward(line, msg).await;
            }
            (Kind::Request(_), _) => {
                in_flight.spawn(Arc::clone(&upstream).forward(line, msg));
            }
            _ => {
                Arc::clone(&upstream).forward(line, msg).await;
                if method.as_deref() == Some("notifications/initialized") && listener.is_none() {
                    listener = Some(tokio::spawn(Arc::clone(&upstream).listen()));
                }
            }
        }
        while in_flight.try_join_next().is_some() {}
    }
    // The client went away: in-flight answers have no reader.
    in_flight.abort_all();
    if let Some(l) = listener {
        l.abort();
    }
    upstream.end_session().await;
    drop(upstream);
    drop(out);
    let _ = writer.await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_events_are_split_across_chunks_and_crlf() {
        let mut p = SseParser::default();
        assert!(p.push(b"id: 1\r\ndata: {\"a\"").is_empty());
        assert_eq!(p.push(b":1}\r\n\r\ndata:\n\n"), ["{\"a\":1}"]);
        assert_eq!(
            p.push(b"event: message\ndata: [1,\ndata: 2]\n\n: comment\n\n"),
            ["[1,\n2]"]
        );
        assert!(p.push(b"retry: 10\n\n").is_empty());
    }

    use crate::bridge::store::{FileStore, StoredTokens, TokenStore};
    use crate::bridge::{ConnectOptions, LoginMethod};
    use axum::body::{Body, Bytes};
    use axum::http::{HeaderMap, Method, StatusCode};
    use axum::response::{IntoResponse, Response};
    use tokio::io::{AsyncBufReadExt, BufReader};

    #[derive(Clone, Debug)]
    struct Seen {
        method: Method,
        body: String,
        authorization: Option<String>,
        session: Option<String>,
        version: Option<String>,
    }

    fn header(h: &HeaderMap, name: &str) -> Option<String> {
        h.get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    fn sse(events: Vec<Value>, stay_open: bool) -> Response {
        let frames: Vec<Result<Bytes, std::io::Error>> = events
            .into_iter()
            .map(|e| Ok(Bytes::from(format!("id: 1\ndata: {e}\n\n"))))
            .collect();
        let stream = futures::stream::iter(frames);
        let body = if stay_open {
            Body::from_stream(futures::StreamExt::chain(
                stream,
                futures::stream::pending(),
            ))
        } else {
            Body::from_stream(stream)
        };
        ([("content-type", "text/event-stream")], body).into_response()
    }

    /// A minimal streamable HTTP MCP server recording what the bridge sends.
    async fn fake_server() -> (String, Arc<Mutex<Vec<Seen>>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let resource = format!("{base}/mcp");
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let (b, r) = (base.clone(), resource.clone());
        let record = seen.clone();
        let app = axum::Router::new()
            .route(
                "/prm-from-challenge",
                axum::routing::get(move || async move {
                    axum::Json(json!({"resource": r, "authorization_servers": [b]}))
                }),
            )
            .route(
                "/.well-known/oauth-authorization-server",
                axum::routing::get({
                    let b = base.clone();
                    move || async move {
                        axum::Json(json!({
                            "issuer": b, "token_endpoint": format!("{b}/token"),
                            "device_authorization_endpoint": format!("{b}/device"),
                            "grant_types_supported": [crate::bridge::login::DEVICE_CODE_GRANT],
                        }))
                    }
                }),
            )
            .route(
                "/mcp",
                axum::routing::any(move |method: Method, headers: HeaderMap, body: String| {
                    let record = record.clone();
                    async move {
                        record.lock().unwrap().push(Seen {
                            method: method.clone(),
                            body: body.clone(),
                            authorization: header(&headers, "authorization"),
                            session: header(&headers, "mcp-session-id"),
                            version: header(&headers, "mcp-protocol-version"),
                        });
                        if header(&headers, "authorization").is_none() {
                            // The discovery probe: challenge with a metadata URL only it names.
                            let challenge = format!(
                                "Bearer resource_metadata=\"http://{}/prm-from-challenge\"",
                                header(&headers, "host").unwrap_or_default()
                            );
                            return (StatusCode::UNAUTHORIZED, [("www-authenticate", challenge)])
                                .into_response();
                        }
                        if method == Method::GET {
                            // Server-initiated: a request to the client on the GET stream.
                            return sse(
                                vec![json!({"jsonrpc": "2.0", "id": "srv-1", "method": "ping"})],
                                true,
                            );
                        }
                        if method == Method::DELETE {
                            return StatusCode::OK.into_response();
                        }
                        let msg: Value = serde_json::from_str(&body).unwrap();
                        match (msg.get("method").and_then(Value::as_str), msg.get("id")) {
                            (Some("initialize"), Some(id)) => (
                                [("mcp-session-id", "s1")],
                                axum::Json(json!({"jsonrpc": "2.0", "id": id,
                                    "result": {"protocolVersion": "2025-06-18", "capabilities": {},
                                               "serverInfo": {"name": "fake", "version": "1"}}})),
                            )
                                .into_response(),
                            (Some("tools/broken"), Some(_)) => sse(
                                vec![json!({"jsonrpc": "2.0", "method": "notifications/progress",
                                            "params": {"progressToken": 9, "progress": 1}})],
                                false,
                            ),
                            (Some(_), Some(id)) => sse(
                                vec![
                                    json!({"jsonrpc": "2.0", "method": "notifications/progress",
                                           "params": {"progressToken": 7, "progress": 1}}),
                                    json!({"jsonrpc": "2.0", "id": id, "result": {"ok": true}}),
                                ],
                                false,
                            ),
                            _ => StatusCode::ACCEPTED.into_response(),
                        }
                    }
                }),
            );
        tokio::spawn(async move { axum::serve(listener, app).await });
        (resource, seen)
    }

    #[tokio::test]
    async fn every_kind_of_message_crosses_both_ways_with_session_headers() {
        let (resource, seen) = fake_server().await;
        let issuer = resource.trim_end_matches("/mcp").to_string();
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::files_only(FileStore::new(dir.path()));
        let now = crate::bridge::login::now_secs();
        store
            .save(&StoredTokens {
                resource: resource.clone(),
                issuer,
                client_id: "immuta-mcp".into(),
                access_token: Secret::new("tok-1"),
                refresh_token: None,
                issued_at: now,
                expires_at: now + 3600,
            })
            .await
            .unwrap();
        let session = Session::new(ConnectOptions {
            url: resource,
            login: LoginMethod::Device,
            client_id: "immuta-mcp".into(),
            scope: None,
            token_store: store,
            ca_file: None,
            login_timeout: Duration::from_secs(5),
            open_browser: false,
        })
        .await
        .unwrap();
        let (mut client_in, bridge_in) = tokio::io::duplex(1 << 16);
        let (bridge_out, client_out) = tokio::io::duplex(1 << 16);
        let bridge = tokio::spawn(run(Arc::new(session), bridge_in, bridge_out));
        let mut lines = BufReader::new(client_out).lines();
        let mut next = async || -> Value {
            let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
                .await
                .expect("a frame within 10 s")
                .unwrap()
                .expect("stdout open");
            serde_json::from_str(&line).expect("stdout carries JSON-RPC frames only")
        };
        let mut send = async |v: Value| {
            client_in
                .write_all(format!("{v}\n").as_bytes())
                .await
                .unwrap();
        };

        send(json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}})).await;
        assert_eq!(next().await["result"]["serverInfo"]["name"], "fake");
        send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"})).await;
        // The GET stream brings the server's request; the client's answer goes back.
        let ping = next().await;
        assert_eq!(
            (ping["id"].as_str(), ping["method"].as_str()),
            (Some("srv-1"), Some("ping"))
        );
        send(json!({"jsonrpc": "2.0", "id": "srv-1", "result": {}})).await;
        send(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {}})).await;
        let progress = next().await;
        assert_eq!(progress["method"], "notifications/progress");
        assert_eq!(next().await["result"]["ok"], true);
        send(
            json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
                    "params": {"requestId": 2}}),
        )
        .await;
        // A stream that ends without the answer still gets the client one.
        send(json!({"jsonrpc": "2.0", "id": 9, "method": "tools/broken", "params": {}})).await;
        assert_eq!(next().await["method"], "notifications/progress");
        let broken = next().await;
        assert_eq!(
            (broken["id"].as_i64(), broken["error"]["code"].as_i64()),
            (Some(9), Some(-32002))
        );
        client_in.write_all(b"not json\n").await.unwrap();
        assert_eq!(next().await["error"]["code"], -32700);
        drop(client_in);
        tokio::time::timeout(Duration::from_secs(10), bridge)
            .await
            .expect("the bridge ends at stdin EOF")
            .unwrap()
            .unwrap();

        let seen = seen.lock().unwrap().clone();
        let posted: Vec<Value> = seen
            .iter()
            .filter(|s| s.method == Method::POST)
            .map(|s| serde_json::from_str(&s.body).unwrap())
            .collect();
        let methods: Vec<_> = posted
            .iter()
            .map(|m| {
                m.get("method")
                    .and_then(Value::as_str)
                    .unwrap_or("(response)")
            })
            .collect();
        assert_eq!(
            methods,
            [
                "initialize",
                "notifications/initialized",
                "(response)",
                "tools/call",
                "notifications/cancelled",
                "tools/broken"
            ]
        );
        assert_eq!(posted[2]["id"], "srv-1");
        // Discovery asked once without a token (and found the PRM the challenge named).
        assert_eq!(seen[0].method, Method::GET);
        assert_eq!(seen[0].authorization, None);
        let seen = &seen[1..];
        assert!(
            seen.iter()
                .all(|s| s.authorization.as_deref() == Some("Bearer tok-1"))
        );
        for s in seen.iter().skip(1) {
            assert_eq!(s.session.as_deref(), Some("s1"), "{s:?}");
            assert_eq!(s.version.as_deref(), Some("2025-06-18"), "{s:?}");
        }
        assert!(seen.iter().any(|s| s.method == Method::GET));
        assert_eq!(
            seen.last().unwrap().method,
            Method::DELETE,
            "the session is ended"
        );
    }

    #[test]
    fn messages_are_classified_by_method_and_id() {
        assert!(matches!(
            kind_of(&json!({"jsonrpc":"2.0","id":1,"method":"tools/call"})),
            Kind::Request(_)
        ));
        assert!(matches!(
            kind_of(&json!({"jsonrpc":"2.0","method":"notifications/cancelled"})),
            Kind::Notification
        ));
        assert!(matches!(
            kind_of(&json!({"jsonrpc":"2.0","id":1,"result":{}})),
            Kind::Response
        ));
    }
}
