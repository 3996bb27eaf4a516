//! Tickle ACKs: reset the clients' TCP connections to a floating address right after it moved,
//! instead of leaving each client to find out by its own timeout.
//!
//! While it serves, the holder lists the connections to the address with [`connections`] (a
//! `sock_diag` dump, `linux/inet_diag.h`) and the list reaches the peer. After the address has
//! moved, the new holder calls [`send`]: for each connection it sends, from the floating
//! address to the client, a bare ACK with sequence and acknowledgement numbers 0. The client's
//! TCP finds the segment outside its receive window and answers with an ACK carrying its real
//! numbers (RFC 793 §3.9 "SEGMENT ARRIVES", "If an incoming segment is not acceptable, an
//! acknowledgment should be sent"; RFC 5961 §4/§5; Linux `tcp_validate_incoming()` →
//! `tcp_send_dupack()`). That ACK reaches the new holder, whose kernel has no such connection
//! and answers with a RST whose sequence number is the ACK's acknowledgement number (RFC 793
//! §3.4 "Reset Generation"; Linux `tcp_v4_send_reset()` / `tcp_v6_send_reset()`), exactly the
//! client's `RCV.NXT`, so the client accepts it and resets the connection: its next read fails
//! with `ECONNRESET` and the initiator logs in again, to the new holder. CTDB does the same
//! (`ctdb_sys_send_tcp()` in `ctdb/common/system_socket.c`). `docs/tickle-ack.md` has the
//! details and the sources.
//!
//! Linux answers such segments at most once per `net.ipv4.tcp_invalid_ratelimit` (500 ms) per
//! socket, so a repeat within that window is only insurance against loss.

use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::time::Duration;

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_packet_sock_diag::inet::{ExtensionFlags, InetRequest, SocketId, StateFlags};
use netlink_packet_sock_diag::{SockDiagMessage, AF_INET, AF_INET6, IPPROTO_TCP};
use netlink_sys::{protocols::NETLINK_SOCK_DIAG, Socket as NlSocket, SocketAddr as NlAddr};
use socket2::{Domain, Protocol, SockAddr, SockRef, Socket, Type};

use crate::packet::pseudo_header_checksum;

/// One TCP connection to a floating address, as seen from the address's holder: `local` is the
/// floating address and the service port (e.g. iSCSI 3260), `remote` the client's address and
/// port. IPv4 connections accepted by a dual-stack IPv6 socket are reported as IPv4 (the
/// `::ffff:a.b.c.d` form is unmapped). Link-local IPv6 ends carry the interface index as scope
/// id.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct Connection {
    /// This host's end: the floating address and the listening port.
    pub local: SocketAddr,
    /// The client's end.
    pub remote: SocketAddr,
}

/// What [`send`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sent {
    /// Tickle ACKs the kernel accepted for sending (all connections, all repeats).
    pub packets: usize,
    /// Connections to which no copy could be sent because a queue was full: the qdisc or the
    /// device queue dropped the segment (`ENOBUFS`, e.g. a `tbf` qdisc on a congested link) or
    /// the socket's send buffer was full (`EAGAIN`). A later send may succeed: send them again,
    /// `send(&sent.retry, repeat)`, after a short pause ([`send_retrying`] does so). A
    /// connection that got its first copy but not every repeat counts as sent: the repeats only
    /// cover loss.
    pub retry: Vec<Connection>,
    /// Connections for which nothing or not every repeat could be sent for any other reason,
    /// with the reason (e.g. the local address is not on this host: `bind: Cannot assign
    /// requested address`). Sending again does not help.
    pub failed: Vec<(Connection, String)>,
}

