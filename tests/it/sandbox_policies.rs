//! Rule: a vended role sees exactly its grants, row filters and masks in the sandbox engine.
//!
//! Policy behaviour of the sandbox engine: what a vended role sees.
//!
//! Drives `Engine` directly (no HTTP): grants, row filters, masks, metadata
//! statements, refused writes, role lifetimes, fixture validation, and a
//! large generated table.

use immuta_mcp::result::Platform;
use immuta_mcp::sandbox::engine::{Engine, EngineError, EngineResult, EngineValue, Namespace};
use immuta_mcp::sandbox::fixture::{Fixture, GrantSpec};
use std::time::{Duration, SystemTime};

const ALICE: &str = "alice@example.com";
const BOB: &str = "bob@example.com";
const CAROL: &str = "carol@example.com";

fn later() -> SystemTime {
    SystemTime::now() + Duration::from_secs(3600)
}

/// The demo engine with one Snowflake role and one Databricks group per user
/// (`R_<USER>` / `g-<user>`).
fn demo() -> Engine {
    let engine = Engine::new(&Fixture::demo()).expect("demo fixture loads");
    for user in [ALICE, BOB, CAROL] {
        let short = user.split('@').next().unwrap();
        engine
            .bind_role(
                Platform::Snowflake,
                &format!("R_{}", short.to_uppercase()),
                user,
                later(),
            )
            .unwrap();
        engine
            .bind_role(Platform::Databricks, &format!("g-{short}"), user, later())
            .unwrap();
    }
    engine
}

fn sales() -> Namespace {
    Namespace {
        database: Some("SALES".into()),
        schema: Some("PUBLIC".into()),
    }
}

fn main_ns() -> Namespace {
    Namespace {
        database: Some("main".into()),
        schema: Some("sales".into()),
    }
}

fn sf(engine: &Engine, role: &str, sql: &str) -> Result<EngineResult, EngineError> {
    engine.execute(Platform::Snowflake, role, sql, &sales())
}

fn db(engine: &Engine, group: &str, sql: &str) -> Result<EngineResult, EngineError> {
    engine.execute(Platform::Databricks, group, sql, &main_ns())
}

fn text(v: &EngineValue) -> &str {
    match v {
        EngineValue::Text(s) => s,
        other => panic!("expected text, got {other:?}"),
    }
}

fn column(result: &EngineResult, name: &str) -> Vec<EngineValue> {
    let i = result
        .columns
        .iter()
        .position(|c| c.name == name)
        .unwrap_or_else(|| panic!("no column {name} in {:?}", result.columns));
    result.rows.iter().map(|r| r[i].clone()).collect()
}

#[test]
fn two_users_see_different_rows_and_masks_from_the_same_sql() {
    let engine = demo();
    let sql = "SELECT ORDER_ID, REGION, EMAIL, AMOUNT FROM ORDERS ORDER BY ORDER_ID";
    let alice = sf(&engine, "R_ALICE", sql).unwrap();
    let bob = sf(&engine, "R_BOB", sql).unwrap();

    assert_eq!(alice.rows.len(), 4, "alice sees the EU orders only");
    assert_eq!(bob.rows.len(), 8, "bob sees every order");
    assert!(column(&alice, "REGION").iter().all(|r| text(r) == "EU"));
    assert!(column(&alice, "EMAIL").iter().all(|e| text(e) == "***"));
    assert!(column(&bob, "REGION").iter().any(|r| text(r) == "US"));
    assert_eq!(text(&column(&bob, "EMAIL")[0]), "anna.schmidt@example.de");

    // Declared types survive the policy view, masked or not.
    let types: Vec<Option<&str>> = alice
        .columns
        .iter()
        .map(|c| c.declared_type.as_deref())
        .collect();
    assert_eq!(
        types,
        [
            Some("NUMBER(38,0)"),
            Some("TEXT"),
            Some("TEXT"),
            Some("NUMBER(10,2)")
        ]
    );
    assert_eq!(column(&alice, "AMOUNT")[0], EngineValue::Real(120.5));
    assert!(!alice.columns[0].nullable, "ORDER_ID is declared NOT NULL");
}

