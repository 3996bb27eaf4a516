//! `[tickle]`: the peer link over which the holder of an address tells its peer the client
//! connections on it, so that a survivor claiming the address after a power loss can reset them
//! at once with tickle ACKs (docs/takeover.md, "Tickle ACKs after a power loss").

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// tgtd's default iSCSI portal port (the agent does not configure portals: tgtd listens on
/// `0.0.0.0:3260` and `[::]:3260`).
pub const DEFAULT_PORT: u16 = 3260;
/// Default [`Tickle::sync_ms`].
pub const DEFAULT_SYNC_MS: u64 = 1000;
/// Largest [`Tickle::sync_ms`]: past a minute the "every 10 s unchanged" refresh and a new
/// connection's listing would both wait that long, so a power loss would strand more
/// initiators than the setting saves wake-ups.
pub const MAX_SYNC_MS: u64 = 60_000;
/// Default [`Tickle::repeat`] (CTDB's `ctdb_sys_send_tcp` callers send 3).
pub const DEFAULT_REPEAT: u32 = 3;
/// Largest [`Tickle::repeat`]: more only multiplies the same packet.
pub const MAX_REPEAT: u32 = 10;
/// Default [`Tickle::handover_ms`].
pub const DEFAULT_HANDOVER_MS: u64 = 200;
/// Largest [`Tickle::handover_ms`]: the wait is part of every planned demote.
pub const MAX_HANDOVER_MS: u64 = 2000;
/// Shortest secret in [`Tickle::secret_file`], bytes (128 bits, HMAC-SHA256's security level
/// against a guessed key needs no more from a random secret).
pub const MIN_SECRET: usize = 16;
/// Longest secret in [`Tickle::secret_file`], bytes.
pub const MAX_SECRET: usize = 4096;

/// `[tickle]`: absent, no connection is learnt or tickled, and after a power loss an
/// initiator with a command in flight waits for its own command or NOP-Out timeout (3 s to
/// 10 s and more) before it logs in to the survivor. Read at start: a change needs a restart.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Tickle {
    /// This node's UDP endpoint for the peer link, `ip:port`: a fixed unicast address of this
    /// node, e.g. on the replication network (not unspecified, multicast, broadcast, loopback,
    /// IPv6 link-local, or a floating `[[address]]`). Bound at start; a failed bind (the
    /// address not up yet, the port taken) is logged, shown by `status` and retried (1 s
    /// doubling to 30 s) while the daemon serves without the link. Lists and acks are sent
    /// from this socket.
    pub listen: SocketAddr,
    /// The peer's `listen`. Datagrams from any other endpoint (IP and port) are dropped.
    pub peer: SocketAddr,
    /// The iSCSI portal port whose connections on each floating address are learnt and
    /// tickled; default 3260 (tgtd's).
    #[serde(default = "default_port")]
    pub port: u16,
    /// How often the holder of an address re-reads its client connections (one `sock_diag`
    /// dump per held address, well under a millisecond) and sends the list to the peer when it
    /// changed (unchanged, every 10 s, so a restarted peer learns it), in milliseconds; 0: no
    /// periodic list (after a power loss of this node its peer has none to tickle; it still
    /// learns its peer's lists and tickles them, and a planned demote still hands its
    /// connections over unless `handover_ms = 0`). A connection made within the last `sync_ms`
    /// before a power loss is not in the peer's list and waits for its initiator's timeout;
    /// initiators keep their connections for hours, so 1000 ms (the default) covers all but a
    /// login in the last second at one wake-up per second, only on the node that holds an
    /// address. 0, or 10 to 60000.
    #[serde(default = "default_sync_ms")]
    pub sync_ms: u64,
    /// Tickle ACKs sent per connection on a claim (a lost one leaves that initiator to its
    /// timeout); default 3, 1 to 10.
    #[serde(default = "default_repeat")]
    pub repeat: u32,
    /// A planned demote's silent handover (docs/takeover.md, "Demote order"): how long the
    /// `target-offline` stage waits for the peer to acknowledge the fresh list of the
    /// connections on the resource's addresses, in milliseconds. Acknowledged, the target
    /// refuses new logins but keeps its connections until `target-remove`, after the address
    /// is gone, so no FIN reaches an initiator and the peer's claim resets them at once (the
    /// initiator logs in to the new primary without a SYN lost to the old node); not in time,
    /// the connections are closed while the address is still here, as without `[tickle]`. The
    /// peer link is on the LAN: an acknowledgement takes well under a millisecond natively and
    /// 10 to 30 ms in a loaded emulated guest, so 200 (the default) waits for a slow peer and
    /// costs a silent one's demote 200 ms. 0: never hand over (always close). At most 2000.
    #[serde(default = "default_handover_ms")]
    pub handover_ms: u64,
    /// A file holding a secret both nodes share (16 to 4096 bytes; one trailing newline is
    /// not part of it), readable by its owner only, owned by the user the agent runs as: every
    /// datagram then carries an HMAC-SHA256 of itself under that secret, and one without a
    /// valid tag is dropped, so a host that forges the peer's address can no longer replace
    /// the learnt list or acknowledge a handover (docs/takeover.md, "Threat model"). Both
    /// nodes must agree: a keyed node drops an unkeyed peer's datagrams and the other way
    /// round, and `status` says which. Read at start. Absent: datagrams are not authenticated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_file: Option<PathBuf>,
}

