//! What the integration tests share: start the sandbox and the HTTP server
//! in-process with a local OAuth issuer, spawn the built binary as a stdio MCP
//! server with its stdout and stderr captured, connect rmcp's client to
//! either, read tool results, check output for leaked secrets ([`leak`]) and
//! capture this process's logs per test ([`logs`]).
//!
//! Every wait is bounded ([`bounded`], [`eventually`]); servers bind 127.0.0.1.
//! Also compiled into `tests/soak.rs`, which uses a subset, hence the
//! `dead_code` allowance.

#![allow(dead_code)]

mod apps_proxy;
pub mod emulator;
pub mod hardening;
pub mod leak;
pub mod logs;
pub mod raw_http;
#[allow(unused_imports)] // tests/soak.rs shares this module and uses a subset
pub use apps_proxy::AppsProxy;
mod redis_data;
mod redis_server;
#[allow(unused_imports)] // tests/soak.rs shares this module and uses a subset
pub use leak::*;
#[allow(unused_imports)] // tests/soak.rs shares this module and uses a subset
pub use logs::{LogCapture, Threads, with_logs};
#[allow(unused_imports)] // tests/soak.rs shares this module and uses a subset
pub use redis_server::RedisServer;

use immuta_mcp::app::{self, HttpServer, LocalIssuer};
use immuta_mcp::config::Config;
use immuta_mcp::sandbox::{Counter, Endpoint, Sandbox, SandboxOptions};
use rmcp::model::{
    CallToolRequestParams, CallToolResult, ClientRequest, JsonObject, ProgressNotificationParam,
    ProgressToken, Request,
};
use rmcp::service::{NotificationContext, PeerRequestOptions, RequestHandle, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ClientHandler, RoleClient, ServiceError, ServiceExt};
use serde_json::Value;
use std::future::Future;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const ALICE: &str = "alice@example.com";
pub const BOB: &str = "bob@example.com";
pub const CAROL: &str = "carol@example.com";

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_immuta-mcp");

/// Longest any single step of a test may take.
pub const STEP: Duration = Duration::from_secs(30);

/// Every sandbox endpoint (for "no upstream request was made" checks).
pub const ALL_ENDPOINTS: &[Endpoint] = &Endpoint::ALL;

/// Await `fut`, failing the test if it takes longer than [`STEP`].
pub async fn bounded<F: Future>(what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(STEP, fut).await {
        Ok(out) => out,
        Err(_) => panic!("{what}: no answer within {STEP:?}"),
    }
}

/// Poll `cond` every 20 ms until it holds; fail the test after [`STEP`].
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + STEP;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: did not happen within {STEP:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A query request for `sql` with the server's default limits (1,000 rows, 1 MiB), for the
/// tests that drive a platform path (`GovernedQuery::run`) directly.
pub fn query_request(sql: &str) -> immuta_mcp::query::QueryRequest {
    immuta_mcp::query::QueryRequest {
        sql: sql.into(),
        database: None,
        schema: None,
        warehouse: None,
        max_rows: 1000,
        max_bytes: 1 << 20,
        parameters: Vec::new(),
    }
}

/// A JSON object literal as tool arguments.
pub fn args(value: Value) -> JsonObject {
    match value {
        Value::Object(map) => map,
        other => panic!("tool arguments must be an object, got {other}"),
    }
}

/// An MCP client handler that records the progress notifications it receives.
#[derive(Clone, Default)]
pub struct Recorder {
    progress: Arc<Mutex<Vec<ProgressNotificationParam>>>,
}

impl Recorder {
    /// Progress notifications received so far for `token`, in arrival order.
    pub fn progress_for(&self, token: &ProgressToken) -> Vec<ProgressNotificationParam> {
        self.progress
            .lock()
            .unwrap()
            .iter()
            .filter(|p| &p.progress_token == token)
            .cloned()
            .collect()
    }
}

impl ClientHandler for Recorder {
    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.progress.lock().unwrap().push(params);
    }
}

pub type Client = RunningService<RoleClient, Recorder>;

/// `tools/call` with a bound.
pub async fn call(
    client: &Client,
    tool: &str,
    arguments: Value,
) -> Result<CallToolResult, ServiceError> {
    let params = CallToolRequestParams::new(tool.to_string()).with_arguments(args(arguments));
    bounded(&format!("tools/call {tool}"), client.call_tool(params)).await
}

