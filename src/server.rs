//! The MCP server: tool definitions, per-call identity, guard, progress,
//! cancellation and the audit event.
//!
//! [`GovernedServer`] implements rmcp's `ServerHandler` by hand (not with the
//! tool macros) so that every call goes through one path:
//! resolve the verified user → validate arguments → SQL guard → platform
//! path → `structuredContent` + text → one audit event. No tool takes a user
//! argument; the user comes from the transport (stdio configuration or the
//! HTTP request's verified bearer token).
//!
//! A truncated result whose rest the platform still holds gets a `next_cursor`
//! (sealed by [`CursorCodec`], bound to the user, statement, position and the
//! credential the statement ran under); `fetch_more` opens it before any
//! upstream request and reads the next page with that same cached credential.

use crate::allowlist::AllowList;
use crate::audit::{self, AuditEvent};
use crate::config::Limits;
use crate::cursor::{Cursor, CursorCodec, unix_secs};
use crate::fair::{Admission, FairLimits};
use crate::guard::SqlGuard;
use crate::identity::VerifiedUser;
use crate::metrics::Metrics;
use crate::query::{
    CallContext, CallFacts, GovernedQuery, PageRequest, ProgressSink, QueryError, QueryParameter,
    QueryRequest,
};
use crate::result::{Platform, ResultSet};
use crate::tool_schema;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, ListToolsResult,
    PaginatedRequestParams, ProgressNotificationParam, ProgressToken, ServerCapabilities,
    ServerConfig, Tool, ToolAnnotations,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, Peer, RoleServer, ServerHandler};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime};

pub const QUERY_SNOWFLAKE: &str = "query_snowflake";
pub const QUERY_DATABRICKS: &str = "query_databricks";
pub const LIST_TABLES: &str = "list_tables";
pub const DESCRIBE_TABLE: &str = "describe_table";
pub const WHOAMI: &str = "whoami";
pub const FETCH_MORE: &str = "fetch_more";
/// Every tool this server offers.
pub const TOOL_NAMES: &[&str] = &[
    QUERY_SNOWFLAKE,
    QUERY_DATABRICKS,
    FETCH_MORE,
    LIST_TABLES,
    DESCRIBE_TABLE,
    WHOAMI,
];

/// Arguments of `query_snowflake`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SnowflakeQueryArgs {
    /// Exactly one Snowflake SQL statement (read-only unless the operator allowed more).
    pub sql: String,
    /// Database for unqualified names (defaults to the server's configured database).
    pub database: Option<String>,
    /// Schema for unqualified names.
    pub schema: Option<String>,
    /// Warehouse to run on (defaults to the configured warehouse).
    pub warehouse: Option<String>,
    /// Most rows to return; more rows mark the result `truncated`.
    pub max_rows: Option<u64>,
}

/// Arguments of `query_databricks`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DatabricksQueryArgs {
    /// Exactly one Databricks SQL statement (read-only unless the operator allowed more).
    pub sql: String,
    /// Unity Catalog catalog for unqualified names.
    pub catalog: Option<String>,
    /// Schema for unqualified names.
    pub schema: Option<String>,
    /// Most rows to return; more rows mark the result `truncated`.
    pub max_rows: Option<u64>,
}

/// Arguments of `list_tables`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListTablesArgs {
    /// Which platform to list.
    pub platform: Platform,
    /// Snowflake database or Databricks catalog to limit the list to.
    pub database: Option<String>,
    /// Schema to limit the list to (needs `database`).
    pub schema: Option<String>,
}

/// Arguments of `describe_table`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DescribeTableArgs {
    /// Which platform the table lives on.
    pub platform: Platform,
    /// Fully qualified table name: `DB.SCHEMA.TABLE` (Snowflake) or `catalog.schema.table` (Databricks).
    pub table: String,
}

/// Arguments of `fetch_more`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FetchMoreArgs {
    /// The `next_cursor` of a previous result, exactly as returned.
    pub cursor: String,
    /// Most rows to return in this page; more rows give another `next_cursor`.
    pub max_rows: Option<u64>,
}

/// Arguments of `whoami` (none).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoArgs {}

/// Answer of `whoami`.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct WhoAmI {
    /// The end user every query runs for (Immuta user id).
    pub user: String,
    /// How the user was established: `stdio_config`, `stdio_id_token`, `http_bearer` or `databricks_apps`.
    pub identity_source: String,
    /// Issuer of the verified token (`local-config` for a configured stdio user).
    pub issuer: String,
    /// Platforms this server can query.
    pub platforms: Vec<PlatformStatus>,
    /// True when only read statements are allowed.
    pub read_only: bool,
}

/// Whether one platform is available.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct PlatformStatus {
    pub platform: Platform,
    pub configured: bool,
}