/// Why [`connections`] or [`send`] failed as a whole.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TickleError {
    /// The kernel refused for lack of a capability (`EPERM`/`EACCES`): raw sockets need
    /// `CAP_NET_RAW`.
    #[error("permission denied: {op} (needs CAP_NET_RAW)")]
    PermissionDenied {
        /// What was attempted.
        op: &'static str,
    },
    /// A socket call failed.
    #[error("{op}: {source}")]
    Io {
        /// System call or step.
        op: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The kernel answered the `sock_diag` dump with `NLMSG_ERROR` (a positive errno here).
    #[error("sock_diag dump (family {family}): kernel error {errno}: {}", io::Error::from_raw_os_error(*errno))]
    Netlink {
        /// `AF_INET` (2) or `AF_INET6` (10).
        family: u8,
        /// The errno (positive).
        errno: i32,
    },
    /// A `sock_diag` reply could not be decoded (framing, or a message the codec rejects).
    #[error("sock_diag reply: {0}")]
    Decode(String),
}

impl TickleError {
    fn io(op: &'static str, source: io::Error) -> TickleError {
        match source.raw_os_error() {
            Some(libc::EPERM) | Some(libc::EACCES) => TickleError::PermissionDenied { op },
            _ => TickleError::Io { op, source },
        }
    }
}

/// TCP states in which the client may still hold the connection open (`linux/tcp_states.h`
/// numbering, as `inet_diag_req_v2.idiag_states` bits).
fn live_states() -> StateFlags {
    StateFlags::ESTABLISHED
        | StateFlags::SYN_RECV
        | StateFlags::FIN_WAIT1
        | StateFlags::FIN_WAIT2
        | StateFlags::CLOSE_WAIT
        | StateFlags::LAST_ACK
        | StateFlags::CLOSING
}

/// How long one `sock_diag` receive may wait: the kernel answers at once, this only bounds a
/// broken kernel.
const DIAG_RECV_TIMEOUT: Duration = Duration::from_secs(1);

/// Receive buffer for one dump datagram: the kernel fills at most 32 KiB per datagram
/// (`netlink_dump()`).
const DIAG_BUF: usize = 64 * 1024;

