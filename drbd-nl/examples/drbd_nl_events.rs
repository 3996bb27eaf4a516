//! Prints DRBD events the way `drbdsetup-84 events all` does.
//!
//! Usage: `drbd-nl-events` (root, initial network namespace, drbd module loaded).
//! Joins the `events` group first, then prints a GET_STATUS snapshot, then
//! every broadcast: `<seq> ST <minor>,<res>[<vol>] { cs:.. ro:../.. ds:../.. r--- }`.

use drbd_nl::{DeviceStatus, DrbdEvent, DrbdHandle, SibReason, Status};
use futures::StreamExt;

fn print_device(seq: u32, d: &DeviceStatus) {
    let mnv = d.object_name();
    match d.reason {
        Some(SibReason::StateChange) => {
            if let Some(p) = d.prev_state {
                println!("{seq} ST-prev {mnv} {{ {p} }}");
            }
            if let Some(n) = d.new_state {
                println!("{seq} ST-new {mnv} {{ {n} }}");
            }
            if let Some(s) = d.state {
                println!("{seq} ST {mnv} {{ {s} }}");
            }
        }
        Some(SibReason::HelperPre) => {
            println!("{seq} UH {mnv} {}", d.helper.as_deref().unwrap_or(""));
        }
        Some(SibReason::HelperPost) => println!(
            "{seq} UH-post {mnv} {} 0x{:04x}",
            d.helper.as_deref().unwrap_or(""),
            d.helper_exit_code.unwrap_or(0)
        ),
        Some(SibReason::SyncProgress) => {
            let p = d.sync_progress_permille().unwrap_or(0);
            println!("{seq} SP {mnv} {}.{}", p / 10, p % 10);
        }
        Some(SibReason::GetStatusReply) | None => {
            if let Some(s) = d.state {
                println!("{seq} ST {mnv} {{ {s} }}");
            }
        }
        Some(other) => println!(
            "{seq} ?? {mnv} <other message, state info broadcast reason:{}>",
            u8::from(other)
        ),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    if std::env::args().len() > 1 {
        eprintln!("usage: drbd-nl-events   (like `drbdsetup-84 events all`)");
        std::process::exit(2);
    }
    let drbd = match DrbdHandle::connect().await {
        Ok(h) => h,
        Err(e) => {
            eprintln!("events: {e}");
            std::process::exit(20);
        }
    };
    // Join first, then take the snapshot, so nothing falls in between.
    let mut events = match drbd.events().await {
        Ok(ev) => ev,
        Err(e) => {
            eprintln!("events: {e}");
            std::process::exit(20);
        }
    };
    match drbd.execute(Status::new()).await {
        Ok(devs) => {
            for d in &devs {
                if d.state.is_some() {
                    print_device(0, d);
                } else {
                    println!("0 R - {}", d.resource.as_deref().unwrap_or(""));
                }
            }
        }
        Err(e) => eprintln!("events: status: {e}"),
    }
    while let Some(ev) = events.next().await {
        match ev {
            Ok(DrbdEvent::Device { seq, status, .. }) => print_device(seq, &status),
            Ok(DrbdEvent::Resource { seq, name, .. }) => {
                println!("{seq} R - {}", name.unwrap_or_default())
            }
            Ok(DrbdEvent::Notification { seq, message }) => {
                println!("{seq} R - {}", message.resource_name().unwrap_or(""))
            }
            Ok(other) => println!("? {other:?}"),
            Err(e) => eprintln!("events: {e}"),
        }
    }
}
