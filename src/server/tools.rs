//! What tools/list shows: one [`Tool`] per [`ToolName`], with its
//! description, input schema (from [`super::args`]), output schema and
//! annotations. The text here is what the model reads to pick a tool.

use super::args::{
    DatabricksQueryArgs, DescribeTableArgs, FetchMoreArgs, ListTablesArgs, NoArgs,
    SnowflakeQueryArgs, WhoAmI,
};
use super::tool_name::ToolName;
use crate::result::ResultSet;
use crate::tool_schema;
use rmcp::model::{Tool, ToolAnnotations};

/// The tools this server lists, in [`ToolName::ALL`] order. `read_only` is
/// the guard's mode: it changes the query tools' text and annotations.
pub(crate) fn tool_definitions(read_only: bool) -> Vec<Tool> {
    ToolName::ALL
        .into_iter()
        .map(|name| definition(name, read_only))
        .collect()
}

fn definition(name: ToolName, read_only: bool) -> Tool {
    let mode = if read_only {
        "Only read statements run (SELECT, WITH, SHOW, DESCRIBE, EXPLAIN), one statement per call."
    } else {
        "One statement per call; the operator allowed statements other than reads."
    };
    let governed = "It runs as the end user's ephemeral role vended by Immuta, so it returns only the rows and columns \
                    that user may see (masked columns arrive masked, filtered rows are absent, tables the user may not \
                    read give a 'does not exist or not authorized' error). Do not try to switch roles.";
    let query_annotations = ToolAnnotations::new()
        .read_only(read_only)
        .destructive(!read_only)
        .open_world(true);
    let catalog_annotations = ToolAnnotations::new()
        .read_only(true)
        .destructive(false)
        .open_world(true);
    let result_schema = tool_schema::output::<ResultSet>();
    match name {
        ToolName::QuerySnowflake => Tool::new(
            name.as_str(),
            format!(
                "Run one SQL statement on Snowflake for the current user. {governed} {mode} Results come back as \
                 typed columns and rows (structuredContent) and as a text table; `truncated` says more rows exist \
                 than `max_rows`, and `next_cursor` (when present) reads the next page with fetch_more."
            ),
            tool_schema::input::<SnowflakeQueryArgs>(),
        )
        .with_title("Query Snowflake (governed by Immuta)")
        .with_raw_output_schema(result_schema)
        .with_annotations(query_annotations),
        ToolName::QueryDatabricks => Tool::new(
            name.as_str(),
            format!(
                "Run one SQL statement on Databricks (Unity Catalog) for the current user. {governed} {mode} Results \
                 come back as typed columns and rows (structuredContent) and as a text table; `truncated` says more \
                 rows exist than `max_rows`, and `next_cursor` (when present) reads the next page with fetch_more."
            ),
            tool_schema::input::<DatabricksQueryArgs>(),
        )
        .with_title("Query Databricks (governed by Immuta)")
        .with_raw_output_schema(result_schema)
        .with_annotations(query_annotations),
        ToolName::ListTables => Tool::new(
            name.as_str(),
            "List the tables the current user can read on one platform (optionally within one database/catalog and \
             schema). Use it before writing a query.",
            tool_schema::input::<ListTablesArgs>(),
        )
        .with_title("List readable tables")
        .with_raw_output_schema(result_schema)
        .with_annotations(catalog_annotations),
        ToolName::DescribeTable => Tool::new(
            name.as_str(),
            "Describe the columns of one table the current user can read (name and type per column).",
            tool_schema::input::<DescribeTableArgs>(),
        )
        .with_title("Describe a table")
        .with_raw_output_schema(result_schema)
        .with_annotations(catalog_annotations),
        ToolName::FetchMore => Tool::new(
            name.as_str(),
            "Read the next page of a truncated query result: pass the `next_cursor` of a previous result of \
             query_snowflake, query_databricks or list_tables (or of fetch_more). Returns the same columns and \
             result shape, with its own `next_cursor` until the last page. The platform is not queried again: \
             the page is read from the finished statement as the same user. A cursor works only for the user \
             who ran the query and until that user's credential expires; if it is refused, run the query again.",
            tool_schema::input::<FetchMoreArgs>(),
        )
        .with_title("Fetch more rows of a result")
        .with_raw_output_schema(result_schema)
        .with_annotations(catalog_annotations),
        ToolName::WhoAmI => Tool::new(
            name.as_str(),
            "Report which end user this server acts for and which platforms are configured. Never returns secrets.",
            tool_schema::input::<NoArgs>(),
        )
        .with_title("Who am I")
        .with_raw_output_schema(tool_schema::output::<WhoAmI>())
        .with_annotations(ToolAnnotations::new().read_only(true).destructive(false).open_world(false)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tools_have_output_schemas_and_annotations() {
        let tools = tool_definitions(true);
        let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
        assert_eq!(
            names,
            [
                "query_snowflake",
                "query_databricks",
                "list_tables",
                "describe_table",
                "fetch_more",
                "whoami"
            ]
        );
        for t in &tools {
            assert!(t.output_schema.is_some(), "{} has an output schema", t.name);
            let props = t.input_schema.get("properties").and_then(|p| p.as_object());
            assert!(
                props.is_none_or(|p| !p.contains_key("user")),
                "no tool takes a user argument"
            );
        }
        let q = &tools[0];
        let output = q.output_schema.as_ref().unwrap();
        assert!(
            output["properties"].get("next_cursor").is_some(),
            "the result schema names next_cursor: {output:?}"
        );
        let fetch = tools
            .iter()
            .find(|t| t.name == ToolName::FetchMore.as_str())
            .unwrap();
        assert_eq!(fetch.output_schema, q.output_schema, "same result shape");
        let fetch_props = fetch.input_schema["properties"].as_object().unwrap();
        assert!(fetch_props.contains_key("cursor") && fetch_props.contains_key("max_rows"));
        assert_eq!(q.annotations.as_ref().unwrap().read_only_hint, Some(true));
        assert_eq!(q.annotations.as_ref().unwrap().open_world_hint, Some(true));
        let writable = tool_definitions(false);
        assert_eq!(
            writable[0].annotations.as_ref().unwrap().read_only_hint,
            Some(false)
        );
    }
}
