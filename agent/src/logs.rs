//! Where the daemon's log goes: journald's native protocol (structured fields, one entry per
//! event) when systemd connected stderr to the journal, plain text on stderr elsewhere, without
//! terminal colour codes unless stderr is a terminal. `RUST_LOG` filters (default `info`).
//!
//! systemd sets `JOURNAL_STREAM=<device>:<inode>` to stderr's identity when it connects stderr
//! to the journal (`systemd.exec(5)`); the variable alone is not enough, since a child of such
//! a service inherits it with another stderr.

use std::io::IsTerminal;
use std::time::Duration;

use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

/// Whether stderr is the journal stream systemd set up (`JOURNAL_STREAM` names stderr).
pub fn stderr_is_journal() -> bool {
    let Ok(want) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Ok(st) = nix::sys::stat::fstat(std::io::stderr()) else {
        return false;
    };
    want == format!("{}:{}", st.st_dev, st.st_ino)
}

/// Install the process-wide subscriber (once, at daemon start).
pub fn init() {
    let journal = stderr_is_journal();
    if journal {
        match tracing_journald::layer() {
            Ok(layer) => {
                let layer = layer
                    .with_field_prefix(None)
                    .with_syslog_identifier("iscsi-ha".into());
                tracing_subscriber::registry()
                    .with(filter())
                    .with(layer)
                    .init();
                return;
            }
            Err(e) => eprintln!("iscsi-ha: journald socket: {e}; logging plain text"),
        }
    }
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    tracing_subscriber::registry()
        .with(filter())
        .with(layer)
        .init();
}

/// `RUST_LOG`'s filter when it is set (`info` when it does not parse), else `info` as a plain
/// level: the same events, without the directive parser's code, which a TCG guest translates
/// at every start.
fn filter() -> Box<dyn Layer<Registry> + Send + Sync> {
    if std::env::var_os(EnvFilter::DEFAULT_ENV).is_none() {
        return Box::new(LevelFilter::INFO);
    }
    Box::new(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
}

/// Time since this process was started by `exec`: its start time in `/proc/self/stat` (field
/// 22, clock ticks after boot; `USER_HZ` is 100 on Linux, so a 10 ms grain) against
/// `CLOCK_BOOTTIME`, the clock that start time is counted on (`proc_pid_stat(5)`). `None` when
/// either cannot be read. The start-up log lines carry it (`since_exec_ms`) so the time from
/// exec to serving can be read from the log alone, the loading of the binary included.
pub fn since_exec() -> Option<Duration> {
    let ticks = stat_field(&read_stat()?, 22)?;
    let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME).ok()?;
    let now = Duration::new(u64::try_from(now.tv_sec()).ok()?, now.tv_nsec() as u32);
    Some(now.saturating_sub(Duration::from_millis(ticks * 10)))
}

/// CPU time this process has used (user + system, `/proc/self/stat` fields 14 and 15, 10 ms
/// grain): against [`since_exec`] it tells a slow start from one that waited for the CPU.
pub fn cpu_time() -> Option<Duration> {
    let stat = read_stat()?;
    Some(Duration::from_millis(
        (stat_field(&stat, 14)? + stat_field(&stat, 15)?) * 10,
    ))
}

/// [`cpu_time`] in milliseconds, 0 when unknown (for log fields).
pub fn cpu_ms() -> u64 {
    cpu_time().map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// `/proc/self/stat`, in one `read` (the kernel writes the whole line, a few hundred bytes, at
/// once; `read_to_string`'s growing reads took 8 system calls each time).
fn read_stat() -> Option<String> {
    use std::io::Read;
    let mut buf = vec![0; 4096];
    let n = std::fs::File::open("/proc/self/stat")
        .ok()?
        .read(&mut buf)
        .ok()?;
    buf.truncate(n);
    String::from_utf8(buf).ok()
}

/// Field `n` (1-based, as in `proc_pid_stat(5)`, from 3 on) of `stat`, a `/proc/self/stat`.
fn stat_field(stat: &str, n: usize) -> Option<u64> {
    // Field 2, the command name in parentheses, may hold spaces: count from after it.
    let after_comm = &stat[stat.rfind(')')? + 1..];
    after_comm
        .split_whitespace()
        .nth(n.checked_sub(3)?)?
        .parse()
        .ok()
}

/// [`since_exec`] in milliseconds, 0 when unknown (for log fields).
pub fn since_exec_ms() -> u64 {
    since_exec().map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
