//! `immuta-mcp check` as the operator's doctor: the prerequisites Immuta's
//! guide ("Connecting the agent to the data platform") lists, verified from
//! the agent's side, each failure with the guide's statement that fixes it;
//! and `check --as USER`, one governed `SELECT 1` per platform for that user.
//!
//! Snowflake, under the agent's key-pair JWT:
//! - `DESC USER "<agent>"`: `TYPE` must be `SERVICE` (fix `ALTER USER ... SET
//!   TYPE = SERVICE`); `RSA_PUBLIC_KEY_FP` (or `RSA_PUBLIC_KEY_2_FP`) must be the
//!   configured key's `SHA256:` fingerprint (fix `ALTER USER ... SET
//!   RSA_PUBLIC_KEY = '<the configured key's public half>'`; a refused JWT gets
//!   the same fix); `DEFAULT_ROLE` names the Immuta-created agent role the
//!   key-pair session runs as.
//! - `SHOW PARAMETERS LIKE 'NETWORK_POLICY' IN USER "<agent>"`: a non-empty
//!   value (fix: the guide's `CREATE NETWORK POLICY` + `ALTER USER ... SET
//!   NETWORK_POLICY`).
//! - `SHOW GRANTS ON USER "<agent>"`: `MODIFY PROGRAMMATIC AUTHENTICATION
//!   METHODS` granted to that role (fix: the guide's `GRANT`).
//! - `SHOW GRANTS TO ROLE "<role>"`: `USAGE` on `snowflake.default_warehouse`
//!   (fix: the guide's `GRANT USAGE ON WAREHOUSE`).
//!
//! Databricks: the warehouse's Permissions API ACL read with a token of the
//! service principal itself must give it `CAN_USE` (or more); fix: the guide's
//! `GRANT USAGE ON WAREHOUSE ... TO SERVICE PRINCIPAL`.
//!
//! A statement the agent may not run (e.g. `SHOW GRANTS ON USER` without
//! the privilege to see them) is reported as "could not verify" with the fix,
//! not as a pass.

use crate::app::CheckLine;
use crate::config::Config;
use crate::databricks::DatabricksGoverned;
use crate::databricks::permissions::WarehouseAccess;
use crate::query::{CallContext, GovernedQuery, QueryRequest};
use crate::result::ResultSet;
use crate::snowflake::SnowflakeGoverned;
use std::sync::Arc;

fn line(component: &'static str, ok: bool, message: String, fix: Option<String>) -> CheckLine {
    CheckLine {
        component,
        ok,
        message,
        fix,
    }
}

/// The text of column `name` in `row` (`None` for SQL NULL or Snowflake's `null` text).
fn cell(rs: &ResultSet, row: &[serde_json::Value], name: &str) -> Option<String> {
    let i = rs
        .columns
        .iter()
        .position(|c| c.name.eq_ignore_ascii_case(name))?;
    match row.get(i)? {
        serde_json::Value::String(s) if s != "null" => Some(s.clone()),
        serde_json::Value::Null => None,
        serde_json::Value::String(_) => None,
        other => Some(other.to_string()),
    }
}

/// A Snowflake identifier in double quotes (`"` doubled).
fn quoted(ident: &str) -> String {
    crate::sql_ident::quote(crate::result::Platform::Snowflake, ident)
}

