//! The contract between the MCP tools and the two governed platform paths.
//!
//! A tool call becomes a [`QueryRequest`] plus a [`CallContext`] (the verified
//! end user, a cancellation token, a progress sink and the facts the audit
//! event needs). Each platform path implements [`GovernedQuery`] and answers
//! with a [`ResultSet`] or a typed [`QueryError`]. No type here carries a user
//! chosen by the model: the user is set by the transport from an
//! authenticated source.

use crate::cursor::PagePosition;
use crate::result::{Platform, ResultSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;
use tokio_util::sync::CancellationToken;

/// What the tool asks a platform to run.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryRequest {
    pub sql: String,
    /// Snowflake database / Databricks catalog.
    pub database: Option<String>,
    pub schema: Option<String>,
    /// Snowflake only; Databricks uses the configured warehouse id.
    pub warehouse: Option<String>,
    /// Stop fetching after this many rows (the result is then `truncated`).
    pub max_rows: usize,
    /// Stop fetching after roughly this many bytes of row data.
    pub max_bytes: usize,
    /// Named parameters bound to `:name` markers in `sql` (Databricks Statement Execution
    /// API `parameters`). Only the Databricks path sends them; a request for Snowflake
    /// must leave this empty.
    pub parameters: Vec<QueryParameter>,
}

/// What `fetch_more` asks a platform for: the next page of a finished
/// statement's result, read with the credential the statement ran under.
#[derive(Debug, Clone, PartialEq)]
pub struct PageRequest {
    /// Snowflake statement handle / Databricks statement id.
    pub statement_id: String,
    /// Where the page starts.
    pub position: PagePosition,
    /// [`crate::cursor::credential_fingerprint`] of the credential the statement
    /// ran under; the page is read only if the user's cached credential is still that one.
    pub credential: String,
    pub max_rows: usize,
    pub max_bytes: usize,
}

/// The credential a call's statement ran under (no secret: an identifier and its expiry).
#[derive(Debug, Clone, PartialEq)]
pub struct CredentialBinding {
    /// [`crate::cursor::credential_fingerprint`] of the Snowflake PAT's token name /
    /// the Databricks vend id.
    pub fingerprint: String,
    /// When the cached credential stops being used (its expiry less the margin).
    pub usable_until: SystemTime,
}

/// One named `STRING` parameter of a [`QueryRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryParameter {
    pub name: String,
    pub value: String,
}

/// Receives human-readable progress while a statement runs.
pub trait ProgressSink: Send + Sync {
    /// `step` counts up from 1; `message` says what is happening.
    fn progress(&self, step: u32, message: &str);
}

/// Facts a platform path learns during a call, for the audit event.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct CallFacts {
    pub vended_role: Option<String>,
    pub statement_id: Option<String>,
    /// Upstream HTTP requests this call made (vend, token, statement, polls).
    pub upstream_requests: u32,
    /// The credential the statement ran under (for a continuation cursor).
    pub credential: Option<CredentialBinding>,
    /// What the platform said it applied to the credential, checked once per
    /// credential (Snowflake `role=… user=…`, Databricks `user=… group=…`).
    pub applied_identity: Option<String>,
    /// Ids of the vends Immuta answered during this call (`check --as` drops them).
    pub vend_ids: Vec<String>,
}

/// Everything about a call that does not come from the model.
#[derive(Clone)]
pub struct CallContext {
    /// The verified end user (Immuta user id).
    pub user: String,
    /// Name of the MCP tool, for query tags and audit.
    pub tool: &'static str,
    pub cancel: CancellationToken,
    pub progress: Option<Arc<dyn ProgressSink>>,
    pub facts: Arc<Mutex<CallFacts>>,
}

impl CallContext {
    pub fn new(user: impl Into<String>, tool: &'static str) -> Self {
        Self {
            user: user.into(),
            tool,
            cancel: CancellationToken::new(),
            progress: None,
            facts: Arc::new(Mutex::new(CallFacts::default())),
        }
    }

    /// This call without its cancellation (same user, tool, facts and
    /// progress), for work shared with other calls: a user's vend and mint
    /// serve every concurrent call of that user, so one caller's cancellation
    /// must not abort them halfway (e.g. after a token was created but before
    /// it was recorded); PAT removals too must run to the end.
    pub fn detached(&self) -> CallContext {
        CallContext {
            cancel: CancellationToken::new(),
            ..self.clone()
        }
    }

    pub fn report(&self, step: u32, message: &str) {
        if let Some(p) = &self.progress {
            p.progress(step, message);
        }
    }

    /// The call's facts. A poisoned lock (a panic elsewhere while it was
    /// held) still holds plain data, so it is used rather than propagated.
    fn facts_mut(&self) -> MutexGuard<'_, CallFacts> {
        self.facts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn set_vended_role(&self, role: &str) {
        self.facts_mut().vended_role = Some(role.to_string());
    }

    pub fn set_applied_identity(&self, identity: &str) {
        self.facts_mut().applied_identity = Some(identity.to_string());
    }

