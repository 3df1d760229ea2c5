//! Conversions between Lua values and RESP, as Redis 7.0 makes them: command arguments from
//! Lua, command replies to Lua (`redis.call`'s result), and a script's result to the client.

use amber_protocol::{Frame, ReplyWriter};
use mlua::{Lua, Result, Table, Value};

/// How deep a returned table may nest before the reply is cut with Redis's stack-limit error.
const MAX_REPLY_DEPTH: usize = 2000;

/// Redis's error table for `message`: `{err = "CODE text"}`. A message starting with `-`
/// carries its own code; one without gets `ERR`. Trailing CR/LF are dropped.
pub(crate) fn error_table(lua: &Lua, message: &str) -> Result<Table> {
    let table = lua.create_table()?;
    table.raw_set("err", normalize_error(message))?;
    Ok(table)
}

/// The text of an error table for `message` (see [`error_table`]).
pub(crate) fn normalize_error(message: &str) -> String {
    let (code, text) = match message.strip_prefix('-') {
        Some(rest) => match rest.split_once(' ') {
            Some((code, text)) => (code, text),
            None => ("ERR", rest),
        },
        None => ("ERR", message),
    };
    format!("{code} {}", text.trim_matches(['\r', '\n']))
}

/// A command's reply as the script sees it.
pub(crate) fn frame_to_lua(lua: &Lua, frame: Frame) -> Result<Value> {
    Ok(match frame {
        Frame::Integer(n) => Value::Number(n as f64),
        Frame::Bulk(bytes) => Value::String(lua.create_string(&bytes)?),
        Frame::NullBulk | Frame::NullArray => Value::Boolean(false),
        Frame::Simple(text) => {
            let table = lua.create_table()?;
            table.raw_set("ok", lua.create_string(&text)?)?;
            Value::Table(table)
        }
        Frame::Error(text) | Frame::BulkError(text) => {
            let table = error_table(lua, &format!("-{}", String::from_utf8_lossy(&text)))?;
            table.raw_set("ignore_error_stats_update", true)?;
            Value::Table(table)
        }
        Frame::Array(items) | Frame::Push(items) => {
            let table = lua.create_table_with_capacity(items.len(), 0)?;
            for (i, item) in items.into_iter().enumerate() {
                table.raw_set(i + 1, frame_to_lua(lua, item)?)?;
            }
            Value::Table(table)
        }
        Frame::Map(pairs) => {
            let inner = lua.create_table_with_capacity(0, pairs.len())?;
            for (key, value) in pairs {
                let key = frame_to_lua(lua, key)?;
                if !key.is_nil() {
                    inner.raw_set(key, frame_to_lua(lua, value)?)?;
                }
            }
            wrap(lua, "map", Value::Table(inner))?
        }
        Frame::Set(items) => {
            let inner = lua.create_table_with_capacity(0, items.len())?;
            for item in items {
                let item = frame_to_lua(lua, item)?;
                if !item.is_nil() {
                    inner.raw_set(item, true)?;
                }
            }
            wrap(lua, "set", Value::Table(inner))?
        }
        Frame::Null => Value::Nil,
        Frame::Boolean(b) => Value::Boolean(b),
        Frame::Double(d) => wrap(lua, "double", Value::Number(d))?,
        Frame::BigNumber(digits) => wrap(
            lua,
            "big_number",
            Value::String(lua.create_string(&digits)?),
        )?,
        Frame::Verbatim(format, text) => {
            let inner = lua.create_table()?;
            inner.raw_set("string", lua.create_string(&text)?)?;
            inner.raw_set("format", lua.create_string(format)?)?;
            wrap(lua, "verbatim_string", Value::Table(inner))?
        }
    })
}

fn wrap(lua: &Lua, field: &str, value: Value) -> Result<Value> {
    let table = lua.create_table()?;
    table.raw_set(field, value)?;
    Ok(Value::Table(table))
}

/// What a script returned, when it is an error reply (`{err = ...}` at the top level).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ErrorReply {
    /// The error text, with its code.
    pub message: String,
    /// Set when the error came from a command the script called, already counted there.
    pub counted: bool,
}