#[test]
fn masked_non_text_columns_read_null_and_keep_their_type() {
    let engine = demo();
    let sql = "SELECT full_name, email, salary FROM main.hr.employees ORDER BY employee_id";
    let alice = db(&engine, "g-alice", sql).unwrap();
    let bob = db(&engine, "g-bob", sql).unwrap();
    assert_eq!(alice.rows.len(), 3);
    assert_eq!(bob.rows.len(), 5);
    assert!(
        column(&alice, "salary")
            .iter()
            .all(|s| *s == EngineValue::Null)
    );
    assert!(column(&alice, "email").iter().all(|e| text(e) == "***"));
    assert_eq!(column(&bob, "salary")[0], EngineValue::Real(72000.0));
    let salary = &alice.columns[2];
    assert_eq!(salary.declared_type.as_deref(), Some("DECIMAL(12,2)"));
    assert!(salary.nullable);
}

#[test]
fn row_filter_applies_to_aggregates_and_runs_on_unmasked_data() {
    let engine = demo();
    let count = |role: &str| {
        let r = sf(
            &engine,
            role,
            "select count(*) as n, sum(amount) from sales.public.orders",
        )
        .unwrap();
        assert_eq!(
            r.columns[0].name, "N",
            "Snowflake upper-cases unquoted names"
        );
        assert_eq!(
            r.columns[1].declared_type, None,
            "computed columns have no declared type"
        );
        r.rows[0][0].clone()
    };
    assert_eq!(count("R_ALICE"), EngineValue::Integer(4));
    assert_eq!(count("R_BOB"), EngineValue::Integer(8));
    // The user's own predicate sees the masked value, as under a masking policy.
    let by_email = sf(
        &engine,
        "R_ALICE",
        "SELECT * FROM ORDERS WHERE EMAIL = 'anna.schmidt@example.de'",
    )
    .unwrap();
    assert!(by_email.rows.is_empty());
}

#[test]
fn ungranted_or_missing_tables_are_not_authorized_alike() {
    let engine = demo();
    let err = sf(&engine, "R_CAROL", "SELECT * FROM SALES.PUBLIC.ORDERS").unwrap_err();
    assert_eq!(
        err,
        EngineError::NotAuthorized {
            object: "SALES.PUBLIC.ORDERS".into()
        }
    );
    let missing = sf(&engine, "R_CAROL", "SELECT * FROM NOPE").unwrap_err();
    assert_eq!(
        missing,
        EngineError::NotAuthorized {
            object: "SALES.PUBLIC.NOPE".into()
        }
    );
    // Hidden inside a subquery of a granted table: still refused.
    let nested = sf(
        &engine,
        "R_CAROL",
        "SELECT * FROM CUSTOMERS WHERE CUSTOMER_ID IN (SELECT CUSTOMER_ID FROM ORDERS)",
    )
    .unwrap_err();
    assert!(
        matches!(nested, EngineError::NotAuthorized { .. }),
        "{nested:?}"
    );
    let dbx = db(&engine, "g-carol", "SELECT * FROM main.hr.employees").unwrap_err();
    assert_eq!(
        dbx,
        EngineError::NotAuthorized {
            object: "main.hr.employees".into()
        }
    );
    // The raw storage tables are not reachable by name either, not even by
    // naming a CTE like them and referring to it outside its scope.
    let raw = sf(&engine, "R_CAROL", "SELECT * FROM \"tb$0\"").unwrap_err();
    assert!(matches!(raw, EngineError::NotAuthorized { .. }), "{raw:?}");
    let sneaky = sf(
        &engine,
        "R_CAROL",
        "SELECT * FROM (WITH \"tb$1\" AS (SELECT 1 AS X) SELECT X FROM \"tb$1\") q, \"tb$1\"",
    );
    // CTE names are renamed engine-wide (`cte$<n>$<name>`), so the reference
    // outside the CTE's scope resolves to that name, never to the raw table:
    // refused by policy, or "no such table" for the renamed CTE, and nothing else.
    let routed_away = match &sneaky {
        Err(EngineError::NotAuthorized { .. }) => true,
        Err(EngineError::Syntax(m)) => m.contains("no such table: cte$"),
        _ => false,
    };
    assert!(routed_away, "{sneaky:?}");
    let function = sf(
        &engine,
        "R_CAROL",
        "SELECT * FROM TABLE(FLATTEN(INPUT => '[1]'))",
    )
    .unwrap_err();
    assert!(
        matches!(function, EngineError::Unsupported(_)),
        "{function:?}"
    );
    let column = sf(&engine, "R_CAROL", "SELECT nope FROM CUSTOMERS").unwrap_err();
    assert_eq!(
        column,
        EngineError::Syntax("invalid identifier 'NOPE'".into())
    );
}

