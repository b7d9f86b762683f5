//! Messages for a configuration file that is not valid TOML for immuta-mcp:
//! where the error is (line, column, dotted key) and what is wrong, with any
//! quoted value replaced by `…`, since a value typed in the wrong place may
//! be a secret.

/// `line L, column C: message` for a TOML error, without the quoted source snippet.
pub(super) fn parse_error_message(text: &str, error: &toml::de::Error) -> String {
    let message = redact_values(error.message().trim());
    match error.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            match key_at(text, span.start) {
                Some(key) => format!("line {line}, column {column} ({key}): {message}"),
                None => format!("line {line}, column {column}: {message}"),
            }
        }
        None => message,
    }
}

/// The dotted key assigned on the line holding byte `at` (`immuta.auth`), from
/// the last `[table]` header above it and the bare key before `=`; only key
/// names, never a value.
fn key_at(text: &str, at: usize) -> Option<String> {
    let is_key = |k: &str| {
        !k.is_empty()
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    };
    let at = at.min(text.len());
    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next()?;
    let key = line.split_once('=')?.0.trim();
    if !is_key(key) {
        return None;
    }
    let table = text[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('[') && l.ends_with(']'))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim())
        .filter(|t| is_key(t));
    Some(match table {
        Some(t) => format!("{t}.{key}"),
        None => key.to_string(),
    })
}

/// serde's messages quote the offending *value* (`invalid type: string "…"`,
/// `unknown variant `…``), which may be a secret typed in the wrong place. Keep key
/// names (`unknown field`, `missing field`, `duplicate key`) and the list of what was
/// expected; replace quoted text before ", expected" with `…`.
fn redact_values(message: &str) -> String {
    let keeps_keys = [
        "unknown field",
        "missing field",
        "duplicate key",
        "duplicate field",
    ];
    if keeps_keys.iter().any(|k| message.starts_with(k)) {
        return message.to_string();
    }
    let (head, tail) = match message.find(", expected") {
        Some(i) => message.split_at(i),
        None => (message, ""),
    };
    let mut out = String::with_capacity(message.len());
    let mut open: Option<char> = None;
    for c in head.chars() {
        match open {
            None if c == '`' || c == '"' || c == '\'' => {
                open = Some(c);
                out.push(c);
                out.push('…');
            }
            None => out.push(c),
            Some(q) if c == q => {
                open = None;
                out.push(c);
            }
            Some(_) => {}
        }
    }
    if open.is_some() {
        out.push('…');
    }
    out.push_str(tail);
    out
}
