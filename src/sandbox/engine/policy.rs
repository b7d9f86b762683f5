//! Policy enforcement on the parsed statement: every table reference of a
//! query is resolved (in the platform's identifier rules, missing parts from
//! the [`Namespace`]) to the role's policy view, CTE names are mangled so they
//! can never reach an internal SQLite object, context and session functions
//! become constants, row filters are printed for SQLite, and writes are
//! refused with the platform's "insufficient privileges" wording. The
//! invariant it protects: a table that is missing and one that is not granted
//! are the same [`EngineError::NotAuthorized`], and nothing but a granted
//! policy view (or the user's own information_schema view) is ever read.

use super::error::EngineError;
use super::schema::{InfoKind, info_view};
use super::{
    DATABRICKS_DEFAULT_CATALOG, DATABRICKS_DEFAULT_SCHEMA, EngineResult, Inner, Namespace, Session,
    canon_ident, dialect,
};
use crate::result::Platform;
use crate::sandbox::dialect::{self as translation, DialectError, Env};
use sqlparser::ast::{
    CastKind, DataType, Expr, Ident, ObjectName, ObjectNamePart, Query, SelectItem, SetExpr,
    Statement, TableFactor, Value, VisitMut, VisitorMut,
};
use sqlparser::parser::Parser;
use sqlparser::tokenizer::Token;
use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;

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
pub(super) fn name_parts(name: &ObjectName) -> Result<Vec<(String, bool)>, EngineError> {
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

/// The row filter as SQLite SQL (parsed in the platform dialect, then printed).
pub(super) fn row_filter_sql(platform: Platform, filter: &str) -> Result<String, String> {
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

/// A statement that would change data or schema (refused under a vended role).
pub(super) fn is_write(statement: &Statement) -> bool {
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

impl Inner {
    pub(super) fn write_refused(&self, platform: Platform, statement: &Statement) -> EngineError {
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
    pub(super) fn full_name(
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

    pub(super) fn query(
        &self,
        platform: Platform,
        user: usize,
        role: &str,
        query: &mut Query,
        ns: &Namespace,
        session: &Session,
    ) -> Result<EngineResult, EngineError> {
        let env = self.type_env(platform, user, query, ns);
        let translated = translation::translate(platform, query, env).map_err(|e| match e {
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
                if let Some(t) = translation::types::parse_declared(platform, &c.native_type) {
                    env.add(&qualifier, &c.name, t);
                }
            }
        }
        env
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
