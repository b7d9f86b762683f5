//! Section 8, first call with and without pre-warm: with 50 ms on every emulator
//! endpoint, 10 users each open a session, list the tools, optionally pause, and
//! call `query_snowflake` twice. It reports the first call's p50 as a ratio to the
//! warm call's p50 (first / warm; goal ≤ 1.2 with pre-warm) for pre-warm off, on,
//! and on with a 500 ms pause.

use crate::harness::fixtures::{fixture_with_users, load_user};
use crate::harness::probe::Probe;
use crate::harness::report::{Report, ms};
use crate::harness::stack::{Stack, timed_call};
use crate::harness::stats::Stats;
use anyhow::Result;
use immuta_mcp::sandbox::{Endpoint, Fault, SandboxSettings};
use std::time::Duration;

/// Section 8: the first query after initialize, with and without pre-warm, as a ratio to a warm call.
pub(crate) async fn run(report: &mut Report) -> Result<()> {
    let users: Vec<String> = (0..10).map(load_user).collect();
    let mut rows = Vec::new();
    for (prewarm, think) in [(false, 0u64), (true, 0), (true, 500)] {
        let (stack, _) = Stack::start_replicas(
            fixture_with_users(users.len()),
            SandboxSettings::default(),
            move |s| {
                let mut cfg = s.client_config();
                cfg.cache.prewarm = prewarm;
                cfg.databricks = None;
                cfg
            },
            1,
        )
        .await?;
        for ep in Endpoint::ALL {
            stack
                .sandbox
                .faults()
                .add(ep, Fault::Latency(Duration::from_millis(50)));
        }
        let (mut first, mut warm) = (Vec::new(), Vec::new());
        for user in &users {
            let client = stack.client(user, 1).await?;
            // What a client does after initialize before its first call.
            client.list_all_tools().await?;
            tokio::time::sleep(Duration::from_millis(think)).await;
            first.push(
                timed_call(&client, Probe::SNOWFLAKE.tool, Probe::SNOWFLAKE.args(None)).await?,
            );
            warm.push(
                timed_call(&client, Probe::SNOWFLAKE.tool, Probe::SNOWFLAKE.args(None)).await?,
            );
            client.cancel().await.ok();
        }
        let (f, w) = (Stats::of(&first), Stats::of(&warm));
        rows.push(vec![
            format!(
                "{}, first call {think} ms after tools/list",
                if prewarm { "on" } else { "off" }
            ),
            ms(f.p50),
            ms(w.p50),
            format!("{:.2}", f.p50.as_secs_f64() / w.p50.as_secs_f64().max(1e-9)),
        ]);
        stack.stop().await;
    }
    report.table(
        &[
            "pre-warm",
            "first call p50 ms",
            "warm call p50 ms",
            "first / warm",
        ],
        &rows,
    );
    report.line(
        "50 ms latency on every emulator endpoint; each user initializes a session, lists the tools, then calls \
         (optionally after a pause, as a person typing a question) query_snowflake twice. Goal: first / warm ≤ 1.2 \
         with pre-warm. Warming costs a vend, a PAT and the identity probe (about 4 round trips at 50 ms); a first \
         call sent sooner waits for the rest of it (single-flight) instead of starting over.",
    );
    Ok(())
}
