use immuta_mcp::result::Platform;
use immuta_mcp::sandbox::engine::Engine;
use immuta_mcp::sandbox::fixture::{Fixture, GrantSpec};
use immuta_mcp::sandbox::types;
use std::time::{Duration, Instant, SystemTime};
#[tokio::test(flavor = "multi_thread")]
async fn perf() {
    let mut fixture = Fixture::from_toml_str(r#"
[[tables]]
platform = "snowflake"
name = "BENCH.PUBLIC.SEED"
columns = [ { name = "ID", type = "NUMBER" } ]
rows = [[1]]
[[users]]
id = "x@example.com"
grants = [ { table = "BENCH.PUBLIC.SEED" } ]
"#).unwrap().with_generated_table(Platform::Snowflake, "BENCH.PUBLIC.BIG", 1_000_000);
    fixture.users[0].grants.push(serde_json::from_value::<GrantSpec>(serde_json::json!({"table": "BENCH.PUBLIC.BIG"})).unwrap());
    let engine = Engine::new(&fixture).unwrap();
    engine.bind_role(Platform::Snowflake, "R", "x@example.com", SystemTime::now() + Duration::from_secs(600)).unwrap();
    for sql in ["SELECT ID FROM BENCH.PUBLIC.BIG", "SELECT AMOUNT FROM BENCH.PUBLIC.BIG", "SELECT * FROM BENCH.PUBLIC.BIG"] {
    let r = engine.execute(Platform::Snowflake, "R", sql, &Default::default()).unwrap();
    let t = Instant::now();
    let enc = types::encode_snowflake(&r.columns, &r.rows).unwrap();
    eprintln!("{sql}: encode {:?} {:?}", t.elapsed(), enc.rows[999_999]);
    let t = Instant::now();
    let enc = types::encode_databricks(&r.columns, &r.rows).unwrap();
    eprintln!("{sql}: dbx encode {:?} {:?}", t.elapsed(), enc.rows[999_999]);
    }
}
