//! The one way this crate builds its upstream HTTP client.
//!
//! reqwest is compiled with rustls but without a built-in crypto provider
//! (to avoid compiling aws-lc); this module installs rustls' `ring` provider
//! once per process and applies the configured timeouts.

use crate::config::Limits;
use std::sync::Once;
use std::time::Duration;

static PROVIDER: Once = Once::new();

/// Install rustls' ring crypto provider as the process default (idempotent).
pub fn install_crypto_provider() {
    PROVIDER.call_once(|| {
        // Another component may have installed one first; either is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A pooled client for Immuta, Snowflake and Databricks with the configured timeouts.
pub fn build(limits: &Limits) -> Result<reqwest::Client, reqwest::Error> {
    install_crypto_provider();
    reqwest::Client::builder()
        .user_agent(concat!("immuta-mcp/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(limits.request_timeout_secs))
        .pool_idle_timeout(Duration::from_secs(90))
        .build()
}
