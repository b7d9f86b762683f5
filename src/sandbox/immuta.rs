//! Emulator of Immuta's agent on-behalf-of (OBO) API.
//!
//! - `POST /agent/obo/roles` `{"userId", "ttlMinutes"}` vends, per request, a
//!   fresh Snowflake role `IMMUTA_OBO_<n>_<HEX>` (connectionKey
//!   `sandbox01.sandbox.snowflakecomputing.com`) and a fresh exclusive
//!   Databricks group `immuta_obo_<n>` with a numeric `nativeRoleId`
//!   (connectionKey = the Databricks emulator's host), both bound in the
//!   engine to the user's grants until `expiresAt` (now + TTL). Answer 201.
//!   With [`Fault::Pending`](crate::sandbox::faults::Fault::Pending) on
//!   `ImmutaVend` the answer is `"pending"` (no roles yet) and the next N
//!   status polls stay pending; the poll after them binds the roles and
//!   answers `"ready"`. [`Fault::LostAnswer`](crate::sandbox::faults::Fault::LostAnswer)
//!   creates the vend and then drops the answer.
//! - `GET /agent/obo/roles/{id}`: with `immuta_poll = "vend_id"` (default)
//!   `{id}` is a vend id and the answer that vend's state (`ready`,
//!   `pending`, or `expired` once past its TTL or dropped); with
//!   `"agent_id"` `{id}` is the agent id, the answer `{"data": [...]}` lists
//!   the agent's live vends (each poll counts for every pending one), every
//!   vend answer names the agent (`agentId`), and a vend id is 404.
//! - `DELETE /agent/obo/roles/{id}`: drops the vend's roles (unbound in the
//!   engine); with the agent id in place of a vend id, drops every vend.
//! - `GET /agent/{agentId}/activity?startDate&endDate&offset&size&search`:
//!   vend events, oldest first, as `{"data": [...]}`. Dates are RFC 3339 or
//!   `YYYY-MM-DD` (an end date covers that whole day); `startDate` defaults
//!   to 7 days ago and `endDate` to now, as Immuta documents; `size` defaults
//!   to 100 (at most 1000); `search` matches user names, case-insensitively.
//! - `POST /bim/apikey/authenticate` (`{"apikey"}` body or the key in
//!   `Authorization`) answers `{"token", "tokenExpiration"}`; the token lives
//!   `settings.immuta_token_lifetime` (or until
//!   [`SandboxState::expire_credentials`](crate::sandbox::SandboxState::expire_credentials)),
//!   then requests with it are 401.
//!
//! Which `Authorization` forms the agent endpoints accept follows the
//! `immuta_auth` variant ([`ImmutaAuthVariant`]): `any` takes `<key>`,
//! `Bearer <key>` and `Bearer <exchanged token>`; `raw_key`, `bearer_key` and
//! `exchange` take only their own form (the exchange endpoint is 404 unless
//! the variant is `any` or `exchange`). Anything else is 401. Vend answers
//! are spelled per `vend_answer` ([`VendAnswerVariant`]). Errors are
//! `{"message": ...}`: 400 for a bad body or query, 404 for an unknown user
//! (`... is not known to Immuta`), vend or agent.

use crate::immuta::wire::{
    AUTHENTICATE_PATH, ActivityEvent, ActivityPage, AuthenticateRequest, DatabricksGroup,
    ErrorBody, SnowflakeRole, VEND_PATH, VendRequest, VendResponse, VendStatus, VendedRoles,
};
use crate::result::Platform;
use crate::sandbox::faults::{Endpoint, on};
use crate::sandbox::state::{Counter, SandboxState};
use crate::sandbox::variants::{
    ImmutaAuthVariant, ImmutaPollVariant, SandboxVariants, VendAnswerVariant,
};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

/// The Snowflake connection key the sandbox vends (first label = account locator).
pub const SNOWFLAKE_CONNECTION_KEY: &str = "sandbox01.us-east-1.snowflakecomputing.com";

const DEFAULT_PAGE_SIZE: usize = 100;
const MAX_PAGE_SIZE: usize = 1000;

struct ImmutaEmulator {
    state: Arc<SandboxState>,
    store: Mutex<VendStore>,
    /// Bearer tokens from `POST /bim/apikey/authenticate` → expiry and credential epoch.
    tokens: Mutex<HashMap<String, (DateTime<Utc>, u64)>>,
}

#[derive(Default)]
struct VendStore {
    next: u64,
    /// Oldest first.
    vends: Vec<Vend>,
}

