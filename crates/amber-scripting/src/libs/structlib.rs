//! The `struct` library (Roberto Ierusalimschy's, as Redis bundles it): packs Lua values into
//! binary strings and back, driven by a format string.
//!
//! Format options: `<` `>` `=` (endianness), `!n` (alignment), `x` (padding byte), `b B h H
//! l L T i[n] I[n]` (integers), `f d` (floats), `c[n]` (fixed strings), `s` (zero-terminated
//! strings), spaces ignored.

use mlua::{Error, Lua, MultiValue, Result, Table, Value, Variadic};

/// Largest integer size (`MAXINTSIZE`).
const MAX_INT_SIZE: usize = 32;

#[derive(Debug, Clone, Copy)]
struct State {
    little: bool,
    align: usize,
}

/// One option of a format string.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Item {
    Pad,
    Int { size: usize, signed: bool },
    Float,
    Double,
    Chars(Option<usize>),
    ZString,
}

struct Format<'a> {
    text: &'a [u8],
    pos: usize,
    state: State,
}

impl Format<'_> {
    fn number(&mut self) -> Option<usize> {
        let start = self.pos;
        while self.pos < self.text.len() && self.text[self.pos].is_ascii_digit() {
            self.pos += 1;
        }
        std::str::from_utf8(&self.text[start..self.pos])
            .ok()?
            .parse()
            .ok()
    }

    /// The next item, after the endianness and alignment options before it.
    fn next(&mut self) -> Result<Option<Item>> {
        while let Some(&c) = self.text.get(self.pos) {
            self.pos += 1;
            let item = match c {
                b' ' => continue,
                b'<' => {
                    self.state.little = true;
                    continue;
                }
                b'>' => {
                    self.state.little = false;
                    continue;
                }
                b'=' => {
                    self.state.little = cfg!(target_endian = "little");
                    continue;
                }
                b'!' => {
                    let align = self.number().unwrap_or(8);
                    if !align.is_power_of_two() {
                        return Err(Error::runtime("alignment must be power of 2"));
                    }
                    self.state.align = align;
                    continue;
                }
                b'x' => Item::Pad,
                b'b' => Item::Int {
                    size: 1,
                    signed: true,
                },
                b'B' => Item::Int {
                    size: 1,
                    signed: false,
                },
                b'h' => Item::Int {
                    size: 2,
                    signed: true,
                },
                b'H' => Item::Int {
                    size: 2,
                    signed: false,
                },
                b'l' => Item::Int {
                    size: 8,
                    signed: true,
                },
                b'L' => Item::Int {
                    size: 8,
                    signed: false,
                },
                b'T' => Item::Int {
                    size: 8,
                    signed: false,
                },
                b'i' | b'I' => {
                    let size = self.number().unwrap_or(4);
                    if size > MAX_INT_SIZE {
                        return Err(Error::runtime(format!(
                            "integral size {size} is larger than limit of {MAX_INT_SIZE}"
                        )));
                    }
                    Item::Int {
                        size,
                        signed: c == b'i',
                    }
                }
                b'f' => Item::Float,
                b'd' => Item::Double,
                b'c' => Item::Chars(self.number()),
                b's' => Item::ZString,
                other => {
                    return Err(Error::runtime(format!(
                        "invalid format option '{}'",
                        char::from(other)
                    )));
                }
            };
            return Ok(Some(item));
        }
        Ok(None)
    }

    /// Padding needed before an item of `size` at `offset` under the current alignment.
    fn padding(&self, item: Item, offset: usize) -> usize {
        let size = match item {
            Item::Int { size, .. } => size,
            Item::Float => 4,
            Item::Double => 8,
            _ => return 0,
        };
        let align = size.min(self.state.align);
        if align <= 1 || !align.is_power_of_two() {
            return 0;
        }
        (align - (offset & (align - 1))) & (align - 1)
    }
}

fn format(text: &[u8]) -> Format<'_> {
    Format {
        text,
        pos: 0,
        state: State {
            little: cfg!(target_endian = "little"),
            align: 1,
        },
    }
}

