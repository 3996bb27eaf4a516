//! Configuration: TOML read with serde, unknown keys refused, then [`Config::validate`]d.
//!
//! Every error names the file, the line, the dotted key and the reason. Line numbers come from the
//! parser's spans: serde errors carry one; for semantic errors the key path is looked up in a
//! span-keeping parse of the same text (`toml_edit::ImDocument`).

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize};
use tgt_ipc::{
    Acl, CacheMode, LunBacking, LunIdentity, ServeAccount, ServeLun, ServeSpec, TgtError,
};

use crate::error::ConfigError;

/// Default location of the XenServer / XCP-ng pool role file.
pub const DEFAULT_POOL_CONF: &str = "/etc/xensource/pool.conf";
/// Default control socket path.
pub const DEFAULT_CONTROL_SOCKET: &str = "/run/iscsi-ha/control.sock";
/// Default tgtd management socket path (tgtd `-C 0`).
pub const DEFAULT_TGTD_SOCKET: &str = "/var/run/tgtd/socket.0";
/// Default configuration file path.
pub const DEFAULT_CONFIG: &str = "/etc/iscsi-ha/iscsi-ha.toml";

/// The whole configuration file.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// This node's name (reported in status; must not be empty).
    pub node: String,
    /// Where the primary/secondary decision comes from.
    pub role: RoleSource,
    /// Socket paths.
    #[serde(default)]
    pub sockets: Sockets,
    /// Timeouts.
    #[serde(default)]
    pub timeouts: Timeouts,
    /// The replicated resources, each served as one iSCSI target.
    #[serde(rename = "resource")]
    pub resources: Vec<Resource>,
    /// The floating addresses.
    #[serde(rename = "address", default)]
    pub addresses: Vec<Address>,
    /// The Prometheus endpoint (off unless `listen` is set).
    #[serde(default)]
    pub metrics: Metrics,
    /// Alerts (`[alerts.email]`; none unless set).
    #[serde(default)]
    pub alerts: crate::alerts::AlertsConfig,
}

/// `[metrics]`: the Prometheus text endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Metrics {
    /// `ip:port` to serve `GET /metrics` on, e.g. `"127.0.0.1:9942"`; unset: no endpoint.
    #[serde(default, deserialize_with = "crate::metrics::listen_address")]
    pub listen: Option<SocketAddr>,
}

/// The role source: exactly one per node.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(tag = "source", rename_all = "kebab-case", deny_unknown_fields)]
#[non_exhaustive]
pub enum RoleSource {
    /// Follow the XenServer / XCP-ng pool master: `master` → primary, `slave:<addr>` → secondary.
    PoolConf {
        /// The file to watch (default `/etc/xensource/pool.conf`).
        #[serde(default = "default_pool_conf")]
        path: PathBuf,
    },
    /// Follow `iscsi-ha promote|demote` sent over the control socket.
    Command,
}

fn default_pool_conf() -> PathBuf {
    PathBuf::from(DEFAULT_POOL_CONF)
}

/// Socket paths.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Sockets {
    /// The agent's control socket (created 0600, root only).
    pub control: PathBuf,
    /// tgtd's management socket.
    pub tgtd: PathBuf,
}

impl Default for Sockets {
    fn default() -> Self {
        Self {
            control: PathBuf::from(DEFAULT_CONTROL_SOCKET),
            tgtd: PathBuf::from(DEFAULT_TGTD_SOCKET),
        }
    }
}

