//! Snowflake governed path: every user statement runs as the end user's
//! Immuta-vended role, through a PAT restricted to that role.
//!
//! The same roles as on the Databricks path, in files of the same names:
//! - [`wire`]: the SQL API v2 request and answer shapes;
//! - [`statements`]: the SQL API v2 client (submit with retry, 202 polling,
//!   cancel, partitions);
//! - [`decode`]: `jsonv2` values into the shared [`ResultSet`];
//! - [`errors`]: [`SnowflakeError`] (setup, `check`) and [`SqlApiError`]
//!   (one SQL API exchange);
//! - [`pat`]: the credential: per-user PAT lifecycle (vend, mint, cache,
//!   replace, remove, evict idle sessions at the agent user's PAT limit);
//! - [`keypair`]: the agent's key-pair JWT (only used to manage PATs);
//! - [`host`]: the account host from the vend's `connectionKey`, validated;
//! - [`ident`]: `database`/`schema`/`warehouse` resolved as Snowflake
//!   resolves identifiers (the SQL API's fields are case-sensitive).
//!
//! [`SnowflakeGoverned`] ties them together behind [`GovernedQuery`]. User
//! SQL never runs under the agent's own identity. If the PAT is rejected when
//! the statement is submitted (nothing ran), the path re-vends, re-mints and
//! submits once more; if it is rejected after Snowflake accepted the
//! statement (while polling or fetching partitions), the statement may have
//! run, so the PAT is discarded and the call fails with a credential error
//! naming the statement instead of running it twice.
//!
//! `fetch_more` pages ([`GovernedQuery::fetch_page`]) are read from the
//! finished statement's partitions with the user's cached PAT, only if it is
//! still the one the statement ran under: no vend, no mint, no resubmit; a
//! refused PAT is discarded and the page fails with "run the query again".

pub mod decode;
pub mod errors;
pub mod host;
pub mod ident;
pub mod keypair;
pub mod pat;
pub mod statements;
pub mod wire;

pub use errors::{SnowflakeError, SqlApiError};

use crate::config::{Limits, SnowflakeConfig};
use crate::cursor::credential_fingerprint;
use crate::immuta::client::ImmutaClient;
use crate::metrics::{Metrics, Service, UpstreamObserver};
use crate::query::{
    CallContext, CredentialBinding, GovernedQuery, PageRequest, QueryError, QueryRequest,
};
use crate::result::{Platform, ResultSet};
use crate::retry::RetryPolicy;
use keypair::{AgentKey, KeyPairJwt};
use pat::{PatManager, PatSession, PatSettings};
use statements::{Auth, FetchLimits, StatementsClient};
use std::time::Duration;
use wire::StatementRequest;

/// The production Snowflake path behind `query_snowflake`.
pub struct SnowflakeGoverned {
    pats: PatManager,
    api: StatementsClient,
    statement_timeout_secs: u64,
    default_database: Option<String>,
    default_schema: Option<String>,
    default_warehouse: Option<String>,
    account: Option<String>,
    base_url: Option<String>,
    verify_identity: bool,
    /// The agent identity shared cache entries are keyed by.
    agent: String,
}

/// Asked once per PAT before its first user statement (see
/// [`SnowflakeGoverned::applied_identity`]). Snowflake's context functions:
/// `CURRENT_ROLE()` is the session's primary role (for a PAT with
/// `ROLE_RESTRICTION`, that role), `CURRENT_USER()` the user the PAT belongs
/// to (the agent).
const IDENTITY_PROBE: &str = "SELECT CURRENT_ROLE() AS ROLE, CURRENT_USER() AS USER_NAME";

