//! Unit tests of [`crate::sql_ident`]: quoting, resolution and validation on
//! both platforms, quote-in-name cases included.

use super::*;

#[test]
fn names_resolve_as_snowflake_resolves_identifiers() {
    assert_eq!(resolve("database", "sales").unwrap(), "SALES");
    assert_eq!(resolve("database", " Sales_2 ").unwrap(), "SALES_2");
    assert_eq!(resolve("schema", "\"Mixed Case\"").unwrap(), "Mixed Case");
    assert_eq!(resolve("schema", "\"lower\"").unwrap(), "lower");
    assert_eq!(resolve("warehouse", "\"a\"\"b\"").unwrap(), "a\"b");
    assert_eq!(resolve_opt("database", None).unwrap(), None);
}

#[test]
fn malformed_quoting_is_refused() {
    for bad in ["", "\"", "\"open", "\"\"", "\"a\"b\"", "a\"b"] {
        let err = resolve("database", bad).unwrap_err();
        assert_eq!(err.field, "database", "{bad:?}");
    }
    assert_eq!(
        resolve("schema", "\"open").unwrap_err().reason,
        "the opening double quote is not closed"
    );
    assert_eq!(
        resolve("schema", "\"a\"b\"").unwrap_err().reason,
        "a double quote inside quotes must be doubled"
    );
    assert_eq!(
        resolve("schema", "\"\"").unwrap_err().reason,
        "the quoted name is empty"
    );
}

#[test]
fn quoting_doubles_the_quote_character_per_platform() {
    // Snowflake "Identifier requirements": CREATE TABLE "quote""andunquote""" names quote"andunquote".
    assert_eq!(
        quote(Platform::Snowflake, "quote\"andunquote\""),
        "\"quote\"\"andunquote\"\"\""
    );
    assert_eq!(quote(Platform::Snowflake, "a`b"), "\"a`b\"");
    // Databricks "Identifiers": `a``b` names a`b.
    assert_eq!(quote(Platform::Databricks, "a`b"), "`a``b`");
    assert_eq!(quote(Platform::Databricks, "a\"b"), "`a\"b`");
    for platform in [Platform::Snowflake, Platform::Databricks] {
        for name in ["plain", "My Db", "a\"b", "a`b", "``", "\"\"", "it's", "x.y"] {
            assert_eq!(
                unquote(platform, &quote(platform, name)).as_deref(),
                Ok(name),
                "{platform} {name:?}"
            );
        }
    }
}

#[test]
fn unquoting_undoes_doubled_quotes_and_refuses_lone_ones() {
    assert_eq!(unquote(Platform::Databricks, "`a``b`").unwrap(), "a`b");
    assert_eq!(
        unquote(Platform::Databricks, "`my-catalog`").unwrap(),
        "my-catalog"
    );
    assert_eq!(unquote(Platform::Snowflake, "\"a\"\"b\"").unwrap(), "a\"b");
    // The other platform's quote is an ordinary character.
    assert_eq!(unquote(Platform::Databricks, "`a\"b`").unwrap(), "a\"b");
    assert_eq!(unquote(Platform::Snowflake, "\"a`b\"").unwrap(), "a`b");
    assert_eq!(
        unquote(Platform::Databricks, "`a`b`"),
        Err(Malformed::LoneQuote)
    );
    assert_eq!(
        unquote(Platform::Databricks, "`open"),
        Err(Malformed::NotClosed)
    );
    assert_eq!(
        unquote(Platform::Databricks, "plain"),
        Err(Malformed::NotClosed)
    );
    assert_eq!(unquote(Platform::Databricks, "``"), Err(Malformed::Empty));
    assert_eq!(
        unquote(Platform::Snowflake, "\"a\"b\""),
        Err(Malformed::LoneQuote)
    );
    assert_eq!(
        Malformed::LoneQuote.reason(Platform::Databricks),
        "a backtick inside backticks must be doubled"
    );
}

#[test]
fn bare_names_drop_quotes_and_keep_case() {
    assert_eq!(bare_name(Platform::Databricks, "`sales`"), "sales");
    assert_eq!(bare_name(Platform::Databricks, "`a``b`"), "a`b");
    assert_eq!(bare_name(Platform::Databricks, "Main"), "Main");
    assert_eq!(bare_name(Platform::Snowflake, "\"My Db\""), "My Db");
}

#[test]
fn table_names_are_validated() {
    assert_eq!(
        validate_table_name(Platform::Snowflake, "SALES.PUBLIC.ORDERS").unwrap(),
        "SALES.PUBLIC.ORDERS"
    );
    assert_eq!(
        validate_table_name(Platform::Snowflake, "\"My Db\".PUBLIC.T").unwrap(),
        "\"My Db\".PUBLIC.T"
    );
    assert!(validate_table_name(Platform::Snowflake, "T; DROP TABLE X").is_err());
    assert!(validate_table_name(Platform::Databricks, "a.b.c.d").is_err());
    assert!(validate_table_name(Platform::Databricks, "main.`odd name`.t").is_ok());
    assert!(validate_table_name(Platform::Databricks, "main.x'--.t").is_err());
    assert!(validate_table_name(Platform::Snowflake, "\"a'b\".S.T").is_err());
    // A dot inside quotes does not split the name.
    assert_eq!(
        validate_table_name(Platform::Databricks, "`my.cat`.s.t").unwrap(),
        "`my.cat`.s.t"
    );
}

#[test]
fn quote_characters_inside_names_are_refused_in_server_statements() {
    // Well-formed for the platform, but the server's own statements take no
    // name holding its quote character (security audit F6).
    for (platform, name) in [
        (Platform::Databricks, "`a``b`"),
        (Platform::Databricks, "`main\\`"),
        (Platform::Snowflake, "\"a\"\"b\""),
        (Platform::Snowflake, "a\"b"),
        (Platform::Databricks, "a`b"),
    ] {
        let err = validate_identifier(platform, name).unwrap_err();
        assert!(err.contains("is not a valid"), "{err}");
    }
    assert_eq!(
        validate_identifier(Platform::Databricks, "`a\"b`").unwrap(),
        "`a\"b`"
    );
}

#[test]
fn string_literals_double_quotes_and_escape_backslashes() {
    // A role or comment with a quote or a backslash must stay one literal: `'` doubled, `\` escaped.
    assert_eq!(string_literal("plain"), "'plain'");
    assert_eq!(string_literal("O'Brien"), "'O''Brien'");
    assert_eq!(string_literal(r"a\'; DROP"), r"'a\\''; DROP'");
    assert_eq!(string_literal(r"end\"), r"'end\\'");
}
