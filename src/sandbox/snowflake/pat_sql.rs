//! Parser for the Snowflake statements that manage programmatic access tokens.
//!
//! These statements are not standard SQL, so a general parser does not know
//! them; this module has its own small tokenizer (identifiers, quoted
//! identifiers, string literals with `''` and backslash escapes, `$$...$$`
//! strings, numbers, comments) and recognises exactly:
//!
//! ```text
//! ALTER USER [IF EXISTS] [<user>] ADD {PROGRAMMATIC ACCESS TOKEN | PAT} [IF NOT EXISTS] <name>
//!     [ROLE_RESTRICTION = '<role>'] [DAYS_TO_EXPIRY = <n> | MINS_TO_EXPIRY = <n>]
//!     [MINS_TO_BYPASS_NETWORK_POLICY_REQUIREMENT = <n>] [COMMENT = '<text>']      (any order)
//! ALTER USER [IF EXISTS] [<user>] REMOVE {PROGRAMMATIC ACCESS TOKEN | PAT} [IF EXISTS] <name>
//! SHOW USER {PROGRAMMATIC ACCESS TOKENS | PATS} [FOR USER <user>]
//! ```
//!
//! [`parse`] answers `Ok(None)` for any other statement, and a
//! [`PatSqlError`] with Snowflake's syntax-error wording when a statement is
//! recognisably one of these but malformed. Unquoted identifiers are
//! upper-cased as Snowflake does; quoted ones keep their case.

/// A recognised token-management statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatStatement {
    Add(AddPat),
    Remove {
        user: Option<String>,
        if_exists: bool,
        name: String,
    },
    Show {
        user: Option<String>,
    },
}

/// `ALTER USER ... ADD PROGRAMMATIC ACCESS TOKEN ...`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AddPat {
    pub user: Option<String>,
    pub if_not_exists: bool,
    pub name: String,
    pub role_restriction: Option<String>,
    pub expiry: Option<Expiry>,
    pub mins_to_bypass_network_policy: Option<u64>,
    pub comment: Option<String>,
}

/// How long a new token lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    Days(u64),
    Minutes(u64),
}

/// A malformed token-management statement, worded like Snowflake's compiler.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct PatSqlError {
    pub message: String,
}

impl PatSqlError {
    fn unexpected(token: Option<&Token>) -> Self {
        let message = match token {
            Some(t) => format!(
                "SQL compilation error:\nsyntax error line 1 at position {} unexpected '{}'.",
                t.position, t.text
            ),
            None => {
                "SQL compilation error:\nsyntax error: unexpected end of statement.".to_string()
            }
        };
        Self { message }
    }

    fn invalid(message: impl Into<String>) -> Self {
        Self {
            message: format!("SQL compilation error:\n{}", message.into()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    /// An identifier or keyword; `quoted` when written in double quotes.
    Word {
        quoted: bool,
    },
    Str,
    Number,
    Symbol,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Token {
    kind: Kind,
    /// Identifier value (quotes removed), string value (unescaped), number or symbol text.
    text: String,
    /// 0-based character position in the statement.
    position: usize,
}

impl Token {
    fn is_keyword(&self, keyword: &str) -> bool {
        matches!(self.kind, Kind::Word { quoted: false }) && self.text.eq_ignore_ascii_case(keyword)
    }

    fn is_symbol(&self, symbol: &str) -> bool {
        self.kind == Kind::Symbol && self.text == symbol
    }
}

/// Split a statement into tokens; `None` when it cannot be tokenised (unterminated literal).
fn tokenize(sql: &str) -> Option<Vec<Token>> {
    let chars: Vec<char> = sql.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        if c.is_whitespace() {
            i += 1;
        } else if c == '-' && chars.get(i + 1) == Some(&'-')
            || c == '/' && chars.get(i + 1) == Some(&'/')
        {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && chars.get(i + 1) == Some(&'*') {
            i += 2;
            loop {
                if i + 1 >= chars.len() {
                    return None;
                }
                if chars[i] == '*' && chars[i + 1] == '/' {
                    i += 2;
                    break;
                }
                i += 1;
            }
        } else if c == '\'' {
            let mut text = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return None,
                    Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                        text.push('\'');
                        i += 2;
                    }
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some('\\') => {
                        let escaped = *chars.get(i + 1)?;
                        text.push(match escaped {
                            'n' => '\n',
                            't' => '\t',
                            'r' => '\r',
                            '0' => '\0',
                            other => other,
                        });
                        i += 2;
                    }
                    Some(other) => {
                        text.push(*other);
                        i += 1;
                    }
                }
            }
            tokens.push(Token {
                kind: Kind::Str,
                text,
                position: start,
            });
        } else if c == '$' && chars.get(i + 1) == Some(&'$') {
            i += 2;
            let mut text = String::new();
            loop {
                if i + 1 >= chars.len() {
                    return None;
                }
                if chars[i] == '$' && chars[i + 1] == '$' {
                    i += 2;
                    break;
                }
                text.push(chars[i]);
                i += 1;
            }
            tokens.push(Token {
                kind: Kind::Str,
                text,
                position: start,
            });
        } else if c == '"' {
            let mut text = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return None,
                    Some('"') if chars.get(i + 1) == Some(&'"') => {
                        text.push('"');
                        i += 2;
                    }
                    Some('"') => {
                        i += 1;
                        break;
                    }
                    Some(other) => {
                        text.push(*other);
                        i += 1;
                    }
                }
            }
            tokens.push(Token {
                kind: Kind::Word { quoted: true },
                text,
                position: start,
            });
        } else if c.is_ascii_digit() {
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            tokens.push(Token {
                kind: Kind::Number,
                text: chars[start..i].iter().collect(),
                position: start,
            });
        } else if c.is_alphabetic() || c == '_' {
            while i < chars.len()
                && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '$')
            {
                i += 1;
            }
            tokens.push(Token {
                kind: Kind::Word { quoted: false },
                text: chars[start..i].iter().collect(),
                position: start,
            });
        } else {
            i += 1;
            tokens.push(Token {
                kind: Kind::Symbol,
                text: c.to_string(),
                position: start,
            });
        }
    }
    Some(tokens)
}

