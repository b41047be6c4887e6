//! IP sharing: same key, disjoint ports, same backend; joining before taking a new address.

use ironlb_crds::address::Family;

use super::*;

fn at(req: Request, addr: &str) -> Request {
    Request {
        requested_ips: ips(&[addr]),
        ..req
    }
}

fn local(selector: &[(&str, &str)]) -> Backend {
    Backend::Local {
        selector: labels(selector),
    }
}

#[test]
fn same_key_and_disjoint_ports_share_one_address() {
    let mut a = mk_alloc(vec![mk_pool("p", &["198.51.100.0/28"])]);
    let dns_tcp = at(shared("dns", &[tcp(53)]), "198.51.100.5");
    let dns_udp = at(shared("dns", &[udp(53)]), "198.51.100.5");
    assign_ips(&mut a, &key("dns-tcp"), &dns_tcp);
    assign_ips(&mut a, &key("dns-udp"), &dns_udp);
    assert_eq!(
        a.holders(ip("198.51.100.5")),
        vec![key("dns-tcp"), key("dns-udp")]
    );
    // A shared address counts once.
    assert_eq!(usage(&a, "p", Family::V4), (16, 1));
    // It stays held until its last holder goes.
    a.release(&key("dns-tcp"));
    assert_eq!(usage(&a, "p", Family::V4), (16, 1));
    a.release(&key("dns-udp"));
    assert_eq!(usage(&a, "p", Family::V4), (16, 0));
    assert!(a.holders(ip("198.51.100.5")).is_empty());
}

#[test]
fn sharing_key_mismatch_is_refused() {
    let mut a = mk_alloc(vec![mk_pool("p", &["198.51.100.0/28"])]);
    assign_ips(
        &mut a,
        &key("a"),
        &at(shared("blue", &[tcp(80)]), "198.51.100.5"),
    );
    assert_eq!(
        a.assign(&key("b"), &at(shared("green", &[tcp(443)]), "198.51.100.5")),
        Err(AllocError::SharingKeyMismatch {
            ip: ip("198.51.100.5"),
            holder: key("a"),
            held: "blue".into(),
            wanted: "green".into(),
        })
    );
}

#[test]
fn sharing_needs_a_key_on_both_sides() {
    let mut a = mk_alloc(vec![mk_pool("p", &["198.51.100.0/28"])]);
    assign_ips(&mut a, &key("keyless"), &at(v4(), "198.51.100.5"));
    assert_eq!(
        a.assign(&key("b"), &at(shared("k", &[tcp(443)]), "198.51.100.5")),
        Err(AllocError::IpInUse {
            ip: ip("198.51.100.5"),
            holder: key("keyless")
        })
    );
    assign_ips(
        &mut a,
        &key("keyed"),
        &at(shared("k", &[tcp(80)]), "198.51.100.6"),
    );
    assert_eq!(
        a.assign(&key("c"), &at(v4(), "198.51.100.6")),
        Err(AllocError::IpInUse {
            ip: ip("198.51.100.6"),
            holder: key("keyed")
        })
    );
}

#[test]
fn overlapping_ports_are_refused() {
    let mut a = mk_alloc(vec![mk_pool("p", &["198.51.100.0/28"])]);
    assign_ips(
        &mut a,
        &key("web"),
        &at(shared("k", &[tcp(80), tcp(443)]), "198.51.100.5"),
    );
    assert_eq!(
        a.assign(
            &key("other"),
            &at(shared("k", &[udp(443), tcp(443)]), "198.51.100.5")
        ),
        Err(AllocError::PortOverlap {
            ip: ip("198.51.100.5"),
            holder: key("web"),
            port: tcp(443),
        })
    );
    // Same number, other protocol: no overlap.
    assign_ips(
        &mut a,
        &key("quic"),
        &at(shared("k", &[udp(443)]), "198.51.100.5"),
    );
    // The port freed by a leaving holder can be taken by a newcomer.
    a.release(&key("web"));
    assign_ips(
        &mut a,
        &key("other"),
        &at(shared("k", &[tcp(443)]), "198.51.100.5"),
    );
}

