//! [`Drbd`] over DRBD 9's generic-netlink API (`drbd_nl::v9`), and [`AnyDrbd`], which picks the
//! 8.4 or the DRBD 9 backend from the kernel's family version. No program is run.
//!
//! DRBD 9 roles are per resource and connections per peer: the view's `peer_role` is Primary if
//! any peer is (never promote beside a Primary), `connection`, `peer_disk` and the network options
//! come from the first connection. Manage mode needs `manage.node_id` and `manage.peer_node_id`:
//! the bring-up is `drbdadm up`'s (new-resource, new-minor, new-peer with the managed net options,
//! new-path, attach, connect) with [`ManagedOptions`], the set 8.4 uses (fencing in the
//! connection's options on DRBD 9).

use drbd_nl::v9::{
    self, AnyHandle, ConnectionState, DiskState, Drbd9Handle, Event as Event9, NetConf, Object,
    Primary9, Request9, Secondary9,
};
use drbd_nl::{DrbdError, RetCode, StateRv};
use futures::StreamExt;
use tokio::sync::mpsc::UnboundedSender;
use tracing::warn;

use super::drbd::{err, off_runtime, ManagedOptions, NetlinkDrbd};
use super::{ConfigFeed, Drbd, Generations};
use crate::config::{Config, Manage, Resource};
use crate::error::BackendError;
use crate::fsm::{
    Connection, Disk, Drbd9Promotion, DrbdNet, DrbdView, Event, Fencing, Role, SyncView,
};

/// DRBD 9 through netlink.
#[derive(Debug, Clone)]
pub struct Netlink9Drbd {
    handle: Drbd9Handle,
}

fn role(r: drbd_nl::Role) -> Role {
    match r {
        drbd_nl::Role::Primary => Role::Primary,
        drbd_nl::Role::Secondary => Role::Secondary,
        _ => Role::Unknown,
    }
}

fn disk(d: DiskState) -> Disk {
    match d {
        DiskState::Diskless => Disk::Diskless,
        DiskState::Attaching => Disk::Attaching,
        DiskState::Failed => Disk::Failed,
        DiskState::Negotiating => Disk::Negotiating,
        DiskState::Inconsistent => Disk::Inconsistent,
        DiskState::Outdated => Disk::Outdated,
        DiskState::Consistent => Disk::Consistent,
        DiskState::UpToDate => Disk::UpToDate,
        _ => Disk::DUnknown,
    }
}

/// DRBD 9's `Connecting` is what 8.4 called `WFConnection`.
fn connection(c: ConnectionState) -> Connection {
    match c {
        ConnectionState::StandAlone => Connection::StandAlone,
        ConnectionState::Connecting => Connection::WFConnection,
        ConnectionState::Connected => Connection::Connected,
        other => Connection::Other(other.to_string()),
    }
}

/// The last known state of one resource's objects, from a status read or from events.
#[derive(Debug, Clone, Default)]
struct Objects {
    /// Read whole by a status (events alone may not have shown every object yet).
    complete: bool,
    resource: Option<v9::Resource>,
    devices: Vec<v9::Device>,
    connections: Vec<v9::Connection>,
    peer_devices: Vec<v9::PeerDevice>,
}

impl Objects {
    /// The agent's view of minor `minor`.
    fn view(&self, minor: u32) -> DrbdView {
        let Some(r) = &self.resource else {
            return DrbdView::default();
        };
        let dev = self.devices.iter().find(|d| d.minor == Some(minor));
        let volume = dev.map_or(0, |d| d.volume);
        let conn = self.connections.first();
        let pd = conn.and_then(|c| {
            self.peer_devices
                .iter()
                .find(|p| p.peer_node_id == c.peer_node_id && p.volume == volume)
        });
        let any_peer_primary = self
            .connections
            .iter()
            .any(|c| c.peer_role == drbd_nl::Role::Primary);
        let net = conn.and_then(|c| c.net);
        DrbdView {
            up: true,
            role: role(r.role),
            peer_role: if any_peer_primary {
                Role::Primary
            } else {
                conn.map_or(Role::Unknown, |c| role(c.peer_role))
            },
            connection: conn.map_or(Connection::StandAlone, |c| connection(c.state)),
            disk: dev.map_or(Disk::Diskless, |d| disk(d.disk)),
            peer_disk: pd.map_or(Disk::DUnknown, |p| disk(p.peer_disk)),
            fencing: net.map_or(Fencing::Unknown, |n| Fencing::from_nl(n.fencing)),
            net: net.map(|n| DrbdNet {
                ping_int_s: n.ping_int_s,
                ping_timeout_ds: n.ping_timeout_ds,
                timeout_ds: n.timeout_ds,
                ko_count: n.ko_count,
                allow_two_primaries: n.two_primaries,
            }),
            drbd9: Some(self.promotion()),
            // 512-byte sectors.
            sync: pd.and_then(|p| p.out_of_sync_sectors).map(|s| SyncView {
                out_of_sync_kib: s / 2,
                done_permille: None,
            }),
            // several volumes are refused on DRBD 9 (volumes_refusal)
            volumes: Vec::new(),
        }
    }

    /// DRBD 9's promotion facts over every volume of the resource.
    fn promotion(&self) -> Drbd9Promotion {
        let volumes: Vec<Volume> = self
            .devices
            .iter()
            .map(|d| Volume {
                disk: d.disk,
                quorum: d.quorum,
                peer_disks: self
                    .peer_devices
                    .iter()
                    .filter(|p| p.volume == d.volume)
                    .map(|p| p.peer_disk)
                    .collect(),
            })
            .collect();
        let primary_peers = self
            .connections
            .iter()
            .filter(|c| c.peer_role == drbd_nl::Role::Primary)
            .map(|c| c.peer_node_id)
            .collect();
        let local_primary = self
            .resource
            .as_ref()
            .is_some_and(|r| r.role == drbd_nl::Role::Primary);
        promotion(local_primary, primary_peers, &volumes)
    }

