//! Section 4, large results: a generated table per platform (200,000 rows, or
//! 1,000,000 with `--full`) read through the release binary serving stdio in a
//! child process, with the default row limit and with `max_rows` = the page size.
//! It reports time to result, MCP result size, upstream requests and the child's
//! peak RSS during the call, set against what one in-memory copy of that many
//! decoded rows costs (measured in a fresh process, `--rows-copy-probe`) and
//! against the emulator's own answer time over plain HTTP.

use crate::Sizes;
use crate::harness::direct::Direct;
use crate::harness::probe::Probe;
use crate::harness::process::{
    proc_status_kib, require_binary, reset_peak_rss, spawn_stdio_server,
};
use crate::harness::report::{Report, mib};
use crate::harness::stack::call;
use crate::harness::upstream::Upstream;
use anyhow::{Context, Result, anyhow};
use immuta_mcp::result::Platform;
use immuta_mcp::sandbox::fixture::{GrantSpec, UserSpec};
use immuta_mcp::sandbox::{Fixture, Sandbox, SandboxOptions, SandboxSettings};
use serde_json::{Value, json};
use std::path::Path;
use std::process::Stdio;
use std::time::Instant;

/// A generated table read with the default row limit and with `max_rows` = page size, through the
/// release binary serving stdio in a child process (whose peak RSS is read from /proc).
pub(crate) async fn run(report: &mut Report, sizes: &Sizes, binary: Option<&Path>) -> Result<()> {
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
pub(crate) fn rows_copy_probe(n: usize) -> Result<()> {
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
