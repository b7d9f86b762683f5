//! SQL guard: decides whether one piece of SQL text may be sent to a platform.
//!
//! The guard judges text with the real parser of each platform's dialect
//! (sqlparser's `SnowflakeDialect` / `DatabricksDialect`) and fails closed:
//! what it cannot parse or classify is refused. Checks run in this order:
//!
//! 1. size and emptiness;
//! 2. characters: control and invisible/format characters (zero-width
//!    spaces, bidirectional marks, BOM, ...) are refused anywhere, and
//!    non-ASCII characters are refused outside string literals, quoted
//!    identifiers and comments (both platforms only have ASCII keywords and
//!    unquoted identifiers, so fullwidth look-alikes can only be a trick);
//! 3. lexical rules that do not depend on the parser agreeing with the
//!    platform. The principle: the platform must run exactly the text the
//!    guard judged, so every construct where sqlparser's lexer and the
//!    platform's may disagree is refused rather than guessed at:
//!    - a bare carriage return (CR not followed by LF): Spark ends a `--`
//!      comment at `\r` (`SIMPLE_COMMENT: '--' ('\\\n' | ~[\r\n])* '\r'? '\n'?`
//!      in Spark's `SqlBaseLexer.g4`), sqlparser only at `\n`, so
//!      `--\rINSERT ...` would hide a write from the guard;
//!    - a `--` comment ending in a backslash (Spark continues it onto the
//!      next line, sqlparser does not);
//!    - nested `/*` and `#` comments;
//!    - dollar-quoted strings on Databricks, and tagged ones (`$a$...$a$`,
//!      a PostgreSQL form) on Snowflake, which only has `$$...$$`;
//!    - raw strings `r'...'` on Databricks (sqlparser has no such literal and
//!      reads a backslash escape inside it);
//!    - Snowflake's flow operator `->>` outside strings and comments: it
//!      chains any statements into one (docs.snowflake.com
//!      sql-reference/operators-flow), while sqlparser reads it as a JSON
//!      operator, so `SELECT 1 ->> DELETE FROM t` would look like a SELECT.
//!
//!    Then exactly one statement (a `;` may only be followed by whitespace
//!    and comments); never a role or user switch (`USE ROLE`, `USE
//!    SECONDARY ROLES`, `SET ROLE`, `SET SESSION AUTHORIZATION`, `ALTER
//!    USER`) and never dynamic SQL (`EXECUTE IMMEDIATE`, which could hide a
//!    role switch) — these hold even with `read_only = false`. These words
//!    are looked for twice: in sqlparser's tokens, and in a deliberately
//!    naive split of the raw text that ignores quotes and comments, so a
//!    lexer disagreement cannot hide them (the price: such words inside a
//!    string literal or comment are refused too);
//! 4. in read-only mode, functions with side effects are refused:
//!    Snowflake `SYSTEM$...` (also inside strings, where `IDENTIFIER('...')`
//!    could name one) and Databricks `reflect`/`java_method`/`http_request`,
//!    again in both the tokens and the naive split;
//! 5. the parse itself: exactly one statement, classified from the AST.
//!    In read-only mode only `SELECT`/`WITH`/`VALUES` queries without
//!    `SELECT ... INTO`, locking clauses or data-modifying CTEs, `SHOW`,
//!    `DESCRIBE`/`DESC`, and `EXPLAIN` of such a query pass. With
//!    `read_only = false` every single statement that passes 1–3 runs.
//!
//! `SHOW`/`DESC`/`DESCRIBE` forms sqlparser lacks a grammar for (Databricks
//! `DESCRIBE HISTORY t`, Snowflake `SHOW GRANTS TO USER u`) are accepted
//! only in an exact shape: the keyword, then names, dots, string
//! literals, `=`, and at most one parenthesised list of names (for
//! `DESC FUNCTION f(NUMBER)`), with no statement verb after the first word.
//! `TABLE(RESULT_SCAN(...))` is allowed: it re-reads the caller's own results.
//!
//! Layout: this file holds [`SqlGuard::check`] (the order above), the
//! verdict and error types; `lexical.rs` the character and lexeme checks
//! (2–3), `words.rs` the role-switch, dynamic-SQL, side-effect and
//! one-statement word checks (3–4), `classify.rs` the verdict on the parsed
//! statement (5).

mod classify;
mod lexical;
mod words;

use crate::result::Platform;
use classify::{check_role_switch_ast, classify, hidden_write};
use lexical::{
    check_bare_carriage_return, check_invisible_characters, check_lexemes, check_non_ascii,
};
use sqlparser::dialect::{DatabricksDialect, Dialect, SnowflakeDialect};
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, Tokenizer};
use words::{
    check_role_switch_words, check_role_switch_words_naive, check_side_effect_functions,
    check_side_effect_functions_naive, check_single_statement, naive_words, unquoted_word,
};

/// What kind of statement the guard let through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatementKind {
    /// `SELECT`, `WITH ... SELECT`, `VALUES`.
    Select,
    /// `SHOW ...`.
    Show,
    /// `DESCRIBE` / `DESC` of an object.
    Describe,
    /// `EXPLAIN` (or `DESCRIBE`) of a statement.
    Explain,
    /// Anything else (only with `read_only = false`), named like `INSERT`.
    Other(String),
}

