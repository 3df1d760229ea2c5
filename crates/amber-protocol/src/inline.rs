//! Splitting of inline commands (`SET "a b" c` typed into telnet) with Redis's quoting rules.

use std::ops::Range;

use thiserror::Error;

/// Why an inline line could not be split into arguments.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unbalanced quotes in request")]
pub struct SplitArgsError;

/// Splits a line into arguments as Redis's `sdssplitargs` does: whitespace separates arguments,
/// `"..."` understands `\n \r \t \b \a \\ \" \xHH`, `'...'` understands `\'`, and a closing quote
/// must be followed by whitespace or the end of the line.
/// Like Redis, which reads the line as a C string, a NUL byte ends the line.
pub fn split_args(line: &[u8]) -> Result<Vec<Vec<u8>>, SplitArgsError> {
    let args = split_inline(line)?;
    Ok(args
        .into_iter()
        .map(|arg| match arg {
            InlineArg::Span(span) => line[span].to_vec(),
            InlineArg::Unquoted(bytes) => bytes,
        })
        .collect())
}

/// One argument of an inline line, as [`split_inline`] finds it.
pub(crate) enum InlineArg {
    /// An argument without quotes: these bytes of the line, as they are.
    Span(Range<usize>),
    /// An argument with quotes: its bytes once the quotes and escapes are read.
    Unquoted(Vec<u8>),
}

/// [`split_args`], with the arguments that have no quotes (nearly all) given as spans of the
/// line, so that a caller holding the line in a shared buffer can take them without a copy.
pub(crate) fn split_inline(line: &[u8]) -> Result<Vec<InlineArg>, SplitArgsError> {
    let line = match line.iter().position(|&b| b == 0) {
        Some(nul) => &line[..nul],
        None => line,
    };
    let mut args = Vec::new();
    let mut pos = 0;
    loop {
        while pos < line.len() && is_space(line[pos]) {
            pos += 1;
        }
        if pos >= line.len() {
            return Ok(args);
        }
        let (arg, next) = split_one(line, pos)?;
        args.push(arg);
        pos = next;
    }
}

fn is_space(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

fn hex_value(byte: u8) -> Option<u8> {
    (byte as char).to_digit(16).map(|digit| digit as u8)
}

enum Quote {
    None,
    Double,
    Single,
}

/// Reads one argument starting at `start`; returns it and the position after it.
fn split_one(line: &[u8], start: usize) -> Result<(InlineArg, usize), SplitArgsError> {
    let plain_end = line[start..]
        .iter()
        .position(|&b| matches!(b, b' ' | b'\n' | b'\r' | b'\t' | 0 | b'"' | b'\''))
        .map_or(line.len(), |len| start + len);
    match line.get(plain_end) {
        Some(b'"' | b'\'') => {
            let (arg, next) = split_quoted(line, line[start..plain_end].to_vec(), plain_end)?;
            Ok((InlineArg::Unquoted(arg), next))
        }
        _ => Ok((InlineArg::Span(start..plain_end), plain_end)),
    }
}

/// Reads the rest of an argument with quotes from `pos`, where a quote opens, after the
/// bytes `arg` before it; returns the argument and the position after it.
fn split_quoted(
    line: &[u8],
    mut arg: Vec<u8>,
    mut pos: usize,
) -> Result<(Vec<u8>, usize), SplitArgsError> {
    let mut quote = Quote::None;
    loop {
        let Some(&byte) = line.get(pos) else {
            return match quote {
                Quote::None => Ok((arg, pos)),
                _ => Err(SplitArgsError),
            };
        };
        match quote {
            Quote::None => match byte {
                b' ' | b'\n' | b'\r' | b'\t' | 0 => return Ok((arg, pos)),
                b'"' => quote = Quote::Double,
                b'\'' => quote = Quote::Single,
                _ => arg.push(byte),
            },
            Quote::Double => match byte {
                b'\\' if line.get(pos + 1) == Some(&b'x') => {
                    let high = line.get(pos + 2).copied().and_then(hex_value);
                    let low = line.get(pos + 3).copied().and_then(hex_value);
                    if let (Some(high), Some(low)) = (high, low) {
                        arg.push(high * 16 + low);
                        pos += 3;
                    } else {
                        arg.push(b'x');
                        pos += 1;
                    }
                }
                b'\\' if pos + 1 < line.len() => {
                    pos += 1;
                    arg.push(match line[pos] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 0x08,
                        b'a' => 0x07,
                        other => other,
                    });
                }
                b'"' => return closing_quote(line, pos, arg),
                _ => arg.push(byte),
            },
            Quote::Single => match byte {
                b'\\' if line.get(pos + 1) == Some(&b'\'') => {
                    arg.push(b'\'');
                    pos += 1;
                }
                b'\'' => return closing_quote(line, pos, arg),
                _ => arg.push(byte),
            },
        }
        pos += 1;
    }
}

