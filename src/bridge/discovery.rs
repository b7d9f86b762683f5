//! Finding the authorization server of an MCP server, as the MCP
//! authorization spec ("Authorization Server Discovery") asks: the
//! Protected Resource Metadata (RFC 9728) — at the URL the server's 401
//! challenge names, else at the well-known URLs — names the authorization
//! server, whose metadata (RFC 8414, or OpenID discovery) names the endpoints.
//!
//! Both documents are checked the way the RFCs require: the PRM's `resource`
//! must be the URL we connect to (RFC 9728 §3.3) and the AS metadata's
//! `issuer` must be the issuer we asked for (RFC 8414 §3.3); otherwise the
//! document is not used. Every endpoint must be `https`, or `http` on a
//! loopback host (the sandbox).

use super::BridgeError;
use crate::identity::http::{metadata_path, resource_metadata_url};
use serde::Deserialize;

/// What the login needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovered {
    /// The resource (token audience): the MCP endpoint URL.
    pub resource: String,
    pub metadata: AuthServerMetadata,
}

/// RFC 9728 §2 (the fields we use).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ProtectedResource {
    pub resource: String,
    #[serde(default)]
    pub authorization_servers: Vec<String>,
}

/// RFC 8414 §2 and RFC 8628 §4 (the fields we use).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AuthServerMetadata {
    pub issuer: String,
    pub token_endpoint: String,
    #[serde(default)]
    pub authorization_endpoint: Option<String>,
    #[serde(default)]
    pub device_authorization_endpoint: Option<String>,
    #[serde(default)]
    pub revocation_endpoint: Option<String>,
    #[serde(default)]
    pub grant_types_supported: Option<Vec<String>>,
    #[serde(default)]
    pub code_challenge_methods_supported: Option<Vec<String>>,
}

/// How the user signs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginMethod {
    /// RFC 8628: a code and URL on stderr, approved on any device.
    Device,
    /// RFC 6749 §4.1 + PKCE (RFC 7636) with a loopback redirect (RFC 8252).
    Browser,
}

impl AuthServerMetadata {
    fn grant_supported(&self, grant: &str) -> bool {
        match &self.grant_types_supported {
            Some(list) => list.iter().any(|g| g == grant),
            // RFC 8414 §2: omitted means ["authorization_code", "implicit"].
            None => grant == "authorization_code",
        }
    }

    /// Whether the device grant is offered.
    pub fn offers_device(&self) -> bool {
        self.device_authorization_endpoint.is_some()
            && self.grant_supported(super::login::DEVICE_CODE_GRANT)
    }

    /// Whether authorization code + PKCE S256 is offered. The MCP spec: without
    /// `code_challenge_methods_supported` the client must not proceed.
    pub fn offers_browser(&self) -> bool {
        self.authorization_endpoint.is_some()
            && self.grant_supported("authorization_code")
            && self
                .code_challenge_methods_supported
                .as_ref()
                .is_some_and(|m| m.iter().any(|m| m == "S256"))
    }

    /// The preferred method if offered, else the other one.
    pub fn choose(&self, preferred: LoginMethod) -> Result<LoginMethod, BridgeError> {
        let offered = |m: LoginMethod| match m {
            LoginMethod::Device => self.offers_device(),
            LoginMethod::Browser => self.offers_browser(),
        };
        let other = match preferred {
            LoginMethod::Device => LoginMethod::Browser,
            LoginMethod::Browser => LoginMethod::Device,
        };
        [preferred, other]
            .into_iter()
            .find(|m| offered(*m))
            .ok_or_else(|| {
                BridgeError::Discovery(format!(
                    "the authorization server {} offers neither the device grant nor \
                     authorization code with PKCE S256",
                    self.issuer
                ))
            })
    }
}

fn is_loopback_host(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// `https`, or `http` to a loopback host; anything else is refused (tokens travel there).
pub fn check_secure_url(what: &str, text: &str) -> Result<url::Url, BridgeError> {
    let url = url::Url::parse(text)
        .map_err(|e| BridgeError::Discovery(format!("{what} {text:?} is not a URL: {e}")))?;
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback_host(&url) => Ok(url),
        _ => Err(BridgeError::Discovery(format!(
            "{what} {text} must use https (http only on a loopback host)"
        ))),
    }
}

