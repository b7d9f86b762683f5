//! The bridge's token cache: one JSON file per MCP server, readable only by
//! the user.
//!
//! The store is a directory (default `<user config dir>/immuta-mcp/tokens`,
//! i.e. `$XDG_CONFIG_HOME` or `~/.config` on Linux, `~/Library/Application
//! Support` on macOS, `%APPDATA%` on Windows). No OS keyring is used: this
//! file store is the one place tokens live. On Unix the directory is created
//! `0700` and files `0600` (written to a temporary file and renamed, so a
//! reader never sees half a file); a file that group or others can read is
//! refused and removed, as its tokens may have been read. On Windows the
//! per-user `%APPDATA%` ACL is what protects the files.
//!
//! The file holds OAuth tokens for this user only, never a platform secret.

use super::BridgeError;
use crate::secret::Secret;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// Tokens for one MCP server.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredTokens {
    /// The MCP server (token audience).
    pub resource: String,
    /// The authorization server that issued them.
    pub issuer: String,
    pub client_id: String,
    pub access_token: Secret,
    pub refresh_token: Option<Secret>,
    /// Unix seconds when the access token was issued and when it expires.
    pub issued_at: u64,
    pub expires_at: u64,
}

impl std::fmt::Debug for StoredTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredTokens")
            .field("resource", &self.resource)
            .field("issuer", &self.issuer)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize, Deserialize)]
struct FileFormat {
    resource: String,
    issuer: String,
    client_id: String,
    access_token: String,
    #[serde(default)]
    refresh_token: Option<String>,
    issued_at: u64,
    expires_at: u64,
}

/// The user's configuration directory, per platform (see the module doc).
pub fn user_config_dir() -> Option<PathBuf> {
    let env = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if cfg!(windows) {
        return env("APPDATA").map(PathBuf::from);
    }
    if cfg!(target_os = "macos") {
        return env("HOME").map(|h| PathBuf::from(h).join("Library/Application Support"));
    }
    env("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|h| PathBuf::from(h).join(".config")))
}

/// A directory of token files.
#[derive(Debug, Clone)]
pub struct TokenStore {
    dir: PathBuf,
}

impl TokenStore {
    /// The store in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The default store under the user's configuration directory.
    pub fn default_location() -> Result<Self, BridgeError> {
        user_config_dir()
            .map(|d| Self::new(d.join("immuta-mcp").join("tokens")))
            .ok_or_else(|| {
                BridgeError::Store(
                    "cannot find the user's configuration directory (HOME is not set); \
                     pass --token-store DIR"
                        .into(),
                )
            })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file for `resource`: host and port for people, a hash for uniqueness.
    pub fn path_for(&self, resource: &str) -> PathBuf {
        let label: String = url::Url::parse(resource)
            .ok()
            .and_then(|u| {
                u.host_str()
                    .map(|h| format!("{h}-{}", u.port_or_known_default().unwrap_or(0)))
            })
            .unwrap_or_else(|| "server".into())
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let hash = hex::encode(&Sha256::digest(resource.as_bytes())[..8]);
        self.dir.join(format!("{label}-{hash}.json"))
    }

    /// The cached tokens for `resource`, if any (and if the file is private).
    pub fn load(&self, resource: &str) -> Result<Option<StoredTokens>, BridgeError> {
        let path = self.path_for(resource);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(store_error(&path, e)),
        };
        if !is_private(&path)? {
            tracing::warn!(path = %path.display(), "token file readable by others: removed, signing in again");
            let _ = std::fs::remove_file(&path);
            return Ok(None);
        }
        let file: FileFormat = match serde_json::from_str(&text) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "token file unreadable: ignored");
                return Ok(None);
            }
        };
        if file.resource != resource {
            return Ok(None);
        }
        Ok(Some(StoredTokens {
            resource: file.resource,
            issuer: file.issuer,
            client_id: file.client_id,
            access_token: Secret::new(file.access_token),
            refresh_token: file.refresh_token.map(Secret::new),
            issued_at: file.issued_at,
            expires_at: file.expires_at,
        }))
    }

    /// Write the tokens (private file, atomically replaced).
    pub fn save(&self, tokens: &StoredTokens) -> Result<(), BridgeError> {
        create_private_dir(&self.dir)?;
        let path = self.path_for(&tokens.resource);
        let body = serde_json::to_vec_pretty(&FileFormat {
            resource: tokens.resource.clone(),
            issuer: tokens.issuer.clone(),
            client_id: tokens.client_id.clone(),
            access_token: tokens.access_token.expose().to_string(),
            refresh_token: tokens
                .refresh_token
                .as_ref()
                .map(|t| t.expose().to_string()),
            issued_at: tokens.issued_at,
            expires_at: tokens.expires_at,
        })
        .map_err(|e| BridgeError::Store(e.to_string()))?;
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        write_private(&tmp, &body).map_err(|e| store_error(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            store_error(&path, e)
        })
    }

    /// Forget the tokens of `resource`; true if there were any.
    pub fn forget(&self, resource: &str) -> Result<bool, BridgeError> {
        let path = self.path_for(resource);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(store_error(&path, e)),
        }
    }
}

