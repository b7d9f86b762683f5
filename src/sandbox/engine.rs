//! The sandbox's SQL engine: fixture tables in an in-memory SQLite database,
//! seen through per-user policy views, reached through vended roles.
//!
//! Every fixture table is stored under a mangled SQLite name. For each
//! (user, granted table) the engine creates a *policy view* that applies the
//! grant's `row_filter` (evaluated on the unmasked data) and masks the grant's
//! `masked_columns`: **masked text columns read `'***'`, masked columns of any
//! other type read NULL**. [`Engine::execute`] parses the statement with
//! sqlparser (Snowflake or Databricks dialect), accepts exactly one, resolves
//! every table reference (1, 2 or 3 parts; Snowflake unquoted identifiers are
//! upper-cased, Databricks names are case-insensitive; missing parts come from
//! the [`Namespace`]) to the role's policy view, and runs it. A table that is
//! missing *or* not granted is [`EngineError::NotAuthorized`], so the two are
//! indistinguishable, as on the real platforms.
//!
//! Also answered: Snowflake `SHOW TABLES [LIKE ..] [IN ACCOUNT | DATABASE d |
//! SCHEMA d.s]`, `DESC[RIBE] TABLE t`, `<db>.INFORMATION_SCHEMA.TABLES/COLUMNS`;
//! Databricks `SHOW TABLES [IN c.s] [LIKE ..]`, `DESCRIBE [TABLE] t`,
//! `system.information_schema.tables/columns` and
//! `<catalog>.information_schema.*` — always only the granted tables.
//! `CURRENT_ROLE()`, `CURRENT_DATABASE()`, `CURRENT_SCHEMA()` (and Databricks
//! `current_catalog()`) are answered from the role and namespace; `x::T` and
//! `TRY_CAST` become `CAST`, `ILIKE` becomes (ASCII case-insensitive) `LIKE`.
//! Writes are refused with the platform's "insufficient privileges" wording
//! ([`EngineError::Unsupported`]): vended roles are read-only, and the
//! connection itself is `query_only`.
//!
//! Value storage, per declared (platform-native) type, as [`EngineValue`]s:
//! - integer types, `NUMBER`/`DECIMAL` with scale 0 → `Integer`
//! - `NUMBER(p,s)`/`DECIMAL(p,s)` with s > 0, FLOAT/DOUBLE/REAL → `Real`
//! - BOOLEAN → `Integer` 0/1
//! - text types → `Text`
//! - DATE → `Text` `YYYY-MM-DD`; TIME → `Text` `HH:MM:SS[.f]`
//! - TIMESTAMP_NTZ (and Snowflake TIMESTAMP/DATETIME) → `Text` `YYYY-MM-DD HH:MM:SS[.f]`
//! - TIMESTAMP_LTZ/TZ, Databricks TIMESTAMP → `Text` `YYYY-MM-DD HH:MM:SS[.f]+HH:MM`
//! - VARIANT/OBJECT/ARRAY, Databricks ARRAY<..>/MAP<..>/STRUCT<..> → `Text` (compact JSON)
//! - BINARY → `Blob`
//!
//! [`EngineColumn::inferred_type`] carries the platform type the dialect
//! translation ([`crate::sandbox::dialect`]) infers for computed columns.
//! [`EngineColumn::declared_type`] carries the fixture's native type for a
//! plain column reference (also through views, subqueries and CTEs, and for
//! masked columns), `None` for computed expressions. SQLite's declared type of
//! each stored column is `<CLASS>(<n>)`, which picks the storage affinity and
//! indexes the engine's table of native types.
//!
//! The API is blocking (one connection behind a mutex): call it from
//! `tokio::task::spawn_blocking`.

use crate::result::Platform;
use crate::sandbox::dialect::{self, DialectError, Env};
use crate::sandbox::fixture::{Fixture, FixtureError, PreparedTable, ValueKind};
use rusqlite::Connection;
use rusqlite::types::{Value as SqlValue, ValueRef};
use sqlparser::ast::{
    CastKind, DataType, Expr, Ident, ObjectName, ObjectNamePart, Query, SelectItem, SetExpr,
    ShowStatementFilter, ShowStatementFilterPosition, ShowStatementIn, ShowStatementInParentType,
    Statement, TableFactor, Value, VisitMut, VisitorMut,
};
use sqlparser::dialect::{DatabricksDialect, Dialect, SnowflakeDialect};
use sqlparser::parser::Parser;
use sqlparser::tokenizer::Token;
use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

/// The user id the agent's own identity is bound as (never a fixture user id:
/// fixture ids are e-mail addresses or names without parentheses).
pub const AGENT_IDENTITY: &str = "(agent)";

/// Default database/schema the engine falls back to on Databricks.
const DATABRICKS_DEFAULT_CATALOG: &str = "main";
const DATABRICKS_DEFAULT_SCHEMA: &str = "default";

/// Where unqualified names resolve: Snowflake database / Databricks catalog, and schema.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Namespace {
    pub database: Option<String>,
    pub schema: Option<String>,
}

/// Who a platform session is, as the session functions report it: Snowflake
/// `CURRENT_USER()`, Databricks `current_user()` and `is_account_group_member(g)`
/// / `is_member(g)`. (`CURRENT_ROLE()` is the role the statement runs as.)
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Session {
    /// The login user (the Snowflake user owning the PAT, the Databricks
    /// service principal's application id); NULL when unset.
    pub login_user: Option<String>,
    /// Groups the session is a member of (Databricks).
    pub groups: Vec<String>,
}

/// Rows of one statement.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineResult {
    pub columns: Vec<EngineColumn>,
    pub rows: Vec<Vec<EngineValue>>,
}

/// One result column.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineColumn {
    pub name: String,
    /// The fixture's native type for a plain column reference; None for computed expressions.
    pub declared_type: Option<String>,
    /// The platform type the dialect translation infers for a computed column
    /// (`DATE_TRUNC` → DATE, `COUNT_IF` → NUMBER(18,0), ...); None when unknown.
    pub inferred_type: Option<String>,
    pub nullable: bool,
}

/// A value as SQLite holds it (see the module doc for the per-type conventions).
#[derive(Debug, Clone, PartialEq)]
pub enum EngineValue {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

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

/// A live binding of a vended role (or group) to a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleBinding {
    pub user: String,
    pub expires_at: SystemTime,
}

/// The SQL engine (cheap to clone; all clones share one database).
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("tables", &self.inner.catalog.tables.len())
            .field("users", &self.inner.catalog.users.len())
            .finish_non_exhaustive()
    }
}

struct Inner {
    conn: Mutex<Connection>,
    catalog: Catalog,
    bindings: Mutex<HashMap<(Platform, String), Binding>>,
    /// Display names of roles (Databricks group names), by role.
    role_names: Mutex<HashMap<(Platform, String), String>>,
}

#[derive(Clone, Copy)]
struct Binding {
    user: usize,
    expires_at: SystemTime,
}

struct Catalog {
    tables: Vec<PreparedTable>,
    /// (platform, canonical dotted name) → table index.
    by_name: HashMap<(Platform, String), usize>,
    users: Vec<UserEntry>,
    decls: Vec<DeclMeta>,
    /// Databases (Snowflake) / catalogs (Databricks) per platform, in first-seen order.
    catalogs: HashMap<Platform, Vec<String>>,
    schemas: HashSet<(Platform, String, String)>,
    created_on: String,
}

struct UserEntry {
    id: String,
    /// table index → policy view name.
    views: HashMap<usize, String>,
}

struct DeclMeta {
    native_type: String,
    nullable: bool,
}

fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn dialect(platform: Platform) -> Box<dyn Dialect> {
    match platform {
        Platform::Snowflake => Box::new(SnowflakeDialect {}),
        Platform::Databricks => Box::new(DatabricksDialect {}),
    }
}

fn role_key(platform: Platform, role: &str) -> (Platform, String) {
    let role = role.trim();
    match platform {
        Platform::Snowflake => (platform, role.to_uppercase()),
        Platform::Databricks => (platform, role.to_string()),
    }
}

/// Canonical case of one identifier.
fn canon_ident(platform: Platform, value: &str, quoted: bool) -> String {
    match platform {
        Platform::Snowflake if quoted => value.to_string(),
        Platform::Snowflake => value.to_uppercase(),
        Platform::Databricks => value.to_lowercase(),
    }
}

/// Canonical case of a namespace part given as plain text (`"x"` keeps case on Snowflake).
fn canon_ns(platform: Platform, value: &str) -> String {
    let v = value.trim();
    if let Some(inner) = v.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
        return canon_ident(platform, inner, true);
    }
    let v = v.trim_matches('`');
    canon_ident(platform, v, false)
}

/// Builds the SQLite schema: data tables, mask rows, policy views, information schema.
struct Builder<'c> {
    conn: &'c Connection,
    decls: Vec<DeclMeta>,
}

impl Builder<'_> {
    fn decl(&mut self, kind: ValueKind, native: &str, nullable: bool) -> String {
        self.decls.push(DeclMeta {
            native_type: native.to_string(),
            nullable,
        });
        format!("{}({})", kind.sqlite_class(), self.decls.len() - 1)
    }

    fn exec(&self, sql: &str, what: &str) -> Result<(), EngineError> {
        self.conn
            .execute_batch(sql)
            .map_err(|e| EngineError::Fixture(format!("{what}: {}", sqlite_message(&e))))
    }

    /// Create a table with declared native types and fill it in one transaction.
    fn create_table(
        &mut self,
        name: &str,
        columns: &[(String, ValueKind, String, bool)],
        rows: impl Iterator<Item = Vec<SqlValue>>,
        what: &str,
    ) -> Result<(), EngineError> {
        let defs: Vec<String> = columns
            .iter()
            .map(|(n, kind, native, nullable)| {
                format!("{} {}", quote(n), self.decl(*kind, native, *nullable))
            })
            .collect();
        self.exec(
            &format!("CREATE TABLE {} ({})", quote(name), defs.join(", ")),
            what,
        )?;
        let placeholders = vec!["?"; columns.len()].join(", ");
        let insert = format!("INSERT INTO {} VALUES ({placeholders})", quote(name));
        let fail =
            |e: rusqlite::Error| EngineError::Fixture(format!("{what}: {}", sqlite_message(&e)));
        self.conn.execute_batch("BEGIN").map_err(fail)?;
        {
            let mut stmt = self.conn.prepare(&insert).map_err(fail)?;
            for row in rows {
                stmt.execute(rusqlite::params_from_iter(row.iter()))
                    .map_err(fail)?;
            }
        }
        self.conn.execute_batch("COMMIT").map_err(fail)
    }
}

fn to_sql(v: &EngineValue) -> SqlValue {
    match v {
        EngineValue::Null => SqlValue::Null,
        EngineValue::Integer(i) => SqlValue::Integer(*i),
        EngineValue::Real(f) => SqlValue::Real(*f),
        EngineValue::Text(s) => SqlValue::Text(s.clone()),
        EngineValue::Blob(b) => SqlValue::Blob(b.clone()),
    }
}

fn data_table(ti: usize) -> String {
    format!("tb${ti}")
}
fn mask_table(ti: usize) -> String {
    format!("mk${ti}")
}
fn policy_view(ui: usize, ti: usize) -> String {
    format!("pv${ui}${ti}")
}
fn info_view(platform: Platform, kind: InfoKind, ui: usize, catalog: Option<usize>) -> String {
    let c = catalog.map_or_else(|| "all".to_string(), |c| c.to_string());
    format!("is${}${}${ui}${c}", platform.as_str(), kind.as_str())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum InfoKind {
    Tables,
    Columns,
}

impl InfoKind {
    fn as_str(self) -> &'static str {
        match self {
            InfoKind::Tables => "tables",
            InfoKind::Columns => "columns",
        }
    }
}

/// Rewrites expressions SQLite does not know (`::` casts, ILIKE, context functions).
fn rewrite_expr(expr: &mut Expr, platform: Platform, role: Option<&str>, ns: &Namespace) {
    match expr {
        Expr::Cast {
            kind, data_type, ..
        } => {
            *kind = CastKind::Cast;
            let t = data_type.to_string().to_uppercase();
            if t.contains("DATE") || t.contains("TIME") || t.contains("VARCHAR") || t == "STRING" {
                *data_type = DataType::Text;
            }
        }
        Expr::ILike {
            negated,
            any,
            expr: inner,
            pattern,
            escape_char,
        } => {
            *expr = Expr::Like {
                negated: *negated,
                any: *any,
                expr: inner.clone(),
                pattern: pattern.clone(),
                escape_char: escape_char.clone(),
            };
        }
        Expr::Function(f) => {
            let name = f.name.to_string().to_lowercase();
            let text = match (platform, name.as_str()) {
                (Platform::Snowflake, "current_role") => role.map(str::to_uppercase),
                (Platform::Snowflake, "current_database") => ns.database.clone(),
                (Platform::Snowflake, "current_schema") => ns.schema.clone(),
                (Platform::Databricks, "current_catalog") => Some(
                    ns.database
                        .clone()
                        .unwrap_or_else(|| DATABRICKS_DEFAULT_CATALOG.into()),
                ),
                (Platform::Databricks, "current_schema" | "current_database") => Some(
                    ns.schema
                        .clone()
                        .unwrap_or_else(|| DATABRICKS_DEFAULT_SCHEMA.into()),
                ),
                _ => return,
            };
            *expr = match text {
                Some(t) => Expr::value(Value::SingleQuotedString(t)),
                None => Expr::value(Value::Null),
            };
        }
        _ => {}
    }
}

/// The session functions, answered from `session` as constants:
/// Snowflake `CURRENT_USER()`; Databricks `current_user()`, `session_user()`,
/// and `is_account_group_member('g')` / `is_member('g')` (true when `g` is
/// one of the session's groups; a non-literal argument is never a member).
fn rewrite_session_function(expr: &mut Expr, platform: Platform, session: &Session) {
    let Expr::Function(f) = expr else {
        return;
    };
    let name = f.name.to_string().to_lowercase();
    let replacement = match (platform, name.as_str()) {
        (Platform::Snowflake, "current_user")
        | (Platform::Databricks, "current_user" | "session_user") => match &session.login_user {
            Some(u) => Expr::value(Value::SingleQuotedString(u.clone())),
            None => Expr::value(Value::Null),
        },
        (Platform::Databricks, "is_account_group_member" | "is_member") => {
            let group = match &f.args {
                sqlparser::ast::FunctionArguments::List(list) => match list.args.as_slice() {
                    [
                        sqlparser::ast::FunctionArg::Unnamed(
                            sqlparser::ast::FunctionArgExpr::Expr(Expr::Value(v)),
                        ),
                    ] => match &v.value {
                        Value::SingleQuotedString(g) | Value::DoubleQuotedString(g) => {
                            Some(g.clone())
                        }
                        _ => None,
                    },
                    _ => None,
                },
                _ => None,
            };
            let member = group.is_some_and(|g| session.groups.contains(&g));
            Expr::value(Value::Boolean(member))
        }
        _ => return,
    };
    *expr = replacement;
}

