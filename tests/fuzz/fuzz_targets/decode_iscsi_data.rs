//! Fuzzes the decoders of what an iSCSI target sends back to the lab's client: MODE SENSE(6)
//! and (10) parameter data (caching page) and ledger blocks read back by `iscsi-ledger`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = lab::iscsi::parse_caching_page(data, false);
    let _ = lab::iscsi::parse_caching_page(data, true);
    let _ = lab::ledger::decode(data);
    let mut l = lab::ledger::Ledger::new(1, 0, 4, 100.0);
    l.acked(1);
    let mut v = lab::ledger::Verify::default();
    l.check(0, data, &mut v);
});
