//! Wire shapes of Immuta's agent OBO API, shared by the client and the sandbox.
//!
//! The request body and full answer of `POST /agent/obo/roles` are not public
//! in detail (private preview), so this is the ONE place that encodes them:
//! change a field name here and both the client and the emulator follow.

use serde::{Deserialize, Serialize};

/// Path of the vend endpoint.
pub const VEND_PATH: &str = "/agent/obo/roles";

/// Body of `POST /agent/obo/roles`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VendRequest {
    /// The Immuta user id of the end user the agent acts for.
    pub user_id: String,
    /// How long the vended role lives, in minutes.
    pub ttl_minutes: u32,
}

/// Path of the API-key exchange of Immuta's bearer-token method.
pub const AUTHENTICATE_PATH: &str = "/bim/apikey/authenticate";

/// Body of `POST /bim/apikey/authenticate`: `{"apikey": "<key>"}` (Immuta's
/// "HTTP API Authentication" page, 2021.x and 2.8 docs; the SaaS page sends the
/// key in `Authorization` instead, so the client sends both).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuthenticateRequest {
    pub apikey: String,
}

/// Answer of `POST /bim/apikey/authenticate`. The public pages only say it
/// "includes your bearer token"; Immuta's user authenticate answer names it
/// `token` (with `tokenExpiration`), OAuth-style servers `access_token`:
/// both are accepted.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct AuthenticateResponse {
    #[serde(alias = "access_token")]
    pub token: String,
    #[serde(
        default,
        rename = "tokenExpiration",
        skip_serializing_if = "Option::is_none"
    )]
    pub token_expiration: Option<String>,
}

impl std::fmt::Debug for AuthenticateResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthenticateResponse")
            .field("token", &"<redacted>")
            .field("token_expiration", &self.token_expiration)
            .finish()
    }
}

/// Whether a vended role can be used yet. Read in any casing (`READY`,
/// `Ready`), since the private-preview answer is not public.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VendStatus {
    Ready,
    Pending,
    Failed,
    Expired,
}

impl VendStatus {
    /// Parse a status in any casing.
    pub fn parse(text: &str) -> Option<VendStatus> {
        match text.trim().to_ascii_lowercase().as_str() {
            "ready" => Some(VendStatus::Ready),
            "pending" => Some(VendStatus::Pending),
            "failed" => Some(VendStatus::Failed),
            "expired" => Some(VendStatus::Expired),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for VendStatus {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        VendStatus::parse(&text).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown vend status {text:?} (expected ready, pending, failed or expired)"
            ))
        })
    }
}

/// Answer of `POST /agent/obo/roles` and `GET /agent/obo/roles/{id}`.
///
/// Near-misses of the documented shape are tolerated: `ttl` for
/// `ttlMinutes`, any casing of `status`, and no `status` at all (then a
/// non-empty `roles` means ready, see [`VendResponse::state`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VendResponse {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<VendStatus>,
    pub user_id: String,
    /// The agent the vend belongs to, when the answer names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// Lifetime of the vended roles, minutes (`ttlMinutes` or `ttl`).
    #[serde(default, alias = "ttl", skip_serializing_if = "Option::is_none")]
    pub ttl_minutes: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    #[serde(default)]
    pub roles: VendedRoles,
}

impl VendResponse {
    /// The vend's state: `status` when given, else ready once roles are present.
    pub fn state(&self) -> VendStatus {
        match self.status {
            Some(s) => s,
            None if self.roles.is_empty() => VendStatus::Pending,
            None => VendStatus::Ready,
        }
    }
}

/// Answer of `GET /agent/obo/roles/{agent id}` when `{id}` is the agent: the
/// agent's vends, as `data` (or `vends`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentStatus {
    #[serde(default, alias = "vends")]
    pub data: Vec<VendResponse>,
}

/// The per-platform roles vended for one user.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VendedRoles {
    #[serde(rename = "Snowflake", default, skip_serializing_if = "Option::is_none")]
    pub snowflake: Option<SnowflakeRole>,
    #[serde(
        rename = "Databricks",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub databricks: Option<DatabricksGroup>,
}

impl VendedRoles {
    /// True when no platform role is present.
    pub fn is_empty(&self) -> bool {
        self.snowflake.is_none() && self.databricks.is_none()
    }
}

