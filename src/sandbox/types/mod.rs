//! Platform type naming and value encoding for the sandbox emulators.
//!
//! The engine answers with [`EngineColumn`]s (a fixture's declared,
//! platform-native type, or none for computed expressions) and SQLite
//! [`EngineValue`]s. This module turns them into what the real platforms put
//! on the wire, one encoder per emulator ([`SnowflakeType`],
//! [`DatabricksType`]; their modules document the exact text of each cell).
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
//!
//! Layout: [`snowflake`] encodes for the Snowflake wire (`rowType`, `jsonv2`
//! cells), [`databricks`] for the Databricks wire (manifest `type_name` /
//! `type_text`, `JSON_ARRAY` cells); both read fixture values through
//! [`stored`] and exact decimals through [`decimal`]. [`literal`] prints bound
//! parameter values as SQL literals.

mod databricks;
mod decimal;
mod literal;
mod snowflake;
mod stored;

pub use databricks::{DatabricksEncoded, DatabricksType, encode_databricks};
pub use literal::{is_number_literal, sql_string_literal};
pub use snowflake::{SnowflakeEncoded, SnowflakeType, encode_snowflake};

use super::engine::{EngineColumn, EngineValue};

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
    pub(super) fn new(value: &EngineValue, type_name: impl Into<String>) -> Self {
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

/// A cell of a result that cannot be encoded, with where it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {column}, row {row}: {source}")]
pub struct ColumnEncodeError {
    pub column: String,
    /// 1-based row number in the result.
    pub row: usize,
    pub source: EncodeError,
}

pub(super) fn encode_rows(
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

pub(super) fn first_non_null(rows: &[Vec<EngineValue>], index: usize) -> Option<&EngineValue> {
    rows.iter()
        .filter_map(|r| r.get(index))
        .find(|v| !matches!(v, EngineValue::Null))
}

/// Split `NAME(a, b)` into the upper-cased, space-normalised name and its numeric arguments.
pub(super) fn split_type(declared: &str) -> Option<(String, Vec<u64>)> {
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

#[cfg(test)]
mod tests;
