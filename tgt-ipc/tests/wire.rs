//! Byte-for-byte comparison with tgtadm 1.0.85: a fake server records what `tgtadm` sends and what this
//! client sends for the same operation; the frames must be equal (for `--params` ops, equal after removing
//! tgtadm's `targetOps ` prefix and trailing comma, which tgtd skips). Needs the `tgtadm` binary, not root.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{prereq_tools, which};
use tgt_ipc::{
    AccountDirection, AccountScope, Acl, BsOFlags, BsType, CacheMode, LunBacking, LunIdentity,
    SetState, TgtClient, WRITE_CACHE_OFF_PAGE,
};

struct Fake {
    _dir: tempfile::TempDir,
    base: std::path::PathBuf,
    frames: Arc<Mutex<Vec<Vec<u8>>>>,
}

fn fake() -> Fake {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("socket");
    let l = UnixListener::bind(dir.path().join("socket.0")).unwrap();
    let frames = Arc::new(Mutex::new(Vec::new()));
    let f2 = frames.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            let mut hdr = [0u8; 120];
            if s.read_exact(&mut hdr).is_err() {
                continue;
            }
            let len = u32::from_ne_bytes(hdr[72..76].try_into().unwrap()) as usize;
            let mut frame = hdr.to_vec();
            frame.resize(len.max(120), 0);
            if s.read_exact(&mut frame[120..]).is_err() {
                continue;
            }
            f2.lock().unwrap().push(frame);
            let mut rsp = 0u32.to_ne_bytes().to_vec();
            rsp.extend_from_slice(&8u32.to_ne_bytes());
            let _ = s.write_all(&rsp);
        }
    });
    Fake {
        _dir: dir,
        base,
        frames,
    }
}

impl Fake {
    fn last(&self) -> Vec<u8> {
        self.frames.lock().unwrap().pop().expect("a frame arrived")
    }

    fn tgtadm(&self, args: &[&str]) -> Vec<u8> {
        let mut child = Command::new(which("tgtadm").unwrap())
            .args(args)
            .env("TGT_IPC_SOCKET", &self.base)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                assert!(st.success(), "tgtadm {args:?} failed: {st}");
                break;
            }
            // after `sys delete` tgtadm polls until the socket refuses: stop it once its frame is in
            if args.contains(&"delete")
                && args.contains(&"sys")
                && !self.frames.lock().unwrap().is_empty()
            {
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("tgtadm {args:?} hung");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        self.last()
    }
}

/// tgtadm's `-P` params become `targetOps X,`: normalise to the bare form (and fix `len`).
fn strip_target_ops(frame: &[u8]) -> Vec<u8> {
    let body = &frame[120..];
    let body = body.strip_prefix(b"targetOps ").unwrap_or(body);
    let body = body
        .strip_suffix(b",\0")
        .map(|b| [b, b"\0"].concat())
        .unwrap_or(body.to_vec());
    let mut out = frame[..120].to_vec();
    out[72..76].copy_from_slice(&((120 + body.len()) as u32).to_ne_bytes());
    out.extend_from_slice(&body);
    out
}

