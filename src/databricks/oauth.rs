//! OAuth M2M tokens scoped to an Immuta-vended exclusive group.
//!
//! The service principal exchanges its client credentials at the workspace
//! token endpoint (`POST {host}/oidc/v1/token`, HTTP Basic
//! `client_id:client_secret`, form
//! `grant_type=client_credentials&scope=all-apis&assume_group=<id>`). The
//! only way to ask for a token is [`TokenClient::token_for_group`], which
//! takes a [`GroupId`]: there is no code path that requests a token without
//! `assume_group`, so no query can run with the service principal's own,
//! unscoped permissions.

use super::wire::{OAuthErrorBody, TOKEN_PATH, TokenResponse};
use crate::query::{CallContext, QueryError};
use crate::retry::RetryPolicy;
use crate::secret::Secret;
use std::time::{Duration, SystemTime};

/// Lifetime assumed when the token answer has no `expires_in` (Databricks' documented default).
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

/// Why no group-scoped token was obtained.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    /// The vend answer had no usable group id (refusing to ask for an unscoped token).
    #[error(
        "the vended Databricks group has an empty id; refusing to request a token without assume_group"
    )]
    MissingGroup,
    /// The token endpoint rejected the service principal's credentials.
    #[error(
        "Databricks rejected the service principal's client credentials (HTTP {status} {error}{}); check databricks.client_id and databricks.client_secret",
        describe(.description)
    )]
    InvalidClient {
        status: u16,
        error: String,
        description: Option<String>,
    },
    /// The token endpoint refused a token for the vended group.
    #[error("Databricks refused a token assuming vended group {group_id} (HTTP {status} {error}{})", describe(.description))]
    Refused {
        group_id: String,
        status: u16,
        error: String,
        description: Option<String>,
    },
    /// The token endpoint kept failing after retries.
    #[error("Databricks token endpoint is unavailable: {0}")]
    Unavailable(String),
    /// The answer did not match the OAuth protocol.
    #[error("unexpected answer from the Databricks token endpoint: {0}")]
    Protocol(String),
}

fn describe(description: &Option<String>) -> String {
    match description {
        Some(d) if !d.is_empty() => format!(": {d}"),
        _ => String::new(),
    }
}

impl From<OAuthError> for QueryError {
    fn from(e: OAuthError) -> Self {
        match e {
            OAuthError::Unavailable(message) => QueryError::Unavailable {
                service: "Databricks OAuth",
                message,
            },
            other => QueryError::Credential(other.to_string()),
        }
    }
}

/// The id of a vended exclusive group: the value for `assume_group`. Never empty.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GroupId(String);

