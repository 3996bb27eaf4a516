//! The tickle peer link (`[tickle]`, docs/takeover.md "Tickle ACKs after a power loss"): the
//! node holding a floating address tells its peer, over UDP, the client TCP connections on it
//! (the portal port); the peer keeps the last list and, when it claims the address, sends
//! each of them tickle ACKs (`vip::tickle::send`), so every client's kernel resets its stale
//! connection at once and the initiator logs in to the new holder instead of waiting for its
//! own timeout.
//!
//! One datagram per list: JSON `{"v":1,"node":"a","seq":N,"conns":[{"local":"ip:port",
//! "remote":"ip:port"},...]}`, at most [`MAX_DATAGRAM`] bytes (a longer list is cut and the
//! cut logged). A list replaces the previous one whole. `seq` starts at the sender's start time
//! in microseconds since the Unix epoch and grows by one per datagram, so a restarted sender
//! continues above its old numbers; a datagram whose `seq` is not above the last accepted one
//! from the same node is dropped (reordered or duplicated; counted in `dropped`), unless that
//! last one is older than [`TRUST_SEQ_FOR`] (a clock set back across a restart). A list whose
//! `seq`, read as microseconds, is more than [`MAX_AHEAD`] ahead of this node's clock is dropped
//! too: no sender started in the future, so it is forged or the clocks are far apart, and kept
//! it would make the peer's real lists look old for [`TRUST_SEQ_FOR`] after each repeat.
//!
//! Only datagrams from the peer's full endpoint (`tickle.peer`, IP and port) are read: each node
//! sends from its bound `listen` socket, so a datagram from another port of the peer's host (a
//! local user there, who cannot bind the agent's port) is dropped. An acknowledgement counts
//! only when it names the `seq` of the handover being waited for (one forged or late ack
//! acknowledges nothing else). What someone able to forge the peer's IP and port could still do
//! (docs/takeover.md, "Threat model"): replace the learnt list (tickles then go to the clients it
//! names, or to none), or acknowledge a handover that the peer did not store.
//!
//! With `tickle.secret_file` ([`PeerLink::keyed`]) every datagram is the JSON followed by
//! [`TAG_LEN`] bytes of HMAC-SHA256 (RFC 2104) of that JSON under the shared secret, and one
//! whose tag does not verify is dropped before it is read: then only a holder of the secret
//! can replace the learnt list or acknowledge a handover. A list naming this node itself is
//! dropped as well (one of its own datagrams sent back to it).
//!
//! A failed bind of `listen` (the replication address not up yet) is not fatal
//! ([`PeerLink::bind_retrying`]): the link retries with a backoff of [`BIND_RETRY_FIRST`]
//! doubling to [`BIND_RETRY_MAX`], `status` says so, and meanwhile nothing is learnt and a
//! handover fails (the demote closes the connections, as with a silent peer).
//!
//! The sender re-reads the connections every `sync_ms` only while this node holds an address
//! (no timer otherwise), sends when the list changed, and also every [`REFRESH`] unchanged, so
//! a restarted peer (or one that lost a datagram) learns it without asking. With `sync_ms = 0`
//! no list is sent periodically; a planned demote's handover still sends one.
//!
//! A planned demote hands the connections over ([`PeerLink::hand_over`]): a fresh list with
//! `"want_ack":true`, which the peer, once it has stored it, answers with an acknowledgement
//! `{"v":1,"node":"b","seq":M,"conns":[],"ack":N}` naming the list's `seq` (an ack carries no
//! list). Both fields are optional, so a list without them reads as before; an agent that does
//! not know them drops such a datagram as malformed, never acknowledges, and the demote closes
//! the connections as without a handover. For [`HANDED_FOR`] after an acknowledged handover the
//! lists sent keep the handed-over connections (the target closes them after the address is
//! gone, and the list that would then follow must not erase them at the peer before its claim).
//!
//! Right after a planned demote removed an address, it tells the peer
//! ([`PeerLink::tell_released`]): `{"v":1,"node":"a","seq":N,"conns":[],"released":["10.0.0.50"]}`
//! (a notice carries no list and asks for nothing). The peer, which the authority is about to
//! promote, starts its RFC 5227 probe of that address at once instead of at its promote's start
//! ([`PeerLink::released_notices`], `backend::vip`): its probe window then runs while its
//! authority settles and its DRBD and target come up, not after them. The notice only moves a
//! probe earlier; what the claim requires is unchanged (nobody answered from the probe's start
//! until the claim), and a promote takes such a probe only while its window runs (its probes
//! still going out). An agent that does not know the field drops the notice as malformed and
//! probes at its promote as before; a forged or replayed notice starts a probe that nobody
//! uses, dropped at the end of its window.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio::net::UdpSocket;
use tokio::sync::{broadcast, watch};
use tracing::{debug, info, warn};
use vip::tickle::Connection;

use crate::config::Tickle;
use crate::status::{AddressStatus, Status};

pub mod remember;

/// The message format's version.
pub const VERSION: u32 = 1;
/// Largest datagram sent or read, bytes (under UDP's 65,507 over IPv4).
pub const MAX_DATAGRAM: usize = 65_000;
/// Bytes of the HMAC-SHA256 tag that ends a keyed datagram.
pub const TAG_LEN: usize = 32;
/// Largest message [`encode_message`] writes: a keyed datagram's tag still fits in
/// [`MAX_DATAGRAM`].
pub const MAX_MESSAGE: usize = MAX_DATAGRAM - TAG_LEN;
/// Longest node name accepted (a host name's limit).
pub const MAX_NODE: usize = 253;
/// An unchanged list is sent again this often while an address is held.
pub const REFRESH: Duration = Duration::from_secs(10);
/// After this long without a datagram from a node, its next `seq` is accepted whatever it is.
pub const TRUST_SEQ_FOR: Duration = Duration::from_secs(3 * 10);
/// How long after an acknowledged [`PeerLink::hand_over`] its connections stay in the lists
/// sent: the peer's claim follows the demote within seconds, and initiators have given up on
/// their own by then.
pub const HANDED_FOR: Duration = Duration::from_secs(30);
/// A list whose `seq` (microseconds since the Unix epoch at the sender's start, plus one per
/// datagram) is further ahead of this node's clock is dropped (module docs).
pub const MAX_AHEAD: Duration = Duration::from_secs(10 * 60);
/// First wait before binding `listen` again after a failed bind.
pub const BIND_RETRY_FIRST: Duration = Duration::from_secs(1);
/// Longest wait between two binds (the wait doubles from [`BIND_RETRY_FIRST`]).
pub const BIND_RETRY_MAX: Duration = Duration::from_secs(30);
/// Release notices a receiver may fall behind by before it loses the oldest (a demote sends one
/// per address; far more than a node's addresses).
pub const RELEASED_BACKLOG: usize = 256;
/// Pause after a failed receive, so an error that repeats at once cannot spin.
const RECEIVE_ERROR_PAUSE: Duration = Duration::from_millis(100);
/// Repeated warnings (dropped datagrams, failed dumps) at most this often.
const LOG_EVERY: Duration = Duration::from_secs(60);

/// One peer-link datagram.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Message {
    /// Format version, [`VERSION`].
    pub v: u32,
    /// The sender's node name (`node` in its config).
    pub node: String,
    /// Sequence number (see the module docs).
    pub seq: u64,
    /// The client connections on every address the sender holds, sorted; empty in an ack.
    pub conns: Vec<Connection>,
    /// The sender waits for an acknowledgement of this list (a planned demote's handover).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub want_ack: bool,
    /// An acknowledgement: the receiver stored the list of this `seq` (of the acknowledged
    /// node's numbering). Not a list: `conns` is empty and nothing is replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ack: Option<u64>,
    /// A release notice: the sender's planned demote removed these addresses just now. Not a
    /// list: `conns` is empty and nothing is replaced.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub released: Vec<IpAddr>,
}

/// Why a datagram is not a peer-link message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Longer than [`MAX_DATAGRAM`].
    #[error("{0} bytes, more than {MAX_DATAGRAM}")]
    TooLong(usize),
    /// Not JSON of the message's shape (serde_json's words: what, where).
    #[error("not a peer-link message: {0}")]
    Malformed(String),
    /// Another format version.
    #[error("format version {0}; this agent reads version {VERSION}")]
    Version(u64),
    /// `node` empty, longer than [`MAX_NODE`], or holding control characters.
    #[error("node name empty, longer than {MAX_NODE} bytes, or with control characters")]
    Node,
    /// An acknowledgement that also carries a list or asks for an acknowledgement.
    #[error("an acknowledgement carries no list and asks for none")]
    Ack,
    /// A release notice that also carries a list, asks for an acknowledgement or is one.
    #[error("a release notice carries no list, asks for nothing and acknowledges nothing")]
    Notice,
    /// A keyed link's datagram whose tag does not verify, or a datagram whose keying differs
    /// from this node's (the words say which).
    #[error("{0}")]
    Unauthenticated(&'static str),
}

/// The shared secret of a keyed link (`tickle.secret_file`), as HMAC-SHA256 keyed with it;
/// never printed.
#[derive(Clone)]
pub struct LinkKey(Hmac<Sha256>);

impl LinkKey {
    /// A key of `secret`'s bytes (`config::read_tickle_secret` checks its length and file).
    ///
    /// # Errors
    /// None in practice: HMAC takes a key of any length (RFC 2104 hashes a long one); the
    /// `hmac` crate's signature still has one.
    pub fn new(secret: &[u8]) -> Result<LinkKey, String> {
        <Hmac<Sha256> as Mac>::new_from_slice(secret)
            .map(LinkKey)
            .map_err(|e| format!("HMAC-SHA256 refused the secret: {e}"))
    }

