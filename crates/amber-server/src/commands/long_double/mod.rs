//! The "long double" arithmetic of `INCRBYFLOAT`, `HINCRBYFLOAT` and blocking timeouts.
//!
//! On x86_64, where Redis's `long double` is the x87 80-bit format, Amber computes exactly as
//! Redis does ([`x87`]), so replies match digit for digit. Elsewhere (aarch64 Linux has a
//! 128-bit `long double` computed in software) a portable version works in `f64`: results
//! agree with Redis's whenever the 64-bit result rounds to the same 17 decimals, which covers
//! ordinary increments, but may differ in the last digits where x87's extra 11 bits of
//! precision show, and hexadecimal float literals are refused.

#[cfg(any(not(target_arch = "x86_64"), test))]
#[cfg_attr(test, allow(dead_code))] // on x86_64 only its tests use it
mod portable;
#[cfg(target_arch = "x86_64")]
pub(crate) mod x87;

#[cfg(not(target_arch = "x86_64"))]
pub(crate) use portable::LongDouble;
#[cfg(target_arch = "x86_64")]
pub(crate) use x87::LongDouble;
