//! Redis's GEO arithmetic.
//!
//! A GEO set is a sorted set whose scores are 52-bit geohashes: 26 bits of latitude (in
//! Redis's range of ±85.05112878 degrees) interleaved with 26 bits of longitude. This crate
//! turns coordinates into those scores and back, measures haversine distances, formats them
//! as Redis does, and works out which score ranges a radius or box search must read. Every
//! step repeats Redis's floating-point operations, so scores, positions and distances are
//! the same bits as Redis's.

#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod distance;
mod hash;
mod search;

pub use distance::{EARTH_RADIUS_IN_METERS, distance};
pub use hash::{LAT_MAX, LAT_MIN, LON_MAX, LON_MIN, STEP_MAX};
pub use search::{Extent, Found, Shape};

use hash::{Cell, Range, WGS84};

/// Whether a longitude, latitude pair can be stored.
pub fn valid_position(lon: f64, lat: f64) -> bool {
    (LON_MIN..=LON_MAX).contains(&lon) && (LAT_MIN..=LAT_MAX).contains(&lat)
}

/// The sorted set score of a position, or `None` outside the limits.
pub fn score(lon: f64, lat: f64) -> Option<u64> {
    hash::encode(WGS84, lon, lat, STEP_MAX).map(Cell::align52)
}

/// The position (longitude, latitude) a score stands for: the centre of its cell.
pub fn position(score: f64) -> (f64, f64) {
    // As C's cast: the integer part, saturating.
    let cell = Cell {
        bits: score as u64,
        step: STEP_MAX,
    };
    hash::decode(WGS84, cell).map_or((0.0, 0.0), hash::center)
}

/// The standard 11-character geohash of a score (`GEOHASH`): the position re-encoded over
/// the usual ±90 degree latitude range, the last character always `0`.
pub fn geohash_string(score: f64) -> String {
    const ALPHABET: &[u8; 32] = b"0123456789bcdefghjkmnpqrstuvwxyz";
    let (lon, lat) = position(score);
    let standard = (
        Range {
            min: -180.0,
            max: 180.0,
        },
        Range {
            min: -90.0,
            max: 90.0,
        },
    );
    let bits = hash::encode(standard, lon, lat, STEP_MAX).map_or(0, |cell| cell.bits);
    (0..11)
        .map(|i| {
            let index = if i == 10 {
                0
            } else {
                ((bits >> (52 - (i + 1) * 5)) & 0x1f) as usize
            };
            char::from(ALPHABET[index])
        })
        .collect()
}

/// A distance as Redis replies it: rounded to 4 decimals (ties to even), always 4 shown.
pub fn format_distance(value: f64) -> String {
    if value == 0.0 {
        return "0.0000".into();
    }
    let scaled = (value * 10_000.0).round_ties_even() as i64;
    let sign = if scaled < 0 { "-" } else { "" };
    let magnitude = scaled.unsigned_abs();
    format!("{sign}{}.{:04}", magnitude / 10_000, magnitude % 10_000)
}

/// Meters per unit for `m`, `km`, `ft` and `mi` (any case), as Redis converts them.
pub fn unit_to_meters(unit: &[u8]) -> Option<f64> {
    [("m", 1.0), ("km", 1000.0), ("ft", 0.3048), ("mi", 1609.34)]
        .iter()
        .find(|(name, _)| unit.eq_ignore_ascii_case(name.as_bytes()))
        .map(|&(_, meters)| meters)
}

#[cfg(test)]
mod tests;
