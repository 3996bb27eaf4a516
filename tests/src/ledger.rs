//! The write ledger: numbered, checksummed 512-byte blocks written through the floating address,
//! every acknowledged write recorded, then every block read back and classified. The writer is
//! the `iscsi-ledger` binary (libiscsi, [`crate::iscsi`]) running in the lab's client namespace;
//! this module holds the block format, the bookkeeping, the report and the host-side handle
//! ([`LedgerProc`]) that starts it, asks it to verify, and stops it.
//!
//! Block (512 bytes, little endian): `0..8` magic [`MAGIC`], `8..16` run id, `16..24` sequence
//! number (1-based, one per write), `24..32` LBA, `32..40` client time of the write (Unix µs),
//! `40..508` filler derived from run and sequence, `508..512` CRC-32 (IEEE) of bytes `0..508`.
//!
//! Writes go round-robin over `blocks` LBAs from `start_lba`; the ledger keeps, per LBA, the
//! sequence number of the last acknowledged write and the writes that failed (not acknowledged:
//! they may or may not have been applied). Verify classes per LBA: *lost* (reads back older than
//! the last acknowledged write: zeros, another run, a lower sequence), *torn* (bad magic or
//! checksum), *misplaced* (a valid block of this run naming another LBA), *unacknowledged but
//! applied* (a newer sequence that was written but never acknowledged: allowed).

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::iscsi::BLOCK;

/// Block magic, bytes 0..8.
pub const MAGIC: [u8; 8] = *b"ISHALDG1";

/// One ledger block's header fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block {
    /// Run id (one per ledger process).
    pub run: u64,
    /// Sequence number of the write (1-based).
    pub seq: u64,
    /// LBA the block was written to.
    pub lba: u64,
    /// Client wall clock at the write, Unix µs.
    pub time_us: u64,
}

fn filler(run: u64, seq: u64, i: usize) -> u8 {
    (run.rotate_left(7) ^ seq.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (i as u64)).to_le_bytes()[i % 8]
}

/// Encodes `b` as a 512-byte block.
pub fn encode(b: &Block) -> [u8; BLOCK] {
    let mut out = [0u8; BLOCK];
    let fields = [b.run, b.seq, b.lba, b.time_us];
    for (i, chunk) in out.iter_mut().enumerate().take(508) {
        *chunk = match i {
            0..8 => MAGIC[i],
            8..40 => fields[(i - 8) / 8].to_le_bytes()[(i - 8) % 8],
            _ => filler(b.run, b.seq, i),
        };
    }
    let crc = crc32fast::hash(&out[..508]);
    out[508..].copy_from_slice(&crc.to_le_bytes());
    out
}

/// What a block read back holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded {
    /// All zeros (never written).
    Zero,
    /// A well-formed ledger block.
    Valid(Block),
    /// Not a well-formed ledger block (bad magic, checksum or filler, or short).
    Torn,
}

/// Decodes a block read back (any length; anything but exactly 512 well-formed bytes is
/// [`Decoded::Torn`] unless all zero).
pub fn decode(buf: &[u8]) -> Decoded {
    if buf.iter().all(|b| *b == 0) {
        return Decoded::Zero;
    }
    let (Some(body), Some(crc)) = (buf.get(..508), buf.get(508..512)) else {
        return Decoded::Torn;
    };
    let field = |i: usize| -> u64 {
        let mut a = [0u8; 8];
        if let Some(s) = body.get(8 + 8 * i..16 + 8 * i) {
            a.copy_from_slice(s);
        }
        u64::from_le_bytes(a)
    };
    let want = crc32fast::hash(body).to_le_bytes();
    if buf.len() != BLOCK || body.get(..8) != Some(&MAGIC[..]) || crc != want {
        return Decoded::Torn;
    }
    let b = Block {
        run: field(0),
        seq: field(1),
        lba: field(2),
        time_us: field(3),
    };
    // The filler ties the payload to (run, seq): a block spliced from two writes is torn.
    if encode(&b).get(..508) != Some(body) {
        return Decoded::Torn;
    }
    Decoded::Valid(b)
}

