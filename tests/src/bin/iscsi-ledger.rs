//! `iscsi-ledger`: the lab's write ledger ([`lab::ledger`]) on libiscsi ([`lab::iscsi`]).
//!
//! ```text
//! iscsi-ledger run --url iscsi://HOST/IQN/LUN [--mode plain|fua|sync:N] [--blocks N]
//!     [--start-lba L] [--timeout S] [--reconnect-for S] [--pause-ms MS] [--duration S]
//!     [--ctl DIR] [--no-verify]
//! iscsi-ledger mode-sense --url iscsi://HOST/IQN/LUN
//! ```
//!
//! `run` writes numbered, checksummed blocks until SIGTERM/SIGINT, a `stop` file in `--ctl` or
//! `--duration`, then reads every block back and prints the JSON report (also `final.json` in
//! `--ctl`). On an error it logs in again the way an initiator does: a fresh login every 100 ms
//! until one succeeds (giving up after `--reconnect-for`), then retries the same write. A file
//! `verify` in `--ctl` holding a tag makes it pause, verify and write `report-<tag>.json`;
//! `progress.json` there is refreshed twice a second.
//!
//! `mode-sense` prints the Caching mode page (WCE, RCD) read with MODE SENSE(6) and (10).

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use lab::iscsi::{IscsiError, Session, BLOCK};
use lab::ledger::{self, Ledger, Mode, Progress, Report, Verify};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const INITIATOR: &str = "iqn.2024-01.lab:ledger";
/// Fixed interval between login attempts (an initiator's own retry, no backoff).
const RETRY: Duration = Duration::from_millis(100);
/// Blocks per READ(10) in a verify pass.
const VERIFY_CHUNK: u32 = 64;

#[derive(Parser)]
#[command(about = "Write ledger: numbered, checksummed blocks through libiscsi, verified")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Write until stopped, then verify; JSON report on stdout.
    Run(RunArgs),
    /// Print the Caching mode page (MODE SENSE(6) and (10)) as JSON.
    ModeSense {
        /// Target URL `iscsi://HOST[:PORT]/IQN/LUN`.
        #[arg(long)]
        url: String,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// Target URL `iscsi://HOST[:PORT]/IQN/LUN`.
    #[arg(long)]
    url: String,
    /// plain, fua or sync:N (SYNCHRONIZE CACHE after every N writes).
    #[arg(long, default_value = "plain")]
    mode: Mode,
    /// LBAs written round-robin.
    #[arg(long, default_value_t = 2048)]
    blocks: u32,
    /// First LBA.
    #[arg(long, default_value_t = 1024)]
    start_lba: u32,
    /// Command timeout, seconds.
    #[arg(long, default_value_t = 3)]
    timeout: u32,
    /// Give up when no login succeeds for this long, seconds.
    #[arg(long, default_value_t = 120.0)]
    reconnect_for: f64,
    /// List gaps between acknowledged writes at or above this, ms.
    #[arg(long, default_value_t = 100)]
    pause_ms: u32,
    /// Stop after this many seconds of writing.
    #[arg(long)]
    duration: Option<f64>,
    /// Control directory (verify requests, progress, reports).
    #[arg(long)]
    ctl: Option<PathBuf>,
    /// Skip the final verify pass.
    #[arg(long)]
    no_verify: bool,
}

fn main() {
    let r = match Cli::parse().cmd {
        Cmd::Run(a) => run(a),
        Cmd::ModeSense { url } => mode_sense(&url),
    };
    if let Err(e) = r {
        eprintln!("iscsi-ledger: {e:#}");
        std::process::exit(1);
    }
}

fn mode_sense(url: &str) -> Result<()> {
    let mut s = Session::connect(url, INITIATOR, 5, 2)?;
    let six = s.caching_page(false)?;
    let ten = s.caching_page(true)?;
    let _ = s.logout();
    println!(
        "{}",
        serde_json::json!({"url": url, "mode_sense6": six, "mode_sense10": ten})
    );
    Ok(())
}

