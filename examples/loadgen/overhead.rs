//! Section 2, server overhead: a `tools/call` through the in-process server
//! against the same statement posted straight to the emulator ([`Direct`]), with
//! 0 ms and 50 ms added on the submit endpoint, interleaved sample by sample. It
//! reports the ratios server / direct of p50, p99 and mean (goal at 50 ms: ≤ 1.10)
//! and the server's own cost at p50 in ms.

use crate::Sizes;
use crate::harness::direct::Direct;
use crate::harness::probe::Probe;
use crate::harness::report::{Report, ms};
use crate::harness::stack::{Stack, call};
use crate::harness::stats::{Stats, ratio};
use anyhow::Result;
use immuta_mcp::sandbox::{Fault, Fixture};
use std::time::{Duration, Instant};

/// MCP tool call through the server versus the same statement sent straight to the emulator.
pub(crate) async fn run(report: &mut Report, sizes: &Sizes) -> Result<()> {
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
