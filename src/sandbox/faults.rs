//! Fault injection for the emulators, configurable per endpoint from tests.
//!
//! Every emulated route is wrapped by [`on`], an axum middleware that records
//! the request (endpoint, query string, body: [`SandboxState::seen`]), waits the
//! endpoint's latency, answers for the handler when a one-shot fault is due,
//! and after the handler drops the answer when a lost answer is due. Kinds:
//! - [`Fault::Latency`]: every request to the endpoint waits this long (the
//!   latest `Latency` added wins; [`Faults::clear`] removes it).
//! - [`Fault::Status`]: the next `times` requests answer `status` with the
//!   platform's error body (`{"message"}` for Immuta, `{"code","message"}` for
//!   the Snowflake SQL API, `{"error_code","message"}` for Databricks, an OAuth
//!   `{"error","error_description"}` for the Databricks token endpoint) and a
//!   `Retry-After` header when `retry_after` is set.
//! - [`Fault::ConnectionReset`]: the next `times` requests get a response whose
//!   body stream fails at once; hyper then aborts the connection mid-answer, so
//!   the client sees a transport / body error rather than an HTTP status.
//! - [`Fault::LostAnswer`]: the next `times` requests reach the handler and
//!   take effect (a vend is created, a statement runs, a PAT is minted), then
//!   the answer is dropped like a reset, so the client cannot know whether it
//!   worked. This is the fault that makes idempotency observable: a client that
//!   resends without the platform's idempotency key runs the work twice.
//! - [`Fault::Pending`]: read (and reset) by the vend / submit handlers through
//!   [`Faults::pending_polls`]; the next vend (or statement) stays "pending" /
//!   running for that many status polls.
//!
//! - [`Fault::Pass`]: the next `times` requests go through untouched; queued
//!   before another one-shot fault, it makes that fault meet a chosen later
//!   request (e.g. the fourth statement of a PAT mint).
//!
//! One-shot faults (`Status`, `ConnectionReset`, `LostAnswer`, `Pass`) fire in the order they were added.

use crate::sandbox::state::SandboxState;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use serde_json::json;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// The emulated endpoints, for counting and fault injection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `POST /bim/apikey/authenticate` (the bearer-token exchange).
    ImmutaAuthenticate,
    ImmutaVend,
    ImmutaStatus,
    ImmutaDelete,
    ImmutaActivity,
    SnowflakeSubmit,
    /// GET of a statement handle, also `?partition=N`.
    SnowflakeStatus,
    SnowflakeCancel,
    DatabricksToken,
    DatabricksSubmit,
    DatabricksStatus,
    DatabricksChunk,
    DatabricksCancel,
    /// `GET /api/2.0/preview/scim/v2/Me`.
    DatabricksScimMe,
    /// `GET /api/2.0/permissions/warehouses/{id}`.
    DatabricksPermissions,
}

impl Endpoint {
    /// Every emulated endpoint.
    pub const ALL: [Endpoint; 15] = [
        Endpoint::ImmutaAuthenticate,
        Endpoint::ImmutaVend,
        Endpoint::ImmutaStatus,
        Endpoint::ImmutaDelete,
        Endpoint::ImmutaActivity,
        Endpoint::SnowflakeSubmit,
        Endpoint::SnowflakeStatus,
        Endpoint::SnowflakeCancel,
        Endpoint::DatabricksToken,
        Endpoint::DatabricksSubmit,
        Endpoint::DatabricksStatus,
        Endpoint::DatabricksChunk,
        Endpoint::DatabricksCancel,
        Endpoint::DatabricksScimMe,
        Endpoint::DatabricksPermissions,
    ];
}

/// One injected fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Every request to the endpoint waits this long.
    Latency(Duration),
    /// The next `times` requests answer this status (platform-shaped error body).
    Status {
        status: u16,
        retry_after: Option<u64>,
        times: u32,
    },
    /// The next `times` requests: connection dropped before a complete answer.
    ConnectionReset { times: u32 },
    /// Vend: answer "pending" for N status polls; submit: the statement stays running for N polls.
    Pending { polls: u32 },
    /// The next `times` requests are executed, then their answer is lost (connection dropped).
    LostAnswer { times: u32 },
    /// The next `times` requests go through untouched (places a later one-shot fault).
    Pass { times: u32 },
}

#[derive(Debug, Default)]
struct EndpointFaults {
    latency: Option<Duration>,
    one_shot: VecDeque<OneShot>,
    pending: u32,
    /// Answers of requests already let through that [`Faults::after`] must drop.
    lose_answers: u32,
    /// One-shot faults that met a request so far.
    fired: u64,
}

