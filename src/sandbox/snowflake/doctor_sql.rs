//! The statements `immuta-mcp check` sends under the agent's key-pair JWT to
//! see the Immuta guide's prerequisites, and the emulator's answers.
//!
//! ```text
//! DESC[RIBE] USER <name>                              property | value | default | description
//! SHOW PARAMETERS LIKE '<pattern>' IN USER <name>     key | value | default | level | description | type
//! SHOW GRANTS ON USER <name>                          created_on | privilege | granted_on | name | granted_to | grantee_name | grant_option | granted_by
//! SHOW GRANTS TO ROLE <name>                          (same columns)
//! ```
//!
//! Column sets follow Snowflake's reference pages (DESCRIBE USER, SHOW
//! PARAMETERS, SHOW GRANTS, with the 2025_01 bundle's columns). `DESC USER`
//! shows unset values as the text `null`, as Snowsight and the SQL API do. The
//! agent may describe only itself; another user is "insufficient privileges".

use crate::sandbox::prerequisites::{AgentPrerequisites, OTHER_KEY_FINGERPRINT, RegisteredKey};

/// A recognised statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DoctorStatement {
    DescUser(String),
    ShowUserParameters { pattern: String, user: String },
    ShowGrantsOnUser(String),
    ShowGrantsToRole(String),
}

/// Split on whitespace, keeping `"quoted identifiers"` and `'strings'` whole.
fn words(sql: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut chars = sql.trim().trim_end_matches(';').chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '"' || c == '\'' {
            chars.next();
            let mut text = String::from(c);
            loop {
                match chars.next() {
                    None => return None,
                    Some(q) if q == c && chars.peek() == Some(&c) => {
                        chars.next();
                        text.push(c);
                    }
                    Some(q) if q == c => break,
                    Some(other) => text.push(other),
                }
            }
            out.push(text);
        } else {
            let mut text = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                text.push(c);
                chars.next();
            }
            out.push(text);
        }
    }
    Some(out)
}

/// An identifier as Snowflake resolves it: quoted keeps case, bare is upper-cased.
fn ident(word: &str) -> String {
    match word.strip_prefix('"') {
        Some(quoted) => quoted.to_string(),
        None => word.to_ascii_uppercase(),
    }
}

/// `None` for any other statement.
pub fn parse(sql: &str) -> Option<DoctorStatement> {
    let w = words(sql)?;
    let kw = |i: usize, k: &str| w.get(i).is_some_and(|x| x.eq_ignore_ascii_case(k));
    match w.len() {
        3 if (kw(0, "DESC") || kw(0, "DESCRIBE")) && kw(1, "USER") => {
            Some(DoctorStatement::DescUser(ident(&w[2])))
        }
        5 if kw(0, "SHOW") && kw(1, "GRANTS") && kw(2, "ON") && kw(3, "USER") => {
            Some(DoctorStatement::ShowGrantsOnUser(ident(&w[4])))
        }
        5 if kw(0, "SHOW") && kw(1, "GRANTS") && kw(2, "TO") && kw(3, "ROLE") => {
            Some(DoctorStatement::ShowGrantsToRole(ident(&w[4])))
        }
        7 if kw(0, "SHOW")
            && kw(1, "PARAMETERS")
            && kw(2, "LIKE")
            && w[3].starts_with('\'')
            && kw(4, "IN")
            && kw(5, "USER") =>
        {
            Some(DoctorStatement::ShowUserParameters {
                pattern: w[3][1..].to_string(),
                user: ident(&w[6]),
            })
        }
        _ => None,
    }
}

/// A `LIKE` pattern match (`%`, `_`), case-insensitive as SHOW's LIKE is.
fn like(pattern: &str, text: &str) -> bool {
    fn go(p: &[char], t: &[char]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some(('%', rest)) => (0..=t.len()).any(|i| go(rest, &t[i..])),
            Some(('_', rest)) => !t.is_empty() && go(rest, &t[1..]),
            Some((c, rest)) => {
                t.first().is_some_and(|x| x.eq_ignore_ascii_case(c)) && go(rest, &t[1..])
            }
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    go(&p, &t)
}

/// What the agent's account looks like, for the answers.
pub struct AgentAccount<'a> {
    pub user: &'a str,
    pub role: &'a str,
    pub fingerprint: &'a str,
    pub prerequisites: &'a AgentPrerequisites,
}

