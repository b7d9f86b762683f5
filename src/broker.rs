//! Per-key credential cache with an expiry margin, single-flight minting and
//! in-flight leases.
//!
//! Each platform path keeps the end user's scoped credential (vended role +
//! PAT, or vended group + OAuth token) here. Concurrent callers for the same
//! key wait on one mint instead of each vending a role, so 100 cold calls of
//! one user cost one vend and one token. Entries are re-minted when they would
//! expire within the margin, and can be invalidated when the platform rejects
//! them.
//!
//! A caller that uses a value for a while (e.g. a running statement) takes a
//! [`Lease`] with [`CredentialCache::lease_or_mint`]: the entry counts its
//! leases and remembers when it was last used (a logical clock ticked on every
//! lease taken or returned). [`CredentialCache::evict_idle_lru`] takes out the
//! least recently used fresh entry that no lease holds, so a scarce upstream
//! credential can be given to another key without pulling it from under a
//! caller that is using it.
//!
//! With a shared tier ([`CredentialCache::set_shared`], `[cache] backend =
//! "redis"`), a local miss first asks the replicas' shared cache and mints
//! under its cross-replica lock ([`crate::shared::mint_once_across_replicas`]).

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use crate::shared::{SharedTier, mint_once_across_replicas};

/// How one cached value is used: leases out now, and the tick of its last use.
#[derive(Debug, Default)]
struct Usage {
    leases: AtomicUsize,
    last_used: AtomicU64,
}

impl Usage {
    fn is_idle(&self) -> bool {
        self.leases.load(Ordering::SeqCst) == 0
    }
}

struct Entry<V> {
    value: V,
    expires_at: SystemTime,
    usage: Arc<Usage>,
}

type Slot<V> = Arc<tokio::sync::Mutex<Option<Entry<V>>>>;

/// A cached value in use. While it lives, the entry is not idle, so
/// [`CredentialCache::evict_idle_lru`] leaves it alone; dropping it marks the
/// entry as used now.
pub struct Lease<V> {
    value: V,
    usage: Arc<Usage>,
    clock: Arc<AtomicU64>,
}

impl<V> Lease<V> {
    fn take(entry: &Entry<V>, clock: &Arc<AtomicU64>) -> Lease<V>
    where
        V: Clone,
    {
        // Taken under the slot's lock, so eviction (which checks and removes
        // under the same lock) never removes an entry with a lease out.
        entry.usage.leases.fetch_add(1, Ordering::SeqCst);
        entry.usage.last_used.store(tick(clock), Ordering::SeqCst);
        Lease {
            value: entry.value.clone(),
            usage: entry.usage.clone(),
            clock: clock.clone(),
        }
    }

    pub fn value(&self) -> &V {
        &self.value
    }
}

impl<V> std::ops::Deref for Lease<V> {
    type Target = V;

    fn deref(&self) -> &V {
        &self.value
    }
}

impl<V> Drop for Lease<V> {
    fn drop(&mut self) {
        self.usage
            .last_used
            .store(tick(&self.clock), Ordering::SeqCst);
        self.usage.leases.fetch_sub(1, Ordering::SeqCst);
    }
}

impl<V: std::fmt::Debug> std::fmt::Debug for Lease<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Lease").field(&self.value).finish()
    }
}

fn tick(clock: &AtomicU64) -> u64 {
    clock.fetch_add(1, Ordering::SeqCst) + 1
}

/// Cache of short-lived credentials, one slot per key.
pub struct CredentialCache<K, V> {
    margin: Duration,
    slots: Mutex<HashMap<K, Slot<V>>>,
    /// Logical clock of uses (leases taken and returned).
    clock: Arc<AtomicU64>,
    /// The cache shared with other replicas, consulted on a local miss.
    shared: Option<Arc<dyn SharedTier<K, V>>>,
}

