//! The status request: GET_STATUS as a dump (every device, or one resource's) or as a doit
//! for one minor.

use super::private::{Exchange, FromReplies, Sealed};
use super::{ctx, Request};
use crate::attr::CfgContext;
use crate::error::DrbdError;
use crate::header::MINOR_NONE;
use crate::message::{DrbdCmd, DrbdMessage};
use crate::status::DeviceStatus;

/// GET_STATUS (2): equivalent to `drbdsetup-84 status [RESOURCE]`. A dump, one reply (and one
/// [`DeviceStatus`]) per volume and per resource without volumes; with [`Status::minor`] a
/// doit for one device.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    resource: Option<String>,
    minor: Option<u32>,
}

impl Status {
    /// A status request for everything.
    pub fn new() -> Self {
        Self::default()
    }
    /// Only this resource (`drbdsetup-84 status RESOURCE`).
    pub fn resource(mut self, name: impl Into<String>) -> Self {
        self.resource = Some(name.into());
        self
    }
    /// Only this minor (a doit, the way `drbdsetup-84 events MINOR` asks).
    pub fn minor(mut self, minor: u32) -> Self {
        self.minor = Some(minor);
        self
    }
}

impl Sealed for Status {
    fn exchange(&self) -> Exchange {
        match self.minor {
            Some(_) => Exchange::Doit,
            None => Exchange::Dump,
        }
    }
}

impl Request for Status {
    type Output = Vec<DeviceStatus>;
    fn message(&self) -> DrbdMessage {
        let attrs = match &self.resource {
            Some(r) => vec![ctx(vec![CfgContext::CtxResourceName(r.clone())])],
            None => vec![],
        };
        DrbdMessage::new(DrbdCmd::GetStatus, self.minor.unwrap_or(MINOR_NONE), attrs)
    }
    fn command_line(&self) -> String {
        match (&self.resource, self.minor) {
            (_, Some(minor)) => format!("events {minor}"),
            (Some(r), None) => format!("status {r}"),
            (None, None) => "status".to_string(),
        }
    }
}

impl FromReplies<DrbdMessage> for Vec<DeviceStatus> {
    fn from_replies(replies: Vec<DrbdMessage>) -> Result<Self, DrbdError> {
        replies.iter().map(DeviceStatus::from_message).collect()
    }
}
