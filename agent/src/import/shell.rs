//! iSCSI-HA's `iscsi-ha.conf` / `iscsi-ha_local.conf`: shell `KEY=value` lines, sourced by bash.
//!
//! Only what those files hold is accepted: comments, blank lines, `[export] KEY=value` with an
//! unquoted, `'single'` or `"double"` quoted value, `$VAR` / `${VAR}` expansion of keys assigned
//! earlier, and `\` line continuation. Anything else a shell would run (commands, `$(...)`,
//! backquotes, several assignments on a line) is refused with its line: it cannot be imported
//! without executing it.

use std::collections::BTreeMap;

use super::{Loc, ParseError};

/// Longest value after expansion (each `A=$A$A` line doubles it; iSCSI-HA's are short).
const MAX_VALUE: usize = 64 * 1024;

/// One assignment, after quote removal and expansion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// The variable name.
    pub key: String,
    /// Its value.
    pub value: String,
    /// Where it was assigned.
    pub at: Loc,
    /// Variables the value referred to that no earlier line assigned (left as written, e.g.
    /// `$HOSTNAME`, which bash takes from the environment).
    pub unresolved: Vec<String>,
}

/// Parses one file. `known` holds assignments of files read before (the local file sees the
/// main file's values, as when bash sources both).
pub fn parse(
    text: &str,
    file: &str,
    known: &BTreeMap<String, String>,
) -> Result<Vec<Assignment>, ParseError> {
    let mut vars = known.clone();
    let mut out = Vec::new();
    let mut pending = String::new();
    let mut start = 0;
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        if pending.is_empty() {
            start = n;
        }
        if let Some(body) = raw.strip_suffix('\\') {
            if !body.ends_with('\\') {
                pending.push_str(body);
                continue;
            }
        }
        pending.push_str(raw);
        let line = std::mem::take(&mut pending);
        let at = Loc::new(file, start);
        if let Some(a) = assignment(&line, &at, &vars)? {
            vars.insert(a.key.clone(), a.value.clone());
            out.push(a);
        }
    }
    if !pending.is_empty() {
        return Err(ParseError::new(
            Loc::new(file, start),
            "line continuation at the end of the file",
        ));
    }
    Ok(out)
}

fn assignment(
    line: &str,
    at: &Loc,
    vars: &BTreeMap<String, String>,
) -> Result<Option<Assignment>, ParseError> {
    let t = line.trim_start();
    if t.is_empty() || t.starts_with('#') {
        return Ok(None);
    }
    let t = t.strip_prefix("export ").map(str::trim_start).unwrap_or(t);
    let refuse = |why: &str| Err(ParseError::new(at.clone(), why));
    let Some((key, rest)) = t.split_once('=') else {
        return refuse("not a KEY=value assignment (commands are not imported)");
    };
    if !valid_key(key) {
        return refuse("not a KEY=value assignment (commands are not imported)");
    }
    let mut value = String::new();
    let mut unresolved = Vec::new();
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => loop {
                match chars.next() {
                    Some('\'') => break,
                    Some(c) => value.push(c),
                    None => return refuse("unterminated single quote"),
                }
            },
            '"' => loop {
                match chars.next() {
                    Some('"') => break,
                    Some('\\') => match chars.next() {
                        Some(c @ ('"' | '\\' | '$' | '`')) => value.push(c),
                        Some(c) => {
                            value.push('\\');
                            value.push(c);
                        }
                        None => return refuse("unterminated double quote"),
                    },
                    Some('$') => expand(&mut chars, vars, &mut value, &mut unresolved, at)?,
                    Some('`') => return refuse("command substitution is not imported"),
                    Some(c) => value.push(c),
                    None => return refuse("unterminated double quote"),
                }
            },
            '\\' => match chars.next() {
                Some(c) => value.push(c),
                None => value.push('\\'),
            },
            '$' => expand(&mut chars, vars, &mut value, &mut unresolved, at)?,
            '`' => return refuse("command substitution is not imported"),
            ' ' | '\t' => {
                let tail: String = chars.collect();
                let tail = tail.trim_start();
                if tail.is_empty() || tail.starts_with('#') {
                    break;
                }
                return refuse("text after the value (quote values that contain spaces)");
            }
            ';' | '|' | '&' | '<' | '>' | '(' | ')' => {
                return refuse("shell operators are not imported")
            }
            c => value.push(c),
        }
    }
    Ok(Some(Assignment {
        key: key.to_string(),
        value,
        at: at.clone(),
        unresolved,
    }))
}

fn valid_key(k: &str) -> bool {
    let mut c = k.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
        && c.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn expand(
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
    vars: &BTreeMap<String, String>,
    value: &mut String,
    unresolved: &mut Vec<String>,
    at: &Loc,
) -> Result<(), ParseError> {
    let braced = chars.peek() == Some(&'{');
    if chars.peek() == Some(&'(') {
        return Err(ParseError::new(
            at.clone(),
            "command substitution is not imported",
        ));
    }
    if braced {
        chars.next();
    }
    let mut name = String::new();
    while let Some(&c) = chars.peek() {
        if c.is_ascii_alphanumeric() || c == '_' {
            name.push(c);
            chars.next();
        } else {
            break;
        }
    }
    if braced && chars.next() != Some('}') {
        return Err(ParseError::new(
            at.clone(),
            "only ${NAME} expansions are imported",
        ));
    }
    if name.is_empty() {
        value.push('$');
        return Ok(());
    }
    match vars.get(&name) {
        Some(v) if value.len() + v.len() > MAX_VALUE => {
            return Err(ParseError::new(
                at.clone(),
                format!("value longer than {MAX_VALUE} bytes after expansion"),
            ))
        }
        Some(v) => value.push_str(v),
        None => {
            value.push_str(&format!("${name}"));
            unresolved.push(name);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(s: &str) -> Result<Assignment, ParseError> {
        parse(s, "f", &BTreeMap::new()).map(|mut v| v.remove(0))
    }

    #[test]
    fn values() {
        assert_eq!(one("A=b").unwrap().value, "b");
        assert_eq!(one("A=\"b c\" # x").unwrap().value, "b c");
        assert_eq!(one("export A='b $c'").unwrap().value, "b $c");
        assert_eq!(one("A=\"\"").unwrap().value, "");
        assert_eq!(one("A=a\\\nb").unwrap().value, "ab");
        let a = one("A=\"alert $HOSTNAME\"").unwrap();
        assert_eq!(a.value, "alert $HOSTNAME");
        assert_eq!(a.unresolved, vec!["HOSTNAME".to_string()]);
        let v = parse("A=x\nB=${A}y", "f", &BTreeMap::new()).unwrap();
        assert_eq!(v[1].value, "xy");
    }

    #[test]
    fn refusals() {
        for bad in [
            "echo hi",
            "A=$(hostname)",
            "A=`x`",
            "A=b c",
            "A=b; B=c",
            "A='x",
            "1A=x",
        ] {
            let e = one(bad).unwrap_err();
            assert_eq!(e.at.line, 1, "{bad}");
        }
        let doubling: String = std::iter::once("A=xxxxxxxxxxxxxxxx\n")
            .chain(std::iter::repeat_n("A=$A$A\n", 20))
            .collect();
        assert_eq!(
            parse(&doubling, "f", &BTreeMap::new()).unwrap_err().at.line,
            14
        );
        let e = parse("A=1\n\nif x", "f", &BTreeMap::new()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "f:3: not a KEY=value assignment (commands are not imported)"
        );
    }
}
