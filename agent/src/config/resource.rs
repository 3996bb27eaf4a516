//! `[[resource]]`: the DRBD resource, its iSCSI target and LUNs, checked with tgt-ipc's own
//! validators so that nothing accepted here is refused when served.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use serde::{Deserialize, Deserializer, Serialize};

use super::drbd_options::{self, DiskOptions, NetOptions};
use tgt_ipc::{
    Acl, CacheMode, LunBacking, LunIdentity, ServeAccount, ServeLun, ServeSpec, TgtError,
};

/// One replicated resource and the target that serves it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Resource {
    /// DRBD resource name.
    pub name: String,
    /// DRBD minor (`/dev/drbd<minor>`).
    pub minor: u32,
    /// Adopt a resource configured by the system's DRBD tools, or bring it up from `[resource.manage]`.
    pub mode: Mode,
    /// Bring-up parameters; required with `mode = "manage"`, refused with `mode = "adopt"`.
    pub manage: Option<Manage>,
    /// The iSCSI target.
    pub target: Target,
    /// The logical units, at least one, each on one of the resource's volumes.
    #[serde(rename = "lun")]
    pub luns: Vec<Lun>,
    /// The resource's volumes beyond volume 0 (whose minor is `minor`), each its own DRBD
    /// device; empty for a resource with one volume.
    #[serde(rename = "volume", default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<super::Volume>,
}

/// How the agent treats the DRBD resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Configured by the system's DRBD tools; the agent only changes its role.
    Adopt,
    /// Brought up by the agent (new-resource, new-minor, attach, connect) from this file.
    Manage,
}

/// DRBD bring-up parameters for `mode = "manage"`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Manage {
    /// Backing disk, e.g. `/dev/sdb1`.
    pub disk: PathBuf,
    /// Metadata location; only `internal` is supported.
    #[serde(default)]
    pub meta_disk: MetaDisk,
    /// This node's replication address, `ip:port` (`[v6]:port` for IPv6).
    #[serde(with = "socket_addr")]
    pub local: SocketAddr,
    /// The peer's replication address, `ip:port`.
    #[serde(with = "socket_addr")]
    pub peer: SocketAddr,
    /// Replication protocol (`"C"` by default).
    #[serde(default)]
    pub protocol: Protocol,
    /// DRBD `ping-int`, seconds (1-120): an idle connection pings the peer this often, so a
    /// dead peer is noticed within `ping_int_s` + `ping_timeout_ds` even without a promote
    /// (docs/takeover.md).
    #[serde(default = "default_ping_int")]
    pub ping_int_s: u32,
    /// DRBD `ping-timeout`, tenths of a second (1-300): an unanswered ping drops the
    /// connection after it; a promote while the peer still looks Primary waits this long.
    #[serde(default = "default_ping_timeout")]
    pub ping_timeout_ds: u32,
    /// DRBD `timeout`, tenths of a second (1-600): the wait for an answer to a data packet.
    #[serde(default = "default_net_timeout")]
    pub timeout_ds: u32,
    /// DRBD `ko-count` (0-200, 0 = off): a peer that does not complete a write within
    /// `ko_count` x `timeout_ds` is dropped, so writes stall at most that long.
    #[serde(default = "default_ko_count")]
    pub ko_count: u32,
    /// DRBD 9 only: this node's node id in the resource (0-31, `drbdsetup new-resource RES ID`).
    /// Required with `peer_node_id` to manage a resource on DRBD 9; ignored on DRBD 8.4.
    #[serde(default)]
    pub node_id: Option<u32>,
    /// DRBD 9 only: the peer's node id (0-31, differs from `node_id`).
    #[serde(default)]
    pub peer_node_id: Option<u32>,
    /// drbd.conf `disk { }` options (unset: DRBD's defaults).
    #[serde(default)]
    pub disk_options: DiskOptions,
    /// drbd.conf `net { }` options beyond the ones above (unset: DRBD's defaults).
    #[serde(default)]
    pub net_options: NetOptions,
    /// drbd.conf's `handlers { }`: refused (drbdadm runs them, see [`DiskOptions`]'s module);
    /// the agent's own alarms, `iscsi-ha events` and mail alerts report the same situations.
    #[serde(default, skip_serializing)]
    pub handlers: Option<drbd_options::Handlers>,
}

