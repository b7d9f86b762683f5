//! The stack a section measures: sandbox + local OAuth issuer + one or more MCP
//! servers over streamable HTTP, all in this process; MCP client sessions against
//! it, and one tool call as the sections time it (an `isError` result counts as an
//! error, so a failed call is never timed as a fast one).

use super::upstream::Upstream;
use super::{CALL_TIMEOUT, SPAWN_TIMEOUT};
use anyhow::{Result, anyhow, bail};
use immuta_mcp::app::{self, LocalIssuer};
use immuta_mcp::config::Config;
use immuta_mcp::sandbox::{Fixture, Sandbox, SandboxOptions, SandboxSettings};
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::RunningService;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{RoleClient, ServiceExt};
use serde_json::Value;
use std::time::{Duration, Instant};

/// An MCP client session.
pub(crate) type Client = RunningService<RoleClient, ()>;

/// A sandbox, the issuer of its users' bearer tokens and the MCP server under test.
pub(crate) struct Stack {
    pub(crate) sandbox: Sandbox,
    pub(crate) issuer: LocalIssuer,
    pub(crate) server: app::HttpServer,
}

impl Stack {
    pub(crate) async fn start(fixture: Fixture) -> Result<Stack> {
        Stack::start_with(fixture, SandboxSettings::default()).await
    }

    pub(crate) async fn start_with(fixture: Fixture, settings: SandboxSettings) -> Result<Stack> {
        let (stack, _) = Stack::start_replicas(fixture, settings, |s| s.client_config(), 1).await?;
        Ok(stack)
    }

    /// A sandbox, an issuer and `replicas` HTTP servers of the configuration `configure` makes:
    /// the first is the stack's server, the others are returned beside it.
    pub(crate) async fn start_replicas(
        fixture: Fixture,
        settings: SandboxSettings,
        configure: impl Fn(&Sandbox) -> Config,
        replicas: usize,
    ) -> Result<(Stack, Vec<app::HttpServer>)> {
        let sandbox = Sandbox::start(SandboxOptions { fixture, settings }).await?;
        let issuer = LocalIssuer::start().await?;
        let mut cfg = configure(&sandbox);
        cfg.identity.oauth = Some(issuer.oauth_config());
        let server = app::start_http(&cfg, "127.0.0.1:0").await?;
        let mut others = Vec::new();
        for _ in 1..replicas {
            others.push(app::start_http(&cfg, "127.0.0.1:0").await?);
        }
        Ok((
            Stack {
                sandbox,
                issuer,
                server,
            },
            others,
        ))
    }

    /// An MCP session for `user` (bearer token from the local issuer) allowing `in_flight` concurrent requests.
    pub(crate) async fn client(&self, user: &str, in_flight: usize) -> Result<Client> {
        let token =
            self.issuer
                .issuer
                .mint(user, &self.server.resource_url, Duration::from_secs(3600));
        http_client(&self.server.resource_url, &token, in_flight).await
    }

    pub(crate) fn upstream(&self) -> Upstream {
        Upstream::read(&self.sandbox.state)
    }

    pub(crate) async fn stop(self) {
        self.server.shutdown().await;
        self.sandbox.shutdown().await;
    }
}

/// An MCP session over streamable HTTP to `url` with a bearer `token`.
pub(crate) async fn http_client(url: &str, token: &str, in_flight: usize) -> Result<Client> {
    let config = StreamableHttpClientTransportConfig::with_uri(url.to_string())
        .auth_header(token.to_string())
        .max_concurrent_requests(in_flight);
    let transport = StreamableHttpClientTransport::from_config(config);
    Ok(tokio::time::timeout(SPAWN_TIMEOUT, ().serve(transport)).await??)
}

/// One tool call; an `isError` result is an error here.
pub(crate) async fn call(client: &Client, tool: &str, args: Value) -> Result<CallToolResult> {
    let arguments = match args {
        Value::Object(map) => map,
        _ => Default::default(),
    };
    let params = CallToolRequestParams::new(tool.to_string()).with_arguments(arguments);
    let result = tokio::time::timeout(CALL_TIMEOUT, client.call_tool(params))
        .await
        .map_err(|_| anyhow!("{tool} did not answer within {} s", CALL_TIMEOUT.as_secs()))??;
    if result.is_error == Some(true) {
        let text: Vec<String> = result
            .content
            .iter()
            .filter_map(|c| c.as_text().map(|t| t.text.clone()))
            .collect();
        bail!("{tool} answered an error: {}", text.join(" "));
    }
    Ok(result)
}

/// One tool call's wall time.
pub(crate) async fn timed_call(client: &Client, tool: &str, args: Value) -> Result<Duration> {
    let t = Instant::now();
    call(client, tool, args).await?;
    Ok(t.elapsed())
}

/// The successful calls' times, the number of failed calls and the first failure's message.
pub(crate) fn split_outcomes(
    outcomes: Vec<Result<Duration>>,
) -> (Vec<Duration>, usize, Option<String>) {
    let mut ok = Vec::with_capacity(outcomes.len());
    let mut errors = 0;
    let mut first = None;
    for o in outcomes {
        match o {
            Ok(d) => ok.push(d),
            Err(e) => {
                errors += 1;
                first.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }
    (ok, errors, first)
}
