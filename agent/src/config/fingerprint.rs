//! The config's fingerprint: a hash of what both nodes must agree on, so an operator can compare
//! the two nodes' `iscsi-ha status` (or `check-config`) before a failover changes what
//! initiators see.

use std::fmt::Write;
use std::path::PathBuf;

use sha2::{Digest, Sha256};

use super::{Config, RoleSource};

impl Config {
    /// SHA-256 (first 16 hex digits) of the effective config without what differs between the
    /// nodes by design: the node's name and state directory, role source, sockets, timeouts,
    /// metrics and alerts, the interface of each address, the backing disks (of every volume) and CHAP secrets
    /// file paths, and which end of each replication link (address, DRBD 9 node id) is this
    /// node's (the `[tickle]` link's two ends are kept, in a fixed order, with its portal
    /// port and whether its datagrams are authenticated; its `sync_ms`, `repeat`,
    /// `handover_ms` and `secret_file` path are not). What remains is what initiators see and
    /// DRBD replicates: resources, volumes and minors, IQNs, tids, ACLs, CHAP users, LUN
    /// numbers, devices, identities and cache modes, addresses, and DRBD's options; in no particular order of tables, and a LUN's device as
    /// the minor it names (`/dev/drbd/by-res/r0/1` and `/dev/drbd<minor>` are the same).
    pub fn fingerprint(&self) -> String {
        let mut c = self.clone();
        c.node = String::new();
        c.state_dir = Default::default();
        c.role = RoleSource::Command;
        c.sockets = Default::default();
        c.timeouts = Default::default();
        c.metrics = Default::default();
        c.alerts = Default::default();
        for a in &mut c.addresses {
            a.interface = String::new();
        }
        // The link's two ends and the portal port must match (or nothing is learnt); which end
        // is this node's, how often it syncs, repeats and waits for a handover are each node's.
        if let Some(t) = &mut c.tickle {
            if t.peer < t.listen {
                std::mem::swap(&mut t.listen, &mut t.peer);
            }
            (t.sync_ms, t.repeat, t.handover_ms) = (0, 0, 0);
            // Keyed or not must match; the file's place is each node's (its secret is never
            // hashed in: the fingerprint is shown and a weak secret could be guessed from it).
            if t.secret_file.is_some() {
                t.secret_file = Some(PathBuf::new());
            }
        }
        // the order of tables in the file and the spelling of a volume's device are the
        // writer's: the same volumes and LUNs in another order or spelling serve the same
        c.resources.sort_by(|a, b| a.name.cmp(&b.name));
        c.addresses.sort_by_key(|a| a.address.to_string());
        for r in &mut c.resources {
            r.volumes.sort_by_key(|v| v.volume);
            r.luns.sort_by_key(|l| l.lun);
            for j in 0..r.luns.len() {
                if let Some(m) = r.own_minor(&r.luns[j].device) {
                    r.luns[j].device = PathBuf::from(format!("/dev/drbd{m}"));
                }
            }
            if let Some(ch) = &mut r.target.chap {
                ch.secrets = PathBuf::new();
            }
            for v in &mut r.volumes {
                v.disk = v.disk.as_ref().map(|_| PathBuf::new());
            }
            if let Some(m) = &mut r.manage {
                m.disk = PathBuf::new();
                if m.peer < m.local {
                    std::mem::swap(&mut m.local, &mut m.peer);
                }
                if m.peer_node_id < m.node_id {
                    std::mem::swap(&mut m.node_id, &mut m.peer_node_id);
                }
            }
        }
        // serde_json writes fields in declaration order: the same config, the same bytes.
        let bytes = serde_json::to_vec(&c).unwrap_or_default();
        let digest = Sha256::digest(&bytes);
        digest.iter().take(8).fold(String::new(), |mut o, b| {
            let _ = write!(o, "{b:02x}");
            o
        })
    }

    /// The config as the agent uses it, every default filled in, as TOML.
    ///
    /// # Errors
    /// The TOML serializer's message (a value TOML cannot hold; none today).
    pub fn effective_toml(&self) -> Result<String, String> {
        toml::to_string(self).map_err(|e| e.to_string())
    }
}
