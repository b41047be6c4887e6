//! Dual stack: both families from one pool, in `spec.ipFamilies` order.

use ironlb_crds::address::Family::{V4, V6};

use super::*;

fn require(a: Family, b: Family) -> Request {
    mk_req(FamilyPolicy::RequireDualStack([a, b]))
}

fn prefer(a: Family, b: Family) -> Request {
    mk_req(FamilyPolicy::PreferDualStack([a, b]))
}

#[test]
fn both_families_come_from_one_pool() {
    let mut a = mk_alloc(vec![
        mk_pool("a-v4", &["198.51.100.0/28"]),
        mk_pool("b-v6", &["2001:db8::/120"]),
        mk_pool("c-dual", &["203.0.113.0/28", "2001:db8:1::/120"]),
    ]);
    let got = a.assign(&key("x"), &require(V4, V6)).unwrap();
    assert_eq!(got.pool, "c-dual");
    assert_eq!(got.ips, ips(&["203.0.113.0", "2001:db8:1::"]));
}

#[test]
fn addresses_follow_ip_families_order() {
    let mut a = mk_alloc(vec![mk_pool(
        "dual",
        &["198.51.100.0/28", "2001:db8::/120"],
    )]);
    assert_eq!(
        assign_ips(&mut a, &key("x"), &require(V6, V4)),
        ips(&["2001:db8::", "198.51.100.0"])
    );
}

#[test]
fn require_dual_stack_on_single_family_pools_fails() {
    let mut a = mk_alloc(vec![
        mk_pool("v4", &["198.51.100.0/28"]),
        mk_pool("v6", &["2001:db8::/120"]),
    ]);
    assert_eq!(
        a.assign(&key("x"), &require(V4, V6)),
        Err(AllocError::DualStackUnavailable { families: [V4, V6] })
    );
    assert!(a.assignments().next().is_none());
}

#[test]
fn require_dual_stack_fails_when_one_family_is_exhausted() {
    let mut a = mk_alloc(vec![mk_pool("dual", &["198.51.100.1", "2001:db8::/120"])]);
    assign_ips(&mut a, &key("v4-user"), &v4());
    assert_eq!(
        a.assign(&key("x"), &require(V4, V6)),
        Err(AllocError::Exhausted {
            pools: vec!["dual".into()]
        })
    );
}

#[test]
fn prefer_dual_stack_takes_both_when_a_pool_has_both() {
    let mut a = mk_alloc(vec![
        mk_pool("a-v4", &["198.51.100.0/28"]),
        mk_pool("b-dual", &["203.0.113.0/28", "2001:db8::/120"]),
    ]);
    let got = a.assign(&key("x"), &prefer(V4, V6)).unwrap();
    assert_eq!(got.pool, "b-dual");
    assert_eq!(got.ips.len(), 2);
}

#[test]
fn prefer_dual_stack_falls_back_to_the_first_family() {
    let mut a = mk_alloc(vec![
        mk_pool("a-v6", &["2001:db8::/120"]),
        mk_pool("b-v4", &["198.51.100.0/28"]),
    ]);
    assert_eq!(
        assign_ips(&mut a, &key("x"), &prefer(V4, V6)),
        ips(&["198.51.100.0"])
    );
    assert_eq!(
        assign_ips(&mut a, &key("y"), &prefer(V6, V4)),
        ips(&["2001:db8::"])
    );
}

#[test]
fn prefer_dual_stack_uses_the_second_family_as_a_last_resort() {
    let mut a = mk_alloc(vec![mk_pool("v6", &["2001:db8::/120"])]);
    assert_eq!(
        assign_ips(&mut a, &key("x"), &prefer(V4, V6)),
        ips(&["2001:db8::"])
    );
}

#[test]
fn prefer_dual_stack_falls_back_when_the_dual_pool_is_full() {
    let mut a = mk_alloc(vec![
        mk_pool("a-dual", &["203.0.113.1", "2001:db8::1"]),
        mk_pool("b-v4", &["198.51.100.0/28"]),
    ]);
    assert_eq!(a.assign(&key("x"), &prefer(V4, V6)).unwrap().pool, "a-dual");
    let got = a.assign(&key("y"), &prefer(V4, V6)).unwrap();
    assert_eq!(
        (got.pool.as_str(), got.ips),
        ("b-v4", ips(&["198.51.100.0"]))
    );
}

#[test]
fn single_stack_skips_pools_without_its_family() {
    let mut a = mk_alloc(vec![
        mk_pool("a-v4", &["198.51.100.0/28"]),
        mk_pool("b-v6", &["2001:db8::/120"]),
    ]);
    assert_eq!(a.assign(&key("x"), &v6()).unwrap().pool, "b-v6");
    let mut only_v4 = mk_alloc(vec![mk_pool("a-v4", &["198.51.100.0/28"])]);
    assert_eq!(
        only_v4.assign(&key("x"), &v6()),
        Err(AllocError::FamilyUnavailable { families: vec![V6] })
    );
}

#[test]
fn requested_dual_stack_addresses_must_share_a_pool() {
    let mut a = mk_alloc(vec![
        mk_pool("v4", &["198.51.100.0/28"]),
        mk_pool("v6", &["2001:db8::/120"]),
    ]);
    let req = Request {
        requested_ips: ips(&["198.51.100.1", "2001:db8::1"]),
        ..require(V4, V6)
    };
    assert_eq!(
        a.assign(&key("x"), &req),
        Err(AllocError::IpsInDifferentPools {
            first: ip("198.51.100.1"),
            first_pool: "v4".into(),
            second: ip("2001:db8::1"),
            second_pool: "v6".into(),
        })
    );
}

#[test]
fn requested_addresses_must_match_the_family_policy() {
    let mut a = mk_alloc(vec![mk_pool(
        "dual",
        &["198.51.100.0/28", "2001:db8::/120"],
    )]);
    let one_for_require = Request {
        requested_ips: ips(&["198.51.100.1"]),
        ..require(V4, V6)
    };
    assert_eq!(
        a.assign(&key("x"), &one_for_require),
        Err(AllocError::RequestedIpMissingFamily { missing: V6 })
    );
    let v6_for_v4 = Request {
        requested_ips: ips(&["2001:db8::1"]),
        ..v4()
    };
    assert_eq!(
        a.assign(&key("x"), &v6_for_v4),
        Err(AllocError::RequestedFamilyNotInService {
            ip: ip("2001:db8::1"),
            families: vec![V4]
        })
    );
    // PreferDualStack accepts a single requested address of either family.
    let one_for_prefer = Request {
        requested_ips: ips(&["2001:db8::7"]),
        ..prefer(V4, V6)
    };
    assert_eq!(
        assign_ips(&mut a, &key("x"), &one_for_prefer),
        ips(&["2001:db8::7"])
    );
}

#[test]
fn dual_stack_services_join_shared_addresses_of_both_families() {
    let mut a = mk_alloc(vec![mk_pool(
        "dual",
        &["198.51.100.0/28", "2001:db8::/120"],
    )]);
    let web = |port| Request {
        sharing_key: Some("web".into()),
        ports: vec![tcp(port)],
        ..require(V4, V6)
    };
    let first = assign_ips(&mut a, &key("http"), &web(80));
    assert_eq!(assign_ips(&mut a, &key("https"), &web(443)), first);
    assert_eq!(usage(&a, "dual", V4), (16, 1));
    assert_eq!(usage(&a, "dual", V6), (256, 1));
}
