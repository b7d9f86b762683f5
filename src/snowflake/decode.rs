//! Decoding of Snowflake SQL API v2 `jsonv2` result data into the shared
//! [`ResultSet`] model.
//!
//! Snowflake sends every value as a string (or `null`) and describes the
//! columns in `resultSetMetaData.rowType`. This module owns the mapping from
//! each Snowflake type to a [`ColumnType`] and the exact value conventions of
//! [`crate::result`]:
//!
//! | Snowflake type            | wire text                               | decoded value                          |
//! |---------------------------|-----------------------------------------|----------------------------------------|
//! | FIXED, scale 0            | `"42"`                                  | JSON number (string outside i64)       |
//! | FIXED, scale > 0          | `"10.5"` / `"10.50"`                    | exact decimal text padded to the scale |
//! | REAL                      | `"1.5"`, `"NaN"`, `"inf"`               | JSON number (`"NaN"`, `"inf"`, `"-inf"`)|
//! | TEXT                      | any text                                | the text                               |
//! | BOOLEAN                   | `"true"` / `"false"`                    | JSON bool                              |
//! | DATE                      | days since 1970-01-01                   | `"YYYY-MM-DD"`                         |
//! | TIME                      | seconds.fraction since midnight         | `"HH:MM:SS[.f]"`                       |
//! | TIMESTAMP_NTZ             | seconds.fraction since the epoch        | `"YYYY-MM-DDTHH:MM:SS[.f]"`            |
//! | TIMESTAMP_LTZ             | seconds.fraction since the epoch        | RFC 3339 in UTC (`...Z`)               |
//! | TIMESTAMP_TZ              | `"seconds.fraction offset"`, offset = minutes + 1440 | RFC 3339 with that offset |
//! | VARIANT / OBJECT / ARRAY  | JSON text                               | the parsed JSON value                  |
//! | BINARY                    | hex                                     | lower-case hex text                    |
//! | anything else (GEOGRAPHY, VECTOR, ...) | text                       | the text, column type `other`          |
//!
//! Fractions keep their exact digits (nanosecond precision, never through a
//! float) with trailing zeros removed. Negative epochs mean "before 1970":
//! `-1.5` is half a second before `1969-12-31T23:59:59`. Malformed input is a
//! [`DecodeError`] naming the row, the column and the reason — never a panic.

pub use super::wire::RowTypeField;
use crate::result::{Column, ColumnType};
use chrono::{DateTime, Duration as ChronoDuration, FixedOffset, NaiveTime};
use serde_json::Value;

/// A value (or column description) that does not follow the jsonv2 encoding.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    /// A value could not be decoded as its column type says.
    #[error("row {row}, column {column} ({native_type}): {reason}")]
    Value {
        row: usize,
        column: String,
        native_type: String,
        reason: String,
    },
    /// A row has a different number of values than there are columns.
    #[error("row {row} has {found} values but the result has {expected} columns")]
    RowWidth {
        row: usize,
        expected: usize,
        found: usize,
    },
    /// The row is not a JSON array.
    #[error("row {row} is not an array of values")]
    RowShape { row: usize },
}

/// How one column's values are decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Integer,
    Decimal { scale: u32 },
    Real,
    Text,
    Boolean,
    Date,
    Time,
    TimestampNtz,
    TimestampLtz,
    TimestampTz,
    Json,
    Binary,
    Other,
}

/// Decodes rows of one result whose columns are described by `rowType`.
#[derive(Debug, Clone)]
pub struct RowDecoder {
    columns: Vec<Column>,
    kinds: Vec<Kind>,
}

impl RowDecoder {
    /// Prepare a decoder for the columns of `row_type`.
    pub fn new(row_type: &[RowTypeField]) -> Self {
        let mut columns = Vec::with_capacity(row_type.len());
        let mut kinds = Vec::with_capacity(row_type.len());
        for field in row_type {
            let (kind, column_type, native_type) = classify(field);
            columns.push(Column {
                name: field.name.clone(),
                column_type,
                native_type,
                nullable: field.nullable,
            });
            kinds.push(kind);
        }
        Self { columns, kinds }
    }

