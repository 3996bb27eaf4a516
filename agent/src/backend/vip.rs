//! [`Address`] over rtnetlink and packet sockets (crate `vip`): no `ip` or `arping` is run.
//!
//! `vip` probes inside its claim (RFC 5227), so [`Address::answered_elsewhere`] answers `false`
//! here and a conflict surfaces as a failed `address-claim` stage, which rolls the promotion back.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::Mutex;
use tracing::warn;
use vip::{AnnouncePolicy, ClaimOptions, ProbePolicy, Vip, VipError, VipEvent};

use super::Address;
use crate::config::{Address as AddressConfig, Config};
use crate::error::BackendError;
use crate::fsm::Event;

/// The floating addresses of a config.
#[derive(Debug)]
pub struct NetlinkAddress {
    vips: BTreeMap<String, Mutex<Vip>>,
}

fn err(e: VipError) -> BackendError {
    BackendError::Failed(e.to_string())
}

fn options(a: &AddressConfig) -> ClaimOptions {
    let mut announce = AnnouncePolicy::default();
    announce.count = a.announce.count.max(1);
    announce.interval = Duration::from_millis(a.announce.interval_ms);
    let probe = a.probe.enabled.then(|| {
        let mut p = ProbePolicy::default();
        p.window = Duration::from_millis(a.probe.timeout_ms);
        p
    });
    ClaimOptions::default().probe(probe).announce(announce)
}

impl NetlinkAddress {
    /// One handle per configured address. Must run inside a tokio runtime.
    pub fn new(config: &Config) -> Result<NetlinkAddress, BackendError> {
        let mut vips = BTreeMap::new();
        for a in &config.addresses {
            let (ip, prefix) = a
                .parsed()
                .ok_or_else(|| BackendError::Failed(format!("bad address {}", a.address)))?;
            let v = Vip::new(a.interface.clone(), ip, prefix).map_err(err)?;
            vips.insert(a.address.clone(), Mutex::new(v));
        }
        Ok(NetlinkAddress { vips })
    }

    fn vip(&self, a: &AddressConfig) -> Result<&Mutex<Vip>, BackendError> {
        self.vips
            .get(&a.address)
            .ok_or_else(|| BackendError::Failed(format!("{} is not configured", a.address)))
    }

    /// Report additions and removals of every address as [`Event::Address`] (equivalent to
    /// `ip monitor address`); the state machine restores an address removed by hand.
    pub async fn watch(&self, tx: UnboundedSender<Event>) -> Result<(), BackendError> {
        let mut streams = Vec::new();
        for (name, v) in &self.vips {
            let w = v.lock().await.watch().await.map_err(err)?;
            let name = name.clone();
            streams.push(w.map(move |ev| (name.clone(), ev)));
        }
        let mut all = futures::stream::select_all(streams);
        while let Some((address, ev)) = all.next().await {
            let held = match ev {
                VipEvent::Added => true,
                VipEvent::Removed => false,
                // Link changes, a lost burst (overrun): read the truth again.
                _ => match self.vips.get(&address) {
                    Some(v) => match v.lock().await.is_held().await {
                        Ok(h) => h,
                        Err(e) => {
                            warn!(%address, error = %e, "address check after watch event");
                            continue;
                        }
                    },
                    None => continue,
                },
            };
            if tx.send(Event::Address { address, held }).is_err() {
                return Ok(());
            }
        }
        warn!("address watch ended");
        Err(BackendError::Unavailable("address watch ended".into()))
    }
}

impl Address for NetlinkAddress {
    async fn held(&self, a: &AddressConfig) -> Result<bool, BackendError> {
        self.vip(a)?.lock().await.is_held().await.map_err(err)
    }

    async fn answered_elsewhere(&self, _a: &AddressConfig) -> Result<bool, BackendError> {
        Ok(false)
    }

    async fn claim(&self, a: &AddressConfig) -> Result<(), BackendError> {
        let opts = options(a);
        self.vip(a)?
            .lock()
            .await
            .claim(&opts)
            .await
            .map(|_| ())
            .map_err(err)
    }

    async fn release(&self, a: &AddressConfig) -> Result<(), BackendError> {
        self.vip(a)?
            .lock()
            .await
            .release()
            .await
            .map(|_| ())
            .map_err(err)
    }
}
