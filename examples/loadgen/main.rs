//! Benchmark harness for immuta-mcp against the sandbox on loopback (issues 7 and 11).
//!
//! One run prints one Markdown report with up to eight sections, one module each:
//! 1. [`round_trips`]: upstream requests of a cold and a warm call of one user, per
//!    platform, read from the sandbox's endpoint counters;
//! 2. [`overhead`]: MCP tool-call latency through the server versus the same
//!    statement posted straight to the emulator with a plain HTTP client, with
//!    the emulator's submit endpoint adding 0 ms and 50 ms;
//! 3. [`concurrency`]: a burst of concurrent cold calls of one user (how many vends,
//!    PATs and tokens it costs) and N users × M calls over streamable HTTP;
//! 4. [`large_results`]: a generated table (1,000,000 rows with `--full`) read with
//!    the default row limit and with `max_rows` = 100,000, through the release
//!    binary serving stdio in a child process, whose peak RSS is read from
//!    `/proc/<pid>/status`;
//! 5. [`mcp_layer`]: `whoami` over stdio and over HTTP;
//! 6. [`agent_pool`]: 100 Snowflake users through one agent and through a pool of 8;
//! 7. [`replicas`]: 1 vs 3 replicas sharing a `redis-server`;
//! 8. [`prewarm`]: the first call with and without pre-warm, as a ratio to a warm call.
//!
//! What the sections share (the in-process stack, the MCP client, the direct HTTP path,
//! upstream counters, percentiles and the report) lives in [`harness`]. This file owns the
//! command line, the run's sizes and the order of the sections.
//!
//! Run it with `scripts/bench.sh [--full] [--only 6,7,8]`, or
//! `cargo build --release --bin immuta-mcp --example loadgen && target/release/examples/loadgen`.
//! Sections 4 and 5 spawn the `immuta-mcp` binary found next to the example's
//! directory (`target/release/immuta-mcp`) or named by `--binary`.
//! Everything is bounded in count and time and stays on 127.0.0.1; the harness
//! measures and reports, it asserts nothing about time.

mod agent_pool;
mod concurrency;
mod harness;
mod large_results;
mod mcp_layer;
mod overhead;
mod prewarm;
mod replicas;
mod round_trips;

use anyhow::{Context, Result, bail};
use clap::Parser;
use harness::process::default_binary;
use harness::report::Report;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Parser, Debug)]
#[command(about = "Benchmark immuta-mcp against the sandbox on loopback and print one report")]
struct Args {
    /// The sizes (1,000,000-row table, more samples); default is a quick run of a few minutes.
    #[arg(long)]
    full: bool,
    /// Run only these sections (comma-separated numbers 1-8).
    #[arg(long, value_delimiter = ',')]
    only: Vec<u8>,
    /// Latency samples per path and setting in section 2.
    #[arg(long)]
    calls: Option<usize>,
    /// Concurrent cold calls of one user in section 3.
    #[arg(long)]
    burst: Option<usize>,
    /// User counts of section 3 (comma-separated).
    #[arg(long, value_delimiter = ',')]
    users: Vec<usize>,
    /// Calls per user in section 3.
    #[arg(long)]
    calls_per_user: Option<usize>,
    /// Rows of the generated table in section 4.
    #[arg(long)]
    rows: Option<usize>,
    /// `max_rows` of the paging call in section 4 (the server's cap is 100,000).
    #[arg(long)]
    page_rows: Option<usize>,
    /// `whoami` calls per transport in section 5.
    #[arg(long)]
    whoami_calls: Option<usize>,
    /// The `immuta-mcp` binary for sections 4 and 5 (default: next to this example's directory).
    #[arg(long)]
    binary: Option<PathBuf>,
    /// Internal: build this many decoded rows, print the peak-RSS growth in KiB and exit.
    #[arg(long, hide = true)]
    rows_copy_probe: Option<usize>,
    /// Also write the report to this file.
    #[arg(long)]
    report: Option<PathBuf>,
}

/// Sizes of one run.
#[derive(Debug, Clone)]
struct Sizes {
    calls: usize,
    burst: usize,
    user_levels: Vec<usize>,
    calls_per_user: usize,
    rows: usize,
    page_rows: usize,
    whoami_calls: usize,
    latencies_ms: Vec<u64>,
}

impl Sizes {
    fn from_args(a: &Args) -> Sizes {
        let (calls, calls_per_user, rows, whoami_calls) = if a.full {
            (1000, 50, 1_000_000, 5000)
        } else {
            (200, 20, 200_000, 1000)
        };
        Sizes {
            calls: a.calls.unwrap_or(calls).max(1),
            burst: a.burst.unwrap_or(100).max(1),
            user_levels: if a.users.is_empty() {
                vec![1, 10, 100]
            } else {
                a.users.clone()
            },
            calls_per_user: a.calls_per_user.unwrap_or(calls_per_user).max(1),
            rows: a.rows.unwrap_or(rows).max(1),
            page_rows: a.page_rows.unwrap_or(100_000).max(1),
            whoami_calls: a.whoami_calls.unwrap_or(whoami_calls).max(1),
            latencies_ms: vec![0, 50],
        }
    }
}

/// Every section: its number (as `--only` names it) and its report heading.
const SECTIONS: [(u8, &str); 8] = [
    (1, "Round trips per call"),
    (2, "Server overhead"),
    (3, "Concurrency"),
    (4, "Large results"),
    (5, "MCP layer alone (whoami)"),
    (6, "Agent pool: 100 Snowflake users, 1 agent vs 8"),
    (7, "Replicas sharing Redis: 1 vs 3"),
    (8, "First call with and without pre-warm"),
];

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    if let Some(n) = args.rows_copy_probe {
        return large_results::rows_copy_probe(n);
    }
    immuta_mcp::http_client::install_crypto_provider();
    let sizes = Sizes::from_args(&args);
    let binary = args.binary.clone().or_else(default_binary);
    let wanted = |n: u8| args.only.is_empty() || args.only.contains(&n);
    let mut report = Report::new(args.full, &sizes);
    let started = Instant::now();
    let mut failed = 0;
    for (n, title) in SECTIONS {
        if !wanted(n) {
            continue;
        }
        eprintln!("loadgen: section {n}: {title} ...");
        report.heading(&format!("{n}. {title}"));
        let section_started = Instant::now();
        let outcome = match n {
            1 => round_trips::run(&mut report).await,
            2 => overhead::run(&mut report, &sizes).await,
            3 => concurrency::run(&mut report, &sizes).await,
            4 => large_results::run(&mut report, &sizes, binary.as_deref()).await,
            5 => mcp_layer::run(&mut report, &sizes, binary.as_deref()).await,
            6 => agent_pool::run(&mut report, &sizes).await,
            7 => replicas::run(&mut report, &sizes).await,
            _ => prewarm::run(&mut report).await,
        };
        if let Err(e) = outcome {
            report.line(&format!("**section failed:** {e:#}"));
            failed += 1;
        }
        report.line(&format!(
            "_section time: {:.1} s_",
            section_started.elapsed().as_secs_f64()
        ));
    }
    report.line(&format!(
        "\nTotal run time: {:.1} s",
        started.elapsed().as_secs_f64()
    ));
    println!("{}", report.text);
    if let Some(path) = &args.report {
        std::fs::write(path, &report.text)
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("loadgen: report written to {}", path.display());
    }
    if failed > 0 {
        bail!("{failed} section(s) failed; see the report");
    }
    Ok(())
}
