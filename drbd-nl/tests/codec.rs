//! Codec tests on bytes captured from the real kernel (see tests/data/README.md):
//! parse == expected, emit == bytes, unknown attributes survive.

use drbd_nl::*;
use netlink_packet_core::{
    Emitable, NetlinkHeader, NetlinkMessage, NetlinkPayload, NlaBuffer, NlasIterator, Parseable,
    NLM_F_REQUEST,
};
use netlink_packet_generic::GenlMessage;

const FAMILY: u16 = 0x20;

/// Parses a full captured netlink message into (netlink header, DRBD message), the way any
/// netlink-packet-generic user would.
fn parse_full(bytes: &[u8]) -> (NetlinkHeader, DrbdMessage) {
    let nl = NetlinkMessage::<GenlMessage<DrbdMessage>>::deserialize(bytes).unwrap();
    match nl.payload {
        NetlinkPayload::InnerMessage(genl) => (nl.header, genl.payload),
        other => panic!("not a DRBD message: {other:?}"),
    }
}

/// Emits a DRBD message as a full netlink message with the given header.
fn emit_full(header: NetlinkHeader, msg: &DrbdMessage) -> Vec<u8> {
    let mut genl = GenlMessage::from_payload(msg.clone());
    genl.set_resolved_family_id(FAMILY);
    let mut nl = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(genl));
    nl.finalize();
    let mut out = vec![0u8; nl.buffer_len()];
    nl.serialize(&mut out);
    out
}

fn parse_tlas(bytes: &[u8]) -> Vec<DrbdAttr> {
    NlasIterator::new(bytes)
        .map(|n| DrbdAttr::parse(&n.unwrap()).unwrap())
        .collect()
}

fn emit_tlas(attrs: &[DrbdAttr]) -> Vec<u8> {
    let mut out = vec![0u8; attrs.buffer_len()];
    attrs.emit(&mut out);
    out
}

#[test]
fn primary_force_request_matches_drbdsetup() {
    let bytes = include_bytes!("data/primary_force_request.bin");
    let (header, msg) = parse_full(bytes);
    // nlmsghdr: len 40, type 0x20, flags REQUEST, seq 0x65, portid 0
    assert_eq!(header.message_type, FAMILY);
    assert_eq!(header.flags, NLM_F_REQUEST);
    assert_eq!(header.sequence_number, 0x65);
    // genl cmd 14, minor 1, flags 0, SET_ROLE_PARMS{assume_uptodate: 1} with bit 14 + NESTED
    let built = Primary::new(1).force(true).message();
    assert_eq!(msg, built);
    assert_eq!(emit_full(header, &built), bytes.to_vec());
    // Without --force drbdsetup sends no SET_ROLE_PARMS at all.
    assert!(Primary::new(1).message().attrs.is_empty());
}

#[test]
fn primary_force_reply_is_ss_success() {
    let bytes = include_bytes!("data/primary_force_reply.bin");
    let (header, msg) = parse_full(bytes);
    assert_eq!(msg.cmd, DrbdCmd::Primary);
    assert_eq!(msg.header.minor, 1);
    assert_eq!(msg.header.ret_code(), 1);
    assert_eq!(ReplyCode::from_raw(1), ReplyCode::State(StateRv::Success));
    assert_eq!(emit_full(header, &msg), bytes.to_vec());
}

#[test]
fn unknown_minor_reply_gives_typed_error_with_info_text() {
    let bytes = include_bytes!("data/get_status_unknown_minor_reply.bin");
    let (header, msg) = parse_full(bytes);
    assert_eq!(msg.cmd, DrbdCmd::GetStatus);
    assert_eq!(msg.header.minor, 7);
    assert_eq!(msg.info_text(), Some("unknown minor"));
    // CFG_REPLY arrives without NESTED, info_text with bit 14: both remembered.
    match &msg.attrs[..] {
        [DrbdAttr::CfgReply(set)] => {
            assert!(!set.nested_flag);
            assert!(set.mandatory_flag);
            assert_eq!(set.fields, vec![CfgReply::InfoText("unknown minor".into())]);
        }
        other => panic!("unexpected attrs {other:?}"),
    }
    assert_eq!(
        ReplyCode::from_raw(msg.header.ret_code()),
        ReplyCode::Ret(RetCode::MinorInvalid)
    );
    assert_eq!(emit_full(header, &msg), bytes.to_vec());
}

