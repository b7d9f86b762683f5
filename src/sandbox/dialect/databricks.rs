//! Databricks (Spark SQL) function spellings and semantics, mapped onto
//! SQLite and the sandbox's `sbx_*` functions (see [`super::functions`]).

use super::snowflake::keep_order;
use super::{
    DialectError, Env, Ty, call, cast_to, fname, lit, null, num, part_text, positional, renamed,
    shared_function,
};
use crate::result::Platform;
use sqlparser::ast::{Expr, Function};

/// The SQLite expression for a Databricks function call (None: leave it as is).
pub(crate) fn function(
    f: &Function,
    types: &[Option<Ty>],
    _env: &Env,
) -> Result<Option<Expr>, DialectError> {
    let name = fname(f);
    let args = positional(f);
    if let Some(e) = shared_function(Platform::Databricks, f, &args, types)? {
        return Ok(Some(e));
    }
    let a = |i: usize| args.get(i).cloned().unwrap_or_else(null);
    let part = |i: usize| -> Result<Expr, DialectError> {
        args.get(i)
            .and_then(part_text)
            .map(|p| lit(&p))
            .ok_or_else(|| DialectError::Invalid(format!("{name} needs a unit")))
    };
    let neg = |e: Expr| Expr::UnaryOp {
        op: sqlparser::ast::UnaryOperator::Minus,
        expr: Box::new(super::nested(e)),
    };
    let out = match name.as_str() {
        // date_trunc returns a TIMESTAMP; trunc(date, fmt) a DATE.
        "date_trunc" => cast_to(call("sbx_date_trunc", vec![part(0)?, a(1)]), "tz", true),
        "trunc" => cast_to(call("sbx_date_trunc", vec![part(1)?, a(0)]), "date", true),
        "date_add" | "dateadd" if args.len() == 3 => {
            cast_to(call("sbx_dateadd", vec![part(0)?, a(1), a(2)]), "tz", true)
        }
        "timestampadd" => cast_to(call("sbx_dateadd", vec![part(0)?, a(1), a(2)]), "tz", true),
        "date_add" | "dateadd" => call(
            "sbx_dateadd",
            vec![lit("day"), a(1), cast_to(a(0), "date", true)],
        ),
        "date_sub" => call(
            "sbx_dateadd",
            vec![lit("day"), neg(a(1)), cast_to(a(0), "date", true)],
        ),
        "add_months" => call(
            "sbx_dateadd",
            vec![lit("month"), a(1), cast_to(a(0), "date", true)],
        ),
        // datediff(end, start) counts days; datediff(unit, start, end) (= timestampdiff)
        // counts whole elapsed units.
        "datediff" | "date_diff" if args.len() == 2 => {
            call("sbx_datediff", vec![lit("day"), a(1), a(0)])
        }
        "datediff" | "date_diff" | "timestampdiff" | "timediff" => {
            call("sbx_timestampdiff", vec![part(0)?, a(1), a(2)])
        }
        "year" | "month" | "day" | "dayofmonth" | "dayofweek" | "dayofyear" | "quarter"
        | "weekofyear" | "hour" | "minute" | "second" => {
            let p = if name == "weekofyear" {
                "week"
            } else {
                name.as_str()
            };
            call("sbx_extract_spark", vec![lit(p), a(0)])
        }
        "weekday" => super::binop(
            call("sbx_extract_spark", vec![lit("dayofweekiso"), a(0)]),
            sqlparser::ast::BinaryOperator::Minus,
            num(1),
        ),
        "date_part" | "datepart" => call("sbx_extract_spark", vec![part(0)?, a(1)]),
        "date_format" => call("sbx_format", vec![a(0), a(1), lit("spark")]),
        "to_date" | "date" => cast_to(a(0), "date", true),
        "try_to_date" => cast_to(a(0), "date", false),
        "to_timestamp" | "timestamp" => cast_to(a(0), "tz", true),
        "try_to_timestamp" => cast_to(a(0), "tz", false),
        "unix_timestamp" => call("sbx_extract", vec![lit("epoch_second"), a(0)]),
        "split_part" => call("sbx_split_part", vec![a(0), a(1), a(2), lit("spark")]),
        // split(str, regex) splits on a Java regular expression.
        "split" => call("sbx_split", vec![a(0), a(1), lit("spark")]),
        "regexp_like" | "rlike" | "regexp" => {
            call("sbx_regexp_like", vec![a(0), a(1), lit(""), num(0)])
        }
        "regexp_extract" => call(
            "sbx_regexp_extract",
            vec![a(0), a(1), args.get(2).cloned().unwrap_or_else(|| num(1))],
        ),
        "regexp_extract_all" => call(
            "sbx_regexp_extract_all",
            vec![a(0), a(1), args.get(2).cloned().unwrap_or_else(|| num(1))],
        ),
        "regexp_substr" => call(
            "sbx_regexp_substr",
            vec![a(0), a(1), num(1), num(1), lit(""), num(0)],
        ),
        "regexp_replace" => call(
            "sbx_regexp_replace",
            vec![
                a(0),
                a(1),
                a(2),
                args.get(3).cloned().unwrap_or_else(|| num(1)),
                num(0),
                lit(""),
            ],
        ),
        // concat_ws skips NULLs and flattens arrays.
        "concat_ws" => call("sbx_concat_ws_spark", args.clone()),
        "initcap" => call("sbx_initcap_spark", vec![a(0)]),
        "instr" => call("sbx_position", vec![a(1), a(0), num(1)]),
        "locate" | "position" => call(
            "sbx_position",
            vec![a(0), a(1), args.get(2).cloned().unwrap_or_else(|| num(1))],
        ),
        "try_divide" => call("sbx_div_or", vec![a(0), a(1), null(), num(-1)]),
        "round" => call("round", args.clone()),
        "bround" => call(
            "sbx_bround",
            vec![a(0), args.get(1).cloned().unwrap_or_else(|| num(0))],
        ),
        "log" => call("sbx_log", vec![a(0), a(1)]),
        "log2" => call("sbx_log", vec![num(2), a(0)]),
        // Spark's greatest/least skip NULLs.
        "greatest" => call("sbx_greatest_skip", args.clone()),
        "least" => call("sbx_least_skip", args.clone()),
        "collect_list" | "array_agg" => {
            let mut g = renamed(f, "sbx_array_agg", vec![a(0)]);
            keep_order(&mut g, f);
            g
        }
        "collect_set" => renamed(f, "sbx_array_agg_distinct", vec![a(0)]),
        "listagg" | "string_agg" => {
            let mut g = renamed(
                f,
                "group_concat",
                vec![
                    cast_to(a(0), "text", true),
                    args.get(1).cloned().unwrap_or_else(|| lit("")),
                ],
            );
            keep_order(&mut g, f);
            g
        }
        "percentile" => renamed(f, "sbx_percentile_cont", vec![a(0), a(1)]),
        "percentile_approx" | "approx_percentile" => {
            renamed(f, "sbx_percentile_approx", vec![a(0), a(1)])
        }
        "named_struct" | "map" => call("sbx_struct", args.clone()),
        "struct" => {
            let mut kv = Vec::new();
            for (i, e) in f_struct_names(f).into_iter().zip(args.iter()) {
                kv.push(lit(&i));
                kv.push(e.clone());
            }
            call("sbx_struct", kv)
        }
        "array" => call("sbx_array", args.clone()),
        "element_at" => call("sbx_element_at", vec![a(0), a(1)]),
        "get" => call("sbx_get", vec![a(0), a(1)]),
        "sort_array" => call(
            "sbx_sort_array",
            vec![a(0), args.get(1).cloned().unwrap_or_else(|| num(1))],
        ),
        "array_sort" => call("sbx_sort_array", vec![a(0), num(1)]),
        "array_distinct" => call("sbx_array_distinct", vec![a(0)]),
        "array_join" => call(
            "sbx_array_join",
            vec![a(0), a(1), args.get(2).cloned().unwrap_or_else(null)],
        ),
        "map_keys" => call("sbx_map_keys", vec![a(0)]),
        "map_values" => call("sbx_map_values", vec![a(0)]),
        "get_json_object" | "json_extract" => {
            let path = args.get(1).and_then(part_text).ok_or_else(|| {
                DialectError::Unsupported("get_json_object with a computed path".into())
            })?;
            let mut out = a(0);
            for step in path
                .trim_start_matches('$')
                .split('.')
                .filter(|s| !s.is_empty())
            {
                out = call("sbx_get", vec![out, lit(step)]);
            }
            cast_to(out, "text", true)
        }
        "parse_json" => call("sbx_parse_json", vec![a(0), num(1)]),
        "try_parse_json" => call("sbx_parse_json", vec![a(0), num(0)]),
        "to_json" => cast_to(a(0), "text", true),
        "string" => cast_to(a(0), "text", true),
        "double" => cast_to(a(0), "real", true),
        "int" | "bigint" => cast_to(a(0), "int_trunc", true),
        "nanvl" => call("coalesce", vec![a(0), a(1)]),
        "format_number" => call("sbx_format_number", vec![a(0), a(1)]),
        "substring_index" => call("sbx_substring_index", vec![a(0), a(1), a(2)]),
        "dayname" => call("sbx_format", vec![a(0), lit("EEE"), lit("spark")]),
        "monthname" => call("sbx_format", vec![a(0), lit("MMM"), lit("spark")]),
        "from_unixtime" => call(
            "sbx_from_unixtime",
            vec![a(0), args.get(1).cloned().unwrap_or_else(null)],
        ),
        _ => return Ok(None),
    };
    Ok(Some(out))
}

/// Field names of `struct(a, b.c, 1)`: column names, else `col<n>`.
fn f_struct_names(f: &Function) -> Vec<String> {
    positional(f)
        .iter()
        .enumerate()
        .map(|(i, e)| match e {
            Expr::Identifier(id) => id.value.clone(),
            Expr::CompoundIdentifier(p) => p.last().map(|p| p.value.clone()).unwrap_or_default(),
            _ => format!("col{}", i + 1),
        })
        .collect()
}
