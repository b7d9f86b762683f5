//! The governed Databricks path: every statement runs as the end user's
//! Immuta-vended exclusive group, never as the service principal itself.
//!
//! Per call: vend through Immuta (`roles.Databricks`: group name and id), get
//! an OAuth M2M token with `assume_group=<group id>` ([`oauth`]), run the SQL
//! with the Statement Execution API ([`statements`]) and decode the
//! `JSON_ARRAY` chunks ([`decode`]). The (group, token) pair is cached per
//! user in a [`CredentialCache`] until shortly before the earlier of the token
//! and the vend expiry; concurrent cold calls share one vend and one token.
//! If Databricks rejects the token when the statement is submitted, the
//! entry is dropped and the call re-vends and retries exactly once.
//!
//! `fetch_more` pages ([`GovernedQuery::fetch_page`]) are read from the
//! finished statement's chunks with the user's cached group token, only if it
//! is still the one the statement ran under (same vend): no vend, no token
//! request, no resubmit. The submit keeps `limits.max_continuation_rows` rows
//! on the platform for them (see [`statements::row_limit`]).
//!
//! The same roles as on the Snowflake path, in files of the same names:
//! - [`wire`]: the OAuth and Statement Execution API request and answer shapes;
//! - [`statements`]: the Statement Execution API client (submit, polling,
//!   cancel, result chunks);
//! - [`decode`]: `JSON_ARRAY` values into the shared [`ResultSet`];
//! - [`errors`]: [`DatabricksError`] (setup, `check`) and [`RunError`] (one
//!   statement run);
//! - [`oauth`]: the credential: M2M tokens that assume the vended group;
//! - [`permissions`]: the warehouse's access control list (for `check`).

pub mod decode;
pub mod errors;
pub mod oauth;
pub mod permissions;
pub mod statements;
pub mod wire;

pub use errors::{DatabricksError, RunError};

use crate::broker::CredentialCache;
use crate::config::{DatabricksConfig, Limits};
use crate::cursor::credential_fingerprint;
use crate::immuta::client::ImmutaClient;
use crate::metrics::{GaugeReading, Metrics, MintTracker, Service, UpstreamObserver};
use crate::query::{
    CallContext, CredentialBinding, GovernedQuery, PageRequest, QueryError, QueryParameter,
    QueryRequest,
};
use crate::result::{Platform, ResultSet};
use crate::retry::RetryPolicy;
use crate::secret::Secret;
use oauth::{GroupId, TokenClient};
use statements::{StatementSettings, StatementsClient};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// The credential cached per user: the vended group and a token assuming it.
#[derive(Debug, Clone, PartialEq)]
struct GroupCredential {
    group_id: String,
    group_name: String,
    vend_id: String,
    access_token: Secret,
    /// The earlier of the token's and the vend's expiry.
    expires_at: SystemTime,
    /// What Databricks reported it applies to this token (`user=… group=…`),
    /// asked once per token before its first user statement.
    applied_identity: std::sync::Arc<tokio::sync::OnceCell<String>>,
}

impl crate::shared::Shareable for GroupCredential {
    const PLATFORM: &'static str = "databricks";

    fn to_shared(&self) -> serde_json::Value {
        serde_json::json!({
            "group_id": self.group_id,
            "group_name": self.group_name,
            "vend_id": self.vend_id,
            "access_token": self.access_token.expose(),
            "expires_at_ms": self.expires_at.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0),
        })
    }

    fn from_shared(value: serde_json::Value) -> Option<Self> {
        let text = |name: &str| value.get(name)?.as_str().map(str::to_string);
        Some(Self {
            group_id: text("group_id")?,
            group_name: text("group_name")?,
            vend_id: text("vend_id")?,
            access_token: Secret::new(text("access_token").filter(|t| !t.is_empty())?),
            expires_at: std::time::UNIX_EPOCH
                + Duration::from_millis(value.get("expires_at_ms")?.as_u64()?),
            // Each replica asks Databricks once itself before its first statement.
            applied_identity: Default::default(),
        })
    }
}