    /// The portable column descriptions.
    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// Decode one wire row (`row` is its index in the whole result, for errors).
    pub fn decode(&self, row: usize, values: &Value) -> Result<Vec<Value>, DecodeError> {
        let Value::Array(values) = values else {
            return Err(DecodeError::RowShape { row });
        };
        if values.len() != self.kinds.len() {
            return Err(DecodeError::RowWidth {
                row,
                expected: self.kinds.len(),
                found: values.len(),
            });
        }
        values
            .iter()
            .zip(self.kinds.iter().zip(&self.columns))
            .map(|(value, (kind, column))| {
                decode_value(*kind, value).map_err(|reason| DecodeError::Value {
                    row,
                    column: column.name.clone(),
                    native_type: column.native_type.clone(),
                    reason,
                })
            })
            .collect()
    }
}

/// Rough size of a wire row in bytes (its value texts), for the byte limit.
pub fn wire_row_bytes(values: &Value) -> usize {
    match values {
        Value::Array(items) => items
            .iter()
            .map(|v| match v {
                Value::String(s) => s.len() + 3,
                Value::Null => 4,
                other => other.to_string().len(),
            })
            .sum::<usize>()
            .max(2),
        other => other.to_string().len(),
    }
}

fn classify(field: &RowTypeField) -> (Kind, ColumnType, String) {
    let t = field.type_name.to_ascii_uppercase();
    let with_scale = |base: &str| match field.scale {
        Some(s) => format!("{base}({s})"),
        None => base.to_string(),
    };
    match t.as_str() {
        "FIXED" | "NUMBER" | "DECIMAL" | "NUMERIC" => {
            let scale = field.scale.unwrap_or(0);
            let native = match field.precision {
                Some(p) => format!("NUMBER({p},{scale})"),
                None => format!("NUMBER(38,{scale})"),
            };
            if scale == 0 {
                (Kind::Integer, ColumnType::Integer, native)
            } else {
                (Kind::Decimal { scale }, ColumnType::Decimal, native)
            }
        }
        "REAL" | "FLOAT" | "DOUBLE" => (Kind::Real, ColumnType::Float, "FLOAT".into()),
        "TEXT" | "VARCHAR" | "STRING" | "CHAR" => {
            let native = match field.length {
                Some(l) => format!("VARCHAR({l})"),
                None => "VARCHAR".into(),
            };
            (Kind::Text, ColumnType::String, native)
        }
        "BOOLEAN" => (Kind::Boolean, ColumnType::Boolean, "BOOLEAN".into()),
        "DATE" => (Kind::Date, ColumnType::Date, "DATE".into()),
        "TIME" => (Kind::Time, ColumnType::Time, with_scale("TIME")),
        "TIMESTAMP_NTZ" | "TIMESTAMP" | "DATETIME" => (
            Kind::TimestampNtz,
            ColumnType::Timestamp,
            with_scale("TIMESTAMP_NTZ"),
        ),
        "TIMESTAMP_LTZ" => (
            Kind::TimestampLtz,
            ColumnType::TimestampTz,
            with_scale("TIMESTAMP_LTZ"),
        ),
        "TIMESTAMP_TZ" => (
            Kind::TimestampTz,
            ColumnType::TimestampTz,
            with_scale("TIMESTAMP_TZ"),
        ),
        "VARIANT" | "OBJECT" | "ARRAY" => (Kind::Json, ColumnType::Json, t.clone()),
        "BINARY" | "VARBINARY" => (Kind::Binary, ColumnType::Binary, "BINARY".into()),
        _ => (Kind::Other, ColumnType::Other, t.clone()),
    }
}

