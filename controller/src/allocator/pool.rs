//! Address pools as the allocator sees them: configuration, eligibility, ordering, conflicts.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use ironlb_crds::address::{AddressRange, Family};
use ironlb_crds::selector::{Selector, any_matches};

use super::request::{Request, ServiceKey};
use super::space::FamilySpace;

/// One `IPAddressPool`, already parsed and validated by the controller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolConfig {
    pub name: String,
    /// Parsed `spec.addresses`, of either family. Overlapping entries are merged.
    pub ranges: Vec<AddressRange>,
    pub auto_assign: bool,
    pub avoid_buggy_ips: bool,
    pub service_allocation: Option<ServiceAllocation>,
    /// `metadata.creationTimestamp` in seconds since the epoch: the older pool wins an overlap
    /// (ties go to the smaller name). Use `i64::MAX` when unknown, so such a pool never wins.
    pub created_at: i64,
}

impl PoolConfig {
    /// A pool with MetalLB's defaults: autoAssign on, avoidBuggyIPs off, no serviceAllocation.
    pub fn new(name: impl Into<String>, ranges: Vec<AddressRange>) -> Self {
        PoolConfig {
            name: name.into(),
            ranges,
            auto_assign: true,
            avoid_buggy_ips: false,
            service_allocation: None,
            created_at: 0,
        }
    }
}

/// `spec.serviceAllocation`: which services a pool is for, and its priority among such pools.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceAllocation {
    /// Lower is tried first; 0 means unset and sorts after every set priority.
    pub priority: u32,
    pub namespaces: BTreeSet<String>,
    pub namespace_selectors: Vec<Selector>,
    pub service_selectors: Vec<Selector>,
}

impl ServiceAllocation {
    /// MetalLB's rule: the namespace must be listed in `namespaces` or match one of
    /// `namespaceSelectors` (when either is set), and the Service must match one of
    /// `serviceSelectors` (when set).
    pub fn selects(&self, namespace: &str, request: &Request) -> bool {
        let namespace_ok = (self.namespaces.is_empty() && self.namespace_selectors.is_empty())
            || self.namespaces.contains(namespace)
            || self
                .namespace_selectors
                .iter()
                .any(|s| s.matches(&request.namespace_labels));
        namespace_ok && any_matches(&self.service_selectors, &request.service_labels)
    }

    fn sort_key(&self) -> (bool, u32) {
        (self.priority == 0, self.priority)
    }
}

/// A pool's configuration plus its live state.
#[derive(Clone, Debug)]
pub(crate) struct Pool {
    pub(crate) name: Arc<str>,
    pub(crate) config: PoolConfig,
    v4: Option<FamilySpace>,
    v6: Option<FamilySpace>,
    /// Older pools this one overlaps; a pool is used only while this is empty.
    pub(crate) conflicts_with: Vec<String>,
}

impl Pool {
    pub(crate) fn new(config: PoolConfig) -> Self {
        let v4 = FamilySpace::new(Family::V4, &config.ranges, config.avoid_buggy_ips);
        let v6 = FamilySpace::new(Family::V6, &config.ranges, config.avoid_buggy_ips);
        Pool {
            name: Arc::from(config.name.as_str()),
            config,
            v4,
            v6,
            conflicts_with: Vec::new(),
        }
    }

    pub(crate) fn space(&self, family: Family) -> Option<&FamilySpace> {
        match family {
            Family::V4 => self.v4.as_ref(),
            Family::V6 => self.v6.as_ref(),
        }
    }

    pub(crate) fn space_mut(&mut self, family: Family) -> Option<&mut FamilySpace> {
        match family {
            Family::V4 => self.v4.as_mut(),
            Family::V6 => self.v6.as_mut(),
        }
    }

    pub(crate) fn spaces(&self) -> impl Iterator<Item = &FamilySpace> {
        self.v4.iter().chain(self.v6.iter())
    }

    pub(crate) fn is_active(&self) -> bool {
        self.conflicts_with.is_empty()
    }

    pub(crate) fn has_families(&self, families: &[Family]) -> bool {
        families.iter().all(|&f| self.space(f).is_some())
    }

    /// True when the pool offers `ip` to services (in range, and not skipped).
    pub(crate) fn offers(&self, ip: IpAddr) -> bool {
        self.space(Family::of(ip)).is_some_and(|s| s.offers(ip))
    }

    /// True when `ip` lies in the configured ranges, usable or not.
    pub(crate) fn covers(&self, ip: IpAddr) -> bool {
        self.space(Family::of(ip)).is_some_and(|s| s.covers(ip))
    }

    /// True when the pool is in use and its serviceAllocation (if any) selects the service.
    pub(crate) fn eligible_for(&self, key: &ServiceKey, request: &Request) -> bool {
        self.is_active()
            && self
                .config
                .service_allocation
                .as_ref()
                .is_none_or(|sa| sa.selects(&key.namespace, request))
    }

    fn age(&self) -> (i64, &str) {
        (self.config.created_at, &self.name)
    }

    fn overlaps(&self, other: &Pool) -> bool {
        self.spaces()
            .any(|mine| other.spaces().any(|theirs| mine.overlaps(theirs)))
    }
}

/// Pools for automatic allocation, in the order they are tried: pools whose serviceAllocation
/// selects the service by priority (0 last, ties by name), then autoAssign pools without a
/// serviceAllocation by name. Pools with autoAssign off are never picked automatically.
pub(crate) fn auto_candidates<'a>(
    pools: &'a BTreeMap<String, Pool>,
    key: &ServiceKey,
    request: &Request,
) -> Vec<&'a Pool> {
    let mut pinned: Vec<(&ServiceAllocation, &Pool)> = Vec::new();
    let mut general: Vec<&Pool> = Vec::new();
    for pool in pools.values() {
        if !pool.config.auto_assign || !pool.is_active() {
            continue;
        }
        match &pool.config.service_allocation {
            Some(sa) if sa.selects(&key.namespace, request) => pinned.push((sa, pool)),
            Some(_) => {}
            None => general.push(pool),
        }
    }
    // `pools` iterates by name, and the sort is stable, so ties stay in name order.
    pinned.sort_by_key(|(sa, _)| sa.sort_key());
    pinned
        .into_iter()
        .map(|(_, pool)| pool)
        .chain(general)
        .collect()
}

/// Recomputes every pool's `conflicts_with`: each pool lists the older pools it overlaps.
///
/// A pool's status depends only on older pools' configuration, not on whether those are in
/// use themselves, so adding a young pool never disturbs an older one and removing a pool
/// changes only the pools that overlapped it.
pub(crate) fn recompute_conflicts(pools: &mut BTreeMap<String, Pool>) {
    let mut by_age: Vec<&Pool> = pools.values().collect();
    by_age.sort_by(|a, b| a.age().cmp(&b.age()));
    let mut conflicts: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (i, young) in by_age.iter().enumerate() {
        let older: Vec<String> = by_age[..i]
            .iter()
            .filter(|old| old.overlaps(young))
            .map(|old| old.name.to_string())
            .collect();
        conflicts.insert(young.name.to_string(), older);
    }
    for (name, with) in conflicts {
        if let Some(pool) = pools.get_mut(&name) {
            pool.conflicts_with = with;
        }
    }
}
