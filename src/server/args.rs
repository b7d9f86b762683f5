//! The tools' argument and answer types: their doc comments become the
//! JSON Schemas tools/list shows (through [`crate::tool_schema`]), and
//! `deny_unknown_fields` makes a stray argument a protocol error.

use crate::result::Platform;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Arguments of `query_snowflake`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SnowflakeQueryArgs {
    /// Exactly one Snowflake SQL statement (read-only unless the operator allowed more).
    pub sql: String,
    /// Database for unqualified names (defaults to the server's configured database).
    pub database: Option<String>,
    /// Schema for unqualified names.
    pub schema: Option<String>,
    /// Warehouse to run on (defaults to the configured warehouse).
    pub warehouse: Option<String>,
    /// Most rows to return; more rows mark the result `truncated`.
    pub max_rows: Option<u64>,
}

/// Arguments of `query_databricks`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DatabricksQueryArgs {
    /// Exactly one Databricks SQL statement (read-only unless the operator allowed more).
    pub sql: String,
    /// Unity Catalog catalog for unqualified names.
    pub catalog: Option<String>,
    /// Schema for unqualified names.
    pub schema: Option<String>,
    /// Most rows to return; more rows mark the result `truncated`.
    pub max_rows: Option<u64>,
}

/// Arguments of `list_tables`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListTablesArgs {
    /// Which platform to list.
    pub platform: Platform,
    /// Snowflake database or Databricks catalog to limit the list to.
    pub database: Option<String>,
    /// Schema to limit the list to (needs `database`).
    pub schema: Option<String>,
}

/// Arguments of `describe_table`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DescribeTableArgs {
    /// Which platform the table lives on.
    pub platform: Platform,
    /// Fully qualified table name: `DB.SCHEMA.TABLE` (Snowflake) or `catalog.schema.table` (Databricks).
    pub table: String,
}

/// Arguments of `fetch_more`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FetchMoreArgs {
    /// The `next_cursor` of a previous result, exactly as returned.
    pub cursor: String,
    /// Most rows to return in this page; more rows give another `next_cursor`.
    pub max_rows: Option<u64>,
}

/// Arguments of `whoami` (none).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoArgs {}

/// Answer of `whoami`.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct WhoAmI {
    /// The end user every query runs for (Immuta user id).
    pub user: String,
    /// How the user was established: `stdio_config`, `stdio_id_token`, `http_bearer` or `databricks_apps`.
    pub identity_source: String,
    /// Issuer of the verified token (`local-config` for a configured stdio user).
    pub issuer: String,
    /// Platforms this server can query.
    pub platforms: Vec<PlatformStatus>,
    /// True when only read statements are allowed.
    pub read_only: bool,
}

/// Whether one platform is available.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct PlatformStatus {
    pub platform: Platform,
    pub configured: bool,
}
