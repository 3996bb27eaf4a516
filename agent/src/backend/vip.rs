//! [`Address`] over rtnetlink and packet sockets (crate `vip`): no `ip` or `arping` is run.
//!
//! One probe per promote: [`Address::start_probe`] starts `vip`'s probe (RFC 5227 ARP probes
//! for IPv4, NS from `::` for IPv6; like `arping -D -I IF ADDR`) in the background while DRBD
//! and the target come up; its socket keeps listening until [`Address::claim`], which waits for
//! the window and refuses if anyone answered for the address at any time since the first probe
//! (`vip::Vip::claim_probed`), without probing again. A conflict there surfaces as a failed
//! `address-claim` stage, which rolls the promotion back; the executor also asks for the verdict
//! ([`Address::probe_conflict`]) before DRBD is promoted without a connected Secondary peer.
//! A probe older than [`PROBE_MAX_AGE`] is not trusted: the claim probes again.
//!
//! [`Address::claim`] returns once `vip` has put the first announcement on the wire; the rest of
//! the schedule (`announce.count` announcements `announce.interval_ms` apart) runs in `vip`'s
//! background task, which a release (or the next claim) stops; while the address is held it
//! follows the link (a fresh schedule when the link comes back or the MAC changes, every frame
//! with the current MAC). A small task logs each result.
//!
//! An address whose link is down (no `IFF_UP` or no carrier) is not claimed: the watch reports
//! the link as [`Event::Link`] and the state machine claims it when the link is back
//! (docs/takeover.md).

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use ipnet::IpNet;
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::Mutex;
use tracing::{debug, warn};
use vip::{AnnouncePolicy, ClaimOptions, ProbePolicy, ProbeSession, Vip, VipError, VipEvent};

use super::Address;
use crate::config::{Address as AddressConfig, Config};
use crate::error::BackendError;
use crate::fsm::Event;

/// The floating addresses of a config.
#[derive(Debug)]
pub struct NetlinkAddress {
    vips: BTreeMap<IpNet, Mutex<Vip>>,
    /// The probe started for each address, until its claim (or release).
    probes: BTreeMap<IpNet, Mutex<Option<ProbeSession>>>,
}

/// A started probe older than this is dropped and the claim probes again (a promote takes
/// well under a second; the probe's socket buffer is not meant to cover minutes).
pub const PROBE_MAX_AGE: Duration = Duration::from_secs(10);

