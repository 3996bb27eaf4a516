//! Configuration: TOML read with serde, unknown keys refused, then [`Config::validate`]d.
//!
//! Every error names the file, the line, the dotted key and the reason. Type errors are located
//! by `serde_path_to_error` (the key path) and the parser's span (the line); for semantic errors
//! the key path is looked up in a span-keeping parse of the same text. The values
//! the libraries check (IQNs, SCSI identities, ACLs, floating addresses) are checked by their
//! own validators (tgt-ipc, vip), so nothing accepted here is refused later.

mod address;
pub mod check;
mod drbd_options;
mod fingerprint;
mod general;
mod locate;
pub mod reload;
mod resource;
mod tickle;
mod volume;

use std::path::Path;

use serde::{Deserialize, Serialize};

pub use address::{Address, Announce, Probe};
pub use drbd_options::{DiskOptions, Handlers, NetOptions, OnIoError};
pub use general::{Metrics, RoleSource, Sockets, Timeouts};
pub(crate) use locate::locate as locate_key;
pub use resource::{
    Chap, Initiators, Lun, Manage, MetaDisk, Mode, Protocol, Resource, Target, DEFAULT_KO_COUNT,
    DEFAULT_PING_INT_S, DEFAULT_PING_TIMEOUT_DS, DEFAULT_TIMEOUT_DS, MAX_NODE_ID,
};
pub use tickle::{hidden_from_the_unit, read_secret as read_tickle_secret, Tickle};
pub(crate) use volume::by_res;
pub use volume::Volume;

use crate::error::ConfigError;
use locate::{key_at_line, line_of, locate};

fn default_state_dir() -> std::path::PathBuf {
    DEFAULT_STATE_DIR.into()
}

/// Default location of the XenServer / XCP-ng pool role file.
pub const DEFAULT_POOL_CONF: &str = "/etc/xensource/pool.conf";
/// Default control socket path.
pub const DEFAULT_CONTROL_SOCKET: &str = "/run/iscsi-ha/control.sock";
/// Default tgtd management socket path (tgtd `-C 0`).
pub const DEFAULT_TGTD_SOCKET: &str = "/var/run/tgtd/socket.0";
/// Longest Unix socket path, bytes: `sun_path` (108 on Linux) less the terminating NUL.
pub const MAX_SOCKET_PATH: usize = 107;
/// Default state directory (`state_dir`; the unit's `StateDirectory=iscsi-ha`).
pub const DEFAULT_STATE_DIR: &str = "/var/lib/iscsi-ha";
/// Default configuration file path.
pub const DEFAULT_CONFIG: &str = "/etc/iscsi-ha/iscsi-ha.toml";

/// The whole configuration file.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// This node's name (reported in status; must not be empty).
    pub node: String,
    /// Where the agent keeps what outlives a restart and a reboot (the maintenance switch);
    /// an absolute path, created mode 0700 when first written. Default [`DEFAULT_STATE_DIR`].
    #[serde(default = "default_state_dir")]
    pub state_dir: std::path::PathBuf,
    /// Where the primary/secondary decision comes from.
    pub role: RoleSource,
    /// Socket paths.
    #[serde(default)]
    pub sockets: Sockets,
    /// Timeouts.
    #[serde(default)]
    pub timeouts: Timeouts,
    /// The replicated resources, each served as one iSCSI target.
    #[serde(rename = "resource")]
    pub resources: Vec<Resource>,
    /// The floating addresses.
    #[serde(rename = "address", default)]
    pub addresses: Vec<Address>,
    /// The Prometheus endpoint (off unless `listen` is set).
    #[serde(default)]
    pub metrics: Metrics,
    /// Alerts (`[alerts.email]`; none unless set).
    #[serde(default)]
    pub alerts: crate::alerts::AlertsConfig,
    /// The tickle ACK peer link (`[tickle]`; off unless set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tickle: Option<Tickle>,
    /// The file it was loaded from ([`Config::load`]; not a key of the file): where a reload
    /// reads the new one.
    #[serde(skip)]
    pub source: Option<std::path::PathBuf>,
}