/// SIGTERM / SIGINT set the flag (signals blocked here, taken by a sigwait thread).
fn stop_flag() -> Result<Arc<AtomicBool>> {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGINT);
    set.thread_block().context("block SIGTERM/SIGINT")?;
    let flag = Arc::new(AtomicBool::new(false));
    let f = flag.clone();
    std::thread::spawn(move || {
        if set.wait().is_ok() {
            f.store(true, Ordering::SeqCst);
        }
    });
    Ok(flag)
}

struct Writer {
    a: RunArgs,
    l: Ledger,
    s: Option<Session>,
    logins: u64,
    stop: Arc<AtomicBool>,
    verify_time: Duration,
}

impl Writer {
    fn log(&self, msg: &str) {
        eprintln!("[{:.3}] {msg}", ledger::unix_ms() / 1000.0);
    }

    /// A logged-in session: the current one, or new logins every [`RETRY`] until one works.
    fn session(&mut self) -> Result<&mut Session> {
        if self.s.is_none() {
            let t = Instant::now();
            let mut tries = 0u32;
            loop {
                tries += 1;
                match Session::connect(&self.a.url, INITIATOR, self.a.timeout, 1) {
                    Ok(s) => {
                        if self.logins > 0 {
                            self.l.counts.reconnects += 1;
                            let m = format!(
                                "login #{} after {tries} attempts, {:.0} ms",
                                self.logins + 1,
                                t.elapsed().as_secs_f64() * 1000.0
                            );
                            self.log(&m);
                            self.l.note(m);
                        }
                        self.logins += 1;
                        self.s = Some(s);
                        break;
                    }
                    Err(e) => {
                        if tries == 1 {
                            self.log(&format!("{e}; retrying every {RETRY:?}"));
                        }
                        if t.elapsed().as_secs_f64() > self.a.reconnect_for {
                            bail!("no login for {:.0} s: {e}", self.a.reconnect_for);
                        }
                        std::thread::sleep(RETRY);
                    }
                }
            }
        }
        self.s.as_mut().ok_or_else(|| anyhow::anyhow!("no session"))
    }

    fn drop_session(&mut self, e: &IscsiError) {
        self.log(&format!("{e}; logging in again"));
        self.s = None; // destroys the context, closing the connection
    }

    /// Writes `seq` until acknowledged (new logins in between).
    fn write(&mut self, seq: u64) -> Result<()> {
        let (_, lba) = self.l.place(seq);
        let fua = self.a.mode == Mode::Fua;
        loop {
            let block = self.l.block(seq);
            let r = self.session()?.write10(lba, &block, fua);
            match r {
                Ok(()) => {
                    self.l.acked(seq);
                    return Ok(());
                }
                Err(e) => {
                    self.l.failed(seq, format!("seq {seq}: {e}"));
                    self.drop_session(&e);
                }
            }
        }
    }

    fn sync(&mut self, seq: u64) -> Result<()> {
        loop {
            match self.session()?.synchronize_cache10() {
                Ok(()) => {
                    self.l.synced(seq);
                    return Ok(());
                }
                Err(e) => {
                    self.l.note(format!("after seq {seq}: {e}"));
                    self.drop_session(&e);
                }
            }
        }
    }

    /// Reads every written block back and classifies it.
    fn verify(&mut self) -> Result<Verify> {
        let t = Instant::now();
        let mut v = Verify::default();
        for (lba, n) in self.l.ranges(VERIFY_CHUNK) {
            let mut buf = vec![0u8; n as usize * BLOCK];
            loop {
                match self.session()?.read10(lba, &mut buf) {
                    Ok(()) => break,
                    Err(e) => {
                        if v.errors.len() < 20 {
                            v.errors.push(format!("READ(10) at {lba}: {e}"));
                        }
                        self.drop_session(&e);
                    }
                }
            }
            for (i, b) in buf.chunks(BLOCK).enumerate() {
                self.l.check(lba + i as u32, b, &mut v);
            }
        }
        v.at_unix_ms = ledger::unix_ms();
        self.verify_time += t.elapsed();
        self.l.resume_clock();
        Ok(v)
    }