/// `tools/call` that must produce a successful (non-error) tool result.
pub async fn call_ok(client: &Client, tool: &str, arguments: Value) -> CallToolResult {
    let result = call(client, tool, arguments.clone())
        .await
        .unwrap_or_else(|e| panic!("tools/call {tool} {arguments}: protocol error {e}"));
    assert_ne!(
        result.is_error,
        Some(true),
        "tools/call {tool} {arguments} failed: {}",
        text_of(&result)
    );
    result
}

/// `tools/call` that must produce an `isError: true` tool result; returns its text.
pub async fn call_err(client: &Client, tool: &str, arguments: Value) -> String {
    let result = call(client, tool, arguments.clone())
        .await
        .unwrap_or_else(|e| panic!("tools/call {tool} {arguments}: protocol error {e}"));
    assert_eq!(
        result.is_error,
        Some(true),
        "tools/call {tool} {arguments} should fail, got: {}",
        text_of(&result)
    );
    text_of(&result)
}

/// Start a `tools/call` the caller can cancel (the request always carries a progress token).
pub async fn start_call(
    client: &Client,
    tool: &str,
    arguments: Value,
) -> RequestHandle<RoleClient> {
    let request = ClientRequest::CallToolRequest(Request::new(
        CallToolRequestParams::new(tool.to_string()).with_arguments(args(arguments)),
    ));
    bounded(
        "send_cancellable_request",
        client.send_cancellable_request(request, PeerRequestOptions::no_options()),
    )
    .await
    .expect("the request is sent")
}

