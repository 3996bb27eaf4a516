//! `iscsi-ha check-config`: what the daemon would read, checked the same way, and printed back.

use std::fmt::Write;
use std::path::Path;

use super::Config;

/// What `check-config` found.
#[derive(Debug)]
pub struct Report {
    /// The config, validated.
    pub config: Config,
    /// A summary: one line per LUN with its cache mode, and the fingerprint to compare with
    /// the peer's ([`Config::fingerprint`]).
    pub summary: String,
    /// The whole config with every default filled in, as TOML.
    pub effective: String,
}

/// Loads and validates `path`, checks that every LUN is on one of its resource's volumes, and
/// reads the files the daemon would read (SMTP credentials, CHAP secrets: modes and contents
/// checked, nothing printed).
///
/// # Errors
/// The first problem found, naming the file, line and key where it has them.
pub fn report(path: &Path) -> anyhow::Result<Report> {
    let cfg = Config::load(path)?;
    // a problem found past the parse, at its key's line
    let at = |key: String, reason: String| {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        crate::error::ConfigError {
            file: path.to_path_buf(),
            line: super::locate(&text, &key),
            key,
            reason,
        }
    };
    if let Err((key, reason)) = cfg.check_devices() {
        return Err(at(key, reason).into());
    }
    if let Some(e) = &cfg.alerts.email {
        // The daemon builds the transport at the first alert; the check builds it now.
        let built = crate::alerts::Mailer::new(e).and_then(|mut m| m.transport().map(|_| ()));
        if let Err(err) = built {
            use crate::alerts::AlertError as A;
            let (key, reason) = match err {
                A::Invalid { key, reason } => (key, reason),
                A::Read { ref path, .. } if e.credentials.as_ref() != Some(path) => {
                    ("ca_file", err.to_string())
                }
                other => ("credentials", other.to_string()),
            };
            return Err(at(format!("alerts.email.{key}"), reason).into());
        }
    }
    if let Err((key, reason)) = crate::chap::check_config(&cfg) {
        return Err(at(key, reason).into());
    }
    if let Some(f) = cfg.tickle.as_ref().and_then(|t| t.secret_file.as_ref()) {
        if let Err(why) = super::read_tickle_secret(f) {
            return Err(at(
                "tickle.secret_file".into(),
                format!("{}: {why}", f.display()),
            )
            .into());
        }
    }
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{}: ok ({} resource(s), {} address(es))",
        path.display(),
        cfg.resources.len(),
        cfg.addresses.len()
    );
    // must print the same on both nodes
    for r in &cfg.resources {
        for l in &r.luns {
            let _ = writeln!(o, "resource {} lun {}: cache {}", r.name, l.lun, l.cache);
        }
    }
    let _ = writeln!(o, "{}", tickle_line(&cfg));
    for w in lossy_protocols(&cfg)
        .into_iter()
        .chain(slow_detection(&cfg))
    {
        let _ = writeln!(o, "warning: {w}");
    }
    let _ = writeln!(
        o,
        "fingerprint {} (must be the same on both nodes)",
        cfg.fingerprint()
    );
    let effective = format!(
        "# effective configuration, defaults filled in\n{}",
        cfg.effective_toml().map_err(anyhow::Error::msg)?
    );
    Ok(Report {
        config: cfg,
        summary: o,
        effective,
    })
}

/// Why a managed resource's DRBD net settings, as configured, make failure handling slow
/// ([`crate::fsm::DrbdNet::slow_detection`]; `status` says the same of adopted resources).
pub fn slow_detection(cfg: &Config) -> Vec<String> {
    cfg.resources
        .iter()
        .filter_map(|r| Some((r, r.manage.as_ref()?)))
        .flat_map(|(r, m)| {
            let net = crate::fsm::DrbdNet {
                ping_int_s: m.ping_int_s,
                ping_timeout_ds: m.ping_timeout_ds,
                timeout_ds: m.timeout_ds,
                ko_count: m.ko_count,
                allow_two_primaries: false,
            };
            net.slow_detection()
                .into_iter()
                .map(move |w| format!("{}: [resource.manage] {w}", r.name))
        })
        .collect()
}

/// Why a managed resource can lose acknowledged writes (`protocol` A or B: DRBD completes a
/// write before the peer's disk has it, so after a power loss of the primary the survivor lacks
/// writes the initiators were told are done); shown by `check-config` and `status`.
pub fn lossy_protocols(cfg: &Config) -> Vec<String> {
    use super::resource::Protocol;
    cfg.resources
        .iter()
        .filter_map(|r| Some((r, r.manage.as_ref()?)))
        .filter(|(_, m)| m.protocol != Protocol::C)
        .map(|(r, m)| {
            format!(
                "{}: manage.protocol = \"{:?}\": DRBD acknowledges a write before the peer's disk \
                 has it, so a power loss of the primary loses writes the initiators were told \
                 are done; only \"C\" loses none",
                r.name, m.protocol
            )
        })
        .collect()
}

