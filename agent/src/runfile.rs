//! Small files the daemon keeps: the tickle list learnt from the peer beside its control socket
//! (the unit's `RuntimeDirectory`), the maintenance switch in `state_dir`. Written by this agent
//! alone, through a new file of a random name renamed into place, so a reader never sees half a
//! file and nothing planted in the directory is followed; read without following a link or
//! waiting on a FIFO, and bounded.

use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The directory of `socket`, where these files live; `None` for a bare file name.
pub fn dir_beside(socket: &Path) -> Option<PathBuf> {
    socket
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .map(Path::to_path_buf)
}

fn dir_of(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// Replaces `path` with `bytes`: a new file named `temp_prefix` and random letters in the same
/// directory (created exclusively, mode 0600), written to disk, then renamed over `path` and
/// the directory written to disk, so a crash right after leaves the old file or the new one.
///
/// # Errors
/// The write's, the sync's or the rename's.
pub fn write(path: &Path, temp_prefix: &str, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = tempfile::Builder::new()
        .prefix(temp_prefix)
        .tempfile_in(dir_of(path))?;
    f.write_all(bytes)?;
    f.as_file().sync_all()?;
    f.persist(path).map_err(|e| e.error)?;
    sync_dir(path)
}

/// Removes `path` (a missing file is not an error) and writes its directory to disk.
///
/// # Errors
/// The removal's or the sync's.
pub fn remove(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
        Ok(()) => sync_dir(path),
    }
}

/// `fsync` of the directory holding `path`: a rename or removal in it is on disk.
fn sync_dir(path: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir_of(path))?.sync_all()
}

/// Removes what an interrupted [`write()`] with `temp_prefix` left beside `path`.
pub fn remove_leftovers(path: &Path, temp_prefix: &str) {
    if let Ok(entries) = std::fs::read_dir(dir_of(path)) {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with(temp_prefix) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

/// The contents of `path`, at most `limit` bytes; `Ok(None)` when there is no such file.
///
/// # Errors
/// Why a file that is there cannot be read: a symbolic link, not a regular file, unreadable,
/// longer than `limit`; the text starts with the path.
pub fn read(path: &Path, limit: u64) -> Result<Option<Vec<u8>>, String> {
    let at = |why: String| format!("{}: {why}", path.display());
    // O_NOFOLLOW: a symbolic link fails; O_NONBLOCK: a FIFO does not wait for a writer.
    let flags = nix::fcntl::OFlag::O_NOFOLLOW | nix::fcntl::OFlag::O_NONBLOCK;
    let f = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits())
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(at(e.to_string())),
    };
    let meta = f.metadata().map_err(|e| at(e.to_string()))?;
    if !meta.is_file() {
        return Err(at("not a regular file".into()));
    }
    let mut bytes = Vec::new();
    f.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| at(e.to_string()))?;
    if bytes.len() as u64 > limit {
        return Err(at(format!("longer than {limit} bytes")));
    }
    Ok(Some(bytes))
}
