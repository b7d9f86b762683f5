//! Decoding of Databricks `JSON_ARRAY` results into the shared result model.
//!
//! The Statement Execution API returns every value as a JSON string (or
//! `null`) and describes the columns in `manifest.schema.columns`
//! (`type_name`, `type_text`, `type_scale`). [`RowDecoder`] maps each column
//! to a [`ColumnType`] and converts values per the conventions of
//! [`crate::result`]:
//!
//! | Databricks `type_name`                       | column type     | value                                   |
//! |----------------------------------------------|-----------------|-----------------------------------------|
//! | BYTE, SHORT, INT, LONG (TINYINT..BIGINT)     | `integer`       | JSON number (string beyond i64)         |
//! | DECIMAL(p,s), s > 0                          | `decimal`       | exact text with `s` fraction digits     |
//! | DECIMAL, scale unknown                       | `decimal`       | exact text with the value's own scale   |
//! | DECIMAL(p,0)                                 | `integer`       | JSON number (string beyond i64)         |
//! | FLOAT, DOUBLE                                | `float`         | JSON number, `"NaN"`, `"inf"`, `"-inf"` |
//! | BOOLEAN                                      | `boolean`       | JSON bool                               |
//! | DATE                                         | `date`          | `"YYYY-MM-DD"`                          |
//! | TIMESTAMP (an instant)                       | `timestamp_tz`  | RFC 3339 (no offset given → UTC, `Z`)   |
//! | TIMESTAMP_NTZ                                | `timestamp`     | `"YYYY-MM-DDTHH:MM:SS[.f]"`             |
//! | STRING, CHAR, VARCHAR                        | `string`        | the text                                |
//! | BINARY (base64 on the wire)                  | `binary`        | lower-case hex                          |
//! | ARRAY, MAP, STRUCT, VARIANT                  | `json`          | the parsed JSON value                   |
//! | INTERVAL                                     | `string`        | the text, e.g. `"1 02:00:00.000000000"` |
//! | NULL (VOID), anything else                   | `other`         | the text                                |
//!
//! A DECIMAL(p,0) value with non-zero fraction digits is a [`DecodeError`]
//! (an `integer` column never holds a non-integer).
//!
//! Fractional seconds are printed with 0, 3, 6 or 9 digits (as many as the
//! value needs). A value that does not fit its declared type is a
//! [`DecodeError`] naming the row and column; decoding never panics.

use super::wire::ColumnInfo;
use crate::result::{Column, ColumnType};
use base64::Engine as _;
use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat};
use serde_json::{Number, Value};

/// A value or a row that does not match the manifest.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    /// A value cannot be read as its column's declared type.
    #[error("row {row}, column {column} ({type_name}): {reason}")]
    Value {
        row: usize,
        column: String,
        type_name: String,
        reason: String,
    },
    /// A row has a different number of values than the manifest has columns.
    #[error("row {row} has {got} values but the result has {expected} columns")]
    RowWidth {
        row: usize,
        expected: usize,
        got: usize,
    },
}

/// How values of one column are converted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Integer,
    /// DECIMAL with a known or unknown scale (`None`: keep the given scale).
    Decimal(Option<u32>),
    Float,
    Boolean,
    Date,
    TimestampTz,
    TimestampNtz,
    Text,
    Binary,
    Json,
    Interval,
    Null,
    Other,
}

impl Kind {
    fn column_type(self) -> ColumnType {
        match self {
            Kind::Integer | Kind::Decimal(Some(0)) => ColumnType::Integer,
            Kind::Decimal(_) => ColumnType::Decimal,
            Kind::Float => ColumnType::Float,
            Kind::Boolean => ColumnType::Boolean,
            Kind::Date => ColumnType::Date,
            Kind::TimestampTz => ColumnType::TimestampTz,
            Kind::TimestampNtz => ColumnType::Timestamp,
            Kind::Text | Kind::Interval => ColumnType::String,
            Kind::Binary => ColumnType::Binary,
            Kind::Json => ColumnType::Json,
            Kind::Null | Kind::Other => ColumnType::Other,
        }
    }
}

/// Converts `JSON_ARRAY` rows of one result into typed rows.
#[derive(Debug, Clone)]
pub struct RowDecoder {
    columns: Vec<Column>,
    kinds: Vec<Kind>,
    /// Upper-case type name per column, for error messages.
    type_names: Vec<String>,
}