    /// A connection created since the last status (manage mode's new-peer) has no options yet:
    /// fencing and timeouts come only from a GET_CONNECTIONS dump.
    fn lacks_net(&self) -> bool {
        self.connections.iter().any(|c| c.net.is_none())
    }

    /// Fills the missing connection options from a GET_CONNECTIONS dump.
    fn fill_net(&mut self, read: &[v9::Connection]) {
        for c in self.connections.iter_mut().filter(|c| c.net.is_none()) {
            c.net = read
                .iter()
                .find(|x| x.peer_node_id == c.peer_node_id)
                .and_then(|x| x.net);
        }
    }

    /// Applies one event; false if it is not about this resource's objects.
    fn apply(&mut self, e: &Event9) -> bool {
        let gone = e.notify == v9::NotifyType::Destroy;
        match &e.object {
            Object::Resource(r) => self.resource = (!gone).then(|| r.clone()),
            Object::Device(d) => {
                self.devices.retain(|x| x.volume != d.volume);
                if !gone {
                    self.devices.push(d.clone());
                }
            }
            Object::Connection(c) => {
                // Events carry no NET_CONF: keep the options read by the last status.
                let net = self
                    .connections
                    .iter()
                    .find(|x| x.peer_node_id == c.peer_node_id)
                    .and_then(|x| x.net);
                self.connections
                    .retain(|x| x.peer_node_id != c.peer_node_id);
                if !gone {
                    let mut c = c.clone();
                    c.net = c.net.or(net);
                    self.connections.push(c);
                }
            }
            Object::PeerDevice(p) => {
                self.peer_devices
                    .retain(|x| !(x.peer_node_id == p.peer_node_id && x.volume == p.volume));
                if !gone {
                    self.peer_devices.push(p.clone());
                }
            }
            _ => return false,
        }
        true
    }
}

/// One volume as DRBD 9's promotion rules see it: the local disk, its quorum, the peers' disks.
#[derive(Debug, Clone)]
struct Volume {
    disk: DiskState,
    quorum: bool,
    peer_disks: Vec<DiskState>,
}

/// `may_promote` and `promotion_score` derived as `drbdsetup events2` derives them (DRBD 9 sends
/// neither), with quorum and the Primary peers kept for the refusal's reason.
fn promotion(local_primary: bool, primary_peers: Vec<u32>, volumes: &[Volume]) -> Drbd9Promotion {
    let quorum = volumes.iter().all(|v| v.quorum);
    let mut p = Drbd9Promotion {
        quorum,
        primary_peers,
        ..Drbd9Promotion::default()
    };
    // No volume: a resource being set up, not reported promotable.
    if volumes.is_empty() || !quorum {
        return p;
    }
    let up = |d: &DiskState| *d == DiskState::UpToDate;
    let replicas =
        |v: &Volume| usize::from(up(&v.disk)) + v.peer_disks.iter().filter(|d| up(d)).count();
    let fewest = volumes.iter().map(replicas).min().unwrap_or(0);
    if fewest == 0 {
        return p; // nobody holds current data
    }
    let up_to_date = volumes.iter().filter(|v| up(&v.disk)).count();
    let with_disk = volumes.iter().all(|v| {
        matches!(
            v.disk,
            DiskState::UpToDate | DiskState::Consistent | DiskState::Inconsistent
        )
    });
    p.may_promote = !local_primary && p.primary_peers.is_empty() && up_to_date == volumes.len();
    let cap = |n: usize| u32::try_from(n.min(99)).unwrap_or(99);
    p.promotion_score = if with_disk { 10_000 } else { 0 } + cap(up_to_date) * 100 + cap(fewest);
    p
}

/// Why a `mode = "manage"` resource without node ids cannot be served on DRBD 9.
fn manage_refusal(name: &str) -> String {
    format!(
        "{name}: mode = \"manage\" on DRBD 9 needs the node ids: set manage.node_id (this \
         node's) and manage.peer_node_id (the peer's), 0-31, as in the resource's DRBD 9 \
         configuration; or configure it with DRBD 9's own tools (drbdadm up {name}) and set \
         mode = \"adopt\""
    )
}

/// The refusal of a config with `mode = "manage"` resources DRBD 9 cannot serve here (one line
/// per resource and reason), `None` when every resource can be served. `usermode_helper`: the
/// DRBD module's parameter ([`USERMODE_HELPER`]), `None` when unreadable.
pub fn refuse_manage_on_drbd9(config: &Config, usermode_helper: Option<&str>) -> Option<String> {
    let lines: Vec<String> = config
        .resources
        .iter()
        .filter(|r| r.manage.as_ref().is_some_and(|m| m.node_ids().is_none()))
        .map(|r| manage_refusal(&r.name))
        .chain(config.resources.iter().filter_map(options_refusal))
        .chain(config.resources.iter().filter_map(volumes_refusal))
        .chain(
            config
                .resources
                .iter()
                .filter(|r| r.manage.is_some() && usermode_helper == Some("disabled"))
                .map(|r| helper_refusal(&r.name)),
        )
        .collect();
    (!lines.is_empty()).then(|| lines.join("\n"))
}

