//! Binds each MCP session id to the user whose token opened it.
//!
//! rmcp's session manager knows nothing about users, and a session id is not
//! a credential. The identity of every request comes from its own bearer
//! token; this layer additionally refuses a request whose token names a user
//! other than the one who initialized the session (a token of user A replayed
//! with user B's session id), with the same 401 challenge as a bad token.
//! Entries are forgotten when the session is deleted, and the table is
//! bounded: the oldest bindings are dropped past `capacity`.

use crate::identity::http::auth_failure;
use crate::identity::{AuthError, VerifiedUser};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

const SESSION_HEADER: &str = "mcp-session-id";

/// Session id → user id, with insertion order for eviction.
#[derive(Debug)]
pub struct SessionOwners {
    resource_metadata_url: String,
    capacity: usize,
    inner: Mutex<(HashMap<String, String>, VecDeque<String>)>,
}

impl SessionOwners {
    pub fn new(resource_metadata_url: impl Into<String>, capacity: usize) -> Self {
        Self {
            resource_metadata_url: resource_metadata_url.into(),
            capacity: capacity.max(1),
            inner: Mutex::new((HashMap::new(), VecDeque::new())),
        }
    }

    fn owner(&self, session: &str) -> Option<String> {
        self.inner
            .lock()
            .expect("session owners lock")
            .0
            .get(session)
            .cloned()
    }

    fn bind(&self, session: &str, user: &str) {
        let mut guard = self.inner.lock().expect("session owners lock");
        let (map, order) = &mut *guard;
        if map.insert(session.to_string(), user.to_string()).is_none() {
            order.push_back(session.to_string());
        }
        while map.len() > self.capacity {
            match order.pop_front() {
                Some(oldest) => {
                    map.remove(&oldest);
                }
                None => break,
            }
        }
    }

    fn forget(&self, session: &str) {
        let mut guard = self.inner.lock().expect("session owners lock");
        guard.0.remove(session);
        guard.1.retain(|s| s != session);
    }

    /// Number of bound sessions.
    pub fn len(&self) -> usize {
        self.inner.lock().expect("session owners lock").0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Middleware (after bearer verification): refuse cross-user session use, record new sessions.
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
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if let Some(session) = &session
        && let Some(owner) = owners.owner(session)
        && owner != user
    {
        tracing::warn!(user = %user, "request refused: MCP session belongs to another user");
        return auth_failure(
            &owners.resource_metadata_url,
            &AuthError::SessionOfAnotherUser,
        );
    }
    let is_delete = request.method() == http::Method::DELETE;
    let response = next.run(request).await;
    match (&session, is_delete) {
        (Some(s), true) if response.status().is_success() => owners.forget(s),
        (None, _) => {
            if let Some(new) = response
                .headers()
                .get(SESSION_HEADER)
                .and_then(|v| v.to_str().ok())
            {
                owners.bind(new, &user);
            }
        }
        _ => {}
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_table_drops_oldest() {
        let owners = SessionOwners::new("http://x/.well-known/oauth-protected-resource", 2);
        owners.bind("s1", "alice");
        owners.bind("s2", "bob");
        owners.bind("s3", "carol");
        assert_eq!(owners.len(), 2);
        assert_eq!(owners.owner("s1"), None);
        assert_eq!(owners.owner("s3").as_deref(), Some("carol"));
        owners.forget("s3");
        assert_eq!(owners.owner("s3"), None);
    }
}
