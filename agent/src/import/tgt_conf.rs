//! tgt's `targets.conf` as `tgt-admin` reads it (Perl `Config::General` with `-UseApacheInclude`,
//! `-IncludeDirectories`, `-IncludeGlob`, `-MergeDuplicateBlocks`), and what `tgt-admin -e`
//! makes of it: tids, LUN numbers, effective per-LUN settings. Facts and sources:
//! `docs/import.md`.
//!
//! Two stages, both pure: [`parse`] turns text into a tree of [`Item`]s (comments, `\`
//! continuation, quotes, `include` through a caller-supplied loader), [`targets`] applies
//! tgt-admin's rules to the tree.

use std::collections::{BTreeMap, BTreeSet};

use super::{Loc, ParseError};

/// `key value` inside or outside a block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    /// The option name, as written (tgt-admin's names are case-sensitive).
    pub key: String,
    /// The value, surrounding double quotes removed; `None` when the line has no value.
    pub value: Option<String>,
    /// Where it was written.
    pub at: Loc,
}

/// `<kind name> ... </kind>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// `target`, `backing-store`, `direct-store`, ...
    pub kind: String,
    /// The name after the kind (the IQN, the path).
    pub name: Option<String>,
    /// The opening line.
    pub at: Loc,
    /// The contents, in order.
    pub items: Vec<Item>,
}

/// One element of the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A directive.
    Option(Directive),
    /// A block.
    Block(Block),
}

/// Reads what an `include` names: the files (path, text) in the order tgt-admin reads them
/// (a glob's matches or a directory's regular files, sorted). `at` is the include line.
pub type Loader<'a> = dyn FnMut(&str, &Loc) -> Result<Vec<(String, String)>, ParseError> + 'a;

const MAX_INCLUDE_DEPTH: usize = 16;

/// Parses `text` (read from `file`), following `include` through `load`. Files already read are
/// not read again (as `Config::General` does without `-IncludeAgain`).
pub fn parse(text: &str, file: &str, load: &mut Loader<'_>) -> Result<Vec<Item>, ParseError> {
    let mut lines = Vec::new();
    let mut seen = BTreeSet::from([file.to_string()]);
    logical_lines(text, file, load, &mut seen, 0, &mut lines)?;
    let mut it = lines.into_iter();
    let (items, close) = tree(&mut it, None)?;
    debug_assert!(close.is_none());
    Ok(items)
}

/// Comments, continuation and includes: the logical lines of a file, each with its first line.
fn logical_lines(
    text: &str,
    file: &str,
    load: &mut Loader<'_>,
    seen: &mut BTreeSet<String>,
    depth: usize,
    out: &mut Vec<(Loc, String)>,
) -> Result<(), ParseError> {
    let mut long: Option<(Loc, String)> = None;
    let mut c_comment = false;
    for (i, raw) in text.lines().enumerate() {
        let at = Loc::new(file, i + 1);
        let mut l = raw.to_string();
        // C comments (Config::General's -CComments is on by default)
        if let (Some(s), Some(e)) = (l.find("/*"), l.rfind("*/")) {
            if s + 2 <= e {
                l = format!("{}{}", l[..s].trim_end(), l[e + 2..].trim_start());
            }
        } else if l.trim_start().starts_with("/*") {
            c_comment = true;
            continue;
        } else if let Some(e) = l.find("*/") {
            if !c_comment {
                return Err(ParseError::new(
                    at,
                    "end of a /* comment that was not opened",
                ));
            }
            c_comment = false;
            l = l[e + 2..].to_string();
        }
        if c_comment {
            continue;
        }
        let l = strip_comment(&l);
        if let Some(body) = l.strip_suffix('\\').filter(|b| !b.ends_with('\\')) {
            let (_, acc) = long.get_or_insert_with(|| (at.clone(), String::new()));
            acc.push_str(body.trim_start());
            continue;
        }
        if let Some((start, mut acc)) = long.take() {
            acc.push_str(l.trim_start());
            out.push((start, acc.trim().to_string()));
            continue;
        }
        let t = l.trim();
        if t.is_empty() {
            continue;
        }
        if heredoc(t) {
            return Err(ParseError::new(at, "here-documents (<<) are not imported"));
        }
        if let Some(pattern) = include(t) {
            if depth >= MAX_INCLUDE_DEPTH {
                return Err(ParseError::new(at, "includes nested too deeply"));
            }
            for (f, text) in load(&pattern, &at)? {
                if seen.insert(f.clone()) {
                    logical_lines(&text, &f, load, seen, depth + 1, out)?;
                }
            }
            continue;
        }
        out.push((at, t.to_string()));
    }
    if c_comment {
        return Err(ParseError::new(
            Loc::new(file, text.lines().count()),
            "/* comment not closed",
        ));
    }
    if let Some((start, _)) = long {
        return Err(ParseError::new(
            start,
            "line continuation at the end of the file",
        ));
    }
    Ok(())
}