/// The DRBD module's `usermode_helper` parameter (the program DRBD runs for `fence-peer` and
/// other handlers; `disabled` runs none).
pub const USERMODE_HELPER: &str = "/sys/module/drbd/parameters/usermode_helper";

/// Why manage mode cannot take over on DRBD 9 with `usermode_helper=disabled`: manage mode sets
/// fencing `resource-only`, and DRBD 9's `conn_try_outdate_peer` then reports the peer fenced
/// without outdating it (`drbd_maybe_khelper` returns `DRBD_UMH_DISABLED`), so `drbd_set_role`
/// never reaches its `--force` override and every promote without the peer, forced or not,
/// ends in −7 (`SS_PRIMARY_NOP`; drbd-9.2 `drbd/drbd_nl.c`). A takeover after a power loss
/// would never happen: refused at start, where it is seen.
fn helper_refusal(name: &str) -> String {
    format!(
        "{name}: mode = \"manage\" on DRBD 9 with the drbd module's usermode_helper=disabled: \
         DRBD 9 then refuses to become Primary without its peer even when forced (fencing \
         resource-only, fence-peer not run), so this node could never take over after its \
         peer loses power; set the parameter to a program ({USERMODE_HELPER}, e.g. \
         /sbin/drbdadm, which exits non-zero for a resource it does not know) or use \
         mode = \"adopt\" with DRBD 9's own configuration"
    )
}

/// Why a resource with `[[resource.volume]]` cannot be served on DRBD 9 yet: this backend reads
/// the state of and brings up volume 0 alone, so another volume's disk state would go unseen.
fn volumes_refusal(r: &Resource) -> Option<String> {
    (!r.volumes.is_empty()).then(|| {
        format!(
            "{}: several volumes ([[resource.volume]]) are served on DRBD 8.4 only so far; the \
             DRBD 9 backend reads and brings up volume 0 alone, so another volume's disk state \
             would go unchecked",
            r.name
        )
    })
}

/// Why a managed resource's `disk_options`/`net_options` cannot be served on DRBD 9: the
/// bring-up here does not send them yet (DRBD 9 moved several to the peer device), and
/// serving without what the operator asked for is worse than refusing.
fn options_refusal(r: &Resource) -> Option<String> {
    let m = r.manage.as_ref()?;
    let set = !m.disk_options.drbd84().is_empty() || !m.net_options.drbd84().is_empty();
    set.then(|| {
        format!(
            "{}: manage.disk_options / manage.net_options are applied on DRBD 8.4 only; remove \
             them or bring the resource up with drbdadm (mode = \"adopt\")",
            r.name
        )
    })
}

/// DRBD 9's data generations beyond the 8.4 shape of [`Generations`].
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Generations9 {
    /// This node's node id, if known from the config.
    pub node_id: Option<u32>,
    /// Per peer: node id, bitmap UUID (0 while in sync), out-of-sync 4 KiB blocks.
    pub peers: Vec<PeerGeneration>,
    /// Every history UUID, newest first.
    pub history: Vec<u64>,
}

/// One peer's part of [`Generations9`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PeerGeneration {
    /// The peer's node id.
    pub node_id: u32,
    /// The bitmap UUID kept for it.
    pub bitmap_uuid: u64,
    /// Blocks (4 KiB) written here and not there.
    pub bits_oos: u64,
}

/// DRBD 9 counts out-of-sync data in 512-byte sectors; the report uses 4 KiB bitmap blocks.
const SECTORS_PER_BIT: u64 = 8;

/// The generations of `minor` from one device dump, its peer devices and paths; `peer`, the
/// configured peer's node id, picks the bitmap UUID of the 8.4-shaped part (else the first peer).
fn generations_of(
    res: &str,
    minor: u32,
    node_id: Option<u32>,
    peer: Option<u32>,
    devices: &[v9::Device],
    peer_devices: &[v9::PeerDevice],
    paths: &[v9::Path],
) -> Result<Generations, BackendError> {
    let dev = devices
        .iter()
        .find(|d| d.minor == Some(minor))
        .ok_or_else(|| BackendError::Failed(format!("{res}: not up")))?;
    let current = dev
        .current_uuid
        .filter(|_| dev.disk != DiskState::Diskless)
        .ok_or_else(|| BackendError::Failed(format!("{res}: no disk attached")))?;
    let peers: Vec<PeerGeneration> = peer_devices
        .iter()
        .filter(|p| p.volume == dev.volume)
        .map(|p| PeerGeneration {
            node_id: p.peer_node_id,
            bitmap_uuid: p.bitmap_uuid.unwrap_or(0),
            bits_oos: p.out_of_sync_sectors.unwrap_or(0).div_ceil(SECTORS_PER_BIT),
        })
        .collect();
    let main = peers
        .iter()
        .find(|p| Some(p.node_id) == peer)
        .or(peers.first())
        .copied()
        .unwrap_or_default();
    let history = |i: usize| dev.history_uuids.get(i).copied().unwrap_or(0);
    let path = paths
        .iter()
        .find(|p| p.peer_node_id == main.node_id)
        .or(paths.first());
    Ok(Generations {
        uuids: [current, main.bitmap_uuid, history(0), history(1)],
        bits_oos: main.bits_oos,
        disk_flags: dev.disk_flags.unwrap_or(0),
        local: path.and_then(|p| p.local.as_ref()).map(|a| a.to_string()),
        peer: path.and_then(|p| p.peer.as_ref()).map(|a| a.to_string()),
        drbd9: Some(Generations9 {
            node_id,
            peers,
            history: dev.history_uuids.clone(),
        }),
    })
}

