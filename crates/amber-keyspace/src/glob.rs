//! Glob-style pattern matching as Redis's `stringmatchlen` does it (for `KEYS`, `SCAN MATCH`,
//! `CONFIG GET`): `*`, `?`, `[abc]`, `[^a-z]`, and `\` to escape.

/// Whether `text` matches `pattern`; `nocase` folds ASCII case.
pub fn glob_match(pattern: &[u8], text: &[u8], nocase: bool) -> bool {
    let mut skip_longer = false;
    match_from(pattern, text, nocase, 0, &mut skip_longer)
}

fn eq(a: u8, b: u8, nocase: bool) -> bool {
    if nocase {
        a.eq_ignore_ascii_case(&b)
    } else {
        a == b
    }
}

/// `skip_longer` is set once a `*` tried every remaining length of the text and failed: an
/// outer `*` then cannot succeed by giving it less text either, so it stops (as Redis does),
/// which keeps patterns like `a*a*a*...b` linear instead of exponential.
fn match_from(
    mut pattern: &[u8],
    mut text: &[u8],
    nocase: bool,
    depth: u32,
    skip_longer: &mut bool,
) -> bool {
    // Redis caps the recursion caused by `*` to keep pathological patterns cheap.
    if depth > 1000 {
        return false;
    }
    while let Some(&p) = pattern.first() {
        match p {
            b'*' => {
                while pattern.len() > 1 && pattern[1] == b'*' {
                    pattern = &pattern[1..];
                }
                if pattern.len() == 1 {
                    return true;
                }
                for start in 0..text.len() {
                    if match_from(
                        &pattern[1..],
                        &text[start..],
                        nocase,
                        depth + 1,
                        skip_longer,
                    ) {
                        return true;
                    }
                    if *skip_longer {
                        return false;
                    }
                }
                *skip_longer = true;
                return false;
            }
            b'?' => {
                if text.is_empty() {
                    return false;
                }
                text = &text[1..];
            }
            b'[' => {
                let Some((&c, rest)) = text.split_first() else {
                    return false;
                };
                let (matched, after) = match_class(&pattern[1..], c, nocase);
                if !matched {
                    return false;
                }
                pattern = after;
                text = rest;
                continue;
            }
            b'\\' if pattern.len() >= 2 => {
                pattern = &pattern[1..];
                let Some((&c, rest)) = text.split_first() else {
                    return false;
                };
                if !eq(pattern[0], c, nocase) {
                    return false;
                }
                text = rest;
            }
            _ => {
                let Some((&c, rest)) = text.split_first() else {
                    return false;
                };
                if !eq(p, c, nocase) {
                    return false;
                }
                text = rest;
            }
        }
        pattern = &pattern[1..];
    }
    text.is_empty()
}

/// Matches `c` against a `[...]` class whose body starts at `pattern`; returns the result and
/// the pattern after the closing `]` (or the end, if the class is not closed, as Redis does).
fn match_class(mut pattern: &[u8], c: u8, nocase: bool) -> (bool, &[u8]) {
    let negate = pattern.first() == Some(&b'^');
    if negate {
        pattern = &pattern[1..];
    }
    let mut matched = false;
    loop {
        match pattern {
            [] => break,
            [b']', rest @ ..] => {
                pattern = rest;
                break;
            }
            [b'\\', escaped, rest @ ..] => {
                matched |= eq(*escaped, c, nocase);
                pattern = rest;
            }
            [low, b'-', high, rest @ ..] if *high != b']' => {
                let (mut low, mut high, mut c) = (*low, *high, c);
                if low > high {
                    std::mem::swap(&mut low, &mut high);
                }
                if nocase {
                    low = low.to_ascii_lowercase();
                    high = high.to_ascii_lowercase();
                    c = c.to_ascii_lowercase();
                }
                matched |= low <= c && c <= high;
                pattern = rest;
            }
            [single, rest @ ..] => {
                matched |= eq(*single, c, nocase);
                pattern = rest;
            }
        }
    }
    (matched != negate, pattern)
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    fn m(p: &str, t: &str) -> bool {
        glob_match(p.as_bytes(), t.as_bytes(), false)
    }

    #[test]
    fn matches_like_redis() {
        assert!(m("*", "anything"));
        assert!(m("h?llo", "hello"));
        assert!(!m("h?llo", "hllo"));
        assert!(m("h*llo", "heeeello"));
        assert!(m("h[ae]llo", "hallo"));
        assert!(!m("h[ae]llo", "hillo"));
        assert!(m("h[^e]llo", "hallo"));
        assert!(!m("h[^e]llo", "hello"));
        assert!(m("h[a-b]llo", "hbllo"));
        assert!(m("h\\*llo", "h*llo"));
        assert!(!m("h\\*llo", "hello"));
        assert!(m("*max*", "maxclients"));
        assert!(!m("a*b", "acd"));
        assert!(glob_match(b"PORT", b"port", true));
        assert!(m("a*", "a"));
        assert!(!m("a*b", "a"));
        assert!(m("*b*", "abc"));
    }

    #[test]
    fn nested_stars_stay_cheap() {
        // Without the early stop this takes hours: 20 stars against 40 letters.
        let pattern = format!("{}b", "a*".repeat(20));
        let text = "a".repeat(40);
        assert!(!m(&pattern, &text));
        assert!(m(&pattern, &format!("{text}b")));
    }
}
