//! Emulator of Databricks' OAuth M2M token endpoint and SQL Statement Execution API for the sandbox.
//!
//! `POST /oidc/v1/token` takes HTTP Basic `client_id:client_secret` (or the
//! two as form fields) and the form `grant_type=client_credentials`,
//! `scope=all-apis`, `assume_group=<group id>`, and answers `{access_token,
//! token_type: "Bearer", expires_in, scope}`. The group must be a live vended
//! group (bound in the engine); an unknown or expired one is `400
//! invalid_request`. A token minted without `assume_group` is the service
//! principal itself: it authenticates, but every statement call answers `403
//! PERMISSION_DENIED`, because the sandbox's service principal has no data
//! access of its own. A wrong client id or secret is `401 invalid_client`.
//! Tokens expire after `expires_in` seconds or when the sandbox's credential
//! epoch moves on (fault knob); expired or unknown tokens are `401
//! UNAUTHENTICATED`.
//!
//! `POST /api/2.0/sql/statements` checks `warehouse_id` (unknown: 404
//! `RESOURCE_DOES_NOT_EXIST`), `wait_timeout` (`0s` or `5s`..`50s`, else 400
//! `INVALID_PARAMETER_VALUE`), `on_wait_timeout` (`CONTINUE`|`CANCEL`),
//! `disposition` (`INLINE` only: `EXTERNAL_LINKS` is 400 `NOT_IMPLEMENTED`),
//! `format` (`JSON_ARRAY` only, as Databricks requires for INLINE),
//! `row_limit` and `byte_limit` (cut rows, `manifest.truncated = true`); an
//! INLINE result over 25 MiB without `byte_limit` fails as on Databricks.
//! Named (`:name`) parameters are substituted (see [`params`]); a parameter
//! without a name (positional `?`, which the API does not support) is 400
//! `INVALID_PARAMETER_VALUE`, as is a `query_tags` entry with an empty key.
//! The statement runs in the engine as the token's group on the blocking
//! pool; a `wait_timeout` of `0s` answers `PENDING` with no manifest or
//! result, otherwise the answer waits up to `wait_timeout` and carries
//! `status {state PENDING|RUNNING|SUCCEEDED|FAILED|CANCELED, error{error_code,
//! message}, sql_state}` (`error_code` one of model.go's `ServiceErrorCode`
//! values: SQL failures, insufficient privileges included, are `BAD_REQUEST`),
//! the `manifest` (columns with `type_name`/`type_text`, chunks of
//! `settings.databricks_chunk_rows` rows, no INLINE `byte_count`) and chunk 0
//! inline in `result`. Fields holding their default value (`0`, `false`,
//! empty) are left out of every answer, as the real server does. `GET /api/2.0/sql/statements/{id}` polls,
//! `GET .../result/chunks/{n}` fetches a chunk, `POST .../cancel` cancels. A
//! table the group may not read fails with `[TABLE_OR_VIEW_NOT_FOUND]` and
//! `sql_state` `42P01`. Every handler first passes the fault injector (429
//! with `Retry-After`, 503, resets, latency, pending polls).
//!
//! Workspace endpoints (see [`workspace`]): SCIM `Me` for user tokens the
//! sandbox issued (the Databricks Apps proxy's forwarded token) and for the
//! service principal's tokens, and the SQL warehouse Permissions API.

mod params;
mod workspace;

use crate::result::Platform;
use crate::sandbox::engine::{AGENT_IDENTITY, EngineError, EngineResult, Namespace, Session};
use crate::sandbox::faults::{Endpoint, on};
use crate::sandbox::state::{AGENT_DATABRICKS_GROUP, Counter, ExecutedStatement, SandboxState};
use crate::sandbox::types::{DatabricksEncoded, encode_databricks};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use params::Parameter;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::watch;

/// Lifetime of an OAuth access token, as Databricks issues them.
const TOKEN_LIFETIME: Duration = Duration::from_secs(3600);
/// Databricks' cap on an INLINE result.
const INLINE_LIMIT_BYTES: usize = 25 * 1024 * 1024;
/// `wait_timeout` when the request has none.
const DEFAULT_WAIT: Duration = Duration::from_secs(10);

