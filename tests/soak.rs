//! Bounded soak over streamable HTTP, all in this process: the sandbox, a
//! local OAuth issuer and `app::start_http` on 127.0.0.1:0, driven by rmcp's
//! streamable HTTP client with one bearer token per session.
//!
//! Sessions × calls with mixed users (alice, bob, carol) and platforms, while
//! a background task injects one-shot 429s (`Retry-After: 0`) now and then,
//! a little latency stays on both statement endpoints, and every PAT / OAuth
//! token expires once halfway. It checks:
//! - zero wrong-identity results: every answer is the token user's own view
//!   (alice: EU rows, masked e-mails; bob: every row unmasked; carol: her own
//!   grants, and a refusal for tables she lacks), `whoami` names the token
//!   user, and each returned statement ran in the sandbox for that user;
//! - zero lost responses: every call returns a result or a clear tool error;
//! - flat memory: VmRSS growth per call over the second half of the run is
//!   bounded (a 32 KiB-per-call leak fails);
//! - the faults were met: every injected 429 fired (or is still queued at the
//!   end, at most one per endpoint) and the mid-run expiry made the server
//!   mint a fresh PAT and OAuth token.
//!
//! A test binary of its own, the only one beside `tests/it/`: the memory check
//! reads this process's VmRSS, which other tests running in the same process
//! would move. It shares `tests/it/support/` by path.
//!
//! Default size: 12 sessions × 50 calls. `IMMUTA_MCP_SOAK=full`: the issue's
//! 50 × 200; `IMMUTA_MCP_SOAK=<sessions>x<calls>` (e.g. `20x1000`) as given.

// A failed unwrap or assertion is how a test fails; the library's no-panic lints are for src/.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "it/support/mod.rs"]
mod support;

use immuta_mcp::app::{self, LocalIssuer};
use immuta_mcp::result::Platform;
use immuta_mcp::sandbox::{Counter, Endpoint, Fault, Sandbox, SandboxOptions};
use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::{RoleClient, RunningService, ServiceError};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use support::hardening::{
    CAROL, DB_EMPLOYEES, SF_ORDERS, USERS, args, check_no_secret, check_view, foreign_statements,
    readable_sql, result_set, result_text, tool, vm_rss_kib,
};

/// Bound of one tool call (or one connect) over HTTP.
const CALL_BOUND: Duration = Duration::from_secs(60);
/// Statement requests per injected 429 (on each statement endpoint).
const REQUESTS_PER_429: u64 = 10;
/// Memory growth per call in the second half of the run (from the mid-run
/// expiry to the end) that would mean a leak. The first half still warms
/// allocator arenas and pools; in the second half the server is steady and
/// what grows is mostly the sandbox's own record of requests and statements,
/// which lives in this process too (measured: 9-15 KiB per call on the
/// default run). A 32 KiB-per-call leak fails it.
const RSS_GROWTH_PER_CALL_KIB: u64 = 24;

type Client = RunningService<RoleClient, ()>;

/// What one call is meant to do.
#[derive(Clone, Copy, Debug)]
enum Call {
    WhoAmI,
    /// A query the user may run; the answer must be their own view.
    Readable(Platform),
    /// A table the user was not granted (carol only): a clear refusal.
    Denied(Platform),
}

/// The `n`-th call of a session of `user`: mostly queries on both platforms,
/// some `whoami`, and for carol some refused tables.
fn plan(user: &str, session: usize, n: usize) -> Call {
    let platform = if (session + n).is_multiple_of(2) {
        Platform::Snowflake
    } else {
        Platform::Databricks
    };
    match n % 10 {
        0 => Call::WhoAmI,
        7 if user == CAROL => Call::Denied(platform),
        _ => Call::Readable(platform),
    }
}

/// Tallies across all sessions.
#[derive(Default)]
struct Tally {
    calls: AtomicU64,
    results: AtomicU64,
    refusals: AtomicU64,
    tool_errors: AtomicU64,
    lost: AtomicU64,
    wrong_identity: AtomicU64,
    problems: std::sync::Mutex<Vec<String>>,
    /// (statement id, user) of every successful query.
    statements: std::sync::Mutex<Vec<(String, String)>>,
}

