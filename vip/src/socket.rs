//! `AF_PACKET` sockets, and one option of `vip::tickle`'s raw sockets: the crate's only
//! `unsafe` code (libc calls with sizes we control).
//!
//! Measured on the lab and host kernels (6.1, 6.18): a packet socket with a protocol hook (`ETH_P_ALL`) takes 8-16 ms to
//! close, one opened with protocol 0 and used only to send closes in under 0.1 ms. So the
//! sender is opened with protocol 0 and kept for the lifetime of the [`crate::Vip`]; receivers
//! (probe only) are opened with protocol 0 and then bound to one EtherType and one interface,
//! so they never see frames of other interfaces or protocols.

use std::io;
use std::mem;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use tokio::io::unix::AsyncFd;

use crate::packet::MacAddr;

/// `PACKET_OUTGOING` from `<linux/if_packet.h>`: a frame this host sent, looped to our socket.
pub(crate) const PACKET_OUTGOING: u8 = 4;

/// A raw (`SOCK_RAW`: we write the Ethernet header) packet socket on one interface.
#[derive(Debug)]
pub(crate) struct PacketSocket {
    fd: AsyncFd<OwnedFd>,
    ifindex: i32,
}

fn sockaddr_ll(ifindex: i32, ethertype: u16, dst: Option<MacAddr>) -> libc::sockaddr_ll {
    // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
    let mut sll: libc::sockaddr_ll = unsafe { mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = ethertype.to_be();
    sll.sll_ifindex = ifindex;
    if let Some(mac) = dst {
        sll.sll_halen = 6;
        for (d, s) in sll.sll_addr.iter_mut().zip(mac.0) {
            *d = s;
        }
    }
    sll
}

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Sets `IP_RECVERR` (`IPV6_RECVERR` when `ipv6`) on a raw socket (`vip::tickle`'s): without
/// it `sendto()` reports a segment the qdisc dropped as sent (`raw_sendmsg()`,
/// `rawv6_sendmsg()`: `if (err == -ENOBUFS && !recverr) err = 0`; ip(7) `IP_RECVERR`).
pub(crate) fn set_recv_err(fd: &impl AsRawFd, ipv6: bool) -> io::Result<()> {
    let (level, name) = if ipv6 {
        (libc::IPPROTO_IPV6, libc::IPV6_RECVERR)
    } else {
        (libc::IPPROTO_IP, libc::IP_RECVERR)
    };
    let on: libc::c_int = 1;
    // SAFETY: setsockopt(2) with an int option, its address and size.
    check(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&on as *const libc::c_int).cast(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    })
    .map(|_| ())
}

impl PacketSocket {
    /// Send-only socket (protocol 0: no receive hook, cheap to close).
    pub(crate) fn sender(ifindex: u32) -> io::Result<Self> {
        Self::open(ifindex)
    }

    /// Receiving socket for one EtherType on one interface (`bind(2)` with `sll_protocol`).
    pub(crate) fn receiver(ifindex: u32, ethertype: u16) -> io::Result<Self> {
        let s = Self::open(ifindex)?;
        s.bind(ethertype)?;
        Ok(s)
    }

    /// [`PacketSocket::receiver`] with a classic BPF program attached (socket(7)
    /// `SO_ATTACH_FILTER`) before the bind: the socket has no protocol hook until then, so no
    /// frame is queued that the filter did not judge.
    pub(crate) fn filtered_receiver(
        ifindex: u32,
        ethertype: u16,
        filter: &[libc::sock_filter],
    ) -> io::Result<Self> {
        let s = Self::open(ifindex)?;
        let len = u16::try_from(filter.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "filter too long"))?;
        let prog = libc::sock_fprog {
            len,
            // The kernel copies the program and never writes through this pointer.
            filter: filter.as_ptr().cast_mut(),
        };
        // SAFETY: pointer and length describe `prog`, which (and the program it points to)
        // outlives the call; the kernel copies both.
        check(unsafe {
            libc::setsockopt(
                s.fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_ATTACH_FILTER,
                (&prog as *const libc::sock_fprog).cast(),
                mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
            )
        })?;
        s.bind(ethertype)?;
        Ok(s)
    }

    fn bind(&self, ethertype: u16) -> io::Result<()> {
        let sll = sockaddr_ll(self.ifindex, ethertype, None);
        // SAFETY: pointer and length describe `sll`, which outlives the call.
        check(unsafe {
            libc::bind(
                self.fd.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        })?;
        Ok(())
    }

    fn open(ifindex: u32) -> io::Result<Self> {
        let ifindex = i32::try_from(ifindex)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "ifindex out of range"))?;
        // SAFETY: plain syscall; the returned descriptor is owned below.
        let fd = check(unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
            )
        })?;
        // SAFETY: `fd` is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: AsyncFd takes ownership of `fd`; nothing else closes or replaces it.
        let fd = unsafe { AsyncFd::register(fd) }.map_err(io::Error::from)?;
        Ok(PacketSocket { fd, ifindex })
    }

    /// Receive frames sent to the Ethernet multicast address `mac` (`PACKET_ADD_MEMBERSHIP`),
    /// e.g. the solicited-node group that a DAD probe of another host is sent to.
    pub(crate) fn join_multicast(&self, mac: MacAddr) -> io::Result<()> {
        // SAFETY: packet_mreq is plain old data; all-zero is a valid value.
        let mut mreq: libc::packet_mreq = unsafe { mem::zeroed() };
        mreq.mr_ifindex = self.ifindex;
        mreq.mr_type = libc::PACKET_MR_MULTICAST as u16;
        mreq.mr_alen = 6;
        for (d, s) in mreq.mr_address.iter_mut().zip(mac.0) {
            *d = s;
        }
        // SAFETY: pointer and length describe `mreq`, which outlives the call.
        check(unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_ADD_MEMBERSHIP,
                (&mreq as *const libc::packet_mreq).cast(),
                mem::size_of::<libc::packet_mreq>() as libc::socklen_t,
            )
        })?;
        Ok(())
    }

    /// Sends one complete Ethernet frame (header included) out of the interface.
    pub(crate) async fn send(&self, frame: &[u8], dst: MacAddr, ethertype: u16) -> io::Result<()> {
        let sll = sockaddr_ll(self.ifindex, ethertype, Some(dst));
        loop {
            let mut guard = self.fd.writable().await?;
            let res = guard.try_io(|fd| {
                // SAFETY: buffer and address pointers/lengths describe live values.
                let n = unsafe {
                    libc::sendto(
                        fd.as_raw_fd(),
                        frame.as_ptr().cast(),
                        frame.len(),
                        0,
                        (&sll as *const libc::sockaddr_ll).cast(),
                        mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
                    )
                };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            });
            match res {
                Ok(Ok(n)) if n == frame.len() => return Ok(()),
                Ok(Ok(n)) => {
                    return Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        format!("short packet write: {n} of {} bytes", frame.len()),
                    ))
                }
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
    }

    /// Receives one frame into `buf`; returns its length and `sll_pkttype`.
    pub(crate) async fn recv(&self, buf: &mut [u8]) -> io::Result<(usize, u8)> {
        loop {
            let mut guard = self.fd.readable().await?;
            match guard.try_io(|fd| recv_from(fd.as_raw_fd(), buf, 0)) {
                Ok(r) => return r,
                Err(_would_block) => continue,
            }
        }
    }

    /// Receives one frame that is queued now, without waiting: `Ok(None)` when none is.
    /// Asks the socket itself (`MSG_DONTWAIT`), not tokio's readiness, which learns of a frame
    /// only when its reactor next polls: a frame queued just before would look absent.
    pub(crate) fn try_recv(&self, buf: &mut [u8]) -> io::Result<Option<(usize, u8)>> {
        match recv_from(self.fd.as_raw_fd(), buf, libc::MSG_DONTWAIT) {
            Ok(r) => Ok(Some(r)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// One `recvfrom(2)` on a packet socket: the frame's length and its `sll_pkttype`.
fn recv_from(fd: i32, buf: &mut [u8], flags: i32) -> io::Result<(usize, u8)> {
    let mut sll = sockaddr_ll(0, 0, None);
    let mut len = mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    // SAFETY: buffer and address pointers/lengths describe live values.
    let n = unsafe {
        libc::recvfrom(
            fd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            flags,
            (&mut sll as *mut libc::sockaddr_ll).cast(),
            &mut len,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok((n as usize, sll.sll_pkttype))
    }
}

/// A receiving [`PacketSocket`] closed on a blocking thread when dropped, wherever that happens
/// (a probe session dropped while its task probes, a probe future cancelled): its close takes
/// 8-16 ms (module docs), which would stall a runtime worker. Outside a runtime it closes in
/// place.
#[derive(Debug)]
pub(crate) struct Receiver(Option<PacketSocket>);

impl Receiver {
    pub(crate) fn new(socket: PacketSocket) -> Receiver {
        Receiver(Some(socket))
    }
}

impl std::ops::Deref for Receiver {
    type Target = PacketSocket;

    fn deref(&self) -> &PacketSocket {
        // Taken only by `drop`.
        self.0
            .as_ref()
            .expect("a Receiver holds its socket until dropped")
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(s) = self.0.take() {
            match tokio::runtime::Handle::try_current() {
                Ok(h) => drop(h.spawn_blocking(move || drop(s))),
                Err(_) => drop(s),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A receiver is closed off the runtime inside one, and in place outside (no panic):
    /// here one dropped in a runtime, and one that outlives its runtime.
    #[test]
    fn a_receiver_closes_inside_and_outside_a_runtime() {
        if !nix::unistd::geteuid().is_root() {
            test_support::prereq::skip("Receiver: packet sockets need root (CAP_NET_RAW)");
            return;
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .expect("runtime");
        let kept = rt.block_on(async {
            let open = || PacketSocket::receiver(1, 0x88b5).map(Receiver::new);
            drop(open().expect("receiver on lo"));
            open().expect("receiver on lo")
        });
        drop(rt);
        drop(kept);
    }

    /// A frame queued before tokio's reactor polled the socket is still read by `try_recv`:
    /// nothing here awaits between the send and the reads, so the reactor never runs.
    #[test]
    fn try_recv_reads_a_frame_the_reactor_has_not_seen() {
        if !nix::unistd::geteuid().is_root() {
            test_support::prereq::skip("try_recv: packet sockets need root (CAP_NET_RAW)");
            return;
        }
        // IEEE 802 local experimental EtherType on loopback: no one else reads it.
        const ETHERTYPE: u16 = 0x88b5;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let lo = 1;
            let rx = PacketSocket::receiver(lo, ETHERTYPE).expect("receiver on lo");
            let tx = PacketSocket::sender(lo).expect("sender on lo");
            let mut buf = [0u8; 64];
            assert!(rx.try_recv(&mut buf).expect("nothing queued").is_none());
            let mut frame = [0u8; 60];
            frame[12..14].copy_from_slice(&ETHERTYPE.to_be_bytes());
            let sll = sockaddr_ll(lo as i32, ETHERTYPE, Some(MacAddr::ZERO));
            // SAFETY: buffer and address pointers/lengths describe live values.
            let n = unsafe {
                libc::sendto(
                    tx.fd.as_raw_fd(),
                    frame.as_ptr().cast(),
                    frame.len(),
                    0,
                    (&sll as *const libc::sockaddr_ll).cast(),
                    mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
                )
            };
            assert_eq!(n, 60, "{}", io::Error::last_os_error());
            // Loopback delivers through the backlog softirq; give it a few milliseconds.
            let mut got = None;
            for _ in 0..200 {
                got = rx.try_recv(&mut buf).expect("try_recv");
                if got.is_some() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            let (n, _) = got.expect("the queued frame is read without the reactor");
            assert_eq!(n, 60);
        });
    }
}
