//! The control socket: a Unix stream socket, mode 0600, root peers only (`SO_PEERCRED`).
//!
//! Protocol: JSON lines. The client sends one [`Request`] per line, the agent answers each with
//! one [`Response`] line. Nothing received ever reaches a shell or a spawned program: requests
//! are typed and go to the daemon's single input channel.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};

use crate::error::AgentError;
use crate::events::EventBus;
use crate::status::Status;

/// Longest request line accepted, bytes.
pub const MAX_LINE: usize = 4096;

/// A request to the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "kebab-case", deny_unknown_fields)]
#[non_exhaustive]
pub enum Request {
    /// `iscsi-ha status`.
    Status,
    /// `iscsi-ha promote` (role source `command`).
    Promote,
    /// `iscsi-ha demote` (role source `command`).
    Demote,
    /// `iscsi-ha promote --degraded`: promote even though DRBD has not been Connected to the
    /// peer since attach (with role source `pool-conf`: only lifts that wait).
    PromoteDegraded,
    /// `iscsi-ha split-brain`: data generations and the recovery steps.
    SplitBrain,
    /// `iscsi-ha maintenance on|off`.
    Maintenance {
        /// On or off.
        on: bool,
    },
    /// `iscsi-ha events`: one [`Response`], then [`crate::events::AgentEvent`] lines until the
    /// client disconnects.
    Events,
    /// `iscsi-ha reload` (also `SIGHUP`): read the config file again and apply it as a
    /// difference: live settings in place, added, removed and changed resources and addresses
    /// demoted, released, served and claimed in the one order; refused with the reason, running
    /// config kept, when it does not validate or needs a restart ([`crate::config::reload`]).
    Reload,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRequest {
    cmd: String,
    on: Option<bool>,
}

impl Request {
    /// Parse one request line strictly: unknown commands and unknown or misplaced fields are
    /// errors.
    pub fn parse(line: &str) -> Result<Request, String> {
        let raw: RawRequest = serde_json::from_str(line).map_err(|e| e.to_string())?;
        match (raw.cmd.as_str(), raw.on) {
            ("status", None) => Ok(Request::Status),
            ("promote", None) => Ok(Request::Promote),
            ("demote", None) => Ok(Request::Demote),
            ("promote-degraded", None) => Ok(Request::PromoteDegraded),
            ("split-brain", None) => Ok(Request::SplitBrain),
            ("events", None) => Ok(Request::Events),
            ("reload", None) => Ok(Request::Reload),
            ("maintenance", Some(on)) => Ok(Request::Maintenance { on }),
            ("maintenance", None) => Err("maintenance needs \"on\": true|false".into()),
            (
                "status" | "promote" | "demote" | "promote-degraded" | "split-brain" | "events"
                | "reload",
                Some(_),
            ) => Err(format!("{} takes no \"on\" field", raw.cmd)),
            (other, _) => Err(format!("unknown command {other:?}")),
        }
    }
}

/// The agent's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    /// The request was carried out (or nothing needed doing).
    pub ok: bool,
    /// What happened, or why not.
    pub message: String,
    /// The status after the request.
    pub status: Option<Box<Status>>,
}

impl Response {
    /// A refusal or failure.
    pub fn error(message: impl Into<String>) -> Response {
        Response {
            ok: false,
            message: message.into(),
            status: None,
        }
    }
}

/// A request waiting for the daemon, with where to send the answer.
#[derive(Debug)]
pub struct Pending {
    /// The request.
    pub request: Request,
    /// Where the daemon answers.
    pub reply: oneshot::Sender<Response>,
}

/// Turns every `SIGHUP` into a [`Request::Reload`] for the daemon (as `iscsi-ha reload`
/// sends), logging its answer.
///
/// # Errors
/// Installing the signal handler failed.
pub fn forward_sighup(tx: mpsc::Sender<Pending>) -> Result<(), std::io::Error> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = signal(SignalKind::hangup())?;
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            let (reply, rx) = oneshot::channel();
            let request = Request::Reload;
            if tx.send(Pending { request, reply }).await.is_err() {
                break;
            }
            // One log line even when the message quotes a multi-line TOML error.
            match rx.await {
                Ok(r) if r.ok => tracing::info!(message = %crate::one_line(&r.message), "SIGHUP"),
                Ok(r) => tracing::warn!(message = %crate::one_line(&r.message), "SIGHUP"),
                Err(_) => break,
            }
        }
    });
    Ok(())
}

