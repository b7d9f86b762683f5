//! HTTP side of identity: bearer-token middleware, Origin check, and the
//! OAuth Protected Resource Metadata document (RFC 9728).
//!
//! - [`require_bearer`] verifies `Authorization: Bearer <jwt>` with a
//!   [`JwtVerifier`], puts the [`VerifiedUser`] into the request's extensions
//!   and removes the `Authorization` header before the request goes on (so
//!   nothing downstream can log or forward the token). Failures answer
//!   `401` with `WWW-Authenticate: Bearer resource_metadata="..."` (RFC 9728
//!   §5.1) plus `error="invalid_token", error_description="..."` (RFC 6750
//!   §3) when a token was presented but is not acceptable; without a token
//!   (or with another scheme) there is no `error` parameter. When the
//!   issuer's JWKS cannot be fetched the answer is `503` (without the JWKS URL
//!   or transport detail, which only the log gets): the token may be fine,
//!   re-authenticating would not help.
//! - [`origin_allowed`] / [`require_allowed_origin`] guard against DNS
//!   rebinding and cross-site calls: requests without `Origin` pass (non-browser
//!   clients); an `Origin` passes if it is the origin of the resource URL or in
//!   `server.allowed_origins`; any loopback origin (`localhost`, `127.0.0.0/8`,
//!   `[::1]`, any port) passes only when the resource URL itself is on a
//!   loopback host, i.e. the server runs locally. Everything else gets `403`.
//! - [`metadata_router`] serves the metadata document at both
//!   `/.well-known/oauth-protected-resource` and the path-suffixed form
//!   `/.well-known/oauth-protected-resource<resource path>` (e.g. `/mcp`).

use super::databricks_apps::{self, AppsIdentity};
use super::{AuthError, JwtVerifier, VerifiedUser};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::Arc;

/// State of [`require_bearer`].
#[derive(Debug, Clone)]
pub struct BearerAuth {
    /// How a request's user is established.
    pub mode: AuthMode,
    /// Absolute URL of this server's protected-resource metadata (see [`resource_metadata_url`]).
    pub resource_metadata_url: String,
}

/// How [`require_bearer`] establishes the user (`identity.source`).
#[derive(Debug, Clone)]
pub enum AuthMode {
    /// `Authorization: Bearer <jwt>`, verified against the issuer's JWKS.
    Jwt(JwtVerifier),
    /// The Databricks Apps proxy's forwarded headers (see [`super::databricks_apps`]).
    DatabricksApps(Arc<AppsIdentity>),
}

impl BearerAuth {
    pub fn new(verifier: JwtVerifier, resource_metadata_url: impl Into<String>) -> Self {
        Self {
            mode: AuthMode::Jwt(verifier),
            resource_metadata_url: resource_metadata_url.into(),
        }
    }

    /// Users from the Databricks Apps proxy's forwarded headers.
    pub fn databricks_apps(
        apps: Arc<AppsIdentity>,
        resource_metadata_url: impl Into<String>,
    ) -> Self {
        Self {
            mode: AuthMode::DatabricksApps(apps),
            resource_metadata_url: resource_metadata_url.into(),
        }
    }
}

/// The path under which RFC 9728 publishes metadata for `resource_url`:
/// `/.well-known/oauth-protected-resource` followed by the resource's path
/// (without a trailing slash).
pub fn metadata_path(resource_url: &str) -> String {
    let path = url::Url::parse(resource_url)
        .map(|u| u.path().trim_end_matches('/').to_string())
        .unwrap_or_default();
    format!("/.well-known/oauth-protected-resource{path}")
}

/// The absolute metadata URL for `resource_url`, e.g.
/// `https://mcp.example.com/mcp` → `https://mcp.example.com/.well-known/oauth-protected-resource/mcp`.
pub fn resource_metadata_url(resource_url: &str) -> String {
    match url::Url::parse(resource_url) {
        Ok(u) => format!(
            "{}{}",
            u.origin().ascii_serialization(),
            metadata_path(resource_url)
        ),
        Err(_) => format!(
            "{}/.well-known/oauth-protected-resource",
            resource_url.trim_end_matches('/')
        ),
    }
}

