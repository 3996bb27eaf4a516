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

/// Duplicate-address probes (RFC 5227 / IPv6 DAD-like, see vip): before adding the address,
/// and periodically while it is held.
///
/// The window's default is vip's ([`vip::ProbePolicy::default`]'s `window`, 250 ms: three
/// probes 40-80 ms apart and time for a loaded host to answer the last one), for the same
/// reason as [`Announce`]'s.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Probe {
    /// Probe before claiming the address.
    pub enabled: bool,
    /// The whole probe window (first probe to verdict), ms.
    pub timeout_ms: u64,
    /// While the address is held here, one probe every this many seconds, so another host
    /// holding it silently (a healed partition) answers and the conflict watch notices it
    /// (docs/takeover.md); 0 = off. Independent of `enabled`. Default 10 (one frame per
    /// address every RFC 5227 `DEFEND_INTERVAL`), at most 3600.
    pub while_held_s: u64,
}

/// Default of [`Probe::while_held_s`]: another holder is noticed within 10 s for one broadcast
/// ARP frame (60 bytes) per address every 10 s, RFC 5227's `DEFEND_INTERVAL`, the rate the
/// watch already probes at while a conflict is shown.
pub const PROBE_WHILE_HELD_S: u64 = 10;

/// Upper bound of [`Probe::while_held_s`]: a longer period would leave two holders (two
/// Primaries serving diverging data) unnoticed for longer than any client's ARP cache lives.
pub const PROBE_WHILE_HELD_MAX_S: u64 = 3600;

impl Default for Probe {
    fn default() -> Self {
        Self {
            enabled: true,
            timeout_ms: millis(vip::ProbePolicy::default().window),
            while_held_s: PROBE_WHILE_HELD_S,
        }
    }
}

