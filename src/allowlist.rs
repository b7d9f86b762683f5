//! Operator allow-lists: which Snowflake databases/schemas and Databricks
//! catalogs/schemas the tools may touch (`[guard.allow]`). Default: no
//! restriction.
//!
//! A statement is checked on its parse tree: every table it references
//! (joins, subqueries, CTE bodies, set operations) is placed in a namespace
//! (database/catalog and schema) the way the platform would place it (the
//! call's `database`/`schema` or the configured defaults for partial names;
//! Snowflake upper-cases unquoted names, Databricks names are
//! case-insensitive) and must fall inside an allowed entry. CTE names are
//! scoped as SQL scopes them: a CTE is visible in the later CTEs of its `WITH`
//! (and in itself when `RECURSIVE`) and in the query body, so a table that
//! merely shares a CTE's name elsewhere is still checked. What cannot be
//! placed (a partial name with no default, `IDENTIFIER(...)`, a SHOW of
//! anything but tables or columns) is refused while a list is active. Every
//! refusal names the allowed set.

use crate::config::Config;
use crate::guard::dialect_for;
use crate::result::{Platform, ResultSet};
use sqlparser::ast::{ObjectName, ObjectNamePart, Query, Statement, Visit, Visitor};
use sqlparser::parser::Parser;
use std::ops::ControlFlow;

/// Why the allow-list refused a call. Messages name the allowed set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllowError {
    #[error("{object} is outside what this server may touch on {platform}; allowed: {allowed}")]
    Outside {
        platform: Platform,
        object: String,
        allowed: String,
    },
    #[error(
        "{object} cannot be placed in a {what} (no default is set): qualify it fully; allowed on {platform}: {allowed}"
    )]
    Unplaceable {
        platform: Platform,
        object: String,
        what: &'static str,
        allowed: String,
    },
    #[error("{what} cannot be checked against the allow-list on {platform}; allowed: {allowed}")]
    Unchecked {
        platform: Platform,
        what: String,
        allowed: String,
    },
}

/// One allowed entry: a whole database/catalog, or one schema in it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    database: String,
    schema: Option<String>,
}

/// One platform's allow-list and default namespace.
#[derive(Debug, Clone, Default)]
struct PlatformList {
    /// `None`: no restriction.
    entries: Option<Vec<Entry>>,
    default_database: Option<String>,
    default_schema: Option<String>,
}

/// The allow-lists of both platforms.
#[derive(Debug, Clone, Default)]
pub struct AllowList {
    snowflake: PlatformList,
    databricks: PlatformList,
}

/// A table's namespace as the platform resolves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace {
    pub database: String,
    pub schema: String,
}

impl AllowList {
    /// The allow-lists of `cfg` (`[guard.allow]`), or an error naming the bad entry.
    pub fn from_config(cfg: &Config) -> Result<AllowList, String> {
        let allow = &cfg.guard.allow;
        let list = |platform, entries: Option<&[String]>, database, schema| {
            let canon = |name: Option<&String>| name.map(|n| canonical(platform, n));
            Ok::<_, String>(PlatformList {
                entries: parse_entries(platform, entries)?,
                default_database: canon(database),
                default_schema: canon(schema),
            })
        };
        let sf = cfg.snowflake.as_ref();
        let db = cfg.databricks.as_ref();
        Ok(AllowList {
            snowflake: list(
                Platform::Snowflake,
                allow.snowflake.as_deref(),
                sf.and_then(|s| s.default_database.as_ref()),
                sf.and_then(|s| s.default_schema.as_ref()),
            )?,
            databricks: list(
                Platform::Databricks,
                allow.databricks.as_deref(),
                db.and_then(|d| d.default_catalog.as_ref()),
                db.and_then(|d| d.default_schema.as_ref()),
            )?,
        })
    }