/// Where RFC 9728 §3.1 publishes the PRM of `resource`: the path-suffixed
/// well-known URL first, then the root one.
pub fn prm_urls(resource: &str) -> Vec<String> {
    let mut urls = vec![resource_metadata_url(resource)];
    if let Ok(u) = url::Url::parse(resource)
        && metadata_path(resource) != "/.well-known/oauth-protected-resource"
    {
        urls.push(format!(
            "{}/.well-known/oauth-protected-resource",
            u.origin().ascii_serialization()
        ));
    }
    urls
}

/// Where to find the metadata of `issuer`, in the order the MCP spec lists:
/// RFC 8414 §3.1 (well-known inserted before the path), OpenID Connect with
/// path insertion, OpenID Connect Discovery 1.0 §4 (appended).
pub fn as_metadata_urls(issuer: &str) -> Result<Vec<String>, BridgeError> {
    let url = check_secure_url("authorization server", issuer)?;
    let origin = url.origin().ascii_serialization();
    let path = url.path().trim_end_matches('/');
    Ok(if path.is_empty() {
        vec![
            format!("{origin}/.well-known/oauth-authorization-server"),
            format!("{origin}/.well-known/openid-configuration"),
        ]
    } else {
        vec![
            format!("{origin}/.well-known/oauth-authorization-server{path}"),
            format!("{origin}/.well-known/openid-configuration{path}"),
            format!("{origin}{path}/.well-known/openid-configuration"),
        ]
    })
}

/// Parse a PRM document for `resource` (RFC 9728 §3.3: its `resource` must be ours).
pub fn parse_prm(body: &[u8], resource: &str) -> Result<ProtectedResource, BridgeError> {
    let prm: ProtectedResource = serde_json::from_slice(body).map_err(|e| {
        BridgeError::Discovery(format!("the protected resource metadata is not valid: {e}"))
    })?;
    if prm.resource.trim_end_matches('/') != resource.trim_end_matches('/') {
        return Err(BridgeError::Discovery(format!(
            "the protected resource metadata is for {}, not {resource}",
            prm.resource
        )));
    }
    if prm.authorization_servers.is_empty() {
        return Err(BridgeError::Discovery(
            "the protected resource metadata names no authorization server".into(),
        ));
    }
    Ok(prm)
}

/// Parse AS metadata fetched for `issuer` (RFC 8414 §3.3: `issuer` must match).
pub fn parse_as_metadata(body: &[u8], issuer: &str) -> Result<AuthServerMetadata, BridgeError> {
    let meta: AuthServerMetadata = serde_json::from_slice(body).map_err(|e| {
        BridgeError::Discovery(format!(
            "the authorization server metadata is not valid: {e}"
        ))
    })?;
    if meta.issuer != issuer {
        return Err(BridgeError::Discovery(format!(
            "the authorization server metadata names issuer {}, not {issuer}",
            meta.issuer
        )));
    }
    check_secure_url("token_endpoint", &meta.token_endpoint)?;
    for (what, url) in [
        ("authorization_endpoint", &meta.authorization_endpoint),
        (
            "device_authorization_endpoint",
            &meta.device_authorization_endpoint,
        ),
        ("revocation_endpoint", &meta.revocation_endpoint),
    ] {
        if let Some(url) = url {
            check_secure_url(what, url)?;
        }
    }
    Ok(meta)
}

async fn get_first(
    http: &reqwest::Client,
    urls: &[String],
) -> Result<Option<(String, bytes::Bytes)>, BridgeError> {
    for url in urls {
        let response = http
            .get(url)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| BridgeError::Http(format!("GET {url}: {e}")))?;
        if response.status().is_success() {
            let body = response
                .bytes()
                .await
                .map_err(|e| BridgeError::Http(format!("GET {url}: {e}")))?;
            return Ok(Some((url.clone(), body)));
        }
        tracing::debug!(%url, status = %response.status(), "metadata not found here");
    }
    Ok(None)
}

