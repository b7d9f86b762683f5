//! Wire shapes of Snowflake's SQL API v2 (`/api/v2/statements`): the submit
//! request body, the `ResultSet` / `QueryStatus` / error answers and the
//! `resultSetMetaData` they carry (`rowType`, `partitionInfo`), plus the
//! paths and headers the client sends.
//!
//! Only the fields the client reads are modelled; unknown fields are ignored
//! so newer answers still parse (snowflakedb/snowflake-rest-api-specs,
//! `specifications/sqlapi.yaml`).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Header naming the kind of bearer token.
pub const TOKEN_TYPE_HEADER: &str = "X-Snowflake-Authorization-Token-Type";
/// Path of the statements endpoint.
pub const STATEMENTS_PATH: &str = "/api/v2/statements";

/// One statement to run.
#[derive(Debug, Clone, PartialEq)]
pub struct StatementRequest {
    pub statement: String,
    /// Server-side timeout, seconds (also bounds the client's waiting).
    pub timeout_secs: u64,
    pub database: Option<String>,
    pub schema: Option<String>,
    pub warehouse: Option<String>,
    pub role: Option<String>,
    /// Value of the `QUERY_TAG` session parameter.
    pub query_tag: Option<String>,
}

impl StatementRequest {
    /// A statement with no context (PAT management).
    pub fn bare(statement: impl Into<String>, timeout_secs: u64) -> Self {
        Self {
            statement: statement.into(),
            timeout_secs,
            database: None,
            schema: None,
            warehouse: None,
            role: None,
            query_tag: None,
        }
    }

    /// The JSON body of `POST /api/v2/statements`.
    pub fn body(&self) -> Value {
        let mut obj = Map::new();
        obj.insert("statement".into(), Value::String(self.statement.clone()));
        obj.insert("timeout".into(), Value::from(self.timeout_secs));
        for (key, value) in [
            ("database", &self.database),
            ("schema", &self.schema),
            ("warehouse", &self.warehouse),
            ("role", &self.role),
        ] {
            if let Some(v) = value {
                obj.insert(key.into(), Value::String(v.clone()));
            }
        }
        // Exactly one statement per request, always said explicitly (security
        // audit): Snowflake's default is 1 but an account or user may change
        // it. Parameter names are upper case: snowflakedb/snowflake-rest-api-specs#26
        // ("only accepts the multi_statement_count field when it is
        // capitalized"), and the docs' examples send a string value.
        let mut parameters = Map::new();
        parameters.insert("MULTI_STATEMENT_COUNT".into(), Value::String("1".into()));
        if let Some(tag) = &self.query_tag {
            parameters.insert("QUERY_TAG".into(), Value::String(tag.clone()));
        }
        obj.insert("parameters".into(), Value::Object(parameters));
        Value::Object(obj)
    }
}

/// Body of 200/202/422 answers (`ResultSet` / `QueryStatus` / error).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StatementAnswer {
    pub(crate) code: Option<String>,
    pub(crate) sql_state: Option<String>,
    pub(crate) message: Option<String>,
    pub(crate) statement_handle: Option<String>,
    pub(crate) result_set_meta_data: Option<ResultSetMetaData>,
    pub(crate) data: Option<Vec<Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ResultSetMetaData {
    pub(crate) num_rows: Option<u64>,
    pub(crate) format: Option<String>,
    #[serde(default)]
    pub(crate) row_type: Vec<RowTypeField>,
    #[serde(default)]
    pub(crate) partition_info: Vec<PartitionInfo>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PartitionInfo {
    #[allow(dead_code)]
    pub(crate) row_count: Option<u64>,
    #[allow(dead_code)]
    pub(crate) uncompressed_size: Option<u64>,
}

/// One entry of `resultSetMetaData.rowType`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RowTypeField {
    pub name: String,
    /// Lower-case Snowflake type name: `fixed`, `real`, `text`, `date`, ...
    #[serde(rename = "type")]
    pub type_name: String,
    #[serde(default = "default_nullable")]
    pub nullable: bool,
    #[serde(default)]
    pub precision: Option<u32>,
    #[serde(default)]
    pub scale: Option<u32>,
    #[serde(default)]
    pub length: Option<u64>,
}

fn default_nullable() -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn body_carries_context_role_and_query_tag() {
        let req = StatementRequest {
            statement: "SELECT 1".into(),
            timeout_secs: 30,
            database: Some("SALES".into()),
            schema: None,
            warehouse: Some("WH".into()),
            role: Some("IMMUTA_OBO_1".into()),
            query_tag: Some("{\"end_user\":\"a\"}".into()),
        };
        assert_eq!(
            req.body(),
            json!({"statement": "SELECT 1", "timeout": 30, "database": "SALES", "warehouse": "WH",
                   "role": "IMMUTA_OBO_1", "parameters": {"MULTI_STATEMENT_COUNT": "1", "QUERY_TAG": "{\"end_user\":\"a\"}"}})
        );
        assert_eq!(
            StatementRequest::bare("SHOW USER PROGRAMMATIC ACCESS TOKENS", 5).body()["parameters"],
            json!({"MULTI_STATEMENT_COUNT": "1"}),
            "token statements say it too"
        );
    }
}
