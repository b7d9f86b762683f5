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

mod oauth;
mod params;
mod request;
mod results;
mod workspace;

use crate::result::Platform;
use crate::sandbox::engine::{AGENT_IDENTITY, EngineError, Namespace, Session};
use crate::sandbox::faults::{Endpoint, on};
use crate::sandbox::state::{AGENT_DATABRICKS_GROUP, Counter, ExecutedStatement, SandboxState};
use crate::sandbox::statements::{self, StatementStore};
use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use request::{Limits, SubmitBody};
use results::{ResultData, sparse};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The Databricks emulator's routes, bound to the shared sandbox state.
pub fn router(state: Arc<SandboxState>) -> Router {
    let s = &state;
    let routes = Router::new()
        .route(
            "/oidc/v1/token",
            on(s, Endpoint::DatabricksToken, post(oauth::token)),
        )
        .route(
            crate::databricks::wire::OAUTH_METADATA_PATH,
            get(oauth::oauth_metadata),
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
        statements: StatementStore::default(),
    });
    routes.fallback(not_found).with_state(emulator)
}

struct Emulator {
    state: Arc<SandboxState>,
    /// SHA-256 of each access token → what it grants.
    tokens: oauth::TokenStore,
    /// Statements by id, each visible only to the group it runs as.
    statements: StatementStore<ResultData, StatementError, ()>,
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
        let body = json!({"error_code": self.error_code, "message": self.message});
        (self.status, Json(body)).into_response()
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

type Statement = statements::Statement<ResultData, StatementError, ()>;
type Outcome = statements::Outcome<ResultData, StatementError>;

/// The statement as the API answers it (`statement_id`, `status`, and once
/// succeeded the `manifest` and chunk 0 in `result`), default-valued fields
/// left out. A statement a `Pending` fault holds answers `PENDING`.
fn statement_json(statement: &Statement) -> Value {
    let id = statement.id();
    let state_only = |state: &str| json!({"statement_id": id, "status": {"state": state}});
    sparse(match statement.current() {
        _ if statement.is_held() => state_only("PENDING"),
        Outcome::Running => state_only("RUNNING"),
        Outcome::Canceled => state_only("CANCELED"),
        Outcome::Failed(e) => json!({
            "statement_id": id,
            "status": {
                "state": "FAILED",
                "error": {"error_code": e.error_code, "message": e.message},
                "sql_state": e.sql_state,
            },
        }),
        Outcome::Succeeded(data) => json!({
            "statement_id": id,
            "status": {"state": "SUCCEEDED"},
            "manifest": data.manifest(),
            "result": data.chunk_json(id, 0),
        }),
    })
}

/// 200 with `body` as JSON.
fn ok(body: Value) -> Response {
    (StatusCode::OK, Json(body)).into_response()
}

async fn not_found() -> Response {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "ENDPOINT_NOT_FOUND",
        "No API found: the Databricks emulator serves /oidc/v1/token and /api/2.0/sql/statements.",
    )
    .into_response()
}

impl Emulator {
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
        self.statements.lookup(id, group).ok_or_else(|| {
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
            role: statement.owner().to_string(),
            user,
            sql: sql.clone(),
            statement_id: statement.id().to_string(),
        });
        let engine = self.state.engine.clone();
        let chunk_rows = self.state.settings.databricks_chunk_rows;
        let group = statement.owner().to_string();
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
                results::build_result(result, limits, chunk_rows)
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

/// `POST /api/2.0/sql/statements`: validate, open the statement as the
/// token's group, run it on the engine, and answer after `wait_timeout`.
async fn submit(
    State(emu): State<Arc<Emulator>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (group, user) = emu.statement_group(&headers)?;
    let body: SubmitBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "MALFORMED_REQUEST",
            format!("Could not parse the request body as JSON: {e}"),
        )
    })?;
    let (wait, cancel_on_timeout, limits) =
        request::validate(&body, &emu.state.creds.warehouse_id)?;
    // The `Pending` fault is read once the request passed validation.
    let held = emu.state.faults.pending_polls(Endpoint::DatabricksSubmit);
    let id = format!("01ef{}", uuid::Uuid::new_v4().simple());
    let statement = emu.statements.open(id, group, (), held);

    let sql = body.statement.clone().unwrap_or_default();
    match params::substitute(&sql, &body.parameters) {
        Ok(sql) => emu.spawn_engine(
            Arc::clone(&statement),
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

    let finished = if held > 0 || wait.is_zero() {
        held == 0 && !statement.current().is_running()
    } else {
        statement.wait_settled(wait).await
    };
    if !finished && cancel_on_timeout && !wait.is_zero() {
        // The wait timed out (or a `Pending` fault holds the statement): Databricks cancels it.
        statement.force_cancel();
        emu.state.bump(Counter::StatementsCancelled);
    }
    if wait.is_zero() {
        // model.go WaitTimeout: "When set to `0s`, the statement will execute in
        // asynchronous mode and the call will not wait for the execution to finish.
        // In this case, the call returns directly with `PENDING` state and a statement ID".
        return Ok(ok(
            json!({"statement_id": statement.id(), "status": {"state": "PENDING"}}),
        ));
    }
    Ok(ok(statement_json(&statement)))
}

/// The caller's statement `id` (only the group it runs as may see it).
fn callers_statement(
    emu: &Emulator,
    headers: &HeaderMap,
    id: &str,
) -> Result<Arc<Statement>, ApiError> {
    let (group, _) = emu.statement_group(headers)?;
    emu.lookup(id, &group)
}

/// `GET /api/2.0/sql/statements/{id}`: poll.
async fn status(
    State(emu): State<Arc<Emulator>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let statement = callers_statement(&emu, &headers, &id)?;
    // A `Pending` fault holds the statement for N polls.
    if statement.take_held_poll() {
        return Ok(ok(
            json!({"statement_id": statement.id(), "status": {"state": "PENDING"}}),
        ));
    }
    Ok(ok(statement_json(&statement)))
}

/// `GET /api/2.0/sql/statements/{id}/result/chunks/{index}`.
async fn chunk(
    State(emu): State<Arc<Emulator>>,
    Path((id, index)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let statement = callers_statement(&emu, &headers, &id)?;
    let Outcome::Succeeded(data) = statement.current() else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            format!("Statement {id} has no result: it has not succeeded."),
        ));
    };
    match index.parse::<usize>() {
        Ok(n) if n < data.chunk_count() => Ok(ok(sparse(data.chunk_json(statement.id(), n)))),
        _ => Err(ApiError::invalid(format!(
            "Chunk index '{index}' is out of range: statement {id} has {} chunk(s).",
            data.chunk_count()
        ))),
    }
}

/// `POST /api/2.0/sql/statements/{id}/cancel`: answers `{}`.
async fn cancel(
    State(emu): State<Arc<Emulator>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let statement = callers_statement(&emu, &headers, &id)?;
    if statement.cancel() {
        emu.state.bump(Counter::StatementsCancelled);
    }
    Ok(ok(json!({})))
}