    /// The MAC over a datagram from `from` to `to`: the direction is authenticated with the
    /// message, so a datagram sent back to its sender, or one of another pair of nodes using
    /// the same secret, does not verify.
    fn mac(&self, from: SocketAddr, to: SocketAddr, message: &[u8]) -> Hmac<Sha256> {
        let mut mac = self.0.clone();
        mac.update(format!("iscsi-ha tickle v{VERSION} {from} {to}\n").as_bytes());
        mac.update(message);
        mac
    }

    /// `message`, sent from `from` to `to`, followed by its tag.
    pub fn seal(&self, from: SocketAddr, to: SocketAddr, message: &[u8]) -> Vec<u8> {
        let mut out = message.to_vec();
        out.extend_from_slice(&self.mac(from, to, message).finalize().into_bytes());
        out
    }

    /// The message of `datagram`, received from `from` at `to`, whose tag verifies (compared
    /// in constant time).
    ///
    /// # Errors
    /// [`DecodeError::Unauthenticated`]: shorter than a tag, or a tag that does not verify
    /// (another secret, a forgery, a datagram sent back, or an unkeyed peer, which the words
    /// then name: a datagram that is plain JSON).
    pub fn open<'a>(
        &self,
        from: SocketAddr,
        to: SocketAddr,
        datagram: &'a [u8],
    ) -> Result<&'a [u8], DecodeError> {
        let Some(split) = datagram.len().checked_sub(TAG_LEN) else {
            return Err(DecodeError::Unauthenticated(
                "shorter than an authentication tag",
            ));
        };
        let (message, tag) = datagram.split_at(split);
        if self.mac(from, to, message).verify_slice(tag).is_ok() {
            return Ok(message);
        }
        // Only the last byte is looked at: a forgery is never parsed.
        Err(DecodeError::Unauthenticated(
            if datagram.first() == Some(&b'{') && datagram.last() == Some(&b'}') {
                "not authenticated: the peer has no tickle.secret_file and this node has one"
            } else {
                "its authentication tag does not verify (another tickle.secret_file, or forged)"
            },
        ))
    }
}

impl std::fmt::Debug for LinkKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkKey(..)")
    }
}

/// Decodes one datagram. Never panics.
///
/// # Errors
/// [`DecodeError`]: too long, malformed (truncated, junk, a missing or unknown field, an
/// address that is not `ip:port`), another version (checked before the rest, so a later
/// format is named as such), a bad node name, an ack with a list or `want_ack`.
pub fn decode(bytes: &[u8]) -> Result<Message, DecodeError> {
    if bytes.len() > MAX_DATAGRAM {
        return Err(DecodeError::TooLong(bytes.len()));
    }
    #[derive(Deserialize)]
    struct Head {
        v: u64,
    }
    let head: Head =
        serde_json::from_slice(bytes).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    if head.v != u64::from(VERSION) {
        return Err(DecodeError::Version(head.v));
    }
    let m: Message =
        serde_json::from_slice(bytes).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    if !node_name_ok(&m.node) {
        return Err(DecodeError::Node);
    }
    if m.ack.is_some() && (m.want_ack || !m.conns.is_empty()) {
        return Err(DecodeError::Ack);
    }
    if !m.released.is_empty() && (m.want_ack || !m.conns.is_empty() || m.ack.is_some()) {
        return Err(DecodeError::Notice);
    }
    Ok(m)
}

/// Encodes a list (no `want_ack`) with as many of `conns` (from the first) as fit in
/// [`MAX_MESSAGE`]; returns the datagram and how many connections it holds.
pub fn encode(node: &str, seq: u64, conns: &[Connection]) -> (Vec<u8>, usize) {
    encode_message(&Message {
        v: VERSION,
        node: node.to_string(),
        seq,
        conns: conns.to_vec(),
        want_ack: false,
        ack: None,
        released: Vec::new(),
    })
}

/// Encodes `message` with as many of its connections (from the first) as fit in
/// [`MAX_MESSAGE`]; returns the datagram and how many connections it holds.
pub fn encode_message(message: &Message) -> (Vec<u8>, usize) {
    let conns = &message.conns;
    let mut m = Message {
        conns: Vec::new(),
        ..message.clone()
    };
    // serde_json's compact form is the head plus each element, comma separated.
    let mut len = serde_json::to_vec(&m).map_or(0, |v| v.len());
    let mut fit = 0;
    for (i, c) in conns.iter().enumerate() {
        let one = serde_json::to_vec(c).map_or(usize::MAX / 2, |v| v.len()) + usize::from(i > 0);
        if len + one > MAX_MESSAGE {
            break;
        }
        len += one;
        fit += 1;
    }
    m.conns = conns[..fit].to_vec();
    (serde_json::to_vec(&m).unwrap_or_default(), fit)
}

/// A node name a datagram may carry: 1 to [`MAX_NODE`] bytes, no control characters (it is
/// shown by `status` and logged).
fn node_name_ok(node: &str) -> bool {
    !node.is_empty() && node.len() <= MAX_NODE && !node.chars().any(char::is_control)
}

/// `text` with its control characters escaped (`\u{1b}`): drop reasons quote what a datagram
/// held, and they are shown by `status` and logged.
fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Whether a list from `node` numbered `seq` may be kept (beyond what [`decode`] checks of its
/// shape): a name a datagram can carry, and a `seq` at most [`MAX_AHEAD`] ahead of this node's
/// clock (no sender started in the future). Checked on every list received and on the list
/// kept for a restart ([`remember`]).
///
/// # Errors
/// Which check failed, in words.
pub(crate) fn acceptable(node: &str, seq: u64) -> Result<(), String> {
    if !node_name_ok(node) {
        return Err(DecodeError::Node.to_string());
    }
    if seq > now_us().saturating_add(MAX_AHEAD.as_micros() as u64) {
        return Err(format!(
            "seq {seq} is more than {} s ahead of this node's clock (forged, or the clocks are \
             far apart)",
            MAX_AHEAD.as_secs()
        ));
    }
    Ok(())
}

/// The last list learnt from the peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Learnt {
    /// The peer's node name.
    pub node: String,
    /// Its `seq`.
    pub seq: u64,
    /// Its connections, less those tickled since.
    pub conns: Vec<Connection>,
    /// When it arrived.
    pub at: Instant,
}

/// What one tickle on a claim did (status, logs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TickleReport {
    /// The claimed address (IP only).
    pub address: IpAddr,
    /// Connections on it in the peer's list.
    pub connections: usize,
    /// Tickle ACKs sent (connections times `repeat`, less failures).
    pub packets: usize,
    /// Connections not (fully) tickled, and why; or why nothing was sent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
    /// Age of the peer's list at the claim, milliseconds (`None`: no list).
    pub list_age_ms: Option<u64>,
    /// When, milliseconds since the Unix epoch.
    pub at_unix_ms: u64,
}

/// The link's part of `iscsi-ha status` (field `tickle`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TickleStatus {
    /// Why no connection is learnt or tickled (`None`: the link runs).
    #[serde(default)]
    pub off: Option<String>,
    /// The peer's endpoint.
    #[serde(default)]
    pub peer: Option<SocketAddr>,
    /// Per configured address, in config order.
    #[serde(default)]
    pub addresses: Vec<AddressTickle>,
    /// Datagrams dropped: not from the peer's endpoint, not decodable, an old or far-ahead
    /// `seq`, an ack that no handover waits for.
    #[serde(default)]
    pub dropped: u64,
    /// This node sends no periodic list (`sync_ms = 0`; a planned demote still hands over).
    #[serde(default)]
    pub never_sends: bool,
    /// `listen` is not bound (yet): the bind's error; it is retried with a backoff.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unbound: Option<String>,
    /// Milliseconds since the last datagram accepted from the peer (a list or an ack).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heard_age_ms: Option<u64>,
    /// Datagrams are authenticated (`tickle.secret_file`).
    #[serde(default)]
    pub authenticated: bool,
    /// Why the last dropped datagram was dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_dropped: Option<String>,
}

/// One address in [`TickleStatus`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressTickle {
    /// `address/prefix`, as in [`Status::addresses`].
    pub address: String,
    /// Held here: its connections are sent to the peer.
    pub held: bool,
    /// Held: connections on it in the list last sent (`None`: nothing sent yet).
    pub sent: Option<usize>,
    /// Connections on it in the peer's last list.
    pub learnt: usize,
    /// The peer node that sent that list.
    pub learnt_from: Option<String>,
    /// That list's age, milliseconds.
    pub learnt_age_ms: Option<u64>,
    /// The last tickle on a claim of it.
    pub last_tickle: Option<TickleReport>,
}

impl TickleStatus {
    /// What `status` says without a running link: no `[tickle]` section, or a daemon that runs
    /// none (`--simulate`).
    pub fn without_link(configured: bool) -> TickleStatus {
        let off = if configured {
            "configured, but this daemon runs no peer link (in-memory backends)"
        } else {
            "no [tickle] section: after a power loss an initiator with a command in flight \
             waits for its own timeout before it logs in to the survivor"
        };
        TickleStatus {
            off: Some(off.into()),
            ..Default::default()
        }
    }

