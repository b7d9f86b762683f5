//! Upstream request counts read from the sandbox: requests per emulator endpoint
//! and the semantic counters (vends, PATs, tokens, statements) at one moment, and
//! the difference of two moments, which is what a section reports per call or
//! per level.

use immuta_mcp::sandbox::{Counter, Endpoint, SandboxState};

const ENDPOINTS: [(Endpoint, &str); 12] = [
    (Endpoint::ImmutaVend, "vend"),
    (Endpoint::ImmutaStatus, "vend status"),
    (Endpoint::ImmutaDelete, "vend delete"),
    (Endpoint::ImmutaActivity, "activity"),
    (Endpoint::SnowflakeSubmit, "sf submit"),
    (Endpoint::SnowflakeStatus, "sf poll/partition"),
    (Endpoint::SnowflakeCancel, "sf cancel"),
    (Endpoint::DatabricksToken, "dbx token"),
    (Endpoint::DatabricksSubmit, "dbx submit"),
    (Endpoint::DatabricksStatus, "dbx poll"),
    (Endpoint::DatabricksChunk, "dbx chunk"),
    (Endpoint::DatabricksCancel, "dbx cancel"),
];

const COUNTERS: [Counter; 6] = [
    Counter::VendsCreated,
    Counter::PatsCreated,
    Counter::PatsRemoved,
    Counter::OAuthTokensIssued,
    Counter::StatementsExecuted,
    Counter::StatementsCancelled,
];

/// Requests per endpoint and semantic counters at one moment (or the difference of two moments).
#[derive(Debug, Clone)]
pub(crate) struct Upstream {
    requests: [u64; 12],
    counters: [u64; 6],
}

impl Upstream {
    pub(crate) fn read(state: &SandboxState) -> Upstream {
        Upstream {
            requests: ENDPOINTS.map(|(ep, _)| state.count(ep)),
            counters: COUNTERS.map(|c| state.counter(c)),
        }
    }

    pub(crate) fn since(&self, before: &Upstream) -> Upstream {
        let mut d = self.clone();
        for (a, b) in d.requests.iter_mut().zip(before.requests) {
            *a = a.saturating_sub(b);
        }
        for (a, b) in d.counters.iter_mut().zip(before.counters) {
            *a = a.saturating_sub(b);
        }
        d
    }

    pub(crate) fn total(&self) -> u64 {
        self.requests.iter().sum()
    }

    pub(crate) fn counter(&self, c: Counter) -> u64 {
        COUNTERS
            .iter()
            .position(|&x| x == c)
            .map_or(0, |i| self.counters[i])
    }

    /// Non-zero endpoints, e.g. `vend 1, sf submit 2`.
    pub(crate) fn describe(&self) -> String {
        let parts: Vec<String> = ENDPOINTS
            .iter()
            .zip(self.requests)
            .filter(|(_, n)| *n > 0)
            .map(|((_, name), n)| format!("{name} {n}"))
            .collect();
        if parts.is_empty() {
            "none".into()
        } else {
            parts.join(", ")
        }
    }
}
