//! Sealed credential entries and mint locks in Redis, and what this replica
//! does when Redis cannot be reached.
//!
//! Keys: `<prefix>cred:<platform>:<hash>` (the sealed entry, `PX` = the
//! credential's usable lifetime) and `<prefix>lock:<platform>:<hash>` (the
//! mint lock). `<hash>` is SHA-256 over the entry's scope, so Redis holds no
//! user name either. The lock follows the Redis `SET` documentation's lock
//! pattern: `SET lock <random token> NX PX <lease>`, released by a script
//! that deletes it only if it still holds our token.
//!
//! Every command is bounded by `operation_timeout_ms`. A failure marks Redis
//! unreachable for `retry_after_ms` (commands are not even tried meanwhile),
//! logged once when it happens and once when Redis answers again; `check`
//! reports the same state ([`SharedStore::check`]).

use super::seal::{EntryScope, Sealer};
use super::{CacheConfig, SharedCacheError};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{IntoConnectionInfo, RedisResult};
use sha2::{Digest, Sha256};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Deletes KEYS[1] only while it holds ARGV[1] (lock token or exact entry).
const DELETE_IF_EQUAL: &str = r#"
if redis.call("GET", KEYS[1]) == ARGV[1] then
    return redis.call("DEL", KEYS[1])
else
    return 0
end
"#;

/// A read from the shared store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup<T> {
    Found(T),
    Missing,
    /// Redis could not be asked: serve from the local cache.
    Unavailable,
}

/// The outcome of taking a mint lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockAttempt {
    /// Ours until released or the lease ends; the token releases it.
    Acquired(String),
    /// Another replica holds it.
    Held,
    /// Redis could not be asked.
    Unavailable,
}

/// Redis holding sealed entries, shared by the replicas.
pub struct SharedStore {
    client: redis::Client,
    /// Where Redis is, without credentials (for logs and `check`).
    location: String,
    connection: tokio::sync::Mutex<Option<ConnectionManager>>,
    sealer: Sealer,
    prefix: String,
    lease: Duration,
    operation_timeout: Duration,
    poll: Duration,
    retry_after: Duration,
    /// Until when Redis counts as unreachable (commands are not tried).
    down_until: Mutex<Option<Instant>>,
    /// Redis is unreachable and this was logged.
    degraded: AtomicBool,
    delete_if_equal: redis::Script,
}