/// The Snowflake prerequisites (see the module doc).
pub async fn snowflake(sf: &SnowflakeGoverned) -> Vec<CheckLine> {
    let (agent, public_key) = sf.agent_key();
    let agent_q = quoted(agent);
    let key_fix = format!("ALTER USER {agent_q} SET RSA_PUBLIC_KEY = '{public_key}';");
    let mut lines = Vec::new();
    let desc = match sf.run_as_agent(&format!("DESC USER {agent_q}")).await {
        Err(e) => return vec![line("snowflake.agent", false, e.to_string(), None)],
        Ok(Err(e)) if e.is_unauthorized() => {
            return vec![line(
                "snowflake.key",
                false,
                format!(
                    "Snowflake refused the agent's key-pair JWT ({e}): the public key registered on user {agent} is not the one of the configured key (fingerprint {})",
                    sf.fingerprint()
                ),
                Some(key_fix),
            )];
        }
        Ok(Err(e)) => {
            return vec![line(
                "snowflake.agent",
                false,
                format!("DESC USER {agent_q} failed: {e}"),
                None,
            )];
        }
        Ok(Ok(rs)) => rs,
    };
    let property = |name: &str| {
        desc.rows
            .iter()
            .find(|r| cell(&desc, r, "property").is_some_and(|p| p.eq_ignore_ascii_case(name)))
            .and_then(|r| cell(&desc, r, "value"))
    };
    match property("TYPE") {
        Some(t) if t.eq_ignore_ascii_case("SERVICE") => lines.push(line(
            "snowflake.user_type",
            true,
            format!("agent user {agent} is TYPE = SERVICE"),
            None,
        )),
        other => lines.push(line(
            "snowflake.user_type",
            false,
            format!(
                "agent user {agent} is TYPE = {}, not SERVICE",
                other.as_deref().unwrap_or("NULL")
            ),
            Some(format!("ALTER USER {agent_q} SET TYPE = SERVICE;")),
        )),
    }
    let fingerprints = [
        property("RSA_PUBLIC_KEY_FP"),
        property("RSA_PUBLIC_KEY_2_FP"),
    ];
    if fingerprints.iter().flatten().any(|f| f == sf.fingerprint()) {
        lines.push(line(
            "snowflake.key",
            true,
            format!(
                "RSA_PUBLIC_KEY_FP matches the configured key ({})",
                sf.fingerprint()
            ),
            None,
        ));
    } else {
        lines.push(line(
            "snowflake.key",
            false,
            format!(
                "RSA_PUBLIC_KEY_FP of {agent} is {}, not the configured key's {}",
                fingerprints[0].as_deref().unwrap_or("unset"),
                sf.fingerprint()
            ),
            Some(key_fix),
        ));
    }
    let policy = sf
        .run_as_agent(&format!(
            "SHOW PARAMETERS LIKE 'NETWORK_POLICY' IN USER {agent_q}"
        ))
        .await;
    let policy_fix = format!(
        "CREATE NETWORK POLICY immuta_agent_policy ALLOWED_IP_LIST = ('0.0.0.0/0') COMMENT = 'Required for Immuta agent PAT creation';\n\
         ALTER USER {agent_q} SET NETWORK_POLICY = immuta_agent_policy;\n\
         (restrict ALLOWED_IP_LIST to your ranges in production)"
    );
    lines.push(match policy {
        Ok(Ok(rs)) => match rs.rows.first().and_then(|r| cell(&rs, r, "value")) {
            Some(p) if !p.trim().is_empty() => line(
                "snowflake.network_policy",
                true,
                format!("agent user {agent} has network policy {p}"),
                None,
            ),
            _ => line(
                "snowflake.network_policy",
                false,
                format!("agent user {agent} has no network policy: Snowflake refuses to create its programmatic access tokens"),
                Some(policy_fix),
            ),
        },
        Ok(Err(e)) => line(
            "snowflake.network_policy",
            false,
            format!("could not verify the network policy: {e}"),
            Some(policy_fix),
        ),
        Err(e) => line("snowflake.network_policy", false, e.to_string(), None),
    });
    let Some(role) = property("DEFAULT_ROLE") else {
        lines.push(line(
            "snowflake.agent_role",
            false,
            format!("agent user {agent} has no DEFAULT_ROLE, so the key-pair session has no role to hold the grants below"),
            Some(format!(
                "ALTER USER {agent_q} SET DEFAULT_ROLE = \"<agent_role_created_by_immuta>\";"
            )),
        ));
        return lines;
    };
    let role_q = quoted(&role);
    let pat_fix = format!(
        "GRANT MODIFY PROGRAMMATIC AUTHENTICATION METHODS ON USER {agent_q} TO ROLE {role_q};"
    );
    lines.push(match sf.run_as_agent(&format!("SHOW GRANTS ON USER {agent_q}")).await {
        Ok(Ok(rs)) => {
            let held = rs.rows.iter().any(|r| {
                cell(&rs, r, "privilege").is_some_and(|p| {
                    p.eq_ignore_ascii_case("MODIFY PROGRAMMATIC AUTHENTICATION METHODS")
                }) && cell(&rs, r, "grantee_name").is_some_and(|g| g == role)
            });
            if held {
                line(
                    "snowflake.pat_grant",
                    true,
                    format!("role {role} holds MODIFY PROGRAMMATIC AUTHENTICATION METHODS on user {agent}"),
                    None,
                )
            } else {
                line(
                    "snowflake.pat_grant",
                    false,
                    format!("role {role} does not hold MODIFY PROGRAMMATIC AUTHENTICATION METHODS on user {agent}: the agent cannot create programmatic access tokens"),
                    Some(pat_fix),
                )
            }
        }
        Ok(Err(e)) => line(
            "snowflake.pat_grant",
            false,
            format!("could not verify MODIFY PROGRAMMATIC AUTHENTICATION METHODS: {e}"),
            Some(pat_fix),
        ),
        Err(e) => line("snowflake.pat_grant", false, e.to_string(), None),
    });
    let Some(warehouse) = sf.default_warehouse() else {
        lines.push(line(
            "snowflake.warehouse",
            true,
            "not checked: snowflake.default_warehouse is not set".into(),
            None,
        ));
        return lines;
    };
    let warehouse_fix = format!(
        "GRANT USAGE ON WAREHOUSE {} TO ROLE {role_q};",
        quoted(warehouse)
    );
    lines.push(
        match sf
            .run_as_agent(&format!("SHOW GRANTS TO ROLE {role_q}"))
            .await
        {
            Ok(Ok(rs)) => {
                let held = rs.rows.iter().any(|r| {
                    cell(&rs, r, "privilege").is_some_and(|p| p.eq_ignore_ascii_case("USAGE"))
                        && cell(&rs, r, "granted_on")
                            .is_some_and(|o| o.eq_ignore_ascii_case("WAREHOUSE"))
                        && cell(&rs, r, "name").is_some_and(|n| n == warehouse)
                });
                if held {
                    line(
                        "snowflake.warehouse",
                        true,
                        format!("role {role} holds USAGE on warehouse {warehouse}"),
                        None,
                    )
                } else {
                    line(
                        "snowflake.warehouse",
                        false,
                        format!("role {role} does not hold USAGE on warehouse {warehouse}"),
                        Some(warehouse_fix),
                    )
                }
            }
            Ok(Err(e)) => line(
                "snowflake.warehouse",
                false,
                format!("could not verify USAGE on warehouse {warehouse}: {e}"),
                Some(warehouse_fix),
            ),
            Err(e) => line("snowflake.warehouse", false, e.to_string(), None),
        },
    );
    lines
}

