//! The Snowflake wire encoder, for the **Snowflake SQL API v2, `jsonv2`**
//! ([`SnowflakeType`]): `rowType` entries
//! with the lower-case type family (`fixed`, `real`, `text`, `boolean`,
//! `date`, `time`, `timestamp_ntz`, `timestamp_ltz`, `timestamp_tz`,
//! `variant`, `object`, `array`, `binary`) and every non-null cell as a string:
//! - FIXED: exact decimal text with exactly `scale` fraction digits (`"10.50"`)
//! - REAL: shortest float text (`"1.5"`, `"3"`), `"NaN"`, `"inf"`, `"-inf"`
//! - TEXT: the text; BOOLEAN: `"true"` / `"false"`
//! - DATE: days since 1970-01-01 (`"19727"`)
//! - TIME: seconds since midnight with `scale` (default 9) fraction digits
//! - TIMESTAMP_NTZ / TIMESTAMP_LTZ: seconds since the epoch with `scale`
//!   fraction digits (`"1704448800.000000000"`); NTZ keeps the wall clock,
//!   LTZ converts to the instant (text without offset is UTC)
//! - TIMESTAMP_TZ: `"<epoch seconds.fraction> <offset minutes + 1440>"`
//!   (`"1704441600.000000000 1560"` for `+02:00`)
//! - VARIANT / OBJECT / ARRAY: JSON text, pretty-printed with two spaces as
//!   Snowflake prints semi-structured values
//! - BINARY: upper-case hex (Snowflake's default `BINARY_OUTPUT_FORMAT=HEX`)

use super::decimal::encode_decimal;
use super::stored::{
    as_bool, as_bytes, as_date, as_f64, as_json, as_text, as_time, as_timestamp, epoch_date,
};
use super::{ColumnEncodeError, EncodeError, encode_rows, first_non_null, split_type};
use crate::sandbox::engine::{EngineColumn, EngineValue};
use chrono::{NaiveDateTime, Timelike};
use serde_json::{Value, json};

/// Fraction digits Snowflake uses for TIME/TIMESTAMP when none is declared.
const DEFAULT_TIME_SCALE: u32 = 9;
/// Snowflake's default VARCHAR length and byte length.
const SNOWFLAKE_TEXT_LENGTH: u64 = 16_777_216;
/// Snowflake's default BINARY length.
const SNOWFLAKE_BINARY_LENGTH: u64 = 8_388_608;

/// A Snowflake column type, as the SQL API reports it in `rowType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnowflakeType {
    Fixed { precision: u32, scale: u32 },
    Real,
    Text { length: u64 },
    Boolean,
    Date,
    Time { scale: u32 },
    TimestampNtz { scale: u32 },
    TimestampLtz { scale: u32 },
    TimestampTz { scale: u32 },
    Variant,
    Object,
    Array,
    Binary { length: u64 },
}

impl SnowflakeType {
    /// Parse a declared Snowflake type (`NUMBER(10,2)`, `VARCHAR`, `TIMESTAMP_TZ(3)`, synonyms included).
    pub fn parse(declared: &str) -> Option<SnowflakeType> {
        let (base, args) = split_type(declared)?;
        let arg = |i: usize| args.get(i).copied();
        let time_scale = || arg(0).map(|s| s as u32).unwrap_or(DEFAULT_TIME_SCALE);
        let t = match base.as_str() {
            "NUMBER" | "DECIMAL" | "NUMERIC" => SnowflakeType::Fixed {
                precision: arg(0).map(|p| p as u32).unwrap_or(38),
                scale: arg(1).map(|s| s as u32).unwrap_or(0),
            },
            "INT" | "INTEGER" | "BIGINT" | "SMALLINT" | "TINYINT" | "BYTEINT" => {
                SnowflakeType::Fixed {
                    precision: 38,
                    scale: 0,
                }
            }
            "FLOAT" | "FLOAT4" | "FLOAT8" | "DOUBLE" | "DOUBLE PRECISION" | "REAL" => {
                SnowflakeType::Real
            }
            "VARCHAR" | "STRING" | "TEXT" | "NVARCHAR" | "NVARCHAR2" | "CHAR VARYING"
            | "NCHAR VARYING" => SnowflakeType::Text {
                length: arg(0).unwrap_or(SNOWFLAKE_TEXT_LENGTH),
            },
            "CHAR" | "CHARACTER" | "NCHAR" => SnowflakeType::Text {
                length: arg(0).unwrap_or(1),
            },
            "BOOLEAN" => SnowflakeType::Boolean,
            "DATE" => SnowflakeType::Date,
            "TIME" => SnowflakeType::Time {
                scale: time_scale(),
            },
            "TIMESTAMP"
            | "DATETIME"
            | "TIMESTAMP_NTZ"
            | "TIMESTAMPNTZ"
            | "TIMESTAMP WITHOUT TIME ZONE" => SnowflakeType::TimestampNtz {
                scale: time_scale(),
            },
            "TIMESTAMP_LTZ" | "TIMESTAMPLTZ" | "TIMESTAMP WITH LOCAL TIME ZONE" => {
                SnowflakeType::TimestampLtz {
                    scale: time_scale(),
                }
            }
            "TIMESTAMP_TZ" | "TIMESTAMPTZ" | "TIMESTAMP WITH TIME ZONE" => {
                SnowflakeType::TimestampTz {
                    scale: time_scale(),
                }
            }
            "VARIANT" => SnowflakeType::Variant,
            "OBJECT" => SnowflakeType::Object,
            "ARRAY" => SnowflakeType::Array,
            "BINARY" | "VARBINARY" => SnowflakeType::Binary {
                length: arg(0).unwrap_or(SNOWFLAKE_BINARY_LENGTH),
            },
            _ => return None,
        };
        Some(t)
    }