/// The managed options as DRBD 9 `net_conf` fields (fencing lives there on DRBD 9), in the order
/// `drbdsetup new-peer` sends `--fencing --after-sb-0pri --after-sb-1pri --after-sb-2pri
/// --ping-int --ping-timeout --timeout --ko-count`.
fn net_options(o: &ManagedOptions) -> [NetConf; 8] {
    [
        NetConf::FencingPolicy(o.fencing as u32),
        NetConf::AfterSb0p(o.after_sb[0] as u32),
        NetConf::AfterSb1p(o.after_sb[1] as u32),
        NetConf::AfterSb2p(o.after_sb[2] as u32),
        NetConf::PingInt(o.ping_int_s),
        NetConf::PingTimeo(o.ping_timeout_ds),
        NetConf::Timeout(o.timeout_ds),
        NetConf::KoCount(o.ko_count),
    ]
}

/// The connection's name (`new-peer --_name`): DRBD 9 wants one; the config names no peer host.
fn peer_name(peer_node_id: u32) -> String {
    format!("node-{peer_node_id}")
}

/// What is missing of a managed resource, in `drbdadm up`'s order.
fn up_requests(
    res: &Resource,
    m: &Manage,
    objs: &Objects,
    paths: &[v9::Path],
) -> Result<Vec<Request9>, BackendError> {
    let name = res.name.as_str();
    let (me, peer_id) = m
        .node_ids()
        .ok_or_else(|| BackendError::Failed(manage_refusal(name)))?;
    let (local, peer) = (m.local, m.peer);
    let o = ManagedOptions::of(m);
    let dev = objs.devices.iter().find(|d| d.minor == Some(res.minor));
    let conn = objs.connections.iter().find(|c| c.peer_node_id == peer_id);
    let mut out = Vec::new();
    if objs.resource.is_none() {
        out.push(Request9::new_resource(name, me));
    }
    if dev.is_none() {
        out.push(Request9::new_minor(name, res.minor, 0));
    }
    if conn.is_none() {
        out.push(Request9::new_peer_with(
            name,
            peer_id,
            &peer_name(peer_id),
            v9::wire_protocol(o.protocol),
            net_options(&o),
        ));
    }
    if !paths.iter().any(|p| p.peer_node_id == peer_id) {
        out.push(Request9::new_path(name, peer_id, local, peer));
    }
    // After new-peer: DRBD 9 reads the connections' fencing at attach (a Consistent disk stays
    // Consistent, not UpToDate, when a peer has fencing).
    if dev.is_none_or(|d| d.disk == DiskState::Diskless && !d.intentional_diskless) {
        out.push(Request9::attach(res.minor, &m.disk.to_string_lossy()));
    }
    if conn.is_none_or(|c| c.state == ConnectionState::StandAlone) {
        out.push(Request9::connect(name, peer_id));
    }
    Ok(out)
}

/// The resource an event is about, if it names one.
fn resource_of(e: &Event9) -> Option<&str> {
    Some(match &e.object {
        Object::Resource(r) => &r.name,
        Object::Device(d) => &d.resource,
        Object::Connection(c) => &c.resource,
        Object::PeerDevice(p) => &p.resource,
        Object::Path(p) => &p.resource,
        _ => return None,
    })
}

impl Netlink9Drbd {
    /// A backend on an open DRBD 9 handle.
    pub fn new(handle: Drbd9Handle) -> Self {
        Self { handle }
    }

    async fn objects(&self, res: &Resource) -> Result<Objects, DrbdError> {
        let name = Some(res.name.as_str());
        let h = &self.handle;
        let resource = h.resources(name).await?.into_iter().next();
        if resource.is_none() {
            return Ok(Objects {
                complete: true,
                ..Objects::default()
            });
        }
        Ok(Objects {
            complete: true,
            resource,
            devices: h.devices(name).await?,
            connections: h.connections(name).await?,
            peer_devices: h.peer_devices(name).await?,
        })
    }

    /// Follows DRBD 9's events2 stream and sends one [`Event::Drbd`] per change of a resource
    /// of the current config (`config` follows reloads; views kept from the events' full state
    /// sets); re-reads everything after a lost burst. Equivalent to `drbdsetup events2 all`.
    /// Subscribes before reading.
    pub async fn watch(
        self,
        config: ConfigFeed,
        tx: UnboundedSender<Event>,
    ) -> Result<(), BackendError> {
        let mut events = self.handle.events().await.map_err(err)?;
        let mut known = std::collections::HashMap::new();
        let first = config.borrow().clone();
        self.resync(&first, &tx, &mut known).await;
        while let Some(item) = events.next().await {
            let config = config.borrow().clone();
            let e = match item {
                Ok(e) => e,
                Err(e) => {
                    warn!(error = %e, "DRBD 9 event lost; re-reading state");
                    self.resync(&config, &tx, &mut known).await;
                    continue;
                }
            };
            let Some(name) = resource_of(&e) else {
                continue;
            };
            let Some(res) = config.resources.iter().find(|r| r.name == name) else {
                // Not followed (a reload removed it): what is known goes stale, so a reload
                // adding it again reads it whole.
                known.remove(name);
                continue;
            };
            if let Object::Helper { name, .. } = &e.object {
                if name == "split-brain" {
                    let ev = Event::SplitBrain {
                        resource: res.name.clone(),
                    };
                    if tx.send(ev).is_err() {
                        return Ok(());
                    }
                }
                continue;
            }
            let objs: &mut Objects = known.entry(res.name.clone()).or_default();
            if !objs.apply(&e) || e.continues {
                continue; // one view per complete state change
            }
            if !objs.complete {
                // Never seen whole (the last status read failed): read it now.
                match self.objects(res).await {
                    Ok(o) => *objs = o,
                    Err(e) => {
                        warn!(resource = %res.name, error = %e, "DRBD 9 status");
                        continue;
                    }
                }
            }
            if objs.lacks_net() {
                // One dump, not a whole re-read: this runs while up() configures the resource.
                match self.handle.connections(Some(&res.name)).await {
                    Ok(read) => objs.fill_net(&read),
                    Err(e) => warn!(resource = %res.name, error = %e, "DRBD 9 connections"),
                }
            }
            let view = objs.view(res.minor);
            if tx
                .send(Event::Drbd {
                    resource: res.name.clone(),
                    view,
                })
                .is_err()
            {
                return Ok(());
            }
        }
        Err(BackendError::Unavailable("DRBD event stream ended".into()))
    }