/// How the server learns the end user of a call.
#[derive(Debug, Clone)]
pub enum UserSource {
    /// stdio: one user for the whole process, resolved at startup.
    Fixed(VerifiedUser),
    /// HTTP: the `VerifiedUser` the bearer middleware put on each request.
    PerRequest,
}

struct Inner {
    snowflake: Option<Arc<dyn GovernedQuery>>,
    databricks: Option<Arc<dyn GovernedQuery>>,
    guard: SqlGuard,
    allow: AllowList,
    limits: Limits,
    users: UserSource,
    tools: Vec<Tool>,
    cursors: CursorCodec,
    metrics: Metrics,
    /// Warm the user's credentials when a session initializes.
    prewarm: bool,
    /// The calls in flight, for a graceful shutdown.
    drain: crate::drain::Drain,
    /// Per-user and process-wide slots for calls that reach a platform.
    fair: Arc<FairLimits>,
}

/// The rmcp server handler (cheap to clone: one per MCP session).
#[derive(Clone)]
pub struct GovernedServer {
    inner: Arc<Inner>,
}

impl GovernedServer {
    pub fn new(
        snowflake: Option<Arc<dyn GovernedQuery>>,
        databricks: Option<Arc<dyn GovernedQuery>>,
        guard: SqlGuard,
        allow: AllowList,
        limits: Limits,
        users: UserSource,
    ) -> Self {
        let tools = tool_definitions(guard.read_only());
        let fair = FairLimits::new(
            limits.max_calls_per_user,
            limits.max_inflight_statements,
            Duration::from_secs(limits.limit_wait_secs),
        );
        Self {
            inner: Arc::new(Inner {
                snowflake,
                databricks,
                guard,
                allow,
                limits,
                users,
                tools,
                cursors: CursorCodec::random(),
                metrics: Metrics::default(),
                prewarm: false,
                drain: crate::drain::Drain::default(),
                fair,
            }),
        }
    }

    /// Seal and open `fetch_more` cursors with `codec` (default: a random key
    /// for this process). Call before the server is cloned.
    pub fn with_cursors(mut self, codec: CursorCodec) -> Self {
        match Arc::get_mut(&mut self.inner) {
            Some(inner) => inner.cursors = codec,
            None => tracing::warn!(
                "with_cursors called on a shared server; keeping the per-process cursor key"
            ),
        }
        self
    }