    /// The type of a column without a declared type, from a sample value.
    pub fn infer(sample: Option<&EngineValue>) -> SnowflakeType {
        match sample {
            Some(EngineValue::Integer(_)) => SnowflakeType::Fixed {
                precision: 38,
                scale: 0,
            },
            Some(EngineValue::Real(_)) => SnowflakeType::Real,
            Some(EngineValue::Blob(_)) => SnowflakeType::Binary {
                length: SNOWFLAKE_BINARY_LENGTH,
            },
            Some(EngineValue::Text(_)) | Some(EngineValue::Null) | None => SnowflakeType::Text {
                length: SNOWFLAKE_TEXT_LENGTH,
            },
        }
    }

    /// The type of an engine column: its declared type when it names a
    /// Snowflake type, else inferred from the first non-null value.
    pub fn of_column(column: &EngineColumn, index: usize, rows: &[Vec<EngineValue>]) -> Self {
        column
            .declared_type
            .as_deref()
            .and_then(SnowflakeType::parse)
            .or_else(|| {
                column
                    .inferred_type
                    .as_deref()
                    .and_then(SnowflakeType::parse)
            })
            .unwrap_or_else(|| SnowflakeType::infer(first_non_null(rows, index)))
    }

    /// The `type` field of a `rowType` entry.
    pub fn family(&self) -> &'static str {
        match self {
            SnowflakeType::Fixed { .. } => "fixed",
            SnowflakeType::Real => "real",
            SnowflakeType::Text { .. } => "text",
            SnowflakeType::Boolean => "boolean",
            SnowflakeType::Date => "date",
            SnowflakeType::Time { .. } => "time",
            SnowflakeType::TimestampNtz { .. } => "timestamp_ntz",
            SnowflakeType::TimestampLtz { .. } => "timestamp_ltz",
            SnowflakeType::TimestampTz { .. } => "timestamp_tz",
            SnowflakeType::Variant => "variant",
            SnowflakeType::Object => "object",
            SnowflakeType::Array => "array",
            SnowflakeType::Binary { .. } => "binary",
        }
    }

    /// A `rowType` entry as Snowflake's SQL API writes it.
    pub fn row_type(&self, name: &str, nullable: bool) -> Value {
        let (precision, scale, length, byte_length) = match *self {
            SnowflakeType::Fixed { precision, scale } => {
                (json!(precision), json!(scale), Value::Null, Value::Null)
            }
            SnowflakeType::Text { length } => (
                Value::Null,
                Value::Null,
                json!(length),
                json!(length.saturating_mul(4).min(SNOWFLAKE_TEXT_LENGTH)),
            ),
            SnowflakeType::Binary { length } => {
                (Value::Null, Value::Null, json!(length), json!(length))
            }
            SnowflakeType::Time { scale }
            | SnowflakeType::TimestampNtz { scale }
            | SnowflakeType::TimestampLtz { scale }
            | SnowflakeType::TimestampTz { scale } => {
                (json!(0), json!(scale), Value::Null, Value::Null)
            }
            SnowflakeType::Real
            | SnowflakeType::Boolean
            | SnowflakeType::Date
            | SnowflakeType::Variant
            | SnowflakeType::Object
            | SnowflakeType::Array => (Value::Null, Value::Null, Value::Null, Value::Null),
        };
        json!({
            "name": name,
            "database": "",
            "schema": "",
            "table": "",
            "nullable": nullable,
            "type": self.family(),
            "byteLength": byte_length,
            "length": length,
            "scale": scale,
            "precision": precision,
            "collation": null,
        })
    }

    /// The `jsonv2` cell for `value`: `None` for SQL NULL.
    pub fn encode(&self, value: &EngineValue) -> Result<Option<String>, EncodeError> {
        if matches!(value, EngineValue::Null) {
            return Ok(None);
        }
        let err = || EncodeError::new(value, self.declared_name());
        let text = match *self {
            SnowflakeType::Fixed { scale, .. } => encode_decimal(value, scale).ok_or_else(err)?,
            SnowflakeType::Real => match as_f64(value).ok_or_else(err)? {
                f if f.is_nan() => "NaN".to_string(),
                f if f == f64::INFINITY => "inf".to_string(),
                f if f == f64::NEG_INFINITY => "-inf".to_string(),
                f => f.to_string(),
            },
            SnowflakeType::Text { .. } => as_text(value),
            SnowflakeType::Boolean => as_bool(value).ok_or_else(err)?.to_string(),
            SnowflakeType::Date => {
                let date = as_date(value).ok_or_else(err)?;
                (date - epoch_date()).num_days().to_string()
            }
            SnowflakeType::Time { scale } => {
                let time = as_time(value).ok_or_else(err)?;
                let nanos = i128::from(time.num_seconds_from_midnight()) * 1_000_000_000
                    + i128::from(time.nanosecond() % 1_000_000_000);
                epoch_fraction(nanos, scale)
            }
            SnowflakeType::TimestampNtz { scale } => {
                let ts = as_timestamp(value).ok_or_else(err)?;
                epoch_fraction(naive_nanos(&ts.wall), scale)
            }
            SnowflakeType::TimestampLtz { scale } => {
                let ts = as_timestamp(value).ok_or_else(err)?;
                epoch_fraction(naive_nanos(&ts.utc()), scale)
            }
            SnowflakeType::TimestampTz { scale } => {
                let ts = as_timestamp(value).ok_or_else(err)?;
                let offset_minutes = ts.offset_seconds.unwrap_or(0) / 60;
                format!(
                    "{} {}",
                    epoch_fraction(naive_nanos(&ts.utc()), scale),
                    offset_minutes + 1440
                )
            }
            SnowflakeType::Variant => {
                serde_json::to_string_pretty(&as_json(value)).map_err(|_| err())?
            }
            SnowflakeType::Object => match as_json(value) {
                v @ Value::Object(_) => serde_json::to_string_pretty(&v).map_err(|_| err())?,
                _ => return Err(err()),
            },
            SnowflakeType::Array => match as_json(value) {
                v @ Value::Array(_) => serde_json::to_string_pretty(&v).map_err(|_| err())?,
                _ => return Err(err()),
            },
            SnowflakeType::Binary { .. } => hex::encode_upper(as_bytes(value).ok_or_else(err)?),
        };
        Ok(Some(text))
    }

    /// A readable type name for error messages (`NUMBER(10,2)`, `TIMESTAMP_TZ`).
    pub fn declared_name(&self) -> String {
        match *self {
            SnowflakeType::Fixed { precision, scale } => format!("NUMBER({precision},{scale})"),
            other => other.family().to_ascii_uppercase(),
        }
    }
}

