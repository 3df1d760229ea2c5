//! Test support: a small JSON reader for the fixture manifests, SHA-1 and base64 for their
//! large and binary values, and the path of `../shared/fixtures`.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;

/// The shared fixtures written by real Redis; the tests fail loudly if they are missing.
pub(crate) fn fixtures() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures");
    assert!(
        dir.is_dir(),
        "fixtures not found at {} (the repo expects ../shared beside it)",
        dir.display()
    );
    dir
}

/// A JSON value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Json {
    Null,
    Bool(bool),
    Number(f64),
    String(String),
    Array(Vec<Json>),
    Object(BTreeMap<String, Json>),
}

impl Json {
    pub(crate) fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(map) => map.get(key),
            _ => None,
        }
    }

    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(s) => Some(s),
            _ => None,
        }
    }

    pub(crate) fn as_f64(&self) -> Option<f64> {
        match self {
            Json::Number(n) => Some(*n),
            _ => None,
        }
    }
}

/// Parses JSON text (enough of the grammar for the manifests: no surrogate pairs needed).
pub(crate) fn parse_json(text: &str) -> Json {
    let chars: Vec<char> = text.chars().collect();
    let mut pos = 0;
    parse_value(&chars, &mut pos)
}

fn skip_ws(c: &[char], pos: &mut usize) {
    while *pos < c.len() && c[*pos].is_whitespace() {
        *pos += 1;
    }
}

fn parse_value(c: &[char], pos: &mut usize) -> Json {
    skip_ws(c, pos);
    match c[*pos] {
        '{' => {
            *pos += 1;
            let mut map = BTreeMap::new();
            loop {
                skip_ws(c, pos);
                if c[*pos] == '}' {
                    *pos += 1;
                    return Json::Object(map);
                }
                let Json::String(key) = parse_value(c, pos) else {
                    panic!("object key")
                };
                skip_ws(c, pos);
                assert_eq!(c[*pos], ':');
                *pos += 1;
                let value = parse_value(c, pos);
                map.insert(key, value);
                skip_ws(c, pos);
                if c[*pos] == ',' {
                    *pos += 1;
                }
            }
        }
        '[' => {
            *pos += 1;
            let mut items = Vec::new();
            loop {
                skip_ws(c, pos);
                if c[*pos] == ']' {
                    *pos += 1;
                    return Json::Array(items);
                }
                items.push(parse_value(c, pos));
                skip_ws(c, pos);
                if c[*pos] == ',' {
                    *pos += 1;
                }
            }
        }
        '"' => {
            *pos += 1;
            let mut s = String::new();
            loop {
                let ch = c[*pos];
                *pos += 1;
                match ch {
                    '"' => return Json::String(s),
                    '\\' => {
                        let esc = c[*pos];
                        *pos += 1;
                        match esc {
                            'n' => s.push('\n'),
                            't' => s.push('\t'),
                            'r' => s.push('\r'),
                            'b' => s.push('\u{8}'),
                            'f' => s.push('\u{c}'),
                            'u' => {
                                let hex: String = c[*pos..*pos + 4].iter().collect();
                                *pos += 4;
                                s.push(
                                    char::from_u32(u32::from_str_radix(&hex, 16).unwrap())
                                        .unwrap_or('?'),
                                );
                            }
                            other => s.push(other),
                        }
                    }
                    other => s.push(other),
                }
            }
        }
        't' => {
            *pos += 4;
            Json::Bool(true)
        }
        'f' => {
            *pos += 5;
            Json::Bool(false)
        }
        'n' => {
            *pos += 4;
            Json::Null
        }
        _ => {
            let start = *pos;
            while *pos < c.len() && (c[*pos].is_ascii_digit() || "+-.eE".contains(c[*pos])) {
                *pos += 1;
            }
            let text: String = c[start..*pos].iter().collect();
            Json::Number(text.parse().unwrap())
        }
    }
}

/// Decodes standard base64.
pub(crate) fn base64(text: &str) -> Vec<u8> {
    let value = |ch: u8| -> u32 {
        match ch {
            b'A'..=b'Z' => u32::from(ch - b'A'),
            b'a'..=b'z' => u32::from(ch - b'a') + 26,
            b'0'..=b'9' => u32::from(ch - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("bad base64"),
        }
    };
    let clean: Vec<u8> = text.bytes().filter(|b| *b != b'=').collect();
    let mut out = Vec::new();
    for chunk in clean.chunks(4) {
        let mut acc = 0u32;
        for (i, &ch) in chunk.iter().enumerate() {
            acc |= value(ch) << (18 - 6 * i);
        }
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
}

/// SHA-1 as a lowercase hex string.
pub(crate) fn sha1_hex(data: &[u8]) -> String {
    amber_keyspace::Digest(amber_keyspace::sha1(data)).hex()
}

#[test]
fn sha1_known_vector() {
    assert_eq!(sha1_hex(b"abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
    assert_eq!(base64("aGVsbG8="), b"hello");
}
