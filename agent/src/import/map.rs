//! From the parsed inputs to this agent's TOML: what maps where, and a [`Note`] for everything
//! that does not. Pure; [`super::files`] reads the inputs.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use super::accounts::Accounts;
use super::drbd_conf::{minor_of_path, DrbdResource};
use super::iscsi_ha::{note_unused, write_address, write_alerts, write_role};
use super::shell::Assignment;
use super::tgt_conf::{Directive, TgtConfig, TgtLun, TgtTarget, ISCSI_PARAMS};
use super::{Imported, Loc, Note, ParseError, SecretFile};

/// What [`build`] works from.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    /// This node's name (`node = ...`; also stands for `$HOSTNAME` in iSCSI-HA values).
    pub node: &'a str,
    /// iscsi-ha.conf then iscsi-ha_local.conf assignments, in reading order (later wins).
    pub iscsi_ha: &'a [Assignment],
    /// tgt's configuration as tgt-admin applies it.
    pub tgt: &'a TgtConfig,
    /// drbd.conf's resources, when given.
    pub drbd: Option<&'a [DrbdResource]>,
    /// Where secret files will be written; `None`: secrets are not carried over (noted).
    pub secrets_dir: Option<&'a Path>,
}

/// tgtd's identity defaults for an LU without them (tgt `usr/spc.c` `spc_lu_init`,
/// `usr/sbc.c`): vendor, product.
const TGTD_VENDOR: &str = "IET";
const TGTD_PRODUCT: &str = "VIRTUAL-DISK";

pub(super) struct Out {
    pub(super) toml: String,
    pub(super) notes: Vec<Note>,
    pub(super) secrets: Vec<SecretFile>,
    accounts: Accounts,
}

impl Out {
    pub(super) fn kv(&mut self, key: &str, value: impl Into<toml::Value>, from: &str) {
        let v: toml::Value = value.into();
        let _ = writeln!(self.toml, "{key} = {v}   # {from}");
    }
    pub(super) fn note(&mut self, at: &Loc, setting: impl Into<String>, reason: impl Into<String>) {
        self.notes.push(Note {
            at: at.clone(),
            setting: setting.into(),
            reason: reason.into(),
        });
    }
}

