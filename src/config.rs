//! Typed configuration: one TOML file plus environment overrides.
//!
//! Secrets are given by reference (`{ env = "NAME" }`, `{ file = "path" }`,
//! or, for local experiments only, `{ value = "..." }`) and resolved into
//! [`Secret`]s, which never print. Environment overrides follow each
//! vendor's conventions where they exist (`DATABRICKS_HOST`,
//! `DATABRICKS_CLIENT_ID`, `DATABRICKS_CLIENT_SECRET`) and use the
//! `IMMUTA_MCP_` prefix otherwise.

mod parse_error;
mod secret_ref;

use parse_error::parse_error_message;
use serde::{Deserialize, Serialize};

pub use secret_ref::{INLINE_SECRET_REFUSED, SecretRef};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid TOML for immuta-mcp: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("secret {what}: environment variable {var} is not set")]
    MissingEnv { what: String, var: String },
    #[error("secret {what}: cannot read file {path}: {source}")]
    SecretFile {
        what: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid setting {key}: {message}")]
    Invalid { key: String, message: String },
}

/// The whole server configuration.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub identity: IdentityConfig,
    pub immuta: Option<ImmutaConfig>,
    pub snowflake: Option<SnowflakeConfig>,
    pub databricks: Option<DatabricksConfig>,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub guard: GuardConfig,
    #[serde(default)]
    pub network: NetworkConfig,
    /// `[cache]`: local only, or shared by replicas through Redis.
    #[serde(default)]
    pub cache: crate::shared::CacheConfig,
    /// `[[agents]]`: more agent identities besides the one of `[immuta]`/`[snowflake]`.
    #[serde(default)]
    pub agents: Vec<crate::agents::AgentConfig>,
    #[serde(default)]
    pub metrics: MetricsConfig,
    #[serde(default)]
    pub health: HealthConfig,
}

/// `[metrics]`: what the Prometheus endpoint (`--metrics ADDR`) exposes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Add the end user as a `user` label of `immuta_mcp_tool_calls_total`
    /// (one series per user: off by default).
    #[serde(default)]
    pub per_user: bool,
}

/// `[health]`: the readiness probes behind `/readyz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthConfig {
    /// Seconds between two probes of each upstream.
    #[serde(default = "default_probe_interval")]
    pub probe_interval_secs: u64,
    /// Seconds one probe may take before it counts as failed.
    #[serde(default = "default_probe_timeout")]
    pub probe_timeout_secs: u64,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            probe_interval_secs: default_probe_interval(),
            probe_timeout_secs: default_probe_timeout(),
        }
    }
}

fn default_probe_interval() -> u64 {
    30
}
fn default_probe_timeout() -> u64 {
    5
}

/// How the upstream HTTP client reaches Immuta, Snowflake and Databricks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkConfig {
    /// Host-to-address overrides, like curl's `--resolve`: `"HOST:443:ADDR"`
    /// sends HTTPS requests for HOST to ADDR (DNS is not asked);
    /// `"HOST:443:ADDR:PORT"` also connects to PORT instead of 443 (as
    /// curl's `--connect-to`). IPv6 addresses go in brackets. The URL, TLS
    /// server name and `Host` header stay HOST.
    #[serde(default)]
    pub resolve: Vec<String>,
    /// A PEM file of extra CA certificates to trust, besides the platform's
    /// roots (e.g. a TLS-inspecting proxy's CA, or the sandbox's).
    pub extra_ca_file: Option<PathBuf>,
}

