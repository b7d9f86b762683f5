//! Scalar rewrites both platforms share: casts with each platform's
//! conversion rules, binary operators on dates, timestamps and intervals, and
//! the function table common to Snowflake and Databricks.

use super::{
    DialectError, Ty, binop, call, case_when, cast_to, coerce_literal, fname, is_string_literal,
    lit, nested, null, num, order_by_of, part_text, renamed, temporal_kind, types,
};
use crate::result::Platform;
use sqlparser::ast::{
    BinaryOperator, DataType, DuplicateTreatment, Expr, Function, FunctionArg, FunctionArgExpr,
    FunctionArgumentList, FunctionArguments, Ident, ObjectName, Value,
};

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
pub(super) fn binary(
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
pub(super) fn interval_parts(iv: &sqlparser::ast::Interval) -> Result<(i64, String), DialectError> {
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