/// Asked once per token before its first user statement (see
/// [`DatabricksGoverned::applied_identity`]): who the token acts as, and
/// whether that identity is a member of the vended exclusive group (by name,
/// bound as a named parameter). Databricks SQL reference,
/// `is_account_group_member(group)`: "Returns true if the session (connected)
/// user is a direct or indirect member of the specified group at the account
/// level"; `current_user()` names the session user. How the private-preview
/// exclusive-group token answers it is not public: should a workspace report
/// `false` for an assumed group, `databricks.verify_identity = false` turns the
/// check off (and the error says so).
const IDENTITY_PROBE: &str =
    "SELECT current_user() AS user, is_account_group_member(:group) AS member";

/// Runs governed SQL on Databricks as the caller's vended exclusive group.
pub struct DatabricksGoverned {
    host: String,
    http: reqwest::Client,
    immuta: ImmutaClient,
    tokens: TokenClient,
    statements: StatementsClient,
    cache: CredentialCache<String, GroupCredential>,
    default_catalog: Option<String>,
    default_schema: Option<String>,
    /// Ask who each new token acts as before its first user statement.
    verify_identity: bool,
    /// Counts credential lookups, when set by [`DatabricksGoverned::with_metrics`].
    metrics: Option<Metrics>,
    /// Users whose token is being minted right now (tells `shared` from `hit`).
    mints: MintTracker,
    /// Expiry of every token minted, for the live-token gauge.
    minted: Arc<Mutex<Vec<SystemTime>>>,
    /// The service principal's application id and the SQL warehouse (for `check`).
    client_id: String,
    warehouse_id: String,
}

impl std::fmt::Debug for DatabricksGoverned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabricksGoverned")
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

/// Workspace base URL without a trailing slash; `https://` is assumed when no scheme is given
/// (as Databricks unified auth does for `DATABRICKS_HOST`).
fn normalize_host(host: &str) -> Result<String, DatabricksError> {
    let trimmed = host.trim().trim_end_matches('/');
    if trimmed.is_empty() {
        return Err(DatabricksError::Config("databricks.host is empty".into()));
    }
    let with_scheme = if trimmed.contains("://") {
        trimmed.to_string()
    } else {
        format!("https://{trimmed}")
    };
    let url = url::Url::parse(&with_scheme)
        .map_err(|e| DatabricksError::Config(format!("databricks.host {host:?}: {e}")))?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err(DatabricksError::Config(format!(
            "databricks.host {host:?} must be an https:// URL"
        )));
    }
    Ok(with_scheme)
}

impl DatabricksGoverned {
    /// Resolve the client secret and prepare the clients (no network traffic).
    pub fn new(
        cfg: &DatabricksConfig,
        immuta: ImmutaClient,
        limits: &Limits,
        http: reqwest::Client,
    ) -> Result<Self, DatabricksError> {
        let host = normalize_host(&cfg.host)?;
        if cfg.client_id.trim().is_empty() {
            return Err(DatabricksError::Config(
                "databricks.client_id is empty".into(),
            ));
        }
        if cfg.warehouse_id.trim().is_empty() {
            return Err(DatabricksError::Config(
                "databricks.warehouse_id is empty".into(),
            ));
        }
        statements::validate_wait_timeout(&cfg.wait_timeout)
            .map_err(|m| DatabricksError::Config(format!("databricks.{m}")))?;
        let client_secret = cfg
            .client_secret
            .resolve("databricks.client_secret")
            .map_err(|e| DatabricksError::Config(e.to_string()))?;
        if client_secret.is_empty() {
            return Err(DatabricksError::Config(
                "databricks.client_secret is empty".into(),
            ));
        }
        let retry = limits.retry_policy();
        let tokens = TokenClient::new(
            &host,
            cfg.client_id.clone(),
            client_secret,
            http.clone(),
            retry.clone(),
        );
        let statements = StatementsClient::new(
            &host,
            http.clone(),
            retry,
            StatementSettings {
                warehouse_id: cfg.warehouse_id.clone(),
                wait_timeout: cfg.wait_timeout.clone(),
                statement_timeout: Duration::from_secs(cfg.statement_timeout_secs.max(1)),
                poll_initial: Duration::from_millis(250),
                poll_max: Duration::from_secs(5),
                continuation_rows: limits.max_continuation_rows,
            },
        );
        Ok(Self {
            host,
            http,
            immuta,
            tokens,
            statements,
            cache: CredentialCache::new(limits.credential_margin()),
            default_catalog: cfg.default_catalog.clone(),
            default_schema: cfg.default_schema.clone(),
            verify_identity: cfg.verify_identity,
            metrics: None,
            mints: MintTracker::default(),
            minted: Arc::default(),
            client_id: cfg.client_id.clone(),
            warehouse_id: cfg.warehouse_id.clone(),
        })
    }

