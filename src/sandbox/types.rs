//! Platform type naming and value encoding for the sandbox emulators.
//!
//! The engine answers with [`EngineColumn`]s (a fixture's declared,
//! platform-native type, or none for computed expressions) and SQLite
//! [`EngineValue`]s. This module turns them into what the real platforms put
//! on the wire:
//!
//! **Snowflake SQL API v2, `jsonv2`** ([`SnowflakeType`]): `rowType` entries
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
//!
//! **Databricks Statement Execution API, `JSON_ARRAY`** ([`DatabricksType`]):
//! manifest columns with `type_name` (`LONG` for BIGINT, `INT`, `DECIMAL`,
//! `DOUBLE`, `STRING`, ...) and `type_text` (the SQL type, upper-case:
//! `BIGINT`, `DECIMAL(10,2)`, `ARRAY<STRING>`), values as strings or null:
//! integers and decimals as exact text (`"10.50"`), doubles as shortest text
//! (`"NaN"`, `"Infinity"`, `"-Infinity"`), booleans `"true"`/`"false"`, DATE
//! `"2024-01-05"`, TIMESTAMP as the UTC instant `"2024-01-05T08:00:00.000Z"`,
//! TIMESTAMP_NTZ `"2024-01-05T10:00:00.000"` (milliseconds, or microseconds
//! when the value has them), BINARY as standard base64, ARRAY/MAP/STRUCT/VARIANT as
//! compact JSON text.
//!
//! Fixture storage the encoders accept: dates and timestamps as ISO text
//! (`2024-01-05`, `2024-01-05T10:00:00[.f]`, `2024-01-05 10:00:00`,
//! `2024-01-05T10:00:00+02:00`, `...Z`) or integers (days / epoch seconds),
//! binaries as hex text or blobs, JSON as JSON text, booleans as `0`/`1` or
//! `true`/`false`. A value that does not fit its column's type is an
//! [`EncodeError`] naming the value and the type, never a silent guess.
//! Columns without a declared type are inferred from their first non-null
//! value: integer → NUMBER(38,0) / BIGINT, real → FLOAT / DOUBLE,
//! text → TEXT / STRING, blob → BINARY.

use super::engine::{EngineColumn, EngineValue};
use base64::Engine as _;
use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use serde_json::{Value, json};

/// A value that cannot be encoded as its column's type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("value {value} is not a valid {type_name}")]
pub struct EncodeError {
    /// The offending value, rendered for a human (text quoted, blobs as hex).
    pub value: String,
    /// The column type it was meant to be.
    pub type_name: String,
}

impl EncodeError {
    fn new(value: &EngineValue, type_name: impl Into<String>) -> Self {
        let value = match value {
            EngineValue::Null => "NULL".to_string(),
            EngineValue::Integer(i) => i.to_string(),
            EngineValue::Real(f) => f.to_string(),
            EngineValue::Text(s) => format!("'{s}'"),
            EngineValue::Blob(b) => format!("x'{}'", hex::encode(b)),
        };
        Self {
            value,
            type_name: type_name.into(),
        }
    }
}

/// Fraction digits Snowflake uses for TIME/TIMESTAMP when none is declared.
const DEFAULT_TIME_SCALE: u32 = 9;
/// Snowflake's default VARCHAR length and byte length.
const SNOWFLAKE_TEXT_LENGTH: u64 = 16_777_216;
/// Snowflake's default BINARY length.
const SNOWFLAKE_BINARY_LENGTH: u64 = 8_388_608;

// ---------------------------------------------------------------------------
// Snowflake
// ---------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------
// Databricks
// ---------------------------------------------------------------------------

/// A Databricks SQL column type, as the Statement Execution API reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabricksType {
    Boolean,
    Byte,
    Short,
    Int,
    Long,
    Float,
    Double,
    Decimal {
        precision: u32,
        scale: u32,
    },
    String,
    Date,
    Timestamp,
    TimestampNtz,
    Binary,
    /// `ARRAY<...>`; holds the full type text.
    Array(String),
    /// `MAP<...>`; holds the full type text.
    Map(String),
    /// `STRUCT<...>`; holds the full type text.
    Struct(String),
    /// Semi-structured `VARIANT`.
    Variant,
}

impl DatabricksType {
    /// Parse a declared Databricks type (`BIGINT`, `DECIMAL(10,2)`, `ARRAY<STRING>`, synonyms included).
    pub fn parse(declared: &str) -> Option<DatabricksType> {
        let trimmed = declared.trim();
        let upper = trimmed.to_ascii_uppercase();
        for (prefix, make) in [
            (
                "ARRAY",
                DatabricksType::Array as fn(String) -> DatabricksType,
            ),
            ("MAP", DatabricksType::Map),
            ("STRUCT", DatabricksType::Struct),
        ] {
            if let Some(rest) = upper.strip_prefix(prefix)
                && rest.trim_start().starts_with('<')
                && upper.ends_with('>')
            {
                return Some(make(complex_type_text(trimmed, prefix.len())));
            }
        }
        let (base, args) = split_type(trimmed)?;
        let t = match base.as_str() {
            "BOOLEAN" | "BOOL" => DatabricksType::Boolean,
            "TINYINT" | "BYTE" => DatabricksType::Byte,
            "SMALLINT" | "SHORT" => DatabricksType::Short,
            "INT" | "INTEGER" => DatabricksType::Int,
            "BIGINT" | "LONG" => DatabricksType::Long,
            "FLOAT" | "REAL" => DatabricksType::Float,
            "DOUBLE" | "DOUBLE PRECISION" => DatabricksType::Double,
            "DECIMAL" | "DEC" | "NUMERIC" => DatabricksType::Decimal {
                precision: args.first().map(|p| *p as u32).unwrap_or(10),
                scale: args.get(1).map(|s| *s as u32).unwrap_or(0),
            },
            "STRING" | "VARCHAR" | "CHAR" | "TEXT" => DatabricksType::String,
            "DATE" => DatabricksType::Date,
            "TIMESTAMP" | "TIMESTAMP_LTZ" => DatabricksType::Timestamp,
            "TIMESTAMP_NTZ" => DatabricksType::TimestampNtz,
            "BINARY" => DatabricksType::Binary,
            "VARIANT" => DatabricksType::Variant,
            _ => return None,
        };
        Some(t)
    }

