//! The backing device: opened exclusively, read and written in 4 KiB-aligned blocks with
//! `O_DIRECT`, as drbdmeta does (`v07_style_md_open_device`): DRBD reads its metadata with
//! bios that bypass the page cache, so a buffered view could be stale.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::{FileExt, FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::error::MdError;

/// One 4 KiB block, aligned for `O_DIRECT`.
#[repr(C, align(4096))]
#[derive(Clone)]
pub(crate) struct Block(pub(crate) [u8; 4096]);

pub(crate) struct Device {
    file: File,
    pub(crate) size: u64,
}

impl Device {
    /// Opens `path` read-write with `O_EXCL` (block devices: `EBUSY` while DRBD has it
    /// attached or it is mounted) and `O_DIRECT`; a regular file whose filesystem refuses
    /// `O_DIRECT` (tmpfs: `EINVAL`) is opened without it.
    pub(crate) fn open(path: &Path) -> Result<Self, MdError> {
        let open_err = |source| MdError::Open {
            path: path.to_owned(),
            source,
        };
        let kind = std::fs::metadata(path).map_err(open_err)?.file_type();
        if !kind.is_block_device() && !kind.is_file() {
            return Err(MdError::NotADevice {
                path: path.to_owned(),
            });
        }
        let open = |flags| {
            OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(flags)
                .open(path)
        };
        let file = match open(libc::O_EXCL | libc::O_DIRECT) {
            Ok(f) => f,
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                return Err(MdError::Busy {
                    path: PathBuf::from(path),
                })
            }
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) && kind.is_file() => {
                open(libc::O_EXCL).map_err(open_err)?
            }
            Err(e) => return Err(open_err(e)),
        };
        // lseek(SEEK_END) gives a block device's size as BLKGETSIZE64 does, and a file's length.
        let size = (&file)
            .seek(SeekFrom::End(0))
            .map_err(|source| MdError::Io {
                op: "find device size",
                offset: 0,
                source,
            })?;
        Ok(Self { file, size })
    }

    pub(crate) fn read_block(&self, op: &'static str, offset: u64) -> Result<Block, MdError> {
        let mut b = Block([0; 4096]);
        self.file
            .read_exact_at(&mut b.0, offset)
            .map_err(|source| MdError::Io { op, offset, source })?;
        Ok(b)
    }

    /// `len` bytes (a multiple of 4096) at `offset` (4 KiB-aligned).
    pub(crate) fn read(&self, op: &'static str, offset: u64, len: u64) -> Result<Vec<u8>, MdError> {
        let mut out = Vec::with_capacity(len as usize);
        for at in (offset..offset + len).step_by(4096) {
            out.extend_from_slice(&self.read_block(op, at)?.0);
        }
        Ok(out)
    }

    /// Writes `data` (a multiple of 4096 bytes) at `offset` (4 KiB-aligned).
    pub(crate) fn write(&self, op: &'static str, offset: u64, data: &[u8]) -> Result<(), MdError> {
        let mut b = Block([0; 4096]);
        for (i, chunk) in data.chunks(4096).enumerate() {
            let at = offset + 4096 * i as u64;
            b.0[..chunk.len()].copy_from_slice(chunk);
            self.file
                .write_all_at(&b.0, at)
                .map_err(|source| MdError::Io {
                    op,
                    offset: at,
                    source,
                })?;
        }
        Ok(())
    }

    /// `fsync(2)`: flushes the device's write cache, so what follows is not reordered before.
    pub(crate) fn sync(&self, op: &'static str) -> Result<(), MdError> {
        self.file.sync_all().map_err(|source| MdError::Io {
            op,
            offset: 0,
            source,
        })
    }
}