struct Vend {
    id: String,
    user_id: String,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    roles: VendedRoles,
    ttl_minutes: u32,
    /// Status polls that still answer "pending".
    pending_polls: u32,
    bound: bool,
    dropped: bool,
}

impl Vend {
    fn status(&self) -> VendStatus {
        if self.dropped || Utc::now() >= self.expires_at {
            VendStatus::Expired
        } else if !self.bound {
            VendStatus::Pending
        } else {
            VendStatus::Ready
        }
    }

    fn answer(&self) -> VendResponse {
        let status = self.status();
        VendResponse {
            id: self.id.clone(),
            status: Some(status),
            user_id: self.user_id.clone(),
            agent_id: None,
            ttl_minutes: Some(self.ttl_minutes),
            expires_at: Some(iso(self.expires_at)),
            roles: if status == VendStatus::Pending {
                VendedRoles::default()
            } else {
                self.roles.clone()
            },
        }
    }

    /// The answer spelled per the `vend_answer` variant; with per-agent
    /// polling it names the agent (`agentId`), whose id the poll needs.
    fn answer_json(&self, variants: SandboxVariants, agent_id: &str) -> serde_json::Value {
        let mut answer = self.answer();
        if variants.immuta_poll.polls_by_agent() {
            answer.agent_id = Some(agent_id.to_string());
        }
        let variant = variants.vend_answer;
        let mut v = serde_json::to_value(answer).unwrap_or_default();
        let Some(obj) = v.as_object_mut() else {
            return v;
        };
        match variant {
            VendAnswerVariant::Canonical => {}
            VendAnswerVariant::Ttl => {
                if let Some(ttl) = obj.remove("ttlMinutes") {
                    obj.insert("ttl".into(), ttl);
                }
            }
            VendAnswerVariant::UpperStatus => {
                if let Some(serde_json::Value::String(s)) = obj.get_mut("status") {
                    *s = s.to_uppercase();
                }
            }
            VendAnswerVariant::NoStatus => {
                obj.remove("status");
                // An expired vend is told apart only by missing roles.
                if self.status() == VendStatus::Expired {
                    obj.insert("roles".into(), serde_json::json!({}));
                }
            }
            VendAnswerVariant::NoExpiresAt => {
                obj.remove("expiresAt");
            }
        }
        v
    }
}

fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A refused request: status and `{"message"}` text.
struct Refusal(StatusCode, String);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        message(self.0, self.1)
    }
}

fn message(status: StatusCode, text: impl Into<String>) -> Response {
    (
        status,
        axum::Json(ErrorBody {
            message: text.into(),
        }),
    )
        .into_response()
}

/// The Immuta emulator's routes.
pub fn router(state: Arc<SandboxState>) -> Router {
    let s = &state;
    let routes = Router::new()
        .route(
            AUTHENTICATE_PATH,
            on(s, Endpoint::ImmutaAuthenticate, post(authenticate)),
        )
        .route(VEND_PATH, on(s, Endpoint::ImmutaVend, post(create_vend)))
        .route(
            &format!("{VEND_PATH}/{{id}}"),
            on(s, Endpoint::ImmutaStatus, get(vend_status)).merge(on(
                s,
                Endpoint::ImmutaDelete,
                delete(drop_vend),
            )),
        )
        .route(
            "/agent/{agent_id}/activity",
            on(s, Endpoint::ImmutaActivity, get(activity)),
        );
    let emu = Arc::new(ImmutaEmulator {
        state,
        store: Mutex::new(VendStore::default()),
        tokens: Mutex::new(HashMap::new()),
    });
    routes
        .fallback(|| async {
            message(
                StatusCode::NOT_FOUND,
                "no such Immuta API endpoint in the sandbox",
            )
        })
        .with_state(emu)
}