fn decode_value(kind: Kind, value: &Value) -> Result<Value, String> {
    let owned;
    let text: &str = match value {
        Value::Null => return Ok(Value::Null),
        Value::String(s) => s,
        // Tolerate unquoted scalars (some proxies re-encode); decode their text.
        Value::Number(_) | Value::Bool(_) => {
            owned = value.to_string();
            &owned
        }
        Value::Array(_) | Value::Object(_) => {
            if kind == Kind::Json {
                return Ok(value.clone());
            }
            return Err("expected a string value, found nested JSON".into());
        }
    };
    match kind {
        Kind::Integer => decode_integer(text),
        Kind::Decimal { scale } => decode_decimal(text, scale).map(Value::String),
        Kind::Real => decode_real(text),
        Kind::Text | Kind::Other => Ok(Value::String(text.to_string())),
        Kind::Boolean => decode_boolean(text).map(Value::Bool),
        Kind::Date => decode_date(text).map(Value::String),
        Kind::Time => decode_time(text).map(Value::String),
        Kind::TimestampNtz => decode_timestamp_ntz(text).map(Value::String),
        Kind::TimestampLtz => decode_timestamp_ltz(text).map(Value::String),
        Kind::TimestampTz => decode_timestamp_tz(text).map(Value::String),
        Kind::Json => serde_json::from_str(text).map_err(|e| format!("invalid JSON text: {e}")),
        Kind::Binary => decode_binary(text).map(Value::String),
    }
}

fn snippet(text: &str) -> String {
    let cut: String = text.chars().take(40).collect();
    if cut.len() < text.len() {
        format!("{cut:?}…")
    } else {
        format!("{cut:?}")
    }
}

/// Split decimal text into (negative, integer digits, fraction digits).
fn split_decimal(text: &str) -> Option<(bool, &str, &str)> {
    let t = text.trim();
    let (negative, digits) = match t.as_bytes().first()? {
        b'-' => (true, &t[1..]),
        b'+' => (false, &t[1..]),
        _ => (false, t),
    };
    let (int, frac) = match digits.split_once('.') {
        Some((i, f)) => (i, f),
        None => (digits, ""),
    };
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (int.is_empty() && frac.is_empty()) || !all_digits(int) || !all_digits(frac) {
        return None;
    }
    if digits.ends_with('.') && frac.is_empty() && int.is_empty() {
        return None;
    }
    Some((negative, int, frac))
}

fn decode_integer(text: &str) -> Result<Value, String> {
    let (negative, int, frac) =
        split_decimal(text).ok_or_else(|| format!("not an integer: {}", snippet(text)))?;
    if frac.bytes().any(|b| b != b'0') {
        return Err(format!(
            "not an integer (has a fraction): {}",
            snippet(text)
        ));
    }
    let int = int.trim_start_matches('0');
    let int = if int.is_empty() { "0" } else { int };
    let canonical = if negative && int != "0" {
        format!("-{int}")
    } else {
        int.to_string()
    };
    match canonical.parse::<i64>() {
        Ok(n) => Ok(Value::from(n)),
        Err(_) => Ok(Value::String(canonical)),
    }
}

fn decode_decimal(text: &str, scale: u32) -> Result<String, String> {
    let (negative, int, frac) =
        split_decimal(text).ok_or_else(|| format!("not a decimal number: {}", snippet(text)))?;
    let int = int.trim_start_matches('0');
    let int = if int.is_empty() { "0" } else { int };
    let mut frac = frac.to_string();
    while frac.len() < scale as usize {
        frac.push('0');
    }
    let is_zero = int == "0" && frac.bytes().all(|b| b == b'0');
    let sign = if negative && !is_zero { "-" } else { "" };
    if frac.is_empty() {
        Ok(format!("{sign}{int}"))
    } else {
        Ok(format!("{sign}{int}.{frac}"))
    }
}

fn decode_real(text: &str) -> Result<Value, String> {
    let t = text.trim();
    let v: f64 = t
        .parse()
        .map_err(|_| format!("not a floating-point number: {}", snippet(text)))?;
    if v.is_nan() {
        Ok(Value::String("NaN".into()))
    } else if v.is_infinite() {
        Ok(Value::String(if v > 0.0 { "inf" } else { "-inf" }.into()))
    } else {
        serde_json::Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| format!("not a finite number: {}", snippet(text)))
    }
}

