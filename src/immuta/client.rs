//! Client of Immuta's agent OBO API: vend, poll, and drop ephemeral roles.
//!
//! Authentication follows `immuta.auth` ([`ImmutaAuth`]): the API key as
//! `Authorization: <key>` (Immuta's API-key method), a bearer token from
//! `POST /bim/apikey/authenticate` (the bearer-token method; cached and
//! exchanged again when a request answers 401), or `Authorization: Bearer
//! <key>` (the agent page's curl example). With `auto` (the default) the
//! first request tries them in that order and the process keeps the first
//! form Immuta accepts; a 401 on every form is one error naming `immuta.auth`.
//! The key and tokens are never logged.
//!
//! A "pending" vend is polled with `GET /agent/obo/roles/{id}` until it is
//! ready, bounded by `pending_timeout_secs`; `{id}` is the vend id or the
//! agent id (`immuta.poll_id`). A 404 while polling is a protocol error that
//! names the vend, the URL and `immuta.poll_id`. The vend POST is not
//! idempotent: it is repeated only when Immuta cannot have acted on it
//! ([`Idempotency::NotIdempotent`]). Errors are typed so the tool can tell the
//! user what went wrong without exposing the key.

pub use super::errors::ImmutaError;
use crate::config::{ImmutaAuth, ImmutaConfig, ImmutaPollId};
use crate::immuta::wire::{
    AUTHENTICATE_PATH, AgentStatus, AuthenticateRequest, AuthenticateResponse, ErrorBody,
    VEND_PATH, VendRequest, VendResponse, VendStatus, VendedRoles,
};
use crate::query::CallContext;
use crate::retry::{Idempotency, RetryPolicy, UpstreamResponse};
use crate::secret::Secret;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

/// Roles Immuta vended for one user, ready to use.
#[derive(Debug, Clone, PartialEq)]
pub struct VendedAccess {
    pub id: String,
    pub user_id: String,
    pub expires_at: SystemTime,
    pub roles: VendedRoles,
}

/// One concrete way of presenting the API key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AuthForm {
    RawKey,
    Exchange,
    BearerKey,
}

impl AuthForm {
    fn setting(self) -> ImmutaAuth {
        match self {
            AuthForm::RawKey => ImmutaAuth::RawKey,
            AuthForm::Exchange => ImmutaAuth::Exchange,
            AuthForm::BearerKey => ImmutaAuth::BearerKey,
        }
    }
}

/// Order `auto` tries: the two documented methods first, then `Bearer <key>`.
const AUTO_ORDER: [AuthForm; 3] = [AuthForm::RawKey, AuthForm::Exchange, AuthForm::BearerKey];

/// What the client learned about authentication (shared by clones).
#[derive(Default)]
struct AuthState {
    /// The form that worked (fixed from the start unless `auth = auto`).
    chosen: Option<AuthForm>,
    /// The bearer token of the exchange form.
    token: Option<Secret>,
}

/// A request, described so it can be rebuilt per auth form and attempt.
struct Call<'a> {
    method: reqwest::Method,
    url: &'a str,
    body: Option<&'a VendRequest>,
    idempotency: Idempotency,
    ctx: Option<&'a CallContext>,
}