/// The TCP connections whose local end is `local` port `port`, in any state in which the peer
/// may still hold the connection (ESTABLISHED, SYN_RECV, FIN_WAIT1/2, CLOSE_WAIT, LAST_ACK,
/// CLOSING), from a `sock_diag` (`NETLINK_SOCK_DIAG`, `SOCK_DIAG_BY_FAMILY`) dump of TCP
/// sockets in the caller's network namespace. Sorted, without duplicates.
///
/// For an IPv4 `local`, both the `AF_INET` and the `AF_INET6` tables are dumped (a dual-stack
/// listener holds IPv4 clients as `::ffff:a.b.c.d`). Needs no privilege. Takes well under a
/// millisecond for a few hundred sockets.
///
/// # Errors
/// [`TickleError::Io`] when the netlink socket cannot be opened or a send/receive fails,
/// [`TickleError::Netlink`] when the kernel NACKs the dump, [`TickleError::Decode`] for a
/// reply that cannot be decoded.
pub fn connections(local: IpAddr, port: u16) -> Result<Vec<Connection>, TickleError> {
    let sock = NlSocket::new(NETLINK_SOCK_DIAG)
        .map_err(|e| TickleError::io("socket(NETLINK_SOCK_DIAG)", e))?;
    sock.connect(&NlAddr::new(0, 0))
        .map_err(|e| TickleError::io("connect(NETLINK_SOCK_DIAG)", e))?;
    SockRef::from(&sock)
        .set_read_timeout(Some(DIAG_RECV_TIMEOUT))
        .map_err(|e| TickleError::io("setsockopt(SO_RCVTIMEO)", e))?;
    let mut out = Vec::new();
    let want = Endpoint { addr: local, port };
    match local {
        IpAddr::V4(_) => {
            dump(&sock, AF_INET, 1, want, &mut out)?;
            match dump(&sock, AF_INET6, 2, want, &mut out) {
                // No IPv6 in this kernel: no dual-stack sockets either.
                Err(TickleError::Netlink { errno, .. }) if errno == libc::ENOENT => {}
                r => r?,
            }
        }
        IpAddr::V6(_) => dump(&sock, AF_INET6, 1, want, &mut out)?,
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// The local end [`connections`] looks for.
#[derive(Debug, Clone, Copy)]
struct Endpoint {
    addr: IpAddr,
    port: u16,
}

/// One `SOCK_DIAG_BY_FAMILY` dump of TCP sockets of `family`, appending the matches to `out`.
fn dump(
    sock: &NlSocket,
    family: u8,
    seq: u32,
    want: Endpoint,
    out: &mut Vec<Connection>,
) -> Result<(), TickleError> {
    let mut socket_id = if family == AF_INET {
        SocketId::new_v4()
    } else {
        SocketId::new_v6()
    };
    // A dump skips sockets of other local ports (`tcp_diag_dump()`; `inet_diag_dump_icsk()`
    // on older kernels); `decode_dump_datagram` checks address and port again.
    socket_id.source_port = want.port;
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    header.sequence_number = seq;
    let mut msg = NetlinkMessage::new(
        header,
        SockDiagMessage::InetRequest(InetRequest {
            family,
            protocol: IPPROTO_TCP,
            extensions: ExtensionFlags::empty(),
            states: live_states(),
            socket_id,
        })
        .into(),
    );
    msg.finalize();
    let mut req = vec![0; msg.buffer_len()];
    msg.serialize(&mut req);
    sock.send(&req, 0)
        .map_err(|e| TickleError::io("send(SOCK_DIAG_BY_FAMILY)", e))?;
    let mut buf = vec![0u8; DIAG_BUF];
    loop {
        let n = sock
            .recv(&mut &mut buf[..], libc::MSG_TRUNC)
            .map_err(|e| TickleError::io("recv(SOCK_DIAG_BY_FAMILY)", e))?;
        let datagram = buf.get(..n).ok_or_else(|| {
            TickleError::Decode(format!(
                "datagram of {n} bytes exceeds the {DIAG_BUF}-byte buffer"
            ))
        })?;
        if decode_dump_datagram(datagram, family, seq, want.addr, want.port, out)? {
            return Ok(());
        }
    }
}

/// Decodes one datagram of a `SOCK_DIAG_BY_FAMILY` dump reply (one or more netlink messages,
/// each padded to 4 bytes): appends to `out` the sockets whose local end is `local`:`port`
/// (IPv4-mapped IPv6 ends unmapped), skips messages of another sequence number than `seq`, and
/// returns true at `NLMSG_DONE`. Public for the fuzz target; [`connections`] is the API.
///
/// # Errors
/// [`TickleError::Netlink`] for `NLMSG_ERROR` with a nonzero code (attributed to `family`),
/// [`TickleError::Decode`] for a truncated or malformed message or an `NLMSG_OVERRUN`.
pub fn decode_dump_datagram(
    datagram: &[u8],
    family: u8,
    seq: u32,
    local: IpAddr,
    port: u16,
    out: &mut Vec<Connection>,
) -> Result<bool, TickleError> {
    let mut datagram = datagram;
    while !datagram.is_empty() {
        let msg = NetlinkMessage::<SockDiagMessage>::deserialize(datagram)
            .map_err(|e| TickleError::Decode(e.to_string()))?;
        // deserialize checked 16 <= length <= datagram.len(); the padding may be absent at the end.
        let len = msg.header.length as usize;
        let next = len.saturating_add(3) & !3;
        datagram = datagram.get(next..).unwrap_or_default();
        if msg.header.sequence_number != seq {
            continue;
        }
        match msg.payload {
            NetlinkPayload::Done(_) => return Ok(true),
            NetlinkPayload::Error(e) => match e.code {
                Some(code) => {
                    return Err(TickleError::Netlink {
                        family,
                        errno: code.get().saturating_neg(),
                    })
                }
                None => return Ok(true),
            },
            NetlinkPayload::Overrun(_) => return Err(TickleError::Decode("NLMSG_OVERRUN".into())),
            NetlinkPayload::Noop => {}
            NetlinkPayload::InnerMessage(SockDiagMessage::InetResponse(r)) => {
                let id = &r.header.socket_id;
                let scope = r.header.socket_id.interface_id;
                let c = Connection {
                    local: socket_addr(id.source_address, id.source_port, scope),
                    remote: socket_addr(id.destination_address, id.destination_port, scope),
                };
                if c.local.ip() == local && c.local.port() == port {
                    out.push(c);
                }
            }
            NetlinkPayload::InnerMessage(_) => {}
            // NetlinkPayload is non-exhaustive.
            _ => {}
        }
    }
    Ok(false)
}

/// A socket end as reported by `inet_diag`: IPv4-mapped IPv6 unmapped, the interface index as
/// scope id for link-local IPv6 only.
fn socket_addr(ip: IpAddr, port: u16, ifindex: u32) -> SocketAddr {
    match ip {
        IpAddr::V4(a) => SocketAddr::V4(SocketAddrV4::new(a, port)),
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(v4) => SocketAddr::V4(SocketAddrV4::new(v4, port)),
            None => {
                let scope = if a.is_unicast_link_local() {
                    ifindex
                } else {
                    0
                };
                SocketAddr::V6(SocketAddrV6::new(a, port, 0, scope))
            }
        },
    }
}

/// Window advertised by a tickle ACK (CTDB's value; any value works, the client drops the
/// segment).
const TICKLE_WINDOW: u16 = 1234;

/// TCP header length without options (RFC 793 §3.1), the whole tickle segment.
const TCP_HEADER_LEN: usize = 20;

/// The tickle segment for `c`, from `c.local` to `c.remote`: a 20-byte TCP header, sequence
/// number 0, acknowledgement number 0, flags ACK only, window [`TICKLE_WINDOW`], checksum over
/// the IPv4 or IPv6 pseudo-header (RFC 793 §3.1, RFC 8200 §8.1). None when the two ends are of
/// different families.
///
/// ```text
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |          Source Port          |       Destination Port        |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                        Sequence Number                        |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                    Acknowledgment Number                      |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |  Data |           |U|A|P|R|S|F|                               |
/// | Offset| Reserved  |R|C|S|S|Y|I|            Window             |
/// |       |           |G|K|H|T|N|N|                               |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |           Checksum            |         Urgent Pointer        |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
fn tickle_segment(c: &Connection) -> Option<[u8; TCP_HEADER_LEN]> {
    let mut h = [0u8; TCP_HEADER_LEN];
    h[0..2].copy_from_slice(&c.local.port().to_be_bytes());
    h[2..4].copy_from_slice(&c.remote.port().to_be_bytes());
    // Sequence and acknowledgement numbers (4..12) stay 0.
    h[12] = ((TCP_HEADER_LEN / 4) as u8) << 4;
    h[13] = 0x10; // ACK
    h[14..16].copy_from_slice(&TICKLE_WINDOW.to_be_bytes());
    let sum = match (c.local.ip(), c.remote.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            pseudo_header_checksum(&s.octets(), &d.octets(), IPPROTO_TCP, &h)
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            pseudo_header_checksum(&s.octets(), &d.octets(), IPPROTO_TCP, &h)
        }
        _ => return None,
    };
    h[16..18].copy_from_slice(&sum.to_be_bytes());
    Some(h)
}