/// Transport-level settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Public URL of this server's MCP endpoint's resource (the `aud` tokens must carry),
    /// e.g. `https://mcp.example.com/mcp`. Defaults to `http://<bind>/mcp`.
    pub resource_url: Option<String>,
    /// Origins allowed to call the HTTP endpoint (besides requests without `Origin`).
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// Keep MCP sessions in memory (true) or run stateless (false, for load balancers).
    #[serde(default = "default_true")]
    pub stateful_sessions: bool,
    /// A client must send a complete request head within this many seconds (HTTP/1).
    #[serde(default = "default_header_read_timeout")]
    pub header_read_timeout_secs: u64,
    /// A connection with no request in flight and no bytes moving is closed after this
    /// many seconds. Keep it above the 15 s SSE keep-alive.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout_secs: u64,
    /// A request body must arrive completely within this many seconds of the request head.
    #[serde(default = "default_body_read_timeout")]
    pub body_read_timeout_secs: u64,
    /// Connections served at once; further ones wait in the listen backlog.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Live MCP sessions one user may hold (stateful mode); the next `initialize` gets HTTP 429.
    #[serde(default = "default_max_sessions_per_user")]
    pub max_sessions_per_user: usize,
    /// Live MCP sessions over all users (stateful mode).
    #[serde(default = "default_max_sessions")]
    pub max_sessions: usize,
    /// Key authenticating `fetch_more` cursors (a secret reference, at least 32 bytes).
    /// Unset: a random key per process, so cursors die with the process (and are not
    /// accepted by another replica).
    #[serde(default)]
    pub cursor_key: Option<SecretRef>,
    /// On SIGTERM/SIGINT, how long calls in flight may still run before they
    /// are cancelled on the platforms (default 30).
    #[serde(default = "default_shutdown_deadline")]
    pub shutdown_deadline_secs: u64,
}

fn default_shutdown_deadline() -> u64 {
    30
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            resource_url: None,
            allowed_origins: Vec::new(),
            stateful_sessions: true,
            header_read_timeout_secs: default_header_read_timeout(),
            idle_timeout_secs: default_idle_timeout(),
            body_read_timeout_secs: default_body_read_timeout(),
            max_connections: default_max_connections(),
            max_sessions_per_user: default_max_sessions_per_user(),
            max_sessions: default_max_sessions(),
            cursor_key: None,
            shutdown_deadline_secs: default_shutdown_deadline(),
        }
    }
}

impl ServerConfig {
    /// The connection and session limits must be positive.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let positive = [
            (
                "server.header_read_timeout_secs",
                self.header_read_timeout_secs as usize,
            ),
            ("server.idle_timeout_secs", self.idle_timeout_secs as usize),
            (
                "server.body_read_timeout_secs",
                self.body_read_timeout_secs as usize,
            ),
            ("server.max_connections", self.max_connections),
            ("server.max_sessions_per_user", self.max_sessions_per_user),
            ("server.max_sessions", self.max_sessions),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(ConfigError::Invalid {
                    key: key.into(),
                    message: "must be at least 1".into(),
                });
            }
        }
        Ok(())
    }
}

fn default_header_read_timeout() -> u64 {
    10
}
fn default_idle_timeout() -> u64 {
    60
}
fn default_body_read_timeout() -> u64 {
    30
}
fn default_max_connections() -> usize {
    1024
}
fn default_max_sessions_per_user() -> usize {
    16
}
fn default_max_sessions() -> usize {
    10_000
}

fn default_true() -> bool {
    true
}

/// How the end user is determined.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityConfig {
    /// stdio: the operator-configured end user (Immuta user id).
    pub stdio_user: Option<String>,
    /// stdio: optionally a signed ID token proving the user (verified like HTTP bearer tokens).
    pub stdio_id_token: Option<SecretRef>,
    /// HTTP (and stdio ID tokens): the OAuth issuer.
    pub oauth: Option<OAuthConfig>,
    /// HTTP: where the end user comes from: `bearer` (default; `identity.oauth`) or
    /// `databricks_apps` (the Databricks Apps proxy's forwarded headers).
    #[serde(default)]
    pub source: crate::identity::databricks_apps::HttpIdentitySource,
    /// `identity.source = "databricks_apps"` settings.
    #[serde(default)]
    pub databricks_apps: crate::identity::databricks_apps::DatabricksAppsConfig,
}

impl IdentityConfig {
    /// The workspace whose SCIM `Me` confirms forwarded users: `identity.databricks_apps.workspace_url`,
    /// else `databricks.host`.
    pub fn apps_workspace_url<'a>(
        &'a self,
        databricks: Option<&'a DatabricksConfig>,
    ) -> Option<&'a str> {
        self.databricks_apps
            .workspace_url
            .as_deref()
            .or(databricks.map(|d| d.host.as_str()))
    }
}

