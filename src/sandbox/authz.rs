//! The sandbox's OAuth 2.0 authorization server for public (desktop) clients,
//! built on the [`TestIssuer`]'s signing key.
//!
//! It plays the company's identity provider for `immuta-mcp connect` in tests
//! and first runs:
//! - metadata (RFC 8414 §3, also served as OpenID discovery);
//! - the device authorization grant (RFC 8628): `POST /device_authorization`,
//!   polling at `POST /token` with `authorization_pending`, `slow_down`,
//!   `expired_token` and `access_denied` (§3.5);
//! - the authorization code grant with PKCE `S256` only (RFC 7636 §4.2; `plain`
//!   is refused) and loopback redirect URIs only (RFC 8252 §7.3: `http` to an
//!   IP loopback literal, any port);
//! - refresh tokens, rotated on every use (RFC 9700 §4.14.2: a rotated token
//!   presented again revokes its whole family), revocable by the test API and
//!   by `POST /revoke` (RFC 7009);
//! - the `resource` parameter (RFC 8707 §2) becomes the access token's `aud`;
//!   only registered resources are accepted (`invalid_target` otherwise).
//!
//! A person approves at `GET /device` or on the page `GET /authorize` shows
//! (both let them pick a fixture user); a test approves with
//! [`AuthorizationServer::approve_device`]. Every endpoint call is recorded
//! ([`AuthorizationServer::requests`]) so tests can tell a refresh from a new
//! login. Only registered client ids are served; clients are public (no secret).

mod pages;
mod tokens;

use super::issuer::TestIssuer;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use pages::AuthorizeError;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The client id the sandbox registers for `immuta-mcp connect`.
pub const DEFAULT_CLIENT_ID: &str = "immuta-mcp";
/// RFC 8628 §3.4 grant type.
pub const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// A poll this much earlier than the interval still counts as on time (network jitter).
const POLL_TOLERANCE: Duration = Duration::from_millis(250);

/// Lifetimes and intervals; tests shorten them.
#[derive(Debug, Clone)]
pub struct AuthzSettings {
    /// Access token lifetime.
    pub access_ttl: Duration,
    /// Refresh token lifetime (each rotation starts a new one).
    pub refresh_ttl: Duration,
    /// How long a device code or an authorization code request waits for approval.
    pub device_code_ttl: Duration,
    /// Minimum polling interval announced for the device grant, seconds (RFC 8628 §3.2).
    pub poll_interval_secs: u64,
}

impl Default for AuthzSettings {
    fn default() -> Self {
        Self {
            access_ttl: Duration::from_secs(3600),
            refresh_ttl: Duration::from_secs(30 * 24 * 3600),
            device_code_ttl: Duration::from_secs(600),
            poll_interval_secs: 5,
        }
    }
}

/// Which endpoint a recorded request hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthzRequestKind {
    DeviceAuthorization,
    Authorize,
    TokenDeviceCode,
    TokenAuthorizationCode,
    TokenRefresh,
    TokenOther,
    Revoke,
}

/// One request to the authorization server, with the OAuth error it got (if any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthzRequest {
    pub kind: AuthzRequestKind,
    pub client_id: Option<String>,
    /// `None` on success, else the OAuth `error` code.
    pub error: Option<String>,
}

/// A device authorization waiting for (or past) the user's decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingDevice {
    pub user_code: String,
    pub client_id: String,
    pub resource: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Decision {
    Pending,
    Approved(String),
    Denied,
}

struct DeviceGrant {
    user_code: String,
    client_id: String,
    resource: String,
    scope: Option<String>,
    expires: Instant,
    interval: Duration,
    last_poll: Option<Instant>,
    decision: Decision,
}

struct AuthorizeRequest {
    client_id: String,
    redirect_uri: String,
    code_challenge: String,
    state: Option<String>,
    resource: String,
    scope: Option<String>,
    expires: Instant,
}

struct IssuedCode {
    client_id: String,
    redirect_uri: String,
    code_challenge: String,
    resource: String,
    scope: Option<String>,
    user: String,
    expires: Instant,
}

