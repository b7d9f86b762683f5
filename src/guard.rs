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

use crate::result::Platform;
use sqlparser::ast::{Select, SetExpr, Statement, Use, Visit, Visitor};
use sqlparser::dialect::{DatabricksDialect, Dialect, SnowflakeDialect};
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer, Whitespace};
use std::ops::ControlFlow;

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

/// Characters that are invisible or change how text is displayed (Unicode
/// `Cc` except tab/newline/carriage return, `Cf`, `Zl`, `Zp`).
fn is_invisible(c: char) -> bool {
    if c.is_control() {
        return !matches!(c, '\t' | '\n' | '\r');
    }
    matches!(
        c as u32,
        0x00AD
            | 0x0600..=0x0605
            | 0x061C
            | 0x06DD
            | 0x070F
            | 0x0890..=0x0891
            | 0x08E2
            | 0x180E
            | 0x200B..=0x200F
            | 0x2028..=0x202E
            | 0x2060..=0x2064
            | 0x2066..=0x206F
            | 0xFEFF
            | 0xFFF9..=0xFFFB
            | 0x110BD
            | 0x110CD
            | 0x13430..=0x1343F
            | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A
            | 0xE0001
            | 0xE0020..=0xE007F
    )
}

fn code_point(c: char) -> String {
    format!("U+{:04X}", c as u32)
}

/// Refuse a carriage return that is not followed by a line feed (see the module doc).
fn check_bare_carriage_return(sql: &str) -> Result<(), GuardError> {
    let bytes = sql.as_bytes();
    let bare = bytes
        .iter()
        .enumerate()
        .find(|(i, b)| **b == b'\r' && bytes.get(i + 1) != Some(&b'\n'));
    match bare {
        Some((i, _)) => Err(GuardError::AmbiguousLexeme(format!(
            "the SQL contains a carriage return not followed by a line feed at character {}: \
             platforms disagree on whether it ends a `--` comment; use `\\n` or `\\r\\n` line breaks",
            sql[..i].chars().count() + 1
        ))),
        None => Ok(()),
    }
}

fn check_invisible_characters(sql: &str) -> Result<(), GuardError> {
    match sql.chars().enumerate().find(|(_, c)| is_invisible(*c)) {
        Some((i, c)) => Err(GuardError::InvisibleCharacter {
            code: code_point(c),
            position: i + 1,
        }),
        None => Ok(()),
    }
}

/// Tokens whose text may hold any (visible) character.
fn is_free_text(token: &Token) -> bool {
    match token {
        Token::Word(w) => w.quote_style.is_some(),
        Token::Whitespace(w) => matches!(
            w,
            Whitespace::SingleLineComment { .. } | Whitespace::MultiLineComment(_)
        ),
        _ => is_string_literal(token),
    }
}

fn is_string_literal(token: &Token) -> bool {
    matches!(
        token,
        Token::SingleQuotedString(_)
            | Token::DoubleQuotedString(_)
            | Token::TripleSingleQuotedString(_)
            | Token::TripleDoubleQuotedString(_)
            | Token::DollarQuotedString(_)
            | Token::SingleQuotedByteStringLiteral(_)
            | Token::DoubleQuotedByteStringLiteral(_)
            | Token::TripleSingleQuotedByteStringLiteral(_)
            | Token::TripleDoubleQuotedByteStringLiteral(_)
            | Token::SingleQuotedRawStringLiteral(_)
            | Token::DoubleQuotedRawStringLiteral(_)
            | Token::TripleSingleQuotedRawStringLiteral(_)
            | Token::TripleDoubleQuotedRawStringLiteral(_)
            | Token::NationalStringLiteral(_)
            | Token::QuoteDelimitedStringLiteral(_)
            | Token::NationalQuoteDelimitedStringLiteral(_)
            | Token::EscapedStringLiteral(_)
            | Token::UnicodeStringLiteral(_)
            | Token::HexStringLiteral(_)
    )
}

/// Refuse non-ASCII characters outside literals, quoted identifiers and comments.
///
/// Tokens are contiguous, so token `i` covers the characters from its start
/// location up to the next token's start; locations count characters per line
/// exactly as the tokenizer does (a `\n` starts a new line at column 1).
fn check_non_ascii(sql: &str, tokens: &[TokenWithSpan]) -> Result<(), GuardError> {
    if sql.is_ascii() {
        return Ok(());
    }
    let mut token_index = 0usize;
    let (mut line, mut column) = (1u64, 1u64);
    for (position, c) in sql.chars().enumerate() {
        while token_index + 1 < tokens.len() {
            let next = tokens[token_index + 1].span.start;
            if (next.line, next.column) <= (line, column) {
                token_index += 1;
            } else {
                break;
            }
        }
        if !c.is_ascii() {
            let allowed = tokens
                .get(token_index)
                .is_some_and(|t| is_free_text(&t.token));
            if !allowed {
                return Err(GuardError::NonAsciiOutsideLiteral {
                    ch: c,
                    code: code_point(c),
                    position: position + 1,
                });
            }
        }
        if c == '\n' {
            line += 1;
            column = 1;
        } else {
            column += 1;
        }
    }
    Ok(())
}

