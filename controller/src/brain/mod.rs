//! The brain: the controller's decisions, computed purely from the objects it is shown.
//!
//! The brain owns the [`Allocator`] and an index of Services, IPAddressPools and Namespace
//! labels. The runtime feeds it watch events through synchronous methods
//! ([`Brain::apply_service`], [`Brain::delete_pool`], ...) and gets back an [`Output`]: the
//! [`Intent`]s to write (Service status, the pool annotation, pool status, Events), pool usage
//! for the gauges and failure reasons for the counters. The brain does no I/O, reads no clock
//! and never panics on an object; the writer owns every API call.
//!
//! Rules it keeps (DESIGN.md "Controller"):
//! - Until [`Brain::synced`] (the initial lists are complete) it only indexes. At `synced` it
//!   loads every pool, re-occupies the addresses Services already show (oldest Service first)
//!   and only then reconciles, so a restart moves no address and writes nothing when every
//!   object already shows what it should.
//! - An intent is emitted only when the object does not already show the desired state and
//!   the same write is not already on its way (`pending`), so resyncs and the echoes of our own
//!   writes cost nothing.
//! - A Service with malformed annotations keeps what it holds; an invalid pool keeps its last
//!   valid version in the allocator.
//! - Events are emitted once per distinct problem, not at every resync.

mod error;
mod intent;
mod pool;
mod service;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ironlb_crds::IPAddressPool;
use ironlb_crds::annotations::{self, IpMode};
use ironlb_crds::class::ClassFilter;
use ironlb_crds::events;
use k8s_openapi::api::core::v1::{Namespace, Service};

use crate::allocator::{Allocator, Assignment, PoolUpdate, ServiceKey};

pub use error::SpecError;
pub use intent::{
    DesiredCondition, EventIntent, EventKind, Ingress, Intent, ObjectKind, Output, PoolGauge,
    PoolStatusWrite, Regarding, StatusWrite,
};
pub use service::{ServiceView, ShownIngress};

use pool::PoolEntry;

/// How the brain decides, fixed for the life of the process (except `ip_mode_supported`, which
/// the writer may turn off).
#[derive(Clone, Debug)]
pub struct BrainConfig {
    /// `--lb-class` and `--ignore-unclassed`.
    pub class: ClassFilter,
    /// `--ip-mode`.
    pub default_ip_mode: IpMode,
    /// Whether the API server's Service schema has `ipMode`.
    pub ip_mode_supported: bool,
}

impl Default for BrainConfig {
    fn default() -> Self {
        BrainConfig {
            class: ClassFilter::default(),
            default_ip_mode: IpMode::Proxy,
            ip_mode_supported: true,
        }
    }
}

/// What the brain keeps per Service.
#[derive(Clone, Debug)]
struct ServiceEntry {
    view: ServiceView,
    /// What the allocator gave this Service, mirrored to describe changes in Events.
    held: Option<Assignment>,
    /// A status write handed to the writer and not yet seen on the object.
    status_pending: Option<StatusWrite>,
    /// An annotation write handed to the writer and not yet seen on the object.
    annotation_pending: Option<Option<String>>,
    /// MetalLB annotations (key, value) a `MetalLBAnnotation` event was emitted for.
    noted_translations: BTreeSet<(String, String)>,
    /// The last `InvalidAnnotation` message emitted.
    noted_invalid: Option<String>,
    /// The last `AllocationFailed` message emitted.
    noted_failure: Option<String>,
}

impl ServiceEntry {
    fn new(view: ServiceView) -> Self {
        ServiceEntry {
            view,
            held: None,
            status_pending: None,
            annotation_pending: None,
            noted_translations: BTreeSet::new(),
            noted_invalid: None,
            noted_failure: None,
        }
    }

    /// Replaces the view, and forgets pending writes the object now shows.
    fn observe(&mut self, view: ServiceView) {
        self.view = view;
        if self
            .status_pending
            .as_ref()
            .is_some_and(|p| self.view.shows(p.entries()))
        {
            self.status_pending = None;
        }
        if self
            .annotation_pending
            .as_ref()
            .is_some_and(|p| p.as_deref() == self.view.shown_pool())
        {
            self.annotation_pending = None;
        }
    }

