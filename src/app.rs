//! Assembly: from a [`Config`] to a running server (stdio or HTTP), the
//! sandbox mode, and the `check` command's upstream probes.
//!
//! This is the only module that knows how the pieces fit together; `main.rs`
//! only parses the command line and calls in here.

use crate::allowlist::AllowList;
use crate::config::{Config, IdentityConfig, OAuthConfig};
use crate::cursor::CursorCodec;
use crate::databricks::DatabricksGoverned;
use crate::guard::SqlGuard;
use crate::http::{HttpSettings, ServeLimits, app, serve};
use crate::identity::databricks_apps::{AppsIdentity, HttpIdentitySource};
use crate::identity::http::{BearerAuth, resource_metadata_url};
use crate::identity::scopes::ScopePolicy;
use crate::identity::{JwtVerifier, VerifiedUser, resolve_stdio_user};
use crate::immuta::ImmutaClient;
use crate::metrics::{GaugeReading, Metrics, Service, UpstreamObserver};
use crate::ops::Observability;
use crate::query::GovernedQuery;
use crate::sandbox::authz::{AuthorizationServer, AuthzSettings};
use crate::sandbox::issuer::TestIssuer;
use crate::server::{GovernedServer, UserSource};
use crate::snowflake::SnowflakeGoverned;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Why the server could not be assembled or started.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("configuration: {0}")]
    Config(String),
    #[error("identity: {0}")]
    Identity(#[from] crate::identity::AuthError),
    #[error("Immuta: {0}")]
    Immuta(#[from] crate::immuta::ImmutaError),
    #[error("Snowflake: {0}")]
    Snowflake(#[from] crate::snowflake::SnowflakeError),
    #[error("Databricks: {0}")]
    Databricks(#[from] crate::databricks::DatabricksError),
    #[error("HTTP client: {0}")]
    HttpClient(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("MCP transport: {0}")]
    Transport(String),
}

/// The configured platform paths.
pub struct Platforms {
    pub immuta: Option<ImmutaClient>,
    pub snowflake: Option<Arc<SnowflakeGoverned>>,
    pub databricks: Option<Arc<DatabricksGoverned>>,
    /// Seals and opens `fetch_more` cursors (`server.cursor_key`, else a per-process key).
    pub cursors: CursorCodec,
    /// Where the paths and the MCP server count what they do.
    pub metrics: Metrics,
    /// The credential cache shared with other replicas (`[cache] backend = "redis"`).
    pub shared_cache: Option<Arc<crate::shared::SharedStore>>,
    /// Every agent's Snowflake path, by agent name (`snowflake` is the first).
    pub snowflake_agents: Vec<(String, Arc<SnowflakeGoverned>)>,
    /// Every agent's Databricks path, by agent name (`databricks` is the first).
    pub databricks_agents: Vec<(String, Arc<DatabricksGoverned>)>,
}

impl Platforms {
    /// The Snowflake path the tools use: the one agent's, or the pool's.
    pub fn snowflake_query(&self) -> Option<Arc<dyn GovernedQuery>> {
        pooled(crate::result::Platform::Snowflake, &self.snowflake_agents)
    }

    /// The Databricks path the tools use: the one agent's, or the pool's.
    pub fn databricks_query(&self) -> Option<Arc<dyn GovernedQuery>> {
        pooled(crate::result::Platform::Databricks, &self.databricks_agents)
    }
}

fn pooled<P: GovernedQuery + 'static>(
    platform: crate::result::Platform,
    agents: &[(String, Arc<P>)],
) -> Option<Arc<dyn GovernedQuery>> {
    match agents {
        [] => None,
        [(_, only)] => Some(only.clone() as Arc<dyn GovernedQuery>),
        many => Some(Arc::new(crate::agents::AgentPool::new(
            platform,
            many.iter()
                .map(|(name, p)| (name.clone(), p.clone() as Arc<dyn GovernedQuery>))
                .collect(),
        ))),
    }
}

/// The cursor codec `server.cursor_key` names, or a random per-process one.
fn cursor_codec(cfg: &Config) -> Result<CursorCodec, AppError> {
    let Some(key) = &cfg.server.cursor_key else {
        tracing::info!(
            "server.cursor_key is not set: fetch_more cursors use a per-process key and die with the process"
        );
        return Ok(CursorCodec::random());
    };
    let secret = key
        .resolve("server.cursor_key")
        .map_err(|e| AppError::Config(e.to_string()))?;
    CursorCodec::from_secret(&secret).map_err(|e| AppError::Config(e.to_string()))
}

/// Build the Immuta client and the platform paths the configuration names.
pub fn build_platforms(cfg: &Config) -> Result<Platforms, AppError> {
    build_observed_platforms(cfg, &Metrics::new(cfg.metrics.per_user))
}

/// [`build_platforms`], counting into `metrics`.
pub fn build_observed_platforms(cfg: &Config, metrics: &Metrics) -> Result<Platforms, AppError> {
    cfg.validate()
        .map_err(|e| AppError::Config(e.to_string()))?;
    let http =
        crate::http_client::build_for(cfg).map_err(|e| AppError::HttpClient(e.to_string()))?;
    let retry = cfg.limits.retry_policy().observed(Some(UpstreamObserver {
        metrics: metrics.clone(),
        service: Service::Immuta,
    }));
    let cursors = cursor_codec(cfg)?;
    let Some(immuta_cfg) = &cfg.immuta else {
        return Ok(Platforms {
            immuta: None,
            snowflake: None,
            databricks: None,
            cursors,
            metrics: metrics.clone(),
            shared_cache: None,
            snowflake_agents: Vec::new(),
            databricks_agents: Vec::new(),
        });
    };
    let shared_cache =
        crate::shared::from_config(&cfg.cache).map_err(|e| AppError::Config(e.to_string()))?;
    let immuta = ImmutaClient::new(immuta_cfg, http.clone(), retry.clone())?;
    // The agent pool: `[immuta]`/`[snowflake]`/`[databricks]` first, then `[[agents]]`.
    let identities = crate::agents::identities(cfg);
    let snowflake_pool_size = identities.iter().filter(|a| a.snowflake.is_some()).count();
    let (mut snowflake_agents, mut databricks_agents) = (Vec::new(), Vec::new());
    for (i, agent) in identities.iter().enumerate() {
        let agent_immuta = match i {
            0 => immuta.clone(),
            _ => ImmutaClient::new(&agent.immuta, http.clone(), retry.clone())?,
        };
        if let Some(s) = &agent.snowflake {
            let path = SnowflakeGoverned::new(s, agent_immuta.clone(), &cfg.limits, http.clone())?
                .with_pool_size(snowflake_pool_size);
            let path = match &shared_cache {
                Some(store) => path.with_shared_cache(store.clone()),
                None => path,
            };
            let path = path.with_metrics(metrics, &s.user);
            snowflake_agents.push((agent.name.clone(), Arc::new(path)));
        }
        if let Some(d) = &agent.databricks {
            let path = DatabricksGoverned::new(d, agent_immuta, &cfg.limits, http.clone())?;
            let path = match &shared_cache {
                Some(store) => path.with_shared_cache(store.clone()),
                None => path,
            };
            let path = path.with_metrics(metrics);
            databricks_agents.push((agent.name.clone(), Arc::new(path)));
        }
    }
    let snowflake = snowflake_agents.first().map(|(_, p)| p.clone());
    let databricks = databricks_agents.first().map(|(_, p)| p.clone());
    Ok(Platforms {
        immuta: Some(immuta),
        snowflake,
        databricks,
        cursors,
        metrics: metrics.clone(),
        shared_cache,
        snowflake_agents,
        databricks_agents,
    })
}

/// The MCP handler for the given platforms and user source.
pub fn build_server(cfg: &Config, platforms: &Platforms, users: UserSource) -> GovernedServer {
    GovernedServer::new(
        platforms.snowflake_query(),
        platforms.databricks_query(),
        SqlGuard::new(cfg.guard.read_only, cfg.limits.max_sql_bytes),
        // A configuration that passed `validate` always has a valid list; an
        // unvalidated one that does not, allows nothing (fail closed).
        AllowList::from_config(cfg).unwrap_or_else(|_| AllowList::nothing()),
        cfg.limits.clone(),
        users,
    )
    .with_cursors(platforms.cursors.clone())
    .with_metrics(platforms.metrics.clone())
    .with_prewarm(cfg.cache.prewarm)
}

fn verifier(oauth: &OAuthConfig, audience: &str, cfg: &Config) -> Result<JwtVerifier, AppError> {
    let http =
        crate::http_client::build_for(cfg).map_err(|e| AppError::HttpClient(e.to_string()))?;
    Ok(JwtVerifier::new(oauth, audience, http)?)
}

/// Resolve the stdio user from configuration (and verify its ID token, if any).
pub async fn stdio_user(cfg: &Config) -> Result<VerifiedUser, AppError> {
    let id: &IdentityConfig = &cfg.identity;
    let verifier = match (&id.stdio_id_token, &id.oauth) {
        (Some(_), Some(oauth)) => {
            let audience = oauth
                .id_token_audience
                .clone()
                .or_else(|| cfg.server.resource_url.clone())
                .unwrap_or_default();
            Some(verifier(oauth, &audience, cfg)?)
        }
        _ => None,
    };
    Ok(resolve_stdio_user(id, verifier.as_ref()).await?)
}

/// Serve MCP over stdin/stdout until the client disconnects (no readiness
/// probes: `immuta-mcp serve` uses [`run_stdio_observed`]).
pub async fn run_stdio(cfg: &Config) -> Result<(), AppError> {
    run_stdio_observed(cfg, &Observability::without_probes(cfg)).await
}

/// [`run_stdio`], counting into `obs` and probing readiness while it runs.
pub async fn run_stdio_observed(cfg: &Config, obs: &Observability) -> Result<(), AppError> {
    use rmcp::ServiceExt;
    let user = stdio_user(cfg).await?;
    let platforms = build_observed_platforms(cfg, &obs.metrics)?;
    let stop = CancellationToken::new();
    let _stop_probes = stop.clone().drop_guard();
    obs.start_probes(cfg, &platforms, None, stop)?;
    // The one stdio session is live while this function runs.
    let live = Arc::new(());
    let session = Arc::downgrade(&live);
    obs.metrics.add_gauge_source(Box::new(move || {
        session.upgrade().map(|_| GaugeReading::ActiveSessions(1))
    }));
    tracing::info!(user = ?user.user_id, source = ?user.source, "serving MCP over stdio");
    let server = build_server(cfg, &platforms, UserSource::Fixed(user));
    let running = server
        .serve(crate::stdio::transport())
        .await
        .map_err(|e| AppError::Transport(e.to_string()))?;
    running
        .waiting()
        .await
        .map_err(|e| AppError::Transport(e.to_string()))?;
    Ok(())
}

/// A running HTTP server.
pub struct HttpServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The MCP endpoint and token audience.
    pub resource_url: String,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    /// Stops accepting connections (before the MCP sessions are closed).
    accepting: CancellationToken,
    /// The tool calls in flight.
    calls: crate::drain::Drain,
    /// Every agent's Snowflake path, to remove the PATs this process minted.
    snowflake_agents: Vec<Arc<SnowflakeGoverned>>,
}

/// What a graceful shutdown did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Calls still running at the deadline, cancelled on the platforms.
    pub cancelled_calls: usize,
    /// PATs this process minted and removed.
    pub removed_pats: usize,
}

