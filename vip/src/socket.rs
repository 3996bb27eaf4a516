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
            let res = guard.try_io(|fd| {
                let mut sll = sockaddr_ll(0, 0, None);
                let mut len = mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
                // SAFETY: buffer and address pointers/lengths describe live values.
                let n = unsafe {
                    libc::recvfrom(
                        fd.as_raw_fd(),
                        buf.as_mut_ptr().cast(),
                        buf.len(),
                        0,
                        (&mut sll as *mut libc::sockaddr_ll).cast(),
                        &mut len,
                    )
                };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok((n as usize, sll.sll_pkttype))
                }
            });
            match res {
                Ok(r) => return r,
                Err(_would_block) => continue,
            }
        }
    }
}
