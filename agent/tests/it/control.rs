//! Control socket: created 0600, root peers only (SO_PEERCRED), JSON lines round trip through
//! the daemon on in-memory backends.

use crate::common;

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::sync::Arc;

use agent::backend::memory::Memory;
use agent::control::{self, authorize, ControlServer, Request};
use agent::daemon::Daemon;
use agent::executor::Executor;
use agent::fsm::Role;
use agent::AgentError;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// The wait for an answer of the in-memory daemon.
const WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Start a daemon (command role source) with its control socket in a temp dir.
async fn start(dir: &std::path::Path) -> (std::path::PathBuf, Memory) {
    let cfg = Arc::new(common::config("two", true));
    let mem = Memory::healthy_secondary(&cfg);
    let (ev_tx, ev_rx) = tokio::sync::mpsc::unbounded_channel();
    let mem = mem.with_events(ev_tx);
    let d = Daemon::new(Executor::new(cfg, mem.clone(), mem.clone(), mem.clone()));
    let sock = dir.join("run/iscsi-ha/control.sock");
    let server = ControlServer::bind(&sock).expect("bind");
    let (ctl_tx, ctl_rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(server.serve(ctl_tx));
    tokio::spawn(d.run(ev_rx, ctl_rx));
    (sock, mem)
}

#[tokio::test]
async fn socket_is_0600_in_a_0700_dir() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (sock, _) = start(dir.path()).await;
    let m = std::fs::metadata(&sock).expect("socket exists");
    assert!(m.file_type().is_socket());
    assert_eq!(m.permissions().mode() & 0o777, 0o600);
    let parent = std::fs::metadata(sock.parent().expect("parent")).expect("dir");
    assert_eq!(parent.permissions().mode() & 0o777, 0o700);
}

#[tokio::test]
async fn stale_socket_replaced_other_files_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("c.sock");
    drop(std::os::unix::net::UnixListener::bind(&p).expect("stale"));
    let s = ControlServer::bind(&p).expect("stale socket replaced");
    // A live agent is not replaced.
    assert!(ControlServer::bind(&p).is_err());
    drop(s);
    assert!(!p.exists(), "socket removed on drop");
    let f = dir.path().join("file");
    std::fs::write(&f, "keep").expect("write");
    assert!(ControlServer::bind(&f).is_err());
    assert_eq!(std::fs::read_to_string(&f).expect("kept"), "keep");
}

#[test]
fn only_root_is_authorized() {
    assert!(authorize(0).is_ok());
    assert!(matches!(
        authorize(1000),
        Err(AgentError::PermissionDenied(1000))
    ));
}

#[tokio::test]
async fn json_round_trip() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (sock, mem) = start(dir.path()).await;
    let r = control::request(&sock, Request::Status, WAIT)
        .await
        .expect("status");
    assert!(r.ok);
    let s = r.status.expect("status body");
    assert_eq!(s.node, "test");
    assert_eq!(s.role_source, "command");
    assert_eq!(s.node_role, "Secondary");
    let r = control::request(&sock, Request::Promote, WAIT)
        .await
        .expect("promote");
    assert!(r.ok, "{}", r.message);
    assert_eq!(
        mem.world().drbd.get("r0").map(|v| v.role),
        Some(Role::Primary)
    );
    let s = r.status.expect("status body");
    assert_eq!(s.node_role, "Primary");
    assert!(s.converged);
    let t = s.transitions.last().expect("a transition");
    assert_eq!(t.kind, "promote");
    assert_eq!(t.stages.len(), 5);
    // JSON survives a round trip as text.
    let text = serde_json::to_string(&s).expect("json");
    let back: agent::status::Status = serde_json::from_str(&text).expect("parse");
    assert_eq!(back, *s);
    let r = control::request(&sock, Request::Maintenance { on: true }, WAIT)
        .await
        .expect("m");
    assert!(r.ok && r.status.is_some_and(|s| s.maintenance));
    let r = control::request(&sock, Request::Demote, WAIT)
        .await
        .expect("demote");
    assert!(r.ok, "{}", r.message);
    assert_eq!(
        mem.world().drbd.get("r0").map(|v| v.role),
        Some(Role::Primary),
        "frozen"
    );
    let r = control::request(&sock, Request::Maintenance { on: false }, WAIT)
        .await
        .expect("m");
    assert!(r.ok, "{}", r.message);
    assert_eq!(
        mem.world().drbd.get("r0").map(|v| v.role),
        Some(Role::Secondary)
    );
}

