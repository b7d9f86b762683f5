//! The body of `POST /api/2.0/sql/statements` and its validation, as the
//! Statement Execution API refuses it (databricks-sdk-go `service/sql/model.go`
//! `ExecuteStatementRequest`): `warehouse_id`, `wait_timeout` (`0s` or
//! `5s`..`50s`), `on_wait_timeout`, `disposition` (INLINE only in the
//! sandbox), `format` (JSON_ARRAY), `row_limit`/`byte_limit`, named
//! parameters only, non-empty `query_tags` keys.

use super::ApiError;
use super::params::Parameter;
use axum::http::StatusCode;
use serde::Deserialize;
use std::time::Duration;

/// `wait_timeout` when the request has none.
pub(super) const DEFAULT_WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, Default, Deserialize)]
pub(super) struct SubmitBody {
    pub(super) warehouse_id: Option<String>,
    pub(super) statement: Option<String>,
    pub(super) catalog: Option<String>,
    pub(super) schema: Option<String>,
    #[serde(default)]
    pub(super) parameters: Vec<Parameter>,
    #[serde(default)]
    pub(super) query_tags: Vec<QueryTagIn>,
    pub(super) wait_timeout: Option<String>,
    pub(super) on_wait_timeout: Option<String>,
    pub(super) disposition: Option<String>,
    pub(super) format: Option<String>,
    pub(super) row_limit: Option<i64>,
    pub(super) byte_limit: Option<i64>,
}

/// One entry of `query_tags` (`{key, value}`, model.go QueryTag).
#[derive(Debug, Default, Deserialize)]
pub(super) struct QueryTagIn {
    #[serde(default)]
    pub(super) key: String,
}

/// `row_limit` / `byte_limit` of a request, validated.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Limits {
    pub(super) rows: Option<usize>,
    pub(super) bytes: Option<usize>,
}

/// Parse `wait_timeout`: `0s`, or `5s`..`50s`.
pub(super) fn parse_wait_timeout(value: Option<&str>) -> Result<Duration, ApiError> {
    let Some(raw) = value else {
        return Ok(DEFAULT_WAIT);
    };
    let seconds = raw
        .trim()
        .strip_suffix('s')
        .and_then(|n| n.parse::<u64>().ok())
        .filter(|n| *n == 0 || (5..=50).contains(n));
    match seconds {
        Some(n) => Ok(Duration::from_secs(n)),
        None => Err(ApiError::invalid(format!(
            "wait_timeout must be 0s or between 5s and 50s (got '{raw}')."
        ))),
    }
}

