//! `[resource.manage.net_options]` and `[resource.manage.disk_options]`: the drbd.conf options
//! iSCSI-HA setups commonly set (`syncer { rate }`, `al-extents`, `on-io-error`, buffer sizes),
//! applied at a managed bring-up. Unset, DRBD's own default applies. Limits are DRBD 8.4's
//! (the kernel's `include/linux/drbd_limits.h`, e.g. Linux v6.1: `DRBD_RESYNC_RATE_MAX` 4 << 20,
//! `DRBD_AL_EXTENTS_MIN` 67 / `MAX` 0xfffe, `DRBD_MAX_BUFFERS_MIN` 32 / `MAX` 131072,
//! `DRBD_SNDBUF_SIZE_MAX` = `DRBD_RCVBUF_SIZE_MAX` = 10 << 20); options that can lose
//! acknowledged writes (`disk-flushes no`, `disk-barrier no`) are not offered. DRBD's `handlers` are run by
//! `drbdadm` from drbd.conf, which a managed resource does not have: refused, with the way out.

use serde::{Deserialize, Serialize};

/// A `handlers` table, read only to be refused with the reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handlers;

impl<'de> Deserialize<'de> for Handlers {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(d).map(|_| Handlers)
    }
}

/// `[resource.manage.disk_options]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DiskOptions {
    /// `resync-rate`, KiB/s (1-4194304; DRBD 8.3's `syncer { rate }`). With DRBD 8.4's
    /// dynamic resync controller (the default) it is the starting rate.
    pub resync_rate_kib: Option<u32>,
    /// `al-extents` (67-65534): the activity log's size; more means fewer metadata writes and
    /// a longer resync after a Primary crash.
    pub al_extents: Option<u32>,
    /// `on-io-error`: `detach` (DRBD's default: serve from the peer), `pass-on` or
    /// `call-local-io-error` (runs a drbdadm handler: refused, see the module docs).
    pub on_io_error: Option<OnIoError>,
}

/// DRBD's `on-io-error` policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnIoError {
    /// Report the error to the upper layer (the initiator sees it).
    PassOn,
    /// Run the `local-io-error` handler.
    CallLocalIoError,
    /// Drop the backing disk and go on diskless, reading and writing through the peer.
    Detach,
}

/// `[resource.manage.net_options]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NetOptions {
    /// `max-buffers` (32-131072): pages DRBD may use for receiving on the Secondary.
    pub max_buffers: Option<u32>,
    /// `sndbuf-size`, bytes (0-10485760, 0 = the kernel tunes it).
    pub sndbuf_size: Option<u32>,
    /// `rcvbuf-size`, bytes (0-10485760, 0 = the kernel tunes it).
    pub rcvbuf_size: Option<u32>,
}

impl DiskOptions {
    /// The options set, as drbd-nl's DRBD 8.4 disk attributes.
    pub fn drbd84(&self) -> Vec<drbd_nl::DiskConf> {
        use drbd_nl::DiskConf as D;
        let mut v = Vec::new();
        v.extend(self.resync_rate_kib.map(D::ResyncRate));
        v.extend(self.al_extents.map(D::AlExtents));
        v.extend(self.on_io_error.map(|p| {
            D::OnIoError(match p {
                OnIoError::PassOn => 0,
                OnIoError::CallLocalIoError => 1,
                OnIoError::Detach => 2,
            })
        }));
        v
    }
}

impl NetOptions {
    /// The options set, as drbd-nl's DRBD 8.4 net attributes.
    pub fn drbd84(&self) -> Vec<drbd_nl::NetConf> {
        use drbd_nl::NetConf as N;
        let mut v = Vec::new();
        v.extend(self.max_buffers.map(N::MaxBuffers));
        v.extend(self.sndbuf_size.map(N::SndbufSize));
        v.extend(self.rcvbuf_size.map(N::RcvbufSize));
        v
    }
}

/// The key (relative to `manage`) and reason of the first option out of DRBD's limits.
pub(super) fn check(disk: &DiskOptions, net: &NetOptions) -> Option<(String, String)> {
    let ranges = [
        (
            "disk_options.resync_rate_kib",
            disk.resync_rate_kib,
            1,
            4_194_304,
        ),
        ("disk_options.al_extents", disk.al_extents, 67, 65_534),
        ("net_options.max_buffers", net.max_buffers, 32, 131_072),
        ("net_options.sndbuf_size", net.sndbuf_size, 0, 10_485_760),
        ("net_options.rcvbuf_size", net.rcvbuf_size, 0, 10_485_760),
    ];
    for (k, v, lo, hi) in ranges {
        if let Some(v) = v.filter(|v| !(lo..=hi).contains(v)) {
            return Some((
                k.into(),
                format!("must be {lo}-{hi} (DRBD's limits), not {v}"),
            ));
        }
    }
    if disk.on_io_error == Some(OnIoError::CallLocalIoError) {
        return Some((
            "disk_options.on_io_error".into(),
            "call-local-io-error runs drbdadm's handler from drbd.conf, which a managed \
             resource does not have: use detach or pass-on, or mode = \"adopt\""
                .into(),
        ));
    }
    None
}
