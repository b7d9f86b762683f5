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

mod answers;
mod auth;
mod bindings;
mod doctor_sql;
mod pat_admin;
mod pat_sql;
mod results;

use crate::result::Platform;
use crate::sandbox::engine::{AGENT_IDENTITY, Namespace, Session};
use crate::sandbox::faults::{Endpoint, on};
use crate::sandbox::state::{AGENT_SNOWFLAKE_ROLE, Counter, ExecutedStatement, SandboxState};
use crate::sandbox::statements::{self, StatementStore};
use crate::sandbox::variants::PatExpiryVariant;
use answers::{Refusal, SqlError, respond};
use auth::{AuthError, KeyPairVerifier, PatRegistry};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post};
use pat_sql::{Expiry, PatStatement};
use results::{ResultData, encode_result, text_result};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Header naming the kind of bearer token.
const TOKEN_TYPE_HEADER: &str = "x-snowflake-authorization-token-type";

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
        statements: StatementStore::default(),
        request_ids: Mutex::new(HashMap::new()),
    });
    routes.fallback(answers::not_found).with_state(emulator)
}

struct Emulator {
    state: Arc<SandboxState>,
    verifier: KeyPairVerifier,
    pats: PatRegistry,
    statements: StatementStore<ResultData, SqlError, Submitted>,
    /// (owner key, requestId) → statement handle, for `retry=true`.
    request_ids: Mutex<HashMap<(String, String), String>>,
    /// Key-pair JWT requests still to answer as expired
    /// (`SandboxSettings::snowflake_expired_jwts`).
    expired_jwts: AtomicU32,
}

/// What the SQL API keeps per statement besides the shared lifecycle.
struct Submitted {
    /// Milliseconds since the epoch (`createdOn`).
    created_on: u64,
    /// The submit's `requestId`, echoed in answers and the status URL.
    request_id: Option<String>,
}

type Statement = statements::Statement<ResultData, SqlError, Submitted>;
type Outcome = statements::Outcome<ResultData, SqlError>;

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

