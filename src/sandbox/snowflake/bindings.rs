//! Bind variables of the Snowflake SQL API (`"bindings": {"1": {"type", "value"}}`).
//!
//! The engine takes plain SQL, so the emulator substitutes each `?` (or `:N`)
//! placeholder outside literals, quoted identifiers and comments with a SQL
//! literal built from the binding: text-like types become quoted strings
//! (quotes and backslashes escaped), numeric types are checked to be numbers,
//! booleans become `TRUE`/`FALSE`, a null value becomes `NULL`. Errors use
//! Snowflake's wording.

use crate::sandbox::types::{is_number_literal, sql_string_literal};
use serde_json::{Map, Value};

/// A binding that cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct BindError {
    pub message: String,
}

fn error(message: impl Into<String>) -> BindError {
    BindError {
        message: message.into(),
    }
}

/// Substitute the placeholders of `sql` with the literals of `bindings`.
pub fn substitute(sql: &str, bindings: &Map<String, Value>) -> Result<String, BindError> {
    let chars: Vec<char> = sql.chars().collect();
    let mut out = String::with_capacity(sql.len());
    let mut next_positional = 1usize;
    let mut used = 0usize;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\'' | '"' => {
                let end = skip_quoted(&chars, i, c);
                out.extend(&chars[i..end]);
                i = end;
            }
            '$' if chars.get(i + 1) == Some(&'$') => {
                let end = find_from(&chars, i + 2, &['$', '$']).map_or(chars.len(), |e| e + 2);
                out.extend(&chars[i..end]);
                i = end;
            }
            '-' if chars.get(i + 1) == Some(&'-') => {
                let end = chars[i..]
                    .iter()
                    .position(|c| *c == '\n')
                    .map_or(chars.len(), |p| i + p);
                out.extend(&chars[i..end]);
                i = end;
            }
            '/' if chars.get(i + 1) == Some(&'*') => {
                let end = find_from(&chars, i + 2, &['*', '/']).map_or(chars.len(), |e| e + 2);
                out.extend(&chars[i..end]);
                i = end;
            }
            '?' => {
                out.push_str(&literal(bindings, next_positional, i)?);
                next_positional += 1;
                used += 1;
                i += 1;
            }
            ':' if chars.get(i + 1).is_some_and(|d| d.is_ascii_digit())
                && (i == 0 || chars[i - 1] != ':') =>
            {
                let mut end = i + 1;
                while end < chars.len() && chars[end].is_ascii_digit() {
                    end += 1;
                }
                let index: usize = chars[i + 1..end]
                    .iter()
                    .collect::<String>()
                    .parse()
                    .map_err(|_| error("Bind variable index is out of range."))?;
                out.push_str(&literal(bindings, index, i)?);
                used += 1;
                i = end;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    if used == 0 && !bindings.is_empty() {
        return Err(error(format!(
            "Bind variables were supplied ({}) but the statement has no placeholders.",
            bindings.len()
        )));
    }
    Ok(out)
}

fn skip_quoted(chars: &[char], start: usize, quote: char) -> usize {
    let mut i = start + 1;
    while i < chars.len() {
        if chars[i] == '\\' && quote == '\'' {
            i += 2;
            continue;
        }
        if chars[i] == quote {
            if chars.get(i + 1) == Some(&quote) {
                i += 2;
                continue;
            }
            return i + 1;
        }
        i += 1;
    }
    chars.len()
}

fn find_from(chars: &[char], from: usize, pattern: &[char; 2]) -> Option<usize> {
    (from..chars.len().saturating_sub(1))
        .find(|&i| chars[i] == pattern[0] && chars[i + 1] == pattern[1])
}

fn literal(
    bindings: &Map<String, Value>,
    index: usize,
    position: usize,
) -> Result<String, BindError> {
    let Some(binding) = bindings.get(&index.to_string()) else {
        return Err(error(format!(
            "SQL compilation error: error line 1 at position {position}\nBind variable ? not set."
        )));
    };
    let type_name = binding
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("TEXT")
        .to_ascii_uppercase();
    let value = match binding.get("value") {
        None | Some(Value::Null) => return Ok("NULL".to_string()),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(other) => other.to_string(),
    };
    match type_name.as_str() {
        "FIXED" | "REAL" => {
            if is_number_literal(&value) {
                Ok(value)
            } else {
                Err(error(format!(
                    "Numeric value '{value}' is not recognized (bind variable {index})."
                )))
            }
        }
        "BOOLEAN" => match value.to_ascii_lowercase().as_str() {
            "true" | "1" => Ok("TRUE".to_string()),
            "false" | "0" => Ok("FALSE".to_string()),
            _ => Err(error(format!(
                "Boolean value '{value}' is not recognized (bind variable {index})."
            ))),
        },
        "TEXT" | "DATE" | "TIME" | "TIMESTAMP_NTZ" | "TIMESTAMP_LTZ" | "TIMESTAMP_TZ"
        | "BINARY" => Ok(sql_string_literal(&value)),
        other => Err(error(format!(
            "Unsupported bind type '{other}' for bind variable {index}."
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bindings(v: Value) -> Map<String, Value> {
        v.as_object().cloned().expect("object")
    }

    #[test]
    fn substitutes_positional_placeholders_outside_literals() {
        let b = bindings(json!({
            "1": {"type": "TEXT", "value": "O'Brien\\"},
            "2": {"type": "FIXED", "value": "42"},
            "3": {"type": "BOOLEAN", "value": "true"},
            "4": {"type": "TEXT", "value": null}
        }));
        let sql = "SELECT '?', \"?\" FROM t WHERE a = ? AND b = ? AND c = ? AND d = ? -- ?";
        assert_eq!(
            substitute(sql, &b).unwrap(),
            "SELECT '?', \"?\" FROM t WHERE a = 'O''Brien\\\\' AND b = 42 AND c = TRUE AND d = NULL -- ?"
        );
    }

    #[test]
    fn colon_numbered_placeholders() {
        let b = bindings(
            json!({"1": {"type": "REAL", "value": "1.5e3"}, "2": {"type": "TEXT", "value": "x"}}),
        );
        assert_eq!(
            substitute("SELECT :2, :1, a::TEXT", &b).unwrap(),
            "SELECT 'x', 1.5e3, a::TEXT"
        );
    }

    #[test]
    fn rejects_non_numbers_and_missing_bindings() {
        let b = bindings(json!({"1": {"type": "FIXED", "value": "1; DROP TABLE t"}}));
        assert!(
            substitute("SELECT ?", &b)
                .unwrap_err()
                .message
                .contains("not recognized")
        );
        let err = substitute(
            "SELECT ?, ?",
            &bindings(json!({"1": {"type": "FIXED", "value": "1"}})),
        )
        .unwrap_err();
        assert!(err.message.contains("Bind variable ? not set"), "{err}");
        assert!(
            substitute(
                "SELECT 1",
                &bindings(json!({"1": {"type": "FIXED", "value": "1"}}))
            )
            .is_err()
        );
        assert_eq!(substitute("SELECT 1", &Map::new()).unwrap(), "SELECT 1");
    }
}
