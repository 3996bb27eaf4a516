//! DRBD 9 codec tests on bytes captured with nlmon in a lab guest running drbd 9.3.3 and
//! drbd-utils 9.22's `drbdsetup` (`tests/data/cap9_*`, see tests/data/README.md): requests equal
//! drbdsetup's, kernel replies and events parse into known sets and re-emit byte for byte.

use drbd_nl::v9::*;
use drbd_nl::{RawGenl, Role};
use netlink_packet_core::{
    NetlinkBuffer, NetlinkDeserializable, NetlinkHeader, NetlinkMessage, NetlinkPayload, Parseable,
};
use netlink_packet_generic::GenlMessage;

const FAMILY: u16 = 0x20;

fn data(name: &str) -> Vec<u8> {
    let p = format!("{}/tests/data/cap9_{name}.bin", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

fn parse_full(bytes: &[u8]) -> (NetlinkHeader, Drbd9Message) {
    let buf = NetlinkBuffer::new_checked(bytes).unwrap();
    let header = NetlinkHeader::parse(&buf).unwrap();
    let raw = RawGenl::deserialize(&header, buf.payload()).unwrap();
    let body = raw.payload.get(4..).unwrap_or(&[]);
    (
        header,
        Drbd9Message::parse_payload(raw.payload[0], body).unwrap(),
    )
}

fn emit_full(header: NetlinkHeader, msg: &Drbd9Message) -> Vec<u8> {
    let mut genl = GenlMessage::from_payload(msg.clone());
    genl.set_resolved_family_id(FAMILY);
    let raw = RawGenl::encode(FAMILY, &genl);
    let mut nl = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(raw));
    nl.finalize();
    let mut out = vec![0u8; nl.buffer_len()];
    nl.serialize(&mut out);
    out
}

fn all_known(name: &str, m: &Drbd9Message) {
    assert!(
        !m.attrs.iter().any(|a| matches!(a, Drbd9Attr::Other(_))),
        "{name}: every TLA known: {:?}",
        m.attrs
    );
}

/// Our builders' requests == drbdsetup 9's, byte for byte after the nlmsghdr flags check.
#[test]
fn requests_equal_drbdsetup_9() {
    let cases: Vec<(&str, Drbd9Message, u16)> = vec![
        ("primary_request", Primary9::new("r0").message(), 0x1),
        (
            "primary_peer_primary_request",
            Primary9::new("r0").message(),
            0x1,
        ),
        (
            "primary_force_request",
            Primary9::new("r0").force(true).message(),
            0x1,
        ),
        (
            "primary_unknown_resource_request",
            Primary9::new("r7").message(),
            0x1,
        ),
        ("secondary_request", Secondary9::new("r0").message(), 0x1),
        (
            "get_resources_request",
            dump_request(Drbd9Cmd::GetResources, None),
            0x301,
        ),
        (
            "get_devices_request",
            dump_request(Drbd9Cmd::GetDevices, Some("r0")),
            0x301,
        ),
        (
            "get_connections_request",
            dump_request(Drbd9Cmd::GetConnections, Some("r0")),
            0x301,
        ),
        (
            "get_peer_devices_request",
            dump_request(Drbd9Cmd::GetPeerDevices, Some("r0")),
            0x301,
        ),
        (
            "get_initial_state_request",
            dump_request(Drbd9Cmd::GetInitialState, Some("r0")),
            0x301,
        ),
    ];
    for (name, built, flags) in cases {
        let bytes = data(name);
        let (header, parsed) = parse_full(&bytes);
        assert_eq!(header.flags, flags, "{name}: nlmsg flags");
        assert_eq!(parsed, built, "{name}: parse == builder");
        assert_eq!(
            emit_full(header, &built),
            bytes,
            "{name}: emit == drbdsetup 9 bytes"
        );
    }
}

/// The configuration requests `drbdadm up` sends, byte-equal to drbdsetup 9's.
#[test]
fn config_requests_equal_drbdsetup_9() {
    let me: std::net::SocketAddr = "10.99.0.1:7789".parse().unwrap();
    let peer: std::net::SocketAddr = "10.99.0.2:7789".parse().unwrap();
    for (name, built) in [
        ("new_resource_request", Request9::new_resource("r0", 0)),
        ("new_minor_request", Request9::new_minor("r0", 1, 0)),
        (
            "new_peer_request",
            Request9::new_peer("r0", 1, "b", Some(1)),
        ),
        ("new_path_request", Request9::new_path("r0", 1, me, peer)),
        ("attach_request", Request9::attach(1, "/dev/vda")),
        ("connect_request", Request9::connect("r0", 1)),
        (
            "new_c_uuid_clear_bm_request",
            Request9::new_current_uuid(1, true),
        ),
        (
            "new_peer_managed_request",
            Request9::new_peer_with("r0", 1, "node-1", wire_protocol('C'), managed_net()),
        ),
    ] {
        let bytes = data(name);
        let (header, parsed) = parse_full(&bytes);
        assert_eq!(parsed, built.message(), "{name}: parse == builder");
        assert_eq!(
            emit_full(header, &built.message()),
            bytes,
            "{name}: emit == drbdsetup 9 bytes"
        );
    }
}

/// What iscsi-ha's manage mode sets: `new-peer r0 1 --_name=node-1 --protocol=C
/// --fencing=resource-only --after-sb-0pri=disconnect --after-sb-1pri=disconnect
/// --after-sb-2pri=disconnect --ping-int=2 --ping-timeout=5 --timeout=60 --ko-count=4`.
fn managed_net() -> [NetConf; 8] {
    [
        NetConf::FencingPolicy(1),
        NetConf::AfterSb0p(0),
        NetConf::AfterSb1p(0),
        NetConf::AfterSb2p(0),
        NetConf::PingInt(2),
        NetConf::PingTimeo(5),
        NetConf::Timeout(60),
        NetConf::KoCount(4),
    ]
}

/// Everything else drbdsetup 9 sent and the kernel answered or broadcast: known sets, re-emit
/// == bytes.
#[test]
fn captured_messages_round_trip() {
    for name in [
        "new_resource_request",
        "new_resource_reply",
        "new_minor_request",
        "new_minor_reply",
        "new_peer_request",
        "new_peer_reply",
        "new_path_request",
        "new_path_reply",
        "attach_request",
        "attach_reply",
        "connect_request",
        "connect_reply",
        "new_c_uuid_clear_bm_request",
        "new_c_uuid_reply",
        "get_resources_part",
        "get_devices_part",
        "get_connections_part",
        "get_peer_devices_part",
        "primary_reply",
        "secondary_reply",
        "primary_peer_primary_reply",
        "primary_force_reply",
        "primary_unknown_resource_reply",
        "initial_resource",
        "initial_connection",
        "initial_path",
        "initial_device",
        "initial_peer_device",
        "initial_state_done",
        "event_resource_create",
        "event_device_create",
        "event_connection_create",
        "event_peer_device_create",
        "event_path_create",
        "event_connection_change",
        "event_device_change",
        "event_resource_change",
        "new_peer_managed_reply",
        "get_devices_generations_part",
        "get_connections_managed_part",
        "get_peer_devices_generations_part",
    ] {
        let bytes = data(name);
        let (header, m) = parse_full(&bytes);
        all_known(name, &m);
        assert_eq!(emit_full(header, &m), bytes, "{name}: emit == bytes");
    }
}

#[test]
fn dump_parts_give_typed_objects() {
    let (h, m) = parse_full(&data("get_resources_part"));
    assert_eq!(h.flags, 0x2); // NLM_F_MULTI
    let r = Resource::from_message(&m).unwrap();
    assert_eq!(
        (r.name.as_str(), r.role, r.suspended()),
        ("r0", Role::Secondary, false)
    );
    let d = Device::from_message(&parse_full(&data("get_devices_part")).1).unwrap();
    assert_eq!(d.minor, Some(1));
    assert_eq!(d.volume, 0);
    assert_eq!(d.disk, DiskState::UpToDate);
    assert!(d.quorum);
    assert_eq!(d.backing_dev.as_deref(), Some("/dev/vda"));
    let c = Connection::from_message(&parse_full(&data("get_connections_part")).1).unwrap();
    assert_eq!(c.peer_node_id, 1);
    assert_eq!(c.name.as_deref(), Some("b"));
    assert_eq!(c.state, ConnectionState::Connected);
    assert_eq!(c.peer_role, Role::Secondary);
    let net = c.net.expect("GET_CONNECTIONS carries NET_CONF");
    // new-peer --connect-int=1 only: the rest are DRBD 9's defaults (ping-int 10 s, ping-timeout
    // 0.5 s, timeout 6 s, ko-count 7, fencing dont-care).
    assert_eq!(
        (
            net.ping_int_s,
            net.ping_timeout_ds,
            net.timeout_ds,
            net.ko_count,
            net.two_primaries,
            net.fencing
        ),
        (10, 5, 60, 7, false, 0)
    );
    let p = PeerDevice::from_message(&parse_full(&data("get_peer_devices_part")).1).unwrap();
    assert_eq!(p.replication, ReplState::Established);
    assert_eq!(p.peer_disk, DiskState::UpToDate);
    assert_eq!(p.out_of_sync_sectors, Some(0));
}

#[test]
fn events_give_typed_objects() {
    let ev = |name: &str| {
        let (h, m) = parse_full(&data(name));
        Event::from_message(h.sequence_number, m).unwrap()
    };
    let e = ev("event_resource_change");
    assert_eq!(e.notify, NotifyType::Change);
    assert!(matches!(&e.object, Object::Resource(r) if r.role == Role::Primary));
    let e = ev("initial_connection");
    assert_eq!(e.notify, NotifyType::Exists);
    assert!(e.continues);
    assert!(matches!(&e.object, Object::Connection(c)
        if c.state == ConnectionState::Connected && c.peer_role == Role::Primary));
    let e = ev("initial_path");
    let Object::Path(p) = &e.object else {
        panic!("{e:?}")
    };
    assert!(p.established);
    assert_eq!(p.local.unwrap().to_string(), "ipv4:10.99.0.1:7789");
    assert_eq!(p.peer.unwrap().to_string(), "ipv4:10.99.0.2:7789");
    assert_eq!(ev("initial_state_done").object, Object::InitialStateDone);
    let e = ev("event_connection_change");
    assert!(matches!(&e.object, Object::Connection(c) if c.state == ConnectionState::Unconnected));
    let e = ev("event_device_create");
    assert_eq!(e.notify, NotifyType::Create);
    assert!(matches!(&e.object, Object::Device(d) if d.disk == DiskState::Diskless));
}

#[test]
fn truncated_and_garbage_inputs_are_errors_not_panics() {
    let full = data("initial_peer_device");
    let payload = &full[16..];
    for n in 0..payload.len() {
        let _ = Drbd9Message::parse_payload(37, payload.get(4..n.max(4)).unwrap_or(&[]));
    }
    assert!(Drbd9Message::parse_payload(99, &payload[4..]).is_err());
    assert!(Drbd9Message::parse_payload(37, &[1, 2, 3]).is_err());
    // A notification without its header is a protocol error, not a panic.
    let m = Primary9::new("r0").message();
    assert!(Event::from_message(0, m).is_err());
}

/// Data generations from `status r0 --verbose --statistics` after `primary --force`, a write,
/// `secondary` and `new-current-uuid` with the peer never connected; drbdsetup's `show-gi r0 1 0`
/// printed `CC60F229CDCAB25C:4702B8C30EE94942:D28775C81338E89E:0000000000000000`.
#[test]
fn generations_from_dump_parts() {
    let d = Device::from_message(&parse_full(&data("get_devices_generations_part")).1).unwrap();
    assert_eq!(d.current_uuid, Some(0xCC60_F229_CDCA_B25C));
    assert_eq!(d.history_uuids, vec![0xD287_75C8_1338_E89E]);
    assert!(d.disk_flags.is_some());
    let p = PeerDevice::from_message(&parse_full(&data("get_peer_devices_generations_part")).1)
        .unwrap();
    assert_eq!(p.peer_node_id, 1);
    assert_eq!(p.bitmap_uuid, Some(0x4702_B8C3_0EE9_4942));
    // Sectors: drbdsetup prints half of it, `out-of-sync:16344` (KiB), the whole 16 MiB disk.
    assert_eq!(p.out_of_sync_sectors, Some(32688));
    // The fresh pair's parts: in sync, no history.
    let d = Device::from_message(&parse_full(&data("get_devices_part")).1).unwrap();
    assert!(d.history_uuids.is_empty());
    let p = PeerDevice::from_message(&parse_full(&data("get_peer_devices_part")).1).unwrap();
    assert_eq!(p.bitmap_uuid, Some(0));
    // The managed connection's options as the kernel reports them.
    let c = Connection::from_message(&parse_full(&data("get_connections_managed_part")).1).unwrap();
    let n = c.net.expect("NET_CONF");
    assert_eq!(
        (
            n.ping_int_s,
            n.ping_timeout_ds,
            n.timeout_ds,
            n.ko_count,
            n.fencing
        ),
        (2, 5, 60, 4, 1)
    );
}