/// The authorization server whose tokens this server accepts.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthConfig {
    /// Expected `iss`.
    pub issuer: String,
    /// Where the issuer publishes its JWKS.
    pub jwks_url: String,
    /// Claim that names the Immuta user: `email`, `preferred_username`, `sub`, ...
    #[serde(default = "default_user_claim")]
    pub user_claim: String,
    /// Accepted signature algorithms (default RS256, ES256).
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<String>,
    /// Clock skew allowed on `exp`/`nbf`, seconds.
    #[serde(default = "default_leeway")]
    pub leeway_secs: u64,
    /// How long a fetched JWKS is trusted before refetching, seconds.
    #[serde(default = "default_jwks_ttl")]
    pub jwks_cache_secs: u64,
    /// `aud` expected on a stdio ID token (an OIDC ID token names the client id);
    /// defaults to the server's resource URL.
    #[serde(default)]
    pub id_token_audience: Option<String>,
    /// With `user_claim = "email"`, require `email_verified: true` in the token (default
    /// true; a token without `email_verified` is then refused).
    #[serde(default = "default_true")]
    pub require_email_verified: bool,
    /// Refuse tokens older than this (`now - iat`) or issued for longer (`exp - iat`),
    /// seconds; such tokens must carry `iat`. Unset: no limit.
    #[serde(default)]
    pub max_token_age_secs: Option<u64>,
    /// Require this JOSE `typ` header, e.g. `at+jwt` (RFC 9068 access tokens). Unset: any.
    #[serde(default)]
    pub required_typ: Option<String>,
    /// How long keys from the last successful JWKS fetch stay trusted while refreshes
    /// fail, seconds (at least `jwks_cache_secs`). Past that, tokens are refused with 503.
    #[serde(default = "default_jwks_max_stale")]
    pub jwks_max_stale_secs: u64,
    /// OAuth scopes every request to `/mcp` needs (from the token's `scope` or `scp`
    /// claim). Empty (default): none.
    #[serde(default)]
    pub required_scopes: Vec<String>,
    /// Further scopes per tool, e.g. `query_snowflake = ["sql:snowflake"]`; a call of
    /// that tool without them gets 403 `insufficient_scope`.
    #[serde(default)]
    pub tool_scopes: std::collections::BTreeMap<String, Vec<String>>,
}

impl OAuthConfig {
    /// Settings for `issuer` publishing its keys at `jwks_url`, everything else default.
    pub fn new(issuer: impl Into<String>, jwks_url: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            jwks_url: jwks_url.into(),
            user_claim: default_user_claim(),
            algorithms: default_algorithms(),
            leeway_secs: default_leeway(),
            jwks_cache_secs: default_jwks_ttl(),
            id_token_audience: None,
            require_email_verified: true,
            max_token_age_secs: None,
            required_typ: None,
            jwks_max_stale_secs: default_jwks_max_stale(),
            required_scopes: Vec::new(),
            tool_scopes: std::collections::BTreeMap::new(),
        }
    }
}

fn default_user_claim() -> String {
    "email".into()
}
fn default_algorithms() -> Vec<String> {
    vec!["RS256".into(), "ES256".into()]
}
fn default_leeway() -> u64 {
    30
}
fn default_jwks_ttl() -> u64 {
    600
}
fn default_jwks_max_stale() -> u64 {
    24 * 3600
}

/// Immuta tenant and agent API key.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImmutaConfig {
    /// e.g. `https://acme.hosted.immutacloud.com`.
    pub url: String,
    pub api_key: SecretRef,
    /// Lifetime of vended roles, minutes (also the PAT's MINS_TO_EXPIRY).
    #[serde(default = "default_ttl")]
    pub ttl_minutes: u32,
    /// How long to poll a "pending" vend before failing, seconds.
    #[serde(default = "default_pending_timeout")]
    pub pending_timeout_secs: u64,
    /// Drop a vend early with `DELETE /agent/obo/roles/{vend id}` when it cannot be used
    /// (its PAT could not be minted, or its session was evicted). Off by default: the public
    /// docs describe that DELETE as dropping *all* of the agent's vended roles, which would
    /// cut off every other user; turn it on only where DELETE of one vend id drops that vend
    /// alone. When off, unused roles expire with their TTL.
    #[serde(default)]
    pub drop_unused_vends: bool,
    /// How the API key authenticates: `auto` (default) tries the documented forms in
    /// order and remembers the first that Immuta accepts; see [`ImmutaAuth`].
    #[serde(default)]
    pub auth: ImmutaAuth,
    /// What `{id}` in `GET /agent/obo/roles/{id}` names while polling a pending vend.
    #[serde(default)]
    pub poll_id: ImmutaPollId,
    /// The agent's Immuta id, for `poll_id = "agent_id"` when the vend answer carries none.
    #[serde(default)]
    pub agent_id: Option<String>,
}

