//! QEMU processes and the control channel.
//!
//! Each guest has two serial ports. ttyS0 is the kernel console, written by QEMU itself to a log
//! file (`-chardev file`): nothing on the host has to read it, so it can never stall the guest, also
//! when the lab runs detached. ttyS1 (`-chardev socket,server=on,wait=off`) carries only framed
//! commands (see `crate::initramfs::CTL`); a reader thread per connection drains it continuously and
//! hands complete replies to the caller through a channel with a timeout. While no client is
//! connected QEMU discards what the guest writes there, so a detached lab cannot stall either.

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use crate::Output;

/// Everything needed to (re)start one guest.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct GuestSpec {
    /// Lab network namespace QEMU runs in.
    pub netns: String,
    /// QEMU argv (without `ip netns exec`).
    pub argv: Vec<String>,
    /// Console (ttyS0) log file, appended to across boots.
    pub console: PathBuf,
    /// Control socket (ttyS1).
    pub ctl_sock: PathBuf,
    /// QEMU's own stdout/stderr.
    pub qemu_log: PathBuf,
}

/// Inputs of [`qemu_argv`].
pub struct ArgvInput<'a> {
    /// Node name (`a`, `b`, …), reaches the guest as `lab_node=`.
    pub node: &'a str,
    /// Guest address.
    pub ip: std::net::Ipv4Addr,
    /// Guest MAC.
    pub mac: &'a str,
    /// Tap in the lab namespace.
    pub tap: &'a str,
    /// ELF kernel.
    pub kernel: &'a Path,
    /// Initramfs.
    pub initrd: &'a Path,
    /// Backing disk (raw) → `/dev/vda`.
    pub disk: &'a Path,
    /// Directory shared read-only at `/lab/target` (none: no 9p device).
    pub share: Option<&'a Path>,
    /// More read-only 9p shares: (mount tag, host dir).
    pub ro_shares: &'a [(String, std::path::PathBuf)],
    /// Guest memory in MiB.
    pub mem_mib: u32,
    /// Console log file.
    pub console: &'a Path,
    /// Control socket path.
    pub ctl_sock: &'a Path,
}

/// Extra kernel arguments (env `LAB_APPEND` overrides, for experiments). `no_timer_check`: under
/// TCG on a loaded host the boot-time timer IRQ test can fail and panic the guest ("IO-APIC +
/// timer doesn't work"); the check proves nothing about an emulated timer.
pub const KERNEL_ARGS: &str = "no_timer_check";

/// Which QEMU runs the guests: `LAB_QEMU` (a `qemu-system-x86_64` path) when set; else Debian's
/// backport unpacked by `scripts/deps.sh` under `<workspace>/target/lab-cache/qemu-backport/root`,
/// run with `-L` on its own data files (firmware comes from the installed seabios); else the
/// system's `qemu-system-x86_64`. bookworm's QEMU 7.2 translates a guest program's code again at
/// every start (translations are kept by virtual address, and every exec maps a PIE binary, ld.so
/// and libc at new random ones); QEMU 8 and later keep x86 translations by physical page
/// (PC-relative translation blocks), so a program started again is not translated again: 3-4x
/// faster process starts in a guest (tests/README.md, "QEMU").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QemuProgram {
    /// The executable.
    pub path: PathBuf,
    /// Arguments it needs first (`-L DIR`).
    pub args: Vec<String>,
}

impl QemuProgram {
    /// The program the lab uses (see the type's documentation).
    pub fn resolve() -> QemuProgram {
        if let Some(p) = std::env::var_os("LAB_QEMU").filter(|p| !p.is_empty()) {
            return QemuProgram {
                path: PathBuf::from(p),
                args: Vec::new(),
            };
        }
        let root = crate::assets::cache_dir()
            .join("qemu-backport")
            .join("root");
        let path = root.join("usr/bin/qemu-system-x86_64");
        if path.exists() {
            let data = root.join("usr/share/qemu");
            return QemuProgram {
                path,
                args: vec!["-L".into(), data.display().to_string()],
            };
        }
        QemuProgram {
            path: PathBuf::from("qemu-system-x86_64"),
            args: Vec::new(),
        }
    }

