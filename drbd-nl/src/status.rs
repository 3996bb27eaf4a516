//! Typed status of one DRBD device (or a resource without volumes), read
//! from a GET_STATUS reply or a DRBD_EVENT broadcast.

use crate::attr::{CfgContext, DiskConf, DrbdAttr, NetConf, StateInfo};
use crate::error::DrbdError;
use crate::header::MINOR_NONE;
use crate::message::DrbdMessage;
use crate::sockaddr::SockAddr;
use crate::state::{SibReason, State};

/// One device's status, as in `drbdsetup-84 status` / `events`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeviceStatus {
    /// Resource name (CFG_CONTEXT).
    pub resource: Option<String>,
    /// Volume number, for device-level messages.
    pub volume: Option<u32>,
    /// The device minor; `None` for a resource without volumes.
    pub minor: Option<u32>,
    /// The current state word, decoded; `None` when the message has no STATE_INFO.
    pub state: Option<State>,
    /// Why the kernel sent it.
    pub reason: Option<SibReason>,
    /// State before the change (SIB_STATE_CHANGE).
    pub prev_state: Option<State>,
    /// State right after the change (SIB_STATE_CHANGE).
    pub new_state: Option<State>,
    /// Device size in sectors.
    pub capacity: Option<u64>,
    /// Usermode helper (SIB_HELPER_PRE/POST).
    pub helper: Option<String>,
    /// Helper result (SIB_HELPER_POST).
    pub helper_exit_code: Option<u32>,
    /// Out-of-sync bits.
    pub bits_oos: Option<u64>,
    /// Bits to resync.
    pub bits_rs_total: Option<u64>,
    /// Bits that failed to resync.
    pub bits_rs_failed: Option<u64>,
    /// Local endpoint, if the resource has one connection.
    pub local_addr: Option<SockAddr>,
    /// Peer endpoint, if the resource has one connection.
    pub peer_addr: Option<SockAddr>,
    /// Data generation UUIDs (`uuids`, disk attached): current, bitmap, history 1, history 2.
    pub uuids: Option<[u64; 4]>,
    /// Meta-data flags (`disk_flags`, `MDF_*`, disk attached).
    pub disk_flags: Option<u32>,
    /// The disk's fencing policy (`disk_conf.fencing`: 0 dont-care, 1 resource-only,
    /// 2 resource-and-stonith), present in GET_STATUS replies while a disk is attached.
    pub fencing: Option<u32>,
    /// The connection's peer-failure detection settings (`net_conf`), present in GET_STATUS
    /// replies while a connection is configured (not in state-change events).
    pub net: Option<NetTimeouts>,
}

/// How DRBD 8.4 notices a dead or stuck peer (`net_conf`; `drbdsetup-84 show` prints them in
/// its `net` section). Fields the kernel did not send keep DRBD's defaults (`drbd_limits.h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct NetTimeouts {
    /// `ping-int`, seconds (default 10): an idle connection sends a ping this often.
    pub ping_int_s: u32,
    /// `ping-timeout`, tenths of a second (default 5): a ping not answered within it drops
    /// the connection. A `primary` request sends a ping at once and, refused because the
    /// peer is Primary, retries once after `ping-timeout` + 0.1 s.
    pub ping_timeout_ds: u32,
    /// `timeout`, tenths of a second (default 60): the wait for an answer to a data packet.
    pub timeout_ds: u32,
    /// `ko-count` (default 7, 0 = off): a peer that does not complete a write within
    /// `ko-count` x `timeout` is expelled.
    pub ko_count: u32,
    /// `allow-two-primaries` (default off): with it DRBD no longer refuses a second Primary.
    pub two_primaries: bool,
}

impl Default for NetTimeouts {
    fn default() -> Self {
        NetTimeouts {
            ping_int_s: 10,
            ping_timeout_ds: 5,
            timeout_ds: 60,
            ko_count: 7,
            two_primaries: false,
        }
    }
}

impl NetTimeouts {
    fn from_fields<'a>(fields: impl Iterator<Item = &'a NetConf>) -> NetTimeouts {
        let mut n = NetTimeouts::default();
        for f in fields {
            match f {
                NetConf::PingInt(v) => n.ping_int_s = *v,
                NetConf::PingTimeo(v) => n.ping_timeout_ds = *v,
                NetConf::Timeout(v) => n.timeout_ds = *v,
                NetConf::KoCount(v) => n.ko_count = *v,
                NetConf::TwoPrimaries(v) => n.two_primaries = *v,
                _ => {}
            }
        }
        n
    }
}