/// Default `ping_int_s`: a silently dead peer is noticed within 2.5 s (DRBD's own 10 s would
/// stall the survivor's writes up to 10.5 s); one small packet per 2 s costs nothing.
pub const DEFAULT_PING_INT_S: u32 = 2;
/// Default `ping_timeout_ds`: DRBD's 0.5 s, answered within a millisecond on a LAN while
/// leaving room for a loaded peer (a spurious drop costs a resync).
pub const DEFAULT_PING_TIMEOUT_DS: u32 = 5;
/// Default `timeout_ds`: DRBD's 6 s; it only judges a live, slow peer.
pub const DEFAULT_TIMEOUT_DS: u32 = 60;
/// Default `ko_count`: 4 x 6 s = 24 s, below the 30 s SCSI command timeout of common
/// initiators (DRBD's 7 gives 42 s, after the initiator has given up).
pub const DEFAULT_KO_COUNT: u32 = 4;

fn default_ping_int() -> u32 {
    DEFAULT_PING_INT_S
}
fn default_ping_timeout() -> u32 {
    DEFAULT_PING_TIMEOUT_DS
}
fn default_net_timeout() -> u32 {
    DEFAULT_TIMEOUT_DS
}
fn default_ko_count() -> u32 {
    DEFAULT_KO_COUNT
}

/// DRBD 9's highest node id (`DRBD_NODE_ID_MAX` - 1).
pub const MAX_NODE_ID: u32 = 31;

impl Manage {
    /// The node-id key at fault and why: both or neither, each 0-31, different.
    fn node_ids_error(&self) -> Option<(&'static str, &'static str)> {
        match (self.node_id, self.peer_node_id) {
            (Some(_), None) => Some((
                "manage.peer_node_id",
                "must be given with manage.node_id (DRBD 9 needs both)",
            )),
            (None, Some(_)) => Some((
                "manage.node_id",
                "must be given with manage.peer_node_id (DRBD 9 needs both)",
            )),
            (Some(n), _) if n > MAX_NODE_ID => Some(("manage.node_id", "must be 0-31 (DRBD 9)")),
            (_, Some(p)) if p > MAX_NODE_ID => {
                Some(("manage.peer_node_id", "must be 0-31 (DRBD 9)"))
            }
            (Some(n), Some(p)) if n == p => {
                Some(("manage.peer_node_id", "must differ from manage.node_id"))
            }
            _ => None,
        }
    }

    /// This node's and the peer's DRBD 9 node ids, if both are given.
    pub fn node_ids(&self) -> Option<(u32, u32)> {
        self.node_id.zip(self.peer_node_id)
    }
}

/// DRBD's replication protocol (`net { protocol X; }`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
pub enum Protocol {
    /// Asynchronous: a write completes once on the local disk and in the send buffer.
    A,
    /// Memory synchronous: once the peer has received it.
    B,
    /// Synchronous: once on both disks (the only one that loses no acknowledged write when
    /// the primary dies).
    #[default]
    C,
}

impl Protocol {
    /// The letter, as DRBD's tools and netlink attributes spell it.
    pub fn as_char(self) -> char {
        match self {
            Protocol::A => 'A',
            Protocol::B => 'B',
            Protocol::C => 'C',
        }
    }
}

/// Where DRBD keeps its metadata; only `internal` (the end of the backing disk) is supported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MetaDisk {
    /// `meta-disk internal`.
    #[default]
    Internal,
}

/// A socket address with an error that says what to write.
mod socket_addr {
    use std::net::SocketAddr;

    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(a: &SocketAddr, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(a)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(|_| {
            D::Error::custom(format!(
                "must be ip:port, e.g. \"10.0.0.1:7789\" or \"[fd00::1]:7789\", not {s:?}"
            ))
        })
    }
}