    /// A list that allows nothing on either platform.
    pub fn nothing() -> AllowList {
        let none = || PlatformList {
            entries: Some(Vec::new()),
            ..PlatformList::default()
        };
        AllowList {
            snowflake: none(),
            databricks: none(),
        }
    }

    /// A `list_tables` answer without the rows outside the list (Snowflake
    /// `SHOW TABLES`: `database_name`/`schema_name`; Databricks
    /// `information_schema.tables`: `table_catalog`/`table_schema`). A listing
    /// without those columns keeps no row while a list is active.
    pub fn filter_listing(&self, platform: Platform, mut rs: ResultSet) -> ResultSet {
        if !self.is_active(platform) {
            return rs;
        }
        let position = |names: &[&str]| {
            rs.columns
                .iter()
                .position(|c| names.iter().any(|n| c.name.eq_ignore_ascii_case(n)))
        };
        let (Some(db), Some(schema)) = (
            position(&["database_name", "table_catalog"]),
            position(&["schema_name", "table_schema"]),
        ) else {
            rs.rows.clear();
            rs.row_count = 0;
            return rs;
        };
        rs.rows.retain(|row| {
            match (
                row.get(db).and_then(|v| v.as_str()),
                row.get(schema).and_then(|v| v.as_str()),
            ) {
                (Some(d), Some(s)) => self.allows(platform, d, s),
                _ => false,
            }
        });
        rs.row_count = rs.rows.len();
        rs.total_row_count = None;
        rs
    }

    fn list(&self, platform: Platform) -> &PlatformList {
        match platform {
            Platform::Snowflake => &self.snowflake,
            Platform::Databricks => &self.databricks,
        }
    }

    /// A table named by a tool argument (`describe_table`), already validated.
    pub fn check_table(&self, platform: Platform, table: &str) -> Result<(), AllowError> {
        self.check_sql(platform, &format!("SELECT * FROM {table}"), None, None)
    }

    /// Whether `platform` has a list (otherwise everything is allowed).
    pub fn is_active(&self, platform: Platform) -> bool {
        self.list(platform).entries.is_some()
    }

    /// The allowed set as the operator would write it, for messages.
    pub fn describe(&self, platform: Platform) -> String {
        match &self.list(platform).entries {
            None => "everything".into(),
            Some(entries) if entries.is_empty() => "nothing".into(),
            Some(entries) => entries
                .iter()
                .map(|e| match &e.schema {
                    Some(s) => format!("{}.{s}", e.database),
                    None => format!("{}.*", e.database),
                })
                .collect::<Vec<_>>()
                .join(", "),
        }
    }

    /// Whether a table in `database`.`schema` (as the platform names them) may be touched.
    pub fn allows(&self, platform: Platform, database: &str, schema: &str) -> bool {
        let Some(entries) = &self.list(platform).entries else {
            return true;
        };
        let (database, schema) = (
            canonical_resolved(platform, database),
            canonical_resolved(platform, schema),
        );
        entries
            .iter()
            .any(|e| e.database == database && e.schema.as_ref().is_none_or(|s| *s == schema))
    }

    /// A call's `database`/`schema` (or catalog/schema) arguments: the database must
    /// hold something allowed, and a given schema must be allowed.
    pub fn check_namespace(
        &self,
        platform: Platform,
        database: Option<&str>,
        schema: Option<&str>,
    ) -> Result<(), AllowError> {
        let Some(entries) = &self.list(platform).entries else {
            return Ok(());
        };
        let outside = |object: String| AllowError::Outside {
            platform,
            object,
            allowed: self.describe(platform),
        };
        let database = database.map(|d| canonical(platform, d));
        let schema = schema.map(|s| canonical(platform, s));
        match (database, schema) {
            (Some(d), None) => {
                if entries.iter().any(|e| e.database == d) {
                    Ok(())
                } else {
                    Err(outside(format!("database {d}")))
                }
            }
            (Some(d), Some(s)) => {
                if self.allows_canonical(platform, &d, &s) {
                    Ok(())
                } else {
                    Err(outside(format!("schema {d}.{s}")))
                }
            }
            (None, Some(s)) => {
                let list = self.list(platform);
                match &list.default_database {
                    Some(d) if self.allows_canonical(platform, d, &s) => Ok(()),
                    Some(d) => Err(outside(format!("schema {d}.{s}"))),
                    None => Err(AllowError::Unplaceable {
                        platform,
                        object: format!("schema {s}"),
                        what: database_word(platform),
                        allowed: self.describe(platform),
                    }),
                }
            }
            (None, None) => Ok(()),
        }
    }

