//! Binds each MCP session id to the user whose token opened it, and caps
//! how many sessions exist.
//!
//! rmcp's session manager knows nothing about users, and a session id is not
//! a credential. The identity of every request comes from its own bearer
//! token; this layer additionally
//! - refuses a request whose token names a user other than the one who
//!   initialized the session (a token of user A replayed with user B's
//!   session id), with the same 401 challenge as a bad token;
//! - answers `404` to a session id it does not know (instead of letting rmcp
//!   decide), so no session can ever be used without an owner;
//! - caps live sessions per user and in total: an `initialize` beyond either
//!   cap gets `429 Too Many Requests` with a JSON body
//!   `{"error":"too_many_sessions", ...}` and no session is created.
//!
//! The table mirrors rmcp's own: [`OwnedSessionManager`] wraps
//! [`LocalSessionManager`] and drops a binding whenever rmcp closes the
//! session (DELETE, idle expiry, shutdown), so the two cannot drift apart and
//! no binding is ever evicted while its session lives.

use crate::identity::http::auth_failure;
use crate::identity::{AuthError, VerifiedUser};
use axum::Json;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::Stream;
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use rmcp::transport::WorkerTransport;
use rmcp::transport::common::server_side_http::ServerSseMessage;
use rmcp::transport::streamable_http_server::SessionId;
use rmcp::transport::streamable_http_server::session::SessionManager;
use rmcp::transport::streamable_http_server::session::local::{
    LocalSessionManager, LocalSessionManagerError, LocalSessionWorker,
};
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

const SESSION_HEADER: &str = "mcp-session-id";

/// Why a new session cannot be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionLimit {
    #[error(
        "this user already has {0} live MCP sessions (server.max_sessions_per_user); close one (HTTP DELETE) or let it expire"
    )]
    PerUser(usize),
    #[error("the server already holds {0} live MCP sessions (server.max_sessions); retry later")]
    Global(usize),
}

#[derive(Debug, Default)]
struct Table {
    /// Sessions rmcp has created and not yet closed.
    live: HashSet<String>,
    /// Session id → user id.
    owners: HashMap<String, String>,
    /// User id → bound sessions plus `initialize` calls in flight.
    per_user: HashMap<String, usize>,
    /// Bound sessions plus `initialize` calls in flight, all users.
    total: usize,
}

impl Table {
    fn release(&mut self, user: &str) {
        if let Some(n) = self.per_user.get_mut(user) {
            *n -= 1;
            if *n == 0 {
                self.per_user.remove(user);
            }
        }
        self.total = self.total.saturating_sub(1);
    }
}

/// Session id → user id, with per-user and global caps.
#[derive(Debug)]
pub struct SessionOwners {
    resource_metadata_url: String,
    max_per_user: usize,
    max_total: usize,
    inner: Mutex<Table>,
}

/// A slot reserved for one `initialize`; released on drop unless bound.
struct Reservation<'a> {
    owners: &'a SessionOwners,
    user: String,
    bound: bool,
}

impl Reservation<'_> {
    /// Bind `session` to the reserving user; false if rmcp already closed it.
    fn bind(mut self, session: &str) -> bool {
        let mut table = self.owners.table();
        if !table.live.contains(session) || table.owners.contains_key(session) {
            return false; // released by Drop
        }
        table.owners.insert(session.to_string(), self.user.clone());
        self.bound = true;
        true
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if !self.bound {
            self.owners.table().release(&self.user);
        }
    }
}

