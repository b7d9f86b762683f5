//! The Databricks wire encoder, for the **Databricks Statement Execution API,
//! `JSON_ARRAY`** ([`DatabricksType`]):
//! manifest columns with `type_name` (`LONG` for BIGINT, `INT`, `DECIMAL`,
//! `DOUBLE`, `STRING`, ...) and `type_text` (the SQL type, upper-case:
//! `BIGINT`, `DECIMAL(10,2)`, `ARRAY<STRING>`), values as strings or null:
//! integers and decimals as exact text (`"10.50"`), doubles as shortest text
//! (`"NaN"`, `"Infinity"`, `"-Infinity"`), booleans `"true"`/`"false"`, DATE
//! `"2024-01-05"`, TIMESTAMP as the UTC instant `"2024-01-05T08:00:00.000Z"`,
//! TIMESTAMP_NTZ `"2024-01-05T10:00:00.000"` (milliseconds, or microseconds
//! when the value has them), BINARY as standard base64, ARRAY/MAP/STRUCT/VARIANT as
//! compact JSON text.

use super::decimal::encode_decimal;
use super::stored::{
    as_bool, as_bytes, as_date, as_f64, as_integer, as_json, as_text, as_timestamp,
};
use super::{ColumnEncodeError, EncodeError, encode_rows, first_non_null, split_type};
use crate::sandbox::engine::{EngineColumn, EngineValue};
use base64::Engine as _;
use chrono::{NaiveDateTime, Timelike};
use serde_json::{Value, json};

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
