//! Dialect translation for the sandbox engine: a Snowflake or Databricks
//! query (sqlparser AST) becomes SQLite SQL with the platform's semantics,
//! and the platform types of the answer's computed columns are inferred.
//!
//! [`translate`] runs before table references are resolved to policy views,
//! so every value a function sees has already been filtered and masked.
//! Structural rewrites (`QUALIFY`, `TOP n`, `FETCH`, `GROUP BY ALL`,
//! Snowflake `FLATTEN`, Databricks `explode`/`LATERAL VIEW`) live here;
//! the per-platform function tables in [`snowflake`] and [`databricks`];
//! the SQLite implementations they call in [`functions`]; result types in
//! [`types`].
//!
//! Layout: [`translate`] holds the translating visitor, [`expr`] the scalar
//! rewrites both platforms share, [`ast`] the AST helpers. This module owns
//! the entry point, the column environment ([`Env`]), the pre-pass that
//! expands wildcards and lateral aliases, and output type inference.

mod ast;
pub(crate) mod databricks;
mod expr;
pub(crate) mod functions;
pub(crate) mod snowflake;
mod translate;
pub(crate) mod types;

use crate::result::Platform;
pub(crate) use ast::*;
pub(crate) use expr::*;
use sqlparser::ast::{
    Expr, Ident, ObjectName, ObjectNamePart, Query, Select, SelectItem, SetExpr, TableFactor,
    VisitMut, VisitorMut,
};
use std::collections::HashSet;
use std::ops::ControlFlow;
use translate::Translator;
pub(crate) use types::Ty;

/// Why a query cannot be translated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DialectError {
    #[error("{0} is not supported by the sandbox")]
    Unsupported(String),
    #[error("{0}")]
    Invalid(String),
}

/// One column the query can see, under one qualifier (names lower-cased).
#[derive(Debug, Clone)]
struct EnvColumn {
    qualifier: String,
    name: String,
    ty: Ty,
}

/// The columns the query can see, lower-cased names.
#[derive(Debug, Clone, Default)]
pub(crate) struct Env {
    columns: Vec<EnvColumn>,
    qualifiers: HashSet<String>,
    /// Column names as declared, per lower-cased qualifier, in table order.
    ordered: Vec<(String, String)>,
}

impl Env {
    /// Declare a column of a table reachable as `qualifier`.
    pub(crate) fn add(&mut self, qualifier: &str, column: &str, ty: Ty) {
        let q = qualifier.to_lowercase();
        self.qualifiers.insert(q.clone());
        if !self
            .ordered
            .iter()
            .any(|(oq, oc)| *oq == q && oc.eq_ignore_ascii_case(column))
        {
            self.ordered.push((q.clone(), column.to_string()));
        }
        self.columns.push(EnvColumn {
            qualifier: q,
            name: column.to_lowercase(),
            ty,
        });
    }

    /// The declared column names of `qualifier`, in order.
    fn columns_of(&self, qualifier: &str) -> Vec<String> {
        let q = qualifier.to_lowercase();
        self.ordered
            .iter()
            .filter(|(oq, _)| *oq == q)
            .map(|(_, c)| c.clone())
            .collect()
    }

    fn is_qualifier(&self, name: &str) -> bool {
        self.qualifiers.contains(&name.to_lowercase())
    }

    fn lookup(&self, qualifier: Option<&str>, column: &str) -> Option<Ty> {
        let c = column.to_lowercase();
        let q = qualifier.map(str::to_lowercase);
        self.columns
            .iter()
            .rev()
            .find(|col| col.name == c && q.as_ref().is_none_or(|q| *q == col.qualifier))
            .map(|col| col.ty.clone())
    }
}

/// The translated query's metadata.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Translated {
    /// Platform type per output column (by position), where known.
    pub types: Vec<Option<String>>,
    /// Trailing helper columns the engine must drop from the answer.
    pub hidden: usize,
}