    fn regarding(&self) -> Regarding {
        Regarding {
            kind: ObjectKind::Service,
            namespace: self.view.key.namespace.clone(),
            name: self.view.key.name.clone(),
            uid: self.view.uid.clone(),
        }
    }

    fn event(
        &self,
        kind: EventKind,
        reason: &'static str,
        action: &'static str,
        note: String,
    ) -> Intent {
        Intent::Event(EventIntent {
            regarding: self.regarding(),
            kind,
            reason,
            action,
            note,
        })
    }

    /// Emits the status write unless the object shows it or it is already on its way.
    fn sync_status(&mut self, desired: StatusWrite, out: &mut Output) {
        if self.status_pending.as_ref() == Some(&desired) {
            return;
        }
        if self.status_pending.is_none() && self.view.shows(desired.entries()) {
            return;
        }
        // Either the object differs, or another write is queued that must be overridden.
        self.status_pending = Some(desired.clone());
        out.intents.push(Intent::ServiceStatus {
            key: self.view.key.clone(),
            write: desired,
        });
    }

    fn sync_annotation(&mut self, desired: Option<String>, out: &mut Output) {
        if self.annotation_pending.as_ref() == Some(&desired) {
            return;
        }
        if self.annotation_pending.is_none() && self.view.shown_pool() == desired.as_deref() {
            return;
        }
        self.annotation_pending = Some(desired.clone());
        out.intents.push(Intent::PoolAnnotation {
            key: self.view.key.clone(),
            pool: desired,
        });
    }

    /// Emits `AllocationFailed` and counts the failure, unless the same message was the last
    /// one emitted: the metric counts failures, not retries of a Service still waiting.
    fn note_failure(&mut self, reason: &'static str, message: String, out: &mut Output) {
        if self.noted_failure.as_deref() == Some(message.as_str()) {
            return;
        }
        out.failures.push(reason);
        out.intents.push(self.event(
            EventKind::Warning,
            events::ALLOCATION_FAILED,
            "Allocate",
            message.clone(),
        ));
        self.noted_failure = Some(message);
    }
}

/// See the module docs.
#[derive(Debug)]
pub struct Brain {
    config: BrainConfig,
    allocator: Allocator,
    services: BTreeMap<ServiceKey, ServiceEntry>,
    namespaces: BTreeMap<String, BTreeMap<String, String>>,
    pools: BTreeMap<String, PoolEntry>,
    synced: bool,
    /// Pools whose status or gauges need recomputing at the end of the current call.
    dirty_pools: BTreeSet<String>,
    /// Services of ours that hold no address and could get one when addresses free up.
    waiting: BTreeSet<ServiceKey>,
    /// Set when the current call freed addresses, so that waiting Services are tried again.
    freed: bool,
}

static NO_LABELS: BTreeMap<String, String> = BTreeMap::new();

impl Brain {
    pub fn new(config: BrainConfig) -> Self {
        Brain {
            config,
            allocator: Allocator::new(),
            services: BTreeMap::new(),
            namespaces: BTreeMap::new(),
            pools: BTreeMap::new(),
            synced: false,
            dirty_pools: BTreeSet::new(),
            waiting: BTreeSet::new(),
            freed: false,
        }
    }

    pub fn is_synced(&self) -> bool {
        self.synced
    }

    /// What the allocator gave a Service.
    pub fn assignment(&self, key: &ServiceKey) -> Option<Assignment> {
        self.allocator.assignment(key)
    }

    /// The Services the brain indexes: ours, and others it still has something to undo on.
    pub fn service_keys(&self) -> impl Iterator<Item = &ServiceKey> {
        self.services.keys()
    }

    pub fn pool_names(&self) -> impl Iterator<Item = &str> {
        self.pools.keys().map(String::as_str)
    }

    pub fn namespace_names(&self) -> impl Iterator<Item = &str> {
        self.namespaces.keys().map(String::as_str)
    }