fn decode_boolean(text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(format!("not a boolean: {}", snippet(text))),
    }
}

fn decode_date(text: &str) -> Result<String, String> {
    let days: i64 = text
        .trim()
        .parse()
        .map_err(|_| format!("not a day count: {}", snippet(text)))?;
    let epoch = DateTime::UNIX_EPOCH.date_naive();
    ChronoDuration::try_days(days)
        .and_then(|d| epoch.checked_add_signed(d))
        .map(|d| d.format("%Y-%m-%d").to_string())
        .ok_or_else(|| format!("day count out of range: {}", snippet(text)))
}

/// Exact seconds + nanoseconds (nanos in 0..1e9) of `seconds.fraction` text;
/// also returns how many fraction digits were given.
fn parse_seconds(text: &str) -> Result<(i64, u32), String> {
    let bad = || format!("not seconds.fraction: {}", snippet(text));
    let (negative, int, frac) = split_decimal(text).ok_or_else(bad)?;
    if frac.len() > 9 {
        return Err(format!("more than 9 fraction digits: {}", snippet(text)));
    }
    let int_value: i64 = if int.is_empty() {
        0
    } else {
        int.parse()
            .map_err(|_| format!("seconds out of range: {}", snippet(text)))?
    };
    let mut nanos: u32 = 0;
    for (i, b) in frac.bytes().enumerate() {
        nanos += u32::from(b - b'0') * 10u32.pow(8 - i as u32);
    }
    if !negative {
        return Ok((int_value, nanos));
    }
    // -int.frac = -(int + frac) = (-int - 1) + (1 - frac)
    if nanos == 0 {
        Ok((-int_value, 0))
    } else {
        Ok((-int_value - 1, 1_000_000_000 - nanos))
    }
}

fn fraction_suffix(nanos: u32) -> String {
    if nanos == 0 {
        return String::new();
    }
    let digits = format!("{nanos:09}");
    format!(".{}", digits.trim_end_matches('0'))
}

fn decode_time(text: &str) -> Result<String, String> {
    let (secs, nanos) = parse_seconds(text)?;
    if !(0..86_400).contains(&secs) {
        return Err(format!(
            "time of day out of range 0..86400 s: {}",
            snippet(text)
        ));
    }
    let t = NaiveTime::from_num_seconds_from_midnight_opt(secs as u32, nanos)
        .ok_or_else(|| format!("invalid time of day: {}", snippet(text)))?;
    Ok(format!(
        "{}{}",
        t.format("%H:%M:%S"),
        fraction_suffix(nanos)
    ))
}

fn utc_datetime(text: &str) -> Result<(DateTime<chrono::Utc>, u32), String> {
    let (secs, nanos) = parse_seconds(text)?;
    DateTime::from_timestamp(secs, nanos)
        .map(|dt| (dt, nanos))
        .ok_or_else(|| format!("timestamp out of range: {}", snippet(text)))
}

fn decode_timestamp_ntz(text: &str) -> Result<String, String> {
    let (dt, nanos) = utc_datetime(text)?;
    Ok(format!(
        "{}{}",
        dt.naive_utc().format("%Y-%m-%dT%H:%M:%S"),
        fraction_suffix(nanos)
    ))
}

fn decode_timestamp_ltz(text: &str) -> Result<String, String> {
    let (dt, nanos) = utc_datetime(text)?;
    Ok(format!(
        "{}{}Z",
        dt.naive_utc().format("%Y-%m-%dT%H:%M:%S"),
        fraction_suffix(nanos)
    ))
}

