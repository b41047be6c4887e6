//! Property tests over random histories of Services and pools, with the [`World`] as the API.
//!
//! After any history:
//! - the brain converges (the world settles) and what the world shows is what the brain holds;
//! - no address is shown by two Services unless both carry the same sharing key;
//! - a restart (a fresh brain over the same world) writes nothing and moves no address.

use std::collections::BTreeMap;

use ironlb_crds::annotations::{ALLOW_SHARED_IP, LOAD_BALANCER_IPS};
use ironlb_crds::v1beta1::IPAddressPoolSpec;
use proptest::prelude::*;

use super::*;

const RANGES: [&str; 5] = [
    "198.51.100.0/30",
    "198.51.100.2/31",
    "198.51.100.8/30",
    "198.51.100.16-198.51.100.17",
    "203.0.113.5",
];

#[derive(Clone, Debug)]
enum Op {
    Create {
        service: usize,
        requested: Option<u8>,
        shared: bool,
        port: u16,
    },
    Delete(usize),
    ToggleType(usize),
    ToggleClass(usize),
    Garble(usize),
    SetPool {
        pool: usize,
        ranges: Vec<usize>,
    },
    BreakPool(usize),
    DeletePool(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..6usize, proptest::option::of(0..20u8), any::<bool>(), 80..83u16).prop_map(
            |(service, requested, shared, port)| Op::Create { service, requested, shared, port }
        ),
        1 => (0..6usize).prop_map(Op::Delete),
        1 => (0..6usize).prop_map(Op::ToggleType),
        1 => (0..6usize).prop_map(Op::ToggleClass),
        1 => (0..6usize).prop_map(Op::Garble),
        2 => (0..3usize, proptest::collection::vec(0..RANGES.len(), 1..3))
            .prop_map(|(pool, ranges)| Op::SetPool { pool, ranges }),
        1 => (0..3usize).prop_map(Op::BreakPool),
        1 => (0..3usize).prop_map(Op::DeletePool),
    ]
}

fn pool_name(i: usize) -> String {
    format!("p{i}")
}

/// A valid spec from distinct, non-overlapping entries of `RANGES`.
fn valid_spec(ranges: &[usize]) -> IPAddressPoolSpec {
    let mut chosen: Vec<&str> = Vec::new();
    for &i in ranges {
        let entry = RANGES[i];
        let overlaps = |a: &str, b: &str| {
            let (a, b) = (
                ironlb_crds::address::parse_address_entry(a).unwrap(),
                ironlb_crds::address::parse_address_entry(b).unwrap(),
            );
            a.overlaps(&b)
        };
        if !chosen.iter().any(|c| overlaps(c, entry)) {
            chosen.push(entry);
        }
    }
    IPAddressPoolSpec {
        addresses: chosen.iter().map(|s| s.to_string()).collect(),
        auto_assign: true,
        avoid_buggy_ips: false,
        service_allocation: None,
    }
}

fn apply(world: &mut World, brain: &mut Brain, op: &Op, step: i64) {
    match op {
        Op::Create {
            service,
            requested,
            shared,
            port,
        } => {
            let name = format!("s{service}");
            let mut svc = mk_service(&name, *service as i64);
            spec_mut(&mut svc).ports.as_mut().unwrap()[0].port = i32::from(*port);
            if let Some(last) = requested {
                svc = annotate(svc, LOAD_BALANCER_IPS, &format!("198.51.100.{last}"));
            }
            if *shared {
                svc = annotate(svc, ALLOW_SHARED_IP, "k");
            }
            update(world, brain, svc);
        }
        Op::Delete(service) => {
            let key = key(&format!("s{service}"));
            if world.services.remove(&key).is_some() {
                let out = brain.delete_service(&key);
                world.settle(brain, &out);
            }
        }
        Op::ToggleType(service) => {
            let key = key(&format!("s{service}"));
            if let Some(mut svc) = world.services.get(&key).cloned() {
                let spec = spec_mut(&mut svc);
                spec.type_ = Some(if spec.type_.as_deref() == Some("LoadBalancer") {
                    "ClusterIP".into()
                } else {
                    "LoadBalancer".into()
                });
                update(world, brain, svc);
            }
        }
        Op::ToggleClass(service) => {
            let key = key(&format!("s{service}"));
            if let Some(mut svc) = world.services.get(&key).cloned() {
                let spec = spec_mut(&mut svc);
                spec.load_balancer_class = match spec.load_balancer_class {
                    None => Some("example.com/other".into()),
                    Some(_) => None,
                };
                update(world, brain, svc);
            }
        }
        Op::Garble(service) => {
            let key = key(&format!("s{service}"));
            if let Some(svc) = world.services.get(&key).cloned() {
                update(world, brain, annotate(svc, LOAD_BALANCER_IPS, "not-an-ip"));
            }
        }
        Op::SetPool { pool, ranges } => set_pool(world, brain, *pool, valid_spec(ranges), step),
        Op::BreakPool(pool) => {
            let spec = IPAddressPoolSpec {
                addresses: vec!["198.51.100.9-198.51.100.1".into()],
                ..valid_spec(&[0])
            };
            if world.pools.contains_key(&pool_name(*pool)) {
                set_pool(world, brain, *pool, spec, step);
            }
        }
        Op::DeletePool(pool) => {
            if world.pools.remove(&pool_name(*pool)).is_some() {
                let out = brain.delete_pool(&pool_name(*pool));
                world.settle(brain, &out);
            }
        }
    }
}

