//! The `cjson` library (lua-cjson 2.1's API, as Redis bundles it): JSON encoding and decoding
//! of Lua values, with its configuration functions and its error texts.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::rc::Rc;

use mlua::{Error, LightUserData, Lua, Result, Table, Value};

use amber_protocol::format_g;

/// lua-cjson's settings, changed by `cjson.encode_max_depth` and the like.
#[derive(Debug, Clone)]
struct Config {
    encode_max_depth: usize,
    decode_max_depth: usize,
    invalid_numbers: InvalidNumbers,
    precision: usize,
    sparse_convert: bool,
    sparse_ratio: usize,
    sparse_safe: usize,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum InvalidNumbers {
    Refuse,
    Allow,
    AsNull,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            encode_max_depth: 1000,
            decode_max_depth: 1000,
            invalid_numbers: InvalidNumbers::Refuse,
            precision: 14,
            sparse_convert: false,
            sparse_ratio: 2,
            sparse_safe: 10,
        }
    }
}

/// `cjson.null`: a light userdata holding NULL, as lua-cjson's.
fn null() -> Value {
    Value::LightUserData(LightUserData(std::ptr::null_mut()))
}

/// Builds the `cjson` table.
pub(crate) fn open(lua: &Lua) -> Result<Table> {
    let config = Rc::new(RefCell::new(Config::default()));
    let cjson = lua.create_table()?;
    let c = config.clone();
    cjson.set(
        "encode",
        lua.create_function(move |_, value: Value| {
            let mut out = String::new();
            encode(&value, &c.borrow(), 1, &mut out)?;
            Ok(bytes_string(out))
        })?,
    )?;
    let c = config.clone();
    cjson.set(
        "decode",
        lua.create_function(move |lua, text: mlua::String| {
            decode(lua, &text.as_bytes(), &c.borrow())
        })?,
    )?;
    let c = config.clone();
    cjson.set(
        "encode_max_depth",
        lua.create_function(move |_, depth: Option<usize>| {
            let mut config = c.borrow_mut();
            if let Some(depth) = depth {
                config.encode_max_depth = depth.max(1);
            }
            Ok(config.encode_max_depth)
        })?,
    )?;
    let c = config.clone();
    cjson.set(
        "decode_max_depth",
        lua.create_function(move |_, depth: Option<usize>| {
            let mut config = c.borrow_mut();
            if let Some(depth) = depth {
                config.decode_max_depth = depth.max(1);
            }
            Ok(config.decode_max_depth)
        })?,
    )?;
    let c = config.clone();
    cjson.set(
        "encode_invalid_numbers",
        lua.create_function(move |_, setting: Value| {
            let mut config = c.borrow_mut();
            config.invalid_numbers = match setting {
                Value::Boolean(true) => InvalidNumbers::Allow,
                Value::Boolean(false) => InvalidNumbers::Refuse,
                Value::String(s) if s.as_bytes().as_ref() == b"null" => InvalidNumbers::AsNull,
                Value::Nil => config.invalid_numbers,
                _ => {
                    return Err(Error::runtime(
                        "bad argument #1 to 'encode_invalid_numbers'",
                    ));
                }
            };
            Ok(config.invalid_numbers != InvalidNumbers::Refuse)
        })?,
    )?;
    cjson.set(
        "decode_invalid_numbers",
        lua.create_function(|_, _: Value| Ok(true))?,
    )?;
    let c = config.clone();
    cjson.set(
        "encode_number_precision",
        lua.create_function(move |_, precision: Option<usize>| {
            let mut config = c.borrow_mut();
            if let Some(precision) = precision {
                if !(1..=14).contains(&precision) {
                    return Err(Error::runtime(
                        "bad argument #1 to 'encode_number_precision' (expected integer between 1 and 14)",
                    ));
                }
                config.precision = precision;
            }
            Ok(config.precision)
        })?,
    )?;
    let c = config.clone();
    cjson.set(
        "encode_sparse_array",
        lua.create_function(
            move |_, (convert, ratio, safe): (Option<bool>, Option<usize>, Option<usize>)| {
                let mut config = c.borrow_mut();
                if let Some(convert) = convert {
                    config.sparse_convert = convert;
                }
                if let Some(ratio) = ratio {
                    config.sparse_ratio = ratio;
                }
                if let Some(safe) = safe {
                    config.sparse_safe = safe;
                }
                Ok((
                    config.sparse_convert,
                    config.sparse_ratio,
                    config.sparse_safe,
                ))
            },
        )?,
    )?;
    cjson.set(
        "encode_keep_buffer",
        lua.create_function(|_, keep: Option<bool>| Ok(keep.unwrap_or(true)))?,
    )?;
    cjson.set("null", null())?;
    cjson.set("_NAME", "cjson")?;
    cjson.set("_VERSION", "2.1.0")?;
    Ok(cjson)
}

/// JSON text is ASCII plus the bytes of Lua strings: kept as a byte string for Lua.
struct ByteString(Vec<u8>);

fn bytes_string(text: String) -> ByteString {
    ByteString(text.into_bytes())
}

impl mlua::IntoLua for ByteString {
    fn into_lua(self, lua: &Lua) -> Result<Value> {
        lua.create_string(&self.0).map(Value::String)
    }
}

