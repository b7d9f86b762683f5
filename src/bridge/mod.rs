//! `immuta-mcp connect`: a stdio MCP server on the desktop that forwards
//! every message to a shared immuta-mcp HTTP server, signed in as the
//! desktop's user with OAuth — no platform secret on the laptop.
//!
//! - [`discovery`] finds the authorization server (RFC 9728 → RFC 8414);
//! - [`login`] runs the device or browser (PKCE) login, refresh and revocation;
//! - [`store`] caches tokens per server in the OS keyring ([`keyring_store`])
//!   or a private file;
//! - [`Session`] (here) decides when to reuse, refresh or log in again;
//! - [`forward`] moves JSON-RPC between stdio and streamable HTTP.

pub mod discovery;
pub mod forward;
pub mod keyring_store;
pub mod login;
pub mod store;

pub use discovery::LoginMethod;

use crate::config::{Limits, NetworkConfig};
use crate::secret::Secret;
use discovery::Discovered;
use login::LoginRequest;
use std::path::PathBuf;
use std::time::Duration;
use store::{StoredTokens, TokenStore};

/// Why the bridge cannot go on. The text never contains a token.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    #[error("discovery: {0}")]
    Discovery(String),
    #[error("sign-in: {0}")]
    Login(String),
    #[error("token store: {0}")]
    Store(String),
    #[error("HTTP: {0}")]
    Http(String),
    #[error(transparent)]
    Client(#[from] crate::http_client::HttpClientError),
    #[error("stdio: {0}")]
    Io(#[from] std::io::Error),
}

/// How `connect` runs.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// The shared server's MCP endpoint (also the token audience).
    pub url: String,
    pub login: LoginMethod,
    pub client_id: String,
    pub scope: Option<String>,
    pub token_store: TokenStore,
    /// Extra trusted CA certificates (PEM) for the server and the authorization server.
    pub ca_file: Option<PathBuf>,
    /// How long a request (the first `initialize`) waits for the sign-in.
    pub login_timeout: Duration,
    pub open_browser: bool,
}

/// Tokens for one server: reuse while fresh, refresh before expiry, log in when refused.
pub struct Session {
    opts: ConnectOptions,
    /// For the authorization server (ordinary timeouts, no redirects).
    oauth_http: reqwest::Client,
    /// For the MCP server (no overall timeout: SSE streams last as long as a tool call).
    mcp_http: reqwest::Client,
    discovered: tokio::sync::OnceCell<Discovered>,
    tokens: tokio::sync::Mutex<Option<StoredTokens>>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("url", &self.opts.url)
            .finish_non_exhaustive()
    }
}

/// An access token counts as expired this long before `exp`: a tenth of its
/// lifetime, at most a minute (so it does not expire in flight).
fn is_fresh(tokens: &StoredTokens, now: u64) -> bool {
    let skew = (tokens.expires_at.saturating_sub(tokens.issued_at) / 10).min(60);
    now + skew < tokens.expires_at
}

impl Session {
    /// Build the HTTP clients and load cached tokens.
    pub async fn new(opts: ConnectOptions) -> Result<Self, BridgeError> {
        discovery::check_secure_url("the MCP server URL", &opts.url)?;
        let network = NetworkConfig {
            resolve: Vec::new(),
            extra_ca_file: opts.ca_file.clone(),
        };
        let oauth_http = crate::http_client::build_with(&Limits::default(), &network)?;
        let streaming = Limits {
            request_timeout_secs: 365 * 24 * 3600,
            ..Limits::default()
        };
        let mcp_http = crate::http_client::build_with(&streaming, &network)?;
        let cached = opts.token_store.load(&opts.url).await?;
        Ok(Self {
            opts,
            oauth_http,
            mcp_http,
            discovered: tokio::sync::OnceCell::new(),
            tokens: tokio::sync::Mutex::new(cached),
        })
    }

    pub fn options(&self) -> &ConnectOptions {
        &self.opts
    }

    pub(crate) fn mcp_http(&self) -> &reqwest::Client {
        &self.mcp_http
    }

    async fn discovered(&self) -> Result<&Discovered, BridgeError> {
        self.discovered
            .get_or_try_init(|| discovery::discover(&self.oauth_http, &self.opts.url))
            .await
    }

