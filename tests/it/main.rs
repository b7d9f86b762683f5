//! The integration tests, one binary (rust-analyzer's `tests/slow-tests` layout): one module per
//! behaviour, each opening with the rule it enforces, and [`support`] for everything they share
//! (sandbox and server harnesses, tool-call helpers, the secret-leak check, log capture).
//!
//! Select one behaviour with a filter: `cargo test --test it -- snowflake_path::`.
//! `tests/soak.rs` is the only other test binary: it measures its own process's memory.

// A failed unwrap or assertion is how a test fails; the library's no-panic lints are for src/.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

mod agent_pool;
mod allow_lists;
mod architecture;
mod bridge;
mod check_and_audit;
mod check_doctor;
mod config_secrets;
mod databricks_app_deploy;
mod databricks_apps;
mod databricks_apps_logs;
mod databricks_path;
mod e2e_http;
mod e2e_snowflake_days_only;
mod e2e_stdio;
mod fair_limits;
mod fetch_more;
mod graceful_shutdown;
mod guard_bypass;
mod hardening_faults;
mod hardening_http;
mod hardening_limits;
mod hardening_stdio;
mod identity_proof;
mod immuta_client;
mod install_metadata;
mod interop_ajv;
mod interop_python;
mod metrics_health;
mod prewarm;
mod sandbox_databricks;
mod sandbox_dialects;
mod sandbox_immuta;
mod sandbox_policies;
mod sandbox_snowflake;
mod scopes;
mod shared_cache;
mod snowflake_path;
mod stdio_hint;
mod tools_list;
mod upstream_http_client;
mod variants_immuta;
