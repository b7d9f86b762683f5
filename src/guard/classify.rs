//! The guard's verdict on a parsed statement: role switches anywhere in the
//! tree, the [`StatementKind`] of the statement, and writes hidden inside a
//! read (`SELECT ... INTO`, data-modifying CTEs, locking clauses).

use super::words::role_switch;
use super::{GuardError, StatementKind};
use sqlparser::ast::{Select, SetExpr, Statement, Use, Visit, Visitor};
use std::ops::ControlFlow;

/// Role switches as the parser sees them, anywhere in the statement tree.
pub(super) fn check_role_switch_ast(statement: &Statement) -> Result<(), GuardError> {
    struct Finder;
    impl Visitor for Finder {
        type Break = GuardError;
        fn pre_visit_statement(&mut self, s: &Statement) -> ControlFlow<GuardError> {
            use sqlparser::ast::Set;
            match s {
                Statement::Use(Use::Role(_)) => ControlFlow::Break(role_switch("USE ROLE")),
                Statement::Use(Use::SecondaryRoles(_)) => {
                    ControlFlow::Break(role_switch("USE SECONDARY ROLES"))
                }
                Statement::Set(Set::SetRole { .. }) => ControlFlow::Break(role_switch("SET ROLE")),
                Statement::Set(Set::SetSessionAuthorization(_)) => {
                    ControlFlow::Break(role_switch("SET SESSION AUTHORIZATION"))
                }
                Statement::AlterUser(_) => ControlFlow::Break(role_switch(
                    "ALTER USER (it changes a user's roles and defaults)",
                )),
                Statement::Execute { .. } => ControlFlow::Break(GuardError::DynamicSql {
                    what: "EXECUTE".into(),
                }),
                _ => ControlFlow::Continue(()),
            }
        }
    }
    match statement.visit(&mut Finder) {
        ControlFlow::Break(e) => Err(e),
        ControlFlow::Continue(()) => Ok(()),
    }
}

pub(super) fn classify(statement: &Statement) -> StatementKind {
    match statement {
        Statement::Query(_) => StatementKind::Select,
        Statement::ShowFunctions { .. }
        | Statement::ShowVariable { .. }
        | Statement::ShowStatus { .. }
        | Statement::ShowVariables { .. }
        | Statement::ShowCreate { .. }
        | Statement::ShowColumns { .. }
        | Statement::ShowCatalogs { .. }
        | Statement::ShowDatabases { .. }
        | Statement::ShowProcessList { .. }
        | Statement::ShowSchemas { .. }
        | Statement::ShowCharset(_)
        | Statement::ShowObjects(_)
        | Statement::ShowTables { .. }
        | Statement::ShowViews { .. }
        | Statement::ShowCollation { .. } => StatementKind::Show,
        Statement::ExplainTable { .. } => StatementKind::Describe,
        Statement::Explain { statement, .. } => match classify(statement) {
            StatementKind::Other(inner) => StatementKind::Other(format!("EXPLAIN of {inner}")),
            _ => StatementKind::Explain,
        },
        other => StatementKind::Other(statement_name(other)),
    }
}

/// A write hidden inside an otherwise read statement: `SELECT ... INTO`,
/// data-modifying CTEs (`WITH d AS (DELETE ...)`), locking clauses.
pub(super) fn hidden_write(statement: &Statement) -> Option<String> {
    struct Finder;
    impl Visitor for Finder {
        type Break = String;
        fn pre_visit_statement(&mut self, s: &Statement) -> ControlFlow<String> {
            match s {
                // Its locks and its body are checked by `pre_visit_query`, which the visitor
                // calls next for this statement's query (and for every nested one).
                Statement::Query(_) => ControlFlow::Continue(()),
                Statement::Explain { .. }
                | Statement::ExplainTable { .. }
                | Statement::ShowCreate { .. } => ControlFlow::Continue(()),
                other if classify(other) == StatementKind::Show => ControlFlow::Continue(()),
                other => ControlFlow::Break(statement_name(other)),
            }
        }
        fn pre_visit_query(&mut self, q: &sqlparser::ast::Query) -> ControlFlow<String> {
            if !q.locks.is_empty() {
                return ControlFlow::Break("SELECT ... FOR UPDATE (it takes row locks)".into());
            }
            match write_in_set_expr(&q.body) {
                Some(w) => ControlFlow::Break(w),
                None => ControlFlow::Continue(()),
            }
        }
        fn pre_visit_select(&mut self, s: &Select) -> ControlFlow<String> {
            if s.into.is_some() {
                return ControlFlow::Break("SELECT ... INTO (it writes a table)".into());
            }
            ControlFlow::Continue(())
        }
    }
    match statement.visit(&mut Finder) {
        ControlFlow::Break(w) => Some(w),
        ControlFlow::Continue(()) => None,
    }
}

