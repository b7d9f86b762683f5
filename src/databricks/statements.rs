//! Client of the Databricks SQL Statement Execution API 2.0.
//!
//! [`StatementsClient::run`] submits one statement with a group-scoped token
//! (`INLINE` disposition, `JSON_ARRAY` format, `row_limit` the larger of
//! `max_rows + 1` (so a cut is detectable) and the rows kept for `fetch_more`
//! (see [`row_limit`]), `byte_limit = max_bytes`), polls it with backoff while
//! it is `PENDING`/`RUNNING` (reporting progress, honouring the caller's
//! cancellation and the statement timeout, cancelling the statement on
//! either and saying whether Databricks acknowledged the cancel: no
//! server-side timeout is sent, so an unacknowledged cancel leaves the
//! statement running), then follows `next_chunk_index` through the result
//! chunks in order until the rows end or the row/byte limit is reached,
//! decoding each chunk with [`RowDecoder`].
//!
//! Every statement carries `query_tags` naming the end user and the tool.
//! Every HTTP request goes through [`RetryPolicy`] (429 and 5xx with
//! `Retry-After`, connection resets), except that the submit, which has no
//! idempotency key, is repeated only when it cannot have run (connect error,
//! 429, 503): after a lost answer or a 500/502/504 the call fails and says so,
//! rather than risk running the statement twice. A token rejected with 401/403 is reported as
//! [`RunError::TokenRejected`] so the caller can re-vend once.

use super::decode::RowDecoder;
use super::errors::RunError;
use super::wire::{
    ApiErrorBody, ExecuteStatementRequest, QueryTag, ResultData, STATEMENTS_PATH,
    StatementResponse, StatementState,
};
use crate::cursor::PagePosition;
use crate::query::{CallContext, QueryError, QueryRequest};
use crate::result::{Platform, ResultSet};
use crate::retry::{Idempotency, RetryPolicy, UpstreamResponse};
use crate::secret::Secret;
use std::time::{Duration, Instant};

const SERVICE: &str = "Databricks";
/// INLINE results are capped at 25 MiB by Databricks.
const INLINE_BYTE_CAP: usize = 25 * 1024 * 1024;

/// Default `wait_timeout` of the submit request.
pub const DEFAULT_WAIT_TIMEOUT: &str = "10s";

/// Check a `wait_timeout`: `"0s"` or `"5s"`..=`"50s"`.
pub fn validate_wait_timeout(value: &str) -> Result<(), String> {
    let secs: u32 = value
        .strip_suffix('s')
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("wait_timeout {value:?} must look like \"10s\""))?;
    if secs == 0 || (5..=50).contains(&secs) {
        Ok(())
    } else {
        Err(format!(
            "wait_timeout {value:?} must be \"0s\" or between \"5s\" and \"50s\""
        ))
    }
}

/// The submit's `wait_timeout`, never longer than the statement timeout
/// (`"0s"` when that is below the API's 5 s minimum).
pub fn effective_wait_timeout(configured: &str, statement_timeout: Duration) -> String {
    let configured_secs = configured
        .strip_suffix('s')
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(10);
    let secs = configured_secs.min(statement_timeout.as_secs());
    if secs < 5 {
        "0s".into()
    } else {
        format!("{secs}s")
    }
}

/// How a statement is submitted and polled.
#[derive(Debug, Clone, PartialEq)]
pub struct StatementSettings {
    pub warehouse_id: String,
    /// `wait_timeout` of the submit (`"0s"` or `"5s"`..`"50s"`).
    pub wait_timeout: String,
    /// Overall time a statement may take before it is cancelled.
    pub statement_timeout: Duration,
    /// First pause between status polls; grows by half each poll.
    pub poll_initial: Duration,
    /// Longest pause between status polls.
    pub poll_max: Duration,
    /// Rows Databricks keeps for `fetch_more` (`limits.max_continuation_rows`):
    /// the submit's `row_limit` is the larger of this and `max_rows + 1`. 0 keeps
    /// only `max_rows + 1` (no continuation). See [`row_limit`].
    pub continuation_rows: u64,
}

