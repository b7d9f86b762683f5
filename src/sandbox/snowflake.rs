//! Emulator of Snowflake's SQL API v2 (`/api/v2/statements`) for the sandbox.
//!
//! Two kinds of caller, as on a real account:
//! - the agent user with a **key-pair JWT** (`X-Snowflake-Authorization-Token-Type:
//!   KEYPAIR_JWT`), which may only manage programmatic access tokens
//!   (`ALTER USER ... ADD|REMOVE PROGRAMMATIC ACCESS TOKEN`, `SHOW USER
//!   PROGRAMMATIC ACCESS TOKENS`); the agent's own role has no data grants, so
//!   any other SQL fails with "does not exist or not authorized";
//! - a **programmatic access token** (`PROGRAMMATIC_ACCESS_TOKEN`), whose SQL
//!   runs in the engine as the token's role restriction and nothing else.
//!
//! Statements run on a spawned task (the engine call on the blocking pool) and
//! are kept by handle. The submit answer waits up to
//! `settings.snowflake_sync_wait`: 200 with the result set (`jsonv2`,
//! partition 0 inline), 422 with the error, or 202 "Asynchronous execution in
//! progress" when the statement is still running, `async=true` was asked, or
//! the `Pending` fault holds it for N polls. `GET /api/v2/statements/{handle}`
//! polls, `?partition=N` returns `{data}` of one partition,
//! `POST .../cancel` cancels (later polls answer 422 `000604`). A resubmit with
//! the same `requestId` and `retry=true` returns the existing statement. Every
//! handler first passes the fault injector.
//!
//! Statement error codes: `002003`/`42S02` object does not exist or not
//! authorized, `001003`/`42000` syntax error, `003001`/`42501` insufficient
//! privileges, `002049` bind error, `000630`/`57014` timeout, `000604`/`57014`
//! canceled, `390189`/`08004` role not allowed for the token, `394100`/`54000`
//! per-user token limit, `100000`/`22000` execution error. Unknown handle:
//! 404 `000709`. Authentication codes: see [`auth`].
//!
//! Refused or answered as the SQL API does (sqlapi.yaml): a request without
//! `User-Agent` is 400 `391903`; a statement past its `timeout` is HTTP 408
//! with a QueryStatus body (`000630`), on submit and on later polls; the
//! body's `database`, `schema` and `role` are case-sensitive (`sales` does
//! not find `SALES`); `SHOW USER PROGRAMMATIC ACCESS TOKENS` has every
//! documented column with `expires_at`/`created_on` typed `timestamp_ltz`.
//! With `[sandbox] pat_expiry = "days_only"`, `MINS_TO_EXPIRY` is a SQL
//! compilation error (`001003`/`42000`). The sandbox serves this router over
//! HTTPS only (see [`super::tls`]).
//!
//! The agent may also run the statements `immuta-mcp check` reads its
//! prerequisites with (`DESC USER`, `SHOW PARAMETERS ... IN USER`, `SHOW GRANTS
//! ON USER`, `SHOW GRANTS TO ROLE`; see [`doctor_sql`]), answered from the
//! fixture's `[agent]` table ([`super::prerequisites`]), which can also make the
//! registered key another one (every key-pair JWT `390144`) and take away the
//! network policy or the `MODIFY PROGRAMMATIC AUTHENTICATION METHODS` grant
//! (`ADD PROGRAMMATIC ACCESS TOKEN` then fails with `003001`).

mod auth;
mod bindings;
mod doctor_sql;
mod pat_sql;

use crate::result::Platform;
use crate::sandbox::engine::{
    AGENT_IDENTITY, EngineColumn, EngineError, EngineResult, EngineValue, Namespace, Session,
};
use crate::sandbox::faults::{Endpoint, on};
use crate::sandbox::state::{AGENT_SNOWFLAKE_ROLE, Counter, ExecutedStatement, SandboxState};
use crate::sandbox::types::{SnowflakeEncoded, encode_snowflake};
use crate::sandbox::variants::PatExpiryVariant;
use auth::{AddPatOutcome, AuthError, KeyPairVerifier, NewPat, PatRegistry};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use pat_sql::{Expiry, PatStatement};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;

/// Header naming the kind of bearer token.
const TOKEN_TYPE_HEADER: &str = "x-snowflake-authorization-token-type";
const SUCCESS_CODE: &str = "090001";
/// Statement timeout (answered as HTTP 408).
const CODE_TIMEOUT: &str = "000630";
const SUCCESS_MESSAGE: &str = "Statement executed successfully.";
const ASYNC_CODE: &str = "333334";
const ASYNC_MESSAGE: &str = "Asynchronous execution in progress. Use provided query id to perform query monitoring and management.";
/// Default token lifetime when neither DAYS_TO_EXPIRY nor MINS_TO_EXPIRY is given (Snowflake: 15 days).
const DEFAULT_PAT_DAYS: u64 = 15;