impl StatementKind {
    /// True for the kinds allowed in read-only mode.
    pub fn is_read(&self) -> bool {
        !matches!(self, StatementKind::Other(_))
    }
}

const READ_ONLY_LIST: &str = "SELECT, WITH, SHOW, DESCRIBE, EXPLAIN";

/// Why the guard refused a statement. Each message tells the caller what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuardError {
    #[error("the SQL is empty: send exactly one statement")]
    Empty,
    #[error("the SQL is {len} bytes, more than the limit of {max} bytes: send a shorter statement")]
    TooLong { len: usize, max: usize },
    #[error(
        "the SQL contains the invisible or control character {code} at character {position}: \
         remove it (such characters can hide what a statement does)"
    )]
    InvisibleCharacter { code: String, position: usize },
    #[error(
        "the SQL contains the non-ASCII character '{ch}' ({code}) at character {position} outside a \
         string literal or quoted identifier: SQL keywords and unquoted names must be plain ASCII"
    )]
    NonAsciiOutsideLiteral {
        ch: char,
        code: String,
        position: usize,
    },
    #[error("{0}")]
    AmbiguousLexeme(String),
    #[error(
        "only one statement per call is allowed; this SQL holds {count} statements: \
         send them as separate calls"
    )]
    MultipleStatements { count: usize },
    #[error(
        "{what} is never allowed: queries run as the role Immuta vended for the end user, \
         and switching role or user would bypass its policies"
    )]
    RoleSwitch { what: String },
    #[error(
        "{what} is never allowed: it runs SQL text the guard cannot inspect; \
         send the statement itself instead"
    )]
    DynamicSql { what: String },
    #[error(
        "only read-only statements are allowed ({READ_ONLY_LIST}); this is {}",
        with_article(kind)
    )]
    NotReadOnly { kind: String },
    #[error("{function} is not allowed with the read-only guard: {why}")]
    ForbiddenFunction { function: String, why: String },
    #[error(
        "the SQL could not be parsed as {platform} SQL, so it is refused ({message}); \
         fix the syntax or send a simpler statement"
    )]
    Parse { platform: Platform, message: String },
}

impl GuardError {
    /// A bounded category of the refusal (a metrics label): never the SQL.
    pub fn reason(&self) -> &'static str {
        match self {
            GuardError::Empty => "empty",
            GuardError::TooLong { .. } => "too_long",
            GuardError::InvisibleCharacter { .. } => "invisible_character",
            GuardError::NonAsciiOutsideLiteral { .. } => "non_ascii",
            GuardError::AmbiguousLexeme(_) => "ambiguous_lexeme",
            GuardError::MultipleStatements { .. } => "multiple_statements",
            GuardError::RoleSwitch { .. } => "role_switch",
            GuardError::DynamicSql { .. } => "dynamic_sql",
            GuardError::NotReadOnly { .. } => "not_read_only",
            GuardError::ForbiddenFunction { .. } => "forbidden_function",
            GuardError::Parse { .. } => "parse_error",
        }
    }
}

fn with_article(kind: &str) -> String {
    let first = kind.chars().next().unwrap_or('X').to_ascii_uppercase();
    // "an INSERT", "an UPDATE", but "a USE".
    let vowel_sound = "AEIOU".contains(first) && !kind.to_ascii_uppercase().starts_with("USE");
    let article = if vowel_sound { "an" } else { "a" };
    format!("{article} {kind}")
}

/// The SQL policy: read-only by default, one statement per call, never a role switch.
#[derive(Debug, Clone)]
pub struct SqlGuard {
    read_only: bool,
    max_sql_bytes: usize,
}

impl SqlGuard {
    pub fn new(read_only: bool, max_sql_bytes: usize) -> Self {
        Self {
            read_only,
            max_sql_bytes,
        }
    }

    /// Whether only read statements pass.
    pub fn read_only(&self) -> bool {
        self.read_only
    }