impl Tally {
    fn problem(&self, counter: &AtomicU64, message: String) {
        counter.fetch_add(1, Ordering::SeqCst);
        let mut problems = self.problems.lock().unwrap();
        if problems.len() < 20 {
            problems.push(message);
        }
    }

    fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::SeqCst)
    }
}

struct Soak {
    sandbox: Sandbox,
    issuer: LocalIssuer,
    url: String,
    tally: Tally,
}

impl Soak {
    async fn connect(&self, user: &str) -> Result<Client, String> {
        let token = self
            .issuer
            .issuer
            .mint(user, &self.url, Duration::from_secs(3600));
        let config =
            StreamableHttpClientTransportConfig::with_uri(self.url.clone()).auth_header(token);
        let http = reqwest::Client::builder()
            .build()
            .map_err(|e| e.to_string())?;
        let transport = StreamableHttpClientTransport::with_client(http, config);
        match tokio::time::timeout(CALL_BOUND, ().serve(transport)).await {
            Ok(Ok(client)) => Ok(client),
            Ok(Err(e)) => Err(format!("{user} could not initialize: {e}")),
            Err(_) => Err(format!("{user}: no initialize answer within the bound")),
        }
    }

    /// One session: connect as `user`, make `calls` calls, close.
    async fn session(&self, index: usize, user: &'static str, calls: usize) {
        let client = match self.connect(user).await {
            Ok(c) => c,
            Err(e) => {
                self.tally.calls.fetch_add(calls as u64, Ordering::SeqCst);
                self.tally
                    .problem(&self.tally.lost, format!("session {index}: {e}"));
                self.tally
                    .lost
                    .fetch_add(calls.saturating_sub(1) as u64, Ordering::SeqCst);
                return;
            }
        };
        for n in 0..calls {
            self.call(&client, index, user, plan(user, index, n)).await;
        }
        let _ = tokio::time::timeout(CALL_BOUND, client.cancel()).await;
    }

    async fn call(&self, client: &Client, session: usize, user: &'static str, call: Call) {
        let t = &self.tally;
        t.calls.fetch_add(1, Ordering::SeqCst);
        let (name, arguments) = match call {
            Call::WhoAmI => ("whoami", serde_json::json!({})),
            Call::Readable(p) => (tool(p), args(readable_sql(p, user))),
            Call::Denied(Platform::Snowflake) => (tool(Platform::Snowflake), args(SF_ORDERS)),
            Call::Denied(Platform::Databricks) => (tool(Platform::Databricks), args(DB_EMPLOYEES)),
        };
        let Value::Object(arguments) = arguments else {
            unreachable!("arguments are a JSON object")
        };
        let params = CallToolRequestParams::new(name).with_arguments(arguments);
        let label = format!("session {session} ({user}) {call:?}");
        let result: CallToolResult =
            match tokio::time::timeout(CALL_BOUND, client.call_tool(params)).await {
                Err(_) => {
                    return t.problem(&t.lost, format!("{label}: no answer within the bound"));
                }
                Ok(Err(ServiceError::McpError(e))) => {
                    // A valid tools/call must get a tool result, never a protocol error.
                    return t.problem(&t.lost, format!("{label}: JSON-RPC error {e:?}"));
                }
                Ok(Err(e)) => return t.problem(&t.lost, format!("{label}: {e}")),
                Ok(Ok(r)) => r,
            };
        if let Err(e) = check_no_secret(&result, &self.sandbox) {
            return t.problem(&t.wrong_identity, format!("{label}: {e}"));
        }
        let text = result_text(&result);
        match call {
            Call::WhoAmI => {
                let who = result
                    .structured_content
                    .as_ref()
                    .and_then(|v| v["user"].as_str());
                if who == Some(user) {
                    t.results.fetch_add(1, Ordering::SeqCst);
                } else {
                    t.problem(&t.wrong_identity, format!("{label}: whoami says {who:?}"));
                }
            }
            Call::Denied(_) => {
                let refused = result.is_error == Some(true)
                    && (text.contains("does not exist or not authorized")
                        || text.contains("TABLE_OR_VIEW_NOT_FOUND"));
                if refused {
                    t.refusals.fetch_add(1, Ordering::SeqCst);
                } else if result.is_error == Some(true) {
                    self.tool_error(&label, &text);
                } else {
                    t.problem(
                        &t.wrong_identity,
                        format!("{label}: carol got rows of a table she was not granted"),
                    );
                }
            }
            Call::Readable(platform) => {
                if result.is_error == Some(true) {
                    return self.tool_error(&label, &text);
                }
                let checked = result_set(&result).and_then(|rs| {
                    check_view(platform, user, &rs)?;
                    Ok(rs.statement_id)
                });
                match checked {
                    Ok(statement_id) => {
                        t.results.fetch_add(1, Ordering::SeqCst);
                        t.statements
                            .lock()
                            .unwrap()
                            .push((statement_id, user.to_string()));
                    }
                    Err(e) => t.problem(&t.wrong_identity, format!("{label}: {e}")),
                }
            }
        }
    }

