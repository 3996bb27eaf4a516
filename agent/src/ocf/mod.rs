//! OCF resource agent mode: `iscsi-ha ocf ACTION`, or the binary linked as
//! `/usr/lib/ocf/resource.d/iscsi-ha/iscsi-ha` (Pacemaker runs it with the action as its only
//! argument and the parameters as `OCF_RESKEY_*`).
//!
//! A promotable clone: *promoted* = every resource DRBD Primary, its target serving and every
//! address in front of it held; *unpromoted* = DRBD Secondary, no target, no address. Each
//! action is one short process that observes the node, feeds the observation and Pacemaker's
//! wish (promote = [`crate::fsm::Authority::Primary`], start/demote/stop = `Secondary`) to
//! the daemon's state machine ([`crate::fsm::step`]) and runs its plans with the daemon's
//! [`crate::executor::Executor`] until nothing is left: the one promote/demote order, no copy of it here.
//!
//! What the daemon remembers between events and a short process cannot see, whether DRBD has
//! been Connected to its peer since attach (the stale-data rule, `docs/stale-data-and-split-brain.md`),
//! is kept with the "started" mark in a small file under `$HA_RSCTMP` (a tmpfs, so a reboot
//! forgets it, as DRBD's attach does). A stop keeps the file, marked stopped, and its history is
//! trusted for [`run::HISTORY_AFTER_STOP`] after the stop: Pacemaker's recovery of a failed
//! promote (stop, start, promote) must not turn a survivor into one that never saw its peer.
//!
//! Each action keeps trying until its timeout less a third (`OCF_RESKEY_CRM_meta_timeout`;
//! a failed attempt is rolled back and tried again, a promote refused for a reason that may
//! clear on its own waits), as LINBIT's `drbd` agent does (`docs/ocf.md`).

pub mod degraded;
pub mod meta;
mod run;

pub use run::{act, judge, main, retry_budget, stop_without_drbd, Saved, HISTORY_AFTER_STOP};

use std::fmt;
use std::path::{Path, PathBuf};

use crate::config::{Config, DEFAULT_CONFIG};

/// OCF exit codes (OCF Resource Agent API 1.1, "Return codes").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum OcfCode {
    /// `OCF_SUCCESS`: done; for monitor, running unpromoted.
    Success = 0,
    /// `OCF_ERR_GENERIC`: failed (a refused or failed step; something served while unpromoted).
    ErrGeneric = 1,
    /// `OCF_ERR_ARGS`: no action given or bad parameters for this node.
    ErrArgs = 2,
    /// `OCF_ERR_UNIMPLEMENTED`: unknown action.
    ErrUnimplemented = 3,
    /// `OCF_ERR_PERM`: not allowed (not root).
    ErrPerm = 4,
    /// `OCF_ERR_INSTALLED`: something this node needs is missing (config file, DRBD module).
    ErrInstalled = 5,
    /// `OCF_ERR_CONFIGURED`: the configuration is invalid (fatal on every node).
    ErrConfigured = 6,
    /// `OCF_NOT_RUNNING`: stopped cleanly (DRBD Secondary or down, nothing served, not started).
    NotRunning = 7,
    /// `OCF_RUNNING_PROMOTED`: promoted and healthy.
    RunningPromoted = 8,
    /// `OCF_FAILED_PROMOTED`: DRBD Primary but not everything served (target missing or
    /// partial, address gone, or with depth 10 a local disk that failed).
    FailedPromoted = 9,
}

impl OcfCode {
    /// The OCF name of the code.
    pub fn name(self) -> &'static str {
        match self {
            OcfCode::Success => "OCF_SUCCESS",
            OcfCode::ErrGeneric => "OCF_ERR_GENERIC",
            OcfCode::ErrArgs => "OCF_ERR_ARGS",
            OcfCode::ErrUnimplemented => "OCF_ERR_UNIMPLEMENTED",
            OcfCode::ErrPerm => "OCF_ERR_PERM",
            OcfCode::ErrInstalled => "OCF_ERR_INSTALLED",
            OcfCode::ErrConfigured => "OCF_ERR_CONFIGURED",
            OcfCode::NotRunning => "OCF_NOT_RUNNING",
            OcfCode::RunningPromoted => "OCF_RUNNING_PROMOTED",
            OcfCode::FailedPromoted => "OCF_FAILED_PROMOTED",
        }
    }
}

/// What an action ends with: the exit code and one line for Pacemaker's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Exit code.
    pub code: OcfCode,
    /// Why (empty on plain success).
    pub message: String,
}

impl Reply {
    /// A reply with this code and text.
    pub fn new(code: OcfCode, message: impl Into<String>) -> Reply {
        Reply {
            code,
            message: message.into(),
        }
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.code.name(), self.code as u8)?;
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        Ok(())
    }
}