/// Translate `query` in place; `env` knows the referenced tables' column types.
pub(crate) fn translate(
    platform: Platform,
    query: &mut Query,
    mut env: Env,
) -> Result<Translated, DialectError> {
    collect_env(platform, query, &mut env);
    let mut pre = Prepass { env: &env };
    let _ = query.visit(&mut pre);
    let types = output_types(platform, query, &env);
    let mut t = Translator {
        platform,
        env,
        pending: Vec::new(),
        counter: 0,
        top_hidden: 0,
        depth: 0,
    };
    if let ControlFlow::Break(e) = query.visit(&mut t) {
        return Err(e);
    }
    Ok(Translated {
        types,
        hidden: t.top_hidden,
    })
}

/// Rewrites every query level needs before types are inferred: `* EXCLUDE/EXCEPT`
/// expansion and lateral column aliases.
struct Prepass<'e> {
    env: &'e Env,
}

impl VisitorMut for Prepass<'_> {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        if let SetExpr::Select(select) = query.body.as_mut() {
            expand_wildcards(select, self.env);
            lateral_aliases(select, self.env);
        }
        ControlFlow::Continue(())
    }
}

/// Add the output columns of CTEs and derived tables, and FLATTEN/explode aliases, to `env`.
fn collect_env(platform: Platform, query: &Query, env: &mut Env) {
    if let Some(with) = &query.with {
        for cte in &with.cte_tables {
            collect_env(platform, &cte.query, env);
            let name = cte.alias.name.value.clone();
            for (col, ty) in projection_columns(platform, &cte.query, env) {
                if let Some(ty) = ty {
                    env.add(&name, &col, ty);
                } else {
                    env.qualifiers.insert(name.to_lowercase());
                }
            }
        }
    }
    collect_set_expr(platform, &query.body, env);
}

fn collect_set_expr(platform: Platform, body: &SetExpr, env: &mut Env) {
    match body {
        SetExpr::Select(select) => {
            for twj in &select.from {
                collect_factor(platform, &twj.relation, env);
                for j in &twj.joins {
                    collect_factor(platform, &j.relation, env);
                }
            }
            for lv in &select.lateral_views {
                let alias = lv
                    .lateral_view_name
                    .0
                    .last()
                    .map(|p| p.to_string())
                    .unwrap_or_default();
                let source = match &lv.lateral_view {
                    Expr::Function(f) => positional(f).into_iter().next(),
                    _ => None,
                };
                let elem = element_type(&source.and_then(|s| infer(platform, &s, env)));
                for (i, col) in lv.lateral_col_alias.iter().enumerate() {
                    let ty = if lv.lateral_col_alias.len() == 2 && i == 0 {
                        Ty::Int
                    } else {
                        elem.clone()
                    };
                    env.add(&alias, &col.value, ty);
                }
            }
        }
        SetExpr::Query(q) => collect_env(platform, q, env),
        SetExpr::SetOperation { left, right, .. } => {
            collect_set_expr(platform, left, env);
            collect_set_expr(platform, right, env);
        }
        _ => {}
    }
}

fn collect_factor(platform: Platform, factor: &TableFactor, env: &mut Env) {
    match factor {
        TableFactor::Derived {
            subquery,
            alias: Some(alias),
            ..
        } => {
            collect_env(platform, subquery, env);
            for (col, ty) in projection_columns(platform, subquery, env) {
                match ty {
                    Some(ty) => env.add(&alias.name.value, &col, ty),
                    None => {
                        env.qualifiers.insert(alias.name.value.to_lowercase());
                    }
                }
            }
        }
        TableFactor::Derived { subquery, .. } => collect_env(platform, subquery, env),
        TableFactor::NestedJoin {
            table_with_joins, ..
        } => {
            collect_factor(platform, &table_with_joins.relation, env);
            for j in &table_with_joins.joins {
                collect_factor(platform, &j.relation, env);
            }
        }
        TableFactor::Function { name, alias, .. } if is_flatten(name) => {
            let a = alias
                .as_ref()
                .map_or_else(|| "flatten".to_string(), |a| a.name.value.clone());
            env.add(&a, "value", Ty::Variant);
            env.add(&a, "index", Ty::Fixed(38, 0));
            env.add(&a, "key", Ty::Text);
            env.add(&a, "seq", Ty::Fixed(38, 0));
            env.add(&a, "path", Ty::Text);
            env.add(&a, "this", Ty::Variant);
        }
        TableFactor::TableFunction { alias, .. } => {
            let a = alias
                .as_ref()
                .map_or_else(|| "flatten".to_string(), |a| a.name.value.clone());
            env.add(&a, "value", Ty::Variant);
            env.add(&a, "index", Ty::Fixed(38, 0));
            env.add(&a, "key", Ty::Text);
        }
        _ => {}
    }
}