    /// A Service was added or changed.
    pub fn apply_service(&mut self, service: &Service) -> Output {
        let Some(view) = ServiceView::from_service(service) else {
            return Output::default();
        };
        let key = view.key.clone();
        let relevant = view.handled_by(&self.config.class)
            || view.shown_pool().is_some()
            || self.services.get(&key).is_some_and(|e| {
                e.held.is_some() || e.status_pending.is_some() || e.annotation_pending.is_some()
            });
        if !relevant {
            // Not ours and nothing of ours on it: not worth indexing.
            self.services.remove(&key);
            return Output::default();
        }
        match self.services.get_mut(&key) {
            Some(entry) => entry.observe(view),
            None => {
                self.services.insert(key.clone(), ServiceEntry::new(view));
            }
        }
        self.finish(|brain, out| brain.reconcile_service(&key, out))
    }

    /// A Service was deleted: its addresses go back to their pool. No write: it is gone.
    pub fn delete_service(&mut self, key: &ServiceKey) -> Output {
        self.services.remove(key);
        self.waiting.remove(key);
        self.finish(|brain, _| {
            if let Some(old) = brain.allocator.release(key) {
                brain.dirty_pools.insert(old.pool);
                brain.freed = true;
            }
        })
    }

    /// An IPAddressPool was added or changed.
    pub fn apply_pool(&mut self, object: &IPAddressPool) -> Output {
        let Some((name, mut entry)) = PoolEntry::from_object(object) else {
            return Output::default();
        };
        if let Some(old) = self.pools.remove(&name) {
            entry.in_allocator = old.in_allocator;
            entry.noted_conflict = old.noted_conflict;
            entry.noted_invalid = old.noted_invalid;
            entry.pending = old
                .pending
                .filter(|p| !entry.shown.as_ref().is_some_and(|s| p.matches(s)));
        }
        self.pools.insert(name.clone(), entry);
        self.finish(|brain, out| brain.load_pool(&name, out))
    }

    /// An IPAddressPool was deleted: its Services get addresses from another eligible pool, or
    /// stay pending with an `AllocationFailed` event.
    pub fn delete_pool(&mut self, name: &str) -> Output {
        let Some(entry) = self.pools.remove(name) else {
            return Output::default();
        };
        self.finish(|brain, out| {
            brain.dirty_pools.insert(name.to_string());
            if entry.in_allocator.is_some() {
                let update = brain.allocator.remove_pool(name);
                brain.after_pool_change(
                    update,
                    &format!("IPAddressPool {name:?} was deleted"),
                    out,
                );
            }
        })
    }

    /// A Namespace was added or changed. When its labels changed, its Services are checked
    /// again against the pools' `namespaceSelectors`.
    pub fn apply_namespace(&mut self, namespace: &Namespace) -> Output {
        let Some(name) = namespace.metadata.name.clone() else {
            return Output::default();
        };
        let labels = namespace.metadata.labels.clone().unwrap_or_default();
        if self.namespaces.get(&name) == Some(&labels) {
            return Output::default();
        }
        self.namespaces.insert(name.clone(), labels);
        if !namespace_selectors_in_use(&self.pools) {
            return Output::default();
        }
        self.finish(|brain, out| {
            let start = ServiceKey::new(name.clone(), "");
            let keys: Vec<ServiceKey> = brain
                .services
                .range(start..)
                .take_while(|(k, _)| k.namespace == name)
                .map(|(k, _)| k.clone())
                .collect();
            for key in brain.by_age(keys) {
                brain.reconcile_service(&key, out);
            }
        })
    }

    /// A Namespace was deleted (its Services are deleted with it).
    pub fn delete_namespace(&mut self, name: &str) -> Output {
        self.namespaces.remove(name);
        Output::default()
    }

