//! Exact decimal text for FIXED / DECIMAL cells: exactly `scale` fraction
//! digits, rounded half away from zero, without going through `f64` for text.

use crate::sandbox::engine::EngineValue;

/// Exact decimal text with exactly `scale` fraction digits (half away from zero).
pub(super) fn encode_decimal(value: &EngineValue, scale: u32) -> Option<String> {
    if let EngineValue::Integer(i) = value {
        // The common case, without the general text arithmetic.
        return Some(if scale == 0 {
            i.to_string()
        } else {
            format!("{i}.{:0<width$}", "", width = scale as usize)
        });
    }
    let text = match value {
        EngineValue::Integer(i) => i.to_string(),
        EngineValue::Real(f) if f.is_finite() => f.to_string(),
        EngineValue::Text(s) => s.trim().to_string(),
        _ => return None,
    };
    normalise_decimal(&text, scale)
}

/// `"10.5"` at scale 2 → `"10.50"`; `"0.125"` at scale 2 → `"0.13"`; exponents accepted.
pub(super) fn normalise_decimal(text: &str, scale: u32) -> Option<String> {
    // Fast path: plain `[-]int[.frac]` already within the scale only needs padding.
    let unsigned = text.strip_prefix('-').unwrap_or(text);
    let (int_part, frac_part) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let canonical_int = int_part == "0" || (!int_part.is_empty() && !int_part.starts_with('0'));
    if canonical_int
        && frac_part.len() <= scale as usize
        && int_part.bytes().all(|b| b.is_ascii_digit())
        && frac_part.bytes().all(|b| b.is_ascii_digit())
        && (text.len() == unsigned.len() || unsigned.bytes().any(|b| (b'1'..=b'9').contains(&b)))
    {
        let mut out = String::with_capacity(text.len() + scale as usize + 1);
        out.push_str(&text[..text.len() - unsigned.len()]);
        out.push_str(int_part);
        if scale > 0 {
            out.push('.');
            out.push_str(frac_part);
            out.extend(std::iter::repeat_n('0', scale as usize - frac_part.len()));
        }
        return Some(out);
    }
    normalise_decimal_exact(text, scale)
}

/// The general case of [`normalise_decimal`]: exponents, rounding, leading zeros.
pub(super) fn normalise_decimal_exact(text: &str, scale: u32) -> Option<String> {
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => (&unsigned[..at], unsigned[at + 1..].parse::<i64>().ok()?),
        None => (unsigned, 0),
    };
    let (int_part, frac_part) = match mantissa.split_once('.') {
        Some((i, f)) => (i, f),
        None => (mantissa, ""),
    };
    if (int_part.is_empty() && frac_part.is_empty())
        || !int_part.bytes().all(|b| b.is_ascii_digit())
        || !frac_part.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    // All digits, and the position of the decimal point within them.
    let mut digits: Vec<u8> = int_part
        .bytes()
        .chain(frac_part.bytes())
        .map(|b| b - b'0')
        .collect();
    let mut point = int_part.len() as i64 + exponent;
    if point < 0 {
        let pad = usize::try_from(-point).ok()?;
        digits.splice(0..0, std::iter::repeat_n(0, pad));
        point = 0;
    }
    let point = usize::try_from(point).ok()?;
    if digits.len() < point {
        digits.resize(point, 0);
    }
    let keep = point + scale as usize;
    let round_up = digits.get(keep).is_some_and(|d| *d >= 5);
    digits.resize(keep, 0);
    if round_up {
        let mut i = keep;
        loop {
            if i == 0 {
                digits.insert(0, 1);
                break;
            }
            i -= 1;
            if digits[i] == 9 {
                digits[i] = 0;
            } else {
                digits[i] += 1;
                break;
            }
        }
    }
    let point = digits.len() - scale as usize;
    let int_digits: String = digits[..point]
        .iter()
        .map(|d| char::from(b'0' + d))
        .collect::<String>()
        .trim_start_matches('0')
        .to_string();
    let int_digits = if int_digits.is_empty() {
        "0".to_string()
    } else {
        int_digits
    };
    let frac_digits: String = digits[point..]
        .iter()
        .map(|d| char::from(b'0' + d))
        .collect();
    let is_zero = digits.iter().all(|d| *d == 0);
    let sign = if negative && !is_zero { "-" } else { "" };
    Some(if scale == 0 {
        format!("{sign}{int_digits}")
    } else {
        format!("{sign}{int_digits}.{frac_digits}")
    })
}