/// The `resource_metadata` parameter of a `WWW-Authenticate: Bearer …` challenge (RFC 9728 §5.1).
pub fn resource_metadata_param(challenge: &str) -> Option<String> {
    let (scheme, params) = challenge.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let start = params.find("resource_metadata=")? + "resource_metadata=".len();
    let rest = &params[start..];
    let value = match rest.strip_prefix('"') {
        Some(quoted) => quoted.split('"').next()?,
        None => rest.split([',', ' ']).next()?,
    };
    (!value.is_empty()).then(|| value.to_string())
}

/// Ask the server without a token: its 401 challenge names the metadata URL
/// (the MCP spec's first discovery step). Any other answer names none.
async fn challenged_metadata_url(http: &reqwest::Client, resource: &str) -> Option<String> {
    let response = http
        .get(resource)
        .header("accept", "text/event-stream")
        .send()
        .await
        .ok()?;
    if response.status() != reqwest::StatusCode::UNAUTHORIZED {
        return None;
    }
    let url = response
        .headers()
        .get_all("www-authenticate")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(resource_metadata_param)?;
    check_secure_url("resource_metadata", &url).ok()?;
    Some(url)
}

/// (challenge's metadata URL, then the well-known ones) → PRM → first authorization server → its metadata.
pub async fn discover(http: &reqwest::Client, resource: &str) -> Result<Discovered, BridgeError> {
    check_secure_url("the MCP server URL", resource)?;
    let mut candidates = prm_urls(resource);
    if let Some(url) = challenged_metadata_url(http, resource).await {
        candidates.retain(|u| u != &url);
        candidates.insert(0, url);
    }
    let (prm_url, body) = get_first(http, &candidates).await?.ok_or_else(|| {
        BridgeError::Discovery(format!(
            "{resource} publishes no protected resource metadata (RFC 9728); \
                 is it an immuta-mcp HTTP server with OAuth?"
        ))
    })?;
    let prm = parse_prm(&body, resource)?;
    let issuer = &prm.authorization_servers[0];
    let (meta_url, body) = get_first(http, &as_metadata_urls(issuer)?)
        .await?
        .ok_or_else(|| {
            BridgeError::Discovery(format!(
                "the authorization server {issuer} publishes no metadata (RFC 8414 / OpenID discovery)"
            ))
        })?;
    let metadata = parse_as_metadata(&body, issuer)?;
    tracing::info!(%prm_url, %meta_url, issuer = %metadata.issuer, "authorization server discovered");
    Ok(Discovered {
        resource: prm.resource,
        metadata,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_challenge_names_the_metadata_url() {
        assert_eq!(
            resource_metadata_param(
                r#"Bearer resource_metadata="https://a.example/.well-known/oauth-protected-resource/mcp", error="invalid_token""#
            )
            .as_deref(),
            Some("https://a.example/.well-known/oauth-protected-resource/mcp")
        );
        assert_eq!(
            resource_metadata_param("bearer realm=x, resource_metadata=https://a.example/m")
                .as_deref(),
            Some("https://a.example/m")
        );
        assert_eq!(resource_metadata_param(r#"Basic realm="x""#), None);
        assert_eq!(resource_metadata_param("Bearer realm=\"x\""), None);
    }

    #[test]
    fn prm_is_looked_up_path_suffixed_then_at_the_root() {
        assert_eq!(
            prm_urls("https://mcp.example.com/mcp"),
            [
                "https://mcp.example.com/.well-known/oauth-protected-resource/mcp",
                "https://mcp.example.com/.well-known/oauth-protected-resource"
            ]
        );
    }

    #[test]
    fn as_metadata_urls_follow_rfc_8414_path_insertion() {
        assert_eq!(
            as_metadata_urls("https://login.example.com/tenant1").unwrap(),
            [
                "https://login.example.com/.well-known/oauth-authorization-server/tenant1",
                "https://login.example.com/.well-known/openid-configuration/tenant1",
                "https://login.example.com/tenant1/.well-known/openid-configuration",
            ]
        );
        assert_eq!(
            as_metadata_urls("http://127.0.0.1:9/").unwrap(),
            [
                "http://127.0.0.1:9/.well-known/oauth-authorization-server",
                "http://127.0.0.1:9/.well-known/openid-configuration",
            ]
        );
        assert!(as_metadata_urls("http://login.example.com").is_err());
    }

    #[test]
    fn prm_for_another_resource_or_without_servers_is_refused() {
        let ok = json!({"resource": "https://a.example/mcp", "authorization_servers": ["https://as.example"]});
        let prm = parse_prm(ok.to_string().as_bytes(), "https://a.example/mcp").unwrap();
        assert_eq!(prm.authorization_servers, ["https://as.example"]);
        let err = parse_prm(ok.to_string().as_bytes(), "https://b.example/mcp").unwrap_err();
        assert!(
            err.to_string().contains("not https://b.example/mcp"),
            "{err}"
        );
        let none = json!({"resource": "https://a.example/mcp", "authorization_servers": []});
        assert!(parse_prm(none.to_string().as_bytes(), "https://a.example/mcp").is_err());
        assert!(parse_prm(b"<html>", "https://a.example/mcp").is_err());
    }

    fn meta(extra: serde_json::Value) -> serde_json::Value {
        let mut m = json!({
            "issuer": "https://as.example",
            "token_endpoint": "https://as.example/token",
        });
        m.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        m
    }

    #[test]
    fn as_metadata_must_name_the_issuer_and_use_https_endpoints() {
        let m = meta(json!({}));
        assert!(parse_as_metadata(m.to_string().as_bytes(), "https://as.example").is_ok());
        let err = parse_as_metadata(m.to_string().as_bytes(), "https://other.example").unwrap_err();
        assert!(
            err.to_string().contains("not https://other.example"),
            "{err}"
        );
        let m = meta(json!({"device_authorization_endpoint": "http://as.example/device"}));
        assert!(parse_as_metadata(m.to_string().as_bytes(), "https://as.example").is_err());
    }

    #[test]
    fn the_configured_method_wins_when_offered_and_pkce_needs_s256() {
        let both = meta(json!({
            "authorization_endpoint": "https://as.example/authorize",
            "device_authorization_endpoint": "https://as.example/device",
            "grant_types_supported": ["authorization_code", "urn:ietf:params:oauth:grant-type:device_code"],
            "code_challenge_methods_supported": ["S256"],
        }));
        let both: AuthServerMetadata = serde_json::from_value(both).unwrap();
        assert_eq!(
            both.choose(LoginMethod::Device).unwrap(),
            LoginMethod::Device
        );
        assert_eq!(
            both.choose(LoginMethod::Browser).unwrap(),
            LoginMethod::Browser
        );

        // No code_challenge_methods_supported (or only plain): no browser login.
        let plain_only: AuthServerMetadata = serde_json::from_value(meta(json!({
            "authorization_endpoint": "https://as.example/authorize",
            "device_authorization_endpoint": "https://as.example/device",
            "grant_types_supported": ["authorization_code", "urn:ietf:params:oauth:grant-type:device_code"],
            "code_challenge_methods_supported": ["plain"],
        })))
        .unwrap();
        assert_eq!(
            plain_only.choose(LoginMethod::Browser).unwrap(),
            LoginMethod::Device
        );

        // Device endpoint without the grant listed: not offered.
        let code_only: AuthServerMetadata = serde_json::from_value(meta(json!({
            "authorization_endpoint": "https://as.example/authorize",
            "device_authorization_endpoint": "https://as.example/device",
            "code_challenge_methods_supported": ["S256"],
        })))
        .unwrap();
        assert_eq!(
            code_only.choose(LoginMethod::Device).unwrap(),
            LoginMethod::Browser
        );

        let neither: AuthServerMetadata = serde_json::from_value(meta(json!({}))).unwrap();
        assert!(neither.choose(LoginMethod::Device).is_err());
    }
}
