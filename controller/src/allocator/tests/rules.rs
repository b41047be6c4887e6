//! The allocation rules, one at a time: for each, a case where it decides the outcome and its
//! failure mode.

use ironlb_crds::address::Family;

use super::*;

#[test]
fn lowest_free_address_wins() {
    let mut a = mk_alloc(vec![mk_pool("p", &["198.51.100.10-198.51.100.12"])]);
    assert_eq!(
        assign_ips(&mut a, &key("a"), &v4()),
        ips(&["198.51.100.10"])
    );
    assert_eq!(
        assign_ips(&mut a, &key("b"), &v4()),
        ips(&["198.51.100.11"])
    );
    assert_eq!(
        assign_ips(&mut a, &key("c"), &v4()),
        ips(&["198.51.100.12"])
    );
    a.release(&key("b"));
    assert_eq!(
        assign_ips(&mut a, &key("d"), &v4()),
        ips(&["198.51.100.11"])
    );
}

#[test]
fn lowest_free_spans_several_ranges_of_a_pool() {
    let mut a = mk_alloc(vec![mk_pool(
        "p",
        &["203.0.113.20", "198.51.100.7", "198.51.100.9"],
    )]);
    let got: Vec<IpAddr> = ["a", "b", "c"]
        .iter()
        .flat_map(|n| assign_ips(&mut a, &key(n), &v4()))
        .collect();
    assert_eq!(got, ips(&["198.51.100.7", "198.51.100.9", "203.0.113.20"]));
}

#[test]
fn exhausted_pool_is_reported() {
    let mut a = mk_alloc(vec![mk_pool("p", &["198.51.100.10"])]);
    assign_ips(&mut a, &key("a"), &v4());
    assert_eq!(
        a.assign(&key("b"), &v4()),
        Err(AllocError::Exhausted {
            pools: vec!["p".into()]
        })
    );
    assert_eq!(a.assignment(&key("b")), None);
}

#[test]
fn avoid_buggy_ips_skips_dot_zero_and_dot_255() {
    let entries = ["198.51.100.254-198.51.101.1"];
    let mut plain = mk_alloc(vec![mk_pool("p", &entries)]);
    let got: Vec<IpAddr> = ["a", "b", "c", "d"]
        .iter()
        .flat_map(|n| assign_ips(&mut plain, &key(n), &v4()))
        .collect();
    assert_eq!(
        got,
        ips(&[
            "198.51.100.254",
            "198.51.100.255",
            "198.51.101.0",
            "198.51.101.1"
        ])
    );

    let mut careful = mk_alloc(vec![PoolConfig {
        avoid_buggy_ips: true,
        ..mk_pool("p", &entries)
    }]);
    assert_eq!(usage(&careful, "p", Family::V4), (2, 0));
    let got: Vec<IpAddr> = ["a", "b"]
        .iter()
        .flat_map(|n| assign_ips(&mut careful, &key(n), &v4()))
        .collect();
    assert_eq!(got, ips(&["198.51.100.254", "198.51.101.1"]));
    assert!(matches!(
        careful.assign(&key("c"), &v4()),
        Err(AllocError::Exhausted { .. })
    ));
}

#[test]
fn avoid_buggy_ips_leaves_ipv6_alone() {
    let mut a = mk_alloc(vec![PoolConfig {
        avoid_buggy_ips: true,
        ..mk_pool("p", &["2001:db8::ff-2001:db8::100"])
    }]);
    assert_eq!(assign_ips(&mut a, &key("a"), &v6()), ips(&["2001:db8::ff"]));
    assert_eq!(
        assign_ips(&mut a, &key("b"), &v6()),
        ips(&["2001:db8::100"])
    );
}

#[test]
fn requested_buggy_ip_in_avoiding_pool_is_refused() {
    let mut a = mk_alloc(vec![PoolConfig {
        avoid_buggy_ips: true,
        ..mk_pool("p", &["198.51.100.0/24"])
    }]);
    let req = Request {
        requested_ips: ips(&["198.51.100.255"]),
        ..v4()
    };
    assert_eq!(
        a.assign(&key("a"), &req),
        Err(AllocError::IpAvoided {
            ip: ip("198.51.100.255"),
            pool: "p".into()
        })
    );
    assert_eq!(a.pool_of(ip("198.51.100.255")), None);
    assert_eq!(a.pool_of(ip("198.51.100.254")), Some("p"));
}

