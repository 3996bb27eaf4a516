//! Mail alerts against a real SMTP server: Debian's `python3-aiosmtpd` on loopback, requiring
//! STARTTLS (a self-signed certificate made with `openssl`, trusted through
//! `alerts.email.ca_file`) and authentication. `iscsi-ha daemon --simulate` mails a promote and
//! a refusal, suppresses the repeated refusal, and never logs the password; a credentials file
//! readable by others is refused.

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::Kill;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_iscsi-ha");
const PASSWORD: &str = "s3cret-Pa55word";

/// An SMTP server that requires STARTTLS then AUTH (user `alerts`, [`PASSWORD`]) and saves
/// each message as `N.eml` in its directory.
const SERVER: &str = r#"
import asyncio, ssl, sys, os, itertools, warnings, logging
warnings.simplefilter("ignore")
logging.disable(logging.WARNING)
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
port, cert, key, out = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
n = itertools.count()
class Save:
    async def handle_DATA(self, server, session, envelope):
        path = os.path.join(out, "%d.eml" % next(n))
        with open(path + ".tmp", "wb") as f:
            f.write(envelope.original_content)
        os.rename(path + ".tmp", path)
        return "250 OK"
def auth(server, session, envelope, mechanism, data):
    ok = data.login == b"alerts" and data.password == sys.argv[5].encode()
    return AuthResult(success=ok)
ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ctx.load_cert_chain(cert, key)
c = Controller(Save(), hostname="127.0.0.1", port=port, tls_context=ctx,
               require_starttls=True, auth_required=True, authenticator=auth,
               auth_require_tls=True, server_hostname="localhost")
c.start()
print("ready", flush=True)
sys.stdin.read()
c.stop()
"#;

