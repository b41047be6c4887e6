//! Pools: conditions, conflicts, invalid specs keeping the last valid version, counts.

use ironlb_crds::annotations::IpMode;
use ironlb_crds::conditions::{
    REASON_INVALID_SPEC, REASON_OVERLAP, REASON_READY, TYPE_CONFLICT, TYPE_INVALID, TYPE_READY,
};
use ironlb_crds::events::{INVALID_POOL, IP_ALLOCATED, POOL_CONFLICT};

use super::*;

#[test]
fn a_valid_pool_is_ready_with_counts_per_family() {
    let mut world = World::default();
    world.add_pool(mk_pool("main", &["198.51.100.0/29", "2001:db8::/64"], 1));
    let (mut brain, out) = world.start(mk_brain());
    let writes = pool_writes(&out);
    assert_eq!(writes.len(), 1);
    let status = &writes[0].1;
    assert!(condition(status, TYPE_READY).status);
    assert_eq!(condition(status, TYPE_READY).reason, REASON_READY);
    assert!(!condition(status, TYPE_INVALID).status);
    assert!(!condition(status, TYPE_CONFLICT).status);
    assert_eq!(condition(status, TYPE_READY).observed_generation, Some(1));
    assert_eq!(status.counts.available_ipv4, 8);
    assert_eq!(status.counts.available_ipv6, i64::MAX, "a /64 saturates");
    assert_eq!(status.counts.available, i64::MAX);
    assert_eq!(status.counts.assigned, 0);
    world.settle(&mut brain, &out);
    // Resyncing the pool as written changes nothing.
    assert!(brain.apply_pool(&world.pools["main"]).is_empty());
}

#[test]
fn a_conflicting_pool_is_reported_and_not_used() {
    let mut world = World::default();
    world.add_pool(mk_pool("old", &["198.51.100.0/30"], 1));
    world.add_pool(mk_pool("young", &["198.51.100.2/31", "198.51.100.8/30"], 2));
    let (mut brain, out) = world.start(mk_brain());
    world.settle(&mut brain, &out);

    let conflicts: Vec<_> = events(&out)
        .into_iter()
        .filter(|(r, _)| *r == POOL_CONFLICT)
        .collect();
    assert_eq!(conflicts.len(), 1, "{out:?}");
    assert!(conflicts[0].1.contains("\"old\""), "{}", conflicts[0].1);
    assert!(
        conflicts[0].1.contains("198.51.100.2-198.51.100.3"),
        "{}",
        conflicts[0].1
    );
    let young = world.pools["young"].status.clone().unwrap();
    let conflict = young.condition(TYPE_CONFLICT).unwrap();
    assert_eq!(conflict.status, "True");
    assert_eq!(conflict.reason, REASON_OVERLAP);
    assert!(conflict.message.contains("\"old\""));
    assert_eq!(young.condition(TYPE_READY).unwrap().status, "False");
    let old = world.pools["old"].status.clone().unwrap();
    assert_eq!(old.condition(TYPE_READY).unwrap().status, "True");

    // Services never get the young pool's addresses, even its non-overlapping ones.
    for (i, name) in ["a", "b", "c", "d"].into_iter().enumerate() {
        create(&mut world, &mut brain, mk_service(name, i as i64));
    }
    let out = create(&mut world, &mut brain, mk_service("e", 10));
    assert_eq!(reasons(&out), vec![ironlb_crds::events::ALLOCATION_FAILED]);
    assert!(world.services.values().all(|s| {
        ServiceView::from_service(s)
            .unwrap()
            .shown_ips()
            .iter()
            .all(|ip| ip.to_string().starts_with("198.51.100.") && !ip.to_string().ends_with(".8"))
    }));

    // Removing the older pool resolves the conflict, and the pending Service gets an address.
    world.pools.remove("old");
    let out = brain.delete_pool("old");
    world.settle(&mut brain, &out);
    let young = world.pools["young"].status.clone().unwrap();
    assert_eq!(young.condition(TYPE_READY).unwrap().status, "True");
    assert_eq!(young.condition(TYPE_CONFLICT).unwrap().status, "False");
    assert!(reasons(&out).contains(&IP_ALLOCATED));
}

