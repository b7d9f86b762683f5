//! Metadata statements, always limited to what the role may read: Snowflake
//! `SHOW TABLES [LIKE ..] [IN ACCOUNT | DATABASE d | SCHEMA d.s]` and
//! `DESC[RIBE] TABLE t`, Databricks `SHOW TABLES [IN c.s] [LIKE ..]` and
//! `DESCRIBE [TABLE] t`, and the per-user information_schema views
//! (`<db>.INFORMATION_SCHEMA.TABLES/COLUMNS`, Databricks
//! `system.information_schema.*` and `<catalog>.information_schema.*`) built
//! at load. The invariant it protects: a table outside the role's grants never
//! shows up in any listing, and an unknown scope reads as not authorized.

use super::error::EngineError;
use super::policy::name_parts;
use super::schema::{Builder, ColumnDef, InfoKind, UserEntry, info_view, literal, quote};
use super::{
    DATABRICKS_DEFAULT_CATALOG, DATABRICKS_DEFAULT_SCHEMA, EngineColumn, EngineResult, EngineValue,
    Inner, Namespace, canon_ident,
};
use crate::result::Platform;
use crate::sandbox::fixture::{PreparedTable, ValueKind};
use rusqlite::types::Value as SqlValue;
use sqlparser::ast::{ObjectName, ShowStatementIn, ShowStatementInParentType};
use sqlparser::dialect::Dialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::Token;
use std::collections::HashMap;

pub(super) fn build_information_schema(
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
            ColumnDef::new(name, kind, native, nullable)
        };
        let t = ValueKind::Text;
        let i = ValueKind::Integer;
        let mut table_cols = vec![
            ColumnDef::new("user_idx", i, "INTEGER", false),
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
            ColumnDef::new("user_idx", i, "INTEGER", false),
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
        let list = |cols: &[ColumnDef]| {
            cols.iter()
                .skip(1)
                .map(|c| quote(&c.name))
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
                        .map(|ci| format!(" AND {} = {}", quote(&cols[1].name), literal(&cats[ci])))
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
pub(super) enum ShowScope {
    Account,
    Database(String),
    Schema(String, String),
}

impl Inner {
    pub(super) fn show_scope(
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

    pub(super) fn show_tables(
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

    pub(super) fn describe(
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
pub(super) fn describe_target(
    dialect: &dyn Dialect,
    sql: &str,
) -> Option<Result<ObjectName, EngineError>> {
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
    use sqlparser::dialect::{DatabricksDialect, SnowflakeDialect};

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
}
