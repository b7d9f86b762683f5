//! Rule: masks and row filters hold through every dialect feature of the analyst corpus, with the
//! platforms' answer types.
//!
//! Snowflake and Databricks dialects in the sandbox engine: a table-driven
//! corpus of typical analyst queries per platform (expected answers and
//! answer types, as the platforms' wire formats report them), and policy
//! checks that masks and row filters hold through functions, windows,
//! joins, QUALIFY, LISTAGG and semi-structured access.
//!
//! Drives `Engine` directly and encodes with the emulators' own encoders
//! (`encode_snowflake` / `encode_databricks`), which is exactly what the
//! HTTP emulators put in `rowType` / `manifest.schema` and the rows.

mod dialects_corpus;

use dialects_corpus::{Case, databricks_cases, snowflake_cases};
use immuta_mcp::result::Platform;
use immuta_mcp::sandbox::engine::{Engine, EngineError, Namespace};
use immuta_mcp::sandbox::fixture::Fixture;
use immuta_mcp::sandbox::types::{encode_databricks, encode_snowflake};
use serde_json::Value;
use std::time::{Duration, SystemTime};

const USERS: [&str; 3] = ["alice@example.com", "bob@example.com", "carol@example.com"];

fn engine_for(fixture: &Fixture) -> Engine {
    let engine = Engine::new(fixture).expect("fixture loads");
    let later = SystemTime::now() + Duration::from_secs(3600);
    for user in USERS {
        let short = user.split('@').next().unwrap();
        engine
            .bind_role(
                Platform::Snowflake,
                &format!("R_{}", short.to_uppercase()),
                user,
                later,
            )
            .unwrap();
        engine
            .bind_role(Platform::Databricks, &format!("g-{short}"), user, later)
            .unwrap();
    }
    engine
}

fn ns(platform: Platform) -> Namespace {
    match platform {
        Platform::Snowflake => Namespace {
            database: Some("SALES".into()),
            schema: Some("PUBLIC".into()),
        },
        Platform::Databricks => Namespace {
            database: Some("main".into()),
            schema: Some("sales".into()),
        },
    }
}

/// One answer as the wire shows it: type per column and rows of strings/nulls.
#[derive(Debug)]
struct Answer {
    types: Vec<String>,
    rows: Vec<Vec<Option<String>>>,
}

fn run(engine: &Engine, platform: Platform, role: &str, sql: &str) -> Result<Answer, String> {
    let result = engine
        .execute(platform, role, sql, &ns(platform))
        .map_err(|e: EngineError| e.to_string())?;
    match platform {
        Platform::Snowflake => {
            let enc = encode_snowflake(&result.columns, &result.rows).map_err(|e| e.to_string())?;
            let types: Vec<String> = enc
                .row_type
                .iter()
                .map(|t| {
                    let family = t["type"].as_str().unwrap_or_default().to_string();
                    if family == "fixed" {
                        format!("fixed({},{})", t["precision"], t["scale"])
                    } else {
                        family
                    }
                })
                .collect();
            let rows = enc
                .rows
                .iter()
                .map(|r| {
                    r.iter()
                        .zip(&types)
                        .map(|(cell, ty)| cell.as_ref().map(|c| readable_snowflake(ty, c)))
                        .collect()
                })
                .collect();
            Ok(Answer { types, rows })
        }
        Platform::Databricks => {
            let enc =
                encode_databricks(&result.columns, &result.rows).map_err(|e| e.to_string())?;
            let types = enc
                .columns
                .iter()
                .map(|c| c["type_text"].as_str().unwrap_or_default().to_string())
                .collect();
            Ok(Answer {
                types,
                rows: enc.rows,
            })
        }
    }
}

/// Snowflake's jsonv2 cells decoded for readability: DATE (days since the epoch)
/// as `YYYY-MM-DD`, TIMESTAMP_NTZ/LTZ (epoch seconds) as `YYYY-MM-DD HH:MM:SS[.fff]`,
/// semi-structured values as compact JSON. Everything else as sent.
fn readable_snowflake(ty: &str, cell: &str) -> String {
    match ty {
        "date" => {
            let days: i64 = cell.parse().expect("date cell is a day number");
            (chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap() + chrono::Duration::days(days))
                .to_string()
        }
        "timestamp_ntz" | "timestamp_ltz" => {
            let (secs, frac) = cell.split_once('.').unwrap_or((cell, "0"));
            let nanos: u32 = format!("{frac:0<9}")[..9].parse().unwrap();
            let ts = chrono::DateTime::from_timestamp(secs.parse().unwrap(), nanos)
                .unwrap()
                .naive_utc();
            if nanos == 0 {
                ts.format("%Y-%m-%d %H:%M:%S").to_string()
            } else {
                ts.format("%Y-%m-%d %H:%M:%S%.3f").to_string()
            }
        }
        "variant" | "object" | "array" => serde_json::from_str::<Value>(cell)
            .map(|v| v.to_string())
            .unwrap_or_else(|_| cell.to_string()),
        _ => cell.to_string(),
    }
}

