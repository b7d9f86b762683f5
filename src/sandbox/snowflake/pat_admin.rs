//! The agent's programmatic-access-token statements, executed by the
//! Snowflake emulator without the engine: `ALTER USER ... ADD|REMOVE
//! PROGRAMMATIC ACCESS TOKEN` and `SHOW USER PROGRAMMATIC ACCESS TOKENS`
//! (parsed by [`super::pat_sql`], kept in [`super::auth::PatRegistry`]).
//! An agent may manage only its own tokens; adding one needs the
//! `MODIFY PROGRAMMATIC AUTHENTICATION METHODS` grant, a network policy, a
//! live `ROLE_RESTRICTION` and room under the per-user limit
//! (`394100`/`54000`). With `[sandbox] pat_expiry = "days_only"`,
//! `MINS_TO_EXPIRY` is a syntax error ([`mins_to_expiry_refused`]).

use super::Emulator;
use super::answers::{SUCCESS_MESSAGE, SqlError};
use super::auth::{self, AddPatOutcome, NewPat};
use super::pat_sql::{self, Expiry, PatStatement};
use super::results::{ResultData, text_result, typed_result};
use crate::result::Platform;
use crate::sandbox::state::Counter;
use std::time::{Duration, SystemTime};

/// Default token lifetime when neither DAYS_TO_EXPIRY nor MINS_TO_EXPIRY is given (Snowflake: 15 days).
const DEFAULT_PAT_DAYS: u64 = 15;