    /// The type of a column without a declared type, from a sample value.
    pub fn infer(sample: Option<&EngineValue>) -> DatabricksType {
        match sample {
            Some(EngineValue::Integer(_)) => DatabricksType::Long,
            Some(EngineValue::Real(_)) => DatabricksType::Double,
            Some(EngineValue::Blob(_)) => DatabricksType::Binary,
            Some(EngineValue::Text(_)) | Some(EngineValue::Null) | None => DatabricksType::String,
        }
    }

    /// The type of an engine column: its declared type when it names a
    /// Databricks type, else inferred from the first non-null value.
    pub fn of_column(column: &EngineColumn, index: usize, rows: &[Vec<EngineValue>]) -> Self {
        column
            .declared_type
            .as_deref()
            .and_then(DatabricksType::parse)
            .or_else(|| {
                column
                    .inferred_type
                    .as_deref()
                    .and_then(DatabricksType::parse)
            })
            .unwrap_or_else(|| DatabricksType::infer(first_non_null(rows, index)))
    }

    /// The manifest's `type_name`.
    pub fn type_name(&self) -> &'static str {
        match self {
            DatabricksType::Boolean => "BOOLEAN",
            DatabricksType::Byte => "BYTE",
            DatabricksType::Short => "SHORT",
            DatabricksType::Int => "INT",
            DatabricksType::Long => "LONG",
            DatabricksType::Float => "FLOAT",
            DatabricksType::Double => "DOUBLE",
            DatabricksType::Decimal { .. } => "DECIMAL",
            DatabricksType::String => "STRING",
            DatabricksType::Date => "DATE",
            DatabricksType::Timestamp => "TIMESTAMP",
            DatabricksType::TimestampNtz => "TIMESTAMP_NTZ",
            DatabricksType::Binary => "BINARY",
            DatabricksType::Array(_) => "ARRAY",
            DatabricksType::Map(_) => "MAP",
            DatabricksType::Struct(_) => "STRUCT",
            DatabricksType::Variant => "VARIANT",
        }
    }

    /// The manifest's `type_text`: the SQL type as Databricks prints it.
    pub fn type_text(&self) -> String {
        match self {
            DatabricksType::Byte => "TINYINT".into(),
            DatabricksType::Short => "SMALLINT".into(),
            DatabricksType::Long => "BIGINT".into(),
            DatabricksType::Decimal { precision, scale } => {
                format!("DECIMAL({precision},{scale})")
            }
            DatabricksType::Array(text)
            | DatabricksType::Map(text)
            | DatabricksType::Struct(text) => text.clone(),
            other => other.type_name().into(),
        }
    }

    /// A manifest `schema.columns` entry.
    pub fn manifest_column(&self, name: &str, position: usize) -> Value {
        let mut column = json!({
            "name": name,
            "type_text": self.type_text(),
            "type_name": self.type_name(),
            "position": position,
        });
        if let DatabricksType::Decimal { precision, scale } = self {
            column["type_precision"] = json!(precision);
            column["type_scale"] = json!(scale);
        }
        column
    }

    /// The `JSON_ARRAY` cell for `value`: `None` for SQL NULL.
    pub fn encode(&self, value: &EngineValue) -> Result<Option<String>, EncodeError> {
        if matches!(value, EngineValue::Null) {
            return Ok(None);
        }
        let err = || EncodeError::new(value, self.type_text());
        let text = match self {
            DatabricksType::Boolean => as_bool(value).ok_or_else(err)?.to_string(),
            DatabricksType::Byte
            | DatabricksType::Short
            | DatabricksType::Int
            | DatabricksType::Long => {
                let i = as_integer(value).ok_or_else(err)?;
                let (min, max) = match self {
                    DatabricksType::Byte => (i64::from(i8::MIN), i64::from(i8::MAX)),
                    DatabricksType::Short => (i64::from(i16::MIN), i64::from(i16::MAX)),
                    DatabricksType::Int => (i64::from(i32::MIN), i64::from(i32::MAX)),
                    _ => (i64::MIN, i64::MAX),
                };
                if i < min || i > max {
                    return Err(err());
                }
                i.to_string()
            }
            DatabricksType::Float | DatabricksType::Double => {
                match as_f64(value).ok_or_else(err)? {
                    f if f.is_nan() => "NaN".to_string(),
                    f if f == f64::INFINITY => "Infinity".to_string(),
                    f if f == f64::NEG_INFINITY => "-Infinity".to_string(),
                    f => f.to_string(),
                }
            }
            DatabricksType::Decimal { scale, .. } => {
                encode_decimal(value, *scale).ok_or_else(err)?
            }
            DatabricksType::String => as_text(value),
            DatabricksType::Date => {
                use chrono::Datelike;
                let date = as_date(value).ok_or_else(err)?;
                format!("{:04}-{:02}-{:02}", date.year(), date.month(), date.day())
            }
            DatabricksType::Timestamp => {
                let ts = as_timestamp(value).ok_or_else(err)?;
                format!("{}Z", iso_millis(&ts.utc()))
            }
            DatabricksType::TimestampNtz => iso_millis(&as_timestamp(value).ok_or_else(err)?.wall),
            DatabricksType::Binary => {
                base64::engine::general_purpose::STANDARD.encode(as_bytes(value).ok_or_else(err)?)
            }
            DatabricksType::Array(_) => match as_json(value) {
                v @ Value::Array(_) => v.to_string(),
                _ => return Err(err()),
            },
            DatabricksType::Map(_) | DatabricksType::Struct(_) => match as_json(value) {
                v @ Value::Object(_) => v.to_string(),
                _ => return Err(err()),
            },
            DatabricksType::Variant => as_json(value).to_string(),
        };
        Ok(Some(text))
    }
}