/// Builds the configuration. Errors name the input line that cannot be carried over safely.
pub fn build(inp: &Inputs<'_>) -> Result<Imported, ParseError> {
    let mut o = Out {
        toml: String::new(),
        notes: Vec::new(),
        secrets: Vec::new(),
        accounts: Accounts::default(),
    };
    // later assignments win, as when bash sources iscsi-ha.conf then iscsi-ha_local.conf
    let mut vars: BTreeMap<&str, &Assignment> = BTreeMap::new();
    for a in inp.iscsi_ha {
        if let Some(old) = vars.insert(a.key.as_str(), a) {
            o.note(&old.at, &old.key, format!("overridden by {}", a.at));
        }
    }
    let mut used: BTreeSet<&str> = BTreeSet::new();
    let _ = writeln!(
        o.toml,
        "# Imported by `iscsi-ha import`. Each value names the input it came from; settings\n\
         # without an equivalent are listed by the import (and in no other place).\n"
    );
    o.kv("node", inp.node, "this host (import --node)");
    write_role(&mut o, &vars, &mut used);
    write_sockets(&mut o, inp.tgt);
    write_globals_notes(&mut o, inp.tgt);

    let wanted: Option<Vec<(String, Loc)>> = vars.get("DRBD_RESOURCES").map(|a| {
        used.insert("DRBD_RESOURCES");
        a.value
            .split(':')
            .filter(|s| !s.is_empty())
            .map(|s| (s.to_string(), a.at.clone()))
            .collect()
    });
    let mut names = Vec::new();
    let mut served: BTreeSet<String> = BTreeSet::new();
    for t in &inp.tgt.targets {
        let Some((name, minor, how)) = backing_resource(t, inp.drbd, wanted.as_deref(), &mut o)?
        else {
            continue;
        };
        if let Some(w) = &wanted {
            if !w.iter().any(|(n, _)| *n == name) {
                o.note(
                    &t.at,
                    format!("<target {}>", t.name),
                    format!(
                        "on DRBD resource {name}, which DRBD_RESOURCES ({}) does not list: \
                         iSCSI-HA does not fail it over; not imported",
                        w[0].1
                    ),
                );
                continue;
            }
        }
        if !served.insert(name.clone()) {
            o.note(
                &t.at,
                format!("<target {}>", t.name),
                format!("a second target on DRBD resource {name}: the agent serves one target per resource; not imported"),
            );
            continue;
        }
        write_resource(&mut o, inp, t, &name, minor, &how)?;
        names.push(name);
    }
    if let Some(w) = &wanted {
        for (n, at) in w {
            if !served.contains(n) {
                o.note(
                    at,
                    format!("DRBD_RESOURCES {n}"),
                    "no target of the tgt configuration is backed by it; nothing to serve",
                );
            }
        }
    }
    if names.is_empty() {
        let at = inp
            .tgt
            .targets
            .first()
            .map(|t| t.at.clone())
            .unwrap_or_else(|| Loc::new("<tgt configuration>", 0));
        // the notes are the reasons, and an error is all the caller prints
        let why: Vec<String> = o.notes.iter().map(ToString::to_string).collect();
        return Err(ParseError::new(
            at,
            format!("no target could be imported: {}", why.join("; ")),
        ));
    }
    write_address(&mut o, &vars, &mut used, &names)?;
    write_alerts(&mut o, inp, &vars, &mut used)?;
    note_unused(&mut o, &vars, &used);
    if let Some(f) = o.accounts.file() {
        o.secrets.push(f);
    }
    o.notes.sort();
    // what check-config checks: valid, and every LUN on one of its resource's volumes
    let cfg_check = crate::config::Config::parse(&o.toml, Path::new("<imported>")).and_then(|c| {
        c.check_devices()
            .map_err(|(key, reason)| crate::ConfigError {
                line: crate::config::locate_key(&o.toml, &key),
                file: "<imported>".into(),
                key,
                reason,
            })
    });
    if let Err(e) = cfg_check {
        // the TOML is not written: quote its line, whose comment names the input
        let line = e
            .line
            .and_then(|l| o.toml.lines().nth(l.saturating_sub(1)))
            .unwrap_or("");
        return Err(ParseError::new(
            Loc::new("<imported toml>", e.line.unwrap_or(0)),
            format!("{}: {} (imported line: {})", e.key, e.reason, line.trim()),
        ));
    }
    Ok(Imported {
        toml: o.toml,
        notes: o.notes,
        secrets: o.secrets,
    })
}

fn write_sockets(o: &mut Out, tgt: &TgtConfig) {
    if let Some(d) = tgt.globals.iter().find(|d| d.key == "control-port") {
        if let Some(p) = d.value.as_deref().and_then(|v| v.parse::<u16>().ok()) {
            let _ = writeln!(o.toml, "\n[sockets]");
            o.kv(
                "tgtd",
                format!("/var/run/tgtd/socket.{p}"),
                &format!("control-port at {}", d.at),
            );
        }
    }
}

fn write_globals_notes(o: &mut Out, tgt: &TgtConfig) {
    for d in &tgt.globals {
        let v = d.value.clone().unwrap_or_default();
        let reason = match d.key.as_str() {
            "control-port" if v.parse::<u16>().is_ok() => continue,
            "control-port" => "not a port number; the default socket is used",
            "default-driver" if v == "iscsi" => continue,
            "default-driver" => "the agent serves iSCSI over TCP only",
            "ignore-errors" => {
                "the agent never ignores tgtd errors: a failed step is rolled back and reported"
            }
            k if k.starts_with("iSNS") => {
                "no equivalent: the agent does not register with an iSNS server"
            }
            "incomingdiscoveryuser" | "outgoingdiscoveryuser" => {
                o.note(&d.at, format!("{} {}", d.key, user_of(d)), "no equivalent: discovery sessions are not authenticated by the agent (the target's own CHAP still applies)");
                continue;
            }
            _ => "tgt-admin ignores it",
        };
        o.note(&d.at, format!("{} {v}", d.key), reason);
    }
    for b in &tgt.other_blocks {
        o.note(
            b,
            "block",
            "tgt-admin only reads <target> blocks at top level; ignored",
        );
    }
}

