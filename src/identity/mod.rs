//! Who is calling: the end user every governed query runs for.
//!
//! Four sources, all ending in a [`VerifiedUser`]:
//! - stdio with an operator-configured user ([`IdentitySource::StdioConfig`]);
//! - stdio with a signed ID token, verified like an HTTP bearer token
//!   ([`IdentitySource::StdioIdToken`]);
//! - streamable HTTP with an OAuth bearer token verified against the
//!   issuer's JWKS by [`jwt::JwtVerifier`] inside the [`http`] middleware
//!   ([`IdentitySource::HttpBearer`]);
//! - streamable HTTP behind the Databricks Apps proxy: the forwarded user,
//!   confirmed by the workspace's SCIM `Me` with the forwarded token
//!   ([`databricks_apps`], [`IdentitySource::DatabricksApps`]).
//!
//! Errors are [`AuthError`]s; their text never contains a token.

pub mod databricks_apps;
pub mod http;
pub mod jwt;
pub mod scopes;
pub mod session;

pub use jwt::JwtVerifier;

use crate::config::IdentityConfig;

/// Where a verified identity came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentitySource {
    /// `identity.stdio_user` set by the operator (trusted configuration).
    StdioConfig,
    /// `identity.stdio_id_token`, signature and claims verified.
    StdioIdToken,
    /// `Authorization: Bearer` token on an HTTP request, verified.
    HttpBearer,
    /// The Databricks Apps proxy's forwarded user, confirmed by SCIM `Me`.
    DatabricksApps,
}

impl IdentitySource {
    /// Stable snake_case name (as `whoami` reports it).
    pub fn as_str(self) -> &'static str {
        match self {
            IdentitySource::StdioConfig => "stdio_config",
            IdentitySource::StdioIdToken => "stdio_id_token",
            IdentitySource::HttpBearer => "http_bearer",
            IdentitySource::DatabricksApps => "databricks_apps",
        }
    }
}

/// The end user a request acts for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedUser {
    /// The Immuta user id (the configured user claim, e.g. the email).
    pub user_id: String,
    /// The token's `sub` (the configured user for [`IdentitySource::StdioConfig`]).
    pub subject: String,
    /// The token's `iss` (`"local-config"` for [`IdentitySource::StdioConfig`]).
    pub issuer: String,
    pub source: IdentitySource,
    /// OAuth scopes the bearer token granted (`scope` / `scp`); empty on stdio.
    pub scopes: Vec<String>,
}

impl VerifiedUser {
    /// The user named by the operator's configuration (stdio), with no token behind it.
    pub fn configured(user: &str) -> VerifiedUser {
        VerifiedUser {
            user_id: user.to_string(),
            subject: user.to_string(),
            issuer: CONFIG_ISSUER.into(),
            source: IdentitySource::StdioConfig,
            scopes: Vec::new(),
        }
    }
}

/// Issuer recorded for users taken from the configuration file.
pub const CONFIG_ISSUER: &str = "local-config";

/// Why a caller could not be identified. The text never includes the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no bearer token was presented")]
    Missing,
    #[error("the token is malformed: {0}")]
    Malformed(String),
    #[error("the token's signature algorithm {0} is not accepted")]
    UnsupportedAlgorithm(String),
    #[error("the token was signed with key {0}, which the issuer's JWKS does not contain")]
    UnknownKey(String),
    #[error("the token's signature is invalid")]
    InvalidSignature,
    #[error("the token was not issued by the expected issuer")]
    WrongIssuer,
    #[error("the token is not meant for this server (audience mismatch)")]
    WrongAudience,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet (nbf in the future)")]
    NotYetValid,
    #[error("the token has no non-empty string claim `{0}` naming the user")]
    MissingUserClaim(String),
    #[error("the token's user claim `{claim}` cannot name a user: {reason}")]
    UnacceptableUserClaim { claim: String, reason: String },
    #[error(
        "the token's email is not verified by the issuer (`email_verified` is not true); \
         sign in with a verified email, or map an immutable claim such as `sub`"
    )]
    EmailNotVerified,
    #[error("the token's lifetime is not accepted: {0}")]
    TokenLifetime(String),
    #[error("the issuer's signing keys are unavailable: {0}")]
    JwksUnavailable(String),
    #[error("identity is not configured: {0}")]
    NotConfigured(String),
    #[error(
        "the ID token names user `{token_user}` but identity.stdio_user is `{configured}`: \
         they must agree"
    )]
    UserMismatch {
        configured: String,
        token_user: String,
    },
    #[error("the Databricks Apps proxy forwarded no {0} header naming the user")]
    ForwardedUserMissing(&'static str),
    #[error(
        "no X-Forwarded-Access-Token was forwarded: enable user authorization on the app \
         (scope iam.current-user.read) so the workspace can confirm the user"
    )]
    ForwardedTokenMissing,
    #[error("the workspace refused the forwarded access token (HTTP {0})")]
    ForwardedTokenRefused(u16),
    #[error("the forwarded access token belongs to another user than the {header} header names")]
    ForwardedUserMismatch { header: String },
    #[error("the workspace cannot confirm the user right now: {0}")]
    WorkspaceUnavailable(String),
    #[error(
        "this MCP session was started by another user: start a new session with your own token"
    )]
    SessionOfAnotherUser,
}