impl HttpServer {
    /// Stop accepting requests and wait for the server task.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.task).await;
    }

    /// SIGTERM/SIGINT: stop accepting connections, let the calls in flight
    /// finish for up to `deadline`, cancel the rest (each path cancels its
    /// statement on the platform), close the MCP sessions, then remove the
    /// PATs this process minted that no other replica shares.
    pub async fn shutdown_gracefully(self, deadline: Duration) -> ShutdownReport {
        self.accepting.cancel();
        let mut cancelled_calls = 0;
        if !self.calls.wait_idle(deadline).await {
            cancelled_calls = self.calls.in_flight();
            tracing::warn!(
                calls = cancelled_calls,
                "shutdown deadline reached; cancelling the calls still running"
            );
            self.calls.cancel_all();
            // The cancels reach the platforms; the calls then end.
            self.calls.wait_idle(Duration::from_secs(15)).await;
        }
        // Let the last responses flush: connections whose calls ended close
        // on their own; open SSE streams end with the sessions, closed next.
        let mut task = self.task;
        let flushed = tokio::time::timeout(Duration::from_millis(500), &mut task).await;
        self.shutdown.cancel();
        if flushed.is_err() {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
        let mut removed_pats = 0;
        for path in &self.snowflake_agents {
            removed_pats += path.remove_unshared_pats().await;
        }
        tracing::info!(cancelled_calls, removed_pats, "shut down");
        ShutdownReport {
            cancelled_calls,
            removed_pats,
        }
    }

    /// Wait until the server stops (it stops on a shutdown signal or an I/O error).
    pub async fn wait(self) -> std::io::Result<()> {
        match self.task.await {
            Ok(r) => r,
            Err(e) => Err(std::io::Error::other(e.to_string())),
        }
    }
}

