//! Snowflake identifier resolution for the SQL API's context fields.
//!
//! The SQL API's request body fields `database`, `schema`, `warehouse` and
//! `role` are case-sensitive (sqlapi.yaml: "The value in this field is
//! case-sensitive."), while SQL resolves an unquoted identifier to upper case
//! and a double-quoted one verbatim (docs "Identifier requirements"). Field
//! reports (rinsed-org/rb-snowflake-client#26, redpanda-data/connect#2988)
//! show that sending `sales` for the normal database `SALES` fails. So a
//! name is resolved the way SQL would resolve it before it is sent:
//! `sales` → `SALES`, `"Sales"` → `Sales`, `"a""b"` → `a"b`.

/// Why a context name cannot be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} {value:?} is not a valid Snowflake identifier: {reason}")]
pub struct IdentError {
    pub field: &'static str,
    pub value: String,
    pub reason: &'static str,
}

/// Resolve `value` (the `field` of a request) as Snowflake resolves an
/// identifier: unquoted → upper case; `"Quoted"` → verbatim without the
/// quotes, with `""` standing for one `"`.
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
    let Some(rest) = v.strip_prefix('"') else {
        if v.contains('"') {
            return Err(error(
                "a double quote may only appear in a quoted identifier",
            ));
        }
        return Ok(v.to_ascii_uppercase());
    };
    let inner = rest
        .strip_suffix('"')
        .ok_or_else(|| error("the opening double quote is not closed"))?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '"' {
            // Inside quotes, a quote is written twice.
            if chars.next() != Some('"') {
                return Err(error("a double quote inside quotes must be doubled"));
            }
        }
        out.push(c);
    }
    if out.is_empty() {
        return Err(error("the quoted name is empty"));
    }
    Ok(out)
}

/// [`resolve`] for an optional field.
pub fn resolve_opt(field: &'static str, value: Option<&str>) -> Result<Option<String>, IdentError> {
    value.map(|v| resolve(field, v)).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_as_snowflake_resolves_identifiers() {
        assert_eq!(resolve("database", "sales").unwrap(), "SALES");
        assert_eq!(resolve("database", " Sales_2 ").unwrap(), "SALES_2");
        assert_eq!(resolve("schema", "\"Mixed Case\"").unwrap(), "Mixed Case");
        assert_eq!(resolve("schema", "\"lower\"").unwrap(), "lower");
        assert_eq!(resolve("warehouse", "\"a\"\"b\"").unwrap(), "a\"b");
        assert_eq!(resolve_opt("database", None).unwrap(), None);
    }

    #[test]
    fn malformed_quoting_is_refused() {
        for bad in ["", "\"", "\"open", "\"\"", "\"a\"b\"", "a\"b"] {
            let err = resolve("database", bad).unwrap_err();
            assert_eq!(err.field, "database", "{bad:?}");
        }
    }
}
