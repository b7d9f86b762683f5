//! Authentication of the Snowflake emulator: key-pair JWTs and programmatic access tokens.
//!
//! [`KeyPairVerifier`] holds the public key registered for the agent user
//! (derived once from the sandbox's PKCS#8 private key) and checks a
//! `KEYPAIR_JWT` as Snowflake does: RS256 signature, `iss =
//! ACCOUNT.USER.SHA256:<fingerprint of the registered key>`, `sub =
//! ACCOUNT.USER`, `exp` at most the configured lifetime (1 h) after `iat`, not
//! expired (60 s clock-skew leeway), `iat` not in the future.
//!
//! [`PatRegistry`] keeps the tokens minted with `ALTER USER ... ADD
//! PROGRAMMATIC ACCESS TOKEN`. Only a SHA-256 of each secret is stored; a
//! token is tied to its role restriction, its expiry and the sandbox's
//! credential epoch at minting time (a later epoch expires it).
//!
//! Error codes (401 answers, body `{code, message}`):
//! `390101` no/unsupported `Authorization` header, `390144` invalid JWT,
//! `390303` unknown programmatic access token or role restriction no longer
//! granted, `390318` expired programmatic access token.

use crate::sandbox::state::SandboxCredentials;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey, LineEnding};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// No usable `Authorization` header.
pub const CODE_NO_AUTH: &str = "390101";
/// The key-pair JWT is invalid.
pub const CODE_JWT_INVALID: &str = "390144";
/// The key-pair JWT has expired (rinsed-org/rb-snowflake-client#170).
pub const CODE_JWT_EXPIRED: &str = "390198";
/// The programmatic access token is unknown or its role is no longer granted.
pub const CODE_PAT_INVALID: &str = "390303";
/// The programmatic access token has expired.
pub const CODE_PAT_EXPIRED: &str = "390318";

/// Leeway for clock skew between the client and the emulator.
const CLOCK_SKEW: u64 = 60;

/// A refused credential: answered as HTTP 401 `{code, message}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct AuthError {
    pub code: &'static str,
    pub message: String,
}

impl AuthError {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    fn jwt(reason: impl std::fmt::Display) -> Self {
        Self::new(
            CODE_JWT_INVALID,
            format!("JWT token is invalid. [{reason}]"),
        )
    }
}

#[derive(Debug, Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    iat: u64,
    exp: u64,
}

/// The public keys registered for the agent users the sandbox hosts (one
/// per agent of a pool), and the JWT rules.
pub struct KeyPairVerifier {
    keys: Vec<RegisteredKey>,
}

impl KeyPairVerifier {
    /// Derive each agent user's public key and fingerprint from its private key.
    pub fn new(creds: &SandboxCredentials, max_lifetime: Duration) -> Self {
        let keys = creds
            .snowflake_agents()
            .into_iter()
            .map(|(user, pem)| {
                RegisteredKey::new(&creds.snowflake_account, &user, &pem, max_lifetime)
            })
            .collect();
        Self { keys }
    }

    /// Check a key-pair JWT; `Ok` names the agent user (upper case) it was
    /// issued for with that user's registered key.
    pub fn verify(&self, token: &str) -> Result<String, AuthError> {
        // The key is chosen by the user `iss` names (read before any check),
        // as Snowflake looks up the user's registered key; the signature is
        // then verified with that key alone.
        let named = token
            .split('.')
            .nth(1)
            .and_then(|payload| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(payload)
                    .ok()
            })
            .and_then(|json| serde_json::from_slice::<serde_json::Value>(&json).ok())
            .and_then(|claims| claims.get("iss")?.as_str().map(str::to_string))
            .and_then(|iss| iss.split_once(".SHA256:").map(|(user, _)| user.to_string()));
        let key = named
            .and_then(|user| self.keys.iter().find(|k| k.qualified_user == user))
            .or_else(|| self.keys.first())
            .ok_or_else(|| AuthError::jwt("no public key is registered for the user"))?;
        key.verify(token).map(|()| key.user.clone())
    }
}

/// The public key registered for one agent user.
struct RegisteredKey {
    /// `USER` (upper case).
    user: String,
    /// `None` when the sandbox's private key could not be read: every JWT is refused.
    key: Option<DecodingKey>,
    fingerprint: String,
    qualified_user: String,
    max_lifetime: Duration,
}