/// Builds the `struct` table.
pub(crate) fn open(lua: &Lua) -> Result<Table> {
    let table = lua.create_table()?;
    table.set(
        "pack",
        lua.create_function(|lua, (fmt, values): (mlua::String, Variadic<Value>)| {
            lua.create_string(pack(&fmt.as_bytes(), &values)?)
        })?,
    )?;
    table.set(
        "unpack",
        lua.create_function(
            |lua, (fmt, data, start): (mlua::String, mlua::String, Option<i64>)| {
                unpack(lua, &fmt.as_bytes(), &data.as_bytes(), start.unwrap_or(1))
            },
        )?,
    )?;
    table.set(
        "size",
        lua.create_function(|_, fmt: mlua::String| size(&fmt.as_bytes()))?,
    )?;
    Ok(table)
}

fn number_arg(values: &[Value], index: usize) -> Result<f64> {
    match values.get(index) {
        Some(Value::Integer(n)) => Ok(*n as f64),
        Some(Value::Number(n)) => Ok(*n),
        Some(Value::String(s)) => s
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| bad_argument(index, "number")),
        _ => Err(bad_argument(index, "number")),
    }
}

fn bad_argument(index: usize, expected: &str) -> Error {
    Error::runtime(format!(
        "bad argument #{} to 'pack' ({expected} expected)",
        index + 2
    ))
}

fn put_int(out: &mut Vec<u8>, value: u64, size: usize, little: bool, signed_negative: bool) {
    let mut bytes = Vec::with_capacity(size);
    for i in 0..size {
        let byte = if i < 8 {
            (value >> (8 * i)) as u8
        } else if signed_negative {
            0xff
        } else {
            0
        };
        bytes.push(byte);
    }
    if !little {
        bytes.reverse();
    }
    out.extend_from_slice(&bytes);
}

fn pack(fmt: &[u8], values: &[Value]) -> Result<Vec<u8>> {
    let mut format = format(fmt);
    let mut out = Vec::new();
    let mut arg = 0;
    while let Some(item) = format.next()? {
        let pad = format.padding(item, out.len());
        out.resize(out.len() + pad, 0);
        let little = format.state.little;
        match item {
            Item::Pad => out.push(0),
            Item::Int { size, signed } => {
                let n = number_arg(values, arg)?;
                arg += 1;
                let value = if signed || n < 0.0 {
                    n as i64 as u64
                } else {
                    n as u64
                };
                put_int(&mut out, value, size, little, n < 0.0);
            }
            Item::Float => {
                let n = number_arg(values, arg)? as f32;
                arg += 1;
                let bytes = if little {
                    n.to_le_bytes()
                } else {
                    n.to_be_bytes()
                };
                out.extend_from_slice(&bytes);
            }
            Item::Double => {
                let n = number_arg(values, arg)?;
                arg += 1;
                let bytes = if little {
                    n.to_le_bytes()
                } else {
                    n.to_be_bytes()
                };
                out.extend_from_slice(&bytes);
            }
            Item::Chars(len) => {
                let Some(Value::String(s)) = values.get(arg) else {
                    return Err(bad_argument(arg, "string"));
                };
                arg += 1;
                let data = s.as_bytes();
                let len = len.unwrap_or(data.len());
                if len > data.len() {
                    return Err(Error::runtime(format!(
                        "bad argument #{} to 'pack' (string too short)",
                        arg + 1
                    )));
                }
                out.extend_from_slice(&data[..len]);
            }
            Item::ZString => {
                let Some(Value::String(s)) = values.get(arg) else {
                    return Err(bad_argument(arg, "string"));
                };
                arg += 1;
                let data = s.as_bytes();
                if data.contains(&0) {
                    return Err(Error::runtime(format!(
                        "bad argument #{} to 'pack' (string contains zeros)",
                        arg + 1
                    )));
                }
                out.extend_from_slice(&data);
                out.push(0);
            }
        }
    }
    Ok(out)
}

