//! The operator's view of a running server: one [`Observability`] per
//! process holds the [`Metrics`] and the [`Readiness`], starts the readiness
//! probes, and serves the metrics listener (`--metrics ADDR`): `/metrics`
//! (Prometheus/OpenMetrics text), `/healthz` and `/readyz`, without a bearer
//! token, so bind it to a private address.

use crate::app::{AppError, Platforms};
use crate::config::Config;
use crate::health::{
    DatabricksProbe, ImmutaProbe, JwksProbe, Probe, ProbeSchedule, Readiness, SnowflakeProbe,
};
use crate::http::{ServeLimits, serve};
use crate::identity::JwtVerifier;
use crate::metrics::{CONTENT_TYPE, Metrics};
use axum::Router;
use axum::http::header;
use axum::routing::get;
use std::net::SocketAddr;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Metrics and readiness of one server process.
#[derive(Debug, Clone)]
pub struct Observability {
    pub metrics: Metrics,
    pub readiness: Readiness,
    pub schedule: ProbeSchedule,
    /// Whether [`start_probes`](Self::start_probes) probes anything.
    probes: bool,
}

impl Observability {
    /// Fresh metrics (`[metrics]`) and a readiness whose `config` condition is
    /// met (the configuration was loaded to get here).
    pub fn new(cfg: &Config) -> Self {
        let readiness = Readiness::default();
        readiness.set("config", Ok(()));
        Self {
            metrics: Metrics::new(cfg.metrics.per_user),
            readiness,
            schedule: ProbeSchedule::from(&cfg.health),
            probes: true,
        }
    }

    /// As [`new`](Self::new), but no readiness probe ever runs (readiness is
    /// then only the loaded configuration): for embedding and tests that
    /// count every upstream request themselves.
    pub fn without_probes(cfg: &Config) -> Self {
        Self {
            probes: false,
            ..Self::new(cfg)
        }
    }

    /// Probe the JWKS (when OAuth is configured) and each configured upstream
    /// in the background until `stop`.
    pub fn start_probes(
        &self,
        cfg: &Config,
        platforms: &Platforms,
        verifier: Option<JwtVerifier>,
        stop: CancellationToken,
    ) -> Result<(), AppError> {
        if !self.probes {
            return Ok(());
        }
        let http =
            crate::http_client::build_for(cfg).map_err(|e| AppError::HttpClient(e.to_string()))?;
        let mut probes: Vec<Box<dyn Probe>> = Vec::new();
        if let Some(v) = verifier {
            probes.push(Box::new(JwksProbe(v)));
        }
        if let Some(immuta) = &platforms.immuta {
            probes.push(Box::new(ImmutaProbe(immuta.clone())));
        }
        if let Some(s) = &platforms.snowflake {
            match SnowflakeProbe::for_path(http.clone(), s) {
                Some(p) => probes.push(Box::new(p)),
                None => tracing::info!(
                    "snowflake.account is not set: readiness does not probe Snowflake (its host is known only from a vend)"
                ),
            }
        }
        if let Some(d) = &platforms.databricks {
            probes.push(Box::new(DatabricksProbe::for_path(http.clone(), d)));
        }
        crate::health::spawn_probes(self.readiness.clone(), probes, self.schedule, stop);
        Ok(())
    }

    /// `/metrics`, `/healthz` and `/readyz`.
    pub fn router(&self) -> Router {
        let metrics = self.metrics.clone();
        Router::new()
            .route(
                "/metrics",
                get(move || {
                    let metrics = metrics.clone();
                    async move { ([(header::CONTENT_TYPE, CONTENT_TYPE)], metrics.render()) }
                }),
            )
            .merge(crate::health::routes(self.readiness.clone()))
    }

    /// Bind `addr` and serve [`router`](Self::router) until the returned server is shut down.
    pub async fn serve_metrics(&self, addr: &str) -> Result<MetricsServer, AppError> {
        let bind_error = |source| AppError::Bind {
            addr: addr.into(),
            source,
        };
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(bind_error)?;
        let local = listener.local_addr().map_err(bind_error)?;
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(serve(
            listener,
            self.router(),
            shutdown.clone(),
            ServeLimits::default(),
        ));
        tracing::info!(%local, "serving /metrics, /healthz and /readyz");
        Ok(MetricsServer {
            addr: local,
            shutdown,
            task,
        })
    }
}

/// A running metrics listener.
pub struct MetricsServer {
    pub addr: SocketAddr,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl MetricsServer {
    /// Stop listening and wait (briefly) for the task.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.task).await;
    }
}
