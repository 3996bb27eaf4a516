//! The Prometheus endpoint (`[metrics] listen = "ip:port"`, off by default): `GET /metrics`
//! answers the OpenMetrics text format (`prometheus-client`), which Prometheus scrapes as is.
//!
//! Everything but DRBD's out-of-sync count is kept up to date by [`MetricsMonitor`], a
//! [`Monitor`] of the daemon's loop; the out-of-sync count is read from DRBD at each scrape (it
//! changes without events). Announcements and probe conflicts are counted where the address
//! backend sees them ([`ADDRESS_EVENTS`]). State-valued facts (DRBD role, connection, disk,
//! target state, authority) are one gauge per possible value, 1 for the current one.
//!
//! Gauges of a resource or an address are there while it is in the status (the running
//! config): a reload that removes one removes its series, each gone at once (the others keep
//! theirs throughout, a scrape meanwhile sees no gap). Counters and histograms keep every
//! series: they are cumulative.

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Method, Request, Response, StatusCode};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tracing::debug;

use crate::backend::{ConfigFeed, Drbd};
use crate::config::Config;
use crate::daemon::Handled;
use crate::fsm::{Action, Authority, State};
use crate::monitor::Monitor;
use crate::status::Status;
use crate::BackendError;

/// Label pairs of one series.
type Labels = Vec<(&'static str, String)>;
/// A gauge that holds a float (seconds since the epoch).
type FloatGauge = Gauge<f64, std::sync::atomic::AtomicU64>;
/// Histograms of durations in seconds.
type Seconds = Family<Labels, Histogram, fn() -> Histogram>;

/// The `Content-Type` of the answer (OpenMetrics text 1.0.0, understood by Prometheus 2 and 3).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

const ROLES: [&str; 3] = ["Primary", "Secondary", "Unknown"];
const DISKS: [&str; 9] = [
    "Diskless",
    "Attaching",
    "Failed",
    "Negotiating",
    "Inconsistent",
    "Outdated",
    "DUnknown",
    "Consistent",
    "UpToDate",
];
const CONNECTIONS: [&str; 4] = ["StandAlone", "WFConnection", "Connected", "Unknown"];
const TARGET_STATES: [&str; 4] = ["Absent", "Partial", "Serving", "Offline"];
const AUTHORITIES: [&str; 3] = ["primary", "secondary", "unknown"];

fn seconds() -> Histogram {
    // 0.5 ms .. ~33 s
    Histogram::new(exponential_buckets(0.0005, 2.0, 17))
}

fn labels(pairs: &[(&'static str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (*k, v.to_string())).collect()
}

/// Counters the address backend bumps (announcements run in the background, probes inside a
/// step), registered with every [`Metrics`].
#[derive(Debug, Default)]
pub struct AddressEvents {
    announcements: Family<Labels, Counter>,
    conflicts: Family<Labels, Counter>,
}

impl AddressEvents {
    /// One gratuitous ARP / unsolicited NA put on the wire (`ok`) or not.
    pub fn announcement(&self, address: &str, ok: bool) {
        let result = if ok { "sent" } else { "failed" };
        self.announcements
            .get_or_create(&labels(&[("address", address), ("result", result)]))
            .inc();
    }

    /// Another host answered a duplicate-address probe for `address`.
    pub fn conflict(&self, address: &str) {
        self.conflicts
            .get_or_create(&labels(&[("address", address)]))
            .inc();
    }
}

/// The process's address event counters.
pub static ADDRESS_EVENTS: LazyLock<AddressEvents> = LazyLock::new(AddressEvents::default);

/// The registry and every metric in it.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    transitions: Family<Labels, Counter>,
    transition_seconds: Seconds,
    stage_seconds: Seconds,
    drbd_up: Family<Labels, Gauge>,
    drbd_role: Family<Labels, Gauge>,
    drbd_peer_role: Family<Labels, Gauge>,
    drbd_connection: Family<Labels, Gauge>,
    drbd_disk: Family<Labels, Gauge>,
    drbd_peer_disk: Family<Labels, Gauge>,
    drbd_out_of_sync: Family<Labels, Gauge>,
    split_brain: Family<Labels, Gauge>,
    target_state: Family<Labels, Gauge>,
    target_sessions: Family<Labels, Gauge>,
    address_held: Family<Labels, Gauge>,
    address_conflict: Family<Labels, Gauge>,
    config_info: Family<Labels, Gauge>,
    authority: Family<Labels, Gauge>,
    authority_changed: FloatGauge,
    converged: Gauge,
    maintenance: Gauge,
    alarms_active: Gauge,
    alarms: Counter,
    refusals: Counter,
    /// Connection states outside [`CONNECTIONS`] last shown, per resource (dropped on change).
    other_connection: Mutex<BTreeMap<String, String>>,
    /// The resources and addresses whose gauges the last update set: those no longer in the
    /// status lose their series (`prometheus-client` cannot list a family's series).
    shown: Mutex<Shown>,
    /// The resources whose out-of-sync count the last scrape showed.
    out_of_sync_shown: Mutex<BTreeSet<String>>,
    last_authority: Mutex<Option<String>>,
}

impl Metrics {
    /// Every metric registered under the `iscsi_ha_` prefix.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("iscsi_ha");
        let m = Metrics {
            transitions: Family::default(),
            transition_seconds: Family::new_with_constructor(seconds),
            stage_seconds: Family::new_with_constructor(seconds),
            drbd_up: Family::default(),
            drbd_role: Family::default(),
            drbd_peer_role: Family::default(),
            drbd_connection: Family::default(),
            drbd_disk: Family::default(),
            drbd_peer_disk: Family::default(),
            drbd_out_of_sync: Family::default(),
            split_brain: Family::default(),
            target_state: Family::default(),
            target_sessions: Family::default(),
            address_held: Family::default(),
            address_conflict: Family::default(),
            config_info: Family::default(),
            authority: Family::default(),
            authority_changed: FloatGauge::default(),
            converged: Gauge::default(),
            maintenance: Gauge::default(),
            alarms_active: Gauge::default(),
            alarms: Counter::default(),
            refusals: Counter::default(),
            other_connection: Mutex::default(),
            shown: Mutex::default(),
            out_of_sync_shown: Mutex::default(),
            last_authority: Mutex::default(),
            registry: Registry::default(),
        };
        let r = &mut registry;
        r.register(
            "transitions",
            "Transitions run, by kind (promote, demote, repair) and result (ok, refused, rolled_back, failed)",
            m.transitions.clone(),
        );
        r.register(
            "transition_seconds",
            "Wall time of a whole transition, by kind",
            m.transition_seconds.clone(),
        );
        r.register(
            "stage_seconds",
            "Wall time of one stage of a transition, by kind and stage",
            m.stage_seconds.clone(),
        );
        r.register(
            "drbd_up",
            "The DRBD resource exists in the kernel",
            m.drbd_up.clone(),
        );
        r.register(
            "drbd_role",
            "DRBD local role (1 for the current one)",
            m.drbd_role.clone(),
        );
        r.register(
            "drbd_peer_role",
            "DRBD peer role (1 for the current one)",
            m.drbd_peer_role.clone(),
        );
        r.register(
            "drbd_connection",
            "DRBD connection state (1 for the current one)",
            m.drbd_connection.clone(),
        );
        r.register(
            "drbd_disk",
            "DRBD local disk state (1 for the current one)",
            m.drbd_disk.clone(),
        );
        r.register(
            "drbd_peer_disk",
            "DRBD peer disk state (1 for the current one)",
            m.drbd_peer_disk.clone(),
        );
        r.register(
            "drbd_out_of_sync_bytes",
            "Data marked out of sync in the local DRBD bitmap, read at scrape time",
            m.drbd_out_of_sync.clone(),
        );
        r.register(
            "drbd_split_brain",
            "DRBD reported a split brain on the resource",
            m.split_brain.clone(),
        );
        r.register(
            "target_state",
            "iSCSI target state in tgtd (1 for the current one)",
            m.target_state.clone(),
        );
        r.register(
            "target_sessions",
            "iSCSI sessions logged in to the target",
            m.target_sessions.clone(),
        );
        r.register(
            "address_held",
            "The floating address is held on this node",
            m.address_held.clone(),
        );
        r.register(
            "address_conflict",
            "Another host uses the floating address held here (RFC 5227 address conflict), while status shows it",
            m.address_conflict.clone(),
        );
        r.register(
            "config_info",
            "The running config's fingerprint (1; compare the two nodes: equal when they serve the same)",
            m.config_info.clone(),
        );
        r.register(
            "address_announcements",
            "Gratuitous ARP / unsolicited NA announcements, by result (sent, failed)",
            ADDRESS_EVENTS.announcements.clone(),
        );
        r.register(
            "address_probe_conflicts",
            "Duplicate-address probes another host answered",
            ADDRESS_EVENTS.conflicts.clone(),
        );
        r.register(
            "authority",
            "The authority's wish for this node (1 for the current one)",
            m.authority.clone(),
        );
        r.register(
            "authority_last_change_timestamp_seconds",
            "When the authority's wish last changed (Unix time; the agent's start counts)",
            m.authority_changed.clone(),
        );
        r.register(
            "converged",
            "Everything matches the authority's wish",
            m.converged.clone(),
        );
        r.register(
            "maintenance",
            "Maintenance mode is on",
            m.maintenance.clone(),
        );
        r.register(
            "alarms_active",
            "Conditions needing an operator now: failed observation, blocked, split brain, address conflict, unknown authority",
            m.alarms_active.clone(),
        );
        r.register("alarms", "Alarms raised", m.alarms.clone());
        r.register("refusals", "Requests or plans refused", m.refusals.clone());
        Metrics { registry, ..m }
    }

    /// The OpenMetrics text of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }

    fn one_of(
        family: &Family<Labels, Gauge>,
        key: &'static str,
        object: (&'static str, &str),
        values: &[&str],
        current: &str,
    ) {
        for v in values {
            let set = labels(&[object, (key, v)]);
            family.get_or_create(&set).set(i64::from(*v == current));
        }
    }

    /// Removes the gauges of a resource no longer in the status.
    fn remove_resource(&self, name: &str) {
        let res = ("resource", name);
        for family in [&self.drbd_up, &self.split_brain, &self.target_sessions] {
            family.remove(&labels(&[res]));
        }
        let states: [(&Family<Labels, Gauge>, &str, &[&str]); 6] = [
            (&self.drbd_role, "role", &ROLES),
            (&self.drbd_peer_role, "role", &ROLES),
            (&self.drbd_disk, "state", &DISKS),
            (&self.drbd_peer_disk, "state", &DISKS),
            (&self.drbd_connection, "state", &CONNECTIONS),
            (&self.target_state, "state", &TARGET_STATES),
        ];
        for (family, key, values) in states {
            for v in values {
                family.remove(&labels(&[res, (key, v)]));
            }
        }
        let mut other = self
            .other_connection
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(old) = other.remove(name) {
            self.drbd_connection
                .remove(&labels(&[res, ("state", &old)]));
        }
    }

    /// Removes the gauges of an address no longer in the status.
    fn remove_address(&self, address: &str) {
        let set = labels(&[("address", address)]);
        self.address_held.remove(&set);
        self.address_conflict.remove(&set);
    }

    fn update(&self, status: &Status, handled: &Handled, alarm_now: bool) {
        // Held throughout: one update at a time decides what is shown.
        let mut shown = self.shown.lock().unwrap_or_else(|e| e.into_inner());
        for t in &handled.transitions {
            let result = t.result.label().replace(' ', "_");
            let kind = t.kind.as_str();
            self.transitions
                .get_or_create(&labels(&[("kind", kind), ("result", &result)]))
                .inc();
            self.transition_seconds
                .get_or_create(&labels(&[("kind", kind)]))
                .observe(t.total_micros as f64 / 1e6);
            for s in &t.stages {
                self.stage_seconds
                    .get_or_create(&labels(&[("kind", kind), ("stage", s.stage.name())]))
                    .observe(s.micros as f64 / 1e6);
            }
        }
        for n in &handled.notices {
            match n {
                Action::Alarm(_) => self.alarms.inc(),
                Action::Refuse(_) => self.refusals.inc(),
                Action::Run(_) => 0,
            };
        }
        for r in &status.resources {
            let res = ("resource", r.name.as_str());
            let d = &r.drbd;
            self.drbd_up
                .get_or_create(&labels(&[res]))
                .set(i64::from(d.up));
            Self::one_of(&self.drbd_role, "role", res, &ROLES, &d.role.to_string());
            Self::one_of(
                &self.drbd_peer_role,
                "role",
                res,
                &ROLES,
                &d.peer_role.to_string(),
            );
            Self::one_of(&self.drbd_disk, "state", res, &DISKS, &d.disk.to_string());
            Self::one_of(
                &self.drbd_peer_disk,
                "state",
                res,
                &DISKS,
                &d.peer_disk.to_string(),
            );
            let conn = d.connection.to_string();
            Self::one_of(&self.drbd_connection, "state", res, &CONNECTIONS, &conn);
            // A DRBD state outside the fixed list gets its own series while it lasts.
            let mut other = self
                .other_connection
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if let Some(old) = other.remove(&r.name) {
                self.drbd_connection
                    .remove(&labels(&[res, ("state", &old)]));
            }
            if !CONNECTIONS.contains(&conn.as_str()) {
                self.drbd_connection
                    .get_or_create(&labels(&[res, ("state", &conn)]))
                    .set(1);
                other.insert(r.name.clone(), conn);
            }
            drop(other);
            let split = status.split_brain.contains(&r.name);
            self.split_brain
                .get_or_create(&labels(&[res]))
                .set(i64::from(split));
            let state = format!("{:?}", r.target.state);
            Self::one_of(&self.target_state, "state", res, &TARGET_STATES, &state);
            self.target_sessions
                .get_or_create(&labels(&[res]))
                .set(i64::from(r.target.sessions));
        }
        for a in &status.addresses {
            self.address_held
                .get_or_create(&labels(&[("address", &a.address)]))
                .set(i64::from(a.held));
            self.address_conflict
                .get_or_create(&labels(&[("address", &a.address)]))
                .set(i64::from(a.conflict.is_some()));
        }
        // Set first, removed after: a series still in the status never goes missing.
        let now = Shown {
            resources: status.resources.iter().map(|r| r.name.clone()).collect(),
            addresses: status.addresses.iter().map(|a| a.address.clone()).collect(),
        };
        for gone in shown.resources.difference(&now.resources) {
            self.remove_resource(gone);
        }
        for gone in shown.addresses.difference(&now.addresses) {
            self.remove_address(gone);
        }
        *shown = now;
        drop(shown);
        // One series: a reload that changes the fingerprint replaces it.
        let fingerprint = labels(&[("fingerprint", &status.config_fingerprint)]);
        if self.config_info.get(&fingerprint).is_none() {
            self.config_info.clear();
            self.config_info.get_or_create(&fingerprint).set(1);
        }
        let authority = match status.authority {
            Authority::Primary => "primary",
            Authority::Secondary => "secondary",
            Authority::Unknown(_) => "unknown",
        };
        for v in AUTHORITIES {
            self.authority
                .get_or_create(&labels(&[("authority", v)]))
                .set(i64::from(v == authority));
        }
        let mut last = self
            .last_authority
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if last.as_deref() != Some(authority) {
            *last = Some(authority.to_string());
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            self.authority_changed.set(now.as_secs_f64());
        }
        drop(last);
        self.converged.set(i64::from(status.converged));
        self.maintenance.set(i64::from(status.maintenance));
        let active = usize::from(alarm_now)
            + usize::from(status.blocked.is_some())
            + status.split_brain.len()
            + status
                .addresses
                .iter()
                .filter(|a| a.conflict.is_some())
                .count()
            + usize::from(matches!(status.authority, Authority::Unknown(_)));
        self.alarms_active
            .set(i64::try_from(active).unwrap_or(i64::MAX));
    }

    /// Read each resource's out-of-sync count from DRBD (skipped where the backend has none);
    /// a resource a reload removed is no longer reported. Every count is read first: a scrape
    /// meanwhile (another connection) sees the previous values, not a family half cleared.
    pub async fn refresh_out_of_sync<D: Drbd>(&self, config: &Config, drbd: &D) {
        let mut read = BTreeMap::new();
        for r in &config.resources {
            let wait = std::time::Duration::from_millis(config.timeouts.drbd_ms);
            let g = tokio::time::timeout(wait, drbd.generations(r)).await;
            match g.unwrap_or(Err(BackendError::Timeout(config.timeouts.drbd_ms))) {
                Ok(g) => {
                    let bytes = g.bits_oos.saturating_mul(4096);
                    read.insert(r.name.clone(), i64::try_from(bytes).unwrap_or(i64::MAX));
                }
                Err(e) => debug!(resource = %r.name, error = %e, "out-of-sync count"),
            }
        }
        let mut shown = self
            .out_of_sync_shown
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for (name, bytes) in &read {
            self.drbd_out_of_sync
                .get_or_create(&labels(&[("resource", name)]))
                .set(*bytes);
        }
        for gone in shown.iter().filter(|n| !read.contains_key(*n)) {
            self.drbd_out_of_sync.remove(&labels(&[("resource", gone)]));
        }
        *shown = read.into_keys().collect();
    }
}

/// What [`Metrics::update`] last set gauges for.
#[derive(Debug, Default)]
struct Shown {
    resources: BTreeSet<String>,
    addresses: BTreeSet<String>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// [`Metrics`] as a follower of the daemon's loop.
#[derive(Debug, Clone)]
pub struct MetricsMonitor(pub Arc<Metrics>);

impl Monitor for MetricsMonitor {
    fn handled(&mut self, _state: &State, status: &Status, handled: &Handled) {
        let failed_observation = handled
            .notices
            .iter()
            .any(|a| matches!(a, Action::Alarm(r) if r.starts_with("observation failed")));
        self.0.update(status, handled, failed_observation);
    }
}

/// Serve `GET /metrics` on `listener` until the task is dropped; each scrape first reads the
/// out-of-sync counts of the running config's resources (`config` follows reloads) from `drbd`.
/// Other paths answer 404, other methods 405.
pub async fn serve<D: Drbd + Clone + 'static>(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    config: ConfigFeed,
    drbd: D,
) -> std::io::Result<()> {
    loop {
        let (stream, peer) = listener.accept().await?;
        let (metrics, config, drbd) = (metrics.clone(), config.clone(), drbd.clone());
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let (metrics, drbd) = (metrics.clone(), drbd.clone());
                let config = config.borrow().clone();
                async move { Ok::<_, Infallible>(answer(req, &metrics, &config, &drbd).await) }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, svc)
                .await
            {
                debug!(%peer, error = %e, "metrics connection");
            }
        });
    }
}

