//! drbd.conf (DRBD 8.4 syntax, `drbd.conf(5)`): statements `word ... ;` and blocks
//! `word ... { ... }`, `#` comments, double-quoted strings, `include "glob";`. Only what the
//! import needs is interpreted: resource names, device and minor, disk, meta-disk, protocol and the
//! `on HOST { address ... }` sections.

use std::collections::BTreeSet;

use super::{Loc, ParseError};

/// One statement: its words and, for a section, its contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stmt {
    /// The words before `;` or `{`.
    pub words: Vec<String>,
    /// Where the first word was.
    pub at: Loc,
    /// The section's statements (`None` for a `;` statement).
    pub block: Option<Vec<Stmt>>,
}

/// Reads the files an `include` names (a glob, relative to the including file's directory).
pub type Loader<'a> = dyn FnMut(&str, &Loc) -> Result<Vec<(String, String)>, ParseError> + 'a;

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Open,
    Close,
    Semi,
}

fn lex(text: &str, file: &str) -> Result<Vec<(Tok, Loc)>, ParseError> {
    let mut out = Vec::new();
    let mut line = 1;
    let mut it = text.chars().peekable();
    while let Some(c) = it.next() {
        let at = Loc::new(file, line);
        match c {
            '\n' => line += 1,
            c if c.is_whitespace() => {}
            '#' => {
                while it.peek().is_some_and(|c| *c != '\n') {
                    it.next();
                }
            }
            '{' => out.push((Tok::Open, at)),
            '}' => out.push((Tok::Close, at)),
            ';' => out.push((Tok::Semi, at)),
            '"' => {
                let mut w = String::new();
                loop {
                    match it.next() {
                        Some('"') => break,
                        Some('\\') => match it.next() {
                            Some(c) => w.push(c),
                            None => return Err(ParseError::new(at, "unterminated string")),
                        },
                        Some('\n') => return Err(ParseError::new(at, "unterminated string")),
                        Some(c) => w.push(c),
                        None => return Err(ParseError::new(at, "unterminated string")),
                    }
                }
                out.push((Tok::Word(w), at));
            }
            c => {
                let mut w = String::from(c);
                while let Some(&n) = it.peek() {
                    if n.is_whitespace() || matches!(n, '{' | '}' | ';' | '#' | '"') {
                        break;
                    }
                    w.push(n);
                    it.next();
                }
                out.push((Tok::Word(w), at));
            }
        }
    }
    Ok(out)
}

const MAX_INCLUDE_DEPTH: usize = 16;

/// Parses `text`, following top-level `include` statements through `load`.
pub fn parse(text: &str, file: &str, load: &mut Loader<'_>) -> Result<Vec<Stmt>, ParseError> {
    let mut seen = BTreeSet::from([file.to_string()]);
    parse_file(text, file, load, &mut seen, 0)
}

fn parse_file(
    text: &str,
    file: &str,
    load: &mut Loader<'_>,
    seen: &mut BTreeSet<String>,
    depth: usize,
) -> Result<Vec<Stmt>, ParseError> {
    let toks = lex(text, file)?;
    let mut it = toks.into_iter().peekable();
    let stmts = block(&mut it, None)?;
    let mut out = Vec::new();
    for s in stmts {
        if s.block.is_none() && s.words.first().is_some_and(|w| w == "include") {
            let [_, pattern] = s.words.as_slice() else {
                return Err(ParseError::new(s.at, "include takes one path"));
            };
            if depth >= MAX_INCLUDE_DEPTH {
                return Err(ParseError::new(s.at, "includes nested too deeply"));
            }
            for (f, t) in load(pattern, &s.at)? {
                if seen.insert(f.clone()) {
                    out.extend(parse_file(&t, &f, load, seen, depth + 1)?);
                }
            }
        } else {
            out.push(s);
        }
    }
    Ok(out)
}