    pub fn set_statement_id(&self, id: &str) {
        self.facts_mut().statement_id = Some(id.to_string());
    }

    pub fn set_credential(&self, credential: CredentialBinding) {
        self.facts_mut().credential = Some(credential);
    }

    pub fn count_upstream_request(&self) {
        self.facts_mut().upstream_requests += 1;
    }

    pub fn facts(&self) -> CallFacts {
        self.facts_mut().clone()
    }
}

/// Why a governed query did not produce a result. Messages never hold secrets.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// Immuta refused or failed to vend a role: no SQL ran.
    #[error("Immuta did not vend a role for this user: {0}")]
    Vend(String),
    /// The scoped credential (PAT / OAuth token) could not be obtained: no SQL ran.
    #[error("could not obtain a credential scoped to the vended role: {0}")]
    Credential(String),
    /// The platform did not apply the vended role or group to the credential
    /// (checked before any user SQL): the deployment is misconfigured.
    #[error("{0}")]
    IdentityMismatch(String),
    /// The platform ran the statement and reported an error.
    #[error("{platform} error{}: {message}", code_suffix(.code, .sql_state))]
    Statement {
        platform: Platform,
        code: Option<String>,
        sql_state: Option<String>,
        message: String,
        statement_id: Option<String>,
    },
    /// The call was cancelled. `cancel_confirmed` is true when the platform
    /// acknowledged cancelling the statement, or when no statement had been
    /// sent; false when the statement may still be running.
    #[error("{}", cancelled_message(.platform, .statement_id, .cancel_confirmed))]
    Cancelled {
        platform: Platform,
        statement_id: Option<String>,
        cancel_confirmed: bool,
    },
    /// The statement did not finish within the configured time and the path
    /// asked the platform to cancel it. `cancel_confirmed` is true when the
    /// platform acknowledged the cancel (or stopped the statement itself).
    #[error("{}", timeout_message(.platform, .seconds, .statement_id, .cancel_confirmed))]
    Timeout {
        platform: Platform,
        seconds: u64,
        statement_id: Option<String>,
        cancel_confirmed: bool,
    },
    /// An upstream service kept failing after bounded retries.
    #[error("{service} is unavailable: {message}")]
    Unavailable {
        service: &'static str,
        message: String,
    },
    /// An upstream answer did not match the documented protocol.
    #[error("unexpected answer from {service}: {message}")]
    Protocol {
        service: &'static str,
        message: String,
    },
    /// The platform is not configured on this server.
    #[error("{0} is not configured on this server")]
    NotConfigured(Platform),
    /// A `fetch_more` page cannot be read (the credential the result was read
    /// with is gone, or the platform no longer holds the result); the message
    /// says to run the query again.
    #[error("{0}")]
    ContinuationRefused(String),
}

fn code_suffix(code: &Option<String>, sql_state: &Option<String>) -> String {
    match (code, sql_state) {
        (Some(c), Some(s)) => format!(" {c} (SQLSTATE {s})"),
        (Some(c), None) => format!(" {c}"),
        (None, Some(s)) => format!(" (SQLSTATE {s})"),
        (None, None) => String::new(),
    }
}

fn statement_note(statement_id: &Option<String>) -> String {
    statement_id
        .as_ref()
        .map(|id| format!(" (statement {id})"))
        .unwrap_or_default()
}

/// What still stops a statement whose cancel request failed. Snowflake
/// statements carry their timeout (the SQL API `timeout` field), so Snowflake
/// ends them itself; Databricks has nothing of the kind.
fn unconfirmed_cancel_note(platform: Platform, seconds: Option<u64>) -> String {
    match (platform, seconds) {
        (Platform::Snowflake, Some(s)) => {
            format!("but Snowflake stops the statement at its {s} s statement timeout")
        }
        (Platform::Snowflake, None) => {
            "so the statement may still be running until Snowflake's statement timeout stops it"
                .into()
        }
        (Platform::Databricks, _) => "so the statement may still be running".into(),
    }
}

fn cancelled_message(
    platform: &Platform,
    statement_id: &Option<String>,
    cancel_confirmed: &bool,
) -> String {
    let name = platform.display_name();
    match (statement_id, *cancel_confirmed) {
        (Some(_), true) => format!(
            "the {name} statement was cancelled{}",
            statement_note(statement_id)
        ),
        (None, true) => format!("the {name} query was cancelled before any statement was sent"),
        (Some(_), false) => format!(
            "the call was cancelled, but {name} did not acknowledge the cancel request, {}{}",
            unconfirmed_cancel_note(*platform, None),
            statement_note(statement_id)
        ),
        (None, false) => format!(
            "the {name} query was cancelled while its statement was being submitted; a cancel request is sent as soon as {name} names the statement"
        ),
    }
}

fn timeout_message(
    platform: &Platform,
    seconds: &u64,
    statement_id: &Option<String>,
    cancel_confirmed: &bool,
) -> String {
    let name = platform.display_name();
    if *cancel_confirmed {
        return format!(
            "the {name} statement did not finish within {seconds} s and was cancelled{}",
            statement_note(statement_id)
        );
    }
    let failed = if statement_id.is_some() {
        "the cancel request failed"
    } else {
        "it was still being submitted, so it could not be cancelled yet"
    };
    format!(
        "the {name} statement did not finish within {seconds} s; {failed}, {}{}",
        unconfirmed_cancel_note(*platform, Some(*seconds)),
        statement_note(statement_id)
    )
}