/// The text content of a tool result.
pub fn text_of(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|c| c.as_text())
        .map(|t| t.text.as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Everything a tool result shows the client (text and structured content).
pub fn visible_output(result: &CallToolResult) -> String {
    format!(
        "{}\n{}",
        text_of(result),
        result.structured_content.clone().unwrap_or(Value::Null)
    )
}

/// A result set as seen in `structuredContent`.
pub struct Rows {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
}

impl Rows {
    pub fn of(result: &CallToolResult) -> Rows {
        let s = result
            .structured_content
            .as_ref()
            .unwrap_or_else(|| panic!("no structuredContent in {}", text_of(result)));
        let columns = s["columns"]
            .as_array()
            .expect("columns array")
            .iter()
            .map(|c| c["name"].as_str().expect("column name").to_string())
            .collect();
        let rows = s["rows"]
            .as_array()
            .expect("rows array")
            .iter()
            .map(|r| r.as_array().expect("row array").clone())
            .collect();
        Rows { columns, rows }
    }

    /// The values of one column (by case-insensitive name).
    pub fn column(&self, name: &str) -> Vec<Value> {
        let i = self
            .columns
            .iter()
            .position(|c| c.eq_ignore_ascii_case(name))
            .unwrap_or_else(|| panic!("no column {name} in {:?}", self.columns));
        self.rows.iter().map(|r| r[i].clone()).collect()
    }

    /// The values of one column as strings (numbers and strings alike).
    pub fn strings(&self, name: &str) -> Vec<String> {
        self.column(name)
            .into_iter()
            .map(|v| match v {
                Value::String(s) => s,
                other => other.to_string(),
            })
            .collect()
    }
}

// ----------------------------------------------------------------------------------------------
// In-process HTTP server
// ----------------------------------------------------------------------------------------------

/// Sandbox + local OAuth issuer + the MCP server over streamable HTTP, all in this process.
pub struct HttpEnv {
    pub sandbox: Sandbox,
    pub issuer: LocalIssuer,
    pub server: HttpServer,
    /// The configuration the server was started with.
    pub config: Config,
    /// A plain HTTP client for raw requests.
    pub http: reqwest::Client,
}

impl HttpEnv {
    /// Start everything with the demo fixture and default settings.
    pub async fn start() -> HttpEnv {
        Self::start_with(|_| {}).await
    }

    /// Start everything, adjusting the server configuration first.
    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> HttpEnv {
        Self::start_with_options(SandboxOptions::default(), tweak).await
    }

    /// Start everything on a sandbox with `options` (fixture, settings, variants).
    pub async fn start_with_options(
        options: SandboxOptions,
        tweak: impl FnOnce(&mut Config),
    ) -> HttpEnv {
        immuta_mcp::http_client::install_crypto_provider();
        let sandbox = bounded("sandbox start", Sandbox::start(options))
            .await
            .expect("sandbox starts");
        let issuer = bounded("issuer start", LocalIssuer::start())
            .await
            .expect("issuer starts");
        let mut config = sandbox.client_config();
        config.identity.oauth = Some(issuer.oauth_config());
        // These tests count upstream requests per call; `prewarm` turns it on.
        config.cache.prewarm = false;
        tweak(&mut config);
        let server = bounded("http start", app::start_http(&config, "127.0.0.1:0"))
            .await
            .expect("HTTP server starts");
        let http = reqwest::Client::builder().build().expect("reqwest client");
        HttpEnv {
            sandbox,
            issuer,
            server,
            config,
            http,
        }
    }

    /// The MCP endpoint (also the audience of accepted tokens).
    pub fn url(&self) -> &str {
        &self.server.resource_url
    }

    /// `http://127.0.0.1:<port>` of the MCP server.
    pub fn base(&self) -> String {
        format!("http://{}", self.server.addr)
    }

    /// A valid token for `user`, for this server, living 5 minutes.
    pub fn token(&self, user: &str) -> String {
        self.issuer
            .issuer
            .mint(user, self.url(), Duration::from_secs(300))
    }

    /// Connect rmcp's streamable HTTP client with `token` (None: no Authorization header).
    pub async fn try_connect(
        &self,
        token: Option<&str>,
        extra_headers: &[(&'static str, &str)],
    ) -> Result<Client, rmcp::service::ClientInitializeError> {
        let mut config = StreamableHttpClientTransportConfig::with_uri(self.url().to_string());
        if let Some(t) = token {
            config = config.auth_header(t.to_string());
        }
        if !extra_headers.is_empty() {
            let headers = extra_headers
                .iter()
                .map(|(name, value)| {
                    (
                        http::HeaderName::from_static(name),
                        http::HeaderValue::from_str(value).expect("header value"),
                    )
                })
                .collect();
            config = config.custom_headers(headers);
        }
        let client = reqwest::Client::builder().build().expect("reqwest client");
        let transport = StreamableHttpClientTransport::with_client(client, config);
        bounded(
            "MCP initialize over HTTP",
            Recorder::default().serve(transport),
        )
        .await
    }

    /// Connect as `user` with a freshly minted token.
    pub async fn connect(&self, user: &str) -> Client {
        self.try_connect(Some(&self.token(user)), &[])
            .await
            .unwrap_or_else(|e| panic!("{user} connects over HTTP: {e}"))
    }

    /// Requests the sandbox received so far, over all endpoints.
    pub fn upstream_requests(&self) -> u64 {
        ALL_ENDPOINTS
            .iter()
            .map(|ep| self.sandbox.state.count(*ep))
            .sum()
    }

    pub fn counter(&self, c: Counter) -> u64 {
        self.sandbox.state.counter(c)
    }

    /// A raw JSON-RPC `initialize` POST to the MCP endpoint.
    pub fn raw_initialize(&self) -> reqwest::RequestBuilder {
        self.http
            .post(self.url())
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(
                serde_json::json!({
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "initialize",
                    "params": {
                        "protocolVersion": "2025-06-18",
                        "capabilities": {},
                        "clientInfo": {"name": "e2e-raw", "version": "1"}
                    }
                })
                .to_string(),
            )
    }

    pub async fn shutdown(self) {
        self.server.shutdown().await;
        self.sandbox.shutdown().await;
    }
}

/// Close an MCP client session (bounded).
pub async fn close(client: Client) {
    let _ = bounded("client close", client.cancel()).await;
}

// ----------------------------------------------------------------------------------------------
// The binary as a stdio child
// ----------------------------------------------------------------------------------------------

type Captured = Arc<Mutex<Vec<u8>>>;

/// `immuta-mcp <args>` as a child process, with rmcp's client on its stdin/stdout.
/// Every byte the child writes to stdout (the MCP stream) and stderr (logs) is kept.
pub struct StdioChild {
    pub client: Client,
    child: tokio::process::Child,
    stdout: Captured,
    stderr: Captured,
    pumps: Vec<tokio::task::JoinHandle<()>>,
}

/// Spawn the child (without connecting a client).
fn spawn_child(
    args: &[&str],
) -> (
    tokio::process::Child,
    Captured,
    Captured,
    tokio::io::DuplexStream,
    Vec<tokio::task::JoinHandle<()>>,
) {
    let mut child = tokio::process::Command::new(BIN)
        .args(args)
        .env_remove("IMMUTA_MCP_LOG")
        .env_remove("IMMUTA_MCP_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn the immuta-mcp binary");
    let stdout_bytes: Captured = Arc::default();
    let stderr_bytes: Captured = Arc::default();
    // Tee stdout: keep a copy, hand the stream to the MCP client through a pipe.
    let (mut to_client, from_child) = tokio::io::duplex(1 << 20);
    let mut out = child.stdout.take().expect("child stdout");
    let kept = stdout_bytes.clone();
    let stdout_pump = tokio::spawn(async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match out.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    kept.lock().unwrap().extend_from_slice(&buf[..n]);
                    if to_client.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        }
    });
    let mut err = child.stderr.take().expect("child stderr");
    let kept = stderr_bytes.clone();
    let stderr_pump = tokio::spawn(async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match err.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => kept.lock().unwrap().extend_from_slice(&buf[..n]),
            }
        }
    });
    (
        child,
        stdout_bytes,
        stderr_bytes,
        from_child,
        vec![stdout_pump, stderr_pump],
    )
}

