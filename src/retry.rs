//! Bounded retry with exponential backoff that honours `Retry-After`.
//!
//! Every upstream client (Immuta, Snowflake, Databricks) sends requests
//! through [`RetryPolicy::send`], so the rules are the same everywhere:
//! retry on 429, 500, 502, 503, 504 and on transport errors (connection reset,
//! timeouts), at most `max_attempts` times, sleeping the server's
//! `Retry-After` (capped) or an exponential backoff with jitter.
//!
//! A request that creates something upstream and carries no idempotency key
//! (an Immuta vend `POST /agent/obo/roles`, a Databricks statement submit) is
//! sent with [`Idempotency::NotIdempotent`]: it is repeated only when the
//! server cannot have acted on it — a connect error (nothing was sent), 429
//! or 503 (the server says it did not process the request). A transport error
//! after the request went out, or a 500/502/504, ends the call at once with a
//! [`RetryError::Transport`] saying [`NOT_REPEATED`], since repeating it could
//! create a second vend or run the statement twice.

use crate::metrics::UpstreamObserver;
use std::time::{Duration, Instant};

/// How often and how long to retry a failing upstream request.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Total attempts, the first included.
    pub max_attempts: u32,
    /// First backoff; doubles each attempt.
    pub initial_backoff: Duration,
    /// Upper bound of one sleep, also applied to `Retry-After`.
    pub max_backoff: Duration,
    /// Counts each attempt in the metrics (service, endpoint, status, duration).
    pub observer: Option<UpstreamObserver>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
            observer: None,
        }
    }
}

/// The last failure after retries ran out.
#[derive(Debug, thiserror::Error)]
pub enum RetryError {
    /// The server kept answering with a retryable status.
    #[error("HTTP {status} after {attempts} attempts")]
    Status {
        status: u16,
        attempts: u32,
        body: String,
    },
    /// The request could not be sent or read.
    #[error("{message} (after {attempts} attempts)")]
    Transport { message: String, attempts: u32 },
}

/// Message of the [`RetryError::Transport`] that ends a non-idempotent request
/// which was sent but got no usable answer (it may have taken effect upstream).
fn answer_lost(what: &str) -> String {
    format!("{what} after the request was sent; {NOT_REPEATED}")
}

/// Said by every error of a non-idempotent request that was not repeated.
pub const NOT_REPEATED: &str =
    "not repeated because it is not idempotent and may already have taken effect upstream";

/// Whether a request may be repeated after the server may have acted on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idempotency {
    /// Reads, polls, cancels, token requests: repeat on any retryable failure.
    Idempotent,
    /// Creates something (vend, statement submit) and has no idempotency key:
    /// repeat only on a connect error, 429 or 503.
    NotIdempotent,
}

/// True for statuses that say the server did not process the request (safe to repeat anything).
pub fn is_unprocessed_status(status: u16) -> bool {
    matches!(status, 429 | 503)
}

/// True for statuses worth retrying.
pub fn is_retryable_status(status: u16) -> bool {
    matches!(status, 429 | 500 | 502 | 503 | 504)
}

/// Parse `Retry-After` as delta-seconds (HTTP dates are treated as absent).
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    v.trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
}

/// Describe a reqwest error without its URL query (which could carry a value we do not want logged).
pub fn describe_transport_error(err: &reqwest::Error) -> String {
    let kind = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "could not connect"
    } else if err.is_body() || err.is_decode() {
        "connection broke while reading the answer"
    } else {
        "request failed"
    };
    let mut source = std::error::Error::source(err);
    let mut detail = String::new();
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    if detail.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}: {detail}")
    }
}

impl RetryPolicy {
    /// No retries at all (one attempt).
    pub fn none() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// This policy, counting every attempt in `observer`'s metrics.
    pub fn observed(mut self, observer: Option<UpstreamObserver>) -> Self {
        self.observer = observer;
        self
    }

    /// The metrics this policy counts into, if any.
    pub fn metrics(&self) -> Option<&crate::metrics::Metrics> {
        self.observer.as_ref().map(|o| &o.metrics)
    }

