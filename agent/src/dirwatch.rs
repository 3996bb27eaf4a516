//! A directory watched with inotify (nix) through tokio's `AsyncFd`: the one place the agent
//! waits on inotify. Watching the directory, not the file, sees replacement by rename, deletion
//! and re-creation.

use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::path::Path;

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, InotifyEvent};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

struct Fd(Inotify);

impl AsRawFd for Fd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

/// An inotify watch on one directory.
pub(crate) struct DirWatch {
    fd: AsyncFd<Fd>,
}

impl DirWatch {
    /// Watch `dir` for `mask`. Must run inside a tokio runtime.
    pub(crate) fn new(dir: &Path, mask: AddWatchFlags) -> std::io::Result<DirWatch> {
        let ino = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)?;
        ino.add_watch(dir, mask)?;
        // SAFETY: `Fd` owns the inotify descriptor and only closes it when dropped, which
        // happens when the `AsyncFd` is dropped; `as_raw_fd` always returns that descriptor.
        let fd = unsafe { AsyncFd::register_with_interest(Fd(ino), Interest::READABLE) }?;
        Ok(DirWatch { fd })
    }

    /// Wait for the next batch of events.
    pub(crate) async fn next(&mut self) -> std::io::Result<Vec<InotifyEvent>> {
        loop {
            let mut guard = self.fd.readable().await?;
            match guard.get_inner().0.read_events() {
                Ok(ev) => return Ok(ev),
                Err(nix::errno::Errno::EAGAIN) => guard.clear_ready(),
                Err(e) => return Err(e.into()),
            }
        }
    }
}
