//! `immuta-mcp` command line: `sandbox`, `serve`, `check`, `connect`.
//!
//! Logs go to stderr (stdout is the MCP stdio transport). Everything the
//! sandbox prints for humans goes to stderr too.

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use immuta_mcp::app;
use immuta_mcp::config::Config;
use immuta_mcp::ops::Observability;
use immuta_mcp::sandbox::{Fixture, Sandbox, SandboxOptions};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "immuta-mcp",
    version,
    about = "Governed SQL tools for MCP clients through Immuta's on-behalf-of flow"
)]
struct Cli {
    /// Log filter (RUST_LOG syntax), e.g. `info`, `immuta_mcp=debug`.
    #[arg(long, global = true, env = "IMMUTA_MCP_LOG", default_value = "info")]
    log: String,
    /// Log lines as JSON.
    #[arg(long, global = true)]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the local emulators of Immuta, Snowflake and Databricks plus the MCP server wired to them.
    Sandbox {
        /// Fixture file (TOML) replacing the built-in demo data.
        #[arg(long)]
        fixture: Option<PathBuf>,
        /// stdio end user (defaults to the fixture's first user).
        #[arg(long)]
        user: Option<String>,
        /// Serve MCP over streamable HTTP at this address (e.g. 127.0.0.1:8080) instead of stdio.
        #[arg(long)]
        http: Option<String>,
        /// Serve /metrics, /healthz and /readyz (no token) at this address, e.g. 127.0.0.1:9090.
        #[arg(long)]
        metrics: Option<String>,
    },
    /// Serve MCP against the real Immuta, Snowflake and Databricks from the config file.
    Serve {
        /// Serve over stdin/stdout (Claude Desktop).
        #[arg(long, conflicts_with = "http")]
        stdio: bool,
        /// Serve over streamable HTTP at this address.
        #[arg(long)]
        http: Option<String>,
        /// Config file (TOML).
        #[arg(long, env = "IMMUTA_MCP_CONFIG", default_value = "immuta-mcp.toml")]
        config: PathBuf,
        /// Serve /metrics, /healthz and /readyz (no token) at this address; bind it to a private address.
        #[arg(long)]
        metrics: Option<String>,
    },
    /// Validate the config, reach each upstream and verify the agent accounts'
    /// prerequisites, printing the statement that fixes each unmet one.
    Check {
        #[arg(long, env = "IMMUTA_MCP_CONFIG", default_value = "immuta-mcp.toml")]
        config: PathBuf,
        /// Also run the whole on-behalf-of path once for this end user on each
        /// platform (vend, credential, SELECT 1, applied identity), then clean up.
        #[arg(long = "as", value_name = "USER")]
        as_user: Option<String>,
    },
    /// Serve MCP over stdio by forwarding to a shared immuta-mcp HTTP server,
    /// signed in with your own OAuth login (no platform secret on this machine).
    Connect(ConnectArgs),
}

