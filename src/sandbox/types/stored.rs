//! Reading fixture values as the engine stores them (see the parent module
//! for the accepted storage forms): text, numbers, booleans, bytes, JSON,
//! dates, times and timestamps (with or without a UTC offset). Shared by both
//! wire encoders; a value that does not read as the asked type is `None`.

use crate::sandbox::engine::EngineValue;
use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime};
use serde_json::{Value, json};

pub(super) fn as_text(value: &EngineValue) -> String {
    match value {
        EngineValue::Null => String::new(),
        EngineValue::Integer(i) => i.to_string(),
        EngineValue::Real(f) => f.to_string(),
        EngineValue::Text(s) => s.clone(),
        EngineValue::Blob(b) => match std::str::from_utf8(b) {
            Ok(s) => s.to_string(),
            Err(_) => hex::encode_upper(b),
        },
    }
}

pub(super) fn as_f64(value: &EngineValue) -> Option<f64> {
    match value {
        EngineValue::Integer(i) => Some(*i as f64),
        EngineValue::Real(f) => Some(*f),
        EngineValue::Text(s) => match s.trim().to_ascii_lowercase().as_str() {
            "nan" => Some(f64::NAN),
            "inf" | "infinity" | "+inf" | "+infinity" => Some(f64::INFINITY),
            "-inf" | "-infinity" => Some(f64::NEG_INFINITY),
            other => other.parse().ok().filter(|f: &f64| f.is_finite()),
        },
        EngineValue::Null | EngineValue::Blob(_) => None,
    }
}

pub(super) fn as_integer(value: &EngineValue) -> Option<i64> {
    match value {
        EngineValue::Integer(i) => Some(*i),
        EngineValue::Real(f) if f.fract() == 0.0 && f.abs() < 9.0e18 => Some(*f as i64),
        EngineValue::Text(s) => s.trim().parse().ok(),
        _ => None,
    }
}

pub(super) fn as_bool(value: &EngineValue) -> Option<bool> {
    match value {
        EngineValue::Integer(0) => Some(false),
        EngineValue::Integer(1) => Some(true),
        EngineValue::Real(f) if *f == 0.0 => Some(false),
        EngineValue::Real(f) if *f == 1.0 => Some(true),
        EngineValue::Text(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" => Some(true),
            "false" | "0" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

pub(super) fn as_bytes(value: &EngineValue) -> Option<Vec<u8>> {
    match value {
        EngineValue::Blob(b) => Some(b.clone()),
        EngineValue::Text(s) => {
            let s = s.trim();
            let s = s
                .strip_prefix("0x")
                .or_else(|| s.strip_prefix("0X"))
                .unwrap_or(s);
            hex::decode(s).ok()
        }
        _ => None,
    }
}

/// JSON text parsed; text that is not JSON becomes a JSON string, numbers stay numbers.
pub(super) fn as_json(value: &EngineValue) -> Value {
    match value {
        EngineValue::Null => Value::Null,
        EngineValue::Integer(i) => json!(i),
        EngineValue::Real(f) => serde_json::Number::from_f64(*f)
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(f.to_string())),
        EngineValue::Text(s) => {
            serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.clone()))
        }
        EngineValue::Blob(b) => match std::str::from_utf8(b) {
            Ok(s) => serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.to_string())),
            Err(_) => Value::String(hex::encode_upper(b)),
        },
    }
}

/// 1970-01-01, the day Snowflake counts DATE values from.
pub(super) fn epoch_date() -> NaiveDate {
    DateTime::UNIX_EPOCH.date_naive()
}

pub(super) fn as_date(value: &EngineValue) -> Option<NaiveDate> {
    match value {
        EngineValue::Integer(days) => {
            epoch_date().checked_add_signed(chrono::Duration::try_days(*days)?)
        }
        EngineValue::Text(s) => {
            let s = s.trim();
            parse_timestamp_text(s).map(|ts| ts.wall.date())
        }
        _ => None,
    }
}

pub(super) fn as_time(value: &EngineValue) -> Option<NaiveTime> {
    match value {
        EngineValue::Integer(secs) => {
            NaiveTime::from_num_seconds_from_midnight_opt(u32::try_from(*secs).ok()?, 0)
        }
        EngineValue::Text(s) => {
            let s = s.trim();
            NaiveTime::parse_from_str(s, "%H:%M:%S%.f")
                .or_else(|_| NaiveTime::parse_from_str(s, "%H:%M"))
                .ok()
        }
        _ => None,
    }
}

/// A timestamp as stored: its wall-clock reading and, when given, its UTC offset.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct StoredTimestamp {
    pub(super) wall: NaiveDateTime,
    pub(super) offset_seconds: Option<i32>,
}

