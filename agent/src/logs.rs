//! Where the daemon's log goes: journald's native protocol (structured fields, one entry per
//! event) when systemd connected stderr to the journal, plain text on stderr elsewhere, without
//! terminal colour codes unless stderr is a terminal. `RUST_LOG` filters (default `info`).
//!
//! systemd sets `JOURNAL_STREAM=<device>:<inode>` to stderr's identity when it connects stderr
//! to the journal (`systemd.exec(5)`); the variable alone is not enough, since a child of such
//! a service inherits it with another stderr.

use std::io::IsTerminal;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

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
    let filter = || EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
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
    tracing_subscriber::fmt()
        .with_env_filter(filter())
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}
