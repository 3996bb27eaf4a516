//! Between the transport's raw payloads and DRBD messages: encode a request, decode a received
//! payload, turn a reply's `ret_code` into `Ok` or a typed error. Used by the handle (replies)
//! and the event stream (broadcasts); imports neither.

use netlink_packet_core::{DecodeError, Emitable};
use netlink_packet_generic::{GenlFamily, GenlHeader, GenlMessage};

use crate::connection::RawGenl;
use crate::error::DrbdError;
use crate::message::DrbdMessage;
use crate::ret_code::ReplyCode;
use crate::v9::Drbd9Message;

/// Size of `struct genlmsghdr` (cmd, version, reserved u16) before the DRBD header.
const GENL_HDRLEN: usize = 4;

/// A DRBD message (8.4 or 9) as a generic-netlink payload of family `family_id`.
pub(crate) fn encode<M>(family_id: u16, msg: &M) -> RawGenl
where
    M: GenlFamily + Emitable + Clone + std::fmt::Debug,
{
    let mut genl = GenlMessage::from_payload(msg.clone());
    genl.set_resolved_family_id(family_id);
    RawGenl::encode(family_id, &genl)
}

/// Decodes one received generic-netlink payload as a DRBD message.
pub(crate) fn decode_raw(raw: &RawGenl) -> Result<DrbdMessage, DrbdError> {
    decode_with(raw, DrbdMessage::parse_payload)
}

/// Decodes one received generic-netlink payload as a DRBD 9 message.
pub(crate) fn decode_raw9(raw: &RawGenl) -> Result<Drbd9Message, DrbdError> {
    decode_with(raw, Drbd9Message::parse_payload)
}

/// The genl header's command and the body after it, read by `parse` (either API's).
fn decode_with<M>(
    raw: &RawGenl,
    parse: fn(u8, &[u8]) -> Result<M, DecodeError>,
) -> Result<M, DrbdError> {
    let header = GenlHeader::parse(&raw.payload)?;
    let body = raw.payload.get(GENL_HDRLEN..).unwrap_or(&[]);
    Ok(parse(header.cmd, body)?)
}

/// A reply whose `ret_code` is success (`NO_ERROR` 101 or `SS_SUCCESS`..`SS_CW_NO_NEED`), or
/// [`DrbdError::Kernel`] / [`DrbdError::StateChange`] with the kernel's info text.
pub(crate) fn check_reply(reply: DrbdMessage, context: &str) -> Result<DrbdMessage, DrbdError> {
    reply_result(
        ReplyCode::from_raw(reply.header.ret_code()),
        reply.info_text(),
        context,
    )
    .map(|()| reply)
}

/// [`check_reply`] for DRBD 9, which keeps the `drbd_ret_code` and `SS_*` numbers but −21
/// ([`ReplyCode::from_raw_v9`]).
pub(crate) fn check_reply9(reply: Drbd9Message, context: &str) -> Result<Drbd9Message, DrbdError> {
    let code = ReplyCode::from_raw_v9(reply.header.ret_code());
    reply_result(code, reply.info_text(), context).map(|()| reply)
}

/// A message of either API as the executor reads a reply: decoded, its `ret_code` checked.
pub(crate) trait Reply: GenlFamily + Emitable + Clone + std::fmt::Debug + Sized {
    /// [`decode_raw`] then [`check_reply`], or their DRBD 9 twins.
    fn read_reply(raw: &RawGenl, context: &str) -> Result<Self, DrbdError>;
}

impl Reply for DrbdMessage {
    fn read_reply(raw: &RawGenl, context: &str) -> Result<Self, DrbdError> {
        check_reply(decode_raw(raw)?, context)
    }
}

impl Reply for Drbd9Message {
    fn read_reply(raw: &RawGenl, context: &str) -> Result<Self, DrbdError> {
        check_reply9(decode_raw9(raw)?, context)
    }
}

/// A reply's classified `ret_code` (and info text) as `Ok` or the typed error: shared by both
/// APIs, which classify it each in its own numbering.
pub(crate) fn reply_result(
    code: ReplyCode,
    info_text: Option<&str>,
    context: &str,
) -> Result<(), DrbdError> {
    if code.is_success() {
        return Ok(());
    }
    let info_text = info_text.map(str::to_string);
    Err(match code {
        ReplyCode::Ret(code) => DrbdError::Kernel {
            context: context.to_string(),
            code,
            info_text,
        },
        ReplyCode::State(code) => DrbdError::StateChange {
            context: context.to_string(),
            code,
            info_text,
        },
    })
}

#[cfg(test)]
mod tests {
    //! Replies captured from the kernel (`tests/data/README.md`), checked as `execute` checks them.
    use super::*;
    use crate::ret_code::{RetCode, StateRv};

    /// The payload of a full captured netlink message (after the 16-byte `nlmsghdr`).
    fn decode_full(bytes: &[u8]) -> DrbdMessage {
        let raw = RawGenl {
            message_type: 0x20,
            payload: bytes[16..].to_vec(),
        };
        decode_raw(&raw).unwrap()
    }

    #[test]
    fn ss_success_reply_is_ok() {
        let m = decode_full(include_bytes!("../tests/data/primary_force_reply.bin"));
        assert!(check_reply(m, "primary 1 --force").is_ok());
        let m = decode_full(include_bytes!("../tests/data/cap84_connect_reply.bin"));
        assert!(check_reply(m, "connect").is_ok());
    }

    #[test]
    fn ret_code_reply_is_a_kernel_error_with_info_text() {
        let m = decode_full(include_bytes!(
            "../tests/data/get_status_unknown_minor_reply.bin"
        ));
        let err = check_reply(m, "status 7").unwrap_err();
        assert_eq!(err.ret_code(), Some(RetCode::MinorInvalid));
        assert_eq!(
            err.to_string(),
            "status 7: Failure: (127) Device minor not allocated [ERR_MINOR_INVALID] \
             (additional info from kernel: unknown minor)"
        );
    }

    #[test]
    fn ss_reply_is_a_state_change_error() {
        let m = decode_full(include_bytes!(
            "../tests/data/cap84_primary_peer_primary_reply.bin"
        ));
        let err = check_reply(m, "primary 2").unwrap_err();
        assert_eq!(err.state_rv(), Some(StateRv::TwoPrimaries));
    }

    #[test]
    fn encode_then_decode_is_identity() {
        let m = decode_full(include_bytes!("../tests/data/cap84_primary_request.bin"));
        assert_eq!(decode_raw(&encode(0x20, &m)).unwrap(), m);
    }
}