fn block(
    it: &mut std::iter::Peekable<std::vec::IntoIter<(Tok, Loc)>>,
    open: Option<&Loc>,
) -> Result<Vec<Stmt>, ParseError> {
    let mut out = Vec::new();
    let mut words: Vec<String> = Vec::new();
    let mut start: Option<Loc> = None;
    while let Some((t, at)) = it.next() {
        match t {
            Tok::Word(w) => {
                start.get_or_insert(at);
                words.push(w);
            }
            Tok::Semi => {
                let Some(s) = start.take() else {
                    return Err(ParseError::new(at, "empty statement"));
                };
                out.push(Stmt {
                    words: std::mem::take(&mut words),
                    at: s,
                    block: None,
                });
            }
            Tok::Open => {
                let s = start.take().unwrap_or_else(|| at.clone());
                let inner = block(it, Some(&at))?;
                out.push(Stmt {
                    words: std::mem::take(&mut words),
                    at: s,
                    block: Some(inner),
                });
            }
            Tok::Close => {
                if let Some(s) = start {
                    return Err(ParseError::new(s, "statement not ended with ';'"));
                }
                return match open {
                    Some(_) => Ok(out),
                    None => Err(ParseError::new(at, "'}' without '{'")),
                };
            }
        }
    }
    if let Some(s) = start {
        return Err(ParseError::new(s, "statement not ended with ';'"));
    }
    match open {
        Some(o) => Err(ParseError::new(o.clone(), "'{' is never closed")),
        None => Ok(out),
    }
}

/// An `on HOST { ... }` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrbdHost {
    /// The host name(s) after `on`.
    pub name: String,
    /// `address [af] ip:port`, the `ip:port` part.
    pub address: Option<String>,
    /// `device` inside the section.
    pub device: Option<Device>,
    /// `disk` inside the section.
    pub disk: Option<String>,
}

/// `device [PATH] [minor N]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// The device path, when written.
    pub path: Option<String>,
    /// The minor (written, or read from a `/dev/drbdN` path).
    pub minor: Option<u32>,
    /// Where it was written.
    pub at: Loc,
}

/// A resource section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrbdResource {
    /// The resource name.
    pub name: String,
    /// The `resource` line.
    pub at: Loc,
    /// `device` at resource level.
    pub device: Option<Device>,
    /// `disk` at resource level.
    pub disk: Option<String>,
    /// `meta-disk` at resource level (or in the first host).
    pub meta_disk: Option<String>,
    /// `protocol` (resource level, its `net` section, or `common`'s).
    pub protocol: Option<String>,
    /// The `on` sections.
    pub hosts: Vec<DrbdHost>,
    /// `volume N { ... }` sections, at resource level and in each `on` section.
    pub volumes: Vec<DrbdVolume>,
}

/// A `volume N { device ...; }` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrbdVolume {
    /// The volume number.
    pub number: u32,
    /// Its `device`.
    pub device: Option<Device>,
    /// Its `disk` (the backing disk, for a later move to manage mode).
    pub disk: Option<String>,
    /// Its `meta-disk`.
    pub meta_disk: Option<String>,
    /// The `volume` line.
    pub at: Loc,
}

impl DrbdResource {
    /// Every device this resource has (resource level, per host, per volume).
    pub fn devices(&self) -> impl Iterator<Item = &Device> {
        self.device
            .iter()
            .chain(self.hosts.iter().filter_map(|h| h.device.as_ref()))
            .chain(self.volumes.iter().filter_map(|v| v.device.as_ref()))
    }

