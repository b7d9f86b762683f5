//! Client of Snowflake's SQL API v2 (`/api/v2/statements`).
//!
//! One [`StatementsClient::run`] call runs one logical statement:
//! - submit with a fresh `requestId`; retries (429/5xx/transport, through
//!   [`RetryPolicy`], honouring `Retry-After`) resend the same `requestId`
//!   with `retry=true`, so Snowflake never runs the statement twice;
//! - a 202 answer is polled at `GET /api/v2/statements/{handle}` with growing
//!   intervals, reporting progress and honouring the call's cancellation
//!   (`POST .../{handle}/cancel`, then [`SqlApiError::Cancelled`]) and the
//!   overall statement timeout (sent to Snowflake as `timeout` too);
//! - further partitions (`?partition=N`) are fetched only while the result is
//!   under the row and byte limits; the result is then marked truncated;
//! - rows are decoded by [`super::decode`].
//!
//! Authentication is either the agent's key-pair JWT (only for PAT
//! management) or the user's PAT; the caller chooses with [`Auth`]. Errors are
//! typed ([`SqlApiError`]) so the PAT layer can tell a rejected credential
//! from a failed statement, and a credential refused at submit (nothing ran)
//! from one refused after Snowflake accepted the statement
//! ([`SqlApiError::RejectedAfterAcceptance`]: it may have run, so it is not
//! submitted again); none of them carries a secret. Cancelled and timed-out
//! statements say whether Snowflake acknowledged the cancel request.

use super::decode::{RowDecoder, wire_row_bytes};
use super::errors::{CODE_CANCELLED, CODE_TIMEOUT, SqlApiError, unavailable};
use super::wire::{
    ResultSetMetaData, STATEMENTS_PATH, StatementAnswer, StatementRequest, TOKEN_TYPE_HEADER,
};
use crate::cursor::PagePosition;
use crate::query::CallContext;
use crate::result::{Platform, ResultSet};
use crate::retry::{RetryPolicy, UpstreamResponse};
use crate::secret::Secret;
use serde_json::Value;
use std::time::Duration;
use tokio::time::Instant;

/// Extra time past the statement timeout before the client gives up itself.
const TIMEOUT_GRACE: Duration = Duration::from_secs(2);

/// How a request authenticates.
#[derive(Debug, Clone)]
pub enum Auth {
    /// The agent's key-pair JWT (PAT management only).
    KeyPairJwt(Secret),
    /// The end user's PAT, restricted to the vended role.
    Pat(Secret),
}

impl Auth {
    fn token_type(&self) -> &'static str {
        match self {
            Auth::KeyPairJwt(_) => super::keypair::TOKEN_TYPE,
            Auth::Pat(_) => "PROGRAMMATIC_ACCESS_TOKEN",
        }
    }

    fn secret(&self) -> &Secret {
        match self {
            Auth::KeyPairJwt(s) | Auth::Pat(s) => s,
        }
    }
}

/// How much of a result to fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchLimits {
    pub max_rows: usize,
    pub max_bytes: usize,
}

/// How the submit request ended.
enum Submitted {
    Answer(Result<UpstreamResponse, SqlApiError>),
    Interrupted(SqlApiError),
}

/// What one HTTP answer means for the statement.
enum Outcome {
    Done(StatementAnswer),
    Running(String),
}

/// SQL API v2 client (cheap to clone).
#[derive(Debug, Clone)]
pub struct StatementsClient {
    http: reqwest::Client,
    retry: RetryPolicy,
    poll_initial: Duration,
    poll_max: Duration,
}

impl StatementsClient {
    pub fn new(http: reqwest::Client, retry: RetryPolicy) -> Self {
        Self {
            http,
            retry,
            poll_initial: Duration::from_millis(250),
            poll_max: Duration::from_secs(5),
        }
    }

    /// Change how often a running statement is polled (first interval, cap).
    pub fn with_polling(mut self, initial: Duration, max: Duration) -> Self {
        self.poll_initial = initial;
        self.poll_max = max.max(initial);
        self
    }