impl RowDecoder {
    /// Build the decoder from `manifest.schema.columns` (ordered by `position` when given).
    pub fn new(schema: &[ColumnInfo]) -> Self {
        let mut infos: Vec<&ColumnInfo> = schema.iter().collect();
        if infos.iter().all(|c| c.position.is_some()) {
            infos.sort_by_key(|c| c.position);
        }
        let mut columns = Vec::with_capacity(infos.len());
        let mut kinds = Vec::with_capacity(infos.len());
        let mut type_names = Vec::with_capacity(infos.len());
        for info in infos {
            let type_name = effective_type_name(info);
            let kind = kind_of(&type_name, info);
            let native_type = info
                .type_text
                .clone()
                .filter(|t| !t.trim().is_empty())
                .unwrap_or_else(|| type_name.clone());
            columns.push(Column {
                name: info.name.clone(),
                column_type: kind.column_type(),
                native_type,
                // The manifest does not say; the result model's "unknown" is nullable.
                nullable: true,
            });
            kinds.push(kind);
            type_names.push(type_name);
        }
        Self {
            columns,
            kinds,
            type_names,
        }
    }

    /// The result columns, in order.
    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// Decode one row; `row` is its index in the whole result (for errors).
    pub fn decode(&self, row: usize, values: &[Value]) -> Result<Vec<Value>, DecodeError> {
        if values.len() != self.kinds.len() {
            return Err(DecodeError::RowWidth {
                row,
                expected: self.kinds.len(),
                got: values.len(),
            });
        }
        values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                decode_value(self.kinds[i], v).map_err(|reason| DecodeError::Value {
                    row,
                    column: self.columns[i].name.clone(),
                    type_name: self.type_names[i].clone(),
                    reason,
                })
            })
            .collect()
    }
}

/// Heads of `type_text` that say more than any `type_name`: the SDK's
/// `ColumnInfoTypeName` enum (databricks-sdk-go `service/sql/model.go`) has
/// no `TIMESTAMP_NTZ` or `VARIANT`, so a workspace reports such a column as
/// e.g. `type_name: "TIMESTAMP", type_text: "TIMESTAMP_NTZ"`; `INTERVAL ...`
/// carries its qualifier only in `type_text`.
const SPECIFIC_TYPE_TEXTS: [&str; 4] = ["TIMESTAMP_NTZ", "VARIANT", "OBJECT", "INTERVAL"];

/// The upper-case type name: `type_name`, unless the head of `type_text` is
/// more specific ([`SPECIFIC_TYPE_TEXTS`]) or `type_name` is absent.
fn effective_type_name(info: &ColumnInfo) -> String {
    let from_name = info
        .type_name
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_ascii_uppercase);
    let from_text = info
        .type_text
        .as_deref()
        .unwrap_or("")
        .split(['(', '<', ' '])
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_uppercase();
    match from_name {
        Some(_) if SPECIFIC_TYPE_TEXTS.contains(&from_text.as_str()) => from_text,
        Some(name) => name,
        None => from_text,
    }
}

fn kind_of(type_name: &str, info: &ColumnInfo) -> Kind {
    match type_name {
        "BYTE" | "TINYINT" | "SHORT" | "SMALLINT" | "INT" | "INTEGER" | "LONG" | "BIGINT" => {
            Kind::Integer
        }
        "DECIMAL" | "DEC" | "NUMERIC" => Kind::Decimal(
            info.type_scale
                .or_else(|| scale_from_type_text(info.type_text.as_deref())),
        ),
        "FLOAT" | "REAL" | "DOUBLE" => Kind::Float,
        "BOOLEAN" => Kind::Boolean,
        "DATE" => Kind::Date,
        "TIMESTAMP" | "TIMESTAMP_LTZ" => Kind::TimestampTz,
        "TIMESTAMP_NTZ" => Kind::TimestampNtz,
        "STRING" | "CHAR" | "VARCHAR" => Kind::Text,
        "BINARY" => Kind::Binary,
        "ARRAY" | "MAP" | "STRUCT" | "VARIANT" | "OBJECT" => Kind::Json,
        "INTERVAL" => Kind::Interval,
        "NULL" | "VOID" => Kind::Null,
        _ => Kind::Other,
    }
}

/// `DECIMAL(10,2)` → 2; `DECIMAL(10)` → 0 (SQL default scale); otherwise unknown.
fn scale_from_type_text(text: Option<&str>) -> Option<u32> {
    let text = text?;
    let inner = text.split_once('(')?.1.split_once(')')?.0;
    match inner.split_once(',') {
        Some((_, scale)) => scale.trim().parse().ok(),
        None => inner.trim().parse::<u32>().ok().map(|_| 0),
    }
}

