//! [`DrbdHandle`]: the async client. One netlink socket, the `drbd` family resolved by name,
//! DRBD 8.4 checked; it sends request values ([`Request`]) through one private executor.

use std::sync::Arc;

use netlink_packet_core::{NLM_F_DUMP, NLM_F_EXCL, NLM_F_REQUEST};
use netlink_proto::ConnectionHandle;

use crate::codec::{self, Reply};
use crate::connection::{self, FamilyInfo, RawGenl, TaskGuard};
use crate::error::DrbdError;
use crate::event::EventStream;
use crate::request::private::{Exchange, FromReplies};
use crate::request::Request;
#[cfg(doc)]
use crate::{request::status::Status, status::DeviceStatus};

struct Inner {
    conn: ConnectionHandle<RawGenl>,
    family: FamilyInfo,
    _task: TaskGuard,
}

/// A handle on the kernel's DRBD 8.4 generic-netlink API. Cheap to clone.
///
/// Equivalent of `drbdsetup-84`: every request names its drbdsetup
/// counterpart. Must be created inside a tokio runtime (it spawns the
/// netlink connection task, which stops when the last clone is dropped).
#[derive(Clone)]
pub struct DrbdHandle {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for DrbdHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DrbdHandle")
            .field("family", &self.inner.family)
            .finish()
    }
}

impl DrbdHandle {
    /// Opens a socket, resolves family `drbd` by name and refuses any API but
    /// 8.4 ([`DrbdError::UnsupportedApi`] for DRBD 9; [`DrbdError::FamilyNotFound`]
    /// without the module or outside the initial netns).
    ///
    /// # Errors
    /// [`DrbdError::FamilyNotFound`] (no `drbd` module, or not in the initial netns);
    /// [`DrbdError::UnsupportedApi`] (DRBD 9); [`DrbdError::Io`] / [`DrbdError::Netlink`] when the
    /// socket or the nlctrl request fails; [`DrbdError::Protocol`] / [`DrbdError::Decode`] for a
    /// malformed nlctrl reply.
    pub async fn connect() -> Result<Self, DrbdError> {
        let conn = connection::open(None)?;
        let family = connection::resolve_family(&conn.handle).await?;
        family.check_84()?;
        Ok(Self::from_parts(conn, family))
    }

    /// A handle on an open socket whose family was resolved (and checked) already.
    pub(crate) fn from_parts(conn: connection::Conn, family: FamilyInfo) -> Self {
        Self {
            inner: Arc::new(Inner {
                conn: conn.handle,
                family,
                _task: conn.task,
            }),
        }
    }

    /// What nlctrl said about the family (id, version, group, ops).
    pub fn family(&self) -> &FamilyInfo {
        &self.inner.family
    }

    /// Subscribes to the `events` multicast group on a new socket: a stream
    /// of typed events. Equivalent to the listening half of
    /// `drbdsetup-84 events all` (a missing group is an error). Take a
    /// [`Status`] snapshot *after* this returns to miss nothing.
    ///
    /// # Errors
    /// [`DrbdError::GroupNotFound`] without an `events` group; [`DrbdError::Io`] when the socket
    /// cannot be opened, bound or joined to the group.
    pub async fn events(&self) -> Result<EventStream, DrbdError> {
        let group = self.inner.family.events_group()?;
        let conn = connection::open(Some(group))?;
        Ok(EventStream::new(conn, self.inner.family.id))
    }

    /// Sends `request` and checks the kernel's answer: equivalent to running the `drbdsetup-84`
    /// command line it stands for ([`Request::command_line`]). Configuration requests answer
    /// `()`, [`Status`] one [`DeviceStatus`] per volume.
    ///
    /// ```no_run
    /// # async fn f(drbd: drbd_nl::DrbdHandle) -> Result<(), drbd_nl::DrbdError> {
    /// use drbd_nl::{Primary, Status};
    /// drbd.execute(Primary::new(1).force(true)).await?;          // primary 1 --force
    /// let devices = drbd.execute(Status::new().resource("r0")).await?; // status r0
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`DrbdError::Kernel`] / [`DrbdError::StateChange`] when the kernel refuses (its
    /// `drbd_ret_code` or `SS_*` code and info text, as drbdsetup prints them, with the command
    /// line as context); [`DrbdError::InvalidArgument`] for a bad name or value (nothing is sent);
    /// [`DrbdError::Netlink`], [`DrbdError::Io`], [`DrbdError::ConnectionClosed`],
    /// [`DrbdError::Decode`] or [`DrbdError::Protocol`] (no reply) when the exchange itself fails.
    pub async fn execute<R: Request>(&self, request: R) -> Result<R::Output, DrbdError> {
        execute_request(&self.inner.conn, self.inner.family.id, request).await
    }

    /// [`execute`](Self::execute) on a netlink socket of its own, blocking the calling thread
    /// until the kernel answers; no runtime needed. For requests that wait long in the kernel:
    /// a generic-netlink doit runs inside the sender's `sendmsg()`, and a `primary` with a
    /// connected peer waits there for the peer's answer (a network round trip). Through
    /// [`execute`](Self::execute) such requests queue on the handle's one socket and block
    /// the thread of the runtime polling its connection task; here each call opens a socket
    /// (`socket`, `bind`, one request, `close`), so calls from different threads run in the
    /// kernel at once. DRBD 8.4's `drbd_adm_set_role()` (Linux `drivers/block/drbd/drbd_nl.c`)
    /// drops the generic-netlink mutex and holds only its resource's `adm_mutex` while the role
    /// changes: [`Primary`](crate::Primary) / [`Secondary`](crate::Secondary) of different
    /// resources proceed in parallel. Call it from a thread of its own (e.g.
    /// `tokio::task::spawn_blocking`), never on an async runtime's worker thread.
    ///
    /// ```no_run
    /// # async fn f(drbd: drbd_nl::DrbdHandle) -> Result<(), drbd_nl::DrbdError> {
    /// use drbd_nl::Primary;
    /// let h = drbd.clone();
    /// let promote = tokio::task::spawn_blocking(move || h.execute_blocking(Primary::new(1)));
    /// promote.await.map_err(std::io::Error::other)??; // primary 1; the runtime runs on
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`execute`](Self::execute), but never [`DrbdError::ConnectionClosed`]: opening,
    /// binding, sending or receiving on the socket fails as [`DrbdError::Io`].
    pub fn execute_blocking<R: Request>(&self, request: R) -> Result<R::Output, DrbdError> {
        execute_request_blocking(self.inner.family.id, request)
    }
}

