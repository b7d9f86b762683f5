//! Numeric functions: decimal rounding as the platforms round, division
//! variants, truncation, logarithms, number formatting, GREATEST / LEAST.

use super::{compare, det, fail, int_arg, owned, real_arg};
use rusqlite::types::{Value, ValueRef};
use rusqlite::{Connection, Result};

/// Round half away from zero at `scale` digits, on the shortest decimal text of `f`
/// (so 12.345 rounds to 12.35 as a decimal platform does, not to 12.34 as binary f64 would).
pub(crate) fn round_decimal(f: f64, scale: i32) -> f64 {
    if !f.is_finite() {
        return f;
    }
    let text = format!("{:.*}", (scale + 2).clamp(0, 30) as usize, f);
    let shortest = f.to_string();
    let digits = if shortest.contains('e') {
        text
    } else {
        shortest
    };
    let neg = digits.starts_with('-');
    let body = digits.trim_start_matches('-');
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    if scale >= 0 && frac.len() <= scale as usize {
        return f;
    }
    let p = 10f64.powi(scale);
    let s = scale.max(0) as usize;
    let keep: String = format!("{int}{}", &frac[..s.min(frac.len())]);
    let next = frac.as_bytes().get(s).copied().unwrap_or(b'0');
    let mut n: f64 = keep.parse().unwrap_or(0.0);
    if scale < 0 {
        return (f * p).round() / p;
    }
    if next >= b'5' {
        n += 1.0;
    }
    let r = n / p;
    if neg { -r } else { r }
}

pub(super) fn real_text(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e15 {
        format!("{}", f as i64)
    } else {
        f.to_string()
    }
}