fn decode_value(kind: Kind, value: &Value) -> Result<Value, String> {
    let text = match value {
        Value::Null => return Ok(Value::Null),
        Value::String(s) => s.as_str(),
        // JSON_ARRAY sends strings; tolerate native JSON where it is unambiguous.
        Value::Array(_) | Value::Object(_) if kind == Kind::Json => return Ok(value.clone()),
        Value::Number(_) | Value::Bool(_) => {
            return decode_text(kind, &value.to_string());
        }
        Value::Array(_) | Value::Object(_) => {
            return Err("expected a string, got a JSON array or object".into());
        }
    };
    decode_text(kind, text)
}

fn decode_text(kind: Kind, text: &str) -> Result<Value, String> {
    match kind {
        Kind::Integer => integer(text),
        Kind::Decimal(scale) => decimal(text, scale),
        Kind::Float => float(text),
        Kind::Boolean => boolean(text),
        Kind::Date => date(text),
        Kind::TimestampTz => timestamp_tz(text),
        Kind::TimestampNtz => timestamp_ntz(text),
        Kind::Text | Kind::Interval | Kind::Null | Kind::Other => Ok(Value::String(text.into())),
        Kind::Binary => binary(text),
        Kind::Json => serde_json::from_str(text)
            .map_err(|e| format!("not valid JSON ({e}): {}", snippet(text))),
    }
}

/// Short excerpt of a bad value for error messages.
fn snippet(text: &str) -> String {
    const MAX: usize = 40;
    if text.chars().count() > MAX {
        let cut: String = text.chars().take(MAX).collect();
        format!("{cut:?}…")
    } else {
        format!("{text:?}")
    }
}

/// An integer as a JSON number, or as text when it does not fit i64.
fn integer_value(digits_with_sign: &str) -> Value {
    match digits_with_sign.parse::<i64>() {
        Ok(n) => Value::Number(n.into()),
        Err(_) => Value::String(digits_with_sign.to_string()),
    }
}

fn integer(text: &str) -> Result<Value, String> {
    let t = text.trim();
    let unsigned = t.strip_prefix(['-', '+']).unwrap_or(t);
    if unsigned.is_empty() || !unsigned.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("not an integer: {}", snippet(text)));
    }
    let negative = t.starts_with('-');
    let trimmed = unsigned.trim_start_matches('0');
    let body = if trimmed.is_empty() { "0" } else { trimmed };
    let canonical = if negative && body != "0" {
        format!("-{body}")
    } else {
        body.to_string()
    };
    Ok(integer_value(&canonical))
}

/// A DECIMAL value per the declared scale of its column:
/// - `Some(0)` (column type `integer`): an integer value; non-zero fraction
///   digits are an error, never a non-integer string.
/// - `Some(s)`, s > 0 (column type `decimal`): exact text with at least `s`
///   fraction digits (a finer given scale is kept: non-zero digits are never dropped).
/// - `None` (column type `decimal`, scale unknown): exact text with the given
///   scale, also for integral values, so the column never mixes numbers and text.
fn decimal(text: &str, scale: Option<u32>) -> Result<Value, String> {
    let bad = || format!("not a decimal number: {}", snippet(text));
    let t = text.trim();
    let (negative, rest) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let (mantissa, exponent) = match rest.find(['e', 'E']) {
        Some(i) => {
            let exp: i64 = rest[i + 1..].parse().map_err(|_| bad())?;
            (&rest[..i], exp)
        }
        None => (rest, 0),
    };
    if exponent.abs() > 1000 {
        return Err(bad());
    }
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int_part.is_empty() && frac_part.is_empty()
        || !int_part.bytes().all(|b| b.is_ascii_digit())
        || !frac_part.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    // value = digits × 10^-given_scale
    let mut digits = format!("{int_part}{frac_part}");
    let given_scale = frac_part.len() as i64 - exponent;
    let target = match scale {
        Some(s) => {
            let s = i64::from(s);
            if given_scale > s {
                let extra = (given_scale - s) as usize;
                let cut = digits.len().saturating_sub(extra);
                if digits[cut..].bytes().all(|b| b == b'0') {
                    s
                } else if s == 0 {
                    return Err(format!(
                        "value has more fraction digits than the column's scale 0: {}",
                        snippet(text)
                    ));
                } else {
                    // Never drop non-zero digits: keep the given scale when it is finer.
                    given_scale
                }
            } else {
                s
            }
        }
        None => given_scale.max(0),
    };
    if target >= given_scale {
        digits.extend(std::iter::repeat_n('0', (target - given_scale) as usize));
    } else {
        let drop = (given_scale - target) as usize;
        digits.truncate(digits.len().saturating_sub(drop));
    }
    let target = target as usize;
    if digits.len() <= target {
        let pad = target + 1 - digits.len();
        digits.insert_str(0, &"0".repeat(pad));
    }
    let (int_digits, frac_digits) = digits.split_at(digits.len() - target);
    let int_digits = match int_digits.trim_start_matches('0') {
        "" => "0",
        s => s,
    };
    let is_zero = int_digits == "0" && frac_digits.bytes().all(|b| b == b'0');
    let sign = if negative && !is_zero { "-" } else { "" };
    if scale == Some(0) {
        Ok(integer_value(&format!("{sign}{int_digits}")))
    } else if target == 0 {
        Ok(Value::String(format!("{sign}{int_digits}")))
    } else {
        Ok(Value::String(format!("{sign}{int_digits}.{frac_digits}")))
    }
}