    /// One line per address (or one line when off), for `status`.
    pub fn lines(&self) -> Vec<String> {
        if let Some(off) = &self.off {
            return vec![format!("tickle: off ({off})")];
        }
        let peer = self.peer.map(|p| p.to_string()).unwrap_or_default();
        let mut out = Vec::new();
        if let Some(why) = &self.unbound {
            out.push(format!("tickle: peer link not bound ({why}), retrying"));
        }
        for a in &self.addresses {
            let what = match (a.held, a.sent) {
                (true, Some(n)) => format!("sending {n} connection(s) to {peer}"),
                (true, _) if self.never_sends => {
                    "held, no periodic list (sync_ms = 0; a planned demote still hands over)".into()
                }
                (true, None) => format!("held, nothing sent to {peer} yet"),
                (false, _) => match (&a.learnt_from, a.learnt_age_ms) {
                    (Some(node), Some(age)) => format!(
                        "{} connection(s) from peer {node}, {:.1} s old",
                        a.learnt,
                        age as f64 / 1000.0
                    ),
                    _ => format!("no list from {peer} yet"),
                },
            };
            let last = a.last_tickle.as_ref().map_or(String::new(), |t| {
                format!(
                    "; last claim tickled {} connection(s) ({} ACKs{})",
                    t.connections,
                    t.packets,
                    if t.errors.is_empty() {
                        String::new()
                    } else {
                        format!(", {} error(s): {}", t.errors.len(), t.errors[0])
                    }
                )
            });
            out.push(format!("tickle {}: {what}{last}", a.address));
        }
        if let Some(age) = self.heard_age_ms {
            out.push(format!(
                "tickle: last datagram from peer {peer} {:.1} s ago",
                age as f64 / 1000.0
            ));
        }
        if !self.authenticated {
            out.push(
                "tickle: datagrams not authenticated (no tickle.secret_file; docs/takeover.md, \
                 \"Threat model\")"
                    .into(),
            );
        }
        if self.dropped > 0 {
            out.push(format!(
                "tickle: {} datagram(s) dropped, the last {}",
                self.dropped,
                self.last_dropped.as_deref().unwrap_or("(reason not kept)")
            ));
        }
        out
    }
}

#[derive(Debug, Default)]
struct Shared {
    learnt: Option<Learnt>,
    /// The last list sent, and when.
    sent: Option<(Vec<Connection>, Instant)>,
    /// The last acknowledged handover's list, and when ([`HANDED_FOR`]).
    handed: Option<(Vec<Connection>, Instant)>,
    last_tickle: Vec<TickleReport>,
    dropped: u64,
    /// Why the last datagram was dropped.
    last_dropped: Option<String>,
    /// The `seq` of the handover waiting for its ack.
    awaiting: Option<u64>,
    /// When the last datagram from the peer was accepted.
    heard: Option<Instant>,
    /// Why `listen` is not bound (`None`: bound, or not tried yet).
    unbound: Option<String>,
    /// When each kind of repeated warning was last logged.
    warned: [Option<Instant>; 6],
}

/// Which repeated warning ([`Shared::warned`]).
#[derive(Clone, Copy)]
enum Warn {
    Dropped = 0,
    Dump = 1,
    Send = 2,
    Old = 3,
    Receive = 4,
    Store = 5,
}

impl Shared {
    /// Whether a warning of this kind may be logged now (at most once per [`LOG_EVERY`]).
    fn may_warn(&mut self, kind: Warn) -> bool {
        let slot = &mut self.warned[kind as usize];
        if slot.is_some_and(|t| t.elapsed() < LOG_EVERY) {
            return false;
        }
        *slot = Some(Instant::now());
        true
    }
}

/// The peer link of one node: its socket, the peer's last list, what was sent.
#[derive(Debug)]
pub struct PeerLink {
    config: Tickle,
    node: String,
    /// Set once `listen` is bound.
    socket: OnceLock<UdpSocket>,
    seq: AtomicU64,
    shared: Mutex<Shared>,
    /// The IP addresses this node holds (see [`HeldMonitor`]).
    held: watch::Sender<BTreeSet<IpAddr>>,
    /// The last awaited handover `seq` the peer acknowledged.
    acked: watch::Sender<Option<u64>>,
    /// The addresses of each of the peer's release notices, every one delivered: a demote of
    /// several addresses sends a notice per address at once, and a latest-value channel kept
    /// only the last (the others' probes then ran at the promote).
    released: broadcast::Sender<Vec<IpAddr>>,
    /// Held from reading the connections to sending them, so that an older read is never sent
    /// after a newer one.
    sending: tokio::sync::Mutex<()>,
    /// Where the learnt list is kept for a restart ([`PeerLink::remembering`]).
    store: Option<std::path::PathBuf>,
    /// The shared secret of a keyed link ([`PeerLink::keyed`]).
    key: Option<LinkKey>,
}

impl PeerLink {
    /// Binds `config.listen`. Must run inside a tokio runtime.
    ///
    /// # Errors
    /// The bind's error (the address is not on this host, the port is taken).
    pub async fn bind(config: &Tickle, node: &str) -> std::io::Result<PeerLink> {
        let link = PeerLink::unbound(config, node);
        link.try_bind().await?;
        Ok(link)
    }

    /// A link whose `listen` is not bound yet ([`PeerLink::bind_retrying`]): nothing is
    /// received, and sending fails, until it is.
    pub fn unbound(config: &Tickle, node: &str) -> PeerLink {
        PeerLink {
            config: config.clone(),
            node: node.to_string(),
            socket: OnceLock::new(),
            seq: AtomicU64::new(now_us()),
            shared: Mutex::new(Shared::default()),
            held: watch::channel(BTreeSet::new()).0,
            acked: watch::channel(None).0,
            released: broadcast::channel(RELEASED_BACKLOG).0,
            sending: tokio::sync::Mutex::new(()),
            store: None,
            key: None,
        }
    }

    /// Seals every datagram sent with `key` and drops every one received whose tag does not
    /// verify under it (`tickle.secret_file`; the module docs).
    pub fn keyed(mut self, key: LinkKey) -> PeerLink {
        self.key = Some(key);
        self
    }

    /// Keeps every learnt list in `path` ([`remember`]), and starts from the one found there
    /// when it is younger than [`remember::REMEMBER_FOR`]: an agent restarted between its
    /// peer's handover and its own claim still tickles the connections handed over. Call after
    /// [`PeerLink::keyed`]: a keyed link takes only a list learnt over a keyed link.
    pub fn remembering(mut self, path: std::path::PathBuf) -> PeerLink {
        match remember::restore(&path, self.key.is_some()) {
            Ok(Some(l)) => {
                info!(node = %l.node, seq = l.seq, connections = l.conns.len(),
                    age_ms = l.at.elapsed().as_millis() as u64,
                    "tickle peer link: the list learnt before the restart is taken");
                self.shared
                    .get_mut()
                    .unwrap_or_else(PoisonError::into_inner)
                    .learnt = Some(l);
            }
            Ok(None) => {}
            Err(why) => warn!("tickle peer link: the kept list is ignored: {why}"),
        }
        self.store = Some(path);
        self
    }

    /// Writes the learnt list to the store, if any; a failure is logged once a minute.
    fn remember(&self, s: &mut Shared) {
        let (Some(path), Some(l)) = (&self.store, &s.learnt) else {
            return;
        };
        if let Err(e) = remember::store(path, l, self.key.is_some()) {
            if s.may_warn(Warn::Store) {
                warn!(path = %path.display(), error = %e,
                    "tickle peer link: the learnt list cannot be kept for a restart");
            }
        }
    }

    async fn try_bind(&self) -> std::io::Result<()> {
        if self.socket.get().is_none() {
            let socket = UdpSocket::bind(self.config.listen).await?;
            // Only this function sets it, and only the one task calling it.
            let _ = self.socket.set(socket);
        }
        Ok(())
    }

