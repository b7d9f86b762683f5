//! Rule: the Databricks emulator answers and refuses as the Statement Execution API and OAuth M2M
//! do.
//!
//! The sandbox's Databricks emulator (OAuth M2M token endpoint with
//! `assume_group`, SQL Statement Execution API), driven over HTTP with a plain
//! reqwest client: credential checks, governed results per user, manifest and
//! JSON_ARRAY encodings, chunks, limits, waiting and polling, cancel and every
//! fault knob.

use immuta_mcp::result::Platform;
use immuta_mcp::sandbox::databricks;
use immuta_mcp::sandbox::faults::{Endpoint, Fault};
use immuta_mcp::sandbox::fixture::Fixture;
use immuta_mcp::sandbox::state::{Counter, SandboxSettings, SandboxState};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

struct Env {
    state: Arc<SandboxState>,
    url: String,
    http: reqwest::Client,
}

async fn start_with(settings: SandboxSettings) -> Env {
    let (state, url) =
        crate::support::emulator::serve(&Fixture::demo(), settings, databricks::router).await;
    Env {
        state,
        url,
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .expect("client"),
    }
}

async fn start() -> Env {
    start_with(SandboxSettings::default()).await
}

impl Env {
    /// Bind group `group` to `user` for `ttl`, as the Immuta emulator does on a vend.
    fn vend(&self, group: &str, user: &str, ttl: Duration) {
        self.state
            .engine
            .bind_role(Platform::Databricks, group, user, SystemTime::now() + ttl)
            .expect("bind group");
    }

