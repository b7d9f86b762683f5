//! Liveness and readiness: `/healthz`, `/readyz` and the background probes
//! behind readiness.
//!
//! `/healthz` answers 200 while the process serves requests. `/readyz`
//! answers 200 `{"status":"ready","reasons":[]}` when the configuration is
//! loaded, the issuer's JWKS has been fetched (when OAuth is configured) and
//! every configured upstream answered its last probe as expected; otherwise
//! 503 `{"status":"not_ready","reasons":[...]}` with one line per unmet
//! condition (no secret, no URL query).
//!
//! The probes run in the background every `health.probe_interval_secs` and
//! need no end user; each is the cheapest request the real service answers
//! predictably:
//! - Immuta: the agent's API key on `GET /agent/obo/roles/immuta-mcp-check`
//!   ([`ImmutaClient::probe`]); any answer but a refused key (a 404 for the
//!   unknown id included) proves the tenant is up and the key accepted.
//! - Snowflake: `POST /api/v2/statements` **without** credentials. The operation
//!   requires a key-pair or OAuth security scheme and declares `401`
//!   (`401Unauthorized`) for a request that does not carry one (Snowflake's
//!   OpenAPI description of the SQL API, snowflakedb/snowflake-rest-api-specs
//!   `specifications/sqlapi.yaml`, `SubmitStatement`), so a 401 proves the
//!   account's SQL API is reachable; no JWT is signed and no statement runs. A
//!   network policy that blocks this server shows as another status.
//! - Databricks: `GET /oidc/.well-known/oauth-authorization-server`, the
//!   workspace's public OAuth discovery document (Databricks "Authorize
//!   unattended access with OAuth (M2M)": the workspace token endpoint is
//!   `/oidc/v1/token`; RFC 8414 §3 serves the metadata without authentication).
//! - JWKS: [`JwtVerifier::ensure_keys`] (a fetch only when no fresh keys are cached).

use crate::databricks::DatabricksGoverned;
use crate::identity::JwtVerifier;
use crate::immuta::ImmutaClient;
use crate::snowflake::SnowflakeGoverned;
use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// State of one readiness condition.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Condition {
    /// Not probed yet.
    Pending,
    Met,
    Unmet(String),
}

/// What `/readyz` reports (cheap to clone; clones share the state).
#[derive(Debug, Clone, Default)]
pub struct Readiness {
    conditions: Arc<Mutex<BTreeMap<&'static str, Condition>>>,
}

impl Readiness {
    fn table(&self) -> std::sync::MutexGuard<'_, BTreeMap<&'static str, Condition>> {
        self.conditions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `name` must be met before the server is ready (not probed yet).
    pub fn expect(&self, name: &'static str) {
        self.table().entry(name).or_insert(Condition::Pending);
    }

    /// Record the outcome of `name`'s latest probe.
    pub fn set(&self, name: &'static str, outcome: Result<(), String>) {
        let condition = match outcome {
            Ok(()) => Condition::Met,
            Err(why) => Condition::Unmet(why),
        };
        self.table().insert(name, condition);
    }

    /// Whether every condition is met, and a reason for each that is not.
    pub fn report(&self) -> (bool, Vec<String>) {
        let reasons: Vec<String> = self
            .table()
            .iter()
            .filter_map(|(name, c)| match c {
                Condition::Met => None,
                Condition::Pending => Some(format!("{name}: not probed yet")),
                Condition::Unmet(why) => Some(format!("{name}: {why}")),
            })
            .collect();
        (reasons.is_empty(), reasons)
    }

    /// The `/readyz` answer.
    pub fn response(&self) -> Response {
        let (ready, reasons) = self.report();
        let status = if ready {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        let body = serde_json::json!({
            "status": if ready { "ready" } else { "not_ready" },
            "reasons": reasons,
        });
        (status, axum::Json(body)).into_response()
    }
}

/// `/healthz` and `/readyz` for `readiness`.
pub fn routes(readiness: Readiness) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || {
                let readiness = readiness.clone();
                async move { readiness.response() }
            }),
        )
}

type ProbeFuture<'a> = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;

/// One readiness probe.
pub trait Probe: Send + Sync {
    /// The condition name in `/readyz` reasons.
    fn name(&self) -> &'static str;
    fn run(&self) -> ProbeFuture<'_>;
}

/// The issuer's JWKS can be fetched.
pub struct JwksProbe(pub JwtVerifier);

impl Probe for JwksProbe {
    fn name(&self) -> &'static str {
        "jwks"
    }
    fn run(&self) -> ProbeFuture<'_> {
        Box::pin(async move { self.0.ensure_keys().await.map_err(|e| e.to_string()) })
    }
}

/// Immuta accepts the agent's API key.
pub struct ImmutaProbe(pub ImmutaClient);

