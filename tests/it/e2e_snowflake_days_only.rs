//! Rule: on an account with only `DAYS_TO_EXPIRY`, the call still works, the fallback is logged
//! once, and no PAT outlives its vend.
//!
//! The whole Snowflake OBO path through the MCP server (streamable HTTP, in
//! process) against an account with only the public PAT syntax
//! (`[sandbox] pat_expiry = "days_only"`): the call succeeds through the
//! fallback to `DAYS_TO_EXPIRY = 1`, the fallback is logged once (naming the
//! setting that avoids it), and each PAT made that way — which would outlive
//! its vended role by most of a day — is removed once its vend has ended.
//!
//! The vend lives one minute (the shortest `immuta.ttl_minutes`), so this
//! test waits about that long for the removal (bounded; no timed assertion).

use crate::support::{ALICE, BOB, HttpEnv, call_ok, close, text_of};
use crate::support::{Threads, with_logs};
use immuta_mcp::sandbox::variants::PatExpiryVariant;
use immuta_mcp::sandbox::{Counter, Fixture, SandboxOptions, SandboxSettings};
use serde_json::json;
use std::time::{Duration, Instant};
use tracing::Level;

const FALLBACK_WARNING: &str = "Snowflake refused MINS_TO_EXPIRY";

#[test]
fn days_only_account_falls_back_warns_once_and_removes_each_pat_when_its_vend_ends() {
    with_logs(Level::INFO, Threads::Workers(2), |logs| async move {
        let mut settings = SandboxSettings::default();
        settings.variants.pat_expiry = PatExpiryVariant::DaysOnly;
        let options = SandboxOptions {
            fixture: Fixture::demo(),
            settings,
        };
        let env = HttpEnv::start_with_options(options, |config| {
            // The production default: a session pre-warms its credentials.
            config.cache.prewarm = true;
            config.immuta.as_mut().unwrap().ttl_minutes = 1;
            config.limits.credential_expiry_margin_secs = 5;
        })
        .await;

        let started = Instant::now();
        for user in [BOB, ALICE] {
            let client = env.connect(user).await;
            let result = call_ok(
                &client,
                "query_snowflake",
                json!({"sql": "SELECT ORDER_ID FROM SALES.PUBLIC.ORDERS ORDER BY ORDER_ID"}),
            )
            .await;
            assert!(
                text_of(&result).contains("ORDER_ID"),
                "{}",
                text_of(&result)
            );
            close(client).await;
        }
        assert_eq!(env.counter(Counter::PatsCreated), 2);
        let log = logs.text();
        assert_eq!(
            log.matches(FALLBACK_WARNING).count(),
            1,
            "the fallback is logged once per process:\n{log}"
        );
        let warning = log
            .lines()
            .find(|l| l.contains(FALLBACK_WARNING))
            .expect("warning line");
        assert!(warning.contains("WARN"), "{warning}");
        assert!(
            warning.contains("snowflake.pat_expiry_clause = \\\"DAYS_TO_EXPIRY\\\"")
                || warning.contains("snowflake.pat_expiry_clause = \"DAYS_TO_EXPIRY\""),
            "the warning names the setting that avoids the retry: {warning}"
        );
        let removed_early = env.counter(Counter::PatsRemoved);

        // The DAYS_TO_EXPIRY tokens live a day; their vends end after a minute.
        let deadline = Duration::from_secs(150);
        while env.counter(Counter::PatsRemoved) < 2 {
            assert!(
                started.elapsed() < deadline,
                "the PATs were not removed after their vends ended (removed {})",
                env.counter(Counter::PatsRemoved)
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        assert_eq!(
            removed_early, 0,
            "nothing was removed while the vends lived"
        );
        let log = logs.text();
        assert!(
            log.contains("the vended role of a DAYS_TO_EXPIRY PAT expired; removing the PAT"),
            "removed by the scheduled removal:\n{log}"
        );
        env.shutdown().await;
    });
}