#[test]
fn requested_ip_is_honoured_even_when_not_lowest() {
    let mut a = mk_alloc(vec![mk_pool("p", &["198.51.100.0/28"])]);
    let req = Request {
        requested_ips: ips(&["198.51.100.9"]),
        ..v4()
    };
    assert_eq!(assign_ips(&mut a, &key("a"), &req), ips(&["198.51.100.9"]));
    assert_eq!(assign_ips(&mut a, &key("b"), &v4()), ips(&["198.51.100.0"]));
}

#[test]
fn requested_ip_ignores_auto_assign() {
    let mut a = mk_alloc(vec![PoolConfig {
        auto_assign: false,
        ..mk_pool("manual", &["198.51.100.0/28"])
    }]);
    assert_eq!(
        a.assign(&key("auto"), &v4()),
        Err(AllocError::NoEligiblePool)
    );
    let req = Request {
        requested_ips: ips(&["198.51.100.3"]),
        ..v4()
    };
    assert_eq!(assign_ips(&mut a, &key("a"), &req), ips(&["198.51.100.3"]));
}

#[test]
fn requested_ip_outside_every_pool_is_refused() {
    let mut a = mk_alloc(vec![mk_pool("p", &["198.51.100.0/28"])]);
    let req = Request {
        requested_ips: ips(&["203.0.113.5"]),
        ..v4()
    };
    assert_eq!(
        a.assign(&key("a"), &req),
        Err(AllocError::IpNotInAnyPool {
            ip: ip("203.0.113.5")
        })
    );
}

#[test]
fn requested_ip_in_a_pool_not_eligible_for_the_service_is_refused() {
    let mut a = mk_alloc(vec![PoolConfig {
        service_allocation: Some(ServiceAllocation {
            namespaces: namespaces(&["team-a"]),
            ..mk_allocation(0)
        }),
        ..mk_pool("team-a-only", &["198.51.100.0/28"])
    }]);
    let req = Request {
        requested_ips: ips(&["198.51.100.3"]),
        ..v4()
    };
    assert_eq!(
        a.assign(&key_in("team-b", "web"), &req),
        Err(AllocError::RequestedIpNotEligible {
            ip: ip("198.51.100.3"),
            pool: "team-a-only".into()
        })
    );
    assert_eq!(
        assign_ips(&mut a, &key_in("team-a", "web"), &req),
        ips(&["198.51.100.3"])
    );
}

#[test]
fn requested_ip_taken_by_another_service_is_refused_naming_it() {
    let mut a = mk_alloc(vec![mk_pool("p", &["198.51.100.0/28"])]);
    let req = Request {
        requested_ips: ips(&["198.51.100.3"]),
        ..v4()
    };
    assign_ips(&mut a, &key("first"), &req);
    assert_eq!(
        a.assign(&key("second"), &req),
        Err(AllocError::IpInUse {
            ip: ip("198.51.100.3"),
            holder: key("first")
        })
    );
}

#[test]
fn requested_ip_outside_annotated_pool_is_refused() {
    let mut a = mk_alloc(vec![
        mk_pool("a", &["198.51.100.0/28"]),
        mk_pool("b", &["203.0.113.0/28"]),
    ]);
    let req = Request {
        requested_ips: ips(&["198.51.100.3"]),
        pool: Some("b".into()),
        ..v4()
    };
    assert_eq!(
        a.assign(&key("x"), &req),
        Err(AllocError::RequestedIpOutsideAnnotatedPool {
            ip: ip("198.51.100.3"),
            pool: "b".into(),
            actual: Some("a".into())
        })
    );
}

#[test]
fn pool_annotation_allocates_from_that_pool_only() {
    let mut a = mk_alloc(vec![
        mk_pool("a", &["198.51.100.10"]),
        mk_pool("b", &["203.0.113.10"]),
    ]);
    let in_b = Request {
        pool: Some("b".into()),
        ..v4()
    };
    assert_eq!(assign_ips(&mut a, &key("x"), &in_b), ips(&["203.0.113.10"]));
    // b is full; pool a still has room but the annotation forbids it.
    assert_eq!(
        a.assign(&key("y"), &in_b),
        Err(AllocError::Exhausted {
            pools: vec!["b".into()]
        })
    );
}

#[test]
fn pool_annotation_ignores_auto_assign() {
    let mut a = mk_alloc(vec![PoolConfig {
        auto_assign: false,
        ..mk_pool("manual", &["198.51.100.10"])
    }]);
    let req = Request {
        pool: Some("manual".into()),
        ..v4()
    };
    assert_eq!(assign_ips(&mut a, &key("x"), &req), ips(&["198.51.100.10"]));
}

