//! The IP allocator: which Service holds which external address, taken from which pool.
//!
//! This module is pure: no kube, no tokio, no clock, no I/O. The controller feeds it pools
//! ([`Allocator::set_pool`], [`Allocator::remove_pool`]) and Services ([`Allocator::assign`],
//! [`Allocator::release`]), and at start-up rebuilds it from the addresses Services already
//! hold ([`Allocator::restore`]) before anything new is allocated. The leader owns the only
//! instance; everything it decides is handed to the status writer.
//!
//! Rules (MetalLB parity, see DESIGN.md "Allocation"):
//! - requested IPs must lie in a pool eligible for the service; autoAssign does not matter;
//! - the address-pool annotation restricts allocation to that pool;
//! - otherwise pools whose serviceAllocation selects the service are tried by priority (lower
//!   first, 0 last, ties by name), then the other autoAssign pools by name;
//! - the lowest free address wins; `avoidBuggyIPs` pools do not offer `.0` and `.255`;
//! - sharing needs the same key, disjoint (protocol, port) pairs and the same backend; a service
//!   with a key joins a compatible shared address before taking a new one;
//! - both addresses of a dual-stack service come from one pool;
//! - overlapping pools: the older one is used, the younger one is in conflict and unused.
//!
//! Guarantees the controller relies on:
//! - a failed operation changes nothing: a service that held addresses keeps them;
//! - `assign` with a request its current addresses still satisfy is a no-op, so reconciling
//!   never moves an address; only a changed request or changed pools move a service;
//! - no pool is ever scanned address by address: free addresses are interval sets over `u128`
//!   (a /64 costs what a /24 costs), so taking the lowest free address, holding or releasing
//!   one is O(log n). The only lists walked are short by nature: the pools (to order
//!   candidates) and, for a service with a sharing key asking for an automatic address, the
//!   addresses already held under that same key.

mod error;
mod intervals;
mod placement;
mod pool;
mod request;
mod sharing;
mod space;
#[cfg(test)]
mod tests;

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use ironlb_crds::address::{Family, u128_to_ip};

pub use error::AllocError;
pub use pool::{PoolConfig, ServiceAllocation};
pub use request::{Backend, FamilyPolicy, Port, Protocol, Request, ServiceKey};
pub use space::is_buggy;

use pool::Pool;
use request::{Terms, check_one_per_family};
use sharing::IpEntry;

/// The addresses a Service holds, in `spec.ipFamilies` order, and the pool they come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assignment {
    pub pool: String,
    pub ips: Vec<IpAddr>,
}

/// What a pool change did to other state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PoolUpdate {
    /// Services that lost their addresses (no longer offered, or their pool is now in
    /// conflict or gone). They hold nothing now; reconcile them again.
    pub displaced: Vec<ServiceKey>,
    /// Pools whose list of conflicting pools changed; refresh their conditions.
    pub conflicts_changed: Vec<String>,
}

/// Size and usage of one family of one pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FamilyUsage {
    pub family: Family,
    /// Usable addresses (saturating at `u128::MAX` for `::/0`).
    pub total: u128,
    /// Distinct addresses held; a shared address counts once.
    pub in_use: u128,
}

impl FamilyUsage {
    pub fn available(&self) -> u128 {
        self.total - self.in_use
    }
}

/// A pool's state, for its status and metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolStatus {
    /// Older pools this one overlaps. Non-empty means the pool is not used.
    pub conflicts_with: Vec<String>,
    /// One entry per family the pool offers, IPv4 first.
    pub usage: Vec<FamilyUsage>,
}

/// What one Service holds, and on what terms.
#[derive(Clone, Debug)]
struct Holding {
    pool: Arc<str>,
    ips: Vec<IpAddr>,
    terms: Terms,
}

/// A decision not yet applied.
#[derive(Clone, Debug)]
struct Plan {
    pool: Arc<str>,
    ips: Vec<IpAddr>,
}