fn read_int(data: &[u8], little: bool, signed: bool) -> f64 {
    let mut value: u64 = 0;
    let size = data.len();
    for i in 0..size.min(8) {
        let byte = if little { data[i] } else { data[size - 1 - i] };
        value |= u64::from(byte) << (8 * i);
    }
    if signed && size < 8 && size > 0 {
        let shift = 64 - 8 * size as u32;
        return ((value << shift) as i64 >> shift) as f64;
    }
    if signed {
        value as i64 as f64
    } else {
        value as f64
    }
}

fn unpack(lua: &Lua, fmt: &[u8], data: &[u8], start: i64) -> Result<MultiValue> {
    let mut pos = usize::try_from(start - 1)
        .map_err(|_| Error::runtime("bad argument #3 to 'unpack' (offset must be 1 or greater)"))?;
    if pos > data.len() {
        return Err(Error::runtime(
            "bad argument #3 to 'unpack' (offset out of range)",
        ));
    }
    let mut format = format(fmt);
    let mut values = Vec::new();
    let too_short = || Error::runtime("bad argument #2 to 'unpack' (data string too short)");
    let mut previous: Option<f64> = None;
    while let Some(item) = format.next()? {
        pos += format.padding(item, pos);
        let little = format.state.little;
        match item {
            Item::Pad => pos += 1,
            Item::Int { size, signed } => {
                let bytes = data.get(pos..pos + size).ok_or_else(too_short)?;
                let n = read_int(bytes, little, signed);
                values.push(Value::Number(n));
                previous = Some(n);
                pos += size;
            }
            Item::Float => {
                let bytes: [u8; 4] = data
                    .get(pos..pos + 4)
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(too_short)?;
                let n = if little {
                    f32::from_le_bytes(bytes)
                } else {
                    f32::from_be_bytes(bytes)
                };
                values.push(Value::Number(f64::from(n)));
                pos += 4;
            }
            Item::Double => {
                let bytes: [u8; 8] = data
                    .get(pos..pos + 8)
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(too_short)?;
                let n = if little {
                    f64::from_le_bytes(bytes)
                } else {
                    f64::from_be_bytes(bytes)
                };
                values.push(Value::Number(n));
                pos += 8;
            }
            Item::Chars(len) => {
                let len = match len {
                    Some(0) | None => {
                        let n = previous
                            .take()
                            .ok_or_else(|| Error::runtime("format 'c0' needs a previous size"))?;
                        values.pop();
                        n.max(0.0) as usize
                    }
                    Some(n) => n,
                };
                let bytes = data
                    .get(pos..pos.saturating_add(len))
                    .ok_or_else(too_short)?;
                values.push(Value::String(lua.create_string(bytes)?));
                pos += len;
            }
            Item::ZString => {
                let rest = data.get(pos..).ok_or_else(too_short)?;
                let end = rest
                    .iter()
                    .position(|&b| b == 0)
                    .ok_or_else(|| Error::runtime("unfinished string in data"))?;
                values.push(Value::String(lua.create_string(&rest[..end])?));
                pos += end + 1;
            }
        }
    }
    values.push(Value::Integer(pos as i64 + 1));
    Ok(MultiValue::from_vec(values))
}

fn size(fmt: &[u8]) -> Result<usize> {
    let mut format = format(fmt);
    let mut total = 0usize;
    while let Some(item) = format.next()? {
        total += format.padding(item, total);
        total += match item {
            Item::Pad => 1,
            Item::Int { size, .. } => size,
            Item::Float => 4,
            Item::Double => 8,
            Item::Chars(Some(n)) if n > 0 => n,
            Item::Chars(_) | Item::ZString => {
                return Err(Error::runtime("options 'c0' - 's' have undefined sizes"));
            }
        };
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_and_size_agree() {
        let packed = pack(
            b">i2Bd",
            &[Value::Integer(-2), Value::Integer(7), Value::Number(1.5)],
        )
        .unwrap();
        assert_eq!(packed.len(), size(b">i2Bd").unwrap());
        assert_eq!(&packed[..3], &[0xff, 0xfe, 7]);
    }

    #[test]
    fn bad_option_is_refused() {
        assert!(size(b"q").is_err());
    }
}