/// `identity.source = "databricks_apps"`: the workspace's SCIM `Me` answers (a
/// request without a token must get 401 there: the endpoint exists and wants one).
pub async fn apps_identity(cfg: &Config) -> CheckLine {
    let apps = &cfg.identity.databricks_apps;
    let header = apps.user_header.header();
    if !apps.require_forwarded_token {
        return line(
            "identity",
            true,
            format!(
                "HTTP users from the Databricks Apps proxy's {header} header, trusted without a forwarded token (require_forwarded_token = false)"
            ),
            None,
        );
    }
    let workspace = cfg
        .identity
        .apps_workspace_url(cfg.databricks.as_ref())
        .unwrap_or_default()
        .trim_end_matches('/');
    let me = format!(
        "{workspace}{}",
        crate::identity::databricks_apps::SCIM_ME_PATH
    );
    let probe = match crate::http_client::build_for(cfg) {
        Ok(http) => http.get(&me).send().await,
        Err(e) => return line("identity", false, e.to_string(), None),
    };
    match probe.map(|r| r.status().as_u16()) {
        Ok(401) => line(
            "identity",
            true,
            format!(
                "HTTP users from the Databricks Apps proxy's {header} header, confirmed by {me} with the forwarded token (it answers)"
            ),
            None,
        ),
        Ok(status) => line(
            "identity",
            false,
            format!(
                "{me} answered HTTP {status} without a token (expected 401): is the workspace URL right?"
            ),
            None,
        ),
        Err(e) => line(
            "identity",
            false,
            format!(
                "{me} unreachable: {}",
                crate::retry::describe_transport_error(&e)
            ),
            None,
        ),
    }
}