impl std::fmt::Debug for SnowflakeGoverned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnowflakeGoverned")
            .field("pats", &self.pats)
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl SnowflakeGoverned {
    /// Load the agent key and prepare the path; nothing is sent yet.
    pub fn new(
        cfg: &SnowflakeConfig,
        immuta: ImmutaClient,
        limits: &Limits,
        http: reqwest::Client,
    ) -> Result<Self, SnowflakeError> {
        if cfg.user.trim().is_empty() {
            return Err(SnowflakeError::Config(
                "snowflake.user must name the agent user".into(),
            ));
        }
        let pem = cfg
            .private_key
            .resolve("snowflake.private_key")
            .map_err(|e| SnowflakeError::Config(e.to_string()))?;
        let passphrase = cfg
            .private_key_passphrase
            .as_ref()
            .map(|p| p.resolve("snowflake.private_key_passphrase"))
            .transpose()
            .map_err(|e| SnowflakeError::Config(e.to_string()))?;
        let key = AgentKey::from_pem(&pem, passphrase.as_ref())?;
        let jwt = KeyPairJwt::new(key, &cfg.user);
        let retry = limits.retry_policy();
        let api = StatementsClient::new(http, retry);
        let default = |field: &'static str, value: &Option<String>| {
            ident::resolve_opt(field, value.as_deref())
                .map_err(|e| SnowflakeError::Config(format!("snowflake.default_{e}")))
        };
        let default_database = default("database", &cfg.default_database)?;
        let default_schema = default("schema", &cfg.default_schema)?;
        let default_warehouse = default("warehouse", &cfg.default_warehouse)?;
        let timeout = cfg.statement_timeout_secs.max(1);
        let settings = PatSettings {
            expiry_clause: cfg.pat_expiry_clause,
            account: cfg.account.clone().filter(|a| !a.trim().is_empty()),
            base_url: cfg.base_url.clone(),
            statement_timeout_secs: timeout.min(120),
            margin: limits.credential_margin(),
            capacity_backoff: pat::DEFAULT_CAPACITY_BACKOFF,
            pool_size: 1,
        };
        Ok(Self {
            pats: PatManager::new(immuta, jwt, api.clone(), settings),
            api,
            statement_timeout_secs: timeout,
            default_database,
            default_schema,
            default_warehouse,
            account: cfg.account.clone().filter(|a| !a.trim().is_empty()),
            base_url: cfg.base_url.clone(),
            verify_identity: cfg.verify_identity,
            agent: format!(
                "{}@{}",
                cfg.user.to_ascii_uppercase(),
                cfg.account.clone().unwrap_or_default().to_ascii_uppercase()
            ),
        })
    }

    /// Which role and user Snowflake applies to `session`'s PAT, asked once
    /// per PAT: a misconfigured on-behalf-of setup can run statements as
    /// another role and still answer 200, so the answer must be the vended
    /// role before any user SQL runs (fail closed otherwise).
    async fn applied_identity(
        &self,
        ctx: &CallContext,
        session: &PatSession,
        warehouse: &Option<String>,
    ) -> Result<String, QueryError> {
        session
            .applied_identity
            .get_or_try_init(|| async {
                let probe = StatementRequest {
                    statement: IDENTITY_PROBE.into(),
                    timeout_secs: self.statement_timeout_secs.min(60),
                    database: None,
                    schema: None,
                    warehouse: warehouse.clone(),
                    role: Some(session.role.clone()),
                    query_tag: Some(Self::query_tag(ctx)),
                };
                let limits = FetchLimits {
                    max_rows: 1,
                    max_bytes: 64 * 1024,
                };
                let auth = Auth::Pat(session.pat.clone());
                let rs = self
                    .api
                    .run(ctx, &session.base_url, &auth, &probe, limits)
                    .await?;
                let cell = |i: usize| {
                    rs.rows
                        .first()
                        .and_then(|row| row.get(i))
                        .and_then(|v| v.as_str())
                        .unwrap_or("")
                        .to_string()
                };
                let (role, user) = (cell(0), cell(1));
                if role != session.role {
                    tracing::error!(user = ?ctx.user, vended_role = %session.role, applied_role = %role, "Snowflake does not apply the vended role to the PAT; no SQL runs");
                    return Err(QueryError::IdentityMismatch(format!(
                        "Snowflake runs this user's PAT as role {role:?} (user {user:?}), not as the vended role {}: \
                         the PAT's ROLE_RESTRICTION is not in force, so no SQL was run. Check the agent user's \
                         role grants and that Snowflake enforces ROLE_RESTRICTION for programmatic access tokens",
                        session.role
                    )));
                }
                Ok(format!("role={role} user={user}"))
            })
            .await
            .cloned()
    }

    /// Share vended roles and PATs with the other replicas through `store`
    /// (`[cache] backend = "redis"`), keyed by this agent user and each end user.
    pub fn with_shared_cache(mut self, store: std::sync::Arc<crate::shared::SharedStore>) -> Self {
        let agent = self.agent.clone();
        self.pats.share_through(store, &agent);
        self
    }

    /// This agent is one of `agents` in a pool (the capacity error says how
    /// many agents the load would need).
    pub fn with_pool_size(mut self, agents: usize) -> Self {
        self.pats.set_pool_size(agents);
        self
    }

    /// Use `retry` for SQL API requests, the PAT statements included
    /// (default: `limits.retry_attempts` attempts; tests use short backoffs).
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.api.set_retry(retry);
        self.pats.set_api(self.api.clone());
        self
    }

    /// Pause between status polls: starts at `initial`, grows by half up to `max`.
    pub fn with_polling(mut self, initial: Duration, max: Duration) -> Self {
        self.api = self.api.clone().with_polling(initial, max);
        self.pats.set_api(self.api.clone());
        self
    }

    /// Change how long a user's calls fail at once after the agent user's
    /// PAT slots were all in use (default [`pat::DEFAULT_CAPACITY_BACKOFF`]).
    pub fn with_capacity_backoff(mut self, backoff: Duration) -> Self {
        self.pats.set_capacity_backoff(backoff);
        self
    }

    /// The agent key's registered fingerprint (`SHA256:...`).
    pub fn fingerprint(&self) -> &str {
        self.pats.jwt().fingerprint()
    }

    /// The PAT expiry clause the next mint uses (the configured one, or
    /// `DAYS_TO_EXPIRY` after Snowflake refused `MINS_TO_EXPIRY`).
    pub fn pat_expiry_clause(&self) -> crate::config::PatExpiryClause {
        self.pats.expiry_clause()
    }

    /// The account and SQL API base URL `check` talks to (from `snowflake.account`).
    fn check_target(&self) -> Result<(String, String), SnowflakeError> {
        let account = self.account.clone().ok_or_else(|| {
            SnowflakeError::Check(format!(
                "key loaded (fingerprint {}), but snowflake.account is not set, so the connection cannot be checked without vending a role; set snowflake.account to the account locator",
                self.fingerprint()
            ))
        })?;
        let host = host::AccountHost::for_account(&account)
            .map_err(|e| SnowflakeError::Check(format!("snowflake.account {account:?}: {e}")))?;
        let base_url = self.pats.base_url_for(&host);
        Ok((account, base_url))
    }

    /// Run one statement under the agent's key-pair JWT (the doctor's `DESC USER`,
    /// `SHOW GRANTS`); the outer error is a configuration problem, the inner one Snowflake's answer.
    pub async fn run_as_agent(
        &self,
        statement: &str,
    ) -> Result<Result<ResultSet, SqlApiError>, SnowflakeError> {
        let (account, base_url) = self.check_target()?;
        let ctx = CallContext::new("immuta-mcp check", "check");
        Ok(self
            .pats
            .run_jwt(&ctx, &account, &base_url, statement)
            .await)
    }

    /// The agent user (upper-cased) and its key's public half (base64 DER).
    pub fn agent_key(&self) -> (&str, &str) {
        let jwt = self.pats.jwt();
        (jwt.user(), jwt.public_key_base64())
    }

    /// The configured default warehouse, resolved as Snowflake resolves identifiers.
    pub fn default_warehouse(&self) -> Option<&str> {
        self.default_warehouse.as_deref()
    }

    /// Prove the agent can authenticate: sign a key-pair JWT and run the
    /// harmless `SHOW USER PROGRAMMATIC ACCESS TOKENS` with it.
    pub async fn check(&self) -> Result<String, SnowflakeError> {
        let (account, base_url) = self.check_target()?;
        let ctx = CallContext::new("immuta-mcp check", "check");
        let tokens = self
            .pats
            .show_tokens(&ctx, &account, &base_url)
            .await
            .map_err(|e| SnowflakeError::Check(e.to_string()))?;
        Ok(format!(
            "Snowflake at {base_url}: key-pair JWT accepted for {} (key {}); the agent user holds {} programmatic access token(s)",
            self.pats.jwt().subject(&account),
            self.fingerprint(),
            tokens.row_count
        ))
    }

    /// Count this path's upstream requests, credential lookups and live PATs in `metrics`.
    pub fn with_metrics(mut self, metrics: &Metrics, agent: &str) -> Self {
        let observer = UpstreamObserver {
            metrics: metrics.clone(),
            service: Service::Snowflake,
        };
        let retry = self.api.retry().clone().observed(Some(observer));
        self = self.with_retry(retry);
        self.pats.observe(metrics, agent);
        self
    }

    /// The SQL API statements URL, when the account host is known from the
    /// configuration (`snowflake.base_url` or `snowflake.account`).
    pub fn statements_url(&self) -> Option<String> {
        let base = match (&self.base_url, &self.account) {
            (Some(base), _) => base.trim_end_matches('/').to_string(),
            (None, Some(account)) => self
                .pats
                .base_url_for(&host::AccountHost::for_account(account).ok()?),
            (None, None) => return None,
        };
        Some(format!("{base}{}", wire::STATEMENTS_PATH))
    }

    /// Remove every PAT this process created (on shutdown), best effort.
    pub async fn shutdown(&self) {
        self.pats.remove_all().await;
    }

    /// On a graceful shutdown: remove the PATs this process created that no
    /// other replica shares; returns how many were removed.
    pub async fn remove_unshared_pats(&self) -> usize {
        self.pats.remove_unshared().await
    }

    /// What a continuation cursor binds of `session`: its PAT (by token name) and
    /// the time the cache stops using it.
    fn binding(&self, session: &pat::PatSession) -> CredentialBinding {
        CredentialBinding {
            fingerprint: credential_fingerprint(&session.token_name),
            usable_until: session
                .expires_at
                .checked_sub(self.pats.margin())
                .unwrap_or(std::time::UNIX_EPOCH),
        }
    }

    fn query_tag(ctx: &CallContext) -> String {
        let user: String = ctx.user.chars().take(512).collect();
        serde_json::json!({ "app": "immuta-mcp", "end_user": user, "tool": ctx.tool }).to_string()
    }
}