impl ImmutaEmulator {
    fn store(&self) -> MutexGuard<'_, VendStore> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Check `Authorization` against the forms the `immuta_auth` variant accepts.
    fn authorize(&self, headers: &HeaderMap) -> Result<(), Refusal> {
        let variant = self.state.settings.variants.immuta_auth;
        let given = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::trim);
        let bearer = given.and_then(|g| {
            g.split_once(' ')
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                .map(|(_, t)| t.trim())
        });
        let is_key = |k: Option<&str>| k.is_some_and(|k| self.state.creds.is_immuta_api_key(k));
        let raw_ok = is_key(given);
        let bearer_key_ok = is_key(bearer);
        let token_ok = match bearer {
            Some(t) if !is_key(Some(t)) => match self.token_expiry(t) {
                Some((exp, epoch))
                    if Utc::now() < exp && epoch >= self.state.credential_epoch() =>
                {
                    true
                }
                Some(_) => {
                    return Err(Refusal(
                        StatusCode::UNAUTHORIZED,
                        "Unauthorized: the bearer token has expired; authenticate again".into(),
                    ));
                }
                None => false,
            },
            _ => false,
        };
        let accepted = match variant {
            ImmutaAuthVariant::Any => raw_ok || bearer_key_ok || token_ok,
            ImmutaAuthVariant::RawKey => raw_ok,
            ImmutaAuthVariant::BearerKey => bearer_key_ok,
            ImmutaAuthVariant::Exchange => token_ok,
        };
        if accepted {
            return Ok(());
        }
        let expected = match variant {
            ImmutaAuthVariant::Any => "'Authorization: <API key>' or a bearer token",
            ImmutaAuthVariant::RawKey => "the API key as 'Authorization: <API key>'",
            ImmutaAuthVariant::BearerKey => "'Authorization: Bearer <API key>'",
            ImmutaAuthVariant::Exchange => {
                "'Authorization: Bearer <token>' with a token from POST /bim/apikey/authenticate"
            }
        };
        let what = if given.is_some() {
            "the credential is not valid here; "
        } else {
            ""
        };
        Err(Refusal(
            StatusCode::UNAUTHORIZED,
            format!("Unauthorized: {what}send {expected}"),
        ))
    }

    fn token_expiry(&self, token: &str) -> Option<(DateTime<Utc>, u64)> {
        self.tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(token)
            .copied()
    }

    fn bind(&self, vend: &Vend) {
        let expires_at = SystemTime::from(vend.expires_at);
        let engine = &self.state.engine;
        let bind = |platform: Platform, role: &str| {
            if let Err(e) = engine.bind_role(platform, role, &vend.user_id, expires_at) {
                tracing::warn!(%platform, error = %e, "sandbox could not bind a vended role");
            }
        };
        if let Some(sf) = &vend.roles.snowflake {
            bind(Platform::Snowflake, &sf.role_name);
        }
        if let Some(db) = &vend.roles.databricks {
            bind(Platform::Databricks, &db.native_role_id);
            engine.name_role(Platform::Databricks, &db.native_role_id, &db.role_name);
        }
    }

    fn unbind(&self, vend: &Vend) {
        if let Some(sf) = &vend.roles.snowflake {
            self.state
                .engine
                .unbind_role(Platform::Snowflake, &sf.role_name);
        }
        if let Some(db) = &vend.roles.databricks {
            self.state
                .engine
                .unbind_role(Platform::Databricks, &db.native_role_id);
        }
    }

    fn databricks_host(&self) -> String {
        let url = &self.state.urls.databricks;
        url.split_once("://")
            .map_or(url.as_str(), |(_, rest)| rest)
            .trim_end_matches('/')
            .to_string()
    }
}

/// `POST /bim/apikey/authenticate`: the API key (body `{"apikey"}` or
/// `Authorization: <key>`) for a bearer token that expires.
async fn authenticate(
    State(emu): State<Arc<ImmutaEmulator>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !matches!(
        emu.state.settings.variants.immuta_auth,
        ImmutaAuthVariant::Any | ImmutaAuthVariant::Exchange
    ) {
        return message(
            StatusCode::NOT_FOUND,
            "no such Immuta API endpoint in the sandbox (immuta_auth variant without the exchange)",
        );
    }
    let from_body = serde_json::from_slice::<AuthenticateRequest>(&body)
        .ok()
        .map(|b| b.apikey);
    let from_header = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_string());
    let given = from_body.or(from_header);
    if !given
        .as_deref()
        .is_some_and(|g| emu.state.creds.is_immuta_api_key(g))
    {
        return message(
            StatusCode::UNAUTHORIZED,
            "Unauthorized: the API key is not valid",
        );
    }
    let token = hex::encode(rand::random::<[u8; 16]>());
    emu.state.record_issued_credential(&token);
    let lifetime = chrono::Duration::from_std(emu.state.settings.immuta_token_lifetime)
        .unwrap_or_else(|_| chrono::Duration::hours(1));
    let expires = Utc::now() + lifetime;
    emu.tokens
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(token.clone(), (expires, emu.state.credential_epoch()));
    axum::Json(serde_json::json!({"token": token, "tokenExpiration": iso(expires)})).into_response()
}