/// The actions of the OCF API this agent implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OcfAction {
    /// Become unpromoted (DRBD Secondary, nothing served) and mark the instance started.
    Start,
    /// Become unpromoted and drop the started mark; DRBD stays up Secondary.
    Stop,
    /// Report: 7, 0 (unpromoted), 8 (promoted), 9 (failed promoted) or 1.
    Monitor,
    /// DRBD Primary, target serving, addresses claimed, in the daemon's order.
    Promote,
    /// Target offline, addresses released, target removed, DRBD Secondary.
    Demote,
    /// Clone notifications: logged, nothing to do.
    Notify,
    /// Check the parameters and the configuration.
    ValidateAll,
    /// Parameters changed (`config` is reloadable): check them; each action reads afresh.
    ReloadAgent,
    /// Print the meta-data XML.
    MetaData,
    /// Print usage.
    Usage,
}

impl std::str::FromStr for OcfAction {
    type Err = Reply;
    fn from_str(s: &str) -> Result<Self, Reply> {
        Ok(match s {
            "start" => OcfAction::Start,
            "stop" => OcfAction::Stop,
            "monitor" => OcfAction::Monitor,
            "promote" => OcfAction::Promote,
            "demote" => OcfAction::Demote,
            "notify" => OcfAction::Notify,
            "validate-all" => OcfAction::ValidateAll,
            "reload-agent" => OcfAction::ReloadAgent,
            "meta-data" => OcfAction::MetaData,
            "usage" | "help" => OcfAction::Usage,
            other => {
                return Err(Reply::new(
                    OcfCode::ErrUnimplemented,
                    format!("action {other:?} is not implemented"),
                ))
            }
        })
    }
}

/// Usage text.
pub const USAGE: &str = "usage: iscsi-ha ocf {start|stop|monitor|promote|demote|notify|\
validate-all|reload-agent|meta-data}\n(parameters from OCF_RESKEY_config, OCF_RESKEY_resource; \
-c FILE is used when OCF_RESKEY_config is unset)";

/// The environment Pacemaker (or `ocf-tester`) gives an action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OcfEnv {
    /// `OCF_RESKEY_config` (default [`DEFAULT_CONFIG`]).
    pub config: PathBuf,
    /// `OCF_RESKEY_resource`: drive only this resource of the config.
    pub resource: Option<String>,
    /// `OCF_RESOURCE_INSTANCE` without a clone's `:N` suffix (`default` when unset).
    pub instance: String,
    /// `OCF_CHECK_LEVEL` (or `OCF_RESKEY_CRM_meta_depth`): 0, or 10 for the deeper check.
    pub check_level: u32,
    /// `HA_RSCTMP` (default `/run/resource-agents`): where the started mark lives.
    pub state_dir: PathBuf,
    /// `OCF_RESKEY_CRM_meta_notify_type` and `_operation`, for notify.
    pub notify: Option<(String, String)>,
    /// `OCF_RESKEY_CRM_meta_timeout`: the action's timeout (Pacemaker gives it in
    /// milliseconds); `None` when unset or not a number (noted).
    pub timeout: Option<std::time::Duration>,
    /// When the action began: the process's exec for [`OcfEnv::from_env`] (the binary's
    /// loading counts against Pacemaker's timeout too), the call for the others.
    pub began: std::time::Instant,
    /// What was read with a fallback (empty config, unreadable depth, `-c` overridden):
    /// logged as warnings by the action.
    pub notes: Vec<String>,
}

/// An action's timeout when Pacemaker gives none (a run by hand): the OCF default of 20 s
/// (Pacemaker Explained, "Operation properties", `timeout`).
pub const DEFAULT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// Where the started mark lives without `HA_RSCTMP`.
pub const DEFAULT_STATE_DIR: &str = "/run/resource-agents";

impl OcfEnv {
    /// From the process environment; `cli_config` is `iscsi-ha ocf -c FILE`.
    pub fn from_env(cli_config: Option<&Path>) -> OcfEnv {
        let mut env = OcfEnv::from_vars_with(|k| std::env::var(k).ok(), cli_config);
        if let Some(ago) = crate::logs::since_exec() {
            env.began = env.began.checked_sub(ago).unwrap_or(env.began);
        }
        env
    }