/// Refuse lexemes the platform might read differently from the parser.
fn check_lexemes(platform: Platform, tokens: &[TokenWithSpan]) -> Result<(), GuardError> {
    if platform == Platform::Databricks {
        check_raw_string_prefix(tokens)?;
    }
    for t in tokens {
        match &t.token {
            Token::Whitespace(Whitespace::MultiLineComment(body)) if body.contains("/*") => {
                return Err(GuardError::AmbiguousLexeme(
                    "nested block comments (`/*` inside `/* ... */`) are not allowed: \
                     platforms disagree on where they end; remove the inner `/*`"
                        .into(),
                ));
            }
            Token::Whitespace(Whitespace::SingleLineComment { prefix, .. })
                if prefix != "--" && prefix != "//" =>
            {
                return Err(GuardError::AmbiguousLexeme(format!(
                    "`{prefix}` comments are not allowed: use `--` comments instead"
                )));
            }
            Token::Whitespace(Whitespace::SingleLineComment { comment, .. })
                if comment.trim_end_matches('\r').ends_with('\\') =>
            {
                return Err(GuardError::AmbiguousLexeme(
                    "a `--` comment may not end with a backslash: Databricks continues such a \
                     comment onto the next line; remove the trailing `\\`"
                        .into(),
                ));
            }
            Token::DollarQuotedString(_) if platform == Platform::Databricks => {
                return Err(GuardError::AmbiguousLexeme(
                    "dollar-quoted strings (`$$...$$`) are not Databricks SQL: \
                     use single-quoted strings"
                        .into(),
                ));
            }
            Token::DollarQuotedString(d) if platform == Platform::Snowflake && d.tag.is_some() => {
                return Err(GuardError::AmbiguousLexeme(
                    "tagged dollar-quoted strings (`$tag$...$tag$`) are not Snowflake SQL: \
                     use `$$...$$` or single-quoted strings"
                        .into(),
                ));
            }
            Token::LongArrow if platform == Platform::Snowflake => return Err(flow_operator()),
            _ => {}
        }
    }
    Ok(())
}

/// Spark reads `r'...'` / `R"..."` as a raw string, where a backslash escapes
/// nothing; sqlparser reads the word `r` and then an escaped string, so the
/// two disagree about where the string ends (Databricks docs, "STRING type":
/// "r: Optional prefix denoting a raw-literal").
fn check_raw_string_prefix(tokens: &[TokenWithSpan]) -> Result<(), GuardError> {
    for pair in tokens.windows(2) {
        let prefix = matches!(&pair[0].token, Token::Word(w)
            if w.quote_style.is_none() && w.value.eq_ignore_ascii_case("r"));
        let string = matches!(
            pair[1].token,
            Token::SingleQuotedString(_) | Token::DoubleQuotedString(_)
        );
        if prefix && string {
            return Err(GuardError::AmbiguousLexeme(
                "raw string literals (`r'...'`) are not allowed: write a plain string \
                 literal instead"
                    .into(),
            ));
        }
    }
    Ok(())
}

fn flow_operator() -> GuardError {
    GuardError::AmbiguousLexeme(
        "the flow operator `->>` is not allowed: on Snowflake it chains several statements \
         into one; send each statement as its own call"
            .into(),
    )
}

/// A deliberately naive view of the raw text: the upper-cased runs of
/// identifier characters (`A-Z`, `0-9`, `_`, `$`), with the byte offset
/// just past each, ignoring quotes and comments. A lexer disagreement can
/// hide a word from sqlparser's tokens, never from this.
fn naive_words(sql: &str) -> Vec<(String, usize)> {
    let mut words = Vec::new();
    let mut current = String::new();
    for (i, c) in sql.char_indices() {
        if c.is_ascii_alphanumeric() || c == '_' || c == '$' {
            current.push(c.to_ascii_uppercase());
        } else if !current.is_empty() {
            words.push((std::mem::take(&mut current), i));
        }
    }
    if !current.is_empty() {
        words.push((current, sql.len()));
    }
    words
}

/// The role-switch and dynamic-SQL word pairs, over the naive words.
fn check_role_switch_words_naive(words: &[(String, usize)]) -> Result<(), GuardError> {
    for pair in words.windows(2) {
        let (a, b) = (pair[0].0.as_str(), pair[1].0.as_str());
        let found = match (a, b) {
            ("USE", "ROLE") => Some(role_switch("USE ROLE")),
            ("USE", "SECONDARY") => Some(role_switch("USE SECONDARY ROLES")),
            ("SET", "ROLE") => Some(role_switch("SET ROLE")),
            ("SET", "SESSION_AUTHORIZATION") => Some(role_switch("SET SESSION AUTHORIZATION")),
            ("ALTER", "USER") => Some(role_switch(
                "ALTER USER (it changes a user's roles and defaults)",
            )),
            ("EXECUTE" | "EXEC", "IMMEDIATE" | "AS") => Some(GuardError::DynamicSql {
                what: "EXECUTE IMMEDIATE / EXECUTE AS".into(),
            }),
            _ => None,
        };
        if let Some(e) = found {
            return Err(e);
        }
    }
    for triple in words.windows(3) {
        if triple[0].0 == "SET"
            && matches!(triple[1].0.as_str(), "SESSION" | "LOCAL")
            && matches!(triple[2].0.as_str(), "ROLE" | "AUTHORIZATION")
        {
            return Err(role_switch("SET SESSION ROLE/AUTHORIZATION"));
        }
    }
    Ok(())
}

