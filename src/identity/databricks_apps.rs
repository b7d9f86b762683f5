//! `identity.source = "databricks_apps"`: the end user as the Databricks Apps
//! proxy names it, confirmed by the workspace.
//!
//! A Databricks App sits behind the workspace's reverse proxy, which signs the
//! user in and forwards `X-Forwarded-Email`, `X-Forwarded-User` and
//! `X-Forwarded-Preferred-Username` ("Access HTTP headers passed to Databricks
//! apps", docs.databricks.com/dev-tools/databricks-apps/http-headers). With
//! *user authorization* it also forwards `X-Forwarded-Access-Token`, the user's
//! token down-scoped to the app's scopes ("Authentication for AI agents").
//!
//! These headers are read **only** when this source is configured (with the
//! default `bearer` source they are ignored). The user is taken from the header
//! `identity.databricks_apps.user_header` names (`email` by default) and, when a
//! forwarded token is present, confirmed by calling the workspace's SCIM `Me`
//! endpoint with it (`GET /api/2.0/preview/scim/v2/Me`, the path of the
//! Databricks SDKs' `CurrentUserAPI.me()`; it needs the `iam.current-user.read`
//! scope): its `userName` (or one of its `emails`) must equal the forwarded user,
//! ignoring ASCII case, else `401`. Answers are cached per token (keyed by a
//! SHA-256 of the token, never the token) for the token's remaining lifetime when
//! it is a JWT with `exp`, at most `cache_max_secs`, and for at most
//! `cache_max_entries` tokens.
//!
//! Without a forwarded token the request is refused (`require_forwarded_token =
//! true`, the default: a forged `X-Forwarded-Email` alone must not name a user).
//! Setting it to `false` trusts the proxy's headers alone; do that only where
//! nothing but the Apps proxy can reach the server.
//!
//! The forwarded token is removed from the request before it goes on, and is
//! never logged.

use super::{AuthError, IdentitySource, VerifiedUser};
use axum::http::HeaderMap;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The forwarded-token header (Databricks Apps user authorization).
pub const ACCESS_TOKEN_HEADER: &str = "x-forwarded-access-token";
/// Every identity header the Apps proxy sets.
pub const FORWARDED_USER_HEADERS: [&str; 3] = [
    "x-forwarded-email",
    "x-forwarded-user",
    "x-forwarded-preferred-username",
];
/// The workspace's "current user" endpoint (SCIM 2.0 `Me`).
pub const SCIM_ME_PATH: &str = "/api/2.0/preview/scim/v2/Me";

/// Where an HTTP request's end user comes from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HttpIdentitySource {
    /// An OAuth bearer token verified against `identity.oauth` (default).
    #[default]
    Bearer,
    /// The Databricks Apps proxy's forwarded headers, confirmed by SCIM `Me`.
    DatabricksApps,
}

/// Which forwarded header names the Immuta user.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ForwardedUserHeader {
    /// `X-Forwarded-Email` (default).
    #[default]
    Email,
    /// `X-Forwarded-Preferred-Username`.
    PreferredUsername,
}

impl ForwardedUserHeader {
    pub fn header(self) -> &'static str {
        match self {
            ForwardedUserHeader::Email => "x-forwarded-email",
            ForwardedUserHeader::PreferredUsername => "x-forwarded-preferred-username",
        }
    }
}

/// `[identity.databricks_apps]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabricksAppsConfig {
    /// Refuse requests without `X-Forwarded-Access-Token` (default true: fail closed).
    #[serde(default = "default_true")]
    pub require_forwarded_token: bool,
    /// Which forwarded header names the Immuta user (default `email`).
    #[serde(default)]
    pub user_header: ForwardedUserHeader,
    /// Workspace URL whose SCIM `Me` confirms the user; defaults to `databricks.host`
    /// (`DATABRICKS_HOST`, which Databricks Apps sets).
    #[serde(default)]
    pub workspace_url: Option<String>,
    /// Longest a confirmed token is cached, seconds (default 300).
    #[serde(default = "default_cache_secs")]
    pub cache_max_secs: u64,
    /// Tokens cached at most (default 10,000).
    #[serde(default = "default_cache_entries")]
    pub cache_max_entries: usize,
}

