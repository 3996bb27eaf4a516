//! `iscsi-ha`: the daemon and its CLI. Argument parsing and dispatch only; the work is in the
//! `agent` library.
use std::path::PathBuf;
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
    /// Control socket (default: the one named in the configuration).
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
        /// the CLI and the role sources; changes nothing on the machine).
        #[arg(long)]
        simulate: bool,
    },
    /// Show the agent's view.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Make this node primary (role source `command`); refused while the peer is Primary.
    Promote {
        /// Also promote without the peer when DRBD has not been Connected since attach (this
        /// node's data may be older than the peer's); with role source `pool-conf` this only
        /// lifts that wait.
        #[arg(long)]
        degraded: bool,
    },
    /// Show this node's DRBD data generations and the manual split-brain recovery; exits
    /// non-zero while DRBD reports a split brain.
    SplitBrain,
    /// Make this node secondary (role source `command`).
    Demote,
    /// Follow transitions, alarms, refusals and health changes as JSON lines, until the agent
    /// stops (no polling: the agent pushes them).
    Events,
    /// Read the configuration file again (as SIGHUP does): settings read at each use are
    /// applied; a change to what is served is refused and the running configuration kept.
    Reload,
    /// Freeze: observe and report, change nothing.
    Maintenance {
        /// on or off.
        state: OnOff,
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
        /// start, stop, monitor, promote, demote, notify, validate-all, reload-agent, meta-data.
        action: Option<String>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum OnOff {
    On,
    Off,
}

fn main() -> ExitCode {
    if agent::ocf::invoked_as_agent() {
        return ExitCode::from(agent::ocf::main(std::env::args().nth(1).as_deref(), None));
    }
    let cli = Cli::parse();
    if let Cmd::Ocf { action } = &cli.cmd {
        return ExitCode::from(agent::ocf::main(action.as_deref(), Some(&cli.config)));
    }
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("iscsi-ha: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn socket_path(cli: &Cli) -> anyhow::Result<PathBuf> {
    if let Some(s) = &cli.socket {
        return Ok(s.clone());
    }
    let cfg = Config::load(&cli.config)?;
    Ok(cfg.sockets.control)
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    match &cli.cmd {
        Cmd::CheckConfig { file } => {
            let path = file.clone().unwrap_or_else(|| cli.config.clone());
            let report = agent::config::check::report(&path)?;
            print!("{}", report.summary);
            let tgt_conf = std::path::Path::new(agent::backend::target::TGT_CONF);
            for w in agent::backend::target::tgt_config_overlaps(&report.config, tgt_conf) {
                println!("warning: {w}");
            }
            println!("\n{}", report.effective);
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Ocf { .. } => Ok(ExitCode::SUCCESS), // handled in main
        Cmd::Import(args) => {
            agent::import::files::run(args)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Status { json } => {
            let path = socket_path(&cli)?;
            let resp = rt.block_on(control::request(&path, Request::Status))?;
            match (&resp.status, json) {
                (Some(s), true) => println!("{}", serde_json::to_string_pretty(s)?),
                (Some(s), false) => print!("{}", s.render()),
                (None, _) => println!("{}", resp.message),
            }
            Ok(if resp.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Cmd::Events => {
            let path = socket_path(&cli)?;
            let started = || eprintln!("iscsi-ha: following events at {}", path.display());
            rt.block_on(agent::events::follow(&path, started, |line| {
                use std::io::Write;
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{line}");
                let _ = out.flush();
            }))?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Promote { .. }
        | Cmd::Demote
        | Cmd::Maintenance { .. }
        | Cmd::SplitBrain
        | Cmd::Reload => {
            let req = match &cli.cmd {
                Cmd::Promote { degraded: false } => Request::Promote,
                Cmd::Promote { degraded: true } => Request::PromoteDegraded,
                Cmd::SplitBrain => Request::SplitBrain,
                Cmd::Demote => Request::Demote,
                Cmd::Reload => Request::Reload,
                Cmd::Maintenance { state } => Request::Maintenance {
                    on: matches!(state, OnOff::On),
                },
                _ => Request::Status,
            };
            let path = socket_path(&cli)?;
            let resp = rt.block_on(control::request(&path, req))?;
            println!("{}", resp.message);
            Ok(if resp.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Cmd::Daemon { simulate } => {
            agent::logs::init();
            let cfg = Arc::new(Config::load(&cli.config)?);
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
