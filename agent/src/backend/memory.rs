//! In-memory backends with fault injection, for tests of the executor and the daemon loop.
//!
//! One [`Memory`] value implements [`Drbd`], [`Target`] and [`Address`] over a shared
//! [`World`]. It models the constraints of the real subsystems that make order matter:
//! DRBD refuses Primary while the peer is Primary or the local disk is not UpToDate, and refuses
//! Secondary while the device is held open by a target; tgtd cannot open the device of a
//! Secondary; an address another host answers for cannot be claimed. Faults injected "from
//! outside" (peer promoted, disk failed, tgtd restarted empty, address removed by hand) also
//! send the [`Event`] the real watch would send.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

use drbd_nl::{DrbdError, StateRv};
use tokio::sync::mpsc::UnboundedSender;

use super::{Address, Drbd, Target};
use crate::config::{Address as AddressConfig, Config, Resource};
use crate::error::BackendError;
use crate::fsm::{Connection, Disk, DrbdView, Event, Role, Stage, TargetState, TargetView};

/// The simulated world.
#[derive(Debug, Clone, Default)]
pub struct World {
    /// DRBD resources by name.
    pub drbd: BTreeMap<String, DrbdView>,
    /// Targets by resource name.
    pub targets: BTreeMap<String, TargetView>,
    /// Addresses held on this node.
    pub addresses: BTreeMap<String, bool>,
    /// Addresses another host answers for.
    pub answered_elsewhere: BTreeSet<String>,
    /// The peer's answer to a handover ([`Address::hand_over`]): `Some(n)` acknowledges with
    /// `n` connections, `None` (the default) is a silent peer.
    pub handover: Option<usize>,
    /// No peer link at all (`--simulate`): a handover says so rather than "did not acknowledge".
    pub no_peer_link: bool,
    /// Every handover asked, by the addresses' IPs.
    pub handovers: Vec<Vec<std::net::IpAddr>>,
    /// The addresses a planned demote told the peer it released (`Address::tell_released`).
    pub released: Vec<String>,
    /// Fail the N-th mutating call (1-based), counting from the last reset.
    pub fail_at_call: Option<usize>,
    /// Fail every call of this stage on this object.
    pub fail_stage: Option<(Stage, String)>,
    /// The next this many reads of an address fail (a netlink answer later than its
    /// timeout): observations fail meanwhile.
    pub fail_reads: usize,
    /// Each [`Address::claim_near`]: the address and how many calls `log` had then.
    pub claims_near: Vec<(String, usize)>,
    /// Mutating calls so far.
    pub calls: usize,
    /// Every call, as `stage object`, in order (status reads excluded).
    pub log: Vec<String>,
    /// A mutating call, named as in `log` (`stage object`), takes this long (tokio time)
    /// before it acts and is logged: a slow subsystem, to show what runs concurrently.
    pub delays: BTreeMap<String, std::time::Duration>,
    /// Data generations by resource name ([`Drbd::generations`]); a resource without them
    /// answers as a backend without any.
    pub generations: BTreeMap<String, super::Generations>,
    /// Reads of data generations so far (they are read only when something needs them).
    pub generation_reads: usize,
}

/// The in-memory backends (cheap to clone; clones share the world).
#[derive(Debug, Clone)]
pub struct Memory {
    world: Arc<Mutex<World>>,
    events: Option<UnboundedSender<Event>>,
}

impl Memory {
    /// A world where every configured resource is up, Secondary/Secondary, Connected,
    /// UpToDate/UpToDate, no target, no address held.
    pub fn healthy_secondary(config: &Config) -> Memory {
        let mut w = World::default();
        for r in &config.resources {
            w.drbd.insert(r.name.clone(), DrbdView::healthy_secondary());
            w.targets.insert(r.name.clone(), TargetView::default());
        }
        for a in &config.addresses {
            w.addresses.insert(a.address.to_string(), false);
        }
        Memory {
            world: Arc::new(Mutex::new(w)),
            events: None,
        }
    }

