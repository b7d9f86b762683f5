//! Client of Immuta's agent OBO API: vend, poll, and drop ephemeral roles.
//!
//! The agent's API key is sent as `Authorization: Bearer <key>` and is never
//! logged. A "pending" vend is polled with `GET /agent/obo/roles/{id}` until
//! it is ready, bounded by `pending_timeout_secs`. Errors are typed so the
//! tool can tell the user what went wrong without exposing the key.

use crate::config::ImmutaConfig;
use crate::immuta::wire::{
    ErrorBody, VEND_PATH, VendRequest, VendResponse, VendStatus, VendedRoles,
};
use crate::query::{CallContext, QueryError};
use crate::retry::{RetryError, RetryPolicy, UpstreamResponse};
use crate::secret::Secret;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// Why a vend or a role operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ImmutaError {
    #[error("Immuta refused the agent's API key (HTTP {status}); check immuta.api_key")]
    Unauthorized { status: u16 },
    #[error("Immuta does not know the user {user}: {message}")]
    UnknownUser { user: String, message: String },
    #[error("the role vended for {user} was still pending after {waited_secs} s")]
    StillPending { user: String, waited_secs: u64 },
    #[error("Immuta reported the vend as {status:?} for {user}")]
    NotReady { user: String, status: VendStatus },
    #[error("Immuta answered HTTP {status}: {message}")]
    Rejected { status: u16, message: String },
    #[error("Immuta is unavailable: {0}")]
    Unavailable(String),
    #[error("unexpected answer from Immuta: {0}")]
    Protocol(String),
    #[error("Immuta configuration: {0}")]
    Config(String),
}

impl From<ImmutaError> for QueryError {
    fn from(e: ImmutaError) -> Self {
        QueryError::Vend(e.to_string())
    }
}

impl From<RetryError> for ImmutaError {
    fn from(e: RetryError) -> Self {
        ImmutaError::Unavailable(e.to_string())
    }
}

/// Roles Immuta vended for one user, ready to use.
#[derive(Debug, Clone, PartialEq)]
pub struct VendedAccess {
    pub id: String,
    pub user_id: String,
    pub expires_at: SystemTime,
    pub roles: VendedRoles,
}

struct Inner {
    base: String,
    api_key: Secret,
    ttl_minutes: u32,
    pending_timeout: Duration,
    drop_unused_vends: bool,
    http: reqwest::Client,
    retry: RetryPolicy,
}

/// Immuta OBO API client (cheap to clone).
#[derive(Clone)]
pub struct ImmutaClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ImmutaClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImmutaClient")
            .field("base", &self.inner.base)
            .finish_non_exhaustive()
    }
}

impl ImmutaClient {
    /// Resolve the API key and prepare the client.
    pub fn new(
        cfg: &ImmutaConfig,
        http: reqwest::Client,
        retry: RetryPolicy,
    ) -> Result<Self, ImmutaError> {
        let api_key = cfg
            .api_key
            .resolve("immuta.api_key")
            .map_err(|e| ImmutaError::Config(e.to_string()))?;
        if api_key.is_empty() {
            return Err(ImmutaError::Config("immuta.api_key is empty".into()));
        }
        Ok(Self {
            inner: Arc::new(Inner {
                base: cfg.url.trim_end_matches('/').to_string(),
                api_key,
                ttl_minutes: cfg.ttl_minutes,
                pending_timeout: Duration::from_secs(cfg.pending_timeout_secs),
                drop_unused_vends: cfg.drop_unused_vends,
                http,
                retry,
            }),
        })
    }

    /// Lifetime of vended roles, minutes.
    pub fn ttl_minutes(&self) -> u32 {
        self.inner.ttl_minutes
    }

    /// Base URL of the Immuta tenant.
    pub fn base_url(&self) -> &str {
        &self.inner.base
    }

