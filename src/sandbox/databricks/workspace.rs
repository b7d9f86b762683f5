//! Workspace endpoints of the Databricks emulator besides SQL.
//!
//! - `GET /api/2.0/preview/scim/v2/Me` (the SDKs' `CurrentUserAPI.me()`): for a
//!   user token the sandbox issued
//!   ([`SandboxState::issue_databricks_user_token`](crate::sandbox::SandboxState::issue_databricks_user_token))
//!   a SCIM 2.0 `User` (`id`, `userName`, `displayName`, `emails`, `active`);
//!   for a service principal's OAuth token its own record (`userName` and
//!   `applicationId` = the client id); anything else `401 UNAUTHENTICATED`.
//! - `GET /api/2.0/permissions/warehouses/{id}` (also under
//!   `/permissions/sql/warehouses/`), the warehouse's access control list in
//!   the Permissions API shape (`object_id`, `object_type`,
//!   `access_control_list[{service_principal_name|group_name,
//!   all_permissions[{permission_level, inherited, inherited_from_object}]}]`):
//!   the `admins` group with an inherited `CAN_MANAGE`, plus the service
//!   principal with the fixture's `databricks_warehouse_permission`. An unknown
//!   warehouse is `404 RESOURCE_DOES_NOT_EXIST`. Any live service-principal
//!   token may read it (the sandbox does not model who may read an ACL).

use super::oauth::{digest, tokens};
use super::{ApiError, Emulator, ok};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::sync::Arc;

fn unauthenticated(message: &str) -> Response {
    ApiError::new(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED", message).into_response()
}

/// A stable numeric SCIM id for a user name.
fn scim_id(name: &str) -> String {
    let d = Sha256::digest(name.as_bytes());
    let n = u64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]]);
    (n % 9_000_000_000_000_000 + 1_000_000_000_000_000).to_string()
}

pub(super) async fn scim_me(State(emu): State<Arc<Emulator>>, headers: HeaderMap) -> Response {
    let Some(token) = crate::sandbox::state::bearer_token(&headers).filter(|t| !t.is_empty())
    else {
        return unauthenticated(
            "Credential was not sent or was of an unsupported type for this API.",
        );
    };
    if let Some(user) = emu.state.databricks_user_of(token) {
        return ok(json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "id": scim_id(&user),
            "userName": user,
            "displayName": user.split('@').next().unwrap_or(&user),
            "emails": [{"value": user, "type": "work", "primary": true}],
            "active": true,
        }));
    }
    let known_sp = tokens(&emu).get(&digest(token)).is_some_and(|g| {
        g.epoch >= emu.state.credential_epoch() && std::time::SystemTime::now() < g.expires_at
    });
    if known_sp {
        let id = &emu.state.creds.databricks_client_id;
        return ok(json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "id": scim_id(id),
            "userName": id,
            "applicationId": id,
            "displayName": "immuta-agent",
            "active": true,
        }));
    }
    unauthenticated("Invalid access token.")
}

pub(super) async fn warehouse_permissions(
    State(emu): State<Arc<Emulator>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(e) = emu.authenticate(&headers) {
        return e.into_response();
    }
    if id != emu.state.creds.warehouse_id {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            "RESOURCE_DOES_NOT_EXIST",
            format!("Warehouse {id} does not exist."),
        )
        .into_response();
    }
    let mut acl = vec![json!({
        "group_name": "admins",
        "all_permissions": [{
            "permission_level": "CAN_MANAGE",
            "inherited": true,
            "inherited_from_object": ["/sql/warehouses/"],
        }],
    })];
    let level = emu
        .state
        .settings
        .prerequisites
        .databricks_warehouse_permission
        .trim()
        .to_string();
    if !level.is_empty() {
        acl.push(json!({
            "service_principal_name": emu.state.creds.databricks_client_id,
            "display_name": "immuta-agent",
            "all_permissions": [{"permission_level": level, "inherited": false}],
        }));
    }
    ok(json!({
        "object_id": format!("/sql/warehouses/{id}"),
        "object_type": "warehouses",
        "access_control_list": acl,
    }))
}
