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
//!
//! Layout: [`schema`] loads the fixture into SQLite (data tables, mask rows,
//! policy views, the catalog), [`policy`] rewrites a parsed query onto the
//! role's policy views, [`metadata`] answers SHOW / DESCRIBE and builds the
//! information_schema views, [`error`] holds [`EngineError`]. This module
//! owns the public API and the role bindings.

mod error;
mod metadata;
mod policy;
mod schema;

pub use error::EngineError;

use crate::result::Platform;
use crate::sandbox::fixture::{Fixture, PreparedTable};
use error::{compile_message, sqlite_message};
use metadata::describe_target;
use policy::is_write;
use rusqlite::Connection;
use rusqlite::types::ValueRef;
use schema::{Catalog, DeclMeta};
use sqlparser::ast::{Expr, ShowStatementFilter, ShowStatementFilterPosition, Statement, Value};
use sqlparser::dialect::{DatabricksDialect, Dialect, SnowflakeDialect};
use sqlparser::parser::Parser;
use std::collections::HashMap;
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

impl Engine {
    /// Load the fixture into a fresh in-memory database (validates it first).
    pub fn new(fixture: &Fixture) -> Result<Engine, EngineError> {
        let (conn, catalog) = schema::load(fixture)?;
        Ok(Engine {
            inner: Arc::new(Inner {
                conn: Mutex::new(conn),
                catalog,
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
}
