//! Pool changes: conflicts between overlapping pools, displacement, usage and cost.

use ironlb_crds::address::Family::{V4, V6};

use super::*;

#[test]
fn overlapping_pools_the_older_wins_and_the_younger_is_unused() {
    let mut a = mk_alloc(vec![mk_pool_at("old", &["198.51.100.0/28"], 100)]);
    let update = a.set_pool(mk_pool_at(
        "young",
        &["198.51.100.8/29", "203.0.113.0/28"],
        200,
    ));
    assert_eq!(update.conflicts_changed, vec!["young".to_string()]);
    assert_eq!(
        a.pool_status("young").unwrap().conflicts_with,
        vec!["old".to_string()]
    );
    assert!(a.pool_status("old").unwrap().conflicts_with.is_empty());
    // Even the young pool's non-overlapping addresses are unused.
    let got: Vec<String> = (0..16)
        .map(|i| a.assign(&key(&format!("s{i}")), &v4()).unwrap().pool)
        .collect();
    assert!(got.iter().all(|p| p == "old"));
    assert_eq!(
        a.assign(&key("more"), &v4()),
        Err(AllocError::Exhausted {
            pools: vec!["old".into()]
        })
    );
    let req = Request {
        pool: Some("young".into()),
        ..v4()
    };
    assert_eq!(
        a.assign(&key("x"), &req),
        Err(AllocError::PoolInConflict {
            pool: "young".into(),
            with: vec!["old".into()]
        })
    );
    let req = Request {
        requested_ips: ips(&["203.0.113.1"]),
        ..v4()
    };
    assert_eq!(
        a.assign(&key("x"), &req),
        Err(AllocError::PoolInConflict {
            pool: "young".into(),
            with: vec!["old".into()]
        })
    );
    assert_eq!(a.pool_of(ip("203.0.113.1")), None);
    assert_eq!(a.pool_of(ip("198.51.100.9")), Some("old"));
}

#[test]
fn conflicts_between_pools_of_the_same_age_go_by_name() {
    let a = mk_alloc(vec![
        mk_pool_at("b", &["198.51.100.0/28"], 7),
        mk_pool_at("a", &["198.51.100.4"], 7),
    ]);
    assert_eq!(
        a.pool_status("b").unwrap().conflicts_with,
        vec!["a".to_string()]
    );
    assert!(a.pool_status("a").unwrap().conflicts_with.is_empty());
}

#[test]
fn conflict_resolution_does_not_depend_on_insertion_order() {
    let pools = [
        mk_pool_at("x", &["198.51.100.0/28"], 3),
        mk_pool_at("y", &["198.51.100.8/29"], 1),
        mk_pool_at("z", &["198.51.100.12/30", "203.0.113.0/28"], 2),
    ];
    let forward = mk_alloc(pools.to_vec());
    let backward = mk_alloc(pools.iter().rev().cloned().collect());
    for name in ["x", "y", "z"] {
        assert_eq!(forward.pool_status(name), backward.pool_status(name));
    }
    assert_eq!(
        forward.pool_status("x").unwrap().conflicts_with,
        vec!["y".to_string(), "z".to_string()]
    );
    assert_eq!(
        forward.pool_status("z").unwrap().conflicts_with,
        vec!["y".to_string()]
    );
}

#[test]
fn an_older_overlapping_pool_displaces_the_younger_pools_services() {
    let mut a = mk_alloc(vec![mk_pool_at("young", &["198.51.100.0/28"], 200)]);
    assign_ips(&mut a, &key("x"), &v4());
    assign_ips(&mut a, &key("y"), &v4());
    let update = a.set_pool(mk_pool_at("old", &["198.51.100.15"], 100));
    assert_eq!(update.displaced, vec![key("x"), key("y")]);
    assert_eq!(update.conflicts_changed, vec!["young".to_string()]);
    assert_eq!(a.assignment(&key("x")), None);
    assert_eq!(usage(&a, "young", V4), (16, 0));
    assert_eq!(
        assign_ips(&mut a, &key("x"), &v4()),
        ips(&["198.51.100.15"])
    );
}

