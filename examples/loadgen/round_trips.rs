//! Section 1, round trips per call: the upstream requests (vend, PAT / token,
//! submit, polls) of a user's cold call, warm call and third call, per platform,
//! counted at the emulators and printed beside the goal (3 cold / 1 warm). It
//! reports counts, not times.

use crate::harness::probe::Probe;
use crate::harness::report::Report;
use crate::harness::stack::{Stack, call};
use anyhow::Result;
use immuta_mcp::sandbox::Fixture;

/// Upstream requests of a cold and a warm call of one user, per platform.
pub(crate) async fn run(report: &mut Report) -> Result<()> {
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