fn closing_quote(
    line: &[u8],
    pos: usize,
    arg: Vec<u8>,
) -> Result<(Vec<u8>, usize), SplitArgsError> {
    match line.get(pos + 1) {
        None => Ok((arg, pos + 1)),
        Some(&next) if is_space(next) => Ok((arg, pos + 1)),
        Some(_) => Err(SplitArgsError),
    }
}

/// Quotes `bytes` as Redis's `sdscatrepr` does, the form [`split_args`] reads back: in double
/// quotes, with `\\`, `\"`, `\n`, `\r`, `\t`, `\a` and `\b` escaped and other bytes outside
/// printable ASCII as `\xHH`.
pub fn quote_arg(bytes: &[u8]) -> String {
    let mut quoted = String::with_capacity(bytes.len() + 2);
    quoted.push('"');
    for &byte in bytes {
        match byte {
            b'\\' => quoted.push_str("\\\\"),
            b'"' => quoted.push_str("\\\""),
            b'\n' => quoted.push_str("\\n"),
            b'\r' => quoted.push_str("\\r"),
            b'\t' => quoted.push_str("\\t"),
            7 => quoted.push_str("\\a"),
            8 => quoted.push_str("\\b"),
            0x20..=0x7e => quoted.push(byte as char),
            other => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                quoted.push_str("\\x");
                quoted.push(HEX[usize::from(other >> 4)] as char);
                quoted.push(HEX[usize::from(other & 15)] as char);
            }
        }
    }
    quoted.push('"');
    quoted
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn quoted_args_split_back_to_themselves(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            let quoted = quote_arg(&bytes);
            let split = split_args(quoted.as_bytes()).expect("quoted text splits");
            proptest::prop_assert_eq!(split, vec![bytes]);
        }
    }

    proptest::proptest! {
        #[test]
        fn a_line_of_plain_and_quoted_words_splits_back_to_them(
            words in proptest::collection::vec(
                (proptest::prelude::any::<bool>(), proptest::collection::vec(proptest::prelude::any::<u8>(), 0..12)),
                0..8,
            )
        ) {
            // A word can go unquoted when it has bytes and none that ends or quotes it.
            let plain = |bytes: &[u8]| {
                !bytes.is_empty() && bytes.iter().all(|&b| !is_space(b) && !matches!(b, 0 | b'"' | b'\''))
            };
            let mut line = Vec::new();
            for (quoted, bytes) in &words {
                if !*quoted && plain(bytes) {
                    line.extend_from_slice(bytes);
                } else {
                    line.extend_from_slice(quote_arg(bytes).as_bytes());
                }
                line.push(b' ');
            }
            let split = split_inline(&line).expect("the line splits");
            proptest::prop_assert_eq!(split.len(), words.len());
            for ((quoted, bytes), arg) in words.iter().zip(split) {
                match arg {
                    InlineArg::Span(span) => {
                        proptest::prop_assert!(!*quoted && plain(bytes));
                        proptest::prop_assert_eq!(&line[span], &bytes[..]);
                    }
                    InlineArg::Unquoted(unquoted) => {
                        proptest::prop_assert!(*quoted || !plain(bytes));
                        proptest::prop_assert_eq!(&unquoted, bytes);
                    }
                }
            }
        }
    }

    #[test]
    fn a_quote_inside_a_word_starts_quoting_there() {
        assert_eq!(split(r#"ab"c d"e"#), Err(SplitArgsError));
        assert_eq!(split(r#"ab"c d" e"#).unwrap(), ["abc d", "e"]);
        assert_eq!(split("ab'c d' e").unwrap(), ["abc d", "e"]);
    }

    #[test]
    fn quotes_as_sdscatrepr() {
        assert_eq!(quote_arg(b"a\"b\\\n\x07\x01"), "\"a\\\"b\\\\\\n\\a\\x01\"");
    }

    fn split(line: &str) -> Result<Vec<String>, SplitArgsError> {
        split_args(line.as_bytes()).map(|args| {
            args.into_iter()
                .map(|a| String::from_utf8_lossy(&a).into_owned())
                .collect()
        })
    }

    #[test]
    fn splits_plain_words() {
        assert_eq!(split("  set  a   b ").unwrap(), ["set", "a", "b"]);
        assert!(split("   ").unwrap().is_empty());
        assert_eq!(split("a\0b c").unwrap(), ["a"]);
    }

    #[test]
    fn understands_quotes_and_escapes() {
        assert_eq!(split(r#"set "a b" 'c d'"#).unwrap(), ["set", "a b", "c d"]);
        assert_eq!(split(r#""\x41\n\"""#).unwrap(), ["A\n\""]);
        assert_eq!(split(r"'it\'s'").unwrap(), ["it's"]);
        assert_eq!(split(r#""""#).unwrap(), [""]);
    }

    #[test]
    fn rejects_unbalanced_quotes() {
        assert_eq!(split(r#"set "a"#), Err(SplitArgsError));
        assert_eq!(split(r#"set "a"b"#), Err(SplitArgsError));
        assert_eq!(split("set 'a"), Err(SplitArgsError));
    }
}
