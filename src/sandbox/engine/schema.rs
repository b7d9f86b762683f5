//! The engine's SQLite schema, built once from the fixture: one data table and
//! one mask row per fixture table, one policy view per (user, granted table)
//! that applies the grant's row filter and masks, and the [`Catalog`] that
//! maps platform names to them. The invariant it protects: a user's policy
//! views are the only relations that hold that user's readable data, and a
//! masked column never reads anything but `'***'` (text) or NULL.

use super::error::{EngineError, sqlite_message};
use super::metadata::build_information_schema;
use super::policy::row_filter_sql;
use super::{AGENT_IDENTITY, EngineValue};
use crate::result::Platform;
use crate::sandbox::dialect;
use crate::sandbox::fixture::{Fixture, FixtureError, PreparedTable, ValueKind};
use rusqlite::Connection;
use rusqlite::types::Value as SqlValue;
use std::collections::{HashMap, HashSet};

/// What the engine knows about the loaded fixture (immutable after load).
pub(super) struct Catalog {
    pub(super) tables: Vec<PreparedTable>,
    /// (platform, canonical dotted name) → table index.
    pub(super) by_name: HashMap<(Platform, String), usize>,
    pub(super) users: Vec<UserEntry>,
    /// Native type and nullability of every stored column, indexed by the
    /// number in its SQLite declared type `<CLASS>(<n>)`.
    pub(super) decls: Vec<DeclMeta>,
    /// Databases (Snowflake) / catalogs (Databricks) per platform, in first-seen order.
    pub(super) catalogs: HashMap<Platform, Vec<String>>,
    pub(super) schemas: HashSet<(Platform, String, String)>,
    pub(super) created_on: String,
}

/// One fixture user (or the agent's own identity) and the policy views it may read.
pub(super) struct UserEntry {
    pub(super) id: String,
    /// table index → policy view name.
    pub(super) views: HashMap<usize, String>,
}

/// The platform-native type behind one stored column.
pub(super) struct DeclMeta {
    pub(super) native_type: String,
    pub(super) nullable: bool,
}

/// One column of a table the builder creates.
pub(super) struct ColumnDef {
    pub(super) name: String,
    /// The SQLite storage class the values take.
    pub(super) kind: ValueKind,
    /// The platform-native type reported for the column.
    pub(super) native_type: String,
    pub(super) nullable: bool,
}

impl ColumnDef {
    pub(super) fn new(
        name: impl Into<String>,
        kind: ValueKind,
        native_type: impl Into<String>,
        nullable: bool,
    ) -> Self {
        Self {
            name: name.into(),
            kind,
            native_type: native_type.into(),
            nullable,
        }
    }
}

/// `ident` as a double-quoted SQLite identifier.
pub(super) fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// `text` as a single-quoted SQLite string literal.
pub(super) fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Builds the SQLite schema: data tables, mask rows, policy views, information schema.
pub(super) struct Builder<'c> {
    pub(super) conn: &'c Connection,
    pub(super) decls: Vec<DeclMeta>,
}

impl Builder<'_> {
    fn decl(&mut self, kind: ValueKind, native: &str, nullable: bool) -> String {
        self.decls.push(DeclMeta {
            native_type: native.to_string(),
            nullable,
        });
        format!("{}({})", kind.sqlite_class(), self.decls.len() - 1)
    }

    pub(super) fn exec(&self, sql: &str, what: &str) -> Result<(), EngineError> {
        self.conn
            .execute_batch(sql)
            .map_err(|e| EngineError::Fixture(format!("{what}: {}", sqlite_message(&e))))
    }

    /// Create a table with declared native types and fill it in one transaction.
    pub(super) fn create_table(
        &mut self,
        name: &str,
        columns: &[ColumnDef],
        rows: impl Iterator<Item = Vec<SqlValue>>,
        what: &str,
    ) -> Result<(), EngineError> {
        let defs: Vec<String> = columns
            .iter()
            .map(|c| {
                format!(
                    "{} {}",
                    quote(&c.name),
                    self.decl(c.kind, &c.native_type, c.nullable)
                )
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

pub(super) fn to_sql(v: &EngineValue) -> SqlValue {
    match v {
        EngineValue::Null => SqlValue::Null,
        EngineValue::Integer(i) => SqlValue::Integer(*i),
        EngineValue::Real(f) => SqlValue::Real(*f),
        EngineValue::Text(s) => SqlValue::Text(s.clone()),
        EngineValue::Blob(b) => SqlValue::Blob(b.clone()),
    }
}

pub(super) fn data_table(ti: usize) -> String {
    format!("tb${ti}")
}
pub(super) fn mask_table(ti: usize) -> String {
    format!("mk${ti}")
}
pub(super) fn policy_view(ui: usize, ti: usize) -> String {
    format!("pv${ui}${ti}")
}
pub(super) fn info_view(
    platform: Platform,
    kind: InfoKind,
    ui: usize,
    catalog: Option<usize>,
) -> String {
    let c = catalog.map_or_else(|| "all".to_string(), |c| c.to_string());
    format!("is${}${}${ui}${c}", platform.as_str(), kind.as_str())
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum InfoKind {
    Tables,
    Columns,
}

impl InfoKind {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            InfoKind::Tables => "tables",
            InfoKind::Columns => "columns",
        }
    }
}

/// Load the fixture into a fresh in-memory, read-only database (validates it
/// first): the connection and the catalog that describes what it holds.
pub(super) fn load(fixture: &Fixture) -> Result<(Connection, Catalog), EngineError> {
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
        let cols: Vec<ColumnDef> = t
            .columns
            .iter()
            .map(|c| ColumnDef::new(&c.name, c.kind, &c.native_type, c.nullable))
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
        let mask_cols: Vec<ColumnDef> = t
            .columns
            .iter()
            .map(|c| {
                ColumnDef::new(
                    &c.name,
                    c.kind,
                    &c.native_type,
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
    Ok((
        conn,
        Catalog {
            tables: prepared.tables,
            by_name,
            users,
            decls,
            catalogs,
            schemas,
            created_on,
        },
    ))
}