/// The Snowflake SQL API emulator's routes, bound to the shared sandbox state.
pub fn router(state: Arc<SandboxState>) -> Router {
    let s = &state;
    let routes = Router::new()
        .route(
            "/api/v2/statements",
            on(s, Endpoint::SnowflakeSubmit, post(submit)),
        )
        .route(
            "/api/v2/statements/{handle}",
            on(s, Endpoint::SnowflakeStatus, get(status)),
        )
        .route(
            "/api/v2/statements/{handle}/cancel",
            on(s, Endpoint::SnowflakeCancel, post(cancel)),
        );
    let verifier = KeyPairVerifier::new(&state.creds, state.settings.max_jwt_lifetime);
    let emulator = Arc::new(Emulator {
        expired_jwts: AtomicU32::new(state.settings.snowflake_expired_jwts),
        state,
        verifier,
        pats: PatRegistry::new(),
        statements: Mutex::new(HashMap::new()),
        request_ids: Mutex::new(HashMap::new()),
    });
    routes.fallback(not_found).with_state(emulator)
}

struct Emulator {
    state: Arc<SandboxState>,
    verifier: KeyPairVerifier,
    pats: PatRegistry,
    statements: Mutex<HashMap<String, Arc<Statement>>>,
    /// (owner key, requestId) → statement handle, for `retry=true`.
    request_ids: Mutex<HashMap<(String, String), String>>,
    /// Key-pair JWT requests still to answer as expired
    /// (`SandboxSettings::snowflake_expired_jwts`).
    expired_jwts: AtomicU32,
}

/// Who a PAT's statement runs as: the vended role, the end user it was
/// vended for, and the agent user owning the PAT (its `CURRENT_USER()`).
struct RunAs {
    role: String,
    user: String,
    agent: String,
}

/// Who is calling.
#[derive(Debug, Clone)]
enum Principal {
    /// An agent user (upper case), authenticated with a key-pair JWT.
    Agent(String),
    /// A programmatic access token: SQL runs as its role for `user` (the end user the role was vended for).
    Pat {
        token_name: String,
        role: String,
        user: String,
        /// The agent user owning the PAT (its `CURRENT_USER()`).
        agent: String,
    },
}

impl Principal {
    /// Statements are visible only to the principal that submitted them.
    fn owner_key(&self) -> String {
        match self {
            Principal::Agent(agent) => format!("agent:{agent}"),
            Principal::Pat { role, .. } => format!("role:{role}"),
        }
    }
}

/// A statement error: answered as 422 `{code, sqlState, message, statementHandle}`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SqlError {
    code: &'static str,
    sql_state: &'static str,
    message: String,
}

impl SqlError {
    fn new(code: &'static str, sql_state: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            sql_state,
            message: message.into(),
        }
    }

    fn not_authorized(object: &str) -> Self {
        Self::new(
            "002003",
            "42S02",
            format!("SQL compilation error:\nObject '{object}' does not exist or not authorized."),
        )
    }

    fn timeout(seconds: u64) -> Self {
        Self::new(
            CODE_TIMEOUT,
            "57014",
            format!(
                "Statement reached its statement or warehouse timeout of {seconds} second(s) and was canceled."
            ),
        )
    }

    fn canceled() -> Self {
        Self::new("000604", "57014", "SQL execution canceled")
    }

    fn from_engine(err: EngineError) -> Self {
        match err {
            EngineError::NotAuthorized { object } => Self::not_authorized(&object),
            EngineError::Syntax(m) => Self::new(
                "001003",
                "42000",
                if m.starts_with("SQL compilation error") {
                    m
                } else {
                    format!("SQL compilation error:\n{m}")
                },
            ),
            EngineError::Unsupported(m) => Self::new("003001", "42501", m),
            EngineError::UnknownRole(role) => Self::new(
                "390189",
                "08004",
                format!(
                    "Role '{role}' specified in the connect string is not granted to this user. Contact your local system administrator, or attempt to login with another role, e.g. PUBLIC."
                ),
            ),
            other => Self::new("100000", "22000", other.to_string()),
        }
    }
}

/// A finished result set, encoded once and cut into partitions.
struct ResultData {
    encoded: SnowflakeEncoded,
    /// One per partition (at least one, empty for an empty result).
    partitions: Vec<Partition>,
}

/// A `[start, end)` row range and the bytes of its JSON rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Partition {
    start: usize,
    end: usize,
    uncompressed_size: usize,
}

impl ResultData {
    /// Cut into partitions of `partition_rows`; sizes are computed once, here (on the blocking pool).
    fn new(encoded: SnowflakeEncoded, partition_rows: usize) -> Self {
        let total = encoded.rows.len();
        let size = partition_rows.max(1);
        let mut partitions: Vec<Partition> = (0..total)
            .step_by(size)
            .map(|start| {
                let end = (start + size).min(total);
                Partition {
                    start,
                    end,
                    uncompressed_size: json_rows_size(&encoded.rows[start..end]),
                }
            })
            .collect();
        if partitions.is_empty() {
            partitions.push(Partition {
                start: 0,
                end: 0,
                uncompressed_size: 2,
            });
        }
        Self {
            encoded,
            partitions,
        }
    }

    fn partition_data(&self, index: usize, nullable: bool) -> Value {
        let Partition { start, end, .. } = self.partitions[index];
        Value::Array(
            self.encoded.rows[start..end]
                .iter()
                .map(|row| {
                    Value::Array(
                        row.iter()
                            .map(|cell| match cell {
                                Some(s) => Value::String(s.clone()),
                                None if nullable => Value::Null,
                                None => Value::String("null".to_string()),
                            })
                            .collect(),
                    )
                })
                .collect(),
        )
    }
}