    /// Decide whether `sql` may run on `platform`; on success say what it is.
    pub fn check(&self, platform: Platform, sql: &str) -> Result<StatementKind, GuardError> {
        if sql.len() > self.max_sql_bytes {
            return Err(GuardError::TooLong {
                len: sql.len(),
                max: self.max_sql_bytes,
            });
        }
        if sql.trim().is_empty() {
            return Err(GuardError::Empty);
        }
        check_invisible_characters(sql)?;
        check_bare_carriage_return(sql)?;

        let dialect = dialect_for(platform);
        let tokens = Tokenizer::new(dialect, sql)
            .tokenize_with_location()
            .map_err(|e| GuardError::Parse {
                platform,
                message: e.to_string(),
            })?;
        check_non_ascii(sql, &tokens)?;
        check_lexemes(platform, &tokens)?;

        let significant: Vec<&Token> = tokens
            .iter()
            .map(|t| &t.token)
            .filter(|t| !matches!(t, Token::Whitespace(_) | Token::EOF))
            .collect();
        if significant.iter().all(|t| matches!(t, Token::SemiColon)) {
            return Err(GuardError::Empty);
        }
        check_role_switch_words(&significant)?;
        let naive = naive_words(sql);
        check_role_switch_words_naive(&naive)?;
        check_single_statement(&significant)?;
        if self.read_only {
            check_side_effect_functions(platform, &significant)?;
            check_side_effect_functions_naive(sql, &naive)?;
        }

        let statements = match Parser::parse_sql(dialect, sql) {
            Ok(statements) => statements,
            Err(e) => return self.unparsed(platform, &significant, e.to_string()),
        };
        let statement = match statements.as_slice() {
            [] => return Err(GuardError::Empty),
            [one] => one,
            many => {
                return Err(GuardError::MultipleStatements { count: many.len() });
            }
        };
        check_role_switch_ast(statement)?;
        let kind = classify(statement);
        if self.read_only {
            if let StatementKind::Other(name) = &kind {
                return Err(GuardError::NotReadOnly { kind: name.clone() });
            }
            if let Some(write) = hidden_write(statement) {
                return Err(GuardError::NotReadOnly { kind: write });
            }
        }
        Ok(kind)
    }

    /// Decide about SQL the parser rejected: SHOW/DESCRIBE pass only in the
    /// exact shape the module doc describes, known write verbs are named in
    /// the refusal, everything else is a parse error.
    fn unparsed(
        &self,
        platform: Platform,
        significant: &[&Token],
        message: String,
    ) -> Result<StatementKind, GuardError> {
        let first = significant
            .first()
            .and_then(|t| unquoted_word(t))
            .map(|w| w.to_ascii_uppercase())
            .unwrap_or_default();
        let kind = match first.as_str() {
            "SHOW" => StatementKind::Show,
            "DESC" | "DESCRIBE" => StatementKind::Describe,
            verb if self.read_only && WRITE_VERBS.contains(&verb) => {
                return Err(GuardError::NotReadOnly { kind: first });
            }
            _ => return Err(GuardError::Parse { platform, message }),
        };
        match unparsed_show_or_describe_shape(significant) {
            Ok(()) => Ok(kind),
            Err(why) => Err(GuardError::Parse {
                platform,
                message: format!(
                    "{message}; a {first} statement the parser does not know is only accepted as `{first}` followed by names, string literals and `=`, and {why}"
                ),
            }),
        }
    }
}

/// Check the exact shape of an unparsed SHOW/DESCRIBE (see the module doc):
/// `significant[0]` is the keyword; trailing `;` were already checked.
fn unparsed_show_or_describe_shape(significant: &[&Token]) -> Result<(), &'static str> {
    let body: Vec<&Token> = significant[1..]
        .iter()
        .copied()
        .take_while(|t| !matches!(t, Token::SemiColon))
        .collect();
    let mut paren_lists = 0usize;
    let mut depth = 0usize;
    for (i, t) in body.iter().enumerate() {
        match t {
            Token::Word(w) => {
                let upper = w.value.to_ascii_uppercase();
                let verb = w.quote_style.is_none()
                    && (WRITE_VERBS.contains(&upper.as_str())
                        || matches!(upper.as_str(), "SELECT" | "WITH" | "VALUES"));
                // `SHOW CREATE TABLE t` is the one verb allowed, right after SHOW.
                let show_create = i == 0 && upper == "CREATE";
                if verb && !show_create {
                    return Err("no statement verb may follow it");
                }
            }
            Token::Period | Token::Eq | Token::SingleQuotedString(_) => {}
            Token::Comma if depth == 1 => {}
            Token::LParen if depth == 0 && paren_lists == 0 => {
                depth = 1;
                paren_lists = 1;
            }
            Token::RParen if depth == 1 => depth = 0,
            _ => return Err("at most one parenthesised list of names"),
        }
    }
    if depth != 0 {
        return Err("its parentheses must be balanced");
    }
    Ok(())
}

/// First words of statements that are not reads on either platform.
const WRITE_VERBS: &[&str] = &[
    "INSERT", "UPDATE", "DELETE", "MERGE", "UPSERT", "CREATE", "ALTER", "DROP", "UNDROP",
    "TRUNCATE", "GRANT", "REVOKE", "COPY", "PUT", "GET", "REMOVE", "RM", "LIST", "LS", "CALL",
    "EXECUTE", "COMMENT", "SET", "UNSET", "USE", "BEGIN", "START", "COMMIT", "ROLLBACK", "REPLACE",
    "OPTIMIZE", "VACUUM", "RESTORE", "REFRESH", "MSCK", "ANALYZE", "CACHE", "UNCACHE", "LOAD",
    "EXPORT", "UNLOAD", "DECLARE", "REPAIR", "FSCK", "CLONE", "SYNC",
];

pub(crate) fn dialect_for(platform: Platform) -> &'static dyn Dialect {
    match platform {
        Platform::Snowflake => &SnowflakeDialect,
        Platform::Databricks => &DatabricksDialect,
    }
}

#[cfg(test)]
mod lexer_disagreement_tests;
#[cfg(test)]
mod tests;