fn is_flatten(name: &ObjectName) -> bool {
    name.to_string().eq_ignore_ascii_case("flatten")
}

/// The output columns of a query: (name, type).
fn projection_columns(platform: Platform, query: &Query, env: &Env) -> Vec<(String, Option<Ty>)> {
    let select = match first_select(&query.body) {
        Some(s) => s,
        None => return Vec::new(),
    };
    select
        .projection
        .iter()
        .filter_map(|item| match item {
            SelectItem::UnnamedExpr(e) => {
                let name = match e {
                    Expr::Identifier(id) => id.value.clone(),
                    Expr::CompoundIdentifier(parts) => {
                        parts.last().map(|p| p.value.clone()).unwrap_or_default()
                    }
                    other => other.to_string(),
                };
                Some((name, infer(platform, e, env)))
            }
            SelectItem::ExprWithAlias { expr, alias } => {
                Some((alias.value.clone(), infer(platform, expr, env)))
            }
            _ => None,
        })
        .collect()
}

fn first_select(body: &SetExpr) -> Option<&Select> {
    match body {
        SetExpr::Select(s) => Some(s),
        SetExpr::Query(q) => first_select(&q.body),
        SetExpr::SetOperation { left, .. } => first_select(left),
        _ => None,
    }
}

/// Platform types of the outermost projection (empty when it has a wildcard).
fn output_types(platform: Platform, query: &Query, env: &Env) -> Vec<Option<String>> {
    let Some(select) = first_select(&query.body) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in &select.projection {
        match item {
            SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
                if is_generator(e) {
                    out.push(
                        infer_generator(platform, e, env).map(|t| types::render(platform, &t)),
                    );
                } else {
                    out.push(infer(platform, e, env).map(|t| types::render(platform, &t)));
                }
            }
            _ => return Vec::new(),
        }
    }
    out
}

/// The inferred platform type of an expression, where the sandbox knows it.
pub(crate) fn infer(platform: Platform, expr: &Expr, env: &Env) -> Option<Ty> {
    types::infer(platform, expr, env)
}

fn element_type(t: &Option<Ty>) -> Ty {
    match t {
        Some(Ty::Array(Some(e))) => (**e).clone(),
        Some(Ty::Map(_, v)) => (**v).clone(),
        _ => Ty::Variant,
    }
}

fn is_generator(e: &Expr) -> bool {
    matches!(e, Expr::Function(f) if matches!(fname(f).as_str(), "explode" | "explode_outer" | "posexplode" | "inline"))
}

fn infer_generator(platform: Platform, e: &Expr, env: &Env) -> Option<Ty> {
    let Expr::Function(f) = e else { return None };
    let arg = positional(f).into_iter().next()?;
    Some(element_type(&infer(platform, &arg, env)))
}

