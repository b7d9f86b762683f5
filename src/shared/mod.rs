//! The credential cache shared by replicas (`[cache] backend = "redis"`).
//!
//! Owns: the `[cache]` settings ([`CacheConfig`]), the Redis store of sealed
//! entries ([`store::SharedStore`]), the typed tier a platform's
//! [`CredentialCache`](crate::broker::CredentialCache) consults on a local
//! miss ([`SharedCredentials`]), and the cross-replica single-flight
//! ([`mint_once_across_replicas`]).
//!
//! Entries are keyed by (agent, end user, platform) and sealed with
//! AES-256-GCM ([`seal`]): the associated data binds the key, so an entry
//! cannot be replayed under another user. They expire with the credential
//! minus the reuse margin. A replica that misses takes a lock with a lease
//! (`SET lock token NX PX lease`, the single-instance pattern of the Redis
//! `SET` documentation); the others poll for the value the holder publishes.
//! A holder that dies blocks no one longer than the lease. When Redis cannot
//! be reached, every replica keeps serving with its local cache (each replica
//! then vends and mints for itself); identity is never relaxed: every
//! credential still comes from a vend for the caller.

pub mod seal;
pub mod store;

use crate::config::{ConfigError, SecretRef};
use seal::EntryScope;
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
pub use store::{LockAttempt, Lookup, SharedStore};

/// Where credentials are cached.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheBackend {
    /// In this process only (default).
    #[default]
    Memory,
    /// In this process and in Redis (or Valkey), shared by every replica.
    Redis,
}

/// `[cache]`: where vended credentials are kept.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    #[serde(default)]
    pub backend: CacheBackend,
    /// `redis://host:port/db` (backend = "redis").
    #[serde(default)]
    pub url: Option<String>,
    /// Redis `AUTH` password, if the URL carries none.
    #[serde(default)]
    pub password: Option<SecretRef>,
    /// 32-byte AES-256-GCM key (64 hex digits or base64) sealing every entry.
    #[serde(default)]
    pub encryption_key: Option<SecretRef>,
    /// Prefix of every Redis key this server writes.
    #[serde(default = "default_prefix")]
    pub key_prefix: String,
    /// How long a replica may hold a mint lock before others may take it over.
    #[serde(default = "default_lease_ms")]
    pub lock_lease_ms: u64,
    /// Longest one Redis command may take before Redis counts as unreachable.
    #[serde(default = "default_operation_timeout_ms")]
    pub operation_timeout_ms: u64,
    /// How often a replica waiting for another's mint looks for the result.
    #[serde(default = "default_wait_poll_ms")]
    pub wait_poll_ms: u64,
    /// After Redis failed, how long to serve locally before trying it again.
    #[serde(default = "default_retry_after_ms")]
    pub retry_after_ms: u64,
    /// Vend and mint a user's credentials when their MCP session initializes
    /// (HTTP: the bearer's user; stdio: the configured user, at startup),
    /// so their first query runs as fast as a warm one. Default true.
    #[serde(default = "default_prewarm")]
    pub prewarm: bool,
}

fn default_prewarm() -> bool {
    true
}

fn default_prefix() -> String {
    "immuta-mcp:".into()
}
fn default_lease_ms() -> u64 {
    15_000
}
fn default_operation_timeout_ms() -> u64 {
    500
}
fn default_wait_poll_ms() -> u64 {
    25
}
fn default_retry_after_ms() -> u64 {
    1_000
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            backend: CacheBackend::Memory,
            url: None,
            password: None,
            encryption_key: None,
            key_prefix: default_prefix(),
            lock_lease_ms: default_lease_ms(),
            operation_timeout_ms: default_operation_timeout_ms(),
            wait_poll_ms: default_wait_poll_ms(),
            retry_after_ms: default_retry_after_ms(),
            prewarm: default_prewarm(),
        }
    }
}