    /// A volume whose devices (resource level, in `on` sections, in volume sections) give it
    /// two minors, at the second: DRBD 8.4 lets each host have its own, but the agent names a
    /// volume by one minor on both nodes (the fingerprint covers it), and this node's minor
    /// taken from the peer's section would be another device.
    pub fn minor_conflict(&self) -> Option<ParseError> {
        let mut seen: std::collections::BTreeMap<u32, (u32, &Loc)> = Default::default();
        let vol0 = self
            .device
            .iter()
            .chain(self.hosts.iter().filter_map(|h| h.device.as_ref()))
            .map(|d| (0, d));
        let vols = self
            .volumes
            .iter()
            .filter_map(|v| v.device.as_ref().map(|d| (v.number, d)));
        for (n, d) in vol0.chain(vols) {
            let Some(m) = d.minor else { continue };
            match seen.get(&n) {
                Some((m0, at0)) if *m0 != m => {
                    let why = format!(
                        "resource {} volume {n} has minor {m} here and minor {m0} at {at0}: the \
                         agent names a volume by one minor, the same on both nodes; give every \
                         host the same minor",
                        self.name
                    );
                    return Some(ParseError::new(d.at.clone(), why));
                }
                Some(_) => {}
                None => {
                    seen.insert(n, (m, &d.at));
                }
            }
        }
        None
    }

    /// The `disk` of volume `number`'s first section that has one.
    pub fn volume_disk(&self, number: u32) -> Option<&str> {
        self.volumes
            .iter()
            .filter(|v| v.number == number)
            .find_map(|v| v.disk.as_deref())
    }

    /// The minor of volume `number` (without volume sections, volume 0 is the resource's device).
    pub fn volume_minor(&self, number: u32) -> Option<u32> {
        if self.volumes.is_empty() {
            return (number == 0)
                .then(|| self.devices().find_map(|d| d.minor))
                .flatten();
        }
        self.volumes
            .iter()
            .filter(|v| v.number == number)
            .find_map(|v| v.device.as_ref().and_then(|d| d.minor))
    }

    /// The volume number and minor `path` names: udev's `/dev/drbd/by-res/NAME[/VOLUME]`, a
    /// device path written here, or `/dev/drbdN` of one of its minors.
    pub fn volume_of(&self, path: &str) -> Option<(u32, u32)> {
        if path.starts_with("/dev/drbd/by-res/") {
            // the names check-config takes: `.../NAME` only for a resource with one volume
            let number = match crate::config::by_res(std::path::Path::new(path))? {
                (name, _) if name != self.name => return None,
                (_, Some(v)) => v,
                (_, None) if self.volumes.iter().all(|v| v.number == 0) => 0,
                (_, None) => return None,
            };
            return self.volume_minor(number).map(|m| (number, m));
        }
        let names = |d: &Device| {
            d.path.as_deref() == Some(path) || (d.minor.is_some() && d.minor == minor_of_path(path))
        };
        let own = self
            .device
            .iter()
            .chain(self.hosts.iter().filter_map(|h| h.device.as_ref()));
        if let Some(m) = own.filter(|d| names(d)).find_map(|d| d.minor) {
            return Some((0, m));
        }
        self.volumes.iter().find_map(|v| {
            let d = v.device.as_ref().filter(|d| names(d))?;
            d.minor.map(|m| (v.number, m))
        })
    }
}

fn volume(s: &Stmt, body: &[Stmt]) -> Result<DrbdVolume, ParseError> {
    let number = match s.words.as_slice() {
        [_, n] => n.parse().ok(),
        _ => None,
    }
    .ok_or_else(|| ParseError::new(s.at.clone(), "volume takes one number"))?;
    let (mut device_of, mut disk, mut meta_disk) = (None, None, None);
    for st in body {
        match st.words.as_slice() {
            [d, rest @ ..] if d == "device" => device_of = Some(device(rest, &st.at)?),
            [d, path] if d == "disk" => disk = Some(path.clone()),
            [d, rest @ ..] if d == "meta-disk" => meta_disk = Some(rest.join(" ")),
            _ => {}
        }
    }
    Ok(DrbdVolume {
        number,
        device: device_of,
        disk,
        meta_disk,
        at: s.at.clone(),
    })
}

fn device(words: &[String], at: &Loc) -> Result<Device, ParseError> {
    let mut d = Device {
        path: None,
        minor: None,
        at: at.clone(),
    };
    let mut rest = words.iter();
    while let Some(w) = rest.next() {
        if w == "minor" {
            let n = rest
                .next()
                .and_then(|m| m.parse().ok())
                .ok_or_else(|| ParseError::new(at.clone(), "device ... minor needs a number"))?;
            d.minor = Some(n);
        } else if d.path.is_none() && w.starts_with('/') {
            d.path = Some(w.clone());
        } else {
            return Err(ParseError::new(
                at.clone(),
                format!("unexpected {w:?} in device"),
            ));
        }
    }
    if d.minor.is_none() {
        d.minor = d.path.as_deref().and_then(minor_of_path);
    }
    Ok(d)
}