/// Checks `request`, sends it ([`drbd_execute`]) and reads its output: both handles' `execute`.
pub(crate) async fn execute_request<M: Reply, R: Request<M>>(
    conn: &ConnectionHandle<RawGenl>,
    family_id: u16,
    request: R,
) -> Result<R::Output, DrbdError> {
    request.validate()?;
    let context = request.command_line();
    let replies = drbd_execute(
        conn,
        family_id,
        &request.message(),
        request.exchange(),
        &context,
    )
    .await?;
    R::Output::from_replies(replies)
}

/// [`execute_request`] on a socket of its own, blocking the calling thread
/// ([`connection::request_blocking`]): both handles' `execute_blocking`.
pub(crate) fn execute_request_blocking<M: Reply, R: Request<M>>(
    family_id: u16,
    request: R,
) -> Result<R::Output, DrbdError> {
    request.validate()?;
    let context = request.command_line();
    let exchange = request.exchange();
    let raw = codec::encode(family_id, &request.message());
    let replies = connection::request_blocking(raw, nlm_flags(exchange), &context)?;
    R::Output::from_replies(read_replies(replies, exchange, &context)?)
}

/// Sends `msg` (either API's) with the flags of `exchange` ([`nlm_flags`]) and reads the
/// replies ([`read_replies`]).
pub(crate) async fn drbd_execute<M: Reply>(
    conn: &ConnectionHandle<RawGenl>,
    family_id: u16,
    msg: &M,
    exchange: Exchange,
    context: &str,
) -> Result<Vec<M>, DrbdError> {
    let raw = codec::encode(family_id, msg);
    let replies = connection::request(conn, raw, nlm_flags(exchange), context).await?;
    read_replies(replies, exchange, context)
}

/// The replies of one request as `exchange` expects them ([`Reply::read_reply`]: decoded,
/// `ret_code` checked): every part of a dump, the first reply of a doit (none is a
/// [`DrbdError::Protocol`]).
fn read_replies<M: Reply>(
    mut replies: Vec<RawGenl>,
    exchange: Exchange,
    context: &str,
) -> Result<Vec<M>, DrbdError> {
    if exchange != Exchange::Dump {
        if replies.is_empty() {
            return Err(DrbdError::Protocol {
                context: context.to_string(),
                reason: "no DRBD reply".into(),
            });
        }
        replies.truncate(1);
    }
    replies
        .iter()
        .map(|raw| M::read_reply(raw, context))
        .collect()
}

/// The only place that picks netlink flags (ethtool's `ethtool_execute` is the model):
/// - `NLM_F_REQUEST` always;
/// - `NLM_F_DUMP` for a dump: the kernel runs the command's dumpit and answers in parts;
/// - `NLM_F_EXCL` for an exclusive create: DRBD's new-resource then refuses an existing one;
/// - never `NLM_F_ACK`: each DRBD doit sends exactly one reply, as drbdsetup expects.
pub(crate) fn nlm_flags(exchange: Exchange) -> u16 {
    NLM_F_REQUEST
        | match exchange {
            Exchange::Doit => 0,
            Exchange::DoitExclusive => NLM_F_EXCL,
            Exchange::Dump => NLM_F_DUMP,
        }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::private::Sealed;
    use crate::{Down, NewResource, Primary, Status};

    /// `nlmsg_flags` (host order, offset 6) of a captured `drbdsetup-84` request.
    fn captured_flags(bytes: &[u8]) -> u16 {
        u16::from_ne_bytes([bytes[6], bytes[7]])
    }

    /// The flags drbdsetup-84 sent (`tests/data/README.md`, `cap84_*`) are the ones we pick.
    #[test]
    fn flags_equal_drbdsetup_84() {
        let cases: [(Exchange, &[u8]); 4] = [
            (
                NewResource::new("ba").exchange(),
                include_bytes!("../tests/data/cap84_new_resource_request.bin"),
            ),
            (
                Primary::new(1).exchange(),
                include_bytes!("../tests/data/cap84_primary_request.bin"),
            ),
            (
                Status::new().resource("ba").exchange(),
                include_bytes!("../tests/data/cap84_get_status_dump_request.bin"),
            ),
            (
                Down::new("ba").exchange(),
                include_bytes!("../tests/data/cap84_down_request.bin"),
            ),
        ];
        for (exchange, bytes) in cases {
            assert_eq!(nlm_flags(exchange), captured_flags(bytes), "{exchange:?}");
        }
        let exclusive = NewResource::new("ba").exclusive(true).exchange();
        assert_eq!(nlm_flags(exclusive), NLM_F_REQUEST | NLM_F_EXCL);
        assert_eq!(Status::new().minor(1).exchange(), Exchange::Doit);
    }
}
