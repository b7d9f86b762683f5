//! Typed configuration: one TOML file plus environment overrides.
//!
//! Secrets are given by reference (`{ env = "NAME" }`, `{ file = "path" }`,
//! or, for local experiments only, `{ value = "..." }`) and resolved into
//! [`Secret`]s, which never print. Environment overrides follow each
//! vendor's conventions where they exist (`DATABRICKS_HOST`,
//! `DATABRICKS_CLIENT_ID`, `DATABRICKS_CLIENT_SECRET`) and use the
//! `IMMUTA_MCP_` prefix otherwise.

use crate::secret::Secret;
use serde::{Deserialize, Serialize};
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

/// Where a secret comes from.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretRef {
    /// Read from an environment variable.
    Env(String),
    /// Read from a file (trailing whitespace trimmed).
    File(PathBuf),
    /// Inline value (sandbox and tests only).
    Value(String),
}

impl std::fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretRef::Env(v) => write!(f, "env:{v}"),
            SecretRef::File(p) => write!(f, "file:{}", p.display()),
            SecretRef::Value(_) => f.write_str("value:<redacted>"),
        }
    }
}

impl SecretRef {
    /// Resolve the reference into a secret; `what` names it in errors.
    pub fn resolve(&self, what: &str) -> Result<Secret, ConfigError> {
        match self {
            SecretRef::Env(var) => {
                std::env::var(var)
                    .map(Secret::new)
                    .map_err(|_| ConfigError::MissingEnv {
                        what: what.into(),
                        var: var.clone(),
                    })
            }
            SecretRef::File(path) => std::fs::read_to_string(path)
                .map(|s| Secret::new(s.trim_end().to_string()))
                .map_err(|source| ConfigError::SecretFile {
                    what: what.into(),
                    path: path.clone(),
                    source,
                }),
            SecretRef::Value(v) => Ok(Secret::new(v.clone())),
        }
    }
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
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            resource_url: None,
            allowed_origins: Vec::new(),
            stateful_sessions: true,
        }
    }
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
}

impl Default for GuardConfig {
    fn default() -> Self {
        Self { read_only: true }
    }
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
    pub fn parse(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string())
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
                db.host = h;
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
                host,
                client_id,
                client_secret: SecretRef::Env("DATABRICKS_CLIENT_SECRET".into()),
                warehouse_id,
                default_catalog: None,
                default_schema: None,
                statement_timeout_secs: default_statement_timeout(),
                wait_timeout: default_wait_timeout(),
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
        if let Some(i) = &self.immuta {
            if !(1..=1440).contains(&i.ttl_minutes) {
                return Err(invalid("immuta.ttl_minutes", "must be between 1 and 1440"));
            }
            url::Url::parse(&i.url).map_err(|e| invalid("immuta.url", &e.to_string()))?;
        }
        if let Some(d) = &self.databricks {
            url::Url::parse(&d.host).map_err(|e| {
                invalid(
                    "databricks.host",
                    &format!("{e} (use https://<workspace-host>)"),
                )
            })?;
            if d.warehouse_id.trim().is_empty() {
                return Err(invalid("databricks.warehouse_id", "must not be empty"));
            }
        }
        if let Some(s) = &self.snowflake
            && let Some(b) = &s.base_url
        {
            url::Url::parse(b).map_err(|e| invalid("snowflake.base_url", &e.to_string()))?;
        }
        for entry in &self.network.resolve {
            crate::http_client::parse_resolve(entry)
                .map_err(|e| invalid("network.resolve", &e.to_string()))?;
        }
        if self.limits.default_max_rows == 0
            || self.limits.default_max_rows > self.limits.max_rows_cap
        {
            return Err(invalid(
                "limits.default_max_rows",
                "must be between 1 and limits.max_rows_cap",
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

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
[identity]
stdio_user = "alice@example.com"

[immuta]
url = "https://acme.hosted.immutacloud.com"
api_key = { env = "MY_IMMUTA_KEY" }

[databricks]
host = "https://dbc-1.cloud.databricks.com"
client_id = "sp-app-id"
client_secret = { file = "/run/secrets/db" }
warehouse_id = "abc123"
"#;

    #[test]
    fn parses_sample_with_defaults() {
        let cfg = Config::parse(SAMPLE).unwrap();
        assert_eq!(cfg.immuta.as_ref().unwrap().ttl_minutes, 60);
        assert_eq!(cfg.limits.default_max_rows, 1000);
        assert!(cfg.guard.read_only);
        cfg.validate().unwrap();
    }

    #[test]
    fn env_overrides_follow_databricks_names() {
        let mut cfg = Config::parse(SAMPLE).unwrap();
        cfg.apply_env(|k| match k {
            "DATABRICKS_HOST" => Some("https://other.example".into()),
            "DATABRICKS_CLIENT_SECRET" => Some("x".into()),
            _ => None,
        })
        .unwrap();
        let db = cfg.databricks.unwrap();
        assert_eq!(db.host, "https://other.example");
        assert_eq!(
            db.client_secret,
            SecretRef::Env("DATABRICKS_CLIENT_SECRET".into())
        );
    }

    #[test]
    fn unknown_keys_and_missing_immuta_are_rejected() {
        assert!(
            Config::parse("[server]\nbogus = 1")
                .unwrap_err()
                .contains("bogus")
        );
        let mut cfg = Config::parse(SAMPLE).unwrap();
        cfg.immuta = None;
        assert!(
            cfg.validate()
                .unwrap_err()
                .to_string()
                .contains("vended role")
        );
    }

    #[test]
    fn secret_ref_debug_hides_inline_values() {
        let r = SecretRef::Value("s3cr3t".into());
        assert!(!format!("{r:?}").contains("s3cr3t"));
        assert_eq!(r.resolve("x").unwrap().expose(), "s3cr3t");
        let missing =
            SecretRef::Env("IMMUTA_MCP_SURELY_UNSET_VAR".into()).resolve("immuta.api_key");
        assert!(
            missing
                .unwrap_err()
                .to_string()
                .contains("IMMUTA_MCP_SURELY_UNSET_VAR")
        );
    }
}
