//! x87 80-bit extended precision ("long double"), which Redis uses for `INCRBYFLOAT` and
//! `HINCRBYFLOAT` on x86_64. Matching Redis's replies digit for digit needs the same arithmetic:
//! parsing goes through the C library's `strtold` (via `sscanf`), addition through the x87 unit,
//! and formatting is Redis's `%.17Lf` with trailing zeros removed, done exactly in software.

use std::ffi::CString;

/// An 80-bit extended precision number, stored as its 10 bytes (little-endian).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LongDouble([u8; 16]);

impl LongDouble {
    /// Zero.
    pub(crate) const ZERO: LongDouble = LongDouble([0; 16]);

    fn mantissa(self) -> u64 {
        u64::from_le_bytes(self.0[..8].try_into().unwrap_or([0; 8]))
    }

    fn sign_exponent(self) -> u16 {
        u16::from_le_bytes([self.0[8], self.0[9]])
    }

    fn negative(self) -> bool {
        self.sign_exponent() & 0x8000 != 0
    }

    fn exponent(self) -> u16 {
        self.sign_exponent() & 0x7fff
    }

    /// Whether the value is infinite or not a number.
    pub(crate) fn is_finite(self) -> bool {
        self.exponent() != 0x7fff
    }

    /// Parses a number as Redis's `string2ld` accepts it: the whole string as `strtold` reads
    /// it, no leading space, not NaN, not out of range.
    pub(crate) fn parse(bytes: &[u8]) -> Option<LongDouble> {
        if bytes.is_empty() || bytes.len() > 5 * 1024 || bytes[0].is_ascii_whitespace() {
            return None;
        }
        let text = CString::new(bytes).ok()?;
        let mut value = LongDouble::ZERO;
        let mut consumed: nix::libc::c_int = 0;
        // SAFETY: "%Lf" writes one long double (10 bytes on x86_64, padded to 16) into `value`,
        // "%n" writes an int into `consumed`; both outlive the call.
        let converted = unsafe {
            nix::libc::sscanf(
                text.as_ptr(),
                c"%Lf%n".as_ptr(),
                value.0.as_mut_ptr(),
                &mut consumed as *mut nix::libc::c_int,
            )
        };
        if converted != 1 || consumed as usize != bytes.len() {
            return None;
        }
        let lower = String::from_utf8_lossy(bytes).to_ascii_lowercase();
        let literal_infinity = lower.trim_start_matches(['+', '-']).starts_with("inf");
        if !value.is_finite() {
            // NaN is refused; an infinity is refused unless it was written as one (ERANGE).
            return (value.mantissa() << 1 == 0 && literal_infinity).then_some(value);
        }
        if value.mantissa() == 0 && has_nonzero_digit(&lower) {
            return None; // underflow (ERANGE)
        }
        Some(value)
    }

    /// `self + other`, rounded by the x87 unit as C's long double addition is.
    pub(crate) fn plus(self, other: LongDouble) -> LongDouble {
        let mut sum = LongDouble::ZERO;
        // SAFETY: loads two 80-bit values from memory we own, adds them on the x87 stack and
        // stores the result into `sum`; the x87 registers used are declared clobbered.
        unsafe {
            std::arch::asm!(
                "fld tbyte ptr [{a}]",
                "fld tbyte ptr [{b}]",
                "faddp st(1), st",
                "fstp tbyte ptr [{out}]",
                a = in(reg) self.0.as_ptr(),
                b = in(reg) other.0.as_ptr(),
                out = in(reg) sum.0.as_mut_ptr(),
                out("st(0)") _, out("st(1)") _, out("st(2)") _, out("st(3)") _,
                out("st(4)") _, out("st(5)") _, out("st(6)") _, out("st(7)") _,
                options(nostack),
            );
        }
        sum
    }

    /// Formats as Redis's `ld2string(..., LD_STR_HUMAN)`: `%.17Lf`, trailing zeros and a
    /// trailing dot removed, `-0` shown as `0`.
    pub(crate) fn to_human_string(self) -> String {
        if !self.is_finite() {
            return if self.negative() { "-inf" } else { "inf" }.to_string();
        }
        let digits = self.scaled_decimal(17);
        let mut text = if digits.len() > 17 {
            let (int, frac) = digits.split_at(digits.len() - 17);
            format!("{int}.{frac}")
        } else {
            format!("0.{:0>17}", digits)
        };
        if self.negative() {
            text.insert(0, '-');
        }
        let trimmed = text.trim_end_matches('0').trim_end_matches('.').to_string();
        if trimmed == "-0" {
            "0".to_string()
        } else {
            trimmed
        }
    }

    /// `round(|self| * 10^decimals)` in decimal, ties to even (as glibc's printf rounds).
    fn scaled_decimal(self, decimals: u32) -> String {
        let mantissa = self.mantissa();
        // value = mantissa * 2^(exponent - 16383 - 63); denormals use exponent 1.
        let exponent = i64::from(self.exponent().max(1)) - 16383 - 63;
        let mut number = BigUint::from_u64(mantissa);
        for _ in 0..decimals {
            number.mul_small(10);
        }
        if exponent >= 0 {
            number.shl(exponent as u32);
        } else {
            number.shr_round_even((-exponent) as u32);
        }
        number.to_decimal()
    }
}

fn has_nonzero_digit(text: &str) -> bool {
    let mantissa = text.split(['e', 'p']).next().unwrap_or("");
    let mantissa = mantissa
        .trim_start_matches(['+', '-'])
        .trim_start_matches("0x");
    mantissa
        .chars()
        .any(|c| c.is_ascii_alphanumeric() && c != '0')
}