/// `fixed(*,2)` matches any precision.
fn type_matches(expected: &str, actual: &str) -> bool {
    if expected == actual {
        return true;
    }
    match (
        expected.strip_prefix("fixed(*,"),
        actual.strip_prefix("fixed("),
    ) {
        (Some(scale), Some(rest)) => rest.split_once(',').is_some_and(|(_, s)| s == scale),
        _ => false,
    }
}

fn check(engine: &Engine, platform: Platform, role: &str, case: &Case) -> Result<(), String> {
    let answer = run(engine, platform, role, case.sql)?;
    let expected_types: Vec<&str> = case.types.split('|').collect();
    let types_ok = expected_types.len() == answer.types.len()
        && expected_types
            .iter()
            .zip(&answer.types)
            .all(|(e, a)| type_matches(e, a));
    let expected_rows: Vec<Vec<Option<String>>> =
        serde_json::from_str(case.rows).map_err(|e| format!("bad expected rows: {e}"))?;
    if !types_ok || expected_rows != answer.rows {
        return Err(format!(
            "types {:?} (expected {}), rows {} (expected {})",
            answer.types,
            case.types,
            serde_json::to_string(&answer.rows).unwrap(),
            case.rows
        ));
    }
    Ok(())
}

fn run_corpus(platform: Platform, role: &str, cases: &[Case]) {
    let engine = engine_for(&Fixture::demo());
    let mut failures = Vec::new();
    for case in cases {
        if let Err(e) = check(&engine, platform, role, case) {
            failures.push(format!("{}\n    {e}", case.sql));
        }
    }
    eprintln!(
        "{platform:?} dialect corpus: {}/{} queries pass",
        cases.len() - failures.len(),
        cases.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} {platform:?} queries failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn snowflake_corpus() {
    let cases = snowflake_cases();
    assert!(cases.len() >= 60, "the corpus keeps at least 60 queries");
    run_corpus(Platform::Snowflake, "R_BOB", &cases);
}

#[test]
fn databricks_corpus() {
    let cases = databricks_cases();
    assert!(cases.len() >= 60, "the corpus keeps at least 60 queries");
    run_corpus(Platform::Databricks, "g-bob", &cases);
}

// ---------------------------------------------------------------------------
// Policies hold through the dialect functions
// ---------------------------------------------------------------------------

/// Every cell of an answer, as text (for "no real value leaks" checks).
fn cells(answer: &Answer) -> Vec<String> {
    answer
        .rows
        .iter()
        .flatten()
        .map(|c| c.clone().unwrap_or_else(|| "NULL".into()))
        .collect()
}

fn assert_no_email(answer: &Answer, what: &str) {
    for c in cells(answer) {
        assert!(
            !c.contains('@') && !c.contains("example."),
            "{what}: a masked e-mail leaked: {c}"
        );
    }
}

fn sf_alice(sql: &str) -> Answer {
    let engine = engine_for(&Fixture::demo());
    run(&engine, Platform::Snowflake, "R_ALICE", sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
}

fn db_alice(sql: &str) -> Answer {
    let engine = engine_for(&Fixture::demo());
    run(&engine, Platform::Databricks, "g-alice", sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
}

#[test]
fn snowflake_masks_hold_in_listagg_windows_qualify_and_string_functions() {
    let a = sf_alice(
        "SELECT LISTAGG(EMAIL, ',') WITHIN GROUP (ORDER BY ORDER_ID) AS e, ARRAY_AGG(EMAIL) AS a FROM ORDERS",
    );
    assert_eq!(a.rows[0][0].as_deref(), Some("***,***,***,***"));
    assert_no_email(&a, "LISTAGG/ARRAY_AGG");

    let w = sf_alice(
        "SELECT FIRST_VALUE(EMAIL) OVER (ORDER BY ORDER_ID) AS f, LAG(EMAIL) OVER (ORDER BY ORDER_ID) AS l, MAX(EMAIL) OVER () AS m FROM ORDERS ORDER BY ORDER_ID",
    );
    assert_eq!(w.rows.len(), 4, "EU rows only");
    assert_no_email(&w, "window functions");

    let q = sf_alice("SELECT ORDER_ID, EMAIL FROM ORDERS QUALIFY EMAIL LIKE 'anna%'");
    assert!(q.rows.is_empty(), "QUALIFY cannot see the real value");
    let q = sf_alice(
        "SELECT EMAIL, ROW_NUMBER() OVER (ORDER BY EMAIL) AS rn FROM ORDERS QUALIFY rn = 1",
    );
    assert_eq!(q.rows[0][0].as_deref(), Some("***"));

    let f = sf_alice(
        "SELECT SPLIT_PART(EMAIL, '@', 2) AS d, REGEXP_SUBSTR(EMAIL, '@.*') AS r, LENGTH(EMAIL) AS l, PARSE_JSON('\"' || EMAIL || '\"')::string AS p, TO_VARCHAR(EMAIL) AS t, UPPER(EMAIL) AS u, INITCAP(EMAIL) AS i, DECODE(EMAIL, 'anna.schmidt@example.de', 'anna', 'other') AS who FROM CUSTOMERS ORDER BY CUSTOMER_ID",
    );
    assert_no_email(&f, "string functions");
    for row in &f.rows {
        assert_eq!(row[2].as_deref(), Some("3"), "LENGTH of the mask");
        assert_eq!(
            row[7].as_deref(),
            Some("other"),
            "DECODE sees only the mask"
        );
    }
}

#[test]
fn snowflake_joins_and_filters_hold_through_flatten_and_aggregates() {
    // Joining on a masked column matches masks, never real values.
    let j = sf_alice(
        "SELECT c.NAME, o.ORDER_ID, o.EMAIL FROM CUSTOMERS c JOIN ORDERS o ON o.EMAIL = c.EMAIL",
    );
    assert_no_email(&j, "join on a masked column");
    assert_eq!(
        j.rows.len(),
        3 * 4,
        "every EU customer matches every EU order's mask"
    );

    // Filtered rows stay invisible through FLATTEN, MEDIAN and ARRAY_AGG.
    let f = sf_alice(
        "SELECT COUNT(*) AS n, ARRAY_AGG(DISTINCT o.REGION) AS r FROM ORDERS o, LATERAL FLATTEN(input => o.DETAILS:items) f",
    );
    assert_eq!(
        f.rows,
        vec![vec![Some("6".into()), Some("[\"EU\"]".into())]]
    );
    let m = sf_alice("SELECT MEDIAN(AMOUNT) AS m, COUNT_IF(REGION <> 'EU') AS other FROM ORDERS");
    assert_eq!(
        m.rows,
        vec![vec![Some("105.24500".into()), Some("0".into())]]
    );
    let g = sf_alice(
        "SELECT REGION, COUNT(*) AS n FROM ORDERS GROUP BY ALL QUALIFY SUM(n) OVER () > 0",
    );
    assert_eq!(g.rows, vec![vec![Some("EU".into()), Some("4".into())]]);
}

#[test]
fn databricks_masks_and_filters_hold_through_collect_list_percentiles_and_explode() {
    let c = db_alice(
        "SELECT collect_list(customer_email) AS l, concat_ws(',', collect_list(customer_email)) AS s, max(split_part(customer_email, '@', 2)) AS d FROM orders",
    );
    assert_no_email(&c, "collect_list/concat_ws/split_part");
    assert_eq!(c.rows[0][1].as_deref(), Some("***,***,***"));

    // Salaries are masked (NULL): no aggregate, window or percentile recovers them.
    let s = db_alice(
        "SELECT median(salary) AS m, percentile_approx(salary, 0.5) AS p, max_by(full_name, salary) AS top, sum(salary) AS total, count(salary) AS n FROM hr.employees",
    );
    assert_eq!(s.rows, vec![vec![None, None, None, None, Some("0".into())]]);
    let q = db_alice(
        "SELECT full_name FROM hr.employees QUALIFY rank() OVER (ORDER BY salary DESC) = 1 ORDER BY full_name",
    );
    assert_eq!(q.rows.len(), 3, "all EU employees tie on a masked salary");

    // explode and LATERAL VIEW see only the EU rows.
    let e = db_alice("SELECT explode(details.tags) AS tag FROM orders ORDER BY tag");
    let tags: Vec<String> = cells(&e);
    assert_eq!(tags, ["gift", "gift", "new", "promo", "vip"]);
    let j = db_alice(
        "SELECT o.region, count(*) AS n FROM orders o JOIN hr.employees e ON e.email = o.customer_email GROUP BY o.region",
    );
    assert_eq!(j.rows, vec![vec![Some("EU".into()), Some("9".into())]]);
}

const MASKED_SEMI_STRUCTURED: &str = r#"
[[tables]]
platform = "snowflake"
name = "APP.PUBLIC.EVENTS"
columns = [
  { name = "ID", type = "NUMBER(38,0)" },
  { name = "REGION", type = "TEXT" },
  { name = "PAYLOAD", type = "VARIANT" },
]
rows = [
  [1, "EU", { user = "anna@example.de", items = [{ sku = "A" }] }],
  [2, "US", { user = "james@example.com", items = [{ sku = "B" }] }],
]

[[tables]]
platform = "databricks"
name = "app.events.clicks"
columns = [
  { name = "id", type = "BIGINT" },
  { name = "region", type = "STRING" },
  { name = "info", type = "STRUCT<user: STRING, tags: ARRAY<STRING>, attrs: MAP<STRING, STRING>>" },
]
rows = [
  [1, "EU", { user = "anna@example.de", tags = ["a"], attrs = { k = "v" } }],
  [2, "US", { user = "james@example.com", tags = ["b"], attrs = { k = "w" } }],
]

[[users]]
id = "alice@example.com"
grants = [
  { table = "APP.PUBLIC.EVENTS", row_filter = "REGION = 'EU'", masked_columns = ["PAYLOAD"] },
  { table = "app.events.clicks", row_filter = "region = 'EU'", masked_columns = ["info"] },
]

[[users]]
id = "bob@example.com"
grants = [
  { table = "APP.PUBLIC.EVENTS" },
  { table = "app.events.clicks" },
]

[[users]]
id = "carol@example.com"
grants = []
"#;

#[test]
fn masked_semi_structured_columns_stay_masked_through_paths_flatten_and_explode() {
    let fixture = Fixture::from_toml_str(MASKED_SEMI_STRUCTURED).expect("fixture");
    let engine = engine_for(&fixture);
    let sf = |sql: &str| {
        let mut a = run(&engine, Platform::Snowflake, "R_ALICE", sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        a.rows.sort();
        a
    };
    let p = sf(
        "SELECT ID, PAYLOAD:user::string AS u, GET(PAYLOAD, 'user') AS g, PAYLOAD['items'][0]:sku AS s, TO_VARCHAR(PAYLOAD) AS t FROM APP.PUBLIC.EVENTS",
    );
    assert_eq!(p.rows, vec![vec![Some("1".into()), None, None, None, None]]);
    let f = sf(
        "SELECT f.value:sku::string AS sku FROM APP.PUBLIC.EVENTS e, LATERAL FLATTEN(input => e.PAYLOAD:items) f",
    );
    assert!(
        f.rows.is_empty(),
        "FLATTEN of a masked VARIANT yields nothing"
    );
    // Bob sees both rows unmasked, so the queries themselves do work.
    let bob = run(
        &engine,
        Platform::Snowflake,
        "R_BOB",
        "SELECT PAYLOAD:user::string AS u FROM APP.PUBLIC.EVENTS ORDER BY ID",
    )
    .unwrap();
    assert_eq!(bob.rows.len(), 2);
    assert_eq!(bob.rows[0][0].as_deref(), Some("anna@example.de"));

    let db = |sql: &str| {
        run(&engine, Platform::Databricks, "g-alice", sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
    };
    let d = db(
        "SELECT id, info.user AS u, info.attrs['k'] AS k, size(info.tags) AS n, to_json(info) AS j FROM app.events.clicks",
    );
    assert_eq!(d.rows, vec![vec![Some("1".into()), None, None, None, None]]);
    let e = db("SELECT explode(info.tags) AS t FROM app.events.clicks");
    assert!(
        e.rows.is_empty(),
        "explode of a masked STRUCT field yields nothing"
    );
}