/// The Databricks emulator's routes, bound to the shared sandbox state.
pub fn router(state: Arc<SandboxState>) -> Router {
    let s = &state;
    let routes = Router::new()
        .route(
            "/oidc/v1/token",
            on(s, Endpoint::DatabricksToken, post(token)),
        )
        .route(
            crate::databricks::wire::OAUTH_METADATA_PATH,
            get(oauth_metadata),
        )
        .route(
            "/api/2.0/sql/statements",
            on(s, Endpoint::DatabricksSubmit, post(submit)),
        )
        .route(
            "/api/2.0/sql/statements/",
            on(s, Endpoint::DatabricksSubmit, post(submit)),
        )
        .route(
            "/api/2.0/sql/statements/{id}",
            on(s, Endpoint::DatabricksStatus, get(status)),
        )
        .route(
            "/api/2.0/sql/statements/{id}/result/chunks/{index}",
            on(s, Endpoint::DatabricksChunk, get(chunk)),
        )
        .route(
            "/api/2.0/sql/statements/{id}/cancel",
            on(s, Endpoint::DatabricksCancel, post(cancel)),
        )
        .route(
            crate::identity::databricks_apps::SCIM_ME_PATH,
            on(s, Endpoint::DatabricksScimMe, get(workspace::scim_me)),
        )
        .route(
            "/api/2.0/permissions/warehouses/{id}",
            on(
                s,
                Endpoint::DatabricksPermissions,
                get(workspace::warehouse_permissions),
            ),
        )
        .route(
            "/api/2.0/permissions/sql/warehouses/{id}",
            on(
                s,
                Endpoint::DatabricksPermissions,
                get(workspace::warehouse_permissions),
            ),
        );
    let emulator = Arc::new(Emulator {
        state,
        tokens: Mutex::new(HashMap::new()),
        statements: Mutex::new(HashMap::new()),
    });
    routes.fallback(not_found).with_state(emulator)
}

struct Emulator {
    state: Arc<SandboxState>,
    /// SHA-256 of each access token → what it grants.
    tokens: Mutex<HashMap<[u8; 32], TokenGrant>>,
    statements: Mutex<HashMap<String, Arc<Statement>>>,
}

#[derive(Debug, Clone)]
struct TokenGrant {
    /// The assumed group (`assume_group`); `None` = the bare service principal.
    group: Option<String>,
    expires_at: SystemTime,
    epoch: u64,
}

/// An API error: `{error_code, message}` with an HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ApiError {
    status: StatusCode,
    error_code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, error_code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            error_code,
            message: message.into(),
        }
    }

    fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        json_response(
            self.status,
            json!({"error_code": self.error_code, "message": self.message}),
        )
    }
}

/// Why a statement failed: `status.error` and `status.sql_state`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct StatementError {
    error_code: &'static str,
    message: String,
    sql_state: &'static str,
}

impl StatementError {
    fn new(error_code: &'static str, sql_state: &'static str, message: impl Into<String>) -> Self {
        Self {
            error_code,
            message: message.into(),
            sql_state,
        }
    }

    fn from_engine(err: EngineError) -> Self {
        match err {
            EngineError::NotAuthorized { object } => {
                let quoted = object
                    .split('.')
                    .map(|part| format!("`{}`", part.trim_matches('`')))
                    .collect::<Vec<_>>()
                    .join(".");
                Self::new(
                    "BAD_REQUEST",
                    "42P01",
                    format!(
                        "[TABLE_OR_VIEW_NOT_FOUND] The table or view {quoted} cannot be found. Verify the spelling and correctness of the schema and catalog.\nIf you did not qualify the name with a schema, verify the current_schema() output, or qualify the name with the correct schema and catalog. SQLSTATE: 42P01"
                    ),
                )
            }
            EngineError::Syntax(m) => Self::new(
                "BAD_REQUEST",
                "42601",
                format!("[PARSE_SYNTAX_ERROR] Syntax error: {m} SQLSTATE: 42601"),
            ),
            // `status.error.error_code` is a ServiceErrorCode (databricks-sdk-go
            // `service/sql/model.go`): that enum has no PERMISSION_DENIED, so an
            // insufficient-privileges failure is a BAD_REQUEST whose message names
            // the [INSUFFICIENT_PERMISSIONS] condition.
            EngineError::Unsupported(m) => Self::new(
                "BAD_REQUEST",
                "42501",
                format!("[INSUFFICIENT_PERMISSIONS] Insufficient privileges: {m} SQLSTATE: 42501"),
            ),
            EngineError::UnknownRole(group) => Self::new(
                "BAD_REQUEST",
                "42501",
                format!(
                    "[INSUFFICIENT_PERMISSIONS] The assumed group '{group}' no longer exists or has expired. SQLSTATE: 42501"
                ),
            ),
            other => Self::new("BAD_REQUEST", "22000", other.to_string()),
        }
    }
}

/// A finished result: encoded rows after row/byte limits, cut into chunks.
struct ResultData {
    encoded: DatabricksEncoded,
    /// `[start, end)` row ranges, one per chunk (none for an empty result).
    chunks: Vec<(usize, usize)>,
    truncated: bool,
}

impl ResultData {
    fn chunk_rows(&self, index: usize) -> Value {
        let (start, end) = self.chunks[index];
        json!(self.encoded.rows[start..end])
    }