    /// Vend roles for `ctx.user` and wait until they are ready.
    pub async fn vend(&self, ctx: &CallContext) -> Result<VendedAccess, ImmutaError> {
        let user = ctx.user.as_str();
        let body = VendRequest {
            user_id: user.to_string(),
            ttl_minutes: self.inner.ttl_minutes,
        };
        let url = format!("{}{}", self.inner.base, VEND_PATH);
        let resp = self
            .inner
            .retry
            .send(|_| {
                ctx.count_upstream_request();
                self.request(reqwest::Method::POST, &url).json(&body)
            })
            .await?;
        let mut vend = self.parse_vend(user, &resp)?;
        let started = Instant::now();
        let mut poll = 0u32;
        while vend.status == VendStatus::Pending {
            if started.elapsed() >= self.inner.pending_timeout || ctx.cancel.is_cancelled() {
                return Err(ImmutaError::StillPending {
                    user: user.into(),
                    waited_secs: started.elapsed().as_secs(),
                });
            }
            poll += 1;
            ctx.report(poll, "waiting for Immuta to vend the role");
            let wait = Duration::from_millis(100u64.saturating_mul(1 << poll.min(5)))
                .min(Duration::from_secs(2));
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = ctx.cancel.cancelled() => {}
            }
            let id = vend.id.clone();
            let resp = self
                .inner
                .retry
                .send(|_| {
                    ctx.count_upstream_request();
                    self.request(reqwest::Method::GET, &self.role_url(&id))
                })
                .await?;
            vend = self.parse_vend(user, &resp)?;
        }
        if vend.status != VendStatus::Ready {
            return Err(ImmutaError::NotReady {
                user: user.into(),
                status: vend.status,
            });
        }
        if vend.user_id != user {
            return Err(ImmutaError::Protocol(format!(
                "vend answer names user {}, expected {user}",
                vend.user_id
            )));
        }
        let ttl = Duration::from_secs(u64::from(self.inner.ttl_minutes) * 60);
        let expires_at = match vend.expires_at.as_deref() {
            Some(s) => chrono::DateTime::parse_from_rfc3339(s)
                .map(SystemTime::from)
                .map_err(|e| {
                    ImmutaError::Protocol(format!("expiresAt {s:?} is not RFC 3339: {e}"))
                })?,
            None => SystemTime::now() + ttl,
        };
        tracing::debug!(user, vend_id = %vend.id, "Immuta vended roles");
        Ok(VendedAccess {
            id: vend.id,
            user_id: vend.user_id,
            expires_at,
            roles: vend.roles,
        })
    }

    /// Current state of a vend.
    pub async fn status(&self, vend_id: &str) -> Result<VendResponse, ImmutaError> {
        let resp = self
            .inner
            .retry
            .send(|_| self.request(reqwest::Method::GET, &self.role_url(vend_id)))
            .await?;
        self.parse_vend("", &resp)
    }

    /// Drop the roles of a vend early (e.g. on shutdown).
    pub async fn drop_roles(&self, vend_id: &str) -> Result<(), ImmutaError> {
        let resp = self
            .inner
            .retry
            .send(|_| self.request(reqwest::Method::DELETE, &self.role_url(vend_id)))
            .await?;
        if resp.is_success() || resp.status == 404 {
            return Ok(());
        }
        Err(self.error_for("", &resp))
    }

    /// [`drop_roles`](Self::drop_roles) in a background task, best effort:
    /// the caller does not wait, and the outcome is only logged (vend id and
    /// user, never the key). Used when a vended role will not be used (its
    /// credential could not be minted, or was evicted), so it does not stay
    /// live at Immuta for the rest of its TTL.
    ///
    /// Only the vend's own id is ever sent, and an empty `vend_id` is ignored:
    /// `DELETE /agent/obo/roles/{id}` with the *agent* id drops every vend of
    /// the agent (every user's roles), and the sandbox emulates exactly that.
    pub fn drop_roles_in_background(&self, vend_id: &str, user: &str, reason: &'static str) {
        if !self.inner.drop_unused_vends {
            tracing::debug!(
                user,
                vend_id,
                reason,
                "leaving the unused vended role to expire with its TTL"
            );
            return;
        }
        if vend_id.trim().is_empty() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(
                user,
                vend_id,
                reason,
                "no async runtime to drop the vended role; it expires with its TTL"
            );
            return;
        };
        let client = self.clone();
        let (vend_id, user) = (vend_id.to_string(), user.to_string());
        runtime.spawn(async move {
            match client.drop_roles(&vend_id).await {
                Ok(()) => {
                    tracing::info!(user = %user, vend_id = %vend_id, reason, "dropped the vended Immuta role")
                }
                Err(e) => tracing::warn!(
                    user = %user,
                    vend_id = %vend_id,
                    reason,
                    error = %e,
                    "could not drop the vended Immuta role (it expires with its TTL)"
                ),
            }
        });
    }

    fn role_url(&self, id: &str) -> String {
        let mut url = format!("{}{}/", self.inner.base, VEND_PATH);
        url.extend(url::form_urlencoded::byte_serialize(id.as_bytes()));
        url
    }

    fn request(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        self.inner
            .http
            .request(method, url)
            .bearer_auth(self.inner.api_key.expose())
            .header(reqwest::header::ACCEPT, "application/json")
    }

    fn parse_vend(&self, user: &str, resp: &UpstreamResponse) -> Result<VendResponse, ImmutaError> {
        if !resp.is_success() {
            return Err(self.error_for(user, resp));
        }
        resp.json::<VendResponse>()
            .map_err(|e| ImmutaError::Protocol(format!("vend answer does not parse: {e}")))
    }

    fn error_for(&self, user: &str, resp: &UpstreamResponse) -> ImmutaError {
        let message = resp
            .json::<ErrorBody>()
            .map(|b| b.message)
            .unwrap_or_else(|_| resp.text_snippet(300));
        match resp.status {
            401 | 403 => ImmutaError::Unauthorized {
                status: resp.status,
            },
            404 if !user.is_empty() => ImmutaError::UnknownUser {
                user: user.into(),
                message,
            },
            status => ImmutaError::Rejected { status, message },
        }
    }
}
