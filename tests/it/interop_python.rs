//! Rule: the official Python MCP SDK can use every tool over stdio and streamable HTTP.
//!
//! Interop with an MCP client not written in Rust: the official Python SDK
//! (pinned in `tests/interop/requirements.txt`, installed by
//! `scripts/test.sh` into `target/interop-venv`) drives the server over stdio
//! (the `sandbox` binary) and over streamable HTTP with a bearer token:
//! initialize, list tools, a query on each platform (the SDK validates every
//! `structuredContent` against the tool's `outputSchema`), `fetch_more` on a
//! truncated result, a refused write, a
//! cancelled call that reaches Snowflake as a cancel, and session termination
//! (the SDK warns unless DELETE is answered 200/204). Without the client the
//! tests fail, naming the setup step.

use crate::support::*;
use immuta_mcp::sandbox::{Endpoint, Fault};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/interop/python_client.py"
);

fn python() -> PathBuf {
    let python = std::env::var_os("IMMUTA_MCP_INTEROP_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/interop-venv/bin/python")
        });
    assert!(
        python.exists(),
        "the Python MCP client is not installed at {}: run scripts/test.sh (it creates the venv), \
         or set IMMUTA_MCP_INTEROP_PYTHON to a python with `mcp` installed",
        python.display()
    );
    python
}

/// Run the script to its end; `on_line` sees each stdout line and may answer on stdin.
async fn run_client(
    args: &[&str],
    mut on_line: impl FnMut(&str) -> Option<&'static str>,
) -> (Vec<String>, String) {
    let mut child = Command::new(python())
        .arg(SCRIPT)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python starts");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut stderr = child.stderr.take().expect("stderr");
    let stderr_task = tokio::spawn(async move {
        let mut text = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut text)
            .await
            .ok();
        text
    });
    let mut lines = Vec::new();
    let read = async {
        while let Some(line) = stdout.next_line().await.expect("stdout line") {
            if let Some(answer) = on_line(&line) {
                stdin.write_all(answer.as_bytes()).await.expect("answer");
                stdin.flush().await.expect("flush");
            }
            lines.push(line);
        }
    };
    tokio::time::timeout(Duration::from_secs(120), read)
        .await
        .expect("the Python client finishes within 120 s");
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("the Python client exits")
        .expect("exit status");
    let stderr = stderr_task.await.unwrap_or_default();
    assert!(
        status.success() && lines.last().map(String::as_str) == Some("OK"),
        "the Python client failed ({status}):\nstdout:\n{}\nstderr:\n{stderr}",
        lines.join("\n")
    );
    (lines, stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdk_drives_the_server_over_stdio() {
    let binary = env!("CARGO_BIN_EXE_immuta-mcp");
    let (lines, _) = run_client(&["stdio", binary], |_| None).await;
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("TOOLS ") && l.contains("query_snowflake")),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("SNOWFLAKE rows=3")),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("DATABRICKS rows=")),
        "{lines:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdk_drives_the_server_over_streamable_http() {
    let env = HttpEnv::start().await;
    let token = env.token(BOB);
    let faults = env.sandbox.state.clone();
    let (lines, _) = run_client(&["http", env.url(), &token], |line| {
        (line == "CANCEL_READY").then(|| {
            // Hold the next Snowflake statement so the client can cancel it.
            faults
                .faults
                .add(Endpoint::SnowflakeSubmit, Fault::Pending { polls: 100_000 });
            "go\n"
        })
    })
    .await;
    for expected in [
        "SNOWFLAKE rows=3",
        "DATABRICKS rows=",
        "CANCELLED",
        "CLOSED",
    ] {
        assert!(
            lines.iter().any(|l| l.starts_with(expected)),
            "{expected}: {lines:?}"
        );
    }
    assert!(
        env.sandbox.state.count(Endpoint::SnowflakeCancel) >= 1,
        "the MCP cancellation reached Snowflake as a statement cancel"
    );
    env.shutdown().await;
}