    async fn token_request(
        &self,
        client_id: &str,
        secret: &str,
        form: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        let resp = self
            .http
            .post(format!("{}/oidc/v1/token", self.url))
            .basic_auth(client_id, Some(secret))
            .form(form)
            .send()
            .await
            .expect("send");
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn token(&self, group: Option<&str>) -> String {
        let creds = &self.state.creds;
        let mut form = vec![("grant_type", "client_credentials"), ("scope", "all-apis")];
        if let Some(g) = group {
            form.push(("assume_group", g));
        }
        let (status, body) = self
            .token_request(
                &creds.databricks_client_id,
                &creds.databricks_client_secret,
                &form,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["token_type"], "Bearer");
        body["access_token"].as_str().expect("token").to_string()
    }

    /// A token acting as a freshly vended group for `user`.
    async fn token_for(&self, user: &str, group: &str) -> String {
        self.vend(group, user, Duration::from_secs(3600));
        self.token(Some(group)).await
    }

    async fn submit(&self, token: &str, body: Value) -> (StatusCode, Value) {
        let mut body = body;
        if body.get("warehouse_id").is_none() {
            body["warehouse_id"] = json!(self.state.creds.warehouse_id);
        }
        let resp = self
            .http
            .post(format!("{}/api/2.0/sql/statements", self.url))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("send");
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn sql(&self, token: &str, sql: &str) -> Value {
        let (status, body) = self
            .submit(token, json!({"statement": sql, "wait_timeout": "30s"}))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    async fn get(&self, token: &str, path: &str) -> (StatusCode, Value) {
        let resp = self
            .http
            .get(format!("{}{path}", self.url))
            .bearer_auth(token)
            .send()
            .await
            .expect("send");
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn cancel(&self, token: &str, id: &str) -> StatusCode {
        self.http
            .post(format!("{}/api/2.0/sql/statements/{id}/cancel", self.url))
            .bearer_auth(token)
            .send()
            .await
            .expect("send")
            .status()
    }
}

fn column(body: &Value, name: &str) -> Vec<Value> {
    let idx = body["manifest"]["schema"]["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .position(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("column {name} in {body}"));
    body["result"]["data_array"]
        .as_array()
        .expect("data_array")
        .iter()
        .map(|r| r[idx].clone())
        .collect()
}

#[tokio::test]
async fn token_endpoint_checks_client_and_group() {
    let env = start().await;
    let creds = env.state.creds.clone();
    let form = [
        ("grant_type", "client_credentials"),
        ("scope", "all-apis"),
        ("assume_group", "4242"),
    ];
    env.vend("4242", "alice@example.com", Duration::from_secs(600));

    let (status, body) = env
        .token_request(&creds.databricks_client_id, "wrong-secret", &form)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "invalid_client");
    let (status, body) = env
        .token_request("someone-else", &creds.databricks_client_secret, &form)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "invalid_client");
    let resp = env
        .http
        .post(format!("{}/oidc/v1/token", env.url))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::UNAUTHORIZED,
        "no client authentication"
    );

    let (status, body) = env
        .token_request(
            &creds.databricks_client_id,
            &creds.databricks_client_secret,
            &[
                ("grant_type", "client_credentials"),
                ("scope", "all-apis"),
                ("assume_group", "777"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_request");
    assert!(body["error_description"].as_str().unwrap().contains("777"));
    let (status, body) = env
        .token_request(
            &creds.databricks_client_id,
            &creds.databricks_client_secret,
            &[("grant_type", "password"), ("scope", "all-apis")],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "unsupported_grant_type");
    assert_eq!(env.state.counter(Counter::OAuthTokensIssued), 0);

    let (status, body) = env
        .token_request(
            &creds.databricks_client_id,
            &creds.databricks_client_secret,
            &form,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "all-apis");
    let expires_in = body["expires_in"].as_u64().unwrap();
    assert!(
        expires_in > 0 && expires_in <= 600,
        "capped at the group's lifetime: {expires_in}"
    );
    assert_eq!(env.state.counter(Counter::OAuthTokensIssued), 1);

    // The service principal without an assumed group has no data access.
    let bare = env.token(None).await;
    let (status, body) = env.submit(&bare, json!({"statement": "SELECT 1"})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error_code"], "PERMISSION_DENIED");
    // An unknown bearer token.
    let (status, body) = env
        .submit("made-up", json!({"statement": "SELECT 1"}))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error_code"], "UNAUTHENTICATED");
    assert!(env.state.executed().is_empty());
}

#[tokio::test]
async fn two_users_get_different_rows_and_masks_from_the_same_sql() {
    let env = start().await;
    let alice = env.token_for("alice@example.com", "1001").await;
    let bob = env.token_for("bob@example.com", "1002").await;
    let sql = "SELECT order_id, customer_email, region, amount, order_date, updated_at, is_gift, discount_rate FROM main.sales.orders ORDER BY order_id";
    let a = env.sql(&alice, sql).await;
    let b = env.sql(&bob, sql).await;
    assert_eq!(a["status"]["state"], "SUCCEEDED", "{a}");
    assert_eq!(b["status"]["state"], "SUCCEEDED", "{b}");
    assert_eq!(a["manifest"]["total_row_count"], 3);
    assert_eq!(b["manifest"]["total_row_count"], 6);
    assert!(column(&a, "region").iter().all(|r| r == "EU"));
    assert!(column(&a, "customer_email").iter().all(|e| e == "***"));
    assert_eq!(column(&b, "customer_email")[0], "anna.schmidt@example.de");

    let columns = b["manifest"]["schema"]["columns"].as_array().unwrap();
    let names: Vec<(&str, &str)> = columns
        .iter()
        .map(|c| {
            (
                c["type_name"].as_str().unwrap(),
                c["type_text"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        names,
        vec![
            ("LONG", "BIGINT"),
            ("STRING", "STRING"),
            ("STRING", "STRING"),
            ("DECIMAL", "DECIMAL(10,2)"),
            ("DATE", "DATE"),
            ("TIMESTAMP", "TIMESTAMP"),
            ("BOOLEAN", "BOOLEAN"),
            ("DOUBLE", "DOUBLE"),
        ]
    );
    assert_eq!(columns[3]["type_precision"], 10);
    assert_eq!(columns[3]["type_scale"], 2);
    assert_eq!(b["manifest"]["schema"]["column_count"], 8);
    assert_eq!(b["manifest"]["format"], "JSON_ARRAY");
    assert_eq!(
        b["result"]["data_array"][0],
        json!([
            "1",
            "anna.schmidt@example.de",
            "EU",
            "120.50",
            "2024-01-05",
            "2024-01-05T09:20:00.000Z",
            "false",
            "0"
        ])
    );
    assert_eq!(column(&b, "updated_at")[4], "2024-01-09T11:15:00.500Z");
    assert_eq!(column(&b, "updated_at")[5], Value::Null);
    assert_eq!(column(&b, "discount_rate")[1], "0.1");

    let who: Vec<(String, String)> = env
        .state
        .executed()
        .into_iter()
        .map(|s| (s.role, s.user))
        .collect();
    assert_eq!(
        who,
        vec![
            ("1001".to_string(), "alice@example.com".to_string()),
            ("1002".to_string(), "bob@example.com".to_string()),
        ]
    );
    assert_eq!(
        env.state.executed()[1].statement_id,
        b["statement_id"].as_str().unwrap()
    );
}

#[tokio::test]
async fn ungranted_tables_fail_with_table_or_view_not_found() {
    let env = start().await;
    let carol = env.token_for("carol@example.com", "2001").await;
    let body = env.sql(&carol, "SELECT * FROM main.hr.employees").await;
    assert_eq!(body["status"]["state"], "FAILED", "{body}");
    assert_eq!(body["status"]["sql_state"], "42P01");
    let message = body["status"]["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("[TABLE_OR_VIEW_NOT_FOUND]"),
        "{message}"
    );
    assert!(message.contains("`main`.`hr`.`employees`"), "{message}");
    assert!(body["status"]["error"]["error_code"].is_string());
    let ok = env
        .sql(&carol, "SELECT COUNT(*) AS n FROM main.sales.orders")
        .await;
    assert_eq!(ok["result"]["data_array"], json!([["6"]]), "{ok}");
    // Unqualified names resolve through catalog and schema.
    let ok = env
        .sql_in(&carol, "SELECT COUNT(*) AS n FROM orders", "main", "sales")
        .await;
    assert_eq!(ok["result"]["data_array"], json!([["6"]]), "{ok}");
}

impl Env {
    async fn sql_in(&self, token: &str, sql: &str, catalog: &str, schema: &str) -> Value {
        let (status, body) = self
            .submit(
                token,
                json!({"statement": sql, "catalog": catalog, "schema": schema, "wait_timeout": "30s"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }
}

#[tokio::test]
async fn results_come_in_chunks_and_limits_truncate() {
    let settings = SandboxSettings {
        databricks_chunk_rows: 2,
        ..SandboxSettings::default()
    };
    let env = start_with(settings).await;
    let bob = env.token_for("bob@example.com", "3001").await;
    let body = env
        .sql(
            &bob,
            "SELECT order_id FROM main.sales.orders ORDER BY order_id",
        )
        .await;
    let id = body["statement_id"].as_str().unwrap().to_string();
    assert_eq!(body["manifest"]["total_chunk_count"], 3, "{body}");
    // `truncated: false` is a default value: left out, as the real server does.
    assert!(body["manifest"].get("truncated").is_none(), "{body}");
    assert_eq!(body["manifest"]["chunks"][2]["row_offset"], 4);
    assert_eq!(body["result"]["data_array"], json!([["1"], ["2"]]));
    assert_eq!(body["result"]["next_chunk_index"], 1);
    let link = body["result"]["next_chunk_internal_link"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        link,
        format!("/api/2.0/sql/statements/{id}/result/chunks/1")
    );
    let (status, c1) = env.get(&bob, &link).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(c1["chunk_index"], 1);
    assert_eq!(c1["row_offset"], 2);
    assert_eq!(c1["data_array"], json!([["3"], ["4"]]));
    let (_, c2) = env
        .get(
            &bob,
            &format!("/api/2.0/sql/statements/{id}/result/chunks/2"),
        )
        .await;
    assert_eq!(c2["data_array"], json!([["5"], ["6"]]));
    assert!(c2.get("next_chunk_index").is_none(), "{c2}");
    let (status, _) = env
        .get(
            &bob,
            &format!("/api/2.0/sql/statements/{id}/result/chunks/3"),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let (_, limited) = env
        .submit(
            &bob,
            json!({"statement": "SELECT order_id FROM main.sales.orders ORDER BY order_id", "row_limit": 3, "wait_timeout": "30s"}),
        )
        .await;
    assert_eq!(limited["manifest"]["truncated"], true, "{limited}");
    assert_eq!(limited["manifest"]["total_row_count"], 3);
    let (_, by_bytes) = env
        .submit(
            &bob,
            json!({"statement": "SELECT order_id FROM main.sales.orders ORDER BY order_id", "byte_limit": 20, "wait_timeout": "30s"}),
        )
        .await;
    assert_eq!(by_bytes["manifest"]["truncated"], true, "{by_bytes}");
    let kept = by_bytes["manifest"]["total_row_count"].as_u64().unwrap();
    assert!((1..6).contains(&kept), "{by_bytes}");

    // Another group's token does not see the statement.
    let alice = env.token_for("alice@example.com", "3002").await;
    let (status, body) = env
        .get(&alice, &format!("/api/2.0/sql/statements/{id}"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
}

#[tokio::test]
async fn request_parameters_are_validated() {
    let env = start().await;
    let bob = env.token_for("bob@example.com", "4001").await;
    for (body, status, code) in [
        (
            json!({"statement": "SELECT 1", "wait_timeout": "3s"}),
            400,
            "INVALID_PARAMETER_VALUE",
        ),
        (
            json!({"statement": "SELECT 1", "wait_timeout": "51s"}),
            400,
            "INVALID_PARAMETER_VALUE",
        ),
        (
            json!({"statement": "SELECT 1", "on_wait_timeout": "LATER"}),
            400,
            "INVALID_PARAMETER_VALUE",
        ),
        (
            json!({"statement": "SELECT 1", "disposition": "EXTERNAL_LINKS"}),
            400,
            "NOT_IMPLEMENTED",
        ),
        (
            json!({"statement": "SELECT 1", "format": "ARROW_STREAM"}),
            400,
            "INVALID_PARAMETER_VALUE",
        ),
        (
            json!({"statement": "SELECT 1", "warehouse_id": "nope"}),
            404,
            "RESOURCE_DOES_NOT_EXIST",
        ),
        (
            json!({"wait_timeout": "5s"}),
            400,
            "INVALID_PARAMETER_VALUE",
        ),
    ] {
        let (got, answer) = env.submit(&bob, body.clone()).await;
        assert_eq!(got.as_u16(), status, "{body} → {answer}");
        assert_eq!(answer["error_code"], code, "{body} → {answer}");
        assert!(answer["message"].is_string());
    }
    assert!(env.state.executed().is_empty());

    let body = env
        .submit(
            &bob,
            json!({
                "statement": "SELECT order_id FROM main.sales.orders WHERE region = :region AND amount > :min ORDER BY order_id",
                "parameters": [{"name": "region", "value": "EU"}, {"name": "min", "value": "100", "type": "DECIMAL(10,2)"}],
                "wait_timeout": "30s"
            }),
        )
        .await
        .1;
    assert_eq!(
        body["result"]["data_array"],
        json!([["1"], ["5"]]),
        "{body}"
    );
}

#[tokio::test]
async fn pending_statements_poll_and_cancel() {
    let env = start().await;
    let bob = env.token_for("bob@example.com", "5001").await;

    env.state
        .faults
        .add(Endpoint::DatabricksSubmit, Fault::Pending { polls: 2 });
    let (status, body) = env
        .submit(
            &bob,
            json!({"statement": "SELECT 1 AS one", "wait_timeout": "0s"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"]["state"], "PENDING", "{body}");
    let path = format!(
        "/api/2.0/sql/statements/{}",
        body["statement_id"].as_str().unwrap()
    );
    assert_eq!(env.get(&bob, &path).await.1["status"]["state"], "PENDING");
    assert_eq!(env.get(&bob, &path).await.1["status"]["state"], "PENDING");
    // Poll until a deadline, not a count: a loaded 2-core machine is slow.
    let mut done = Value::Null;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        let (_, polled) = env.get(&bob, &path).await;
        if polled["status"]["state"] != "RUNNING" {
            done = polled;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(done["status"]["state"], "SUCCEEDED", "{done}");
    assert_eq!(done["result"]["data_array"], json!([["1"]]));

    // Explicit cancel of a statement that is still pending.
    env.state
        .faults
        .add(Endpoint::DatabricksSubmit, Fault::Pending { polls: 5 });
    let (_, body) = env
        .submit(&bob, json!({"statement": "SELECT 2", "wait_timeout": "0s"}))
        .await;
    let id = body["statement_id"].as_str().unwrap().to_string();
    assert_eq!(env.cancel(&bob, &id).await, StatusCode::OK);
    let (_, polled) = env
        .get(&bob, &format!("/api/2.0/sql/statements/{id}"))
        .await;
    assert_eq!(polled["status"]["state"], "CANCELED", "{polled}");
    assert_eq!(env.state.counter(Counter::StatementsCancelled), 1);

    // on_wait_timeout=CANCEL cancels a statement that is not done when the wait ends.
    env.state
        .faults
        .add(Endpoint::DatabricksSubmit, Fault::Pending { polls: 5 });
    let (_, body) = env
        .submit(
            &bob,
            json!({"statement": "SELECT 3", "wait_timeout": "5s", "on_wait_timeout": "CANCEL"}),
        )
        .await;
    assert_eq!(body["status"]["state"], "CANCELED", "{body}");
    assert_eq!(env.state.counter(Counter::StatementsCancelled), 2);

    let (status, body) = env.get(&bob, "/api/2.0/sql/statements/unknown").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error_code"], "RESOURCE_DOES_NOT_EXIST");
}

#[tokio::test]
async fn expired_credentials_and_revoked_groups_are_refused() {
    let env = start().await;
    let bob = env.token_for("bob@example.com", "6001").await;
    assert_eq!(
        env.sql(&bob, "SELECT 1").await["status"]["state"],
        "SUCCEEDED"
    );
    env.state.expire_credentials();
    let (status, body) = env.submit(&bob, json!({"statement": "SELECT 1"})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error_code"], "UNAUTHENTICATED");

    let fresh = env.token(Some("6001")).await;
    assert_eq!(
        env.sql(&fresh, "SELECT 1").await["status"]["state"],
        "SUCCEEDED"
    );
    env.state.engine.expire_all_roles();
    let (status, body) = env.submit(&fresh, json!({"statement": "SELECT 1"})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error_code"], "PERMISSION_DENIED");
    // And the group can no longer be assumed.
    let creds = env.state.creds.clone();
    let (status, body) = env
        .token_request(
            &creds.databricks_client_id,
            &creds.databricks_client_secret,
            &[
                ("grant_type", "client_credentials"),
                ("scope", "all-apis"),
                ("assume_group", "6001"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_request");
}

#[tokio::test]
async fn fault_knobs_fire_on_the_databricks_endpoints() {
    let env = start().await;
    let bob = env.token_for("bob@example.com", "7001").await;

    env.state.faults.add(
        Endpoint::DatabricksSubmit,
        Fault::Status {
            status: 429,
            retry_after: Some(3),
            times: 1,
        },
    );
    let resp = env
        .http
        .post(format!("{}/api/2.0/sql/statements", env.url))
        .bearer_auth(&bob)
        .json(&json!({"statement": "SELECT 1", "warehouse_id": env.state.creds.warehouse_id}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(resp.headers()["retry-after"], "3");
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error_code"],
        "REQUEST_LIMIT_EXCEEDED"
    );
    let ok = env.sql(&bob, "SELECT 1").await;
    let path = format!(
        "/api/2.0/sql/statements/{}",
        ok["statement_id"].as_str().unwrap()
    );

    env.state.faults.add(
        Endpoint::DatabricksStatus,
        Fault::Status {
            status: 503,
            retry_after: None,
            times: 1,
        },
    );
    let (status, body) = env.get(&bob, &path).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["error_code"], "TEMPORARILY_UNAVAILABLE");
    assert_eq!(env.get(&bob, &path).await.0, StatusCode::OK);

    env.state.faults.add(
        Endpoint::DatabricksChunk,
        Fault::Status {
            status: 500,
            retry_after: None,
            times: 1,
        },
    );
    let (status, _) = env.get(&bob, &format!("{path}/result/chunks/0")).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    let (status, chunk) = env.get(&bob, &format!("{path}/result/chunks/0")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(chunk["data_array"], json!([["1"]]));

    env.state.faults.add(
        Endpoint::DatabricksCancel,
        Fault::Status {
            status: 503,
            retry_after: None,
            times: 1,
        },
    );
    let id = ok["statement_id"].as_str().unwrap();
    assert_eq!(env.cancel(&bob, id).await, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(env.cancel(&bob, id).await, StatusCode::OK);

    env.state.faults.add(
        Endpoint::DatabricksToken,
        Fault::Status {
            status: 503,
            retry_after: Some(1),
            times: 1,
        },
    );
    let creds = env.state.creds.clone();
    let (status, body) = env
        .token_request(
            &creds.databricks_client_id,
            &creds.databricks_client_secret,
            &[("grant_type", "client_credentials"), ("scope", "all-apis")],
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body["error"].is_string());

    env.state.faults.add(
        Endpoint::DatabricksToken,
        Fault::ConnectionReset { times: 1 },
    );
    let reset = env
        .http
        .post(format!("{}/oidc/v1/token", env.url))
        .basic_auth(
            &creds.databricks_client_id,
            Some(&creds.databricks_client_secret),
        )
        .form(&[("grant_type", "client_credentials"), ("scope", "all-apis")])
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
        Endpoint::DatabricksStatus,
        Fault::Latency(Duration::from_secs(2)),
    );
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let slow = impatient
        .get(format!("{}{path}", env.url))
        .bearer_auth(&bob)
        .send()
        .await;
    assert!(
        slow.is_err_and(|e| e.is_timeout()),
        "latency holds the answer back"
    );
    env.state.faults.clear();

    assert_eq!(env.state.count(Endpoint::DatabricksChunk), 2);
    assert_eq!(env.state.count(Endpoint::DatabricksCancel), 2);
    assert!(env.state.count(Endpoint::DatabricksToken) >= 3);
}

/// The `ServiceErrorCode` values of databricks-sdk-go `service/sql/model.go`.
const SERVICE_ERROR_CODES: [&str; 14] = [
    "ABORTED",
    "ALREADY_EXISTS",
    "BAD_REQUEST",
    "CANCELLED",
    "DEADLINE_EXCEEDED",
    "INTERNAL_ERROR",
    "IO_ERROR",
    "NOT_FOUND",
    "RESOURCE_EXHAUSTED",
    "SERVICE_UNDER_MAINTENANCE",
    "TEMPORARILY_UNAVAILABLE",
    "UNAUTHENTICATED",
    "UNKNOWN",
    "WORKSPACE_TEMPORARILY_UNAVAILABLE",
];

#[tokio::test]
async fn statement_error_codes_come_from_the_service_error_code_enum() {
    let env = start().await;
    let bob = env.token_for("bob@example.com", "7001").await;
    for sql in [
        "DELETE FROM main.sales.orders",
        "SELECT * FROM main.hr.nope",
        "SELEC 1",
    ] {
        let body = env.sql(&bob, sql).await;
        assert_eq!(body["status"]["state"], "FAILED", "{sql}: {body}");
        let code = body["status"]["error"]["error_code"].as_str().unwrap();
        assert!(SERVICE_ERROR_CODES.contains(&code), "{sql}: {code}");
    }
    let denied = env.sql(&bob, "DELETE FROM main.sales.orders").await;
    assert_eq!(denied["status"]["error"]["error_code"], "BAD_REQUEST");
    assert!(
        denied["status"]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("INSUFFICIENT_PERMISSIONS"),
        "{denied}"
    );
}

#[tokio::test]
async fn positional_parameters_are_refused_and_named_ones_work() {
    let env = start().await;
    let bob = env.token_for("bob@example.com", "7002").await;
    let (status, body) = env
        .submit(
            &bob,
            json!({"statement": "SELECT ? AS x", "wait_timeout": "30s",
                   "parameters": [{"value": "1", "type": "INT"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error_code"], "INVALID_PARAMETER_VALUE");
    assert!(
        body["message"].as_str().unwrap().contains("positional"),
        "{body}"
    );
    let (status, body) = env
        .submit(
            &bob,
            json!({"statement": "SELECT :x AS x", "wait_timeout": "30s",
                   "parameters": [{"name": "x", "value": "41", "type": "INT"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["result"]["data_array"], json!([["41"]]), "{body}");
    assert_eq!(
        env.state.executed().len(),
        1,
        "the refused submit ran nothing"
    );
}

#[tokio::test]
async fn zero_wait_answers_pending_without_a_result() {
    let env = start().await;
    let bob = env.token_for("bob@example.com", "7003").await;
    let (status, body) = env
        .submit(
            &bob,
            json!({"statement": "SELECT 1 AS one", "wait_timeout": "0s"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"]["state"], "PENDING", "{body}");
    assert!(
        body.get("manifest").is_none() && body.get("result").is_none(),
        "{body}"
    );
    // Even once the statement finished, a 0s submit never carries the result.
    common_eventually(|| env.state.executed().len() == 1).await;
    let (_, again) = env
        .submit(
            &bob,
            json!({"statement": "SELECT 2 AS two", "wait_timeout": "0s"}),
        )
        .await;
    assert_eq!(again["status"]["state"], "PENDING", "{again}");
}

#[tokio::test]
async fn answers_leave_out_default_values_and_inline_byte_counts() {
    let env = start().await;
    let bob = env.token_for("bob@example.com", "7004").await;
    let body = env
        .sql(
            &bob,
            "SELECT order_id FROM main.sales.orders ORDER BY order_id",
        )
        .await;
    assert_eq!(body["status"]["state"], "SUCCEEDED", "{body}");
    let manifest = &body["manifest"];
    assert!(manifest.get("truncated").is_none(), "{manifest}");
    let chunk0 = &manifest["chunks"][0];
    assert!(chunk0.get("byte_count").is_none(), "{chunk0}");
    assert!(chunk0.get("chunk_index").is_none(), "{chunk0}");
    assert!(chunk0.get("row_offset").is_none(), "{chunk0}");
    assert!(body["result"].get("chunk_index").is_none(), "{body}");
    assert_eq!(body["result"]["data_array"][0], json!(["1"]));
    let (status, _) = env
        .submit(
            &bob,
            json!({"statement": "SELECT 1", "query_tags": [{"key": ""}]}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

async fn common_eventually(mut cond: impl FnMut() -> bool) {
    for _ in 0..1500 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("condition did not hold within 30 s");
}