/// Verify the bearer token (or, with `identity.source = "databricks_apps"`, the
/// forwarded user); on success the handler finds a [`VerifiedUser`] in the extensions.
pub async fn require_bearer(
    State(auth): State<Arc<BearerAuth>>,
    mut request: Request,
    next: Next,
) -> Response {
    let verified = match &auth.mode {
        AuthMode::Jwt(verifier) => match bearer_token(request.headers()) {
            Ok(token) => verifier.verify(&token).await,
            Err(e) => return auth_failure(&auth.resource_metadata_url, &e),
        },
        AuthMode::DatabricksApps(apps) => {
            let user = apps.resolve(request.headers()).await;
            databricks_apps::strip_forwarded_token(request.headers_mut());
            user
        }
    };
    match verified {
        Ok(user) => {
            // `?`: a user id is quoted and escaped, so it cannot forge a log line.
            tracing::debug!(user = ?user.user_id, source = user.source.as_str(), "caller verified");
            request.headers_mut().remove(header::AUTHORIZATION);
            request.extensions_mut().insert::<VerifiedUser>(user);
            next.run(request).await
        }
        Err(e) => {
            tracing::info!(error = %e, "caller refused");
            auth_failure(&auth.resource_metadata_url, &e)
        }
    }
}

/// The token of an `Authorization: Bearer` header. Another scheme counts as missing.
fn bearer_token(headers: &HeaderMap) -> Result<String, AuthError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(AuthError::Missing);
    };
    let value = value
        .to_str()
        .map_err(|_| AuthError::Malformed("the Authorization header is not ASCII".into()))?;
    let (scheme, rest) = value.trim().split_once(' ').unwrap_or((value.trim(), ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::Missing);
    }
    let token = rest.trim();
    if token.is_empty() {
        return Err(AuthError::Malformed("the bearer token is empty".into()));
    }
    Ok(token.to_string())
}

/// Make `text` safe inside an RFC 7230 quoted-string.
fn quoted(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '"' => '\'',
            '\\' => '/',
            c if c == ' ' || c.is_ascii_graphic() => c,
            _ => '?',
        })
        .collect()
}

/// Marks a refused request's response with the [`AuthError::reason`] (read by the metrics layer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthFailureReason(pub &'static str);

/// The response for a refused request (401 with a challenge, or 503 if the JWKS is unreachable).
pub fn auth_failure(resource_metadata_url: &str, error: &AuthError) -> Response {
    let mut response = auth_failure_response(resource_metadata_url, error);
    response
        .extensions_mut()
        .insert(AuthFailureReason(error.reason()));
    response
}

fn auth_failure_response(resource_metadata_url: &str, error: &AuthError) -> Response {
    if let AuthError::JwksUnavailable(_) | AuthError::WorkspaceUnavailable(_) = error {
        // The detail (the JWKS or SCIM URL, HTTP status) is logged by the caller, not
        // told to an unauthenticated client.
        let description = match error {
            AuthError::JwksUnavailable(_) => {
                "the issuer's signing keys are temporarily unavailable; retry shortly"
            }
            _ => "the workspace cannot confirm the user right now; retry shortly",
        };
        let body = json!({
            "error": "temporarily_unavailable",
            "error_description": description,
        });
        let mut response = (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("10"));
        return response;
    }
    let mut challenge = format!(
        "Bearer resource_metadata=\"{}\"",
        quoted(resource_metadata_url)
    );
    let body = if matches!(error, AuthError::Missing) {
        json!({
            "error": "unauthorized",
            "error_description": "a bearer token is required",
        })
    } else {
        let description = quoted(&error.to_string());
        challenge.push_str(&format!(
            ", error=\"invalid_token\", error_description=\"{description}\""
        ));
        json!({ "error": "invalid_token", "error_description": description })
    };
    let mut response = (StatusCode::UNAUTHORIZED, Json(body)).into_response();
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

/// `scheme://host[:port]` of a URL or Origin value (default port left out), if it has one.
fn origin_of(text: &str) -> Option<url::Url> {
    let url = url::Url::parse(text.trim()).ok()?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return None;
    }
    Some(url)
}

fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Whether a request with this `Origin` may call the server (see the module doc).
pub fn origin_allowed(
    origin: Option<&HeaderValue>,
    allowed: &[String],
    resource_url: &str,
) -> bool {
    let Some(origin) = origin else {
        return true;
    };
    let Some(origin) = origin.to_str().ok().and_then(origin_of) else {
        return false; // "null", non-http schemes, garbage
    };
    let serialized = origin.origin().ascii_serialization();
    let resource = origin_of(resource_url);
    if resource
        .as_ref()
        .is_some_and(|r| r.origin().ascii_serialization() == serialized)
    {
        return true;
    }
    if allowed
        .iter()
        .filter_map(|a| origin_of(a))
        .any(|a| a.origin().ascii_serialization() == serialized)
    {
        return true;
    }
    resource.as_ref().is_some_and(is_loopback) && is_loopback(&origin)
}

