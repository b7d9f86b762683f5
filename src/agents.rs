//! A pool of agent identities (`[[agents]]`) and which agent serves which user.
//!
//! Every agent is an Immuta API key with a Snowflake service user and its key
//! (and optionally a Databricks service principal). The agent configured in
//! `[immuta]`/`[snowflake]`/`[databricks]` is the pool's first member,
//! named `default`; each `[[agents]]` entry adds one. Every end user is bound
//! to one agent by rendezvous (highest random weight) hashing: the agent with
//! the highest `SHA-256(agent name, user)` serves the user, so a user's PAT is
//! reused, users spread evenly, and adding an agent moves only the users the
//! new agent wins. The pool's Snowflake capacity is the sum of its agents'
//! (Snowflake limits the PATs each user holds).

use crate::config::{Config, ConfigError, SecretRef};
use crate::query::{CallContext, GovernedQuery, PageRequest, QueryError, QueryRequest};
use crate::result::{Platform, ResultSet};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// One more agent identity (`[[agents]]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Unique name; the user-to-agent binding hashes it (renaming moves users).
    pub name: String,
    /// This agent's Immuta API key.
    pub immuta_api_key: SecretRef,
    /// `immuta.agent_id` for this agent (only for `poll_id = "agent_id"`).
    #[serde(default)]
    pub immuta_agent_id: Option<String>,
    /// Its Snowflake service user (required when `[snowflake]` is configured).
    #[serde(default)]
    pub snowflake_user: Option<String>,
    #[serde(default)]
    pub snowflake_private_key: Option<SecretRef>,
    #[serde(default)]
    pub snowflake_private_key_passphrase: Option<SecretRef>,
    /// Its Databricks service principal (optional; without one, Databricks
    /// users are spread over the agents that have one).
    #[serde(default)]
    pub databricks_client_id: Option<String>,
    #[serde(default)]
    pub databricks_client_secret: Option<SecretRef>,
}

/// The name of the agent `[immuta]`/`[snowflake]`/`[databricks]` configure.
pub const DEFAULT_AGENT: &str = "default";

/// Refuse pools that cannot work, naming the setting.
pub fn validate(cfg: &Config) -> Result<(), ConfigError> {
    let invalid = |i: usize, key: &str, message: String| ConfigError::Invalid {
        key: format!("agents[{i}].{key}"),
        message,
    };
    let mut names = vec![DEFAULT_AGENT.to_string()];
    for (i, agent) in cfg.agents.iter().enumerate() {
        let name = agent.name.trim();
        if name.is_empty() {
            return Err(invalid(i, "name", "must not be empty".into()));
        }
        if names.iter().any(|n| n.eq_ignore_ascii_case(name)) {
            return Err(invalid(
                i,
                "name",
                format!(
                    "{name:?} is used twice (\"{DEFAULT_AGENT}\" names the agent of [immuta]/[snowflake])"
                ),
            ));
        }
        names.push(name.to_string());
        if cfg.immuta.is_none() {
            return Err(invalid(
                i,
                "immuta_api_key",
                "[[agents]] needs [immuta] (its url and settings are shared by every agent)".into(),
            ));
        }
        if cfg.snowflake.is_some()
            && (agent
                .snowflake_user
                .as_deref()
                .is_none_or(|u| u.trim().is_empty())
                || agent.snowflake_private_key.is_none())
        {
            return Err(invalid(
                i,
                "snowflake_user",
                "with [snowflake] configured, every agent needs snowflake_user and snowflake_private_key".into(),
            ));
        }
        if agent.databricks_client_id.is_some() != agent.databricks_client_secret.is_some() {
            return Err(invalid(
                i,
                "databricks_client_id",
                "databricks_client_id and databricks_client_secret go together".into(),
            ));
        }
        if agent.databricks_client_id.is_some() && cfg.databricks.is_none() {
            return Err(invalid(
                i,
                "databricks_client_id",
                "a Databricks service principal needs [databricks] (host, warehouse)".into(),
            ));
        }
    }
    Ok(())
}

/// The agent (index into `agents`) that serves `user`: rendezvous hashing.
pub fn agent_for<'a>(agents: impl IntoIterator<Item = &'a str>, user: &str) -> Option<usize> {
    agents
        .into_iter()
        .enumerate()
        .max_by_key(|(_, name)| weight(name, user))
        .map(|(i, _)| i)
}

fn weight(agent: &str, user: &str) -> [u8; 32] {
    let mut digest = Sha256::new();
    digest.update((agent.len() as u64).to_be_bytes());
    digest.update(agent.as_bytes());
    digest.update(user.as_bytes());
    digest.finalize().into()
}

/// One member of the pool: its name and its configuration sections (the
/// shared sections with this agent's identity filled in).
#[derive(Debug, Clone)]
pub struct AgentIdentity {
    pub name: String,
    pub immuta: crate::config::ImmutaConfig,
    pub snowflake: Option<crate::config::SnowflakeConfig>,
    pub databricks: Option<crate::config::DatabricksConfig>,
}

