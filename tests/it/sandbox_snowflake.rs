//! Rule: the Snowflake emulator answers and refuses as the SQL API v2 does.
//!
//! The sandbox's Snowflake SQL API emulator, driven over HTTP with a plain
//! reqwest client: key-pair JWT checks, the PAT lifecycle, governed results
//! per user, jsonv2 encodings, async polling, partitions, cancel, idempotent
//! retries, the per-user token limit and every fault knob.

use immuta_mcp::result::Platform;
use immuta_mcp::sandbox::faults::{Endpoint, Fault};
use immuta_mcp::sandbox::fixture::Fixture;
use immuta_mcp::sandbox::snowflake;
use immuta_mcp::sandbox::state::{Counter, SandboxCredentials, SandboxSettings, SandboxState};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A second, unregistered RSA key (PKCS#8 PEM) and its fingerprint.
fn other_key() -> (String, String) {
    static KEY: OnceLock<(String, String)> = OnceLock::new();
    KEY.get_or_init(|| {
        let other = SandboxCredentials::generate().expect("second key");
        (
            other.snowflake_private_key_pem,
            other.snowflake_public_key_fingerprint,
        )
    })
    .clone()
}

/// The SQL API requires a User-Agent on every request.
const USER_AGENT: &str = "sandbox-snowflake-tests/1";

struct Env {
    state: Arc<SandboxState>,
    url: String,
    http: reqwest::Client,
}

async fn start_with(fixture: Fixture, settings: SandboxSettings) -> Env {
    let (state, url) = crate::support::emulator::serve(&fixture, settings, snowflake::router).await;
    Env {
        state,
        url,
        http: reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .timeout(Duration::from_secs(20))
            .build()
            .expect("client"),
    }
}

async fn start() -> Env {
    start_with(Fixture::demo(), SandboxSettings::default()).await
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// A key-pair JWT as the Snowflake docs describe it.
fn jwt_with(pem: &str, fingerprint: &str, iat: u64, exp: u64, account_user: &str) -> String {
    let claims = json!({
        "iss": format!("{account_user}.{fingerprint}"),
        "sub": account_user,
        "iat": iat,
        "exp": exp,
    });
    jsonwebtoken::encode(
        &Header::new(Algorithm::RS256),
        &claims,
        &EncodingKey::from_rsa_pem(pem.as_bytes()).expect("pem"),
    )
    .expect("sign")
}

fn good_jwt(creds: &SandboxCredentials) -> String {
    let t = now();
    jwt_with(
        &creds.snowflake_private_key_pem,
        &creds.snowflake_public_key_fingerprint,
        t,
        t + 3540,
        "SANDBOX01.IMMUTA_AGENT",
    )
}

fn vend(env: &Env, role: &str, user: &str) {
    env.state
        .engine
        .bind_role(
            Platform::Snowflake,
            role,
            user,
            SystemTime::now() + Duration::from_secs(3600),
        )
        .expect("bind role");
}

impl Env {
    async fn post_statement(
        &self,
        token: &str,
        token_type: &str,
        query: &str,
        body: Value,
    ) -> (StatusCode, Value) {
        let resp = self
            .http
            .post(format!("{}/api/v2/statements{query}", self.url))
            .bearer_auth(token)
            .header("X-Snowflake-Authorization-Token-Type", token_type)
            .header("Accept", "application/json")
            .json(&body)
            .send()
            .await
            .expect("send");
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn as_agent(&self, sql: &str) -> (StatusCode, Value) {
        let jwt = good_jwt(&self.state.creds);
        self.post_statement(&jwt, "KEYPAIR_JWT", "", json!({"statement": sql}))
            .await
    }

    async fn with_pat(&self, pat: &str, sql: &str) -> (StatusCode, Value) {
        self.with_pat_query(pat, "", json!({"statement": sql}))
            .await
    }

    async fn with_pat_query(&self, pat: &str, query: &str, body: Value) -> (StatusCode, Value) {
        self.post_statement(pat, "PROGRAMMATIC_ACCESS_TOKEN", query, body)
            .await
    }

    async fn get(&self, pat: &str, path_and_query: &str) -> (StatusCode, Value) {
        let resp = self
            .http
            .get(format!("{}{path_and_query}", self.url))
            .bearer_auth(pat)
            .header(
                "X-Snowflake-Authorization-Token-Type",
                "PROGRAMMATIC_ACCESS_TOKEN",
            )
            .send()
            .await
            .expect("send");
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Mint a PAT restricted to `role` through the agent's JWT; returns its secret.
    async fn mint_pat(&self, name: &str, role: &str) -> String {
        let (status, body) = self
            .as_agent(&format!(
                "ALTER USER ADD PROGRAMMATIC ACCESS TOKEN {name} ROLE_RESTRICTION = '{role}' MINS_TO_EXPIRY = 60 COMMENT = 'OBO test'"
            ))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            body["resultSetMetaData"]["rowType"][0]["name"],
            "token_name"
        );
        assert_eq!(
            body["resultSetMetaData"]["rowType"][1]["name"],
            "token_secret"
        );
        assert_eq!(body["data"][0][0], name.to_ascii_uppercase());
        body["data"][0][1].as_str().expect("secret").to_string()
    }

    /// A PAT for `user` through a freshly vended role.
    async fn pat_for(&self, user: &str, tag: &str) -> String {
        let role = format!("IMMUTA_OBO_{tag}");
        vend(self, &role, user);
        self.mint_pat(&format!("PAT_{tag}"), &role).await
    }
}

/// Poll a statement until it is no longer running (for up to 30 s: a deadline,
/// not a poll count, so a loaded machine does not fail it); the final answer must be 200.
async fn poll_until_done(env: &Env, pat: &str, url: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        let (status, polled) = env.get(pat, url).await;
        if status != StatusCode::ACCEPTED {
            assert_eq!(status, StatusCode::OK, "{polled}");
            return polled;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("statement {url} still running after 30 s");
}

fn column(body: &Value, name: &str) -> Vec<Value> {
    let idx = body["resultSetMetaData"]["rowType"]
        .as_array()
        .expect("rowType")
        .iter()
        .position(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("column {name} in {body}"));
    body["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|r| r[idx].clone())
        .collect()
}

#[tokio::test]
async fn key_pair_jwts_are_checked_like_snowflake() {
    let env = start().await;
    let creds = env.state.creds.clone();
    let t = now();
    let (other_pem, other_fp) = other_key();
    let cases = [
        (
            "signed with another key",
            jwt_with(&other_pem, &creds.snowflake_public_key_fingerprint, t, t + 600, "SANDBOX01.IMMUTA_AGENT"),
            "signature",
        ),
        (
            "fingerprint of another key",
            jwt_with(&creds.snowflake_private_key_pem, &other_fp, t, t + 600, "SANDBOX01.IMMUTA_AGENT"),
            "fingerprint",
        ),
        (
            "lifetime over one hour",
            jwt_with(&creds.snowflake_private_key_pem, &creds.snowflake_public_key_fingerprint, t, t + 7200, "SANDBOX01.IMMUTA_AGENT"),
            "lifetime",
        ),
        (
            "another user",
            jwt_with(&creds.snowflake_private_key_pem, &creds.snowflake_public_key_fingerprint, t, t + 600, "SANDBOX01.SOMEONE"),
            "SANDBOX01.IMMUTA_AGENT",
        ),
        (
            "HS256",
            jsonwebtoken::encode(
                &Header::new(Algorithm::HS256),
                &json!({"iss": format!("SANDBOX01.IMMUTA_AGENT.{}", creds.snowflake_public_key_fingerprint), "sub": "SANDBOX01.IMMUTA_AGENT", "iat": t, "exp": t + 600}),
                &EncodingKey::from_secret(b"guess"),
            )
            .unwrap(),
            "RS256",
        ),
    ];
    for (what, token, says) in cases {
        let (status, body) = env
            .post_statement(
                &token,
                "KEYPAIR_JWT",
                "",
                json!({"statement": "SHOW USER PROGRAMMATIC ACCESS TOKENS"}),
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {body}");
        assert_eq!(body["code"], "390144", "{what}: {body}");
        let message = body["message"].as_str().unwrap_or_default();
        assert!(
            message.starts_with("JWT token is invalid."),
            "{what}: {message}"
        );
        assert!(message.contains(says), "{what}: {message}");
    }
    // An expired key-pair JWT has its own code (rinsed-org/rb-snowflake-client#170).
    let expired = jwt_with(
        &creds.snowflake_private_key_pem,
        &creds.snowflake_public_key_fingerprint,
        t - 4000,
        t - 600,
        "SANDBOX01.IMMUTA_AGENT",
    );
    let (status, body) = env
        .post_statement(
            &expired,
            "KEYPAIR_JWT",
            "",
            json!({"statement": "SHOW USER PROGRAMMATIC ACCESS TOKENS"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["code"], "390198", "{body}");
    assert_eq!(body["message"], "Keypair access token expired.", "{body}");
    // No Authorization header at all.
    let resp = env
        .http
        .post(format!("{}/api/v2/statements", env.url))
        .json(&json!({"statement": "SELECT 1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(resp.json::<Value>().await.unwrap()["code"], "390101");

    // The good token works, and the agent role reads no data.
    let (status, body) = env.as_agent("SHOW USER PROGRAMMATIC ACCESS TOKENS").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["resultSetMetaData"]["numRows"], 0);
    let (status, body) = env.as_agent("SELECT * FROM SALES.PUBLIC.ORDERS").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["code"], "002003");
    assert_eq!(
        body["message"],
        "SQL compilation error:\nObject 'SALES.PUBLIC.ORDERS' does not exist or not authorized."
    );
    assert!(
        env.state.executed().is_empty(),
        "the agent ran nothing in the engine"
    );
}

#[tokio::test]
async fn pat_lifecycle_runs_sql_as_the_restricted_role_only() {
    let env = start().await;
    vend(&env, "IMMUTA_OBO_1_AAAA", "alice@example.com");
    let secret = env.mint_pat("obo_alice_1", "IMMUTA_OBO_1_AAAA").await;
    assert_eq!(env.state.counter(Counter::PatsCreated), 1);

    let (status, body) = env
        .with_pat_query(
            &secret,
            "",
            json!({"statement": "SELECT ORDER_ID FROM ORDERS ORDER BY ORDER_ID", "database": "SALES", "schema": "PUBLIC", "warehouse": "WH", "role": "IMMUTA_OBO_1_AAAA"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["code"], "090001");
    assert_eq!(body["sqlState"], "00000");
    assert_eq!(body["message"], "Statement executed successfully.");
    assert_eq!(body["resultSetMetaData"]["format"], "jsonv2");
    let handle = body["statementHandle"].as_str().unwrap().to_string();
    assert_eq!(
        body["statementStatusUrl"],
        format!("/api/v2/statements/{handle}")
    );
    assert!(body["createdOn"].as_u64().unwrap() > 0);
    assert_eq!(
        column(&body, "ORDER_ID"),
        vec![json!("1001"), json!("1002"), json!("1005"), json!("1007")]
    );

    let executed = env.state.executed();
    assert_eq!(executed.len(), 1);
    assert_eq!(executed[0].platform, Platform::Snowflake);
    assert_eq!(executed[0].role, "IMMUTA_OBO_1_AAAA");
    assert_eq!(executed[0].user, "alice@example.com");
    assert_eq!(executed[0].statement_id, handle);
    assert_eq!(env.state.counter(Counter::StatementsExecuted), 1);

    // CURRENT_ROLE() is the restricted role: nothing else is reachable.
    let (_, body) = env.with_pat(&secret, "SELECT CURRENT_ROLE() AS R").await;
    assert_eq!(body["data"][0][0], "IMMUTA_OBO_1_AAAA", "{body}");

    // Asking for another role in the body is refused.
    let (status, body) = env
        .with_pat_query(
            &secret,
            "",
            json!({"statement": "SELECT 1", "role": "ACCOUNTADMIN"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["code"], "390189", "{body}");
    assert!(body["statementHandle"].is_string());

    // A PAT session cannot manage tokens.
    let (status, body) = env
        .with_pat(
            &secret,
            "ALTER USER ADD PAT another ROLE_RESTRICTION = 'IMMUTA_OBO_1_AAAA'",
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");

    // SHOW lists it; REMOVE revokes it.
    let (_, shown) = env.as_agent("SHOW USER PROGRAMMATIC ACCESS TOKENS").await;
    assert_eq!(column(&shown, "name"), vec![json!("OBO_ALICE_1")]);
    assert_eq!(
        column(&shown, "role_restriction"),
        vec![json!("IMMUTA_OBO_1_AAAA")]
    );
    assert_eq!(column(&shown, "status"), vec![json!("ACTIVE")]);
    let (status, body) = env
        .as_agent("ALTER USER IMMUTA_AGENT REMOVE PROGRAMMATIC ACCESS TOKEN obo_alice_1")
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(env.state.counter(Counter::PatsRemoved), 1);
    let (status, body) = env.with_pat(&secret, "SELECT 1").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["code"], "390303", "{body}");
    let (status, body) = env.as_agent("ALTER USER REMOVE PAT obo_alice_1").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["code"], "002003");

    // A PAT secret that was never issued.
    let (status, body) = env.with_pat("not-a-token", "SELECT 1").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["code"], "390303");
}

#[tokio::test]
async fn role_restriction_must_be_a_live_vended_role() {
    let env = start().await;
    let (status, body) = env
        .as_agent("ALTER USER ADD PAT t1 ROLE_RESTRICTION = 'NOT_VENDED' MINS_TO_EXPIRY = 5")
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["code"], "002003");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("'NOT_VENDED' does not exist")
    );
    let (status, body) = env
        .as_agent("ALTER USER ADD PAT t1 MINS_TO_EXPIRY = 5")
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("ROLE_RESTRICTION is required")
    );
    let (status, body) = env
        .as_agent("ALTER USER someone_else ADD PAT t1 ROLE_RESTRICTION = 'R'")
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("Insufficient privileges")
    );
    let (status, body) = env
        .as_agent("ALTER USER ADD PAT t1 ROLE_RESTRICTION 'R'")
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["code"], "001003");
    assert_eq!(env.state.counter(Counter::PatsCreated), 0);
}

#[tokio::test]
async fn two_users_get_different_rows_and_masks_from_the_same_sql() {
    let env = start().await;
    let alice = env.pat_for("alice@example.com", "A").await;
    let bob = env.pat_for("bob@example.com", "B").await;
    let sql = "SELECT ORDER_ID, REGION, EMAIL, AMOUNT, ORDERED_AT FROM SALES.PUBLIC.ORDERS ORDER BY ORDER_ID";
    let (status, a) = env.with_pat(&alice, sql).await;
    assert_eq!(status, StatusCode::OK, "{a}");
    let (status, b) = env.with_pat(&bob, sql).await;
    assert_eq!(status, StatusCode::OK, "{b}");

    assert_eq!(a["resultSetMetaData"]["numRows"], 4);
    assert_eq!(b["resultSetMetaData"]["numRows"], 8);
    assert!(column(&a, "REGION").iter().all(|r| r == "EU"));
    assert!(column(&a, "EMAIL").iter().all(|e| e == "***"));
    assert_eq!(column(&b, "EMAIL")[0], "anna.schmidt@example.de");

    // rowType and jsonv2 encodings.
    let row_type = &b["resultSetMetaData"]["rowType"];
    assert_eq!(row_type[0]["type"], "fixed");
    assert_eq!(row_type[0]["scale"], 0);
    assert_eq!(row_type[0]["nullable"], false);
    assert_eq!(row_type[2]["type"], "text");
    assert_eq!(row_type[3]["type"], "fixed");
    assert_eq!(row_type[3]["precision"], 10);
    assert_eq!(row_type[3]["scale"], 2);
    assert_eq!(row_type[4]["type"], "timestamp_ntz");
    assert_eq!(column(&b, "AMOUNT")[0], "120.50");
    assert_eq!(column(&b, "AMOUNT")[5], "15.00");
    assert_eq!(column(&b, "AMOUNT")[7], Value::Null);
    // 2024-01-05 09:15:00 and 2024-01-09 11:11:11.250 as seconds since the epoch.
    assert_eq!(column(&b, "ORDERED_AT")[0], "1704446100.000000000");
    assert_eq!(column(&b, "ORDERED_AT")[4], "1704798671.250000000");

    let users: Vec<(String, String)> = env
        .state
        .executed()
        .into_iter()
        .map(|s| (s.role, s.user))
        .collect();
    assert_eq!(
        users,
        vec![
            ("IMMUTA_OBO_A".to_string(), "alice@example.com".to_string()),
            ("IMMUTA_OBO_B".to_string(), "bob@example.com".to_string()),
        ]
    );
}

#[tokio::test]
async fn ungranted_tables_fail_with_snowflake_wording() {
    let env = start().await;
    let carol = env.pat_for("carol@example.com", "C").await;
    let (status, body) = env
        .with_pat(&carol, "SELECT * FROM SALES.PUBLIC.ORDERS")
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["code"], "002003");
    assert_eq!(body["sqlState"], "42S02");
    assert_eq!(
        body["message"],
        "SQL compilation error:\nObject 'SALES.PUBLIC.ORDERS' does not exist or not authorized."
    );
    let handle = body["statementHandle"].as_str().expect("handle");
    // Polling the failed statement answers the same error.
    let (status, polled) = env
        .get(&carol, &format!("/api/v2/statements/{handle}"))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(polled["code"], "002003");
    // Her granted table works, with the e-mail masked.
    let (status, body) = env
        .with_pat(&carol, "SELECT EMAIL FROM SALES.PUBLIC.CUSTOMERS")
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["resultSetMetaData"]["numRows"], 7);
    // Writes are refused.
    let (status, body) = env
        .with_pat(&carol, "DELETE FROM SALES.PUBLIC.CUSTOMERS")
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
}

#[tokio::test]
async fn jsonv2_encodes_every_type_family() {
    let fixture = Fixture::from_toml_str(
        r#"
[[tables]]
platform = "snowflake"
name = "DB.S.TYPES"
columns = [
  { name = "N", type = "NUMBER(10,2)" }, { name = "F", type = "FLOAT" }, { name = "T", type = "TEXT" },
  { name = "B", type = "BOOLEAN" }, { name = "D", type = "DATE" }, { name = "TM", type = "TIME" },
  { name = "NTZ", type = "TIMESTAMP_NTZ" }, { name = "LTZ", type = "TIMESTAMP_LTZ" }, { name = "TZ", type = "TIMESTAMP_TZ" },
  { name = "V", type = "VARIANT" }, { name = "O", type = "OBJECT" }, { name = "A", type = "ARRAY" }, { name = "BIN", type = "BINARY" },
]
rows = [[7, 1.5, "x", true, "2024-01-05", "10:00:00", "2024-01-05T10:00:00", "2024-01-05T10:00:00+02:00", "2024-01-05T10:00:00+02:00", "{\"k\": [1, 2]}", "{\"a\": 1}", "[\"p\", \"q\"]", "CAFE01"]]
[[users]]
id = "u@example.com"
grants = [ { table = "DB.S.TYPES" } ]
"#,
    )
    .expect("fixture");
    let env = start_with(fixture, SandboxSettings::default()).await;
    let pat = env.pat_for("u@example.com", "U").await;
    let (status, body) = env.with_pat(&pat, "SELECT * FROM DB.S.TYPES").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let types: Vec<&str> = body["resultSetMetaData"]["rowType"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "fixed",
            "real",
            "text",
            "boolean",
            "date",
            "time",
            "timestamp_ntz",
            "timestamp_ltz",
            "timestamp_tz",
            "variant",
            "object",
            "array",
            "binary"
        ]
    );
    let row = &body["data"][0];
    let cells: Vec<serde_json::Value> = serde_json::from_value::<Vec<Value>>(row.clone()).unwrap();
    let parsed = |i: usize| serde_json::from_str::<Value>(cells[i].as_str().unwrap()).unwrap();
    assert_eq!(cells[0], "7.00");
    assert_eq!(cells[1], "1.5");
    assert_eq!(cells[2], "x");
    assert_eq!(cells[3], "true");
    assert_eq!(cells[4], "19727");
    assert_eq!(cells[5], "36000.000000000");
    assert_eq!(cells[6], "1704448800.000000000");
    assert_eq!(cells[7], "1704441600.000000000");
    assert_eq!(cells[8], "1704441600.000000000 1560");
    assert_eq!(parsed(9), json!({"k": [1, 2]}));
    assert_eq!(parsed(10), json!({"a": 1}));
    assert_eq!(parsed(11), json!(["p", "q"]));
    assert_eq!(cells[12], "CAFE01");
}

#[tokio::test]
async fn async_statements_poll_and_results_come_in_partitions() {
    let settings = SandboxSettings {
        partition_rows: 3,
        ..SandboxSettings::default()
    };
    let env = start_with(Fixture::demo(), settings).await;
    let bob = env.pat_for("bob@example.com", "B").await;
    let (status, body) = env
        .with_pat_query(
            &bob,
            "?async=true",
            json!({"statement": "SELECT ORDER_ID FROM SALES.PUBLIC.ORDERS ORDER BY ORDER_ID"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["code"], "333334");
    let handle = body["statementHandle"].as_str().unwrap().to_string();
    let status_url = body["statementStatusUrl"].as_str().unwrap().to_string();

    let first = poll_until_done(&env, &bob, &status_url).await;
    assert_eq!(first["statementHandle"], handle.as_str(), "{first}");
    let meta = &first["resultSetMetaData"];
    assert_eq!(meta["numRows"], 8);
    let partitions: Vec<u64> = meta["partitionInfo"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["rowCount"].as_u64().unwrap())
        .collect();
    assert_eq!(partitions, vec![3, 3, 2]);
    assert!(
        meta["partitionInfo"][0]["uncompressedSize"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert_eq!(first["data"], json!([["1001"], ["1002"], ["1003"]]));

    let (status, p1) = env
        .get(&bob, &format!("/api/v2/statements/{handle}?partition=1"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(p1, json!({"data": [["1004"], ["1005"], ["1006"]]}));
    let (_, p2) = env
        .get(&bob, &format!("/api/v2/statements/{handle}?partition=2"))
        .await;
    assert_eq!(p2, json!({"data": [["1007"], ["1008"]]}));
    let (status, _) = env
        .get(&bob, &format!("/api/v2/statements/{handle}?partition=3"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Another user's token cannot see the statement.
    let alice = env.pat_for("alice@example.com", "A").await;
    let (status, body) = env
        .get(&alice, &format!("/api/v2/statements/{handle}"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
}

#[tokio::test]
async fn pending_statements_answer_202_until_polled_enough_and_can_be_cancelled() {
    let env = start().await;
    let bob = env.pat_for("bob@example.com", "B").await;

    env.state
        .faults
        .add(Endpoint::SnowflakeSubmit, Fault::Pending { polls: 2 });
    let (status, body) = env.with_pat(&bob, "SELECT 1 AS ONE").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let url = format!(
        "/api/v2/statements/{}",
        body["statementHandle"].as_str().unwrap()
    );
    assert_eq!(env.get(&bob, &url).await.0, StatusCode::ACCEPTED);
    assert_eq!(env.get(&bob, &url).await.0, StatusCode::ACCEPTED);
    // Held no longer: the answer comes once the engine is done.
    let done = poll_until_done(&env, &bob, &url).await;
    assert_eq!(done["data"], json!([["1"]]), "{done}");

    env.state
        .faults
        .add(Endpoint::SnowflakeSubmit, Fault::Pending { polls: 5 });
    let (status, body) = env.with_pat(&bob, "SELECT 2").await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let handle = body["statementHandle"].as_str().unwrap().to_string();
    let resp = env
        .http
        .post(format!("{}/api/v2/statements/{handle}/cancel", env.url))
        .bearer_auth(&bob)
        .header(
            "X-Snowflake-Authorization-Token-Type",
            "PROGRAMMATIC_ACCESS_TOKEN",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(env.state.counter(Counter::StatementsCancelled), 1);
    let (status, body) = env.get(&bob, &format!("/api/v2/statements/{handle}")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["code"], "000604");
    assert_eq!(body["message"], "SQL execution canceled");
    // Unknown handle.
    let (status, body) = env.get(&bob, "/api/v2/statements/no-such-handle").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], "000709");
}

#[tokio::test]
async fn request_id_with_retry_returns_the_existing_statement() {
    let env = start().await;
    let bob = env.pat_for("bob@example.com", "B").await;
    let body = json!({"statement": "SELECT COUNT(*) AS N FROM SALES.PUBLIC.ORDERS"});
    let (status, first) = env
        .with_pat_query(
            &bob,
            "?requestId=11111111-2222-3333-4444-555555555555",
            body.clone(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let (status, again) = env
        .with_pat_query(
            &bob,
            "?requestId=11111111-2222-3333-4444-555555555555&retry=true",
            body.clone(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["statementHandle"], first["statementHandle"]);
    assert_eq!(again["data"], json!([["8"]]));
    assert_eq!(
        env.state.executed().len(),
        1,
        "the retry did not run the SQL again"
    );
    let (_, fresh) = env.with_pat_query(&bob, "?requestId=other", body).await;
    assert_ne!(fresh["statementHandle"], first["statementHandle"]);
    assert_eq!(env.state.executed().len(), 2);
}

#[tokio::test]
async fn bindings_and_nullable_false() {
    let env = start().await;
    let bob = env.pat_for("bob@example.com", "B").await;
    let (status, body) = env
        .with_pat_query(
            &bob,
            "?nullable=false",
            json!({
                "statement": "SELECT ORDER_ID, AMOUNT FROM SALES.PUBLIC.ORDERS WHERE REGION = ? AND ORDER_ID > ? ORDER BY ORDER_ID",
                "bindings": {"1": {"type": "TEXT", "value": "APAC"}, "2": {"type": "FIXED", "value": "1000"}}
            }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"], json!([["1004", "42.10"], ["1008", "null"]]));
    let (status, body) = env
        .with_pat_query(
            &bob,
            "",
            json!({
                "statement": "SELECT ORDER_ID FROM SALES.PUBLIC.ORDERS WHERE ORDER_ID = ?",
                "bindings": {"1": {"type": "FIXED", "value": "1 OR 1=1"}}
            }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["code"], "002049");
}

#[tokio::test]
async fn per_user_token_limit_is_enforced_until_tokens_are_removed() {
    let settings = SandboxSettings {
        pat_limit_per_user: 2,
        ..SandboxSettings::default()
    };
    let env = start_with(Fixture::demo(), settings).await;
    vend(&env, "IMMUTA_OBO_L", "bob@example.com");
    env.mint_pat("t1", "IMMUTA_OBO_L").await;
    env.mint_pat("t2", "IMMUTA_OBO_L").await;
    let (status, body) = env
        .as_agent("ALTER USER ADD PAT t3 ROLE_RESTRICTION = 'IMMUTA_OBO_L' MINS_TO_EXPIRY = 60")
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("maximum of 2 programmatic access tokens"),
        "{message}"
    );
    assert!(
        message.contains("REMOVE PROGRAMMATIC ACCESS TOKEN"),
        "{message}"
    );
    let (status, _) = env.as_agent("ALTER USER REMOVE PAT t1").await;
    assert_eq!(status, StatusCode::OK);
    env.mint_pat("t3", "IMMUTA_OBO_L").await;
    // IF NOT EXISTS on a taken name changes nothing and shows no secret.
    let (status, body) = env
        .as_agent("ALTER USER ADD PAT IF NOT EXISTS t3 ROLE_RESTRICTION = 'IMMUTA_OBO_L'")
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"], json!([["T3", null]]));
    assert_eq!(env.state.counter(Counter::PatsCreated), 3);
}

#[tokio::test]
async fn expired_credentials_and_revoked_roles_refuse_the_pat() {
    let env = start().await;
    let bob = env.pat_for("bob@example.com", "B").await;
    assert_eq!(env.with_pat(&bob, "SELECT 1").await.0, StatusCode::OK);
    env.state.expire_credentials();
    let (status, body) = env.with_pat(&bob, "SELECT 1").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["code"], "390318", "{body}");
    let (_, shown) = env.as_agent("SHOW USER PROGRAMMATIC ACCESS TOKENS").await;
    assert_eq!(column(&shown, "status"), vec![json!("EXPIRED")]);

    let fresh = env.mint_pat("again", "IMMUTA_OBO_B").await;
    assert_eq!(env.with_pat(&fresh, "SELECT 1").await.0, StatusCode::OK);
    env.state.engine.expire_all_roles();
    let (status, body) = env.with_pat(&fresh, "SELECT 1").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["code"], "390303");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("no longer granted"),
        "{body}"
    );
}

#[tokio::test]
async fn fault_knobs_fire_on_the_snowflake_endpoints() {
    let env = start().await;
    let bob = env.pat_for("bob@example.com", "B").await;

    env.state.faults.add(
        Endpoint::SnowflakeSubmit,
        Fault::Status {
            status: 429,
            retry_after: Some(7),
            times: 1,
        },
    );
    let resp = env
        .http
        .post(format!("{}/api/v2/statements", env.url))
        .bearer_auth(&bob)
        .header(
            "X-Snowflake-Authorization-Token-Type",
            "PROGRAMMATIC_ACCESS_TOKEN",
        )
        .json(&json!({"statement": "SELECT 1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(resp.headers()["retry-after"], "7");
    assert!(resp.json::<Value>().await.unwrap()["code"].is_string());
    // One-shot: the next request goes through.
    let (status, ok) = env.with_pat(&bob, "SELECT 1").await;
    assert_eq!(status, StatusCode::OK);
    let url = format!(
        "/api/v2/statements/{}",
        ok["statementHandle"].as_str().unwrap()
    );

    for code in [500u16, 503] {
        env.state.faults.add(
            Endpoint::SnowflakeStatus,
            Fault::Status {
                status: code,
                retry_after: None,
                times: 1,
            },
        );
        assert_eq!(env.get(&bob, &url).await.0.as_u16(), code);
    }
    assert_eq!(env.get(&bob, &url).await.0, StatusCode::OK);

    env.state.faults.add(
        Endpoint::SnowflakeCancel,
        Fault::Status {
            status: 503,
            retry_after: None,
            times: 1,
        },
    );
    let resp = env
        .http
        .post(format!("{}{url}/cancel", env.url))
        .bearer_auth(&bob)
        .header(
            "X-Snowflake-Authorization-Token-Type",
            "PROGRAMMATIC_ACCESS_TOKEN",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);

    env.state.faults.add(
        Endpoint::SnowflakeStatus,
        Fault::ConnectionReset { times: 1 },
    );
    let reset = env
        .http
        .get(format!("{}{url}", env.url))
        .bearer_auth(&bob)
        .header(
            "X-Snowflake-Authorization-Token-Type",
            "PROGRAMMATIC_ACCESS_TOKEN",
        )
        .send()
        .await;
    let failed = match reset {
        Err(_) => true,
        Ok(resp) => resp.bytes().await.is_err(),
    };
    assert!(
        failed,
        "a reset connection must not yield a complete answer"
    );

    env.state.faults.add(
        Endpoint::SnowflakeSubmit,
        Fault::Latency(Duration::from_secs(2)),
    );
    let impatient = reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let slow = impatient
        .post(format!("{}/api/v2/statements", env.url))
        .bearer_auth(&bob)
        .header(
            "X-Snowflake-Authorization-Token-Type",
            "PROGRAMMATIC_ACCESS_TOKEN",
        )
        .json(&json!({"statement": "SELECT 1"}))
        .send()
        .await;
    assert!(
        slow.is_err_and(|e| e.is_timeout()),
        "latency holds the answer back"
    );
    env.state.faults.clear();

    assert!(env.state.count(Endpoint::SnowflakeSubmit) >= 4);
    assert!(env.state.count(Endpoint::SnowflakeStatus) >= 4);
    assert_eq!(env.state.count(Endpoint::SnowflakeCancel), 1);
}

// ---------------------------------------------------------------------------
// Strictness: what the real SQL API refuses or answers differently
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_request_without_user_agent_is_refused() {
    let env = start().await;
    let bare = reqwest::Client::builder().build().expect("client");
    let jwt = good_jwt(&env.state.creds);
    let submit = bare
        .post(format!("{}/api/v2/statements", env.url))
        .bearer_auth(&jwt)
        .header("X-Snowflake-Authorization-Token-Type", "KEYPAIR_JWT")
        .json(&json!({"statement": "SHOW USER PROGRAMMATIC ACCESS TOKENS"}))
        .send()
        .await
        .expect("send");
    assert_eq!(submit.status(), StatusCode::BAD_REQUEST);
    let body: Value = submit.json().await.expect("json");
    assert_eq!(body["code"], "391903", "{body}");
    let poll = bare
        .get(format!("{}/api/v2/statements/whatever", env.url))
        .bearer_auth(&jwt)
        .send()
        .await
        .expect("send");
    assert_eq!(poll.status(), StatusCode::BAD_REQUEST);
    let (status, _) = env.as_agent("SHOW USER PROGRAMMATIC ACCESS TOKENS").await;
    assert_eq!(status, StatusCode::OK, "with a User-Agent it is served");
}

#[tokio::test]
async fn a_statement_timeout_is_http_408_on_submit_and_on_later_polls() {
    // A slow warehouse: every statement takes 5 s, its timeout is 1 s.
    let settings = SandboxSettings {
        snowflake_statement_delay: Duration::from_secs(5),
        ..SandboxSettings::default()
    };
    let env = start_with(Fixture::demo(), settings).await;
    vend(&env, "IMMUTA_OBO_T_1", "alice@example.com");
    let secret = env.mint_pat("obo_t_1", "IMMUTA_OBO_T_1").await;
    let body = json!({"statement": "SELECT 1", "timeout": 1, "role": "IMMUTA_OBO_T_1"});
    let (status, answer) = env.with_pat_query(&secret, "", body.clone()).await;
    assert_eq!(status, StatusCode::REQUEST_TIMEOUT, "{answer}");
    assert_eq!(answer["code"], "000630", "{answer}");
    let handle = answer["statementHandle"]
        .as_str()
        .expect("handle")
        .to_string();
    let (status, polled) = env
        .get(&secret, &format!("/api/v2/statements/{handle}"))
        .await;
    assert_eq!(status, StatusCode::REQUEST_TIMEOUT, "{polled}");
    assert_eq!(polled["statementHandle"], handle.as_str());
    // Asked asynchronously, the submit answers 202 and a poll after the
    // timeout answers 408.
    let (status, running) = env.with_pat_query(&secret, "?async=true", body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{running}");
    let handle = running["statementHandle"].as_str().unwrap().to_string();
    let mut last = (StatusCode::ACCEPTED, Value::Null);
    for _ in 0..400 {
        last = env
            .get(&secret, &format!("/api/v2/statements/{handle}"))
            .await;
        if last.0 != StatusCode::ACCEPTED {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(last.0, StatusCode::REQUEST_TIMEOUT, "{}", last.1);
    assert_eq!(last.1["code"], "000630");
}

#[tokio::test]
async fn body_identifiers_are_case_sensitive() {
    let env = start().await;
    vend(&env, "IMMUTA_OBO_C_1", "alice@example.com");
    let secret = env.mint_pat("obo_c_1", "IMMUTA_OBO_C_1").await;
    let query = |database: &str, role: &str| json!({"statement": "SELECT ORDER_ID FROM ORDERS", "database": database, "schema": "PUBLIC", "role": role});
    let (status, ok) = env
        .with_pat_query(&secret, "", query("SALES", "IMMUTA_OBO_C_1"))
        .await;
    assert_eq!(status, StatusCode::OK, "{ok}");
    let (status, lower) = env
        .with_pat_query(&secret, "", query("sales", "IMMUTA_OBO_C_1"))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{lower}");
    let message = lower["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("does not exist or not authorized"),
        "{message}"
    );
    let (status, role) = env
        .with_pat_query(&secret, "", query("SALES", "immuta_obo_c_1"))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{role}");
    assert_eq!(role["code"], "390189", "{role}");
}

#[tokio::test]
async fn show_tokens_has_every_documented_column_and_ltz_timestamps() {
    let env = start().await;
    vend(&env, "IMMUTA_OBO_S_1", "alice@example.com");
    env.mint_pat("obo_s_1", "IMMUTA_OBO_S_1").await;
    let (status, body) = env.as_agent("SHOW USER PROGRAMMATIC ACCESS TOKENS").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let row_type = body["resultSetMetaData"]["rowType"].as_array().unwrap();
    let names: Vec<&str> = row_type
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "name",
            "user_name",
            "role_restriction",
            "expires_at",
            "status",
            "comment",
            "created_on",
            "created_by",
            "mins_to_bypass_network_policy_requirement"
        ]
    );
    for ts in ["expires_at", "created_on"] {
        let column = row_type.iter().find(|c| c["name"] == ts).unwrap();
        assert_eq!(column["type"], "timestamp_ltz", "{column}");
        let cell = column_of(&body, ts);
        let text = cell.as_str().expect("jsonv2 text");
        let seconds: f64 = text.parse().expect("epoch seconds");
        assert!(seconds > 1.7e9, "{ts} = {text}");
    }
    let expires: f64 = column_of(&body, "expires_at")
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let created: f64 = column_of(&body, "created_on")
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (expires - created - 3600.0).abs() < 5.0,
        "MINS_TO_EXPIRY = 60"
    );
}

fn column_of(body: &Value, name: &str) -> Value {
    column(body, name).into_iter().next().expect("one row")
}

#[tokio::test]
async fn days_only_makes_mins_to_expiry_a_syntax_error() {
    let mut settings = SandboxSettings::default();
    settings.variants.pat_expiry = immuta_mcp::sandbox::variants::PatExpiryVariant::DaysOnly;
    let env = start_with(Fixture::demo(), settings).await;
    vend(&env, "IMMUTA_OBO_D_1", "alice@example.com");
    let (status, body) = env
        .as_agent("ALTER USER ADD PROGRAMMATIC ACCESS TOKEN t1 ROLE_RESTRICTION = 'IMMUTA_OBO_D_1' MINS_TO_EXPIRY = 60")
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["code"], "001003");
    assert_eq!(body["sqlState"], "42000");
    assert_eq!(
        body["message"],
        "SQL compilation error:\nsyntax error line 1 at position 80 unexpected 'MINS_TO_EXPIRY'."
    );
    assert_eq!(env.state.counter(Counter::PatsCreated), 0);
    let (status, body) = env
        .as_agent("ALTER USER ADD PROGRAMMATIC ACCESS TOKEN t1 ROLE_RESTRICTION = 'IMMUTA_OBO_D_1' DAYS_TO_EXPIRY = 1")
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(env.state.counter(Counter::PatsCreated), 1);
}
