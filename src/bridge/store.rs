//! The bridge's token cache: where each MCP server's OAuth tokens live.
//!
//! [`TokenStore`] picks the place once per process (`--token-backend`):
//! - `keyring`: the OS keyring ([`super::keyring_store`]: macOS Keychain,
//!   Windows Credential Manager, the Secret Service on Linux), one entry per
//!   server holding the same JSON the file store writes; refused when no
//!   keyring answers;
//! - `file`: [`FileStore`], one JSON file per server readable only by the user;
//! - `auto` (default): the keyring if a throw-away entry can be written, read
//!   back and deleted; otherwise the file store. Which one holds the tokens is
//!   said once on stderr. Tokens found in a file while the keyring is in use
//!   are moved into the keyring.
//!
//! [`FileStore`] is a directory (default `<user config dir>/immuta-mcp/tokens`,
//! i.e. `$XDG_CONFIG_HOME` or `~/.config` on Linux, `~/Library/Application
//! Support` on macOS, `%APPDATA%` on Windows). On Unix the directory is
//! created `0700` and files `0600` (written to a temporary file and renamed,
//! so a reader never sees half a file); a file that group or others can read
//! is refused and removed, as its tokens may have been read. On Windows the
//! per-user `%APPDATA%` ACL is what protects the files.
//!
//! Either place holds OAuth tokens for this user only, never a platform secret.

use super::BridgeError;
use super::keyring_store::KeyringStore;
use crate::secret::Secret;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;

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

/// The stored JSON (file content or keyring secret).
#[derive(Serialize, Deserialize)]
struct StoredFormat {
    resource: String,
    issuer: String,
    client_id: String,
    access_token: String,
    #[serde(default)]
    refresh_token: Option<String>,
    issued_at: u64,
    expires_at: u64,
}

impl StoredTokens {
    /// The JSON kept in the file or the keyring entry.
    fn encode(&self) -> Result<String, BridgeError> {
        serde_json::to_string(&StoredFormat {
            resource: self.resource.clone(),
            issuer: self.issuer.clone(),
            client_id: self.client_id.clone(),
            access_token: self.access_token.expose().to_string(),
            refresh_token: self.refresh_token.as_ref().map(|t| t.expose().to_string()),
            issued_at: self.issued_at,
            expires_at: self.expires_at,
        })
        .map_err(|e| BridgeError::Store(e.to_string()))
    }

    /// Parse stored JSON; `None` if unreadable or for another server.
    fn decode(text: &str, resource: &str, place: &str) -> Option<StoredTokens> {
        let stored: StoredFormat = match serde_json::from_str(text) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(place, error = %e, "stored tokens unreadable: ignored");
                return None;
            }
        };
        (stored.resource == resource).then(|| StoredTokens {
            resource: stored.resource,
            issuer: stored.issuer,
            client_id: stored.client_id,
            access_token: Secret::new(stored.access_token),
            refresh_token: stored.refresh_token.map(Secret::new),
            issued_at: stored.issued_at,
            expires_at: stored.expires_at,
        })
    }
}

/// The name of `resource`'s entry (file stem, keyring user): host and port
/// for people, a hash of the whole URL for uniqueness.
pub fn store_key(resource: &str) -> String {
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
    format!("{label}-{hash}")
}

/// `--token-backend`: where tokens are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenBackend {
    /// The OS keyring if one answers, else the file store.
    Auto,
    /// The OS keyring only (fail when there is none).
    Keyring,
    /// The private file store only.
    File,
}

/// Where this process keeps tokens, decided at the first use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Keyring,
    File,
}

/// The token cache: the OS keyring or the file store (see the module doc).
#[derive(Debug, Clone)]
pub struct TokenStore {
    backend: TokenBackend,
    files: FileStore,
    keyring: KeyringStore,
    place: Arc<tokio::sync::OnceCell<Place>>,
}

impl TokenStore {
    pub fn new(backend: TokenBackend, files: FileStore, keyring: KeyringStore) -> Self {
        Self {
            backend,
            files,
            keyring,
            place: Arc::default(),
        }
    }

    /// The file store alone (no keyring is ever asked).
    pub fn files_only(files: FileStore) -> Self {
        Self::new(
            TokenBackend::File,
            files,
            KeyringStore::new(std::time::Duration::from_secs(5)),
        )
    }

    pub fn file_store(&self) -> &FileStore {
        &self.files
    }

    /// Decide once where tokens live, and say so on stderr (never a token).
    async fn place(&self) -> Result<Place, BridgeError> {
        self.place
            .get_or_try_init(|| async {
                let place = match self.backend {
                    TokenBackend::File => {
                        eprintln!(
                            "immuta-mcp connect: tokens are kept in files under {} (readable only by you)",
                            self.files.dir().display()
                        );
                        Place::File
                    }
                    TokenBackend::Keyring => {
                        self.keyring.probe().await.map_err(|e| {
                            BridgeError::Store(format!(
                                "--token-backend keyring: no usable OS keyring ({}); \
                                 use --token-backend file or auto",
                                reason(&e)
                            ))
                        })?;
                        announce_keyring();
                        Place::Keyring
                    }
                    TokenBackend::Auto => match self.keyring.probe().await {
                        Ok(()) => {
                            announce_keyring();
                            Place::Keyring
                        }
                        Err(e) => {
                            eprintln!(
                                "immuta-mcp connect: no usable OS keyring ({}); tokens are kept \
                                 in files under {} (readable only by you)",
                                reason(&e),
                                self.files.dir().display()
                            );
                            Place::File
                        }
                    },
                };
                Ok(place)
            })
            .await
            .copied()
    }

