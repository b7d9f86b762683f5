//! The engine's typed error ([`EngineError`]) and the translation of SQLite's
//! messages into the platforms' wording (without the rewritten internal SQL).

use crate::result::Platform;

/// Why a statement did not run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EngineError {
    /// The table does not exist or the role may not read it (deliberately the same error).
    #[error("Object '{object}' does not exist or not authorized.")]
    NotAuthorized { object: String },
    #[error("SQL compilation error: {0}")]
    Syntax(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("{0}")]
    Execution(String),
    #[error("role {0} is not a live vended role (never vended, dropped or expired)")]
    UnknownRole(String),
    #[error("invalid fixture: {0}")]
    Fixture(String),
}

pub(super) fn sqlite_message(e: &rusqlite::Error) -> String {
    match e {
        rusqlite::Error::SqliteFailure(_, Some(m)) => m.clone(),
        rusqlite::Error::SqlInputError { msg, .. } => msg.clone(),
        rusqlite::Error::SqliteFailure(code, None) => code.to_string(),
        other => other.to_string(),
    }
}

/// A compile-time SQLite error in the platform's words where there is a close match.
pub(super) fn compile_message(platform: Platform, e: &rusqlite::Error) -> String {
    let msg = sqlite_message(e);
    if let Some(col) = msg.strip_prefix("no such column: ") {
        return match platform {
            Platform::Snowflake => format!("invalid identifier '{}'", col.to_uppercase()),
            Platform::Databricks => format!(
                "[UNRESOLVED_COLUMN] A column, variable, or function parameter with name `{col}` cannot be resolved."
            ),
        };
    }
    if let Some(func) = msg.strip_prefix("no such function: ") {
        return match platform {
            Platform::Snowflake => format!(
                "Unknown function {} (the sandbox engine is SQLite with a few Snowflake shims)",
                func.to_uppercase()
            ),
            Platform::Databricks => format!(
                "[UNRESOLVED_ROUTINE] Cannot resolve routine `{func}` (the sandbox engine is SQLite with a few Databricks shims)."
            ),
        };
    }
    msg
}
