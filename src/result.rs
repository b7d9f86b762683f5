//! The one result-set model both platforms decode into.
//!
//! A [`ResultSet`] carries typed columns, rows of JSON values, the row count,
//! whether the platform had more rows than were returned (`truncated`), and
//! the platform's statement id, and (when the platform holds more rows)
//! `next_cursor` for `fetch_more`. It is what the MCP tools return as
//! `structuredContent`, and [`ResultSet::render_text`] gives the compact text
//! table that goes next to it for the model.
//!
//! Value conventions (documented in the tool output schema):
//! - integer → JSON number (string when outside the i64 range)
//! - decimal with scale → exact decimal text, e.g. `"10.50"`
//! - float → JSON number (`"NaN"`, `"inf"`, `"-inf"` as strings)
//! - boolean → JSON bool; date → `"YYYY-MM-DD"`; time → `"HH:MM:SS[.f]"`
//! - timestamp (no zone) → `"YYYY-MM-DDTHH:MM:SS[.f]"`; with zone → RFC 3339
//! - json (VARIANT/OBJECT/ARRAY/MAP/STRUCT) → the parsed JSON value
//! - binary → lower-case hex text; NULL → `null`

use crate::cursor::PagePosition;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt::Write as _;

/// Which governed platform produced a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Platform {
    Snowflake,
    Databricks,
}

impl Platform {
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Snowflake => "snowflake",
            Platform::Databricks => "databricks",
        }
    }

    /// The product name for messages: `"Snowflake"` / `"Databricks"`.
    pub fn display_name(self) -> &'static str {
        match self {
            Platform::Snowflake => "Snowflake",
            Platform::Databricks => "Databricks",
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The portable type of a column, shared by both platforms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ColumnType {
    Integer,
    Decimal,
    Float,
    String,
    Boolean,
    Date,
    Time,
    Timestamp,
    TimestampTz,
    Json,
    Binary,
    Other,
}

/// One column of a result set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Column {
    /// Column name as the platform reported it.
    pub name: String,
    /// Portable type (how the values in `rows` are encoded).
    #[serde(rename = "type")]
    pub column_type: ColumnType,
    /// The platform's own type, e.g. `NUMBER(10,2)` or `DECIMAL(10,2)`.
    pub native_type: String,
    /// Whether the column may hold NULL (true when unknown).
    pub nullable: bool,
}

/// Rows returned by one governed statement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ResultSet {
    /// Platform that ran the statement.
    pub platform: Platform,
    /// The platform's statement id (Snowflake statementHandle / Databricks statement_id).
    pub statement_id: String,
    /// Column descriptions, in order.
    pub columns: Vec<Column>,
    /// Rows; each row has one value per column, encoded as the column type says.
    pub rows: Vec<Vec<Value>>,
    /// Number of rows in `rows`.
    pub row_count: usize,
    /// True when the statement produced more rows than were returned.
    pub truncated: bool,
    /// Total rows the platform reported for the statement, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_row_count: Option<u64>,
    /// When the result is truncated and the platform still holds the rest: pass it to
    /// `fetch_more` for the next page (same columns). Absent on the last page. Opaque;
    /// valid only for the same user, and only until the credential the query ran under expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
    /// Where the platform's result continues after these rows (filled by the
    /// platform path; the server turns it into `next_cursor`). Never serialized.
    #[serde(skip)]
    #[schemars(skip)]
    pub next_position: Option<PagePosition>,
}

impl ResultSet {
    /// An empty result for a statement, to be filled by a decoder.
    pub fn new(platform: Platform, statement_id: impl Into<String>, columns: Vec<Column>) -> Self {
        Self {
            platform,
            statement_id: statement_id.into(),
            columns,
            rows: Vec::new(),
            row_count: 0,
            truncated: false,
            total_row_count: None,
            next_cursor: None,
            next_position: None,
        }
    }