/// The names FROM items are reachable as, in order.
fn from_qualifiers(select: &Select) -> Vec<String> {
    fn one(f: &TableFactor, out: &mut Vec<String>) {
        match f {
            TableFactor::Table { name, alias, .. } => out.push(match alias {
                Some(a) => a.name.value.clone(),
                None => name
                    .0
                    .last()
                    .map(|p| match p {
                        ObjectNamePart::Identifier(id) => id.value.clone(),
                        other => other.to_string(),
                    })
                    .unwrap_or_default(),
            }),
            TableFactor::Derived { alias: Some(a), .. } => out.push(a.name.value.clone()),
            TableFactor::NestedJoin {
                table_with_joins, ..
            } => {
                one(&table_with_joins.relation, out);
                for j in &table_with_joins.joins {
                    one(&j.relation, out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    for twj in &select.from {
        one(&twj.relation, &mut out);
        for j in &twj.joins {
            one(&j.relation, &mut out);
        }
    }
    out
}

/// Snowflake `* EXCLUDE (..)` / Databricks `* EXCEPT (..)` (also `t.* EXCLUDE ..`):
/// expanded to the remaining columns, which SQLite can run.
fn expand_wildcards(select: &mut Select, env: &Env) {
    let mut out = Vec::new();
    let from = from_qualifiers(select);
    for item in std::mem::take(&mut select.projection) {
        let (quals, opts) = match &item {
            SelectItem::Wildcard(o) => (None, o),
            SelectItem::QualifiedWildcard(
                sqlparser::ast::SelectItemQualifiedWildcardKind::ObjectName(n),
                o,
            ) => (
                n.0.last()
                    .map(|p| p.to_string().trim_matches('"').to_string()),
                o,
            ),
            _ => {
                out.push(item);
                continue;
            }
        };
        let mut excluded: Vec<String> = Vec::new();
        if let Some(ex) = &opts.opt_exclude {
            let names = match ex {
                sqlparser::ast::ExcludeSelectItem::Single(n) => vec![n.clone()],
                sqlparser::ast::ExcludeSelectItem::Multiple(v) => v.clone(),
            };
            excluded.extend(names.iter().filter_map(|n| {
                n.0.last()
                    .map(|p| p.to_string().trim_matches('"').to_lowercase())
            }));
        }
        if let Some(ex) = &opts.opt_except {
            excluded.push(ex.first_element.value.to_lowercase());
            excluded.extend(
                ex.additional_elements
                    .iter()
                    .map(|i| i.value.to_lowercase()),
            );
        }
        if excluded.is_empty() {
            out.push(item);
            continue;
        }
        let quals = match quals {
            Some(q) => vec![q],
            None => from.clone(),
        };
        let mut expanded = Vec::new();
        let mut complete = !quals.is_empty();
        for q in &quals {
            let cols = env.columns_of(q);
            if cols.is_empty() {
                complete = false;
                break;
            }
            for c in cols {
                if !excluded.contains(&c.to_lowercase()) {
                    expanded.push(SelectItem::UnnamedExpr(Expr::CompoundIdentifier(vec![
                        Ident::with_quote('"', q.clone()),
                        Ident::with_quote('"', c),
                    ])));
                }
            }
        }
        if complete {
            out.extend(expanded);
        } else {
            out.push(item);
        }
    }
    select.projection = out;
}

/// Lateral column aliases (`SELECT a + 1 AS x, x * 2 AS y`, both platforms allow
/// them): a later item naming an earlier alias that is no column gets its expression.
fn lateral_aliases(select: &mut Select, env: &Env) {
    let mut seen: Vec<(String, Expr)> = Vec::new();
    for item in &mut select.projection {
        let (expr, alias) = match item {
            SelectItem::ExprWithAlias { expr, alias } => (expr, Some(alias.value.to_lowercase())),
            SelectItem::UnnamedExpr(expr) => (expr, None),
            _ => continue,
        };
        if !seen.is_empty() {
            let _ = sqlparser::ast::visit_expressions_mut(expr, |e| {
                if let Expr::Identifier(id) = e
                    && env.lookup(None, &id.value).is_none()
                    && let Some((_, x)) = seen.iter().find(|(a, _)| *a == id.value.to_lowercase())
                {
                    *e = nested(x.clone());
                }
                ControlFlow::<()>::Continue(())
            });
        }
        if let Some(a) = alias {
            seen.push((a, expr.clone()));
        }
    }
}
