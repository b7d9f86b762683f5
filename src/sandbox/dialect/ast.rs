//! Small sqlparser AST helpers shared by the dialect tables and the
//! translator: reading a call's name and arguments, building calls,
//! literals, CASE and casts, and recognising aggregates.

use super::Ty;
use sqlparser::ast::{
    BinaryOperator, DuplicateTreatment, Expr, Function, FunctionArg, FunctionArgExpr,
    FunctionArgumentClause, FunctionArgumentList, FunctionArguments, Ident, ObjectName,
    ObjectNamePart, OrderByExpr, Value,
};
use std::ops::ControlFlow;

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
pub(super) fn is_aggregate_name(name: &str) -> bool {
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

pub(super) fn has_aggregate(e: &Expr) -> bool {
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

pub(super) fn negate(negated: bool, e: Expr) -> Expr {
    if negated {
        Expr::UnaryOp {
            op: sqlparser::ast::UnaryOperator::Not,
            expr: Box::new(nested(e)),
        }
    } else {
        e
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

pub(super) fn temporal_kind(t: Option<&Ty>) -> Option<&'static str> {
    match t {
        Some(Ty::Date) => Some("date"),
        Some(Ty::Ntz) => Some("ntz"),
        Some(Ty::Tz) => Some("tz"),
        _ => None,
    }
}

pub(super) fn is_string_literal(e: &Expr) -> bool {
    matches!(e, Expr::Value(v) if matches!(v.value, Value::SingleQuotedString(_)))
}

pub(super) fn coerce_literal(e: Expr, kind: &str) -> Expr {
    if is_string_literal(&e) {
        cast_to(e, kind, true)
    } else {
        e
    }
}
