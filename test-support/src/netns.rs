//! Network namespaces made by the test (never the host's network): a named one deleted on
//! drop, running code inside one on its own thread, and `ip` for the setup.

use std::fs::File;
use std::future::Future;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use nix::sched::{setns, unshare, CloneFlags};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Runs `ip ARGS`; Err with the command and its stderr when it fails.
pub fn ip(args: &[&str]) -> Result<(), String> {
    run("ip", args)
}

/// Runs `CMD ARGS` (found through `PATH`); Err with the command and its stderr when it fails.
pub fn run(cmd: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .map_err(|e| format!("spawn {cmd}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A named namespace (`ip netns add`), deleted when dropped (also when the test fails).
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Adds the namespace `NAME` as given.
    pub fn add(name: impl Into<String>) -> Result<Netns, String> {
        let name = name.into();
        ip(&["netns", "add", &name])?;
        Ok(Netns { name })
    }

    /// A name unique to this process and call: `PREFIX<pid>x<n>`.
    pub fn unique_name(prefix: &str) -> String {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        format!("{prefix}{}x{n}", std::process::id())
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `ip -n NAME ARGS`.
    pub fn ip(&self, args: &[&str]) -> Result<(), String> {
        let mut v = vec!["-n", &self.name];
        v.extend_from_slice(args);
        ip(&v)
    }

    /// A veth pair: `ours` in this namespace, `theirs` in `peer`, both set up (no addresses).
    pub fn veth_to(&self, ours: &str, peer: &Netns, theirs: &str) -> Result<(), String> {
        self.ip(&[
            "link",
            "add",
            ours,
            "type",
            "veth",
            "peer",
            "name",
            theirs,
            "netns",
            peer.name(),
        ])?;
        self.ip(&["link", "set", ours, "up"])?;
        peer.ip(&["link", "set", theirs, "up"])
    }

    /// Moves the calling thread into this namespace (processes it spawns inherit it).
    pub fn enter(&self) -> Result<(), String> {
        enter(&self.name)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.name]);
    }
}

/// Moves the calling thread into the named namespace `ns` (`/run/netns/NS`).
pub fn enter(ns: &str) -> Result<(), String> {
    let path = format!("/run/netns/{ns}");
    let file = File::open(&path).map_err(|e| format!("{path}: {e}"))?;
    setns(&file, CloneFlags::CLONE_NEWNET).map_err(|e| format!("setns {path}: {e}"))
}

/// Runs `f` on a fresh thread inside the named namespace `ns`, on its own current-thread tokio
/// runtime (sockets keep the namespace they were made in), and waits for it.
pub fn in_ns<F, Fut, T>(ns: &str, f: F) -> T
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T>,
    T: Send + 'static,
{
    spawn_in_ns(ns, f)
        .join()
        .expect("namespace thread panicked")
}

/// [`in_ns`] without waiting: the thread's handle, for namespaces that must run side by side.
pub fn spawn_in_ns<F, Fut, T>(ns: &str, f: F) -> std::thread::JoinHandle<T>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T>,
    T: Send + 'static,
{
    let ns = ns.to_string();
    std::thread::spawn(move || {
        enter(&ns).unwrap_or_else(|e| panic!("{e}"));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        rt.block_on(f())
    })
}

/// Runs `body` on a fresh thread in a new anonymous namespace (`unshare(CLONE_NEWNET)`) that
/// disappears with the thread; `lo` is up.
pub fn in_new_ns<F: FnOnce() -> T + Send + 'static, T: Send + 'static>(body: F) -> T {
    std::thread::spawn(move || {
        unshare(CloneFlags::CLONE_NEWNET).expect("unshare netns");
        ip(&["link", "set", "lo", "up"]).expect("lo up");
        body()
    })
    .join()
    .expect("netns thread panicked")
}
