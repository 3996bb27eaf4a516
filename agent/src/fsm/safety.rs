//! The one promote safety check, used by the planner on the last observation and by the
//! executor on DRBD's live state right before it acts.

use serde::{Deserialize, Serialize};

use super::view::{Connection, Disk, Drbd9Promotion, DrbdView, Role};

/// Refusal text of a node waiting for its peer (also what `State::waiting` reports).
pub const WAITING_FOR_PEER: &str = "waiting for the peer";

/// The command a [`Refusal::WaitingForPeer`] names to go without the peer (the daemon's; OCF
/// mode names its own).
pub const DEGRADED_HINT: &str = "iscsi-ha promote --degraded";

/// What a degraded promote costs, said wherever it is offered: DRBD discards, at the next
/// handshake, whatever the peer wrote after this node last saw it.
pub const DEGRADED_COST: &str = "a degraded promote LOSES every write the peer acknowledged after \
     this node last saw it; run it only if the peer's data is gone for good or older than this \
     node's";

/// What DRBD's metadata says of how this node last went down, for the operator who decides on
/// a degraded promote: DRBD keeps `MDF_CRASHED_PRIMARY` from attach until a resync. (DRBD's
/// wait-for-connection timeout type, which would tell whether the node was still connected
/// then, is not read.)
pub fn last_down_reading(crashed_primary: bool) -> &'static str {
    if crashed_primary {
        "this node went down as Primary (DRBD's crashed-primary flag): if it served alone last, \
         it holds the newest data; if its peer took over after it went down, the peer's is newer"
    } else {
        "this node did not go down as Primary (no crashed-primary flag): it was Secondary, and \
         its peer may have written after; this node is likely STALE"
    }
}

/// How a resource that is not Primary may be promoted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Promotion {
    /// `primary`: the peer is connected, or this node's data is known current.
    Normal,
    /// `primary --force`: degraded, allowed by an operator or the wait timeout.
    Force,
}

/// What the agent knows of a resource beyond DRBD's current view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct History {
    /// DRBD has been seen handshaken with the peer since its disk was attached.
    pub peer_seen: bool,
    /// A promote without the peer was allowed (by an operator or the wait timeout).
    pub degraded: bool,
    /// DRBD reported a split brain that no handshake has cleared since.
    pub split_brain: bool,
}

/// Why a resource may not be promoted (now).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The resource does not exist in the kernel.
    #[error("DRBD resource is not up")]
    NotUp,
    /// A split brain is unresolved.
    #[error("DRBD split brain; resolve it first (iscsi-ha split-brain)")]
    SplitBrain,
    /// The local disk is not (known) UpToDate.
    #[error("local disk is {0}, not UpToDate")]
    Disk(Disk),
    /// DRBD 9 reports no quorum.
    #[error("{0}")]
    NoQuorum(String),
    /// The peer is Primary and DRBD would not arbitrate (`allow-two-primaries`, or a forced
    /// promote). Carries DRBD 9's node ids as text, empty on 8.4.
    #[error(
        "peer is DRBD Primary{0}, and DRBD would not refuse a second Primary here: waiting \
         for the peer to demote or for DRBD to declare it lost"
    )]
    PeerPrimary(String),
    /// DRBD has not been handshaken with the peer since attach and no degraded promote was
    /// allowed.
    #[error(
        "{WAITING_FOR_PEER}: DRBD has not been Connected since attach (local disk {disk}, \
         connection {connection}); promote without it: {DEGRADED_HINT} ({DEGRADED_COST})"
    )]
    WaitingForPeer {
        /// Local disk.
        disk: Disk,
        /// Connection state.
        connection: Connection,
    },
    /// A forced promote was planned but the peer is connected now.
    #[error("the peer is connected; no degraded promote")]
    PeerConnected,
}

