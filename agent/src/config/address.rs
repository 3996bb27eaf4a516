//! `[[address]]`: the floating addresses, checked with vip's own validator.

use std::collections::BTreeSet;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// A floating address.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Address {
    /// `address/prefix`, e.g. `192.168.10.50/24` or `fd00::10/64`. Its canonical spelling
    /// (`Display`, also what the effective config prints) names the address in plans, status
    /// and metrics, so two spellings of one address cannot differ.
    #[serde(with = "net")]
    pub address: IpNet,
    /// Interface to hold it on.
    pub interface: String,
    /// Names of the resources served behind it; claimed only once all of them serve.
    pub resources: Vec<String>,
    /// Announce policy (gratuitous ARP / unsolicited NA).
    #[serde(default)]
    pub announce: Announce,
    /// Duplicate-address probe before adding.
    #[serde(default)]
    pub probe: Probe,
}

impl Address {
    /// Whether `resource` is served behind it.
    pub fn serves(&self, resource: &str) -> bool {
        self.resources.iter().any(|r| r == resource)
    }
}

/// Announce policy after adding an address (gratuitous ARP / unsolicited NA).
///
/// The defaults are vip's own ([`vip::AnnouncePolicy::default`]: 5 announcements 200 ms
/// apart, as IPaddr2 sends), not a second set here: vip owns the wire behaviour and documents
/// where its numbers come from, the agent only passes the operator's overrides on. (This file
/// used to say 3 at 200 ms while vip said 5: which one applied depended on the caller.)
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Announce {
    /// Announcements per burst; the first is always sent inside the claim, so 0 acts as 1.
    pub count: u32,
    /// Spacing between announcements, ms.
    pub interval_ms: u64,
}

impl Default for Announce {
    fn default() -> Self {
        let vip = vip::AnnouncePolicy::default();
        Self {
            count: vip.count,
            interval_ms: millis(vip.interval),
        }
    }
}

/// Duplicate-address probe before adding (RFC 5227 / IPv6 DAD-like, see vip).
///
/// The window's default is vip's ([`vip::ProbePolicy::default`]'s `window`, 250 ms: three
/// probes 40-80 ms apart and time for a loaded host to answer the last one), for the same
/// reason as [`Announce`]'s.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Probe {
    /// Probe at all.
    pub enabled: bool,
    /// The whole probe window (first probe to verdict), ms.
    pub timeout_ms: u64,
}

impl Default for Probe {
    fn default() -> Self {
        Self {
            enabled: true,
            timeout_ms: millis(vip::ProbePolicy::default().window),
        }
    }
}

fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// `address/prefix` as text in its canonical spelling, with an error that says what to write.
mod net {
    use ipnet::IpNet;
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(n: &IpNet, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(n)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<IpNet, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(|_| {
            D::Error::custom(format!(
                "must be address/prefix, e.g. 192.168.10.50/24 or fd00::10/64, not {s:?}"
            ))
        })
    }
}

/// Checks the `[[address]]` tables against vip's own checks and the resource `names`; the
/// dotted key at fault and the reason.
pub(super) fn validate(
    addresses: &[Address],
    names: &BTreeSet<&str>,
) -> Result<(), (String, String)> {
    let err = |k: String, r: &str| Err((k, r.to_string()));
    let mut addrs = BTreeSet::new();
    for (i, a) in addresses.iter().enumerate() {
        let k = |f: &str| format!("address[{i}].{f}");
        let (ip, prefix) = (a.address.addr(), a.address.prefix_len());
        if let Err(e) = vip::Vip::check_address(ip, prefix) {
            return err(
                k("address"),
                &format!("{e}: must be a unicast, non-loopback address, not the network or broadcast address of its prefix, prefix at most 32 (IPv4) or 128 (IPv6) (vip's check)"),
            );
        }
        if !addrs.insert(ip) {
            return err(k("address"), "duplicate address");
        }
        if a.interface.is_empty() || a.interface.len() > 15 || a.interface.contains(['/', ' ']) {
            return err(
                k("interface"),
                "must be an interface name (1-15 characters)",
            );
        }
        if a.resources.is_empty() {
            return err(k("resources"), "must name at least one resource");
        }
        for (j, rn) in a.resources.iter().enumerate() {
            if !names.contains(rn.as_str()) {
                return err(
                    format!("address[{i}].resources[{j}]"),
                    "names no [[resource]] of this file",
                );
            }
            if a.resources[..j].contains(rn) {
                return err(format!("address[{i}].resources[{j}]"), "listed twice");
            }
        }
        if a.probe.enabled && a.probe.timeout_ms == 0 {
            return err(k("probe.timeout_ms"), "must be greater than 0 when probing");
        }
    }
    Ok(())
}
