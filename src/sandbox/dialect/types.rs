//! Result-type inference for translated queries: the platform type of an
//! expression (column types from the fixture, function result types as the
//! vendors document them), rendered in the platform's spelling so
//! [`crate::sandbox::types`] reports it in `rowType` / `manifest.schema`.

use super::{Env, fname, positional};
use crate::result::Platform;
use sqlparser::ast::{BinaryOperator, Expr, UnaryOperator, Value};

/// A platform-neutral type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ty {
    /// Snowflake NUMBER(p,s) / Databricks DECIMAL(p,s).
    Fixed(u32, u32),
    /// Databricks INT (and SMALLINT/TINYINT).
    Int,
    /// Databricks BIGINT.
    BigInt,
    Real,
    Text,
    Bool,
    Date,
    Ntz,
    Tz,
    Variant,
    Object,
    Array(Option<Box<Ty>>),
    Map(Box<Ty>, Box<Ty>),
    Struct(Vec<(String, Ty)>),
}

impl Ty {
    fn is_numeric(&self) -> bool {
        matches!(self, Ty::Fixed(..) | Ty::Int | Ty::BigInt | Ty::Real)
    }

    /// (precision, scale) of an exact numeric type.
    fn exact(&self) -> Option<(u32, u32)> {
        match self {
            Ty::Fixed(p, s) => Some((*p, *s)),
            Ty::Int => Some((10, 0)),
            Ty::BigInt => Some((20, 0)),
            _ => None,
        }
    }
}

