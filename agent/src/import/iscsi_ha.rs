//! iSCSI-HA's own settings (iscsi-ha.conf + iscsi-ha_local.conf) in the imported TOML: role,
//! floating address, mail alerts, and a note for each key with no equivalent.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use super::map::{Inputs, Out};
use super::shell::Assignment;
use super::{ParseError, SecretFile};

pub(super) fn write_role(
    o: &mut Out,
    vars: &BTreeMap<&str, &Assignment>,
    used: &mut BTreeSet<&str>,
) {
    let _ = writeln!(o.toml, "\n[role]");
    match vars.get("MANUAL_MODE") {
        Some(a) if !a.value.is_empty() => {
            used.insert("MANUAL_MODE");
            o.kv(
                "source",
                "command",
                &format!(
                    "MANUAL_MODE={} at {}: operators decide with iscsi-ha promote|demote",
                    a.value, a.at
                ),
            );
        }
        other => {
            if let Some(a) = other {
                used.insert("MANUAL_MODE");
                let _ = writeln!(
                    o.toml,
                    "# MANUAL_MODE empty at {}: automatic, following the pool master",
                    a.at
                );
            }
            o.kv(
                "source",
                "pool-conf",
                "as iSCSI-HA: primary on the XenServer/XCP-ng pool master",
            );
            o.kv("path", crate::config::DEFAULT_POOL_CONF, "default");
        }
    }
}

/// Notes every key no part of the import used, with the reason it has no equivalent.
pub(super) fn note_unused(o: &mut Out, vars: &BTreeMap<&str, &Assignment>, used: &BTreeSet<&str>) {
    for (k, a) in vars {
        if used.contains(k) {
            continue;
        }
        let reason = match *k {
            "ISCSI_TARGET_SERVICE" if a.value == "tgtd" => "the agent drives tgtd through its socket; nothing to set",
            "ISCSI_TARGET_SERVICE" => "the agent serves with tgtd only",
            "ENABLE_LOGGING" => "the agent always logs (journald or stderr)",
            "MONITOR_DELAY" | "MONITOR_SCANRATE" => "the agent reacts to DRBD, tgtd and pool.conf events as they happen; its slow re-check is timeouts.safety_net_s (default 60 s)",
            "MONITOR_MAX_STARTS" | "MONITOR_KILLALL" => "the agent is one supervised process (systemd restarts it); no monitor to restart",
            "SERVER_ONE_IP" | "SERVER_TWO_IP" | "REPLICATION_IP_ISCSI" => "replication addresses belong to DRBD (drbd.conf, or [resource.manage] local/peer)",
            k if k.starts_with("MAIL_") || k.starts_with("SMTP_") => "mail alerts are off (MAIL_ON is not 1)",
            _ => "not an iSCSI-HA setting this import knows",
        };
        let setting = if *k == "SMTP_PASS" {
            k.to_string()
        } else {
            format!("{k}={}", a.value)
        };
        o.note(&a.at, setting, reason);
    }
}

fn mask_prefix(mask: &str) -> Option<u8> {
    let m: std::net::Ipv4Addr = mask.parse().ok()?;
    let bits = u32::from(m);
    let ones = bits.leading_ones();
    (bits.checked_shl(ones).unwrap_or(0) == 0).then_some(ones as u8)
}

pub(super) fn write_address(
    o: &mut Out,
    vars: &BTreeMap<&str, &Assignment>,
    used: &mut BTreeSet<&str>,
    names: &[String],
) -> Result<(), ParseError> {
    let Some(ip) = vars.get("DRBD_VIRTUAL_IP") else {
        return Ok(());
    };
    used.insert("DRBD_VIRTUAL_IP");
    let addr: std::net::Ipv4Addr = ip
        .value
        .parse()
        .map_err(|_| ParseError::new(ip.at.clone(), "DRBD_VIRTUAL_IP must be an IPv4 address"))?;
    let (prefix, mask_from) = match vars.get("DRBD_VIRTUAL_MASK") {
        Some(m) => {
            used.insert("DRBD_VIRTUAL_MASK");
            let p = mask_prefix(&m.value).ok_or_else(|| ParseError::new(m.at.clone(), "DRBD_VIRTUAL_MASK must be a dotted netmask with contiguous ones, e.g. 255.255.255.0"))?;
            (p, format!("DRBD_VIRTUAL_MASK={} at {}", m.value, m.at))
        }
        None => {
            return Err(ParseError::new(
                ip.at.clone(),
                "DRBD_VIRTUAL_IP without DRBD_VIRTUAL_MASK",
            ))
        }
    };
    let Some(ifc) = vars.get("DRBD_INTERFACE") else {
        return Err(ParseError::new(
            ip.at.clone(),
            "DRBD_VIRTUAL_IP without DRBD_INTERFACE",
        ));
    };
    used.insert("DRBD_INTERFACE");
    let _ = writeln!(o.toml, "\n[[address]]");
    o.kv(
        "address",
        format!("{addr}/{prefix}"),
        &format!("DRBD_VIRTUAL_IP at {}, {mask_from}", ip.at),
    );
    o.kv(
        "interface",
        ifc.value.as_str(),
        &format!("DRBD_INTERFACE at {}", ifc.at),
    );
    o.kv(
        "resources",
        names.to_vec(),
        "every imported resource: iSCSI-HA moves one address for all",
    );
    Ok(())
}