/// How the ledger writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mode {
    /// Plain WRITE(10): what many initiators and guest stacks send.
    Plain,
    /// WRITE(10) with FUA on every write.
    Fua,
    /// Plain WRITE(10) plus SYNCHRONIZE CACHE(10) after every N acknowledged writes.
    Sync(u32),
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Mode, String> {
        match s {
            "plain" => Ok(Mode::Plain),
            "fua" => Ok(Mode::Fua),
            _ => s
                .strip_prefix("sync:")
                .and_then(|n| n.parse().ok())
                .filter(|n| *n > 0)
                .map(Mode::Sync)
                .ok_or_else(|| format!("mode {s:?}: expected plain, fua or sync:N (N >= 1)")),
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mode::Plain => write!(f, "plain"),
            Mode::Fua => write!(f, "fua"),
            Mode::Sync(n) => write!(f, "sync:{n}"),
        }
    }
}

/// Wall clock, Unix ms.
pub fn unix_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}

/// One I/O pause: the gap between two acknowledged writes at or above the report threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pause {
    /// When the earlier acknowledgement came (Unix ms, client clock).
    pub from_unix_ms: f64,
    /// Gap length, ms.
    pub ms: f64,
    /// Errors and reconnects during the gap (first few).
    pub cause: Vec<String>,
}

/// Distribution of the gaps between consecutive acknowledged writes, ms.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Gaps {
    /// Number of gaps.
    pub n: usize,
    /// Median gap, ms.
    pub p50_ms: f64,
    /// 95th percentile (nearest rank), ms.
    pub p95_ms: f64,
    /// Longest gap, ms.
    pub max_ms: f64,
}

/// One LBA that did not read back what was acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bad {
    /// LBA.
    pub lba: u64,
    /// Sequence number of the last acknowledged write there.
    pub acked_seq: u64,
    /// What was read: `zero`, `torn`, `seq N`, `run R seq N`, `lba L seq N`.
    pub found: String,
}

/// Result of reading every block back.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Verify {
    /// When the verify pass ended (Unix ms).
    pub at_unix_ms: f64,
    /// LBAs read back that had an acknowledged or attempted write.
    pub checked: u64,
    /// LBAs holding their last acknowledged write.
    pub ok: u64,
    /// LBAs older than their last acknowledged write (must be 0).
    pub lost: u64,
    /// Of `lost`, those covered by a later successful SYNCHRONIZE CACHE (mode `sync:N`).
    pub lost_after_sync: u64,
    /// LBAs with bad magic / checksum (must be 0).
    pub torn: u64,
    /// LBAs holding a valid block of this run written for another LBA (must be 0).
    pub misplaced: u64,
    /// LBAs holding a newer write that was never acknowledged (allowed).
    pub unacked_applied: u64,
    /// The first bad LBAs (lost, torn, misplaced), for diagnosis.
    pub bad: Vec<Bad>,
    /// Read errors and reconnects during the pass.
    pub errors: Vec<String>,
}

impl Verify {
    /// No acknowledged write lost, none torn or misplaced.
    pub fn clean(&self) -> bool {
        self.lost == 0 && self.torn == 0 && self.misplaced == 0
    }
}

/// The ledger's JSON report (`iscsi-ledger` prints it at the end and writes it on each verify).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Run id written into every block.
    pub run_id: u64,
    /// Target URL.
    pub url: String,
    /// `plain`, `fua` or `sync:N`.
    pub mode: String,
    /// First LBA and number of LBAs written round-robin.
    pub start_lba: u32,
    /// Number of LBAs.
    pub blocks: u32,
    /// Start of the run, Unix ms.
    pub started_unix_ms: f64,
    /// Time spent writing (verify passes excluded), s.
    pub write_s: f64,
    /// Acknowledged writes.
    pub acked: u64,
    /// Write attempts that failed (not acknowledged; retried after a reconnect).
    pub failed: u64,
    /// Successful SYNCHRONIZE CACHE commands.
    pub syncs: u64,
    /// Logins after the first one.
    pub reconnects: u64,
    /// Acknowledged writes per second of writing time.
    pub writes_per_s: f64,
    /// Gaps between consecutive acknowledged writes.
    pub gaps: Gaps,
    /// Threshold above which a gap is listed in `pauses`, ms.
    pub pause_threshold_ms: f64,
    /// Every gap at or above the threshold.
    pub pauses: Vec<Pause>,
    /// The last verify pass.
    pub verify: Option<Verify>,
    /// Why the writer gave up, if it did.
    pub fatal: Option<String>,
}

