//! `immuta-mcp` command line: `sandbox`, `serve`, `check`.
//!
//! Logs go to stderr (stdout is the MCP stdio transport). Everything the
//! sandbox prints for humans goes to stderr too.

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use immuta_mcp::app;
use immuta_mcp::config::Config;
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
    },
    /// Validate the config and reach each upstream, with clear messages.
    Check {
        #[arg(long, env = "IMMUTA_MCP_CONFIG", default_value = "immuta-mcp.toml")]
        config: PathBuf,
    },
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
        } => sandbox(fixture, user, http).await,
        Command::Serve {
            stdio,
            http,
            config,
        } => {
            let cfg =
                Config::load(&config).with_context(|| format!("loading {}", config.display()))?;
            match (stdio, http) {
                (true, _) => Ok(app::run_stdio(&cfg).await?),
                (false, Some(addr)) => {
                    let server = app::start_http(&cfg, &addr).await?;
                    eprintln!("immuta-mcp: MCP endpoint {}", server.resource_url);
                    let deadline = Duration::from_secs(cfg.server.shutdown_deadline_secs);
                    wait_for_shutdown(server, deadline).await
                }
                (false, None) => bail!("say how to serve: --stdio or --http ADDR"),
            }
        }
        Command::Check { config } => {
            let cfg =
                Config::load(&config).with_context(|| format!("loading {}", config.display()))?;
            let lines = app::check(&cfg).await;
            let mut failed = false;
            for l in &lines {
                eprintln!(
                    "{} {:<10} {}",
                    if l.ok { "ok  " } else { "FAIL" },
                    l.component,
                    l.message
                );
                failed |= !l.ok;
            }
            if failed {
                bail!("check failed");
            }
            Ok(())
        }
    }
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
            app::run_stdio(&cfg).await?;
            sandbox.shutdown().await;
            Ok(())
        }
        Some(addr) => {
            let issuer = app::LocalIssuer::start().await?;
            cfg.identity.oauth = Some(issuer.oauth_config());
            let server = app::start_http(&cfg, &addr).await?;
            eprintln!("  OAuth issuer        {}", issuer.issuer.issuer_url());
            eprintln!("  MCP endpoint        {}", server.resource_url);
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