/// Bind `addr` and serve MCP over streamable HTTP with bearer-token identity
/// (no readiness probes: `immuta-mcp serve` uses [`start_http_observed`]).
pub async fn start_http(cfg: &Config, addr: &str) -> Result<HttpServer, AppError> {
    start_http_observed(cfg, addr, &Observability::without_probes(cfg)).await
}

/// [`start_http`], counting into `obs` and probing readiness until shutdown.
pub async fn start_http_observed(
    cfg: &Config,
    addr: &str,
    obs: &Observability,
) -> Result<HttpServer, AppError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| AppError::Bind {
            addr: addr.into(),
            source,
        })?;
    let local = listener.local_addr().map_err(|source| AppError::Bind {
        addr: addr.into(),
        source,
    })?;
    let resource_url = cfg
        .server
        .resource_url
        .clone()
        .unwrap_or_else(|| format!("http://{local}/mcp"));
    let (auth, issuer, scopes, verifier) = request_auth(cfg, &resource_url)?;
    let platforms = build_observed_platforms(cfg, &obs.metrics)?;
    let server = build_server(cfg, &platforms, UserSource::PerRequest);
    let shutdown = CancellationToken::new();
    obs.start_probes(cfg, &platforms, verifier, shutdown.clone())?;
    let settings = HttpSettings {
        resource_url: resource_url.clone(),
        issuer,
        allowed_origins: cfg.server.allowed_origins.clone(),
        stateful_sessions: cfg.server.stateful_sessions,
        max_sessions_per_user: cfg.server.max_sessions_per_user,
        max_sessions: cfg.server.max_sessions,
        scopes,
        shutdown: shutdown.clone(),
        metrics: obs.metrics.clone(),
        readiness: obs.readiness.clone(),
    };
    let calls = server.drain();
    let router = app(server, auth, &settings);
    let limits = ServeLimits::from(&cfg.server);
    // The listener stops first; the MCP sessions (`shutdown`) only after the calls drained.
    let accepting = shutdown.child_token();
    let task = tokio::spawn(serve(listener, router, accepting.clone(), limits));
    tracing::info!(%local, %resource_url, "serving MCP over streamable HTTP");
    Ok(HttpServer {
        addr: local,
        resource_url,
        shutdown,
        task,
        accepting,
        calls,
        snowflake_agents: platforms
            .snowflake_agents
            .iter()
            .map(|(_, p)| p.clone())
            .collect(),
    })
}