impl QueryError {
    /// Short machine-readable outcome for audit events.
    pub fn outcome(&self) -> &'static str {
        match self {
            QueryError::Vend(_) => "vend_failed",
            QueryError::Credential(_) => "credential_failed",
            QueryError::IdentityMismatch(_) => "identity_mismatch",
            QueryError::Statement { .. } => "statement_failed",
            QueryError::Cancelled { .. } => "cancelled",
            QueryError::Timeout { .. } => "timeout",
            QueryError::Unavailable { .. } => "unavailable",
            QueryError::Protocol { .. } => "protocol_error",
            QueryError::NotConfigured(_) => "not_configured",
            QueryError::ContinuationRefused(_) => "cursor_refused",
        }
    }
}

/// A platform path that runs SQL as the caller's vended role and nothing else.
#[async_trait::async_trait]
pub trait GovernedQuery: Send + Sync {
    fn platform(&self) -> Platform;

    /// Vend (or reuse) the caller's scoped credential, run `request`, decode the rows.
    /// Fails closed: if any OBO step fails, no SQL is sent.
    async fn query(
        &self,
        ctx: &CallContext,
        request: &QueryRequest,
    ) -> Result<ResultSet, QueryError>;

    /// Read the next page of a finished statement's result (`fetch_more`) with
    /// the caller's cached credential, only if it is still the one named in
    /// `page`; never vends or mints for a page. The result's `next_position`
    /// says where the following page starts.
    async fn fetch_page(
        &self,
        ctx: &CallContext,
        page: &PageRequest,
    ) -> Result<ResultSet, QueryError> {
        let _ = (ctx, page);
        Err(QueryError::ContinuationRefused(format!(
            "{} results cannot be continued on this server; run the query again with a larger max_rows",
            self.platform().display_name()
        )))
    }

    /// Obtain the caller's scoped credential ahead of their first query (a
    /// session just initialized), through the same single-flight as
    /// [`query`](Self::query); runs no user SQL. Default: nothing to warm.
    async fn prewarm(&self, ctx: &CallContext) -> Result<(), QueryError> {
        let _ = ctx;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statement_error_message_names_code_and_state() {
        let e = QueryError::Statement {
            platform: Platform::Snowflake,
            code: Some("002003".into()),
            sql_state: Some("42S02".into()),
            message: "Object 'X' does not exist or not authorized.".into(),
            statement_id: None,
        };
        assert_eq!(
            e.to_string(),
            "snowflake error 002003 (SQLSTATE 42S02): Object 'X' does not exist or not authorized."
        );
        assert_eq!(e.outcome(), "statement_failed");
    }

    #[test]
    fn timeouts_and_cancellations_name_the_platform() {
        let t = QueryError::Timeout {
            platform: Platform::Snowflake,
            seconds: 1,
            statement_id: Some("01b2".into()),
            cancel_confirmed: true,
        };
        assert_eq!(
            t.to_string(),
            "the Snowflake statement did not finish within 1 s and was cancelled (statement 01b2)"
        );
        let c = QueryError::Cancelled {
            platform: Platform::Databricks,
            statement_id: Some("s1".into()),
            cancel_confirmed: true,
        };
        assert_eq!(
            c.to_string(),
            "the Databricks statement was cancelled (statement s1)"
        );
        let early = QueryError::Cancelled {
            platform: Platform::Snowflake,
            statement_id: None,
            cancel_confirmed: true,
        };
        assert_eq!(
            early.to_string(),
            "the Snowflake query was cancelled before any statement was sent"
        );
    }

    #[test]
    fn an_unacknowledged_cancel_is_not_reported_as_done() {
        let db = QueryError::Timeout {
            platform: Platform::Databricks,
            seconds: 30,
            statement_id: Some("s1".into()),
            cancel_confirmed: false,
        };
        assert_eq!(
            db.to_string(),
            "the Databricks statement did not finish within 30 s; the cancel request failed, so the statement may still be running (statement s1)"
        );
        let sf = QueryError::Timeout {
            platform: Platform::Snowflake,
            seconds: 30,
            statement_id: Some("h".into()),
            cancel_confirmed: false,
        };
        assert_eq!(
            sf.to_string(),
            "the Snowflake statement did not finish within 30 s; the cancel request failed, but Snowflake stops the statement at its 30 s statement timeout (statement h)"
        );
        let call = QueryError::Cancelled {
            platform: Platform::Databricks,
            statement_id: Some("s2".into()),
            cancel_confirmed: false,
        };
        let text = call.to_string();
        assert!(
            text.contains("may still be running (statement s2)"),
            "{text}"
        );
        assert!(!text.contains("statement was cancelled"), "{text}");
        assert_eq!(call.outcome(), "cancelled");
    }
}
