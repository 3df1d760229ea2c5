//! The area a radius or box search reads: Redis's estimate of the geohash precision for the
//! search's size, the cell holding the centre and its eight neighbours (those the bounding
//! box cannot reach dropped), each as a range of sorted set scores.

use crate::distance::{EARTH_RADIUS_IN_METERS, distance, lat_distance, to_degrees};
use crate::hash::{self, Cell, STEP_MAX, WGS84};

const MERCATOR_MAX: f64 = 20_037_726.37;

/// What a search covers around its centre.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Extent {
    /// A circle of this radius (in the search's unit).
    Radius(f64),
    /// An axis-aligned box of this width and height (in the search's unit).
    Box {
        /// East-west size.
        width: f64,
        /// North-south size.
        height: f64,
    },
}

/// A search area: a centre, an extent and the unit's size in meters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shape {
    /// Centre longitude.
    pub lon: f64,
    /// Centre latitude.
    pub lat: f64,
    /// The extent, in units.
    pub extent: Extent,
    /// Meters per unit (`m` 1, `km` 1000, `ft` 0.3048, `mi` 1609.34).
    pub to_meters: f64,
}

/// A point found inside a shape.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Found {
    /// Longitude decoded from the score.
    pub lon: f64,
    /// Latitude decoded from the score.
    pub lat: f64,
    /// Distance from the shape's centre, in meters.
    pub meters: f64,
}

fn steps_for_radius(mut meters: f64, lat: f64) -> u8 {
    if meters == 0.0 {
        return STEP_MAX;
    }
    let mut step: i32 = 1;
    while meters < MERCATOR_MAX {
        meters *= 2.0;
        step += 1;
    }
    step -= 2;
    if !(-66.0..=66.0).contains(&lat) {
        step -= 1;
        if !(-80.0..=80.0).contains(&lat) {
            step -= 1;
        }
    }
    step.clamp(1, i32::from(STEP_MAX)) as u8
}

impl Shape {
    /// Half the extent north-south and east-west, in meters.
    fn half_sizes(&self) -> (f64, f64) {
        match self.extent {
            Extent::Radius(r) => (self.to_meters * r, self.to_meters * r),
            Extent::Box { width, height } => (
                self.to_meters * (height / 2.0),
                self.to_meters * (width / 2.0),
            ),
        }
    }

    /// The bounding box: (min lon, min lat, max lon, max lat).
    fn bounds(&self) -> [f64; 4] {
        let (height, width) = self.half_sizes();
        let lat_delta = to_degrees(height / EARTH_RADIUS_IN_METERS);
        let radians = |degrees: f64| degrees * (std::f64::consts::PI / 180.0);
        let lon_delta_top =
            to_degrees(width / EARTH_RADIUS_IN_METERS / radians(self.lat + lat_delta).cos());
        let lon_delta_bottom =
            to_degrees(width / EARTH_RADIUS_IN_METERS / radians(self.lat - lat_delta).cos());
        let lon_delta = if self.lat < 0.0 {
            lon_delta_bottom
        } else {
            lon_delta_top
        };
        [
            self.lon - lon_delta,
            self.lat - lat_delta,
            self.lon + lon_delta,
            self.lat + lat_delta,
        ]
    }

    /// The radius that decides the precision: the circle's, or the box's half diagonal.
    fn reach_meters(&self) -> f64 {
        let reach = match self.extent {
            Extent::Radius(r) => r,
            Extent::Box { width, height } => {
                ((width / 2.0) * (width / 2.0) + (height / 2.0) * (height / 2.0)).sqrt()
            }
        };
        reach * self.to_meters
    }

    /// The cells to read, in Redis's order (centre, N, S, E, W, NE, NW, SE, SW), those the
    /// bounding box cannot reach or equal to the one before left out.
    fn cells(&self) -> Vec<Cell> {
        let [min_lon, min_lat, max_lon, max_lat] = self.bounds();
        let mut steps = steps_for_radius(self.reach_meters(), self.lat);
        let around = |steps: u8| {
            let center = hash::encode(WGS84, self.lon, self.lat, steps).unwrap_or(Cell {
                bits: 0,
                step: steps,
            });
            let neighbours = [
                (0, 1),
                (0, -1),
                (1, 0),
                (-1, 0),
                (1, 1),
                (-1, 1),
                (1, -1),
                (-1, -1),
            ]
            .map(|(dx, dy)| hash::neighbour(center, dx, dy));
            (center, neighbours)
        };
        let (mut center, mut neighbours) = around(steps);
        let area_of = |cell: Cell| hash::decode(WGS84, cell);
        // A neighbour too close to the edge of the search: one bit less precision.
        let [north, south, east, west] = [0, 1, 2, 3].map(|i| area_of(neighbours[i]));
        let too_fine = north.is_some_and(|a| a.lat.max < max_lat)
            || south.is_some_and(|a| a.lat.min > min_lat)
            || east.is_some_and(|a| a.lon.max < max_lon)
            || west.is_some_and(|a| a.lon.min > min_lon);
        if steps > 1 && too_fine {
            steps -= 1;
            (center, neighbours) = around(steps);
        }
        if steps >= 2
            && let Some(area) = area_of(center)
        {
            // Indices: 0 N, 1 S, 2 E, 3 W, 4 NE, 5 NW, 6 SE, 7 SW.
            let mut drop =
                |indices: [usize; 3]| indices.iter().for_each(|&i| neighbours[i] = Cell::ZERO);
            if area.lat.min < min_lat {
                drop([1, 7, 6]);
            }
            if area.lat.max > max_lat {
                drop([0, 4, 5]);
            }
            if area.lon.min < min_lon {
                drop([3, 7, 5]);
            }
            if area.lon.max > max_lon {
                drop([2, 6, 4]);
            }
        }
        // Huge searches make neighbours repeat: a cell equal to the last one read is skipped,
        // except after the centre (Redis compares from the first neighbour read on).
        let mut cells = Vec::with_capacity(9);
        let mut last_neighbour: Option<Cell> = None;
        if !center.is_zero() {
            cells.push(center);
        }
        for cell in neighbours {
            if cell.is_zero() || last_neighbour == Some(cell) {
                continue;
            }
            cells.push(cell);
            last_neighbour = Some(cell);
        }
        cells
    }

    /// The score ranges to read, `min <= score < max`, in the order Redis reads them.
    pub fn score_ranges(&self) -> Vec<(f64, f64)> {
        self.cells()
            .into_iter()
            .map(|cell| {
                let next = Cell {
                    bits: cell.bits.wrapping_add(1),
                    step: cell.step,
                };
                (cell.align52() as f64, next.align52() as f64)
            })
            .collect()
    }

    /// The point a score encodes, with its distance from the centre, if it lies inside.
    pub fn contains(&self, score: f64) -> Option<Found> {
        let (lon, lat) = crate::position(score);
        let meters = match self.extent {
            Extent::Radius(radius) => {
                let meters = distance(self.lon, self.lat, lon, lat);
                if meters > radius * self.to_meters {
                    return None;
                }
                meters
            }
            Extent::Box { width, height } => {
                let (width, height) = (width * self.to_meters, height * self.to_meters);
                if lat_distance(lat, self.lat) > height / 2.0 {
                    return None;
                }
                if distance(lon, lat, self.lon, lat) > width / 2.0 {
                    return None;
                }
                distance(self.lon, self.lat, lon, lat)
            }
        };
        Some(Found { lon, lat, meters })
    }
}