/// How HTTP requests are authenticated (`identity.source`): the middleware state, the
/// issuer the protected-resource metadata names, the scope policy, and the bearer-token
/// verifier whose JWKS readiness watches (none when the Apps proxy names the user).
type RequestAuth = (Arc<BearerAuth>, String, ScopePolicy, Option<JwtVerifier>);

fn request_auth(cfg: &Config, resource_url: &str) -> Result<RequestAuth, AppError> {
    let metadata_url = resource_metadata_url(resource_url);
    if cfg.identity.source == HttpIdentitySource::DatabricksApps {
        let workspace = cfg
            .identity
            .apps_workspace_url(cfg.databricks.as_ref())
            .ok_or_else(|| {
                AppError::Config(
                    "identity.source = \"databricks_apps\" needs databricks.host or identity.databricks_apps.workspace_url".into(),
                )
            })?
            .trim_end_matches('/')
            .to_string();
        let http =
            crate::http_client::build_for(cfg).map_err(|e| AppError::HttpClient(e.to_string()))?;
        let apps = AppsIdentity::new(cfg.identity.databricks_apps.clone(), &workspace, http);
        let scopes = ScopePolicy {
            required: Vec::new(),
            per_tool: Default::default(),
            resource_metadata_url: metadata_url.clone(),
        };
        tracing::info!(%workspace, require_forwarded_token = cfg.identity.databricks_apps.require_forwarded_token, "users come from the Databricks Apps proxy");
        return Ok((
            Arc::new(BearerAuth::databricks_apps(Arc::new(apps), metadata_url)),
            format!("{workspace}/oidc"),
            scopes,
            None,
        ));
    }
    let oauth = cfg.identity.oauth.as_ref().ok_or_else(|| {
        AppError::Config("HTTP needs [identity.oauth] (issuer, jwks_url): every request must carry a bearer token".into())
    })?;
    let verifier = verifier(oauth, resource_url, cfg)?;
    let auth = BearerAuth::new(verifier.clone(), metadata_url.clone());
    let scopes = ScopePolicy {
        required: oauth.required_scopes.clone(),
        per_tool: oauth.tool_scopes.clone(),
        resource_metadata_url: metadata_url,
    };
    Ok((Arc::new(auth), oauth.issuer.clone(), scopes, Some(verifier)))
}

