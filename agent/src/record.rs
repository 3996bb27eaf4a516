//! What a transition did, as kept for `iscsi-ha status`, the events and the metrics.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::fsm::{PlanKind, Stage, Step};

/// Timing of one stage of a transition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageTiming {
    /// The stage.
    pub stage: Stage,
    /// The objects it acted on.
    pub objects: Vec<String>,
    /// Wall time of the stage, from its first step's start to its last step's end (steps of
    /// several resources run concurrently, each resource in the order), microseconds.
    pub micros: u64,
    /// All its steps succeeded.
    pub ok: bool,
    /// Part of a rollback.
    pub rollback: bool,
    /// Each failed step of the stage: `object: reason` (every resource's own error).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
    /// What a step decided and why, `object: note` (`target-offline`: whether the client
    /// connections were handed over to the peer or closed while the address was here).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// One transition as it happened, for `iscsi-ha status` and the logs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransitionRecord {
    /// Sequence number since the agent started.
    pub id: u64,
    /// `promote`, `demote` or `repair`.
    pub kind: PlanKind,
    /// Start, milliseconds since the Unix epoch.
    pub started_unix_ms: u64,
    /// Total wall time, microseconds.
    pub total_micros: u64,
    /// Per-stage timings, in order.
    pub stages: Vec<StageTiming>,
    /// How it ended; in JSON the text `ok`, `refused: STEP: REASON`, `rolled back: …` or
    /// `failed: …`.
    pub result: TransitionResult,
    /// How many more times the same transition (same kind, steps and result) ran right after
    /// this one; the record then shows the latest run's id and times.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub repeated: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl TransitionRecord {
    /// The same transition as `other`: kind, stages (with their objects, results and
    /// rollback marks) and result; ids and times aside.
    pub fn same_as(&self, other: &TransitionRecord) -> bool {
        let shape = |r: &TransitionRecord| {
            r.stages
                .iter()
                .map(|s| (s.stage, s.objects.clone(), s.ok, s.rollback))
                .collect::<Vec<_>>()
        };
        self.kind == other.kind && self.result == other.result && shape(self) == shape(other)
    }
}

/// The last transitions, at most `keep`: a transition that repeats the last one is counted in
/// it ([`TransitionRecord::repeated`]) instead of taking a place, and when one must go, the
/// oldest repair goes before any promote or demote.
pub fn keep(
    records: &mut std::collections::VecDeque<TransitionRecord>,
    new: TransitionRecord,
    keep: usize,
) {
    if let Some(last) = records.back_mut().filter(|l| l.same_as(&new)) {
        let repeated = last.repeated + 1;
        *last = TransitionRecord { repeated, ..new };
        return;
    }
    records.push_back(new);
    while records.len() > keep {
        let older = records.len() - 1; // never the one just kept
        let repair = records
            .iter()
            .take(older)
            .position(|r| r.kind == PlanKind::Repair);
        let _ = records.remove(repair.unwrap_or(0));
    }
}

/// How a transition ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum TransitionResult {
    /// Every step succeeded.
    Ok,
    /// A check or the subsystem refused before changing anything (what the forward steps
    /// did was undone).
    Refused {
        /// The step that refused.
        step: Step,
        /// Why.
        reason: String,
    },
    /// A forward step failed; what the plan did was undone.
    RolledBack {
        /// The step that failed.
        step: Step,
        /// Why.
        reason: String,
    },
    /// A step moving away from serving failed, or a forward one with nothing done before it
    /// to undo (a repair's serve while tgtd is down); left for the next signal or the
    /// daemon's retry.
    Failed {
        /// The step that failed.
        step: Step,
        /// Why.
        reason: String,
    },
}

impl TransitionResult {
    /// Every step succeeded.
    pub fn is_ok(&self) -> bool {
        *self == TransitionResult::Ok
    }

    /// `ok`, `refused`, `rolled back` or `failed`.
    pub fn label(&self) -> &'static str {
        match self {
            TransitionResult::Ok => "ok",
            TransitionResult::Refused { .. } => "refused",
            TransitionResult::RolledBack { .. } => "rolled back",
            TransitionResult::Failed { .. } => "failed",
        }
    }

    /// The failed step and why, unless it went well.
    pub fn failure(&self) -> Option<(&Step, &str)> {
        match self {
            TransitionResult::Ok => None,
            TransitionResult::Refused { step, reason }
            | TransitionResult::RolledBack { step, reason }
            | TransitionResult::Failed { step, reason } => Some((step, reason)),
        }
    }
}

impl fmt::Display for TransitionResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.failure() {
            None => f.write_str("ok"),
            Some((step, reason)) => write!(f, "{}: {step}: {reason}", self.label()),
        }
    }
}

impl From<TransitionResult> for String {
    fn from(r: TransitionResult) -> String {
        r.to_string()
    }
}

impl TryFrom<String> for TransitionResult {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        if s == "ok" {
            return Ok(TransitionResult::Ok);
        }
        let bad = || format!("not a transition result: {s:?}");
        let (label, rest) = s.split_once(": ").ok_or_else(bad)?;
        // `STAGE OBJECT: REASON`; an address never holds ": " (IPv6 has "::" only).
        let (step, reason) = rest.split_once(": ").ok_or_else(bad)?;
        let (stage, object) = step.split_once(' ').ok_or_else(bad)?;
        let step = Step::new(stage.parse()?, object);
        let reason = reason.to_string();
        match label {
            "refused" => Ok(TransitionResult::Refused { step, reason }),
            "rolled back" => Ok(TransitionResult::RolledBack { step, reason }),
            "failed" => Ok(TransitionResult::Failed { step, reason }),
            _ => Err(bad()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_round_trip_through_their_text() {
        let step = Step::new(Stage::AddressClaim, "fd00::10/64");
        for r in [
            TransitionResult::Ok,
            TransitionResult::Refused {
                step: step.clone(),
                reason: "address conflict: x is used by y".into(),
            },
            TransitionResult::RolledBack {
                step: step.clone(),
                reason: "timed out after 5 ms".into(),
            },
            TransitionResult::Failed {
                step,
                reason: "r".into(),
            },
        ] {
            let json = serde_json::to_string(&r).expect("serializes");
            let back: TransitionResult = serde_json::from_str(&json).expect("parses");
            assert_eq!(back, r);
        }
    }
}
