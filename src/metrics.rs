//! Prometheus metrics of one server instance: the families, their bounded
//! labels, and the text exposition served at `/metrics`.
//!
//! A [`Metrics`] handle is created by the application and passed down (no
//! global recorder), so two servers in one process count independently. The
//! exposition is written by `prometheus-client` (the Prometheus org's Rust
//! client) in the OpenMetrics text format, which Prometheus scrapes natively.
//!
//! Every label value is bounded: tool names come from the server's own list,
//! outcomes and reasons are fixed categories, upstream endpoints are named
//! from the request path's shape (never the URL, whose path can carry a
//! statement handle or vend id). No label carries a secret or SQL text. The
//! only unbounded label is `user` on the tool-call counter, added only when
//! the operator sets `[metrics] per_user = true`.
//!
//! The gauges of live credentials and sessions are read at scrape time from
//! the components that hold them ([`Metrics::add_gauge_source`]), so they
//! cannot drift from the truth through a missed decrement.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Content type of the exposition (OpenMetrics text 1.0.0).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// One label set: `(name, value)` pairs in a fixed order.
type Labels = Vec<(&'static str, String)>;

/// Buckets of the duration histograms: 5 ms doubling to about 82 s.
#[derive(Clone, Copy)]
struct DurationBuckets;

impl MetricConstructor<Histogram> for DurationBuckets {
    fn new_metric(&self) -> Histogram {
        Histogram::new(exponential_buckets(0.005, 2.0, 15))
    }
}

/// The upstream services the server calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    Immuta,
    Snowflake,
    Databricks,
}

impl Service {
    pub fn as_str(self) -> &'static str {
        match self {
            Service::Immuta => "immuta",
            Service::Snowflake => "snowflake",
            Service::Databricks => "databricks",
        }
    }
}

/// What a credential lookup found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheResult {
    /// A fresh credential was cached when the call arrived.
    Hit,
    /// This call minted the credential (vend + PAT or token).
    Miss,
    /// Another call was minting the same user's credential; this one waited and shared it.
    Shared,
}

impl CacheResult {
    pub fn as_str(self) -> &'static str {
        match self {
            CacheResult::Hit => "hit",
            CacheResult::Miss => "miss",
            CacheResult::Shared => "shared",
        }
    }
}

/// A gauge value read at scrape time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GaugeReading {
    /// Live Snowflake PATs this process holds on the agent user `agent`.
    SnowflakePats { agent: String, live: i64 },
    /// Live Databricks OAuth tokens of vended groups.
    DatabricksTokens(i64),
    /// Live MCP sessions.
    ActiveSessions(i64),
}

/// Reads a gauge at scrape time; `None` once the component it reads is gone.
pub type GaugeSource = Box<dyn Fn() -> Option<GaugeReading> + Send + Sync>;

struct Families {
    tool_calls: Family<Labels, Counter>,
    tool_call_duration: Family<Labels, Histogram, DurationBuckets>,
    upstream_requests: Family<Labels, Counter>,
    upstream_request_duration: Family<Labels, Histogram, DurationBuckets>,
    credential_cache: Family<Labels, Counter>,
    vends: Family<Labels, Counter>,
    snowflake_pats: Family<Labels, Gauge>,
    databricks_tokens: Gauge,
    auth_failures: Family<Labels, Counter>,
    guard_refusals: Family<Labels, Counter>,
    active_sessions: Gauge,
}

struct Inner {
    registry: Registry,
    families: Families,
    per_user: bool,
    sources: Mutex<Vec<GaugeSource>>,
}

/// The metrics of one server (cheap to clone; clones share the counters).
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("per_user", &self.inner.per_user)
            .finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new(false)
    }
}