    fn allows_canonical(&self, platform: Platform, database: &str, schema: &str) -> bool {
        self.list(platform).entries.as_ref().is_none_or(|entries| {
            entries
                .iter()
                .any(|e| e.database == database && e.schema.as_deref().is_none_or(|s| s == schema))
        })
    }

    /// Every table `sql` references is inside the list; `database`/`schema` are
    /// the call's context (falling back to the configured defaults).
    pub fn check_sql(
        &self,
        platform: Platform,
        sql: &str,
        database: Option<&str>,
        schema: Option<&str>,
    ) -> Result<(), AllowError> {
        if !self.is_active(platform) {
            return Ok(());
        }
        self.check_namespace(platform, database, schema)?;
        let unchecked = |what: &str| AllowError::Unchecked {
            platform,
            what: what.to_string(),
            allowed: self.describe(platform),
        };
        // IDENTIFIER('name') names a table in a string the parser cannot see.
        if sql.to_ascii_uppercase().contains("IDENTIFIER") {
            return Err(unchecked("IDENTIFIER(...)"));
        }
        let statements = Parser::parse_sql(dialect_for(platform), sql)
            .map_err(|e| unchecked(&format!("a statement the SQL parser cannot read ({e})")))?;
        let list = self.list(platform);
        let context = Context {
            platform,
            database: database
                .map(|d| canonical(platform, d))
                .or_else(|| list.default_database.clone()),
            schema: schema
                .map(|s| canonical(platform, s))
                .or_else(|| list.default_schema.clone()),
        };
        for statement in &statements {
            match statement {
                Statement::Query(_) | Statement::Explain { .. } => {}
                Statement::ExplainTable { table_name, .. } => {
                    self.check_reference(&context, table_name)?;
                    continue;
                }
                Statement::ShowTables { show_options, .. }
                | Statement::ShowColumns { show_options, .. } => {
                    let Some(parent) = show_options
                        .show_in
                        .as_ref()
                        .and_then(|s| s.parent_name.as_ref())
                    else {
                        return Err(unchecked("SHOW without IN <database or schema>"));
                    };
                    self.check_show_scope(&context, parent)?;
                    continue;
                }
                _ => return Err(unchecked("this kind of statement")),
            }
            let mut walk = TableWalk {
                frames: Vec::new(),
                tables: Vec::new(),
            };
            let _ = statement.visit(&mut walk);
            for table in &walk.tables {
                self.check_reference(&context, table)?;
            }
        }
        Ok(())
    }

    fn check_reference(&self, context: &Context, name: &ObjectName) -> Result<(), AllowError> {
        let platform = context.platform;
        let parts = name_parts(platform, name);
        let object = parts.join(".");
        let placed = match parts.as_slice() {
            [_table] => context.database.clone().zip(context.schema.clone()),
            [schema, _table] => context.database.clone().map(|d| (d, schema.clone())),
            [database, schema, _table] => Some((database.clone(), schema.clone())),
            _ => None,
        };
        let Some((database, schema)) = placed else {
            return Err(AllowError::Unplaceable {
                platform,
                object: format!("table {object}"),
                what: if parts.len() == 1 {
                    "database and schema"
                } else {
                    database_word(platform)
                },
                allowed: self.describe(platform),
            });
        };
        if self.allows_canonical(platform, &database, &schema) {
            Ok(())
        } else {
            Err(AllowError::Outside {
                platform,
                object: format!("table {database}.{schema}.{}", parts[parts.len() - 1]),
                allowed: self.describe(platform),
            })
        }
    }

