//! Requests that address one device by its minor: new-minor, del-minor, attach, detach,
//! primary, secondary, new-current-uuid, resize.

use super::optional_set;
use super::private::Sealed;
use super::{ctx, Request};
use crate::attr::{
    CfgContext, DetachParms, DiskConf, DrbdAttr, NewCUuidParms, ResizeParms, SetRoleParms,
};
use crate::message::{DrbdCmd, DrbdMessage};
use crate::nla::AttrSet;
use crate::policy::FencingPolicy;

/// Meta-data index of `internal` (flexible internal meta-data).
pub const META_DEV_IDX_INTERNAL: i32 = -3;

/// The message of `cmd` on `minor`, with the one-field set `parms` only when given (drbdsetup
/// sends no parameter set without its flag).
fn minor_message(cmd: DrbdCmd, minor: u32, parms: Option<DrbdAttr>) -> DrbdMessage {
    DrbdMessage::new(cmd, minor, parms.into_iter().collect())
}

/// `VERB MINOR`, then ` OPTION` when `on`.
fn minor_line(verb: &str, minor: u32, option: &str, on: bool) -> String {
    let option = if on {
        format!(" {option}")
    } else {
        String::new()
    };
    format!("{verb} {minor}{option}")
}

/// NEW_MINOR (5): equivalent to `drbdsetup-84 new-minor RESOURCE MINOR VOLUME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMinor {
    resource: String,
    minor: u32,
    volume: u32,
}

impl NewMinor {
    /// Creates `/dev/drbdMINOR` as `volume` of `resource`.
    pub fn new(resource: impl Into<String>, minor: u32, volume: u32) -> Self {
        Self {
            resource: resource.into(),
            minor,
            volume,
        }
    }
}

impl Sealed for NewMinor {}

impl Request for NewMinor {
    type Output = ();
    /// The minor goes in the DRBD header, resource and volume in CFG_CONTEXT.
    fn message(&self) -> DrbdMessage {
        DrbdMessage::new(
            DrbdCmd::NewMinor,
            self.minor,
            vec![ctx(vec![
                CfgContext::CtxResourceName(self.resource.clone()),
                CfgContext::CtxVolume(self.volume),
            ])],
        )
    }
    fn command_line(&self) -> String {
        format!("new-minor {} {} {}", self.resource, self.minor, self.volume)
    }
}

/// A request that carries nothing but the minor.
macro_rules! minor_only {
    ($(#[$doc:meta])* $t:ident, $cmd:ident, $verb:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $t {
            minor: u32,
        }

        impl $t {
            /// The request for `minor`.
            pub fn new(minor: u32) -> Self {
                Self { minor }
            }
        }

        impl Sealed for $t {}

        impl Request for $t {
            type Output = ();
            fn message(&self) -> DrbdMessage {
                minor_message(DrbdCmd::$cmd, self.minor, None)
            }
            fn command_line(&self) -> String {
                minor_line($verb, self.minor, "", false)
            }
        }
    };
}

minor_only!(
    /// DEL_MINOR (6): equivalent to `drbdsetup-84 del-minor MINOR` (the device must be Diskless
    /// and Secondary).
    DelMinor,
    DelMinor,
    "del-minor"
);
minor_only!(
    /// SECONDARY (15): equivalent to `drbdsetup-84 secondary MINOR`. Refused with
    /// `SS_DEVICE_IN_USE` (-12) while the device is open.
    Secondary,
    Secondary,
    "secondary"
);

/// ATTACH (12): equivalent to `drbdsetup-84 attach MINOR DEV DEV internal [disk options]`.
/// A missing device gives [`RetCode::OpenDisk`](crate::RetCode::OpenDisk) (104).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attach {
    minor: u32,
    backing_dev: String,
    meta_dev: Option<String>,
    meta_dev_idx: i32,
    opts: Vec<DiskConf>,
}

impl Attach {
    /// Attaches `backing_dev` to `minor` with internal meta-data.
    pub fn new(minor: u32, backing_dev: impl Into<String>) -> Self {
        Self {
            minor,
            backing_dev: backing_dev.into(),
            meta_dev: None,
            meta_dev_idx: META_DEV_IDX_INTERNAL,
            opts: vec![],
        }
    }
    /// External meta-data on `dev` at `index` (-2 = flexible).
    pub fn meta(mut self, dev: impl Into<String>, index: i32) -> Self {
        self.meta_dev = Some(dev.into());
        self.meta_dev_idx = index;
        self
    }
    /// Adds a disk option (e.g. `DiskConf::ResyncRate(..)`).
    pub fn option(mut self, opt: DiskConf) -> Self {
        self.opts.push(opt);
        self
    }
    /// `--fencing=POLICY`.
    pub fn fencing(self, p: FencingPolicy) -> Self {
        self.option(DiskConf::Fencing(p as u32))
    }
}

impl Sealed for Attach {}