impl RegisteredKey {
    /// Derive the public key and its `SHA256:` fingerprint from the agent's private key.
    fn new(account: &str, user: &str, private_key_pem: &str, max_lifetime: Duration) -> Self {
        let qualified_user = format!(
            "{}.{}",
            account.to_ascii_uppercase(),
            user.to_ascii_uppercase()
        );
        let user = user.to_ascii_uppercase();
        let derived = rsa::RsaPrivateKey::from_pkcs8_pem(private_key_pem)
            .map_err(|e| e.to_string())
            .and_then(|private| {
                let public = rsa::RsaPublicKey::from(&private);
                let der = public.to_public_key_der().map_err(|e| e.to_string())?;
                let pem = public
                    .to_public_key_pem(LineEnding::LF)
                    .map_err(|e| e.to_string())?;
                let key = DecodingKey::from_rsa_pem(pem.as_bytes()).map_err(|e| e.to_string())?;
                let fingerprint = format!(
                    "SHA256:{}",
                    base64::engine::general_purpose::STANDARD
                        .encode(Sha256::digest(der.as_bytes()))
                );
                Ok((key, fingerprint))
            });
        match derived {
            Ok((key, fingerprint)) => Self {
                user,
                key: Some(key),
                fingerprint,
                qualified_user,
                max_lifetime,
            },
            Err(reason) => {
                tracing::error!(%reason, "sandbox Snowflake private key unreadable; every key-pair JWT will be refused");
                Self {
                    user,
                    key: None,
                    fingerprint: String::new(),
                    qualified_user,
                    max_lifetime,
                }
            }
        }
    }

    /// Check a key-pair JWT; `Ok` means it was issued for this agent user with its registered key.
    fn verify(&self, token: &str) -> Result<(), AuthError> {
        let Some(key) = &self.key else {
            return Err(AuthError::jwt("no public key is registered for the user"));
        };
        let header = jsonwebtoken::decode_header(token).map_err(AuthError::jwt)?;
        if header.alg != Algorithm::RS256 {
            return Err(AuthError::jwt(format!(
                "unsupported algorithm {:?}: key-pair authentication requires RS256",
                header.alg
            )));
        }
        let mut validation = Validation::new(Algorithm::RS256);
        validation.leeway = CLOCK_SKEW;
        validation.validate_exp = true;
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp", "iat", "iss", "sub"]);
        let claims = jsonwebtoken::decode::<Claims>(token, key, &validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                    AuthError::new(CODE_JWT_EXPIRED, "Keypair access token expired.")
                }
                jsonwebtoken::errors::ErrorKind::InvalidSignature => AuthError::jwt(
                    "the signature does not verify with the public key registered for the user",
                ),
                _ => AuthError::jwt(e),
            })?
            .claims;
        let Some((issuer_user, fingerprint)) = claims.iss.split_once(".SHA256:") else {
            return Err(AuthError::jwt(
                "iss must be <ACCOUNT>.<USER>.SHA256:<public key fingerprint>",
            ));
        };
        if issuer_user != self.qualified_user {
            return Err(AuthError::jwt(format!(
                "iss names '{issuer_user}', expected '{}'",
                self.qualified_user
            )));
        }
        if format!("SHA256:{fingerprint}") != self.fingerprint {
            return Err(AuthError::jwt(
                "the public key fingerprint in iss does not match the key registered for the user",
            ));
        }
        if claims.sub != self.qualified_user {
            return Err(AuthError::jwt(format!(
                "sub is '{}', expected '{}'",
                claims.sub, self.qualified_user
            )));
        }
        let now = unix_now();
        if claims.iat > now + CLOCK_SKEW {
            return Err(AuthError::jwt("iat is in the future"));
        }
        if claims.exp.saturating_sub(claims.iat) > self.max_lifetime.as_secs() {
            return Err(AuthError::jwt(format!(
                "the token lifetime (exp - iat = {} s) exceeds the maximum of {} s",
                claims.exp.saturating_sub(claims.iat),
                self.max_lifetime.as_secs()
            )));
        }
        Ok(())
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// One minted programmatic access token (the secret itself is not kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatRecord {
    pub name: String,
    /// The Snowflake user the token belongs to (the agent user).
    pub user: String,
    pub role_restriction: String,
    pub comment: Option<String>,
    pub created_at: SystemTime,
    pub expires_at: SystemTime,
    /// Sandbox credential epoch when minted; an older epoch means expired.
    pub epoch: u64,
    secret_sha256: [u8; 32],
}

/// Why a token could not be added.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddPatError {
    #[error("Programmatic access token '{0}' already exists.")]
    AlreadyExists(String),
    #[error(
        "Cannot add programmatic access token '{name}': user '{user}' already has the maximum of {limit} programmatic access tokens. Remove unused or expired tokens with ALTER USER {user} REMOVE PROGRAMMATIC ACCESS TOKEN <name>."
    )]
    LimitReached {
        name: String,
        user: String,
        limit: usize,
    },
}

