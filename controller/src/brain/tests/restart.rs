//! Start-up: a restart moves no address and writes nothing when everything is already right.

use ironlb_crds::annotations::{
    ALLOW_SHARED_IP, IP_ALLOCATED_FROM_POOL, IP_MODE, LOAD_BALANCER_IPS, metallb_universe,
};
use ironlb_crds::events::{ALLOCATION_FAILED, INVALID_ANNOTATION, IP_ALLOCATED};

use super::*;

/// A busy world: several pools and Services of every kind, settled.
fn busy_world() -> (World, Brain) {
    let (mut world, mut brain) = mk_started(&[
        ("a", &["198.51.100.0/29"]),
        ("b", &["198.51.100.8/29", "2001:db8::/64"]),
        ("overlapping", &["198.51.100.4/30"]),
    ]);
    create(&mut world, &mut brain, mk_service("plain", 1));
    create(
        &mut world,
        &mut brain,
        annotate(mk_service("pinned", 2), LOAD_BALANCER_IPS, "198.51.100.12"),
    );
    for (i, name) in ["share-1", "share-2"].into_iter().enumerate() {
        let mut svc = annotate(mk_service(name, 3 + i as i64), ALLOW_SHARED_IP, "k");
        spec_mut(&mut svc).ports.as_mut().unwrap()[0].port = 80 + i as i32;
        create(&mut world, &mut brain, svc);
    }
    let mut dual = mk_service("dual", 5);
    spec_mut(&mut dual).ip_families = Some(vec!["IPv6".into(), "IPv4".into()]);
    spec_mut(&mut dual).ip_family_policy = Some("RequireDualStack".into());
    create(&mut world, &mut brain, dual);
    create(
        &mut world,
        &mut brain,
        annotate(mk_service("vip", 6), IP_MODE, "VIP"),
    );
    create(
        &mut world,
        &mut brain,
        annotate(
            mk_service("from-metallb", 7),
            metallb_universe::ADDRESS_POOL,
            "b",
        ),
    );
    let mut other = mk_service("other-class", 8);
    spec_mut(&mut other).load_balancer_class = Some("example.com/x".into());
    create(&mut world, &mut brain, other);
    (world, brain)
}

#[test]
fn a_restart_with_existing_statuses_changes_nothing() {
    let (world, before) = busy_world();
    assert_eq!(
        shown(&world, "share-1"),
        shown(&world, "share-2"),
        "the world really shares"
    );
    let (after, out) = world.start(mk_brain());
    assert!(out.intents.is_empty(), "a restart wrote {:?}", out.intents);
    assert!(out.problems.is_empty(), "{:?}", out.problems);
    for key in world.services.keys() {
        assert_eq!(after.assignment(key), before.assignment(key), "{key}");
    }
    // The gauges are still reported.
    assert_eq!(out.gauges.len(), 3);
}

#[test]
fn restart_order_puts_services_holding_addresses_first() {
    let mut world = World::default();
    world.add_pool(mk_pool("tiny", &["198.51.100.7"], 1));
    // "newcomer" is older but pending; "holder" is younger and shows the only address.
    world.add_service(mk_service("newcomer", 1));
    world.add_service(showing(
        annotate(mk_service("holder", 10), IP_ALLOCATED_FROM_POOL, "tiny"),
        &["198.51.100.7"],
        Some("Proxy"),
    ));
    let (mut brain, out) = world.start(mk_brain());
    world.settle(&mut brain, &out);
    assert_eq!(shown(&world, "holder"), vec![ip("198.51.100.7")]);
    assert!(shown(&world, "newcomer").is_empty());
    assert!(
        status_writes(&out).is_empty(),
        "nothing moved: {:?}",
        status_writes(&out)
    );
    assert_eq!(reasons(&out), vec![ALLOCATION_FAILED]);
}