/// `#` starts a comment unless escaped as `\#` (which stands for `#`).
fn strip_comment(l: &str) -> String {
    let mut out = String::new();
    let mut prev_backslash = false;
    for c in l.chars() {
        if c == '#' {
            if prev_backslash {
                out.pop();
            } else {
                break;
            }
        }
        out.push(c);
        prev_backslash = c == '\\';
    }
    out
}

fn heredoc(t: &str) -> bool {
    !t.starts_with('<')
        && t.split_once("<<")
            .is_some_and(|(k, _)| k.ends_with([' ', '=']))
}

/// `include PATH` / `include "PATH"` (case-insensitive, as with -UseApacheInclude).
fn include(t: &str) -> Option<String> {
    let (word, rest) = t.split_once(char::is_whitespace)?;
    if !word.eq_ignore_ascii_case("include") && !word.eq_ignore_ascii_case("includeoptional") {
        return None;
    }
    let rest = rest.trim();
    let unq = rest
        .strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .or_else(|| rest.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')));
    Some(unq.unwrap_or(rest).to_string())
}

fn unquote(v: &str) -> &str {
    v.strip_prefix('"')
        .map(|r| r.strip_suffix('"').unwrap_or(r))
        .unwrap_or(v)
}

/// Builds blocks from logical lines; returns at the end tag of `open` (or at the end).
fn tree(
    it: &mut std::vec::IntoIter<(Loc, String)>,
    open: Option<(&str, &Loc)>,
) -> Result<(Vec<Item>, Option<Loc>), ParseError> {
    let mut items = Vec::new();
    while let Some((at, t)) = it.next() {
        if let Some(inner) = t.strip_prefix("</").and_then(|r| r.strip_suffix('>')) {
            return match open {
                Some((kind, _)) if kind.eq_ignore_ascii_case(inner.trim()) => Ok((items, Some(at))),
                Some((kind, _)) => Err(ParseError::new(
                    at,
                    format!("</{}> closes <{kind}>", inner.trim()),
                )),
                None => Err(ParseError::new(
                    at,
                    format!("</{}> without an opening block", inner.trim()),
                )),
            };
        }
        if let Some(inner) = t.strip_prefix('<').and_then(|r| r.strip_suffix('>')) {
            if inner.ends_with('/') {
                return Err(ParseError::new(
                    at,
                    "empty-block syntax <.../> is not imported",
                ));
            }
            let inner = inner.trim();
            let (kind, name) = match inner.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
                Some(q) => (q.to_string(), None),
                None => match inner.split_once(char::is_whitespace) {
                    Some((k, n)) => (unquote(k).to_string(), Some(unquote(n.trim()).to_string())),
                    None => (inner.to_string(), None),
                },
            };
            if kind.is_empty() {
                return Err(ParseError::new(at, "empty block name"));
            }
            let (sub, close) = tree(it, Some((&kind, &at)))?;
            if close.is_none() {
                return Err(ParseError::new(at, format!("<{kind}> is never closed")));
            }
            items.push(Item::Block(Block {
                kind,
                name,
                at,
                items: sub,
            }));
            continue;
        }
        items.push(Item::Option(directive(&t, at)));
    }
    Ok((items, None))
}