    /// Count this path's upstream requests, credential lookups and live tokens in `metrics`.
    pub fn with_metrics(mut self, metrics: &Metrics) -> Self {
        let observer = UpstreamObserver {
            metrics: metrics.clone(),
            service: Service::Databricks,
        };
        let retry = self.statements.retry().clone().observed(Some(observer));
        self = self.with_retry(retry);
        self.metrics = Some(metrics.clone());
        let minted = Arc::downgrade(&self.minted);
        metrics.add_gauge_source(Box::new(move || {
            let minted = minted.upgrade()?;
            let mut expiries = minted.lock().unwrap_or_else(|e| e.into_inner());
            let now = SystemTime::now();
            expiries.retain(|expires_at| *expires_at > now);
            Some(GaugeReading::DatabricksTokens(expiries.len() as i64))
        }));
        self
    }

    /// The workspace URL (e.g. for a reachability probe).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Share vended groups and tokens with the other replicas through `store`
    /// (`[cache] backend = "redis"`), keyed by this service principal and each end user.
    pub fn with_shared_cache(mut self, store: std::sync::Arc<crate::shared::SharedStore>) -> Self {
        let agent = format!("{}|{}", self.host, self.tokens.client_id());
        self.cache
            .set_shared(std::sync::Arc::new(crate::shared::SharedCredentials::<
                GroupCredential,
            >::new(store, agent)));
        self
    }

    /// Who Databricks says `credential`'s token acts as, asked once per token:
    /// a deployment where `assume_group` is not honoured would run statements
    /// as the service principal itself and still answer 200, so the token must
    /// be a member of the vended group before any user SQL runs.
    async fn applied_identity(
        &self,
        ctx: &CallContext,
        credential: &GroupCredential,
    ) -> Result<String, RunError> {
        credential
            .applied_identity
            .get_or_try_init(|| async {
                let probe = QueryRequest {
                    sql: IDENTITY_PROBE.into(),
                    database: None,
                    schema: None,
                    warehouse: None,
                    max_rows: 1,
                    max_bytes: 64 * 1024,
                    parameters: vec![QueryParameter {
                        name: "group".into(),
                        value: credential.group_name.clone(),
                    }],
                };
                let rs = self
                    .statements
                    .run(&credential.access_token, ctx, &probe)
                    .await?;
                let row = rs.rows.first();
                let user = row
                    .and_then(|r| r.first())
                    .and_then(|v| v.as_str())
                    .unwrap_or("")
                    .to_string();
                let member = row.and_then(|r| r.get(1)).and_then(|v| v.as_bool()) == Some(true);
                if !member {
                    tracing::error!(user = ?ctx.user, group = %credential.group_name, applied_user = %user, "Databricks does not apply the vended group to the token; no SQL runs");
                    return Err(RunError::Query(QueryError::IdentityMismatch(format!(
                        "Databricks runs this user's token as {user:?}, which is not a member of the vended group {}: \
                         assume_group is not in force, so no SQL was run. Check that the exclusive-group feature \
                         is enabled for the workspace and the service principal (if it is and this check is \
                         wrong for your workspace, databricks.verify_identity = false turns it off)",
                        credential.group_name
                    ))));
                }
                Ok(format!("user={user} group={}", credential.group_name))
            })
            .await
            .cloned()
    }

