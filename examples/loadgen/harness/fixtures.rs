//! Users of the load sections (3, 6, 7, 8): numbered load users and two burst
//! users added to the demo fixture, each granted both orders tables, so every
//! section can make calls cold for users no earlier level has seen.

use immuta_mcp::sandbox::Fixture;
use immuta_mcp::sandbox::fixture::{GrantSpec, UserSpec};

/// The demo fixture plus `n` load users and two burst users, all reading both orders tables.
pub(crate) fn fixture_with_users(n: usize) -> Fixture {
    let mut fixture = Fixture::demo();
    let grants = || {
        ["SALES.PUBLIC.ORDERS", "main.sales.orders"]
            .into_iter()
            .map(|t| GrantSpec {
                table: t.into(),
                row_filter: None,
                masked_columns: Vec::new(),
            })
            .collect::<Vec<_>>()
    };
    let ids = (0..n).map(load_user).chain([
        "burst-snowflake@example.com".to_string(),
        "burst-databricks@example.com".to_string(),
    ]);
    fixture.users.extend(ids.map(|id| UserSpec {
        id,
        grants: grants(),
    }));
    fixture
}

/// The `i`-th load user's id.
pub(crate) fn load_user(i: usize) -> String {
    format!("load-{i:04}@example.com")
}
