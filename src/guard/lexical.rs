//! The guard's character and lexeme checks (steps 2–3 of [`super`]'s
//! module doc): invisible and control characters, bare carriage returns,
//! non-ASCII outside literals, and every lexeme where sqlparser's lexer and a
//! platform's may disagree (nested comments, `#` comments, dollar quotes, raw
//! strings, Snowflake's `->>`).

use super::GuardError;
use crate::result::Platform;
use sqlparser::tokenizer::{Token, TokenWithSpan, Whitespace};

/// Characters that are invisible or change how text is displayed (Unicode
/// `Cc` except tab/newline/carriage return, `Cf`, `Zl`, `Zp`).
pub(super) fn is_invisible(c: char) -> bool {
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

pub(super) fn code_point(c: char) -> String {
    format!("U+{:04X}", c as u32)
}

/// Refuse a carriage return that is not followed by a line feed (see the module doc).
pub(super) fn check_bare_carriage_return(sql: &str) -> Result<(), GuardError> {
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

pub(super) fn check_invisible_characters(sql: &str) -> Result<(), GuardError> {
    match sql.chars().enumerate().find(|(_, c)| is_invisible(*c)) {
        Some((i, c)) => Err(GuardError::InvisibleCharacter {
            code: code_point(c),
            position: i + 1,
        }),
        None => Ok(()),
    }
}

/// Tokens whose text may hold any (visible) character.
pub(super) fn is_free_text(token: &Token) -> bool {
    match token {
        Token::Word(w) => w.quote_style.is_some(),
        Token::Whitespace(w) => matches!(
            w,
            Whitespace::SingleLineComment { .. } | Whitespace::MultiLineComment(_)
        ),
        _ => is_string_literal(token),
    }
}

pub(super) fn is_string_literal(token: &Token) -> bool {
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
pub(super) fn check_non_ascii(sql: &str, tokens: &[TokenWithSpan]) -> Result<(), GuardError> {
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
pub(super) fn check_lexemes(
    platform: Platform,
    tokens: &[TokenWithSpan],
) -> Result<(), GuardError> {
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
pub(super) fn check_raw_string_prefix(tokens: &[TokenWithSpan]) -> Result<(), GuardError> {
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

pub(super) fn flow_operator() -> GuardError {
    GuardError::AmbiguousLexeme(
        "the flow operator `->>` is not allowed: on Snowflake it chains several statements \
         into one; send each statement as its own call"
            .into(),
    )
}

/// The text inside a string literal token (empty for other tokens).
pub(super) fn literal_text(token: &Token) -> &str {
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