    async fn resync(
        &self,
        config: &Config,
        tx: &UnboundedSender<Event>,
        known: &mut std::collections::HashMap<String, Objects>,
    ) {
        for r in &config.resources {
            match self.objects(r).await {
                Ok(objs) => {
                    let view = objs.view(r.minor);
                    known.insert(r.name.clone(), objs);
                    let _ = tx.send(Event::Drbd {
                        resource: r.name.clone(),
                        view,
                    });
                }
                Err(e) => warn!(resource = %r.name, error = %e, "DRBD 9 status"),
            }
        }
    }
}

impl Drbd for Netlink9Drbd {
    async fn status(&self, res: &Resource) -> Result<DrbdView, BackendError> {
        Ok(self.objects(res).await.map_err(err)?.view(res.minor))
    }

    /// The state as it is: DRBD 9 gets no signal ([`Drbd::primary_at_once`] is the plain
    /// request), so its refusal already waited for the peer's answer inside the request.
    async fn changed(
        &self,
        res: &Resource,
        _before: &DrbdView,
        _limit: std::time::Duration,
    ) -> Result<DrbdView, BackendError> {
        self.status(res).await
    }

    async fn up(&self, res: &Resource) -> Result<(), BackendError> {
        let Some(m) = &res.manage else {
            return Err(BackendError::Failed(format!(
                "{}: mode is adopt; the agent does not bring it up",
                res.name
            )));
        };
        let objs = self.objects(res).await.map_err(err)?;
        let paths = if objs.resource.is_some() {
            self.handle.paths(Some(&res.name)).await.map_err(err)?
        } else {
            Vec::new()
        };
        for req in up_requests(res, m, &objs, &paths)? {
            super::metadata::replaying_unclean(&res.name, res.minor, &m.disk, || {
                self.handle.execute(req.clone())
            })
            .await?;
        }
        Ok(())
    }

    async fn primary(&self, res: &Resource, force: bool) -> Result<(), BackendError> {
        let primary = Primary9::new(&res.name).force(force);
        let handle = self.handle.clone();
        match off_runtime(move || handle.execute_blocking(primary)).await {
            Err(e) if e.state_rv() == Some(StateRv::TwoPrimaries) => {
                Err(BackendError::PeerPrimary(e))
            }
            Err(e) if e.ret_code() == Some(RetCode::ResNotKnown) => Err(err(e)),
            r => r.map_err(err),
        }
    }

    async fn secondary(&self, res: &Resource) -> Result<(), BackendError> {
        let secondary = Secondary9::new(&res.name);
        let handle = self.handle.clone();
        off_runtime(move || handle.execute_blocking(secondary))
            .await
            .map_err(err)
    }

    async fn generations(&self, res: &Resource) -> Result<Generations, BackendError> {
        let name = Some(res.name.as_str());
        let h = &self.handle;
        let devices = h.devices(name).await.map_err(err)?;
        let peer_devices = h.peer_devices(name).await.map_err(err)?;
        let paths = h.paths(name).await.map_err(err)?;
        let ids = res.manage.as_ref().and_then(Manage::node_ids);
        generations_of(
            &res.name,
            res.minor,
            ids.map(|i| i.0),
            ids.map(|i| i.1),
            &devices,
            &peer_devices,
            &paths,
        )
    }
}

/// The DRBD backend for whichever API the kernel speaks (family version 1 = 8.4, 2 = 9).
#[derive(Debug, Clone)]
pub enum AnyDrbd {
    /// The in-tree DRBD 8.4.
    V84(NetlinkDrbd),
    /// DRBD 9.
    V9(Netlink9Drbd),
}

impl AnyDrbd {
    /// Connects to the kernel's `drbd` family and picks the backend from its version.
    pub async fn connect() -> Result<AnyDrbd, BackendError> {
        Ok(match AnyHandle::connect().await.map_err(err)? {
            AnyHandle::V9(h) => AnyDrbd::V9(Netlink9Drbd::new(h)),
            AnyHandle::V84(h) => AnyDrbd::V84(NetlinkDrbd::from_handle(h)),
            other => {
                return Err(BackendError::Unavailable(format!(
                    "unsupported DRBD API (family version {})",
                    other.family().version
                )))
            }
        })
    }