impl AuthError {
    /// A bounded category of the failure (a metrics label).
    pub fn reason(&self) -> &'static str {
        match self {
            AuthError::Missing => "missing_token",
            AuthError::Malformed(_) => "malformed",
            AuthError::UnsupportedAlgorithm(_) => "unsupported_algorithm",
            AuthError::UnknownKey(_) => "unknown_key",
            AuthError::InvalidSignature => "invalid_signature",
            AuthError::WrongIssuer => "wrong_issuer",
            AuthError::WrongAudience => "wrong_audience",
            AuthError::Expired => "expired",
            AuthError::NotYetValid => "not_yet_valid",
            AuthError::MissingUserClaim(_) | AuthError::UnacceptableUserClaim { .. } => {
                "user_claim"
            }
            AuthError::EmailNotVerified => "email_not_verified",
            AuthError::TokenLifetime(_) => "token_lifetime",
            AuthError::JwksUnavailable(_) => "jwks_unavailable",
            AuthError::NotConfigured(_) => "not_configured",
            AuthError::UserMismatch { .. } => "user_mismatch",
            AuthError::SessionOfAnotherUser => "session_of_another_user",
            AuthError::ForwardedUserMissing(_) => "forwarded_user_missing",
            AuthError::ForwardedTokenMissing => "forwarded_token_missing",
            AuthError::ForwardedTokenRefused(_) => "forwarded_token_refused",
            AuthError::ForwardedUserMismatch { .. } => "forwarded_user_mismatch",
            AuthError::WorkspaceUnavailable(_) => "workspace_unavailable",
        }
    }
}

/// The stdio end user: the configured user, proven by the ID token when one is configured.
///
/// With both `stdio_user` and `stdio_id_token`, the token's user claim must name
/// the same user (compared ignoring ASCII case, as identity providers differ in
/// how they case emails); the token's value is the one used.
pub async fn resolve_stdio_user(
    cfg: &IdentityConfig,
    verifier: Option<&JwtVerifier>,
) -> Result<VerifiedUser, AuthError> {
    let configured = cfg.stdio_user.as_deref().filter(|u| !u.trim().is_empty());
    if let Some(user) = configured {
        // The same rule as for token claims: never trim, refuse invisible characters.
        jwt::check_user_id(user).map_err(|reason| {
            AuthError::NotConfigured(format!(
                "identity.stdio_user (or IMMUTA_MCP_USER): {reason}"
            ))
        })?;
    }
    if let Some(token_ref) = &cfg.stdio_id_token {
        let verifier = verifier.ok_or_else(|| {
            AuthError::NotConfigured(
                "identity.stdio_id_token is set but identity.oauth (issuer, jwks_url) is not"
                    .into(),
            )
        })?;
        let token = token_ref
            .resolve("identity.stdio_id_token")
            .map_err(|e| AuthError::NotConfigured(e.to_string()))?;
        let mut user = verifier.verify(token.expose().trim()).await?;
        if let Some(configured) = configured
            && !configured.eq_ignore_ascii_case(&user.user_id)
        {
            return Err(AuthError::UserMismatch {
                configured: configured.to_string(),
                token_user: user.user_id,
            });
        }
        user.source = IdentitySource::StdioIdToken;
        return Ok(user);
    }
    match configured {
        Some(user) => Ok(VerifiedUser::configured(user)),
        None => Err(AuthError::NotConfigured(
            "no stdio user: set identity.stdio_user (or IMMUTA_MCP_USER), \
             optionally with identity.stdio_id_token"
                .into(),
        )),
    }
}
