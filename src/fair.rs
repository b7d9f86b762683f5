//! Fair limits on the calls that reach a platform: at most
//! `limits.max_calls_per_user` at once for one end user, and at most
//! `limits.max_inflight_statements` at once for the whole process.
//!
//! A call that finds no free slot waits for one (reporting progress) up to
//! `limits.limit_wait_secs`, then fails with a tool error naming the limit and
//! how long it waited; it never reaches the platform. The per-user slot is
//! taken first, so a user whose agent runs away queues behind their own calls
//! and holds at most `max_calls_per_user` of the process-wide slots: as long
//! as that is below `max_inflight_statements`, other users always find room.
//! The limits are per process (per replica).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

/// Why a call was not admitted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Busy {
    #[error(
        "{user} already has {limit} calls running (limits.max_calls_per_user = {limit}); \
         waited {waited_secs:.1} s for one to finish. Retry when a running call has finished."
    )]
    User {
        user: String,
        limit: usize,
        waited_secs: f64,
    },
    #[error(
        "the server is running its limit of {limit} statements \
         (limits.max_inflight_statements = {limit}); waited {waited_secs:.1} s for a free slot. \
         Retry in a few seconds."
    )]
    Server { limit: usize, waited_secs: f64 },
    #[error("the call was cancelled while it waited for a free slot")]
    Cancelled,
}

impl Busy {
    /// The audit outcome.
    pub fn outcome(&self) -> &'static str {
        match self {
            Busy::User { .. } => "user_busy",
            Busy::Server { .. } => "server_busy",
            Busy::Cancelled => "cancelled",
        }
    }
}

/// The slots one admitted call holds; dropping it frees them.
pub struct Admission {
    // Field order is drop order: the process slot, then the user's.
    _server: OwnedSemaphorePermit,
    user: Option<OwnedSemaphorePermit>,
    user_slots: Arc<Semaphore>,
    key: String,
    limits: Arc<FairLimits>,
}

impl Drop for Admission {
    fn drop(&mut self) {
        drop(self.user.take());
        // Forget a user with nothing running and nobody waiting, so the map
        // holds only users with calls in flight.
        let mut users = self.limits.users.lock().unwrap_or_else(|e| e.into_inner());
        if Arc::strong_count(&self.user_slots) == 2 {
            users.remove(&self.key);
        }
    }
}

/// The per-user and process-wide slots.
#[derive(Debug)]
pub struct FairLimits {
    per_user: usize,
    server_limit: usize,
    server: Arc<Semaphore>,
    users: Mutex<HashMap<String, Arc<Semaphore>>>,
    wait: Duration,
}

impl FairLimits {
    /// `per_user` and `server` slots (each at least 1); a call waits up to `wait` for one.
    pub fn new(per_user: usize, server: usize, wait: Duration) -> Arc<Self> {
        let server = server.max(1);
        Arc::new(Self {
            per_user: per_user.max(1),
            server_limit: server,
            server: Arc::new(Semaphore::new(server)),
            users: Mutex::new(HashMap::new()),
            wait,
        })
    }

