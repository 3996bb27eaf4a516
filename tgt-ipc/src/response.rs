//! The reply: tgtd's 8-byte `struct tgtadm_rsp` header (`err` u32, `len` u32 = 8 + body, host byte order),
//! then on success `len - 8` bytes of text ending in one NUL (docs/tgtd-ipc.md §3). Decoding never
//! panics.

use crate::error::{TgtErrno, TgtError};

/// Size of `struct tgtadm_rsp`.
pub const RSP_HEADER_LEN: usize = 8;
/// Largest reply body this client accepts (a show of many targets is a few hundred KiB at most).
pub const MAX_REPLY_BODY: usize = 16 * 1024 * 1024;

/// The decoded reply header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyHeader {
    /// `err`: 0 on success, else a `tgtadm_errno`.
    pub err: u32,
    /// Body length (`len - 8`).
    pub body_len: usize,
}

/// Decodes the 8-byte header; a `len` below 8 or above the limit is a protocol error.
///
/// # Errors
/// [`TgtError::Protocol`] when fewer than 8 bytes are given or `len` is out of range.
pub fn decode_header(bytes: &[u8]) -> Result<ReplyHeader, TgtError> {
    let (err, len) = match bytes {
        [e0, e1, e2, e3, l0, l1, l2, l3, ..] => (
            u32::from_ne_bytes([*e0, *e1, *e2, *e3]),
            u32::from_ne_bytes([*l0, *l1, *l2, *l3]),
        ),
        _ => {
            return Err(TgtError::Protocol(format!(
                "reply header is {} bytes, expected {RSP_HEADER_LEN}",
                bytes.len()
            )))
        }
    };
    let len = usize::try_from(len).map_err(|_| TgtError::Protocol("reply length".into()))?;
    let body_len = len.checked_sub(RSP_HEADER_LEN).ok_or_else(|| {
        TgtError::Protocol(format!("reply length {len} is below the header size"))
    })?;
    if body_len > MAX_REPLY_BODY {
        return Err(TgtError::Protocol(format!(
            "reply body of {body_len} bytes exceeds the {MAX_REPLY_BODY}-byte limit"
        )));
    }
    Ok(ReplyHeader { err, body_len })
}

/// Turns an error code into `Err(TgtError::Daemon)`.
pub fn check_err(header: &ReplyHeader) -> Result<(), TgtError> {
    if header.err == 0 {
        Ok(())
    } else {
        Err(TgtError::Daemon {
            errno: TgtErrno::from_code(header.err),
        })
    }
}

/// Decodes the body text: strips the single trailing NUL, decodes UTF-8 lossily (initiator-supplied names
/// may be anything). `None` for an empty body.
pub fn decode_body(body: &[u8]) -> Option<String> {
    let body = body.strip_suffix(&[0]).unwrap_or(body);
    if body.is_empty() {
        None
    } else {
        Some(String::from_utf8_lossy(body).into_owned())
    }
}

/// Decodes a whole reply held in memory (header + body). Errors: protocol errors, a truncated body, or the
/// daemon's error code. Bytes after `len` are ignored, as tgtd closes the connection after its reply.
///
/// # Errors
/// [`TgtError::Protocol`] for a bad header or truncated body; [`TgtError::Daemon`] for a
/// nonzero error code.
pub fn decode_reply(bytes: &[u8]) -> Result<Option<String>, TgtError> {
    let header = decode_header(bytes)?;
    check_err(&header)?;
    let body = bytes
        .get(RSP_HEADER_LEN..)
        .and_then(|rest| rest.get(..header.body_len))
        .ok_or_else(|| {
            TgtError::Protocol(format!(
                "reply body truncated: {} of {} bytes",
                bytes.len().saturating_sub(RSP_HEADER_LEN),
                header.body_len
            ))
        })?;
    Ok(decode_body(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rsp(err: u32, body: &[u8]) -> Vec<u8> {
        let mut v = err.to_ne_bytes().to_vec();
        v.extend_from_slice(&((8 + body.len()) as u32).to_ne_bytes());
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn success_with_text() {
        assert_eq!(
            decode_reply(&rsp(0, b"Portal: 127.0.0.1:3260,1\n\0")).unwrap(),
            Some("Portal: 127.0.0.1:3260,1\n".to_string())
        );
    }

    #[test]
    fn success_empty() {
        assert_eq!(decode_reply(&rsp(0, b"")).unwrap(), None);
    }

    #[test]
    fn daemon_errors_are_typed() {
        let e = decode_reply(&rsp(4, b"")).unwrap_err();
        assert_eq!(e.errno(), Some(TgtErrno::NoTarget));
        assert_eq!(
            e.to_string(),
            "tgtd: can't find the target (TGTADM_NO_TARGET = 4)"
        );
        let e = decode_reply(&rsp(99, b"")).unwrap_err();
        assert_eq!(e.errno(), Some(TgtErrno::Other(99)));
        for c in 1..=24 {
            assert_eq!(TgtErrno::from_code(c).code(), c);
        }
    }

    #[test]
    fn garbage_is_a_protocol_error() {
        assert!(matches!(decode_reply(b"abc"), Err(TgtError::Protocol(_))));
        let mut short = 0u32.to_ne_bytes().to_vec();
        short.extend_from_slice(&4u32.to_ne_bytes());
        assert!(matches!(decode_reply(&short), Err(TgtError::Protocol(_))));
        let mut big = 0u32.to_ne_bytes().to_vec();
        big.extend_from_slice(&u32::MAX.to_ne_bytes());
        assert!(matches!(decode_reply(&big), Err(TgtError::Protocol(_))));
        let mut trunc = rsp(0, b"hello\0");
        trunc.truncate(10);
        assert!(matches!(decode_reply(&trunc), Err(TgtError::Protocol(_))));
    }
}
