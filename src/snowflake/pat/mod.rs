//! Per-user programmatic access tokens (PATs) restricted to the vended role.
//!
//! For an end user, [`PatManager::session`] leases a [`PatSession`]: Immuta
//! vends the user's ephemeral role, then the agent (authenticated by its
//! key-pair JWT) runs
//! `ALTER USER ADD PROGRAMMATIC ACCESS TOKEN <name> ROLE_RESTRICTION = '<role>' MINS_TO_EXPIRY = <ttl> COMMENT = 'OBO <user>'`
//! and reads `token_name` / `token_secret` from the result row. Sessions are
//! cached per user in a [`CredentialCache`] (single-flight: concurrent first
//! calls share one vend and one PAT) until shortly before
//! `min(vend expiry, PAT expiry)`. A call holds its [`SessionLease`] while its
//! statement runs, so the cache knows which sessions are in use.
//!
//! # Capacity: concurrent Snowflake end users
//!
//! Every end user's PAT is created on the ONE agent user, and Snowflake limits
//! the PATs a user may hold (believed 15; the sandbox's
//! `pat_limit_per_user`, default 15). So at most that many end users can hold
//! a Snowflake session at once, per agent user. When the limit is hit:
//! 1. tokens no session can use are removed: the user's own superseded token,
//!    the tokens this process created that have expired (or are inside the
//!    reuse margin), and, from `SHOW USER PROGRAMMATIC ACCESS TOKENS`, those
//!    named by [`token_name`]'s scheme that Snowflake no longer accepts
//!    (status other than `ACTIVE`, or past their expiry); if that freed a
//!    slot, the creation is retried;
//! 2. if it is still at the limit, the least recently used *idle* session of
//!    another user (no lease out: no statement of that user is running) is
//!    evicted: its cache entry is dropped, its token removed, its vended role
//!    dropped at Immuta (in the background), and the creation is retried
//!    once. That user's next call simply vends and mints again. A session
//!    with a running statement is never evicted, and a live `ACTIVE` token a
//!    cached session may use is otherwise never removed;
//! 3. if every slot belongs to a running statement, the call fails with a
//!    credential error saying the server reached its concurrent Snowflake
//!    user capacity and to retry shortly, and that user's further calls fail
//!    the same way without any upstream request for
//!    [`PatSettings::capacity_backoff`] (2 s by default), so a retrying
//!    client does not cost a vend and several Snowflake requests per call.
//!
//! Whenever minting fails after a successful vend, the vended role is dropped
//! at Immuta in the background (best effort), so failures leak no roles.
//! Other hygiene: a superseded token is removed
//! (`ALTER USER REMOVE PROGRAMMATIC ACCESS TOKEN <name>`, best effort) when
//! its replacement exists, and a token the platform rejected is removed when
//! it is invalidated.
//! The PAT secret lives only in a [`Secret`]; logs name tokens, never secrets.
//!
//! This module owns the lifecycle (cache, capacity, eviction, scheduled
//! removal); the token statements themselves (ADD / REMOVE / SHOW, the token
//! names, recognising Snowflake's refusals) are in the `tokens` submodule.

mod tokens;

use tokens::{CreatedToken, TokenOps, dead_tokens, token_from_result};
pub use tokens::{
    TOKEN_NAME_PREFIX, add_pat_statement, is_mins_to_expiry_refused, is_token_limit, sql_string,
    token_name,
};

use super::errors::SqlApiError;
use super::host::AccountHost;
use super::keypair::KeyPairJwt;
use super::statements::StatementsClient;
use crate::broker::{CredentialCache, Lease};
use crate::config::PatExpiryClause;
use crate::immuta::client::{ImmutaClient, VendedAccess};
use crate::metrics::{GaugeReading, Metrics, MintTracker};
use crate::query::{CallContext, QueryError};
use crate::secret::Secret;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio_util::sync::CancellationToken;

/// The end user's scoped Snowflake session: what every user statement runs with.
#[derive(Debug, Clone)]
pub struct PatSession {
    /// Immuta vend id.
    pub vend_id: String,
    /// The vended role the PAT is restricted to.
    pub role: String,
    /// Account for the agent's JWT (config override or the vend's locator).
    pub account: String,
    /// SQL API base URL for this account.
    pub base_url: String,
    pub token_name: String,
    pub pat: Secret,
    /// `min(vend expiry, PAT expiry)`.
    pub expires_at: SystemTime,
    /// What Snowflake reported it applies to this PAT (`role=… user=…`),
    /// asked once per PAT before its first user statement.
    pub applied_identity: Arc<tokio::sync::OnceCell<String>>,
}

impl PatSession {
    /// Whether this session's PAT takes one of the slots Snowflake counts for
    /// the agent user on `account` at `base_url` (a PAT elsewhere frees none there).
    fn holds_a_slot_of(&self, account: &str, base_url: &str) -> bool {
        self.account == account && self.base_url == base_url
    }
}

impl crate::shared::Shareable for PatSession {
    const PLATFORM: &'static str = "snowflake";