#[async_trait::async_trait]
impl GovernedQuery for SnowflakeGoverned {
    fn platform(&self) -> Platform {
        Platform::Snowflake
    }

    async fn query(
        &self,
        ctx: &CallContext,
        request: &QueryRequest,
    ) -> Result<ResultSet, QueryError> {
        if ctx.cancel.is_cancelled() {
            return Err(QueryError::Cancelled {
                platform: Platform::Snowflake,
                statement_id: None,
                cancel_confirmed: true,
            });
        }
        let limits = FetchLimits {
            max_rows: request.max_rows,
            max_bytes: request.max_bytes,
        };
        // The SQL API's context fields are case-sensitive: resolve the
        // tool's names as SQL would (`sales` → `SALES`, `"Sales"` → `Sales`).
        let resolve =
            |field: &'static str, given: &Option<String>, default: &Option<String>| match given {
                Some(v) => ident::resolve(field, v).map(Some).map_err(invalid_context),
                None => Ok(default.clone()),
            };
        let database = resolve("database", &request.database, &self.default_database)?;
        let schema = resolve("schema", &request.schema, &self.default_schema)?;
        let warehouse = resolve("warehouse", &request.warehouse, &self.default_warehouse)?;
        let mut reminted = false;
        loop {
            // A lease: while this call uses the session (submit, poll, fetch),
            // it is never evicted to make room for another user's PAT.
            let session = self.pats.session(ctx).await?;
            ctx.set_vended_role(&session.role);
            ctx.set_credential(self.binding(&session));
            // The mint is shared and runs to completion even when this call is
            // cancelled; a call cancelled meanwhile must not send its SQL.
            if ctx.cancel.is_cancelled() {
                return Err(QueryError::Cancelled {
                    platform: Platform::Snowflake,
                    statement_id: None,
                    cancel_confirmed: true,
                });
            }
            if self.verify_identity {
                match self.applied_identity(ctx, &session, &warehouse).await {
                    Ok(applied) => ctx.set_applied_identity(&applied),
                    Err(e @ QueryError::IdentityMismatch(_)) => {
                        // The PAT is not what it must be: never use it again.
                        self.pats.reject(ctx, &session).await;
                        return Err(e);
                    }
                    Err(e) => return Err(e),
                }
            }
            let statement = StatementRequest {
                statement: request.sql.clone(),
                timeout_secs: self.statement_timeout_secs,
                database: database.clone(),
                schema: schema.clone(),
                warehouse: warehouse.clone(),
                role: Some(session.role.clone()),
                query_tag: Some(Self::query_tag(ctx)),
            };
            let auth = Auth::Pat(session.pat.clone());
            match self
                .api
                .run(ctx, &session.base_url, &auth, &statement, limits)
                .await
            {
                Ok(result) => return Ok(result),
                Err(SqlApiError::RejectedAfterAcceptance {
                    statement_handle,
                    rejection,
                }) => {
                    tracing::info!(user = %ctx.user, role = %session.role, statement = %statement_handle, error = %rejection, "PAT rejected after Snowflake accepted the statement; not submitting it again");
                    self.pats.reject(ctx, &session).await;
                    return Err(QueryError::Credential(format!(
                        "Snowflake rejected the PAT for the vended role {} while statement {statement_handle} was running ({rejection}); the statement was not submitted again because it may already have run. The PAT was discarded, so calling again uses a freshly vended role",
                        session.role
                    )));
                }
                Err(e) if e.is_credential_rejected() && !reminted => {
                    tracing::info!(user = %ctx.user, role = %session.role, error = %e, "PAT rejected; vending and minting once more");
                    self.pats.reject(ctx, &session).await;
                    reminted = true;
                }
                Err(e) if e.is_credential_rejected() => {
                    return Err(QueryError::Credential(format!(
                        "Snowflake rejected a freshly minted PAT for the vended role {}: {e}",
                        session.role
                    )));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    async fn prewarm(&self, ctx: &CallContext) -> Result<(), QueryError> {
        let session = self.pats.session(ctx).await?;
        if self.verify_identity {
            // The identity probe too, so the first query runs as fast as a warm one.
            let warehouse = self.default_warehouse.clone();
            if let Err(e @ QueryError::IdentityMismatch(_)) =
                self.applied_identity(ctx, &session, &warehouse).await
            {
                self.pats.reject(ctx, &session).await;
                return Err(e);
            }
        }
        Ok(())
    }

    async fn fetch_page(
        &self,
        ctx: &CallContext,
        page: &PageRequest,
    ) -> Result<ResultSet, QueryError> {
        let handle = &page.statement_id;
        // Only the PAT the statement ran under, still cached for this user: no
        // vend and no mint for a page, and never another user's or the agent's credential.
        let session = match self.pats.existing_session(&ctx.user).await {
            Some(s) if credential_fingerprint(&s.token_name) == page.credential => s,
            _ => {
                return Err(QueryError::ContinuationRefused(format!(
                    "the Snowflake credential statement {handle} ran under has expired or was replaced, so the rest of its result cannot be read; run the query again"
                )));
            }
        };
        ctx.set_vended_role(&session.role);
        ctx.set_statement_id(handle);
        ctx.set_credential(self.binding(&session));
        let limits = FetchLimits {
            max_rows: page.max_rows,
            max_bytes: page.max_bytes,
        };
        let auth = Auth::Pat(session.pat.clone());
        match self
            .api
            .fetch_page(ctx, &session.base_url, &auth, handle, page.position, limits)
            .await
        {
            Ok(result) => Ok(result),
            Err(e) if e.is_credential_rejected() => {
                tracing::info!(user = %ctx.user, role = %session.role, statement = %handle, error = %e, "PAT rejected while reading a result page");
                self.pats.reject(ctx, &session).await;
                Err(QueryError::ContinuationRefused(format!(
                    "Snowflake no longer accepts the credential statement {handle} ran under ({e}); run the query again"
                )))
            }
            Err(SqlApiError::NotFound { message }) => {
                Err(QueryError::ContinuationRefused(format!(
                    "Snowflake no longer holds the result of statement {handle} ({message}); run the query again"
                )))
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// A context name the tool call gave that Snowflake could not resolve
/// (nothing was sent).
fn invalid_context(e: ident::IdentError) -> QueryError {
    QueryError::Statement {
        platform: Platform::Snowflake,
        code: None,
        sql_state: Some("42602".into()),
        message: format!("{e}; nothing was sent to Snowflake"),
        statement_id: None,
    }
}
