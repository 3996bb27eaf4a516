#!/usr/bin/env python3
"""Generates drbd-nl/src/attr/sets.rs from the table below.

The table is transcribed from torvalds/linux include/linux/drbd_genl.h at tag
v6.1 (the facts, with their sources, are in docs/drbd-genl.md §4). The output is plain Rust and is
committed; rerun with `python3 drbd-nl/gen/attrs.py > drbd-nl/src/attr/sets.rs`
then `rustfmt --edition 2021 drbd-nl/src/attr/sets.rs`. `cargo test -p drbd-nl --test generated`
fails when the committed file differs from this output.

Field line: number, C name, type, M (mandatory bit on the wire), doc.
Types: u32, s32, u64, flg (1 byte 0/1), str, bin.
"""

SETS = [
 (1, "CfgReply", "drbd_cfg_reply", "DRBD_NLA_CFG_REPLY", "Info text the kernel attaches to a reply.", [
  (1, "info_text", "str", True, "Human-readable text, e.g. `unknown minor`."),
 ]),
 (2, "CfgContext", "drbd_cfg_context", "DRBD_NLA_CFG_CONTEXT", "Which object a request addresses (resource, volume, connection).", [
  (1, "ctx_volume", "u32", True, "Volume number within the resource (0..65535)."),
  (2, "ctx_resource_name", "str", True, "Resource name (at most 127 bytes, no `/`)."),
  (3, "ctx_my_addr", "bin", True, "Local `struct sockaddr` (see [`crate::SockAddr`])."),
  (4, "ctx_peer_addr", "bin", True, "Peer `struct sockaddr` (see [`crate::SockAddr`])."),
 ]),
 (3, "DiskConf", "disk_conf", "DRBD_NLA_DISK_CONF", "Disk options (`drbdsetup attach` / `disk-options`).", [
  (1, "backing_dev", "str", False, "Backing block device path (required, invariant)."),
  (2, "meta_dev", "str", False, "Meta-data device path; the backing device for internal meta-data (required, invariant)."),
  (3, "meta_dev_idx", "s32", False, "Meta-data index: -3 internal, -2 flexible external, -1 legacy internal, >= 0 indexed (required, invariant)."),
  (4, "disk_size", "u64", True, "Size in sectors, 0 = all (invariant)."),
  (5, "max_bio_bvecs", "u32", True, "0..128 (invariant)."),
  (6, "on_io_error", "u32", True, "0 pass_on, 1 call-local-io-error, 2 detach."),
  (7, "fencing", "u32", True, "0 dont-care, 1 resource-only, 2 resource-and-stonith."),
  (8, "resync_rate", "u32", True, "KiB/s."),
  (9, "resync_after", "s32", True, "Minor to resync after, -1 = none."),
  (10, "al_extents", "u32", True, "Activity log extents."),
  (11, "c_plan_ahead", "u32", True, "0.1 s units."),
  (12, "c_delay_target", "u32", True, "0.1 s units."),
  (13, "c_fill_target", "u32", True, "Sectors."),
  (14, "c_max_rate", "u32", True, "KiB/s."),
  (15, "c_min_rate", "u32", True, "KiB/s."),
  (16, "disk_barrier", "flg", True, "Use barriers."),
  (17, "disk_flushes", "flg", True, "Use flushes."),
  (18, "disk_drain", "flg", True, "Use drain."),
  (19, "md_flushes", "flg", True, "Flush meta-data writes."),
  (20, "disk_timeout", "u32", True, "0.1 s units, 0 = off."),
  (21, "read_balancing", "u32", False, "Read balancing policy (0 prefer-local ...)."),
  (23, "al_updates", "flg", False, "Activity log updates."),
  (24, "discard_zeroes_if_aligned", "flg", False, "Discard zeroes if aligned."),
  (25, "rs_discard_granularity", "u32", False, "Bytes."),
  (26, "disable_write_same", "flg", False, "Disable WRITE SAME."),
 ]),
 (4, "ResourceOpts", "res_opts", "DRBD_NLA_RESOURCE_OPTS", "Resource options (`drbdsetup new-resource` / `resource-options`).", [
  (1, "cpu_mask", "str", True, "Hexadecimal CPU mask."),
  (2, "on_no_data", "u32", True, "0 io-error, 1 suspend-io."),
 ]),
 (5, "NetConf", "net_conf", "DRBD_NLA_NET_CONF", "Network options (`drbdsetup connect` / `net-options`).", [
  (1, "shared_secret", "str", True, "Shared secret (sensitive)."),
  (2, "cram_hmac_alg", "str", True, "Authentication digest, empty = none."),
  (3, "integrity_alg", "str", True, "Data integrity digest."),
  (4, "verify_alg", "str", True, "Online verify digest."),
  (5, "csums_alg", "str", True, "Checksum-based resync digest."),
  (6, "wire_protocol", "u32", True, "1 = A, 2 = B, 3 = C."),
  (7, "connect_int", "u32", True, "Seconds."),
  (8, "timeout", "u32", True, "0.1 s units."),
  (9, "ping_int", "u32", True, "Seconds."),
  (10, "ping_timeo", "u32", True, "0.1 s units."),
  (11, "sndbuf_size", "u32", True, "Bytes, 0 = auto."),
  (12, "rcvbuf_size", "u32", True, "Bytes, 0 = auto."),
  (13, "ko_count", "u32", True, "Knock-out count."),
  (14, "max_buffers", "u32", True, "Buffers."),
  (15, "max_epoch_size", "u32", True, "Writes per epoch."),
  (16, "unplug_watermark", "u32", True, "Requests."),
  (17, "after_sb_0p", "u32", True, "Split-brain policy, no primaries."),
  (18, "after_sb_1p", "u32", True, "Split-brain policy, one primary."),
  (19, "after_sb_2p", "u32", True, "Split-brain policy, two primaries."),
  (20, "rr_conflict", "u32", True, "Resync-role conflict policy."),
  (21, "on_congestion", "u32", True, "0 block, 1 pull-ahead, 2 disconnect."),
  (22, "cong_fill", "u32", True, "Sectors."),
  (23, "cong_extents", "u32", True, "Extents."),
  (24, "two_primaries", "flg", True, "Allow two primaries."),
  (25, "discard_my_data", "flg", True, "Discard local data on connect (invariant)."),
  (26, "tcp_cork", "flg", True, "Use TCP_CORK."),
  (27, "always_asbp", "flg", True, "Always use after-split-brain policies."),
  (28, "tentative", "flg", True, "Dry-run connect (invariant)."),
  (29, "use_rle", "flg", True, "Run-length encode the bitmap."),
  (33, "csums_after_crash_only", "flg", False, "Checksum resync only after a crash."),
  (34, "sock_check_timeo", "u32", False, "0.1 s units, 0 = ping_timeo."),
 ]),
 (6, "SetRoleParms", "set_role_parms", "DRBD_NLA_SET_ROLE_PARMS", "Parameters of PRIMARY.", [
  (1, "assume_uptodate", "flg", True, "`primary --force`."),
 ]),
 (7, "ResizeParms", "resize_parms", "DRBD_NLA_RESIZE_PARMS", "Parameters of RESIZE.", [
  (1, "resize_size", "u64", True, "Sectors, 0 = as large as possible."),
  (2, "resize_force", "flg", True, "`--assume-peer-has-space`."),
  (3, "no_resync", "flg", True, "`--assume-clean`."),
  (4, "al_stripes", "u32", False, "Activity log stripes."),
  (5, "al_stripe_size", "u32", False, "Activity log stripe size, KiB."),
 ]),
 (8, "StateInfo", "state_info", "DRBD_NLA_STATE_INFO", "Device state (GET_STATUS replies and DRBD_EVENT broadcasts).", [
  (1, "sib_reason", "u32", True, "Why the message was sent (see [`crate::SibReason`])."),
  (2, "current_state", "u32", False, "The 32-bit state word (see [`crate::State`])."),
  (3, "capacity", "u64", True, "Device size in sectors."),
  (4, "ed_uuid", "u64", True, "Exposed-data UUID."),
  (5, "prev_state", "u32", True, "State word before the change."),
  (6, "new_state", "u32", True, "State word after the change."),
  (7, "uuids", "bin", True, "4 x u64 UUIDs: current, bitmap, history 1, history 2."),
  (8, "disk_flags", "u32", True, "Meta-data flags (MDF_*)."),
  (9, "bits_total", "u64", True, "Bitmap bits (4 KiB each)."),
  (10, "bits_oos", "u64", True, "Out-of-sync bits."),
  (11, "bits_rs_total", "u64", True, "Bits to resync."),
  (12, "bits_rs_failed", "u64", True, "Bits that failed to resync."),
  (13, "helper", "str", True, "Usermode helper name."),
  (14, "helper_exit_code", "u32", True, "Raw helper result."),
  (15, "send_cnt", "u64", False, "Sectors sent."),
  (16, "recv_cnt", "u64", False, "Sectors received."),
  (17, "read_cnt", "u64", False, "Sectors read."),
  (18, "writ_cnt", "u64", False, "Sectors written."),
  (19, "al_writ_cnt", "u64", False, "Activity log writes."),
  (20, "bm_writ_cnt", "u64", False, "Bitmap writes."),
  (21, "ap_bio_cnt", "u32", False, "Application bios in flight."),
  (22, "ap_pending_cnt", "u32", False, "Application requests pending."),
  (23, "rs_pending_cnt", "u32", False, "Resync requests pending."),
 ]),
 (9, "StartOvParms", "start_ov_parms", "DRBD_NLA_START_OV_PARMS", "Parameters of START_OV.", [
  (1, "ov_start_sector", "u64", True, "First sector to verify."),
  (2, "ov_stop_sector", "u64", True, "Last sector to verify."),
 ]),
 (10, "NewCUuidParms", "new_c_uuid_parms", "DRBD_NLA_NEW_C_UUID_PARMS", "Parameters of NEW_C_UUID.", [
  (1, "clear_bm", "flg", True, "`--clear-bitmap`."),
 ]),
 (11, "TimeoutParms", "timeout_parms", "DRBD_NLA_TIMEOUT_PARMS", "Reply of GET_TIMEOUT_TYPE.", [
  (1, "timeout_type", "u32", False, "0 default, 1 degraded, 2 peer outdated."),
 ]),
 (12, "DisconnectParms", "disconnect_parms", "DRBD_NLA_DISCONNECT_PARMS", "Parameters of DISCONNECT.", [
  (1, "force_disconnect", "flg", True, "`disconnect --force`."),
 ]),
 (13, "DetachParms", "detach_parms", "DRBD_NLA_DETACH_PARMS", "Parameters of DETACH.", [
  (1, "force_detach", "flg", True, "`detach --force`."),
 ]),
 (15, "ResourceInfo", "resource_info", "DRBD_NLA_RESOURCE_INFO", "Resource state (events2, dumps).", [
  (1, "res_role", "u32", False, "Highest role of any volume."),
  (2, "res_susp", "flg", False, "I/O suspended by the user."),
  (3, "res_susp_nod", "flg", False, "I/O suspended, no data."),
  (4, "res_susp_fen", "flg", False, "I/O suspended for fencing."),
 ]),
 (16, "DeviceInfo", "device_info", "DRBD_NLA_DEVICE_INFO", "Device state (events2, dumps).", [
  (1, "dev_disk_state", "u32", False, "Local disk state."),
 ]),
 (17, "ConnectionInfo", "connection_info", "DRBD_NLA_CONNECTION_INFO", "Connection state (events2, dumps).", [
  (1, "conn_connection_state", "u32", False, "Connection state (`drbd_conns`)."),
  (2, "conn_role", "u32", False, "Peer role."),
 ]),
 (18, "PeerDeviceInfo", "peer_device_info", "DRBD_NLA_PEER_DEVICE_INFO", "Peer device state (events2, dumps).", [
  (1, "peer_repl_state", "u32", False, "Replication state."),
  (2, "peer_disk_state", "u32", False, "Peer disk state."),
  (3, "peer_resync_susp_user", "u32", False, "Resync paused by the user."),
  (4, "peer_resync_susp_peer", "u32", False, "Resync paused by the peer."),
  (5, "peer_resync_susp_dependency", "u32", False, "Resync paused by a dependency."),
 ]),
 (19, "ResourceStatistics", "resource_statistics", "DRBD_NLA_RESOURCE_STATISTICS", "Resource statistics.", [
  (1, "res_stat_write_ordering", "u32", False, "0 none, 1 drain, 2 flush, 3 barrier."),
 ]),
 (20, "DeviceStatistics", "device_statistics", "DRBD_NLA_DEVICE_STATISTICS", "Device statistics.", [
  (1, "dev_size", "u64", False, "Sectors."),
  (2, "dev_read", "u64", False, "Sectors read."),
  (3, "dev_write", "u64", False, "Sectors written."),
  (4, "dev_al_writes", "u64", False, "Activity log writes."),
  (5, "dev_bm_writes", "u64", False, "Bitmap writes."),
  (6, "dev_upper_pending", "u32", False, "Upper requests pending."),
  (7, "dev_lower_pending", "u32", False, "Lower requests pending."),
  (8, "dev_upper_blocked", "flg", False, "Upper I/O blocked."),
  (9, "dev_lower_blocked", "flg", False, "Lower I/O blocked."),
  (10, "dev_al_suspended", "flg", False, "Activity log suspended."),
  (11, "dev_exposed_data_uuid", "u64", False, "Exposed-data UUID."),
  (12, "dev_current_uuid", "u64", False, "Current UUID."),
  (13, "dev_disk_flags", "u32", False, "Meta-data flags."),
  (14, "history_uuids", "bin", False, "History UUIDs (u64 each)."),
 ]),
 (21, "ConnectionStatistics", "connection_statistics", "DRBD_NLA_CONNECTION_STATISTICS", "Connection statistics.", [
  (1, "conn_congested", "flg", False, "Connection congested."),
 ]),
 (22, "PeerDeviceStatistics", "peer_device_statistics", "DRBD_NLA_PEER_DEVICE_STATISTICS", "Peer device statistics.", [
  (1, "peer_dev_received", "u64", False, "Sectors received."),
  (2, "peer_dev_sent", "u64", False, "Sectors sent."),
  (3, "peer_dev_pending", "u32", False, "Requests pending."),
  (4, "peer_dev_unacked", "u32", False, "Requests unacknowledged."),
  (5, "peer_dev_out_of_sync", "u64", False, "Sectors out of sync."),
  (6, "peer_dev_resync_failed", "u64", False, "Sectors that failed to resync."),
  (7, "peer_dev_bitmap_uuid", "u64", False, "Bitmap UUID."),
  (9, "peer_dev_flags", "u32", False, "Flags."),
 ]),
 (23, "NotificationHeader", "drbd_notification_header", "DRBD_NLA_NOTIFICATION_HEADER", "events2 notification header.", [
  (1, "nh_type", "u32", False, "NOTIFY_* type, + 0x8000 NOTIFY_CONTINUES."),
 ]),
 (24, "Helper", "drbd_helper_info", "DRBD_NLA_HELPER", "Usermode helper call (events2).", [
  (1, "helper_name", "str", False, "Helper name."),
  (2, "helper_status", "u32", False, "Helper status."),
 ]),
]

