//! Parsers of tgtd's `show` replies (docs/tgtd-ipc.md §6): pure functions from text to structs,
//! never panicking.
//!
//! The text is keyed off indentation (4-space units) and the first `": "` of each line. Lines this parser
//! does not know are skipped, as tgt-admin does; known lines with malformed values are a
//! [`TgtError::Parse`] carrying the 1-based line number.

use crate::error::TgtError;

/// A target's state (`State: ready|offline`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum TargetState {
    /// `ready`: accepts logins (subject to the ACL).
    #[default]
    Ready,
    /// `offline`: refuses new logins; existing sessions continue.
    Offline,
    /// Anything else tgtd printed.
    Other(String),
}

impl TargetState {
    /// The spelling tgtd uses.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Ready => "ready",
            Self::Offline => "offline",
            Self::Other(s) => s,
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "ready" => Self::Ready,
            "offline" => Self::Offline,
            other => Self::Other(other.to_string()),
        }
    }
}

/// One target from `tgtadm --lld iscsi --mode target --op show`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Target {
    /// Target id.
    pub tid: i32,
    /// Target name (IQN).
    pub name: String,
    /// `Driver:` (`iscsi`).
    pub driver: String,
    /// `State:`.
    pub state: TargetState,
    /// `Nop interval:` (only printed when non-zero).
    pub nop_interval: Option<u32>,
    /// `Nop count:`.
    pub nop_count: Option<u32>,
    /// `I_T nexus information:` — one per session.
    pub nexuses: Vec<Nexus>,
    /// `LUN information:`, including the automatic LUN 0.
    pub luns: Vec<Lun>,
    /// `Account information:`.
    pub accounts: Vec<AccountBinding>,
    /// `ACL information:`: address entries then name entries, as printed (`ALL` literally).
    pub acls: Vec<String>,
}

impl Target {
    /// The LUN with this number.
    pub fn lun(&self, lun: u64) -> Option<&Lun> {
        self.luns.iter().find(|l| l.lun == lun)
    }
}

/// An I_T nexus (an iSCSI session).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Nexus {
    /// The nexus id = TSIH = the `sid` of conn/session operations.
    pub sid: u64,
    /// The initiator's name.
    pub initiator: String,
    /// The initiator's alias (`None` when tgtd prints `none`).
    pub alias: Option<String>,
    /// The session's first connection as recorded at login (use conn show for all of them).
    pub connections: Vec<NexusConnection>,
}

/// `Connection: <cid>` with its `IP Address:`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NexusConnection {
    /// Connection id.
    pub cid: u32,
    /// Initiator address, as printed.
    pub address: String,
}

/// A logical unit.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Lun {
    /// LUN number.
    pub lun: u64,
    /// `Type:` (`disk`, `controller`, ...).
    pub device_type: String,
    /// `SCSI ID:` (VPD 0x83 T10 vendor designator source).
    pub scsi_id: String,
    /// `SCSI SN:` (VPD 0x80 serial).
    pub scsi_sn: String,
    /// `Size:` in tgtd's lossy MB (about bytes / 1e6); never use for exact capacity.
    pub size_mb: u64,
    /// `Block size:`.
    pub block_size: u32,
    /// `Online:`.
    pub online: bool,
    /// `Removable media:`.
    pub removable: bool,
    /// `Prevent removal:`.
    pub prevent_removal: bool,
    /// `Readonly:`.
    pub readonly: bool,
    /// `SWP:`.
    pub swp: bool,
    /// `Thin-provisioning:`.
    pub thin_provisioning: bool,
    /// `Backing store type:`.
    pub backing_store_type: String,
    /// `Backing store path:` (`None` when tgtd prints `None`).
    pub backing_store_path: Option<String>,
    /// `Backing store flags:` (`sync`, `direct`, `sync:direct` or empty).
    pub backing_store_flags: String,
}

