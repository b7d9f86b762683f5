//! The SQLite functions the dialect translation calls: `sbx_*` scalar and
//! aggregate functions registered on the engine's connection, implementing
//! the Snowflake and Databricks semantics SQLite lacks (date arithmetic on the
//! engine's ISO text encodings, platform casts, regular expressions, JSON
//! helpers, MEDIAN/percentiles). They only ever see values the policy views
//! already masked and filtered.
//!
//! Temporal values travel as the engine stores them: DATE `YYYY-MM-DD`,
//! TIMESTAMP_NTZ `YYYY-MM-DD HH:MM:SS[.f]`, zoned timestamps with `+HH:MM`.
//!
//! Layout, one module per function family: [`temporal`] (date/time
//! arithmetic and formatting), [`cast`] (platform casts), [`numeric`],
//! [`strings`] (including regular expressions), [`json`] (semi-structured
//! values) and [`aggregates`]. This module holds the argument readers and
//! registers every family.

mod aggregates;
mod cast;
mod json;
mod numeric;
mod strings;
mod temporal;

use numeric::real_text;
use rusqlite::functions::{Context, FunctionFlags};
use rusqlite::types::{Value, ValueRef};
use rusqlite::{Connection, Error, Result};

/// SQLite's JSON subtype ('J'): marks text as JSON for `json_group_array` and friends.
const JSON_SUBTYPE: u32 = 74;

/// Why a function call failed (reported through SQLite as a user function error).
#[derive(Debug, thiserror::Error)]
pub enum FunctionError {
    #[error("{0}")]
    Invalid(String),
}

fn fail(msg: impl Into<String>) -> Error {
    Error::UserFunctionError(Box::new(FunctionError::Invalid(msg.into())))
}

fn text_arg(ctx: &Context<'_>, i: usize) -> Option<String> {
    match ctx.get_raw(i) {
        ValueRef::Null => None,
        ValueRef::Text(t) => Some(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Integer(v) => Some(v.to_string()),
        ValueRef::Real(f) => Some(real_text(f)),
        ValueRef::Blob(b) => Some(hex::encode_upper(b)),
    }
}

fn int_arg(ctx: &Context<'_>, i: usize) -> Result<Option<i64>> {
    Ok(match ctx.get_raw(i) {
        ValueRef::Null => None,
        ValueRef::Integer(v) => Some(v),
        ValueRef::Real(f) => Some(f.round() as i64),
        ValueRef::Text(t) => {
            let s = String::from_utf8_lossy(t);
            Some(
                s.trim()
                    .parse::<f64>()
                    .map_err(|_| fail(format!("Numeric value '{s}' is not recognized")))?
                    .round() as i64,
            )
        }
        ValueRef::Blob(_) => return Err(fail("a number was expected")),
    })
}

fn real_arg(ctx: &Context<'_>, i: usize) -> Result<Option<f64>> {
    Ok(match ctx.get_raw(i) {
        ValueRef::Null => None,
        ValueRef::Integer(v) => Some(v as f64),
        ValueRef::Real(f) => Some(f),
        ValueRef::Text(t) => {
            let s = String::from_utf8_lossy(t);
            Some(
                s.trim()
                    .parse::<f64>()
                    .map_err(|_| fail(format!("Numeric value '{s}' is not recognized")))?,
            )
        }
        ValueRef::Blob(_) => return Err(fail("a number was expected")),
    })
}

type Flags = FunctionFlags;

fn det() -> Flags {
    FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC
}

fn det_json() -> Flags {
    det() | FunctionFlags::SQLITE_RESULT_SUBTYPE
}

/// Register every `sbx_*` function on `conn`.
pub(crate) fn register(conn: &Connection) -> Result<()> {
    temporal::register(conn)?;
    numeric::register(conn)?;
    strings::register(conn)?;
    json::register(conn)?;
    aggregates::register(conn)
}

fn owned(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Integer(i),
        ValueRef::Real(f) => Value::Real(f),
        ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
    }
}

fn compare(a: &Value, b: &Value) -> std::cmp::Ordering {
    let num = |v: &Value| match v {
        Value::Integer(i) => Some(*i as f64),
        Value::Real(f) => Some(*f),
        _ => None,
    };
    match (num(a), num(b)) {
        (Some(x), Some(y)) => x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal),
        _ => {
            let t = |v: &Value| match v {
                Value::Text(s) => s.clone(),
                Value::Integer(i) => i.to_string(),
                Value::Real(f) => f.to_string(),
                _ => String::new(),
            };
            t(a).cmp(&t(b))
        }
    }
}

#[cfg(test)]
mod tests;