/// Side-effect functions over the naive words (read-only mode): any
/// `SYSTEM$` word, and `reflect`/`java_method`/`http_request` followed by
/// `(` after white space and quote characters.
fn check_side_effect_functions_naive(
    sql: &str,
    words: &[(String, usize)],
) -> Result<(), GuardError> {
    for (word, end) in words {
        if word.contains("SYSTEM$") {
            return Err(system_function());
        }
        if matches!(
            word.as_str(),
            "REFLECT" | "TRY_REFLECT" | "JAVA_METHOD" | "HTTP_REQUEST"
        ) {
            let next = sql[*end..]
                .chars()
                .find(|c| !c.is_whitespace() && !matches!(c, '`' | '"'));
            if next == Some('(') {
                return Err(call_out_function(&word.to_ascii_lowercase()));
            }
        }
    }
    Ok(())
}

fn unquoted_word(token: &Token) -> Option<&str> {
    match token {
        Token::Word(w) if w.quote_style.is_none() => Some(&w.value),
        _ => None,
    }
}

fn word_is(token: Option<&&Token>, expected: &[&str]) -> bool {
    token
        .and_then(|t| unquoted_word(t))
        .is_some_and(|w| expected.iter().any(|e| w.eq_ignore_ascii_case(e)))
}

/// Role/user switches and dynamic SQL, found by word sequence anywhere in the
/// text (not only at the start), so a parser that reads them oddly cannot
/// smuggle them through.
fn check_role_switch_words(significant: &[&Token]) -> Result<(), GuardError> {
    for i in 0..significant.len() {
        let at = |k: usize| significant.get(i + k);
        if word_is(at(0), &["USE"]) {
            if word_is(at(1), &["ROLE"]) {
                return Err(role_switch("USE ROLE"));
            }
            if word_is(at(1), &["SECONDARY"]) {
                return Err(role_switch("USE SECONDARY ROLES"));
            }
        }
        if word_is(at(0), &["SET"]) {
            if word_is(at(1), &["ROLE"]) {
                return Err(role_switch("SET ROLE"));
            }
            if word_is(at(1), &["SESSION", "LOCAL"]) && word_is(at(2), &["ROLE", "AUTHORIZATION"]) {
                return Err(role_switch("SET SESSION ROLE/AUTHORIZATION"));
            }
            if word_is(at(1), &["SESSION_AUTHORIZATION"]) {
                return Err(role_switch("SET SESSION AUTHORIZATION"));
            }
        }
        if word_is(at(0), &["ALTER"]) && word_is(at(1), &["USER"]) {
            return Err(role_switch(
                "ALTER USER (it changes a user's roles and defaults)",
            ));
        }
        if word_is(at(0), &["EXECUTE", "EXEC"]) && word_is(at(1), &["IMMEDIATE", "AS"]) {
            return Err(GuardError::DynamicSql {
                what: "EXECUTE IMMEDIATE / EXECUTE AS".into(),
            });
        }
    }
    Ok(())
}

fn role_switch(what: &str) -> GuardError {
    GuardError::RoleSwitch { what: what.into() }
}

/// A `;` may only be followed by more `;` (and whitespace/comments, already filtered).
fn check_single_statement(significant: &[&Token]) -> Result<(), GuardError> {
    let mut count = 0usize;
    let mut in_statement = false;
    for t in significant {
        if matches!(t, Token::SemiColon) {
            in_statement = false;
        } else if !in_statement {
            in_statement = true;
            count += 1;
        }
    }
    if count > 1 {
        return Err(GuardError::MultipleStatements { count });
    }
    Ok(())
}

/// Functions that act instead of reading (read-only mode only).
fn check_side_effect_functions(
    platform: Platform,
    significant: &[&Token],
) -> Result<(), GuardError> {
    for (i, t) in significant.iter().enumerate() {
        let text = match t {
            Token::Word(w) => Some(w.value.as_str()),
            other if is_string_literal(other) => Some(literal_text(other)),
            _ => None,
        };
        if let Some(text) = text {
            let upper = text.to_ascii_uppercase();
            let system_split = upper == "SYSTEM"
                && significant
                    .get(i + 1)
                    .is_some_and(|n| n.to_string().starts_with('$'));
            if upper.contains("SYSTEM$") || (platform == Platform::Snowflake && system_split) {
                return Err(system_function());
            }
        }
        if let Token::Word(w) = t {
            let name = w.value.to_ascii_lowercase();
            let is_call = matches!(significant.get(i + 1), Some(Token::LParen));
            if is_call
                && matches!(
                    name.as_str(),
                    "reflect" | "try_reflect" | "java_method" | "http_request"
                )
            {
                return Err(call_out_function(&name));
            }
        }
    }
    Ok(())
}

