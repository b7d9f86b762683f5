//! The security audit's bypasses (F2, F3, F8) and variations: every
//! construct where sqlparser's lexer and a platform's may disagree.
use super::*;

const SF: Platform = Platform::Snowflake;
const DB: Platform = Platform::Databricks;

fn verdict(read_only: bool, platform: Platform, sql: &str) -> Result<StatementKind, String> {
    SqlGuard::new(read_only, 64 * 1024)
        .check(platform, sql)
        .map_err(|e| e.to_string())
}

fn assert_refused(read_only: bool, platform: Platform, sql: &str, reason: &str) {
    match verdict(read_only, platform, sql) {
        Ok(kind) => {
            panic!("{sql:?} on {platform} (read_only={read_only}) was allowed as {kind:?}")
        }
        Err(e) => assert!(e.contains(reason), "{sql:?}: {e} (expected {reason:?})"),
    }
}

#[test]
fn snowflake_flow_operator_is_refused_everywhere_outside_strings() {
    for sql in [
        "SHOW TABLES ->> DROP TABLE SALES.PUBLIC.ORDERS",
        "SHOW TABLES ->> INSERT INTO SALES.PUBLIC.ORDERS SELECT * FROM SALES.PUBLIC.ORDERS",
        "DESC TABLE SALES.PUBLIC.ORDERS ->> DELETE FROM SALES.PUBLIC.ORDERS",
        "SELECT 1 ->> DELETE FROM SALES.PUBLIC.ORDERS",
        "SELECT a ->> DELETE FROM t",
        "SELECT 1->>SELECT 2",
        "SELECT 1 /* c */ ->> /* c */ DELETE FROM t",
        "SELECT 1 -- c\n->> DELETE FROM t",
        "SELECT 1\n\t->>\n\tDELETE FROM t",
        // sqlparser splits `<->>` and `=->>` as `<`/`=` then `->>`, as Snowflake would.
        "SELECT 1 <->> DELETE FROM t",
        "SELECT 1 =->> DELETE FROM t",
    ] {
        assert_refused(true, SF, sql, "flow operator");
        assert_refused(false, SF, sql, "flow operator");
    }
    // Inside a string or a quoted name it is text, not an operator.
    assert!(verdict(true, SF, "SELECT '->>' AS arrow, \"a->>b\" FROM t").is_ok());
    assert!(verdict(true, SF, "SELECT $$ ->> $$ AS arrow").is_ok());
}

#[test]
fn bare_carriage_returns_are_refused_in_every_position() {
    for p in [SF, DB] {
        for sql in [
            "WITH a AS (SELECT 1 AS x) --\rINSERT OVERWRITE TABLE main.default.t\nSELECT * FROM a",
            "SELECT 1 -- c\r; DROP TABLE t",
            "SELECT 1 --\r->> USE ROLE ACCOUNTADMIN",
            "SELECT 1 --\r; EXECUTE IMMEDIATE 'SET ROLE admin'",
            "SELECT 1 --\r, http_request('c','GET','/')",
            "SELECT 'a\rb'",
            "SELECT 1 /* \r */",
            "SELECT\r1",
            "SELECT 1\r",
            "SELECT 1\r\r\n",
        ] {
            assert_refused(true, p, sql, "carriage return");
            assert_refused(false, p, sql, "carriage return");
        }
        // CRLF line breaks are read the same way by every lexer.
        assert_eq!(
            verdict(true, p, "SELECT 1 -- c\r\nFROM t\r\n").unwrap(),
            StatementKind::Select
        );
    }
}

#[test]
fn backslash_continued_comments_are_refused() {
    for p in [SF, DB] {
        assert_refused(
            true,
            p,
            "SELECT 1 AS x -- note \\\n, 'a' FROM t",
            "end with a backslash",
        );
        assert_refused(true, p, "SELECT 1 --\\\r\nFROM t", "end with a backslash");
        // A backslash elsewhere in a comment is harmless.
        assert!(verdict(true, p, "SELECT 1 -- a \\ b\nFROM t").is_ok());
    }
}

