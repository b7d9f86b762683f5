//! The sandbox fixture: tables with rows, users, and each user's grants.
//!
//! A fixture is TOML (or JSON, chosen by the file extension) of this shape:
//!
//! ```toml
//! [[tables]]
//! platform = "snowflake"            # or "databricks"
//! name = "SALES.PUBLIC.ORDERS"      # Databricks: catalog.schema.table
//! columns = [ { name = "ID", type = "NUMBER" }, { name = "REGION", type = "TEXT" },
//!             { name = "EMAIL", type = "TEXT" }, { name = "AMOUNT", type = "NUMBER(10,2)" } ]
//! rows = [ [1, "EU", "a@example.com", 10.5] ]
//!
//! [[users]]
//! id = "alice@example.com"
//! grants = [ { table = "SALES.PUBLIC.ORDERS", row_filter = "REGION = 'EU'", masked_columns = ["EMAIL"] } ]
//! ```
//!
//! Column types are the platform's own (`NUMBER(10,2)`, `TEXT`, `DATE`,
//! `TIMESTAMP_NTZ`, `BOOLEAN`, `VARIANT`, ... for Snowflake; `BIGINT`,
//! `STRING`, `DECIMAL(10,2)`, `TIMESTAMP`, `ARRAY<STRING>`, ... for
//! Databricks). Columns may say `nullable = false` and carry a `comment`.
//! Values: numbers, strings, booleans, TOML dates/times (or ISO text),
//! arrays/tables for JSON-typed columns, hex text for binaries. TOML has no
//! null, so an empty inline table `{}` stands for NULL (JSON fixtures may
//! also write `null`); write the text `"{}"` for an empty JSON object.
//!
//! Extensions (optional): a table may set `generated_rows = N` to get N rows
//! made by cycling through its `rows` as templates, with the first integer
//! column numbered 1..=N (the cheap way to get a 1,000,000-row benchmark
//! table). Snowflake names are upper-cased and Databricks names lower-cased,
//! as the platforms store unquoted identifiers. A grant names a table by its
//! dotted name and applies to exactly one table, on one platform: the table
//! whose stored name matches exactly (so a Snowflake `BENCH.PUBLIC.BIG` and a
//! Databricks `bench.public.big` can both be granted), else the single table
//! matching ignoring case; a name matching several tables only ignoring case,
//! or a table granted twice to one user, is an error.
//!
//! [`Fixture::validate`] reports the first problem with the table, row and
//! column (or user and grant) it concerns.

use crate::result::Platform;
use crate::sandbox::engine::EngineValue;
use crate::sandbox::variants::SandboxVariants;
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// The built-in demo fixture (`src/sandbox/demo_fixture.toml`).
const DEMO_FIXTURE: &str = include_str!("demo_fixture.toml");

/// Why a fixture cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    #[error("cannot read fixture file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("fixture {origin} does not parse: {message}")]
    Parse { origin: String, message: String },
    #[error("invalid fixture: {0}")]
    Invalid(String),
}

/// Tables, users and grants the sandbox serves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fixture {
    #[serde(default)]
    pub tables: Vec<TableSpec>,
    #[serde(default)]
    pub users: Vec<UserSpec>,
    /// Which variant of each private-preview behaviour the emulators play.
    #[serde(default)]
    pub sandbox: SandboxVariants,
    /// Which of the agent accounts' prerequisites hold (`check` reports each one).
    #[serde(default)]
    pub agent: crate::sandbox::prerequisites::AgentPrerequisites,
}

/// One table of one platform.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableSpec {
    pub platform: Platform,
    /// `DATABASE.SCHEMA.TABLE` (Snowflake) or `catalog.schema.table` (Databricks).
    pub name: String,
    pub columns: Vec<ColumnSpec>,
    #[serde(default)]
    pub rows: Vec<Vec<Value>>,
    /// Make this many rows by cycling through `rows` (first integer column numbered 1..=N).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generated_rows: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// One column: name and platform-native type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnSpec {
    pub name: String,
    #[serde(rename = "type")]
    pub column_type: String,
    #[serde(default = "default_true")]
    pub nullable: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