    /// Send external changes as events on this channel.
    pub fn with_events(mut self, tx: UnboundedSender<Event>) -> Memory {
        self.events = Some(tx);
        self
    }

    /// Lock the world for inspection or setup.
    pub fn world(&self) -> MutexGuard<'_, World> {
        // A poisoned lock only means a test panicked while holding it; the data is still usable.
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn emit(&self, ev: Event) {
        if let Some(tx) = &self.events {
            let _ = tx.send(ev);
        }
    }

    /// An address added or removed by our own step, reported as the kernel does
    /// (`RTM_NEWADDR` / `RTM_DELADDR` to the watch), when it changed.
    fn reported(&self, address: String, was: Option<bool>, held: bool) {
        if was != Some(held) {
            self.emit(Event::Address { address, held });
        }
    }

    /// Applies `change` to the DRBD view of `res` (if there is one) and emits the new view.
    fn change_drbd(&self, res: &str, change: impl FnOnce(&mut DrbdView)) {
        let view = {
            let mut w = self.world();
            let Some(d) = w.drbd.get_mut(res) else { return };
            change(d);
            d.clone()
        };
        self.emit(Event::Drbd {
            resource: res.into(),
            view,
        });
    }

    /// The peer becomes Primary (someone else promoted it).
    pub fn peer_primary(&self, res: &str, on: bool) {
        self.change_drbd(res, |d| {
            d.peer_role = if on { Role::Primary } else { Role::Secondary };
        });
    }

    /// The peer is lost: connection WFConnection, peer role and disk unknown.
    pub fn peer_lost(&self, res: &str) {
        self.change_drbd(res, |d| {
            d.peer_role = Role::Unknown;
            d.peer_disk = Disk::DUnknown;
            d.connection = Connection::WFConnection;
        });
    }

    /// The local disk changes state (e.g. `Failed` after an I/O error).
    pub fn set_disk(&self, res: &str, disk: Disk) {
        self.change_drbd(res, |d| {
            d.disk = disk;
        });
    }

    /// Someone else changes the local DRBD role (e.g. `drbdadm secondary` by hand).
    pub fn set_role(&self, res: &str, role: Role) {
        self.change_drbd(res, |d| {
            d.role = role;
        });
    }

    /// tgtd dies and comes back empty (as its service manager restarts it).
    pub fn tgtd_restarted(&self) {
        let names: Vec<String> = {
            let mut w = self.world();
            for t in w.targets.values_mut() {
                *t = TargetView::default();
            }
            w.targets.keys().cloned().collect()
        };
        for n in names {
            self.emit(Event::Target {
                resource: n,
                view: TargetView::default(),
            });
        }
    }

    /// An address is removed by hand (`ip addr del`).
    pub fn address_removed(&self, addr: &str) {
        self.world().addresses.insert(addr.into(), false);
        self.emit(Event::Address {
            address: addr.into(),
            held: false,
        });
    }

    /// Waits for the call's [`World::delays`] entry, then [`Memory::call`].
    async fn slow_call(
        &self,
        stage: Stage,
        object: &str,
    ) -> Result<MutexGuard<'_, World>, BackendError> {
        let delay = self
            .world()
            .delays
            .get(&format!("{stage} {object}"))
            .copied();
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
        }
        self.call(stage, object)
    }

    fn call(&self, stage: Stage, object: &str) -> Result<MutexGuard<'_, World>, BackendError> {
        let mut w = self.world();
        w.calls += 1;
        w.log.push(format!("{stage} {object}"));
        if w.fail_at_call == Some(w.calls) {
            return Err(BackendError::Failed(format!(
                "injected failure at call {}",
                w.calls
            )));
        }
        if let Some((s, o)) = &w.fail_stage {
            if *s == stage && o == object {
                return Err(BackendError::Failed(format!(
                    "injected failure of {stage} {object}"
                )));
            }
        }
        Ok(w)
    }
}

/// DRBD's refusal of a state change, as the kernel backend reports it.
fn state_change(res: &Resource, code: StateRv) -> DrbdError {
    DrbdError::StateChange {
        context: format!("primary {}", res.minor),
        code,
        info_text: None,
    }
}