impl Emulator {
    /// Execute a token-management statement for the agent (synchronous, no engine).
    pub(super) fn run_pat_statement(
        &self,
        agent: &str,
        statement: PatStatement,
    ) -> Result<ResultData, SqlError> {
        let agent = agent.to_ascii_uppercase();
        let check_user = |user: &Option<String>| match user {
            Some(u) if !u.eq_ignore_ascii_case(&agent) => Err(SqlError::new(
                "003001",
                "42501",
                format!(
                    "SQL access control error:\nInsufficient privileges to operate on user '{u}'."
                ),
            )),
            _ => Ok(()),
        };
        match statement {
            PatStatement::Add(add) => {
                check_user(&add.user)?;
                let prerequisites = &self.state.settings.prerequisites;
                if !prerequisites.snowflake_modify_pat_grant {
                    return Err(SqlError::new(
                        "003001",
                        "42501",
                        format!(
                            "SQL access control error:\nInsufficient privileges to operate on user '{agent}'."
                        ),
                    ));
                }
                if prerequisites.snowflake_network_policy.trim().is_empty() {
                    // Snowflake: a service user must be subject to a network policy to
                    // generate a programmatic access token ("Network policy
                    // requirements", programmatic-access-tokens). Wording not verified.
                    return Err(SqlError::new(
                        "003001",
                        "42501",
                        format!(
                            "SQL access control error:\nA network policy is required for user '{agent}' to add a programmatic access token."
                        ),
                    ));
                }
                let role = add.role_restriction.ok_or_else(|| {
                    SqlError::new(
                        "001003",
                        "42000",
                        format!("SQL compilation error:\nROLE_RESTRICTION is required when adding a programmatic access token for user '{agent}' (TYPE = SERVICE)."),
                    )
                })?;
                let role = self.live_role(&role).ok_or_else(|| {
                    SqlError::new(
                        "002003",
                        "02000",
                        format!("SQL compilation error:\nRole '{role}' does not exist or not authorized."),
                    )
                })?;
                let lifetime = match add.expiry {
                    Some(Expiry::Minutes(m)) => Duration::from_secs(m.saturating_mul(60)),
                    Some(Expiry::Days(d)) => Duration::from_secs(d.saturating_mul(86_400)),
                    None => Duration::from_secs(DEFAULT_PAT_DAYS * 86_400),
                };
                let outcome = self
                    .pats
                    .add(
                        NewPat {
                            user: agent.clone(),
                            name: add.name,
                            role_restriction: role,
                            lifetime,
                            comment: add.comment,
                            epoch: self.state.credential_epoch(),
                            if_not_exists: add.if_not_exists,
                        },
                        self.state.settings.pat_limit_per_user,
                    )
                    .map_err(|e| match e {
                        auth::AddPatError::AlreadyExists(_) => {
                            SqlError::new("002002", "42710", format!("SQL compilation error:\n{e}"))
                        }
                        auth::AddPatError::LimitReached { .. } => {
                            SqlError::new("394100", "54000", e.to_string())
                        }
                    })?;
                let (name, secret) = match outcome {
                    AddPatOutcome::Created { name, secret } => {
                        self.state.bump(Counter::PatsCreated);
                        self.state.record_issued_credential(&secret);
                        (name, Some(secret))
                    }
                    AddPatOutcome::Existed { name } => (name, None),
                };
                text_result(
                    &["token_name", "token_secret"],
                    vec![vec![Some(name), secret]],
                )
            }
            PatStatement::Remove {
                user,
                if_exists,
                name,
            } => {
                check_user(&user)?;
                if self.pats.remove(&agent, &name) {
                    self.state.bump(Counter::PatsRemoved);
                } else if !if_exists {
                    return Err(SqlError::new(
                        "002003",
                        "02000",
                        format!(
                            "SQL compilation error:\nProgrammatic access token '{name}' does not exist or not authorized."
                        ),
                    ));
                }
                text_result(&["status"], vec![vec![Some(SUCCESS_MESSAGE.to_string())]])
            }
            PatStatement::Show { user } => {
                check_user(&user)?;
                let epoch = self.state.credential_epoch();
                let now = SystemTime::now();
                let rows = self
                    .pats
                    .list(&agent)
                    .into_iter()
                    .map(|t| {
                        let expired = t.epoch < epoch || now >= t.expires_at;
                        vec![
                            Some(t.name),
                            Some(t.user.clone()),
                            Some(t.role_restriction),
                            Some(iso(t.expires_at)),
                            Some(if expired { "EXPIRED" } else { "ACTIVE" }.to_string()),
                            t.comment,
                            Some(iso(t.created_at)),
                            Some(t.user),
                            None,
                        ]
                    })
                    .collect();
                // Every column of the SHOW reference page
                // (show-user-programmatic-access-tokens), the two timestamps
                // typed TIMESTAMP_LTZ: through the SQL API they arrive as
                // jsonv2 epoch-seconds text with a timestamp_ltz rowType.
                typed_result(
                    &[
                        ("name", "TEXT"),
                        ("user_name", "TEXT"),
                        ("role_restriction", "TEXT"),
                        ("expires_at", "TIMESTAMP_LTZ(3)"),
                        ("status", "TEXT"),
                        ("comment", "TEXT"),
                        ("created_on", "TIMESTAMP_LTZ(3)"),
                        ("created_by", "TEXT"),
                        ("mins_to_bypass_network_policy_requirement", "NUMBER(38,0)"),
                    ],
                    rows,
                )
            }
        }
    }

    /// The engine's spelling of a live vended role (`'r'` in ROLE_RESTRICTION is an identifier: try it upper-cased too).
    fn live_role(&self, role: &str) -> Option<String> {
        let engine = &self.state.engine;
        [role.to_string(), role.to_ascii_uppercase()]
            .into_iter()
            .find(|r| engine.role_user(Platform::Snowflake, r).is_some())
    }
}

fn iso(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
/// The `days_only` variant: only the public `ALTER USER ... ADD PROGRAMMATIC
/// ACCESS TOKEN` syntax, where `MINS_TO_EXPIRY` is unknown, so it is a
/// syntax error worded as Snowflake words them ("syntax error line L at
/// position P unexpected '<token>'.", position 0-based within the line).
pub(super) fn mins_to_expiry_refused(sql: &str) -> pat_sql::PatSqlError {
    let upper = sql.to_ascii_uppercase();
    let at = upper.find("MINS_TO_EXPIRY").unwrap_or(0);
    let line = sql[..at].matches('\n').count() + 1;
    let position = at - sql[..at].rfind('\n').map_or(0, |nl| nl + 1);
    pat_sql::PatSqlError {
        message: format!(
            "SQL compilation error:\nsyntax error line {line} at position {position} unexpected 'MINS_TO_EXPIRY'."
        ),
    }
}