    fn chunk_json(&self, statement_id: &str, index: usize) -> Value {
        let (start, end) = self.chunks.get(index).copied().unwrap_or((0, 0));
        let mut chunk = json!({
            "chunk_index": index,
            "row_offset": start,
            "row_count": end - start,
            "data_array": if index < self.chunks.len() { self.chunk_rows(index) } else { json!([]) },
        });
        if index + 1 < self.chunks.len() {
            chunk["next_chunk_index"] = json!(index + 1);
            chunk["next_chunk_internal_link"] = json!(format!(
                "/api/2.0/sql/statements/{statement_id}/result/chunks/{}",
                index + 1
            ));
        }
        chunk
    }

    fn manifest(&self) -> Value {
        let chunks: Vec<Value> = self
            .chunks
            .iter()
            .enumerate()
            .map(|(i, (start, end))| {
                // No `byte_count`: "not available when using INLINE disposition" (model.go BaseChunkInfo).
                json!({"chunk_index": i, "row_offset": start, "row_count": end - start})
            })
            .collect();
        json!({
            "format": "JSON_ARRAY",
            "schema": {
                "column_count": self.encoded.columns.len(),
                "columns": self.encoded.columns,
            },
            "total_chunk_count": self.chunks.len(),
            "chunks": chunks,
            "total_row_count": self.encoded.rows.len(),
            "truncated": self.truncated,
        })
    }
}

/// Drop the fields Databricks leaves out because they hold their default
/// value (the API's fields are `omitempty`: a `0`, `false`, `""`, `[]` or
/// `{}` is absent on the wire), recursively through objects and the objects
/// inside arrays. Row data (`data_array`) is kept as is.
fn omit_defaults(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|key, v| {
                key == "data_array"
                    || !matches!(v, Value::Bool(false) | Value::Null)
                        && v.as_u64() != Some(0)
                        && v.as_str() != Some("")
                        && !v.as_array().is_some_and(Vec::is_empty)
            });
            for (key, v) in map.iter_mut() {
                if key != "data_array" {
                    omit_defaults(v);
                }
            }
            map.retain(|key, v| {
                key == "data_array" || !v.as_object().is_some_and(|o| o.is_empty())
            });
        }
        Value::Array(items) => items.iter_mut().for_each(omit_defaults),
        _ => {}
    }
}

/// An answer with its default-valued fields left out ([`omit_defaults`]).
fn sparse(mut value: Value) -> Value {
    omit_defaults(&mut value);
    value
}

/// Bytes of one row as JSON text.
fn row_bytes(row: &[Option<String>]) -> usize {
    let cells: usize = row
        .iter()
        .map(|cell| match cell {
            Some(s) => serde_json::to_string(s).map_or(s.len() + 2, |j| j.len()),
            None => 4,
        })
        .sum();
    cells + row.len().saturating_sub(1) + 2
}

#[derive(Clone)]
enum Outcome {
    Running,
    Succeeded(Arc<ResultData>),
    Failed(StatementError),
    Canceled,
}

struct Statement {
    id: String,
    created: Instant,
    /// The group the statement runs as; only tokens for that group see it.
    group: String,
    outcome: watch::Sender<Outcome>,
    /// Polls that still answer PENDING because of a `Pending` fault.
    pending_polls: AtomicU32,
}

impl Statement {
    /// Set the outcome unless the statement already finished (a cancel wins over a late result).
    fn finish(&self, outcome: Outcome) -> bool {
        super::state::settle_once(&self.outcome, outcome, |o| matches!(o, Outcome::Running))
    }

    fn current(&self) -> Outcome {
        self.outcome.borrow().clone()
    }

    fn to_json(&self) -> Value {
        let outcome = self.current();
        let pending = self.pending_polls.load(Ordering::SeqCst) > 0;
        sparse(match outcome {
            _ if pending => json!({"statement_id": self.id, "status": {"state": "PENDING"}}),
            Outcome::Running => json!({"statement_id": self.id, "status": {"state": "RUNNING"}}),
            Outcome::Canceled => json!({"statement_id": self.id, "status": {"state": "CANCELED"}}),
            Outcome::Failed(e) => json!({
                "statement_id": self.id,
                "status": {
                    "state": "FAILED",
                    "error": {"error_code": e.error_code, "message": e.message},
                    "sql_state": e.sql_state,
                },
            }),
            Outcome::Succeeded(data) => json!({
                "statement_id": self.id,
                "status": {"state": "SUCCEEDED"},
                "manifest": data.manifest(),
                "result": data.chunk_json(&self.id, 0),
            }),
        })
    }
}

