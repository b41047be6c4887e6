//! Property tests: random sequences of pool and service changes, checked after every step
//! against brute-force facts computed over a small address universe.
//!
//! The universe is 12 IPv4 addresses straddling a /24 boundary (so `.255` and `.0` occur) and
//! 12 IPv6 addresses; pools, requests and sharing keys are drawn so that collisions, sharing,
//! exhaustion and overlapping pools happen often.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ironlb_crds::address::{AddressRange, Family};
use proptest::prelude::*;

use super::*;

const UNIVERSE: u8 = 12;
/// 198.51.100.250; the universe runs to 198.51.101.5.
const V4_BASE: u32 = 0xC633_64FA;

fn v4_at(offset: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(V4_BASE + u32::from(offset)))
}

fn v6_at(offset: u8) -> IpAddr {
    IpAddr::V6(Ipv6Addr::new(
        0x2001,
        0xdb8,
        0,
        0,
        0,
        0,
        0,
        u16::from(offset),
    ))
}

fn universe() -> Vec<IpAddr> {
    (0..UNIVERSE)
        .map(v4_at)
        .chain((0..UNIVERSE).map(v6_at))
        .collect()
}

const POOLS: [&str; 3] = ["p0", "p1", "p2"];
const NAMESPACES: [&str; 2] = ["a", "b"];
const SERVICES: u8 = 6;

fn service(i: u8) -> ServiceKey {
    ServiceKey::new(NAMESPACES[usize::from(i % 2)], format!("s{i}"))
}

// ---- strategies -------------------------------------------------------------------------

fn range_strategy(at: fn(u8) -> IpAddr) -> impl Strategy<Value = AddressRange> {
    // Short ranges, so that several pools are often in use side by side rather than in
    // conflict.
    (0..UNIVERSE, 1u8..=4).prop_map(move |(start, len)| {
        let end = (start + len - 1).min(UNIVERSE - 1);
        AddressRange::new(at(start), at(end)).expect("ordered")
    })
}

fn allocation_strategy() -> impl Strategy<Value = ServiceAllocation> {
    (
        0u32..3,
        proptest::sample::subsequence(NAMESPACES.to_vec(), 0..=2),
        proptest::option::of(prop_oneof![Just("prod"), Just("dev")]),
        proptest::option::of(prop_oneof![Just("front"), Just("back")]),
    )
        .prop_map(|(priority, names, env, tier)| ServiceAllocation {
            priority,
            namespaces: names.into_iter().map(String::from).collect(),
            namespace_selectors: env
                .map(|e| mk_selector(&[("env", e)]))
                .into_iter()
                .collect(),
            service_selectors: tier
                .map(|t| mk_selector(&[("tier", t)]))
                .into_iter()
                .collect(),
        })
}

fn pool_strategy() -> impl Strategy<Value = PoolConfig> {
    (
        proptest::sample::select(POOLS.to_vec()),
        proptest::collection::vec(range_strategy(v4_at), 0..=2),
        proptest::collection::vec(range_strategy(v6_at), 0..=1),
        proptest::bool::weighted(0.8),
        proptest::bool::weighted(0.3),
        proptest::option::weighted(0.5, allocation_strategy()),
        0i64..3,
    )
        .prop_map(
            |(name, v4s, v6s, auto_assign, avoid, sa, created_at)| PoolConfig {
                name: name.to_string(),
                ranges: v4s.into_iter().chain(v6s).collect(),
                auto_assign,
                avoid_buggy_ips: avoid,
                service_allocation: sa,
                created_at,
            },
        )
}

fn policy_strategy() -> impl Strategy<Value = FamilyPolicy> {
    use Family::{V4, V6};
    prop_oneof![
        3 => Just(FamilyPolicy::SingleStack(V4)),
        1 => Just(FamilyPolicy::SingleStack(V6)),
        1 => Just(FamilyPolicy::PreferDualStack([V4, V6])),
        1 => Just(FamilyPolicy::PreferDualStack([V6, V4])),
        1 => Just(FamilyPolicy::RequireDualStack([V4, V6])),
        1 => Just(FamilyPolicy::RequireDualStack([V6, V4])),
    ]
}