    /// Binds `listen`, retrying after a failure (waiting [`BIND_RETRY_FIRST`], doubling to
    /// [`BIND_RETRY_MAX`]; a warning per failure, the error in `status`), and returns once
    /// bound: the replication address may come up after the agent, and the daemon serves
    /// meanwhile without the link.
    pub async fn bind_retrying(&self) {
        let mut wait = BIND_RETRY_FIRST;
        loop {
            match self.try_bind().await {
                Ok(()) => {
                    if self.shared().unbound.take().is_some() {
                        info!(listen = %self.config.listen, "tickle peer link bound");
                    }
                    return;
                }
                Err(e) => {
                    let why = format!("listen {}: {e}", self.config.listen);
                    warn!(
                        retry_in_s = wait.as_secs(),
                        "tickle peer link not bound ({why}); the daemon serves without it"
                    );
                    self.shared().unbound = Some(why);
                }
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(BIND_RETRY_MAX);
        }
    }

    /// The bound socket.
    fn socket(&self) -> std::io::Result<&UdpSocket> {
        self.socket.get().ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::NotConnected,
                format!("tickle.listen {} is not bound (yet)", self.config.listen),
            )
        })
    }

    /// One datagram to the peer from the bound socket.
    async fn to_peer(&self, bytes: &[u8]) -> std::io::Result<usize> {
        let socket = self.socket()?;
        match &self.key {
            Some(k) => {
                let sealed = k.seal(self.config.listen, self.config.peer, bytes);
                socket.send_to(&sealed, self.config.peer).await
            }
            None => socket.send_to(bytes, self.config.peer).await,
        }
    }

    /// The message in a datagram from the peer: its tag checked and taken off on a keyed link.
    fn open(&self, datagram: &[u8]) -> Result<Message, DecodeError> {
        let message = match &self.key {
            Some(k) => k.open(self.config.peer, self.config.listen, datagram)?,
            None => datagram,
        };
        match decode(message) {
            // A keyed peer's datagram: its JSON, then the tag.
            Err(DecodeError::Malformed(_))
                if self.key.is_none()
                    && message.len() > TAG_LEN
                    && decode(&message[..message.len() - TAG_LEN]).is_ok() =>
            {
                Err(DecodeError::Unauthenticated(
                    "authenticated: the peer has a tickle.secret_file and this node has none",
                ))
            }
            r => r,
        }
    }

    fn shared(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The bound endpoint.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.socket()?.local_addr()
    }

    /// The peer's last list, if any.
    pub fn learnt(&self) -> Option<Learnt> {
        self.shared().learnt.clone()
    }

    /// Reads datagrams for ever, keeping the last list from the peer. Returns at once when
    /// `listen` is not bound ([`PeerLink::bind_retrying`] first).
    pub async fn receive(&self) {
        let Ok(socket) = self.socket() else {
            return;
        };
        let mut buf = vec![0u8; MAX_DATAGRAM + 1];
        loop {
            match socket.recv_from(&mut buf).await {
                Ok((n, from)) => {
                    if let Some(seq) = self.take(from, &buf[..n]) {
                        self.ack(seq).await;
                    }
                }
                Err(e) => {
                    if self.shared().may_warn(Warn::Receive) {
                        warn!(error = %e, "tickle peer link: receive failed");
                    }
                    // An error that repeats at once (e.g. ICMP errors reported on the
                    // socket) must not spin.
                    tokio::time::sleep(RECEIVE_ERROR_PAUSE).await;
                }
            }
        }
    }

    /// One datagram from `from`: kept when it is the peer's, decodes, and is newer; an ack is
    /// noted. Returns the `seq` to acknowledge: a list that wants it, stored (or stored
    /// already: a repeat).
    fn take(&self, from: SocketAddr, bytes: &[u8]) -> Option<u64> {
        let mut s = self.shared();
        let peer = self.config.peer;
        let (why, kind) = if from != peer {
            (format!("from {from}, not the peer {peer}"), Warn::Dropped)
        } else {
            match self.open(bytes) {
                Err(e) => (format!("from {from}: {e}"), Warn::Dropped),
                Ok(Message { ack: Some(n), .. }) => {
                    if s.awaiting == Some(n) {
                        s.awaiting = None;
                        s.heard = Some(Instant::now());
                        self.acked.send_replace(Some(n));
                        return None;
                    }
                    (
                        format!("an ack of seq {n}, which no handover waits for (late or forged)"),
                        Warn::Old,
                    )
                }
                Ok(m) if acceptable(&m.node, m.seq).is_err() => (
                    acceptable(&m.node, m.seq).err().unwrap_or_default(),
                    Warn::Old,
                ),
                // Not ordered by seq: a replayed notice only starts a probe nobody uses.
                Ok(m) if !m.released.is_empty() => {
                    debug!(node = %m.node, seq = m.seq, addresses = ?m.released,
                        "tickle peer link: the peer released addresses");
                    s.heard = Some(Instant::now());
                    // None listening (no address watch yet): nothing to start.
                    let _ = self.released.send(m.released);
                    return None;
                }
                Ok(m) => {
                    let last = s.learnt.as_ref().filter(|l| {
                        l.node == m.node && m.seq <= l.seq && l.at.elapsed() < TRUST_SEQ_FOR
                    });
                    match last {
                        // A repeated list is still stored: acknowledged again.
                        Some(l) if m.want_ack && l.seq == m.seq => return Some(m.seq),
                        Some(l) => (
                            format!(
                                "seq {} of {} is not above the last one, {} (reordered, \
                                 duplicated or replayed)",
                                m.seq, m.node, l.seq
                            ),
                            Warn::Old,
                        ),
                        None => {
                            debug!(node = %m.node, seq = m.seq, connections = m.conns.len(),
                                want_ack = m.want_ack, "tickle peer link: list received");
                            let want_ack = m.want_ack.then_some(m.seq);
                            let at = Instant::now();
                            s.heard = Some(at);
                            s.learnt = Some(Learnt {
                                node: m.node,
                                seq: m.seq,
                                conns: m.conns,
                                at,
                            });
                            self.remember(&mut s);
                            return want_ack;
                        }
                    }
                }
            }
        };
        let why = printable(&why);
        s.dropped += 1;
        // The peer's own drops only: a keying mismatch stays readable whatever others send.
        if from == peer {
            s.last_dropped = Some(why.clone());
        }
        if s.may_warn(kind) {
            warn!(
                dropped = s.dropped,
                "tickle peer link: datagram dropped ({why}); such drops are logged once a minute"
            );
        }
        None
    }

    /// This node's next message: its name and the next seq of its clock-started counter.
    fn next_message(&self, conns: Vec<Connection>, want_ack: bool, ack: Option<u64>) -> Message {
        Message {
            v: VERSION,
            node: self.node.clone(),
            seq: self.seq.fetch_add(1, Ordering::Relaxed),
            conns,
            want_ack,
            ack,
            released: Vec::new(),
        }
    }

    /// The peer's release notices from now on (module docs): the addresses of each, in order.
    /// A receiver more than [`RELEASED_BACKLOG`] notices behind gets
    /// [`broadcast::error::RecvError::Lagged`] and loses the oldest (their probes run at the
    /// promote).
    pub fn released_notices(&self) -> broadcast::Receiver<Vec<IpAddr>> {
        self.released.subscribe()
    }

    /// Tells the peer that a planned demote removed `ips` from this node just now (one
    /// datagram, best effort: a lost notice only means the peer probes at its promote).
    pub async fn tell_released(&self, ips: &[IpAddr]) {
        if ips.is_empty() {
            return;
        }
        let mut m = self.next_message(Vec::new(), false, None);
        m.released = ips.to_vec();
        match self.to_peer(&encode_message(&m).0).await {
            Ok(_) => debug!(peer = %self.config.peer, addresses = ?ips,
                "tickle peer link: release told to the peer"),
            Err(e) => {
                if self.shared().may_warn(Warn::Send) {
                    warn!(peer = %self.config.peer, error = %e,
                        "tickle peer link: telling the peer of a release failed");
                }
            }
        }
    }

    /// Acknowledges the stored list `seq` to the peer (one datagram; a lost ack is the sender's
    /// timeout, which then closes the connections itself).
    async fn ack(&self, seq: u64) {
        let to = self.config.peer;
        let m = self.next_message(Vec::new(), false, Some(seq));
        match self.to_peer(&encode_message(&m).0).await {
            Ok(_) => debug!(%to, seq, "tickle peer link: list acknowledged"),
            Err(e) => {
                if self.shared().may_warn(Warn::Send) {
                    warn!(%to, seq, error = %e, "tickle peer link: acknowledging a list failed");
                }
            }
        }
    }

    /// A planned demote's handover of the client connections on `addresses` (those of the
    /// resource whose target goes offline): reads the connections on them and on every held
    /// address afresh (`vip::tickle::connections`, port `tickle.port`), sends them as one list
    /// with `want_ack`, and waits up to `tickle.handover_ms` for the peer's acknowledgement.
    /// `Ok(n)`: the peer stored the list, with `n` connections on `addresses`; its claim will
    /// tickle them. `Err(why)`: not handed over (`handover_ms` 0, a failed dump, a list too long
    /// for one datagram, a send error, no acknowledgement in time); the caller closes the
    /// connections while the address is still here.
    pub async fn hand_over(&self, addresses: &[IpAddr]) -> Result<usize, String> {
        let wait = self.config.handover_ms;
        if wait == 0 {
            return Err("tickle.handover_ms = 0".into());
        }
        let _sending = self.sending.lock().await;
        let mut ips = self.held.borrow().clone();
        ips.extend(addresses);
        let conns = self
            .read(&ips, Vec::new())
            .map_err(|(ip, e)| format!("reading the connections on {ip}: {e}"))?;
        let m = self.next_message(conns, true, None);
        let seq = m.seq;
        let (bytes, fit) = encode_message(&m);
        if fit < m.conns.len() {
            return Err(format!(
                "{} connections do not fit one datagram",
                m.conns.len()
            ));
        }
        let mut acked = self.acked.subscribe();
        let peer = self.config.peer;
        self.shared().awaiting = Some(seq);
        if let Err(e) = self.to_peer(&bytes).await {
            self.shared().awaiting = None;
            return Err(format!("sending the list to {peer}: {e}"));
        }
        self.shared().sent = Some((m.conns.clone(), Instant::now()));
        let got = tokio::time::timeout(
            Duration::from_millis(wait),
            acked.wait_for(|a| *a == Some(seq)),
        )
        .await;
        self.shared().awaiting = None;
        if got.is_err() {
            return Err(format!(
                "{peer} did not acknowledge the list within {wait} ms (tickle.handover_ms)"
            ));
        }
        let on = m
            .conns
            .iter()
            .filter(|c| addresses.contains(&c.local.ip()))
            .count();
        self.shared().handed = Some((m.conns, Instant::now()));
        Ok(on)
    }

    /// `with` and the connections on `ips` at the portal port, sorted, without duplicates; or
    /// the address whose dump failed.
    fn read(
        &self,
        ips: &BTreeSet<IpAddr>,
        mut with: Vec<Connection>,
    ) -> Result<Vec<Connection>, (IpAddr, vip::tickle::TickleError)> {
        for ip in ips {
            with.extend(vip::tickle::connections(*ip, self.config.port).map_err(|e| (*ip, e))?);
        }
        with.sort();
        with.dedup();
        Ok(with)
    }

    /// The last acknowledged handover's connections while [`HANDED_FOR`] has not passed.
    fn handed(&self) -> Vec<Connection> {
        let s = self.shared();
        match &s.handed {
            Some((c, at)) if at.elapsed() < HANDED_FOR => c.clone(),
            _ => Vec::new(),
        }
    }

    /// Sends `conns` to the peer in one datagram (cut to fit, logged).
    ///
    /// # Errors
    /// The socket's error.
    pub async fn send(&self, conns: &[Connection]) -> std::io::Result<()> {
        let (bytes, fit) = encode_message(&self.next_message(conns.to_vec(), false, None));
        if fit < conns.len() {
            warn!(
                connections = conns.len(),
                sent = fit,
                "tickle peer link: list cut to fit one datagram; the rest are not tickled"
            );
        }
        self.to_peer(&bytes).await?;
        self.shared().sent = Some((conns.to_vec(), Instant::now()));
        Ok(())
    }

    /// The addresses this node holds now: the sender syncs while there is one.
    pub fn set_held(&self, ips: BTreeSet<IpAddr>) {
        self.held.send_if_modified(|h| {
            let changed = *h != ips;
            *h = ips;
            changed
        });
    }

    /// The sender: while an address is held, every `sync_ms` reads its connections and sends
    /// the list when it changed or [`REFRESH`] passed; an empty list once nothing is held any
    /// more (the handed-over connections, see [`HANDED_FOR`]). Returns at once when `sync_ms`
    /// is 0.
    pub async fn sync(&self) {
        if self.config.sync_ms == 0 {
            return;
        }
        let period = Duration::from_millis(self.config.sync_ms);
        let mut held = self.held.subscribe();
        loop {
            let now: BTreeSet<IpAddr> = held.borrow_and_update().clone();
            if now.is_empty() {
                let sending = self.sending.lock().await;
                let want = self.handed();
                let had = self.shared().sent.as_ref().is_some_and(|s| s.0 != want);
                if had {
                    self.send_logged(&want).await;
                }
                drop(sending);
                if held.changed().await.is_err() {
                    return;
                }
                continue;
            }
            self.sync_once(&now).await;
            tokio::select! {
                () = tokio::time::sleep(period) => {}
                r = held.changed() => if r.is_err() { return; },
            }
        }
    }

    /// One sync of the held addresses' connections (with the handed-over ones, [`HANDED_FOR`]).
    pub async fn sync_once(&self, held: &BTreeSet<IpAddr>) {
        let _sending = self.sending.lock().await;
        let all = match self.read(held, self.handed()) {
            Ok(all) => all,
            Err((ip, e)) => {
                if self.shared().may_warn(Warn::Dump) {
                    warn!(address = %ip, error = %e, "tickle: reading the connections failed");
                }
                return;
            }
        };
        let due = match &self.shared().sent {
            None => true,
            Some((last, at)) => *last != all || at.elapsed() >= REFRESH,
        };
        if due {
            self.send_logged(&all).await;
        }
    }

    async fn send_logged(&self, conns: &[Connection]) {
        match self.send(conns).await {
            Ok(()) => {
                debug!(connections = conns.len(), peer = %self.config.peer, "tickle list sent")
            }
            Err(e) => {
                if self.shared().may_warn(Warn::Send) {
                    warn!(peer = %self.config.peer, error = %e, "tickle: sending the list failed");
                }
            }
        }
    }

    /// Right after `address` was claimed and announced: tickle ACKs (`repeat` each) to the
    /// connections on it in the peer's list, which are then dropped from the list. Sends that
    /// meet a full queue (`ENOBUFS`/`EAGAIN`, a congested link) are sent again after 5 to 80 ms
    /// (`vip::tickle::send_retrying`, 155 ms at most). Never fails: a failure, and what is
    /// still unsent after the retries, is logged and reported.
    pub async fn tickle(&self, address: IpAddr) -> TickleReport {
        let port = self.config.port;
        let (conns, age) = {
            let mut s = self.shared();
            let taken: (Vec<Connection>, _) = match s.learnt.as_mut() {
                None => (Vec::new(), None),
                Some(l) => {
                    let (on, rest) = l
                        .conns
                        .iter()
                        .partition(|c| c.local.ip() == address && c.local.port() == port);
                    l.conns = rest;
                    (on, Some(l.at.elapsed()))
                }
            };
            taken
        };
        let list_age_ms = age.map(|a| u64::try_from(a.as_millis()).unwrap_or(u64::MAX));
        let mut report = TickleReport {
            address,
            connections: conns.len(),
            packets: 0,
            errors: Vec::new(),
            list_age_ms,
            at_unix_ms: crate::events::now_ms(),
        };
        if !conns.is_empty() {
            match vip::tickle::send_retrying(&conns, self.config.repeat).await {
                Ok(sent) => {
                    report.packets = sent.packets;
                    report.errors = sent
                        .failed
                        .iter()
                        .map(|(c, why)| format!("{}: {why}", c.remote))
                        .chain(sent.retry.iter().map(|c| {
                            format!(
                                "{}: queue still full after {} retries (ENOBUFS/EAGAIN)",
                                c.remote,
                                vip::tickle::RETRY_PAUSES.len()
                            )
                        }))
                        .collect();
                }
                Err(e) => report.errors.push(e.to_string()),
            }
        }
        if report.errors.is_empty() {
            info!(%address, connections = report.connections, packets = report.packets,
                list_age_ms, "tickle ACKs sent after the claim");
        } else {
            warn!(%address, connections = report.connections, packets = report.packets,
                list_age_ms, errors = %report.errors.join("; "),
                "tickle ACKs after the claim failed in part (the initiators wait for their timeout)");
        }
        let mut s = self.shared();
        // Kept without them once they are tickled, not before: an agent killed between the
        // two still tickles them after its restart.
        if !conns.is_empty() {
            self.remember(&mut s);
        }
        s.last_tickle.retain(|t| t.address != address);
        s.last_tickle.push(report.clone());
        report
    }

    /// The link's part of the status, for the addresses `addresses` (held as they say).
    pub fn status(&self, addresses: &[AddressStatus]) -> TickleStatus {
        let s = self.shared();
        let sent = s.sent.as_ref();
        let on = |conns: &[Connection], ip: IpAddr| {
            conns
                .iter()
                .filter(|c| c.local.ip() == ip && c.local.port() == self.config.port)
                .count()
        };
        let list = addresses
            .iter()
            .filter_map(|a| {
                let ip = a.address.parse::<ipnet::IpNet>().ok()?.addr();
                Some(AddressTickle {
                    address: a.address.clone(),
                    held: a.held,
                    sent: sent.map(|(c, _)| on(c, ip)),
                    learnt: s.learnt.as_ref().map_or(0, |l| on(&l.conns, ip)),
                    learnt_from: s.learnt.as_ref().map(|l| l.node.clone()),
                    learnt_age_ms: s
                        .learnt
                        .as_ref()
                        .map(|l| u64::try_from(l.at.elapsed().as_millis()).unwrap_or(u64::MAX)),
                    last_tickle: s.last_tickle.iter().find(|t| t.address == ip).cloned(),
                })
            })
            .collect();
        TickleStatus {
            off: None,
            peer: Some(self.config.peer),
            addresses: list,
            dropped: s.dropped,
            never_sends: self.config.sync_ms == 0,
            unbound: s.unbound.clone(),
            heard_age_ms: s
                .heard
                .map(|h| u64::try_from(h.elapsed().as_millis()).unwrap_or(u64::MAX)),
            authenticated: self.key.is_some(),
            last_dropped: s.last_dropped.clone(),
        }
    }
}

