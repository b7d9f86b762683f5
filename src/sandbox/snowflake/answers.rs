//! What the Snowflake SQL API emulator answers: the statement error
//! ([`SqlError`], its codes and SQL states), the QueryStatus / ResultSet
//! bodies of a statement in each state, and the request refusals
//! ([`Refusal`]: authentication, missing `User-Agent`, bad request, unknown
//! handle). Every body is JSON (`Content-Type: application/json`), shaped as
//! in sqlapi.yaml.

use super::auth::AuthError;
use super::{Outcome, Statement};
use crate::sandbox::engine::EngineError;
use axum::Json;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

const SUCCESS_CODE: &str = "090001";
/// Statement timeout (answered as HTTP 408).
const CODE_TIMEOUT: &str = "000630";
pub(super) const SUCCESS_MESSAGE: &str = "Statement executed successfully.";
const ASYNC_CODE: &str = "333334";
const ASYNC_MESSAGE: &str = "Asynchronous execution in progress. Use provided query id to perform query monitoring and management.";

/// A statement error: answered as 422 `{code, sqlState, message, statementHandle}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SqlError {
    pub(super) code: &'static str,
    pub(super) sql_state: &'static str,
    pub(super) message: String,
}

impl SqlError {
    pub(super) fn new(
        code: &'static str,
        sql_state: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            code,
            sql_state,
            message: message.into(),
        }
    }

    pub(super) fn not_authorized(object: &str) -> Self {
        Self::new(
            "002003",
            "42S02",
            format!("SQL compilation error:\nObject '{object}' does not exist or not authorized."),
        )
    }

    pub(super) fn timeout(seconds: u64) -> Self {
        Self::new(
            CODE_TIMEOUT,
            "57014",
            format!(
                "Statement reached its statement or warehouse timeout of {seconds} second(s) and was canceled."
            ),
        )
    }

    /// How a canceled statement answers its later polls.
    pub(super) fn canceled() -> Self {
        Self::new("000604", "57014", "SQL execution canceled")
    }

    pub(super) fn from_engine(err: EngineError) -> Self {
        match err {
            EngineError::NotAuthorized { object } => Self::not_authorized(&object),
            EngineError::Syntax(m) => Self::new(
                "001003",
                "42000",
                if m.starts_with("SQL compilation error") {
                    m
                } else {
                    format!("SQL compilation error:\n{m}")
                },
            ),
            EngineError::Unsupported(m) => Self::new("003001", "42501", m),
            EngineError::UnknownRole(role) => Self::new(
                "390189",
                "08004",
                format!(
                    "Role '{role}' specified in the connect string is not granted to this user. Contact your local system administrator, or attempt to login with another role, e.g. PUBLIC."
                ),
            ),
            other => Self::new("100000", "22000", other.to_string()),
        }
    }
}

/// A request the emulator refuses before (or instead of) reaching a statement.
#[derive(Debug)]
pub(super) enum Refusal {
    /// 401 with the authentication error's code (see [`super::auth`]).
    Auth(AuthError),
    /// 400 `391903`: sqlapi.yaml marks `User-Agent` `required: true` on every
    /// operation (code as reported by users).
    MissingUserAgent,
    /// 400 `391902`.
    BadRequest(String),
    /// 404 `000709`: no statement with this handle for this caller.
    UnknownHandle(String),
    /// 404 `390404`: a path the emulator does not serve.
    NotFound,
}

impl From<AuthError> for Refusal {
    fn from(err: AuthError) -> Self {
        Refusal::Auth(err)
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let (status, body) = match self {
            Refusal::Auth(err) => (
                StatusCode::UNAUTHORIZED,
                json!({"code": err.code, "message": err.message}),
            ),
            Refusal::MissingUserAgent => (
                StatusCode::BAD_REQUEST,
                json!({"code": "391903", "message": "User-Agent header is missing or empty. The User-Agent header is required."}),
            ),
            Refusal::BadRequest(message) => (
                StatusCode::BAD_REQUEST,
                json!({"code": "391902", "message": message}),
            ),
            Refusal::UnknownHandle(handle) => (
                StatusCode::NOT_FOUND,
                json!({
                    "code": "000709",
                    "message": format!("Statement {handle} not found."),
                    "statementHandle": handle,
                }),
            ),
            Refusal::NotFound => (
                StatusCode::NOT_FOUND,
                json!({"code": "390404", "message": "Not found: the Snowflake SQL API emulator serves /api/v2/statements."}),
            ),
        };
        (status, Json(body)).into_response()
    }
}