    /// The initial lists of Services, pools and Namespaces are complete: load the pools,
    /// re-occupy what Services already show, then reconcile everything.
    pub fn synced(&mut self) -> Output {
        if self.synced {
            return Output::default();
        }
        self.synced = true;
        let mut out = Output::default();

        let names: Vec<String> = self.pools.keys().cloned().collect();
        for name in &names {
            let Some(entry) = self.pools.get_mut(name) else {
                continue;
            };
            entry.note_shown_conditions();
            let config = match &entry.parsed {
                Ok(config) => Some(config.clone()),
                Err(problems) => {
                    // A new problem gets an InvalidPool event (which is logged too); one the
                    // pool already shows gets only this line.
                    if entry.noted_invalid.as_deref() == Some(problems.as_str()) {
                        out.problems.push(format!(
                            "IPAddressPool {}/{name} is invalid: {problems}",
                            entry.namespace
                        ));
                    }
                    entry.salvage(name)
                }
            };
            if let Some(config) = config {
                self.allocator.set_pool(config.clone());
                entry.in_allocator = Some(config);
            }
            self.dirty_pools.insert(name.clone());
        }

        let mut holding: Vec<(i128, ServiceKey)> = Vec::new();
        let mut others: Vec<(i128, ServiceKey)> = Vec::new();
        for (key, entry) in &self.services {
            let ours = entry.view.handled_by(&self.config.class);
            if ours && !entry.view.shown_ips().is_empty() {
                holding.push((entry.view.created, key.clone()));
            } else {
                others.push((entry.view.created, key.clone()));
            }
        }
        holding.sort();
        others.sort();

        for (_, key) in &holding {
            self.restore(key, &mut out);
        }
        for (_, key) in holding.iter().chain(&others) {
            self.reconcile_service(key, &mut out);
        }
        // Everything was just reconciled, oldest first.
        self.freed = false;
        self.flush(&mut out);
        out
    }

    /// The writer could not write a Service's status and gave up: forget the pending write, so
    /// that the next event for the Service tries again.
    pub fn status_write_abandoned(&mut self, key: &ServiceKey) {
        if let Some(entry) = self.services.get_mut(key) {
            entry.status_pending = None;
        }
    }

    /// As [`Brain::status_write_abandoned`], for the pool annotation.
    pub fn annotation_write_abandoned(&mut self, key: &ServiceKey) {
        if let Some(entry) = self.services.get_mut(key) {
            entry.annotation_pending = None;
        }
    }

    /// As [`Brain::status_write_abandoned`], for a pool's status.
    pub fn pool_status_write_abandoned(&mut self, name: &str) {
        if let Some(entry) = self.pools.get_mut(name) {
            entry.pending = None;
        }
    }

    /// The API server turned out to have no `ipMode`: stop asking for it. Pending writes are
    /// the writer's, which already strips the field, so they are kept without it.
    pub fn disable_ip_mode(&mut self) {
        self.config.ip_mode_supported = false;
        for entry in self.services.values_mut() {
            if let Some(pending) = &entry.status_pending {
                let stripped = pending.without_ip_mode();
                entry.status_pending = if entry.view.shows(stripped.entries()) {
                    None
                } else {
                    Some(stripped)
                };
            }
        }
    }

    /// Runs `step` unless not yet synced, gives waiting Services a chance at addresses the
    /// step freed, then recomputes dirty pools.
    fn finish(&mut self, step: impl FnOnce(&mut Brain, &mut Output)) -> Output {
        let mut out = Output::default();
        if !self.synced {
            return out;
        }
        step(self, &mut out);
        if std::mem::take(&mut self.freed) && !self.waiting.is_empty() {
            let waiting: Vec<ServiceKey> = self.waiting.iter().cloned().collect();
            for key in self.by_age(waiting) {
                self.reconcile_service(&key, &mut out);
            }
            // Trying again frees nothing.
            self.freed = false;
        }
        self.flush(&mut out);
        out
    }

    /// `keys` sorted oldest first (then by key).
    fn by_age(&self, keys: impl IntoIterator<Item = ServiceKey>) -> Vec<ServiceKey> {
        let mut aged: Vec<(i128, ServiceKey)> = keys
            .into_iter()
            .map(|k| {
                let created = self.services.get(&k).map_or(i128::MAX, |e| e.view.created);
                (created, k)
            })
            .collect();
        aged.sort();
        aged.into_iter().map(|(_, k)| k).collect()
    }

