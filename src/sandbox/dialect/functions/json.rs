//! Semi-structured functions on JSON text (marked with SQLite's JSON
//! subtype): PARSE_JSON, GET / field access, ARRAY / OBJECT construction,
//! array helpers, TYPEOF.

use super::{JSON_SUBTYPE, det, det_json, fail, text_arg};
use rusqlite::functions::Context;
use rusqlite::types::{Value, ValueRef};
use rusqlite::{Connection, Result};

pub(super) fn json_value(v: ValueRef<'_>, subtype_json: bool) -> serde_json::Value {
    match v {
        ValueRef::Null => serde_json::Value::Null,
        ValueRef::Integer(i) => serde_json::Value::from(i),
        ValueRef::Real(f) => serde_json::Number::from_f64(f)
            .map_or(serde_json::Value::Null, serde_json::Value::Number),
        ValueRef::Text(t) => {
            let s = String::from_utf8_lossy(t);
            if subtype_json {
                serde_json::from_str(&s).unwrap_or_else(|_| serde_json::Value::String(s.into()))
            } else {
                serde_json::Value::String(s.into_owned())
            }
        }
        ValueRef::Blob(b) => serde_json::Value::String(hex::encode_upper(b)),
    }
}

pub(super) fn json_out(v: &serde_json::Value) -> (Value, Option<u32>) {
    (Value::Text(v.to_string()), Some(JSON_SUBTYPE))
}

pub(super) fn parse_json_arg(ctx: &Context<'_>, i: usize) -> Option<serde_json::Value> {
    match ctx.get_raw(i) {
        ValueRef::Null => None,
        ValueRef::Text(t) => serde_json::from_slice(t).ok(),
        other => Some(json_value(other, false)),
    }
}

/// A JSON value as the SQL value SQLite's `json_extract` would give.
pub(super) fn sql_of_json(v: &serde_json::Value) -> (Value, Option<u32>) {
    match v {
        serde_json::Value::Null => (Value::Null, None),
        serde_json::Value::Bool(b) => (Value::Integer(i64::from(*b)), None),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => (Value::Integer(i), None),
            None => (Value::Real(n.as_f64().unwrap_or(0.0)), None),
        },
        serde_json::Value::String(s) => (Value::Text(s.clone()), None),
        other => json_out(other),
    }
}