#[test]
fn expired_dropped_and_unknown_roles_are_refused() {
    let engine = demo();
    let sql = "SELECT 1";
    assert_eq!(
        sf(&engine, "NEVER_VENDED", sql).unwrap_err(),
        EngineError::UnknownRole("NEVER_VENDED".into())
    );
    engine
        .bind_role(
            Platform::Snowflake,
            "R_OLD",
            ALICE,
            SystemTime::now() - Duration::from_secs(1),
        )
        .unwrap();
    assert_eq!(engine.role_user(Platform::Snowflake, "R_OLD"), None);
    assert!(matches!(
        sf(&engine, "R_OLD", sql),
        Err(EngineError::UnknownRole(_))
    ));

    assert_eq!(
        engine.role_user(Platform::Snowflake, "r_alice").as_deref(),
        Some(ALICE)
    );
    engine.unbind_role(Platform::Snowflake, "R_ALICE");
    assert!(matches!(
        sf(&engine, "R_ALICE", sql),
        Err(EngineError::UnknownRole(_))
    ));

    assert!(db(&engine, "g-bob", sql).is_ok());
    engine.expire_all_roles();
    assert!(matches!(
        db(&engine, "g-bob", sql),
        Err(EngineError::UnknownRole(_))
    ));
    assert_eq!(engine.role_user(Platform::Databricks, "g-bob"), None);

    let unknown_user = engine.bind_role(Platform::Snowflake, "R_X", "mallory@example.com", later());
    assert!(
        unknown_user
            .unwrap_err()
            .to_string()
            .contains("mallory@example.com")
    );
}

#[test]
fn show_tables_and_information_schema_list_only_granted_tables() {
    let engine = demo();
    let names = |r: EngineResult, col: &str| -> Vec<String> {
        column(&r, col)
            .iter()
            .map(|v| text(v).to_string())
            .collect()
    };
    let carol = sf(&engine, "R_CAROL", "SHOW TABLES IN ACCOUNT").unwrap();
    assert_eq!(names(carol, "name"), ["CUSTOMERS"]);
    let bob = sf(&engine, "R_BOB", "SHOW TABLES IN SCHEMA SALES.PUBLIC").unwrap();
    assert_eq!(names(bob, "name"), ["CUSTOMERS", "ORDERS"]);
    let liked = sf(
        &engine,
        "R_BOB",
        "SHOW TABLES LIKE 'ord%' IN DATABASE SALES",
    )
    .unwrap();
    assert_eq!(names(liked, "name"), ["ORDERS"]);

    let carol_is = sf(
        &engine,
        "R_CAROL",
        "SELECT TABLE_NAME FROM SALES.INFORMATION_SCHEMA.TABLES ORDER BY 1",
    )
    .unwrap();
    assert_eq!(names(carol_is, "TABLE_NAME"), ["CUSTOMERS"]);

    let carol_db = db(&engine, "g-carol", "SHOW TABLES IN main.hr").unwrap();
    assert!(carol_db.rows.is_empty(), "carol has no grant in main.hr");
    let bob_db = db(
        &engine,
        "g-bob",
        "SELECT table_schema, table_name FROM system.information_schema.tables ORDER BY table_name",
    )
    .unwrap();
    assert_eq!(names(bob_db, "table_name"), ["employees", "orders"]);
    let carol_cols = db(
        &engine,
        "g-carol",
        "SELECT DISTINCT table_name FROM main.information_schema.columns",
    )
    .unwrap();
    assert_eq!(names(carol_cols, "table_name"), ["orders"]);

    let described = sf(&engine, "R_BOB", "DESC TABLE ORDERS").unwrap();
    let types = names(described, "type");
    assert!(types.contains(&"TIMESTAMP_NTZ".to_string()), "{types:?}");
    let hidden = db(&engine, "g-carol", "DESCRIBE TABLE main.hr.employees").unwrap_err();
    assert!(matches!(hidden, EngineError::NotAuthorized { .. }));
}