impl Refusal {
    /// Whether this refusal can end without an operator: the peer demotes, or DRBD sees it
    /// lost (its ping timeout: a powered-off peer is noticed by DRBD later than by a cluster
    /// manager that fenced it), the peer connects, a resync brings the disk UpToDate, quorum
    /// returns. A split brain, a resource that is not up and a missing or failed disk need
    /// someone.
    pub fn may_clear(&self) -> bool {
        match self {
            Refusal::PeerPrimary(_) | Refusal::WaitingForPeer { .. } | Refusal::NoQuorum(_) => true,
            Refusal::Disk(d) => matches!(
                d,
                Disk::Attaching
                    | Disk::Negotiating
                    | Disk::Inconsistent
                    | Disk::Outdated
                    | Disk::Consistent
            ),
            Refusal::NotUp | Refusal::SplitBrain | Refusal::PeerConnected => false,
        }
    }
}

/// How this (not Primary) resource may be promoted, or why not. A node whose DRBD has not
/// been handshaken with its peer since attach does not trust its own UpToDate: with fencing
/// `dont-care` a crashed ex-primary counts its Consistent disk as UpToDate at attach while the
/// survivor may hold newer writes.
pub fn promotion(d: &DrbdView, history: &History) -> Result<Promotion, Refusal> {
    if !d.up {
        return Err(Refusal::NotUp);
    }
    if history.split_brain {
        return Err(Refusal::SplitBrain);
    }
    if !matches!(d.disk, Disk::UpToDate | Disk::Consistent) {
        return Err(Refusal::Disk(d.disk));
    }
    if let Some(why) = d.drbd9.as_ref().and_then(Drbd9Promotion::refusal) {
        return Err(Refusal::NoQuorum(why));
    }
    let peer_primary = || {
        let ids = d.drbd9.as_ref().map(Drbd9Promotion::primary_peers_text);
        Refusal::PeerPrimary(ids.unwrap_or_default())
    };
    if d.peer_role == Role::Primary && !d.drbd_arbitrates() {
        return Err(peer_primary());
    }
    // StandAlone: the link was torn down on purpose or by a failed handshake (a split brain
    // this agent may not have seen): the fencing evidence no longer says "newest".
    let fenced = d.fencing.keeps_stale_disk_consistent() && d.connection != Connection::StandAlone;
    let current = d.connection.handshaken() || history.peer_seen || fenced;
    if current && d.disk == Disk::UpToDate {
        return Ok(Promotion::Normal);
    }
    if d.connection.handshaken() {
        return Err(Refusal::Disk(d.disk));
    }
    if history.degraded {
        // Forced, DRBD does not arbitrate: a Primary peer in the view is never overridden.
        if d.peer_role == Role::Primary {
            return Err(peer_primary());
        }
        return Ok(Promotion::Force);
    }
    Err(Refusal::WaitingForPeer {
        disk: d.disk,
        connection: d.connection.clone(),
    })
}

/// [`promotion`] on DRBD's live state right before the executor acts: `planned` is what the
/// planner chose from its last observation, which already judged the history.
pub fn allows(live: &DrbdView, planned: Promotion) -> Result<(), Refusal> {
    let history = History {
        peer_seen: planned == Promotion::Normal,
        degraded: planned == Promotion::Force,
        split_brain: false,
    };
    match promotion(live, &history)? {
        Promotion::Normal if planned == Promotion::Force && live.connection.handshaken() => {
            Err(Refusal::PeerConnected)
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_says_what_a_degraded_promote_costs() {
        let why = Refusal::WaitingForPeer {
            disk: Disk::UpToDate,
            connection: Connection::WFConnection,
        }
        .to_string();
        assert!(why.contains(DEGRADED_HINT), "{why}");
        assert!(
            why.contains("LOSES every write the peer acknowledged after this node last saw it"),
            "{why}"
        );
        assert!(
            why.contains("only if the peer's data is gone for good or older"),
            "{why}"
        );
        assert!(last_down_reading(false).contains("likely STALE"));
        assert!(last_down_reading(true).contains("went down as Primary"));
    }
}