struct RefreshGrant {
    family: String,
    client_id: String,
    resource: String,
    scope: Option<String>,
    user: String,
    expires: Instant,
    /// Rotated away: presenting it again is a replay.
    rotated: bool,
}

#[derive(Default)]
struct Grants {
    devices: HashMap<String, DeviceGrant>,
    authorize: HashMap<String, AuthorizeRequest>,
    codes: HashMap<String, IssuedCode>,
    refresh: HashMap<String, RefreshGrant>,
    requests: Vec<AuthzRequest>,
}

/// The authorization server. Share it as `Arc`; serve [`AuthorizationServer::router`].
pub struct AuthorizationServer {
    issuer: Arc<TestIssuer>,
    settings: Mutex<AuthzSettings>,
    users: Mutex<Vec<String>>,
    clients: Mutex<Vec<String>>,
    resources: Mutex<Vec<String>>,
    grants: Mutex<Grants>,
}

impl std::fmt::Debug for AuthorizationServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthorizationServer")
            .field("issuer", &self.issuer.issuer_url())
            .finish_non_exhaustive()
    }
}

/// An OAuth error response (RFC 6749 §5.2, RFC 8628 §3.5).
#[derive(Debug)]
struct OAuthError {
    status: StatusCode,
    code: &'static str,
    description: String,
}

fn oauth_error(code: &'static str, description: impl Into<String>) -> OAuthError {
    let status = match code {
        "invalid_client" => StatusCode::UNAUTHORIZED,
        _ => StatusCode::BAD_REQUEST,
    };
    OAuthError {
        status,
        code,
        description: description.into(),
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = json!({ "error": self.code, "error_description": self.description });
        no_store((self.status, axum::Json(body)).into_response())
    }
}

/// RFC 6749 §5.1: token responses carry `Cache-Control: no-store`.
fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn random_token(bytes: usize) -> String {
    let raw: Vec<u8> = (0..bytes).map(|_| rand::random::<u8>()).collect();
    URL_SAFE_NO_PAD.encode(raw)
}

/// RFC 8628 §6.1: a short code of unambiguous consonants, `XXXX-XXXX`.
fn user_code() -> String {
    const ALPHABET: &[u8] = b"BCDFGHJKLMNPQRSTVWXZ";
    let mut code = String::with_capacity(9);
    for i in 0..8 {
        if i == 4 {
            code.push('-');
        }
        code.push(ALPHABET[rand::random_range(0..ALPHABET.len())] as char);
    }
    code
}

/// Users type codes loosely: compare ignoring case and dashes (RFC 8628 §6.1).
fn normalize_user_code(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// The PKCE `S256` challenge of a verifier (RFC 7636 §4.2).
pub fn s256_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// RFC 8252 §7.3 and §8.3: an `http` redirect to an IP loopback literal
/// (`127.0.0.0/8` or `[::1]`), any port, no fragment. `localhost` is refused
/// (it may resolve elsewhere), as is every other host or scheme.
pub fn is_loopback_redirect(uri: &str) -> bool {
    let Ok(url) = url::Url::parse(uri) else {
        return false;
    };
    if url.scheme() != "http" || url.fragment().is_some() || !url.username().is_empty() {
        return false;
    }
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        _ => false,
    }
}

/// Parse a form body; a parameter given twice is an `invalid_request` (RFC 6749 §3.1, §3.2).
fn form(body: &[u8]) -> Result<HashMap<String, String>, OAuthError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
        .map_err(|_| oauth_error("invalid_request", "the body is not form-encoded"))?;
    let mut map = HashMap::new();
    for (k, v) in pairs {
        if map.insert(k.clone(), v).is_some() {
            return Err(oauth_error(
                "invalid_request",
                format!("parameter {k} is repeated"),
            ));
        }
    }
    Ok(map)
}

fn required<'a>(params: &'a HashMap<String, String>, name: &str) -> Result<&'a str, OAuthError> {
    params
        .get(name)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| oauth_error("invalid_request", format!("missing parameter {name}")))
}