pub(super) fn write_in_set_expr(body: &SetExpr) -> Option<String> {
    match body {
        SetExpr::Select(s) if s.into.is_some() => {
            Some("SELECT ... INTO (it writes a table)".into())
        }
        SetExpr::SetOperation { left, right, .. } => {
            write_in_set_expr(left).or_else(|| write_in_set_expr(right))
        }
        SetExpr::Query(q) => write_in_set_expr(&q.body),
        SetExpr::Insert(s) | SetExpr::Update(s) | SetExpr::Delete(s) | SetExpr::Merge(s) => {
            Some(statement_name(s))
        }
        _ => None,
    }
}

/// A short upper-case name of a statement for messages (`INSERT`, `DROP TABLE`, ...).
pub(super) fn statement_name(statement: &Statement) -> String {
    let name = match statement {
        Statement::Insert(_) => "INSERT",
        Statement::Update { .. } => "UPDATE",
        Statement::Delete(_) => "DELETE",
        Statement::Merge { .. } => "MERGE",
        Statement::CreateTable(t) if t.query.is_some() => "CREATE TABLE ... AS SELECT",
        Statement::CreateTable(_) => "CREATE TABLE",
        Statement::CreateView { .. } => "CREATE VIEW",
        Statement::Drop { object_type, .. } => return format!("DROP {object_type}"),
        Statement::Truncate { .. } => "TRUNCATE",
        Statement::AlterTable { .. } => "ALTER TABLE",
        Statement::Grant { .. } => "GRANT",
        Statement::Revoke { .. } => "REVOKE",
        Statement::Call(_) => "CALL",
        Statement::Copy { .. } | Statement::CopyIntoSnowflake { .. } => "COPY INTO",
        Statement::Set(_) => "SET",
        Statement::Use(_) => "USE",
        Statement::Execute { .. } => "EXECUTE",
        Statement::StartTransaction { .. } => "transaction (BEGIN / START TRANSACTION)",
        Statement::Commit { .. } => "COMMIT",
        Statement::Rollback { .. } => "ROLLBACK",
        Statement::List(_) => "LIST",
        Statement::Remove(_) => "REMOVE",
        Statement::Put { .. } => "PUT",
        Statement::AlterSession { .. } => "ALTER SESSION",
        Statement::AlterUser(_) => "ALTER USER",
        Statement::CreateFunction(_) => "CREATE FUNCTION",
        Statement::CreateProcedure { .. } => "CREATE PROCEDURE",
        Statement::CreateStage { .. } => "CREATE STAGE",
        Statement::CreateSchema { .. } => "CREATE SCHEMA",
        Statement::CreateDatabase { .. } => "CREATE DATABASE",
        Statement::CreateRole(_) => "CREATE ROLE",
        Statement::CreateUser(_) => "CREATE USER",
        Statement::Comment { .. } => "COMMENT",
        _ => {
            // Leading upper-case keywords of the canonical rendering, e.g. "CREATE SEQUENCE".
            let text = statement.to_string();
            let words: Vec<&str> = text
                .split_whitespace()
                .take_while(|w| w.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
                .take(3)
                .collect();
            return if words.is_empty() {
                "statement that is not a read".into()
            } else {
                words.join(" ")
            };
        }
    };
    name.into()
}
