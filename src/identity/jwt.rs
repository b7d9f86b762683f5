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
//!
//! Layout: this file verifies a token; `jwks.rs` fetches, caches and selects
//! the issuer's keys.

use super::{AuthError, IdentitySource, VerifiedUser};
use crate::config::OAuthConfig;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, Validation};
use jwks::JwksCache;
use serde_json::{Map, Value};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod jwks;

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
        // The token's age needs no check of its own: `exp` is required and validated (it is
        // at least `now - leeway`), so an age over `max + leeway` implies a lifetime over `max`,
        // which the next check refuses.
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
mod tests;
