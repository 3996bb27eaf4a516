//! The failover drill (`lab drill`).

/// Timings of one drill.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct DrillReport {}

/// Runs the drill.
pub fn drill() -> anyhow::Result<DrillReport> {
    anyhow::bail!("not yet")
}