impl CacheConfig {
    /// Refuse settings the Redis backend cannot run with.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: &str| ConfigError::Invalid {
            key: format!("cache.{key}"),
            message: message.into(),
        };
        if self.backend == CacheBackend::Memory {
            return Ok(());
        }
        match self.url.as_deref().map(str::trim) {
            None | Some("") => {
                return Err(invalid(
                    "url",
                    "backend = \"redis\" needs url = \"redis://host:port\"",
                ));
            }
            Some(u) if u.starts_with("rediss://") => {
                return Err(invalid(
                    "url",
                    "rediss:// (TLS) is not supported by this build; reach Redis over a private network or a TLS proxy on loopback",
                ));
            }
            Some(u) if !u.starts_with("redis://") => {
                return Err(invalid("url", "must start with redis://"));
            }
            Some(_) => {}
        }
        if self.encryption_key.is_none() {
            return Err(invalid(
                "encryption_key",
                "backend = \"redis\" needs a 32-byte key by reference ({ env = \"...\" } or { file = \"...\" }); entries are sealed with it",
            ));
        }
        if self.key_prefix.is_empty() {
            return Err(invalid("key_prefix", "must not be empty"));
        }
        if self.lock_lease_ms < 100 {
            return Err(invalid("lock_lease_ms", "must be at least 100"));
        }
        if self.operation_timeout_ms == 0 || self.wait_poll_ms == 0 || self.retry_after_ms == 0 {
            return Err(invalid(
                "operation_timeout_ms",
                "operation_timeout_ms, wait_poll_ms and retry_after_ms must be positive",
            ));
        }
        if self.wait_poll_ms >= self.lock_lease_ms {
            return Err(invalid(
                "wait_poll_ms",
                "must be shorter than lock_lease_ms",
            ));
        }
        Ok(())
    }
}

/// Why the shared cache cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum SharedCacheError {
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Seal(#[from] seal::SealError),
}

/// The shared store `[cache]` names, if its backend is Redis.
pub fn from_config(cfg: &CacheConfig) -> Result<Option<Arc<SharedStore>>, SharedCacheError> {
    if cfg.backend == CacheBackend::Memory {
        return Ok(None);
    }
    cfg.validate()
        .map_err(|e| SharedCacheError::Config(e.to_string()))?;
    SharedStore::new(cfg).map(|s| Some(Arc::new(s)))
}

/// A cached credential that can be sealed into the shared cache.
pub trait Shareable: Sized + Clone + Send + Sync + 'static {
    /// `snowflake` or `databricks`: part of the entry's scope.
    const PLATFORM: &'static str;
    /// Every field another replica needs to use the credential (secrets
    /// included: the result is sealed before it leaves the process).
    fn to_shared(&self) -> serde_json::Value;
    /// The credential from [`to_shared`](Self::to_shared)'s output.
    fn from_shared(value: serde_json::Value) -> Option<Self>;
}

/// What a shared entry holds once opened.
#[derive(Serialize, Deserialize)]
struct Plain {
    expires_at_ms: u64,
    value: serde_json::Value,
}

fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The cross-replica operations a [`CredentialCache`](crate::broker::CredentialCache)
/// uses on a local miss.
#[async_trait::async_trait]
pub trait SharedTier<K, V>: Send + Sync {
    /// The entry another replica published for `key`, if any.
    async fn lookup(&self, key: &K) -> Lookup<(V, SystemTime)>;
    /// Take the mint lock of `key` for one lease.
    async fn try_lock(&self, key: &K) -> LockAttempt;
    /// Release the lock if it is still ours.
    async fn unlock(&self, key: &K, token: &str);
    /// Publish a freshly minted value until `expires_at - margin`.
    async fn publish(&self, key: &K, value: &V, expires_at: SystemTime, margin: Duration);
    /// Remove the shared entry of `key` if `is_same` says it is the value seen.
    async fn remove_if(&self, key: &K, is_same: &(dyn for<'v> Fn(&'v V) -> bool + Send + Sync));
    /// How long to wait between two looks while another replica mints.
    fn poll_interval(&self) -> Duration;
}

/// The shared tier of one platform and agent, keyed by end user.
pub struct SharedCredentials<V> {
    store: Arc<SharedStore>,
    agent: String,
    _value: std::marker::PhantomData<fn() -> V>,
}