    /// Append rows, stopping at `max_rows`; returns false once the limit cut rows off.
    pub fn extend_limited(
        &mut self,
        rows: impl IntoIterator<Item = Vec<Value>>,
        max_rows: usize,
    ) -> bool {
        for row in rows {
            if self.rows.len() >= max_rows {
                self.truncated = true;
                self.row_count = self.rows.len();
                return false;
            }
            self.rows.push(row);
        }
        self.row_count = self.rows.len();
        true
    }

    /// A compact, aligned text table for the model, cut to `max_chars`.
    ///
    /// Column widths are measured over every row, but only the rows that fit
    /// are formatted, so no second copy of the whole result is held.
    pub fn render_text(&self, max_chars: usize) -> String {
        let mut out = String::new();
        let headers: Vec<String> = self.columns.iter().map(|c| c.name.clone()).collect();
        let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, value) in row.iter().enumerate() {
                if let Some(w) = widths.get_mut(i) {
                    *w = (*w).max(cell_text(value).chars().count()).min(MAX_CELL);
                }
            }
        }
        push_row(&mut out, &headers, &widths);
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        push_row(&mut out, &rule, &widths);
        let mut shown = 0usize;
        for row in &self.rows {
            if out.len() > max_chars {
                break;
            }
            let cells: Vec<String> = row.iter().map(cell_text).collect();
            push_row(&mut out, &cells, &widths);
            shown += 1;
        }
        let _ = write!(
            out,
            "({} row{}{}; {} statement {})",
            self.row_count,
            if self.row_count == 1 { "" } else { "s" },
            if self.truncated {
                ", truncated: more rows exist"
            } else {
                ""
            },
            self.platform,
            self.statement_id
        );
        if shown < self.rows.len() {
            let _ = write!(
                out,
                "\n(text shows the first {shown} rows; all {} are in structuredContent)",
                self.rows.len()
            );
        }
        out
    }

    /// The JSON form of this result (exactly what `serde_json::to_value`
    /// gives), built by moving the rows instead of cloning them, so a large
    /// result is held once rather than twice while it is turned into
    /// `structuredContent`.
    pub fn into_json(self) -> Value {
        let Self {
            platform,
            statement_id,
            columns,
            rows,
            row_count,
            truncated,
            total_row_count,
            next_cursor,
            next_position: _,
        } = self;
        let mut map = serde_json::Map::new();
        map.insert(
            "platform".into(),
            Value::String(platform.as_str().to_string()),
        );
        map.insert("statement_id".into(), Value::String(statement_id));
        map.insert(
            "columns".into(),
            Value::Array(columns.into_iter().map(Column::into_json).collect()),
        );
        map.insert(
            "rows".into(),
            Value::Array(rows.into_iter().map(Value::Array).collect()),
        );
        map.insert("row_count".into(), Value::from(row_count));
        map.insert("truncated".into(), Value::Bool(truncated));
        if let Some(total) = total_row_count {
            map.insert("total_row_count".into(), Value::from(total));
        }
        if let Some(cursor) = next_cursor {
            map.insert("next_cursor".into(), Value::String(cursor));
        }
        Value::Object(map)
    }
}

impl Column {
    /// The JSON form of this column (what `serde_json::to_value` gives).
    fn into_json(self) -> Value {
        let mut map = serde_json::Map::new();
        map.insert("name".into(), Value::String(self.name));
        // A unit enum with rename_all always serializes to a string.
        map.insert(
            "type".into(),
            serde_json::to_value(self.column_type).unwrap_or(Value::Null),
        );
        map.insert("native_type".into(), Value::String(self.native_type));
        map.insert("nullable".into(), Value::Bool(self.nullable));
        Value::Object(map)
    }
}

const MAX_CELL: usize = 40;