    fn report(&mut self, start: Instant, v: Option<Verify>) -> Report {
        self.l.counts.write_s = start
            .elapsed()
            .saturating_sub(self.verify_time)
            .as_secs_f64();
        let mut r = self.l.report(v);
        r.url = self.a.url.clone();
        r.mode = self.a.mode.to_string();
        r
    }
}

fn run(a: RunArgs) -> Result<()> {
    if a.blocks == 0 {
        bail!("--blocks must be at least 1");
    }
    let stop = stop_flag()?;
    let run_id = (ledger::unix_ms() as u64) << 16 | u64::from(std::process::id() as u16);
    let l = Ledger::new(run_id, a.start_lba, a.blocks, f64::from(a.pause_ms));
    let ctl = a.ctl.clone();
    if let Some(d) = &ctl {
        std::fs::create_dir_all(d)?;
    }
    let mut w = Writer {
        a,
        l,
        s: None,
        logins: 0,
        stop,
        verify_time: Duration::ZERO,
    };
    let start = Instant::now();
    let mut last_progress = Instant::now() - Duration::from_secs(1);
    let mut seq = 0u64;
    let mut fatal = None;
    loop {
        if w.stop.load(Ordering::SeqCst)
            || ctl.as_ref().is_some_and(|d| d.join("stop").exists())
            || w.a
                .duration
                .is_some_and(|d| start.elapsed().saturating_sub(w.verify_time).as_secs_f64() >= d)
        {
            break;
        }
        if let Some(d) = &ctl {
            let req = d.join("verify");
            if req.exists() {
                let taken = d.join("verify.taken");
                std::fs::rename(&req, &taken)?;
                let tag = std::fs::read_to_string(&taken)?.trim().to_string();
                w.log(&format!("verify {tag} requested"));
                let v = w.verify()?;
                let r = w.report(start, Some(v));
                ledger::write_json(&d.join(format!("report-{tag}.json")), &r)?;
            }
            if last_progress.elapsed() >= Duration::from_millis(500) {
                let p = Progress {
                    acked: w.l.counts.acked,
                    last_ack_unix_ms: ledger::unix_ms(),
                    connected: w.s.is_some(),
                    reconnects: w.l.counts.reconnects,
                };
                ledger::write_json(&d.join("progress.json"), &p)?;
                last_progress = Instant::now();
            }
        }
        seq += 1;
        if let Err(e) = w.write(seq) {
            fatal = Some(format!("{e:#}"));
            break;
        }
        if let Mode::Sync(n) = w.a.mode {
            if seq % u64::from(n) == 0 {
                if let Err(e) = w.sync(seq) {
                    fatal = Some(format!("{e:#}"));
                    break;
                }
            }
        }
    }
    w.log(&format!(
        "stopping after {} acknowledged writes",
        w.l.counts.acked
    ));
    let v = if w.a.no_verify || fatal.is_some() {
        None
    } else {
        match w.verify() {
            Ok(v) => Some(v),
            Err(e) => {
                fatal = Some(format!("verify: {e:#}"));
                None
            }
        }
    };
    let mut r = w.report(start, v);
    r.fatal = fatal.clone();
    if let Some(s) = w.s.take() {
        let _ = s.logout();
    }
    if let Some(d) = &ctl {
        ledger::write_json(&d.join("final.json"), &r)?;
    }
    println!("{}", serde_json::to_string_pretty(&r)?);
    match fatal {
        Some(f) => bail!("{f}"),
        None => Ok(()),
    }
}
