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
//!
//! The code lives with both platforms' quoting rules in [`crate::sql_ident`].

pub use crate::sql_ident::{IdentError, resolve, resolve_opt};