/// An account bound to a target.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AccountBinding {
    /// User name.
    pub user: String,
    /// True for the `(outgoing)` (mutual CHAP) account.
    pub outgoing: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Section {
    None,
    System,
    Nexus,
    Lun,
    Account,
    Acl,
}

fn perr(line: usize, reason: impl Into<String>) -> TgtError {
    TgtError::Parse {
        line,
        reason: reason.into(),
    }
}

fn split_indent(line: &str) -> (usize, &str) {
    let rest = line.trim_start_matches(' ');
    (line.len() - rest.len(), rest)
}

/// The non-blank lines of a show reply: (1-based line number, indent, text after the indent).
fn indented_lines(text: &str) -> impl Iterator<Item = (usize, usize, &str)> {
    text.lines().enumerate().filter_map(|(idx, line)| {
        let (indent, rest) = split_indent(line);
        (!rest.is_empty()).then_some((idx + 1, indent, rest))
    })
}

fn num<T: std::str::FromStr>(line: usize, what: &str, s: &str) -> Result<T, TgtError> {
    s.trim()
        .parse()
        .map_err(|_| perr(line, format!("{what}: not a number: {s:?}")))
}

fn yes_no(line: usize, what: &str, s: &str) -> Result<bool, TgtError> {
    match s.trim() {
        "Yes" => Ok(true),
        "No" => Ok(false),
        other => Err(perr(
            line,
            format!("{what}: expected Yes/No, got {other:?}"),
        )),
    }
}

/// Parses `Target <tid>: <iqn>`.
fn parse_target_line(lno: usize, rest: &str) -> Result<Target, TgtError> {
    let (tid, name) = rest
        .strip_prefix("Target ")
        .and_then(|r| r.split_once(": "))
        .ok_or_else(|| perr(lno, "expected `Target <tid>: <name>`"))?;
    Ok(Target {
        tid: num(lno, "tid", tid)?,
        name: name.to_string(),
        ..Target::default()
    })
}

/// Parses the reply of target show for all targets (`tgtadm --lld iscsi --mode target --op show`).
///
/// An empty reply (no targets) gives an empty list.
///
/// # Errors
/// [`TgtError::Parse`] with the 1-based line and what was wrong; never panics.
pub fn parse_targets(text: &str) -> Result<Vec<Target>, TgtError> {
    let mut targets: Vec<Target> = Vec::new();
    let mut section = Section::None;
    for (lno, indent, rest) in indented_lines(text) {
        if indent == 0 {
            targets.push(parse_target_line(lno, rest)?);
            section = Section::None;
            continue;
        }
        let Some(t) = targets.last_mut() else {
            return Err(perr(lno, "line before the first `Target` line"));
        };
        let (key, value) = match rest.split_once(": ") {
            Some((k, v)) => (k, v),
            None => (rest.strip_suffix(':').unwrap_or(rest), ""),
        };
        match indent {
            4 => {
                section = match rest {
                    "System information:" => Section::System,
                    "I_T nexus information:" => Section::Nexus,
                    "LUN information:" => Section::Lun,
                    "Account information:" => Section::Account,
                    "ACL information:" => Section::Acl,
                    _ => Section::None,
                }
            }
            8 => match section {
                Section::System => match key {
                    "Driver" => t.driver = value.to_string(),
                    "State" => t.state = TargetState::parse(value),
                    "Nop interval" => t.nop_interval = Some(num(lno, key, value)?),
                    "Nop count" => t.nop_count = Some(num(lno, key, value)?),
                    _ => {}
                },
                Section::Nexus => {
                    if key == "I_T nexus" {
                        t.nexuses.push(Nexus {
                            sid: num(lno, key, value)?,
                            ..Nexus::default()
                        });
                    }
                }
                Section::Lun => {
                    if key == "LUN" {
                        t.luns.push(Lun {
                            lun: num(lno, key, value)?,
                            ..Lun::default()
                        });
                    }
                }
                Section::Account => match rest.strip_suffix(" (outgoing)") {
                    Some(user) => t.accounts.push(AccountBinding {
                        user: user.to_string(),
                        outgoing: true,
                    }),
                    None => t.accounts.push(AccountBinding {
                        user: rest.to_string(),
                        outgoing: false,
                    }),
                },
                Section::Acl => t.acls.push(rest.to_string()),
                Section::None => {}
            },
            12 => match section {
                Section::Nexus => {
                    let Some(n) = t.nexuses.last_mut() else {
                        return Err(perr(lno, "nexus detail before `I_T nexus:`"));
                    };
                    match key {
                        "Initiator" => {
                            let (name, alias) = match value.split_once(" alias: ") {
                                Some((n, a)) => (n, Some(a)),
                                None => (value, None),
                            };
                            n.initiator = name.to_string();
                            n.alias = alias.filter(|a| *a != "none").map(str::to_string);
                        }
                        "Connection" => n.connections.push(NexusConnection {
                            cid: num(lno, key, value)?,
                            address: String::new(),
                        }),
                        _ => {}
                    }
                }
                Section::Lun => {
                    let Some(l) = t.luns.last_mut() else {
                        return Err(perr(lno, "LUN detail before `LUN:`"));
                    };
                    parse_lun_field(lno, l, key, value)?;
                }
                _ => {}
            },
            16 if section == Section::Nexus && key == "IP Address" => {
                let c = t
                    .nexuses
                    .last_mut()
                    .and_then(|n| n.connections.last_mut())
                    .ok_or_else(|| perr(lno, "`IP Address:` before `Connection:`"))?;
                c.address = value.to_string();
            }
            _ => {}
        }
    }
    Ok(targets)
}