/// Timeouts, in milliseconds unless named otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Timeouts {
    /// Per DRBD request.
    pub drbd_ms: u64,
    /// Per tgtd request.
    pub tgtd_ms: u64,
    /// Per address operation (probe included).
    pub address_ms: u64,
    /// Period of the slow safety-net re-check, in seconds; 0 disables it.
    pub safety_net_s: u64,
    /// How long a node told to be primary waits for its peer when DRBD has not been Connected
    /// since attach before it promotes degraded, in seconds (drbdadm's `wfc-timeout`);
    /// 0 (the default) waits for the peer or an operator's `promote --degraded`.
    pub wfc_s: u64,
    /// How long the role source's authority must stay unchanged before the agent acts on a
    /// change, in milliseconds; every change re-arms the timer, so a burst (a 200 ms `pool.conf`
    /// flap) ends in at most one transition, or none when it ends where it began. XAPI writes
    /// each role once per designation (`broken` is held apart, see `broken_alarm_s`), so a
    /// flap is not XAPI's pattern; the settle time is added to every takeover, hence short:
    /// 500 ms by default (docs/takeover.md). 0 acts at once. Operator commands are not delayed.
    pub authority_settle_ms: u64,
    /// How long `pool.conf` may say `broken` (XAPI's state during a pool master designation,
    /// left in place when the designation fails) before it raises an alarm, in seconds. While
    /// `broken`, nothing is promoted or demoted.
    pub broken_alarm_s: u64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            drbd_ms: 5000,
            tgtd_ms: 3000,
            address_ms: 2000,
            safety_net_s: 60,
            wfc_s: 0,
            authority_settle_ms: 500,
            broken_alarm_s: 30,
        }
    }
}

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
    /// The logical units, at least one.
    #[serde(rename = "lun")]
    pub luns: Vec<Lun>,
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
    #[serde(default = "default_meta_disk")]
    pub meta_disk: String,
    /// This node's replication address, `ip:port`.
    pub local: String,
    /// The peer's replication address, `ip:port`.
    pub peer: String,
    /// Replication protocol: `A`, `B` or `C`.
    #[serde(default = "default_protocol")]
    pub protocol: String,
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

fn default_meta_disk() -> String {
    "internal".into()
}
fn default_protocol() -> String {
    "C".into()
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Initiators {
    /// Every initiator (`initiators = "all"`, written out).
    All,
    /// Exactly these initiator names or addresses.
    List(Vec<String>),
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

/// A floating address.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Address {
    /// `address/prefix`, e.g. `192.168.10.50/24`.
    pub address: String,
    /// Interface to hold it on.
    pub interface: String,
    /// Names of the resources served behind it; claimed only once all of them serve.
    pub resources: Vec<String>,
    /// Announce policy (gratuitous ARP / unsolicited NA).
    #[serde(default)]
    pub announce: Announce,
    /// Duplicate-address probe before adding.
    #[serde(default)]
    pub probe: Probe,
}

/// Announce policy after adding an address.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Announce {
    /// Number of announcements (0 = none).
    pub count: u32,
    /// Spacing between announcements, ms.
    pub interval_ms: u64,
}

impl Default for Announce {
    fn default() -> Self {
        Self {
            count: 3,
            interval_ms: 200,
        }
    }
}

/// Probe policy before adding an address.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Probe {
    /// Probe at all.
    pub enabled: bool,
    /// How long to wait for an answer, ms.
    pub timeout_ms: u64,
}

impl Default for Probe {
    fn default() -> Self {
        Self {
            enabled: true,
            timeout_ms: 200,
        }
    }
}

impl Address {
    /// The address and prefix, parsed (validated configs always parse).
    pub fn parsed(&self) -> Option<(IpAddr, u8)> {
        let (a, p) = self.address.split_once('/')?;
        let ip: IpAddr = a.parse().ok()?;
        let prefix: u8 = p.parse().ok()?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        (prefix <= max).then_some((ip, prefix))
    }
}

impl Config {
    /// Read, parse and validate a file.
    pub fn load(path: &Path) -> Result<Config, crate::AgentError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| crate::AgentError::ConfigRead {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(Config::parse(&text, path)?)
    }