RT = {"u32": "u32", "s32": "i32", "u64": "u64", "flg": "bool", "str": "String", "bin": "Vec<u8>"}

def camel(s):
    return "".join(p[:1].upper() + p[1:] for p in s.split("_"))

def generate(sets, enum="DrbdAttr", source="Linux v6.1 include/linux/drbd_genl.h (docs/drbd-genl.md §4)", title="The DRBD 8.4 attribute sets", gen="drbd-nl/gen/attrs.py"):
    """Returns the Rust source for `sets`; `enum` names the top-level attribute enum."""
    out = []
    w = out.append
    w(f"// @generated by {gen} from {source}. Do not edit by hand.")
    w(f"//! {title}: one enum per set, fields numbered as in `drbd_genl.h`.")
    w("")
    w("use netlink_packet_core::{")
    w("    emit_i32, emit_u32, emit_u64, parse_i32, parse_u32, parse_u64, DecodeError, DefaultNla,")
    w("    ErrorContext, Nla, NlaBuffer, Parseable,")
    w("};")
    w("")
    w("use crate::nla::{emit_str, field_kind, parse_flag, parse_str, Field};")
    w("")
    for (num, name, cname, tla, doc, fields) in sets:
        w(f"/// Fields of `struct {cname}`, carried in top-level attribute `{tla}` ({num}).")
        w("///")
        w(f"/// {doc}")
        w("#[derive(Debug, Clone, PartialEq, Eq)]")
        w("#[non_exhaustive]")
        w(f"pub enum {name} {{")
        for (n, f, t, m, d) in fields:
            w(f"    /// `{f}` ({n}{', M' if m else ''}): {d}")
            w(f"    {camel(f)}({RT[t]}),")
        w("    /// A field this crate does not know, kept as received (type bits included).")
        w("    Other(DefaultNla),")
        w("}")
        w("")
        for (n, f, t, m, d) in fields:
            w(f"const {f.upper()}: u16 = {n};")
        w("")
        w(f"impl Field for {name} {{")
        w("    fn mandatory(&self) -> bool {")
        ms = [camel(f) for (n, f, t, m, d) in fields if m]
        if ms:
            w("        matches!(self, " + " | ".join(f"Self::{v}(_)" for v in ms) + ")")
        else:
            w("        let _ = self;")
            w("        false")
        w("    }")
        w("}")
        w("")
        w(f"impl Nla for {name} {{")
        w("    fn value_len(&self) -> usize {")
        w("        match self {")
        for (n, f, t, m, d) in fields:
            v = camel(f)
            if t in ("u32", "s32"): w(f"            Self::{v}(_) => 4,")
            elif t == "u64": w(f"            Self::{v}(_) => 8,")
            elif t == "flg": w(f"            Self::{v}(_) => 1,")
            elif t == "str": w(f"            Self::{v}(v) => v.len() + 1,")
            elif t == "bin": w(f"            Self::{v}(v) => v.len(),")
        w("            Self::Other(nla) => nla.value_len(),")
        w("        }")
        w("    }")
        w("")
        w("    fn kind(&self) -> u16 {")
        w("        match self {")
        for (n, f, t, m, d) in fields:
            w(f"            Self::{camel(f)}(_) => {f.upper()},")
        w("            Self::Other(nla) => nla.kind(),")
        w("        }")
        w("    }")
        w("")
        w("    fn emit_value(&self, buffer: &mut [u8]) {")
        w("        // invariant: `buffer` is `value_len()` bytes long (netlink-packet-core sizes it).")
        w("        match self {")
        for (n, f, t, m, d) in fields:
            v = camel(f)
            if t == "u32": w(f"            Self::{v}(v) => {{ let _ = emit_u32(buffer, *v); }}")
            elif t == "s32": w(f"            Self::{v}(v) => {{ let _ = emit_i32(buffer, *v); }}")
            elif t == "u64": w(f"            Self::{v}(v) => {{ let _ = emit_u64(buffer, *v); }}")
            elif t == "flg": w(f"            Self::{v}(v) => {{ if let Some(b) = buffer.first_mut() {{ *b = u8::from(*v); }} }}")
            elif t == "str": w(f"            Self::{v}(v) => emit_str(buffer, v),")
            elif t == "bin": w(f"            Self::{v}(v) => {{ if let Some(dst) = buffer.get_mut(..v.len()) {{ dst.copy_from_slice(v); }} }}")
        w("            Self::Other(nla) => nla.emit_value(buffer),")
        w("        }")
        w("    }")
        w("}")
        w("")
        w(f"impl<'a, T: AsRef<[u8]> + ?Sized> Parseable<NlaBuffer<&'a T>> for {name} {{")
        w("    fn parse(buf: &NlaBuffer<&'a T>) -> Result<Self, DecodeError> {")
        w("        let payload = buf.value();")
        w("        Ok(match field_kind(buf) {")
        for (n, f, t, m, d) in fields:
            v = camel(f); ctx = f'"invalid {cname}.{f} value"'
            if t == "u32": e = f"parse_u32(payload).context({ctx})?"
            elif t == "s32": e = f"parse_i32(payload).context({ctx})?"
            elif t == "u64": e = f"parse_u64(payload).context({ctx})?"
            elif t == "flg": e = f"parse_flag(payload).context({ctx})?"
            elif t == "str": e = f"parse_str(payload).context({ctx})?"
            elif t == "bin": e = "payload.to_vec()"
            w(f"            {f.upper()} => Self::{v}({e}),")
        w(f"            _ => Self::Other(DefaultNla::parse(buf).context(\"invalid {cname} field\")?),")
        w("        })")
        w("    }")
        w("}")
        w("")

    # top-level attribute enum
    w("/// One top-level attribute (TLA) of a DRBD message: one attribute set.")
    w("///")
    w("/// Each set remembers whether it carried `NLA_F_NESTED` and bit 14, so kernel")
    w("/// messages re-emit byte for byte; sets built by hand get both (as requests need).")
    w("#[derive(Debug, Clone, PartialEq, Eq)]")
    w("#[non_exhaustive]")
    w(f"pub enum {enum} {{")
    for (num, name, cname, tla, doc, fields) in sets:
        w(f"    /// `{tla}` ({num}): `struct {cname}`.")
        w(f"    {name}(crate::AttrSet<{name}>),")
    w("    /// A top-level attribute this crate does not know (e.g. a DRBD 9 set), kept as received.")
    w("    Other(DefaultNla),")
    w("}")
    w("")
    for (num, name, cname, tla, doc, fields) in sets:
        w(f"const {tla}: u16 = {num};")
    w("")
    w(f"impl Nla for {enum} {{")
    w("    fn value_len(&self) -> usize {")
    w("        match self {")
    for s in sets: w(f"            Self::{s[1]}(set) => set.value_len(),")
    w("            Self::Other(nla) => nla.value_len(),")
    w("        }")
    w("    }")
    w("")
    w("    fn kind(&self) -> u16 {")
    w("        match self {")
    for s in sets: w(f"            Self::{s[1]}(set) => set.tla_kind({s[3]}),")
    w("            Self::Other(nla) => nla.kind(),")
    w("        }")
    w("    }")
    w("")
    w("    fn emit_value(&self, buffer: &mut [u8]) {")
    w("        match self {")
    for s in sets: w(f"            Self::{s[1]}(set) => set.emit_fields(buffer),")
    w("            Self::Other(nla) => nla.emit_value(buffer),")
    w("        }")
    w("    }")
    w("}")
    w("")
    w(f"impl<'a, T: AsRef<[u8]> + ?Sized> Parseable<NlaBuffer<&'a T>> for {enum} {{")
    w("    fn parse(buf: &NlaBuffer<&'a T>) -> Result<Self, DecodeError> {")
    w("        Ok(match buf.kind() {")
    for s in sets:
        w(f"            {s[3]} => Self::{s[1]}(crate::AttrSet::parse_tla(buf).context(\"invalid {s[3]}\")?),")
    w("            _ => Self::Other(DefaultNla::parse(buf).context(\"invalid DRBD top-level attribute\")?),")
    w("        })")
    w("    }")
    w("}")
    return "\n".join(out)

if __name__ == "__main__":
    print(generate(SETS))