fn parse_lun_field(lno: usize, l: &mut Lun, key: &str, value: &str) -> Result<(), TgtError> {
    match key {
        "Type" => l.device_type = value.to_string(),
        "SCSI ID" => l.scsi_id = value.to_string(),
        "SCSI SN" => l.scsi_sn = value.to_string(),
        "Size" => {
            // `Size: <M> MB, Block size: <B>`
            let (mb, bs) = value
                .split_once(" MB, Block size: ")
                .ok_or_else(|| perr(lno, "expected `Size: <M> MB, Block size: <B>`"))?;
            l.size_mb = num(lno, "Size", mb)?;
            l.block_size = num(lno, "Block size", bs)?;
        }
        "Online" => l.online = yes_no(lno, key, value)?,
        "Removable media" => l.removable = yes_no(lno, key, value)?,
        "Prevent removal" => l.prevent_removal = yes_no(lno, key, value)?,
        "Readonly" => l.readonly = yes_no(lno, key, value)?,
        "SWP" => l.swp = yes_no(lno, key, value)?,
        "Thin-provisioning" => l.thin_provisioning = yes_no(lno, key, value)?,
        "Backing store type" => l.backing_store_type = value.to_string(),
        "Backing store path" => {
            l.backing_store_path = (value != "None").then(|| value.to_string());
        }
        // printed as `Backing store flags: ` with a trailing space when empty
        "Backing store flags" => l.backing_store_flags = value.trim().to_string(),
        _ => {}
    }
    Ok(())
}

/// A target's iSCSI parameters: `tgtadm --lld iscsi --mode target --op show --tid N` (`key=value` lines).
///
/// # Errors
/// [`TgtError::Parse`] with the 1-based line and what was wrong; never panics.
pub fn parse_target_params(text: &str) -> Result<Vec<(String, String)>, TgtError> {
    let mut out = Vec::new();
    for (idx, line) in text.lines().enumerate() {
        if line.is_empty() {
            continue;
        }
        let (k, v) = line
            .split_once('=')
            .ok_or_else(|| perr(idx + 1, "expected `key=value`"))?;
        out.push((k.to_string(), v.to_string()));
    }
    Ok(out)
}

