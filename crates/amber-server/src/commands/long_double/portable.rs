//! The portable "long double": `f64` arithmetic with Redis's parsing rules and output format
//! (see the parent module for how it differs from x87).

/// A number of `INCRBYFLOAT`, held as an `f64`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct LongDouble(f64);

impl LongDouble {
    /// Zero.
    pub(crate) const ZERO: LongDouble = LongDouble(0.0);

    /// Whether the value is infinite or not a number.
    pub(crate) fn is_finite(self) -> bool {
        self.0.is_finite()
    }

    /// Parses a number as Redis's `string2ld` accepts it: the whole string, no leading space,
    /// not NaN, an infinity only when written as one, no overflow or underflow.
    pub(crate) fn parse(bytes: &[u8]) -> Option<LongDouble> {
        if bytes.is_empty() || bytes.len() > 5 * 1024 || bytes[0].is_ascii_whitespace() {
            return None;
        }
        let text = std::str::from_utf8(bytes).ok()?;
        let value: f64 = text.parse().ok()?;
        let lower = text.to_ascii_lowercase();
        let unsigned = lower.trim_start_matches(['+', '-']);
        if unsigned.starts_with("nan") {
            return None;
        }
        if value.is_infinite() && !unsigned.starts_with("inf") {
            return None; // overflow (ERANGE)
        }
        if value == 0.0
            && unsigned
                .split(['e', 'E'])
                .next()?
                .bytes()
                .any(|b| b.is_ascii_digit() && b != b'0')
        {
            return None; // underflow (ERANGE)
        }
        Some(LongDouble(value))
    }

    /// `self + other`.
    pub(crate) fn plus(self, other: LongDouble) -> LongDouble {
        LongDouble(self.0 + other.0)
    }

    /// Formats as Redis's `ld2string(..., LD_STR_HUMAN)` shows it: plain decimal, no exponent,
    /// no trailing zeros, `-0` shown as `0`. With only 53 bits, the shortest decimal that reads
    /// back as the same `f64` is what the 17 decimals of a wider `long double` round to in the
    /// ordinary cases (`10.5 + 0.1` is `10.6`, not `10.59999999999999964`).
    pub(crate) fn to_human_string(self) -> String {
        if !self.is_finite() {
            return if self.0 < 0.0 { "-inf" } else { "inf" }.to_string();
        }
        if self.0 == 0.0 {
            return "0".to_string();
        }
        format!("{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::LongDouble;
    use crate::commands::long_double::x87;

    fn both(a: &str, b: &str) -> (Option<String>, Option<String>) {
        let portable = LongDouble::parse(a.as_bytes())
            .zip(LongDouble::parse(b.as_bytes()))
            .map(|(a, b)| a.plus(b).to_human_string());
        let exact = x87::LongDouble::parse(a.as_bytes())
            .zip(x87::LongDouble::parse(b.as_bytes()))
            .map(|(a, b)| a.plus(b).to_human_string());
        (portable, exact)
    }

    #[test]
    fn ordinary_increments_match_the_x87_results() {
        for (a, b) in [
            ("10.5", "0.1"),
            ("3", "1.5"),
            ("-7", "7"),
            ("1e10", "1"),
            ("5.0e3", "-2.0e2"),
            ("0", "-0"),
            ("inf", "1"),
        ] {
            let (portable, exact) = both(a, b);
            assert_eq!(portable, exact, "{a} + {b}");
        }
    }

    #[test]
    fn refusals_match_the_x87_parser() {
        for text in ["", " 1", "nan", "1x", "1e5000", "1e-5000", "abc"] {
            assert_eq!(
                LongDouble::parse(text.as_bytes()).is_none(),
                x87::LongDouble::parse(text.as_bytes()).is_none(),
                "{text:?}"
            );
        }
    }
}