    fn to_shared(&self) -> serde_json::Value {
        serde_json::json!({
            "vend_id": self.vend_id,
            "role": self.role,
            "account": self.account,
            "base_url": self.base_url,
            "token_name": self.token_name,
            "pat": self.pat.expose(),
            "expires_at_ms": self.expires_at.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0),
        })
    }

    fn from_shared(value: serde_json::Value) -> Option<Self> {
        let text = |name: &str| value.get(name)?.as_str().map(str::to_string);
        let pat = text("pat").filter(|p| !p.is_empty())?;
        Some(Self {
            vend_id: text("vend_id")?,
            role: text("role")?,
            account: text("account")?,
            base_url: text("base_url")?,
            token_name: text("token_name")?,
            pat: Secret::new(pat),
            expires_at: std::time::UNIX_EPOCH
                + Duration::from_millis(value.get("expires_at_ms")?.as_u64()?),
            // Each replica asks Snowflake once itself before its first statement.
            applied_identity: Arc::default(),
        })
    }
}

/// Settings of the PAT lifecycle.
#[derive(Debug, Clone)]
pub struct PatSettings {
    pub expiry_clause: PatExpiryClause,
    /// `snowflake.account`, else the vend's account locator.
    pub account: Option<String>,
    /// `snowflake.base_url`, else `https://<the vend's connectionKey host>`.
    pub base_url: Option<String>,
    /// Timeout of the token statements, seconds.
    pub statement_timeout_secs: u64,
    /// Sessions are re-minted when they have less than this left.
    pub margin: Duration,
    /// After a user's mint failed because every PAT slot of the agent user
    /// is in use, that user's calls fail at once for this long (no vend, no
    /// Snowflake request). [`DEFAULT_CAPACITY_BACKOFF`] by default.
    pub capacity_backoff: Duration,
    /// Agents in the pool this agent belongs to (1 without `[[agents]]`).
    pub pool_size: usize,
}

/// Default [`PatSettings::capacity_backoff`].
pub const DEFAULT_CAPACITY_BACKOFF: Duration = Duration::from_secs(2);

/// A user's [`PatSession`] in use by one call; while any lease of a session
/// is alive the session is never evicted to make room for another user.
pub type SessionLease = Lease<PatSession>;

/// Mints, caches, replaces and removes the per-user PATs.
pub struct PatManager {
    immuta: ImmutaClient,
    jwt: Arc<KeyPairJwt>,
    api: StatementsClient,
    settings: PatSettings,
    cache: CredentialCache<String, PatSession>,
    created: Arc<Mutex<Vec<CreatedToken>>>,
    /// The expiry clause in use: the configured one until Snowflake refused
    /// `MINS_TO_EXPIRY`, then `DAYS_TO_EXPIRY` for the rest of the process.
    expiry_clause: Mutex<PatExpiryClause>,
    /// The fallback to `DAYS_TO_EXPIRY` has been logged.
    fallback_warned: AtomicBool,
    /// Stops the scheduled removals when the manager is dropped.
    removals: CancellationToken,
    /// Users whose mint failed for lack of capacity, and until when their
    /// calls fail at once.
    capacity_backoff: Mutex<HashMap<String, Instant>>,
    /// Counts credential lookups (`[metrics]`), when set by [`PatManager::observe`].
    metrics: Option<Metrics>,
    /// Users whose PAT is being minted right now (tells `shared` from `hit`).
    mints: MintTracker,
}