    fn check_show_scope(&self, context: &Context, parent: &ObjectName) -> Result<(), AllowError> {
        let platform = context.platform;
        let parts = name_parts(platform, parent);
        match parts.as_slice() {
            [database] => self.check_namespace(platform, Some(database), None),
            [database, schema] => {
                if self.allows_canonical(platform, database, schema) {
                    Ok(())
                } else {
                    Err(AllowError::Outside {
                        platform,
                        object: format!("schema {database}.{schema}"),
                        allowed: self.describe(platform),
                    })
                }
            }
            _ => Err(AllowError::Unchecked {
                platform,
                what: format!("SHOW IN {}", parts.join(".")),
                allowed: self.describe(platform),
            }),
        }
    }
}

fn database_word(platform: Platform) -> &'static str {
    match platform {
        Platform::Snowflake => "database",
        Platform::Databricks => "catalog",
    }
}

/// The call's namespace for partial names.
struct Context {
    platform: Platform,
    database: Option<String>,
    schema: Option<String>,
}

/// An identifier as written in configuration or a tool argument, resolved as
/// the platform resolves it: Snowflake unquoted → upper case, `"Quoted"` →
/// verbatim (`""` → `"`); Databricks (case-insensitive) → lower case,
/// backticks dropped (`` `a``b` `` → ``a`b``). See [`crate::sql_ident`].
fn canonical(platform: Platform, name: &str) -> String {
    let name = name.trim();
    let quoted = crate::sql_ident::unquote(platform, name).ok();
    match platform {
        Platform::Snowflake => match name.strip_prefix('"').and_then(|n| n.strip_suffix('"')) {
            Some(inner) => quoted.unwrap_or_else(|| inner.replace("\"\"", "\"")),
            None => name.to_ascii_uppercase(),
        },
        Platform::Databricks => quoted
            .unwrap_or_else(|| name.trim_matches('`').to_string())
            .to_lowercase(),
    }
}

/// A name the platform already resolved (e.g. a SHOW TABLES row): Snowflake
/// names are exact, Databricks names compare case-insensitively.
fn canonical_resolved(platform: Platform, name: &str) -> String {
    match platform {
        Platform::Snowflake => name.to_string(),
        Platform::Databricks => name.to_lowercase(),
    }
}

/// The parts of a parsed name, each resolved as the platform resolves it.
fn name_parts(platform: Platform, name: &ObjectName) -> Vec<String> {
    name.0
        .iter()
        .map(|part| match part {
            ObjectNamePart::Identifier(ident) => match (platform, ident.quote_style) {
                (Platform::Snowflake, Some('"')) => ident.value.clone(),
                (Platform::Snowflake, _) => ident.value.to_ascii_uppercase(),
                (Platform::Databricks, _) => ident.value.to_lowercase(),
            },
            other => other.to_string(),
        })
        .collect()
}

