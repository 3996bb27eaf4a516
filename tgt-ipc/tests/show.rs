//! The show parsers on real tgtd 1.0.85 output captured into `tests/data/` (see its README).

use tgt_ipc::{
    parse_accounts, parse_connections, parse_portals, parse_system, parse_target_params,
    parse_targets, AccountBinding, ConnectionInfo, TargetState,
};

const SESSION: &str = include_str!("data/show_target_session.txt");
const IDLE: &str = include_str!("data/show_target_idle.txt");

#[test]
fn target_show_with_a_session() {
    let t = parse_targets(SESSION).unwrap();
    assert_eq!(t.len(), 2);
    let t1 = &t[0];
    assert_eq!((t1.tid, t1.name.as_str()), (1, "iqn.2026-11.test:t1"));
    assert_eq!(t1.driver, "iscsi");
    assert_eq!(t1.state, TargetState::Ready);
    assert_eq!(t1.nop_interval, None);
    assert_eq!(t1.nexuses.len(), 1);
    let n = &t1.nexuses[0];
    assert_eq!(n.sid, 10);
    assert_eq!(n.initiator, "iqn.2026-11.test:perf");
    assert_eq!(n.alias, None);
    assert_eq!(n.connections.len(), 1);
    assert_eq!(
        (n.connections[0].cid, n.connections[0].address.as_str()),
        (0, "127.0.0.1")
    );
    assert_eq!(t1.luns.len(), 2);
    let l0 = &t1.luns[0];
    assert_eq!((l0.lun, l0.device_type.as_str()), (0, "controller"));
    assert_eq!(l0.scsi_id, "IET     00010000");
    assert_eq!(l0.backing_store_type, "null");
    assert_eq!(l0.backing_store_path, None);
    assert_eq!(l0.backing_store_flags, "");
    assert_eq!(l0.block_size, 1);
    let l1 = t1.lun(1).unwrap();
    assert_eq!(l1.device_type, "disk");
    assert_eq!(l1.scsi_id, "60014052e3c1a9b8d7f6e5d4c3b2a190");
    assert_eq!(l1.scsi_sn, "SN0001");
    assert_eq!((l1.size_mb, l1.block_size), (67, 512));
    assert!(l1.online && !l1.removable && !l1.readonly && !l1.prevent_removal && !l1.swp);
    assert!(!l1.thin_provisioning);
    assert_eq!(l1.backing_store_type, "rdwr");
    assert_eq!(
        l1.backing_store_path.as_deref(),
        Some("/tmp/tgtx/disk1.img")
    );
    assert_eq!(l1.backing_store_flags, "direct");
    assert!(t1.accounts.is_empty());
    assert_eq!(
        t1.acls,
        vec!["127.0.0.1", "10.0.0.0/24", "iqn.2026-11.test:perf"]
    );

    let t2 = &t[1];
    assert_eq!((t2.tid, t2.name.as_str()), (2, "iqn.2026-11.test:t2"));
    assert_eq!(t2.state, TargetState::Offline);
    assert_eq!((t2.nop_interval, t2.nop_count), (Some(5), Some(3)));
    assert!(t2.nexuses.is_empty());
    assert_eq!(
        t2.luns.iter().map(|l| l.lun).collect::<Vec<_>>(),
        vec![0, 3, 4]
    );
    let l3 = t2.lun(3).unwrap();
    assert_eq!((l3.backing_store_type.as_str(), l3.size_mb), ("aio", 10));
    assert_eq!(l3.scsi_sn, "beaf23");
    let l4 = t2.lun(4).unwrap();
    assert_eq!(l4.backing_store_path, None);
    assert!(!l4.online && l4.removable, "a disk LU without medium");
    assert_eq!(
        t2.accounts,
        vec![
            AccountBinding {
                user: "chapuser".into(),
                outgoing: false
            },
            AccountBinding {
                user: "mutual".into(),
                outgoing: true
            },
        ]
    );
    assert_eq!(t2.acls, vec!["iqn.1993-08.org.debian:01:abc"]);
}

#[test]
fn target_show_idle_equals_session_minus_nexus() {
    let mut with = parse_targets(SESSION).unwrap();
    let idle = parse_targets(IDLE).unwrap();
    assert!(idle.iter().all(|t| t.nexuses.is_empty()));
    with[0].nexuses.clear();
    assert_eq!(with, idle);
}

#[test]
fn conn_show() {
    let c = parse_connections(include_str!("data/show_conn.txt")).unwrap();
    assert_eq!(
        c,
        vec![ConnectionInfo {
            sid: 10,
            cid: 0,
            initiator: "iqn.2026-11.test:perf".into(),
            address: "127.0.0.1".into(),
        }]
    );
}

#[test]
fn target_params_show() {
    let p = parse_target_params(include_str!("data/show_target_params.txt")).unwrap();
    assert_eq!(p.len(), 26);
    assert_eq!(p[0], ("nop_interval".into(), "0".into()));
    assert!(p.contains(&("MaxRecvDataSegmentLength".into(), "8192".into())));
    assert!(p.contains(&("HeaderDigest".into(), "None".into())));
    assert_eq!(p[25].0, "MaxQueueCmd");
}

#[test]
fn system_show() {
    let s = parse_system(include_str!("data/show_system.txt")).unwrap();
    assert_eq!(s.state, "ready");
    assert!(!s.debug);
    assert_eq!(
        s.llds,
        vec![
            ("iscsi".into(), "ready".into()),
            ("iser".into(), "error".into())
        ]
    );
    assert!(s.backing_stores.contains(&"rdwr".to_string()));
    assert!(s.backing_stores.contains(&"aio".to_string()));
    assert_eq!(s.device_types.len(), 7);
    assert!(s.accounts.is_empty());
    assert!(s.isns.contains(&("iSNSServerPort".into(), "3205".into())));
}

#[test]
fn system_show_with_global_accounts() {
    // docs/tgtd-ipc.md §6.6: the block `    Account information:`, an empty line, `    <user>`
    // lines before `iSNS:`
    let text = include_str!("data/show_system.txt")
        .replace("iSNS:\n", "    Account information:\n\n    disco\niSNS:\n");
    let s = parse_system(&text).unwrap();
    assert_eq!(s.accounts, vec!["disco"]);
    assert_eq!(s.isns.len(), 4);
}

#[test]
fn portal_show() {
    let p = parse_portals(include_str!("data/show_portal.txt")).unwrap();
    assert_eq!(p.len(), 2);
    assert_eq!(
        (p[0].address.as_str(), p[0].port, p[0].tpgt),
        ("127.0.0.2", 43261, 1)
    );
    assert_eq!((p[1].address.as_str(), p[1].port), ("127.0.0.1", 43260));
}

#[test]
fn account_show() {
    let a = parse_accounts(include_str!("data/show_account.txt")).unwrap();
    assert_eq!(a, vec!["disco", "mutual", "chapuser"]);
}
