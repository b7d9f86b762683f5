//! Date and time functions on the engine's ISO text encodings: DATE_TRUNC,
//! DATEADD / DATEDIFF (Snowflake boundaries vs Databricks elapsed units),
//! date parts, LAST_DAY, MONTHS_BETWEEN, and Snowflake / Spark output formats.

use super::cast::cast;
use super::{det, fail, int_arg, text_arg};
use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use rusqlite::functions::{Context, FunctionFlags};
use rusqlite::types::{Value, ValueRef};
use rusqlite::{Connection, Result};

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

    pub(super) fn wall(&self) -> NaiveDateTime {
        match *self {
            Temporal::Date(d) => d.and_time(NaiveTime::MIN),
            Temporal::Ntz(w) | Temporal::Tz(w, _) => w,
        }
    }

    /// The same kind of value with another wall clock (a date keeps only the date).
    pub(super) fn with_wall(&self, wall: NaiveDateTime) -> Temporal {
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

pub(super) fn split_offset(s: &str) -> (&str, Option<i32>) {
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
pub(super) fn unit(raw: &str) -> Result<&'static str> {
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

pub(super) fn temporal_arg(ctx: &Context<'_>, i: usize) -> Result<Option<Temporal>> {
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

pub(super) fn days_in_month(y: i32, m: u32) -> u32 {
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    NaiveDate::from_ymd_opt(ny, nm, 1)
        .and_then(|d| d.pred_opt())
        .map_or(28, |d| d.day())
}

/// Add months, clamping the day to the target month's last day (both platforms do).
pub(super) fn add_months(w: NaiveDateTime, months: i64) -> Option<NaiveDateTime> {
    let total = i64::from(w.year()) * 12 + i64::from(w.month0()) + months;
    let y = i32::try_from(total.div_euclid(12)).ok()?;
    let m = u32::try_from(total.rem_euclid(12)).ok()? + 1;
    let d = w.day().min(days_in_month(y, m));
    Some(NaiveDate::from_ymd_opt(y, m, d)?.and_time(w.time()))
}

pub(super) fn truncate(w: NaiveDateTime, unit: &str) -> Result<NaiveDateTime> {
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

pub(super) fn add_unit(w: NaiveDateTime, unit: &str, n: i64) -> Result<NaiveDateTime> {
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

pub(super) fn is_date_unit(unit: &str) -> bool {
    matches!(unit, "year" | "quarter" | "month" | "week" | "day")
}

/// A part of a date/time as an integer.
pub(super) fn extract(w: NaiveDateTime, part: &str, spark: bool) -> Result<i64> {
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
pub(super) fn boundaries(a: NaiveDateTime, b: NaiveDateTime, unit: &str) -> Result<i64> {
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
pub(super) fn elapsed(a: NaiveDateTime, b: NaiveDateTime, unit: &str) -> Result<i64> {
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

pub(super) const MONTHS: [&str; 12] = [
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
pub(super) const DAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// Snowflake's date/time output format (`YYYY-MM-DD HH24:MI:SS`, `MON`, `DY`, ...).
pub(super) fn format_snowflake(t: &Temporal, fmt: &str) -> String {
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

pub(super) fn offset_text(t: &Temporal, colon: bool) -> String {
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
pub(super) fn format_spark(t: &Temporal, fmt: &str) -> String {
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

pub(super) fn register(conn: &Connection) -> Result<()> {
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