async fn create_vend(
    State(emu): State<Arc<ImmutaEmulator>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = emu.authorize(&headers) {
        return r.into_response();
    }
    let expected = r#"expected {"userId": "<Immuta user id>", "ttlMinutes": <1..1440>}"#;
    let req: VendRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return message(
                StatusCode::BAD_REQUEST,
                format!("invalid vend request body: {e}; {expected}"),
            );
        }
    };
    if req.user_id.trim().is_empty() {
        return message(
            StatusCode::BAD_REQUEST,
            format!("invalid vend request body: userId is empty; {expected}"),
        );
    }
    if !(1..=1440).contains(&req.ttl_minutes) {
        return message(
            StatusCode::BAD_REQUEST,
            format!(
                "invalid vend request body: ttlMinutes {} is outside 1..1440",
                req.ttl_minutes
            ),
        );
    }
    if !emu.state.engine.has_user(&req.user_id) {
        return message(
            StatusCode::NOT_FOUND,
            format!(
                "Cannot vend roles: user {:?} is not known to Immuta",
                req.user_id
            ),
        );
    }
    let pending_polls = emu.state.faults.pending_polls(Endpoint::ImmutaVend);
    let databricks_host = emu.databricks_host();
    let answer = {
        let mut store = emu.store();
        store.next += 1;
        let n = store.next;
        let now = Utc::now();
        let ttl = Duration::from_secs(u64::from(req.ttl_minutes) * 60);
        let group_id = 100_000_000_000_000u64 + rand::random::<u64>() % 900_000_000_000_000;
        let mut vend = Vend {
            id: uuid::Uuid::new_v4().to_string(),
            user_id: req.user_id.clone(),
            created_at: now,
            expires_at: now + ttl,
            roles: VendedRoles {
                snowflake: Some(SnowflakeRole {
                    role_name: format!("IMMUTA_OBO_{n}_{:08X}", rand::random::<u32>()),
                    connection_key: SNOWFLAKE_CONNECTION_KEY.into(),
                }),
                databricks: Some(DatabricksGroup {
                    role_name: format!("immuta_obo_{n}"),
                    native_role_id: group_id.to_string(),
                    connection_key: Some(databricks_host),
                }),
            },
            ttl_minutes: req.ttl_minutes,
            pending_polls,
            bound: false,
            dropped: false,
        };
        if pending_polls == 0 {
            emu.bind(&vend);
            vend.bound = true;
        }
        let answer = vend.answer_json(emu.state.settings.variants, &emu.state.creds.agent_id);
        tracing::debug!(user = %vend.user_id, vend_id = %vend.id, status = ?vend.status(), "sandbox vended roles");
        store.vends.push(vend);
        answer
    };
    emu.state.bump(Counter::VendsCreated);
    (StatusCode::CREATED, axum::Json(answer)).into_response()
}

/// Count one status poll of a pending vend (binding it after its pending polls).
fn advance(emu: &ImmutaEmulator, vend: &mut Vend) {
    if !vend.bound && !vend.dropped {
        if vend.pending_polls > 0 {
            vend.pending_polls -= 1;
        } else {
            emu.bind(vend);
            vend.bound = true;
        }
    }
}

async fn vend_status(
    State(emu): State<Arc<ImmutaEmulator>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = emu.authorize(&headers) {
        return r.into_response();
    }
    let variants = emu.state.settings.variants;
    let mut store = emu.store();
    if variants.immuta_poll.polls_by_agent() {
        if id != emu.state.creds.agent_id {
            return message(
                StatusCode::NOT_FOUND,
                format!("agent {id:?} does not exist"),
            );
        }
        if variants.immuta_poll == ImmutaPollVariant::AgentIdLatest {
            let Some(latest) = store
                .vends
                .iter_mut()
                .rev()
                .find(|v| v.status() != VendStatus::Expired)
            else {
                return message(
                    StatusCode::NOT_FOUND,
                    format!("agent {id:?} has no vended role"),
                );
            };
            advance(&emu, latest);
            return axum::Json(latest.answer_json(variants, &emu.state.creds.agent_id))
                .into_response();
        }
        let data: Vec<serde_json::Value> = store
            .vends
            .iter_mut()
            .filter(|v| v.status() != VendStatus::Expired)
            .map(|v| {
                advance(&emu, v);
                v.answer_json(variants, &emu.state.creds.agent_id)
            })
            .collect();
        return axum::Json(serde_json::json!({ "data": data })).into_response();
    }
    let Some(vend) = store.vends.iter_mut().find(|v| v.id == id) else {
        return message(
            StatusCode::NOT_FOUND,
            format!("vended role {id:?} does not exist"),
        );
    };
    advance(&emu, vend);
    axum::Json(vend.answer_json(variants, &emu.state.creds.agent_id)).into_response()
}