#[test]
fn backends_must_match() {
    let mut a = mk_alloc(vec![mk_pool("p", &["198.51.100.0/28"])]);
    let local_app = Request {
        backend: local(&[("app", "dns")]),
        ..shared("k", &[tcp(53)])
    };
    assign_ips(
        &mut a,
        &key("local"),
        &at(local_app.clone(), "198.51.100.5"),
    );
    // Cluster next to Local.
    assert_eq!(
        a.assign(
            &key("cluster"),
            &at(shared("k", &[udp(53)]), "198.51.100.5")
        ),
        Err(AllocError::BackendMismatch {
            ip: ip("198.51.100.5"),
            holder: key("local")
        })
    );
    // Local with another selector.
    let other_pods = Request {
        backend: local(&[("app", "other")]),
        ..shared("k", &[udp(53)])
    };
    assert_eq!(
        a.assign(&key("other"), &at(other_pods, "198.51.100.5")),
        Err(AllocError::BackendMismatch {
            ip: ip("198.51.100.5"),
            holder: key("local")
        })
    );
    // Local with the identical selector.
    let same_pods = Request {
        ports: vec![udp(53)],
        ..local_app
    };
    assign_ips(&mut a, &key("same"), &at(same_pods, "198.51.100.5"));
}

#[test]
fn auto_assignment_with_a_key_joins_a_compatible_shared_address_first() {
    let mut a = mk_alloc(vec![mk_pool("p", &["198.51.100.10-198.51.100.20"])]);
    assign_ips(&mut a, &key("filler"), &v4()); // .10
    assert_eq!(
        assign_ips(&mut a, &key("web-http"), &shared("web", &[tcp(80)])),
        ips(&["198.51.100.11"])
    );
    a.release(&key("filler")); // .10 is free and lower, but joining wins
    assert_eq!(
        assign_ips(&mut a, &key("web-https"), &shared("web", &[tcp(443)])),
        ips(&["198.51.100.11"])
    );
}

#[test]
fn auto_assignment_with_a_key_takes_a_new_address_when_no_shared_one_fits() {
    let mut a = mk_alloc(vec![mk_pool("p", &["198.51.100.10-198.51.100.20"])]);
    assign_ips(&mut a, &key("web-1"), &shared("web", &[tcp(80)]));
    // Same port: cannot join .10.
    assert_eq!(
        assign_ips(&mut a, &key("web-2"), &shared("web", &[tcp(80)])),
        ips(&["198.51.100.11"])
    );
    // Other key: cannot join either.
    assert_eq!(
        assign_ips(&mut a, &key("db"), &shared("db", &[tcp(5432)])),
        ips(&["198.51.100.12"])
    );
    // Now web-3 fits next to web-1 and web-2, and joins the lowest.
    assert_eq!(
        assign_ips(&mut a, &key("web-3"), &shared("web", &[tcp(8080)])),
        ips(&["198.51.100.10"])
    );
}

#[test]
fn joining_respects_pool_eligibility() {
    let mut a = mk_alloc(vec![
        mk_pool("a", &["198.51.100.10-198.51.100.20"]),
        mk_pool("b", &["203.0.113.10-203.0.113.20"]),
    ]);
    let in_b = |port| Request {
        pool: Some("b".into()),
        ..shared("web", &[tcp(port)])
    };
    assert_eq!(
        assign_ips(&mut a, &key("web-a"), &shared("web", &[tcp(80)])),
        ips(&["198.51.100.10"])
    );
    // The annotation restricts joining to pool b: no shared address there yet.
    assert_eq!(
        assign_ips(&mut a, &key("web-b1"), &in_b(443)),
        ips(&["203.0.113.10"])
    );
    assert_eq!(
        assign_ips(&mut a, &key("web-b2"), &in_b(8443)),
        ips(&["203.0.113.10"])
    );
}

#[test]
fn a_service_may_change_its_own_sharing_terms_when_alone() {
    let mut a = mk_alloc(vec![mk_pool("p", &["198.51.100.0/28"])]);
    let held = assign_ips(&mut a, &key("x"), &shared("old", &[tcp(80)]));
    assert_eq!(
        assign_ips(&mut a, &key("x"), &shared("new", &[tcp(81)])),
        held
    );
    assert_eq!(assign_ips(&mut a, &key("x"), &v4()), held);
}

#[test]
fn joining_a_shared_address_in_a_later_pool_beats_a_new_address_in_an_earlier_one() {
    let mut a = mk_alloc(vec![
        mk_pool("a", &["198.51.100.10-198.51.100.20"]),
        mk_pool("b", &["203.0.113.10-203.0.113.20"]),
    ]);
    let in_b = Request {
        pool: Some("b".into()),
        ..shared("web", &[tcp(80)])
    };
    assert_eq!(
        assign_ips(&mut a, &key("web-http"), &in_b),
        ips(&["203.0.113.10"])
    );
    // Pool a comes first and has room, but web-https joins web-http in pool b.
    assert_eq!(
        assign_ips(&mut a, &key("web-https"), &shared("web", &[tcp(443)])),
        ips(&["203.0.113.10"])
    );
    // Without a compatible shared address, pool order decides again.
    assert_eq!(
        assign_ips(&mut a, &key("web-http-2"), &shared("web", &[tcp(80)])),
        ips(&["198.51.100.10"])
    );
}