    /// From any variable lookup (tests). Empty values count as unset.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> OcfEnv {
        OcfEnv::from_vars_with(var, None)
    }

    /// From a variable lookup and `-c FILE`. The config is `OCF_RESKEY_config` when set (the
    /// instance parameter Pacemaker passes wins), else `-c`, else [`DEFAULT_CONFIG`]. An empty
    /// `OCF_RESKEY_config` counts as unset and a non-numeric `OCF_CHECK_LEVEL` as 0; both are
    /// noted in [`OcfEnv::notes`].
    pub fn from_vars_with(
        var: impl Fn(&str) -> Option<String>,
        cli_config: Option<&Path>,
    ) -> OcfEnv {
        let mut notes = Vec::new();
        if var("OCF_RESKEY_config").is_some_and(|v| v.trim().is_empty()) {
            notes.push("OCF_RESKEY_config is empty: treated as unset".to_string());
        }
        let var = |k: &str| var(k).filter(|v| !v.trim().is_empty());
        let instance = var("OCF_RESOURCE_INSTANCE").unwrap_or_else(|| "default".into());
        // Anonymous clone instances (`p:0`, `p:1`) share one mark per node.
        let instance = instance
            .split_once(':')
            .map(|(a, _)| a.to_string())
            .unwrap_or(instance);
        let check_level = match var("OCF_CHECK_LEVEL").or_else(|| var("OCF_RESKEY_CRM_meta_depth"))
        {
            None => 0,
            Some(v) => v.trim().parse().unwrap_or_else(|_| {
                notes.push(format!(
                    "OCF_CHECK_LEVEL={v:?} is not a number: depth 0 checked"
                ));
                0
            }),
        };
        let timeout = var("OCF_RESKEY_CRM_meta_timeout").and_then(|v| {
            let ms = v.trim().parse::<u64>().ok();
            if ms.is_none() {
                notes.push(format!(
                    "OCF_RESKEY_CRM_meta_timeout={v:?} is not a number of milliseconds: {} s \
                     assumed",
                    DEFAULT_TIMEOUT.as_secs()
                ));
            }
            ms.map(std::time::Duration::from_millis)
        });
        let config = match (var("OCF_RESKEY_config").map(PathBuf::from), cli_config) {
            (Some(env), Some(cli)) => {
                if cli != env && cli != Path::new(DEFAULT_CONFIG) {
                    notes.push(format!(
                        "-c {} ignored: OCF_RESKEY_config={} is set",
                        cli.display(),
                        env.display()
                    ));
                }
                env
            }
            (Some(env), None) => env,
            (None, Some(cli)) => cli.to_path_buf(),
            (None, None) => PathBuf::from(DEFAULT_CONFIG),
        };
        OcfEnv {
            config,
            resource: var("OCF_RESKEY_resource"),
            instance,
            check_level,
            state_dir: var("HA_RSCTMP")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR)),
            notify: var("OCF_RESKEY_CRM_meta_notify_type")
                .zip(var("OCF_RESKEY_CRM_meta_notify_operation")),
            timeout,
            began: std::time::Instant::now(),
            notes,
        }
    }

    /// The started mark of this instance.
    pub fn state_file(&self) -> PathBuf {
        let safe: String = self
            .instance
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.state_dir.join(format!("iscsi-ha-{safe}.json"))
    }

    /// Read the config and narrow it to `resource`: a missing file is
    /// [`OcfCode::ErrInstalled`], anything else wrong [`OcfCode::ErrConfigured`].
    pub fn load_config(&self) -> Result<Config, Reply> {
        let mut cfg = Config::load(&self.config).map_err(|e| match e {
            crate::AgentError::ConfigRead { ref source, .. }
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                Reply::new(OcfCode::ErrInstalled, e.to_string())
            }
            e => Reply::new(OcfCode::ErrConfigured, e.to_string()),
        })?;
        if let Some(name) = &self.resource {
            narrow(&mut cfg, name)
                .map_err(|m| Reply::new(OcfCode::ErrConfigured, format!("resource={name}: {m}")))?;
        }
        Ok(cfg)
    }
}

/// Keep one resource and the addresses in front of it (which must serve it alone).
fn narrow(cfg: &mut Config, name: &str) -> Result<(), String> {
    if !cfg.resources.iter().any(|r| r.name == name) {
        return Err("no such resource in the configuration".into());
    }
    if let Some(a) = cfg
        .addresses
        .iter()
        .find(|a| a.serves(name) && a.resources.len() > 1)
    {
        return Err(format!(
            "address {} also serves {}; give the instance every resource behind it (leave \
             resource empty)",
            a.address,
            a.resources.join(", ")
        ));
    }
    cfg.resources.retain(|r| r.name == name);
    cfg.addresses.retain(|a| a.serves(name));
    Ok(())
}

/// Was this process started as an installed OCF agent (`.../resource.d/PROVIDER/TYPE`, a
/// link to the binary)? Pacemaker and `ocf-tester` run agents by that path.
pub fn invoked_as_agent() -> bool {
    std::env::args_os()
        .next()
        .is_some_and(|a| a.to_string_lossy().contains("/resource.d/"))
}

#[cfg(test)]
mod tests;
