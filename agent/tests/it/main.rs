//! The agent's integration tests, built as one binary: each module below was its own test binary,
//! and 26 links of the whole agent cost about 0.7 GB of disk and as many link steps for nothing.
//! Run one module with `cargo test -p agent --test it <module>::`, e.g. `reload::`.
//!
//! Tests that need root, tgtd, namespaces or systemd say so in their module docs; under `CI=true`
//! a missing prerequisite fails the test (test-support's rule), otherwise it prints SKIP.

mod common;

mod address;
mod address_group;
mod adopt_announce;
mod alerts;
mod authority_settle;
mod cli;
mod concurrency;
mod config;
mod config_edges;
mod control;
mod events;
mod executor;
mod first_status;
mod fsm_scenarios;
mod handover;
mod import;
mod luns;
mod metrics;
mod observe_retry;
mod ocf;
mod pool_conf;
mod recovery_advice;
mod reload;
mod reload_live;
mod reload_tgtd;
mod stale_data;
mod startup;
mod status_truth;
mod systemd;
mod systemd_unit;
mod tgt_tooling;
mod tgtd;
mod tgtd_address;
mod tgtd_offline;
mod tickle;