fn parse_entries(
    platform: Platform,
    entries: Option<&[String]>,
) -> Result<Option<Vec<Entry>>, String> {
    let Some(entries) = entries else {
        return Ok(None);
    };
    let key = match platform {
        Platform::Snowflake => "guard.allow.snowflake",
        Platform::Databricks => "guard.allow.databricks",
    };
    entries
        .iter()
        .map(|raw| {
            let parts: Vec<&str> = raw.split('.').map(str::trim).collect();
            let bad = || {
                format!(
                    "{key}: {raw:?} is not `{db}` or `{db}.schema` (or `{db}.*`)",
                    db = database_word(platform)
                )
            };
            if parts.iter().any(|p| p.is_empty()) {
                return Err(bad());
            }
            match parts.as_slice() {
                [database] | [database, "*"] => Ok(Entry {
                    database: canonical(platform, database),
                    schema: None,
                }),
                [database, schema] => Ok(Entry {
                    database: canonical(platform, database),
                    schema: Some(canonical(platform, schema)),
                }),
                _ => Err(bad()),
            }
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// Collects every table reference of a statement, leaving out references to
/// CTEs in scope.
struct TableWalk {
    /// One frame per query being walked: its CTEs and how many are visible.
    frames: Vec<Frame>,
    tables: Vec<ObjectName>,
}

struct Frame {
    query: *const Query,
    ctes: Vec<(String, *const Query)>,
    /// CTEs `..visible` are in scope.
    visible: usize,
    recursive: bool,
}

impl TableWalk {
    /// Is `name` a CTE in scope?
    fn is_cte(&self, name: &ObjectName) -> bool {
        let [ObjectNamePart::Identifier(ident)] = name.0.as_slice() else {
            return false;
        };
        let wanted = ident.value.to_lowercase();
        self.frames
            .iter()
            .any(|f| f.ctes[..f.visible].iter().any(|(n, _)| *n == wanted))
    }
}

impl Visitor for TableWalk {
    type Break = ();

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        let ptr = query as *const Query;
        // Entering the body of CTE `i` of the enclosing query: CTEs before it
        // are visible (and itself, in a RECURSIVE WITH).
        if let Some(frame) = self.frames.last_mut()
            && let Some(i) = frame.ctes.iter().position(|(_, q)| *q == ptr)
        {
            frame.visible = if frame.recursive { i + 1 } else { i };
        }
        let (ctes, recursive) = match &query.with {
            Some(with) => (
                with.cte_tables
                    .iter()
                    .map(|c| (c.alias.name.value.to_lowercase(), &*c.query as *const Query))
                    .collect(),
                with.recursive,
            ),
            None => (Vec::new(), false),
        };
        self.frames.push(Frame {
            query: ptr,
            ctes,
            visible: 0,
            recursive,
        });
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        let ptr = query as *const Query;
        if self.frames.last().is_some_and(|f| f.query == ptr) {
            self.frames.pop();
        }
        // Leaving the body of CTE `i`: it is visible from now on.
        if let Some(frame) = self.frames.last_mut()
            && let Some(i) = frame.ctes.iter().position(|(_, q)| *q == ptr)
        {
            frame.visible = i + 1;
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_relation(&mut self, relation: &ObjectName) -> ControlFlow<()> {
        if !self.is_cte(relation) {
            self.tables.push(relation.clone());
        }
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SF: Platform = Platform::Snowflake;
    const DB: Platform = Platform::Databricks;

    fn list(platform: Platform, entries: &[&str], default: Option<(&str, &str)>) -> AllowList {
        let entries: Vec<String> = entries.iter().map(|e| e.to_string()).collect();
        let one = PlatformList {
            entries: parse_entries(platform, Some(&entries)).unwrap(),
            default_database: default.map(|(d, _)| canonical(platform, d)),
            default_schema: default.map(|(_, s)| canonical(platform, s)),
        };
        let mut all = AllowList::default();
        match platform {
            Platform::Snowflake => all.snowflake = one,
            Platform::Databricks => all.databricks = one,
        }
        all
    }

    fn refused(list: &AllowList, platform: Platform, sql: &str) -> AllowError {
        list.check_sql(platform, sql, None, None)
            .expect_err(&format!("{sql} must be refused"))
    }

    fn allowed(list: &AllowList, platform: Platform, sql: &str) {
        if let Err(e) = list.check_sql(platform, sql, None, None) {
            panic!("{sql} must be allowed: {e}");
        }
    }

    #[test]
    fn without_a_list_everything_is_allowed() {
        let open = AllowList::default();
        assert!(!open.is_active(SF));
        allowed(&open, SF, "SELECT * FROM HR.PUBLIC.EMPLOYEES");
        allowed(&open, SF, "SELECT * FROM IDENTIFIER('HR.PUBLIC.X')");
        assert!(open.allows(DB, "anything", "at_all"));
    }

    #[test]
    fn quoted_entries_undo_doubled_quotes_as_the_platform_does() {
        // Databricks "Identifiers": `a``b` names a`b; Snowflake: "a""b" names a"b.
        let l = list(DB, &["`odd``cat`.s"], None);
        allowed(&l, DB, "SELECT * FROM `odd``cat`.s.t");
        allowed(&l, DB, "SELECT * FROM `ODD``CAT`.s.t");
        refused(&l, DB, "SELECT * FROM `odd`.s.t");
        let l = list(SF, &["\"odd\"\"db\".S"], None);
        allowed(&l, SF, "SELECT * FROM \"odd\"\"db\".S.T");
        refused(&l, SF, "SELECT * FROM ODD.S.T");
    }

    #[test]
    fn every_table_reference_is_placed_and_checked() {
        let l = list(SF, &["SALES.PUBLIC"], Some(("SALES", "PUBLIC")));
        allowed(&l, SF, "SELECT * FROM ORDERS");
        allowed(
            &l,
            SF,
            "SELECT * FROM sales.public.orders o JOIN PUBLIC.ITEMS i ON o.id = i.id",
        );
        for sql in [
            "SELECT * FROM HR.PUBLIC.EMPLOYEES",
            "SELECT * FROM ORDERS o JOIN HR.PUBLIC.EMPLOYEES e ON o.id = e.id",
            "SELECT * FROM ORDERS WHERE id IN (SELECT id FROM HR.PUBLIC.EMPLOYEES)",
            "SELECT (SELECT MAX(salary) FROM HR.PUBLIC.EMPLOYEES) AS m FROM ORDERS",
            "SELECT id FROM ORDERS UNION ALL SELECT id FROM HR.PUBLIC.EMPLOYEES",
            "SELECT * FROM SALES.STAGING.RAW",
            "SELECT * FROM \"sales\".PUBLIC.ORDERS",
            "WITH h AS (SELECT * FROM HR.PUBLIC.EMPLOYEES) SELECT * FROM h",
        ] {
            let e = refused(&l, SF, sql);
            assert!(
                matches!(&e, AllowError::Outside { allowed, .. } if allowed == "SALES.PUBLIC"),
                "{sql}: {e}"
            );
        }
        let e = refused(&l, SF, "SELECT * FROM HR.PUBLIC.EMPLOYEES");
        assert!(e.to_string().contains("HR.PUBLIC.EMPLOYEES"), "{e}");
    }

    #[test]
    fn cte_names_are_scoped_as_sql_scopes_them() {
        // The default namespace is outside the list, so any unqualified name
        // that is not a CTE in scope is refused.
        let l = list(SF, &["SALES.PUBLIC"], Some(("HR", "PUBLIC")));
        allowed(
            &l,
            SF,
            "WITH o AS (SELECT * FROM SALES.PUBLIC.ORDERS), t AS (SELECT * FROM o) SELECT * FROM t JOIN o USING (id)",
        );
        allowed(
            &l,
            SF,
            "WITH RECURSIVE r AS (SELECT 1 AS n UNION ALL SELECT n + 1 FROM r WHERE n < 3) SELECT * FROM r",
        );
        for sql in [
            // `employees` outside the subquery's WITH is the real table.
            "SELECT * FROM (WITH employees AS (SELECT 1 AS x) SELECT * FROM employees) q, employees",
            // A CTE body cannot see a later CTE: `b` is a table there.
            "WITH a AS (SELECT * FROM b), b AS (SELECT 1 AS x) SELECT * FROM a",
            // Not recursive: `r` inside its own body is a table.
            "WITH r AS (SELECT * FROM r) SELECT * FROM r",
        ] {
            let e = refused(&l, SF, sql);
            assert!(e.to_string().contains("HR.PUBLIC"), "{sql}: {e}");
        }
    }

    #[test]
    fn what_cannot_be_placed_is_refused() {
        let l = list(SF, &["SALES"], None);
        assert!(matches!(
            refused(&l, SF, "SELECT * FROM ORDERS"),
            AllowError::Unplaceable { .. }
        ));
        assert!(matches!(
            refused(&l, SF, "SELECT * FROM IDENTIFIER('SALES.PUBLIC.ORDERS')"),
            AllowError::Unchecked { .. }
        ));
        assert!(matches!(
            refused(&l, SF, "SHOW TABLES"),
            AllowError::Unchecked { .. }
        ));
        allowed(&l, SF, "SHOW TABLES IN SCHEMA SALES.PUBLIC");
        allowed(&l, SF, "SELECT * FROM SALES.ANY_SCHEMA.ORDERS");
        assert!(matches!(
            refused(&l, SF, "SHOW TABLES IN DATABASE HR"),
            AllowError::Outside { .. }
        ));
        assert!(matches!(
            refused(&l, SF, "DESCRIBE TABLE HR.PUBLIC.EMPLOYEES"),
            AllowError::Outside { .. }
        ));
        // The call's context is placed too.
        assert!(l.check_sql(SF, "SELECT 1", Some("hr"), None).is_err());
        assert!(
            l.check_sql(SF, "SELECT * FROM PUBLIC.ORDERS", Some("sales"), None)
                .is_ok()
        );
    }

    #[test]
    fn databricks_names_compare_case_insensitively() {
        let l = list(DB, &["main.sales"], Some(("main", "sales")));
        allowed(&l, DB, "SELECT * FROM MAIN.Sales.orders");
        allowed(&l, DB, "SELECT * FROM `main`.`sales`.orders");
        allowed(&l, DB, "SELECT * FROM orders");
        let e = refused(&l, DB, "SELECT * FROM main.hr.employees");
        assert!(e.to_string().contains("main.sales"), "{e}");
        assert!(l.allows(DB, "Main", "SALES"));
        assert!(!l.allows(DB, "main", "hr"));
        assert!(l.check_namespace(DB, Some("main"), Some("hr")).is_err());
        assert!(l.check_namespace(DB, Some("MAIN"), Some("sales")).is_ok());
    }

    #[test]
    fn entries_are_validated() {
        assert!(parse_entries(SF, Some(&["A.B.C".to_string()])).is_err());
        assert!(parse_entries(SF, Some(&["A.".to_string()])).is_err());
        let e = parse_entries(DB, Some(&["main.*".to_string()]))
            .unwrap()
            .unwrap();
        assert_eq!(
            e,
            [Entry {
                database: "main".into(),
                schema: None
            }]
        );
        assert_eq!(AllowList::nothing().describe(SF), "nothing");
    }

    #[test]
    fn listings_keep_only_allowed_rows() {
        use crate::result::{Column, ColumnType};
        let l = list(SF, &["SALES.PUBLIC"], None);
        let column = |name: &str| Column {
            name: name.into(),
            column_type: ColumnType::String,
            native_type: "TEXT".into(),
            nullable: true,
        };
        let mut rs = ResultSet::new(
            SF,
            "s1",
            vec![
                column("name"),
                column("database_name"),
                column("schema_name"),
            ],
        );
        rs.rows = vec![
            vec!["ORDERS".into(), "SALES".into(), "PUBLIC".into()],
            vec!["EMPLOYEES".into(), "HR".into(), "PUBLIC".into()],
        ];
        rs.row_count = 2;
        let kept = l.filter_listing(SF, rs);
        assert_eq!(kept.row_count, 1);
        assert_eq!(kept.rows[0][0], "ORDERS");
    }
}
