//! Guest-side DRBD 9 driver for the lab: bring-up, status, role changes and events through
//! drbd-nl's DRBD 9 API (`drbd_nl::v9`); `drbdmeta create-md` (not netlink) is the only tool it
//! starts, and DRBD 9's `drbdsetup` only as the baseline in `bench`.
//!
//! ```text
//! drbd9-lab up RES NODE_ID MINOR DISK PEER_ID PEER_NAME LOCAL PEER [--create-md]
//!                                        drbdadm up's steps (new-resource .. connect)
//! drbd9-lab new-uuid MINOR | down RES    new-current-uuid --clear-bitmap, down
//! drbd9-lab status [RES]                 one line per object (events2 style: resource, device,
//!                                        connection, peer-device, path)
//! drbd9-lab primary RES [--force] | secondary RES
//! drbd9-lab events SECONDS [--now]       print events for SECONDS (--now: snapshot first)
//! drbd9-lab bench RES N                  N promote/demote cycles by drbd-nl, then by drbdsetup
//!                                        spawned; `BENCH-JSON {..}` on stdout
//! ```
//! Errors print `ERROR <Kind> <CODE_NAME>: <text>` and exit 1, as `drbd-lab` does.

use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use drbd_nl::v9::{
    Connection, Device, Drbd9Handle, Event, Object, Path, PeerDevice, Primary9, Request9, Resource,
    Secondary9,
};
use drbd_nl::DrbdError;
use futures::StreamExt;
use lab::drbd::stats;

fn usage() -> ! {
    eprintln!(
        "{}",
        include_str!("drbd9-lab.rs")
            .lines()
            .skip(5)
            .take(11)
            .collect::<Vec<_>>()
            .join("\n")
    );
    std::process::exit(2)
}

fn num(s: &str) -> Result<u32> {
    s.parse().map_err(|_| anyhow!("{s:?}: not a number"))
}

fn report(e: &DrbdError) -> String {
    match e {
        DrbdError::Kernel { code, .. } => format!("ERROR Kernel {}: {e}", code.name()),
        DrbdError::StateChange { code, .. } => format!("ERROR StateChange {}: {e}", code.name()),
        other => format!("ERROR Other -: {other}"),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tokio: {e}");
            std::process::exit(1)
        }
    };
    if let Err(e) = rt.block_on(run(&args)) {
        match e.downcast_ref::<DrbdError>() {
            Some(d) => println!("{}", report(d)),
            None => println!("ERROR Other -: {e:#}"),
        }
        std::process::exit(1)
    }
}

fn resource_line(r: &Resource) -> String {
    format!(
        "resource name:{} role:{} suspended:{}",
        r.name,
        r.role,
        if r.suspended() { "yes" } else { "no" }
    )
}

fn device_line(d: &Device) -> String {
    format!(
        "device name:{} volume:{} minor:{} disk:{} quorum:{} open:{}",
        d.resource,
        d.volume,
        d.minor.map_or("-".into(), |m| m.to_string()),
        d.disk,
        yes(d.quorum),
        yes(d.open)
    )
}

fn connection_line(c: &Connection) -> String {
    format!(
        "connection name:{} peer-node-id:{} conn-name:{} connection:{} role:{}",
        c.resource,
        c.peer_node_id,
        c.name.as_deref().unwrap_or("-"),
        c.state,
        c.peer_role
    )
}

fn peer_device_line(p: &PeerDevice) -> String {
    format!(
        "peer-device name:{} peer-node-id:{} volume:{} replication:{} peer-disk:{}",
        p.resource, p.peer_node_id, p.volume, p.replication, p.peer_disk
    )
}

fn path_line(p: &Path) -> String {
    let a = |s: &Option<drbd_nl::SockAddr>| s.map_or("-".into(), |a| a.to_string());
    format!(
        "path name:{} peer-node-id:{} local:{} peer:{} established:{}",
        p.resource,
        p.peer_node_id,
        a(&p.local),
        a(&p.peer),
        yes(p.established)
    )
}

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

fn event_line(e: &Event) -> String {
    let what = match &e.object {
        Object::Resource(r) => resource_line(r),
        Object::Device(d) => device_line(d),
        Object::Connection(c) => connection_line(c),
        Object::PeerDevice(p) => peer_device_line(p),
        Object::Path(p) => path_line(p),
        Object::Helper { name, status } => format!("helper name:{name} status:{status}"),
        Object::InitialStateDone => "-".into(),
        other => format!("{other:?}"),
    };
    format!("{} {what}", format!("{:?}", e.notify).to_lowercase())
}