impl Probe for ImmutaProbe {
    fn name(&self) -> &'static str {
        "immuta"
    }
    fn run(&self) -> ProbeFuture<'_> {
        Box::pin(async move { self.0.probe().await.map(|_| ()).map_err(|e| e.to_string()) })
    }
}

/// Answer of an HTTP probe: `Ok` when the status is the one expected.
async fn probe_status(
    request: reqwest::RequestBuilder,
    what: &str,
    expected: &[u16],
) -> Result<(), String> {
    match request.send().await {
        Ok(resp) if expected.contains(&resp.status().as_u16()) => Ok(()),
        Ok(resp) => Err(format!("{what} answered HTTP {}", resp.status().as_u16())),
        Err(e) => Err(format!(
            "{what}: {}",
            crate::retry::describe_transport_error(&e)
        )),
    }
}

/// Snowflake's SQL API answers (401 to a request without credentials).
pub struct SnowflakeProbe {
    pub http: reqwest::Client,
    pub statements_url: String,
}

impl SnowflakeProbe {
    /// The probe for `path`, when its account host is configured.
    pub fn for_path(http: reqwest::Client, path: &SnowflakeGoverned) -> Option<Self> {
        Some(Self {
            http,
            statements_url: path.statements_url()?,
        })
    }
}

impl Probe for SnowflakeProbe {
    fn name(&self) -> &'static str {
        "snowflake"
    }
    fn run(&self) -> ProbeFuture<'_> {
        Box::pin(async move {
            let request = self
                .http
                .post(&self.statements_url)
                .header(reqwest::header::ACCEPT, "application/json")
                .json(&serde_json::json!({}));
            probe_status(request, "the SQL API (POST /api/v2/statements)", &[401]).await
        })
    }
}

/// The Databricks workspace serves its OAuth discovery document.
pub struct DatabricksProbe {
    pub http: reqwest::Client,
    pub metadata_url: String,
}

impl DatabricksProbe {
    pub fn for_path(http: reqwest::Client, path: &DatabricksGoverned) -> Self {
        Self {
            http,
            metadata_url: format!(
                "{}{}",
                path.host(),
                crate::databricks::wire::OAUTH_METADATA_PATH
            ),
        }
    }
}

impl Probe for DatabricksProbe {
    fn name(&self) -> &'static str {
        "databricks"
    }
    fn run(&self) -> ProbeFuture<'_> {
        Box::pin(async move {
            let request = self
                .http
                .get(&self.metadata_url)
                .header(reqwest::header::ACCEPT, "application/json");
            probe_status(
                request,
                "the workspace OAuth metadata (GET /oidc/.well-known/oauth-authorization-server)",
                &[200],
            )
            .await
        })
    }
}

/// How often and how long the probes run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeSchedule {
    pub interval: Duration,
    pub timeout: Duration,
}

impl From<&crate::config::HealthConfig> for ProbeSchedule {
    fn from(cfg: &crate::config::HealthConfig) -> Self {
        Self {
            interval: Duration::from_secs(cfg.probe_interval_secs.max(1)),
            timeout: Duration::from_secs(cfg.probe_timeout_secs.max(1)),
        }
    }
}

/// Run `probes` now and then every `schedule.interval` until `stop`, recording
/// each outcome in `readiness`.
pub fn spawn_probes(
    readiness: Readiness,
    probes: Vec<Box<dyn Probe>>,
    schedule: ProbeSchedule,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    for p in &probes {
        readiness.expect(p.name());
    }
    tokio::spawn(async move {
        loop {
            let rounds = probes.iter().map(|probe| {
                let readiness = readiness.clone();
                async move {
                    let outcome = match tokio::time::timeout(schedule.timeout, probe.run()).await
                    {
                        Ok(outcome) => outcome,
                        Err(_) => Err(format!(
                            "no answer within {} s",
                            schedule.timeout.as_secs()
                        )),
                    };
                    if let Err(why) = &outcome {
                        tracing::warn!(probe = probe.name(), reason = %why, "readiness probe failed");
                    }
                    readiness.set(probe.name(), outcome);
                }
            });
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = futures::future::join_all(rounds) => {}
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(schedule.interval) => {}
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_and_unmet_conditions_are_reasons() {
        let r = Readiness::default();
        r.set("config", Ok(()));
        assert_eq!(r.report(), (true, vec![]));
        r.expect("immuta");
        assert_eq!(
            r.report(),
            (false, vec!["immuta: not probed yet".to_string()])
        );
        r.set("immuta", Err("HTTP 503".into()));
        assert_eq!(r.report(), (false, vec!["immuta: HTTP 503".to_string()]));
        r.set("immuta", Ok(()));
        assert!(r.report().0);
    }
}
