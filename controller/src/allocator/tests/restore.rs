//! Start-up: rebuilding from the addresses Services already hold never moves an address.

use ironlb_crds::address::Family::{V4, V6};

use super::*;

#[test]
fn restore_reproduces_assignments_exactly() {
    let mut a = mk_alloc(vec![mk_pool("p", &["198.51.100.0/28", "2001:db8::/120"])]);
    let dual = mk_req(FamilyPolicy::RequireDualStack([V6, V4]));
    let got = a
        .restore(&key("x"), &dual, &ips(&["198.51.100.9", "2001:db8::42"]))
        .unwrap();
    assert_eq!(
        got,
        Assignment {
            pool: "p".into(),
            ips: ips(&["2001:db8::42", "198.51.100.9"])
        }
    );
    // Reconciling the same request afterwards keeps them, though lower addresses are free.
    assert_eq!(assign_ips(&mut a, &key("x"), &dual), got.ips);
}

#[test]
fn restored_addresses_are_never_handed_to_others() {
    let mut a = mk_alloc(vec![mk_pool("p", &["198.51.100.0-198.51.100.3"])]);
    a.restore(&key("old"), &v4(), &ips(&["198.51.100.1"]))
        .unwrap();
    let got: Vec<IpAddr> = ["a", "b", "c"]
        .iter()
        .flat_map(|n| assign_ips(&mut a, &key(n), &v4()))
        .collect();
    assert_eq!(got, ips(&["198.51.100.0", "198.51.100.2", "198.51.100.3"]));
}

#[test]
fn restore_keeps_addresses_even_when_the_request_is_now_invalid() {
    let mut a = mk_alloc(vec![mk_pool("p", &["198.51.100.0/28"])]);
    let broken = Request {
        requested_ips: ips(&["198.51.100.1", "198.51.100.2"]),
        ..v4()
    };
    a.restore(&key("x"), &broken, &ips(&["198.51.100.7"]))
        .unwrap();
    assert!(matches!(
        a.assign(&key("x"), &broken),
        Err(AllocError::TooManyIps { .. })
    ));
    assert_eq!(a.assignment(&key("x")).unwrap().ips, ips(&["198.51.100.7"]));
}

#[test]
fn restore_ignores_policy_which_the_next_assign_applies() {
    let mut a = mk_alloc(vec![
        PoolConfig {
            auto_assign: false,
            service_allocation: Some(ServiceAllocation {
                namespaces: namespaces(&["other"]),
                ..mk_allocation(1)
            }),
            ..mk_pool("reserved", &["198.51.100.0/28"])
        },
        mk_pool("general", &["203.0.113.0/28"]),
    ]);
    a.restore(&key("x"), &v4(), &ips(&["198.51.100.3"]))
        .unwrap();
    assert_eq!(usage(&a, "reserved", V4), (16, 1));
    // The pool does not select the service: reconciling moves it.
    assert_eq!(a.assign(&key("x"), &v4()).unwrap().pool, "general");
}

#[test]
fn restore_outside_every_pool_fails() {
    let mut a = mk_alloc(vec![mk_pool("p", &["198.51.100.0/28"])]);
    assert_eq!(
        a.restore(&key("x"), &v4(), &ips(&["203.0.113.1"])),
        Err(AllocError::IpNotInAnyPool {
            ip: ip("203.0.113.1")
        })
    );
    assert_eq!(a.assignment(&key("x")), None);
}

#[test]
fn restore_of_conflicting_claims_keeps_the_first() {
    let mut a = mk_alloc(vec![mk_pool("p", &["198.51.100.0/28"])]);
    a.restore(&key("first"), &v4(), &ips(&["198.51.100.3"]))
        .unwrap();
    assert_eq!(
        a.restore(&key("second"), &v4(), &ips(&["198.51.100.3"])),
        Err(AllocError::IpInUse {
            ip: ip("198.51.100.3"),
            holder: key("first")
        })
    );
}

#[test]
fn restore_of_a_shared_address() {
    let mut a = mk_alloc(vec![mk_pool("p", &["198.51.100.0/28"])]);
    a.restore(
        &key("tcp"),
        &shared("dns", &[tcp(53)]),
        &ips(&["198.51.100.3"]),
    )
    .unwrap();
    a.restore(
        &key("udp"),
        &shared("dns", &[udp(53)]),
        &ips(&["198.51.100.3"]),
    )
    .unwrap();
    assert_eq!(a.holders(ip("198.51.100.3")), vec![key("tcp"), key("udp")]);
    assert_eq!(usage(&a, "p", V4), (16, 1));
}

#[test]
fn restore_rejects_malformed_address_lists() {
    let mut a = mk_alloc(vec![
        mk_pool("v4", &["198.51.100.0/28"]),
        mk_pool("v6", &["2001:db8::/120"]),
    ]);
    assert_eq!(
        a.restore(&key("x"), &v4(), &[]),
        Err(AllocError::NothingToRestore)
    );
    assert_eq!(
        a.restore(&key("x"), &v4(), &ips(&["198.51.100.1", "198.51.100.2"])),
        Err(AllocError::TooManyIps {
            family: V4,
            first: ip("198.51.100.1"),
            second: ip("198.51.100.2")
        })
    );
    assert!(matches!(
        a.restore(&key("x"), &v4(), &ips(&["198.51.100.1", "2001:db8::1"])),
        Err(AllocError::IpsInDifferentPools { .. })
    ));
    assert!(a.assignments().next().is_none());
    assert_eq!(usage(&a, "v4", V4), (16, 0));
}

#[test]
fn release_frees_the_address_for_reuse() {
    let mut a = mk_alloc(vec![mk_pool("p", &["198.51.100.1"])]);
    let held = assign_ips(&mut a, &key("x"), &v4());
    assert_eq!(
        a.release(&key("x")),
        Some(Assignment {
            pool: "p".into(),
            ips: held.clone()
        })
    );
    assert_eq!(a.release(&key("x")), None);
    assert_eq!(assign_ips(&mut a, &key("y"), &v4()), held);
}