fn encode(value: &Value, config: &Config, depth: usize, out: &mut String) -> Result<()> {
    match value {
        Value::Nil => out.push_str("null"),
        Value::LightUserData(ud) if ud.0.is_null() => out.push_str("null"),
        Value::Boolean(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Integer(n) => {
            let _ = write!(out, "{n}");
        }
        Value::Number(n) => encode_number(*n, config, out)?,
        Value::String(s) => encode_string(&s.as_bytes(), out),
        Value::Table(table) => {
            if depth > config.encode_max_depth {
                return Err(Error::runtime(format!(
                    "Cannot serialise, excessive nesting ({depth})"
                )));
            }
            encode_table(table, config, depth, out)?;
        }
        other => {
            return Err(Error::runtime(format!(
                "Cannot serialise {}: type not supported",
                other.type_name()
            )));
        }
    }
    Ok(())
}

fn encode_number(n: f64, config: &Config, out: &mut String) -> Result<()> {
    if !n.is_finite() {
        match config.invalid_numbers {
            InvalidNumbers::Refuse => {
                return Err(Error::runtime(
                    "Cannot serialise number: must not be NaN or Inf",
                ));
            }
            InvalidNumbers::AsNull => {
                out.push_str("null");
                return Ok(());
            }
            InvalidNumbers::Allow => {}
        }
    }
    out.push_str(&format_g(n, config.precision));
    Ok(())
}

fn encode_string(bytes: &[u8], out: &mut String) {
    out.push('"');
    for &b in bytes {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'/' => out.push_str("\\/"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x08 => out.push_str("\\b"),
            0x0c => out.push_str("\\f"),
            0..=0x1f | 0x7f => {
                let _ = write!(out, "\\u{b:04x}");
            }
            // Bytes above 0x7f go through as they are (lua-cjson does not validate UTF-8).
            _ => out.push(char::from(b)),
        }
    }
    out.push('"');
}

/// lua-cjson's array test: every key a positive integer; the largest one, or `None` for an
/// object. An excessively sparse array is an error unless converting is allowed.
fn array_length(table: &Table, config: &Config) -> Result<Option<usize>> {
    let Some((items, max)) = super::array_shape(table)? else {
        return Ok(None);
    };
    if config.sparse_ratio > 0 && max > items * config.sparse_ratio && max > config.sparse_safe {
        if !config.sparse_convert {
            return Err(Error::runtime(
                "Cannot serialise table: excessively sparse array",
            ));
        }
        return Ok(None);
    }
    Ok(Some(max))
}

fn encode_table(table: &Table, config: &Config, depth: usize, out: &mut String) -> Result<()> {
    match array_length(table, config)? {
        Some(len) if len > 0 => {
            out.push('[');
            for i in 1..=len {
                if i > 1 {
                    out.push(',');
                }
                let value: Value = table.raw_get(i)?;
                encode(&value, config, depth + 1, out)?;
            }
            out.push(']');
        }
        _ => {
            out.push('{');
            let mut first = true;
            for pair in table.clone().pairs::<Value, Value>() {
                let (key, value) = pair?;
                if !first {
                    out.push(',');
                }
                first = false;
                match &key {
                    Value::String(s) => encode_string(&s.as_bytes(), out),
                    Value::Integer(n) => {
                        let _ = write!(out, "\"{n}\"");
                    }
                    Value::Number(n) => {
                        out.push('"');
                        encode_number(*n, config, out)?;
                        out.push('"');
                    }
                    _ => {
                        return Err(Error::runtime(
                            "Cannot serialise table: table key must be a number or string",
                        ));
                    }
                }
                out.push(':');
                encode(&value, config, depth + 1, out)?;
            }
            out.push('}');
        }
    }
    Ok(())
}

fn decode(lua: &Lua, text: &[u8], config: &Config) -> Result<Value> {
    let parsed: serde_json::Value = serde_json::from_slice(text).map_err(|error| {
        if error.to_string().contains("recursion limit") {
            Error::runtime(format!(
                "Found too many nested data structures ({}) at character {}",
                config.decode_max_depth.min(128) + 1,
                error.column()
            ))
        } else {
            Error::runtime(format!(
                "Expected value but found invalid token at character {}",
                error.column().max(1)
            ))
        }
    })?;
    to_lua(lua, &parsed, config, 1)
}

fn to_lua(lua: &Lua, value: &serde_json::Value, config: &Config, depth: usize) -> Result<Value> {
    use serde_json::Value as J;
    let nested = matches!(value, J::Array(_) | J::Object(_));
    if nested && depth > config.decode_max_depth {
        return Err(Error::runtime(format!(
            "Found too many nested data structures ({depth}) at character 1"
        )));
    }
    Ok(match value {
        J::Null => null(),
        J::Bool(b) => Value::Boolean(*b),
        J::Number(n) => Value::Number(n.as_f64().unwrap_or(0.0)),
        J::String(s) => Value::String(lua.create_string(s)?),
        J::Array(items) => {
            let table = lua.create_table_with_capacity(items.len(), 0)?;
            for (i, item) in items.iter().enumerate() {
                table.raw_set(i + 1, to_lua(lua, item, config, depth + 1)?)?;
            }
            Value::Table(table)
        }
        J::Object(fields) => {
            let table = lua.create_table_with_capacity(0, fields.len())?;
            for (key, item) in fields {
                table.raw_set(key.as_str(), to_lua(lua, item, config, depth + 1)?)?;
            }
            Value::Table(table)
        }
    })
}