impl GroupId {
    /// Wrap a vended group id (`nativeRoleId`); empty or blank ids are refused.
    pub fn new(id: impl Into<String>) -> Result<Self, OAuthError> {
        let id = id.into();
        if id.trim().is_empty() {
            return Err(OAuthError::MissingGroup);
        }
        Ok(Self(id))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An access token that acts as one vended group.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupToken {
    pub access_token: Secret,
    pub expires_at: SystemTime,
    /// Scope the token endpoint granted, when it said.
    pub scope: Option<String>,
}

/// Client of the workspace token endpoint for one service principal.
#[derive(Clone)]
pub struct TokenClient {
    token_url: String,
    client_id: String,
    client_secret: Secret,
    http: reqwest::Client,
    retry: RetryPolicy,
}

impl std::fmt::Debug for TokenClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenClient")
            .field("token_url", &self.token_url)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl TokenClient {
    /// `host` is the workspace base URL without a trailing slash.
    pub fn new(
        host: &str,
        client_id: impl Into<String>,
        client_secret: Secret,
        http: reqwest::Client,
        retry: RetryPolicy,
    ) -> Self {
        Self {
            token_url: format!("{host}{TOKEN_PATH}"),
            client_id: client_id.into(),
            client_secret,
            http,
            retry,
        }
    }

    /// The service principal's client id (public, not a secret).
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The token endpoint URL.
    pub fn token_url(&self) -> &str {
        &self.token_url
    }

    /// Replace the retry policy (tests use short backoffs).
    pub fn set_retry(&mut self, retry: RetryPolicy) {
        self.retry = retry;
    }

    /// Request a token that assumes `group` (and nothing else).
    ///
    /// Each HTTP attempt is counted in `ctx`. Minting a second token is
    /// harmless, so transport errors, 429 and 5xx are retried per the policy.
    pub async fn token_for_group(
        &self,
        group: &GroupId,
        ctx: &CallContext,
    ) -> Result<GroupToken, OAuthError> {
        self.request_token(Some(group), ctx).await
    }

    /// A token of the service principal itself (no `assume_group`): only `check`
    /// asks for one, to read the warehouse's permissions; it never runs SQL.
    pub async fn token_for_service_principal(
        &self,
        ctx: &CallContext,
    ) -> Result<GroupToken, OAuthError> {
        self.request_token(None, ctx).await
    }

    async fn request_token(
        &self,
        group: Option<&GroupId>,
        ctx: &CallContext,
    ) -> Result<GroupToken, OAuthError> {
        let mut form = vec![("grant_type", "client_credentials"), ("scope", "all-apis")];
        if let Some(group) = group {
            form.push(("assume_group", group.as_str()));
        }
        let requested_at = SystemTime::now();
        let resp = self
            .retry
            .send(|_| {
                ctx.count_upstream_request();
                self.http
                    .post(&self.token_url)
                    // RFC 6749 §2.3.1: form-url-encode both before Basic encoding, as
                    // Databricks' SDKs do (sdk-js m2m.ts, golang.org/x/oauth2 AuthStyleInHeader).
                    .basic_auth(
                        form_encode(&self.client_id),
                        Some(form_encode(self.client_secret.expose())),
                    )
                    .header(reqwest::header::ACCEPT, "application/json")
                    .form(&form)
            })
            .await
            .map_err(|e| OAuthError::Unavailable(e.to_string()))?;
        if !resp.is_success() {
            let (error, description) = match resp.json::<OAuthErrorBody>() {
                Ok(b) => (b.error, b.error_description),
                Err(_) => ("error".to_string(), Some(resp.text_snippet(200))),
            };
            return Err(if resp.status == 401 || error == "invalid_client" {
                OAuthError::InvalidClient {
                    status: resp.status,
                    error,
                    description,
                }
            } else {
                OAuthError::Refused {
                    group_id: group.map(|g| g.as_str().to_string()).unwrap_or_default(),
                    status: resp.status,
                    error,
                    description,
                }
            });
        }
        let answer: TokenResponse = resp
            .json()
            .map_err(|e| OAuthError::Protocol(format!("token answer does not parse: {e}")))?;
        if answer.access_token.is_empty() {
            return Err(OAuthError::Protocol("the access_token is empty".into()));
        }
        if let Some(t) = &answer.token_type
            && !t.eq_ignore_ascii_case("bearer")
        {
            return Err(OAuthError::Protocol(format!(
                "token_type is {t:?}, expected Bearer"
            )));
        }
        let lifetime = answer
            .expires_in
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_TOKEN_LIFETIME);
        tracing::debug!(
            group_id = group.map(GroupId::as_str).unwrap_or("-"),
            lifetime_secs = lifetime.as_secs(),
            "Databricks issued a group-scoped token"
        );
        Ok(GroupToken {
            access_token: Secret::new(answer.access_token),
            expires_at: requested_at + lifetime,
            scope: answer.scope,
        })
    }
}

/// `application/x-www-form-urlencoded` encoding of one value (space as `+`).
fn form_encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::extract::State;
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::IntoResponse;
    use axum::routing::post;
    use std::sync::{Arc, Mutex};

    #[derive(Default)]
    struct Seen {
        auth: Vec<String>,
        forms: Vec<String>,
    }