fn float(text: &str) -> Result<Value, String> {
    let t = text.trim();
    match t.to_ascii_lowercase().as_str() {
        "nan" | "+nan" | "-nan" => return Ok(Value::String("NaN".into())),
        "inf" | "+inf" | "infinity" | "+infinity" => return Ok(Value::String("inf".into())),
        "-inf" | "-infinity" => return Ok(Value::String("-inf".into())),
        _ => {}
    }
    let f: f64 = t
        .parse()
        .map_err(|_| format!("not a floating-point number: {}", snippet(text)))?;
    match Number::from_f64(f) {
        Some(n) => Ok(Value::Number(n)),
        None if f.is_nan() => Ok(Value::String("NaN".into())),
        None if f > 0.0 => Ok(Value::String("inf".into())),
        None => Ok(Value::String("-inf".into())),
    }
}

fn boolean(text: &str) -> Result<Value, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(Value::Bool(true)),
        "false" => Ok(Value::Bool(false)),
        _ => Err(format!("not a boolean: {}", snippet(text))),
    }
}

fn date(text: &str) -> Result<Value, String> {
    NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
        .map(|d| Value::String(d.format("%Y-%m-%d").to_string()))
        .map_err(|_| format!("not a date (YYYY-MM-DD): {}", snippet(text)))
}

/// Accept `T` or a space between date and time.
fn with_t_separator(text: &str) -> String {
    let t = text.trim();
    let mut s = t.to_string();
    if s.len() > 10 && s.as_bytes()[10] == b' ' {
        s.replace_range(10..11, "T");
    }
    s
}

/// True when the text after the date carries `Z` or a numeric offset.
fn has_zone(s: &str) -> bool {
    let time = s.get(11..).unwrap_or("");
    time.ends_with(['Z', 'z']) || time.contains(['+', '-'])
}