/// The ephemeral Snowflake role vended for the user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SnowflakeRole {
    pub role_name: String,
    /// e.g. `cna12345.us-east-1.snowflakecomputing.com`; first label = account locator.
    pub connection_key: String,
}

impl SnowflakeRole {
    /// The account locator: the first DNS label of `connectionKey`.
    pub fn account_locator(&self) -> &str {
        self.connection_key.split('.').next().unwrap_or_default()
    }
}

/// The exclusive Databricks group vended for the user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DatabricksGroup {
    /// Group display name (for audit only).
    pub role_name: String,
    /// Group id: the value for `assume_group`.
    pub native_role_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_key: Option<String>,
}

/// Error body: `{"message": ...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub message: String,
}

/// One vend event of `GET /agent/{agentId}/activity`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActivityEvent {
    pub id: String,
    pub user_id: String,
    pub created_at: String,
    #[serde(default)]
    pub roles: VendedRoles,
}

/// Answer of `GET /agent/{agentId}/activity`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ActivityPage {
    pub data: Vec<ActivityEvent>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_answer() {
        let body = r#"{"id":"v1","status":"ready","userId":"alice@example.com","expiresAt":"2026-01-01T00:00:00Z",
          "roles":{"Snowflake":{"roleName":"IMMUTA_OBO_1","connectionKey":"cna12345.us-east-1.snowflakecomputing.com"},
                   "Databricks":{"roleName":"immuta_obo_1","nativeRoleId":"123","connectionKey":"dbc.example"}}}"#;
        let v: VendResponse = serde_json::from_str(body).unwrap();
        assert_eq!(v.state(), VendStatus::Ready);
        let sf = v.roles.snowflake.unwrap();
        assert_eq!(sf.role_name, "IMMUTA_OBO_1");
        assert_eq!(sf.account_locator(), "cna12345");
        assert_eq!(v.roles.databricks.unwrap().native_role_id, "123");
    }

    #[test]
    fn tolerates_near_misses_of_the_answer() {
        let roles = r#""roles":{"Snowflake":{"roleName":"R","connectionKey":"a.b"}}"#;
        let upper: VendResponse = serde_json::from_str(&format!(
            r#"{{"id":"v","status":"READY","userId":"u","ttl":5,{roles}}}"#
        ))
        .unwrap();
        assert_eq!(upper.state(), VendStatus::Ready);
        assert_eq!(upper.ttl_minutes, Some(5));
        let mixed: VendResponse =
            serde_json::from_str(r#"{"id":"v","status":"Pending","userId":"u","ttlMinutes":7}"#)
                .unwrap();
        assert_eq!(mixed.state(), VendStatus::Pending);
        assert_eq!(mixed.ttl_minutes, Some(7));
        let bare: VendResponse =
            serde_json::from_str(&format!(r#"{{"id":"v","userId":"u",{roles}}}"#)).unwrap();
        assert_eq!(bare.status, None);
        assert_eq!(bare.state(), VendStatus::Ready);
        let empty: VendResponse = serde_json::from_str(r#"{"id":"v","userId":"u"}"#).unwrap();
        assert_eq!(empty.state(), VendStatus::Pending);
        assert!(
            serde_json::from_str::<VendResponse>(r#"{"id":"v","userId":"u","status":"odd"}"#)
                .is_err()
        );
    }

    #[test]
    fn authenticate_answer_accepts_token_or_access_token_and_hides_it() {
        let a: AuthenticateResponse = serde_json::from_str(r#"{"token":"t1"}"#).unwrap();
        assert_eq!(a.token, "t1");
        let b: AuthenticateResponse =
            serde_json::from_str(r#"{"access_token":"t2","token_type":"Bearer"}"#).unwrap();
        assert_eq!(b.token, "t2");
        assert!(!format!("{b:?}").contains("t2"));
    }

    #[test]
    fn request_uses_camel_case() {
        let v = serde_json::to_value(VendRequest {
            user_id: "a".into(),
            ttl_minutes: 60,
        })
        .unwrap();
        assert_eq!(v, serde_json::json!({"userId": "a", "ttlMinutes": 60}));
    }
}
