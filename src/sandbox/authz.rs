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

use super::issuer::TestIssuer;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
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

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
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

    /// Access + rotated refresh token for `user`.
    fn issue_tokens(
        &self,
        grants: &mut Grants,
        user: &str,
        client_id: &str,
        resource: &str,
        scope: Option<&String>,
        family: Option<String>,
    ) -> Value {
        let settings = self.settings();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut claims = json!({
            "iss": self.issuer.issuer_url(),
            "sub": user,
            "aud": resource,
            "iat": now,
            "nbf": now,
            "exp": now + settings.access_ttl.as_secs().max(1),
            "email": user,
            "email_verified": true,
            "preferred_username": user,
            "client_id": client_id,
            "jti": random_token(12),
        });
        if let Some(s) = scope {
            claims["scope"] = json!(s);
        }
        let access = self.issuer.mint_claims(claims);
        let refresh = random_token(32);
        grants.refresh.insert(
            refresh.clone(),
            RefreshGrant {
                family: family.unwrap_or_else(|| random_token(12)),
                client_id: client_id.to_string(),
                resource: resource.to_string(),
                scope: scope.cloned(),
                user: user.to_string(),
                expires: Instant::now() + settings.refresh_ttl,
                rotated: false,
            },
        );
        let mut body = json!({
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": settings.access_ttl.as_secs().max(1),
            "refresh_token": refresh,
        });
        if let Some(s) = scope {
            body["scope"] = json!(s);
        }
        body
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

    fn token(&self, params: &HashMap<String, String>) -> Result<Value, OAuthError> {
        let grant_type = required(params, "grant_type")?;
        let client_id = required(params, "client_id")?;
        self.check_client(client_id)?;
        match grant_type {
            DEVICE_CODE_GRANT => self.token_device_code(params, client_id),
            "authorization_code" => self.token_authorization_code(params, client_id),
            "refresh_token" => self.token_refresh(params, client_id),
            other => Err(oauth_error(
                "unsupported_grant_type",
                format!("grant type {other} is not supported"),
            )),
        }
    }

    /// RFC 8628 §3.4, §3.5.
    fn token_device_code(
        &self,
        params: &HashMap<String, String>,
        client_id: &str,
    ) -> Result<Value, OAuthError> {
        let device_code = required(params, "device_code")?;
        let now = Instant::now();
        let mut grants = self.lock();
        let grant = grants
            .devices
            .get_mut(device_code)
            .filter(|g| g.client_id == client_id)
            .ok_or_else(|| oauth_error("invalid_grant", "unknown device code"))?;
        if grant.expires <= now {
            grants.devices.remove(device_code);
            return Err(oauth_error("expired_token", "the device code has expired"));
        }
        let too_soon = grant
            .last_poll
            .is_some_and(|last| now + POLL_TOLERANCE < last + grant.interval);
        grant.last_poll = Some(now);
        if too_soon {
            // §3.5: the interval grows by 5 seconds for this and all later requests.
            grant.interval += Duration::from_secs(5);
            return Err(oauth_error("slow_down", "poll less often"));
        }
        match grant.decision.clone() {
            Decision::Pending => Err(oauth_error(
                "authorization_pending",
                "the user has not approved yet",
            )),
            Decision::Denied => {
                grants.devices.remove(device_code);
                Err(oauth_error("access_denied", "the user denied the request"))
            }
            Decision::Approved(user) => {
                let grant = grants
                    .devices
                    .remove(device_code)
                    .expect("the grant was found above");
                Ok(self.issue_tokens(
                    &mut grants,
                    &user,
                    client_id,
                    &grant.resource,
                    grant.scope.as_ref(),
                    None,
                ))
            }
        }
    }

    /// RFC 6749 §4.1.3 with the PKCE check of RFC 7636 §4.6.
    fn token_authorization_code(
        &self,
        params: &HashMap<String, String>,
        client_id: &str,
    ) -> Result<Value, OAuthError> {
        let code = required(params, "code")?;
        let redirect_uri = required(params, "redirect_uri")?;
        let verifier = required(params, "code_verifier")?;
        let mut grants = self.lock();
        // A code is single-use whatever the outcome (RFC 6749 §4.1.2).
        let issued = grants
            .codes
            .remove(code)
            .ok_or_else(|| oauth_error("invalid_grant", "unknown or used code"))?;
        if issued.expires <= Instant::now() {
            return Err(oauth_error("invalid_grant", "the code has expired"));
        }
        if let Some(r) = params.get("resource")
            && r != &issued.resource
        {
            return Err(oauth_error(
                "invalid_target",
                "the code was issued for another resource",
            ));
        }
        if issued.client_id != client_id || issued.redirect_uri != redirect_uri {
            return Err(oauth_error(
                "invalid_grant",
                "the code was issued to another client or redirect URI",
            ));
        }
        // RFC 7636 §4.1: 43–128 characters of the unreserved set.
        if !(43..=128).contains(&verifier.len())
            || !verifier
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-._~".contains(c))
        {
            return Err(oauth_error("invalid_grant", "malformed code_verifier"));
        }
        if s256_challenge(verifier) != issued.code_challenge {
            return Err(oauth_error(
                "invalid_grant",
                "code_verifier does not match the challenge",
            ));
        }
        Ok(self.issue_tokens(
            &mut grants,
            &issued.user,
            client_id,
            &issued.resource,
            issued.scope.as_ref(),
            None,
        ))
    }

    /// RFC 6749 §6 with rotation (RFC 9700 §4.14.2).
    fn token_refresh(
        &self,
        params: &HashMap<String, String>,
        client_id: &str,
    ) -> Result<Value, OAuthError> {
        let token = required(params, "refresh_token")?;
        let mut grants = self.lock();
        let Some(grant) = grants.refresh.get(token) else {
            return Err(oauth_error(
                "invalid_grant",
                "unknown or revoked refresh token",
            ));
        };
        if grant.rotated {
            // Replay of a rotated token: someone else may hold it. Revoke the family.
            let family = grant.family.clone();
            grants.refresh.retain(|_, g| g.family != family);
            return Err(oauth_error(
                "invalid_grant",
                "the refresh token was already used",
            ));
        }
        if grant.client_id != client_id {
            return Err(oauth_error(
                "invalid_grant",
                "the refresh token was issued to another client",
            ));
        }
        if grant.expires <= Instant::now() {
            grants.refresh.remove(token);
            return Err(oauth_error(
                "invalid_grant",
                "the refresh token has expired",
            ));
        }
        if let Some(r) = params.get("resource")
            && r != &grant.resource
        {
            return Err(oauth_error(
                "invalid_target",
                "the refresh token was issued for another resource",
            ));
        }
        let (user, resource, scope, family) = (
            grant.user.clone(),
            grant.resource.clone(),
            grant.scope.clone(),
            grant.family.clone(),
        );
        if let Some(g) = grants.refresh.get_mut(token) {
            g.rotated = true;
        }
        Ok(self.issue_tokens(
            &mut grants,
            &user,
            client_id,
            &resource,
            scope.as_ref(),
            Some(family),
        ))
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

    fn user_options(&self) -> String {
        self.users
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|u| format!("<option>{}</option>", html_escape(u)))
            .collect()
    }

    /// Routes: metadata (both well-known names), JWKS, `/device_authorization`,
    /// `/token`, `/revoke`, `/authorize` and the approval pages `/device`, `/authorize/decision`.
    pub fn router(self: Arc<Self>) -> Router {
        let issuer_routes = Arc::clone(&self.issuer).jwks_router();
        Router::new()
            .route(
                "/.well-known/oauth-authorization-server",
                get(metadata_handler),
            )
            .route("/.well-known/openid-configuration", get(metadata_handler))
            .route("/device_authorization", post(device_authorization_handler))
            .route("/token", post(token_handler))
            .route("/revoke", post(revoke_handler))
            .route("/authorize", get(authorize_handler))
            .route("/authorize/decision", post(authorize_decision_handler))
            .route("/device", get(device_page).post(device_decision_handler))
            .with_state(self)
            .merge(issuer_routes)
    }
}

