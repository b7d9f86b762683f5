//! The SQLite functions the dialect translation calls: `sbx_*` scalar and
//! aggregate functions registered on the engine's connection, implementing
//! the Snowflake and Databricks semantics SQLite lacks (date arithmetic on the
//! engine's ISO text encodings, platform casts, regular expressions, JSON
//! helpers, MEDIAN/percentiles). They only ever see values the policy views
//! already masked and filtered.
//!
//! Temporal values travel as the engine stores them: DATE `YYYY-MM-DD`,
//! TIMESTAMP_NTZ `YYYY-MM-DD HH:MM:SS[.f]`, zoned timestamps with `+HH:MM`.

use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use regex::Regex;
use rusqlite::functions::{Aggregate, Context, FunctionFlags};
use rusqlite::types::{Value, ValueRef};
use rusqlite::{Connection, Error, Result};
use std::collections::HashMap;
use std::sync::Mutex;

/// SQLite's JSON subtype ('J'): marks text as JSON for `json_group_array` and friends.
const JSON_SUBTYPE: u32 = 74;

/// Why a function call failed (reported through SQLite as a user function error).
#[derive(Debug, thiserror::Error)]
pub enum FunctionError {
    #[error("{0}")]
    Invalid(String),
}

fn fail(msg: impl Into<String>) -> Error {
    Error::UserFunctionError(Box::new(FunctionError::Invalid(msg.into())))
}

/// A date or timestamp decoded from the engine's text encoding.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Temporal {
    Date(NaiveDate),
    Ntz(NaiveDateTime),
    /// Wall clock and offset in seconds.
    Tz(NaiveDateTime, i32),
}

impl Temporal {
    pub(crate) fn parse(text: &str) -> Option<Temporal> {
        let s = text.trim();
        if s.len() == 10 {
            return NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .ok()
                .map(Temporal::Date);
        }
        let (body, offset) = split_offset(s);
        let body = body.replace('T', " ");
        let wall = ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%d %H:%M"]
            .iter()
            .find_map(|f| NaiveDateTime::parse_from_str(&body, f).ok())?;
        Some(match offset {
            Some(o) => Temporal::Tz(wall, o),
            None => Temporal::Ntz(wall),
        })
    }

    fn wall(&self) -> NaiveDateTime {
        match *self {
            Temporal::Date(d) => d.and_time(NaiveTime::MIN),
            Temporal::Ntz(w) | Temporal::Tz(w, _) => w,
        }
    }

    /// The same kind of value with another wall clock (a date keeps only the date).
    fn with_wall(&self, wall: NaiveDateTime) -> Temporal {
        match *self {
            Temporal::Date(_) => Temporal::Date(wall.date()),
            Temporal::Ntz(_) => Temporal::Ntz(wall),
            Temporal::Tz(_, o) => Temporal::Tz(wall, o),
        }
    }

    pub(crate) fn render(&self) -> String {
        match *self {
            Temporal::Date(d) => d.format("%Y-%m-%d").to_string(),
            Temporal::Ntz(w) => w.format("%Y-%m-%d %H:%M:%S%.f").to_string(),
            Temporal::Tz(w, o) => {
                let sign = if o < 0 { '-' } else { '+' };
                let a = o.abs();
                format!(
                    "{}{sign}{:02}:{:02}",
                    w.format("%Y-%m-%d %H:%M:%S%.f"),
                    a / 3600,
                    (a % 3600) / 60
                )
            }
        }
    }
}

fn split_offset(s: &str) -> (&str, Option<i32>) {
    if let Some(body) = s.strip_suffix('Z') {
        return (body, Some(0));
    }
    if s.len() > 6 {
        let (body, tail) = s.split_at(s.len() - 6);
        let b = tail.as_bytes();
        if (b[0] == b'+' || b[0] == b'-') && b[3] == b':' && body.len() >= 16 {
            let h: i32 = tail[1..3].parse().unwrap_or(0);
            let m: i32 = tail[4..6].parse().unwrap_or(0);
            let o = h * 3600 + m * 60;
            return (body, Some(if b[0] == b'-' { -o } else { o }));
        }
    }
    (s, None)
}

/// A date part name, normalised (`'mm'`, `MONTHS` → `month`).
fn unit(raw: &str) -> Result<&'static str> {
    let u = raw.trim().trim_matches('\'').to_ascii_lowercase();
    Ok(match u.as_str() {
        "year" | "years" | "y" | "yy" | "yyy" | "yyyy" | "yr" | "yrs" => "year",
        "quarter" | "quarters" | "q" | "qtr" | "qtrs" => "quarter",
        "month" | "months" | "mm" | "mon" | "mons" => "month",
        "week" | "weeks" | "w" | "wk" | "weekofyear" | "woy" | "wy" => "week",
        "day" | "days" | "d" | "dd" | "dayofmonth" => "day",
        "hour" | "hours" | "h" | "hh" | "hr" | "hrs" => "hour",
        "minute" | "minutes" | "m" | "mi" | "min" | "mins" => "minute",
        "second" | "seconds" | "s" | "sec" | "secs" => "second",
        "millisecond" | "milliseconds" | "ms" | "msec" => "millisecond",
        "microsecond" | "microseconds" | "us" | "usec" => "microsecond",
        "dayofweek" | "weekday" | "dow" | "dw" => "dayofweek",
        "dayofweekiso" | "weekday_iso" | "dow_iso" => "dayofweekiso",
        "dayofyear" | "yearday" | "doy" | "dy" => "dayofyear",
        "yearofweek" | "yearofweekiso" => "yearofweek",
        "weekiso" | "week_iso" => "week",
        "epoch_second" | "epoch" | "epoch_seconds" => "epoch_second",
        _ => return Err(fail(format!("invalid date or time part '{raw}'"))),
    })
}

fn temporal_arg(ctx: &Context<'_>, i: usize) -> Result<Option<Temporal>> {
    match ctx.get_raw(i) {
        ValueRef::Null => Ok(None),
        ValueRef::Text(t) => {
            let s = String::from_utf8_lossy(t);
            Temporal::parse(&s)
                .map(Some)
                .ok_or_else(|| fail(format!("Date or timestamp '{s}' is not recognized")))
        }
        ValueRef::Integer(i) => chrono::DateTime::from_timestamp(i, 0)
            .map(|d| Some(Temporal::Ntz(d.naive_utc())))
            .ok_or_else(|| fail(format!("timestamp {i} is out of range"))),
        other => Err(fail(format!(
            "a date or timestamp was expected, not {:?}",
            other.data_type()
        ))),
    }
}

