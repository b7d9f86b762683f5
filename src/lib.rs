//! immuta-mcp: an MCP server whose SQL tools run as the end user's
//! Immuta-vended role on Snowflake and Databricks.
//!
//! A tool call flows through these layers, each in its own module:
//!
//! 1. **Transport** — [`stdio`] (one configured user per process) or
//!    [`http`] (streamable HTTP; bearer token per request, plus
//!    [`health`] and [`ops`]); [`app`] assembles either from a [`config`].
//! 2. **Identity** — [`identity`] turns the transport's proof (configured
//!    user, stdio ID token, HTTP bearer JWT, Databricks Apps forwarded user) into a
//!    `VerifiedUser`; never from tool arguments or the session id.
//! 3. **Server** — [`server`] dispatches by [`server::ToolName`], checks
//!    arguments ([`tool_schema`]), enforces [`fair`] limits, seals
//!    [`cursor`]s for `fetch_more`, and writes one [`audit`] event and
//!    [`metrics`] per call.
//! 4. **Guard and allow-list** — [`guard`] refuses anything but one
//!    (read-only) statement and every role switch; [`allowlist`] limits the
//!    databases/catalogs a statement may name; [`sql_ident`] quotes and
//!    checks identifiers for both dialects.
//! 5. **Broker (OBO)** — each platform path asks [`immuta`] to vend the
//!    user's ephemeral role (the agent's on-behalf-of flow, with an
//!    [`agents`] pool), then mints a platform credential limited to it;
//!    [`broker`] caches credentials per user (and [`shared`] across
//!    replicas, sealed).
//! 6. **Platform clients** — [`snowflake`] (SQL API v2 with a role-restricted
//!    PAT) and [`databricks`] (Statement Execution API as the user's
//!    exclusive group), behind the [`query::GovernedQuery`] contract, with
//!    [`retry`] and [`http_client`].
//! 7. **Result** — both decode into one [`result::ResultSet`], rendered as
//!    `structuredContent` plus a text table.
//!
//! Around them: [`secret`] (values that never print), [`drain`] (graceful
//! shutdown), [`doctor`] (`check`), [`bridge`] (`connect`: a desktop stdio
//! bridge to a shared HTTP server) and [`sandbox`] (emulators of all three
//! upstream APIs for tests and first runs).

pub mod agents;
pub mod allowlist;
pub mod app;
pub mod audit;
pub mod bridge;
pub mod broker;
pub mod config;
pub mod cursor;
pub mod databricks;
pub mod doctor;
pub mod drain;
pub mod fair;
pub mod guard;
pub mod health;
pub mod http;
pub mod http_client;
pub mod identity;
pub mod immuta;
pub mod metrics;
pub mod ops;
pub mod query;
pub mod result;
pub mod retry;
pub mod sandbox;
pub mod secret;
pub mod server;
pub mod shared;
pub mod snowflake;
pub mod sql_ident;
pub mod stdio;
pub mod tool_schema;