    /// Replace the retry policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.set_retry(retry);
        self
    }

    /// Replace the retry policy (used by the next request).
    pub fn set_retry(&mut self, retry: RetryPolicy) {
        self.retry = retry;
    }

    /// The retry policy every request uses.
    pub fn retry(&self) -> &RetryPolicy {
        &self.retry
    }

    /// Run one statement and return its (possibly truncated) decoded result.
    pub async fn run(
        &self,
        ctx: &CallContext,
        base_url: &str,
        auth: &Auth,
        request: &StatementRequest,
        limits: FetchLimits,
    ) -> Result<ResultSet, SqlApiError> {
        let base = base_url.trim_end_matches('/').to_string();
        let started = Instant::now();
        let deadline = started + Duration::from_secs(request.timeout_secs) + TIMEOUT_GRACE;
        let timeout_secs = request.timeout_secs;

        self.submit_and_wait(ctx, &base, auth, request, limits, started, deadline)
            .await
            .map_err(|e| match e {
                SqlApiError::Timeout {
                    statement_handle,
                    cancel_confirmed,
                    ..
                } => SqlApiError::Timeout {
                    seconds: timeout_secs,
                    statement_handle,
                    cancel_confirmed,
                },
                other => other,
            })
    }

    #[allow(clippy::too_many_arguments)]
    async fn submit_and_wait(
        &self,
        ctx: &CallContext,
        base: &str,
        auth: &Auth,
        request: &StatementRequest,
        limits: FetchLimits,
        started: Instant,
        deadline: Instant,
    ) -> Result<ResultSet, SqlApiError> {
        let base = base.to_string();
        let timeout_secs = request.timeout_secs;
        let mut submit = tokio::spawn(self.clone().submit(
            ctx.clone(),
            base.clone(),
            auth.clone(),
            request.body(),
        ));
        let interrupted = tokio::select! {
            joined = &mut submit => Submitted::Answer(joined.map_err(|e| SqlApiError::Protocol {
                message: format!("submit task failed: {e}"),
            })?),
            _ = ctx.cancel.cancelled() => Submitted::Interrupted(SqlApiError::Cancelled {
                statement_handle: None,
                cancel_confirmed: false,
            }),
            _ = tokio::time::sleep_until(deadline) => Submitted::Interrupted(SqlApiError::Timeout {
                seconds: timeout_secs,
                statement_handle: None,
                cancel_confirmed: false,
            }),
        };
        let submitted = match interrupted {
            Submitted::Answer(answer) => answer,
            Submitted::Interrupted(error) => {
                // The statement may be starting: cancel it in the background once
                // Snowflake names its handle, and answer the caller now.
                let client = self.clone();
                let (ctx, auth) = (ctx.clone(), auth.clone());
                tokio::spawn(async move {
                    if let Ok(Ok(resp)) = submit.await
                        && let Ok(Outcome::Running(handle)) = interpret(resp)
                    {
                        client.cancel(&ctx, &base, &auth, &handle).await;
                    }
                });
                return Err(error);
            }
        };
        let mut outcome = interpret(submitted?)?;
        let mut step = 0u32;
        let mut interval = self.poll_initial;
        let first = loop {
            match outcome {
                Outcome::Done(answer) => break answer,
                Outcome::Running(handle) => {
                    ctx.set_statement_id(&handle);
                    step += 1;
                    ctx.report(
                        step,
                        &format!(
                            "Snowflake statement {handle} is running ({} s)",
                            started.elapsed().as_secs()
                        ),
                    );
                    tokio::select! {
                        _ = tokio::time::sleep(interval) => {}
                        _ = ctx.cancel.cancelled() => {
                            let cancel_confirmed = self.cancel(ctx, &base, auth, &handle).await;
                            return Err(SqlApiError::Cancelled { statement_handle: Some(handle), cancel_confirmed });
                        }
                        _ = tokio::time::sleep_until(deadline) => {
                            let cancel_confirmed = self.cancel(ctx, &base, auth, &handle).await;
                            return Err(SqlApiError::Timeout { seconds: timeout_secs, statement_handle: Some(handle), cancel_confirmed });
                        }
                    }
                    interval = interval.mul_f64(1.5).min(self.poll_max);
                    let url = handle_url(&base, &handle, None);
                    let polled = tokio::select! {
                        r = self.send_get(ctx, &url, auth) => r,
                        _ = ctx.cancel.cancelled() => {
                            let cancel_confirmed = self.cancel(ctx, &base, auth, &handle).await;
                            return Err(SqlApiError::Cancelled { statement_handle: Some(handle), cancel_confirmed });
                        }
                    };
                    outcome = interpret(polled?).map_err(|e| after_acceptance(e, &handle))?;
                }
            }
        };
        self.collect(ctx, &base, auth, first, limits, step).await
    }

    /// POST the statement (retries resend the same requestId with retry=true).
    async fn submit(
        self,
        ctx: CallContext,
        base: String,
        auth: Auth,
        body: Value,
    ) -> Result<UpstreamResponse, SqlApiError> {
        let request_id = uuid::Uuid::new_v4().to_string();
        let url = format!("{base}{STATEMENTS_PATH}");
        let sent = self
            .retry
            .send(|attempt| {
                ctx.count_upstream_request();
                let mut query = vec![("requestId", request_id.as_str())];
                if attempt > 1 {
                    query.push(("retry", "true"));
                }
                self.request(reqwest::Method::POST, &url, &auth)
                    .query(&query)
                    .json(&body)
            })
            .await;
        match sent {
            Ok(resp) => Ok(resp),
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn send_get(
        &self,
        ctx: &CallContext,
        url: &str,
        auth: &Auth,
    ) -> Result<UpstreamResponse, SqlApiError> {
        self.retry
            .send(|_| {
                ctx.count_upstream_request();
                self.request(reqwest::Method::GET, url, auth)
            })
            .await
            .map_err(unavailable)
    }

    /// Ask Snowflake to cancel a running statement (best effort, logged);
    /// true when Snowflake acknowledged the request.
    pub async fn cancel(&self, ctx: &CallContext, base: &str, auth: &Auth, handle: &str) -> bool {
        let url = format!("{}/cancel", handle_url(base, handle, None));
        let result = self
            .retry
            .send(|_| {
                ctx.count_upstream_request();
                self.request(reqwest::Method::POST, &url, auth)
            })
            .await;
        match result {
            Ok(resp) if resp.is_success() => {
                tracing::info!(statement = handle, "cancelled Snowflake statement");
                true
            }
            Ok(resp) => {
                tracing::warn!(
                    statement = handle,
                    status = resp.status,
                    "Snowflake did not accept the cancel request"
                );
                false
            }
            Err(e) => {
                tracing::warn!(statement = handle, error = %e, "could not send the cancel request to Snowflake");
                false
            }
        }
    }

    fn request(&self, method: reqwest::Method, url: &str, auth: &Auth) -> reqwest::RequestBuilder {
        self.http
            .request(method, url)
            .bearer_auth(auth.secret().expose())
            .header(TOKEN_TYPE_HEADER, auth.token_type())
            .header(reqwest::header::ACCEPT, "application/json")
    }

    /// Decode the first partition and fetch more while under the limits.
    async fn collect(
        &self,
        ctx: &CallContext,
        base: &str,
        auth: &Auth,
        first: StatementAnswer,
        limits: FetchLimits,
        step: u32,
    ) -> Result<ResultSet, SqlApiError> {
        let handle = first
            .statement_handle
            .clone()
            .ok_or_else(|| SqlApiError::Protocol {
                message: "result without statementHandle".into(),
            })?;
        ctx.set_statement_id(&handle);
        let meta = first
            .result_set_meta_data
            .ok_or_else(|| SqlApiError::Protocol {
                message: format!("result of statement {handle} has no resultSetMetaData"),
            })?;
        let data = first.data.unwrap_or_default();
        self.collect_from(
            ctx,
            base,
            auth,
            &handle,
            meta,
            data,
            PagePosition::START,
            limits,
            step,
        )
        .await
    }

    /// Read the page of finished statement `handle` that starts at `start`
    /// (`fetch_more`): the result's metadata comes from
    /// `GET /api/v2/statements/{handle}` (which also carries partition 0), any
    /// other partition from `?partition=N`. The SQL API keeps a finished
    /// statement's partitions fetchable this way for the result's lifetime
    /// (snowflakedb/snowflake-rest-api-specs `specifications/sqlapi.yaml`,
    /// `GetStatementStatus`: "returns the requested partition of the result set").
    /// Nothing is submitted; a refused credential is reported as such (the
    /// caller must not re-vend for a page).
    pub async fn fetch_page(
        &self,
        ctx: &CallContext,
        base_url: &str,
        auth: &Auth,
        handle: &str,
        start: PagePosition,
        limits: FetchLimits,
    ) -> Result<ResultSet, SqlApiError> {
        let base = base_url.trim_end_matches('/');
        let answer = match interpret(
            self.send_get(ctx, &handle_url(base, handle, None), auth)
                .await?,
        )? {
            Outcome::Done(answer) => answer,
            Outcome::Running(_) => {
                return Err(SqlApiError::Protocol {
                    message: format!("statement {handle} answered 202 although it had finished"),
                });
            }
        };
        let meta = answer
            .result_set_meta_data
            .ok_or_else(|| SqlApiError::Protocol {
                message: format!("result of statement {handle} has no resultSetMetaData"),
            })?;
        let partitions = meta.partition_info.len().max(1) as u64;
        if start.index >= partitions {
            return Err(SqlApiError::Protocol {
                message: format!(
                    "statement {handle} has {partitions} partition(s); the cursor points at partition {}",
                    start.index
                ),
            });
        }
        let data = if start.index == 0 {
            answer.data.unwrap_or_default()
        } else {
            self.partition(ctx, base, auth, handle, start.index as usize)
                .await?
        };
        self.collect_from(ctx, base, auth, handle, meta, data, start, limits, 0)
            .await
    }

    /// `GET ?partition=N` of a finished statement.
    async fn partition(
        &self,
        ctx: &CallContext,
        base: &str,
        auth: &Auth,
        handle: &str,
        partition: usize,
    ) -> Result<Vec<Value>, SqlApiError> {
        let url = handle_url(base, handle, Some(partition));
        let resp = tokio::select! {
            r = self.send_get(ctx, &url, auth) => r?,
            _ = ctx.cancel.cancelled() => {
                // The statement has finished: only the fetch is abandoned.
                return Err(SqlApiError::Cancelled { statement_handle: Some(handle.to_string()), cancel_confirmed: true });
            }
        };
        let answer = match interpret(resp).map_err(|e| after_acceptance(e, handle))? {
            Outcome::Done(a) => a,
            Outcome::Running(_) => {
                return Err(SqlApiError::Protocol {
                    message: format!("partition {partition} of statement {handle} answered 202"),
                });
            }
        };
        answer.data.ok_or_else(|| SqlApiError::Protocol {
            message: format!("partition {partition} of statement {handle} has no data"),
        })
    }

    /// Decode from `start` (whose partition's rows are `data`) and fetch
    /// further partitions while under the limits; `next_position` says where
    /// the rows were cut, if they were.
    #[allow(clippy::too_many_arguments)]
    async fn collect_from(
        &self,
        ctx: &CallContext,
        base: &str,
        auth: &Auth,
        handle: &str,
        meta: ResultSetMetaData,
        data: Vec<Value>,
        start: PagePosition,
        limits: FetchLimits,
        mut step: u32,
    ) -> Result<ResultSet, SqlApiError> {
        if let Some(format) = &meta.format
            && !format.eq_ignore_ascii_case("jsonv2")
        {
            return Err(SqlApiError::Protocol {
                message: format!("result format {format:?} is not supported (expected jsonv2)"),
            });
        }
        let decoder = RowDecoder::new(&meta.row_type);
        let mut result = ResultSet::new(
            Platform::Snowflake,
            handle.to_string(),
            decoder.columns().to_vec(),
        );
        result.total_row_count = meta.num_rows;
        let mut state = Accumulator {
            decoder: &decoder,
            limits,
            bytes: 0,
            seen: 0,
            cut: None,
        };
        let mut partition = start.index as usize;
        state.add(
            &mut result,
            data,
            partition,
            start.row_offset as usize,
            handle,
        )?;
        let partitions = meta.partition_info.len().max(1);
        partition += 1;
        while partition < partitions && state.cut.is_none() {
            if result.rows.len() >= limits.max_rows || state.bytes >= limits.max_bytes {
                state.cut = Some(PagePosition {
                    index: partition as u64,
                    row_offset: 0,
                });
                break;
            }
            step += 1;
            ctx.report(
                step,
                &format!(
                    "fetching result partition {} of {partitions}",
                    partition + 1
                ),
            );
            let data = self.partition(ctx, base, auth, handle, partition).await?;
            state.add(&mut result, data, partition, 0, handle)?;
            partition += 1;
        }
        result.row_count = result.rows.len();
        // Only the first page can compare its rows with the statement's total.
        let known_more = start == PagePosition::START
            && meta.num_rows.is_some_and(|n| n > result.row_count as u64);
        result.truncated = state.cut.is_some() || known_more;
        result.next_position = state.cut;
        if result.total_row_count.is_none() && !result.truncated && start == PagePosition::START {
            result.total_row_count = Some(result.row_count as u64);
        }
        Ok(result)
    }
}

struct Accumulator<'a> {
    decoder: &'a RowDecoder,
    limits: FetchLimits,
    bytes: usize,
    /// Rows decoded so far (for error messages).
    seen: usize,
    /// Where the limits cut the result (partition, row within it).
    cut: Option<PagePosition>,
}

