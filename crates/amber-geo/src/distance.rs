//! Great-circle distances, as Redis computes them: the haversine formula on a sphere of
//! Earth's quadratic mean radius.

/// Earth's quadratic mean radius for WGS-84, in meters.
pub const EARTH_RADIUS_IN_METERS: f64 = 6_372_797.560_856;

fn to_radians(degrees: f64) -> f64 {
    degrees * (std::f64::consts::PI / 180.0)
}

pub(crate) fn to_degrees(radians: f64) -> f64 {
    radians / (std::f64::consts::PI / 180.0)
}

/// The distance along a meridian between two latitudes.
pub(crate) fn lat_distance(lat1: f64, lat2: f64) -> f64 {
    EARTH_RADIUS_IN_METERS * (to_radians(lat2) - to_radians(lat1)).abs()
}

/// The distance in meters between two points given as longitude, latitude in degrees.
pub fn distance(lon1: f64, lat1: f64, lon2: f64, lat2: f64) -> f64 {
    let lon1r = to_radians(lon1);
    let lon2r = to_radians(lon2);
    let v = ((lon2r - lon1r) / 2.0).sin();
    // On one meridian the haversine reduces to the latitude difference.
    if v == 0.0 {
        return lat_distance(lat1, lat2);
    }
    let lat1r = to_radians(lat1);
    let lat2r = to_radians(lat2);
    let u = ((lat2r - lat1r) / 2.0).sin();
    let a = u * u + lat1r.cos() * lat2r.cos() * v * v;
    2.0 * EARTH_RADIUS_IN_METERS * a.sqrt().asin()
}
