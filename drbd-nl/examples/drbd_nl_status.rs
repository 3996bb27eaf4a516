//! Prints DRBD status the way `drbdsetup-84 status [RESOURCE]` does.
//!
//! Usage: `drbd-nl-status [RESOURCE]` (initial network namespace, drbd module loaded).
//!
//! ```text
//! r0 role:Primary
//!   disk:UpToDate
//!   peer role:Secondary
//!     replication:Established peer-disk:UpToDate
//! ```

use std::collections::BTreeMap;

use drbd_nl::{ConnState, DeviceStatus, DiskState, DrbdHandle, Role, State, Status};

/// drbdsetup-84's events2 view of the 8.4 connection state: (connection, replication).
fn conn_names(c: ConnState) -> (String, String) {
    let n = u8::from(c);
    match c {
        ConnState::WFConnection => ("Connecting".into(), "Off".into()),
        ConnState::WFReportParams => ("Connected".into(), "Off".into()),
        ConnState::Connected => ("Connected".into(), "Established".into()),
        _ if n >= 10 => ("Connected".into(), c.to_string()),
        _ => (c.to_string(), "Off".into()),
    }
}

fn print_resource(name: &str, vols: &[&DeviceStatus]) {
    let states: Vec<State> = vols.iter().filter_map(|d| d.state).collect();
    let role = if states.iter().any(|s| s.role == Role::Primary) {
        Role::Primary
    } else if states.iter().any(|s| s.role == Role::Secondary) {
        Role::Secondary
    } else {
        Role::Unknown
    };
    let susp = if states.iter().any(|s| s.io_suspended()) {
        " suspended:user"
    } else {
        ""
    };
    println!("{name} role:{role}{susp}");
    let multi = vols.len() > 1;
    for d in vols {
        let Some(s) = d.state else { continue };
        let vol = if multi {
            format!("volume:{} ", d.volume.unwrap_or(0))
        } else {
            String::new()
        };
        println!("  {vol}disk:{}", s.disk);
    }
    let Some(first) = states.first() else { return };
    if first.conn == ConnState::StandAlone {
        return;
    }
    let (conn, _) = conn_names(first.conn);
    let peer_role = if first.conn.is_connected() {
        first.peer
    } else {
        Role::Unknown
    };
    let conn_txt = if conn == "Connected" {
        String::new()
    } else {
        format!(" connection:{conn}")
    };
    println!("  peer{conn_txt} role:{peer_role}");
    for d in vols {
        let Some(s) = d.state else { continue };
        let (_, repl) = conn_names(s.conn);
        let pdsk = if s.conn.is_connected() {
            s.pdsk
        } else {
            DiskState::DUnknown
        };
        let vol = if multi {
            format!("volume:{} ", d.volume.unwrap_or(0))
        } else {
            String::new()
        };
        let mut line = format!("    {vol}replication:{repl} peer-disk:{pdsk}");
        if let Some(p) = d
            .sync_progress_permille()
            .filter(|_| (16..=21).contains(&u8::from(s.conn)))
        {
            line.push_str(&format!(" done:{}.{}", p / 10, p % 10));
        }
        println!("{line}");
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let filter = std::env::args().nth(1);
    if filter.as_deref() == Some("--help") {
        eprintln!("usage: drbd-nl-status [RESOURCE]   (like `drbdsetup-84 status`)");
        std::process::exit(2);
    }
    let result = async {
        let drbd = DrbdHandle::connect().await?;
        let mut req = Status::new();
        if let Some(r) = &filter {
            req = req.resource(r.clone());
        }
        drbd.execute(req).await
    }
    .await;
    let devs = match result {
        Ok(d) => d,
        Err(e) => {
            eprintln!("status: {e}");
            std::process::exit(10);
        }
    };
    let mut by_res: BTreeMap<String, Vec<&DeviceStatus>> = BTreeMap::new();
    for d in &devs {
        by_res
            .entry(d.resource.clone().unwrap_or_default())
            .or_default()
            .push(d);
    }
    let mut first = true;
    for (name, vols) in by_res {
        if !first {
            println!();
        }
        first = false;
        print_resource(&name, &vols);
    }
}
