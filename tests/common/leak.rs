//! Secret-leak checks shared by every test binary: the sandbox's static
//! secrets and every bearer credential it issued, looked for verbatim, plus
//! the shapes of credentials a test cannot know (PEM markers, 64-hex runs).
//!
//! Included by `common/mod.rs` and `common_hardening/mod.rs` alike.
#![allow(dead_code)]

use immuta_mcp::sandbox::Sandbox;

/// Every secret the sandbox has generated or issued so far, by name: the
/// agent's static credentials and each PAT secret, OAuth access token and
/// Immuta session token handed out since it started. Read it at check time:
/// credentials minted after the check's start count too.
pub fn sandbox_secrets(sandbox: &Sandbox) -> Vec<(String, String)> {
    let creds = sandbox.credentials();
    let mut all = vec![
        ("Immuta API key".to_string(), creds.immuta_api_key.clone()),
        (
            "Databricks client secret".to_string(),
            creds.databricks_client_secret.clone(),
        ),
        (
            "Snowflake private key".to_string(),
            creds.snowflake_private_key_pem.clone(),
        ),
    ];
    for (i, issued) in sandbox.state.issued_credentials().into_iter().enumerate() {
        all.push((format!("issued bearer credential #{i}"), issued));
    }
    all
}

/// `text` holds none of `secrets` (each must be non-empty, else the check
/// would be vacuous), no PEM private-key marker and no 64-hex run; the error
/// names the leak without printing the secret.
pub fn find_secret(text: &str, secrets: &[(String, String)]) -> Result<(), String> {
    for (name, secret) in secrets {
        if secret.is_empty() {
            return Err(format!(
                "secret {name} is empty: the check would be vacuous"
            ));
        }
        if text.contains(secret.as_str()) {
            return Err(format!("the text contains the {name}"));
        }
    }
    if text.contains("PRIVATE KEY") {
        return Err("the text contains a PEM private key marker".into());
    }
    if hex_run(text, 64).is_some() {
        return Err(
            "the text contains a 64-hex-digit value shaped like a PAT secret or access token"
                .into(),
        );
    }
    Ok(())
}

/// The first run of at least `min` hex digits in `text`, if any.
///
/// The sandbox issues Snowflake PAT secrets and Databricks access tokens as 64
/// lowercase hex digits (32 random bytes); a 64-digit hex run in output is how
/// one would show even where the exact values are not at hand (another
/// process's sandbox). In-process tests also check each issued value verbatim
/// ([`sandbox_secrets`]).
pub fn hex_run(text: &str, min: usize) -> Option<String> {
    let mut start = None;
    let bytes = text.as_bytes();
    for i in 0..=bytes.len() {
        let is_hex = i < bytes.len() && bytes[i].is_ascii_hexdigit();
        match (is_hex, start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                if i - s >= min {
                    return Some(text[s..i].to_string());
                }
                start = None;
            }
            _ => {}
        }
    }
    None
}

/// Lines of `text` containing `needle`, for failure messages (at most 3, each cut to 300 chars).
pub fn lines_with(text: &str, needle: &str) -> String {
    text.lines()
        .filter(|l| l.contains(needle))
        .take(3)
        .map(|l| l.chars().take(300).collect::<String>())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Assert `text` (named `what`) contains none of the secrets, no PEM key and no 64-hex token.
pub fn assert_no_secret(what: &str, text: &str, secrets: &[(&str, &str)]) {
    for (name, secret) in secrets {
        assert!(
            !secret.is_empty(),
            "secret {name} is empty: the check would be vacuous"
        );
        assert!(
            !text.contains(secret),
            "{what} contains the {name}:\n{}",
            lines_with(text, secret)
        );
    }
    assert!(
        !text.contains("PRIVATE KEY"),
        "{what} contains a PEM private key marker:\n{}",
        lines_with(text, "PRIVATE KEY")
    );
    if let Some(run) = hex_run(text, 64) {
        panic!(
            "{what} contains a 64-hex-digit value shaped like a PAT secret or access token:\n{}",
            lines_with(text, &run)
        );
    }
}
