//! The OAuth exchanges of a public client: device authorization (RFC 8628),
//! authorization code with PKCE (RFC 7636) and a loopback redirect
//! (RFC 8252), refresh (RFC 6749 §6) and revocation (RFC 7009).
//!
//! Every request names the resource (RFC 8707 §2) so the token's audience is
//! the MCP server. Instructions for the person go to stderr; no token is ever
//! printed or logged.

use super::BridgeError;
use super::discovery::AuthServerMetadata;
use super::store::StoredTokens;
use crate::secret::Secret;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::time::{Duration, Instant};

/// RFC 8628 §3.4 grant type.
pub const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// What a login needs besides the metadata.
#[derive(Debug, Clone)]
pub struct LoginRequest {
    pub resource: String,
    pub client_id: String,
    pub scope: Option<String>,
    /// Try to open the system browser for the browser login (off in tests).
    pub open_browser: bool,
}

/// A PKCE verifier and its S256 challenge (RFC 7636 §4.1, §4.2).
pub struct Pkce {
    pub verifier: Secret,
    pub challenge: String,
}

impl Pkce {
    /// 32 random bytes, base64url: a 43-character verifier.
    pub fn generate() -> Self {
        let verifier = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
        let challenge = Self::challenge_of(&verifier);
        Self {
            verifier: Secret::new(verifier),
            challenge,
        }
    }

    /// `BASE64URL(SHA256(verifier))`.
    pub fn challenge_of(verifier: &str) -> String {
        URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    refresh_token: Option<String>,
}

#[derive(Deserialize)]
struct ErrorResponse {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

#[derive(Deserialize)]
struct DeviceAuthorization {
    device_code: String,
    user_code: String,
    verification_uri: String,
    #[serde(default)]
    verification_uri_complete: Option<String>,
    expires_in: u64,
    #[serde(default)]
    interval: Option<u64>,
}

/// The outcome of a token request.
enum TokenOutcome {
    Tokens(StoredTokens),
    Error { error: String, description: String },
}

pub(crate) fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Only these characters from an authorization server reach the terminal.
fn printable(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(300).collect()
}

async fn token_request(
    http: &reqwest::Client,
    meta: &AuthServerMetadata,
    req: &LoginRequest,
    params: &[(&str, &str)],
    previous_refresh: Option<&Secret>,
) -> Result<TokenOutcome, BridgeError> {
    let response = http
        .post(&meta.token_endpoint)
        .header("accept", "application/json")
        .form(params)
        .send()
        .await
        .map_err(|e| BridgeError::Http(format!("token endpoint: {}", e.without_url())))?;
    let status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|e| BridgeError::Http(format!("token endpoint: {}", e.without_url())))?;
    if status.is_success() {
        let t: TokenResponse = serde_json::from_slice(&body).map_err(|_| {
            BridgeError::Login(
                "the token endpoint answered with an unreadable token response".into(),
            )
        })?;
        if t.token_type
            .as_deref()
            .is_some_and(|tt| !tt.eq_ignore_ascii_case("bearer"))
        {
            return Err(BridgeError::Login(
                "the token endpoint issued a token that is not a bearer token".into(),
            ));
        }
        let issued_at = now_secs();
        return Ok(TokenOutcome::Tokens(StoredTokens {
            resource: req.resource.clone(),
            issuer: meta.issuer.clone(),
            client_id: req.client_id.clone(),
            access_token: Secret::new(t.access_token),
            // RFC 6749 §6: without a new refresh token, the old one stays valid.
            refresh_token: t
                .refresh_token
                .map(Secret::new)
                .or_else(|| previous_refresh.cloned()),
            issued_at,
            expires_at: issued_at + t.expires_in.unwrap_or(300),
        }));
    }
    match serde_json::from_slice::<ErrorResponse>(&body) {
        Ok(e) => Ok(TokenOutcome::Error {
            error: printable(&e.error),
            description: printable(e.error_description.as_deref().unwrap_or("")),
        }),
        Err(_) => Err(BridgeError::Login(format!(
            "the token endpoint answered HTTP {status} without an OAuth error"
        ))),
    }
}

/// Exchange a refresh token. `Ok(None)`: the authorization server refused it
/// (revoked, expired, replayed), so a new login is needed.
pub async fn refresh(
    http: &reqwest::Client,
    meta: &AuthServerMetadata,
    req: &LoginRequest,
    refresh_token: &Secret,
) -> Result<Option<StoredTokens>, BridgeError> {
    let mut params = vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token.expose()),
        ("client_id", req.client_id.as_str()),
        ("resource", req.resource.as_str()),
    ];
    if let Some(s) = &req.scope {
        params.push(("scope", s));
    }
    match token_request(http, meta, req, &params, Some(refresh_token)).await? {
        TokenOutcome::Tokens(t) => Ok(Some(t)),
        TokenOutcome::Error { error, description } => {
            tracing::info!(%error, %description, "refresh token refused; a new login is needed");
            Ok(None)
        }
    }
}