#[derive(Debug, Default, Deserialize)]
struct SubmitBody {
    warehouse_id: Option<String>,
    statement: Option<String>,
    catalog: Option<String>,
    schema: Option<String>,
    #[serde(default)]
    parameters: Vec<Parameter>,
    #[serde(default)]
    query_tags: Vec<QueryTagIn>,
    wait_timeout: Option<String>,
    on_wait_timeout: Option<String>,
    disposition: Option<String>,
    format: Option<String>,
    row_limit: Option<i64>,
    byte_limit: Option<i64>,
}

/// One entry of `query_tags` (`{key, value}`, model.go QueryTag).
#[derive(Debug, Default, Deserialize)]
struct QueryTagIn {
    #[serde(default)]
    key: String,
}

/// `row_limit` / `byte_limit` of a request, validated.
#[derive(Debug, Clone, Copy, Default)]
struct Limits {
    rows: Option<usize>,
    bytes: Option<usize>,
}

fn json_response(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// `GET /oidc/.well-known/oauth-authorization-server`: the workspace's OAuth
/// discovery document, served without authentication (RFC 8414 §3). The
/// Databricks SDKs read `authorization_endpoint` and `token_endpoint` from it
/// (databricks-sdk-py `oauth.get_workspace_endpoints`); the token endpoint is
/// `/oidc/v1/token` ("Authorize unattended access with OAuth (M2M)").
async fn oauth_metadata(headers: HeaderMap) -> Response {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return (StatusCode::BAD_REQUEST, "no Host header").into_response();
    };
    let base = format!("https://{host}/oidc");
    axum::Json(json!({
        "issuer": base,
        "authorization_endpoint": format!("{base}/v1/authorize"),
        "token_endpoint": format!("{base}/v1/token"),
        "jwks_uri": format!("{base}/v1/keys"),
        "grant_types_supported": ["client_credentials", "authorization_code", "refresh_token"],
        "response_types_supported": ["code"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
    }))
    .into_response()
}

async fn not_found() -> Response {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "ENDPOINT_NOT_FOUND",
        "No API found: the Databricks emulator serves /oidc/v1/token and /api/2.0/sql/statements.",
    )
    .into_response()
}

fn oauth_error(status: StatusCode, error: &str, description: impl Into<String>) -> Response {
    json_response(
        status,
        json!({"error": error, "error_description": description.into()}),
    )
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Parse `wait_timeout`: `0s`, or `5s`..`50s`.
fn parse_wait_timeout(value: Option<&str>) -> Result<Duration, ApiError> {
    let Some(raw) = value else {
        return Ok(DEFAULT_WAIT);
    };
    let seconds = raw
        .trim()
        .strip_suffix('s')
        .and_then(|n| n.parse::<u64>().ok())
        .filter(|n| *n == 0 || (5..=50).contains(n));
    match seconds {
        Some(n) => Ok(Duration::from_secs(n)),
        None => Err(ApiError::invalid(format!(
            "wait_timeout must be 0s or between 5s and 50s (got '{raw}')."
        ))),
    }
}

impl Emulator {
    /// The grant behind `Authorization: Bearer <token>`.
    fn authenticate(&self, headers: &HeaderMap) -> Result<TokenGrant, ApiError> {
        let token = super::state::bearer_token(headers)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "UNAUTHENTICATED",
                    "Credential was not sent or was of an unsupported type for this API.",
                )
            })?;
        let grant = self
            .tokens
            .lock()
            .expect("token lock")
            .get(&digest(token))
            .cloned()
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "UNAUTHENTICATED",
                    "Invalid access token.",
                )
            })?;
        if grant.epoch < self.state.credential_epoch() || SystemTime::now() >= grant.expires_at {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "UNAUTHENTICATED",
                "Invalid access token: the token has expired.",
            ));
        }
        Ok(grant)
    }

    /// The group a statement call runs as: the token's assumed group, still live.
    fn statement_group(&self, headers: &HeaderMap) -> Result<(String, String), ApiError> {
        let grant = self.authenticate(headers)?;
        if self.state.settings.ignore_obo_restriction {
            // Fault: `assume_group` is ignored; the token acts as the service principal itself.
            return Ok((
                AGENT_DATABRICKS_GROUP.to_string(),
                AGENT_IDENTITY.to_string(),
            ));
        }
        let Some(group) = grant.group else {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "PERMISSION_DENIED",
                format!(
                    "The service principal '{}' has no data access of its own: request the token with assume_group=<vended group id> to act for an end user.",
                    self.state.creds.databricks_client_id
                ),
            ));
        };
        let user = self
            .state
            .engine
            .role_user(Platform::Databricks, &group)
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::FORBIDDEN,
                    "PERMISSION_DENIED",
                    format!("The assumed group '{group}' no longer exists or has expired."),
                )
            })?;
        Ok((group, user))
    }

    fn lookup(&self, id: &str, group: &str) -> Result<Arc<Statement>, ApiError> {
        self.statements
            .lock()
            .expect("statements lock")
            .get(id)
            .filter(|s| s.group == group)
            .cloned()
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    "RESOURCE_DOES_NOT_EXIST",
                    format!("Statement {id} does not exist."),
                )
            })
    }

    fn spawn_engine(
        &self,
        statement: Arc<Statement>,
        user: String,
        sql: String,
        namespace: Namespace,
        limits: Limits,
    ) {
        self.state.record_executed(ExecutedStatement {
            platform: Platform::Databricks,
            role: statement.group.clone(),
            user,
            sql: sql.clone(),
            statement_id: statement.id.clone(),
        });
        let engine = self.state.engine.clone();
        let chunk_rows = self.state.settings.databricks_chunk_rows;
        let group = statement.group.clone();
        // current_user() is the service principal (its application id); the
        // session is a member of the group it assumed (by the group's name).
        let session = Session {
            login_user: Some(self.state.creds.databricks_client_id.clone()),
            groups: if group == AGENT_DATABRICKS_GROUP {
                Vec::new()
            } else {
                vec![
                    engine
                        .role_name(Platform::Databricks, &group)
                        .unwrap_or_else(|| group.clone()),
                ]
            },
        };
        tokio::spawn(async move {
            let work = tokio::task::spawn_blocking(move || {
                let result = engine
                    .execute_as(Platform::Databricks, &group, &sql, &namespace, &session)
                    .map_err(StatementError::from_engine)?;
                build_result(result, limits, chunk_rows)
            });
            let outcome = match work.await {
                Ok(Ok(data)) => Outcome::Succeeded(Arc::new(data)),
                Ok(Err(err)) => Outcome::Failed(err),
                Err(join) => Outcome::Failed(StatementError::new(
                    "INTERNAL_ERROR",
                    "XX000",
                    format!("Internal error while executing the statement: {join}"),
                )),
            };
            statement.finish(outcome);
        });
    }
}