fn default_true() -> bool {
    true
}
fn default_cache_secs() -> u64 {
    300
}
fn default_cache_entries() -> usize {
    10_000
}

impl Default for DatabricksAppsConfig {
    fn default() -> Self {
        Self {
            require_forwarded_token: true,
            user_header: ForwardedUserHeader::default(),
            workspace_url: None,
            cache_max_secs: default_cache_secs(),
            cache_max_entries: default_cache_entries(),
        }
    }
}

/// Who the workspace says a token belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ScimIdentity {
    user_name: String,
    emails: Vec<String>,
}

impl ScimIdentity {
    fn names(&self, user: &str) -> bool {
        self.user_name.eq_ignore_ascii_case(user)
            || self.emails.iter().any(|e| e.eq_ignore_ascii_case(user))
    }
}

/// The part of the SCIM `User` resource this module reads.
#[derive(Debug, Deserialize)]
struct ScimUser {
    #[serde(rename = "userName")]
    user_name: Option<String>,
    #[serde(default)]
    emails: Vec<ScimEmail>,
}

#[derive(Debug, Deserialize)]
struct ScimEmail {
    value: Option<String>,
}

struct Cached {
    identity: ScimIdentity,
    until: Instant,
}

/// Resolves and confirms the forwarded user (see the module doc).
pub struct AppsIdentity {
    cfg: DatabricksAppsConfig,
    me_url: String,
    http: reqwest::Client,
    cache: Mutex<HashMap<[u8; 32], Cached>>,
}

impl std::fmt::Debug for AppsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppsIdentity")
            .field("me_url", &self.me_url)
            .field("require_forwarded_token", &self.cfg.require_forwarded_token)
            .finish_non_exhaustive()
    }
}