/// The bookkeeping of one run: acknowledged sequence per LBA, failed attempts, gaps.
#[derive(Debug, Clone)]
pub struct Ledger {
    /// Run id.
    pub run: u64,
    /// First LBA.
    pub start_lba: u32,
    acked: Vec<u64>,
    attempted: Vec<Vec<u64>>,
    synced_seq: u64,
    last_ack: Option<(Instant, f64)>,
    gaps: Vec<f64>,
    pause_ms: f64,
    pauses: Vec<Pause>,
    causes: Vec<String>,
    /// The report's counters (verify and pauses filled by [`Ledger::report`]).
    pub counts: Report,
}

impl Ledger {
    /// A new run over `blocks` LBAs from `start_lba`; gaps of `pause_ms` or more are listed.
    pub fn new(run: u64, start_lba: u32, blocks: u32, pause_ms: f64) -> Ledger {
        Ledger {
            run,
            start_lba,
            acked: vec![0; blocks as usize],
            attempted: vec![Vec::new(); blocks as usize],
            synced_seq: 0,
            last_ack: None,
            gaps: Vec::new(),
            pause_ms,
            pauses: Vec::new(),
            causes: Vec::new(),
            counts: Report {
                run_id: run,
                start_lba,
                blocks,
                started_unix_ms: unix_ms(),
                pause_threshold_ms: pause_ms,
                ..Report::default()
            },
        }
    }

    /// Slot and LBA of sequence number `seq` (round-robin).
    pub fn place(&self, seq: u64) -> (usize, u32) {
        let n = self.acked.len().max(1) as u64;
        let slot = ((seq.saturating_sub(1)) % n) as usize;
        (slot, self.start_lba + slot as u32)
    }

    /// The block for write `seq`.
    pub fn block(&self, seq: u64) -> [u8; BLOCK] {
        let (_, lba) = self.place(seq);
        encode(&Block {
            run: self.run,
            seq,
            lba: u64::from(lba),
            time_us: (unix_ms() * 1000.0) as u64,
        })
    }

    /// Records a failed attempt of write `seq` (it may or may not have been applied).
    pub fn failed(&mut self, seq: u64, why: String) {
        let (slot, _) = self.place(seq);
        if let Some(a) = self.attempted.get_mut(slot) {
            if a.last() != Some(&seq) {
                a.push(seq);
            }
        }
        self.counts.failed += 1;
        self.note(why);
    }

    /// Notes an event (error, reconnect) for the pause that contains it.
    pub fn note(&mut self, what: String) {
        if self.causes.len() < 6 {
            self.causes.push(what);
        }
    }

    /// Records the acknowledgement of write `seq`.
    pub fn acked(&mut self, seq: u64) {
        let (slot, _) = self.place(seq);
        if let Some(a) = self.acked.get_mut(slot) {
            *a = seq;
        }
        if let Some(a) = self.attempted.get_mut(slot) {
            a.retain(|s| *s > seq);
        }
        let now = (Instant::now(), unix_ms());
        if let Some((t, u)) = self.last_ack {
            let ms = now.0.duration_since(t).as_secs_f64() * 1000.0;
            self.gaps.push(ms);
            if ms >= self.pause_ms {
                self.pauses.push(Pause {
                    from_unix_ms: u,
                    ms,
                    cause: std::mem::take(&mut self.causes),
                });
            }
        }
        self.causes.clear();
        self.last_ack = Some(now);
        self.counts.acked += 1;
    }

    /// Records a successful SYNCHRONIZE CACHE after write `seq` was acknowledged.
    pub fn synced(&mut self, seq: u64) {
        self.synced_seq = seq;
        self.counts.syncs += 1;
    }

    /// Restarts gap measurement (after a verify pass, which is not an I/O pause).
    pub fn resume_clock(&mut self) {
        self.last_ack = None;
    }

    /// LBA ranges to read back: (first LBA, count), at most `chunk` blocks each, covering every
    /// slot with an acknowledged or attempted write.
    pub fn ranges(&self, chunk: u32) -> Vec<(u32, u32)> {
        let used = self
            .acked
            .iter()
            .zip(&self.attempted)
            .rposition(|(a, t)| *a > 0 || !t.is_empty())
            .map(|i| i + 1)
            .unwrap_or(0) as u32;
        (0..used)
            .step_by(chunk.max(1) as usize)
            .map(|s| (self.start_lba + s, chunk.min(used - s)))
            .collect()
    }

