//! The `iscsi-ha` binary end to end on in-memory backends (`daemon --simulate`): check-config,
//! status (human and --json), promote, maintenance, demote over the control socket.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use test_support::Kill;

const BIN: &str = env!("CARGO_BIN_EXE_iscsi-ha");

fn run(cfg: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("-c")
        .arg(cfg)
        .args(args)
        .output()
        .expect("iscsi-ha runs")
}

/// Run with standard output a socket whose reader has already gone (as `| head` leaves it).
fn run_closed_stdout(cfg: &Path, args: &[&str]) -> Output {
    let (out, reader) = std::os::unix::net::UnixStream::pair().expect("socketpair");
    drop(reader);
    Command::new(BIN)
        .arg("-c")
        .arg(cfg)
        .args(args)
        .stdout(std::os::fd::OwnedFd::from(out))
        .stderr(std::process::Stdio::piped())
        .output()
        .expect("iscsi-ha runs")
}

/// A closed standard output ends the command quietly (status 141, as SIGPIPE would), never a
/// panic.
fn assert_quiet_on_closed_stdout(o: &Output) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(o.status.code(), Some(141), "{err}");
    assert!(err.is_empty(), "{err}");
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn check_config_checks_the_tickle_secret_file() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = dir.path().join("tickle.secret");
    std::fs::write(&secret, "0123456789abcdef0123456789abcdef\n").expect("secret");
    let example = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/iscsi-ha.toml"),
    )
    .expect("example");
    let cfg = dir.path().join("iscsi-ha.toml");
    std::fs::write(
        &cfg,
        format!(
            "{example}\n[tickle]\nlisten = \"10.10.0.1:7790\"\npeer = \"10.10.0.2:7790\"\n\
             secret_file = \"{}\"\n",
            secret.display()
        ),
    )
    .expect("write config");
    for (mode, ok) in [(0o644, false), (0o600, true)] {
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(mode)).expect("chmod");
        let o = run(&cfg, &["check-config"]);
        assert_eq!(o.status.success(), ok, "mode {mode:o}: {}", text(&o));
        let said = if ok {
            "datagrams authenticated with the secret_file"
        } else {
            "tickle.secret_file: "
        };
        assert!(text(&o).contains(said), "mode {mode:o}: {}", text(&o));
    }
}

/// A temporary directory with the example config, its role source `command` and its control
/// socket in that directory: (directory, config, socket).
fn example_setup() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let sock = dir.path().join("control.sock");
    let example = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/iscsi-ha.toml"),
    )
    .expect("example");
    let cfg_text = example
        .replace(
            "source = \"pool-conf\"\npath = \"/etc/xensource/pool.conf\"",
            "source = \"command\"",
        )
        .replace(
            "control = \"/run/iscsi-ha/control.sock\"",
            &format!("control = \"{}\"", sock.display()),
        )
        .replace(
            "state_dir = \"/var/lib/iscsi-ha\"",
            &format!("state_dir = \"{}\"", dir.path().join("state").display()),
        );
    let cfg = dir.path().join("iscsi-ha.toml");
    std::fs::write(&cfg, cfg_text).expect("write config");
    (dir, cfg, sock)
}

