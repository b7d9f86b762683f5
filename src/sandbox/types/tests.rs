use super::decimal::{encode_decimal, normalise_decimal, normalise_decimal_exact};
use super::stored::{fast_iso_timestamp, parse_timestamp_text};
use super::*;

fn text(s: &str) -> EngineValue {
    EngineValue::Text(s.to_string())
}

fn sf(declared: &str, v: EngineValue) -> Option<String> {
    SnowflakeType::parse(declared)
        .unwrap_or_else(|| panic!("{declared} parses"))
        .encode(&v)
        .unwrap_or_else(|e| panic!("{declared}: {e}"))
}

fn dbx(declared: &str, v: EngineValue) -> Option<String> {
    DatabricksType::parse(declared)
        .unwrap_or_else(|| panic!("{declared} parses"))
        .encode(&v)
        .unwrap_or_else(|e| panic!("{declared}: {e}"))
}

#[test]
fn snowflake_fixed_keeps_exact_scale() {
    assert_eq!(
        sf("NUMBER", EngineValue::Integer(42)).as_deref(),
        Some("42")
    );
    assert_eq!(
        sf("NUMBER(10,2)", EngineValue::Real(10.5)).as_deref(),
        Some("10.50")
    );
    assert_eq!(
        sf("NUMBER(10,2)", EngineValue::Integer(7)).as_deref(),
        Some("7.00")
    );
    assert_eq!(sf("NUMBER(10,2)", text("0.125")).as_deref(), Some("0.13"));
    assert_eq!(sf("NUMBER(10,2)", text("-0.001")).as_deref(), Some("0.00"));
    assert_eq!(
        sf("NUMBER(12,3)", text("-99.9995")).as_deref(),
        Some("-100.000")
    );
    assert_eq!(
        sf("DECIMAL(38,0)", EngineValue::Real(2.0)).as_deref(),
        Some("2")
    );
    assert_eq!(sf("NUMBER(5,1)", text("1.5e2")).as_deref(), Some("150.0"));
    assert_eq!(sf("NUMBER(5,4)", text("15e-4")).as_deref(), Some("0.0015"));
    assert_eq!(sf("NUMBER", EngineValue::Null), None);
    assert!(
        SnowflakeType::parse("NUMBER(10,2)")
            .unwrap()
            .encode(&text("ten"))
            .is_err()
    );
}

#[test]
fn decimal_fast_and_exact_paths_agree() {
    for text in [
        "0", "-0", "7", "-7", "10.5", "-10.5", "0.125", "007.5", "-0.0", "123.456", "1e3",
        "-0.001", "99.995", ".5", "5.",
    ] {
        for scale in [0, 1, 2, 3, 5] {
            assert_eq!(
                normalise_decimal(text, scale),
                normalise_decimal_exact(text, scale),
                "{text} at scale {scale}"
            );
        }
    }
    assert_eq!(
        encode_decimal(&EngineValue::Integer(-3), 2).as_deref(),
        Some("-3.00")
    );
    assert_eq!(
        encode_decimal(&EngineValue::Integer(-3), 0).as_deref(),
        Some("-3")
    );
}

#[test]
fn snowflake_real_text_boolean() {
    assert_eq!(sf("FLOAT", EngineValue::Real(1.5)).as_deref(), Some("1.5"));
    assert_eq!(sf("FLOAT", EngineValue::Integer(3)).as_deref(), Some("3"));
    assert_eq!(
        sf("FLOAT", EngineValue::Real(f64::NAN)).as_deref(),
        Some("NaN")
    );
    assert_eq!(
        sf("DOUBLE", EngineValue::Real(f64::NEG_INFINITY)).as_deref(),
        Some("-inf")
    );
    assert_eq!(
        sf("TEXT", text("a@example.com")).as_deref(),
        Some("a@example.com")
    );
    assert_eq!(
        sf("VARCHAR(20)", EngineValue::Integer(5)).as_deref(),
        Some("5")
    );
    assert_eq!(
        sf("BOOLEAN", EngineValue::Integer(1)).as_deref(),
        Some("true")
    );
    assert_eq!(sf("BOOLEAN", text("FALSE")).as_deref(), Some("false"));
    assert!(
        SnowflakeType::parse("BOOLEAN")
            .unwrap()
            .encode(&EngineValue::Integer(2))
            .is_err()
    );
}