fn set_pool(world: &mut World, brain: &mut Brain, pool: usize, spec: IPAddressPoolSpec, step: i64) {
    let name = pool_name(pool);
    let mut object = match world.pools.get(&name) {
        Some(old) => {
            let mut object = old.clone();
            object.spec = spec;
            object.metadata.generation = Some(old.metadata.generation.unwrap_or(1) + 1);
            object
        }
        None => mk_pool_spec(&name, spec, 1000 + step),
    };
    // Keep the status the world shows; the brain reads it to compare.
    object.status = world.pools.get(&name).and_then(|p| p.status.clone());
    world.add_pool(object.clone());
    let out = brain.apply_pool(&object);
    world.settle(brain, &out);
}

fn check_world(world: &World, brain: &Brain) {
    let mut holders: BTreeMap<IpAddr, Vec<(ServiceKey, Option<String>)>> = BTreeMap::new();
    for (key, svc) in &world.services {
        let view = ServiceView::from_service(svc).unwrap();
        let shown = view.shown_ips();
        let held = brain.assignment(key).map(|a| a.ips).unwrap_or_default();
        assert_eq!(shown, held, "{key}: the world shows what the brain holds");
        for ip in shown {
            holders.entry(ip).or_default().push((
                key.clone(),
                view.annotations.get(ALLOW_SHARED_IP).map(str::to_string),
            ));
        }
    }
    for (ip, list) in holders {
        if list.len() > 1 {
            assert!(
                list.iter().all(|(_, k)| k.as_deref() == Some("k")),
                "{ip} shown by {list:?} without a common sharing key"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn histories_converge_stay_consistent_and_survive_a_restart(ops in proptest::collection::vec(op(), 1..25)) {
        let mut world = World::default();
        let (mut brain, out) = world.start(mk_brain());
        world.settle(&mut brain, &out);
        for (step, op) in ops.iter().enumerate() {
            apply(&mut world, &mut brain, op, step as i64);
            check_world(&world, &brain);
        }
        // Repair broken pools: a restart cannot know their last valid version.
        let broken: Vec<usize> = (0..3)
            .filter(|i| {
                world.pools.get(&pool_name(*i)).is_some_and(|p| {
                    ironlb_crds::pool::Pool::from_spec(&p.spec).is_err()
                })
            })
            .collect();
        for pool in broken {
            set_pool(&mut world, &mut brain, pool, valid_spec(&[0]), 99);
        }
        check_world(&world, &brain);

        let (after, out) = world.start(mk_brain());
        let writes: Vec<&Intent> = out
            .intents
            .iter()
            .filter(|i| !matches!(i, Intent::Event(_)))
            .collect();
        prop_assert!(writes.is_empty(), "a restart wrote {:?}", writes);
        for (reason, _) in events(&out) {
            prop_assert!(
                [ironlb_crds::events::ALLOCATION_FAILED, ironlb_crds::events::INVALID_ANNOTATION]
                    .contains(&reason),
                "only unresolved problems are reported again, not {}", reason
            );
        }
        for key in world.services.keys() {
            prop_assert_eq!(after.assignment(key), brain.assignment(key));
        }
    }
}