#[derive(Debug, Clone, Copy)]
enum OneShot {
    Status {
        status: u16,
        retry_after: Option<u64>,
    },
    Reset,
    LoseAnswer,
    Pass,
}

/// Fault knobs of all endpoints.
#[derive(Debug, Default)]
pub struct Faults {
    inner: Mutex<HashMap<Endpoint, EndpointFaults>>,
}

impl Faults {
    fn lock(&self) -> MutexGuard<'_, HashMap<Endpoint, EndpointFaults>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Add a fault to `ep`.
    pub fn add(&self, ep: Endpoint, fault: Fault) {
        let mut all = self.lock();
        let f = all.entry(ep).or_default();
        match fault {
            Fault::Latency(d) => f.latency = Some(d),
            Fault::Status {
                status,
                retry_after,
                times,
            } => f.one_shot.extend(std::iter::repeat_n(
                OneShot::Status {
                    status,
                    retry_after,
                },
                times as usize,
            )),
            Fault::ConnectionReset { times } => f
                .one_shot
                .extend(std::iter::repeat_n(OneShot::Reset, times as usize)),
            Fault::Pending { polls } => f.pending = polls,
            Fault::LostAnswer { times } => f
                .one_shot
                .extend(std::iter::repeat_n(OneShot::LoseAnswer, times as usize)),
            Fault::Pass { times } => f
                .one_shot
                .extend(std::iter::repeat_n(OneShot::Pass, times as usize)),
        }
    }

    /// Remove every fault of every endpoint.
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// Before the handler: sleeps latency, returns Some(response) when a Status/Reset fault fires.
    async fn before(&self, ep: Endpoint) -> Option<Response> {
        let (latency, due) = {
            let mut all = self.lock();
            match all.get_mut(&ep) {
                Some(f) => {
                    let mut due = f.one_shot.pop_front();
                    f.fired += u64::from(due.is_some_and(|d| !matches!(d, OneShot::Pass)));
                    if matches!(due, Some(OneShot::LoseAnswer)) {
                        f.lose_answers += 1;
                        due = None;
                    }
                    (f.latency, due)
                }
                None => (None, None),
            }
        };
        if let Some(d) = latency {
            tokio::time::sleep(d).await;
        }
        match due? {
            OneShot::Status {
                status,
                retry_after,
            } => {
                tracing::debug!(?ep, status, "sandbox fault: status");
                Some(status_response(ep, status, retry_after))
            }
            OneShot::Pass => None,
            OneShot::Reset | OneShot::LoseAnswer => {
                // (A LoseAnswer never gets here: `before` turns it into `lose_answers`.)
                tracing::debug!(?ep, "sandbox fault: connection reset");
                Some(reset_response())
            }
        }
    }

    /// After the handler: its `answer` (its effect already happened), or a
    /// dropped connection when a lost answer is due.
    fn after(&self, ep: Endpoint, answer: Response) -> Response {
        let lose = {
            let mut all = self.lock();
            all.get_mut(&ep).is_some_and(|f| {
                let due = f.lose_answers > 0;
                f.lose_answers = f.lose_answers.saturating_sub(1);
                due
            })
        };
        if lose {
            tracing::debug!(?ep, "sandbox fault: answer lost after execution");
            reset_response()
        } else {
            answer
        }
    }

    /// One-shot faults (`Status`, `ConnectionReset`, `LostAnswer`) of `ep` that
    /// met a request so far; [`Faults::clear`] resets it.
    pub fn fired(&self, ep: Endpoint) -> u64 {
        self.lock().get(&ep).map_or(0, |f| f.fired)
    }

    /// One-shot faults of `ep` added but not yet met by a request.
    pub fn queued(&self, ep: Endpoint) -> u64 {
        self.lock().get(&ep).map_or(0, |f| f.one_shot.len() as u64)
    }

    /// Take the pending-poll count set for `ep` (0 when none); the next call returns 0.
    pub fn pending_polls(&self, ep: Endpoint) -> u32 {
        self.lock()
            .get_mut(&ep)
            .map(|f| std::mem::take(&mut f.pending))
            .unwrap_or(0)
    }
}

/// Largest request body the fault layer reads to record it (the emulators
/// refuse larger bodies themselves; axum's default limit is 2 MiB).
const RECORDED_BODY_LIMIT: usize = 64 * 1024 * 1024;

/// Wrap `route` (one endpoint's handler) in the fault layer for `ep`.
pub fn on<S>(state: &Arc<SandboxState>, ep: Endpoint, route: MethodRouter<S>) -> MethodRouter<S>
where
    S: Clone + Send + Sync + 'static,
{
    route.layer(axum::middleware::from_fn_with_state(
        (state.clone(), ep),
        fault_layer,
    ))
}

