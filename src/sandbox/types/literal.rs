//! SQL literals for bound parameter values (Snowflake `bindings`, Databricks
//! `parameters`): what the emulators splice into the statement text, so both
//! must be impossible to break out of.

/// A single-quoted SQL string literal: `'` doubled, `\` escaped (both platforms' dialects read backslash escapes).
pub fn sql_string_literal(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "''"))
}

/// True for a plain decimal number literal: `-12`, `3.5`, `.5`, `1e-3` (nothing else, so it is safe to splice into SQL).
pub fn is_number_literal(text: &str) -> bool {
    let body = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(at) => (&body[..at], Some(&body[at + 1..])),
        None => (body, None),
    };
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok =
        !(int_part.is_empty() && frac_part.is_empty()) && digits(int_part) && digits(frac_part);
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    mantissa_ok && exponent_ok
}
