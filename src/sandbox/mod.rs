//! Local emulators of the Immuta, Snowflake and Databricks HTTP APIs, backed
//! by an embedded SQL engine with per-role grants, row filters, column masks
//! and fault injection.
//!
//! [`Sandbox::start`] loads a [`Fixture`] into the [`Engine`], generates the
//! agent's credentials (an RSA-2048 key pair for Snowflake key-pair auth, an
//! Immuta API key, a Databricks client secret) and serves each emulator on its
//! own loopback port. The Snowflake emulator speaks HTTPS only, with a
//! throwaway CA made at start ([`tls`]), and plays the account host the
//! Immuta emulator vends (`sandbox01.us-east-1.snowflakecomputing.com`).
//! [`Sandbox::client_config`] is a ready-made
//! [`Config`](crate::config::Config) for the production clients: it reaches
//! that host name through `network.resolve` (to the emulator's loopback
//! port) and trusts the sandbox CA through `network.extra_ca_file`, so the
//! client's real host derivation and TLS are exercised;
//! [`Sandbox::faults`] and the [`SandboxState`] counters are for tests.

pub mod authz;
pub mod databricks;
pub(crate) mod dialect;
pub mod engine;
pub mod faults;
pub mod fixture;
pub mod immuta;
pub mod issuer;
pub mod prerequisites;
pub mod snowflake;
pub mod state;
pub mod statements;
pub mod tls;
pub mod types;
pub mod variants;

pub use engine::{Engine, EngineError, Namespace};
pub use faults::{Endpoint, Fault, Faults};
pub use fixture::Fixture;
pub use prerequisites::AgentPrerequisites;
pub use state::{
    AGENT_DATABRICKS_GROUP, AGENT_SNOWFLAKE_ROLE, Counter, ExecutedStatement, SandboxCredentials,
    SandboxSettings, SandboxState, SandboxUrls, SeenRequest,
};
pub use variants::SandboxVariants;

use crate::config::{
    Config, DatabricksConfig, ImmutaConfig, NetworkConfig, SecretRef, SnowflakeConfig,
};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// What to serve.
#[derive(Debug, Clone)]
pub struct SandboxOptions {
    pub fixture: Fixture,
    pub settings: SandboxSettings,
}

impl Default for SandboxOptions {
    /// The built-in demo fixture with default settings.
    fn default() -> Self {
        Self {
            fixture: Fixture::demo(),
            settings: SandboxSettings::default(),
        }
    }
}

/// Why the sandbox could not start.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Key(#[from] state::KeyError),
    #[error("cannot listen on 127.0.0.1: {0}")]
    Bind(std::io::Error),
    #[error("sandbox setup task failed: {0}")]
    Task(String),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
}

/// Running emulators; dropping the handle stops them.
#[derive(Debug)]
pub struct Sandbox {
    /// `http://127.0.0.1:<port>` of the Immuta emulator.
    pub immuta_url: String,
    /// `https://127.0.0.1:<port>` of the Snowflake SQL API emulator (HTTPS
    /// only; its certificate, signed by the sandbox CA, names
    /// [`Sandbox::snowflake_host`] and 127.0.0.1).
    pub snowflake_url: String,
    /// The account host the Immuta emulator vends as connectionKey.
    pub snowflake_host: String,
    /// Where the Snowflake emulator listens.
    pub snowflake_addr: SocketAddr,
    /// `http://127.0.0.1:<port>` of the Databricks workspace emulator.
    pub databricks_url: String,
    pub state: Arc<SandboxState>,
    tls: Arc<tls::SandboxTls>,
    shutdown: CancellationToken,
    servers: Vec<JoinHandle<()>>,
}

async fn listen() -> Result<(TcpListener, String), SandboxError> {
    let listener = TcpListener::bind(("127.0.0.1", 0))
        .await
        .map_err(SandboxError::Bind)?;
    let addr = listener.local_addr().map_err(SandboxError::Bind)?;
    Ok((listener, format!("http://{addr}")))
}