fn missing(what: &str) -> BackendError {
    BackendError::Failed(format!("{what}: no such object"))
}

impl Drbd for Memory {
    async fn status(&self, res: &Resource) -> Result<DrbdView, BackendError> {
        Ok(self
            .world()
            .drbd
            .get(&res.name)
            .cloned()
            .unwrap_or_default())
    }

    async fn up(&self, res: &Resource) -> Result<(), BackendError> {
        let mut w = self.slow_call(Stage::DrbdUp, &res.name).await?;
        let d = w.drbd.entry(res.name.clone()).or_default();
        if !d.up || d.half_up() {
            *d = DrbdView::healthy_secondary();
        }
        Ok(())
    }

    async fn primary(&self, res: &Resource, force: bool) -> Result<(), BackendError> {
        let stage = if force {
            Stage::DrbdPrimaryForce
        } else {
            Stage::DrbdPrimary
        };
        let mut w = self.slow_call(stage, &res.name).await?;
        let d = w
            .drbd
            .get_mut(&res.name)
            .ok_or_else(|| missing(&res.name))?;
        if d.role == Role::Primary {
            return Ok(());
        }
        if d.peer_role == Role::Primary {
            return Err(BackendError::PeerPrimary(state_change(
                res,
                StateRv::TwoPrimaries,
            )));
        }
        if force && matches!(d.disk, Disk::Consistent | Disk::Outdated) {
            d.disk = Disk::UpToDate;
        }
        if d.disk != Disk::UpToDate {
            return Err(state_change(res, StateRv::NoUpToDateDisk).into());
        }
        // DRBD's fencing without a fence-peer handler (`is_valid_state`: SS_PRIMARY_NOP).
        if !force
            && d.fencing.keeps_stale_disk_consistent()
            && !d.connection.handshaken()
            && matches!(
                d.peer_disk,
                Disk::DUnknown | Disk::Consistent | Disk::UpToDate
            )
        {
            return Err(state_change(res, StateRv::PrimaryNop).into());
        }
        if force && !d.connection.handshaken() {
            // "Forced into split brain situation!": DRBD records the peer Outdated.
            d.peer_disk = Disk::Outdated;
        }
        d.role = Role::Primary;
        Ok(())
    }

    async fn generations(&self, res: &Resource) -> Result<super::Generations, BackendError> {
        let mut w = self.world();
        w.generation_reads += 1;
        let g = w.generations.get(&res.name).cloned();
        g.ok_or_else(|| BackendError::Unavailable("no data generations here".into()))
    }

    async fn secondary(&self, res: &Resource) -> Result<(), BackendError> {
        let mut w = self.slow_call(Stage::DrbdSecondary, &res.name).await?;
        let open = w
            .targets
            .get(&res.name)
            .is_some_and(|t| t.state != TargetState::Absent);
        let d = w
            .drbd
            .get_mut(&res.name)
            .ok_or_else(|| missing(&res.name))?;
        if d.role != Role::Primary {
            return Ok(());
        }
        if open {
            return Err(BackendError::Failed(
                "State change failed: (-12) Device is held open by someone".into(),
            ));
        }
        d.role = Role::Secondary;
        Ok(())
    }
}

impl Target for Memory {
    async fn status(&self, res: &Resource) -> Result<TargetView, BackendError> {
        Ok(self
            .world()
            .targets
            .get(&res.name)
            .copied()
            .unwrap_or_default())
    }

    async fn serve(&self, res: &Resource) -> Result<(), BackendError> {
        let mut w = self.slow_call(Stage::TargetServe, &res.name).await?;
        let primary = w
            .drbd
            .get(&res.name)
            .is_some_and(|d| d.role == Role::Primary);
        if !primary {
            return Err(BackendError::Failed(
                "can't open the backing store: Wrong medium type (DRBD is Secondary)".into(),
            ));
        }
        let t = w.targets.entry(res.name.clone()).or_default();
        t.state = TargetState::Serving;
        Ok(())
    }

