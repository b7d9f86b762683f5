//! The guard's word checks: role/user switches and dynamic SQL (refused in
//! every mode), side-effect functions (refused when read-only) and the
//! one-statement rule. Each rule runs twice: over sqlparser's tokens and over
//! a deliberately naive split of the raw text, so a lexer disagreement
//! cannot hide a word.

use super::GuardError;
use super::lexical::{is_string_literal, literal_text};
use crate::result::Platform;
use sqlparser::tokenizer::Token;

/// A deliberately naive view of the raw text: the upper-cased runs of
/// identifier characters (`A-Z`, `0-9`, `_`, `$`), with the byte offset
/// just past each, ignoring quotes and comments. A lexer disagreement can
/// hide a word from sqlparser's tokens, never from this.
pub(super) fn naive_words(sql: &str) -> Vec<(String, usize)> {
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
pub(super) fn check_role_switch_words_naive(words: &[(String, usize)]) -> Result<(), GuardError> {
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
pub(super) fn check_side_effect_functions_naive(
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

pub(super) fn unquoted_word(token: &Token) -> Option<&str> {
    match token {
        Token::Word(w) if w.quote_style.is_none() => Some(&w.value),
        _ => None,
    }
}

pub(super) fn word_is(token: Option<&&Token>, expected: &[&str]) -> bool {
    token
        .and_then(|t| unquoted_word(t))
        .is_some_and(|w| expected.iter().any(|e| w.eq_ignore_ascii_case(e)))
}

/// Role/user switches and dynamic SQL, found by word sequence anywhere in the
/// text (not only at the start), so a parser that reads them oddly cannot
/// smuggle them through.
pub(super) fn check_role_switch_words(significant: &[&Token]) -> Result<(), GuardError> {
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

pub(super) fn role_switch(what: &str) -> GuardError {
    GuardError::RoleSwitch { what: what.into() }
}

/// A `;` may only be followed by more `;` (and whitespace/comments, already filtered).
pub(super) fn check_single_statement(significant: &[&Token]) -> Result<(), GuardError> {
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
pub(super) fn check_side_effect_functions(
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

pub(super) fn system_function() -> GuardError {
    GuardError::ForbiddenFunction {
        function: "SYSTEM$ functions".into(),
        why: "they can change account or session state (cancel queries, alter \
              pipes, ...); the name is refused in strings and comments too because \
              IDENTIFIER('...') could call one"
            .into(),
    }
}

pub(super) fn call_out_function(name: &str) -> GuardError {
    GuardError::ForbiddenFunction {
        function: format!("{name}()"),
        why: "it calls out of SQL (JVM methods or HTTP) and can have side effects".into(),
    }
}