fn request_strategy() -> impl Strategy<Value = Request> {
    let requested = proptest::collection::vec(
        (any::<bool>(), 0..UNIVERSE).prop_map(|(six, o)| if six { v6_at(o) } else { v4_at(o) }),
        0..=2,
    );
    (
        policy_strategy(),
        prop_oneof![3 => Just(Vec::new()), 1 => requested],
        proptest::option::weighted(
            0.2,
            proptest::sample::select(vec!["p0", "p1", "p2", "gone"]),
        ),
        proptest::option::weighted(0.5, prop_oneof![Just("k1"), Just("k2")]),
        proptest::sample::subsequence(vec![tcp(80), tcp(443), udp(53)], 0..=3),
        0u8..3,
        prop_oneof![Just("prod"), Just("dev")],
        proptest::option::of(prop_oneof![Just("front"), Just("back")]),
    )
        .prop_map(
            |(families, requested_ips, pool, key, ports, backend, env, tier)| Request {
                namespace_labels: labels(&[("env", env)]),
                service_labels: tier.map(|t| labels(&[("tier", t)])).unwrap_or_default(),
                requested_ips,
                pool: pool.map(String::from),
                sharing_key: key.map(String::from),
                ports,
                backend: match backend {
                    0 => Backend::Cluster,
                    1 => Backend::Local {
                        selector: labels(&[("app", "x")]),
                    },
                    _ => Backend::Local {
                        selector: labels(&[("app", "y")]),
                    },
                },
                families,
            },
        )
}

#[derive(Clone, Debug)]
enum Op {
    SetPool(PoolConfig),
    RemovePool(&'static str),
    Assign(u8, Request),
    Release(u8),
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => pool_strategy().prop_map(Op::SetPool),
        1 => proptest::sample::select(POOLS.to_vec()).prop_map(Op::RemovePool),
        8 => (0..SERVICES, request_strategy()).prop_map(|(s, r)| Op::Assign(s, r)),
        2 => (0..SERVICES).prop_map(Op::Release),
    ]
}

// ---- brute-force facts ------------------------------------------------------------------

fn covers(config: &PoolConfig, ip: IpAddr) -> bool {
    config.ranges.iter().any(|r| r.contains(ip))
}

fn offers(config: &PoolConfig, ip: IpAddr) -> bool {
    covers(config, ip) && !(config.avoid_buggy_ips && is_buggy(ip))
}

fn age(config: &PoolConfig) -> (i64, &str) {
    (config.created_at, &config.name)
}

fn expected_conflicts(configs: &BTreeMap<String, PoolConfig>, name: &str) -> Vec<String> {
    let me = &configs[name];
    let mut older: Vec<&PoolConfig> = configs
        .values()
        .filter(|o| age(o) < age(me))
        .filter(|o| {
            universe()
                .into_iter()
                .any(|ip| covers(o, ip) && covers(me, ip))
        })
        .collect();
    older.sort_by(|a, b| age(a).cmp(&age(b)));
    older.iter().map(|o| o.name.clone()).collect()
}

fn normalized_key(request: &Request) -> Option<&str> {
    request.sharing_key.as_deref().filter(|k| !k.is_empty())
}

/// What the allocator exposes, for before/after comparisons.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Snapshot {
    assignments: BTreeMap<ServiceKey, Assignment>,
    pools: BTreeMap<String, PoolStatus>,
}

fn snapshot(alloc: &Allocator) -> Snapshot {
    Snapshot {
        assignments: alloc.assignments().map(|(k, a)| (k.clone(), a)).collect(),
        pools: alloc
            .pool_names()
            .map(|n| (n.to_string(), alloc.pool_status(n).expect("listed")))
            .collect(),
    }
}

fn held_by_anyone(snap: &Snapshot) -> BTreeSet<IpAddr> {
    snap.assignments
        .values()
        .flat_map(|a| a.ips.clone())
        .collect()
}

// ---- the model --------------------------------------------------------------------------

#[derive(Default)]
struct Model {
    configs: BTreeMap<String, PoolConfig>,
    /// The request each holding service holds its addresses under.
    requests: BTreeMap<ServiceKey, Request>,
}