fn cell_text(v: &Value) -> String {
    let s = match v {
        Value::Null => "NULL".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let s = s.replace(['\n', '\r', '\t'], " ");
    if s.chars().count() > MAX_CELL {
        let mut cut: String = s.chars().take(MAX_CELL - 1).collect();
        cut.push('…');
        cut
    } else {
        s
    }
}

fn push_row(out: &mut String, cells: &[String], widths: &[usize]) {
    let mut line = String::new();
    for (i, cell) in cells.iter().enumerate() {
        if i > 0 {
            line.push_str(" | ");
        }
        let w = widths.get(i).copied().unwrap_or(0);
        let pad = w.saturating_sub(cell.chars().count());
        line.push_str(cell);
        line.extend(std::iter::repeat_n(' ', pad));
    }
    out.push_str(line.trim_end());
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> ResultSet {
        let mut rs = ResultSet::new(
            Platform::Snowflake,
            "01b2-abc",
            vec![
                Column {
                    name: "ID".into(),
                    column_type: ColumnType::Integer,
                    native_type: "NUMBER(38,0)".into(),
                    nullable: false,
                },
                Column {
                    name: "EMAIL".into(),
                    column_type: ColumnType::String,
                    native_type: "TEXT".into(),
                    nullable: true,
                },
            ],
        );
        rs.extend_limited(
            vec![vec![json!(1), json!("***")], vec![json!(2), Value::Null]],
            10,
        );
        rs
    }

    #[test]
    fn text_table_has_header_rows_and_footer() {
        let text = sample().render_text(10_000);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "ID | EMAIL");
        assert_eq!(lines[2], "1  | ***");
        assert_eq!(lines[3], "2  | NULL");
        assert!(lines[4].starts_with("(2 rows; snowflake statement 01b2-abc)"));
    }

    #[test]
    fn limit_marks_truncation() {
        let mut rs = ResultSet::new(Platform::Databricks, "s1", vec![]);
        let more = rs.extend_limited((0..5).map(|i| vec![json!(i)]), 3);
        assert!(!more);
        assert!(rs.truncated);
        assert_eq!(rs.row_count, 3);
        assert!(rs.render_text(1000).contains("truncated"));
    }

    #[test]
    fn into_json_matches_serde_without_total_row_count() {
        let rs = sample();
        assert_eq!(rs.total_row_count, None);
        let moved = rs.clone().into_json();
        assert_eq!(moved, serde_json::to_value(&rs).unwrap());
        assert!(moved.get("total_row_count").is_none());
        assert_eq!(moved["rows"], json!([[1, "***"], [2, null]]));
    }

    #[test]
    fn into_json_matches_serde_with_total_row_count() {
        let mut rs = ResultSet::new(
            Platform::Databricks,
            "stmt-9",
            vec![Column {
                name: "amount".into(),
                column_type: ColumnType::Decimal,
                native_type: "DECIMAL(10,2)".into(),
                nullable: true,
            }],
        );
        rs.extend_limited((0..4).map(|i| vec![json!(format!("{i}.50"))]), 3);
        rs.total_row_count = Some(4);
        rs.next_cursor = Some("opaque.cursor".into());
        rs.next_position = Some(PagePosition::START);
        let moved = rs.clone().into_json();
        assert_eq!(moved, serde_json::to_value(&rs).unwrap());
        assert_eq!(moved["total_row_count"], 4);
        assert_eq!(moved["next_cursor"], "opaque.cursor");
        assert!(moved.get("next_position").is_none());
        assert_eq!(moved["truncated"], true);
        assert_eq!(moved["columns"][0]["type"], "decimal");
    }

    #[test]
    fn text_table_widths_cover_rows_not_shown() {
        let mut rs = ResultSet::new(
            Platform::Snowflake,
            "q",
            vec![Column {
                name: "V".into(),
                column_type: ColumnType::String,
                native_type: "TEXT".into(),
                nullable: true,
            }],
        );
        rs.extend_limited(
            vec![vec![json!("a")], vec![json!("b")], vec![json!("longer")]],
            10,
        );
        // Room for header, rule and one row only.
        let text = rs.render_text(10);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[1], "------");
        assert_eq!(lines[2], "a");
        assert!(
            text.ends_with("(text shows the first 1 rows; all 3 are in structuredContent)"),
            "{text}"
        );
    }

    #[test]
    fn serializes_type_field_in_snake_case() {
        let v = serde_json::to_value(sample()).unwrap();
        assert_eq!(v["columns"][0]["type"], "integer");
        assert_eq!(v["platform"], "snowflake");
        assert_eq!(v["row_count"], 2);
    }
}