/// The allocator. See the module docs.
#[derive(Clone, Debug, Default)]
pub struct Allocator {
    pools: BTreeMap<String, Pool>,
    /// Looked up on every reconcile, so hashed; ordered views sort on demand.
    services: HashMap<Arc<ServiceKey>, Holding>,
    /// Every held address. Invariant: an address is here iff it is missing from its pool's
    /// free list.
    ips: BTreeMap<IpAddr, IpEntry>,
    /// Held addresses by the sharing key they are held under, to find one to join.
    shared: BTreeMap<String, BTreeSet<IpAddr>>,
}

impl Allocator {
    pub fn new() -> Self {
        Allocator::default()
    }

    /// Adds or replaces a pool.
    ///
    /// Services whose addresses the pool no longer offers, and services of pools that this
    /// change put in conflict, are released and listed in [`PoolUpdate::displaced`].
    pub fn set_pool(&mut self, config: PoolConfig) -> PoolUpdate {
        let before = self.conflict_lists();
        let name = config.name.clone();
        let held_before = match self.pools.get(&name) {
            Some(old) => self.held_in(old),
            None => Vec::new(),
        };
        self.pools.insert(name.clone(), Pool::new(config));
        pool::recompute_conflicts(&mut self.pools);

        let mut displaced = BTreeSet::new();
        if let Some(new) = self.pools.get(&name) {
            for ip in &held_before {
                if !(new.is_active() && new.offers(*ip))
                    && let Some(entry) = self.ips.get(ip)
                {
                    displaced.extend(entry.holders.iter().map(|k| ServiceKey::clone(k)));
                }
            }
        }
        for pool in self.pools.values() {
            if *pool.name != *name && !pool.is_active() {
                for ip in self.held_in(pool) {
                    if let Some(entry) = self.ips.get(&ip) {
                        displaced.extend(entry.holders.iter().map(|k| ServiceKey::clone(k)));
                    }
                }
            }
        }
        for key in &displaced {
            self.detach(key);
        }
        // The new version of the pool starts with every address free: take back the ones that
        // are still held.
        for ip in held_before {
            if self.ips.get(&ip).is_some_and(|e| *e.pool == *name)
                && let Some(space) = self
                    .pools
                    .get_mut(&name)
                    .and_then(|p| p.space_mut(Family::of(ip)))
            {
                space.take(ip);
            }
        }
        PoolUpdate {
            displaced: displaced.into_iter().collect(),
            conflicts_changed: self.conflicts_changed_since(&before),
        }
    }

    /// Removes a pool; its services are released and listed in [`PoolUpdate::displaced`].
    pub fn remove_pool(&mut self, name: &str) -> PoolUpdate {
        let Some(pool) = self.pools.get(name) else {
            return PoolUpdate::default();
        };
        let before = self.conflict_lists();
        let mut displaced = BTreeSet::new();
        for ip in self.held_in(pool) {
            if let Some(entry) = self.ips.get(&ip) {
                displaced.extend(entry.holders.iter().map(|k| ServiceKey::clone(k)));
            }
        }
        for key in &displaced {
            self.detach(key);
        }
        self.pools.remove(name);
        pool::recompute_conflicts(&mut self.pools);
        PoolUpdate {
            displaced: displaced.into_iter().collect(),
            conflicts_changed: self.conflicts_changed_since(&before),
        }
    }

    /// Gives `key` addresses that satisfy `request`.
    ///
    /// When the service already holds addresses that still satisfy the request, they are kept
    /// (a no-op). When they don't, the service is moved; addresses of families it still needs
    /// are kept when their pool still fits. On error nothing changes, and a service that held
    /// addresses keeps them.
    pub fn assign(
        &mut self,
        key: &ServiceKey,
        request: &Request,
    ) -> Result<Assignment, AllocError> {
        request.validate()?;
        let terms = request.terms();
        let old = self.detach(key);
        let planned = self.plan(key, request, &terms, old.as_ref().map(|(_, h)| h));
        self.commit(key, request, terms, old, planned)
    }