#[test]
fn removing_the_older_pool_ends_the_conflict() {
    let mut a = mk_alloc(vec![
        mk_pool_at("old", &["198.51.100.0/28"], 1),
        mk_pool_at("young", &["198.51.100.0/27"], 2),
    ]);
    let held = assign_ips(&mut a, &key("x"), &v4());
    let update = a.remove_pool("old");
    assert_eq!(update.displaced, vec![key("x")]);
    assert_eq!(update.conflicts_changed, vec!["young".to_string()]);
    assert_eq!(a.assign(&key("x"), &v4()).unwrap().ips, held);
    assert_eq!(a.assignment(&key("x")).unwrap().pool, "young");
    assert_eq!(a.remove_pool("old"), PoolUpdate::default());
}

#[test]
fn a_young_pool_in_conflict_does_not_disturb_anyone() {
    let mut a = mk_alloc(vec![mk_pool_at("old", &["198.51.100.0/28"], 1)]);
    let held = assign_ips(&mut a, &key("x"), &v4());
    let update = a.set_pool(mk_pool_at("young", &["198.51.100.0/24"], 2));
    assert!(update.displaced.is_empty());
    assert_eq!(a.assignment(&key("x")).unwrap().ips, held);
    let update = a.remove_pool("young");
    assert!(update.displaced.is_empty());
    assert_eq!(a.assignment(&key("x")).unwrap().ips, held);
}

#[test]
fn shrinking_a_pool_displaces_only_the_services_it_no_longer_covers() {
    let mut a = mk_alloc(vec![mk_pool("p", &["198.51.100.0/28"])]);
    for name in ["a", "b", "c"] {
        assign_ips(&mut a, &key(name), &v4()); // .0 .1 .2
    }
    let update = a.set_pool(mk_pool("p", &["198.51.100.0", "198.51.100.2-198.51.100.9"]));
    assert_eq!(update.displaced, vec![key("b")]);
    assert!(update.conflicts_changed.is_empty());
    assert_eq!(usage(&a, "p", V4), (9, 2));
    assert_eq!(a.assignment(&key("a")).unwrap().ips, ips(&["198.51.100.0"]));
    assert_eq!(a.assignment(&key("c")).unwrap().ips, ips(&["198.51.100.2"]));
    // The kept addresses are not handed out again.
    assert_eq!(assign_ips(&mut a, &key("b"), &v4()), ips(&["198.51.100.3"]));
}

#[test]
fn growing_a_pool_keeps_everyone_and_offers_the_new_addresses() {
    let mut a = mk_alloc(vec![mk_pool("p", &["198.51.100.5"])]);
    assign_ips(&mut a, &key("a"), &v4());
    let update = a.set_pool(mk_pool("p", &["198.51.100.0/29", "2001:db8::/126"]));
    assert!(update.displaced.is_empty());
    assert_eq!(usage(&a, "p", V4), (8, 1));
    assert_eq!(usage(&a, "p", V6), (4, 0));
    let got: Vec<IpAddr> = (0..7)
        .flat_map(|i| assign_ips(&mut a, &key(&format!("n{i}")), &v4()))
        .collect();
    assert!(!got.contains(&ip("198.51.100.5")));
    assert_eq!(got.len(), 7);
}

#[test]
fn enabling_avoid_buggy_ips_displaces_services_on_skipped_addresses() {
    let mut a = mk_alloc(vec![mk_pool("p", &["198.51.100.0/24"])]);
    assign_ips(&mut a, &key("zero"), &v4());
    assign_ips(&mut a, &key("one"), &v4());
    let update = a.set_pool(PoolConfig {
        avoid_buggy_ips: true,
        ..mk_pool("p", &["198.51.100.0/24"])
    });
    assert_eq!(update.displaced, vec![key("zero")]);
    assert_eq!(usage(&a, "p", V4), (254, 1));
}

