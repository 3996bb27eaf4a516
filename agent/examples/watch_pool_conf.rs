//! Follow a XenServer / XCP-ng pool.conf and print what the agent reads from it at each change
//! (like `inotifywait -m /etc/xensource` followed by `cat pool.conf`).
//!
//! Usage: `cargo run -p agent --example watch_pool_conf -- [PATH]`
//! (default `/etc/xensource/pool.conf`). No root needed; the directory must exist.
use std::path::PathBuf;

use agent::config::DEFAULT_POOL_CONF;
use agent::role::pool_conf::PoolConfWatch;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let path = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_POOL_CONF));
    let mut w = PoolConfWatch::new(&path)?;
    println!("{}: {}", path.display(), w.current());
    loop {
        println!("{}: {}", path.display(), w.changed().await?);
    }
}
