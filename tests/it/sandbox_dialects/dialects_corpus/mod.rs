//! The dialect corpus: typical analyst queries per platform, with the answer
//! each platform gives on the demo fixture (as user bob, who sees every row
//! unmasked). Expected values are worked out from the platforms' documented
//! semantics; `types` lists the answer's column types (`|`-separated:
//! Snowflake `rowType` families, `fixed(p,s)` with `*` for "any precision";
//! Databricks `type_text`), `rows` the cells as JSON strings or null
//! (Snowflake dates and timestamps decoded from their epoch encodings).

mod databricks;
mod snowflake;

pub use databricks::databricks_cases;
pub use snowflake::snowflake_cases;

pub struct Case {
    pub sql: &'static str,
    pub types: &'static str,
    pub rows: &'static str,
}

pub const fn case(sql: &'static str, types: &'static str, rows: &'static str) -> Case {
    Case { sql, types, rows }
}
