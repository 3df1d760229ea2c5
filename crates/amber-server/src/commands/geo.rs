//! GEO commands: positions stored as sorted set scores (see `amber_geo`), `GEOADD` run as the
//! `ZADD` Redis turns it into, and the radius and box searches of `GEOSEARCH`,
//! `GEOSEARCHSTORE` and the deprecated `GEORADIUS*` forms.

use amber_geo::{Extent, Shape};
use amber_keyspace::{Entry, Value, ZsetValue};
use amber_protocol::Protocol;
use bytes::Bytes;

use super::strings::parse_float;
use super::zsets::{self, read_zset};
use super::{Ctx, Replied, errors, is};
use crate::notify;

const BAD_UNIT: &str = "ERR unsupported unit provided. please use M, KM, FT, MI";
const NO_MEMBER: &str = "ERR could not decode requested zset member";

/// A double argument, with Redis's generic error or the given one.
fn double_arg(ctx: &mut Ctx, arg: &[u8], error: &str) -> Result<f64, Replied> {
    parse_float(arg)
        .ok_or_else(|| ctx.error(error))
        .map_err(|()| Replied)
}

/// `longitude latitude` at `args[0..2]`, checked against the limits.
fn position_args(ctx: &mut Ctx, args: &[Bytes]) -> Result<(f64, f64), Replied> {
    let lon = double_arg(ctx, &args[0], errors::NOT_FLOAT)?;
    let lat = double_arg(ctx, &args[1], errors::NOT_FLOAT)?;
    if !amber_geo::valid_position(lon, lat) {
        let message = format!("ERR invalid longitude,latitude pair {lon:.6},{lat:.6}");
        ctx.error(&message);
        return Err(Replied);
    }
    Ok((lon, lat))
}

fn unit_arg(ctx: &mut Ctx, arg: &[u8]) -> Result<f64, Replied> {
    amber_geo::unit_to_meters(arg)
        .ok_or_else(|| ctx.error(BAD_UNIT))
        .map_err(|()| Replied)
}

/// `radius unit` at `args[0..2]`: the radius and meters per unit.
fn radius_args(ctx: &mut Ctx, args: &[Bytes]) -> Result<(f64, f64), Replied> {
    let radius = double_arg(ctx, &args[0], "ERR need numeric radius")?;
    if radius < 0.0 {
        ctx.error("ERR radius cannot be negative");
        return Err(Replied);
    }
    Ok((radius, unit_arg(ctx, &args[1])?))
}

/// `width height unit` at `args[0..3]`.
fn box_args(ctx: &mut Ctx, args: &[Bytes]) -> Result<(f64, f64, f64), Replied> {
    let width = double_arg(ctx, &args[0], "ERR need numeric width")?;
    let height = double_arg(ctx, &args[1], "ERR need numeric height")?;
    if height < 0.0 || width < 0.0 {
        ctx.error("ERR height or width cannot be negative");
        return Err(Replied);
    }
    Ok((width, height, unit_arg(ctx, &args[2])?))
}

/// The score of `member` in the sorted set under `key`, without counting a hit or miss.
fn member_score(ctx: &mut Ctx, key: &[u8], member: &[u8]) -> Option<f64> {
    ctx.lookup_quietly(key, |value| match value {
        Value::Zset(zset) => zset.score(member),
        _ => None,
    })
    .flatten()
}

/// Writes a coordinate as Redis's `addReplyHumanLongDouble`: `%.17Lf` without trailing
/// zeros, a bulk string in RESP2 and a double in RESP3.
fn coordinate(ctx: &mut Ctx, value: f64) {
    let mut text = format!("{value:.17}");
    if text.contains('.') {
        text.truncate(text.trim_end_matches('0').trim_end_matches('.').len());
    }
    if text == "-0" {
        text = "0".into();
    }
    match ctx.out.protocol() {
        Protocol::Resp2 => ctx.out.bulk(text.as_bytes()),
        Protocol::Resp3 => ctx.out.raw(format!(",{text}\r\n").as_bytes()),
    }
}

