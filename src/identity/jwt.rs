//! Verification of OAuth bearer tokens and OIDC ID tokens against the issuer's JWKS.
//!
//! [`JwtVerifier::verify`] accepts a token only if:
//! - its header names an asymmetric algorithm listed in `identity.oauth.algorithms`
//!   (`none` and every HMAC algorithm are refused outright, so an HS256 token
//!   "signed" with the public key cannot pass) and has no `crit` extensions;
//! - its `kid` is in the issuer's JWKS (a token without `kid` is accepted only
//!   when the JWKS holds exactly one usable key) and that key's type, `use`
//!   and `alg` fit the token's algorithm;
//! - the signature verifies, `iss` equals the configured issuer, `aud` is (or
//!   contains) this server's resource URL, `exp` is present and not past and
//!   `nbf` (if present) is not in the future, both with the configured leeway;
//! - the configured user claim is a non-empty string, taken verbatim: a value
//!   with leading/trailing (Unicode) white space or any control (Cc) or format
//!   (Cf) character is refused, never trimmed, so `"bob@example.com\u{a0}"`
//!   cannot become `bob@example.com`;
//! - with `user_claim = "email"` and `require_email_verified` (the default),
//!   `email_verified` is `true`;
//! - optionally (`required_typ`) the header's `typ` is e.g. `at+jwt`, and
//!   (`max_token_age_secs`) `iat` is present and neither `now - iat` nor
//!   `exp - iat` exceeds the limit.
//!
//! The JWKS is fetched on first use and trusted for `jwks_cache_secs`. An
//! unknown `kid` triggers one refetch (key rotation), at most once per
//! [`DEFAULT_MIN_REFETCH_INTERVAL`], so a flood of tokens with random kids
//! cannot hammer the issuer. After a failed fetch the verifier keeps using
//! the keys it has and waits the same interval before trying again, but only
//! until `jwks_max_stale_secs` after the last successful fetch.
//!
//! No lock is held across the network: the key cache sits behind a plain
//! mutex taken for lookups only, and fetches are single-flight behind a
//! separate async lock. A token whose `kid` is cached is verified at once even
//! while a refetch (for an unknown kid, or a slow IdP) is in flight; a cached
//! key past its TTL is used while a background refresh runs.

use super::{AuthError, IdentitySource, VerifiedUser};
use crate::config::OAuthConfig;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, Validation};
use serde_json::{Map, Value};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Least time between two JWKS fetches forced by unknown kids or after a failure.
pub const DEFAULT_MIN_REFETCH_INTERVAL: Duration = Duration::from_secs(10);

/// How long one JWKS request may take.
const JWKS_FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// Verifies tokens from one issuer for one audience. Cheap to clone.
#[derive(Clone)]
pub struct JwtVerifier {
    inner: Arc<Inner>,
}

struct Inner {
    issuer: String,
    jwks_url: String,
    audience: String,
    user_claim: String,
    algorithms: Vec<Algorithm>,
    leeway_secs: u64,
    require_email_verified: bool,
    max_token_age_secs: Option<u64>,
    required_typ: Option<String>,
    cache_ttl: Duration,
    max_stale: Duration,
    min_refetch_interval: Duration,
    http: reqwest::Client,
    /// Lookups only; never held across an `.await`.
    cache: Mutex<JwksCache>,
    /// Held by the one task fetching the JWKS (single flight).
    fetch: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct JwksCache {
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

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("issuer", &self.inner.issuer)
            .field("audience", &self.inner.audience)
            .field("jwks_url", &self.inner.jwks_url)
            .finish_non_exhaustive()
    }
}

