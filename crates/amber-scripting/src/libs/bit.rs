//! The `bit` library (LuaBitOp's API, as Redis bundles it): 32-bit operations on Lua numbers.

use mlua::{Lua, Result, Table, Variadic};

/// Converts a Lua number to the signed 32-bit value LuaBitOp works on: rounded to the nearest
/// integer (ties to even) and wrapped modulo 2^32.
pub(crate) fn tobit(n: f64) -> i32 {
    if !n.is_finite() {
        return 0;
    }
    n.round_ties_even().rem_euclid(4_294_967_296.0) as u32 as i32
}

/// Builds the `bit` table.
pub(crate) fn open(lua: &Lua) -> Result<Table> {
    let bit = lua.create_table()?;
    bit.set("tobit", lua.create_function(|_, n: f64| Ok(tobit(n)))?)?;
    bit.set("bnot", lua.create_function(|_, n: f64| Ok(!tobit(n)))?)?;
    bit.set("band", fold(lua, |a, b| a & b)?)?;
    bit.set("bor", fold(lua, |a, b| a | b)?)?;
    bit.set("bxor", fold(lua, |a, b| a ^ b)?)?;
    bit.set("lshift", shift(lua, |x, n| ((x as u32) << n) as i32)?)?;
    bit.set("rshift", shift(lua, |x, n| ((x as u32) >> n) as i32)?)?;
    bit.set("arshift", shift(lua, |x, n| x >> n)?)?;
    bit.set("rol", shift(lua, |x, n| (x as u32).rotate_left(n) as i32)?)?;
    bit.set("ror", shift(lua, |x, n| (x as u32).rotate_right(n) as i32)?)?;
    bit.set(
        "bswap",
        lua.create_function(|_, n: f64| Ok((tobit(n) as u32).swap_bytes() as i32))?,
    )?;
    bit.set(
        "tohex",
        lua.create_function(|_, (n, digits): (f64, Option<f64>)| Ok(tohex(tobit(n), digits)))?,
    )?;
    Ok(bit)
}

fn fold(lua: &Lua, op: fn(i32, i32) -> i32) -> Result<mlua::Function> {
    lua.create_function(move |_, (first, rest): (f64, Variadic<f64>)| {
        Ok(rest.iter().fold(tobit(first), |acc, &n| op(acc, tobit(n))))
    })
}

fn shift(lua: &Lua, op: fn(i32, u32) -> i32) -> Result<mlua::Function> {
    lua.create_function(move |_, (x, n): (f64, f64)| Ok(op(tobit(x), (tobit(n) & 31) as u32)))
}

/// `bit.tohex(x [, n])`: `n` hex digits (8 by default), upper case when `n` is negative.
fn tohex(x: i32, digits: Option<f64>) -> String {
    let digits = digits.map_or(8, tobit);
    let upper = digits < 0;
    let count = digits.unsigned_abs().min(8) as usize;
    let text = if upper {
        format!("{:08X}", x as u32)
    } else {
        format!("{:08x}", x as u32)
    };
    text[8 - count..].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tobit_wraps_and_rounds_like_luabitop() {
        assert_eq!(tobit(4_294_967_295.0), -1);
        assert_eq!(tobit(4_294_967_296.0), 0);
        assert_eq!(tobit(-1.0), -1);
        assert_eq!(tobit(2.5), 2);
        assert_eq!(tobit(3.5), 4);
        assert_eq!(tobit(2_147_483_648.0), i32::MIN);
    }

    #[test]
    fn tohex_widths() {
        assert_eq!(tohex(1, None), "00000001");
        assert_eq!(tohex(-1, Some(-4.0)), "FFFF");
        assert_eq!(tohex(0x1234_5678, Some(2.0)), "78");
    }
}