/// Refuse a request without a non-empty `User-Agent`.
pub(super) fn require_user_agent(headers: &HeaderMap) -> Result<(), Refusal> {
    let present = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| !v.trim().is_empty());
    if present {
        Ok(())
    } else {
        Err(Refusal::MissingUserAgent)
    }
}

pub(super) async fn not_found() -> Refusal {
    Refusal::NotFound
}

/// Where the statement is polled (`statementStatusUrl`).
pub(super) fn status_url(statement: &Statement) -> String {
    match &statement.wire().request_id {
        Some(id) => format!("/api/v2/statements/{}?requestId={id}", statement.id()),
        None => format!("/api/v2/statements/{}", statement.id()),
    }
}

/// The statement as it stands: 202 while running (or held by a `Pending`
/// fault), 200 with the ResultSet (partition 0 inline), 422/408 when failed
/// or canceled.
pub(super) fn respond(statement: &Statement, nullable: bool) -> Response {
    if statement.is_held() {
        return accepted(statement);
    }
    match statement.current() {
        Outcome::Running => accepted(statement),
        Outcome::Failed(err) => failed(statement, &err),
        Outcome::Canceled => failed(statement, &SqlError::canceled()),
        Outcome::Succeeded(data) => {
            let partition_info: Vec<Value> = data
                .partitions
                .iter()
                .map(|p| json!({"rowCount": p.end - p.start, "uncompressedSize": p.uncompressed_size}))
                .collect();
            let body = json!({
                "resultSetMetaData": {
                    "numRows": data.encoded.rows.len(),
                    "format": "jsonv2",
                    "partitionInfo": partition_info,
                    "rowType": data.encoded.row_type,
                },
                "data": data.partition_data(0, nullable).unwrap_or(Value::Array(Vec::new())),
                "code": SUCCESS_CODE,
                "statementStatusUrl": status_url(statement),
                "requestId": statement.wire().request_id,
                "sqlState": "00000",
                "statementHandle": statement.id(),
                "message": SUCCESS_MESSAGE,
                "createdOn": statement.wire().created_on,
            });
            (StatusCode::OK, Json(body)).into_response()
        }
    }
}

/// 202 "Asynchronous execution in progress".
pub(super) fn accepted(statement: &Statement) -> Response {
    let body = json!({
        "code": ASYNC_CODE,
        "message": ASYNC_MESSAGE,
        "statementHandle": statement.id(),
        "statementStatusUrl": status_url(statement),
    });
    (StatusCode::ACCEPTED, Json(body)).into_response()
}

fn failed(statement: &Statement, err: &SqlError) -> Response {
    // sqlapi.yaml: '408': "The execution of the statement exceeded the timeout
    // period. The execution of the statement was cancelled." (a QueryStatus
    // body), on submit and on later polls alike.
    let status = if err.code == CODE_TIMEOUT {
        StatusCode::REQUEST_TIMEOUT
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let body = json!({
        "code": err.code,
        "sqlState": err.sql_state,
        "message": err.message,
        "statementHandle": statement.id(),
        "statementStatusUrl": status_url(statement),
        "createdOn": statement.wire().created_on,
    });
    (status, Json(body)).into_response()
}

/// 200 to `POST .../cancel`, saying whether the statement was canceled.
pub(super) fn cancel_answer(statement: &Statement) -> Response {
    let message = match statement.current() {
        Outcome::Canceled => "Statement canceled successfully.",
        _ => "Statement already completed; nothing to cancel.",
    };
    let body = json!({
        "code": "000000",
        "sqlState": "00000",
        "message": message,
        "statementHandle": statement.id(),
        "statementStatusUrl": status_url(statement),
    });
    (StatusCode::OK, Json(body)).into_response()
}

/// 200 `{data}` of one partition of a succeeded statement.
pub(super) fn partition_answer(data: Value) -> Response {
    (StatusCode::OK, Json(json!({ "data": data }))).into_response()
}
