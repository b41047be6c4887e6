//! Reconciling again: unchanged requests keep their addresses; changed ones move as little as
//! possible; failed moves keep what the service had.

use ironlb_crds::address::Family::{V4, V6};

use super::*;

#[test]
fn unchanged_request_keeps_its_addresses() {
    let mut a = mk_alloc(vec![mk_pool("p", &["198.51.100.10-198.51.100.20"])]);
    assign_ips(&mut a, &key("first"), &v4());
    let held = assign_ips(&mut a, &key("x"), &v4());
    assert_eq!(held, ips(&["198.51.100.11"]));
    a.release(&key("first")); // a lower address is free now
    for _ in 0..3 {
        assert_eq!(assign_ips(&mut a, &key("x"), &v4()), held);
    }
    assert_eq!(a.assignments().count(), 1);
    assert_eq!(usage(&a, "p", V4), (11, 1));
}

#[test]
fn a_better_pool_appearing_does_not_move_anyone() {
    let mut a = mk_alloc(vec![mk_pool("z-late", &["203.0.113.0/28"])]);
    let held = assign_ips(&mut a, &key("x"), &v4());
    a.set_pool(PoolConfig {
        service_allocation: Some(mk_allocation(1)),
        ..mk_pool("a-preferred", &["198.51.100.0/28"])
    });
    assert_eq!(assign_ips(&mut a, &key("x"), &v4()), held);
    assert_eq!(a.assign(&key("new"), &v4()).unwrap().pool, "a-preferred");
}

#[test]
fn turning_auto_assign_off_does_not_move_anyone() {
    let mut a = mk_alloc(vec![mk_pool("p", &["198.51.100.0/28"])]);
    let held = assign_ips(&mut a, &key("x"), &v4());
    let update = a.set_pool(PoolConfig {
        auto_assign: false,
        ..mk_pool("p", &["198.51.100.0/28"])
    });
    assert!(update.displaced.is_empty());
    assert_eq!(assign_ips(&mut a, &key("x"), &v4()), held);
    assert_eq!(
        a.assign(&key("new"), &v4()),
        Err(AllocError::NoEligiblePool)
    );
}

#[test]
fn changing_the_pool_annotation_moves_the_service() {
    let mut a = mk_alloc(vec![
        mk_pool("a", &["198.51.100.0/28"]),
        mk_pool("b", &["203.0.113.0/28"]),
    ]);
    assert_eq!(a.assign(&key("x"), &v4()).unwrap().pool, "a");
    let to_b = Request {
        pool: Some("b".into()),
        ..v4()
    };
    assert_eq!(assign_ips(&mut a, &key("x"), &to_b), ips(&["203.0.113.0"]));
    assert_eq!(usage(&a, "a", V4), (16, 0));
}

#[test]
fn changing_the_requested_address_moves_the_service() {
    let mut a = mk_alloc(vec![mk_pool("p", &["198.51.100.0/28"])]);
    assign_ips(&mut a, &key("x"), &v4());
    let req = Request {
        requested_ips: ips(&["198.51.100.9"]),
        ..v4()
    };
    assert_eq!(assign_ips(&mut a, &key("x"), &req), ips(&["198.51.100.9"]));
    assert_eq!(usage(&a, "p", V4), (16, 1));
    // Dropping the request keeps the address: it still satisfies an automatic request.
    assert_eq!(assign_ips(&mut a, &key("x"), &v4()), ips(&["198.51.100.9"]));
}

#[test]
fn a_failed_move_keeps_the_previous_addresses() {
    let mut a = mk_alloc(vec![
        mk_pool("a", &["198.51.100.0/28"]),
        mk_pool("b", &["203.0.113.1"]),
    ]);
    let held = assign_ips(&mut a, &key("x"), &v4());
    let to_b = Request {
        pool: Some("b".into()),
        ..v4()
    };
    assign_ips(&mut a, &key("b-user"), &to_b);
    assert!(matches!(
        a.assign(&key("x"), &to_b),
        Err(AllocError::Exhausted { .. })
    ));
    assert_eq!(a.assignment(&key("x")).unwrap().ips, held);
    assert_eq!(usage(&a, "a", V4), (16, 1));
    let unknown = Request {
        pool: Some("gone".into()),
        ..v4()
    };
    assert!(a.assign(&key("x"), &unknown).is_err());
    assert_eq!(a.assignment(&key("x")).unwrap().ips, held);
}