impl AuthorizationServer {
    /// An authorization server signing with `issuer`'s key, serving `users`,
    /// with the default client id registered and no resource yet.
    pub fn new(issuer: Arc<TestIssuer>, settings: AuthzSettings) -> Self {
        Self {
            issuer,
            settings: Mutex::new(settings),
            users: Mutex::new(Vec::new()),
            clients: Mutex::new(vec![DEFAULT_CLIENT_ID.to_string()]),
            resources: Mutex::new(Vec::new()),
            grants: Mutex::new(Grants::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Grants> {
        self.grants.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn settings(&self) -> AuthzSettings {
        self.settings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The signing issuer.
    pub fn issuer(&self) -> &Arc<TestIssuer> {
        &self.issuer
    }

    /// Replace lifetimes and interval (applies to grants made afterwards).
    pub fn set_settings(&self, settings: AuthzSettings) {
        *self.settings.lock().unwrap_or_else(|e| e.into_inner()) = settings;
    }

    /// The users a person or test may approve as (the fixture's users).
    pub fn set_users(&self, users: Vec<String>) {
        *self.users.lock().unwrap_or_else(|e| e.into_inner()) = users;
    }

    /// Accept `resource` (RFC 8707) as a token audience.
    pub fn register_resource(&self, resource: &str) {
        let mut r = self.resources.lock().unwrap_or_else(|e| e.into_inner());
        if !r.iter().any(|x| x == resource) {
            r.push(resource.to_string());
        }
    }

    /// Register another public client id.
    pub fn register_client(&self, client_id: &str) {
        self.clients
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(client_id.to_string());
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer.issuer_url().trim_end_matches('/'))
    }

    /// Where a person approves a device code.
    pub fn verification_uri(&self) -> String {
        self.url("/device")
    }

    /// Authorization server metadata (RFC 8414 §2).
    pub fn metadata(&self) -> Value {
        json!({
            "issuer": self.issuer.issuer_url(),
            "jwks_uri": self.issuer.jwks_url(),
            "authorization_endpoint": self.url("/authorize"),
            "token_endpoint": self.url("/token"),
            "device_authorization_endpoint": self.url("/device_authorization"),
            "revocation_endpoint": self.url("/revoke"),
            "grant_types_supported": ["authorization_code", "refresh_token", DEVICE_CODE_GRANT],
            "response_types_supported": ["code"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["none"],
            "revocation_endpoint_auth_methods_supported": ["none"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "email", "offline_access"],
            "claims_supported": ["iss", "sub", "aud", "exp", "iat", "nbf", "email", "preferred_username"],
        })
    }

    /// Every request so far, oldest first.
    pub fn requests(&self) -> Vec<AuthzRequest> {
        self.lock().requests.clone()
    }

    /// How many successful requests of `kind` there were.
    pub fn successes(&self, kind: AuthzRequestKind) -> usize {
        self.lock()
            .requests
            .iter()
            .filter(|r| r.kind == kind && r.error.is_none())
            .count()
    }

    /// Device authorizations still waiting for a decision, oldest first is not guaranteed.
    pub fn pending_devices(&self) -> Vec<PendingDevice> {
        let now = Instant::now();
        self.lock()
            .devices
            .values()
            .filter(|d| d.decision == Decision::Pending && d.expires > now)
            .map(|d| PendingDevice {
                user_code: d.user_code.clone(),
                client_id: d.client_id.clone(),
                resource: d.resource.clone(),
            })
            .collect()
    }

    fn check_user(&self, user: &str) -> Result<(), String> {
        let users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        if users.iter().any(|u| u == user) {
            Ok(())
        } else {
            Err(format!("{user} is not a user of this sandbox"))
        }
    }

    /// Approve the pending device authorization with `user_code` as `user` (the person's consent).
    pub fn approve_device(&self, user_code: &str, user: &str) -> Result<(), String> {
        self.check_user(user)?;
        self.decide_device(user_code, Decision::Approved(user.to_string()))
    }

    /// Deny the pending device authorization with `user_code`.
    pub fn deny_device(&self, user_code: &str) -> Result<(), String> {
        self.decide_device(user_code, Decision::Denied)
    }

    fn decide_device(&self, user_code: &str, decision: Decision) -> Result<(), String> {
        let wanted = normalize_user_code(user_code);
        let now = Instant::now();
        let mut grants = self.lock();
        let grant = grants
            .devices
            .values_mut()
            .find(|d| normalize_user_code(&d.user_code) == wanted)
            .ok_or_else(|| "no such code".to_string())?;
        if grant.expires <= now {
            return Err("the code has expired".into());
        }
        if grant.decision != Decision::Pending {
            return Err("the code was already used".into());
        }
        grant.decision = decision;
        Ok(())
    }

    /// Revoke every refresh token issued to `user`; returns how many were live.
    pub fn revoke_refresh_tokens_of(&self, user: &str) -> usize {
        let mut grants = self.lock();
        let before = grants.refresh.len();
        grants.refresh.retain(|_, g| g.user != user || g.rotated);
        before - grants.refresh.len()
    }

    fn record(&self, kind: AuthzRequestKind, client_id: Option<&str>, error: Option<&str>) {
        self.lock().requests.push(AuthzRequest {
            kind,
            client_id: client_id.map(str::to_string),
            error: error.map(str::to_string),
        });
    }

    fn check_client(&self, client_id: &str) -> Result<(), OAuthError> {
        let clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if clients.iter().any(|c| c == client_id) {
            Ok(())
        } else {
            Err(oauth_error(
                "invalid_client",
                format!("client {client_id} is not registered"),
            ))
        }
    }

    /// RFC 8707 §2: the resource must be an absolute URI without fragment, and one we serve.
    /// Without one, the only registered resource is meant.
    fn check_resource(&self, resource: Option<&String>) -> Result<String, OAuthError> {
        let resources = self.resources.lock().unwrap_or_else(|e| e.into_inner());
        match resource {
            Some(r) => {
                let parsed = url::Url::parse(r).map_err(|_| {
                    oauth_error("invalid_target", "resource is not an absolute URI")
                })?;
                if parsed.fragment().is_some() {
                    return Err(oauth_error("invalid_target", "resource has a fragment"));
                }
                if !resources.iter().any(|x| x == r) {
                    return Err(oauth_error(
                        "invalid_target",
                        format!("{r} is not a resource this server issues tokens for"),
                    ));
                }
                Ok(r.clone())
            }
            None if resources.len() == 1 => Ok(resources[0].clone()),
            None => Err(oauth_error(
                "invalid_target",
                "name the resource (RFC 8707 resource parameter)",
            )),
        }
    }

    fn device_authorization(&self, body: &[u8]) -> Result<Value, OAuthError> {
        let params = form(body)?;
        let client_id = required(&params, "client_id")?;
        self.check_client(client_id)?;
        let resource = self.check_resource(params.get("resource"))?;
        let settings = self.settings();
        let device_code = random_token(32);
        let code = user_code();
        let interval = settings.poll_interval_secs.max(1);
        self.lock().devices.insert(
            device_code.clone(),
            DeviceGrant {
                user_code: code.clone(),
                client_id: client_id.to_string(),
                resource,
                scope: params.get("scope").cloned(),
                expires: Instant::now() + settings.device_code_ttl,
                interval: Duration::from_secs(interval),
                last_poll: None,
                decision: Decision::Pending,
            },
        );
        Ok(json!({
            "device_code": device_code,
            "user_code": code,
            "verification_uri": self.verification_uri(),
            "verification_uri_complete": format!("{}?user_code={code}", self.verification_uri()),
            "expires_in": settings.device_code_ttl.as_secs(),
            "interval": interval,
        }))
    }
    /// Validate an authorization request (RFC 6749 §4.1.1, RFC 7636 §4.3).
    /// Errors before the redirect URI is trusted are shown, never redirected (§4.1.2.1).
    fn authorize(&self, params: &HashMap<String, String>) -> Result<String, AuthorizeError> {
        let shown = |e: OAuthError| AuthorizeError::Shown(e);
        let client_id = required(params, "client_id").map_err(shown)?;
        self.check_client(client_id).map_err(shown)?;
        let redirect_uri = required(params, "redirect_uri").map_err(shown)?;
        if !is_loopback_redirect(redirect_uri) {
            return Err(shown(oauth_error(
                "invalid_request",
                "redirect_uri must be http://127.0.0.1:<port>/… or http://[::1]:<port>/… (RFC 8252 §7.3)",
            )));
        }
        let redirect = |e: OAuthError| AuthorizeError::Redirect {
            redirect_uri: redirect_uri.to_string(),
            state: params.get("state").cloned(),
            error: e,
        };
        if params.get("response_type").map(String::as_str) != Some("code") {
            return Err(redirect(oauth_error(
                "unsupported_response_type",
                "response_type must be code",
            )));
        }
        let challenge = required(params, "code_challenge").map_err(|_| {
            redirect(oauth_error(
                "invalid_request",
                "PKCE is required: send code_challenge with code_challenge_method=S256",
            ))
        })?;
        if params.get("code_challenge_method").map(String::as_str) != Some("S256") {
            return Err(redirect(oauth_error(
                "invalid_request",
                "code_challenge_method must be S256 (plain is not accepted)",
            )));
        }
        if challenge.len() != 43 {
            return Err(redirect(oauth_error(
                "invalid_request",
                "code_challenge is not a base64url SHA-256",
            )));
        }
        let resource = self
            .check_resource(params.get("resource"))
            .map_err(redirect)?;
        let id = random_token(16);
        self.lock().authorize.insert(
            id.clone(),
            AuthorizeRequest {
                client_id: client_id.to_string(),
                redirect_uri: redirect_uri.to_string(),
                code_challenge: challenge.to_string(),
                state: params.get("state").cloned(),
                resource,
                scope: params.get("scope").cloned(),
                expires: Instant::now() + self.settings().device_code_ttl,
            },
        );
        Ok(id)
    }

    /// The person's decision on an authorization request: the redirect back to the client.
    fn decide_authorization(&self, request_id: &str, user: Option<&str>) -> Result<String, String> {
        let request = self
            .lock()
            .authorize
            .remove(request_id)
            .ok_or_else(|| "no such authorization request (already decided?)".to_string())?;
        if request.expires <= Instant::now() {
            return Err("the authorization request has expired".into());
        }
        let mut target = url::Url::parse(&request.redirect_uri)
            .map_err(|_| "the redirect URI is invalid".to_string())?;
        match user {
            Some(user) => {
                self.check_user(user)?;
                let code = random_token(32);
                self.lock().codes.insert(
                    code.clone(),
                    IssuedCode {
                        client_id: request.client_id,
                        redirect_uri: request.redirect_uri.clone(),
                        code_challenge: request.code_challenge,
                        resource: request.resource,
                        scope: request.scope,
                        user: user.to_string(),
                        expires: Instant::now() + Duration::from_secs(60),
                    },
                );
                target.query_pairs_mut().append_pair("code", &code);
            }
            None => {
                target
                    .query_pairs_mut()
                    .append_pair("error", "access_denied");
            }
        }
        if let Some(state) = &request.state {
            target.query_pairs_mut().append_pair("state", state);
        }
        // RFC 9207: name the issuer so the client can detect mix-up attacks.
        target
            .query_pairs_mut()
            .append_pair("iss", self.issuer.issuer_url());
        Ok(target.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s256_matches_the_rfc_7636_appendix_b_example() {
        assert_eq!(
            s256_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn only_ip_loopback_http_redirects_are_accepted() {
        for ok in [
            "http://127.0.0.1:53121/callback",
            "http://127.0.0.1/cb",
            "http://[::1]:8080/cb?x=1",
        ] {
            assert!(is_loopback_redirect(ok), "{ok}");
        }
        for bad in [
            "https://127.0.0.1:1/cb",
            "http://localhost:1/cb",
            "http://example.com/cb",
            "http://127.0.0.1.evil.com/cb",
            "http://10.0.0.1/cb",
            "http://127.0.0.1:1/cb#frag",
            "com.example.app:/cb",
            "not a url",
        ] {
            assert!(!is_loopback_redirect(bad), "{bad}");
        }
    }

    #[test]
    fn user_codes_compare_loosely() {
        let c = user_code();
        assert_eq!(c.len(), 9);
        assert_eq!(
            normalize_user_code(&c.to_lowercase().replace('-', "")),
            normalize_user_code(&c)
        );
    }
}