impl DeviceStatus {
    /// Reads a GET_STATUS reply or DRBD_EVENT.
    ///
    /// # Errors
    /// [`DrbdError::Protocol`] when a `STATE_INFO` set carries no `current_state`.
    pub fn from_message(msg: &DrbdMessage) -> Result<Self, DrbdError> {
        let mut s = DeviceStatus {
            resource: msg.resource_name().map(str::to_string),
            volume: None,
            minor: (msg.header.minor != MINOR_NONE).then_some(msg.header.minor),
            state: None,
            reason: None,
            prev_state: None,
            new_state: None,
            capacity: None,
            helper: None,
            helper_exit_code: None,
            bits_oos: None,
            bits_rs_total: None,
            bits_rs_failed: None,
            local_addr: None,
            peer_addr: None,
            uuids: None,
            disk_flags: None,
            fencing: None,
            net: None,
        };
        if let Some(ctx) = msg.cfg_context() {
            for f in ctx {
                match f {
                    CfgContext::CtxVolume(v) => s.volume = Some(*v),
                    CfgContext::CtxMyAddr(b) => s.local_addr = SockAddr::from_bytes(b).ok(),
                    CfgContext::CtxPeerAddr(b) => s.peer_addr = SockAddr::from_bytes(b).ok(),
                    _ => {}
                }
            }
        }
        if let Some(si) = msg.state_info() {
            for f in si {
                match f {
                    StateInfo::SibReason(r) => s.reason = Some(SibReason::from_u32(*r)),
                    StateInfo::CurrentState(w) => s.state = Some(State::from_word(*w)),
                    StateInfo::PrevState(w) => s.prev_state = Some(State::from_word(*w)),
                    StateInfo::NewState(w) => s.new_state = Some(State::from_word(*w)),
                    StateInfo::Capacity(c) => s.capacity = Some(*c),
                    StateInfo::Helper(h) => s.helper = Some(h.clone()),
                    StateInfo::HelperExitCode(c) => s.helper_exit_code = Some(*c),
                    StateInfo::BitsOos(b) => s.bits_oos = Some(*b),
                    StateInfo::BitsRsTotal(b) => s.bits_rs_total = Some(*b),
                    StateInfo::BitsRsFailed(b) => s.bits_rs_failed = Some(*b),
                    StateInfo::Uuids(b) => s.uuids = uuids(b),
                    StateInfo::DiskFlags(f) => s.disk_flags = Some(*f),
                    _ => {}
                }
            }
            s.fencing = msg.attrs.iter().find_map(|a| match a {
                DrbdAttr::DiskConf(set) => set.iter().find_map(|f| match f {
                    DiskConf::Fencing(v) => Some(*v),
                    _ => None,
                }),
                _ => None,
            });
            s.net = msg.attrs.iter().find_map(|a| match a {
                DrbdAttr::NetConf(set) => Some(NetTimeouts::from_fields(set.iter())),
                _ => None,
            });
            if s.state.is_none() {
                return Err(DrbdError::Protocol {
                    context: "status".into(),
                    reason: "STATE_INFO without current_state".into(),
                });
            }
        }
        Ok(s)
    }

    /// `MINOR,RESOURCE[VOLUME]`, the object name `drbdsetup-84 events` prints.
    pub fn object_name(&self) -> String {
        format!(
            "{},{}[{}]",
            self.minor
                .map(|m| m.to_string())
                .unwrap_or_else(|| "-".into()),
            self.resource.as_deref().unwrap_or("-"),
            self.volume
                .map(|v| v.to_string())
                .unwrap_or_else(|| "-".into())
        )
    }

    /// Resync progress in per-mille, as `drbdsetup events` computes it.
    pub fn sync_progress_permille(&self) -> Option<u64> {
        let total = self.bits_rs_total?;
        if total == 0 {
            return Some(1000);
        }
        let left = self
            .bits_oos
            .unwrap_or(0)
            .saturating_sub(self.bits_rs_failed.unwrap_or(0));
        let done = total.saturating_sub(left.min(total));
        Some(done.saturating_mul(1000) / total)
    }
}

/// The `uuids` field: 4 × u64 in host byte order (`drbd_nl.c` puts `md.uuid` as is); any other
/// length is ignored.
fn uuids(b: &[u8]) -> Option<[u64; 4]> {
    if b.len() != 32 {
        return None;
    }
    let mut out = [0u64; 4];
    for (o, c) in out.iter_mut().zip(b.chunks_exact(8)) {
        *o = u64::from_ne_bytes(c.try_into().ok()?);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_need_32_bytes() {
        assert_eq!(uuids(&[0; 31]), None);
        let mut b = Vec::new();
        for v in [4u64, 5, 6, 7] {
            b.extend_from_slice(&v.to_ne_bytes());
        }
        assert_eq!(uuids(&b), Some([4, 5, 6, 7]));
    }
}
