//! The token statements of the PAT lifecycle, run under the agent's key-pair
//! JWT: `ALTER USER ADD PROGRAMMATIC ACCESS TOKEN` (built by
//! [`add_pat_statement`], its answer read by [`token_from_result`]),
//! `ALTER USER REMOVE PROGRAMMATIC ACCESS TOKEN` and `SHOW USER PROGRAMMATIC
//! ACCESS TOKENS` (read by [`dead_tokens`]), the names [`token_name`] gives
//! tokens, and how Snowflake's refusals of them are recognised (a token
//! limit, an unsupported `MINS_TO_EXPIRY`). [`TokenOps`] is the cheap,
//! cloneable part of the manager that background removals also use; it keeps
//! the list of tokens this process created.

use crate::config::PatExpiryClause;
use crate::query::{CallContext, QueryError};
use crate::secret::Secret;
use crate::snowflake::errors::SqlApiError;
use crate::snowflake::keypair::KeyPairJwt;
use crate::snowflake::statements::{Auth, FetchLimits, StatementsClient};
use crate::snowflake::wire::StatementRequest;
use sha2::{Digest, Sha256};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// A token this process created, remembered so it can be cleaned up.
#[derive(Debug, Clone)]
pub(super) struct CreatedToken {
    /// The end user it was minted for.
    pub(super) user: String,
    pub(super) account: String,
    pub(super) base_url: String,
    pub(super) name: String,
    pub(super) expires_at: SystemTime,
}

impl CreatedToken {
    /// Whether a session may still use the token at `at`: it expires after it.
    pub(super) fn usable_at(&self, at: SystemTime) -> bool {
        self.expires_at > at
    }
}

/// The token statements, shareable with background removals.
#[derive(Clone)]
pub(super) struct TokenOps {
    pub(super) jwt: Arc<KeyPairJwt>,
    pub(super) api: StatementsClient,
    pub(super) statement_timeout_secs: u64,
    pub(super) created: Arc<Mutex<Vec<CreatedToken>>>,
}

impl TokenOps {
    /// Run a token-management statement under the agent's JWT. An expired
    /// JWT (`401` code `390198`, e.g. this host's clock runs slow) is signed
    /// afresh and the statement sent once more: a 401 at submit means
    /// nothing ran.
    pub(super) async fn run_jwt(
        &self,
        ctx: &CallContext,
        account: &str,
        base_url: &str,
        statement: &str,
    ) -> Result<crate::result::ResultSet, SqlApiError> {
        let first = self.run_jwt_once(ctx, account, base_url, statement).await;
        match first {
            Err(e) if e.is_jwt_expired() => {
                tracing::info!(error = %e, "Snowflake says the agent's key-pair JWT expired; signing a fresh one and sending the statement again");
                self.run_jwt_once(ctx, account, base_url, statement).await
            }
            other => other,
        }
    }

    async fn run_jwt_once(
        &self,
        ctx: &CallContext,
        account: &str,
        base_url: &str,
        statement: &str,
    ) -> Result<crate::result::ResultSet, SqlApiError> {
        let jwt = self
            .jwt
            .token(account)
            .map_err(|e| SqlApiError::Signing(e.to_string()))?;
        let request = StatementRequest::bare(statement, self.statement_timeout_secs);
        let limits = FetchLimits {
            max_rows: 10_000,
            max_bytes: 16 * 1024 * 1024,
        };
        // A token statement is not the call's statement: keep the id the
        // call reports (its audit event names the user's statement only).
        let call_statement = ctx.facts().statement_id;
        let result = self
            .api
            .run(ctx, base_url, &Auth::KeyPairJwt(jwt), &request, limits)
            .await;
        ctx.facts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .statement_id = call_statement;
        if result.as_ref().is_err_and(SqlApiError::is_unauthorized) {
            // A rejected JWT is not reused (e.g. after a clock jump).
            self.jwt.forget();
        }
        result
    }