impl Accumulator<'_> {
    /// Add the rows of `partition` from row `skip` on, until a limit cuts.
    fn add(
        &mut self,
        result: &mut ResultSet,
        data: Vec<Value>,
        partition: usize,
        skip: usize,
        handle: &str,
    ) -> Result<(), SqlApiError> {
        for (i, row) in data.into_iter().enumerate().skip(skip) {
            if self.cut.is_some() {
                break;
            }
            let size = wire_row_bytes(&row);
            if result.rows.len() >= self.limits.max_rows
                || (!result.rows.is_empty() && self.bytes + size > self.limits.max_bytes)
            {
                self.cut = Some(PagePosition {
                    index: partition as u64,
                    row_offset: i as u64,
                });
                break;
            }
            let index = self.seen;
            self.seen += 1;
            let decoded = self
                .decoder
                .decode(index, &row)
                .map_err(|e| SqlApiError::Protocol {
                    message: format!("statement {handle}: {e}"),
                })?;
            self.bytes += size;
            result.rows.push(decoded);
        }
        result.row_count = result.rows.len();
        Ok(())
    }
}

fn handle_url(base: &str, handle: &str, partition: Option<usize>) -> String {
    let encoded: String = url::form_urlencoded::byte_serialize(handle.as_bytes()).collect();
    match partition {
        Some(p) => format!("{base}{STATEMENTS_PATH}/{encoded}?partition={p}"),
        None => format!("{base}{STATEMENTS_PATH}/{encoded}"),
    }
}

