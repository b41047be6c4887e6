//! Where a Service goes: the decision half of [`Allocator::assign`] and
//! [`Allocator::restore`]. Everything here reads state and returns a [`Plan`]; nothing mutates.

use std::net::IpAddr;

use ironlb_crds::address::{Family, u128_to_ip};

use super::pool::{Pool, auto_candidates};
use super::request::{FamilyPolicy, Request, ServiceKey, Terms};
use super::{AllocError, Allocator, Holding, Plan};

impl Allocator {
    /// Decides what `key` should hold. `old` (already detached) is what it held before.
    pub(super) fn plan(
        &self,
        key: &ServiceKey,
        request: &Request,
        terms: &Terms,
        old: Option<&Holding>,
    ) -> Result<Plan, AllocError> {
        if let Some(old) = old
            && self.still_satisfies(key, request, terms, old)
        {
            return Ok(Plan {
                pool: old.pool.clone(),
                ips: old.ips.clone(),
            });
        }
        let annotated = self.annotated_pool(key, request)?;
        if !request.requested_ips.is_empty() {
            return self.plan_requested(key, request, terms, annotated);
        }
        let candidates = match annotated {
            Some(pool) => vec![pool],
            None => auto_candidates(&self.pools, key, request),
        };
        if candidates.is_empty() {
            return Err(AllocError::NoEligiblePool);
        }
        if let Some(old) = old
            && let Some(plan) = self.plan_keeping(old, request, terms, &candidates)
        {
            return Ok(plan);
        }
        self.plan_fresh(request, terms, &candidates)
    }

    /// Plans re-occupying `ips` as they are (start-up).
    pub(super) fn plan_restore(&self, ips: &[IpAddr], terms: &Terms) -> Result<Plan, AllocError> {
        let mut first: Option<(&Pool, IpAddr)> = None;
        for &ip in ips {
            let pool = self.owner_of(ip)?;
            same_pool(&mut first, pool, ip)?;
            self.admits(ip, terms)?;
        }
        match first {
            Some((pool, _)) => Ok(Plan {
                pool: pool.name.clone(),
                ips: ips.to_vec(),
            }),
            None => Err(AllocError::NothingToRestore),
        }
    }

    /// True when what the service held still answers its (possibly changed) request.
    fn still_satisfies(
        &self,
        key: &ServiceKey,
        request: &Request,
        terms: &Terms,
        old: &Holding,
    ) -> bool {
        let Some(pool) = self.pools.get(&*old.pool) else {
            return false;
        };
        if !pool.eligible_for(key, request)
            || request.pool.as_deref().is_some_and(|p| p != &*old.pool)
            || !old.ips.iter().all(|ip| pool.offers(*ip))
        {
            return false;
        }
        let shape_ok = if request.requested_ips.is_empty() {
            let families: Vec<Family> = old.ips.iter().map(|ip| Family::of(*ip)).collect();
            request.families.accepts(&families)
        } else {
            old.ips.len() == request.requested_ips.len()
                && request.requested_ips.iter().all(|ip| old.ips.contains(ip))
        };
        shape_ok && old.ips.iter().all(|ip| self.admits(*ip, terms).is_ok())
    }

    /// The pool named by the annotation, checked for existence, conflict and eligibility.
    fn annotated_pool(
        &self,
        key: &ServiceKey,
        request: &Request,
    ) -> Result<Option<&Pool>, AllocError> {
        let Some(name) = &request.pool else {
            return Ok(None);
        };
        let pool = self
            .pools
            .get(name)
            .ok_or_else(|| AllocError::UnknownPool { pool: name.clone() })?;
        if !pool.is_active() {
            return Err(AllocError::PoolInConflict {
                pool: name.clone(),
                with: pool.conflicts_with.clone(),
            });
        }
        if !pool.eligible_for(key, request) {
            return Err(AllocError::PoolNotEligible { pool: name.clone() });
        }
        Ok(Some(pool))
    }

    fn plan_requested(
        &self,
        key: &ServiceKey,
        request: &Request,
        terms: &Terms,
        annotated: Option<&Pool>,
    ) -> Result<Plan, AllocError> {
        let mut first: Option<(&Pool, IpAddr)> = None;
        for &ip in &request.requested_ips {
            let pool = self.owner_of(ip)?;
            if let Some(wanted) = annotated
                && wanted.name != pool.name
            {
                return Err(AllocError::RequestedIpOutsideAnnotatedPool {
                    ip,
                    pool: wanted.name.to_string(),
                    actual: Some(pool.name.to_string()),
                });
            }
            if !pool.eligible_for(key, request) {
                return Err(AllocError::RequestedIpNotEligible {
                    ip,
                    pool: pool.name.to_string(),
                });
            }
            same_pool(&mut first, pool, ip)?;
            self.admits(ip, terms)?;
        }
        match first {
            Some((pool, _)) => Ok(Plan {
                pool: pool.name.clone(),
                ips: request.requested_ips.clone(),
            }),
            None => Err(AllocError::NoEligiblePool),
        }
    }

