//! iscsi-ha agent library: config, role sources, state machine, executor, backends, control.
//!
//! The agent follows an external authority on which node is primary (it makes no quorum
//! decision of its own) and turns that into the right DRBD, tgtd and floating-address state:
//!
//! * [`config`]: the TOML file, validated with file/line/key/reason errors;
//! * [`fsm`]: the pure state machine, `step(state, event) -> (state, actions)`; the promote and
//!   demote order is written there once;
//! * [`executor`]: runs the actions over the [`backend`] traits, times each stage, rolls back;
//! * [`role`]: the role sources (pool.conf watched with inotify; commands);
//! * [`control`] and [`status`]: the root-only control socket and what `iscsi-ha status` shows;
//! * [`daemon`]: the single owner of the state, one input channel, no polling loop;
//! * [`ocf`]: the same machine as a Pacemaker OCF resource agent, one short process per action.
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod alerts;
pub mod backend;
pub mod chap;
pub mod config;
pub mod control;
pub mod daemon;
mod dirwatch;
mod error;
pub mod events;
pub mod executor;
pub mod fsm;
pub mod import;
pub mod logs;
pub mod metrics;
pub mod monitor;
pub mod notify;
pub mod ocf;
pub mod peer_link;
pub mod record;
pub mod role;
pub mod runfile;
pub mod split_brain;
pub mod status;

pub use error::{one_line, report, AgentError, BackendError, ConfigError, ReadOf};