/// RFC 7009: ask the authorization server to revoke a refresh token (best effort).
pub async fn revoke(
    http: &reqwest::Client,
    meta: &AuthServerMetadata,
    client_id: &str,
    refresh_token: &Secret,
) -> Result<(), BridgeError> {
    let Some(endpoint) = &meta.revocation_endpoint else {
        return Ok(());
    };
    let response = http
        .post(endpoint)
        .form(&[
            ("token", refresh_token.expose()),
            ("token_type_hint", "refresh_token"),
            ("client_id", client_id),
        ])
        .send()
        .await
        .map_err(|e| BridgeError::Http(format!("revocation endpoint: {}", e.without_url())))?;
    if !response.status().is_success() {
        return Err(BridgeError::Login(format!(
            "the revocation endpoint answered HTTP {}",
            response.status()
        )));
    }
    Ok(())
}

/// RFC 8628 §3.1–§3.5: get a code, show it on stderr, poll until the person decides.
pub async fn device_login(
    http: &reqwest::Client,
    meta: &AuthServerMetadata,
    req: &LoginRequest,
) -> Result<StoredTokens, BridgeError> {
    let endpoint = meta
        .device_authorization_endpoint
        .as_deref()
        .ok_or_else(|| BridgeError::Login("no device authorization endpoint".into()))?;
    let mut params = vec![
        ("client_id", req.client_id.as_str()),
        ("resource", req.resource.as_str()),
    ];
    if let Some(s) = &req.scope {
        params.push(("scope", s));
    }
    let response = http
        .post(endpoint)
        .header("accept", "application/json")
        .form(&params)
        .send()
        .await
        .map_err(|e| BridgeError::Http(format!("device authorization: {}", e.without_url())))?;
    let status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|e| BridgeError::Http(format!("device authorization: {}", e.without_url())))?;
    if !status.is_success() {
        let detail = serde_json::from_slice::<ErrorResponse>(&body)
            .map(|e| {
                format!(
                    "{} {}",
                    printable(&e.error),
                    printable(e.error_description.as_deref().unwrap_or(""))
                )
            })
            .unwrap_or_else(|_| format!("HTTP {status}"));
        return Err(BridgeError::Login(format!(
            "the device authorization request was refused: {detail}"
        )));
    }
    let device: DeviceAuthorization = serde_json::from_slice(&body)
        .map_err(|_| BridgeError::Login("unreadable device authorization response".into()))?;
    eprintln!(
        "immuta-mcp connect: to sign in to {}, open {} and enter the code {}",
        req.resource,
        printable(&device.verification_uri),
        printable(&device.user_code)
    );
    if let Some(complete) = &device.verification_uri_complete {
        eprintln!("immuta-mcp connect: (or open {})", printable(complete));
    }
    // §3.5: 5 seconds when the server names no interval.
    let mut interval = Duration::from_secs(device.interval.unwrap_or(5).max(1));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(device.expires_in);
    let mut last_progress = Instant::now();
    let device_code = Secret::new(device.device_code);
    loop {
        tokio::time::sleep(interval).await;
        if Instant::now() >= deadline {
            return Err(BridgeError::Login(
                "the sign-in code expired before it was approved".into(),
            ));
        }
        let params = [
            ("grant_type", DEVICE_CODE_GRANT),
            ("device_code", device_code.expose()),
            ("client_id", req.client_id.as_str()),
        ];
        match token_request(http, meta, req, &params, None).await? {
            TokenOutcome::Tokens(t) => {
                eprintln!("immuta-mcp connect: signed in to {}", req.resource);
                return Ok(t);
            }
            TokenOutcome::Error { error, description } => match error.as_str() {
                "authorization_pending" => {}
                "slow_down" => interval += Duration::from_secs(5),
                "access_denied" => {
                    return Err(BridgeError::Login("the sign-in was denied".into()));
                }
                "expired_token" => {
                    return Err(BridgeError::Login(
                        "the sign-in code expired before it was approved".into(),
                    ));
                }
                _ => {
                    return Err(BridgeError::Login(format!(
                        "the token endpoint refused the device code: {error} {description}"
                    )));
                }
            },
        }
        if last_progress.elapsed() >= Duration::from_secs(15) {
            last_progress = Instant::now();
            eprintln!(
                "immuta-mcp connect: still waiting for the sign-in with code {} ({} s so far)",
                printable(&device.user_code),
                started.elapsed().as_secs()
            );
        }
    }
}