    /// Count tool calls and guard refusals in `metrics` (default: a registry
    /// nobody reads). Call before the server is cloned.
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        match Arc::get_mut(&mut self.inner) {
            Some(inner) => inner.metrics = metrics,
            None => tracing::warn!("with_metrics called on a shared server; not counting"),
        }
        self
    }

    /// Vend and mint the user's credentials in the background when their
    /// session initializes (`cache.prewarm`). Call before the server is cloned.
    pub fn with_prewarm(mut self, on: bool) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.prewarm = on;
        }
        self
    }

    /// One audit event per tool call, counted in the metrics too.
    fn record(&self, event: &AuditEvent<'_>) {
        audit::record(event);
        self.inner.metrics.tool_call(
            tool_name(event.tool),
            event.platform,
            event.outcome,
            event.user,
            event.duration,
        );
    }

    /// The tool calls in flight (to drain them on shutdown).
    pub fn drain(&self) -> crate::drain::Drain {
        self.inner.drain.clone()
    }

    /// Start warming `user`'s credentials on every configured platform.
    fn start_prewarm(&self, user: &VerifiedUser) {
        for path in [&self.inner.snowflake, &self.inner.databricks]
            .into_iter()
            .flatten()
        {
            let (path, user_id) = (path.clone(), user.user_id.clone());
            tokio::spawn(async move {
                let ctx = CallContext::new(user_id, "prewarm");
                match path.prewarm(&ctx).await {
                    Ok(()) => {
                        tracing::debug!(user = %ctx.user, platform = ?path.platform(), "credentials warmed for a new session")
                    }
                    Err(e) => {
                        tracing::info!(user = %ctx.user, platform = ?path.platform(), error = %e, "could not warm credentials for a new session; the first query vends itself")
                    }
                }
            });
        }
    }

    /// The tools this server lists.
    pub fn tools(&self) -> &[Tool] {
        &self.inner.tools
    }

    fn user_for(&self, ctx: &RequestContext<RoleServer>) -> Result<VerifiedUser, McpError> {
        match &self.inner.users {
            UserSource::Fixed(user) => Ok(user.clone()),
            UserSource::PerRequest => ctx
                .extensions
                .get::<http::request::Parts>()
                .and_then(|parts| parts.extensions.get::<VerifiedUser>())
                .cloned()
                .ok_or_else(|| {
                    McpError::invalid_request("no authenticated end user on this request", None)
                }),
        }
    }

    fn platform(&self, platform: Platform) -> Option<&Arc<dyn GovernedQuery>> {
        match platform {
            Platform::Snowflake => self.inner.snowflake.as_ref(),
            Platform::Databricks => self.inner.databricks.as_ref(),
        }
    }

    fn max_rows(&self, asked: Option<u64>) -> Result<usize, String> {
        let cap = self.inner.limits.max_rows_cap;
        match asked {
            None => Ok(self.inner.limits.default_max_rows),
            Some(0) => Err(format!("max_rows must be between 1 and {cap}")),
            Some(n) if n > cap as u64 => Err(format!(
                "max_rows {n} is above this server's limit of {cap}; ask for fewer rows"
            )),
            Some(n) => Ok(n as usize),
        }
    }

    /// Run one tool call for a verified user (the transport-independent core).
    pub async fn call(
        &self,
        user: &VerifiedUser,
        tool: &str,
        arguments: Value,
        call: CallContext,
    ) -> Result<CallToolResult, McpError> {
        let started = Instant::now();
        let outcome = self.dispatch(user, tool, arguments, &call).await;
        let (result, platform, rows, kind, error) = match outcome {
            Ok(Dispatched::Rows(platform, mut rs)) => {
                let rows = rs.row_count;
                rs.next_cursor = self.next_cursor(user, &rs, &call.facts());
                (self.render(rs), platform.as_str(), Some(rows), "ok", None)
            }
            Ok(Dispatched::WhoAmI(who)) => {
                let text = format!(
                    "user: {}\nidentity: {} ({})\nplatforms: {}\nread-only guard: {}",
                    who.user,
                    who.identity_source,
                    who.issuer,
                    who.platforms
                        .iter()
                        .map(|p| format!(
                            "{}={}",
                            p.platform,
                            if p.configured {
                                "configured"
                            } else {
                                "not configured"
                            }
                        ))
                        .collect::<Vec<_>>()
                        .join(", "),
                    who.read_only
                );
                let mut r =
                    CallToolResult::structured(serde_json::to_value(&who).unwrap_or_default());
                r.content = vec![ContentBlock::text(text)];
                (r, "-", None, "ok", None)
            }
            Err(Failure::Protocol(e)) => {
                self.record(&AuditEvent {
                    user: &user.user_id,
                    tool,
                    platform: "-",
                    facts: call.facts(),
                    rows: None,
                    duration: started.elapsed(),
                    outcome: "invalid_arguments",
                    error: Some(&e.message),
                });
                return Err(e);
            }
            Err(Failure::Tool {
                platform,
                kind,
                message,
            }) => {
                let r = CallToolResult::error(vec![ContentBlock::text(message.clone())]);
                (r, platform, None, kind, Some(message))
            }
        };
        self.record(&AuditEvent {
            user: &user.user_id,
            tool,
            platform,
            facts: call.facts(),
            rows,
            duration: started.elapsed(),
            outcome: kind,
            error: error.as_deref(),
        });
        Ok(result)
    }

    /// The cursor of the page after `rs`, when the platform holds more rows and
    /// the statement's credential is known; it expires after
    /// `limits.cursor_ttl_secs`, and never after the credential stops being used.
    fn next_cursor(
        &self,
        user: &VerifiedUser,
        rs: &ResultSet,
        facts: &CallFacts,
    ) -> Option<String> {
        let position = rs.next_position?;
        let credential = facts.credential.as_ref()?;
        let ttl_end = SystemTime::now()
            .checked_add(Duration::from_secs(self.inner.limits.cursor_ttl_secs))
            .unwrap_or(credential.usable_until);
        let expires_at = unix_secs(ttl_end.min(credential.usable_until));
        let cursor = Cursor {
            platform: rs.platform,
            statement_id: rs.statement_id.clone(),
            position,
            credential: credential.fingerprint.clone(),
            expires_at,
        };
        Some(self.inner.cursors.seal(&user.user_id, &cursor))
    }

    /// Text table first, then `structuredContent` built by moving the rows,
    /// so the rows are never held twice. (`CallToolResult::structured` would
    /// also serialize the whole value into a throw-away text block.)
    fn render(&self, rs: ResultSet) -> CallToolResult {
        let mut text = rs.render_text(self.inner.limits.max_text_chars);
        if let Some(cursor) = &rs.next_cursor {
            text.push_str(&format!(
                "\n(more rows: call fetch_more with cursor {cursor})"
            ));
        }
        let mut result = CallToolResult::success(vec![ContentBlock::text(text)]);
        result.structured_content = Some(rs.into_json());
        result
    }

    async fn dispatch(
        &self,
        user: &VerifiedUser,
        tool: &str,
        arguments: Value,
        call: &CallContext,
    ) -> Result<Dispatched, Failure> {
        match tool {
            QUERY_SNOWFLAKE => {
                let a: SnowflakeQueryArgs = parse_args(tool, arguments)?;
                let max_rows = self.max_rows(a.max_rows).map_err(Failure::bad_input)?;
                let request = QueryRequest {
                    sql: a.sql,
                    database: a.database,
                    schema: a.schema,
                    warehouse: a.warehouse,
                    max_rows,
                    max_bytes: self.inner.limits.max_result_bytes,
                    parameters: Vec::new(),
                };
                self.run(Platform::Snowflake, request, call, AllowCheck::Sql)
                    .await
            }
            QUERY_DATABRICKS => {
                let a: DatabricksQueryArgs = parse_args(tool, arguments)?;
                let max_rows = self.max_rows(a.max_rows).map_err(Failure::bad_input)?;
                let request = QueryRequest {
                    sql: a.sql,
                    database: a.catalog,
                    schema: a.schema,
                    warehouse: None,
                    max_rows,
                    max_bytes: self.inner.limits.max_result_bytes,
                    parameters: Vec::new(),
                };
                self.run(Platform::Databricks, request, call, AllowCheck::Sql)
                    .await
            }
            LIST_TABLES => {
                let a: ListTablesArgs = parse_args(tool, arguments)?;
                let (sql, parameters) =
                    list_tables_sql(a.platform, a.database.as_deref(), a.schema.as_deref())
                        .map_err(Failure::bad_input)?;
                self.inner
                    .allow
                    .check_namespace(a.platform, a.database.as_deref(), a.schema.as_deref())
                    .map_err(|e| Failure::not_allowed(a.platform, e))?;
                let request = QueryRequest {
                    parameters,
                    ..self.catalog_request(sql)
                };
                // The catalog query itself is the server's; its rows are filtered instead.
                match self
                    .run(a.platform, request, call, AllowCheck::ServerSql)
                    .await?
                {
                    Dispatched::Rows(platform, rs) => Ok(Dispatched::Rows(
                        platform,
                        self.inner.allow.filter_listing(platform, rs),
                    )),
                    other => Ok(other),
                }
            }
            DESCRIBE_TABLE => {
                let a: DescribeTableArgs = parse_args(tool, arguments)?;
                let name = validate_table_name(a.platform, &a.table).map_err(Failure::bad_input)?;
                self.inner
                    .allow
                    .check_table(a.platform, &name)
                    .map_err(|e| Failure::not_allowed(a.platform, e))?;
                let sql = format!("DESCRIBE TABLE {name}");
                self.run(
                    a.platform,
                    self.catalog_request(sql),
                    call,
                    AllowCheck::ServerSql,
                )
                .await
            }
            FETCH_MORE => {
                let a: FetchMoreArgs = parse_args(tool, arguments)?;
                let max_rows = self.max_rows(a.max_rows).map_err(Failure::bad_input)?;
                self.fetch_more(user, &a.cursor, max_rows, call).await
            }
            WHOAMI => {
                let _: NoArgs = parse_args(tool, arguments)?;
                Ok(Dispatched::WhoAmI(WhoAmI {
                    user: user.user_id.clone(),
                    identity_source: user.source.as_str().to_string(),
                    issuer: user.issuer.clone(),
                    platforms: [Platform::Snowflake, Platform::Databricks]
                        .into_iter()
                        .map(|p| PlatformStatus {
                            platform: p,
                            configured: self.platform(p).is_some(),
                        })
                        .collect(),
                    read_only: self.inner.guard.read_only(),
                }))
            }
            other => Err(Failure::Protocol(McpError::invalid_params(
                format!("unknown tool {other:?}; call tools/list for the available tools"),
                None,
            ))),
        }
    }

    /// `fetch_more`: open the cursor (no upstream request when it is refused),
    /// then read the page with the user's cached credential.
    async fn fetch_more(
        &self,
        user: &VerifiedUser,
        cursor: &str,
        max_rows: usize,
        call: &CallContext,
    ) -> Result<Dispatched, Failure> {
        let cursor = self
            .inner
            .cursors
            .open(&user.user_id, cursor.trim(), SystemTime::now())
            .map_err(|e| Failure::Tool {
                platform: "-",
                kind: "cursor_refused",
                message: format!("fetch_more refused: {e}"),
            })?;
        let platform = cursor.platform;
        call.set_statement_id(&cursor.statement_id);
        let Some(path) = self.platform(platform) else {
            return Err(Failure::Tool {
                platform: platform.as_str(),
                kind: "not_configured",
                message: QueryError::NotConfigured(platform).to_string(),
            });
        };
        let _slot = self.admit(call, platform.as_str()).await?;
        let page = PageRequest {
            statement_id: cursor.statement_id,
            position: cursor.position,
            credential: cursor.credential,
            max_rows,
            max_bytes: self.inner.limits.max_result_bytes,
        };
        match path.fetch_page(call, &page).await {
            Ok(rs) => Ok(Dispatched::Rows(platform, rs)),
            Err(e) => Err(Failure::Tool {
                platform: platform.as_str(),
                kind: e.outcome(),
                message: format!("fetch_more: {e}"),
            }),
        }
    }

    /// A slot for a call that is about to reach `platform` (see [`crate::fair`]).
    async fn admit(
        &self,
        call: &CallContext,
        platform: &'static str,
    ) -> Result<Admission, Failure> {
        self.inner
            .fair
            .admit(&call.user, &call.cancel, |waiting| call.report(0, waiting))
            .await
            .map_err(|busy| Failure::Tool {
                platform,
                kind: busy.outcome(),
                message: busy.to_string(),
            })
    }

    fn catalog_request(&self, sql: String) -> QueryRequest {
        QueryRequest {
            sql,
            database: None,
            schema: None,
            warehouse: None,
            max_rows: self.inner.limits.max_rows_cap.min(10_000),
            max_bytes: self.inner.limits.max_result_bytes,
            parameters: Vec::new(),
        }
    }

    async fn run(
        &self,
        platform: Platform,
        request: QueryRequest,
        call: &CallContext,
        allow: AllowCheck,
    ) -> Result<Dispatched, Failure> {
        let tool_platform = platform.as_str();
        self.inner
            .guard
            .check(platform, &request.sql)
            .map_err(|e| {
                self.inner.metrics.guard_refusal(tool_platform, e.reason());
                Failure::Tool {
                    platform: tool_platform,
                    kind: "guard_refused",
                    message: format!("refused by the SQL guard: {e}"),
                }
            })?;
        if allow == AllowCheck::Sql {
            self.inner
                .allow
                .check_sql(
                    platform,
                    &request.sql,
                    request.database.as_deref(),
                    request.schema.as_deref(),
                )
                .map_err(|e| Failure::not_allowed(platform, e))?;
        }
        let Some(path) = self.platform(platform) else {
            return Err(Failure::Tool {
                platform: tool_platform,
                kind: "not_configured",
                message: QueryError::NotConfigured(platform).to_string(),
            });
        };
        let _slot = self.admit(call, tool_platform).await?;
        match path.query(call, &request).await {
            Ok(rs) => Ok(Dispatched::Rows(platform, rs)),
            Err(e) => Err(Failure::Tool {
                platform: tool_platform,
                kind: e.outcome(),
                message: e.to_string(),
            }),
        }
    }
}

