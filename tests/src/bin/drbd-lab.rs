//! Guest-side DRBD driver for the lab: every DRBD step through `drbd-nl`
//! (no drbdsetup on the product path; `drbdsetup-84` only as the baseline in
//! `bench`, and `drbdmeta` for `create-md`, which is not netlink).
//!
//! ```text
//! drbd-lab up RES MINOR DISK LOCAL PEER [--create-md|--apply-al] [--clear-bitmap] [--primary] [--force]
//! drbd-lab wait MINOR CONN_STATE [TIMEOUT_S]      poll until cs:CONN_STATE (e.g. Connected)
//! drbd-lab primary MINOR [--force] | secondary MINOR     (execute_blocking, as the agent)
//! drbd-lab detach MINOR | down RES
//! drbd-lab attach MINOR DISK | connect RES LOCAL PEER | new-uuid MINOR
//! drbd-lab status [--blocking]                     one line per device (drbdsetup-84 events "ST" form)
//! drbd-lab events SECONDS                          print events for SECONDS
//! drbd-lab bench MINOR N                           promote/demote cycles, JSON on stdout
//! drbd-lab capture IFACE SECONDS FILE              raw frames of an nlmon interface
//! ```
//! Errors print `ERROR <Kind> <CODE_NAME>: <text>` and exit 1, so host tests
//! can check the typed error.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use drbd_nl::{
    Attach, ConnState, Connect, Detach, Down, DrbdError, DrbdEvent, DrbdHandle, NewCurrentUuid,
    NewMinor, NewResource, Primary, Role, Secondary, Status,
};
use futures::StreamExt;
use lab::drbd::stats;

fn usage() -> ! {
    eprintln!(
        "{}",
        include_str!("drbd-lab.rs")
            .lines()
            .skip(5)
            .take(10)
            .collect::<Vec<_>>()
            .join("\n")
    );
    std::process::exit(2)
}

fn arg(args: &[String], i: usize) -> &str {
    args.get(i).map(String::as_str).unwrap_or_else(|| usage())
}

fn num(args: &[String], i: usize) -> Result<u32> {
    arg(args, i)
        .parse()
        .with_context(|| format!("argument {i}: not a number"))
}

fn addr(args: &[String], i: usize) -> Result<SocketAddr> {
    arg(args, i)
        .parse()
        .with_context(|| format!("argument {i}: not IP:PORT"))
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
    match rt.block_on(run(&args)) {
        Ok(()) => {}
        Err(e) => {
            match e.downcast_ref::<DrbdError>() {
                Some(d) => println!("{}", report(d)),
                None => println!("ERROR Other -: {e:#}"),
            }
            std::process::exit(1)
        }
    }
}