impl StoredTimestamp {
    /// The instant in UTC (a timestamp without offset is read as UTC).
    pub(super) fn utc(&self) -> NaiveDateTime {
        self.wall - chrono::Duration::seconds(i64::from(self.offset_seconds.unwrap_or(0)))
    }
}

pub(super) fn as_timestamp(value: &EngineValue) -> Option<StoredTimestamp> {
    match value {
        EngineValue::Integer(secs) => Some(StoredTimestamp {
            wall: DateTime::from_timestamp(*secs, 0)?.naive_utc(),
            offset_seconds: None,
        }),
        EngineValue::Real(secs) if secs.is_finite() => {
            let whole = secs.floor();
            let nanos = ((secs - whole) * 1e9).round() as u32;
            Some(StoredTimestamp {
                wall: DateTime::from_timestamp(whole as i64, nanos.min(999_999_999))?.naive_utc(),
                offset_seconds: None,
            })
        }
        EngineValue::Text(s) => parse_timestamp_text(s.trim()),
        _ => None,
    }
}

pub(super) fn parse_timestamp_text(s: &str) -> Option<StoredTimestamp> {
    fast_iso_timestamp(s.as_bytes()).or_else(|| chrono_timestamp(s))
}

/// `YYYY-MM-DD[(T| )HH:MM[:SS[.f{1,9}]][Z|±HH[:MM]]]` without chrono's format
/// machinery (the engine stores timestamps this way; encoding a million rows
/// must stay cheap). `None` for anything else.
pub(super) fn fast_iso_timestamp(b: &[u8]) -> Option<StoredTimestamp> {
    let num = |range: std::ops::Range<usize>| -> Option<u32> {
        let digits = b.get(range)?;
        digits.iter().try_fold(0u32, |acc, d| {
            d.is_ascii_digit().then(|| acc * 10 + u32::from(d - b'0'))
        })
    };
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let date = NaiveDate::from_ymd_opt(i32::try_from(num(0..4)?).ok()?, num(5..7)?, num(8..10)?)?;
    if b.len() == 10 {
        return Some(StoredTimestamp {
            wall: date.and_time(NaiveTime::MIN),
            offset_seconds: None,
        });
    }
    if !matches!(b[10], b'T' | b't' | b' ') || b.get(13) != Some(&b':') {
        return None;
    }
    let (hour, minute) = (num(11..13)?, num(14..16)?);
    let mut at = 16;
    let mut second = 0;
    let mut nanos = 0;
    if b.get(at) == Some(&b':') {
        second = num(at + 1..at + 3)?;
        at += 3;
        if b.get(at) == Some(&b'.') {
            let start = at + 1;
            let mut end = start;
            while end < b.len() && b[end].is_ascii_digit() {
                end += 1;
            }
            if end == start || end - start > 9 {
                return None;
            }
            nanos = num(start..end)? * 10u32.pow(9 - (end - start) as u32);
            at = end;
        }
    }
    let time = NaiveTime::from_hms_nano_opt(hour, minute, second, nanos)?;
    let offset_seconds = match &b[at..] {
        [] => None,
        [b'Z' | b'z'] => Some(0),
        [sign @ (b'+' | b'-'), rest @ ..] => {
            let (h, m) = match rest {
                [_, _] => (num(at + 1..at + 3)?, 0),
                [_, _, b':', _, _] | [_, _, _, _] => {
                    (num(at + 1..at + 3)?, num(b.len() - 2..b.len())?)
                }
                _ => return None,
            };
            let total = i32::try_from(h * 3600 + m * 60).ok()?;
            Some(if *sign == b'-' { -total } else { total })
        }
        _ => return None,
    };
    Some(StoredTimestamp {
        wall: date.and_time(time),
        offset_seconds,
    })
}

pub(super) fn chrono_timestamp(s: &str) -> Option<StoredTimestamp> {
    let normalised = s.replacen(' ', "T", 1);
    if let Ok(dt) = DateTime::<FixedOffset>::parse_from_rfc3339(&normalised) {
        return Some(StoredTimestamp {
            wall: dt.naive_local(),
            offset_seconds: Some(dt.offset().local_minus_utc()),
        });
    }
    for format in [
        "%Y-%m-%dT%H:%M:%S%.f%:z",
        "%Y-%m-%dT%H:%M:%S%.f%z",
        "%Y-%m-%dT%H:%M%:z",
    ] {
        if let Ok(dt) = DateTime::<FixedOffset>::parse_from_str(&normalised, format) {
            return Some(StoredTimestamp {
                wall: dt.naive_local(),
                offset_seconds: Some(dt.offset().local_minus_utc()),
            });
        }
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"] {
        if let Ok(wall) = NaiveDateTime::parse_from_str(&normalised, format) {
            return Some(StoredTimestamp {
                wall,
                offset_seconds: None,
            });
        }
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .map(|d| StoredTimestamp {
            wall: d.and_time(NaiveTime::MIN),
            offset_seconds: None,
        })
}