    /// `qemu-system-x86_64 --version`'s first line ("QEMU emulator version 10.0.2 (...)"), for
    /// reports; `None` when it cannot be run.
    pub fn version(&self) -> Option<String> {
        let out = Command::new(&self.path).arg("--version").output().ok()?;
        let text = String::from_utf8_lossy(&out.stdout);
        text.lines().next().map(|l| l.trim().to_string())
    }
}

/// The QEMU command line of one guest (`-accel tcg -cpu max`: KVM does not run stock kernels here).
pub fn qemu_argv(a: &ArgvInput<'_>) -> Vec<String> {
    let mut append = format!(
        "console=ttyS0 quiet panic=-1 {} lab_node={} lab_ip={}",
        std::env::var("LAB_APPEND").unwrap_or_else(|_| KERNEL_ARGS.to_string()),
        a.node,
        a.ip
    );
    let cpu = std::env::var("LAB_CPU").unwrap_or_else(|_| "max".to_string());
    let qemu = QemuProgram::resolve();
    let mut v = vec![qemu.path.display().to_string()];
    v.extend(qemu.args);
    v.extend(
        [
            "-accel",
            "tcg",
            "-cpu",
            &cpu,
            "-smp",
            "1",
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-no-reboot",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    v.extend(["-m".into(), a.mem_mib.to_string()]);
    v.extend(["-kernel".into(), a.kernel.display().to_string()]);
    v.extend(["-initrd".into(), a.initrd.display().to_string()]);
    v.extend([
        "-chardev".into(),
        format!("file,id=con,path={},append=on", a.console.display()),
        "-serial".into(),
        "chardev:con".into(),
        "-chardev".into(),
        format!(
            "socket,id=ctl,path={},server=on,wait=off",
            a.ctl_sock.display()
        ),
        "-serial".into(),
        "chardev:ctl".into(),
        "-netdev".into(),
        format!("tap,id=n0,ifname={},script=no,downscript=no", a.tap),
        "-device".into(),
        format!("virtio-net-pci,netdev=n0,mac={}", a.mac),
        "-drive".into(),
        format!(
            "file={},if=virtio,format=raw,cache=unsafe",
            a.disk.display()
        ),
    ]);
    if let Some(share) = a.share {
        v.extend([
            "-virtfs".into(),
            format!(
                "local,path={},mount_tag=labtarget,security_model=none,readonly=on",
                share.display()
            ),
        ]);
        append.push_str(" lab_9p=labtarget");
    }
    for (tag, dir) in a.ro_shares {
        v.extend([
            "-virtfs".into(),
            format!(
                "local,path={},mount_tag={tag},security_model=none,readonly=on",
                dir.display()
            ),
        ]);
    }
    v.extend(["-append".into(), append]);
    v
}

/// Starts QEMU inside `spec.netns`. `detached`: own process group, so it outlives the caller and
/// ignores the terminal's Ctrl-C.
pub fn spawn(spec: &GuestSpec, detached: bool) -> Result<Child> {
    let _ = std::fs::remove_file(&spec.ctl_sock);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&spec.qemu_log)
        .with_context(|| format!("open {}", spec.qemu_log.display()))?;
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &spec.netns])
        .args(&spec.argv)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    if detached {
        cmd.process_group(0);
    }
    // `ip netns exec` execs QEMU, so the child's pid is QEMU's pid.
    cmd.spawn().context("cannot start qemu-system-x86_64")
}

/// True if process `pid` exists and is not a zombie.
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s
            .rsplit_once(')')
            .map(|(_, r)| r.trim_start().starts_with('Z'))
            .unwrap_or(false),
        Err(_) => false,
    }
}

