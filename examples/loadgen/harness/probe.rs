//! The query tool calls the sections time: the demo orders table on each
//! platform and the generated `BENCH` tables of section 4, with the endpoint a
//! section slows down and the round-trip goal section 1 prints beside its count.

use immuta_mcp::result::Platform;
use immuta_mcp::sandbox::Endpoint;
use serde_json::{Value, json};

/// A query tool call used by the sections.
#[derive(Clone, Copy)]
pub(crate) struct Probe {
    pub(crate) platform: Platform,
    pub(crate) tool: &'static str,
    pub(crate) sql: &'static str,
}

impl Probe {
    pub(crate) const SNOWFLAKE: Probe = Probe {
        platform: Platform::Snowflake,
        tool: "query_snowflake",
        sql: "SELECT ORDER_ID, REGION, EMAIL, AMOUNT FROM SALES.PUBLIC.ORDERS ORDER BY ORDER_ID",
    };
    pub(crate) const DATABRICKS: Probe = Probe {
        platform: Platform::Databricks,
        tool: "query_databricks",
        sql: "SELECT order_id, region, customer_email, amount FROM main.sales.orders ORDER BY order_id",
    };
    pub(crate) const SNOWFLAKE_BIG: Probe = Probe {
        platform: Platform::Snowflake,
        tool: "query_snowflake",
        sql: "SELECT * FROM BENCH.PUBLIC.BIG_SF",
    };
    pub(crate) const DATABRICKS_BIG: Probe = Probe {
        platform: Platform::Databricks,
        tool: "query_databricks",
        sql: "SELECT * FROM bench.public.big_dbx",
    };

    pub(crate) fn args(&self, max_rows: Option<u64>) -> Value {
        let mut args = json!({ "sql": self.sql });
        if let Some(n) = max_rows {
            args["max_rows"] = json!(n);
        }
        args
    }

    /// A one-row query on the same table, to do the OBO steps before a measured call.
    pub(crate) fn warm_sql(&self) -> &'static str {
        match self.platform {
            Platform::Snowflake => "SELECT ID FROM BENCH.PUBLIC.BIG_SF WHERE ID = 1",
            Platform::Databricks => "SELECT id FROM bench.public.big_dbx WHERE id = 1",
        }
    }

    pub(crate) fn submit_endpoint(&self) -> Endpoint {
        match self.platform {
            Platform::Snowflake => Endpoint::SnowflakeSubmit,
            Platform::Databricks => Endpoint::DatabricksSubmit,
        }
    }

    pub(crate) fn cold_goal(&self) -> &'static str {
        match self.platform {
            Platform::Snowflake => "3 (vend + PAT + statement) / 1 (+ polls)",
            Platform::Databricks => "3 (vend + token + statement) / 1 (+ polls)",
        }
    }
}
