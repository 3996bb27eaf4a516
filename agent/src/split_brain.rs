//! What `iscsi-ha split-brain` prints: per resource, this node's data generations as DRBD (8.4 or 9)
//! exposes them locally, and the manual recovery (DRBD 8.4 user guide, "Manual split brain
//! recovery"; `docs/stale-data-and-split-brain.md`). Nothing here changes anything: a split brain
//! is never resolved by the agent.

use std::fmt::Write as _;

use crate::backend::Generations;
use crate::config::Config;
use crate::fsm::State;

/// `MDF_CRASHED_PRIMARY`: the node was Primary when it went down uncleanly.
const MDF_CRASHED_PRIMARY: u32 = 0x40;

/// The report for every configured resource; `gens` holds what the DRBD backend answered
/// (in config order).
pub fn report(config: &Config, state: &State, gens: &[Result<Generations, String>]) -> String {
    let mut o = String::new();
    for (r, g) in config.resources.iter().zip(gens) {
        let Some(rs) = state.resources.get(&r.name) else {
            continue;
        };
        let d = &rs.view.drbd;
        let _ = writeln!(
            o,
            "resource {} (minor {}) on {}: {}",
            r.name,
            r.minor,
            config.node,
            if rs.split_brain {
                "SPLIT BRAIN reported by DRBD"
            } else {
                "no split brain reported"
            }
        );
        let _ = writeln!(
            o,
            "  this node: {} {} disk {}; peer last seen {} disk {}",
            d.role, d.connection, d.disk, d.peer_role, d.peer_disk
        );
        let mut ends = (None, None);
        // DRBD 9: (this node's id, the peer's id), placeholders where unknown.
        let mut v9 = None;
        match g {
            Ok(g) => {
                let [cur, bm, h1, h2] = g.uuids;
                let _ = writeln!(
                    o,
                    "  data generations here: current {cur:016X} bitmap {bm:016X} history \
                     {h1:016X} {h2:016X}"
                );
                let _ = writeln!(
                    o,
                    "  written here and not on the peer: {} KiB ({} out-of-sync 4 KiB blocks){}",
                    g.bits_oos * 4,
                    g.bits_oos,
                    if g.disk_flags & MDF_CRASHED_PRIMARY != 0 {
                        "; this node crashed while Primary"
                    } else {
                        ""
                    }
                );
                if let Some(g9) = &g.drbd9 {
                    let _ = writeln!(o, "{}", drbd9_lines(g9));
                    let single = (g9.peers.len() == 1).then(|| g9.peers[0].node_id);
                    let id = |n: Option<u32>, what: &str| n.map_or(what.into(), |n| n.to_string());
                    v9 = Some((
                        id(g9.node_id, "THIS_NODE_ID"),
                        id(
                            r.manage.as_ref().and_then(|m| m.peer_node_id).or(single),
                            "PEER_NODE_ID",
                        ),
                    ));
                }
                ends = (g.local.clone(), g.peer.clone());
            }
            Err(e) => {
                let _ = writeln!(o, "  data generations: not readable ({e})");
            }
        }
        let standalone = d.up && d.connection == crate::fsm::Connection::StandAlone;
        if !rs.split_brain && !standalone {
            continue;
        }
        // A StandAlone resource no longer reports its endpoints; manage mode knows them.
        let configured =
            |a: Option<&std::net::SocketAddr>| a.map(|a| drbd_nl::SockAddr(*a).to_string());
        let m = r.manage.as_ref();
        let local = ends.0.or_else(|| configured(m.map(|m| &m.local)));
        let peer = ends.1.or_else(|| configured(m.map(|m| &m.peer)));
        // The survivor's own endpoints are this node's, the other way round.
        let survivor = match (&local, &peer) {
            (Some(l), Some(p)) => format!("{p} {l}"),
            _ => "PEER_LOCAL PEER_PEER".into(),
        };
        let survivor_note = if local.is_some() && peer.is_some() {
            "its own endpoints: this node's, the other way round"
        } else {
            "its own endpoints, local first: the `address` lines of the resource in its \
             drbd.conf (drbdadm dump), or what `iscsi-ha split-brain` prints there"
        };
        let local = local.as_deref().unwrap_or("ipv4:LOCAL:PORT");
        let peer = peer.as_deref().unwrap_or("ipv4:PEER:PORT");
        // Manage mode's own net options: a connection made by hand without them would run on
        // DRBD's defaults (a dead peer noticed after 10 s instead of 2) until the next bring-up.
        let managed = m.is_some();
        let net = m.map_or("--protocol=C".to_string(), |m| {
            let o = crate::backend::drbd::ManagedOptions::of(m);
            let n = &m.net_options;
            let extra = [
                ("max-buffers", n.max_buffers),
                ("sndbuf-size", n.sndbuf_size),
                ("rcvbuf-size", n.rcvbuf_size),
            ]
            .iter()
            .filter_map(|(k, v)| v.map(|v| format!(" --{k}={v}")))
            .collect::<String>();
            format!(
                "--protocol={} --ping-int={} --ping-timeout={} --timeout={} --ko-count={}{extra}",
                o.protocol, o.ping_int_s, o.ping_timeout_ds, o.timeout_ds, o.ko_count
            )
        });
        if !rs.split_brain {
            // Disconnected by hand or after a failed handshake: neither DRBD nor the agent
            // connects a StandAlone resource again (manage mode has no drbd.conf for drbdadm).
            let _ = match (&v9, managed) {
                (Some((me, peer_id)), _) => writeln!(
                    o,
                    "  StandAlone: neither DRBD nor the agent connects it again. Once the cause \
                     is known: drbdsetup connect {name} {peer_id} here, and drbdsetup connect \
                     {name} {me} on the peer.",
                    name = r.name
                ),
                (None, true) => writeln!(
                    o,
                    "  StandAlone: neither DRBD nor the agent connects it again. Once the cause \
                     is known: drbdsetup-84 connect {name} {local} {peer} {net} here, and \
                     drbdsetup-84 connect {name} {survivor} {net} on the peer ({survivor_note}).",
                    name = r.name
                ),
                (None, false) => writeln!(
                    o,
                    "  StandAlone: neither DRBD nor the agent connects it again. Once the cause \
                     is known: drbdadm connect {name} on both nodes.",
                    name = r.name
                ),
            };
            continue;
        }
        if let Some((me, peer_id)) = v9 {
            recovery_drbd9(&mut o, &r.name, &me, &peer_id);
            continue;
        }
        let _ = writeln!(
            o,
            "  The peer's generations are not visible from here (DRBD 8.4 logs them only at the \
             handshake: dmesg | grep -i uuid); run `iscsi-ha split-brain` on the peer too. The two \
             current UUIDs differ and neither is the other's bitmap UUID: both changed the data."
        );
        let _ = writeln!(
            o,
            "  Recovery (by hand; nothing is resolved automatically):\n\
             \x20   1. Choose the VICTIM, the node whose changes since the split are DISCARDED: usually \
             the one the authority no longer names master; compare the \"written here\" amounts \
             of both nodes. Everything written on the victim since the split is lost.\n\
             \x20   2. On the victim, stop serving: `iscsi-ha demote` (role source command) or make \
             the other node the pool master; wait until `iscsi-ha status` shows {name} \
             Secondary.\n\
             \x20   3. On the victim: drbdsetup-84 disconnect {local} {peer}   (if not \
             StandAlone)\n\
             \x20      then: drbdsetup-84 connect {name} {local} {peer} {net} \
             --discard-my-data{usual}\n\
             \x20   4. On the survivor, if it is StandAlone: drbdsetup-84 connect {name} \
             {survivor} {net}   ({survivor_note}{usual_too})\n\
             \x20   5. The victim resyncs from the survivor (SyncTarget); the split brain is over \
             when both show Connected and `iscsi-ha status` exits 0.",
            name = r.name,
            net = net,
            usual = if managed { "" } else { "   (plus your usual net options)" },
            usual_too = if managed { "" } else { ", your usual net options" },
        );
    }
    o
}

