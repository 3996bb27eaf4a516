//! Typed values of DRBD 8.4's policy options (`enum drbd_fencing_p` and `enum drbd_after_sb_p`
//! in `include/linux/drbd.h`), for [`crate::Attach::fencing`] and
//! [`crate::Connect::after_split_brain`].

/// `disk_conf.fencing`: what DRBD does about the peer's data when the connection is lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FencingPolicy {
    /// `dont-care` (0, the default): no fencing; a Consistent disk counts as UpToDate at attach.
    DontCare = 0,
    /// `resource-only` (1): call the `fence-peer` helper; Primary while disconnected needs the
    /// peer Outdated (or `--force`); a Consistent disk stays Consistent at attach.
    ResourceOnly = 1,
    /// `resource-and-stonith` (2): as `resource-only`, and freeze I/O until the helper answers.
    ResourceAndStonith = 2,
}

/// `net_conf.after_sb_0p`/`_1p`/`_2p`: what the handshake does after a split brain with zero,
/// one or two Primaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AfterSbPolicy {
    /// `disconnect` (0, the default): drop the connection, resolve nothing.
    Disconnect = 0,
    /// `discard-younger-primary` (1).
    DiscardYoungerPrimary = 1,
    /// `discard-older-primary` (2).
    DiscardOlderPrimary = 2,
    /// `discard-zero-changes` (3).
    DiscardZeroChanges = 3,
    /// `discard-least-changes` (4).
    DiscardLeastChanges = 4,
    /// `discard-local` (5).
    DiscardLocal = 5,
    /// `discard-remote` (6).
    DiscardRemote = 6,
    /// `consensus` (7).
    Consensus = 7,
    /// `discard-secondary` (8).
    DiscardSecondary = 8,
    /// `call-pri-lost-after-sb` (9).
    CallPriLostAfterSb = 9,
    /// `violently-as0p` (10).
    ViolentlyAs0p = 10,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Attach, Connect, DiskConf, DrbdAttr, NetConf, Request};

    #[test]
    fn options_land_in_their_sets() {
        let m = Attach::new(1, "/dev/vda")
            .fencing(FencingPolicy::ResourceOnly)
            .message();
        let disk: Vec<&DiskConf> = m
            .attrs
            .iter()
            .filter_map(|a| match a {
                DrbdAttr::DiskConf(s) => Some(s.iter()),
                _ => None,
            })
            .flatten()
            .collect();
        assert!(disk.contains(&&DiskConf::Fencing(1)));
        let local = "10.0.0.1:7789".parse().expect("addr");
        let peer = "10.0.0.2:7789".parse().expect("addr");
        let d = AfterSbPolicy::Disconnect;
        let m = Connect::new("r0", local, peer)
            .after_split_brain(d, AfterSbPolicy::DiscardSecondary, d)
            .message();
        let net: Vec<&NetConf> = m
            .attrs
            .iter()
            .filter_map(|a| match a {
                DrbdAttr::NetConf(s) => Some(s.iter()),
                _ => None,
            })
            .flatten()
            .collect();
        for f in [
            NetConf::AfterSb0p(0),
            NetConf::AfterSb1p(8),
            NetConf::AfterSb2p(0),
        ] {
            assert!(net.contains(&&f), "{f:?} missing in {net:?}");
        }
    }
}