async fn wait_conn(h: &DrbdHandle, minor: u32, want: ConnState, timeout: Duration) -> Result<()> {
    let t0 = Instant::now();
    loop {
        let devs = h.execute(Status::new().minor(minor)).await?;
        if devs.iter().any(|d| d.state.map(|s| s.conn) == Some(want)) {
            return Ok(());
        }
        if t0.elapsed() > timeout {
            bail!(
                "minor {minor}: timeout waiting for {want}: {:?}",
                devs.first().and_then(|d| d.state)
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn run(args: &[String]) -> Result<()> {
    let cmd = arg(args, 0);
    if cmd == "capture" {
        return capture(arg(args, 1), num(args, 2)?, arg(args, 3));
    }
    let h = DrbdHandle::connect().await?;
    let flag = |f: &str| args.iter().any(|a| a == f);
    match cmd {
        "up" => {
            let (res, minor, disk) = (arg(args, 1), num(args, 2)?, arg(args, 3));
            let (local, peer) = (addr(args, 4)?, addr(args, 5)?);
            if flag("--create-md") {
                // Test-only tool: meta-data creation is not netlink.
                let st = std::process::Command::new("drbdmeta")
                    .args([
                        "--force",
                        &minor.to_string(),
                        "v08",
                        disk,
                        "internal",
                        "create-md",
                    ])
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .status()?;
                if !st.success() {
                    bail!("drbdmeta create-md failed: {st}");
                }
            }
            if flag("--apply-al") {
                // After a power loss: replay the activity log, as `drbdadm up` does (not netlink).
                let st = std::process::Command::new("drbdmeta")
                    .args([&minor.to_string(), "v08", disk, "internal", "apply-al"])
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .status()?;
                if !st.success() {
                    bail!("drbdmeta apply-al failed: {st}");
                }
            }
            h.execute(NewResource::new(res)).await?;
            h.execute(NewMinor::new(res, minor, 0)).await?;
            h.execute(Attach::new(minor, disk)).await?;
            h.execute(Connect::new(res, local, peer)).await?;
            if flag("--clear-bitmap") {
                wait_conn(&h, minor, ConnState::Connected, Duration::from_secs(60)).await?;
                h.execute(NewCurrentUuid::new(minor).clear_bitmap(true))
                    .await?;
            }
            if flag("--primary") {
                h.execute(Primary::new(minor).force(flag("--force")))
                    .await?;
            }
            println!("OK up {res} minor {minor}");
        }
        "wait" => {
            let want: ConnState = arg(args, 2).parse()?;
            let secs = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(60);
            wait_conn(&h, num(args, 1)?, want, Duration::from_secs(secs)).await?;
            println!("OK wait");
        }
        // Role changes as the agent sends them: on a socket and thread of their own.
        "primary" => {
            let primary = Primary::new(num(args, 1)?).force(flag("--force"));
            let h = h.clone();
            tokio::task::spawn_blocking(move || h.execute_blocking(primary)).await??;
            println!("OK primary");
        }
        "secondary" => {
            let secondary = Secondary::new(num(args, 1)?);
            let h = h.clone();
            tokio::task::spawn_blocking(move || h.execute_blocking(secondary)).await??;
            println!("OK secondary");
        }
        "detach" => {
            h.execute(Detach::new(num(args, 1)?)).await?;
            println!("OK detach");
        }
        "attach" => {
            h.execute(Attach::new(num(args, 1)?, arg(args, 2))).await?;
            println!("OK attach");
        }
        "connect" => {
            h.execute(Connect::new(arg(args, 1), addr(args, 2)?, addr(args, 3)?))
                .await?;
            println!("OK connect");
        }
        "new-uuid" => {
            h.execute(NewCurrentUuid::new(num(args, 1)?).clear_bitmap(true))
                .await?;
            println!("OK new-uuid");
        }
        "down" => {
            h.execute(Down::new(arg(args, 1))).await?;
            println!("OK down");
        }
        "status" => {
            // --blocking: the dump through execute_blocking (its own socket, NLM_F_MULTI parts).
            let devs = if flag("--blocking") {
                h.execute_blocking(Status::new())?
            } else {
                h.execute(Status::new()).await?
            };
            for d in devs {
                match d.state {
                    Some(s) => println!("ST {} {{ {s} }}", d.object_name()),
                    None => println!("R - {}", d.resource.as_deref().unwrap_or("-")),
                }
            }
        }
        "events" => {
            let secs = num(args, 1)?;
            let mut ev = h.events().await?;
            let deadline = tokio::time::sleep(Duration::from_secs(secs.into()));
            tokio::pin!(deadline);
            println!("OK subscribed");
            loop {
                tokio::select! {
                    _ = &mut deadline => break,
                    e = ev.next() => match e {
                        None => break,
                        Some(Ok(DrbdEvent::Device { seq, status, .. })) => {
                            if let Some(s) = status.state {
                                println!("EV {seq} {} {:?} {{ {s} }}", status.object_name(), status.reason);
                            }
                        }
                        Some(Ok(DrbdEvent::Resource { seq, name, .. })) => println!("EV {seq} R - {}", name.unwrap_or_default()),
                        Some(Ok(DrbdEvent::Notification { seq, message })) => println!("EV {seq} N {:?}", message.cmd),
                        Some(Ok(other)) => println!("EV ? {other:?}"),
                        Some(Err(e)) => println!("EV ERROR {e}"),
                    }
                }
            }
        }
        "bench" => bench(&h, num(args, 1)?, num(args, 2)?).await?,
        _ => usage(),
    }
    Ok(())
}

/// Waits for the DRBD_EVENT showing `minor` in `role`; returns when it arrived.
async fn wait_role_event(ev: &mut drbd_nl::EventStream, minor: u32, role: Role) -> Result<Instant> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let e = tokio::time::timeout(left, ev.next())
            .await
            .map_err(|_| anyhow!("no {role} event for minor {minor}"))?
            .ok_or_else(|| anyhow!("event stream ended"))??;
        if let DrbdEvent::Device { status, .. } = e {
            let st = status.new_state.or(status.state);
            if status.minor == Some(minor) && st.map(|s| s.role) == Some(role) {
                return Ok(Instant::now());
            }
        }
    }
}

async fn bench(h: &DrbdHandle, minor: u32, n: u32) -> Result<()> {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mut ev = h.events().await?;
    let (mut nl_pri, mut nl_sec, mut nl_cycle, mut ev_lat, mut ev_from_req) =
        (vec![], vec![], vec![], vec![], vec![]);
    for _ in 0..n {
        let t0 = Instant::now();
        h.execute(Primary::new(minor)).await?;
        let t1 = Instant::now();
        let te = wait_role_event(&mut ev, minor, Role::Primary).await?;
        let t2 = Instant::now();
        h.execute(Secondary::new(minor)).await?;
        let t3 = Instant::now();
        wait_role_event(&mut ev, minor, Role::Secondary).await?;
        nl_pri.push(ms(t1 - t0));
        nl_sec.push(ms(t3 - t2));
        nl_cycle.push(ms(t1 - t0) + ms(t3 - t2));
        ev_from_req.push(ms(te - t0));
        ev_lat.push(ms(te.saturating_duration_since(t1)));
    }
    let (mut sp_pri, mut sp_sec, mut sp_cycle) = (vec![], vec![], vec![]);
    let m = minor.to_string();
    for _ in 0..n {
        let t0 = Instant::now();
        let a = std::process::Command::new("drbdsetup-84")
            .args(["primary", &m])
            .status()?;
        let t1 = Instant::now();
        let b = std::process::Command::new("drbdsetup-84")
            .args(["secondary", &m])
            .status()?;
        let t2 = Instant::now();
        if !a.success() || !b.success() {
            bail!("drbdsetup-84 failed: {a} {b}");
        }
        sp_pri.push(ms(t1 - t0));
        sp_sec.push(ms(t2 - t1));
        sp_cycle.push(ms(t2 - t0));
    }
    let med = |v: &Vec<f64>| {
        if v.is_empty() {
            f64::NAN
        } else {
            test_support::stats::median_p95(v).0
        }
    };
    let out = serde_json::json!({
        "n": n, "minor": minor,
        "drbd_nl": {"primary": stats(nl_pri), "secondary": stats(nl_sec), "cycle": stats(nl_cycle.clone())},
        "drbdsetup_84_spawned": {"primary": stats(sp_pri), "secondary": stats(sp_sec), "cycle": stats(sp_cycle.clone())},
        "ratio_cycle_median": med(&sp_cycle) / med(&nl_cycle),
        "event_after_reply": stats(ev_lat),
        "event_after_request": stats(ev_from_req),
    });
    println!("BENCH-JSON {out}");
    Ok(())
}

/// Raw frames from an `nlmon` interface: each record is a u32 (LE) length
/// then the netlink message as the kernel passed it.
fn capture(iface: &str, secs: u32, file: &str) -> Result<()> {
    use std::io::Write;
    let name = std::ffi::CString::new(iface)?;
    // SAFETY: plain libc calls on a socket we own; buffers are sized.
    unsafe {
        let idx = libc::if_nametoindex(name.as_ptr());
        if idx == 0 {
            bail!("no interface {iface}");
        }
        let fd = libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW,
            (libc::ETH_P_ALL as u16).to_be() as i32,
        );
        if fd < 0 {
            bail!("socket: {}", std::io::Error::last_os_error());
        }
        let mut sll: libc::sockaddr_ll = std::mem::zeroed();
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        sll.sll_ifindex = idx as i32;
        if libc::bind(
            fd,
            &sll as *const _ as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        ) < 0
        {
            bail!("bind: {}", std::io::Error::last_os_error());
        }
        let tv = libc::timeval {
            tv_sec: 0,
            tv_usec: 200_000,
        };
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            &tv as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::timeval>() as u32,
        );
        let mut out = std::fs::File::create(file)?;
        println!("OK capturing");
        let end = Instant::now() + Duration::from_secs(secs.into());
        let mut buf = vec![0u8; 65536];
        while Instant::now() < end {
            let n = libc::recv(fd, buf.as_mut_ptr() as *mut libc::c_void, buf.len(), 0);
            if n > 0 {
                let frame = buf.get(..n as usize).unwrap_or(&[]);
                out.write_all(&(frame.len() as u32).to_le_bytes())?;
                out.write_all(frame)?;
            }
        }
        libc::close(fd);
    }
    Ok(())
}