    /// Backoff before attempt `attempt + 1` (attempt counts from 1).
    pub fn backoff(&self, attempt: u32, server_hint: Option<Duration>) -> Duration {
        if let Some(hint) = server_hint {
            return hint.min(self.max_backoff);
        }
        let exp = self
            .initial_backoff
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
        let capped = exp.min(self.max_backoff);
        let jitter = rand::random::<f64>() * 0.25 + 0.875;
        capped.mul_f64(jitter)
    }

    /// Send the request built by `build` until it succeeds or retries run out,
    /// reading the whole answer (a connection that breaks mid-body is retried too).
    ///
    /// `build` is called once per attempt with the attempt number (from 1).
    /// Non-retryable statuses are returned as `Ok` for the caller to interpret.
    pub async fn send<F>(&self, build: F) -> Result<UpstreamResponse, RetryError>
    where
        F: FnMut(u32) -> reqwest::RequestBuilder,
    {
        self.send_with(Idempotency::Idempotent, build).await
    }

    /// [`send`](Self::send) for a request of the given [`Idempotency`].
    pub async fn send_with<F>(
        &self,
        idempotency: Idempotency,
        mut build: F,
    ) -> Result<UpstreamResponse, RetryError>
    where
        F: FnMut(u32) -> reqwest::RequestBuilder,
    {
        let once = idempotency == Idempotency::NotIdempotent;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let (client, request) = build(attempt).build_split();
            let shape = request
                .as_ref()
                .ok()
                .map(|r| (r.method().clone(), r.url().clone()));
            let started = Instant::now();
            let sent = match request {
                Ok(request) => client.execute(request).await,
                Err(err) => Err(err),
            };
            let outcome = match sent {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let headers = resp.headers().clone();
                    match resp.bytes().await {
                        Ok(body) => Ok(UpstreamResponse {
                            status,
                            headers,
                            body,
                            attempts: attempt,
                        }),
                        Err(err) => Err(err),
                    }
                }
                Err(err) => Err(err),
            };
            if let Some(observer) = &self.observer {
                let (method, url) = match &shape {
                    Some((m, u)) => (m.clone(), Some(u)),
                    None => (reqwest::Method::GET, None),
                };
                let status = outcome.as_ref().ok().map(|r| r.status);
                observer.attempt(&method, url, status, started.elapsed());
            }
            match outcome {
                Ok(resp) if !is_retryable_status(resp.status) => return Ok(resp),
                Ok(resp) if once && !is_unprocessed_status(resp.status) => {
                    return Err(RetryError::Transport {
                        message: answer_lost(&format!("HTTP {}", resp.status)),
                        attempts: attempt,
                    });
                }
                Ok(resp) => {
                    if attempt >= self.max_attempts {
                        let body = String::from_utf8_lossy(&resp.body)
                            .chars()
                            .take(500)
                            .collect();
                        return Err(RetryError::Status {
                            status: resp.status,
                            attempts: attempt,
                            body,
                        });
                    }
                    tracing::debug!(
                        status = resp.status,
                        attempt,
                        "retryable status from upstream"
                    );
                    tokio::time::sleep(self.backoff(attempt, retry_after(&resp.headers))).await;
                }
                Err(err) if once && !err.is_connect() => {
                    return Err(RetryError::Transport {
                        message: answer_lost(&describe_transport_error(&err)),
                        attempts: attempt,
                    });
                }
                Err(err) => {
                    if attempt >= self.max_attempts {
                        return Err(RetryError::Transport {
                            message: describe_transport_error(&err),
                            attempts: attempt,
                        });
                    }
                    tracing::debug!(attempt, error = %describe_transport_error(&err), "transport error from upstream");
                    tokio::time::sleep(self.backoff(attempt, None)).await;
                }
            }
        }
    }
}

impl crate::config::Limits {
    /// The retry policy every upstream client starts from:
    /// `limits.retry_attempts` attempts (at least one), default backoffs, no
    /// metrics observer (each path adds its own with [`RetryPolicy::observed`]).
    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: self.retry_attempts.max(1),
            ..RetryPolicy::default()
        }
    }
}

/// A fully read upstream answer.
#[derive(Debug, Clone)]
pub struct UpstreamResponse {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: bytes::Bytes,
    /// Attempts it took (1 = no retry).
    pub attempts: u32,
}

impl UpstreamResponse {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// Decode the body as JSON.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }

    /// The body as text, cut to `max` characters (for error messages).
    pub fn text_snippet(&self, max: usize) -> String {
        String::from_utf8_lossy(&self.body)
            .chars()
            .take(max)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_hint_wins_but_is_capped() {
        let p = RetryPolicy {
            max_backoff: Duration::from_secs(2),
            ..RetryPolicy::default()
        };
        assert_eq!(
            p.backoff(1, Some(Duration::from_secs(1))),
            Duration::from_secs(1)
        );
        assert_eq!(
            p.backoff(1, Some(Duration::from_secs(60))),
            Duration::from_secs(2)
        );
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(500),
            max_attempts: 10,
            observer: None,
        };
        let b1 = p.backoff(1, None);
        let b3 = p.backoff(3, None);
        let b9 = p.backoff(9, None);
        assert!(
            b1 >= Duration::from_millis(87) && b1 <= Duration::from_millis(113),
            "{b1:?}"
        );
        assert!(b3 >= Duration::from_millis(350), "{b3:?}");
        assert!(b9 <= Duration::from_millis(563), "{b9:?}");
    }

    /// A loopback server answering `status` to every request, counting them.
    async fn answering(status: u16) -> (String, std::sync::Arc<std::sync::atomic::AtomicU32>) {
        use std::sync::atomic::{AtomicU32, Ordering};
        let hits = std::sync::Arc::new(AtomicU32::new(0));
        let counter = hits.clone();
        let app = axum::Router::new().fallback(move || {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                axum::http::StatusCode::from_u16(status).unwrap()
            }
        });
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.ok() });
        (url, hits)
    }

    fn quick() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(5),
            observer: None,
        }
    }

    #[tokio::test]
    async fn a_non_idempotent_request_is_not_repeated_after_a_500() {
        use std::sync::atomic::Ordering;
        // reqwest has no default TLS provider here (`rustls-no-provider`).
        crate::http_client::install_crypto_provider();
        let http = reqwest::Client::new();
        let (url, hits) = answering(500).await;
        let err = quick()
            .send_with(Idempotency::NotIdempotent, |_| http.post(&url))
            .await
            .unwrap_err();
        assert!(
            matches!(err, RetryError::Transport { attempts: 1, .. }),
            "{err}"
        );
        assert!(err.to_string().contains(NOT_REPEATED), "{err}");
        assert_eq!(hits.load(Ordering::SeqCst), 1);
        // The same failure is retried for an idempotent request.
        let (url, hits) = answering(500).await;
        let err = quick().send(|_| http.get(&url)).await.unwrap_err();
        assert!(
            matches!(err, RetryError::Status { attempts: 3, .. }),
            "{err}"
        );
        assert_eq!(hits.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_non_idempotent_request_is_repeated_on_503_and_on_connect_errors() {
        use std::sync::atomic::Ordering;
        // reqwest has no default TLS provider here (`rustls-no-provider`).
        crate::http_client::install_crypto_provider();
        let http = reqwest::Client::new();
        let (url, hits) = answering(503).await;
        let err = quick()
            .send_with(Idempotency::NotIdempotent, |_| http.post(&url))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                RetryError::Status {
                    status: 503,
                    attempts: 3,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(hits.load(Ordering::SeqCst), 3);
        // Nothing listens on a port just released: a connect error, retried.
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        let err = quick()
            .send_with(Idempotency::NotIdempotent, |_| http.post(&url))
            .await
            .unwrap_err();
        assert!(
            matches!(err, RetryError::Transport { attempts: 3, .. }),
            "{err}"
        );
        assert!(!err.to_string().contains(NOT_REPEATED), "{err}");
    }

    #[test]
    fn the_limits_set_the_attempts_and_nothing_else() {
        let limits = crate::config::Limits {
            retry_attempts: 7,
            ..crate::config::Limits::default()
        };
        assert_eq!(
            limits.retry_policy(),
            RetryPolicy {
                max_attempts: 7,
                ..RetryPolicy::default()
            }
        );
        let zero = crate::config::Limits {
            retry_attempts: 0,
            ..crate::config::Limits::default()
        };
        assert_eq!(zero.retry_policy().max_attempts, 1, "always one attempt");
    }

    #[test]
    fn parses_retry_after_seconds() {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert(reqwest::header::RETRY_AFTER, "3".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
        h.insert(
            reqwest::header::RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h), None);
    }
}
