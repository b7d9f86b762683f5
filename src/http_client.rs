//! The one way this crate builds its upstream HTTP client.
//!
//! reqwest is compiled with rustls but without a built-in crypto provider
//! (to avoid compiling aws-lc); this module installs rustls' `ring` provider
//! once per process and applies the configured timeouts and the `[network]`
//! settings:
//! - `resolve`: host-to-address overrides (curl's `--resolve`, reqwest's
//!   `ClientBuilder::resolve`); the URL, TLS server name and `Host` header
//!   keep the host name;
//! - `extra_ca_file`: extra trusted CAs (PEM), merged with the platform's
//!   roots (reqwest's rustls-platform-verifier `new_with_extra_roots`).
//!
//! Redirects are never followed (security audit F10): every upstream call
//! carries a credential (API key, client secret, key-pair JWT, PAT), and a
//! redirect could move it to another host or from https to http. A 3xx is
//! handed to the caller like any other unexpected status.

use crate::config::{Config, Limits, NetworkConfig};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Once;
use std::time::Duration;

static PROVIDER: Once = Once::new();

/// Why the upstream client cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum HttpClientError {
    #[error(
        "network.resolve entry {entry:?}: {reason} (expected \"HOST:443:ADDR\" or \"HOST:443:ADDR:PORT\")"
    )]
    Resolve { entry: String, reason: String },
    #[error("network.extra_ca_file {path}: {message}")]
    CaFile { path: PathBuf, message: String },
    #[error("cannot build the HTTP client: {0}")]
    Build(#[from] reqwest::Error),
}

/// Install rustls' ring crypto provider as the process default (idempotent).
pub fn install_crypto_provider() {
    PROVIDER.call_once(|| {
        // Another component may have installed one first; either is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A pooled client with the configured timeouts and no `[network]` settings.
pub fn build(limits: &Limits) -> Result<reqwest::Client, HttpClientError> {
    build_with(limits, &NetworkConfig::default())
}

/// The client for a whole configuration (timeouts and `[network]`).
pub fn build_for(cfg: &Config) -> Result<reqwest::Client, HttpClientError> {
    build_with(&cfg.limits, &cfg.network)
}

/// A pooled client for Immuta, Snowflake and Databricks.
pub fn build_with(
    limits: &Limits,
    network: &NetworkConfig,
) -> Result<reqwest::Client, HttpClientError> {
    install_crypto_provider();
    let mut builder = reqwest::Client::builder()
        .user_agent(concat!("immuta-mcp/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(limits.request_timeout_secs))
        .pool_idle_timeout(Duration::from_secs(90))
        .redirect(reqwest::redirect::Policy::none());
    for entry in &network.resolve {
        let (host, addr) = parse_resolve(entry)?;
        builder = builder.resolve(&host, addr);
    }
    if let Some(path) = &network.extra_ca_file {
        let ca_error = |message: String| HttpClientError::CaFile {
            path: path.clone(),
            message,
        };
        let pem = std::fs::read(path).map_err(|e| ca_error(e.to_string()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| ca_error(format!("not a PEM certificate bundle: {e}")))?;
        if certs.is_empty() {
            return Err(ca_error("holds no PEM certificate".into()));
        }
        builder = builder.tls_certs_merge(certs);
    }
    Ok(builder.build()?)
}

/// Parse one `network.resolve` entry into the host and the address its
/// HTTPS URLs connect to.
///
/// reqwest overrides per host name, not per port: the override's port is
/// used for URLs without an explicit port (the `https` default, 443), and a
/// URL with an explicit port keeps it. So the entry's own port must be 443,
/// and the optional last part chooses the port actually connected to.
pub fn parse_resolve(entry: &str) -> Result<(String, SocketAddr), HttpClientError> {
    let error = |reason: &str| HttpClientError::Resolve {
        entry: entry.to_string(),
        reason: reason.to_string(),
    };
    let (host, rest) = entry
        .trim()
        .split_once(':')
        .ok_or_else(|| error("no port"))?;
    let (port, target) = rest.split_once(':').ok_or_else(|| error("no address"))?;
    if host.is_empty()
        || !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
    {
        return Err(error("the host must be a DNS name"));
    }
    if port != "443" {
        return Err(error(
            "only port 443 can be overridden (HTTPS URLs without an explicit port)",
        ));
    }
    let (addr, connect_port) = if let Some(v6) = target.strip_prefix('[') {
        let (ip, after) = v6
            .split_once(']')
            .ok_or_else(|| error("unclosed '[' in the address"))?;
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| error("text after the IPv6 address"))?,
            ),
        };
        (ip, port)
    } else {
        match target.split_once(':') {
            Some((ip, port)) => (ip, Some(port)),
            None => (target, None),
        }
    };
    let ip: IpAddr = addr
        .parse()
        .map_err(|_| error("the address must be an IP address"))?;
    let connect_port = match connect_port {
        None => 443,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| error("the connect port must be 1..65535"))?,
    };
    Ok((host.to_ascii_lowercase(), SocketAddr::new(ip, connect_port)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_entries_parse_like_curl() {
        let (host, addr) =
            parse_resolve("Acct.us-east-1.snowflakecomputing.com:443:127.0.0.1").unwrap();
        assert_eq!(host, "acct.us-east-1.snowflakecomputing.com");
        assert_eq!(addr, "127.0.0.1:443".parse().unwrap());
        let (_, addr) = parse_resolve("h.example:443:127.0.0.1:54321").unwrap();
        assert_eq!(addr, "127.0.0.1:54321".parse().unwrap());
        let (_, addr) = parse_resolve("h.example:443:[::1]:8443").unwrap();
        assert_eq!(addr, "[::1]:8443".parse().unwrap());
        let (_, addr) = parse_resolve("h.example:443:[::1]").unwrap();
        assert_eq!(addr, "[::1]:443".parse().unwrap());
        for bad in [
            "h.example",
            "h.example:443",
            "h.example:80:127.0.0.1",
            "h.example:443:localhost",
            "h.example:443:127.0.0.1:0",
            "h.example:443:[::1",
            "a/b:443:127.0.0.1",
            ":443:127.0.0.1",
        ] {
            assert!(parse_resolve(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_missing_or_empty_ca_file_is_an_error() {
        let mut network = NetworkConfig {
            extra_ca_file: Some("/nonexistent/immuta-mcp-ca.pem".into()),
            ..NetworkConfig::default()
        };
        let err = build_with(&Limits::default(), &network).unwrap_err();
        assert!(err.to_string().contains("immuta-mcp-ca.pem"), "{err}");
        let dir = std::env::temp_dir().join(format!("immuta-mcp-ca-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "no certificate here\n").unwrap();
        network.extra_ca_file = Some(empty);
        let err = build_with(&Limits::default(), &network).unwrap_err();
        assert!(err.to_string().contains("no PEM certificate"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
