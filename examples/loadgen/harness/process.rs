//! Child processes and `/proc` readings: the `immuta-mcp` binary sections 4 and 5
//! spawn (found next to this example or named by `--binary`), a stdio MCP server
//! child, and a process's RSS and peak RSS (`VmRSS`, `VmHWM`, reset through
//! `clear_refs`, Linux `proc(5)`).

use super::SPAWN_TIMEOUT;
use super::stack::Client;
use anyhow::{Result, anyhow, bail};
use rmcp::ServiceExt;
use rmcp::transport::TokioChildProcess;
use std::path::{Path, PathBuf};
use std::process::Stdio;

/// A field of `/proc/<pid>/status` (or this process's) in KiB, e.g. `VmHWM` (peak RSS).
pub(crate) fn proc_status_kib(pid: Option<u32>, field: &str) -> Option<u64> {
    let path = pid.map_or_else(
        || "/proc/self/status".to_string(),
        |p| format!("/proc/{p}/status"),
    );
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().find_map(|line| {
        let value = line.strip_prefix(field)?.strip_prefix(':')?.trim();
        value.strip_suffix("kB")?.trim().parse().ok()
    })
}

/// `immuta-mcp serve --stdio --config <config>` as a child process: an MCP client on its stdio and its pid.
pub(crate) async fn spawn_stdio_server(binary: &Path, config: &Path) -> Result<(Client, u32)> {
    let mut command = tokio::process::Command::new(binary);
    command
        .args(["--log", "warn", "serve", "--stdio", "--config"])
        .arg(config);
    let (transport, _) = TokioChildProcess::builder(command)
        .stderr(Stdio::null())
        .spawn()?;
    let pid = transport
        .id()
        .ok_or_else(|| anyhow!("the server child has no pid"))?;
    let client = tokio::time::timeout(SPAWN_TIMEOUT, ().serve(transport)).await??;
    Ok((client, pid))
}

/// Reset the peak-RSS counter (`VmHWM`) of a process to its current RSS (Linux `clear_refs` value 5).
pub(crate) fn reset_peak_rss(pid: Option<u32>) -> bool {
    let path = pid.map_or_else(
        || "/proc/self/clear_refs".to_string(),
        |p| format!("/proc/{p}/clear_refs"),
    );
    std::fs::write(path, "5").is_ok()
}

/// `immuta-mcp` beside this example's directory.
pub(crate) fn default_binary() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    // target/<profile>/examples/loadgen -> target/<profile>/immuta-mcp
    Some(exe.parent()?.parent()?.join("immuta-mcp"))
}

/// What to do when the server binary is missing.
pub(crate) fn missing_binary_hint(binary: Option<&Path>) -> String {
    format!(
        "the server binary {} does not exist; build it with `cargo build --release --bin immuta-mcp` or pass --binary",
        binary.map_or_else(|| "(unknown)".into(), |b| b.display().to_string())
    )
}

/// The server binary, or an error with [`missing_binary_hint`].
pub(crate) fn require_binary(binary: Option<&Path>) -> Result<PathBuf> {
    match binary {
        Some(b) if b.exists() => Ok(b.to_path_buf()),
        _ => bail!("{}", missing_binary_hint(binary)),
    }
}