pub(super) fn write_alerts(
    o: &mut Out,
    inp: &Inputs<'_>,
    vars: &BTreeMap<&str, &Assignment>,
    used: &mut BTreeSet<&str>,
) -> Result<(), ParseError> {
    let Some(on) = vars.get("MAIL_ON").filter(|a| a.value == "1") else {
        return Ok(());
    };
    used.insert("MAIL_ON");
    let get = |used: &mut BTreeSet<&str>, k: &'static str| {
        let a = vars.get(k).copied();
        if a.is_some() {
            used.insert(k);
        }
        a
    };
    let server = get(used, "SMTP_SERVER")
        .ok_or_else(|| ParseError::new(on.at.clone(), "MAIL_ON=1 without SMTP_SERVER"))?;
    let _ = writeln!(o.toml, "\n[alerts.email]   # MAIL_ON=1 at {}", on.at);
    o.kv(
        "server",
        server.value.as_str(),
        &format!("SMTP_SERVER at {}", server.at),
    );
    if let Some(p) = get(used, "SMTP_PORT") {
        let port: u16 = p
            .value
            .parse()
            .map_err(|_| ParseError::new(p.at.clone(), "SMTP_PORT must be a port number"))?;
        if port == 465 {
            o.note(&p.at, "SMTP_PORT=465", "iSCSI-HA uses implicit TLS (SMTPS) on 465; the agent speaks SMTP with STARTTLS: use the server's submission port (587)");
        }
        o.kv("port", i64::from(port), &format!("SMTP_PORT at {}", p.at));
    }
    o.kv(
        "starttls",
        false,
        "iSCSI-HA sends without TLS; set true if the server offers STARTTLS",
    );
    if let Some(f) = get(used, "MAIL_FROM") {
        o.kv("from", f.value.as_str(), &format!("MAIL_FROM at {}", f.at));
    }
    if let Some(t) = get(used, "MAIL_TO") {
        let to: Vec<String> = t
            .value
            .split([',', ' ', ';'])
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        o.kv("to", to, &format!("MAIL_TO at {}", t.at));
    }
    if let Some(s) = get(used, "MAIL_SUBJECT") {
        let v = s.value.replace("$HOSTNAME", inp.node);
        o.kv(
            "subject_prefix",
            v,
            &format!("MAIL_SUBJECT at {} ($HOSTNAME is this node)", s.at),
        );
    }
    if let Some(s) = get(used, "MAIL_SCREEN_TIME") {
        let m: u64 = s.value.parse().map_err(|_| {
            ParseError::new(s.at.clone(), "MAIL_SCREEN_TIME must be a number of minutes")
        })?;
        o.kv(
            "suppress_s",
            i64::try_from(m.saturating_mul(60)).unwrap_or(i64::MAX),
            &format!(
                "MAIL_SCREEN_TIME={m} at {} (minutes: iSCSI-HA's spool expiry is find -mmin)",
                s.at
            ),
        );
    }
    if let Some(s) = get(used, "MAIL_USE_SHARED_PARAMS").filter(|a| a.value == "1") {
        o.note(&s.at, "MAIL_USE_SHARED_PARAMS=1", "HA-Lizard's mail settings live in the XAPI pool database, which the import does not read; check the values above against `ha-cfg get`");
    }
    let user = get(used, "SMTP_USER").filter(|a| !a.value.is_empty());
    let pass = get(used, "SMTP_PASS").filter(|a| !a.value.is_empty());
    if let Some(u) = user {
        match inp.secrets_dir {
            Some(dir) => {
                let name = "smtp-credentials.toml".to_string();
                let contents = format!(
                    "username = {}\npassword = {}\n",
                    toml::Value::from(u.value.as_str()),
                    toml::Value::from(pass.map(|p| p.value.as_str()).unwrap_or(""))
                );
                o.kv("credentials", dir.join(&name).display().to_string(), &format!("SMTP_USER at {} and SMTP_PASS (mode 0600 file)", u.at));
                o.secrets.push(SecretFile { name, contents });
            }
            None => o.note(&u.at, "SMTP_USER/SMTP_PASS", "secrets are written only with --output (to a 0600 file beside it); set alerts.email.credentials yourself"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks() {
        assert_eq!(mask_prefix("255.255.255.0"), Some(24));
        assert_eq!(mask_prefix("255.255.255.255"), Some(32));
        assert_eq!(mask_prefix("0.0.0.0"), Some(0));
        assert_eq!(mask_prefix("255.0.255.0"), None);
        assert_eq!(mask_prefix("24"), None);
    }
}