fn decode_timestamp_tz(text: &str) -> Result<String, String> {
    let trimmed = text.trim();
    let (seconds, offset) = trimmed
        .split_once(' ')
        .ok_or_else(|| format!("expected \"seconds.fraction offset\": {}", snippet(text)))?;
    let encoded: i32 = offset
        .trim()
        .parse()
        .map_err(|_| format!("offset is not a number: {}", snippet(text)))?;
    if !(0..=2880).contains(&encoded) {
        return Err(format!(
            "offset out of range 0..2880 (minutes + 1440): {}",
            snippet(text)
        ));
    }
    let minutes = encoded - 1440;
    let tz = FixedOffset::east_opt(minutes * 60)
        .ok_or_else(|| format!("invalid offset: {}", snippet(text)))?;
    let (dt, nanos) = utc_datetime(seconds)?;
    let local = dt.with_timezone(&tz);
    let sign = if minutes < 0 { '-' } else { '+' };
    let abs = minutes.unsigned_abs();
    Ok(format!(
        "{}{}{sign}{:02}:{:02}",
        local.naive_local().format("%Y-%m-%dT%H:%M:%S"),
        fraction_suffix(nanos),
        abs / 60,
        abs % 60
    ))
}

fn decode_binary(text: &str) -> Result<String, String> {
    let t = text.trim();
    hex::decode(t).map_err(|e| format!("invalid hex ({e}): {}", snippet(text)))?;
    Ok(t.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field(name: &str, t: &str, scale: Option<u32>) -> RowTypeField {
        RowTypeField {
            name: name.into(),
            type_name: t.into(),
            nullable: true,
            precision: None,
            scale,
            length: None,
        }
    }

    fn one(t: &str, scale: Option<u32>, v: Value) -> Result<Value, DecodeError> {
        let d = RowDecoder::new(&[field("C", t, scale)]);
        d.decode(0, &json!([v])).map(|mut r| r.remove(0))
    }

    fn ok(t: &str, scale: Option<u32>, v: &str) -> Value {
        one(t, scale, json!(v)).unwrap()
    }

    fn err(t: &str, scale: Option<u32>, v: &str) -> DecodeError {
        one(t, scale, json!(v)).unwrap_err()
    }

    #[test]
    fn fixed_scale_zero_is_an_integer_or_big_text() {
        assert_eq!(ok("fixed", Some(0), "42"), json!(42));
        assert_eq!(ok("fixed", Some(0), "-7"), json!(-7));
        assert_eq!(ok("fixed", Some(0), "007"), json!(7));
        assert_eq!(ok("fixed", Some(0), "9223372036854775807"), json!(i64::MAX));
        assert_eq!(
            ok("fixed", Some(0), "-9223372036854775808"),
            json!(i64::MIN)
        );
        assert_eq!(
            ok("fixed", Some(0), "99999999999999999999999999999999999999"),
            json!("99999999999999999999999999999999999999")
        );
        assert_eq!(
            ok("fixed", Some(0), "-9223372036854775809"),
            json!("-9223372036854775809")
        );
        assert!(matches!(
            err("fixed", Some(0), "1.5"),
            DecodeError::Value { .. }
        ));
        assert!(matches!(
            err("fixed", Some(0), "abc"),
            DecodeError::Value { .. }
        ));
        assert!(matches!(
            err("fixed", Some(0), ""),
            DecodeError::Value { .. }
        ));
    }

    #[test]
    fn fixed_with_scale_is_exact_decimal_text() {
        assert_eq!(ok("fixed", Some(2), "10.5"), json!("10.50"));
        assert_eq!(ok("fixed", Some(2), "10.50"), json!("10.50"));
        assert_eq!(ok("fixed", Some(2), "-0.05"), json!("-0.05"));
        assert_eq!(ok("fixed", Some(3), "7"), json!("7.000"));
        assert_eq!(ok("fixed", Some(2), "-0.00"), json!("0.00"));
        assert_eq!(
            ok("fixed", Some(10), "12345678901234567890.0123456789"),
            json!("12345678901234567890.0123456789")
        );
        assert!(matches!(
            err("fixed", Some(2), "1.2.3"),
            DecodeError::Value { .. }
        ));
        assert!(matches!(
            err("fixed", Some(2), "1e5"),
            DecodeError::Value { .. }
        ));
    }

    #[test]
    fn real_is_a_number_with_special_values_as_text() {
        assert_eq!(ok("real", None, "1.5"), json!(1.5));
        assert_eq!(ok("real", None, "-2.5e-3"), json!(-0.0025));
        assert_eq!(ok("real", None, "NaN"), json!("NaN"));
        assert_eq!(ok("real", None, "inf"), json!("inf"));
        assert_eq!(ok("real", None, "-inf"), json!("-inf"));
        assert!(matches!(
            err("real", None, "one"),
            DecodeError::Value { .. }
        ));
    }

    #[test]
    fn text_boolean_and_null() {
        assert_eq!(ok("text", None, "héllo, 'x'"), json!("héllo, 'x'"));
        assert_eq!(ok("text", None, ""), json!(""));
        assert_eq!(ok("boolean", None, "true"), json!(true));
        assert_eq!(ok("boolean", None, "false"), json!(false));
        assert!(matches!(
            err("boolean", None, "maybe"),
            DecodeError::Value { .. }
        ));
        for t in [
            "fixed",
            "real",
            "text",
            "boolean",
            "date",
            "time",
            "timestamp_ntz",
            "timestamp_ltz",
            "timestamp_tz",
            "variant",
            "binary",
        ] {
            assert_eq!(one(t, Some(0), Value::Null).unwrap(), Value::Null, "{t}");
        }
    }

    #[test]
    fn date_is_days_since_epoch() {
        assert_eq!(ok("date", None, "0"), json!("1970-01-01"));
        assert_eq!(ok("date", None, "19723"), json!("2024-01-01"));
        assert_eq!(ok("date", None, "-1"), json!("1969-12-31"));
        assert_eq!(ok("date", None, "-719528"), json!("0000-01-01"));
        assert!(matches!(
            err("date", None, "2024-01-01"),
            DecodeError::Value { .. }
        ));
        assert!(matches!(
            err("date", None, "999999999999999"),
            DecodeError::Value { .. }
        ));
    }

    #[test]
    fn time_keeps_nanoseconds() {
        assert_eq!(ok("time", Some(9), "0"), json!("00:00:00"));
        assert_eq!(ok("time", Some(9), "45296.000000000"), json!("12:34:56"));
        assert_eq!(
            ok("time", Some(9), "45296.123456789"),
            json!("12:34:56.123456789")
        );
        assert_eq!(ok("time", Some(3), "86399.5"), json!("23:59:59.5"));
        assert!(matches!(
            err("time", Some(9), "86400"),
            DecodeError::Value { .. }
        ));
        assert!(matches!(
            err("time", Some(9), "-1"),
            DecodeError::Value { .. }
        ));
        assert!(matches!(
            err("time", Some(9), "1.1234567891"),
            DecodeError::Value { .. }
        ));
    }

    #[test]
    fn timestamp_ntz_and_ltz() {
        assert_eq!(
            ok("timestamp_ntz", Some(9), "1700000000.123456789"),
            json!("2023-11-14T22:13:20.123456789")
        );
        assert_eq!(
            ok("timestamp_ntz", Some(9), "1700000000.000000000"),
            json!("2023-11-14T22:13:20")
        );
        assert_eq!(
            ok("timestamp_ltz", Some(9), "1700000000.000000001"),
            json!("2023-11-14T22:13:20.000000001Z")
        );
        assert_eq!(
            ok("timestamp_ltz", Some(0), "0"),
            json!("1970-01-01T00:00:00Z")
        );
    }

    #[test]
    fn negative_epochs_are_before_1970() {
        assert_eq!(
            ok("timestamp_ntz", Some(9), "-1.500000000"),
            json!("1969-12-31T23:59:58.5")
        );
        assert_eq!(
            ok("timestamp_ntz", Some(9), "-0.000000001"),
            json!("1969-12-31T23:59:59.999999999")
        );
        assert_eq!(
            ok("timestamp_ntz", Some(0), "-86400"),
            json!("1969-12-31T00:00:00")
        );
        assert_eq!(
            ok("timestamp_tz", Some(3), "-1.250 1440"),
            json!("1969-12-31T23:59:58.75+00:00")
        );
    }

    #[test]
    fn timestamp_tz_applies_the_offset() {
        // 1440 + 60 = UTC+01:00
        assert_eq!(
            ok("timestamp_tz", Some(9), "1700000000.123000000 1500"),
            json!("2023-11-14T23:13:20.123+01:00")
        );
        // 1440 - 330 = UTC-05:30
        assert_eq!(
            ok("timestamp_tz", Some(9), "1700000000.000000000 1110"),
            json!("2023-11-14T16:43:20-05:30")
        );
        assert!(matches!(
            err("timestamp_tz", Some(9), "1700000000.0"),
            DecodeError::Value { .. }
        ));
        assert!(matches!(
            err("timestamp_tz", Some(9), "1700000000.0 3000"),
            DecodeError::Value { .. }
        ));
        assert!(matches!(
            err("timestamp_tz", Some(9), "x 1440"),
            DecodeError::Value { .. }
        ));
    }

    #[test]
    fn semi_structured_is_parsed_json() {
        assert_eq!(
            ok("variant", None, "{\n  \"a\": [1, 2]\n}"),
            json!({"a": [1, 2]})
        );
        assert_eq!(ok("array", None, "[\"x\", null]"), json!(["x", null]));
        assert_eq!(ok("object", None, "{}"), json!({}));
        assert_eq!(ok("variant", None, "\"text\""), json!("text"));
        assert!(matches!(
            err("object", None, "{not json"),
            DecodeError::Value { .. }
        ));
    }

    #[test]
    fn binary_is_lower_case_hex() {
        assert_eq!(ok("binary", None, "DEADBEEF"), json!("deadbeef"));
        assert_eq!(ok("binary", None, ""), json!(""));
        assert!(matches!(
            err("binary", None, "XYZ"),
            DecodeError::Value { .. }
        ));
    }

    #[test]
    fn columns_describe_native_and_portable_types() {
        let d = RowDecoder::new(&[
            RowTypeField {
                name: "AMOUNT".into(),
                type_name: "fixed".into(),
                nullable: false,
                precision: Some(10),
                scale: Some(2),
                length: None,
            },
            field("ID", "fixed", Some(0)),
            field("TS", "timestamp_tz", Some(9)),
            field("G", "geography", None),
        ]);
        let c = d.columns();
        assert_eq!(c[0].column_type, ColumnType::Decimal);
        assert_eq!(c[0].native_type, "NUMBER(10,2)");
        assert!(!c[0].nullable);
        assert_eq!(c[1].column_type, ColumnType::Integer);
        assert_eq!(c[2].column_type, ColumnType::TimestampTz);
        assert_eq!(c[2].native_type, "TIMESTAMP_TZ(9)");
        assert_eq!(c[3].column_type, ColumnType::Other);
        assert_eq!(
            d.decode(0, &json!(["1.5", "1", "0 1440", "POINT(1 2)"]))
                .unwrap(),
            vec![
                json!("1.50"),
                json!(1),
                json!("1970-01-01T00:00:00+00:00"),
                json!("POINT(1 2)")
            ]
        );
    }

    #[test]
    fn malformed_rows_are_typed_errors() {
        let d = RowDecoder::new(&[field("A", "fixed", Some(0)), field("B", "text", None)]);
        assert_eq!(
            d.decode(3, &json!(["1"])).unwrap_err(),
            DecodeError::RowWidth {
                row: 3,
                expected: 2,
                found: 1
            }
        );
        assert_eq!(
            d.decode(4, &json!("1,2")).unwrap_err(),
            DecodeError::RowShape { row: 4 }
        );
        let e = d.decode(5, &json!(["x", "y"])).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("row 5") && msg.contains("column A"), "{msg}");
    }
}