    fn login_request(&self) -> LoginRequest {
        LoginRequest {
            resource: self.opts.url.clone(),
            client_id: self.opts.client_id.clone(),
            scope: self.opts.scope.clone(),
            open_browser: self.opts.open_browser,
        }
    }

    /// A usable access token: the cached one while fresh, else refreshed, else a new login.
    pub async fn access_token(&self) -> Result<Secret, BridgeError> {
        let discovered = self.discovered().await?;
        let mut guard = self.tokens.lock().await;
        if let Some(t) = guard.as_ref()
            && (t.issuer != discovered.metadata.issuer || t.client_id != self.opts.client_id)
        {
            // Cached for another authorization server or client: not ours to use.
            *guard = None;
        }
        if let Some(t) = guard.as_ref()
            && is_fresh(t, login::now_secs())
        {
            return Ok(t.access_token.clone());
        }
        self.renew(discovered, &mut guard).await
    }

    /// The server answered 401 to `rejected`: one refresh, then a new login.
    pub async fn after_unauthorized(&self, rejected: &Secret) -> Result<Secret, BridgeError> {
        let discovered = self.discovered().await?;
        let mut guard = self.tokens.lock().await;
        if let Some(t) = guard.as_ref()
            && &t.access_token != rejected
            && is_fresh(t, login::now_secs())
        {
            // Another request already renewed it.
            return Ok(t.access_token.clone());
        }
        self.renew(discovered, &mut guard).await
    }

    async fn renew(
        &self,
        discovered: &Discovered,
        slot: &mut Option<StoredTokens>,
    ) -> Result<Secret, BridgeError> {
        let req = self.login_request();
        let refresh_token = slot.as_ref().and_then(|t| t.refresh_token.clone());
        // Never keep using a token we decided to replace.
        *slot = None;
        let mut renewed = None;
        if let Some(rt) = refresh_token {
            renewed = login::refresh(&self.oauth_http, &discovered.metadata, &req, &rt).await?;
            if renewed.is_some() {
                tracing::info!(server = %self.opts.url, "access token refreshed");
            }
        }
        let tokens = match renewed {
            Some(t) => t,
            None => {
                // The stale tokens are gone from the store before the person is asked again.
                self.opts.token_store.forget(&self.opts.url).await?;
                let method = discovered.metadata.choose(self.opts.login)?;
                match method {
                    LoginMethod::Device => {
                        login::device_login(&self.oauth_http, &discovered.metadata, &req).await?
                    }
                    LoginMethod::Browser => {
                        login::browser_login(&self.oauth_http, &discovered.metadata, &req).await?
                    }
                }
            }
        };
        self.opts.token_store.save(&tokens).await?;
        let access = tokens.access_token.clone();
        *slot = Some(tokens);
        Ok(access)
    }

    /// `connect --logout`: revoke the refresh token (if the AS offers revocation) and forget.
    pub async fn logout(&self) -> Result<bool, BridgeError> {
        let cached = self.tokens.lock().await.take();
        if let Some(rt) = cached.as_ref().and_then(|t| t.refresh_token.as_ref()) {
            match self.discovered().await {
                Ok(d) => {
                    if let Err(e) =
                        login::revoke(&self.oauth_http, &d.metadata, &self.opts.client_id, rt).await
                    {
                        tracing::warn!(error = %e, "revocation failed; forgetting the tokens anyway");
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot reach the authorization server; forgetting the tokens anyway")
                }
            }
        }
        self.opts
            .token_store
            .forget_everywhere(&self.opts.url)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_renewed_a_tenth_of_their_lifetime_early_at_most_a_minute() {
        let t = |issued_at, expires_at| StoredTokens {
            resource: "r".into(),
            issuer: "i".into(),
            client_id: "c".into(),
            access_token: Secret::new("a"),
            refresh_token: None,
            issued_at,
            expires_at,
        };
        assert!(is_fresh(&t(1000, 1100), 1089));
        assert!(!is_fresh(&t(1000, 1100), 1090));
        assert!(is_fresh(&t(0, 3600), 3539));
        assert!(!is_fresh(&t(0, 3600), 3540));
        assert!(!is_fresh(&t(0, 2), 2));
    }
}
