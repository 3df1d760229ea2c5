//! Number parsing and formatting with Redis's exact rules.

/// Parses a signed 64-bit integer the way Redis's `string2ll` does: an optional `-`, digits,
/// no leading zeros (except `0` itself), no `+`, no spaces, no overflow.
pub fn parse_i64(bytes: &[u8]) -> Option<i64> {
    let (negative, digits) = match bytes {
        [] => return None,
        [b'0'] => return Some(0),
        [b'-', rest @ ..] => (true, rest),
        _ => (false, bytes),
    };
    match digits {
        [] | [b'0', ..] => return None,
        _ if digits.len() > 19 => return None,
        _ => {}
    }
    let mut value: u64 = 0;
    for &byte in digits {
        if !byte.is_ascii_digit() {
            return None;
        }
        value = value.checked_mul(10)?.checked_add(u64::from(byte - b'0'))?;
    }
    if negative {
        if value > i64::MAX as u64 + 1 {
            return None;
        }
        Some((value as i64).wrapping_neg())
    } else {
        i64::try_from(value).ok()
    }
}

/// C's `atoi` as Redis's parsers use it: leading blanks, a sign, then the digits up to the
/// first other byte (saturating at the `i64` range); 0 when there are none.
pub fn atoi(text: &[u8]) -> i64 {
    let text = text.trim_ascii_start();
    let (negative, digits) = match text.first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let value = digits
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .fold(0i64, |n, b| {
            n.saturating_mul(10).saturating_add(i64::from(b - b'0'))
        });
    if negative { -value } else { value }
}