/// `rowType` and the encoded rows of one Snowflake result set.
#[derive(Debug, Clone, PartialEq)]
pub struct SnowflakeEncoded {
    pub types: Vec<SnowflakeType>,
    /// One `rowType` entry per column.
    pub row_type: Vec<Value>,
    /// `jsonv2` rows: strings or null.
    pub rows: Vec<Vec<Option<String>>>,
}

/// Encode an engine result for the Snowflake SQL API.
pub fn encode_snowflake(
    columns: &[EngineColumn],
    rows: &[Vec<EngineValue>],
) -> Result<SnowflakeEncoded, ColumnEncodeError> {
    let types: Vec<SnowflakeType> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| SnowflakeType::of_column(c, i, rows))
        .collect();
    let row_type = columns
        .iter()
        .zip(&types)
        .map(|(c, t)| t.row_type(&c.name, c.nullable))
        .collect();
    let rows = encode_rows(columns, rows, |i, v| types[i].encode(v))?;
    Ok(SnowflakeEncoded {
        types,
        row_type,
        rows,
    })
}

/// Nanoseconds since the epoch of a wall-clock reading taken as UTC.
fn naive_nanos(t: &NaiveDateTime) -> i128 {
    let utc = t.and_utc();
    i128::from(utc.timestamp()) * 1_000_000_000 + i128::from(utc.timestamp_subsec_nanos())
}

/// `nanos` as `seconds.fraction` with `scale` fraction digits (truncated, as Snowflake stores it).
fn epoch_fraction(nanos: i128, scale: u32) -> String {
    let scale = scale.min(9);
    let unit = 10i128.pow(9 - scale);
    // Floor to the column's precision, then print exactly.
    let ticks = nanos.div_euclid(unit);
    let per_second = 10i128.pow(scale);
    let negative = ticks < 0;
    let abs = ticks.abs();
    let (secs, frac) = (abs / per_second, abs % per_second);
    let sign = if negative { "-" } else { "" };
    if scale == 0 {
        format!("{sign}{secs}")
    } else {
        format!("{sign}{secs}.{frac:0width$}", width = scale as usize)
    }
}