fn store_error(path: &Path, e: std::io::Error) -> BridgeError {
    BridgeError::Store(format!("{}: {e}", path.display()))
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> Result<(), BridgeError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| store_error(dir, e))?;
    // An existing directory keeps its mode: tighten it.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| store_error(dir, e))
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> Result<(), BridgeError> {
    std::fs::create_dir_all(dir).map_err(|e| store_error(dir, e))
}

#[cfg(unix)]
fn write_private(path: &Path, body: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(body)?;
    file.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, body: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, body)
}

#[cfg(unix)]
fn is_private(path: &Path) -> Result<bool, BridgeError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| store_error(path, e))?;
    Ok(meta.permissions().mode() & 0o077 == 0)
}

#[cfg(not(unix))]
fn is_private(_path: &Path) -> Result<bool, BridgeError> {
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(resource: &str) -> StoredTokens {
        StoredTokens {
            resource: resource.into(),
            issuer: "https://as.example".into(),
            client_id: "immuta-mcp".into(),
            access_token: Secret::new("access-value"),
            refresh_token: Some(Secret::new("refresh-value")),
            issued_at: 1,
            expires_at: 2,
        }
    }

    #[test]
    fn tokens_round_trip_per_server_and_are_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::new(dir.path().join("nested/tokens"));
        let a = tokens("https://a.example/mcp");
        store.save(&a).unwrap();
        assert_eq!(store.load("https://a.example/mcp").unwrap(), Some(a));
        assert_eq!(store.load("https://b.example/mcp").unwrap(), None);
        assert_ne!(
            store.path_for("https://a.example/mcp"),
            store.path_for("https://a.example/other")
        );
        assert!(store.forget("https://a.example/mcp").unwrap());
        assert!(!store.forget("https://a.example/mcp").unwrap());
        assert_eq!(store.load("https://a.example/mcp").unwrap(), None);
    }

    #[cfg(unix)]
    #[test]
    fn files_are_0600_in_a_0700_directory_and_a_readable_file_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::new(dir.path().join("tokens"));
        std::fs::create_dir_all(store.dir()).unwrap();
        std::fs::set_permissions(store.dir(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let t = tokens("https://a.example/mcp");
        store.save(&t).unwrap();
        let path = store.path_for(&t.resource);
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(store.dir()), 0o700);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(store.load(&t.resource).unwrap(), None);
        assert!(!path.exists(), "an exposed token file is removed");
    }

    #[test]
    fn debug_shows_no_token() {
        let shown = format!("{:?}", tokens("https://a.example/mcp"));
        assert!(!shown.contains("access-value") && !shown.contains("refresh-value"));
    }
}