/// Manifest columns and the encoded rows of one Databricks result set.
#[derive(Debug, Clone, PartialEq)]
pub struct DatabricksEncoded {
    pub types: Vec<DatabricksType>,
    /// One manifest `schema.columns` entry per column.
    pub columns: Vec<Value>,
    /// `JSON_ARRAY` rows: strings or null.
    pub rows: Vec<Vec<Option<String>>>,
}

/// Encode an engine result for the Databricks Statement Execution API.
pub fn encode_databricks(
    columns: &[EngineColumn],
    rows: &[Vec<EngineValue>],
) -> Result<DatabricksEncoded, ColumnEncodeError> {
    let types: Vec<DatabricksType> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| DatabricksType::of_column(c, i, rows))
        .collect();
    let manifest = columns
        .iter()
        .zip(&types)
        .enumerate()
        .map(|(i, (c, t))| t.manifest_column(&c.name, i))
        .collect();
    let rows = encode_rows(columns, rows, |i, v| types[i].encode(v))?;
    Ok(DatabricksEncoded {
        types,
        columns: manifest,
        rows,
    })
}

/// A cell of a result that cannot be encoded, with where it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {column}, row {row}: {source}")]
pub struct ColumnEncodeError {
    pub column: String,
    /// 1-based row number in the result.
    pub row: usize,
    pub source: EncodeError,
}

// ---------------------------------------------------------------------------
// SQL literals for bound parameters (Snowflake bindings, Databricks parameters)
// ---------------------------------------------------------------------------

/// A single-quoted SQL string literal: `'` doubled, `\` escaped (both platforms' dialects read backslash escapes).
pub fn sql_string_literal(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "''"))
}

/// True for a plain decimal number literal: `-12`, `3.5`, `.5`, `1e-3` (nothing else, so it is safe to splice into SQL).
pub fn is_number_literal(text: &str) -> bool {
    let body = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(at) => (&body[..at], Some(&body[at + 1..])),
        None => (body, None),
    };
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok =
        !(int_part.is_empty() && frac_part.is_empty()) && digits(int_part) && digits(frac_part);
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    mantissa_ok && exponent_ok
}

// ---------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------

fn encode_rows(
    columns: &[EngineColumn],
    rows: &[Vec<EngineValue>],
    encode: impl Fn(usize, &EngineValue) -> Result<Option<String>, EncodeError>,
) -> Result<Vec<Vec<Option<String>>>, ColumnEncodeError> {
    rows.iter()
        .enumerate()
        .map(|(r, row)| {
            row.iter()
                .enumerate()
                .map(|(i, v)| {
                    encode(i, v).map_err(|source| ColumnEncodeError {
                        column: columns.get(i).map(|c| c.name.clone()).unwrap_or_default(),
                        row: r + 1,
                        source,
                    })
                })
                .collect()
        })
        .collect()
}

fn first_non_null(rows: &[Vec<EngineValue>], index: usize) -> Option<&EngineValue> {
    rows.iter()
        .filter_map(|r| r.get(index))
        .find(|v| !matches!(v, EngineValue::Null))
}

/// Split `NAME(a, b)` into the upper-cased, space-normalised name and its numeric arguments.
fn split_type(declared: &str) -> Option<(String, Vec<u64>)> {
    let declared = declared.trim();
    let (name, args) = match declared.find('(') {
        Some(open) => {
            let close = declared.rfind(')')?;
            if close < open || !declared[close + 1..].trim().is_empty() {
                return None;
            }
            let args = declared[open + 1..close]
                .split(',')
                .map(|a| a.trim().parse::<u64>().ok())
                .collect::<Option<Vec<u64>>>()?;
            (&declared[..open], args)
        }
        None => (declared, Vec::new()),
    };
    let name = name
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_ascii_uppercase();
    if name.is_empty() {
        return None;
    }
    Some((name, args))
}

/// `array< string >` → `ARRAY<STRING>`, `struct<city:string>` → `STRUCT<city: STRING>`:
/// type keywords upper-cased, struct field names kept as declared, one space
/// after `,` and `:`.
fn complex_type_text(declared: &str, keyword_len: usize) -> String {
    let compact: Vec<char> = declared[keyword_len..]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let mut out = declared[..keyword_len].to_ascii_uppercase();
    let mut word = String::new();
    for (i, c) in compact.iter().enumerate() {
        if c.is_alphanumeric() || *c == '_' {
            word.push(*c);
            let next = compact.get(i + 1);
            let ends_word = !next.is_some_and(|n| n.is_alphanumeric() || *n == '_');
            if ends_word {
                if next == Some(&':') {
                    out.push_str(&word);
                } else {
                    out.push_str(&word.to_ascii_uppercase());
                }
                word.clear();
            }
        } else {
            out.push(*c);
            if *c == ',' || *c == ':' {
                out.push(' ');
            }
        }
    }
    out
}

fn as_text(value: &EngineValue) -> String {
    match value {
        EngineValue::Null => String::new(),
        EngineValue::Integer(i) => i.to_string(),
        EngineValue::Real(f) => f.to_string(),
        EngineValue::Text(s) => s.clone(),
        EngineValue::Blob(b) => match std::str::from_utf8(b) {
            Ok(s) => s.to_string(),
            Err(_) => hex::encode_upper(b),
        },
    }
}

fn as_f64(value: &EngineValue) -> Option<f64> {
    match value {
        EngineValue::Integer(i) => Some(*i as f64),
        EngineValue::Real(f) => Some(*f),
        EngineValue::Text(s) => match s.trim().to_ascii_lowercase().as_str() {
            "nan" => Some(f64::NAN),
            "inf" | "infinity" | "+inf" | "+infinity" => Some(f64::INFINITY),
            "-inf" | "-infinity" => Some(f64::NEG_INFINITY),
            other => other.parse().ok().filter(|f: &f64| f.is_finite()),
        },
        EngineValue::Null | EngineValue::Blob(_) => None,
    }
}

