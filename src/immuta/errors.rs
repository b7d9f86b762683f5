//! Errors of the Immuta client: [`ImmutaError`], one variant per way a vend
//! or a role operation fails, its bounded `outcome` label for the metrics, and
//! how it reaches the tool ([`QueryError::Vend`]). None carries the API key.

use super::wire::VendStatus;
use crate::query::QueryError;
use crate::retry::RetryError;

/// Why a vend or a role operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ImmutaError {
    #[error(
        "Immuta refused the agent's API key (HTTP {status}; tried {tried}); check immuta.api_key, and set immuta.auth to the form your tenant accepts (\"raw_key\", \"exchange\" or \"bearer_key\"; default \"auto\" tries all three)"
    )]
    Unauthorized { status: u16, tried: String },
    #[error("Immuta does not know the user {user}: {message}")]
    UnknownUser { user: String, message: String },
    #[error("the role vended for {user} was still pending after {waited_secs} s")]
    StillPending { user: String, waited_secs: u64 },
    #[error("Immuta reported the vend as {status:?} for {user}")]
    NotReady { user: String, status: VendStatus },
    #[error("Immuta answered HTTP {status}: {message}")]
    Rejected { status: u16, message: String },
    #[error("Immuta is unavailable: {0}")]
    Unavailable(String),
    #[error("unexpected answer from Immuta: {0}")]
    Protocol(String),
    #[error("Immuta configuration: {0}")]
    Config(String),
}

impl ImmutaError {
    /// A bounded category of the failure (the `outcome` label of vend metrics).
    pub fn outcome(&self) -> &'static str {
        match self {
            ImmutaError::Unauthorized { .. } => "unauthorized",
            ImmutaError::UnknownUser { .. } => "unknown_user",
            ImmutaError::StillPending { .. } => "still_pending",
            ImmutaError::NotReady { .. } => "not_ready",
            ImmutaError::Rejected { .. } => "rejected",
            ImmutaError::Unavailable(_) => "unavailable",
            ImmutaError::Protocol(_) => "protocol_error",
            ImmutaError::Config(_) => "config",
        }
    }
}

impl From<ImmutaError> for QueryError {
    fn from(e: ImmutaError) -> Self {
        QueryError::Vend(e.to_string())
    }
}

impl From<RetryError> for ImmutaError {
    fn from(e: RetryError) -> Self {
        ImmutaError::Unavailable(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_failure_has_the_outcome_label_the_metrics_document() {
        let pending = VendStatus::Pending;
        let labels = [
            (
                ImmutaError::Unauthorized {
                    status: 401,
                    tried: String::new(),
                },
                "unauthorized",
            ),
            (
                ImmutaError::UnknownUser {
                    user: String::new(),
                    message: String::new(),
                },
                "unknown_user",
            ),
            (
                ImmutaError::StillPending {
                    user: String::new(),
                    waited_secs: 0,
                },
                "still_pending",
            ),
            (
                ImmutaError::NotReady {
                    user: String::new(),
                    status: pending,
                },
                "not_ready",
            ),
            (
                ImmutaError::Rejected {
                    status: 400,
                    message: String::new(),
                },
                "rejected",
            ),
            (ImmutaError::Unavailable(String::new()), "unavailable"),
            (ImmutaError::Protocol(String::new()), "protocol_error"),
            (ImmutaError::Config(String::new()), "config"),
        ];
        for (error, label) in labels {
            assert_eq!(error.outcome(), label, "{error:?}");
        }
    }
}