impl Metrics {
    /// A fresh registry with every family. `per_user` adds a `user` label to
    /// the tool-call counter (`[metrics] per_user`).
    pub fn new(per_user: bool) -> Self {
        let families = Families {
            tool_calls: Family::default(),
            tool_call_duration: Family::new_with_constructor(DurationBuckets),
            upstream_requests: Family::default(),
            upstream_request_duration: Family::new_with_constructor(DurationBuckets),
            credential_cache: Family::default(),
            vends: Family::default(),
            snowflake_pats: Family::default(),
            databricks_tokens: Gauge::default(),
            auth_failures: Family::default(),
            guard_refusals: Family::default(),
            active_sessions: Gauge::default(),
        };
        let mut registry = Registry::with_prefix("immuta_mcp");
        let f = &families;
        // Counters get the `_total` suffix from the encoder (OpenMetrics).
        registry.register(
            "tool_calls",
            "MCP tool calls by tool, platform and outcome",
            f.tool_calls.clone(),
        );
        registry.register_with_unit(
            "tool_call_duration",
            "Duration of MCP tool calls",
            Unit::Seconds,
            f.tool_call_duration.clone(),
        );
        registry.register(
            "upstream_requests",
            "HTTP requests to Immuta, Snowflake and Databricks (each attempt) by endpoint and status",
            f.upstream_requests.clone(),
        );
        registry.register_with_unit(
            "upstream_request_duration",
            "Duration of upstream HTTP requests (each attempt)",
            Unit::Seconds,
            f.upstream_request_duration.clone(),
        );
        registry.register(
            "credential_cache",
            "Credential lookups of tool calls: hit, miss (minted) or shared (waited for another call's mint)",
            f.credential_cache.clone(),
        );
        registry.register(
            "vends",
            "Immuta on-behalf-of vends by outcome",
            f.vends.clone(),
        );
        registry.register(
            "snowflake_pats",
            "Live Snowflake programmatic access tokens this process holds, by agent user",
            f.snowflake_pats.clone(),
        );
        registry.register(
            "databricks_tokens",
            "Live Databricks OAuth tokens of vended groups",
            f.databricks_tokens.clone(),
        );
        registry.register(
            "auth_failures",
            "Refused MCP requests by reason",
            f.auth_failures.clone(),
        );
        registry.register(
            "guard_refusals",
            "Statements refused by the SQL guard by platform and reason",
            f.guard_refusals.clone(),
        );
        registry.register(
            "active_sessions",
            "Live MCP sessions",
            f.active_sessions.clone(),
        );
        Self {
            inner: Arc::new(Inner {
                registry,
                families,
                per_user,
                sources: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Whether tool-call counters carry the `user` label.
    pub fn per_user(&self) -> bool {
        self.inner.per_user
    }

    /// One finished tool call. `tool` must be one of the server's tool names
    /// (or `unknown`); `platform` is `snowflake`, `databricks` or `none`.
    pub fn tool_call(
        &self,
        tool: &'static str,
        platform: &str,
        outcome: &str,
        user: &str,
        duration: Duration,
    ) {
        let platform = bounded_platform(platform);
        let mut labels: Labels = vec![
            ("tool", tool.to_string()),
            ("platform", platform.to_string()),
            ("outcome", outcome.to_string()),
        ];
        if self.inner.per_user {
            labels.push(("user", user.to_string()));
        }
        self.inner.families.tool_calls.get_or_create(&labels).inc();
        self.inner
            .families
            .tool_call_duration
            .get_or_create(&vec![
                ("tool", tool.to_string()),
                ("platform", platform.to_string()),
            ])
            .observe(duration.as_secs_f64());
    }

    /// One upstream HTTP attempt. `status` is the HTTP status, or `None` when
    /// no answer arrived (the label is then `error`).
    pub fn upstream_request(
        &self,
        service: Service,
        endpoint: &'static str,
        status: Option<u16>,
        duration: Duration,
    ) {
        let status = status.map_or_else(|| "error".to_string(), |s| s.to_string());
        let f = &self.inner.families;
        f.upstream_requests
            .get_or_create(&vec![
                ("service", service.as_str().to_string()),
                ("endpoint", endpoint.to_string()),
                ("status", status),
            ])
            .inc();
        f.upstream_request_duration
            .get_or_create(&vec![
                ("service", service.as_str().to_string()),
                ("endpoint", endpoint.to_string()),
            ])
            .observe(duration.as_secs_f64());
    }

    /// One credential lookup of a tool call on `platform`.
    pub fn credential_cache(&self, platform: &'static str, result: CacheResult) {
        self.inner
            .families
            .credential_cache
            .get_or_create(&vec![
                ("platform", platform.to_string()),
                ("result", result.as_str().to_string()),
            ])
            .inc();
    }

    /// One Immuta vend, `ok` or a failure category.
    pub fn vend(&self, outcome: &'static str) {
        self.inner
            .families
            .vends
            .get_or_create(&vec![("outcome", outcome.to_string())])
            .inc();
    }

    /// One refused MCP request (bad, missing or expired token, ...).
    pub fn auth_failure(&self, reason: &'static str) {
        self.inner
            .families
            .auth_failures
            .get_or_create(&vec![("reason", reason.to_string())])
            .inc();
    }

    /// One statement refused by the SQL guard, by category (never the SQL).
    pub fn guard_refusal(&self, platform: &'static str, reason: &'static str) {
        self.inner
            .families
            .guard_refusals
            .get_or_create(&vec![
                ("platform", platform.to_string()),
                ("reason", reason.to_string()),
            ])
            .inc();
    }

    /// Read a gauge from `source` at every scrape, until it answers `None`.
    pub fn add_gauge_source(&self, source: GaugeSource) {
        self.inner
            .sources
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(source);
    }

    /// Set the gauges from their sources, dropping the sources that are gone.
    fn refresh_gauges(&self) {
        let mut sources = self.inner.sources.lock().unwrap_or_else(|e| e.into_inner());
        let mut pats: Vec<(String, i64)> = Vec::new();
        let (mut tokens, mut sessions) = (0i64, 0i64);
        sources.retain(|source| match source() {
            Some(GaugeReading::SnowflakePats { agent, live }) => {
                match pats.iter_mut().find(|(a, _)| *a == agent) {
                    Some((_, n)) => *n += live,
                    None => pats.push((agent, live)),
                }
                true
            }
            Some(GaugeReading::DatabricksTokens(n)) => {
                tokens += n;
                true
            }
            Some(GaugeReading::ActiveSessions(n)) => {
                sessions += n;
                true
            }
            None => false,
        });
        drop(sources);
        let f = &self.inner.families;
        f.snowflake_pats.clear();
        for (agent, live) in pats {
            f.snowflake_pats
                .get_or_create(&vec![("agent", agent)])
                .set(live);
        }
        f.databricks_tokens.set(tokens);
        f.active_sessions.set(sessions);
    }

    /// The exposition of every family (OpenMetrics text, ends with `# EOF`).
    pub fn render(&self) -> String {
        self.refresh_gauges();
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut text, &self.inner.registry);
        text
    }
}

/// `snowflake`, `databricks`, or `none` for calls that touch no platform.
fn bounded_platform(platform: &str) -> &'static str {
    match platform {
        "snowflake" => "snowflake",
        "databricks" => "databricks",
        _ => "none",
    }
}

/// A bounded name for an upstream request, from its method and URL path.
///
/// The paths are the ones the clients call: Immuta's OBO API
/// (`/agent/obo/roles[/{id}]`, `/bim/apikey/authenticate`), Snowflake's SQL
/// API v2 (`/api/v2/statements[/{handle}[/cancel]]`) and Databricks' OAuth
/// token endpoint and SQL Statement Execution API 2.0
/// (`/api/2.0/sql/statements[/{id}[/cancel|/result/chunks/{n}]]`). Ids are
/// never part of the name; anything else is `other`.
pub fn endpoint_name(service: Service, method: &reqwest::Method, path: &str) -> &'static str {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let is_post = *method == reqwest::Method::POST;
    let is_delete = *method == reqwest::Method::DELETE;
    match (service, segments.as_slice()) {
        (Service::Immuta, ["agent", "obo", "roles"]) if is_post => "vend",
        (Service::Immuta, ["agent", "obo", "roles", _]) if is_delete => "drop_roles",
        (Service::Immuta, ["agent", "obo", "roles", ..]) => "vend_status",
        (Service::Immuta, ["bim", "apikey", "authenticate"]) => "authenticate",
        (Service::Snowflake, ["api", "v2", "statements"]) => "statements",
        (Service::Snowflake, ["api", "v2", "statements", _, "cancel"]) => "cancel",
        (Service::Snowflake, ["api", "v2", "statements", _]) => "statement_status",
        (Service::Databricks, ["oidc", "v1", "token"]) => "token",
        (Service::Databricks, ["oidc", ".well-known", ..]) => "oauth_metadata",
        (Service::Databricks, ["api", "2.0", "sql", "statements"]) => "statements",
        (Service::Databricks, ["api", "2.0", "sql", "statements", _, "cancel"]) => "cancel",
        (Service::Databricks, ["api", "2.0", "sql", "statements", _, "result", ..]) => {
            "result_chunk"
        }
        (Service::Databricks, ["api", "2.0", "sql", "statements", _]) => "statement_status",
        (Service::Databricks, ["api", "2.0", "preview", "scim", "v2", "Me"]) => "scim_me",
        _ => "other",
    }
}

/// Counts the upstream requests of one service (carried by a
/// [`RetryPolicy`](crate::retry::RetryPolicy), which sends every upstream request).
#[derive(Clone, Debug)]
pub struct UpstreamObserver {
    pub metrics: Metrics,
    pub service: Service,
}

/// Two observers are the same when they count the same service into the same registry.
impl PartialEq for UpstreamObserver {
    fn eq(&self, other: &Self) -> bool {
        self.service == other.service && Arc::ptr_eq(&self.metrics.inner, &other.metrics.inner)
    }
}

impl UpstreamObserver {
    /// Record one attempt of `request`'s shape.
    pub fn attempt(
        &self,
        method: &reqwest::Method,
        url: Option<&reqwest::Url>,
        status: Option<u16>,
        duration: Duration,
    ) {
        let endpoint = url.map_or("other", |u| endpoint_name(self.service, method, u.path()));
        self.metrics
            .upstream_request(self.service, endpoint, status, duration);
    }
}

/// Tells [`CacheResult::Shared`] from [`CacheResult::Hit`]: which keys have a
/// mint running right now. A call that finds its key being minted when it
/// arrives and does not mint itself shared that mint.
#[derive(Debug, Default)]
pub struct MintTracker {
    minting: Mutex<std::collections::HashMap<String, usize>>,
}

/// Marks a key as being minted while alive.
pub struct MintGuard<'a> {
    tracker: &'a MintTracker,
    key: String,
}