#[test]
fn writes_and_multi_statements_are_refused() {
    let engine = demo();
    let insert = sf(
        &engine,
        "R_BOB",
        "INSERT INTO ORDERS (ORDER_ID) VALUES (9999)",
    )
    .unwrap_err();
    assert!(
        matches!(&insert, EngineError::Unsupported(m) if m.contains("Insufficient privileges") && m.contains("ORDERS")),
        "{insert:?}"
    );
    let delete = db(&engine, "g-bob", "DELETE FROM main.sales.orders").unwrap_err();
    assert!(
        matches!(&delete, EngineError::Unsupported(m) if m.contains("INSUFFICIENT_PERMISSIONS")),
        "{delete:?}"
    );
    let drop = sf(&engine, "R_BOB", "DROP TABLE ORDERS").unwrap_err();
    assert!(matches!(drop, EngineError::Unsupported(_)));
    let two = sf(&engine, "R_BOB", "SELECT 1; SELECT 2").unwrap_err();
    assert!(
        matches!(&two, EngineError::Unsupported(m) if m.contains("statement count")),
        "{two:?}"
    );
    // Nothing changed.
    let count = sf(&engine, "R_BOB", "SELECT COUNT(*) FROM ORDERS").unwrap();
    assert_eq!(count.rows[0][0], EngineValue::Integer(8));
    let garbage = sf(&engine, "R_BOB", "SELEC oops").unwrap_err();
    assert!(matches!(garbage, EngineError::Syntax(_)));
}

#[test]
fn dialect_details_and_typed_values() {
    let engine = demo();
    let r = sf(
        &engine,
        "R_ALICE",
        "WITH eu AS (SELECT * FROM customers) SELECT current_role() AS \"who\", signup_date, is_active, name \
         FROM eu WHERE name ILIKE 'anna%'",
    )
    .unwrap();
    assert_eq!(r.rows.len(), 1);
    assert_eq!(r.columns[0].name, "who", "quoted aliases keep their case");
    assert_eq!(r.rows[0][0], EngineValue::Text("R_ALICE".into()));
    assert_eq!(r.columns[1].name, "SIGNUP_DATE");
    assert_eq!(r.columns[1].declared_type.as_deref(), Some("DATE"));
    assert_eq!(r.rows[0][1], EngineValue::Text("2022-03-14".into()));
    assert_eq!(r.columns[2].declared_type.as_deref(), Some("BOOLEAN"));
    assert_eq!(r.rows[0][2], EngineValue::Integer(1));

    let ts = db(
        &engine,
        "g-bob",
        "SELECT `updated_at`, order_date, amount::string AS a FROM `main`.sales.ORDERS WHERE order_id = 5",
    )
    .unwrap();
    assert_eq!(ts.columns[0].declared_type.as_deref(), Some("TIMESTAMP"));
    assert_eq!(
        ts.rows[0][0],
        EngineValue::Text("2024-01-09 11:15:00.500+00:00".into())
    );
    assert_eq!(ts.rows[0][1], EngineValue::Text("2024-01-09".into()));
    assert_eq!(ts.rows[0][2], EngineValue::Text("310.75".into()));
}