/// Bytes of `rows` as a JSON array of arrays of strings/null (computed exactly).
fn json_rows_size(rows: &[Vec<Option<String>>]) -> usize {
    let cells: usize = rows
        .iter()
        .map(|row| {
            row.iter()
                .map(|cell| match cell {
                    Some(s) => serde_json::to_string(s).map_or(s.len() + 2, |j| j.len()),
                    None => 4,
                })
                .sum::<usize>()
                + row.len().saturating_sub(1)
                + 2
        })
        .sum();
    cells + rows.len().saturating_sub(1) + 2
}

#[derive(Clone)]
enum Outcome {
    Running,
    Succeeded(Arc<ResultData>),
    Failed(SqlError),
}

struct Statement {
    handle: String,
    owner: String,
    created_on: u64,
    request_id: Option<String>,
    outcome: watch::Sender<Outcome>,
    /// Polls that still answer 202 because of a `Pending` fault.
    pending_polls: AtomicU32,
}

impl Statement {
    fn status_url(&self) -> String {
        match &self.request_id {
            Some(id) => format!("/api/v2/statements/{}?requestId={id}", self.handle),
            None => format!("/api/v2/statements/{}", self.handle),
        }
    }

    /// Set the outcome unless the statement already finished (a cancel wins over a late result).
    fn finish(&self, outcome: Outcome) -> bool {
        super::state::settle_once(&self.outcome, outcome, |o| matches!(o, Outcome::Running))
    }

    fn current(&self) -> Outcome {
        self.outcome.borrow().clone()
    }
}

