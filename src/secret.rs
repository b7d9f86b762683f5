//! Secret values (API keys, client secrets, private keys, PATs, access tokens).
//!
//! A [`Secret`] never prints its content: `Debug` and `Display` both show a
//! fixed placeholder, so a secret that ends up in a log line or an error
//! message leaks nothing. Read the value only at the point of use with
//! [`Secret::expose`].

use std::fmt;
use std::sync::Arc;

/// A string that must never be logged or returned to a client.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<str>);

impl Secret {
    /// Wrap a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(Arc::from(value.into()))
    }

    /// The raw value, for the one place that has to send it upstream.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True when the secret is the empty string (an unset credential).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self::new(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self::new(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_value() {
        let s = Secret::new("hunter2-very-secret");
        assert!(!format!("{s:?}").contains("hunter2"));
        assert!(!format!("{s}").contains("hunter2"));
        assert_eq!(s.expose(), "hunter2-very-secret");
    }
}
