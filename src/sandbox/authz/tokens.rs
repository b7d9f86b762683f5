//! The token endpoint's grants (`POST /token`): the device code (RFC 8628
//! §3.4, §3.5: `authorization_pending`, `slow_down`, `expired_token`,
//! `access_denied`), the authorization code with the PKCE `S256` check (RFC
//! 6749 §4.1.3, RFC 7636 §4.6), and refresh tokens rotated on every use
//! (RFC 9700 §4.14.2: replaying a rotated token revokes its whole family).
//! Each success issues an access token signed by the [`TestIssuer`]
//! (`aud` = the resource) and a fresh refresh token.
//!
//! [`TestIssuer`]: super::TestIssuer

use super::{
    AuthorizationServer, DEVICE_CODE_GRANT, Decision, Grants, OAuthError, POLL_TOLERANCE,
    RefreshGrant, oauth_error, random_token, required, s256_challenge,
};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::{Duration, Instant};

impl AuthorizationServer {
    /// Access + rotated refresh token for `user`.
    pub(super) fn issue_tokens(
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

    pub(super) fn token(&self, params: &HashMap<String, String>) -> Result<Value, OAuthError> {
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
                let Some(grant) = grants.devices.remove(device_code) else {
                    return Err(oauth_error("invalid_grant", "unknown device code"));
                };
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
}
