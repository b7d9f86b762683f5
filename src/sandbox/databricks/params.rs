//! Parameter markers of the Databricks Statement Execution API
//! (`"parameters": [{"name", "value", "type"}]`).
//!
//! The engine takes plain SQL, so the emulator replaces each named marker
//! `:name` outside
//! string literals, quoted identifiers and comments with a SQL literal:
//! numeric types are checked to be numbers, BOOLEAN becomes `TRUE`/`FALSE`,
//! everything else (STRING by default, DATE, TIMESTAMP, ...) a quoted string,
//! an absent value `NULL`. `::` casts are left alone. Positional `?` markers
//! are refused: "Currently, positional parameters denoted by a `?` marker are
//! not supported by the Databricks SQL Statement Execution API"
//! (databricks-sdk-go `service/sql/model.go`, ExecuteStatementRequest.Parameters);
//! the submit handler already answers 400 for a parameter without a name. Errors use Databricks'
//! condition names (`UNBOUND_SQL_PARAMETER`, `INVALID_PARAMETER_VALUE`).

use crate::sandbox::types::{is_number_literal, sql_string_literal};
use serde::Deserialize;

/// One entry of the request's `parameters`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Parameter {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub value: Option<String>,
    #[serde(default, rename = "type")]
    pub type_name: Option<String>,
}

/// A parameter set that cannot be applied; `message` is Databricks-worded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ParamError {
    pub message: String,
}

fn error(message: impl Into<String>) -> ParamError {
    ParamError {
        message: message.into(),
    }
}

/// Replace the markers of `sql` with literals of `params`.
pub fn substitute(sql: &str, params: &[Parameter]) -> Result<String, ParamError> {
    if params.is_empty() {
        return Ok(sql.to_string());
    }
    let chars: Vec<char> = sql.chars().collect();
    let mut out = String::with_capacity(sql.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\'' | '"' | '`' => {
                let end = skip_quoted(&chars, i, c);
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
                let end = (i + 2..chars.len().saturating_sub(1))
                    .find(|&j| chars[j] == '*' && chars[j + 1] == '/')
                    .map_or(chars.len(), |j| j + 2);
                out.extend(&chars[i..end]);
                i = end;
            }
            ':' if chars.get(i + 1) == Some(&':') => {
                out.push_str("::");
                i += 2;
            }
            ':' if chars
                .get(i + 1)
                .is_some_and(|n| n.is_alphabetic() || *n == '_') =>
            {
                let mut end = i + 1;
                while end < chars.len() && (chars[end].is_alphanumeric() || chars[end] == '_') {
                    end += 1;
                }
                let name: String = chars[i + 1..end].iter().collect();
                let param = params
                    .iter()
                    .find(|p| p.name.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(&name)))
                    .ok_or_else(|| {
                        error(format!(
                            "[UNBOUND_SQL_PARAMETER] Found the unbound parameter: {name}. Please, fix `args` and provide a mapping of the parameter to either a SQL literal or collection constructor functions such as `map()`, `array()`, `struct()`. SQLSTATE: 42P02"
                        ))
                    })?;
                out.push_str(&literal(param, &name)?);
                i = end;
            }
            '?' => {
                return Err(error(format!(
                    "[UNBOUND_SQL_PARAMETER] Found a positional parameter marker `?` at position {i}: positional parameters are not supported by the Statement Execution API; use named :name markers. SQLSTATE: 42P02"
                )));
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    Ok(out)
}

fn skip_quoted(chars: &[char], start: usize, quote: char) -> usize {
    let mut i = start + 1;
    while i < chars.len() {
        if chars[i] == '\\' && quote != '`' {
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

fn literal(param: &Parameter, shown_name: &str) -> Result<String, ParamError> {
    let Some(value) = &param.value else {
        return Ok("NULL".to_string());
    };
    let type_name = param
        .type_name
        .as_deref()
        .unwrap_or("STRING")
        .trim()
        .to_ascii_uppercase();
    let base = type_name.split('(').next().unwrap_or_default().trim();
    match base {
        "TINYINT" | "SMALLINT" | "INT" | "INTEGER" | "BIGINT" | "DECIMAL" | "DEC" | "NUMERIC"
        | "FLOAT" | "DOUBLE" | "REAL" => {
            if is_number_literal(value.trim()) {
                Ok(value.trim().to_string())
            } else {
                Err(error(format!(
                    "[INVALID_PARAMETER_VALUE] The value '{value}' of parameter {shown_name} is not a valid {type_name}."
                )))
            }
        }
        "BOOLEAN" => match value.trim().to_ascii_lowercase().as_str() {
            "true" => Ok("TRUE".to_string()),
            "false" => Ok("FALSE".to_string()),
            _ => Err(error(format!(
                "[INVALID_PARAMETER_VALUE] The value '{value}' of parameter {shown_name} is not a valid BOOLEAN."
            ))),
        },
        "STRING" | "VARCHAR" | "CHAR" | "DATE" | "TIMESTAMP" | "TIMESTAMP_NTZ" | "BINARY"
        | "INTERVAL" | "VOID" => Ok(sql_string_literal(value)),
        _ => Err(error(format!(
            "[INVALID_PARAMETER_VALUE] Unsupported type '{type_name}' for parameter {shown_name}."
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(name: Option<&str>, value: Option<&str>, type_name: Option<&str>) -> Parameter {
        Parameter {
            name: name.map(str::to_string),
            value: value.map(str::to_string),
            type_name: type_name.map(str::to_string),
        }
    }

    #[test]
    fn named_markers_are_replaced_outside_literals() {
        let params = [
            p(Some("region"), Some("E'U"), None),
            p(Some("min"), Some("10.5"), Some("DECIMAL(10,2)")),
            p(Some("flag"), Some("true"), Some("BOOLEAN")),
            p(Some("gone"), None, Some("STRING")),
        ];
        let sql = "SELECT ':region', `:min` FROM t WHERE r = :region AND a > :MIN AND f = :flag AND g = :gone AND x::string = 'a' -- :nope";
        assert_eq!(
            substitute(sql, &params).unwrap(),
            "SELECT ':region', `:min` FROM t WHERE r = 'E''U' AND a > 10.5 AND f = TRUE AND g = NULL AND x::string = 'a' -- :nope"
        );
    }

    #[test]
    fn positional_markers_are_not_supported() {
        let params = [p(Some("a"), Some("1"), Some("INT"))];
        let err = substitute("SELECT :a, ?", &params).unwrap_err();
        assert!(
            err.message
                .contains("positional parameters are not supported"),
            "{err}"
        );
        // A `?` inside a literal is text, not a marker.
        assert_eq!(
            substitute("SELECT '?', :a", &params).unwrap(),
            "SELECT '?', 1"
        );
    }

    #[test]
    fn unbound_and_invalid_values_are_errors() {
        let err = substitute("SELECT :a", &[p(Some("b"), Some("1"), None)]).unwrap_err();
        assert!(err.message.contains("UNBOUND_SQL_PARAMETER"), "{err}");
        let err =
            substitute("SELECT :a", &[p(Some("a"), Some("1 OR 1=1"), Some("INT"))]).unwrap_err();
        assert!(err.message.contains("INVALID_PARAMETER_VALUE"), "{err}");
        assert_eq!(substitute("SELECT :a", &[]).unwrap(), "SELECT :a");
    }
}
