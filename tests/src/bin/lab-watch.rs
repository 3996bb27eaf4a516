//! `lab-watch MINOR ADDRESS IQN OUT [INTERVAL_MS]`: runs in a lab guest (over 9p) during a soak and
//! samples, every INTERVAL_MS (default 20): the DRBD role, peer role and connection state of
//! MINOR (`/proc/drbd`), whether ADDRESS is on an interface (getifaddrs), and — while it is —
//! IQN's state in tgtd (management socket): `ready` (with LUN 1), `offline` (with LUN 1: logins
//! refused, as a demote does before it releases the address), `absent`, or `null` when tgtd did
//! not answer within 500 ms. Each change is appended to OUT as one JSON line
//! `{"t":…, "prev_t":…, "role":…, "peer":…, "cs":…, "addr":…, "target":…}`
//! (guest wall clock, Unix ms; the change happened between `prev_t` and `t`), plus a heartbeat
//! line every second. No process is started per sample.

use std::io::Write;
use std::net::IpAddr;
use std::time::{Duration, Instant};

#[derive(Clone, PartialEq, Eq)]
struct Sample {
    role: String,
    peer: String,
    cs: String,
    addr: bool,
    target: Option<&'static str>,
}

fn now_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}

/// (role, peer role, connection state) of `minor` from /proc/drbd (`-` when absent).
fn drbd(minor: u32) -> (String, String, String) {
    let text = std::fs::read_to_string("/proc/drbd").unwrap_or_default();
    let key = format!("{minor}: cs:");
    let Some(line) = text.lines().find(|l| l.trim_start().starts_with(&key)) else {
        return ("-".into(), "-".into(), "-".into());
    };
    let field = |k: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(k))
            .unwrap_or("-")
            .to_string()
    };
    let ro = field("ro:");
    let (me, peer) = ro.split_once('/').unwrap_or((&ro, "-"));
    (me.to_string(), peer.to_string(), field("cs:"))
}

fn has_address(addr: IpAddr) -> bool {
    nix::ifaddrs::getifaddrs()
        .map(|it| {
            it.into_iter().any(|i| {
                i.address
                    .and_then(|a| a.as_sockaddr_in().map(|s| IpAddr::V4(s.ip())))
                    == Some(addr)
            })
        })
        .unwrap_or(false)
}

/// `iqn`'s state in tgtd: `ready` / `offline` (with LUN 1) or `absent`; `None` when tgtd did not
/// answer in time (busy, not known to be down). No socket or a refused connection means tgtd is
/// not running: absent.
async fn target_state(client: &tgt_ipc::TgtClient, iqn: &str) -> Option<&'static str> {
    match client.show_targets().await {
        Ok(ts) => Some(
            match ts.iter().find(|t| t.name == iqn && t.lun(1).is_some()) {
                Some(t) if t.state == tgt_ipc::TargetState::Ready => "ready",
                Some(_) => "offline",
                None => "absent",
            },
        ),
        Err(tgt_ipc::TgtError::ConnectTimeout { .. } | tgt_ipc::TgtError::ReplyTimeout { .. }) => {
            None
        }
        Err(_) => Some("absent"),
    }
}

/// Whether the address is held and, while it is, the target's state, as one sample. Address
/// first, then target: a promote serves the target before it claims the address. The address is
/// read again after the target: tgtd may answer `show` long after the first read (busy, up to
/// both timeouts), when a demote has released the address and then removed the target; held
/// means held before and after the target was read.
fn address_and_target(
    mut held: impl FnMut() -> bool,
    target: impl FnOnce() -> Option<&'static str>,
) -> (bool, Option<&'static str>) {
    if !held() {
        return (false, Some("absent"));
    }
    let t = target();
    (held(), t)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(minor), Some(addr), Some(iqn), Some(out)) = (
        args.get(1).and_then(|v| v.parse::<u32>().ok()),
        args.get(2).and_then(|v| v.parse::<IpAddr>().ok()),
        args.get(3),
        args.get(4),
    ) else {
        eprintln!("usage: lab-watch MINOR ADDRESS IQN OUT [INTERVAL_MS]");
        std::process::exit(2)
    };
    let every = Duration::from_millis(args.get(5).and_then(|v| v.parse().ok()).unwrap_or(20));
    let mut f = match std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(out)
    {
        Ok(f) => f,
        Err(e) => {
            eprintln!("lab-watch: {out}: {e}");
            std::process::exit(1)
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("lab-watch: tokio: {e}");
            std::process::exit(1)
        }
    };
    let client = tgt_ipc::TgtClient::new()
        .connect_timeout(Duration::from_millis(500))
        .reply_timeout(Duration::from_millis(500));
    let mut last: Option<Sample> = None;
    let mut prev_t = now_ms();
    let mut beat = Instant::now();
    loop {
        let t = now_ms();
        let (role, peer, cs) = drbd(minor);
        let (held, target) = address_and_target(
            || has_address(addr),
            || rt.block_on(target_state(&client, iqn)),
        );
        let s = Sample {
            role,
            peer,
            cs,
            addr: held,
            target,
        };
        let changed = last.as_ref() != Some(&s);
        if changed || beat.elapsed() >= Duration::from_secs(1) {
            let line = serde_json::json!({
                "t": t, "prev_t": prev_t, "role": s.role, "peer": s.peer, "cs": s.cs,
                "addr": s.addr, "target": s.target, "change": changed,
            });
            let _ = writeln!(f, "{line}");
            beat = Instant::now();
        }
        last = Some(s);
        prev_t = t;
        std::thread::sleep(every);
    }
}

#[cfg(test)]
mod tests {
    use super::address_and_target;

    #[test]
    fn address_released_while_show_waits_is_not_held() {
        // A demote released the address and removed the target while `show` waited.
        let mut reads = [true, false].into_iter();
        let s = address_and_target(|| reads.next().unwrap_or(false), || Some("absent"));
        assert_eq!(s, (false, Some("absent")));
        // Held before and after: the target read stands.
        let s = address_and_target(|| true, || Some("absent"));
        assert_eq!(s, (true, Some("absent")));
        // Not held: the target is not read.
        let s = address_and_target(|| false, || panic!("read"));
        assert_eq!(s, (false, Some("absent")));
    }
}