/// Validate the request body; on success the SQL with parameters applied is not yet computed.
pub(super) fn validate(
    body: &SubmitBody,
    warehouse_id: &str,
) -> Result<(Duration, bool, Limits), ApiError> {
    match body.warehouse_id.as_deref() {
        None | Some("") => return Err(ApiError::invalid("warehouse_id is required.")),
        Some(id) if id != warehouse_id => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "RESOURCE_DOES_NOT_EXIST",
                format!("SQL warehouse {id} does not exist."),
            ));
        }
        Some(_) => {}
    }
    if body
        .statement
        .as_deref()
        .is_none_or(|s| s.trim().is_empty())
    {
        return Err(ApiError::invalid("statement is required."));
    }
    // model.go ExecuteStatementRequest.Parameters: "Currently, positional
    // parameters denoted by a `?` marker are not supported".
    if let Some(i) = body
        .parameters
        .iter()
        .position(|p| p.name.as_deref().is_none_or(|n| n.trim().is_empty()))
    {
        return Err(ApiError::invalid(format!(
            "parameters[{i}] has no name: positional parameters (`?`) are not supported; name every parameter and mark it :name in the statement."
        )));
    }
    // model.go QueryTag: "A query tag consists of a non-empty key and, optionally, a value."
    if let Some(i) = body.query_tags.iter().position(|t| t.key.trim().is_empty()) {
        return Err(ApiError::invalid(format!(
            "query_tags[{i}] has an empty key: a query tag needs a non-empty key."
        )));
    }
    let wait = parse_wait_timeout(body.wait_timeout.as_deref())?;
    let cancel_on_timeout = match body
        .on_wait_timeout
        .as_deref()
        .map(str::to_ascii_uppercase)
        .as_deref()
    {
        None | Some("CONTINUE") => false,
        Some("CANCEL") => true,
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "on_wait_timeout must be CONTINUE or CANCEL (got '{other}')."
            )));
        }
    };
    match body
        .disposition
        .as_deref()
        .map(str::to_ascii_uppercase)
        .as_deref()
    {
        None | Some("INLINE") => {}
        Some("EXTERNAL_LINKS") => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "NOT_IMPLEMENTED",
                "disposition EXTERNAL_LINKS is not available in the sandbox: use INLINE with format JSON_ARRAY.",
            ));
        }
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "disposition must be INLINE or EXTERNAL_LINKS (got '{other}')."
            )));
        }
    }
    match body
        .format
        .as_deref()
        .map(str::to_ascii_uppercase)
        .as_deref()
    {
        None | Some("JSON_ARRAY") => {}
        Some(other @ ("ARROW_STREAM" | "CSV")) => {
            return Err(ApiError::invalid(format!(
                "format {other} is not supported with disposition INLINE: use JSON_ARRAY."
            )));
        }
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "format must be JSON_ARRAY, ARROW_STREAM or CSV (got '{other}')."
            )));
        }
    }
    let non_negative = |name: &str, v: Option<i64>| -> Result<Option<usize>, ApiError> {
        match v {
            None => Ok(None),
            Some(n) if n >= 0 => Ok(Some(usize::try_from(n).unwrap_or(usize::MAX))),
            Some(n) => Err(ApiError::invalid(format!(
                "{name} must not be negative (got {n})."
            ))),
        }
    };
    let limits = Limits {
        rows: non_negative("row_limit", body.row_limit)?,
        bytes: non_negative("byte_limit", body.byte_limit)?,
    };
    Ok((wait, cancel_on_timeout, limits))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_timeout_accepts_zero_and_five_to_fifty_seconds() {
        assert_eq!(parse_wait_timeout(None).unwrap(), DEFAULT_WAIT);
        assert_eq!(parse_wait_timeout(Some("0s")).unwrap(), Duration::ZERO);
        assert_eq!(
            parse_wait_timeout(Some("5s")).unwrap(),
            Duration::from_secs(5)
        );
        assert_eq!(
            parse_wait_timeout(Some("50s")).unwrap(),
            Duration::from_secs(50)
        );
        for bad in ["4s", "51s", "10", "abc", "-5s"] {
            let err = parse_wait_timeout(Some(bad)).unwrap_err();
            assert_eq!(err.error_code, "INVALID_PARAMETER_VALUE", "{bad}");
        }
    }

    #[test]
    fn validation_rejects_external_links_other_formats_and_bad_warehouses() {
        let ok = SubmitBody {
            warehouse_id: Some("wh".into()),
            statement: Some("SELECT 1".into()),
            ..SubmitBody::default()
        };
        assert!(validate(&ok, "wh").is_ok());
        let wrong_wh = SubmitBody {
            warehouse_id: Some("other".into()),
            ..SubmitBody {
                statement: Some("SELECT 1".into()),
                ..SubmitBody::default()
            }
        };
        assert_eq!(
            validate(&wrong_wh, "wh").unwrap_err().status,
            StatusCode::NOT_FOUND
        );
        let links = SubmitBody {
            disposition: Some("EXTERNAL_LINKS".into()),
            warehouse_id: Some("wh".into()),
            statement: Some("SELECT 1".into()),
            ..SubmitBody::default()
        };
        assert_eq!(
            validate(&links, "wh").unwrap_err().error_code,
            "NOT_IMPLEMENTED"
        );
        let csv = SubmitBody {
            format: Some("CSV".into()),
            warehouse_id: Some("wh".into()),
            statement: Some("SELECT 1".into()),
            ..SubmitBody::default()
        };
        assert_eq!(
            validate(&csv, "wh").unwrap_err().error_code,
            "INVALID_PARAMETER_VALUE"
        );
        let negative = SubmitBody {
            row_limit: Some(-1),
            warehouse_id: Some("wh".into()),
            statement: Some("SELECT 1".into()),
            ..SubmitBody::default()
        };
        assert!(validate(&negative, "wh").is_err());
    }
}