fn system_function() -> GuardError {
    GuardError::ForbiddenFunction {
        function: "SYSTEM$ functions".into(),
        why: "they can change account or session state (cancel queries, alter \
              pipes, ...); the name is refused in strings and comments too because \
              IDENTIFIER('...') could call one"
            .into(),
    }
}

fn call_out_function(name: &str) -> GuardError {
    GuardError::ForbiddenFunction {
        function: format!("{name}()"),
        why: "it calls out of SQL (JVM methods or HTTP) and can have side effects".into(),
    }
}

fn literal_text(token: &Token) -> &str {
    match token {
        Token::SingleQuotedString(s)
        | Token::DoubleQuotedString(s)
        | Token::TripleSingleQuotedString(s)
        | Token::TripleDoubleQuotedString(s)
        | Token::SingleQuotedByteStringLiteral(s)
        | Token::DoubleQuotedByteStringLiteral(s)
        | Token::TripleSingleQuotedByteStringLiteral(s)
        | Token::TripleDoubleQuotedByteStringLiteral(s)
        | Token::SingleQuotedRawStringLiteral(s)
        | Token::DoubleQuotedRawStringLiteral(s)
        | Token::TripleSingleQuotedRawStringLiteral(s)
        | Token::TripleDoubleQuotedRawStringLiteral(s)
        | Token::NationalStringLiteral(s)
        | Token::EscapedStringLiteral(s)
        | Token::UnicodeStringLiteral(s)
        | Token::HexStringLiteral(s) => s,
        Token::DollarQuotedString(d) => &d.value,
        Token::QuoteDelimitedStringLiteral(q) | Token::NationalQuoteDelimitedStringLiteral(q) => {
            &q.value
        }
        _ => "",
    }
}