enum AuthorizeError {
    Shown(OAuthError),
    Redirect {
        redirect_uri: String,
        state: Option<String>,
        error: OAuthError,
    },
}

type Shared = State<Arc<AuthorizationServer>>;

async fn metadata_handler(State(authz): Shared) -> Response {
    axum::Json(authz.metadata()).into_response()
}

async fn device_authorization_handler(State(authz): Shared, body: Bytes) -> Response {
    let client = form(&body).ok().and_then(|p| p.get("client_id").cloned());
    match authz.device_authorization(&body) {
        Ok(v) => {
            authz.record(
                AuthzRequestKind::DeviceAuthorization,
                client.as_deref(),
                None,
            );
            no_store(axum::Json(v).into_response())
        }
        Err(e) => {
            authz.record(
                AuthzRequestKind::DeviceAuthorization,
                client.as_deref(),
                Some(e.code),
            );
            e.into_response()
        }
    }
}

async fn token_handler(State(authz): Shared, body: Bytes) -> Response {
    let params = match form(&body) {
        Ok(p) => p,
        Err(e) => {
            authz.record(AuthzRequestKind::TokenOther, None, Some(e.code));
            return e.into_response();
        }
    };
    let kind = match params.get("grant_type").map(String::as_str) {
        Some(DEVICE_CODE_GRANT) => AuthzRequestKind::TokenDeviceCode,
        Some("authorization_code") => AuthzRequestKind::TokenAuthorizationCode,
        Some("refresh_token") => AuthzRequestKind::TokenRefresh,
        _ => AuthzRequestKind::TokenOther,
    };
    let client = params.get("client_id").cloned();
    match authz.token(&params) {
        Ok(v) => {
            authz.record(kind, client.as_deref(), None);
            no_store(axum::Json(v).into_response())
        }
        Err(e) => {
            authz.record(kind, client.as_deref(), Some(e.code));
            e.into_response()
        }
    }
}