impl StdioChild {
    /// `immuta-mcp sandbox --user <user> [extra args]`, connected and initialized.
    pub async fn sandbox(user: &str, extra: &[&str]) -> StdioChild {
        let mut all = extra.to_vec();
        all.extend(["sandbox", "--user", user]);
        let (mut child, stdout, stderr, from_child, pumps) = spawn_child(&all);
        let stdin = child.stdin.take().expect("child stdin");
        let connected = bounded(
            "MCP initialize over stdio",
            Recorder::default().serve((from_child, stdin)),
        )
        .await;
        match connected {
            Ok(client) => StdioChild {
                client,
                child,
                stdout,
                stderr,
                pumps,
            },
            Err(e) => {
                let _ = child.start_kill();
                let err = String::from_utf8_lossy(&stderr.lock().unwrap()).to_string();
                panic!("the stdio child did not initialize: {e}\nstderr:\n{err}");
            }
        }
    }

    /// Close the client (stdin EOF), wait for the child to exit, and return
    /// (exit success, everything it wrote to stdout, everything it wrote to stderr).
    pub async fn finish(mut self) -> (bool, String, String) {
        let _ = bounded("client close", self.client.cancel()).await;
        let status = match tokio::time::timeout(STEP, self.child.wait()).await {
            Ok(status) => status.map(|s| s.success()).unwrap_or(false),
            Err(_) => {
                let _ = self.child.kill().await;
                panic!("the stdio child did not exit after stdin closed");
            }
        };
        for pump in self.pumps {
            let _ = bounded("output pumps", pump).await;
        }
        let out = String::from_utf8_lossy(&self.stdout.lock().unwrap()).to_string();
        let err = String::from_utf8_lossy(&self.stderr.lock().unwrap()).to_string();
        (status, out, err)
    }
}

/// Run the binary with `args` and no client; return (exit success, stdout, stderr) once it exits.
pub async fn run_to_exit(args: &[&str]) -> (bool, String, String) {
    let (mut child, stdout, stderr, from_child, pumps) = spawn_child(args);
    drop(child.stdin.take());
    // Drain the tee so the stdout pump never blocks.
    let drain = tokio::spawn(async move {
        let mut from_child = from_child;
        let mut sink = Vec::new();
        let _ = from_child.read_to_end(&mut sink).await;
    });
    let status = match tokio::time::timeout(STEP, child.wait()).await {
        Ok(status) => status.map(|s| s.success()).unwrap_or(false),
        Err(_) => {
            let _ = child.kill().await;
            panic!("immuta-mcp {args:?} did not exit");
        }
    };
    for pump in pumps {
        let _ = bounded("output pumps", pump).await;
    }
    let _ = bounded("drain", drain).await;
    let out = String::from_utf8_lossy(&stdout.lock().unwrap()).to_string();
    let err = String::from_utf8_lossy(&stderr.lock().unwrap()).to_string();
    (status, out, err)
}

// ----------------------------------------------------------------------------------------------
// Secret scanning
// ----------------------------------------------------------------------------------------------