/// `[metrics] listen` as `ip:port`; anything else is an error naming the key.
pub fn listen_address<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<SocketAddr>, D::Error> {
    use serde::Deserialize;
    let s = String::deserialize(d)?;
    s.parse().map(Some).map_err(|_| {
        serde::de::Error::custom(format!(
            "`listen` must be ip:port, e.g. \"127.0.0.1:9942\", not {s:?}"
        ))
    })
}

/// Start the endpoint when `[metrics] listen` is set (in the running config of `config`, which
/// follows reloads): bind it (an error if the address is taken), serve it from a task, and
/// return the metrics for a [`MetricsMonitor`].
pub async fn start<D: Drbd + Clone + 'static>(
    config: ConfigFeed,
    drbd: D,
) -> std::io::Result<Option<Arc<Metrics>>> {
    let listen = config.borrow().metrics.listen;
    let Some(addr) = listen else {
        return Ok(None);
    };
    let listener = TcpListener::bind(addr).await?;
    let local: SocketAddr = listener.local_addr()?;
    let metrics = Arc::new(Metrics::new());
    let m = metrics.clone();
    tokio::spawn(async move {
        if let Err(e) = serve(listener, m, config, drbd).await {
            tracing::error!(error = %e, "metrics endpoint ended");
        }
    });
    tracing::info!(listen = %local, "metrics endpoint ready");
    Ok(Some(metrics))
}

