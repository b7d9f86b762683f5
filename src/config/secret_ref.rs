//! References to secrets in the configuration (`{ env = "NAME" }`,
//! `{ file = "path" }`), resolved into [`Secret`]s that never print. A file
//! may not hold an inline `{ value = ... }`; only in-memory configurations
//! (the sandbox) use [`SecretRef::Value`].

use super::ConfigError;
use crate::secret::Secret;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Where a secret comes from.
///
/// A configuration *file* may only name `env` or `file`: deserialising
/// `{ value = "..." }` is refused (an inline secret ends up in backups, diffs
/// and, before this check, in TOML error messages). [`SecretRef::Value`] stays
/// available to code: the sandbox builds its configuration in memory
/// (`Sandbox::client_config`) and never parses a file.
#[derive(Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretRef {
    /// Read from an environment variable.
    Env(String),
    /// Read from a file (trailing whitespace trimmed).
    File(PathBuf),
    /// Inline value (sandbox and tests only; never accepted from a config file).
    Value(String),
}

/// The file form of [`SecretRef`]: the `value` variant is recognised only to be refused,
/// and its content is never kept (`IgnoredAny`).
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum SecretRefFile {
    Env(String),
    File(PathBuf),
    Value(serde::de::IgnoredAny),
}

/// The message for an inline secret found in a configuration file.
pub const INLINE_SECRET_REFUSED: &str = "inline secrets (`{ value = ... }`) are not accepted in a configuration file: \
     use `{ env = \"VARIABLE\" }` or `{ file = \"/path/to/secret\" }`";

impl<'de> Deserialize<'de> for SecretRef {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match SecretRefFile::deserialize(deserializer)? {
            SecretRefFile::Env(v) => Ok(SecretRef::Env(v)),
            SecretRefFile::File(p) => Ok(SecretRef::File(p)),
            SecretRefFile::Value(_) => Err(serde::de::Error::custom(INLINE_SECRET_REFUSED)),
        }
    }
}

impl std::fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretRef::Env(v) => write!(f, "env:{v}"),
            SecretRef::File(p) => write!(f, "file:{}", p.display()),
            SecretRef::Value(_) => f.write_str("value:<redacted>"),
        }
    }
}

impl SecretRef {
    /// Resolve the reference into a secret; `what` names it in errors.
    pub fn resolve(&self, what: &str) -> Result<Secret, ConfigError> {
        match self {
            SecretRef::Env(var) => {
                std::env::var(var)
                    .map(Secret::new)
                    .map_err(|_| ConfigError::MissingEnv {
                        what: what.into(),
                        var: var.clone(),
                    })
            }
            SecretRef::File(path) => std::fs::read_to_string(path)
                .map(|s| Secret::new(s.trim_end().to_string()))
                .map_err(|source| ConfigError::SecretFile {
                    what: what.into(),
                    path: path.clone(),
                    source,
                }),
            SecretRef::Value(v) => Ok(Secret::new(v.clone())),
        }
    }
}
