//! Sections 6-8 of the benchmark (issue 11): an agent pool against one
//! agent, replicas sharing Redis against one replica, and the first call's
//! latency with and without pre-warm.

use super::{
    Client, Probe, Report, Sizes, Stack, Stats, fixture_with_users, http_client, load_user, ms,
    short, split_outcomes, timed_call, users_times_calls,
};
use anyhow::{Context, Result, bail};
use futures::future::{join_all, try_join_all};
use immuta_mcp::app::{self, LocalIssuer};
use immuta_mcp::config::{Config, SecretRef};
use immuta_mcp::sandbox::{Counter, Endpoint, Fault, Sandbox, SandboxOptions, SandboxSettings};
use immuta_mcp::shared::{CacheBackend, CacheConfig};
use std::time::{Duration, Instant};

/// A sandbox, an issuer and `replicas` HTTP servers of the configuration `configure` makes.
async fn stack_with(
    fixture: immuta_mcp::sandbox::Fixture,
    settings: SandboxSettings,
    configure: impl Fn(&Sandbox) -> Config,
    replicas: usize,
) -> Result<(Stack, Vec<app::HttpServer>)> {
    let sandbox = Sandbox::start(SandboxOptions { fixture, settings }).await?;
    let issuer = LocalIssuer::start().await?;
    let mut cfg = configure(&sandbox);
    cfg.identity.oauth = Some(issuer.oauth_config());
    let server = app::start_http(&cfg, "127.0.0.1:0").await?;
    let mut others = Vec::new();
    for _ in 1..replicas {
        others.push(app::start_http(&cfg, "127.0.0.1:0").await?);
    }
    Ok((
        Stack {
            sandbox,
            issuer,
            server,
        },
        others,
    ))
}

/// Section 6: 100 Snowflake users through one agent and through a pool of 8.
pub async fn agent_pool(report: &mut Report, sizes: &Sizes) -> Result<()> {
    let users: Vec<String> = (0..100).map(load_user).collect();
    let mut rows = Vec::new();
    for agents in [1usize, 8] {
        let settings = SandboxSettings {
            agents,
            ..SandboxSettings::default()
        };
        let (stack, _) = stack_with(
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

/// A `redis-server` on a free loopback port, killed on drop.
struct Redis(std::process::Child, u16);

impl Redis {
    async fn start() -> Result<Redis> {
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")?
                .local_addr()?
                .port();
            let child = std::process::Command::new("redis-server")
                .args([
                    "--port",
                    &port.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .context(
                    "redis-server is needed for this section (apt-get install redis-server)",
                )?;
            let mut redis = Redis(child, port);
            for _ in 0..100 {
                if redis.0.try_wait()?.is_some() {
                    break;
                }
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Ok(redis);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let _ = redis.0.kill();
        }
        bail!("redis-server did not start")
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Section 7: users spread over 1 or 3 replicas sharing Redis.
pub async fn replicas(report: &mut Report, sizes: &Sizes) -> Result<()> {
    let redis = Redis::start().await?;
    let users: Vec<String> = (0..30).map(load_user).collect();
    let mut rows = Vec::new();
    for replicas in [1usize, 3] {
        let settings = SandboxSettings {
            pat_limit_per_user: 1000,
            ..SandboxSettings::default()
        };
        let port = redis.1;
        let (stack, others) = stack_with(
            fixture_with_users(users.len()),
            settings,
            move |s| {
                let mut cfg = s.client_config();
                cfg.cache = CacheConfig {
                    backend: CacheBackend::Redis,
                    url: Some(format!("redis://127.0.0.1:{port}/")),
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

/// Section 8: the first query after initialize, with and without pre-warm, as a ratio to a warm call.
pub async fn prewarm_latency(report: &mut Report) -> Result<()> {
    let users: Vec<String> = (0..10).map(load_user).collect();
    let mut rows = Vec::new();
    for (prewarm, think) in [(false, 0u64), (true, 0), (true, 500)] {
        let (stack, _) = stack_with(
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