    /// Refuses a config this backend cannot serve: a LUN on a device that is not one of its
    /// resource's volumes ([`Config::check_devices`]); on DRBD 9, `mode = "manage"` without
    /// node ids, with several volumes or with the module's `usermode_helper` set to exactly
    /// `disabled` ([`refuse_manage_on_drbd9`]; checked at start and reload, so the daemon says
    /// why instead of failing the first bring-up or the first takeover).
    ///
    /// # Errors
    /// [`BackendError::Failed`] naming the LUN, or each resource DRBD 9 cannot serve.
    pub fn check_config(&self, config: &Config) -> Result<(), BackendError> {
        config
            .check_devices()
            .map_err(|(key, why)| BackendError::Failed(format!("{key}: {why}")))?;
        let AnyDrbd::V9(_) = self else { return Ok(()) };
        let helper = std::fs::read_to_string(USERMODE_HELPER).ok();
        // sysfs adds one newline to the value (`param_get_string`); DRBD compares the rest
        // with "disabled" exactly, so a value written with its own newline is not disabled.
        let helper = helper.as_deref().map(|h| h.strip_suffix('\n').unwrap_or(h));
        match refuse_manage_on_drbd9(config, helper) {
            Some(why) => Err(BackendError::Failed(why)),
            None => Ok(()),
        }
    }

    /// `8.4` or `9`: which DRBD this backend drives.
    pub fn version(&self) -> &'static str {
        match self {
            AnyDrbd::V84(_) => "8.4",
            AnyDrbd::V9(_) => "9",
        }
    }

    /// Follows the kernel's events (see [`NetlinkDrbd::watch`], [`Netlink9Drbd::watch`]).
    pub async fn watch(
        self,
        config: ConfigFeed,
        tx: UnboundedSender<Event>,
    ) -> Result<(), BackendError> {
        match self {
            AnyDrbd::V84(d) => d.watch(config, tx).await,
            AnyDrbd::V9(d) => d.watch(config, tx).await,
        }
    }
}

impl Drbd for AnyDrbd {
    async fn status(&self, res: &Resource) -> Result<DrbdView, BackendError> {
        match self {
            AnyDrbd::V84(d) => d.status(res).await,
            AnyDrbd::V9(d) => d.status(res).await,
        }
    }

    async fn up(&self, res: &Resource) -> Result<(), BackendError> {
        match self {
            AnyDrbd::V84(d) => d.up(res).await,
            AnyDrbd::V9(d) => d.up(res).await,
        }
    }

    async fn primary(&self, res: &Resource, force: bool) -> Result<(), BackendError> {
        match self {
            AnyDrbd::V84(d) => d.primary(res, force).await,
            AnyDrbd::V9(d) => d.primary(res, force).await,
        }
    }

    async fn primary_at_once(&self, res: &Resource) -> Result<(), BackendError> {
        match self {
            AnyDrbd::V84(d) => d.primary_at_once(res).await,
            AnyDrbd::V9(d) => d.primary_at_once(res).await,
        }
    }

    async fn changed(
        &self,
        res: &Resource,
        before: &DrbdView,
        limit: std::time::Duration,
    ) -> Result<DrbdView, BackendError> {
        match self {
            AnyDrbd::V84(d) => d.changed(res, before, limit).await,
            AnyDrbd::V9(d) => d.changed(res, before, limit).await,
        }
    }

    async fn secondary(&self, res: &Resource) -> Result<(), BackendError> {
        match self {
            AnyDrbd::V84(d) => d.secondary(res).await,
            AnyDrbd::V9(d) => d.secondary(res).await,
        }
    }

    async fn generations(&self, res: &Resource) -> Result<Generations, BackendError> {
        match self {
            AnyDrbd::V84(d) => d.generations(res).await,
            AnyDrbd::V9(d) => d.generations(res).await,
        }
    }

    fn check_config(&self, config: &Config) -> Result<(), BackendError> {
        AnyDrbd::check_config(self, config)
    }