    /// Re-occupies addresses a Service already holds according to its status (start-up).
    ///
    /// Only what makes holding possible is checked: each address lies in a pool in use, all in
    /// one pool, at most one per family, and sharing is compatible with services restored
    /// before. Policy (eligibility, annotations, family policy) is left to the next
    /// [`Allocator::assign`], which keeps the addresses when they still satisfy the request.
    /// So a malformed annotation never costs a Service its address.
    pub fn restore(
        &mut self,
        key: &ServiceKey,
        request: &Request,
        ips: &[IpAddr],
    ) -> Result<Assignment, AllocError> {
        if ips.is_empty() {
            return Err(AllocError::NothingToRestore);
        }
        check_one_per_family(ips)?;
        let terms = request.terms();
        let old = self.detach(key);
        let planned = self.plan_restore(ips, &terms);
        self.commit(key, request, terms, old, planned)
    }

    /// Releases everything `key` holds; returns what it held.
    pub fn release(&mut self, key: &ServiceKey) -> Option<Assignment> {
        self.detach(key).map(|(_, h)| Assignment {
            pool: h.pool.to_string(),
            ips: h.ips,
        })
    }

    /// What `key` holds.
    pub fn assignment(&self, key: &ServiceKey) -> Option<Assignment> {
        self.services.get(key).map(|h| Assignment {
            pool: h.pool.to_string(),
            ips: h.ips.clone(),
        })
    }

    /// Every service and what it holds, ordered by key. Sorts, so it is meant for whole-state
    /// passes (status, metrics, tests); use [`Allocator::assignment`] for one service.
    pub fn assignments(&self) -> impl Iterator<Item = (&ServiceKey, Assignment)> {
        let mut all: Vec<(&ServiceKey, &Holding)> =
            self.services.iter().map(|(k, h)| (&**k, h)).collect();
        all.sort_unstable_by(|a, b| a.0.cmp(b.0));
        all.into_iter().map(|(k, h)| {
            (
                k,
                Assignment {
                    pool: h.pool.to_string(),
                    ips: h.ips.clone(),
                },
            )
        })
    }

    /// The services holding `ip`, ordered by key.
    pub fn holders(&self, ip: IpAddr) -> Vec<ServiceKey> {
        self.ips
            .get(&ip)
            .map(|e| e.holders.iter().map(|k| ServiceKey::clone(k)).collect())
            .unwrap_or_default()
    }

    /// The pool in use that offers `ip` (pools in conflict and skipped addresses don't count).
    pub fn pool_of(&self, ip: IpAddr) -> Option<&str> {
        self.pools
            .values()
            .find(|p| p.is_active() && p.offers(ip))
            .map(|p| &*p.name)
    }

    pub fn pool_names(&self) -> impl Iterator<Item = &str> {
        self.pools.keys().map(String::as_str)
    }

    pub fn pool_status(&self, name: &str) -> Option<PoolStatus> {
        let pool = self.pools.get(name)?;
        Some(PoolStatus {
            conflicts_with: pool.conflicts_with.clone(),
            usage: [Family::V4, Family::V6]
                .into_iter()
                .filter_map(|family| {
                    pool.space(family).map(|s| FamilyUsage {
                        family,
                        total: s.total(),
                        in_use: s.in_use(),
                    })
                })
                .collect(),
        })
    }

    /// Number of free-list runs the pool stores (both families): its memory cost grows with
    /// this, never with the pool's size.
    pub fn free_runs(&self, name: &str) -> Option<usize> {
        self.pools
            .get(name)
            .map(|p| p.spaces().map(|s| s.free_run_count()).sum())
    }

