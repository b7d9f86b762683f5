//! String functions: SPLIT / SPLIT_PART, regular expressions (cached per
//! pattern and flags), padding, INITCAP, CONCAT_WS, TRANSLATE, a
//! case-sensitive LIKE with escapes, hashing.

use super::json::json_out;
use super::{JSON_SUBTYPE, det, det_json, fail, int_arg, text_arg};
use regex::Regex;
use rusqlite::types::{Value, ValueRef};
use rusqlite::{Connection, Result};
use std::collections::HashMap;
use std::sync::Mutex;

/// A compiled regular expression, cached per pattern and flags.
pub(super) fn regex(
    cache: &Mutex<HashMap<String, Regex>>,
    pattern: &str,
    flags: &str,
) -> Result<Regex> {
    let key = format!("{flags}\u{0}{pattern}");
    let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(r) = cache.get(&key) {
        return Ok(r.clone());
    }
    let mut b = regex::RegexBuilder::new(pattern);
    for f in flags.chars() {
        match f {
            'i' => {
                b.case_insensitive(true);
            }
            'c' => {
                b.case_insensitive(false);
            }
            'm' => {
                b.multi_line(true);
            }
            's' => {
                b.dot_matches_new_line(true);
            }
            'e' => {}
            other => return Err(fail(format!("invalid regular expression flag '{other}'"))),
        }
    }
    let r = b
        .build()
        .map_err(|e| fail(format!("invalid regular expression '{pattern}': {e}")))?;
    if cache.len() > 256 {
        cache.clear();
    }
    cache.insert(key, r.clone());
    Ok(r)
}

pub(super) fn initcap(s: &str, spark: bool) -> String {
    let mut out = String::with_capacity(s.len());
    let mut start = true;
    for c in s.chars() {
        if start {
            out.extend(c.to_uppercase());
        } else {
            out.extend(c.to_lowercase());
        }
        // Spark capitalises after white space only; Snowflake after any of its delimiters
        // (white space and !?@"^#$&~_,.:;+-*%/|\[](){}<>).
        start = if spark {
            c.is_whitespace()
        } else {
            c.is_whitespace() || "!?@\"^#$&~_,.:;+-*%/|\\[](){}<>".contains(c)
        };
    }
    out
}

