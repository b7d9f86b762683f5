//! The `[sandbox]` table of a fixture: which plausible variant of each
//! private-preview behaviour the emulators play.
//!
//! No public document settles these wire details (Immuta's agent API is a
//! private preview, Snowflake's `MINS_TO_EXPIRY` is not in the public PAT
//! syntax), so the clients tolerate each variant and the sandbox can play
//! each one. Tests run the whole OBO path against every variant.
//!
//! ```toml
//! [sandbox]
//! pat_expiry = "days_only"      # or "mins_and_days" (default)
//! immuta_auth = "exchange"      # "any" (default), "raw_key", "bearer_key", "exchange"
//! immuta_poll = "agent_id"      # or "agent_id_latest", "vend_id" (default)
//! vend_answer = "ttl"           # "canonical" (default), "ttl", "upper_status", "no_status", "no_expires_at"
//! ```

use serde::{Deserialize, Serialize};

/// Every variant knob; the defaults are the project's best reading of the documents.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SandboxVariants {
    pub pat_expiry: PatExpiryVariant,
    pub immuta_auth: ImmutaAuthVariant,
    pub immuta_poll: ImmutaPollVariant,
    pub vend_answer: VendAnswerVariant,
}

/// Which expiry clauses `ALTER USER ... ADD PROGRAMMATIC ACCESS TOKEN` accepts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PatExpiryVariant {
    /// `MINS_TO_EXPIRY` (the Immuta guide's preview syntax) and `DAYS_TO_EXPIRY`.
    #[default]
    MinsAndDays,
    /// Only the public syntax: `MINS_TO_EXPIRY` is a SQL compilation error.
    DaysOnly,
}

/// Which `Authorization` forms the Immuta emulator accepts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImmutaAuthVariant {
    /// All three: `<key>`, `Bearer <key>` and `Bearer <exchanged token>`.
    #[default]
    Any,
    /// Only the documented API-key method, `Authorization: <key>`.
    RawKey,
    /// Only `Authorization: Bearer <key>` (the agent page's curl example).
    BearerKey,
    /// Only `Bearer <token>` from `POST /bim/apikey/authenticate`.
    Exchange,
}

/// What `{id}` in `GET /agent/obo/roles/{id}` names when polling a pending vend.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImmutaPollVariant {
    /// The vend's own id.
    #[default]
    VendId,
    /// The agent's id ("View the status of an agent"); a vend id is 404.
    /// The answer lists the agent's vends (`data`).
    AgentId,
    /// The agent's id, answered with the agent's latest vend alone (a
    /// status page that shows one vend, not a list); a vend id is 404. The
    /// wire notes (`shared/specs/README.md`: "status of the vended role(s)")
    /// leave open whether the answer is one vend or a list; the client takes both.
    AgentIdLatest,
}

impl ImmutaPollVariant {
    /// Whether pending vends are polled by the agent's id.
    pub fn polls_by_agent(self) -> bool {
        matches!(self, Self::AgentId | Self::AgentIdLatest)
    }
}

/// How the vend answer is spelled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VendAnswerVariant {
    /// `ttlMinutes`, lower-case `status`.
    #[default]
    Canonical,
    /// `ttl` instead of `ttlMinutes`.
    Ttl,
    /// Upper-case `status` values (`READY`, `PENDING`).
    UpperStatus,
    /// No `status` field at all; a non-empty `roles` means ready.
    NoStatus,
    /// No `expiresAt`: the lifetime is only `ttlMinutes`, counted from the answer.
    NoExpiresAt,
}