#[derive(Debug, Default, Deserialize)]
struct SubmitQuery {
    #[serde(rename = "requestId")]
    request_id: Option<String>,
    retry: Option<String>,
    #[serde(rename = "async")]
    run_async: Option<String>,
    nullable: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct StatusQuery {
    partition: Option<String>,
    nullable: Option<String>,
}

/// The request body; `warehouse` and `parameters` are accepted and have no effect in the sandbox.
#[derive(Debug, Default, Deserialize)]
struct SubmitBody {
    statement: Option<String>,
    /// Seconds; 0 or absent = no limit.
    timeout: Option<u64>,
    database: Option<String>,
    schema: Option<String>,
    role: Option<String>,
    bindings: Option<Map<String, Value>>,
}

fn flag(value: &Option<String>, default: bool) -> bool {
    match value.as_deref().map(str::to_ascii_lowercase).as_deref() {
        Some("true") | Some("1") => true,
        Some("false") | Some("0") => false,
        _ => default,
    }
}

fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn json_response(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn auth_failure(err: AuthError) -> Response {
    json_response(
        StatusCode::UNAUTHORIZED,
        json!({"code": err.code, "message": err.message}),
    )
}

/// sqlapi.yaml marks `User-Agent` `required: true` on every operation; a
/// request without one is refused (code 391903, as reported by users).
fn missing_user_agent(headers: &HeaderMap) -> Option<Response> {
    let present = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| !v.trim().is_empty());
    (!present).then(|| {
        json_response(
            StatusCode::BAD_REQUEST,
            json!({"code": "391903", "message": "User-Agent header is missing or empty. The User-Agent header is required."}),
        )
    })
}

fn bad_request(message: impl Into<String>) -> Response {
    json_response(
        StatusCode::BAD_REQUEST,
        json!({"code": "391902", "message": message.into()}),
    )
}

async fn not_found() -> Response {
    json_response(
        StatusCode::NOT_FOUND,
        json!({"code": "390404", "message": "Not found: the Snowflake SQL API emulator serves /api/v2/statements."}),
    )
}

impl Emulator {
    /// Identify the caller from `Authorization` and the token-type header.
    fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, AuthError> {
        let token = super::state::bearer_token(headers)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                AuthError::new(
                    auth::CODE_NO_AUTH,
                    "Authorization header not found in the request data (expected 'Authorization: Bearer <token>').",
                )
            })?;
        let token_type = headers
            .get(TOKEN_TYPE_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_ascii_uppercase);
        let token_type = token_type.unwrap_or_else(|| {
            // Without the header, tell the two kinds apart by shape.
            if token.split('.').count() == 3 {
                "KEYPAIR_JWT".to_string()
            } else {
                "PROGRAMMATIC_ACCESS_TOKEN".to_string()
            }
        });
        match token_type.as_str() {
            "KEYPAIR_JWT" => {
                if self
                    .expired_jwts
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok()
                {
                    return Err(AuthError::new(
                        auth::CODE_JWT_EXPIRED,
                        "Keypair access token expired.",
                    ));
                }
                if self.state.settings.prerequisites.snowflake_public_key
                    != crate::sandbox::prerequisites::RegisteredKey::Configured
                {
                    // The user's registered key is not the one the JWT was signed with.
                    return Err(AuthError::new(
                        auth::CODE_JWT_INVALID,
                        "JWT token is invalid.",
                    ));
                }
                self.verifier.verify(token).map(Principal::Agent)
            }
            "PROGRAMMATIC_ACCESS_TOKEN" => self.authenticate_pat(token),
            other => Err(AuthError::new(
                auth::CODE_NO_AUTH,
                format!(
                    "Unsupported authorization token type '{other}': use KEYPAIR_JWT or PROGRAMMATIC_ACCESS_TOKEN."
                ),
            )),
        }
    }

    fn authenticate_pat(&self, secret: &str) -> Result<Principal, AuthError> {
        let pat = self.pats.find_by_secret(secret).ok_or_else(|| {
            AuthError::new(
                auth::CODE_PAT_INVALID,
                "Invalid OAuth access token. [The programmatic access token is not valid or has been removed.]",
            )
        })?;
        if pat.epoch < self.state.credential_epoch() || SystemTime::now() >= pat.expires_at {
            return Err(AuthError::new(
                auth::CODE_PAT_EXPIRED,
                format!(
                    "OAuth access token expired. [Programmatic access token '{}' has expired.]",
                    pat.name
                ),
            ));
        }
        let user = self
            .state
            .engine
            .role_user(Platform::Snowflake, &pat.role_restriction)
            .ok_or_else(|| {
                AuthError::new(
                    auth::CODE_PAT_INVALID,
                    format!(
                        "Invalid OAuth access token. [Role '{}' restricting programmatic access token '{}' is no longer granted to user '{}'.]",
                        pat.role_restriction, pat.name, pat.user
                    ),
                )
            })?;
        if self.state.settings.ignore_obo_restriction {
            // Fault: the restriction is ignored; the PAT acts as the agent user's own role.
            return Ok(Principal::Pat {
                token_name: pat.name,
                role: AGENT_SNOWFLAKE_ROLE.to_string(),
                user: AGENT_IDENTITY.to_string(),
                agent: pat.user,
            });
        }
        Ok(Principal::Pat {
            token_name: pat.name,
            role: pat.role_restriction,
            user,
            agent: pat.user,
        })
    }

    fn new_statement(&self, owner: String, request_id: Option<String>) -> Arc<Statement> {
        let (tx, _rx) = watch::channel(Outcome::Running);
        let statement = Arc::new(Statement {
            handle: uuid::Uuid::new_v4().to_string(),
            owner,
            created_on: now_millis(),
            request_id,
            outcome: tx,
            pending_polls: AtomicU32::new(0),
        });
        let mut statements = self.statements.lock().expect("statements lock");
        evict_oldest_finished(&mut statements);
        statements.insert(statement.handle.clone(), statement.clone());
        statement
    }

    fn lookup(&self, handle: &str, principal: &Principal) -> Option<Arc<Statement>> {
        let statements = self.statements.lock().expect("statements lock");
        statements
            .get(handle)
            .filter(|s| s.owner == principal.owner_key())
            .cloned()
    }

    /// Run the statement on the blocking pool; its outcome lands in `statement`.
    fn spawn_engine(
        self: &Arc<Self>,
        statement: Arc<Statement>,
        RunAs { role, user, agent }: RunAs,
        sql: String,
        namespace: Namespace,
        timeout: Option<Duration>,
    ) {
        self.state.record_executed(ExecutedStatement {
            platform: Platform::Snowflake,
            role: role.clone(),
            user,
            sql: sql.clone(),
            statement_id: statement.handle.clone(),
        });
        let engine = self.state.engine.clone();
        let partition_rows = self.state.settings.partition_rows;
        let delay = self.state.settings.snowflake_statement_delay;
        // A PAT session's CURRENT_USER() is the user owning the PAT: the agent.
        let session = Session {
            login_user: Some(agent),
            groups: Vec::new(),
        };
        tokio::spawn(async move {
            // A slow warehouse: the statement takes `delay` before it runs
            // (counted against its timeout, like real execution time).
            let work = async move {
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                tokio::task::spawn_blocking(move || {
                    let result = engine
                        .execute_as(Platform::Snowflake, &role, &sql, &namespace, &session)
                        .map_err(SqlError::from_engine)?;
                    encode_result(result, partition_rows)
                })
                .await
            };
            let outcome = match timeout {
                Some(limit) => match tokio::time::timeout(limit, work).await {
                    Ok(joined) => joined_outcome(joined),
                    Err(_) => Outcome::Failed(SqlError::timeout(limit.as_secs())),
                },
                None => joined_outcome(work.await),
            };
            statement.finish(outcome);
        });
    }

    /// Execute a token-management statement for the agent (synchronous, no engine).
    fn run_pat_statement(
        &self,
        agent: &str,
        statement: PatStatement,
    ) -> Result<ResultData, SqlError> {
        let agent = agent.to_ascii_uppercase();
        let check_user = |user: &Option<String>| match user {
            Some(u) if !u.eq_ignore_ascii_case(&agent) => Err(SqlError::new(
                "003001",
                "42501",
                format!(
                    "SQL access control error:\nInsufficient privileges to operate on user '{u}'."
                ),
            )),
            _ => Ok(()),
        };
        match statement {
            PatStatement::Add(add) => {
                check_user(&add.user)?;
                let prerequisites = &self.state.settings.prerequisites;
                if !prerequisites.snowflake_modify_pat_grant {
                    return Err(SqlError::new(
                        "003001",
                        "42501",
                        format!(
                            "SQL access control error:\nInsufficient privileges to operate on user '{agent}'."
                        ),
                    ));
                }
                if prerequisites.snowflake_network_policy.trim().is_empty() {
                    // Snowflake: a service user must be subject to a network policy to
                    // generate a programmatic access token ("Network policy
                    // requirements", programmatic-access-tokens). Wording not verified.
                    return Err(SqlError::new(
                        "003001",
                        "42501",
                        format!(
                            "SQL access control error:\nA network policy is required for user '{agent}' to add a programmatic access token."
                        ),
                    ));
                }
                let role = add.role_restriction.ok_or_else(|| {
                    SqlError::new(
                        "001003",
                        "42000",
                        format!("SQL compilation error:\nROLE_RESTRICTION is required when adding a programmatic access token for user '{agent}' (TYPE = SERVICE)."),
                    )
                })?;
                let role = self.live_role(&role).ok_or_else(|| {
                    SqlError::new(
                        "002003",
                        "02000",
                        format!("SQL compilation error:\nRole '{role}' does not exist or not authorized."),
                    )
                })?;
                let lifetime = match add.expiry {
                    Some(Expiry::Minutes(m)) => Duration::from_secs(m.saturating_mul(60)),
                    Some(Expiry::Days(d)) => Duration::from_secs(d.saturating_mul(86_400)),
                    None => Duration::from_secs(DEFAULT_PAT_DAYS * 86_400),
                };
                let outcome = self
                    .pats
                    .add(
                        NewPat {
                            user: agent.clone(),
                            name: add.name,
                            role_restriction: role,
                            lifetime,
                            comment: add.comment,
                            epoch: self.state.credential_epoch(),
                            if_not_exists: add.if_not_exists,
                        },
                        self.state.settings.pat_limit_per_user,
                    )
                    .map_err(|e| match e {
                        auth::AddPatError::AlreadyExists(_) => {
                            SqlError::new("002002", "42710", format!("SQL compilation error:\n{e}"))
                        }
                        auth::AddPatError::LimitReached { .. } => {
                            SqlError::new("394100", "54000", e.to_string())
                        }
                    })?;
                let (name, secret) = match outcome {
                    AddPatOutcome::Created { name, secret } => {
                        self.state.bump(Counter::PatsCreated);
                        self.state.record_issued_credential(&secret);
                        (name, Some(secret))
                    }
                    AddPatOutcome::Existed { name } => (name, None),
                };
                Ok(text_result(
                    &["token_name", "token_secret"],
                    vec![vec![Some(name), secret]],
                ))
            }
            PatStatement::Remove {
                user,
                if_exists,
                name,
            } => {
                check_user(&user)?;
                if self.pats.remove(&agent, &name) {
                    self.state.bump(Counter::PatsRemoved);
                } else if !if_exists {
                    return Err(SqlError::new(
                        "002003",
                        "02000",
                        format!(
                            "SQL compilation error:\nProgrammatic access token '{name}' does not exist or not authorized."
                        ),
                    ));
                }
                Ok(text_result(
                    &["status"],
                    vec![vec![Some(SUCCESS_MESSAGE.to_string())]],
                ))
            }
            PatStatement::Show { user } => {
                check_user(&user)?;
                let epoch = self.state.credential_epoch();
                let now = SystemTime::now();
                let rows = self
                    .pats
                    .list(&agent)
                    .into_iter()
                    .map(|t| {
                        let expired = t.epoch < epoch || now >= t.expires_at;
                        vec![
                            Some(t.name),
                            Some(t.user.clone()),
                            Some(t.role_restriction),
                            Some(iso(t.expires_at)),
                            Some(if expired { "EXPIRED" } else { "ACTIVE" }.to_string()),
                            t.comment,
                            Some(iso(t.created_at)),
                            Some(t.user),
                            None,
                        ]
                    })
                    .collect();
                // Every column of the SHOW reference page
                // (show-user-programmatic-access-tokens), the two timestamps
                // typed TIMESTAMP_LTZ: through the SQL API they arrive as
                // jsonv2 epoch-seconds text with a timestamp_ltz rowType.
                Ok(typed_result(
                    &[
                        ("name", "TEXT"),
                        ("user_name", "TEXT"),
                        ("role_restriction", "TEXT"),
                        ("expires_at", "TIMESTAMP_LTZ(3)"),
                        ("status", "TEXT"),
                        ("comment", "TEXT"),
                        ("created_on", "TIMESTAMP_LTZ(3)"),
                        ("created_by", "TEXT"),
                        ("mins_to_bypass_network_policy_requirement", "NUMBER(38,0)"),
                    ],
                    rows,
                ))
            }
        }
    }

    /// The engine's spelling of a live vended role (`'r'` in ROLE_RESTRICTION is an identifier: try it upper-cased too).
    fn live_role(&self, role: &str) -> Option<String> {
        let engine = &self.state.engine;
        [role.to_string(), role.to_ascii_uppercase()]
            .into_iter()
            .find(|r| engine.role_user(Platform::Snowflake, r).is_some())
    }

    fn respond(&self, statement: &Statement, nullable: bool) -> Response {
        if statement.pending_polls.load(Ordering::SeqCst) > 0 {
            return accepted(statement);
        }
        match statement.current() {
            Outcome::Running => accepted(statement),
            Outcome::Failed(err) => failed(statement, &err),
            Outcome::Succeeded(data) => {
                let partition_info: Vec<Value> = data
                    .partitions
                    .iter()
                    .map(|p| json!({"rowCount": p.end - p.start, "uncompressedSize": p.uncompressed_size}))
                    .collect();
                json_response(
                    StatusCode::OK,
                    json!({
                        "resultSetMetaData": {
                            "numRows": data.encoded.rows.len(),
                            "format": "jsonv2",
                            "partitionInfo": partition_info,
                            "rowType": data.encoded.row_type,
                        },
                        "data": data.partition_data(0, nullable),
                        "code": SUCCESS_CODE,
                        "statementStatusUrl": statement.status_url(),
                        "requestId": statement.request_id,
                        "sqlState": "00000",
                        "statementHandle": statement.handle,
                        "message": SUCCESS_MESSAGE,
                        "createdOn": statement.created_on,
                    }),
                )
            }
        }
    }
}

