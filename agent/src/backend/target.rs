//! [`Target`] over tgtd's management socket (crate `tgt-ipc`): no `tgtadm` is run.
//!
//! tgtd sends no notifications, so the restart watch ([`TgtTarget::watch`]) uses inotify on the
//! socket's directory: tgtd re-creates `socket.N` when it starts, and the kernel closes its
//! `socket.N.lock` when it dies. Either way the targets are re-read and reported, and the
//! state machine re-creates what is missing as soon as tgtd answers again.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tgt_ipc::{ServeSpec, Served, SetState, TgtClient, TgtErrno, TgtError};
use tokio::sync::mpsc::UnboundedSender;
use tracing::{info, warn};

use super::Target;
use crate::config::{Config, Resource};
use crate::dirwatch::{DirWatch, WatchMask};
use crate::error::BackendError;
use crate::fsm::{Event, TargetState, TargetView};

/// tgtd through its management socket.
#[derive(Debug, Clone)]
pub struct TgtTarget {
    client: TgtClient,
}

fn err(e: TgtError) -> BackendError {
    match e {
        TgtError::Connect { .. } | TgtError::ConnectTimeout { .. } => {
            BackendError::Unavailable(e.to_string())
        }
        other => BackendError::Failed(other.to_string()),
    }
}

fn tid(res: &Resource) -> Result<i32, BackendError> {
    i32::try_from(res.target.tid)
        .map_err(|_| BackendError::Failed(format!("tid {} out of range", res.target.tid)))
}

/// The tgt-ipc spec of a configured resource's target (built and checked by
/// [`Resource::serve_spec`], the same code `check-config` runs).
pub fn spec(res: &Resource) -> Result<ServeSpec, BackendError> {
    let accounts = res
        .target
        .chap
        .as_ref()
        .map(crate::chap::bindings)
        .unwrap_or_default();
    res.serve_spec(accounts).map_err(|(_, e)| err(e))
}

impl TgtTarget {
    /// A client of the tgtd socket at `path`, with this per-request timeout.
    pub fn new(path: &Path, timeout: Duration) -> TgtTarget {
        TgtTarget {
            client: TgtClient::at_path(path)
                .connect_timeout(timeout)
                .reply_timeout(timeout),
        }
    }

    /// Report every target whenever tgtd starts or dies (see the module docs).
    pub async fn watch(
        self,
        config: &Config,
        tx: UnboundedSender<Event>,
    ) -> Result<(), BackendError> {
        let path = self.client.path().to_path_buf();
        let dir = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let name: OsString = path.file_name().map(OsString::from).unwrap_or_default();
        let mut lock = name.clone();
        lock.push(".lock");
        let mut watch = DirWatch::new(
            &dir,
            WatchMask::CREATE
                | WatchMask::MOVED_TO
                | WatchMask::CLOSE_WRITE
                | WatchMask::CLOSE_NOWRITE
                | WatchMask::DELETE,
        )?;
        loop {
            let events = watch.next().await?;
            let relevant = events.iter().any(|e| {
                e.name.as_deref() == Some(name.as_os_str())
                    || e.name.as_deref() == Some(lock.as_os_str())
            });
            if !relevant {
                continue;
            }
            info!(socket = %path.display(), "tgtd socket changed: re-reading targets");
            // Report only once tgtd answers: a dying tgtd is reported by its successor (empty
            // targets), so nothing is attempted against a daemon that is gone. A freshly bound
            // socket may not listen yet: retry briefly (bounded, not a poll loop).
            for attempt in 0..10u32 {
                if self.client.show_system().await.is_ok() {
                    let mut views = Vec::new();
                    for r in &config.resources {
                        match self.status(r).await {
                            Ok(v) => views.push((r.name.clone(), v)),
                            Err(e) => warn!(resource = %r.name, error = %e, "tgtd status"),
                        }
                    }
                    for (resource, view) in views {
                        if tx.send(Event::Target { resource, view }).is_err() {
                            return Ok(());
                        }
                    }
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20 * u64::from(attempt + 1))).await;
            }
        }
    }
}

impl Target for TgtTarget {
    async fn status(&self, res: &Resource) -> Result<TargetView, BackendError> {
        let spec = spec(res)?;
        let state = match self.client.served(&spec).await {
            Ok(Served::Serving) => TargetState::Serving,
            Ok(Served::Offline) => TargetState::Offline,
            Ok(Served::Missing) => TargetState::Absent,
            Ok(_) => TargetState::Partial,
            // tgtd not running: nothing is served.
            Err(TgtError::Connect { .. }) => return Ok(TargetView::default()),
            Err(e) => return Err(err(e)),
        };
        let sessions = if state == TargetState::Absent {
            0
        } else {
            let n = self.client.sessions(spec.tid).await.map_err(err)?.len();
            u32::try_from(n).unwrap_or(u32::MAX)
        };
        Ok(TargetView { state, sessions })
    }

    async fn serve(&self, res: &Resource) -> Result<(), BackendError> {
        let mut spec = spec(res)?;
        if let Some(c) = &res.target.chap {
            // secrets read only to serve, never kept or logged
            spec.accounts =
                crate::chap::accounts(c).map_err(|e| BackendError::Failed(e.to_string()))?;
        }
        match self.client.serve(&spec).await {
            Ok(_) => Ok(()),
            Err(TgtError::TargetConflict { differences, .. }) => {
                // Left half-built by an interrupted serve (or edited by hand): rebuild it.
                warn!(resource = %res.name, ?differences, "target differs; re-creating");
                self.client.stop_serving(spec.tid).await.map_err(err)?;
                self.client.serve(&spec).await.map(|_| ()).map_err(err)
            }
            Err(e) => Err(err(e)),
        }
    }

    async fn offline(&self, res: &Resource) -> Result<(), BackendError> {
        let tid = tid(res)?;
        match self.client.set_target_state(tid, SetState::Offline).await {
            Err(e) if e.errno() == Some(TgtErrno::NoTarget) => return Ok(()),
            r => r.map_err(err)?,
        }
        for n in self.client.sessions(tid).await.map_err(err)? {
            match self.client.close_session(tid, n.sid).await {
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.errno(),
                        Some(TgtErrno::NoSession | TgtErrno::NoConnection)
                    ) => {}
                Err(e) => return Err(err(e)),
            }
        }
        Ok(())
    }

    async fn remove(&self, res: &Resource) -> Result<(), BackendError> {
        self.client
            .stop_serving(tid(res)?)
            .await
            .map(|_| ())
            .map_err(err)
    }
}
