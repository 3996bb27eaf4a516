//! Requests the client must refuse never reach the socket: a listener stands where tgtd would be, and after
//! every refused call nothing has connected to it. A valid request then does arrive (positive control).
//! No root or tgtd needed.

use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::time::Duration;

use tgt_ipc::{
    AccountDirection, AccountScope, Acl, BsOFlags, BsType, CacheMode, LunBacking, LunIdentity,
    LunSetting, ServeLun, ServeSpec, TargetParam, TgtClient, TgtError,
};

fn assert_refused<T: std::fmt::Debug>(what: &str, r: Result<T, TgtError>, l: &UnixListener) {
    match r {
        Err(TgtError::InvalidRequest { .. }) => {}
        other => panic!("{what}: expected InvalidRequest, got {other:?}"),
    }
    match l.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        Ok(_) => panic!("{what}: a refused request reached the socket"),
        Err(e) => panic!("{what}: accept: {e}"),
    }
}

fn identity() -> LunIdentity {
    LunIdentity {
        scsi_id: "60014052e3c1a9b8d7f6e5d4c3b2a190".into(),
        scsi_sn: "SN1".into(),
        vendor_id: None,
        product_id: None,
        product_rev: None,
    }
}

#[tokio::test]
async fn refused_requests_never_reach_the_socket() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("socket.0");
    let l = UnixListener::bind(&path).unwrap();
    l.set_nonblocking(true).unwrap();
    let c = TgtClient::at_path(&path).reply_timeout(Duration::from_millis(200));

    // TARGET/NEW without a (valid) name crashes tgtd 1.0.85
    assert_refused("empty target name", c.new_target(1, "").await, &l);
    assert_refused("underscore in name", c.new_target(1, "iqn.x:a_b").await, &l);
    assert_refused("comma in name", c.new_target(1, "iqn.x:a,b").await, &l);
    assert_refused("negative tid", c.new_target(-1, "iqn.x:a").await, &l);
    assert_refused("delete tid -1", c.delete_target(-1, true).await, &l);
    // params injection through values
    assert_refused(
        "comma in path",
        c.new_lun(1, 1, &LunBacking::new("/srv/a,bstype=null"))
            .await,
        &l,
    );
    assert_refused(
        "relative path",
        c.new_lun(1, 1, &LunBacking::new("a.img")).await,
        &l,
    );
    assert_refused(
        "LUN 0",
        c.new_lun(1, 0, &LunBacking::new("/a.img")).await,
        &l,
    );
    assert_refused(
        "LUN too big",
        c.new_lun(1, 70000, &LunBacking::new("/a.img")).await,
        &l,
    );
    assert_refused(
        "bad blocksize",
        c.new_lun(1, 1, &LunBacking::new("/a.img").blocksize(1000))
            .await,
        &l,
    );
    assert_refused(
        "aio with flags",
        c.new_lun(
            1,
            1,
            &LunBacking::new("/a.img")
                .bstype(BsType::Aio)
                .bsoflags(BsOFlags::Direct),
        )
        .await,
        &l,
    );
    let mut id = identity();
    id.scsi_sn = "SN1,online=0".into();
    assert_refused("comma in scsi_sn", c.set_lun_identity(1, 1, &id).await, &l);
    let mut id = identity();
    id.scsi_id = "a=b".into();
    assert_refused("= in scsi_id", c.set_lun_identity(1, 1, &id).await, &l);
    let mut id = identity();
    id.vendor_id = Some("NINECHARS".into());
    assert_refused("vendor too long", c.set_lun_identity(1, 1, &id).await, &l);
    let mut id = identity();
    id.scsi_id = String::new();
    assert_refused("empty scsi_id", c.set_lun_identity(1, 1, &id).await, &l);
    let mut id = identity();
    id.product_id = Some("nul\0byte".into());
    assert_refused("NUL in product", c.set_lun_identity(1, 1, &id).await, &l);
    assert_refused(
        "relative path update",
        c.update_lun(1, 1, &LunSetting::Path(PathBuf::from("x")))
            .await,
        &l,
    );
    // ACL values built directly, bypassing the checked constructors
    assert_refused(
        "acl injection",
        c.bind_acl(1, &Acl::Address("10.0.0.1,initiator-name=x".into()))
            .await,
        &l,
    );
    assert_refused(
        "acl host name",
        c.bind_acl(1, &Acl::Address("host.example".into())).await,
        &l,
    );
    assert_refused(
        "acl /32",
        c.bind_acl(1, &Acl::Address("10.0.0.1/32".into())).await,
        &l,
    );
    assert_refused(
        "acl name space",
        c.unbind_acl(1, &Acl::Name("a b".into())).await,
        &l,
    );
    // accounts: empty params crash tgtd; commas would inject
    assert_refused("empty user", c.new_account("", "secretpass12").await, &l);
    assert_refused(
        "comma user",
        c.new_account("u,password=x", "secretpass12").await,
        &l,
    );
    assert_refused("password space", c.new_account("u", "a b").await, &l);
    assert_refused(
        "bind user =",
        c.bind_account(AccountScope::Target(1), "a=b", AccountDirection::Incoming)
            .await,
        &l,
    );
    assert_refused(
        "unbind tid -2",
        c.unbind_account(AccountScope::Target(-2), "u", AccountDirection::Outgoing)
            .await,
        &l,
    );
    assert_refused(
        "param range",
        c.set_target_param(1, TargetParam::MaxQueueCmd(0)).await,
        &l,
    );
    assert_refused("conn show -1", c.show_connections(-1).await, &l);
    assert_refused("conn delete -1", c.delete_connection(-1, 1, 0).await, &l);
    assert_refused("stop -1", c.stop_serving(-1, "iqn.x:ok").await, &l);
    let bad = ServeSpec {
        tid: 1,
        name: "iqn.x:ok".into(),
        luns: vec![
            ServeLun {
                lun: 1,
                backing: LunBacking::new("/a.img"),
                identity: identity(),
                cache: CacheMode::WriteThrough,
            },
            ServeLun {
                lun: 1,
                backing: LunBacking::new("/b.img"),
                identity: identity(),
                cache: CacheMode::WriteThrough,
            },
        ],
        accounts: Vec::new(),
        acls: vec![Acl::all()],
    };
    assert_refused("serve duplicate LUN", c.serve(&bad).await, &l);
    let mut bad2 = bad.clone();
    bad2.luns.truncate(1);
    bad2.acls = vec![Acl::Name("x,y".into())];
    assert_refused("serve bad ACL", c.serve(&bad2).await, &l);
    let mut bad3 = bad.clone();
    bad3.luns.truncate(1);
    bad3.luns[0].backing = LunBacking::new("/a.img").bstype(BsType::Aio);
    assert_refused("write-through on aio", c.serve(&bad3).await, &l);
    assert_refused(
        "write cache off LUN 0",
        c.disable_write_cache(1, 0).await,
        &l,
    );
    assert!(TgtClient::control_port(32768).is_err());

    // positive control: a valid request does arrive (no reply comes, so it times out)
    let r = c.show_system().await;
    assert!(matches!(r, Err(TgtError::ReplyTimeout { .. })), "{r:?}");
    assert!(l.accept().is_ok(), "a valid request must reach the socket");
}