fn text_arg(ctx: &Context<'_>, i: usize) -> Option<String> {
    match ctx.get_raw(i) {
        ValueRef::Null => None,
        ValueRef::Text(t) => Some(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Integer(v) => Some(v.to_string()),
        ValueRef::Real(f) => Some(real_text(f)),
        ValueRef::Blob(b) => Some(hex::encode_upper(b)),
    }
}

fn int_arg(ctx: &Context<'_>, i: usize) -> Result<Option<i64>> {
    Ok(match ctx.get_raw(i) {
        ValueRef::Null => None,
        ValueRef::Integer(v) => Some(v),
        ValueRef::Real(f) => Some(f.round() as i64),
        ValueRef::Text(t) => {
            let s = String::from_utf8_lossy(t);
            Some(
                s.trim()
                    .parse::<f64>()
                    .map_err(|_| fail(format!("Numeric value '{s}' is not recognized")))?
                    .round() as i64,
            )
        }
        ValueRef::Blob(_) => return Err(fail("a number was expected")),
    })
}

fn real_arg(ctx: &Context<'_>, i: usize) -> Result<Option<f64>> {
    Ok(match ctx.get_raw(i) {
        ValueRef::Null => None,
        ValueRef::Integer(v) => Some(v as f64),
        ValueRef::Real(f) => Some(f),
        ValueRef::Text(t) => {
            let s = String::from_utf8_lossy(t);
            Some(
                s.trim()
                    .parse::<f64>()
                    .map_err(|_| fail(format!("Numeric value '{s}' is not recognized")))?,
            )
        }
        ValueRef::Blob(_) => return Err(fail("a number was expected")),
    })
}

/// Round half away from zero at `scale` digits, on the shortest decimal text of `f`
/// (so 12.345 rounds to 12.35 as a decimal platform does, not to 12.34 as binary f64 would).
pub(crate) fn round_decimal(f: f64, scale: i32) -> f64 {
    if !f.is_finite() {
        return f;
    }
    let text = format!("{:.*}", (scale + 2).clamp(0, 30) as usize, f);
    let shortest = f.to_string();
    let digits = if shortest.contains('e') {
        text
    } else {
        shortest
    };
    let neg = digits.starts_with('-');
    let body = digits.trim_start_matches('-');
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    if scale >= 0 && frac.len() <= scale as usize {
        return f;
    }
    let p = 10f64.powi(scale);
    let s = scale.max(0) as usize;
    let keep: String = format!("{int}{}", &frac[..s.min(frac.len())]);
    let next = frac.as_bytes().get(s).copied().unwrap_or(b'0');
    let mut n: f64 = keep.parse().unwrap_or(0.0);
    if scale < 0 {
        return (f * p).round() / p;
    }
    if next >= b'5' {
        n += 1.0;
    }
    let r = n / p;
    if neg { -r } else { r }
}

fn real_text(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e15 {
        format!("{}", f as i64)
    } else {
        f.to_string()
    }
}

fn days_in_month(y: i32, m: u32) -> u32 {
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    NaiveDate::from_ymd_opt(ny, nm, 1)
        .and_then(|d| d.pred_opt())
        .map_or(28, |d| d.day())
}

/// Add months, clamping the day to the target month's last day (both platforms do).
fn add_months(w: NaiveDateTime, months: i64) -> Option<NaiveDateTime> {
    let total = i64::from(w.year()) * 12 + i64::from(w.month0()) + months;
    let y = i32::try_from(total.div_euclid(12)).ok()?;
    let m = u32::try_from(total.rem_euclid(12)).ok()? + 1;
    let d = w.day().min(days_in_month(y, m));
    Some(NaiveDate::from_ymd_opt(y, m, d)?.and_time(w.time()))
}

fn truncate(w: NaiveDateTime, unit: &str) -> Result<NaiveDateTime> {
    let d = w.date();
    let day = |d: NaiveDate| d.and_time(NaiveTime::MIN);
    Ok(match unit {
        "year" => day(NaiveDate::from_ymd_opt(d.year(), 1, 1).unwrap_or(d)),
        "quarter" => {
            day(NaiveDate::from_ymd_opt(d.year(), (d.month0() / 3) * 3 + 1, 1).unwrap_or(d))
        }
        "month" => day(d.with_day(1).unwrap_or(d)),
        // Weeks start on Monday (Snowflake's default WEEK_START = 0 behaves as Monday for
        // DATE_TRUNC; Spark's date_trunc('WEEK') truncates to Monday).
        "week" => day(d - Duration::days(i64::from(d.weekday().num_days_from_monday()))),
        "day" => day(d),
        "hour" => d.and_hms_opt(w.hour(), 0, 0).unwrap_or(w),
        "minute" => d.and_hms_opt(w.hour(), w.minute(), 0).unwrap_or(w),
        "second" => d.and_hms_opt(w.hour(), w.minute(), w.second()).unwrap_or(w),
        "millisecond" => w
            .with_nanosecond(w.nanosecond() / 1_000_000 * 1_000_000)
            .unwrap_or(w),
        "microsecond" => w
            .with_nanosecond(w.nanosecond() / 1_000 * 1_000)
            .unwrap_or(w),
        other => {
            return Err(fail(format!(
                "DATE_TRUNC does not accept the part '{other}'"
            )));
        }
    })
}

fn add_unit(w: NaiveDateTime, unit: &str, n: i64) -> Result<NaiveDateTime> {
    let out = match unit {
        "year" => add_months(w, n.saturating_mul(12)),
        "quarter" => add_months(w, n.saturating_mul(3)),
        "month" => add_months(w, n),
        "week" => w.checked_add_signed(Duration::days(n.saturating_mul(7))),
        "day" => w.checked_add_signed(Duration::days(n)),
        "hour" => w.checked_add_signed(Duration::hours(n)),
        "minute" => w.checked_add_signed(Duration::minutes(n)),
        "second" => w.checked_add_signed(Duration::seconds(n)),
        "millisecond" => w.checked_add_signed(Duration::milliseconds(n)),
        "microsecond" => w.checked_add_signed(Duration::microseconds(n)),
        other => return Err(fail(format!("DATEADD does not accept the part '{other}'"))),
    };
    out.ok_or_else(|| fail("date arithmetic overflow"))
}

fn is_date_unit(unit: &str) -> bool {
    matches!(unit, "year" | "quarter" | "month" | "week" | "day")
}

/// A part of a date/time as an integer.
fn extract(w: NaiveDateTime, part: &str, spark: bool) -> Result<i64> {
    Ok(match part {
        "year" => i64::from(w.year()),
        "quarter" => i64::from(w.month0() / 3 + 1),
        "month" => i64::from(w.month()),
        "week" => i64::from(w.iso_week().week()),
        "yearofweek" => i64::from(w.iso_week().year()),
        "day" => i64::from(w.day()),
        // Spark dayofweek: 1 = Sunday .. 7 = Saturday. Snowflake DAYOFWEEK with the
        // default WEEK_START = 0: 0 = Sunday .. 6 = Saturday.
        "dayofweek" if spark => i64::from(w.weekday().num_days_from_sunday()) + 1,
        "dayofweek" => i64::from(w.weekday().num_days_from_sunday()),
        "dayofweekiso" => i64::from(w.weekday().number_from_monday()),
        "dayofyear" => i64::from(w.ordinal()),
        "hour" => i64::from(w.hour()),
        "minute" => i64::from(w.minute()),
        "second" => i64::from(w.second()),
        "epoch_second" => w.and_utc().timestamp(),
        other => return Err(fail(format!("cannot extract '{other}'"))),
    })
}

/// Snowflake DATEDIFF counts the unit boundaries crossed between the two values
/// (docs.snowflake.com/en/sql-reference/functions/datediff: "the number of
/// boundaries crossed", so 23:59 → 00:01 is one day).
fn boundaries(a: NaiveDateTime, b: NaiveDateTime, unit: &str) -> Result<i64> {
    let months = |w: NaiveDateTime| i64::from(w.year()) * 12 + i64::from(w.month0());
    Ok(match unit {
        "year" => i64::from(b.year() - a.year()),
        "quarter" => months(b) / 3 - months(a) / 3,
        "month" => months(b) - months(a),
        "week" => {
            let ta = truncate(a, "week")?;
            let tb = truncate(b, "week")?;
            (tb - ta).num_days() / 7
        }
        "day" => (b.date() - a.date()).num_days(),
        "hour" => (truncate(b, "hour")? - truncate(a, "hour")?).num_hours(),
        "minute" => (truncate(b, "minute")? - truncate(a, "minute")?).num_minutes(),
        "second" => (truncate(b, "second")? - truncate(a, "second")?).num_seconds(),
        "millisecond" => {
            (truncate(b, "millisecond")? - truncate(a, "millisecond")?).num_milliseconds()
        }
        "microsecond" => (b - a).num_microseconds().unwrap_or(0),
        other => return Err(fail(format!("DATEDIFF does not accept the part '{other}'"))),
    })
}

/// Databricks timestampdiff counts whole elapsed units; a month has elapsed
/// when the day and time reach the start's (learn.microsoft.com/azure/databricks/
/// sql/language-manual/functions/timestampdiff).
fn elapsed(a: NaiveDateTime, b: NaiveDateTime, unit: &str) -> Result<i64> {
    let whole_months = || {
        let mut m = (i64::from(b.year()) - i64::from(a.year())) * 12 + i64::from(b.month())
            - i64::from(a.month());
        let key = |w: NaiveDateTime| (w.day(), w.time());
        if m > 0 && key(b) < key(a) {
            m -= 1;
        } else if m < 0 && key(b) > key(a) {
            m += 1;
        }
        m
    };
    let d = b - a;
    Ok(match unit {
        "year" => whole_months() / 12,
        "quarter" => whole_months() / 3,
        "month" => whole_months(),
        "week" => d.num_days() / 7,
        "day" => d.num_days(),
        "hour" => d.num_hours(),
        "minute" => d.num_minutes(),
        "second" => d.num_seconds(),
        "millisecond" => d.num_milliseconds(),
        "microsecond" => d.num_microseconds().unwrap_or(0),
        other => {
            return Err(fail(format!(
                "TIMESTAMPDIFF does not accept the unit '{other}'"
            )));
        }
    })
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// Snowflake's date/time output format (`YYYY-MM-DD HH24:MI:SS`, `MON`, `DY`, ...).
fn format_snowflake(t: &Temporal, fmt: &str) -> String {
    let w = t.wall();
    let mut out = String::new();
    let mut rest = fmt;
    let tokens: [(&str, &dyn Fn() -> String); 22] = [
        ("YYYY", &|| format!("{:04}", w.year())),
        ("YY", &|| format!("{:02}", w.year() % 100)),
        ("MMMM", &|| MONTHS[w.month0() as usize].to_string()),
        ("MON", &|| MONTHS[w.month0() as usize][..3].to_string()),
        ("MM", &|| format!("{:02}", w.month())),
        ("DD", &|| format!("{:02}", w.day())),
        ("DY", &|| {
            DAYS[w.weekday().num_days_from_monday() as usize][..3].to_string()
        }),
        ("HH24", &|| format!("{:02}", w.hour())),
        ("HH12", &|| format!("{:02}", (w.hour() + 11) % 12 + 1)),
        ("HH", &|| format!("{:02}", w.hour())),
        ("MI", &|| format!("{:02}", w.minute())),
        ("SS", &|| format!("{:02}", w.second())),
        ("FF9", &|| format!("{:09}", w.nanosecond())),
        ("FF6", &|| format!("{:06}", w.nanosecond() / 1000)),
        ("FF3", &|| format!("{:03}", w.nanosecond() / 1_000_000)),
        ("FF", &|| format!("{:09}", w.nanosecond())),
        ("AM", &|| {
            if w.hour() < 12 { "AM" } else { "PM" }.to_string()
        }),
        ("PM", &|| {
            if w.hour() < 12 { "AM" } else { "PM" }.to_string()
        }),
        ("TZH:TZM", &|| offset_text(t, true)),
        ("TZHTZM", &|| offset_text(t, false)),
        ("Q", &|| (w.month0() / 3 + 1).to_string()),
        ("D", &|| w.day().to_string()),
    ];
    'outer: while !rest.is_empty() {
        if let Some(lit) = rest.strip_prefix('"') {
            let end = lit.find('"').unwrap_or(lit.len());
            out.push_str(&lit[..end]);
            rest = lit.get(end + 1..).unwrap_or("");
            continue;
        }
        let upper = rest.to_ascii_uppercase();
        for (tok, f) in &tokens {
            if upper.starts_with(tok) {
                out.push_str(&f());
                rest = &rest[tok.len()..];
                continue 'outer;
            }
        }
        let c = rest.chars().next().unwrap_or(' ');
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

fn offset_text(t: &Temporal, colon: bool) -> String {
    let o = match *t {
        Temporal::Tz(_, o) => o,
        _ => 0,
    };
    let sign = if o < 0 { '-' } else { '+' };
    let a = o.abs();
    if colon {
        format!("{sign}{:02}:{:02}", a / 3600, (a % 3600) / 60)
    } else {
        format!("{sign}{:02}{:02}", a / 3600, (a % 3600) / 60)
    }
}

/// Spark's datetime pattern (`yyyy-MM-dd HH:mm:ss`, `MMM`, `EEE`, `a`, quoted text).
fn format_spark(t: &Temporal, fmt: &str) -> String {
    let w = t.wall();
    let chars: Vec<char> = fmt.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            let mut j = i + 1;
            while j < chars.len() && chars[j] != '\'' {
                out.push(chars[j]);
                j += 1;
            }
            i = j + 1;
            continue;
        }
        if !c.is_ascii_alphabetic() {
            out.push(c);
            i += 1;
            continue;
        }
        let mut n = 1;
        while i + n < chars.len() && chars[i + n] == c {
            n += 1;
        }
        let num = |v: u32| format!("{v:0n$}");
        let piece = match c {
            'y' if n == 2 => format!("{:02}", w.year() % 100),
            'y' => format!("{:0n$}", w.year()),
            'M' | 'L' if n >= 4 => MONTHS[w.month0() as usize].to_string(),
            'M' | 'L' if n == 3 => MONTHS[w.month0() as usize][..3].to_string(),
            'M' | 'L' => num(w.month()),
            'd' => num(w.day()),
            'D' => num(w.ordinal()),
            'H' => num(w.hour()),
            'h' => num((w.hour() + 11) % 12 + 1),
            'm' => num(w.minute()),
            's' => num(w.second()),
            'S' => {
                let digits = format!("{:09}", w.nanosecond());
                digits[..n.min(9)].to_string()
            }
            'a' => if w.hour() < 12 { "AM" } else { "PM" }.to_string(),
            'E' if n >= 4 => DAYS[w.weekday().num_days_from_monday() as usize].to_string(),
            'E' => DAYS[w.weekday().num_days_from_monday() as usize][..3].to_string(),
            'Q' | 'q' => (w.month0() / 3 + 1).to_string(),
            'X' | 'x' | 'Z' => offset_text(t, n > 1 || c == 'Z'),
            other => other.to_string().repeat(n),
        };
        out.push_str(&piece);
        i += n;
    }
    out
}

/// A platform cast target, as the translation names it.
fn cast(v: ValueRef<'_>, target: &str, strict: bool) -> Result<Value> {
    let bad = |shown: String| -> Result<Value> {
        if strict {
            Err(fail(format!("Cannot cast '{shown}' to {target}")))
        } else {
            Ok(Value::Null)
        }
    };
    if let ValueRef::Null = v {
        return Ok(Value::Null);
    }
    let text = match v {
        ValueRef::Text(t) => Some(String::from_utf8_lossy(t).trim().to_string()),
        _ => None,
    };
    let (kind, arg) = target.split_once(':').unwrap_or((target, ""));
    match kind {
        "int_round" | "int_trunc" => {
            let f = match (v, &text) {
                (ValueRef::Integer(i), _) => return Ok(Value::Integer(i)),
                (ValueRef::Real(f), _) => f,
                (_, Some(s)) => match s.parse::<f64>() {
                    Ok(f) => f,
                    Err(_) => return bad(s.clone()),
                },
                _ => return bad(String::new()),
            };
            // Snowflake rounds half away from zero when casting to an integer; Spark truncates.
            Ok(Value::Integer(if kind == "int_round" {
                f.round() as i64
            } else {
                f.trunc() as i64
            }))
        }
        "real" => match (v, &text) {
            (ValueRef::Integer(i), _) => Ok(Value::Real(i as f64)),
            (ValueRef::Real(f), _) => Ok(Value::Real(f)),
            (_, Some(s)) => match s.parse::<f64>() {
                Ok(f) => Ok(Value::Real(f)),
                Err(_) => bad(s.clone()),
            },
            _ => bad(String::new()),
        },
        "dec" => {
            let scale: i32 = arg.parse().unwrap_or(0);
            let f = match (v, &text) {
                (ValueRef::Integer(i), _) => i as f64,
                (ValueRef::Real(f), _) => f,
                (_, Some(s)) => match s.parse::<f64>() {
                    Ok(f) => f,
                    Err(_) => return bad(s.clone()),
                },
                _ => return bad(String::new()),
            };
            if scale == 0 {
                return Ok(Value::Integer(round_decimal(f, 0) as i64));
            }
            Ok(Value::Real(round_decimal(f, scale)))
        }
        "text" => Ok(Value::Text(match v {
            ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
            ValueRef::Integer(i) => i.to_string(),
            ValueRef::Real(f) => real_text(f),
            ValueRef::Blob(b) => hex::encode_upper(b),
            ValueRef::Null => return Ok(Value::Null),
        })),
        "ts_text_sf" | "ts_text_spark" => {
            let t = match &text {
                Some(s) => match Temporal::parse(s) {
                    Some(t) => t,
                    None => return cast(v, "text", strict),
                },
                None => return cast(v, "text", strict),
            };
            let w = t.wall();
            Ok(Value::Text(match (kind, t) {
                (_, Temporal::Date(d)) => d.format("%Y-%m-%d").to_string(),
                ("ts_text_sf", _) => w.format("%Y-%m-%d %H:%M:%S%.3f").to_string(),
                _ => {
                    let frac = format!("{:09}", w.nanosecond());
                    let frac = frac.trim_end_matches('0');
                    let base = w.format("%Y-%m-%d %H:%M:%S").to_string();
                    if frac.is_empty() {
                        base
                    } else {
                        format!("{base}.{frac}")
                    }
                }
            }))
        }
        "bool_text" => Ok(Value::Text(
            match v {
                ValueRef::Integer(0) => "false",
                ValueRef::Integer(_) => "true",
                _ => return cast(v, "text", strict),
            }
            .to_string(),
        )),
        "bool" => match (v, &text) {
            (ValueRef::Integer(i), _) => Ok(Value::Integer(i64::from(i != 0))),
            (ValueRef::Real(f), _) => Ok(Value::Integer(i64::from(f != 0.0))),
            (_, Some(s)) => match s.to_ascii_lowercase().as_str() {
                "true" | "t" | "yes" | "y" | "on" | "1" => Ok(Value::Integer(1)),
                "false" | "f" | "no" | "n" | "off" | "0" => Ok(Value::Integer(0)),
                _ => bad(s.clone()),
            },
            _ => bad(String::new()),
        },
        "date" | "ntz" | "tz" => {
            let t = match (v, &text) {
                (_, Some(s)) => match Temporal::parse(s) {
                    Some(t) => t,
                    None => return bad(s.clone()),
                },
                (ValueRef::Integer(i), _) => match chrono::DateTime::from_timestamp(i, 0) {
                    Some(d) => Temporal::Ntz(d.naive_utc()),
                    None => return bad(i.to_string()),
                },
                _ => return bad(String::new()),
            };
            Ok(Value::Text(convert_temporal(t, kind).render()))
        }
        "json" => match (v, &text) {
            (_, Some(s)) => match serde_json::from_str::<serde_json::Value>(s) {
                Ok(j) => Ok(Value::Text(j.to_string())),
                Err(_) => Ok(Value::Text(
                    serde_json::Value::String(s.clone()).to_string(),
                )),
            },
            (ValueRef::Integer(i), _) => Ok(Value::Text(i.to_string())),
            (ValueRef::Real(f), _) => Ok(Value::Text(real_text(f))),
            _ => bad(String::new()),
        },
        other => Err(fail(format!("unknown cast target {other}"))),
    }
}

fn convert_temporal(t: Temporal, kind: &str) -> Temporal {
    match (kind, t) {
        ("date", t) => Temporal::Date(t.wall().date()),
        ("ntz", t) => Temporal::Ntz(t.wall()),
        ("tz", Temporal::Tz(w, o)) => Temporal::Tz(w, o),
        ("tz", t) => Temporal::Tz(t.wall(), 0),
        (_, t) => t,
    }
}

/// A compiled regular expression, cached per pattern and flags.
fn regex(cache: &Mutex<HashMap<String, Regex>>, pattern: &str, flags: &str) -> Result<Regex> {
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

fn initcap(s: &str, spark: bool) -> String {
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

fn json_value(v: ValueRef<'_>, subtype_json: bool) -> serde_json::Value {
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

fn json_out(v: &serde_json::Value) -> (Value, Option<u32>) {
    (Value::Text(v.to_string()), Some(JSON_SUBTYPE))
}

fn parse_json_arg(ctx: &Context<'_>, i: usize) -> Option<serde_json::Value> {
    match ctx.get_raw(i) {
        ValueRef::Null => None,
        ValueRef::Text(t) => serde_json::from_slice(t).ok(),
        other => Some(json_value(other, false)),
    }
}

/// A JSON value as the SQL value SQLite's `json_extract` would give.
fn sql_of_json(v: &serde_json::Value) -> (Value, Option<u32>) {
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

type Flags = FunctionFlags;

fn det() -> Flags {
    FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC
}

fn det_json() -> Flags {
    det() | FunctionFlags::SQLITE_RESULT_SUBTYPE
}

/// Register every `sbx_*` function on `conn`.
pub(crate) fn register(conn: &Connection) -> Result<()> {
    register_temporal(conn)?;
    register_numeric(conn)?;
    register_strings(conn)?;
    register_json(conn)?;
    register_aggregates(conn)
}

fn register_temporal(conn: &Connection) -> Result<()> {
    // sbx_date_trunc(unit, value): same kind out as in.
    conn.create_scalar_function("sbx_date_trunc", 2, det(), |ctx| {
        let Some(u) = text_arg(ctx, 0) else {
            return Ok(Value::Null);
        };
        let Some(t) = temporal_arg(ctx, 1)? else {
            return Ok(Value::Null);
        };
        let w = truncate(t.wall(), unit(&u)?)?;
        Ok(Value::Text(t.with_wall(w).render()))
    })?;
    // sbx_dateadd(unit, n, value): a date stays a date for day-or-larger units.
    conn.create_scalar_function("sbx_dateadd", 3, det(), |ctx| {
        let Some(u) = text_arg(ctx, 0) else {
            return Ok(Value::Null);
        };
        let (Some(n), Some(t)) = (int_arg(ctx, 1)?, temporal_arg(ctx, 2)?) else {
            return Ok(Value::Null);
        };
        let u = unit(&u)?;
        let w = add_unit(t.wall(), u, n)?;
        let out = match t {
            Temporal::Date(_) if !is_date_unit(u) => Temporal::Ntz(w),
            other => other.with_wall(w),
        };
        Ok(Value::Text(out.render()))
    })?;
    // sbx_datediff(unit, start, end): Snowflake boundaries crossed.
    conn.create_scalar_function("sbx_datediff", 3, det(), |ctx| {
        let Some(u) = text_arg(ctx, 0) else {
            return Ok(None);
        };
        let (Some(a), Some(b)) = (temporal_arg(ctx, 1)?, temporal_arg(ctx, 2)?) else {
            return Ok(None);
        };
        boundaries(a.wall(), b.wall(), unit(&u)?).map(Some)
    })?;
    // sbx_timestampdiff(unit, start, end): Databricks whole elapsed units (UTC).
    conn.create_scalar_function("sbx_timestampdiff", 3, det(), |ctx| {
        let Some(u) = text_arg(ctx, 0) else {
            return Ok(None);
        };
        let (Some(a), Some(b)) = (temporal_arg(ctx, 1)?, temporal_arg(ctx, 2)?) else {
            return Ok(None);
        };
        let utc = |t: Temporal| match t {
            Temporal::Tz(w, o) => w - Duration::seconds(i64::from(o)),
            other => other.wall(),
        };
        elapsed(utc(a), utc(b), unit(&u)?).map(Some)
    })?;
    for (name, spark) in [("sbx_extract", false), ("sbx_extract_spark", true)] {
        conn.create_scalar_function(name, 2, det(), move |ctx| {
            let Some(u) = text_arg(ctx, 0) else {
                return Ok(None);
            };
            let Some(t) = temporal_arg(ctx, 1)? else {
                return Ok(None);
            };
            extract(t.wall(), unit(&u)?, spark).map(Some)
        })?;
    }
    // Fractional seconds for EXTRACT(SECOND) on Spark are folded into the integer part.
    conn.create_scalar_function("sbx_format", 3, det(), |ctx| {
        let Some(t) = temporal_arg(ctx, 0)? else {
            return Ok(None);
        };
        let Some(fmt) = text_arg(ctx, 1) else {
            return Ok(None);
        };
        let spark = text_arg(ctx, 2).is_some_and(|p| p == "spark");
        Ok(Some(if spark {
            format_spark(&t, &fmt)
        } else {
            format_snowflake(&t, &fmt)
        }))
    })?;
    conn.create_scalar_function("sbx_last_day", 2, det(), |ctx| {
        let Some(t) = temporal_arg(ctx, 0)? else {
            return Ok(None);
        };
        let u = match text_arg(ctx, 1) {
            Some(u) => unit(&u)?,
            None => "month",
        };
        let d = t.wall().date();
        let last = match u {
            "year" => NaiveDate::from_ymd_opt(d.year(), 12, 31),
            "quarter" => {
                let m = (d.month0() / 3) * 3 + 3;
                NaiveDate::from_ymd_opt(d.year(), m, days_in_month(d.year(), m))
            }
            "week" => Some(d + Duration::days(6 - i64::from(d.weekday().num_days_from_monday()))),
            _ => NaiveDate::from_ymd_opt(d.year(), d.month(), days_in_month(d.year(), d.month())),
        };
        Ok(last.map(|l| Temporal::Date(l).render()))
    })?;
    conn.create_scalar_function("sbx_months_between", 2, det(), |ctx| {
        let (Some(a), Some(b)) = (temporal_arg(ctx, 0)?, temporal_arg(ctx, 1)?) else {
            return Ok(None);
        };
        let (a, b) = (a.wall(), b.wall());
        let whole = (i64::from(a.year()) - i64::from(b.year())) * 12 + i64::from(a.month())
            - i64::from(b.month());
        let last = |w: NaiveDateTime| w.day() == days_in_month(w.year(), w.month());
        if a.day() == b.day() || (last(a) && last(b)) {
            return Ok(Some(whole as f64));
        }
        let secs = |w: NaiveDateTime| {
            f64::from(w.day()) * 86400.0 + f64::from(w.num_seconds_from_midnight())
        };
        let frac = (secs(a) - secs(b)) / (31.0 * 86400.0);
        Ok(Some(((whole as f64 + frac) * 1e8).round() / 1e8))
    })?;
    // The statement clock: UTC.
    conn.create_scalar_function("sbx_now", 1, FunctionFlags::SQLITE_UTF8, |ctx| {
        let now = chrono::Utc::now().naive_utc();
        let now = now
            .with_nanosecond(now.nanosecond() / 1_000_000 * 1_000_000)
            .unwrap_or(now);
        let t = match text_arg(ctx, 0).as_deref() {
            Some("date") => Temporal::Date(now.date()),
            Some("ntz") => Temporal::Ntz(now),
            _ => Temporal::Tz(now, 0),
        };
        Ok(t.render())
    })?;
    // DATE_FROM_PARTS / make_date: out-of-range months and days roll over.
    conn.create_scalar_function("sbx_make_date", 3, det(), |ctx| {
        let (Some(y), Some(m), Some(d)) = (int_arg(ctx, 0)?, int_arg(ctx, 1)?, int_arg(ctx, 2)?)
        else {
            return Ok(None);
        };
        let base = NaiveDate::from_ymd_opt(i32::try_from(y).unwrap_or(1970), 1, 1)
            .ok_or_else(|| fail(format!("year {y} is out of range")))?
            .and_time(NaiveTime::MIN);
        let w = add_unit(add_unit(base, "month", m - 1)?, "day", d - 1)?;
        Ok(Some(Temporal::Date(w.date()).render()))
    })?;
    // from_unixtime(seconds[, pattern]): local (UTC) time as text.
    conn.create_scalar_function("sbx_from_unixtime", 2, det(), |ctx| {
        let Some(secs) = int_arg(ctx, 0)? else {
            return Ok(None);
        };
        let t = chrono::DateTime::from_timestamp(secs, 0)
            .map(|d| Temporal::Ntz(d.naive_utc()))
            .ok_or_else(|| fail(format!("timestamp {secs} is out of range")))?;
        let fmt = text_arg(ctx, 1).unwrap_or_else(|| "yyyy-MM-dd HH:mm:ss".into());
        Ok(Some(format_spark(&t, &fmt)))
    })?;
    conn.create_scalar_function("sbx_cast", 3, det(), |ctx| {
        let target = text_arg(ctx, 1).unwrap_or_default();
        let strict = matches!(ctx.get_raw(2), ValueRef::Integer(1));
        cast(ctx.get_raw(0), &target, strict)
    })?;
    // DATE - DATE (Snowflake): days between.
    conn.create_scalar_function("sbx_day_number", 1, det(), |ctx| {
        let Some(t) = temporal_arg(ctx, 0)? else {
            return Ok(None);
        };
        let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
        Ok(Some((t.wall().date() - epoch).num_days()))
    })?;
    Ok(())
}

fn register_numeric(conn: &Connection) -> Result<()> {
    // sbx_div(a, b, scale): division that errors on a zero divisor (both platforms do,
    // Databricks under its default ANSI mode); scale < 0 means floating point.
    conn.create_scalar_function("sbx_div", 3, det(), |ctx| {
        let (Some(a), Some(b)) = (real_arg(ctx, 0)?, real_arg(ctx, 1)?) else {
            return Ok(None);
        };
        if b == 0.0 {
            return Err(fail("Division by zero"));
        }
        let scale = int_arg(ctx, 2)?.unwrap_or(-1);
        let q = a / b;
        Ok(Some(if scale >= 0 {
            round_decimal(q, scale as i32)
        } else {
            q
        }))
    })?;
    // DIV0 / DIV0NULL / try_divide: 0 (or NULL) instead of an error.
    conn.create_scalar_function("sbx_div_or", 4, det(), |ctx| {
        let a = real_arg(ctx, 0)?;
        let b = real_arg(ctx, 1)?;
        let when_zero = real_arg(ctx, 2)?;
        let scale = int_arg(ctx, 3)?.unwrap_or(-1);
        let q = match (a, b) {
            (_, Some(0.0)) => return Ok(when_zero),
            (Some(a), Some(b)) => a / b,
            _ => return Ok(None),
        };
        Ok(Some(if scale >= 0 {
            round_decimal(q, scale as i32)
        } else {
            q
        }))
    })?;
    conn.create_scalar_function("sbx_trunc_num", 2, det(), |ctx| {
        let Some(x) = real_arg(ctx, 0)? else {
            return Ok(Value::Null);
        };
        let d = int_arg(ctx, 1)?.unwrap_or(0) as i32;
        if d <= 0 && matches!(ctx.get_raw(0), ValueRef::Integer(_)) {
            let p = 10i64.pow(d.unsigned_abs().min(18));
            if let ValueRef::Integer(i) = ctx.get_raw(0) {
                return Ok(Value::Integer(i / p * p));
            }
        }
        let p = 10f64.powi(d);
        Ok(Value::Real((x * p).trunc() / p))
    })?;
    // Banker's rounding (Spark bround, Snowflake ROUND(.., 'HALF_TO_EVEN')).
    conn.create_scalar_function("sbx_bround", 2, det(), |ctx| {
        let Some(x) = real_arg(ctx, 0)? else {
            return Ok(None);
        };
        let d = int_arg(ctx, 1)?.unwrap_or(0) as i32;
        let p = 10f64.powi(d);
        Ok(Some((x * p).round_ties_even() / p))
    })?;
    for (name, f) in [
        ("sbx_ceil", f64::ceil as fn(f64) -> f64),
        ("sbx_floor", f64::floor),
    ] {
        conn.create_scalar_function(name, -1, det(), move |ctx| {
            let d = if ctx.len() > 1 {
                int_arg(ctx, 1)?.unwrap_or(0) as i32
            } else {
                0
            };
            match ctx.get_raw(0) {
                ValueRef::Null => Ok(Value::Null),
                ValueRef::Integer(i) if d >= 0 => Ok(Value::Integer(i)),
                _ => {
                    let x = real_arg(ctx, 0)?.unwrap_or(0.0);
                    let p = 10f64.powi(d);
                    let r = f(x * p) / p;
                    Ok(if d <= 0 && r.abs() < 9.0e15 {
                        Value::Integer(r as i64)
                    } else {
                        Value::Real(r)
                    })
                }
            }
        })?;
    }
    for (name, f) in [
        ("sbx_sqrt", f64::sqrt as fn(f64) -> f64),
        ("sbx_ln", f64::ln),
        ("sbx_exp", f64::exp),
        ("sbx_log10", f64::log10),
        ("sbx_sign", f64::signum),
    ] {
        conn.create_scalar_function(name, 1, det(), move |ctx| {
            Ok(real_arg(ctx, 0)?.map(|x| {
                if name == "sbx_sign" && x == 0.0 {
                    0.0
                } else {
                    f(x)
                }
            }))
        })?;
    }
    conn.create_scalar_function("sbx_power", 2, det(), |ctx| {
        let (Some(a), Some(b)) = (real_arg(ctx, 0)?, real_arg(ctx, 1)?) else {
            return Ok(None);
        };
        Ok(Some(a.powf(b)))
    })?;
    conn.create_scalar_function("sbx_log", 2, det(), |ctx| {
        let (Some(base), Some(x)) = (real_arg(ctx, 0)?, real_arg(ctx, 1)?) else {
            return Ok(None);
        };
        Ok(Some(x.ln() / base.ln()))
    })?;
    // format_number(x, d): thousands separators and d decimals (half up).
    conn.create_scalar_function("sbx_format_number", 2, det(), |ctx| {
        let (Some(x), Some(d)) = (real_arg(ctx, 0)?, int_arg(ctx, 1)?) else {
            return Ok(None);
        };
        let d = d.clamp(0, 18) as usize;
        let text = format!("{:.*}", d, round_decimal(x, d as i32));
        let (int, frac) = text.split_once('.').unwrap_or((&text, ""));
        let (sign, digits) = int.strip_prefix('-').map_or(("", int), |r| ("-", r));
        let mut grouped = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                grouped.push(',');
            }
            grouped.push(c);
        }
        Ok(Some(if frac.is_empty() {
            format!("{sign}{grouped}")
        } else {
            format!("{sign}{grouped}.{frac}")
        }))
    })?;
    // GREATEST/LEAST that skip NULLs (Spark); Snowflake's NULL-propagating ones are SQLite's max/min.
    for (name, want) in [
        ("sbx_greatest_skip", std::cmp::Ordering::Greater),
        ("sbx_least_skip", std::cmp::Ordering::Less),
    ] {
        conn.create_scalar_function(name, -1, det(), move |ctx| {
            let mut best: Option<Value> = None;
            for i in 0..ctx.len() {
                let v: Value = owned(ctx.get_raw(i));
                if v == Value::Null {
                    continue;
                }
                best = match best {
                    None => Some(v),
                    Some(b) => {
                        if compare(&v, &b) == want {
                            Some(v)
                        } else {
                            Some(b)
                        }
                    }
                };
            }
            Ok(best.unwrap_or(Value::Null))
        })?;
    }
    Ok(())
}

fn owned(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Integer(i),
        ValueRef::Real(f) => Value::Real(f),
        ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
    }
}

fn compare(a: &Value, b: &Value) -> std::cmp::Ordering {
    let num = |v: &Value| match v {
        Value::Integer(i) => Some(*i as f64),
        Value::Real(f) => Some(*f),
        _ => None,
    };
    match (num(a), num(b)) {
        (Some(x), Some(y)) => x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal),
        _ => {
            let t = |v: &Value| match v {
                Value::Text(s) => s.clone(),
                Value::Integer(i) => i.to_string(),
                Value::Real(f) => f.to_string(),
                _ => String::new(),
            };
            t(a).cmp(&t(b))
        }
    }
}

fn register_strings(conn: &Connection) -> Result<()> {
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
fn like(p: &[char], s: &[char]) -> bool {
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

fn register_json(conn: &Connection) -> Result<()> {
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

/// MEDIAN / PERCENTILE_CONT (linear interpolation), PERCENTILE_DISC and Spark's
/// percentile_approx (the smallest value with at least `p` of the values at or below it).
#[derive(Clone, Copy)]
enum Percentile {
    Cont,
    Disc,
    Approx,
}

struct PercentileAgg(Percentile);

impl Aggregate<(Vec<f64>, Option<f64>), Option<f64>> for PercentileAgg {
    fn init(&self, _: &mut Context<'_>) -> Result<(Vec<f64>, Option<f64>)> {
        Ok((Vec::new(), None))
    }

    fn step(&self, ctx: &mut Context<'_>, acc: &mut (Vec<f64>, Option<f64>)) -> Result<()> {
        if ctx.len() > 1 && acc.1.is_none() {
            let p = real_arg(ctx, 1)?.unwrap_or(0.5);
            if !(0.0..=1.0).contains(&p) {
                return Err(fail(format!("percentile {p} is not between 0 and 1")));
            }
            acc.1 = Some(p);
        }
        if let Some(x) = real_arg(ctx, 0)? {
            acc.0.push(x);
        }
        Ok(())
    }

    fn finalize(
        &self,
        _: &mut Context<'_>,
        acc: Option<(Vec<f64>, Option<f64>)>,
    ) -> Result<Option<f64>> {
        let Some((mut v, p)) = acc else {
            return Ok(None);
        };
        if v.is_empty() {
            return Ok(None);
        }
        v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
        let p = p.unwrap_or(0.5);
        let n = v.len();
        Ok(Some(match self.0 {
            Percentile::Cont => {
                let rank = p * (n - 1) as f64;
                let lo = rank.floor() as usize;
                let hi = rank.ceil() as usize;
                v[lo] + (v[hi] - v[lo]) * (rank - lo as f64)
            }
            Percentile::Disc | Percentile::Approx => {
                let k = ((p * n as f64).ceil() as usize).clamp(1, n);
                v[k - 1]
            }
        }))
    }
}

/// MODE: the most frequent non-NULL value (the first seen among ties).
struct ModeAgg;

impl Aggregate<Vec<(Value, u64)>, Value> for ModeAgg {
    fn init(&self, _: &mut Context<'_>) -> Result<Vec<(Value, u64)>> {
        Ok(Vec::new())
    }
    fn step(&self, ctx: &mut Context<'_>, acc: &mut Vec<(Value, u64)>) -> Result<()> {
        let v = owned(ctx.get_raw(0));
        if v == Value::Null {
            return Ok(());
        }
        match acc.iter_mut().find(|(x, _)| *x == v) {
            Some((_, n)) => *n += 1,
            None => acc.push((v, 1)),
        }
        Ok(())
    }
    fn finalize(&self, _: &mut Context<'_>, acc: Option<Vec<(Value, u64)>>) -> Result<Value> {
        let acc = acc.unwrap_or_default();
        let best = acc.iter().map(|(_, n)| *n).max().unwrap_or(0);
        Ok(acc
            .into_iter()
            .find(|(_, n)| *n == best)
            .map_or(Value::Null, |(v, _)| v))
    }
}

/// ANY_VALUE: the first non-NULL value seen.
struct AnyValue;

impl Aggregate<Option<Value>, Value> for AnyValue {
    fn init(&self, _: &mut Context<'_>) -> Result<Option<Value>> {
        Ok(None)
    }
    fn step(&self, ctx: &mut Context<'_>, acc: &mut Option<Value>) -> Result<()> {
        if acc.is_none() && !matches!(ctx.get_raw(0), ValueRef::Null) {
            *acc = Some(owned(ctx.get_raw(0)));
        }
        Ok(())
    }
    fn finalize(&self, _: &mut Context<'_>, acc: Option<Option<Value>>) -> Result<Value> {
        Ok(acc.flatten().unwrap_or(Value::Null))
    }
}

/// max_by / min_by (Spark), MAX_BY / MIN_BY (Snowflake): the value at the extreme key.
struct ByAgg(std::cmp::Ordering);

impl Aggregate<Option<(Value, Value)>, Value> for ByAgg {
    fn init(&self, _: &mut Context<'_>) -> Result<Option<(Value, Value)>> {
        Ok(None)
    }
    fn step(&self, ctx: &mut Context<'_>, acc: &mut Option<(Value, Value)>) -> Result<()> {
        let key: Value = owned(ctx.get_raw(1));
        if key == Value::Null {
            return Ok(());
        }
        let better = match acc {
            None => true,
            Some((_, k)) => compare(&key, k) == self.0,
        };
        if better {
            *acc = Some((owned(ctx.get_raw(0)), key));
        }
        Ok(())
    }
    fn finalize(&self, _: &mut Context<'_>, acc: Option<Option<(Value, Value)>>) -> Result<Value> {
        Ok(acc.flatten().map_or(Value::Null, |(v, _)| v))
    }
}

/// Sample / population variance and standard deviation.
struct VarAgg {
    sample: bool,
    sqrt: bool,
}

impl Aggregate<(f64, f64, u64), Option<f64>> for VarAgg {
    fn init(&self, _: &mut Context<'_>) -> Result<(f64, f64, u64)> {
        Ok((0.0, 0.0, 0))
    }
    fn step(&self, ctx: &mut Context<'_>, acc: &mut (f64, f64, u64)) -> Result<()> {
        if let Some(x) = real_arg(ctx, 0)? {
            // Welford's online update.
            acc.2 += 1;
            let d = x - acc.0;
            acc.0 += d / acc.2 as f64;
            acc.1 += d * (x - acc.0);
        }
        Ok(())
    }
    fn finalize(&self, _: &mut Context<'_>, acc: Option<(f64, f64, u64)>) -> Result<Option<f64>> {
        let Some((_, m2, n)) = acc else {
            return Ok(None);
        };
        let denom = if self.sample { n.saturating_sub(1) } else { n };
        if denom == 0 {
            return Ok(None);
        }
        let var = m2 / denom as f64;
        Ok(Some(if self.sqrt { var.sqrt() } else { var }))
    }
}

/// ARRAY_AGG / collect_list / collect_set: a JSON array of the non-NULL values.
struct ArrayAgg {
    distinct: bool,
}

impl Aggregate<Vec<serde_json::Value>, (Value, Option<u32>)> for ArrayAgg {
    fn init(&self, _: &mut Context<'_>) -> Result<Vec<serde_json::Value>> {
        Ok(Vec::new())
    }
    fn step(&self, ctx: &mut Context<'_>, acc: &mut Vec<serde_json::Value>) -> Result<()> {
        let v = json_value(ctx.get_raw(0), ctx.get_subtype(0) == JSON_SUBTYPE);
        let skip = v.is_null() || (self.distinct && acc.contains(&v));
        if !skip {
            acc.push(v);
        }
        Ok(())
    }
    fn finalize(
        &self,
        _: &mut Context<'_>,
        acc: Option<Vec<serde_json::Value>>,
    ) -> Result<(Value, Option<u32>)> {
        Ok(json_out(&serde_json::Value::Array(acc.unwrap_or_default())))
    }
}

fn register_aggregates(conn: &Connection) -> Result<()> {
    for (name, kind) in [
        ("sbx_percentile_cont", Percentile::Cont),
        ("sbx_percentile_disc", Percentile::Disc),
        ("sbx_percentile_approx", Percentile::Approx),
    ] {
        conn.create_aggregate_function(name, 2, det(), PercentileAgg(kind))?;
    }
    conn.create_aggregate_function("sbx_median", 1, det(), PercentileAgg(Percentile::Cont))?;
    conn.create_aggregate_function("sbx_any_value", 1, det(), AnyValue)?;
    conn.create_aggregate_function("sbx_mode", 1, det(), ModeAgg)?;
    conn.create_aggregate_function("sbx_max_by", 2, det(), ByAgg(std::cmp::Ordering::Greater))?;
    conn.create_aggregate_function("sbx_min_by", 2, det(), ByAgg(std::cmp::Ordering::Less))?;
    for (name, sample, sqrt) in [
        ("sbx_var_samp", true, false),
        ("sbx_var_pop", false, false),
        ("sbx_stddev_samp", true, true),
        ("sbx_stddev_pop", false, true),
    ] {
        conn.create_aggregate_function(name, 1, det(), VarAgg { sample, sqrt })?;
    }
    conn.create_aggregate_function("sbx_array_agg", 1, det_json(), ArrayAgg { distinct: false })?;
    conn.create_aggregate_function(
        "sbx_array_agg_distinct",
        1,
        det_json(),
        ArrayAgg { distinct: true },
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDateTime {
        Temporal::parse(s).unwrap().wall()
    }

    #[test]
    fn datediff_counts_boundaries_and_timestampdiff_whole_units() {
        assert_eq!(
            boundaries(d("2024-01-31"), d("2024-02-01"), "month").unwrap(),
            1
        );
        assert_eq!(
            elapsed(d("2024-01-31"), d("2024-02-01"), "month").unwrap(),
            0
        );
        assert_eq!(
            boundaries(d("2024-01-01 23:59:00"), d("2024-01-02 00:01:00"), "day").unwrap(),
            1
        );
        assert_eq!(
            elapsed(d("2021-02-28 12:00:00"), d("2021-03-28 11:59:59"), "month").unwrap(),
            0
        );
        assert_eq!(
            elapsed(d("2021-01-01"), d("1900-03-28"), "year").unwrap(),
            -120
        );
    }

    #[test]
    fn months_clamp_to_the_last_day() {
        assert_eq!(
            add_unit(d("2024-01-31"), "month", 1)
                .unwrap()
                .date()
                .to_string(),
            "2024-02-29"
        );
    }

    #[test]
    fn formats_both_spellings() {
        let t = Temporal::parse("2024-01-05 09:15:00").unwrap();
        assert_eq!(
            format_snowflake(&t, "YYYY-MM-DD HH24:MI"),
            "2024-01-05 09:15"
        );
        assert_eq!(format_snowflake(&t, "MON DD, YYYY"), "Jan 05, 2024");
        assert_eq!(format_spark(&t, "yyyy-MM-dd HH:mm"), "2024-01-05 09:15");
        assert_eq!(format_spark(&t, "MMM d, yyyy EEE"), "Jan 5, 2024 Fri");
    }

    #[test]
    fn like_matches_wildcards_and_escapes() {
        let m = |p: &str, s: &str| {
            like(
                &p.chars().collect::<Vec<_>>(),
                &s.chars().collect::<Vec<_>>(),
            )
        };
        assert!(m("%schmidt%", "anna.schmidt@example.de"));
        assert!(!m("%Schmidt%", "anna.schmidt@example.de"));
        assert!(m("a_c", "abc") && !m("a_c", "abbc"));
        assert!(m("50\\%", "50%") && !m("50\\%", "500"));
        assert!(m("%a%b%", "xxaxxbxx") && !m("%a%b%", "xxbxxaxx"));
        let long = "a".repeat(5000);
        assert!(!m(&format!("{}b", "%a".repeat(30)), &long));
    }

    #[test]
    fn initcap_delimiters_differ() {
        assert_eq!(initcap("hello-world foo", false), "Hello-World Foo");
        assert_eq!(initcap("hello-world foo", true), "Hello-world Foo");
    }
}