/// `check-config`'s line on `[tickle]`.
fn tickle_line(cfg: &Config) -> String {
    match &cfg.tickle {
        None => "tickle: off (no [tickle] section: after a power loss initiators wait for their \
                 own timeout)"
            .into(),
        Some(t) => format!(
            "tickle: peer link {} -> {} ({}), portal port {}, {}, {} tickle ACK(s) per \
             connection, {}",
            t.listen,
            t.peer,
            if t.secret_file.is_some() {
                "datagrams authenticated with the secret_file"
            } else {
                "datagrams not authenticated: no secret_file"
            },
            t.port,
            match t.sync_ms {
                0 => "no periodic list (sync_ms = 0)".to_string(),
                ms => format!("list synced every {ms} ms while an address is held"),
            },
            t.repeat,
            match t.handover_ms {
                0 => "a planned demote closes the connections (handover_ms = 0)".to_string(),
                ms => format!("a planned demote waits up to {ms} ms for the peer's handover ack"),
            }
        ),
    }
}

#[cfg(test)]
mod protocol_tests {
    use std::path::Path;

    use super::*;

    /// A managed resource `m0` with `manage` lines added to its `[resource.manage]`.
    fn managed(manage: &str) -> Config {
        let text = format!(
            "{}\n[[resource]]\nname = \"m0\"\nminor = 5\nmode = \"manage\"\n\
             target = {{ iqn = \"iqn.2026-11.org.example:m0\", tid = 5, initiators = \"all\" }}\n\
             [resource.manage]\ndisk = \"/dev/vdb\"\nlocal = \"10.0.0.1:7789\"\n\
             peer = \"10.0.0.2:7789\"\n{manage}\n\
             [[resource.lun]]\nlun = 1\ndevice = \"/dev/drbd5\"\nscsi_id = \"m0\"\n\
             scsi_sn = \"M0\"\nvendor = \"IET\"\nproduct = \"VIRTUAL-DISK\"\n",
            crate::config::TEST_MINIMAL
        );
        Config::parse(&text, Path::new("<test>")).expect("config")
    }

    #[test]
    fn slow_detection_of_a_managed_resource_is_named() {
        assert!(
            slow_detection(&managed("")).is_empty(),
            "defaults are quick"
        );
        let w = slow_detection(&managed(
            "ko_count = 0\nping_int_s = 120\nping_timeout_ds = 300",
        ));
        assert_eq!(w.len(), 3, "{w:?}");
        assert!(
            w.iter().all(|w| w.starts_with("m0: [resource.manage] ")),
            "{w:?}"
        );
        assert!(
            w[0].contains("ping-int 120 s") && w[0].contains("150.0 s"),
            "{w:?}"
        );
        assert!(w[1].contains("ping-timeout 30.0 s"), "{w:?}");
        assert!(w[2].contains("ko-count 0"), "{w:?}");
        let w = slow_detection(&managed("ko_count = 5"));
        assert!(
            w.len() == 1 && w[0].contains("ko-count 5 x timeout 6.0 s"),
            "{w:?}"
        );
    }

    #[test]
    fn protocol_a_or_b_is_named_c_is_not() {
        let managed = |protocol: &str| lossy_protocols(&managed(protocol));
        assert!(managed("").is_empty());
        assert!(managed("protocol = \"C\"").is_empty());
        let w = managed("protocol = \"A\"");
        assert!(
            w.len() == 1 && w[0].starts_with("m0: manage.protocol = \"A\""),
            "{w:?}"
        );
    }
}

/// The error for an interface the host does not have (`vip`'s `unknown interface "eht0"`),
/// located in `cfg`'s file: `FILE:LINE: address[I].interface: ...`, naming the address (the
/// first entry on that interface); `None` when no address of `cfg` names `iface`.
pub fn unknown_interface(cfg: &Config, iface: &str) -> Option<crate::error::ConfigError> {
    let (i, a) = (cfg.addresses.iter().enumerate()).find(|(_, a)| a.interface == iface)?;
    let file = cfg.source.clone().unwrap_or_else(|| "<string>".into());
    let key = format!("address[{i}].interface");
    let text = std::fs::read_to_string(&file).unwrap_or_default();
    Some(crate::error::ConfigError {
        line: super::locate(&text, &key),
        file,
        key,
        reason: format!(
            "unknown interface {iface:?} (address {}): this host has no such interface",
            a.address
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_interface_is_located() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("iscsi-ha.toml");
        let text = format!(
            "{}[[address]]\naddress = \"10.0.0.10/24\"\ninterface = \"eht0\"\n\
             resources = [\"r0\"]\n",
            super::super::TEST_MINIMAL
        );
        std::fs::write(&file, &text).expect("write");
        let cfg = Config::load(&file).expect("loads");
        let line = text.lines().position(|l| l.contains("eht0")).expect("line") + 1;
        let e = unknown_interface(&cfg, "eht0").expect("located");
        assert_eq!(
            e.to_string(),
            format!(
                "{}:{line}: address[0].interface: unknown interface \"eht0\" (address \
                 10.0.0.10/24): this host has no such interface",
                file.display()
            )
        );
        assert!(unknown_interface(&cfg, "eth1").is_none());
    }
}