/// How the agent's API key is presented to Immuta.
///
/// Immuta's API authentication page documents two methods: the key itself as
/// `Authorization: <key>`, and a bearer token from `POST /bim/apikey/authenticate`
/// sent as `Authorization: Bearer <token>` until a 401 says it expired
/// (https://documentation.immuta.com/SaaS/developer-guides/api-intro/authentication).
/// The agent page's curl shows `Bearer <hex>` without saying which, so
/// `Bearer <key>` is kept as a third form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImmutaAuth {
    /// Try `raw_key`, then `exchange`, then `bearer_key` on the first call; keep the first that works.
    #[default]
    Auto,
    /// `Authorization: <key>`.
    RawKey,
    /// `POST /bim/apikey/authenticate`, then `Authorization: Bearer <token>` (re-exchanged on 401).
    Exchange,
    /// `Authorization: Bearer <key>`.
    BearerKey,
}

impl ImmutaAuth {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ImmutaAuth::Auto => "auto",
            ImmutaAuth::RawKey => "raw_key",
            ImmutaAuth::Exchange => "exchange",
            ImmutaAuth::BearerKey => "bearer_key",
        }
    }
}

/// What `{id}` names when a pending vend is polled with `GET /agent/obo/roles/{id}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImmutaPollId {
    /// The vend's own `id`.
    #[default]
    VendId,
    /// The agent's id (the endpoint table says "View the status of an agent").
    AgentId,
}

impl ImmutaPollId {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ImmutaPollId::VendId => "vend_id",
            ImmutaPollId::AgentId => "agent_id",
        }
    }
}

fn default_ttl() -> u32 {
    60
}
fn default_pending_timeout() -> u64 {
    30
}

/// Which PAT expiry clause to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PatExpiryClause {
    /// `MINS_TO_EXPIRY = <ttl>` (as the Immuta guide shows).
    #[default]
    MinsToExpiry,
    /// `DAYS_TO_EXPIRY = 1` (GA syntax; the token then outlives the role, which revokes it).
    DaysToExpiry,
}

/// Snowflake agent user and key pair.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnowflakeConfig {
    /// Agent (TYPE=SERVICE) user name.
    pub user: String,
    /// Account identifier: its first part, upper-cased, is the JWT's account (`iss`/`sub`);
    /// defaults to the first label of the vend's connectionKey, and a vend naming
    /// another account is refused. `check` uses `https://<account>.snowflakecomputing.com`,
    /// so give the locator with its region (`xy12345.us-east-1`) or `org-account`.
    pub account: Option<String>,
    /// PKCS#8 PEM private key of the agent.
    pub private_key: SecretRef,
    /// Passphrase when the key is encrypted.
    pub private_key_passphrase: Option<SecretRef>,
    /// Explicit override of the SQL API base URL, which is otherwise
    /// `https://<host of the vend's connectionKey>` (e.g. for a proxy).
    pub base_url: Option<String>,
    pub default_warehouse: Option<String>,
    pub default_database: Option<String>,
    pub default_schema: Option<String>,
    #[serde(default)]
    pub pat_expiry_clause: PatExpiryClause,
    /// Statement timeout sent to Snowflake, seconds.
    #[serde(default = "default_statement_timeout")]
    pub statement_timeout_secs: u64,
    /// Before a PAT's first user statement, ask Snowflake which role and user it
    /// runs as (`CURRENT_ROLE()`, `CURRENT_USER()`) and fail closed unless the
    /// role is the vended one. Default true.
    #[serde(default = "default_true")]
    pub verify_identity: bool,
}

fn default_statement_timeout() -> u64 {
    300
}

/// Databricks workspace, service principal and warehouse.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabricksConfig {
    /// Workspace URL (`DATABRICKS_HOST`), e.g. `https://dbc-123.cloud.databricks.com`.
    pub host: String,
    /// Service principal application id (`DATABRICKS_CLIENT_ID`).
    pub client_id: String,
    /// `DATABRICKS_CLIENT_SECRET`.
    pub client_secret: SecretRef,
    /// SQL warehouse id (`DATABRICKS_WAREHOUSE_ID`).
    pub warehouse_id: String,
    pub default_catalog: Option<String>,
    pub default_schema: Option<String>,
    #[serde(default = "default_statement_timeout")]
    pub statement_timeout_secs: u64,
    /// How long one submit waits for the answer before polling: "0s" or "5s".."50s".
    #[serde(default = "default_wait_timeout")]
    pub wait_timeout: String,
    /// Before a token's first user statement, ask Databricks who it runs as
    /// (`current_user()`, `is_account_group_member(<vended group>)`) and fail
    /// closed unless it is a member of the vended group. Default true.
    #[serde(default = "default_true")]
    pub verify_identity: bool,
}