async fn drop_vend(
    State(emu): State<Arc<ImmutaEmulator>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = emu.authorize(&headers) {
        return r.into_response();
    }
    let mut store = emu.store();
    if id == emu.state.creds.agent_id {
        let mut dropped = 0usize;
        for vend in store.vends.iter_mut().filter(|v| !v.dropped) {
            emu.unbind(vend);
            vend.dropped = true;
            dropped += 1;
        }
        return axum::Json(serde_json::json!({
            "message": format!("dropped the roles of {dropped} vend(s)"),
            "dropped": dropped,
        }))
        .into_response();
    }
    let Some(vend) = store.vends.iter_mut().find(|v| v.id == id) else {
        return message(
            StatusCode::NOT_FOUND,
            format!("vended role {id:?} does not exist"),
        );
    };
    emu.unbind(vend);
    vend.dropped = true;
    axum::Json(vend.answer_json(emu.state.settings.variants, &emu.state.creds.agent_id))
        .into_response()
}

/// `startDate`/`endDate`: RFC 3339, or a date (start of day; an end date includes the whole day).
fn parse_bound(name: &str, text: &str, is_end: bool) -> Result<DateTime<Utc>, Refusal> {
    let t = text.trim();
    if let Ok(dt) = DateTime::parse_from_rfc3339(t) {
        // An end date-time is inclusive; the filter compares with `<`.
        let nudge = chrono::Duration::nanoseconds(i64::from(is_end));
        return Ok(dt.with_timezone(&Utc) + nudge);
    }
    if let Ok(d) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        let day = if is_end { d.succ_opt().unwrap_or(d) } else { d };
        if let Some(dt) = day.and_hms_opt(0, 0, 0) {
            return Ok(dt.and_utc());
        }
    }
    Err(Refusal(
        StatusCode::BAD_REQUEST,
        format!(
            "{name} {t:?} is not an ISO 8601 date or date-time (e.g. 2024-01-31 or 2024-01-31T12:00:00Z)"
        ),
    ))
}

fn parse_count(name: &str, text: Option<&String>, default: usize) -> Result<usize, Refusal> {
    match text {
        None => Ok(default),
        Some(t) => t.trim().parse::<usize>().map_err(|_| {
            Refusal(
                StatusCode::BAD_REQUEST,
                format!("{name} {t:?} is not a non-negative integer"),
            )
        }),
    }
}

async fn activity(
    State(emu): State<Arc<ImmutaEmulator>>,
    Path(agent_id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = emu.authorize(&headers) {
        return r.into_response();
    }
    if agent_id != emu.state.creds.agent_id {
        return message(
            StatusCode::NOT_FOUND,
            format!("agent {agent_id:?} does not exist"),
        );
    }
    let parsed = (|| {
        let start = params
            .get("startDate")
            .map(|s| parse_bound("startDate", s, false))
            .transpose()?;
        let end = params
            .get("endDate")
            .map(|s| parse_bound("endDate", s, true))
            .transpose()?;
        let offset = parse_count("offset", params.get("offset"), 0)?;
        let size = parse_count("size", params.get("size"), DEFAULT_PAGE_SIZE)?;
        if size > MAX_PAGE_SIZE {
            return Err(Refusal(
                StatusCode::BAD_REQUEST,
                format!("size {size} is larger than {MAX_PAGE_SIZE}"),
            ));
        }
        Ok((start, end, offset, size))
    })();
    let (start, end, offset, size) = match parsed {
        Ok(p) => p,
        Err(r) => return r.into_response(),
    };
    // Immuta: startDate "Defaults to 7 days in the past", endDate "Defaults to the current time".
    let now = Utc::now();
    let start = start.unwrap_or(now - chrono::Duration::days(7));
    let end = end.unwrap_or(now + chrono::Duration::nanoseconds(1));
    let search = params
        .get("search")
        .map(|s| s.trim().to_lowercase())
        .filter(|s| !s.is_empty());
    let store = emu.store();
    let data: Vec<ActivityEvent> = store
        .vends
        .iter()
        .filter(|v| v.created_at >= start && v.created_at < end)
        // `search`: "The text to search for in the usernames of human users".
        .filter(|v| {
            search
                .as_deref()
                .is_none_or(|needle| v.user_id.to_lowercase().contains(needle))
        })
        .skip(offset)
        .take(size)
        .map(|v| ActivityEvent {
            id: v.id.clone(),
            user_id: v.user_id.clone(),
            created_at: iso(v.created_at),
            roles: v.roles.clone(),
        })
        .collect();
    axum::Json(ActivityPage { data }).into_response()
}
