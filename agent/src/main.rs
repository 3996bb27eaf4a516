//! `iscsi-ha`: the daemon and its CLI. Argument parsing and dispatch only; the work is in the
//! `agent` library.
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use agent::backend::drbd9::AnyDrbd;
use agent::backend::memory::Memory;
use agent::backend::target::TgtTarget;
use agent::backend::vip::NetlinkAddress;
use agent::backend::{Address, Drbd, Target};
use agent::config::{Config, RoleSource, DEFAULT_CONFIG};
use agent::control::{self, ControlServer, Request};
use agent::daemon::Daemon;
use agent::executor::Executor;
use agent::fsm::Event;
use agent::role::pool_conf::PoolConfWatch;
use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

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
        return ExitCode::from(agent::ocf::main(std::env::args().nth(1).as_deref()));
    }
    let cli = Cli::parse();
    if let Cmd::Ocf { action } = &cli.cmd {
        return ExitCode::from(agent::ocf::main(action.as_deref()));
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
            let cfg = Config::load(&path)?;
            // Reads the SMTP credentials file too: a wide mode is refused here already.
            if let Some(e) = &cfg.alerts.email {
                agent::alerts::Mailer::new(e)?;
            }
            // CHAP secrets files: mode and every user's secret checked, nothing printed
            for r in &cfg.resources {
                if let Some(c) = &r.target.chap {
                    agent::chap::accounts(c)?;
                }
            }
            println!(
                "{}: ok ({} resource(s), {} address(es))",
                path.display(),
                cfg.resources.len(),
                cfg.addresses.len()
            );
            // must print the same on both nodes
            for r in &cfg.resources {
                for l in &r.luns {
                    println!("resource {} lun {}: cache {}", r.name, l.lun, l.cache);
                }
            }
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
        Cmd::Promote { .. } | Cmd::Demote | Cmd::Maintenance { .. } | Cmd::SplitBrain => {
            let req = match &cli.cmd {
                Cmd::Promote { degraded: false } => Request::Promote,
                Cmd::Promote { degraded: true } => Request::PromoteDegraded,
                Cmd::SplitBrain => Request::SplitBrain,
                Cmd::Demote => Request::Demote,
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
                rt.block_on(simulated(cfg, socket))?;
            } else {
                rt.block_on(real(cfg, socket))?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The daemon over the real subsystems: DRBD (netlink), tgtd (its socket), addresses (rtnetlink).
async fn real(cfg: Arc<Config>, socket: PathBuf) -> anyhow::Result<()> {
    let (ev_tx, ev_rx) = tokio::sync::mpsc::unbounded_channel();
    let drbd = AnyDrbd::connect().await.context("DRBD netlink family")?;
    tracing::info!(drbd = drbd.version(), "DRBD netlink API");
    drbd.check_config(&cfg).context("config")?;
    let timeout = std::time::Duration::from_millis(cfg.timeouts.tgtd_ms);
    let target = TgtTarget::new(&cfg.sockets.tgtd, timeout);
    let address = Arc::new(NetlinkAddress::new(&cfg).context("floating addresses")?);
    {
        let (drbd, cfg, tx) = (drbd.clone(), cfg.clone(), ev_tx.clone());
        tokio::spawn(async move {
            if let Err(e) = drbd.watch(&cfg, tx).await {
                tracing::error!(error = %e, "DRBD event watch ended");
            }
        });
    }
    {
        let (target, cfg, tx) = (target.clone(), cfg.clone(), ev_tx.clone());
        tokio::spawn(async move {
            if let Err(e) = target.watch(&cfg, tx).await {
                tracing::error!(error = %e, "tgtd watch ended");
            }
        });
    }
    {
        let (address, tx) = (address.clone(), ev_tx.clone());
        tokio::spawn(async move {
            if let Err(e) = address.watch(tx).await {
                tracing::error!(error = %e, "address watch ended");
            }
        });
    }
    let metrics = agent::metrics::start(&cfg, drbd.clone()).await?;
    let exec = Executor::new(cfg.clone(), drbd, target, address);
    serve(cfg, socket, exec, ev_tx, ev_rx, metrics).await
}

/// The daemon over in-memory backends (`--simulate`).
async fn simulated(cfg: Arc<Config>, socket: PathBuf) -> anyhow::Result<()> {
    let (ev_tx, ev_rx) = tokio::sync::mpsc::unbounded_channel();
    let mem = Memory::healthy_secondary(&cfg).with_events(ev_tx.clone());
    let metrics = agent::metrics::start(&cfg, mem.clone()).await?;
    let exec = Executor::new(cfg.clone(), mem.clone(), mem.clone(), mem);
    serve(cfg, socket, exec, ev_tx, ev_rx, metrics).await
}

async fn serve<D: Drbd, T: Target, A: Address>(
    cfg: Arc<Config>,
    socket: PathBuf,
    exec: Executor<D, T, A>,
    ev_tx: UnboundedSender<Event>,
    ev_rx: UnboundedReceiver<Event>,
    metrics: Option<Arc<agent::metrics::Metrics>>,
) -> anyhow::Result<()> {
    let (ctl_tx, ctl_rx) = tokio::sync::mpsc::channel(16);
    let bus = agent::events::EventBus::default();
    let server = ControlServer::bind(&socket)?.with_events(bus.clone());
    if let Some(e) = &cfg.alerts.email {
        let mailer = agent::alerts::Mailer::new(e)?;
        tokio::spawn(mailer.run(bus.subscribe()));
        tracing::info!(server = %e.server, to = e.to.join(", "), "mail alerts on");
    }
    tracing::info!(socket = %socket.display(), node = %cfg.node, "control socket ready");
    if let RoleSource::PoolConf { path } = &cfg.role {
        let watch = PoolConfWatch::new(path)?;
        let tx = ev_tx.clone();
        tokio::spawn(async move {
            if let Err(e) = watch.run(tx).await {
                tracing::error!(error = %e, "pool.conf watch ended");
            }
        });
    }
    drop(ev_tx);
    tokio::spawn(async move {
        if let Err(e) = server.serve(ctl_tx).await {
            tracing::error!(error = %e, "control socket ended");
        }
    });
    let mut d = Daemon::new(exec).with_monitor(agent::events::EventsMonitor::new(bus));
    if let Some(m) = metrics {
        d = d.with_monitor(agent::metrics::MetricsMonitor(m));
    }
    // Last: READY goes out once the other monitors have seen the first observation.
    let d = d.with_monitor(agent::notify::Notify::from_env());
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = d.run(ev_rx, ctl_rx) => {}
        _ = tokio::signal::ctrl_c() => { tracing::info!("interrupted"); }
        _ = term.recv() => { tracing::info!("terminated"); }
    }
    agent::notify::stopping();
    Ok(())
}