#[tokio::test]
async fn bad_lines_get_an_error_and_the_connection_lives() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (sock, _) = start(dir.path()).await;
    let s = tokio::net::UnixStream::connect(&sock)
        .await
        .expect("connect");
    let (rd, mut wr) = s.into_split();
    let mut rd = BufReader::new(rd);
    for bad in [
        "nonsense",
        "{\"cmd\":\"reboot\"}",
        "{\"cmd\":\"status\",\"x\":1}",
        "{\"cmd\":\"maintenance\"}",
    ] {
        wr.write_all(format!("{bad}\n").as_bytes())
            .await
            .expect("write");
        let mut line = String::new();
        rd.read_line(&mut line).await.expect("read");
        let r: control::Response = serde_json::from_str(&line).expect("json reply");
        assert!(
            !r.ok && r.message.starts_with("bad request"),
            "{bad}: {}",
            r.message
        );
    }
    wr.write_all(b"{\"cmd\":\"status\"}\n")
        .await
        .expect("write");
    let mut line = String::new();
    rd.read_line(&mut line).await.expect("read");
    let r: control::Response = serde_json::from_str(&line).expect("json reply");
    assert!(r.ok);
    // An over-long line is refused and the connection closed.
    let long = format!("{}\n", "x".repeat(control::MAX_LINE + 10));
    wr.write_all(long.as_bytes()).await.expect("write");
    let mut line = String::new();
    rd.read_line(&mut line).await.expect("read");
    assert!(line.contains("longer than"), "{line}");
    let mut line = String::new();
    assert_eq!(rd.read_line(&mut line).await.expect("eof"), 0);
}

/// A non-root client is refused, both by the file mode and by SO_PEERCRED. Needs root (to
/// switch uid) and socat (the client): skipped without them, a failure with CI=true.
#[tokio::test]
async fn non_root_peer_refused() {
    let socat = ["/usr/bin/socat", "/bin/socat"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists());
    let root = nix::unistd::Uid::effective().is_root();
    let Some(socat) = socat.filter(|_| root) else {
        test_support::prereq::skip("non_root_peer_refused: needs root and socat");
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let (sock, mem) = start(dir.path()).await;
    std::fs::set_permissions(
        sock.parent().expect("p"),
        std::fs::Permissions::from_mode(0o755),
    )
    .expect("chmod");
    std::fs::set_permissions(
        dir.path().join("run"),
        std::fs::Permissions::from_mode(0o755),
    )
    .expect("chmod");
    let run_as_nobody = |sock: std::path::PathBuf| {
        let socat = socat.to_string();
        async move {
            use std::os::unix::process::CommandExt;
            tokio::task::spawn_blocking(move || {
                std::process::Command::new(socat)
                    // Read only: the agent answers a refused peer before reading anything.
                    .arg("-u")
                    .arg(format!("UNIX-CONNECT:{}", sock.display()))
                    .arg("-")
                    .uid(65534)
                    .gid(65534)
                    .stdin(std::process::Stdio::null())
                    .output()
                    .expect("socat runs")
            })
            .await
            .expect("join")
        }
    };
    // Mode 0600: connect() itself is refused.
    let out = run_as_nobody(sock.clone()).await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Permission denied"), "{err}");
    // Even with the mode opened up, SO_PEERCRED refuses.
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    let out = run_as_nobody(sock.clone()).await;
    let reply = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        reply.contains("permission denied: peer uid 65534"),
        "{reply} / {err}"
    );
    assert_eq!(mem.world().calls, 0, "nothing happened");
}

/// A maintenance switch that cannot be kept for a restart fails the request (the switch itself
/// is set), so a script does not go on to restart an agent that would then act.
#[tokio::test]
async fn maintenance_that_cannot_be_kept_fails_the_request() {
    let cfg = Arc::new(common::config("one", true));
    let mem = Memory::healthy_secondary(&cfg);
    let mut d = Daemon::new(Executor::new(cfg, mem.clone(), mem.clone(), mem))
        .keeping_maintenance("/proc/iscsi-ha-test/maintenance".into());
    d.observe().await;
    let r = d.request(Request::Maintenance { on: true }).await;
    assert!(!r.ok, "{}", r.message);
    assert!(
        r.message.contains("not kept for a restart"),
        "{}",
        r.message
    );
    assert!(
        r.status.is_some_and(|s| s.maintenance),
        "switched on all the same"
    );
}