    /// Parse and validate text; `file` is used in error messages only.
    pub fn parse(text: &str, file: &Path) -> Result<Config, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| line_of(text, s.start));
            let msg = e.message().to_string();
            let key = key_from_message(&msg).unwrap_or_default();
            ConfigError {
                file: file.to_path_buf(),
                line,
                key,
                reason: msg,
            }
        })?;
        if let Err((key, reason)) = cfg.validate() {
            let line = locate(text, &key);
            return Err(ConfigError {
                file: file.to_path_buf(),
                line,
                key,
                reason,
            });
        }
        Ok(cfg)
    }

    /// Semantic checks; returns the dotted key at fault and the reason.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let err = |k: String, r: &str| Err((k, r.to_string()));
        if self.node.trim().is_empty() {
            return err("node".into(), "must not be empty");
        }
        if let RoleSource::PoolConf { path } = &self.role {
            if !path.is_absolute() {
                return err("role.path".into(), "must be an absolute path");
            }
        }
        for (k, p) in [
            ("sockets.control", &self.sockets.control),
            ("sockets.tgtd", &self.sockets.tgtd),
        ] {
            if !p.is_absolute() {
                return err(k.into(), "must be an absolute path");
            }
        }
        for (k, v) in [
            ("timeouts.drbd_ms", self.timeouts.drbd_ms),
            ("timeouts.tgtd_ms", self.timeouts.tgtd_ms),
            ("timeouts.address_ms", self.timeouts.address_ms),
        ] {
            if v == 0 {
                return err(k.into(), "must be greater than 0");
            }
        }
        if self.resources.is_empty() {
            return err("resource".into(), "at least one [[resource]] is required");
        }
        let mut names = BTreeSet::new();
        let mut minors = BTreeSet::new();
        let mut tids = BTreeSet::new();
        let mut iqns = BTreeSet::new();
        for (i, r) in self.resources.iter().enumerate() {
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
                    return err(k("mode"), "mode = \"manage\" needs a [resource.manage] table")
                }
                (Mode::Adopt, Some(_)) => {
                    return err(
                        k("manage"),
                        "[resource.manage] given but mode = \"adopt\"; set mode = \"manage\" or remove it",
                    )
                }
                (Mode::Manage, Some(m)) => {
                    if !m.disk.is_absolute() {
                        return err(k("manage.disk"), "must be an absolute device path");
                    }
                    if m.meta_disk != "internal" {
                        return err(k("manage.meta_disk"), "only \"internal\" is supported");
                    }
                    if !matches!(m.protocol.as_str(), "A" | "B" | "C") {
                        return err(k("manage.protocol"), "must be \"A\", \"B\" or \"C\"");
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
                    let local = m.local.parse::<SocketAddr>();
                    let peer = m.peer.parse::<SocketAddr>();
                    match (local, peer) {
                        (Err(_), _) => return err(k("manage.local"), "must be ip:port"),
                        (_, Err(_)) => return err(k("manage.peer"), "must be ip:port"),
                        (Ok(l), Ok(p)) if l == p => {
                            return err(k("manage.peer"), "must differ from manage.local")
                        }
                        _ => {}
                    }
                }
                (Mode::Adopt, None) => {}
            }
            let t = &r.target;
            if !valid_iqn(&t.iqn) {
                return err(
                    k("target.iqn"),
                    "must look like iqn.YYYY-MM.reverse.domain[:name] or eui.<16 hex>",
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
            }
            // tgt-ipc's own checks, so nothing accepted here is refused when served.
            let spec = r
                .serve_spec(Vec::new())
                .map_err(|(f, e)| (k(&f), tgt_reason(e)))?;
            spec.validate().map_err(|e| (k("target"), tgt_reason(e)))?;
        }
        let mut addrs = BTreeSet::new();
        for (i, a) in self.addresses.iter().enumerate() {
            let k = |f: &str| format!("address[{i}].{f}");
            let Some((ip, prefix)) = a.parsed() else {
                return err(
                    k("address"),
                    "must be address/prefix, e.g. 192.168.10.50/24",
                );
            };
            if let Err(e) = vip::Vip::check_address(ip, prefix) {
                return err(
                    k("address"),
                    &format!("{e}: must be a unicast, non-loopback address, prefix at most 32 (IPv4) or 128 (IPv6) (vip's check)"),
                );
            }
            if !addrs.insert(ip) {
                return err(k("address"), "duplicate address");
            }
            if a.interface.is_empty() || a.interface.len() > 15 || a.interface.contains(['/', ' '])
            {
                return err(
                    k("interface"),
                    "must be an interface name (1-15 characters)",
                );
            }
            if a.resources.is_empty() {
                return err(k("resources"), "must name at least one resource");
            }
            for (j, rn) in a.resources.iter().enumerate() {
                if !names.contains(rn.as_str()) {
                    return err(
                        format!("address[{i}].resources[{j}]"),
                        "names no [[resource]] of this file",
                    );
                }
            }
            if a.probe.enabled && a.probe.timeout_ms == 0 {
                return err(k("probe.timeout_ms"), "must be greater than 0 when probing");
            }
        }
        if let Some(e) = &self.alerts.email {
            crate::alerts::validate(e)?;
        }
        Ok(())
    }

    /// The resource called `name`.
    pub fn resource(&self, name: &str) -> Option<&Resource> {
        self.resources.iter().find(|r| r.name == name)
    }

    /// The address written as `address`.
    pub fn address(&self, address: &str) -> Option<&Address> {
        self.addresses.iter().find(|a| a.address == address)
    }
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