#[test]
fn snowflake_dates_and_times() {
    assert_eq!(sf("DATE", text("1970-01-01")).as_deref(), Some("0"));
    assert_eq!(sf("DATE", text("2024-01-05")).as_deref(), Some("19727"));
    assert_eq!(sf("DATE", text("1969-12-31")).as_deref(), Some("-1"));
    assert_eq!(
        sf("TIME", text("10:00:00")).as_deref(),
        Some("36000.000000000")
    );
    assert_eq!(sf("TIME(3)", text("00:00:01.5")).as_deref(), Some("1.500"));
    assert_eq!(
        sf("TIMESTAMP_NTZ", text("2024-01-05T10:00:00")).as_deref(),
        Some("1704448800.000000000")
    );
    assert_eq!(
        sf("TIMESTAMP_NTZ", text("2024-01-05 10:00:00.25")).as_deref(),
        Some("1704448800.250000000")
    );
    // NTZ keeps the wall clock of a value written with an offset.
    assert_eq!(
        sf("TIMESTAMP_NTZ", text("2024-01-05T10:00:00+02:00")).as_deref(),
        Some("1704448800.000000000")
    );
    // LTZ is the instant.
    assert_eq!(
        sf("TIMESTAMP_LTZ", text("2024-01-05T10:00:00+02:00")).as_deref(),
        Some("1704441600.000000000")
    );
    assert_eq!(
        sf("TIMESTAMP_LTZ", text("2024-01-05T10:00:00Z")).as_deref(),
        Some("1704448800.000000000")
    );
    assert_eq!(
        sf("TIMESTAMP_TZ", text("2024-01-05T10:00:00+02:00")).as_deref(),
        Some("1704441600.000000000 1560")
    );
    assert_eq!(
        sf("TIMESTAMP_TZ", text("2024-01-05T10:00:00-05:30")).as_deref(),
        Some("1704468600.000000000 1110")
    );
    assert_eq!(
        sf("TIMESTAMP_TZ", text("2024-01-05T10:00:00")).as_deref(),
        Some("1704448800.000000000 1440")
    );
    assert_eq!(
        sf("TIMESTAMP_NTZ(0)", text("1969-12-31T23:59:59.5")).as_deref(),
        Some("-1")
    );
    assert_eq!(
        sf("TIMESTAMP_NTZ(3)", text("1969-12-31T23:59:59.5")).as_deref(),
        Some("-0.500")
    );
    assert!(
        SnowflakeType::parse("DATE")
            .unwrap()
            .encode(&text("yesterday"))
            .is_err()
    );
}

#[test]
fn iso_timestamps_parse_fast_and_exactly() {
    let parsed = |s: &str| fast_iso_timestamp(s.as_bytes());
    let ts = parsed("2024-01-05 10:00:00.123456789-05:30").unwrap();
    assert_eq!(ts.wall.to_string(), "2024-01-05 10:00:00.123456789");
    assert_eq!(ts.offset_seconds, Some(-(5 * 3600 + 30 * 60)));
    assert_eq!(parsed("2024-01-05T10:00Z").unwrap().offset_seconds, Some(0));
    assert_eq!(
        parsed("2024-01-05T10:00:00+0200").unwrap().offset_seconds,
        Some(7200)
    );
    assert_eq!(
        parsed("2024-01-05T10:00:00+02").unwrap().offset_seconds,
        Some(7200)
    );
    assert_eq!(
        parsed("2024-01-05").unwrap().wall.to_string(),
        "2024-01-05 00:00:00"
    );
    for bad in [
        "2024-13-05",
        "2024-01-05T25:00:00",
        "2024-01-05T10:00:00.",
        "2024-01-05T10:00:00.1234567891",
        "2024-01-05T10:00:00+2",
        "2024-01-05X10:00",
        "24-01-05",
    ] {
        assert_eq!(parsed(bad), None, "{bad}");
    }
    // Shapes the fast path leaves to chrono still parse.
    assert!(parse_timestamp_text("2024-01-05T10:00:00.5+02:00").is_some());
}

