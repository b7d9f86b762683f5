//! Section 5, the MCP layer alone: sequential `whoami` calls (no upstream) over
//! stdio to a child `immuta-mcp sandbox`, over streamable HTTP to a child
//! `immuta-mcp sandbox --http`, and over HTTP to an in-process server. It reports
//! p50, p99, mean and sequential calls/s per transport: the cost of MCP framing,
//! transport and (HTTP) bearer verification.

use crate::Sizes;
use crate::harness::SPAWN_TIMEOUT;
use crate::harness::process::missing_binary_hint;
use crate::harness::report::{Report, ms};
use crate::harness::stack::{Client, Stack, call, http_client};
use crate::harness::stats::Stats;
use anyhow::{Result, anyhow, bail};
use immuta_mcp::sandbox::Fixture;
use rmcp::ServiceExt;
use rmcp::transport::TokioChildProcess;
use serde_json::json;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};

/// `whoami` round trips over stdio (child `immuta-mcp sandbox`), over HTTP (child `immuta-mcp sandbox --http`)
/// and over HTTP to an in-process server.
pub(crate) async fn run(report: &mut Report, sizes: &Sizes, binary: Option<&Path>) -> Result<()> {
    let mut rows = Vec::new();
    if let Some(binary) = binary.filter(|b| b.exists()) {
        let mut command = tokio::process::Command::new(binary);
        command.arg("--log").arg("warn").arg("sandbox");
        let (transport, _) = TokioChildProcess::builder(command)
            .stderr(Stdio::null())
            .spawn()?;
        let client = tokio::time::timeout(SPAWN_TIMEOUT, ().serve(transport)).await??;
        rows.push(
            whoami_row(
                "stdio, child `immuta-mcp sandbox`",
                &client,
                sizes.whoami_calls,
            )
            .await?,
        );
        client.cancel().await.ok();

        let mut child = tokio::process::Command::new(binary)
            .args(["--log", "warn", "sandbox", "--http", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let stderr = child
            .stderr
            .take()
            .ok_or_else(|| anyhow!("no stderr pipe"))?;
        let (url, token) =
            tokio::time::timeout(SPAWN_TIMEOUT, endpoint_and_token(stderr)).await??;
        let client = http_client(&url, &token, 1).await?;
        rows.push(
            whoami_row(
                "streamable HTTP, child `immuta-mcp sandbox --http`",
                &client,
                sizes.whoami_calls,
            )
            .await?,
        );
        client.cancel().await.ok();
        child.start_kill().ok();
        let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
    } else {
        report.line(&format!(
            "(child-process rows skipped: {})",
            missing_binary_hint(binary)
        ));
    }
    let stack = Stack::start(Fixture::demo()).await?;
    let client = stack.client("alice@example.com", 1).await?;
    rows.push(
        whoami_row(
            "streamable HTTP, in-process server",
            &client,
            sizes.whoami_calls,
        )
        .await?,
    );
    client.cancel().await.ok();
    stack.stop().await;
    report.table(
        &[
            "transport",
            "calls",
            "p50 ms",
            "p99 ms",
            "mean ms",
            "calls/s (sequential)",
        ],
        &rows,
    );
    report.line("`whoami` touches no upstream: this is the MCP framing, transport and (HTTP) bearer verification cost.");
    Ok(())
}

/// `calls` sequential `whoami` calls after five unmeasured ones: p50, p99, mean and calls/s.
async fn whoami_row(label: &str, client: &Client, calls: usize) -> Result<Vec<String>> {
    for _ in 0..5 {
        call(client, "whoami", json!({})).await?;
    }
    let mut samples = Vec::with_capacity(calls);
    let started = Instant::now();
    for _ in 0..calls {
        let t = Instant::now();
        call(client, "whoami", json!({})).await?;
        samples.push(t.elapsed());
    }
    let wall = started.elapsed();
    let s = Stats::of(&samples);
    Ok(vec![
        label.to_string(),
        s.n.to_string(),
        ms(s.p50),
        ms(s.p99),
        ms(s.mean),
        format!("{:.0}", s.n as f64 / wall.as_secs_f64().max(1e-9)),
    ])
}

/// Read `immuta-mcp sandbox --http` stderr until it names the MCP endpoint and a bearer token, then keep draining it.
async fn endpoint_and_token(stderr: tokio::process::ChildStderr) -> Result<(String, String)> {
    let mut lines = BufReader::new(stderr).lines();
    let mut url = None;
    while let Some(line) = lines.next_line().await? {
        let trimmed = line.trim();
        if let Some(rest) = trimmed.strip_prefix("MCP endpoint") {
            url = Some(rest.trim().to_string());
        } else if let (Some(u), Some((_, token))) = (&url, trimmed.split_once("@example.com: ")) {
            let found = (u.clone(), token.trim().to_string());
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
            return Ok(found);
        }
    }
    bail!("`immuta-mcp sandbox --http` exited without printing its endpoint and tokens")
}