/// Microseconds since the Unix epoch (0 before it).
fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// Tells the link which addresses this node holds after each input the daemon handled (the
/// state machine's view, so an address adopted at start or restored after a removal by hand
/// counts too).
#[derive(Debug)]
pub struct HeldMonitor(pub Arc<PeerLink>);

impl crate::monitor::Monitor for HeldMonitor {
    fn handled(&mut self, _: &crate::fsm::State, status: &Status, _: &crate::daemon::Handled) {
        let held = status
            .addresses
            .iter()
            .filter(|a| a.held)
            .filter_map(|a| a.address.parse::<ipnet::IpNet>().ok())
            .map(|n| n.addr())
            .collect();
        self.0.set_held(held);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(i: u32) -> Connection {
        Connection {
            local: "10.0.0.10:3260".parse().expect("local"),
            remote: SocketAddr::new(
                IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i)),
                40000 + (i % 20000) as u16,
            ),
        }
    }

    #[test]
    fn round_trip() {
        let conns = vec![conn(1), conn(2)];
        let (bytes, fit) = encode("a", 7, &conns);
        assert_eq!(fit, 2);
        let text = String::from_utf8(bytes.clone()).expect("utf-8");
        assert!(
            text.starts_with(r#"{"v":1,"node":"a","seq":7,"conns":[{"local":"10.0.0.10:3260","#),
            "{text}"
        );
        let m = decode(&bytes).expect("decodes");
        assert_eq!(m.conns, conns);
        assert_eq!((m.v, m.node.as_str(), m.seq), (1, "a", 7));
    }

    #[test]
    fn ipv6_round_trip() {
        let c = Connection {
            local: "[fd00::10]:3260".parse().expect("local"),
            remote: "[fd00::99]:51234".parse().expect("remote"),
        };
        let (bytes, _) = encode("b", 1, &[c]);
        assert_eq!(decode(&bytes).expect("decodes").conns, vec![c]);
    }

    #[test]
    fn bad_datagrams_are_named() {
        let (good, _) = encode("a", 1, &[conn(1)]);
        for cut in [0, 1, 10, good.len() - 1] {
            let e = decode(&good[..cut]).expect_err("truncated");
            assert!(matches!(e, DecodeError::Malformed(_)), "{cut}: {e}");
        }
        let e = decode(br#"{"v":2,"node":"a","seq":1,"conns":[],"more":1}"#).expect_err("v2");
        assert_eq!(e, DecodeError::Version(2));
        assert!(e.to_string().contains("version 2"), "{e}");
        let e = decode(br#"{"node":"a","seq":1,"conns":[]}"#).expect_err("no v");
        assert!(e.to_string().contains("missing field `v`"), "{e}");
        let e = decode(br#"{"v":1,"node":"","seq":1,"conns":[]}"#).expect_err("no node");
        assert_eq!(e, DecodeError::Node);
        let e = decode(br#"{"v":1,"node":"a","seq":1,"conns":[{"local":"x","remote":"y"}]}"#)
            .expect_err("bad address");
        assert!(matches!(e, DecodeError::Malformed(_)), "{e}");
        let e = decode(br#"{"v":1,"node":"a","seq":-1,"conns":[]}"#).expect_err("seq");
        assert!(matches!(e, DecodeError::Malformed(_)), "{e}");
        for junk in [&b"\xff\xfe\x00"[..], b"null", b"[]", b"{}", b"\"v\""] {
            assert!(decode(junk).is_err(), "{junk:?}");
        }
        let e = decode(&vec![b' '; MAX_DATAGRAM + 1]).expect_err("huge");
        assert_eq!(e, DecodeError::TooLong(MAX_DATAGRAM + 1));
    }

    #[test]
    fn a_huge_list_is_cut_to_one_datagram() {
        let conns: Vec<Connection> = (0..5000).map(conn).collect();
        let (bytes, fit) = encode("a", 1, &conns);
        assert!(bytes.len() <= MAX_MESSAGE, "{}", bytes.len());
        assert!(fit > 500 && fit < conns.len(), "{fit}");
        let m = decode(&bytes).expect("decodes");
        assert_eq!(m.conns, conns[..fit]);
        // one more would not have fitted
        let (more, _) = encode("a", 1, &conns[..fit + 1]);
        assert!(more.len() <= MAX_MESSAGE);
        let over = serde_json::to_vec(&Message {
            v: VERSION,
            node: "a".into(),
            seq: 1,
            conns: conns[..fit + 1].to_vec(),
            want_ack: false,
            ack: None,
            released: Vec::new(),
        })
        .expect("json");
        assert!(over.len() > MAX_MESSAGE, "{}", over.len());
    }

    #[tokio::test]
    async fn only_the_peers_newer_lists_are_kept() {
        let cfg: Tickle =
            toml::from_str("listen = \"127.0.0.1:0\"\npeer = \"127.0.0.2:7790\"").expect("tickle");
        let link = PeerLink::bind(&cfg, "a").await.expect("bind");
        let peer: SocketAddr = "127.0.0.2:7790".parse().expect("peer");
        let other: SocketAddr = "127.0.0.3:7790".parse().expect("other");
        let other_port: SocketAddr = "127.0.0.2:7791".parse().expect("other port");
        let list = |seq, n| encode("b", seq, &(1..=n).map(conn).collect::<Vec<_>>()).0;
        link.take(other, &list(10, 1));
        assert_eq!(link.learnt(), None, "from another host");
        link.take(other_port, &list(10, 1));
        assert_eq!(link.learnt(), None, "from another port of the peer's host");
        link.take(peer, b"junk");
        assert_eq!(link.learnt(), None, "junk");
        assert_eq!(link.shared().dropped, 3);
        link.take(peer, &list(10, 2));
        assert_eq!(link.learnt().map(|l| l.conns.len()), Some(2));
        link.take(peer, &list(9, 5));
        assert_eq!(link.learnt().map(|l| l.seq), Some(10), "older seq dropped");
        assert_eq!(link.shared().dropped, 4, "and counted");
        link.take(peer, &list(10, 5));
        assert_eq!(
            link.learnt().map(|l| l.conns.len()),
            Some(2),
            "same seq dropped"
        );
        link.take(peer, &list(11, 0));
        assert_eq!(
            link.learnt().map(|l| l.conns.len()),
            Some(0),
            "replaced whole"
        );
        // another node name (a replaced peer) starts its own numbering
        link.take(peer, &encode("c", 1, &[conn(1)]).0);
        assert_eq!(link.learnt().map(|l| l.node), Some("c".into()));
        // Nothing of the list is on 10.0.0.11: nothing sent, the list kept.
        link.take(peer, &list(12, 2));
        let r = link.tickle("10.0.0.11".parse().expect("ip")).await;
        assert_eq!((r.connections, r.packets), (0, 0));
        assert!(r.errors.is_empty(), "{r:?}");
        assert_eq!(link.learnt().map(|l| l.conns.len()), Some(2));
    }

    #[test]
    fn acks_and_want_ack_round_trip_and_are_checked() {
        let m = Message {
            v: VERSION,
            node: "a".into(),
            seq: 9,
            conns: vec![conn(1)],
            want_ack: true,
            ack: None,
            released: Vec::new(),
        };
        let (bytes, fit) = encode_message(&m);
        assert_eq!(fit, 1);
        let text = String::from_utf8(bytes.clone()).expect("utf-8");
        assert!(text.ends_with(r#"],"want_ack":true}"#), "{text}");
        assert_eq!(decode(&bytes), Ok(m));
        let ack = br#"{"v":1,"node":"b","seq":3,"conns":[],"ack":9}"#;
        assert_eq!(decode(ack).map(|m| m.ack), Ok(Some(9)));
        // A plain list has neither field (what an agent without them reads and sends).
        let (plain, _) = encode("a", 1, &[]);
        assert_eq!(plain, br#"{"v":1,"node":"a","seq":1,"conns":[]}"#);
        for bad in [
            &br#"{"v":1,"node":"b","seq":3,"conns":[],"ack":9,"want_ack":true}"#[..],
            br#"{"v":1,"node":"b","seq":3,"conns":[{"local":"10.0.0.10:3260","remote":"10.0.0.1:1"}],"ack":9}"#,
        ] {
            assert_eq!(decode(bad), Err(DecodeError::Ack));
        }
        for bad in [
            &br#"{"v":1,"node":"b","seq":3,"conns":[],"ack":-1}"#[..],
            br#"{"v":1,"node":"b","seq":3,"conns":[],"want_ack":1}"#,
        ] {
            assert!(
                matches!(decode(bad), Err(DecodeError::Malformed(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn release_notices_round_trip_and_are_checked() {
        let text = br#"{"v":1,"node":"a","seq":4,"conns":[],"released":["10.0.0.50","fd00::50"]}"#;
        let m = decode(text).expect("notice");
        assert_eq!(
            m.released,
            vec![
                "10.0.0.50".parse::<IpAddr>().expect("ip"),
                "fd00::50".parse().expect("ip")
            ]
        );
        assert_eq!(encode_message(&m).0, text.to_vec());
        for bad in [
            &br#"{"v":1,"node":"a","seq":4,"conns":[],"released":["10.0.0.50"],"ack":3}"#[..],
            br#"{"v":1,"node":"a","seq":4,"conns":[],"released":["10.0.0.50"],"want_ack":true}"#,
            br#"{"v":1,"node":"a","seq":4,"conns":[{"local":"10.0.0.10:3260","remote":"10.0.0.1:1"}],"released":["10.0.0.50"]}"#,
        ] {
            assert_eq!(decode(bad), Err(DecodeError::Notice), "{bad:?}");
        }
        let bad = br#"{"v":1,"node":"a","seq":4,"conns":[],"released":["10.0.0.500"]}"#;
        assert!(matches!(decode(bad), Err(DecodeError::Malformed(_))));
    }

    #[tokio::test]
    async fn a_release_notice_reaches_the_peer_and_replaces_no_list() {
        let (a, b, _) = pair().await;
        let rx = b.clone();
        let receiving = tokio::spawn(async move { rx.receive().await });
        a.send(&[conn(1)]).await.expect("list");
        let mut notices = b.released_notices();
        let ip: IpAddr = "10.0.0.50".parse().expect("ip");
        let ip2: IpAddr = "10.0.0.51".parse().expect("ip");
        // Two at once, as a demote of two addresses sends them: neither is lost.
        a.tell_released(&[ip]).await;
        a.tell_released(&[ip2]).await;
        for want in [ip, ip2] {
            let got = tokio::time::timeout(Duration::from_secs(5), notices.recv())
                .await
                .expect("a notice in time")
                .expect("link alive");
            assert_eq!(got, vec![want]);
        }
        // The list learnt before is kept: a notice is not a list.
        assert_eq!(b.learnt().map(|l| l.conns.len()), Some(1));
        receiving.abort();
    }

    /// Nodes a (127.0.0.1) and b (127.0.0.2), each bound and the other's peer (`handover_ms`
    /// 2000), neither receiving yet; and b's endpoint.
    async fn pair() -> (Arc<PeerLink>, Arc<PeerLink>, String) {
        let (pa, pb) = (free_port("127.0.0.1"), free_port("127.0.0.2"));
        let (a_end, b_end) = (format!("127.0.0.1:{pa}"), format!("127.0.0.2:{pb}"));
        let bind = |listen: &str, peer: &str, node: &'static str| {
            let cfg = link_config(listen, peer, 2000);
            async move { Arc::new(PeerLink::bind(&cfg, node).await.expect("bind")) }
        };
        let a = bind(&a_end, &b_end, "a").await;
        let b = bind(&b_end, &a_end, "b").await;
        (a, b, b_end)
    }

    /// A free UDP port on `ip` (bound and let go: the test binds it again at once).
    fn free_port(ip: &str) -> u16 {
        let s = std::net::UdpSocket::bind((ip, 0)).expect("bind");
        s.local_addr().expect("addr").port()
    }

    fn link_config(listen: &str, peer: &str, handover_ms: u64) -> Tickle {
        toml::from_str(&format!(
            "listen = \"{listen}\"\npeer = \"{peer}\"\nhandover_ms = {handover_ms}"
        ))
        .expect("tickle")
    }

    #[tokio::test]
    async fn a_list_that_wants_an_ack_is_acknowledged_once_stored() {
        let peer = tokio::net::UdpSocket::bind("127.0.0.2:0")
            .await
            .expect("peer");
        let from = peer.local_addr().expect("addr");
        let cfg = link_config("127.0.0.1:0", &from.to_string(), 200);
        let link = PeerLink::bind(&cfg, "a").await.expect("bind");
        let list = |seq| {
            encode_message(&Message {
                v: VERSION,
                node: "b".into(),
                seq,
                conns: vec![conn(1)],
                want_ack: true,
                ack: None,
                released: Vec::new(),
            })
            .0
        };
        let mut buf = vec![0u8; MAX_DATAGRAM];
        for (seq, acked) in [(5, Some(5)), (5, Some(5)), (4, None), (6, Some(6))] {
            if let Some(n) = link.take(from, &list(seq)) {
                link.ack(n).await;
            }
            let got = tokio::time::timeout(Duration::from_millis(500), peer.recv(&mut buf)).await;
            match (got, acked) {
                (Ok(n), Some(want)) => {
                    let m = decode(&buf[..n.expect("recv")]).expect("an ack");
                    assert_eq!(
                        (m.node.as_str(), m.ack, m.conns.len()),
                        ("a", Some(want), 0)
                    );
                }
                (Err(_), None) => {}
                (got, _) => panic!("seq {seq}: {got:?}, wanted an ack of {acked:?}"),
            }
            assert_eq!(link.learnt().map(|l| l.seq), Some(seq.max(5)));
        }
        // An ack is no list: the learnt one stays.
        let ack = br#"{"v":1,"node":"b","seq":7,"conns":[],"ack":1}"#;
        assert_eq!(link.take(from, ack), None);
        assert_eq!(link.learnt().map(|l| (l.seq, l.conns.len())), Some((6, 1)));
        assert_eq!(*link.acked.borrow(), None, "no handover waits for seq 1");
    }

    #[tokio::test]
    async fn a_keyed_link_takes_only_datagrams_sealed_with_its_secret() {
        let peer = tokio::net::UdpSocket::bind("127.0.0.2:0")
            .await
            .expect("peer");
        let from = peer.local_addr().expect("addr");
        let cfg = link_config("127.0.0.1:0", &from.to_string(), 200);
        let key = LinkKey::new(b"0123456789abcdef-shared").expect("key");
        let link = PeerLink::bind(&cfg, "a")
            .await
            .expect("bind")
            .keyed(key.clone());
        let list = |node: &str, seq| {
            encode_message(&Message {
                v: VERSION,
                node: node.into(),
                seq,
                conns: vec![conn(1)],
                want_ack: true,
                ack: None,
                released: Vec::new(),
            })
            .0
        };
        let dropped = |link: &PeerLink| link.status(&[]).last_dropped.unwrap_or_default();
        let other = LinkKey::new(b"another secret, 21 b").expect("key");
        // The peer seals from its end (this link's `peer`) to this link's `listen`.
        let (peer_end, our_end) = (cfg.peer, cfg.listen);
        let sealed = |k: &LinkKey, m: &[u8]| k.seal(peer_end, our_end, m);
        let mut tampered = sealed(&key, &list("b", 3));
        tampered[20] ^= 1;
        for (datagram, why) in [
            (list("b", 3), "the peer has no tickle.secret_file"),
            (sealed(&other, &list("b", 3)), "does not verify"),
            (tampered, "does not verify"),
            // One of this link's own datagrams sent back to it.
            (
                key.seal(our_end, peer_end, &list("b", 3)),
                "does not verify",
            ),
            (b"{}".to_vec(), "shorter than an authentication tag"),
        ] {
            assert_eq!(link.take(from, &datagram), None, "{why}");
            assert!(dropped(&link).contains(why), "{why}: {}", dropped(&link));
            assert_eq!(link.learnt(), None, "{why}");
        }
        // Another host's drop does not hide the peer's last one.
        assert_eq!(
            link.take("127.0.0.3:7790".parse().expect("other"), b"{}"),
            None
        );
        assert!(dropped(&link).contains("shorter than an authentication tag"));
        // A peer of the same node name as this one (a copied config) is still heard.
        assert_eq!(link.take(from, &sealed(&key, &list("a", 4))), Some(4));
        assert_eq!(
            link.learnt().map(|l| (l.node, l.seq)),
            Some(("a".into(), 4))
        );
        // What it sends is sealed too: the ack opens under the key only.
        link.ack(4).await;
        let mut buf = vec![0u8; MAX_DATAGRAM];
        let n = tokio::time::timeout(Duration::from_secs(10), peer.recv(&mut buf))
            .await
            .expect("an ack in time")
            .expect("recv");
        let m = decode(key.open(our_end, peer_end, &buf[..n]).expect("sealed")).expect("an ack");
        assert_eq!((m.node.as_str(), m.ack), ("a", Some(4)));
        assert!(other.open(our_end, peer_end, &buf[..n]).is_err() && decode(&buf[..n]).is_err());
        let status = link.status(&[]);
        assert!(status.authenticated && status.dropped == 6, "{status:?}");
        assert!(!status
            .lines()
            .iter()
            .any(|l| l.contains("not authenticated")));

        // An unkeyed node names a keyed peer's datagram for what it is.
        let plain = PeerLink::bind(&cfg, "a").await.expect("bind");
        assert_eq!(plain.take(from, &sealed(&key, &list("b", 5))), None);
        assert!(
            dropped(&plain).contains("the peer has a tickle.secret_file and this node has none")
        );
        assert!(plain
            .status(&[])
            .lines()
            .iter()
            .any(|l| l.contains("datagrams not authenticated")));
    }

    #[tokio::test]
    async fn what_a_datagram_holds_reaches_status_and_logs_without_control_characters() {
        let cfg = link_config("127.0.0.1:0", "127.0.0.2:7790", 200);
        let link = PeerLink::bind(&cfg, "a").await.expect("bind");
        let forged = r#"{"v":1,"node":"b","seq":1,"conns":[],"\u001b[2J\nFAKE":1}"#;
        assert_eq!(link.take(cfg.peer, forged.as_bytes()), None);
        let named = r#"{"v":1,"node":"b\u001b[31m","seq":1,"conns":[]}"#;
        assert_eq!(decode(named.as_bytes()), Err(DecodeError::Node));
        assert_eq!(link.take(cfg.peer, named.as_bytes()), None);
        let status = link.status(&[]);
        assert_eq!(status.dropped, 2);
        for line in status.lines() {
            assert!(!line.chars().any(char::is_control), "{line:?}");
        }
        assert_eq!(printable("a\u{1b}[2J\nb"), "a\\u{1b}[2J\\nb");
    }

    #[tokio::test]
    async fn only_the_awaited_handovers_ack_counts() {
        let cfg = link_config("127.0.0.1:0", "127.0.0.2:7790", 200);
        let link = PeerLink::bind(&cfg, "a").await.expect("bind");
        let peer = cfg.peer;
        let ack = |n: u64| format!(r#"{{"v":1,"node":"b","seq":3,"conns":[],"ack":{n}}}"#);
        // A forged ack of the largest seq acknowledges nothing, now or later.
        link.take(peer, ack(u64::MAX).as_bytes());
        assert_eq!(*link.acked.borrow(), None);
        assert_eq!(link.shared().dropped, 1);
        link.shared().awaiting = Some(42);
        link.take(peer, ack(41).as_bytes());
        link.take(peer, ack(43).as_bytes());
        assert_eq!(*link.acked.borrow(), None, "neighbours of the awaited seq");
        link.take("127.0.0.2:7791".parse().expect("port"), ack(42).as_bytes());
        assert_eq!(*link.acked.borrow(), None, "from another port");
        assert_eq!(link.shared().dropped, 4);
        link.take(peer, ack(42).as_bytes());
        assert_eq!(*link.acked.borrow(), Some(42));
        assert_eq!(link.shared().awaiting, None);
        assert!(
            link.status(&[]).heard_age_ms.is_some(),
            "heard from the peer"
        );
    }

    #[tokio::test]
    async fn a_far_ahead_seq_is_dropped_and_does_not_block() {
        let cfg = link_config("127.0.0.1:0", "127.0.0.2:7790", 200);
        let link = PeerLink::bind(&cfg, "a").await.expect("bind");
        let now = now_us();
        let ahead = now + 11 * 60 * 1_000_000;
        link.take(cfg.peer, &encode("b", ahead, &[conn(1)]).0);
        assert_eq!(link.learnt(), None, "11 minutes ahead");
        assert_eq!(link.shared().dropped, 1);
        // The real sender's list (its start time) is kept, and a clock 5 minutes apart too.
        link.take(cfg.peer, &encode("b", now - 1000, &[conn(1)]).0);
        assert_eq!(link.learnt().map(|l| l.seq), Some(now - 1000));
        let near = now + 5 * 60 * 1_000_000;
        link.take(cfg.peer, &encode("b", near, &[conn(2)]).0);
        assert_eq!(link.learnt().map(|l| l.seq), Some(near));
    }

    /// The agent killed between the peer's handover and its own claim: the restarted link
    /// starts from the kept list (same seq, so the peer's numbering goes on), the file is
    /// the agent's alone; an old or unreadable kept list is not taken.
    #[test]
    fn a_restarted_link_takes_the_kept_list() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("tickle-learnt.json");
        let cfg = link_config("127.0.0.1:7790", "127.0.0.2:7790", 200);
        let seq = now_us() - 1000;
        let before = PeerLink::unbound(&cfg, "a").remembering(path.clone());
        assert_eq!(before.learnt(), None);
        before.take(cfg.peer, &encode("b", seq, &[conn(1), conn(2)]).0);
        let mode = std::fs::metadata(&path).expect("kept").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        drop(before);

        let after = PeerLink::unbound(&cfg, "a").remembering(path.clone());
        let l = after.learnt().expect("taken");
        assert_eq!(
            (l.node.as_str(), l.seq, l.conns),
            ("b", seq, vec![conn(1), conn(2)])
        );
        assert!(l.at.elapsed() < remember::REMEMBER_FOR);
        // A replay of an older list is still refused after the restart.
        after.take(cfg.peer, &encode("b", seq - 1, &[conn(3)]).0);
        assert_eq!(after.learnt().map(|l| l.seq), Some(seq));

        // Written as the agent writes it, with one thing changed each time.
        let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").expect("boot id");
        let now_bt = {
            let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME).expect("clock");
            t.tv_sec() as u64 * 1000 + t.tv_nsec() as u64 / 1_000_000
        };
        let kept = |boot: &str, ms: u64, node: &str, seq: u64| {
            let text = format!(
                r#"{{"boot_id":"{}","received_boottime_ms":{ms},"authenticated":false,"node":"{node}","seq":{seq},"conns":[]}}"#,
                boot.trim()
            );
            std::fs::write(&path, text).expect("write");
            remember::restore(&path, false)
        };
        assert!(kept(&boot, now_bt, "b", seq).is_ok_and(|l| l.is_some()));
        let too_old = now_bt - remember::REMEMBER_FOR.as_millis() as u64 - 1000;
        assert_eq!(kept(&boot, too_old, "b", seq), Ok(None));
        assert_eq!(
            PeerLink::unbound(&cfg, "a")
                .remembering(path.clone())
                .learnt(),
            None
        );
        for (got, why) in [
            (
                kept("another-boot", now_bt, "b", seq),
                "before the last boot",
            ),
            (kept(&boot, now_bt + 60_000, "b", seq), "in the future"),
            (kept(&boot, now_bt, "", seq), "node name empty"),
            (
                kept(&boot, now_bt, "b", u64::MAX),
                "ahead of this node's clock",
            ),
        ] {
            assert!(
                got.as_ref().is_err_and(|e| e.contains(why)),
                "{why}: {got:?}"
            );
        }
        std::fs::write(&path, b"{not json").expect("write");
        let why = remember::restore(&path, false).expect_err("unreadable");
        assert!(why.starts_with(&path.display().to_string()), "{why}");
        assert_eq!(
            PeerLink::unbound(&cfg, "a")
                .remembering(path.clone())
                .learnt(),
            None
        );
        // Neither a link nor a FIFO is followed or waited on; the store replaces a link.
        std::fs::remove_file(&path).expect("rm");
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"untouched").expect("victim");
        std::os::unix::fs::symlink(&victim, &path).expect("symlink");
        assert!(remember::restore(&path, false).is_err());
        let l = Learnt {
            node: "b".into(),
            seq,
            conns: vec![],
            at: Instant::now(),
        };
        remember::store(&path, &l, false).expect("store");
        assert_eq!(std::fs::read(&victim).expect("victim"), b"untouched");
        assert!(remember::restore(&path, false).is_ok_and(|l| l.is_some()));
        // A keyed link takes only a list learnt over a keyed link.
        let why = remember::restore(&path, true).expect_err("unauthenticated");
        assert!(why.contains("unauthenticated link"), "{why}");
        remember::store(&path, &l, true).expect("store");
        assert!(remember::restore(&path, true).is_ok_and(|l| l.is_some()));
        // What an interrupted write left is removed at the next start.
        let left = dir.path().join(".tickle-learnt.AbC123");
        std::fs::write(&left, b"half").expect("leftover");
        remember::restore(&path, true).expect("taken");
        assert!(!left.exists());
        std::fs::remove_file(&path).expect("rm");
        nix::unistd::mkfifo(&path, nix::sys::stat::Mode::S_IRUSR).expect("fifo");
        let why = remember::restore(&path, false).expect_err("a FIFO");
        assert!(why.contains("not a regular file"), "{why}");
    }

    #[tokio::test]
    async fn an_unbound_link_serves_nothing_and_says_why() {
        // 192.0.2.1 (TEST-NET-1) is on no interface here: the bind fails, and is retried.
        let cfg = link_config("192.0.2.1:7790", "192.0.2.2:7790", 200);
        let link = Arc::new(PeerLink::unbound(&cfg, "a"));
        let run = link.clone();
        let binding = tokio::spawn(async move { run.bind_retrying().await });
        let deadline = Instant::now() + Duration::from_secs(30);
        while link.shared().unbound.is_none() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let st = link.status(&[]);
        let why = st.unbound.clone().expect("unbound");
        assert!(why.starts_with("listen 192.0.2.1:7790: "), "{why}");
        assert_eq!(
            st.lines()[0],
            format!("tickle: peer link not bound ({why}), retrying")
        );
        assert!(!binding.is_finished(), "retrying");
        binding.abort();
        // Meanwhile a handover fails (the demote closes) and receive returns.
        let e = link.hand_over(&[]).await.expect_err("unbound");
        assert!(e.contains("is not bound"), "{e}");
        link.receive().await;
        assert!(link.send(&[]).await.is_err());
    }

    #[tokio::test]
    async fn hand_over_is_true_only_when_the_peer_acks() {
        let (a, b, b_end) = pair().await;
        let rx = a.clone();
        let receiving = tokio::spawn(async move { rx.receive().await });
        // Nobody at the peer's end: not handed over, after handover_ms.
        let silent = PeerLink::bind(&link_config("127.0.0.1:0", &b_end, 30), "s")
            .await
            .expect("bind");
        let e = silent.hand_over(&[]).await.expect_err("silent peer");
        assert!(
            e.contains("did not acknowledge the list within 30 ms"),
            "{e}"
        );
        let rx = b.clone();
        let b_receiving = tokio::spawn(async move { rx.receive().await });
        // Nothing held, no address: an empty list, acknowledged.
        assert_eq!(a.hand_over(&[]).await, Ok(0));
        assert_eq!(
            b.learnt().map(|l| (l.node, l.conns.len())),
            Some(("a".into(), 0))
        );
        let off = PeerLink::bind(&link_config("127.0.0.1:0", &b_end, 0), "o")
            .await
            .expect("bind");
        assert_eq!(
            off.hand_over(&[]).await,
            Err("tickle.handover_ms = 0".into())
        );
        receiving.abort();
        b_receiving.abort();
    }

    #[test]
    fn lines_say_off_and_per_address() {
        let off = TickleStatus::without_link(false).lines();
        assert_eq!(off.len(), 1);
        assert!(
            off[0].starts_with("tickle: off (no [tickle] section"),
            "{off:?}"
        );
        let st = TickleStatus {
            off: None,
            peer: Some("10.1.0.2:7790".parse().expect("peer")),
            addresses: vec![
                AddressTickle {
                    address: "10.0.0.10/24".into(),
                    held: true,
                    sent: Some(3),
                    learnt: 0,
                    learnt_from: None,
                    learnt_age_ms: None,
                    last_tickle: None,
                },
                AddressTickle {
                    address: "10.0.0.11/24".into(),
                    held: false,
                    sent: None,
                    learnt: 2,
                    learnt_from: Some("b".into()),
                    learnt_age_ms: Some(800),
                    last_tickle: None,
                },
            ],
            dropped: 0,
            never_sends: false,
            unbound: None,
            heard_age_ms: None,
            authenticated: true,
            last_dropped: None,
        };
        assert_eq!(
            st.lines(),
            vec![
                "tickle 10.0.0.10/24: sending 3 connection(s) to 10.1.0.2:7790",
                "tickle 10.0.0.11/24: 2 connection(s) from peer b, 0.8 s old",
            ]
        );
        let st = TickleStatus {
            authenticated: false,
            dropped: 2,
            last_dropped: Some("from 10.1.0.9:7790, not the peer 10.1.0.2:7790".into()),
            ..st
        };
        assert_eq!(
            st.lines()[2..],
            [
                "tickle: datagrams not authenticated (no tickle.secret_file; docs/takeover.md, \
                 \"Threat model\")",
                "tickle: 2 datagram(s) dropped, the last from 10.1.0.9:7790, not the peer \
                 10.1.0.2:7790",
            ]
        );
    }
}