    fn version(&self) -> Option<&'static str> {
        Some(AnyDrbd::version(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vol(disk: DiskState, quorum: bool, peers: &[DiskState]) -> Volume {
        Volume {
            disk,
            quorum,
            peer_disks: peers.to_vec(),
        }
    }

    const UP: DiskState = DiskState::UpToDate;

    const ADOPT: &str = crate::config::TEST_MINIMAL;

    /// ADOPT in manage mode with `ids` added to the manage table.
    fn managed(ids: &str) -> Result<Config, String> {
        let text = ADOPT.replace(
            "mode = \"adopt\"",
            &format!(
                "mode = \"manage\"\nmanage = {{ disk = \"/dev/vdb\", local = \"10.0.0.1:7789\", \
                 peer = \"10.0.0.2:7789\"{ids} }}"
            ),
        );
        Config::parse(&text, std::path::Path::new("x")).map_err(|e| e.to_string())
    }

    #[test]
    fn manage_mode_without_node_ids_is_refused_with_the_way_out() {
        let c = Config::parse(ADOPT, std::path::Path::new("x")).expect("parses");
        assert_eq!(refuse_manage_on_drbd9(&c, None), None);
        // Valid for 8.4 (node ids ignored there), refused on DRBD 9.
        let why = refuse_manage_on_drbd9(&managed("").expect("parses"), None).expect("refused");
        assert!(
            why.starts_with("r0: mode = \"manage\" on DRBD 9 needs the node ids"),
            "{why}"
        );
        assert!(
            why.contains("manage.node_id") && why.contains("manage.peer_node_id"),
            "{why}"
        );
        assert!(why.contains("drbdadm up r0"), "{why}");
        let c = managed(", node_id = 0, peer_node_id = 1").expect("parses");
        assert_eq!(refuse_manage_on_drbd9(&c, None), None);
    }

    #[test]
    fn manage_mode_is_refused_when_drbd_9_runs_no_helper() {
        let managed = managed(", node_id = 0, peer_node_id = 1").expect("parses");
        for helper in [None, Some("/sbin/drbdadm"), Some("")] {
            assert_eq!(refuse_manage_on_drbd9(&managed, helper), None, "{helper:?}");
        }
        let why = refuse_manage_on_drbd9(&managed, Some("disabled")).expect("refused");
        assert!(
            why.starts_with(
                "r0: mode = \"manage\" on DRBD 9 with the drbd module's usermode_helper=disabled"
            ),
            "{why}"
        );
        assert!(
            why.contains(USERMODE_HELPER) && why.contains("adopt"),
            "{why}"
        );
        // Adopt mode: the administrator's DRBD configuration, not the agent's fencing.
        let adopt = Config::parse(ADOPT, std::path::Path::new("x")).expect("parses");
        assert_eq!(refuse_manage_on_drbd9(&adopt, Some("disabled")), None);
    }

    #[test]
    fn node_ids_are_validated_with_the_key() {
        for (ids, key, why) in [
            (
                ", node_id = 0",
                "manage.peer_node_id",
                "must be given with manage.node_id",
            ),
            (", peer_node_id = 1", "manage.node_id", "must be given with"),
            (", node_id = 32, peer_node_id = 1", "manage.node_id", "0-31"),
            (
                ", node_id = 0, peer_node_id = 40",
                "manage.peer_node_id",
                "0-31",
            ),
            (
                ", node_id = 3, peer_node_id = 3",
                "manage.peer_node_id",
                "must differ",
            ),
        ] {
            let e = managed(ids).expect_err(ids);
            assert!(e.contains(key) && e.contains(why), "{ids}: {e}");
        }
    }

    fn manage_of(c: &Config) -> (&Resource, &Manage) {
        let r = &c.resources[0];
        (r, r.manage.as_ref().expect("managed"))
    }

    #[test]
    fn bring_up_is_drbdadm_ups_order_with_the_managed_options() {
        let c = managed(", node_id = 0, peer_node_id = 1").expect("parses");
        let (r, m) = manage_of(&c);
        let reqs = up_requests(r, m, &Objects::default(), &[]).expect("requests");
        let lines: Vec<String> = reqs.iter().map(v9::Request::command_line).collect();
        assert_eq!(
            lines,
            [
                "new-resource r0 0",
                "new-minor r0 1 0",
                "new-peer r0 1 --_name=node-1",
                "new-path r0 1 10.0.0.1:7789 10.0.0.2:7789",
                "attach 1 /dev/vdb /dev/vdb internal",
                "connect r0 1",
            ]
        );
        // The new-peer carries the 8.4 manage mode's set: fencing resource-only, after-sb
        // disconnect, the fast-detection timeouts from the config (defaults here).
        let new_peer = v9::Request::message(&reqs[2]);
        let net: Vec<&NetConf> = new_peer
            .attrs
            .iter()
            .filter_map(|a| match a {
                v9::Drbd9Attr::NetConf(s) => Some(s.iter()),
                _ => None,
            })
            .flatten()
            .collect();
        for want in [
            NetConf::WireProtocol(3),
            NetConf::FencingPolicy(1),
            NetConf::AfterSb0p(0),
            NetConf::AfterSb1p(0),
            NetConf::AfterSb2p(0),
            NetConf::PingInt(crate::config::DEFAULT_PING_INT_S),
            NetConf::PingTimeo(crate::config::DEFAULT_PING_TIMEOUT_DS),
            NetConf::Timeout(crate::config::DEFAULT_TIMEOUT_DS),
            NetConf::KoCount(crate::config::DEFAULT_KO_COUNT),
        ] {
            assert!(net.contains(&&want), "{want:?} missing in {net:?}");
        }
        // Without node ids: the refusal, nothing sent.
        let c = managed("").expect("parses");
        let (r, m) = manage_of(&c);
        let e = up_requests(r, m, &Objects::default(), &[]).unwrap_err();
        assert!(e.to_string().contains("needs the node ids"), "{e}");
    }

    /// A dump part of resource r0 with `sets` (and volume 0, peer node id 1 in its context).
    fn part(cmd: v9::Drbd9Cmd, minor: u32, sets: Vec<v9::Drbd9Attr>) -> v9::Drbd9Message {
        let mut attrs = vec![v9::Drbd9Attr::CfgContext(drbd_nl::AttrSet::new(vec![
            v9::CfgContext::CtxResourceName("r0".into()),
            v9::CfgContext::CtxVolume(0),
            v9::CfgContext::CtxPeerNodeId(1),
        ]))];
        attrs.extend(sets);
        v9::Drbd9Message::new(cmd, minor, attrs)
    }

    fn device(disk: DiskState, history: &[u64]) -> v9::Device {
        let bytes: Vec<u8> = history.iter().flat_map(|u| u.to_ne_bytes()).collect();
        let m = part(
            v9::Drbd9Cmd::GetDevices,
            1,
            vec![
                v9::Drbd9Attr::DeviceInfo(drbd_nl::AttrSet::new(vec![
                    v9::DeviceInfo::DevDiskState(u32::from(u8::from(disk))),
                ])),
                v9::Drbd9Attr::DeviceStatistics(drbd_nl::AttrSet::new(vec![
                    v9::DeviceStatistics::DevCurrentUuid(0xC0),
                    v9::DeviceStatistics::DevDiskFlags(0x40),
                    v9::DeviceStatistics::HistoryUuids(bytes),
                ])),
            ],
        );
        v9::Device::from_message(&m).expect("device")
    }

    #[test]
    fn generations_take_the_configured_peers_bitmap_and_the_history() {
        let dev = device(UP, &[0xA1, 0, 0xA2, 0xA3]);
        let pd = v9::PeerDevice::from_message(&part(
            v9::Drbd9Cmd::GetPeerDevices,
            u32::MAX,
            vec![v9::Drbd9Attr::PeerDeviceStatistics(drbd_nl::AttrSet::new(
                vec![
                    v9::PeerDeviceStatistics::PeerDevBitmapUuid(0xB1),
                    v9::PeerDeviceStatistics::PeerDevOutOfSync(17),
                ],
            ))],
        ))
        .expect("peer device");
        let g = generations_of("r0", 1, Some(0), Some(1), &[dev], &[pd], &[]).expect("gens");
        assert_eq!(g.uuids, [0xC0, 0xB1, 0xA1, 0xA2]);
        assert_eq!(g.bits_oos, 3, "17 sectors round up to 3 blocks of 4 KiB");
        assert_eq!(g.disk_flags, 0x40);
        let g9 = g.drbd9.expect("DRBD 9 part");
        assert_eq!(g9.history, [0xA1, 0xA2, 0xA3]);
        assert_eq!(
            g9.peers,
            [PeerGeneration {
                node_id: 1,
                bitmap_uuid: 0xB1,
                bits_oos: 3
            }]
        );
        // Diskless or another minor: said, not zeros.
        let e = generations_of(
            "r0",
            1,
            None,
            None,
            &[device(DiskState::Diskless, &[])],
            &[],
            &[],
        );
        assert!(e.unwrap_err().to_string().contains("no disk attached"));
        let e = generations_of("r0", 2, None, None, &[device(UP, &[])], &[], &[]);
        assert!(e.unwrap_err().to_string().contains("not up"));
    }

    #[test]
    fn a_connection_created_by_events_makes_the_view_read_its_options() {
        let mut objs = Objects {
            complete: true,
            ..Objects::default()
        };
        // CONNECTION_STATE create (nh_type 1), as new-peer broadcasts it: no NET_CONF.
        let m = part(
            v9::Drbd9Cmd::ConnectionState,
            u32::MAX,
            vec![
                v9::Drbd9Attr::NotificationHeader(drbd_nl::AttrSet::new(vec![
                    v9::NotificationHeader::NhType(1),
                ])),
                v9::Drbd9Attr::ConnectionInfo(drbd_nl::AttrSet::new(vec![
                    v9::ConnectionInfo::ConnConnectionState(0),
                ])),
            ],
        );
        let e = Event9::from_message(1, m.clone()).expect("event");
        assert!(objs.apply(&e));
        assert!(
            objs.lacks_net(),
            "options unknown: the watch reads GET_CONNECTIONS"
        );
        let mut with_net = m;
        with_net
            .attrs
            .push(v9::Drbd9Attr::NetConf(drbd_nl::AttrSet::new(vec![
                NetConf::FencingPolicy(1),
            ])));
        let read = v9::Connection::from_message(&with_net).expect("connection");
        objs.fill_net(&[read]);
        assert!(!objs.lacks_net());
        assert_eq!(objs.connections[0].net.map(|n| n.fencing), Some(1));
    }

    #[test]
    fn connected_up_to_date_secondary_may_promote() {
        let p = promotion(false, vec![], &[vol(UP, true, &[UP])]);
        assert!(p.may_promote && p.quorum, "{p:?}");
        assert_eq!(p.promotion_score, 10_102);
        assert_eq!(p.refusal(), None);
    }

    #[test]
    fn a_primary_peer_forbids_it_and_is_named() {
        let p = promotion(false, vec![1], &[vol(UP, true, &[UP])]);
        assert!(!p.may_promote);
        assert_eq!(p.primary_peers_text(), " (DRBD 9 node id 1)");
        // Already Primary here: not "may promote" either (drbdsetup's have_primary).
        assert!(!promotion(true, vec![], &[vol(UP, true, &[UP])]).may_promote);
    }

    #[test]
    fn no_quorum_is_a_refusal_with_score_zero() {
        let p = promotion(false, vec![], &[vol(UP, false, &[])]);
        assert!(!p.may_promote && !p.quorum);
        assert_eq!(p.promotion_score, 0);
        assert!(p.refusal().expect("refused").contains("no quorum"));
    }

    #[test]
    fn stale_or_missing_data_may_not_promote() {
        // Outdated here, peer UpToDate: scored (a replica exists) but not promotable here.
        let p = promotion(false, vec![], &[vol(DiskState::Outdated, true, &[UP])]);
        assert!(!p.may_promote);
        assert_eq!(p.promotion_score, 1);
        // Consistent and nobody UpToDate: no current replica anywhere.
        let p = promotion(
            false,
            vec![],
            &[vol(DiskState::Consistent, true, &[DiskState::DUnknown])],
        );
        assert!(!p.may_promote);
        assert_eq!(p.promotion_score, 0);
        // Disconnected UpToDate (peer lost): DRBD 9 lets it promote, score counts itself.
        let p = promotion(false, vec![], &[vol(UP, true, &[DiskState::DUnknown])]);
        assert!(p.may_promote);
        assert_eq!(p.promotion_score, 10_101);
        // Every volume must be UpToDate here; the fewest replicas count.
        let p = promotion(
            false,
            vec![],
            &[
                vol(UP, true, &[UP]),
                vol(DiskState::Inconsistent, true, &[UP]),
            ],
        );
        assert!(!p.may_promote);
        assert_eq!(p.promotion_score, 10_101);
        // No volume: not promotable.
        assert!(!promotion(false, vec![], &[]).may_promote);
    }
}
