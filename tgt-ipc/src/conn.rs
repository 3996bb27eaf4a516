//! Sessions and connections: list and close.

use crate::client::TgtClient;
use crate::error::TgtError;
use crate::request::{Mode, Op, Request};
use crate::show::{parse_connections, ConnectionInfo, Nexus};
use crate::target::check_tid;

impl TgtClient {
    /// Every connection of a target (all of them, including the extra ones of multi-connection sessions).
    ///
    /// Equivalent to `tgtadm --lld iscsi --mode conn --op show --tid TID`.
    ///
    /// # Errors
    /// As [`TgtClient::execute`]: refused before sending, a socket failure, or tgtd's code
    /// ([`TgtError::Daemon`]), or [`TgtError::Parse`] for output that cannot be parsed.
    pub async fn show_connections(&self, tid: i32) -> Result<Vec<ConnectionInfo>, TgtError> {
        check_tid(tid)?;
        let text = self
            .execute(&Request::new(Mode::Connection, Op::Show).tid(tid))
            .await?
            .unwrap_or_default();
        parse_connections(&text)
    }

    /// Force-closes one iSCSI connection; the initiator sees its TCP connection close.
    ///
    /// Equivalent to `tgtadm --lld iscsi --mode conn --op delete --tid TID --sid SID --cid CID`.
    ///
    /// # Errors
    /// As [`TgtClient::execute`]: refused before sending, a socket failure, or tgtd's code
    /// ([`TgtError::Daemon`]).
    pub async fn delete_connection(&self, tid: i32, sid: u64, cid: u32) -> Result<(), TgtError> {
        check_tid(tid)?;
        let mut r = Request::new(Mode::Connection, Op::Delete).tid(tid);
        r.sid = sid;
        r.cid = cid;
        self.execute(&r).await.map(drop)
    }

    /// The sessions (I_T nexuses) of a target, from target show.
    ///
    /// Equivalent to the `I_T nexus information:` part of `tgtadm --lld iscsi --mode target --op show`.
    ///
    /// # Errors
    /// As [`TgtClient::execute`]: refused before sending, a socket failure, or tgtd's code
    /// ([`TgtError::Daemon`]), or [`TgtError::Parse`] for output that cannot be parsed.
    pub async fn sessions(&self, tid: i32) -> Result<Vec<Nexus>, TgtError> {
        Ok(self
            .target(tid)
            .await?
            .map(|t| t.nexuses)
            .unwrap_or_default())
    }

    /// Closes a session by closing each of its connections; returns how many were closed.
    ///
    /// Equivalent to `tgtadm --mode conn --op delete --tid TID --sid SID --cid CID` for every CID of the
    /// session (what the ClusterLabs `iSCSITarget` agent does).
    ///
    /// # Errors
    /// As [`TgtClient::execute`]: refused before sending, a socket failure, or tgtd's code
    /// ([`TgtError::Daemon`]).
    pub async fn close_session(&self, tid: i32, sid: u64) -> Result<usize, TgtError> {
        let mut closed = 0;
        for c in self.show_connections(tid).await? {
            if c.sid == sid {
                self.delete_connection(tid, c.sid, c.cid).await?;
                closed += 1;
            }
        }
        Ok(closed)
    }
}
