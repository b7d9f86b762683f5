//! immuta-mcp: an MCP server whose SQL tools run as the end user's
//! Immuta-vended role on Snowflake and Databricks.
//!
//! Data flows one way: transport → [`identity`] → [`server`] tool →
//! [`guard`] → platform path ([`snowflake`], [`databricks`], both using
//! [`immuta`] and [`broker`]) → [`result::ResultSet`]. The [`sandbox`]
//! emulates all three upstream APIs for tests and first runs.

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