pub(super) fn register(conn: &Connection) -> Result<()> {
    // SPLIT_PART: 1-based; negative counts from the end; out of range → ''.
    // Snowflake treats part 0 as 1; Databricks rejects 0.
    conn.create_scalar_function("sbx_split_part", 4, det(), |ctx| {
        let (Some(s), Some(d)) = (text_arg(ctx, 0), text_arg(ctx, 1)) else {
            return Ok(None);
        };
        let Some(n) = int_arg(ctx, 2)? else {
            return Ok(None);
        };
        let spark = text_arg(ctx, 3).is_some_and(|p| p == "spark");
        let parts: Vec<&str> = if d.is_empty() {
            vec![s.as_str()]
        } else {
            s.split(d.as_str()).collect()
        };
        let idx = match n {
            0 if spark => return Err(fail("[INVALID_INDEX_OF_ZERO] The index 0 is invalid.")),
            0 => 0,
            n if n > 0 => (n - 1) as usize,
            n => match parts.len().checked_sub(n.unsigned_abs() as usize) {
                Some(i) => i,
                None => return Ok(Some(String::new())),
            },
        };
        Ok(Some(
            parts.get(idx).map(|p| p.to_string()).unwrap_or_default(),
        ))
    })?;
    // SPLIT: Snowflake by a literal delimiter, Spark by a regular expression; a JSON array.
    let cache = std::sync::Arc::new(Mutex::new(HashMap::new()));
    let c = cache.clone();
    conn.create_scalar_function("sbx_split", 3, det_json(), move |ctx| {
        let (Some(s), Some(d)) = (text_arg(ctx, 0), text_arg(ctx, 1)) else {
            return Ok((Value::Null, None));
        };
        let spark = text_arg(ctx, 2).is_some_and(|p| p == "spark");
        let parts: Vec<serde_json::Value> = if spark {
            let r = regex(&c, &d, "")?;
            r.split(&s)
                .map(|p| serde_json::Value::String(p.into()))
                .collect()
        } else if d.is_empty() {
            vec![serde_json::Value::String(s)]
        } else {
            s.split(d.as_str())
                .map(|p| serde_json::Value::String(p.into()))
                .collect()
        };
        Ok(json_out(&serde_json::Value::Array(parts)))
    })?;
    let c = cache.clone();
    // sbx_regexp_like(subject, pattern, flags): whole-string match (Snowflake REGEXP_LIKE/RLIKE
    // anchor the pattern; Spark RLIKE searches — the translation anchors or not via flags 'e').
    conn.create_scalar_function("sbx_regexp_like", 4, det(), move |ctx| {
        let (Some(s), Some(p)) = (text_arg(ctx, 0), text_arg(ctx, 1)) else {
            return Ok(None);
        };
        let flags = text_arg(ctx, 2).unwrap_or_default();
        let whole = matches!(ctx.get_raw(3), ValueRef::Integer(1));
        let p = if whole { format!("^(?:{p})$") } else { p };
        Ok(Some(regex(&c, &p, &flags)?.is_match(&s)))
    })?;
    let c = cache.clone();
    // sbx_regexp_substr(subject, pattern, position, occurrence, flags, group)
    conn.create_scalar_function("sbx_regexp_substr", 6, det(), move |ctx| {
        let (Some(s), Some(p)) = (text_arg(ctx, 0), text_arg(ctx, 1)) else {
            return Ok(None);
        };
        let pos = int_arg(ctx, 2)?.unwrap_or(1).max(1) as usize;
        let occ = int_arg(ctx, 3)?.unwrap_or(1).max(1) as usize;
        let flags = text_arg(ctx, 4).unwrap_or_default();
        let group = int_arg(ctx, 5)?.unwrap_or(0).max(0) as usize;
        let r = regex(&c, &p, &flags)?;
        let start = s.char_indices().nth(pos - 1).map_or(s.len(), |(i, _)| i);
        let Some(caps) = r.captures_iter(&s[start..]).nth(occ - 1) else {
            return Ok(None);
        };
        Ok(caps.get(group).map(|m| m.as_str().to_string()))
    })?;
    let c = cache.clone();
    // Spark regexp_extract(subject, pattern, group): '' when nothing matches.
    conn.create_scalar_function("sbx_regexp_extract", 3, det(), move |ctx| {
        let (Some(s), Some(p)) = (text_arg(ctx, 0), text_arg(ctx, 1)) else {
            return Ok(None);
        };
        let group = int_arg(ctx, 2)?.unwrap_or(1).max(0) as usize;
        let r = regex(&c, &p, "")?;
        Ok(Some(
            r.captures(&s)
                .and_then(|caps| caps.get(group).map(|m| m.as_str().to_string()))
                .unwrap_or_default(),
        ))
    })?;
    let c = cache.clone();
    conn.create_scalar_function("sbx_regexp_extract_all", 3, det_json(), move |ctx| {
        let (Some(s), Some(p)) = (text_arg(ctx, 0), text_arg(ctx, 1)) else {
            return Ok((Value::Null, None));
        };
        let group = int_arg(ctx, 2)?.unwrap_or(1).max(0) as usize;
        let r = regex(&c, &p, "")?;
        let all: Vec<serde_json::Value> = r
            .captures_iter(&s)
            .filter_map(|caps| caps.get(group).map(|m| m.as_str().into()))
            .collect();
        Ok(json_out(&serde_json::Value::Array(all)))
    })?;
    let c = cache.clone();
    // sbx_regexp_replace(subject, pattern, replacement, position, occurrence (0 = all), flags)
    conn.create_scalar_function("sbx_regexp_replace", 6, det(), move |ctx| {
        let (Some(s), Some(p)) = (text_arg(ctx, 0), text_arg(ctx, 1)) else {
            return Ok(None);
        };
        let rep = text_arg(ctx, 2).unwrap_or_default();
        let pos = int_arg(ctx, 3)?.unwrap_or(1).max(1) as usize;
        let occ = int_arg(ctx, 4)?.unwrap_or(0).max(0) as usize;
        let flags = text_arg(ctx, 5).unwrap_or_default();
        let r = regex(&c, &p, &flags)?;
        // Both platforms write back-references as \1 (Snowflake) or $1 (Spark).
        let rep = Regex::new(r"\\(\d)")
            .map(|br| br.replace_all(&rep, "$${$1}").into_owned())
            .unwrap_or(rep);
        let start = s.char_indices().nth(pos - 1).map_or(s.len(), |(i, _)| i);
        let (head, tail) = s.split_at(start);
        let replaced = if occ == 0 {
            r.replace_all(tail, rep.as_str()).into_owned()
        } else {
            let mut out = String::new();
            let mut last = 0;
            for (i, caps) in r.captures_iter(tail).enumerate() {
                let Some(m) = caps.get(0) else { continue };
                if i + 1 == occ {
                    out.push_str(&tail[last..m.start()]);
                    caps.expand(&rep, &mut out);
                    last = m.end();
                    break;
                }
            }
            out.push_str(&tail[last..]);
            out
        };
        Ok(Some(format!("{head}{replaced}")))
    })?;
    let c = cache;
    conn.create_scalar_function("sbx_regexp_count", 3, det(), move |ctx| {
        let (Some(s), Some(p)) = (text_arg(ctx, 0), text_arg(ctx, 1)) else {
            return Ok(None);
        };
        let flags = text_arg(ctx, 2).unwrap_or_default();
        Ok(Some(regex(&c, &p, &flags)?.find_iter(&s).count() as i64))
    })?;
    // substring_index(s, delim, n): before the n-th delimiter (n > 0) or after the
    // n-th from the end (n < 0).
    conn.create_scalar_function("sbx_substring_index", 3, det(), |ctx| {
        let (Some(s), Some(d), Some(n)) = (text_arg(ctx, 0), text_arg(ctx, 1), int_arg(ctx, 2)?)
        else {
            return Ok(None);
        };
        if d.is_empty() || n == 0 {
            return Ok(Some(String::new()));
        }
        let parts: Vec<&str> = s.split(d.as_str()).collect();
        let k = (n.unsigned_abs() as usize).min(parts.len());
        Ok(Some(if n > 0 {
            parts[..k].join(&d)
        } else {
            parts[parts.len() - k..].join(&d)
        }))
    })?;
    // SHA2(x, bits): lower-case hex digest (224/256/384/512; 0 means 256).
    conn.create_scalar_function("sbx_sha2", 2, det(), |ctx| {
        use sha2::Digest;
        let Some(s) = text_arg(ctx, 0) else {
            return Ok(None);
        };
        let bits = int_arg(ctx, 1)?.unwrap_or(256);
        let digest = match bits {
            224 => hex::encode(sha2::Sha224::digest(s.as_bytes())),
            0 | 256 => hex::encode(sha2::Sha256::digest(s.as_bytes())),
            384 => hex::encode(sha2::Sha384::digest(s.as_bytes())),
            512 => hex::encode(sha2::Sha512::digest(s.as_bytes())),
            other => return Err(fail(format!("SHA2 does not support {other} bits"))),
        };
        Ok(Some(digest))
    })?;
    for (name, spark) in [("sbx_initcap", false), ("sbx_initcap_spark", true)] {
        conn.create_scalar_function(name, 1, det(), move |ctx| {
            Ok(text_arg(ctx, 0).map(|s| initcap(&s, spark)))
        })?;
    }
    // CONCAT: NULL if any argument is NULL (both platforms; SQLite's concat() skips NULLs).
    conn.create_scalar_function("sbx_concat", -1, det(), |ctx| {
        let mut out = String::new();
        for i in 0..ctx.len() {
            match text_arg(ctx, i) {
                Some(s) => out.push_str(&s),
                None => return Ok(None),
            }
        }
        Ok(Some(out))
    })?;
    // CONCAT_WS: Snowflake returns NULL if any argument is NULL
    // (docs.snowflake.com/en/sql-reference/functions/concat_ws); Spark skips NULLs and
    // flattens array arguments.
    conn.create_scalar_function("sbx_concat_ws", -1, det(), |ctx| {
        let Some(sep) = text_arg(ctx, 0) else {
            return Ok(None);
        };
        let mut parts = Vec::new();
        for i in 1..ctx.len() {
            match text_arg(ctx, i) {
                Some(s) => parts.push(s),
                None => return Ok(None),
            }
        }
        Ok(Some(parts.join(&sep)))
    })?;
    conn.create_scalar_function("sbx_concat_ws_spark", -1, det(), |ctx| {
        let Some(sep) = text_arg(ctx, 0) else {
            return Ok(None);
        };
        let mut parts = Vec::new();
        for i in 1..ctx.len() {
            let json = ctx.get_subtype(i) == JSON_SUBTYPE;
            match (text_arg(ctx, i), json) {
                (None, _) => {}
                (Some(s), true) => match serde_json::from_str::<serde_json::Value>(&s) {
                    Ok(serde_json::Value::Array(items)) => {
                        for item in items {
                            match item {
                                serde_json::Value::Null => {}
                                serde_json::Value::String(s) => parts.push(s),
                                other => parts.push(other.to_string()),
                            }
                        }
                    }
                    _ => parts.push(s),
                },
                (Some(s), false) => parts.push(s),
            }
        }
        Ok(Some(parts.join(&sep)))
    })?;
    for (name, left) in [("sbx_lpad", true), ("sbx_rpad", false)] {
        conn.create_scalar_function(name, -1, det(), move |ctx| {
            let (Some(s), Some(n)) = (text_arg(ctx, 0), int_arg(ctx, 1)?) else {
                return Ok(None);
            };
            let pad = if ctx.len() > 2 {
                match text_arg(ctx, 2) {
                    Some(p) => p,
                    None => return Ok(None),
                }
            } else {
                " ".to_string()
            };
            let n = n.max(0) as usize;
            let chars: Vec<char> = s.chars().collect();
            if chars.len() >= n || pad.is_empty() {
                return Ok(Some(chars.iter().take(n).collect::<String>()));
            }
            let fill: String = pad.chars().cycle().take(n - chars.len()).collect();
            Ok(Some(if left {
                format!("{fill}{s}")
            } else {
                format!("{s}{fill}")
            }))
        })?;
    }
    conn.create_scalar_function("sbx_reverse", 1, det(), |ctx| {
        Ok(text_arg(ctx, 0).map(|s| s.chars().rev().collect::<String>()))
    })?;
    conn.create_scalar_function("sbx_repeat", 2, det(), |ctx| {
        let (Some(s), Some(n)) = (text_arg(ctx, 0), int_arg(ctx, 1)?) else {
            return Ok(None);
        };
        Ok(Some(s.repeat(n.clamp(0, 10_000) as usize)))
    })?;
    for (name, left) in [("sbx_left", true), ("sbx_right", false)] {
        conn.create_scalar_function(name, 2, det(), move |ctx| {
            let (Some(s), Some(n)) = (text_arg(ctx, 0), int_arg(ctx, 1)?) else {
                return Ok(None);
            };
            let chars: Vec<char> = s.chars().collect();
            let n = (n.max(0) as usize).min(chars.len());
            Ok(Some(if left {
                chars[..n].iter().collect::<String>()
            } else {
                chars[chars.len() - n..].iter().collect::<String>()
            }))
        })?;
    }
    // sbx_position(needle, haystack, start): 1-based, 0 when absent.
    conn.create_scalar_function("sbx_position", 3, det(), |ctx| {
        let (Some(needle), Some(hay)) = (text_arg(ctx, 0), text_arg(ctx, 1)) else {
            return Ok(None);
        };
        let start = int_arg(ctx, 2)?.unwrap_or(1).max(1) as usize;
        let offset = hay
            .char_indices()
            .nth(start - 1)
            .map_or(hay.len(), |(i, _)| i);
        Ok(Some(match hay[offset..].find(&needle) {
            Some(b) => (hay[..offset + b].chars().count() + 1) as i64,
            None => 0,
        }))
    })?;
    for (name, kind) in [
        ("sbx_startswith", 0u8),
        ("sbx_endswith", 1),
        ("sbx_contains", 2),
    ] {
        conn.create_scalar_function(name, 2, det(), move |ctx| {
            let (Some(s), Some(p)) = (text_arg(ctx, 0), text_arg(ctx, 1)) else {
                return Ok(None);
            };
            Ok(Some(match kind {
                0 => s.starts_with(&p),
                1 => s.ends_with(&p),
                _ => s.contains(&p),
            }))
        })?;
    }
    conn.create_scalar_function("sbx_translate", 3, det(), |ctx| {
        let (Some(s), Some(from), Some(to)) =
            (text_arg(ctx, 0), text_arg(ctx, 1), text_arg(ctx, 2))
        else {
            return Ok(None);
        };
        let from: Vec<char> = from.chars().collect();
        let to: Vec<char> = to.chars().collect();
        Ok(Some(
            s.chars()
                .filter_map(|c| match from.iter().position(|f| *f == c) {
                    Some(i) => to.get(i).copied(),
                    None => Some(c),
                })
                .collect::<String>(),
        ))
    })?;
    for (name, upper) in [("sbx_upper", true), ("sbx_lower", false)] {
        conn.create_scalar_function(name, 1, det(), move |ctx| {
            Ok(text_arg(ctx, 0).map(|s| {
                if upper {
                    s.to_uppercase()
                } else {
                    s.to_lowercase()
                }
            }))
        })?;
    }
    // ILIKE: Unicode case-insensitive LIKE with `\` as the default escape.
    conn.create_scalar_function("sbx_like", 3, det(), |ctx| {
        let (Some(s), Some(p)) = (text_arg(ctx, 0), text_arg(ctx, 1)) else {
            return Ok(None);
        };
        let ci = matches!(ctx.get_raw(2), ValueRef::Integer(1));
        let (s, p) = if ci {
            (s.to_lowercase(), p.to_lowercase())
        } else {
            (s, p)
        };
        Ok(Some(like(
            &p.chars().collect::<Vec<_>>(),
            &s.chars().collect::<Vec<_>>(),
        )))
    })?;
    Ok(())
}