    /// Start-up: re-occupies the addresses a Service of ours shows.
    fn restore(&mut self, key: &ServiceKey, out: &mut Output) {
        let Some(entry) = self.services.get_mut(key) else {
            return;
        };
        let labels = self.namespaces.get(&key.namespace).unwrap_or(&NO_LABELS);
        let request = entry.view.restore_request(labels);
        let ips = entry.view.shown_ips();
        match self.allocator.restore(key, &request, &ips) {
            Ok(assignment) => {
                entry.held = Some(assignment);
                // The predecessor already noted the translations that got it these addresses.
                if let Ok(asked) = annotations::parse_annotations(
                    &entry.view.annotations.to_map(),
                    entry.view.spec_load_balancer_ip.as_deref(),
                ) {
                    entry.noted_translations = asked
                        .translated
                        .iter()
                        .map(|t| (t.from.to_string(), t.value.clone()))
                        .collect();
                }
            }
            Err(err) => out.problems.push(format!(
                "Service {key}: cannot keep {} shown in its status: {err}",
                join_ips(&ips)
            )),
        }
    }

    fn reconcile_service(&mut self, key: &ServiceKey, out: &mut Output) {
        let Some(entry) = self.services.get(key) else {
            return;
        };
        if entry.view.handled_by(&self.config.class) {
            self.reconcile_ours(key, out);
        } else {
            self.reconcile_foreign(key, out);
        }
    }

    fn reconcile_ours(&mut self, key: &ServiceKey, out: &mut Output) {
        // A Service in a Namespace whose event has not arrived yet (both were just created):
        // the Namespace's labels decide which pools it may use, so wait for them;
        // `apply_namespace` reconciles it.
        let labels_unknown = !self.namespaces.contains_key(&key.namespace)
            && namespace_selectors_in_use(&self.pools);
        let Some(entry) = self.services.get_mut(key) else {
            return;
        };
        let asked = match annotations::parse_annotations(
            &entry.view.annotations.to_map(),
            entry.view.spec_load_balancer_ip.as_deref(),
        ) {
            Ok(asked) => {
                entry.noted_invalid = None;
                asked
            }
            Err(errors) => {
                let consequence = match &entry.held {
                    Some(held) => format!(
                        "the Service keeps {} until this is fixed",
                        join_ips(&held.ips)
                    ),
                    None => "no IP is allocated until this is fixed".to_string(),
                };
                let note = format!("{errors}; {consequence}");
                if entry.noted_invalid.as_deref() != Some(note.as_str()) {
                    out.failures.push("invalid_annotation");
                    out.intents.push(entry.event(
                        EventKind::Warning,
                        events::INVALID_ANNOTATION,
                        "Allocate",
                        note.clone(),
                    ));
                    entry.noted_invalid = Some(note);
                }
                // It needs a fix from its owner, not a free address.
                self.waiting.remove(key);
                return;
            }
        };

        let current: BTreeSet<(String, String)> = asked
            .translated
            .iter()
            .map(|t| (t.from.to_string(), t.value.clone()))
            .collect();
        for t in &asked.translated {
            if !entry
                .noted_translations
                .contains(&(t.from.to_string(), t.value.clone()))
            {
                out.intents.push(entry.event(
                    EventKind::Normal,
                    events::METALLB_ANNOTATION,
                    "Translate",
                    t.message(),
                ));
            }
        }
        entry.noted_translations = current;

        if labels_unknown && entry.held.is_none() {
            return;
        }
        let labels = self.namespaces.get(&key.namespace).unwrap_or(&NO_LABELS);
        match entry.view.request(&asked, labels) {
            Err(err) => {
                let consequence = match &entry.held {
                    Some(held) => format!("the Service keeps {}", join_ips(&held.ips)),
                    None => "no IP is allocated".to_string(),
                };
                entry.note_failure("invalid_spec", format!("{err}; {consequence}"), out);
            }
            Ok(request) => {
                let before = entry.held.clone();
                match self.allocator.assign(key, &request) {
                    Ok(assignment) => {
                        entry.noted_failure = None;
                        if before.as_ref() != Some(&assignment) {
                            if let Some(before) = &before {
                                self.dirty_pools.insert(before.pool.clone());
                                self.freed = true;
                            }
                            self.dirty_pools.insert(assignment.pool.clone());
                            let shown = entry.view.shown_ips();
                            let was = match &before {
                                Some(b) => format!(" (was {})", join_ips(&b.ips)),
                                None if !shown.is_empty() && shown != assignment.ips => {
                                    format!(" (the status showed {})", join_ips(&shown))
                                }
                                None => String::new(),
                            };
                            out.intents.push(entry.event(
                                EventKind::Normal,
                                events::IP_ALLOCATED,
                                "Allocate",
                                format!(
                                    "Assigned {} from IPAddressPool {:?}{was}",
                                    join_ips(&assignment.ips),
                                    assignment.pool
                                ),
                            ));
                        }
                        entry.held = Some(assignment);
                    }
                    Err(err) => {
                        entry.held = self.allocator.assignment(key);
                        let consequence = match &entry.held {
                            Some(held) => format!("the Service keeps {}", join_ips(&held.ips)),
                            None => "the Service stays pending".to_string(),
                        };
                        entry.note_failure(err.reason(), format!("{err}; {consequence}"), out);
                    }
                }
            }
        }

        let mode = entry.view.ip_mode(
            asked.ip_mode,
            self.config.default_ip_mode,
            self.config.ip_mode_supported,
        );
        let (status, pool) = match &entry.held {
            Some(held) => (
                StatusWrite::Set(
                    held.ips
                        .iter()
                        .map(|&ip| Ingress { ip, ip_mode: mode })
                        .collect(),
                ),
                Some(held.pool.clone()),
            ),
            None => (StatusWrite::Clear { exclusive: true }, None),
        };
        let waiting = entry.held.is_none();
        entry.sync_status(status, out);
        entry.sync_annotation(pool, out);
        if waiting {
            self.waiting.insert(key.clone());
        } else {
            self.waiting.remove(key);
        }
    }

