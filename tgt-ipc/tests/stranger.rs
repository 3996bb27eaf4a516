//! A stranger on the socket: whatever bytes come back, the client returns a typed error, never panics, and
//! never waits past its timeouts. No root or tgtd needed.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;

use tgt_ipc::{TgtClient, TgtErrno, TgtError};

/// Serves one connection: reads the request, then writes `reply` (and closes unless `hold`).
async fn one_shot(reply: Vec<u8>, hold: bool) -> (tempfile::TempDir, TgtClient) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("socket.0");
    let l = UnixListener::bind(&path).unwrap();
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut hdr = [0u8; 120];
        s.read_exact(&mut hdr).await.unwrap();
        let len = u32::from_ne_bytes(hdr[72..76].try_into().unwrap()) as usize;
        let mut rest = vec![0u8; len - 120];
        s.read_exact(&mut rest).await.unwrap();
        let _ = s.write_all(&reply).await;
        if hold {
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
    });
    let c = TgtClient::at_path(&path).reply_timeout(Duration::from_millis(300));
    (dir, c)
}

fn hdr(err: u32, len: u32) -> Vec<u8> {
    let mut v = err.to_ne_bytes().to_vec();
    v.extend_from_slice(&len.to_ne_bytes());
    v
}

#[tokio::test]
async fn closes_without_reply() {
    let (_d, c) = one_shot(vec![], false).await;
    assert!(matches!(c.show_targets().await, Err(TgtError::NoReply)));
}

#[tokio::test]
async fn short_header() {
    let (_d, c) = one_shot(vec![0, 0, 0], false).await;
    assert!(matches!(c.show_targets().await, Err(TgtError::NoReply)));
}

#[tokio::test]
async fn length_below_header() {
    let (_d, c) = one_shot(hdr(0, 3), false).await;
    assert!(matches!(c.show_targets().await, Err(TgtError::Protocol(_))));
}

#[tokio::test]
async fn huge_length() {
    let (_d, c) = one_shot(hdr(0, u32::MAX), false).await;
    assert!(matches!(c.show_targets().await, Err(TgtError::Protocol(_))));
}

#[tokio::test]
async fn truncated_body() {
    let mut r = hdr(0, 100);
    r.extend_from_slice(b"Target 1: x\n");
    let (_d, c) = one_shot(r, false).await;
    assert!(matches!(c.show_targets().await, Err(TgtError::Protocol(_))));
}

#[tokio::test]
async fn body_stalls_until_timeout() {
    let mut r = hdr(0, 100);
    r.extend_from_slice(b"Target 1: x\n");
    let (_d, c) = one_shot(r, true).await;
    // The error says the reply timer fired (no wall-clock bound: never a timed assertion).
    assert!(matches!(
        c.show_targets().await,
        Err(TgtError::ReplyTimeout { .. })
    ));
}

#[tokio::test]
async fn garbage_text_is_a_parse_error() {
    let body = b"\xff\xfe garbage\n    LUN: x\n\0";
    let mut r = hdr(0, 8 + body.len() as u32);
    r.extend_from_slice(body);
    let (_d, c) = one_shot(r, false).await;
    assert!(matches!(
        c.show_targets().await,
        Err(TgtError::Parse { line: 1, .. })
    ));
}

#[tokio::test]
async fn unknown_error_code() {
    let (_d, c) = one_shot(hdr(1234, 8), false).await;
    let e = c.show_targets().await.unwrap_err();
    assert_eq!(e.errno(), Some(TgtErrno::Other(1234)));
    assert!(e.to_string().contains("(unknown tgtadm_errno)"));
}

#[tokio::test]
async fn error_with_a_body_is_still_the_error() {
    let mut r = hdr(4, 20);
    r.extend_from_slice(b"hello world!");
    let (_d, c) = one_shot(r, false).await;
    assert_eq!(
        c.show_targets().await.unwrap_err().errno(),
        Some(TgtErrno::NoTarget)
    );
}

#[tokio::test]
async fn nobody_listening() {
    let dir = tempfile::tempdir().unwrap();
    let c = TgtClient::at_path(dir.path().join("socket.0"));
    assert!(matches!(
        c.show_targets().await,
        Err(TgtError::Connect { .. })
    ));
    // a stale socket file (tgtd never removes it): ECONNREFUSED
    let p = dir.path().join("socket.1");
    drop(std::os::unix::net::UnixListener::bind(&p).unwrap());
    let e = TgtClient::at_path(&p).show_targets().await.unwrap_err();
    match e {
        TgtError::Connect { source, .. } => {
            assert_eq!(source.kind(), std::io::ErrorKind::ConnectionRefused)
        }
        e => panic!("{e:?}"),
    }
}