/// Statements kept for polling at most; beyond this the oldest finished one is forgotten.
const MAX_STATEMENTS: usize = 512;

fn evict_oldest_finished(statements: &mut HashMap<String, Arc<Statement>>) {
    if statements.len() < MAX_STATEMENTS {
        return;
    }
    let oldest = statements
        .values()
        .filter(|s| !matches!(*s.outcome.borrow(), Outcome::Running))
        .min_by_key(|s| s.created_on)
        .map(|s| s.handle.clone());
    if let Some(handle) = oldest {
        statements.remove(&handle);
    }
}

fn joined_outcome(joined: Result<Result<ResultData, SqlError>, tokio::task::JoinError>) -> Outcome {
    match joined {
        Ok(Ok(data)) => Outcome::Succeeded(Arc::new(data)),
        Ok(Err(err)) => Outcome::Failed(err),
        Err(join) => Outcome::Failed(SqlError::new(
            "100000",
            "XX000",
            format!("Internal error while executing the statement: {join}"),
        )),
    }
}

fn encode_result(result: EngineResult, partition_rows: usize) -> Result<ResultData, SqlError> {
    let encoded = encode_snowflake(&result.columns, &result.rows)
        .map_err(|e| SqlError::new("100038", "22018", e.to_string()))?;
    Ok(ResultData::new(encoded, partition_rows))
}