#[test]
fn of_two_services_showing_one_address_the_older_keeps_it() {
    let mut world = World::default();
    world.add_pool(mk_pool("a", &["198.51.100.0/29"], 1));
    for (name, created) in [("young", 20), ("old", 10)] {
        world.add_service(showing(
            annotate(mk_service(name, created), IP_ALLOCATED_FROM_POOL, "a"),
            &["198.51.100.5"],
            Some("Proxy"),
        ));
    }
    let (mut brain, out) = world.start(mk_brain());
    world.settle(&mut brain, &out);
    assert_eq!(shown(&world, "old"), vec![ip("198.51.100.5")]);
    assert_eq!(shown(&world, "young"), vec![ip("198.51.100.0")]);
    assert_eq!(out.problems.len(), 1, "{:?}", out.problems);
    assert!(
        out.problems[0].contains("default/young"),
        "{:?}",
        out.problems
    );
    let (reason, note) = &events(&out)[0];
    assert_eq!(*reason, IP_ALLOCATED);
    assert!(note.contains("the status showed 198.51.100.5"), "{note}");
}

#[test]
fn a_service_with_a_malformed_annotation_keeps_its_address_across_a_restart() {
    let mut world = World::default();
    world.add_pool(mk_pool("a", &["198.51.100.0/29"], 1));
    world.add_service(showing(
        annotate(
            annotate(mk_service("web", 1), IP_ALLOCATED_FROM_POOL, "a"),
            LOAD_BALANCER_IPS,
            "not-an-ip",
        ),
        &["198.51.100.3"],
        Some("Proxy"),
    ));
    let (mut brain, out) = world.start(mk_brain());
    assert!(status_writes(&out).is_empty());
    assert!(annotation_writes(&out).is_empty());
    assert_eq!(reasons(&out), vec![INVALID_ANNOTATION]);
    assert!(events(&out)[0].1.contains("keeps 198.51.100.3"));
    assert_eq!(
        brain.assignment(&key("web")).map(|a| a.ips),
        Some(vec![ip("198.51.100.3")])
    );
    // The held address is not handed to anyone else.
    world.settle(&mut brain, &out);
    let out = create(
        &mut world,
        &mut brain,
        annotate(mk_service("thief", 2), LOAD_BALANCER_IPS, "198.51.100.3"),
    );
    assert_eq!(reasons(&out), vec![ALLOCATION_FAILED]);
    assert!(events(&out)[0].1.contains("already used by default/web"));
}

#[test]
fn services_of_a_pool_that_turned_invalid_while_down_keep_their_addresses() {
    let mut world = World::default();
    world.add_pool(mk_pool("a", &["198.51.100.0/29", "198.51.100.300"], 1));
    world.add_service(showing(
        annotate(mk_service("web", 1), IP_ALLOCATED_FROM_POOL, "a"),
        &["198.51.100.2"],
        Some("Proxy"),
    ));
    let (brain, out) = world.start(mk_brain());
    assert!(status_writes(&out).is_empty(), "{out:?}");
    assert_eq!(
        brain.assignment(&key("web")).map(|a| a.ips),
        Some(vec![ip("198.51.100.2")])
    );
}

#[test]
fn a_foreign_service_still_marked_by_us_is_cleaned_up_at_start_up() {
    let mut world = World::default();
    world.add_pool(mk_pool("a", &["198.51.100.0/29"], 1));
    // Changed to ClusterIP while the controller was down.
    let mut svc = showing(
        annotate(mk_service("web", 1), IP_ALLOCATED_FROM_POOL, "a"),
        &["198.51.100.2"],
        Some("Proxy"),
    );
    spec_mut(&mut svc).type_ = Some("ClusterIP".into());
    world.add_service(svc);
    let (mut brain, out) = world.start(mk_brain());
    assert_eq!(
        status_writes(&out),
        vec![(key("web"), StatusWrite::Clear { exclusive: true })]
    );
    assert_eq!(annotation_writes(&out), vec![(key("web"), None)]);
    world.settle(&mut brain, &out);
    assert!(shown(&world, "web").is_empty());
    assert!(brain.service_keys().next().is_none());
}

#[test]
fn relisting_the_same_objects_changes_nothing() {
    let (world, mut brain) = busy_world();
    for pool in world.pools.values() {
        assert!(brain.apply_pool(pool).is_empty());
    }
    for svc in world.services.values() {
        let out = brain.apply_service(svc);
        assert!(out.is_empty(), "{out:?}");
    }
}