impl JwtVerifier {
    /// A verifier for tokens from `cfg.issuer` whose audience is `audience`
    /// (this server's resource URL). Fails if the configuration names an
    /// algorithm that is unknown or symmetric.
    pub fn new(
        cfg: &OAuthConfig,
        audience: impl Into<String>,
        http: reqwest::Client,
    ) -> Result<Self, AuthError> {
        let mut algorithms = Vec::new();
        for name in &cfg.algorithms {
            let alg = Algorithm::from_str(name.trim()).map_err(|_| {
                AuthError::NotConfigured(format!(
                    "identity.oauth.algorithms: unknown algorithm `{name}`"
                ))
            })?;
            if alg.family() == AlgorithmFamily::Hmac {
                return Err(AuthError::NotConfigured(format!(
                    "identity.oauth.algorithms: `{name}` is a shared-secret algorithm; \
                     only asymmetric ones (RS*, PS*, ES*, EdDSA) can be verified with a JWKS"
                )));
            }
            algorithms.push(alg);
        }
        if algorithms.is_empty() {
            return Err(AuthError::NotConfigured(
                "identity.oauth.algorithms is empty".into(),
            ));
        }
        let user_claim = cfg.user_claim.trim().to_string();
        if user_claim.is_empty() {
            return Err(AuthError::NotConfigured(
                "identity.oauth.user_claim is empty".into(),
            ));
        }
        Ok(Self {
            inner: Arc::new(Inner {
                issuer: cfg.issuer.clone(),
                jwks_url: cfg.jwks_url.clone(),
                audience: audience.into(),
                user_claim,
                algorithms,
                leeway_secs: cfg.leeway_secs,
                require_email_verified: cfg.require_email_verified,
                max_token_age_secs: cfg.max_token_age_secs,
                required_typ: cfg
                    .required_typ
                    .as_deref()
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(str::to_string),
                cache_ttl: Duration::from_secs(cfg.jwks_cache_secs),
                max_stale: Duration::from_secs(cfg.jwks_max_stale_secs.max(cfg.jwks_cache_secs)),
                min_refetch_interval: DEFAULT_MIN_REFETCH_INTERVAL,
                http,
                cache: Mutex::new(JwksCache::default()),
                fetch: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// The expected `iss`.
    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    /// The expected `aud` (this server's resource URL).
    pub fn audience(&self) -> &str {
        &self.inner.audience
    }

    /// Verify a compact JWS and return the user it names.
    pub async fn verify(&self, token: &str) -> Result<VerifiedUser, AuthError> {
        let token = token.trim();
        if token.is_empty() {
            return Err(AuthError::Missing);
        }
        let header = parse_header(token)?;
        let alg = self.accepted_algorithm(&header)?;
        let kid = match header.get("kid") {
            None | Some(Value::Null) => None,
            Some(Value::String(k)) => Some(k.as_str()),
            Some(_) => return Err(AuthError::Malformed("`kid` is not a string".into())),
        };
        let jwk = self.key_for(kid, alg).await?;
        let key = DecodingKey::from_jwk(&jwk)
            .map_err(|e| AuthError::JwksUnavailable(format!("the JWKS key cannot be used: {e}")))?;

        let mut validation = Validation::new(alg);
        validation.leeway = self.inner.leeway_secs;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = true;
        validation.set_issuer(&[&self.inner.issuer]);
        validation.set_audience(&[&self.inner.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation)
            .map_err(|e| map_jwt_error(e.into_kind()))?;
        let claims = data.claims;

        self.check_token_age(&claims)?;
        let claim = &self.inner.user_claim;
        let user_id = claims
            .get(claim)
            .and_then(Value::as_str)
            .filter(|u| !u.trim().is_empty())
            .ok_or_else(|| AuthError::MissingUserClaim(claim.clone()))?;
        check_user_id(user_id).map_err(|reason| AuthError::UnacceptableUserClaim {
            claim: claim.clone(),
            reason,
        })?;
        if claim == "email" && self.inner.require_email_verified {
            // OIDC Core §5.1: `email_verified` is a boolean; a few IdPs have sent the
            // string "true", which is accepted as the same assertion.
            let verified = match claims.get("email_verified") {
                Some(Value::Bool(b)) => *b,
                Some(Value::String(s)) => s == "true",
                _ => false,
            };
            if !verified {
                return Err(AuthError::EmailNotVerified);
            }
        }
        let user_id = user_id.to_string();
        let subject = claims
            .get("sub")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        Ok(VerifiedUser {
            user_id,
            subject,
            issuer: self.inner.issuer.clone(),
            source: IdentitySource::HttpBearer,
            scopes: crate::identity::scopes::granted(&claims),
        })
    }

    /// `max_token_age_secs`: `iat` must be present, not in the future, and neither the
    /// token's age nor its total lifetime may exceed the limit (leeway allowed).
    fn check_token_age(&self, claims: &Map<String, Value>) -> Result<(), AuthError> {
        let Some(max) = self.inner.max_token_age_secs else {
            return Ok(());
        };
        let leeway = self.inner.leeway_secs;
        let iat = claims.get("iat").and_then(Value::as_u64).ok_or_else(|| {
            AuthError::TokenLifetime("the token has no numeric `iat` claim".into())
        })?;
        let now = jsonwebtoken::get_current_timestamp();
        if iat > now.saturating_add(leeway) {
            return Err(AuthError::TokenLifetime(
                "the token's `iat` is in the future".into(),
            ));
        }
        if now.saturating_sub(iat) > max.saturating_add(leeway) {
            return Err(AuthError::TokenLifetime(format!(
                "the token was issued more than {max} s ago"
            )));
        }
        if let Some(exp) = claims.get("exp").and_then(Value::as_u64)
            && exp.saturating_sub(iat) > max
        {
            return Err(AuthError::TokenLifetime(format!(
                "the token is valid for more than {max} s"
            )));
        }
        Ok(())
    }

    fn accepted_algorithm(&self, header: &Map<String, Value>) -> Result<Algorithm, AuthError> {
        let name = header
            .get("alg")
            .and_then(Value::as_str)
            .ok_or_else(|| AuthError::Malformed("the header has no `alg`".into()))?;
        let printable: String = name
            .chars()
            .take(20)
            .filter(|c| c.is_ascii_graphic())
            .collect();
        let alg = Algorithm::from_str(name)
            .map_err(|_| AuthError::UnsupportedAlgorithm(printable.clone()))?;
        if alg.family() == AlgorithmFamily::Hmac || !self.inner.algorithms.contains(&alg) {
            return Err(AuthError::UnsupportedAlgorithm(printable));
        }
        if header.contains_key("crit") {
            return Err(AuthError::Malformed(
                "the header has critical extensions (`crit`), which are not supported".into(),
            ));
        }
        if let Some(required) = &self.inner.required_typ {
            // RFC 7515 §4.1.9: `typ` is compared case-insensitively and may omit the
            // "application/" prefix (RFC 9068 §2.1 uses "at+jwt").
            let typ = header.get("typ").and_then(Value::as_str).unwrap_or("");
            let bare = |t: &str| {
                let t = t.trim();
                t.get(..12)
                    .filter(|p| p.eq_ignore_ascii_case("application/"))
                    .map_or(t, |_| &t[12..])
                    .to_ascii_lowercase()
            };
            if bare(typ) != bare(required) {
                return Err(AuthError::Malformed(format!(
                    "the header's `typ` is not `{required}`"
                )));
            }
        }
        Ok(alg)
    }

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
    async fn key_for(&self, kid: Option<&str>, alg: Algorithm) -> Result<Jwk, AuthError> {
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
                if !cache.keys.is_empty() {
                    tracing::warn!(error = %e, "JWKS refresh failed; keeping the previous keys");
                }
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

/// Why a user claim cannot name an Immuta user as it stands, if it cannot.
///
/// The value is never normalised: leading/trailing white space (Unicode
/// `White_Space`, as `char::is_whitespace`), control characters (Cc) and
/// format characters (Cf: zero-width, bidi controls, soft hyphen, BOM, tags)
/// are refused wherever they are, so two distinct claim values can never
/// become the same user and no invisible character reaches Immuta or the logs.
pub fn check_user_id(user: &str) -> Result<(), String> {
    if user.starts_with(char::is_whitespace) || user.ends_with(char::is_whitespace) {
        return Err("it begins or ends with white space".into());
    }
    if let Some(c) = user.chars().find(|c| c.is_control()) {
        return Err(format!(
            "it contains the control character U+{:04X}",
            c as u32
        ));
    }
    if let Some(c) = user.chars().find(|c| is_format_char(*c)) {
        return Err(format!(
            "it contains the format character U+{:04X}",
            c as u32
        ));
    }
    Ok(())
}

/// Unicode general category Cf (Unicode 15.1 `DerivedGeneralCategory.txt`).
fn is_format_char(c: char) -> bool {
    matches!(c as u32,
        0x00AD | 0x0600..=0x0605 | 0x061C | 0x06DD | 0x070F | 0x0890..=0x0891 | 0x08E2
        | 0x180E | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x2064 | 0x2066..=0x206F
        | 0xFEFF | 0xFFF9..=0xFFFB | 0x110BD | 0x110CD | 0x13430..=0x1343F
        | 0x1BCA0..=0x1BCA3 | 0x1D173..=0x1D17A | 0xE0001 | 0xE0020..=0xE007F)
}

fn printable_kid(kid: Option<&str>) -> String {
    match kid {
        None => "(no kid)".into(),
        Some(k) => k
            .chars()
            .filter(|c| c.is_ascii_graphic())
            .take(64)
            .collect(),
    }
}

/// Decode the JOSE header without trusting anything in it yet.
fn parse_header(token: &str) -> Result<Map<String, Value>, AuthError> {
    let mut parts = token.split('.');
    let (Some(header), Some(_payload), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::Malformed(
            "expected three dot-separated parts (a signed JWT)".into(),
        ));
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| AuthError::Malformed("the header is not base64url".into()))?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(AuthError::Malformed(
            "the header is not a JSON object".into(),
        )),
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

fn map_jwt_error(kind: ErrorKind) -> AuthError {
    match kind {
        ErrorKind::InvalidSignature => AuthError::InvalidSignature,
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
        ErrorKind::InvalidIssuer => AuthError::WrongIssuer,
        ErrorKind::InvalidAudience => AuthError::WrongAudience,
        ErrorKind::MissingRequiredClaim(claim) => match claim.as_str() {
            "iss" => AuthError::WrongIssuer,
            "aud" => AuthError::WrongAudience,
            other => AuthError::Malformed(format!("the `{other}` claim is missing")),
        },
        ErrorKind::InvalidClaimFormat(claim) => {
            AuthError::Malformed(format!("the `{claim}` claim has the wrong type"))
        }
        ErrorKind::InvalidAlgorithm | ErrorKind::UnsupportedAlgorithm => {
            AuthError::UnsupportedAlgorithm("(does not match the key)".into())
        }
        ErrorKind::Base64(_) => AuthError::Malformed("a part is not base64url".into()),
        ErrorKind::Json(_) | ErrorKind::Utf8(_) => {
            AuthError::Malformed("the claims are not a JSON object".into())
        }
        ErrorKind::InvalidToken => AuthError::Malformed("not a valid JWT".into()),
        _ => AuthError::InvalidSignature,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::issuer::TestIssuer;

    fn test_http() -> reqwest::Client {
        crate::http_client::install_crypto_provider();
        reqwest::Client::new()
    }
    use jsonwebtoken::Header;
    use serde_json::json;

    const AUDIENCE: &str = "http://127.0.0.1:9/mcp";

    async fn serve_issuer() -> Arc<TestIssuer> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let issuer = Arc::new(TestIssuer::new(url));
        let app = Arc::clone(&issuer).router();
        tokio::spawn(async move { axum::serve(listener, app).await });
        issuer
    }

    fn verifier_for(issuer: &TestIssuer, user_claim: &str) -> JwtVerifier {
        let mut cfg = issuer.oauth_config();
        cfg.user_claim = user_claim.into();
        cfg.leeway_secs = 5;
        JwtVerifier::new(&cfg, AUDIENCE, test_http()).unwrap()
    }

    fn now() -> u64 {
        jsonwebtoken::get_current_timestamp()
    }

    fn claims(issuer: &TestIssuer) -> Value {
        json!({
            "iss": issuer.issuer_url(),
            "sub": "00u-alice",
            "aud": AUDIENCE,
            "exp": now() + 300,
            "iat": now(),
            "email": "alice@example.com",
            "preferred_username": "alice",
            "upn": "ALICE@CORP",
            "email_verified": true,
        })
    }

    #[tokio::test]
    async fn valid_token_names_the_user_by_the_configured_claim() {
        let issuer = serve_issuer().await;
        let token = issuer.mint_claims(claims(&issuer));
        for (claim, expected) in [
            ("email", "alice@example.com"),
            ("preferred_username", "alice"),
            ("sub", "00u-alice"),
            ("upn", "ALICE@CORP"),
        ] {
            let user = verifier_for(&issuer, claim).verify(&token).await.unwrap();
            assert_eq!(user.user_id, expected);
            assert_eq!(user.subject, "00u-alice");
            assert_eq!(user.issuer, issuer.issuer_url());
            assert_eq!(user.source, IdentitySource::HttpBearer);
        }
    }

    #[tokio::test]
    async fn audience_array_containing_this_server_is_accepted() {
        let issuer = serve_issuer().await;
        let mut c = claims(&issuer);
        c["aud"] = json!(["other-api", AUDIENCE]);
        let user = verifier_for(&issuer, "email")
            .verify(&issuer.mint_claims(c))
            .await
            .unwrap();
        assert_eq!(user.user_id, "alice@example.com");
    }

    #[tokio::test]
    async fn forged_and_invalid_tokens_are_refused_with_the_right_error() {
        let issuer = serve_issuer().await;
        let v = verifier_for(&issuer, "email");
        let good = claims(&issuer);
        let with = |key: &str, value: Value| {
            let mut c = good.clone();
            c[key] = value;
            c
        };
        let other_issuer = TestIssuer::new(issuer.issuer_url().to_string());
        // Flip one character in the middle of the signature.
        let signed = issuer.mint_claims(good.clone());
        let at = signed.rfind('.').unwrap() + 100;
        let flipped = if &signed[at..=at] == "A" { "B" } else { "A" };
        let tampered = format!("{}{flipped}{}", &signed[..at], &signed[at + 1..]);
        let mut no_user = good.clone();
        no_user.as_object_mut().unwrap().remove("email");
        let mut no_kid = Header::new(Algorithm::RS256);
        no_kid.kid = Some("not-published".into());

        let cases: Vec<(&str, String, AuthError)> = vec![
            ("empty", String::new(), AuthError::Missing),
            (
                "garbage",
                "not-a-jwt".into(),
                AuthError::Malformed("expected three dot-separated parts (a signed JWT)".into()),
            ),
            (
                "alg none",
                issuer.unsigned_token(&good),
                AuthError::UnsupportedAlgorithm("none".into()),
            ),
            (
                "HS256 keyed with the public key",
                issuer.hs256_with_public_key(&good),
                AuthError::UnsupportedAlgorithm("HS256".into()),
            ),
            (
                "RS384 not configured",
                issuer.sign_with_header(
                    {
                        let mut h = Header::new(Algorithm::RS384);
                        h.kid = Some(issuer.kid());
                        h
                    },
                    &good,
                ),
                AuthError::UnsupportedAlgorithm("RS384".into()),
            ),
            (
                "unknown kid",
                issuer.sign_with_header(no_kid, &good),
                AuthError::UnknownKey("not-published".into()),
            ),
            (
                "signed by another key with the same kid",
                other_issuer.sign_with_header(
                    {
                        let mut h = Header::new(Algorithm::RS256);
                        h.kid = Some(issuer.kid());
                        h
                    },
                    &good,
                ),
                AuthError::InvalidSignature,
            ),
            ("tampered signature", tampered, AuthError::InvalidSignature),
            (
                "wrong issuer",
                issuer.mint_claims(with("iss", json!("https://evil.example"))),
                AuthError::WrongIssuer,
            ),
            (
                "no issuer",
                {
                    let mut c = good.clone();
                    c.as_object_mut().unwrap().remove("iss");
                    issuer.mint_claims(c)
                },
                AuthError::WrongIssuer,
            ),
            (
                "wrong audience",
                issuer.mint_claims(with("aud", json!("https://other.example/mcp"))),
                AuthError::WrongAudience,
            ),
            (
                "no audience",
                {
                    let mut c = good.clone();
                    c.as_object_mut().unwrap().remove("aud");
                    issuer.mint_claims(c)
                },
                AuthError::WrongAudience,
            ),
            (
                "expired",
                issuer.mint_claims(with("exp", json!(now() - 60))),
                AuthError::Expired,
            ),
            (
                "no exp",
                {
                    let mut c = good.clone();
                    c.as_object_mut().unwrap().remove("exp");
                    issuer.mint_claims(c)
                },
                AuthError::Malformed("the `exp` claim is missing".into()),
            ),
            (
                "not yet valid",
                issuer.mint_claims(with("nbf", json!(now() + 600))),
                AuthError::NotYetValid,
            ),
            (
                "no user claim",
                issuer.mint_claims(no_user),
                AuthError::MissingUserClaim("email".into()),
            ),
            (
                "empty user claim",
                issuer.mint_claims(with("email", json!("  "))),
                AuthError::MissingUserClaim("email".into()),
            ),
            (
                "numeric user claim",
                issuer.mint_claims(with("email", json!(42))),
                AuthError::MissingUserClaim("email".into()),
            ),
        ];
        for (name, token, expected) in cases {
            let got = v.verify(&token).await;
            assert_eq!(got, Err(expected), "case {name}");
            if let Err(e) = got
                && token.len() > 20
            {
                assert!(
                    !e.to_string().contains(&token[token.len() - 20..]),
                    "{name}: error leaks the token"
                );
            }
        }
    }

    #[tokio::test]
    async fn leeway_accepts_small_clock_skew() {
        let issuer = serve_issuer().await;
        let mut c = claims(&issuer);
        c["exp"] = json!(now() - 2);
        c["nbf"] = json!(now() + 2);
        assert!(
            verifier_for(&issuer, "email")
                .verify(&issuer.mint_claims(c))
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn jwks_is_cached_and_refetched_once_for_an_unknown_kid() {
        let issuer = serve_issuer().await;
        let v = verifier_for(&issuer, "email");
        for _ in 0..20 {
            v.verify(&issuer.mint_claims(claims(&issuer)))
                .await
                .unwrap();
        }
        assert_eq!(
            issuer.jwks_requests(),
            1,
            "one fetch serves many verifications"
        );

        // Key rotation: the new kid is unknown to the cache, one refetch finds it.
        issuer.rotate_key();
        v.verify(&issuer.mint_claims(claims(&issuer)))
            .await
            .unwrap();
        assert_eq!(issuer.jwks_requests(), 2);

        // A flood of unknown kids does not reach the issuer again (rate limit).
        for i in 0..20 {
            let mut h = Header::new(Algorithm::RS256);
            h.kid = Some(format!("random-{i}"));
            let err = v
                .verify(&issuer.sign_with_header(h, &claims(&issuer)))
                .await;
            assert_eq!(err, Err(AuthError::UnknownKey(format!("random-{i}"))));
        }
        assert_eq!(issuer.jwks_requests(), 2);
    }

    #[tokio::test]
    async fn user_claim_is_taken_verbatim_and_email_must_be_verified() {
        let issuer = serve_issuer().await;
        let v = verifier_for(&issuer, "email");
        let with = |pairs: &[(&str, Value)]| {
            let mut c = claims(&issuer);
            for (k, val) in pairs {
                c[*k] = val.clone();
            }
            issuer.mint_claims(c)
        };
        for bad in [
            "bob@example.com\u{a0}",
            "\tbob@example.com",
            "bob@example.com\u{3000}",
            "bob@example.com\n",
            "\u{2003}bob@example.com",
            "bob\u{200b}@example.com",
            "bob@example.com\u{feff}",
            "bob\u{202e}@example.com",
            "bob\u{0}@example.com",
        ] {
            let got = v.verify(&with(&[("email", json!(bad))])).await;
            assert!(
                matches!(got, Err(AuthError::UnacceptableUserClaim { ref claim, .. }) if claim == "email"),
                "{bad:?}: {got:?}"
            );
        }
        let mut unverified = claims(&issuer);
        unverified["email"] = json!("bob@example.com");
        unverified["email_verified"] = json!(false);
        assert_eq!(
            v.verify(&issuer.mint_claims(unverified.clone())).await,
            Err(AuthError::EmailNotVerified)
        );
        unverified["email_verified"] = json!("false");
        assert_eq!(
            v.verify(&issuer.mint_claims(unverified.clone())).await,
            Err(AuthError::EmailNotVerified)
        );
        unverified.as_object_mut().unwrap().remove("email_verified");
        assert_eq!(
            v.verify(&issuer.mint_claims(unverified.clone())).await,
            Err(AuthError::EmailNotVerified),
            "absent email_verified is refused when required"
        );
        let user = v
            .verify(&with(&[
                ("email", json!("bob@example.com")),
                ("email_verified", json!(true)),
            ]))
            .await
            .unwrap();
        assert_eq!(user.user_id, "bob@example.com");
        // Only the email claim needs email_verified; and the check can be turned off.
        let by_sub = verifier_for(&issuer, "sub");
        assert_eq!(
            by_sub
                .verify(&issuer.mint_claims(unverified.clone()))
                .await
                .unwrap()
                .user_id,
            "00u-alice"
        );
        let mut cfg = issuer.oauth_config();
        cfg.require_email_verified = false;
        let lax = JwtVerifier::new(&cfg, AUDIENCE, test_http()).unwrap();
        assert_eq!(
            lax.verify(&issuer.mint_claims(unverified))
                .await
                .unwrap()
                .user_id,
            "bob@example.com"
        );
        // The same rule holds for a white-space-padded `sub`.
        let padded_sub = with(&[("sub", json!(" 00u-alice"))]);
        assert!(matches!(
            by_sub.verify(&padded_sub).await,
            Err(AuthError::UnacceptableUserClaim { .. })
        ));
    }

    #[tokio::test]
    async fn stdio_user_is_held_to_the_same_rule() {
        use crate::config::IdentityConfig;
        use crate::identity::resolve_stdio_user;
        for bad in [
            "bob@example.com\u{a0}",
            "\tbob@example.com",
            "bob@example.com\n",
            "b\u{200b}ob",
        ] {
            let cfg = IdentityConfig {
                stdio_user: Some(bad.into()),
                ..Default::default()
            };
            let err = resolve_stdio_user(&cfg, None).await.unwrap_err();
            assert!(
                matches!(&err, AuthError::NotConfigured(m) if m.contains("identity.stdio_user")),
                "{bad:?}: {err:?}"
            );
        }
    }

    #[tokio::test]
    async fn typ_and_token_age_are_checked_when_configured() {
        let issuer = serve_issuer().await;
        let mut cfg = issuer.oauth_config();
        cfg.required_typ = Some("at+jwt".into());
        cfg.max_token_age_secs = Some(3600);
        cfg.leeway_secs = 5;
        let v = JwtVerifier::new(&cfg, AUDIENCE, test_http()).unwrap();
        let signed = |typ: Option<&str>, c: Value| {
            let mut h = Header::new(Algorithm::RS256);
            h.kid = Some(issuer.kid());
            h.typ = typ.map(str::to_string);
            issuer.sign_with_header(h, &c)
        };
        let good = claims(&issuer);
        assert!(
            v.verify(&signed(Some("at+jwt"), good.clone()))
                .await
                .is_ok()
        );
        assert!(
            v.verify(&signed(Some("application/AT+JWT"), good.clone()))
                .await
                .is_ok()
        );
        for typ in [Some("JWT"), None] {
            assert!(
                matches!(
                    v.verify(&signed(typ, good.clone())).await,
                    Err(AuthError::Malformed(_))
                ),
                "{typ:?}"
            );
        }
        let mut long = good.clone();
        long["exp"] = json!(now() + 7200);
        let mut old = good.clone();
        old["iat"] = json!(now() - 7200);
        let mut future = good.clone();
        future["iat"] = json!(now() + 600);
        let mut no_iat = good.clone();
        no_iat.as_object_mut().unwrap().remove("iat");
        for (name, c) in [
            ("long", long.clone()),
            ("old", old),
            ("future", future),
            ("no iat", no_iat),
        ] {
            assert!(
                matches!(
                    v.verify(&signed(Some("at+jwt"), c)).await,
                    Err(AuthError::TokenLifetime(_))
                ),
                "{name}"
            );
        }
        // Off by default: the same long-lived, untyped token passes.
        let default = verifier_for(&issuer, "email");
        assert!(default.verify(&signed(None, long)).await.is_ok());
    }

    /// A JWKS endpoint that can hold requests from the `block_from`-th on until released,
    /// and can fail on demand.
    struct GatedJwks {
        issuer: TestIssuer,
        requests: std::sync::atomic::AtomicUsize,
        block_from: usize,
        arrived: tokio::sync::Notify,
        release: tokio::sync::Semaphore,
        fail: std::sync::atomic::AtomicBool,
    }

    async fn gated_jwks(block_from: usize) -> Arc<GatedJwks> {
        use axum::extract::State;
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let gate = Arc::new(GatedJwks {
            issuer: TestIssuer::new(url),
            requests: Default::default(),
            block_from,
            arrived: tokio::sync::Notify::new(),
            release: tokio::sync::Semaphore::new(0),
            fail: Default::default(),
        });
        async fn jwks(State(g): State<Arc<GatedJwks>>) -> axum::response::Response {
            use axum::response::IntoResponse;
            let n = g.requests.fetch_add(1, Ordering::SeqCst) + 1;
            if n >= g.block_from {
                g.arrived.notify_one();
                g.release.acquire().await.unwrap().forget();
            }
            if g.fail.load(Ordering::SeqCst) {
                return axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response();
            }
            axum::Json(g.issuer.jwks()).into_response()
        }
        let app = axum::Router::new()
            .route("/jwks.json", axum::routing::get(jwks))
            .with_state(gate.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        gate
    }

    #[tokio::test]
    async fn cached_keys_verify_while_an_unknown_kid_refetch_is_blocked() {
        let gate = gated_jwks(2).await;
        let issuer = &gate.issuer;
        let v = verifier_for(issuer, "email");
        let valid = issuer.mint_claims(claims(issuer));
        v.verify(&valid).await.unwrap(); // fetch #1 fills the cache

        let mut h = Header::new(Algorithm::RS256);
        h.kid = Some("not-published-yet".into());
        let unknown = issuer.sign_with_header(h, &claims(issuer));
        let pending = tokio::spawn({
            let v = v.clone();
            async move { v.verify(&unknown).await }
        });
        gate.arrived.notified().await; // fetch #2 has reached the JWKS and is held there

        // A token with a cached kid does not wait for the held fetch: it is verified
        // while that fetch is still held at the gate (an ordering check, no clock; the
        // bound only keeps a regression from hanging the test).
        let user = tokio::time::timeout(Duration::from_secs(60), v.verify(&valid))
            .await
            .expect("bounded")
            .unwrap();
        assert_eq!(user.user_id, "alice@example.com");
        assert!(
            !pending.is_finished(),
            "the cached-kid verification waited for the unknown-kid refetch to end"
        );
        // Other unknown-kid tokens queue behind the same single fetch, not a new one.
        gate.release.add_permits(1);
        assert_eq!(
            pending.await.unwrap(),
            Err(AuthError::UnknownKey("not-published-yet".into()))
        );
        assert_eq!(gate.requests.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn stale_keys_are_trusted_only_up_to_jwks_max_stale_secs() {
        use std::sync::atomic::Ordering;
        let gate = gated_jwks(usize::MAX).await;
        let issuer = &gate.issuer;
        let token = issuer.mint_claims(claims(issuer));
        let mut cfg = issuer.oauth_config();
        cfg.jwks_cache_secs = 0; // every verification finds the keys past their TTL
        cfg.jwks_max_stale_secs = 3600;
        let tolerant = JwtVerifier::new(&cfg, AUDIENCE, test_http()).unwrap();
        cfg.jwks_max_stale_secs = 0;
        let strict = JwtVerifier::new(&cfg, AUDIENCE, test_http()).unwrap();
        tolerant.verify(&token).await.unwrap();
        strict.verify(&token).await.unwrap();

        gate.fail.store(true, Ordering::SeqCst);
        // Within the stale window the old keys still verify (the refresh fails in the background).
        tolerant.verify(&token).await.unwrap();
        // Past it they are dropped: the token is refused until a fetch succeeds again.
        let err = strict.verify(&token).await.unwrap_err();
        assert!(matches!(err, AuthError::JwksUnavailable(_)), "{err:?}");
    }

    #[tokio::test]
    async fn unreachable_jwks_is_reported() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        let issuer = TestIssuer::new(url);
        let v = verifier_for(&issuer, "email");
        let err = v
            .verify(&issuer.mint_claims(claims(&issuer)))
            .await
            .unwrap_err();
        assert!(matches!(err, AuthError::JwksUnavailable(_)), "{err:?}");
        assert!(err.to_string().contains("/jwks.json"), "{err}");
    }

    #[test]
    fn symmetric_or_unknown_configured_algorithms_are_rejected() {
        let issuer = TestIssuer::new("http://127.0.0.1:9".into());
        let mut cfg = issuer.oauth_config();
        cfg.algorithms = vec!["RS256".into(), "HS256".into()];
        let err = JwtVerifier::new(&cfg, AUDIENCE, test_http()).unwrap_err();
        assert!(err.to_string().contains("shared-secret"), "{err}");
        cfg.algorithms = vec!["XX999".into()];
        let err = JwtVerifier::new(&cfg, AUDIENCE, test_http()).unwrap_err();
        assert!(err.to_string().contains("unknown algorithm"), "{err}");
    }

    #[tokio::test]
    async fn stdio_identity_from_config_and_id_token() {
        use crate::config::{IdentityConfig, SecretRef};
        use crate::identity::resolve_stdio_user;

        let plain = IdentityConfig {
            stdio_user: Some("bob@example.com".into()),
            ..Default::default()
        };
        let user = resolve_stdio_user(&plain, None).await.unwrap();
        assert_eq!(user.user_id, "bob@example.com");
        assert_eq!(user.source, IdentitySource::StdioConfig);

        let none = IdentityConfig::default();
        assert!(matches!(
            resolve_stdio_user(&none, None).await,
            Err(AuthError::NotConfigured(_))
        ));

        let issuer = serve_issuer().await;
        let v = verifier_for(&issuer, "email");
        let token = issuer.mint("alice@example.com", AUDIENCE, Duration::from_secs(300));
        let with_token = IdentityConfig {
            stdio_user: Some("Alice@Example.com".into()),
            stdio_id_token: Some(SecretRef::Value(token.clone())),
            oauth: Some(issuer.oauth_config()),
            ..Default::default()
        };
        let user = resolve_stdio_user(&with_token, Some(&v)).await.unwrap();
        assert_eq!(user.user_id, "alice@example.com");
        assert_eq!(user.source, IdentitySource::StdioIdToken);

        let mismatch = IdentityConfig {
            stdio_user: Some("mallory@example.com".into()),
            ..with_token.clone()
        };
        let err = resolve_stdio_user(&mismatch, Some(&v)).await.unwrap_err();
        assert!(matches!(err, AuthError::UserMismatch { .. }), "{err:?}");
        assert!(!err.to_string().contains(&token));

        let mut old = claims(&issuer);
        old["exp"] = json!(now() - 600);
        let expired = IdentityConfig {
            stdio_id_token: Some(SecretRef::Value(issuer.mint_claims(old))),
            ..with_token.clone()
        };
        let wrong_aud = IdentityConfig {
            stdio_id_token: Some(SecretRef::Value(issuer.mint(
                "alice@example.com",
                "other",
                Duration::from_secs(60),
            ))),
            ..with_token.clone()
        };
        assert_eq!(
            resolve_stdio_user(&expired, Some(&v)).await,
            Err(AuthError::Expired)
        );
        assert_eq!(
            resolve_stdio_user(&wrong_aud, Some(&v)).await,
            Err(AuthError::WrongAudience)
        );
        assert!(matches!(
            resolve_stdio_user(&with_token, None).await,
            Err(AuthError::NotConfigured(_))
        ));
    }
}