/// DRBD 9's extra generations: each peer's bitmap UUID and the whole history.
fn drbd9_lines(g: &crate::backend::drbd9::Generations9) -> String {
    let peers: Vec<String> = g
        .peers
        .iter()
        .map(|p| {
            format!(
                "node {} {:016X} ({} KiB out of sync)",
                p.node_id,
                p.bitmap_uuid,
                p.bits_oos * 4
            )
        })
        .collect();
    let history: Vec<String> = g.history.iter().map(|u| format!("{u:016X}")).collect();
    format!(
        "  DRBD 9{}: bitmap UUID per peer: {}; history: {}",
        g.node_id
            .map(|n| format!(" (node id {n})"))
            .unwrap_or_default(),
        if peers.is_empty() {
            "none".into()
        } else {
            peers.join(", ")
        },
        if history.is_empty() {
            "none".into()
        } else {
            history.join(" ")
        }
    )
}

/// The manual recovery with DRBD 9's drbdsetup (connections are named by the peer's node id).
fn recovery_drbd9(o: &mut String, name: &str, me: &str, peer_id: &str) {
    let _ = writeln!(
        o,
        "  The peer's generations are not visible from here (DRBD 9 logs them at the handshake: \
         dmesg | grep -i uuid); run `iscsi-ha split-brain` on the peer too. The two current \
         UUIDs differ and neither is the other's bitmap UUID: both changed the data.\n\
         \x20 Recovery (by hand; nothing is resolved automatically):\n\
         \x20   1. Choose the VICTIM, the node whose changes since the split are DISCARDED: usually \
         the one the authority no longer names master; compare the \"written here\" amounts of \
         both nodes. Everything written on the victim since the split is lost.\n\
         \x20   2. On the victim, stop serving: `iscsi-ha demote` (role source command) or make the \
         other node the pool master; wait until `iscsi-ha status` shows {name} Secondary.\n\
         \x20   3. On the victim (this node: node id {me}): drbdsetup disconnect {name} {peer_id}   \
         (if not StandAlone)\n\
         \x20      then: drbdsetup connect {name} {peer_id} --discard-my-data\n\
         \x20   4. On the survivor, if it is StandAlone: drbdsetup connect {name} {me}   (the \
         victim's node id)\n\
         \x20   5. The victim resyncs from the survivor; the split brain is over when both show \
         Connected and `iscsi-ha status` exits 0."
    );
}