/// A raw TCP socket bound to `local` (port 0: raw sockets have none). Without `IP_HDRINCL` the
/// kernel writes the IP header, with `local` as source; `bind()` fails with `EADDRNOTAVAIL`
/// unless `local` is an address of this host, so nothing is ever sent from an address we do
/// not hold.
fn raw_socket(local: &SocketAddr) -> Result<Result<Socket, String>, TickleError> {
    let (domain, op) = match local {
        SocketAddr::V4(_) => (Domain::IPV4, "socket(AF_INET, SOCK_RAW, IPPROTO_TCP)"),
        SocketAddr::V6(_) => (Domain::IPV6, "socket(AF_INET6, SOCK_RAW, IPPROTO_TCP)"),
    };
    let s =
        Socket::new(domain, Type::RAW, Some(Protocol::TCP)).map_err(|e| TickleError::io(op, e))?;
    s.set_nonblocking(true)
        .map_err(|e| TickleError::io("fcntl(O_NONBLOCK)", e))?;
    // Without it a segment the qdisc drops counts as sent. It also makes an ICMP error for an
    // earlier segment fail the socket's next send; the socket lives for one burst only.
    crate::socket::set_recv_err(&s, local.is_ipv6())
        .map_err(|e| TickleError::io("setsockopt(IP_RECVERR)", e))?;
    let mut at = *local;
    at.set_port(0);
    Ok(s.bind(&SockAddr::from(at))
        .map(|()| s)
        .map_err(|e| format!("bind {}: {e}", at.ip())))
}

