//! Geohash cells: latitude and longitude offsets interleaved bit by bit (latitude in the even
//! bits), decoded back to the cell's bounds, and the eight neighbouring cells.

/// Redis's latitude limits (EPSG:900913): geohashing stops short of the poles.
pub const LAT_MIN: f64 = -85.051_128_78;
/// See [`LAT_MIN`].
pub const LAT_MAX: f64 = 85.051_128_78;
/// Longitude limits.
pub const LON_MIN: f64 = -180.0;
/// See [`LON_MIN`].
pub const LON_MAX: f64 = 180.0;
/// Bits per coordinate in a stored score (26 + 26 = 52, exact in a double).
pub const STEP_MAX: u8 = 26;

/// A range of one coordinate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Range {
    pub(crate) min: f64,
    pub(crate) max: f64,
}

/// The coordinate ranges scores are encoded in.
pub(crate) const WGS84: (Range, Range) = (
    Range {
        min: LON_MIN,
        max: LON_MAX,
    },
    Range {
        min: LAT_MIN,
        max: LAT_MAX,
    },
);

/// A geohash of `step` bits per coordinate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cell {
    pub(crate) bits: u64,
    pub(crate) step: u8,
}

impl Cell {
    /// Redis's "zero" hash, used to drop a neighbour from a search.
    pub(crate) const ZERO: Cell = Cell { bits: 0, step: 0 };

    pub(crate) fn is_zero(self) -> bool {
        self.bits == 0 && self.step == 0
    }

    /// The hash shifted to 52 bits: the lowest score inside the cell.
    pub(crate) fn align52(self) -> u64 {
        self.bits << (52 - u32::from(self.step) * 2)
    }
}

/// A cell's bounds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Area {
    pub(crate) lon: Range,
    pub(crate) lat: Range,
}

fn interleave(x: u32, y: u32) -> u64 {
    const B: [u64; 5] = [
        0x5555_5555_5555_5555,
        0x3333_3333_3333_3333,
        0x0F0F_0F0F_0F0F_0F0F,
        0x00FF_00FF_00FF_00FF,
        0x0000_FFFF_0000_FFFF,
    ];
    const S: [u32; 5] = [1, 2, 4, 8, 16];
    let (mut x, mut y) = (u64::from(x), u64::from(y));
    for i in (0..5).rev() {
        x = (x | (x << S[i])) & B[i];
        y = (y | (y << S[i])) & B[i];
    }
    x | (y << 1)
}

fn deinterleave(interleaved: u64) -> u64 {
    const B: [u64; 6] = [
        0x5555_5555_5555_5555,
        0x3333_3333_3333_3333,
        0x0F0F_0F0F_0F0F_0F0F,
        0x00FF_00FF_00FF_00FF,
        0x0000_FFFF_0000_FFFF,
        0x0000_0000_FFFF_FFFF,
    ];
    const S: [u32; 6] = [0, 1, 2, 4, 8, 16];
    let mut x = interleaved;
    let mut y = interleaved >> 1;
    for i in 0..6 {
        x = (x | (x >> S[i])) & B[i];
        y = (y | (y >> S[i])) & B[i];
    }
    x | (y << 32)
}

/// The cell of `step` bits holding the point, in the given ranges; `None` outside them (or
/// outside Redis's WGS84 limits).
pub(crate) fn encode(ranges: (Range, Range), lon: f64, lat: f64, step: u8) -> Option<Cell> {
    let (lon_range, lat_range) = ranges;
    if step == 0 || step > 32 {
        return None;
    }
    if !(LON_MIN..=LON_MAX).contains(&lon) || !(LAT_MIN..=LAT_MAX).contains(&lat) {
        return None;
    }
    if lat < lat_range.min || lat > lat_range.max || lon < lon_range.min || lon > lon_range.max {
        return None;
    }
    let scale = (1u64 << step) as f64;
    let lat_offset = (lat - lat_range.min) / (lat_range.max - lat_range.min) * scale;
    let lon_offset = (lon - lon_range.min) / (lon_range.max - lon_range.min) * scale;
    Some(Cell {
        bits: interleave(lat_offset as u32, lon_offset as u32),
        step,
    })
}

/// The bounds of a cell; `None` for the zero hash.
pub(crate) fn decode(ranges: (Range, Range), cell: Cell) -> Option<Area> {
    if cell.is_zero() {
        return None;
    }
    let (lon_range, lat_range) = ranges;
    let separated = deinterleave(cell.bits);
    let lat_scale = lat_range.max - lat_range.min;
    let lon_scale = lon_range.max - lon_range.min;
    let lat_cell = separated as u32;
    let lon_cell = (separated >> 32) as u32;
    let cells = (1u64 << cell.step) as f64;
    let at = |range: Range, scale: f64, n: u32| range.min + (f64::from(n) / cells) * scale;
    Some(Area {
        lat: Range {
            min: at(lat_range, lat_scale, lat_cell),
            max: at(lat_range, lat_scale, lat_cell.wrapping_add(1)),
        },
        lon: Range {
            min: at(lon_range, lon_scale, lon_cell),
            max: at(lon_range, lon_scale, lon_cell.wrapping_add(1)),
        },
    })
}

/// The centre of an area, clamped to the WGS84 limits, as (longitude, latitude).
pub(crate) fn center(area: Area) -> (f64, f64) {
    let lon = ((area.lon.min + area.lon.max) / 2.0).clamp(LON_MIN, LON_MAX);
    let lat = ((area.lat.min + area.lat.max) / 2.0).clamp(LAT_MIN, LAT_MAX);
    (lon, lat)
}

/// Moves `cell` one step along the coordinate whose bits `mask` selects (odd bits:
/// longitude, even bits: latitude), in `direction`'s sign, wrapping around.
fn step(cell: &mut Cell, direction: i8, mask: u64) {
    if direction == 0 {
        return;
    }
    let shift = 64 - u32::from(cell.step) * 2;
    let moving = cell.bits & mask;
    let other = cell.bits & !mask;
    // The other coordinate's bits, set, so that a carry skips over them.
    let filler = !mask >> shift;
    let moved = if direction > 0 {
        moving.wrapping_add(filler + 1)
    } else {
        (moving | filler).wrapping_sub(filler + 1)
    };
    cell.bits = (moved & (mask >> shift)) | other;
}

/// The neighbour `dx` cells east and `dy` cells north of `cell`.
pub(crate) fn neighbour(cell: Cell, dx: i8, dy: i8) -> Cell {
    let mut moved = cell;
    step(&mut moved, dx, 0xaaaa_aaaa_aaaa_aaaa);
    step(&mut moved, dy, 0x5555_5555_5555_5555);
    moved
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interleaving_round_trips() {
        for (x, y) in [
            (0u32, 0u32),
            (1, 0),
            (0, 1),
            (0x3ff_ffff, 0x155_5555),
            (u32::MAX, 7),
        ] {
            let separated = deinterleave(interleave(x, y));
            assert_eq!((separated as u32, (separated >> 32) as u32), (x, y));
        }
    }
}
