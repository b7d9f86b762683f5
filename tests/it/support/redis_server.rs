//! A real `redis-server` on a free loopback port, without persistence: for the shared-cache tests
//! and benchmark section 7 (replicas sharing a cache). One file serves both: the benchmark
//! includes it with `#[path]` from `examples/loadgen/harness.rs`. A missing binary is an error with
//! the command to install it (the tests turn it into a failure, never a skip). Nothing here
//! panics: `start` returns the reason. The tests' extra data helpers are in `redis_data.rs`.

use std::process::Stdio;
use std::time::Duration;

/// What a missing `redis-server` binary tells the person running the tests or the benchmark.
const INSTALL_HINT: &str = "redis-server is not installed, and the shared credential cache tests and \
     benchmark section 7 need a real one: apt-get install -y redis-server (.ci/run does this)";

/// A `redis-server` child; killed when dropped.
pub struct RedisServer {
    child: Option<std::process::Child>,
    pub port: u16,
}

/// Why one start attempt failed: another port may help, or it will not.
enum StartError {
    Retry(String),
    Fatal(String),
}

fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| format!("cannot bind 127.0.0.1:0: {e}"))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("no local address for 127.0.0.1:0: {e}"))?;
    Ok(addr.port())
}

impl RedisServer {
    /// Start `redis-server` on a free loopback port (retried on a port collision).
    pub async fn start() -> Result<RedisServer, String> {
        let mut last_error = String::new();
        for _ in 0..5 {
            let port = free_port()?;
            match Self::start_on(port).await {
                Ok(server) => return Ok(server),
                Err(StartError::Retry(e)) => last_error = e,
                Err(StartError::Fatal(e)) => return Err(e),
            }
        }
        Err(format!(
            "redis-server did not start on a free loopback port: {last_error}"
        ))
    }

    async fn start_on(port: u16) -> Result<RedisServer, StartError> {
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
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StartError::Fatal(format!("{INSTALL_HINT}: {e}")));
            }
            Err(e) => return Err(StartError::Fatal(format!("cannot start redis-server: {e}"))),
        };
        let mut server = RedisServer {
            child: Some(child),
            port,
        };
        for _ in 0..100 {
            if let Some(child) = server.child.as_mut()
                && let Some(status) = child.try_wait().ok().flatten()
            {
                server.child = None;
                return Err(StartError::Retry(format!(
                    "redis-server exited with {status} (port {port} taken?)"
                )));
            }
            if server.ping().await {
                return Ok(server);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(StartError::Retry(format!(
            "redis-server on port {port} did not answer PING"
        )))
    }

    /// `redis://127.0.0.1:<port>/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    pub async fn connection(&self) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
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