fn default_true() -> bool {
    true
}

/// An Immuta user and the tables their vended roles may read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserSpec {
    pub id: String,
    #[serde(default)]
    pub grants: Vec<GrantSpec>,
}

/// Read access to one table, with an optional row filter and masked columns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantSpec {
    pub table: String,
    /// SQL predicate over the table's columns; only matching rows are visible.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row_filter: Option<String>,
    /// Columns returned masked: `'***'` for text types, NULL for all others.
    #[serde(default)]
    pub masked_columns: Vec<String>,
}

/// How a column's values are stored in the engine (see `engine.rs` for the conventions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ValueKind {
    Integer,
    Decimal,
    Float,
    Boolean,
    Text,
    Date,
    Time,
    TimestampNtz,
    TimestampTz,
    Json,
    Binary,
}

impl ValueKind {
    /// Storage class used for the SQLite column (sets its affinity).
    pub(crate) fn sqlite_class(self) -> &'static str {
        match self {
            ValueKind::Integer | ValueKind::Boolean => "INTEGER",
            ValueKind::Decimal | ValueKind::Float => "REAL",
            ValueKind::Binary => "BLOB",
            _ => "TEXT",
        }
    }

    /// Masked columns show `'***'` when they hold text, NULL otherwise.
    pub(crate) fn is_text(self) -> bool {
        self == ValueKind::Text
    }
}

/// A table after validation: canonical name parts, column kinds, converted rows.
#[derive(Debug, Clone)]
pub(crate) struct PreparedTable {
    pub platform: Platform,
    /// Canonical [catalog/database, schema, table].
    pub parts: [String; 3],
    pub columns: Vec<PreparedColumn>,
    /// Converted rows (templates when `generated_rows` is set).
    pub rows: Vec<Vec<EngineValue>>,
    pub row_count: usize,
    /// Index of the column numbered 1..=N in generated tables.
    pub generated_id_column: Option<usize>,
    pub comment: Option<String>,
}

impl PreparedTable {
    pub fn display_name(&self) -> String {
        self.parts.join(".")
    }
}

#[derive(Debug, Clone)]
pub(crate) struct PreparedColumn {
    pub name: String,
    pub native_type: String,
    pub kind: ValueKind,
    pub nullable: bool,
    pub comment: Option<String>,
}

/// A grant resolved to the tables it applies to.
#[derive(Debug, Clone)]
pub(crate) struct PreparedGrant {
    pub table: usize,
    pub row_filter: Option<String>,
    /// Column indexes to mask.
    pub masked: Vec<usize>,
}

#[derive(Debug, Clone)]
pub(crate) struct PreparedUser {
    pub id: String,
    pub grants: Vec<PreparedGrant>,
}

#[derive(Debug, Clone)]
pub(crate) struct PreparedFixture {
    pub tables: Vec<PreparedTable>,
    pub users: Vec<PreparedUser>,
}

impl Fixture {
    /// Parse fixture TOML.
    pub fn from_toml_str(text: &str) -> Result<Fixture, FixtureError> {
        Self::parse_toml(text, "text")
    }

    /// Parse fixture JSON (same shape as the TOML).
    pub fn from_json_str(text: &str) -> Result<Fixture, FixtureError> {
        let fixture: Fixture = serde_json::from_str(text).map_err(|e| FixtureError::Parse {
            origin: "text".into(),
            message: e.to_string(),
        })?;
        fixture.validate()?;
        Ok(fixture)
    }

    /// Read a fixture file (`.json` as JSON, anything else as TOML) and validate it.
    pub fn load(path: &Path) -> Result<Fixture, FixtureError> {
        let text = std::fs::read_to_string(path).map_err(|source| FixtureError::Read {
            path: path.into(),
            source,
        })?;
        let origin = path.display().to_string();
        let is_json = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"));
        if is_json {
            let fixture: Fixture =
                serde_json::from_str(&text).map_err(|e| FixtureError::Parse {
                    origin,
                    message: e.to_string(),
                })?;
            fixture.validate()?;
            Ok(fixture)
        } else {
            Self::parse_toml(&text, &origin)
        }
    }

