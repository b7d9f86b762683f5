//! Results of the Databricks emulator: the engine's rows after `row_limit`
//! and `byte_limit` (an INLINE result over 25 MiB without `byte_limit`
//! fails, as on Databricks), encoded once and cut into chunks of
//! `settings.databricks_chunk_rows`, with the `manifest` and chunk bodies of
//! the API. Fields holding their default value are left out of every answer
//! ([`sparse`]), as the real server does.

use super::StatementError;
use super::request::Limits;
use crate::sandbox::engine::EngineResult;
use crate::sandbox::statements::{row_json_bytes, row_ranges};
use crate::sandbox::types::{DatabricksEncoded, encode_databricks};
use serde_json::{Value, json};
use std::ops::Range;

/// Databricks' cap on an INLINE result.
const INLINE_LIMIT_BYTES: usize = 25 * 1024 * 1024;

/// A finished result: encoded rows after row/byte limits, cut into chunks.
pub(super) struct ResultData {
    encoded: DatabricksEncoded,
    /// `[start, end)` row ranges, one per chunk (none for an empty result).
    chunks: Vec<Range<usize>>,
    truncated: bool,
}

impl ResultData {
    /// How many chunks the result has.
    pub(super) fn chunk_count(&self) -> usize {
        self.chunks.len()
    }

    /// Chunk `index` as the API answers it (`chunk_index`, `row_offset`,
    /// `row_count`, `data_array`, and the link to the next chunk); a chunk
    /// past the end is empty.
    pub(super) fn chunk_json(&self, statement_id: &str, index: usize) -> Value {
        let range = self.chunks.get(index).cloned().unwrap_or(0..0);
        let rows = self.encoded.rows.get(range.clone()).unwrap_or_default();
        let mut chunk = json!({
            "chunk_index": index,
            "row_offset": range.start,
            "row_count": range.len(),
            "data_array": rows,
        });
        if index + 1 < self.chunks.len() {
            chunk["next_chunk_index"] = json!(index + 1);
            chunk["next_chunk_internal_link"] = json!(format!(
                "/api/2.0/sql/statements/{statement_id}/result/chunks/{}",
                index + 1
            ));
        }
        chunk
    }

    /// The `manifest`: format, schema, chunks, row count, `truncated`.
    pub(super) fn manifest(&self) -> Value {
        let chunks: Vec<Value> = self
            .chunks
            .iter()
            .enumerate()
            .map(|(i, range)| {
                // No `byte_count`: "not available when using INLINE disposition" (model.go BaseChunkInfo).
                json!({"chunk_index": i, "row_offset": range.start, "row_count": range.len()})
            })
            .collect();
        json!({
            "format": "JSON_ARRAY",
            "schema": {
                "column_count": self.encoded.columns.len(),
                "columns": self.encoded.columns,
            },
            "total_chunk_count": self.chunks.len(),
            "chunks": chunks,
            "total_row_count": self.encoded.rows.len(),
            "truncated": self.truncated,
        })
    }
}

/// Drop the fields Databricks leaves out because they hold their default
/// value (the API's fields are `omitempty`: a `0`, `false`, `""`, `[]` or
/// `{}` is absent on the wire), recursively through objects and the objects
/// inside arrays. Row data (`data_array`) is kept as is.
fn omit_defaults(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|key, v| {
                key == "data_array"
                    || !matches!(v, Value::Bool(false) | Value::Null)
                        && v.as_u64() != Some(0)
                        && v.as_str() != Some("")
                        && !v.as_array().is_some_and(Vec::is_empty)
            });
            for (key, v) in map.iter_mut() {
                if key != "data_array" {
                    omit_defaults(v);
                }
            }
            map.retain(|key, v| {
                key == "data_array" || !v.as_object().is_some_and(|o| o.is_empty())
            });
        }
        Value::Array(items) => items.iter_mut().for_each(omit_defaults),
        _ => {}
    }
}

/// An answer with its default-valued fields left out ([`omit_defaults`]).
pub(super) fn sparse(mut value: Value) -> Value {
    omit_defaults(&mut value);
    value
}

/// Apply row and byte limits, encode, and cut into chunks.
pub(super) fn build_result(
    mut result: EngineResult,
    limits: Limits,
    chunk_rows: usize,
) -> Result<ResultData, StatementError> {
    let mut truncated = false;
    if let Some(max) = limits.rows
        && result.rows.len() > max
    {
        result.rows.truncate(max);
        truncated = true;
    }
    let mut encoded = encode_databricks(&result.columns, &result.rows)
        .map_err(|e| StatementError::new("BAD_REQUEST", "22018", e.to_string()))?;
    let byte_cap = limits.bytes.unwrap_or(INLINE_LIMIT_BYTES);
    let mut total = 0usize;
    let mut keep = encoded.rows.len();
    let mut sizes = Vec::with_capacity(encoded.rows.len());
    for (i, row) in encoded.rows.iter().enumerate() {
        let size = row_json_bytes(row);
        total += size;
        if total > byte_cap {
            keep = i;
            break;
        }
        sizes.push(size);
    }
    if keep < encoded.rows.len() {
        if limits.bytes.is_none() {
            return Err(StatementError::new(
                "BAD_REQUEST",
                "54000",
                format!(
                    "The result exceeds the {} MiB limit of disposition INLINE. Set byte_limit or row_limit, or use disposition EXTERNAL_LINKS.",
                    INLINE_LIMIT_BYTES / (1024 * 1024)
                ),
            ));
        }
        encoded.rows.truncate(keep);
        truncated = true;
    }
    let chunks = row_ranges(encoded.rows.len(), chunk_rows);
    Ok(ResultData {
        encoded,
        chunks,
        truncated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::engine::{EngineColumn, EngineValue};

    fn text_rows(n: usize) -> EngineResult {
        EngineResult {
            columns: vec![EngineColumn {
                name: "c".into(),
                declared_type: Some("STRING".into()),
                inferred_type: None,
                nullable: true,
            }],
            rows: (0..n)
                .map(|i| vec![EngineValue::Text(i.to_string())])
                .collect(),
        }
    }

    #[test]
    fn chunks_link_to_the_next_and_the_last_has_no_link() {
        let data = build_result(text_rows(5), Limits::default(), 2).unwrap();
        assert_eq!(data.chunk_count(), 3);
        let first = data.chunk_json("s", 0);
        assert_eq!(first["data_array"], json!([["0"], ["1"]]));
        assert_eq!(first["next_chunk_index"], 1);
        let last = data.chunk_json("s", 2);
        assert_eq!(
            (last["row_offset"].clone(), last["row_count"].clone()),
            (json!(4), json!(1))
        );
        assert!(last.get("next_chunk_index").is_none());
        assert_eq!(data.manifest()["total_row_count"], 5);
    }

    #[test]
    fn row_limit_truncates_and_says_so() {
        let limits = Limits {
            rows: Some(2),
            bytes: None,
        };
        let data = build_result(text_rows(5), limits, 10).unwrap();
        assert_eq!(data.manifest()["truncated"], true);
        assert_eq!(data.manifest()["total_row_count"], 2);
    }
}