/// The Databricks prerequisite: the service principal can use the warehouse.
pub async fn databricks(db: &DatabricksGoverned) -> Vec<CheckLine> {
    let (client_id, warehouse_id) = db.principal_and_warehouse();
    let fix = format!(
        "GRANT USAGE ON WAREHOUSE `<name of warehouse {warehouse_id}>` TO SERVICE PRINCIPAL `{client_id}`;\n\
         (or, in the workspace: SQL Warehouses → the warehouse → Permissions → add the service principal with Can use)"
    );
    let component = "databricks.warehouse";
    vec![match db.warehouse_access().await {
        Ok(access) if access.can_use() => line(
            component,
            true,
            format!("service principal {client_id} can use warehouse {warehouse_id} ({access:?})"),
            None,
        ),
        Ok(WarehouseAccess::Levels(levels)) => line(
            component,
            false,
            format!(
                "service principal {client_id} cannot use warehouse {warehouse_id} (its levels: {})",
                if levels.is_empty() {
                    "none".to_string()
                } else {
                    levels.join(", ")
                }
            ),
            Some(fix),
        ),
        Ok(WarehouseAccess::NotVisible(status, text)) => line(
            component,
            false,
            format!(
                "could not read the permissions of warehouse {warehouse_id} with the service principal's token (HTTP {status}: {text})"
            ),
            Some(fix),
        ),
        Err(e) => line(component, false, e.to_string(), None),
    }]
}

/// `check --as USER`: one governed `SELECT 1` per configured platform for `user`
/// (vend, credential, the identity the platform applied), then the PATs and, with
/// `immuta.drop_unused_vends`, the vends it created are removed.
pub async fn as_user(
    cfg: &Config,
    platforms: &crate::app::Platforms,
    user: &str,
) -> Vec<CheckLine> {
    let mut lines = Vec::new();
    let request = QueryRequest {
        sql: "SELECT 1".into(),
        database: None,
        schema: None,
        warehouse: None,
        max_rows: 1,
        max_bytes: 64 * 1024,
        parameters: Vec::new(),
    };
    let mut vend_ids = Vec::new();
    let targets: [(&'static str, Option<Arc<dyn GovernedQuery>>); 2] = [
        (
            "snowflake.as_user",
            platforms
                .snowflake
                .clone()
                .map(|s| s as Arc<dyn GovernedQuery>),
        ),
        (
            "databricks.as_user",
            platforms
                .databricks
                .clone()
                .map(|d| d as Arc<dyn GovernedQuery>),
        ),
    ];
    for (component, platform) in targets {
        let Some(platform) = platform else { continue };
        let ctx = CallContext::new(user, "check");
        let outcome = platform.query(&ctx, &request).await;
        let facts = ctx.facts();
        vend_ids.extend(facts.vend_ids.iter().cloned());
        lines.push(match outcome {
            Ok(rs) => line(
                component,
                true,
                format!(
                    "as {user}: vended {}; SELECT 1 returned {} row(s) (statement {}); the platform applied {}",
                    facts.vended_role.as_deref().unwrap_or("-"),
                    rs.row_count,
                    rs.statement_id,
                    facts.applied_identity.as_deref().unwrap_or("(identity not verified: verify_identity = false)")
                ),
                None,
            ),
            Err(e) => line(
                component,
                false,
                format!(
                    "as {user}: {e} (vended {})",
                    facts.vended_role.as_deref().unwrap_or("nothing")
                ),
                None,
            ),
        });
    }
    if let Some(sf) = &platforms.snowflake {
        sf.shutdown().await;
    }
    let drop_vends = cfg.immuta.as_ref().is_some_and(|i| i.drop_unused_vends);
    if let Some(immuta) = &platforms.immuta
        && drop_vends
    {
        for id in &vend_ids {
            if let Err(e) = immuta.drop_roles(id).await {
                tracing::warn!(vend_id = %id, error = %e, "check --as could not drop its vend");
            }
        }
    }
    lines.push(line(
        "cleanup",
        true,
        format!(
            "{}{}",
            if platforms.snowflake.is_some() {
                "removed the programmatic access tokens this check created; "
            } else {
                ""
            },
            if drop_vends {
                format!("dropped its {} vend(s)", vend_ids.len())
            } else {
                "its vended roles expire with immuta.ttl_minutes (immuta.drop_unused_vends is off)"
                    .to_string()
            }
        ),
        None,
    ));
    lines
}