#[test]
fn a_service_the_pool_no_longer_selects_moves() {
    let mut a = mk_alloc(vec![
        PoolConfig {
            service_allocation: Some(ServiceAllocation {
                service_selectors: vec![mk_selector(&[("tier", "front")])],
                ..mk_allocation(1)
            }),
            ..mk_pool("front", &["198.51.100.0/28"])
        },
        mk_pool("general", &["203.0.113.0/28"]),
    ]);
    let mut req = Request {
        service_labels: labels(&[("tier", "front")]),
        ..v4()
    };
    assert_eq!(a.assign(&key("x"), &req).unwrap().pool, "front");
    req.service_labels.clear();
    assert_eq!(a.assign(&key("x"), &req).unwrap().pool, "general");
    assert_eq!(usage(&a, "front", V4), (16, 0));
}

#[test]
fn ports_now_overlapping_a_co_holder_move_the_changed_service() {
    let mut a = mk_alloc(vec![mk_pool("p", &["198.51.100.0/28"])]);
    let shared_ip = assign_ips(&mut a, &key("http"), &shared("web", &[tcp(80)]));
    assert_eq!(
        assign_ips(&mut a, &key("https"), &shared("web", &[tcp(443)])),
        shared_ip
    );
    // https now also wants port 80: it can no longer sit next to http.
    let moved = assign_ips(&mut a, &key("https"), &shared("web", &[tcp(443), tcp(80)]));
    assert_ne!(moved, shared_ip);
    assert_eq!(a.holders(shared_ip[0]), vec![key("http")]);
}

#[test]
fn upgrading_to_dual_stack_keeps_the_existing_address() {
    let mut a = mk_alloc(vec![
        mk_pool("a-v4", &["203.0.113.0/28"]),
        mk_pool("b-dual", &["198.51.100.0/28", "2001:db8::/120"]),
    ]);
    let req = Request {
        pool: Some("b-dual".into()),
        ..v4()
    };
    assign_ips(&mut a, &key("filler"), &req); // .0
    let v4_ip = assign_ips(&mut a, &key("x"), &req);
    assert_eq!(v4_ip, ips(&["198.51.100.1"]));
    a.release(&key("filler"));
    let dual = Request {
        families: FamilyPolicy::RequireDualStack([V4, V6]),
        ..req
    };
    // The IPv4 address stays; only the IPv6 one is added, from the same pool.
    assert_eq!(
        assign_ips(&mut a, &key("x"), &dual),
        ips(&["198.51.100.1", "2001:db8::"])
    );
}

#[test]
fn downgrading_to_single_stack_keeps_the_remaining_family() {
    let mut a = mk_alloc(vec![mk_pool(
        "dual",
        &["198.51.100.0/28", "2001:db8::/120"],
    )]);
    let dual = mk_req(FamilyPolicy::RequireDualStack([V4, V6]));
    let both = assign_ips(&mut a, &key("x"), &dual);
    assert_eq!(assign_ips(&mut a, &key("x"), &v6()), vec![both[1]]);
    assert_eq!(usage(&a, "dual", V4), (16, 0));
    assert_eq!(usage(&a, "dual", V6), (256, 1));
}

#[test]
fn upgrade_moves_when_the_current_pool_lacks_the_new_family() {
    let mut a = mk_alloc(vec![
        mk_pool("a-v4", &["203.0.113.0/28"]),
        mk_pool("b-dual", &["198.51.100.0/28", "2001:db8::/120"]),
    ]);
    assert_eq!(a.assign(&key("x"), &v4()).unwrap().pool, "a-v4");
    let got = a
        .assign(&key("x"), &mk_req(FamilyPolicy::RequireDualStack([V4, V6])))
        .unwrap();
    assert_eq!(got.pool, "b-dual");
    assert_eq!(usage(&a, "a-v4", V4), (16, 0));
}