fn err(e: VipError) -> BackendError {
    BackendError::Vip(e)
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
            let (ip, prefix) = (a.address.addr(), a.address.prefix_len());
            let v = Vip::new(a.interface.clone(), ip, prefix).map_err(err)?;
            vips.insert(a.address, Mutex::new(v));
        }
        let probes = config
            .addresses
            .iter()
            .map(|a| (a.address, Mutex::new(None)))
            .collect();
        Ok(NetlinkAddress { vips, probes })
    }

    fn probe_slot(&self, a: &AddressConfig) -> Result<&Mutex<Option<ProbeSession>>, BackendError> {
        self.probes
            .get(&a.address)
            .ok_or_else(|| BackendError::Failed(format!("{} is not configured", a.address)))
    }

    /// The started probe of `a`, unless it is too old to trust.
    async fn take_probe(&self, a: &AddressConfig) -> Result<Option<ProbeSession>, BackendError> {
        let s = self.probe_slot(a)?.lock().await.take();
        Ok(s.filter(|s| s.started().elapsed() < PROBE_MAX_AGE))
    }

    fn vip(&self, a: &AddressConfig) -> Result<&Mutex<Vip>, BackendError> {
        self.vips
            .get(&a.address)
            .ok_or_else(|| BackendError::Failed(format!("{} is not configured", a.address)))
    }

    /// Report additions and removals of every address as [`Event::Address`] and its link going
    /// down or coming back as [`Event::Link`] (equivalent to `ip monitor link address`): the
    /// state machine restores an address removed by hand and claims one that waited for its
    /// link. A held address's announcements follow the link inside `vip` (a fresh burst when
    /// it comes back or its MAC changes).
    pub async fn watch(&self, tx: UnboundedSender<Event>) -> Result<(), BackendError> {
        let mut streams = Vec::new();
        for (&net, v) in &self.vips {
            let w = v.lock().await.watch().await.map_err(err)?;
            streams.push(w.map(move |ev| (net, ev)));
        }
        let mut all = futures::stream::select_all(streams);
        while let Some((net, ev)) = all.next().await {
            // Events name the address in its canonical spelling, as plans and status do.
            let address = net.to_string();
            let held = match ev {
                VipEvent::Added => true,
                VipEvent::Removed => false,
                // The address itself is reported by its own events (a re-read here could be
                // older than a claim that follows it).
                VipEvent::LinkDown | VipEvent::LinkUp => {
                    let up = ev == VipEvent::LinkUp;
                    debug!(%address, up, "address link");
                    if tx.send(Event::Link { address, up }).is_err() {
                        return Ok(());
                    }
                    continue;
                }
                // A lost burst (overrun): read the truth again.
                VipEvent::Overrun => {
                    let Some(v) = self.vips.get(&net) else {
                        continue;
                    };
                    let v = v.lock().await;
                    match (v.is_held().await, v.link_up().await) {
                        (Ok(held), Ok(up)) => {
                            let link = Event::Link {
                                address: address.clone(),
                                up,
                            };
                            if tx.send(link).is_err() {
                                return Ok(());
                            }
                            held
                        }
                        (Err(e), _) | (_, Err(e)) => {
                            warn!(%address, error = %e, "address check after watch event");
                            continue;
                        }
                    }
                }
                // A MAC change is vip's to announce.
                _ => continue,
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
    async fn link_up(&self, a: &AddressConfig) -> Result<bool, BackendError> {
        self.vip(a)?.lock().await.link_up().await.map_err(err)
    }

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
            crate::metrics::ADDRESS_EVENTS.conflict(&a.address.to_string());
            warn!(address = %a.address, interface = %a.interface, %mac, "another host answers for the address");
        }
        Ok(r.conflict.is_some())
    }

    async fn start_probe(&self, a: &AddressConfig) -> Result<(), BackendError> {
        let Some(policy) = probe_policy(a) else {
            return Ok(());
        };
        let mut v = self.vip(a)?.lock().await;
        if v.is_held().await.map_err(err)? {
            return Ok(());
        }
        let session = v.start_probe(&policy).await.map_err(err)?;
        *self.probe_slot(a)?.lock().await = Some(session);
        Ok(())
    }

    async fn probe_conflict(&self, a: &AddressConfig) -> Result<bool, BackendError> {
        let mut slot = self.probe_slot(a)?.lock().await;
        match slot.as_mut() {
            Some(s) if s.started().elapsed() < PROBE_MAX_AGE => {
                let other = s.conflict().await.map_err(err)?;
                if let Some(mac) = other {
                    crate::metrics::ADDRESS_EVENTS.conflict(&a.address.to_string());
                    warn!(address = %a.address, interface = %a.interface, %mac, "another host answers for the address");
                }
                Ok(other.is_some())
            }
            _ => {
                *slot = None;
                drop(slot);
                self.answered_elsewhere(a).await
            }
        }
    }

    async fn claim(&self, a: &AddressConfig) -> Result<(), BackendError> {
        let opts = options(a);
        let probe = self.take_probe(a).await?;
        let mut v = self.vip(a)?.lock().await;
        let report = match probe {
            Some(p) => v.claim_probed(p, &opts).await,
            None => v.claim(&opts).await,
        };
        // Held already while its link is down (an address event older than the claim): it
        // stays, and its running schedule announces it when the link comes back.
        if let Err(VipError::InterfaceDown { .. }) = &report {
            if v.is_held().await.unwrap_or(false) {
                return Ok(());
            }
        }
        drop(v);
        let report = match report {
            // Nothing added: a refusal (the promote is undone and the node is where it was).
            Err(e @ VipError::Conflict { .. }) => {
                crate::metrics::ADDRESS_EVENTS.conflict(&a.address.to_string());
                return Err(BackendError::Vip(e));
            }
            r => r.map_err(err)?,
        };
        // The remaining announcements are vip's background task (held by the Vip, stopped by
        // release); only log their results here. The stream ends when that task does.
        let mut announcements = report.announcements;
        let address = a.address.to_string();
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
        self.take_probe(a).await?;
        self.vip(a)?
            .lock()
            .await
            .release()
            .await
            .map(|_| ())
            .map_err(err)
    }
}
