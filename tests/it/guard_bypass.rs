//! Rule: no write, role switch or second statement gets past the read-only SQL guard, and reads
//! keep working.
//!
//! Table-driven attempts to get a write, a role switch or a second statement
//! past the read-only SQL guard, plus reads that must keep working.

use immuta_mcp::guard::{GuardError, SqlGuard, StatementKind};
use immuta_mcp::result::Platform;

const SF: Platform = Platform::Snowflake;
const DB: Platform = Platform::Databricks;

enum Expect {
    /// Allowed, as this kind.
    Allowed(StatementKind),
    /// Refused, and the reason contains this text; a parse error only when
    /// the text is "could not be parsed".
    Refused(&'static str),
}
use Expect::{Allowed, Refused};

struct Case {
    platform: Platform,
    read_only: bool,
    sql: &'static str,
    expect: Expect,
}

const fn ro(platform: Platform, sql: &'static str, expect: Expect) -> Case {
    Case {
        platform,
        read_only: true,
        sql,
        expect,
    }
}

const fn rw(platform: Platform, sql: &'static str, expect: Expect) -> Case {
    Case {
        platform,
        read_only: false,
        sql,
        expect,
    }
}

fn cases() -> Vec<Case> {
    use StatementKind::*;
    vec![
        // Plain reads.
        ro(SF, "SELECT * FROM sales.orders LIMIT 10", Allowed(Select)),
        ro(
            DB,
            "select id from main.sales.orders where region = 'EU'",
            Allowed(Select),
        ),
        ro(
            SF,
            "WITH r AS (SELECT 1 AS a) SELECT a FROM r",
            Allowed(Select),
        ),
        ro(
            DB,
            "SELECT a FROM t UNION ALL SELECT b FROM u",
            Allowed(Select),
        ),
        ro(SF, "SHOW TABLES IN SCHEMA analytics.public", Allowed(Show)),
        ro(SF, "SHOW GRANTS TO USER alice", Allowed(Show)),
        ro(DB, "SHOW CATALOGS", Allowed(Show)),
        ro(SF, "DESCRIBE TABLE orders", Allowed(Describe)),
        ro(DB, "DESCRIBE TABLE orders", Allowed(Describe)),
        ro(DB, "DESCRIBE DETAIL orders", Allowed(Describe)),
        ro(SF, "EXPLAIN SELECT * FROM orders", Allowed(Explain)),
        ro(SF, "sElEcT 1;", Allowed(Select)),
        ro(SF, "SELECT 1; -- trailing comment\n;", Allowed(Select)),
        ro(
            SF,
            "SELECT * FROM TABLE(RESULT_SCAN(LAST_QUERY_ID()))",
            Allowed(Select),
        ),
        ro(SF, "SELECT 'DROP TABLE t' AS text", Allowed(Select)),
        // Role-switch words are refused even inside a string: a naive scan of the raw text
        // must agree with the tokenizer, so a lexer disagreement cannot hide them.
        ro(
            SF,
            "SELECT 'DROP TABLE t; USE ROLE x' AS text",
            Refused("USE ROLE"),
        ),
        ro(SF, "SELECT $$ ; DROP TABLE t; $$ AS s", Allowed(Select)),
        // Writes by name and by case trick.
        ro(SF, "INSERT INTO t VALUES (1)", Refused("this is an INSERT")),
        ro(
            SF,
            "insert into t select * from u",
            Refused("this is an INSERT"),
        ),
        ro(DB, "UPDATE t SET a = 1", Refused("this is an UPDATE")),
        ro(DB, "DeLeTe FROM t", Refused("this is a DELETE")),
        ro(
            SF,
            "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE",
            Refused("this is a MERGE"),
        ),
        ro(
            DB,
            "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN UPDATE SET t.a = s.a",
            Refused("MERGE"),
        ),
        ro(
            SF,
            "CREATE TABLE x AS SELECT * FROM t",
            Refused("CREATE TABLE ... AS SELECT"),
        ),
        ro(
            DB,
            "CREATE OR REPLACE VIEW v AS SELECT 1",
            Refused("CREATE VIEW"),
        ),
        ro(SF, "DROP TABLE t", Refused("DROP TABLE")),
        ro(DB, "TRUNCATE TABLE t", Refused("TRUNCATE")),
        ro(SF, "GRANT SELECT ON TABLE t TO ROLE r", Refused("GRANT")),
        ro(SF, "CALL cleanup_proc()", Refused("this is a CALL")),
        ro(SF, "COPY INTO t FROM @stage", Refused("COPY INTO")),
        ro(SF, "COPY INTO @stage FROM t", Refused("COPY INTO")),
        ro(
            SF,
            "PUT file:///tmp/data.csv @~/staged",
            Refused("this is a PUT"),
        ),
        ro(SF, "GET @~/staged file:///tmp/", Refused("this is a GET")),
        ro(SF, "REMOVE @~/staged", Refused("REMOVE")),
        ro(SF, "SET x = 1", Refused("this is a SET")),
        ro(
            SF,
            "ALTER SESSION SET QUERY_TAG = 'x'",
            Refused("ALTER SESSION"),
        ),
        ro(SF, "BEGIN", Refused("only read-only statements")),
        ro(SF, "USE DATABASE other", Refused("this is a USE")),
        // Writes hidden inside reads.
        ro(
            SF,
            "SELECT * INTO backup FROM t",
            Refused("SELECT ... INTO"),
        ),
        ro(
            DB,
            "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d",
            Refused("DELETE"),
        ),
        ro(
            SF,
            "EXPLAIN ANALYZE DELETE FROM t",
            Refused("EXPLAIN of DELETE"),
        ),
        ro(
            DB,
            "EXPLAIN INSERT INTO t VALUES (1)",
            Refused("EXPLAIN of INSERT"),
        ),
        ro(SF, "SELECT * FROM t FOR UPDATE", Refused("FOR UPDATE")),
        // Side-effecting functions.
        ro(
            SF,
            "SELECT SYSTEM$CANCEL_ALL_QUERIES(1)",
            Refused("SYSTEM$"),
        ),
        ro(SF, "select system$abort_session(42)", Refused("SYSTEM$")),
        ro(
            SF,
            "SELECT * FROM t WHERE x = SYSTEM$PIPE_FORCE_RESUME('p')",
            Refused("SYSTEM$"),
        ),
        ro(
            SF,
            "SELECT IDENTIFIER('SYSTEM$CANCEL_QUERY')('01a')",
            Refused("SYSTEM$"),
        ),
        ro(
            DB,
            "SELECT java_method('java.lang.System', 'exit', 0)",
            Refused("java_method()"),
        ),
        ro(
            DB,
            "SELECT http_request(conn => 'c', method => 'POST', path => '/x')",
            Refused("http_request()"),
        ),
        // Dynamic SQL and role or user switches.
        ro(
            SF,
            "EXECUTE IMMEDIATE 'DROP TABLE t'",
            Refused("cannot inspect"),
        ),
        ro(
            SF,
            "execute immediate $$ select 1 $$",
            Refused("cannot inspect"),
        ),
        ro(
            SF,
            "USE ROLE ACCOUNTADMIN",
            Refused("USE ROLE is never allowed"),
        ),
        ro(SF, "use role \"ACCOUNTADMIN\"", Refused("USE ROLE")),
        ro(
            SF,
            "USE SECONDARY ROLES ALL",
            Refused("USE SECONDARY ROLES"),
        ),
        ro(DB, "SET ROLE admin", Refused("SET ROLE")),
        ro(DB, "SET SESSION AUTHORIZATION bob", Refused("SET SESSION")),
        rw(SF, "USE ROLE SYSADMIN", Refused("never allowed")),
        rw(SF, "USE /* sneaky */ ROLE SYSADMIN", Refused("USE ROLE")),
        rw(
            SF,
            "USE\n--x\nSECONDARY ROLES ALL",
            Refused("USE SECONDARY ROLES"),
        ),
        rw(
            SF,
            "ALTER USER me SET DEFAULT_SECONDARY_ROLES = ('ALL')",
            Refused("ALTER USER"),
        ),
        rw(
            SF,
            "EXECUTE IMMEDIATE 'USE ROLE SYSADMIN'",
            Refused("cannot inspect"),
        ),
        rw(
            SF,
            "BEGIN USE ROLE SYSADMIN; SELECT 1; END",
            Refused("USE ROLE"),
        ),
        // More than one statement.
        ro(
            SF,
            "SELECT 1; DROP TABLE t",
            Refused("only one statement per call"),
        ),
        ro(
            DB,
            "COMMIT; DROP TABLE t",
            Refused("only one statement per call"),
        ),
        ro(SF, "SELECT 1;\nSELECT 2", Refused("2 statements")),
        rw(
            DB,
            "INSERT INTO t VALUES (1); DELETE FROM t",
            Refused("only one statement"),
        ),
        rw(SF, "BEGIN SELECT 1; END", Refused("only one statement")),
        // Comment and quoting tricks.
        ro(SF, "SEL/**/ECT 1", Refused("could not be parsed")),
        ro(SF, "-- harmless\nDROP TABLE t", Refused("DROP TABLE")),
        ro(SF, "/* SELECT */ DELETE FROM t", Refused("DELETE")),
        ro(
            SF,
            "SELECT 1 /* /* */ ; DROP TABLE t; /* */",
            Refused("nested block comments"),
        ),
        ro(
            DB,
            "SELECT 1 /* /* */ ; DROP TABLE t; /* */ */",
            Refused("nested block comments"),
        ),
        ro(SF, "SELECT 1 # ; DROP TABLE t", Refused("`#` comments")),
        ro(DB, "SELECT $$a; DROP TABLE t; $$", Refused("dollar-quoted")),
        ro(SF, "SELECT 'unterminated", Refused("could not be parsed")),
        // Unicode tricks.
        ro(SF, "ＤＲＯＰ TABLE t", Refused("outside a string literal")),
        ro(SF, "SELECT 1;\u{200B} DROP TABLE t", Refused("U+200B")),
        ro(DB, "SELECT 1 \u{202E}; ELBAT PORD", Refused("U+202E")),
        ro(SF, "SELECT\u{00A0}1", Refused("U+00A0")),
        ro(SF, "\u{FEFF}SELECT 1", Refused("U+FEFF")),
        ro(SF, "SELECT 1\u{0000}", Refused("U+0000")),
        ro(SF, "SEL\u{00AD}ECT 1", Refused("U+00AD")),
        // Empty and malformed.
        ro(SF, "", Refused("empty")),
        ro(DB, " ;; -- nothing\n", Refused("empty")),
        ro(SF, "SELECT FROM WHERE", Refused("could not be parsed")),
        // Write mode lets single non-role statements through.
        rw(
            SF,
            "INSERT INTO t VALUES (1)",
            Allowed(Other("INSERT".into())),
        ),
        rw(
            DB,
            "CREATE TABLE x AS SELECT 1",
            Allowed(Other("CREATE TABLE ... AS SELECT".into())),
        ),
        rw(SF, "SELECT * INTO backup FROM t", Allowed(Select)),
    ]
    .into_iter()
    .chain(lexer_disagreement_cases())
    .collect()
}

/// The security audit's F2, F3 and F8 bypasses and variations of them: constructs that
/// sqlparser's lexer and the platform's read differently.
fn lexer_disagreement_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    // F2: Snowflake's flow operator chains statements; spacing and comments around it.
    for sql in [
        "SHOW TABLES ->> DROP TABLE SALES.PUBLIC.ORDERS",
        "SHOW TABLES ->> INSERT INTO SALES.PUBLIC.ORDERS SELECT * FROM SALES.PUBLIC.ORDERS",
        "DESC TABLE SALES.PUBLIC.ORDERS ->> DELETE FROM SALES.PUBLIC.ORDERS",
        "SELECT 1 ->> DELETE FROM SALES.PUBLIC.ORDERS",
        "SELECT a ->> DELETE FROM t",
        "select 1->>delete from t",
        "SELECT 1 /* x */->>/* y */ DELETE FROM t",
        "SELECT 1 -- x\n ->> DELETE FROM t",
        "SELECT 1\n->>\nCOPY INTO 's3://bucket/x' FROM t",
        "SHOW TABLES ->> ALTER WAREHOUSE w SET WAREHOUSE_SIZE = 'X6LARGE'",
    ] {
        cases.push(ro(SF, sql, Refused("flow operator")));
        cases.push(rw(SF, sql, Refused("flow operator")));
    }
    // F3/F8: a bare CR ends a `--` comment in Spark, not in sqlparser; every position.
    for sql in [
        "WITH a AS (SELECT 1 AS x) --\rINSERT OVERWRITE TABLE main.default.t\nSELECT * FROM a",
        "WITH a AS (SELECT 1 AS x) --\rINSERT INTO main.sales.orders\nSELECT * FROM a",
        "SELECT 1 -- c\r; DROP TABLE t",
        "SELECT 1 --\r->> USE ROLE ACCOUNTADMIN",
        "SELECT 1 --\r->> EXECUTE IMMEDIATE 'USE ROLE ACCOUNTADMIN'",
        "SELECT 1 --\r; EXECUTE IMMEDIATE 'SET ROLE admin'",
        "SELECT 1 --\r, http_request('c','GET','/')",
        "SELECT 1 --\r, SYSTEM$CANCEL_ALL_QUERIES(1)",
        "SELECT '\r' AS cr",
        "SELECT 1 /*\r*/ FROM t",
        "SELECT \"a\rb\" FROM t",
        "SELECT\r1",
        "\rSELECT 1",
        "SELECT 1\r",
    ] {
        for p in [SF, DB] {
            cases.push(ro(p, sql, Refused("carriage return")));
            cases.push(rw(p, sql, Refused("carriage return")));
        }
    }
    // Spark continues a `--` comment after a trailing backslash.
    for p in [SF, DB] {
        cases.push(ro(
            p,
            "SELECT 1 AS x -- \\\nFROM t",
            Refused("end with a backslash"),
        ));
    }
    // F8: tagged dollar quotes are PostgreSQL, not Snowflake.
    cases.push(rw(
        SF,
        "SELECT $a$ ->> USE ROLE ACCOUNTADMIN ->> SELECT $a$",
        Refused("tagged dollar-quoted"),
    ));
    cases.push(ro(
        SF,
        "SELECT $a$ x $a$, SYSTEM$CANCEL_ALL_QUERIES(1)",
        Refused("tagged dollar-quoted"),
    ));
    // Words hidden in strings or comments are still found by the naive scan.
    for p in [SF, DB] {
        cases.push(rw(
            p,
            "SELECT 1 -- use role accountadmin",
            Refused("USE ROLE"),
        ));
        cases.push(rw(
            p,
            "SELECT 'execute immediate' AS x",
            Refused("cannot inspect"),
        ));
        cases.push(ro(
            p,
            "SELECT 1 /* http_request( */",
            Refused("http_request()"),
        ));
    }
    // CRLF is read alike everywhere, and a SHOW the parser lacks passes in its exact shape.
    cases.push(ro(
        SF,
        "SELECT 1 -- c\r\nFROM t",
        Allowed(StatementKind::Select),
    ));
    cases.push(ro(
        DB,
        "SELECT 1 -- c\r\nFROM t",
        Allowed(StatementKind::Select),
    ));
    cases.push(ro(
        SF,
        "SHOW TABLES LIKE 'ORD%' IN SCHEMA SALES.PUBLIC",
        Allowed(StatementKind::Show),
    ));
    cases.push(ro(
        DB,
        "DESCRIBE HISTORY main.sales.orders",
        Allowed(StatementKind::Describe),
    ));
    cases.push(ro(
        SF,
        "SHOW TABLES DROP TABLE t",
        Refused("could not be parsed"),
    ));
    cases
}

