//! Live reload (`SIGHUP`, `iscsi-ha reload`): what a new config changes against the running one.
//!
//! Resources (by `name`) and addresses (by `address`) are compared as a set: unchanged ones are
//! left alone (no backend call changes them), removed ones are demoted and released, added ones
//! are brought in by the state machine (promoted on the primary, observed on a secondary). A
//! changed resource or address (a LUN added, an IQN or tid changed, an address's interface) is
//! removed and added again: only that one, never the others; a changed resource keeps its DRBD
//! device and role (the daemon refuses a change of it under an up device: [`drbd_changes`]).
//! Settings read at each use are applied in place (the node name in status, the timeouts,
//! which resources an address covers, each address's announce and probe policy, read at its
//! next claim; its probe period while held is taken by its running conflict watch at once).
//! The rest (the role source, sockets, metrics, alerts) is built into running tasks: a
//! change there refuses the reload with the keys that need a restart, and the running config is
//! kept.

use std::collections::BTreeMap;

use serde_json::Value;

use super::Config;

/// Keys applied in place: exact keys, or `address[*].` prefixes for any index.
const LIVE: &[&str] = &[
    "node",
    "timeouts.drbd_ms",
    "timeouts.tgtd_ms",
    "timeouts.address_ms",
    "timeouts.wfc_s",
    "timeouts.authority_settle_ms",
    "timeouts.authority_settle_primary_ms",
    "timeouts.broken_alarm_s",
    "address[*].announce.",
    "address[*].probe.",
    "address[*].resources",
];

/// An address's keys applied in place (compared key by key, not as part of its identity).
const ADDRESS_LIVE: &[&str] = &["announce", "probe", "resources"];

/// The resources and addresses a reload takes out and brings in (a changed one is in both).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delta {
    /// Resources demoted and dropped, by name.
    pub removed_resources: Vec<String>,
    /// Resources brought in, by name.
    pub added_resources: Vec<String>,
    /// Addresses released and dropped, canonical spelling.
    pub removed_addresses: Vec<String>,
    /// Addresses brought in, canonical spelling.
    pub added_addresses: Vec<String>,
}

impl Delta {
    /// Nothing added or removed.
    pub fn is_empty(&self) -> bool {
        self.removed_resources.is_empty()
            && self.added_resources.is_empty()
            && self.removed_addresses.is_empty()
            && self.added_addresses.is_empty()
    }

    /// Something is brought in.
    pub fn adds(&self) -> bool {
        !self.added_resources.is_empty() || !self.added_addresses.is_empty()
    }

    fn describe(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (what, removed, added) in [
            ("resource", &self.removed_resources, &self.added_resources),
            ("address", &self.removed_addresses, &self.added_addresses),
        ] {
            for n in removed {
                let verb = if added.contains(n) {
                    "replaced"
                } else {
                    "removed"
                };
                out.push(format!("{verb} {what} {n}"));
            }
            for n in added.iter().filter(|n| !removed.contains(n)) {
                out.push(format!("added {what} {n}"));
            }
        }
        out
    }
}

/// What a reload does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reload {
    /// The new config equals the running one.
    Unchanged,
    /// Apply: swap the config in, after demoting what is removed; then bring in what is added.
    Apply {
        /// The keys applied in place, dotted.
        changed: Vec<String>,
        /// The resources and addresses taken out and brought in.
        delta: Delta,
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
            Reload::Apply { changed, delta } => {
                let mut parts = delta.describe();
                if !changed.is_empty() {
                    parts.push(format!("applied {}", changed.join(", ")));
                }
                format!("reload: {}", parts.join("; "))
            }
            Reload::Refuse { restart } => format!(
                "reload refused, running configuration kept: {} cannot change without a \
                 restart; restart the agent on the secondary first",
                restart.join(", ")
            ),
        }
    }
}

/// The keys of a resource that make its DRBD device (`minor`, `mode`, `manage`, `volume`)
/// differing between `old` and `new`: the agent cannot change them under an up device (it
/// would configure a second device or leave the running one as it is), so a reload replacing
/// a resource whose DRBD device is up refuses these (docs in `agent/README.md`).
pub fn drbd_changes(old: &super::Resource, new: &super::Resource) -> Vec<&'static str> {
    [
        ("minor", old.minor != new.minor),
        ("mode", old.mode != new.mode),
        ("manage", old.manage != new.manage),
        ("volume", old.volumes != new.volumes),
    ]
    .into_iter()
    .filter_map(|(k, changed)| changed.then_some(k))
    .collect()
}