fn parse_zoned(s: &str) -> Option<DateTime<chrono::FixedOffset>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .or_else(|| DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z").ok())
        .or_else(|| DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%#z").ok())
}

fn parse_naive(s: &str) -> Option<NaiveDateTime> {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").ok()
}

fn timestamp_tz(text: &str) -> Result<Value, String> {
    let s = with_t_separator(text);
    let dt = if has_zone(&s) {
        parse_zoned(&s)
    } else {
        // Databricks renders TIMESTAMP in the session time zone (UTC unless set).
        parse_naive(&s).map(|n| n.and_utc().fixed_offset())
    };
    dt.map(|d| Value::String(d.to_rfc3339_opts(SecondsFormat::AutoSi, true)))
        .ok_or_else(|| format!("not a timestamp: {}", snippet(text)))
}

fn timestamp_ntz(text: &str) -> Result<Value, String> {
    let s = with_t_separator(text);
    let naive = if has_zone(&s) {
        // Only a zero offset can be dropped without changing the wall-clock value.
        parse_zoned(&s)
            .filter(|d| d.offset().local_minus_utc() == 0)
            .map(|d| d.naive_utc())
    } else {
        parse_naive(&s)
    };
    naive
        .map(|n| Value::String(n.format("%Y-%m-%dT%H:%M:%S%.f").to_string()))
        .ok_or_else(|| format!("not a timestamp without time zone: {}", snippet(text)))
}

fn binary(text: &str) -> Result<Value, String> {
    let t = text.trim();
    base64::engine::general_purpose::STANDARD
        .decode(t)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(t))
        .map(|bytes| Value::String(hex::encode(bytes)))
        .map_err(|_| format!("not base64 binary: {}", snippet(text)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(type_name: Option<&str>, type_text: Option<&str>) -> ColumnInfo {
        ColumnInfo {
            name: "c".into(),
            type_name: type_name.map(str::to_string),
            type_text: type_text.map(str::to_string),
            ..ColumnInfo::default()
        }
    }

    #[test]
    fn a_more_specific_type_text_wins_over_type_name() {
        let ntz = info(Some("TIMESTAMP"), Some("TIMESTAMP_NTZ"));
        assert_eq!(effective_type_name(&ntz), "TIMESTAMP_NTZ");
        assert_eq!(
            kind_of(&effective_type_name(&ntz), &ntz),
            Kind::TimestampNtz
        );
        let variant = info(Some("STRING"), Some("VARIANT"));
        assert_eq!(
            kind_of(&effective_type_name(&variant), &variant),
            Kind::Json
        );
        let udt = info(Some("USER_DEFINED_TYPE"), Some("variant"));
        assert_eq!(effective_type_name(&udt), "VARIANT");
        let interval = info(Some("STRING"), Some("INTERVAL DAY TO SECOND"));
        assert_eq!(effective_type_name(&interval), "INTERVAL");
        // An ordinary type_text does not override type_name.
        let ltz = info(Some("TIMESTAMP"), Some("TIMESTAMP"));
        assert_eq!(kind_of(&effective_type_name(&ltz), &ltz), Kind::TimestampTz);
        let long = info(Some("LONG"), Some("BIGINT"));
        assert_eq!(effective_type_name(&long), "LONG");
        assert_eq!(
            effective_type_name(&info(None, Some("decimal(10,2)"))),
            "DECIMAL"
        );
    }

    #[test]
    fn a_timestamp_ntz_column_reported_as_timestamp_is_not_labelled_utc() {
        let columns = vec![info(Some("TIMESTAMP"), Some("TIMESTAMP_NTZ"))];
        let decoder = RowDecoder::new(&columns);
        assert_eq!(
            decoder.columns()[0].column_type,
            Kind::TimestampNtz.column_type()
        );
        let row = decoder
            .decode(0, &[serde_json::json!("2024-03-01T10:15:00.000")])
            .unwrap();
        let text = serde_json::to_string(&row).unwrap();
        assert!(!text.contains('Z'), "{text}");
    }
    use serde_json::json;

    fn col(name: &str, type_name: &str, type_text: &str, scale: Option<u32>) -> ColumnInfo {
        ColumnInfo {
            name: name.into(),
            type_name: Some(type_name.into()),
            type_text: Some(type_text.into()),
            type_scale: scale,
            ..ColumnInfo::default()
        }
    }

    /// Decode one value of a single-column result.
    fn one(type_name: &str, type_text: &str, scale: Option<u32>, v: Value) -> Value {
        let d = RowDecoder::new(&[col("c", type_name, type_text, scale)]);
        d.decode(0, &[v]).unwrap().remove(0)
    }

    fn one_err(type_name: &str, v: Value) -> DecodeError {
        let d = RowDecoder::new(&[col("c", type_name, type_name, None)]);
        d.decode(7, &[v]).unwrap_err()
    }

    #[test]
    fn integer_types_become_json_numbers() {
        for (name, text) in [
            ("BYTE", "TINYINT"),
            ("SHORT", "SMALLINT"),
            ("INT", "INT"),
            ("LONG", "BIGINT"),
            ("BIGINT", "BIGINT"),
        ] {
            assert_eq!(one(name, text, None, json!("-42")), json!(-42), "{name}");
        }
        assert_eq!(
            one("LONG", "BIGINT", None, json!("9223372036854775807")),
            json!(i64::MAX)
        );
        assert_eq!(
            one("LONG", "BIGINT", None, json!("99999999999999999999")),
            json!("99999999999999999999")
        );
        let d = RowDecoder::new(&[col("n", "LONG", "BIGINT", None)]);
        assert_eq!(d.columns()[0].column_type, ColumnType::Integer);
        assert_eq!(d.columns()[0].native_type, "BIGINT");
    }

    #[test]
    fn decimals_keep_exact_scale() {
        assert_eq!(
            one("DECIMAL", "DECIMAL(10,2)", Some(2), json!("10.5")),
            json!("10.50")
        );
        assert_eq!(
            one("DECIMAL", "DECIMAL(10,2)", Some(2), json!("-0.07")),
            json!("-0.07")
        );
        assert_eq!(
            one("DECIMAL", "DECIMAL(38,10)", Some(10), json!("1E-10")),
            json!("0.0000000001")
        );
        assert_eq!(
            one(
                "DECIMAL",
                "DECIMAL(38,18)",
                Some(18),
                json!("12345678901234567890.123456789012345678")
            ),
            json!("12345678901234567890.123456789012345678")
        );
        // Scale from type_text when type_scale is absent.
        assert_eq!(
            one("DECIMAL", "DECIMAL(10,3)", None, json!("1.5")),
            json!("1.500")
        );
        let d = RowDecoder::new(&[col("a", "DECIMAL", "DECIMAL(10,2)", Some(2))]);
        assert_eq!(d.columns()[0].column_type, ColumnType::Decimal);
        assert_eq!(d.columns()[0].native_type, "DECIMAL(10,2)");
    }

    #[test]
    fn decimal_scale_zero_is_an_integer() {
        let d = RowDecoder::new(&[col("a", "DECIMAL", "DECIMAL(38,0)", Some(0))]);
        assert_eq!(d.columns()[0].column_type, ColumnType::Integer);
        assert_eq!(d.decode(0, &[json!("123")]).unwrap(), vec![json!(123)]);
        assert_eq!(
            d.decode(0, &[json!("-12345678901234567890123")]).unwrap(),
            vec![json!("-12345678901234567890123")]
        );
        assert_eq!(d.decode(0, &[json!("1.2E+3")]).unwrap(), vec![json!(1200)]);
    }

    #[test]
    fn decimal_without_known_scale_is_always_text() {
        // Fuzzer input: DECIMAL with neither type_scale nor a (p,s) in type_text.
        let d = RowDecoder::new(&[col("amount", "DECIMAL", "DECIMAL", None)]);
        assert_eq!(d.columns()[0].column_type, ColumnType::Decimal);
        assert_eq!(
            d.decode(0, &[json!("-1")]).unwrap(),
            vec![json!("-1")],
            "an integral value in a decimal column must stay decimal text"
        );
        assert_eq!(d.decode(1, &[json!("1.5")]).unwrap(), vec![json!("1.5")]);
        assert_eq!(d.decode(2, &[json!("2E+2")]).unwrap(), vec![json!("200")]);
        assert_eq!(d.decode(3, &[json!(7)]).unwrap(), vec![json!("7")]);
        assert_eq!(d.decode(4, &[json!("-0")]).unwrap(), vec![json!("0")]);
    }

    #[test]
    fn decimal_scale_zero_rejects_fraction_digits() {
        // Fuzzer input: DECIMAL(38,0) receiving ".999999999".
        let d = RowDecoder::new(&[col("qty", "DECIMAL", "DECIMAL(38,0)", Some(0))]);
        assert_eq!(d.columns()[0].column_type, ColumnType::Integer);
        let e = d.decode(5, &[json!(".999999999")]).unwrap_err();
        match &e {
            DecodeError::Value {
                row,
                column,
                reason,
                ..
            } => {
                assert_eq!(*row, 5);
                assert_eq!(column, "qty");
                assert!(reason.contains("scale 0"), "{reason}");
            }
            other => panic!("expected a value error, got {other:?}"),
        }
        assert!(e.to_string().contains("column qty"), "{e}");
        // Zero fraction digits are fine and stay integers.
        assert_eq!(d.decode(0, &[json!("12.000")]).unwrap(), vec![json!(12)]);
        assert_eq!(d.decode(0, &[json!("-1")]).unwrap(), vec![json!(-1)]);
        // Same rule when the scale comes from type_text.
        let d = RowDecoder::new(&[col("qty", "DECIMAL", "DECIMAL(10)", None)]);
        assert_eq!(d.columns()[0].column_type, ColumnType::Integer);
        assert!(d.decode(0, &[json!("1.5")]).is_err());
    }

    #[test]
    fn malformed_decimals_and_integers_are_errors() {
        for bad in ["", "1.2.3", "abc", "1e", "--1", "1e99999"] {
            let e = one_err("DECIMAL", json!(bad));
            assert!(matches!(e, DecodeError::Value { row: 7, .. }), "{bad}: {e}");
        }
        let e = one_err("INT", json!("12x"));
        assert_eq!(
            e.to_string(),
            "row 7, column c (INT): not an integer: \"12x\""
        );
        assert!(matches!(
            one_err("LONG", json!("1.5")),
            DecodeError::Value { .. }
        ));
    }

    #[test]
    fn floats_and_special_values() {
        assert_eq!(one("DOUBLE", "DOUBLE", None, json!("1.25")), json!(1.25));
        assert_eq!(
            one("FLOAT", "FLOAT", None, json!("-3.0E-5")),
            json!(-3.0e-5)
        );
        assert_eq!(one("DOUBLE", "DOUBLE", None, json!("NaN")), json!("NaN"));
        assert_eq!(
            one("DOUBLE", "DOUBLE", None, json!("Infinity")),
            json!("inf")
        );
        assert_eq!(
            one("DOUBLE", "DOUBLE", None, json!("-Infinity")),
            json!("-inf")
        );
        assert!(matches!(
            one_err("DOUBLE", json!("one")),
            DecodeError::Value { .. }
        ));
    }

    #[test]
    fn booleans() {
        assert_eq!(one("BOOLEAN", "BOOLEAN", None, json!("true")), json!(true));
        assert_eq!(
            one("BOOLEAN", "BOOLEAN", None, json!("false")),
            json!(false)
        );
        assert!(matches!(
            one_err("BOOLEAN", json!("yes")),
            DecodeError::Value { .. }
        ));
    }

    #[test]
    fn dates() {
        assert_eq!(
            one("DATE", "DATE", None, json!("2024-02-29")),
            json!("2024-02-29")
        );
        assert!(matches!(
            one_err("DATE", json!("2023-02-29")),
            DecodeError::Value { .. }
        ));
        assert!(matches!(
            one_err("DATE", json!("19000")),
            DecodeError::Value { .. }
        ));
    }

    #[test]
    fn timestamps_with_zone_become_rfc3339() {
        let t = |v: &str| one("TIMESTAMP", "TIMESTAMP", None, json!(v));
        assert_eq!(
            t("2024-03-01T12:34:56.789Z"),
            json!("2024-03-01T12:34:56.789Z")
        );
        assert_eq!(t("2024-03-01 12:34:56"), json!("2024-03-01T12:34:56Z"));
        assert_eq!(
            t("2024-03-01T12:34:56.5+02:00"),
            json!("2024-03-01T12:34:56.500+02:00")
        );
        assert_eq!(t("2024-03-01T12:34:56.000Z"), json!("2024-03-01T12:34:56Z"));
        let d = RowDecoder::new(&[col("t", "TIMESTAMP", "TIMESTAMP", None)]);
        assert_eq!(d.columns()[0].column_type, ColumnType::TimestampTz);
        assert!(matches!(
            one_err("TIMESTAMP", json!("yesterday")),
            DecodeError::Value { .. }
        ));
    }

    #[test]
    fn timestamps_without_zone_stay_wall_clock() {
        let t = |v: &str| one("TIMESTAMP_NTZ", "TIMESTAMP_NTZ", None, json!(v));
        assert_eq!(
            t("2024-03-01T12:34:56.123456"),
            json!("2024-03-01T12:34:56.123456")
        );
        assert_eq!(t("2024-03-01 00:00:00"), json!("2024-03-01T00:00:00"));
        assert_eq!(t("2024-03-01T00:00:00Z"), json!("2024-03-01T00:00:00"));
        let d = RowDecoder::new(&[col("t", "TIMESTAMP_NTZ", "TIMESTAMP_NTZ", None)]);
        assert_eq!(d.columns()[0].column_type, ColumnType::Timestamp);
        assert!(matches!(
            one_err("TIMESTAMP_NTZ", json!("2024-03-01T00:00:00+05:00")),
            DecodeError::Value { .. }
        ));
    }

    #[test]
    fn strings_chars_and_intervals_are_text() {
        assert_eq!(
            one("STRING", "STRING", None, json!("a@example.com")),
            json!("a@example.com")
        );
        assert_eq!(one("CHAR", "CHAR(3)", None, json!("ab ")), json!("ab "));
        assert_eq!(one("VARCHAR", "VARCHAR(10)", None, json!("x")), json!("x"));
        let d = RowDecoder::new(&[col("i", "INTERVAL", "INTERVAL DAY TO SECOND", None)]);
        assert_eq!(d.columns()[0].column_type, ColumnType::String);
        assert_eq!(
            d.decode(0, &[json!("1 02:00:00.000000000")]).unwrap(),
            vec![json!("1 02:00:00.000000000")]
        );
    }

    #[test]
    fn binary_base64_becomes_lower_hex() {
        assert_eq!(
            one("BINARY", "BINARY", None, json!("3q2+7w==")),
            json!("deadbeef")
        );
        assert_eq!(one("BINARY", "BINARY", None, json!("")), json!(""));
        assert!(matches!(
            one_err("BINARY", json!("not base64!")),
            DecodeError::Value { .. }
        ));
    }

    #[test]
    fn complex_types_are_parsed_json() {
        assert_eq!(
            one("ARRAY", "ARRAY<STRING>", None, json!("[\"a\",\"b\"]")),
            json!(["a", "b"])
        );
        assert_eq!(
            one("MAP", "MAP<STRING,INT>", None, json!("{\"k\":1}")),
            json!({"k": 1})
        );
        assert_eq!(
            one(
                "STRUCT",
                "STRUCT<a:INT,b:STRING>",
                None,
                json!("{\"a\":1,\"b\":null}")
            ),
            json!({"a": 1, "b": null})
        );
        let d = RowDecoder::new(&[col("m", "MAP", "MAP<STRING,INT>", None)]);
        assert_eq!(d.columns()[0].column_type, ColumnType::Json);
        assert!(matches!(
            one_err("STRUCT", json!("{broken")),
            DecodeError::Value { .. }
        ));
    }

    #[test]
    fn nulls_of_every_type_stay_null() {
        for t in [
            "INT",
            "DECIMAL",
            "DOUBLE",
            "BOOLEAN",
            "DATE",
            "TIMESTAMP",
            "TIMESTAMP_NTZ",
            "STRING",
            "BINARY",
            "ARRAY",
            "INTERVAL",
            "NULL",
        ] {
            assert_eq!(one(t, t, Some(2), Value::Null), Value::Null, "{t}");
        }
        let d = RowDecoder::new(&[col("v", "NULL", "VOID", None)]);
        assert_eq!(d.columns()[0].column_type, ColumnType::Other);
    }

    #[test]
    fn unknown_types_pass_text_through() {
        let d = RowDecoder::new(&[col("g", "USER_DEFINED_TYPE", "GEOGRAPHY", None)]);
        assert_eq!(d.columns()[0].column_type, ColumnType::Other);
        assert_eq!(
            d.decode(0, &[json!("POINT(1 2)")]).unwrap(),
            vec![json!("POINT(1 2)")]
        );
    }

    #[test]
    fn type_name_falls_back_to_type_text_and_columns_follow_position() {
        let schema = vec![
            ColumnInfo {
                name: "second".into(),
                type_text: Some("decimal(5,1)".into()),
                position: Some(1),
                ..ColumnInfo::default()
            },
            ColumnInfo {
                name: "first".into(),
                type_text: Some("bigint".into()),
                position: Some(0),
                ..ColumnInfo::default()
            },
        ];
        let d = RowDecoder::new(&schema);
        let names: Vec<&str> = d.columns().iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["first", "second"]);
        assert_eq!(
            d.decode(0, &[json!("3"), json!("2")]).unwrap(),
            vec![json!(3), json!("2.0")]
        );
    }

    #[test]
    fn row_width_mismatch_and_non_string_values() {
        let d = RowDecoder::new(&[
            col("a", "INT", "INT", None),
            col("b", "STRING", "STRING", None),
        ]);
        assert_eq!(
            d.decode(3, &[json!("1")]).unwrap_err(),
            DecodeError::RowWidth {
                row: 3,
                expected: 2,
                got: 1
            }
        );
        // Native JSON numbers are tolerated; objects in a scalar column are not.
        assert_eq!(
            d.decode(0, &[json!(5), json!("x")]).unwrap(),
            vec![json!(5), json!("x")]
        );
        assert!(d.decode(0, &[json!({"a": 1}), json!("x")]).is_err());
    }

    #[test]
    fn long_bad_values_are_cut_in_messages() {
        let e = one_err("INT", json!("x".repeat(500))).to_string();
        assert!(e.len() < 120, "{e}");
    }
}