/// Reads the peer link's secret from `path` ([`Tickle::secret_file`]): opened once, without
/// following a final symbolic link or waiting on a FIFO, and checked on that open file, so what
/// is checked is what is read.
///
/// # Errors
/// Why it cannot be used, in words: not readable, a symbolic link, not a regular file,
/// readable or writable by group or others, owned by another user than this process's
/// effective one, shorter than 16 bytes (`MIN_SECRET`) or longer than 4096 (`MAX_SECRET`).
pub fn read_secret(path: &Path) -> Result<Vec<u8>, String> {
    use std::io::Read;
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let flags = nix::fcntl::OFlag::O_NOFOLLOW | nix::fcntl::OFlag::O_NONBLOCK;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits())
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(code) if code == nix::errno::Errno::ELOOP as i32 => {
                "is a symbolic link: name the file itself".to_string()
            }
            _ => e.to_string(),
        })?;
    let meta = f.metadata().map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("is not a regular file".into());
    }
    if meta.mode() & 0o077 != 0 {
        return Err(format!(
            "is open to group or others (mode {:o}): chmod 600 it",
            meta.mode() & 0o777
        ));
    }
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != me {
        return Err(format!(
            "is owned by uid {}; it must be owned by the user the agent runs as (uid {me} \
             reads it here)",
            meta.uid()
        ));
    }
    let mut secret = Vec::new();
    f.take(MAX_SECRET as u64 + 3)
        .read_to_end(&mut secret)
        .map_err(|e| e.to_string())?;
    if secret.len() > MAX_SECRET + 2 {
        return Err(format!("is longer than {MAX_SECRET} bytes"));
    }
    for end in [b'\n', b'\r'] {
        if secret.last() == Some(&end) {
            secret.pop();
        }
    }
    if !(MIN_SECRET..=MAX_SECRET).contains(&secret.len()) {
        return Err(format!(
            "holds {} bytes; the secret must be {MIN_SECRET} to {MAX_SECRET} (e.g. `head -c 32 \
             /dev/urandom | base64 > FILE`, then copy FILE to the peer)",
            secret.len()
        ));
    }
    Ok(secret)
}

/// Why the agent's unit would not see `path` though a shell does (`ProtectHome=yes`,
/// `PrivateTmp=yes` in packaging/iscsi-ha.service), `None` when it would.
pub fn hidden_from_the_unit(path: &Path) -> Option<String> {
    ["/root", "/home", "/run/user", "/tmp", "/var/tmp"]
        .iter()
        .find(|d| path.starts_with(d))
        .map(|d| {
            format!(
                "{} is under {d}, which the iscsi-ha unit hides from the daemon (ProtectHome=, \
                 PrivateTmp=); keep it in /etc/iscsi-ha/",
                path.display()
            )
        })
}

fn default_port() -> u16 {
    DEFAULT_PORT
}

fn default_sync_ms() -> u64 {
    DEFAULT_SYNC_MS
}

fn default_repeat() -> u32 {
    DEFAULT_REPEAT
}

fn default_handover_ms() -> u64 {
    DEFAULT_HANDOVER_MS
}