#[tokio::test]
async fn frames_equal_tgtadm() {
    if !prereq_tools("frames_equal_tgtadm", &["tgtadm"]) {
        return;
    }
    let f = fake();
    let c = TgtClient::with_base(&f.base, 0).unwrap();
    let iqn = "iqn.2026-11.test:t1";
    let l = "--lld";

    macro_rules! same {
        ($args:expr, $call:expr) => {{
            let theirs = f.tgtadm(&$args);
            $call.await.unwrap();
            let ours = f.last();
            assert_eq!(ours, theirs, "frames differ for tgtadm {:?}", $args);
        }};
    }
    same!(
        [
            l,
            "iscsi",
            "--mode",
            "target",
            "--op",
            "new",
            "--tid",
            "1",
            "--targetname",
            iqn
        ],
        c.new_target(1, iqn)
    );
    same!(
        [
            l,
            "iscsi",
            "--mode",
            "logicalunit",
            "--op",
            "new",
            "--tid",
            "1",
            "--lun",
            "1",
            "--backing-store",
            "/srv/v.img",
            "--bstype",
            "rdwr",
            "--bsoflags",
            "direct",
            "--blocksize",
            "4096"
        ],
        c.new_lun(
            1,
            1,
            &LunBacking::new("/srv/v.img")
                .bstype(BsType::Rdwr)
                .bsoflags(BsOFlags::Direct)
                .blocksize(4096)
        )
    );
    same!(
        [
            l,
            "iscsi",
            "--mode",
            "logicalunit",
            "--op",
            "delete",
            "--tid",
            "1",
            "--lun",
            "1"
        ],
        c.delete_lun(1, 1)
    );
    same!(
        [
            l,
            "iscsi",
            "--mode",
            "target",
            "--op",
            "bind",
            "--tid",
            "1",
            "--initiator-address",
            "10.0.0.0/24"
        ],
        c.bind_acl(1, &Acl::address("10.0.0.0/24").unwrap())
    );
    same!(
        [
            l,
            "iscsi",
            "--mode",
            "target",
            "--op",
            "unbind",
            "--tid",
            "1",
            "--initiator-name",
            "iqn.x:client"
        ],
        c.unbind_acl(1, &Acl::name("iqn.x:client").unwrap())
    );
    same!(
        [
            l, "iscsi", "--mode", "target", "--op", "update", "--tid", "1", "--name", "state",
            "--value", "offline"
        ],
        c.set_target_state(1, SetState::Offline)
    );
    same!(
        [l, "iscsi", "--mode", "target", "--op", "delete", "--force", "--tid", "1"],
        c.delete_target(1, true)
    );
    same!(
        [l, "iscsi", "--mode", "target", "--op", "show"],
        c.show_targets_text()
    );
    same!(
        [l, "iscsi", "--mode", "target", "--op", "show", "--tid", "1"],
        c.show_target_params(1)
    );
    same!(
        [l, "iscsi", "--mode", "conn", "--op", "show", "--tid", "1"],
        c.show_connections(1)
    );
    same!(
        [
            l, "iscsi", "--mode", "conn", "--op", "delete", "--tid", "1", "--sid", "2", "--cid",
            "0"
        ],
        c.delete_connection(1, 2, 0)
    );
    same!(
        [
            l,
            "iscsi",
            "--mode",
            "account",
            "--op",
            "new",
            "--user",
            "u1",
            "--password",
            "p1"
        ],
        c.new_account("u1", "p1")
    );
    same!(
        [
            l,
            "iscsi",
            "--mode",
            "account",
            "--op",
            "bind",
            "--tid",
            "1",
            "--user",
            "u1",
            "--outgoing"
        ],
        c.bind_account(AccountScope::Target(1), "u1", AccountDirection::Outgoing)
    );
    same!(
        [l, "iscsi", "--mode", "account", "--op", "show"],
        c.show_accounts()
    );
    same!(
        [l, "iscsi", "--mode", "portal", "--op", "show"],
        c.show_portals()
    );
    same!(
        [l, "iscsi", "--mode", "sys", "--op", "show"],
        c.show_system_text()
    );
    same!(
        [l, "iscsi", "--mode", "sys", "--op", "update", "--name", "State", "--value", "offline"],
        c.set_system_state(SetState::Offline)
    );
    same!(
        [l, "iscsi", "--mode", "sys", "--op", "delete"],
        c.shutdown()
    );

    // --params: tgtadm sends `targetOps ...,`; tgtd skips both, we send the bare form
    let theirs = f.tgtadm(&[
        l,
        "iscsi",
        "--mode",
        "logicalunit",
        "--op",
        "update",
        "--tid",
        "1",
        "--lun",
        "1",
        "--params",
        "scsi_id=ABC,scsi_sn=SN1,vendor_id=V,product_id=P,product_rev=0001",
    ]);
    assert!(theirs[120..].starts_with(b"targetOps "));
    let id = LunIdentity {
        scsi_id: "ABC".into(),
        scsi_sn: "SN1".into(),
        vendor_id: Some("V".into()),
        product_id: Some("P".into()),
        product_rev: Some("0001".into()),
    };
    c.set_lun_identity(1, 1, &id).await.unwrap();
    assert_eq!(f.last(), strip_target_ops(&theirs));

    // tgtadm's LU update of tid 1, LUN 1 with these --params
    let lu_update = |params: &str| {
        f.tgtadm(&[
            l,
            "iscsi",
            "--mode",
            "logicalunit",
            "--op",
            "update",
            "--tid",
            "1",
            "--lun=1",
            "--params",
            params,
        ])
    };
    // write-through: tgt-admin's `write-cache off` line, and the flags serve adds
    let page = format!("mode_page={WRITE_CACHE_OFF_PAGE}");
    let theirs = lu_update(&page);
    c.disable_write_cache(1, 1).await.unwrap();
    assert_eq!(f.last(), strip_target_ops(&theirs));
    // serve's one LU update: identity, then the page (write-through only)
    let both = format!("scsi_id=ABC,scsi_sn=SN1,vendor_id=V,product_id=P,product_rev=0001,{page}");
    let theirs = lu_update(&both);
    c.set_lun_identity_and_cache(1, 1, &id, CacheMode::WriteThrough)
        .await
        .unwrap();
    assert_eq!(f.last(), strip_target_ops(&theirs));
    c.set_lun_identity_and_cache(1, 1, &id, CacheMode::WriteBack)
        .await
        .unwrap();
    let write_back = f.last();
    c.set_lun_identity(1, 1, &id).await.unwrap();
    assert_eq!(write_back, f.last(), "write-back: the identity alone");
    for (flags, ours) in [
        ("sync", BsOFlags::Sync),
        ("sync:direct", BsOFlags::SyncDirect),
    ] {
        let theirs = f.tgtadm(&[
            l,
            "iscsi",
            "--mode",
            "logicalunit",
            "--op",
            "new",
            "--tid",
            "1",
            "--lun",
            "1",
            "--backing-store",
            "/srv/v.img",
            "--bsoflags",
            flags,
        ]);
        c.new_lun(1, 1, &LunBacking::new("/srv/v.img").bsoflags(ours))
            .await
            .unwrap();
        assert_eq!(f.last(), theirs, "frames differ for bsoflags {flags}");
    }
}
