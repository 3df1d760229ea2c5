//! C's `%.<precision>g` formatting of doubles, which Lua's libraries use for numbers.

/// Formats `value` as C's `printf("%.<precision>g")` does.
pub(crate) fn format_g(value: f64, precision: usize) -> String {
    if value.is_nan() {
        return if value.is_sign_negative() {
            "-nan"
        } else {
            "nan"
        }
        .to_string();
    }
    if value.is_infinite() {
        return if value < 0.0 { "-inf" } else { "inf" }.to_string();
    }
    let precision = precision.max(1);
    if value == 0.0 {
        return if value.is_sign_negative() { "-0" } else { "0" }.to_string();
    }
    // The exponent C would print in %e form, after rounding to `precision` digits.
    let scientific = format!("{:.*e}", precision - 1, value);
    let (mantissa, exponent) = scientific
        .split_once('e')
        .unwrap_or((scientific.as_str(), "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if exponent < -4 || exponent >= precision as i32 {
        let mantissa = trim_zeros(mantissa);
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exponent.unsigned_abs())
    } else {
        let decimals = (precision as i32 - 1 - exponent).max(0) as usize;
        trim_zeros(&format!("{value:.decimals$}")).to_string()
    }
}

fn trim_zeros(text: &str) -> &str {
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.')
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::format_g;

    #[test]
    fn matches_c_printf() {
        assert_eq!(format_g(0.0003, 14), "0.0003");
        assert_eq!(format_g(1023.2, 14), "1023.2");
        assert_eq!(format_g(-5000.0, 14), "-5000");
        assert_eq!(format_g(1e20, 14), "1e+20");
        assert_eq!(format_g(1.5e-7, 14), "1.5e-07");
        assert_eq!(format_g(0.1, 17), "0.10000000000000001");
        assert_eq!(format_g(123456789012345678.0, 17), "1.2345678901234568e+17");
        assert_eq!(format_g(100.0, 17), "100");
        assert_eq!(format_g(99999999999999.5, 14), "1e+14");
    }
}