/// The submit's `row_limit`.
///
/// Databricks applies `row_limit` to the statement's result and marks it
/// `truncated`; rows past it are never kept (databricks-sdk-go
/// `service/sql/model.go`, `ExecuteStatementRequest.RowLimit`). So with
/// `row_limit = max_rows + 1` nothing is left to continue from. Instead the
/// platform keeps up to `continuation_rows` rows, in INLINE chunks fetched one
/// at a time (`GET .../result/chunks/{n}`, following `next_chunk_index`), while
/// the first page still returns only `max_rows`. The kept rows stay bounded
/// by `byte_limit` as well (`max_result_bytes`, at most the 25 MiB beyond which
/// an INLINE statement is aborted with no result at all, model.go
/// `ExecuteStatementRequest.Disposition`), so the extra rows cost the
/// warehouse at most that much per statement. `max_rows + 1` stays the floor
/// so a cut is always detectable.
pub fn row_limit(max_rows: usize, continuation_rows: u64) -> u64 {
    (max_rows as u64).saturating_add(1).max(continuation_rows)
}

/// A failed HTTP exchange with the API.
enum ApiFailure {
    TokenRejected(String),
    Query(QueryError),
}

/// Statement Execution API client for one workspace.
#[derive(Debug, Clone)]
pub struct StatementsClient {
    base: String,
    http: reqwest::Client,
    retry: RetryPolicy,
    settings: StatementSettings,
}

impl StatementsClient {
    /// `host` is the workspace base URL without a trailing slash.
    pub fn new(
        host: &str,
        http: reqwest::Client,
        retry: RetryPolicy,
        settings: StatementSettings,
    ) -> Self {
        Self {
            base: format!("{host}{STATEMENTS_PATH}"),
            http,
            retry,
            settings,
        }
    }

    pub fn settings(&self) -> &StatementSettings {
        &self.settings
    }

    pub fn settings_mut(&mut self) -> &mut StatementSettings {
        &mut self.settings
    }