const BAD_BASE: &str = r#"
[[tables]]
platform = "snowflake"
name = "SALES.PUBLIC.ORDERS"
columns = [ { name = "ID", type = "NUMBER" }, { name = "REGION", type = "TEXT" }, { name = "EMAIL", type = "TEXT" } ]
rows = [ [1, "EU", "a@example.com"] ]
"#;

fn fixture_error(extra: &str, edit: impl Fn(&str) -> String) -> String {
    let text = edit(&format!("{BAD_BASE}{extra}"));
    match Fixture::from_toml_str(&text) {
        Err(e) => e.to_string(),
        Ok(f) => match Engine::new(&f) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("fixture should be rejected:\n{text}"),
        },
    }
}

#[test]
fn bad_fixtures_are_rejected_with_the_problem_named() {
    let same = |s: &str| s.to_string();
    let arity = fixture_error("", |s| {
        s.replace(r#"[1, "EU", "a@example.com"]"#, r#"[1, "EU"]"#)
    });
    assert!(
        arity.contains("SALES.PUBLIC.ORDERS row 1 has 2 values"),
        "{arity}"
    );

    let bad_value = fixture_error("", |s| s.replace("[1, ", r#"["one", "#));
    assert!(
        bad_value.contains("row 1 column ID") && bad_value.contains("integer"),
        "{bad_value}"
    );

    let bad_type = fixture_error("", |s| {
        s.replace(r#"type = "NUMBER""#, r#"type = "NUMBRE""#)
    });
    assert!(
        bad_type.contains("column ID") && bad_type.contains("NUMBRE"),
        "{bad_type}"
    );

    let grant =
        "[[users]]\nid = \"dave@example.com\"\ngrants = [ { table = \"SALES.PUBLIC.MISSING\" } ]\n";
    let missing = fixture_error(grant, same);
    assert!(
        missing.contains("dave@example.com") && missing.contains("SALES.PUBLIC.MISSING"),
        "{missing}"
    );

    let mask = "[[users]]\nid = \"dave@example.com\"\ngrants = [ { table = \"SALES.PUBLIC.ORDERS\", masked_columns = [\"PHONE\"] } ]\n";
    let bad_mask = fixture_error(mask, same);
    assert!(
        bad_mask.contains("PHONE") && bad_mask.contains("dave@example.com"),
        "{bad_mask}"
    );

    let filter = "[[users]]\nid = \"dave@example.com\"\ngrants = [ { table = \"SALES.PUBLIC.ORDERS\", row_filter = \"COUNTRY = 'DE'\" } ]\n";
    let bad_filter = fixture_error(filter, same);
    assert!(
        bad_filter.contains("dave@example.com")
            && bad_filter.contains("SALES.PUBLIC.ORDERS")
            && bad_filter.to_lowercase().contains("country"),
        "{bad_filter}"
    );

    let unknown_key = fixture_error("", |s| s.replace("platform =", "platfrom ="));
    assert!(unknown_key.contains("platfrom"), "{unknown_key}");
}

#[test]
fn a_generated_table_of_a_million_rows_loads_and_filters() {
    let mut fixture =
        Fixture::demo().with_generated_table(Platform::Snowflake, "BENCH.PUBLIC.EVENTS", 1_000_000);
    for user in &mut fixture.users {
        user.grants.push(GrantSpec {
            table: "BENCH.PUBLIC.EVENTS".into(),
            row_filter: (user.id == ALICE).then(|| "REGION = 'EU'".to_string()),
            masked_columns: vec!["CUSTOMER".into()],
        });
    }
    let engine = Engine::new(&fixture).unwrap();
    engine
        .bind_role(Platform::Snowflake, "R_BOB", BOB, later())
        .unwrap();
    engine
        .bind_role(Platform::Snowflake, "R_ALICE", ALICE, later())
        .unwrap();
    let sql = "SELECT COUNT(*), MAX(ID), MIN(CUSTOMER) FROM BENCH.PUBLIC.EVENTS";
    let bob = sf(&engine, "R_BOB", sql).unwrap();
    assert_eq!(bob.rows[0][0], EngineValue::Integer(1_000_000));
    assert_eq!(bob.rows[0][1], EngineValue::Integer(1_000_000));
    assert_eq!(bob.rows[0][2], EngineValue::Text("***".into()));
    let alice = sf(&engine, "R_ALICE", sql).unwrap();
    assert_eq!(alice.rows[0][0], EngineValue::Integer(333_334));
}

#[test]
fn fixtures_load_from_toml_and_json_files() {
    let dir = tempfile::tempdir().unwrap();
    let json_path = dir.path().join("demo.json");
    std::fs::write(&json_path, serde_json::to_string(&Fixture::demo()).unwrap()).unwrap();
    assert_eq!(Fixture::load(&json_path).unwrap(), Fixture::demo());

    let toml_path = dir.path().join("small.toml");
    std::fs::write(&toml_path, BAD_BASE).unwrap();
    let small = Fixture::load(&toml_path).unwrap();
    assert_eq!(small.tables.len(), 1);
    assert!(small.user_ids().is_empty());

    let missing = Fixture::load(&dir.path().join("nope.toml")).unwrap_err();
    assert!(missing.to_string().contains("nope.toml"), "{missing}");
}

#[test]
fn same_name_on_both_platforms_is_granted_per_platform() {
    let mut fixture = Fixture::demo()
        .with_generated_table(Platform::Snowflake, "BENCH.PUBLIC.BIG", 30)
        .with_generated_table(Platform::Databricks, "bench.public.big", 20);
    let alice = fixture.users.iter_mut().find(|u| u.id == ALICE).unwrap();
    alice.grants.push(GrantSpec {
        table: "BENCH.PUBLIC.BIG".into(),
        row_filter: Some("REGION = 'EU'".into()),
        masked_columns: vec![],
    });
    alice.grants.push(GrantSpec {
        table: "bench.public.big".into(),
        row_filter: None,
        masked_columns: vec!["customer".into()],
    });
    let engine = Engine::new(&fixture).expect("both tables load and both grants apply");
    engine
        .bind_role(Platform::Snowflake, "R_ALICE", ALICE, later())
        .unwrap();
    engine
        .bind_role(Platform::Databricks, "g-alice", ALICE, later())
        .unwrap();

    // Each grant applies to its own platform's table only.
    let snowflake = sf(
        &engine,
        "R_ALICE",
        "SELECT COUNT(*), MIN(CUSTOMER) FROM BENCH.PUBLIC.BIG",
    )
    .unwrap();
    assert_eq!(
        snowflake.rows[0][0],
        EngineValue::Integer(10),
        "EU rows only"
    );
    assert_eq!(text(&snowflake.rows[0][1]), "customer-00", "not masked");
    let databricks = db(
        &engine,
        "g-alice",
        "SELECT COUNT(*), MIN(customer) FROM bench.public.big",
    )
    .unwrap();
    assert_eq!(databricks.rows[0][0], EngineValue::Integer(20), "no filter");
    assert_eq!(text(&databricks.rows[0][1]), "***", "masked");

    // A grant that matches both only when ignoring case is refused, naming both.
    let mut ambiguous = fixture.clone();
    ambiguous.users[0].grants.push(GrantSpec {
        table: "Bench.Public.Big".into(),
        row_filter: None,
        masked_columns: vec![],
    });
    let err = ambiguous.validate().unwrap_err().to_string();
    assert!(
        err.contains("BENCH.PUBLIC.BIG on snowflake")
            && err.contains("bench.public.big on databricks"),
        "{err}"
    );
}