    /// Take a slot for `user` (then a process slot), waiting up to the configured time.
    /// `waiting` is called once if the call has to wait.
    pub async fn admit(
        self: &Arc<Self>,
        user: &str,
        cancel: &CancellationToken,
        waiting: impl FnOnce(&str),
    ) -> Result<Admission, Busy> {
        let started = Instant::now();
        let deadline = started + self.wait;
        let user_slots = {
            let mut users = self.users.lock().unwrap_or_else(|e| e.into_inner());
            users
                .entry(user.to_string())
                .or_insert_with(|| Arc::new(Semaphore::new(self.per_user)))
                .clone()
        };
        let mut waiting = Some(waiting);
        let user_permit = match user_slots.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                if let Some(w) = waiting.take() {
                    w("waiting for one of your running calls to finish");
                }
                let acquired = tokio::select! {
                    p = tokio::time::timeout_at(deadline.into(), user_slots.clone().acquire_owned()) => p,
                    _ = cancel.cancelled() => {
                        self.forget_if_idle(user, user_slots);
                        return Err(Busy::Cancelled);
                    }
                };
                match acquired {
                    Ok(Ok(p)) => p,
                    _ => {
                        self.forget_if_idle(user, user_slots);
                        return Err(Busy::User {
                            user: user.to_string(),
                            limit: self.per_user,
                            waited_secs: started.elapsed().as_secs_f64(),
                        });
                    }
                }
            }
        };
        let server_permit = match self.server.clone().try_acquire_owned() {
            Ok(p) => Ok(p),
            Err(_) => {
                if let Some(w) = waiting.take() {
                    w("waiting for a free statement slot on the server");
                }
                tokio::select! {
                    p = tokio::time::timeout_at(deadline.into(), self.server.clone().acquire_owned()) => match p {
                        Ok(Ok(p)) => Ok(p),
                        _ => Err(Busy::Server {
                            limit: self.server_limit,
                            waited_secs: started.elapsed().as_secs_f64(),
                        }),
                    },
                    _ = cancel.cancelled() => Err(Busy::Cancelled),
                }
            }
        };
        match server_permit {
            Ok(server) => Ok(Admission {
                _server: server,
                user: Some(user_permit),
                user_slots,
                key: user.to_string(),
                limits: self.clone(),
            }),
            Err(busy) => {
                drop(user_permit);
                self.forget_if_idle(user, user_slots);
                Err(busy)
            }
        }
    }

    fn forget_if_idle(&self, user: &str, user_slots: Arc<Semaphore>) {
        let mut users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        if Arc::strong_count(&user_slots) == 2 {
            users.remove(user);
        }
    }

    /// Users with calls running or waiting (the map's size).
    pub fn tracked_users(&self) -> usize {
        self.users.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn never() -> CancellationToken {
        CancellationToken::new()
    }

    #[tokio::test]
    async fn a_user_over_the_limit_waits_then_is_refused_naming_the_limit() {
        let limits = FairLimits::new(2, 10, Duration::from_millis(100));
        let a = limits.admit("alice", &never(), |_| {}).await.unwrap();
        let _b = limits.admit("alice", &never(), |_| {}).await.unwrap();
        let mut waited = false;
        let err = limits
            .admit("alice", &never(), |_| waited = true)
            .await
            .err()
            .unwrap();
        assert!(waited);
        assert!(matches!(err, Busy::User { limit: 2, .. }), "{err}");
        assert!(err.to_string().contains("limits.max_calls_per_user = 2"));
        // Another user is not affected.
        let _c = limits.admit("bob", &never(), |_| {}).await.unwrap();
        // A freed slot admits alice again.
        drop(a);
        limits.admit("alice", &never(), |_| {}).await.unwrap();
    }

    #[tokio::test]
    async fn a_waiting_call_gets_the_slot_a_finished_call_frees() {
        let limits = FairLimits::new(1, 10, Duration::from_secs(10));
        let first = limits.admit("alice", &never(), |_| {}).await.unwrap();
        let l = limits.clone();
        let second = tokio::spawn(async move { l.admit("alice", &never(), |_| {}).await.is_ok() });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!second.is_finished());
        drop(first);
        assert!(second.await.unwrap());
    }

    #[tokio::test]
    async fn the_server_limit_is_shared_by_all_users() {
        let limits = FairLimits::new(5, 2, Duration::from_millis(50));
        let _a = limits.admit("alice", &never(), |_| {}).await.unwrap();
        let _b = limits.admit("bob", &never(), |_| {}).await.unwrap();
        let err = limits.admit("carol", &never(), |_| {}).await.err().unwrap();
        assert!(matches!(err, Busy::Server { limit: 2, .. }), "{err}");
        assert!(
            err.to_string()
                .contains("limits.max_inflight_statements = 2")
        );
    }

    #[tokio::test]
    async fn cancelling_a_waiting_call_ends_the_wait() {
        let limits = FairLimits::new(1, 10, Duration::from_secs(60));
        let _a = limits.admit("alice", &never(), |_| {}).await.unwrap();
        let cancel = CancellationToken::new();
        let c = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            c.cancel();
        });
        let err = tokio::time::timeout(
            Duration::from_secs(10),
            limits.admit("alice", &cancel, |_| {}),
        )
        .await
        .expect("cancel ends the wait")
        .err()
        .unwrap();
        assert_eq!(err, Busy::Cancelled);
    }

    #[tokio::test]
    async fn users_with_nothing_running_are_forgotten() {
        let limits = FairLimits::new(1, 10, Duration::from_millis(20));
        for i in 0..100 {
            let a = limits
                .admit(&format!("user{i}"), &never(), |_| {})
                .await
                .unwrap();
            drop(a);
        }
        assert_eq!(limits.tracked_users(), 0);
        let held = limits.admit("alice", &never(), |_| {}).await.unwrap();
        assert!(limits.admit("alice", &never(), |_| {}).await.is_err());
        assert_eq!(limits.tracked_users(), 1);
        drop(held);
        assert_eq!(limits.tracked_users(), 0);
    }
}