impl Request for Attach {
    type Output = ();
    fn message(&self) -> DrbdMessage {
        let meta_dev = self.meta_dev.as_ref().unwrap_or(&self.backing_dev);
        let mut fields = vec![
            DiskConf::BackingDev(self.backing_dev.clone()),
            DiskConf::MetaDev(meta_dev.clone()),
            DiskConf::MetaDevIdx(self.meta_dev_idx),
        ];
        fields.extend(self.opts.iter().cloned());
        DrbdMessage::new(
            DrbdCmd::Attach,
            self.minor,
            vec![DrbdAttr::DiskConf(AttrSet::new(fields))],
        )
    }
    fn command_line(&self) -> String {
        format!("attach {} {}", self.minor, self.backing_dev)
    }
}

/// DETACH (18): equivalent to `drbdsetup-84 detach MINOR [--force]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detach {
    minor: u32,
    force: bool,
}

impl Detach {
    /// Detaches the disk of `minor`.
    pub fn new(minor: u32) -> Self {
        Self {
            minor,
            force: false,
        }
    }
    /// `--force`: mark the disk Failed at once.
    pub fn force(mut self, yes: bool) -> Self {
        self.force = yes;
        self
    }
}

impl Sealed for Detach {}

impl Request for Detach {
    type Output = ();
    fn message(&self) -> DrbdMessage {
        let parms = AttrSet::new(vec![DetachParms::ForceDetach(true)]);
        let parms = self.force.then_some(DrbdAttr::DetachParms(parms));
        minor_message(DrbdCmd::Detach, self.minor, parms)
    }
    fn command_line(&self) -> String {
        minor_line("detach", self.minor, "--force", self.force)
    }
}

/// PRIMARY (14): equivalent to `drbdsetup-84 primary MINOR [--force]`. The peer being Primary
/// gives `SS_TWO_PRIMARIES` (-1), no good data `SS_NO_UP_TO_DATE_DISK` (-2), as
/// [`DrbdError::StateChange`](crate::DrbdError::StateChange).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Primary {
    minor: u32,
    force: bool,
}

impl Primary {
    /// Promotes `minor`.
    pub fn new(minor: u32) -> Self {
        Self {
            minor,
            force: false,
        }
    }
    /// `--force` (`assume_uptodate`): promote even without UpToDate data.
    pub fn force(mut self, yes: bool) -> Self {
        self.force = yes;
        self
    }
}

impl Sealed for Primary {}

impl Request for Primary {
    type Output = ();
    /// No SET_ROLE_PARMS without `--force`, as drbdsetup.
    fn message(&self) -> DrbdMessage {
        let parms = AttrSet::new(vec![SetRoleParms::AssumeUptodate(true)]);
        let parms = self.force.then_some(DrbdAttr::SetRoleParms(parms));
        minor_message(DrbdCmd::Primary, self.minor, parms)
    }
    fn command_line(&self) -> String {
        minor_line("primary", self.minor, "--force", self.force)
    }
}

/// NEW_C_UUID (16): equivalent to `drbdsetup-84 new-current-uuid MINOR [--clear-bitmap]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCurrentUuid {
    minor: u32,
    clear_bitmap: bool,
}

impl NewCurrentUuid {
    /// A new current UUID for `minor`.
    pub fn new(minor: u32) -> Self {
        Self {
            minor,
            clear_bitmap: false,
        }
    }
    /// `--clear-bitmap`: on a fresh Connected pair, skip the initial sync.
    pub fn clear_bitmap(mut self, yes: bool) -> Self {
        self.clear_bitmap = yes;
        self
    }
}

impl Sealed for NewCurrentUuid {}

impl Request for NewCurrentUuid {
    type Output = ();
    fn message(&self) -> DrbdMessage {
        let parms = AttrSet::new(vec![NewCUuidParms::ClearBm(true)]);
        let parms = self.clear_bitmap.then_some(DrbdAttr::NewCUuidParms(parms));
        minor_message(DrbdCmd::NewCUuid, self.minor, parms)
    }
    fn command_line(&self) -> String {
        minor_line(
            "new-current-uuid",
            self.minor,
            "--clear-bitmap",
            self.clear_bitmap,
        )
    }
}

/// RESIZE (13): equivalent to `drbdsetup-84 resize MINOR [--size S] [--assume-clean]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resize {
    minor: u32,
    size_sectors: Option<u64>,
    assume_clean: bool,
}

impl Resize {
    /// Resizes `minor` to the backing device's size.
    pub fn new(minor: u32) -> Self {
        Self {
            minor,
            size_sectors: None,
            assume_clean: false,
        }
    }
    /// `--size` in 512-byte sectors.
    pub fn size_sectors(mut self, s: u64) -> Self {
        self.size_sectors = Some(s);
        self
    }
    /// `--assume-clean`: no resync of the new area.
    pub fn assume_clean(mut self, yes: bool) -> Self {
        self.assume_clean = yes;
        self
    }
}

impl Sealed for Resize {}

impl Request for Resize {
    type Output = ();
    fn message(&self) -> DrbdMessage {
        let mut parms: Vec<_> = self
            .size_sectors
            .map(ResizeParms::ResizeSize)
            .into_iter()
            .collect();
        parms.extend(self.assume_clean.then_some(ResizeParms::NoResync(true)));
        DrbdMessage::new(
            DrbdCmd::Resize,
            self.minor,
            optional_set(parms, DrbdAttr::ResizeParms),
        )
    }
    fn command_line(&self) -> String {
        format!("resize {}", self.minor)
    }
}
