//! Errors of the Snowflake path: [`SnowflakeError`] (setup and `check`) and
//! [`SqlApiError`] (one SQL API exchange), with the Snowflake codes that tell
//! a refused credential, a cancel and a timeout apart, and the mapping of
//! each to the tool's [`QueryError`]. None of them carries a secret.

use super::keypair::KeyError;
use crate::query::QueryError;
use crate::result::Platform;
use crate::retry::RetryError;

/// Why the Snowflake path cannot be set up or checked.
#[derive(Debug, thiserror::Error)]
pub enum SnowflakeError {
    #[error("Snowflake configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("Snowflake check failed: {0}")]
    Check(String),
}

/// Snowflake code of a statement cancelled by request.
pub(crate) const CODE_CANCELLED: &str = "000604";
/// Snowflake code of a statement that reached its timeout.
pub(crate) const CODE_TIMEOUT: &str = "000630";
/// Snowflake code of an expired key-pair JWT (rinsed-org/rb-snowflake-client#170).
pub const CODE_JWT_EXPIRED: &str = "390198";
/// Snowflake codes meaning the session credential or its role is no longer valid.
const CREDENTIAL_CODES: &[&str] = &[
    "390100", // incorrect username or password / token
    "390114", // authentication token has expired
    "390144", // JWT token is invalid
    "390198", // key-pair access token expired (rinsed-org/rb-snowflake-client#170)
    "390189", // role specified in the connect string is not granted
    "390303", // invalid OAuth / programmatic access token
    "390318", // OAuth / programmatic access token expired
    "394304", // programmatic access token is invalid
];

/// Why a statement produced no result. Never contains a secret.
#[derive(Debug, thiserror::Error)]
pub enum SqlApiError {
    /// The bearer token was refused (expired, revoked, or its role is gone).
    #[error("Snowflake rejected the credential (HTTP {status}{}): {message}", code_note(.code))]
    Unauthorized {
        status: u16,
        code: Option<String>,
        message: String,
    },
    /// Authenticated, but not allowed to use the API.
    #[error("Snowflake refused access (HTTP 403): {message}")]
    Forbidden { message: String },
    /// The statement failed (HTTP 422, or 400 for a malformed request).
    #[error("Snowflake statement failed{}: {message}", code_note(.code))]
    Statement {
        code: Option<String>,
        sql_state: Option<String>,
        message: String,
        statement_handle: Option<String>,
    },
    /// The statement or endpoint was not found (HTTP 404).
    #[error("Snowflake answered 404: {message}")]
    NotFound { message: String },
    /// Retries ran out (rate limiting, server errors, broken connections).
    #[error("{message}")]
    Unavailable { message: String },
    /// The call was cancelled (or Snowflake cancelled the statement).
    /// `cancel_confirmed`: Snowflake acknowledged the cancel, or no statement
    /// was running.
    #[error("the statement was cancelled")]
    Cancelled {
        statement_handle: Option<String>,
        cancel_confirmed: bool,
    },
    /// The statement timeout passed. `cancel_confirmed`: Snowflake stopped the
    /// statement itself or acknowledged the client's cancel request.
    #[error("the statement did not finish within {seconds} s")]
    Timeout {
        seconds: u64,
        statement_handle: Option<String>,
        cancel_confirmed: bool,
    },
    /// The credential was refused while polling or fetching the result of a
    /// statement Snowflake had already accepted: the statement may have run,
    /// so it must not be submitted again.
    #[error("{rejection} (statement {statement_handle} had already been accepted)")]
    RejectedAfterAcceptance {
        statement_handle: String,
        #[source]
        rejection: Box<SqlApiError>,
    },
    /// The agent's key-pair JWT could not be signed (nothing was sent).
    #[error("cannot sign the agent's key-pair JWT: {0}")]
    Signing(String),
    /// The answer does not follow the SQL API's documented shape.
    #[error("unexpected answer from Snowflake: {message}")]
    Protocol { message: String },
}

fn code_note(code: &Option<String>) -> String {
    code.as_ref()
        .map(|c| format!(", code {c}"))
        .unwrap_or_default()
}