/// An error from polling or fetching statement `handle` (which Snowflake
/// accepted): name the statement, and mark a refused credential so the
/// statement is not submitted again.
fn after_acceptance(e: SqlApiError, handle: &str) -> SqlApiError {
    if e.is_credential_rejected() && e.accepted_statement().is_none() {
        return SqlApiError::RejectedAfterAcceptance {
            statement_handle: handle.to_string(),
            rejection: Box::new(e),
        };
    }
    match e {
        SqlApiError::Statement {
            code,
            sql_state,
            message,
            statement_handle: None,
        } => SqlApiError::Statement {
            code,
            sql_state,
            message,
            statement_handle: Some(handle.to_string()),
        },
        other => other,
    }
}

fn parse_answer(resp: &UpstreamResponse) -> StatementAnswer {
    resp.json::<StatementAnswer>().unwrap_or_default()
}

fn message_of(resp: &UpstreamResponse, answer: &StatementAnswer) -> String {
    answer
        .message
        .clone()
        .unwrap_or_else(|| match resp.text_snippet(300) {
            s if s.trim().is_empty() => format!("HTTP {}", resp.status),
            s => s,
        })
}

/// Map one HTTP answer to an outcome or an error.
fn interpret(resp: UpstreamResponse) -> Result<Outcome, SqlApiError> {
    match resp.status {
        200 => {
            let answer: StatementAnswer = resp.json().map_err(|e| SqlApiError::Protocol {
                message: format!("result does not parse: {e}"),
            })?;
            Ok(Outcome::Done(answer))
        }
        202 => {
            let answer = parse_answer(&resp);
            answer
                .statement_handle
                .map(Outcome::Running)
                .ok_or_else(|| SqlApiError::Protocol {
                    message: "HTTP 202 without statementHandle".into(),
                })
        }
        401 => {
            let answer = parse_answer(&resp);
            Err(SqlApiError::Unauthorized {
                status: 401,
                message: message_of(&resp, &answer),
                code: answer.code,
            })
        }
        403 => {
            let answer = parse_answer(&resp);
            Err(SqlApiError::Forbidden {
                message: message_of(&resp, &answer),
            })
        }
        404 => {
            let answer = parse_answer(&resp);
            Err(SqlApiError::NotFound {
                message: message_of(&resp, &answer),
            })
        }
        // Snowflake stopped the statement itself at its timeout.
        408 => Err(SqlApiError::Timeout {
            seconds: 0,
            statement_handle: parse_answer(&resp).statement_handle,
            cancel_confirmed: true,
        }),
        400 | 422 => {
            let answer = parse_answer(&resp);
            let message = message_of(&resp, &answer);
            match answer.code.as_deref() {
                Some(CODE_CANCELLED) => Err(SqlApiError::Cancelled {
                    statement_handle: answer.statement_handle,
                    cancel_confirmed: true,
                }),
                Some(CODE_TIMEOUT) => Err(SqlApiError::Timeout {
                    seconds: 0,
                    statement_handle: answer.statement_handle,
                    cancel_confirmed: true,
                }),
                _ => Err(SqlApiError::Statement {
                    code: answer.code,
                    sql_state: answer.sql_state,
                    message,
                    statement_handle: answer.statement_handle,
                }),
            }
        }
        status => {
            let answer = parse_answer(&resp);
            Err(SqlApiError::Protocol {
                message: format!("HTTP {status}: {}", message_of(&resp, &answer)),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::QueryError;
    use serde_json::json;

    fn answer(status: u16, body: Value) -> UpstreamResponse {
        UpstreamResponse {
            status,
            headers: reqwest::header::HeaderMap::new(),
            body: bytes::Bytes::from(body.to_string()),
            attempts: 1,
        }
    }

    fn error_of(status: u16, body: Value) -> SqlApiError {
        match interpret(answer(status, body)) {
            Err(e) => e,
            Ok(_) => panic!("HTTP {status} must be an error"),
        }
    }

    #[test]
    fn statement_errors_keep_code_state_and_handle() {
        let e = error_of(
            422,
            json!({"code": "002003", "sqlState": "42S02", "message": "Object 'X' does not exist or not authorized.", "statementHandle": "h1"}),
        );
        assert!(!e.is_credential_rejected());
        assert_eq!(e.statement_handle(), Some("h1"));
        let q: QueryError = e.into();
        assert_eq!(
            q.to_string(),
            "snowflake error 002003 (SQLSTATE 42S02): Object 'X' does not exist or not authorized."
        );
    }

    #[test]
    fn cancel_and_timeout_codes_become_their_outcomes() {
        let c = error_of(
            422,
            json!({"code": "000604", "message": "SQL execution canceled", "statementHandle": "h"}),
        );
        assert!(
            matches!(c, SqlApiError::Cancelled { ref statement_handle, cancel_confirmed: true } if statement_handle.as_deref() == Some("h"))
        );
        let t = error_of(422, json!({"code": "000630", "message": "timeout"}));
        assert!(matches!(t, SqlApiError::Timeout { .. }));
    }

    #[test]
    fn rejected_credentials_are_recognised() {
        assert!(
            error_of(401, json!({"code": "390303", "message": "Invalid token"}))
                .is_credential_rejected()
        );
        assert!(error_of(401, json!("not json")).is_credential_rejected());
        let role_gone = error_of(
            422,
            json!({"code": "390189", "sqlState": "08004", "message": "Role 'R' specified in the connect string is not granted to this user."}),
        );
        assert!(role_gone.is_credential_rejected());
        assert!(matches!(
            QueryError::from(error_of(403, json!({"message": "no"}))),
            QueryError::Credential(_)
        ));
    }

    #[test]
    fn a_credential_refused_after_acceptance_marks_the_statement() {
        let refused = || error_of(401, json!({"code": "390318", "message": "Token expired"}));
        assert_eq!(
            refused().accepted_statement(),
            None,
            "at submit: nothing ran"
        );
        let e = after_acceptance(refused(), "h9");
        assert!(e.is_credential_rejected());
        assert!(e.is_unauthorized());
        assert_eq!(e.accepted_statement(), Some("h9"));
        assert_eq!(e.statement_handle(), Some("h9"));
        match QueryError::from(e) {
            QueryError::Credential(m) => {
                assert!(m.contains("390318") && m.contains("statement h9"), "{m}")
            }
            other => panic!("expected a credential error, got {other:?}"),
        }
        let failed = after_acceptance(
            error_of(
                422,
                json!({"code": "002003", "message": "Object 'X' does not exist or not authorized."}),
            ),
            "h9",
        );
        assert_eq!(failed.accepted_statement(), None);
        assert_eq!(failed.statement_handle(), Some("h9"));
    }

    #[test]
    fn running_answers_need_a_handle() {
        assert!(matches!(
            interpret(answer(202, json!({"code": "333334", "statementHandle": "h"}))),
            Ok(Outcome::Running(ref h)) if h == "h"
        ));
        assert!(matches!(
            interpret(answer(202, json!({"code": "333334"}))),
            Err(SqlApiError::Protocol { .. })
        ));
        assert!(matches!(
            interpret(answer(200, json!("garbage"))),
            Err(SqlApiError::Protocol { .. })
        ));
    }

    #[test]
    fn handles_are_escaped_in_statement_urls() {
        assert_eq!(
            handle_url("http://h", "01a/b", Some(2)),
            "http://h/api/v2/statements/01a%2Fb?partition=2"
        );
    }
}