    /// A tool error must be clear: it names the service that failed.
    fn tool_error(&self, label: &str, text: &str) {
        let t = &self.tally;
        let clear = [
            "Snowflake",
            "Databricks",
            "Immuta",
            "snowflake",
            "databricks",
        ]
        .iter()
        .any(|s| text.contains(s));
        if clear {
            t.problem(&t.tool_errors, format!("{label}: {text}"));
        } else {
            t.problem(&t.lost, format!("{label}: unclear tool error: {text}"));
        }
    }
}

fn rate_limit() -> Fault {
    Fault::Status {
        status: 429,
        retry_after: Some(0),
        times: 1,
    }
}

/// Until `stop`: inject one-shot 429s (`Retry-After: 0`) on the statement
/// endpoints, about one per [`REQUESTS_PER_429`] requests there (so they
/// never pile up), and once the call count reaches `expire_after_calls`, expire
/// every credential and rate-limit the next vend and token request too.
/// Returns what it did.
async fn inject_faults(
    soak: Arc<Soak>,
    stop: Arc<AtomicBool>,
    expire_after_calls: u64,
) -> Injected {
    let state = &soak.sandbox.state;
    let mut steady = [
        (Endpoint::SnowflakeSubmit, 0u64),
        (Endpoint::DatabricksSubmit, 0u64),
    ];
    let mut done = Injected::default();
    while !stop.load(Ordering::SeqCst) {
        let calls = Tally::get(&soak.tally.calls);
        if done.expired_at.is_none() && calls >= expire_after_calls {
            done.credentials_at_expiry = (
                state.counter(Counter::PatsCreated),
                state.counter(Counter::OAuthTokensIssued),
            );
            state.expire_credentials();
            for ep in [Endpoint::ImmutaVend, Endpoint::DatabricksToken] {
                soak.sandbox.faults().add(ep, rate_limit());
                done.rate_limits += 1;
            }
            done.expired_at = Some(calls);
            done.rss_at_expiry = vm_rss_kib();
        }
        for (ep, seen) in &mut steady {
            let now = state.count(*ep);
            if now >= *seen + REQUESTS_PER_429 {
                soak.sandbox.faults().add(*ep, rate_limit());
                done.rate_limits += 1;
                *seen = now;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    done
}

/// What the fault injector did during the soak.
#[derive(Debug, Default)]
struct Injected {
    /// One-shot 429s added (statement endpoints, and the vend / token request after the expiry).
    rate_limits: u64,
    /// The call count when every credential was expired.
    expired_at: Option<u64>,
    /// (PATs created, OAuth tokens issued) just before the expiry.
    credentials_at_expiry: (u64, u64),
    /// VmRSS at the expiry (half-way).
    rss_at_expiry: Option<u64>,
}

/// Endpoints the injector rate-limits.
const RATE_LIMITED: [Endpoint; 4] = [
    Endpoint::SnowflakeSubmit,
    Endpoint::DatabricksSubmit,
    Endpoint::ImmutaVend,
    Endpoint::DatabricksToken,
];

/// Sessions × calls: `full` = the 50 × 200, `<sessions>x<calls>` as
/// given, anything else (or unset) the quick default.
fn soak_size(setting: Option<&str>) -> (usize, usize) {
    match setting {
        Some("full") => (50, 200),
        Some(custom) => custom
            .split_once('x')
            .and_then(|(s, c)| Some((s.trim().parse().ok()?, c.trim().parse().ok()?)))
            .filter(|&(s, c): &(usize, usize)| s > 0 && c > 0)
            .unwrap_or((12, 50)),
        None => (12, 50),
    }
}

fn mib(kib: Option<u64>) -> String {
    kib.map(|k| format!("{:.1} MiB", k as f64 / 1024.0))
        .unwrap_or_else(|| "n/a".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_over_http_keeps_identities_answers_every_call_and_memory_flat() {
    let (sessions, calls) = soak_size(std::env::var("IMMUTA_MCP_SOAK").ok().as_deref());
    immuta_mcp::http_client::install_crypto_provider();

    let rss_start = vm_rss_kib();
    let sandbox = Sandbox::start(SandboxOptions::default())
        .await
        .expect("sandbox starts");
    let issuer = LocalIssuer::start().await.expect("issuer starts");
    let mut cfg = sandbox.client_config();
    cfg.identity.oauth = Some(issuer.oauth_config());
    let server = app::start_http(&cfg, "127.0.0.1:0")
        .await
        .expect("HTTP server starts");
    let soak = Arc::new(Soak {
        url: server.resource_url.clone(),
        sandbox,
        issuer,
        tally: Tally::default(),
    });

    // Warm-up: one short session per user (vends, PATs, tokens, pools, JWKS).
    for (i, user) in USERS.into_iter().enumerate() {
        soak.session(i, user, 4).await;
    }
    let warm_calls = Tally::get(&soak.tally.calls);
    assert_eq!(
        Tally::get(&soak.tally.results) + Tally::get(&soak.tally.refusals),
        warm_calls,
        "the warm-up answers cleanly: {:?}",
        soak.tally.problems.lock().unwrap()
    );
    let rss_warm = vm_rss_kib();

    // A little latency stays on, 429s come and go, and every credential expires once.
    for ep in [Endpoint::SnowflakeSubmit, Endpoint::DatabricksSubmit] {
        soak.sandbox
            .faults()
            .add(ep, Fault::Latency(Duration::from_millis(3)));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let total = (sessions * calls) as u64;
    let injector = tokio::spawn(inject_faults(
        soak.clone(),
        stop.clone(),
        warm_calls + total / 2,
    ));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for s in 0..sessions {
        let soak = soak.clone();
        let user = USERS[s % USERS.len()];
        tasks.push(tokio::spawn(async move {
            soak.session(100 + s, user, calls).await
        }));
    }
    for task in tasks {
        task.await.expect("session task");
    }
    stop.store(true, Ordering::SeqCst);
    let injected = injector.await.expect("injector task");
    let elapsed = started.elapsed();
    let faults = soak.sandbox.faults();
    let fired: u64 = RATE_LIMITED.iter().map(|ep| faults.fired(*ep)).sum();
    let unmet: u64 = RATE_LIMITED.iter().map(|ep| faults.queued(*ep)).sum();
    faults.clear();
    let rss_end = vm_rss_kib();

    // Every statement the sandbox ran, ran for one of the three users as a
    // vended role, and every statement a user got back ran for that user.
    let executed = soak.sandbox.state.executed();
    let mut foreign = Vec::new();
    for platform in [Platform::Snowflake, Platform::Databricks] {
        for user in USERS {
            let mine: Vec<_> = executed
                .iter()
                .filter(|s| s.user == user)
                .cloned()
                .collect();
            foreign.extend(foreign_statements(&mine, platform, user));
        }
    }
    foreign.extend(
        executed
            .iter()
            .filter(|s| !USERS.contains(&s.user.as_str()))
            .map(|s| format!("{:?} ran for {}", s.sql, s.user)),
    );
    let by_id: std::collections::HashMap<&str, &str> = executed
        .iter()
        .map(|s| (s.statement_id.as_str(), s.user.as_str()))
        .collect();
    let returned = soak.tally.statements.lock().unwrap().clone();
    let mut mismatched = 0u64;
    for (id, user) in &returned {
        if by_id.get(id.as_str()) != Some(&user.as_str()) {
            mismatched += 1;
            foreign.push(format!(
                "statement {id} returned to {user} ran for {:?}",
                by_id.get(id.as_str())
            ));
        }
    }

    let t = &soak.tally;
    let answered = Tally::get(&t.results) + Tally::get(&t.refusals) + Tally::get(&t.tool_errors);
    let wrong = Tally::get(&t.wrong_identity) + mismatched;
    println!(
        "\nsoak: {sessions} sessions x {calls} calls = {total} calls (+{warm_calls} warm-up) over streamable HTTP in {:.1} s",
        elapsed.as_secs_f64()
    );
    println!(
        "soak: {} results, {} expected refusals, {} tool errors, {} lost, {} wrong-identity; \
         {} returned statements matched to their user; {} statements executed; \
         {} 429s injected, {fired} met, {unmet} left unmet at the end; every credential expired at call {:?}",
        Tally::get(&t.results),
        Tally::get(&t.refusals),
        Tally::get(&t.tool_errors),
        Tally::get(&t.lost),
        wrong,
        returned.len() as u64 - mismatched,
        executed.len(),
        injected.rate_limits,
        injected.expired_at,
    );
    println!(
        "soak: VmRSS start {}, after warm-up {}, half-way {}, end {}",
        mib(rss_start),
        mib(rss_warm),
        mib(injected.rss_at_expiry),
        mib(rss_end)
    );
    let problems = t.problems.lock().unwrap().clone();
    for p in &problems {
        println!("soak problem: {p}");
    }

    assert_eq!(wrong, 0, "wrong-identity results: {foreign:?} {problems:?}");
    assert!(foreign.is_empty(), "{foreign:?}");
    assert_eq!(Tally::get(&t.lost), 0, "lost responses: {problems:?}");
    assert_eq!(answered, Tally::get(&t.calls), "every call answered");
    // Injected 429s are one-shot and retried: nearly every call must succeed.
    assert!(
        Tally::get(&t.tool_errors) * 20 <= total,
        "too many tool errors ({} of {total}): {problems:?}",
        Tally::get(&t.tool_errors)
    );
    assert!(
        Tally::get(&t.refusals) > 0 && returned.len() as u64 > total / 2,
        "the soak exercised queries and refusals"
    );
    // The faults were met: the 429s were answered (and retried, since nearly
    // every call succeeded), and the expiry made the server mint afresh.
    assert!(injected.rate_limits > 0, "the injector added 429s");
    assert_eq!(
        fired + unmet,
        injected.rate_limits,
        "every injected 429 is accounted for"
    );
    assert!(
        unmet <= RATE_LIMITED.len() as u64 && fired * 2 >= injected.rate_limits,
        "the injected 429s met requests ({fired} of {})",
        injected.rate_limits
    );
    assert!(
        injected.expired_at.is_some(),
        "every credential expired mid-run"
    );
    let (pats, tokens) = injected.credentials_at_expiry;
    let state = &soak.sandbox.state;
    assert!(
        state.counter(Counter::PatsCreated) > pats
            && state.counter(Counter::OAuthTokensIssued) > tokens,
        "after the expiry the server minted a fresh PAT and a fresh OAuth token"
    );
    let (mid, end) = (
        injected
            .rss_at_expiry
            .expect("VmRSS readable half-way (Linux /proc)"),
        rss_end.expect("VmRSS readable at the end"),
    );
    let second_half = Tally::get(&t.calls) - injected.expired_at.unwrap_or_default();
    let bound = RSS_GROWTH_PER_CALL_KIB * second_half;
    assert!(
        end.saturating_sub(mid) < bound,
        "memory grew from {} to {} over the last {second_half} calls (bound {bound} KiB)",
        mib(Some(mid)),
        mib(rss_end),
    );
    server.shutdown().await;
}