fn as_integer(value: &EngineValue) -> Option<i64> {
    match value {
        EngineValue::Integer(i) => Some(*i),
        EngineValue::Real(f) if f.fract() == 0.0 && f.abs() < 9.0e18 => Some(*f as i64),
        EngineValue::Text(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn as_bool(value: &EngineValue) -> Option<bool> {
    match value {
        EngineValue::Integer(0) => Some(false),
        EngineValue::Integer(1) => Some(true),
        EngineValue::Real(f) if *f == 0.0 => Some(false),
        EngineValue::Real(f) if *f == 1.0 => Some(true),
        EngineValue::Text(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" => Some(true),
            "false" | "0" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

fn as_bytes(value: &EngineValue) -> Option<Vec<u8>> {
    match value {
        EngineValue::Blob(b) => Some(b.clone()),
        EngineValue::Text(s) => {
            let s = s.trim();
            let s = s
                .strip_prefix("0x")
                .or_else(|| s.strip_prefix("0X"))
                .unwrap_or(s);
            hex::decode(s).ok()
        }
        _ => None,
    }
}

/// JSON text parsed; text that is not JSON becomes a JSON string, numbers stay numbers.
fn as_json(value: &EngineValue) -> Value {
    match value {
        EngineValue::Null => Value::Null,
        EngineValue::Integer(i) => json!(i),
        EngineValue::Real(f) => serde_json::Number::from_f64(*f)
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(f.to_string())),
        EngineValue::Text(s) => {
            serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.clone()))
        }
        EngineValue::Blob(b) => match std::str::from_utf8(b) {
            Ok(s) => serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.to_string())),
            Err(_) => Value::String(hex::encode_upper(b)),
        },
    }
}

fn epoch_date() -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).expect("1970-01-01 is a valid date")
}

fn as_date(value: &EngineValue) -> Option<NaiveDate> {
    match value {
        EngineValue::Integer(days) => {
            epoch_date().checked_add_signed(chrono::Duration::try_days(*days)?)
        }
        EngineValue::Text(s) => {
            let s = s.trim();
            parse_timestamp_text(s).map(|ts| ts.wall.date())
        }
        _ => None,
    }
}

fn as_time(value: &EngineValue) -> Option<NaiveTime> {
    match value {
        EngineValue::Integer(secs) => {
            NaiveTime::from_num_seconds_from_midnight_opt(u32::try_from(*secs).ok()?, 0)
        }
        EngineValue::Text(s) => {
            let s = s.trim();
            NaiveTime::parse_from_str(s, "%H:%M:%S%.f")
                .or_else(|_| NaiveTime::parse_from_str(s, "%H:%M"))
                .ok()
        }
        _ => None,
    }
}

/// A timestamp as stored: its wall-clock reading and, when given, its UTC offset.
#[derive(Debug, Clone, Copy, PartialEq)]
struct StoredTimestamp {
    wall: NaiveDateTime,
    offset_seconds: Option<i32>,
}

impl StoredTimestamp {
    /// The instant in UTC (a timestamp without offset is read as UTC).
    fn utc(&self) -> NaiveDateTime {
        self.wall - chrono::Duration::seconds(i64::from(self.offset_seconds.unwrap_or(0)))
    }
}

fn as_timestamp(value: &EngineValue) -> Option<StoredTimestamp> {
    match value {
        EngineValue::Integer(secs) => Some(StoredTimestamp {
            wall: DateTime::from_timestamp(*secs, 0)?.naive_utc(),
            offset_seconds: None,
        }),
        EngineValue::Real(secs) if secs.is_finite() => {
            let whole = secs.floor();
            let nanos = ((secs - whole) * 1e9).round() as u32;
            Some(StoredTimestamp {
                wall: DateTime::from_timestamp(whole as i64, nanos.min(999_999_999))?.naive_utc(),
                offset_seconds: None,
            })
        }
        EngineValue::Text(s) => parse_timestamp_text(s.trim()),
        _ => None,
    }
}

fn parse_timestamp_text(s: &str) -> Option<StoredTimestamp> {
    fast_iso_timestamp(s.as_bytes()).or_else(|| chrono_timestamp(s))
}

/// `YYYY-MM-DD[(T| )HH:MM[:SS[.f{1,9}]][Z|±HH[:MM]]]` without chrono's format
/// machinery (the engine stores timestamps this way; encoding a million rows
/// must stay cheap). `None` for anything else.
fn fast_iso_timestamp(b: &[u8]) -> Option<StoredTimestamp> {
    let num = |range: std::ops::Range<usize>| -> Option<u32> {
        let digits = b.get(range)?;
        digits.iter().try_fold(0u32, |acc, d| {
            d.is_ascii_digit().then(|| acc * 10 + u32::from(d - b'0'))
        })
    };
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let date = NaiveDate::from_ymd_opt(i32::try_from(num(0..4)?).ok()?, num(5..7)?, num(8..10)?)?;
    if b.len() == 10 {
        return Some(StoredTimestamp {
            wall: date.and_time(NaiveTime::MIN),
            offset_seconds: None,
        });
    }
    if !matches!(b[10], b'T' | b't' | b' ') || b.get(13) != Some(&b':') {
        return None;
    }
    let (hour, minute) = (num(11..13)?, num(14..16)?);
    let mut at = 16;
    let mut second = 0;
    let mut nanos = 0;
    if b.get(at) == Some(&b':') {
        second = num(at + 1..at + 3)?;
        at += 3;
        if b.get(at) == Some(&b'.') {
            let start = at + 1;
            let mut end = start;
            while end < b.len() && b[end].is_ascii_digit() {
                end += 1;
            }
            if end == start || end - start > 9 {
                return None;
            }
            nanos = num(start..end)? * 10u32.pow(9 - (end - start) as u32);
            at = end;
        }
    }
    let time = NaiveTime::from_hms_nano_opt(hour, minute, second, nanos)?;
    let offset_seconds = match &b[at..] {
        [] => None,
        [b'Z' | b'z'] => Some(0),
        [sign @ (b'+' | b'-'), rest @ ..] => {
            let (h, m) = match rest {
                [_, _] => (num(at + 1..at + 3)?, 0),
                [_, _, b':', _, _] | [_, _, _, _] => {
                    (num(at + 1..at + 3)?, num(b.len() - 2..b.len())?)
                }
                _ => return None,
            };
            let total = i32::try_from(h * 3600 + m * 60).ok()?;
            Some(if *sign == b'-' { -total } else { total })
        }
        _ => return None,
    };
    Some(StoredTimestamp {
        wall: date.and_time(time),
        offset_seconds,
    })
}

