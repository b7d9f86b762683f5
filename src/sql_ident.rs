//! SQL identifiers on both platforms, in one place: how a name is written
//! (plain or quoted), what it resolves to, how to quote one, and which names
//! the server accepts in the statements it writes itself (`list_tables`,
//! `describe_table`).
//!
//! - Snowflake ("Identifier requirements",
//!   <https://docs.snowflake.com/en/sql-reference/identifiers-syntax>): a plain
//!   identifier starts with a letter or `_`, holds letters, digits, `_` and
//!   `$`, and resolves to upper case; a double-quoted one keeps its case, may
//!   hold any character, and writes a `"` inside as `""`. At most 255
//!   characters either way.
//! - Databricks ("Identifiers",
//!   <https://docs.databricks.com/sql/language-manual/sql-ref-identifiers.html>):
//!   a plain identifier is letters, digits and `_`; a delimited one is
//!   enclosed in backticks and writes a backtick inside as two
//!   (`` `a``b` `` is ``a`b``). Identifiers are case-insensitive.
//!
//! [`resolve`] is the SQL API's context-field resolution (re-exported as
//! `crate::snowflake::ident`); [`validate_identifier`] and
//! [`validate_table_name`] guard the names the server splices into its own
//! catalog statements.

use crate::result::Platform;

/// The character that delimits a quoted identifier on `platform`.
pub fn quote_char(platform: Platform) -> char {
    match platform {
        Platform::Snowflake => '"',
        Platform::Databricks => '`',
    }
}

/// `name` written as a quoted identifier: `"a""b"` (Snowflake) or
/// `` `a``b` `` (Databricks), the quote character doubled inside.
pub fn quote(platform: Platform, name: &str) -> String {
    let q = quote_char(platform);
    let doubled: String = [q, q].iter().collect();
    format!("{q}{}{q}", name.replace(q, &doubled))
}

/// `value` as a single-quoted string literal for either platform: `'` doubled and `\` escaped,
/// because both read backslash escapes inside single quotes (Snowflake "String & binary data
/// types", escape sequences in single-quoted string constants; Databricks "STRING type", literals).
/// Used for the values the server writes into its own statements (the PAT's role restriction
/// and comment).
pub fn string_literal(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "''"))
}

/// Why a quoted identifier is malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// The opening quote has no closing quote.
    NotClosed,
    /// A quote inside the quotes is not doubled.
    LoneQuote,
    /// Nothing between the quotes.
    Empty,
}

impl Malformed {
    /// The reason in words, naming `platform`'s quote character.
    pub fn reason(self, platform: Platform) -> &'static str {
        match (self, platform) {
            (Malformed::NotClosed, Platform::Snowflake) => "the opening double quote is not closed",
            (Malformed::NotClosed, Platform::Databricks) => "the opening backtick is not closed",
            (Malformed::LoneQuote, Platform::Snowflake) => {
                "a double quote inside quotes must be doubled"
            }
            (Malformed::LoneQuote, Platform::Databricks) => {
                "a backtick inside backticks must be doubled"
            }
            (Malformed::Empty, _) => "the quoted name is empty",
        }
    }
}

/// The name a quoted identifier stands for: `"a""b"` → `a"b`,
/// `` `a``b` `` → ``a`b``. `written` must start with the platform's quote
/// character (otherwise it is not closed).
pub fn unquote(platform: Platform, written: &str) -> Result<String, Malformed> {
    let q = quote_char(platform);
    let inner = written
        .strip_prefix(q)
        .and_then(|rest| rest.strip_suffix(q))
        .ok_or(Malformed::NotClosed)?;
    let mut name = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        // Inside quotes, the quote character is written twice.
        if c == q && chars.next() != Some(q) {
            return Err(Malformed::LoneQuote);
        }
        name.push(c);
    }
    if name.is_empty() {
        return Err(Malformed::Empty);
    }
    Ok(name)
}

