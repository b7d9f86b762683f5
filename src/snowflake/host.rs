//! Where the SQL API lives: the account host named by the vend's
//! `connectionKey`, validated strictly (security audit F9).
//!
//! Snowflake account URLs are `https://<account identifier>.snowflakecomputing.com`
//! where the identifier is the org form `<org>-<account>` (region-less), or
//! the legacy locator form `<locator>.<region>[.<cloud>]`; PrivateLink hosts
//! add `.privatelink` before the domain (docs: "Account identifiers",
//! "Connecting to your accounts"). Accounts in the China region use the
//! `snowflakecomputing.cn` domain (Snowflake's own drivers accept both
//! suffixes, e.g. libsnowflakeclient's allowed host suffixes). So the whole
//! host is used for the URL, and only its first label, upper-cased, is the
//! account part of the key-pair JWT.
//!
//! A connectionKey is accepted only as a bare DNS name: labels of
//! `[A-Za-z0-9_-]`, no scheme, port, path or userinfo, ending in one of the
//! Snowflake domains. The URL is built with [`url::Url::set_host`], never by
//! concatenating text, so a tampered key such as `attacker:8443/x` cannot
//! redirect the agent's key-pair JWT or a user's PAT to another host.

use url::Url;

/// The DNS suffixes Snowflake account hosts end in.
pub const SNOWFLAKE_DOMAINS: &[&str] = &["snowflakecomputing.com", "snowflakecomputing.cn"];

/// Why a connectionKey (or account) does not name a Snowflake account host.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    #[error("the Snowflake connectionKey is empty")]
    Empty,
    #[error(
        "the Snowflake connectionKey {key:?} is not a bare host name: {reason} (expected e.g. xy12345.us-east-1.snowflakecomputing.com or myorg-myacct.snowflakecomputing.com)"
    )]
    Malformed { key: String, reason: String },
    #[error(
        "the Snowflake connectionKey {key:?} is not a Snowflake account host: it must end in .snowflakecomputing.com or .snowflakecomputing.cn"
    )]
    NotSnowflake { key: String },
    #[error(
        "the vend's Snowflake connectionKey names account {vended:?}, but snowflake.account is {configured:?}; refusing to send the agent's credentials to another account"
    )]
    AccountMismatch { vended: String, configured: String },
}

/// A validated Snowflake account host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountHost {
    /// Lower-case host name, e.g. `xy12345.us-east-1.snowflakecomputing.com`.
    host: String,
    /// `https://<host>`, built by [`AccountHost::parse`] with [`Url::set_host`].
    base_url: String,
}

impl AccountHost {
    /// Validate a vend's `connectionKey` (a host name, nothing else).
    pub fn parse(key: &str) -> Result<Self, HostError> {
        let key = key.trim();
        if key.is_empty() {
            return Err(HostError::Empty);
        }
        let malformed = |reason: &str| HostError::Malformed {
            key: key.to_string(),
            reason: reason.to_string(),
        };
        if key.len() > 253 {
            return Err(malformed("longer than 253 characters"));
        }
        // Tolerate the fully qualified form's trailing dot, nothing else.
        let host = key.strip_suffix('.').unwrap_or(key).to_ascii_lowercase();
        for label in host.split('.') {
            if label.is_empty() {
                return Err(malformed("it has an empty DNS label"));
            }
            if label.len() > 63 {
                return Err(malformed("a DNS label is longer than 63 characters"));
            }
            if let Some(bad) = label
                .chars()
                .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
            {
                return Err(malformed(&format!(
                    "{bad:?} is not allowed (only letters, digits, '_' and '-' in DNS labels; no scheme, port, path or user info)"
                )));
            }
        }
        let under_domain = SNOWFLAKE_DOMAINS.iter().any(|domain| {
            host.strip_suffix(domain)
                .is_some_and(|prefix| prefix.len() > 1 && prefix.ends_with('.'))
        });
        if !under_domain {
            return Err(HostError::NotSnowflake {
                key: key.to_string(),
            });
        }
        // Built with `Url::set_host`, never by concatenating text.
        let base_url = Url::parse("https://account.snowflakecomputing.com/")
            .and_then(|mut url| url.set_host(Some(&host)).map(|()| url))
            .map_err(|e| malformed(&format!("not a valid URL host ({e})")))?;
        debug_assert_eq!(base_url.host_str(), Some(host.as_str()));
        let base_url = base_url.as_str().trim_end_matches('/').to_string();
        Ok(Self { host, base_url })
    }