#[test]
fn raw_strings_are_refused_on_databricks() {
    for sql in [
        "SELECT r'a' AS x",
        "SELECT R\"a\" AS x",
        "SELECT r'\\', 1 AS y'",
        "WITH a AS (SELECT r'\\' AS x) INSERT INTO t SELECT * FROM a --' AS x) SELECT * FROM a",
    ] {
        let e = verdict(true, DB, sql).expect_err(sql);
        assert!(
            e.contains("raw string") || e.contains("could not be parsed"),
            "{sql:?}: {e}"
        );
    }
    assert!(
        verdict(true, DB, "SELECT r'a' AS x")
            .unwrap_err()
            .contains("raw string")
    );
    assert!(verdict(true, DB, "SELECT r, 'a' FROM t").is_ok());
}

#[test]
fn tagged_dollar_quotes_are_refused_on_snowflake() {
    assert_refused(
        false,
        SF,
        "SELECT $a$ ->> USE ROLE ACCOUNTADMIN ->> SELECT $a$",
        "tagged dollar-quoted",
    );
    assert_refused(true, SF, "SELECT $x$ text $x$", "tagged dollar-quoted");
    assert_refused(true, DB, "SELECT $x$ text $x$", "dollar-quoted");
    assert!(verdict(true, SF, "SELECT $$ plain $$").is_ok());
}

#[test]
fn the_naive_scan_finds_role_switches_the_tokens_miss() {
    // Hidden in a string or comment by a lexer disagreement or not, the words are refused.
    for p in [SF, DB] {
        assert_refused(false, p, "SELECT 'x' -- use role accountadmin", "USE ROLE");
        assert_refused(
            false,
            p,
            "SELECT '; EXECUTE IMMEDIATE ''x'''",
            "cannot inspect",
        );
        assert_refused(
            false,
            p,
            "SELECT 1 /* set session authorization */",
            "SET SESSION",
        );
        assert_refused(false, p, "SELECT 'alter user me'", "ALTER USER");
        assert_refused(
            true,
            p,
            "SELECT 1 -- system$cancel_all_queries(1)",
            "SYSTEM$",
        );
        assert_refused(true, p, "SELECT 1 /* http_request ( */", "http_request()");
        assert_refused(true, p, "SELECT '`reflect`(' AS x", "reflect()");
    }
    // Words that only look alike pass.
    assert!(verdict(true, SF, "SELECT user_role, used FROM roles").is_ok());
    assert!(verdict(true, DB, "SELECT reflection FROM t").is_ok());
    assert!(verdict(false, SF, "SELECT 1 -- set the role column\nFROM t").is_ok());
}

#[test]
fn unparsed_show_and_describe_only_in_their_exact_shape() {
    for (p, sql) in [
        (DB, "DESCRIBE HISTORY main.sales.orders"),
        (DB, "DESCRIBE TABLE EXTENDED orders"),
        (SF, "SHOW GRANTS TO USER alice"),
        (
            SF,
            "SHOW TABLES LIKE 'ORD%' IN SCHEMA SALES.PUBLIC LIMIT 10",
        ),
        (SF, "DESC FUNCTION my_fn(NUMBER, VARCHAR)"),
        (SF, "SHOW USER PROGRAMMATIC ACCESS TOKENS"),
        // sqlparser has no grammar for these two: the exact-shape rule decides.
        (DB, "SHOW CREATE TABLE t AS SERDE"),
        (SF, "DESC TABLE SALES.PUBLIC.ORDERS TYPE = STAGE"),
    ] {
        let kind = verdict(true, p, sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        assert!(kind.is_read(), "{sql}");
    }
    for (p, sql) in [
        (SF, "SHOW TABLES DROP TABLE t"),
        (DB, "DESCRIBE HISTORY t DELETE FROM t"),
        (SF, "SHOW TABLES IN (SELECT 1)"),
        (DB, "DESCRIBE QUERY INSERT INTO t VALUES (1)"),
        (SF, "DESC FUNCTION f(NUMBER) (VARCHAR)"),
        (SF, "SHOW TABLES + 1"),
    ] {
        let e = verdict(true, p, sql).expect_err(sql);
        assert!(
            e.contains("could not be parsed") || e.contains("only read-only"),
            "{sql}: {e}"
        );
    }
}
