//! Snowflake function spellings and semantics, mapped onto SQLite and the
//! sandbox's `sbx_*` functions (see [`super::functions`]).

use super::{
    DialectError, Env, Ty, call, cast_to, fname, is_distinct, lit, null, num, order_by_of,
    part_text, positional, renamed, shared_function,
};
use crate::result::Platform;
use sqlparser::ast::{Expr, Function, FunctionArgumentClause, FunctionArguments};

/// The SQLite expression for a Snowflake function call (None: leave it as is).
pub(crate) fn function(
    f: &Function,
    types: &[Option<Ty>],
    _env: &Env,
) -> Result<Option<Expr>, DialectError> {
    let name = fname(f);
    let args = positional(f);
    if let Some(e) = shared_function(Platform::Snowflake, f, &args, types)? {
        return Ok(Some(e));
    }
    let a = |i: usize| args.get(i).cloned().unwrap_or_else(null);
    let part = |i: usize| -> Result<Expr, DialectError> {
        args.get(i)
            .and_then(part_text)
            .map(|p| lit(&p))
            .ok_or_else(|| {
                DialectError::Invalid(format!("{} needs a date part", name.to_uppercase()))
            })
    };
    let out = match name.as_str() {
        "date_trunc" => call("sbx_date_trunc", vec![part(0)?, a(1)]),
        // TRUNC(date, 'MONTH') truncates a date; TRUNC(number[, scale]) a number.
        "trunc" | "truncate" => {
            let temporal = matches!(types.first(), Some(Some(Ty::Date | Ty::Ntz | Ty::Tz)));
            if temporal {
                call("sbx_date_trunc", vec![part(1)?, a(0)])
            } else {
                call(
                    "sbx_trunc_num",
                    vec![a(0), args.get(1).cloned().unwrap_or_else(|| num(0))],
                )
            }
        }
        "dateadd" | "timeadd" | "timestampadd" => call("sbx_dateadd", vec![part(0)?, a(1), a(2)]),
        "add_months" => call("sbx_dateadd", vec![lit("month"), a(1), a(0)]),
        // DATEDIFF counts the part boundaries crossed
        // (docs.snowflake.com/en/sql-reference/functions/datediff).
        "datediff" | "timediff" | "timestampdiff" => {
            call("sbx_datediff", vec![part(0)?, a(1), a(2)])
        }
        "year" | "month" | "day" | "dayofmonth" | "dayofweek" | "dayofweekiso" | "dayofyear"
        | "quarter" | "week" | "weekofyear" | "weekiso" | "hour" | "minute" | "second"
        | "yearofweek" | "yearofweekiso" => call("sbx_extract", vec![lit(&name), a(0)]),
        "date_part" => call("sbx_extract", vec![part(0)?, a(1)]),
        "monthname" => call("sbx_format", vec![a(0), lit("MON"), lit("sf")]),
        "dayname" => call("sbx_format", vec![a(0), lit("DY"), lit("sf")]),
        "to_char" | "to_varchar" => {
            let temporal = matches!(types.first(), Some(Some(Ty::Date | Ty::Ntz | Ty::Tz)));
            if args.len() > 1 && temporal {
                call("sbx_format", vec![a(0), a(1), lit("sf")])
            } else if matches!(types.first(), Some(Some(Ty::Ntz | Ty::Tz))) {
                cast_to(a(0), "ts_text_sf", true)
            } else if matches!(types.first(), Some(Some(Ty::Bool))) {
                cast_to(a(0), "bool_text", true)
            } else {
                cast_to(a(0), "text", true)
            }
        }
        "to_date" | "date" => cast_to(a(0), "date", true),
        "try_to_date" => cast_to(a(0), "date", false),
        "to_timestamp" | "to_timestamp_ntz" => cast_to(a(0), "ntz", true),
        "try_to_timestamp" | "try_to_timestamp_ntz" => cast_to(a(0), "ntz", false),
        "to_timestamp_ltz" | "to_timestamp_tz" => cast_to(a(0), "tz", true),
        "to_number" | "to_decimal" | "to_numeric" | "try_to_number" | "try_to_decimal"
        | "try_to_numeric" => {
            let scale = args
                .get(if args.len() >= 4 { 3 } else { 2 })
                .and_then(|s| s.to_string().parse::<u32>().ok())
                .filter(|_| args.len() >= 3)
                .unwrap_or(0);
            cast_to(a(0), &format!("dec:{scale}"), !name.starts_with("try_"))
        }
        "to_double" => cast_to(a(0), "real", true),
        "try_to_double" => cast_to(a(0), "real", false),
        "to_boolean" => cast_to(a(0), "bool", true),
        "try_to_boolean" => cast_to(a(0), "bool", false),
        "split_part" => call("sbx_split_part", vec![a(0), a(1), a(2), lit("sf")]),
        "split" => call("sbx_split", vec![a(0), a(1), lit("sf")]),
        "strtok" => call(
            "sbx_split_part",
            vec![
                a(0),
                args.get(1).cloned().unwrap_or_else(|| lit(" ")),
                args.get(2).cloned().unwrap_or_else(|| num(1)),
                lit("sf"),
            ],
        ),
        // REGEXP_LIKE / RLIKE match the whole subject (the pattern is implicitly anchored).
        "regexp_like" | "rlike" => call(
            "sbx_regexp_like",
            vec![
                a(0),
                a(1),
                args.get(2).cloned().unwrap_or_else(|| lit("")),
                num(1),
            ],
        ),
        "regexp_substr" => call(
            "sbx_regexp_substr",
            vec![
                a(0),
                a(1),
                args.get(2).cloned().unwrap_or_else(|| num(1)),
                args.get(3).cloned().unwrap_or_else(|| num(1)),
                args.get(4).cloned().unwrap_or_else(|| lit("c")),
                args.get(5).cloned().unwrap_or_else(|| num(0)),
            ],
        ),
        "regexp_replace" => call(
            "sbx_regexp_replace",
            vec![
                a(0),
                a(1),
                args.get(2).cloned().unwrap_or_else(|| lit("")),
                args.get(3).cloned().unwrap_or_else(|| num(1)),
                args.get(4).cloned().unwrap_or_else(|| num(0)),
                args.get(5).cloned().unwrap_or_else(|| lit("c")),
            ],
        ),
        "concat_ws" => call("sbx_concat_ws", args.clone()),
        "initcap" => call("sbx_initcap", vec![a(0)]),
        "charindex" => call(
            "sbx_position",
            vec![a(0), a(1), args.get(2).cloned().unwrap_or_else(|| num(1))],
        ),
        "position" => call(
            "sbx_position",
            vec![a(0), a(1), args.get(2).cloned().unwrap_or_else(|| num(1))],
        ),
        "div0" => call(
            "sbx_div_or",
            vec![a(0), a(1), num(0), num(div_scale(types))],
        ),
        "div0null" => call(
            "sbx_div_or",
            vec![
                a(0),
                call("coalesce", vec![a(1), num(0)]),
                num(0),
                num(div_scale(types)),
            ],
        ),
        "round" if args.len() > 2 => call("sbx_bround", vec![a(0), a(1)]),
        "log" => call("sbx_log", vec![a(0), a(1)]),
        "greatest" => call("max", args.clone()),
        "least" => call("min", args.clone()),
        // LISTAGG([DISTINCT] x [, delimiter]) [WITHIN GROUP (ORDER BY ..)]; the default
        // delimiter is the empty string.
        "listagg" | "string_agg" => {
            let delim = args.get(1).cloned().unwrap_or_else(|| lit(""));
            if is_distinct(f) {
                let agg = renamed(f, "sbx_array_agg", vec![cast_to(a(0), "text", true)]);
                call("sbx_array_join", vec![agg, delim, null()])
            } else {
                let mut g = renamed(f, "group_concat", vec![cast_to(a(0), "text", true), delim]);
                keep_order(&mut g, f);
                g
            }
        }
        "array_agg" | "arrayagg" => {
            let mut g = renamed(f, "sbx_array_agg", vec![a(0)]);
            keep_order(&mut g, f);
            g
        }
        "approx_percentile" => renamed(f, "sbx_percentile_cont", vec![a(0), a(1)]),
        "parse_json" => call("sbx_parse_json", vec![a(0), num(1)]),
        "try_parse_json" => call("sbx_parse_json", vec![a(0), num(0)]),
        "to_variant" => call("sbx_to_variant", vec![a(0)]),
        "object_construct" => call("sbx_object", args.clone()),
        "object_construct_keep_null" => call("sbx_struct", args.clone()),
        "array_construct" => call("sbx_array", args.clone()),
        "get" => call("sbx_get", vec![a(0), a(1)]),
        "get_path" => {
            let path = match args.get(1).and_then(part_text) {
                Some(p) => p,
                None => {
                    return Err(DialectError::Unsupported(
                        "GET_PATH with a computed path".into(),
                    ));
                }
            };
            let mut out = a(0);
            for step in path.split('.') {
                out = call("sbx_get", vec![out, lit(step)]);
            }
            out
        }
        "array_to_string" => call("sbx_array_join", vec![a(0), a(1), lit("")]),
        "object_keys" => call("sbx_map_keys", vec![a(0)]),
        "typeof" => call("sbx_typeof", vec![a(0)]),
        "is_null_value" => Expr::IsNull(Box::new(a(0))),
        _ => return Ok(None),
    };
    Ok(Some(out))
}

/// Scale of a Snowflake division of the given operand types (-1: floating point).
fn div_scale(types: &[Option<Ty>]) -> i64 {
    match super::types::divide_type(
        Platform::Snowflake,
        types.first().and_then(Option::as_ref),
        types.get(1).and_then(Option::as_ref),
    ) {
        Ty::Fixed(_, s) => i64::from(s),
        _ => -1,
    }
}

/// Carry a WITHIN GROUP / in-call ORDER BY over to the SQLite aggregate.
pub(crate) fn keep_order(g: &mut Expr, f: &Function) {
    let order = order_by_of(f);
    if order.is_empty() {
        return;
    }
    if let Expr::Function(g) = g
        && let FunctionArguments::List(l) = &mut g.args
    {
        l.clauses
            .retain(|c| !matches!(c, FunctionArgumentClause::OrderBy(_)));
        l.clauses.push(FunctionArgumentClause::OrderBy(order));
    }
}
