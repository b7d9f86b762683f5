//! Unit tests of the SQL guard as a whole: reads pass, writes, role switches,
//! side-effect functions and malformed SQL are refused with a clear message.

use super::*;

const SF: Platform = Platform::Snowflake;
const DB: Platform = Platform::Databricks;

fn ro() -> SqlGuard {
    SqlGuard::new(true, 10_000)
}
fn rw() -> SqlGuard {
    SqlGuard::new(false, 10_000)
}
fn refused(guard: &SqlGuard, platform: Platform, sql: &str) -> String {
    match guard.check(platform, sql) {
        Ok(kind) => panic!("{sql:?} on {platform} was allowed as {kind:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn reads_pass_on_both_platforms() {
    for p in [SF, DB] {
        assert_eq!(ro().check(p, "SELECT 1").unwrap(), StatementKind::Select);
        assert_eq!(
            ro().check(p, "with x as (select a from t) select * from x;")
                .unwrap(),
            StatementKind::Select
        );
        assert_eq!(ro().check(p, "SHOW SCHEMAS").unwrap(), StatementKind::Show);
        assert_eq!(ro().check(p, "DESC t").unwrap(), StatementKind::Describe);
        assert_eq!(
            ro().check(p, "EXPLAIN SELECT * FROM t").unwrap(),
            StatementKind::Explain
        );
        assert_eq!(
            ro().check(p, "SELECT 1 ;  -- done\n ; /* trailing */ ")
                .unwrap(),
            StatementKind::Select
        );
    }
}

#[test]
fn writes_are_named_in_the_refusal() {
    let msg = refused(&ro(), SF, "INSERT INTO t VALUES (1)");
    assert!(
        msg.contains("only read-only statements are allowed"),
        "{msg}"
    );
    assert!(msg.contains("this is an INSERT"), "{msg}");
    assert!(refused(&ro(), DB, "DROP TABLE t").contains("DROP TABLE"));
    assert!(
        refused(&ro(), SF, "CREATE TABLE x AS SELECT 1").contains("CREATE TABLE ... AS SELECT")
    );
}

#[test]
fn write_mode_allows_single_writes_but_not_role_switches() {
    assert_eq!(
        rw().check(SF, "INSERT INTO t VALUES (1)").unwrap(),
        StatementKind::Other("INSERT".into())
    );
    assert!(refused(&rw(), SF, "USE ROLE ACCOUNTADMIN").contains("USE ROLE is never allowed"));
    assert!(refused(&rw(), SF, "use secondary roles all").contains("USE SECONDARY ROLES"));
    assert!(refused(&rw(), DB, "SET ROLE admin").contains("SET ROLE"));
    assert!(refused(&rw(), SF, "ALTER USER me SET DEFAULT_ROLE = sysadmin").contains("ALTER USER"));
    assert!(refused(&rw(), SF, "EXECUTE IMMEDIATE 'USE ROLE x'").contains("cannot inspect"));
    assert!(
        refused(&rw(), SF, "INSERT INTO t VALUES (1); DELETE FROM t").contains("one statement")
    );
}

#[test]
fn multiple_statements_are_refused() {
    let msg = refused(&ro(), SF, "SELECT 1; DROP TABLE t");
    assert!(msg.contains("only one statement per call"), "{msg}");
    assert!(msg.contains("2 statements"), "{msg}");
    assert!(refused(&ro(), DB, "COMMIT; DROP TABLE t").contains("one statement"));
}

#[test]
fn empty_and_oversized_sql() {
    assert_eq!(ro().check(SF, "  \n"), Err(GuardError::Empty));
    assert_eq!(ro().check(SF, "-- just a comment"), Err(GuardError::Empty));
    assert_eq!(ro().check(SF, " ; ;"), Err(GuardError::Empty));
    let guard = SqlGuard::new(true, 10);
    assert!(refused(&guard, SF, "SELECT 1234567890").contains("limit of 10 bytes"));
}

#[test]
fn invisible_and_lookalike_characters() {
    assert!(refused(&ro(), SF, "SELECT\u{200B} 1").contains("U+200B"));
    assert!(refused(&ro(), SF, "SELECT 'a\u{202E}b'").contains("U+202E"));
    let msg = refused(&ro(), SF, "ＳＥＬＥＣＴ 1");
    assert!(msg.contains("U+FF33"), "{msg}");
    assert!(msg.contains("outside a string literal"), "{msg}");
    // Non-ASCII text inside literals and quoted identifiers is fine.
    assert!(ro().check(SF, "SELECT 'Zoë ✓' AS \"naïve\"").is_ok());
    assert!(
        ro().check(DB, "SELECT `größe` FROM t WHERE c = 'ü'")
            .is_ok()
    );
}

#[test]
fn ambiguous_comments_and_strings() {
    assert!(
        refused(&ro(), SF, "SELECT 1 /* /* */ ; DROP TABLE t; /* */")
            .contains("nested block comments")
    );
    assert!(refused(&ro(), SF, "SELECT 1 # comment").contains("`#` comments"));
    assert!(refused(&ro(), DB, "SELECT $$a$$").contains("dollar-quoted"));
    assert!(ro().check(SF, "SELECT $$a;b$$").is_ok());
    assert!(ro().check(SF, "SELECT 'a\\'; DROP TABLE t; --'").is_ok());
}

#[test]
fn hidden_writes_inside_reads() {
    assert!(refused(&ro(), SF, "SELECT * INTO t2 FROM t").contains("SELECT ... INTO"));
    assert!(
        refused(
            &ro(),
            SF,
            "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d"
        )
        .contains("this is a DELETE")
    );
    assert!(refused(&ro(), DB, "EXPLAIN ANALYZE DELETE FROM t").contains("EXPLAIN of DELETE"));
    assert!(rw().check(SF, "SELECT * INTO t2 FROM t").is_ok());
}

#[test]
fn side_effect_functions() {
    let msg = refused(&ro(), SF, "SELECT SYSTEM$CANCEL_ALL_QUERIES(1)");
    assert!(msg.contains("SYSTEM$"), "{msg}");
    assert!(refused(&ro(), SF, "select \"SYSTEM$ABORT_SESSION\"(1)").contains("SYSTEM$"));
    assert!(
        refused(&ro(), SF, "SELECT IDENTIFIER('system$cancel_query')('x')").contains("SYSTEM$")
    );
    assert!(
        refused(
            &ro(),
            DB,
            "SELECT reflect('java.lang.Runtime', 'getRuntime')"
        )
        .contains("reflect()")
    );
    assert!(
        ro().check(SF, "SELECT * FROM TABLE(RESULT_SCAN(LAST_QUERY_ID()))")
            .is_ok()
    );
    assert!(
        rw().check(SF, "SELECT SYSTEM$CANCEL_ALL_QUERIES(1)")
            .is_ok()
    );
}

#[test]
fn unparseable_sql_fails_closed() {
    let msg = refused(&ro(), SF, "SEL/**/ECT 1");
    assert!(
        msg.contains("could not be parsed as snowflake SQL"),
        "{msg}"
    );
    assert!(refused(&rw(), SF, "SELECT FROM WHERE").contains("could not be parsed"));
    assert!(refused(&ro(), SF, "PUT file:///tmp/x @s").contains("this is a PUT"));
    // SHOW/DESCRIBE forms the parser lacks still pass.
    assert_eq!(
        ro().check(DB, "DESCRIBE TABLE t").unwrap(),
        StatementKind::Describe
    );
    assert_eq!(
        ro().check(DB, "DESCRIBE HISTORY t").unwrap(),
        StatementKind::Describe
    );
}

// Tests added for surviving mutants (scripts/mutants.sh).

#[test]
fn sql_of_exactly_the_limit_passes_one_byte_more_is_refused() {
    assert_eq!(
        SqlGuard::new(true, 8).check(SF, "SELECT 1"),
        Ok(StatementKind::Select)
    );
    assert_eq!(
        SqlGuard::new(true, 8).check(SF, "SELECT 12"),
        Err(GuardError::TooLong { len: 9, max: 8 })
    );
}

#[test]
fn only_writes_are_not_reads_and_the_mode_is_reported() {
    for p in [SF, DB] {
        for sql in ["SELECT 1", "SHOW SCHEMAS", "DESC t", "EXPLAIN SELECT 1"] {
            assert!(ro().check(p, sql).unwrap().is_read(), "{sql} on {p}");
        }
        let write = rw().check(p, "INSERT INTO t VALUES (1)").unwrap();
        assert!(!write.is_read(), "{write:?} on {p}");
    }
    assert!(ro().read_only());
    assert!(!rw().read_only());
}

#[test]
fn non_ascii_text_in_comments_is_fine_but_not_next_to_them() {
    for p in [SF, DB] {
        for sql in [
            "SELECT 1 -- café ✓\nFROM t",
            "SELECT /* größe */ 1",
            "SELECT 1 /* ü */",
        ] {
            assert_eq!(
                ro().check(p, sql),
                Ok(StatementKind::Select),
                "{sql} on {p}"
            );
        }
        let msg = refused(&ro(), p, "SELECT /* ü */ ü FROM t");
        assert!(
            msg.contains("U+00FC") && msg.contains("character 16"),
            "{msg}"
        );
        // Positions are tracked across lines: literals on later lines are still literals.
        assert_eq!(
            ro().check(p, "SELECT 'a',\n  'é',\n\n 'ü' AS x\nFROM t -- ✓"),
            Ok(StatementKind::Select)
        );
        let msg = refused(&ro(), p, "SELECT 'é',\nü FROM t");
        assert!(
            msg.contains("U+00FC") && msg.contains("character 13"),
            "{msg}"
        );
    }
}

#[test]
fn invisible_characters_are_reported_at_their_position() {
    let msg = refused(&ro(), SF, "SELECT 1\u{200B}");
    assert!(msg.contains("U+200B at character 9"), "{msg}");
}

#[test]
fn every_role_switch_is_found_by_the_naive_scan_inside_strings_and_comments() {
    for p in [SF, DB] {
        for (sql, what) in [
            (
                "SELECT 'use secondary roles all' AS x",
                "USE SECONDARY ROLES",
            ),
            ("SELECT 1 -- set role admin", "SET ROLE"),
            (
                "SELECT 1 /* set session_authorization bob */",
                "SET SESSION AUTHORIZATION",
            ),
            ("SELECT 'alter user me set x = 1' AS x", "ALTER USER"),
        ] {
            let msg = refused(&rw(), p, sql);
            assert!(
                msg.contains(what) && msg.contains("never allowed"),
                "{sql}: {msg}"
            );
        }
    }
}

#[test]
fn an_unparsed_show_or_describe_admits_create_only_right_after_show() {
    for (p, sql) in [
        (SF, "SHOW TABLES CREATE TABLE t"),
        (DB, "DESCRIBE HISTORY t CREATE TABLE u"),
    ] {
        let msg = refused(&ro(), p, sql);
        assert!(
            msg.contains("could not be parsed") || msg.contains("only read-only"),
            "{sql}: {msg}"
        );
    }
}

#[test]
fn the_token_scan_names_dynamic_sql_the_naive_scan_and_parser_cannot_see() {
    // A comment splits the words for the naive scan; the tokens still pair them.
    for sql in [
        "EXECUTE /* c */ IMMEDIATE 'SELECT 1'",
        "SELECT 1; EXECUTE /* c */ IMMEDIATE 'x'",
        "SELECT 1; SELECT 2; ALTER /* c */ USER me SET x = 1",
    ] {
        let msg = refused(&rw(), SF, sql);
        assert!(msg.contains("never allowed"), "{sql}: {msg}");
    }
    // ALTER of anything but a user is an ordinary write.
    assert_eq!(
        rw().check(SF, "ALTER TABLE t ADD COLUMN c INT"),
        Ok(StatementKind::Other("ALTER TABLE".into()))
    );
}

#[test]
fn a_quoted_keyword_is_a_name_not_a_show_or_describe() {
    for p in [SF, DB] {
        for sql in ["\"SHOW\" TABLES", "\"DESC\" t"] {
            let msg = refused(&ro(), p, sql);
            assert!(msg.contains("could not be parsed"), "{sql}: {msg}");
        }
    }
}

#[test]
fn words_at_the_very_end_of_the_text_are_scanned_too() {
    for p in [SF, DB] {
        let msg = refused(&rw(), p, "SELECT 1 -- use role");
        assert!(msg.contains("USE ROLE"), "{msg}");
        let msg = refused(&ro(), p, "SELECT 1 -- system$cancel_all_queries");
        assert!(msg.contains("SYSTEM$"), "{msg}");
    }
}

#[test]
fn set_session_or_local_alone_is_not_a_role_switch() {
    for p in [SF, DB] {
        if let Err(e) = rw().check(p, "SET LOCAL x = 1") {
            assert!(!matches!(e, GuardError::RoleSwitch { .. }), "{e}");
        }
    }
}

#[test]
fn commas_and_parentheses_only_inside_the_one_list_of_an_unparsed_show() {
    for (p, sql) in [
        (DB, "DESCRIBE HISTORY a, b"),
        (SF, "DESC FUNCTION f)"),
        (SF, "DESC FUNCTION f(NUMBER))"),
    ] {
        let msg = refused(&ro(), p, sql);
        assert!(msg.contains("could not be parsed"), "{sql}: {msg}");
    }
    assert_eq!(
        ro().check(SF, "DESC FUNCTION f(NUMBER, VARCHAR)"),
        Ok(StatementKind::Describe)
    );
}

#[test]
fn the_flow_operator_rule_is_snowflakes_only() {
    let msg = refused(&ro(), SF, "SELECT a ->> 'b' FROM t");
    assert!(msg.contains("flow operator"), "{msg}");
    match ro().check(DB, "SELECT a ->> 'b' FROM t") {
        Ok(kind) => assert_eq!(kind, StatementKind::Select),
        Err(e) => assert!(!e.to_string().contains("flow operator"), "{e}"),
    }
}

/// Writes are named in the refusal (and in `StatementKind::Other`) by what they are, not by the
/// leading upper-case words of their text: with upper-case identifiers the two differ
/// (`UPDATE T SET` vs `UPDATE`), so every named statement kind shows here.
#[test]
fn every_write_is_named_by_its_kind() {
    let both = [
        ("INSERT INTO T VALUES (1)", "INSERT"),
        ("UPDATE T SET X = 1", "UPDATE"),
        ("DELETE FROM T", "DELETE"),
        (
            "MERGE INTO T USING S ON T.A = S.A WHEN MATCHED THEN DELETE",
            "MERGE",
        ),
        (
            "CREATE TABLE T AS SELECT 1 AS A",
            "CREATE TABLE ... AS SELECT",
        ),
        ("CREATE TABLE T (A INT)", "CREATE TABLE"),
        ("CREATE VIEW V AS SELECT 1 AS A", "CREATE VIEW"),
        ("DROP TABLE T", "DROP TABLE"),
        ("TRUNCATE TABLE T", "TRUNCATE"),
        ("ALTER TABLE T ADD COLUMN B INT", "ALTER TABLE"),
        ("GRANT SELECT ON T TO ROLE R", "GRANT"),
        ("REVOKE SELECT ON T FROM ROLE R", "REVOKE"),
        ("CALL P()", "CALL"),
        ("SET X = 1", "SET"),
        ("USE DATABASE D", "USE"),
        ("BEGIN", "transaction (BEGIN / START TRANSACTION)"),
        ("COMMIT", "COMMIT"),
        ("ROLLBACK", "ROLLBACK"),
        ("CREATE SCHEMA S", "CREATE SCHEMA"),
        ("CREATE DATABASE D", "CREATE DATABASE"),
        ("CREATE ROLE R", "CREATE ROLE"),
        ("CREATE USER U", "CREATE USER"),
    ];
    let snowflake_only = [
        ("COPY INTO T FROM @S", "COPY INTO"),
        ("LIST @S", "LIST"),
        ("REMOVE @S", "REMOVE"),
        ("ALTER SESSION SET X = 1", "ALTER SESSION"),
        ("CREATE STAGE S", "CREATE STAGE"),
        ("COMMENT ON TABLE T IS 'X'", "COMMENT"),
    ];
    let cases = both
        .iter()
        .flat_map(|c| [(SF, *c), (DB, *c)])
        .chain(snowflake_only.iter().map(|c| (SF, *c)));
    for (p, (sql, name)) in cases {
        assert_eq!(
            rw().check(p, sql).unwrap(),
            StatementKind::Other(name.to_string()),
            "{sql:?} on {p}"
        );
        assert!(
            refused(&ro(), p, sql).ends_with(&format!("this is a {name}"))
                || refused(&ro(), p, sql).ends_with(&format!("this is an {name}")),
            "{sql:?} on {p}: {}",
            refused(&ro(), p, sql)
        );
    }
}

/// A statement without a name of its own is named by the leading keywords of its text, which
/// stop at the first identifier: `create sequence q` is a `CREATE SEQUENCE`.
#[test]
fn other_writes_are_named_by_their_leading_keywords() {
    for p in [SF, DB] {
        assert_eq!(
            rw().check(p, "create sequence q").unwrap(),
            StatementKind::Other("CREATE SEQUENCE".into()),
            "on {p}"
        );
    }
}

/// The AST check stands on its own: the word checks before it would refuse these anyway, so
/// only calling it directly shows each role or user switch it knows.
#[test]
fn the_ast_layer_alone_refuses_every_role_switch() {
    for (sql, platform) in [
        ("USE ROLE R", SF),
        ("USE SECONDARY ROLES ALL", SF),
        ("SET ROLE R", DB),
        ("SET SESSION AUTHORIZATION U", DB),
        ("ALTER USER U SET X = 1", SF),
        ("EXECUTE P", DB),
    ] {
        let parsed = Parser::parse_sql(dialect_for(platform), sql).unwrap();
        assert!(
            classify::check_role_switch_ast(&parsed[0]).is_err(),
            "{sql:?} passed the AST role-switch check"
        );
    }
    let select = Parser::parse_sql(dialect_for(SF), "SELECT * FROM T").unwrap();
    assert!(classify::check_role_switch_ast(&select[0]).is_ok());
}

/// The token check of side-effect functions stands on its own (the naive word check after it
/// would refuse most of these too): names in words and in every kind of string literal, the
/// Snowflake `SYSTEM $x` split, and the call-out functions only when called.
#[test]
fn the_token_layer_alone_refuses_side_effect_functions() {
    let check = |p: Platform, sql: &str| {
        let tokens = Tokenizer::new(dialect_for(p), sql).tokenize().unwrap();
        let significant: Vec<&Token> = tokens
            .iter()
            .filter(|t| !matches!(t, Token::Whitespace(_) | Token::EOF))
            .collect();
        words::check_side_effect_functions(p, &significant)
    };
    for (p, sql) in [
        (SF, "SELECT SYSTEM$CANCEL_ALL_QUERIES(1)"),
        (SF, "SELECT IDENTIFIER('SYSTEM$ABORT_SESSION')(1)"),
        (SF, "SELECT $$SYSTEM$WAIT(1)$$"),
        (SF, "SELECT SYSTEM $WAIT"),
        (DB, "SELECT reflect('java.lang.Runtime', 'exit', 0)"),
        (DB, "SELECT java_method('a', 'b')"),
        (DB, "SELECT http_request('https://x')"),
        (DB, "SELECT try_reflect('a', 'b')"),
        (DB, "SELECT r'SYSTEM$X'"),
    ] {
        assert!(
            check(p, sql).is_err(),
            "{sql:?} on {p} passed the token check"
        );
    }
    for (p, sql) in [
        (SF, "SELECT system FROM T"),
        (SF, "SELECT 'system' AS S"),
        (DB, "SELECT reflect FROM T"),
        (DB, "SELECT SYSTEM FROM T"),
        (SF, "SELECT A + 1 FROM T"),
    ] {
        assert!(
            check(p, sql).is_ok(),
            "{sql:?} on {p} was refused by the token check"
        );
    }
}

/// `write_in_set_expr` stands on its own (the visitor in `hidden_write` would find most of these
/// again): `SELECT ... INTO` alone, in a set operation, in parentheses, and DML as a query body.
#[test]
fn the_set_expression_layer_alone_finds_hidden_writes() {
    let body_write = |sql: &str| -> Option<String> {
        let parsed = Parser::parse_sql(dialect_for(SF), sql).unwrap();
        let sqlparser::ast::Statement::Query(q) = &parsed[0] else {
            panic!("{sql:?} is not a query")
        };
        classify::write_in_set_expr(&q.body)
    };
    let into = Some("SELECT ... INTO (it writes a table)".to_string());
    assert_eq!(body_write("SELECT A INTO T2 FROM T"), into);
    assert_eq!(
        body_write("SELECT 1 AS A UNION ALL SELECT A INTO T2 FROM T"),
        into
    );
    assert_eq!(
        body_write("SELECT A INTO T2 FROM T UNION ALL SELECT 1 AS A"),
        into
    );
    assert_eq!(body_write("(SELECT A INTO T2 FROM T)"), into);
    assert_eq!(body_write("SELECT 1 AS A UNION SELECT 2 AS A"), None);
    // The DML body of a data-modifying CTE.
    let parsed = Parser::parse_sql(
        dialect_for(SF),
        "WITH D AS (DELETE FROM T RETURNING *) SELECT * FROM D",
    )
    .unwrap();
    let sqlparser::ast::Statement::Query(q) = &parsed[0] else {
        panic!("not a query")
    };
    let cte = &q.with.as_ref().unwrap().cte_tables[0].query;
    assert_eq!(
        classify::write_in_set_expr(&cte.body),
        Some("DELETE".into())
    );
}

/// `hidden_write` alone names any statement that is not a read wherever it meets one (the
/// classification before it refuses these already, so only a direct call shows it), and lets
/// SHOW, DESCRIBE and EXPLAIN through.
#[test]
fn the_hidden_write_layer_alone_names_non_reads() {
    let hidden = |p: Platform, sql: &str| {
        let parsed = Parser::parse_sql(dialect_for(p), sql).unwrap();
        classify::hidden_write(&parsed[0])
    };
    assert_eq!(hidden(SF, "DELETE FROM T"), Some("DELETE".into()));
    assert_eq!(hidden(DB, "UPDATE T SET A = 1"), Some("UPDATE".into()));
    assert_eq!(
        hidden(SF, "SELECT * FROM T FOR UPDATE"),
        Some("SELECT ... FOR UPDATE (it takes row locks)".into())
    );
    for (p, sql) in [
        (SF, "SHOW TABLES"),
        (DB, "SHOW TABLES"),
        (SF, "DESCRIBE TABLE T"),
        (SF, "EXPLAIN SELECT * FROM T"),
        (SF, "SELECT * FROM T"),
    ] {
        assert_eq!(hidden(p, sql), None, "{sql:?} on {p}");
    }
}
