//! Wire shapes of the Databricks APIs this path speaks: OAuth M2M token
//! answers and the SQL Statement Execution API 2.0 (requests, statement
//! status, manifest, inline `JSON_ARRAY` result chunks, error bodies).
//!
//! Only the fields the client reads are modelled; unknown fields are ignored
//! so newer workspace answers still parse.

use serde::{Deserialize, Serialize};

/// Path of the workspace OAuth token endpoint (relative to the host).
pub const TOKEN_PATH: &str = "/oidc/v1/token";
/// Workspace OAuth authorization-server metadata (used by `check`).
pub const OAUTH_METADATA_PATH: &str = "/oidc/.well-known/oauth-authorization-server";
/// Statement Execution API base path.
pub const STATEMENTS_PATH: &str = "/api/2.0/sql/statements";

/// Answer of `POST /oidc/v1/token`. Its `Debug` never prints `access_token`.
#[derive(Clone, PartialEq, Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    #[serde(default)]
    pub token_type: Option<String>,
    /// Lifetime in seconds.
    #[serde(default)]
    pub expires_in: Option<u64>,
    #[serde(default)]
    pub scope: Option<String>,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("access_token", &"<redacted>")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .finish()
    }
}

/// OAuth error answer (RFC 6749 §5.2).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct OAuthErrorBody {
    pub error: String,
    #[serde(default)]
    pub error_description: Option<String>,
}

/// Body of `POST /api/2.0/sql/statements`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExecuteStatementRequest {
    pub warehouse_id: String,
    pub statement: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub catalog: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// `"0s"` or `"5s"`..`"50s"`.
    pub wait_timeout: String,
    /// `CONTINUE` or `CANCEL`.
    pub on_wait_timeout: String,
    /// Always `INLINE` here.
    pub disposition: String,
    /// Always `JSON_ARRAY` here.
    pub format: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub row_limit: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub byte_limit: Option<u64>,
    /// `query_tags`: `[{key, value}]`, at most 20 (databricks-sdk-go
    /// `service/sql/model.go` ExecuteStatementRequest.QueryTags / QueryTag).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub query_tags: Vec<QueryTag>,
    /// Values for `:name` markers (databricks-sdk-go `service/sql/model.go`,
    /// `StatementParameterListItem`: `name`, `value`, `type`; no type means STRING).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub parameters: Vec<StatementParameter>,
}

/// One entry of `query_tags`: a non-empty key and an optional value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryTag {
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// Longest tag value sent (the user part is cut, never the key).
const MAX_TAG_VALUE: usize = 128;

impl QueryTag {
    /// A tag whose value keeps only safe characters (ASCII letters, digits,
    /// `@ . _ - +`); anything else becomes `_`, and the value is cut to 128
    /// characters, so no quoting, separator or control character reaches the
    /// warehouse's query history.
    pub fn safe(key: &str, value: &str) -> QueryTag {
        let clean: String = value
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '@' | '.' | '_' | '-' | '+') {
                    c
                } else {
                    '_'
                }
            })
            .take(MAX_TAG_VALUE)
            .collect();
        QueryTag {
            key: key.to_string(),
            value: (!clean.is_empty()).then_some(clean),
        }
    }
}

/// One entry of [`ExecuteStatementRequest::parameters`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatementParameter {
    pub name: String,
    pub value: String,
    #[serde(rename = "type")]
    pub type_name: String,
}

/// Lifecycle state of a statement.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StatementState {
    Pending,
    Running,
    Succeeded,
    Failed,
    Canceled,
    Closed,
    /// A state this client does not know (treated as still running).
    #[serde(other)]
    Unknown,
}

impl StatementState {
    pub fn as_str(&self) -> &'static str {
        match self {
            StatementState::Pending => "PENDING",
            StatementState::Running => "RUNNING",
            StatementState::Succeeded => "SUCCEEDED",
            StatementState::Failed => "FAILED",
            StatementState::Canceled => "CANCELED",
            StatementState::Closed => "CLOSED",
            StatementState::Unknown => "UNKNOWN",
        }
    }
}

/// `status.error` of a failed statement.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
pub struct ServiceError {
    #[serde(default)]
    pub error_code: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
}

/// `status` of a statement.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct StatementStatus {
    pub state: StatementState,
    #[serde(default)]
    pub error: Option<ServiceError>,
    #[serde(default)]
    pub sql_state: Option<String>,
}

/// One column of `manifest.schema.columns`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
pub struct ColumnInfo {
    pub name: String,
    #[serde(default)]
    pub type_name: Option<String>,
    #[serde(default)]
    pub type_text: Option<String>,
    #[serde(default)]
    pub position: Option<u32>,
    #[serde(default)]
    pub type_precision: Option<u32>,
    #[serde(default)]
    pub type_scale: Option<u32>,
    #[serde(default)]
    pub type_interval_type: Option<String>,
}

/// `manifest.schema`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
pub struct ResultSchema {
    #[serde(default)]
    pub column_count: Option<u32>,
    #[serde(default)]
    pub columns: Vec<ColumnInfo>,
}

/// Position of one chunk in the manifest.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ChunkInfo {
    /// Absent for chunk 0: the server leaves out zero values.
    #[serde(default)]
    pub chunk_index: u64,
    #[serde(default)]
    pub row_offset: Option<u64>,
    #[serde(default)]
    pub row_count: Option<u64>,
}