fn user_of(d: &Directive) -> String {
    d.value
        .as_deref()
        .and_then(|v| v.split_whitespace().next())
        .unwrap_or("")
        .to_string()
}

/// The DRBD resource (name, minor, how it was found) backing every LUN of `t`; `None` (noted)
/// when no LUN is on DRBD.
fn backing_resource(
    t: &TgtTarget,
    drbd: Option<&[DrbdResource]>,
    wanted: Option<&[(String, Loc)]>,
    o: &mut Out,
) -> Result<Option<(String, u32, String)>, ParseError> {
    let mut found: Option<(String, u32, String)> = None;
    for l in &t.luns {
        let r = match drbd {
            // the resource's minor is volume 0's, whichever volume the LUN is on
            Some(rs) => match rs.iter().find(|r| r.volume_of(&l.path).is_some()) {
                None => None,
                Some(r) => {
                    if let Some(e) = r.minor_conflict() {
                        return Err(e);
                    }
                    let m = r.volume_minor(0).ok_or_else(|| ParseError::new(r.at.clone(), format!("resource {} has no volume 0 with a device minor: the agent names a resource by volume 0's minor", r.name)))?;
                    Some((r.name.clone(), m, format!("drbd.conf {}", r.at)))
                }
            },
            None => match (minor_of_path(&l.path), wanted) {
                (Some(m), Some([(n, at)])) => Some((n.clone(), m, format!("the only DRBD_RESOURCES entry ({at})"))),
                (Some(_), Some(_)) => {
                    return Err(ParseError::new(l.at.clone(), format!("{} is a DRBD device but DRBD_RESOURCES lists several resources: give drbd.conf (--drbd) to tell which one it is", l.path)))
                }
                _ => None,
            },
        };
        match (&found, r) {
            (_, None) => {}
            (None, Some(r)) => found = Some(r),
            (Some(f), Some(r)) if f.0 == r.0 => {}
            (Some(f), Some(r)) => {
                return Err(ParseError::new(l.at.clone(), format!("target {} has LUNs on DRBD resources {} and {}: the agent promotes one resource per target", t.name, f.0, r.0)))
            }
        }
    }
    let Some(f) = found else {
        o.note(&t.at, format!("<target {}>", t.name), "no LUN is on a DRBD device known here (give drbd.conf with --drbd?): not replicated, not imported");
        return Ok(None);
    };
    for l in &t.luns {
        let on = match drbd {
            Some(rs) => rs
                .iter()
                .any(|r| r.name == f.0 && r.volume_of(&l.path).is_some()),
            None => minor_of_path(&l.path) == Some(f.1),
        };
        if !on {
            let hint = if drbd.is_none() {
                " (LUNs on several volumes of one resource: give drbd.conf, --drbd, for their volume numbers)"
            } else {
                ""
            };
            return Err(ParseError::new(l.at.clone(), format!("{} is not on DRBD resource {} like the target's other LUNs: it would be served without replication{hint}", l.path, f.0)));
        }
    }
    Ok(Some(f))
}