#[test]
fn a_displaced_dual_stack_service_loses_both_addresses_but_co_holders_keep_theirs() {
    let mut a = mk_alloc(vec![mk_pool("p", &["198.51.100.0/28", "2001:db8::/120"])]);
    let dual = Request {
        sharing_key: Some("k".into()),
        ports: vec![tcp(80)],
        ..mk_req(FamilyPolicy::RequireDualStack([V4, V6]))
    };
    let both = assign_ips(&mut a, &key("dual"), &dual);
    let v6_only = Request {
        sharing_key: Some("k".into()),
        ports: vec![tcp(443)],
        requested_ips: vec![both[1]],
        ..v6()
    };
    assign_ips(&mut a, &key("v6"), &v6_only);
    // Drop the IPv4 range: "dual" is displaced, "v6" keeps the shared IPv6 address.
    let update = a.set_pool(mk_pool("p", &["2001:db8::/120"]));
    assert_eq!(update.displaced, vec![key("dual")]);
    assert_eq!(a.assignment(&key("v6")).unwrap().ips, vec![both[1]]);
    assert_eq!(usage(&a, "p", V6), (256, 1));
    assert_eq!(a.holders(both[1]), vec![key("v6")]);
}

#[test]
fn removing_a_pool_displaces_its_services_who_then_move_elsewhere() {
    let mut a = mk_alloc(vec![
        mk_pool("a", &["198.51.100.0/28"]),
        mk_pool("b", &["203.0.113.0/28"]),
    ]);
    assign_ips(&mut a, &key("x"), &v4());
    let update = a.remove_pool("a");
    assert_eq!(update.displaced, vec![key("x")]);
    assert_eq!(a.assign(&key("x"), &v4()).unwrap().pool, "b");
    assert_eq!(a.pool_status("a"), None);
    assert_eq!(a.pool_names().collect::<Vec<_>>(), vec!["b"]);
}

#[test]
fn usage_is_per_family_and_exact_for_huge_pools() {
    let mut a = mk_alloc(vec![mk_pool(
        "p",
        &["198.51.100.0/24", "2001:db8::/64", "2001:db8:1::/64"],
    )]);
    assign_ips(&mut a, &key("x"), &v6());
    let status = a.pool_status("p").unwrap();
    assert_eq!(
        status.usage,
        vec![
            FamilyUsage {
                family: V4,
                total: 256,
                in_use: 0
            },
            FamilyUsage {
                family: V6,
                total: 2u128 << 64,
                in_use: 1
            },
        ]
    );
    assert_eq!(status.usage[1].available(), (2u128 << 64) - 1);
}

#[test]
fn pool_memory_does_not_grow_with_its_size() {
    let mut a = mk_alloc(vec![
        mk_pool("v4-24", &["198.51.100.0/24"]),
        mk_pool("v6-64", &["2001:db8::/64"]),
        mk_pool("v6-all", &["::/0"]),
        PoolConfig {
            avoid_buggy_ips: true,
            ..mk_pool("v4-8-careful", &["10.0.0.0/8"])
        },
    ]);
    for name in ["v4-24", "v6-64", "v6-all", "v4-8-careful"] {
        assert_eq!(a.free_runs(name), Some(1), "{name}");
    }
    assert_eq!(usage(&a, "v6-all", V6), (u128::MAX, 0));
    // The same allocation pattern costs the same in a /24 and a /64: 100 services, then every
    // other one released, leaves 50 holes plus the untouched tail in each.
    let in_24 = Request {
        pool: Some("v4-24".into()),
        ..v4()
    };
    let in_64 = Request {
        pool: Some("v6-64".into()),
        ..v6()
    };
    for i in 0..100 {
        assign_ips(&mut a, &key(&format!("a{i}")), &in_24);
        assign_ips(&mut a, &key(&format!("b{i}")), &in_64);
    }
    for i in (0..100).step_by(2) {
        a.release(&key(&format!("a{i}")));
        a.release(&key(&format!("b{i}")));
    }
    assert_eq!(a.free_runs("v4-24"), a.free_runs("v6-64"));
    assert_eq!(a.free_runs("v4-24"), Some(51));
}

#[test]
fn entries_of_one_pool_may_overlap() {
    let a = mk_alloc(vec![mk_pool(
        "p",
        &[
            "198.51.100.0/28",
            "198.51.100.4-198.51.100.20",
            "198.51.100.7",
        ],
    )]);
    assert_eq!(usage(&a, "p", V4), (21, 0));
    assert!(a.pool_status("p").unwrap().conflicts_with.is_empty());
}