#[test]
fn connect_request_matches_capture() {
    let bytes = include_bytes!("data/connect_r0_tlas.bin");
    let built = Connect::new(
        "r0",
        "127.0.0.1:7789".parse().unwrap(),
        "127.0.0.2:7789".parse().unwrap(),
    )
    .message();
    assert_eq!(built.cmd, DrbdCmd::Connect);
    assert_eq!(built.header.minor, MINOR_NONE);
    assert_eq!(parse_tlas(bytes), built.attrs);
    assert_eq!(emit_tlas(&built.attrs), bytes.to_vec());
    let ctx = match &built.attrs[0] {
        DrbdAttr::CfgContext(c) => c,
        _ => panic!(),
    };
    match &ctx.fields[1] {
        CfgContext::CtxMyAddr(b) => {
            assert_eq!(
                SockAddr::from_bytes(b).unwrap().to_string(),
                "ipv4:127.0.0.1:7789"
            )
        }
        _ => panic!(),
    }
}

#[test]
fn timeout_type_reply_round_trips() {
    let bytes = include_bytes!("data/get_timeout_type_reply_tlas.bin");
    let attrs = parse_tlas(bytes);
    match &attrs[..] {
        [DrbdAttr::TimeoutParms(set)] => {
            assert!(set.nested_flag);
            assert!(set.mandatory_flag); // no M field in the set: irrelevant, request default kept
            assert_eq!(set.fields, vec![TimeoutParms::TimeoutType(0)]);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(emit_tlas(&attrs), bytes.to_vec());
}

#[test]
fn initial_state_done_round_trips() {
    let bytes = include_bytes!("data/initial_state_done.bin");
    let (header, msg) = parse_full(bytes);
    assert_eq!(msg.cmd, DrbdCmd::InitialStateDone);
    assert_eq!(msg.header.minor, MINOR_NONE);
    assert_eq!(msg.header.ret_code(), 101);
    let ev = DrbdEvent::from_message(header.sequence_number, msg.clone()).unwrap();
    assert!(matches!(ev, DrbdEvent::Notification { .. }));
    assert_eq!(emit_full(header, &msg), bytes.to_vec());
}

#[test]
fn unknown_attributes_survive_and_round_trip() {
    // A DRBD 9 style TLA 14 (DEVICE_CONF) + NESTED, and inside NET_CONF an
    // unknown field 40 with bit 14 and a field 35 (my_addr2) without.
    let bytes: Vec<u8> = [
        &[
            0x0c, 0x00, 0x0e, 0x80, 0x08, 0x00, 0x01, 0x00, 0x2a, 0x00, 0x00, 0x00,
        ][..],
        &[0x1c, 0x00, 0x05, 0x80][..],
        &[0x08, 0x00, 0x06, 0x40, 0x03, 0x00, 0x00, 0x00][..],
        &[0x08, 0x00, 0x28, 0x40, 0x01, 0x02, 0x03, 0x04][..],
        &[0x08, 0x00, 0x23, 0x00, 0x05, 0x06, 0x07, 0x08][..],
    ]
    .concat();
    let attrs = parse_tlas(&bytes);
    assert!(matches!(attrs[0], DrbdAttr::Other(_)));
    match &attrs[1] {
        DrbdAttr::NetConf(set) => {
            assert_eq!(set.fields[0], NetConf::WireProtocol(3));
            assert!(matches!(set.fields[1], NetConf::Other(_)));
            assert!(matches!(set.fields[2], NetConf::Other(_)));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(emit_tlas(&attrs), bytes);
}

#[test]
fn every_request_builder_emits_nested_tlas_and_round_trips() {
    let a: std::net::SocketAddr = "10.0.0.1:7789".parse().unwrap();
    let b: std::net::SocketAddr = "[fe80::1]:7789".parse().unwrap();
    let msgs = vec![
        Status::new().message(),
        Status::new().resource("r0").message(),
        NewResource::new("r0")
            .option(ResourceOpts::OnNoData(1))
            .message(),
        DelResource::new("r0").message(),
        NewMinor::new("r0", 1, 0).message(),
        DelMinor::new(1).message(),
        Attach::new(1, "/dev/ram0")
            .option(DiskConf::ResyncRate(1000))
            .message(),
        Detach::new(1).force(true).message(),
        Connect::new("r0", a, a)
            .protocol('A')
            .option(NetConf::TwoPrimaries(false))
            .message(),
        Disconnect::new(b, b).force(true).message(),
        Primary::new(1).force(true).message(),
        Secondary::new(1).message(),
        NewCurrentUuid::new(1).clear_bitmap(true).message(),
        Resize::new(1).size_sectors(8).assume_clean(true).message(),
        Down::new("r0").message(),
    ];
    for m in msgs {
        let mut buf = vec![0u8; m.buffer_len()];
        m.emit(&mut buf);
        for nla in NlasIterator::new(&buf[DRBD_GENL_HDRLEN..]) {
            let nla = nla.unwrap();
            assert!(
                nla.nested_flag(),
                "{m:?}: every request TLA needs NLA_F_NESTED"
            );
        }
        let back = DrbdMessage::parse_payload(m.cmd.into(), &buf).unwrap();
        assert_eq!(back, m);
    }
}

#[test]
fn command_lines_are_drbdsetup_84_s() {
    assert_eq!(Primary::new(1).command_line(), "primary 1");
    assert_eq!(
        Primary::new(1).force(true).command_line(),
        "primary 1 --force"
    );
    assert_eq!(
        Detach::new(2).force(true).command_line(),
        "detach 2 --force"
    );
    assert_eq!(
        NewCurrentUuid::new(1).clear_bitmap(true).command_line(),
        "new-current-uuid 1 --clear-bitmap"
    );
    assert_eq!(NewMinor::new("r0", 1, 0).command_line(), "new-minor r0 1 0");
    assert_eq!(Status::new().resource("r0").command_line(), "status r0");
    assert_eq!(Down::new("r0").command_line(), "down r0");
}

#[test]
fn new_minor_puts_minor_in_header() {
    let m = NewMinor::new("r0", 1, 0).message();
    assert_eq!(m.header.minor, 1);
    let mut buf = vec![0u8; m.buffer_len()];
    m.emit(&mut buf);
    // CFG_CONTEXT{2:"r0" (bit 14), 1:0 (bit 14)} + NESTED, as drbdsetup-84 sends it
    assert_eq!(
        &buf[8..],
        &[
            0x14, 0x00, 0x02, 0x80, 0x07, 0x00, 0x02, 0x40, b'r', b'0', 0, 0, 0x08, 0x00, 0x01,
            0x40, 0, 0, 0, 0
        ]
    );
}

#[test]
fn truncated_and_garbage_inputs_are_errors_not_panics() {
    let full = include_bytes!("data/get_status_unknown_minor_reply.bin");
    for cut in 0..full.len() {
        let _ = DrbdMessage::parse_payload(2, &full[16 + 4.min(cut)..cut.max(20)]);
    }
    assert!(DrbdMessage::parse_payload(200, &[0; 8]).is_err());
    assert!(DrbdMessage::parse_payload(2, &[0; 3]).is_err());
    // flag field of 0 bytes (the kernel rejects it too)
    let bad = [0x08, 0x00, 0x06, 0x80, 0x04, 0x00, 0x01, 0x40];
    let nla = NlaBuffer::new_checked(&bad[..]).unwrap();
    assert!(DrbdAttr::parse(&nla).is_err());
}

/// Captures made with nlmon in a lab guest (see tests/data/README.md, `cap84_*`).
mod cap84 {
    use super::*;

    fn data(name: &str) -> Vec<u8> {
        let p = format!("{}/tests/data/cap84_{name}.bin", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
    }

    /// drbdsetup-84's request == our builder, byte for byte after the nlmsghdr (seq/pid differ).
    #[test]
    fn requests_equal_drbdsetup_84() {
        let a: std::net::SocketAddr = "127.0.0.1:7789".parse().unwrap();
        let b: std::net::SocketAddr = "127.0.0.1:7790".parse().unwrap();
        let cases: Vec<(&str, DrbdMessage, u16)> = vec![
            (
                "new_resource_request",
                NewResource::new("ba").message(),
                0x1,
            ),
            (
                "new_minor_request",
                NewMinor::new("ba", 1, 0).message(),
                0x1,
            ),
            ("attach_request", Attach::new(1, "/dev/ram0").message(), 0x1),
            ("connect_request", Connect::new("ba", a, b).message(), 0x1),
            (
                "new_c_uuid_clear_bm_request",
                NewCurrentUuid::new(1).clear_bitmap(true).message(),
                0x1,
            ),
            ("primary_request", Primary::new(1).message(), 0x1),
            (
                "primary_peer_primary_request",
                Primary::new(2).message(),
                0x1,
            ),
            ("secondary_request", Secondary::new(1).message(), 0x1),
            ("detach_request", Detach::new(1).message(), 0x1),
            (
                "get_status_dump_request",
                Status::new().resource("ba").message(),
                0x301,
            ),
            ("down_request", Down::new("ba").message(), 0x1),
        ];
        for (name, built, flags) in cases {
            let bytes = data(name);
            let (header, parsed) = parse_full(&bytes);
            assert_eq!(header.flags, flags, "{name}: nlmsg flags");
            assert_eq!(parsed, built, "{name}: parse == builder");
            let ours = emit_full(header, &built);
            assert_eq!(ours, bytes, "{name}: emit == drbdsetup-84 bytes");
        }
    }

    /// Kernel replies and dump parts: parse, typed view, re-emit == bytes.
    #[test]
    fn kernel_replies_round_trip() {
        for name in [
            "new_resource_reply",
            "new_minor_reply",
            "attach_reply",
            "connect_reply",
            "new_c_uuid_reply",
            "primary_reply",
            "primary_peer_primary_reply",
            "get_resources_part",
            "get_devices_part",
            "get_connections_part",
            "get_peer_devices_part",
            "secondary_reply",
            "detach_reply",
            "get_status_dump_part",
            "down_reply",
        ] {
            let bytes = data(name);
            let (header, msg) = parse_full(&bytes);
            assert!(
                !msg.attrs.iter().any(|a| matches!(a, DrbdAttr::Other(_))),
                "{name}: every TLA known: {:?}",
                msg.attrs
            );
            assert_eq!(emit_full(header, &msg), bytes, "{name}: emit == bytes");
        }
    }

    #[test]
    fn typed_views_of_replies() {
        let (_, m) = parse_full(&data("primary_peer_primary_reply"));
        assert_eq!(
            ReplyCode::from_raw(m.header.ret_code()),
            ReplyCode::State(StateRv::TwoPrimaries)
        );
        let (_, m) = parse_full(&data("connect_reply"));
        assert_eq!(m.header.ret_code(), 1);
        assert_eq!(m.resource_name(), Some("ba"));
        let (h, m) = parse_full(&data("get_status_dump_part"));
        assert_eq!(h.flags, 0x2); // NLM_F_MULTI
        let st = DeviceStatus::from_message(&m).unwrap();
        assert_eq!(st.minor, Some(1));
        assert_eq!(st.resource.as_deref(), Some("ba"));
        assert_eq!(st.volume, Some(0));
        assert_eq!(st.reason, Some(SibReason::GetStatusReply));
        let s = st.state.unwrap();
        // taken by `drbdsetup-84 down ba` after `secondary 1` and `detach 1`
        assert_eq!(s.role, Role::Secondary);
        assert_eq!(s.conn, ConnState::Connected);
        assert_eq!(s.disk, DiskState::Diskless);
        assert_eq!(st.peer_addr.unwrap().to_string(), "ipv4:127.0.0.1:7790");
        let (_, m) = parse_full(&data("get_devices_part"));
        assert!(m.attrs.iter().any(|a| matches!(a, DrbdAttr::DeviceInfo(s) if s.fields.contains(&DeviceInfo::DevDiskState(8)))));
    }
}

/// Fuzz finding (decode_message): an unknown attribute with both NLA_F_NESTED and bit 14 lost
/// bit 14 on re-emit (netlink-packet-core re-masks the type when it sets NESTED).
#[test]
fn unknown_tla_with_nested_and_bit14_round_trips() {
    let mut payload = vec![1u8, 0, 0, 0, 0, 0, 0, 0]; // minor 1, flags 0
    payload.extend_from_slice(&[
        0x0d, 0x00, 0x00, 0xcb, 145, 0, 0, 0, 0, 145, 40, 0, 55, 0, 0, 0,
    ]);
    let msg = DrbdMessage::parse_payload(1, &payload).unwrap();
    let mut buf = vec![0u8; msg.buffer_len()];
    msg.emit(&mut buf);
    assert_eq!(buf[8..10], payload[8..10]);
    assert_eq!(buf[10..12], [0x00, 0xcb]);
    assert_eq!(DrbdMessage::parse_payload(1, &buf).unwrap(), msg);
}