impl SqlApiError {
    /// True when the PAT (or JWT) is no longer accepted, or the role it is
    /// restricted to was revoked: the caller should mint a new credential.
    /// See [`SqlApiError::accepted_statement`] before submitting again.
    pub fn is_credential_rejected(&self) -> bool {
        match self {
            SqlApiError::Unauthorized { .. } | SqlApiError::RejectedAfterAcceptance { .. } => true,
            SqlApiError::Statement { code, message, .. } => {
                code.as_deref()
                    .is_some_and(|c| CREDENTIAL_CODES.contains(&c))
                    || {
                        let m = message.to_ascii_lowercase();
                        m.contains("programmatic access token")
                            && (m.contains("expired")
                                || m.contains("invalid")
                                || m.contains("revoked"))
                    }
            }
            _ => false,
        }
    }

    /// True when Snowflake refused a key-pair JWT because it has expired
    /// (`401`, code `390198` "Keypair access token expired"): a clock or
    /// lifetime matter, cured by signing a fresh token, not a configuration
    /// error.
    pub fn is_jwt_expired(&self) -> bool {
        matches!(self, SqlApiError::Unauthorized { code: Some(c), .. } if c == CODE_JWT_EXPIRED)
    }

    /// True when the bearer token itself was refused (HTTP 401), also after
    /// the statement was accepted.
    pub fn is_unauthorized(&self) -> bool {
        match self {
            SqlApiError::Unauthorized { .. } => true,
            SqlApiError::RejectedAfterAcceptance { rejection, .. } => rejection.is_unauthorized(),
            _ => false,
        }
    }

    /// The handle of a statement Snowflake accepted before the credential was
    /// refused: that statement may have run and must not be resubmitted.
    pub fn accepted_statement(&self) -> Option<&str> {
        match self {
            SqlApiError::RejectedAfterAcceptance {
                statement_handle, ..
            } => Some(statement_handle),
            _ => None,
        }
    }

    /// The statement handle, when Snowflake assigned one.
    pub fn statement_handle(&self) -> Option<&str> {
        match self {
            SqlApiError::Statement {
                statement_handle, ..
            }
            | SqlApiError::Cancelled {
                statement_handle, ..
            }
            | SqlApiError::Timeout {
                statement_handle, ..
            } => statement_handle.as_deref(),
            SqlApiError::RejectedAfterAcceptance {
                statement_handle, ..
            } => Some(statement_handle),
            _ => None,
        }
    }
}

impl From<SqlApiError> for QueryError {
    fn from(e: SqlApiError) -> Self {
        match e {
            SqlApiError::Unauthorized { .. }
            | SqlApiError::Forbidden { .. }
            | SqlApiError::RejectedAfterAcceptance { .. }
            | SqlApiError::Signing(_) => QueryError::Credential(e.to_string()),
            SqlApiError::Statement {
                code,
                sql_state,
                message,
                statement_handle,
            } => QueryError::Statement {
                platform: Platform::Snowflake,
                code,
                sql_state,
                message,
                statement_id: statement_handle,
            },
            SqlApiError::NotFound { message } => QueryError::Protocol {
                service: "Snowflake",
                message: format!("HTTP 404: {message}"),
            },
            SqlApiError::Unavailable { message } => QueryError::Unavailable {
                service: "Snowflake",
                message,
            },
            SqlApiError::Cancelled {
                statement_handle,
                cancel_confirmed,
            } => QueryError::Cancelled {
                platform: Platform::Snowflake,
                statement_id: statement_handle,
                cancel_confirmed,
            },
            SqlApiError::Timeout {
                seconds,
                statement_handle,
                cancel_confirmed,
            } => QueryError::Timeout {
                platform: Platform::Snowflake,
                seconds,
                statement_id: statement_handle,
                cancel_confirmed,
            },
            SqlApiError::Protocol { message } => QueryError::Protocol {
                service: "Snowflake",
                message,
            },
        }
    }
}

pub(crate) fn unavailable(e: RetryError) -> SqlApiError {
    let message = match &e {
        RetryError::Status {
            status: 429,
            attempts,
            ..
        } => format!(
            "Snowflake kept rate-limiting the request (HTTP 429) after {attempts} attempts; try again shortly"
        ),
        RetryError::Status {
            status, attempts, ..
        } => format!("Snowflake kept failing (HTTP {status}) after {attempts} attempts"),
        RetryError::Transport { message, attempts } => {
            format!("cannot reach Snowflake after {attempts} attempts: {message}")
        }
    };
    SqlApiError::Unavailable { message }
}
