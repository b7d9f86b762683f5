//! Rule: `/metrics` and the health endpoints count what happened and show no secret, token or SQL
//! text.
//!
//! The operator's endpoints, in-process: the sandbox, a local OAuth issuer,
//! `app::start_http_observed` and the `--metrics` listener of the same
//! [`Observability`].
//!
//! Shows: after a mix of calls (successes, a guard refusal, refused tokens, an
//! upstream 429 injected by the sandbox, a cold call that shares another's
//! mint) a scrape of `/metrics`, parsed by a Prometheus text parser, holds
//! every family with the expected counts, and no secret, token, SQL text or
//! user; `/readyz` answers 503 with a reason while an upstream probe fails
//! and 200 again once it answers; `/healthz` answers 200 throughout, on both
//! listeners.

use crate::support::*;
use immuta_mcp::app::{self, LocalIssuer};
use immuta_mcp::config::{Config, SecretRef};
use immuta_mcp::ops::{MetricsServer, Observability};
use immuta_mcp::sandbox::{Endpoint, Fault, Sandbox, SandboxOptions};
use prometheus_parse::{Scrape, Value as Sample};
use serde_json::{Value, json};
use std::time::Duration;

const SF_ORDERS: &str = "SELECT ORDER_ID, REGION, EMAIL FROM SALES.PUBLIC.ORDERS ORDER BY ORDER_ID";
const DB_EMPLOYEES: &str =
    "SELECT employee_id, region, email, salary FROM main.hr.employees ORDER BY employee_id";
/// A write the guard refuses; its literal must never reach `/metrics`.
const REFUSED_SQL: &str = "DELETE FROM SALES.PUBLIC.ORDERS WHERE EMAIL = 'sql-marker-7f3a'";

/// [`HttpEnv`] whose server counts into an [`Observability`] that also serves `--metrics`.
struct ObservedEnv {
    env: HttpEnv,
    metrics: MetricsServer,
}

impl ObservedEnv {
    async fn start(tweak: impl FnOnce(&mut Config)) -> Self {
        immuta_mcp::http_client::install_crypto_provider();
        let sandbox = bounded("sandbox start", Sandbox::start(SandboxOptions::default()))
            .await
            .expect("sandbox starts");
        let issuer = bounded("issuer start", LocalIssuer::start())
            .await
            .expect("issuer starts");
        let mut config = sandbox.client_config();
        config.identity.oauth = Some(issuer.oauth_config());
        // The scrape test counts each call's vends and mints; pre-warm would add its own
        // (`prewarm` covers it).
        config.cache.prewarm = false;
        tweak(&mut config);
        let obs = Observability::new(&config);
        let server = bounded(
            "http start",
            app::start_http_observed(&config, "127.0.0.1:0", &obs),
        )
        .await
        .expect("HTTP server starts");
        let metrics = bounded("metrics start", obs.serve_metrics("127.0.0.1:0"))
            .await
            .expect("metrics listener starts");
        let http = reqwest::Client::builder().build().expect("reqwest client");
        ObservedEnv {
            env: HttpEnv {
                sandbox,
                issuer,
                server,
                config,
                http,
            },
            metrics,
        }
    }

    fn metrics_base(&self) -> String {
        format!("http://{}", self.metrics.addr)
    }

    async fn get(&self, url: String) -> (u16, String, String) {
        let response = bounded(&url, self.env.http.get(&url).send())
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        (status, content_type, response.text().await.unwrap())
    }

    async fn scrape(&self) -> (String, Scrape) {
        let (status, content_type, text) =
            self.get(format!("{}/metrics", self.metrics_base())).await;
        assert_eq!(status, 200, "/metrics: {text}");
        assert!(
            content_type.starts_with("application/openmetrics-text"),
            "{content_type}"
        );
        let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
            .expect("the exposition parses as Prometheus text");
        (text, scrape)
    }

    async fn shutdown(self) {
        self.metrics.shutdown().await;
        self.env.shutdown().await;
    }
}