    /// The built-in demo: two tables per platform and three users with visibly different access.
    #[expect(
        clippy::expect_used,
        reason = "the demo fixture is compiled in (include_str) and its validity is asserted by \
                  the demo_has_two_tables_per_platform_and_three_users test: a broken demo is a \
                  build defect, not a runtime condition"
    )]
    pub fn demo() -> Fixture {
        Self::from_toml_str(DEMO_FIXTURE).expect("the built-in demo fixture is valid")
    }

    /// Add a table of `rows` generated rows (for load and benchmark tests):
    /// `ID` (integer, 1..=rows), `REGION` (EU/US/APAC), `CUSTOMER` (text),
    /// `AMOUNT` (decimal) and `CREATED` (timestamp without zone). Databricks
    /// names the columns in lower case. Grant it to users as any other table.
    pub fn with_generated_table(mut self, platform: Platform, name: &str, rows: usize) -> Fixture {
        let (int, text, dec, ts) = match platform {
            Platform::Snowflake => ("NUMBER(38,0)", "TEXT", "NUMBER(12,2)", "TIMESTAMP_NTZ"),
            Platform::Databricks => ("BIGINT", "STRING", "DECIMAL(12,2)", "TIMESTAMP_NTZ"),
        };
        let col = |n: &str, t: &str| ColumnSpec {
            name: match platform {
                Platform::Snowflake => n.to_uppercase(),
                Platform::Databricks => n.to_lowercase(),
            },
            column_type: t.into(),
            nullable: true,
            comment: None,
        };
        let templates = (0..12)
            .map(|i| {
                vec![
                    Value::from(0),
                    Value::from(["EU", "US", "APAC"][i % 3]),
                    Value::from(format!("customer-{i:02}")),
                    Value::from(10.0 + i as f64 * 7.25),
                    Value::from(format!("2024-{:02}-15 12:30:00", i + 1)),
                ]
            })
            .collect();
        self.tables.push(TableSpec {
            platform,
            name: name.into(),
            columns: vec![
                col("ID", int),
                col("REGION", text),
                col("CUSTOMER", text),
                col("AMOUNT", dec),
                col("CREATED", ts),
            ],
            rows: templates,
            generated_rows: Some(rows),
            comment: Some("generated benchmark table".into()),
        });
        self
    }

    /// Ids of the fixture's users, in file order.
    pub fn user_ids(&self) -> Vec<String> {
        self.users.iter().map(|u| u.id.clone()).collect()
    }

    /// Check the whole fixture; the error names the table/row/column or user/grant at fault.
    pub fn validate(&self) -> Result<(), FixtureError> {
        self.prepare().map(|_| ())
    }

    fn parse_toml(text: &str, origin: &str) -> Result<Fixture, FixtureError> {
        let fixture: Fixture = toml::from_str(text).map_err(|e| FixtureError::Parse {
            origin: origin.into(),
            message: e.to_string(),
        })?;
        fixture.validate()?;
        Ok(fixture)
    }

    pub(crate) fn prepare(&self) -> Result<PreparedFixture, FixtureError> {
        let invalid = |m: String| FixtureError::Invalid(m);
        let mut tables: Vec<PreparedTable> = Vec::with_capacity(self.tables.len());
        let mut seen = HashSet::new();
        for (ti, spec) in self.tables.iter().enumerate() {
            let table = prepare_table(ti, spec).map_err(invalid)?;
            if !seen.insert((table.platform, table.display_name())) {
                return Err(invalid(format!(
                    "table {} ({}) is declared twice",
                    table.display_name(),
                    table.platform
                )));
            }
            tables.push(table);
        }
        let mut users = Vec::with_capacity(self.users.len());
        let mut seen_users = HashSet::new();
        for (ui, user) in self.users.iter().enumerate() {
            if user.id.trim().is_empty() {
                return Err(invalid(format!("user #{} has an empty id", ui + 1)));
            }
            if !seen_users.insert(user.id.as_str()) {
                return Err(invalid(format!("user {} is declared twice", user.id)));
            }
            let mut grants = Vec::new();
            let mut granted_tables = HashSet::new();
            for grant in &user.grants {
                let wanted = grant.table.trim();
                let ti = grant_table(&tables, &user.id, wanted).map_err(invalid)?;
                let table = &tables[ti];
                if !granted_tables.insert(ti) {
                    return Err(invalid(format!(
                        "user {} is granted table {} ({}) twice",
                        user.id,
                        table.display_name(),
                        table.platform
                    )));
                }
                let mut masked = Vec::new();
                for m in &grant.masked_columns {
                    let ci = table
                        .columns
                        .iter()
                        .position(|c| c.name.eq_ignore_ascii_case(m))
                        .ok_or_else(|| {
                            invalid(format!(
                                "user {}: masked column {m} is not a column of table {}",
                                user.id,
                                table.display_name()
                            ))
                        })?;
                    masked.push(ci);
                }
                let row_filter = grant
                    .row_filter
                    .as_deref()
                    .map(str::trim)
                    .filter(|f| !f.is_empty())
                    .map(str::to_string);
                grants.push(PreparedGrant {
                    table: ti,
                    row_filter,
                    masked,
                });
            }
            users.push(PreparedUser {
                id: user.id.clone(),
                grants,
            });
        }
        Ok(PreparedFixture { tables, users })
    }
}