/// The iSCSI target of a resource.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// Target IQN.
    pub iqn: String,
    /// tgtd target id (> 0).
    pub tid: u32,
    /// Initiators allowed: an explicit list, or the string `"all"` written out.
    pub initiators: Initiators,
    /// CHAP accounts (`[resource.target.chap]`); unset: no CHAP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chap: Option<Chap>,
}

/// `[resource.target.chap]`: CHAP accounts bound to the target (the secrets are in a separate
/// file, see [`crate::chap`]).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Chap {
    /// TOML file of `"user" = "secret"` lines, mode 0600 (a wider mode is refused); read when the
    /// target is served and by `check-config`; the secrets are never printed or logged.
    pub secrets: PathBuf,
    /// Incoming accounts: an initiator logs in only with one of these users (at least one).
    pub incoming: Vec<String>,
    /// Outgoing account (mutual CHAP): the user the target proves itself with.
    pub outgoing: Option<String>,
}

/// Initiator access control.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Initiators {
    /// Every initiator (`initiators = "all"`, written out).
    All,
    /// Exactly these initiator names or addresses.
    List(Vec<String>),
}

impl Serialize for Initiators {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Initiators::All => s.serialize_str("all"),
            Initiators::List(v) => v.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Initiators {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            One(String),
            Many(Vec<String>),
        }
        let raw = Raw::deserialize(d).map_err(|e: D::Error| {
            if e.to_string().contains("missing field") {
                e
            } else {
                serde::de::Error::custom("expected a list of initiators or the string \"all\"")
            }
        })?;
        match raw {
            Raw::One(s) if s == "all" => Ok(Initiators::All),
            Raw::One(s) => Err(serde::de::Error::custom(format!(
                "\"{s}\" is not a list; write [\"{s}\"] or the string \"all\""
            ))),
            Raw::Many(v) => Ok(Initiators::List(v)),
        }
    }
}

/// One logical unit with its SCSI identity.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Lun {
    /// LUN number (1..=255; 0 is the target's controller LUN in tgt).
    pub lun: u32,
    /// Backing device, normally `/dev/drbd<minor>`.
    pub device: PathBuf,
    /// SCSI device identifier (VPD page 0x83), at most 36 characters; identical on both nodes.
    pub scsi_id: String,
    /// SCSI serial number (VPD page 0x80), at most 36 characters; identical on both nodes.
    pub scsi_sn: String,
    /// Vendor id, at most 8 characters.
    pub vendor: String,
    /// Product id, at most 16 characters.
    pub product: String,
    /// Product revision, at most 4 characters.
    pub rev: Option<String>,
    /// `cache = "write-through"` (the default) or `"write-back"`; must be the same on both nodes
    /// (compare their `iscsi-ha check-config`). Write-through acknowledges a write only once it is on
    /// the DRBD device and flushed; write-back risks losing acknowledged writes when the serving node
    /// loses power (see [`CacheMode`]).
    #[serde(default, with = "cache_mode")]
    pub cache: CacheMode,
}

impl Initiators {
    /// The tgt-ipc ACL entries: an IP address or a network with a prefix becomes an address
    /// entry, anything else an initiator name.
    ///
    /// # Errors
    /// The index of the first entry tgt-ipc refuses, with its error.
    pub fn acls(&self) -> Result<Vec<Acl>, (usize, TgtError)> {
        match self {
            Initiators::All => Ok(vec![Acl::all()]),
            Initiators::List(list) => list
                .iter()
                .enumerate()
                .map(|(j, i)| {
                    if i.parse::<IpAddr>().is_ok() || i.contains('/') {
                        Acl::address(i)
                    } else {
                        Acl::name(i)
                    }
                    .map_err(|e| (j, e))
                })
                .collect(),
        }
    }
}

impl Lun {
    /// The SCSI identity as tgt-ipc sets it.
    pub fn identity(&self) -> LunIdentity {
        LunIdentity {
            scsi_id: self.scsi_id.clone(),
            scsi_sn: self.scsi_sn.clone(),
            vendor_id: Some(self.vendor.clone()),
            product_id: Some(self.product.clone()),
            product_rev: self.rev.clone(),
        }
    }
}

