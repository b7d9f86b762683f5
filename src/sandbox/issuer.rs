//! A local OAuth/OIDC token issuer for the sandbox and for tests.
//!
//! [`TestIssuer`] holds an RSA signing key (random `kid`), publishes its
//! discovery document and JWKS through [`TestIssuer::router`], and mints
//! RS256 tokens for any user. It also forges the tokens attack tests need:
//! `alg: none`, HS256 keyed with the public key PEM (key confusion), and
//! arbitrary headers. Keys can be rotated to exercise JWKS refetching, and
//! JWKS requests are counted.
//!
//! The issuer URL must be known when tokens are minted, so bind the listener
//! first and pass its URL to [`TestIssuer::new`]. The routes are relative to
//! the issuer's root: if the issuer URL has a path, mount the router under
//! it with `Router::nest`.

use crate::config::OAuthConfig;
use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, AlgorithmFamily, EncodingKey, Header};
use rsa::RsaPrivateKey;
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::pkcs8::{EncodePublicKey, LineEnding};
use rsa::traits::PublicKeyParts;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Size of generated RSA keys, bits.
const RSA_BITS: usize = 2048;

struct SigningKey {
    kid: String,
    encoding: EncodingKey,
    jwk: Value,
    public_pem: String,
}

impl SigningKey {
    #[expect(
        clippy::expect_used,
        reason = "a test issuer without the OS random source or able to encode its own fresh key cannot do anything useful; TestIssuer::new is infallible for its many test callers"
    )]
    fn generate() -> Self {
        let private = RsaPrivateKey::new(&mut rsa::rand_core::OsRng, RSA_BITS)
            .expect("RSA key generation with the OS random source");
        let der = private
            .to_pkcs1_der()
            .expect("a freshly generated RSA key encodes as PKCS#1");
        let public = private.to_public_key();
        let public_pem = public
            .to_public_key_pem(LineEnding::LF)
            .expect("a freshly generated RSA public key encodes as PEM");
        let kid = uuid::Uuid::new_v4().simple().to_string();
        let jwk = json!({
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "kid": kid,
            "n": URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()),
            "e": URL_SAFE_NO_PAD.encode(public.e().to_bytes_be()),
        });
        Self {
            kid,
            encoding: EncodingKey::from_rsa_der(der.as_bytes()),
            jwk,
            public_pem,
        }
    }
}

/// The keys in the JWKS: the signing key and the ones it replaced.
struct PublishedKeys {
    /// Replaced keys, oldest first (still published so older tokens verify).
    retired: Vec<Arc<SigningKey>>,
    current: Arc<SigningKey>,
}

/// A local token issuer with a JWKS endpoint.
pub struct TestIssuer {
    issuer_url: String,
    /// Published keys; the current one signs.
    keys: RwLock<PublishedKeys>,
    jwks_requests: AtomicUsize,
}