/// Writes the decimal form of `value` into `buf` (room for `u64::MAX`) and returns it.
pub fn format_u64(mut value: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut pos = buf.len();
    loop {
        pos -= 1;
        buf[pos] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    &buf[pos..]
}

/// Writes the decimal form of `value` into `buf` (room for `i64::MIN`) and returns it.
pub fn format_i64(value: i64, buf: &mut [u8; 20]) -> &[u8] {
    // The magnitude has at most 19 digits, so the sign always fits before it.
    let digits = format_u64(value.unsigned_abs(), buf).len();
    let mut pos = buf.len() - digits;
    if value < 0 {
        pos -= 1;
        buf[pos] = b'-';
    }
    &buf[pos..]
}

/// Appends the decimal form of `value` to `out` without allocating.
pub(crate) fn push_i64(out: &mut bytes::BytesMut, value: i64) {
    out.extend_from_slice(format_i64(value, &mut [0; 20]));
}

/// Formats a double as C's `printf("%.17g")` does, with `inf`, `-inf` and `nan` spelt as Redis does.
/// This is how Redis 7.0 replies scores and other doubles.
pub fn format_double(value: f64) -> String {
    format_g(value, 17)
}

/// Formats a double as C's `printf("%.<precision>g")` does (precision 1 to 17), with `inf`,
/// `-inf` and `nan` spelt as Redis does. Lua's libraries format numbers with `%.14g`.
pub fn format_g(value: f64, precision: usize) -> String {
    if value.is_nan() {
        return "nan".to_string();
    }
    if value.is_infinite() {
        return if value > 0.0 { "inf" } else { "-inf" }.to_string();
    }
    let precision = precision.clamp(1, 17) as i32;
    // Integers with at most `precision` digits print as themselves: no float formatting.
    if value.fract() == 0.0 && value.abs() < 10f64.powi(precision) {
        if value == 0.0 && value.is_sign_negative() {
            return "-0".to_string();
        }
        return (value as i64).to_string();
    }
    // One correctly rounded conversion to `precision` significant digits; the fixed form that
    // %g picks for moderate exponents has exactly the same digits, so it is built from them.
    let scientific = format!("{:.*e}", (precision - 1) as usize, value.abs());
    let (mantissa, exponent) = match scientific.split_once('e') {
        Some((m, e)) => (m, e.parse::<i32>().unwrap_or(0)),
        None => (scientific.as_str(), 0),
    };
    let sign = if value.is_sign_negative() { "-" } else { "" };
    if !(-4..precision).contains(&exponent) {
        let mantissa = trim_fraction_zeros(mantissa);
        let exponent_sign = if exponent < 0 { '-' } else { '+' };
        return format!("{sign}{mantissa}e{exponent_sign}{:02}", exponent.abs());
    }
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let fixed = if exponent >= 0 {
        let split = exponent as usize + 1;
        format!("{}.{}", &digits[..split], &digits[split..])
    } else {
        format!("0.{}{digits}", "0".repeat((-exponent - 1) as usize))
    };
    format!("{sign}{}", trim_fraction_zeros(&fixed))
}

fn trim_fraction_zeros(text: &str) -> &str {
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.')
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_forms_cover_the_extremes() {
        let mut buf = [0u8; 20];
        assert_eq!(
            format_u64(u64::MAX, &mut buf),
            u64::MAX.to_string().as_bytes()
        );
        assert_eq!(format_u64(0, &mut buf), b"0");
        assert_eq!(
            format_i64(i64::MIN, &mut buf),
            i64::MIN.to_string().as_bytes()
        );
        assert_eq!(format_i64(-7, &mut buf), b"-7");
    }

    #[test]
    fn atoi_reads_as_c_does() {
        assert_eq!(atoi(b"12"), 12);
        assert_eq!(atoi(b"  -7x"), -7);
        assert_eq!(atoi(b"+3"), 3);
        assert_eq!(atoi(b"x1"), 0);
        assert_eq!(atoi(b"99999999999999999999999"), i64::MAX);
    }

    #[test]
    fn format_g_matches_c_printf() {
        assert_eq!(format_g(0.0003, 14), "0.0003");
        assert_eq!(format_g(1023.2, 14), "1023.2");
        assert_eq!(format_g(-5000.0, 14), "-5000");
        assert_eq!(format_g(1e20, 14), "1e+20");
        assert_eq!(format_g(1.5e-7, 14), "1.5e-07");
        assert_eq!(format_g(99999999999999.5, 14), "1e+14");
        assert_eq!(format_g(0.0, 14), "0");
        assert_eq!(format_g(-0.0, 17), "-0");
        assert_eq!(format_g(60.0, 17), "60");
        assert_eq!(format_g(-123456.0, 17), "-123456");
        assert_eq!(format_g(99999999999999999.0, 17), "1e+17");
        assert_eq!(format_g(12345678901234567.0, 17), "12345678901234568");
        assert_eq!(format_g(1e15, 14), "1e+15");
        assert_eq!(format_g(123456789012345.0, 14), "1.2345678901234e+14");
        assert_eq!(format_g(0.1, 17), "0.10000000000000001");
        assert_eq!(format_g(123456789012345678.0, 17), "1.2345678901234568e+17");
    }

    #[test]
    fn parses_like_string2ll() {
        assert_eq!(parse_i64(b"0"), Some(0));
        assert_eq!(parse_i64(b"-0"), None);
        assert_eq!(parse_i64(b"007"), None);
        assert_eq!(parse_i64(b"+7"), None);
        assert_eq!(parse_i64(b" 7"), None);
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_i64(b"9223372036854775808"), None);
        assert_eq!(parse_i64(b"-9223372036854775809"), None);
        assert_eq!(parse_i64(b""), None);
        assert_eq!(parse_i64(b"-"), None);
    }

    #[test]
    fn formats_like_printf_g17() {
        assert_eq!(format_double(1.1), "1.1000000000000001");
        assert_eq!(format_double(1.0), "1");
        assert_eq!(format_double(-2.5), "-2.5");
        assert_eq!(format_double(0.0), "0");
        assert_eq!(format_double(-0.0), "-0");
        assert_eq!(format_double(1e17), "1e+17");
        assert_eq!(format_double(1e16), "10000000000000000");
        assert_eq!(format_double(0.0001), "0.0001");
        assert_eq!(format_double(0.00001), "1.0000000000000001e-05");
        assert_eq!(format_double(f64::INFINITY), "inf");
        assert_eq!(format_double(f64::NEG_INFINITY), "-inf");
        assert_eq!(format_double(3.0e-300), "3.0000000000000002e-300");
    }

    #[test]
    fn pushes_integers() {
        for value in [0, 1, -1, 42, i64::MIN, i64::MAX] {
            let mut out = bytes::BytesMut::new();
            push_i64(&mut out, value);
            assert_eq!(&out[..], value.to_string().as_bytes());
        }
    }
}