impl Probe {
    /// The period of the probe while held, `None` when off.
    pub fn while_held(&self) -> Option<std::time::Duration> {
        (self.while_held_s > 0).then(|| std::time::Duration::from_secs(self.while_held_s))
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

/// Time [`Probe::timeout_ms`] must leave within `timeouts.address_ms`, ms: the claim waits for
/// the rest of the window, then adds the address and sends its first announcement, all inside
/// one `address_ms`, as does the wait for the verdict before DRBD promotes without its peer.
/// A window as long as `address_ms` would time every claim out (rolled back, retried, never
/// serving); 200 ms covers the add and the first frame on a loaded host.
pub const PROBE_CLAIM_MARGIN_MS: u64 = 200;

/// Largest [`Announce::count`]: a burst is sent twice, and RFC 5227 asks for 2
/// (`ANNOUNCE_NUM`), IPaddr2 sends 5; more only floods the segment.
pub const ANNOUNCE_COUNT_MAX: u32 = 100;

/// Largest [`Announce::interval_ms`]: past a minute the later announcements no longer help
/// neighbours that missed the first ones.
pub const ANNOUNCE_INTERVAL_MAX_MS: u64 = 60_000;

/// Checks the `[[address]]` tables against vip's own checks, the resource `names` and the
/// per-operation `address_ms` (`timeouts.address_ms`); the dotted key at fault and the reason.
pub(super) fn validate(
    addresses: &[Address],
    names: &BTreeSet<&str>,
    address_ms: u64,
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
        if a.probe.enabled && a.probe.timeout_ms.saturating_add(PROBE_CLAIM_MARGIN_MS) > address_ms
        {
            return err(
                k("probe.timeout_ms"),
                &format!(
                    "is {}; at most timeouts.address_ms ({address_ms}) - {PROBE_CLAIM_MARGIN_MS}: \
                     the claim waits for the rest of the window, then adds and announces the \
                     address, within timeouts.address_ms (raise that for a longer window)",
                    a.probe.timeout_ms
                ),
            );
        }
        if a.announce.count > ANNOUNCE_COUNT_MAX {
            return err(
                k("announce.count"),
                &format!("is {}; at most {ANNOUNCE_COUNT_MAX}", a.announce.count),
            );
        }
        if a.announce.interval_ms > ANNOUNCE_INTERVAL_MAX_MS {
            return err(
                k("announce.interval_ms"),
                &format!(
                    "is {}; at most {ANNOUNCE_INTERVAL_MAX_MS}",
                    a.announce.interval_ms
                ),
            );
        }
        if a.probe.while_held_s > PROBE_WHILE_HELD_MAX_S {
            return err(
                k("probe.while_held_s"),
                &format!("must be at most {PROBE_WHILE_HELD_MAX_S} (0 turns it off)"),
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::*;
    use crate::config::{Config, TEST_MINIMAL};

    /// TEST_MINIMAL with one address whose `[address.probe]` table is `probe`.
    fn parse(probe: &str) -> Result<Config, crate::error::ConfigError> {
        let text = format!(
            "{TEST_MINIMAL}[[address]]\naddress = \"10.0.0.10/24\"\ninterface = \"eth0\"\n\
             resources = [\"r0\"]\n[address.probe]\n{probe}\n"
        );
        Config::parse(&text, Path::new("t.toml"))
    }

    #[test]
    fn probe_while_held_default_off_and_bounds() {
        let c = parse("").expect("parses");
        let p = &c.addresses[0].probe;
        assert_eq!(p.while_held_s, PROBE_WHILE_HELD_S);
        assert_eq!(p.while_held(), Some(Duration::from_secs(10)));
        // Independent of the probe before claiming.
        let c = parse("enabled = false").expect("parses");
        assert_eq!(
            c.addresses[0].probe.while_held(),
            Some(Duration::from_secs(10))
        );
        let c = parse("while_held_s = 0").expect("parses");
        assert_eq!(c.addresses[0].probe.while_held(), None);
        let c = parse("while_held_s = 1").expect("parses");
        assert_eq!(
            c.addresses[0].probe.while_held(),
            Some(Duration::from_secs(1))
        );
        let max = format!("while_held_s = {PROBE_WHILE_HELD_MAX_S}");
        assert!(parse(&max).is_ok());
        for (text, words) in [
            ("while_held_s = 3601", "at most 3600"),
            ("while_held_s = -1", ""),
            ("while_held_s = \"10\"", ""),
        ] {
            let e = parse(text).expect_err(text);
            assert!(e.key.contains("while_held_s"), "{text}: {e}");
            assert!(e.reason.contains(words), "{text}: {e}");
        }
        // Shown by the effective config.
        let toml = parse("").expect("parses").effective_toml().expect("toml");
        assert!(toml.contains("while_held_s = 10"), "{toml}");
    }

    #[test]
    fn probe_window_fits_in_the_claims_timeout() {
        // timeouts.address_ms is 2000 by default: the window may take 1800 of it.
        assert!(parse("timeout_ms = 1800").is_ok());
        for text in [
            "timeout_ms = 1801",
            "timeout_ms = 3000",
            "timeout_ms = 9223372036854775807",
        ] {
            let e = parse(text).expect_err(text);
            assert_eq!(e.key, "address[0].probe.timeout_ms", "{text}: {e}");
            assert!(
                e.reason.contains("timeouts.address_ms (2000) - 200"),
                "{text}: {e}"
            );
        }
        // Not probing: the window is not used.
        assert!(parse("enabled = false\ntimeout_ms = 3000").is_ok());
        // A longer address_ms allows a longer window.
        let (head, rest) = TEST_MINIMAL.split_once("[[resource]]").expect("resource");
        let text = format!(
            "{head}[timeouts]\naddress_ms = 8000\n[[resource]]{rest}[[address]]\n\
             address = \"10.0.0.10/24\"\ninterface = \"eth0\"\nresources = [\"r0\"]\n\
             [address.probe]\ntimeout_ms = 7000\n"
        );
        assert!(Config::parse(&text, Path::new("t.toml")).is_ok());
    }

    #[test]
    fn announce_bounds() {
        let with = |announce: &str| {
            let text = format!(
                "{TEST_MINIMAL}[[address]]\naddress = \"10.0.0.10/24\"\ninterface = \"eth0\"\n\
                 resources = [\"r0\"]\n[address.announce]\n{announce}\n"
            );
            Config::parse(&text, Path::new("t.toml"))
        };
        assert!(with("count = 100\ninterval_ms = 60000").is_ok());
        for (text, key) in [
            ("count = 101", "address[0].announce.count"),
            (
                "count = 4294967295\ninterval_ms = 0",
                "address[0].announce.count",
            ),
            ("interval_ms = 60001", "address[0].announce.interval_ms"),
        ] {
            let e = with(text).expect_err(text);
            assert_eq!(e.key, key, "{text}: {e}");
            assert!(e.reason.contains("at most"), "{text}: {e}");
        }
    }
}
