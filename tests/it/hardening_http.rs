//! Rule: forged, replayed or malformed HTTP input is refused before any upstream request.
//!
//! Hardening over raw HTTP (issue 6): the token attack matrix, session
//! replay across users, the Origin check, bad JSON-RPC input, and SQL-guard
//! bypass attempts that must be refused before any upstream request.
//!
//! Speaks the streamable HTTP wire directly with reqwest so every status,
//! header and body is visible.

use crate::support::raw_http::initialize;
use crate::support::{ALICE, BOB, HttpEnv};
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

fn challenge(headers: &HeaderMap) -> String {
    headers
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

fn text_of(result: &Value) -> String {
    result["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn token_attack_matrix_is_refused_with_a_challenge() {
    let h = HttpEnv::start().await;
    let iss = &h.issuer.issuer;
    let now = chrono::Utc::now().timestamp();
    let base = h.claims(ALICE);
    let with = |k: &str, v: Value| {
        let mut c = base.clone();
        c[k] = v;
        c
    };
    let mut unknown_kid = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    unknown_kid.kid = Some("no-such-kid".into());
    let cases: Vec<(&str, Option<String>, bool)> = vec![
        ("no token", None, false),
        ("malformed", Some("not.a.jwt".into()), true),
        ("garbage", Some("%%%".into()), true),
        ("alg none", Some(iss.unsigned_token(&base)), true),
        (
            "HS256 keyed with the JWKS public key",
            Some(iss.hs256_with_public_key(&base)),
            true,
        ),
        (
            "unknown kid",
            Some(iss.sign_with_header(unknown_kid, &base)),
            true,
        ),
        (
            "wrong issuer",
            Some(iss.mint_claims(with("iss", json!("https://evil.example")))),
            true,
        ),
        (
            "wrong audience",
            Some(iss.mint_claims(with("aud", json!("https://other.example/mcp")))),
            true,
        ),
        (
            "expired",
            Some(iss.mint_claims(with("exp", json!(now - 3600)))),
            true,
        ),
        (
            "not yet valid",
            Some(iss.mint_claims(with("nbf", json!(now + 3600)))),
            true,
        ),
        (
            "no user claim",
            Some(iss.mint_claims({
                let mut c = base.clone();
                c.as_object_mut().unwrap().remove("email");
                c
            })),
            true,
        ),
    ];
    // Control: the unmodified claims are accepted, so each case below is
    // refused for the one field it changes.
    let (status, _, _) = h
        .post(
            Some(&iss.mint_claims(base.clone())),
            None,
            serde_json::to_vec(&initialize()).unwrap(),
        )
        .await;
    assert_eq!(status, 200, "the base claims are a valid token");
    let before = h.upstream_requests();
    for (name, token, expect_error_param) in &cases {
        let (status, headers, _) = h
            .post(
                token.as_deref(),
                None,
                serde_json::to_vec(&initialize()).unwrap(),
            )
            .await;
        assert_eq!(status, 401, "{name}: expected 401, got {status}");
        let c = challenge(&headers);
        assert!(
            c.starts_with("Bearer resource_metadata=\""),
            "{name}: challenge {c:?}"
        );
        assert!(
            c.contains("/.well-known/oauth-protected-resource"),
            "{name}: {c}"
        );
        assert_eq!(
            c.contains("error=\"invalid_token\""),
            *expect_error_param,
            "{name}: {c}"
        );
        if let Some(t) = token {
            assert!(
                !c.contains(t.as_str()),
                "{name}: the challenge must not echo the token"
            );
        }
    }
    assert_eq!(
        h.upstream_requests(),
        before,
        "refused requests reach no upstream"
    );

    // The metadata document the challenge points to is served without a token.
    let meta: Value = h
        .http
        .get(format!(
            "http://{}/.well-known/oauth-protected-resource/mcp",
            h.server.addr
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(meta["resource"], json!(h.server.resource_url));
    assert_eq!(meta["authorization_servers"][0], json!(iss.issuer_url()));
}

#[tokio::test]
async fn a_token_of_one_user_cannot_ride_another_users_session() {
    let h = HttpEnv::start().await;
    let (alice, bob) = (h.token(ALICE), h.token(BOB));
    let bob_session = h.open_session(&bob).await;
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "whoami", "arguments": {}}});
    let (status, headers, _) = h.rpc(&alice, Some(&bob_session), body).await;
    assert_eq!(
        status, 401,
        "alice's token with bob's session must be refused"
    );
    assert!(
        challenge(&headers).contains("another user"),
        "{}",
        challenge(&headers)
    );

    // Bob keeps using his own session, and it still answers as bob.
    let who = h
        .call_tool(&bob, &bob_session, 8, "whoami", json!({}))
        .await;
    assert_eq!(who["result"]["structuredContent"]["user"], json!(BOB));
    // Alice with her own session is alice.
    let alice_session = h.open_session(&alice).await;
    let who = h
        .call_tool(&alice, &alice_session, 9, "whoami", json!({}))
        .await;
    assert_eq!(who["result"]["structuredContent"]["user"], json!(ALICE));
}

#[tokio::test]
async fn foreign_origin_is_forbidden() {
    let h = HttpEnv::start().await;
    let resp = h
        .http
        .post(&h.server.resource_url)
        .bearer_auth(h.token(ALICE))
        .header("origin", "https://evil.example")
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&initialize()).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    let (status, _, _) = h.rpc(&h.token(ALICE), None, initialize()).await;
    assert_eq!(
        status, 200,
        "the same request without a foreign Origin works"
    );
}