/// The value of the one sample of `metric` whose labels are exactly `labels`
/// (0 when there is none: a counter never incremented has no series).
fn value(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    let matching: Vec<f64> = scrape
        .samples
        .iter()
        .filter(|s| s.metric == metric)
        .filter(|s| {
            let mut names: Vec<&str> = s.labels.keys().map(String::as_str).collect();
            names.sort();
            let mut want: Vec<&str> = labels.iter().map(|(k, _)| *k).collect();
            want.sort();
            names == want && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v))
        })
        .map(|s| match &s.value {
            Sample::Counter(v) | Sample::Gauge(v) | Sample::Untyped(v) => *v,
            other => panic!("{metric}: not a single value: {other:?}"),
        })
        .collect();
    assert!(matching.len() <= 1, "{metric} {labels:?}: {matching:?}");
    matching.first().copied().unwrap_or(0.0)
}

/// Sum of `metric` over the series whose labels include `labels`.
fn sum(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match &s.value {
            Sample::Counter(v) | Sample::Gauge(v) | Sample::Untyped(v) => *v,
            _ => 0.0,
        })
        .sum()
}

/// Observations of the histogram `metric` with exactly `labels` (its `_count`),
/// checked against the parsed `+Inf` bucket.
fn histogram_count(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    let count = value(scrape, &format!("{metric}_count"), labels);
    let inf = scrape
        .samples
        .iter()
        .find(|s| {
            s.metric == metric
                && s.labels.len() == labels.len()
                && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v))
        })
        .map(|s| match &s.value {
            Sample::Histogram(buckets) => buckets
                .iter()
                .find(|b| b.less_than.is_infinite())
                .map(|b| b.count)
                .expect("a +Inf bucket"),
            other => panic!("{metric}: not a histogram: {other:?}"),
        })
        .unwrap_or(0.0);
    assert_eq!(
        count, inf,
        "{metric} {labels:?}: _count and the +Inf bucket agree"
    );
    count
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_after_a_mix_of_calls_counts_every_family() {
    let o = ObservedEnv::start(|_| {}).await;
    let env = &o.env;
    let agent = env.sandbox.credentials().snowflake_user.clone();

    // alice: a cold Snowflake call whose first SQL API request gets a 429.
    env.sandbox.faults().add(
        Endpoint::SnowflakeSubmit,
        Fault::Status {
            status: 429,
            retry_after: Some(0),
            times: 1,
        },
    );
    let alice = env.connect(ALICE).await;
    call_ok(&alice, "query_snowflake", json!({"sql": SF_ORDERS})).await;
    assert_eq!(env.sandbox.faults().fired(Endpoint::SnowflakeSubmit), 1);
    // ... a warm one (cached PAT), one on Databricks, one the guard refuses.
    call_ok(&alice, "query_snowflake", json!({"sql": SF_ORDERS})).await;
    call_ok(&alice, "query_databricks", json!({"sql": DB_EMPLOYEES})).await;
    let refused = call_err(&alice, "query_snowflake", json!({"sql": REFUSED_SQL})).await;
    assert!(refused.contains("SQL guard"), "{refused}");

    // bob: two cold calls at once; the second arrives while the first is
    // vending (slowed down) and shares its PAT instead of minting another.
    env.sandbox.faults().add(
        Endpoint::ImmutaVend,
        Fault::Latency(Duration::from_millis(500)),
    );
    let bob = env.connect(BOB).await;
    let vends_before = env.sandbox.state.count(Endpoint::ImmutaVend);
    let state = env.sandbox.state.clone();
    let second = async {
        eventually("bob's vend reached Immuta", || {
            state.count(Endpoint::ImmutaVend) > vends_before
        })
        .await;
        call_ok(&bob, "query_snowflake", json!({"sql": SF_ORDERS})).await
    };
    tokio::join!(
        call_ok(&bob, "query_snowflake", json!({"sql": SF_ORDERS})),
        second
    );
    env.sandbox.faults().clear();

    // Refused requests: no token, and a token for another audience.
    let response = bounded("no token", env.raw_initialize().send())
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let other_audience =
        env.issuer
            .issuer
            .mint(ALICE, "http://127.0.0.1:1/other", Duration::from_secs(300));
    let response = bounded(
        "wrong audience",
        env.raw_initialize().bearer_auth(&other_audience).send(),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 401);

    let (text, s) = o.scrape().await;

    // Tool calls: 4 Snowflake successes, 1 Databricks success, 1 guard refusal.
    let calls = "immuta_mcp_tool_calls_total";
    let labels =
        |tool, platform, outcome| [("tool", tool), ("platform", platform), ("outcome", outcome)];
    assert_eq!(
        value(&s, calls, &labels("query_snowflake", "snowflake", "ok")),
        4.0
    );
    assert_eq!(
        value(&s, calls, &labels("query_databricks", "databricks", "ok")),
        1.0
    );
    assert_eq!(
        value(
            &s,
            calls,
            &labels("query_snowflake", "snowflake", "guard_refused")
        ),
        1.0
    );
    assert_eq!(sum(&s, calls, &[]), 6.0, "no other tool call was counted");
    let duration = "immuta_mcp_tool_call_duration_seconds";
    assert_eq!(
        histogram_count(
            &s,
            duration,
            &[("tool", "query_snowflake"), ("platform", "snowflake")]
        ),
        5.0
    );
    assert_eq!(
        histogram_count(
            &s,
            duration,
            &[("tool", "query_databricks"), ("platform", "databricks")]
        ),
        1.0
    );

    // Upstream: the injected 429, then the retried request answered.
    let upstream = "immuta_mcp_upstream_requests_total";
    let sf_statements = [("service", "snowflake"), ("endpoint", "statements")];
    assert_eq!(
        value(
            &s,
            upstream,
            &[sf_statements[0], sf_statements[1], ("status", "429")]
        ),
        1.0
    );
    let sf_total = sum(&s, upstream, &sf_statements);
    // The readiness probe's unauthenticated `{}` submits are not tool traffic.
    let submits = env
        .sandbox
        .state
        .seen(Endpoint::SnowflakeSubmit)
        .iter()
        .filter(|r| r.body.as_ref() != b"{}")
        .count();
    assert_eq!(
        sf_total, submits as f64,
        "every SQL API submit the emulator saw was counted once"
    );
    assert_eq!(
        histogram_count(
            &s,
            "immuta_mcp_upstream_request_duration_seconds",
            &sf_statements
        ),
        sf_total
    );
    assert_eq!(
        sum(&s, upstream, &[("service", "immuta"), ("endpoint", "vend")]),
        3.0,
        "vends: alice on Snowflake and Databricks, bob once"
    );
    assert_eq!(
        sum(
            &s,
            upstream,
            &[("service", "databricks"), ("endpoint", "token")]
        ),
        1.0
    );
    assert!(
        sum(
            &s,
            upstream,
            &[("service", "databricks"), ("endpoint", "statements")]
        ) >= 1.0
    );

    // Credential cache: alice miss + hit, bob miss + shared; Databricks one miss.
    let cache = "immuta_mcp_credential_cache_total";
    for (platform, result, want) in [
        ("snowflake", "miss", 2.0),
        ("snowflake", "hit", 1.0),
        ("snowflake", "shared", 1.0),
        ("databricks", "miss", 1.0),
    ] {
        assert_eq!(
            value(&s, cache, &[("platform", platform), ("result", result)]),
            want,
            "{platform} {result}"
        );
    }
    assert_eq!(
        value(&s, "immuta_mcp_vends_total", &[("outcome", "ok")]),
        3.0
    );
    assert_eq!(
        value(
            &s,
            "immuta_mcp_snowflake_pats",
            &[("agent", agent.as_str())]
        ),
        2.0,
        "one live PAT per Snowflake user"
    );
    assert_eq!(value(&s, "immuta_mcp_databricks_tokens", &[]), 1.0);

    // Refusals.
    let auth = "immuta_mcp_auth_failures_total";
    assert_eq!(value(&s, auth, &[("reason", "missing_token")]), 1.0);
    assert_eq!(value(&s, auth, &[("reason", "wrong_audience")]), 1.0);
    assert_eq!(sum(&s, auth, &[]), 2.0);
    assert_eq!(
        value(
            &s,
            "immuta_mcp_guard_refusals_total",
            &[("platform", "snowflake"), ("reason", "not_read_only")]
        ),
        1.0
    );
    // Sessions: alice's and bob's (stateful HTTP sessions).
    assert_eq!(value(&s, "immuta_mcp_active_sessions", &[]), 2.0);

    // Nothing secret, no SQL and no user in any label or line.
    let mut secrets = vec![
        env.token(ALICE),
        other_audience.clone(),
        env.sandbox.credentials().databricks_client_secret.clone(),
        "sql-marker-7f3a".to_string(),
        "DELETE".to_string(),
        "SELECT".to_string(),
        ALICE.to_string(),
        BOB.to_string(),
    ];
    if let Some(SecretRef::Value(key)) = env.config.immuta.as_ref().map(|i| i.api_key.clone()) {
        secrets.push(key);
    }
    for secret in &secrets {
        assert!(!text.contains(secret.as_str()), "/metrics holds {secret:?}");
    }

    // Sessions end: the gauge follows.
    close(alice).await;
    close(bob).await;
    let mut sessions = 2.0;
    for _ in 0..100 {
        sessions = value(&o.scrape().await.1, "immuta_mcp_active_sessions", &[]);
        if sessions == 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(sessions, 0.0, "closed sessions are no longer counted");
    o.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_user_adds_the_user_label_to_tool_calls_only() {
    let o = ObservedEnv::start(|c| c.metrics.per_user = true).await;
    let alice = o.env.connect(ALICE).await;
    call_ok(&alice, "whoami", json!({})).await;
    let (_, s) = o.scrape().await;
    assert_eq!(
        value(
            &s,
            "immuta_mcp_tool_calls_total",
            &[
                ("tool", "whoami"),
                ("platform", "none"),
                ("outcome", "ok"),
                ("user", ALICE)
            ]
        ),
        1.0
    );
    assert_eq!(
        histogram_count(
            &s,
            "immuta_mcp_tool_call_duration_seconds",
            &[("tool", "whoami"), ("platform", "none")]
        ),
        1.0,
        "the histogram stays per tool and platform"
    );
    close(alice).await;
    o.shutdown().await;
}

/// Poll `/readyz` at `base` until it answers `want`; returns the JSON body.
async fn readyz_becomes(o: &ObservedEnv, base: &str, want: u16) -> Value {
    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        let (status, _, body) = o.get(format!("{base}/readyz")).await;
        if status == want {
            return serde_json::from_str(&body).unwrap_or_else(|e| panic!("{body}: {e}"));
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "/readyz at {base} stayed {status} ({body}), expected {want}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_follows_the_upstream_probes_and_healthz_stays_up() {
    let o = ObservedEnv::start(|c| c.health.probe_interval_secs = 1).await;
    let bases = [o.env.base(), o.metrics_base()];
    for base in &bases {
        let ready = readyz_becomes(&o, base, 200).await;
        assert_eq!(ready, json!({"status": "ready", "reasons": []}));
    }

    // Snowflake's SQL API stops answering as it should (503 instead of 401).
    o.env.sandbox.faults().add(
        Endpoint::SnowflakeSubmit,
        Fault::Status {
            status: 503,
            retry_after: None,
            times: 10_000,
        },
    );
    for base in &bases {
        let down = readyz_becomes(&o, base, 503).await;
        assert_eq!(down["status"], "not_ready");
        let reasons = down["reasons"].as_array().expect("reasons").clone();
        assert_eq!(reasons.len(), 1, "{reasons:?}");
        let reason = reasons[0].as_str().unwrap();
        assert!(
            reason.starts_with("snowflake: ") && reason.contains("HTTP 503"),
            "{reason}"
        );
        let (status, _, body) = o.get(format!("{base}/healthz")).await;
        assert_eq!(
            (status, body.as_str()),
            (200, "ok"),
            "alive while not ready"
        );
    }

    o.env.sandbox.faults().clear();
    for base in &bases {
        readyz_becomes(&o, base, 200).await;
        let (status, _, _) = o.get(format!("{base}/healthz")).await;
        assert_eq!(status, 200);
    }
    o.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_waits_for_the_jwks_and_names_an_unreachable_issuer() {
    // An issuer whose JWKS URL answers nothing: the server cannot verify any token.
    let o = ObservedEnv::start(|c| {
        let oauth = c.identity.oauth.as_mut().expect("oauth");
        oauth.jwks_url = "http://127.0.0.1:9/jwks.json".into();
        c.health.probe_interval_secs = 1;
    })
    .await;
    // Wait until every upstream has answered its first probe: only then can
    // the reasons tell a broken issuer from upstreams not probed yet.
    let deadline = tokio::time::Instant::now() + STEP;
    let reasons = loop {
        let down = readyz_becomes(&o, &o.metrics_base(), 503).await;
        let reasons: Vec<String> = down["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap().to_string())
            .collect();
        if !reasons.iter().any(|r| r.ends_with("not probed yet"))
            || tokio::time::Instant::now() >= deadline
        {
            break reasons;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        reasons.iter().any(|r| r.starts_with("jwks: ")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().all(|r| r.starts_with("jwks: ")),
        "the upstreams are fine: {reasons:?}"
    );
    o.shutdown().await;
}