#[test]
fn snowflake_semi_structured_and_binary() {
    assert_eq!(
        sf("VARIANT", text(r#"{"a":1}"#)).as_deref(),
        Some("{\n  \"a\": 1\n}")
    );
    assert_eq!(sf("VARIANT", text("plain")).as_deref(), Some("\"plain\""));
    assert_eq!(sf("VARIANT", EngineValue::Integer(3)).as_deref(), Some("3"));
    assert_eq!(
        sf("ARRAY", text("[1,2]")).as_deref(),
        Some("[\n  1,\n  2\n]")
    );
    assert_eq!(sf("OBJECT", text("{}")).as_deref(), Some("{}"));
    assert!(
        SnowflakeType::parse("OBJECT")
            .unwrap()
            .encode(&text("[1]"))
            .is_err()
    );
    assert_eq!(sf("BINARY", text("cafe01")).as_deref(), Some("CAFE01"));
    assert_eq!(
        sf("BINARY", EngineValue::Blob(vec![0xde, 0xad])).as_deref(),
        Some("DEAD")
    );
    assert!(
        SnowflakeType::parse("BINARY")
            .unwrap()
            .encode(&text("xyz"))
            .is_err()
    );
}

#[test]
fn snowflake_row_type_entries() {
    let fixed = SnowflakeType::parse("NUMBER(10,2)")
        .unwrap()
        .row_type("AMOUNT", true);
    assert_eq!(fixed["type"], "fixed");
    assert_eq!(fixed["precision"], 10);
    assert_eq!(fixed["scale"], 2);
    assert_eq!(fixed["nullable"], true);
    let text_t = SnowflakeType::parse("TEXT")
        .unwrap()
        .row_type("EMAIL", false);
    assert_eq!(text_t["type"], "text");
    assert_eq!(text_t["length"], 16_777_216);
    let ts = SnowflakeType::parse("TIMESTAMP_TZ")
        .unwrap()
        .row_type("AT", true);
    assert_eq!(ts["type"], "timestamp_tz");
    assert_eq!(ts["scale"], 9);
    assert_eq!(
        SnowflakeType::parse("timestamp").unwrap().family(),
        "timestamp_ntz"
    );
    assert_eq!(SnowflakeType::parse("INTEGER").unwrap().family(), "fixed");
    assert_eq!(SnowflakeType::parse("GEOGRAPHY"), None);
}

#[test]
fn undeclared_columns_are_inferred_from_values() {
    let columns = vec![
        EngineColumn {
            name: "N".into(),
            declared_type: None,
            inferred_type: None,
            nullable: true,
        },
        EngineColumn {
            name: "F".into(),
            declared_type: None,
            inferred_type: None,
            nullable: true,
        },
        EngineColumn {
            name: "S".into(),
            declared_type: None,
            inferred_type: None,
            nullable: true,
        },
    ];
    let rows = vec![
        vec![EngineValue::Null, EngineValue::Real(0.5), text("x")],
        vec![
            EngineValue::Integer(2),
            EngineValue::Real(1.0),
            EngineValue::Null,
        ],
    ];
    let sf = encode_snowflake(&columns, &rows).unwrap();
    assert_eq!(sf.row_type[0]["type"], "fixed");
    assert_eq!(sf.row_type[1]["type"], "real");
    assert_eq!(sf.row_type[2]["type"], "text");
    assert_eq!(sf.rows[1], vec![Some("2".into()), Some("1".into()), None]);
    let db = encode_databricks(&columns, &rows).unwrap();
    assert_eq!(db.columns[0]["type_name"], "LONG");
    assert_eq!(db.columns[0]["type_text"], "BIGINT");
    assert_eq!(db.columns[1]["type_name"], "DOUBLE");
    assert_eq!(db.columns[2]["type_name"], "STRING");
    assert_eq!(db.columns[2]["position"], 2);
}

#[test]
fn encode_errors_name_column_and_row() {
    let columns = vec![EngineColumn {
        name: "D".into(),
        declared_type: Some("DATE".into()),
        inferred_type: None,
        nullable: true,
    }];
    let rows = vec![vec![text("2024-01-01")], vec![text("not a date")]];
    let err = encode_snowflake(&columns, &rows).unwrap_err();
    assert_eq!(err.column, "D");
    assert_eq!(err.row, 2);
    assert!(
        err.to_string().contains("'not a date' is not a valid DATE"),
        "{err}"
    );
}

#[test]
fn databricks_type_names_and_texts() {
    let cases = [
        ("BIGINT", "LONG", "BIGINT"),
        ("INT", "INT", "INT"),
        ("decimal(10,2)", "DECIMAL", "DECIMAL(10,2)"),
        ("DOUBLE", "DOUBLE", "DOUBLE"),
        ("string", "STRING", "STRING"),
        ("BOOLEAN", "BOOLEAN", "BOOLEAN"),
        ("DATE", "DATE", "DATE"),
        ("TIMESTAMP", "TIMESTAMP", "TIMESTAMP"),
        ("BINARY", "BINARY", "BINARY"),
        ("variant", "VARIANT", "VARIANT"),
        ("array<string>", "ARRAY", "ARRAY<STRING>"),
        ("MAP<STRING,INT>", "MAP", "MAP<STRING, INT>"),
        (
            "STRUCT<city:string, zip:int>",
            "STRUCT",
            "STRUCT<city: STRING, zip: INT>",
        ),
    ];
    for (declared, name, text) in cases {
        let t = DatabricksType::parse(declared).unwrap_or_else(|| panic!("{declared}"));
        assert_eq!(t.type_name(), name, "{declared}");
        assert_eq!(t.type_text(), text, "{declared}");
    }
    let dec = DatabricksType::parse("DECIMAL(10,2)")
        .unwrap()
        .manifest_column("AMOUNT", 3);
    assert_eq!(dec["type_precision"], 10);
    assert_eq!(dec["type_scale"], 2);
    assert_eq!(dec["position"], 3);
    assert_eq!(DatabricksType::parse("GEOGRAPHY"), None);
}

#[test]
fn sql_literals_for_bound_values() {
    assert_eq!(sql_string_literal("O'Brien\\"), "'O''Brien\\\\'");
    for ok in ["1", "-12", "3.5", ".5", "1e-3", "+2E10"] {
        assert!(is_number_literal(ok), "{ok}");
    }
    for bad in ["", "-", ".", "1e", "1;DROP", "0x10", "1 2", "NaN"] {
        assert!(!is_number_literal(bad), "{bad}");
    }
}

#[test]
fn databricks_values_are_strings() {
    assert_eq!(dbx("BIGINT", EngineValue::Integer(9)).as_deref(), Some("9"));
    assert_eq!(dbx("INT", text("12")).as_deref(), Some("12"));
    assert!(
        DatabricksType::Int
            .encode(&EngineValue::Integer(1 << 40))
            .is_err()
    );
    assert_eq!(
        dbx("DECIMAL(10,2)", EngineValue::Real(10.5)).as_deref(),
        Some("10.50")
    );
    assert_eq!(
        dbx("DOUBLE", EngineValue::Real(0.25)).as_deref(),
        Some("0.25")
    );
    assert_eq!(
        dbx("DOUBLE", EngineValue::Real(f64::INFINITY)).as_deref(),
        Some("Infinity")
    );
    assert_eq!(dbx("STRING", text("EU")).as_deref(), Some("EU"));
    assert_eq!(
        dbx("BOOLEAN", EngineValue::Integer(0)).as_deref(),
        Some("false")
    );
    assert_eq!(
        dbx("DATE", text("2024-01-05")).as_deref(),
        Some("2024-01-05")
    );
    assert_eq!(
        dbx("TIMESTAMP", text("2024-01-05T10:00:00+02:00")).as_deref(),
        Some("2024-01-05T08:00:00.000Z")
    );
    assert_eq!(
        dbx("TIMESTAMP", text("2024-01-05 10:00:00.123456")).as_deref(),
        Some("2024-01-05T10:00:00.123456Z")
    );
    assert_eq!(
        dbx("TIMESTAMP_NTZ", text("2024-01-05T10:00:00")).as_deref(),
        Some("2024-01-05T10:00:00.000")
    );
    assert_eq!(dbx("BINARY", text("cafe")).as_deref(), Some("yv4="));
    assert_eq!(
        dbx("ARRAY<STRING>", text(r#"[ "a", "b" ]"#)).as_deref(),
        Some(r#"["a","b"]"#)
    );
    assert_eq!(
        dbx("MAP<STRING,INT>", text(r#"{"k": 1}"#)).as_deref(),
        Some(r#"{"k":1}"#)
    );
    assert!(
        DatabricksType::parse("ARRAY<INT>")
            .unwrap()
            .encode(&text("{}"))
            .is_err()
    );
    assert_eq!(dbx("STRING", EngineValue::Null), None);
}
