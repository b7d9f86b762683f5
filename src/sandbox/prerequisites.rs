//! The `[agent]` table of a fixture: which of the Immuta guide's
//! prerequisites for the agent accounts hold in the sandbox, so `check` can be
//! shown each one unmet ("Connecting the agent to the data platform").
//!
//! ```toml
//! [agent]
//! snowflake_user_type = "PERSON"          # TYPE of the agent user ("SERVICE" by default; "" = NULL)
//! snowflake_public_key = "other"          # "configured" (default), "other" or "none"
//! snowflake_network_policy = ""           # the user's NETWORK_POLICY ("IMMUTA_AGENT_POLICY" by default; "" = none)
//! snowflake_modify_pat_grant = false      # agent role holds MODIFY PROGRAMMATIC AUTHENTICATION METHODS on the user
//! snowflake_warehouse_usage = []          # warehouses the agent role holds USAGE on (["COMPUTE_WH"])
//! databricks_warehouse_permission = ""    # the service principal's level on the warehouse ("CAN_USE"; "" = none)
//! ```
//!
//! The emulators answer `DESC USER`, `SHOW PARAMETERS ... IN USER`, `SHOW
//! GRANTS ON USER`, `SHOW GRANTS TO ROLE` and the warehouse Permissions API
//! from this table, and refuse what Snowflake refuses without it: a key-pair
//! JWT signed with a key that is not registered (`390144`), and `ALTER USER
//! ... ADD PROGRAMMATIC ACCESS TOKEN` without a network policy or without the
//! `MODIFY PROGRAMMATIC AUTHENTICATION METHODS` grant. Warehouse usage is
//! reported, not enforced.

use serde::{Deserialize, Serialize};

/// Which public key the Snowflake agent user has registered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegisteredKey {
    /// The public half of the sandbox's agent key (the one the client signs with).
    #[default]
    Configured,
    /// Some other key: the client's JWTs are refused.
    Other,
    /// No key at all.
    None,
}

/// The agent accounts' prerequisites (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentPrerequisites {
    pub snowflake_user_type: String,
    pub snowflake_public_key: RegisteredKey,
    pub snowflake_network_policy: String,
    pub snowflake_modify_pat_grant: bool,
    pub snowflake_warehouse_usage: Vec<String>,
    pub databricks_warehouse_permission: String,
}

impl Default for AgentPrerequisites {
    fn default() -> Self {
        Self {
            snowflake_user_type: "SERVICE".into(),
            snowflake_public_key: RegisteredKey::Configured,
            snowflake_network_policy: "IMMUTA_AGENT_POLICY".into(),
            snowflake_modify_pat_grant: true,
            snowflake_warehouse_usage: vec!["COMPUTE_WH".into()],
            databricks_warehouse_permission: "CAN_USE".into(),
        }
    }
}

/// A fingerprint of a key that is not the agent's (for `snowflake_public_key = "other"`).
pub const OTHER_KEY_FINGERPRINT: &str = "SHA256:0thErK3yN0tTheAgent5K3yFingerpr1ntAAAAAAA=";
