//! A real `redis-server` for the shared-cache tests, on a free loopback port,
//! without persistence. A missing binary fails the test with the command to
//! install it (never a skip).

use std::process::Stdio;
use std::time::Duration;

/// A `redis-server` child; killed when dropped.
pub struct RedisServer {
    child: Option<std::process::Child>,
    pub port: u16,
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

impl RedisServer {
    /// Start `redis-server` on a free loopback port (retried on a port collision).
    pub async fn start() -> RedisServer {
        let mut last_error = String::new();
        for _ in 0..5 {
            let port = free_port();
            match Self::start_on(port).await {
                Ok(server) => return server,
                Err(e) => last_error = e,
            }
        }
        panic!("redis-server did not start on a free loopback port: {last_error}");
    }

    async fn start_on(port: u16) -> Result<RedisServer, String> {
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match child {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                "redis-server is not installed, and the shared credential cache tests need a real one: \
                 apt-get install -y redis-server (.ci/run does this)"
            ),
            Err(e) => panic!("cannot start redis-server: {e}"),
        };
        let mut server = RedisServer {
            child: Some(child),
            port,
        };
        for _ in 0..100 {
            if let Some(status) = server.child.as_mut().unwrap().try_wait().ok().flatten() {
                server.child = None;
                return Err(format!(
                    "redis-server exited with {status} (port {port} taken?)"
                ));
            }
            if server.ping().await {
                return Ok(server);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(format!("redis-server on port {port} did not answer PING"))
    }

    /// `redis://127.0.0.1:<port>/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    async fn connection(&self) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
        redis::Client::open(self.url())?
            .get_multiplexed_async_connection()
            .await
    }

    async fn ping(&self) -> bool {
        match self.connection().await {
            Ok(mut c) => redis::cmd("PING")
                .query_async::<String>(&mut c)
                .await
                .is_ok(),
            Err(_) => false,
        }
    }

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

    /// Kill the server (SIGKILL) and wait for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