/// One connection from `tgtadm --mode conn --op show --tid N`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnectionInfo {
    /// Session id (TSIH).
    pub sid: u64,
    /// Connection id.
    pub cid: u32,
    /// Initiator name.
    pub initiator: String,
    /// Initiator address.
    pub address: String,
}

/// Parses conn show: `Session: N` / `    Connection: N` / `        Initiator: ..` / `        IP Address: ..`.
///
/// # Errors
/// [`TgtError::Parse`] with the 1-based line and what was wrong; never panics.
pub fn parse_connections(text: &str) -> Result<Vec<ConnectionInfo>, TgtError> {
    let mut out: Vec<ConnectionInfo> = Vec::new();
    let mut sid: Option<u64> = None;
    for (idx, line) in text.lines().enumerate() {
        let lno = idx + 1;
        let (indent, rest) = split_indent(line);
        let Some((key, value)) = rest.split_once(": ") else {
            continue;
        };
        match (indent, key) {
            (0, "Session") => sid = Some(num(lno, key, value)?),
            (4, "Connection") => {
                let sid = sid.ok_or_else(|| perr(lno, "`Connection:` before `Session:`"))?;
                out.push(ConnectionInfo {
                    sid,
                    cid: num(lno, key, value)?,
                    ..ConnectionInfo::default()
                });
            }
            (8, "Initiator") | (8, "IP Address") => {
                let c = out
                    .last_mut()
                    .ok_or_else(|| perr(lno, "connection detail before `Connection:`"))?;
                if key == "Initiator" {
                    c.initiator = value.to_string();
                } else {
                    c.address = value.to_string();
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

/// A listening portal from `tgtadm --lld iscsi --mode portal --op show`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Portal {
    /// Address as printed, without IPv6 brackets.
    pub address: String,
    /// TCP port.
    pub port: u16,
    /// Target portal group tag (always 1 for tgtd).
    pub tpgt: u16,
}

/// Parses portal show: `Portal: ADDR:PORT,TPGT` lines (IPv6 in brackets).
///
/// # Errors
/// [`TgtError::Parse`] with the 1-based line and what was wrong; never panics.
pub fn parse_portals(text: &str) -> Result<Vec<Portal>, TgtError> {
    let mut out = Vec::new();
    for (idx, line) in text.lines().enumerate() {
        let lno = idx + 1;
        let Some(rest) = line.strip_prefix("Portal: ") else {
            continue;
        };
        let (hostport, tpgt) = rest
            .rsplit_once(',')
            .ok_or_else(|| perr(lno, "expected `ADDR:PORT,TPGT`"))?;
        let (host, port) = hostport
            .rsplit_once(':')
            .ok_or_else(|| perr(lno, "expected `ADDR:PORT`"))?;
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        out.push(Portal {
            address: host.to_string(),
            port: num(lno, "port", port)?,
            tpgt: num(lno, "tpgt", tpgt)?,
        });
    }
    Ok(out)
}

/// Parses account show: `Account list:` then one indented user per line (newest first).
///
/// # Errors
/// [`TgtError::Parse`] with the 1-based line and what was wrong; never panics.
pub fn parse_accounts(text: &str) -> Result<Vec<String>, TgtError> {
    let mut out = Vec::new();
    for (idx, line) in text.lines().enumerate() {
        let (indent, rest) = split_indent(line);
        match indent {
            0 if rest == "Account list:" || rest.is_empty() => {}
            0 => return Err(perr(idx + 1, "expected `Account list:`")),
            _ => out.push(rest.to_string()),
        }
    }
    Ok(out)
}

/// `tgtadm --mode sys --op show`, parsed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SystemInfo {
    /// `State:` (`ready` or `offline`).
    pub state: String,
    /// `debug: on|off`.
    pub debug: bool,
    /// Drivers and their state (`iscsi`, `ready`).
    pub llds: Vec<(String, String)>,
    /// Backing store names, with their flags note if any (`rdwr (bsoflags sync:direct)` gives `rdwr`).
    pub backing_stores: Vec<String>,
    /// Device type names.
    pub device_types: Vec<String>,
    /// Global (discovery) accounts.
    pub accounts: Vec<String>,
    /// iSNS `key=value` settings.
    pub isns: Vec<(String, String)>,
}

/// Parses system show (docs/tgtd-ipc.md §6.6).
///
/// # Errors
/// [`TgtError::Parse`] with the 1-based line and what was wrong; never panics.
pub fn parse_system(text: &str) -> Result<SystemInfo, TgtError> {
    #[derive(Clone, Copy, PartialEq)]
    enum S {
        None,
        System,
        Llds,
        Bs,
        Dev,
        Isns,
    }
    let mut info = SystemInfo::default();
    let mut s = S::None;
    let mut in_accounts = false;
    for (lno, indent, rest) in indented_lines(text) {
        if indent == 0 {
            s = match rest {
                "System:" => S::System,
                "LLDs:" => S::Llds,
                "Backing stores:" => S::Bs,
                "Device types:" => S::Dev,
                "iSNS:" => S::Isns,
                _ => S::None,
            };
            in_accounts = false;
            continue;
        }
        if rest == "Account information:" {
            in_accounts = true;
            continue;
        }
        if in_accounts {
            info.accounts.push(rest.to_string());
            continue;
        }
        match s {
            S::System => match rest.split_once(": ") {
                Some(("State", v)) => info.state = v.to_string(),
                Some(("debug", v)) => info.debug = v == "on",
                _ => {}
            },
            S::Llds => {
                let (n, st) = rest
                    .split_once(": ")
                    .ok_or_else(|| perr(lno, "expected `<lld>: <state>`"))?;
                info.llds.push((n.to_string(), st.to_string()));
            }
            S::Bs => {
                let name = rest.split(' ').next().unwrap_or(rest);
                info.backing_stores.push(name.to_string());
            }
            S::Dev => info.device_types.push(rest.to_string()),
            S::Isns => {
                let (k, v) = rest.split_once('=').unwrap_or((rest, ""));
                info.isns.push((k.to_string(), v.to_string()));
            }
            S::None => {}
        }
    }
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_is_no_targets() {
        assert_eq!(parse_targets("").unwrap(), vec![]);
    }

    #[test]
    fn junk_is_an_error_not_a_panic() {
        assert!(parse_targets("    LUN information:\n").is_err());
        assert!(parse_targets("Target x: y\n").is_err());
        assert!(
            parse_targets("Target 1: a\n    LUN information:\n            Type: disk\n").is_err()
        );
        assert!(parse_targets(
            "Target 1: a\n    LUN information:\n        LUN: 1\n            Size: 1 MB\n"
        )
        .is_err());
        assert!(parse_portals("Portal: nonsense\n").is_err());
        assert!(parse_connections("    Connection: 1\n").is_err());
    }

    #[test]
    fn alias_with_spaces() {
        let t = parse_targets(
            "Target 1: iqn.x:y\n    I_T nexus information:\n        I_T nexus: 3\n            Initiator: iqn.a:b alias: my host\n            Connection: 0\n                IP Address: ::1\n",
        )
        .unwrap();
        let n = &t[0].nexuses[0];
        assert_eq!(n.alias.as_deref(), Some("my host"));
        assert_eq!(n.connections[0].address, "::1");
    }

    #[test]
    fn ipv6_portal() {
        let p = parse_portals("Portal: [::1]:13262,1\nPortal: 127.0.0.2:13261,1\n").unwrap();
        assert_eq!(p[0].address, "::1");
        assert_eq!(p[0].port, 13262);
        assert_eq!(p[1].address, "127.0.0.2");
    }
}