fn default_wait_timeout() -> String {
    "10s".into()
}

/// Result and retry limits.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Rows returned when the tool call does not say (`max_rows`).
    #[serde(default = "default_rows")]
    pub default_max_rows: usize,
    /// Upper bound a tool call may ask for.
    #[serde(default = "default_rows_cap")]
    pub max_rows_cap: usize,
    /// Bytes of row data fetched per call at most.
    #[serde(default = "default_bytes")]
    pub max_result_bytes: usize,
    /// Longest SQL text accepted, bytes.
    #[serde(default = "default_sql_len")]
    pub max_sql_bytes: usize,
    /// Characters of the text rendering.
    #[serde(default = "default_text_chars")]
    pub max_text_chars: usize,
    /// Attempts per upstream request (429/5xx/transport errors).
    #[serde(default = "default_attempts")]
    pub retry_attempts: u32,
    /// Re-use credentials only if they live at least this much longer, seconds.
    #[serde(default = "default_margin")]
    pub credential_expiry_margin_secs: u64,
    /// Per upstream request timeout, seconds.
    #[serde(default = "default_request_timeout")]
    pub request_timeout_secs: u64,
    /// Rows Databricks keeps per statement so `fetch_more` can continue a truncated
    /// result (the submit's `row_limit`; at least `max_rows + 1`). 0: no continuation.
    #[serde(default = "default_continuation_rows")]
    pub max_continuation_rows: u64,
    /// A `next_cursor` is valid this long at most, seconds (never past the expiry of the
    /// credential its query ran under). 0 issues cursors that have already expired.
    #[serde(default = "default_cursor_ttl")]
    pub cursor_ttl_secs: u64,
    /// Calls of one end user that may reach a platform at once (per process); more wait
    /// (see `limit_wait_secs`). Keep it below `max_inflight_statements` so one user's
    /// runaway agent cannot take every slot.
    #[serde(default = "default_calls_per_user")]
    pub max_calls_per_user: usize,
    /// Calls of all users that may reach a platform at once (per process).
    #[serde(default = "default_inflight_statements")]
    pub max_inflight_statements: usize,
    /// How long a call waits for a free slot before it fails with a tool error naming
    /// the limit, seconds.
    #[serde(default = "default_limit_wait")]
    pub limit_wait_secs: u64,
}

fn default_rows() -> usize {
    1000
}
fn default_rows_cap() -> usize {
    100_000
}
fn default_bytes() -> usize {
    16 * 1024 * 1024
}
fn default_sql_len() -> usize {
    256 * 1024
}
fn default_text_chars() -> usize {
    8000
}
fn default_attempts() -> u32 {
    4
}
fn default_margin() -> u64 {
    120
}
fn default_request_timeout() -> u64 {
    60
}
fn default_continuation_rows() -> u64 {
    10_000
}
fn default_cursor_ttl() -> u64 {
    3600
}
fn default_calls_per_user() -> usize {
    8
}
fn default_inflight_statements() -> usize {
    128
}
fn default_limit_wait() -> u64 {
    10
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            default_max_rows: default_rows(),
            max_rows_cap: default_rows_cap(),
            max_result_bytes: default_bytes(),
            max_sql_bytes: default_sql_len(),
            max_text_chars: default_text_chars(),
            retry_attempts: default_attempts(),
            credential_expiry_margin_secs: default_margin(),
            request_timeout_secs: default_request_timeout(),
            max_continuation_rows: default_continuation_rows(),
            cursor_ttl_secs: default_cursor_ttl(),
            max_calls_per_user: default_calls_per_user(),
            max_inflight_statements: default_inflight_statements(),
            limit_wait_secs: default_limit_wait(),
        }
    }
}

impl Limits {
    pub fn credential_margin(&self) -> Duration {
        Duration::from_secs(self.credential_expiry_margin_secs)
    }
}