/// The authorization URL of a PKCE login.
pub fn authorization_url(
    endpoint: &str,
    req: &LoginRequest,
    redirect_uri: &str,
    pkce: &Pkce,
    state: &str,
) -> Result<url::Url, BridgeError> {
    let mut url = url::Url::parse(endpoint)
        .map_err(|e| BridgeError::Login(format!("authorization endpoint: {e}")))?;
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", &req.client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("code_challenge", &pkce.challenge)
            .append_pair("code_challenge_method", "S256")
            .append_pair("state", state)
            .append_pair("resource", &req.resource);
        if let Some(s) = &req.scope {
            q.append_pair("scope", s);
        }
    }
    Ok(url)
}

/// What came back to the loopback redirect.
#[derive(Debug, Default, Deserialize)]
struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    iss: Option<String>,
}

/// RFC 8252 §7.3: listen on 127.0.0.1 (any port), send the browser to the
/// authorization endpoint, take the code from the redirect and redeem it
/// with the PKCE verifier.
pub async fn browser_login(
    http: &reqwest::Client,
    meta: &AuthServerMetadata,
    req: &LoginRequest,
) -> Result<StoredTokens, BridgeError> {
    let endpoint = meta
        .authorization_endpoint
        .as_deref()
        .ok_or_else(|| BridgeError::Login("no authorization endpoint".into()))?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .map_err(|e| BridgeError::Login(format!("cannot listen on 127.0.0.1: {e}")))?;
    let port = listener
        .local_addr()
        .map_err(|e| BridgeError::Login(e.to_string()))?
        .port();
    let redirect_uri = format!("http://127.0.0.1:{port}/callback");
    let pkce = Pkce::generate();
    let state = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>());
    let url = authorization_url(endpoint, req, &redirect_uri, &pkce, &state)?;
    eprintln!(
        "immuta-mcp connect: to sign in to {}, open this address in your browser:\n  {url}",
        req.resource
    );
    if req.open_browser {
        open_in_browser(url.as_str());
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Callback>(1);
    let app = axum::Router::new().route(
        "/callback",
        axum::routing::get(
            move |axum::extract::Query(cb): axum::extract::Query<Callback>| {
                let tx = tx.clone();
                async move {
                    let _ = tx.try_send(cb);
                    axum::response::Html(
                        "<!doctype html><p>Signed in. You can close this window and return to your MCP client.</p>",
                    )
                }
            },
        ),
    );
    let stop = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn({
        let stop = stop.clone();
        async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await;
        }
    });
    let mut rx = rx;
    let callback = rx.recv().await;
    stop.cancel();
    let _ = server.await;
    let cb = callback.ok_or_else(|| BridgeError::Login("the redirect listener stopped".into()))?;
    if cb.state.as_deref() != Some(state.as_str()) {
        return Err(BridgeError::Login(
            "the redirect carried the wrong state (not our sign-in); refused".into(),
        ));
    }
    // RFC 9207 §2.4: if the AS names itself, it must be the one we asked.
    if let Some(iss) = &cb.iss
        && iss != &meta.issuer
    {
        return Err(BridgeError::Login(
            "the redirect came from another authorization server; refused".into(),
        ));
    }
    if let Some(error) = cb.error {
        return Err(BridgeError::Login(format!(
            "the sign-in was not completed: {}",
            printable(&error)
        )));
    }
    let code = Secret::new(
        cb.code
            .ok_or_else(|| BridgeError::Login("the redirect carried no code".into()))?,
    );
    let params = [
        ("grant_type", "authorization_code"),
        ("code", code.expose()),
        ("redirect_uri", redirect_uri.as_str()),
        ("code_verifier", pkce.verifier.expose()),
        ("client_id", req.client_id.as_str()),
        ("resource", req.resource.as_str()),
    ];
    match token_request(http, meta, req, &params, None).await? {
        TokenOutcome::Tokens(t) => {
            eprintln!("immuta-mcp connect: signed in to {}", req.resource);
            Ok(t)
        }
        TokenOutcome::Error { error, description } => Err(BridgeError::Login(format!(
            "the code exchange was refused: {error} {description}"
        ))),
    }
}

