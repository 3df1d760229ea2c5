//! The `cmsgpack` library (lua-cmsgpack 0.4's API, as Redis bundles it): MessagePack encoding
//! and decoding of Lua values, byte for byte as that library does it.

use mlua::{Error, Lua, MultiValue, Result, Table, Value, Variadic};

/// Tables nested deeper than this are encoded as nil (lua-cmsgpack's LUACMSGPACK_MAX_NESTING),
/// which also bounds self-referencing tables.
const MAX_NESTING: usize = 16;

/// Builds the `cmsgpack` table.
pub(crate) fn open(lua: &Lua) -> Result<Table> {
    let cmsgpack = lua.create_table()?;
    cmsgpack.set(
        "pack",
        lua.create_function(|lua, values: Variadic<Value>| {
            if values.is_empty() {
                return Err(Error::runtime("MessagePack pack needs input."));
            }
            let mut out = Vec::new();
            for value in values.iter() {
                encode(value, 0, &mut out)?;
            }
            lua.create_string(&out)
        })?,
    )?;
    cmsgpack.set(
        "unpack",
        lua.create_function(|lua, data: mlua::String| {
            let (_, values) = unpack(lua, &data.as_bytes(), 0, 0)?;
            Ok(MultiValue::from_vec(values))
        })?,
    )?;
    cmsgpack.set(
        "unpack_one",
        lua.create_function(|lua, (data, offset): (mlua::String, Option<i64>)| {
            unpack_limited(lua, &data.as_bytes(), 1, offset.unwrap_or(0))
        })?,
    )?;
    cmsgpack.set(
        "unpack_limit",
        lua.create_function(
            |lua, (data, limit, offset): (mlua::String, i64, Option<i64>)| {
                unpack_limited(
                    lua,
                    &data.as_bytes(),
                    limit.max(0) as usize,
                    offset.unwrap_or(0),
                )
            },
        )?,
    )?;
    cmsgpack.set("_NAME", "cmsgpack")?;
    cmsgpack.set("_VERSION", "lua-cmsgpack 0.4.0")?;
    Ok(cmsgpack)
}

fn unpack_limited(lua: &Lua, data: &[u8], limit: usize, offset: i64) -> Result<MultiValue> {
    if offset < 0 || offset as usize > data.len() {
        return Err(Error::runtime(
            "Start offset 0 greater than input length 0.",
        ));
    }
    let (next, mut values) = unpack(lua, data, offset as usize, limit)?;
    let next = if next >= data.len() { -1 } else { next as i64 };
    values.insert(0, Value::Integer(next));
    Ok(MultiValue::from_vec(values))
}

/// Decodes up to `limit` values (0: all) from `data[offset..]`; returns where decoding stopped.
fn unpack(lua: &Lua, data: &[u8], offset: usize, limit: usize) -> Result<(usize, Vec<Value>)> {
    let mut reader = Reader {
        data,
        pos: offset,
        depth: 0,
    };
    let mut values = Vec::new();
    while reader.pos < data.len() && (limit == 0 || values.len() < limit) {
        values.push(reader.value(lua)?);
    }
    Ok((reader.pos, values))
}