/// Replaces every table reference of a query with the role's policy view.
///
/// CTE names are renamed too (`cte$<n>$<name>`), so a reference that is not
/// in a CTE's scope can never fall through to an internal SQLite object.
struct Rewriter<'a> {
    engine: &'a Inner,
    platform: Platform,
    user: usize,
    role: &'a str,
    ns: &'a Namespace,
    session: &'a Session,
    /// Lower-cased CTE name → its mangled SQLite name.
    ctes: HashMap<String, String>,
}

impl VisitorMut for Rewriter<'_> {
    type Break = EngineError;

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<EngineError> {
        if let Some(with) = &mut query.with {
            for cte in &mut with.cte_tables {
                let original = cte.alias.name.value.clone();
                let mangled = format!("cte${}${original}", self.ctes.len());
                self.ctes.insert(original.to_lowercase(), mangled.clone());
                cte.alias.name = Ident::with_quote('"', mangled);
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<EngineError> {
        let (name, alias) = match factor {
            TableFactor::Table {
                name, alias, args, ..
            } => {
                // json_each(..) only reads its argument: the translation's FLATTEN/explode.
                if args.is_some() && name.to_string().eq_ignore_ascii_case("json_each") {
                    return ControlFlow::Continue(());
                }
                if args.is_some() {
                    return ControlFlow::Break(EngineError::Unsupported(format!(
                        "table function {name} is not supported by the sandbox"
                    )));
                }
                (name, alias)
            }
            TableFactor::Derived { .. } | TableFactor::NestedJoin { .. } => {
                return ControlFlow::Continue(());
            }
            other => {
                let text = other.to_string();
                let head: String = text.chars().take(40).collect();
                return ControlFlow::Break(EngineError::Unsupported(format!(
                    "FROM item {head}... is not supported by the sandbox (tables, subqueries and joins only)"
                )));
            }
        };
        let cte = match name.0.as_slice() {
            [ObjectNamePart::Identifier(id)] => self.ctes.get(&id.value.to_lowercase()).cloned(),
            _ => None,
        };
        let relation = match cte {
            Some(mangled) => mangled,
            None => match self
                .engine
                .resolve_relation(self.platform, self.user, name, self.ns)
            {
                Ok(r) => r,
                Err(e) => return ControlFlow::Break(e),
            },
        };
        if alias.is_none()
            && let Some(ObjectNamePart::Identifier(last)) = name.0.last()
        {
            *alias = Some(sqlparser::ast::TableAlias {
                explicit: true,
                name: Ident::with_quote('"', last.value.clone()),
                columns: vec![],
                at: None,
            });
        }
        *name = ObjectName::from(vec![Ident::with_quote('"', relation)]);
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<EngineError> {
        rewrite_expr(expr, self.platform, Some(self.role), self.ns);
        rewrite_session_function(expr, self.platform, self.session);
        ControlFlow::Continue(())
    }
}

/// Name parts of an object name with their quoting.
fn name_parts(name: &ObjectName) -> Result<Vec<(String, bool)>, EngineError> {
    name.0
        .iter()
        .map(|p| match p {
            ObjectNamePart::Identifier(id) => Ok((id.value.clone(), id.quote_style.is_some())),
            other => Err(EngineError::Unsupported(format!(
                "object name part {other} is not supported by the sandbox"
            ))),
        })
        .collect()
}

impl Engine {
    /// Load the fixture into a fresh in-memory database (validates it first).
    pub fn new(fixture: &Fixture) -> Result<Engine, EngineError> {
        let prepared = fixture.prepare().map_err(|e| match e {
            FixtureError::Invalid(m) => EngineError::Fixture(m),
            other => EngineError::Fixture(other.to_string()),
        })?;
        let conn = Connection::open_in_memory()
            .map_err(|e| EngineError::Execution(format!("cannot open SQLite: {e}")))?;
        dialect::functions::register(&conn).map_err(|e| {
            EngineError::Execution(format!("cannot register the dialect functions: {e}"))
        })?;
        let mut b = Builder {
            conn: &conn,
            decls: Vec::new(),
        };
        for (ti, t) in prepared.tables.iter().enumerate() {
            let what = format!("loading table {}", t.display_name());
            let cols: Vec<(String, ValueKind, String, bool)> = t
                .columns
                .iter()
                .map(|c| (c.name.clone(), c.kind, c.native_type.clone(), c.nullable))
                .collect();
            let templates: Vec<Vec<SqlValue>> = t
                .rows
                .iter()
                .map(|r| r.iter().map(to_sql).collect())
                .collect();
            let id_col = t.generated_id_column;
            let rows = (0..t.row_count).map(|i| {
                let mut row = templates[i % templates.len()].clone();
                if let Some(c) = id_col {
                    row[c] = SqlValue::Integer(i as i64 + 1);
                }
                row
            });
            b.create_table(&data_table(ti), &cols, rows, &what)?;
            let mask_cols: Vec<(String, ValueKind, String, bool)> = t
                .columns
                .iter()
                .map(|c| {
                    (
                        c.name.clone(),
                        c.kind,
                        c.native_type.clone(),
                        c.nullable || !c.kind.is_text(),
                    )
                })
                .collect();
            let mask_row: Vec<SqlValue> = t
                .columns
                .iter()
                .map(|c| {
                    if c.kind.is_text() {
                        SqlValue::Text("***".into())
                    } else {
                        SqlValue::Null
                    }
                })
                .collect();
            b.create_table(
                &mask_table(ti),
                &mask_cols,
                std::iter::once(mask_row),
                &what,
            )?;
        }
        let mut users = Vec::with_capacity(prepared.users.len());
        for (ui, u) in prepared.users.iter().enumerate() {
            let mut views = HashMap::new();
            for g in &u.grants {
                let t = &prepared.tables[g.table];
                let view = policy_view(ui, g.table);
                let filter = match &g.row_filter {
                    Some(f) => Some(row_filter_sql(t.platform, f).map_err(|e| {
                        EngineError::Fixture(format!(
                            "user {}: row filter {f:?} on table {} does not parse: {e}",
                            u.id,
                            t.display_name()
                        ))
                    })?),
                    None => None,
                };
                let select_list: Vec<String> = t
                    .columns
                    .iter()
                    .enumerate()
                    .map(|(ci, c)| {
                        let src = if g.masked.contains(&ci) { "m" } else { "d" };
                        format!("{src}.{} AS {}", quote(&c.name), quote(&c.name))
                    })
                    .collect();
                let where_clause = filter.map(|f| format!(" WHERE ({f})")).unwrap_or_default();
                let sql = format!(
                    "CREATE VIEW {} AS SELECT {} FROM {} AS m CROSS JOIN (SELECT * FROM {}{where_clause}) AS d",
                    quote(&view),
                    select_list.join(", "),
                    quote(&mask_table(g.table)),
                    quote(&data_table(g.table)),
                );
                let what = format!(
                    "user {}: grant on table {} (row filter {:?})",
                    u.id,
                    t.display_name(),
                    g.row_filter.as_deref().unwrap_or("")
                );
                b.exec(&sql, &what)?;
                conn.prepare(&format!("SELECT * FROM {} LIMIT 0", quote(&view)))
                    .map_err(|e| {
                        EngineError::Fixture(format!("{what} is not valid: {}", sqlite_message(&e)))
                    })?;
                views.insert(g.table, view);
            }
            users.push(UserEntry {
                id: u.id.clone(),
                views,
            });
        }
        // The agent's own identity: no grants at all (see `bind_agent_role`).
        users.push(UserEntry {
            id: AGENT_IDENTITY.to_string(),
            views: HashMap::new(),
        });
        let mut catalogs: HashMap<Platform, Vec<String>> = HashMap::new();
        let mut schemas = HashSet::new();
        let mut by_name = HashMap::new();
        for (ti, t) in prepared.tables.iter().enumerate() {
            let list = catalogs.entry(t.platform).or_default();
            if !list.contains(&t.parts[0]) {
                list.push(t.parts[0].clone());
            }
            schemas.insert((t.platform, t.parts[0].clone(), t.parts[1].clone()));
            by_name.insert((t.platform, t.display_name()), ti);
        }
        build_information_schema(&mut b, &prepared.tables, &users, &catalogs)?;
        let decls = b.decls;
        conn.pragma_update(None, "query_only", true)
            .map_err(|e| EngineError::Execution(format!("cannot make SQLite read-only: {e}")))?;
        let created_on = chrono::Utc::now()
            .format("%Y-%m-%d %H:%M:%S%.3f%:z")
            .to_string();
        Ok(Engine {
            inner: Arc::new(Inner {
                conn: Mutex::new(conn),
                catalog: Catalog {
                    tables: prepared.tables,
                    by_name,
                    users,
                    decls,
                    catalogs,
                    schemas,
                    created_on,
                },
                bindings: Mutex::new(HashMap::new()),
                role_names: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// Bind `role` to the agent's own identity, which has no grants: what a
    /// platform runs as when it ignores the on-behalf-of restriction.
    pub fn bind_agent_role(&self, platform: Platform, role: &str) {
        let agent = self.inner.catalog.users.len() - 1;
        lock(&self.inner.bindings).insert(
            role_key(platform, role),
            Binding {
                user: agent,
                expires_at: SystemTime::now() + std::time::Duration::from_secs(100 * 365 * 86_400),
            },
        );
    }

    /// Remember the display name of `role` (a Databricks group's name; the
    /// role itself is the group id).
    pub fn name_role(&self, platform: Platform, role: &str, name: &str) {
        lock(&self.inner.role_names).insert(role_key(platform, role), name.to_string());
    }

    /// The display name given with [`name_role`](Self::name_role), if any.
    pub fn role_name(&self, platform: Platform, role: &str) -> Option<String> {
        lock(&self.inner.role_names)
            .get(&role_key(platform, role))
            .cloned()
    }

    /// Ids of the fixture's users, in fixture order.
    pub fn user_ids(&self) -> Vec<String> {
        self.inner
            .catalog
            .users
            .iter()
            .filter(|u| u.id != AGENT_IDENTITY)
            .map(|u| u.id.clone())
            .collect()
    }

    /// Whether the fixture declares `user`.
    pub fn has_user(&self, user: &str) -> bool {
        self.inner.user_index(user).is_some()
    }

    /// Dotted names of the tables of `platform` that `user` may read, sorted.
    pub fn visible_tables(&self, platform: Platform, user: &str) -> Vec<String> {
        let cat = &self.inner.catalog;
        let Some(ui) = self.inner.user_index(user) else {
            return Vec::new();
        };
        let mut names: Vec<String> = cat.users[ui]
            .views
            .keys()
            .map(|&ti| &cat.tables[ti])
            .filter(|t| t.platform == platform)
            .map(PreparedTable::display_name)
            .collect();
        names.sort();
        names
    }

    /// Bind a vended role name (Snowflake) or exclusive-group id (Databricks) to `user`'s grants until `expires_at`.
    pub fn bind_role(
        &self,
        platform: Platform,
        role: &str,
        user: &str,
        expires_at: SystemTime,
    ) -> Result<(), EngineError> {
        let ui = self.inner.user_index(user).ok_or_else(|| {
            EngineError::Execution(format!(
                "user {user} is not declared in the sandbox fixture"
            ))
        })?;
        lock(&self.inner.bindings).insert(
            role_key(platform, role),
            Binding {
                user: ui,
                expires_at,
            },
        );
        Ok(())
    }

    /// Drop one binding (the role was dropped upstream).
    pub fn unbind_role(&self, platform: Platform, role: &str) {
        lock(&self.inner.bindings).remove(&role_key(platform, role));
    }

    /// Drop every binding (fault knob "vended roles revoked/expired").
    pub fn expire_all_roles(&self) {
        lock(&self.inner.bindings).clear();
    }

    /// The user a live (unexpired) binding belongs to.
    pub fn role_user(&self, platform: Platform, role: &str) -> Option<String> {
        self.role_binding(platform, role).map(|b| b.user)
    }

    /// The live binding of `role`: its user and when it expires.
    pub fn role_binding(&self, platform: Platform, role: &str) -> Option<RoleBinding> {
        let b = self.inner.live_binding(platform, role)?;
        Some(RoleBinding {
            user: self.inner.catalog.users[b.user].id.clone(),
            expires_at: b.expires_at,
        })
    }

    /// Run ONE statement as `role`. Errors if the role is not bound/expired.
    pub fn execute(
        &self,
        platform: Platform,
        role: &str,
        sql: &str,
        ns: &Namespace,
    ) -> Result<EngineResult, EngineError> {
        self.execute_as(platform, role, sql, ns, &Session::default())
    }

    /// [`execute`](Self::execute) in a session whose identity functions answer from `session`.
    pub fn execute_as(
        &self,
        platform: Platform,
        role: &str,
        sql: &str,
        ns: &Namespace,
        session: &Session,
    ) -> Result<EngineResult, EngineError> {
        let binding = self
            .inner
            .live_binding(platform, role)
            .ok_or_else(|| EngineError::UnknownRole(role.to_string()))?;
        let ns = Namespace {
            database: ns.database.as_deref().map(|d| canon_ns(platform, d)),
            schema: ns.schema.as_deref().map(|s| canon_ns(platform, s)),
        };
        self.inner
            .execute(platform, binding.user, role, sql, &ns, session)
    }
}

/// The row filter as SQLite SQL (parsed in the platform dialect, then printed).
fn row_filter_sql(platform: Platform, filter: &str) -> Result<String, String> {
    let d = dialect(platform);
    let mut parser = Parser::new(d.as_ref())
        .try_with_sql(filter)
        .map_err(|e| e.to_string())?;
    let mut expr = parser.parse_expr().map_err(|e| e.to_string())?;
    let next = parser.peek_token();
    if next.token != Token::EOF {
        return Err(format!("unexpected {} after the predicate", next.token));
    }
    let ns = Namespace::default();
    let _ = sqlparser::ast::visit_expressions_mut(&mut expr, |e| {
        rewrite_expr(e, platform, None, &ns);
        ControlFlow::<()>::Continue(())
    });
    Ok(expr.to_string())
}

fn build_information_schema(
    b: &mut Builder<'_>,
    tables: &[PreparedTable],
    users: &[UserEntry],
    catalogs: &HashMap<Platform, Vec<String>>,
) -> Result<(), EngineError> {
    let what = "building information_schema";
    for platform in [Platform::Snowflake, Platform::Databricks] {
        let sf = platform == Platform::Snowflake;
        let (text, int) = if sf {
            ("TEXT", "NUMBER(38,0)")
        } else {
            ("STRING", "INT")
        };
        let c = |n: &str, kind: ValueKind, native: &str, nullable: bool| {
            let name = if sf { n.to_uppercase() } else { n.to_string() };
            (name, kind, native.to_string(), nullable)
        };
        let t = ValueKind::Text;
        let i = ValueKind::Integer;
        let mut table_cols = vec![
            ("user_idx".to_string(), i, "INTEGER".to_string(), false),
            c("table_catalog", t, text, false),
            c("table_schema", t, text, false),
            c("table_name", t, text, false),
            c("table_type", t, text, false),
        ];
        if sf {
            table_cols.push(c("row_count", i, int, true));
        }
        table_cols.push(c("comment", t, text, true));
        let mut column_cols = vec![
            ("user_idx".to_string(), i, "INTEGER".to_string(), false),
            c("table_catalog", t, text, false),
            c("table_schema", t, text, false),
            c("table_name", t, text, false),
            c("column_name", t, text, false),
            c("ordinal_position", i, int, false),
            c("is_nullable", t, text, false),
            c("data_type", t, text, false),
        ];
        if !sf {
            column_cols.push(c("full_data_type", t, text, false));
        }
        column_cols.push(c("comment", t, text, true));

        let mut table_rows = Vec::new();
        let mut column_rows = Vec::new();
        for (ui, u) in users.iter().enumerate() {
            let mut granted: Vec<usize> = u
                .views
                .keys()
                .copied()
                .filter(|&ti| tables[ti].platform == platform)
                .collect();
            granted.sort_unstable();
            for ti in granted {
                let tb = &tables[ti];
                let txt = |s: &str| SqlValue::Text(s.to_string());
                let opt = |s: &Option<String>| s.as_deref().map_or(SqlValue::Null, txt);
                let mut row = vec![
                    SqlValue::Integer(ui as i64),
                    txt(&tb.parts[0]),
                    txt(&tb.parts[1]),
                    txt(&tb.parts[2]),
                    txt(if sf { "BASE TABLE" } else { "MANAGED" }),
                ];
                if sf {
                    row.push(SqlValue::Integer(tb.row_count as i64));
                }
                row.push(opt(&tb.comment));
                table_rows.push(row);
                for (ci, col) in tb.columns.iter().enumerate() {
                    let base = col
                        .native_type
                        .split(['(', '<'])
                        .next()
                        .unwrap_or_default()
                        .trim()
                        .to_string();
                    let mut row = vec![
                        SqlValue::Integer(ui as i64),
                        txt(&tb.parts[0]),
                        txt(&tb.parts[1]),
                        txt(&tb.parts[2]),
                        txt(&col.name),
                        SqlValue::Integer(if sf { ci as i64 + 1 } else { ci as i64 }),
                        txt(if col.nullable { "YES" } else { "NO" }),
                        txt(&base),
                    ];
                    if !sf {
                        row.push(txt(&col.native_type.to_lowercase()));
                    }
                    row.push(opt(&col.comment));
                    column_rows.push(row);
                }
            }
        }
        let base_tables = format!("is${}$tables", platform.as_str());
        let base_columns = format!("is${}$columns", platform.as_str());
        b.create_table(&base_tables, &table_cols, table_rows.into_iter(), what)?;
        b.create_table(&base_columns, &column_cols, column_rows.into_iter(), what)?;
        let list = |cols: &[(String, ValueKind, String, bool)]| {
            cols.iter()
                .skip(1)
                .map(|c| quote(&c.0))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let cats = catalogs.get(&platform).cloned().unwrap_or_default();
        for ui in 0..users.len() {
            for (kind, base, cols) in [
                (InfoKind::Tables, &base_tables, &table_cols),
                (InfoKind::Columns, &base_columns, &column_cols),
            ] {
                let scopes = std::iter::once(None).chain((0..cats.len()).map(Some));
                for scope in scopes {
                    let cat_filter = scope
                        .map(|ci| format!(" AND {} = {}", quote(&cols[1].0), literal(&cats[ci])))
                        .unwrap_or_default();
                    b.exec(
                        &format!(
                            "CREATE VIEW {} AS SELECT {} FROM {} WHERE \"user_idx\" = {ui}{cat_filter}",
                            quote(&info_view(platform, kind, ui, scope)),
                            list(cols),
                            quote(base)
                        ),
                        what,
                    )?;
                }
            }
        }
    }
    Ok(())
}

/// Scope of a SHOW TABLES.
enum ShowScope {
    Account,
    Database(String),
    Schema(String, String),
}

impl Inner {
    fn user_index(&self, user: &str) -> Option<usize> {
        self.catalog.users.iter().position(|u| u.id == user)
    }

    fn live_binding(&self, platform: Platform, role: &str) -> Option<Binding> {
        let key = role_key(platform, role);
        let mut bindings = lock(&self.bindings);
        let b = *bindings.get(&key)?;
        if SystemTime::now() >= b.expires_at {
            bindings.remove(&key);
            return None;
        }
        Some(b)
    }

    fn execute(
        &self,
        platform: Platform,
        user: usize,
        role: &str,
        sql: &str,
        ns: &Namespace,
        session: &Session,
    ) -> Result<EngineResult, EngineError> {
        let d = dialect(platform);
        if let Some(target) = describe_target(d.as_ref(), sql) {
            let name = target?;
            return self.describe(platform, user, &name, ns);
        }
        let mut statements =
            Parser::parse_sql(d.as_ref(), sql).map_err(|e| EngineError::Syntax(e.to_string()))?;
        match statements.len() {
            0 => return Err(EngineError::Syntax("empty SQL statement".into())),
            1 => {}
            n => {
                return Err(EngineError::Unsupported(format!(
                    "Actual statement count {n} did not match the desired statement count 1."
                )));
            }
        }
        let mut statement = statements.remove(0);
        match &mut statement {
            Statement::Query(query) => self.query(platform, user, role, query, ns, session),
            Statement::ShowTables { show_options, .. } => {
                let scope = self.show_scope(platform, show_options.show_in.as_ref(), ns)?;
                let pattern = match &show_options.filter_position {
                    Some(
                        ShowStatementFilterPosition::Infix(f)
                        | ShowStatementFilterPosition::Suffix(f),
                    ) => match f {
                        ShowStatementFilter::Like(p) | ShowStatementFilter::ILike(p) => {
                            Some(p.clone())
                        }
                        other => {
                            return Err(EngineError::Unsupported(format!(
                                "SHOW TABLES filter {other} is not supported by the sandbox"
                            )));
                        }
                    },
                    None => None,
                };
                let starts_with = show_options
                    .starts_with
                    .as_ref()
                    .and_then(|v| match &v.value {
                        Value::SingleQuotedString(s) => Some(s.clone()),
                        _ => None,
                    });
                let limit = match &show_options.limit {
                    Some(Expr::Value(v)) => match &v.value {
                        Value::Number(n, _) => n.parse::<usize>().ok(),
                        _ => None,
                    },
                    _ => None,
                };
                Ok(self.show_tables(
                    platform,
                    user,
                    &scope,
                    pattern.as_deref(),
                    starts_with.as_deref(),
                    limit,
                ))
            }
            Statement::ExplainTable { table_name, .. } => {
                let name = table_name.clone();
                self.describe(platform, user, &name, ns)
            }
            other if is_write(other) => Err(self.write_refused(platform, other)),
            other => {
                let keyword = other
                    .to_string()
                    .split_whitespace()
                    .take(2)
                    .collect::<Vec<_>>()
                    .join(" ")
                    .to_uppercase();
                Err(EngineError::Unsupported(format!(
                    "statement {keyword} is not supported by the sandbox (queries, SHOW TABLES and DESCRIBE only)"
                )))
            }
        }
    }

    fn write_refused(&self, platform: Platform, statement: &Statement) -> EngineError {
        let mut first: Option<ObjectName> = None;
        let _ = sqlparser::ast::visit_relations(statement, |r| {
            first = Some(r.clone());
            ControlFlow::<()>::Break(())
        });
        let target = first.map(|n| {
            n.0.iter()
                .map(|p| match p {
                    ObjectNamePart::Identifier(id) => {
                        canon_ident(platform, &id.value, id.quote_style.is_some())
                    }
                    other => other.to_string(),
                })
                .collect::<Vec<_>>()
        });
        match platform {
            Platform::Snowflake => EngineError::Unsupported(match target {
                Some(parts) => format!(
                    "SQL access control error:\nInsufficient privileges to operate on table '{}'",
                    parts.last().cloned().unwrap_or_default()
                ),
                None => "SQL access control error:\nInsufficient privileges to operate on account"
                    .to_string(),
            }),
            Platform::Databricks => EngineError::Unsupported(match target {
                Some(parts) => format!(
                    "[INSUFFICIENT_PERMISSIONS] Insufficient privileges:\nUser does not have MODIFY on Table '{}'. SQLSTATE: 42501",
                    parts.join(".")
                ),
                None => "[INSUFFICIENT_PERMISSIONS] Insufficient privileges: the vended group is read-only. SQLSTATE: 42501".to_string(),
            }),
        }
    }

    /// Fill in missing name parts from the namespace, in canonical case.
    fn full_name(
        &self,
        platform: Platform,
        name: &ObjectName,
        ns: &Namespace,
    ) -> Result<[String; 3], EngineError> {
        let parts = name_parts(name)?;
        let canon: Vec<String> = parts
            .iter()
            .map(|(v, q)| canon_ident(platform, v, *q))
            .collect();
        let (db, schema) = match platform {
            Platform::Snowflake => (ns.database.clone(), ns.schema.clone()),
            Platform::Databricks => (
                Some(
                    ns.database
                        .clone()
                        .unwrap_or_else(|| DATABRICKS_DEFAULT_CATALOG.into()),
                ),
                Some(
                    ns.schema
                        .clone()
                        .unwrap_or_else(|| DATABRICKS_DEFAULT_SCHEMA.into()),
                ),
            ),
        };
        let missing_db = || {
            EngineError::Execution(
                "Cannot perform SELECT. This session does not have a current database. Call 'USE DATABASE', or use a qualified name."
                    .into(),
            )
        };
        match canon.as_slice() {
            [t] => {
                let db = db.ok_or_else(missing_db)?;
                let schema = schema.ok_or_else(|| {
                    EngineError::Execution(
                        "Cannot perform SELECT. This session does not have a current schema. Call 'USE SCHEMA', or use a qualified name."
                            .into(),
                    )
                })?;
                Ok([db, schema, t.clone()])
            }
            [s, t] => Ok([db.ok_or_else(missing_db)?, s.clone(), t.clone()]),
            [d, s, t] => Ok([d.clone(), s.clone(), t.clone()]),
            _ => Err(EngineError::NotAuthorized {
                object: canon.join("."),
            }),
        }
    }

    /// The SQLite relation that stands for `name` under the user's grants.
    fn resolve_relation(
        &self,
        platform: Platform,
        user: usize,
        name: &ObjectName,
        ns: &Namespace,
    ) -> Result<String, EngineError> {
        let full = self.full_name(platform, name, ns)?;
        let display = full.join(".");
        if full[1].eq_ignore_ascii_case("information_schema") {
            let kind = if full[2].eq_ignore_ascii_case("tables") {
                InfoKind::Tables
            } else if full[2].eq_ignore_ascii_case("columns") {
                InfoKind::Columns
            } else {
                return Err(EngineError::NotAuthorized { object: display });
            };
            let cats = self
                .catalog
                .catalogs
                .get(&platform)
                .map(Vec::as_slice)
                .unwrap_or_default();
            let scope = if platform == Platform::Databricks && full[0] == "system" {
                None
            } else {
                match cats.iter().position(|c| *c == full[0]) {
                    Some(ci) => Some(ci),
                    None => return Err(EngineError::NotAuthorized { object: display }),
                }
            };
            return Ok(info_view(platform, kind, user, scope));
        }
        let ti = self
            .catalog
            .by_name
            .get(&(platform, display.clone()))
            .ok_or_else(|| EngineError::NotAuthorized {
                object: display.clone(),
            })?;
        self.catalog.users[user]
            .views
            .get(ti)
            .cloned()
            .ok_or(EngineError::NotAuthorized { object: display })
    }

    fn query(
        &self,
        platform: Platform,
        user: usize,
        role: &str,
        query: &mut Query,
        ns: &Namespace,
        session: &Session,
    ) -> Result<EngineResult, EngineError> {
        let env = self.type_env(platform, user, query, ns);
        let translated = dialect::translate(platform, query, env).map_err(|e| match e {
            DialectError::Unsupported(_) => EngineError::Unsupported(e.to_string()),
            DialectError::Invalid(m) => EngineError::Syntax(m),
        })?;
        let mut rewriter = Rewriter {
            engine: self,
            platform,
            user,
            role,
            ns,
            session,
            ctes: HashMap::new(),
        };
        if let ControlFlow::Break(e) = query.visit(&mut rewriter) {
            return Err(e);
        }
        let mut quoted_aliases = HashSet::new();
        if let SetExpr::Select(select) = query.body.as_ref() {
            for item in &select.projection {
                if let SelectItem::ExprWithAlias { alias, .. } = item
                    && alias.quote_style.is_some()
                {
                    quoted_aliases.insert(alias.value.clone());
                }
            }
        }
        let sql = query.to_string();
        let mut result = self.run(platform, &sql, &translated.types)?;
        if translated.hidden > 0 {
            let keep = result.columns.len().saturating_sub(translated.hidden);
            result.columns.truncate(keep);
            for row in &mut result.rows {
                row.truncate(keep);
            }
        }
        if platform == Platform::Snowflake {
            for c in &mut result.columns {
                if !quoted_aliases.contains(&c.name) {
                    c.name = c.name.to_uppercase();
                }
            }
        }
        Ok(result)
    }

    /// Column types of the granted tables the query names, under their aliases.
    fn type_env(&self, platform: Platform, user: usize, query: &Query, ns: &Namespace) -> Env {
        struct Tables(Vec<(ObjectName, Option<String>)>);
        impl sqlparser::ast::Visitor for Tables {
            type Break = ();
            fn pre_visit_table_factor(&mut self, f: &TableFactor) -> ControlFlow<()> {
                if let TableFactor::Table {
                    name,
                    alias,
                    args: None,
                    ..
                } = f
                {
                    self.0
                        .push((name.clone(), alias.as_ref().map(|a| a.name.value.clone())));
                }
                ControlFlow::Continue(())
            }
        }
        let mut found = Tables(Vec::new());
        let _ = sqlparser::ast::Visit::visit(query, &mut found);
        let mut env = Env::default();
        for (name, alias) in found.0 {
            let Ok(full) = self.full_name(platform, &name, ns) else {
                continue;
            };
            let Some(&ti) = self.catalog.by_name.get(&(platform, full.join("."))) else {
                continue;
            };
            if !self.catalog.users[user].views.contains_key(&ti) {
                continue;
            }
            let qualifier = alias.unwrap_or_else(|| full[2].clone());
            for c in &self.catalog.tables[ti].columns {
                if let Some(t) = dialect::types::parse_declared(platform, &c.native_type) {
                    env.add(&qualifier, &c.name, t);
                }
            }
        }
        env
    }

    /// Run rewritten SQL on SQLite and collect the rows.
    fn run(
        &self,
        platform: Platform,
        sql: &str,
        inferred: &[Option<String>],
    ) -> Result<EngineResult, EngineError> {
        let conn = lock(&self.conn);
        let mut stmt = conn
            .prepare(sql)
            .map_err(|e| EngineError::Syntax(compile_message(platform, &e)))?;
        if !stmt.readonly() {
            return Err(EngineError::Unsupported(
                "only read statements may run under a vended role".into(),
            ));
        }
        let columns: Vec<EngineColumn> = stmt
            .columns()
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let meta = c.decl_type().and_then(|d| self.decl_meta(d));
                EngineColumn {
                    name: c.name().to_string(),
                    declared_type: meta.map(|m| m.native_type.clone()),
                    inferred_type: inferred.get(i).cloned().flatten(),
                    nullable: meta.is_none_or(|m| m.nullable),
                }
            })
            .collect();
        let width = columns.len();
        let mut out = Vec::new();
        let mut rows = stmt.raw_query();
        while let Some(row) = rows
            .next()
            .map_err(|e| EngineError::Execution(sqlite_message(&e)))?
        {
            let mut values = Vec::with_capacity(width);
            for i in 0..width {
                let v = row
                    .get_ref(i)
                    .map_err(|e| EngineError::Execution(sqlite_message(&e)))?;
                values.push(match v {
                    ValueRef::Null => EngineValue::Null,
                    ValueRef::Integer(i) => EngineValue::Integer(i),
                    ValueRef::Real(f) => EngineValue::Real(f),
                    ValueRef::Text(t) => EngineValue::Text(String::from_utf8_lossy(t).into_owned()),
                    ValueRef::Blob(b) => EngineValue::Blob(b.to_vec()),
                });
            }
            out.push(values);
        }
        Ok(EngineResult { columns, rows: out })
    }

    fn decl_meta(&self, decl: &str) -> Option<&DeclMeta> {
        let (_, rest) = decl.split_once('(')?;
        let id: usize = rest.strip_suffix(')')?.trim().parse().ok()?;
        self.catalog.decls.get(id)
    }

    fn show_scope(
        &self,
        platform: Platform,
        show_in: Option<&ShowStatementIn>,
        ns: &Namespace,
    ) -> Result<ShowScope, EngineError> {
        let known_db = |db: &str| {
            self.catalog
                .catalogs
                .get(&platform)
                .is_some_and(|c| c.iter().any(|x| x == db))
        };
        let canon = |name: &ObjectName| -> Result<Vec<String>, EngineError> {
            Ok(name_parts(name)?
                .iter()
                .map(|(v, q)| canon_ident(platform, v, *q))
                .collect())
        };
        let default_db = || match platform {
            Platform::Snowflake => ns.database.clone(),
            Platform::Databricks => Some(
                ns.database
                    .clone()
                    .unwrap_or_else(|| DATABRICKS_DEFAULT_CATALOG.into()),
            ),
        };
        let scope = match show_in {
            None => match (default_db(), platform, ns.schema.clone()) {
                (Some(db), _, Some(s)) => ShowScope::Schema(db, s),
                (Some(db), Platform::Databricks, None) => {
                    ShowScope::Schema(db, DATABRICKS_DEFAULT_SCHEMA.into())
                }
                (Some(db), Platform::Snowflake, None) => ShowScope::Database(db),
                (None, _, _) => ShowScope::Account,
            },
            Some(si) => {
                let parts = match &si.parent_name {
                    Some(n) => canon(n)?,
                    None => Vec::new(),
                };
                match (&si.parent_type, parts.as_slice()) {
                    (Some(ShowStatementInParentType::Account), _) => ShowScope::Account,
                    (Some(ShowStatementInParentType::Database), [db]) => {
                        ShowScope::Database(db.clone())
                    }
                    (Some(ShowStatementInParentType::Schema) | None, [db, s]) => {
                        ShowScope::Schema(db.clone(), s.clone())
                    }
                    (None, [db]) if platform == Platform::Snowflake && known_db(db) => {
                        ShowScope::Database(db.clone())
                    }
                    (Some(ShowStatementInParentType::Schema) | None, [s]) => {
                        let db = default_db().ok_or_else(|| {
                            EngineError::Execution(
                                "Cannot perform SHOW TABLES. This session does not have a current database. Call 'USE DATABASE', or use a qualified name."
                                    .into(),
                            )
                        })?;
                        ShowScope::Schema(db, s.clone())
                    }
                    _ => {
                        return Err(EngineError::Unsupported(format!(
                            "SHOW TABLES {si} is not supported by the sandbox"
                        )));
                    }
                }
            }
        };
        match &scope {
            ShowScope::Database(db) if !known_db(db) => {
                Err(EngineError::NotAuthorized { object: db.clone() })
            }
            ShowScope::Schema(db, s)
                if !self
                    .catalog
                    .schemas
                    .contains(&(platform, db.clone(), s.clone())) =>
            {
                Err(EngineError::NotAuthorized {
                    object: format!("{db}.{s}"),
                })
            }
            _ => Ok(scope),
        }
    }

    fn show_tables(
        &self,
        platform: Platform,
        user: usize,
        scope: &ShowScope,
        pattern: Option<&str>,
        starts_with: Option<&str>,
        limit: Option<usize>,
    ) -> EngineResult {
        let mut tables: Vec<&PreparedTable> = self.catalog.users[user]
            .views
            .keys()
            .map(|&ti| &self.catalog.tables[ti])
            .filter(|t| t.platform == platform)
            .filter(|t| match scope {
                ShowScope::Account => true,
                ShowScope::Database(db) => t.parts[0] == *db,
                ShowScope::Schema(db, s) => t.parts[0] == *db && t.parts[1] == *s,
            })
            .filter(|t| pattern.is_none_or(|p| pattern_matches(platform, p, &t.parts[2])))
            .filter(|t| starts_with.is_none_or(|p| t.parts[2].starts_with(p)))
            .collect();
        tables.sort_by(|a, b| a.parts.cmp(&b.parts));
        if let Some(n) = limit {
            tables.truncate(n);
        }
        let text = |s: &str| EngineValue::Text(s.to_string());
        let col = |name: &str, ty: &str, nullable: bool| EngineColumn {
            name: name.into(),
            declared_type: Some(ty.into()),
            inferred_type: None,
            nullable,
        };
        match platform {
            Platform::Snowflake => EngineResult {
                columns: vec![
                    col("created_on", "TIMESTAMP_LTZ", false),
                    col("name", "TEXT", false),
                    col("database_name", "TEXT", false),
                    col("schema_name", "TEXT", false),
                    col("kind", "TEXT", false),
                    col("comment", "TEXT", true),
                    col("rows", "NUMBER(38,0)", true),
                ],
                rows: tables
                    .iter()
                    .map(|t| {
                        vec![
                            text(&self.catalog.created_on),
                            text(&t.parts[2]),
                            text(&t.parts[0]),
                            text(&t.parts[1]),
                            text("TABLE"),
                            text(t.comment.as_deref().unwrap_or("")),
                            EngineValue::Integer(t.row_count as i64),
                        ]
                    })
                    .collect(),
            },
            Platform::Databricks => EngineResult {
                columns: vec![
                    col("database", "STRING", false),
                    col("tableName", "STRING", false),
                    col("isTemporary", "BOOLEAN", false),
                ],
                rows: tables
                    .iter()
                    .map(|t| {
                        vec![
                            text(&t.parts[1]),
                            text(&t.parts[2]),
                            EngineValue::Integer(0),
                        ]
                    })
                    .collect(),
            },
        }
    }

    fn describe(
        &self,
        platform: Platform,
        user: usize,
        name: &ObjectName,
        ns: &Namespace,
    ) -> Result<EngineResult, EngineError> {
        let full = self.full_name(platform, name, ns)?;
        let display = full.join(".");
        let ti = *self
            .catalog
            .by_name
            .get(&(platform, display.clone()))
            .ok_or_else(|| EngineError::NotAuthorized {
                object: display.clone(),
            })?;
        if !self.catalog.users[user].views.contains_key(&ti) {
            return Err(EngineError::NotAuthorized { object: display });
        }
        let t = &self.catalog.tables[ti];
        let text = |s: &str| EngineValue::Text(s.to_string());
        let opt = |s: &Option<String>| s.as_deref().map_or(EngineValue::Null, text);
        let col = |name: &str, ty: &str, nullable: bool| EngineColumn {
            name: name.into(),
            declared_type: Some(ty.into()),
            inferred_type: None,
            nullable,
        };
        Ok(match platform {
            Platform::Snowflake => EngineResult {
                columns: vec![
                    col("name", "TEXT", false),
                    col("type", "TEXT", false),
                    col("kind", "TEXT", false),
                    col("null?", "TEXT", false),
                    col("default", "TEXT", true),
                    col("primary key", "TEXT", false),
                    col("unique key", "TEXT", false),
                    col("comment", "TEXT", true),
                ],
                rows: t
                    .columns
                    .iter()
                    .map(|c| {
                        vec![
                            text(&c.name),
                            text(&c.native_type),
                            text("COLUMN"),
                            text(if c.nullable { "Y" } else { "N" }),
                            EngineValue::Null,
                            text("N"),
                            text("N"),
                            opt(&c.comment),
                        ]
                    })
                    .collect(),
            },
            Platform::Databricks => EngineResult {
                columns: vec![
                    col("col_name", "STRING", false),
                    col("data_type", "STRING", false),
                    col("comment", "STRING", true),
                ],
                rows: t
                    .columns
                    .iter()
                    .map(|c| {
                        vec![
                            text(&c.name),
                            text(&c.native_type.to_lowercase()),
                            opt(&c.comment),
                        ]
                    })
                    .collect(),
            },
        })
    }
}

/// SQLite's message without the (rewritten, internal) SQL text.
fn sqlite_message(e: &rusqlite::Error) -> String {
    match e {
        rusqlite::Error::SqliteFailure(_, Some(m)) => m.clone(),
        rusqlite::Error::SqlInputError { msg, .. } => msg.clone(),
        rusqlite::Error::SqliteFailure(code, None) => code.to_string(),
        other => other.to_string(),
    }
}

/// A compile-time SQLite error in the platform's words where there is a close match.
fn compile_message(platform: Platform, e: &rusqlite::Error) -> String {
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

fn is_write(statement: &Statement) -> bool {
    matches!(
        statement,
        Statement::Insert(_)
            | Statement::Update(_)
            | Statement::Delete(_)
            | Statement::Merge(_)
            | Statement::Truncate(_)
            | Statement::CreateTable(_)
            | Statement::CreateView(_)
            | Statement::AlterTable(_)
            | Statement::Drop { .. }
            | Statement::Copy { .. }
            | Statement::CreateSchema { .. }
            | Statement::CreateDatabase { .. }
            | Statement::Grant(_)
    )
}

/// `SHOW TABLES LIKE` matching: Snowflake `%`/`_` (case-insensitive); Databricks `*` and `|` alternatives.
fn pattern_matches(platform: Platform, pattern: &str, name: &str) -> bool {
    let name = name.to_lowercase();
    match platform {
        Platform::Snowflake => like(&pattern.to_lowercase(), &name),
        Platform::Databricks => pattern
            .split('|')
            .any(|alt| like(&alt.trim().to_lowercase().replace('*', "%"), &name)),
    }
}

/// SQL LIKE with `%` and `_`.
fn like(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    // Classic two-pointer wildcard match with backtracking to the last `%`.
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '_' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '%' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '%')
}

/// For `DESC[RIBE] [TABLE] [EXTENDED] name [TYPE = COLUMNS]`, the table name.
fn describe_target(dialect: &dyn Dialect, sql: &str) -> Option<Result<ObjectName, EngineError>> {
    let s = sql.trim().trim_end_matches(';').trim();
    let rest = strip_keyword(s, "DESCRIBE").or_else(|| strip_keyword(s, "DESC"))?;
    let mut rest = rest;
    for kw in ["EXTENDED", "FORMATTED", "TABLE", "EXTENDED", "FORMATTED"] {
        if let Some(r) = strip_keyword(rest, kw) {
            rest = r;
        }
    }
    for other in [
        "VIEW",
        "RESULT",
        "USER",
        "DATABASE",
        "SCHEMA",
        "FUNCTION",
        "WAREHOUSE",
        "QUERY",
        "HISTORY",
        "DETAIL",
        "CATALOG",
        "VOLUME",
    ] {
        if strip_keyword(rest, other).is_some() {
            return Some(Err(EngineError::Unsupported(format!(
                "DESCRIBE {other} is not supported by the sandbox (DESCRIBE TABLE only)"
            ))));
        }
    }
    let parsed = Parser::new(dialect)
        .try_with_sql(rest)
        .and_then(|mut p| {
            let name = p.parse_object_name(false)?;
            Ok((name, p.peek_token().token))
        })
        .map_err(|e| EngineError::Syntax(e.to_string()));
    Some(parsed.and_then(|(name, next)| match next {
        Token::EOF => Ok(name),
        Token::Word(w) if w.value.eq_ignore_ascii_case("TYPE") => Ok(name),
        other => Err(EngineError::Syntax(format!(
            "unexpected '{other}' after the table name in DESCRIBE"
        ))),
    }))
}

/// `text` without a leading case-insensitive keyword followed by whitespace.
fn strip_keyword<'a>(text: &'a str, keyword: &str) -> Option<&'a str> {
    let head = text.get(..keyword.len())?;
    let tail = &text[keyword.len()..];
    if head.eq_ignore_ascii_case(keyword) && tail.starts_with(char::is_whitespace) {
        Some(tail.trim_start())
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_matches_wildcards() {
        assert!(like("ord%", "orders"));
        assert!(like("%der_", "orders"));
        assert!(!like("cust%", "orders"));
        assert!(pattern_matches(
            Platform::Databricks,
            "cust*|ord*",
            "orders"
        ));
        assert!(pattern_matches(Platform::Snowflake, "ORD%", "ORDERS"));
    }

    #[test]
    fn describe_target_accepts_both_spellings() {
        let d = SnowflakeDialect {};
        let n = describe_target(&d, "desc table sales.public.orders;")
            .unwrap()
            .unwrap();
        assert_eq!(n.to_string(), "sales.public.orders");
        let n = describe_target(&d, "DESCRIBE TABLE ORDERS TYPE = COLUMNS")
            .unwrap()
            .unwrap();
        assert_eq!(n.to_string(), "ORDERS");
        assert!(describe_target(&d, "SELECT 1").is_none());
        let db = DatabricksDialect {};
        let n = describe_target(&db, "DESCRIBE TABLE EXTENDED main.sales.orders")
            .unwrap()
            .unwrap();
        assert_eq!(n.to_string(), "main.sales.orders");
    }

    #[test]
    fn row_filters_are_printed_for_sqlite() {
        let sql = row_filter_sql(
            Platform::Snowflake,
            "region ilike 'eu' AND amount::NUMBER > 1",
        )
        .unwrap();
        assert!(sql.contains("LIKE") && !sql.contains("ILIKE"), "{sql}");
        assert!(sql.contains("CAST("), "{sql}");
        assert!(row_filter_sql(Platform::Snowflake, "REGION = 'EU' garbage garbage").is_err());
    }
}
