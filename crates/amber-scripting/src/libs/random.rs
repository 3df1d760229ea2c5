//! `math.random` and `math.randomseed` as Redis replaces them: Lua's algorithm over Redis's
//! own 48-bit generator (`redisLrand48`), so a seed gives the same sequence on every platform.

use std::cell::Cell;
use std::rc::Rc;

use mlua::{Error, Lua, Result, Table, Variadic};

/// The largest value the generator returns (`REDIS_LRAND48_MAX`).
const LRAND48_MAX: i64 = i32::MAX as i64;

/// The 48-bit linear congruential generator of `lrand48`.
#[derive(Debug, Clone, Copy)]
struct Lrand48(u64);

impl Lrand48 {
    fn seeded(seed: i32) -> Lrand48 {
        Lrand48(((seed as u32 as u64) << 16) | 0x330e)
    }

    fn next(&mut self) -> i64 {
        self.0 = (self.0.wrapping_mul(0x5_deec_e66d).wrapping_add(0xb)) & ((1 << 48) - 1);
        (self.0 >> 17) as i64
    }
}

/// Replaces `math.random` and `math.randomseed` in the `math` table of `globals`.
pub(crate) fn install(lua: &Lua, globals: &Table) -> Result<()> {
    let math: Table = globals.get("math")?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let state = Rc::new(Cell::new(Lrand48::seeded(nanos as i32)));
    let generator = state.clone();
    math.set(
        "random",
        lua.create_function(move |_, bounds: Variadic<f64>| {
            let mut rng = generator.get();
            let r = (rng.next() % LRAND48_MAX) as f64 / LRAND48_MAX as f64;
            generator.set(rng);
            match bounds.as_slice() {
                [] => Ok(r),
                [upper] => {
                    let upper = upper.trunc();
                    if upper < 1.0 {
                        return Err(Error::runtime(
                            "bad argument #1 to 'random' (interval is empty)",
                        ));
                    }
                    Ok((r * upper).floor() + 1.0)
                }
                [lower, upper] => {
                    let (lower, upper) = (lower.trunc(), upper.trunc());
                    if lower > upper {
                        return Err(Error::runtime(
                            "bad argument #2 to 'random' (interval is empty)",
                        ));
                    }
                    Ok((r * (upper - lower + 1.0)).floor() + lower)
                }
                _ => Err(Error::runtime("wrong number of arguments")),
            }
        })?,
    )?;
    math.set(
        "randomseed",
        lua.create_function(move |_, seed: f64| {
            state.set(Lrand48::seeded(seed as i64 as i32));
            Ok(())
        })?,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Lrand48;

    #[test]
    fn same_seed_same_sequence() {
        let mut a = Lrand48::seeded(10);
        let mut b = Lrand48::seeded(10);
        let mut c = Lrand48::seeded(20);
        let (x, y, z) = (a.next(), b.next(), c.next());
        assert_eq!(x, y);
        assert_ne!(x, z);
        assert!((0..=i32::MAX as i64).contains(&x));
    }
}
