//! Benchmark harness for immuta-mcp against the sandbox on loopback (issue 7).
//!
//! One run prints one Markdown report with five sections:
//! 1. round trips per call: upstream requests of a cold and a warm call of one
//!    user, per platform, read from the sandbox's endpoint counters;
//! 2. server overhead: MCP tool-call latency through the server versus the same
//!    statement posted straight to the emulator with a plain HTTP client, with
//!    the emulator's submit endpoint adding 0 ms and 50 ms;
//! 3. concurrency: a burst of concurrent cold calls of one user (how many vends,
//!    PATs and tokens it costs) and N users × M calls over streamable HTTP;
//! 4. large results: a generated table (1,000,000 rows with `--full`) read with
//!    the default row limit and with `max_rows` = 100,000, through the release
//!    binary serving stdio in a child process, whose peak RSS is read from
//!    `/proc/<pid>/status`;
//! 5. the MCP layer alone: `whoami` over stdio and over HTTP.
//!
//! Run it with `scripts/bench.sh [--full]`, or
//! `cargo build --release --bin immuta-mcp --example loadgen && target/release/examples/loadgen`.
//! Sections 4 and 5 spawn the `immuta-mcp` binary found next to the example's
//! directory (`target/release/immuta-mcp`) or named by `--binary`.
//! Everything is bounded in count and time and stays on 127.0.0.1; the harness
//! measures and reports, it asserts nothing about time.

#[path = "loadgen/scale.rs"]
mod scale;

use anyhow::{Context, Result, anyhow, bail};
use clap::Parser;
use futures::future::{join_all, try_join_all};
use immuta_mcp::app::{self, LocalIssuer};
use immuta_mcp::result::Platform;
use immuta_mcp::sandbox::fixture::{GrantSpec, UserSpec};
use immuta_mcp::sandbox::{
    Counter, Endpoint, Fault, Fixture, Sandbox, SandboxOptions, SandboxSettings, SandboxState,
};
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::RunningService;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{RoleClient, ServiceExt};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncBufReadExt, BufReader};