/// Every agent of the pool, the `default` one first (none without `[immuta]`).
pub fn identities(cfg: &Config) -> Vec<AgentIdentity> {
    let Some(immuta) = &cfg.immuta else {
        return Vec::new();
    };
    let mut all = vec![AgentIdentity {
        name: DEFAULT_AGENT.into(),
        immuta: immuta.clone(),
        snowflake: cfg.snowflake.clone(),
        databricks: cfg.databricks.clone(),
    }];
    for agent in &cfg.agents {
        let snowflake = cfg.snowflake.as_ref().and_then(|s| {
            Some(crate::config::SnowflakeConfig {
                user: agent.snowflake_user.clone()?,
                private_key: agent.snowflake_private_key.clone()?,
                private_key_passphrase: agent.snowflake_private_key_passphrase.clone(),
                ..s.clone()
            })
        });
        let databricks = cfg.databricks.as_ref().and_then(|d| {
            Some(crate::config::DatabricksConfig {
                client_id: agent.databricks_client_id.clone()?,
                client_secret: agent.databricks_client_secret.clone()?,
                ..d.clone()
            })
        });
        all.push(AgentIdentity {
            name: agent.name.trim().to_string(),
            immuta: crate::config::ImmutaConfig {
                api_key: agent.immuta_api_key.clone(),
                agent_id: agent.immuta_agent_id.clone(),
                ..immuta.clone()
            },
            snowflake,
            databricks,
        });
    }
    all
}

/// A platform path per agent, behind one [`GovernedQuery`]: each call goes
/// to the caller's agent, and so do its `fetch_more` pages.
pub struct AgentPool {
    platform: Platform,
    agents: Vec<(String, Arc<dyn GovernedQuery>)>,
}

impl AgentPool {
    /// `agents` must not be empty.
    pub fn new(platform: Platform, agents: Vec<(String, Arc<dyn GovernedQuery>)>) -> Self {
        assert!(!agents.is_empty(), "an agent pool has at least one agent");
        Self { platform, agents }
    }

    /// The name of the agent serving `user`.
    pub fn agent_name(&self, user: &str) -> &str {
        &self.agents[self.index(user)].0
    }

    fn index(&self, user: &str) -> usize {
        agent_for(self.agents.iter().map(|(n, _)| n.as_str()), user).unwrap_or(0)
    }

    fn path(&self, user: &str) -> &Arc<dyn GovernedQuery> {
        &self.agents[self.index(user)].1
    }
}

#[async_trait::async_trait]
impl GovernedQuery for AgentPool {
    fn platform(&self) -> Platform {
        self.platform
    }

    async fn query(
        &self,
        ctx: &CallContext,
        request: &QueryRequest,
    ) -> Result<ResultSet, QueryError> {
        self.path(&ctx.user).query(ctx, request).await
    }

    async fn fetch_page(
        &self,
        ctx: &CallContext,
        page: &PageRequest,
    ) -> Result<ResultSet, QueryError> {
        self.path(&ctx.user).fetch_page(ctx, page).await
    }

    async fn prewarm(&self, ctx: &CallContext) -> Result<(), QueryError> {
        self.path(&ctx.user).prewarm(ctx).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("user{i}@example.com")).collect()
    }

    #[test]
    fn a_user_always_goes_to_the_same_agent_and_users_spread_evenly() {
        let agents = ["default", "a2", "a3", "a4"];
        let mut per_agent = [0usize; 4];
        for user in users(4000) {
            let i = agent_for(agents, &user).unwrap();
            assert_eq!(agent_for(agents, &user), Some(i), "stable");
            per_agent[i] += 1;
        }
        for count in per_agent {
            assert!(
                (800..=1200).contains(&count),
                "uneven spread: {per_agent:?}"
            );
        }
        assert_eq!(agent_for(std::iter::empty::<&str>(), "x"), None);
    }

    #[test]
    fn adding_an_agent_moves_only_the_users_it_wins() {
        let before = ["default", "a2", "a3"];
        let after = ["default", "a2", "a3", "a4"];
        let mut moved = 0;
        for user in users(3000) {
            let (b, a) = (
                agent_for(before, &user).unwrap(),
                agent_for(after, &user).unwrap(),
            );
            if a != b {
                assert_eq!(a, 3, "a user only ever moves to the new agent");
                moved += 1;
            }
        }
        assert!(
            (600..=900).contains(&moved),
            "about a quarter moved: {moved}"
        );
    }

    #[test]
    fn pools_that_cannot_work_are_refused_naming_the_setting() {
        let base = || {
            let mut cfg = Config::parse(
                "[immuta]\nurl = \"https://immuta.example.com\"\napi_key = { env = \"K\" }\n\
                 [snowflake]\nuser = \"AGENT\"\nprivate_key = { env = \"P\" }\n",
            )
            .unwrap();
            cfg.agents.push(AgentConfig {
                name: "a2".into(),
                immuta_api_key: SecretRef::Env("K2".into()),
                immuta_agent_id: None,
                snowflake_user: Some("AGENT_2".into()),
                snowflake_private_key: Some(SecretRef::Env("P2".into())),
                snowflake_private_key_passphrase: None,
                databricks_client_id: None,
                databricks_client_secret: None,
            });
            cfg
        };
        assert!(validate(&base()).is_ok());
        let mut twice = base();
        twice.agents[0].name = "Default".into();
        assert!(
            validate(&twice)
                .unwrap_err()
                .to_string()
                .contains("agents[0].name")
        );
        let mut no_user = base();
        no_user.agents[0].snowflake_user = None;
        assert!(
            validate(&no_user)
                .unwrap_err()
                .to_string()
                .contains("snowflake_user")
        );
        let mut half_sp = base();
        half_sp.agents[0].databricks_client_id = Some("id".into());
        assert!(
            validate(&half_sp)
                .unwrap_err()
                .to_string()
                .contains("go together")
        );
    }
}