    /// Moves a service as little as possible: keeps its addresses of still-wanted families
    /// when their pool is still a candidate, and adds the missing families from that pool.
    fn plan_keeping(
        &self,
        old: &Holding,
        request: &Request,
        terms: &Terms,
        candidates: &[&Pool],
    ) -> Option<Plan> {
        let pool = candidates.iter().copied().find(|p| p.name == old.pool)?;
        for attempt in request.families.attempts() {
            let families = attempt.as_slice();
            if !pool.has_families(families) {
                continue;
            }
            let kept: Vec<IpAddr> = old
                .ips
                .iter()
                .copied()
                .filter(|ip| {
                    families.contains(&Family::of(*ip))
                        && pool.offers(*ip)
                        && self.admits(*ip, terms).is_ok()
                })
                .collect();
            if kept.is_empty() {
                continue;
            }
            let ips: Option<Vec<IpAddr>> = families
                .iter()
                .map(|&family| {
                    kept.iter()
                        .copied()
                        .find(|ip| Family::of(*ip) == family)
                        .or_else(|| self.join_or_take(pool, family, terms))
                })
                .collect();
            if let Some(ips) = ips {
                return Some(Plan {
                    pool: pool.name.clone(),
                    ips,
                });
            }
        }
        None
    }

    /// Automatic allocation over `candidates`, in order.
    fn plan_fresh(
        &self,
        request: &Request,
        terms: &Terms,
        candidates: &[&Pool],
    ) -> Result<Plan, AllocError> {
        let mut exhausted: Vec<String> = Vec::new();
        let mut family_found = false;
        for attempt in request.families.attempts() {
            let families = attempt.as_slice();
            let pools: Vec<&Pool> = candidates
                .iter()
                .copied()
                .filter(|p| p.has_families(families))
                .collect();
            if pools.is_empty() {
                continue;
            }
            family_found = true;
            // Joining a compatible shared address comes before taking a new one, in any pool.
            if terms.sharing_key.is_some() {
                for pool in &pools {
                    let joined: Option<Vec<IpAddr>> = families
                        .iter()
                        .map(|&f| self.joinable(pool, f, terms))
                        .collect();
                    if let Some(ips) = joined {
                        return Ok(Plan {
                            pool: pool.name.clone(),
                            ips,
                        });
                    }
                }
            }
            for pool in &pools {
                let taken: Option<Vec<IpAddr>> = families
                    .iter()
                    .map(|&f| self.join_or_take(pool, f, terms))
                    .collect();
                if let Some(ips) = taken {
                    return Ok(Plan {
                        pool: pool.name.clone(),
                        ips,
                    });
                }
                if !exhausted.iter().any(|n| **n == *pool.name) {
                    exhausted.push(pool.name.to_string());
                }
            }
        }
        if family_found {
            return Err(AllocError::Exhausted { pools: exhausted });
        }
        Err(match request.families {
            FamilyPolicy::RequireDualStack(families) => {
                AllocError::DualStackUnavailable { families }
            }
            policy => AllocError::FamilyUnavailable {
                families: policy.families().to_vec(),
            },
        })
    }

    /// A compatible shared address of `family` in `pool`, else the lowest free one.
    fn join_or_take(&self, pool: &Pool, family: Family, terms: &Terms) -> Option<IpAddr> {
        self.joinable(pool, family, terms)
            .or_else(|| pool.space(family)?.lowest_free())
    }

    /// The lowest address of `family` in `pool` held under the service's sharing key that the
    /// service may join. Only addresses held under that key are looked at, never the pool.
    fn joinable(&self, pool: &Pool, family: Family, terms: &Terms) -> Option<IpAddr> {
        let sharing_key = terms.sharing_key.as_ref()?;
        let candidates = self.shared.get(sharing_key)?;
        let space = pool.space(family)?;
        for &(first, last) in space.addr_runs() {
            let (first, last) = (u128_to_ip(family, first)?, u128_to_ip(family, last)?);
            for ip in candidates.range(first..=last) {
                if let Some(entry) = self.ips.get(ip)
                    && entry.pool == pool.name
                    && entry.admits(*ip, terms).is_ok()
                {
                    return Some(*ip);
                }
            }
        }
        None
    }

    /// The pool in use that offers `ip`, or the most useful reason why there is none.
    fn owner_of(&self, ip: IpAddr) -> Result<&Pool, AllocError> {
        if let Some(pool) = self.pools.values().find(|p| p.is_active() && p.offers(ip)) {
            return Ok(pool);
        }
        if let Some(pool) = self.pools.values().find(|p| p.is_active() && p.covers(ip)) {
            return Err(AllocError::IpAvoided {
                ip,
                pool: pool.name.to_string(),
            });
        }
        if let Some(pool) = self.pools.values().find(|p| p.covers(ip)) {
            return Err(AllocError::PoolInConflict {
                pool: pool.name.to_string(),
                with: pool.conflicts_with.clone(),
            });
        }
        Err(AllocError::IpNotInAnyPool { ip })
    }

    /// Checks that a service with `terms` may hold `ip` next to its current holders.
    fn admits(&self, ip: IpAddr, terms: &Terms) -> Result<(), AllocError> {
        match self.ips.get(&ip) {
            Some(entry) => entry.admits(ip, terms),
            None => Ok(()),
        }
    }
}

/// Records the pool of the first address and fails when a later one is in another pool.
fn same_pool<'a>(
    first: &mut Option<(&'a Pool, IpAddr)>,
    pool: &'a Pool,
    ip: IpAddr,
) -> Result<(), AllocError> {
    match first {
        Some((first_pool, first_ip)) if first_pool.name != pool.name => {
            Err(AllocError::IpsInDifferentPools {
                first: *first_ip,
                first_pool: first_pool.name.to_string(),
                second: ip,
                second_pool: pool.name.to_string(),
            })
        }
        Some(_) => Ok(()),
        None => {
            *first = Some((pool, ip));
            Ok(())
        }
    }
}