    async fn offline(&self, res: &Resource) -> Result<(), BackendError> {
        let mut w = self.slow_call(Stage::TargetOffline, &res.name).await?;
        let t = w.targets.entry(res.name.clone()).or_default();
        if t.state != TargetState::Absent {
            t.state = TargetState::Offline;
            t.sessions = 0;
        }
        Ok(())
    }

    /// As `offline`, the sessions kept (logged as `target-offline`).
    async fn refuse_logins(&self, res: &Resource) -> Result<(), BackendError> {
        let mut w = self.slow_call(Stage::TargetOffline, &res.name).await?;
        let t = w.targets.entry(res.name.clone()).or_default();
        if t.state != TargetState::Absent {
            t.state = TargetState::Offline;
        }
        Ok(())
    }

    async fn remove(&self, res: &Resource) -> Result<(), BackendError> {
        let mut w = self.slow_call(Stage::TargetRemove, &res.name).await?;
        w.targets.insert(res.name.clone(), TargetView::default());
        Ok(())
    }
}

impl Address for Memory {
    async fn held(&self, addr: &AddressConfig) -> Result<bool, BackendError> {
        let mut w = self.world();
        if w.fail_reads > 0 {
            w.fail_reads -= 1;
            return Err(BackendError::Failed("injected read failure".into()));
        }
        Ok(w.addresses
            .get(&addr.address.to_string())
            .copied()
            .unwrap_or(false))
    }

    async fn answered_elsewhere(&self, addr: &AddressConfig) -> Result<bool, BackendError> {
        let name = addr.address.to_string();
        let w = self.slow_call(Stage::ProbeAddress, &name).await?;
        Ok(w.answered_elsewhere.contains(&name))
    }

    /// The probe is one call (as `answered_elsewhere`); its verdict is read later, uncounted.
    async fn start_probe(&self, addr: &AddressConfig) -> Result<(), BackendError> {
        self.slow_call(Stage::ProbeAddress, &addr.address.to_string())
            .await
            .map(|_| ())
    }

    async fn probe_conflict(&self, addr: &AddressConfig) -> Result<bool, BackendError> {
        let name = addr.address.to_string();
        Ok(self.world().answered_elsewhere.contains(&name))
    }

    async fn claim(&self, addr: &AddressConfig) -> Result<(), BackendError> {
        let name = addr.address.to_string();
        let mut w = self.slow_call(Stage::AddressClaim, &name).await?;
        if w.answered_elsewhere.contains(&name) {
            return Err(BackendError::Refused(format!(
                "another host answers for {name}"
            )));
        }
        let was = w.addresses.insert(name.clone(), true);
        drop(w);
        self.reported(name, was, true);
        Ok(())
    }

    async fn release(&self, addr: &AddressConfig) -> Result<(), BackendError> {
        let name = addr.address.to_string();
        let mut w = self.slow_call(Stage::AddressRelease, &name).await?;
        let was = w.addresses.insert(name.clone(), false);
        drop(w);
        self.reported(name, was, false);
        Ok(())
    }

    /// Noted in [`World::released`] (not counted or logged as a mutating call).
    async fn tell_released(&self, addr: &AddressConfig) {
        self.world().released.push(addr.address.to_string());
    }

    /// Not a mutating call (not counted or logged): recorded in [`World::claims_near`].
    async fn claim_near(&self, addr: &AddressConfig) {
        let mut w = self.world();
        let at = w.log.len();
        w.claims_near.push((addr.address.to_string(), at));
    }

    /// Not a mutating call (not counted or logged): answered from [`World::handover`].
    async fn hand_over(&self, ips: Vec<std::net::IpAddr>) -> Result<usize, String> {
        let mut w = self.world();
        w.handovers.push(ips);
        if w.no_peer_link {
            return Err("no peer link (in-memory backends)".into());
        }
        w.handover
            .ok_or_else(|| "the peer did not acknowledge".to_string())
    }
}