#[derive(clap::Args)]
struct ConnectArgs {
    /// The shared server's MCP endpoint, e.g. https://mcp.example.com/mcp.
    url: String,
    /// Preferred sign-in: `browser` (authorization code + PKCE, loopback redirect)
    /// or `device` (a code to enter on any device); the other is used if the
    /// authorization server offers only that one.
    #[arg(long, value_enum, default_value = "browser")]
    login: LoginArg,
    /// OAuth client id registered for immuta-mcp at your identity provider.
    #[arg(long, env = "IMMUTA_MCP_CLIENT_ID", default_value = immuta_mcp::sandbox::authz::DEFAULT_CLIENT_ID)]
    client_id: String,
    /// Scopes to request (space-separated), if your identity provider needs them.
    #[arg(long)]
    scope: Option<String>,
    /// Directory of the token files (default: <config dir>/immuta-mcp/tokens),
    /// used by `--token-backend file`, and by `auto` when no OS keyring answers.
    #[arg(long, env = "IMMUTA_MCP_TOKEN_STORE")]
    token_store: Option<PathBuf>,
    /// Where tokens are cached: `auto` (the OS keyring if one answers, else
    /// the files), `keyring` (OS keyring only) or `file`.
    #[arg(
        long,
        value_enum,
        env = "IMMUTA_MCP_TOKEN_BACKEND",
        default_value = "auto"
    )]
    token_backend: TokenBackendArg,
    /// How long one OS keyring call may take before it counts as unavailable, seconds.
    #[arg(long, default_value_t = 5)]
    keyring_timeout_secs: u64,
    /// Extra CA certificates (PEM) to trust for the server and the identity provider.
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// How long the first request waits for the sign-in, seconds.
    #[arg(long, default_value_t = 300)]
    login_timeout_secs: u64,
    /// Print the sign-in address instead of opening a browser.
    #[arg(long)]
    no_browser: bool,
    /// Revoke and forget the cached tokens for this server, then exit.
    #[arg(long)]
    logout: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum TokenBackendArg {
    Auto,
    Keyring,
    File,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LoginArg {
    Browser,
    Device,
}

fn init_logging(filter: &str, json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    init_logging(&cli.log, cli.log_json);
    match cli.command {
        Command::Sandbox {
            fixture,
            user,
            http,
            metrics,
        } => sandbox(fixture, user, http, metrics).await,
        Command::Serve {
            stdio,
            http,
            config,
            metrics,
        } => {
            let cfg =
                Config::load(&config).with_context(|| format!("loading {}", config.display()))?;
            let obs = observability(&cfg, stdio, metrics.as_deref());
            let _metrics = serve_metrics(&obs, metrics.as_deref()).await?;
            match (stdio, http) {
                (true, _) => {
                    hint_when_terminal(&format!("serve --stdio --config {}", config.display()));
                    Ok(app::run_stdio_observed(&cfg, &obs).await?)
                }
                (false, Some(addr)) => {
                    let server = app::start_http_observed(&cfg, &app_port(&addr), &obs).await?;
                    eprintln!("immuta-mcp: MCP endpoint {}", server.resource_url);
                    let deadline = Duration::from_secs(cfg.server.shutdown_deadline_secs);
                    wait_for_shutdown(server, deadline).await
                }
                (false, None) => bail!("say how to serve: --stdio or --http ADDR"),
            }
        }
        Command::Connect(args) => connect(args).await,
        Command::Check { config, as_user } => {
            let cfg =
                Config::load(&config).with_context(|| format!("loading {}", config.display()))?;
            let mut lines = app::check(&cfg).await;
            if let Some(user) = as_user {
                lines.extend(app::check_as(&cfg, &user).await);
            }
            let mut failed = false;
            for l in &lines {
                eprintln!(
                    "{} {:<24} {}",
                    if l.ok { "ok  " } else { "FAIL" },
                    l.component,
                    l.message
                );
                if let Some(fix) = &l.fix {
                    eprintln!("     fix:");
                    for fix_line in fix.lines() {
                        eprintln!("       {fix_line}");
                    }
                }
                failed |= !l.ok;
            }
            if failed {
                bail!("check failed");
            }
            Ok(())
        }
    }
}

/// Metrics and readiness for this process. A stdio server without `--metrics`
/// has no listener that could answer `/readyz`, so it runs no probes (each
/// desktop user's process would otherwise probe the upstreams for nobody).
fn observability(cfg: &Config, stdio: bool, metrics: Option<&str>) -> Observability {
    if stdio && metrics.is_none() {
        Observability::without_probes(cfg)
    } else {
        Observability::new(cfg)
    }
}

/// Start the metrics listener when `--metrics ADDR` was given.
async fn serve_metrics(
    obs: &Observability,
    addr: Option<&str>,
) -> Result<Option<immuta_mcp::ops::MetricsServer>> {
    let Some(addr) = addr else { return Ok(None) };
    let server = obs.serve_metrics(addr).await?;
    eprintln!(
        "immuta-mcp: metrics at http://{}/metrics (also /healthz, /readyz)",
        server.addr
    );
    Ok(Some(server))
}

/// Someone started the stdio server from a terminal (`std::io::IsTerminal`
/// on stdin): say in one line what it waits for and how to connect a client.
/// `command` is how a client would start this server (e.g. `sandbox`).
fn hint_when_terminal(command: &str) {
    use std::io::IsTerminal;
    if std::io::stdin().is_terminal() {
        eprintln!(
            "immuta-mcp: waiting for an MCP client on stdin/stdout (not an interactive prompt); \
             connect one instead: `cargo run --example client`, or the MCP Inspector: \
             `npx @modelcontextprotocol/inspector target/debug/immuta-mcp {command}`"
        );
    }
}

/// `--http` with `$DATABRICKS_APP_PORT` (or `${DATABRICKS_APP_PORT}`) replaced by that
/// variable (8000 when unset): a Databricks App's `app.yaml` command is not run by a shell.
fn app_port(addr: &str) -> String {
    let port = std::env::var("DATABRICKS_APP_PORT").unwrap_or_else(|_| "8000".into());
    addr.replace("${DATABRICKS_APP_PORT}", &port)
        .replace("$DATABRICKS_APP_PORT", &port)
}

/// Serve until SIGINT or SIGTERM, then shut down gracefully (exit 0).
async fn wait_for_shutdown(server: app::HttpServer, deadline: std::time::Duration) -> Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = terminate.recv() => {}
    }
    eprintln!("immuta-mcp: shutting down (in-flight calls get {deadline:?})");
    let report = server.shutdown_gracefully(deadline).await;
    eprintln!(
        "immuta-mcp: stopped ({} call(s) cancelled, {} PAT(s) removed)",
        report.cancelled_calls, report.removed_pats
    );
    Ok(())
}