/// A local OAuth issuer for sandbox mode: serves its JWKS on loopback and mints user tokens.
pub struct LocalIssuer {
    pub issuer: Arc<TestIssuer>,
    /// The authorization server (device and PKCE login, refresh) over the same key.
    pub authz: Arc<AuthorizationServer>,
    shutdown: CancellationToken,
}

impl LocalIssuer {
    /// Bind 127.0.0.1:0 and serve the authorization server (metadata, JWKS, login endpoints).
    pub async fn start() -> Result<Self, AppError> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|source| AppError::Bind {
                addr: "127.0.0.1:0".into(),
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| AppError::Bind {
            addr: "127.0.0.1:0".into(),
            source,
        })?;
        let issuer = Arc::new(TestIssuer::new(format!("http://{addr}")));
        let authz = Arc::new(AuthorizationServer::new(
            issuer.clone(),
            AuthzSettings::default(),
        ));
        let shutdown = CancellationToken::new();
        tokio::spawn(serve(
            listener,
            authz.clone().router(),
            shutdown.clone(),
            ServeLimits::default(),
        ));
        Ok(Self {
            issuer,
            authz,
            shutdown,
        })
    }

    /// The identity config accepting this issuer's tokens.
    pub fn oauth_config(&self) -> OAuthConfig {
        self.issuer.oauth_config()
    }
}

impl Drop for LocalIssuer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// One line of `immuta-mcp check`.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckLine {
    pub component: &'static str,
    pub ok: bool,
    pub message: String,
    /// For a failed prerequisite: the statement (from Immuta's guide) that fixes it.
    pub fix: Option<String>,
}