/// Best effort: the platform's "open this URL" command.
fn open_in_browser(url: &str) {
    let mut command = if cfg!(target_os = "macos") {
        let mut c = std::process::Command::new("open");
        c.arg(url);
        c
    } else if cfg!(windows) {
        let mut c = std::process::Command::new("rundll32");
        c.args(["url.dll,FileProtocolHandler", url]);
        c
    } else {
        let mut c = std::process::Command::new("xdg-open");
        c.arg(url);
        c
    };
    command
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    if let Err(e) = command.spawn() {
        tracing::info!(error = %e, "could not open a browser; open the address shown above");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_verifier_is_43_unreserved_chars_and_challenge_is_its_s256() {
        let p = Pkce::generate();
        assert_eq!(p.verifier.expose().len(), 43);
        assert!(
            p.verifier
                .expose()
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c))
        );
        assert_eq!(p.challenge, Pkce::challenge_of(p.verifier.expose()));
        assert_ne!(p.verifier.expose(), Pkce::generate().verifier.expose());
        // RFC 7636 Appendix B.
        assert_eq!(
            Pkce::challenge_of("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn authorization_url_carries_pkce_s256_state_and_resource() {
        let req = LoginRequest {
            resource: "https://mcp.example.com/mcp".into(),
            client_id: "immuta-mcp".into(),
            scope: None,
            open_browser: false,
        };
        let p = Pkce::generate();
        let url = authorization_url(
            "https://as.example/authorize?tenant=1",
            &req,
            "http://127.0.0.1:5000/callback",
            &p,
            "st",
        )
        .unwrap();
        let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(q["tenant"], "1");
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(q["code_challenge"], p.challenge);
        assert_eq!(q["resource"], "https://mcp.example.com/mcp");
        assert_eq!(q["redirect_uri"], "http://127.0.0.1:5000/callback");
        assert_eq!(q["state"], "st");
        assert!(!url.as_str().contains(p.verifier.expose()));
    }
}