/// Compares the running config with a new, already validated one.
pub fn compare(running: &Config, new: &Config) -> Reload {
    let (mut a, mut b) = (
        serde_json::to_value(running).unwrap_or(Value::Null),
        serde_json::to_value(new).unwrap_or(Value::Null),
    );
    let (res_a, res_b) = (take(&mut a, "resource"), take(&mut b, "resource"));
    let (addr_a, addr_b) = (take(&mut a, "address"), take(&mut b, "address"));
    let mut changed = Vec::new();
    diff(&a, &b, String::new(), &mut changed);
    let (removed_resources, added_resources) = sets(&res_a, &res_b, "name", &[]);
    let (removed_addresses, added_addresses) = sets(&addr_a, &addr_b, "address", ADDRESS_LIVE);
    // Kept addresses: their live keys, named by their index in the new config.
    let old: BTreeMap<&str, &Value> = addr_a.iter().map(|v| (key(v, "address"), v)).collect();
    for (i, v) in addr_b.iter().enumerate() {
        let name = key(v, "address");
        if let (Some(o), false) = (old.get(name), added_addresses.iter().any(|n| n == name)) {
            for k in ADDRESS_LIVE {
                let (x, y) = (o.get(*k), v.get(*k));
                let (x, y) = (x.unwrap_or(&Value::Null), y.unwrap_or(&Value::Null));
                diff(x, y, format!("address[{i}].{k}"), &mut changed);
            }
        }
    }
    let delta = Delta {
        removed_resources,
        added_resources,
        removed_addresses,
        added_addresses,
    };
    if changed.is_empty() && delta.is_empty() {
        return Reload::Unchanged;
    }
    let restart: Vec<String> = changed.iter().filter(|k| !live(k)).cloned().collect();
    if restart.is_empty() {
        Reload::Apply { changed, delta }
    } else {
        Reload::Refuse { restart }
    }
}

fn take(v: &mut Value, k: &str) -> Vec<Value> {
    match v.as_object_mut().and_then(|o| o.remove(k)) {
        Some(Value::Array(items)) => items,
        _ => Vec::new(),
    }
}

fn key<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or_default()
}

/// Items of `a` not equal in `b` (removed) and of `b` not equal in `a` (added), by `id`,
/// ignoring the keys in `skip`.
fn sets(a: &[Value], b: &[Value], id: &str, skip: &[&str]) -> (Vec<String>, Vec<String>) {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(o) = v.as_object_mut() {
            skip.iter().for_each(|k| drop(o.remove(*k)));
        }
        v
    };
    let index = |items: &[Value]| -> BTreeMap<String, Value> {
        items
            .iter()
            .map(|v| (key(v, id).to_string(), strip(v)))
            .collect()
    };
    let (a, b) = (index(a), index(b));
    let gone = |x: &BTreeMap<String, Value>, y: &BTreeMap<String, Value>| {
        x.iter()
            .filter(|(n, v)| y.get(*n) != Some(*v))
            .map(|(n, _)| n.clone())
            .collect()
    };
    (gone(&a, &b), gone(&b, &a))
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
                changed: vec!["timeouts.authority_settle_ms".into()],
                delta: Delta::default(),
            }
        );
        // A changed resource is replaced, alone.
        let t = super::super::TEST_MINIMAL.replace(":r0\"", ":r9\"");
        let Reload::Apply { changed, delta } = compare(&base, &cfg(&t)) else {
            panic!("not applied");
        };
        assert!(changed.is_empty());
        assert_eq!(delta.removed_resources, delta.added_resources);
        assert_eq!(delta.removed_resources.len(), 1);
        assert!(delta.removed_addresses.is_empty() && delta.added_addresses.is_empty());
        let t = super::super::TEST_MINIMAL.replace(
            "[[resource]]",
            "[sockets]\ntgtd = \"/tmp/other\"\n[[resource]]",
        );
        assert!(matches!(compare(&base, &cfg(&t)), Reload::Refuse { .. }));
        assert!(live("address[7].probe.timeout_ms"));
        assert!(live("address[0].probe.while_held_s"));
        let with_address = |period: u32| {
            format!(
                "{}[[address]]\naddress = \"10.0.0.10/24\"\ninterface = \"eth0\"\n\
                 resources = [\"r0\"]\nprobe = {{ while_held_s = {period} }}\n",
                super::super::TEST_MINIMAL
            )
        };
        assert_eq!(
            compare(&cfg(&with_address(10)), &cfg(&with_address(2))),
            Reload::Apply {
                changed: vec!["address[0].probe.while_held_s".into()],
                delta: Delta::default(),
            }
        );
        assert!(!live("address[7].interface"));
    }
}
