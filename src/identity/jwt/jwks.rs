//! The issuer's JWKS for [`JwtVerifier`]: fetching (single flight, with a
//! timeout), caching for `jwks_cache_secs`, background refresh of stale keys,
//! one rate-limited refetch for an unknown `kid` (key rotation), and
//! selecting the key that fits a token's `kid` and algorithm. No lock is
//! held across the network.

use super::{JWKS_FETCH_TIMEOUT, JwtVerifier};
use crate::identity::AuthError;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily};
use serde_json::Value;
use std::time::Instant;

#[derive(Default)]
pub(super) struct JwksCache {
    keys: Vec<Jwk>,
    /// Last successful fetch.
    fetched_at: Option<Instant>,
    last_forced_refetch: Option<Instant>,
    last_failure: Option<Instant>,
    /// When a background refresh of stale keys was last started.
    last_background: Option<Instant>,
    /// Counts finished fetch attempts (success or failure), so that callers
    /// queued behind a fetch use its outcome instead of fetching again.
    attempts: u64,
}

/// What a lookup found.
enum Lookup {
    Found(Jwk),
    /// Fetch (single flight) and look again; `attempts` is the count seen.
    Fetch {
        attempts: u64,
    },
    Refuse(AuthError),
}

impl JwtVerifier {
    /// Fetch the JWKS unless usable keys are cached and fresh (the readiness
    /// probe: a server that cannot fetch its issuer's keys cannot verify a token).
    pub async fn ensure_keys(&self) -> Result<(), AuthError> {
        let attempts = {
            let cache = self.cache();
            let fresh = cache
                .fetched_at
                .is_some_and(|t| t.elapsed() < self.inner.cache_ttl);
            if fresh && !cache.keys.is_empty() {
                return Ok(());
            }
            cache.attempts
        };
        self.fetch_once(attempts).await?;
        if self.cache().keys.is_empty() {
            return Err(AuthError::JwksUnavailable(format!(
                "the JWKS at {} holds no usable key",
                self.inner.jwks_url
            )));
        }
        Ok(())
    }

