//! `iscsi-ha`: the daemon and its CLI. Argument parsing and dispatch only; the work is in the
//! `agent` library.
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use agent::config::{Config, DEFAULT_CONFIG};
use agent::control::{self, Request};
use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "iscsi-ha",
    version,
    about = "HA iSCSI target agent: DRBD + tgtd + floating address"
)]
struct Cli {
    /// Configuration file.
    #[arg(short, long, global = true, default_value = DEFAULT_CONFIG)]
    config: PathBuf,
    /// Control socket of the commands that talk to the running agent (status, promote, demote,
    /// split-brain, events, reload, maintenance), and the one the daemon listens on; default:
    /// the one named in the configuration. Import, check-config and ocf do not use it. One
    /// daemon runs per configuration file, whatever its socket.
    #[arg(short, long, global = true)]
    socket: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the agent.
    Daemon {
        /// Drive in-memory simulated backends instead of DRBD, tgtd and addresses (for trying
        /// the CLI and the role sources; changes nothing on the machine: its maintenance switch
        /// is kept beside its control socket, not in state_dir).
        #[arg(long)]
        simulate: bool,
    },
    /// Show the agent's view.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        wait: Wait,
    },
    /// Make this node primary (role source `command`). While the peer shows DRBD Primary, DRBD
    /// itself is asked and refuses a live Primary peer (then retried at DRBD's next event); a
    /// dead one is declared lost after DRBD's ping-timeout and the promote goes on.
    Promote {
        /// Also promote without the peer when DRBD has not been Connected since attach (this
        /// node's data may be older than the peer's); with role source `pool-conf` this only
        /// lifts that wait.
        #[arg(long)]
        degraded: bool,
        #[command(flatten)]
        wait: Wait,
    },
    /// Show this node's DRBD data generations and the manual split-brain recovery; exits
    /// non-zero while DRBD reports a split brain.
    SplitBrain {
        #[command(flatten)]
        wait: Wait,
    },
    /// Make this node secondary (role source `command`).
    Demote {
        #[command(flatten)]
        wait: Wait,
    },
    /// Follow transitions, alarms, refusals and health changes as JSON lines, until the agent
    /// stops (no polling: the agent pushes them). --timeout bounds the wait for the agent's
    /// first answer only.
    Events {
        #[command(flatten)]
        wait: Wait,
    },
    /// Read the configuration file again (as SIGHUP does) and apply it as a difference: added
    /// resources and addresses are brought in, removed ones demoted and released, changed ones
    /// replaced, unchanged ones untouched. A file that does not validate, or a change that cannot
    /// be made live (e.g. a DRBD minor under an up device), is refused with the reason in status
    /// and the running configuration kept.
    Reload {
        #[command(flatten)]
        wait: Wait,
    },
    /// Freeze: observe and report, change nothing. Kept across restarts and reboots (in
    /// state_dir) until `maintenance off`.
    Maintenance {
        /// on or off.
        state: OnOff,
        #[command(flatten)]
        wait: Wait,
    },
    /// Write this agent's configuration from an iSCSI-HA setup (iscsi-ha.conf, tgt's
    /// targets.conf, drbd.conf), listing every setting that has no equivalent.
    Import(agent::import::files::ImportArgs),
    /// Parse and validate a configuration file.
    CheckConfig {
        /// The file (default: --config).
        file: Option<PathBuf>,
    },
    /// Act as a Pacemaker OCF resource agent (also when run as
    /// /usr/lib/ocf/resource.d/iscsi-ha/iscsi-ha); parameters from OCF_RESKEY_*.
    Ocf {
        /// start, stop, monitor, promote, demote, notify, validate-all, reload-agent, meta-data;
        /// or, by hand, allow-degraded (Pacemaker's next promote of this node may go ahead
        /// without the peer, for 10 min; --revoke undoes it).
        action: Option<String>,
        /// allow-degraded only: `[--revoke] [RESOURCE]...` (default: every resource).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

/// How long a command waits for the running agent's answer.
#[derive(Clone, Copy, clap::Args)]
struct Wait {
    /// Give up when the agent has not answered within SECONDS (it is stopped, stuck, or busy
    /// with a long transition; a request it takes later is still carried out). Default: what
    /// the request may take within the configuration's `[timeouts]`, plus 5 s: status 10 s with
    /// the default timeouts, promote, demote and reload the longest their transition may take.
    #[arg(long, value_name = "SECONDS",
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    timeout: Option<u64>,
}

impl Wait {
    /// The wait for the answer to `req`: `--timeout`, else [`control::answer_bound`] with the
    /// configuration file's timeouts (the defaults when it does not load).
    fn bound(self, cli: &Cli, req: Request) -> std::time::Duration {
        match self.timeout {
            Some(s) => std::time::Duration::from_secs(s),
            None => {
                let cfg = Config::load(&cli.config).ok();
                control::answer_bound(req, cfg.as_ref())
            }
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum OnOff {
    On,
    Off,
}

fn main() -> ExitCode {
    if agent::ocf::invoked_as_agent() {
        let args: Vec<String> = std::env::args().skip(2).collect();
        return ExitCode::from(agent::ocf::main(
            std::env::args().nth(1).as_deref(),
            &args,
            None,
        ));
    }
    let cli = Cli::parse();
    if let Cmd::Ocf { action, args } = &cli.cmd {
        return ExitCode::from(agent::ocf::main(action.as_deref(), args, Some(&cli.config)));
    }
    match run(cli) {
        Ok(code) => code,
        // The reader left (`| head`): stop quietly, with the status a SIGPIPE death gives.
        Err(e) if e.is::<StdoutClosed>() || stdout_gone(&e) => ExitCode::from(141),
        Err(e) => {
            note(format_args!("{}", agent::report(e.as_ref())));
            ExitCode::FAILURE
        }
    }
}

/// A lock held by the daemon while it runs: an abstract Unix socket named after `what` and a
/// path (a hash of it), bound once per network namespace; the kernel drops it with the process.
/// Taken for the config file's canonical path (a second daemon of the same config, on another
/// `--socket` say, would act on the same DRBD resources, target and addresses; unlike a lock on
/// the file, an editor's atomic save keeps it) and for `state_dir` (two daemons would share one
/// maintenance switch). `path` is canonical when it exists (the daemon makes `state_dir`
/// first), else taken as written.
fn lock(what: &str, path: &Path, taken: &str) -> anyhow::Result<std::os::unix::net::UnixListener> {
    use sha2::Digest;
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::net::{SocketAddr, UnixListener};
    // A trailing slash or `.` names the same directory.
    let canon = std::fs::canonicalize(path).unwrap_or_else(|_| path.components().collect());
    let digest = sha2::Sha256::digest(canon.as_os_str().as_bytes());
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    let addr = SocketAddr::from_abstract_name(format!("iscsi-ha-{what}-{hex}").as_bytes())
        .context("lock name")?;
    UnixListener::bind_addr(&addr).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            anyhow::anyhow!("{}: {taken}", canon.display())
        } else {
            anyhow::anyhow!("{}: the daemon's lock: {e}", canon.display())
        }
    })
}

/// An error caused by the reader of standard output leaving (`import`'s TOML to a closed pipe).
fn stdout_gone(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Standard output was closed by its reader (EPIPE).
#[derive(Debug, thiserror::Error)]
#[error("standard output closed")]
struct StdoutClosed;

/// Write to standard output; EPIPE becomes [`StdoutClosed`], never a panic.
fn emit(args: std::fmt::Arguments) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_fmt(args).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(StdoutClosed.into()),
        Err(e) => Err(anyhow::Error::new(e).context("writing to standard output")),
    }
}