impl<K, V> CredentialCache<K, V>
where
    K: Eq + Hash + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Values are reused only while they live longer than `margin`.
    pub fn new(margin: Duration) -> Self {
        Self {
            margin,
            slots: Mutex::new(HashMap::new()),
            clock: Arc::new(AtomicU64::new(0)),
            shared: None,
        }
    }

    /// Share minted values with other replicas through `tier`.
    pub fn set_shared(&mut self, tier: Arc<dyn SharedTier<K, V>>) {
        self.shared = Some(tier);
    }

    fn slot(&self, key: &K) -> Slot<V> {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
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
        let lease = self.lease_or_mint(key, mint).await?;
        Ok(lease.value.clone())
    }

    /// As [`get_or_mint`](Self::get_or_mint), but the value is leased: the
    /// entry counts as in use until the returned [`Lease`] is dropped.
    pub async fn lease_or_mint<F, Fut, E>(&self, key: K, mint: F) -> Result<Lease<V>, E>
    where
        F: FnOnce(Option<V>) -> Fut,
        Fut: Future<Output = Result<(V, SystemTime), E>>,
    {
        let slot = self.slot(&key);
        let mut guard = slot.lock().await;
        if let Some(entry) = guard.as_ref()
            && is_fresh(entry.expires_at, self.margin)
        {
            return Ok(Lease::take(entry, &self.clock));
        }
        let previous = guard.take().map(|e| e.value);
        let (value, expires_at) = match &self.shared {
            Some(tier) => {
                mint_once_across_replicas(tier, &key, self.margin, previous, mint).await?
            }
            None => mint(previous).await?,
        };
        let entry = guard.insert(Entry {
            value,
            expires_at,
            usage: Arc::default(),
        });
        Ok(Lease::take(entry, &self.clock))
    }

    /// The cached value for `key` if it is still fresh, leased; never mints
    /// (a `fetch_more` page uses only the credential its statement ran under).
    pub async fn lease_fresh(&self, key: &K) -> Option<Lease<V>> {
        let slot = self.slot(key);
        let guard = slot.lock().await;
        guard
            .as_ref()
            .filter(|entry| is_fresh(entry.expires_at, self.margin))
            .map(|entry| Lease::take(entry, &self.clock))
    }

    /// How long before its expiry a value stops being handed out.
    pub fn margin(&self) -> Duration {
        self.margin
    }

    /// Drop the entry for `key` if `is_same` says it is the value the caller saw fail.
    /// Returns the dropped value. A newer value minted meanwhile is kept.
    pub async fn invalidate_if(
        &self,
        key: &K,
        is_same: impl Fn(&V) -> bool + Send + Sync,
    ) -> Option<V> {
        let slot = self.slot(key);
        let mut guard = slot.lock().await;
        let dropped = if guard.as_ref().is_some_and(|e| is_same(&e.value)) {
            guard.take().map(|e| e.value)
        } else {
            None
        };
        drop(guard);
        self.forget_shared(key, &is_same).await;
        dropped
    }

    /// Remove the shared entry of `key` if `is_same` says it is the value
    /// seen (e.g. after evicting it locally); no-op without a shared tier.
    pub async fn forget_shared(&self, key: &K, is_same: &(dyn Fn(&V) -> bool + Send + Sync)) {
        if let Some(tier) = &self.shared {
            tier.remove_if(key, &|v: &V| is_same(v)).await;
        }
    }

    /// What the shared tier holds for `key`: `Some(Some(v))` a value,
    /// `Some(None)` nothing, `None` no shared tier or it cannot be asked.
    pub async fn shared_value(&self, key: &K) -> Option<Option<V>> {
        match self.shared.as_ref()?.lookup(key).await {
            crate::shared::Lookup::Found((value, _)) => Some(Some(value)),
            crate::shared::Lookup::Missing => Some(None),
            crate::shared::Lookup::Unavailable => None,
        }
    }

    /// True when minted values are shared with other replicas.
    pub fn is_shared(&self) -> bool {
        self.shared.is_some()
    }

    /// Take out the least recently used entry of a key other than `except`
    /// that is fresh, accepted by `eligible`, and idle: no [`Lease`] of it is
    /// out and no mint or other operation holds its slot right now. Returns
    /// the key and the removed value, or `None` when every such entry is in
    /// use. The next caller of that key mints afresh (with no `previous`).
    pub fn evict_idle_lru(&self, except: &K, eligible: impl Fn(&V) -> bool) -> Option<(K, V)> {
        let slots: Vec<(K, Slot<V>)> = self
            .slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|(k, _)| *k != except)
            .map(|(k, s)| (k.clone(), s.clone()))
            .collect();
        let evictable = |entry: &Option<Entry<V>>| {
            entry.as_ref().is_some_and(|e| {
                e.usage.is_idle() && is_fresh(e.expires_at, self.margin) && eligible(&e.value)
            })
        };
        // `try_lock`: a slot that is locked is busy (minting, or being read),
        // and waiting for it could deadlock with a mint that evicts in turn.
        let mut candidates: Vec<(u64, K, Slot<V>)> = slots
            .into_iter()
            .filter_map(|(key, slot)| {
                let guard = slot.try_lock().ok()?;
                if !evictable(&guard) {
                    return None;
                }
                let last_used = guard.as_ref()?.usage.last_used.load(Ordering::SeqCst);
                drop(guard);
                Some((last_used, key, slot))
            })
            .collect();
        candidates.sort_by_key(|(last_used, _, _)| *last_used);
        for (_, key, slot) in candidates {
            // Checked again under the lock: a lease may have been taken since.
            let Ok(mut guard) = slot.try_lock() else {
                continue;
            };
            if evictable(&guard) {
                return guard.take().map(|e| (key, e.value));
            }
        }
        None
    }

    /// Forget every cached credential.
    pub async fn clear(&self) {
        let slots: Vec<Slot<V>> = self
            .slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain()
            .map(|(_, s)| s)
            .collect();
        for slot in slots {
            slot.lock().await.take();
        }
    }

    /// Number of keys with a slot (fresh or not).
    pub fn len(&self) -> usize {
        self.slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
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
    async fn lease_fresh_never_mints_and_skips_values_inside_the_margin() {
        let cache = CredentialCache::<&str, u32>::new(Duration::from_secs(60));
        assert!(cache.lease_fresh(&"k").await.is_none(), "nothing cached");
        cache
            .get_or_mint("k", |_| async { Ok::<_, ()>((1, in_secs(3600))) })
            .await
            .unwrap();
        assert_eq!(cache.lease_fresh(&"k").await.map(|l| *l), Some(1));
        assert!(cache.lease_fresh(&"other").await.is_none());
        cache
            .get_or_mint("s", |_| async { Ok::<_, ()>((2, in_secs(30))) })
            .await
            .unwrap();
        assert!(
            cache.lease_fresh(&"s").await.is_none(),
            "a value inside the margin is not handed out"
        );
        assert_eq!(cache.margin(), Duration::from_secs(60));
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

    async fn lease(
        cache: &CredentialCache<&'static str, u32>,
        key: &'static str,
        v: u32,
    ) -> Lease<u32> {
        cache
            .lease_or_mint(key, |_| async move { Ok::<_, ()>((v, in_secs(3600))) })
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn eviction_takes_the_least_recently_used_idle_entry_of_another_key() {
        let cache = CredentialCache::<&str, u32>::new(Duration::from_secs(60));
        for (k, v) in [("a", 1), ("b", 2), ("c", 3)] {
            drop(lease(&cache, k, v).await);
        }
        // "a" is used again: "b" is now the least recently used.
        drop(lease(&cache, "a", 0).await);
        assert_eq!(cache.evict_idle_lru(&"c", |_| true), Some(("b", 2)));
        assert_eq!(
            cache.evict_idle_lru(&"c", |v| *v != 1),
            None,
            "the key asking and ineligible values stay"
        );
        assert_eq!(cache.evict_idle_lru(&"c", |_| true), Some(("a", 1)));
        assert_eq!(cache.evict_idle_lru(&"c", |_| true), None);
        // The evicted key mints afresh, without a previous value.
        let v = cache
            .get_or_mint("b", |prev| async move {
                assert_eq!(prev, None);
                Ok::<_, ()>((20, in_secs(3600)))
            })
            .await
            .unwrap();
        assert_eq!(v, 20);
    }

    #[tokio::test]
    async fn a_leased_entry_is_never_evicted_until_the_lease_is_dropped() {
        let cache = CredentialCache::<&str, u32>::new(Duration::from_secs(60));
        let first = lease(&cache, "a", 1).await;
        let second = lease(&cache, "a", 0).await;
        assert_eq!((*first, *second), (1, 1), "both share the cached value");
        drop(lease(&cache, "b", 2).await);
        assert_eq!(
            cache.evict_idle_lru(&"x", |_| true),
            Some(("b", 2)),
            "the idle entry goes although the leased one is older"
        );
        assert_eq!(cache.evict_idle_lru(&"x", |_| true), None);
        drop(first);
        assert_eq!(cache.evict_idle_lru(&"x", |_| true), None, "one lease left");
        drop(second);
        assert_eq!(cache.evict_idle_lru(&"x", |_| true), Some(("a", 1)));
    }

    #[tokio::test]
    async fn stale_or_minting_entries_are_not_evicted() {
        let cache = Arc::new(CredentialCache::<&str, u32>::new(Duration::from_secs(60)));
        cache
            .get_or_mint("stale", |_| async { Ok::<_, ()>((1, in_secs(30))) })
            .await
            .unwrap();
        assert_eq!(
            cache.evict_idle_lru(&"x", |_| true),
            None,
            "inside the margin"
        );

        // A slot that is being minted is skipped without waiting for it.
        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
        let minting = {
            let cache = cache.clone();
            tokio::spawn(async move {
                cache
                    .get_or_mint("m", |_| async move {
                        started_tx.send(()).unwrap();
                        release_rx.await.unwrap();
                        Ok::<_, ()>((3, in_secs(3600)))
                    })
                    .await
            })
        };
        started_rx.await.unwrap();
        assert_eq!(
            cache.evict_idle_lru(&"x", |_| true),
            None,
            "slot is minting"
        );
        release_tx.send(()).unwrap();
        assert_eq!(minting.await.unwrap(), Ok(3));
        assert_eq!(cache.evict_idle_lru(&"x", |_| true), Some(("m", 3)));
    }

    // Tests added for surviving mutants (scripts/mutants.sh).

    #[tokio::test]
    async fn a_lease_debug_prints_the_value_as_its_own_debug_does_so_secrets_stay_redacted() {
        // What the cache holds in production: a scoped credential whose secret part is a Secret.
        let cache =
            CredentialCache::<&str, (String, crate::secret::Secret)>::new(Duration::from_secs(60));
        let lease = cache
            .lease_or_mint("alice", |_| async {
                Ok::<_, ()>((
                    ("IMMUTA_OBO_ROLE".to_string(), "pat-secret-value".into()),
                    in_secs(3600),
                ))
            })
            .await
            .unwrap();
        let shown = format!("{lease:?}");
        assert_eq!(shown, r#"Lease(("IMMUTA_OBO_ROLE", Secret(<redacted>)))"#);
        assert!(!shown.contains("pat-secret-value"));
    }

    #[tokio::test]
    async fn clear_forgets_every_credential_so_the_next_call_mints_afresh() {
        let cache = CredentialCache::<&str, u32>::new(Duration::from_secs(60));
        assert!(cache.is_empty());
        for (k, v) in [("alice", 1), ("bob", 2)] {
            cache
                .get_or_mint(k, |_| async move { Ok::<_, ()>((v, in_secs(3600))) })
                .await
                .unwrap();
        }
        assert_eq!(cache.len(), 2);
        assert!(!cache.is_empty());
        cache.clear().await;
        assert!(cache.is_empty());
        let v = cache
            .get_or_mint("alice", |prev| async move {
                assert_eq!(
                    prev, None,
                    "a cleared credential is not handed to the minter"
                );
                Ok::<_, ()>((10, in_secs(3600)))
            })
            .await;
        assert_eq!(v, Ok(10), "the cleared value is not reused");
    }
}
