//! `role`, `[sockets]`, `[timeouts]`, `[metrics]`.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{DEFAULT_CONTROL_SOCKET, DEFAULT_POOL_CONF, DEFAULT_TGTD_SOCKET};

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

/// Timeouts, in milliseconds unless named otherwise. Each has an upper bound (10 minutes for
/// the per-request and settle times, a day for `safety_net_s` and `broken_alarm_s`, 30 days for
/// `wfc_s`, an hour for `tgt_check_ms`); a larger value is refused naming the key.
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
    /// change away from primary (a demote, or an unusable signal), in milliseconds; every change
    /// re-arms the timer, so a burst (a 200 ms `pool.conf` flap on the primary) ends in at most
    /// one transition, or none when it ends where it began. XAPI writes each role once per
    /// designation (`broken` is held apart, see `broken_alarm_s`), so a flap is not XAPI's
    /// pattern; the settle time is added to every planned switchover, hence short: 500 ms by
    /// default (docs/takeover.md). 0 acts at once. Operator commands are not delayed.
    pub authority_settle_ms: u64,
    /// The same for a change to primary, in milliseconds; 0 (the default) acts at once. A
    /// promote drops no client: while the peer is alive and Primary, DRBD refuses it and nothing
    /// changes, so a flap on a secondary costs nothing, and after a power loss the takeover does
    /// not wait. Set it to the demote side's value to settle both directions alike.
    pub authority_settle_primary_ms: u64,
    /// How long `pool.conf` may say `broken` (XAPI's state during a pool master designation,
    /// left in place when the designation fails) before it raises an alarm, in seconds; 0: the
    /// alarm at once. While `broken`, nothing is promoted or demoted.
    pub broken_alarm_s: u64,
    /// How often the tgtd watch compares every configured target with tgtd, in milliseconds; 0
    /// turns it off. tgtd sends no notifications of changes made behind the agent's back
    /// (`tgt-admin --update ALL` on tgt's reload deletes targets it does not name), so this is how
    /// long such a target may stay missing before it is served again on a primary. One check is
    /// one `show` (about 0.1 ms of tgtd and agent time), so 1000 ms by default: a repair within a
    /// second at one wake-up per second. tgtd's own restart is noticed at once either way (socket
    /// directory watch). At least 10 when set. Read at start: a change needs a restart.
    pub tgt_check_ms: u64,
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
            authority_settle_primary_ms: 0,
            broken_alarm_s: 30,
            tgt_check_ms: 1000,
        }
    }
}