fn write_resource(
    o: &mut Out,
    inp: &Inputs<'_>,
    t: &TgtTarget,
    name: &str,
    minor: u32,
    how: &str,
) -> Result<(), ParseError> {
    let _ = writeln!(o.toml, "\n[[resource]]   # <target {}> at {}", t.name, t.at);
    o.kv("name", name, how);
    o.kv("minor", i64::from(minor), how);
    o.kv(
        "mode",
        "adopt",
        "DRBD stays configured by drbdadm, as with iSCSI-HA",
    );
    if let Some(r) = inp.drbd.and_then(|rs| rs.iter().find(|r| r.name == name)) {
        let _ = writeln!(
            o.toml,
            "# drbd.conf {}: disk {}, meta-disk {}, protocol {}, hosts {}",
            r.at,
            r.disk
                .as_deref()
                .or_else(|| r.hosts.iter().find_map(|h| h.disk.as_deref()))
                .or_else(|| r.volume_disk(0))
                .unwrap_or("?"),
            r.meta_disk
                .as_deref()
                .or_else(|| r.volumes.iter().find_map(|v| v.meta_disk.as_deref()))
                .unwrap_or("?"),
            r.protocol.as_deref().unwrap_or("C"),
            r.hosts
                .iter()
                .map(|h| format!("{} {}", h.name, h.address.as_deref().unwrap_or("?")))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let _ = writeln!(o.toml, "\n[resource.target]");
    o.kv("iqn", t.name.as_str(), &format!("<target> at {}", t.at));
    o.kv("tid", i64::from(t.tid), "the tid tgt-admin -e gives it on a tgtd without targets (targets in name order, or controller_tid)");
    write_initiators(o, t)?;
    write_chap(o, inp, t)?;
    for d in &t.other {
        let v = d.value.clone().unwrap_or_default();
        let reason = match d.key.as_str() {
            "driver" if v == "iscsi" => continue,
            "driver" => "the agent serves iSCSI over TCP only",
            k if ISCSI_PARAMS.contains(&k) && k != "state" => {
                "no equivalent: tgtd's default iSCSI parameters apply"
            }
            "state" => "the agent sets the state itself (ready once fully built, offline to stop)",
            _ => "tgt-admin ignores it",
        };
        o.note(&d.at, format!("{} {v}", d.key), reason);
    }
    for b in &t.other_blocks {
        o.note(
            b,
            "block",
            "tgt-admin ignores blocks other than backing-store/direct-store in a target",
        );
    }
    let res = inp.drbd.and_then(|rs| rs.iter().find(|r| r.name == name));
    let several = match res {
        Some(r) => write_volumes(o, r)?,
        None => false,
    };
    for l in &t.luns {
        let volume = res.and_then(|r| r.volume_of(&l.path)).unwrap_or((0, minor));
        write_lun(o, t, l, name, volume, several)?;
    }
    Ok(())
}

/// drbd.conf's volumes other than 0 as `[[resource.volume]]` (the agent promotes, demotes and
/// checks every volume of the resource, as `drbdadm primary` does); whether there were any.
fn write_volumes(o: &mut Out, r: &DrbdResource) -> Result<bool, ParseError> {
    let mut numbers: Vec<u32> = r
        .volumes
        .iter()
        .map(|v| v.number)
        .filter(|n| *n != 0)
        .collect();
    numbers.sort_unstable();
    numbers.dedup();
    for &n in &numbers {
        let at = r
            .volumes
            .iter()
            .find(|v| v.number == n)
            .map(|v| v.at.clone());
        let at = at.unwrap_or_else(|| r.at.clone());
        let minor = r.volume_minor(n).ok_or_else(|| {
            ParseError::new(at.clone(), format!("volume {n} has no device minor"))
        })?;
        let _ = writeln!(
            o.toml,
            "\n[[resource.volume]]   # drbd.conf volume {n} at {at}"
        );
        o.kv("volume", i64::from(n), &format!("drbd.conf {at}"));
        o.kv(
            "minor",
            i64::from(minor),
            &format!("drbd.conf {at}: its device"),
        );
        if let Some(disk) = r.volume_disk(n) {
            let _ = writeln!(o.toml, "# drbd.conf {at}: disk {disk}");
        }
    }
    Ok(!numbers.is_empty())
}

fn write_chap(o: &mut Out, inp: &Inputs<'_>, t: &TgtTarget) -> Result<(), ParseError> {
    let (incoming, outgoing) = o.accounts.target(t, &mut o.notes)?;
    let Some((_, first)) = incoming.first() else {
        return Ok(());
    };
    let Some(dir) = inp.secrets_dir else {
        return Err(ParseError::new(
            first.clone(),
            "CHAP accounts are carried over only with --output (their secrets go to a 0600 file beside it); without them the target would let in initiators CHAP keeps out",
        ));
    };
    let _ = writeln!(o.toml, "\n[resource.target.chap]");
    let path = dir.join(super::accounts::CHAP_SECRETS);
    o.kv(
        "secrets",
        path.display().to_string(),
        "the passwords of incominguser/outgoinguser (mode 0600 file)",
    );
    let _ = writeln!(o.toml, "incoming = [");
    for (u, at) in &incoming {
        let _ = writeln!(
            o.toml,
            "  {},   # incominguser at {at}",
            toml::Value::from(u.as_str())
        );
    }
    let _ = writeln!(o.toml, "]");
    if let Some((u, at)) = &outgoing {
        o.kv("outgoing", u.as_str(), &format!("outgoinguser at {at}"));
    }
    Ok(())
}

fn write_initiators(o: &mut Out, t: &TgtTarget) -> Result<(), ParseError> {
    let addrs: Vec<&Directive> = t.initiator_addresses.iter().collect();
    let all_at = addrs.iter().find(|d| d.value.as_deref() == Some("ALL"));
    if addrs.is_empty() || all_at.is_some() {
        let why = match all_at {
            Some(d) => format!("initiator-address ALL at {}", d.at),
            None => "no initiator-address: tgt-admin binds ALL".to_string(),
        };
        o.kv("initiators", "all", &why);
        for d in t
            .initiator_names
            .iter()
            .chain(addrs.iter().copied())
            .filter(|d| d.value.as_deref() != Some("ALL"))
        {
            o.note(&d.at, format!("{} {}", d.key, d.value.as_deref().unwrap_or("")), "restricts nothing: tgt-admin also binds ALL to this target; imported as initiators = \"all\"");
        }
        return Ok(());
    }
    let mut list = Vec::new();
    for d in addrs.iter().copied() {
        let v = d.value.as_deref().unwrap_or("");
        if v.starts_with('[') {
            o.note(
                &d.at,
                format!("initiator-address {v}"),
                "bracketed IPv6 entries are not carried over yet; that initiator is refused",
            );
            continue;
        }
        tgt_ipc::Acl::address(v).map_err(|e| ParseError::new(d.at.clone(), e.to_string()))?;
        list.push((v.to_string(), d.at.clone()));
    }
    for d in &t.initiator_names {
        let v = d.value.as_deref().unwrap_or("");
        tgt_ipc::Acl::name(v).map_err(|e| ParseError::new(d.at.clone(), e.to_string()))?;
        list.push((v.to_string(), d.at.clone()));
    }
    let _ = writeln!(o.toml, "initiators = [");
    for (v, at) in &list {
        let _ = writeln!(o.toml, "  {},   # {at}", toml::Value::from(v.as_str()));
    }
    let _ = writeln!(o.toml, "]");
    Ok(())
}

/// One `[[resource.lun]]`, on volume `(number, minor)` of resource `name` (`several`: the
/// resource has volumes beyond 0, so udev's `/dev/drbd/by-res/NAME` names none of them).
fn write_lun(
    o: &mut Out,
    t: &TgtTarget,
    l: &TgtLun,
    name: &str,
    (volume, minor): (u32, u32),
    several: bool,
) -> Result<(), ParseError> {
    let _ = writeln!(
        o.toml,
        "\n[[resource.lun]]   # {} {} at {}",
        if l.direct {
            "direct-store"
        } else {
            "backing-store"
        },
        l.path,
        l.at
    );
    o.kv("lun", i64::from(l.lun), "the LUN number tgt-admin gives it");
    // check-config takes only names that are provably this minor's: a drbd.conf `device NAME
    // minor N` is written as the kernel's /dev/drbdN, the same device
    let own = [
        format!("/dev/drbd{minor}"),
        format!("/dev/drbd/by-res/{name}/{volume}"),
        format!("/dev/drbd/by-res/{name}"),
    ];
    let own = if volume == 0 && !several {
        &own[..]
    } else {
        &own[..2]
    };
    if own.contains(&l.path) {
        o.kv("device", l.path.as_str(), &l.at.to_string());
    } else {
        let from = format!("{} at {}, drbd.conf's name of minor {minor}", l.path, l.at);
        o.kv("device", own[0].as_str(), &from);
    }
    let ident = |o: &mut Out,
                 key: &str,
                 tgt_key: &str,
                 max: usize,
                 default: Option<String>|
     -> Result<(), ParseError> {
        match l.get(tgt_key) {
            Some(d) => {
                let v = d.value.as_deref().unwrap_or("");
                if v.is_empty()
                    || v.len() > max
                    || !v.chars().all(|c| c.is_ascii_graphic() || c == ' ')
                    || v.contains([',', '='])
                {
                    return Err(ParseError::new(d.at.clone(), format!("{tgt_key} must be 1-{max} printable ASCII characters without ',' or '=' (SPC field size)")));
                }
                o.kv(key, v, &format!("{tgt_key} at {}", d.at));
            }
            None => {
                if let Some(v) = default {
                    o.kv(key, v, "not set: tgtd's default for this tid and LUN, written out so both nodes agree");
                }
            }
        }
        Ok(())
    };
    ident(
        o,
        "scsi_id",
        "scsi_id",
        36,
        Some(format!("IET     {:04x}{:04x}", t.tid, l.lun)),
    )?;
    ident(
        o,
        "scsi_sn",
        "scsi_sn",
        36,
        Some(format!("beaf{}{}", t.tid, l.lun)),
    )?;
    ident(o, "vendor", "vendor_id", 8, Some(TGTD_VENDOR.into()))?;
    ident(o, "product", "product_id", 16, Some(TGTD_PRODUCT.into()))?;
    ident(o, "rev", "product_rev", 4, None)?;
    if l.direct {
        o.note(&l.at, format!("direct-store {}", l.path), "tgt-admin copies vendor, product, revision and serial from the device (sg_inq); the import reads no devices: tgtd's defaults are used where the file sets none");
    }
    write_cache(o, l);
    for (k, ds) in &l.settings {
        for d in ds {
            let v = d.value.clone().unwrap_or_default();
            let reason = match k.as_str() {
                "scsi_id" | "scsi_sn" | "vendor_id" | "product_id" | "product_rev"
                | "write-cache" | "bsoflags" | "lun" => continue,
                "bs-type" if v == "rdwr" => continue,
                "bs-type" => {
                    "the agent serves with the rdwr backing store (write-through needs its O_SYNC)"
                }
                "device-type" if v == "disk" => continue,
                "device-type" => "the agent serves disks only",
                "allow-in-use" => {
                    "not needed: the agent does not check whether the device is open elsewhere"
                }
                "block-size" => "no equivalent: tgtd's 512-byte blocks are served",
                "readonly" | "removable" | "sense_format" | "online" | "path" | "mode_page"
                | "params" | "bsopts" | "lbppbe" | "la_lba" | "optimal_xfer_gran"
                | "optimal_xfer_len" => "no equivalent: tgtd's default applies",
                _ => "tgt-admin ignores it",
            };
            o.note(&d.at, format!("{k} {v}"), reason);
        }
    }
    for d in &l.unknown {
        o.note(
            &d.at,
            format!("{} {}", d.key, d.value.as_deref().unwrap_or("")),
            "tgt-admin ignores it",
        );
    }
    Ok(())
}

/// tgt-admin: `write-cache off` sets the caching mode page's WCE to 0, `on` (the default) leaves
/// tgtd's write-back; `bsoflags sync` opens the store O_SYNC. This agent's write-through is both.
fn write_cache(o: &mut Out, l: &TgtLun) {
    let wc = l.get("write-cache");
    let flags = l.get("bsoflags");
    let flag_v = flags.and_then(|d| d.value.as_deref()).unwrap_or("");
    if let Some(d) = flags.filter(|_| flag_v != "sync") {
        o.note(&d.at, format!("bsoflags {flag_v}"), "no equivalent: the agent opens the store with O_SYNC (write-through) or without flags (write-back); O_DIRECT breaks VERIFY and ORWRITE in tgt 1.0.85 (docs/write-cache.md)");
    }
    match (wc.and_then(|d| d.value.as_deref()), flag_v) {
        (Some("off"), _) => o.kv(
            "cache",
            "write-through",
            &format!(
                "write-cache off at {}",
                wc.map(|d| d.at.to_string()).unwrap_or_default()
            ),
        ),
        (_, "sync") => o.kv(
            "cache",
            "write-through",
            &format!(
                "bsoflags sync at {}",
                flags.map(|d| d.at.to_string()).unwrap_or_default()
            ),
        ),
        (w, _) => {
            o.kv(
                "cache",
                "write-through",
                "the safe default; see the import's note",
            );
            let at = wc.map(|d| d.at.clone()).unwrap_or_else(|| l.at.clone());
            let setting = match w {
                Some(v) => format!("write-cache {v}"),
                None => format!("write-cache (not set, tgt's default on) for {}", l.path),
            };
            o.note(&at, setting, "changed: tgt-admin serves this LUN write-back; imported as write-through so an acknowledged write survives the serving node's power loss (set cache = \"write-back\" to keep tgt's behaviour, on both nodes)");
        }
    }
}