/// Only root may drive the agent.
pub fn authorize(uid: u32) -> Result<(), AgentError> {
    if uid == 0 {
        Ok(())
    } else {
        Err(AgentError::PermissionDenied(uid))
    }
}

/// The listening control socket.
#[derive(Debug)]
pub struct ControlServer {
    listener: UnixListener,
    path: PathBuf,
    events: Option<EventBus>,
}

impl ControlServer {
    /// Create the socket at `path` with mode 0600, replacing a stale socket left by a previous
    /// run. A missing parent directory is created with mode 0700. A non-socket file at `path`
    /// is an error, never removed.
    pub fn bind(path: &Path) -> Result<ControlServer, AgentError> {
        let err = |source| AgentError::Control {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() && !dir.exists() {
                std::fs::create_dir_all(dir).map_err(err)?;
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                    .map_err(err)?;
            }
        }
        match std::fs::symlink_metadata(path) {
            Ok(m) => {
                use std::os::unix::fs::FileTypeExt;
                if !m.file_type().is_socket() {
                    return Err(err(std::io::Error::new(
                        std::io::ErrorKind::AlreadyExists,
                        "exists and is not a socket",
                    )));
                }
                if std::os::unix::net::UnixStream::connect(path).is_ok() {
                    return Err(err(std::io::Error::new(
                        std::io::ErrorKind::AddrInUse,
                        "another agent is listening",
                    )));
                }
                std::fs::remove_file(path).map_err(err)?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(err(e)),
        }
        let listener = UnixListener::bind(path).map_err(err)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(err)?;
        Ok(ControlServer {
            listener,
            path: path.to_path_buf(),
            events: None,
        })
    }

    /// Stream the events of `bus` to clients that ask (`{"cmd":"events"}`).
    pub fn with_events(mut self, bus: EventBus) -> ControlServer {
        self.events = Some(bus);
        self
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Accept clients forever, passing their requests to `tx`.
    pub async fn serve(self, tx: mpsc::Sender<Pending>) -> Result<(), AgentError> {
        loop {
            let (stream, _) =
                self.listener
                    .accept()
                    .await
                    .map_err(|source| AgentError::Control {
                        path: self.path.clone(),
                        source,
                    })?;
            let (tx, events) = (tx.clone(), self.events.clone());
            tokio::spawn(async move {
                if let Err(e) = handle_client(stream, tx, events).await {
                    warn!(error = %e, "control client");
                }
            });
        }
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

async fn handle_client(
    stream: UnixStream,
    tx: mpsc::Sender<Pending>,
    events: Option<EventBus>,
) -> Result<(), AgentError> {
    let cred = stream.peer_cred()?;
    let (rd, mut wr) = stream.into_split();
    if let Err(e) = authorize(cred.uid()) {
        let line = encode(&Response::error(e.to_string()))?;
        wr.write_all(line.as_bytes()).await?;
        return Err(e);
    }
    let mut lines = BufReader::new(rd);
    let mut buf = String::new();
    loop {
        buf.clear();
        let n = (&mut lines)
            .take(MAX_LINE as u64 + 1)
            .read_line(&mut buf)
            .await?;
        if n == 0 {
            return Ok(());
        }
        let resp = if n > MAX_LINE {
            let r = Response::error(format!("request longer than {MAX_LINE} bytes"));
            wr.write_all(encode(&r)?.as_bytes()).await?;
            return Err(AgentError::Protocol("request too long".into()));
        } else {
            match Request::parse(buf.trim_end()) {
                Ok(Request::Events) => match &events {
                    Some(bus) => return stream_events(bus, wr).await,
                    None => Response::error("this agent publishes no events"),
                },
                Ok(request) => {
                    debug!(?request, pid = cred.pid(), "control request");
                    let (reply, rx) = oneshot::channel();
                    if tx.send(Pending { request, reply }).await.is_err() {
                        Response::error("agent is shutting down")
                    } else {
                        rx.await
                            .unwrap_or_else(|_| Response::error("agent dropped the request"))
                    }
                }
                Err(e) => Response::error(format!("bad request: {e}")),
            }
        };
        wr.write_all(encode(&resp)?.as_bytes()).await?;
    }
}

/// Answer an events request: one ok [`Response`], then every event until the client goes.
async fn stream_events(
    bus: &EventBus,
    mut wr: tokio::net::unix::OwnedWriteHalf,
) -> Result<(), AgentError> {
    let mut rx = bus.subscribe();
    let ok = Response {
        ok: true,
        message: "following events, one JSON object per line".into(),
        status: None,
    };
    wr.write_all(encode(&ok)?.as_bytes()).await?;
    while let Some(ev) = crate::events::next(&mut rx).await {
        if wr.write_all(encode(&ev)?.as_bytes()).await.is_err() {
            break; // the client left
        }
    }
    Ok(())
}

fn encode<T: Serialize>(v: &T) -> Result<String, AgentError> {
    let mut s = serde_json::to_string(v).map_err(|e| AgentError::Protocol(e.to_string()))?;
    s.push('\n');
    Ok(s)
}

/// Kept over the daemon's own bounded work when the CLI waits for an answer: the daemon's
/// handling of the request, the scheduling of a loaded host.
pub const ANSWER_MARGIN: Duration = Duration::from_secs(5);

/// How long the CLI waits for the agent's answer to `req` before it reports the agent stuck,
/// from the timeouts of `cfg`, the file the CLI reads (when it does not load: the default
/// timeouts, one resource and one address).
///
/// The daemon handles one input at a time, each bounded by the timeouts of its reads and
/// steps, so an answer later than the request's own work plus [`ANSWER_MARGIN`] means the
/// daemon is stopped, stuck, or still busy with an earlier transition:
/// - `status`: one fresh observation (DRBD, tgtd and the addresses read at once, an address
///   twice): 5 s with the default timeouts, so 10 s in all. Waiting less would call an agent
///   stuck that answers with the last known state once a slow DRBD read times out.
/// - `split-brain`: each resource's data generations, one after another.
/// - `maintenance on`, the first answer of `events`: nothing is read.
/// - `promote`, `demote`, `maintenance off`, `reload`: a transition, [`transition_bound`].
pub fn answer_bound(req: Request, cfg: Option<&crate::config::Config>) -> Duration {
    let default = crate::config::Timeouts::default();
    let t = cfg.map_or(&default, |c| &c.timeouts);
    let ms = Duration::from_millis;
    let observation = ms(t.drbd_ms.max(t.tgtd_ms).max(2 * t.address_ms));
    let resources = cfg.map_or(1, |c| c.resources.len()) as u32;
    let work = match req {
        Request::Status => observation,
        Request::SplitBrain => ms(t.drbd_ms) * resources,
        Request::Maintenance { on: true } | Request::Events => Duration::ZERO,
        Request::Promote
        | Request::PromoteDegraded
        | Request::Demote
        | Request::Maintenance { on: false }
        | Request::Reload => match cfg {
            Some(cfg) => transition_bound(cfg),
            None => ms(transition_ms(t, 0, [1].into_iter(), 1)),
        },
    };
    work + ANSWER_MARGIN
}

/// The longest one transition of `cfg` may take within its own timeouts, nothing counted as
/// concurrent: an observation before and after; per resource the promote's steps (a live DRBD
/// read before each, DRBD Primary asked [`crate::executor::PRIMARY_ATTEMPTS`] times, each
/// after the verdict of the probes of the addresses in front of it), then a rollback's or a
/// demote's (the connections' handover included); per address its probe, claim and release.
/// With the default timeouts, one resource and one address: 1 min 44 s.
pub fn transition_bound(cfg: &crate::config::Config) -> Duration {
    let handover = cfg.tickle.as_ref().map_or(0, |k| k.handover_ms);
    let fronted = cfg.resources.iter().map(|r| {
        let serving = cfg.addresses.iter().filter(|a| a.serves(&r.name));
        serving.count() as u64
    });
    let addresses = cfg.addresses.len() as u64;
    Duration::from_millis(transition_ms(&cfg.timeouts, handover, fronted, addresses))
}

/// [`transition_bound`] of resources with `fronted` addresses in front of each, `addresses`
/// in all, in milliseconds.
fn transition_ms(
    t: &crate::config::Timeouts,
    handover_ms: u64,
    fronted: impl Iterator<Item = u64>,
    addresses: u64,
) -> u64 {
    let attempts = u64::from(crate::executor::PRIMARY_ATTEMPTS);
    let observation = t.drbd_ms.max(t.tgtd_ms).max(2 * t.address_ms);
    let resource = |fronted: u64| {
        let probes = fronted * t.address_ms;
        // check-resource, drbd-up, drbd-primary's read, its attempts, target-serve's read.
        let promote = 4 * t.drbd_ms + probes + attempts * (probes + 2 * t.drbd_ms) + 2 * t.tgtd_ms;
        // target-offline, target-remove, drbd-secondary, each after a read.
        let demote = 3 * t.drbd_ms + 3 * t.tgtd_ms + handover_ms;
        promote + demote
    };
    2 * observation + fronted.map(resource).sum::<u64>() + 3 * t.address_ms * addresses
}

/// Send one request and wait for its answer (the CLI side), at most `wait` in all (connect,
/// send, read): a daemon that is stopped or stuck (it accepts, its kernel queues the
/// connection, but nothing answers) is reported, naming its pid, instead of waited for.
pub async fn request(path: &Path, req: Request, wait: Duration) -> Result<Response, AgentError> {
    let err = |source| AgentError::Control {
        path: path.to_path_buf(),
        source,
    };
    let deadline = tokio::time::Instant::now() + wait;
    let stream = match tokio::time::timeout_at(deadline, UnixStream::connect(path)).await {
        Ok(connected) => connected.map_err(|e| AgentError::connecting(path, e))?,
        // A full listen queue: the agent has not accepted for a while.
        Err(_) => return Err(no_answer(path, wait, None, false)),
    };
    // For a client, the credentials of the process that called listen(2): the daemon.
    let pid = stream.peer_cred().ok().and_then(|c| c.pid());
    let (rd, mut wr) = stream.into_split();
    let exchange = async {
        wr.write_all(encode(&req)?.as_bytes()).await.map_err(err)?;
        let mut line = String::new();
        BufReader::new(rd).read_line(&mut line).await.map_err(err)?;
        Ok::<_, AgentError>(line)
    };
    let line = match tokio::time::timeout_at(deadline, exchange).await {
        Ok(line) => line?,
        Err(_) => return Err(no_answer(path, wait, pid, true)),
    };
    if line.is_empty() {
        return Err(AgentError::Protocol("agent closed the connection".into()));
    }
    serde_json::from_str(line.trim_end()).map_err(|e| AgentError::Protocol(e.to_string()))
}

/// The pid of the process listening on the control socket at `path` (its credentials at
/// listen(2)), when one can be connected to within a second; for reporting only.
pub async fn listener_pid(path: &Path) -> Option<i32> {
    let connect = UnixStream::connect(path);
    let stream = tokio::time::timeout(Duration::from_secs(1), connect)
        .await
        .ok()?
        .ok()?;
    stream.peer_cred().ok()?.pid().filter(|p| *p > 0)
}

/// The error of an agent that did not answer within `wait`: `accepted`, it took the
/// connection (else its listen queue was full); `pid`, the daemon's, with its state when that
/// explains the silence (stopped, waiting in the kernel).
pub fn no_answer(path: &Path, wait: Duration, pid: Option<i32>, accepted: bool) -> AgentError {
    let what = if accepted {
        "the agent accepted the connection but did not answer"
    } else {
        "the agent did not accept the connection (its listen queue is full)"
    };
    let secs = wait.as_secs_f64();
    let mut text = format!("{what} within {secs} s: it may be stuck, or busy with a transition");
    if let Some(pid) = pid.filter(|p| *p > 0) {
        text.push_str(&format!("; its pid is {pid}"));
        match process_state(pid) {
            Some('T') => text.push_str(&format!(
                " and it is stopped (SIGSTOP, a debugger): kill -CONT {pid} resumes it"
            )),
            Some('D') => text.push_str(&format!(
                " and it waits in the kernel (uninterruptible sleep: cat /proc/{pid}/stack)"
            )),
            Some('Z') => text.push_str(" and it has exited (a zombie)"),
            _ => {}
        }
    }
    text.push_str(
        "; see systemctl status iscsi-ha and journalctl -u iscsi-ha, or wait longer with \
         --timeout SECONDS",
    );
    AgentError::Control {
        path: path.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::TimedOut, text),
    }
}

/// A process's state letter from `/proc/PID/stat` (`R`, `S`, `D`, `T`, `Z`, ...).
fn process_state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name in parentheses may hold spaces and parentheses: the state follows the
    // last one.
    let (_, rest) = stat.rsplit_once(')')?;
    rest.trim_start().chars().next()
}