impl std::fmt::Debug for PatManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PatManager")
            .field("jwt", &self.jwt)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl PatManager {
    pub fn new(
        immuta: ImmutaClient,
        jwt: KeyPairJwt,
        api: StatementsClient,
        settings: PatSettings,
    ) -> Self {
        Self {
            cache: CredentialCache::new(settings.margin),
            immuta,
            jwt: Arc::new(jwt),
            api,
            expiry_clause: Mutex::new(settings.expiry_clause),
            settings,
            created: Arc::new(Mutex::new(Vec::new())),
            fallback_warned: AtomicBool::new(false),
            removals: CancellationToken::new(),
            capacity_backoff: Mutex::new(HashMap::new()),
            metrics: None,
            mints: MintTracker::default(),
        }
    }

    pub fn jwt(&self) -> &KeyPairJwt {
        &self.jwt
    }

    /// Change how long a user's calls fail at once after a capacity failure.
    pub fn set_capacity_backoff(&mut self, backoff: Duration) {
        self.settings.capacity_backoff = backoff;
    }

    /// Share sessions with the other replicas through `store`, as `agent`'s.
    pub fn share_through(&mut self, store: Arc<crate::shared::SharedStore>, agent: &str) {
        self.cache.set_shared(Arc::new(
            crate::shared::SharedCredentials::<PatSession>::new(store, agent),
        ));
    }

    /// This agent is one of `agents` in a pool.
    pub fn set_pool_size(&mut self, agents: usize) {
        self.settings.pool_size = agents.max(1);
    }

    /// Use another SQL API client (e.g. with a different retry policy).
    pub fn set_api(&mut self, api: StatementsClient) {
        self.api = api;
    }

    pub fn api(&self) -> &StatementsClient {
        &self.api
    }

    /// Base URL of the SQL API for an account host: `snowflake.base_url`
    /// when set (an explicit override, e.g. a proxy), else `https://<host>`.
    pub fn base_url_for(&self, host: &AccountHost) -> String {
        match &self.settings.base_url {
            Some(b) => b.trim_end_matches('/').to_string(),
            None => host.base_url(),
        }
    }

    /// The PAT expiry clause the next ADD uses.
    pub fn expiry_clause(&self) -> PatExpiryClause {
        *self
            .expiry_clause
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The user's cached session, or a freshly vended role + minted PAT,
    /// leased for the call: hold the lease while a statement uses the PAT.
    pub async fn session(&self, ctx: &CallContext) -> Result<SessionLease, QueryError> {
        let was_minting = self.mints.is_minting(&ctx.user);
        let minted = AtomicBool::new(false);
        let session = self
            .cache
            .lease_or_mint(ctx.user.clone(), |previous| {
                minted.store(true, Ordering::SeqCst);
                let minting = self.mints.minting(&ctx.user);
                async move {
                    let _minting = minting;
                    self.mint(ctx, previous).await
                }
            })
            .await;
        if let Some(metrics) = &self.metrics {
            let result = MintTracker::result(was_minting, minted.load(Ordering::SeqCst));
            metrics.credential_cache("snowflake", result);
        }
        session
    }

    /// Count credential lookups in `metrics`, and report the live PATs this
    /// process holds on the agent user `agent` (created, not removed, not expired).
    pub fn observe(&mut self, metrics: &Metrics, agent: &str) {
        self.metrics = Some(metrics.clone());
        let created = Arc::downgrade(&self.created);
        let agent = agent.to_string();
        metrics.add_gauge_source(Box::new(move || {
            let created = created.upgrade()?;
            let now = SystemTime::now();
            let live = created
                .lock()
                .map(|tokens| tokens.iter().filter(|t| t.usable_at(now)).count())
                .unwrap_or(0);
            Some(GaugeReading::SnowflakePats {
                agent: agent.clone(),
                live: live as i64,
            })
        }));
    }

    /// The user's cached session if it is still fresh, leased; never vends or
    /// mints (a `fetch_more` page is read only with the PAT its statement ran under).
    pub async fn existing_session(&self, user: &str) -> Option<SessionLease> {
        self.cache.lease_fresh(&user.to_string()).await
    }

    /// Sessions stop being used this long before they expire.
    pub fn margin(&self) -> Duration {
        self.settings.margin
    }

    /// The platform rejected `session`'s PAT: forget it (unless already
    /// replaced) and remove the token, best effort.
    pub async fn reject(&self, ctx: &CallContext, session: &PatSession) {
        let dropped = self
            .cache
            .invalidate_if(&ctx.user, |cached| cached.token_name == session.token_name)
            .await;
        if let Some(stale) = dropped {
            tracing::info!(user = %ctx.user, token = %stale.token_name, "Snowflake rejected the PAT; removing it");
            self.remove_token(ctx, &stale.account, &stale.base_url, &stale.token_name)
                .await;
        }
    }

    /// Remove every token this process created (e.g. on shutdown), best effort.
    pub async fn remove_all(&self) {
        self.cache.clear().await;
        let tokens: Vec<CreatedToken> = self
            .created
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        let ctx = CallContext::new("immuta-mcp", "shutdown");
        for t in tokens {
            self.remove_token(&ctx, &t.account, &t.base_url, &t.name)
                .await;
        }
    }

    /// On shutdown: remove every token this process created that no other
    /// replica shares (best effort); returns how many were removed. Without a
    /// shared cache that is every token. With one, a token the shared cache
    /// still holds for its user may be in use by another replica and is kept
    /// (it expires with its vend), and so is every token while the shared
    /// cache cannot be asked.
    pub async fn remove_unshared(&self) -> usize {
        let tokens: Vec<CreatedToken> = self
            .created
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        let ctx = CallContext::new("immuta-mcp", "shutdown");
        let mut removed = 0;
        for t in tokens {
            if self.cache.is_shared() {
                match self.cache.shared_value(&t.user).await {
                    Some(Some(shared)) if shared.token_name == t.name => {
                        tracing::info!(token = %t.name, "keeping a Snowflake PAT other replicas share");
                        continue;
                    }
                    Some(_) => {}
                    None => {
                        tracing::info!(token = %t.name, "the shared cache cannot be asked; keeping the PAT (it expires with its vend)");
                        continue;
                    }
                }
            }
            removed += usize::from(
                self.remove_token(&ctx, &t.account, &t.base_url, &t.name)
                    .await,
            );
        }
        self.cache.clear().await;
        removed
    }

    async fn mint(
        &self,
        ctx: &CallContext,
        previous: Option<PatSession>,
    ) -> Result<(PatSession, SystemTime), QueryError> {
        // The mint is shared by every concurrent caller of this user: one
        // caller's cancellation must not abort it halfway (e.g. after the
        // token was created but before it was recorded).
        let ctx = &ctx.detached();
        if let Some(left) = self.capacity_backoff_left(&ctx.user) {
            tracing::debug!(user = %ctx.user, "Snowflake user capacity was reached moments ago; not vending again yet");
            return Err(self.capacity_error(left));
        }
        let vend = self.immuta.vend(ctx).await?;
        let minted = self.mint_for_vend(ctx, &vend, previous).await;
        if let Err(e) = &minted {
            // Nothing will use this vend's role: do not leave it live at
            // Immuta for its whole TTL.
            tracing::info!(user = %ctx.user, vend_id = %vend.id, error = %e, "no PAT for the vended role; dropping the role");
            self.immuta
                .drop_roles_in_background(&vend.id, &ctx.user, "PAT mint failed");
        }
        minted
    }

    /// Create the PAT restricted to `vend`'s Snowflake role.
    async fn mint_for_vend(
        &self,
        ctx: &CallContext,
        vend: &VendedAccess,
        mut previous: Option<PatSession>,
    ) -> Result<(PatSession, SystemTime), QueryError> {
        let role = vend.roles.snowflake.clone().ok_or_else(|| {
            QueryError::Vend(format!(
                "Immuta vended no Snowflake role for {} (is the agent mapped to Snowflake and the user entitled to Snowflake data?)",
                ctx.user
            ))
        })?;
        ctx.set_vended_role(&role.role_name);
        // The vend names the account host; it is validated strictly before
        // any credential is sent to it (security audit F9).
        let host = AccountHost::parse(&role.connection_key).map_err(|e| QueryError::Protocol {
            service: "Immuta",
            message: e.to_string(),
        })?;
        if let Some(configured) = &self.settings.account {
            host.check_account(configured)
                .map_err(|e| QueryError::Credential(e.to_string()))?;
        }
        let account = self
            .settings
            .account
            .clone()
            .unwrap_or_else(|| host.locator().to_string());
        let base_url = self.base_url_for(&host);
        let ttl = self.immuta.ttl_minutes().max(1);
        let name = token_name(&ctx.user);
        let mut clause = self.expiry_clause();
        let mut statement = add_pat_statement(&name, &role.role_name, clause, ttl, &ctx.user);
        let mut minted = self.run_jwt(ctx, &account, &base_url, &statement).await;
        if clause == PatExpiryClause::MinsToExpiry
            && minted.as_ref().is_err_and(is_mins_to_expiry_refused)
        {
            // The account has only the public syntax: fall back once, for the
            // whole process, and say which setting avoids the failed ADD.
            clause = PatExpiryClause::DaysToExpiry;
            *self
                .expiry_clause
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()) = clause;
            if !self.fallback_warned.swap(true, Ordering::SeqCst) {
                let refusal = minted
                    .as_ref()
                    .err()
                    .map(ToString::to_string)
                    .unwrap_or_default();
                tracing::warn!(error = %refusal, "Snowflake refused MINS_TO_EXPIRY in ALTER USER ADD PROGRAMMATIC ACCESS TOKEN; using DAYS_TO_EXPIRY = 1 from now on and removing each PAT when its vended role expires. Set snowflake.pat_expiry_clause = \"DAYS_TO_EXPIRY\" to skip the refused attempt");
            }
            statement = add_pat_statement(&name, &role.role_name, clause, ttl, &ctx.user);
            minted = self.run_jwt(ctx, &account, &base_url, &statement).await;
        }
        let minted = match minted {
            Err(e) if is_token_limit(&e) => {
                self.mint_at_limit(ctx, previous.take(), &account, &base_url, &statement, e)
                    .await
            }
            other => other,
        };
        let minted = match minted {
            Ok(minted) => minted,
            Err(e) if is_token_limit(&e) => {
                tracing::warn!(user = %ctx.user, error = %e, "Snowflake user capacity reached: every PAT slot of the agent user is held by a running query");
                self.note_capacity_reached(&ctx.user);
                return Err(self.capacity_error(self.settings.capacity_backoff));
            }
            Err(e) => {
                return Err(self.credential_error(&account, "create a PAT for the vended role", e));
            }
        };
        let (token_name, secret) = token_from_result(&minted)?;
        let now = SystemTime::now();
        let pat_expires_at = now + pat_lifetime(clause, ttl);
        let expires_at = vend.expires_at.min(pat_expires_at);
        self.created
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(CreatedToken {
                user: ctx.user.clone(),
                account: account.clone(),
                base_url: base_url.clone(),
                name: token_name.clone(),
                expires_at,
            });
        tracing::info!(user = %ctx.user, role = %role.role_name, token = %token_name, "minted Snowflake PAT for the vended role");
        if pat_expires_at > expires_at {
            // The token would outlive its role (DAYS_TO_EXPIRY): remove it as
            // soon as the vend ends, whether or not the user calls again.
            self.schedule_removal(&account, &base_url, &token_name, expires_at);
        }
        if let Some(prev) = previous {
            self.remove_token(ctx, &prev.account, &prev.base_url, &prev.token_name)
                .await;
        }
        let session = PatSession {
            vend_id: vend.id.clone(),
            role: role.role_name,
            account,
            base_url,
            token_name,
            pat: secret,
            expires_at,
            applied_identity: Arc::default(),
        };
        Ok((session, expires_at))
    }

    /// The agent user is at Snowflake's PAT limit (`limit_error`): free a
    /// slot and run `statement` (the ADD) once more. First the tokens no
    /// session can use are removed (`previous`, expired ones, ones Snowflake
    /// lists as not `ACTIVE`); if that freed nothing, or the retry still hits
    /// the limit, the least recently used idle session of another user is
    /// evicted and the ADD is retried once more. Returns the last ADD's
    /// outcome (still a limit error when every slot is in use).
    async fn mint_at_limit(
        &self,
        ctx: &CallContext,
        previous: Option<PatSession>,
        account: &str,
        base_url: &str,
        statement: &str,
        limit_error: SqlApiError,
    ) -> Result<crate::result::ResultSet, SqlApiError> {
        tracing::warn!(user = %ctx.user, "Snowflake's PAT limit for the agent user was reached; removing stale tokens");
        let mut freed = 0usize;
        if let Some(prev) = previous {
            freed += usize::from(
                self.remove_token(ctx, &prev.account, &prev.base_url, &prev.token_name)
                    .await,
            );
        }
        freed += self.remove_expired_created(ctx).await;
        freed += self.remove_dead_listed(ctx, account, base_url).await;
        let outcome = if freed > 0 {
            self.run_jwt(ctx, account, base_url, statement).await
        } else {
            Err(limit_error)
        };
        let limit_error = match outcome {
            Err(e) if is_token_limit(&e) => e,
            other => return other,
        };
        let Some((evicted_user, evicted)) = self
            .cache
            .evict_idle_lru(&ctx.user, |s| s.holds_a_slot_of(account, base_url))
        else {
            return Err(limit_error);
        };
        tracing::info!(user = %ctx.user, evicted_user = %evicted_user, token = %evicted.token_name, "PAT limit reached: evicting the least recently used idle Snowflake session of another user");
        self.cache
            .forget_shared(&evicted_user, &|s: &PatSession| {
                s.token_name == evicted.token_name
            })
            .await;
        self.remove_token(
            ctx,
            &evicted.account,
            &evicted.base_url,
            &evicted.token_name,
        )
        .await;
        self.immuta.drop_roles_in_background(
            &evicted.vend_id,
            &evicted_user,
            "Snowflake session evicted at the PAT limit",
        );
        self.run_jwt(ctx, account, base_url, statement).await
    }

    /// Time left of `user`'s back-off after a capacity failure, if any.
    fn capacity_backoff_left(&self, user: &str) -> Option<Duration> {
        let until = *self
            .capacity_backoff
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(user)?;
        until
            .checked_duration_since(Instant::now())
            .filter(|left| !left.is_zero())
    }

    /// The error of a call that found every PAT slot of this agent user in
    /// use, with how many agents the current demand would need: the users
    /// holding this agent's PATs plus those refused within the back-off, over
    /// the PATs one agent holds, times the pool (users spread evenly).
    fn capacity_error(&self, retry_in: Duration) -> QueryError {
        let now = SystemTime::now();
        let held = self
            .created
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .iter()
            .filter(|t| t.usable_at(now))
            .count()
            .max(1);
        let instant = Instant::now();
        let refused = self
            .capacity_backoff
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .values()
            .filter(|until| **until > instant)
            .count();
        let pool = self.settings.pool_size.max(1);
        capacity_error(retry_in, pool, held, agents_needed(pool, held, refused))
    }

    /// Remember that `user`'s mint failed for lack of capacity.
    fn note_capacity_reached(&self, user: &str) {
        let now = Instant::now();
        let mut backoff = self
            .capacity_backoff
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        backoff.retain(|_, until| *until > now);
        backoff.insert(user.to_string(), now + self.settings.capacity_backoff);
    }

    /// Run a token-management statement under the agent's JWT.
    pub(crate) async fn run_jwt(
        &self,
        ctx: &CallContext,
        account: &str,
        base_url: &str,
        statement: &str,
    ) -> Result<crate::result::ResultSet, SqlApiError> {
        self.ops().run_jwt(ctx, account, base_url, statement).await
    }

    /// What a background removal needs (cheap clones).
    fn ops(&self) -> TokenOps {
        TokenOps {
            jwt: self.jwt.clone(),
            api: self.api.clone(),
            statement_timeout_secs: self.settings.statement_timeout_secs,
            created: self.created.clone(),
        }
    }

    /// Remove the token `name` at `at` (when its vend ends) unless it is
    /// gone by then; stopped when the manager is dropped.
    fn schedule_removal(&self, account: &str, base_url: &str, name: &str, at: SystemTime) {
        let ops = self.ops();
        let stop = self.removals.clone();
        let (account, base_url, name) =
            (account.to_string(), base_url.to_string(), name.to_string());
        let wait = at
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO);
        tracing::debug!(token = %name, in_secs = wait.as_secs(), "scheduled the removal of a Snowflake PAT at its vend's expiry");
        tokio::spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.cancelled() => return,
            }
            let still_ours = ops
                .created
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .iter()
                .any(|t| t.name == name);
            if still_ours {
                tracing::info!(token = %name, "the vended role of a DAYS_TO_EXPIRY PAT expired; removing the PAT");
                let ctx = CallContext::new("immuta-mcp", "pat-expiry");
                ops.remove_token(&ctx, &account, &base_url, &name).await;
            }
        });
    }

    /// Run `SHOW USER PROGRAMMATIC ACCESS TOKENS` under the JWT (connectivity check).
    pub async fn show_tokens(
        &self,
        ctx: &CallContext,
        account: &str,
        base_url: &str,
    ) -> Result<crate::result::ResultSet, QueryError> {
        self.run_jwt(
            ctx,
            account,
            base_url,
            "SHOW USER PROGRAMMATIC ACCESS TOKENS",
        )
        .await
        .map_err(|e| self.credential_error(account, "list the agent's PATs", e))
    }

    fn credential_error(&self, account: &str, what: &str, e: SqlApiError) -> QueryError {
        match e {
            ref err if err.is_jwt_expired() => QueryError::Credential(format!(
                "Snowflake refused the agent's key-pair JWT for {} as expired while trying to {what} ({e}), also after it was signed afresh; this is a clock matter, not configuration: check that this host's clock is right (NTP), since the JWT's iat and exp come from it",
                self.jwt.subject(account)
            )),
            ref err if err.is_unauthorized() => QueryError::Credential(format!(
                "Snowflake rejected the agent's key-pair JWT for {} while trying to {what} ({e}); check snowflake.user, snowflake.account and that the public key with fingerprint {} is set on the agent user",
                self.jwt.subject(account),
                self.jwt.fingerprint()
            )),
            SqlApiError::Unavailable { .. } | SqlApiError::Timeout { .. } => e.into(),
            SqlApiError::Cancelled { .. } => e.into(),
            other => QueryError::Credential(format!("could not {what}: {other}")),
        }
    }

    /// `ALTER USER REMOVE PROGRAMMATIC ACCESS TOKEN <name>`, best effort,
    /// logged without secrets. True when a token was removed (a slot freed).
    async fn remove_token(
        &self,
        ctx: &CallContext,
        account: &str,
        base_url: &str,
        name: &str,
    ) -> bool {
        self.ops().remove_token(ctx, account, base_url, name).await
    }

    /// A token a session may reuse must still be usable at this time: the cache
    /// stops using a session `margin` before it expires.
    fn reuse_horizon(&self) -> SystemTime {
        SystemTime::now() + self.settings.margin
    }

    /// Remove the tokens this process created that are no longer usable:
    /// expired, or so close to expiry that the cache would not reuse them.
    /// Returns how many were removed.
    async fn remove_expired_created(&self, ctx: &CallContext) -> usize {
        let now = self.reuse_horizon();
        let expired: Vec<CreatedToken> = self
            .created
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .iter()
            .filter(|t| !t.usable_at(now))
            .cloned()
            .collect();
        let mut removed = 0;
        for t in expired {
            removed += usize::from(
                self.remove_token(ctx, &t.account, &t.base_url, &t.name)
                    .await,
            );
        }
        removed
    }

    /// List the agent user's tokens on `account` and remove the ones of our
    /// naming scheme that Snowflake no longer accepts (e.g. expired upstream
    /// before their local expiry). Tokens this process still holds for a
    /// session are kept unless Snowflake reports them as not `ACTIVE`.
    /// Returns how many were removed.
    async fn remove_dead_listed(&self, ctx: &CallContext, account: &str, base_url: &str) -> usize {
        let listed = match self.show_tokens(ctx, account, base_url).await {
            Ok(listed) => listed,
            Err(e) => {
                tracing::warn!(error = %e, "could not list the agent user's PATs to find dead ones");
                return 0;
            }
        };
        let reuse_horizon = self.reuse_horizon();
        let held: Vec<String> = self
            .created
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .iter()
            .filter(|t| t.usable_at(reuse_horizon))
            .map(|t| t.name.clone())
            .collect();
        let dead = dead_tokens(&listed, SystemTime::now(), |name| {
            held.iter().any(|h| h.eq_ignore_ascii_case(name))
        });
        let mut removed = 0;
        for name in dead {
            tracing::info!(token = %name, "removing a Snowflake PAT that is no longer active");
            removed += usize::from(self.remove_token(ctx, account, base_url, &name).await);
        }
        removed
    }
}