impl MintTracker {
    fn table(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, usize>> {
        self.minting.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a mint of `key` is running (call when the lookup starts).
    pub fn is_minting(&self, key: &str) -> bool {
        self.table().contains_key(key)
    }

    /// Mark `key` as being minted until the guard is dropped.
    pub fn minting(&self, key: &str) -> MintGuard<'_> {
        *self.table().entry(key.to_string()).or_insert(0) += 1;
        MintGuard {
            tracker: self,
            key: key.to_string(),
        }
    }

    /// The result of a lookup that found `key` minting (`was_minting`) at its
    /// start and did (`minted`) or did not mint itself.
    pub fn result(was_minting: bool, minted: bool) -> CacheResult {
        match (minted, was_minting) {
            (true, _) => CacheResult::Miss,
            (false, true) => CacheResult::Shared,
            (false, false) => CacheResult::Hit,
        }
    }
}

impl Drop for MintGuard<'_> {
    fn drop(&mut self) {
        let mut table = self.tracker.table();
        if let Some(n) = table.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                table.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_names_never_carry_ids() {
        use reqwest::Method;
        let cases = [
            (Service::Immuta, Method::POST, "/agent/obo/roles", "vend"),
            (
                Service::Immuta,
                Method::GET,
                "/agent/obo/roles/v-123",
                "vend_status",
            ),
            (
                Service::Immuta,
                Method::DELETE,
                "/agent/obo/roles/v-123",
                "drop_roles",
            ),
            (
                Service::Snowflake,
                Method::POST,
                "/api/v2/statements",
                "statements",
            ),
            (
                Service::Snowflake,
                Method::GET,
                "/api/v2/statements/01b2-x",
                "statement_status",
            ),
            (
                Service::Snowflake,
                Method::POST,
                "/api/v2/statements/01b2/cancel",
                "cancel",
            ),
            (Service::Databricks, Method::POST, "/oidc/v1/token", "token"),
            (
                Service::Databricks,
                Method::GET,
                "/api/2.0/sql/statements/01ef/result/chunks/3",
                "result_chunk",
            ),
            (
                Service::Databricks,
                Method::GET,
                "/api/2.0/sql/statements/01ef",
                "statement_status",
            ),
            (
                Service::Databricks,
                Method::GET,
                "/somewhere/else/secret-id",
                "other",
            ),
        ];
        for (service, method, path, want) in cases {
            assert_eq!(endpoint_name(service, &method, path), want, "{path}");
        }
    }

    #[test]
    fn mint_tracker_tells_hit_shared_and_miss() {
        let t = MintTracker::default();
        assert!(!t.is_minting("alice"));
        let g = t.minting("alice");
        assert!(t.is_minting("alice") && !t.is_minting("bob"));
        drop(g);
        assert!(!t.is_minting("alice"), "the guard clears the mark");
        assert_eq!(MintTracker::result(false, false), CacheResult::Hit);
        assert_eq!(MintTracker::result(true, false), CacheResult::Shared);
        assert_eq!(MintTracker::result(true, true), CacheResult::Miss);
    }

    #[test]
    fn user_label_only_when_per_user() {
        let plain = Metrics::new(false);
        plain.tool_call(
            "whoami",
            "-",
            "ok",
            "alice@example.com",
            Duration::from_millis(3),
        );
        assert!(!plain.render().contains("alice@example.com"));
        let per_user = Metrics::new(true);
        per_user.tool_call(
            "whoami",
            "-",
            "ok",
            "alice@example.com",
            Duration::from_millis(3),
        );
        assert!(per_user.render().contains("user=\"alice@example.com\""));
    }

    #[test]
    fn gauge_sources_are_summed_and_dropped_when_gone() {
        let m = Metrics::new(false);
        let alive = Arc::new(());
        let weak = Arc::downgrade(&alive);
        m.add_gauge_source(Box::new(move || {
            weak.upgrade().map(|_| GaugeReading::ActiveSessions(2))
        }));
        m.add_gauge_source(Box::new(|| Some(GaugeReading::ActiveSessions(1))));
        assert!(m.render().contains("immuta_mcp_active_sessions 3"));
        drop(alive);
        assert!(m.render().contains("immuta_mcp_active_sessions 1"));
    }
}