/// Validate the configuration and probe each configured upstream without running user SQL.
pub async fn check(cfg: &Config) -> Vec<CheckLine> {
    let mut lines = Vec::new();
    let line = |component, ok, message: String| CheckLine {
        component,
        ok,
        message,
        fix: None,
    };
    if let Err(e) = cfg.validate() {
        lines.push(line("config", false, e.to_string()));
        return lines;
    }
    lines.push(line("config", true, "valid".into()));
    match (&cfg.identity.stdio_user, &cfg.identity.oauth) {
        _ if cfg.identity.source == HttpIdentitySource::DatabricksApps => {
            lines.push(crate::doctor::apps_identity(cfg).await)
        }
        (None, None) => lines.push(line(
            "identity",
            false,
            "neither identity.stdio_user (stdio) nor identity.oauth (HTTP) is set".into(),
        )),
        (_, Some(oauth)) => {
            let http = crate::http_client::build_for(cfg);
            let probe = match http {
                Ok(http) => http
                    .get(&oauth.jwks_url)
                    .send()
                    .await
                    .map(|r| r.status().as_u16()),
                Err(e) => {
                    lines.push(line("identity", false, e.to_string()));
                    return lines;
                }
            };
            match probe {
                Ok(200) => lines.push(line(
                    "identity",
                    true,
                    format!("JWKS reachable at {}", oauth.jwks_url),
                )),
                Ok(s) => lines.push(line(
                    "identity",
                    false,
                    format!("JWKS at {} answered HTTP {s}", oauth.jwks_url),
                )),
                Err(e) => lines.push(line(
                    "identity",
                    false,
                    format!(
                        "JWKS at {} unreachable: {}",
                        oauth.jwks_url,
                        crate::retry::describe_transport_error(&e)
                    ),
                )),
            }
        }
        (Some(u), None) => lines.push(line("identity", true, format!("stdio user {u}"))),
    }
    let platforms = match build_platforms(cfg) {
        Ok(p) => p,
        Err(e) => {
            lines.push(line("platforms", false, e.to_string()));
            return lines;
        }
    };
    match &platforms.immuta {
        Some(immuta) => match immuta.probe().await {
            Ok(auth) => lines.push(line(
                "immuta",
                true,
                format!(
                    "API key accepted by {} (immuta.auth = {})",
                    immuta.base_url(),
                    auth.as_str()
                ),
            )),
            Err(e) => lines.push(line("immuta", false, e.to_string())),
        },
        None => lines.push(line("immuta", false, "[immuta] is not configured".into())),
    }
    // One line per agent; named when there is a pool.
    let named = |name: &str, m: String, pool: usize| match pool {
        1 => m,
        _ => format!("agent {name}: {m}"),
    };
    let pool = platforms.snowflake_agents.len();
    for (name, s) in &platforms.snowflake_agents {
        lines.push(match s.check().await {
            Ok(m) => line("snowflake", true, named(name, m, pool)),
            Err(e) => line("snowflake", false, named(name, e.to_string(), pool)),
        });
        lines.extend(crate::doctor::snowflake(s).await);
    }
    let pool = platforms.databricks_agents.len();
    for (name, d) in &platforms.databricks_agents {
        lines.push(match d.check().await {
            Ok(m) => line("databricks", true, named(name, m, pool)),
            Err(e) => line("databricks", false, named(name, e.to_string(), pool)),
        });
        lines.extend(crate::doctor::databricks(d).await);
    }
    if let Some(store) = &platforms.shared_cache {
        lines.push(match store.check().await {
            Ok(m) => line("cache", true, m),
            Err(m) => line("cache", false, m),
        });
    }
    lines
}

/// `check --as USER`: the whole on-behalf-of path once for `user` on each configured
/// platform (see [`crate::doctor::as_user`]), cleaning up what it created.
pub async fn check_as(cfg: &Config, user: &str) -> Vec<CheckLine> {
    match build_platforms(cfg) {
        Ok(platforms) => crate::doctor::as_user(cfg, &platforms, user).await,
        Err(e) => vec![CheckLine {
            component: "platforms",
            ok: false,
            message: e.to_string(),
            fix: None,
        }],
    }
}