/// The error reply a top-level table stands for, if it holds an `err` string.
pub(crate) fn error_reply(table: &Table) -> Result<Option<ErrorReply>> {
    match table.raw_get::<Value>("err")? {
        Value::String(message) => Ok(Some(ErrorReply {
            message: String::from_utf8_lossy(&message.as_bytes()).replace(['\r', '\n'], " "),
            counted: matches!(
                table.raw_get::<Value>("ignore_error_stats_update")?,
                Value::Boolean(true)
            ),
        })),
        _ => Ok(None),
    }
}

/// Writes a script's result to the client, as Redis's `luaReplyToRedisReply`. `resp3` is the
/// protocol the script chose (`redis.setresp`); it decides how booleans go out.
pub(crate) fn write_reply(value: &Value, out: &mut ReplyWriter, resp3: bool) -> Result<()> {
    write_at(value, out, resp3, 0)
}

fn write_at(value: &Value, out: &mut ReplyWriter, resp3: bool, depth: usize) -> Result<()> {
    if depth > MAX_REPLY_DEPTH {
        out.error("ERR reached lua stack limit");
        return Ok(());
    }
    match value {
        Value::String(s) => out.bulk(&s.as_bytes()),
        Value::Boolean(b) if resp3 => out.boolean(*b),
        Value::Boolean(true) => out.integer(1),
        Value::Boolean(false) => out.null(),
        Value::Integer(n) => out.integer(*n),
        Value::Number(n) => out.integer(truncate(*n)),
        Value::Table(table) => write_table(table, out, resp3, depth)?,
        _ => out.null(),
    }
    Ok(())
}

/// Lua numbers become integers by truncation, as C's cast does (saturating here).
fn truncate(n: f64) -> i64 {
    n as i64
}

fn write_table(table: &Table, out: &mut ReplyWriter, resp3: bool, depth: usize) -> Result<()> {
    if let Some(error) = error_reply(table)? {
        out.error(&error.message);
        return Ok(());
    }
    if let Value::String(status) = table.raw_get::<Value>("ok")? {
        let text = String::from_utf8_lossy(&status.as_bytes()).replace(['\r', '\n'], " ");
        out.simple(&text);
        return Ok(());
    }
    if let Value::Number(_) | Value::Integer(_) = table.raw_get::<Value>("double")? {
        out.double(table.raw_get::<f64>("double")?);
        return Ok(());
    }
    if let Value::String(digits) = table.raw_get::<Value>("big_number")? {
        let digits = String::from_utf8_lossy(&digits.as_bytes()).replace(['\r', '\n'], " ");
        out.big_number(&digits);
        return Ok(());
    }
    if let Value::Table(verbatim) = table.raw_get::<Value>("verbatim_string")?
        && let (Value::String(format), Value::String(text)) = (
            verbatim.raw_get::<Value>("format")?,
            verbatim.raw_get::<Value>("string")?,
        )
    {
        let format = format.as_bytes();
        let mut tag = [b' '; 3];
        for (slot, byte) in tag.iter_mut().zip(format.iter()) {
            *slot = *byte;
        }
        out.verbatim(&tag, &text.as_bytes());
        return Ok(());
    }
    // Tables are walked twice (count, then write) holding one element at a time: Lua
    // references are a scarce resource, and a reply may be large.
    if let Value::Table(map) = table.raw_get::<Value>("map")? {
        out.map(pair_count(&map)?);
        return map.for_each::<Value, Value>(|key, value| {
            write_at(&key, out, resp3, depth + 1)?;
            write_at(&value, out, resp3, depth + 1)
        });
    }
    if let Value::Table(set) = table.raw_get::<Value>("set")? {
        out.set(pair_count(&set)?);
        return set.for_each::<Value, Value>(|member, _| write_at(&member, out, resp3, depth + 1));
    }
    let mut len = 0;
    while !table.raw_get::<Value>(len + 1)?.is_nil() {
        len += 1;
    }
    out.array(len);
    for i in 1..=len {
        write_at(&table.raw_get::<Value>(i)?, out, resp3, depth + 1)?;
    }
    Ok(())
}

fn pair_count(table: &Table) -> Result<usize> {
    let mut count = 0;
    table.for_each::<Value, Value>(|_, _| {
        count += 1;
        Ok(())
    })?;
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_normalized_as_redis() {
        assert_eq!(normalize_error("-WRONGTYPE bad\r\n"), "WRONGTYPE bad");
        assert_eq!(normalize_error("plain text"), "ERR plain text");
        assert_eq!(normalize_error("-NOCODE"), "ERR NOCODE");
    }
}