    /// A Service that is not (or no longer) ours: release what it held and remove what we wrote.
    fn reconcile_foreign(&mut self, key: &ServiceKey, out: &mut Output) {
        let Some(entry) = self.services.get_mut(key) else {
            return;
        };
        let released = self.allocator.release(key);
        entry.held = None;
        self.waiting.remove(key);
        if let Some(old) = &released {
            self.dirty_pools.insert(old.pool.clone());
            self.freed = true;
            let why = if !entry.view.is_load_balancer() {
                "the Service is no longer of type LoadBalancer".to_string()
            } else {
                match entry.view.class.as_deref().filter(|c| !c.is_empty()) {
                    Some(class) => format!(
                        "its loadBalancerClass {class:?} is not handled by this controller ({:?})",
                        self.config.class.class()
                    ),
                    None => {
                        "it has no loadBalancerClass and the controller ignores unclassed Services"
                            .to_string()
                    }
                }
            };
            out.intents.push(entry.event(
                EventKind::Normal,
                events::IP_RELEASED,
                "Release",
                format!(
                    "Released {} (IPAddressPool {:?}): {why}",
                    join_ips(&old.ips),
                    old.pool
                ),
            ));
        }
        if released.is_some() || entry.view.shown_pool().is_some() {
            // Another class's controller may own the status now: remove only our entries then.
            let exclusive = !entry.view.is_load_balancer();
            entry.sync_status(StatusWrite::Clear { exclusive }, out);
            entry.sync_annotation(None, out);
        }
        let done = entry.view.shown_pool().is_none()
            && entry.status_pending.is_none()
            && entry.annotation_pending.is_none();
        if done {
            self.services.remove(key);
        }
    }

    /// Puts the pool's current valid spec into the allocator (an invalid spec leaves the last
    /// valid version there) and reconciles what that changes.
    fn load_pool(&mut self, name: &str, out: &mut Output) {
        self.dirty_pools.insert(name.to_string());
        let Some(entry) = self.pools.get_mut(name) else {
            return;
        };
        let Ok(config) = &entry.parsed else { return };
        if entry.in_allocator.as_ref() == Some(config) {
            return;
        }
        let config = config.clone();
        entry.in_allocator = Some(config.clone());
        let update = self.allocator.set_pool(config);
        self.after_pool_change(
            update,
            &format!("IPAddressPool {name:?} changed and no longer offers it, or now overlaps an older pool"),
            out,
        );
    }