fn encode(value: &Value, level: usize, out: &mut Vec<u8>) -> Result<()> {
    match value {
        Value::Nil => out.push(0xc0),
        Value::Boolean(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
        Value::Integer(n) => encode_integer(*n, out),
        Value::Number(n) => encode_number(*n, out),
        Value::String(s) => encode_bytes(&s.as_bytes(), out),
        Value::Table(table) if level < MAX_NESTING => encode_table(table, level, out)?,
        // Too deep, or a type MessagePack has no form for.
        _ => out.push(0xc0),
    }
    Ok(())
}

fn encode_number(n: f64, out: &mut Vec<u8>) {
    if n.fract() == 0.0 && n >= -(2f64.powi(63)) && n < 2f64.powi(63) {
        encode_integer(n as i64, out);
    } else if f64::from(n as f32) == n || n.is_nan() {
        out.push(0xca);
        out.extend_from_slice(&(n as f32).to_be_bytes());
    } else {
        out.push(0xcb);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

fn encode_integer(n: i64, out: &mut Vec<u8>) {
    if n >= 0 {
        match n {
            0..=127 => out.push(n as u8),
            128..=0xff => out.extend_from_slice(&[0xcc, n as u8]),
            0x100..=0xffff => {
                out.push(0xcd);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            0x1_0000..=0xffff_ffff => {
                out.push(0xce);
                out.extend_from_slice(&(n as u32).to_be_bytes());
            }
            _ => {
                out.push(0xcf);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
    } else if n >= -32 {
        out.push(n as i8 as u8);
    } else if n >= -128 {
        out.extend_from_slice(&[0xd0, n as i8 as u8]);
    } else if n >= -32768 {
        out.push(0xd1);
        out.extend_from_slice(&(n as i16).to_be_bytes());
    } else if n >= -2_147_483_648 {
        out.push(0xd2);
        out.extend_from_slice(&(n as i32).to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

fn encode_bytes(bytes: &[u8], out: &mut Vec<u8>) {
    let len = bytes.len();
    if len < 32 {
        out.push(0xa0 | len as u8);
    } else if len <= 0xff {
        out.extend_from_slice(&[0xd9, len as u8]);
    } else if len <= 0xffff {
        out.push(0xda);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0xdb);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    }
    out.extend_from_slice(bytes);
}

/// lua-cmsgpack's array test: keys exactly 1..n.
fn array_len(table: &Table) -> Result<Option<usize>> {
    Ok(super::array_shape(table)?.and_then(|(count, max)| (max == count).then_some(count)))
}

fn encode_table(table: &Table, level: usize, out: &mut Vec<u8>) -> Result<()> {
    if let Some(len) = array_len(table)? {
        header(out, len, 0x90, 0xdc, 0xdd);
        for i in 1..=len {
            let value: Value = table.raw_get(i)?;
            encode(&value, level + 1, out)?;
        }
        return Ok(());
    }
    // Two passes, holding one pair at a time: Lua references are a scarce resource.
    let mut count = 0;
    table.for_each::<Value, Value>(|_, _| {
        count += 1;
        Ok(())
    })?;
    header(out, count, 0x80, 0xde, 0xdf);
    table.for_each::<Value, Value>(|key, value| {
        encode(&key, level + 1, out)?;
        encode(&value, level + 1, out)
    })
}

fn header(out: &mut Vec<u8>, len: usize, fix: u8, sixteen: u8, thirty_two: u8) {
    if len <= 15 {
        out.push(fix | len as u8);
    } else if len <= 0xffff {
        out.push(sixteen);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(thirty_two);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    }
}

/// Deepest nesting `unpack` follows, so hostile input cannot exhaust the stack.
const MAX_UNPACK_DEPTH: usize = 1000;

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    depth: usize,
}

fn missing() -> Error {
    Error::runtime("Missing bytes in input.")
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8]> {
        let end = self.pos.checked_add(n).ok_or_else(missing)?;
        let bytes = self.data.get(self.pos..end).ok_or_else(missing)?;
        self.pos = end;
        Ok(bytes)
    }

    fn be(&mut self, n: usize) -> Result<u64> {
        Ok(self
            .take(n)?
            .iter()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    }

    fn value(&mut self, lua: &Lua) -> Result<Value> {
        if self.depth >= MAX_UNPACK_DEPTH {
            return Err(Error::runtime("Bad data format in input."));
        }
        self.depth += 1;
        let value = self.value_at_depth(lua);
        self.depth -= 1;
        value
    }

    fn value_at_depth(&mut self, lua: &Lua) -> Result<Value> {
        let tag = self.take(1)?[0];
        let number = |n: f64| Value::Number(n);
        Ok(match tag {
            0x00..=0x7f => number(f64::from(tag)),
            0x80..=0x8f => self.map(lua, usize::from(tag & 0x0f))?,
            0x90..=0x9f => self.array(lua, usize::from(tag & 0x0f))?,
            0xa0..=0xbf => self.string(lua, usize::from(tag & 0x1f))?,
            0xc0 => Value::Nil,
            0xc2 => Value::Boolean(false),
            0xc3 => Value::Boolean(true),
            0xc4 | 0xd9 => {
                let len = self.be(1)? as usize;
                self.string(lua, len)?
            }
            0xc5 | 0xda => {
                let len = self.be(2)? as usize;
                self.string(lua, len)?
            }
            0xc6 | 0xdb => {
                let len = self.be(4)? as usize;
                self.string(lua, len)?
            }
            0xca => number(f64::from(f32::from_bits(self.be(4)? as u32))),
            0xcb => number(f64::from_bits(self.be(8)?)),
            0xcc => number(self.be(1)? as f64),
            0xcd => number(self.be(2)? as f64),
            0xce => number(self.be(4)? as f64),
            0xcf => number(self.be(8)? as f64),
            0xd0 => number(f64::from(self.be(1)? as u8 as i8)),
            0xd1 => number(f64::from(self.be(2)? as u16 as i16)),
            0xd2 => number(f64::from(self.be(4)? as u32 as i32)),
            0xd3 => number(self.be(8)? as i64 as f64),
            0xdc => {
                let len = self.be(2)? as usize;
                self.array(lua, len)?
            }
            0xdd => {
                let len = self.be(4)? as usize;
                self.array(lua, len)?
            }
            0xde => {
                let len = self.be(2)? as usize;
                self.map(lua, len)?
            }
            0xdf => {
                let len = self.be(4)? as usize;
                self.map(lua, len)?
            }
            0xe0..=0xff => number(f64::from(tag as i8)),
            _ => return Err(Error::runtime("Bad data format in input.")),
        })
    }

    fn string(&mut self, lua: &Lua, len: usize) -> Result<Value> {
        let bytes = self.take(len)?;
        Ok(Value::String(lua.create_string(bytes)?))
    }

    fn array(&mut self, lua: &Lua, len: usize) -> Result<Value> {
        // Every element takes at least one byte: a length beyond the input is malformed.
        if len > self.data.len() - self.pos {
            return Err(missing());
        }
        let table = lua.create_table_with_capacity(len, 0)?;
        for i in 1..=len {
            table.raw_set(i, self.value(lua)?)?;
        }
        Ok(Value::Table(table))
    }

    fn map(&mut self, lua: &Lua, len: usize) -> Result<Value> {
        if len > (self.data.len() - self.pos) / 2 {
            return Err(missing());
        }
        let table = lua.create_table_with_capacity(0, len)?;
        for _ in 0..len {
            let key = self.value(lua)?;
            let value = self.value(lua)?;
            if !key.is_nil() {
                table.raw_set(key, value)?;
            }
        }
        Ok(Value::Table(table))
    }
}
