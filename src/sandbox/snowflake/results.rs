//! Result sets of the Snowflake emulator: encoded once (`jsonv2`, see
//! [`crate::sandbox::types::encode_snowflake`]) and cut into partitions of
//! `settings.partition_rows` rows, each with its exact `uncompressedSize`
//! (the `resultSetMetaData.partitionInfo` of sqlapi.yaml). An empty result
//! still has one empty partition, as the SQL API answers.

use super::answers::SqlError;
use crate::sandbox::engine::{EngineColumn, EngineResult, EngineValue};
use crate::sandbox::statements::{row_json_bytes, row_ranges};
use crate::sandbox::types::{SnowflakeEncoded, encode_snowflake};
use serde_json::Value;

/// A finished result set, encoded once and cut into partitions.
pub(super) struct ResultData {
    pub(super) encoded: SnowflakeEncoded,
    /// One per partition (at least one, empty for an empty result).
    pub(super) partitions: Vec<Partition>,
}

/// A `[start, end)` row range and the bytes of its JSON rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Partition {
    pub(super) start: usize,
    pub(super) end: usize,
    pub(super) uncompressed_size: usize,
}

impl ResultData {
    /// Cut into partitions of `partition_rows`; sizes are computed once, here (on the blocking pool).
    pub(super) fn new(encoded: SnowflakeEncoded, partition_rows: usize) -> Self {
        let mut partitions: Vec<Partition> = row_ranges(encoded.rows.len(), partition_rows)
            .into_iter()
            .map(|range| Partition {
                start: range.start,
                end: range.end,
                uncompressed_size: json_rows_size(&encoded.rows[range]),
            })
            .collect();
        if partitions.is_empty() {
            partitions.push(Partition {
                start: 0,
                end: 0,
                uncompressed_size: 2,
            });
        }
        Self {
            encoded,
            partitions,
        }
    }

    /// The `data` of partition `index` (`None` when out of range); SQL NULL
    /// is JSON `null`, or the text `"null"` with `nullable=false`.
    pub(super) fn partition_data(&self, index: usize, nullable: bool) -> Option<Value> {
        let Partition { start, end, .. } = *self.partitions.get(index)?;
        let rows = self.encoded.rows.get(start..end)?;
        Some(Value::Array(
            rows.iter()
                .map(|row| {
                    Value::Array(
                        row.iter()
                            .map(|cell| match cell {
                                Some(s) => Value::String(s.clone()),
                                None if nullable => Value::Null,
                                None => Value::String("null".to_string()),
                            })
                            .collect(),
                    )
                })
                .collect(),
        ))
    }
}

/// Bytes of `rows` as a JSON array of arrays of strings/null (computed exactly).
fn json_rows_size(rows: &[Vec<Option<String>>]) -> usize {
    let cells: usize = rows.iter().map(|row| row_json_bytes(row)).sum();
    cells + rows.len().saturating_sub(1) + 2
}

/// Encode an engine result and cut it into partitions.
pub(super) fn encode_result(
    result: EngineResult,
    partition_rows: usize,
) -> Result<ResultData, SqlError> {
    let encoded = encode_snowflake(&result.columns, &result.rows)
        .map_err(|e| SqlError::new("100038", "22018", e.to_string()))?;
    Ok(ResultData::new(encoded, partition_rows))
}

/// A result of text columns (token management answers).
pub(super) fn text_result(
    names: &[&str],
    rows: Vec<Vec<Option<String>>>,
) -> Result<ResultData, SqlError> {
    let columns: Vec<(&str, &str)> = names.iter().map(|n| (*n, "TEXT")).collect();
    typed_result(&columns, rows)
}

/// A result of `(name, declared type)` columns whose cells are given as
/// text (timestamps as RFC 3339, numbers as digits).
pub(super) fn typed_result(
    columns: &[(&str, &str)],
    rows: Vec<Vec<Option<String>>>,
) -> Result<ResultData, SqlError> {
    let columns: Vec<EngineColumn> = columns
        .iter()
        .map(|(name, declared)| EngineColumn {
            name: (*name).to_string(),
            declared_type: Some((*declared).to_string()),
            inferred_type: None,
            nullable: true,
        })
        .collect();
    let rows: Vec<Vec<EngineValue>> = rows
        .into_iter()
        .map(|r| {
            r.into_iter()
                .map(|c| c.map_or(EngineValue::Null, EngineValue::Text))
                .collect()
        })
        .collect();
    encode_result(EngineResult { columns, rows }, usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn partitions_cover_all_rows() {
        let encoded = SnowflakeEncoded {
            types: vec![],
            row_type: vec![],
            rows: (0..5).map(|i| vec![Some(i.to_string())]).collect(),
        };
        let data = ResultData::new(encoded, 2);
        let ranges: Vec<(usize, usize)> =
            data.partitions.iter().map(|p| (p.start, p.end)).collect();
        assert_eq!(ranges, vec![(0, 2), (2, 4), (4, 5)]);
        assert_eq!(data.partition_data(2, true), Some(json!([["4"]])));
        assert_eq!(data.partition_data(3, true), None);
        assert_eq!(
            data.partitions[0].uncompressed_size,
            serde_json::to_string(&data.partition_data(0, true).unwrap())
                .unwrap()
                .len()
        );
    }

    #[test]
    fn empty_result_has_one_empty_partition() {
        let encoded = SnowflakeEncoded {
            types: vec![],
            row_type: vec![],
            rows: vec![],
        };
        let data = ResultData::new(encoded, 10);
        assert_eq!((data.partitions[0].start, data.partitions[0].end), (0, 0));
        assert_eq!(data.partitions.len(), 1);
        assert_eq!(data.partition_data(0, true), Some(json!([])));
    }

    #[test]
    fn null_cells_follow_the_nullable_flag() {
        let encoded = SnowflakeEncoded {
            types: vec![],
            row_type: vec![],
            rows: vec![vec![None, Some("x".into())]],
        };
        let data = ResultData::new(encoded, 10);
        assert_eq!(data.partition_data(0, true), Some(json!([[null, "x"]])));
        assert_eq!(data.partition_data(0, false), Some(json!([["null", "x"]])));
        assert_eq!(
            data.partitions[0].uncompressed_size,
            serde_json::to_string(&data.partition_data(0, true).unwrap())
                .unwrap()
                .len()
        );
    }
}