/// A result: column names and text rows (`None` = SQL NULL).
pub type Rows = (Vec<&'static str>, Vec<Vec<Option<String>>>);

const CREATED_ON: &str = "2025-01-01T00:00:00.000Z";

fn grant_row(privilege: &str, on: &str, name: &str, role: &str) -> Vec<Option<String>> {
    vec![
        Some(CREATED_ON.into()),
        Some(privilege.into()),
        Some(on.into()),
        Some(name.into()),
        Some("ROLE".into()),
        Some(role.into()),
        Some("false".into()),
        Some("SECURITYADMIN".into()),
    ]
}

const GRANT_COLUMNS: [&str; 8] = [
    "created_on",
    "privilege",
    "granted_on",
    "name",
    "granted_to",
    "grantee_name",
    "grant_option",
    "granted_by",
];

/// The answer, or the access-control error message for another user or role.
pub fn answer(statement: &DoctorStatement, agent: &AgentAccount<'_>) -> Result<Rows, String> {
    let p = agent.prerequisites;
    let own_user = |u: &str| {
        if u == agent.user {
            Ok(())
        } else {
            Err(format!(
                "SQL access control error:\nInsufficient privileges to operate on user '{u}'."
            ))
        }
    };
    match statement {
        DoctorStatement::DescUser(u) => {
            own_user(u)?;
            let fingerprint = match p.snowflake_public_key {
                RegisteredKey::Configured => Some(agent.fingerprint.to_string()),
                RegisteredKey::Other => Some(OTHER_KEY_FINGERPRINT.to_string()),
                RegisteredKey::None => None,
            };
            let user_type = Some(p.snowflake_user_type.clone()).filter(|t| !t.is_empty());
            let key = fingerprint.as_ref().map(|_| "MIIBIjANBgkqh...".to_string());
            let props: Vec<(&str, Option<String>, &str)> = vec![
                ("NAME", Some(agent.user.into()), "User name"),
                ("TYPE", user_type, "Type of the user"),
                ("LOGIN_NAME", Some(agent.user.into()), "Login name"),
                (
                    "DISABLED",
                    Some("false".into()),
                    "Whether the user is disabled",
                ),
                (
                    "DEFAULT_ROLE",
                    Some(agent.role.into()),
                    "Primary role by default",
                ),
                ("RSA_PUBLIC_KEY", key, "RSA public key of the user"),
                (
                    "RSA_PUBLIC_KEY_FP",
                    fingerprint,
                    "Fingerprint of user's RSA public key.",
                ),
                (
                    "RSA_PUBLIC_KEY_2",
                    None,
                    "Second RSA public key of the user",
                ),
                (
                    "RSA_PUBLIC_KEY_2_FP",
                    None,
                    "Fingerprint of user's second RSA public key.",
                ),
            ];
            Ok((
                vec!["property", "value", "default", "description"],
                props
                    .into_iter()
                    .map(|(k, v, d)| {
                        vec![
                            Some(k.into()),
                            Some(v.unwrap_or_else(|| "null".into())),
                            Some("null".into()),
                            Some(d.into()),
                        ]
                    })
                    .collect(),
            ))
        }
        DoctorStatement::ShowUserParameters { pattern, user } => {
            own_user(user)?;
            let policy = &p.snowflake_network_policy;
            let rows = [(
                "NETWORK_POLICY",
                policy.as_str(),
                "Network policy assigned to the user",
            )]
            .into_iter()
            .filter(|(k, _, _)| like(pattern, k))
            .map(|(k, v, d)| {
                vec![
                    Some(k.into()),
                    Some(v.into()),
                    Some(String::new()),
                    Some(if v.is_empty() { "" } else { "USER" }.into()),
                    Some(d.into()),
                    Some("STRING".into()),
                ]
            })
            .collect();
            Ok((
                vec!["key", "value", "default", "level", "description", "type"],
                rows,
            ))
        }
        DoctorStatement::ShowGrantsOnUser(u) => {
            own_user(u)?;
            let mut rows = vec![grant_row("OWNERSHIP", "USER", u, "USERADMIN")];
            if p.snowflake_modify_pat_grant {
                rows.push(grant_row(
                    "MODIFY PROGRAMMATIC AUTHENTICATION METHODS",
                    "USER",
                    u,
                    agent.role,
                ));
            }
            Ok((GRANT_COLUMNS.to_vec(), rows))
        }
        DoctorStatement::ShowGrantsToRole(r) => {
            if r != agent.role {
                return Err(format!(
                    "SQL compilation error:\nRole '{r}' does not exist or not authorized."
                ));
            }
            let mut rows: Vec<_> = p
                .snowflake_warehouse_usage
                .iter()
                .map(|w| grant_row("USAGE", "WAREHOUSE", &w.to_ascii_uppercase(), r))
                .collect();
            if p.snowflake_modify_pat_grant {
                rows.push(grant_row(
                    "MODIFY PROGRAMMATIC AUTHENTICATION METHODS",
                    "USER",
                    agent.user,
                    r,
                ));
            }
            Ok((GRANT_COLUMNS.to_vec(), rows))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_doctor_statements_and_nothing_else() {
        assert_eq!(
            parse("DESC USER \"IMMUTA_AGENT\""),
            Some(DoctorStatement::DescUser("IMMUTA_AGENT".into()))
        );
        assert_eq!(
            parse("describe user immuta_agent;"),
            Some(DoctorStatement::DescUser("IMMUTA_AGENT".into()))
        );
        assert_eq!(
            parse("SHOW PARAMETERS LIKE 'NETWORK_POLICY' IN USER \"a\"\"b\""),
            Some(DoctorStatement::ShowUserParameters {
                pattern: "NETWORK_POLICY".into(),
                user: "a\"b".into()
            })
        );
        assert_eq!(
            parse("show grants to role \"IMMUTA_AGENT_ROLE\""),
            Some(DoctorStatement::ShowGrantsToRole(
                "IMMUTA_AGENT_ROLE".into()
            ))
        );
        assert_eq!(parse("SELECT 1"), None);
        assert_eq!(parse("SHOW GRANTS"), None);
        assert!(like("network%", "NETWORK_POLICY") && !like("NET", "NETWORK_POLICY"));
    }
}