/// The one table a grant names: the exact (canonical-case) name first, so a
/// Snowflake `BENCH.PUBLIC.BIG` and a Databricks `bench.public.big` are told
/// apart; otherwise the single table whose name matches ignoring case.
fn grant_table(tables: &[PreparedTable], user: &str, wanted: &str) -> Result<usize, String> {
    let exact: Vec<usize> = (0..tables.len())
        .filter(|&i| tables[i].display_name() == wanted)
        .collect();
    let candidates = if exact.is_empty() {
        (0..tables.len())
            .filter(|&i| tables[i].display_name().eq_ignore_ascii_case(wanted))
            .collect()
    } else {
        exact
    };
    match candidates.as_slice() {
        [] => Err(format!(
            "user {user} is granted table {wanted}, which the fixture does not declare"
        )),
        [one] => Ok(*one),
        many => Err(format!(
            "user {user}: grant on table {wanted} matches tables on more than one platform ({}); \
             write the name as the platform stores it (Snowflake upper case, Databricks lower case)",
            many.iter()
                .map(|&i| format!("{} on {}", tables[i].display_name(), tables[i].platform))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

fn prepare_table(index: usize, spec: &TableSpec) -> Result<PreparedTable, String> {
    let raw_parts: Vec<&str> = spec.name.split('.').map(str::trim).collect();
    if raw_parts.len() != 3 || raw_parts.iter().any(|p| p.is_empty()) {
        return Err(format!(
            "table #{} name {:?} must have three parts ({})",
            index + 1,
            spec.name,
            match spec.platform {
                Platform::Snowflake => "DATABASE.SCHEMA.TABLE",
                Platform::Databricks => "catalog.schema.table",
            }
        ));
    }
    let canon = |s: &str| match spec.platform {
        Platform::Snowflake => s.to_uppercase(),
        Platform::Databricks => s.to_lowercase(),
    };
    let parts = [
        canon(raw_parts[0]),
        canon(raw_parts[1]),
        canon(raw_parts[2]),
    ];
    let display = parts.join(".");
    if spec.columns.is_empty() {
        return Err(format!("table {display} has no columns"));
    }
    let mut columns = Vec::with_capacity(spec.columns.len());
    let mut names = HashSet::new();
    for c in &spec.columns {
        let name = match spec.platform {
            Platform::Snowflake => c.name.trim().to_uppercase(),
            Platform::Databricks => c.name.trim().to_string(),
        };
        if name.is_empty() {
            return Err(format!("table {display} has a column without a name"));
        }
        if !names.insert(name.to_lowercase()) {
            return Err(format!("table {display} declares column {name} twice"));
        }
        let kind = value_kind(spec.platform, &c.column_type)
            .map_err(|e| format!("table {display} column {name}: {e}"))?;
        columns.push(PreparedColumn {
            name,
            native_type: native_type_text(spec.platform, &c.column_type),
            kind,
            nullable: c.nullable,
            comment: c.comment.clone(),
        });
    }
    let mut rows = Vec::with_capacity(spec.rows.len());
    for (ri, row) in spec.rows.iter().enumerate() {
        if row.len() != columns.len() {
            return Err(format!(
                "table {display} row {} has {} values but the table has {} columns",
                ri + 1,
                row.len(),
                columns.len()
            ));
        }
        let mut out = Vec::with_capacity(row.len());
        for (value, col) in row.iter().zip(&columns) {
            let v = convert_value(col.kind, value).map_err(|e| {
                format!(
                    "table {display} row {} column {} ({}): {e}",
                    ri + 1,
                    col.name,
                    col.native_type
                )
            })?;
            if v == EngineValue::Null && !col.nullable {
                return Err(format!(
                    "table {display} row {} column {}: NULL in a column declared nullable = false",
                    ri + 1,
                    col.name
                ));
            }
            out.push(v);
        }
        rows.push(out);
    }
    let (row_count, generated_id_column) = match spec.generated_rows {
        Some(n) => {
            if rows.is_empty() {
                return Err(format!(
                    "table {display} sets generated_rows but has no template rows"
                ));
            }
            (n, columns.iter().position(|c| c.kind == ValueKind::Integer))
        }
        None => (rows.len(), None),
    };
    Ok(PreparedTable {
        platform: spec.platform,
        parts,
        columns,
        rows,
        row_count,
        generated_id_column,
        comment: spec.comment.clone(),
    })
}

/// The storage kind of a platform-native type, or why the type is unknown.
pub(crate) fn value_kind(platform: Platform, native: &str) -> Result<ValueKind, String> {
    let t = native.trim().to_uppercase();
    let base_end = t.find(['(', '<']).unwrap_or(t.len());
    let base = t[..base_end].trim();
    let args: Vec<i64> = if t[base_end..].starts_with('(') {
        t[base_end..]
            .trim_start_matches('(')
            .trim_end_matches(')')
            .split(',')
            .map(|a| a.trim().parse::<i64>())
            .collect::<Result<_, _>>()
            .map_err(|_| format!("type {native:?} has non-numeric arguments"))?
    } else {
        Vec::new()
    };
    let scale = args.get(1).copied().unwrap_or(0);
    let exact = if scale > 0 {
        ValueKind::Decimal
    } else {
        ValueKind::Integer
    };
    let kind = match platform {
        Platform::Snowflake => match base {
            "NUMBER" | "DECIMAL" | "NUMERIC" | "DEC" => exact,
            "INT" | "INTEGER" | "BIGINT" | "SMALLINT" | "TINYINT" | "BYTEINT" => ValueKind::Integer,
            "FLOAT" | "FLOAT4" | "FLOAT8" | "DOUBLE" | "DOUBLE PRECISION" | "REAL" => {
                ValueKind::Float
            }
            "VARCHAR" | "CHAR" | "CHARACTER" | "STRING" | "TEXT" | "NVARCHAR" | "NVARCHAR2"
            | "NCHAR" | "CHAR VARYING" => ValueKind::Text,
            "BOOLEAN" => ValueKind::Boolean,
            "DATE" => ValueKind::Date,
            "TIME" => ValueKind::Time,
            "DATETIME" | "TIMESTAMP" | "TIMESTAMP_NTZ" => ValueKind::TimestampNtz,
            "TIMESTAMP_LTZ" | "TIMESTAMP_TZ" => ValueKind::TimestampTz,
            "VARIANT" | "OBJECT" | "ARRAY" => ValueKind::Json,
            "BINARY" | "VARBINARY" => ValueKind::Binary,
            _ => return Err(format!("unknown Snowflake type {native:?}")),
        },
        Platform::Databricks => match base {
            "DECIMAL" | "DEC" | "NUMERIC" => exact,
            "BIGINT" | "LONG" | "INT" | "INTEGER" | "SMALLINT" | "SHORT" | "TINYINT" | "BYTE" => {
                ValueKind::Integer
            }
            "FLOAT" | "REAL" | "DOUBLE" => ValueKind::Float,
            "STRING" | "VARCHAR" | "CHAR" => ValueKind::Text,
            "BOOLEAN" => ValueKind::Boolean,
            "DATE" => ValueKind::Date,
            "TIMESTAMP" | "TIMESTAMP_LTZ" => ValueKind::TimestampTz,
            "TIMESTAMP_NTZ" => ValueKind::TimestampNtz,
            "ARRAY" | "MAP" | "STRUCT" | "VARIANT" => ValueKind::Json,
            "BINARY" => ValueKind::Binary,
            _ => return Err(format!("unknown Databricks type {native:?}")),
        },
    };
    Ok(kind)
}

/// The declared type in canonical case: upper-case, except that Databricks
/// STRUCT field names keep their case (`STRUCT<channel: STRING>`), as Databricks prints them.
fn native_type_text(platform: Platform, declared: &str) -> String {
    let upper = declared.trim().to_uppercase();
    if platform == Platform::Databricks
        && upper.contains("STRUCT")
        && let Some(t) = crate::sandbox::types::DatabricksType::parse(declared)
    {
        return t.type_text();
    }
    upper
}

/// The text of a string value, or of a TOML date/time (which serde hands over as a one-key table).
fn scalar_text(v: &Value) -> Option<&str> {
    match v {
        Value::String(s) => Some(s),
        Value::Object(m) if m.len() == 1 => {
            m.get("$__toml_private_datetime").and_then(Value::as_str)
        }
        _ => None,
    }
}

fn is_null(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        _ => false,
    }
}

fn describe(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 60 {
        format!("{}…", s.chars().take(59).collect::<String>())
    } else {
        s
    }
}

/// Convert a fixture value to the engine's storage form for `kind`.
pub(crate) fn convert_value(kind: ValueKind, v: &Value) -> Result<EngineValue, String> {
    if is_null(v) {
        return Ok(EngineValue::Null);
    }
    let text = scalar_text(v);
    let bad = |what: &str| format!("expected {what}, got {}", describe(v));
    match kind {
        ValueKind::Integer => v
            .as_i64()
            .map(EngineValue::Integer)
            .ok_or_else(|| bad("an integer")),
        ValueKind::Decimal | ValueKind::Float => {
            if let Some(f) = v.as_f64() {
                return Ok(EngineValue::Real(f));
            }
            text.and_then(|t| match t.trim().to_ascii_lowercase().as_str() {
                "nan" => Some(f64::NAN),
                "inf" | "infinity" => Some(f64::INFINITY),
                "-inf" | "-infinity" => Some(f64::NEG_INFINITY),
                other => other.parse::<f64>().ok(),
            })
            .map(EngineValue::Real)
            .ok_or_else(|| bad("a number"))
        }
        ValueKind::Boolean => v
            .as_bool()
            .map(|b| EngineValue::Integer(i64::from(b)))
            .ok_or_else(|| bad("true or false")),
        ValueKind::Text => v
            .as_str()
            .map(|s| EngineValue::Text(s.to_string()))
            .ok_or_else(|| bad("text")),
        ValueKind::Date => {
            let t = text.ok_or_else(|| bad("a date"))?;
            NaiveDate::parse_from_str(t.trim(), "%Y-%m-%d")
                .map(|d| EngineValue::Text(d.format("%Y-%m-%d").to_string()))
                .map_err(|_| bad("a date YYYY-MM-DD"))
        }
        ValueKind::Time => {
            let t = text.ok_or_else(|| bad("a time"))?;
            NaiveTime::parse_from_str(t.trim(), "%H:%M:%S%.f")
                .map(|d| EngineValue::Text(d.format("%H:%M:%S%.f").to_string()))
                .map_err(|_| bad("a time HH:MM:SS[.f]"))
        }
        ValueKind::TimestampNtz => {
            let t = text.ok_or_else(|| bad("a timestamp"))?;
            parse_naive_timestamp(t)
                .map(|d| EngineValue::Text(d.format("%Y-%m-%d %H:%M:%S%.f").to_string()))
                .ok_or_else(|| bad("a timestamp YYYY-MM-DD HH:MM:SS[.f]"))
        }
        ValueKind::TimestampTz => {
            let t = text.ok_or_else(|| bad("a timestamp"))?;
            let normalized = t.trim().replacen(' ', "T", 1);
            let parsed = DateTime::parse_from_rfc3339(&normalized)
                .ok()
                .or_else(|| parse_naive_timestamp(t).map(|n| n.and_utc().fixed_offset()));
            parsed
                .map(|d| EngineValue::Text(d.format("%Y-%m-%d %H:%M:%S%.f%:z").to_string()))
                .ok_or_else(|| bad("a timestamp YYYY-MM-DD HH:MM:SS[.f][+HH:MM]"))
        }
        ValueKind::Json => match v {
            Value::String(s) => serde_json::from_str::<Value>(s)
                .map(|j| EngineValue::Text(j.to_string()))
                .map_err(|e| format!("expected JSON text, got {} ({e})", describe(v))),
            other => Ok(EngineValue::Text(other.to_string())),
        },
        ValueKind::Binary => {
            let t = text.ok_or_else(|| bad("hex text"))?;
            hex::decode(t.trim())
                .map(EngineValue::Blob)
                .map_err(|_| bad("hex text"))
        }
    }
}

fn parse_naive_timestamp(t: &str) -> Option<NaiveDateTime> {
    let t = t.trim();
    NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f")
        .or_else(|_| NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f"))
        .ok()
        .or_else(|| {
            NaiveDate::parse_from_str(t, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_has_two_tables_per_platform_and_three_users() {
        let demo = Fixture::demo();
        for p in [Platform::Snowflake, Platform::Databricks] {
            assert!(demo.tables.iter().filter(|t| t.platform == p).count() >= 2);
        }
        assert_eq!(demo.users.len(), 3);
    }

    #[test]
    fn values_are_normalised_per_type() {
        let ts = convert_value(
            ValueKind::TimestampNtz,
            &Value::from("2024-01-05T10:00:00.5"),
        );
        assert_eq!(
            ts.unwrap(),
            EngineValue::Text("2024-01-05 10:00:00.500".into())
        );
        let tz = convert_value(ValueKind::TimestampTz, &Value::from("2024-01-05T10:00:00Z"));
        assert_eq!(
            tz.unwrap(),
            EngineValue::Text("2024-01-05 10:00:00+00:00".into())
        );
        let b = convert_value(ValueKind::Boolean, &Value::from(true)).unwrap();
        assert_eq!(b, EngineValue::Integer(1));
        let j = convert_value(ValueKind::Json, &serde_json::json!(["a", "b"])).unwrap();
        assert_eq!(j, EngineValue::Text(r#"["a","b"]"#.into()));
        let null = convert_value(ValueKind::Integer, &serde_json::json!({})).unwrap();
        assert_eq!(null, EngineValue::Null);
        let err = convert_value(ValueKind::Date, &Value::from("05/01/2024")).unwrap_err();
        assert!(err.contains("YYYY-MM-DD"), "{err}");
    }

    #[test]
    fn toml_dates_are_accepted() {
        let f = Fixture::from_toml_str(
            r#"
[[tables]]
platform = "databricks"
name = "Main.Sales.T"
columns = [ { name = "d", type = "DATE" } ]
rows = [ [2024-03-01] ]
"#,
        )
        .unwrap();
        let p = f.prepare().unwrap();
        assert_eq!(p.tables[0].display_name(), "main.sales.t");
        assert_eq!(
            p.tables[0].rows[0][0],
            EngineValue::Text("2024-03-01".into())
        );
    }

    fn two_platform_fixture(grants: &[&str]) -> Fixture {
        let mut f = Fixture::demo()
            .with_generated_table(Platform::Snowflake, "BENCH.PUBLIC.BIG", 3)
            .with_generated_table(Platform::Databricks, "bench.public.big", 3);
        f.users.push(UserSpec {
            id: "dave@example.com".into(),
            grants: grants
                .iter()
                .map(|t| GrantSpec {
                    table: (*t).into(),
                    row_filter: None,
                    masked_columns: vec![],
                })
                .collect(),
        });
        f
    }

    #[test]
    fn grants_match_the_exact_name_on_one_platform() {
        let f = two_platform_fixture(&["BENCH.PUBLIC.BIG", "bench.public.big"]);
        let p = f.prepare().unwrap();
        let dave = p.users.iter().find(|u| u.id == "dave@example.com").unwrap();
        let granted: Vec<(Platform, String)> = dave
            .grants
            .iter()
            .map(|g| (p.tables[g.table].platform, p.tables[g.table].display_name()))
            .collect();
        assert_eq!(
            granted,
            [
                (Platform::Snowflake, "BENCH.PUBLIC.BIG".to_string()),
                (Platform::Databricks, "bench.public.big".to_string()),
            ]
        );
        // One name, one table: granting only the Snowflake one grants nothing on Databricks.
        let p = two_platform_fixture(&["BENCH.PUBLIC.BIG"])
            .prepare()
            .unwrap();
        let dave = p.users.iter().find(|u| u.id == "dave@example.com").unwrap();
        assert_eq!(dave.grants.len(), 1);
        assert_eq!(p.tables[dave.grants[0].table].platform, Platform::Snowflake);
    }

    #[test]
    fn case_insensitive_grant_names_must_be_unambiguous() {
        // Unique ignoring case: still accepted.
        let p = Fixture::demo();
        let mut f = p.clone();
        f.users[0].grants = vec![GrantSpec {
            table: "main.SALES.Orders".into(),
            row_filter: None,
            masked_columns: vec![],
        }];
        let prepared = f.prepare().unwrap();
        let t = &prepared.tables[prepared.users[0].grants[0].table];
        assert_eq!(
            (t.platform, t.display_name()),
            (Platform::Databricks, "main.sales.orders".to_string())
        );
        // Matching both platforms only ignoring case: refused.
        let e = two_platform_fixture(&["Bench.Public.Big"])
            .validate()
            .unwrap_err()
            .to_string();
        assert!(e.contains("dave@example.com"), "{e}");
        assert!(e.contains("more than one platform"), "{e}");
        // The same table twice for one user: refused at validation, not at start.
        let e = two_platform_fixture(&["BENCH.PUBLIC.BIG", "bench.public.big", "bench.public.big"])
            .validate()
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("granted table bench.public.big (databricks) twice"),
            "{e}"
        );
    }

    #[test]
    fn decimal_scale_decides_storage() {
        assert_eq!(
            value_kind(Platform::Snowflake, "NUMBER(10,2)").unwrap(),
            ValueKind::Decimal
        );
        assert_eq!(
            value_kind(Platform::Snowflake, "number").unwrap(),
            ValueKind::Integer
        );
        assert_eq!(
            value_kind(Platform::Databricks, "ARRAY<STRING>").unwrap(),
            ValueKind::Json
        );
        assert!(
            value_kind(Platform::Databricks, "VARIANTX")
                .unwrap_err()
                .contains("VARIANTX")
        );
    }
}