/// Whether [`GovernedServer::run`] checks the SQL against the allow-list.
#[derive(Clone, Copy, PartialEq, Eq)]
enum AllowCheck {
    /// The statement comes from the model (or names a table the model chose).
    Sql,
    /// The server's own catalog query, on names already checked; a listing's
    /// answer is filtered instead.
    ServerSql,
}

enum Dispatched {
    Rows(Platform, ResultSet),
    WhoAmI(WhoAmI),
}

enum Failure {
    /// Protocol misuse (unknown tool, arguments that do not match the schema): JSON-RPC error.
    Protocol(McpError),
    /// Anything the model can act on: `isError: true` tool result.
    Tool {
        platform: &'static str,
        kind: &'static str,
        message: String,
    },
}

impl Failure {
    fn not_allowed(platform: Platform, error: crate::allowlist::AllowError) -> Self {
        Failure::Tool {
            platform: platform.as_str(),
            kind: "not_allowed",
            message: format!("refused by the operator's allow-list: {error}"),
        }
    }

    fn bad_input(message: String) -> Self {
        Failure::Tool {
            platform: "-",
            kind: "invalid_input",
            message,
        }
    }
}

fn parse_args<T: serde::de::DeserializeOwned>(tool: &str, arguments: Value) -> Result<T, Failure> {
    let arguments = if arguments.is_null() {
        Value::Object(Default::default())
    } else {
        arguments
    };
    serde_json::from_value(arguments).map_err(|e| {
        Failure::Protocol(McpError::invalid_params(
            format!("invalid arguments for {tool}: {e}"),
            None,
        ))
    })
}