impl Config {
    /// Read, parse and validate a file.
    pub fn load(path: &Path) -> Result<Config, crate::AgentError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| crate::AgentError::ConfigRead {
                path: path.to_path_buf(),
                source,
            })?;
        let mut cfg = Config::parse(&text, path)?;
        cfg.source = Some(path.to_path_buf());
        Ok(cfg)
    }

    /// Parse and validate text; `file` is used in error messages only.
    pub fn parse(text: &str, file: &Path) -> Result<Config, ConfigError> {
        // The key path is tracked only to explain an error: a valid file runs none of the
        // tracking wrapper's code (code a TCG guest translates again at every start).
        let cfg = match Config::deserialize(toml::Deserializer::new(text)) {
            Ok(cfg) => cfg,
            Err(_) => Self::deserialize_tracked(text, file)?,
        };
        if let Err((key, reason)) = cfg.validate() {
            let line = locate(text, &key);
            return Err(ConfigError {
                file: file.to_path_buf(),
                line,
                key,
                reason,
            });
        }
        Ok(cfg)
    }

    /// Deserialize `text` tracking the key path, which a type error is reported at.
    fn deserialize_tracked(text: &str, file: &Path) -> Result<Config, ConfigError> {
        let de = toml::Deserializer::new(text);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            let e = e.into_inner();
            let line = e
                .span()
                .map(|s| line_of(text, s.start))
                .or_else(|| locate(text, &key));
            // A syntax-level error (a number too large for TOML, say) has no key path: name
            // the key written on its line, under the table header above it.
            let key = match (key.as_str(), line) {
                (".", Some(l)) => key_at_line(text, l).unwrap_or_default(),
                (".", None) => String::new(),
                _ => key,
            };
            ConfigError {
                file: file.to_path_buf(),
                line,
                key,
                reason: e.message().to_string(),
            }
        })
    }

    /// Semantic checks; returns the dotted key at fault and the reason.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let err = |k: &str, r: &str| Err((k.to_string(), r.to_string()));
        if self.node.trim().is_empty() {
            return err("node", "must not be empty");
        }
        if let RoleSource::PoolConf { path } = &self.role {
            if !path.is_absolute() {
                return err("role.path", "must be an absolute path");
            }
        }
        if !self.state_dir.is_absolute() {
            return err("state_dir", "must be an absolute path");
        }
        for (k, p) in [
            ("sockets.control", &self.sockets.control),
            ("sockets.tgtd", &self.sockets.tgtd),
        ] {
            if !p.is_absolute() {
                return err(k, "must be an absolute path");
            }
            // sun_path is 108 bytes with the NUL: a longer path fails only at bind/connect
            let len = p.as_os_str().len();
            if len > MAX_SOCKET_PATH {
                return Err((
                    k.to_string(),
                    format!("is {len} bytes; a Unix socket path holds at most {MAX_SOCKET_PATH} (sun_path)"),
                ));
            }
        }
        for (k, v) in [
            ("timeouts.drbd_ms", self.timeouts.drbd_ms),
            ("timeouts.tgtd_ms", self.timeouts.tgtd_ms),
            ("timeouts.address_ms", self.timeouts.address_ms),
        ] {
            if v == 0 {
                return err(k, "must be greater than 0");
            }
        }
        // Upper bounds: every one of these is added to a clock reading (`Instant + Duration`
        // panics on overflow), and a typo of a few digits should not hold a takeover for hours.
        let t = &self.timeouts;
        for (k, v, max) in [
            ("timeouts.drbd_ms", t.drbd_ms, 600_000),
            ("timeouts.tgtd_ms", t.tgtd_ms, 600_000),
            ("timeouts.address_ms", t.address_ms, 600_000),
            ("timeouts.safety_net_s", t.safety_net_s, 86_400),
            ("timeouts.wfc_s", t.wfc_s, 2_592_000),
            (
                "timeouts.authority_settle_ms",
                t.authority_settle_ms,
                600_000,
            ),
            (
                "timeouts.authority_settle_primary_ms",
                t.authority_settle_primary_ms,
                600_000,
            ),
            ("timeouts.broken_alarm_s", t.broken_alarm_s, 86_400),
            ("timeouts.tgt_check_ms", t.tgt_check_ms, 3_600_000),
        ] {
            if v > max {
                return Err((k.to_string(), format!("is {v}; at most {max}")));
            }
        }
        if (1..10).contains(&self.timeouts.tgt_check_ms) {
            return err(
                "timeouts.tgt_check_ms",
                "must be 0 (off) or at least 10 (each check is one tgtd `show`)",
            );
        }
        let names = resource::validate(&self.resources)?;
        address::validate(&self.addresses, &names, self.timeouts.address_ms)?;
        if let Some(e) = &self.alerts.email {
            crate::alerts::validate(e)?;
        }
        if let Some(t) = &self.tickle {
            tickle::validate(t, &self.addresses)?;
        }
        Ok(())
    }

    /// Every LUN is on one of its resource's volumes (`check-config`, and at daemon start and
    /// reload on a kernel DRBD); the dotted key at fault and the reason.
    pub fn check_devices(&self) -> Result<(), (String, String)> {
        resource::check_devices(&self.resources)
    }

    /// The resource called `name`.
    pub fn resource(&self, name: &str) -> Option<&Resource> {
        self.resources.iter().find(|r| r.name == name)
    }

    /// The address written as `address` in its canonical spelling.
    pub fn address(&self, address: &str) -> Option<&Address> {
        self.addresses
            .iter()
            .find(|a| a.address.to_string() == address)
    }
}

/// The smallest valid config: one adopted resource, one LUN (unit tests of this crate).
#[cfg(test)]
pub(crate) const TEST_MINIMAL: &str = r#"
node = "a"
role = { source = "command" }
[[resource]]
name = "r0"
minor = 1
mode = "adopt"
target = { iqn = "iqn.2026-11.org.example:r0", tid = 1, initiators = "all" }
[[resource.lun]]
lun = 1
device = "/dev/drbd1"
scsi_id = "r0"
scsi_sn = "r0sn"
vendor = "IET"
product = "VIRTUAL-DISK"
"#;

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: &str = TEST_MINIMAL;

    #[test]
    fn minimal_parses() {
        let c = Config::parse(MIN, Path::new("x")).expect("parses");
        assert_eq!(c.resources.len(), 1);
        assert_eq!(c.sockets, Sockets::default());
    }

    #[test]
    fn a_syntax_level_error_names_the_key_of_its_line() {
        let text = format!(
            "{MIN}[[address]]\naddress = \"10.0.0.10/24\"\ninterface = \"eth0\"\n\
             resources = [\"r0\"]\n[address.probe]\ntimeout_ms = 18446744073709551615\n"
        );
        let e = Config::parse(&text, Path::new("t.toml")).expect_err("too large");
        assert_eq!(e.key, "address.probe.timeout_ms", "{e}");
        assert_eq!(e.line, Some(text.lines().count()), "{e}");
        assert_eq!(key_at_line("a = 1\n", 1).as_deref(), Some("a"));
        assert_eq!(key_at_line("[t]\n# c\n", 2), None);
    }

    #[test]
    fn line_of_counts() {
        assert_eq!(line_of("a\nb\nc", 0), 1);
        assert_eq!(line_of("a\nb\nc", 2), 2);
        assert_eq!(line_of("a\nb\nc", 4), 3);
    }
}