/// Splits like Config::General's `split /\s*=\s*|\s+/, $_, 2`.
fn directive(t: &str, at: Loc) -> Directive {
    let cut = t.find(|c: char| c.is_whitespace() || c == '=');
    let (key, value) = match cut {
        None => (t, None),
        Some(i) => {
            let rest = t[i..].trim_start();
            let rest = match rest.strip_prefix('=') {
                Some(r) => r.trim_start(),
                None => rest,
            };
            (&t[..i], Some(rest))
        }
    };
    Directive {
        key: key.to_string(),
        value: value
            .filter(|v| !v.is_empty())
            .map(|v| unquote(v).to_string()),
        at,
    }
}

/// LUN-level directives tgt-admin knows (allowed at target level too, as defaults for every LUN).
pub const LUN_KEYS: [&str; 24] = [
    "write-cache",
    "scsi_id",
    "scsi_sn",
    "vendor_id",
    "product_id",
    "product_rev",
    "sense_format",
    "removable",
    "online",
    "path",
    "mode_page",
    "readonly",
    "device-type",
    "bs-type",
    "bsopts",
    "bsoflags",
    "block-size",
    "lbppbe",
    "la_lba",
    "optimal_xfer_gran",
    "optimal_xfer_len",
    "params",
    "allow-in-use",
    "lun",
];

/// iSCSI target parameters tgt-admin passes to `tgtadm --mode target --op update`.
pub const ISCSI_PARAMS: [&str; 20] = [
    "MaxRecvDataSegmentLength",
    "MaxXmitDataSegmentLength",
    "HeaderDigest",
    "DataDigest",
    "InitialR2T",
    "MaxOutstandingR2T",
    "ImmediateData",
    "FirstBurstLength",
    "MaxBurstLength",
    "DataPDUInOrder",
    "DataSequenceInOrder",
    "ErrorRecoveryLevel",
    "IFMarker",
    "OFMarker",
    "DefaultTime2Wait",
    "DefaultTime2Retain",
    "OFMarkInt",
    "IFMarkInt",
    "MaxConnections",
    "state",
];

/// One LU as `tgt-admin -e` creates it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TgtLun {
    /// The LUN number tgt-admin gives it.
    pub lun: u32,
    /// The backing store path.
    pub path: String,
    /// `direct-store` rather than `backing-store`.
    pub direct: bool,
    /// Where it was defined.
    pub at: Loc,
    /// Effective LUN-level settings: the LUN block's, else the target's (`mode_page` and
    /// `params` may repeat; everything else once).
    pub settings: BTreeMap<String, Vec<Directive>>,
    /// Directives in the LUN block tgt-admin does not know (it ignores them).
    pub unknown: Vec<Directive>,
}

impl TgtLun {
    /// The single value of a setting.
    pub fn get(&self, key: &str) -> Option<&Directive> {
        self.settings.get(key).and_then(|v| v.first())
    }
}

/// One target as `tgt-admin -e` creates it on a tgtd with no targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TgtTarget {
    /// The IQN.
    pub name: String,
    /// The (first) opening line.
    pub at: Loc,
    /// The tid tgt-admin gives it (targets in name order from 1, or `controller_tid`).
    pub tid: u32,
    /// LUNs in creation order.
    pub luns: Vec<TgtLun>,
    /// `initiator-address` values.
    pub initiator_addresses: Vec<Directive>,
    /// `initiator-name` values.
    pub initiator_names: Vec<Directive>,
    /// `incominguser USER PASSWORD` lines.
    pub incoming: Vec<Directive>,
    /// `outgoinguser USER PASSWORD` lines (tgt-admin uses only the first).
    pub outgoing: Vec<Directive>,
    /// Target-level directives not covered above: `driver`, iSCSI parameters, unknown keys.
    pub other: Vec<Directive>,
    /// Blocks inside the target other than LUN blocks (tgt-admin ignores them).
    pub other_blocks: Vec<Loc>,
}

