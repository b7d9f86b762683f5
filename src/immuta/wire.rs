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

/// Whether a vended role can be used yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VendStatus {
    Ready,
    Pending,
    Failed,
    Expired,
}

/// Answer of `POST /agent/obo/roles` and `GET /agent/obo/roles/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VendResponse {
    pub id: String,
    pub status: VendStatus,
    pub user_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    #[serde(default)]
    pub roles: VendedRoles,
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
        assert_eq!(v.status, VendStatus::Ready);
        let sf = v.roles.snowflake.unwrap();
        assert_eq!(sf.role_name, "IMMUTA_OBO_1");
        assert_eq!(sf.account_locator(), "cna12345");
        assert_eq!(v.roles.databricks.unwrap().native_role_id, "123");
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