    /// `ALTER USER REMOVE PROGRAMMATIC ACCESS TOKEN <name>`, best effort,
    /// logged without secrets. True when a token was removed (a slot freed).
    pub(super) async fn remove_token(
        &self,
        ctx: &CallContext,
        account: &str,
        base_url: &str,
        name: &str,
    ) -> bool {
        let statement = format!("ALTER USER REMOVE PROGRAMMATIC ACCESS TOKEN {name}");
        // Removal must not be cut short by the caller's cancellation.
        match self
            .run_jwt(&ctx.detached(), account, base_url, &statement)
            .await
        {
            Ok(_) => {
                tracing::info!(token = name, "removed Snowflake PAT");
                self.forget_created(name);
                true
            }
            Err(SqlApiError::Statement { message, .. })
                if message.to_ascii_lowercase().contains("does not exist") =>
            {
                self.forget_created(name);
                false
            }
            Err(e) => {
                tracing::warn!(token = name, error = %e, "could not remove a Snowflake PAT (it expires on its own)");
                false
            }
        }
    }

    fn forget_created(&self, name: &str) {
        self.created
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .retain(|t| t.name != name);
    }
}

/// True when Snowflake refused `MINS_TO_EXPIRY` in the ADD: a SQL
/// compilation (syntax) error that names it. Only the Immuta preview guide
/// shows that clause; the public `ALTER USER ... ADD PROGRAMMATIC ACCESS
/// TOKEN` syntax has `DAYS_TO_EXPIRY` alone.
pub fn is_mins_to_expiry_refused(e: &SqlApiError) -> bool {
    match e {
        SqlApiError::Statement {
            code,
            sql_state,
            message,
            ..
        } => {
            let m = message.to_ascii_lowercase();
            m.contains("mins_to_expiry")
                && (m.contains("compilation")
                    || m.contains("syntax")
                    || code.as_deref() == Some("001003")
                    || sql_state.as_deref() == Some("42000"))
        }
        _ => false,
    }
}

/// From a `SHOW USER PROGRAMMATIC ACCESS TOKENS` result: the names made by
/// [`token_name`] whose status is not `ACTIVE`, or whose `expires_at` has
/// passed (unless `held`: a token this process may still use).
pub(super) fn dead_tokens(
    listed: &crate::result::ResultSet,
    now: SystemTime,
    held: impl Fn(&str) -> bool,
) -> Vec<String> {
    let column = |name: &str| {
        listed
            .columns
            .iter()
            .position(|c| c.name.eq_ignore_ascii_case(name))
    };
    let Some(name_at) = column("name") else {
        return Vec::new();
    };
    let (status_at, expires_at) = (column("status"), column("expires_at"));
    let text = |row: &[serde_json::Value], at: Option<usize>| {
        at.and_then(|i| row.get(i))
            .and_then(|v| v.as_str())
            .map(str::to_string)
    };
    listed
        .rows
        .iter()
        .filter_map(|row| {
            let name = text(row, Some(name_at))?;
            if !name.to_ascii_uppercase().starts_with(TOKEN_NAME_PREFIX) {
                return None;
            }
            let inactive = text(row, status_at)
                .is_some_and(|status| !status.trim().eq_ignore_ascii_case("ACTIVE"));
            let past_expiry = text(row, expires_at)
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t.trim()).ok())
                .is_some_and(|t| SystemTime::from(t) <= now);
            (inactive || (past_expiry && !held(&name))).then_some(name)
        })
        .collect()
}

/// True when Snowflake refused a new token because the user has too many.
pub fn is_token_limit(e: &SqlApiError) -> bool {
    match e {
        SqlApiError::Statement { message, .. } => {
            let m = message.to_ascii_lowercase();
            m.contains("token")
                && (m.contains("limit") || m.contains("maximum") || m.contains("exceed"))
        }
        _ => false,
    }
}

/// How every token name [`token_name`] makes starts.
pub const TOKEN_NAME_PREFIX: &str = "IMMUTA_MCP_";

/// A fresh, valid unquoted identifier: `IMMUTA_MCP_<user hash>_<random>`.
pub fn token_name(user: &str) -> String {
    let digest = Sha256::digest(user.as_bytes());
    let suffix: u32 = rand::random();
    format!(
        "{TOKEN_NAME_PREFIX}{}_{suffix:08X}",
        hex::encode_upper(&digest[..4])
    )
}

/// Quote `s` as a Snowflake single-quoted string literal (the one quoting module's).
pub use crate::sql_ident::string_literal as sql_string;

/// The `ALTER USER ADD PROGRAMMATIC ACCESS TOKEN` statement for one user.
pub fn add_pat_statement(
    name: &str,
    role: &str,
    clause: PatExpiryClause,
    ttl_minutes: u32,
    user: &str,
) -> String {
    let expiry = match clause {
        PatExpiryClause::MinsToExpiry => format!("MINS_TO_EXPIRY = {ttl_minutes}"),
        PatExpiryClause::DaysToExpiry => {
            format!("DAYS_TO_EXPIRY = {}", ttl_minutes.div_ceil(1440).max(1))
        }
    };
    format!(
        "ALTER USER ADD PROGRAMMATIC ACCESS TOKEN {name} ROLE_RESTRICTION = {} {expiry} COMMENT = {}",
        sql_string(role),
        sql_string(&format!("OBO {user}"))
    )
}

