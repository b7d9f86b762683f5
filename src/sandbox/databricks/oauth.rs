//! The Databricks emulator's OAuth side: `POST /oidc/v1/token` (M2M client
//! credentials, with `assume_group` for a vended group), the workspace's
//! OAuth discovery document, and the issued-token store the statement and
//! workspace endpoints authenticate against ([`Emulator::authenticate`]).
//! Only SHA-256 digests of issued tokens are kept.

use super::{ApiError, Emulator};
use crate::result::Platform;
use crate::sandbox::state::Counter;
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

/// Lifetime of an OAuth access token, as Databricks issues them.
const TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone)]
pub(super) struct TokenGrant {
    /// The assumed group (`assume_group`); `None` = the bare service principal.
    pub(super) group: Option<String>,
    pub(super) expires_at: SystemTime,
    pub(super) epoch: u64,
}

/// Issued tokens: SHA-256 of each access token → what it grants.
pub(super) type TokenStore = std::sync::Mutex<HashMap<[u8; 32], TokenGrant>>;

/// The token store; an insert cut short by a panic leaves whole entries, so a poisoned lock is still usable.
pub(super) fn tokens(emu: &Emulator) -> MutexGuard<'_, HashMap<[u8; 32], TokenGrant>> {
    emu.tokens.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `GET /oidc/.well-known/oauth-authorization-server`: the workspace's OAuth
/// discovery document, served without authentication (RFC 8414 §3). The
/// Databricks SDKs read `authorization_endpoint` and `token_endpoint` from it
/// (databricks-sdk-py `oauth.get_workspace_endpoints`); the token endpoint is
/// `/oidc/v1/token` ("Authorize unattended access with OAuth (M2M)").
pub(super) async fn oauth_metadata(headers: HeaderMap) -> Response {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return (StatusCode::BAD_REQUEST, "no Host header").into_response();
    };
    let base = format!("https://{host}/oidc");
    Json(json!({
        "issuer": base,
        "authorization_endpoint": format!("{base}/v1/authorize"),
        "token_endpoint": format!("{base}/v1/token"),
        "jwks_uri": format!("{base}/v1/keys"),
        "grant_types_supported": ["client_credentials", "authorization_code", "refresh_token"],
        "response_types_supported": ["code"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
    }))
    .into_response()
}

/// An OAuth error answer `{error, error_description}` (RFC 6749 §5.2).
fn oauth_error(status: StatusCode, error: &str, description: impl Into<String>) -> Response {
    let body = json!({"error": error, "error_description": description.into()});
    (status, Json(body)).into_response()
}

pub(super) fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Emulator {
    /// The grant behind `Authorization: Bearer <token>`.
    pub(super) fn authenticate(&self, headers: &HeaderMap) -> Result<TokenGrant, ApiError> {
        let token = crate::sandbox::state::bearer_token(headers)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "UNAUTHENTICATED",
                    "Credential was not sent or was of an unsupported type for this API.",
                )
            })?;
        let grant = tokens(self).get(&digest(token)).cloned().ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "UNAUTHENTICATED",
                "Invalid access token.",
            )
        })?;
        if grant.epoch < self.state.credential_epoch() || SystemTime::now() >= grant.expires_at {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "UNAUTHENTICATED",
                "Invalid access token: the token has expired.",
            ));
        }
        Ok(grant)
    }
}

/// Client credentials from HTTP Basic, else from the form.
fn client_credentials(
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Option<(String, String)> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Basic ")
                .or_else(|| v.strip_prefix("basic "))
        })
        .and_then(|b64| {
            base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .ok()
        })
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|pair| {
            // Each half is form-url-encoded before Basic encoding (RFC 6749 §2.3.1).
            let (id, secret) = pair.split_once(':')?;
            Some((form_decode(id), form_decode(secret)))
        });
    basic.or_else(|| {
        Some((
            form.get("client_id")?.clone(),
            form.get("client_secret")?.clone(),
        ))
    })
}

/// Undo `application/x-www-form-urlencoded` encoding of one value.
fn form_decode(value: &str) -> String {
    url::form_urlencoded::parse(format!("v={value}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

pub(super) async fn token(
    State(emu): State<Arc<Emulator>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form: HashMap<String, String> = match serde_urlencoded::from_bytes(&body) {
        Ok(f) => f,
        Err(e) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                format!("The request body must be application/x-www-form-urlencoded: {e}"),
            );
        }
    };
    let creds = &emu.state.creds;
    match client_credentials(&headers, &form) {
        Some((id, secret))
            if id == creds.databricks_client_id && secret == creds.databricks_client_secret => {}
        Some(_) => {
            return oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "Client authentication failed: unknown client_id or wrong client_secret.",
            );
        }
        None => {
            return oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "Client authentication failed: send client_id:client_secret with HTTP Basic authentication.",
            );
        }
    }
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "Only grant_type=client_credentials is supported for service principals.",
        );
    }
    let scope = form.get("scope").cloned().unwrap_or_default();
    if !scope
        .split_whitespace()
        .any(|s| s == "all-apis" || s == "sql")
    {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            format!("scope must include all-apis (got '{scope}')."),
        );
    }
    let group = match form.get("assume_group").map(|g| g.trim()) {
        None => None,
        Some("") => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "assume_group is empty: pass the vended group id.",
            );
        }
        Some(g) => match emu.state.engine.role_binding(Platform::Databricks, g) {
            Some(binding) => Some((g.to_string(), binding.expires_at)),
            None => {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    format!(
                        "assume_group '{g}' is not a group this service principal may assume: it does not exist or has expired."
                    ),
                );
            }
        },
    };
    // A token for a group lives no longer than the group itself.
    let now = SystemTime::now();
    let lifetime = match &group {
        Some((_, group_expiry)) => group_expiry
            .duration_since(now)
            .unwrap_or(Duration::ZERO)
            .min(TOKEN_LIFETIME),
        None => TOKEN_LIFETIME,
    };
    let group = group.map(|(g, _)| g);
    let access_token = hex::encode(rand::random::<[u8; 32]>());
    tokens(&emu).insert(
        digest(&access_token),
        TokenGrant {
            group,
            expires_at: now + lifetime,
            epoch: emu.state.credential_epoch(),
        },
    );
    emu.state.bump(Counter::OAuthTokensIssued);
    emu.state.record_issued_credential(&access_token);
    let body = json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": lifetime.as_secs(),
        "scope": scope,
    });
    (StatusCode::OK, Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_form_url_decoded() {
        let mut headers = HeaderMap::new();
        let pair = base64::engine::general_purpose::STANDARD.encode("sp%3Aid:a%3Ab%2Bc+d");
        headers.insert(
            header::AUTHORIZATION,
            format!("Basic {pair}").parse().unwrap(),
        );
        assert_eq!(
            client_credentials(&headers, &HashMap::new()),
            Some(("sp:id".to_string(), "a:b+c d".to_string()))
        );
    }
}
