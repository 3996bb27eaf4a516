//! `iscsi-ha`: the daemon and its CLI.
fn main() -> anyhow::Result<()> {
    Ok(())
}