/// True for a `sendto()` error that a later send may not meet: a full queue. `ENOBUFS` is
/// how a qdisc's or the device queue's drop comes back to a raw socket (`ip_send_skb()` →
/// `net_xmit_errno()`; `ip6_send_skb()`), `EAGAIN` a full send buffer of the non-blocking
/// socket (raw(7), send(2)).
fn retryable(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOBUFS) | Some(libc::EAGAIN))
}

/// One connection [`send`] can send to: its segment, socket and destination.
struct Target<'a> {
    conn: Connection,
    segment: [u8; TCP_HEADER_LEN],
    sock: &'a Socket,
    to: SockAddr,
    /// A send to it failed: no more repeats.
    stopped: bool,
}

/// Sends `repeat` tickle ACKs to each connection's remote end, from its local end, through a
/// raw `IPPROTO_TCP` socket per local address (IPv4 and IPv6). Copies go in rounds: every
/// connection's first copy before any second one; once a round met a full queue, the later
/// rounds are left out, so that the queue's room goes to the first copies of [`Sent::retry`].
///
/// The local end must be an address of this host now (the kernel refuses the bind
/// otherwise); such a connection, a send the kernel refuses, or a connection whose ends are
/// of different families lands in [`Sent::failed`] and the others are still sent (so does
/// `EPERM` from `sendto()`, which is how a netfilter OUTPUT rule's drop shows). A first copy
/// that meets a full queue (`ENOBUFS`, `EAGAIN`) puts the connection in [`Sent::retry`].
///
/// Synchronous and non-blocking: it returns as soon as every segment was handed to the
/// kernel or refused, never a wait (4 ms for 100 connections × 3 in a debug build). A caller that can wait sends
/// [`Sent::retry`] again after a short pause, as [`send_retrying`] does.
///
/// # Errors
/// [`TickleError::PermissionDenied`] without `CAP_NET_RAW` (nothing sent),
/// [`TickleError::Io`] when a raw socket cannot be made at all.
pub fn send(conns: &[Connection], repeat: u32) -> Result<Sent, TickleError> {
    let mut sent = Sent::default();
    let mut sockets: BTreeMap<IpAddr, Result<Socket, String>> = BTreeMap::new();
    for c in conns {
        if let std::collections::btree_map::Entry::Vacant(e) = sockets.entry(c.local.ip()) {
            e.insert(raw_socket(&c.local)?);
        }
    }
    let mut targets = Vec::with_capacity(conns.len());
    for c in conns {
        let Some(segment) = tickle_segment(c) else {
            sent.failed
                .push((*c, "local and remote of different families".into()));
            continue;
        };
        match &sockets[&c.local.ip()] {
            Ok(sock) => {
                let mut to = c.remote;
                to.set_port(0); // raw IPv6 sockets take a nonzero port as the protocol
                targets.push(Target {
                    conn: *c,
                    segment,
                    sock,
                    to: SockAddr::from(to),
                    stopped: false,
                });
            }
            Err(why) => sent.failed.push((*c, why.clone())),
        }
    }
    for round in 0..repeat {
        let mut full = false;
        for t in targets.iter_mut().filter(|t| !t.stopped) {
            match t.sock.send_to(&t.segment, &t.to) {
                Ok(_) => sent.packets += 1,
                Err(e) => {
                    t.stopped = true;
                    if !retryable(&e) {
                        sent.failed
                            .push((t.conn, format!("sendto {}: {e}", t.conn.remote)));
                    } else if round == 0 {
                        full = true;
                        sent.retry.push(t.conn);
                    } else {
                        full = true;
                    }
                }
            }
        }
        if full {
            break;
        }
    }
    Ok(sent)
}