impl std::fmt::Debug for SharedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedStore")
            .field("location", &self.location)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl SharedStore {
    /// Prepare the store from validated settings (no connection yet: the
    /// first command connects, so a replica starts even with Redis down).
    pub fn new(cfg: &CacheConfig) -> Result<Self, SharedCacheError> {
        let url = cfg.url.as_deref().unwrap_or_default().trim();
        let config_error = |m: String| SharedCacheError::Config(m);
        let mut info = url
            .into_connection_info()
            .map_err(|e| config_error(format!("cache.url: {e}")))?;
        if let Some(password) = &cfg.password {
            let password = password
                .resolve("cache.password")
                .map_err(|e| config_error(e.to_string()))?;
            let settings = info
                .redis_settings()
                .clone()
                .set_password(password.expose());
            info = info.set_redis_settings(settings);
        }
        let location = info.addr().to_string();
        let client =
            redis::Client::open(info).map_err(|e| config_error(format!("cache.url: {e}")))?;
        let key = cfg
            .encryption_key
            .as_ref()
            .ok_or_else(|| config_error("cache.encryption_key is not set".into()))?
            .resolve("cache.encryption_key")
            .map_err(|e| config_error(e.to_string()))?;
        Ok(Self {
            client,
            location,
            connection: tokio::sync::Mutex::new(None),
            sealer: Sealer::from_secret(&key)?,
            prefix: cfg.key_prefix.clone(),
            lease: Duration::from_millis(cfg.lock_lease_ms),
            operation_timeout: Duration::from_millis(cfg.operation_timeout_ms),
            poll: Duration::from_millis(cfg.wait_poll_ms),
            retry_after: Duration::from_millis(cfg.retry_after_ms),
            down_until: Mutex::new(None),
            degraded: AtomicBool::new(false),
            delete_if_equal: redis::Script::new(DELETE_IF_EQUAL),
        })
    }

    /// Where Redis is (host:port, no credentials).
    pub fn location(&self) -> &str {
        &self.location
    }

    /// How long a waiting replica sleeps between two looks.
    pub fn poll_interval(&self) -> Duration {
        self.poll
    }

    /// True while Redis counts as unreachable.
    pub fn is_degraded(&self) -> bool {
        self.degraded.load(Ordering::SeqCst)
    }

    fn key(&self, kind: &str, scope: &EntryScope) -> String {
        let mut digest = Sha256::new();
        for field in [scope.platform, &scope.agent, &scope.user] {
            digest.update((field.len() as u64).to_be_bytes());
            digest.update(field.as_bytes());
        }
        format!(
            "{}{kind}:{}:{}",
            self.prefix,
            scope.platform,
            hex::encode(digest.finalize())
        )
    }

    async fn connection(&self) -> RedisResult<ConnectionManager> {
        let mut slot = self.connection.lock().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.operation_timeout))
            .set_response_timeout(Some(self.operation_timeout))
            .set_number_of_retries(1)
            .set_max_delay(self.retry_after);
        let manager = ConnectionManager::new_with_config(self.client.clone(), config).await?;
        *slot = Some(manager.clone());
        Ok(manager)
    }

    /// Run one command, bounded; `None` when Redis is (or just became) unreachable.
    async fn run<T, F, Fut>(&self, what: &'static str, command: F) -> Option<T>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        if self
            .down_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some_and(|until| Instant::now() < until)
        {
            return None;
        }
        let outcome = tokio::time::timeout(self.operation_timeout, async {
            let connection = self.connection().await?;
            command(connection).await
        })
        .await;
        let error = match outcome {
            Ok(Ok(value)) => {
                if self.degraded.swap(false, Ordering::SeqCst) {
                    tracing::info!(redis = %self.location, "the shared credential cache answers again; replicas share credentials again");
                }
                return Some(value);
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {:?}", self.operation_timeout),
        };
        *self
            .down_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now() + self.retry_after);
        if !self.degraded.swap(true, Ordering::SeqCst) {
            tracing::warn!(redis = %self.location, command = what, error = %error, "the shared credential cache (Redis) is unreachable; serving with this replica's local cache (each replica vends and mints for itself) until it answers again");
        }
        None
    }

    /// The opened entry of `scope`. An entry that does not authenticate
    /// (another key, another scope, tampered) counts as missing.
    pub async fn get(&self, scope: &EntryScope) -> Lookup<Vec<u8>> {
        let key = self.key("cred", scope);
        let raw: Option<Option<Vec<u8>>> = self
            .run("GET", |mut c| async move {
                redis::cmd("GET").arg(&key).query_async(&mut c).await
            })
            .await;
        match raw {
            None => Lookup::Unavailable,
            Some(None) => Lookup::Missing,
            Some(Some(sealed)) => match self.sealer.open(scope, &sealed) {
                Ok(plain) => Lookup::Found(plain),
                Err(e) => {
                    tracing::warn!(platform = scope.platform, error = %e, "ignoring a shared cache entry");
                    Lookup::Missing
                }
            },
        }
    }

    /// Seal `plain` for `scope` and keep it for `ttl`.
    pub async fn put(&self, scope: &EntryScope, plain: &[u8], ttl: Duration) {
        let key = self.key("cred", scope);
        let sealed = match self.sealer.seal(scope, plain) {
            Ok(sealed) => sealed,
            Err(e) => {
                tracing::warn!(platform = scope.platform, error = %e, "not sharing a credential");
                return;
            }
        };
        let ttl_ms = ttl.as_millis().max(1) as u64;
        let _: Option<()> = self
            .run("SET", |mut c| async move {
                redis::cmd("SET")
                    .arg(&key)
                    .arg(sealed)
                    .arg("PX")
                    .arg(ttl_ms)
                    .query_async(&mut c)
                    .await
            })
            .await;
    }

    /// `SET lock token NX PX lease`.
    pub async fn try_lock(&self, scope: &EntryScope) -> LockAttempt {
        let key = self.key("lock", scope);
        let token = hex::encode(rand::random::<[u8; 16]>());
        let lease_ms = self.lease.as_millis() as u64;
        let reply: Option<Option<String>> = self
            .run("SET NX", |mut c| {
                let token = token.clone();
                async move {
                    redis::cmd("SET")
                        .arg(&key)
                        .arg(token)
                        .arg("NX")
                        .arg("PX")
                        .arg(lease_ms)
                        .query_async(&mut c)
                        .await
                }
            })
            .await;
        match reply {
            None => LockAttempt::Unavailable,
            Some(Some(_)) => LockAttempt::Acquired(token),
            Some(None) => LockAttempt::Held,
        }
    }

    /// Release the lock of `scope` if it still holds `token`.
    pub async fn unlock(&self, scope: &EntryScope, token: &str) {
        let key = self.key("lock", scope);
        let _: Option<i64> = self
            .run("unlock", |mut c| async move {
                self.delete_if_equal
                    .key(&key)
                    .arg(token)
                    .invoke_async(&mut c)
                    .await
            })
            .await;
    }

    /// Delete the entry of `scope` if `is_same` accepts its opened content
    /// (and it was not replaced meanwhile).
    pub async fn remove_if(
        &self,
        scope: &EntryScope,
        is_same: &(dyn for<'p> Fn(&'p [u8]) -> bool + Sync),
    ) {
        let key = self.key("cred", scope);
        let raw: Option<Option<Vec<u8>>> = self
            .run("GET", |mut c| {
                let key = key.clone();
                async move { redis::cmd("GET").arg(&key).query_async(&mut c).await }
            })
            .await;
        let Some(Some(sealed)) = raw else { return };
        let same = self
            .sealer
            .open(scope, &sealed)
            .is_ok_and(|plain| is_same(&plain));
        if !same {
            return;
        }
        let _: Option<i64> = self
            .run("remove", |mut c| async move {
                self.delete_if_equal
                    .key(&key)
                    .arg(sealed)
                    .invoke_async(&mut c)
                    .await
            })
            .await;
    }

    /// `PING` now (for `check`), ignoring any back-off.
    pub async fn check(&self) -> Result<String, String> {
        *self
            .down_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
        let pong: Option<String> = self
            .run("PING", |mut c| async move {
                redis::cmd("PING").query_async(&mut c).await
            })
            .await;
        match pong {
            Some(_) => Ok(format!(
                "shared credential cache: Redis at {} answers; entries are sealed with AES-256-GCM",
                self.location
            )),
            None => Err(format!(
                "shared credential cache: Redis at {} is unreachable; each replica serves with its local cache (vending and minting for itself) until it answers",
                self.location
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SecretRef;
    use crate::shared::CacheBackend;
    use std::sync::{Arc, Mutex as StdMutex};

    #[derive(Clone, Default)]
    struct Captured(Arc<StdMutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn unreachable_store() -> SharedStore {
        // A port nothing listens on: bound, then released.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        SharedStore::new(&CacheConfig {
            backend: CacheBackend::Redis,
            url: Some(format!("redis://127.0.0.1:{port}/")),
            encryption_key: Some(SecretRef::Value("42".repeat(32))),
            retry_after_ms: 1,
            operation_timeout_ms: 300,
            ..CacheConfig::default()
        })
        .unwrap()
    }

    #[test]
    fn an_unreachable_redis_is_reported_once_and_reads_say_unavailable() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        tracing::subscriber::with_default(subscriber, || {
            runtime.block_on(async {
                let store = unreachable_store();
                let scope = EntryScope {
                    agent: "A".into(),
                    user: "alice".into(),
                    platform: "snowflake",
                };
                for _ in 0..3 {
                    assert_eq!(store.get(&scope).await, Lookup::Unavailable);
                    assert_eq!(store.try_lock(&scope).await, LockAttempt::Unavailable);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                assert!(store.is_degraded());
                let message = store.check().await.unwrap_err();
                assert!(message.contains("unreachable"), "{message}");
            })
        });
        let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert_eq!(
            logs.matches("is unreachable; serving with this replica's local cache")
                .count(),
            1,
            "logged once: {logs}"
        );
    }
}