/// Recognise a token-management statement. `Ok(None)`: some other statement.
pub fn parse(sql: &str) -> Result<Option<PatStatement>, PatSqlError> {
    let Some(mut tokens) = tokenize(sql) else {
        return Ok(None);
    };
    while tokens.last().is_some_and(|t| t.is_symbol(";")) {
        tokens.pop();
    }
    let mut p = Parser { tokens, at: 0 };
    if p.peek_keyword("ALTER") && p.peek_keyword_at(1, "USER") {
        p.at = 2;
        p.parse_alter()
    } else if p.peek_keyword("SHOW") && p.peek_keyword_at(1, "USER") {
        p.at = 2;
        p.parse_show()
    } else {
        Ok(None)
    }
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn peek_keyword(&self, keyword: &str) -> bool {
        self.peek_keyword_at(0, keyword)
    }

    fn peek_keyword_at(&self, offset: usize, keyword: &str) -> bool {
        self.tokens
            .get(self.at + offset)
            .is_some_and(|t| t.is_keyword(keyword))
    }

    fn eat_keyword(&mut self, keyword: &str) -> bool {
        if self.peek_keyword(keyword) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn expect_keyword(&mut self, keyword: &str) -> Result<(), PatSqlError> {
        if self.eat_keyword(keyword) {
            Ok(())
        } else {
            Err(PatSqlError::unexpected(self.peek()))
        }
    }

    fn expect_symbol(&mut self, symbol: &str) -> Result<(), PatSqlError> {
        match self.peek() {
            Some(t) if t.is_symbol(symbol) => {
                self.at += 1;
                Ok(())
            }
            other => Err(PatSqlError::unexpected(other)),
        }
    }

    /// An identifier: unquoted upper-cased, quoted kept as written.
    fn expect_identifier(&mut self) -> Result<String, PatSqlError> {
        match self.peek() {
            Some(Token {
                kind: Kind::Word { quoted },
                text,
                ..
            }) => {
                let name = if *quoted {
                    text.clone()
                } else {
                    text.to_ascii_uppercase()
                };
                self.at += 1;
                Ok(name)
            }
            other => Err(PatSqlError::unexpected(other)),
        }
    }

    fn expect_string(&mut self) -> Result<String, PatSqlError> {
        match self.peek() {
            Some(Token {
                kind: Kind::Str,
                text,
                ..
            }) => {
                let value = text.clone();
                self.at += 1;
                Ok(value)
            }
            other => Err(PatSqlError::unexpected(other)),
        }
    }

    fn expect_number(&mut self) -> Result<u64, PatSqlError> {
        match self.peek() {
            Some(
                t @ Token {
                    kind: Kind::Number, ..
                },
            ) => {
                let value = t.text.parse().map_err(|_| {
                    PatSqlError::invalid(format!("number '{}' is out of range.", t.text))
                })?;
                self.at += 1;
                Ok(value)
            }
            other => Err(PatSqlError::unexpected(other)),
        }
    }

    fn expect_end(&self) -> Result<(), PatSqlError> {
        match self.peek() {
            None => Ok(()),
            other => Err(PatSqlError::unexpected(other)),
        }
    }

    /// `{PROGRAMMATIC ACCESS TOKEN | PAT}` (or the plural forms for SHOW).
    fn eat_pat_keyword(&mut self, plural: bool) -> Result<bool, PatSqlError> {
        let (short, last) = if plural {
            ("PATS", "TOKENS")
        } else {
            ("PAT", "TOKEN")
        };
        if self.eat_keyword(short) {
            return Ok(true);
        }
        if self.eat_keyword("PROGRAMMATIC") {
            self.expect_keyword("ACCESS")?;
            self.expect_keyword(last)?;
            return Ok(true);
        }
        Ok(false)
    }

    fn parse_alter(&mut self) -> Result<Option<PatStatement>, PatSqlError> {
        let start = self.at;
        // ALTER USER [IF EXISTS] [<user>] {ADD|REMOVE} {PAT|PROGRAMMATIC ACCESS TOKEN}
        if self.peek_keyword("IF") && self.peek_keyword_at(1, "EXISTS") {
            self.at += 2;
        }
        let mut user = None;
        let is_action = |p: &Parser| {
            (p.peek_keyword("ADD") || p.peek_keyword("REMOVE"))
                && (p.peek_keyword_at(1, "PAT") || p.peek_keyword_at(1, "PROGRAMMATIC"))
        };
        if !is_action(self) {
            if matches!(
                self.peek(),
                Some(Token {
                    kind: Kind::Word { .. },
                    ..
                })
            ) {
                user = Some(self.expect_identifier()?);
            }
            if !is_action(self) {
                // Some other ALTER USER statement: not ours.
                self.at = start;
                return Ok(None);
            }
        }
        if self.eat_keyword("ADD") {
            self.eat_pat_keyword(false)?;
            let mut add = AddPat {
                user,
                ..AddPat::default()
            };
            if self.peek_keyword("IF") {
                self.at += 1;
                self.expect_keyword("NOT")?;
                self.expect_keyword("EXISTS")?;
                add.if_not_exists = true;
            }
            add.name = self.expect_identifier()?;
            self.parse_add_properties(&mut add)?;
            Ok(Some(PatStatement::Add(add)))
        } else {
            self.expect_keyword("REMOVE")?;
            self.eat_pat_keyword(false)?;
            let mut if_exists = false;
            if self.peek_keyword("IF") {
                self.at += 1;
                self.expect_keyword("EXISTS")?;
                if_exists = true;
            }
            let name = self.expect_identifier()?;
            self.expect_end()?;
            Ok(Some(PatStatement::Remove {
                user,
                if_exists,
                name,
            }))
        }
    }

    fn parse_add_properties(&mut self, add: &mut AddPat) -> Result<(), PatSqlError> {
        let mut seen: Vec<String> = Vec::new();
        while let Some(token) = self.peek().cloned() {
            let key = match &token.kind {
                Kind::Word { quoted: false } => token.text.to_ascii_uppercase(),
                _ => return Err(PatSqlError::unexpected(Some(&token))),
            };
            if seen.contains(&key) {
                return Err(PatSqlError::invalid(format!(
                    "duplicate property '{key}' at position {}.",
                    token.position
                )));
            }
            self.at += 1;
            self.expect_symbol("=")?;
            match key.as_str() {
                "ROLE_RESTRICTION" => add.role_restriction = Some(self.expect_string()?),
                "COMMENT" => add.comment = Some(self.expect_string()?),
                "DAYS_TO_EXPIRY" | "MINS_TO_EXPIRY" => {
                    if add.expiry.is_some() {
                        return Err(PatSqlError::invalid(
                            "DAYS_TO_EXPIRY and MINS_TO_EXPIRY cannot both be set.",
                        ));
                    }
                    let n = self.expect_number()?;
                    if n == 0 {
                        return Err(PatSqlError::invalid(format!(
                            "invalid value [0] for parameter '{key}': it must be at least 1."
                        )));
                    }
                    if key == "DAYS_TO_EXPIRY" && n > 365 {
                        return Err(PatSqlError::invalid(format!(
                            "invalid value [{n}] for parameter 'DAYS_TO_EXPIRY': it must be between 1 and 365."
                        )));
                    }
                    add.expiry = Some(if key == "DAYS_TO_EXPIRY" {
                        Expiry::Days(n)
                    } else {
                        Expiry::Minutes(n)
                    });
                }
                "MINS_TO_BYPASS_NETWORK_POLICY_REQUIREMENT" => {
                    add.mins_to_bypass_network_policy = Some(self.expect_number()?)
                }
                _ => {
                    return Err(PatSqlError::invalid(format!(
                        "invalid property '{key}' for 'PROGRAMMATIC ACCESS TOKEN'."
                    )));
                }
            }
            seen.push(key);
        }
        Ok(())
    }

    fn parse_show(&mut self) -> Result<Option<PatStatement>, PatSqlError> {
        let start = self.at;
        if !self.eat_pat_keyword(true)? {
            self.at = start;
            return Ok(None);
        }
        let mut user = None;
        if self.eat_keyword("FOR") {
            self.expect_keyword("USER")?;
            user = Some(self.expect_identifier()?);
        }
        self.expect_end()?;
        Ok(Some(PatStatement::Show { user }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(sql: &str) -> AddPat {
        match parse(sql) {
            Ok(Some(PatStatement::Add(a))) => a,
            other => panic!("{sql}: {other:?}"),
        }
    }

    #[test]
    fn parses_the_statement_the_client_sends() {
        let a = add(
            "ALTER USER ADD PROGRAMMATIC ACCESS TOKEN obo_alice_1 ROLE_RESTRICTION = 'IMMUTA_OBO_1_AB' \
             MINS_TO_EXPIRY = 60 COMMENT = 'OBO alice@example.com'",
        );
        assert_eq!(a.user, None);
        assert_eq!(a.name, "OBO_ALICE_1");
        assert_eq!(a.role_restriction.as_deref(), Some("IMMUTA_OBO_1_AB"));
        assert_eq!(a.expiry, Some(Expiry::Minutes(60)));
        assert_eq!(a.comment.as_deref(), Some("OBO alice@example.com"));
        assert!(!a.if_not_exists);
    }

    #[test]
    fn accepts_pat_short_form_user_name_if_not_exists_and_any_property_order() {
        let a = add(
            "alter user if exists immuta_agent add pat if not exists \"MixedCase\" \
             comment='it''s \\'ok\\'' days_to_expiry=3 role_restriction='R1';",
        );
        assert_eq!(a.user.as_deref(), Some("IMMUTA_AGENT"));
        assert!(a.if_not_exists);
        assert_eq!(a.name, "MixedCase");
        assert_eq!(a.comment.as_deref(), Some("it's 'ok'"));
        assert_eq!(a.expiry, Some(Expiry::Days(3)));
        assert_eq!(a.role_restriction.as_deref(), Some("R1"));
    }

    #[test]
    fn parses_remove_and_show() {
        assert_eq!(
            parse("ALTER USER REMOVE PAT t1").unwrap(),
            Some(PatStatement::Remove {
                user: None,
                if_exists: false,
                name: "T1".into()
            })
        );
        assert_eq!(
            parse("ALTER USER \"agent\" REMOVE PROGRAMMATIC ACCESS TOKEN IF EXISTS t1").unwrap(),
            Some(PatStatement::Remove {
                user: Some("agent".into()),
                if_exists: true,
                name: "T1".into()
            })
        );
        assert_eq!(
            parse("show user programmatic access tokens").unwrap(),
            Some(PatStatement::Show { user: None })
        );
        assert_eq!(
            parse("SHOW USER PATS FOR USER immuta_agent").unwrap(),
            Some(PatStatement::Show {
                user: Some("IMMUTA_AGENT".into())
            })
        );
    }

    #[test]
    fn other_statements_are_not_ours() {
        for sql in [
            "SELECT 1",
            "ALTER USER bob SET DEFAULT_ROLE = R",
            "SHOW TABLES",
            "SHOW USERS",
            "select 'unterminated",
        ] {
            assert_eq!(parse(sql).unwrap(), None, "{sql}");
        }
    }

    #[test]
    fn malformed_token_statements_are_syntax_errors() {
        let err = parse("ALTER USER ADD PAT t1 ROLE_RESTRICTION 'R'").unwrap_err();
        assert!(
            err.message.contains("unexpected ''R''") || err.message.contains("unexpected 'R'"),
            "{err}"
        );
        assert!(err.message.starts_with("SQL compilation error:"));
        let err = parse("ALTER USER ADD PAT t1 COLOR = 'red'").unwrap_err();
        assert!(err.message.contains("invalid property 'COLOR'"), "{err}");
        let err = parse("ALTER USER ADD PAT t1 MINS_TO_EXPIRY = 5 DAYS_TO_EXPIRY = 1").unwrap_err();
        assert!(err.message.contains("cannot both be set"), "{err}");
        let err = parse("ALTER USER ADD PAT t1 MINS_TO_EXPIRY = 0").unwrap_err();
        assert!(err.message.contains("at least 1"), "{err}");
        let err = parse("ALTER USER REMOVE PAT t1 extra").unwrap_err();
        assert!(
            err.message.contains("unexpected 'EXTRA'")
                || err.message.contains("unexpected 'extra'"),
            "{err}"
        );
    }
}