fn chrono_timestamp(s: &str) -> Option<StoredTimestamp> {
    let normalised = s.replacen(' ', "T", 1);
    if let Ok(dt) = DateTime::<FixedOffset>::parse_from_rfc3339(&normalised) {
        return Some(StoredTimestamp {
            wall: dt.naive_local(),
            offset_seconds: Some(dt.offset().local_minus_utc()),
        });
    }
    for format in [
        "%Y-%m-%dT%H:%M:%S%.f%:z",
        "%Y-%m-%dT%H:%M:%S%.f%z",
        "%Y-%m-%dT%H:%M%:z",
    ] {
        if let Ok(dt) = DateTime::<FixedOffset>::parse_from_str(&normalised, format) {
            return Some(StoredTimestamp {
                wall: dt.naive_local(),
                offset_seconds: Some(dt.offset().local_minus_utc()),
            });
        }
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"] {
        if let Ok(wall) = NaiveDateTime::parse_from_str(&normalised, format) {
            return Some(StoredTimestamp {
                wall,
                offset_seconds: None,
            });
        }
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .map(|d| StoredTimestamp {
            wall: d.and_time(NaiveTime::MIN),
            offset_seconds: None,
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

/// ISO 8601 with milliseconds, or microseconds when the value has them.
fn iso_millis(t: &NaiveDateTime) -> String {
    use chrono::Datelike;
    let nanos = t.nanosecond() % 1_000_000_000;
    let (y, mo, d) = (t.year(), t.month(), t.day());
    let (h, mi, s) = (t.hour(), t.minute(), t.second());
    if nanos.is_multiple_of(1_000_000) {
        format!(
            "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{:03}",
            nanos / 1_000_000
        )
    } else {
        format!(
            "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{:06}",
            nanos / 1_000
        )
    }
}

/// Exact decimal text with exactly `scale` fraction digits (half away from zero).
fn encode_decimal(value: &EngineValue, scale: u32) -> Option<String> {
    if let EngineValue::Integer(i) = value {
        // The common case, without the general text arithmetic.
        return Some(if scale == 0 {
            i.to_string()
        } else {
            format!("{i}.{:0<width$}", "", width = scale as usize)
        });
    }
    let text = match value {
        EngineValue::Integer(i) => i.to_string(),
        EngineValue::Real(f) if f.is_finite() => f.to_string(),
        EngineValue::Text(s) => s.trim().to_string(),
        _ => return None,
    };
    normalise_decimal(&text, scale)
}

/// `"10.5"` at scale 2 → `"10.50"`; `"0.125"` at scale 2 → `"0.13"`; exponents accepted.
fn normalise_decimal(text: &str, scale: u32) -> Option<String> {
    // Fast path: plain `[-]int[.frac]` already within the scale only needs padding.
    let unsigned = text.strip_prefix('-').unwrap_or(text);
    let (int_part, frac_part) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let canonical_int = int_part == "0" || (!int_part.is_empty() && !int_part.starts_with('0'));
    if canonical_int
        && frac_part.len() <= scale as usize
        && int_part.bytes().all(|b| b.is_ascii_digit())
        && frac_part.bytes().all(|b| b.is_ascii_digit())
        && (text.len() == unsigned.len() || unsigned.bytes().any(|b| (b'1'..=b'9').contains(&b)))
    {
        let mut out = String::with_capacity(text.len() + scale as usize + 1);
        out.push_str(&text[..text.len() - unsigned.len()]);
        out.push_str(int_part);
        if scale > 0 {
            out.push('.');
            out.push_str(frac_part);
            out.extend(std::iter::repeat_n('0', scale as usize - frac_part.len()));
        }
        return Some(out);
    }
    normalise_decimal_exact(text, scale)
}

/// The general case of [`normalise_decimal`]: exponents, rounding, leading zeros.
fn normalise_decimal_exact(text: &str, scale: u32) -> Option<String> {
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => (&unsigned[..at], unsigned[at + 1..].parse::<i64>().ok()?),
        None => (unsigned, 0),
    };
    let (int_part, frac_part) = match mantissa.split_once('.') {
        Some((i, f)) => (i, f),
        None => (mantissa, ""),
    };
    if (int_part.is_empty() && frac_part.is_empty())
        || !int_part.bytes().all(|b| b.is_ascii_digit())
        || !frac_part.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    // All digits, and the position of the decimal point within them.
    let mut digits: Vec<u8> = int_part
        .bytes()
        .chain(frac_part.bytes())
        .map(|b| b - b'0')
        .collect();
    let mut point = int_part.len() as i64 + exponent;
    if point < 0 {
        let pad = usize::try_from(-point).ok()?;
        digits.splice(0..0, std::iter::repeat_n(0, pad));
        point = 0;
    }
    let point = usize::try_from(point).ok()?;
    if digits.len() < point {
        digits.resize(point, 0);
    }
    let keep = point + scale as usize;
    let round_up = digits.get(keep).is_some_and(|d| *d >= 5);
    digits.resize(keep, 0);
    if round_up {
        let mut i = keep;
        loop {
            if i == 0 {
                digits.insert(0, 1);
                break;
            }
            i -= 1;
            if digits[i] == 9 {
                digits[i] = 0;
            } else {
                digits[i] += 1;
                break;
            }
        }
    }
    let point = digits.len() - scale as usize;
    let int_digits: String = digits[..point]
        .iter()
        .map(|d| char::from(b'0' + d))
        .collect::<String>()
        .trim_start_matches('0')
        .to_string();
    let int_digits = if int_digits.is_empty() {
        "0".to_string()
    } else {
        int_digits
    };
    let frac_digits: String = digits[point..]
        .iter()
        .map(|d| char::from(b'0' + d))
        .collect();
    let is_zero = digits.iter().all(|d| *d == 0);
    let sign = if negative && !is_zero { "-" } else { "" };
    Some(if scale == 0 {
        format!("{sign}{int_digits}")
    } else {
        format!("{sign}{int_digits}.{frac_digits}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> EngineValue {
        EngineValue::Text(s.to_string())
    }

    fn sf(declared: &str, v: EngineValue) -> Option<String> {
        SnowflakeType::parse(declared)
            .unwrap_or_else(|| panic!("{declared} parses"))
            .encode(&v)
            .unwrap_or_else(|e| panic!("{declared}: {e}"))
    }

    fn dbx(declared: &str, v: EngineValue) -> Option<String> {
        DatabricksType::parse(declared)
            .unwrap_or_else(|| panic!("{declared} parses"))
            .encode(&v)
            .unwrap_or_else(|e| panic!("{declared}: {e}"))
    }

    #[test]
    fn snowflake_fixed_keeps_exact_scale() {
        assert_eq!(
            sf("NUMBER", EngineValue::Integer(42)).as_deref(),
            Some("42")
        );
        assert_eq!(
            sf("NUMBER(10,2)", EngineValue::Real(10.5)).as_deref(),
            Some("10.50")
        );
        assert_eq!(
            sf("NUMBER(10,2)", EngineValue::Integer(7)).as_deref(),
            Some("7.00")
        );
        assert_eq!(sf("NUMBER(10,2)", text("0.125")).as_deref(), Some("0.13"));
        assert_eq!(sf("NUMBER(10,2)", text("-0.001")).as_deref(), Some("0.00"));
        assert_eq!(
            sf("NUMBER(12,3)", text("-99.9995")).as_deref(),
            Some("-100.000")
        );
        assert_eq!(
            sf("DECIMAL(38,0)", EngineValue::Real(2.0)).as_deref(),
            Some("2")
        );
        assert_eq!(sf("NUMBER(5,1)", text("1.5e2")).as_deref(), Some("150.0"));
        assert_eq!(sf("NUMBER(5,4)", text("15e-4")).as_deref(), Some("0.0015"));
        assert_eq!(sf("NUMBER", EngineValue::Null), None);
        assert!(
            SnowflakeType::parse("NUMBER(10,2)")
                .unwrap()
                .encode(&text("ten"))
                .is_err()
        );
    }

    #[test]
    fn decimal_fast_and_exact_paths_agree() {
        for text in [
            "0", "-0", "7", "-7", "10.5", "-10.5", "0.125", "007.5", "-0.0", "123.456", "1e3",
            "-0.001", "99.995", ".5", "5.",
        ] {
            for scale in [0, 1, 2, 3, 5] {
                assert_eq!(
                    normalise_decimal(text, scale),
                    normalise_decimal_exact(text, scale),
                    "{text} at scale {scale}"
                );
            }
        }
        assert_eq!(
            encode_decimal(&EngineValue::Integer(-3), 2).as_deref(),
            Some("-3.00")
        );
        assert_eq!(
            encode_decimal(&EngineValue::Integer(-3), 0).as_deref(),
            Some("-3")
        );
    }

    #[test]
    fn snowflake_real_text_boolean() {
        assert_eq!(sf("FLOAT", EngineValue::Real(1.5)).as_deref(), Some("1.5"));
        assert_eq!(sf("FLOAT", EngineValue::Integer(3)).as_deref(), Some("3"));
        assert_eq!(
            sf("FLOAT", EngineValue::Real(f64::NAN)).as_deref(),
            Some("NaN")
        );
        assert_eq!(
            sf("DOUBLE", EngineValue::Real(f64::NEG_INFINITY)).as_deref(),
            Some("-inf")
        );
        assert_eq!(
            sf("TEXT", text("a@example.com")).as_deref(),
            Some("a@example.com")
        );
        assert_eq!(
            sf("VARCHAR(20)", EngineValue::Integer(5)).as_deref(),
            Some("5")
        );
        assert_eq!(
            sf("BOOLEAN", EngineValue::Integer(1)).as_deref(),
            Some("true")
        );
        assert_eq!(sf("BOOLEAN", text("FALSE")).as_deref(), Some("false"));
        assert!(
            SnowflakeType::parse("BOOLEAN")
                .unwrap()
                .encode(&EngineValue::Integer(2))
                .is_err()
        );
    }

    #[test]
    fn snowflake_dates_and_times() {
        assert_eq!(sf("DATE", text("1970-01-01")).as_deref(), Some("0"));
        assert_eq!(sf("DATE", text("2024-01-05")).as_deref(), Some("19727"));
        assert_eq!(sf("DATE", text("1969-12-31")).as_deref(), Some("-1"));
        assert_eq!(
            sf("TIME", text("10:00:00")).as_deref(),
            Some("36000.000000000")
        );
        assert_eq!(sf("TIME(3)", text("00:00:01.5")).as_deref(), Some("1.500"));
        assert_eq!(
            sf("TIMESTAMP_NTZ", text("2024-01-05T10:00:00")).as_deref(),
            Some("1704448800.000000000")
        );
        assert_eq!(
            sf("TIMESTAMP_NTZ", text("2024-01-05 10:00:00.25")).as_deref(),
            Some("1704448800.250000000")
        );
        // NTZ keeps the wall clock of a value written with an offset.
        assert_eq!(
            sf("TIMESTAMP_NTZ", text("2024-01-05T10:00:00+02:00")).as_deref(),
            Some("1704448800.000000000")
        );
        // LTZ is the instant.
        assert_eq!(
            sf("TIMESTAMP_LTZ", text("2024-01-05T10:00:00+02:00")).as_deref(),
            Some("1704441600.000000000")
        );
        assert_eq!(
            sf("TIMESTAMP_LTZ", text("2024-01-05T10:00:00Z")).as_deref(),
            Some("1704448800.000000000")
        );
        assert_eq!(
            sf("TIMESTAMP_TZ", text("2024-01-05T10:00:00+02:00")).as_deref(),
            Some("1704441600.000000000 1560")
        );
        assert_eq!(
            sf("TIMESTAMP_TZ", text("2024-01-05T10:00:00-05:30")).as_deref(),
            Some("1704468600.000000000 1110")
        );
        assert_eq!(
            sf("TIMESTAMP_TZ", text("2024-01-05T10:00:00")).as_deref(),
            Some("1704448800.000000000 1440")
        );
        assert_eq!(
            sf("TIMESTAMP_NTZ(0)", text("1969-12-31T23:59:59.5")).as_deref(),
            Some("-1")
        );
        assert_eq!(
            sf("TIMESTAMP_NTZ(3)", text("1969-12-31T23:59:59.5")).as_deref(),
            Some("-0.500")
        );
        assert!(
            SnowflakeType::parse("DATE")
                .unwrap()
                .encode(&text("yesterday"))
                .is_err()
        );
    }

    #[test]
    fn iso_timestamps_parse_fast_and_exactly() {
        let parsed = |s: &str| fast_iso_timestamp(s.as_bytes());
        let ts = parsed("2024-01-05 10:00:00.123456789-05:30").unwrap();
        assert_eq!(ts.wall.to_string(), "2024-01-05 10:00:00.123456789");
        assert_eq!(ts.offset_seconds, Some(-(5 * 3600 + 30 * 60)));
        assert_eq!(parsed("2024-01-05T10:00Z").unwrap().offset_seconds, Some(0));
        assert_eq!(
            parsed("2024-01-05T10:00:00+0200").unwrap().offset_seconds,
            Some(7200)
        );
        assert_eq!(
            parsed("2024-01-05T10:00:00+02").unwrap().offset_seconds,
            Some(7200)
        );
        assert_eq!(
            parsed("2024-01-05").unwrap().wall.to_string(),
            "2024-01-05 00:00:00"
        );
        for bad in [
            "2024-13-05",
            "2024-01-05T25:00:00",
            "2024-01-05T10:00:00.",
            "2024-01-05T10:00:00.1234567891",
            "2024-01-05T10:00:00+2",
            "2024-01-05X10:00",
            "24-01-05",
        ] {
            assert_eq!(parsed(bad), None, "{bad}");
        }
        // Shapes the fast path leaves to chrono still parse.
        assert!(parse_timestamp_text("2024-01-05T10:00:00.5+02:00").is_some());
    }

    #[test]
    fn snowflake_semi_structured_and_binary() {
        assert_eq!(
            sf("VARIANT", text(r#"{"a":1}"#)).as_deref(),
            Some("{\n  \"a\": 1\n}")
        );
        assert_eq!(sf("VARIANT", text("plain")).as_deref(), Some("\"plain\""));
        assert_eq!(sf("VARIANT", EngineValue::Integer(3)).as_deref(), Some("3"));
        assert_eq!(
            sf("ARRAY", text("[1,2]")).as_deref(),
            Some("[\n  1,\n  2\n]")
        );
        assert_eq!(sf("OBJECT", text("{}")).as_deref(), Some("{}"));
        assert!(
            SnowflakeType::parse("OBJECT")
                .unwrap()
                .encode(&text("[1]"))
                .is_err()
        );
        assert_eq!(sf("BINARY", text("cafe01")).as_deref(), Some("CAFE01"));
        assert_eq!(
            sf("BINARY", EngineValue::Blob(vec![0xde, 0xad])).as_deref(),
            Some("DEAD")
        );
        assert!(
            SnowflakeType::parse("BINARY")
                .unwrap()
                .encode(&text("xyz"))
                .is_err()
        );
    }

    #[test]
    fn snowflake_row_type_entries() {
        let fixed = SnowflakeType::parse("NUMBER(10,2)")
            .unwrap()
            .row_type("AMOUNT", true);
        assert_eq!(fixed["type"], "fixed");
        assert_eq!(fixed["precision"], 10);
        assert_eq!(fixed["scale"], 2);
        assert_eq!(fixed["nullable"], true);
        let text_t = SnowflakeType::parse("TEXT")
            .unwrap()
            .row_type("EMAIL", false);
        assert_eq!(text_t["type"], "text");
        assert_eq!(text_t["length"], 16_777_216);
        let ts = SnowflakeType::parse("TIMESTAMP_TZ")
            .unwrap()
            .row_type("AT", true);
        assert_eq!(ts["type"], "timestamp_tz");
        assert_eq!(ts["scale"], 9);
        assert_eq!(
            SnowflakeType::parse("timestamp").unwrap().family(),
            "timestamp_ntz"
        );
        assert_eq!(SnowflakeType::parse("INTEGER").unwrap().family(), "fixed");
        assert_eq!(SnowflakeType::parse("GEOGRAPHY"), None);
    }

    #[test]
    fn undeclared_columns_are_inferred_from_values() {
        let columns = vec![
            EngineColumn {
                name: "N".into(),
                declared_type: None,
                inferred_type: None,
                nullable: true,
            },
            EngineColumn {
                name: "F".into(),
                declared_type: None,
                inferred_type: None,
                nullable: true,
            },
            EngineColumn {
                name: "S".into(),
                declared_type: None,
                inferred_type: None,
                nullable: true,
            },
        ];
        let rows = vec![
            vec![EngineValue::Null, EngineValue::Real(0.5), text("x")],
            vec![
                EngineValue::Integer(2),
                EngineValue::Real(1.0),
                EngineValue::Null,
            ],
        ];
        let sf = encode_snowflake(&columns, &rows).unwrap();
        assert_eq!(sf.row_type[0]["type"], "fixed");
        assert_eq!(sf.row_type[1]["type"], "real");
        assert_eq!(sf.row_type[2]["type"], "text");
        assert_eq!(sf.rows[1], vec![Some("2".into()), Some("1".into()), None]);
        let db = encode_databricks(&columns, &rows).unwrap();
        assert_eq!(db.columns[0]["type_name"], "LONG");
        assert_eq!(db.columns[0]["type_text"], "BIGINT");
        assert_eq!(db.columns[1]["type_name"], "DOUBLE");
        assert_eq!(db.columns[2]["type_name"], "STRING");
        assert_eq!(db.columns[2]["position"], 2);
    }

    #[test]
    fn encode_errors_name_column_and_row() {
        let columns = vec![EngineColumn {
            name: "D".into(),
            declared_type: Some("DATE".into()),
            inferred_type: None,
            nullable: true,
        }];
        let rows = vec![vec![text("2024-01-01")], vec![text("not a date")]];
        let err = encode_snowflake(&columns, &rows).unwrap_err();
        assert_eq!(err.column, "D");
        assert_eq!(err.row, 2);
        assert!(
            err.to_string().contains("'not a date' is not a valid DATE"),
            "{err}"
        );
    }

    #[test]
    fn databricks_type_names_and_texts() {
        let cases = [
            ("BIGINT", "LONG", "BIGINT"),
            ("INT", "INT", "INT"),
            ("decimal(10,2)", "DECIMAL", "DECIMAL(10,2)"),
            ("DOUBLE", "DOUBLE", "DOUBLE"),
            ("string", "STRING", "STRING"),
            ("BOOLEAN", "BOOLEAN", "BOOLEAN"),
            ("DATE", "DATE", "DATE"),
            ("TIMESTAMP", "TIMESTAMP", "TIMESTAMP"),
            ("BINARY", "BINARY", "BINARY"),
            ("variant", "VARIANT", "VARIANT"),
            ("array<string>", "ARRAY", "ARRAY<STRING>"),
            ("MAP<STRING,INT>", "MAP", "MAP<STRING, INT>"),
            (
                "STRUCT<city:string, zip:int>",
                "STRUCT",
                "STRUCT<city: STRING, zip: INT>",
            ),
        ];
        for (declared, name, text) in cases {
            let t = DatabricksType::parse(declared).unwrap_or_else(|| panic!("{declared}"));
            assert_eq!(t.type_name(), name, "{declared}");
            assert_eq!(t.type_text(), text, "{declared}");
        }
        let dec = DatabricksType::parse("DECIMAL(10,2)")
            .unwrap()
            .manifest_column("AMOUNT", 3);
        assert_eq!(dec["type_precision"], 10);
        assert_eq!(dec["type_scale"], 2);
        assert_eq!(dec["position"], 3);
        assert_eq!(DatabricksType::parse("GEOGRAPHY"), None);
    }

    #[test]
    fn sql_literals_for_bound_values() {
        assert_eq!(sql_string_literal("O'Brien\\"), "'O''Brien\\\\'");
        for ok in ["1", "-12", "3.5", ".5", "1e-3", "+2E10"] {
            assert!(is_number_literal(ok), "{ok}");
        }
        for bad in ["", "-", ".", "1e", "1;DROP", "0x10", "1 2", "NaN"] {
            assert!(!is_number_literal(bad), "{bad}");
        }
    }

    #[test]
    fn databricks_values_are_strings() {
        assert_eq!(dbx("BIGINT", EngineValue::Integer(9)).as_deref(), Some("9"));
        assert_eq!(dbx("INT", text("12")).as_deref(), Some("12"));
        assert!(
            DatabricksType::Int
                .encode(&EngineValue::Integer(1 << 40))
                .is_err()
        );
        assert_eq!(
            dbx("DECIMAL(10,2)", EngineValue::Real(10.5)).as_deref(),
            Some("10.50")
        );
        assert_eq!(
            dbx("DOUBLE", EngineValue::Real(0.25)).as_deref(),
            Some("0.25")
        );
        assert_eq!(
            dbx("DOUBLE", EngineValue::Real(f64::INFINITY)).as_deref(),
            Some("Infinity")
        );
        assert_eq!(dbx("STRING", text("EU")).as_deref(), Some("EU"));
        assert_eq!(
            dbx("BOOLEAN", EngineValue::Integer(0)).as_deref(),
            Some("false")
        );
        assert_eq!(
            dbx("DATE", text("2024-01-05")).as_deref(),
            Some("2024-01-05")
        );
        assert_eq!(
            dbx("TIMESTAMP", text("2024-01-05T10:00:00+02:00")).as_deref(),
            Some("2024-01-05T08:00:00.000Z")
        );
        assert_eq!(
            dbx("TIMESTAMP", text("2024-01-05 10:00:00.123456")).as_deref(),
            Some("2024-01-05T10:00:00.123456Z")
        );
        assert_eq!(
            dbx("TIMESTAMP_NTZ", text("2024-01-05T10:00:00")).as_deref(),
            Some("2024-01-05T10:00:00.000")
        );
        assert_eq!(dbx("BINARY", text("cafe")).as_deref(), Some("yv4="));
        assert_eq!(
            dbx("ARRAY<STRING>", text(r#"[ "a", "b" ]"#)).as_deref(),
            Some(r#"["a","b"]"#)
        );
        assert_eq!(
            dbx("MAP<STRING,INT>", text(r#"{"k": 1}"#)).as_deref(),
            Some(r#"{"k":1}"#)
        );
        assert!(
            DatabricksType::parse("ARRAY<INT>")
                .unwrap()
                .encode(&text("{}"))
                .is_err()
        );
        assert_eq!(dbx("STRING", EngineValue::Null), None);
    }
}
