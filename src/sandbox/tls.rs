//! HTTPS for the sandbox's Snowflake emulator.
//!
//! Real Snowflake is reached only over HTTPS at the account's host name, so
//! the emulator is too: [`SandboxTls::generate`] makes a throwaway CA (ECDSA
//! P-256, rcgen with the ring backend) and a server certificate for the
//! emulated account host (and `127.0.0.1`), and writes the CA certificate to
//! a PEM file that lives as long as the [`SandboxTls`] (the client trusts it
//! through `network.extra_ca_file`). [`TlsListener`] is an
//! [`axum::serve::Listener`] that completes TLS handshakes in the background
//! (bounded in time, so a silent client cannot stall the others).

use axum::serve::Listener;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::server::TlsStream;

/// How long a client may take to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the sandbox's TLS material could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot generate the sandbox certificates: {0}")]
    Certificate(#[from] rcgen::Error),
    #[error("cannot configure TLS: {0}")]
    Rustls(#[from] tokio_rustls::rustls::Error),
    #[error("cannot write the sandbox CA file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The sandbox CA and the emulator's server configuration.
pub struct SandboxTls {
    ca_pem: String,
    ca_dir: PathBuf,
    ca_file: PathBuf,
    acceptor: TlsAcceptor,
}

impl std::fmt::Debug for SandboxTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxTls")
            .field("ca_file", &self.ca_file)
            .finish_non_exhaustive()
    }
}

impl SandboxTls {
    /// A fresh CA, a certificate for `host` and `127.0.0.1` signed by it,
    /// and the CA written to a new private temp directory.
    pub fn generate(host: &str) -> Result<Self, TlsError> {
        crate::http_client::install_crypto_provider();
        let ca_key = KeyPair::generate()?;
        let mut ca = CertificateParams::new(Vec::<String>::new())?;
        ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca.distinguished_name
            .push(DnType::CommonName, "immuta-mcp sandbox CA (throwaway)");
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca.self_signed(&ca_key)?;
        let issuer = Issuer::new(ca, ca_key);
        let server_key = KeyPair::generate()?;
        let mut server = CertificateParams::new(vec![host.to_string()])?;
        server.distinguished_name.push(DnType::CommonName, host);
        server
            .subject_alt_names
            .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        server.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let server_cert = server.signed_by(&server_key, &issuer)?;

        let config = tokio_rustls::rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(
                vec![server_cert.der().clone(), ca_cert.der().clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der())),
            )?;
        let mut config = config;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];

        let ca_pem = ca_cert.pem();
        let ca_dir = std::env::temp_dir().join(format!(
            "immuta-mcp-sandbox-{}",
            uuid::Uuid::new_v4().simple()
        ));
        let write_error = |path: &Path, source| TlsError::Write {
            path: path.to_path_buf(),
            source,
        };
        std::fs::create_dir(&ca_dir).map_err(|e| write_error(&ca_dir, e))?;
        let ca_file = ca_dir.join("sandbox-ca.pem");
        std::fs::write(&ca_file, &ca_pem).map_err(|e| write_error(&ca_file, e))?;
        Ok(Self {
            ca_pem,
            ca_dir,
            ca_file,
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
    }

    /// PEM of the CA certificate.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The CA certificate's PEM file (removed when this is dropped).
    pub fn ca_file(&self) -> &Path {
        &self.ca_file
    }

    /// Serve TLS on `listener`.
    pub fn listener(&self, listener: TcpListener) -> TlsListener {
        TlsListener::new(listener, self.acceptor.clone())
    }
}

impl Drop for SandboxTls {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.ca_dir);
    }
}

/// A TCP listener whose accepted connections are TLS streams.
pub struct TlsListener {
    local_addr: std::io::Result<SocketAddr>,
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    accept_task: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    fn new(listener: TcpListener, acceptor: TlsAcceptor) -> Self {
        let local_addr = listener.local_addr();
        let (tx, ready) = mpsc::channel(64);
        let accept_task = tokio::spawn(async move {
            loop {
                let (tcp, peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        tracing::debug!(error = %e, "sandbox TLS accept failed");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                };
                let (acceptor, handed) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => {
                            let _ = handed.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "sandbox TLS handshake failed")
                        }
                        Err(_) => tracing::debug!(%peer, "sandbox TLS handshake timed out"),
                    }
                });
                if tx.is_closed() {
                    return;
                }
            }
        });
        Self {
            local_addr,
            ready,
            accept_task,
        }
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.accept_task.abort();
    }
}

impl Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(accepted) => accepted,
            // The accept task ended (it never does while the listener
            // lives); wait for shutdown.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        match &self.local_addr {
            Ok(addr) => Ok(*addr),
            Err(e) => Err(std::io::Error::new(e.kind(), e.to_string())),
        }
    }
}
