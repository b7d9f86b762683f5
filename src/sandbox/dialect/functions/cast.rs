//! Platform casts (`CAST`, `TRY_CAST`, `::`) as the translation names their
//! targets, with the strict (error) and lenient (NULL) failure modes.

use super::fail;
use super::numeric::{real_text, round_decimal};
use super::temporal::Temporal;
use chrono::Timelike;
use rusqlite::Result;
use rusqlite::types::{Value, ValueRef};

/// A platform cast target, as the translation names it.
pub(super) fn cast(v: ValueRef<'_>, target: &str, strict: bool) -> Result<Value> {
    let bad = |shown: String| -> Result<Value> {
        if strict {
            Err(fail(format!("Cannot cast '{shown}' to {target}")))
        } else {
            Ok(Value::Null)
        }
    };
    if let ValueRef::Null = v {
        return Ok(Value::Null);
    }
    let text = match v {
        ValueRef::Text(t) => Some(String::from_utf8_lossy(t).trim().to_string()),
        _ => None,
    };
    let (kind, arg) = target.split_once(':').unwrap_or((target, ""));
    match kind {
        "int_round" | "int_trunc" => {
            let f = match (v, &text) {
                (ValueRef::Integer(i), _) => return Ok(Value::Integer(i)),
                (ValueRef::Real(f), _) => f,
                (_, Some(s)) => match s.parse::<f64>() {
                    Ok(f) => f,
                    Err(_) => return bad(s.clone()),
                },
                _ => return bad(String::new()),
            };
            // Snowflake rounds half away from zero when casting to an integer; Spark truncates.
            Ok(Value::Integer(if kind == "int_round" {
                f.round() as i64
            } else {
                f.trunc() as i64
            }))
        }
        "real" => match (v, &text) {
            (ValueRef::Integer(i), _) => Ok(Value::Real(i as f64)),
            (ValueRef::Real(f), _) => Ok(Value::Real(f)),
            (_, Some(s)) => match s.parse::<f64>() {
                Ok(f) => Ok(Value::Real(f)),
                Err(_) => bad(s.clone()),
            },
            _ => bad(String::new()),
        },
        "dec" => {
            let scale: i32 = arg.parse().unwrap_or(0);
            let f = match (v, &text) {
                (ValueRef::Integer(i), _) => i as f64,
                (ValueRef::Real(f), _) => f,
                (_, Some(s)) => match s.parse::<f64>() {
                    Ok(f) => f,
                    Err(_) => return bad(s.clone()),
                },
                _ => return bad(String::new()),
            };
            if scale == 0 {
                return Ok(Value::Integer(round_decimal(f, 0) as i64));
            }
            Ok(Value::Real(round_decimal(f, scale)))
        }
        "text" => Ok(Value::Text(match v {
            ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
            ValueRef::Integer(i) => i.to_string(),
            ValueRef::Real(f) => real_text(f),
            ValueRef::Blob(b) => hex::encode_upper(b),
            ValueRef::Null => return Ok(Value::Null),
        })),
        "ts_text_sf" | "ts_text_spark" => {
            let t = match &text {
                Some(s) => match Temporal::parse(s) {
                    Some(t) => t,
                    None => return cast(v, "text", strict),
                },
                None => return cast(v, "text", strict),
            };
            let w = t.wall();
            Ok(Value::Text(match (kind, t) {
                (_, Temporal::Date(d)) => d.format("%Y-%m-%d").to_string(),
                ("ts_text_sf", _) => w.format("%Y-%m-%d %H:%M:%S%.3f").to_string(),
                _ => {
                    let frac = format!("{:09}", w.nanosecond());
                    let frac = frac.trim_end_matches('0');
                    let base = w.format("%Y-%m-%d %H:%M:%S").to_string();
                    if frac.is_empty() {
                        base
                    } else {
                        format!("{base}.{frac}")
                    }
                }
            }))
        }
        "bool_text" => Ok(Value::Text(
            match v {
                ValueRef::Integer(0) => "false",
                ValueRef::Integer(_) => "true",
                _ => return cast(v, "text", strict),
            }
            .to_string(),
        )),
        "bool" => match (v, &text) {
            (ValueRef::Integer(i), _) => Ok(Value::Integer(i64::from(i != 0))),
            (ValueRef::Real(f), _) => Ok(Value::Integer(i64::from(f != 0.0))),
            (_, Some(s)) => match s.to_ascii_lowercase().as_str() {
                "true" | "t" | "yes" | "y" | "on" | "1" => Ok(Value::Integer(1)),
                "false" | "f" | "no" | "n" | "off" | "0" => Ok(Value::Integer(0)),
                _ => bad(s.clone()),
            },
            _ => bad(String::new()),
        },
        "date" | "ntz" | "tz" => {
            let t = match (v, &text) {
                (_, Some(s)) => match Temporal::parse(s) {
                    Some(t) => t,
                    None => return bad(s.clone()),
                },
                (ValueRef::Integer(i), _) => match chrono::DateTime::from_timestamp(i, 0) {
                    Some(d) => Temporal::Ntz(d.naive_utc()),
                    None => return bad(i.to_string()),
                },
                _ => return bad(String::new()),
            };
            Ok(Value::Text(convert_temporal(t, kind).render()))
        }
        "json" => match (v, &text) {
            (_, Some(s)) => match serde_json::from_str::<serde_json::Value>(s) {
                Ok(j) => Ok(Value::Text(j.to_string())),
                Err(_) => Ok(Value::Text(
                    serde_json::Value::String(s.clone()).to_string(),
                )),
            },
            (ValueRef::Integer(i), _) => Ok(Value::Text(i.to_string())),
            (ValueRef::Real(f), _) => Ok(Value::Text(real_text(f))),
            _ => bad(String::new()),
        },
        other => Err(fail(format!("unknown cast target {other}"))),
    }
}

pub(super) fn convert_temporal(t: Temporal, kind: &str) -> Temporal {
    match (kind, t) {
        ("date", t) => Temporal::Date(t.wall().date()),
        ("ntz", t) => Temporal::Ntz(t.wall()),
        ("tz", Temporal::Tz(w, o)) => Temporal::Tz(w, o),
        ("tz", t) => Temporal::Tz(t.wall(), 0),
        (_, t) => t,
    }
}