    /// Classifies the block read back at `lba`.
    pub fn check(&self, lba: u32, buf: &[u8], v: &mut Verify) {
        let Some(slot) = lba.checked_sub(self.start_lba).map(|s| s as usize) else {
            return;
        };
        let (Some(&acked), Some(tried)) = (self.acked.get(slot), self.attempted.get(slot)) else {
            return;
        };
        if acked == 0 && tried.is_empty() {
            return;
        }
        v.checked += 1;
        let bad = |v: &mut Verify, found: String| {
            if v.bad.len() < 20 {
                v.bad.push(Bad {
                    lba: u64::from(lba),
                    acked_seq: acked,
                    found,
                });
            }
        };
        match decode(buf) {
            Decoded::Torn => {
                v.torn += 1;
                bad(v, "torn".into());
            }
            Decoded::Valid(b) if b.run == self.run && b.lba != u64::from(lba) => {
                v.misplaced += 1;
                bad(v, format!("lba {} seq {}", b.lba, b.seq));
            }
            Decoded::Valid(b) if b.run == self.run && b.seq == acked => v.ok += 1,
            Decoded::Valid(b) if b.run == self.run && tried.contains(&b.seq) => {
                v.unacked_applied += 1
            }
            found => {
                if acked == 0 {
                    v.ok += 1; // only unacknowledged attempts here, none applied
                    return;
                }
                v.lost += 1;
                if acked <= self.synced_seq {
                    v.lost_after_sync += 1;
                }
                bad(
                    v,
                    match found {
                        Decoded::Zero => "zero".into(),
                        Decoded::Valid(b) if b.run == self.run => format!("seq {}", b.seq),
                        Decoded::Valid(b) => format!("run {} seq {}", b.run, b.seq),
                        Decoded::Torn => "torn".into(),
                    },
                );
            }
        }
    }

    /// The report so far, with `verify` attached.
    pub fn report(&self, verify: Option<Verify>) -> Report {
        let mut r = self.counts.clone();
        let (p50, p95) = crate::drill::median_p95(&self.gaps);
        r.gaps = Gaps {
            n: self.gaps.len(),
            p50_ms: p50,
            p95_ms: p95,
            max_ms: self.gaps.iter().copied().fold(0.0, f64::max),
        };
        r.pauses = self.pauses.clone();
        r.writes_per_s = if r.write_s > 0.0 {
            r.acked as f64 / r.write_s
        } else {
            0.0
        };
        r.verify = verify;
        r
    }
}

/// Options of a ledger started by [`LedgerProc::start`].
#[derive(Debug, Clone)]
pub struct Opts {
    /// Write mode.
    pub mode: Mode,
    /// LBAs written round-robin (default 2048 = 1 MiB).
    pub blocks: u32,
    /// First LBA (default 1024: the markers tests write at LBA 0 stay intact).
    pub start_lba: u32,
    /// Command timeout, s (default 3).
    pub timeout_s: u32,
    /// Gaps at or above this are listed as pauses, ms (default 100).
    pub pause_ms: u32,
    /// Stop after this long (None: until stopped).
    pub duration: Option<Duration>,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            mode: Mode::Plain,
            blocks: 2048,
            start_lba: 1024,
            timeout_s: 3,
            pause_ms: 100,
            duration: None,
        }
    }
}

/// Progress file the writer refreshes about twice a second.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// Acknowledged writes so far.
    pub acked: u64,
    /// Last acknowledgement, Unix ms.
    pub last_ack_unix_ms: f64,
    /// Logged in right now.
    pub connected: bool,
    /// Reconnects so far.
    pub reconnects: u64,
}

/// Writes `value` as JSON to `path` atomically (temporary file + rename).
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(value)?)
        .with_context(|| format!("write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("rename to {}", path.display()))
}

fn read_json<T: for<'a> Deserialize<'a>>(path: &Path) -> Result<Option<T>> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(
            serde_json::from_slice(&b).with_context(|| format!("parse {}", path.display()))?,
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("read {}", path.display())),
    }
}

/// A running `iscsi-ledger` in the lab's client namespace, driven through files in its control
/// directory: `verify` (written by the host, holding a tag) -> `report-<tag>.json`;
/// `progress.json`; `final.json` after SIGTERM; `stderr.log`.
pub struct LedgerProc {
    child: std::process::Child,
    dir: PathBuf,
}