struct Inner {
    base: String,
    api_key: Secret,
    ttl_minutes: u32,
    pending_timeout: Duration,
    drop_unused_vends: bool,
    poll_id: ImmutaPollId,
    agent_id: Option<String>,
    auth: Mutex<AuthState>,
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
        let chosen = match cfg.auth {
            ImmutaAuth::Auto => None,
            ImmutaAuth::RawKey => Some(AuthForm::RawKey),
            ImmutaAuth::Exchange => Some(AuthForm::Exchange),
            ImmutaAuth::BearerKey => Some(AuthForm::BearerKey),
        };
        Ok(Self {
            inner: Arc::new(Inner {
                base: cfg.url.trim_end_matches('/').to_string(),
                api_key,
                ttl_minutes: cfg.ttl_minutes,
                pending_timeout: Duration::from_secs(cfg.pending_timeout_secs),
                drop_unused_vends: cfg.drop_unused_vends,
                poll_id: cfg.poll_id,
                agent_id: cfg
                    .agent_id
                    .as_deref()
                    .map(str::trim)
                    .filter(|a| !a.is_empty())
                    .map(str::to_string),
                auth: Mutex::new(AuthState {
                    chosen,
                    token: None,
                }),
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

    /// The authentication form in use: the configured one, or with `auto` the
    /// one that answered first (`Auto` until a request has succeeded).
    pub fn auth_in_use(&self) -> ImmutaAuth {
        self.auth_state()
            .chosen
            .map_or(ImmutaAuth::Auto, AuthForm::setting)
    }

    /// Vend roles for `ctx.user` and wait until they are ready (counted in
    /// `immuta_mcp_vends_total` when the retry policy carries metrics).
    pub async fn vend(&self, ctx: &CallContext) -> Result<VendedAccess, ImmutaError> {
        let result = self.vend_and_wait(ctx).await;
        if let Some(metrics) = self.inner.retry.metrics() {
            metrics.vend(match &result {
                Ok(_) => "ok",
                Err(e) => e.outcome(),
            });
        }
        result
    }

    async fn vend_and_wait(&self, ctx: &CallContext) -> Result<VendedAccess, ImmutaError> {
        let user = ctx.user.as_str();
        let body = VendRequest {
            user_id: user.to_string(),
            ttl_minutes: self.inner.ttl_minutes,
        };
        let url = format!("{}{}", self.inner.base, VEND_PATH);
        let resp = self
            .send(Call {
                method: reqwest::Method::POST,
                url: &url,
                body: Some(&body),
                idempotency: Idempotency::NotIdempotent,
                ctx: Some(ctx),
            })
            .await
            .map_err(|e| match e {
                ImmutaError::Unavailable(m) => ImmutaError::Unavailable(format!(
                    "vending a role for {user} (POST {VEND_PATH}): {m}"
                )),
                other => other,
            })?;
        let mut vend = self.parse_vend(user, &resp)?;
        let started = Instant::now();
        let mut poll = 0u32;
        while vend.state() == VendStatus::Pending {
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
            vend = self.poll(ctx, user, &vend).await?;
        }
        if vend.state() != VendStatus::Ready {
            return Err(ImmutaError::NotReady {
                user: user.into(),
                status: vend.state(),
            });
        }
        if vend.user_id != user {
            return Err(ImmutaError::Protocol(format!(
                "vend answer names user {}, expected {user}",
                vend.user_id
            )));
        }
        let ttl_minutes = vend.ttl_minutes.unwrap_or(self.inner.ttl_minutes);
        let ttl = Duration::from_secs(u64::from(ttl_minutes) * 60);
        let expires_at = match vend.expires_at.as_deref() {
            Some(s) => chrono::DateTime::parse_from_rfc3339(s)
                .map(SystemTime::from)
                .map_err(|e| {
                    ImmutaError::Protocol(format!("expiresAt {s:?} is not RFC 3339: {e}"))
                })?,
            None => SystemTime::now() + ttl,
        };
        tracing::debug!(user, vend_id = %vend.id, "Immuta vended roles");
        ctx.facts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .vend_ids
            .push(vend.id.clone());
        Ok(VendedAccess {
            id: vend.id,
            user_id: vend.user_id,
            expires_at,
            roles: vend.roles,
        })
    }

    /// One status poll of the pending `vend`, by vend id or agent id (`immuta.poll_id`).
    async fn poll(
        &self,
        ctx: &CallContext,
        user: &str,
        vend: &VendResponse,
    ) -> Result<VendResponse, ImmutaError> {
        let (poll_key, url) = match self.inner.poll_id {
            ImmutaPollId::VendId => (vend.id.clone(), self.role_url(&vend.id)),
            ImmutaPollId::AgentId => {
                let agent = self
                    .inner
                    .agent_id
                    .clone()
                    .or_else(|| vend.agent_id.clone())
                    .ok_or_else(|| {
                        ImmutaError::Config(
                            "immuta.poll_id = \"agent_id\" needs immuta.agent_id (the vend answer names no agentId)"
                                .into(),
                        )
                    })?;
                let url = self.role_url(&agent);
                (agent, url)
            }
        };
        let resp = self
            .send(Call {
                method: reqwest::Method::GET,
                url: &url,
                body: None,
                idempotency: Idempotency::Idempotent,
                ctx: Some(ctx),
            })
            .await?;
        if resp.status == 404 {
            let other = match self.inner.poll_id {
                ImmutaPollId::VendId => ImmutaPollId::AgentId,
                ImmutaPollId::AgentId => ImmutaPollId::VendId,
            };
            return Err(ImmutaError::Protocol(format!(
                "polling the pending vend {} for {user} at GET {url} answered 404 ({}); immuta.poll_id = \"{}\" looks wrong for this tenant: set immuta.poll_id = \"{}\"{}",
                vend.id,
                error_message(&resp),
                self.inner.poll_id.as_str(),
                other.as_str(),
                match (other, &self.inner.agent_id) {
                    (ImmutaPollId::AgentId, None) => " and immuta.agent_id",
                    (ImmutaPollId::VendId, Some(_)) => " (or check immuta.agent_id)",
                    _ => "",
                },
            )));
        }
        if !resp.is_success() {
            return Err(self.error_for("", &resp));
        }
        match self.inner.poll_id {
            ImmutaPollId::VendId => self.parse_vend(user, &resp),
            ImmutaPollId::AgentId => pick_vend(&resp, &vend.id, &poll_key),
        }
    }

    /// Current state of a vend.
    pub async fn status(&self, vend_id: &str) -> Result<VendResponse, ImmutaError> {
        let url = self.role_url(vend_id);
        let resp = self
            .send(Call {
                method: reqwest::Method::GET,
                url: &url,
                body: None,
                idempotency: Idempotency::Idempotent,
                ctx: None,
            })
            .await?;
        self.parse_vend("", &resp)
    }

    /// Authenticate once (a GET that needs no vend) and say which form answered.
    /// A 404 for the probe id still proves the key was accepted.
    pub async fn probe(&self) -> Result<ImmutaAuth, ImmutaError> {
        match self.status("immuta-mcp-check").await {
            Ok(_) | Err(ImmutaError::Rejected { status: 404, .. }) => Ok(self.auth_in_use()),
            Err(e) => Err(e),
        }
    }

    /// Drop the roles of a vend early (e.g. on shutdown).
    pub async fn drop_roles(&self, vend_id: &str) -> Result<(), ImmutaError> {
        let url = self.role_url(vend_id);
        let resp = self
            .send(Call {
                method: reqwest::Method::DELETE,
                url: &url,
                body: None,
                idempotency: Idempotency::Idempotent,
                ctx: None,
            })
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

    fn auth_state(&self) -> MutexGuard<'_, AuthState> {
        self.inner.auth.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Send `call` with the chosen auth form, or (`auto`, nothing chosen yet)
    /// with each form in [`AUTO_ORDER`] until one is not answered 401. An
    /// exchanged token answered 401 is exchanged again once and resent.
    async fn send(&self, call: Call<'_>) -> Result<UpstreamResponse, ImmutaError> {
        let chosen = self.auth_state().chosen;
        let forms: &[AuthForm] = match &chosen {
            Some(f) => std::slice::from_ref(f),
            None => &AUTO_ORDER,
        };
        let mut tried = Vec::new();
        let mut last_status = 401;
        for &form in forms {
            tried.push(form.setting().as_str());
            let outcome = match form {
                AuthForm::RawKey => Some(
                    self.send_as(&call, self.inner.api_key.expose().to_string())
                        .await?,
                ),
                AuthForm::BearerKey => Some(
                    self.send_as(&call, format!("Bearer {}", self.inner.api_key.expose()))
                        .await?,
                ),
                AuthForm::Exchange => self.send_exchanged(&call, chosen.is_none()).await?,
            };
            match outcome {
                // 401 = this form is refused. While `auto` is still probing a
                // 403 counts too: some gateways answer it for an unknown scheme.
                Some(resp) if resp.status == 401 || (chosen.is_none() && resp.status == 403) => {
                    last_status = resp.status
                }
                Some(resp) => {
                    let mut state = self.auth_state();
                    if state.chosen.is_none() {
                        tracing::info!(
                            auth = form.setting().as_str(),
                            "Immuta accepted the API key in this form; using it from now on"
                        );
                        state.chosen = Some(form);
                    }
                    return Ok(resp);
                }
                // The exchange itself was refused: this form does not work.
                None => last_status = 401,
            }
        }
        Err(ImmutaError::Unauthorized {
            status: last_status,
            tried: format!("immuta.auth = {}", tried.join(", ")),
        })
    }

    async fn send_as(
        &self,
        call: &Call<'_>,
        authorization: String,
    ) -> Result<UpstreamResponse, ImmutaError> {
        let resp = self
            .inner
            .retry
            .send_with(call.idempotency, |_| {
                if let Some(ctx) = call.ctx {
                    ctx.count_upstream_request();
                }
                let req = self
                    .inner
                    .http
                    .request(call.method.clone(), call.url)
                    .header(reqwest::header::AUTHORIZATION, &authorization)
                    .header(reqwest::header::ACCEPT, "application/json");
                match call.body {
                    Some(body) => req.json(body),
                    None => req,
                }
            })
            .await?;
        Ok(resp)
    }

    /// The exchange form: a cached token, or a fresh one; a 401 on a cached
    /// token exchanges once more. `None` when the exchange is refused.
    async fn send_exchanged(
        &self,
        call: &Call<'_>,
        probing: bool,
    ) -> Result<Option<UpstreamResponse>, ImmutaError> {
        let cached = self.auth_state().token.clone();
        let had_cached = cached.is_some();
        let token = match cached {
            Some(t) => t,
            None => match self.exchange(call.ctx, probing).await? {
                Some(t) => t,
                None => return Ok(None),
            },
        };
        let resp = self
            .send_as(call, format!("Bearer {}", token.expose()))
            .await?;
        if resp.status != 401 || !had_cached {
            return Ok(Some(resp));
        }
        tracing::debug!(
            "Immuta answered 401 to the cached bearer token; exchanging the API key again"
        );
        self.auth_state().token = None;
        let Some(token) = self.exchange(call.ctx, false).await? else {
            return Ok(None);
        };
        self.send_as(call, format!("Bearer {}", token.expose()))
            .await
            .map(Some)
    }

    /// `POST /bim/apikey/authenticate` with the key in the body and in
    /// `Authorization` (both documented); caches and returns the token.
    /// `None` when Immuta refuses the exchange: a 401, or while `auto` is
    /// still probing also a 403/404/405 (no such endpoint); other failures are errors.
    async fn exchange(
        &self,
        ctx: Option<&CallContext>,
        probing: bool,
    ) -> Result<Option<Secret>, ImmutaError> {
        let url = format!("{}{}", self.inner.base, AUTHENTICATE_PATH);
        let body = AuthenticateRequest {
            apikey: self.inner.api_key.expose().to_string(),
        };
        let resp = self
            .inner
            .retry
            .send(|_| {
                if let Some(ctx) = ctx {
                    ctx.count_upstream_request();
                }
                self.inner
                    .http
                    .post(&url)
                    .header(reqwest::header::AUTHORIZATION, self.inner.api_key.expose())
                    .header(reqwest::header::ACCEPT, "application/json")
                    .json(&body)
            })
            .await?;
        if resp.status == 401 || (probing && matches!(resp.status, 403..=405)) {
            return Ok(None);
        }
        if !resp.is_success() {
            return Err(ImmutaError::Rejected {
                status: resp.status,
                message: format!(
                    "POST {AUTHENTICATE_PATH} (immuta.auth = \"exchange\"): {}",
                    error_message(&resp)
                ),
            });
        }
        let answer: AuthenticateResponse = resp.json().map_err(|e| {
            ImmutaError::Protocol(format!(
                "POST {AUTHENTICATE_PATH} answer has no token/access_token: {e}"
            ))
        })?;
        if answer.token.trim().is_empty() {
            return Err(ImmutaError::Protocol(format!(
                "POST {AUTHENTICATE_PATH} answered an empty token"
            )));
        }
        let token = Secret::new(answer.token);
        self.auth_state().token = Some(token.clone());
        Ok(Some(token))
    }

    fn parse_vend(&self, user: &str, resp: &UpstreamResponse) -> Result<VendResponse, ImmutaError> {
        if !resp.is_success() {
            return Err(self.error_for(user, resp));
        }
        resp.json::<VendResponse>()
            .map_err(|e| ImmutaError::Protocol(format!("vend answer does not parse: {e}")))
    }

    fn error_for(&self, user: &str, resp: &UpstreamResponse) -> ImmutaError {
        let message = error_message(resp);
        match resp.status {
            401 | 403 => ImmutaError::Unauthorized {
                status: resp.status,
                tried: format!("immuta.auth = {}", self.auth_in_use().as_str()),
            },
            404 if !user.is_empty() => ImmutaError::UnknownUser {
                user: user.into(),
                message,
            },
            status => ImmutaError::Rejected { status, message },
        }
    }
}

/// The `{"message"}` of an error answer, or the start of its body.
fn error_message(resp: &UpstreamResponse) -> String {
    resp.json::<ErrorBody>()
        .map(|b| b.message)
        .unwrap_or_else(|_| resp.text_snippet(300))
}

/// The vend `vend_id` from an agent status answer: the agent's vends as a
/// list (`data`/`vends`), or a single vend answer.
fn pick_vend(
    resp: &UpstreamResponse,
    vend_id: &str,
    agent_id: &str,
) -> Result<VendResponse, ImmutaError> {
    if let Ok(single) = resp.json::<VendResponse>()
        && single.id == vend_id
    {
        return Ok(single);
    }
    let all: AgentStatus = resp.json().map_err(|e| {
        ImmutaError::Protocol(format!(
            "status of agent {agent_id} does not parse as a list of vends: {e}"
        ))
    })?;
    all.data
        .into_iter()
        .find(|v| v.id == vend_id)
        .ok_or_else(|| {
            ImmutaError::Protocol(format!(
                "status of agent {agent_id} does not list the pending vend {vend_id}"
            ))
        })
}
