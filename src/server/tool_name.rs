//! The names of the tools this server offers, as one enum.
//!
//! Every place that needs a tool name (tools/list, dispatch, the audit and
//! metrics labels, the per-tool OAuth scopes, the allow-list's callers) goes
//! through [`ToolName`], so adding a tool is a compile error everywhere it
//! must be handled.

use std::fmt;
use std::str::FromStr;

/// One tool of this server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ToolName {
    QuerySnowflake,
    QueryDatabricks,
    ListTables,
    DescribeTable,
    FetchMore,
    WhoAmI,
}

impl ToolName {
    /// Every tool, in the order tools/list shows them.
    pub const ALL: [ToolName; 6] = [
        ToolName::QuerySnowflake,
        ToolName::QueryDatabricks,
        ToolName::ListTables,
        ToolName::DescribeTable,
        ToolName::FetchMore,
        ToolName::WhoAmI,
    ];

    /// The name on the wire (`tools/call`'s `name`).
    pub const fn as_str(self) -> &'static str {
        match self {
            ToolName::QuerySnowflake => "query_snowflake",
            ToolName::QueryDatabricks => "query_databricks",
            ToolName::ListTables => "list_tables",
            ToolName::DescribeTable => "describe_table",
            ToolName::FetchMore => "fetch_more",
            ToolName::WhoAmI => "whoami",
        }
    }

    /// The tool called `name`, if this server has one (exact, case-sensitive).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == name)
    }

    /// A bounded label for `name` (metrics, query tags): the tool's own name,
    /// or `unknown` for a name this server does not have.
    pub fn label(name: &str) -> &'static str {
        Self::parse(name).map_or("unknown", Self::as_str)
    }
}

impl fmt::Display for ToolName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not one of this server's tools.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("there is no tool named {0:?}")]
pub struct UnknownTool(pub String);

impl FromStr for ToolName {
    type Err = UnknownTool;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::parse(name).ok_or_else(|| UnknownTool(name.to_string()))
    }
}

/// Every tool name, in the order configuration errors list them (kept for
/// callers that want plain strings; [`ToolName::ALL`] is the listing order).
pub const TOOL_NAMES: &[&str] = &[
    ToolName::QuerySnowflake.as_str(),
    ToolName::QueryDatabricks.as_str(),
    ToolName::FetchMore.as_str(),
    ToolName::ListTables.as_str(),
    ToolName::DescribeTable.as_str(),
    ToolName::WhoAmI.as_str(),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_refused() {
        for tool in ToolName::ALL {
            assert_eq!(tool.as_str().parse::<ToolName>(), Ok(tool));
            assert_eq!(tool.to_string(), tool.as_str());
            assert_eq!(ToolName::label(tool.as_str()), tool.as_str());
        }
        assert_eq!(
            "Query_Snowflake".parse::<ToolName>(),
            Err(UnknownTool("Query_Snowflake".into()))
        );
        assert_eq!(ToolName::parse(""), None);
        assert_eq!(ToolName::label("drop_table"), "unknown");
    }

    #[test]
    fn the_plain_list_names_every_tool_once() {
        let mut plain = TOOL_NAMES.to_vec();
        plain.sort_unstable();
        let mut all: Vec<&str> = ToolName::ALL.iter().map(|t| t.as_str()).collect();
        all.sort_unstable();
        assert_eq!(plain, all);
    }
}
