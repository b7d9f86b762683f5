//! OAuth scopes on the HTTP transport: which scopes a verified token granted,
//! which ones the operator requires (for every request, and per tool), and the
//! `403 insufficient_scope` answer (RFC 6750 section 3.1) when one is missing.
//!
//! The granted scopes come from the token's `scope` claim (RFC 9068: a
//! space-separated string) or `scp` (Microsoft Entra ID: a string or a list).
//! Per-tool scopes are checked before the MCP service sees the request, by
//! reading the JSON-RPC body of a `tools/call`, so the client gets an HTTP 403
//! with a challenge naming the scopes to ask for.

use crate::identity::VerifiedUser;
use axum::Json;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Largest JSON-RPC body read to find the tool being called (rmcp's own limit).
const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// The scopes a token's claims grant (`scope` and `scp`, string or list).
pub fn granted(claims: &Map<String, Value>) -> Vec<String> {
    let mut scopes = Vec::new();
    for claim in ["scope", "scp"] {
        match claims.get(claim) {
            Some(Value::String(list)) => scopes.extend(list.split(' ').map(str::to_string)),
            Some(Value::Array(items)) => {
                scopes.extend(items.iter().filter_map(Value::as_str).map(str::to_string))
            }
            _ => {}
        }
    }
    scopes.retain(|s| !s.is_empty());
    scopes.sort();
    scopes.dedup();
    scopes
}

/// Check the configured scopes: each a valid RFC 6749 scope-token, each
/// per-tool key a tool this server has. Errors name the key.
pub fn validate(
    required: &[String],
    per_tool: &BTreeMap<String, Vec<String>>,
) -> Result<(), (String, String)> {
    let scope_token = |s: &str| {
        // RFC 6749 section 3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
        !s.is_empty()
            && s.bytes()
                .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
    };
    if let Some(bad) = required.iter().find(|s| !scope_token(s)) {
        return Err((
            "identity.oauth.required_scopes".into(),
            format!(
                "{bad:?} is not a valid OAuth scope (printable ASCII, no space, quote or backslash)"
            ),
        ));
    }
    for (tool, scopes) in per_tool {
        let key = format!("identity.oauth.tool_scopes.{tool}");
        if crate::server::ToolName::parse(tool).is_none() {
            return Err((
                key,
                format!(
                    "there is no tool named {tool:?}; tools: {}",
                    crate::server::TOOL_NAMES.join(", ")
                ),
            ));
        }
        if let Some(bad) = scopes.iter().find(|s| !scope_token(s)) {
            return Err((key, format!("{bad:?} is not a valid OAuth scope")));
        }
    }
    Ok(())
}

/// What the operator requires.
#[derive(Debug, Clone, Default)]
pub struct ScopePolicy {
    /// Needed by every request.
    pub required: Vec<String>,
    /// Needed, in addition, by a call of the named tool.
    pub per_tool: BTreeMap<String, Vec<String>>,
    /// Absolute URL of the protected-resource metadata, for the challenge.
    pub resource_metadata_url: String,
}

impl ScopePolicy {
    /// Every scope the policy mentions (for `scopes_supported`), sorted; empty when none.
    pub fn supported(&self) -> Vec<String> {
        let mut all: Vec<String> = self
            .required
            .iter()
            .chain(self.per_tool.values().flatten())
            .cloned()
            .collect();
        all.sort();
        all.dedup();
        all
    }

    fn is_empty(&self) -> bool {
        self.required.is_empty() && self.per_tool.values().all(Vec::is_empty)
    }

    /// The scopes `tool` (if any) needs that `granted` lacks.
    fn missing(&self, granted: &[String], tool: Option<&str>) -> Vec<String> {
        let needed = self.required.iter().chain(
            tool.and_then(|t| self.per_tool.get(t))
                .into_iter()
                .flatten(),
        );
        let mut missing: Vec<String> = needed.filter(|s| !granted.contains(s)).cloned().collect();
        missing.dedup();
        missing
    }
}

/// Middleware after the bearer check: 403 when the token lacks a required
/// scope or a scope of the tool it calls.
pub async fn require_scopes(
    State(policy): State<Arc<ScopePolicy>>,
    request: Request,
    next: Next,
) -> Response {
    if policy.is_empty() {
        return next.run(request).await;
    }
    let granted = request
        .extensions()
        .get::<VerifiedUser>()
        .map(|u| u.scopes.clone())
        .unwrap_or_default();
    let missing = policy.missing(&granted, None);
    if !missing.is_empty() {
        return insufficient_scope(&policy, &missing, None);
    }
    if policy.per_tool.is_empty() || request.method() != http::Method::POST {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(b) => b,
        Err(_) => {
            return (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("Payload Too Large: request body exceeds {MAX_BODY_BYTES} bytes"),
            )
                .into_response();
        }
    };
    for tool in called_tools(&bytes) {
        let missing = policy.missing(&granted, Some(&tool));
        if !missing.is_empty() {
            return insufficient_scope(&policy, &missing, Some(&tool));
        }
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// Names of the tools a JSON-RPC body calls (one message or a batch).
fn called_tools(body: &[u8]) -> Vec<String> {
    let Ok(message) = serde_json::from_slice::<Value>(body) else {
        return Vec::new();
    };
    let messages = match message {
        Value::Array(batch) => batch,
        one => vec![one],
    };
    messages
        .iter()
        .filter(|m| m["method"] == "tools/call")
        .filter_map(|m| m["params"]["name"].as_str().map(str::to_string))
        .collect()
}

/// `403` with `WWW-Authenticate: Bearer error="insufficient_scope", scope="..."`.
fn insufficient_scope(policy: &ScopePolicy, missing: &[String], tool: Option<&str>) -> Response {
    let scope = missing.join(" ");
    let description = match tool {
        Some(tool) => format!("calling {tool} needs the scope(s) {scope}"),
        None => format!("this server needs the scope(s) {scope}"),
    };
    let challenge = format!(
        "Bearer error=\"insufficient_scope\", scope=\"{scope}\", resource_metadata=\"{}\", error_description=\"{description}\"",
        policy.resource_metadata_url
    );
    tracing::info!(tool = ?tool, missing = %scope, "request refused: insufficient scope");
    let mut response = (
        StatusCode::FORBIDDEN,
        Json(json!({
            "error": "insufficient_scope",
            "error_description": description,
            "scope": scope,
        })),
    )
        .into_response();
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn scopes_come_from_scope_and_scp_in_either_form() {
        assert_eq!(
            granted(&claims(json!({"scope": "mcp sql:read  sql:read"}))),
            ["mcp", "sql:read"]
        );
        assert_eq!(
            granted(&claims(json!({"scp": ["a", 3, "b"], "scope": "c"}))),
            ["a", "b", "c"]
        );
        assert!(granted(&claims(json!({"scope": 7}))).is_empty());
    }

    #[test]
    fn missing_combines_required_and_tool_scopes() {
        let policy = ScopePolicy {
            required: vec!["mcp".into()],
            per_tool: BTreeMap::from([("query_snowflake".into(), vec!["sf".into()])]),
            resource_metadata_url: String::new(),
        };
        let have = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(policy.missing(&have(&[]), None), ["mcp"]);
        assert!(policy.missing(&have(&["mcp"]), Some("whoami")).is_empty());
        assert_eq!(
            policy.missing(&have(&["mcp"]), Some("query_snowflake")),
            ["sf"]
        );
        assert_eq!(policy.supported(), ["mcp", "sf"]);
    }

    #[test]
    fn configured_scopes_and_tools_are_validated() {
        assert!(validate(&["mcp:tools".into()], &BTreeMap::new()).is_ok());
        let (key, _) = validate(&["two words".into()], &BTreeMap::new()).unwrap_err();
        assert_eq!(key, "identity.oauth.required_scopes");
        let per_tool = BTreeMap::from([("drop_all".to_string(), vec!["x".to_string()])]);
        let (key, message) = validate(&[], &per_tool).unwrap_err();
        assert_eq!(key, "identity.oauth.tool_scopes.drop_all");
        assert!(message.contains("query_snowflake"), "{message}");
    }

    #[test]
    fn the_called_tool_is_read_from_one_message_or_a_batch() {
        let one = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami"}}"#;
        assert_eq!(called_tools(one), ["whoami"]);
        let batch =
            br#"[{"method":"tools/list"},{"method":"tools/call","params":{"name":"list_tables"}}]"#;
        assert_eq!(called_tools(batch), ["list_tables"]);
        assert!(called_tools(b"not json").is_empty());
    }
}
