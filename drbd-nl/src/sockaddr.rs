//! `struct sockaddr` values for `ctx_my_addr` / `ctx_peer_addr`.
//!
//! IPv4 is a 16-byte `sockaddr_in` (family 2 in host order, port and address
//! big-endian, 8 zero bytes); IPv6 a 28-byte `sockaddr_in6` (family 10). The
//! kernel matches DISCONNECT and CHG_NET_OPTS by exact bytes, so these are
//! built the same way every time, as drbdsetup does.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use crate::error::DrbdError;

const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;

/// A DRBD endpoint address, printed the drbdsetup way (`ipv4:10.0.0.1:7789`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SockAddr(pub SocketAddr);

impl SockAddr {
    /// The raw `sockaddr` bytes the kernel expects.
    pub fn to_bytes(&self) -> Vec<u8> {
        match self.0 {
            SocketAddr::V4(a) => {
                let mut b = Vec::with_capacity(16);
                b.extend_from_slice(&AF_INET.to_ne_bytes());
                b.extend_from_slice(&a.port().to_be_bytes());
                b.extend_from_slice(&a.ip().octets());
                b.extend_from_slice(&[0u8; 8]);
                b
            }
            SocketAddr::V6(a) => {
                let mut b = Vec::with_capacity(28);
                b.extend_from_slice(&AF_INET6.to_ne_bytes());
                b.extend_from_slice(&a.port().to_be_bytes());
                b.extend_from_slice(&a.flowinfo().to_be_bytes());
                b.extend_from_slice(&a.ip().octets());
                b.extend_from_slice(&a.scope_id().to_ne_bytes());
                b
            }
        }
    }

    /// Reads raw `sockaddr` bytes (IPv4 or IPv6).
    ///
    /// # Errors
    /// [`DrbdError::InvalidArgument`] for a family other than `AF_INET` / `AF_INET6` or too few
    /// bytes for it.
    pub fn from_bytes(b: &[u8]) -> Result<Self, DrbdError> {
        let bad =
            || DrbdError::InvalidArgument(format!("unsupported sockaddr of {} bytes", b.len()));
        let family = match b {
            [f0, f1, ..] => u16::from_ne_bytes([*f0, *f1]),
            _ => return Err(bad()),
        };
        match (family, b) {
            (AF_INET, [_, _, p0, p1, a, bb, c, d, ..]) => {
                Ok(Self(SocketAddr::V4(SocketAddrV4::new(
                    Ipv4Addr::new(*a, *bb, *c, *d),
                    u16::from_be_bytes([*p0, *p1]),
                ))))
            }
            (AF_INET6, _) if b.len() >= 28 => {
                let port = u16::from_be_bytes([
                    b.get(2).copied().unwrap_or(0),
                    b.get(3).copied().unwrap_or(0),
                ]);
                let mut fl = [0u8; 4];
                fl.copy_from_slice(b.get(4..8).ok_or_else(bad)?);
                let mut ip = [0u8; 16];
                ip.copy_from_slice(b.get(8..24).ok_or_else(bad)?);
                let mut sc = [0u8; 4];
                sc.copy_from_slice(b.get(24..28).ok_or_else(bad)?);
                Ok(Self(SocketAddr::V6(SocketAddrV6::new(
                    Ipv6Addr::from(ip),
                    port,
                    u32::from_be_bytes(fl),
                    u32::from_ne_bytes(sc),
                ))))
            }
            _ => Err(bad()),
        }
    }
}

impl From<SocketAddr> for SockAddr {
    fn from(a: SocketAddr) -> Self {
        Self(a)
    }
}

impl fmt::Display for SockAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            SocketAddr::V4(a) => write!(f, "ipv4:{}:{}", a.ip(), a.port()),
            SocketAddr::V6(a) => write!(f, "ipv6:[{}]:{}", a.ip(), a.port()),
        }
    }
}