impl LedgerProc {
    /// Starts `iscsi-ledger run` against the floating address of `lab` (target [`crate::agent_lab::IQN`],
    /// LUN 1) and waits until it has `first` acknowledged writes (Err after 60 s).
    pub fn start(lab: &crate::Lab, opts: &Opts, first: u64) -> Result<LedgerProc> {
        let url = crate::bringup::iscsi_url(crate::FLOATING_IP, crate::agent_lab::IQN, 1);
        Self::start_url(lab, &url, opts, first)
    }

    /// [`LedgerProc::start`] against any URL.
    pub fn start_url(lab: &crate::Lab, url: &str, opts: &Opts, first: u64) -> Result<LedgerProc> {
        let bin = crate::host_bin("iscsi-ledger");
        if !bin.exists() {
            bail!(
                "{} is missing: run `cargo build -p tests --bins` first",
                bin.display()
            );
        }
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let dir = lab.run_dir().join(format!(
            "ledger-{}",
            N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let mut args: Vec<String> = vec![
            "run".into(),
            "--url".into(),
            url.into(),
            "--mode".into(),
            opts.mode.to_string(),
            "--blocks".into(),
            opts.blocks.to_string(),
            "--start-lba".into(),
            opts.start_lba.to_string(),
            "--timeout".into(),
            opts.timeout_s.to_string(),
            "--pause-ms".into(),
            opts.pause_ms.to_string(),
            "--ctl".into(),
            dir.to_string_lossy().into_owned(),
        ];
        if let Some(d) = opts.duration {
            args.push("--duration".into());
            args.push(format!("{}", d.as_secs_f64()));
        }
        let child = std::process::Command::new("ip")
            .args(["netns", "exec", lab.client().netns()])
            .arg(&bin)
            .args(&args)
            .stdin(std::process::Stdio::null())
            .stdout(std::fs::File::create(dir.join("stdout.json"))?)
            .stderr(std::fs::File::create(dir.join("stderr.log"))?)
            .spawn()
            .context("start iscsi-ledger in the client namespace")?;
        let mut p = LedgerProc { child, dir };
        p.wait_acked(first, Duration::from_secs(60))?;
        Ok(p)
    }

    /// The control directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The last progress the writer published.
    pub fn progress(&self) -> Result<Progress> {
        Ok(read_json(&self.dir.join("progress.json"))?.unwrap_or_default())
    }

    fn stderr_tail(&self) -> String {
        let s = std::fs::read_to_string(self.dir.join("stderr.log")).unwrap_or_default();
        let v: Vec<&str> = s.lines().collect();
        v[v.len().saturating_sub(15)..].join("\n")
    }

    fn check_alive(&mut self) -> Result<()> {
        if let Some(st) = self.child.try_wait()? {
            bail!(
                "iscsi-ledger exited ({st}); stderr:\n{}",
                self.stderr_tail()
            );
        }
        Ok(())
    }

    /// Waits until at least `n` writes are acknowledged in total; Err after `timeout` with the
    /// writer's stderr tail.
    pub fn wait_acked(&mut self, n: u64, timeout: Duration) -> Result<Progress> {
        let t = Instant::now();
        loop {
            let p = self.progress()?;
            if p.acked >= n {
                return Ok(p);
            }
            self.check_alive()?;
            if t.elapsed() > timeout {
                bail!(
                    "iscsi-ledger: {} of {n} writes acknowledged after {timeout:?}; stderr:\n{}",
                    p.acked,
                    self.stderr_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Asks the writer to pause, read every block back and report (cumulative since its start);
    /// Err after `timeout`.
    pub fn verify(&mut self, tag: &str, timeout: Duration) -> Result<Report> {
        if !tag.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            bail!("bad verify tag {tag:?}");
        }
        let out = self.dir.join(format!("report-{tag}.json"));
        let req = self.dir.join("verify");
        let tmp = self.dir.join("verify.tmp");
        std::fs::write(&tmp, tag)?;
        std::fs::rename(&tmp, &req)?;
        let t = Instant::now();
        loop {
            if let Some(r) = read_json::<Report>(&out)? {
                return Ok(r);
            }
            self.check_alive()?;
            if t.elapsed() > timeout {
                bail!(
                    "iscsi-ledger: no verify report {tag} after {timeout:?}; stderr:\n{}",
                    self.stderr_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM: the writer stops, verifies and prints its final report; waits up to `timeout`.
    pub fn stop(mut self, timeout: Duration) -> Result<Report> {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // `ip netns exec` execs, so this is the ledger itself.
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let t = Instant::now();
        while self.child.try_wait()?.is_none() {
            if t.elapsed() > timeout {
                let _ = self.child.kill();
                let _ = self.child.wait();
                bail!(
                    "iscsi-ledger did not finish within {timeout:?} of SIGTERM; stderr:\n{}",
                    self.stderr_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        read_json::<Report>(&self.dir.join("final.json"))?.ok_or_else(|| {
            anyhow!(
                "iscsi-ledger left no final report; stderr:\n{}",
                self.stderr_tail()
            )
        })
    }
}

impl Drop for LedgerProc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Reads the Caching mode page through `url` from the lab's client with `iscsi-ledger
/// mode-sense`: (MODE SENSE(6), MODE SENSE(10)).
pub fn client_caching_page(
    lab: &crate::Lab,
    url: &str,
) -> Result<(crate::iscsi::CachingPage, crate::iscsi::CachingPage)> {
    let bin = crate::host_bin("iscsi-ledger");
    let bin = bin.to_string_lossy();
    let o = lab.client().run_ok(&[&bin, "mode-sense", "--url", url])?;
    #[derive(Deserialize)]
    struct Out {
        mode_sense6: Page,
        mode_sense10: Page,
    }
    #[derive(Deserialize)]
    struct Page {
        wce: bool,
        rcd: bool,
    }
    let v: Out = serde_json::from_str(&o.stdout)
        .with_context(|| format!("iscsi-ledger mode-sense output: {}", o.stdout))?;
    let p = |x: Page| crate::iscsi::CachingPage {
        wce: x.wce,
        rcd: x.rcd,
    };
    Ok((p(v.mode_sense6), p(v.mode_sense10)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_round_trip_and_damage() {
        let b = Block {
            run: 7,
            seq: 42,
            lba: 1066,
            time_us: 123,
        };
        let e = encode(&b);
        assert_eq!(decode(&e), Decoded::Valid(b));
        assert_eq!(decode(&[0u8; 512]), Decoded::Zero);
        let mut t = e;
        t[300] ^= 1;
        assert_eq!(decode(&t), Decoded::Torn);
        assert_eq!(decode(&e[..511]), Decoded::Torn);
        // First half of one write, second half of another: torn even if re-checksummed.
        let other = encode(&Block { seq: 43, ..b });
        let mut spliced = e;
        spliced[256..].copy_from_slice(&other[256..]);
        let crc = crc32fast::hash(&spliced[..508]);
        spliced[508..].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(decode(&spliced), Decoded::Torn);
    }

    #[test]
    fn modes_parse() {
        assert_eq!("plain".parse(), Ok(Mode::Plain));
        assert_eq!("fua".parse(), Ok(Mode::Fua));
        assert_eq!("sync:16".parse(), Ok(Mode::Sync(16)));
        assert!("sync:0".parse::<Mode>().is_err());
        assert!("sync:".parse::<Mode>().is_err());
        assert!("x".parse::<Mode>().is_err());
        assert_eq!(Mode::Sync(4).to_string(), "sync:4");
    }

    #[test]
    fn verify_classifies_lost_torn_misplaced_and_unacked() {
        let mut l = Ledger::new(9, 100, 4, 100.0);
        for seq in 1..=6 {
            l.acked(seq); // slots 0,1,2,3 then 0,1 again: acked seqs 5,6,3,4
        }
        l.failed(7, "timeout".into()); // slot 2, maybe applied
        let mut v = Verify::default();
        l.check(100, &l.block(5), &mut v); // ok
        l.check(101, &l.block(2), &mut v); // lost: 2 < 6
        l.check(102, &l.block(7), &mut v); // unacknowledged but applied
        l.check(103, &[0u8; 512], &mut v); // lost: zero
        assert_eq!((v.checked, v.ok, v.lost, v.unacked_applied), (4, 1, 2, 1));
        let mut t = l.block(4);
        t[100] ^= 0xff;
        l.check(103, &t, &mut v);
        l.check(103, &l.block(5), &mut v); // seq 5 belongs to LBA 100
        assert_eq!((v.torn, v.misplaced), (1, 1));
        assert!(!v.clean());
        assert_eq!(l.ranges(3), vec![(100, 3), (103, 1)]);
        assert_eq!(l.place(5), (0, 100));
        let r = l.report(Some(v));
        assert_eq!((r.acked, r.failed, r.gaps.n), (6, 1, 5));
    }
}
