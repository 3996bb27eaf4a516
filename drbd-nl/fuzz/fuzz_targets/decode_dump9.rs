//! A DRBD 9 dump part as the status readers see it: genl header, DRBD 9 message, then every
//! typed object reader (resource, device with its data generations, connection with its net
//! options, peer device with its bitmap UUID, path): no panic on any bytes.
#![no_main]
use drbd_nl::v9::{Connection, Device, Drbd9Message, Path, PeerDevice, Resource};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (Some(cmd), Some(body)) = (data.first(), data.get(4..)) else {
        return;
    };
    if let Ok(msg) = Drbd9Message::parse_payload(*cmd, body) {
        let _ = format!("{:?}", Resource::from_message(&msg));
        let _ = format!("{:?}", Device::from_message(&msg));
        let _ = format!("{:?}", Connection::from_message(&msg));
        let _ = format!("{:?}", PeerDevice::from_message(&msg));
        let _ = format!("{:?}", Path::from_message(&msg));
    }
});
