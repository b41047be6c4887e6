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
//! - Services whose request could not be met are tried again, oldest first, as soon as a call
//!   makes room (a delete, a type or class change, a move, changed sharing terms) or a pool
//!   changes.
//!
//! Cost: a Service event costs O(log n) (plus the Services waiting for an address, when it
//! frees one). A pool event reconciles every Service, a Namespace label change those of the
//! Namespace; both are rare. Pool status is recomputed only for pools that changed.

mod entry;
mod error;
mod intent;
mod pool;
mod pool_status;
mod reconcile;
mod service;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ironlb_crds::IPAddressPool;
use ironlb_crds::annotations::IpMode;
use ironlb_crds::class::ClassFilter;
use k8s_openapi::api::core::v1::{Namespace, Service};

use crate::allocator::{Allocator, Assignment, ServiceKey};

pub use error::SpecError;
pub use intent::{
    DesiredCondition, EventIntent, EventKind, Ingress, Intent, ObjectKind, Output, PoolGauge,
    PoolStatusWrite, Regarding, StatusWrite,
};
pub use service::{ServiceView, ShownIngress};

use entry::ServiceEntry;
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
    /// Services of ours whose request the allocator refused (they hold no address, or not the
    /// one they ask for): tried again when room is made.
    waiting: BTreeSet<ServiceKey>,
    /// Set when the current call freed addresses or changed the sharing terms an address is
    /// held on, so that waiting Services are tried again.
    room_changed: bool,
    /// Services reconciled during the current call.
    touched: BTreeSet<ServiceKey>,
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
            room_changed: false,
            touched: BTreeSet::new(),
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
                brain.room_changed = true;
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
        self.room_changed = false;
        self.touched.clear();
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
    /// step made room for, then recomputes dirty pools.
    fn finish(&mut self, step: impl FnOnce(&mut Brain, &mut Output)) -> Output {
        let mut out = Output::default();
        if !self.synced {
            return out;
        }
        step(self, &mut out);
        let touched = std::mem::take(&mut self.touched);
        if std::mem::take(&mut self.room_changed) && !self.waiting.is_empty() {
            // Services the step itself just tried had every chance already.
            let waiting: Vec<ServiceKey> = self
                .waiting
                .iter()
                .filter(|k| !touched.contains(*k))
                .cloned()
                .collect();
            for key in self.by_age(waiting) {
                self.reconcile_service(&key, &mut out);
            }
            // Trying again frees nothing.
            self.room_changed = false;
        }
        self.touched.clear();
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