impl Sandbox {
    /// Load the fixture, generate credentials, and serve the three emulators on 127.0.0.1.
    pub async fn start(opts: SandboxOptions) -> Result<Sandbox, SandboxError> {
        let fixture = opts.fixture;
        let mut settings = opts.settings;
        // A fixture's `[sandbox]` table wins over settings left at their defaults.
        if fixture.sandbox != SandboxVariants::default() {
            settings.variants = fixture.sandbox;
        }
        if fixture.agent != AgentPrerequisites::default() {
            settings.prerequisites = fixture.agent.clone();
        }
        let engine = tokio::task::spawn_blocking(move || Engine::new(&fixture));
        let agents = settings.agents.max(1);
        let creds = tokio::task::spawn_blocking(move || {
            let mut creds = SandboxCredentials::generate()?;
            for n in 2..=agents {
                creds
                    .extra_agents
                    .push(state::AgentCredentials::generate(n)?);
            }
            Ok::<_, state::KeyError>(creds)
        });
        let snowflake_host = immuta::SNOWFLAKE_CONNECTION_KEY.to_string();
        let tls_host = snowflake_host.clone();
        let tls = tokio::task::spawn_blocking(move || tls::SandboxTls::generate(&tls_host));
        let (immuta_listener, immuta_url) = listen().await?;
        let (snowflake_listener, _) = listen().await?;
        let snowflake_addr = snowflake_listener
            .local_addr()
            .map_err(SandboxError::Bind)?;
        let snowflake_url = format!("https://{snowflake_addr}");
        let (databricks_listener, databricks_url) = listen().await?;
        let engine = engine
            .await
            .map_err(|e| SandboxError::Task(e.to_string()))??;
        let creds = creds
            .await
            .map_err(|e| SandboxError::Task(e.to_string()))??;
        let tls = Arc::new(tls.await.map_err(|e| SandboxError::Task(e.to_string()))??);
        let state = Arc::new(SandboxState::new(
            engine,
            creds,
            settings,
            SandboxUrls {
                immuta: immuta_url.clone(),
                snowflake: snowflake_url.clone(),
                databricks: databricks_url.clone(),
            },
        ));
        let shutdown = CancellationToken::new();
        let mut servers: Vec<JoinHandle<()>> = [
            (immuta_listener, immuta::router(state.clone())),
            (databricks_listener, databricks::router(state.clone())),
        ]
        .into_iter()
        .map(|(listener, app)| {
            let stop = shutdown.clone().cancelled_owned();
            tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, app)
                    .with_graceful_shutdown(stop)
                    .await
                {
                    tracing::warn!(error = %e, "sandbox server stopped with an error");
                }
            })
        })
        .collect();
        let snowflake_tls = tls.listener(snowflake_listener);
        let snowflake_app = snowflake::router(state.clone());
        let stop = shutdown.clone().cancelled_owned();
        servers.push(tokio::spawn(async move {
            if let Err(e) = axum::serve(snowflake_tls, snowflake_app)
                .with_graceful_shutdown(stop)
                .await
            {
                tracing::warn!(error = %e, "sandbox Snowflake server stopped with an error");
            }
        }));
        tracing::info!(%immuta_url, %snowflake_url, %snowflake_host, %databricks_url, "sandbox emulators listening");
        Ok(Sandbox {
            immuta_url,
            snowflake_url,
            snowflake_host,
            snowflake_addr,
            databricks_url,
            state,
            tls,
            shutdown,
            servers,
        })
    }

    /// Fault knobs of every endpoint.
    pub fn faults(&self) -> &Faults {
        &self.state.faults
    }

    /// The credentials generated for this start.
    pub fn credentials(&self) -> &SandboxCredentials {
        &self.state.creds
    }

    /// PEM of the sandbox CA (trusted by [`Sandbox::client_config`]).
    pub fn ca_pem(&self) -> &str {
        self.tls.ca_pem()
    }

    /// The CA's PEM file (removed when the sandbox is dropped).
    pub fn ca_file(&self) -> &std::path::Path {
        self.tls.ca_file()
    }

    /// `network.resolve` entry sending the vended Snowflake host to the emulator.
    pub fn snowflake_resolve(&self) -> String {
        format!("{}:443:{}", self.snowflake_host, self.snowflake_addr)
    }

    /// A reqwest client builder for talking to the emulators directly (as
    /// tests and benchmarks do): trusts the sandbox CA, resolves the vended
    /// Snowflake host to the emulator, and sends a `User-Agent` (the SQL API
    /// requires one).
    pub fn direct_client_builder(&self) -> reqwest::ClientBuilder {
        crate::http_client::install_crypto_provider();
        let mut builder = reqwest::Client::builder()
            .user_agent("immuta-mcp-sandbox-direct")
            .resolve(&self.snowflake_host, self.snowflake_addr);
        if let Ok(ca) = reqwest::Certificate::from_pem(self.ca_pem().as_bytes()) {
            builder = builder.tls_certs_merge([ca]);
        }
        builder
    }

    /// A configuration for the production clients pointing at this sandbox
    /// (secrets inline as [`SecretRef::Value`]; stdio user = the fixture's first user).
    /// Snowflake is reached as on a real account: `https://<vended host>`,
    /// no `snowflake.base_url`, with `network.resolve` and
    /// `network.extra_ca_file` pointing at the HTTPS emulator.
    pub fn client_config(&self) -> Config {
        let creds = &self.state.creds;
        // The account identifier in its legacy `<locator>.<region>` form:
        // its first part is the JWT account, and `check` finds the host by it.
        let account = self
            .snowflake_host
            .strip_suffix(".snowflakecomputing.com")
            .unwrap_or(&creds.snowflake_account)
            .to_string();
        let mut cfg = Config {
            immuta: Some(ImmutaConfig {
                url: self.immuta_url.clone(),
                api_key: SecretRef::Value(creds.immuta_api_key.clone()),
                ttl_minutes: 60,
                pending_timeout_secs: 30,
                // The emulator's DELETE of a vend id drops that vend alone.
                drop_unused_vends: true,
                auth: Default::default(),
                poll_id: Default::default(),
                agent_id: Some(creds.agent_id.clone()),
            }),
            snowflake: Some(SnowflakeConfig {
                user: creds.snowflake_user.clone(),
                account: Some(account),
                private_key: SecretRef::Value(creds.snowflake_private_key_pem.clone()),
                private_key_passphrase: None,
                base_url: None,
                default_warehouse: Some("COMPUTE_WH".into()),
                default_database: Some("SALES".into()),
                default_schema: Some("PUBLIC".into()),
                pat_expiry_clause: Default::default(),
                statement_timeout_secs: 300,
                verify_identity: true,
            }),
            databricks: Some(DatabricksConfig {
                host: self.databricks_url.clone(),
                client_id: creds.databricks_client_id.clone(),
                client_secret: SecretRef::Value(creds.databricks_client_secret.clone()),
                warehouse_id: creds.warehouse_id.clone(),
                default_catalog: Some("main".into()),
                default_schema: None,
                statement_timeout_secs: 300,
                wait_timeout: "10s".into(),
                verify_identity: true,
            }),
            network: NetworkConfig {
                resolve: vec![self.snowflake_resolve()],
                extra_ca_file: Some(self.ca_file().to_path_buf()),
            },
            ..Config::default()
        };
        cfg.identity.stdio_user = self.state.engine.user_ids().into_iter().next();
        cfg
    }

    /// [`client_config`](Self::client_config) with every further agent the
    /// sandbox hosts ([`SandboxSettings::agents`]) as an `[[agents]]` entry,
    /// named `agent-2`, `agent-3`, ...
    pub fn pool_config(&self) -> Config {
        let mut cfg = self.client_config();
        cfg.agents = self
            .state
            .creds
            .extra_agents
            .iter()
            .enumerate()
            .map(|(i, a)| crate::agents::AgentConfig {
                name: format!("agent-{}", i + 2),
                immuta_api_key: SecretRef::Value(a.immuta_api_key.clone()),
                immuta_agent_id: None,
                snowflake_user: Some(a.snowflake_user.clone()),
                snowflake_private_key: Some(SecretRef::Value(a.snowflake_private_key_pem.clone())),
                snowflake_private_key_passphrase: None,
                databricks_client_id: None,
                databricks_client_secret: None,
            })
            .collect();
        cfg
    }

    /// Stop the emulators and wait (briefly) for them to finish.
    pub async fn shutdown(mut self) {
        self.shutdown.cancel();
        for server in std::mem::take(&mut self.servers) {
            let abort = server.abort_handle();
            if tokio::time::timeout(Duration::from_secs(2), server)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