async fn run(args: &[String]) -> Result<()> {
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or_else(|| usage());
    let cmd = arg(0);
    let h = Drbd9Handle::connect().await?;
    match cmd {
        "status" => {
            let res = args.get(1).map(String::as_str);
            for r in h.resources(res).await? {
                println!("{}", resource_line(&r));
            }
            for d in h.devices(res).await? {
                println!("{}", device_line(&d));
            }
            for c in h.connections(res).await? {
                println!("{}", connection_line(&c));
            }
            for p in h.peer_devices(res).await? {
                println!("{}", peer_device_line(&p));
            }
            for p in h.paths(res).await? {
                println!("{}", path_line(&p));
            }
        }
        "up" => {
            let (res, minor, disk) = (arg(1), num(arg(3))?, arg(4));
            let (me, peer) = (num(arg(2))?, num(arg(5))?);
            let (local, remote) = (arg(7).parse()?, arg(8).parse()?);
            if args.iter().any(|a| a == "--create-md") {
                // Meta-data creation is not netlink: drbdmeta, with one peer slot.
                let st = std::process::Command::new("drbdmeta")
                    .args([
                        "--force",
                        &minor.to_string(),
                        "v09",
                        disk,
                        "internal",
                        "create-md",
                        "1",
                    ])
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .status()?;
                anyhow::ensure!(st.success(), "drbdmeta create-md: {st}");
            }
            for r in [
                Request9::new_resource(res, me),
                Request9::new_minor(res, minor, 0),
                Request9::new_peer(res, peer, arg(6), Some(1)),
                Request9::new_path(res, peer, local, remote),
                Request9::attach(minor, disk),
                Request9::connect(res, peer),
            ] {
                h.execute(r).await?;
            }
            println!("OK");
        }
        "new-uuid" => {
            h.execute(Request9::new_current_uuid(num(arg(1))?, true))
                .await?;
            println!("OK");
        }
        "down" => {
            h.execute(Request9::down(arg(1))).await?;
            println!("OK");
        }
        "primary" => {
            let force = args.iter().any(|a| a == "--force");
            h.execute(Primary9::new(arg(1)).force(force)).await?;
            println!("OK");
        }
        "secondary" => {
            h.execute(Secondary9::new(arg(1))).await?;
            println!("OK");
        }
        "events" => {
            let secs: u64 = arg(1).parse().map_err(|_| anyhow!("SECONDS: a number"))?;
            let mut stream = h.events().await?;
            println!("OK listening");
            if args.iter().any(|a| a == "--now") {
                for e in h.initial_state(None).await? {
                    println!("{}", event_line(&e));
                }
            }
            let end = tokio::time::Instant::now() + Duration::from_secs(secs);
            while let Ok(Some(item)) = tokio::time::timeout_at(end, stream.next()).await {
                match item {
                    Ok(e) => println!("{}", event_line(&e)),
                    Err(e) => println!("ERROR event: {e}"),
                }
            }
        }
        "bench" => bench(&h, arg(1), arg(2).parse()?).await?,
        _ => usage(),
    }
    Ok(())
}

/// `n` promote/demote cycles through drbd-nl, then `n` through DRBD 9's `drbdsetup` spawned
/// (the classic path), each step timed; prints `BENCH-JSON {..}`.
async fn bench(h: &Drbd9Handle, res: &str, n: usize) -> Result<()> {
    let ms = |t: Instant| t.elapsed().as_secs_f64() * 1000.0;
    let (mut nl_pri, mut nl_sec, mut nl_cycle) = (vec![], vec![], vec![]);
    for _ in 0..n {
        let t = Instant::now();
        h.execute(Primary9::new(res)).await?;
        nl_pri.push(ms(t));
        let t2 = Instant::now();
        h.execute(Secondary9::new(res)).await?;
        nl_sec.push(ms(t2));
        nl_cycle.push(ms(t));
    }
    let spawn = |verb: &str| -> Result<()> {
        let st = std::process::Command::new("drbdsetup")
            .args([verb, res])
            .status()?;
        anyhow::ensure!(st.success(), "drbdsetup {verb} {res}: {st}");
        Ok(())
    };
    let (mut sp_pri, mut sp_sec, mut sp_cycle) = (vec![], vec![], vec![]);
    for _ in 0..n {
        let t = Instant::now();
        spawn("primary")?;
        sp_pri.push(ms(t));
        let t2 = Instant::now();
        spawn("secondary")?;
        sp_sec.push(ms(t2));
        sp_cycle.push(ms(t));
    }
    let nl_c = stats(nl_cycle);
    let sp_c = stats(sp_cycle);
    let ratio = sp_c["median_ms"].as_f64().unwrap_or(f64::NAN)
        / nl_c["median_ms"].as_f64().unwrap_or(f64::NAN);
    let v = serde_json::json!({
        "n": n,
        "drbd_nl": {"primary": stats(nl_pri), "secondary": stats(nl_sec), "cycle": nl_c},
        "drbdsetup_9_spawned": {"primary": stats(sp_pri), "secondary": stats(sp_sec), "cycle": sp_c},
        "ratio_cycle_median": ratio,
    });
    println!("BENCH-JSON {v}");
    Ok(())
}