#[test]
fn every_bypass_case_gets_the_expected_verdict() {
    let cases = cases();
    assert!(cases.len() >= 150, "only {} cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let guard = SqlGuard::new(case.read_only, 64 * 1024);
        let verdict = guard.check(case.platform, case.sql);
        let ok = match (&case.expect, &verdict) {
            (Allowed(kind), Ok(got)) => kind == got,
            // A parse failure echoes the text it stopped at (`found: DELETE`),
            // so a refusal that should be semantic must not be a parse error.
            (Refused(reason), Err(e)) => {
                e.to_string().contains(reason)
                    && (matches!(e, GuardError::Parse { .. })
                        == reason.contains("could not be parsed"))
            }
            _ => false,
        };
        if !ok {
            let expected = match &case.expect {
                Allowed(k) => format!("allowed as {k:?}"),
                Refused(r) => format!("refused mentioning {r:?}"),
            };
            failures.push(format!(
                "{} read_only={} {:?}: expected {expected}, got {verdict:?}",
                case.platform, case.read_only, case.sql
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn oversized_sql_is_refused_before_parsing() {
    let guard = SqlGuard::new(true, 32);
    let sql = format!("SELECT {} FROM t", "a, ".repeat(20));
    let err = guard.check(Platform::Snowflake, &sql).unwrap_err();
    assert!(err.to_string().contains("limit of 32 bytes"), "{err}");
}

#[test]
fn deeply_nested_sql_is_refused_not_crashing() {
    let guard = SqlGuard::new(true, 1 << 20);
    let sql = format!("SELECT {}1{}", "(".repeat(5000), ")".repeat(5000));
    let err = guard.check(Platform::Databricks, &sql).unwrap_err();
    assert!(err.to_string().contains("could not be parsed"), "{err}");
}