/// Role switches as the parser sees them, anywhere in the statement tree.
fn check_role_switch_ast(statement: &Statement) -> Result<(), GuardError> {
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

fn classify(statement: &Statement) -> StatementKind {
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
fn hidden_write(statement: &Statement) -> Option<String> {
    struct Finder;
    impl Visitor for Finder {
        type Break = String;
        fn pre_visit_statement(&mut self, s: &Statement) -> ControlFlow<String> {
            match s {
                Statement::Query(q) if !q.locks.is_empty() => {
                    ControlFlow::Break("SELECT ... FOR UPDATE (it takes row locks)".into())
                }
                Statement::Query(q) => match write_in_set_expr(&q.body) {
                    Some(w) => ControlFlow::Break(w),
                    None => ControlFlow::Continue(()),
                },
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

fn write_in_set_expr(body: &SetExpr) -> Option<String> {
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
fn statement_name(statement: &Statement) -> String {
    let name = match statement {
        Statement::Query(_) => "SELECT",
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

#[cfg(test)]
mod tests {
    use super::*;

    const SF: Platform = Platform::Snowflake;
    const DB: Platform = Platform::Databricks;

    fn ro() -> SqlGuard {
        SqlGuard::new(true, 10_000)
    }
    fn rw() -> SqlGuard {
        SqlGuard::new(false, 10_000)
    }
    fn refused(guard: &SqlGuard, platform: Platform, sql: &str) -> String {
        match guard.check(platform, sql) {
            Ok(kind) => panic!("{sql:?} on {platform} was allowed as {kind:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn reads_pass_on_both_platforms() {
        for p in [SF, DB] {
            assert_eq!(ro().check(p, "SELECT 1").unwrap(), StatementKind::Select);
            assert_eq!(
                ro().check(p, "with x as (select a from t) select * from x;")
                    .unwrap(),
                StatementKind::Select
            );
            assert_eq!(ro().check(p, "SHOW SCHEMAS").unwrap(), StatementKind::Show);
            assert_eq!(ro().check(p, "DESC t").unwrap(), StatementKind::Describe);
            assert_eq!(
                ro().check(p, "EXPLAIN SELECT * FROM t").unwrap(),
                StatementKind::Explain
            );
            assert_eq!(
                ro().check(p, "SELECT 1 ;  -- done\n ; /* trailing */ ")
                    .unwrap(),
                StatementKind::Select
            );
        }
    }

    #[test]
    fn writes_are_named_in_the_refusal() {
        let msg = refused(&ro(), SF, "INSERT INTO t VALUES (1)");
        assert!(
            msg.contains("only read-only statements are allowed"),
            "{msg}"
        );
        assert!(msg.contains("this is an INSERT"), "{msg}");
        assert!(refused(&ro(), DB, "DROP TABLE t").contains("DROP TABLE"));
        assert!(
            refused(&ro(), SF, "CREATE TABLE x AS SELECT 1").contains("CREATE TABLE ... AS SELECT")
        );
    }

    #[test]
    fn write_mode_allows_single_writes_but_not_role_switches() {
        assert_eq!(
            rw().check(SF, "INSERT INTO t VALUES (1)").unwrap(),
            StatementKind::Other("INSERT".into())
        );
        assert!(refused(&rw(), SF, "USE ROLE ACCOUNTADMIN").contains("USE ROLE is never allowed"));
        assert!(refused(&rw(), SF, "use secondary roles all").contains("USE SECONDARY ROLES"));
        assert!(refused(&rw(), DB, "SET ROLE admin").contains("SET ROLE"));
        assert!(
            refused(&rw(), SF, "ALTER USER me SET DEFAULT_ROLE = sysadmin").contains("ALTER USER")
        );
        assert!(refused(&rw(), SF, "EXECUTE IMMEDIATE 'USE ROLE x'").contains("cannot inspect"));
        assert!(
            refused(&rw(), SF, "INSERT INTO t VALUES (1); DELETE FROM t").contains("one statement")
        );
    }

    #[test]
    fn multiple_statements_are_refused() {
        let msg = refused(&ro(), SF, "SELECT 1; DROP TABLE t");
        assert!(msg.contains("only one statement per call"), "{msg}");
        assert!(msg.contains("2 statements"), "{msg}");
        assert!(refused(&ro(), DB, "COMMIT; DROP TABLE t").contains("one statement"));
    }

    #[test]
    fn empty_and_oversized_sql() {
        assert_eq!(ro().check(SF, "  \n"), Err(GuardError::Empty));
        assert_eq!(ro().check(SF, "-- just a comment"), Err(GuardError::Empty));
        assert_eq!(ro().check(SF, " ; ;"), Err(GuardError::Empty));
        let guard = SqlGuard::new(true, 10);
        assert!(refused(&guard, SF, "SELECT 1234567890").contains("limit of 10 bytes"));
    }

    #[test]
    fn invisible_and_lookalike_characters() {
        assert!(refused(&ro(), SF, "SELECT\u{200B} 1").contains("U+200B"));
        assert!(refused(&ro(), SF, "SELECT 'a\u{202E}b'").contains("U+202E"));
        let msg = refused(&ro(), SF, "ＳＥＬＥＣＴ 1");
        assert!(msg.contains("U+FF33"), "{msg}");
        assert!(msg.contains("outside a string literal"), "{msg}");
        // Non-ASCII text inside literals and quoted identifiers is fine.
        assert!(ro().check(SF, "SELECT 'Zoë ✓' AS \"naïve\"").is_ok());
        assert!(
            ro().check(DB, "SELECT `größe` FROM t WHERE c = 'ü'")
                .is_ok()
        );
    }

    #[test]
    fn ambiguous_comments_and_strings() {
        assert!(
            refused(&ro(), SF, "SELECT 1 /* /* */ ; DROP TABLE t; /* */")
                .contains("nested block comments")
        );
        assert!(refused(&ro(), SF, "SELECT 1 # comment").contains("`#` comments"));
        assert!(refused(&ro(), DB, "SELECT $$a$$").contains("dollar-quoted"));
        assert!(ro().check(SF, "SELECT $$a;b$$").is_ok());
        assert!(ro().check(SF, "SELECT 'a\\'; DROP TABLE t; --'").is_ok());
    }

    #[test]
    fn hidden_writes_inside_reads() {
        assert!(refused(&ro(), SF, "SELECT * INTO t2 FROM t").contains("SELECT ... INTO"));
        assert!(
            refused(
                &ro(),
                SF,
                "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d"
            )
            .contains("this is a DELETE")
        );
        assert!(refused(&ro(), DB, "EXPLAIN ANALYZE DELETE FROM t").contains("EXPLAIN of DELETE"));
        assert!(rw().check(SF, "SELECT * INTO t2 FROM t").is_ok());
    }

    #[test]
    fn side_effect_functions() {
        let msg = refused(&ro(), SF, "SELECT SYSTEM$CANCEL_ALL_QUERIES(1)");
        assert!(msg.contains("SYSTEM$"), "{msg}");
        assert!(refused(&ro(), SF, "select \"SYSTEM$ABORT_SESSION\"(1)").contains("SYSTEM$"));
        assert!(
            refused(&ro(), SF, "SELECT IDENTIFIER('system$cancel_query')('x')").contains("SYSTEM$")
        );
        assert!(
            refused(
                &ro(),
                DB,
                "SELECT reflect('java.lang.Runtime', 'getRuntime')"
            )
            .contains("reflect()")
        );
        assert!(
            ro().check(SF, "SELECT * FROM TABLE(RESULT_SCAN(LAST_QUERY_ID()))")
                .is_ok()
        );
        assert!(
            rw().check(SF, "SELECT SYSTEM$CANCEL_ALL_QUERIES(1)")
                .is_ok()
        );
    }

    #[test]
    fn unparseable_sql_fails_closed() {
        let msg = refused(&ro(), SF, "SEL/**/ECT 1");
        assert!(
            msg.contains("could not be parsed as snowflake SQL"),
            "{msg}"
        );
        assert!(refused(&rw(), SF, "SELECT FROM WHERE").contains("could not be parsed"));
        assert!(refused(&ro(), SF, "PUT file:///tmp/x @s").contains("this is a PUT"));
        // SHOW/DESCRIBE forms the parser lacks still pass.
        assert_eq!(
            ro().check(DB, "DESCRIBE TABLE t").unwrap(),
            StatementKind::Describe
        );
        assert_eq!(
            ro().check(DB, "DESCRIBE HISTORY t").unwrap(),
            StatementKind::Describe
        );
    }

    // Tests added for surviving mutants (scripts/mutants.sh).

    #[test]
    fn sql_of_exactly_the_limit_passes_one_byte_more_is_refused() {
        assert_eq!(
            SqlGuard::new(true, 8).check(SF, "SELECT 1"),
            Ok(StatementKind::Select)
        );
        assert_eq!(
            SqlGuard::new(true, 8).check(SF, "SELECT 12"),
            Err(GuardError::TooLong { len: 9, max: 8 })
        );
    }

    #[test]
    fn only_writes_are_not_reads_and_the_mode_is_reported() {
        for p in [SF, DB] {
            for sql in ["SELECT 1", "SHOW SCHEMAS", "DESC t", "EXPLAIN SELECT 1"] {
                assert!(ro().check(p, sql).unwrap().is_read(), "{sql} on {p}");
            }
            let write = rw().check(p, "INSERT INTO t VALUES (1)").unwrap();
            assert!(!write.is_read(), "{write:?} on {p}");
        }
        assert!(ro().read_only());
        assert!(!rw().read_only());
    }

    #[test]
    fn non_ascii_text_in_comments_is_fine_but_not_next_to_them() {
        for p in [SF, DB] {
            for sql in [
                "SELECT 1 -- café ✓\nFROM t",
                "SELECT /* größe */ 1",
                "SELECT 1 /* ü */",
            ] {
                assert_eq!(
                    ro().check(p, sql),
                    Ok(StatementKind::Select),
                    "{sql} on {p}"
                );
            }
            let msg = refused(&ro(), p, "SELECT /* ü */ ü FROM t");
            assert!(
                msg.contains("U+00FC") && msg.contains("character 16"),
                "{msg}"
            );
            // Positions are tracked across lines: literals on later lines are still literals.
            assert_eq!(
                ro().check(p, "SELECT 'a',\n  'é',\n\n 'ü' AS x\nFROM t -- ✓"),
                Ok(StatementKind::Select)
            );
            let msg = refused(&ro(), p, "SELECT 'é',\nü FROM t");
            assert!(
                msg.contains("U+00FC") && msg.contains("character 13"),
                "{msg}"
            );
        }
    }

    #[test]
    fn invisible_characters_are_reported_at_their_position() {
        let msg = refused(&ro(), SF, "SELECT 1\u{200B}");
        assert!(msg.contains("U+200B at character 9"), "{msg}");
    }

    #[test]
    fn every_role_switch_is_found_by_the_naive_scan_inside_strings_and_comments() {
        for p in [SF, DB] {
            for (sql, what) in [
                (
                    "SELECT 'use secondary roles all' AS x",
                    "USE SECONDARY ROLES",
                ),
                ("SELECT 1 -- set role admin", "SET ROLE"),
                (
                    "SELECT 1 /* set session_authorization bob */",
                    "SET SESSION AUTHORIZATION",
                ),
                ("SELECT 'alter user me set x = 1' AS x", "ALTER USER"),
            ] {
                let msg = refused(&rw(), p, sql);
                assert!(
                    msg.contains(what) && msg.contains("never allowed"),
                    "{sql}: {msg}"
                );
            }
        }
    }

    #[test]
    fn an_unparsed_show_or_describe_admits_create_only_right_after_show() {
        for (p, sql) in [
            (SF, "SHOW TABLES CREATE TABLE t"),
            (DB, "DESCRIBE HISTORY t CREATE TABLE u"),
        ] {
            let msg = refused(&ro(), p, sql);
            assert!(
                msg.contains("could not be parsed") || msg.contains("only read-only"),
                "{sql}: {msg}"
            );
        }
    }

    #[test]
    fn the_token_scan_names_dynamic_sql_the_naive_scan_and_parser_cannot_see() {
        // A comment splits the words for the naive scan; the tokens still pair them.
        for sql in [
            "EXECUTE /* c */ IMMEDIATE 'SELECT 1'",
            "SELECT 1; EXECUTE /* c */ IMMEDIATE 'x'",
            "SELECT 1; SELECT 2; ALTER /* c */ USER me SET x = 1",
        ] {
            let msg = refused(&rw(), SF, sql);
            assert!(msg.contains("never allowed"), "{sql}: {msg}");
        }
        // ALTER of anything but a user is an ordinary write.
        assert_eq!(
            rw().check(SF, "ALTER TABLE t ADD COLUMN c INT"),
            Ok(StatementKind::Other("ALTER TABLE".into()))
        );
    }

    #[test]
    fn a_quoted_keyword_is_a_name_not_a_show_or_describe() {
        for p in [SF, DB] {
            for sql in ["\"SHOW\" TABLES", "\"DESC\" t"] {
                let msg = refused(&ro(), p, sql);
                assert!(msg.contains("could not be parsed"), "{sql}: {msg}");
            }
        }
    }

    #[test]
    fn words_at_the_very_end_of_the_text_are_scanned_too() {
        for p in [SF, DB] {
            let msg = refused(&rw(), p, "SELECT 1 -- use role");
            assert!(msg.contains("USE ROLE"), "{msg}");
            let msg = refused(&ro(), p, "SELECT 1 -- system$cancel_all_queries");
            assert!(msg.contains("SYSTEM$"), "{msg}");
        }
    }

    #[test]
    fn set_session_or_local_alone_is_not_a_role_switch() {
        for p in [SF, DB] {
            if let Err(e) = rw().check(p, "SET LOCAL x = 1") {
                assert!(!matches!(e, GuardError::RoleSwitch { .. }), "{e}");
            }
        }
    }

    #[test]
    fn commas_and_parentheses_only_inside_the_one_list_of_an_unparsed_show() {
        for (p, sql) in [
            (DB, "DESCRIBE HISTORY a, b"),
            (SF, "DESC FUNCTION f)"),
            (SF, "DESC FUNCTION f(NUMBER))"),
        ] {
            let msg = refused(&ro(), p, sql);
            assert!(msg.contains("could not be parsed"), "{sql}: {msg}");
        }
        assert_eq!(
            ro().check(SF, "DESC FUNCTION f(NUMBER, VARCHAR)"),
            Ok(StatementKind::Describe)
        );
    }

    #[test]
    fn the_flow_operator_rule_is_snowflakes_only() {
        let msg = refused(&ro(), SF, "SELECT a ->> 'b' FROM t");
        assert!(msg.contains("flow operator"), "{msg}");
        match ro().check(DB, "SELECT a ->> 'b' FROM t") {
            Ok(kind) => assert_eq!(kind, StatementKind::Select),
            Err(e) => assert!(!e.to_string().contains("flow operator"), "{e}"),
        }
    }
}

#[cfg(test)]
mod lexer_disagreement_tests {
    //! The security audit's bypasses (F2, F3, F8) and variations: every
    //! construct where sqlparser's lexer and a platform's may disagree.
    use super::*;

    const SF: Platform = Platform::Snowflake;
    const DB: Platform = Platform::Databricks;

    fn verdict(read_only: bool, platform: Platform, sql: &str) -> Result<StatementKind, String> {
        SqlGuard::new(read_only, 64 * 1024)
            .check(platform, sql)
            .map_err(|e| e.to_string())
    }

    fn assert_refused(read_only: bool, platform: Platform, sql: &str, reason: &str) {
        match verdict(read_only, platform, sql) {
            Ok(kind) => {
                panic!("{sql:?} on {platform} (read_only={read_only}) was allowed as {kind:?}")
            }
            Err(e) => assert!(e.contains(reason), "{sql:?}: {e} (expected {reason:?})"),
        }
    }

    #[test]
    fn snowflake_flow_operator_is_refused_everywhere_outside_strings() {
        for sql in [
            "SHOW TABLES ->> DROP TABLE SALES.PUBLIC.ORDERS",
            "SHOW TABLES ->> INSERT INTO SALES.PUBLIC.ORDERS SELECT * FROM SALES.PUBLIC.ORDERS",
            "DESC TABLE SALES.PUBLIC.ORDERS ->> DELETE FROM SALES.PUBLIC.ORDERS",
            "SELECT 1 ->> DELETE FROM SALES.PUBLIC.ORDERS",
            "SELECT a ->> DELETE FROM t",
            "SELECT 1->>SELECT 2",
            "SELECT 1 /* c */ ->> /* c */ DELETE FROM t",
            "SELECT 1 -- c\n->> DELETE FROM t",
            "SELECT 1\n\t->>\n\tDELETE FROM t",
            // sqlparser splits `<->>` and `=->>` as `<`/`=` then `->>`, as Snowflake would.
            "SELECT 1 <->> DELETE FROM t",
            "SELECT 1 =->> DELETE FROM t",
        ] {
            assert_refused(true, SF, sql, "flow operator");
            assert_refused(false, SF, sql, "flow operator");
        }
        // Inside a string or a quoted name it is text, not an operator.
        assert!(verdict(true, SF, "SELECT '->>' AS arrow, \"a->>b\" FROM t").is_ok());
        assert!(verdict(true, SF, "SELECT $$ ->> $$ AS arrow").is_ok());
    }

    #[test]
    fn bare_carriage_returns_are_refused_in_every_position() {
        for p in [SF, DB] {
            for sql in [
                "WITH a AS (SELECT 1 AS x) --\rINSERT OVERWRITE TABLE main.default.t\nSELECT * FROM a",
                "SELECT 1 -- c\r; DROP TABLE t",
                "SELECT 1 --\r->> USE ROLE ACCOUNTADMIN",
                "SELECT 1 --\r; EXECUTE IMMEDIATE 'SET ROLE admin'",
                "SELECT 1 --\r, http_request('c','GET','/')",
                "SELECT 'a\rb'",
                "SELECT 1 /* \r */",
                "SELECT\r1",
                "SELECT 1\r",
                "SELECT 1\r\r\n",
            ] {
                assert_refused(true, p, sql, "carriage return");
                assert_refused(false, p, sql, "carriage return");
            }
            // CRLF line breaks are read the same way by every lexer.
            assert_eq!(
                verdict(true, p, "SELECT 1 -- c\r\nFROM t\r\n").unwrap(),
                StatementKind::Select
            );
        }
    }

    #[test]
    fn backslash_continued_comments_are_refused() {
        for p in [SF, DB] {
            assert_refused(
                true,
                p,
                "SELECT 1 AS x -- note \\\n, 'a' FROM t",
                "end with a backslash",
            );
            assert_refused(true, p, "SELECT 1 --\\\r\nFROM t", "end with a backslash");
            // A backslash elsewhere in a comment is harmless.
            assert!(verdict(true, p, "SELECT 1 -- a \\ b\nFROM t").is_ok());
        }
    }

    #[test]
    fn raw_strings_are_refused_on_databricks() {
        for sql in [
            "SELECT r'a' AS x",
            "SELECT R\"a\" AS x",
            "SELECT r'\\', 1 AS y'",
            "WITH a AS (SELECT r'\\' AS x) INSERT INTO t SELECT * FROM a --' AS x) SELECT * FROM a",
        ] {
            let e = verdict(true, DB, sql).expect_err(sql);
            assert!(
                e.contains("raw string") || e.contains("could not be parsed"),
                "{sql:?}: {e}"
            );
        }
        assert!(
            verdict(true, DB, "SELECT r'a' AS x")
                .unwrap_err()
                .contains("raw string")
        );
        assert!(verdict(true, DB, "SELECT r, 'a' FROM t").is_ok());
    }

    #[test]
    fn tagged_dollar_quotes_are_refused_on_snowflake() {
        assert_refused(
            false,
            SF,
            "SELECT $a$ ->> USE ROLE ACCOUNTADMIN ->> SELECT $a$",
            "tagged dollar-quoted",
        );
        assert_refused(true, SF, "SELECT $x$ text $x$", "tagged dollar-quoted");
        assert_refused(true, DB, "SELECT $x$ text $x$", "dollar-quoted");
        assert!(verdict(true, SF, "SELECT $$ plain $$").is_ok());
    }

    #[test]
    fn the_naive_scan_finds_role_switches_the_tokens_miss() {
        // Hidden in a string or comment by a lexer disagreement or not, the words are refused.
        for p in [SF, DB] {
            assert_refused(false, p, "SELECT 'x' -- use role accountadmin", "USE ROLE");
            assert_refused(
                false,
                p,
                "SELECT '; EXECUTE IMMEDIATE ''x'''",
                "cannot inspect",
            );
            assert_refused(
                false,
                p,
                "SELECT 1 /* set session authorization */",
                "SET SESSION",
            );
            assert_refused(false, p, "SELECT 'alter user me'", "ALTER USER");
            assert_refused(
                true,
                p,
                "SELECT 1 -- system$cancel_all_queries(1)",
                "SYSTEM$",
            );
            assert_refused(true, p, "SELECT 1 /* http_request ( */", "http_request()");
            assert_refused(true, p, "SELECT '`reflect`(' AS x", "reflect()");
        }
        // Words that only look alike pass.
        assert!(verdict(true, SF, "SELECT user_role, used FROM roles").is_ok());
        assert!(verdict(true, DB, "SELECT reflection FROM t").is_ok());
        assert!(verdict(false, SF, "SELECT 1 -- set the role column\nFROM t").is_ok());
    }

    #[test]
    fn unparsed_show_and_describe_only_in_their_exact_shape() {
        for (p, sql) in [
            (DB, "DESCRIBE HISTORY main.sales.orders"),
            (DB, "DESCRIBE TABLE EXTENDED orders"),
            (SF, "SHOW GRANTS TO USER alice"),
            (
                SF,
                "SHOW TABLES LIKE 'ORD%' IN SCHEMA SALES.PUBLIC LIMIT 10",
            ),
            (SF, "DESC FUNCTION my_fn(NUMBER, VARCHAR)"),
            (SF, "SHOW USER PROGRAMMATIC ACCESS TOKENS"),
            // sqlparser has no grammar for these two: the exact-shape rule decides.
            (DB, "SHOW CREATE TABLE t AS SERDE"),
            (SF, "DESC TABLE SALES.PUBLIC.ORDERS TYPE = STAGE"),
        ] {
            let kind = verdict(true, p, sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
            assert!(kind.is_read(), "{sql}");
        }
        for (p, sql) in [
            (SF, "SHOW TABLES DROP TABLE t"),
            (DB, "DESCRIBE HISTORY t DELETE FROM t"),
            (SF, "SHOW TABLES IN (SELECT 1)"),
            (DB, "DESCRIBE QUERY INSERT INTO t VALUES (1)"),
            (SF, "DESC FUNCTION f(NUMBER) (VARCHAR)"),
            (SF, "SHOW TABLES + 1"),
        ] {
            let e = verdict(true, p, sql).expect_err(sql);
            assert!(
                e.contains("could not be parsed") || e.contains("only read-only"),
                "{sql}: {e}"
            );
        }
    }
}
