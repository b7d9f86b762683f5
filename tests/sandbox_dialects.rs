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
    match (expected.strip_prefix("fixed(*,"), actual.strip_prefix("fixed(")) {
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