    /// The host of a configured `snowflake.account` when no vend names one
    /// (e.g. `check`): `<account>.snowflakecomputing.com`, where the account
    /// may be `myorg-myacct` or `xy12345.us-east-1[.cloud]`.
    pub fn for_account(account: &str) -> Result<Self, HostError> {
        let account = account.trim().trim_end_matches('.');
        Self::parse(&format!("{account}.{}", SNOWFLAKE_DOMAINS[0]))
    }

    /// The host name (lower case).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The first DNS label: the account locator or `org-account` name.
    pub fn locator(&self) -> &str {
        self.host.split('.').next().unwrap_or_default()
    }

    /// `https://<host>` (no trailing slash), built with [`Url::set_host`].
    pub fn base_url(&self) -> String {
        self.base_url.clone()
    }

    /// Refuse a host whose account differs from a configured
    /// `snowflake.account` (compared case-insensitively, on the part the
    /// key-pair JWT uses: the first label).
    pub fn check_account(&self, configured: &str) -> Result<(), HostError> {
        let wanted = super::keypair::jwt_account(configured);
        if wanted.eq_ignore_ascii_case(self.locator()) {
            Ok(())
        } else {
            Err(HostError::AccountMismatch {
                vended: self.locator().to_ascii_uppercase(),
                configured: configured.trim().to_string(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_whole_host_is_the_url_and_the_first_label_the_account() {
        for (key, url, locator) in [
            (
                "xy12345.us-east-1.snowflakecomputing.com",
                "https://xy12345.us-east-1.snowflakecomputing.com",
                "xy12345",
            ),
            (
                "CNA12345.east-us-2.azure.snowflakecomputing.com",
                "https://cna12345.east-us-2.azure.snowflakecomputing.com",
                "cna12345",
            ),
            (
                "myorg-my_acct.snowflakecomputing.com",
                "https://myorg-my_acct.snowflakecomputing.com",
                "myorg-my_acct",
            ),
            (
                "xy12345.us-east-1.privatelink.snowflakecomputing.com",
                "https://xy12345.us-east-1.privatelink.snowflakecomputing.com",
                "xy12345",
            ),
            (
                "ab12345.cn-north-1.aws.snowflakecomputing.cn",
                "https://ab12345.cn-north-1.aws.snowflakecomputing.cn",
                "ab12345",
            ),
            (
                "xy12345.snowflakecomputing.com.",
                "https://xy12345.snowflakecomputing.com",
                "xy12345",
            ),
        ] {
            let host = AccountHost::parse(key).unwrap();
            assert_eq!(host.base_url(), url, "{key}");
            assert_eq!(host.locator(), locator, "{key}");
        }
    }

    #[test]
    fn tampered_connection_keys_are_refused() {
        // The audit's reproductions (F9) and their relatives.
        for key in [
            "attacker:8443/x",
            "x@attacker-host:9999/",
            "x@attacker-host.snowflakecomputing.com",
            "xy12345.snowflakecomputing.com:8443",
            "xy12345.snowflakecomputing.com/path",
            "https://xy12345.snowflakecomputing.com",
            "xy12345.snowflakecomputing.com.attacker.example",
            "attacker.example",
            "snowflakecomputing.com",
            ".snowflakecomputing.com",
            "xy12345..snowflakecomputing.com",
            "xy 12345.snowflakecomputing.com",
            "xy12345%2e.snowflakecomputing.com",
            "xy12345.evilsnowflakecomputing.com",
            "[::1].snowflakecomputing.com",
            "",
        ] {
            assert!(AccountHost::parse(key).is_err(), "{key:?} must be refused");
        }
        let err = AccountHost::parse("attacker:8443/x")
            .unwrap_err()
            .to_string();
        assert!(err.contains("':'") && err.contains("port"), "{err}");
    }

    #[test]
    fn a_vended_account_must_match_the_configured_one() {
        let host = AccountHost::parse("xy12345.us-east-1.snowflakecomputing.com").unwrap();
        host.check_account("XY12345").unwrap();
        host.check_account("xy12345.us-east-1").unwrap();
        let err = host.check_account("ab99999").unwrap_err().to_string();
        assert!(
            err.contains("\"XY12345\"") && err.contains("\"ab99999\""),
            "the error names both accounts: {err}"
        );
    }

    #[test]
    fn a_configured_account_gives_its_host() {
        assert_eq!(
            AccountHost::for_account("xy12345.us-east-1")
                .unwrap()
                .base_url(),
            "https://xy12345.us-east-1.snowflakecomputing.com"
        );
        assert_eq!(
            AccountHost::for_account("MYORG-MYACCT").unwrap().base_url(),
            "https://myorg-myacct.snowflakecomputing.com"
        );
        assert!(AccountHost::for_account("x@evil:1").is_err());
    }
}
