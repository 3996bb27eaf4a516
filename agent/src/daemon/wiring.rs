//! The daemon's tasks: the backends over the real subsystems (or in memory), their watches, the
//! role source, the control socket, alerts and metrics, all feeding one [`Daemon`] loop until
//! SIGTERM or Ctrl-C. `iscsi-ha daemon` only parses its arguments and calls [`real`] or
//! [`simulated`].

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

use super::follow::Follow;
use super::Daemon;
use crate::backend::drbd9::AnyDrbd;
#[cfg(feature = "simulate")]
use crate::backend::memory::Memory;
use crate::backend::target::TgtTarget;
use crate::backend::vip::NetlinkAddress;
use crate::backend::{Address, Drbd, Target};
use crate::config::{Config, RoleSource};
use crate::control::ControlServer;
use crate::executor::Executor;
use crate::fsm::Event;
use crate::peer_link::{HeldMonitor, PeerLink};
use crate::role::pool_conf::PoolConfWatch;

/// The daemon over the real subsystems: DRBD (netlink), tgtd (its socket), addresses (rtnetlink).
pub async fn real(cfg: Arc<Config>, socket: PathBuf) -> anyhow::Result<()> {
    let (ev_tx, ev_rx) = tokio::sync::mpsc::unbounded_channel();
    // before anything is touched (AnyDrbd::check_config checks it again, on reload too)
    if let Err((key, why)) = cfg.check_devices() {
        anyhow::bail!("config: {key}: {why}");
    }
    let drbd = AnyDrbd::connect().await.context("DRBD netlink family")?;
    tracing::info!(
        drbd = drbd.version(),
        since_exec_ms = crate::logs::since_exec_ms(),
        "DRBD netlink API"
    );
    drbd.check_config(&cfg).context("config")?;
    let timeout = std::time::Duration::from_millis(cfg.timeouts.tgtd_ms);
    for w in crate::backend::own_config_warnings(&cfg) {
        tracing::warn!("{w}");
    }
    let target = TgtTarget::new(&cfg.sockets.tgtd, timeout);
    let mut address = NetlinkAddress::new(&cfg).context("floating addresses")?;
    if let Some(t) = &cfg.tickle {
        // An optional feature: a listen address not up yet is retried, never fatal.
        // Kept beside the control socket (the unit's RuntimeDirectory): a restart between the
        // peer's handover and the claim still tickles what was handed over.
        let kept = crate::runfile::dir_beside(&socket).map(|d| d.join("tickle-learnt.json"));
        let mut link = PeerLink::unbound(t, &cfg.node);
        if let Some(f) = &t.secret_file {
            let secret = crate::config::read_tickle_secret(f).map_err(|why| {
                anyhow::anyhow!("config: tickle.secret_file {}: {why}", f.display())
            })?;
            let key = crate::peer_link::LinkKey::new(&secret).map_err(anyhow::Error::msg)?;
            link = link.keyed(key);
        }
        if let Some(path) = kept {
            link = link.remembering(path);
        }
        let link = Arc::new(link);
        tracing::info!(listen = %t.listen, peer = %t.peer, sync_ms = t.sync_ms,
            authenticated = t.secret_file.is_some(), "tickle peer link");
        let run = link.clone();
        tokio::spawn(async move {
            run.bind_retrying().await;
            tokio::join!(run.receive(), run.sync());
        });
        address = address.with_tickle(link);
    }
    let address = Arc::new(address);
    // The watches and address handles follow each reload.
    let follow = Follow::new(cfg.clone(), Some(address.clone()));
    {
        let (drbd, feed, tx) = (drbd.clone(), follow.feed(), ev_tx.clone());
        tokio::spawn(async move {
            if let Err(e) = drbd.watch(feed, tx).await {
                tracing::error!(error = %e, "DRBD event watch ended");
            }
        });
    }
    {
        let (target, feed, tx) = (target.clone(), follow.feed(), ev_tx.clone());
        tokio::spawn(async move {
            if let Err(e) = target.watch(feed, tx).await {
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
    let metrics = crate::metrics::start(follow.feed(), drbd.clone()).await?;
    let staged = target.clone();
    let exec = Executor::new(cfg.clone(), drbd, target, address);
    let maintenance = super::maintenance::path_in(&cfg.state_dir);
    let places = Places {
        socket,
        kept: Some(maintenance.clone()),
    };
    let ended = serve(cfg, places, exec, ev_tx, ev_rx, metrics, follow).await;
    // A stopped agent leaves tgtd as it serves, without targets staged for a promote it will
    // not make (tgt's own tools or another manager may want their tids); in maintenance it
    // changes nothing, this included.
    if !maintenance.exists() {
        staged.unstage().await;
    }
    ended
}

/// The daemon over in-memory backends (`--simulate`).
#[cfg(feature = "simulate")]
pub async fn simulated(cfg: Arc<Config>, socket: PathBuf) -> anyhow::Result<()> {
    let (ev_tx, ev_rx) = tokio::sync::mpsc::unbounded_channel();
    let mem = Memory::healthy_secondary(&cfg).with_events(ev_tx.clone());
    // As status says: `[tickle]` is configured but no link runs.
    mem.world().no_peer_link = true;
    // In-memory backends follow the config by themselves; the metrics endpoint follows it.
    let follow = Follow::new(cfg.clone(), None);
    let metrics = crate::metrics::start(follow.feed(), mem.clone()).await?;
    let exec = Executor::new(cfg.clone(), mem.clone(), mem.clone(), mem);
    // Beside its own control socket, never the state_dir a real agent on this host keeps.
    let kept = crate::runfile::dir_beside(&socket).map(|d| d.join(super::maintenance::FILE));
    let places = Places { socket, kept };
    serve(cfg, places, exec, ev_tx, ev_rx, metrics, follow).await
}

/// Where a daemon answers and keeps its maintenance switch.
struct Places {
    socket: PathBuf,
    kept: Option<PathBuf>,
}

async fn serve<D: Drbd, T: Target, A: Address>(
    cfg: Arc<Config>,
    Places { socket, kept }: Places,
    exec: Executor<D, T, A>,
    ev_tx: UnboundedSender<Event>,
    ev_rx: UnboundedReceiver<Event>,
    metrics: Option<Arc<crate::metrics::Metrics>>,
    follow: Follow,
) -> anyhow::Result<()> {
    let (ctl_tx, ctl_rx) = tokio::sync::mpsc::channel(16);
    let bus = crate::events::EventBus::default();
    let server = ControlServer::bind(&socket)?.with_events(bus.clone());
    if let Some(e) = &cfg.alerts.email {
        let mailer = crate::alerts::Mailer::new(e)?;
        tokio::spawn(mailer.run(bus.subscribe()));
        tracing::info!(server = %e.server, to = e.to.join(", "), "mail alerts on");
    }
    tracing::info!(
        socket = %socket.display(),
        node = %cfg.node,
        since_exec_ms = crate::logs::since_exec_ms(),
        "control socket ready"
    );
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
    crate::control::forward_sighup(ctl_tx.clone())?;
    tokio::spawn(async move {
        if let Err(e) = server.serve(ctl_tx).await {
            tracing::error!(error = %e, "control socket ended");
        }
    });
    let link = follow.peer_link().cloned();
    let mut d = Daemon::new(exec)
        .following(follow)
        .with_monitor(crate::events::EventsMonitor::new(bus));
    if let Some(path) = kept {
        d = d.keeping_maintenance(path);
    }
    if let Some(m) = metrics {
        d = d.with_monitor(crate::metrics::MetricsMonitor(m));
    }
    if let Some(link) = link {
        // The sender syncs while this node holds an address.
        d = d.with_monitor(HeldMonitor(link));
    }
    // Last: READY goes out once the other monitors have seen the first observation.
    let d = d.with_monitor(crate::notify::Notify::from_env());
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = d.run(ev_rx, ctl_rx) => {}
        _ = tokio::signal::ctrl_c() => { tracing::info!("interrupted"); }
        _ = term.recv() => { tracing::info!("terminated"); }
    }
    crate::notify::stopping();
    Ok(())
}