/// The whole file as tgt-admin applies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TgtConfig {
    /// Top-level directives (`default-driver`, `control-port`, iSNS, discovery users, unknown).
    pub globals: Vec<Directive>,
    /// Top-level blocks other than `target` (tgt-admin ignores them).
    pub other_blocks: Vec<Loc>,
    /// Targets in tgt-admin's order (by name).
    pub targets: Vec<TgtTarget>,
}

fn value(d: &Directive) -> Result<&str, ParseError> {
    d.value.as_deref().ok_or_else(|| {
        ParseError::new(
            d.at.clone(),
            format!("{} has no value (tgt-admin refuses this too)", d.key),
        )
    })
}

fn once<'a>(ds: &'a [Directive], what: &str) -> Result<Option<&'a Directive>, ParseError> {
    match ds {
        [] => Ok(None),
        [d] => value(d).map(|_| Some(d)),
        [_, d, ..] => Err(ParseError::new(
            d.at.clone(),
            format!("{what} given more than once (tgt-admin refuses this too)"),
        )),
    }
}

fn multi(key: &str) -> bool {
    matches!(key, "mode_page" | "params")
}

/// Applies tgt-admin's rules to a parsed tree.
pub fn targets(items: &[Item]) -> Result<TgtConfig, ParseError> {
    let mut globals = Vec::new();
    let mut other_blocks = Vec::new();
    // -MergeDuplicateBlocks: blocks of one target are merged
    let mut by_name: BTreeMap<String, (Loc, Vec<Item>)> = BTreeMap::new();
    for item in items {
        match item {
            Item::Option(d) => globals.push(d.clone()),
            Item::Block(b) if b.kind == "target" => {
                let Some(name) = b.name.clone().filter(|n| !n.is_empty()) else {
                    return Err(ParseError::new(b.at.clone(), "<target> without a name"));
                };
                by_name
                    .entry(name)
                    .or_insert_with(|| (b.at.clone(), Vec::new()))
                    .1
                    .extend(b.items.iter().cloned());
            }
            Item::Block(b) => other_blocks.push(b.at.clone()),
        }
    }
    let mut out = Vec::new();
    let mut next_tid = 0u32;
    for (name, (at, items)) in by_name {
        let t = target(&name, at, &items, &mut next_tid)?;
        out.push(t);
    }
    Ok(TgtConfig {
        globals,
        other_blocks,
        targets: out,
    })
}

