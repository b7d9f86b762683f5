//! Section 6, agent pool: 100 Snowflake users × M calls (section 3's level,
//! [`users_times_calls`]) through one agent user and through a pool of 8, with
//! the sandbox enforcing Snowflake's 15 PATs per user on each agent. It reports
//! errors, calls/s, p50 / p99, vends, PATs and upstream requests per call for each
//! pool size, to read side by side (1 agent runs out of PATs; 8 do not).

use crate::Sizes;
use crate::harness::fixtures::{fixture_with_users, load_user};
use crate::harness::load::users_times_calls;
use crate::harness::probe::Probe;
use crate::harness::report::Report;
use crate::harness::stack::Stack;
use anyhow::Result;
use immuta_mcp::sandbox::SandboxSettings;

/// Section 6: 100 Snowflake users through one agent and through a pool of 8.
pub(crate) async fn run(report: &mut Report, sizes: &Sizes) -> Result<()> {
    let users: Vec<String> = (0..100).map(load_user).collect();
    let mut rows = Vec::new();
    for agents in [1usize, 8] {
        let settings = SandboxSettings {
            agents,
            ..SandboxSettings::default()
        };
        let (stack, _) = Stack::start_replicas(
            fixture_with_users(users.len()),
            settings,
            |s| {
                // Capacity alone: no session warms credentials it may not use.
                let mut cfg = s.pool_config();
                cfg.cache.prewarm = false;
                cfg.databricks = None;
                cfg
            },
            1,
        )
        .await?;
        let label = format!("{agents} agent(s)");
        rows.push(
            users_times_calls(
                &stack,
                &label,
                Probe::SNOWFLAKE,
                &users,
                sizes.calls_per_user,
            )
            .await?,
        );
        stack.stop().await;
    }
    report.table(
        &[
            "pool",
            "users",
            "cold wave p50 / p99 ms",
            "warm calls",
            "wall s",
            "calls/s",
            "p50 / p99 ms",
            "errors",
            "vends",
            "PATs",
            "upstream requests / call",
        ],
        &rows,
    );
    report.line(
        "The sandbox enforces Snowflake's limit of 15 PATs per user on each agent user; with a pool, users are \
         bound to agents by rendezvous hashing, so the pool holds 15 PATs per agent.",
    );
    Ok(())
}