/// `GEOADD key [NX|XX] [CH] longitude latitude member [...]`, run as `ZADD` with each
/// position's score, and recorded as that `ZADD`.
pub(super) fn geoadd(ctx: &mut Ctx, args: &[Bytes]) {
    let mut first = 2;
    let (mut nx, mut xx) = (false, false);
    while first < args.len() {
        let option = &args[first];
        if is(option, "nx") {
            nx = true;
        } else if is(option, "xx") {
            xx = true;
        } else if !is(option, "ch") {
            break;
        }
        first += 1;
    }
    if !(args.len() - first).is_multiple_of(3) || (nx && xx) {
        ctx.error(errors::SYNTAX);
        return;
    }
    let mut zadd: Vec<Bytes> = Vec::with_capacity(first + (args.len() - first) / 3 * 2);
    zadd.push(Bytes::from_static(b"zadd"));
    zadd.extend_from_slice(&args[1..first]);
    for triple in args[first..].chunks_exact(3) {
        let Ok((lon, lat)) = position_args(ctx, &triple[..2]) else {
            return;
        };
        let score = amber_geo::score(lon, lat).unwrap_or(0);
        zadd.push(Bytes::from(score.to_string()));
        zadd.push(triple[2].clone());
    }
    zsets::zadd(ctx, &zadd);
    ctx.propagate_as(vec![zadd]);
}

/// The scores of `args[2..]` in the sorted set `args[1]` (`None` for a missing member or
/// key); `Err` once WRONGTYPE is replied.
fn member_scores(ctx: &mut Ctx, args: &[Bytes]) -> Result<Vec<Option<f64>>, Replied> {
    let members = &args[2..];
    let scores = read_zset(ctx, &args[1], |zset| {
        members.iter().map(|m| zset.score(m)).collect::<Vec<_>>()
    })?;
    Ok(scores.unwrap_or_else(|| vec![None; members.len()]))
}

/// `GEOHASH key [member ...]`
pub(super) fn geohash(ctx: &mut Ctx, args: &[Bytes]) {
    let Ok(scores) = member_scores(ctx, args) else {
        return;
    };
    ctx.out.array(scores.len());
    for score in scores {
        match score {
            Some(score) => ctx.out.bulk(amber_geo::geohash_string(score).as_bytes()),
            None => ctx.out.null(),
        }
    }
}

/// `GEOPOS key [member ...]`
pub(super) fn geopos(ctx: &mut Ctx, args: &[Bytes]) {
    let Ok(scores) = member_scores(ctx, args) else {
        return;
    };
    ctx.out.array(scores.len());
    for score in scores {
        match score {
            Some(score) => {
                let (lon, lat) = amber_geo::position(score);
                ctx.out.array(2);
                coordinate(ctx, lon);
                coordinate(ctx, lat);
            }
            None => ctx.out.null_array(),
        }
    }
}

/// `GEODIST key member1 member2 [M|KM|FT|MI]`
pub(super) fn geodist(ctx: &mut Ctx, args: &[Bytes]) {
    let to_meters = match args.len() {
        4 => 1.0,
        5 => match unit_arg(ctx, &args[4]) {
            Ok(meters) => meters,
            Err(Replied) => return,
        },
        _ => return ctx.error(errors::SYNTAX),
    };
    let Ok(scores) = read_zset(ctx, &args[1], |zset| {
        (zset.score(&args[2]), zset.score(&args[3]))
    }) else {
        return;
    };
    match scores {
        Some((Some(a), Some(b))) => {
            let (a, b) = (amber_geo::position(a), amber_geo::position(b));
            let meters = amber_geo::distance(a.0, a.1, b.0, b.1);
            ctx.out
                .bulk(amber_geo::format_distance(meters / to_meters).as_bytes());
        }
        _ => ctx.out.null(),
    }
}

/// Which search command runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum SearchKind {
    /// `GEORADIUS[_RO] key longitude latitude radius unit ...`
    AroundPoint { store_allowed: bool },
    /// `GEORADIUSBYMEMBER[_RO] key member radius unit ...`
    AroundMember { store_allowed: bool },
    /// `GEOSEARCH key ...`
    Area,
    /// `GEOSEARCHSTORE destination key ...`
    AreaStore,
}

