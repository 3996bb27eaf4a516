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
