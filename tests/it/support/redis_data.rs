//! What the shared-cache tests read and plant in their `redis-server` (test-only additions to
//! [`RedisServer`], which `redis_server.rs` shares with the benchmark).

use super::redis_server::RedisServer;

impl RedisServer {
    /// Every key and its (string) value.
    pub async fn dump(&self) -> Vec<(String, Vec<u8>)> {
        let mut c = self.connection().await.expect("connect to redis");
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg("*")
            .query_async(&mut c)
            .await
            .expect("KEYS");
        let mut out = Vec::new();
        for key in keys {
            let value: Option<Vec<u8>> = redis::cmd("GET")
                .arg(&key)
                .query_async(&mut c)
                .await
                .expect("GET");
            if let Some(v) = value {
                out.push((key, v));
            }
        }
        out
    }

    /// `SET key value PX ttl_ms` (to plant entries).
    pub async fn set_px(&self, key: &str, value: &[u8], ttl_ms: u64) {
        let mut c = self.connection().await.expect("connect to redis");
        let _: () = redis::cmd("SET")
            .arg(key)
            .arg(value)
            .arg("PX")
            .arg(ttl_ms)
            .query_async(&mut c)
            .await
            .expect("SET");
    }

    /// `DEL key`.
    pub async fn delete(&self, key: &str) {
        let mut c = self.connection().await.expect("connect to redis");
        let _: i64 = redis::cmd("DEL")
            .arg(key)
            .query_async(&mut c)
            .await
            .expect("DEL");
    }
}
