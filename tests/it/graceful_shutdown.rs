//! Rule: on SIGTERM/SIGINT calls in flight finish or are cancelled on the platform, the minted PATs
//! are removed, and the process exits 0.
//!
//! SIGTERM/SIGINT on `immuta-mcp serve --http` (the binary as a child
//! process, on a sandbox in this process): calls in flight finish within
//! `server.shutdown_deadline_secs`, the rest are cancelled on the platform,
//! the PATs the process minted are removed, and it exits 0.

use crate::support::{Recorder, bounded};
use immuta_mcp::app::LocalIssuer;
use immuta_mcp::config::{Config, SecretRef};
use immuta_mcp::sandbox::{Counter, Sandbox, SandboxOptions, SandboxSettings};
use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::json;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

const SQL: &str = "SELECT ORDER_ID FROM SALES.PUBLIC.ORDERS";

/// A secret reference the binary reads from a file in `dir`.
fn to_file(dir: &Path, name: &str, secret: &SecretRef) -> SecretRef {
    match secret {
        SecretRef::Value(v) => {
            let path = dir.join(name);
            std::fs::write(&path, v).unwrap();
            SecretRef::File(path)
        }
        other => other.clone(),
    }
}

struct Child {
    process: tokio::process::Child,
    url: String,
    stderr: std::path::PathBuf,
}

async fn start(sandbox: &Sandbox, issuer: &LocalIssuer, dir: &Path, deadline_secs: u64) -> Child {
    let mut cfg: Config = sandbox.client_config();
    cfg.identity.oauth = Some(issuer.oauth_config());
    cfg.databricks = None;
    cfg.cache.prewarm = false;
    cfg.server.shutdown_deadline_secs = deadline_secs;
    let immuta = cfg.immuta.as_mut().unwrap();
    immuta.api_key = to_file(dir, "immuta_key", &immuta.api_key);
    let snowflake = cfg.snowflake.as_mut().unwrap();
    snowflake.verify_identity = false;
    snowflake.private_key = to_file(dir, "snowflake_key", &snowflake.private_key);
    let path = dir.join("immuta-mcp.toml");
    std::fs::write(&path, toml::to_string(&cfg).expect("config serialises")).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let stderr = dir.join("stderr.log");
    let process = tokio::process::Command::new(crate::support::BIN)
        .args(["serve", "--config"])
        .arg(&path)
        .args(["--http", &format!("127.0.0.1:{port}")])
        .env_remove("IMMUTA_MCP_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn immuta-mcp");
    let url = format!("http://127.0.0.1:{port}/mcp");
    crate::support::eventually("the child listens", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    })
    .await;
    Child {
        process,
        url,
        stderr,
    }
}

async fn connect(child: &Child, issuer: &LocalIssuer, user: &str) -> crate::support::Client {
    let token = issuer
        .issuer
        .mint(user, &child.url, Duration::from_secs(300));
    let config =
        StreamableHttpClientTransportConfig::with_uri(child.url.clone()).auth_header(token);
    let transport = StreamableHttpClientTransport::with_client(reqwest::Client::new(), config);
    bounded("initialize", Recorder::default().serve(transport))
        .await
        .expect("connects")
}

/// SIGTERM the child and wait for it; (exit success, stderr).
async fn terminate(mut child: Child) -> (bool, String) {
    let pid = child.process.id().expect("running").to_string();
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(sent.success());
    let status = bounded("the child exits", child.process.wait())
        .await
        .expect("wait");
    (
        status.success(),
        std::fs::read_to_string(&child.stderr).unwrap(),
    )
}

async fn sandbox_with_delay(delay: Duration) -> Sandbox {
    immuta_mcp::http_client::install_crypto_provider();
    let settings = SandboxSettings {
        snowflake_statement_delay: delay,
        // Long statements answer 202 with their handle at once (as Snowflake
        // does after its synchronous wait), so the server can cancel them.
        snowflake_sync_wait: Duration::from_millis(100),
        ..SandboxSettings::default()
    };
    Sandbox::start(SandboxOptions {
        settings,
        ..SandboxOptions::default()
    })
    .await
    .expect("sandbox")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_long_query_cancels_it_on_snowflake_and_removes_the_pat() {
    let sandbox = sandbox_with_delay(Duration::from_secs(120)).await;
    let issuer = LocalIssuer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let child = start(&sandbox, &issuer, dir.path(), 1).await;
    let client = connect(&child, &issuer, crate::support::ALICE).await;
    let call = tokio::spawn(async move {
        let params = CallToolRequestParams::new("query_snowflake")
            .with_arguments(crate::support::args(json!({ "sql": SQL })));
        let _ = client.call_tool(params).await;
        client
    });
    crate::support::eventually("the long statement runs and is polled", || {
        sandbox.state.executed().iter().any(|s| s.sql == SQL)
            && sandbox
                .state
                .count(immuta_mcp::sandbox::Endpoint::SnowflakeStatus)
                > 0
    })
    .await;
    assert_eq!(sandbox.state.counter(Counter::PatsCreated), 1);
    let (ok, stderr) = terminate(child).await;
    assert!(ok, "exit 0:\n{stderr}");
    assert_eq!(
        sandbox.state.counter(Counter::StatementsCancelled),
        1,
        "the running statement was cancelled on Snowflake:\n{stderr}"
    );
    assert_eq!(
        sandbox.state.counter(Counter::PatsRemoved),
        1,
        "the PAT this process minted was removed:\n{stderr}"
    );
    assert!(
        stderr.contains("1 call(s) cancelled, 1 PAT(s) removed"),
        "{stderr}"
    );
    let _ = bounded("the client sees the end", call).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_that_ends_within_the_deadline_finishes_before_the_process_exits() {
    let sandbox = sandbox_with_delay(Duration::from_millis(1500)).await;
    let issuer = LocalIssuer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let child = start(&sandbox, &issuer, dir.path(), 20).await;
    let client = connect(&child, &issuer, crate::support::BOB).await;
    let call = tokio::spawn(async move {
        let params = CallToolRequestParams::new("query_snowflake")
            .with_arguments(crate::support::args(json!({ "sql": SQL })));
        client.call_tool(params).await
    });
    crate::support::eventually("the statement runs", || {
        sandbox.state.executed().iter().any(|s| s.sql == SQL)
    })
    .await;
    let (ok, stderr) = terminate(child).await;
    assert!(ok, "exit 0:\n{stderr}");
    let result = bounded("the call", call).await.unwrap().expect("answered");
    assert_ne!(result.is_error, Some(true), "{:?}", result);
    assert_eq!(sandbox.state.counter(Counter::StatementsCancelled), 0);
    assert_eq!(sandbox.state.counter(Counter::PatsRemoved), 1);
    assert!(
        stderr.contains("0 call(s) cancelled, 1 PAT(s) removed"),
        "{stderr}"
    );
}
