//! Errors of the agent: one enum, each variant keeping its source.

use std::path::PathBuf;

use crate::fsm::Refusal;

/// A configuration problem, located as precisely as the file allows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{file}:{line}: {key}{reason}",
    file = file.display(),
    line = line.map(|l| l.to_string()).unwrap_or_else(|| "?".into()),
    // A TOML syntax error names no key: no empty `: ` part.
    key = if key.is_empty() { String::new() } else { format!("{key}: ") }
)]
pub struct ConfigError {
    /// The file read (or `<string>` when parsed from memory).
    pub file: PathBuf,
    /// 1-based line of the offending key or value, when known.
    pub line: Option<usize>,
    /// Dotted path of the offending key, e.g. `resource[0].target.tid`.
    pub key: String,
    /// What is wrong, in words.
    pub reason: String,
}

/// A failure reported by one backend (DRBD, target daemon, address).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// DRBD refused or failed the request (DRBD's code and text kept).
    #[error(transparent)]
    Drbd(#[from] drbd_nl::DrbdError),
    /// tgtd refused or failed the request (tgtd's code kept).
    #[error(transparent)]
    Tgt(#[from] tgt_ipc::TgtError),
    /// The address could not be probed, claimed or released (a conflict is a refusal).
    #[error(transparent)]
    Vip(#[from] vip::VipError),
    /// The request failed for a reason none of the above carries (bad config value, in-memory
    /// backends' injected faults).
    #[error("{0}")]
    Failed(String),
    /// A live check refused the step before anything changed (e.g. another host answers for
    /// an address).
    #[error("{0}")]
    Refused(String),
    /// DRBD refused Primary because the peer is Primary (`SS_TWO_PRIMARIES`): nothing changed.
    #[error(
        "peer is DRBD Primary ({0}): nothing changed; tried again at DRBD's next event (the \
         peer demoting, or declared lost) or the daemon's retry"
    )]
    PeerPrimary(#[source] drbd_nl::DrbdError),
    /// The promote safety check refused on DRBD's live state: nothing changed.
    #[error(transparent)]
    Unsafe(#[from] Refusal),
    /// A check could not complete (the cause kept): it refuses, nothing changed.
    #[error(transparent)]
    Unchecked(Box<BackendError>),
    /// The request did not complete in time.
    #[error("timed out after {0} ms")]
    Timeout(u64),
    /// An operating-system error.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The subsystem is not available (daemon down, module absent).
    #[error("unavailable: {0}")]
    Unavailable(String),
}

impl AgentError {
    /// The error of connecting to the control socket at `path`: [`AgentError::NotRunning`]
    /// when nothing listens there, else [`AgentError::Control`].
    pub fn connecting(path: &std::path::Path, source: std::io::Error) -> AgentError {
        use std::io::ErrorKind;
        let path = path.to_path_buf();
        match source.kind() {
            ErrorKind::NotFound | ErrorKind::ConnectionRefused => {
                AgentError::NotRunning { path, source }
            }
            _ => AgentError::Control { path, source },
        }
    }
}

impl BackendError {
    /// A failure that trying again soon will not change: another host answers for an address,
    /// a check refused on what only someone can change (`Refused`, a [`Refusal`] that cannot
    /// clear on its own), DRBD without UpToDate data or unable to fence the peer
    /// (`SS_NO_UP_TO_DATE_DISK`, `SS_PRIMARY_NOP`: drbdadm's exit 17, where LINBIT's `drbd`
    /// agent stops retrying a promote). A Primary peer is not lasting: DRBD may be about to
    /// see it lost.
    pub fn is_lasting(&self) -> bool {
        match self {
            BackendError::Refused(_) | BackendError::Vip(vip::VipError::Conflict { .. }) => true,
            BackendError::Drbd(e) => matches!(
                e.state_rv(),
                Some(drbd_nl::StateRv::NoUpToDateDisk | drbd_nl::StateRv::PrimaryNop)
            ),
            BackendError::Unsafe(r) => !r.may_clear(),
            BackendError::Unchecked(inner) => inner.is_lasting(),
            _ => false,
        }
    }

    /// A refusal: a check or the subsystem said no before anything changed (recognised by the
    /// cause, whatever the stage).
    pub fn is_refusal(&self) -> bool {
        match self {
            BackendError::Refused(_)
            | BackendError::PeerPrimary(_)
            | BackendError::Unsafe(_)
            | BackendError::Unchecked(_)
            | BackendError::Vip(vip::VipError::Conflict { .. }) => true,
            BackendError::Drbd(e) => e.state_rv() == Some(drbd_nl::StateRv::TwoPrimaries),
            _ => false,
        }
    }
}

/// Errors of the agent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Reading the configuration file failed.
    #[error("{}: {source}", path.display())]
    ConfigRead {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A read of an observation failed.
    #[error("read of {what} {object}: {source}")]
    Read {
        /// What was read.
        what: ReadOf,
        /// The resource or address.
        object: String,
        /// The backend's error.
        source: BackendError,
    },
    /// A safety check refused the transition.
    #[error("refused: {0}")]
    Refused(String),
    /// The control socket or a client of it failed.
    #[error("control socket {}: {source}", path.display())]
    Control {
        /// The socket path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Nothing listens at the control socket (absent, or left by a stopped agent).
    #[error(
        "control socket {}: {source}: is the agent running? (systemctl status iscsi-ha; or \
         --socket / [sockets] control names another socket)",
        path.display()
    )]
    NotRunning {
        /// The socket path.
        path: PathBuf,
        /// The cause (`ENOENT`, `ECONNREFUSED`).
        source: std::io::Error,
    },
    /// The peer of the control socket is not allowed.
    #[error("permission denied: peer uid {0} is not root")]
    PermissionDenied(u32),
    /// A malformed control request or reply.
    #[error("protocol: {0}")]
    Protocol(String),
    /// The role source failed (inotify, read).
    #[error("role source: {0}")]
    Role(#[source] std::io::Error),
    /// Any other operating-system error.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// `error: cause: cause ...` on one line, each cause once: several errors here show their
/// source in their own text (so that logs of `to_string()` keep it), which a plain walk of
/// [`std::error::Error::source`] would print twice. New lines become spaces.
pub fn report(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    one_line(&out)
}

/// `text` on one line (for logs and one-line reports): each new line and the blanks around
/// it become one space (TOML parse errors span several lines).
pub fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// What an observation reads ([`AgentError::Read`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReadOf {
    /// DRBD's status of a resource.
    Drbd,
    /// tgtd's view of a resource's target.
    Target,
    /// Whether an address is held.
    Address,
}

impl std::fmt::Display for ReadOf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ReadOf::Drbd => "DRBD status",
            ReadOf::Target => "target",
            ReadOf::Address => "address",
        })
    }
}