/// A result of text columns (token management answers).
fn text_result(names: &[&str], rows: Vec<Vec<Option<String>>>) -> ResultData {
    let columns: Vec<(&str, &str)> = names.iter().map(|n| (*n, "TEXT")).collect();
    typed_result(&columns, rows)
}

/// A result of `(name, declared type)` columns whose cells are given as
/// text (timestamps as RFC 3339, numbers as digits).
fn typed_result(columns: &[(&str, &str)], rows: Vec<Vec<Option<String>>>) -> ResultData {
    let columns: Vec<EngineColumn> = columns
        .iter()
        .map(|(name, declared)| EngineColumn {
            name: (*name).to_string(),
            declared_type: Some((*declared).to_string()),
            inferred_type: None,
            nullable: true,
        })
        .collect();
    let rows: Vec<Vec<EngineValue>> = rows
        .into_iter()
        .map(|r| {
            r.into_iter()
                .map(|c| c.map_or(EngineValue::Null, EngineValue::Text))
                .collect()
        })
        .collect();
    let encoded = encode_snowflake(&columns, &rows).expect("token answers encode as declared");
    ResultData::new(encoded, usize::MAX)
}

fn iso(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn accepted(statement: &Statement) -> Response {
    json_response(
        StatusCode::ACCEPTED,
        json!({
            "code": ASYNC_CODE,
            "message": ASYNC_MESSAGE,
            "statementHandle": statement.handle,
            "statementStatusUrl": statement.status_url(),
        }),
    )
}

fn failed(statement: &Statement, err: &SqlError) -> Response {
    // sqlapi.yaml: '408': "The execution of the statement exceeded the timeout
    // period. The execution of the statement was cancelled." (a QueryStatus
    // body), on submit and on later polls alike.
    let status = if err.code == CODE_TIMEOUT {
        StatusCode::REQUEST_TIMEOUT
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    json_response(
        status,
        json!({
            "code": err.code,
            "sqlState": err.sql_state,
            "message": err.message,
            "statementHandle": statement.handle,
            "statementStatusUrl": statement.status_url(),
            "createdOn": statement.created_on,
        }),
    )
}

/// The `days_only` variant: only the public `ALTER USER ... ADD PROGRAMMATIC
/// ACCESS TOKEN` syntax, where `MINS_TO_EXPIRY` is unknown, so it is a
/// syntax error worded as Snowflake words them ("syntax error line L at
/// position P unexpected '<token>'.", position 0-based within the line).
fn mins_to_expiry_refused(sql: &str) -> pat_sql::PatSqlError {
    let upper = sql.to_ascii_uppercase();
    let at = upper.find("MINS_TO_EXPIRY").unwrap_or(0);
    let line = sql[..at].matches('\n').count() + 1;
    let position = at - sql[..at].rfind('\n').map_or(0, |nl| nl + 1);
    pat_sql::PatSqlError {
        message: format!(
            "SQL compilation error:\nsyntax error line {line} at position {position} unexpected 'MINS_TO_EXPIRY'."
        ),
    }
}

/// The object the agent tried to read, for the "not authorized" wording.
fn first_object(sql: &str) -> Option<String> {
    use sqlparser::ast::ObjectNamePart;
    use sqlparser::dialect::SnowflakeDialect;
    let statements = sqlparser::parser::Parser::parse_sql(&SnowflakeDialect {}, sql).ok()?;
    let mut found = None;
    let _ = sqlparser::ast::visit_relations(&statements, |name| {
        if found.is_none() {
            found = Some(
                name.0
                    .iter()
                    .map(|part| match part {
                        ObjectNamePart::Identifier(ident) if ident.quote_style.is_some() => {
                            ident.value.clone()
                        }
                        ObjectNamePart::Identifier(ident) => ident.value.to_ascii_uppercase(),
                        other => other.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join("."),
            );
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    found
}

async fn submit(
    State(emu): State<Arc<Emulator>>,
    Query(query): Query<SubmitQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(resp) = missing_user_agent(&headers) {
        return resp;
    }
    let principal = match emu.authenticate(&headers) {
        Ok(p) => p,
        Err(e) => return auth_failure(e),
    };
    let nullable = flag(&query.nullable, true);
    let owner = principal.owner_key();
    if let Some(request_id) = &query.request_id
        && flag(&query.retry, false)
    {
        let existing = emu
            .request_ids
            .lock()
            .expect("request id lock")
            .get(&(owner.clone(), request_id.clone()))
            .cloned();
        if let Some(statement) = existing.and_then(|h| emu.lookup(&h, &principal)) {
            return emu.respond(&statement, nullable);
        }
    }
    let body: SubmitBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => return bad_request(format!("Unable to parse the request body as JSON: {e}")),
    };
    let Some(sql) = body.statement.filter(|s| !s.trim().is_empty()) else {
        return bad_request("The request body must contain a non-empty 'statement'.");
    };
    let statement = emu.new_statement(owner.clone(), query.request_id.clone());
    if let Some(request_id) = &query.request_id {
        emu.request_ids
            .lock()
            .expect("request id lock")
            .insert((owner, request_id.clone()), statement.handle.clone());
    }
    let pending = emu.state.faults.pending_polls(Endpoint::SnowflakeSubmit);
    statement.pending_polls.store(pending, Ordering::SeqCst);

    let sql = match body.bindings.as_ref() {
        Some(b) => match bindings::substitute(&sql, b) {
            Ok(s) => s,
            Err(e) => {
                statement.finish(Outcome::Failed(SqlError::new("002049", "42601", e.message)));
                return emu.respond(&statement, nullable);
            }
        },
        None => sql,
    };

    let mut parsed = pat_sql::parse(&sql);
    if emu.state.settings.variants.pat_expiry == PatExpiryVariant::DaysOnly
        && let Ok(Some(PatStatement::Add(add))) = &parsed
        && matches!(add.expiry, Some(Expiry::Minutes(_)))
    {
        parsed = Err(mins_to_expiry_refused(&sql));
    }
    match (&principal, parsed) {
        (_, Err(syntax)) => {
            statement.finish(Outcome::Failed(SqlError::new(
                "001003",
                "42000",
                syntax.message,
            )));
        }
        (Principal::Agent(agent), Ok(Some(pat_statement))) => {
            let outcome = match emu.run_pat_statement(agent, pat_statement) {
                Ok(data) => Outcome::Succeeded(Arc::new(data)),
                Err(err) => Outcome::Failed(err),
            };
            statement.finish(outcome);
        }
        (Principal::Agent(agent), Ok(None)) if doctor_sql::parse(&sql).is_some() => {
            let parsed = doctor_sql::parse(&sql).expect("checked by the guard");
            // Each agent user has its own registered key.
            let fingerprint = emu
                .state
                .creds
                .snowflake_fingerprint_of(agent)
                .unwrap_or_default();
            let account = doctor_sql::AgentAccount {
                user: agent,
                role: AGENT_SNOWFLAKE_ROLE,
                fingerprint: &fingerprint,
                prerequisites: &emu.state.settings.prerequisites,
            };
            let outcome = match doctor_sql::answer(&parsed, &account) {
                Ok((columns, rows)) => Outcome::Succeeded(Arc::new(text_result(&columns, rows))),
                Err(message) if message.contains("access control") => {
                    Outcome::Failed(SqlError::new("003001", "42501", message))
                }
                Err(message) => Outcome::Failed(SqlError::new("002003", "02000", message)),
            };
            statement.finish(outcome);
        }
        (Principal::Agent(agent), Ok(None)) => {
            let err = match first_object(&sql) {
                Some(object) => SqlError::not_authorized(&object),
                None => SqlError::new(
                    "003001",
                    "42501",
                    format!(
                        "SQL access control error:\nInsufficient privileges: user '{agent}' authenticated with a key-pair JWT may only manage programmatic access tokens; its role has no data grants."
                    ),
                ),
            };
            statement.finish(Outcome::Failed(err));
        }
        (Principal::Pat { .. }, Ok(Some(_))) => {
            statement.finish(Outcome::Failed(SqlError::new(
                "003001",
                "42501",
                "SQL access control error:\nProgrammatic access tokens cannot be managed from a session authenticated with a programmatic access token.",
            )));
        }
        (
            Principal::Pat {
                role,
                user,
                token_name,
                agent,
            },
            Ok(None),
        ) => {
            if let Some(asked) = &body.role
                && asked != role
                && !emu.state.settings.ignore_obo_restriction
            {
                statement.finish(Outcome::Failed(SqlError::new(
                    "390189",
                    "08004",
                    format!(
                        "Role '{asked}' specified in the request is not allowed: programmatic access token '{token_name}' is restricted to role '{role}'."
                    ),
                )));
            } else {
                // The body's database and schema are case-sensitive
                // (sqlapi.yaml: "The value in this field is case-sensitive."):
                // handed to the engine as quoted names, so `sales` does not
                // find the database SALES.
                let verbatim = |name: &Option<String>| name.as_ref().map(|n| format!("\"{n}\""));
                let namespace = Namespace {
                    database: verbatim(&body.database),
                    schema: verbatim(&body.schema),
                };
                let timeout = body.timeout.filter(|t| *t > 0).map(Duration::from_secs);
                emu.spawn_engine(
                    statement.clone(),
                    RunAs {
                        role: role.clone(),
                        user: user.clone(),
                        agent: agent.clone(),
                    },
                    sql,
                    namespace,
                    timeout,
                );
            }
        }
    }

    if pending == 0 && !flag(&query.run_async, false) {
        let mut rx = statement.outcome.subscribe();
        let _ = tokio::time::timeout(
            emu.state.settings.snowflake_sync_wait,
            rx.wait_for(|o| !matches!(o, Outcome::Running)),
        )
        .await;
    }
    if pending > 0 || flag(&query.run_async, false) {
        return accepted(&statement);
    }
    emu.respond(&statement, nullable)
}

async fn status(
    State(emu): State<Arc<Emulator>>,
    Path(handle): Path<String>,
    Query(query): Query<StatusQuery>,
    headers: HeaderMap,
) -> Response {
    if let Some(resp) = missing_user_agent(&headers) {
        return resp;
    }
    let principal = match emu.authenticate(&headers) {
        Ok(p) => p,
        Err(e) => return auth_failure(e),
    };
    let Some(statement) = emu.lookup(&handle, &principal) else {
        return unknown_handle(&handle);
    };
    let nullable = flag(&query.nullable, true);
    // A `Pending` fault holds the statement for N polls.
    let held = statement
        .pending_polls
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if held {
        return accepted(&statement);
    }
    let Some(partition) = query.partition else {
        return emu.respond(&statement, nullable);
    };
    let data = match statement.current() {
        Outcome::Succeeded(data) => data,
        _ => return emu.respond(&statement, nullable),
    };
    match partition.trim().parse::<usize>() {
        Ok(index) if index < data.partitions.len() => json_response(
            StatusCode::OK,
            json!({"data": data.partition_data(index, nullable)}),
        ),
        _ => bad_request(format!(
            "Invalid partition '{partition}': statement {handle} has partitions 0..{}.",
            data.partitions.len() - 1
        )),
    }
}

async fn cancel(
    State(emu): State<Arc<Emulator>>,
    Path(handle): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(resp) = missing_user_agent(&headers) {
        return resp;
    }
    let principal = match emu.authenticate(&headers) {
        Ok(p) => p,
        Err(e) => return auth_failure(e),
    };
    let Some(statement) = emu.lookup(&handle, &principal) else {
        return unknown_handle(&handle);
    };
    // A statement held by a `Pending` fault is still running as far as the client can tell.
    let held = statement.pending_polls.swap(0, Ordering::SeqCst) > 0;
    let canceled = statement.finish(Outcome::Failed(SqlError::canceled()))
        || (held && {
            statement
                .outcome
                .send_replace(Outcome::Failed(SqlError::canceled()));
            true
        });
    if canceled {
        emu.state.bump(Counter::StatementsCancelled);
    }
    let message = match statement.current() {
        Outcome::Failed(err) if err == SqlError::canceled() => "Statement canceled successfully.",
        _ => "Statement already completed; nothing to cancel.",
    };
    json_response(
        StatusCode::OK,
        json!({
            "code": "000000",
            "sqlState": "00000",
            "message": message,
            "statementHandle": statement.handle,
            "statementStatusUrl": statement.status_url(),
        }),
    )
}

fn unknown_handle(handle: &str) -> Response {
    json_response(
        StatusCode::NOT_FOUND,
        json!({
            "code": "000709",
            "message": format!("Statement {handle} not found."),
            "statementHandle": handle,
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_cover_all_rows() {
        let encoded = SnowflakeEncoded {
            types: vec![],
            row_type: vec![],
            rows: (0..5).map(|i| vec![Some(i.to_string())]).collect(),
        };
        let data = ResultData::new(encoded, 2);
        let ranges: Vec<(usize, usize)> =
            data.partitions.iter().map(|p| (p.start, p.end)).collect();
        assert_eq!(ranges, vec![(0, 2), (2, 4), (4, 5)]);
        assert_eq!(data.partition_data(2, true), json!([["4"]]));
        assert_eq!(
            data.partitions[0].uncompressed_size,
            serde_json::to_string(&data.partition_data(0, true))
                .unwrap()
                .len()
        );
    }

    #[test]
    fn empty_result_has_one_empty_partition() {
        let encoded = SnowflakeEncoded {
            types: vec![],
            row_type: vec![],
            rows: vec![],
        };
        let data = ResultData::new(encoded, 10);
        assert_eq!((data.partitions[0].start, data.partitions[0].end), (0, 0));
        assert_eq!(data.partitions.len(), 1);
        assert_eq!(data.partition_data(0, true), json!([]));
    }

    #[test]
    fn null_cells_follow_the_nullable_flag() {
        let encoded = SnowflakeEncoded {
            types: vec![],
            row_type: vec![],
            rows: vec![vec![None, Some("x".into())]],
        };
        let data = ResultData::new(encoded, 10);
        assert_eq!(data.partition_data(0, true), json!([[null, "x"]]));
        assert_eq!(data.partition_data(0, false), json!([["null", "x"]]));
        assert_eq!(
            data.partitions[0].uncompressed_size,
            serde_json::to_string(&data.partition_data(0, true))
                .unwrap()
                .len()
        );
    }

    #[test]
    fn first_object_names_the_table() {
        assert_eq!(
            first_object("select * from sales.public.orders o join x on 1=1").as_deref(),
            Some("SALES.PUBLIC.ORDERS")
        );
        assert_eq!(first_object("select 1"), None);
    }
}
