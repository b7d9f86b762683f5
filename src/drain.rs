//! Graceful shutdown of tool calls: counts the calls in flight, waits for
//! them up to a deadline, then cancels the rest (each platform path cancels
//! its running statement when its call's cancellation fires).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

#[derive(Default)]
struct Inner {
    in_flight: AtomicUsize,
    idle: Notify,
    stop: CancellationToken,
}

/// The tool calls of one server, for a graceful shutdown (cheap to clone).
#[derive(Clone, Default)]
pub struct Drain {
    inner: Arc<Inner>,
}

/// One call in flight; dropping it (the call ended) counts it out.
pub struct CallGuard {
    inner: Arc<Inner>,
    done: CancellationToken,
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        self.done.cancel();
        self.inner.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.inner.idle.notify_waiters();
    }
}

impl Drain {
    /// Count a call in; its cancellation fires when the client cancels it
    /// (`request`) or when the drain cancels every call.
    pub fn enter(&self, request: &CancellationToken) -> (CancellationToken, CallGuard) {
        self.inner.in_flight.fetch_add(1, Ordering::SeqCst);
        let cancel = self.inner.stop.child_token();
        let done = CancellationToken::new();
        let (request, forward, finished) = (request.clone(), cancel.clone(), done.clone());
        tokio::spawn(async move {
            tokio::select! {
                _ = request.cancelled() => forward.cancel(),
                _ = finished.cancelled() => {}
            }
        });
        let guard = CallGuard {
            inner: self.inner.clone(),
            done,
        };
        (cancel, guard)
    }

    /// Calls in flight now.
    pub fn in_flight(&self) -> usize {
        self.inner.in_flight.load(Ordering::SeqCst)
    }

    /// Wait until no call is in flight, at most `deadline`; true when none is.
    pub async fn wait_idle(&self, deadline: Duration) -> bool {
        let wait = async {
            loop {
                let idle = self.inner.idle.notified();
                if self.in_flight() == 0 {
                    return;
                }
                idle.await;
            }
        };
        tokio::time::timeout(deadline, wait).await.is_ok()
    }

    /// Cancel every call in flight (and any call entering from now on).
    pub fn cancel_all(&self) {
        self.inner.stop.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn calls_are_waited_for_then_cancelled() {
        let drain = Drain::default();
        let request = CancellationToken::new();
        let (cancel, guard) = drain.enter(&request);
        assert_eq!(drain.in_flight(), 1);
        assert!(
            !drain.wait_idle(Duration::from_millis(20)).await,
            "still running"
        );
        drain.cancel_all();
        assert!(cancel.is_cancelled(), "the call's cancellation fired");
        drop(guard);
        assert!(drain.wait_idle(Duration::from_millis(20)).await);
        assert_eq!(drain.in_flight(), 0);
    }

    #[tokio::test]
    async fn a_client_cancel_reaches_the_call_alone() {
        let drain = Drain::default();
        let (first, second) = (CancellationToken::new(), CancellationToken::new());
        let (a, _ga) = drain.enter(&first);
        let (b, _gb) = drain.enter(&second);
        first.cancel();
        tokio::time::timeout(Duration::from_secs(5), a.cancelled())
            .await
            .expect("forwarded");
        assert!(!b.is_cancelled());
    }
}