/// RFC 7009 §2: revoke a refresh token (its whole family); unknown tokens are fine (§2.2).
async fn revoke_handler(State(authz): Shared, body: Bytes) -> Response {
    let params = match form(&body) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let client = params.get("client_id").cloned();
    if let Some(token) = params.get("token") {
        let mut grants = authz.lock();
        if let Some(family) = grants.refresh.get(token).map(|g| g.family.clone()) {
            grants.refresh.retain(|_, g| g.family != family);
        }
    }
    authz.record(AuthzRequestKind::Revoke, client.as_deref(), None);
    StatusCode::OK.into_response()
}

async fn authorize_handler(
    State(authz): Shared,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let client = params.get("client_id").cloned();
    match authz.authorize(&params) {
        Ok(id) => {
            authz.record(AuthzRequestKind::Authorize, client.as_deref(), None);
            let resource = params.get("resource").cloned().unwrap_or_default();
            Html(format!(
                "<!doctype html><title>Sign in</title><h1>Sandbox sign-in</h1>\
                 <p>{} asks to act for you on {}.</p>\
                 <form method=post action=\"/authorize/decision\">\
                 <input type=hidden name=request value=\"{}\">\
                 <label>Sign in as <select name=user>{}</select></label>\
                 <button name=decision value=approve>Approve</button>\
                 <button name=decision value=deny>Deny</button></form>",
                html_escape(client.as_deref().unwrap_or("")),
                html_escape(&resource),
                html_escape(&id),
                authz.user_options()
            ))
            .into_response()
        }
        Err(AuthorizeError::Shown(e)) => {
            authz.record(AuthzRequestKind::Authorize, client.as_deref(), Some(e.code));
            (
                e.status,
                Html(format!(
                    "<!doctype html><title>Error</title><p>{}: {}</p>",
                    e.code,
                    html_escape(&e.description)
                )),
            )
                .into_response()
        }
        Err(AuthorizeError::Redirect {
            redirect_uri,
            state,
            error,
        }) => {
            authz.record(
                AuthzRequestKind::Authorize,
                client.as_deref(),
                Some(error.code),
            );
            let mut target = match url::Url::parse(&redirect_uri) {
                Ok(u) => u,
                Err(_) => return StatusCode::BAD_REQUEST.into_response(),
            };
            target
                .query_pairs_mut()
                .append_pair("error", error.code)
                .append_pair("error_description", &error.description);
            if let Some(s) = state {
                target.query_pairs_mut().append_pair("state", &s);
            }
            redirect_to(target.as_str())
        }
    }
}

fn redirect_to(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(v) => {
            let mut r = StatusCode::SEE_OTHER.into_response();
            r.headers_mut().insert(header::LOCATION, v);
            r
        }
        Err(_) => StatusCode::BAD_REQUEST.into_response(),
    }
}

async fn authorize_decision_handler(State(authz): Shared, body: Bytes) -> Response {
    let Ok(params) = form(&body) else {
        return (StatusCode::BAD_REQUEST, "malformed form").into_response();
    };
    let Some(request) = params.get("request") else {
        return (StatusCode::BAD_REQUEST, "missing request").into_response();
    };
    let user = match params.get("decision").map(String::as_str) {
        Some("approve") => match params.get("user") {
            Some(u) => Some(u.as_str()),
            None => return (StatusCode::BAD_REQUEST, "pick a user").into_response(),
        },
        _ => None,
    };
    match authz.decide_authorization(request, user) {
        Ok(location) => redirect_to(&location),
        Err(e) => (StatusCode::BAD_REQUEST, Html(html_escape(&e))).into_response(),
    }
}

async fn device_page(
    State(authz): Shared,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let code = params.get("user_code").cloned().unwrap_or_default();
    Html(format!(
        "<!doctype html><title>Device sign-in</title><h1>Sandbox device sign-in</h1>\
         <form method=post action=\"/device\">\
         <label>Code <input name=user_code value=\"{}\"></label>\
         <label>Sign in as <select name=user>{}</select></label>\
         <button name=decision value=approve>Approve</button>\
         <button name=decision value=deny>Deny</button></form>",
        html_escape(&code),
        authz.user_options()
    ))
    .into_response()
}

async fn device_decision_handler(State(authz): Shared, body: Bytes) -> Response {
    let Ok(params) = form(&body) else {
        return (StatusCode::BAD_REQUEST, "malformed form").into_response();
    };
    let code = params.get("user_code").map(String::as_str).unwrap_or("");
    let result = match params.get("decision").map(String::as_str) {
        Some("approve") => {
            authz.approve_device(code, params.get("user").map(String::as_str).unwrap_or(""))
        }
        _ => authz.deny_device(code),
    };
    match result {
        Ok(()) => Html("<!doctype html><p>Done. You can close this window.</p>").into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, Html(html_escape(&e))).into_response(),
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