#[tokio::test]
async fn bad_json_rpc_input_gets_clear_errors_and_the_server_keeps_serving() {
    let h = HttpEnv::start().await;
    let alice = h.token(ALICE);
    let session = h.open_session(&alice).await;

    // Malformed JSON: refused without crashing.
    let (status, _, msgs) = h
        .post(
            Some(&alice),
            Some(&session),
            b"{\"jsonrpc\": \"2.0\", \"id\": 1, \"method\"".to_vec(),
        )
        .await;
    assert_eq!(status, 400, "malformed JSON: {msgs:?}");
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    assert_eq!(
        msgs[0]["error"]["code"],
        json!(-32700),
        "a JSON-RPC parse error"
    );
    assert_eq!(msgs[0]["id"], Value::Null, "{msgs:?}");

    // Unknown tool: a JSON-RPC error naming the tool.
    let body = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "drop_everything", "arguments": {}}});
    let (_, _, msgs) = h.rpc(&alice, Some(&session), body).await;
    let err = msgs.iter().find(|m| m["id"] == json!(2)).expect("answer");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("drop_everything"),
        "{err}"
    );

    // Wrong argument type: invalid params.
    let body = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "query_snowflake", "arguments": {"sql": 42}}});
    let (_, _, msgs) = h.rpc(&alice, Some(&session), body).await;
    let err = msgs.iter().find(|m| m["id"] == json!(3)).expect("answer");
    assert_eq!(err["error"]["code"], json!(-32602), "{err}");

    // A user argument is not part of any schema and is refused, never honoured.
    let body = json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call",
                      "params": {"name": "query_snowflake", "arguments": {"sql": "SELECT 1", "user": BOB}}});
    let (_, _, msgs) = h.rpc(&alice, Some(&session), body).await;
    let err = msgs.iter().find(|m| m["id"] == json!(4)).expect("answer");
    assert_eq!(err["error"]["code"], json!(-32602), "invalid params: {err}");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("user"),
        "the error names the unknown `user` field: {err}"
    );

    // Huge max_rows: a tool error the model can act on.
    let r = h
        .call_tool(
            &alice,
            &session,
            5,
            "query_snowflake",
            json!({"sql": "SELECT 1", "max_rows": u64::MAX}),
        )
        .await;
    assert_eq!(r["result"]["isError"], json!(true));
    assert!(text_of(&r).contains("max_rows"), "{r}");

    // A 10 MB SQL string: refused by a limit (body limit or the guard), no crash, nothing upstream.
    let before = h.upstream_requests();
    let huge = format!("SELECT '{}'", "x".repeat(10 * 1024 * 1024));
    let body = json!({"jsonrpc": "2.0", "id": 6, "method": "tools/call", "params": {"name": "query_snowflake", "arguments": {"sql": huge}}});
    let (status, _, msgs) = h.rpc(&alice, Some(&session), body).await;
    assert_eq!(
        status, 413,
        "10 MB SQL: refused by the body limit (413), {msgs:?}"
    );
    assert_eq!(h.upstream_requests(), before);

    // The session still works.
    let r = h
        .call_tool(
            &alice,
            &session,
            9,
            "query_snowflake",
            json!({"sql": "SELECT COUNT(*) AS N FROM SALES.PUBLIC.ORDERS"}),
        )
        .await;
    assert_eq!(r["result"]["isError"], json!(false), "{r}");
    assert_eq!(
        r["result"]["structuredContent"]["rows"][0][0],
        json!(4),
        "alice counts only EU orders"
    );
}

