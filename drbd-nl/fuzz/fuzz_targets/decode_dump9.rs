//! A DRBD 9 dump part as the status readers see it: genl header, DRBD 9 message, then every
//! typed object reader (resource, device with its data generations, connection with its net
//! options, peer device with its bitmap UUID, path): no panic on any bytes.
#![no_main]
use drbd_nl::v9::{decode_raw9, Connection, Device, Path, PeerDevice, Resource};
use drbd_nl::RawGenl;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let raw = RawGenl {
        message_type: 0x20,
        payload: data.to_vec(),
    };
    if let Ok(msg) = decode_raw9(&raw) {
        let _ = format!("{:?}", Resource::from_message(&msg));
        let _ = format!("{:?}", Device::from_message(&msg));
        let _ = format!("{:?}", Connection::from_message(&msg));
        let _ = format!("{:?}", PeerDevice::from_message(&msg));
        let _ = format!("{:?}", Path::from_message(&msg));
    }
});