pub(super) fn register(conn: &Connection) -> Result<()> {
    // PARSE_JSON / TRY_PARSE_JSON: canonical compact JSON text, marked JSON.
    conn.create_scalar_function("sbx_parse_json", 2, det_json(), |ctx| {
        let strict = matches!(ctx.get_raw(1), ValueRef::Integer(1));
        let Some(s) = text_arg(ctx, 0) else {
            return Ok((Value::Null, None));
        };
        match serde_json::from_str::<serde_json::Value>(&s) {
            Ok(v) => Ok(json_out(&v)),
            Err(e) if strict => Err(fail(format!("Error parsing JSON: {e}"))),
            Err(_) => Ok((Value::Null, None)),
        }
    })?;
    // sbx_get(json, key-or-index): one step of a path; the SQL value (JSON for containers).
    conn.create_scalar_function("sbx_get", 2, det_json(), |ctx| {
        let Some(v) = parse_json_arg(ctx, 0) else {
            return Ok((Value::Null, None));
        };
        let got = match ctx.get_raw(1) {
            ValueRef::Integer(i) => v.get(usize::try_from(i).unwrap_or(usize::MAX)).cloned(),
            ValueRef::Real(f) => v.get(f as usize).cloned(),
            ValueRef::Text(t) => v.get(String::from_utf8_lossy(t).as_ref()).cloned(),
            _ => None,
        };
        Ok(got.as_ref().map_or((Value::Null, None), sql_of_json))
    })?;
    // sbx_field(json, name): a Databricks STRUCT field or MAP key; field names resolve
    // case-insensitively, as Spark resolves them.
    conn.create_scalar_function("sbx_field", 2, det_json(), |ctx| {
        let Some(v) = parse_json_arg(ctx, 0) else {
            return Ok((Value::Null, None));
        };
        let got = match (&v, ctx.get_raw(1)) {
            (serde_json::Value::Object(o), ValueRef::Text(t)) => {
                let k = String::from_utf8_lossy(t);
                o.get(k.as_ref()).cloned().or_else(|| {
                    o.iter()
                        .find(|(name, _)| name.eq_ignore_ascii_case(&k))
                        .map(|(_, x)| x.clone())
                })
            }
            (serde_json::Value::Array(a), ValueRef::Integer(i)) => {
                usize::try_from(i).ok().and_then(|i| a.get(i)).cloned()
            }
            _ => None,
        };
        Ok(got.as_ref().map_or((Value::Null, None), sql_of_json))
    })?;
    // sbx_json_text(value): a VARIANT value as Snowflake's ::STRING gives it (strings
    // unquoted, everything else as JSON text).
    conn.create_scalar_function("sbx_to_variant", 1, det_json(), |ctx| {
        let json = ctx.get_subtype(0) == JSON_SUBTYPE;
        Ok(json_out(&json_value(ctx.get_raw(0), json)))
    })?;
    // ARRAY_CONSTRUCT / array(...): a JSON array of the arguments.
    conn.create_scalar_function("sbx_array", -1, det_json(), |ctx| {
        let items: Vec<serde_json::Value> = (0..ctx.len())
            .map(|i| json_value(ctx.get_raw(i), ctx.get_subtype(i) == JSON_SUBTYPE))
            .collect();
        Ok(json_out(&serde_json::Value::Array(items)))
    })?;
    // OBJECT_CONSTRUCT (NULL values dropped) / named_struct and map (kept).
    for (name, keep_null) in [("sbx_object", false), ("sbx_struct", true)] {
        conn.create_scalar_function(name, -1, det_json(), move |ctx| {
            let mut map = serde_json::Map::new();
            let mut i = 0;
            while i + 1 < ctx.len() {
                let key = text_arg(ctx, i).unwrap_or_default();
                let v = json_value(ctx.get_raw(i + 1), ctx.get_subtype(i + 1) == JSON_SUBTYPE);
                if keep_null || !v.is_null() {
                    map.insert(key, v);
                }
                i += 2;
            }
            Ok(json_out(&serde_json::Value::Object(map)))
        })?;
    }
    conn.create_scalar_function("sbx_array_size", 1, det(), |ctx| {
        Ok(parse_json_arg(ctx, 0).and_then(|v| match v {
            serde_json::Value::Array(a) => Some(a.len() as i64),
            serde_json::Value::Object(o) => Some(o.len() as i64),
            _ => None,
        }))
    })?;
    // sbx_array_contains(array, value)
    conn.create_scalar_function("sbx_array_contains", 2, det(), |ctx| {
        let Some(serde_json::Value::Array(a)) = parse_json_arg(ctx, 0) else {
            return Ok(None);
        };
        let needle = json_value(ctx.get_raw(1), ctx.get_subtype(1) == JSON_SUBTYPE);
        Ok(Some(a.iter().any(|x| {
            x == &needle || (x.as_f64().is_some() && x.as_f64() == needle.as_f64())
        })))
    })?;
    // sort_array / array_distinct / array_join / element_at / map_keys / map_values
    conn.create_scalar_function("sbx_sort_array", 2, det_json(), |ctx| {
        let Some(serde_json::Value::Array(mut a)) = parse_json_arg(ctx, 0) else {
            return Ok((Value::Null, None));
        };
        let asc = !matches!(ctx.get_raw(1), ValueRef::Integer(0));
        a.sort_by(|x, y| {
            let o = match (x.as_f64(), y.as_f64()) {
                (Some(p), Some(q)) => p.partial_cmp(&q).unwrap_or(std::cmp::Ordering::Equal),
                _ => match (x, y) {
                    (serde_json::Value::Null, serde_json::Value::Null) => std::cmp::Ordering::Equal,
                    (serde_json::Value::Null, _) => std::cmp::Ordering::Less,
                    (_, serde_json::Value::Null) => std::cmp::Ordering::Greater,
                    _ => x.to_string().cmp(&y.to_string()),
                },
            };
            if asc { o } else { o.reverse() }
        });
        Ok(json_out(&serde_json::Value::Array(a)))
    })?;
    conn.create_scalar_function("sbx_array_distinct", 1, det_json(), |ctx| {
        let Some(serde_json::Value::Array(a)) = parse_json_arg(ctx, 0) else {
            return Ok((Value::Null, None));
        };
        let mut out: Vec<serde_json::Value> = Vec::new();
        for x in a {
            if !out.contains(&x) {
                out.push(x);
            }
        }
        Ok(json_out(&serde_json::Value::Array(out)))
    })?;
    conn.create_scalar_function("sbx_array_join", 3, det(), |ctx| {
        let Some(serde_json::Value::Array(a)) = parse_json_arg(ctx, 0) else {
            return Ok(None);
        };
        let sep = text_arg(ctx, 1).unwrap_or_default();
        let null_as = text_arg(ctx, 2);
        let parts: Vec<String> = a
            .into_iter()
            .filter_map(|x| match x {
                serde_json::Value::Null => null_as.clone(),
                serde_json::Value::String(s) => Some(s),
                other => Some(other.to_string()),
            })
            .collect();
        Ok(Some(parts.join(&sep)))
    })?;
    // element_at(array, i) 1-based (negative from the end) / element_at(map, key).
    conn.create_scalar_function("sbx_element_at", 2, det_json(), |ctx| {
        let Some(v) = parse_json_arg(ctx, 0) else {
            return Ok((Value::Null, None));
        };
        let got = match (&v, ctx.get_raw(1)) {
            (serde_json::Value::Array(a), ValueRef::Integer(i)) => {
                let idx = if i > 0 {
                    usize::try_from(i - 1).ok()
                } else if i < 0 {
                    a.len().checked_sub(i.unsigned_abs() as usize)
                } else {
                    return Err(fail("[INVALID_INDEX_OF_ZERO] The index 0 is invalid."));
                };
                idx.and_then(|i| a.get(i)).cloned()
            }
            (serde_json::Value::Object(o), key) => {
                let k = match key {
                    ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
                    ValueRef::Integer(i) => i.to_string(),
                    _ => return Ok((Value::Null, None)),
                };
                o.get(&k).cloned()
            }
            _ => None,
        };
        Ok(got.as_ref().map_or((Value::Null, None), sql_of_json))
    })?;
    for (name, keys) in [("sbx_map_keys", true), ("sbx_map_values", false)] {
        conn.create_scalar_function(name, 1, det_json(), move |ctx| {
            let Some(serde_json::Value::Object(o)) = parse_json_arg(ctx, 0) else {
                return Ok((Value::Null, None));
            };
            let items: Vec<serde_json::Value> = if keys {
                o.keys()
                    .map(|k| serde_json::Value::String(k.clone()))
                    .collect()
            } else {
                o.values().cloned().collect()
            };
            Ok(json_out(&serde_json::Value::Array(items)))
        })?;
    }
    // The JSON kind of a value, as Snowflake's TYPEOF names it.
    conn.create_scalar_function("sbx_typeof", 1, det(), |ctx| {
        let json = ctx.get_subtype(0) == JSON_SUBTYPE;
        Ok(Some(
            match json_value(ctx.get_raw(0), json) {
                serde_json::Value::Null => "NULL_VALUE",
                serde_json::Value::Bool(_) => "BOOLEAN",
                serde_json::Value::Number(n) if n.is_f64() => "DOUBLE",
                serde_json::Value::Number(_) => "INTEGER",
                serde_json::Value::String(_) => "VARCHAR",
                serde_json::Value::Array(_) => "ARRAY",
                serde_json::Value::Object(_) => "OBJECT",
            }
            .to_string(),
        ))
    })?;
    Ok(())
}
