//! The one secret-leak check of the tests: a text (a log, a tool result, a
//! child's output, a file) holds none of the sandbox's secrets verbatim (its
//! static credentials, every line of its private key, every bearer credential
//! it issued) and nothing shaped like a credential a test cannot know (PEM
//! key markers, 64-hex runs, Databricks secret and PAT shapes, a `Bearer `
//! header value, a JWT's `eyJ`).
//!
//! Every test that looks for leaks uses [`find_secret`] or [`assert_no_secret`];
//! both apply all of the above.

use immuta_mcp::sandbox::Sandbox;

/// Every secret the sandbox has generated or issued so far, by name: the
/// agent's static credentials (and each line of the private key's body, so a
/// partly logged key is caught too) and each PAT secret, OAuth access token and
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
    for (i, line) in creds
        .snowflake_private_key_pem
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() >= 16)
        .enumerate()
    {
        all.push((
            format!("line {} of the Snowflake private key", i + 1),
            line.to_string(),
        ));
    }
    for (i, issued) in sandbox.state.issued_credentials().into_iter().enumerate() {
        all.push((format!("issued bearer credential #{i}"), issued));
    }
    all
}

/// Markers of a credential whatever its value: (what it is, the marker).
const MARKERS: &[(&str, &str)] = &[
    ("a PEM private key marker", "PRIVATE KEY"),
    ("a PEM encrypted block marker", "BEGIN ENCRYPTED"),
    ("a bearer credential (`Bearer `)", "Bearer "),
    ("a JWT (`eyJ`)", "eyJ"),
];

/// Prefixed hex shapes: (what it is, prefix, hex digits after it).
const PREFIXED_HEX: &[(&str, &str, usize)] = &[
    ("a Databricks OAuth client secret", "dose", 32),
    ("a Databricks personal access token", "dapi", 32),
];

/// `text` holds none of `secrets` (each must be non-empty, else the check
/// would be vacuous) and no credential shape; the error names the leak and
/// shows the lines holding it, cut short, without printing the secret alone.
pub fn find_secret(text: &str, secrets: &[(String, String)]) -> Result<(), String> {
    for (name, secret) in secrets {
        if secret.is_empty() {
            return Err(format!(
                "secret {name} is empty: the check would be vacuous"
            ));
        }
        if text.contains(secret.as_str()) {
            return Err(format!(
                "the text contains the {name}:\n{}",
                lines_with(text, secret)
            ));
        }
    }
    for (what, marker) in MARKERS {
        if text.contains(marker) {
            return Err(format!(
                "the text contains {what}:\n{}",
                lines_with(text, marker)
            ));
        }
    }
    for (what, prefix, digits) in PREFIXED_HEX {
        for (i, _) in text.match_indices(prefix) {
            let rest = &text[i + prefix.len()..];
            if hex_run(rest, *digits).is_some_and(|run| rest.starts_with(&run)) {
                return Err(format!(
                    "the text contains something shaped like {what}:\n{}",
                    lines_with(text, prefix)
                ));
            }
        }
    }
    if let Some(run) = hex_run(text, 64) {
        return Err(format!(
            "the text contains a 64-hex-digit value shaped like a PAT secret or access token:\n{}",
            lines_with(text, &run)
        ));
    }
    Ok(())
}

/// Panic unless [`find_secret`] passes; `what` names the text in the message.
pub fn assert_no_secret(what: &str, text: &str, secrets: &[(String, String)]) {
    if let Err(leak) = find_secret(text, secrets) {
        panic!("{what}: {leak}");
    }
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
