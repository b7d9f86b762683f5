//! The direct path of sections 2 and 4: the same statement the server would send,
//! posted straight to one emulator with a plain HTTP client and a credential
//! obtained once (a PAT restricted to a bound role, or an OAuth token assuming a
//! bound group), so that "server / direct" isolates the server's own cost.

use super::CALL_TIMEOUT;
use anyhow::{Result, anyhow, bail};
use immuta_mcp::result::Platform;
use immuta_mcp::sandbox::Sandbox;
use serde_json::{Value, json};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A plain HTTP client that sends statements straight to one emulator, as the tests do.
pub(crate) enum Direct {
    Snowflake {
        http: reqwest::Client,
        url: String,
        pat: String,
        role: String,
    },
    Databricks {
        http: reqwest::Client,
        url: String,
        token: String,
        warehouse_id: String,
    },
}

fn plain_http() -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder().timeout(CALL_TIMEOUT).build()?)
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Direct {
    /// Bind a role for `user` in the engine and mint a PAT restricted to it with the agent's key-pair JWT.
    pub(crate) async fn snowflake(sandbox: &Sandbox, user: &str) -> Result<Direct> {
        let creds = sandbox.credentials();
        let role = format!(
            "IMMUTA_OBO_BENCH_{}",
            uuid::Uuid::new_v4().simple().to_string()[..8].to_uppercase()
        );
        sandbox.state.engine.bind_role(
            Platform::Snowflake,
            &role,
            user,
            SystemTime::now() + Duration::from_secs(3600),
        )?;
        let subject = format!("{}.{}", creds.snowflake_account, creds.snowflake_user);
        let claims = json!({
            "iss": format!("{subject}.{}", creds.snowflake_public_key_fingerprint),
            "sub": subject,
            "iat": now_secs(),
            "exp": now_secs() + 3540,
        });
        let jwt = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_rsa_pem(creds.snowflake_private_key_pem.as_bytes())?,
        )?;
        // HTTPS with the sandbox CA and a User-Agent, as the SQL API requires.
        let http = sandbox
            .direct_client_builder()
            .timeout(CALL_TIMEOUT)
            .build()?;
        let url = format!("{}/api/v2/statements", sandbox.snowflake_url);
        let name = format!("BENCH_{}", &role[17..]);
        let resp = http
            .post(&url)
            .bearer_auth(&jwt)
            .header("X-Snowflake-Authorization-Token-Type", "KEYPAIR_JWT")
            .json(&json!({ "statement": format!(
                "ALTER USER ADD PROGRAMMATIC ACCESS TOKEN {name} ROLE_RESTRICTION = '{role}' MINS_TO_EXPIRY = 60"
            ) }))
            .send()
            .await?;
        let status = resp.status();
        let body: Value = resp.json().await?;
        let pat = body["data"][0][1]
            .as_str()
            .ok_or_else(|| anyhow!("minting a PAT answered {status}: {body}"))?
            .to_string();
        Ok(Direct::Snowflake {
            http,
            url,
            pat,
            role,
        })
    }

    /// Bind a group for `user` in the engine and get an OAuth token assuming it.
    pub(crate) async fn databricks(sandbox: &Sandbox, user: &str) -> Result<Direct> {
        let creds = sandbox.credentials();
        let group = format!("77{}", now_secs() % 1_000_000);
        sandbox.state.engine.bind_role(
            Platform::Databricks,
            &group,
            user,
            SystemTime::now() + Duration::from_secs(3600),
        )?;
        let http = plain_http()?;
        let resp = http
            .post(format!("{}/oidc/v1/token", sandbox.databricks_url))
            .basic_auth(
                &creds.databricks_client_id,
                Some(&creds.databricks_client_secret),
            )
            .form(&[
                ("grant_type", "client_credentials"),
                ("scope", "all-apis"),
                ("assume_group", group.as_str()),
            ])
            .send()
            .await?;
        let status = resp.status();
        let body: Value = resp.json().await?;
        let token = body["access_token"]
            .as_str()
            .ok_or_else(|| anyhow!("token request answered {status}: {body}"))?
            .to_string();
        Ok(Direct::Databricks {
            http,
            url: format!("{}/api/2.0/sql/statements", sandbox.databricks_url),
            token,
            warehouse_id: creds.warehouse_id.clone(),
        })
    }

    /// Send `sql` with the same body the production client sends; wait for the first answer with rows.
    pub(crate) async fn run(&self, sql: &str, max_rows: usize) -> Result<Value> {
        match self {
            Direct::Snowflake {
                http,
                url,
                pat,
                role,
            } => {
                let request_id = uuid::Uuid::new_v4().to_string();
                let body = json!({
                    "statement": sql,
                    "timeout": 300,
                    "database": "SALES",
                    "schema": "PUBLIC",
                    "warehouse": "COMPUTE_WH",
                    "role": role,
                    "parameters": { "QUERY_TAG": "{\"app\":\"loadgen\"}" },
                });
                let mut resp = http
                    .post(url)
                    .query(&[("requestId", request_id.as_str())])
                    .bearer_auth(pat)
                    .header(
                        "X-Snowflake-Authorization-Token-Type",
                        "PROGRAMMATIC_ACCESS_TOKEN",
                    )
                    .header("Accept", "application/json")
                    .json(&body)
                    .send()
                    .await?;
                for _ in 0..10_000 {
                    let status = resp.status();
                    let answer: Value = resp.json().await?;
                    match status.as_u16() {
                        200 => return Ok(answer),
                        202 => {
                            tokio::time::sleep(Duration::from_millis(5)).await;
                            let handle = answer["statementHandle"].as_str().unwrap_or_default();
                            resp = http
                                .get(format!("{url}/{handle}"))
                                .bearer_auth(pat)
                                .header(
                                    "X-Snowflake-Authorization-Token-Type",
                                    "PROGRAMMATIC_ACCESS_TOKEN",
                                )
                                .send()
                                .await?;
                        }
                        _ => bail!("Snowflake emulator answered {status}: {answer}"),
                    }
                }
                bail!("Snowflake statement still running after 10,000 polls")
            }
            Direct::Databricks {
                http,
                url,
                token,
                warehouse_id,
            } => {
                let body = json!({
                    "warehouse_id": warehouse_id,
                    "statement": sql,
                    "catalog": "main",
                    "wait_timeout": "10s",
                    "on_wait_timeout": "CONTINUE",
                    "disposition": "INLINE",
                    "format": "JSON_ARRAY",
                    "row_limit": max_rows + 1,
                    "byte_limit": 16 * 1024 * 1024,
                });
                let mut answer: Value = http
                    .post(url)
                    .bearer_auth(token)
                    .json(&body)
                    .send()
                    .await?
                    .json()
                    .await?;
                for _ in 0..10_000 {
                    match answer["status"]["state"].as_str() {
                        Some("SUCCEEDED") => return Ok(answer),
                        Some("PENDING") | Some("RUNNING") => {
                            tokio::time::sleep(Duration::from_millis(5)).await;
                            let id = answer["statement_id"].as_str().unwrap_or_default();
                            answer = http
                                .get(format!("{url}/{id}"))
                                .bearer_auth(token)
                                .send()
                                .await?
                                .json()
                                .await?;
                        }
                        _ => bail!("Databricks emulator answered {answer}"),
                    }
                }
                bail!("Databricks statement still running after 10,000 polls")
            }
        }
    }
}