#[tokio::test]
async fn guard_bypass_attempts_never_reach_an_upstream() {
    let h = HttpEnv::start().await;
    let alice = h.token(ALICE);
    let session = h.open_session(&alice).await;
    let snowflake = [
        "SELECT 1; DROP TABLE SALES.PUBLIC.ORDERS",
        "COMMIT; DROP TABLE SALES.PUBLIC.ORDERS",
        "SEL/**/ECT 1",
        "/* harmless */ DROP TABLE SALES.PUBLIC.ORDERS",
        "-- comment\nDELETE FROM SALES.PUBLIC.ORDERS",
        "EXECUTE IMMEDIATE 'DROP TABLE SALES.PUBLIC.ORDERS'",
        "CALL SYSTEM$CANCEL_ALL_QUERIES()",
        "COPY INTO @stage FROM SALES.PUBLIC.ORDERS",
        "PUT file:///etc/passwd @stage",
        "GET @stage file:///tmp/",
        "CREATE TABLE T2 AS SELECT * FROM SALES.PUBLIC.ORDERS",
        "MERGE INTO SALES.PUBLIC.ORDERS t USING (SELECT 1 AS ID) s ON t.ORDER_ID = s.ID WHEN MATCHED THEN DELETE",
        "SET X = 1",
        "USE ROLE ACCOUNTADMIN",
        "use secondary roles all",
        "ＳＥＬＥＣＴ 1",
        "SELECT\u{200B} 1",
        "SELECT SYSTEM$WHITELIST()",
        "INSERT INTO SALES.PUBLIC.ORDERS VALUES (1)",
        "GRANT ROLE ACCOUNTADMIN TO USER IMMUTA_AGENT",
        "ALTER USER IMMUTA_AGENT SET DEFAULT_SECONDARY_ROLES = ('ALL')",
        // The security audit's lexer disagreements (F2, F3, F8).
        "SHOW TABLES ->> DROP TABLE SALES.PUBLIC.ORDERS",
        "SELECT 1 ->> DELETE FROM SALES.PUBLIC.ORDERS",
        "DESC TABLE SALES.PUBLIC.ORDERS ->> INSERT INTO SALES.PUBLIC.ORDERS SELECT * FROM SALES.PUBLIC.ORDERS",
        "SELECT 1 /* c */ ->>\n DELETE FROM SALES.PUBLIC.ORDERS",
        "SELECT 1 -- c\r; DROP TABLE SALES.PUBLIC.ORDERS",
        "SELECT $a$ ->> USE ROLE ACCOUNTADMIN ->> SELECT $a$",
        "SELECT 1 --\r->> EXECUTE IMMEDIATE 'USE ROLE ACCOUNTADMIN'",
    ];
    let databricks = [
        "SELECT 1; DROP TABLE main.sales.orders",
        "DROP TABLE main.sales.orders",
        "INSERT INTO main.sales.orders VALUES (1)",
        "SET ROLE admin",
        "CREATE TABLE t AS SELECT * FROM main.sales.orders",
        "OPTIMIZE main.sales.orders",
        "WITH a AS (SELECT 1 AS x) --\rINSERT OVERWRITE TABLE main.sales.orders\nSELECT * FROM a",
        "WITH a AS (SELECT 1 AS x) --\rINSERT INTO main.sales.orders\nSELECT * FROM a",
        "SELECT 1 --\r; EXECUTE IMMEDIATE 'SET ROLE admin'",
        "SELECT 1 --\r, http_request('c','GET','/')",
        "SELECT 1 AS x -- \\\nFROM main.sales.orders",
    ];
    let before = h.upstream_requests();
    let mut id = 100;
    for (tool, sqls) in [
        ("query_snowflake", &snowflake[..]),
        ("query_databricks", &databricks[..]),
    ] {
        for sql in sqls {
            id += 1;
            let r = h
                .call_tool(&alice, &session, id, tool, json!({"sql": sql}))
                .await;
            assert_eq!(
                r["result"]["isError"],
                json!(true),
                "{tool} must refuse {sql:?}: {r}"
            );
            assert!(
                text_of(&r).contains("refused by the SQL guard"),
                "{sql:?}: {}",
                text_of(&r)
            );
        }
    }
    assert_eq!(
        h.upstream_requests(),
        before,
        "no refused statement made an upstream request"
    );
    assert!(
        h.sandbox.state.executed().is_empty(),
        "nothing was executed"
    );
    // Positive control: the same session's plain read does reach the platform.
    let r = h
        .call_tool(
            &alice,
            &session,
            id + 1,
            "query_databricks",
            json!({"sql": "WITH a AS (SELECT 1 AS x) -- c\r\nSELECT * FROM a"}),
        )
        .await;
    assert_eq!(r["result"]["isError"], json!(false), "{r}");
    assert!(h.upstream_requests() > before, "the read went upstream");
    let ran: Vec<String> = h
        .sandbox
        .state
        .executed()
        .into_iter()
        .map(|s| s.sql)
        .collect();
    assert_eq!(ran.len(), 2, "the identity probe, then the read: {ran:?}");
    assert!(ran[1].starts_with("WITH a AS"), "{ran:?}");
}

#[tokio::test]
async fn stateless_mode_serves_each_request_as_its_own_tokens_user() {
    let h = HttpEnv::start_with(|cfg| cfg.server.stateful_sessions = false).await;
    for (user, expected_rows) in [(ALICE, 4), (BOB, 8)] {
        let token = h.token(user);
        let (status, headers, msgs) = h.rpc(&token, None, initialize()).await;
        assert_eq!(status, 200, "{msgs:?}");
        assert!(
            headers.get("mcp-session-id").is_none(),
            "stateless mode hands out no session"
        );
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                          "params": {"name": "query_snowflake", "arguments": {"sql": "SELECT COUNT(*) AS N FROM SALES.PUBLIC.ORDERS"}}});
        let (status, _, msgs) = h.rpc(&token, None, body).await;
        assert_eq!(status, 200);
        let answer = msgs.iter().find(|m| m["id"] == json!(1)).expect("answer");
        assert_eq!(
            answer["result"]["structuredContent"]["rows"][0][0],
            json!(expected_rows),
            "{user}: {answer}"
        );
    }
    let (status, _, _) = h
        .post(None, None, serde_json::to_vec(&initialize()).unwrap())
        .await;
    assert_eq!(status, 401, "stateless mode still needs a token");
}