/// A test CA and a `localhost` server certificate it signed (webpki refuses a self-signed
/// certificate as its own anchor): returns the CA, the server certificate and its key.
fn certificates(openssl: &Path, d: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let run = |args: &[&str]| {
        let o = Command::new(openssl)
            .args(args)
            .current_dir(d)
            .output()
            .expect("openssl");
        assert!(o.status.success(), "openssl {args:?}: {o:?}");
    };
    let nodes = ["-newkey", "rsa:2048", "-nodes"];
    run(&[
        &["req", "-x509"][..],
        &nodes,
        &["-days", "1", "-subj", "/CN=iscsi-ha test CA"],
        &["-keyout", "ca.key", "-out", "ca.pem"],
    ]
    .concat());
    run(&[
        &["req"][..],
        &nodes,
        &[
            "-subj",
            "/CN=localhost",
            "-keyout",
            "key.pem",
            "-out",
            "srv.csr",
        ],
    ]
    .concat());
    std::fs::write(
        d.join("ext.cnf"),
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .expect("ext");
    run(&[
        "x509",
        "-req",
        "-in",
        "srv.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        "ext.cnf",
        "-out",
        "cert.pem",
    ]);
    (d.join("ca.pem"), d.join("cert.pem"), d.join("key.pem"))
}

/// The Debian python3 with aiosmtpd and openssl, or `None` (a failure under `CI=true`).
fn tools() -> Option<(PathBuf, PathBuf)> {
    let python = PathBuf::from("/usr/bin/python3");
    let has_aiosmtpd = Command::new(&python)
        .args(["-c", "import aiosmtpd"])
        .status()
        .is_ok_and(|s| s.success());
    match (has_aiosmtpd, common::which("openssl")) {
        (true, Some(openssl)) => Some((python, openssl)),
        _ => {
            test_support::prereq::skip("alerts test: python3-aiosmtpd or openssl not installed");
            None
        }
    }
}

fn write_config(dir: &Path, port: u16, secret: &Path, ca: &Path) -> PathBuf {
    let mut cfg = common::in_dir(&common::config("one", true), dir);
    cfg.sockets.control = dir.join("control.sock");
    let mut text = toml::to_string(&cfg).expect("toml");
    text.push_str(&format!(
        "\n[alerts.email]\nserver = \"localhost\"\nport = {port}\nca_file = \"{}\"\n\
         credentials = \"{}\"\nfrom = \"iscsi-ha <ha@node1.test>\"\n\
         to = [\"ops@example.test\", \"oncall@example.test\"]\nsubject_prefix = \"[HA lab]\"\n\
         suppress_s = 3600\n",
        ca.display(),
        secret.display()
    ));
    let path = dir.join("iscsi-ha.toml");
    std::fs::write(&path, text).expect("config");
    path
}

/// Wait for `n` saved messages; returns them in arrival order.
fn mails(dir: &Path, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got: Vec<String> = (0..n)
            .map_while(|i| std::fs::read_to_string(dir.join(format!("{i}.eml"))).ok())
            .collect();
        if got.len() == n {
            return got;
        }
        assert!(Instant::now() < deadline, "only {} of {n} mails", got.len());
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn alerts_mailed_over_starttls_with_auth() {
    let Some((python, openssl)) = tools() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let (ca, cert, key) = certificates(&openssl, d);
    let out = d.join("mail");
    std::fs::create_dir(&out).expect("mail dir");
    let port = common::free_port();
    let mut server = Kill(
        Command::new(python)
            .args(["-c", SERVER, &port.to_string()])
            .args([&cert, &key, &out])
            .arg(PASSWORD)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("smtp server"),
    );
    let mut ready = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(server.0.stdout.take().expect("stdout")),
        &mut ready,
    )
    .expect("server ready");
    assert_eq!(ready.trim(), "ready");

    let secret = d.join("smtp.secret");
    std::fs::write(
        &secret,
        format!("username = \"alerts\"\npassword = \"{PASSWORD}\"\n"),
    )
    .expect("secret");
    let cfg = write_config(d, port, &secret, &ca);

    // A credentials file others may read is refused, without quoting it.
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let o = Command::new(BIN)
        .arg("-c")
        .arg(&cfg)
        .arg("check-config")
        .output()
        .expect("check-config");
    let said = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "mode 0644 accepted");
    assert!(
        said.contains("mode 0644") && said.contains("chmod 600"),
        "{said}"
    );
    assert!(!said.contains(PASSWORD), "{said}");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).expect("chmod");

    let log = d.join("daemon.log");
    let _daemon = Kill(
        Command::new(BIN)
            .arg("-c")
            .arg(&cfg)
            .args(["daemon", "--simulate"])
            .env("RUST_LOG", "debug")
            .env_remove("NOTIFY_SOCKET")
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("daemon"),
    );
    let sock = d.join("control.sock");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !sock.exists() {
        assert!(Instant::now() < deadline, "daemon did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let cli = |args: &[&str]| {
        Command::new(BIN)
            .arg("-c")
            .arg(&cfg)
            .args(args)
            .output()
            .expect("iscsi-ha")
            .status
            .success()
    };
    assert!(cli(&["promote"]));
    let m = mails(&out, 1);
    assert!(
        m[0].contains("Subject: [HA lab] test: promote ok"),
        "{}",
        m[0]
    );
    assert!(m[0].contains("From: iscsi-ha <ha@node1.test>"), "{}", m[0]);
    assert!(
        m[0].contains("ops@example.test") && m[0].contains("oncall@example.test"),
        "{}",
        m[0]
    );
    assert!(m[0].contains("drbd-primary r0"), "{}", m[0]);

    // The same refusal twice within suppress_s: mailed once.
    assert!(cli(&["maintenance", "on"]));
    assert!(!cli(&["promote"]));
    let m = mails(&out, 2);
    assert!(m[1].contains("Subject: [HA lab] test: refused"), "{}", m[1]);
    assert!(!cli(&["promote"]));
    assert!(cli(&["maintenance", "off"]));
    assert!(cli(&["demote"]));
    let m = mails(&out, 3);
    assert!(
        m[2].contains("Subject: [HA lab] test: demote ok"),
        "the repeated refusal was mailed: {}",
        m[2]
    );
    let text = std::fs::read_to_string(&log).expect("log");
    assert!(text.contains("alert suppressed"), "{text}");
    assert!(!text.contains(PASSWORD), "password in the log");
}

/// `[alerts.email]` and `[metrics]` mistakes are configuration errors with file, line and key.
#[test]
fn alert_and_metrics_config_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The serialized config has an empty [metrics] table; the cases add their own.
    let base = toml::to_string(&common::config("one", true))
        .expect("toml")
        .replace("[metrics]\n", "");
    for (extra, want) in [
        (
            "[alerts.email]\nserver = \"mx\"\nfrom = \"ha@x.test\"\nto = [\"not an address\"]\n",
            "alerts.email.to: \"not an address\" is not a mail address",
        ),
        (
            "[alerts.email]\nserver = \"mx\"\nfrom = \"ha@x.test\"\nto = []\n",
            "alerts.email.to: at least one recipient",
        ),
        (
            "[alerts.email]\nserver = \"mx\"\nfrom = \"ha@x.test\"\nto = [\"a@x.test\"]\n\
             credentials = \"smtp.secret\"\n",
            "alerts.email.credentials: must be an absolute path",
        ),
        (
            "[metrics]\nlisten = \"localhost\"\n",
            "listen: `listen` must be ip:port",
        ),
    ] {
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, format!("{base}\n{extra}")).expect("write");
        let o = Command::new(BIN)
            .arg("check-config")
            .arg(&path)
            .output()
            .expect("check-config");
        let said = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "accepted: {extra}");
        assert!(
            said.contains("bad.toml:") && said.contains(want),
            "{want}: {said}"
        );
    }
}
