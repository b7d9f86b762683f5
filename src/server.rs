//! The MCP server: per-call identity, dispatch, guard, progress,
//! cancellation and the audit event.
//!
//! Submodules: [`ToolName`] (tool_name.rs) names the tools; tools.rs builds
//! what tools/list shows; args.rs holds the argument and answer types;
//! catalog.rs writes the server's own `list_tables`/`describe_table` SQL.
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
    CallContext, CallFacts, GovernedQuery, PageRequest, ProgressSink, QueryError, QueryRequest,
};
use crate::result::{Platform, ResultSet};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, ListToolsResult,
    PaginatedRequestParams, ProgressNotificationParam, ProgressToken, ServerCapabilities,
    ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, Peer, RoleServer, ServerHandler};
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime};

mod args;
mod catalog;
mod tool_name;
mod tools;

pub use crate::sql_ident::validate_table_name;
pub use args::{
    DatabricksQueryArgs, DescribeTableArgs, FetchMoreArgs, ListTablesArgs, NoArgs, PlatformStatus,
    SnowflakeQueryArgs, WhoAmI,
};
pub use catalog::{describe_table_sql, list_tables_sql};
pub use tool_name::{TOOL_NAMES, ToolName, UnknownTool};
pub(crate) use tools::tool_definitions;

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
            ToolName::label(event.tool),
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
        let Some(name) = ToolName::parse(tool) else {
            return Err(Failure::Protocol(McpError::invalid_params(
                format!("unknown tool {tool:?}; call tools/list for the available tools"),
                None,
            )));
        };
        match name {
            ToolName::QuerySnowflake => {
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
            ToolName::QueryDatabricks => {
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
            ToolName::ListTables => {
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
            ToolName::DescribeTable => {
                let a: DescribeTableArgs = parse_args(tool, arguments)?;
                let (sql, name) =
                    describe_table_sql(a.platform, &a.table).map_err(Failure::bad_input)?;
                self.inner
                    .allow
                    .check_table(a.platform, &name)
                    .map_err(|e| Failure::not_allowed(a.platform, e))?;
                self.run(
                    a.platform,
                    self.catalog_request(sql),
                    call,
                    AllowCheck::ServerSql,
                )
                .await
            }
            ToolName::FetchMore => {
                let a: FetchMoreArgs = parse_args(tool, arguments)?;
                let max_rows = self.max_rows(a.max_rows).map_err(Failure::bad_input)?;
                self.fetch_more(user, &a.cursor, max_rows, call).await
            }
            ToolName::WhoAmI => {
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
        let mut call = CallContext::new(user.user_id.clone(), ToolName::label(&request.name));
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