#[test]
fn unknown_pool_annotation_is_refused() {
    let mut a = mk_alloc(vec![mk_pool("a", &["198.51.100.0/28"])]);
    let req = Request {
        pool: Some("nope".into()),
        ..v4()
    };
    assert_eq!(
        a.assign(&key("x"), &req),
        Err(AllocError::UnknownPool {
            pool: "nope".into()
        })
    );
}

#[test]
fn pool_annotation_naming_a_non_eligible_pool_is_refused() {
    let mut a = mk_alloc(vec![PoolConfig {
        service_allocation: Some(ServiceAllocation {
            service_selectors: vec![mk_selector(&[("tier", "premium")])],
            ..mk_allocation(0)
        }),
        ..mk_pool("premium", &["198.51.100.0/28"])
    }]);
    let mut req = Request {
        pool: Some("premium".into()),
        ..v4()
    };
    assert_eq!(
        a.assign(&key("x"), &req),
        Err(AllocError::PoolNotEligible {
            pool: "premium".into()
        })
    );
    req.service_labels = labels(&[("tier", "premium")]);
    assert_eq!(assign_ips(&mut a, &key("x"), &req), ips(&["198.51.100.0"]));
}

#[test]
fn pools_selecting_the_service_come_first_by_priority_then_the_rest_by_name() {
    // One address per pool, so the order of allocation is the order of pools.
    let pinned = |name: &str, entry: &str, priority: u32| PoolConfig {
        service_allocation: Some(ServiceAllocation {
            namespaces: namespaces(&["default"]),
            ..mk_allocation(priority)
        }),
        ..mk_pool(name, &[entry])
    };
    let mut a = mk_alloc(vec![
        mk_pool("a-general", &["198.51.100.1"]),
        pinned("b-prio2", "198.51.100.2", 2),
        pinned("c-prio1", "198.51.100.3", 1),
        pinned("d-unset", "198.51.100.4", 0),
        pinned("e-prio1", "198.51.100.5", 1),
        mk_pool("0-general", &["198.51.100.6"]),
    ]);
    let order: Vec<String> = (0..6)
        .map(|i| a.assign(&key(&format!("s{i}")), &v4()).unwrap().pool)
        .collect();
    assert_eq!(
        order,
        [
            "c-prio1",
            "e-prio1",
            "b-prio2",
            "d-unset",
            "0-general",
            "a-general"
        ]
    );
}

#[test]
fn pools_with_auto_assign_off_are_never_picked_automatically() {
    let mut a = mk_alloc(vec![
        PoolConfig {
            auto_assign: false,
            ..mk_pool("a-manual", &["198.51.100.1"])
        },
        PoolConfig {
            auto_assign: false,
            service_allocation: Some(mk_allocation(1)),
            ..mk_pool("b-manual-pinned", &["198.51.100.2"])
        },
        mk_pool("c-auto", &["198.51.100.3"]),
    ]);
    assert_eq!(assign_ips(&mut a, &key("x"), &v4()), ips(&["198.51.100.3"]));
    assert_eq!(
        a.assign(&key("y"), &v4()),
        Err(AllocError::Exhausted {
            pools: vec!["c-auto".into()]
        })
    );
}

#[test]
fn no_eligible_pool_is_reported() {
    let mut a = mk_alloc(vec![]);
    assert_eq!(a.assign(&key("x"), &v4()), Err(AllocError::NoEligiblePool));
    a.set_pool(PoolConfig {
        service_allocation: Some(ServiceAllocation {
            namespaces: namespaces(&["other"]),
            ..mk_allocation(1)
        }),
        ..mk_pool("pinned", &["198.51.100.0/28"])
    });
    assert_eq!(a.assign(&key("x"), &v4()), Err(AllocError::NoEligiblePool));
}

