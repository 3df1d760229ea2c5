//! The libraries Redis loads into its interpreter beside Lua's own.

pub(crate) mod bit;
pub(crate) mod cjson;
pub(crate) mod cmsgpack;
pub(crate) mod random;
pub(crate) mod structlib;

use mlua::{Result, Table, Value};

/// How many keys `table` has and the largest, when every key is a positive integer (the
/// array test of lua-cjson and lua-cmsgpack); `None` for a table with another key.
pub(crate) fn array_shape(table: &Table) -> Result<Option<(usize, usize)>> {
    let mut count = 0usize;
    let mut max = 0usize;
    let mut array = true;
    table.for_each::<Value, Value>(|key, _| {
        let index = match key {
            Value::Integer(i) if i >= 1 => i as usize,
            Value::Number(n) if n >= 1.0 && n.fract() == 0.0 => n as usize,
            _ => {
                array = false;
                return Ok(());
            }
        };
        max = max.max(index);
        count += 1;
        Ok(())
    })?;
    Ok(array.then_some((count, max)))
}