    /// The JWKS key for `kid` that fits `alg`, fetching or refetching the JWKS as needed.
    pub(super) async fn key_for(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<Jwk, AuthError> {
        let attempts = match self.lookup(kid, alg)? {
            Lookup::Found(jwk) => return Ok(jwk),
            Lookup::Refuse(e) => return Err(e),
            Lookup::Fetch { attempts } => attempts,
        };
        let fetched = self.fetch_once(attempts).await;
        let cache = self.cache();
        match select_key(&cache.keys, kid, alg)? {
            Some(jwk) => Ok(jwk),
            None if cache.keys.is_empty() => Err(fetched.err().unwrap_or_else(|| {
                AuthError::JwksUnavailable(format!(
                    "the JWKS at {} holds no usable key",
                    self.inner.jwks_url
                ))
            })),
            None => Err(AuthError::UnknownKey(printable_kid(kid))),
        }
    }

    /// When the last background refresh of stale keys was started (tests observe the decision
    /// without waiting for the spawned fetch).
    #[cfg(test)]
    pub(super) fn background_refresh_started_at(&self) -> Option<Instant> {
        self.cache().last_background
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, JwksCache> {
        self.inner.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Decide from the cache alone (no `.await` under the lock).
    fn lookup(&self, kid: Option<&str>, alg: Algorithm) -> Result<Lookup, AuthError> {
        let inner = &self.inner;
        let now = Instant::now();
        let mut cache = self.cache();
        let age = cache.fetched_at.map(|t| now.duration_since(t));
        if age.is_some_and(|a| a >= inner.max_stale) && !cache.keys.is_empty() {
            tracing::warn!(
                max_stale_secs = inner.max_stale.as_secs(),
                "JWKS keys are older than jwks_max_stale_secs and no refresh succeeded; dropping them"
            );
            cache.keys.clear();
        }
        let stale = age.is_none_or(|a| a >= inner.cache_ttl);
        let backing_off = cache
            .last_failure
            .is_some_and(|t| now.duration_since(t) < inner.min_refetch_interval);
        if let Some(jwk) = select_key(&cache.keys, kid, alg)? {
            let background_due = cache
                .last_background
                .is_none_or(|t| now.duration_since(t) >= inner.min_refetch_interval);
            if stale && !backing_off && background_due {
                cache.last_background = Some(now);
                let attempts = cache.attempts;
                let this = self.clone();
                tokio::spawn(async move {
                    let _ = this.fetch_once(attempts).await;
                });
            }
            return Ok(Lookup::Found(jwk));
        }
        if stale {
            if backing_off {
                return Ok(Lookup::Refuse(if cache.keys.is_empty() {
                    AuthError::JwksUnavailable(format!(
                        "the last fetch of {} failed; retrying in a few seconds",
                        inner.jwks_url
                    ))
                } else {
                    AuthError::UnknownKey(printable_kid(kid))
                }));
            }
            return Ok(Lookup::Fetch {
                attempts: cache.attempts,
            });
        }
        // Fresh keys but an unknown kid: maybe the issuer rotated keys. Refetch, rate-limited.
        let may_refetch = cache
            .last_forced_refetch
            .is_none_or(|t| now.duration_since(t) >= inner.min_refetch_interval);
        if may_refetch {
            cache.last_forced_refetch = Some(now);
            return Ok(Lookup::Fetch {
                attempts: cache.attempts,
            });
        }
        Ok(Lookup::Refuse(AuthError::UnknownKey(printable_kid(kid))))
    }

    /// Fetch the JWKS unless another task finished a fetch since the caller saw
    /// `attempts` (single flight). On failure the cached keys stay as they are.
    async fn fetch_once(&self, attempts: u64) -> Result<(), AuthError> {
        let _flight = self.inner.fetch.lock().await;
        if self.cache().attempts != attempts {
            return Ok(()); // someone else fetched while we queued: use their outcome
        }
        let result = self.fetch_jwks().await;
        let mut cache = self.cache();
        cache.attempts += 1;
        match result {
            Ok(keys) => {
                tracing::debug!(jwks_url = %self.inner.jwks_url, keys = keys.len(), "fetched JWKS");
                cache.keys = keys;
                cache.fetched_at = Some(Instant::now());
                cache.last_failure = None;
                Ok(())
            }
            Err(e) => {
                cache.last_failure = Some(Instant::now());
                // Cached keys stay usable until `jwks_max_stale_secs` (see `lookup`).
                tracing::warn!(error = %e, cached_keys = cache.keys.len(), "JWKS fetch failed");
                Err(e)
            }
        }
    }

    async fn fetch_jwks(&self) -> Result<Vec<Jwk>, AuthError> {
        let url = &self.inner.jwks_url;
        let unavailable = |why: String| AuthError::JwksUnavailable(format!("{url}: {why}"));
        let response = self
            .inner
            .http
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json")
            .timeout(JWKS_FETCH_TIMEOUT)
            .send()
            .await
            .map_err(|e| unavailable(e.without_url().to_string()))?;
        let status = response.status();
        if !status.is_success() {
            return Err(unavailable(format!("HTTP {status}")));
        }
        let body: Value = response
            .json()
            .await
            .map_err(|e| unavailable(format!("not JSON: {}", e.without_url())))?;
        let entries = body
            .get("keys")
            .and_then(Value::as_array)
            .ok_or_else(|| unavailable("no `keys` array".into()))?;
        // Parse keys one by one so one exotic key does not hide the others.
        let keys: Vec<Jwk> = entries
            .iter()
            .filter_map(|k| match serde_json::from_value::<Jwk>(k.clone()) {
                Ok(jwk) => Some(jwk),
                Err(e) => {
                    tracing::debug!(error = %e, "skipping a JWKS entry that cannot be parsed");
                    None
                }
            })
            .collect();
        Ok(keys)
    }
}

pub(super) fn printable_kid(kid: Option<&str>) -> String {
    match kid {
        None => "(no kid)".into(),
        Some(k) => k
            .chars()
            .filter(|c| c.is_ascii_graphic())
            .take(64)
            .collect(),
    }
}

fn key_family(jwk: &Jwk) -> Option<AlgorithmFamily> {
    match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Some(AlgorithmFamily::Rsa),
        AlgorithmParameters::EllipticCurve(_) => Some(AlgorithmFamily::Ec),
        AlgorithmParameters::OctetKeyPair(_) => Some(AlgorithmFamily::Ed),
        // Symmetric ("oct") or unknown keys never verify bearer tokens.
        _ => None,
    }
}

/// Whether `jwk` may verify a token signed with `alg`.
fn key_fits(jwk: &Jwk, alg: Algorithm) -> bool {
    if key_family(jwk) != Some(alg.family()) {
        return false;
    }
    if let Some(usage) = &jwk.common.public_key_use
        && *usage != PublicKeyUse::Signature
    {
        return false;
    }
    match jwk.common.key_algorithm {
        None => true,
        Some(key_alg) => key_alg.to_string() == format!("{alg:?}"),
    }
}

fn select_key(keys: &[Jwk], kid: Option<&str>, alg: Algorithm) -> Result<Option<Jwk>, AuthError> {
    match kid {
        Some(kid) => match keys
            .iter()
            .find(|k| k.common.key_id.as_deref() == Some(kid))
        {
            Some(jwk) if key_fits(jwk, alg) => Ok(Some(jwk.clone())),
            Some(_) => Err(AuthError::UnsupportedAlgorithm(format!(
                "{alg:?} (the key {} is not a {alg:?} signing key)",
                printable_kid(Some(kid))
            ))),
            None => Ok(None),
        },
        None => {
            let usable: Vec<&Jwk> = keys.iter().filter(|k| key_fits(k, alg)).collect();
            match usable.as_slice() {
                [only] => Ok(Some((*only).clone())),
                [] => Ok(None),
                _ => Err(AuthError::Malformed(
                    "the token has no `kid` and the issuer publishes several keys".into(),
                )),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn jwk(value: Value) -> Jwk {
        serde_json::from_value(value).unwrap()
    }
    fn rsa(kid: &str) -> Value {
        json!({"kty": "RSA", "kid": kid, "n": "sXch", "e": "AQAB"})
    }
    fn ec(kid: &str) -> Value {
        json!({"kty": "EC", "kid": kid, "crv": "P-256", "x": "f83O", "y": "x_FE"})
    }
    fn ed(kid: &str) -> Value {
        json!({"kty": "OKP", "kid": kid, "crv": "Ed25519", "x": "11qY"})
    }
    fn kid_of(found: Result<Option<Jwk>, AuthError>) -> Option<String> {
        found.unwrap().and_then(|k| k.common.key_id)
    }

    #[test]
    fn a_key_verifies_only_its_own_family_use_and_algorithm() {
        let keys = [rsa("r"), ec("e"), ed("d")].map(jwk);
        assert_eq!(
            kid_of(select_key(&keys, Some("r"), Algorithm::RS256)),
            Some("r".into())
        );
        assert_eq!(
            kid_of(select_key(&keys, Some("e"), Algorithm::ES256)),
            Some("e".into())
        );
        assert_eq!(
            kid_of(select_key(&keys, Some("d"), Algorithm::EdDSA)),
            Some("d".into())
        );
        // The kid names a key of another family: refused, not tried.
        for (kid, alg) in [
            ("r", Algorithm::ES256),
            ("e", Algorithm::RS256),
            ("d", Algorithm::RS256),
        ] {
            assert!(
                matches!(
                    select_key(&keys, Some(kid), alg),
                    Err(AuthError::UnsupportedAlgorithm(_))
                ),
                "{kid} {alg:?}"
            );
        }
        // A symmetric key never verifies a bearer token, whatever the token claims.
        let oct = jwk(json!({"kty": "oct", "kid": "s", "k": "c2VjcmV0"}));
        for alg in [Algorithm::HS256, Algorithm::RS256] {
            assert!(!key_fits(&oct, alg), "{alg:?}");
        }
        // An encryption key, or a key pinned to another algorithm of the family, does not fit.
        let mut enc = rsa("r");
        enc["use"] = json!("enc");
        assert!(!key_fits(&jwk(enc), Algorithm::RS256));
        let mut pinned = rsa("r");
        pinned["alg"] = json!("RS384");
        assert!(!key_fits(&jwk(pinned.clone()), Algorithm::RS256));
        assert!(key_fits(&jwk(pinned), Algorithm::RS384));
        let mut signing = rsa("r");
        signing["use"] = json!("sig");
        assert!(key_fits(&jwk(signing), Algorithm::RS256));
    }

    #[test]
    fn without_a_kid_only_a_single_usable_key_is_used() {
        // One RSA key among keys of other families: that one.
        let keys = [rsa("r"), ec("e")].map(jwk);
        assert_eq!(
            kid_of(select_key(&keys, None, Algorithm::RS256)),
            Some("r".into())
        );
        // None usable: nothing found (the caller refetches or refuses).
        assert_eq!(kid_of(select_key(&keys, None, Algorithm::EdDSA)), None);
        assert!(select_key(&[], None, Algorithm::RS256).unwrap().is_none());
        // Several usable: ambiguous, refused.
        let keys = [rsa("r1"), rsa("r2")].map(jwk);
        assert!(matches!(
            select_key(&keys, None, Algorithm::RS256),
            Err(AuthError::Malformed(_))
        ));
        // An unknown kid is not found (not matched to another key).
        assert_eq!(
            kid_of(select_key(&keys, Some("r3"), Algorithm::RS256)),
            None
        );
    }
}