/// 1-based line number of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text.char_indices()
        .take_while(|(i, _)| *i < offset)
        .filter(|(_, c)| *c == '\n')
        .count()
        + 1
}

/// serde's messages name the key in backquotes (`unknown field \`x\``, `missing field \`y\``).
fn key_from_message(msg: &str) -> Option<String> {
    let start = msg.find('`')? + 1;
    let len = msg.get(start..)?.find('`')?;
    msg.get(start..start + len).map(str::to_string)
}

/// Line of a dotted key path like `resource[0].lun[1].scsi_sn`, from a span-keeping parse.
/// Falls back to the deepest parent found.
fn locate(text: &str, path: &str) -> Option<usize> {
    let doc = toml_edit::ImDocument::parse(text).ok()?;
    let mut best: Option<usize> = None;
    let mut item: &toml_edit::Item = doc.as_item();
    for seg in path.split('.') {
        let (name, index) = match seg.split_once('[') {
            Some((n, rest)) => (n, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (seg, None),
        };
        let Some((key, child)) = item.as_table_like().and_then(|t| t.get_key_value(name)) else {
            return best;
        };
        if let Some(s) = key.span() {
            best = Some(line_of(text, s.start));
        }
        item = child;
        if let Some(ix) = index {
            let Some(elem) = item.get(ix) else {
                return best;
            };
            if let Some(s) = elem.span() {
                best = Some(line_of(text, s.start));
            }
            item = elem;
        }
    }
    best
}

/// The smallest valid config: one adopted resource, one LUN (unit tests of this crate).
#[cfg(test)]
pub(crate) const TEST_MINIMAL: &str = r#"
node = "a"
role = { source = "command" }
[[resource]]
name = "r0"
minor = 1
mode = "adopt"
target = { iqn = "iqn.2026-11.org.example:r0", tid = 1, initiators = "all" }
[[resource.lun]]
lun = 1
device = "/dev/drbd1"
scsi_id = "r0"
scsi_sn = "r0sn"
vendor = "IET"
product = "VIRTUAL-DISK"
"#;

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: &str = TEST_MINIMAL;

    #[test]
    fn minimal_parses() {
        let c = Config::parse(MIN, Path::new("x")).expect("parses");
        assert_eq!(c.resources.len(), 1);
        assert_eq!(c.sockets, Sockets::default());
    }

    #[test]
    fn line_of_counts() {
        assert_eq!(line_of("a\nb\nc", 0), 1);
        assert_eq!(line_of("a\nb\nc", 2), 2);
        assert_eq!(line_of("a\nb\nc", 4), 3);
    }
}