fn check_invariants(alloc: &Allocator, model: &Model) -> Result<(), TestCaseError> {
    let snap = snapshot(alloc);
    prop_assert_eq!(
        snap.assignments.keys().collect::<Vec<_>>(),
        model.requests.keys().collect::<Vec<_>>()
    );
    // Every holding is valid: one pool in use that offers every address, one per family.
    let mut holders_of: BTreeMap<IpAddr, BTreeSet<ServiceKey>> = BTreeMap::new();
    for (key, assignment) in &snap.assignments {
        prop_assert!(!assignment.ips.is_empty());
        let families: BTreeSet<Family> = assignment.ips.iter().map(|ip| Family::of(*ip)).collect();
        prop_assert_eq!(families.len(), assignment.ips.len());
        for ip in &assignment.ips {
            prop_assert_eq!(alloc.pool_of(*ip), Some(assignment.pool.as_str()));
            holders_of.entry(*ip).or_default().insert(key.clone());
        }
    }
    // No address is held by two services unless they may share it.
    for (ip, holders) in &holders_of {
        prop_assert_eq!(
            &alloc.holders(*ip).into_iter().collect::<BTreeSet<_>>(),
            holders
        );
        if holders.len() > 1 {
            let requests: Vec<&Request> = holders.iter().map(|k| &model.requests[k]).collect();
            let sharing_key = normalized_key(requests[0]);
            prop_assert!(sharing_key.is_some(), "{ip} shared without a key");
            let mut ports = BTreeSet::new();
            for r in &requests {
                prop_assert_eq!(normalized_key(r), sharing_key);
                prop_assert_eq!(&r.backend, &requests[0].backend);
                for p in &r.ports {
                    prop_assert!(ports.insert(*p), "{ip}: port {p} used twice");
                }
            }
        }
    }
    // Pools: conflicts and usage match brute force.
    prop_assert_eq!(
        snap.pools.keys().collect::<Vec<_>>(),
        model.configs.keys().collect::<Vec<_>>()
    );
    for (name, config) in &model.configs {
        let status = &snap.pools[name];
        prop_assert_eq!(
            &status.conflicts_with,
            &expected_conflicts(&model.configs, name)
        );
        let mut expected = Vec::new();
        for family in [Family::V4, Family::V6] {
            let total = universe()
                .into_iter()
                .filter(|ip| Family::of(*ip) == family && offers(config, *ip))
                .count() as u128;
            let in_use = holders_of
                .keys()
                .filter(|ip| Family::of(**ip) == family)
                .filter(|ip| alloc.pool_of(**ip) == Some(name.as_str()))
                .count() as u128;
            let configured = universe()
                .into_iter()
                .any(|ip| Family::of(ip) == family && covers(config, ip));
            if configured {
                expected.push(FamilyUsage {
                    family,
                    total,
                    in_use,
                });
            }
        }
        prop_assert_eq!(&status.usage, &expected);
    }
    Ok(())
}

/// The pools automatic allocation must try, in order (an independent statement of the rule).
fn expected_candidates(model: &Model, key: &ServiceKey, req: &Request) -> Vec<String> {
    let active = |c: &&PoolConfig| expected_conflicts(&model.configs, &c.name).is_empty();
    let mut pinned: Vec<(bool, u32, String)> = Vec::new();
    let mut general: Vec<String> = Vec::new();
    for config in model
        .configs
        .values()
        .filter(active)
        .filter(|c| c.auto_assign)
    {
        match &config.service_allocation {
            None => general.push(config.name.clone()),
            Some(sa) => {
                let ns_ok = (sa.namespaces.is_empty() && sa.namespace_selectors.is_empty())
                    || sa.namespaces.contains(&key.namespace)
                    || sa
                        .namespace_selectors
                        .iter()
                        .any(|s| s.matches(&req.namespace_labels));
                let svc_ok = sa.service_selectors.is_empty()
                    || sa
                        .service_selectors
                        .iter()
                        .any(|s| s.matches(&req.service_labels));
                if ns_ok && svc_ok {
                    pinned.push((sa.priority == 0, sa.priority, config.name.clone()));
                }
            }
        }
    }
    pinned.sort();
    pinned
        .into_iter()
        .map(|(_, _, n)| n)
        .chain(general)
        .collect()
}