/// Statements kept for polling at most; beyond this the oldest finished one is forgotten.
const MAX_STATEMENTS: usize = 512;

fn evict_oldest_finished(statements: &mut HashMap<String, Arc<Statement>>) {
    if statements.len() < MAX_STATEMENTS {
        return;
    }
    let oldest = statements
        .values()
        .filter(|s| !matches!(*s.outcome.borrow(), Outcome::Running))
        .min_by_key(|s| s.created)
        .map(|s| s.id.clone());
    if let Some(id) = oldest {
        statements.remove(&id);
    }
}

/// Apply row and byte limits, encode, and cut into chunks.
fn build_result(
    mut result: EngineResult,
    limits: Limits,
    chunk_rows: usize,
) -> Result<ResultData, StatementError> {
    let mut truncated = false;
    if let Some(max) = limits.rows
        && result.rows.len() > max
    {
        result.rows.truncate(max);
        truncated = true;
    }
    let mut encoded = encode_databricks(&result.columns, &result.rows)
        .map_err(|e| StatementError::new("BAD_REQUEST", "22018", e.to_string()))?;
    let byte_cap = limits.bytes.unwrap_or(INLINE_LIMIT_BYTES);
    let mut total = 0usize;
    let mut keep = encoded.rows.len();
    let mut sizes = Vec::with_capacity(encoded.rows.len());
    for (i, row) in encoded.rows.iter().enumerate() {
        let size = row_bytes(row);
        total += size;
        if total > byte_cap {
            keep = i;
            break;
        }
        sizes.push(size);
    }
    if keep < encoded.rows.len() {
        if limits.bytes.is_none() {
            return Err(StatementError::new(
                "BAD_REQUEST",
                "54000",
                format!(
                    "The result exceeds the {} MiB limit of disposition INLINE. Set byte_limit or row_limit, or use disposition EXTERNAL_LINKS.",
                    INLINE_LIMIT_BYTES / (1024 * 1024)
                ),
            ));
        }
        encoded.rows.truncate(keep);
        truncated = true;
    }
    let size = chunk_rows.max(1);
    let total_rows = encoded.rows.len();
    let chunks: Vec<(usize, usize)> = (0..total_rows)
        .step_by(size)
        .map(|start| (start, (start + size).min(total_rows)))
        .collect();
    Ok(ResultData {
        encoded,
        chunks,
        truncated,
    })
}

/// Client credentials from HTTP Basic, else from the form.
fn client_credentials(
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Option<(String, String)> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Basic ")
                .or_else(|| v.strip_prefix("basic "))
        })
        .and_then(|b64| {
            base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .ok()
        })
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|pair| {
            // Each half is form-url-encoded before Basic encoding (RFC 6749 §2.3.1).
            let (id, secret) = pair.split_once(':')?;
            Some((form_decode(id), form_decode(secret)))
        });
    basic.or_else(|| {
        Some((
            form.get("client_id")?.clone(),
            form.get("client_secret")?.clone(),
        ))
    })
}