    /// Use `retry` for token and statement requests (default: `limits.retry_attempts` attempts).
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.tokens.set_retry(retry.clone());
        self.statements.set_retry(retry);
        self
    }

    /// Pause between status polls: starts at `initial`, grows by half up to `max`.
    pub fn with_polling(mut self, initial: Duration, max: Duration) -> Self {
        self.statements = self.statements.with_polling(initial, max);
        self
    }

    /// Override the submit's `wait_timeout` (`"0s"` or `"5s"`..`"50s"`; default `databricks.wait_timeout`).
    pub fn with_wait_timeout(mut self, wait_timeout: &str) -> Result<Self, DatabricksError> {
        statements::validate_wait_timeout(wait_timeout).map_err(DatabricksError::Config)?;
        self.statements.settings_mut().wait_timeout = wait_timeout.to_string();
        Ok(self)
    }

    /// Overall time a statement may run before it is cancelled (default `statement_timeout_secs`).
    pub fn with_statement_timeout(mut self, timeout: Duration) -> Self {
        self.statements.settings_mut().statement_timeout = timeout;
        self
    }

    /// Forget every cached group token (e.g. after a configuration change).
    pub async fn clear_credentials(&self) {
        self.cache.clear().await;
    }

    /// Probe the workspace without a user and without minting any token.
    ///
    /// Our rules forbid requesting a token that does not assume a vended
    /// group, and running SQL needs a user, so the probe only reads public
    /// OAuth metadata: `GET {host}/oidc/.well-known/oauth-authorization-server`
    /// must answer with a `token_endpoint`. When the metadata document is
    /// missing, it falls back to `GET {host}/oidc/v1/token` (a POST-only
    /// endpoint: a 400/401/405 answer proves it exists; a GET can never
    /// mint a token). The client credentials themselves are first exercised
    /// by a real query, together with a vended group.
    pub async fn check(&self) -> Result<String, DatabricksError> {
        let http = &self.http;
        let metadata_url = format!("{}{}", self.host, wire::OAUTH_METADATA_PATH);
        let retry = RetryPolicy {
            max_attempts: 2,
            ..RetryPolicy::default()
        };
        let resp = retry
            .send(|_| {
                http.get(&metadata_url)
                    .header(reqwest::header::ACCEPT, "application/json")
            })
            .await
            .map_err(|e| DatabricksError::Check(format!("cannot reach {metadata_url}: {e}")))?;
        if resp.is_success() {
            let doc: serde_json::Value = resp.json().map_err(|e| {
                DatabricksError::Check(format!("{metadata_url} did not answer JSON: {e}"))
            })?;
            let endpoint = doc
                .get("token_endpoint")
                .and_then(|v| v.as_str())
                .ok_or_else(|| {
                    DatabricksError::Check(format!("{metadata_url} has no token_endpoint"))
                })?;
            return Ok(format!(
                "Databricks workspace {} answers; OAuth token endpoint {endpoint}; \
                 user SQL runs only with a vended group (the warehouse check below uses a token of the service principal itself, which runs no SQL)",
                self.host
            ));
        }
        if resp.status != 404 {
            return Err(DatabricksError::Check(format!(
                "{metadata_url} answered HTTP {}: {}",
                resp.status,
                resp.text_snippet(200)
            )));
        }
        let token_url = self.tokens.token_url().to_string();
        let resp = retry
            .send(|_| http.get(&token_url))
            .await
            .map_err(|e| DatabricksError::Check(format!("cannot reach {token_url}: {e}")))?;
        match resp.status {
            400 | 401 | 405 => Ok(format!(
                "Databricks workspace {} answers; OAuth token endpoint {token_url} exists; \
                 user SQL runs only with a vended group (the warehouse check below uses a token of the service principal itself, which runs no SQL)",
                self.host
            )),
            status => Err(DatabricksError::Check(format!(
                "{token_url} answered HTTP {status}; is databricks.host a workspace URL?"
            ))),
        }
    }

    /// The service principal's application id and the configured warehouse id.
    pub fn principal_and_warehouse(&self) -> (&str, &str) {
        (&self.client_id, &self.warehouse_id)
    }

    /// What the service principal may do on the configured warehouse, read from the
    /// Permissions API with a token of the service principal itself (no group).
    pub async fn warehouse_access(&self) -> Result<permissions::WarehouseAccess, DatabricksError> {
        let ctx = CallContext::new("immuta-mcp check", "check");
        let token = self
            .tokens
            .token_for_service_principal(&ctx)
            .await
            .map_err(|e| {
                DatabricksError::Check(format!("the service principal cannot get a token: {e}"))
            })?;
        permissions::warehouse_access(
            &self.http,
            &self.host,
            &token.access_token,
            &self.warehouse_id,
            &self.client_id,
        )
        .await
    }

    /// The caller's cached group credential, or a fresh vend + token (single-flight per user).
    async fn credential(&self, ctx: &CallContext) -> Result<GroupCredential, QueryError> {
        let was_minting = self.mints.is_minting(&ctx.user);
        let minted = AtomicBool::new(false);
        let credential = self
            .cache
            .get_or_mint(ctx.user.clone(), |_previous| {
                minted.store(true, Ordering::SeqCst);
                let minting = self.mints.minting(&ctx.user);
                async move {
                    let _minting = minting;
                    self.mint_credential(ctx).await
                }
            })
            .await;
        if let Some(metrics) = &self.metrics {
            let result = MintTracker::result(was_minting, minted.load(Ordering::SeqCst));
            metrics.credential_cache("databricks", result);
        }
        credential
    }

    /// Vend a group for the caller and mint its token.
    async fn mint_credential(
        &self,
        ctx: &CallContext,
    ) -> Result<(GroupCredential, SystemTime), QueryError> {
        // Shared by every concurrent call of this user: one caller's
        // cancellation must not abort it (the caller itself stops before its SQL).
        let ctx = &ctx.detached();
        let vend = self.immuta.vend(ctx).await?;
        let group = vend.roles.databricks.clone().ok_or_else(|| {
            QueryError::Vend(format!(
                "Immuta's answer (vend {}) has no Databricks group for {}; \
                         is the Databricks connection enabled for agentic data access?",
                vend.id, ctx.user
            ))
        })?;
        let group_id = GroupId::new(group.native_role_id.clone()).map_err(|_| {
            QueryError::Vend(format!(
                "Immuta's Databricks group {} (vend {}) has no nativeRoleId",
                group.role_name, vend.id
            ))
        })?;
        let token = self.tokens.token_for_group(&group_id, ctx).await?;
        let expires_at = token.expires_at.min(vend.expires_at);
        self.minted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(token.expires_at);
        tracing::debug!(
            user = %ctx.user,
            group = %group.role_name,
            vend_id = %vend.id,
            "minted a Databricks token for the vended group"
        );
        Ok((
            GroupCredential {
                group_id: group_id.as_str().to_string(),
                group_name: group.role_name,
                vend_id: vend.id,
                access_token: token.access_token,
                expires_at,
                applied_identity: Default::default(),
            },
            expires_at,
        ))
    }

    /// What a continuation cursor binds of `credential`: its vend (each vend gets
    /// its own token) and the time the cache stops using it.
    fn binding(&self, credential: &GroupCredential) -> CredentialBinding {
        CredentialBinding {
            fingerprint: credential_fingerprint(&credential.vend_id),
            usable_until: credential
                .expires_at
                .checked_sub(self.cache.margin())
                .unwrap_or(std::time::UNIX_EPOCH),
        }
    }

    fn with_defaults(&self, request: &QueryRequest) -> QueryRequest {
        let mut request = request.clone();
        if request.database.is_none() {
            request.database = self.default_catalog.clone();
        }
        if request.schema.is_none() {
            request.schema = self.default_schema.clone();
        }
        request
    }
}