/// A line on standard error, prefixed; a closed standard error is ignored (never a panic).
fn note(args: std::fmt::Arguments) {
    let _ = writeln!(std::io::stderr().lock(), "iscsi-ha: {args}");
}

/// The control socket of a client command: `--socket`, else the one the config file names.
/// A file that does not load still names its socket when `[sockets] control` can be read
/// ([`socket_named_in`]); one that names none means the default socket. A file that cannot be
/// read at all means the default socket only when it is the default file: a command meant for
/// another configuration's daemon never reaches the default one's.
fn socket_path(cli: &Cli) -> anyhow::Result<PathBuf> {
    if let Some(s) = &cli.socket {
        return Ok(s.clone());
    }
    let default = PathBuf::from(agent::config::DEFAULT_CONTROL_SOCKET);
    let named = match Config::load(&cli.config) {
        Ok(cfg) => cfg.sockets.control,
        Err(e) => {
            let unread = matches!(e, agent::AgentError::ConfigRead { .. });
            if unread && cli.config != Path::new(agent::config::DEFAULT_CONFIG) {
                anyhow::bail!(
                    "{}; name the agent's control socket with --socket",
                    agent::report(&e)
                );
            }
            let named = socket_named_in(&cli.config);
            let using = named.as_deref().unwrap_or(&default);
            note(format_args!(
                "the configuration does not load ({}); using control socket {}",
                agent::report(&e),
                using.display()
            ));
            named.unwrap_or_else(|| default.clone())
        }
    };
    if named != default && !named.exists() && default.exists() {
        // Not used in its place: it may be another configuration's daemon.
        note(format_args!(
            "{} does not exist; a daemon listens on the default control socket {}: if it runs \
             this configuration (started before [sockets] control changed), use --socket {}",
            named.display(),
            default.display(),
            default.display()
        ));
    }
    Ok(named)
}

