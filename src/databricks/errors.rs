//! Errors of the Databricks path: [`DatabricksError`] (setup and `check`)
//! and [`RunError`] (one statement run through the Statement Execution API),
//! which keeps a rejected group token apart from every other outcome so the
//! path can re-vend once when nothing ran. The OAuth token errors stay with
//! the credential module ([`super::oauth::OAuthError`]), as the key-pair
//! errors do on the Snowflake path. None of them carries a secret.

use crate::query::QueryError;

/// Why the Databricks path cannot be set up or checked.
#[derive(Debug, thiserror::Error)]
pub enum DatabricksError {
    #[error("Databricks configuration: {0}")]
    Config(String),
    #[error("Databricks check failed: {0}")]
    Check(String),
}

/// Why a statement run produced no result.
#[derive(Debug)]
pub enum RunError {
    /// Databricks rejected the access token (HTTP 401/403).
    TokenRejected {
        /// True when the submit itself was rejected, so nothing ran.
        before_submit: bool,
        statement_id: Option<String>,
        message: String,
    },
    /// Any other outcome, ready for the tool.
    Query(QueryError),
}

impl From<QueryError> for RunError {
    fn from(e: QueryError) -> Self {
        RunError::Query(e)
    }
}
