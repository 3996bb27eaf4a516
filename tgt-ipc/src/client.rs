//! [`TgtClient`]: where tgtd's socket is, the timeouts, and one request per connection.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use crate::error::TgtError;
use crate::request::Request;
use crate::response::{check_err, decode_body, decode_header, RSP_HEADER_LEN};

/// tgtd's default socket base; the socket is `<base>.<control port>`.
pub const DEFAULT_SOCKET_BASE: &str = "/var/run/tgtd/socket";
/// Largest control port (`-C N` is parsed into a C `short`).
pub const MAX_CONTROL_PORT: u16 = 32767;
/// Default connect timeout.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Default reply timeout (tgtd is single-threaded: a slow backing-store open stalls it).
pub const DEFAULT_REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// A client of tgtd's management socket: the native equivalent of `tgtadm`.
///
/// Every call opens a new connection, sends one request, reads one reply and closes, as tgtd requires. The
/// client holds no connection, so it is cheap to clone and safe to share. tgtd checks that the caller has its
/// uid *and* gid (root:root for a root tgtd).
///
/// ```no_run
/// # async fn f() -> Result<(), tgt_ipc::TgtError> {
/// let tgt = tgt_ipc::TgtClient::new(); // like `tgtadm` (control port 0)
/// let targets = tgt.show_targets().await?; // `tgtadm --lld iscsi --mode target --op show`
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct TgtClient {
    path: PathBuf,
    connect_timeout: Duration,
    reply_timeout: Duration,
    connect_retry: Duration,
    pub(crate) busy_retry: Duration,
}

/// First pause before connecting again after `ECONNREFUSED`/`ENOENT`; it doubles up to
/// [`CONNECT_RETRY_MAX_STEP`].
const CONNECT_RETRY_STEP: Duration = Duration::from_millis(5);
/// Longest pause between connect attempts (see [`TgtClient::connect_retry_for`]).
pub const CONNECT_RETRY_MAX_STEP: Duration = Duration::from_millis(100);

impl Default for TgtClient {
    fn default() -> Self {
        Self::new()
    }
}

impl TgtClient {
    /// The default socket, `/var/run/tgtd/socket.0` (what `tgtadm` uses without `-C`).
    pub fn new() -> Self {
        Self::at_path(format!("{DEFAULT_SOCKET_BASE}.0"))
    }

    /// The socket of `tgtd -C port` (`tgtadm -C port`): `/var/run/tgtd/socket.<port>`.
    ///
    /// # Errors
    /// [`TgtError::InvalidRequest`] for a port above [`MAX_CONTROL_PORT`].
    pub fn control_port(port: u16) -> Result<Self, TgtError> {
        Self::with_base(DEFAULT_SOCKET_BASE, port)
    }

    /// The socket `<base>.<port>`, as tgtd computes it when `TGT_IPC_SOCKET=<base>` is set.
    ///
    /// # Errors
    /// [`TgtError::InvalidRequest`] for a port above [`MAX_CONTROL_PORT`].
    pub fn with_base(base: impl AsRef<Path>, port: u16) -> Result<Self, TgtError> {
        if port > MAX_CONTROL_PORT {
            return Err(TgtError::invalid("control port", "must be 0..=32767"));
        }
        let mut path = base.as_ref().as_os_str().to_owned();
        path.push(format!(".{port}"));
        Ok(Self::at_path(path))
    }