impl<V: Shareable> SharedCredentials<V> {
    /// Entries of `agent` (the identity the credentials are obtained with).
    pub fn new(store: Arc<SharedStore>, agent: impl Into<String>) -> Self {
        Self {
            store,
            agent: agent.into(),
            _value: std::marker::PhantomData,
        }
    }

    fn scope(&self, user: &str) -> EntryScope {
        EntryScope {
            agent: self.agent.clone(),
            user: user.to_string(),
            platform: V::PLATFORM,
        }
    }

    fn decode(plain: &[u8]) -> Option<(V, SystemTime)> {
        let plain: Plain = serde_json::from_slice(plain).ok()?;
        let value = V::from_shared(plain.value)?;
        Some((
            value,
            UNIX_EPOCH + Duration::from_millis(plain.expires_at_ms),
        ))
    }
}

#[async_trait::async_trait]
impl<V: Shareable> SharedTier<String, V> for SharedCredentials<V> {
    async fn lookup(&self, user: &String) -> Lookup<(V, SystemTime)> {
        match self.store.get(&self.scope(user)).await {
            Lookup::Found(plain) => match Self::decode(&plain) {
                Some(found) => Lookup::Found(found),
                None => {
                    tracing::warn!(
                        platform = V::PLATFORM,
                        "a shared cache entry could not be read; minting afresh"
                    );
                    Lookup::Missing
                }
            },
            Lookup::Missing => Lookup::Missing,
            Lookup::Unavailable => Lookup::Unavailable,
        }
    }

    async fn try_lock(&self, user: &String) -> LockAttempt {
        self.store.try_lock(&self.scope(user)).await
    }

    async fn unlock(&self, user: &String, token: &str) {
        self.store.unlock(&self.scope(user), token).await;
    }

    async fn publish(&self, user: &String, value: &V, expires_at: SystemTime, margin: Duration) {
        let Some(ttl) = expires_at
            .checked_sub(margin)
            .and_then(|usable_until| usable_until.duration_since(SystemTime::now()).ok())
            .filter(|ttl| !ttl.is_zero())
        else {
            return;
        };
        let plain = Plain {
            expires_at_ms: millis(expires_at),
            value: value.to_shared(),
        };
        let plain = match serde_json::to_vec(&plain) {
            Ok(plain) => plain,
            Err(e) => {
                tracing::warn!(error = %e, "cannot encode a credential for the shared cache; not sharing it");
                return;
            }
        };
        self.store.put(&self.scope(user), &plain, ttl).await;
    }

    async fn remove_if(
        &self,
        user: &String,
        is_same: &(dyn for<'v> Fn(&'v V) -> bool + Send + Sync),
    ) {
        self.store
            .remove_if(
                &self.scope(user),
                &|plain: &[u8]| match Self::decode(plain) {
                    Some((value, _)) => is_same(&value),
                    None => false,
                },
            )
            .await;
    }

    fn poll_interval(&self) -> Duration {
        self.store.poll_interval()
    }
}

/// Releases a held mint lock if the mint is abandoned (the call's future
/// dropped): the next replica need not wait for the lease to run out.
struct HeldLock<K: Clone + Send + Sync + 'static, V: 'static> {
    tier: Arc<dyn SharedTier<K, V>>,
    key: K,
    token: Option<String>,
}

impl<K: Clone + Send + Sync + 'static, V: 'static> HeldLock<K, V> {
    async fn release(mut self) {
        if let Some(token) = self.token.take() {
            self.tier.unlock(&self.key, &token).await;
        }
    }
}

impl<K: Clone + Send + Sync + 'static, V: 'static> Drop for HeldLock<K, V> {
    fn drop(&mut self) {
        if let Some(token) = self.token.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let (tier, key) = (self.tier.clone(), self.key.clone());
            runtime.spawn(async move { tier.unlock(&key, &token).await });
        }
    }
}

fn is_fresh(expires_at: SystemTime, margin: Duration) -> bool {
    expires_at
        .duration_since(SystemTime::now())
        .is_ok_and(|left| left > margin)
}

