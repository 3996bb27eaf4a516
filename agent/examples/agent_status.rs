//! Print the agent's status, as `iscsi-ha status` does (add `--json` for JSON).
//!
//! Usage (root: the control socket is 0600): `cargo run -p agent --example agent-status -- [SOCKET] [--json]`
//! (default socket `/run/iscsi-ha/control.sock`).
use std::path::PathBuf;

use agent::config::DEFAULT_CONTROL_SOCKET;
use agent::control::{answer_bound, request, Request};

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let json = args.iter().any(|a| a == "--json");
    let socket = args
        .iter()
        .find(|a| !a.starts_with("--"))
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONTROL_SOCKET));
    // The CLI's default wait with the default timeouts.
    let wait = answer_bound(Request::Status, None);
    let resp = request(&socket, Request::Status, wait).await?;
    match resp.status {
        Some(s) if json => println!("{}", serde_json::to_string_pretty(&s)?),
        Some(s) => print!("{}", s.render()),
        None => println!("{}", resp.message),
    }
    Ok(())
}
