//! Authenticated encryption of shared cache entries (AES-256-GCM, NIST SP
//! 800-38D) so Redis never holds a usable credential in clear.
//!
//! Layout of a sealed entry: `version (1 byte) || nonce (12 bytes) ||
//! ciphertext+tag`. The nonce is random per entry (96-bit, SP 800-38D §8.2.2;
//! a key seals few enough entries that random nonces stay far below the
//! 2^32 bound). The associated data binds the entry to its cache key
//! (agent, end user, platform), so an entry copied under another user's key
//! fails authentication instead of handing one user's credential to another.

use crate::secret::Secret;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;

const VERSION: u8 = 1;
const NONCE_LEN: usize = 12;

/// Why a key or a sealed entry cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    #[error(
        "cache.encryption_key must be 32 bytes, given as 64 hex digits or as base64 (got {0} bytes)"
    )]
    KeyLength(usize),
    #[error("the shared cache entry is not a sealed entry of this version")]
    Format,
    #[error(
        "the shared cache entry does not authenticate under this key and cache key (another key, another user, or tampered)"
    )]
    Authentication,
    /// AES-GCM refuses only messages longer than 2^36 bytes (NIST SP 800-38D
    /// §5.2.1.1); a credential never comes close.
    #[error("the credential is too large to seal for the shared cache")]
    TooLarge,
}

/// Where an entry belongs: the associated data of its seal.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EntryScope {
    /// The agent identity the credential was obtained with.
    pub agent: String,
    /// The end user it was vended for.
    pub user: String,
    /// `snowflake` or `databricks`.
    pub platform: &'static str,
}

impl EntryScope {
    /// Length-prefixed fields, so no two scopes encode alike.
    fn associated_data(&self) -> Vec<u8> {
        let mut aad = b"immuta-mcp shared credential v1".to_vec();
        for field in [self.platform, &self.agent, &self.user] {
            aad.extend_from_slice(&(field.len() as u64).to_be_bytes());
            aad.extend_from_slice(field.as_bytes());
        }
        aad
    }
}

/// Seals and opens shared entries with one AES-256-GCM key.
#[derive(Clone)]
pub struct Sealer {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(<key redacted>)")
    }
}

impl Sealer {
    /// The key from its configured text: 64 hex digits or base64 of 32 bytes.
    pub fn from_secret(key: &Secret) -> Result<Self, SealError> {
        let text = key.expose().trim();
        let raw = if text.len() == 64 && text.chars().all(|c| c.is_ascii_hexdigit()) {
            hex::decode(text).map_err(|_| SealError::KeyLength(0))?
        } else {
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text))
                .map_err(|_| SealError::KeyLength(0))?
        };
        if raw.len() != 32 {
            return Err(SealError::KeyLength(raw.len()));
        }
        let cipher =
            Aes256Gcm::new_from_slice(&raw).map_err(|_| SealError::KeyLength(raw.len()))?;
        Ok(Self { cipher })
    }

    /// Encrypt `plain` for `scope` under a fresh random nonce.
    pub fn seal(&self, scope: &EntryScope, plain: &[u8]) -> Result<Vec<u8>, SealError> {
        let nonce: [u8; NONCE_LEN] = rand::random();
        let aad = scope.associated_data();
        let sealed = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plain,
                    aad: &aad,
                },
            )
            .map_err(|_| SealError::TooLarge)?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Decrypt an entry sealed for `scope`.
    pub fn open(&self, scope: &EntryScope, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        if sealed.len() < 1 + NONCE_LEN + 16 || sealed[0] != VERSION {
            return Err(SealError::Format);
        }
        let (nonce, body) = sealed[1..].split_at(NONCE_LEN);
        let aad = scope.associated_data();
        self.cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: body,
                    aad: &aad,
                },
            )
            .map_err(|_| SealError::Authentication)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(user: &str) -> EntryScope {
        EntryScope {
            agent: "AGENT".into(),
            user: user.into(),
            platform: "snowflake",
        }
    }

    fn sealer() -> Sealer {
        Sealer::from_secret(&Secret::new("11".repeat(32))).unwrap()
    }

    #[test]
    fn an_entry_opens_only_under_its_own_scope_and_key() {
        let s = sealer();
        let sealed = s.seal(&scope("alice"), b"pat-secret").unwrap();
        assert!(
            !sealed.windows(10).any(|w| w == b"pat-secret"),
            "nothing in clear"
        );
        assert_eq!(s.open(&scope("alice"), &sealed).unwrap(), b"pat-secret");
        assert_eq!(
            s.open(&scope("bob"), &sealed),
            Err(SealError::Authentication),
            "replayed under another user's key"
        );
        let other_agent = EntryScope {
            agent: "OTHER".into(),
            ..scope("alice")
        };
        assert_eq!(
            s.open(&other_agent, &sealed),
            Err(SealError::Authentication)
        );
        let other_key = Sealer::from_secret(&Secret::new("22".repeat(32))).unwrap();
        assert_eq!(
            other_key.open(&scope("alice"), &sealed),
            Err(SealError::Authentication)
        );
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert_eq!(
            s.open(&scope("alice"), &tampered),
            Err(SealError::Authentication)
        );
        assert_eq!(
            s.open(&scope("alice"), b"\x01short"),
            Err(SealError::Format)
        );
    }

    #[test]
    fn nonces_are_fresh_per_entry() {
        let s = sealer();
        let a = s.seal(&scope("alice"), b"same").unwrap();
        let b = s.seal(&scope("alice"), b"same").unwrap();
        assert_ne!(a[1..13], b[1..13]);
        assert_ne!(a, b);
    }

    #[test]
    fn keys_are_32_bytes_in_hex_or_base64() {
        let b64 = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        assert!(Sealer::from_secret(&Secret::new(b64)).is_ok());
        assert_eq!(
            Sealer::from_secret(&Secret::new("ab".repeat(16))).unwrap_err(),
            SealError::KeyLength(24),
            "32 hex digits read as base64 are 24 bytes"
        );
        assert!(Sealer::from_secret(&Secret::new("not a key!")).is_err());
    }
}