    /// An explicit socket path.
    pub fn at_path(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            reply_timeout: DEFAULT_REPLY_TIMEOUT,
            connect_retry: Duration::ZERO,
            busy_retry: crate::serve::STOP_RETRY_FOR,
        }
    }

    /// Keep connecting for up to `d` while the socket answers `ECONNREFUSED` (a tgtd that has
    /// bound its socket but does not listen yet, or a stale socket file) or is missing (`ENOENT`),
    /// pausing 5 ms, doubling up to [`CONNECT_RETRY_MAX_STEP`] (docs/tgtd-ipc.md §1). Default: no
    /// retry, the first refusal is [`TgtError::Connect`].
    pub fn connect_retry_for(mut self, d: Duration) -> Self {
        self.connect_retry = d;
        self
    }

    /// How long [`TgtClient::stop_serving`] retries deletes that tgtd refuses for I/O in flight
    /// before it gives up with [`TgtError::IoInFlight`]. Default
    /// [`STOP_RETRY_FOR`](crate::STOP_RETRY_FOR).
    pub fn busy_retry_for(mut self, d: Duration) -> Self {
        self.busy_retry = d;
        self
    }

    /// Sets the connect timeout.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets the reply timeout (send + whole reply).
    pub fn reply_timeout(mut self, timeout: Duration) -> Self {
        self.reply_timeout = timeout;
        self
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Sends one request and returns the reply text (`None` when tgtd sent no body).
    ///
    /// The request is validated first ([`Request::validate`]); an invalid one never reaches the socket.
    ///
    /// # Errors
    /// [`TgtError::InvalidRequest`] when [`Request::validate`] refuses (nothing is sent);
    /// [`TgtError::Connect`] / [`TgtError::ConnectTimeout`] (no tgtd, stale socket, timeout);
    /// [`TgtError::Io`], [`TgtError::ReplyTimeout`], [`TgtError::NoReply`] (peer credentials refused or
    /// tgtd died), [`TgtError::Protocol`] for a malformed reply; [`TgtError::Daemon`] with tgtd's code.
    pub async fn execute(&self, request: &Request) -> Result<Option<String>, TgtError> {
        request.validate()?;
        let bytes = request.encode();
        let started = std::time::Instant::now();
        let mut pause = CONNECT_RETRY_STEP;
        let mut stream = loop {
            match tokio::time::timeout(self.connect_timeout, UnixStream::connect(&self.path)).await
            {
                Err(_) => {
                    return Err(TgtError::ConnectTimeout {
                        path: self.path.clone(),
                        timeout: self.connect_timeout,
                    })
                }
                Ok(Ok(s)) => break s,
                Ok(Err(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::NotFound
                    ) && started.elapsed() + pause <= self.connect_retry =>
                {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(CONNECT_RETRY_MAX_STEP);
                }
                Ok(Err(source)) => {
                    return Err(TgtError::Connect {
                        path: self.path.clone(),
                        source,
                    })
                }
            }
        };
        tokio::time::timeout(self.reply_timeout, exchange(&mut stream, &bytes))
            .await
            .map_err(|_| TgtError::ReplyTimeout {
                timeout: self.reply_timeout,
            })?
    }
}

async fn exchange(stream: &mut UnixStream, request: &[u8]) -> Result<Option<String>, TgtError> {
    stream.write_all(request).await.map_err(map_io)?;
    let mut header = [0u8; RSP_HEADER_LEN];
    stream.read_exact(&mut header).await.map_err(map_io)?;
    let header = decode_header(&header)?;
    check_err(&header)?;
    let mut body = vec![0u8; header.body_len];
    stream.read_exact(&mut body).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            TgtError::Protocol(format!(
                "reply body truncated (expected {} bytes)",
                header.body_len
            ))
        } else {
            TgtError::Io(e)
        }
    })?;
    Ok(decode_body(&body))
}

fn map_io(e: std::io::Error) -> TgtError {
    match e.kind() {
        std::io::ErrorKind::UnexpectedEof
        | std::io::ErrorKind::ConnectionReset
        | std::io::ErrorKind::BrokenPipe => TgtError::NoReply,
        _ => TgtError::Io(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_paths() {
        assert_eq!(TgtClient::new().path(), Path::new("/var/run/tgtd/socket.0"));
        assert_eq!(
            TgtClient::control_port(3).unwrap().path(),
            Path::new("/var/run/tgtd/socket.3")
        );
        assert_eq!(
            TgtClient::with_base("/tmp/x/socket", 12).unwrap().path(),
            Path::new("/tmp/x/socket.12")
        );
        assert!(TgtClient::control_port(32768).is_err());
    }
}