#[async_trait::async_trait]
impl GovernedQuery for DatabricksGoverned {
    fn platform(&self) -> Platform {
        Platform::Databricks
    }

    async fn prewarm(&self, ctx: &CallContext) -> Result<(), QueryError> {
        self.credential(ctx).await.map(drop)
    }

    async fn query(
        &self,
        ctx: &CallContext,
        request: &QueryRequest,
    ) -> Result<ResultSet, QueryError> {
        let request = self.with_defaults(request);
        let mut retried = false;
        loop {
            if ctx.cancel.is_cancelled() {
                return Err(QueryError::Cancelled {
                    platform: Platform::Databricks,
                    statement_id: None,
                    cancel_confirmed: true,
                });
            }
            let credential = self.credential(ctx).await?;
            ctx.set_vended_role(&credential.group_name);
            ctx.set_credential(self.binding(&credential));
            // A call cancelled while the shared vend/token was minted sends no SQL.
            if ctx.cancel.is_cancelled() {
                return Err(QueryError::Cancelled {
                    platform: Platform::Databricks,
                    statement_id: None,
                    cancel_confirmed: true,
                });
            }
            let outcome = if self.verify_identity {
                self.applied_identity(ctx, &credential)
                    .await
                    .map(|applied| {
                        ctx.set_applied_identity(&applied);
                    })
            } else {
                Ok(())
            };
            let outcome = match outcome {
                Ok(()) => {
                    self.statements
                        .run(&credential.access_token, ctx, &request)
                        .await
                }
                Err(RunError::Query(e @ QueryError::IdentityMismatch(_))) => {
                    // Never use this token again.
                    self.cache
                        .invalidate_if(&ctx.user, |c| c.access_token == credential.access_token)
                        .await;
                    return Err(e);
                }
                // A token refused while asked who it is: handled as for any
                // statement refused before submit (refresh once).
                Err(e) => Err(e),
            };
            match outcome {
                Ok(result) => return Ok(result),
                Err(RunError::Query(e)) => return Err(e),
                Err(RunError::TokenRejected {
                    before_submit,
                    statement_id,
                    message,
                }) => {
                    self.cache
                        .invalidate_if(&ctx.user, |c| c.access_token == credential.access_token)
                        .await;
                    tracing::info!(
                        user = %ctx.user,
                        group = %credential.group_name,
                        vend_id = %credential.vend_id,
                        before_submit,
                        "Databricks rejected the group token"
                    );
                    if before_submit && !retried {
                        retried = true;
                        continue;
                    }
                    let when = match statement_id {
                        Some(id) => format!("while statement {id} ran"),
                        None => "after a fresh vend".to_string(),
                    };
                    return Err(QueryError::Credential(format!(
                        "Databricks rejected the token of vended group {} {when}: {message}",
                        credential.group_name
                    )));
                }
            }
        }
    }