/// A value for `key` minted at most once across the replicas sharing `tier`:
/// the value another replica published, or, under the mint lock, `mint`'s.
/// While another replica holds the lock this waits, looking every
/// [`SharedTier::poll_interval`], until its value appears or its lock ends
/// (released, or its lease ran out because it died). When the shared store
/// is unreachable, `mint` runs here (the local single-flight still holds).
pub async fn mint_once_across_replicas<K, V, F, Fut, E>(
    tier: &Arc<dyn SharedTier<K, V>>,
    key: &K,
    margin: Duration,
    previous: Option<V>,
    mint: F,
) -> Result<(V, SystemTime), E>
where
    K: Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    F: FnOnce(Option<V>) -> Fut,
    Fut: Future<Output = Result<(V, SystemTime), E>>,
{
    loop {
        match tier.lookup(key).await {
            Lookup::Found((value, expires_at)) if is_fresh(expires_at, margin) => {
                return Ok((value, expires_at));
            }
            Lookup::Unavailable => return mint(previous).await,
            Lookup::Found(_) | Lookup::Missing => {}
        }
        match tier.try_lock(key).await {
            LockAttempt::Unavailable => return mint(previous).await,
            LockAttempt::Held => tokio::time::sleep(tier.poll_interval()).await,
            LockAttempt::Acquired(token) => {
                let lock = HeldLock {
                    tier: tier.clone(),
                    key: key.clone(),
                    token: Some(token),
                };
                // The previous holder may have published just before it released.
                if let Lookup::Found((value, expires_at)) = tier.lookup(key).await
                    && is_fresh(expires_at, margin)
                {
                    lock.release().await;
                    return Ok((value, expires_at));
                }
                let minted = mint(previous).await;
                if let Ok((value, expires_at)) = &minted {
                    tier.publish(key, value, *expires_at, margin).await;
                }
                lock.release().await;
                return minted;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readme_replicas_example_is_a_valid_redis_configuration() {
        let readme = include_str!("../../README.md");
        let start = readme
            .find("<!-- replicas-example:start -->")
            .expect("start marker");
        let end = readme
            .find("<!-- replicas-example:end -->")
            .expect("end marker");
        let block = &readme[start..end];
        let toml = block
            .split_once("```toml\n")
            .and_then(|(_, rest)| rest.split_once("```"))
            .map(|(toml, _)| toml)
            .expect("a toml block");
        let cfg = crate::config::Config::parse(toml).expect("the example parses");
        cfg.validate().expect("the example is valid");
        assert_eq!(cfg.cache.backend, CacheBackend::Redis);
        assert!(!cfg.server.stateful_sessions);
    }

    #[test]
    fn redis_settings_are_refused_with_the_setting_named() {
        let redis = |tweak: fn(&mut CacheConfig)| {
            let mut cfg = CacheConfig {
                backend: CacheBackend::Redis,
                url: Some("redis://127.0.0.1:6379/".into()),
                encryption_key: Some(SecretRef::Env("K".into())),
                ..CacheConfig::default()
            };
            tweak(&mut cfg);
            cfg.validate().err().map(|e| e.to_string())
        };
        assert_eq!(redis(|_| {}), None);
        assert!(
            CacheConfig::default().validate().is_ok(),
            "memory needs nothing"
        );
        for (tweak, named) in [
            ((|c| c.url = None) as fn(&mut CacheConfig), "cache.url"),
            (|c| c.url = Some("http://x".into()), "cache.url"),
            (|c| c.url = Some("rediss://x".into()), "not supported"),
            (|c| c.encryption_key = None, "cache.encryption_key"),
            (|c| c.lock_lease_ms = 10, "cache.lock_lease_ms"),
            (|c| c.wait_poll_ms = 20_000, "cache.wait_poll_ms"),
            (|c| c.key_prefix = String::new(), "cache.key_prefix"),
        ] {
            let err = redis(tweak).expect("refused");
            assert!(err.contains(named), "{err}");
        }
    }
}
