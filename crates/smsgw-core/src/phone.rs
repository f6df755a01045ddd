//! `REGEXP` phone number rewriting in privacyIDEA's form `/pattern/replacement/`.

use regex::Regex;

/// A compiled `REGEXP` option: Python `re.sub(pattern, replacement, phone)` semantics.
///
/// privacyIDEA splits the option with `^/(.*)/(.*)/$` (greedy, so the pattern may contain `/`
/// but the replacement may not) and applies `re.sub`. The replacement uses Python's syntax:
/// `\1` and `\g<1>` / `\g<name>` for groups, `\\` for a backslash, `\n`, `\t` … for control
/// characters. The pattern is compiled by the `regex` crate, whose syntax is Python's for
/// everything a phone rule needs; look-around and back-references inside the pattern are not
/// supported and are reported when the configuration is checked.
///
/// ```
/// use smsgw_core::PhoneRewrite;
/// let r = PhoneRewrite::parse(r"/^\+49/0/").unwrap();
/// assert_eq!(r.apply("+491511234567"), "01511234567");
/// let r = PhoneRewrite::parse(r"/^0(\d+)/+49\1/").unwrap();
/// assert_eq!(r.apply("01511234567"), "+491511234567");
/// ```
#[derive(Debug, Clone)]
pub struct PhoneRewrite {
    pattern: Regex,
    replacement: String,
}

impl PhoneRewrite {
    /// Parses and compiles a `REGEXP` value; the error says what is wrong.
    pub fn parse(option: &str) -> Result<Self, String> {
        let split = Regex::new(r"^/(.*)/(.*)/$").expect("static regex");
        let caps = split.captures(option).ok_or_else(|| {
            "must have the form /pattern/replacement/ (e.g. /^\\+49/0/)".to_owned()
        })?;
        let pattern = Regex::new(&caps[1])
            .map_err(|e| format!("the pattern does not compile: {}", one_line(&e.to_string())))?;
        let replacement = python_replacement(&caps[2], &pattern)?;
        Ok(PhoneRewrite {
            pattern,
            replacement,
        })
    }

    /// A rule that changes nothing.
    pub(crate) fn identity() -> Self {
        PhoneRewrite {
            pattern: Regex::new(r"[^\s\S]").expect("static regex"),
            replacement: String::new(),
        }
    }

    /// Rewrites a phone number.
    pub fn apply(&self, phone: &str) -> String {
        self.pattern
            .replace_all(phone, self.replacement.as_str())
            .into_owned()
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Translates a Python `re.sub` replacement template into the `regex` crate's syntax.
fn python_replacement(py: &str, pattern: &Regex) -> Result<String, String> {
    let groups = pattern.captures_len() - 1;
    let check_group = |n: usize| {
        if n > groups {
            Err(format!(
                "the replacement refers to group {n}, but the pattern has {groups}"
            ))
        } else {
            Ok(())
        }
    };
    let mut out = String::with_capacity(py.len());
    let mut chars = py.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '$' => out.push_str("$$"),
            '\\' => match chars.next() {
                None => return Err("the replacement ends with a lone backslash".into()),
                Some(d) if d.is_ascii_digit() => {
                    let mut num = d.to_string();
                    if let Some(&e) = chars.peek()
                        && e.is_ascii_digit()
                    {
                        num.push(e);
                        chars.next();
                    }
                    let n: usize = num.parse().expect("digits");
                    check_group(n)?;
                    out.push_str(&format!("${{{n}}}"));
                }
                Some('g') => {
                    if chars.next() != Some('<') {
                        return Err("\\g must be followed by <group>".into());
                    }
                    let mut name = String::new();
                    loop {
                        match chars.next() {
                            Some('>') => break,
                            Some(ch) => name.push(ch),
                            None => return Err("unterminated \\g<…> in the replacement".into()),
                        }
                    }
                    if let Ok(n) = name.parse::<usize>() {
                        check_group(n)?;
                    } else if !pattern.capture_names().flatten().any(|g| g == name) {
                        return Err(format!("unknown group name '{name}' in the replacement"));
                    }
                    out.push_str(&format!("${{{name}}}"));
                }
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('r') => out.push('\r'),
                Some('f') => out.push('\x0c'),
                Some('v') => out.push('\x0b'),
                Some('a') => out.push('\x07'),
                Some('b') => out.push('\x08'),
                Some('\\') => out.push('\\'),
                Some(d) if d.is_ascii_alphabetic() => {
                    return Err(format!("bad escape \\{d} in the replacement"));
                }
                Some(d) => {
                    out.push('\\');
                    if d == '$' {
                        out.push_str("$$");
                    } else {
                        out.push(d);
                    }
                }
            },
            c => out.push(c),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Expected values computed with CPython 3.11:
    /// `re.sub(re.match("^/(.*)/(.*)/$", r).group(1), re.match(...).group(2), phone)`.
    #[test]
    fn matches_python_re_sub() {
        let cases: &[(&str, &str, &str)] = &[
            (r"/\+//", "+491511234567", "491511234567"),
            (r"/^\+49/0/", "+491511234567", "01511234567"),
            (r"/^0(\d+)/+49\1/", "01511234567", "+491511234567"),
            (r"/^0(\d+)/+49\g<1>/", "01511234567", "+491511234567"),
            (
                r"/^0(?P<rest>\d+)/0049\g<rest>/",
                "01511234567",
                "00491511234567",
            ),
            (r"/[ \-\/]//", "+49 151/123-4567", "+491511234567"),
            (r"/\s//", " +49 151 1234567 ", "+491511234567"),
            (r"/^(\d)(\d)/\2\1/", "1234", "2134"),
            (r"/4/$/", "+4949", "+$9$9"),
            (r"/^/00/", "49151", "0049151"),
            (r"/x/\\/", "axb", r"a\b"),
            (r"/(\d+)//", "abc", "abc"),
        ];
        for (rule, phone, want) in cases {
            let r = PhoneRewrite::parse(rule).unwrap_or_else(|e| panic!("{rule}: {e}"));
            assert_eq!(r.apply(phone), *want, "rule {rule} on {phone}");
        }
    }

    #[test]
    fn rejects_bad_rules() {
        for (rule, needle) in [
            ("+49", "form /pattern/replacement/"),
            ("/(/x/", "does not compile"),
            (r"/(\d)/\2/", "group 2"),
            (r"/(\d)/\q/", "bad escape"),
            (r"/(\d)/\g<nope>/", "unknown group"),
        ] {
            let e = PhoneRewrite::parse(rule).unwrap_err();
            assert!(e.contains(needle), "{rule}: {e}");
        }
    }
}
