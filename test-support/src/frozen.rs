//! A filesystem whose writes can be held: ext4 on a loop device over an image, frozen with
//! `fsfreeze -f` (every write waits until `fsfreeze -u`, as under a suspended device-mapper table,
//! which a host kernel may lack). Gives a tgtd LU commands in flight for as long as a test wants.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

/// The tools [`FrozenFs`] runs (for a test's prerequisite check).
pub const TOOLS: &[&str] = &["fsfreeze", "losetup", "mkfs.ext4", "mount", "umount"];

/// ext4 of 16 MiB mounted at `DIR/mnt`; thawed, unmounted and detached on drop.
#[derive(Debug)]
pub struct FrozenFs {
    /// The mount point.
    pub mnt: PathBuf,
    loopdev: String,
}

fn sh(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().expect(cmd);
    assert!(out.status.success(), "{cmd} {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

impl FrozenFs {
    /// Makes, attaches and mounts the filesystem under `dir` (panics, naming the command, on
    /// failure).
    pub fn new(dir: &Path) -> FrozenFs {
        let image = dir.join("frozen-fs.img");
        std::fs::File::create(&image)
            .and_then(|f| f.set_len(16 << 20))
            .expect("fs image");
        let image = image.to_str().expect("utf-8 path");
        sh("mkfs.ext4", &["-q", "-F", image]);
        let loopdev = sh("losetup", &["--find", "--show", image]);
        let mnt = dir.join("mnt");
        std::fs::create_dir(&mnt).expect("mnt");
        let fs = FrozenFs { mnt, loopdev };
        sh("mount", &[&fs.loopdev, fs.mnt.to_str().expect("utf-8")]);
        fs
    }

    /// A fully written 4 MiB file on it (no allocation left for the writes to come).
    pub fn file(&self) -> PathBuf {
        let p = self.mnt.join("lun.img");
        std::fs::write(&p, vec![0u8; 4 << 20]).expect("lun file");
        p
    }

    /// `fsfreeze -f`: writes wait from now on.
    pub fn freeze(&self) {
        sh("fsfreeze", &["-f", self.mnt.to_str().expect("utf-8")]);
    }

    /// `fsfreeze -u`: the waiting writes complete. Harmless when not frozen.
    pub fn thaw(&self) {
        let _ = Command::new("fsfreeze")
            .arg("-u")
            .arg(&self.mnt)
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for FrozenFs {
    fn drop(&mut self) {
        self.thaw();
        let _ = Command::new("umount").arg("-l").arg(&self.mnt).status();
        let _ = Command::new("losetup").args(["-d", &self.loopdev]).status();
    }
}

/// Thaws the filesystem on drop, also when the test fails. Declared after the tgtd that serves
/// from it, it runs before that tgtd is killed: tgtd's threads cannot exit while their writes wait.
#[derive(Debug)]
pub struct Thaw(pub Arc<FrozenFs>);

impl Drop for Thaw {
    fn drop(&mut self) {
        self.0.thaw();
    }
}
