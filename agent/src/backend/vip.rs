//! [`Address`] over rtnetlink and packet sockets (crate `vip`): no `ip` or `arping` is run.
//!
//! [`Address::answered_elsewhere`] runs `vip`'s probe-only call (RFC 5227 ARP probes for IPv4,
//! NS from `::` for IPv6; like `arping -D -I IF ADDR`) before DRBD is promoted, so a promote is
//! refused while another host answers for the address. The claim probes once more right before
//! adding the address (the world may change while DRBD and the target come up); a conflict
//! there surfaces as a failed `address-claim` stage, which rolls the promotion back.
//!
//! [`Address::claim`] returns once `vip` has put the first announcement on the wire; the rest of
//! the schedule (`announce.count` announcements `announce.interval_ms` apart) runs in `vip`'s
//! background task, which a release (or the next claim) stops. A small task logs each result.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::Mutex;
use tracing::{debug, warn};
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

/// The probe policy of an address, `None` when probing is disabled in the config.
fn probe_policy(a: &AddressConfig) -> Option<ProbePolicy> {
    a.probe.enabled.then(|| {
        let mut p = ProbePolicy::default();
        p.window = Duration::from_millis(a.probe.timeout_ms);
        p
    })
}

fn options(a: &AddressConfig) -> ClaimOptions {
    let mut announce = AnnouncePolicy::default();
    announce.count = a.announce.count.max(1);
    announce.interval = Duration::from_millis(a.announce.interval_ms);
    ClaimOptions::default()
        .probe(probe_policy(a))
        .announce(announce)
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

    /// Probes the link (`vip::Vip::probe`, like `arping -D -I IF ADDR`) for the configured
    /// probe window. An address held on this node's interface is not "elsewhere": `false`
    /// without probing. With `probe.enabled = false` in the config this answers `false` without
    /// sending anything (the executor skips the check then anyway). The address held on another
    /// interface of this host, or the interface down/missing, is an error, which refuses the
    /// promote with that reason.
    async fn answered_elsewhere(&self, a: &AddressConfig) -> Result<bool, BackendError> {
        let Some(policy) = probe_policy(a) else {
            return Ok(false);
        };
        let mut v = self.vip(a)?.lock().await;
        if v.is_held().await.map_err(err)? {
            return Ok(false);
        }
        let r = v.probe(&policy).await.map_err(err)?;
        if let Some(mac) = r.conflict {
            crate::metrics::ADDRESS_EVENTS.conflict(&a.address);
            warn!(address = %a.address, interface = %a.interface, %mac, "another host answers for the address");
        }
        Ok(r.conflict.is_some())
    }

    async fn claim(&self, a: &AddressConfig) -> Result<(), BackendError> {
        let opts = options(a);
        let report = self.vip(a)?.lock().await.claim(&opts).await;
        if let Err(VipError::Conflict { .. }) = &report {
            crate::metrics::ADDRESS_EVENTS.conflict(&a.address);
        }
        let report = report.map_err(err)?;
        // The remaining announcements are vip's background task (held by the Vip, stopped by
        // release); only log their results here. The stream ends when that task does.
        let mut announcements = report.announcements;
        let address = a.address.clone();
        tokio::spawn(async move {
            while let Some(r) = announcements.next().await {
                crate::metrics::ADDRESS_EVENTS.announcement(&address, r.result.is_ok());
                match r.result {
                    Ok(()) => debug!(%address, burst = r.burst, index = r.index, kind = ?r.kind,
                        at_ms = r.at.as_millis() as u64, "announcement sent"),
                    Err(e) => warn!(%address, burst = r.burst, index = r.index, kind = ?r.kind,
                        at_ms = r.at.as_millis() as u64, error = %e, "announcement failed"),
                }
            }
        });
        Ok(())
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