/// Split `a, b<c, d>, e` at top-level commas.
fn split_top(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut cur = String::new();
    for c in s.chars() {
        match c {
            '<' | '(' => depth += 1,
            '>' | ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(cur.trim().to_string());
                cur.clear();
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

/// A declared (fixture or cast target) type in the platform's spelling.
pub(crate) fn parse_declared(platform: Platform, declared: &str) -> Option<Ty> {
    let d = declared.trim();
    let upper = d.to_ascii_uppercase();
    let inner = |prefix: &str| {
        let rest = d[prefix.len()..].trim_start();
        rest.strip_prefix('<')
            .and_then(|r| r.strip_suffix('>'))
            .map(str::to_string)
    };
    if upper.starts_with("ARRAY") {
        if let Some(i) = inner("ARRAY") {
            return Some(Ty::Array(parse_declared(platform, &i).map(Box::new)));
        }
        return Some(Ty::Array(None));
    }
    if upper.starts_with("MAP") {
        let parts = inner("MAP").map(|i| split_top(&i)).unwrap_or_default();
        let k = parts
            .first()
            .and_then(|k| parse_declared(platform, k))
            .unwrap_or(Ty::Text);
        let v = parts
            .get(1)
            .and_then(|v| parse_declared(platform, v))
            .unwrap_or(Ty::Text);
        return Some(Ty::Map(Box::new(k), Box::new(v)));
    }
    if upper.starts_with("STRUCT") {
        let fields = inner("STRUCT")
            .map(|i| split_top(&i))
            .unwrap_or_default()
            .into_iter()
            .filter_map(|f| {
                let (n, t) = f.split_once(':').or_else(|| f.split_once(' '))?;
                Some((
                    n.trim().trim_matches('`').to_string(),
                    parse_declared(platform, t.trim()).unwrap_or(Ty::Text),
                ))
            })
            .collect();
        return Some(Ty::Struct(fields));
    }
    let (base, args) = match upper.split_once('(') {
        Some((b, rest)) => (
            b.trim().to_string(),
            rest.trim_end_matches(')')
                .split(',')
                .filter_map(|a| a.trim().parse::<u32>().ok())
                .collect::<Vec<_>>(),
        ),
        None => (upper.clone(), vec![]),
    };
    let sf = platform == Platform::Snowflake;
    Some(match base.as_str() {
        "NUMBER" | "DECIMAL" | "NUMERIC" | "DEC" => Ty::Fixed(
            args.first().copied().unwrap_or(if sf { 38 } else { 10 }),
            args.get(1).copied().unwrap_or(0),
        ),
        "INT" | "INTEGER" | "SMALLINT" | "TINYINT" | "BYTEINT" | "SHORT" | "BYTE" if !sf => Ty::Int,
        "BIGINT" | "LONG" if !sf => Ty::BigInt,
        "INT" | "INTEGER" | "BIGINT" | "SMALLINT" | "TINYINT" | "BYTEINT" => Ty::Fixed(38, 0),
        "FLOAT" | "FLOAT4" | "FLOAT8" | "DOUBLE" | "DOUBLE PRECISION" | "REAL" => Ty::Real,
        "VARCHAR" | "STRING" | "TEXT" | "CHAR" | "CHARACTER" | "NVARCHAR" | "NCHAR"
        | "CHARACTER VARYING" | "CHAR VARYING" => Ty::Text,
        "BOOLEAN" | "BOOL" => Ty::Bool,
        "DATE" => Ty::Date,
        "TIMESTAMP" if !sf => Ty::Tz,
        "TIMESTAMP_LTZ" if !sf => Ty::Tz,
        "TIMESTAMP"
        | "DATETIME"
        | "TIMESTAMP_NTZ"
        | "TIMESTAMPNTZ"
        | "TIMESTAMP WITHOUT TIME ZONE" => Ty::Ntz,
        "TIMESTAMP_LTZ"
        | "TIMESTAMP_TZ"
        | "TIMESTAMPLTZ"
        | "TIMESTAMPTZ"
        | "TIMESTAMP WITH TIME ZONE"
        | "TIMESTAMP WITH LOCAL TIME ZONE" => Ty::Tz,
        "VARIANT" => Ty::Variant,
        "OBJECT" => Ty::Object,
        _ => return None,
    })
}

/// The type in the platform's spelling (what `types.rs` parses back).
pub(crate) fn render(platform: Platform, t: &Ty) -> String {
    match platform {
        Platform::Snowflake => match t {
            Ty::Fixed(p, s) => format!("NUMBER({},{})", (*p).clamp(1, 38), s),
            Ty::Int | Ty::BigInt => "NUMBER(38,0)".into(),
            Ty::Real => "FLOAT".into(),
            Ty::Text => "TEXT".into(),
            Ty::Bool => "BOOLEAN".into(),
            Ty::Date => "DATE".into(),
            Ty::Ntz => "TIMESTAMP_NTZ".into(),
            Ty::Tz => "TIMESTAMP_LTZ".into(),
            Ty::Variant => "VARIANT".into(),
            Ty::Object | Ty::Map(..) | Ty::Struct(_) => "OBJECT".into(),
            Ty::Array(_) => "ARRAY".into(),
        },
        Platform::Databricks => match t {
            Ty::Fixed(p, s) => format!("DECIMAL({},{})", (*p).clamp(1, 38), s),
            Ty::Int => "INT".into(),
            Ty::BigInt => "BIGINT".into(),
            Ty::Real => "DOUBLE".into(),
            Ty::Text => "STRING".into(),
            Ty::Bool => "BOOLEAN".into(),
            Ty::Date => "DATE".into(),
            Ty::Ntz => "TIMESTAMP_NTZ".into(),
            Ty::Tz => "TIMESTAMP".into(),
            Ty::Variant => "VARIANT".into(),
            Ty::Object => "MAP<STRING, STRING>".into(),
            Ty::Array(e) => format!(
                "ARRAY<{}>",
                e.as_deref()
                    .map_or_else(|| "STRING".to_string(), |e| render(platform, e))
            ),
            Ty::Map(k, v) => format!("MAP<{}, {}>", render(platform, k), render(platform, v)),
            Ty::Struct(fields) => format!(
                "STRUCT<{}>",
                fields
                    .iter()
                    .map(|(n, t)| format!("{n}: {}", render(platform, t)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        },
    }
}

/// `/`: Snowflake keeps decimals with scale max(s1, min(s1 + 6, 12)); Spark divides
/// integers as DOUBLE and decimals as DECIMAL with scale max(6, s1 + p2 + 1).
pub(crate) fn divide_type(platform: Platform, l: Option<&Ty>, r: Option<&Ty>) -> Ty {
    let unknown_exact = match platform {
        Platform::Snowflake => Ty::Fixed(38, 0),
        Platform::Databricks => Ty::Int,
    };
    let l = l.cloned().unwrap_or_else(|| unknown_exact.clone());
    let r = r.cloned().unwrap_or(unknown_exact);
    match platform {
        Platform::Snowflake => match (l.exact(), r.exact()) {
            (Some((_, s1)), Some(_)) => Ty::Fixed(38, s1.max((s1 + 6).min(12))),
            _ => Ty::Real,
        },
        Platform::Databricks => match (&l, &r) {
            (Ty::Fixed(p1, s1), _) | (_, Ty::Fixed(p1, s1))
                if l.exact().is_some() && r.exact().is_some() =>
            {
                let (p1, s1) = if matches!(l, Ty::Fixed(..)) {
                    (*p1, *s1)
                } else {
                    l.exact().unwrap_or((10, 0))
                };
                let (p2, s2) = r.exact().unwrap_or((10, 0));
                let mut scale = 6.max(s1 + p2 + 1);
                let mut precision = p1 - s1 + s2 + scale;
                if precision > 38 {
                    let int_digits = precision - scale;
                    scale = (38u32.saturating_sub(int_digits)).max(scale.min(6));
                    precision = 38;
                }
                Ty::Fixed(precision, scale)
            }
            _ => Ty::Real,
        },
    }
}

fn arith(platform: Platform, op: &BinaryOperator, l: Option<Ty>, r: Option<Ty>) -> Option<Ty> {
    let (l, r) = (l?, r?);
    if !l.is_numeric() || !r.is_numeric() {
        if matches!(op, BinaryOperator::Plus | BinaryOperator::Minus)
            && matches!(l, Ty::Date | Ty::Ntz | Ty::Tz)
        {
            return if matches!(r, Ty::Date | Ty::Ntz | Ty::Tz) {
                Some(match platform {
                    Platform::Snowflake => Ty::Fixed(38, 0),
                    Platform::Databricks => Ty::Int,
                })
            } else {
                Some(l)
            };
        }
        return None;
    }
    if matches!(l, Ty::Real) || matches!(r, Ty::Real) {
        return Some(Ty::Real);
    }
    let (p1, s1) = l.exact()?;
    let (p2, s2) = r.exact()?;
    Some(match op {
        BinaryOperator::Plus | BinaryOperator::Minus => {
            if platform == Platform::Databricks
                && s1 == 0
                && s2 == 0
                && !matches!(l, Ty::Fixed(..))
                && !matches!(r, Ty::Fixed(..))
            {
                return Some(if matches!(l, Ty::BigInt) || matches!(r, Ty::BigInt) {
                    Ty::BigInt
                } else {
                    Ty::Int
                });
            }
            let s = s1.max(s2);
            Ty::Fixed(((p1 - s1).max(p2 - s2) + s + 1).min(38), s)
        }
        BinaryOperator::Multiply => {
            if platform == Platform::Databricks
                && !matches!(l, Ty::Fixed(..))
                && !matches!(r, Ty::Fixed(..))
            {
                return Some(if matches!(l, Ty::BigInt) || matches!(r, Ty::BigInt) {
                    Ty::BigInt
                } else {
                    Ty::Int
                });
            }
            let s = match platform {
                Platform::Snowflake => (s1 + s2).min(s1.max(s2).max(12)),
                Platform::Databricks => s1 + s2,
            };
            Ty::Fixed((p1 + p2 + 1).min(38), s.min(38))
        }
        BinaryOperator::Divide => divide_type(platform, Some(&l), Some(&r)),
        BinaryOperator::Modulo => {
            if platform == Platform::Databricks && !matches!(l, Ty::Fixed(..)) {
                return Some(l);
            }
            Ty::Fixed(p1.max(p2), s1.max(s2))
        }
        _ => return None,
    })
}

fn count_type(platform: Platform) -> Ty {
    match platform {
        Platform::Snowflake => Ty::Fixed(18, 0),
        Platform::Databricks => Ty::BigInt,
    }
}

fn int_type(platform: Platform) -> Ty {
    match platform {
        Platform::Snowflake => Ty::Fixed(38, 0),
        Platform::Databricks => Ty::Int,
    }
}

/// The type of an expression on the platform (before translation).
pub(crate) fn infer(platform: Platform, expr: &Expr, env: &Env) -> Option<Ty> {
    let sf = platform == Platform::Snowflake;
    let t = |e: &Expr| infer(platform, e, env);
    match expr {
        Expr::Identifier(id) => env.lookup(None, &id.value),
        Expr::CompoundIdentifier(parts) => {
            let n = parts.len();
            if n >= 2 && env.is_qualifier(&parts[n - 2].value) {
                return env.lookup(Some(&parts[n - 2].value), &parts[n - 1].value);
            }
            // col.field on a STRUCT (Databricks).
            let (base, rest) = if env.is_qualifier(&parts[0].value) && n >= 3 {
                (
                    env.lookup(Some(&parts[0].value), &parts[1].value),
                    &parts[2..],
                )
            } else {
                (env.lookup(None, &parts[0].value), &parts[1..])
            };
            let mut cur = base?;
            for p in rest {
                cur = field_type(&cur, &p.value)?;
            }
            Some(cur)
        }
        Expr::Nested(e) => t(e),
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => {
                if let Some((_, frac)) = n.split_once('.') {
                    let s = frac.len() as u32;
                    let p = (n.trim_start_matches('-').len() as u32 - 1).max(s);
                    Some(if sf {
                        Ty::Fixed(38, s)
                    } else {
                        Ty::Fixed(p.max(1), s)
                    })
                } else if n.contains(['e', 'E']) {
                    Some(Ty::Real)
                } else if sf {
                    Some(Ty::Fixed(38, 0))
                } else if n.parse::<i32>().is_ok() {
                    Some(Ty::Int)
                } else {
                    Some(Ty::BigInt)
                }
            }
            Value::SingleQuotedString(_) | Value::DoubleQuotedString(_) => Some(Ty::Text),
            Value::Boolean(_) => Some(Ty::Bool),
            _ => None,
        },
        Expr::TypedString(ts) => parse_declared(platform, &ts.data_type.to_string()),
        Expr::Cast { data_type, .. } => parse_declared(platform, &data_type.to_string()),
        Expr::BinaryOp { left, op, right } => match op {
            BinaryOperator::Eq
            | BinaryOperator::NotEq
            | BinaryOperator::Lt
            | BinaryOperator::LtEq
            | BinaryOperator::Gt
            | BinaryOperator::GtEq
            | BinaryOperator::And
            | BinaryOperator::Or
            | BinaryOperator::Spaceship => Some(Ty::Bool),
            BinaryOperator::StringConcat => Some(Ty::Text),
            BinaryOperator::Plus if matches!(right.as_ref(), Expr::Interval(_)) => t(left),
            BinaryOperator::Minus if matches!(right.as_ref(), Expr::Interval(_)) => t(left),
            BinaryOperator::MyIntegerDivide | BinaryOperator::DuckIntegerDivide => Some(Ty::BigInt),
            _ => arith(platform, op, t(left), t(right)),
        },
        Expr::UnaryOp { op, expr } => match op {
            UnaryOperator::Not => Some(Ty::Bool),
            _ => t(expr),
        },
        Expr::IsNull(_)
        | Expr::IsNotNull(_)
        | Expr::IsTrue(_)
        | Expr::IsFalse(_)
        | Expr::IsNotTrue(_)
        | Expr::IsNotFalse(_)
        | Expr::IsDistinctFrom(..)
        | Expr::IsNotDistinctFrom(..)
        | Expr::In { .. }
        | Expr::Between { .. }
        | Expr::Like { .. }
        | Expr::ILike { .. }
        | Expr::RLike { .. }
        | Expr::Exists { .. } => Some(Ty::Bool),
        Expr::Case {
            conditions,
            else_result,
            ..
        } => conditions
            .iter()
            .find_map(|c| t(&c.result))
            .or_else(|| else_result.as_deref().and_then(t)),
        Expr::Extract { .. } => Some(int_type(platform)),
        Expr::Substring { .. } | Expr::Trim { .. } => Some(Ty::Text),
        Expr::Position { .. } => Some(int_type(platform)),
        Expr::Ceil { expr, .. } | Expr::Floor { expr, .. } => match t(expr) {
            Some(Ty::Real) => Some(Ty::Real),
            Some(Ty::Fixed(p, _)) => Some(Ty::Fixed(p, 0)),
            other => other,
        },
        Expr::JsonAccess { .. } => Some(if sf { Ty::Variant } else { Ty::Text }),
        Expr::CompoundFieldAccess { root, access_chain } => {
            let mut cur = t(root)?;
            for a in access_chain {
                cur = match a {
                    sqlparser::ast::AccessExpr::Dot(Expr::Identifier(id)) => {
                        field_type(&cur, &id.value)?
                    }
                    sqlparser::ast::AccessExpr::Subscript(sqlparser::ast::Subscript::Index {
                        index,
                    }) => match (&cur, index) {
                        (Ty::Array(e), _) => e.as_deref().cloned().unwrap_or(Ty::Variant),
                        (Ty::Map(_, v), _) => (**v).clone(),
                        (Ty::Struct(_), Expr::Value(v)) => match &v.value {
                            Value::SingleQuotedString(k) => field_type(&cur, k)?,
                            _ => return None,
                        },
                        (Ty::Variant | Ty::Object, _) => Ty::Variant,
                        _ => return None,
                    },
                    _ => return None,
                };
            }
            Some(cur)
        }
        Expr::Function(f) => function_type(platform, f, env),
        Expr::Struct { values, .. } => Some(Ty::Struct(
            values
                .iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Expr::Named { expr, name } => (name.value.clone(), t(expr).unwrap_or(Ty::Text)),
                    Expr::Identifier(id) => (id.value.clone(), t(v).unwrap_or(Ty::Text)),
                    Expr::CompoundIdentifier(p) => (
                        p.last().map(|p| p.value.clone()).unwrap_or_default(),
                        t(v).unwrap_or(Ty::Text),
                    ),
                    other => (format!("col{}", i + 1), t(other).unwrap_or(Ty::Text)),
                })
                .collect(),
        )),
        Expr::Subquery(q) => {
            let cols = super::projection_columns(platform, q, env);
            cols.into_iter().next().and_then(|(_, t)| t)
        }
        _ => None,
    }
}

fn field_type(t: &Ty, field: &str) -> Option<Ty> {
    match t {
        Ty::Struct(fields) => fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(field))
            .map(|(_, t)| t.clone()),
        Ty::Map(_, v) => Some((**v).clone()),
        Ty::Variant | Ty::Object => Some(Ty::Variant),
        _ => None,
    }
}

fn function_type(platform: Platform, f: &sqlparser::ast::Function, env: &Env) -> Option<Ty> {
    let sf = platform == Platform::Snowflake;
    let name = fname(f);
    let args = positional(f);
    let arg = |i: usize| args.get(i).and_then(|a| infer(platform, a, env));
    let within = || {
        f.within_group
            .first()
            .and_then(|o| infer(platform, &o.expr, env))
    };
    let boolean = Some(Ty::Bool);
    Some(match name.as_str() {
        // Aggregates.
        "count" | "count_if" | "approx_count_distinct" | "hll" => count_type(platform),
        "sum" => match arg(0)? {
            Ty::Fixed(p, s) if sf => {
                let _ = p;
                Ty::Fixed(38, s)
            }
            Ty::Fixed(p, s) => Ty::Fixed((p + 10).min(38), s),
            Ty::Int | Ty::BigInt => Ty::BigInt,
            other => other,
        },
        "avg" | "mean" => match arg(0)? {
            Ty::Fixed(_, s) if sf => Ty::Fixed(38, s.max((s + 6).min(12))),
            Ty::Fixed(p, s) => Ty::Fixed((p + 4).min(38), (s + 4).min(38)),
            _ => Ty::Real,
        },
        "min" | "max" | "any_value" | "first" | "last" | "first_value" | "last_value" | "lag"
        | "lead" | "nth_value" | "mode" | "max_by" | "min_by" | "arg_max" | "arg_min" => arg(0)?,
        "median" if sf => match arg(0)? {
            Ty::Fixed(p, s) => Ty::Fixed((p + 3).min(38), s + 3),
            _ => Ty::Real,
        },
        "median" | "percentile" | "stddev" | "stddev_samp" | "stddev_pop" | "std" | "variance"
        | "var_samp" | "var_pop" | "corr" | "covar_samp" | "covar_pop" => Ty::Real,
        "percentile_cont" if sf => match within()? {
            Ty::Fixed(p, s) => Ty::Fixed((p + 3).min(38), s + 3),
            _ => Ty::Real,
        },
        "percentile_cont" => Ty::Real,
        "percentile_disc" => within()?,
        "percentile_approx" | "approx_percentile" if !sf => arg(0)?,
        "approx_percentile" => Ty::Real,
        "listagg" | "string_agg" | "group_concat" | "array_join" | "array_to_string" => Ty::Text,
        "array_agg" | "collect_list" | "collect_set" | "arrayagg" => {
            Ty::Array(arg(0).map(Box::new))
        }
        "booland_agg" | "boolor_agg" | "bool_and" | "bool_or" | "every" | "some" => Ty::Bool,
        "row_number" | "rank" | "dense_rank" | "ntile" => {
            if sf {
                Ty::Fixed(38, 0)
            } else {
                Ty::Int
            }
        }
        "percent_rank" | "cume_dist" => Ty::Real,
        // Dates and times.
        "date_trunc" if sf => arg(1)?,
        "date_trunc" => Ty::Tz,
        "trunc" | "truncate" if sf => match arg(0)? {
            t @ (Ty::Date | Ty::Ntz | Ty::Tz) => t,
            Ty::Fixed(p, _) if args.len() < 2 => Ty::Fixed(p, 0),
            other => other,
        },
        "trunc" => Ty::Date,
        "dateadd" | "timeadd" | "timestampadd" | "date_add" if args.len() == 3 => {
            let unit = super::part_text(&args[0]).unwrap_or_default();
            let dayish = matches!(
                unit.trim_end_matches('s'),
                "year"
                    | "quarter"
                    | "month"
                    | "week"
                    | "day"
                    | "y"
                    | "yy"
                    | "yyyy"
                    | "mm"
                    | "mon"
                    | "d"
                    | "dd"
                    | "q"
                    | "w"
                    | "wk"
            );
            match arg(2)? {
                Ty::Date if sf && !dayish => Ty::Ntz,
                Ty::Date if !sf => Ty::Tz,
                other => other,
            }
        }
        "date_add" | "date_sub" | "add_months" | "next_day" => {
            if sf {
                arg(0)?
            } else {
                Ty::Date
            }
        }
        "datediff" | "timediff" | "timestampdiff" | "date_diff" => {
            if sf || args.len() == 3 {
                if sf { Ty::Fixed(38, 0) } else { Ty::BigInt }
            } else {
                Ty::Int
            }
        }
        "year" | "month" | "day" | "dayofmonth" | "dayofweek" | "dayofweekiso" | "dayofyear"
        | "quarter" | "week" | "weekofyear" | "weekiso" | "hour" | "minute" | "second"
        | "yearofweek" | "weekday" | "date_part" => int_type(platform),
        "to_char" | "to_varchar" | "date_format" | "monthname" | "dayname" => Ty::Text,
        "to_date" | "try_to_date" | "date" | "last_day" | "current_date" | "curdate"
        | "date_from_parts" | "make_date" => Ty::Date,
        "from_unixtime" | "format_number" | "substring_index" => Ty::Text,
        "to_timestamp" | "to_timestamp_ntz" | "try_to_timestamp" | "try_to_timestamp_ntz" if sf => {
            Ty::Ntz
        }
        "to_timestamp_ltz" | "to_timestamp_tz" | "current_timestamp" | "now" | "getdate"
        | "localtimestamp" | "to_timestamp" | "systimestamp" => Ty::Tz,
        "sysdate" => Ty::Ntz,
        "months_between" => {
            if sf {
                Ty::Fixed(38, 6)
            } else {
                Ty::Real
            }
        }
        "unix_timestamp" => Ty::BigInt,
        // Conditionals.
        "iff" | "if" => arg(1).or_else(|| arg(2))?,
        "nvl" | "ifnull" | "coalesce" | "nullif" | "zeroifnull" | "nullifzero" => {
            (0..args.len()).find_map(arg)?
        }
        "nvl2" => arg(1).or_else(|| arg(2))?,
        "decode" => (2..args.len()).step_by(2).find_map(arg)?,
        "equal_null" => Ty::Bool,
        "greatest" | "least" => (0..args.len()).find_map(arg)?,
        // Numbers.
        // Spark: round(DECIMAL(p,s), d) is DECIMAL(p - s + d + 1, d) for d < s.
        "round" | "bround" => match arg(0)? {
            Ty::Fixed(p, s) => {
                let d = args
                    .get(1)
                    .and_then(|d| d.to_string().parse::<u32>().ok())
                    .unwrap_or(0);
                if sf || d >= s {
                    Ty::Fixed(p, s.min(d))
                } else {
                    Ty::Fixed((p - s + d + 1).min(38), d)
                }
            }
            other => other,
        },
        "abs" | "sign" | "negative" | "positive" => arg(0)?,
        "mod" => arith(platform, &BinaryOperator::Modulo, arg(0), arg(1))?,
        "sqrt" | "ln" | "log" | "log10" | "log2" | "exp" | "power" | "pow" | "random" | "rand"
        | "cbrt" | "try_divide" => Ty::Real,
        "div0" | "div0null" => divide_type(platform, arg(0).as_ref(), arg(1).as_ref()),
        "to_number" | "to_decimal" | "to_numeric" | "try_to_number" | "try_to_decimal" => {
            let p = args
                .get(2)
                .and_then(|a| a.to_string().parse().ok())
                .unwrap_or(38);
            let s = args
                .get(3)
                .and_then(|a| a.to_string().parse().ok())
                .unwrap_or(0);
            Ty::Fixed(p, s)
        }
        "to_double" | "try_to_double" | "double" => Ty::Real,
        "to_boolean" | "try_to_boolean" | "is_account_group_member" | "is_member" => Ty::Bool,
        // Strings.
        "split_part" | "initcap" | "concat" | "concat_ws" | "upper" | "lower" | "ucase"
        | "lcase" | "lpad" | "rpad" | "reverse" | "repeat" | "left" | "right" | "substr"
        | "substring" | "replace" | "translate" | "trim" | "ltrim" | "rtrim" | "regexp_substr"
        | "regexp_replace" | "regexp_extract" | "get_json_object" | "to_json" | "md5" | "sha2"
        | "sha1" | "base64" | "hex" | "current_role" | "current_user" | "session_user"
        | "current_database" | "current_schema" | "current_catalog" | "current_warehouse"
        | "typeof" | "string" | "lpad_string" | "soundex" | "space" | "char" | "chr"
        | "editdistance" => {
            if matches!(name.as_str(), "editdistance") {
                int_type(platform)
            } else {
                Ty::Text
            }
        }
        "length" | "len" | "char_length" | "character_length" | "charindex" | "position"
        | "instr" | "locate" | "regexp_count" | "regexp_instr" | "ascii" | "levenshtein" => {
            int_type(platform)
        }
        "contains" | "startswith" | "endswith" | "startswith_" | "regexp_like" | "rlike"
        | "regexp" | "array_contains" | "is_null_value" | "ilike" | "like" => return boolean,
        "split" | "regexp_extract_all" => Ty::Array(Some(Box::new(Ty::Text))),
        // Semi-structured.
        "parse_json" | "try_parse_json" | "to_variant" | "get" | "get_path" => Ty::Variant,
        "object_construct" | "object_construct_keep_null" => Ty::Object,
        "array_construct" | "array_construct_compact" => Ty::Array(None),
        "array" => {
            let elem = (0..args.len()).find_map(arg);
            Ty::Array(elem.map(Box::new))
        }
        "sort_array" | "array_distinct" | "array_sort" | "array_compact" | "slice" => arg(0)?,
        "array_size" | "size" | "cardinality" => int_type(platform),
        "named_struct" => {
            let mut fields = Vec::new();
            let mut i = 0;
            while i + 1 < args.len() {
                let n = super::part_text(&args[i]).unwrap_or_else(|| args[i].to_string());
                let n = match &args[i] {
                    Expr::Value(v) => match &v.value {
                        Value::SingleQuotedString(s) => s.clone(),
                        _ => n,
                    },
                    _ => n,
                };
                fields.push((n, arg(i + 1).unwrap_or(Ty::Text)));
                i += 2;
            }
            Ty::Struct(fields)
        }
        "struct" => Ty::Struct(
            args.iter()
                .enumerate()
                .map(|(i, a)| {
                    let n = match a {
                        Expr::Identifier(id) => id.value.clone(),
                        Expr::CompoundIdentifier(p) => {
                            p.last().map(|p| p.value.clone()).unwrap_or_default()
                        }
                        _ => format!("col{}", i + 1),
                    };
                    (n, infer(platform, a, env).unwrap_or(Ty::Text))
                })
                .collect(),
        ),
        "map" => Ty::Map(
            Box::new(arg(0).unwrap_or(Ty::Text)),
            Box::new(arg(1).unwrap_or(Ty::Text)),
        ),
        "map_keys" => match arg(0)? {
            Ty::Map(k, _) => Ty::Array(Some(k)),
            _ => Ty::Array(None),
        },
        "map_values" => match arg(0)? {
            Ty::Map(_, v) => Ty::Array(Some(v)),
            _ => Ty::Array(None),
        },
        "element_at" => match arg(0)? {
            Ty::Array(e) => e.map(|e| *e)?,
            Ty::Map(_, v) => *v,
            _ => return None,
        },
        "object_keys" => Ty::Array(None),
        _ => return None,
    })
}