/// State of [`require_allowed_origin`].
#[derive(Debug, Clone)]
pub struct OriginPolicy {
    /// `server.allowed_origins`.
    pub allowed: Vec<String>,
    /// This server's resource URL.
    pub resource_url: String,
}

/// Answer 403 to requests from a foreign `Origin`.
pub async fn require_allowed_origin(
    State(policy): State<Arc<OriginPolicy>>,
    request: Request,
    next: Next,
) -> Response {
    let origin = request.headers().get(header::ORIGIN);
    if origin_allowed(origin, &policy.allowed, &policy.resource_url) {
        return next.run(request).await;
    }
    let shown = origin
        .and_then(|o| o.to_str().ok())
        .map(quoted)
        .unwrap_or_default();
    tracing::warn!(origin = %shown, "request from a foreign Origin refused");
    let body = json!({
        "error": "forbidden_origin",
        "error_description": format!(
            "Origin {shown} may not call this server; add it to server.allowed_origins if it should"
        ),
    });
    (StatusCode::FORBIDDEN, Json(body)).into_response()
}

/// OAuth 2.0 Protected Resource Metadata (RFC 9728 §2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProtectedResourceMetadata {
    /// This server's resource URL (the `aud` tokens must carry).
    pub resource: String,
    /// Issuers whose tokens are accepted.
    pub authorization_servers: Vec<String>,
    pub bearer_methods_supported: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub scopes_supported: Option<Vec<String>>,
    pub resource_name: String,
}

impl ProtectedResourceMetadata {
    /// Metadata for `resource` protected by tokens from `issuer`, sent in the header only.
    pub fn new(resource: impl Into<String>, issuer: impl Into<String>) -> Self {
        Self {
            resource: resource.into(),
            authorization_servers: vec![issuer.into()],
            bearer_methods_supported: vec!["header".into()],
            scopes_supported: None,
            resource_name: "immuta-mcp governed SQL".into(),
        }
    }
}

/// `GET` handler returning the metadata document.
pub async fn protected_resource_metadata(
    State(meta): State<Arc<ProtectedResourceMetadata>>,
) -> Response {
    let mut response = Json(meta.as_ref().clone()).into_response();
    // Public document; browser-based MCP clients fetch it cross-origin.
    response.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    response
}