/// The request-id index; a panic mid-insert leaves whole entries, so a poisoned lock is still usable.
fn request_ids(emu: &Emulator) -> MutexGuard<'_, HashMap<(String, String), String>> {
    emu.request_ids
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
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
        let wire = Submitted {
            created_on: now_millis(),
            request_id,
        };
        // The `Pending` fault is read here, once the request passed validation.
        let held = self.state.faults.pending_polls(Endpoint::SnowflakeSubmit);
        self.statements
            .open(uuid::Uuid::new_v4().to_string(), owner, wire, held)
    }

    fn lookup(&self, handle: &str, principal: &Principal) -> Result<Arc<Statement>, Refusal> {
        self.statements
            .lookup(handle, &principal.owner_key())
            .ok_or_else(|| Refusal::UnknownHandle(handle.to_string()))
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
            statement_id: statement.id().to_string(),
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

/// `POST /api/v2/statements`: open a statement, run it (token management
/// and the doctor's statements at once, data SQL on the engine), and answer
/// within `snowflake_sync_wait` or with 202.
async fn submit(
    State(emu): State<Arc<Emulator>>,
    Query(query): Query<SubmitQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Refusal> {
    answers::require_user_agent(&headers)?;
    let principal = emu.authenticate(&headers)?;
    let nullable = flag(&query.nullable, true);
    let owner = principal.owner_key();
    if let Some(request_id) = &query.request_id
        && flag(&query.retry, false)
    {
        let existing = request_ids(&emu)
            .get(&(owner.clone(), request_id.clone()))
            .cloned();
        if let Some(statement) = existing.and_then(|h| emu.lookup(&h, &principal).ok()) {
            return Ok(respond(&statement, nullable));
        }
    }
    let body: SubmitBody = serde_json::from_slice(&body).map_err(|e| {
        Refusal::BadRequest(format!("Unable to parse the request body as JSON: {e}"))
    })?;
    let Some(sql) = body.statement.clone().filter(|s| !s.trim().is_empty()) else {
        return Err(Refusal::BadRequest(
            "The request body must contain a non-empty 'statement'.".to_string(),
        ));
    };
    let statement = emu.new_statement(owner.clone(), query.request_id.clone());
    if let Some(request_id) = &query.request_id {
        request_ids(&emu).insert((owner, request_id.clone()), statement.id().to_string());
    }
    let held = statement.is_held();

    match body.bindings.as_ref() {
        Some(b) => match bindings::substitute(&sql, b) {
            Ok(sql) => emu.run(&statement, &principal, &body, sql),
            Err(e) => {
                statement.finish(Outcome::Failed(SqlError::new("002049", "42601", e.message)));
                return Ok(respond(&statement, nullable));
            }
        },
        None => emu.run(&statement, &principal, &body, sql),
    }

    let run_async = flag(&query.run_async, false);
    if held || run_async {
        return Ok(answers::accepted(&statement));
    }
    statement
        .wait_settled(emu.state.settings.snowflake_sync_wait)
        .await;
    Ok(respond(&statement, nullable))
}

impl Emulator {
    /// Decide what `sql` is for this caller and settle (or start) `statement`.
    fn run(
        self: &Arc<Self>,
        statement: &Arc<Statement>,
        principal: &Principal,
        body: &SubmitBody,
        sql: String,
    ) {
        let mut parsed = pat_sql::parse(&sql);
        if self.state.settings.variants.pat_expiry == PatExpiryVariant::DaysOnly
            && let Ok(Some(PatStatement::Add(add))) = &parsed
            && matches!(add.expiry, Some(Expiry::Minutes(_)))
        {
            parsed = Err(pat_admin::mins_to_expiry_refused(&sql));
        }
        match (principal, parsed) {
            (_, Err(syntax)) => {
                statement.finish(Outcome::Failed(SqlError::new(
                    "001003",
                    "42000",
                    syntax.message,
                )));
            }
            (Principal::Agent(agent), Ok(Some(pat_statement))) => {
                let outcome = match self.run_pat_statement(agent, pat_statement) {
                    Ok(data) => Outcome::Succeeded(Arc::new(data)),
                    Err(err) => Outcome::Failed(err),
                };
                statement.finish(outcome);
            }
            (Principal::Agent(agent), Ok(None)) => match doctor_sql::parse(&sql) {
                Some(doctor) => {
                    statement.finish(self.doctor_outcome(agent, &doctor));
                }
                None => {
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
            },
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
                    && !self.state.settings.ignore_obo_restriction
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
                    let verbatim =
                        |name: &Option<String>| name.as_ref().map(|n| format!("\"{n}\""));
                    let namespace = Namespace {
                        database: verbatim(&body.database),
                        schema: verbatim(&body.schema),
                    };
                    let timeout = body.timeout.filter(|t| *t > 0).map(Duration::from_secs);
                    self.spawn_engine(
                        Arc::clone(statement),
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
    }

    /// The doctor's statements (`DESC USER`, `SHOW PARAMETERS`, `SHOW
    /// GRANTS`), answered from the fixture's `[agent]` table.
    fn doctor_outcome(&self, agent: &str, doctor: &doctor_sql::DoctorStatement) -> Outcome {
        // Each agent user has its own registered key.
        let fingerprint = self
            .state
            .creds
            .snowflake_fingerprint_of(agent)
            .unwrap_or_default();
        let account = doctor_sql::AgentAccount {
            user: agent,
            role: AGENT_SNOWFLAKE_ROLE,
            fingerprint: &fingerprint,
            prerequisites: &self.state.settings.prerequisites,
        };
        match doctor_sql::answer(doctor, &account) {
            Ok((columns, rows)) => match text_result(&columns, rows) {
                Ok(data) => Outcome::Succeeded(Arc::new(data)),
                Err(err) => Outcome::Failed(err),
            },
            Err(message) if message.contains("access control") => {
                Outcome::Failed(SqlError::new("003001", "42501", message))
            }
            Err(message) => Outcome::Failed(SqlError::new("002003", "02000", message)),
        }
    }
}

/// `GET /api/v2/statements/{handle}`: poll, or `?partition=N` for one partition's `{data}`.
async fn status(
    State(emu): State<Arc<Emulator>>,
    Path(handle): Path<String>,
    Query(query): Query<StatusQuery>,
    headers: HeaderMap,
) -> Result<Response, Refusal> {
    answers::require_user_agent(&headers)?;
    let principal = emu.authenticate(&headers)?;
    let statement = emu.lookup(&handle, &principal)?;
    let nullable = flag(&query.nullable, true);
    // A `Pending` fault holds the statement for N polls.
    if statement.take_held_poll() {
        return Ok(answers::accepted(&statement));
    }
    let Some(partition) = query.partition else {
        return Ok(respond(&statement, nullable));
    };
    let Outcome::Succeeded(data) = statement.current() else {
        return Ok(respond(&statement, nullable));
    };
    let index = partition.trim().parse::<usize>().ok();
    match index.and_then(|i| data.partition_data(i, nullable)) {
        Some(rows) => Ok(answers::partition_answer(rows)),
        None => Err(Refusal::BadRequest(format!(
            "Invalid partition '{partition}': statement {handle} has partitions 0..{}.",
            data.partitions.len().saturating_sub(1)
        ))),
    }
}

/// `POST /api/v2/statements/{handle}/cancel`.
async fn cancel(
    State(emu): State<Arc<Emulator>>,
    Path(handle): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Refusal> {
    answers::require_user_agent(&headers)?;
    let principal = emu.authenticate(&headers)?;
    let statement = emu.lookup(&handle, &principal)?;
    if statement.cancel() {
        emu.state.bump(Counter::StatementsCancelled);
    }
    Ok(answers::cancel_answer(&statement))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_object_names_the_table() {
        assert_eq!(
            first_object("select * from sales.public.orders o join x on 1=1").as_deref(),
            Some("SALES.PUBLIC.ORDERS")
        );
        assert_eq!(first_object("select 1"), None);
    }
}