/// SQL guard switch.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuardConfig {
    /// Only read statements (SELECT/WITH/SHOW/DESCRIBE/EXPLAIN) may run. Default true.
    #[serde(default = "default_true")]
    pub read_only: bool,
    /// Which databases/catalogs and schemas the tools may touch (default: all).
    #[serde(default)]
    pub allow: AllowConfig,
}

impl Default for GuardConfig {
    fn default() -> Self {
        Self {
            read_only: true,
            allow: AllowConfig::default(),
        }
    }
}

/// `[guard.allow]`: per platform, a list of `DATABASE`, `DATABASE.*` or
/// `DATABASE.SCHEMA` (Databricks: catalogs). Unset: no restriction; an empty
/// list allows nothing.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AllowConfig {
    #[serde(default)]
    pub snowflake: Option<Vec<String>>,
    #[serde(default)]
    pub databricks: Option<Vec<String>>,
}

impl Config {
    /// Load a TOML file, then apply environment overrides.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        let mut cfg = Self::parse(&text).map_err(|message| ConfigError::Parse {
            path: path.into(),
            message,
        })?;
        cfg.apply_env(|k| std::env::var(k).ok())?;
        Ok(cfg)
    }

    /// Parse TOML text (no environment).
    ///
    /// The error names the line and column and toml's message, never the source line
    /// (toml's `Display` quotes it, which would put a neighbouring secret into logs).
    pub fn parse(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| parse_error_message(text, &e))
    }

    /// Apply overrides from an environment lookup (`std::env::var` in production).
    pub fn apply_env(&mut self, env: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        if let Some(user) = env("IMMUTA_MCP_USER") {
            self.identity.stdio_user = Some(user);
        }
        if let Some(url) = env("IMMUTA_URL") {
            let api_key = SecretRef::Env("IMMUTA_API_KEY".into());
            match &mut self.immuta {
                Some(i) => i.url = url,
                None => {
                    self.immuta = Some(ImmutaConfig {
                        url,
                        api_key,
                        ttl_minutes: default_ttl(),
                        pending_timeout_secs: default_pending_timeout(),
                        drop_unused_vends: false,
                        auth: ImmutaAuth::default(),
                        poll_id: ImmutaPollId::default(),
                        agent_id: None,
                    })
                }
            }
        }
        if env("IMMUTA_API_KEY").is_some()
            && let Some(i) = &mut self.immuta
        {
            i.api_key = SecretRef::Env("IMMUTA_API_KEY".into());
        }
        if let Some(db) = &mut self.databricks {
            if let Some(h) = env("DATABRICKS_HOST") {
                db.host = with_https_scheme(h);
            }
            if let Some(c) = env("DATABRICKS_CLIENT_ID") {
                db.client_id = c;
            }
            if env("DATABRICKS_CLIENT_SECRET").is_some() {
                db.client_secret = SecretRef::Env("DATABRICKS_CLIENT_SECRET".into());
            }
            if let Some(w) = env("DATABRICKS_WAREHOUSE_ID") {
                db.warehouse_id = w;
            }
        } else if let (Some(host), Some(client_id), Some(_), Some(warehouse_id)) = (
            env("DATABRICKS_HOST"),
            env("DATABRICKS_CLIENT_ID"),
            env("DATABRICKS_CLIENT_SECRET"),
            env("DATABRICKS_WAREHOUSE_ID"),
        ) {
            self.databricks = Some(DatabricksConfig {
                host: with_https_scheme(host),
                client_id,
                client_secret: SecretRef::Env("DATABRICKS_CLIENT_SECRET".into()),
                warehouse_id,
                default_catalog: None,
                default_schema: None,
                statement_timeout_secs: default_statement_timeout(),
                wait_timeout: default_wait_timeout(),
                verify_identity: true,
            });
        }
        if let Some(sf) = &mut self.snowflake {
            if let Some(u) = env("SNOWFLAKE_USER") {
                sf.user = u;
            }
            if let Some(a) = env("SNOWFLAKE_ACCOUNT") {
                sf.account = Some(a);
            }
            if let Some(p) = env("SNOWFLAKE_PRIVATE_KEY_PATH") {
                sf.private_key = SecretRef::File(p.into());
            }
        }
        self.validate()
    }

    /// Check values that parse but cannot work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: &str| ConfigError::Invalid {
            key: key.into(),
            message: message.into(),
        };
        if self.health.probe_interval_secs == 0 || self.health.probe_timeout_secs == 0 {
            return Err(invalid(
                "health.probe_interval_secs / health.probe_timeout_secs",
                "must be at least 1",
            ));
        }
        self.cache.validate()?;
        crate::agents::validate(self)?;
        if let Some(i) = &self.immuta {
            if !(1..=1440).contains(&i.ttl_minutes) {
                return Err(invalid("immuta.ttl_minutes", "must be between 1 and 1440"));
            }
            secure_url("immuta.url", &i.url, "")?;
        }
        if let Some(d) = &self.databricks {
            secure_url(
                "databricks.host",
                &d.host,
                " (use https://<workspace-host>)",
            )?;
            if d.warehouse_id.trim().is_empty() {
                return Err(invalid("databricks.warehouse_id", "must not be empty"));
            }
        }
        if let Some(s) = &self.snowflake
            && let Some(b) = &s.base_url
        {
            secure_url("snowflake.base_url", b, "")?;
        }
        for entry in &self.network.resolve {
            crate::http_client::parse_resolve(entry)
                .map_err(|e| invalid("network.resolve", &e.to_string()))?;
        }
        if self.identity.source
            == crate::identity::databricks_apps::HttpIdentitySource::DatabricksApps
        {
            let url = self
                .identity
                .apps_workspace_url(self.databricks.as_ref())
                .ok_or_else(|| {
                    invalid(
                        "identity.databricks_apps.workspace_url",
                        "identity.source = \"databricks_apps\" needs the workspace URL (this key or databricks.host)",
                    )
                })?;
            secure_url("identity.databricks_apps.workspace_url", url, "")?;
        }
        if let Some(o) = &self.identity.oauth {
            secure_url("identity.oauth.jwks_url", &o.jwks_url, "")?;
            crate::identity::scopes::validate(&o.required_scopes, &o.tool_scopes)
                .map_err(|(key, message)| invalid(&key, &message))?;
        }
        self.server.validate()?;
        crate::allowlist::AllowList::from_config(self).map_err(|message| {
            let (key, message) = message
                .split_once(": ")
                .unwrap_or(("guard.allow", &message));
            invalid(key, message)
        })?;
        if self.limits.default_max_rows == 0
            || self.limits.default_max_rows > self.limits.max_rows_cap
        {
            return Err(invalid(
                "limits.default_max_rows",
                "must be between 1 and limits.max_rows_cap",
            ));
        }
        if self.limits.max_calls_per_user == 0 || self.limits.max_inflight_statements == 0 {
            return Err(invalid(
                "limits.max_calls_per_user / limits.max_inflight_statements",
                "must be at least 1",
            ));
        }
        if self.limits.max_calls_per_user > self.limits.max_inflight_statements {
            return Err(invalid(
                "limits.max_calls_per_user",
                "must not exceed limits.max_inflight_statements (one user could take every slot)",
            ));
        }
        if self.limits.retry_attempts == 0 {
            return Err(invalid("limits.retry_attempts", "must be at least 1"));
        }
        if (self.snowflake.is_some() || self.databricks.is_some()) && self.immuta.is_none() {
            return Err(invalid(
                "immuta",
                "a platform is configured but Immuta is not: every query needs a vended role",
            ));
        }
        Ok(())
    }
}

/// `DATABRICKS_HOST` may be a bare host name (Databricks Apps sets it so); like
/// Databricks unified auth, assume `https://` then.
fn with_https_scheme(host: String) -> String {
    if host.contains("://") {
        host
    } else {
        format!("https://{}", host.trim())
    }
}

/// Whether `url` names a loopback host (127.0.0.0/8, ::1, `localhost`).
fn is_loopback_url(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Parse `value` as the URL of setting `key`, requiring `https` unless it is on loopback
/// (the sandbox): plain http would put credentials, or for the JWKS the keys that decide
/// who a caller is, on the wire in clear.
fn secure_url(key: &str, value: &str, hint: &str) -> Result<url::Url, ConfigError> {
    let invalid = |message: String| ConfigError::Invalid {
        key: key.into(),
        message,
    };
    let url = url::Url::parse(value).map_err(|e| invalid(format!("{e}{hint}")))?;
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback_url(&url) => Ok(url),
        "http" => Err(invalid(format!(
            "must use https (plain http is only accepted for loopback hosts: 127.0.0.0/8, ::1, localhost){hint}"
        ))),
        other => Err(invalid(format!(
            "unsupported scheme `{other}`: use https{hint}"
        ))),
    }
}

#[cfg(test)]
mod tests;