async fn fault_layer(
    State((state, ep)): State<(Arc<SandboxState>, Endpoint)>,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, RECORDED_BODY_LIMIT).await {
        Ok(b) => b,
        Err(_) => return StatusCode::PAYLOAD_TOO_LARGE.into_response(),
    };
    state.record_request(ep, parts.uri.query(), &body);
    if let Some(answer) = state.faults.before(ep).await {
        return answer;
    }
    let answer = next.run(Request::from_parts(parts, Body::from(body))).await;
    state.faults.after(ep, answer)
}

fn status_response(ep: Endpoint, status: u16, retry_after: Option<u64>) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let reason = code.canonical_reason().unwrap_or("Error");
    let message = format!("{reason} (injected by the sandbox)");
    let body = match ep {
        Endpoint::ImmutaAuthenticate
        | Endpoint::ImmutaVend
        | Endpoint::ImmutaStatus
        | Endpoint::ImmutaDelete
        | Endpoint::ImmutaActivity => json!({ "message": message }),
        Endpoint::SnowflakeSubmit | Endpoint::SnowflakeStatus | Endpoint::SnowflakeCancel => {
            json!({ "code": format!("{status:06}"), "message": message })
        }
        Endpoint::DatabricksToken => json!({
            "error": match status {
                429 => "slow_down",
                503 => "temporarily_unavailable",
                _ => "server_error",
            },
            "error_description": message,
        }),
        Endpoint::DatabricksSubmit
        | Endpoint::DatabricksStatus
        | Endpoint::DatabricksChunk
        | Endpoint::DatabricksCancel
        | Endpoint::DatabricksScimMe
        | Endpoint::DatabricksPermissions => json!({
            "error_code": match status {
                429 => "REQUEST_LIMIT_EXCEEDED",
                503 => "TEMPORARILY_UNAVAILABLE",
                500 => "INTERNAL_ERROR",
                _ => "BAD_REQUEST",
            },
            "message": message,
        }),
    };
    let mut resp = (code, axum::Json(body)).into_response();
    if let Some(secs) = retry_after {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
}

/// A 200 whose body fails immediately: hyper aborts the connection mid-answer.
fn reset_response() -> Response {
    let stream = futures::stream::once(async {
        Err::<bytes::Bytes, std::io::Error>(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "connection reset (injected by the sandbox)",
        ))
    });
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(stream),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_of(answer: Response) -> Result<bytes::Bytes, axum::Error> {
        axum::body::to_bytes(answer.into_body(), 1 << 20).await
    }

    #[tokio::test]
    async fn one_shot_faults_fire_in_order_are_counted_and_lost_answers_follow_the_handler() {
        let ep = Endpoint::SnowflakeSubmit;
        let faults = Faults::default();
        faults.add(
            ep,
            Fault::Status {
                status: 429,
                retry_after: Some(2),
                times: 1,
            },
        );
        faults.add(ep, Fault::LostAnswer { times: 1 });
        assert_eq!((faults.queued(ep), faults.fired(ep)), (2, 0));

        let first = faults.before(ep).await.expect("the 429 is due first");
        assert_eq!(first.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(first.headers()[header::RETRY_AFTER], "2");
        let body: serde_json::Value =
            serde_json::from_slice(&body_of(first).await.unwrap()).unwrap();
        assert_eq!(body["code"], "000429");

        assert!(
            faults.before(ep).await.is_none(),
            "a lost answer lets the request reach the handler"
        );
        let lost = faults.after(ep, (StatusCode::OK, "done").into_response());
        assert!(body_of(lost).await.is_err(), "then its answer breaks");
        let kept = faults.after(ep, (StatusCode::OK, "done").into_response());
        assert_eq!(body_of(kept).await.unwrap(), "done", "only once");

        assert_eq!((faults.queued(ep), faults.fired(ep)), (0, 2));
        // A pass lets one request through and places the next fault after it.
        faults.add(ep, Fault::Pass { times: 1 });
        faults.add(
            ep,
            Fault::Status {
                status: 400,
                retry_after: None,
                times: 1,
            },
        );
        assert!(faults.before(ep).await.is_none(), "passed");
        let second = faults.before(ep).await.expect("then the 400");
        assert_eq!(second.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            (faults.queued(ep), faults.fired(ep)),
            (0, 3),
            "a pass is not a fault"
        );
        assert!(faults.before(Endpoint::SnowflakeStatus).await.is_none());
        assert_eq!(faults.fired(Endpoint::SnowflakeStatus), 0);
        faults.clear();
        assert_eq!(faults.fired(ep), 0);
    }
}