async fn answer<B, D: Drbd>(
    req: Request<B>,
    metrics: &Metrics,
    config: &Config,
    drbd: &D,
) -> Response<Full<Bytes>> {
    let reply = |code: StatusCode, ctype: &str, body: String| {
        let mut r = Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = code;
        if let Ok(v) = hyper::header::HeaderValue::from_str(ctype) {
            r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
        }
        r
    };
    if req.uri().path() != "/metrics" {
        return reply(StatusCode::NOT_FOUND, "text/plain", "see /metrics\n".into());
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "GET only\n".into(),
        );
    }
    metrics.refresh_out_of_sync(config, drbd).await;
    reply(StatusCode::OK, CONTENT_TYPE, metrics.encode())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::status::{AddressConflict, AddressStatus};

    #[test]
    fn address_conflict_gauge_follows_the_status() {
        let config = Config::parse(crate::config::TEST_MINIMAL, Path::new("x")).expect("parses");
        let mut st = Status::new(&config, &config.fingerprint(), &State::new(&config), []);
        st.authority = Authority::Primary;
        st.addresses = vec![AddressStatus::held_for_test("10.0.0.5/24", "eth1")];
        let m = Metrics::new();
        let none = Handled::default();
        m.update(&st, &none, false);
        let text = m.encode();
        assert!(
            text.contains("# TYPE iscsi_ha_address_conflict gauge\n"),
            "{text}"
        );
        assert!(
            text.contains("iscsi_ha_address_conflict{address=\"10.0.0.5/24\"} 0\n"),
            "{text}"
        );
        assert!(text.contains("iscsi_ha_alarms_active 0\n"), "{text}");

        st.addresses[0].conflict = Some(AddressConflict::seen_for_test(&["02:99:00:00:00:02"]));
        m.update(&st, &none, false);
        let text = m.encode();
        assert!(
            text.contains("iscsi_ha_address_conflict{address=\"10.0.0.5/24\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("iscsi_ha_address_held{address=\"10.0.0.5/24\"} 1\n"));
        assert!(text.contains("iscsi_ha_alarms_active 1\n"), "{text}");

        st.addresses[0].conflict = None;
        m.update(&st, &none, false);
        let text = m.encode();
        assert!(
            text.contains("iscsi_ha_address_conflict{address=\"10.0.0.5/24\"} 0\n"),
            "{text}"
        );
        assert!(text.contains("iscsi_ha_alarms_active 0\n"), "{text}");
    }

    /// A reload removes `r1` and 10.0.0.6/24: their gauges go from the scrape, those of `r0`
    /// and 10.0.0.5/24 stay, and so do the counters and histograms (cumulative).
    #[test]
    fn a_removed_resource_or_address_loses_its_gauges_not_its_counters() {
        use crate::fsm::PlanKind;
        use crate::record::{TransitionRecord, TransitionResult};

        let config = Config::parse(crate::config::TEST_MINIMAL, Path::new("x")).expect("parses");
        let mut st = Status::new(&config, &config.fingerprint(), &State::new(&config), []);
        st.authority = Authority::Primary;
        let mut r1 = st.resources[0].clone();
        r1.name = "r1".into();
        st.resources.push(r1);
        st.split_brain = vec!["r1".into()];
        st.addresses = vec![
            AddressStatus::held_for_test("10.0.0.5/24", "eth1"),
            AddressStatus::held_for_test("10.0.0.6/24", "eth1"),
        ];
        st.addresses[1].conflict = Some(AddressConflict::seen_for_test(&["02:99:00:00:00:02"]));
        let m = Metrics::new();
        let promoted = Handled {
            notices: vec![Action::Alarm("address conflict".into())],
            transitions: vec![TransitionRecord {
                id: 1,
                kind: PlanKind::Promote,
                started_unix_ms: 0,
                total_micros: 1000,
                stages: Vec::new(),
                result: TransitionResult::Ok,
                repeated: 0,
            }],
        };
        m.update(&st, &promoted, false);
        ADDRESS_EVENTS.announcement("10.0.0.6/24", true);
        let text = m.encode();
        let gauges = [
            "iscsi_ha_drbd_up{resource=\"r1\"} ",
            "iscsi_ha_drbd_role{resource=\"r1\",role=\"Primary\"} ",
            "iscsi_ha_drbd_peer_role{resource=\"r1\",role=\"Unknown\"} ",
            "iscsi_ha_drbd_connection{resource=\"r1\",state=\"Connected\"} ",
            "iscsi_ha_drbd_disk{resource=\"r1\",state=\"UpToDate\"} ",
            "iscsi_ha_drbd_peer_disk{resource=\"r1\",state=\"UpToDate\"} ",
            "iscsi_ha_drbd_split_brain{resource=\"r1\"} 1",
            "iscsi_ha_target_state{resource=\"r1\",state=\"Serving\"} ",
            "iscsi_ha_target_sessions{resource=\"r1\"} ",
            "iscsi_ha_address_held{address=\"10.0.0.6/24\"} 1",
            "iscsi_ha_address_conflict{address=\"10.0.0.6/24\"} 1",
        ];
        for g in gauges {
            assert!(text.contains(g), "{g} missing:\n{text}");
        }
        assert!(text.contains("iscsi_ha_alarms_active 2\n"), "{text}");

        // The reload: one resource, one address.
        st.resources.truncate(1);
        st.split_brain.clear();
        st.addresses.truncate(1);
        m.update(&st, &Handled::default(), false);
        let text = m.encode();
        for g in gauges {
            let (series, _) = g.split_once('{').expect("labels");
            let name = g.split('}').next().expect("labels");
            assert!(!text.contains(name), "{name} kept:\n{text}");
            // The family itself stays, for the resource or address still there.
            assert!(
                text.contains(&format!("{series}{{")),
                "{series} gone:\n{text}"
            );
        }
        for kept in [
            "iscsi_ha_drbd_up{resource=\"r0\"} ",
            "iscsi_ha_drbd_split_brain{resource=\"r0\"} 0",
            "iscsi_ha_address_held{address=\"10.0.0.5/24\"} 1",
            "iscsi_ha_address_conflict{address=\"10.0.0.5/24\"} 0",
            "iscsi_ha_transitions_total{kind=\"promote\",result=\"ok\"} 1",
            "iscsi_ha_transition_seconds_count{kind=\"promote\"} 1",
            "iscsi_ha_alarms_total 1",
            "iscsi_ha_alarms_active 0",
            "iscsi_ha_address_announcements_total{address=\"10.0.0.6/24\",result=\"sent\"} ",
        ] {
            assert!(text.contains(kept), "{kept} missing:\n{text}");
        }
    }
}
