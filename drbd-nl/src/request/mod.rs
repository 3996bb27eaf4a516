//! Requests as values, one type per drbdsetup verb, grouped by the object they address:
//! [`resource`] (resource and connection), [`minor`] (one device), [`status`]. Build one,
//! read its [`Request::message`] (what `drbdsetup-84` sends for the same command line), and
//! send it with [`DrbdHandle::execute`](crate::DrbdHandle::execute), the only sender.

pub(crate) mod minor;
pub(crate) mod resource;
pub(crate) mod status;

use crate::attr::{CfgContext, DrbdAttr};
use crate::error::DrbdError;
use crate::message::DrbdMessage;
use crate::nla::AttrSet;

/// A request: a plain value, of the DRBD 8.4 API (`M` = [`DrbdMessage`], sent by
/// [`DrbdHandle::execute`](crate::DrbdHandle::execute)) or of DRBD 9's (`M` =
/// [`Drbd9Message`](crate::v9::Drbd9Message), sent by
/// [`Drbd9Handle::execute`](crate::v9::Drbd9Handle::execute)).
///
/// Implemented by this crate's request types only.
pub trait Request<M = DrbdMessage>: private::Sealed {
    /// What a successful `execute` returns.
    type Output: private::FromReplies<M>;

    /// The message, equal to what `drbdsetup` (`drbdsetup-84` for 8.4) sends for
    /// [`Request::command_line`].
    fn message(&self) -> M;

    /// The `drbdsetup` command line it stands for, without the program name
    /// (e.g. `primary 1 --force`); errors carry it as their context.
    fn command_line(&self) -> String;
}

pub(crate) mod private {
    use crate::error::DrbdError;

    /// How a request is exchanged; [`crate::DrbdHandle`]'s executor turns it into netlink flags.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Exchange {
        /// One request, exactly one reply.
        Doit,
        /// A doit that must create its object (new-resource refuses an existing one).
        DoitExclusive,
        /// The family's dump: any number of reply parts.
        Dump,
    }

    /// The parts of a request only the executor reads.
    pub trait Sealed {
        /// Doit or dump.
        fn exchange(&self) -> Exchange {
            Exchange::Doit
        }
        /// Arguments checked before anything is sent.
        fn validate(&self) -> Result<(), DrbdError> {
            Ok(())
        }
    }

    /// A request's output, from its replies of type `M` (either API's message, each already
    /// checked for success).
    pub trait FromReplies<M>: Sized {
        /// Reads the replies.
        fn from_replies(replies: Vec<M>) -> Result<Self, DrbdError>;
    }

    impl<M> FromReplies<M> for () {
        fn from_replies(_: Vec<M>) -> Result<Self, DrbdError> {
            Ok(())
        }
    }
}

/// A CFG_CONTEXT set with `fields`.
fn ctx(fields: Vec<CfgContext>) -> DrbdAttr {
    DrbdAttr::CfgContext(AttrSet::new(fields))
}

/// A resource name the kernel accepts: 1..127 bytes, no `/` or NUL.
fn check_name(name: &str) -> Result<(), DrbdError> {
    if name.is_empty() || name.len() > 127 || name.contains('/') || name.contains('\0') {
        return Err(DrbdError::InvalidArgument(format!(
            "resource name {name:?}: 1..127 bytes, no '/' or NUL"
        )));
    }
    Ok(())
}

/// A set of `$variant` holding `fields`, or no attribute when `fields` is empty (drbdsetup sends
/// no empty option sets).
fn optional_set<T>(fields: Vec<T>, variant: fn(AttrSet<T>) -> DrbdAttr) -> Vec<DrbdAttr> {
    if fields.is_empty() {
        vec![]
    } else {
        vec![variant(AttrSet::new(fields))]
    }
}