    /// The cached tokens for `resource`, if any.
    pub async fn load(&self, resource: &str) -> Result<Option<StoredTokens>, BridgeError> {
        if self.place().await? == Place::File {
            return self.files.load(resource);
        }
        let key = store_key(resource);
        if let Some(text) = self.keyring.get(&key).await? {
            return Ok(StoredTokens::decode(&text, resource, "OS keyring"));
        }
        // Tokens cached in a file before the keyring was used: move them in.
        let Some(tokens) = self.files.load(resource)? else {
            return Ok(None);
        };
        match self.keyring.set(&key, tokens.encode()?).await {
            Ok(()) => {
                self.files.forget(resource)?;
                eprintln!(
                    "immuta-mcp connect: moved the cached tokens for {resource} into the OS keyring"
                );
            }
            // Kept where they are; `save` says why when they are next written.
            Err(e) => tracing::debug!(error = %e, "tokens stay in the file"),
        }
        Ok(Some(tokens))
    }

    /// Keep the tokens (replacing earlier ones for the same server).
    pub async fn save(&self, tokens: &StoredTokens) -> Result<(), BridgeError> {
        match self.place().await? {
            Place::File => self.files.save(tokens),
            Place::Keyring => {
                let key = store_key(&tokens.resource);
                match self.keyring.set(&key, tokens.encode()?).await {
                    Ok(()) => {
                        // A file from an earlier fallback would be stale now.
                        self.files.forget(&tokens.resource)?;
                        Ok(())
                    }
                    Err(e) if self.backend == TokenBackend::Keyring => Err(e),
                    // `auto`: e.g. the Windows Credential Manager refuses entries over
                    // 2,560 bytes, which a large JWT pair can exceed. Keep them in the file.
                    Err(e) => {
                        eprintln!(
                            "immuta-mcp connect: the OS keyring refused the tokens for {} ({}); \
                             kept in files under {} (readable only by you)",
                            tokens.resource,
                            reason(&e),
                            self.files.dir().display()
                        );
                        let _ = self.keyring.delete(&key).await;
                        self.files.save(tokens)
                    }
                }
            }
        }
    }

    /// Forget the tokens of `resource` wherever this process keeps them (and
    /// any file left from before); true if there were any.
    pub async fn forget(&self, resource: &str) -> Result<bool, BridgeError> {
        let in_keyring = match self.place().await? {
            Place::Keyring => self.keyring.delete(&store_key(resource)).await?,
            Place::File => false,
        };
        Ok(self.files.forget(resource)? | in_keyring)
    }

    /// `--logout`: forget the tokens in the file store and in the OS keyring,
    /// whichever backend is selected (a keyring that does not answer has none
    /// of ours to forget, unless it is the selected store).
    pub async fn forget_everywhere(&self, resource: &str) -> Result<bool, BridgeError> {
        let in_file = self.files.forget(resource)?;
        let in_keyring = match self.place().await {
            Ok(Place::Keyring) => self.keyring.delete(&store_key(resource)).await?,
            Ok(Place::File) => match self.keyring.delete(&store_key(resource)).await {
                Ok(found) => found,
                Err(e) => {
                    tracing::debug!(error = %e, "no OS keyring to forget tokens in");
                    false
                }
            },
            Err(e) => return Err(e),
        };
        Ok(in_file | in_keyring)
    }
}

/// An error's text without the `token store:` prefix.
fn reason(e: &BridgeError) -> String {
    match e {
        BridgeError::Store(text) => text.clone(),
        other => other.to_string(),
    }
}

fn announce_keyring() {
    eprintln!(
        "immuta-mcp connect: tokens are kept in the OS keyring (service \"{}\")",
        super::keyring_store::SERVICE
    );
}

/// A directory of token files.
#[derive(Debug, Clone)]
pub struct FileStore {
    dir: PathBuf,
}

impl FileStore {
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

    /// The file for `resource`.
    pub fn path_for(&self, resource: &str) -> PathBuf {
        self.dir.join(format!("{}.json", store_key(resource)))
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
        Ok(StoredTokens::decode(
            &text,
            resource,
            &path.display().to_string(),
        ))
    }

    /// Write the tokens (private file, atomically replaced).
    pub fn save(&self, tokens: &StoredTokens) -> Result<(), BridgeError> {
        create_private_dir(&self.dir)?;
        let path = self.path_for(&tokens.resource);
        let body = tokens.encode()?;
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        write_private(&tmp, body.as_bytes()).map_err(|e| store_error(&tmp, e))?;
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
        let store = FileStore::new(dir.path().join("nested/tokens"));
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
        let store = FileStore::new(dir.path().join("tokens"));
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
    fn each_server_has_its_own_readable_store_key() {
        let key = store_key("https://mcp.example.com/mcp");
        let (label, hash) = key.rsplit_once('-').unwrap();
        assert_eq!(label, "mcp.example.com-443");
        assert_eq!(hash.len(), 16);
        assert!(hash.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(key, store_key("https://mcp.example.com/other"));
        assert!(store_key("http://127.0.0.1:8080/mcp").starts_with("127.0.0.1-8080-"));
        let files = FileStore::new("/tokens");
        assert_eq!(
            files.path_for("https://mcp.example.com/mcp"),
            Path::new("/tokens").join(format!("{key}.json"))
        );
    }

    #[test]
    fn debug_shows_no_token() {
        let shown = format!("{:?}", tokens("https://a.example/mcp"));
        assert!(!shown.contains("access-value") && !shown.contains("refresh-value"));
    }
}