#[test]
fn an_invalid_pool_keeps_its_last_valid_version() {
    let (mut world, mut brain) = mk_started(&[("main", &["198.51.100.0/29"])]);
    create(&mut world, &mut brain, mk_service("web", 1));

    let mut broken = mk_pool("main", &["198.51.100.9-198.51.100.1", "banana"], 100);
    broken.metadata.generation = Some(2);
    world.add_pool(broken.clone());
    let out = brain.apply_pool(&broken);
    world.settle(&mut brain, &out);

    assert_eq!(reasons(&out), vec![INVALID_POOL]);
    let note = &events(&out)[0].1;
    assert!(
        note.contains("spec.addresses[0]") && note.contains("spec.addresses[1]"),
        "{note}"
    );
    assert!(
        status_writes(&out).is_empty(),
        "the Service keeps its address"
    );
    assert_eq!(shown(&world, "web"), vec![ip("198.51.100.0")]);
    let status = world.pools["main"].status.clone().unwrap();
    let invalid = status.condition(TYPE_INVALID).unwrap();
    assert_eq!(invalid.status, "True");
    assert_eq!(invalid.reason, REASON_INVALID_SPEC);
    assert!(invalid.message.contains("banana"), "{}", invalid.message);
    assert_eq!(invalid.observed_generation, Some(2));
    assert_eq!(status.condition(TYPE_READY).unwrap().status, "False");
    assert_eq!(status.assigned, 1, "counts of the version in use");

    // New Services are still served by the last valid version.
    let out = create(&mut world, &mut brain, mk_service("api", 2));
    assert_eq!(
        status_writes(&out),
        vec![(key("api"), set_v4(&["198.51.100.1"], Some(IpMode::Proxy)))]
    );
    // The same invalid spec again: no second event.
    assert!(events(&brain.apply_pool(&broken)).is_empty());

    // Fixing the pool clears the condition.
    let mut fixed = mk_pool("main", &["198.51.100.0/29"], 100);
    fixed.metadata.generation = Some(3);
    world.add_pool(fixed.clone());
    let out = brain.apply_pool(&fixed);
    world.settle(&mut brain, &out);
    let status = world.pools["main"].status.clone().unwrap();
    assert_eq!(status.condition(TYPE_INVALID).unwrap().status, "False");
    assert_eq!(status.condition(TYPE_READY).unwrap().status, "True");
}

#[test]
fn a_pool_that_never_was_valid_is_not_used() {
    let mut world = World::default();
    world.add_pool(mk_pool("bad", &["198.51.100.0/29", "198.51.100.0/33"], 1));
    let (mut brain, out) = world.start(mk_brain());
    world.settle(&mut brain, &out);
    assert_eq!(reasons(&out), vec![INVALID_POOL]);
    assert!(events(&out)[0].1.contains("previous version stay in use"));
    assert!(
        out.problems.is_empty(),
        "the event is the log line: {:?}",
        out.problems
    );
    // After a restart the pool already shows the problem: no event, one log line.
    let (_, again) = world.start(mk_brain());
    assert!(events(&again).is_empty(), "{again:?}");
    assert_eq!(again.problems.len(), 1, "{:?}", again.problems);
    // At start-up there is no last valid version: the well-formed entries are kept for the
    // Services that show them, but never auto-assigned.
    let out = create(&mut world, &mut brain, mk_service("web", 1));
    assert_eq!(reasons(&out), vec![ironlb_crds::events::ALLOCATION_FAILED]);

    let mut world = World::default();
    let (mut brain, out) = world.start(mk_brain());
    world.settle(&mut brain, &out);
    world.add_pool(mk_pool("bad", &["198.51.100.0/33"], 1));
    let out = brain.apply_pool(&world.pools["bad"]);
    world.settle(&mut brain, &out);
    assert!(events(&out)[0].1.contains("not used"), "{:?}", events(&out));
    let status = world.pools["bad"].status.clone().unwrap();
    assert_eq!(status.condition(TYPE_INVALID).unwrap().status, "True");
    assert_eq!(status.available, 0);
}

#[test]
fn pool_changes_move_only_services_whose_addresses_are_gone() {
    let (mut world, mut brain) = mk_started(&[("main", &["198.51.100.0/29"])]);
    create(&mut world, &mut brain, mk_service("low", 1));
    create(
        &mut world,
        &mut brain,
        annotate(
            mk_service("high", 2),
            ironlb_crds::annotations::LOAD_BALANCER_IPS,
            "198.51.100.6",
        ),
    );
    // The pool shrinks to .0-.3: "high" loses its requested address and cannot get another.
    let mut shrunk = mk_pool("main", &["198.51.100.0/30"], 100);
    shrunk.metadata.generation = Some(2);
    world.add_pool(shrunk.clone());
    let out = brain.apply_pool(&shrunk);
    world.settle(&mut brain, &out);
    assert_eq!(shown(&world, "low"), vec![ip("198.51.100.0")]);
    assert!(shown(&world, "high").is_empty());
    let for_high: Vec<_> = out
        .intents
        .iter()
        .filter(|i| matches!(i, Intent::Event(e) if e.regarding.name == "high"))
        .collect();
    assert_eq!(
        for_high.len(),
        2,
        "IPReleased then AllocationFailed: {for_high:?}"
    );
}