impl SessionOwners {
    /// `max_per_user` / `max_total`: live sessions allowed (each at least 1).
    pub fn new(
        resource_metadata_url: impl Into<String>,
        max_per_user: usize,
        max_total: usize,
    ) -> Self {
        Self {
            resource_metadata_url: resource_metadata_url.into(),
            max_per_user: max_per_user.max(1),
            max_total: max_total.max(1),
            inner: Mutex::new(Table::default()),
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn owner(&self, session: &str) -> Option<String> {
        self.table().owners.get(session).cloned()
    }

    fn reserve(&self, user: &str) -> Result<Reservation<'_>, SessionLimit> {
        let mut table = self.table();
        let mine = table.per_user.get(user).copied().unwrap_or(0);
        if mine >= self.max_per_user {
            return Err(SessionLimit::PerUser(self.max_per_user));
        }
        if table.total >= self.max_total {
            return Err(SessionLimit::Global(self.max_total));
        }
        *table.per_user.entry(user.to_string()).or_insert(0) += 1;
        table.total += 1;
        Ok(Reservation {
            owners: self,
            user: user.to_string(),
            bound: false,
        })
    }

    /// rmcp created `session`.
    fn created(&self, session: &str) {
        self.table().live.insert(session.to_string());
    }

    /// rmcp closed `session` (DELETE, idle expiry, shutdown): forget its binding.
    fn closed(&self, session: &str) {
        let mut table = self.table();
        table.live.remove(session);
        if let Some(user) = table.owners.remove(session) {
            table.release(&user);
        }
    }

    /// Number of bound sessions.
    pub fn len(&self) -> usize {
        self.table().owners.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Live sessions bound to `user`.
    pub fn sessions_of(&self, user: &str) -> usize {
        let table = self.table();
        table.owners.values().filter(|u| *u == user).count()
    }
}

/// rmcp's [`LocalSessionManager`], telling [`SessionOwners`] when sessions come and go.
pub struct OwnedSessionManager {
    inner: LocalSessionManager,
    owners: Arc<SessionOwners>,
}

impl OwnedSessionManager {
    pub fn new(inner: LocalSessionManager, owners: Arc<SessionOwners>) -> Self {
        Self { inner, owners }
    }
}

impl SessionManager for OwnedSessionManager {
    type Error = LocalSessionManagerError;
    type Transport = WorkerTransport<LocalSessionWorker>;

    async fn create_session(&self) -> Result<(SessionId, Self::Transport), Self::Error> {
        let (id, transport) = self.inner.create_session().await?;
        self.owners.created(&id);
        Ok((id, transport))
    }

    async fn initialize_session(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<ServerJsonRpcMessage, Self::Error> {
        self.inner.initialize_session(id, message).await
    }

    async fn has_session(&self, id: &SessionId) -> Result<bool, Self::Error> {
        self.inner.has_session(id).await
    }

    async fn close_session(&self, id: &SessionId) -> Result<(), Self::Error> {
        let result = self.inner.close_session(id).await;
        self.owners.closed(id);
        result
    }

    async fn create_stream(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        self.inner.create_stream(id, message).await
    }

    async fn accept_message(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<(), Self::Error> {
        self.inner.accept_message(id, message).await
    }

    async fn create_standalone_stream(
        &self,
        id: &SessionId,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        self.inner.create_standalone_stream(id).await
    }

    async fn resume(
        &self,
        id: &SessionId,
        last_event_id: String,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        self.inner.resume(id, last_event_id).await
    }
}

fn too_many_sessions(limit: &SessionLimit) -> Response {
    let body = json!({
        "error": "too_many_sessions",
        "error_description": limit.to_string(),
    });
    (StatusCode::TOO_MANY_REQUESTS, Json(body)).into_response()
}

fn unknown_session() -> Response {
    let body = json!({
        "error": "session_not_found",
        "error_description": "this MCP session does not exist (it was closed or has expired): initialize a new one",
    });
    (StatusCode::NOT_FOUND, Json(body)).into_response()
}

/// Middleware (after bearer verification, stateful mode): refuse cross-user and
/// unknown sessions, cap new ones, record who opened each.
pub async fn bind_session_to_user(
    State(owners): State<Arc<SessionOwners>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(user) = request
        .extensions()
        .get::<VerifiedUser>()
        .map(|u| u.user_id.clone())
    else {
        return auth_failure(&owners.resource_metadata_url, &AuthError::Missing);
    };
    let session = request
        .headers()
        .get(SESSION_HEADER)
        .map(|v| v.to_str().map(str::to_string));
    match session {
        Some(Ok(session)) => match owners.owner(&session) {
            Some(owner) if owner == user => next.run(request).await,
            Some(_) => {
                // `?`: the user id is escaped, so it cannot forge a log line.
                tracing::warn!(user = ?user, "request refused: MCP session belongs to another user");
                auth_failure(
                    &owners.resource_metadata_url,
                    &AuthError::SessionOfAnotherUser,
                )
            }
            None => unknown_session(),
        },
        Some(Err(_)) => unknown_session(),
        None => {
            // Without a session id only an `initialize` POST can succeed (rmcp answers
            // anything else with an error and creates no session); a slot is held while
            // it runs so concurrent initializes cannot overshoot the caps.
            let reservation = match owners.reserve(&user) {
                Ok(r) => r,
                Err(limit) => {
                    tracing::info!(user = ?user, %limit, "initialize refused: session cap");
                    return too_many_sessions(&limit);
                }
            };
            let response = next.run(request).await;
            if let Some(new) = response
                .headers()
                .get(SESSION_HEADER)
                .and_then(|v| v.to_str().ok())
                && !reservation.bind(new)
            {
                tracing::debug!("session closed before it could be bound");
            }
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_count_live_sessions_and_closing_frees_the_slot() {
        let owners = SessionOwners::new("http://x/.well-known/oauth-protected-resource", 2, 3);
        for (s, u) in [("s1", "alice"), ("s2", "alice"), ("s3", "bob")] {
            owners.created(s);
            assert!(owners.reserve(u).unwrap().bind(s));
        }
        assert_eq!(
            owners.reserve("alice").err(),
            Some(SessionLimit::PerUser(2))
        );
        assert_eq!(owners.reserve("carol").err(), Some(SessionLimit::Global(3)));
        assert_eq!(owners.owner("s1").as_deref(), Some("alice"));
        owners.closed("s1");
        assert_eq!(owners.owner("s1"), None);
        assert_eq!(owners.sessions_of("alice"), 1);
        // A refused or failed initialize releases its slot.
        drop(owners.reserve("alice").unwrap());
        let r = owners.reserve("alice").unwrap();
        assert!(
            !r.bind("never-created"),
            "a session rmcp does not hold is not bound"
        );
        assert_eq!(owners.len(), 2);
        owners.created("s4");
        assert!(owners.reserve("alice").unwrap().bind("s4"));
        assert_eq!(owners.reserve("dave").err(), Some(SessionLimit::Global(3)));
    }

    // Tests added for surviving mutants (scripts/mutants.sh).

    #[test]
    fn a_closed_session_frees_one_slot_of_its_owner_and_no_more() {
        let owners = SessionOwners::new("http://x/.well-known/oauth-protected-resource", 2, 10);
        assert!(owners.is_empty());
        for (s, u) in [("s1", "alice"), ("s2", "alice"), ("s3", "bob")] {
            owners.created(s);
            assert!(owners.reserve(u).unwrap().bind(s));
        }
        assert!(!owners.is_empty());
        assert_eq!(owners.sessions_of("alice"), 2);
        assert_eq!(owners.sessions_of("bob"), 1);
        assert_eq!(owners.sessions_of("carol"), 0);
        owners.closed("s1");
        owners.created("s4");
        assert!(owners.reserve("alice").unwrap().bind("s4"));
        // Back at the per-user cap: closing one session freed exactly one slot.
        assert_eq!(
            owners.reserve("alice").err(),
            Some(SessionLimit::PerUser(2))
        );
        for s in ["s2", "s3", "s4"] {
            owners.closed(s);
        }
        assert!(owners.is_empty());
        assert_eq!(owners.len(), 0);
    }

    #[test]
    fn a_bound_session_cannot_be_bound_again_by_another_user() {
        let owners = SessionOwners::new("http://x/.well-known/oauth-protected-resource", 5, 5);
        owners.created("s1");
        assert!(owners.reserve("alice").unwrap().bind("s1"));
        assert!(
            !owners.reserve("mallory").unwrap().bind("s1"),
            "a second initialize cannot take over a live session"
        );
        assert_eq!(owners.owner("s1").as_deref(), Some("alice"));
        assert_eq!(owners.sessions_of("mallory"), 0);
    }
}