/// `[sockets] control` of a file that may not validate: read as a plain TOML table, or, when
/// a syntax error elsewhere stops that, the `control = "..."` line of `[sockets]` alone.
fn socket_named_in(file: &Path) -> Option<PathBuf> {
    let text = std::fs::read_to_string(file).ok()?;
    let control = |t: &toml::Table| Some(PathBuf::from(t.get("control")?.as_str()?));
    if let Ok(table) = text.parse::<toml::Table>() {
        return control(table.get("sockets")?.as_table()?);
    }
    let mut in_sockets = false;
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or_default().trim();
        if line.starts_with('[') {
            in_sockets = line == "[sockets]";
        } else if let Some(path) = in_sockets
            .then(|| line.parse::<toml::Table>().ok())
            .flatten()
            .and_then(|t| control(&t))
        {
            return Some(path);
        }
    }
    None
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    // Built only by the commands that talk or serve (check-config and import need none).
    let runtime = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("tokio runtime")
    };
    match &cli.cmd {
        Cmd::CheckConfig { file } => {
            let path = file.clone().unwrap_or_else(|| cli.config.clone());
            let report = agent::config::check::report(&path)?;
            emit(format_args!("{}", report.summary))?;
            for w in agent::backend::own_config_warnings(&report.config) {
                emit(format_args!("warning: {w}\n"))?;
            }
            let secret = report
                .config
                .tickle
                .as_ref()
                .and_then(|t| t.secret_file.as_ref());
            if let Some(w) = secret.and_then(|f| agent::config::hidden_from_the_unit(f)) {
                emit(format_args!("warning: tickle.secret_file: {w}\n"))?;
            }
            for w in agent::daemon::maintenance::state_dir_warnings(&report.config.state_dir) {
                emit(format_args!("warning: state_dir: {w}\n"))?;
            }
            emit(format_args!("\n{}\n", report.effective))?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Ocf { .. } => Ok(ExitCode::SUCCESS), // handled in main
        Cmd::Import(args) => {
            agent::import::files::run(args)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Status { json, wait } => {
            let path = socket_path(&cli)?;
            let wait = wait.bound(&cli, Request::Status);
            let resp = runtime()?.block_on(control::request(&path, Request::Status, wait))?;
            match (&resp.status, json) {
                (Some(s), true) => emit(format_args!("{}\n", serde_json::to_string_pretty(s)?))?,
                (Some(s), false) => emit(format_args!("{}", s.render()))?,
                (None, _) => emit(format_args!("{}\n", resp.message))?,
            }
            Ok(if resp.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Cmd::Events { wait } => {
            let path = socket_path(&cli)?;
            let wait = wait.bound(&cli, Request::Events);
            let answered = std::cell::Cell::new(false);
            let started = || {
                answered.set(true);
                note(format_args!("following events at {}", path.display()));
            };
            // A failed write (the reader left) ends the follow instead of being ignored.
            let failed = std::cell::RefCell::new(None);
            let stop = tokio::sync::Notify::new();
            let each = |line: &str| {
                if failed.borrow().is_none() {
                    if let Err(e) = emit(format_args!("{line}\n")) {
                        *failed.borrow_mut() = Some(e);
                        stop.notify_one();
                    }
                }
            };
            // The first answer is waited for at most `wait`; the stream after it has no bound.
            let unanswered = async {
                tokio::time::sleep(wait).await;
                if answered.get() {
                    std::future::pending::<()>().await;
                }
            };
            let agent_left = runtime()?.block_on(async {
                tokio::select! {
                    r = agent::events::follow(&path, started, each) => r.map(|()| true),
                    () = stop.notified() => Ok(false),
                    () = unanswered => {
                        let pid = control::listener_pid(&path).await;
                        Err(control::no_answer(&path, wait, pid, true))
                    }
                }
            })?;
            match failed.into_inner() {
                Some(e) => Err(e),
                // A follower (a script's pipe, say) must not take the end for a quiet agent.
                None if agent_left => {
                    note(format_args!(
                        "the agent closed the connection (it stopped or restarted)"
                    ));
                    Ok(ExitCode::FAILURE)
                }
                None => Ok(ExitCode::SUCCESS),
            }
        }
        Cmd::Promote { wait, .. }
        | Cmd::Demote { wait }
        | Cmd::Maintenance { wait, .. }
        | Cmd::SplitBrain { wait }
        | Cmd::Reload { wait } => {
            let req = match &cli.cmd {
                Cmd::Promote {
                    degraded: false, ..
                } => Request::Promote,
                Cmd::Promote { degraded: true, .. } => Request::PromoteDegraded,
                Cmd::SplitBrain { .. } => Request::SplitBrain,
                Cmd::Demote { .. } => Request::Demote,
                Cmd::Reload { .. } => Request::Reload,
                Cmd::Maintenance { state, .. } => Request::Maintenance {
                    on: matches!(state, OnOff::On),
                },
                _ => Request::Status,
            };
            let path = socket_path(&cli)?;
            let wait = wait.bound(&cli, req);
            let resp = runtime()?.block_on(control::request(&path, req, wait))?;
            emit(format_args!("{}\n", resp.message))?;
            Ok(if resp.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Cmd::Daemon { simulate } => {
            let at_main = agent::logs::since_exec_ms();
            let rt = runtime()?;
            agent::logs::init();
            let logging = agent::logs::since_exec_ms();
            let cfg = Arc::new(Config::load(&cli.config)?);
            // One daemon per config file, whatever its control socket (`--socket`): the lock
            // goes with the process.
            let _one = lock(
                "daemon",
                &cli.config,
                "another iscsi-ha daemon runs with this configuration; stop it first",
            )?;
            // One daemon per state_dir (--simulate keeps its switch beside its socket). Made
            // first, so that a link names one lock; one that cannot be made is locked by name.
            let _state = if *simulate {
                None
            } else {
                let _ = agent::daemon::maintenance::make_dir(&cfg.state_dir);
                Some(lock(
                    "state",
                    &cfg.state_dir,
                    "another iscsi-ha daemon keeps its state here (state_dir): give each \
                     configuration its own",
                )?)
            };
            tracing::info!(
                at_main,
                logging,
                since_exec_ms = agent::logs::since_exec_ms(),
                cpu_ms = agent::logs::cpu_ms(),
                "configuration loaded"
            );
            let socket = cli
                .socket
                .clone()
                .unwrap_or_else(|| cfg.sockets.control.clone());
            if *simulate {
                #[cfg(feature = "simulate")]
                rt.block_on(agent::daemon::wiring::simulated(cfg, socket))?;
                #[cfg(not(feature = "simulate"))]
                anyhow::bail!(
                    "--simulate: built without the in-memory backends (feature `simulate`)"
                );
            } else {
                rt.block_on(agent::daemon::wiring::real(cfg, socket))?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