fn target(
    name: &str,
    at: Loc,
    items: &[Item],
    next_tid: &mut u32,
) -> Result<TgtTarget, ParseError> {
    let mut opts: BTreeMap<&str, Vec<Directive>> = BTreeMap::new();
    // path -> (block at, directives); line-form stores have no block
    let mut stores: [BTreeMap<String, Store>; 2] = Default::default();
    let mut forms: [(bool, bool); 2] = Default::default();
    let mut other_blocks = Vec::new();
    for item in items {
        match item {
            Item::Option(d) => {
                // tgt-admin's check_value: every target directive needs a value
                let v = value(d)?;
                let k = d.key.as_str();
                if let Some(ix) = store_kind(k) {
                    let path = v.to_string();
                    forms[ix].0 = true;
                    stores[ix]
                        .entry(path)
                        .or_insert_with(|| (d.at.clone(), Vec::new(), Vec::new()));
                } else {
                    opts.entry(k).or_default().push(d.clone());
                }
            }
            Item::Block(b) => match store_kind(&b.kind) {
                Some(ix) => {
                    let Some(path) = b.name.clone().filter(|p| !p.is_empty()) else {
                        return Err(ParseError::new(
                            b.at.clone(),
                            format!("<{}> without a path", b.kind),
                        ));
                    };
                    forms[ix].1 = true;
                    let e = stores[ix]
                        .entry(path)
                        .or_insert_with(|| (b.at.clone(), Vec::new(), Vec::new()));
                    for i in &b.items {
                        match i {
                            Item::Option(d) => e.1.push(d.clone()),
                            Item::Block(inner) => e.2.push(inner.at.clone()),
                        }
                    }
                }
                None => other_blocks.push(b.at.clone()),
            },
        }
    }
    for (ix, (line, block)) in forms.iter().enumerate() {
        if *line && *block {
            let kind = ["backing-store", "direct-store"][ix];
            return Err(ParseError::new(
                at,
                format!(
                    "{kind} written both as a line and as a block (Config::General refuses this)"
                ),
            ));
        }
    }
    for (k, ds) in &opts {
        if !multi(k) && LUN_KEYS.contains(k) || *k == "controller_tid" || *k == "driver" {
            once(ds, k)?;
        }
    }
    let tid = match opts.get("controller_tid").and_then(|d| d.first()) {
        Some(d) => value(d)?
            .parse::<u32>()
            .ok()
            .filter(|t| *t > 0)
            .ok_or_else(|| ParseError::new(d.at.clone(), "controller_tid must be a number > 0"))?,
        None => *next_tid + 1,
    };
    *next_tid = tid;

    // LUN numbers: explicit `lun` in a block reserves its number; the others take the lowest
    // free one, backing stores before direct stores, each in path order.
    let target_lun = opts.get("lun").and_then(|d| d.first()).cloned();
    let mut taken: BTreeSet<u32> = BTreeSet::new();
    for s in &stores {
        for (_, ds, _) in s.values() {
            let l: Vec<Directive> = ds.iter().filter(|d| d.key == "lun").cloned().collect();
            if let Some(d) = once(&l, "lun")? {
                taken.insert(lun_number(d)?);
            }
        }
    }
    let mut luns = Vec::new();
    let mut used = BTreeSet::new();
    for (ix, s) in stores.iter().enumerate() {
        for (path, (sat, ds, inner_blocks)) in s {
            let mut settings: BTreeMap<String, Vec<Directive>> = BTreeMap::new();
            let mut unknown = Vec::new();
            for d in ds {
                value(d)?;
                if LUN_KEYS.contains(&d.key.as_str()) {
                    settings.entry(d.key.clone()).or_default().push(d.clone());
                } else {
                    unknown.push(d.clone());
                }
            }
            for (k, v) in &settings {
                if !multi(k) {
                    once(v, k)?;
                }
            }
            for k in LUN_KEYS {
                if !settings.contains_key(k) {
                    if let Some(v) = opts.get(k) {
                        settings.insert(k.to_string(), v.clone());
                    }
                }
            }
            let lun = match (&target_lun, ds.iter().find(|d| d.key == "lun")) {
                (Some(d), _) => lun_number(d)?,
                (None, Some(d)) => lun_number(d)?,
                (None, None) => {
                    let n = (1..).find(|n| !taken.contains(n)).unwrap_or(1);
                    taken.insert(n);
                    n
                }
            };
            if !used.insert(lun) {
                return Err(ParseError::new(
                    sat.clone(),
                    format!("LUN {lun} of {name} given twice (tgtadm would refuse the second)"),
                ));
            }
            if let Some(b) = inner_blocks.first() {
                return Err(ParseError::new(
                    b.clone(),
                    "blocks inside a LUN block are not imported",
                ));
            }
            luns.push(TgtLun {
                lun,
                path: path.clone(),
                direct: ix == 1,
                at: sat.clone(),
                settings,
                unknown,
            });
        }
    }
    let take = |k: &str| opts.get(k).cloned().unwrap_or_default();
    for k in [
        "initiator-address",
        "initiator-name",
        "incominguser",
        "outgoinguser",
    ] {
        for d in take(k) {
            value(&d)?;
        }
    }
    let consumed = |k: &str| {
        LUN_KEYS.contains(&k)
            || matches!(
                k,
                "initiator-address"
                    | "initiator-name"
                    | "incominguser"
                    | "outgoinguser"
                    | "controller_tid"
            )
    };
    let other = opts
        .iter()
        .filter(|(k, _)| !consumed(k))
        .flat_map(|(_, v)| v.iter().cloned())
        .collect();
    Ok(TgtTarget {
        name: name.to_string(),
        at,
        tid,
        luns,
        initiator_addresses: take("initiator-address"),
        initiator_names: take("initiator-name"),
        incoming: take("incominguser"),
        outgoing: take("outgoinguser"),
        other,
        other_blocks,
    })
}