/// `manifest` of a succeeded statement.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
pub struct ResultManifest {
    #[serde(default)]
    pub format: Option<String>,
    #[serde(default)]
    pub schema: ResultSchema,
    #[serde(default)]
    pub total_chunk_count: Option<u64>,
    #[serde(default)]
    pub chunks: Vec<ChunkInfo>,
    #[serde(default)]
    pub total_row_count: Option<u64>,
    /// True when `row_limit` or `byte_limit` cut the result.
    #[serde(default)]
    pub truncated: bool,
}

/// One inline result chunk (`result` of a statement, or a chunk answer).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
pub struct ResultData {
    #[serde(default)]
    pub chunk_index: Option<u64>,
    #[serde(default)]
    pub row_offset: Option<u64>,
    #[serde(default)]
    pub row_count: Option<u64>,
    /// Rows of values; JSON_ARRAY values are strings or null.
    #[serde(default)]
    pub data_array: Option<Vec<Vec<serde_json::Value>>>,
    #[serde(default)]
    pub next_chunk_index: Option<u64>,
    #[serde(default)]
    pub next_chunk_internal_link: Option<String>,
    /// Present only for EXTERNAL_LINKS, which this client never asks for.
    #[serde(default)]
    pub external_links: Option<serde_json::Value>,
}

/// Answer of submit and of `GET /api/2.0/sql/statements/{id}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct StatementResponse {
    pub statement_id: String,
    pub status: StatementStatus,
    #[serde(default)]
    pub manifest: Option<ResultManifest>,
    #[serde(default)]
    pub result: Option<ResultData>,
}

/// Error body of the REST API: `{error_code, message}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ApiErrorBody {
    #[serde(default)]
    pub error_code: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_response_debug_hides_the_access_token() {
        let t: TokenResponse =
            serde_json::from_str(r#"{"access_token":"dapi-secret-123","expires_in":60}"#).unwrap();
        let shown = format!("{t:?}");
        assert!(!shown.contains("dapi-secret-123"), "{shown}");
        assert!(shown.contains("expires_in"), "{shown}");
    }

    #[test]
    fn query_tags_are_key_value_objects_with_safe_values() {
        let tag = QueryTag::safe("end_user", "Robert'); DROP--\n\"x\"@ex.com");
        assert_eq!(tag.value.as_deref(), Some("Robert____DROP--__x_@ex.com"));
        assert_eq!(
            serde_json::to_value(&tag).unwrap(),
            serde_json::json!({"key": "end_user", "value": "Robert____DROP--__x_@ex.com"})
        );
        let long = QueryTag::safe("k", &"a".repeat(500));
        assert_eq!(long.value.unwrap().len(), 128);
        assert_eq!(QueryTag::safe("k", "").value, None);
    }

    #[test]
    fn parses_a_succeeded_statement_with_inline_chunk() {
        let body = r#"{"statement_id":"01ef-1","status":{"state":"SUCCEEDED"},
          "manifest":{"format":"JSON_ARRAY","schema":{"column_count":2,"columns":[
              {"name":"id","type_name":"LONG","type_text":"BIGINT","position":0},
              {"name":"amount","type_name":"DECIMAL","type_text":"DECIMAL(10,2)","position":1,"type_precision":10,"type_scale":2}]},
            "total_chunk_count":2,"chunks":[{"chunk_index":0,"row_offset":0,"row_count":1},{"chunk_index":1,"row_offset":1,"row_count":1}],
            "total_row_count":2,"truncated":false},
          "result":{"chunk_index":0,"row_offset":0,"row_count":1,"data_array":[["1","10.50"]],"next_chunk_index":1,
            "next_chunk_internal_link":"/api/2.0/sql/statements/01ef-1/result/chunks/1"}}"#;
        let r: StatementResponse = serde_json::from_str(body).unwrap();
        assert_eq!(r.status.state, StatementState::Succeeded);
        let m = r.manifest.unwrap();
        assert_eq!(m.schema.columns[1].type_scale, Some(2));
        assert_eq!(r.result.unwrap().next_chunk_index, Some(1));
    }

    #[test]
    fn parses_a_failed_statement_and_unknown_states() {
        let body = r#"{"statement_id":"s","status":{"state":"FAILED","sql_state":"42P01",
          "error":{"error_code":"BAD_REQUEST","message":"[TABLE_OR_VIEW_NOT_FOUND] x"}}}"#;
        let r: StatementResponse = serde_json::from_str(body).unwrap();
        assert_eq!(r.status.state, StatementState::Failed);
        assert_eq!(r.status.sql_state.as_deref(), Some("42P01"));
        let s: StatementStatus = serde_json::from_str(r#"{"state":"QUEUED_SOMEHOW"}"#).unwrap();
        assert_eq!(s.state, StatementState::Unknown);
    }

    #[test]
    fn request_omits_absent_namespace() {
        let v = serde_json::to_value(ExecuteStatementRequest {
            warehouse_id: "w".into(),
            statement: "SELECT 1".into(),
            catalog: None,
            schema: Some("s".into()),
            wait_timeout: "10s".into(),
            on_wait_timeout: "CONTINUE".into(),
            disposition: "INLINE".into(),
            format: "JSON_ARRAY".into(),
            row_limit: Some(11),
            byte_limit: Some(100),
            query_tags: Vec::new(),
            parameters: Vec::new(),
        })
        .unwrap();
        assert!(v.get("catalog").is_none());
        assert!(v.get("query_tags").is_none());
        assert!(v.get("parameters").is_none());
        assert_eq!(v["row_limit"], 11);
        assert_eq!(v["format"], "JSON_ARRAY");
    }
}