/// No single call may take longer than this (the harness reports it as an error).
const CALL_TIMEOUT: Duration = Duration::from_secs(120);
/// Starting a child process and its first MCP handshake.
const SPAWN_TIMEOUT: Duration = Duration::from_secs(60);

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

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    if let Some(n) = args.rows_copy_probe {
        return rows_copy_probe(n);
    }
    immuta_mcp::http_client::install_crypto_provider();
    let sizes = Sizes::from_args(&args);
    let binary = args.binary.clone().or_else(default_binary);
    let wanted = |n: u8| args.only.is_empty() || args.only.contains(&n);
    let mut report = Report::new(&args, &sizes);
    let started = Instant::now();
    let mut failed = 0;
    let sections: [(u8, &str); 8] = [
        (1, "Round trips per call"),
        (2, "Server overhead"),
        (3, "Concurrency"),
        (4, "Large results"),
        (5, "MCP layer alone (whoami)"),
        (6, "Agent pool: 100 Snowflake users, 1 agent vs 8"),
        (7, "Replicas sharing Redis: 1 vs 3"),
        (8, "First call with and without pre-warm"),
    ];
    for (n, title) in sections {
        if !wanted(n) {
            continue;
        }
        eprintln!("loadgen: section {n}: {title} ...");
        report.heading(&format!("{n}. {title}"));
        let section_started = Instant::now();
        let outcome = match n {
            1 => round_trips(&mut report).await,
            2 => overhead(&mut report, &sizes).await,
            3 => concurrency(&mut report, &sizes).await,
            4 => large_results(&mut report, &sizes, binary.as_deref()).await,
            5 => mcp_layer(&mut report, &sizes, binary.as_deref()).await,
            6 => scale::agent_pool(&mut report, &sizes).await,
            7 => scale::replicas(&mut report, &sizes).await,
            _ => scale::prewarm_latency(&mut report).await,
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

// ---------------------------------------------------------------------------
// Section 1: round trips per call
// ---------------------------------------------------------------------------

/// Upstream requests of a cold and a warm call of one user, per platform.
async fn round_trips(report: &mut Report) -> Result<()> {
    let stack = Stack::start(Fixture::demo()).await?;
    let mut rows = Vec::new();
    // A different user per platform so that each platform's first call is cold.
    for (probe, user) in [
        (Probe::SNOWFLAKE, "alice@example.com"),
        (Probe::DATABRICKS, "bob@example.com"),
    ] {
        let client = stack.client(user, 1).await?;
        let mut measured = Vec::new();
        for _ in 0..3 {
            let before = stack.upstream();
            call(&client, probe.tool, probe.args(None)).await?;
            measured.push(stack.upstream().since(&before));
        }
        let (cold, warm, again) = (&measured[0], &measured[1], &measured[2]);
        rows.push(vec![
            probe.platform.as_str().to_string(),
            format!("{} ({})", cold.total(), cold.describe()),
            format!("{} ({})", warm.total(), warm.describe()),
            format!("{}", again.total()),
            probe.cold_goal().to_string(),
        ]);
        client.cancel().await.ok();
    }
    report.table(
        &[
            "platform",
            "cold call: upstream requests",
            "warm call",
            "3rd call",
            "goal (cold / warm)",
        ],
        &rows,
    );
    report.line(
        "Counted at the emulators (every request, including the agent's PAT `ALTER USER` statement, which is a \
         Snowflake submit). Calls go through the MCP server over streamable HTTP.",
    );
    stack.stop().await;
    Ok(())
}

// ---------------------------------------------------------------------------
// Section 2: server overhead
// ---------------------------------------------------------------------------

/// MCP tool call through the server versus the same statement sent straight to the emulator.
async fn overhead(report: &mut Report, sizes: &Sizes) -> Result<()> {
    let stack = Stack::start(Fixture::demo()).await?;
    let user = "bob@example.com";
    let client = stack.client(user, 1).await?;
    let directs = [
        (
            Probe::SNOWFLAKE,
            Direct::snowflake(&stack.sandbox, user).await?,
        ),
        (
            Probe::DATABRICKS,
            Direct::databricks(&stack.sandbox, user).await?,
        ),
    ];
    let mut rows = Vec::new();
    for &latency in &sizes.latencies_ms {
        for (probe, direct) in &directs {
            stack.sandbox.faults().clear();
            if latency > 0 {
                stack.sandbox.faults().add(
                    probe.submit_endpoint(),
                    Fault::Latency(Duration::from_millis(latency)),
                );
            }
            for _ in 0..3 {
                call(&client, probe.tool, probe.args(None)).await?;
                direct.run(probe.sql, 1000).await?;
            }
            let mut server = Vec::with_capacity(sizes.calls);
            let mut plain = Vec::with_capacity(sizes.calls);
            // Interleaved so that drift (CPU frequency, other load) hits both paths alike.
            for _ in 0..sizes.calls {
                let t = Instant::now();
                call(&client, probe.tool, probe.args(None)).await?;
                server.push(t.elapsed());
                let t = Instant::now();
                direct.run(probe.sql, 1000).await?;
                plain.push(t.elapsed());
            }
            let (s, d) = (Stats::of(&server), Stats::of(&plain));
            rows.push(vec![
                probe.platform.as_str().to_string(),
                format!("{latency} ms"),
                s.n.to_string(),
                s.p50_p99(),
                d.p50_p99(),
                format!("{:.3}", ratio(s.p50, d.p50)),
                format!("{:.3}", ratio(s.p99, d.p99)),
                format!("{:.3}", ratio(s.mean, d.mean)),
                ms(s.p50.saturating_sub(d.p50)),
            ]);
        }
    }
    stack.sandbox.faults().clear();
    report.table(
        &[
            "platform",
            "emulator latency",
            "samples",
            "server p50 / p99 ms",
            "direct p50 / p99 ms",
            "ratio p50",
            "ratio p99",
            "ratio mean",
            "server cost p50 ms",
        ],
        &rows,
    );
    report.line(
        "Server = `tools/call` over streamable HTTP through the in-process server (bearer check, guard, warm credential \
         cache, statement, decode, JSON-RPC). Direct = a plain reqwest POST of the same statement with a PAT / token \
         obtained once, response parsed as JSON. Latency is injected on the submit endpoint only. Goal at 50 ms: ratio ≤ 1.10. \
         With few samples p99 is close to the maximum.",
    );
    client.cancel().await.ok();
    stack.stop().await;
    Ok(())
}

// ---------------------------------------------------------------------------
// Section 3: concurrency
// ---------------------------------------------------------------------------

/// A burst of concurrent cold calls of one user, then N users × M calls.
async fn concurrency(report: &mut Report, sizes: &Sizes) -> Result<()> {
    let total_users: usize = sizes.user_levels.iter().sum();
    let stack = Stack::start(fixture_with_users(total_users)).await?;

    report.line(&format!(
        "**{} concurrent cold calls of one user** (one MCP session, all calls in flight at once)",
        sizes.burst
    ));
    let mut rows = Vec::new();
    for probe in [Probe::SNOWFLAKE, Probe::DATABRICKS] {
        let user = format!("burst-{}@example.com", probe.platform.as_str());
        let client = stack.client(&user, sizes.burst).await?;
        let before = stack.upstream();
        let started = Instant::now();
        let outcomes =
            join_all((0..sizes.burst).map(|_| timed_call(&client, probe.tool, probe.args(None))))
                .await;
        let wall = started.elapsed();
        let d = stack.upstream().since(&before);
        let (ok, errors, first_error) = split_outcomes(outcomes);
        let s = Stats::of(&ok);
        let credential = match probe.platform {
            Platform::Snowflake => d.counter(Counter::PatsCreated),
            Platform::Databricks => d.counter(Counter::OAuthTokensIssued),
        };
        rows.push(vec![
            probe.platform.as_str().to_string(),
            format!("{}/{}", ok.len(), sizes.burst),
            format!("{:.0}", wall.as_secs_f64() * 1e3),
            s.p50_p99(),
            d.counter(Counter::VendsCreated).to_string(),
            credential.to_string(),
            d.counter(Counter::StatementsExecuted).to_string(),
            d.total().to_string(),
            match (errors, first_error) {
                (0, _) => "-".into(),
                (n, Some(e)) => format!("{n}: {}", short(&e)),
                (n, None) => n.to_string(),
            },
        ]);
        client.cancel().await.ok();
    }
    report.table(
        &[
            "platform",
            "ok",
            "wall ms",
            "p50 / p99 ms",
            "vends",
            "PATs / tokens",
            "statements",
            "upstream requests",
            "errors",
        ],
        &rows,
    );
    report.line("Goal: 1 vend and 1 PAT (Snowflake) or 1 token (Databricks) for the whole burst (single-flight).");

    report.line(&format!(
        "\n**N users × {} calls over streamable HTTP** (one session per user; each user calls sequentially, users run \
         concurrently; every level uses users not seen before, so its first wave is cold)",
        sizes.calls_per_user
    ));
    let mut rows = Vec::new();
    for probe in [Probe::SNOWFLAKE, Probe::DATABRICKS] {
        // Each platform re-uses the user pool: credentials are cached per platform, so its first wave is cold too.
        let mut next_user = 0;
        for &n in &sizes.user_levels {
            let users: Vec<String> = (next_user..next_user + n).map(load_user).collect();
            next_user += n;
            let label = probe.platform.as_str();
            rows.push(users_times_calls(&stack, label, probe, &users, sizes.calls_per_user).await?);
        }
    }
    stack.stop().await;
    // What the server itself sustains once Snowflake's per-user PAT limit is out of the way.
    let settings = SandboxSettings {
        pat_limit_per_user: total_users + 10,
        ..SandboxSettings::default()
    };
    let stack = Stack::start_with(fixture_with_users(total_users), settings).await?;
    let mut next_user = 0;
    for &n in &sizes.user_levels {
        let users: Vec<String> = (next_user..next_user + n).map(load_user).collect();
        next_user += n;
        let label = "snowflake, PAT limit raised";
        rows.push(
            users_times_calls(
                &stack,
                label,
                Probe::SNOWFLAKE,
                &users,
                sizes.calls_per_user,
            )
            .await?,
        );
    }
    report.table(
        &[
            "platform",
            "users",
            "cold wave p50 / p99 ms",
            "warm calls",
            "wall s",
            "calls/s",
            "p50 / p99 ms",
            "errors",
            "vends",
            "PATs / tokens",
            "upstream requests / call",
        ],
        &rows,
    );
    report.line(
        "calls/s counts successful calls only. Vends, PATs / tokens and upstream requests cover the level's cold \
         wave and its warm calls (one cold + M warm calls per user).",
    );
    stack.stop().await;
    Ok(())
}

/// One level of section 3: `users` each make one cold call (concurrently), then `calls` warm calls each.
async fn users_times_calls(
    stack: &Stack,
    label: &str,
    probe: Probe,
    users: &[String],
    calls: usize,
) -> Result<Vec<String>> {
    let clients = try_join_all(users.iter().map(|u| stack.client(u, 1))).await?;
    let before = stack.upstream();
    let cold = join_all(
        clients
            .iter()
            .map(|c| timed_call(c, probe.tool, probe.args(None))),
    )
    .await;
    let (cold_ok, cold_errors, _) = split_outcomes(cold);
    let started = Instant::now();
    let per_user = join_all(clients.iter().map(|c| async move {
        let mut out = Vec::with_capacity(calls);
        for _ in 0..calls {
            out.push(timed_call(c, probe.tool, probe.args(None)).await);
        }
        out
    }))
    .await;
    let wall = started.elapsed();
    let d = stack.upstream().since(&before);
    let (ok, errors, first_error) = split_outcomes(per_user.into_iter().flatten().collect());
    let (c, w) = (Stats::of(&cold_ok), Stats::of(&ok));
    for client in clients {
        client.cancel().await.ok();
    }
    let credential = match probe.platform {
        Platform::Snowflake => d.counter(Counter::PatsCreated),
        Platform::Databricks => d.counter(Counter::OAuthTokensIssued),
    };
    Ok(vec![
        label.to_string(),
        users.len().to_string(),
        c.p50_p99(),
        (users.len() * calls).to_string(),
        format!("{:.2}", wall.as_secs_f64()),
        format!("{:.0}", ok.len() as f64 / wall.as_secs_f64().max(1e-9)),
        w.p50_p99(),
        match (errors + cold_errors, first_error) {
            (0, _) => "0".into(),
            (n, Some(e)) => format!("{n} ({}; upstream: {})", short(&e), d.describe()),
            (n, None) => n.to_string(),
        },
        d.counter(Counter::VendsCreated).to_string(),
        credential.to_string(),
        format!(
            "{:.2}",
            d.total() as f64 / (users.len() * (calls + 1)) as f64
        ),
    ])
}

// ---------------------------------------------------------------------------
// Section 4: large results
// ---------------------------------------------------------------------------

/// A generated table read with the default row limit and with `max_rows` = page size, through the
/// release binary serving stdio in a child process (whose peak RSS is read from /proc).
async fn large_results(report: &mut Report, sizes: &Sizes, binary: Option<&Path>) -> Result<()> {
    let binary = require_binary(binary)?;
    let user = "bench@example.com";
    let t = Instant::now();
    let fixture = big_fixture(sizes.rows, user);
    let fixture_time = t.elapsed();
    let t = Instant::now();
    let sandbox = Sandbox::start(SandboxOptions {
        fixture,
        settings: SandboxSettings::default(),
    })
    .await?;
    let load_time = t.elapsed();
    let settings = &sandbox.state.settings;
    report.line(&format!(
        "Table: {} rows per platform (`BENCH.PUBLIC.BIG_SF`, `bench.public.big_dbx`; 5 columns), {} rows per Snowflake \
         partition, {} rows per Databricks chunk.\n\nLoading both tables into the sandbox's SQLite: **{:.2} s** \
         ({:.0} rows/s; fixture build {:.2} s; includes the sandbox's RSA key generation running in parallel). \
         Harness process peak RSS after loading: {} MiB (emulators + SQLite; not the server).",
        sizes.rows,
        settings.partition_rows,
        settings.databricks_chunk_rows,
        load_time.as_secs_f64(),
        (2 * sizes.rows) as f64 / load_time.as_secs_f64().max(1e-9),
        fixture_time.as_secs_f64(),
        mib(proc_status_kib(None, "VmHWM")),
    ));

    let dir = tempfile::tempdir()?;
    let mut cfg = sandbox.client_config();
    cfg.identity.stdio_user = Some(user.into());
    let config_path = dir.path().join("bench.toml");
    std::fs::write(
        &config_path,
        toml::to_string(&cfg).context("config as TOML")?,
    )?;
    report.line(
        "\nServer: `immuta-mcp serve --stdio` in a child process, a fresh one per row below. Each child \
         first answers `whoami` and one small query on the row's platform (so the OBO steps are done), then \
         its peak-RSS counter is reset (`/proc/<pid>/clear_refs`) and the large call runs: the peak belongs \
         to that call alone.",
    );
    let mut rows = Vec::new();
    for max_rows in [None, Some(sizes.page_rows)] {
        for probe in [Probe::SNOWFLAKE_BIG, Probe::DATABRICKS_BIG] {
            let (client, pid) = spawn_stdio_server(&binary, &config_path).await?;
            call(&client, "whoami", json!({})).await?;
            call(&client, probe.tool, json!({ "sql": probe.warm_sql() })).await?;
            let peak_reset = reset_peak_rss(Some(pid));
            let rss_before = proc_status_kib(Some(pid), "VmRSS");
            let before = Upstream::read(&sandbox.state);
            let t = Instant::now();
            let result = call(&client, probe.tool, probe.args(max_rows.map(|n| n as u64))).await?;
            let took = t.elapsed();
            let d = Upstream::read(&sandbox.state).since(&before);
            let hwm = proc_status_kib(Some(pid), "VmHWM");
            client.cancel().await.ok();
            let structured = result.structured_content.clone().unwrap_or(Value::Null);
            let payload = serde_json::to_vec(&result).map(|v| v.len()).unwrap_or(0);
            rows.push(vec![
                probe.platform.as_str().to_string(),
                max_rows.map_or_else(|| "default (1000)".to_string(), |n| n.to_string()),
                structured["row_count"].to_string(),
                structured["truncated"].to_string(),
                format!("{:.0}", took.as_secs_f64() * 1e3),
                format!("{:.1}", payload as f64 / (1024.0 * 1024.0)),
                d.total().to_string(),
                mib(rss_before),
                if peak_reset {
                    mib(hwm)
                } else {
                    format!("{} (not reset)", mib(hwm))
                },
                mib(hwm.zip(rss_before).map(|(a, b)| a.saturating_sub(b))),
            ]);
        }
    }
    report.table(
        &[
            "platform",
            "max_rows",
            "rows returned",
            "truncated",
            "time to result ms",
            "MCP result MiB",
            "upstream requests",
            "server RSS before MiB",
            "server peak during call MiB",
            "peak − before MiB",
        ],
        &rows,
    );
    report.line(&format!(
        "For scale: one in-memory copy of {} decoded rows of this table (`Vec<Vec<serde_json::Value>>`, as in \
         `ResultSet.rows`) costs **{} MiB** of peak RSS (measured in a fresh process: `loadgen --rows-copy-probe {}`).",
        sizes.page_rows,
        mib(rows_copy_cost_kib(sizes.page_rows).await),
        sizes.page_rows,
    ));

    let mut rows = Vec::new();
    for (probe, direct) in [
        (
            Probe::SNOWFLAKE_BIG,
            Direct::snowflake(&sandbox, user).await?,
        ),
        (
            Probe::DATABRICKS_BIG,
            Direct::databricks(&sandbox, user).await?,
        ),
    ] {
        let t = Instant::now();
        direct.run(probe.sql, 1000).await?;
        rows.push(vec![
            probe.platform.as_str().to_string(),
            format!("{:.0}", t.elapsed().as_secs_f64() * 1e3),
        ]);
    }
    report
        .line("\nThe emulator alone (plain HTTP, the answer to the submit only: the first partition / chunk of the same `SELECT *`, up to 1000 rows):");
    report.table(&["platform", "submit answered ms"], &rows);
    report.line(
        "Time to result is the whole tool call (the MCP answer carries all rows at once). Most of it is the emulator \
         running the full `SELECT *` over the table in SQLite before it answers. Compare the direct row with the \
         `default (1000)` server row only: at larger `max_rows` the server also fetches the further partitions / chunks, \
         which the direct row does not.",
    );
    sandbox.shutdown().await;
    Ok(())
}

// ---------------------------------------------------------------------------
// Section 5: the MCP layer alone
// ---------------------------------------------------------------------------

/// `whoami` round trips over stdio (child `immuta-mcp sandbox`), over HTTP (child `immuta-mcp sandbox --http`)
/// and over HTTP to an in-process server.
async fn mcp_layer(report: &mut Report, sizes: &Sizes, binary: Option<&Path>) -> Result<()> {
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

// ---------------------------------------------------------------------------
// The stack: sandbox + local OAuth issuer + the MCP server over streamable HTTP, in process
// ---------------------------------------------------------------------------

type Client = RunningService<RoleClient, ()>;

struct Stack {
    sandbox: Sandbox,
    issuer: LocalIssuer,
    server: app::HttpServer,
}

impl Stack {
    async fn start(fixture: Fixture) -> Result<Stack> {
        Stack::start_with(fixture, SandboxSettings::default()).await
    }

    async fn start_with(fixture: Fixture, settings: SandboxSettings) -> Result<Stack> {
        let sandbox = Sandbox::start(SandboxOptions { fixture, settings }).await?;
        let issuer = LocalIssuer::start().await?;
        let mut cfg = sandbox.client_config();
        cfg.identity.oauth = Some(issuer.oauth_config());
        let server = app::start_http(&cfg, "127.0.0.1:0").await?;
        Ok(Stack {
            sandbox,
            issuer,
            server,
        })
    }

    /// An MCP session for `user` (bearer token from the local issuer) allowing `in_flight` concurrent requests.
    async fn client(&self, user: &str, in_flight: usize) -> Result<Client> {
        let token =
            self.issuer
                .issuer
                .mint(user, &self.server.resource_url, Duration::from_secs(3600));
        http_client(&self.server.resource_url, &token, in_flight).await
    }

    fn upstream(&self) -> Upstream {
        Upstream::read(&self.sandbox.state)
    }

    async fn stop(self) {
        self.server.shutdown().await;
        self.sandbox.shutdown().await;
    }
}

async fn http_client(url: &str, token: &str, in_flight: usize) -> Result<Client> {
    let config = StreamableHttpClientTransportConfig::with_uri(url.to_string())
        .auth_header(token.to_string())
        .max_concurrent_requests(in_flight);
    let transport = StreamableHttpClientTransport::from_config(config);
    Ok(tokio::time::timeout(SPAWN_TIMEOUT, ().serve(transport)).await??)
}

/// One tool call; an `isError` result is an error here.
async fn call(client: &Client, tool: &str, args: Value) -> Result<CallToolResult> {
    let arguments = match args {
        Value::Object(map) => map,
        _ => Default::default(),
    };
    let params = CallToolRequestParams::new(tool.to_string()).with_arguments(arguments);
    let result = tokio::time::timeout(CALL_TIMEOUT, client.call_tool(params))
        .await
        .map_err(|_| anyhow!("{tool} did not answer within {} s", CALL_TIMEOUT.as_secs()))??;
    if result.is_error == Some(true) {
        let text: Vec<String> = result
            .content
            .iter()
            .filter_map(|c| c.as_text().map(|t| t.text.clone()))
            .collect();
        bail!("{tool} answered an error: {}", text.join(" "));
    }
    Ok(result)
}

async fn timed_call(client: &Client, tool: &str, args: Value) -> Result<Duration> {
    let t = Instant::now();
    call(client, tool, args).await?;
    Ok(t.elapsed())
}

fn split_outcomes(outcomes: Vec<Result<Duration>>) -> (Vec<Duration>, usize, Option<String>) {
    let mut ok = Vec::with_capacity(outcomes.len());
    let mut errors = 0;
    let mut first = None;
    for o in outcomes {
        match o {
            Ok(d) => ok.push(d),
            Err(e) => {
                errors += 1;
                first.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }
    (ok, errors, first)
}

/// A query tool call used by the sections.
#[derive(Clone, Copy)]
struct Probe {
    platform: Platform,
    tool: &'static str,
    sql: &'static str,
}

impl Probe {
    const SNOWFLAKE: Probe = Probe {
        platform: Platform::Snowflake,
        tool: "query_snowflake",
        sql: "SELECT ORDER_ID, REGION, EMAIL, AMOUNT FROM SALES.PUBLIC.ORDERS ORDER BY ORDER_ID",
    };
    const DATABRICKS: Probe = Probe {
        platform: Platform::Databricks,
        tool: "query_databricks",
        sql: "SELECT order_id, region, customer_email, amount FROM main.sales.orders ORDER BY order_id",
    };
    const SNOWFLAKE_BIG: Probe = Probe {
        platform: Platform::Snowflake,
        tool: "query_snowflake",
        sql: "SELECT * FROM BENCH.PUBLIC.BIG_SF",
    };
    const DATABRICKS_BIG: Probe = Probe {
        platform: Platform::Databricks,
        tool: "query_databricks",
        sql: "SELECT * FROM bench.public.big_dbx",
    };

    fn args(&self, max_rows: Option<u64>) -> Value {
        let mut args = json!({ "sql": self.sql });
        if let Some(n) = max_rows {
            args["max_rows"] = json!(n);
        }
        args
    }

    /// A one-row query on the same table, to do the OBO steps before a measured call.
    fn warm_sql(&self) -> &'static str {
        match self.platform {
            Platform::Snowflake => "SELECT ID FROM BENCH.PUBLIC.BIG_SF WHERE ID = 1",
            Platform::Databricks => "SELECT id FROM bench.public.big_dbx WHERE id = 1",
        }
    }

    fn submit_endpoint(&self) -> Endpoint {
        match self.platform {
            Platform::Snowflake => Endpoint::SnowflakeSubmit,
            Platform::Databricks => Endpoint::DatabricksSubmit,
        }
    }

    fn cold_goal(&self) -> &'static str {
        match self.platform {
            Platform::Snowflake => "3 (vend + PAT + statement) / 1 (+ polls)",
            Platform::Databricks => "3 (vend + token + statement) / 1 (+ polls)",
        }
    }
}

/// The demo fixture plus `n` load users and two burst users, all reading both orders tables.
fn fixture_with_users(n: usize) -> Fixture {
    let mut fixture = Fixture::demo();
    let grants = || {
        ["SALES.PUBLIC.ORDERS", "main.sales.orders"]
            .into_iter()
            .map(|t| GrantSpec {
                table: t.into(),
                row_filter: None,
                masked_columns: Vec::new(),
            })
            .collect::<Vec<_>>()
    };
    let ids = (0..n).map(load_user).chain([
        "burst-snowflake@example.com".to_string(),
        "burst-databricks@example.com".to_string(),
    ]);
    fixture.users.extend(ids.map(|id| UserSpec {
        id,
        grants: grants(),
    }));
    fixture
}

fn load_user(i: usize) -> String {
    format!("load-{i:04}@example.com")
}

/// The demo fixture plus one generated table per platform, readable by `user`.
fn big_fixture(rows: usize, user: &str) -> Fixture {
    let mut fixture = Fixture::demo()
        .with_generated_table(Platform::Snowflake, "BENCH.PUBLIC.BIG_SF", rows)
        .with_generated_table(Platform::Databricks, "bench.public.big_dbx", rows);
    fixture.users.push(UserSpec {
        id: user.into(),
        grants: ["BENCH.PUBLIC.BIG_SF", "bench.public.big_dbx"]
            .into_iter()
            .map(|t| GrantSpec {
                table: t.into(),
                row_filter: None,
                masked_columns: Vec::new(),
            })
            .collect(),
    });
    fixture
}

// ---------------------------------------------------------------------------
// Upstream request counts (read from the sandbox)
// ---------------------------------------------------------------------------

const ENDPOINTS: [(Endpoint, &str); 12] = [
    (Endpoint::ImmutaVend, "vend"),
    (Endpoint::ImmutaStatus, "vend status"),
    (Endpoint::ImmutaDelete, "vend delete"),
    (Endpoint::ImmutaActivity, "activity"),
    (Endpoint::SnowflakeSubmit, "sf submit"),
    (Endpoint::SnowflakeStatus, "sf poll/partition"),
    (Endpoint::SnowflakeCancel, "sf cancel"),
    (Endpoint::DatabricksToken, "dbx token"),
    (Endpoint::DatabricksSubmit, "dbx submit"),
    (Endpoint::DatabricksStatus, "dbx poll"),
    (Endpoint::DatabricksChunk, "dbx chunk"),
    (Endpoint::DatabricksCancel, "dbx cancel"),
];

const COUNTERS: [Counter; 6] = [
    Counter::VendsCreated,
    Counter::PatsCreated,
    Counter::PatsRemoved,
    Counter::OAuthTokensIssued,
    Counter::StatementsExecuted,
    Counter::StatementsCancelled,
];

/// Requests per endpoint and semantic counters at one moment (or the difference of two moments).
#[derive(Debug, Clone)]
struct Upstream {
    requests: [u64; 12],
    counters: [u64; 6],
}

impl Upstream {
    fn read(state: &SandboxState) -> Upstream {
        Upstream {
            requests: ENDPOINTS.map(|(ep, _)| state.count(ep)),
            counters: COUNTERS.map(|c| state.counter(c)),
        }
    }

    fn since(&self, before: &Upstream) -> Upstream {
        let mut d = self.clone();
        for (a, b) in d.requests.iter_mut().zip(before.requests) {
            *a = a.saturating_sub(b);
        }
        for (a, b) in d.counters.iter_mut().zip(before.counters) {
            *a = a.saturating_sub(b);
        }
        d
    }

    fn total(&self) -> u64 {
        self.requests.iter().sum()
    }

    fn counter(&self, c: Counter) -> u64 {
        COUNTERS
            .iter()
            .position(|&x| x == c)
            .map_or(0, |i| self.counters[i])
    }

    /// Non-zero endpoints, e.g. `vend 1, sf submit 2`.
    fn describe(&self) -> String {
        let parts: Vec<String> = ENDPOINTS
            .iter()
            .zip(self.requests)
            .filter(|(_, n)| *n > 0)
            .map(|((_, name), n)| format!("{name} {n}"))
            .collect();
        if parts.is_empty() {
            "none".into()
        } else {
            parts.join(", ")
        }
    }
}

// ---------------------------------------------------------------------------
// The direct path: plain HTTP to the emulators with a credential obtained once
// ---------------------------------------------------------------------------

/// A plain HTTP client that sends statements straight to one emulator, as the tests do.
enum Direct {
    Snowflake {
        http: reqwest::Client,
        url: String,
        pat: String,
        role: String,
    },
    Databricks {
        http: reqwest::Client,
        url: String,
        token: String,
        warehouse_id: String,
    },
}

fn plain_http() -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder().timeout(CALL_TIMEOUT).build()?)
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Direct {
    /// Bind a role for `user` in the engine and mint a PAT restricted to it with the agent's key-pair JWT.
    async fn snowflake(sandbox: &Sandbox, user: &str) -> Result<Direct> {
        let creds = sandbox.credentials();
        let role = format!(
            "IMMUTA_OBO_BENCH_{}",
            uuid::Uuid::new_v4().simple().to_string()[..8].to_uppercase()
        );
        sandbox.state.engine.bind_role(
            Platform::Snowflake,
            &role,
            user,
            SystemTime::now() + Duration::from_secs(3600),
        )?;
        let subject = format!("{}.{}", creds.snowflake_account, creds.snowflake_user);
        let claims = json!({
            "iss": format!("{subject}.{}", creds.snowflake_public_key_fingerprint),
            "sub": subject,
            "iat": now_secs(),
            "exp": now_secs() + 3540,
        });
        let jwt = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_rsa_pem(creds.snowflake_private_key_pem.as_bytes())?,
        )?;
        // HTTPS with the sandbox CA and a User-Agent, as the SQL API requires.
        let http = sandbox
            .direct_client_builder()
            .timeout(CALL_TIMEOUT)
            .build()?;
        let url = format!("{}/api/v2/statements", sandbox.snowflake_url);
        let name = format!("BENCH_{}", &role[17..]);
        let resp = http
            .post(&url)
            .bearer_auth(&jwt)
            .header("X-Snowflake-Authorization-Token-Type", "KEYPAIR_JWT")
            .json(&json!({ "statement": format!(
                "ALTER USER ADD PROGRAMMATIC ACCESS TOKEN {name} ROLE_RESTRICTION = '{role}' MINS_TO_EXPIRY = 60"
            ) }))
            .send()
            .await?;
        let status = resp.status();
        let body: Value = resp.json().await?;
        let pat = body["data"][0][1]
            .as_str()
            .ok_or_else(|| anyhow!("minting a PAT answered {status}: {body}"))?
            .to_string();
        Ok(Direct::Snowflake {
            http,
            url,
            pat,
            role,
        })
    }

    /// Bind a group for `user` in the engine and get an OAuth token assuming it.
    async fn databricks(sandbox: &Sandbox, user: &str) -> Result<Direct> {
        let creds = sandbox.credentials();
        let group = format!("77{}", now_secs() % 1_000_000);
        sandbox.state.engine.bind_role(
            Platform::Databricks,
            &group,
            user,
            SystemTime::now() + Duration::from_secs(3600),
        )?;
        let http = plain_http()?;
        let resp = http
            .post(format!("{}/oidc/v1/token", sandbox.databricks_url))
            .basic_auth(
                &creds.databricks_client_id,
                Some(&creds.databricks_client_secret),
            )
            .form(&[
                ("grant_type", "client_credentials"),
                ("scope", "all-apis"),
                ("assume_group", group.as_str()),
            ])
            .send()
            .await?;
        let status = resp.status();
        let body: Value = resp.json().await?;
        let token = body["access_token"]
            .as_str()
            .ok_or_else(|| anyhow!("token request answered {status}: {body}"))?
            .to_string();
        Ok(Direct::Databricks {
            http,
            url: format!("{}/api/2.0/sql/statements", sandbox.databricks_url),
            token,
            warehouse_id: creds.warehouse_id.clone(),
        })
    }

    /// Send `sql` with the same body the production client sends; wait for the first answer with rows.
    async fn run(&self, sql: &str, max_rows: usize) -> Result<Value> {
        match self {
            Direct::Snowflake {
                http,
                url,
                pat,
                role,
            } => {
                let request_id = uuid::Uuid::new_v4().to_string();
                let body = json!({
                    "statement": sql,
                    "timeout": 300,
                    "database": "SALES",
                    "schema": "PUBLIC",
                    "warehouse": "COMPUTE_WH",
                    "role": role,
                    "parameters": { "QUERY_TAG": "{\"app\":\"loadgen\"}" },
                });
                let mut resp = http
                    .post(url)
                    .query(&[("requestId", request_id.as_str())])
                    .bearer_auth(pat)
                    .header(
                        "X-Snowflake-Authorization-Token-Type",
                        "PROGRAMMATIC_ACCESS_TOKEN",
                    )
                    .header("Accept", "application/json")
                    .json(&body)
                    .send()
                    .await?;
                for _ in 0..10_000 {
                    let status = resp.status();
                    let answer: Value = resp.json().await?;
                    match status.as_u16() {
                        200 => return Ok(answer),
                        202 => {
                            tokio::time::sleep(Duration::from_millis(5)).await;
                            let handle = answer["statementHandle"].as_str().unwrap_or_default();
                            resp = http
                                .get(format!("{url}/{handle}"))
                                .bearer_auth(pat)
                                .header(
                                    "X-Snowflake-Authorization-Token-Type",
                                    "PROGRAMMATIC_ACCESS_TOKEN",
                                )
                                .send()
                                .await?;
                        }
                        _ => bail!("Snowflake emulator answered {status}: {answer}"),
                    }
                }
                bail!("Snowflake statement still running after 10,000 polls")
            }
            Direct::Databricks {
                http,
                url,
                token,
                warehouse_id,
            } => {
                let body = json!({
                    "warehouse_id": warehouse_id,
                    "statement": sql,
                    "catalog": "main",
                    "wait_timeout": "10s",
                    "on_wait_timeout": "CONTINUE",
                    "disposition": "INLINE",
                    "format": "JSON_ARRAY",
                    "row_limit": max_rows + 1,
                    "byte_limit": 16 * 1024 * 1024,
                });
                let mut answer: Value = http
                    .post(url)
                    .bearer_auth(token)
                    .json(&body)
                    .send()
                    .await?
                    .json()
                    .await?;
                for _ in 0..10_000 {
                    match answer["status"]["state"].as_str() {
                        Some("SUCCEEDED") => return Ok(answer),
                        Some("PENDING") | Some("RUNNING") => {
                            tokio::time::sleep(Duration::from_millis(5)).await;
                            let id = answer["statement_id"].as_str().unwrap_or_default();
                            answer = http
                                .get(format!("{url}/{id}"))
                                .bearer_auth(token)
                                .send()
                                .await?
                                .json()
                                .await?;
                        }
                        _ => bail!("Databricks emulator answered {answer}"),
                    }
                }
                bail!("Databricks statement still running after 10,000 polls")
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Numbers and the report
// ---------------------------------------------------------------------------

/// Percentiles (nearest rank) of a set of durations.
#[derive(Debug, Clone, Copy, Default)]
struct Stats {
    n: usize,
    p50: Duration,
    p99: Duration,
    mean: Duration,
}

impl Stats {
    /// "p50 / p99" in ms, or "n/a" when no call succeeded (zeros would read as "fast").
    fn p50_p99(&self) -> String {
        if self.n == 0 {
            "n/a".into()
        } else {
            format!("{} / {}", ms(self.p50), ms(self.p99))
        }
    }

    fn of(samples: &[Duration]) -> Stats {
        if samples.is_empty() {
            return Stats::default();
        }
        let mut sorted = samples.to_vec();
        sorted.sort();
        let rank =
            |q: f64| sorted[((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1];
        Stats {
            n: sorted.len(),
            p50: rank(0.50),
            p99: rank(0.99),
            mean: sorted.iter().sum::<Duration>() / sorted.len() as u32,
        }
    }
}

/// At most 160 characters of an error message, for a table cell.
fn short(message: &str) -> String {
    let cut: String = message.chars().take(160).collect();
    if cut.len() < message.len() {
        format!("{cut}…")
    } else {
        cut
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64().max(1e-9)
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or_else(|| "n/a".into(), |k| format!("{:.1}", k as f64 / 1024.0))
}

/// A field of `/proc/<pid>/status` (or this process's) in KiB, e.g. `VmHWM` (peak RSS).
fn proc_status_kib(pid: Option<u32>, field: &str) -> Option<u64> {
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
async fn spawn_stdio_server(binary: &Path, config: &Path) -> Result<(Client, u32)> {
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
fn reset_peak_rss(pid: Option<u32>) -> bool {
    let path = pid.map_or_else(
        || "/proc/self/clear_refs".to_string(),
        |p| format!("/proc/{p}/clear_refs"),
    );
    std::fs::write(path, "5").is_ok()
}

/// Peak RSS growth of building `n` decoded rows shaped like the generated table's, measured in a
/// fresh process (this executable with `--rows-copy-probe n`), in KiB.
async fn rows_copy_cost_kib(n: usize) -> Option<u64> {
    let exe = std::env::current_exe().ok()?;
    let out = tokio::process::Command::new(exe)
        .arg("--rows-copy-probe")
        .arg(n.to_string())
        .stdin(Stdio::null())
        .output()
        .await
        .ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// `--rows-copy-probe n`: build `n` rows (integer, three short strings, a timestamp string) and print
/// the growth of this process's peak RSS in KiB.
fn rows_copy_probe(n: usize) -> Result<()> {
    let before = proc_status_kib(None, "VmRSS").ok_or_else(|| anyhow!("no /proc/self/status"))?;
    let rows: Vec<Vec<Value>> = (0..n)
        .map(|i| {
            vec![
                json!(i as u64 + 1),
                Value::String(["EU", "US", "APAC"][i % 3].to_string()),
                Value::String(format!("customer-{:02}", i % 12)),
                Value::String(format!("{:.2}", 10.0 + (i % 12) as f64 * 7.25)),
                Value::String(format!("2024-{:02}-15T12:30:00", i % 12 + 1)),
            ]
        })
        .collect();
    let peak = proc_status_kib(None, "VmHWM").ok_or_else(|| anyhow!("no VmHWM"))?;
    drop(std::hint::black_box(rows));
    println!("{}", peak.saturating_sub(before));
    Ok(())
}

fn default_binary() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    // target/<profile>/examples/loadgen -> target/<profile>/immuta-mcp
    Some(exe.parent()?.parent()?.join("immuta-mcp"))
}

fn missing_binary_hint(binary: Option<&Path>) -> String {
    format!(
        "the server binary {} does not exist; build it with `cargo build --release --bin immuta-mcp` or pass --binary",
        binary.map_or_else(|| "(unknown)".into(), |b| b.display().to_string())
    )
}

fn require_binary(binary: Option<&Path>) -> Result<PathBuf> {
    match binary {
        Some(b) if b.exists() => Ok(b.to_path_buf()),
        _ => bail!("{}", missing_binary_hint(binary)),
    }
}

/// The Markdown report.
struct Report {
    text: String,
}

impl Report {
    fn new(args: &Args, sizes: &Sizes) -> Report {
        let mut r = Report {
            text: String::new(),
        };
        r.line("# immuta-mcp benchmark (sandbox on loopback)");
        r.line(&format!(
            "Mode: {}. Sizes: {} latency samples per path; burst of {} concurrent cold calls; users {:?} × {} calls; \
             {} generated rows; paging max_rows {}; {} whoami calls per transport. Build: {}. CPUs: {}.",
            if args.full { "full" } else { "quick" },
            sizes.calls,
            sizes.burst,
            sizes.user_levels,
            sizes.calls_per_user,
            sizes.rows,
            sizes.page_rows,
            sizes.whoami_calls,
            if cfg!(debug_assertions) { "debug (numbers are not representative)" } else { "release" },
            std::thread::available_parallelism().map_or(0, |n| n.get()),
        ));
        r
    }

    fn heading(&mut self, title: &str) {
        self.text.push_str(&format!("\n## {title}\n\n"));
    }

    fn line(&mut self, text: &str) {
        self.text.push_str(text);
        self.text.push('\n');
    }

    fn table(&mut self, headers: &[&str], rows: &[Vec<String>]) {
        self.text.push('\n');
        self.text
            .push_str(&format!("| {} |\n", headers.join(" | ")));
        self.text.push_str(&format!(
            "|{}\n",
            headers.iter().map(|_| "---|").collect::<String>()
        ));
        for row in rows {
            self.text.push_str(&format!("| {} |\n", row.join(" | ")));
        }
        self.text.push('\n');
    }
}
