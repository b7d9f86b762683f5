//! Per-key credential cache with an expiry margin and single-flight minting.
//!
//! Each platform path keeps the end user's scoped credential (vended role +
//! PAT, or vended group + OAuth token) here. Concurrent callers for the same
//! key wait on one mint instead of each vending a role, so 100 cold calls of
//! one user cost one vend and one token. Entries are re-minted when they would
//! expire within the margin, and can be invalidated when the platform rejects
//! them.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

struct Entry<V> {
    value: V,
    expires_at: SystemTime,
}

type Slot<V> = Arc<tokio::sync::Mutex<Option<Entry<V>>>>;

/// Cache of short-lived credentials, one slot per key.
pub struct CredentialCache<K, V> {
    margin: Duration,
    slots: Mutex<HashMap<K, Slot<V>>>,
}

impl<K, V> CredentialCache<K, V>
where
    K: Eq + Hash + Clone + Send + Sync,
    V: Clone + Send + Sync,
{
    /// Values are reused only while they live longer than `margin`.
    pub fn new(margin: Duration) -> Self {
        Self {
            margin,
            slots: Mutex::new(HashMap::new()),
        }
    }

    fn slot(&self, key: &K) -> Slot<V> {
        let mut slots = self.slots.lock().expect("credential cache lock");
        slots.entry(key.clone()).or_default().clone()
    }

    /// The cached value if it is still fresh, else the value `mint(previous)` returns.
    ///
    /// Only one mint runs per key at a time; concurrent callers wait for it and
    /// then share its value. A failed mint caches nothing, and the next caller
    /// tries again. `previous` is the stale value (if any) so the minter can
    /// clean it up.
    pub async fn get_or_mint<F, Fut, E>(&self, key: K, mint: F) -> Result<V, E>
    where
        F: FnOnce(Option<V>) -> Fut,
        Fut: Future<Output = Result<(V, SystemTime), E>>,
    {
        let slot = self.slot(&key);
        let mut guard = slot.lock().await;
        if let Some(entry) = guard.as_ref()
            && is_fresh(entry.expires_at, self.margin)
        {
            return Ok(entry.value.clone());
        }
        let previous = guard.take().map(|e| e.value);
        let (value, expires_at) = mint(previous).await?;
        *guard = Some(Entry {
            value: value.clone(),
            expires_at,
        });
        Ok(value)
    }

    /// Drop the entry for `key` if `is_same` says it is the value the caller saw fail.
    /// Returns the dropped value. A newer value minted meanwhile is kept.
    pub async fn invalidate_if(&self, key: &K, is_same: impl Fn(&V) -> bool) -> Option<V> {
        let slot = self.slot(key);
        let mut guard = slot.lock().await;
        if guard.as_ref().is_some_and(|e| is_same(&e.value)) {
            return guard.take().map(|e| e.value);
        }
        None
    }

    /// Forget every cached credential.
    pub async fn clear(&self) {
        let slots: Vec<Slot<V>> = self
            .slots
            .lock()
            .expect("credential cache lock")
            .drain()
            .map(|(_, s)| s)
            .collect();
        for slot in slots {
            slot.lock().await.take();
        }
    }

    /// Number of keys with a slot (fresh or not).
    pub fn len(&self) -> usize {
        self.slots.lock().expect("credential cache lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn is_fresh(expires_at: SystemTime, margin: Duration) -> bool {
    match expires_at.duration_since(SystemTime::now()) {
        Ok(left) => left > margin,
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn in_secs(s: u64) -> SystemTime {
        SystemTime::now() + Duration::from_secs(s)
    }

    #[tokio::test]
    async fn concurrent_cold_callers_share_one_mint() {
        let cache = Arc::new(CredentialCache::<String, u32>::new(Duration::from_secs(10)));
        let mints = Arc::new(AtomicU32::new(0));
        let mut tasks = Vec::new();
        for _ in 0..100 {
            let cache = cache.clone();
            let mints = mints.clone();
            tasks.push(tokio::spawn(async move {
                cache
                    .get_or_mint("alice".to_string(), |_| async move {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        let n = mints.fetch_add(1, Ordering::SeqCst) + 1;
                        Ok::<_, String>((n, in_secs(3600)))
                    })
                    .await
                    .unwrap()
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), 1);
        }
        assert_eq!(mints.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn value_inside_margin_is_reminted_with_previous_passed() {
        let cache = CredentialCache::<&str, u32>::new(Duration::from_secs(60));
        let v = cache
            .get_or_mint("k", |_| async { Ok::<_, ()>((1, in_secs(30))) })
            .await
            .unwrap();
        assert_eq!(v, 1);
        let v = cache
            .get_or_mint("k", |prev| async move {
                assert_eq!(prev, Some(1));
                Ok::<_, ()>((2, in_secs(3600)))
            })
            .await
            .unwrap();
        assert_eq!(v, 2);
        let v = cache
            .get_or_mint("k", |_| async { Ok::<_, ()>((3, in_secs(3600))) })
            .await
            .unwrap();
        assert_eq!(v, 2, "fresh value is reused");
    }

    #[tokio::test]
    async fn failed_mint_caches_nothing_and_invalidate_only_drops_the_seen_value() {
        let cache = CredentialCache::<&str, u32>::new(Duration::from_secs(1));
        let err = cache
            .get_or_mint("k", |_| async { Err::<(u32, SystemTime), _>("boom") })
            .await;
        assert_eq!(err, Err("boom"));
        cache
            .get_or_mint("k", |_| async { Ok::<_, ()>((7, in_secs(3600))) })
            .await
            .unwrap();
        assert_eq!(cache.invalidate_if(&"k", |v| *v == 8).await, None);
        assert_eq!(cache.invalidate_if(&"k", |v| *v == 7).await, Some(7));
        let v = cache
            .get_or_mint("k", |prev| async move {
                Ok::<_, ()>((prev.unwrap_or(9), in_secs(3600)))
            })
            .await;
        assert_eq!(v, Ok(9));
    }
}