impl std::fmt::Debug for TestIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestIssuer")
            .field("issuer_url", &self.issuer_url)
            .field("kid", &self.kid())
            .finish_non_exhaustive()
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl TestIssuer {
    /// An issuer whose tokens carry `iss = issuer_url`, with a fresh RSA key.
    pub fn new(issuer_url: String) -> Self {
        Self {
            issuer_url,
            keys: RwLock::new(PublishedKeys {
                retired: Vec::new(),
                current: Arc::new(SigningKey::generate()),
            }),
            jwks_requests: AtomicUsize::new(0),
        }
    }

    /// The `iss` of minted tokens.
    pub fn issuer_url(&self) -> &str {
        &self.issuer_url
    }

    /// Where [`TestIssuer::router`] serves the JWKS (relative to the issuer URL).
    pub fn jwks_url(&self) -> String {
        format!("{}/jwks.json", self.issuer_url.trim_end_matches('/'))
    }

    /// An [`OAuthConfig`] that accepts this issuer's tokens (user claim `email`).
    pub fn oauth_config(&self) -> OAuthConfig {
        OAuthConfig {
            user_claim: "email".into(),
            algorithms: vec!["RS256".into()],
            leeway_secs: 30,
            jwks_cache_secs: 600,
            ..OAuthConfig::new(self.issuer_url.clone(), self.jwks_url())
        }
    }

    fn current(&self) -> Arc<SigningKey> {
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        Arc::clone(&keys.current)
    }

    /// The key id of the current signing key.
    pub fn kid(&self) -> String {
        self.current().kid.clone()
    }

    /// Generate a new signing key (published next to the old ones); returns its kid.
    pub fn rotate_key(&self) -> String {
        let key = Arc::new(SigningKey::generate());
        let kid = key.kid.clone();
        let mut keys = self.keys.write().unwrap_or_else(|e| e.into_inner());
        let replaced = std::mem::replace(&mut keys.current, key);
        keys.retired.push(replaced);
        kid
    }

    /// The published JWKS document.
    pub fn jwks(&self) -> Value {
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        let published = keys.retired.iter().chain(std::iter::once(&keys.current));
        json!({ "keys": published.map(|k| k.jwk.clone()).collect::<Vec<_>>() })
    }

    /// How many times the JWKS was requested over HTTP.
    pub fn jwks_requests(&self) -> usize {
        self.jwks_requests.load(Ordering::SeqCst)
    }

    /// The OpenID discovery document.
    pub fn discovery(&self) -> Value {
        json!({
            "issuer": self.issuer_url,
            "jwks_uri": self.jwks_url(),
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["none"],
            "claims_supported": ["iss", "sub", "aud", "exp", "iat", "nbf", "email", "preferred_username"],
        })
    }

    /// The public key of the current signing key, PEM (SPKI).
    pub fn public_key_pem(&self) -> String {
        self.current().public_pem.clone()
    }

    /// An RS256 token for `user` (as `sub`, `email` and `preferred_username`) meant for `audience`.
    pub fn mint(&self, user: &str, audience: &str, ttl: Duration) -> String {
        let now = now_secs();
        self.mint_claims(json!({
            "iss": self.issuer_url,
            "sub": user,
            "aud": audience,
            "iat": now,
            "nbf": now,
            "exp": now + ttl.as_secs(),
            "email": user,
            "email_verified": true,
            "preferred_username": user,
        }))
    }

    /// An RS256 token with exactly these claims, signed with the current key.
    pub fn mint_claims(&self, claims: Value) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.kid());
        self.sign_with_header(header, &claims)
    }

    /// Sign `claims` under an arbitrary header (attack tests).
    ///
    /// RSA algorithms (RS*/PS*) sign with the current private key; HMAC
    /// algorithms (HS*) use the public key PEM as the shared secret, which is
    /// the classic key-confusion forgery.
    ///
    /// # Panics
    /// If `header.alg` is an EC or EdDSA algorithm: this issuer only holds RSA keys.
    #[expect(
        clippy::panic,
        clippy::expect_used,
        reason = "a test-only forging helper: asking it for an algorithm it cannot hold is a bug in the calling test, and signing JSON with an in-memory key does not fail"
    )]
    pub fn sign_with_header(&self, header: Header, claims: &Value) -> String {
        let key = self.current();
        let result = match header.alg.family() {
            AlgorithmFamily::Rsa => jsonwebtoken::encode(&header, claims, &key.encoding),
            AlgorithmFamily::Hmac => jsonwebtoken::encode(
                &header,
                claims,
                &EncodingKey::from_secret(key.public_pem.as_bytes()),
            ),
            other => panic!("TestIssuer holds only an RSA key; cannot sign {other:?}"),
        };
        result.expect("signing JSON claims with an in-memory key")
    }

    /// A token with `alg: none` and an empty signature.
    pub fn unsigned_token(&self, claims: &Value) -> String {
        let header = json!({ "alg": "none", "typ": "JWT", "kid": self.kid() });
        format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        )
    }

    /// An HS256 token keyed with the public key PEM, carrying the real kid.
    pub fn hs256_with_public_key(&self, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(self.kid());
        self.sign_with_header(header, claims)
    }

    /// `GET /.well-known/openid-configuration`, `GET /.well-known/oauth-authorization-server`
    /// and `GET /jwks.json`.
    pub fn router(self: Arc<Self>) -> Router {
        Router::new()
            .route("/.well-known/openid-configuration", get(discovery_handler))
            .route(
                "/.well-known/oauth-authorization-server",
                get(discovery_handler),
            )
            .with_state(Arc::clone(&self))
            .merge(self.jwks_router())
    }

    /// `GET /jwks.json` alone (the [`super::authz`] server adds its own metadata).
    pub fn jwks_router(self: Arc<Self>) -> Router {
        Router::new()
            .route("/jwks.json", get(jwks_handler))
            .with_state(self)
    }
}

async fn discovery_handler(State(issuer): State<Arc<TestIssuer>>) -> Json<Value> {
    Json(issuer.discovery())
}

async fn jwks_handler(State(issuer): State<Arc<TestIssuer>>) -> Json<Value> {
    issuer.jwks_requests.fetch_add(1, Ordering::SeqCst);
    Json(issuer.jwks())
}
