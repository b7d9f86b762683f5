//! Tool input and output schemas as plain JSON Schema (2020-12) that any
//! validator accepts without a warning.
//!
//! schemars annotates integers with `format` values of its own (`uint`,
//! `uint64`, `int64`, `double`, ...). They are not JSON Schema formats, and
//! AJV-based MCP clients (the TypeScript SDK, which Claude Desktop and most IDE
//! clients build on) warn `unknown format "uint64" ignored` on every call. The
//! range is already stated by `minimum`/`maximum`, so such formats are dropped;
//! the formats the JSON Schema specification defines are kept.

use rmcp::handler::server::common::{schema_for_output, schema_for_type};
use rmcp::model::JsonObject;
use schemars::JsonSchema;
use serde_json::Value;
use std::sync::Arc;

/// The `format` values JSON Schema 2020-12 defines (Validation, section 7.3).
const STANDARD_FORMATS: &[&str] = &[
    "date-time",
    "date",
    "time",
    "duration",
    "email",
    "idn-email",
    "hostname",
    "idn-hostname",
    "ipv4",
    "ipv6",
    "uri",
    "uri-reference",
    "iri",
    "iri-reference",
    "uuid",
    "uri-template",
    "json-pointer",
    "relative-json-pointer",
    "regex",
];

/// Keywords whose value is a map of name → subschema.
const SCHEMA_MAPS: &[&str] = &[
    "properties",
    "patternProperties",
    "$defs",
    "definitions",
    "dependentSchemas",
];

/// Keywords whose value is one subschema.
const SCHEMA_VALUES: &[&str] = &[
    "items",
    "additionalProperties",
    "unevaluatedProperties",
    "unevaluatedItems",
    "propertyNames",
    "contains",
    "not",
    "if",
    "then",
    "else",
];

/// Keywords whose value is a list of subschemas.
const SCHEMA_LISTS: &[&str] = &["allOf", "anyOf", "oneOf", "prefixItems"];

/// The input schema of a tool taking `T`, portable.
pub fn input<T: JsonSchema + 'static>() -> Arc<JsonObject> {
    portable(&schema_for_type::<T>())
}

/// The output schema of a tool answering `T`, portable.
pub fn output<T: JsonSchema + 'static>() -> Arc<JsonObject> {
    portable(&schema_for_output::<T>())
}

/// `schema` without `format` keywords that JSON Schema does not define.
pub fn portable(schema: &JsonObject) -> Arc<JsonObject> {
    let mut schema = schema.clone();
    clean(&mut schema);
    Arc::new(schema)
}

fn clean(schema: &mut JsonObject) {
    if let Some(Value::String(format)) = schema.get("format")
        && !STANDARD_FORMATS.contains(&format.as_str())
    {
        schema.remove("format");
    }
    for (keyword, value) in schema.iter_mut() {
        let keyword = keyword.as_str();
        if SCHEMA_MAPS.contains(&keyword) {
            if let Value::Object(map) = value {
                map.values_mut().for_each(clean_value);
            }
        } else if SCHEMA_VALUES.contains(&keyword) {
            // `items` may also be a list (draft 4-7 tuple form).
            match value {
                Value::Array(list) => list.iter_mut().for_each(clean_value),
                other => clean_value(other),
            }
        } else if SCHEMA_LISTS.contains(&keyword)
            && let Value::Array(list) = value
        {
            list.iter_mut().for_each(clean_value);
        }
    }
}

fn clean_value(value: &mut Value) {
    if let Value::Object(schema) = value {
        clean(schema);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn formats(value: &Value, found: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(f)) = map.get("format") {
                    found.push(f.clone());
                }
                map.values().for_each(|v| formats(v, found));
            }
            Value::Array(list) => list.iter().for_each(|v| formats(v, found)),
            _ => {}
        }
    }

    #[test]
    fn non_standard_formats_go_standard_ones_and_a_property_named_format_stay() {
        let schema = json!({
            "type": "object",
            "properties": {
                "rows": {"type": "integer", "format": "uint64", "minimum": 0},
                "when": {"type": "string", "format": "date-time"},
                "format": {"type": "string"},
                "ratio": {"anyOf": [{"type": "number", "format": "double"}, {"type": "null"}]},
                "list": {"type": "array", "items": {"type": "integer", "format": "int32"}},
            },
            "$defs": {"Count": {"type": "integer", "format": "uint"}},
        });
        let Value::Object(schema) = schema else {
            unreachable!()
        };
        let cleaned = Value::Object((*portable(&schema)).clone());
        let mut found = Vec::new();
        formats(&cleaned, &mut found);
        assert_eq!(found, ["date-time"]);
        assert_eq!(cleaned["properties"]["format"], json!({"type": "string"}));
        assert_eq!(cleaned["properties"]["rows"]["minimum"], 0);
    }

    #[test]
    fn every_tool_schema_is_free_of_non_standard_formats() {
        for tool in crate::server::tool_definitions(true) {
            let mut found = Vec::new();
            formats(&Value::Object((*tool.input_schema).clone()), &mut found);
            if let Some(out) = &tool.output_schema {
                formats(&Value::Object((**out).clone()), &mut found);
            }
            assert!(
                found.iter().all(|f| STANDARD_FORMATS.contains(&f.as_str())),
                "{}: {found:?}",
                tool.name
            );
        }
    }
}
