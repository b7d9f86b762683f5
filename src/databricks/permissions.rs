//! The SQL warehouse's access control list, as `check` reads it to see whether
//! the agent's service principal can use the warehouse (the Immuta guide:
//! "Immuta does not manage access to compute ... you must manually assign a
//! warehouse").
//!
//! `GET /api/2.0/permissions/warehouses/{warehouse_id}` (Databricks REST API,
//! "Get SQL warehouse permissions") answers `{object_id, object_type,
//! access_control_list: [{user_name | group_name | service_principal_name,
//! all_permissions: [{permission_level, inherited, inherited_from_object}]}]}`.
//! Levels that let a principal run statements: `CAN_USE`, `CAN_MONITOR`,
//! `CAN_MANAGE`, `IS_OWNER` (`CAN_VIEW` does not).

use super::DatabricksError;
use crate::secret::Secret;
use serde::Deserialize;

/// Levels that allow running statements on the warehouse.
pub const USABLE_LEVELS: [&str; 4] = ["CAN_USE", "CAN_MONITOR", "CAN_MANAGE", "IS_OWNER"];

/// What the service principal holds on the warehouse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WarehouseAccess {
    /// Its direct or inherited levels (empty: it is not in the list).
    Levels(Vec<String>),
    /// The API refused to show the list (`HTTP status`, message).
    NotVisible(u16, String),
}

impl WarehouseAccess {
    /// Whether one of the levels lets the principal run statements.
    pub fn can_use(&self) -> bool {
        matches!(self, WarehouseAccess::Levels(levels) if levels.iter().any(|l| USABLE_LEVELS.contains(&l.as_str())))
    }
}

#[derive(Debug, Deserialize)]
struct Acl {
    #[serde(default)]
    access_control_list: Vec<AclEntry>,
}

#[derive(Debug, Deserialize)]
struct AclEntry {
    service_principal_name: Option<String>,
    #[serde(default)]
    all_permissions: Vec<Permission>,
}

#[derive(Debug, Deserialize)]
struct Permission {
    permission_level: Option<String>,
}

/// Read the warehouse's ACL and pick the service principal's levels.
pub async fn warehouse_access(
    http: &reqwest::Client,
    host: &str,
    token: &Secret,
    warehouse_id: &str,
    client_id: &str,
) -> Result<WarehouseAccess, DatabricksError> {
    let url = format!("{host}/api/2.0/permissions/warehouses/{warehouse_id}");
    let response = http
        .get(&url)
        .bearer_auth(token.expose())
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| {
            DatabricksError::Check(format!(
                "cannot reach {url}: {}",
                crate::retry::describe_transport_error(&e)
            ))
        })?;
    let status = response.status().as_u16();
    if status == 403 || status == 404 {
        let text: String = response
            .text()
            .await
            .unwrap_or_default()
            .chars()
            .take(300)
            .collect();
        return Ok(WarehouseAccess::NotVisible(status, text));
    }
    if !response.status().is_success() {
        return Err(DatabricksError::Check(format!(
            "{url} answered HTTP {status}"
        )));
    }
    let acl: Acl = response
        .json()
        .await
        .map_err(|e| DatabricksError::Check(format!("{url} did not answer an ACL: {e}")))?;
    let levels = acl
        .access_control_list
        .into_iter()
        .filter(|e| e.service_principal_name.as_deref() == Some(client_id))
        .flat_map(|e| e.all_permissions)
        .filter_map(|p| p.permission_level)
        .collect();
    Ok(WarehouseAccess::Levels(levels))
}