impl SearchKind {
    fn store_allowed(self) -> bool {
        matches!(
            self,
            SearchKind::AroundPoint {
                store_allowed: true
            } | SearchKind::AroundMember {
                store_allowed: true
            }
        )
    }

    fn is_search(self) -> bool {
        matches!(self, SearchKind::Area | SearchKind::AreaStore)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Order {
    None,
    Asc,
    Desc,
}

/// Everything a search command asked for.
struct Request {
    center: Option<(f64, f64)>,
    extent: Option<(Extent, f64)>,
    from_member: bool,
    from_lonlat: bool,
    with_dist: bool,
    with_hash: bool,
    with_coord: bool,
    any: bool,
    order: Order,
    count: usize,
    store: Option<Bytes>,
    store_dist: bool,
}

/// One member found by a search.
struct Hit {
    member: Vec<u8>,
    score: f64,
    lon: f64,
    lat: f64,
    meters: f64,
}

pub(super) fn georadius(ctx: &mut Ctx, args: &[Bytes]) {
    search(
        ctx,
        args,
        SearchKind::AroundPoint {
            store_allowed: true,
        },
    );
}

pub(super) fn georadius_ro(ctx: &mut Ctx, args: &[Bytes]) {
    search(
        ctx,
        args,
        SearchKind::AroundPoint {
            store_allowed: false,
        },
    );
}

pub(super) fn georadiusbymember(ctx: &mut Ctx, args: &[Bytes]) {
    search(
        ctx,
        args,
        SearchKind::AroundMember {
            store_allowed: true,
        },
    );
}

pub(super) fn georadiusbymember_ro(ctx: &mut Ctx, args: &[Bytes]) {
    search(
        ctx,
        args,
        SearchKind::AroundMember {
            store_allowed: false,
        },
    );
}

pub(super) fn geosearch(ctx: &mut Ctx, args: &[Bytes]) {
    search(ctx, args, SearchKind::Area);
}

pub(super) fn geosearchstore(ctx: &mut Ctx, args: &[Bytes]) {
    search(ctx, args, SearchKind::AreaStore);
}

fn search(ctx: &mut Ctx, args: &[Bytes], kind: SearchKind) {
    let key_index = if kind == SearchKind::AreaStore { 2 } else { 1 };
    let key = &args[key_index];
    let Ok(exists) = read_zset(ctx, key, |_| ()) else {
        return;
    };
    let exists = exists.is_some();
    let Ok(request) = parse_request(ctx, args, kind, exists) else {
        return;
    };
    if !exists {
        match &request.store {
            Some(destination) => {
                if ctx.db().remove(destination).is_some() {
                    ctx.modified_only(vec![destination.clone()]);
                    ctx.notify(notify::GENERIC, "del", destination);
                    ctx.dirty(1);
                }
                ctx.out.integer(0);
            }
            None => ctx.out.array(0),
        }
        return;
    }
    let (Some((lon, lat)), Some((extent, to_meters))) = (request.center, request.extent) else {
        return ctx.out.array(0);
    };
    let shape = Shape {
        lon,
        lat,
        extent,
        to_meters,
    };
    let limit = if request.any { request.count } else { 0 };
    let mut hits = ctx
        .lookup_quietly(key, |value| match value {
            Value::Zset(zset) => find(zset, &shape, limit),
            _ => Vec::new(),
        })
        .unwrap_or_default();
    let mut order = request.order;
    if request.count != 0 && order == Order::None && !request.any {
        order = Order::Asc;
    }
    // Stable, as glibc's qsort (a merge sort) that Redis calls.
    match order {
        Order::Asc => hits.sort_by(|a, b| a.meters.total_cmp(&b.meters)),
        Order::Desc => hits.sort_by(|a, b| b.meters.total_cmp(&a.meters)),
        Order::None => {}
    }
    if request.count != 0 {
        hits.truncate(request.count);
    }
    match request.store.clone() {
        None => reply_hits(ctx, &request, &hits, to_meters),
        Some(destination) => store_hits(ctx, &request, kind, &destination, &hits, to_meters),
    }
}

/// The members inside `shape`, read cell by cell in Redis's order; with a `limit` (ANY),
/// the search stops once that many are found.
fn find(zset: &ZsetValue, shape: &Shape, limit: usize) -> Vec<Hit> {
    let mut hits = Vec::new();
    for (min, max) in shape.score_ranges() {
        if limit != 0 && hits.len() >= limit {
            break;
        }
        for (member, score) in zset.iter_from(min) {
            if score >= max {
                break;
            }
            if let Some(found) = shape.contains(score) {
                hits.push(Hit {
                    member: member.to_vec(),
                    score,
                    lon: found.lon,
                    lat: found.lat,
                    meters: found.meters,
                });
            }
            if limit != 0 && hits.len() >= limit {
                break;
            }
        }
    }
    hits
}

fn reply_hits(ctx: &mut Ctx, request: &Request, hits: &[Hit], to_meters: f64) {
    let extras = [request.with_dist, request.with_coord, request.with_hash]
        .iter()
        .filter(|&&on| on)
        .count();
    ctx.out.array(hits.len());
    for hit in hits {
        if extras > 0 {
            ctx.out.array(extras + 1);
        }
        ctx.out.bulk(&hit.member);
        if request.with_dist {
            let text = amber_geo::format_distance(hit.meters / to_meters);
            ctx.out.bulk(text.as_bytes());
        }
        if request.with_hash {
            ctx.out.integer(hit.score as i64);
        }
        if request.with_coord {
            ctx.out.array(2);
            coordinate(ctx, hit.lon);
            coordinate(ctx, hit.lat);
        }
    }
}

fn store_hits(
    ctx: &mut Ctx,
    request: &Request,
    kind: SearchKind,
    destination: &Bytes,
    hits: &[Hit],
    to_meters: f64,
) {
    ctx.modified_only(vec![destination.clone()]);
    if hits.is_empty() {
        if ctx.db().remove(destination).is_some() {
            ctx.notify(notify::GENERIC, "del", destination);
            ctx.dirty(1);
        }
        ctx.out.integer(0);
        return;
    }
    let members: Vec<(&[u8], f64)> = hits
        .iter()
        .map(|hit| {
            let score = if request.store_dist {
                hit.meters / to_meters
            } else {
                hit.score
            };
            (hit.member.as_slice(), score)
        })
        .collect();
    let limits = ctx.server.zset_limits();
    let zset = ZsetValue::from_members(&members, limits);
    let now = ctx.server.now_ms;
    ctx.db()
        .insert(destination, Entry::new(Value::Zset(zset), now));
    let event = if kind.is_search() {
        "geosearchstore"
    } else {
        "georadiusstore"
    };
    ctx.notify(notify::ZSET, event, destination);
    ctx.dirty(hits.len() as u64);
    ctx.out.integer(hits.len() as i64);
}

/// Parses a search's arguments in Redis's order, replying the first error.
fn parse_request(
    ctx: &mut Ctx,
    args: &[Bytes],
    kind: SearchKind,
    exists: bool,
) -> Result<Request, Replied> {
    let mut request = Request {
        center: None,
        extent: None,
        from_member: false,
        from_lonlat: false,
        with_dist: false,
        with_hash: false,
        with_coord: false,
        any: false,
        order: Order::None,
        count: 0,
        store: None,
        store_dist: false,
    };
    let key = args[if kind == SearchKind::AreaStore { 2 } else { 1 }].clone();
    let base = match kind {
        SearchKind::AroundPoint { .. } => {
            request.center = Some(position_args(ctx, &args[2..4])?);
            let (radius, to_meters) = radius_args(ctx, &args[4..6])?;
            request.extent = Some((Extent::Radius(radius), to_meters));
            6
        }
        SearchKind::AroundMember { .. } if !exists => 5,
        SearchKind::AroundMember { .. } => {
            let Some(score) = member_score(ctx, &key, &args[2]) else {
                ctx.error(NO_MEMBER);
                return Err(Replied);
            };
            request.center = Some(amber_geo::position(score));
            let (radius, to_meters) = radius_args(ctx, &args[3..5])?;
            request.extent = Some((Extent::Radius(radius), to_meters));
            5
        }
        SearchKind::Area => 2,
        SearchKind::AreaStore => {
            request.store = Some(args[1].clone());
            3
        }
    };
    parse_options(ctx, args, base, kind, exists, &key, &mut request)?;
    check_request(ctx, args, kind, &request)?;
    Ok(request)
}

fn parse_options(
    ctx: &mut Ctx,
    args: &[Bytes],
    base: usize,
    kind: SearchKind,
    exists: bool,
    key: &[u8],
    request: &mut Request,
) -> Result<(), Replied> {
    let options = args.get(base..).unwrap_or_default();
    let left = |i: usize| options.len() - i - 1;
    let mut i = 0;
    while i < options.len() {
        let option = &options[i];
        if is(option, "withdist") {
            request.with_dist = true;
        } else if is(option, "withhash") {
            request.with_hash = true;
        } else if is(option, "withcoord") {
            request.with_coord = true;
        } else if is(option, "any") {
            request.any = true;
        } else if is(option, "asc") {
            request.order = Order::Asc;
        } else if is(option, "desc") {
            request.order = Order::Desc;
        } else if is(option, "count") && left(i) >= 1 {
            let count = ctx.int_arg(&options[i + 1])?;
            if count <= 0 {
                ctx.error("ERR COUNT must be > 0");
                return Err(Replied);
            }
            request.count = count as usize;
            i += 1;
        } else if (is(option, "store") || is(option, "storedist"))
            && left(i) >= 1
            && kind.store_allowed()
        {
            request.store = Some(options[i + 1].clone());
            request.store_dist = is(option, "storedist");
            i += 1;
        } else if is(option, "storedist") && kind == SearchKind::AreaStore {
            request.store_dist = true;
        } else if is(option, "frommember")
            && left(i) >= 1
            && kind.is_search()
            && !request.from_lonlat
        {
            if exists {
                let Some(score) = member_score(ctx, key, &options[i + 1]) else {
                    ctx.error(NO_MEMBER);
                    return Err(Replied);
                };
                request.center = Some(amber_geo::position(score));
            }
            request.from_member = true;
            i += 1;
        } else if is(option, "fromlonlat")
            && left(i) >= 2
            && kind.is_search()
            && !request.from_member
        {
            request.center = Some(position_args(ctx, &options[i + 1..i + 3])?);
            request.from_lonlat = true;
            i += 2;
        } else if is(option, "byradius")
            && left(i) >= 2
            && kind.is_search()
            && !matches!(request.extent, Some((Extent::Box { .. }, _)))
        {
            let (radius, to_meters) = radius_args(ctx, &options[i + 1..i + 3])?;
            request.extent = Some((Extent::Radius(radius), to_meters));
            i += 2;
        } else if is(option, "bybox")
            && left(i) >= 3
            && kind.is_search()
            && !matches!(request.extent, Some((Extent::Radius(_), _)))
        {
            let (width, height, to_meters) = box_args(ctx, &options[i + 1..i + 4])?;
            request.extent = Some((Extent::Box { width, height }, to_meters));
            i += 3;
        } else {
            ctx.error(errors::SYNTAX);
            return Err(Replied);
        }
        i += 1;
    }
    Ok(())
}

fn check_request(
    ctx: &mut Ctx,
    args: &[Bytes],
    kind: SearchKind,
    request: &Request,
) -> Result<(), Replied> {
    let name = String::from_utf8_lossy(&args[0]);
    let message = if request.store.is_some()
        && (request.with_dist || request.with_hash || request.with_coord)
    {
        let what = if kind == SearchKind::AreaStore {
            "GEOSEARCHSTORE"
        } else {
            "STORE option in GEORADIUS"
        };
        format!("ERR {what} is not compatible with WITHDIST, WITHHASH and WITHCOORD options")
    } else if kind.is_search() && !(request.from_member || request.from_lonlat) {
        format!("ERR exactly one of FROMMEMBER or FROMLONLAT can be specified for {name}")
    } else if kind.is_search() && request.extent.is_none() {
        format!("ERR exactly one of BYRADIUS and BYBOX can be specified for {name}")
    } else if request.any && request.count == 0 {
        "ERR the ANY argument requires COUNT argument".to_string()
    } else {
        return Ok(());
    };
    ctx.error(&message);
    Err(Replied)
}