#[test]
fn service_allocation_excludes_services_it_does_not_select() {
    let sa = ServiceAllocation {
        namespaces: namespaces(&["team-a"]),
        namespace_selectors: vec![mk_selector(&[("env", "prod")])],
        service_selectors: vec![mk_selector(&[("tier", "front")])],
        priority: 0,
    };
    let mut a = mk_alloc(vec![
        PoolConfig {
            service_allocation: Some(sa),
            ..mk_pool("pinned", &["198.51.100.1"])
        },
        mk_pool("z-general", &["203.0.113.0/28"]),
    ]);
    let front = Request {
        service_labels: labels(&[("tier", "front")]),
        ..v4()
    };
    let pool_for = |a: &mut Allocator, k: &ServiceKey, r: &Request| {
        let pool = a.assign(k, r).unwrap().pool;
        a.release(k);
        pool
    };
    // Namespace listed by name.
    assert_eq!(pool_for(&mut a, &key_in("team-a", "x"), &front), "pinned");
    // Namespace selected by its labels instead.
    let prod_front = Request {
        namespace_labels: labels(&[("env", "prod")]),
        ..front.clone()
    };
    assert_eq!(
        pool_for(&mut a, &key_in("team-b", "x"), &prod_front),
        "pinned"
    );
    // Neither listed nor selected.
    assert_eq!(
        pool_for(&mut a, &key_in("team-b", "x"), &front),
        "z-general"
    );
    // Namespace fine, service selector fails.
    assert_eq!(pool_for(&mut a, &key_in("team-a", "x"), &v4()), "z-general");
}

#[test]
fn service_allocation_with_only_service_selectors_accepts_any_namespace() {
    let mut a = mk_alloc(vec![PoolConfig {
        service_allocation: Some(ServiceAllocation {
            service_selectors: vec![mk_selector(&[("tier", "front")])],
            ..mk_allocation(0)
        }),
        ..mk_pool("pinned", &["198.51.100.1"])
    }]);
    let front = Request {
        service_labels: labels(&[("tier", "front")]),
        ..v4()
    };
    assert_eq!(
        a.assign(&key_in("anywhere", "x"), &front).unwrap().pool,
        "pinned"
    );
}

#[test]
fn a_full_preferred_pool_falls_through_to_the_next() {
    let mut a = mk_alloc(vec![
        PoolConfig {
            service_allocation: Some(mk_allocation(1)),
            ..mk_pool("first", &["198.51.100.1"])
        },
        mk_pool("second", &["203.0.113.1"]),
    ]);
    assert_eq!(a.assign(&key("x"), &v4()).unwrap().pool, "first");
    assert_eq!(a.assign(&key("y"), &v4()).unwrap().pool, "second");
    assert_eq!(
        a.assign(&key("z"), &v4()),
        Err(AllocError::Exhausted {
            pools: vec!["first".into(), "second".into()]
        })
    );
}

#[test]
fn malformed_requests_change_nothing() {
    let mut a = mk_alloc(vec![mk_pool("p", &["198.51.100.0/28"])]);
    let held = assign_ips(&mut a, &key("x"), &v4());
    let bad = Request {
        requested_ips: ips(&["198.51.100.1", "198.51.100.2"]),
        ..v4()
    };
    assert!(matches!(
        a.assign(&key("x"), &bad),
        Err(AllocError::TooManyIps { .. })
    ));
    assert_eq!(a.assignment(&key("x")).unwrap().ips, held);
}

#[test]
fn error_messages_say_what_to_change() {
    let cases: Vec<(AllocError, &str)> = vec![
        (
            AllocError::IpInUse {
                ip: ip("198.51.100.1"),
                holder: key("web"),
            },
            "198.51.100.1 is already used by default/web; to share it, give both services the same allow-shared-ip key",
        ),
        (
            AllocError::Exhausted {
                pools: vec!["a".into(), "b".into()],
            },
            "no free address left in address pool(s) a, b; add addresses or release services",
        ),
        (
            AllocError::PoolInConflict {
                pool: "young".into(),
                with: vec!["old".into()],
            },
            "address pool \"young\" overlaps the older pool(s) old and is not used until the overlap is removed",
        ),
        (
            AllocError::RequestedIpOutsideAnnotatedPool {
                ip: ip("198.51.100.1"),
                pool: "b".into(),
                actual: Some("a".into()),
            },
            "requested IP 198.51.100.1 is not in address pool \"b\" named by the address-pool annotation (it belongs to \"a\")",
        ),
        (
            AllocError::FamilyUnavailable {
                families: vec![Family::V6, Family::V4],
            },
            "no eligible address pool has IPv6 or IPv4 addresses",
        ),
        (
            AllocError::PortOverlap {
                ip: ip("198.51.100.1"),
                holder: key("dns"),
                port: udp(53),
            },
            "198.51.100.1 is shared with default/dns, which already uses port UDP/53; services sharing an IP need distinct (protocol, port) pairs",
        ),
    ];
    for (err, want) in cases {
        assert_eq!(err.to_string(), want);
    }
    assert_eq!(AllocError::NoEligiblePool.reason(), "no_eligible_pool");
}
