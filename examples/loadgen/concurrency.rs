//! Section 3, concurrency: a burst of concurrent cold calls of one user in one
//! session (goal: one vend and one PAT / token for the whole burst, single-flight),
//! then levels of N users × M calls over streamable HTTP per platform, and once
//! more for Snowflake with its per-user PAT limit raised. It reports counts per
//! burst, calls/s, p50 / p99 and upstream requests per call, not ratios.

use crate::Sizes;
use crate::harness::fixtures::{fixture_with_users, load_user};
use crate::harness::load::users_times_calls;
use crate::harness::probe::Probe;
use crate::harness::report::{Report, short};
use crate::harness::stack::{Stack, split_outcomes, timed_call};
use crate::harness::stats::Stats;
use anyhow::Result;
use futures::future::join_all;
use immuta_mcp::result::Platform;
use immuta_mcp::sandbox::{Counter, SandboxSettings};
use std::time::Instant;

/// A burst of concurrent cold calls of one user, then N users × M calls.
pub(crate) async fn run(report: &mut Report, sizes: &Sizes) -> Result<()> {
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
