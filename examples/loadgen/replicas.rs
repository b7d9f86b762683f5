//! Section 7, replicas sharing Redis: 30 Snowflake users whose calls rotate over
//! 1 or 3 in-process replicas with `[cache] backend = "redis"` on one
//! `redis-server` (needed; the section fails without it). It reports calls/s,
//! p50 / p99, and vends and PATs per user, which sharing keeps at one each
//! whatever the number of replicas.

use crate::Sizes;
use crate::harness::fixtures::{fixture_with_users, load_user};
use crate::harness::probe::Probe;
use crate::harness::redis_server::RedisServer;
use crate::harness::report::{Report, short};
use crate::harness::stack::{Client, Stack, http_client, split_outcomes, timed_call};
use crate::harness::stats::Stats;
use anyhow::Result;
use futures::future::{join_all, try_join_all};
use immuta_mcp::config::SecretRef;
use immuta_mcp::sandbox::{Counter, SandboxSettings};
use immuta_mcp::shared::{CacheBackend, CacheConfig};
use std::time::{Duration, Instant};

/// Section 7: users spread over 1 or 3 replicas sharing Redis.
pub(crate) async fn run(report: &mut Report, sizes: &Sizes) -> Result<()> {
    let redis = RedisServer::start().await.map_err(anyhow::Error::msg)?;
    let users: Vec<String> = (0..30).map(load_user).collect();
    let mut rows = Vec::new();
    for replicas in [1usize, 3] {
        let settings = SandboxSettings {
            pat_limit_per_user: 1000,
            ..SandboxSettings::default()
        };
        let redis_url = redis.url();
        let (stack, others) = Stack::start_replicas(
            fixture_with_users(users.len()),
            settings,
            move |s| {
                let mut cfg = s.client_config();
                cfg.cache = CacheConfig {
                    backend: CacheBackend::Redis,
                    url: Some(redis_url.clone()),
                    key_prefix: format!("bench-{replicas}:"),
                    encryption_key: Some(SecretRef::Value("ab".repeat(32))),
                    prewarm: false,
                    ..CacheConfig::default()
                };
                cfg.databricks = None;
                cfg
            },
            replicas,
        )
        .await?;
        let urls: Vec<String> = std::iter::once(stack.server.resource_url.clone())
            .chain(others.iter().map(|s| s.resource_url.clone()))
            .collect();
        let before = stack.upstream();
        // Every user has a session on every replica; each call goes to the next replica.
        let sessions: Vec<Vec<Client>> = try_join_all(users.iter().map(|u| {
            let urls = urls.clone();
            let stack = &stack;
            async move {
                try_join_all(urls.iter().map(|url| {
                    let token = stack.issuer.issuer.mint(u, url, Duration::from_secs(3600));
                    async move { http_client(url, &token, 4).await }
                }))
                .await
            }
        }))
        .await?;
        let started = Instant::now();
        let calls = sizes.calls_per_user;
        let per_user = join_all(sessions.iter().map(|clients| async move {
            let mut out = Vec::with_capacity(calls);
            for i in 0..calls {
                let client = &clients[i % clients.len()];
                out.push(
                    timed_call(client, Probe::SNOWFLAKE.tool, Probe::SNOWFLAKE.args(None)).await,
                );
            }
            out
        }))
        .await;
        let wall = started.elapsed();
        let d = stack.upstream().since(&before);
        let (ok, errors, first_error) = split_outcomes(per_user.into_iter().flatten().collect());
        rows.push(vec![
            replicas.to_string(),
            users.len().to_string(),
            (users.len() * calls).to_string(),
            format!("{:.0}", ok.len() as f64 / wall.as_secs_f64().max(1e-9)),
            Stats::of(&ok).p50_p99(),
            format!(
                "{:.2}",
                d.counter(Counter::VendsCreated) as f64 / users.len() as f64
            ),
            format!(
                "{:.2}",
                d.counter(Counter::PatsCreated) as f64 / users.len() as f64
            ),
            match (errors, first_error) {
                (0, _) => "0".into(),
                (n, Some(e)) => format!("{n}: {}", short(&e)),
                (n, None) => n.to_string(),
            },
        ]);
        for clients in sessions {
            for c in clients {
                c.cancel().await.ok();
            }
        }
        for s in others {
            s.shutdown().await;
        }
        stack.stop().await;
    }
    report.table(
        &[
            "replicas",
            "users",
            "calls",
            "calls/s",
            "p50 / p99 ms",
            "vends / user",
            "PATs / user",
            "errors",
        ],
        &rows,
    );
    report.line(
        "Each user's calls rotate over the replicas (a load balancer without stickiness); `[cache] backend = \"redis\"` \
         shares vended roles and PATs, so a user costs one vend and one PAT whatever the number of replicas. \
         All replicas run in this process on 2 cores, so calls/s does not grow with replicas here.",
    );
    Ok(())
}