impl Drop for PatManager {
    fn drop(&mut self) {
        self.removals.cancel();
    }
}

/// How many agents the current demand needs: `pool` agents hold `held` PATs each (at least 1)
/// and `refused` more users asked within the back-off, spread evenly. The call that asks was
/// refused, so at least one user waits and the answer is always more than `pool`.
fn agents_needed(pool: usize, held: usize, refused: usize) -> usize {
    let waiting = refused.max(1);
    (pool * (held + waiting)).div_ceil(held)
}

/// How long a PAT made with `clause` lives: `ttl` minutes, or the one day of
/// `DAYS_TO_EXPIRY = 1` (then it outlives its role and is removed when the vend ends).
fn pat_lifetime(clause: PatExpiryClause, ttl_minutes: u32) -> Duration {
    match clause {
        PatExpiryClause::MinsToExpiry => Duration::from_secs(u64::from(ttl_minutes) * 60),
        PatExpiryClause::DaysToExpiry => Duration::from_secs(24 * 3600),
    }
}

/// The error of a call that found every PAT slot of the agent user in use.
fn capacity_error(retry_in: Duration, pool: usize, held: usize, needed: usize) -> QueryError {
    let secs = retry_in.as_secs() + u64::from(retry_in.subsec_nanos() > 0);
    QueryError::Credential(format!(
        "the server has reached its concurrent Snowflake user capacity: every PAT the agent user may hold (Snowflake's limit of programmatic access tokens per user; each end user's PAT is created on the agent user serving them) belongs to another user's running query. Retry shortly (in {} s or later). The server runs {pool} agent(s) holding about {held} PATs each; the users asking now would need about {needed} agents: add agents under [[agents]]",
        secs.max(1)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ImmutaAuth, ImmutaConfig, ImmutaPollId, SecretRef};
    use crate::retry::RetryPolicy;
    use std::sync::OnceLock;

    /// One agent key for the module's tests (RSA generation is slow in debug builds).
    fn agent_key_pem() -> &'static str {
        static PEM: OnceLock<String> = OnceLock::new();
        PEM.get_or_init(|| {
            use rsa::pkcs8::{EncodePrivateKey, LineEnding};
            let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap();
            key.to_pkcs8_pem(LineEnding::LF).unwrap().to_string()
        })
    }

    /// A manager that sends nothing until a statement is run.
    fn manager() -> PatManager {
        crate::http_client::install_crypto_provider();
        let http = reqwest::Client::new();
        let immuta = ImmutaClient::new(
            &ImmutaConfig {
                url: "https://immuta.invalid".into(),
                api_key: SecretRef::Value("test-api-key".into()),
                ttl_minutes: 60,
                pending_timeout_secs: 30,
                drop_unused_vends: false,
                auth: ImmutaAuth::Auto,
                poll_id: ImmutaPollId::default(),
                agent_id: None,
            },
            http.clone(),
            RetryPolicy::default(),
        )
        .unwrap();
        let key =
            crate::snowflake::keypair::AgentKey::from_pem(&Secret::new(agent_key_pem()), None)
                .unwrap();
        PatManager::new(
            immuta,
            KeyPairJwt::new(key, "immuta_agent"),
            StatementsClient::new(http, RetryPolicy::default()),
            PatSettings {
                expiry_clause: PatExpiryClause::MinsToExpiry,
                account: None,
                base_url: None,
                statement_timeout_secs: 30,
                margin: Duration::from_secs(60),
                capacity_backoff: DEFAULT_CAPACITY_BACKOFF,
                pool_size: 1,
            },
        )
    }

    fn created(name: &str, base_url: &str, expires_at: SystemTime) -> CreatedToken {
        CreatedToken {
            user: format!("{name}@example.com"),
            account: "acme".into(),
            base_url: base_url.into(),
            name: name.into(),
            expires_at,
        }
    }

    fn session() -> PatSession {
        PatSession {
            vend_id: "vend-1".into(),
            role: "IMMUTA_OBO_1".into(),
            account: "acme".into(),
            base_url: "https://acme.snowflakecomputing.com".into(),
            token_name: "IMMUTA_MCP_AB_1".into(),
            pat: Secret::new("pat-secret"),
            expires_at: std::time::UNIX_EPOCH + Duration::from_millis(1_800_000_123_456),
            applied_identity: Arc::default(),
        }
    }

    #[test]
    fn a_session_read_back_from_the_shared_cache_is_the_one_written() {
        use crate::shared::Shareable;
        let original = session();
        let _ = original
            .applied_identity
            .set("role=IMMUTA_OBO_1 user=X".into());
        let shared = original.to_shared();
        let back = PatSession::from_shared(shared.clone()).expect("read back");
        assert_eq!(back.vend_id, original.vend_id);
        assert_eq!(back.role, original.role);
        assert_eq!(back.account, original.account);
        assert_eq!(back.base_url, original.base_url);
        assert_eq!(back.token_name, original.token_name);
        assert_eq!(back.pat.expose(), "pat-secret");
        assert_eq!(back.expires_at, original.expires_at, "to the millisecond");
        assert!(
            back.applied_identity.get().is_none(),
            "each replica asks Snowflake itself"
        );
        // An entry without a usable PAT, or missing a field, is no session.
        let mut empty = shared.clone();
        empty["pat"] = serde_json::json!("");
        assert!(PatSession::from_shared(empty).is_none());
        let mut partial = shared;
        partial.as_object_mut().unwrap().remove("expires_at_ms");
        assert!(PatSession::from_shared(partial).is_none());
    }

    #[test]
    fn a_pat_lives_its_ttl_in_minutes_or_one_day() {
        assert_eq!(
            pat_lifetime(PatExpiryClause::MinsToExpiry, 90),
            Duration::from_secs(5400)
        );
        assert_eq!(
            pat_lifetime(PatExpiryClause::DaysToExpiry, 90),
            Duration::from_secs(86_400)
        );
    }

    #[test]
    fn only_a_session_on_the_same_account_and_url_frees_a_slot_there() {
        let s = session();
        assert!(s.holds_a_slot_of("acme", "https://acme.snowflakecomputing.com"));
        assert!(!s.holds_a_slot_of("other", "https://acme.snowflakecomputing.com"));
        assert!(!s.holds_a_slot_of("acme", "https://proxy.example.com"));
    }

    #[test]
    fn the_capacity_error_counts_only_live_pats_and_live_back_offs() {
        let mut m = manager();
        m.set_pool_size(3);
        let now = SystemTime::now();
        let hour = Duration::from_secs(3600);
        m.created.lock().unwrap().extend([
            created("LIVE1", "https://a", now + hour),
            created("LIVE2", "https://a", now + hour),
            created("GONE1", "https://a", now - hour),
            created("GONE2", "https://a", now - hour),
            created("GONE3", "https://a", now - hour),
        ]);
        let instant = Instant::now();
        m.capacity_backoff.lock().unwrap().extend([
            ("waiting@example.com".to_string(), instant + hour),
            ("waiting-too@example.com".to_string(), instant + hour),
            (
                "gone@example.com".to_string(),
                instant
                    .checked_sub(Duration::from_secs(1))
                    .unwrap_or(instant),
            ),
        ]);
        let msg = m.capacity_error(Duration::from_millis(1500)).to_string();
        // 2 live PATs per agent, 2 users waiting: 3 × (2 + 2) / 2.
        assert!(
            msg.contains("runs 3 agent(s) holding about 2 PATs each")
                && msg.contains("would need about 6 agents")
                && msg.contains("in 2 s or later"),
            "{msg}"
        );
        m.set_pool_size(0);
        let msg = m.capacity_error(Duration::from_secs(1)).to_string();
        assert!(
            msg.contains("runs 1 agent(s)") && msg.contains("in 1 s or later"),
            "at least one agent; whole seconds are not rounded up: {msg}"
        );
    }

    #[test]
    fn a_capacity_failure_holds_the_user_off_for_the_configured_back_off() {
        let mut m = manager();
        assert_eq!(m.capacity_backoff_left("a@example.com"), None);
        m.set_capacity_backoff(Duration::from_secs(600));
        m.note_capacity_reached("a@example.com");
        let left = m
            .capacity_backoff_left("a@example.com")
            .expect("backing off");
        assert!(left > Duration::from_secs(590), "{left:?}");
        assert_eq!(
            m.capacity_backoff_left("b@example.com"),
            None,
            "only that user"
        );
    }

    /// A loopback port standing in for the SQL API: reports each connection made to it.
    async fn sql_api_stand_in() -> (String, tokio::sync::mpsc::UnboundedReceiver<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                let _ = tx.send(());
                drop(conn);
            }
        });
        (url, rx)
    }

    #[tokio::test]
    async fn a_scheduled_removal_runs_when_the_vend_ends_unless_the_manager_is_gone() {
        let at = SystemTime::now() + Duration::from_millis(300);
        let (kept_url, mut kept_conns) = sql_api_stand_in().await;
        let kept = manager();
        kept.created.lock().unwrap().extend([
            created("OTHER", &kept_url, at),
            created("KEPT", &kept_url, at),
        ]);
        kept.schedule_removal("acme", &kept_url, "KEPT", at);
        // Another token's removal is not this one's: it is removed only while still ours.
        let (gone_url, mut gone_conns) = sql_api_stand_in().await;
        kept.created
            .lock()
            .unwrap()
            .push(created("REMOVED", &gone_url, at));
        kept.schedule_removal("acme", &gone_url, "REMOVED", at);
        kept.created.lock().unwrap().retain(|t| t.name != "REMOVED");
        let (dropped_url, mut dropped_conns) = sql_api_stand_in().await;
        let dropped = manager();
        dropped
            .created
            .lock()
            .unwrap()
            .push(created("DROPPED", &dropped_url, at));
        dropped.schedule_removal("acme", &dropped_url, "DROPPED", at);
        drop(dropped);

        tokio::time::timeout(Duration::from_secs(30), kept_conns.recv())
            .await
            .expect("the removal is sent when the vend ends")
            .expect("the stand-in runs");
        // The other removals were due at the same moment.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            gone_conns.try_recv().is_err(),
            "a forgotten token is not removed"
        );
        assert!(
            dropped_conns.try_recv().is_err(),
            "no removal after the manager is dropped"
        );
    }

    #[test]
    fn the_manager_reports_its_settings_client_and_margin_but_no_key() {
        let mut m = manager();
        assert_eq!(m.margin(), Duration::from_secs(60));
        let api = m
            .api()
            .clone()
            .with_polling(Duration::from_millis(7), Duration::from_millis(9));
        m.set_api(api);
        assert!(
            format!("{:?}", m.api()).contains("poll_initial: 7ms"),
            "{:?}",
            m.api()
        );
        let shown = format!("{m:?}");
        assert!(
            shown.starts_with("PatManager")
                && shown.contains("IMMUTA_AGENT")
                && shown.contains(m.jwt().fingerprint())
                && shown.contains("statement_timeout_secs: 30"),
            "{shown}"
        );
        assert!(
            !shown.contains("PRIVATE KEY") && !shown.contains("test-api-key"),
            "{shown}"
        );
    }

    #[test]
    fn the_agents_needed_cover_the_users_held_and_refused() {
        // One agent full with 15 users, 4 more refused: 19 users need 2 agents.
        assert_eq!(agents_needed(1, 15, 4), 2);
        // 16 more refused: 31 users need 3 agents of 15.
        assert_eq!(agents_needed(1, 15, 16), 3);
        // Two agents of 15 each, 20 refused (spread evenly): 2 × 35 / 15, rounded up.
        assert_eq!(agents_needed(2, 15, 20), 5);
        // The asking call itself waits: at least one agent more than now.
        assert_eq!(agents_needed(3, 15, 0), 4);
        assert_eq!(agents_needed(1, 1, 0), 2);
    }
}
