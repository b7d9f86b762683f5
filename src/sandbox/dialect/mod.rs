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

pub(crate) mod databricks;
pub(crate) mod functions;
pub(crate) mod snowflake;
pub(crate) mod types;

use crate::result::Platform;
use sqlparser::ast::{
    BinaryOperator, CastKind, DataType, DuplicateTreatment, Expr, Function, FunctionArg,
    FunctionArgExpr, FunctionArgumentClause, FunctionArgumentList, FunctionArguments, GroupByExpr,
    Ident, JsonPathElem, LimitClause, ObjectName, ObjectNamePart, OrderByExpr, Query, Select,
    SelectItem, SetExpr, TableAlias, TableFactor, TableFunctionArgs, TableWithJoins, TopQuantity,
    Value, VisitMut, VisitorMut,
};
use std::collections::HashSet;
use std::ops::ControlFlow;
pub(crate) use types::Ty;

/// Why a query cannot be translated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DialectError {
    #[error("{0} is not supported by the sandbox")]
    Unsupported(String),
    #[error("{0}")]
    Invalid(String),
}

/// The columns the query can see: (qualifier, column, type), lower-cased names.
#[derive(Debug, Clone, Default)]
pub(crate) struct Env {
    columns: Vec<(String, String, Ty)>,
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
        self.columns.push((q, column.to_lowercase(), ty));
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
            .find(|(tq, tc, _)| *tc == c && q.as_ref().is_none_or(|q| q == tq))
            .map(|(_, _, t)| t.clone())
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

// ---------------------------------------------------------------------------
// AST helpers shared by the dialect tables
// ---------------------------------------------------------------------------

/// A function's lower-cased (last) name.
pub(crate) fn fname(f: &Function) -> String {
    f.name
        .0
        .last()
        .map(|p| match p {
            ObjectNamePart::Identifier(id) => id.value.to_lowercase(),
            other => other.to_string().to_lowercase(),
        })
        .unwrap_or_default()
}

/// Positional argument expressions (named arguments by position too).
pub(crate) fn positional(f: &Function) -> Vec<Expr> {
    match &f.args {
        FunctionArguments::List(list) => list
            .args
            .iter()
            .filter_map(|a| match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e))
                | FunctionArg::Named {
                    arg: FunctionArgExpr::Expr(e),
                    ..
                }
                | FunctionArg::ExprNamed {
                    arg: FunctionArgExpr::Expr(e),
                    ..
                } => Some(e.clone()),
                FunctionArg::Unnamed(FunctionArgExpr::Wildcard) => Some(Expr::Wildcard(
                    sqlparser::ast::helpers::attached_token::AttachedToken::empty(),
                )),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// A named argument (`input => x`).
pub(crate) fn named_arg(args: &[FunctionArg], name: &str) -> Option<Expr> {
    args.iter().find_map(|a| match a {
        FunctionArg::Named {
            name: n,
            arg: FunctionArgExpr::Expr(e),
            ..
        } if n.value.eq_ignore_ascii_case(name) => Some(e.clone()),
        _ => None,
    })
}

pub(crate) fn call(name: &str, args: Vec<Expr>) -> Expr {
    Expr::Function(call_fn(name, args))
}

pub(crate) fn call_fn(name: &str, args: Vec<Expr>) -> Function {
    Function {
        name: ObjectName::from(vec![Ident::new(name)]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args: args
                .into_iter()
                .map(|e| FunctionArg::Unnamed(FunctionArgExpr::Expr(e)))
                .collect(),
            clauses: vec![],
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: vec![],
    }
}

/// Rename an aggregate/window call in place, keeping DISTINCT, ORDER BY, FILTER and OVER.
pub(crate) fn renamed(f: &Function, name: &str, args: Vec<Expr>) -> Expr {
    let mut g = f.clone();
    g.name = ObjectName::from(vec![Ident::new(name)]);
    let (dup, mut clauses) = match &f.args {
        FunctionArguments::List(l) => (l.duplicate_treatment, l.clauses.clone()),
        _ => (None, vec![]),
    };
    if !f.within_group.is_empty() {
        clauses.retain(|c| !matches!(c, FunctionArgumentClause::OrderBy(_)));
        clauses.push(FunctionArgumentClause::OrderBy(f.within_group.clone()));
        g.within_group = vec![];
    }
    g.args = FunctionArguments::List(FunctionArgumentList {
        duplicate_treatment: dup,
        args: args
            .into_iter()
            .map(|e| FunctionArg::Unnamed(FunctionArgExpr::Expr(e)))
            .collect(),
        clauses,
    });
    Expr::Function(g)
}

pub(crate) fn is_distinct(f: &Function) -> bool {
    matches!(&f.args, FunctionArguments::List(l) if l.duplicate_treatment == Some(DuplicateTreatment::Distinct))
}

pub(crate) fn lit(s: &str) -> Expr {
    Expr::value(Value::SingleQuotedString(s.to_string()))
}

pub(crate) fn num(n: i64) -> Expr {
    Expr::value(Value::Number(n.to_string(), false))
}

pub(crate) fn null() -> Expr {
    Expr::value(Value::Null)
}

/// A date part given as an identifier (`month`) or a string (`'month'`), as text.
pub(crate) fn part_text(e: &Expr) -> Option<String> {
    match e {
        Expr::Identifier(id) => Some(id.value.to_lowercase()),
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => Some(s.to_lowercase()),
            _ => None,
        },
        _ => None,
    }
}

pub(crate) fn case_when(branches: Vec<(Expr, Expr)>, otherwise: Option<Expr>) -> Expr {
    Expr::Case {
        case_token: sqlparser::ast::helpers::attached_token::AttachedToken::empty(),
        end_token: sqlparser::ast::helpers::attached_token::AttachedToken::empty(),
        operand: None,
        conditions: branches
            .into_iter()
            .map(|(c, r)| sqlparser::ast::CaseWhen {
                condition: c,
                result: r,
            })
            .collect(),
        else_result: otherwise.map(Box::new),
    }
}

pub(crate) fn nested(e: Expr) -> Expr {
    Expr::Nested(Box::new(e))
}

pub(crate) fn binop(l: Expr, op: BinaryOperator, r: Expr) -> Expr {
    Expr::BinaryOp {
        left: Box::new(nested(l)),
        op,
        right: Box::new(nested(r)),
    }
}

/// `sbx_cast(x, target, strict)`.
pub(crate) fn cast_to(x: Expr, target: &str, strict: bool) -> Expr {
    call("sbx_cast", vec![x, lit(target), num(i64::from(strict))])
}

/// Names of aggregate functions (before and after translation), for GROUP BY ALL.
fn is_aggregate_name(name: &str) -> bool {
    matches!(
        name,
        "count"
            | "sum"
            | "avg"
            | "min"
            | "max"
            | "median"
            | "count_if"
            | "listagg"
            | "string_agg"
            | "group_concat"
            | "array_agg"
            | "collect_list"
            | "collect_set"
            | "percentile_cont"
            | "percentile_disc"
            | "percentile"
            | "percentile_approx"
            | "approx_percentile"
            | "any_value"
            | "first"
            | "last"
            | "approx_count_distinct"
            | "hll"
            | "stddev"
            | "stddev_samp"
            | "stddev_pop"
            | "std"
            | "variance"
            | "var_samp"
            | "var_pop"
            | "max_by"
            | "min_by"
            | "arg_max"
            | "arg_min"
            | "bool_and"
            | "bool_or"
            | "booland_agg"
            | "boolor_agg"
            | "every"
            | "some"
            | "mode"
            | "object_agg"
            | "total"
    ) || name.starts_with("sbx_percentile")
        || matches!(
            name,
            "sbx_median"
                | "sbx_any_value"
                | "sbx_max_by"
                | "sbx_min_by"
                | "sbx_var_samp"
                | "sbx_var_pop"
                | "sbx_stddev_samp"
                | "sbx_stddev_pop"
                | "sbx_array_agg"
                | "sbx_array_agg_distinct"
        )
}

fn has_aggregate(e: &Expr) -> bool {
    let mut found = false;
    let mut e = e.clone();
    let _ = sqlparser::ast::visit_expressions_mut(&mut e, |x| {
        if let Expr::Function(f) = x
            && f.over.is_none()
            && is_aggregate_name(&fname(f))
        {
            found = true;
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    });
    found
}

// ---------------------------------------------------------------------------
// The translating visitor
// ---------------------------------------------------------------------------

/// Argument types of the expression being translated, computed before its children change.
struct Pending {
    types: Vec<Option<Ty>>,
}

struct Translator {
    platform: Platform,
    env: Env,
    pending: Vec<Pending>,
    counter: usize,
    top_hidden: usize,
    depth: usize,
}

impl Translator {
    fn fresh(&mut self, what: &str) -> String {
        self.counter += 1;
        format!("{what}${}", self.counter)
    }

    /// Types of the direct operands of `expr` that the translation needs.
    fn operand_types(&self, expr: &Expr) -> Vec<Option<Ty>> {
        let t = |e: &Expr| infer(self.platform, e, &self.env);
        match expr {
            Expr::Cast { expr, .. } => vec![t(expr)],
            Expr::BinaryOp { left, right, .. } => vec![t(left), t(right)],
            Expr::Between { expr, .. } => vec![t(expr)],
            Expr::Function(f) => {
                let mut v: Vec<Option<Ty>> = positional(f).iter().map(t).collect();
                for o in &f.within_group {
                    v.push(t(&o.expr));
                }
                v
            }
            Expr::CompoundIdentifier(_) | Expr::CompoundFieldAccess { .. } => vec![],
            _ => vec![],
        }
    }

    fn rewrite(&mut self, expr: &mut Expr, types: &[Option<Ty>]) -> Result<(), DialectError> {
        let ceil = matches!(expr, Expr::Ceil { .. });
        let is_ilike = matches!(expr, Expr::ILike { .. });
        let replacement = match expr {
            Expr::Function(f) => match self.platform {
                Platform::Snowflake => snowflake::function(f, types, &self.env)?,
                Platform::Databricks => databricks::function(f, types, &self.env)?,
            },
            Expr::Cast {
                kind,
                expr: inner,
                data_type,
                ..
            } => {
                let strict = !matches!(kind, CastKind::TryCast | CastKind::SafeCast);
                let from = types.first().cloned().flatten();
                cast_expr(
                    self.platform,
                    (**inner).clone(),
                    data_type,
                    strict,
                    from.as_ref(),
                )
            }
            Expr::TypedString(ts) => {
                let text = match &ts.value.value {
                    Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => s.clone(),
                    other => other.to_string(),
                };
                let dt = ts.data_type.clone();
                Some(
                    cast_expr(self.platform, lit(&text), &dt, true, Some(&Ty::Text))
                        .unwrap_or_else(|| lit(&text)),
                )
            }
            Expr::Like {
                negated,
                expr: inner,
                pattern,
                any: false,
                ..
            } => Some(negate(
                *negated,
                call(
                    "sbx_like",
                    vec![(**inner).clone(), (**pattern).clone(), num(0)],
                ),
            )),
            Expr::ILike {
                negated,
                expr: inner,
                pattern,
                any: false,
                ..
            } => Some(negate(
                *negated,
                call(
                    "sbx_like",
                    vec![(**inner).clone(), (**pattern).clone(), num(1)],
                ),
            )),
            // LIKE ANY / ILIKE ANY ('a%', 'b%'): any of the patterns matches.
            Expr::Like {
                negated,
                expr: inner,
                pattern,
                any: true,
                ..
            }
            | Expr::ILike {
                negated,
                expr: inner,
                pattern,
                any: true,
                ..
            } => {
                let ci = i64::from(is_ilike);
                let patterns = match pattern.as_ref() {
                    Expr::Tuple(v) => v.clone(),
                    Expr::Nested(e) => vec![(**e).clone()],
                    other => vec![other.clone()],
                };
                let mut any: Option<Expr> = None;
                for p in patterns {
                    let one = call("sbx_like", vec![(**inner).clone(), p, num(ci)]);
                    any = Some(match any {
                        None => one,
                        Some(acc) => binop(acc, BinaryOperator::Or, one),
                    });
                }
                any.map(|e| negate(*negated, e))
            }
            Expr::RLike {
                negated,
                expr: inner,
                pattern,
                ..
            } => {
                // Snowflake RLIKE/REGEXP match the whole subject; Spark's search it.
                let whole = i64::from(self.platform == Platform::Snowflake);
                Some(negate(
                    *negated,
                    call(
                        "sbx_regexp_like",
                        vec![(**inner).clone(), (**pattern).clone(), lit(""), num(whole)],
                    ),
                ))
            }
            Expr::Extract {
                field, expr: inner, ..
            } => {
                let f = if self.platform == Platform::Snowflake {
                    "sbx_extract"
                } else {
                    "sbx_extract_spark"
                };
                Some(call(
                    f,
                    vec![lit(&field.to_string().to_lowercase()), (**inner).clone()],
                ))
            }
            Expr::JsonAccess { value, path } => {
                let mut out = (**value).clone();
                for elem in &path.path {
                    let key = match elem {
                        JsonPathElem::Dot { key, .. } => lit(key),
                        JsonPathElem::Bracket { key } | JsonPathElem::ColonBracket { key } => {
                            key.clone()
                        }
                    };
                    out = call("sbx_get", vec![out, key]);
                }
                Some(out)
            }
            Expr::CompoundFieldAccess { root, access_chain } => {
                let mut out = (**root).clone();
                for a in access_chain {
                    let key = match a {
                        sqlparser::ast::AccessExpr::Dot(Expr::Identifier(id)) => {
                            out = call("sbx_field", vec![out, lit(&id.value)]);
                            continue;
                        }
                        sqlparser::ast::AccessExpr::Dot(other) => other.clone(),
                        sqlparser::ast::AccessExpr::Subscript(
                            sqlparser::ast::Subscript::Index { index },
                        ) => index.clone(),
                        sqlparser::ast::AccessExpr::Subscript(_) => {
                            return Err(DialectError::Unsupported("array slices".into()));
                        }
                    };
                    out = call("sbx_get", vec![out, key]);
                }
                Some(out)
            }
            Expr::CompoundIdentifier(parts) => self.field_access(parts),
            Expr::Substring {
                expr: inner,
                substring_from,
                substring_for,
                ..
            } => {
                let mut args = vec![(**inner).clone()];
                args.push(substring_from.as_deref().cloned().unwrap_or_else(|| num(1)));
                if let Some(n) = substring_for {
                    args.push((**n).clone());
                }
                Some(call("substr", args))
            }
            Expr::Position { expr: needle, r#in } => Some(call(
                "sbx_position",
                vec![(**needle).clone(), (**r#in).clone(), num(1)],
            )),
            Expr::Ceil { expr: inner, field } | Expr::Floor { expr: inner, field } => {
                let name = if ceil { "sbx_ceil" } else { "sbx_floor" };
                let mut args = vec![(**inner).clone()];
                if let sqlparser::ast::CeilFloorKind::Scale(v) = field {
                    args.push(Expr::Value(v.clone()));
                }
                Some(call(name, args))
            }
            Expr::Trim {
                expr: inner,
                trim_where,
                trim_what,
                trim_characters,
            } => {
                let name = match trim_where {
                    Some(sqlparser::ast::TrimWhereField::Leading) => "ltrim",
                    Some(sqlparser::ast::TrimWhereField::Trailing) => "rtrim",
                    _ => "trim",
                };
                let mut args = vec![(**inner).clone()];
                if let Some(w) = trim_what {
                    args.push((**w).clone());
                } else if let Some(chars) = trim_characters
                    && let Some(c) = chars.first()
                {
                    args.push(c.clone());
                }
                Some(call(name, args))
            }
            Expr::BinaryOp { left, op, right } => {
                let lt = types.first().cloned().flatten();
                let rt = types.get(1).cloned().flatten();
                binary(self.platform, left, op, right, lt.as_ref(), rt.as_ref())?
            }
            Expr::Between {
                expr: inner,
                negated,
                low,
                high,
            } => {
                let kind = temporal_kind(types.first().cloned().flatten().as_ref());
                match kind {
                    Some(k) if is_string_literal(low) || is_string_literal(high) => {
                        Some(Expr::Between {
                            expr: inner.clone(),
                            negated: *negated,
                            low: Box::new(coerce_literal((**low).clone(), k)),
                            high: Box::new(coerce_literal((**high).clone(), k)),
                        })
                    }
                    _ => None,
                }
            }
            Expr::Struct { values, .. } => {
                let mut kv = Vec::new();
                for (i, v) in values.iter().enumerate() {
                    let (name, e) = match v {
                        Expr::Named { expr, name } => (name.value.clone(), (**expr).clone()),
                        Expr::Identifier(id) => (id.value.clone(), v.clone()),
                        Expr::CompoundIdentifier(p) => (
                            p.last().map(|p| p.value.clone()).unwrap_or_default(),
                            v.clone(),
                        ),
                        other => (format!("col{}", i + 1), other.clone()),
                    };
                    kv.push(lit(&name));
                    kv.push(e);
                }
                Some(call("sbx_struct", kv))
            }
            Expr::Value(v) if matches!(v.value, Value::Boolean(_)) => {
                let b = matches!(v.value, Value::Boolean(true));
                Some(num(i64::from(b)))
            }
            _ => None,
        };
        if let Some(r) = replacement {
            *expr = r;
        }
        Ok(())
    }

    /// Databricks `col.field` / `t.col.field` on a STRUCT or MAP column; FLATTEN's
    /// `f.index` (json_each names it `key`).
    fn field_access(&self, parts: &[Ident]) -> Option<Expr> {
        if parts.len() == 2
            && parts[1].value.eq_ignore_ascii_case("index")
            && self.env.lookup(Some(&parts[0].value), "seq").is_some()
        {
            return Some(Expr::CompoundIdentifier(vec![
                parts[0].clone(),
                Ident::new("key"),
            ]));
        }
        let (base_len, column) = match parts.len() {
            2 if !self.env.is_qualifier(&parts[0].value) => (1, parts[0].value.as_str()),
            n if n >= 3 && self.env.is_qualifier(&parts[0].value) => (2, parts[1].value.as_str()),
            n if n >= 3 => (1, parts[0].value.as_str()),
            _ => return None,
        };
        let qualifier = (base_len == 2).then(|| parts[0].value.as_str());
        let ty = self.env.lookup(qualifier, column)?;
        if !matches!(ty, Ty::Struct(_) | Ty::Map(..) | Ty::Variant | Ty::Object) {
            return None;
        }
        let mut out = if base_len == 1 {
            Expr::Identifier(parts[0].clone())
        } else {
            Expr::CompoundIdentifier(parts[..2].to_vec())
        };
        for p in &parts[base_len..] {
            out = call("sbx_field", vec![out, lit(&p.value)]);
        }
        Some(out)
    }

    /// QUALIFY, TOP, GROUP BY ALL, FLATTEN, explode and LATERAL VIEW on one query level.
    fn restructure(&mut self, query: &mut Query, top: bool) -> Result<(), DialectError> {
        if let Some(fetch) = query.fetch.take()
            && query.limit_clause.is_none()
        {
            query.limit_clause = Some(LimitClause::LimitOffset {
                limit: fetch.quantity,
                offset: None,
                limit_by: vec![],
            });
        }
        let SetExpr::Select(select) = query.body.as_mut() else {
            return Ok(());
        };
        if let Some(t) = select.top.take() {
            let n = match t.quantity {
                Some(TopQuantity::Constant(n)) => num(n as i64),
                Some(TopQuantity::Expr(e)) => e,
                None => return Err(DialectError::Invalid("TOP without a row count".into())),
            };
            if query.limit_clause.is_none() {
                query.limit_clause = Some(LimitClause::LimitOffset {
                    limit: Some(n),
                    offset: None,
                    limit_by: vec![],
                });
            }
        }
        let SetExpr::Select(select) = query.body.as_mut() else {
            return Ok(());
        };
        self.table_functions(select)?;
        self.generators(select)?;
        if let GroupByExpr::All(_) = &select.group_by {
            let mut ordinals = Vec::new();
            for (i, item) in select.projection.iter().enumerate() {
                if let SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } = item
                    && !has_aggregate(e)
                    && !matches!(e, Expr::Value(_))
                {
                    ordinals.push(num(i as i64 + 1));
                }
            }
            select.group_by = GroupByExpr::Expressions(ordinals, vec![]);
        }
        if let Some(cond) = select.qualify.take() {
            let hidden = self.qualify(query, cond)?;
            if top {
                self.top_hidden = hidden;
            }
        }
        Ok(())
    }

    /// Wrap a SELECT with QUALIFY into `SELECT .. FROM (SELECT .., cond) WHERE cond`.
    fn qualify(&mut self, query: &mut Query, cond: Expr) -> Result<usize, DialectError> {
        let SetExpr::Select(select) = query.body.as_mut() else {
            return Ok(0);
        };
        // QUALIFY may name projection aliases: substitute their expressions.
        let mut aliases = Vec::new();
        for item in &select.projection {
            if let SelectItem::ExprWithAlias { expr, alias } = item {
                aliases.push((alias.value.to_lowercase(), expr.clone()));
            }
        }
        let mut cond = cond;
        let _ = sqlparser::ast::visit_expressions_mut(&mut cond, |e| {
            if let Expr::Identifier(id) = e
                && let Some((_, x)) = aliases.iter().find(|(a, _)| *a == id.value.to_lowercase())
            {
                *e = nested(x.clone());
            }
            ControlFlow::<()>::Continue(())
        });
        let flag = self.fresh("qualify");
        // Output names for an explicit outer list, when every item has one.
        let mut names = Vec::new();
        for item in &select.projection {
            match item {
                SelectItem::ExprWithAlias { alias, .. } => names.push(Some(alias.clone())),
                SelectItem::UnnamedExpr(Expr::Identifier(id)) => names.push(Some(id.clone())),
                SelectItem::UnnamedExpr(Expr::CompoundIdentifier(p)) => {
                    names.push(p.last().cloned())
                }
                _ => names.push(None),
            }
        }
        select.projection.push(SelectItem::ExprWithAlias {
            expr: cond,
            alias: Ident::with_quote('"', flag.clone()),
        });
        // ORDER BY terms that are not output names or ordinals ride along as extra
        // inner columns, so the outer query can still sort by them.
        let mut extra = 0;
        if let Some(order_by) = &mut query.order_by
            && let sqlparser::ast::OrderByKind::Expressions(list) = &mut order_by.kind
        {
            for o in list.iter_mut() {
                let named = match &o.expr {
                    Expr::Identifier(id) => names
                        .iter()
                        .flatten()
                        .any(|n| n.value.eq_ignore_ascii_case(&id.value)),
                    Expr::Value(_) => true,
                    _ => false,
                };
                if named {
                    continue;
                }
                let col = self.fresh("order");
                select.projection.push(SelectItem::ExprWithAlias {
                    expr: o.expr.clone(),
                    alias: Ident::with_quote('"', col.clone()),
                });
                o.expr = Expr::Identifier(Ident::with_quote('"', col));
                extra += 1;
            }
        }
        let inner = Query {
            with: None,
            body: query.body.clone(),
            order_by: None,
            limit_clause: None,
            fetch: None,
            locks: vec![],
            for_clause: None,
            settings: None,
            format_clause: None,
            pipe_operators: vec![],
        };
        let explicit = names.iter().all(Option::is_some);
        let projection = if explicit {
            names
                .into_iter()
                .flatten()
                .map(|n| SelectItem::ExprWithAlias {
                    expr: Expr::Identifier(n.clone()),
                    alias: n,
                })
                .collect()
        } else {
            vec![SelectItem::Wildcard(Default::default())]
        };
        let sub_alias = self.fresh("q");
        let outer = parse_select(&format!(
            "SELECT 1 FROM (SELECT 1) AS \"{sub_alias}\" WHERE \"{flag}\""
        ))?;
        let mut outer = outer;
        outer.projection = projection;
        if let Some(twj) = outer.from.first_mut() {
            twj.relation = TableFactor::Derived {
                lateral: false,
                subquery: Box::new(inner),
                alias: Some(TableAlias {
                    explicit: true,
                    name: Ident::with_quote('"', sub_alias),
                    columns: vec![],
                    at: None,
                }),
                sample: None,
            };
        }
        *query.body = SetExpr::Select(Box::new(outer));
        Ok(if explicit { 0 } else { 1 + extra })
    }

    /// Snowflake `LATERAL FLATTEN(input => x)` / `TABLE(FLATTEN(x))` → `json_each(x)`.
    fn table_functions(&mut self, select: &mut Select) -> Result<(), DialectError> {
        for twj in &mut select.from {
            flatten_factor(&mut twj.relation)?;
            for j in &mut twj.joins {
                flatten_factor(&mut j.relation)?;
            }
        }
        Ok(())
    }

    /// Databricks `explode(x)` in the projection and `LATERAL VIEW explode(x) t AS c`;
    /// returns the (alias, column, replacement) substitutions made for ORDER BY.
    fn generators(
        &mut self,
        select: &mut Select,
    ) -> Result<Vec<(String, String, Expr)>, DialectError> {
        let mut made = Vec::new();
        let views = std::mem::take(&mut select.lateral_views);
        for lv in views {
            let Expr::Function(f) = &lv.lateral_view else {
                return Err(DialectError::Unsupported("this LATERAL VIEW".into()));
            };
            let name = fname(f);
            let arg = positional(f)
                .into_iter()
                .next()
                .ok_or_else(|| DialectError::Invalid(format!("{name} needs an argument")))?;
            let alias = lv
                .lateral_view_name
                .0
                .last()
                .map(|p| p.to_string())
                .unwrap_or_else(|| self.fresh("lv"));
            let each = self.fresh("each");
            select.from.push(json_each(arg, &each));
            // LATERAL VIEW columns: a derived name per alias column.
            let cols = lv.lateral_col_alias.clone();
            let mut replace: Vec<(String, Expr)> = Vec::new();
            match (name.as_str(), cols.as_slice()) {
                ("posexplode" | "posexplode_outer", [pos, val]) => {
                    replace.push((pos.value.to_lowercase(), each_col(&each, "key")));
                    replace.push((val.value.to_lowercase(), each_col(&each, "value")));
                }
                (_, [val]) => replace.push((val.value.to_lowercase(), each_col(&each, "value"))),
                (_, []) => replace.push(("col".into(), each_col(&each, "value"))),
                _ => {
                    return Err(DialectError::Unsupported(
                        "this LATERAL VIEW column list".into(),
                    ));
                }
            }
            let alias_l = alias.to_lowercase();
            for (c, r) in &replace {
                made.push((alias_l.clone(), c.clone(), r.clone()));
            }
            let subst = |e: &mut Expr| {
                let _ = sqlparser::ast::visit_expressions_mut(e, |x| {
                    let key = match x {
                        Expr::Identifier(id) => Some(id.value.to_lowercase()),
                        Expr::CompoundIdentifier(p)
                            if p.len() == 2 && p[0].value.to_lowercase() == alias_l =>
                        {
                            Some(p[1].value.to_lowercase())
                        }
                        _ => None,
                    };
                    if let Some(k) = key
                        && let Some((_, r)) = replace.iter().find(|(n, _)| *n == k)
                    {
                        *x = r.clone();
                    }
                    ControlFlow::<()>::Continue(())
                });
            };
            for item in &mut select.projection {
                match item {
                    SelectItem::UnnamedExpr(e) => {
                        let name = match e {
                            Expr::Identifier(id) => Some(id.clone()),
                            Expr::CompoundIdentifier(p) => p.last().cloned(),
                            _ => None,
                        };
                        let before = e.clone();
                        subst(e);
                        if let Some(n) = name
                            && *e != before
                        {
                            *item = SelectItem::ExprWithAlias {
                                expr: e.clone(),
                                alias: n,
                            };
                        }
                    }
                    SelectItem::ExprWithAlias { expr, .. } => subst(expr),
                    _ => {}
                }
            }
            if let Some(w) = &mut select.selection {
                subst(w);
            }
            if let GroupByExpr::Expressions(list, _) = &mut select.group_by {
                for e in list {
                    subst(e);
                }
            }
        }
        // explode(x) [AS c] in the projection (one generator per SELECT, as Spark allows).
        let mut generated = false;
        for i in 0..select.projection.len() {
            let (e, alias) = match &select.projection[i] {
                SelectItem::UnnamedExpr(e) => (e.clone(), None),
                SelectItem::ExprWithAlias { expr, alias } => (expr.clone(), Some(alias.clone())),
                _ => continue,
            };
            let Expr::Function(f) = &e else { continue };
            let name = fname(f);
            if !matches!(name.as_str(), "explode" | "explode_outer" | "posexplode") {
                continue;
            }
            if generated {
                return Err(DialectError::Unsupported(
                    "more than one generator in a SELECT".into(),
                ));
            }
            generated = true;
            let arg = positional(f)
                .into_iter()
                .next()
                .ok_or_else(|| DialectError::Invalid(format!("{name} needs an argument")))?;
            let each = self.fresh("each");
            select.from.push(json_each(arg, &each));
            if name == "posexplode" {
                select.projection[i] = SelectItem::ExprWithAlias {
                    expr: each_col(&each, "key"),
                    alias: Ident::new("pos"),
                };
                select.projection.insert(
                    i + 1,
                    SelectItem::ExprWithAlias {
                        expr: each_col(&each, "value"),
                        alias: alias.unwrap_or_else(|| Ident::new("col")),
                    },
                );
            } else {
                select.projection[i] = SelectItem::ExprWithAlias {
                    expr: each_col(&each, "value"),
                    alias: alias.unwrap_or_else(|| Ident::new("col")),
                };
            }
        }
        Ok(made)
    }
}

fn each_col(each: &str, col: &str) -> Expr {
    Expr::CompoundIdentifier(vec![Ident::with_quote('"', each), Ident::new(col)])
}

fn json_each(arg: Expr, alias: &str) -> TableWithJoins {
    TableWithJoins {
        relation: TableFactor::Table {
            name: ObjectName::from(vec![Ident::new("json_each")]),
            alias: Some(TableAlias {
                explicit: true,
                name: Ident::with_quote('"', alias),
                columns: vec![],
                at: None,
            }),
            args: Some(TableFunctionArgs {
                args: vec![FunctionArg::Unnamed(FunctionArgExpr::Expr(arg))],
                settings: None,
            }),
            with_hints: vec![],
            version: None,
            with_ordinality: false,
            partitions: vec![],
            json_path: None,
            sample: None,
            index_directives: vec![],
            inheritance: None,
        },
        joins: vec![],
    }
}

fn flatten_factor(factor: &mut TableFactor) -> Result<(), DialectError> {
    let (arg, alias) = match factor {
        TableFactor::Function {
            name, args, alias, ..
        } if is_flatten(name) => {
            let arg = named_arg(args, "input").or_else(|| match args.first() {
                Some(FunctionArg::Unnamed(FunctionArgExpr::Expr(e))) => Some(e.clone()),
                _ => None,
            });
            (arg, alias.clone())
        }
        // `TABLE(...)` stays refused: only `[LATERAL] FLATTEN(INPUT => ..)` is translated.
        TableFactor::TableFunction { expr, .. } => {
            return Err(DialectError::Unsupported(format!(
                "table function TABLE({expr}); write LATERAL FLATTEN(INPUT => ..)"
            )));
        }
        TableFactor::NestedJoin {
            table_with_joins, ..
        } => {
            flatten_factor(&mut table_with_joins.relation)?;
            for j in &mut table_with_joins.joins {
                flatten_factor(&mut j.relation)?;
            }
            return Ok(());
        }
        _ => return Ok(()),
    };
    let arg = arg.ok_or_else(|| DialectError::Invalid("FLATTEN needs INPUT => <expr>".into()))?;
    let alias_name = alias
        .map(|a| a.name.value)
        .unwrap_or_else(|| "FLATTEN".to_string());
    *factor = json_each(arg, &alias_name).relation;
    Ok(())
}

fn parse_select(sql: &str) -> Result<Select, DialectError> {
    let d = sqlparser::dialect::GenericDialect {};
    let mut stmts = sqlparser::parser::Parser::parse_sql(&d, sql)
        .map_err(|e| DialectError::Invalid(e.to_string()))?;
    match stmts.pop() {
        Some(sqlparser::ast::Statement::Query(q)) => match *q.body {
            SetExpr::Select(s) => Ok(*s),
            _ => Err(DialectError::Invalid("internal rewrite".into())),
        },
        _ => Err(DialectError::Invalid("internal rewrite".into())),
    }
}

fn negate(negated: bool, e: Expr) -> Expr {
    if negated {
        Expr::UnaryOp {
            op: sqlparser::ast::UnaryOperator::Not,
            expr: Box::new(nested(e)),
        }
    } else {
        e
    }
}

/// A cast to a platform type, with the platform's conversion rules.
pub(crate) fn cast_expr(
    platform: Platform,
    x: Expr,
    data_type: &DataType,
    strict: bool,
    from: Option<&Ty>,
) -> Option<Expr> {
    let target = types::parse_declared(platform, &data_type.to_string())?;
    let spec = match &target {
        Ty::Text => match (platform, from) {
            (_, Some(Ty::Bool)) => "bool_text".to_string(),
            // Timestamps print as the platforms print them: Snowflake
            // `YYYY-MM-DD HH24:MI:SS.FF3`, Spark `yyyy-MM-dd HH:mm:ss[.f]`.
            (Platform::Snowflake, Some(Ty::Ntz | Ty::Tz)) => "ts_text_sf".to_string(),
            (Platform::Databricks, Some(Ty::Ntz | Ty::Tz)) => "ts_text_spark".to_string(),
            _ => "text".to_string(),
        },
        Ty::Fixed(_, s) if *s > 0 => format!("dec:{s}"),
        Ty::Fixed(..) | Ty::Int | Ty::BigInt => match platform {
            Platform::Snowflake => "int_round".into(),
            Platform::Databricks => "int_trunc".into(),
        },
        Ty::Real => "real".into(),
        Ty::Bool => "bool".into(),
        Ty::Date => "date".into(),
        Ty::Ntz => "ntz".into(),
        Ty::Tz => "tz".into(),
        Ty::Variant => return Some(call("sbx_to_variant", vec![x])),
        Ty::Array(_) | Ty::Object | Ty::Map(..) | Ty::Struct(_) => return Some(x),
    };
    Some(cast_to(x, &spec, strict))
}

/// Arithmetic with the platform's rules: Snowflake `/` is decimal division with
/// scale max(s1, min(s1 + 6, 12)) (docs.snowflake.com/en/sql-reference/operators-arithmetic);
/// Spark `/` on integers is floating point. Date ± integer / INTERVAL is date arithmetic.
fn binary(
    platform: Platform,
    left: &Expr,
    op: &BinaryOperator,
    right: &Expr,
    lt: Option<&Ty>,
    rt: Option<&Ty>,
) -> Result<Option<Expr>, DialectError> {
    let temporal = |t: Option<&Ty>| matches!(t, Some(Ty::Date | Ty::Ntz | Ty::Tz));
    match op {
        BinaryOperator::Divide => {
            let scale = match types::divide_type(platform, lt, rt) {
                Ty::Fixed(_, s) => i64::from(s),
                _ => -1,
            };
            Ok(Some(call(
                "sbx_div",
                vec![left.clone(), right.clone(), num(scale)],
            )))
        }
        BinaryOperator::MyIntegerDivide | BinaryOperator::DuckIntegerDivide => Ok(Some(cast_to(
            call("sbx_div", vec![left.clone(), right.clone(), num(-1)]),
            "int_trunc",
            true,
        ))),
        BinaryOperator::Plus | BinaryOperator::Minus => {
            let sign = if *op == BinaryOperator::Minus { -1 } else { 1 };
            if let Expr::Interval(iv) = right {
                let (n, unit) = interval_parts(iv)?;
                return Ok(Some(call(
                    "sbx_dateadd",
                    vec![lit(&unit), num(sign * n), left.clone()],
                )));
            }
            if let Expr::Interval(iv) = left
                && sign == 1
            {
                let (n, unit) = interval_parts(iv)?;
                return Ok(Some(call(
                    "sbx_dateadd",
                    vec![lit(&unit), num(n), right.clone()],
                )));
            }
            if temporal(lt) && temporal(rt) && sign == -1 {
                return Ok(Some(binop(
                    call("sbx_day_number", vec![left.clone()]),
                    BinaryOperator::Minus,
                    call("sbx_day_number", vec![right.clone()]),
                )));
            }
            if temporal(lt) && !temporal(rt) {
                let n = if sign == -1 {
                    Expr::UnaryOp {
                        op: sqlparser::ast::UnaryOperator::Minus,
                        expr: Box::new(nested(right.clone())),
                    }
                } else {
                    right.clone()
                };
                return Ok(Some(call("sbx_dateadd", vec![lit("day"), n, left.clone()])));
            }
            Ok(None)
        }
        BinaryOperator::Eq
        | BinaryOperator::NotEq
        | BinaryOperator::Lt
        | BinaryOperator::LtEq
        | BinaryOperator::Gt
        | BinaryOperator::GtEq => {
            // A string compared with a date/timestamp is read as one (both platforms
            // cast the literal), so '2024-01-05' equals DATE_TRUNC('day', ts).
            match (temporal_kind(lt), temporal_kind(rt)) {
                (Some(k), None) if is_string_literal(right) => Ok(Some(Expr::BinaryOp {
                    left: Box::new(left.clone()),
                    op: op.clone(),
                    right: Box::new(coerce_literal(right.clone(), k)),
                })),
                (None, Some(k)) if is_string_literal(left) => Ok(Some(Expr::BinaryOp {
                    left: Box::new(coerce_literal(left.clone(), k)),
                    op: op.clone(),
                    right: Box::new(right.clone()),
                })),
                _ => Ok(None),
            }
        }
        _ => Ok(None),
    }
}

/// `INTERVAL '3' DAY`, `INTERVAL 3 DAYS`, `INTERVAL '3 days'` → (3, "day").
fn interval_parts(iv: &sqlparser::ast::Interval) -> Result<(i64, String), DialectError> {
    let raw = match iv.value.as_ref() {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => s.clone(),
            Value::Number(n, _) => n.clone(),
            other => other.to_string(),
        },
        Expr::UnaryOp { op, expr } => format!("{op}{expr}"),
        other => other.to_string(),
    };
    let mut words = raw.split_whitespace();
    let n: i64 = words
        .next()
        .and_then(|w| w.parse().ok())
        .ok_or_else(|| DialectError::Unsupported(format!("INTERVAL '{raw}'")))?;
    let unit = match (words.next(), &iv.leading_field) {
        (Some(u), _) => u.to_lowercase(),
        (None, Some(f)) => f.to_string().to_lowercase(),
        (None, None) => "day".to_string(),
    };
    let unit = unit.trim_end_matches('s').to_string();
    Ok((n, unit))
}

impl VisitorMut for Translator {
    type Break = DialectError;

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<DialectError> {
        self.depth += 1;
        // Generators and FLATTEN before the expressions inside them are translated.
        let top = self.depth == 1;
        if let SetExpr::Select(select) = query.body.as_mut()
            && let Err(e) = self.table_functions(select)
        {
            return ControlFlow::Break(e);
        }
        let mut made = Vec::new();
        if let SetExpr::Select(select) = query.body.as_mut() {
            match self.generators(select) {
                Ok(m) => made = m,
                Err(e) => return ControlFlow::Break(e),
            }
        }
        if !made.is_empty()
            && let Some(order_by) = &mut query.order_by
        {
            let _ = sqlparser::ast::visit_expressions_mut(order_by, |x| {
                if let Expr::CompoundIdentifier(p) = x
                    && p.len() == 2
                    && let Some((_, _, r)) = made.iter().find(|(a, c, _)| {
                        *a == p[0].value.to_lowercase() && *c == p[1].value.to_lowercase()
                    })
                {
                    *x = r.clone();
                }
                ControlFlow::<()>::Continue(())
            });
        }
        // Unnamed computed projection items keep their platform-side name.
        if let SetExpr::Select(select) = query.body.as_mut() {
            for item in &mut select.projection {
                if let SelectItem::UnnamedExpr(e) = item
                    && !matches!(e, Expr::Identifier(_) | Expr::CompoundIdentifier(_))
                {
                    let text = e.to_string();
                    let name = match self.platform {
                        Platform::Snowflake => text.to_uppercase(),
                        Platform::Databricks => text,
                    };
                    *item = SelectItem::ExprWithAlias {
                        expr: e.clone(),
                        alias: Ident::with_quote('"', name),
                    };
                }
            }
        }
        let _ = top;
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, query: &mut Query) -> ControlFlow<DialectError> {
        let top = self.depth == 1;
        self.depth -= 1;
        match self.restructure(query, top) {
            Ok(()) => ControlFlow::Continue(()),
            Err(e) => ControlFlow::Break(e),
        }
    }

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<DialectError> {
        let types = self.operand_types(expr);
        self.pending.push(Pending { types });
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<DialectError> {
        let p = self.pending.pop().unwrap_or(Pending { types: vec![] });
        match self.rewrite(expr, &p.types) {
            Ok(()) => ControlFlow::Continue(()),
            Err(e) => ControlFlow::Break(e),
        }
    }
}

/// Order-by expressions of a WITHIN GROUP or an in-call ORDER BY.
pub(crate) fn order_by_of(f: &Function) -> Vec<OrderByExpr> {
    if !f.within_group.is_empty() {
        return f.within_group.clone();
    }
    match &f.args {
        FunctionArguments::List(l) => l
            .clauses
            .iter()
            .find_map(|c| match c {
                FunctionArgumentClause::OrderBy(o) => Some(o.clone()),
                _ => None,
            })
            .unwrap_or_default(),
        _ => vec![],
    }
}

/// Translations both platforms spell the same way: conditionals, common
/// aggregates, strings and numbers whose semantics agree.
pub(crate) fn shared_function(
    platform: Platform,
    f: &Function,
    args: &[Expr],
    types: &[Option<Ty>],
) -> Result<Option<Expr>, DialectError> {
    let name = fname(f);
    let a = |i: usize| args.get(i).cloned().unwrap_or_else(null);
    let need = |n: usize| -> Result<(), DialectError> {
        if args.len() < n {
            Err(DialectError::Invalid(format!(
                "{} needs at least {n} argument(s)",
                name.to_uppercase()
            )))
        } else {
            Ok(())
        }
    };
    let out = match name.as_str() {
        "iff" | "if" => {
            need(3)?;
            case_when(vec![(a(0), a(1))], Some(a(2)))
        }
        "nvl" | "ifnull" => {
            need(2)?;
            call("coalesce", vec![a(0), a(1)])
        }
        "nvl2" => {
            need(3)?;
            case_when(
                vec![(Expr::IsNotNull(Box::new(nested(a(0)))), a(1))],
                Some(a(2)),
            )
        }
        // DECODE compares with NULL-safe equality (a NULL search matches a NULL value).
        "decode" => {
            need(3)?;
            let mut branches = Vec::new();
            let mut i = 1;
            while i + 1 < args.len() {
                branches.push((
                    Expr::IsNotDistinctFrom(Box::new(nested(a(0))), Box::new(nested(a(i)))),
                    a(i + 1),
                ));
                i += 2;
            }
            let otherwise = (i < args.len()).then(|| a(i));
            case_when(branches, otherwise)
        }
        "zeroifnull" => call("coalesce", vec![a(0), num(0)]),
        "nullifzero" => call("nullif", vec![a(0), num(0)]),
        "equal_null" => Expr::IsNotDistinctFrom(Box::new(nested(a(0))), Box::new(nested(a(1)))),
        "count_if" => {
            need(1)?;
            renamed(f, "count", vec![case_when(vec![(a(0), num(1))], None)])
        }
        "approx_count_distinct" | "hll" => {
            let mut g = f.clone();
            g.name = ObjectName::from(vec![Ident::new("count")]);
            g.args = FunctionArguments::List(FunctionArgumentList {
                duplicate_treatment: Some(DuplicateTreatment::Distinct),
                args: vec![FunctionArg::Unnamed(FunctionArgExpr::Expr(a(0)))],
                clauses: vec![],
            });
            Expr::Function(g)
        }
        "any_value" | "first" if f.over.is_none() => renamed(f, "sbx_any_value", vec![a(0)]),
        "median" => renamed(f, "sbx_median", vec![a(0)]),
        "mode" if f.over.is_none() => renamed(f, "sbx_mode", vec![a(0)]),
        "date_from_parts" | "make_date" => call("sbx_make_date", vec![a(0), a(1), a(2)]),
        // RATIO_TO_REPORT(x) OVER (w) = x / SUM(x) OVER (w).
        "ratio_to_report" if f.over.is_some() => call(
            "sbx_div_or",
            vec![a(0), renamed(f, "sum", vec![a(0)]), null(), num(-1)],
        ),
        "percentile_cont" | "percentile_disc" => {
            let order = order_by_of(f);
            let x = order.first().map(|o| o.expr.clone()).ok_or_else(|| {
                DialectError::Invalid(format!("{name} needs WITHIN GROUP (ORDER BY ..)"))
            })?;
            let mut g = f.clone();
            g.within_group = vec![];
            renamed(&g, &format!("sbx_{name}"), vec![x, a(0)])
        }
        "max_by" | "arg_max" => renamed(f, "sbx_max_by", vec![a(0), a(1)]),
        "min_by" | "arg_min" => renamed(f, "sbx_min_by", vec![a(0), a(1)]),
        "stddev" | "stddev_samp" | "std" => renamed(f, "sbx_stddev_samp", vec![a(0)]),
        "stddev_pop" => renamed(f, "sbx_stddev_pop", vec![a(0)]),
        "variance" | "var_samp" => renamed(f, "sbx_var_samp", vec![a(0)]),
        "var_pop" => renamed(f, "sbx_var_pop", vec![a(0)]),
        "booland_agg" | "bool_and" | "every" => renamed(f, "min", vec![a(0)]),
        "boolor_agg" | "bool_or" | "some" => renamed(f, "max", vec![a(0)]),
        "regexp_count" => call(
            "sbx_regexp_count",
            vec![a(0), a(1), args.get(3).cloned().unwrap_or_else(|| lit(""))],
        ),
        "reverse" if !matches!(types.first(), Some(Some(Ty::Array(_)))) => {
            call("sbx_reverse", vec![a(0)])
        }
        "repeat" => call("sbx_repeat", vec![a(0), a(1)]),
        "left" => call("sbx_left", vec![a(0), a(1)]),
        "right" => call("sbx_right", vec![a(0), a(1)]),
        "lpad" | "rpad" => call(&format!("sbx_{name}"), args.to_vec()),
        "upper" | "ucase" => call("sbx_upper", vec![a(0)]),
        "lower" | "lcase" => call("sbx_lower", vec![a(0)]),
        "len" | "char_length" | "character_length" => call("length", vec![a(0)]),
        "translate" => call("sbx_translate", vec![a(0), a(1), a(2)]),
        "sha2" => call(
            "sbx_sha2",
            vec![a(0), args.get(1).cloned().unwrap_or_else(|| num(256))],
        ),
        "sha2_hex" => call("sbx_sha2", vec![a(0), num(256)]),
        "contains" => call("sbx_contains", vec![a(0), a(1)]),
        "startswith" => call("sbx_startswith", vec![a(0), a(1)]),
        "endswith" => call("sbx_endswith", vec![a(0), a(1)]),
        "concat" => call("sbx_concat", args.to_vec()),
        "mod" => binop(a(0), BinaryOperator::Modulo, a(1)),
        "power" | "pow" => call("sbx_power", vec![a(0), a(1)]),
        "sqrt" | "ln" | "exp" | "log10" | "sign" => call(&format!("sbx_{name}"), vec![a(0)]),
        "ceil" | "ceiling" => call("sbx_ceil", args.to_vec()),
        "floor" => call("sbx_floor", args.to_vec()),
        "last_day" => call(
            "sbx_last_day",
            vec![
                a(0),
                args.get(1)
                    .map_or_else(null, |p| lit(&part_text(p).unwrap_or_default())),
            ],
        ),
        "months_between" => call("sbx_months_between", vec![a(0), a(1)]),
        "current_date" | "curdate" => call("sbx_now", vec![lit("date")]),
        "current_timestamp" | "now" | "localtimestamp" | "getdate" | "systimestamp" => {
            call("sbx_now", vec![lit("tz")])
        }
        "sysdate" => call("sbx_now", vec![lit("ntz")]),
        "array_contains" if platform == Platform::Databricks => {
            call("sbx_array_contains", vec![a(0), a(1)])
        }
        "array_contains" => call("sbx_array_contains", vec![a(1), a(0)]),
        "array_size" | "size" | "cardinality" => call("sbx_array_size", vec![a(0)]),
        _ => return Ok(None),
    };
    Ok(Some(out))
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

fn temporal_kind(t: Option<&Ty>) -> Option<&'static str> {
    match t {
        Some(Ty::Date) => Some("date"),
        Some(Ty::Ntz) => Some("ntz"),
        Some(Ty::Tz) => Some("tz"),
        _ => None,
    }
}

fn is_string_literal(e: &Expr) -> bool {
    matches!(e, Expr::Value(v) if matches!(v.value, Value::SingleQuotedString(_)))
}

fn coerce_literal(e: Expr, kind: &str) -> Expr {
    if is_string_literal(&e) {
        cast_to(e, kind, true)
    } else {
        e
    }
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