/// A plain identifier: letters, digits, `_`, `$` (not first), at most 255 chars.
fn is_plain_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
        && s.len() <= 255
}

fn validate_identifier(platform: Platform, part: &str) -> Result<String, String> {
    let quote = match platform {
        Platform::Snowflake => '"',
        Platform::Databricks => '`',
    };
    if is_plain_identifier(part) {
        return Ok(part.to_string());
    }
    let quoted = part.len() >= 2 && part.starts_with(quote) && part.ends_with(quote);
    let inner = if quoted {
        &part[1..part.len() - 1]
    } else {
        part
    };
    // `'` and `\` are refused too: a Databricks catalog/schema name ends up inside a
    // string literal of `list_tables` (security audit F6), and neither has a place in
    // a name a model should pick.
    if quoted
        && !inner.is_empty()
        && !inner.contains(quote)
        && !inner.contains(['\'', '\\'])
        && !inner.chars().any(char::is_control)
    {
        return Ok(part.to_string());
    }
    Err(format!(
        "{part:?} is not a valid {platform} identifier: use letters, digits and _ (or quote it with {quote})"
    ))
}

/// Check a 1–3 part table name and return it unchanged.
pub fn validate_table_name(platform: Platform, table: &str) -> Result<String, String> {
    let parts = split_name(table);
    if parts.is_empty() || parts.len() > 3 {
        return Err(format!(
            "{table:?} is not a table name: use DB.SCHEMA.TABLE or catalog.schema.table"
        ));
    }
    let checked: Result<Vec<String>, String> = parts
        .iter()
        .map(|p| validate_identifier(platform, p))
        .collect();
    Ok(checked?.join("."))
}

