//! The bridge's OS-keyring backend: one keyring entry per MCP server, holding
//! the same JSON the file store writes.
//!
//! Through the `keyring` crate: the macOS Keychain, the Windows Credential
//! Manager, and on Linux/BSD the freedesktop Secret Service (GNOME Keyring,
//! KWallet, KeePassXC) over the D-Bus session bus, spoken by zbus in pure
//! Rust. Entries are service `immuta-mcp`, user = the server's store key
//! (`<host>-<port>-<hash>`, the file store's file name without `.json`).
//!
//! The crate's calls block, and a Secret Service can hang on an unlock prompt
//! nobody answers (a headless session), so every call runs on its own thread
//! and is given up after a time limit; the thread is detached, so a stuck
//! call never holds the process open.

use super::BridgeError;
use std::time::Duration;

/// The keyring service name of every entry.
pub const SERVICE: &str = "immuta-mcp";

/// Entries in the OS keyring, each call bounded by `timeout`.
#[derive(Debug, Clone)]
pub struct KeyringStore {
    timeout: Duration,
}

impl KeyringStore {
    pub fn new(timeout: Duration) -> Self {
        Self { timeout }
    }

    /// The secret stored for `key`, if any.
    pub async fn get(&self, key: &str) -> Result<Option<String>, BridgeError> {
        self.run(key, Op::Get).await
    }

    /// Store `secret` for `key` (replacing any earlier one).
    pub async fn set(&self, key: &str, secret: String) -> Result<(), BridgeError> {
        self.run(key, Op::Set(secret)).await.map(|_| ())
    }

    /// Delete the entry for `key`; true if there was one.
    pub async fn delete(&self, key: &str) -> Result<bool, BridgeError> {
        self.run(key, Op::Delete).await.map(|r| r.is_some())
    }

    /// Is a keyring reachable and writable? Writes, reads back and deletes a
    /// throw-away entry (a keyring that can only be read would lose tokens).
    pub async fn probe(&self) -> Result<(), BridgeError> {
        let key = format!("probe-{}", uuid::Uuid::new_v4().simple());
        let value = uuid::Uuid::new_v4().simple().to_string();
        self.set(&key, value.clone()).await?;
        let read = self.get(&key).await;
        let deleted = self.delete(&key).await;
        match read? {
            Some(v) if v == value => {}
            _ => {
                return Err(BridgeError::Store(
                    "the OS keyring did not return what was written to it".into(),
                ));
            }
        }
        deleted.map(|_| ())
    }

    async fn run(&self, key: &str, op: Op) -> Result<Option<String>, BridgeError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let key = key.to_string();
        std::thread::Builder::new()
            .name("immuta-mcp-keyring".into())
            .spawn(move || {
                let _ = tx.send(platform::call(&key, op));
            })
            .map_err(|e| BridgeError::Store(format!("OS keyring: cannot start a thread: {e}")))?;
        match tokio::time::timeout(self.timeout, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(BridgeError::Store("OS keyring: the call failed".into())),
            Err(_) => Err(BridgeError::Store(format!(
                "OS keyring: no answer within {} s (locked keyring waiting for an unlock prompt?)",
                self.timeout.as_secs_f32()
            ))),
        }
    }
}

enum Op {
    Get,
    Set(String),
    Delete,
}

#[cfg(any(
    target_os = "linux",
    target_os = "freebsd",
    target_os = "openbsd",
    target_os = "macos",
    windows
))]
mod platform {
    use super::{BridgeError, Op, SERVICE};

    /// One blocking keyring call. `Ok(None)`: no such entry (for `Set`: done).
    pub(super) fn call(key: &str, op: Op) -> Result<Option<String>, BridgeError> {
        let entry = keyring::Entry::new(SERVICE, key).map_err(failed)?;
        match op {
            Op::Get => match entry.get_password() {
                Ok(secret) => Ok(Some(secret)),
                Err(keyring::Error::NoEntry) => Ok(None),
                Err(e) => Err(failed(e)),
            },
            Op::Set(secret) => entry.set_password(&secret).map(|()| None).map_err(failed),
            Op::Delete => match entry.delete_credential() {
                Ok(()) => Ok(Some(String::new())),
                Err(keyring::Error::NoEntry) => Ok(None),
                Err(e) => Err(failed(e)),
            },
        }
    }

    /// The crate's error text names the platform failure, never the secret.
    fn failed(e: keyring::Error) -> BridgeError {
        let text = match &e {
            // Its Debug/Display would carry the bytes: never show them.
            keyring::Error::BadEncoding(_) => "an entry that is not UTF-8".to_string(),
            other => other.to_string(),
        };
        BridgeError::Store(format!("OS keyring: {text}"))
    }
}

#[cfg(not(any(
    target_os = "linux",
    target_os = "freebsd",
    target_os = "openbsd",
    target_os = "macos",
    windows
)))]
mod platform {
    use super::{BridgeError, Op};

    pub(super) fn call(_key: &str, _op: Op) -> Result<Option<String>, BridgeError> {
        Err(BridgeError::Store(
            "OS keyring: not supported on this platform".into(),
        ))
    }
}