/// A LUN's opening line, its directives, and blocks nested in it.
type Store = (Loc, Vec<Directive>, Vec<Loc>);

fn store_kind(k: &str) -> Option<usize> {
    match k {
        "backing-store" => Some(0),
        "direct-store" => Some(1),
        _ => None,
    }
}

fn lun_number(d: &Directive) -> Result<u32, ParseError> {
    value(d)?
        .parse::<u32>()
        .ok()
        .filter(|n| (1..=255).contains(n))
        .ok_or_else(|| ParseError::new(d.at.clone(), "lun must be a number 1..=255"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_include(_: &str, at: &Loc) -> Result<Vec<(String, String)>, ParseError> {
        Err(ParseError::new(at.clone(), "no includes here"))
    }

    fn conf(s: &str) -> Result<TgtConfig, ParseError> {
        targets(&parse(s, "t.conf", &mut no_include)?)
    }

    #[test]
    fn numbering_follows_tgt_admin() {
        let c = conf(
            "default-driver iscsi\n\
             <target iqn.2026-11.x:b>\n  backing-store /dev/b2 # two\n  backing-store /dev/b1\n</target>\n\
             <target iqn.2026-11.x:a>\n  <backing-store /dev/z>\n    lun 1\n  </backing-store>\n\
             <backing-store /dev/a>\n   scsi_id = \"a b\"\n  </backing-store>\n\
             direct-store /dev/d\n  scsi_sn SN\n</target>\n",
        )
        .unwrap();
        let a = &c.targets[0];
        assert_eq!((a.name.as_str(), a.tid), ("iqn.2026-11.x:a", 1));
        let l: Vec<(u32, &str)> = a.luns.iter().map(|l| (l.lun, l.path.as_str())).collect();
        assert_eq!(l, vec![(2, "/dev/a"), (1, "/dev/z"), (3, "/dev/d")]);
        assert_eq!(
            a.luns[0].get("scsi_id").unwrap().value.as_deref(),
            Some("a b")
        );
        assert_eq!(
            a.luns[2].get("scsi_sn").unwrap().value.as_deref(),
            Some("SN")
        );
        let b = &c.targets[1];
        assert_eq!(b.tid, 2);
        assert_eq!(b.luns[0].path, "/dev/b1");
        assert_eq!(c.globals[0].key, "default-driver");
    }

    #[test]
    fn syntax() {
        let c = conf("/* a\n b */\n<target \"iqn.2026-11.x:a\">\n incominguser u \\\n   p # c\n initiator-name = iqn.x\\#1\n</TARGET>\n").unwrap();
        let t = &c.targets[0];
        assert_eq!(t.incoming[0].value.as_deref(), Some("u p"));
        assert_eq!(t.incoming[0].at.line, 4);
        assert_eq!(t.initiator_names[0].value.as_deref(), Some("iqn.x#1"));
    }

    #[test]
    fn refusals() {
        for (s, line) in [
            ("<target x>\n backing-store /a\n", 1),
            ("</target>\n", 1),
            ("<target x>\n scsi_id a\n scsi_id b\n</target>\n", 3),
            ("<target x>\n backing-store /a\n <backing-store /b>\n </backing-store>\n</target>\n", 1),
            ("<target x>\n msg <<EOF\n</target>\n", 2),
            ("<target x>\n initiator-address\n</target>\n", 2),
            ("<target x>\n MaxConnections\n</target>\n", 2),
            ("include /x\n", 1),
            ("<target x>\n<backing-store /a>\nlun 0\n</backing-store>\n</target>\n", 3),
        ] {
            let e = conf(s).unwrap_err();
            assert_eq!(e.at.line, line, "{s}: {e}");
        }
    }
}