/// What `add` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddPatOutcome {
    /// A new token; the secret is shown this once.
    Created { name: String, secret: String },
    /// `IF NOT EXISTS` and the name was taken: nothing changed.
    Existed { name: String },
}

/// Parameters of a new token.
#[derive(Debug, Clone)]
pub struct NewPat {
    pub user: String,
    pub name: String,
    pub role_restriction: String,
    pub lifetime: Duration,
    pub comment: Option<String>,
    pub epoch: u64,
    pub if_not_exists: bool,
}

/// The tokens minted so far, per user.
#[derive(Default)]
pub struct PatRegistry {
    tokens: Mutex<Vec<PatRecord>>,
}

impl PatRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Mint a token, enforcing unique names and the per-user limit (expired tokens count until removed).
    pub fn add(&self, new: NewPat, limit: usize) -> Result<AddPatOutcome, AddPatError> {
        let mut tokens = self.tokens.lock().unwrap_or_else(PoisonError::into_inner);
        if tokens
            .iter()
            .any(|t| t.user == new.user && t.name == new.name)
        {
            return if new.if_not_exists {
                Ok(AddPatOutcome::Existed { name: new.name })
            } else {
                Err(AddPatError::AlreadyExists(new.name))
            };
        }
        if tokens.iter().filter(|t| t.user == new.user).count() >= limit {
            return Err(AddPatError::LimitReached {
                name: new.name,
                user: new.user,
                limit,
            });
        }
        let secret = hex::encode(rand::random::<[u8; 32]>());
        let now = SystemTime::now();
        tokens.push(PatRecord {
            name: new.name.clone(),
            user: new.user,
            role_restriction: new.role_restriction,
            comment: new.comment,
            created_at: now,
            expires_at: now + new.lifetime,
            epoch: new.epoch,
            secret_sha256: Sha256::digest(secret.as_bytes()).into(),
        });
        Ok(AddPatOutcome::Created {
            name: new.name,
            secret,
        })
    }

    /// Remove a token by name; false when the user has no such token.
    pub fn remove(&self, user: &str, name: &str) -> bool {
        let mut tokens = self.tokens.lock().unwrap_or_else(PoisonError::into_inner);
        let before = tokens.len();
        tokens.retain(|t| !(t.user == user && t.name == name));
        tokens.len() != before
    }

    /// The user's tokens, oldest first.
    pub fn list(&self, user: &str) -> Vec<PatRecord> {
        let tokens = self.tokens.lock().unwrap_or_else(PoisonError::into_inner);
        tokens.iter().filter(|t| t.user == user).cloned().collect()
    }

    /// The token whose secret this is.
    pub fn find_by_secret(&self, secret: &str) -> Option<PatRecord> {
        let digest: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
        let tokens = self.tokens.lock().unwrap_or_else(PoisonError::into_inner);
        tokens.iter().find(|t| t.secret_sha256 == digest).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_pat(name: &str) -> NewPat {
        NewPat {
            user: "AGENT".into(),
            name: name.into(),
            role_restriction: "R".into(),
            lifetime: Duration::from_secs(60),
            comment: None,
            epoch: 0,
            if_not_exists: false,
        }
    }

    #[test]
    fn registry_enforces_names_and_limit_and_finds_by_secret() {
        let reg = PatRegistry::new();
        let AddPatOutcome::Created { secret, .. } = reg.add(new_pat("A"), 2).unwrap() else {
            panic!("created");
        };
        assert_eq!(reg.find_by_secret(&secret).unwrap().name, "A");
        assert!(reg.find_by_secret("nope").is_none());
        assert_eq!(
            reg.add(new_pat("A"), 2),
            Err(AddPatError::AlreadyExists("A".into()))
        );
        let mut again = new_pat("A");
        again.if_not_exists = true;
        assert_eq!(
            reg.add(again, 2),
            Ok(AddPatOutcome::Existed { name: "A".into() })
        );
        reg.add(new_pat("B"), 2).unwrap();
        let err = reg.add(new_pat("C"), 2).unwrap_err();
        assert!(err.to_string().contains("maximum of 2"), "{err}");
        assert!(reg.remove("AGENT", "A"));
        assert!(!reg.remove("AGENT", "A"));
        assert!(reg.find_by_secret(&secret).is_none());
        reg.add(new_pat("C"), 2).unwrap();
        assert_eq!(reg.list("AGENT").len(), 2);
    }
}