/// Just enough unsigned big-integer arithmetic for exact decimal formatting.
struct BigUint {
    limbs: Vec<u32>,
}

impl BigUint {
    fn from_u64(value: u64) -> BigUint {
        BigUint {
            limbs: vec![value as u32, (value >> 32) as u32],
        }
    }

    fn mul_small(&mut self, factor: u32) {
        let mut carry = 0u64;
        for limb in &mut self.limbs {
            let product = u64::from(*limb) * u64::from(factor) + carry;
            *limb = product as u32;
            carry = product >> 32;
        }
        if carry > 0 {
            self.limbs.push(carry as u32);
        }
    }

    fn bit(&self, index: u32) -> bool {
        self.limbs
            .get((index / 32) as usize)
            .is_some_and(|limb| limb >> (index % 32) & 1 == 1)
    }

    fn any_bit_below(&self, index: u32) -> bool {
        (0..index).any(|i| self.bit(i))
    }

    fn shl(&mut self, bits: u32) {
        let words = (bits / 32) as usize;
        let rest = bits % 32;
        let mut shifted = vec![0u32; words];
        let mut carry = 0u32;
        for &limb in &self.limbs {
            shifted.push(if rest == 0 {
                limb
            } else {
                (limb << rest) | carry
            });
            carry = if rest == 0 { 0 } else { limb >> (32 - rest) };
        }
        shifted.push(carry);
        self.limbs = shifted;
    }

    /// Divides by `2^bits`, rounding to nearest with ties to even.
    fn shr_round_even(&mut self, bits: u32) {
        let half = bits.checked_sub(1).map(|b| self.bit(b)).unwrap_or(false);
        let sticky = bits >= 2 && self.any_bit_below(bits - 1);
        let words = (bits / 32) as usize;
        let rest = bits % 32;
        let mut shifted: Vec<u32> = Vec::new();
        for i in words..self.limbs.len() {
            let low = self.limbs[i] >> rest;
            let high = if rest == 0 {
                0
            } else {
                self.limbs.get(i + 1).map_or(0, |h| h << (32 - rest))
            };
            shifted.push(low | high);
        }
        self.limbs = shifted;
        let odd = self.bit(0);
        if half && (sticky || odd) {
            self.add_one();
        }
    }

    fn add_one(&mut self) {
        for limb in &mut self.limbs {
            let (value, overflow) = limb.overflowing_add(1);
            *limb = value;
            if !overflow {
                return;
            }
        }
        self.limbs.push(1);
    }

    fn to_decimal(&self) -> String {
        let mut limbs = self.limbs.clone();
        let mut chunks = Vec::new();
        while limbs.iter().any(|&l| l != 0) {
            let mut remainder = 0u64;
            for limb in limbs.iter_mut().rev() {
                let current = (remainder << 32) | u64::from(*limb);
                *limb = (current / 1_000_000_000) as u32;
                remainder = current % 1_000_000_000;
            }
            chunks.push(remainder as u32);
        }
        let Some((last, rest)) = chunks.split_last() else {
            return "0".to_string();
        };
        let mut text = last.to_string();
        for chunk in rest.iter().rev() {
            text.push_str(&format!("{chunk:09}"));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::LongDouble;

    fn incr(a: &str, b: &str) -> String {
        let a = LongDouble::parse(a.as_bytes()).unwrap();
        let b = LongDouble::parse(b.as_bytes()).unwrap();
        a.plus(b).to_human_string()
    }

    #[test]
    fn matches_redis_incrbyfloat() {
        // Replies observed from Redis 7.0.15.
        assert_eq!(incr("10.5", "0.1"), "10.6");
        assert_eq!(incr("5.6", "1500"), "1505.59999999999999998");
        assert_eq!(incr("0", "9223372036854775807"), "9223372036854775807");
        assert_eq!(incr("3", "0"), "3");
        assert_eq!(incr("-1.5", "1.5"), "0");
        assert_eq!(incr("5.0e3", "2.0e2"), "5200");
    }

    #[test]
    fn parses_strictly() {
        for bad in ["", " 1", "1 ", "abc", "nan", "1e99999", "1x"] {
            assert!(
                LongDouble::parse(bad.as_bytes()).is_none(),
                "{bad:?} must be refused"
            );
        }
        assert!(LongDouble::parse(b"inf").is_some_and(|v| !v.is_finite()));
        assert!(LongDouble::parse(b"0x10").is_some());
    }
}

#[cfg(test)]
mod printf_tests {
    use proptest::prelude::*;

    fn c_g17(value: f64) -> String {
        let mut buf = [0u8; 64];
        // SAFETY: snprintf writes at most buf.len() bytes, NUL included, for one double argument.
        let n = unsafe {
            nix::libc::snprintf(buf.as_mut_ptr().cast(), buf.len(), c"%.17g".as_ptr(), value)
        };
        String::from_utf8_lossy(&buf[..n.max(0) as usize]).into_owned()
    }

    proptest! {
        /// The reply formatting of doubles agrees with the C library's `%.17g` for any bits.
        #[test]
        fn format_double_is_printf_g17(bits in any::<u64>()) {
            let value = f64::from_bits(bits);
            prop_assume!(value.is_finite());
            prop_assert_eq!(amber_protocol::format_double(value), c_g17(value));
        }
    }
}