    fn commit(
        &mut self,
        key: &ServiceKey,
        request: &Request,
        terms: Terms,
        old: Option<(Arc<ServiceKey>, Holding)>,
        planned: Result<Plan, AllocError>,
    ) -> Result<Assignment, AllocError> {
        let (shared_key, old) = match old {
            Some((k, h)) => (k, Some(h)),
            None => (Arc::new(key.clone()), None),
        };
        match planned {
            Ok(Plan { pool, mut ips }) => {
                ips.sort_by_key(|ip| request.families.rank(Family::of(*ip)));
                let assignment = Assignment {
                    pool: pool.to_string(),
                    ips: ips.clone(),
                };
                self.attach(shared_key, Holding { pool, ips, terms });
                Ok(assignment)
            }
            Err(err) => {
                if let Some(old) = old {
                    self.attach(shared_key, old);
                }
                Err(err)
            }
        }
    }

    /// Records a holding whose validity the caller has checked.
    fn attach(&mut self, key: Arc<ServiceKey>, holding: Holding) {
        for &ip in &holding.ips {
            let entry = match self.ips.entry(ip) {
                Entry::Occupied(occupied) => occupied.into_mut(),
                Entry::Vacant(vacant) => {
                    if let Some(space) = self
                        .pools
                        .get_mut(&*holding.pool)
                        .and_then(|p| p.space_mut(Family::of(ip)))
                    {
                        space.take(ip);
                    }
                    if let Some(sharing_key) = &holding.terms.sharing_key {
                        self.shared
                            .entry(sharing_key.clone())
                            .or_default()
                            .insert(ip);
                    }
                    vacant.insert(IpEntry::new(holding.pool.clone(), &holding.terms))
                }
            };
            entry.add(&key, &holding.terms);
        }
        self.services.insert(key, holding);
    }

    /// Removes a service's holding, freeing addresses nobody else holds.
    fn detach(&mut self, key: &ServiceKey) -> Option<(Arc<ServiceKey>, Holding)> {
        let (shared_key, holding) = self.services.remove_entry(key)?;
        for ip in &holding.ips {
            let now_unused = self
                .ips
                .get_mut(ip)
                .is_some_and(|e| e.remove(key, &holding.terms));
            if !now_unused {
                continue;
            }
            if let Some(entry) = self.ips.remove(ip) {
                if let Some(sharing_key) = &entry.sharing_key
                    && let Some(set) = self.shared.get_mut(sharing_key)
                {
                    set.remove(ip);
                    if set.is_empty() {
                        self.shared.remove(sharing_key);
                    }
                }
                if let Some(space) = self
                    .pools
                    .get_mut(&*entry.pool)
                    .and_then(|p| p.space_mut(Family::of(*ip)))
                {
                    space.put(*ip);
                }
            }
        }
        Some((shared_key, holding))
    }

    /// Held addresses that `pool` holds, found by range queries over its configured ranges.
    fn held_in(&self, pool: &Pool) -> Vec<IpAddr> {
        let mut held = Vec::new();
        for space in pool.spaces() {
            let family = space.family();
            for &(first, last) in space.addr_runs() {
                let (Some(first), Some(last)) =
                    (u128_to_ip(family, first), u128_to_ip(family, last))
                else {
                    continue;
                };
                held.extend(
                    self.ips
                        .range(first..=last)
                        .filter(|(_, e)| e.pool == pool.name)
                        .map(|(ip, _)| *ip),
                );
            }
        }
        held
    }

    fn conflict_lists(&self) -> BTreeMap<String, Vec<String>> {
        self.pools
            .iter()
            .map(|(n, p)| (n.clone(), p.conflicts_with.clone()))
            .collect()
    }

    fn conflicts_changed_since(&self, before: &BTreeMap<String, Vec<String>>) -> Vec<String> {
        self.pools
            .iter()
            .filter(|(n, p)| {
                before
                    .get(*n)
                    .map_or(!p.conflicts_with.is_empty(), |b| *b != p.conflicts_with)
            })
            .map(|(n, _)| n.clone())
            .collect()
    }
}