/// Read `token_name` and `token_secret` (by column name) from the ADD result.
pub(super) fn token_from_result(
    rs: &crate::result::ResultSet,
) -> Result<(String, Secret), QueryError> {
    let column = |name: &str| {
        rs.columns
            .iter()
            .position(|c| c.name.eq_ignore_ascii_case(name))
            .ok_or_else(|| QueryError::Protocol {
                service: "Snowflake",
                message: format!("the PAT result has no {name} column"),
            })
    };
    let (name_at, secret_at) = (column("token_name")?, column("token_secret")?);
    let row = rs.rows.first().ok_or_else(|| QueryError::Protocol {
        service: "Snowflake",
        message: "the PAT result has no row".into(),
    })?;
    let text = |i: usize, what: &str| {
        row.get(i)
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .ok_or_else(|| QueryError::Protocol {
                service: "Snowflake",
                message: format!("the PAT result's {what} is empty"),
            })
    };
    Ok((
        text(name_at, "token_name")?,
        Secret::new(text(secret_at, "token_secret")?),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::result::{Column, ColumnType, Platform, ResultSet};
    use serde_json::json;

    #[test]
    fn statement_quotes_role_and_comment() {
        let s = add_pat_statement(
            "IMMUTA_MCP_AB_01",
            "IMMUTA_OBO_1",
            PatExpiryClause::MinsToExpiry,
            60,
            "o'brien\\x@example.com",
        );
        assert_eq!(
            s,
            "ALTER USER ADD PROGRAMMATIC ACCESS TOKEN IMMUTA_MCP_AB_01 ROLE_RESTRICTION = 'IMMUTA_OBO_1' MINS_TO_EXPIRY = 60 COMMENT = 'OBO o''brien\\\\x@example.com'"
        );
        let d = add_pat_statement("T", "R'X", PatExpiryClause::DaysToExpiry, 60, "u");
        assert!(
            d.contains("ROLE_RESTRICTION = 'R''X' DAYS_TO_EXPIRY = 1 "),
            "{d}"
        );
    }

    #[test]
    fn token_names_are_identifiers_unique_per_call() {
        let a = token_name("alice@example.com");
        let b = token_name("alice@example.com");
        let c = token_name("bob@example.com");
        assert_ne!(a, b);
        assert_eq!(a[..19], b[..19], "same user, same hash part");
        assert_ne!(a[..19], c[..19]);
        for n in [&a, &b, &c] {
            assert!(
                n.chars()
                    .all(|ch| ch.is_ascii_uppercase() || ch.is_ascii_digit() || ch == '_')
            );
            assert!(n.starts_with(TOKEN_NAME_PREFIX));
            assert!(n.len() < 255);
        }
    }

    #[test]
    fn token_is_read_by_column_name() {
        let col = |n: &str| Column {
            name: n.into(),
            column_type: ColumnType::String,
            native_type: "VARCHAR".into(),
            nullable: true,
        };
        let mut rs = ResultSet::new(
            Platform::Snowflake,
            "h",
            vec![col("token_secret"), col("token_name")],
        );
        rs.extend_limited(vec![vec![json!("s3cret"), json!("TOK")]], 10);
        let (name, secret) = token_from_result(&rs).unwrap();
        assert_eq!(name, "TOK");
        assert_eq!(secret.expose(), "s3cret");
        let empty = ResultSet::new(Platform::Snowflake, "h", vec![col("token_name")]);
        let err = token_from_result(&empty).unwrap_err().to_string();
        assert!(err.contains("token_secret"), "{err}");
    }

    #[test]
    fn a_created_token_is_usable_until_it_expires() {
        let expires_at = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000);
        let t = CreatedToken {
            user: "u@example.com".into(),
            account: "acme".into(),
            base_url: "https://acme".into(),
            name: "IMMUTA_MCP_X".into(),
            expires_at,
        };
        assert!(t.usable_at(expires_at - std::time::Duration::from_millis(1)));
        assert!(!t.usable_at(expires_at), "not at its expiry");
        assert!(!t.usable_at(expires_at + std::time::Duration::from_secs(1)));
    }

    #[test]
    fn dead_tokens_are_ours_and_inactive_or_past_expiry() {
        let col = |n: &str| Column {
            name: n.into(),
            column_type: ColumnType::String,
            native_type: "VARCHAR".into(),
            nullable: true,
        };
        let mut listed = ResultSet::new(
            Platform::Snowflake,
            "h",
            vec![col("name"), col("expires_at"), col("status")],
        );
        let future = "2999-01-01T00:00:00.000Z";
        let past = "2000-01-01T00:00:00.000Z";
        listed.extend_limited(
            vec![
                vec![json!("IMMUTA_MCP_AB_01"), json!(future), json!("EXPIRED")],
                vec![json!("IMMUTA_MCP_AB_02"), json!(future), json!("ACTIVE")],
                vec![json!("IMMUTA_MCP_AB_03"), json!(past), json!("ACTIVE")],
                vec![json!("IMMUTA_MCP_AB_04"), json!(past), json!("ACTIVE")],
                vec![json!("IMMUTA_MCP_AB_05"), json!(future), json!("DISABLED")],
                vec![json!("ADMIN_TOKEN"), json!(past), json!("EXPIRED")],
            ],
            100,
        );
        let held = |name: &str| name == "IMMUTA_MCP_AB_04" || name == "IMMUTA_MCP_AB_05";
        assert_eq!(
            dead_tokens(&listed, SystemTime::now(), held),
            vec!["IMMUTA_MCP_AB_01", "IMMUTA_MCP_AB_03", "IMMUTA_MCP_AB_05"],
            "live ACTIVE tokens, held ones inside their expiry and other tools' tokens stay"
        );
        let nameless = ResultSet::new(Platform::Snowflake, "h", vec![col("status")]);
        assert!(dead_tokens(&nameless, SystemTime::now(), |_| false).is_empty());
    }

    #[test]
    fn a_refused_mins_to_expiry_is_a_syntax_error_naming_it() {
        let refusal = |code: Option<&str>, sql_state: Option<&str>, message: &str| {
            is_mins_to_expiry_refused(&SqlApiError::Statement {
                code: code.map(str::to_string),
                sql_state: sql_state.map(str::to_string),
                message: message.into(),
                statement_handle: None,
            })
        };
        // Each sign of a syntax error suffices, with the clause named.
        assert!(refusal(
            None,
            None,
            "SQL compilation error: invalid property 'MINS_TO_EXPIRY'"
        ));
        assert!(refusal(
            None,
            None,
            "syntax error line 1 at position 80 unexpected 'MINS_TO_EXPIRY'."
        ));
        assert!(refusal(Some("001003"), None, "unexpected 'MINS_TO_EXPIRY'"));
        assert!(refusal(None, Some("42000"), "unexpected 'MINS_TO_EXPIRY'"));
        // Not a syntax error, or not about the clause: another refusal.
        assert!(!refusal(
            Some("002003"),
            Some("02000"),
            "MINS_TO_EXPIRY must be at most 1440"
        ));
        assert!(!refusal(
            Some("001003"),
            Some("42000"),
            "SQL compilation error: syntax error at 'ROLE_RESTRICTION'"
        ));
        assert!(!is_mins_to_expiry_refused(&SqlApiError::Unavailable {
            message: "MINS_TO_EXPIRY syntax".into()
        }));
    }

    #[test]
    fn limit_errors_are_recognised() {
        let e = SqlApiError::Statement {
            code: Some("003170".into()),
            sql_state: None,
            message:
                "Maximum number of programmatic access tokens (15) reached for user IMMUTA_AGENT."
                    .into(),
            statement_handle: None,
        };
        assert!(is_token_limit(&e));
        let other = SqlApiError::Statement {
            code: Some("002003".into()),
            sql_state: None,
            message: "Object does not exist or not authorized.".into(),
            statement_handle: None,
        };
        assert!(!is_token_limit(&other));
        // A refusal about a token but not its count, or about a limit but not tokens.
        for message in [
            "Programmatic access token IMMUTA_MCP_AB_1 does not exist.",
            "Statement exceeded the maximum result size.",
        ] {
            let e = SqlApiError::Statement {
                code: Some("002003".into()),
                sql_state: None,
                message: message.into(),
                statement_handle: None,
            };
            assert!(!is_token_limit(&e), "{message}");
        }
    }
}