pub(super) fn register(conn: &Connection) -> Result<()> {
    // sbx_div(a, b, scale): division that errors on a zero divisor (both platforms do,
    // Databricks under its default ANSI mode); scale < 0 means floating point.
    conn.create_scalar_function("sbx_div", 3, det(), |ctx| {
        let (Some(a), Some(b)) = (real_arg(ctx, 0)?, real_arg(ctx, 1)?) else {
            return Ok(None);
        };
        if b == 0.0 {
            return Err(fail("Division by zero"));
        }
        let scale = int_arg(ctx, 2)?.unwrap_or(-1);
        let q = a / b;
        Ok(Some(if scale >= 0 {
            round_decimal(q, scale as i32)
        } else {
            q
        }))
    })?;
    // DIV0 / DIV0NULL / try_divide: 0 (or NULL) instead of an error.
    conn.create_scalar_function("sbx_div_or", 4, det(), |ctx| {
        let a = real_arg(ctx, 0)?;
        let b = real_arg(ctx, 1)?;
        let when_zero = real_arg(ctx, 2)?;
        let scale = int_arg(ctx, 3)?.unwrap_or(-1);
        let q = match (a, b) {
            (_, Some(0.0)) => return Ok(when_zero),
            (Some(a), Some(b)) => a / b,
            _ => return Ok(None),
        };
        Ok(Some(if scale >= 0 {
            round_decimal(q, scale as i32)
        } else {
            q
        }))
    })?;
    conn.create_scalar_function("sbx_trunc_num", 2, det(), |ctx| {
        let Some(x) = real_arg(ctx, 0)? else {
            return Ok(Value::Null);
        };
        let d = int_arg(ctx, 1)?.unwrap_or(0) as i32;
        if d <= 0 && matches!(ctx.get_raw(0), ValueRef::Integer(_)) {
            let p = 10i64.pow(d.unsigned_abs().min(18));
            if let ValueRef::Integer(i) = ctx.get_raw(0) {
                return Ok(Value::Integer(i / p * p));
            }
        }
        let p = 10f64.powi(d);
        Ok(Value::Real((x * p).trunc() / p))
    })?;
    // Banker's rounding (Spark bround, Snowflake ROUND(.., 'HALF_TO_EVEN')).
    conn.create_scalar_function("sbx_bround", 2, det(), |ctx| {
        let Some(x) = real_arg(ctx, 0)? else {
            return Ok(None);
        };
        let d = int_arg(ctx, 1)?.unwrap_or(0) as i32;
        let p = 10f64.powi(d);
        Ok(Some((x * p).round_ties_even() / p))
    })?;
    for (name, f) in [
        ("sbx_ceil", f64::ceil as fn(f64) -> f64),
        ("sbx_floor", f64::floor),
    ] {
        conn.create_scalar_function(name, -1, det(), move |ctx| {
            let d = if ctx.len() > 1 {
                int_arg(ctx, 1)?.unwrap_or(0) as i32
            } else {
                0
            };
            match ctx.get_raw(0) {
                ValueRef::Null => Ok(Value::Null),
                ValueRef::Integer(i) if d >= 0 => Ok(Value::Integer(i)),
                _ => {
                    let x = real_arg(ctx, 0)?.unwrap_or(0.0);
                    let p = 10f64.powi(d);
                    let r = f(x * p) / p;
                    Ok(if d <= 0 && r.abs() < 9.0e15 {
                        Value::Integer(r as i64)
                    } else {
                        Value::Real(r)
                    })
                }
            }
        })?;
    }
    for (name, f) in [
        ("sbx_sqrt", f64::sqrt as fn(f64) -> f64),
        ("sbx_ln", f64::ln),
        ("sbx_exp", f64::exp),
        ("sbx_log10", f64::log10),
        ("sbx_sign", f64::signum),
    ] {
        conn.create_scalar_function(name, 1, det(), move |ctx| {
            Ok(real_arg(ctx, 0)?.map(|x| {
                if name == "sbx_sign" && x == 0.0 {
                    0.0
                } else {
                    f(x)
                }
            }))
        })?;
    }
    conn.create_scalar_function("sbx_power", 2, det(), |ctx| {
        let (Some(a), Some(b)) = (real_arg(ctx, 0)?, real_arg(ctx, 1)?) else {
            return Ok(None);
        };
        Ok(Some(a.powf(b)))
    })?;
    conn.create_scalar_function("sbx_log", 2, det(), |ctx| {
        let (Some(base), Some(x)) = (real_arg(ctx, 0)?, real_arg(ctx, 1)?) else {
            return Ok(None);
        };
        Ok(Some(x.ln() / base.ln()))
    })?;
    // format_number(x, d): thousands separators and d decimals (half up).
    conn.create_scalar_function("sbx_format_number", 2, det(), |ctx| {
        let (Some(x), Some(d)) = (real_arg(ctx, 0)?, int_arg(ctx, 1)?) else {
            return Ok(None);
        };
        let d = d.clamp(0, 18) as usize;
        let text = format!("{:.*}", d, round_decimal(x, d as i32));
        let (int, frac) = text.split_once('.').unwrap_or((&text, ""));
        let (sign, digits) = int.strip_prefix('-').map_or(("", int), |r| ("-", r));
        let mut grouped = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                grouped.push(',');
            }
            grouped.push(c);
        }
        Ok(Some(if frac.is_empty() {
            format!("{sign}{grouped}")
        } else {
            format!("{sign}{grouped}.{frac}")
        }))
    })?;
    // GREATEST/LEAST that skip NULLs (Spark); Snowflake's NULL-propagating ones are SQLite's max/min.
    for (name, want) in [
        ("sbx_greatest_skip", std::cmp::Ordering::Greater),
        ("sbx_least_skip", std::cmp::Ordering::Less),
    ] {
        conn.create_scalar_function(name, -1, det(), move |ctx| {
            let mut best: Option<Value> = None;
            for i in 0..ctx.len() {
                let v: Value = owned(ctx.get_raw(i));
                if v == Value::Null {
                    continue;
                }
                best = match best {
                    None => Some(v),
                    Some(b) => {
                        if compare(&v, &b) == want {
                            Some(v)
                        } else {
                            Some(b)
                        }
                    }
                };
            }
            Ok(best.unwrap_or(Value::Null))
        })?;
    }
    Ok(())
}