impl AppsIdentity {
    /// Confirm users against the workspace at `workspace_url`.
    pub fn new(cfg: DatabricksAppsConfig, workspace_url: &str, http: reqwest::Client) -> Self {
        Self {
            me_url: format!("{}{SCIM_ME_PATH}", workspace_url.trim_end_matches('/')),
            cfg,
            http,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Tokens whose answer is cached now (tests check the bound).
    pub fn cached_tokens(&self) -> usize {
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// The end user of a request, from the forwarded headers.
    pub async fn resolve(&self, headers: &HeaderMap) -> Result<VerifiedUser, AuthError> {
        let header = self.cfg.user_header.header();
        let user = header_text(headers, header)?.ok_or(AuthError::ForwardedUserMissing(header))?;
        super::jwt::check_user_id(&user).map_err(|reason| AuthError::UnacceptableUserClaim {
            claim: header.to_string(),
            reason,
        })?;
        let token = header_text(headers, ACCESS_TOKEN_HEADER)?.filter(|t| !t.trim().is_empty());
        let Some(token) = token else {
            if self.cfg.require_forwarded_token {
                return Err(AuthError::ForwardedTokenMissing);
            }
            return Ok(forwarded_user(user, "databricks-apps-proxy"));
        };
        let identity = self.identity_of(token.trim()).await?;
        if !identity.names(&user) {
            return Err(AuthError::ForwardedUserMismatch {
                header: header.to_string(),
            });
        }
        Ok(forwarded_user(user, &self.me_url))
    }

    /// The SCIM identity behind `token`, from the cache or the workspace.
    async fn identity_of(&self, token: &str) -> Result<ScimIdentity, AuthError> {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let now = Instant::now();
        if let Some(hit) = self.lock().get(&key).filter(|c| c.until > now) {
            return Ok(hit.identity.clone());
        }
        let response = self
            .http
            .get(&self.me_url)
            .bearer_auth(token)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| {
                AuthError::WorkspaceUnavailable(format!(
                    "{}: {}",
                    self.me_url,
                    crate::retry::describe_transport_error(&e)
                ))
            })?;
        let status = response.status();
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            return Err(AuthError::ForwardedTokenRefused(status.as_u16()));
        }
        if !status.is_success() {
            return Err(AuthError::WorkspaceUnavailable(format!(
                "{} answered HTTP {}",
                self.me_url,
                status.as_u16()
            )));
        }
        let body: ScimUser = response.json().await.map_err(|e| {
            AuthError::WorkspaceUnavailable(format!(
                "{} did not answer a SCIM user: {e}",
                self.me_url
            ))
        })?;
        let identity = ScimIdentity {
            user_name: body.user_name.unwrap_or_default(),
            emails: body.emails.into_iter().filter_map(|e| e.value).collect(),
        };
        let lifetime = token_lifetime(token)
            .unwrap_or(Duration::MAX)
            .min(Duration::from_secs(self.cfg.cache_max_secs));
        if !lifetime.is_zero() && self.cfg.cache_max_entries > 0 {
            let mut cache = self.lock();
            if cache.len() >= self.cfg.cache_max_entries {
                cache.retain(|_, c| c.until > now);
            }
            while cache.len() >= self.cfg.cache_max_entries {
                let Some(oldest) = cache.iter().min_by_key(|(_, c)| c.until).map(|(k, _)| *k)
                else {
                    break;
                };
                cache.remove(&oldest);
            }
            cache.insert(
                key,
                Cached {
                    identity: identity.clone(),
                    until: now + lifetime,
                },
            );
        }
        Ok(identity)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Cached>> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn forwarded_user(user: String, issuer: &str) -> VerifiedUser {
    VerifiedUser {
        subject: user.clone(),
        user_id: user,
        issuer: issuer.to_string(),
        source: IdentitySource::DatabricksApps,
        scopes: Vec::new(),
    }
}

/// A header's text; a header that is not visible ASCII is malformed.
fn header_text(headers: &HeaderMap, name: &'static str) -> Result<Option<String>, AuthError> {
    match headers.get(name) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .map(|s| Some(s.to_string()))
            .map_err(|_| AuthError::Malformed(format!("the {name} header is not ASCII"))),
    }
}

/// How long a JWT-shaped token still lives (its unverified `exp`; the workspace
/// decides whether it is valid, this only bounds the cache). `None`: not a JWT or no `exp`.
fn token_lifetime(token: &str) -> Option<Duration> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let exp = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()?
        .get("exp")?
        .as_u64()?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs();
    Some(Duration::from_secs(exp.saturating_sub(now)))
}

/// Remove the forwarded token so nothing downstream can log or forward it.
pub fn strip_forwarded_token(headers: &mut HeaderMap) {
    headers.remove(ACCESS_TOKEN_HEADER);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_lifetime_reads_a_jwt_exp_and_nothing_else() {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let b64 = |v: serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        let jwt = format!(
            "{}.{}.sig",
            b64(serde_json::json!({"alg": "RS256"})),
            b64(serde_json::json!({"exp": now + 120}))
        );
        let life = token_lifetime(&jwt).unwrap();
        assert!(life <= Duration::from_secs(120) && life >= Duration::from_secs(110));
        assert_eq!(token_lifetime("dapi0123456789abcdef"), None);
        let expired = format!("x.{}.y", b64(serde_json::json!({"exp": now - 5})));
        assert_eq!(token_lifetime(&expired), Some(Duration::ZERO));
    }

    #[test]
    fn config_defaults_fail_closed() {
        let cfg: DatabricksAppsConfig = toml::from_str("").unwrap();
        assert!(cfg.require_forwarded_token);
        assert_eq!(cfg.user_header, ForwardedUserHeader::Email);
        assert!(toml::from_str::<DatabricksAppsConfig>("bogus = 1").is_err());
    }
}
