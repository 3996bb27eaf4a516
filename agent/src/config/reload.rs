//! Live reload (`SIGHUP`, `iscsi-ha reload`): what a new config changes against the running one,
//! and whether that can be applied without a transition.
//!
//! Applied live: settings read at each use (the node name in status, the per-request and
//! authority timeouts, each address's announce and probe policy, read at its next claim).
//! Everything else (resources, targets, LUNs, addresses, the role source, sockets, metrics,
//! alerts, DRBD options) is built into running tasks or served state; changing it live would
//! mean a transition or a rebuilt target, so the reload is refused with the keys that need a
//! restart and the running config is kept: a reload never drops a served target.

use serde_json::Value;

use super::Config;

/// Keys applied without a restart: exact keys, or `address[*].` prefixes for any index.
const LIVE: &[&str] = &[
    "node",
    "timeouts.drbd_ms",
    "timeouts.tgtd_ms",
    "timeouts.address_ms",
    "timeouts.wfc_s",
    "timeouts.authority_settle_ms",
    "timeouts.broken_alarm_s",
    "address[*].announce.",
    "address[*].probe.",
];

/// What a reload does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reload {
    /// The new config equals the running one.
    Unchanged,
    /// Only live keys changed: swap the config in.
    Apply {
        /// The keys that changed, dotted.
        changed: Vec<String>,
    },
    /// Some change needs a restart: keep the running config.
    Refuse {
        /// The keys that need a restart, dotted.
        restart: Vec<String>,
    },
}

impl Reload {
    /// A line for the operator.
    pub fn message(&self) -> String {
        match self {
            Reload::Unchanged => "reload: configuration unchanged".into(),
            Reload::Apply { changed } => format!("reload: applied {}", changed.join(", ")),
            Reload::Refuse { restart } => format!(
                "reload refused, running configuration kept: {} cannot change without a \
                 restart (it would change what is served); restart the agent on the \
                 secondary first",
                restart.join(", ")
            ),
        }
    }
}

/// Compares the running config with a new, already validated one.
pub fn compare(running: &Config, new: &Config) -> Reload {
    let (a, b) = (
        serde_json::to_value(running).unwrap_or(Value::Null),
        serde_json::to_value(new).unwrap_or(Value::Null),
    );
    let mut changed = Vec::new();
    diff(&a, &b, String::new(), &mut changed);
    if changed.is_empty() {
        return Reload::Unchanged;
    }
    let restart: Vec<String> = changed.iter().filter(|k| !live(k)).cloned().collect();
    if restart.is_empty() {
        Reload::Apply { changed }
    } else {
        Reload::Refuse { restart }
    }
}

fn live(key: &str) -> bool {
    // address[3].probe.timeout_ms -> address[*].probe.timeout_ms
    let generic = match (key.find('['), key.find(']')) {
        (Some(i), Some(j)) if i < j => format!("{}[*]{}", &key[..i], &key[j + 1..]),
        _ => key.to_string(),
    };
    LIVE.iter().any(|l| {
        if l.ends_with('.') {
            generic.starts_with(l)
        } else {
            generic == *l
        }
    })
}

/// The dotted keys (config spelling: `resource[0].lun[1].cache`) whose values differ.
fn diff(a: &Value, b: &Value, at: String, out: &mut Vec<String>) {
    let join = |k: &str| {
        if at.is_empty() {
            k.to_string()
        } else {
            format!("{at}.{k}")
        }
    };
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let name = match k.as_str() {
                    "resources" => "resource",
                    "addresses" => "address",
                    "luns" => "lun",
                    other => other,
                };
                let (va, vb) = (
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                );
                diff(va, vb, join(name), out);
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (va, vb)) in x.iter().zip(y).enumerate() {
                diff(va, vb, format!("{at}[{i}]"), out);
            }
        }
        _ if a != b => out.push(at),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn cfg(text: &str) -> Config {
        Config::parse(text, Path::new("t")).expect("valid")
    }

    #[test]
    fn classifies_keys() {
        let base = cfg(super::super::TEST_MINIMAL);
        assert_eq!(compare(&base, &base), Reload::Unchanged);
        let t = super::super::TEST_MINIMAL.replace(
            "[[resource]]",
            "[timeouts]\nauthority_settle_ms = 900\n[[resource]]",
        );
        assert_eq!(
            compare(&base, &cfg(&t)),
            Reload::Apply {
                changed: vec!["timeouts.authority_settle_ms".into()]
            }
        );
        let t = super::super::TEST_MINIMAL.replace(":r0\"", ":r9\"");
        assert_eq!(
            compare(&base, &cfg(&t)),
            Reload::Refuse {
                restart: vec!["resource[0].target.iqn".into()]
            }
        );
        assert!(live("address[7].probe.timeout_ms"));
        assert!(!live("address[7].interface"));
    }
}