/// Why `ip` cannot be one end of the link (`None`: it can). Each end must be one node's own
/// unicast address: the peer drops datagrams from any other source than its `peer`.
fn not_an_end(ip: IpAddr) -> Option<&'static str> {
    match ip {
        _ if ip.is_unspecified() => Some("is unspecified: name this node's own address"),
        _ if ip.is_multicast() => Some("is a multicast address"),
        IpAddr::V4(v4) if v4.is_broadcast() => Some("is the broadcast address"),
        // A link-local address needs a scope id, here only as an interface index, which
        // changes when interfaces are renumbered; the peer compares it too.
        IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80 => Some(
            "is IPv6 link-local: use a global or unique-local (fd00::/8) address of the \
             replication network",
        ),
        _ => None,
    }
}

/// The dotted key at fault and the reason; `addresses` are the floating ones (`[[address]]`).
pub(super) fn validate(t: &Tickle, addresses: &[super::Address]) -> Result<(), (String, String)> {
    let err = |k: &str, r: String| Err((format!("tickle.{k}"), r));
    if t.listen.port() == 0 {
        return err("listen", "needs a port (the peer sends to it)".into());
    }
    if t.peer.port() == 0 {
        return err("peer", "needs a port (the peer's `listen`)".into());
    }
    for (key, end) in [("listen", t.listen), ("peer", t.peer)] {
        let ip = end.ip();
        if let Some(why) = not_an_end(ip) {
            return err(key, format!("{ip} {why}"));
        }
        if addresses.iter().any(|a| a.address.addr() == ip) {
            return err(
                key,
                format!(
                    "{ip} is a floating address ([[address]]): it is only on the node holding \
                     it; use a fixed address of each node (the replication network)"
                ),
            );
        }
    }
    if t.listen.ip().is_loopback() {
        return err(
            "listen",
            format!("{} is loopback: the peer cannot reach it", t.listen.ip()),
        );
    }
    let ip = t.peer.ip();
    if ip.is_loopback() {
        return err("peer", format!("{ip} is not the address of another node"));
    }
    if t.listen.is_ipv4() != t.peer.is_ipv4() {
        return err(
            "peer",
            format!(
                "{} and listen {} are of different families (IPv4 and IPv6)",
                t.peer, t.listen
            ),
        );
    }
    if t.listen == t.peer {
        return err(
            "peer",
            "is the same as listen: it is the other node's endpoint".into(),
        );
    }
    if t.port == 0 {
        return err(
            "port",
            "must be the iSCSI portal port (3260 for tgtd)".into(),
        );
    }
    if (1..10).contains(&t.sync_ms) || t.sync_ms > MAX_SYNC_MS {
        return err(
            "sync_ms",
            format!(
                "must be 0 (no periodic list) or 10 (each sync is one sock_diag dump) to \
                 {MAX_SYNC_MS} (connections made since the last sync are not handed over)"
            ),
        );
    }
    if !(1..=MAX_REPEAT).contains(&t.repeat) {
        return err(
            "repeat",
            format!("must be 1 to {MAX_REPEAT} (remove [tickle] to turn tickles off)"),
        );
    }
    if t.secret_file.as_ref().is_some_and(|f| !f.is_absolute()) {
        return err("secret_file", "must be an absolute path".into());
    }
    if t.handover_ms > MAX_HANDOVER_MS {
        return err(
            "handover_ms",
            format!("must be 0 (never hand over) to {MAX_HANDOVER_MS} (it delays every demote)"),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::{Config, TEST_MINIMAL};

    fn parse(tickle: &str) -> Result<Config, crate::error::ConfigError> {
        // `[tickle]` after the tables of TEST_MINIMAL would belong to the LUN: put it first.
        let text = format!("[tickle]\n{tickle}\n");
        let (head, rest) = TEST_MINIMAL
            .split_once("[[resource]]")
            .expect("resource table");
        let address = "[[address]]\naddress = \"10.0.0.10/24\"\ninterface = \"eth0\"\n\
                       resources = [\"r0\"]\n";
        Config::parse(
            &format!("{head}{text}[[resource]]{rest}{address}"),
            Path::new("t.toml"),
        )
    }

    #[test]
    fn absent_is_off() {
        let c = Config::parse(TEST_MINIMAL, Path::new("t.toml")).expect("parses");
        assert_eq!(c.tickle, None);
        assert!(!c.effective_toml().expect("toml").contains("tickle"));
    }

    #[test]
    fn defaults_fill_in() {
        let c = parse("listen = \"10.1.0.1:7790\"\npeer = \"10.1.0.2:7790\"").expect("parses");
        let t = c.tickle.expect("tickle");
        assert_eq!(t.port, 3260);
        assert_eq!(t.sync_ms, DEFAULT_SYNC_MS);
        assert_eq!(t.repeat, DEFAULT_REPEAT);
        assert_eq!(t.handover_ms, DEFAULT_HANDOVER_MS);
        assert_eq!(t.peer, "10.1.0.2:7790".parse().expect("addr"));
    }

    #[test]
    fn bad_values_name_the_key() {
        let base = "listen = \"10.1.0.1:7790\"\n";
        for (text, key, words) in [
            (
                "peer = \"10.1.0.2:7790\"\nsync_ms = 5",
                "tickle.sync_ms",
                "0 (no periodic list) or 10",
            ),
            (
                "peer = \"10.1.0.2:7790\"\nsync_ms = 60001",
                "tickle.sync_ms",
                "to 60000",
            ),
            (
                "peer = \"10.1.0.2:7790\"\nrepeat = 0",
                "tickle.repeat",
                "1 to 10",
            ),
            (
                "peer = \"10.1.0.2:7790\"\nrepeat = 11",
                "tickle.repeat",
                "1 to 10",
            ),
            (
                "peer = \"10.1.0.2:7790\"\nhandover_ms = 2001",
                "tickle.handover_ms",
                "0 (never hand over) to 2000",
            ),
            ("peer = \"10.1.0.2:0\"", "tickle.peer", "needs a port"),
            ("peer = \"0.0.0.0:7790\"", "tickle.peer", "unspecified"),
            (
                "peer = \"127.0.0.1:7790\"",
                "tickle.peer",
                "not the address",
            ),
            ("peer = \"224.0.0.1:7790\"", "tickle.peer", "multicast"),
            (
                "peer = \"255.255.255.255:7790\"",
                "tickle.peer",
                "broadcast",
            ),
            (
                "peer = \"10.0.0.10:7790\"",
                "tickle.peer",
                "floating address ([[address]])",
            ),
            (
                "peer = \"[fd00::2]:7790\"",
                "tickle.peer",
                "different families",
            ),
            ("peer = \"10.1.0.1:7790\"", "tickle.peer", "same as listen"),
            (
                "peer = \"10.1.0.2:7790\"\nport = 0",
                "tickle.port",
                "portal port",
            ),
            ("peer = \"10.1.0.2\"", "tickle.peer", "socket address"),
            (
                "peer = \"10.1.0.2:7790\"\nlisten_ = 1",
                "tickle.listen_",
                "unknown field",
            ),
        ] {
            let e = parse(&format!("{base}{text}")).expect_err(text);
            assert_eq!(e.key, key, "{text}: {e}");
            assert!(e.reason.contains(words), "{text}: {e}");
            assert!(e.line.is_some(), "{text}: {e}");
        }
        let e = parse("peer = \"10.1.0.2:7790\"").expect_err("listen missing");
        assert!(e.to_string().contains("listen"), "{e}");
    }

    #[test]
    fn ends_that_can_never_work_are_refused() {
        for (listen, peer, key, words) in [
            (
                "0.0.0.0:7790",
                "10.1.0.2:7790",
                "tickle.listen",
                "unspecified",
            ),
            (
                "[::]:7790",
                "[fd00::2]:7790",
                "tickle.listen",
                "unspecified",
            ),
            ("[fd00::1]:7790", "[::]:7790", "tickle.peer", "unspecified"),
            (
                "239.1.1.1:7790",
                "10.1.0.2:7790",
                "tickle.listen",
                "multicast",
            ),
            (
                "[fd00::1]:7790",
                "[ff02::1]:7790",
                "tickle.peer",
                "multicast",
            ),
            (
                "255.255.255.255:7790",
                "10.1.0.2:7790",
                "tickle.listen",
                "broadcast",
            ),
            (
                "[fe80::1]:7790",
                "[fd00::2]:7790",
                "tickle.listen",
                "link-local",
            ),
            (
                "[fd00::1]:7790",
                "[fe80::2%2]:7790",
                "tickle.peer",
                "link-local",
            ),
            (
                "127.0.0.1:7790",
                "10.1.0.2:7790",
                "tickle.listen",
                "loopback",
            ),
            ("[::1]:7790", "[fd00::2]:7790", "tickle.listen", "loopback"),
            (
                "10.0.0.10:7790",
                "10.1.0.2:7790",
                "tickle.listen",
                "floating address",
            ),
        ] {
            let text = format!("listen = \"{listen}\"\npeer = \"{peer}\"");
            let e = parse(&text).expect_err(&text);
            assert_eq!(e.key, key, "{text}: {e}");
            assert!(e.reason.contains(words), "{text}: {e}");
        }
        parse("listen = \"[fd00::1]:7790\"\npeer = \"[fd00::2]:7790\"").expect("unique-local");
    }

    #[test]
    fn fingerprint_swaps_the_ends_and_ignores_tunings() {
        let a = parse("listen = \"10.1.0.1:7790\"\npeer = \"10.1.0.2:7790\"").expect("a");
        let b = parse(
            "listen = \"10.1.0.2:7790\"\npeer = \"10.1.0.1:7790\"\nsync_ms = 200\nhandover_ms = 0",
        )
        .expect("b");
        assert_eq!(a.fingerprint(), b.fingerprint());
        let other_port =
            parse("listen = \"10.1.0.2:7791\"\npeer = \"10.1.0.1:7790\"").expect("port");
        assert_ne!(a.fingerprint(), other_port.fingerprint());
        let off = Config::parse(TEST_MINIMAL, Path::new("t.toml")).expect("off");
        assert_ne!(a.fingerprint(), off.fingerprint());
    }

    #[test]
    fn a_secret_file_must_be_private_and_long_enough() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("tickle.secret");
        let write = |text: &[u8], mode: u32| {
            std::fs::write(&f, text).expect("write");
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(mode)).expect("chmod");
        };
        write(b"0123456789abcdef\n", 0o600);
        assert_eq!(read_secret(&f).as_deref(), Ok(&b"0123456789abcdef"[..]));
        write(b"0123456789abcdef\r\n", 0o400);
        assert_eq!(read_secret(&f).map(|s| s.len()), Ok(16));
        write(b"0123456789abcdef\n", 0o640);
        assert!(read_secret(&f).is_err_and(|e| e.contains("mode 640")));
        write(b"short\n", 0o600);
        assert!(read_secret(&f).is_err_and(|e| e.contains("holds 5 bytes")));
        write(&vec![b'x'; MAX_SECRET + 3], 0o600);
        assert!(read_secret(&f).is_err_and(|e| e.contains("longer than")));
        assert!(read_secret(dir.path()).is_err_and(|e| e.contains("not a regular file")));
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&f, &link).expect("symlink");
        assert!(read_secret(&link).is_err_and(|e| e.contains("symbolic link")));
        assert!(hidden_from_the_unit(Path::new("/root/t.secret")).is_some());
        assert_eq!(
            hidden_from_the_unit(Path::new("/etc/iscsi-ha/t.secret")),
            None
        );
        assert!(read_secret(&dir.path().join("none")).is_err());
    }

    #[test]
    fn secret_file_is_an_absolute_path_and_only_its_presence_is_fingerprinted() {
        let base = "listen = \"10.1.0.1:7790\"\npeer = \"10.1.0.2:7790\"";
        let e = parse(&format!("{base}\nsecret_file = \"tickle.secret\"")).expect_err("relative");
        assert_eq!(e.key, "tickle.secret_file");
        let keyed = |path: &str| {
            parse(&format!("{base}\nsecret_file = \"{path}\""))
                .expect("keyed")
                .fingerprint()
        };
        let plain = parse(base).expect("plain").fingerprint();
        assert_eq!(
            keyed("/etc/iscsi-ha/a.secret"),
            keyed("/etc/iscsi-ha/b.secret")
        );
        assert_ne!(keyed("/etc/iscsi-ha/a.secret"), plain);
    }
}