/// Pauses of [`send_retrying`] before each new send of [`Sent::retry`]: 5 ms, doubling, 155 ms
/// in all. A link of 10 Mbit/s carries 1000 tickle segments (54 bytes on Ethernet) in about
/// 45 ms.
pub const RETRY_PAUSES: [Duration; 5] = [
    Duration::from_millis(5),
    Duration::from_millis(10),
    Duration::from_millis(20),
    Duration::from_millis(40),
    Duration::from_millis(80),
];

/// [`send`], then [`Sent::retry`] sent again after each pause of [`RETRY_PAUSES`] while it is
/// not empty (an async sleep, the thread is free meanwhile). The result adds up all the sends:
/// [`Sent::retry`] holds what a full queue still refused after the last pause.
///
/// # Errors
/// As [`send`].
pub async fn send_retrying(conns: &[Connection], repeat: u32) -> Result<Sent, TickleError> {
    let mut sent = send(conns, repeat)?;
    for pause in RETRY_PAUSES {
        if sent.retry.is_empty() {
            break;
        }
        tokio::time::sleep(pause).await;
        let again = send(&std::mem::take(&mut sent.retry), repeat)?;
        sent.packets += again.packets;
        sent.retry = again.retry;
        sent.failed.extend(again.failed);
    }
    Ok(sent)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn conn(l: &str, r: &str) -> Connection {
        Connection {
            local: l.parse().unwrap(),
            remote: r.parse().unwrap(),
        }
    }

    #[test]
    fn segment_fields_and_checksum() {
        for c in [
            conn("10.0.0.1:3260", "10.0.0.2:40000"),
            conn("[fd00::1]:3260", "[fd00::2]:40001"),
        ] {
            let h = tickle_segment(&c).unwrap();
            assert_eq!(&h[0..2], &3260u16.to_be_bytes());
            assert_eq!(u16::from_be_bytes([h[2], h[3]]), c.remote.port());
            assert_eq!(&h[4..12], &[0; 8]);
            assert_eq!(h[12], 0x50);
            assert_eq!(h[13], 0x10);
            assert_eq!(&h[14..16], &1234u16.to_be_bytes());
            // Summing over a segment that carries its checksum gives 0 (RFC 1071).
            let (s, d) = match (c.local.ip(), c.remote.ip()) {
                (IpAddr::V4(s), IpAddr::V4(d)) => (s.octets().to_vec(), d.octets().to_vec()),
                (IpAddr::V6(s), IpAddr::V6(d)) => (s.octets().to_vec(), d.octets().to_vec()),
                _ => unreachable!(),
            };
            assert_eq!(pseudo_header_checksum(&s, &d, IPPROTO_TCP, &h), 0);
        }
        assert!(tickle_segment(&conn("10.0.0.1:3260", "[fd00::2]:1")).is_none());
    }

    #[test]
    fn ipv4_checksum_known_value() {
        // 10.0.0.1:3260 -> 10.0.0.2:40000 ACK seq 0 ack 0 win 1234, computed by hand:
        // 0x0a00+0x0001+0x0a00+0x0002+0x0006+0x0014 + 0x0cbc+0x9c40+0x5010+0x04d2 = 0x111fb,
        // folded 0x11fc, complement 0xee03.
        let h = tickle_segment(&conn("10.0.0.1:3260", "10.0.0.2:40000")).unwrap();
        assert_eq!(u16::from_be_bytes([h[16], h[17]]), 0xee03);
    }

    #[test]
    fn full_queue_errors_are_retryable_others_not() {
        for errno in [libc::ENOBUFS, libc::EAGAIN, libc::EWOULDBLOCK] {
            assert!(retryable(&io::Error::from_raw_os_error(errno)), "{errno}");
        }
        for errno in [
            libc::EPERM,
            libc::EACCES,
            libc::EADDRNOTAVAIL,
            libc::ENETUNREACH,
            libc::EHOSTUNREACH,
            libc::EINVAL,
            libc::EMSGSIZE,
        ] {
            assert!(!retryable(&io::Error::from_raw_os_error(errno)), "{errno}");
        }
        assert!(!retryable(&io::Error::other("no errno")));
    }

    #[test]
    fn mapped_and_link_local_ends() {
        let m: Ipv6Addr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(
            socket_addr(IpAddr::V6(m), 3260, 7),
            "10.0.0.1:3260".parse::<SocketAddr>().unwrap()
        );
        let ll: Ipv6Addr = "fe80::1".parse().unwrap();
        assert_eq!(
            socket_addr(IpAddr::V6(ll), 1, 7),
            SocketAddr::V6(SocketAddrV6::new(ll, 1, 0, 7))
        );
        let g: Ipv6Addr = "fd00::1".parse().unwrap();
        assert_eq!(
            socket_addr(IpAddr::V6(g), 1, 7),
            SocketAddr::V6(SocketAddrV6::new(g, 1, 0, 0))
        );
    }

    fn nlmsg(ty: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        let len = 16 + payload.len();
        let mut v = Vec::new();
        v.extend_from_slice(&(len as u32).to_ne_bytes());
        v.extend_from_slice(&ty.to_ne_bytes());
        v.extend_from_slice(&2u16.to_ne_bytes()); // NLM_F_MULTI
        v.extend_from_slice(&seq.to_ne_bytes());
        v.extend_from_slice(&0u32.to_ne_bytes());
        v.extend_from_slice(payload);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v
    }

    /// An `inet_diag_msg` (72 bytes) for an IPv4 socket `src:sport` -> `dst:dport`.
    fn diag_msg(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16) -> Vec<u8> {
        let mut p = vec![AF_INET, 1, 0, 0];
        p.extend_from_slice(&sport.to_be_bytes());
        p.extend_from_slice(&dport.to_be_bytes());
        let mut a = [0u8; 16];
        a[..4].copy_from_slice(&src);
        p.extend_from_slice(&a);
        let mut a = [0u8; 16];
        a[..4].copy_from_slice(&dst);
        p.extend_from_slice(&a);
        p.extend_from_slice(&[0; 4 + 8]); // if, cookie
        p.extend_from_slice(&[0; 4 * 5]); // expires, rqueue, wqueue, uid, inode
        assert_eq!(p.len(), 72);
        p
    }

    #[test]
    fn decode_filters_and_stops_at_done() {
        let x = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        let mut d = nlmsg(20, 5, &diag_msg([10, 0, 0, 1], 3260, [10, 0, 0, 2], 40000));
        d.extend(nlmsg(
            20,
            5,
            &diag_msg([10, 0, 0, 9], 3260, [10, 0, 0, 2], 40001),
        ));
        d.extend(nlmsg(
            20,
            6,
            &diag_msg([10, 0, 0, 1], 3260, [10, 0, 0, 3], 40002),
        ));
        let mut out = Vec::new();
        assert!(!decode_dump_datagram(&d, AF_INET, 5, x, 3260, &mut out).unwrap());
        assert_eq!(out, vec![conn("10.0.0.1:3260", "10.0.0.2:40000")]);
        let done = nlmsg(3, 5, &0i32.to_ne_bytes());
        assert!(decode_dump_datagram(&done, AF_INET, 5, x, 3260, &mut out).unwrap());
    }

    #[test]
    fn decode_error_and_garbage() {
        let x = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        let mut p = (-libc::ENOENT).to_ne_bytes().to_vec();
        p.extend(nlmsg(20, 5, &[])[..16].iter());
        let err = nlmsg(2, 5, &p);
        let mut out = Vec::new();
        match decode_dump_datagram(&err, AF_INET6, 5, x, 3260, &mut out) {
            Err(TickleError::Netlink { family, errno }) => {
                assert_eq!((family, errno), (AF_INET6, libc::ENOENT))
            }
            r => panic!("{r:?}"),
        }
        for bad in [
            vec![1u8, 2, 3],
            nlmsg(20, 5, &[AF_INET, 0, 0]),
            nlmsg(20, 5, &[99; 72]),
            {
                let mut v = nlmsg(20, 5, &diag_msg([1; 4], 1, [2; 4], 2));
                v[0] = 0xff; // length past the end
                v
            },
        ] {
            assert!(matches!(
                decode_dump_datagram(&bad, AF_INET, 5, x, 3260, &mut out),
                Err(TickleError::Decode(_))
            ));
        }
    }
}