    async fn fetch_page(
        &self,
        ctx: &CallContext,
        page: &PageRequest,
    ) -> Result<ResultSet, QueryError> {
        let id = &page.statement_id;
        // Only the group token the statement ran under, still cached for this
        // user: no vend and no token request for a page.
        let credential = match self.cache.lease_fresh(&ctx.user).await {
            Some(c) if credential_fingerprint(&c.vend_id) == page.credential => c,
            _ => {
                return Err(QueryError::ContinuationRefused(format!(
                    "the Databricks credential statement {id} ran under has expired or was replaced, so the rest of its result cannot be read; run the query again"
                )));
            }
        };
        ctx.set_vended_role(&credential.group_name);
        ctx.set_statement_id(id);
        ctx.set_credential(self.binding(&credential));
        match self
            .statements
            .fetch_page(
                &credential.access_token,
                ctx,
                id,
                page.position,
                page.max_rows,
                page.max_bytes,
            )
            .await
        {
            Ok(result) => Ok(result),
            Err(RunError::Query(QueryError::Statement {
                code: Some(code),
                message,
                ..
            })) if code == "RESOURCE_DOES_NOT_EXIST" => {
                Err(QueryError::ContinuationRefused(format!(
                    "Databricks no longer holds the result of statement {id} ({message}); run the query again"
                )))
            }
            Err(RunError::Query(e)) => Err(e),
            Err(RunError::TokenRejected { message, .. }) => {
                self.cache
                    .invalidate_if(&ctx.user, |c| c.access_token == credential.access_token)
                    .await;
                Err(QueryError::ContinuationRefused(format!(
                    "Databricks no longer accepts the token of vended group {} that statement {id} ran under ({message}); run the query again",
                    credential.group_name
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_normalized_like_unified_auth() {
        assert_eq!(
            normalize_host("dbc-1.cloud.databricks.com/").unwrap(),
            "https://dbc-1.cloud.databricks.com"
        );
        assert_eq!(
            normalize_host("http://127.0.0.1:8080").unwrap(),
            "http://127.0.0.1:8080"
        );
        assert!(normalize_host("").is_err());
        assert!(normalize_host("ftp://x").is_err());
    }

    #[test]
    fn cached_credentials_never_print_the_token() {
        let c = GroupCredential {
            group_id: "1".into(),
            group_name: "immuta_obo_1".into(),
            vend_id: "v".into(),
            access_token: Secret::new("dapi-secret-token"),
            expires_at: SystemTime::now(),
            applied_identity: Default::default(),
        };
        assert!(!format!("{c:?}").contains("dapi-secret-token"));
    }
}