    /// After a pool was added, changed or removed: tells displaced Services why, then
    /// reconciles every Service (pending ones may now fit, eligibility may have changed).
    fn after_pool_change(&mut self, update: PoolUpdate, why: &str, out: &mut Output) {
        for key in &update.displaced {
            if let Some(entry) = self.services.get_mut(key)
                && let Some(old) = entry.held.take()
            {
                self.dirty_pools.insert(old.pool.clone());
                out.intents.push(entry.event(
                    EventKind::Normal,
                    events::IP_RELEASED,
                    "Release",
                    format!("Released {}: {why}", join_ips(&old.ips)),
                ));
            }
        }
        self.dirty_pools.extend(update.conflicts_changed);
        let keys: Vec<ServiceKey> = self.services.keys().cloned().collect();
        for key in self.by_age(keys) {
            self.reconcile_service(&key, out);
        }
    }

    /// Recomputes the status and gauges of dirty pools and emits what changed.
    fn flush(&mut self, out: &mut Output) {
        let dirty = std::mem::take(&mut self.dirty_pools);
        for name in dirty {
            let usage = self
                .pools
                .get(&name)
                .filter(|e| e.in_allocator.is_some())
                .and_then(|_| self.allocator.pool_status(&name));
            let conflict = usage
                .as_ref()
                .filter(|u| !u.conflicts_with.is_empty())
                .map(|u| pool::conflict_message(&name, &u.conflicts_with, &self.pools));
            out.gauges.push(PoolGauge {
                pool: name.clone(),
                families: usage
                    .iter()
                    .flat_map(|u| &u.usage)
                    .map(|f| (f.family.label(), f.total, f.in_use))
                    .collect(),
            });
            let Some(entry) = self.pools.get_mut(&name) else {
                continue;
            };
            let regarding = Regarding {
                kind: ObjectKind::IPAddressPool,
                namespace: entry.namespace.clone(),
                name: name.clone(),
                uid: entry.uid.clone(),
            };
            match &conflict {
                Some(message) if entry.noted_conflict != [message.clone()] => {
                    out.intents.push(Intent::Event(EventIntent {
                        regarding: regarding.clone(),
                        kind: EventKind::Warning,
                        reason: events::POOL_CONFLICT,
                        action: "Validate",
                        note: message.clone(),
                    }));
                    entry.noted_conflict = vec![message.clone()];
                }
                Some(_) => {}
                None => entry.noted_conflict.clear(),
            }
            match entry.spec_error() {
                Some(problems) if entry.noted_invalid.as_deref() != Some(problems) => {
                    let consequence = if entry.in_allocator.is_some() {
                        "the addresses of its previous version stay in use"
                    } else {
                        "the pool is not used"
                    };
                    out.intents.push(Intent::Event(EventIntent {
                        regarding,
                        kind: EventKind::Warning,
                        reason: events::INVALID_POOL,
                        action: "Validate",
                        note: format!("{problems}; {consequence}"),
                    }));
                    entry.noted_invalid = Some(problems.to_string());
                }
                Some(_) => {}
                None => entry.noted_invalid = None,
            }
            let desired = pool::desired_status(entry, usage.as_ref(), conflict.as_deref());
            if entry.pending.as_ref().is_some_and(|p| p.same_as(&desired)) {
                continue;
            }
            let shown = entry.shown.as_ref().is_some_and(|s| desired.matches(s));
            if entry.pending.is_none() && shown {
                continue;
            }
            entry.pending = Some(desired.clone());
            out.intents.push(Intent::PoolStatus {
                namespace: entry.namespace.clone(),
                name: name.clone(),
                status: desired,
            });
        }
    }
}

/// True when a pool in use selects Namespaces by label.
fn namespace_selectors_in_use(pools: &BTreeMap<String, PoolEntry>) -> bool {
    pools.values().any(|p| {
        p.in_allocator
            .as_ref()
            .and_then(|c| c.service_allocation.as_ref())
            .is_some_and(|sa| !sa.namespace_selectors.is_empty())
    })
}

fn join_ips(ips: &[IpAddr]) -> String {
    ips.iter()
        .map(IpAddr::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