/// SQL LIKE with `%`, `_` and `\\` escapes, case-sensitive. Greedy matching with
/// one backtrack point (the last `%`), so it runs in O(len(p) * len(s)) whatever the pattern.
pub(super) fn like(p: &[char], s: &[char]) -> bool {
    // Tokens: Some(c) literal, None for `_`; `%` handled by the star bookkeeping.
    #[derive(Clone, Copy, PartialEq)]
    enum Tok {
        Lit(char),
        One,
        Any,
    }
    let mut toks = Vec::with_capacity(p.len());
    let mut i = 0;
    while i < p.len() {
        match p[i] {
            '\\' if i + 1 < p.len() => {
                toks.push(Tok::Lit(p[i + 1]));
                i += 2;
                continue;
            }
            '%' => toks.push(Tok::Any),
            '_' => toks.push(Tok::One),
            c => toks.push(Tok::Lit(c)),
        }
        i += 1;
    }
    let (mut pi, mut si) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        match toks.get(pi) {
            Some(Tok::Any) => {
                star = Some((pi, si));
                pi += 1;
            }
            Some(Tok::One) => {
                pi += 1;
                si += 1;
            }
            Some(Tok::Lit(c)) if *c == s[si] => {
                pi += 1;
                si += 1;
            }
            _ => match star {
                Some((sp, ss)) => {
                    pi = sp + 1;
                    si = ss + 1;
                    star = Some((sp, ss + 1));
                }
                None => return false,
            },
        }
    }
    toks[pi..].iter().all(|t| *t == Tok::Any)
}