/// Routes serving the metadata at the root well-known path and the path-suffixed one.
pub fn metadata_router(meta: ProtectedResourceMetadata) -> Router {
    let suffixed = metadata_path(&meta.resource);
    let root = "/.well-known/oauth-protected-resource";
    let mut router = Router::new().route(root, get(protected_resource_metadata));
    if suffixed != root {
        router = router.route(&suffixed, get(protected_resource_metadata));
    }
    router.with_state(Arc::new(meta))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge_text_stays_inside_its_quoted_string() {
        // RFC 7230 quoted-string: no bare `"` or `\`, no control or non-ASCII characters.
        assert_eq!(quoted("a\"b\\c d"), "a'b/c d");
        assert_eq!(quoted("bell\u{7} \u{e9}\r\n"), "bell? ???");
    }

    #[test]
    fn only_http_urls_with_a_host_are_origins() {
        assert!(origin_of("https://app.example.com").is_some());
        assert!(origin_of("http://127.0.0.1:8080").is_some());
        assert!(origin_of("ftp://files.example.com").is_none());
        assert!(origin_of("file:///tmp/x").is_none());
        assert!(origin_of("not a url").is_none());
    }
    use crate::sandbox::issuer::TestIssuer;
    use axum::Extension;
    use axum::middleware::from_fn_with_state;
    use axum::routing::post;

    fn test_http() -> reqwest::Client {
        crate::http_client::install_crypto_provider();
        reqwest::Client::new()
    }
    use jsonwebtoken::{Algorithm, Header};
    use std::time::Duration;

    async fn bind() -> (tokio::net::TcpListener, String) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        (listener, url)
    }

    struct Fixture {
        issuer: Arc<TestIssuer>,
        base: String,
        resource: String,
        http: reqwest::Client,
    }

    async fn fixture() -> Fixture {
        let (issuer_listener, issuer_url) = bind().await;
        let issuer = Arc::new(TestIssuer::new(issuer_url));
        let issuer_app = Arc::clone(&issuer).router();
        tokio::spawn(async move { axum::serve(issuer_listener, issuer_app).await });

        let (listener, base) = bind().await;
        let resource = format!("{base}/mcp");
        let http = test_http();
        let verifier = JwtVerifier::new(&issuer.oauth_config(), &resource, http.clone()).unwrap();
        let auth = Arc::new(BearerAuth::new(verifier, resource_metadata_url(&resource)));
        let origins = Arc::new(OriginPolicy {
            allowed: vec!["https://app.example.com".into()],
            resource_url: resource.clone(),
        });
        let mcp = Router::new()
            .route(
                "/mcp",
                post(
                    |Extension(user): Extension<VerifiedUser>, headers: HeaderMap| async move {
                        Json(json!({
                            "user": user.user_id,
                            "authorization_forwarded": headers.contains_key(header::AUTHORIZATION),
                        }))
                    },
                ),
            )
            .layer(from_fn_with_state(auth, require_bearer));
        let app = Router::new()
            .merge(mcp)
            .merge(metadata_router(ProtectedResourceMetadata::new(
                &resource,
                issuer.issuer_url(),
            )))
            .layer(from_fn_with_state(origins, require_allowed_origin));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Fixture {
            issuer,
            base,
            resource,
            http,
        }
    }

    impl Fixture {
        async fn call(&self, authorization: Option<&str>) -> reqwest::Response {
            let mut req = self.http.post(format!("{}/mcp", self.base)).body("{}");
            if let Some(a) = authorization {
                req = req.header(header::AUTHORIZATION, a);
            }
            req.send().await.unwrap()
        }
        fn challenge(response: &reqwest::Response) -> String {
            response
                .headers()
                .get(header::WWW_AUTHENTICATE)
                .expect("401 carries WWW-Authenticate")
                .to_str()
                .unwrap()
                .to_string()
        }
    }

    #[tokio::test]
    async fn valid_bearer_reaches_the_handler_with_the_user_and_without_the_token() {
        let f = fixture().await;
        let token = f
            .issuer
            .mint("alice@example.com", &f.resource, Duration::from_secs(300));
        let response = f.call(Some(&format!("Bearer {token}"))).await;
        assert_eq!(response.status(), 200);
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["user"], "alice@example.com");
        assert_eq!(body["authorization_forwarded"], false);
        // Scheme is case-insensitive.
        let response = f.call(Some(&format!("bearer {token}"))).await;
        assert_eq!(response.status(), 200);
    }

    #[tokio::test]
    async fn missing_token_gets_a_challenge_without_error_code() {
        let f = fixture().await;
        for auth in [None, Some("Basic YWxpY2U6cHc=")] {
            let response = f.call(auth).await;
            assert_eq!(response.status(), 401);
            let challenge = Fixture::challenge(&response);
            assert_eq!(
                challenge,
                format!(
                    "Bearer resource_metadata=\"{}/.well-known/oauth-protected-resource/mcp\"",
                    f.base
                )
            );
        }
    }

    #[tokio::test]
    async fn bad_tokens_get_invalid_token_challenges() {
        let f = fixture().await;
        let issuer = &f.issuer;
        let now = jsonwebtoken::get_current_timestamp();
        let claims = |aud: &str, iss: &str, exp: u64, nbf: u64| json!({"iss": iss, "sub": "s", "aud": aud, "exp": exp, "nbf": nbf, "email": "alice@example.com"});
        let good = claims(&f.resource, issuer.issuer_url(), now + 300, now);
        let mut unknown_kid = Header::new(Algorithm::RS256);
        unknown_kid.kid = Some("nope".into());
        let cases = [
            ("malformed", "abc.def".to_string(), "malformed"),
            ("alg none", issuer.unsigned_token(&good), "algorithm none"),
            (
                "HS256 with the public key",
                issuer.hs256_with_public_key(&good),
                "algorithm HS256",
            ),
            (
                "unknown kid",
                issuer.sign_with_header(unknown_kid, &good),
                "key nope",
            ),
            (
                "wrong issuer",
                issuer.mint_claims(claims(&f.resource, "https://evil.example", now + 300, now)),
                "expected issuer",
            ),
            (
                "wrong audience",
                issuer.mint_claims(claims(
                    "https://other.example/mcp",
                    issuer.issuer_url(),
                    now + 300,
                    now,
                )),
                "audience",
            ),
            (
                "expired",
                issuer.mint_claims(claims(
                    &f.resource,
                    issuer.issuer_url(),
                    now - 600,
                    now - 900,
                )),
                "expired",
            ),
            (
                "not yet valid",
                issuer.mint_claims(claims(
                    &f.resource,
                    issuer.issuer_url(),
                    now + 900,
                    now + 600,
                )),
                "not valid yet",
            ),
            ("empty bearer", String::new(), "empty"),
        ];
        for (name, token, description) in cases {
            let response = f.call(Some(&format!("Bearer {token}"))).await;
            assert_eq!(response.status(), 401, "{name}");
            let challenge = Fixture::challenge(&response);
            assert!(
                challenge.starts_with("Bearer resource_metadata=\""),
                "{name}: {challenge}"
            );
            assert!(
                challenge.contains("error=\"invalid_token\""),
                "{name}: {challenge}"
            );
            assert!(challenge.contains(description), "{name}: {challenge}");
            if token.len() > 10 {
                assert!(
                    !challenge.contains(&token[token.len() - 10..]),
                    "{name}: token leaked"
                );
            }
            let body: serde_json::Value = response.json().await.unwrap();
            assert_eq!(body["error"], "invalid_token", "{name}");
        }
    }

    #[tokio::test]
    async fn foreign_origin_is_forbidden_and_known_origins_pass() {
        let f = fixture().await;
        let token = f
            .issuer
            .mint("alice@example.com", &f.resource, Duration::from_secs(300));
        let send = |origin: &'static str| {
            f.http
                .post(format!("{}/mcp", f.base))
                .header(header::ORIGIN, origin)
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .send()
        };
        let response = send("https://evil.example").await.unwrap();
        assert_eq!(response.status(), 403);
        let body: serde_json::Value = response.json().await.unwrap();
        assert!(
            body["error_description"]
                .as_str()
                .unwrap()
                .contains("evil.example")
        );
        assert_eq!(send("null").await.unwrap().status(), 403);
        assert_eq!(send("https://app.example.com").await.unwrap().status(), 200);
        assert_eq!(send("http://localhost:6274").await.unwrap().status(), 200);
    }

    #[tokio::test]
    async fn metadata_document_is_served_at_both_paths() {
        let f = fixture().await;
        for path in [
            "/.well-known/oauth-protected-resource",
            "/.well-known/oauth-protected-resource/mcp",
        ] {
            let response = f
                .http
                .get(format!("{}{path}", f.base))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "{path}");
            let doc: serde_json::Value = response.json().await.unwrap();
            assert_eq!(doc["resource"], f.resource.as_str());
            assert_eq!(doc["authorization_servers"], json!([f.issuer.issuer_url()]));
            assert_eq!(doc["bearer_methods_supported"], json!(["header"]));
            assert!(doc["resource_name"].is_string());
        }
    }

    #[test]
    fn origin_rules() {
        let hv = |s: &'static str| HeaderValue::from_static(s);
        let public = "https://mcp.example.com/mcp";
        let local = "http://127.0.0.1:8080/mcp";
        let allowed = vec!["https://app.example.com/".to_string()];
        assert!(origin_allowed(None, &[], public));
        assert!(origin_allowed(
            Some(&hv("https://mcp.example.com")),
            &[],
            public
        ));
        assert!(origin_allowed(
            Some(&hv("https://mcp.example.com:443")),
            &[],
            public
        ));
        assert!(origin_allowed(
            Some(&hv("https://app.example.com")),
            &allowed,
            public
        ));
        assert!(!origin_allowed(
            Some(&hv("http://mcp.example.com")),
            &[],
            public
        ));
        assert!(!origin_allowed(
            Some(&hv("https://evil.example")),
            &allowed,
            public
        ));
        assert!(!origin_allowed(
            Some(&hv("http://localhost:3000")),
            &[],
            public
        ));
        assert!(origin_allowed(
            Some(&hv("http://localhost:3000")),
            &[],
            local
        ));
        assert!(origin_allowed(Some(&hv("http://[::1]:9")), &[], local));
        assert!(!origin_allowed(
            Some(&hv("https://evil.example")),
            &[],
            local
        ));
        assert!(!origin_allowed(Some(&hv("null")), &[], local));
    }

    #[tokio::test]
    async fn unreachable_jwks_answer_503_without_the_jwks_url() {
        let error =
            AuthError::JwksUnavailable("http://idp.internal:8443/keys/jwks.json: HTTP 500".into());
        let response = auth_failure("https://mcp.example.com/.well-known/x", &error);
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(response.headers().get(header::WWW_AUTHENTICATE).is_none());
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&body);
        assert!(text.contains("temporarily_unavailable"), "{text}");
        assert!(
            text.contains("signing keys"),
            "says what is unavailable: {text}"
        );
        assert!(
            !text.contains("idp.internal") && !text.contains("jwks.json") && !text.contains("500"),
            "{text}"
        );
    }

    #[test]
    fn metadata_urls_follow_rfc_9728() {
        assert_eq!(
            resource_metadata_url("https://mcp.example.com/mcp"),
            "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
        );
        assert_eq!(
            resource_metadata_url("https://mcp.example.com"),
            "https://mcp.example.com/.well-known/oauth-protected-resource"
        );
    }
}