/// `/dev/drbdN` → N.
pub fn minor_of_path(p: &str) -> Option<u32> {
    p.strip_prefix("/dev/drbd")?.parse().ok()
}

fn arg(s: &Stmt) -> Result<String, ParseError> {
    match s.words.as_slice() {
        [_, v] => Ok(v.clone()),
        _ => Err(ParseError::new(
            s.at.clone(),
            format!(
                "{} takes one value",
                s.words.first().map(String::as_str).unwrap_or("?")
            ),
        )),
    }
}

fn protocol_in(stmts: &[Stmt]) -> Result<Option<String>, ParseError> {
    let mut p = None;
    for s in stmts {
        match (s.words.first().map(String::as_str), &s.block) {
            (Some("protocol"), None) => p = Some(arg(s)?),
            (Some("net"), Some(b)) => {
                if let Some(v) = protocol_in(b)? {
                    p = Some(v);
                }
            }
            _ => {}
        }
    }
    Ok(p)
}

/// The resources of a parsed drbd.conf.
pub fn resources(stmts: &[Stmt]) -> Result<Vec<DrbdResource>, ParseError> {
    let mut common_protocol = None;
    for s in stmts {
        if let (Some("common"), Some(b)) = (s.words.first().map(String::as_str), &s.block) {
            common_protocol = protocol_in(b)?;
        }
    }
    let mut out = Vec::new();
    for s in stmts {
        let (Some("resource"), Some(b)) = (s.words.first().map(String::as_str), &s.block) else {
            continue;
        };
        let [_, name] = s.words.as_slice() else {
            return Err(ParseError::new(s.at.clone(), "resource takes one name"));
        };
        let mut r = DrbdResource {
            name: name.clone(),
            at: s.at.clone(),
            device: None,
            disk: None,
            meta_disk: None,
            protocol: protocol_in(b)?.or_else(|| common_protocol.clone()),
            hosts: Vec::new(),
            volumes: Vec::new(),
        };
        for st in b {
            let w = st.words.first().map(String::as_str);
            match (w, &st.block) {
                (Some("device"), None) => r.device = Some(device(&st.words[1..], &st.at)?),
                (Some("disk"), None) => r.disk = Some(arg(st)?),
                (Some("meta-disk"), None) => r.meta_disk = st.words.get(1).cloned(),
                (Some("volume"), Some(vb)) => r.volumes.push(volume(st, vb)?),
                (Some("on"), Some(hb)) => {
                    let mut h = DrbdHost {
                        name: st.words[1..].join(" "),
                        address: None,
                        device: None,
                        disk: None,
                    };
                    for hs in hb {
                        if let (Some("volume"), Some(vb)) =
                            (hs.words.first().map(String::as_str), &hs.block)
                        {
                            r.volumes.push(volume(hs, vb)?);
                            continue;
                        }
                        match hs.words.first().map(String::as_str) {
                            Some("address") => h.address = hs.words.last().cloned(),
                            Some("device") => h.device = Some(device(&hs.words[1..], &hs.at)?),
                            Some("disk") => h.disk = Some(arg(hs)?),
                            Some("meta-disk") if r.meta_disk.is_none() => {
                                r.meta_disk = hs.words.get(1).cloned()
                            }
                            _ => {}
                        }
                    }
                    r.hosts.push(h);
                }
                _ => {}
            }
        }
        out.push(r);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(s: &str) -> Result<Vec<DrbdResource>, ParseError> {
        let mut none = |_: &str, at: &Loc| Err(ParseError::new(at.clone(), "no include"));
        resources(&parse(s, "d.conf", &mut none)?)
    }

    #[test]
    fn resources_84() {
        let r = res(
            "global { usage-count no; }\ncommon { net { protocol B; } }\n\
             resource iscsi1 { # x\n device /dev/drbd1;\n disk /dev/sdb1;\n meta-disk internal;\n\
             on \"host one\" { address 10.0.0.1:7789; }\n on h2 { address ipv4 10.0.0.2:7789; }\n}\n\
             resource r2 { net { protocol C; } on a { device minor 4; disk /d; address 1.2.3.4:1; } }\n",
        )
        .unwrap();
        assert_eq!(r[0].name, "iscsi1");
        assert_eq!(r[0].device.as_ref().unwrap().minor, Some(1));
        assert_eq!(r[0].protocol.as_deref(), Some("B"));
        assert_eq!(r[0].hosts[0].name, "host one");
        assert_eq!(r[0].hosts[1].address.as_deref(), Some("10.0.0.2:7789"));
        assert_eq!(r[1].protocol.as_deref(), Some("C"));
        assert_eq!(r[1].devices().next().unwrap().minor, Some(4));
    }

    #[test]
    fn volumes_84() {
        let r = res(
            "resource r0 {\n volume 0 { device /dev/drbd1 minor 1; disk /dev/sdb; }\n\
             volume 1 { device minor 2; disk /dev/sdc; }\n on a { address 10.0.0.1:7789; }\n}\n\
             resource r1 { on a { volume 0 { device /dev/drbd5; } volume 3 { device /dev/drbd6; } } }\n",
        )
        .unwrap();
        assert_eq!(r[0].volumes.len(), 2);
        assert_eq!(r[0].volume_of("/dev/drbd2"), Some((1, 2)));
        assert_eq!(r[0].volume_of("/dev/drbd/by-res/r0/1"), Some((1, 2)));
        // a directory when the resource has several volumes; udev's volume is plain decimal
        for no in [
            "/dev/drbd/by-res/r0",
            "/dev/drbd/by-res/r0/01",
            "/dev/drbd/by-res/r0/1/",
        ] {
            assert_eq!(r[0].volume_of(no), None, "{no}");
        }
        assert_eq!(r[1].volume_of("/dev/drbd/by-res/r1/0"), Some((0, 5)));
        assert_eq!(r[0].volume_of("/dev/drbd3"), None);
        assert_eq!(r[1].volume_of("/dev/drbd6"), Some((3, 6)));
        assert_eq!(r[1].volume_minor(0), Some(5));
        assert_eq!(r[0].minor_conflict(), None);
        // kept for the comment that prepares a move to manage mode
        assert_eq!(
            (r[0].volume_disk(0), r[0].volume_disk(1)),
            (Some("/dev/sdb"), Some("/dev/sdc"))
        );
        // each host its own minor: DRBD takes it, the agent's one minor per volume cannot
        let two = res(
            "resource r0 {\n on a { address 10.0.0.1:7789; volume 0 { device minor 1; } }\n \
             on b { address 10.0.0.2:7789; volume 0 { device minor 7; } }\n}\n\
             resource r1 {\n on a { device /dev/drbd3; }\n on b { device /dev/drbd4; }\n}\n",
        )
        .unwrap();
        for r in &two {
            let e = r.minor_conflict().expect("two minors");
            assert!(e.reason.contains("has minor"), "{e}");
        }
        assert_eq!(two[0].minor_conflict().unwrap().at.line, 3);
        assert_eq!(r[1].devices().count(), 2);
    }

    #[test]
    fn refusals() {
        for (s, line) in [
            ("resource r {\n device /dev/drbd1\n}", 2),
            ("resource r {\n", 1),
            ("}\n", 1),
            ("resource r { device minor x; }", 1),
            ("resource r {\n volume x { device minor 1; }\n}", 2),
            ("include \"a\";", 1),
            ("a \"b\n;", 1),
        ] {
            let e = res(s).unwrap_err();
            assert_eq!(e.at.line, line, "{s}: {e}");
        }
    }
}
