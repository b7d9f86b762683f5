//! One level of "N users × M calls", the measurement sections 3 and 6 share:
//! every user makes one cold call (all users at once), then M warm calls each
//! (sequential per user, users concurrent). The row reports cold and warm
//! percentiles, calls/s, errors, and vends, PATs / tokens and upstream requests
//! per call over the whole level.

use super::probe::Probe;
use super::report::short;
use super::stack::{Stack, split_outcomes, timed_call};
use super::stats::Stats;
use anyhow::Result;
use futures::future::{join_all, try_join_all};
use immuta_mcp::result::Platform;
use immuta_mcp::sandbox::Counter;
use std::time::Instant;

/// One level of section 3: `users` each make one cold call (concurrently), then `calls` warm calls each.
pub(crate) async fn users_times_calls(
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