impl Resource {
    /// The tgt-ipc spec of this resource's target with these CHAP accounts, each part checked
    /// by tgt-ipc's own validator on the way ([`ServeSpec::validate`] checks the whole).
    ///
    /// # Errors
    /// The key at fault, relative to the resource (`target.iqn`, `target.tid`,
    /// `target.initiators[j]`, `lun[j].vendor`, ...), with tgt-ipc's error.
    pub fn serve_spec(&self, accounts: Vec<ServeAccount>) -> Result<ServeSpec, (String, TgtError)> {
        let t = &self.target;
        let tid = i32::try_from(t.tid).map_err(|_| {
            let reason = format!("{} is over tgtd's {}", t.tid, i32::MAX);
            let e = TgtError::InvalidRequest {
                what: "tid",
                reason,
            };
            ("target.tid".to_string(), e)
        })?;
        tgt_ipc::check_target_name(&t.iqn).map_err(|e| ("target.iqn".to_string(), e))?;
        let acls = t
            .initiators
            .acls()
            .map_err(|(j, e)| (format!("target.initiators[{j}]"), e))?;
        let mut luns = Vec::with_capacity(self.luns.len());
        for (j, l) in self.luns.iter().enumerate() {
            let identity = l.identity();
            identity.check().map_err(|e| {
                let field = match &e {
                    TgtError::InvalidRequest { what, .. } => match *what {
                        "vendor_id" => "vendor",
                        "product_id" => "product",
                        "product_rev" => "rev",
                        other => other,
                    },
                    _ => "scsi_id",
                };
                (format!("lun[{j}].{field}"), e)
            })?;
            luns.push(ServeLun {
                lun: u64::from(l.lun),
                backing: LunBacking::new(l.device.clone()),
                identity,
                cache: l.cache,
            });
        }
        Ok(ServeSpec {
            tid,
            name: t.iqn.clone(),
            luns,
            acls,
            accounts,
        })
    }
}

/// `cache` as its [`CacheMode::as_str`] spelling; any other value is an error naming the key.
mod cache_mode {
    use serde::{de::Error, Deserialize, Deserializer, Serializer};
    use tgt_ipc::CacheMode;

    const MODES: [CacheMode; 2] = [CacheMode::WriteThrough, CacheMode::WriteBack];