fn check_assign(
    alloc: &mut Allocator,
    model: &mut Model,
    key: &ServiceKey,
    req: &Request,
) -> Result<(), TestCaseError> {
    let before = snapshot(alloc);
    let had = before.assignments.get(key).cloned();
    match alloc.assign(key, req) {
        Err(_) => {
            // A failed assign changes nothing; a holding service keeps its addresses.
            prop_assert_eq!(&snapshot(alloc), &before);
        }
        Ok(got) => {
            let families: Vec<Family> = got.ips.iter().map(|ip| Family::of(*ip)).collect();
            prop_assert!(
                req.families.accepts(&families),
                "{:?} for {:?}",
                got,
                req.families
            );
            let mut sorted = families.clone();
            sorted.sort_by_key(|f| req.families.rank(*f));
            prop_assert_eq!(&sorted, &families, "addresses follow ipFamilies order");
            if !req.requested_ips.is_empty() {
                let want: BTreeSet<IpAddr> = req.requested_ips.iter().copied().collect();
                prop_assert_eq!(got.ips.iter().copied().collect::<BTreeSet<_>>(), want);
            }
            if let Some(pool) = &req.pool {
                prop_assert_eq!(&got.pool, pool);
            }
            let config = &model.configs[&got.pool];
            if let Some(sa) = &config.service_allocation {
                prop_assert!(sa.selects(&key.namespace, req), "pool not eligible");
            }
            // A new automatic SingleStack allocation joins the lowest compatible shared address
            // of the first candidate pool that has one; failing that, it takes the lowest free
            // address of the first candidate pool that has one.
            if had.is_none()
                && req.requested_ips.is_empty()
                && let FamilyPolicy::SingleStack(family) = req.families
            {
                let held = held_by_anyone(&before);
                let free_in = |pool: &str| -> Vec<IpAddr> {
                    universe()
                        .into_iter()
                        .filter(|ip| Family::of(*ip) == family)
                        .filter(|ip| offers(&model.configs[pool], *ip) && !held.contains(ip))
                        .collect()
                };
                let joinable_in = |pool: &str| -> Vec<IpAddr> {
                    let Some(sharing_key) = normalized_key(req) else {
                        return Vec::new();
                    };
                    let mut holders_of: BTreeMap<IpAddr, Vec<&ServiceKey>> = BTreeMap::new();
                    for (k, a) in before.assignments.iter().filter(|(_, a)| a.pool == pool) {
                        for ip in &a.ips {
                            holders_of.entry(*ip).or_default().push(k);
                        }
                    }
                    holders_of
                        .into_iter()
                        .filter(|(ip, _)| Family::of(*ip) == family)
                        .filter(|(_, holders)| {
                            holders.iter().all(|h| {
                                let theirs = &model.requests[*h];
                                normalized_key(theirs) == Some(sharing_key)
                                    && theirs.backend == req.backend
                                    && theirs.ports.iter().all(|p| !req.ports.contains(p))
                            })
                        })
                        .map(|(ip, _)| ip)
                        .collect()
                };
                let candidates = match &req.pool {
                    Some(p) => vec![p.clone()],
                    None => expected_candidates(model, key, req),
                };
                let expected = candidates
                    .iter()
                    .find_map(|p| joinable_in(p).first().map(|ip| (p.clone(), *ip)))
                    .or_else(|| {
                        candidates
                            .iter()
                            .find_map(|p| free_in(p).first().map(|ip| (p.clone(), *ip)))
                    });
                prop_assert_eq!(expected, Some((got.pool.clone(), got.ips[0])));
            }
            model.requests.insert(key.clone(), req.clone());
            // Reconciling again with the same request is a no-op.
            let after = snapshot(alloc);
            prop_assert_eq!(alloc.assign(key, req), Ok(got));
            prop_assert_eq!(&snapshot(alloc), &after);
        }
    }
    Ok(())
}