/// Why a Snowflake context name cannot be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} {value:?} is not a valid Snowflake identifier: {reason}")]
pub struct IdentError {
    pub field: &'static str,
    pub value: String,
    pub reason: &'static str,
}

/// Resolve `value` (the `field` of a Snowflake SQL API request) as Snowflake
/// resolves an identifier: unquoted → upper case; `"Quoted"` → verbatim
/// without the quotes, with `""` standing for one `"`.
pub fn resolve(field: &'static str, value: &str) -> Result<String, IdentError> {
    let error = |reason| IdentError {
        field,
        value: value.to_string(),
        reason,
    };
    let v = value.trim();
    if v.is_empty() {
        return Err(error("it is empty"));
    }
    if v.starts_with('"') {
        return unquote(Platform::Snowflake, v).map_err(|m| error(m.reason(Platform::Snowflake)));
    }
    if v.contains('"') {
        return Err(error(
            "a double quote may only appear in a quoted identifier",
        ));
    }
    Ok(v.to_ascii_uppercase())
}

/// [`resolve`] for an optional field.
pub fn resolve_opt(field: &'static str, value: Option<&str>) -> Result<Option<String>, IdentError> {
    value.map(|v| resolve(field, v)).transpose()
}

/// A plain identifier: letters, digits, `_`, `$` (not first), at most 255 chars.
fn is_plain_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
        && s.len() <= 255
}

/// Check one part of a name the server will write into its own catalog
/// statement and return it unchanged: a plain identifier, or a quoted one
/// whose name holds no quote character, `'`, `\` or control character.
///
/// Stricter than the platforms on purpose: a Databricks catalog/schema name
/// ends up as a bound string parameter of `list_tables` and a Snowflake one in
/// `SHOW … IN`, and none of those characters has a place in a name a model
/// should pick (security audit F6).
pub fn validate_identifier(platform: Platform, part: &str) -> Result<String, String> {
    let quote = quote_char(platform);
    if is_plain_identifier(part) {
        return Ok(part.to_string());
    }
    let quoted = part.len() >= 2 && part.starts_with(quote) && part.ends_with(quote);
    let inner = if quoted {
        &part[1..part.len() - 1]
    } else {
        part
    };
    if quoted
        && !inner.is_empty()
        && !inner.contains(quote)
        && !inner.contains(['\'', '\\'])
        && !inner.chars().any(char::is_control)
    {
        return Ok(part.to_string());
    }
    Err(format!(
        "{part:?} is not a valid {platform} identifier: use letters, digits and _ (or quote it with {quote})"
    ))
}

/// The name a part accepted by [`validate_identifier`] stands for, as a
/// bound parameter compares it: quotes removed (doubled quotes undone), case
/// kept.
pub fn bare_name(platform: Platform, part: &str) -> String {
    if part.starts_with(quote_char(platform)) {
        unquote(platform, part).unwrap_or_else(|_| part.to_string())
    } else {
        part.to_string()
    }
}

/// Check a 1–3 part table name and return it unchanged.
pub fn validate_table_name(platform: Platform, table: &str) -> Result<String, String> {
    let parts = split_name(table);
    if parts.is_empty() || parts.len() > 3 {
        return Err(format!(
            "{table:?} is not a table name: use DB.SCHEMA.TABLE or catalog.schema.table"
        ));
    }
    let checked: Result<Vec<String>, String> = parts
        .iter()
        .map(|p| validate_identifier(platform, p))
        .collect();
    Ok(checked?.join("."))
}

/// Split a dotted name at the dots outside quotes (`"` or backtick).
fn split_name(name: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut in_quote: Option<char> = None;
    for (i, ch) in name.char_indices() {
        match (in_quote, ch) {
            (None, '"' | '`') => in_quote = Some(ch),
            (Some(q), c) if c == q => in_quote = None,
            (None, '.') => {
                parts.push(&name[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&name[start..]);
    parts
}

#[cfg(test)]
mod tests;