/// `VmHWM` (peak resident set) of `pid` in KiB.
pub fn peak_rss_kib(pid: i32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// SIGKILL `pid` and wait (up to 5 s) until it is gone.
pub fn kill_pid(pid: i32) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );
    let t = Instant::now();
    while alive(pid) && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Reads `path` from byte `from` (lossy UTF-8; empty if missing).
pub fn read_from(path: &Path, from: u64) -> String {
    let b = std::fs::read(path).unwrap_or_default();
    let from = usize::try_from(from).unwrap_or(usize::MAX).min(b.len());
    String::from_utf8_lossy(b.get(from..).unwrap_or_default()).into_owned()
}

/// Waits until `needle` appears in `path` after byte `from`, while `pid` lives.
pub fn wait_log(path: &Path, from: u64, needle: &str, pid: i32, timeout: Duration) -> Result<()> {
    let t = Instant::now();
    loop {
        if read_from(path, from).contains(needle) {
            return Ok(());
        }
        if !alive(pid) {
            bail!("QEMU (pid {pid}) exited before `{needle}`");
        }
        if t.elapsed() > timeout {
            bail!(
                "timeout ({timeout:?}) waiting for `{needle}` in {}",
                path.display()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

// ---- base64 (standard alphabet) of the control channel ----

/// Decodes with or without padding (the text is cut at the first `=`).
const B64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// Standard base64 with padding, no line breaks.
pub fn b64_encode(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// Decodes base64, skipping whitespace; stops at `=`; Err on a foreign character.
pub fn b64_decode(text: &str) -> Result<Vec<u8>> {
    let text = text.split('=').next().unwrap_or_default();
    let clean: Vec<u8> = text
        .bytes()
        .filter(|b| !matches!(b, b' ' | b'\n' | b'\r' | b'\t'))
        .collect();
    B64.decode(clean).context("invalid base64")
}

// ---- control channel ----

static IDS: AtomicU64 = AtomicU64::new(1);

/// One complete reply of the guest's control loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Request id.
    pub id: String,
    /// Exit status of the script.
    pub rc: i32,
    /// Its stdout.
    pub stdout: Vec<u8>,
    /// Its stderr.
    pub stderr: Vec<u8>,
}

/// Reassembles [`Reply`]s from the lines the guest writes on ttyS1 (bytes from the guest: anything
/// malformed is skipped, never a panic). A reply with a broken base64 line is dropped whole.
#[derive(Debug, Default)]
pub struct FrameParser {
    cur: Option<(String, Vec<u8>, Vec<u8>, bool)>,
}

impl FrameParser {
    /// Feeds one line (with or without its line end); returns a reply when `END` completes one.
    pub fn line(&mut self, raw: &[u8]) -> Option<Reply> {
        let l = String::from_utf8_lossy(raw);
        let l = l.trim_end_matches(['\n', '\r']);
        if let Some(id) = l.strip_prefix("BEGIN ") {
            self.cur = Some((id.to_string(), Vec::new(), Vec::new(), true));
        } else if let Some(b) = l.strip_prefix("O ") {
            if let Some(c) = self.cur.as_mut() {
                match b64_decode(b) {
                    Ok(d) => c.1.extend(d),
                    Err(_) => c.3 = false,
                }
            }
        } else if let Some(b) = l.strip_prefix("E ") {
            if let Some(c) = self.cur.as_mut() {
                match b64_decode(b) {
                    Ok(d) => c.2.extend(d),
                    Err(_) => c.3 = false,
                }
            }
        } else if let Some(rest) = l.strip_prefix("END ") {
            let (id, rc) = rest.split_once(" rc=")?;
            let (cid, o, e, ok) = self.cur.take()?;
            let rc = rc.trim().parse().ok()?;
            if cid == id && ok {
                return Some(Reply {
                    id: cid,
                    rc,
                    stdout: o,
                    stderr: e,
                });
            }
        }
        None
    }
}

/// One connection to a guest's control port.
pub struct Ctl {
    stream: UnixStream,
    rx: Receiver<Reply>,
}

impl Ctl {
    /// Connects to the control socket (retrying until `timeout` while QEMU creates it) and starts
    /// the draining reader thread.
    pub fn connect(sock: &Path, timeout: Duration) -> Result<Ctl> {
        let t = Instant::now();
        let stream = loop {
            match UnixStream::connect(sock) {
                Ok(s) => break s,
                Err(e) if t.elapsed() > timeout => {
                    return Err(e).with_context(|| format!("connect {}", sock.display()))
                }
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        };
        let (tx, rx) = mpsc::channel();
        let reader = stream.try_clone()?;
        std::thread::Builder::new()
            .name("lab-ctl-reader".into())
            .spawn(move || {
                let mut r = BufReader::new(reader);
                let mut line = Vec::new();
                let mut parser = FrameParser::default();
                loop {
                    line.clear();
                    match r.read_until(b'\n', &mut line) {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                    if let Some(reply) = parser.line(&line) {
                        if tx.send(reply).is_err() {
                            return;
                        }
                    }
                }
            })?;
        Ok(Ctl { stream, rx })
    }

    /// Runs `script` with `sh` in the guest; Err on timeout or a dead channel.
    pub fn run(&mut self, script: &str, timeout: Duration) -> Result<Output> {
        let id = format!(
            "{}-{}",
            std::process::id(),
            IDS.fetch_add(1, Ordering::SeqCst)
        );
        let line = format!("CMD {id} {}\n", b64_encode(script.as_bytes()));
        self.stream
            .write_all(line.as_bytes())
            .context("write to the control channel")?;
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(r) if r.id == id => {
                    return Ok(Output {
                        rc: r.rc,
                        stdout: String::from_utf8_lossy(&r.stdout).into_owned(),
                        stderr: String::from_utf8_lossy(&r.stderr).into_owned(),
                    })
                }
                Ok(_) => continue, // a late reply to an earlier, timed-out command
                Err(RecvTimeoutError::Timeout) => return Err(anyhow!("timeout after {timeout:?}")),
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(anyhow!("control channel closed (guest down?)"))
                }
            }
        }
    }
}

impl Drop for Ctl {
    fn drop(&mut self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trip() {
        for n in 0..300usize {
            let data: Vec<u8> = (0..n).map(|i| (i * 7 + n) as u8).collect();
            let e = b64_encode(&data);
            assert_eq!(b64_decode(&e).unwrap(), data);
        }
        assert_eq!(b64_encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(b64_encode(b"fo"), "Zm8=");
        assert_eq!(b64_decode("Zm9v\nYmE=").unwrap(), b"fooba");
        assert!(b64_decode("Zm9v*").is_err());
    }

    #[test]
    fn frames_reassemble_and_garbage_is_skipped() {
        let mut p = FrameParser::default();
        let lines: &[&[u8]] = &[
            b"noise from a previous client\n",
            b"END 1-1 rc=0\n", // END without BEGIN
            b"BEGIN 1-2\r\n",
            b"O b3V0Cg==\n",
            b"E ZXJyCg==\n",
        ];
        for l in lines {
            assert_eq!(p.line(l), None);
        }
        let r = p.line(b"END 1-2 rc=3\n").unwrap();
        assert_eq!(
            r,
            Reply {
                id: "1-2".into(),
                rc: 3,
                stdout: b"out\n".to_vec(),
                stderr: b"err\n".to_vec()
            }
        );
        // Mismatched id, bad rc, bad base64: no reply.
        assert_eq!(p.line(b"BEGIN a"), None);
        assert_eq!(p.line(b"END b rc=0"), None);
        assert_eq!(p.line(b"BEGIN a"), None);
        assert_eq!(p.line(b"END a rc=x"), None);
        assert_eq!(p.line(b"BEGIN a"), None);
        assert_eq!(p.line(b"O !!"), None);
        assert_eq!(p.line(b"END a rc=0"), None);
        assert_eq!(p.line(&[0xff, 0xfe, b'\n']), None);
    }
}