fn split_name(name: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut in_quote: Option<char> = None;
    for (i, ch) in name.char_indices() {
        match (in_quote, ch) {
            (None, '"' | '`') => in_quote = Some(ch),
            (Some(q), c) if c == q => in_quote = None,
            (None, '.') => {
                parts.push(&name[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&name[start..]);
    parts
}

/// The statement `list_tables` runs (filtered by the platform to what the vended role can
/// see) and its parameters.
///
/// Snowflake: `SHOW TABLES IN …` with the validated (plain or double-quoted) names; SHOW
/// takes no bind variables. Databricks: a query of `system.information_schema.tables`
/// whose catalog/schema are bound as Statement Execution API named parameters
/// (`:catalog`, `:schema`), never spliced into the text (security audit F6).
pub fn list_tables_sql(
    platform: Platform,
    database: Option<&str>,
    schema: Option<&str>,
) -> Result<(String, Vec<QueryParameter>), String> {
    let database = database
        .map(|d| validate_identifier(platform, d))
        .transpose()?;
    let schema = schema
        .map(|s| validate_identifier(platform, s))
        .transpose()?;
    if schema.is_some() && database.is_none() {
        return Err(
            "schema needs database (the Snowflake database or Databricks catalog) as well".into(),
        );
    }
    Ok(match platform {
        Platform::Snowflake => (
            match (database, schema) {
                (Some(d), Some(s)) => format!("SHOW TABLES IN SCHEMA {d}.{s}"),
                (Some(d), None) => format!("SHOW TABLES IN DATABASE {d}"),
                _ => "SHOW TABLES IN ACCOUNT".to_string(),
            },
            Vec::new(),
        ),
        Platform::Databricks => {
            let mut sql = "SELECT table_catalog, table_schema, table_name, table_type FROM system.information_schema.tables"
                .to_string();
            let mut parameters = Vec::new();
            let unquote = |s: String| s.trim_matches('`').to_string();
            if let Some(d) = database {
                sql.push_str(" WHERE table_catalog = :catalog");
                parameters.push(QueryParameter {
                    name: "catalog".into(),
                    value: unquote(d),
                });
                if let Some(s) = schema {
                    sql.push_str(" AND table_schema = :schema");
                    parameters.push(QueryParameter {
                        name: "schema".into(),
                        value: unquote(s),
                    });
                }
            }
            sql.push_str(" ORDER BY table_catalog, table_schema, table_name");
            (sql, parameters)
        }
    })
}

pub(crate) fn tool_definitions(read_only: bool) -> Vec<Tool> {
    let mode = if read_only {
        "Only read statements run (SELECT, WITH, SHOW, DESCRIBE, EXPLAIN), one statement per call."
    } else {
        "One statement per call; the operator allowed statements other than reads."
    };
    let governed = "It runs as the end user's ephemeral role vended by Immuta, so it returns only the rows and columns \
                    that user may see (masked columns arrive masked, filtered rows are absent, tables the user may not \
                    read give a 'does not exist or not authorized' error). Do not try to switch roles.";
    let query_annotations = ToolAnnotations::new()
        .read_only(read_only)
        .destructive(!read_only)
        .open_world(true);
    let catalog_annotations = ToolAnnotations::new()
        .read_only(true)
        .destructive(false)
        .open_world(true);
    let result_schema = tool_schema::output::<ResultSet>();
    vec![
        Tool::new(
            QUERY_SNOWFLAKE,
            format!(
                "Run one SQL statement on Snowflake for the current user. {governed} {mode} Results come back as \
                 typed columns and rows (structuredContent) and as a text table; `truncated` says more rows exist \
                 than `max_rows`, and `next_cursor` (when present) reads the next page with fetch_more."
            ),
            tool_schema::input::<SnowflakeQueryArgs>(),
        )
        .with_title("Query Snowflake (governed by Immuta)")
        .with_raw_output_schema(result_schema.clone())
        .with_annotations(query_annotations.clone()),
        Tool::new(
            QUERY_DATABRICKS,
            format!(
                "Run one SQL statement on Databricks (Unity Catalog) for the current user. {governed} {mode} Results \
                 come back as typed columns and rows (structuredContent) and as a text table; `truncated` says more \
                 rows exist than `max_rows`, and `next_cursor` (when present) reads the next page with fetch_more."
            ),
            tool_schema::input::<DatabricksQueryArgs>(),
        )
        .with_title("Query Databricks (governed by Immuta)")
        .with_raw_output_schema(result_schema.clone())
        .with_annotations(query_annotations),
        Tool::new(
            LIST_TABLES,
            "List the tables the current user can read on one platform (optionally within one database/catalog and \
             schema). Use it before writing a query.",
            tool_schema::input::<ListTablesArgs>(),
        )
        .with_title("List readable tables")
        .with_raw_output_schema(result_schema.clone())
        .with_annotations(catalog_annotations.clone()),
        Tool::new(
            DESCRIBE_TABLE,
            "Describe the columns of one table the current user can read (name and type per column).",
            tool_schema::input::<DescribeTableArgs>(),
        )
        .with_title("Describe a table")
        .with_raw_output_schema(result_schema.clone())
        .with_annotations(catalog_annotations.clone()),
        Tool::new(
            FETCH_MORE,
            "Read the next page of a truncated query result: pass the `next_cursor` of a previous result of \
             query_snowflake, query_databricks or list_tables (or of fetch_more). Returns the same columns and \
             result shape, with its own `next_cursor` until the last page. The platform is not queried again: \
             the page is read from the finished statement as the same user. A cursor works only for the user \
             who ran the query and until that user's credential expires; if it is refused, run the query again.",
            tool_schema::input::<FetchMoreArgs>(),
        )
        .with_title("Fetch more rows of a result")
        .with_raw_output_schema(result_schema.clone())
        .with_annotations(catalog_annotations.clone()),
        Tool::new(
            WHOAMI,
            "Report which end user this server acts for and which platforms are configured. Never returns secrets.",
            tool_schema::input::<NoArgs>(),
        )
        .with_title("Who am I")
        .with_raw_output_schema(tool_schema::output::<WhoAmI>())
        .with_annotations(ToolAnnotations::new().read_only(true).destructive(false).open_world(false)),
    ]
}

/// Forwards platform progress to the MCP client as monotonic progress notifications.
struct PeerProgress {
    tx: tokio::sync::mpsc::UnboundedSender<(f64, String)>,
    counter: AtomicU32,
}

impl PeerProgress {
    fn start(peer: Peer<RoleServer>, token: ProgressToken) -> Arc<Self> {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(f64, String)>();
        tokio::spawn(async move {
            while let Some((progress, message)) = rx.recv().await {
                let param =
                    ProgressNotificationParam::new(token.clone(), progress).with_message(message);
                if peer.notify_progress(param).await.is_err() {
                    break;
                }
            }
        });
        Arc::new(Self {
            tx,
            counter: AtomicU32::new(0),
        })
    }
}

impl ProgressSink for PeerProgress {
    fn progress(&self, _step: u32, message: &str) {
        let n = self.counter.fetch_add(1, Ordering::SeqCst) + 1;
        let _ = self.tx.send((f64::from(n), message.to_string()));
    }
}

fn tool_name(name: &str) -> &'static str {
    match name {
        QUERY_SNOWFLAKE => QUERY_SNOWFLAKE,
        QUERY_DATABRICKS => QUERY_DATABRICKS,
        LIST_TABLES => LIST_TABLES,
        DESCRIBE_TABLE => DESCRIBE_TABLE,
        WHOAMI => WHOAMI,
        FETCH_MORE => FETCH_MORE,
        _ => "unknown",
    }
}

impl ServerHandler for GovernedServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(rmcp::model::Implementation::new("immuta-mcp", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Governed SQL over Snowflake and Databricks. Every query runs as the end user's Immuta-vended \
                 role, so results show only what that user may see. Start with list_tables / describe_table, then \
                 query_snowflake or query_databricks with one read statement per call.",
            )
    }

    async fn initialize(
        &self,
        request: rmcp::model::InitializeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::InitializeResult, McpError> {
        context.peer.set_peer_info(request.clone());
        if self.inner.prewarm
            && let Ok(user) = self.user_for(&context)
        {
            self.start_prewarm(&user);
        }
        self.negotiate_initialize(&request)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        Ok(ListToolsResult::with_all_items(self.inner.tools.clone()))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.inner.tools.iter().find(|t| t.name == name).cloned()
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let user = self.user_for(&context)?;
        let mut call = CallContext::new(user.user_id.clone(), tool_name(&request.name));
        let (cancel, _in_flight) = self.inner.drain.enter(&context.ct);
        call.cancel = cancel;
        if let Some(token) = context.meta.get_progress_token() {
            call.progress =
                Some(PeerProgress::start(context.peer.clone(), token) as Arc<dyn ProgressSink>);
        }
        let arguments = request.arguments.map(Value::Object).unwrap_or(Value::Null);
        self.call(&user, &request.name, arguments, call)
            .await
            .map(CallToolResponse::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_are_validated() {
        assert_eq!(
            validate_table_name(Platform::Snowflake, "SALES.PUBLIC.ORDERS").unwrap(),
            "SALES.PUBLIC.ORDERS"
        );
        assert_eq!(
            validate_table_name(Platform::Snowflake, "\"My Db\".PUBLIC.T").unwrap(),
            "\"My Db\".PUBLIC.T"
        );
        assert!(validate_table_name(Platform::Snowflake, "T; DROP TABLE X").is_err());
        assert!(validate_table_name(Platform::Databricks, "a.b.c.d").is_err());
        assert!(validate_table_name(Platform::Databricks, "main.`odd name`.t").is_ok());
        assert!(validate_table_name(Platform::Databricks, "main.x'--.t").is_err());
    }

    #[test]
    fn list_sql_per_platform() {
        let sql = |p, d, s| list_tables_sql(p, d, s).unwrap();
        assert_eq!(
            sql(Platform::Snowflake, None, None),
            ("SHOW TABLES IN ACCOUNT".to_string(), vec![])
        );
        assert_eq!(
            sql(Platform::Snowflake, Some("SALES"), Some("PUBLIC")).0,
            "SHOW TABLES IN SCHEMA SALES.PUBLIC"
        );
        let param = |name: &str, value: &str| QueryParameter {
            name: name.into(),
            value: value.into(),
        };
        let (db, params) = sql(Platform::Databricks, Some("main"), Some("`sales`"));
        assert!(
            db.contains("WHERE table_catalog = :catalog AND table_schema = :schema"),
            "{db}"
        );
        assert!(!db.contains("main") && !db.contains("sales"), "{db}");
        assert_eq!(
            params,
            vec![param("catalog", "main"), param("schema", "sales")]
        );
        assert!(list_tables_sql(Platform::Databricks, None, Some("x")).is_err());
        assert!(list_tables_sql(Platform::Databricks, Some("m' OR '1'='1"), None).is_err());
        // Security audit F6: the back-quoted forms used to be spliced into the literal.
        for injected in [
            "`main' OR '1'='1`",
            "`x' UNION SELECT table_catalog, table_schema, table_name, 'x' FROM system.information_schema.tables --`",
            "`main\\`",
            "`ma\\'in`",
        ] {
            assert!(
                list_tables_sql(Platform::Databricks, Some(injected), None).is_err(),
                "{injected}"
            );
            assert!(
                list_tables_sql(Platform::Databricks, Some("main"), Some(injected)).is_err(),
                "{injected}"
            );
        }
        assert!(validate_table_name(Platform::Snowflake, "\"a'b\".S.T").is_err());
        // Quoted names without those characters still work, bound as their bare text.
        let (_, params) = sql(Platform::Databricks, Some("`my-catalog`"), None);
        assert_eq!(params, vec![param("catalog", "my-catalog")]);
    }

    #[test]
    fn tools_have_output_schemas_and_annotations() {
        let tools = tool_definitions(true);
        let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
        assert_eq!(
            names,
            [
                QUERY_SNOWFLAKE,
                QUERY_DATABRICKS,
                LIST_TABLES,
                DESCRIBE_TABLE,
                FETCH_MORE,
                WHOAMI
            ]
        );
        for t in &tools {
            assert!(t.output_schema.is_some(), "{} has an output schema", t.name);
            let props = t.input_schema.get("properties").and_then(|p| p.as_object());
            assert!(
                props.is_none_or(|p| !p.contains_key("user")),
                "no tool takes a user argument"
            );
        }
        let q = &tools[0];
        let output = q.output_schema.as_ref().unwrap();
        assert!(
            output["properties"].get("next_cursor").is_some(),
            "the result schema names next_cursor: {output:?}"
        );
        let fetch = tools.iter().find(|t| t.name == FETCH_MORE).unwrap();
        assert_eq!(fetch.output_schema, q.output_schema, "same result shape");
        let fetch_props = fetch.input_schema["properties"].as_object().unwrap();
        assert!(fetch_props.contains_key("cursor") && fetch_props.contains_key("max_rows"));
        assert_eq!(q.annotations.as_ref().unwrap().read_only_hint, Some(true));
        assert_eq!(q.annotations.as_ref().unwrap().open_world_hint, Some(true));
        let writable = tool_definitions(false);
        assert_eq!(
            writable[0].annotations.as_ref().unwrap().read_only_hint,
            Some(false)
        );
    }
}