/// `daemon --simulate` over `cfg` (its log appended to `daemon.log` in `dir`), once its socket
/// is there.
fn start_daemon(dir: &Path, cfg: &Path, sock: &Path) -> Kill {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("daemon.log"))
        .expect("log");
    let daemon = Kill(
        Command::new(BIN)
            .arg("-c")
            .arg(cfg)
            .args(["daemon", "--simulate"])
            .stderr(log)
            .spawn()
            .expect("daemon"),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sock.exists() {
        assert!(
            Instant::now() < deadline,
            "daemon did not create its socket"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    daemon
}

#[test]
fn cli_round_trip() {
    let (dir, cfg, sock) = example_setup();

    let o = run(&cfg, &["check-config"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("ok (2 resource(s), 1 address(es))"));
    // state_dir is not the one the unit makes writable
    assert!(text(&o).contains("warning: state_dir: "), "{}", text(&o));
    // one line per LUN, to compare between the two nodes
    assert!(
        text(&o).contains(
            "resource iscsi0 lun 1: cache write-through\nresource iscsi1 lun 1: cache write-through\n"
        ),
        "{}",
        text(&o)
    );
    // the fingerprint to compare with the peer's, and the config with its defaults
    assert!(text(&o).contains("fingerprint "), "{}", text(&o));
    assert!(
        text(&o).contains("# effective configuration") && text(&o).contains("safety_net_s = 60"),
        "{}",
        text(&o)
    );
    assert_quiet_on_closed_stdout(&run_closed_stdout(&cfg, &["check-config"]));
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "node = \"x\"\nrole = { source = \"command\" }\nfoo = 1\n",
    )
    .expect("w");
    let o = run(&cfg, &["check-config", bad.to_str().expect("utf8")]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("bad.toml:3: foo: unknown field"),
        "{}",
        text(&o)
    );

    let daemon = start_daemon(dir.path(), &cfg, &sock);
    // A second daemon of the same config is refused, even on another socket.
    let other = dir.path().join("other.sock");
    let o = Command::new(BIN)
        .arg("-c")
        .arg(&cfg)
        .arg("-s")
        .arg(&other)
        .args(["daemon", "--simulate"])
        .output()
        .expect("second daemon");
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("another iscsi-ha daemon runs with this configuration"),
        "{}",
        text(&o)
    );
    assert!(!other.exists());
    let o = run(&cfg, &["status"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("node xcp-host1  role Secondary"),
        "{}",
        text(&o)
    );
    assert!(
        text(&o).contains("  lun 1: cache write-through, on /dev/drbd1 (volume 0)\n"),
        "{}",
        text(&o)
    );

    assert_quiet_on_closed_stdout(&run_closed_stdout(&cfg, &["status"]));
    assert_quiet_on_closed_stdout(&run_closed_stdout(&cfg, &["status", "--json"]));

    // A config that does not validate still names its socket: status reaches the daemon.
    let invalid = dir.path().join("invalid.toml");
    std::fs::write(
        &invalid,
        format!(
            "{}\nfoo = 1\n",
            std::fs::read_to_string(&cfg).expect("read")
        ),
    )
    .expect("write");
    let o = run(&invalid, &["status"]);
    assert!(o.status.success(), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("the configuration does not load") && err.contains("foo: unknown field"),
        "{err}"
    );
    assert!(text(&o).contains("role Secondary"), "{}", text(&o));

    // A follower of events whose reader goes stops at the next event.
    let (out, reader) = std::os::unix::net::UnixStream::pair().expect("socketpair");
    drop(reader);
    let events = Command::new(BIN)
        .arg("-c")
        .arg(&cfg)
        .arg("events")
        .stdout(std::os::fd::OwnedFd::from(out))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("events");
    let mut events = Kill(events);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut started = String::new();
    {
        use std::io::BufRead;
        let stderr = events.0.stderr.take().expect("stderr");
        std::io::BufReader::new(stderr)
            .read_line(&mut started)
            .expect("events stderr");
        assert!(started.contains("following events"), "{started}");
    }

    let o = run(&cfg, &["promote"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).starts_with("promote done in"), "{}", text(&o));
    let status = loop {
        if let Some(s) = events.0.try_wait().expect("wait") {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "events did not stop on a closed stdout"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(141));

    let o = run(&cfg, &["status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json status");
    assert_eq!(v["node_role"], "Primary");
    assert_eq!(v["converged"], true);
    assert_eq!(v["transitions"][0]["kind"], "promote");
    assert_eq!(v["resources"][0]["luns"][0]["cache"], "write-through");

    let o = run(&cfg, &["maintenance", "on"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).starts_with("maintenance on: "), "{}", text(&o));
    let o = run(&cfg, &["maintenance", "on"]);
    assert!(
        text(&o).starts_with("maintenance already on"),
        "{}",
        text(&o)
    );
    let o = run(&cfg, &["promote"]);
    assert!(!o.status.success(), "refused in maintenance: {}", text(&o));
    let o = run(&cfg, &["maintenance", "off"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).starts_with("maintenance off: "), "{}", text(&o));
    let o = run(&cfg, &["demote"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = run(&cfg, &["status"]);
    let t = text(&o);
    assert!(
        t.contains("role Secondary") && t.contains("transition #2 demote"),
        "{t}"
    );
    assert!(t.contains("  address-release 192.168.50.10/24"), "{t}");

    // A TOML syntax error: reload and status still reach the daemon (the [sockets] line read
    // alone), the refusal shows, and the daemon logs it on one line.
    let good = std::fs::read_to_string(&cfg).expect("read");
    std::fs::write(&cfg, format!("{good}\nbroken = \"unterminated\n")).expect("write");
    let o = run(&cfg, &["reload"]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("reload refused"), "{}", text(&o));
    let o = run(&cfg, &["status"]);
    assert!(text(&o).contains("reload refused"), "{}", text(&o));
    std::fs::write(&cfg, good).expect("write");
    let o = run(&cfg, &["reload"]);
    assert!(o.status.success(), "{}", text(&o));
    let log = std::fs::read_to_string(dir.path().join("daemon.log")).expect("log");
    assert!(!log.contains("reload reload"), "{log}");
    let refused: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("reload refused"))
        .collect();
    assert_eq!(refused.len(), 1, "{log}");
    assert!(
        refused[0].contains("unterminated") || refused[0].contains("string"),
        "{log}"
    );
    assert!(!refused[0].contains(": : "), "no empty key: {log}");

    // A follower of events sees the agent go: a message and a failure exit, not a quiet 0.
    let follower = Command::new(BIN)
        .arg("-c")
        .arg(&cfg)
        .arg("events")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("events");
    let mut follower = Kill(follower);
    let mut stderr = std::io::BufReader::new(follower.0.stderr.take().expect("stderr"));
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stderr, &mut line).expect("events stderr");
    assert!(line.contains("following events"), "{line}");
    drop(daemon);
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = follower.0.try_wait().expect("wait") {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "events did not end with the agent"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).expect("stderr");
    assert_eq!(status.code(), Some(1), "{rest}");
    assert!(rest.contains("the agent closed the connection"), "{rest}");
}

#[test]
fn each_cause_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("missing.toml");
    let o = run(&missing, &["check-config"]);
    assert_eq!(text(&o).matches("os error 2").count(), 1, "{}", text(&o));
    let o = run(
        &missing,
        &[
            "-s",
            dir.path().join("no.sock").to_str().expect("utf8"),
            "status",
        ],
    );
    assert_eq!(text(&o).matches("os error 2").count(), 1, "{}", text(&o));
    let long = dir.path().join("s".repeat(120));
    let o = run(&missing, &["-s", long.to_str().expect("utf8"), "status"]);
    assert_eq!(text(&o).matches("SUN_LEN").count(), 1, "{}", text(&o));
}

/// `import` (TOML on stdout) and `ocf meta-data` with the reader gone: no panic; import ends
/// with 141 as the other commands, the OCF action with OCF_ERR_GENERIC (1).
#[test]
fn import_and_ocf_meta_data_on_a_closed_stdout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("iscsi-ha.conf");
    std::fs::write(
        &conf,
        "DRBD_RESOURCES=r0\nDRBD_VIRTUAL_IP=10.0.0.5\nDRBD_VIRTUAL_MASK=255.255.255.0\nDRBD_INTERFACE=eth0\n",
    )
    .expect("conf");
    let tgt = dir.path().join("targets.conf");
    std::fs::write(
        &tgt,
        "<target iqn.2026-11.org.example:r0>\n    backing-store /dev/drbd0\n</target>\n",
    )
    .expect("tgt");
    let cfg = dir.path().join("unused.toml");
    let (conf, tgt) = (conf.to_str().expect("utf8"), tgt.to_str().expect("utf8"));
    let o = run_closed_stdout(
        &cfg,
        &["import", "--iscsi-ha", conf, "--tgt", tgt, "--node", "n1"],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(o.status.code(), Some(141), "{err}");
    let o = run_closed_stdout(&cfg, &["ocf", "meta-data"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(o.status.code(), Some(1), "{err}");
}

/// A command with a config file that cannot be read is not sent to the default socket (where
/// another configuration's daemon may listen).
#[test]
fn an_unreadable_config_names_no_socket() {
    let o = run(
        Path::new("/nonexistent/second.toml"),
        &["maintenance", "on"],
    );
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("name the agent's control socket with --socket"),
        "{}",
        text(&o)
    );
}

/// `maintenance on` is kept across a restart of the agent (and `off` too): an agent restarted
/// while an operator works by hand does not start acting.
#[test]
fn maintenance_is_kept_across_a_restart() {
    let (dir, cfg, sock) = example_setup();
    let daemon = start_daemon(dir.path(), &cfg, &sock);
    let o = run(&cfg, &["maintenance", "on"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("kept across restarts until maintenance off"),
        "{}",
        text(&o)
    );
    drop(daemon);
    std::fs::remove_file(&sock).expect("socket left by the killed daemon");
    let daemon = start_daemon(dir.path(), &cfg, &sock);
    let o = run(&cfg, &["status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json status");
    assert_eq!(v["maintenance"], true, "{}", text(&o));
    let o = run(&cfg, &["promote"]);
    assert!(!o.status.success(), "refused in maintenance: {}", text(&o));
    assert!(text(&o).contains("maintenance is on"), "{}", text(&o));
    // --simulate keeps it beside its control socket, never in state_dir.
    let kept = dir.path().join("maintenance");
    assert!(kept.exists(), "kept beside the socket");
    assert!(!dir.path().join("state").exists());
    let o = run(&cfg, &["maintenance", "off"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(!kept.exists());
    drop(daemon);
    std::fs::remove_file(&sock).expect("socket left by the killed daemon");
    let _daemon = start_daemon(dir.path(), &cfg, &sock);
    let o = run(&cfg, &["promote"]);
    assert!(
        o.status.success(),
        "acting again after the restart: {}",
        text(&o)
    );
    let log = std::fs::read_to_string(dir.path().join("daemon.log")).expect("log");
    assert_eq!(
        log.matches("maintenance is on, as before this start")
            .count(),
        1,
        "{log}"
    );
}

/// A control socket that accepts every connection and never answers (a stopped or stuck
/// agent), or answers the first line once and then stays silent (`once`); its connections are
/// kept open until the test process ends.
fn silent_agent(sock: &Path, once: bool) {
    use std::io::{BufRead, Write};
    let listener = std::os::unix::net::UnixListener::bind(sock).expect("bind");
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        for mut s in listener.incoming().map_while(Result::ok) {
            if once {
                let mut line = String::new();
                let _ = std::io::BufReader::new(&s).read_line(&mut line);
                let _ = s.write_all(b"{\"ok\":true,\"message\":\"following\",\"status\":null}\n");
            }
            kept.push(s);
        }
    });
}

/// Runs `iscsi-ha -c cfg --socket sock args` and returns its output and how long it took.
fn run_timed(cfg: &Path, sock: &Path, args: &[&str]) -> (Output, Duration) {
    let began = Instant::now();
    let o = Command::new(BIN)
        .arg("-c")
        .arg(cfg)
        .arg("--socket")
        .arg(sock)
        .args(args)
        .output()
        .expect("iscsi-ha runs");
    (o, began.elapsed())
}

/// An agent that accepts and never answers is reported within the wait (`--timeout`, else the
/// request's bound from the config's timeouts), naming its pid, for status, reload and the
/// first answer of events; the event stream after its first answer is not bounded.
#[test]
fn a_silent_agent_is_reported_not_waited_for() {
    let (dir, cfg, _) = example_setup();
    let silent = dir.path().join("silent.sock");
    silent_agent(&silent, false);
    let me = std::process::id();
    let said = |o: &Output, within: &str| {
        let t = text(o);
        assert!(!o.status.success(), "{t}");
        assert!(!t.contains("panicked"), "{t}");
        assert!(
            t.contains(&format!(
                "the agent accepted the connection but did not answer within {within} s"
            )) && t.contains(&format!("its pid is {me}"))
                && t.contains("systemctl status iscsi-ha"),
            "{t}"
        );
    };
    // The default wait of status, from the example's timeouts: 10 s.
    let loaded = agent::config::Config::load(&cfg).expect("example loads");
    let bound = agent::control::answer_bound(agent::control::Request::Status, Some(&loaded));
    assert_eq!(bound, Duration::from_secs(10));
    let default_status = {
        let (cfg, silent) = (cfg.clone(), silent.clone());
        std::thread::spawn(move || run_timed(&cfg, &silent, &["status"]))
    };
    for args in [
        &["status", "--timeout", "1"][..],
        &["reload", "--timeout", "1"],
        &["promote", "--timeout", "1"],
        &["events", "--timeout", "1"],
    ] {
        let (o, took) = run_timed(&cfg, &silent, args);
        said(&o, "1");
        assert!(took < Duration::from_secs(5), "{args:?} took {took:?}");
    }
    let (o, took) = default_status.join().expect("status thread");
    said(&o, "10");
    assert!(
        took >= bound && took < bound + Duration::from_secs(5),
        "took {took:?}"
    );

    // events: bounded until the agent's first answer only.
    let once = dir.path().join("once.sock");
    silent_agent(&once, true);
    let mut follower = Kill(
        Command::new(BIN)
            .arg("-c")
            .arg(&cfg)
            .arg("--socket")
            .arg(&once)
            .args(["events", "--timeout", "1"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("events"),
    );
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        follower.0.try_wait().expect("wait").is_none(),
        "events gave up on a quiet but answering agent"
    );
}

/// `iscsi-ha status` on a stopped daemon (`kill -STOP`) ends, saying the daemon is stopped and
/// how to resume it; once resumed it answers again.
#[test]
fn a_stopped_daemon_is_named_by_status() {
    let (dir, cfg, sock) = example_setup();
    let daemon = start_daemon(dir.path(), &cfg, &sock);
    let o = run(&cfg, &["status"]);
    assert!(o.status.success(), "{}", text(&o));
    let pid = daemon.0.id().to_string();
    let signal = |s: &str| {
        let ok = Command::new("kill").args([s, &pid]).status().expect("kill");
        assert!(ok.success());
    };
    signal("-STOP");
    let began = Instant::now();
    let o = run(&cfg, &["status", "--timeout", "2"]);
    let took = began.elapsed();
    signal("-CONT");
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    assert!(
        t.contains(&format!("its pid is {pid} and it is stopped"))
            && t.contains(&format!("kill -CONT {pid} resumes it")),
        "{t}"
    );
    assert!(took < Duration::from_secs(6), "took {took:?}");
    let o = run(&cfg, &["status"]);
    assert!(o.status.success(), "resumed: {}", text(&o));
}

/// `--simulate` with `[tickle]`: status says no peer link runs, and a demote's note says the
/// same (not that the peer did not acknowledge, which would send an operator after the peer).
#[test]
fn simulate_with_tickle_names_the_missing_link_in_the_demote() {
    let (dir, cfg, sock) = example_setup();
    let text_cfg = std::fs::read_to_string(&cfg).expect("read")
        + "\n[tickle]\nlisten = \"10.10.0.1:7790\"\npeer = \"10.10.0.2:7790\"\n";
    std::fs::write(&cfg, text_cfg).expect("write");
    let _daemon = start_daemon(dir.path(), &cfg, &sock);
    for cmd in ["promote", "demote"] {
        let o = run(&cfg, &[cmd]);
        assert!(o.status.success(), "{cmd}: {}", text(&o));
    }
    let o = run(&cfg, &["status"]);
    let t = text(&o);
    assert!(t.contains("this daemon runs no peer link"), "{t}");
    assert!(
        t.contains("not handed over: no peer link (in-memory backends)"),
        "{t}"
    );
    assert!(!t.contains("did not acknowledge"), "{t}");
}