    pub fn serialize<S: Serializer>(c: &CacheMode, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(c.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<CacheMode, D::Error> {
        let want = "`cache` must be \"write-through\" (the default) or \"write-back\"";
        let s = String::deserialize(d).map_err(|_| D::Error::custom(want))?;
        MODES
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| D::Error::custom(format!("{want}, not {s:?}")))
    }
}

/// Checks the `[[resource]]` tables (with tgt-ipc's own checks of each target); returns the
/// resource names, or the dotted key at fault and the reason.
pub(super) fn validate(resources: &[Resource]) -> Result<BTreeSet<&str>, (String, String)> {
    let err = |k: String, r: &str| Err((k, r.to_string()));
    if resources.is_empty() {
        return err("resource".into(), "at least one [[resource]] is required");
    }
    let mut names = BTreeSet::new();
    let mut minors = BTreeSet::new();
    let mut tids = BTreeSet::new();
    let mut iqns = BTreeSet::new();
    // dm-multipath groups paths by VPD 0x83 / 0x80: two LUNs sharing either are merged as one disk
    let (mut ids, mut sns) = (BTreeMap::new(), BTreeMap::new());
    let mut devices = BTreeMap::new();
    // manage mode: DRBD opens a backing disk exclusively and binds the replication address
    let (mut disks, mut locals) = (BTreeMap::new(), BTreeMap::new());
    for (i, r) in resources.iter().enumerate() {
        let k = |f: &str| format!("resource[{i}].{f}");
        if !valid_name(&r.name) {
            return err(k("name"), "must be 1-63 characters of [A-Za-z0-9_.-]");
        }
        if !names.insert(r.name.as_str()) {
            return err(k("name"), "duplicate resource name");
        }
        if !minors.insert(r.minor) {
            return err(k("minor"), "duplicate DRBD minor");
        }
        if r.minor > 1_048_575 {
            return err(k("minor"), "must be at most 1048575");
        }
        match (r.mode, &r.manage) {
            (Mode::Manage, None) => {
                return err(
                    k("mode"),
                    "mode = \"manage\" needs a [resource.manage] table",
                )
            }
            (Mode::Adopt, Some(_)) => return err(
                k("manage"),
                "[resource.manage] given but mode = \"adopt\"; set mode = \"manage\" or remove it",
            ),
            (Mode::Manage, Some(m)) => {
                if !m.disk.is_absolute() {
                    return err(k("manage.disk"), "must be an absolute device path");
                }
                for (f, v, lo, hi) in [
                    ("manage.ping_int_s", m.ping_int_s, 1, 120),
                    ("manage.ping_timeout_ds", m.ping_timeout_ds, 1, 300),
                    ("manage.timeout_ds", m.timeout_ds, 1, 600),
                    ("manage.ko_count", m.ko_count, 0, 200),
                ] {
                    if !(lo..=hi).contains(&v) {
                        return err(k(f), &format!("must be {lo}-{hi} (DRBD's limits)"));
                    }
                }
                if let Some((f, why)) = m.node_ids_error() {
                    return err(k(f), why);
                }
                if let Some((f, why)) = drbd_options::check(&m.disk_options, &m.net_options) {
                    return err(k(&format!("manage.{f}")), &why);
                }
                if m.handlers.is_some() {
                    return err(
                        k("manage.handlers"),
                        "DRBD handlers are run by drbdadm from drbd.conf, which a managed \
                         resource does not have: keep them in drbd.conf with mode = \"adopt\", \
                         or follow the agent's alarms (iscsi-ha events, [alerts.email])",
                    );
                }
                if m.local == m.peer {
                    return err(k("manage.peer"), "must differ from manage.local");
                }
                if let Some(other) = locals.insert(m.local, k("manage.local")) {
                    return err(
                        k("manage.local"),
                        &format!("{} is {other} too: one replication address, one resource (DRBD binds it)", m.local),
                    );
                }
                super::volume::claim_disk(&mut disks, &m.disk, k("manage.disk"))
                    .map_err(|why| (k("manage.disk"), why))?;
            }
            (Mode::Adopt, None) => {}
        }
        let t = &r.target;
        if !valid_iqn(&t.iqn) {
            return err(
                k("target.iqn"),
                "must look like iqn.YYYY-MM.reverse.domain[:name] (MM 01-12) or eui.<16 hex>",
            );
        }
        if !iqns.insert(t.iqn.as_str()) {
            return err(k("target.iqn"), "duplicate target IQN");
        }
        if t.tid == 0 {
            return err(k("target.tid"), "must be greater than 0");
        }
        if !tids.insert(t.tid) {
            return err(k("target.tid"), "duplicate target id");
        }
        if let Initiators::List(list) = &t.initiators {
            if list.is_empty() {
                return err(
                    k("target.initiators"),
                    "empty list would refuse everyone; list initiators or write \"all\"",
                );
            }
            if let Some(j) = list.iter().position(|ini| ini == "ALL") {
                return err(
                    format!("resource[{i}].target.initiators[{j}]"),
                    "write initiators = \"all\" to allow every initiator",
                );
            }
        }
        if let Some(c) = &t.chap {
            crate::chap::validate(c).map_err(|(f, r)| (k(&format!("target.chap.{f}")), r))?;
        }
        super::volume::validate(r, &mut minors, &mut disks, &k)?;
        if r.luns.is_empty() {
            return err(k("lun"), "at least one [[resource.lun]] is required");
        }
        let mut luns = BTreeSet::new();
        for (j, l) in r.luns.iter().enumerate() {
            let k = |f: &str| format!("resource[{i}].lun[{j}].{f}");
            if l.lun == 0 || l.lun > 255 {
                return err(k("lun"), "must be 1..=255 (LUN 0 is tgt's controller)");
            }
            if !luns.insert(l.lun) {
                return err(k("lun"), "duplicate LUN number");
            }
            if !l.device.is_absolute() {
                return err(k("device"), "must be an absolute device path");
            }
            let at = format!("resource[{i}].lun[{j}]");
            for (f, v, seen, page) in [
                (
                    "scsi_id",
                    &l.scsi_id,
                    &mut ids,
                    "device identifier, VPD page 0x83",
                ),
                (
                    "scsi_sn",
                    &l.scsi_sn,
                    &mut sns,
                    "serial number, VPD page 0x80",
                ),
            ] {
                if let Some(other) = seen.insert(v.as_str(), at.clone()) {
                    return err(
                        k(f),
                        &format!(
                            "duplicate {f} {v:?}, {other} has it too: dm-multipath would merge \
                             the two devices as paths of one disk ({page}); give each LUN its own"
                        ),
                    );
                }
            }
            let device = r.own_minor(&l.device).map_or_else(
                || l.device.display().to_string(),
                |m| format!("/dev/drbd{m}"),
            );
            if let Some(other) = devices.insert(device, at) {
                return err(
                    k("device"),
                    &format!(
                        "{} is already served by {other}: one device, one LUN",
                        l.device.display()
                    ),
                );
            }
        }
        // tgt-ipc's own checks, so nothing accepted here is refused when served.
        let spec = r
            .serve_spec(Vec::new())
            .map_err(|(f, e)| (k(&f), tgt_reason(e)))?;
        spec.validate().map_err(|e| (k("target"), tgt_reason(e)))?;
    }
    Ok(names)
}

/// Every LUN's `device` is one of its resource's volumes ([`Resource::volume_of`]): the agent
/// serves only while those minors are Primary, so a LUN on another device could be served from
/// a node whose data is not Primary. Checked by `check-config` and, on a kernel DRBD, at daemon
/// start and reload ([`crate::backend::Drbd::check_config`]; the agent's tests serve plain
/// files through the same config). The dotted key at fault and the reason.
pub fn check_devices(resources: &[Resource]) -> Result<(), (String, String)> {
    for (i, r) in resources.iter().enumerate() {
        for (j, l) in r.luns.iter().enumerate() {
            if r.volume_of(&l.device).is_none() {
                let volumes: Vec<String> = r
                    .volume_minors()
                    .map(|(v, m)| format!("\"/dev/drbd{m}\" (volume {v})"))
                    .collect();
                return Err((
                    format!("resource[{i}].lun[{j}].device"),
                    format!(
                        "{} is not a volume of resource {}: write {} or \
                         \"/dev/drbd/by-res/{}/<volume>\", or add the volume as a \
                         [[resource.volume]]; the agent serves a LUN only while its \
                         resource's minors are Primary",
                        l.device.display(),
                        r.name,
                        volumes.join(", "),
                        r.name
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

fn valid_iqn(s: &str) -> bool {
    if s.len() > 223 || s.contains([',', '=', '\0', ' ']) {
        return false;
    }
    if let Some(rest) = s.strip_prefix("iqn.") {
        let b = rest.as_bytes();
        // YYYY-MM.
        b.len() > 8
            && b.iter().take(4).all(u8::is_ascii_digit)
            && b.get(4) == Some(&b'-')
            && b.iter().skip(5).take(2).all(u8::is_ascii_digit)
            // RFC 3720 3.2.6.3.1: yyyy-mm, month 01-12
            && matches!((b[5], b[6]), (b'0', b'1'..=b'9') | (b'1', b'0'..=b'2'))
            && b.get(7) == Some(&b'.')
    } else if let Some(rest) = s.strip_prefix("eui.") {
        rest.len() == 16 && rest.chars().all(|c| c.is_ascii_hexdigit())
    } else {
        false
    }
}

/// The reason of a tgt-ipc refusal, as a config error's reason.
fn tgt_reason(e: TgtError) -> String {
    match e {
        TgtError::InvalidRequest { what, reason } => format!("{what}: {reason} (tgt-ipc's check)"),
        other => other.to_string(),
    }
}