fn check_release(
    alloc: &mut Allocator,
    model: &mut Model,
    key: &ServiceKey,
) -> Result<(), TestCaseError> {
    let released = alloc.release(key);
    prop_assert_eq!(released.is_some(), model.requests.remove(key).is_some());
    // Every address nobody holds any more can be requested again at once.
    for ip in released.map(|a| a.ips).unwrap_or_default() {
        if !alloc.holders(ip).is_empty() {
            continue;
        }
        let pool = alloc.pool_of(ip).expect("still offered").to_string();
        let mut probe = alloc.clone();
        // Lift the pool's serviceAllocation so that the probe is eligible; nothing else moves.
        let update = probe.set_pool(PoolConfig {
            service_allocation: None,
            ..model.configs[&pool].clone()
        });
        prop_assert!(update.displaced.is_empty());
        let req = Request {
            requested_ips: vec![ip],
            ..Request::new(FamilyPolicy::SingleStack(Family::of(ip)))
        };
        let got = probe.assign(&ServiceKey::new("probe", "probe"), &req);
        prop_assert_eq!(got.map(|a| a.ips), Ok(vec![ip]));
    }
    Ok(())
}

fn check_pool_change(
    alloc: &mut Allocator,
    model: &mut Model,
    op: &Op,
) -> Result<(), TestCaseError> {
    let before = snapshot(alloc);
    let update = match op {
        Op::SetPool(config) => {
            model.configs.insert(config.name.clone(), config.clone());
            alloc.set_pool(config.clone())
        }
        Op::RemovePool(name) => {
            model.configs.remove(*name);
            let update = alloc.remove_pool(name);
            let expected: Vec<ServiceKey> = before
                .assignments
                .iter()
                .filter(|(_, a)| a.pool == *name)
                .map(|(k, _)| k.clone())
                .collect();
            prop_assert_eq!(&update.displaced, &expected);
            update
        }
        _ => unreachable!("not a pool change"),
    };
    let after = snapshot(alloc);
    for (key, was) in &before.assignments {
        if update.displaced.contains(key) {
            // Displaced only for a reason: one of its addresses is no longer offered there.
            prop_assert!(
                was.ips
                    .iter()
                    .any(|ip| alloc.pool_of(*ip) != Some(was.pool.as_str())),
                "{key} displaced needlessly"
            );
            prop_assert!(!after.assignments.contains_key(key));
            model.requests.remove(key);
        } else {
            prop_assert_eq!(after.assignments.get(key), Some(was), "{} moved", key);
        }
    }
    for name in &update.conflicts_changed {
        prop_assert_ne!(
            before.pools.get(name).map(|s| &s.conflicts_with),
            after.pools.get(name).map(|s| &s.conflicts_with)
        );
    }
    Ok(())
}

/// Rebuilds a fresh allocator from `alloc`'s own assignments and checks it is indistinguishable,
/// then reconciles every service on both and checks they still agree.
fn check_restore(alloc: &mut Allocator, model: &Model) -> Result<(), TestCaseError> {
    let mut fresh = Allocator::new();
    // Insertion order must not matter: conflicts go by age.
    for config in model.configs.values().rev() {
        fresh.set_pool(config.clone());
    }
    for (key, assignment) in alloc.assignments() {
        let restored = fresh.restore(key, &model.requests[key], &assignment.ips);
        prop_assert_eq!(restored, Ok(assignment));
    }
    prop_assert_eq!(snapshot(&fresh), snapshot(alloc));
    for (key, req) in &model.requests {
        prop_assert_eq!(alloc.assign(key, req), fresh.assign(key, req));
    }
    prop_assert_eq!(snapshot(&fresh), snapshot(alloc));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_histories_keep_every_invariant(ops in proptest::collection::vec(op_strategy(), 1..48)) {
        let mut alloc = Allocator::new();
        let mut model = Model::default();
        for op in &ops {
            match op {
                Op::SetPool(_) | Op::RemovePool(_) => check_pool_change(&mut alloc, &mut model, op)?,
                Op::Assign(i, req) => check_assign(&mut alloc, &mut model, &service(*i), req)?,
                Op::Release(i) => check_release(&mut alloc, &mut model, &service(*i))?,
            }
            check_invariants(&alloc, &model)?;
        }
        // The model's requests may have gone stale through pool changes; reconcile everything
        // so the restore check also covers services moved by a reconcile.
        check_restore(&mut alloc, &model)?;
    }
}