/// Undo `application/x-www-form-urlencoded` encoding of one value.
fn form_decode(value: &str) -> String {
    url::form_urlencoded::parse(format!("v={value}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

async fn token(State(emu): State<Arc<Emulator>>, headers: HeaderMap, body: Bytes) -> Response {
    let form: HashMap<String, String> = match serde_urlencoded::from_bytes(&body) {
        Ok(f) => f,
        Err(e) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                format!("The request body must be application/x-www-form-urlencoded: {e}"),
            );
        }
    };
    let creds = &emu.state.creds;
    match client_credentials(&headers, &form) {
        Some((id, secret))
            if id == creds.databricks_client_id && secret == creds.databricks_client_secret => {}
        Some(_) => {
            return oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "Client authentication failed: unknown client_id or wrong client_secret.",
            );
        }
        None => {
            return oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "Client authentication failed: send client_id:client_secret with HTTP Basic authentication.",
            );
        }
    }
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "Only grant_type=client_credentials is supported for service principals.",
        );
    }
    let scope = form.get("scope").cloned().unwrap_or_default();
    if !scope
        .split_whitespace()
        .any(|s| s == "all-apis" || s == "sql")
    {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            format!("scope must include all-apis (got '{scope}')."),
        );
    }
    let group = match form.get("assume_group").map(|g| g.trim()) {
        None => None,
        Some("") => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "assume_group is empty: pass the vended group id.",
            );
        }
        Some(g) => match emu.state.engine.role_binding(Platform::Databricks, g) {
            Some(binding) => Some((g.to_string(), binding.expires_at)),
            None => {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    format!(
                        "assume_group '{g}' is not a group this service principal may assume: it does not exist or has expired."
                    ),
                );
            }
        },
    };
    // A token for a group lives no longer than the group itself.
    let now = SystemTime::now();
    let lifetime = match &group {
        Some((_, group_expiry)) => group_expiry
            .duration_since(now)
            .unwrap_or(Duration::ZERO)
            .min(TOKEN_LIFETIME),
        None => TOKEN_LIFETIME,
    };
    let group = group.map(|(g, _)| g);
    let access_token = hex::encode(rand::random::<[u8; 32]>());
    emu.tokens.lock().expect("token lock").insert(
        digest(&access_token),
        TokenGrant {
            group,
            expires_at: now + lifetime,
            epoch: emu.state.credential_epoch(),
        },
    );
    emu.state.bump(Counter::OAuthTokensIssued);
    emu.state.record_issued_credential(&access_token);
    json_response(
        StatusCode::OK,
        json!({
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": lifetime.as_secs(),
            "scope": scope,
        }),
    )
}

/// Validate the request body; on success the SQL with parameters applied is not yet computed.
fn validate(body: &SubmitBody, warehouse_id: &str) -> Result<(Duration, bool, Limits), ApiError> {
    match body.warehouse_id.as_deref() {
        None | Some("") => return Err(ApiError::invalid("warehouse_id is required.")),
        Some(id) if id != warehouse_id => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "RESOURCE_DOES_NOT_EXIST",
                format!("SQL warehouse {id} does not exist."),
            ));
        }
        Some(_) => {}
    }
    if body
        .statement
        .as_deref()
        .is_none_or(|s| s.trim().is_empty())
    {
        return Err(ApiError::invalid("statement is required."));
    }
    // model.go ExecuteStatementRequest.Parameters: "Currently, positional
    // parameters denoted by a `?` marker are not supported".
    if let Some(i) = body
        .parameters
        .iter()
        .position(|p| p.name.as_deref().is_none_or(|n| n.trim().is_empty()))
    {
        return Err(ApiError::invalid(format!(
            "parameters[{i}] has no name: positional parameters (`?`) are not supported; name every parameter and mark it :name in the statement."
        )));
    }
    // model.go QueryTag: "A query tag consists of a non-empty key and, optionally, a value."
    if let Some(i) = body.query_tags.iter().position(|t| t.key.trim().is_empty()) {
        return Err(ApiError::invalid(format!(
            "query_tags[{i}] has an empty key: a query tag needs a non-empty key."
        )));
    }
    let wait = parse_wait_timeout(body.wait_timeout.as_deref())?;
    let cancel_on_timeout = match body
        .on_wait_timeout
        .as_deref()
        .map(str::to_ascii_uppercase)
        .as_deref()
    {
        None | Some("CONTINUE") => false,
        Some("CANCEL") => true,
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "on_wait_timeout must be CONTINUE or CANCEL (got '{other}')."
            )));
        }
    };
    match body
        .disposition
        .as_deref()
        .map(str::to_ascii_uppercase)
        .as_deref()
    {
        None | Some("INLINE") => {}
        Some("EXTERNAL_LINKS") => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "NOT_IMPLEMENTED",
                "disposition EXTERNAL_LINKS is not available in the sandbox: use INLINE with format JSON_ARRAY.",
            ));
        }
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "disposition must be INLINE or EXTERNAL_LINKS (got '{other}')."
            )));
        }
    }
    match body
        .format
        .as_deref()
        .map(str::to_ascii_uppercase)
        .as_deref()
    {
        None | Some("JSON_ARRAY") => {}
        Some(other @ ("ARROW_STREAM" | "CSV")) => {
            return Err(ApiError::invalid(format!(
                "format {other} is not supported with disposition INLINE: use JSON_ARRAY."
            )));
        }
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "format must be JSON_ARRAY, ARROW_STREAM or CSV (got '{other}')."
            )));
        }
    }
    let non_negative = |name: &str, v: Option<i64>| -> Result<Option<usize>, ApiError> {
        match v {
            None => Ok(None),
            Some(n) if n >= 0 => Ok(Some(usize::try_from(n).unwrap_or(usize::MAX))),
            Some(n) => Err(ApiError::invalid(format!(
                "{name} must not be negative (got {n})."
            ))),
        }
    };
    let limits = Limits {
        rows: non_negative("row_limit", body.row_limit)?,
        bytes: non_negative("byte_limit", body.byte_limit)?,
    };
    Ok((wait, cancel_on_timeout, limits))
}