    async fn token(
        State(seen): State<Arc<Mutex<Seen>>>,
        headers: HeaderMap,
        body: String,
    ) -> axum::response::Response {
        let auth = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let mut s = seen.lock().unwrap();
        s.auth.push(auth.clone());
        s.forms.push(body.clone());
        // base64("sp-id:sp-secret")
        if auth != "Basic c3AtaWQ6c3Atc2VjcmV0" {
            return (
                StatusCode::UNAUTHORIZED,
                axum::Json(serde_json::json!({"error":"invalid_client","error_description":"Client authentication failed"})),
            )
                .into_response();
        }
        if body.contains("assume_group=unknown") {
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(serde_json::json!({"error":"invalid_request","error_description":"group not found"})),
            )
                .into_response();
        }
        axum::Json(serde_json::json!({"access_token":"tok-1","token_type":"Bearer","expires_in":600,"scope":"all-apis"}))
            .into_response()
    }

    async fn serve() -> (String, Arc<Mutex<Seen>>) {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let app = Router::new()
            .route(TOKEN_PATH, post(token))
            .with_state(seen.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (format!("http://{addr}"), seen)
    }

    fn client(host: &str, secret: &str) -> TokenClient {
        TokenClient::new(
            host,
            "sp-id",
            Secret::new(secret),
            crate::http_client::build(&crate::config::Limits::default()).unwrap(),
            RetryPolicy::none(),
        )
    }

    #[tokio::test]
    async fn basic_credentials_are_form_url_encoded_first() {
        let (host, seen) = serve().await;
        let ctx = CallContext::new("alice@example.com", "test");
        let _ = client(&host, "a:b+c%/ d")
            .token_for_group(&GroupId::new("98765").unwrap(), &ctx)
            .await;
        let auth = seen.lock().unwrap().auth[0].clone();
        use base64::Engine as _;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth.strip_prefix("Basic ").unwrap())
            .unwrap();
        assert_eq!(
            String::from_utf8(decoded).unwrap(),
            "sp-id:a%3Ab%2Bc%25%2F+d"
        );
    }

    #[test]
    fn empty_group_ids_are_refused() {
        assert!(matches!(GroupId::new(""), Err(OAuthError::MissingGroup)));
        assert!(matches!(GroupId::new("  "), Err(OAuthError::MissingGroup)));
        assert_eq!(GroupId::new("123").unwrap().as_str(), "123");
    }

    #[tokio::test]
    async fn token_request_assumes_the_group_with_basic_auth() {
        let (host, seen) = serve().await;
        let ctx = CallContext::new("alice@example.com", "test");
        let before = SystemTime::now();
        let t = client(&host, "sp-secret")
            .token_for_group(&GroupId::new("98765").unwrap(), &ctx)
            .await
            .unwrap();
        assert_eq!(t.access_token.expose(), "tok-1");
        assert!(t.expires_at >= before + Duration::from_secs(600));
        assert!(t.expires_at <= SystemTime::now() + Duration::from_secs(600));
        let form = seen.lock().unwrap().forms[0].clone();
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(&form).unwrap();
        assert_eq!(
            pairs,
            vec![
                ("grant_type".into(), "client_credentials".into()),
                ("scope".into(), "all-apis".into()),
                ("assume_group".into(), "98765".into()),
            ]
        );
        assert_eq!(ctx.facts().upstream_requests, 1);
    }

    #[tokio::test]
    async fn bad_client_secret_and_unknown_group_are_told_apart() {
        let (host, _) = serve().await;
        let ctx = CallContext::new("alice@example.com", "test");
        let e = client(&host, "wrong")
            .token_for_group(&GroupId::new("1").unwrap(), &ctx)
            .await
            .unwrap_err();
        assert!(matches!(e, OAuthError::InvalidClient { status: 401, .. }));
        let msg = e.to_string();
        assert!(
            msg.contains("client_secret") && !msg.contains("wrong"),
            "{msg}"
        );
        let e = client(&host, "sp-secret")
            .token_for_group(&GroupId::new("unknown").unwrap(), &ctx)
            .await
            .unwrap_err();
        assert!(
            e.to_string().contains("vended group unknown")
                && e.to_string().contains("group not found"),
            "{e}"
        );
        assert!(matches!(QueryError::from(e), QueryError::Credential(_)));
    }

    // Tests added for surviving mutants (scripts/mutants.sh).

    /// A token endpoint that always answers `status` with `body`.
    async fn answering(status: StatusCode, body: serde_json::Value) -> String {
        let app = Router::new().route(
            TOKEN_PATH,
            post(move || {
                let body = body.clone();
                async move { (status, axum::Json(body)).into_response() }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}")
    }

    async fn refusal(status: StatusCode, body: serde_json::Value) -> OAuthError {
        let host = answering(status, body).await;
        let ctx = CallContext::new("alice@example.com", "test");
        client(&host, "sp-secret")
            .token_for_group(&GroupId::new("42").unwrap(), &ctx)
            .await
            .unwrap_err()
    }

    #[tokio::test]
    async fn invalid_client_is_recognised_by_status_or_by_error_code_alone() {
        // RFC 6749 5.2: invalid_client may come as 400; a 401 may carry another code.
        let e = refusal(
            StatusCode::BAD_REQUEST,
            serde_json::json!({"error": "invalid_client"}),
        )
        .await;
        assert!(
            matches!(e, OAuthError::InvalidClient { status: 400, .. }),
            "{e}"
        );
        let e = refusal(
            StatusCode::UNAUTHORIZED,
            serde_json::json!({"error": "unauthorized"}),
        )
        .await;
        assert!(
            matches!(e, OAuthError::InvalidClient { status: 401, .. }),
            "{e}"
        );
    }

    #[tokio::test]
    async fn an_empty_error_description_adds_nothing_to_the_message() {
        let e = refusal(
            StatusCode::BAD_REQUEST,
            serde_json::json!({"error": "invalid_request", "error_description": ""}),
        )
        .await;
        assert_eq!(
            e.to_string(),
            "Databricks refused a token assuming vended group 42 (HTTP 400 invalid_request)"
        );
    }

    #[test]
    fn debug_shows_the_endpoint_and_client_id_never_the_secret() {
        let c = client("http://127.0.0.1:9", "sp-secret-value");
        assert_eq!(c.token_url(), "http://127.0.0.1:9/oidc/v1/token");
        let shown = format!("{c:?}");
        assert_eq!(
            shown,
            "TokenClient { token_url: \"http://127.0.0.1:9/oidc/v1/token\", client_id: \"sp-id\", .. }"
        );
        assert!(!shown.contains("sp-secret-value"));
    }

    #[tokio::test]
    async fn set_retry_replaces_the_policy_used_for_the_next_request() {
        let host = answering(
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({"error": "temporarily_unavailable"}),
        )
        .await;
        let mut c = client(&host, "sp-secret");
        c.set_retry(RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(1),
            observer: None,
        });
        let ctx = CallContext::new("alice@example.com", "test");
        let _ = c
            .token_for_group(&GroupId::new("42").unwrap(), &ctx)
            .await
            .unwrap_err();
        assert_eq!(
            ctx.facts().upstream_requests,
            3,
            "two retries after the 503"
        );
    }
}
