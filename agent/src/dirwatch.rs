//! A directory watched with inotify (the `inotify` crate's tokio event stream): the one place the
//! agent waits on inotify. Watching the directory, not the file, sees replacement by rename,
//! deletion and re-creation.

use std::ffi::OsString;
use std::path::Path;

use futures::{FutureExt, StreamExt};
use inotify::{EventStream, Inotify};

pub(crate) use inotify::{EventMask, WatchMask};

/// One inotify event: what happened, and to which name in the directory.
pub(crate) type Event = inotify::Event<OsString>;

/// An inotify watch on one directory.
pub(crate) struct DirWatch {
    events: EventStream<Vec<u8>>,
}

impl DirWatch {
    /// Watch `dir` for `mask`. Must run inside a tokio runtime.
    pub(crate) fn new(dir: &Path, mask: WatchMask) -> std::io::Result<DirWatch> {
        let ino = Inotify::init()?;
        ino.watches().add(dir, mask)?;
        // Room for several events with a full file name each.
        let events = ino.into_event_stream(vec![0; 4096])?;
        Ok(DirWatch { events })
    }

    /// Wait for the next event, and return it with those already queued behind it.
    pub(crate) async fn next(&mut self) -> std::io::Result<Vec<Event>> {
        let closed = || std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "inotify closed");
        let mut batch = vec![self.events.next().await.ok_or_else(closed)??];
        while let Some(Some(ev)) = self.events.next().now_or_never() {
            batch.push(ev?);
        }
        Ok(batch)
    }
}