    /// Change how often a running statement is polled (first interval, cap).
    pub fn with_polling(mut self, initial: Duration, max: Duration) -> Self {
        self.settings.poll_initial = initial;
        self.settings.poll_max = max.max(initial);
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

    /// Run `request` with `token` and return its decoded (possibly truncated) rows.
    pub async fn run(
        &self,
        token: &Secret,
        ctx: &CallContext,
        request: &QueryRequest,
    ) -> Result<ResultSet, RunError> {
        let started = Instant::now();
        let max_bytes = request.max_bytes.min(INLINE_BYTE_CAP);
        let body = ExecuteStatementRequest {
            warehouse_id: self.settings.warehouse_id.clone(),
            statement: request.sql.clone(),
            catalog: request.database.clone(),
            schema: request.schema.clone(),
            wait_timeout: effective_wait_timeout(
                &self.settings.wait_timeout,
                self.settings.statement_timeout,
            ),
            on_wait_timeout: "CONTINUE".into(),
            disposition: "INLINE".into(),
            format: "JSON_ARRAY".into(),
            row_limit: Some(row_limit(request.max_rows, self.settings.continuation_rows)),
            byte_limit: (max_bytes > 0).then_some(max_bytes as u64),
            query_tags: query_tags(ctx),
            parameters: request
                .parameters
                .iter()
                .map(|p| super::wire::StatementParameter {
                    name: p.name.clone(),
                    value: p.value.clone(),
                    type_name: "STRING".into(),
                })
                .collect(),
        };
        // No idempotency key exists for a submit: never repeated once it may have run.
        let resp = self
            .retry
            .send_with(Idempotency::NotIdempotent, |_| {
                ctx.count_upstream_request();
                self.authed(reqwest::Method::POST, self.base.clone(), token)
                    .json(&body)
            })
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        let mut statement: StatementResponse = parse(&resp, None).map_err(|f| match f {
            ApiFailure::TokenRejected(message) => RunError::TokenRejected {
                before_submit: true,
                statement_id: None,
                message,
            },
            ApiFailure::Query(q) => RunError::Query(q),
        })?;
        let id = statement.statement_id.clone();
        ctx.set_statement_id(&id);
        tracing::debug!(statement_id = %id, state = statement.status.state.as_str(), "Databricks statement submitted");

        let mut polls = 0u32;
        let mut pause = self.settings.poll_initial;
        while matches!(
            statement.status.state,
            StatementState::Pending | StatementState::Running | StatementState::Unknown
        ) {
            if ctx.cancel.is_cancelled() {
                let cancel_confirmed = self.cancel(token, ctx, &id).await;
                return Err(QueryError::Cancelled {
                    platform: Platform::Databricks,
                    statement_id: Some(id),
                    cancel_confirmed,
                }
                .into());
            }
            let elapsed = started.elapsed();
            if elapsed >= self.settings.statement_timeout {
                // Nothing else stops a Databricks statement (no server-side
                // timeout is sent): the answer says whether the cancel held.
                let cancel_confirmed = self.cancel(token, ctx, &id).await;
                return Err(QueryError::Timeout {
                    platform: Platform::Databricks,
                    seconds: self.settings.statement_timeout.as_secs(),
                    statement_id: Some(id),
                    cancel_confirmed,
                }
                .into());
            }
            polls += 1;
            ctx.report(
                polls,
                &format!(
                    "Databricks statement {id} is {} ({:.1} s)",
                    statement.status.state.as_str(),
                    elapsed.as_secs_f64()
                ),
            );
            let left = self.settings.statement_timeout - elapsed;
            tokio::select! {
                _ = tokio::time::sleep(pause.min(left)) => {}
                _ = ctx.cancel.cancelled() => continue,
            }
            pause = pause.mul_f64(1.5).min(self.settings.poll_max);
            if started.elapsed() >= self.settings.statement_timeout {
                continue;
            }
            statement = self.status(token, ctx, &id).await?;
        }

        match statement.status.state {
            StatementState::Succeeded => {
                let mut result = self.collect(token, ctx, request, statement).await?;
                if self.settings.continuation_rows == 0 {
                    // Only the one row proving the cut was kept: nothing to continue.
                    result.next_position = None;
                }
                Ok(result)
            }
            StatementState::Canceled if ctx.cancel.is_cancelled() => Err(QueryError::Cancelled {
                platform: Platform::Databricks,
                statement_id: Some(id),
                cancel_confirmed: true,
            }
            .into()),
            state => {
                let error = statement.status.error.unwrap_or_default();
                let message = error.message.unwrap_or_else(|| match state {
                    StatementState::Canceled => "the statement was canceled on Databricks".into(),
                    StatementState::Closed => {
                        "the statement was closed before its result was read".into()
                    }
                    _ => "the statement failed without an error message".into(),
                });
                Err(QueryError::Statement {
                    platform: Platform::Databricks,
                    code: error
                        .error_code
                        .or_else(|| Some(state.as_str().to_string())),
                    sql_state: statement.status.sql_state,
                    message,
                    statement_id: Some(id),
                }
                .into())
            }
        }
    }

    /// Decode the inline chunks of a succeeded statement, in order, up to the limits.
    async fn collect(
        &self,
        token: &Secret,
        ctx: &CallContext,
        request: &QueryRequest,
        statement: StatementResponse,
    ) -> Result<ResultSet, RunError> {
        self.collect_from(
            token,
            ctx,
            statement,
            PagePosition::START,
            request.max_rows,
            request.max_bytes,
        )
        .await
    }

    /// Read the page of finished statement `id` that starts at `start`
    /// (`fetch_more`) with the token the statement ran under: the manifest
    /// (schema, chunk count) comes from `GET /api/2.0/sql/statements/{id}`,
    /// which also carries chunk 0; another chunk from
    /// `GET .../result/chunks/{n}` (databricks-sdk-go `service/sql/model.go`,
    /// `GetStatementResultChunkNRequest`; chunks are followed through
    /// `next_chunk_index`). Nothing is submitted.
    pub async fn fetch_page(
        &self,
        token: &Secret,
        ctx: &CallContext,
        id: &str,
        start: PagePosition,
        max_rows: usize,
        max_bytes: usize,
    ) -> Result<ResultSet, RunError> {
        let mut statement = self.status(token, ctx, id).await?;
        match statement.status.state {
            StatementState::Succeeded => {}
            state => {
                return Err(QueryError::ContinuationRefused(format!(
                    "Databricks statement {id} is {} and no longer holds its result; run the query again",
                    state.as_str()
                ))
                .into());
            }
        }
        if start.index > 0 {
            // Only chunk 0 comes with the statement: read the cursor's chunk.
            statement.result = Some(self.chunk(token, ctx, id, start.index).await?);
        }
        self.collect_from(token, ctx, statement, start, max_rows, max_bytes)
            .await
    }

    /// Decode from `start` (`statement.result` holds that chunk, or chunk 0 is
    /// fetched) and follow `next_chunk_index` while under the limits;
    /// `next_position` says where the rows were cut, if they were.
    async fn collect_from(
        &self,
        token: &Secret,
        ctx: &CallContext,
        statement: StatementResponse,
        start: PagePosition,
        max_rows: usize,
        max_bytes: usize,
    ) -> Result<ResultSet, RunError> {
        let id = statement.statement_id;
        let protocol = |message: String| QueryError::Protocol {
            service: SERVICE,
            message: format!("statement {id}: {message}"),
        };
        let manifest = statement
            .manifest
            .ok_or_else(|| protocol("succeeded without a manifest".into()))?;
        if let Some(format) = &manifest.format
            && format != "JSON_ARRAY"
        {
            return Err(protocol(format!("result format is {format}, expected JSON_ARRAY")).into());
        }
        let decoder = RowDecoder::new(&manifest.schema.columns);
        let mut result =
            ResultSet::new(Platform::Databricks, id.clone(), decoder.columns().to_vec());
        let chunk_count = manifest
            .total_chunk_count
            .unwrap_or(manifest.chunks.len() as u64);
        let mut current = match statement.result {
            Some(data) => Some(data),
            None if chunk_count > 0 => Some(self.chunk(token, ctx, &id, 0).await?),
            None => None,
        };
        let first_page = start == PagePosition::START;
        let mut bytes = 0usize;
        // Absolute row number of the next row; a continuation page learns it
        // from its first chunk's `row_offset`.
        let mut rows_seen: Option<u64> = first_page.then_some(0);
        let mut expected_chunk = start.index;
        let mut skip = start.row_offset as usize;
        let mut cut: Option<PagePosition> = None;
        while let Some(data) = current.take() {
            if data.external_links.is_some() {
                return Err(protocol("result uses EXTERNAL_LINKS, expected INLINE".into()).into());
            }
            if let Some(index) = data.chunk_index
                && index != expected_chunk
            {
                return Err(protocol(format!(
                    "expected chunk {expected_chunk}, got chunk {index}"
                ))
                .into());
            }
            // Default-valued fields are left out of answers: no offset means 0.
            let offset = data.row_offset.unwrap_or(0);
            match rows_seen {
                Some(seen) if data.row_offset.is_some() && offset != seen => {
                    return Err(protocol(format!(
                        "chunk {expected_chunk} starts at row {offset}, expected row {seen}"
                    ))
                    .into());
                }
                Some(_) => {}
                None => rows_seen = Some(offset),
            }
            let mut seen = rows_seen.unwrap_or(0);
            for (i, raw) in data.data_array.unwrap_or_default().into_iter().enumerate() {
                if i < skip {
                    seen += 1;
                    continue;
                }
                let size: usize = raw.iter().map(value_bytes).sum();
                // A page always makes progress: its first row is kept whatever its size.
                if result.rows.len() >= max_rows
                    || (max_bytes > 0 && !result.rows.is_empty() && bytes + size > max_bytes)
                {
                    cut = Some(PagePosition {
                        index: expected_chunk,
                        row_offset: i as u64,
                    });
                    break;
                }
                let row = decoder
                    .decode(seen as usize, &raw)
                    .map_err(|e| protocol(format!("cannot decode the result: {e}")))?;
                bytes += size;
                seen += 1;
                result.rows.push(row);
            }
            rows_seen = Some(seen);
            skip = 0;
            if cut.is_some() {
                break;
            }
            if let Some(next) = data.next_chunk_index {
                if next <= expected_chunk {
                    return Err(protocol(format!(
                        "chunk {expected_chunk} points back to chunk {next}"
                    ))
                    .into());
                }
                if result.rows.len() >= max_rows || (max_bytes > 0 && bytes >= max_bytes) {
                    // Another chunk means more rows: the limit cuts here, no need to fetch it.
                    cut = Some(PagePosition {
                        index: next,
                        row_offset: 0,
                    });
                    break;
                }
                if ctx.cancel.is_cancelled() {
                    // The statement has finished: only the chunk fetch stops.
                    return Err(QueryError::Cancelled {
                        platform: Platform::Databricks,
                        statement_id: Some(id),
                        cancel_confirmed: true,
                    }
                    .into());
                }
                expected_chunk = next;
                current = Some(self.chunk(token, ctx, &id, next).await?);
            }
        }
        result.row_count = result.rows.len();
        // `manifest.truncated`: the platform itself cut the result at `row_limit` /
        // `byte_limit`; those rows are gone, so no cursor points past them.
        result.truncated = cut.is_some() || manifest.truncated;
        result.next_position = cut;
        result.total_row_count = if result.truncated {
            None
        } else if first_page {
            Some(manifest.total_row_count.unwrap_or(result.row_count as u64))
        } else {
            manifest.total_row_count
        };
        Ok(result)
    }

    async fn status(
        &self,
        token: &Secret,
        ctx: &CallContext,
        id: &str,
    ) -> Result<StatementResponse, RunError> {
        let url = format!("{}/{}", self.base, encode(id));
        let resp = self
            .retry
            .send(|_| {
                ctx.count_upstream_request();
                self.authed(reqwest::Method::GET, url.clone(), token)
            })
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        parse(&resp, Some(id)).map_err(|f| after_submit(f, id))
    }

    async fn chunk(
        &self,
        token: &Secret,
        ctx: &CallContext,
        id: &str,
        index: u64,
    ) -> Result<ResultData, RunError> {
        let url = format!("{}/{}/result/chunks/{index}", self.base, encode(id));
        let resp = self
            .retry
            .send(|_| {
                ctx.count_upstream_request();
                self.authed(reqwest::Method::GET, url.clone(), token)
            })
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        parse(&resp, Some(id)).map_err(|f| after_submit(f, id))
    }

    /// Ask Databricks to cancel `id`; true when Databricks acknowledged the
    /// request, false (logged) when it could not be sent or was refused.
    async fn cancel(&self, token: &Secret, ctx: &CallContext, id: &str) -> bool {
        let url = format!("{}/{}/cancel", self.base, encode(id));
        let outcome = self
            .retry
            .send(|_| {
                ctx.count_upstream_request();
                self.authed(reqwest::Method::POST, url.clone(), token)
            })
            .await;
        match outcome {
            Ok(resp) if resp.is_success() => {
                tracing::debug!(statement_id = id, "Databricks statement cancelled");
                true
            }
            Ok(resp) => {
                tracing::warn!(
                    statement_id = id,
                    status = resp.status,
                    "Databricks refused to cancel the statement; it may still be running"
                );
                false
            }
            Err(e) => {
                tracing::warn!(statement_id = id, error = %e, "could not cancel the Databricks statement; it may still be running");
                false
            }
        }
    }

    fn authed(
        &self,
        method: reqwest::Method,
        url: String,
        token: &Secret,
    ) -> reqwest::RequestBuilder {
        self.http
            .request(method, url)
            .bearer_auth(token.expose())
            .header(reqwest::header::ACCEPT, "application/json")
    }
}

/// Map a failure after the statement was accepted.
fn after_submit(f: ApiFailure, id: &str) -> RunError {
    match f {
        ApiFailure::TokenRejected(message) => RunError::TokenRejected {
            before_submit: false,
            statement_id: Some(id.to_string()),
            message,
        },
        ApiFailure::Query(q) => RunError::Query(q),
    }
}

fn unavailable(message: String) -> RunError {
    RunError::Query(QueryError::Unavailable {
        service: SERVICE,
        message,
    })
}

/// `query_tags` of every statement: who it runs for and through which tool,
/// like the Snowflake path's `QUERY_TAG` (values cut to safe characters).
fn query_tags(ctx: &CallContext) -> Vec<QueryTag> {
    vec![
        QueryTag::safe("app", "immuta-mcp"),
        QueryTag::safe("end_user", &ctx.user),
        QueryTag::safe("tool", ctx.tool),
    ]
}

/// Bytes a JSON_ARRAY value takes (text length; null counts as 4).
fn value_bytes(v: &serde_json::Value) -> usize {
    match v {
        serde_json::Value::String(s) => s.len(),
        serde_json::Value::Null => 4,
        other => other.to_string().len(),
    }
}

fn encode(segment: &str) -> String {
    url::form_urlencoded::byte_serialize(segment.as_bytes()).collect()
}

/// Interpret an answer: the JSON body on 2xx, a typed failure otherwise.
fn parse<T: serde::de::DeserializeOwned>(
    resp: &UpstreamResponse,
    statement_id: Option<&str>,
) -> Result<T, ApiFailure> {
    if resp.is_success() {
        return resp.json::<T>().map_err(|e| {
            ApiFailure::Query(QueryError::Protocol {
                service: SERVICE,
                message: format!("answer does not parse: {e}"),
            })
        });
    }
    let body = resp.json::<ApiErrorBody>().ok();
    let code = body.as_ref().and_then(|b| b.error_code.clone());
    let message = body
        .and_then(|b| b.message)
        .unwrap_or_else(|| resp.text_snippet(300));
    match resp.status {
        401 | 403 => Err(ApiFailure::TokenRejected(format!(
            "HTTP {}{}: {message}",
            resp.status,
            code.map(|c| format!(" {c}")).unwrap_or_default()
        ))),
        status => Err(ApiFailure::Query(QueryError::Statement {
            platform: Platform::Databricks,
            code: Some(code.unwrap_or_else(|| format!("HTTP_{status}"))),
            sql_state: None,
            message,
            statement_id: statement_id.map(str::to_string),
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::extract::Path;
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    use axum::routing::{get, post};
    use serde_json::json;

    #[test]
    fn row_limit_keeps_continuation_rows_with_max_rows_plus_one_as_floor() {
        assert_eq!(
            row_limit(3, 0),
            4,
            "no continuation: only the cut is detectable"
        );
        assert_eq!(row_limit(3, 10_000), 10_000);
        assert_eq!(row_limit(50_000, 10_000), 50_001);
        assert_eq!(row_limit(usize::MAX, 0), u64::MAX);
    }

    #[test]
    fn wait_timeout_values_follow_the_api() {
        for ok in ["0s", "5s", "10s", "50s"] {
            assert!(validate_wait_timeout(ok).is_ok(), "{ok}");
        }
        for bad in ["3s", "51s", "10", "ten", ""] {
            assert!(validate_wait_timeout(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn wait_timeout_never_outlasts_the_statement_timeout() {
        let t = |s| Duration::from_secs(s);
        assert_eq!(effective_wait_timeout("10s", t(300)), "10s");
        assert_eq!(effective_wait_timeout("30s", t(20)), "20s");
        assert_eq!(effective_wait_timeout("10s", t(4)), "0s");
        assert_eq!(
            effective_wait_timeout("10s", Duration::from_millis(150)),
            "0s"
        );
        assert_eq!(effective_wait_timeout("0s", t(300)), "0s");
    }

    /// A workspace whose submit answers `first` and whose chunk `n` answers `chunks[n]`.
    async fn workspace(first: serde_json::Value, chunks: Vec<serde_json::Value>) -> String {
        let submit = move || {
            let first = first.clone();
            async move {
                if first.get("error_code").is_some() {
                    return (StatusCode::UNAUTHORIZED, axum::Json(first)).into_response();
                }
                axum::Json(first).into_response()
            }
        };
        let chunk = move |Path((_id, n)): Path<(String, usize)>| {
            let c = chunks.get(n).cloned();
            async move {
                match c {
                    Some(c) => axum::Json(c).into_response(),
                    None => StatusCode::NOT_FOUND.into_response(),
                }
            }
        };
        let app = Router::new().route(STATEMENTS_PATH, post(submit)).route(
            &format!("{STATEMENTS_PATH}/{{id}}/result/chunks/{{n}}"),
            get(chunk),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}")
    }

    fn client(host: &str) -> StatementsClient {
        StatementsClient::new(
            host,
            crate::http_client::build(&crate::config::Limits::default()).unwrap(),
            RetryPolicy::none(),
            StatementSettings {
                warehouse_id: "wh".into(),
                wait_timeout: DEFAULT_WAIT_TIMEOUT.into(),
                statement_timeout: Duration::from_secs(30),
                poll_initial: Duration::from_millis(5),
                poll_max: Duration::from_millis(20),
                continuation_rows: 0,
            },
        )
    }

    fn request(max_rows: usize) -> QueryRequest {
        QueryRequest {
            sql: "SELECT id FROM t".into(),
            database: None,
            schema: None,
            warehouse: None,
            max_rows,
            max_bytes: 1 << 20,
            parameters: Vec::new(),
        }
    }

    fn succeeded(data: serde_json::Value, next: Option<u64>) -> serde_json::Value {
        json!({"statement_id":"s1","status":{"state":"SUCCEEDED"},
            "manifest":{"format":"JSON_ARRAY","schema":{"columns":[{"name":"id","type_name":"LONG","type_text":"BIGINT","position":0}]},
                        "total_chunk_count":2,"total_row_count":2,"truncated":false},
            "result":{"chunk_index":0,"row_offset":0,"row_count":1,"data_array":data,"next_chunk_index":next}})
    }

    #[tokio::test]
    async fn every_submit_carries_query_tags_naming_the_user_and_the_tool() {
        let seen = std::sync::Arc::new(std::sync::Mutex::new(None::<serde_json::Value>));
        let store = seen.clone();
        let submit = move |axum::Json(body): axum::Json<serde_json::Value>| {
            let store = store.clone();
            async move {
                *store.lock().unwrap() = Some(body);
                axum::Json(succeeded(json!([["1"]]), None))
            }
        };
        let app = Router::new().route(STATEMENTS_PATH, post(submit));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let host = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let ctx = CallContext::new("o'brien@example.com", "query_databricks");
        client(&host)
            .run(&Secret::new("t"), &ctx, &request(10))
            .await
            .unwrap();
        let body = seen.lock().unwrap().clone().expect("submit body");
        assert_eq!(
            body["query_tags"],
            json!([
                {"key": "app", "value": "immuta-mcp"},
                {"key": "end_user", "value": "o_brien@example.com"},
                {"key": "tool", "value": "query_databricks"},
            ])
        );
    }

    #[tokio::test]
    async fn chunks_out_of_order_are_a_protocol_error() {
        let host = workspace(
            succeeded(json!([["1"]]), Some(1)),
            vec![
                json!({}),
                json!({"chunk_index":1,"row_offset":5,"row_count":1,"data_array":[["2"]]}),
            ],
        )
        .await;
        let ctx = CallContext::new("alice@example.com", "test");
        let err = client(&host)
            .run(&Secret::new("t"), &ctx, &request(10))
            .await
            .unwrap_err();
        match err {
            RunError::Query(QueryError::Protocol { message, .. }) => {
                assert!(
                    message.contains("starts at row 5, expected row 1"),
                    "{message}"
                )
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test]
    async fn second_chunk_is_fetched_in_order_and_limit_stops_early() {
        let host = workspace(
            succeeded(json!([["1"]]), Some(1)),
            vec![
                json!({}),
                json!({"chunk_index":1,"row_offset":1,"row_count":1,"data_array":[["2"]]}),
            ],
        )
        .await;
        let ctx = CallContext::new("alice@example.com", "test");
        let rs = client(&host)
            .run(&Secret::new("t"), &ctx, &request(10))
            .await
            .unwrap();
        assert_eq!(rs.rows, vec![vec![json!(1)], vec![json!(2)]]);
        assert!(!rs.truncated);
        assert_eq!(rs.total_row_count, Some(2));
        assert_eq!(ctx.facts().upstream_requests, 2);
        assert_eq!(ctx.facts().statement_id.as_deref(), Some("s1"));

        let ctx = CallContext::new("alice@example.com", "test");
        let rs = client(&host)
            .run(&Secret::new("t"), &ctx, &request(1))
            .await
            .unwrap();
        assert_eq!(rs.rows, vec![vec![json!(1)]]);
        assert!(rs.truncated);
        assert_eq!(rs.total_row_count, None);
        assert_eq!(
            ctx.facts().upstream_requests,
            1,
            "chunk 1 is not fetched once the limit is reached"
        );
    }

    #[tokio::test]
    async fn undecodable_values_name_row_and_column() {
        let host = workspace(succeeded(json!([["x1"]]), None), vec![]).await;
        let ctx = CallContext::new("alice@example.com", "test");
        let err = client(&host)
            .run(&Secret::new("t"), &ctx, &request(10))
            .await
            .unwrap_err();
        match err {
            RunError::Query(QueryError::Protocol { message, .. }) => {
                assert!(
                    message.contains("row 0, column id (LONG): not an integer"),
                    "{message}"
                )
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test]
    async fn rejected_token_at_submit_means_nothing_ran() {
        let host = workspace(
            json!({"error_code":"UNAUTHENTICATED","message":"Invalid access token."}),
            vec![],
        )
        .await;
        let ctx = CallContext::new("alice@example.com", "test");
        let err = client(&host)
            .run(&Secret::new("t"), &ctx, &request(10))
            .await
            .unwrap_err();
        match err {
            RunError::TokenRejected {
                before_submit,
                statement_id,
                message,
            } => {
                assert!(before_submit);
                assert_eq!(statement_id, None);
                assert!(message.contains("UNAUTHENTICATED"), "{message}");
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