async fn sandbox(
    fixture: Option<PathBuf>,
    user: Option<String>,
    http: Option<String>,
    metrics: Option<String>,
) -> Result<()> {
    let fixture = match fixture {
        Some(path) => {
            Fixture::load(&path).with_context(|| format!("loading fixture {}", path.display()))?
        }
        None => Fixture::demo(),
    };
    let users = fixture.user_ids();
    let sandbox = Sandbox::start(SandboxOptions {
        fixture,
        ..Default::default()
    })
    .await?;
    let mut cfg = sandbox.client_config();
    let obs = observability(&cfg, http.is_none(), metrics.as_deref());
    let _metrics = serve_metrics(&obs, metrics.as_deref()).await?;
    eprintln!(
        "immuta-mcp sandbox (emulated services on loopback; no real Immuta/Snowflake/Databricks is contacted)"
    );
    eprintln!("  Immuta OBO API      {}", sandbox.immuta_url);
    eprintln!("  Snowflake SQL API   {}", sandbox.snowflake_url);
    eprintln!("  Databricks          {}", sandbox.databricks_url);
    eprintln!("  demo users          {}", users.join(", "));
    match http {
        None => {
            if let Some(u) = user {
                if !users.contains(&u) {
                    bail!(
                        "--user {u} is not a user of the fixture (users: {})",
                        users.join(", ")
                    );
                }
                cfg.identity.stdio_user = Some(u);
            }
            eprintln!(
                "  MCP over stdio as   {}",
                cfg.identity
                    .stdio_user
                    .as_deref()
                    .unwrap_or("(no user in fixture)")
            );
            hint_when_terminal("sandbox");
            app::run_stdio_observed(&cfg, &obs).await?;
            sandbox.shutdown().await;
            Ok(())
        }
        Some(addr) => {
            let issuer = app::LocalIssuer::start().await?;
            cfg.identity.oauth = Some(issuer.oauth_config());
            let server = app::start_http_observed(&cfg, &addr, &obs).await?;
            issuer.authz.set_users(users.clone());
            issuer.authz.register_resource(&server.resource_url);
            eprintln!("  OAuth issuer        {}", issuer.issuer.issuer_url());
            eprintln!("  MCP endpoint        {}", server.resource_url);
            eprintln!("  try the desktop bridge (sign in as any demo user):");
            eprintln!(
                "    immuta-mcp connect {} --login device   (approve at {})",
                server.resource_url,
                issuer.authz.verification_uri()
            );
            eprintln!(
                "  bearer tokens (valid 12 h, audience {}):",
                server.resource_url
            );
            for u in &users {
                let token =
                    issuer
                        .issuer
                        .mint(u, &server.resource_url, Duration::from_secs(12 * 3600));
                eprintln!("    {u}: {token}");
            }
            let deadline = Duration::from_secs(cfg.server.shutdown_deadline_secs);
            wait_for_shutdown(server, deadline).await
        }
    }
}

async fn connect(args: ConnectArgs) -> Result<()> {
    use immuta_mcp::bridge::keyring_store::KeyringStore;
    use immuta_mcp::bridge::store::{FileStore, TokenBackend, TokenStore};
    use immuta_mcp::bridge::{self, ConnectOptions, LoginMethod, Session};
    let files = match args.token_store {
        Some(dir) => FileStore::new(dir),
        None => FileStore::default_location()?,
    };
    let backend = match args.token_backend {
        TokenBackendArg::Auto => TokenBackend::Auto,
        TokenBackendArg::Keyring => TokenBackend::Keyring,
        TokenBackendArg::File => TokenBackend::File,
    };
    let keyring = KeyringStore::new(Duration::from_secs(args.keyring_timeout_secs.max(1)));
    let token_store = TokenStore::new(backend, files, keyring);
    let session = Session::new(ConnectOptions {
        url: args.url.clone(),
        login: match args.login {
            LoginArg::Browser => LoginMethod::Browser,
            LoginArg::Device => LoginMethod::Device,
        },
        client_id: args.client_id,
        scope: args.scope,
        token_store,
        ca_file: args.ca_file,
        login_timeout: Duration::from_secs(args.login_timeout_secs),
        open_browser: !args.no_browser,
    })
    .await?;
    if args.logout {
        let forgot = session.logout().await?;
        eprintln!(
            "immuta-mcp connect: {} for {}",
            if forgot {
                "signed out"
            } else {
                "no cached sign-in"
            },
            args.url
        );
        return Ok(());
    }
    bridge::forward::run(
        std::sync::Arc::new(session),
        tokio::io::stdin(),
        tokio::io::stdout(),
    )
    .await?;
    Ok(())
}