async fn submit(State(emu): State<Arc<Emulator>>, headers: HeaderMap, body: Bytes) -> Response {
    let (emu, headers, body) = (&emu, &headers, &body);
    let (group, user) = match emu.statement_group(headers) {
        Ok(g) => g,
        Err(e) => return e.into_response(),
    };
    let body: SubmitBody = match serde_json::from_slice(body) {
        Ok(b) => b,
        Err(e) => {
            return ApiError::new(
                StatusCode::BAD_REQUEST,
                "MALFORMED_REQUEST",
                format!("Could not parse the request body as JSON: {e}"),
            )
            .into_response();
        }
    };
    let (wait, cancel_on_timeout, limits) = match validate(&body, &emu.state.creds.warehouse_id) {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    let statement = Arc::new(Statement {
        id: format!("01ef{}", uuid::Uuid::new_v4().simple()),
        created: Instant::now(),
        group,
        outcome: watch::channel(Outcome::Running).0,
        pending_polls: AtomicU32::new(0),
    });
    {
        let mut statements = emu.statements.lock().expect("statements lock");
        evict_oldest_finished(&mut statements);
        statements.insert(statement.id.clone(), statement.clone());
    }
    let pending = emu.state.faults.pending_polls(Endpoint::DatabricksSubmit);
    statement.pending_polls.store(pending, Ordering::SeqCst);

    let sql = body.statement.clone().unwrap_or_default();
    match params::substitute(&sql, &body.parameters) {
        Ok(sql) => emu.spawn_engine(
            statement.clone(),
            user,
            sql,
            Namespace {
                database: body.catalog.clone(),
                schema: body.schema.clone(),
            },
            limits,
        ),
        Err(e) => {
            statement.finish(Outcome::Failed(StatementError::new(
                "BAD_REQUEST",
                "42P02",
                e.message,
            )));
        }
    }

    let finished = if pending > 0 || wait.is_zero() {
        pending == 0 && !matches!(statement.current(), Outcome::Running)
    } else {
        let mut rx = statement.outcome.subscribe();
        tokio::time::timeout(wait, rx.wait_for(|o| !matches!(o, Outcome::Running)))
            .await
            .is_ok()
    };
    if !finished && cancel_on_timeout && !wait.is_zero() {
        // The wait timed out (or a `Pending` fault holds the statement): Databricks cancels it.
        statement.pending_polls.store(0, Ordering::SeqCst);
        statement.outcome.send_replace(Outcome::Canceled);
        emu.state.bump(Counter::StatementsCancelled);
    }
    if wait.is_zero() {
        // model.go WaitTimeout: "When set to `0s`, the statement will execute in
        // asynchronous mode and the call will not wait for the execution to finish.
        // In this case, the call returns directly with `PENDING` state and a statement ID".
        return json_response(
            StatusCode::OK,
            json!({"statement_id": statement.id, "status": {"state": "PENDING"}}),
        );
    }
    json_response(StatusCode::OK, statement.to_json())
}

async fn status(
    State(emu): State<Arc<Emulator>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let statement = match emu
        .statement_group(&headers)
        .and_then(|(group, _)| emu.lookup(&id, &group))
    {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    // A `Pending` fault holds the statement for N polls.
    let held = statement
        .pending_polls
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if held {
        return json_response(
            StatusCode::OK,
            json!({"statement_id": statement.id, "status": {"state": "PENDING"}}),
        );
    }
    json_response(StatusCode::OK, statement.to_json())
}

async fn chunk(
    State(emu): State<Arc<Emulator>>,
    Path((id, index)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let statement = match emu
        .statement_group(&headers)
        .and_then(|(group, _)| emu.lookup(&id, &group))
    {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let Outcome::Succeeded(data) = statement.current() else {
        return ApiError::new(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            format!("Statement {id} has no result: it has not succeeded."),
        )
        .into_response();
    };
    match index.parse::<usize>() {
        Ok(n) if n < data.chunks.len() => {
            json_response(StatusCode::OK, sparse(data.chunk_json(&statement.id, n)))
        }
        _ => ApiError::invalid(format!(
            "Chunk index '{index}' is out of range: statement {id} has {} chunk(s).",
            data.chunks.len()
        ))
        .into_response(),
    }
}

async fn cancel(
    State(emu): State<Arc<Emulator>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let statement = match emu
        .statement_group(&headers)
        .and_then(|(group, _)| emu.lookup(&id, &group))
    {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    // A statement held by a `Pending` fault is still running as far as the client can tell.
    let held = statement.pending_polls.swap(0, Ordering::SeqCst) > 0;
    let canceled = statement.finish(Outcome::Canceled)
        || (held && {
            statement.outcome.send_replace(Outcome::Canceled);
            true
        });
    if canceled {
        emu.state.bump(Counter::StatementsCancelled);
    }
    json_response(StatusCode::OK, json!({}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_form_url_decoded() {
        let mut headers = HeaderMap::new();
        let pair = base64::engine::general_purpose::STANDARD.encode("sp%3Aid:a%3Ab%2Bc+d");
        headers.insert(
            header::AUTHORIZATION,
            format!("Basic {pair}").parse().unwrap(),
        );
        assert_eq!(
            client_credentials(&headers, &HashMap::new()),
            Some(("sp:id".to_string(), "a:b+c d".to_string()))
        );
    }

    #[test]
    fn wait_timeout_accepts_zero_and_five_to_fifty_seconds() {
        assert_eq!(parse_wait_timeout(None).unwrap(), DEFAULT_WAIT);
        assert_eq!(parse_wait_timeout(Some("0s")).unwrap(), Duration::ZERO);
        assert_eq!(
            parse_wait_timeout(Some("5s")).unwrap(),
            Duration::from_secs(5)
        );
        assert_eq!(
            parse_wait_timeout(Some("50s")).unwrap(),
            Duration::from_secs(50)
        );
        for bad in ["4s", "51s", "10", "abc", "-5s"] {
            let err = parse_wait_timeout(Some(bad)).unwrap_err();
            assert_eq!(err.error_code, "INVALID_PARAMETER_VALUE", "{bad}");
        }
    }

    #[test]
    fn validation_rejects_external_links_other_formats_and_bad_warehouses() {
        let ok = SubmitBody {
            warehouse_id: Some("wh".into()),
            statement: Some("SELECT 1".into()),
            ..SubmitBody::default()
        };
        assert!(validate(&ok, "wh").is_ok());
        let wrong_wh = SubmitBody {
            warehouse_id: Some("other".into()),
            ..SubmitBody {
                statement: Some("SELECT 1".into()),
                ..SubmitBody::default()
            }
        };
        assert_eq!(
            validate(&wrong_wh, "wh").unwrap_err().status,
            StatusCode::NOT_FOUND
        );
        let links = SubmitBody {
            disposition: Some("EXTERNAL_LINKS".into()),
            warehouse_id: Some("wh".into()),
            statement: Some("SELECT 1".into()),
            ..SubmitBody::default()
        };
        assert_eq!(
            validate(&links, "wh").unwrap_err().error_code,
            "NOT_IMPLEMENTED"
        );
        let csv = SubmitBody {
            format: Some("CSV".into()),
            warehouse_id: Some("wh".into()),
            statement: Some("SELECT 1".into()),
            ..SubmitBody::default()
        };
        assert_eq!(
            validate(&csv, "wh").unwrap_err().error_code,
            "INVALID_PARAMETER_VALUE"
        );
        let negative = SubmitBody {
            row_limit: Some(-1),
            warehouse_id: Some("wh".into()),
            statement: Some("SELECT 1".into()),
            ..SubmitBody::default()
        };
        assert!(validate(&negative, "wh").is_err());
    }
}
