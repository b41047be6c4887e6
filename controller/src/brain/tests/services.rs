//! Service rules: allocation, class filter, release on type and class change, ipMode,
//! namespace labels.

use ironlb_crds::annotations::{ADDRESS_POOL, IP_MODE, IpMode, LOAD_BALANCER_IPS};
use ironlb_crds::events::{ALLOCATION_FAILED, IP_ALLOCATED, IP_RELEASED};
use ironlb_crds::v1beta1::{IPAddressPoolSpec, ServiceAllocation};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::*;

#[test]
fn allocates_and_writes_status_annotation_event_and_pool_counts() {
    let (mut world, mut brain) = mk_started(&[("main", &["198.51.100.0/29"])]);
    let out = create(&mut world, &mut brain, mk_service("web", 1));

    assert_eq!(
        status_writes(&out),
        vec![(key("web"), set_v4(&["198.51.100.0"], Some(IpMode::Proxy)))]
    );
    assert_eq!(
        annotation_writes(&out),
        vec![(key("web"), Some("main".to_string()))]
    );
    let events = events(&out);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].0, IP_ALLOCATED);
    assert!(events[0].1.contains("198.51.100.0"), "{}", events[0].1);
    let pools = pool_writes(&out);
    assert_eq!(pools.len(), 1);
    assert_eq!(pools[0].1.counts.assigned_ipv4, 1);
    assert_eq!(pools[0].1.counts.available_ipv4, 7);
    assert_eq!(out.gauges.last().unwrap().families, vec![("ipv4", 8, 1)]);

    assert_eq!(shown(&world, "web"), vec![ip("198.51.100.0")]);
    // The echo of our own writes and a resync of the same object change nothing.
    assert!(brain.apply_service(&world.services[&key("web")]).is_empty());
}

#[test]
fn services_of_other_classes_are_ignored() {
    let (mut world, mut brain) = mk_started(&[("main", &["198.51.100.0/29"])]);
    let mut svc = mk_service("other", 1);
    spec_mut(&mut svc).load_balancer_class = Some("example.com/other".into());
    let out = create(&mut world, &mut brain, svc);
    assert!(out.is_empty(), "{out:?}");
    assert!(brain.service_keys().next().is_none(), "not even indexed");

    let mut cluster_ip = mk_service("plain", 2);
    spec_mut(&mut cluster_ip).type_ = Some("ClusterIP".into());
    assert!(create(&mut world, &mut brain, cluster_ip).is_empty());
}

#[test]
fn unclassed_services_are_ignored_with_ignore_unclassed() {
    let mut world = World::default();
    world.add_pool(mk_pool("main", &["198.51.100.0/29"], 1));
    let (mut brain, out) = world.start(mk_brain_with(IpMode::Proxy, true, true));
    world.settle(&mut brain, &out);
    assert!(create(&mut world, &mut brain, mk_service("web", 1)).is_empty());

    let mut classed = mk_service("classed", 2);
    spec_mut(&mut classed).load_balancer_class = Some("ironlb.io/ironlb".into());
    let out = create(&mut world, &mut brain, classed);
    assert_eq!(status_writes(&out).len(), 1);
}

#[test]
fn type_change_releases_and_clears() {
    let (mut world, mut brain) = mk_started(&[("main", &["198.51.100.0/29"])]);
    create(&mut world, &mut brain, mk_service("web", 1));

    let mut svc = mk_service("web", 1);
    spec_mut(&mut svc).type_ = Some("ClusterIP".into());
    let out = update(&mut world, &mut brain, svc);
    assert_eq!(
        status_writes(&out),
        vec![(key("web"), StatusWrite::Clear { exclusive: true })]
    );
    assert_eq!(annotation_writes(&out), vec![(key("web"), None)]);
    assert_eq!(reasons(&out), vec![IP_RELEASED]);
    assert!(events(&out)[0].1.contains("no longer of type LoadBalancer"));
    assert_eq!(pool_writes(&out)[0].1.counts.assigned, 0);
    assert!(shown(&world, "web").is_empty());
    assert_eq!(brain.assignment(&key("web")), None);
    assert!(
        brain.service_keys().next().is_none(),
        "forgotten once cleaned up"
    );

    // The address is free again.
    let out = create(&mut world, &mut brain, mk_service("next", 2));
    assert_eq!(
        status_writes(&out),
        vec![(key("next"), set_v4(&["198.51.100.0"], Some(IpMode::Proxy)))]
    );
}

#[test]
fn class_change_releases_and_clears_only_our_entries() {
    let (mut world, mut brain) = mk_started(&[("main", &["198.51.100.0/29"])]);
    create(&mut world, &mut brain, mk_service("web", 1));

    let mut svc = mk_service("web", 1);
    spec_mut(&mut svc).load_balancer_class = Some("example.com/other".into());
    let out = update(&mut world, &mut brain, svc);
    assert_eq!(
        status_writes(&out),
        vec![(key("web"), StatusWrite::Clear { exclusive: false })]
    );
    assert_eq!(annotation_writes(&out), vec![(key("web"), None)]);
    assert_eq!(reasons(&out), vec![IP_RELEASED]);
    assert!(
        events(&out)[0].1.contains("example.com/other"),
        "{:?}",
        events(&out)
    );
    assert_eq!(brain.assignment(&key("web")), None);
}

#[test]
fn delete_releases_without_writing_to_the_deleted_service() {
    let (mut world, mut brain) = mk_started(&[("main", &["198.51.100.0/29"])]);
    create(&mut world, &mut brain, mk_service("web", 1));
    let out = brain.delete_service(&key("web"));
    assert!(status_writes(&out).is_empty());
    assert!(events(&out).is_empty());
    assert_eq!(pool_writes(&out)[0].1.counts.assigned, 0);
    assert_eq!(brain.assignment(&key("web")), None);
}

#[test]
fn pool_deletion_reassigns_from_another_eligible_pool() {
    let (mut world, mut brain) =
        mk_started(&[("a", &["198.51.100.0/30"]), ("b", &["198.51.100.8/30"])]);
    create(&mut world, &mut brain, mk_service("web", 1));
    assert_eq!(shown(&world, "web"), vec![ip("198.51.100.0")]);

    world.pools.remove("a");
    let out = brain.delete_pool("a");
    world.settle(&mut brain, &out);
    assert_eq!(reasons(&out), vec![IP_RELEASED, IP_ALLOCATED]);
    assert!(events(&out)[0].1.contains("\"a\" was deleted"));
    assert_eq!(
        status_writes(&out),
        vec![(key("web"), set_v4(&["198.51.100.8"], Some(IpMode::Proxy)))]
    );
    assert_eq!(
        annotation_writes(&out),
        vec![(key("web"), Some("b".into()))]
    );
    assert!(
        out.gauges
            .iter()
            .any(|g| g.pool == "a" && g.families.is_empty()),
        "the deleted pool's gauges are dropped: {:?}",
        out.gauges
    );
    assert_eq!(shown(&world, "web"), vec![ip("198.51.100.8")]);
}

#[test]
fn pool_deletion_without_another_pool_leaves_the_service_pending_with_an_event() {
    let (mut world, mut brain) = mk_started(&[("a", &["198.51.100.0/30"])]);
    create(&mut world, &mut brain, mk_service("web", 1));
    world.pools.remove("a");
    let out = brain.delete_pool("a");
    world.settle(&mut brain, &out);
    assert_eq!(reasons(&out), vec![IP_RELEASED, ALLOCATION_FAILED]);
    assert!(
        events(&out)[1].1.contains("stays pending"),
        "{:?}",
        events(&out)
    );
    assert_eq!(
        status_writes(&out),
        vec![(key("web"), StatusWrite::Clear { exclusive: true })]
    );
    assert_eq!(annotation_writes(&out), vec![(key("web"), None)]);
    assert_eq!(out.failures, vec!["no_eligible_pool"]);
    assert!(shown(&world, "web").is_empty());

    // A new pool picks the pending Service up.
    world.add_pool(mk_pool("c", &["198.51.100.16/30"], 500));
    let out = brain.apply_pool(&world.pools["c"]);
    world.settle(&mut brain, &out);
    assert_eq!(shown(&world, "web"), vec![ip("198.51.100.16")]);
    assert!(reasons(&out).contains(&IP_ALLOCATED));
}

#[test]
fn exhausted_pool_leaves_the_next_service_pending_once() {
    let (mut world, mut brain) = mk_started(&[("tiny", &["198.51.100.7"])]);
    create(&mut world, &mut brain, mk_service("first", 1));
    let out = create(&mut world, &mut brain, mk_service("second", 2));
    assert_eq!(reasons(&out), vec![ALLOCATION_FAILED]);
    assert!(
        events(&out)[0].1.contains("no free address"),
        "{:?}",
        events(&out)
    );
    assert!(
        status_writes(&out).is_empty(),
        "nothing shown, nothing to clear"
    );
    // The same failure again (a resync) is not announced again.
    let again = brain.apply_service(&world.services[&key("second")]);
    assert!(again.is_empty(), "{again:?}");
    assert!(again.failures.is_empty(), "nor counted twice");

    // A third one waits too; deleting the first lets the oldest waiting one in at once.
    create(&mut world, &mut brain, mk_service("third", 3));
    world.services.remove(&key("first"));
    let out = brain.delete_service(&key("first"));
    world.settle(&mut brain, &out);
    assert_eq!(
        status_writes(&out),
        vec![(
            key("second"),
            set_v4(&["198.51.100.7"], Some(IpMode::Proxy))
        )]
    );
    assert!(shown(&world, "third").is_empty());

    // A type change frees the address as well.
    let mut svc = mk_service("second", 2);
    spec_mut(&mut svc).type_ = Some("NodePort".into());
    update(&mut world, &mut brain, svc);
    assert_eq!(shown(&world, "third"), vec![ip("198.51.100.7")]);
}

type Shape = Box<dyn Fn(Service) -> Service>;

#[test]
fn ip_mode_variants() {
    let cases: Vec<(&str, IpMode, Shape, Option<IpMode>)> = vec![
        (
            "default",
            IpMode::Proxy,
            Box::new(|s| s),
            Some(IpMode::Proxy),
        ),
        ("flag VIP", IpMode::Vip, Box::new(|s| s), Some(IpMode::Vip)),
        (
            "annotation VIP",
            IpMode::Proxy,
            Box::new(|s| annotate(s, IP_MODE, "VIP")),
            Some(IpMode::Vip),
        ),
        (
            "annotation Proxy beats the flag",
            IpMode::Vip,
            Box::new(|s| annotate(s, IP_MODE, "Proxy")),
            Some(IpMode::Proxy),
        ),
        (
            "no NodePorts",
            IpMode::Proxy,
            Box::new(|mut s| {
                spec_mut(&mut s).allocate_load_balancer_node_ports = Some(false);
                s
            }),
            Some(IpMode::Vip),
        ),
        (
            "NodePorts explicitly on",
            IpMode::Proxy,
            Box::new(|mut s| {
                spec_mut(&mut s).allocate_load_balancer_node_ports = Some(true);
                s
            }),
            Some(IpMode::Proxy),
        ),
    ];
    for (name, flag, shape, want) in cases {
        let mut world = World::default();
        world.add_pool(mk_pool("main", &["198.51.100.0/29"], 1));
        let (mut brain, out) = world.start(mk_brain_with(flag, true, false));
        world.settle(&mut brain, &out);
        let out = create(&mut world, &mut brain, shape(mk_service("web", 1)));
        assert_eq!(
            status_writes(&out),
            vec![(key("web"), set_v4(&["198.51.100.0"], want))],
            "{name}"
        );
    }
}

#[test]
fn servers_without_ip_mode_get_no_ip_mode() {
    let mut world = World::default();
    world.add_pool(mk_pool("main", &["198.51.100.0/29"], 1));
    let (mut brain, out) = world.start(mk_brain_with(IpMode::Vip, false, false));
    world.settle(&mut brain, &out);
    let out = create(
        &mut world,
        &mut brain,
        annotate(mk_service("web", 1), IP_MODE, "VIP"),
    );
    assert_eq!(
        status_writes(&out),
        vec![(key("web"), set_v4(&["198.51.100.0"], None))]
    );
}

#[test]
fn ip_mode_turned_off_at_runtime_strips_pending_writes() {
    let (mut world, mut brain) = mk_started(&[("main", &["198.51.100.0/29"])]);
    world.add_service(mk_service("web", 1));
    let out = brain.apply_service(&world.services[&key("web")]);
    assert_eq!(
        status_writes(&out),
        vec![(key("web"), set_v4(&["198.51.100.0"], Some(IpMode::Proxy)))]
    );
    // The writer found the server lacks ipMode and wrote without it.
    brain.disable_ip_mode();
    let written = showing(
        annotate(
            mk_service("web", 1),
            ironlb_crds::annotations::IP_ALLOCATED_FROM_POOL,
            "main",
        ),
        &["198.51.100.0"],
        None,
    );
    world.add_service(written.clone());
    let echo = brain.apply_service(&written);
    assert!(status_writes(&echo).is_empty(), "{echo:?}");
    let next = create(&mut world, &mut brain, mk_service("api", 2));
    assert_eq!(
        status_writes(&next),
        vec![(key("api"), set_v4(&["198.51.100.1"], None))]
    );
}

#[test]
fn dual_stack_status_follows_ip_families_order() {
    let (mut world, mut brain) = mk_started(&[("main", &["198.51.100.0/29", "2001:db8::/64"])]);
    let mut svc = mk_service("web", 1);
    spec_mut(&mut svc).ip_families = Some(vec!["IPv6".into(), "IPv4".into()]);
    spec_mut(&mut svc).ip_family_policy = Some("RequireDualStack".into());
    let out = create(&mut world, &mut brain, svc);
    let (_, write) = &status_writes(&out)[0];
    let ips: Vec<IpAddr> = write.entries().iter().map(|i| i.ip).collect();
    assert_eq!(ips, vec![ip("2001:db8::"), ip("198.51.100.0")]);
}

#[test]
fn requested_ip_and_pool_annotation_are_honoured() {
    let (mut world, mut brain) =
        mk_started(&[("a", &["198.51.100.0/29"]), ("b", &["198.51.100.8/29"])]);
    let out = create(
        &mut world,
        &mut brain,
        annotate(mk_service("pinned", 1), LOAD_BALANCER_IPS, "198.51.100.5"),
    );
    assert_eq!(
        status_writes(&out),
        vec![(
            key("pinned"),
            set_v4(&["198.51.100.5"], Some(IpMode::Proxy))
        )]
    );
    let out = create(
        &mut world,
        &mut brain,
        annotate(mk_service("in-b", 2), ADDRESS_POOL, "b"),
    );
    assert_eq!(
        status_writes(&out),
        vec![(key("in-b"), set_v4(&["198.51.100.8"], Some(IpMode::Proxy)))]
    );
    assert_eq!(
        annotation_writes(&out),
        vec![(key("in-b"), Some("b".into()))]
    );

    // Changing the request moves the Service, and the event says where from.
    let out = update(
        &mut world,
        &mut brain,
        annotate(mk_service("pinned", 1), LOAD_BALANCER_IPS, "198.51.100.6"),
    );
    assert_eq!(shown(&world, "pinned"), vec![ip("198.51.100.6")]);
    let events = events(&out);
    assert_eq!(events[0].0, IP_ALLOCATED);
    assert!(
        events[0].1.contains("(was 198.51.100.5)"),
        "{}",
        events[0].1
    );
}

#[test]
fn deprecated_spec_load_balancer_ip_is_honoured() {
    let (mut world, mut brain) = mk_started(&[("a", &["198.51.100.0/29"])]);
    let mut svc = mk_service("web", 1);
    spec_mut(&mut svc).load_balancer_ip = Some("198.51.100.3".into());
    create(&mut world, &mut brain, svc);
    assert_eq!(shown(&world, "web"), vec![ip("198.51.100.3")]);
}

fn selector_pool(
    name: &str,
    addresses: &[&str],
    label: (&str, &str),
    created: i64,
) -> IPAddressPool {
    mk_pool_spec(
        name,
        IPAddressPoolSpec {
            addresses: addresses.iter().map(|s| s.to_string()).collect(),
            auto_assign: true,
            avoid_buggy_ips: false,
            service_allocation: Some(ServiceAllocation {
                priority: 1,
                namespace_selectors: vec![LabelSelector {
                    match_labels: Some([(label.0.to_string(), label.1.to_string())].into()),
                    ..Default::default()
                }],
                ..Default::default()
            }),
        },
        created,
    )
}

#[test]
fn namespace_label_change_reevaluates_its_services() {
    let mut world = World::default();
    world.add_pool(selector_pool(
        "gold",
        &["198.51.100.0/30"],
        ("tier", "gold"),
        1,
    ));
    world.add_pool(mk_pool("general", &["198.51.100.8/30"], 2));
    world
        .namespaces
        .insert("shop".into(), mk_namespace("shop", &[("tier", "gold")]));
    world
        .namespaces
        .insert("lab".into(), mk_namespace("lab", &[]));
    let (mut brain, out) = world.start(mk_brain());
    world.settle(&mut brain, &out);

    let out = create(&mut world, &mut brain, mk_service_in("shop", "web", 1));
    assert_eq!(annotation_writes(&out)[0].1.as_deref(), Some("gold"));
    let out = create(&mut world, &mut brain, mk_service_in("lab", "api", 2));
    assert_eq!(annotation_writes(&out)[0].1.as_deref(), Some("general"));

    // The shop loses its label: its Service moves to the general pool; lab is not touched.
    let out = brain.apply_namespace(&mk_namespace("shop", &[]));
    world.settle(&mut brain, &out);
    assert_eq!(
        status_writes(&out),
        vec![(
            ServiceKey::new("shop", "web"),
            set_v4(&["198.51.100.9"], Some(IpMode::Proxy))
        )]
    );
    // The same labels again: nothing to do.
    assert!(brain.apply_namespace(&mk_namespace("shop", &[])).is_empty());

    // The lab gains the label: its Service's address still satisfies it, so it stays.
    let out = brain.apply_namespace(&mk_namespace("lab", &[("tier", "gold")]));
    assert!(status_writes(&out).is_empty(), "{out:?}");
}

#[test]
fn a_service_waits_for_its_new_namespace_when_pools_select_namespaces() {
    let mut world = World::default();
    world.add_pool(selector_pool(
        "gold",
        &["198.51.100.0/30"],
        ("tier", "gold"),
        1,
    ));
    world.add_pool(mk_pool("general", &["198.51.100.8/30"], 2));
    let (mut brain, out) = world.start(mk_brain());
    world.settle(&mut brain, &out);

    // The Service's event overtakes its Namespace's.
    let out = create(&mut world, &mut brain, mk_service_in("fresh", "web", 1));
    assert!(out.intents.is_empty(), "{out:?}");
    let out = brain.apply_namespace(&mk_namespace("fresh", &[("tier", "gold")]));
    world.settle(&mut brain, &out);
    assert_eq!(annotation_writes(&out)[0].1.as_deref(), Some("gold"));
}

#[test]
fn nothing_is_decided_before_the_initial_lists_are_complete() {
    let mut brain = mk_brain();
    assert!(
        brain
            .apply_pool(&mk_pool("a", &["198.51.100.0/29"], 1))
            .is_empty()
    );
    assert!(brain.apply_service(&mk_service("web", 1)).is_empty());
    assert_eq!(brain.assignment(&key("web")), None);
    let out = brain.synced();
    assert_eq!(status_writes(&out).len(), 1);
    assert!(brain.synced().is_empty(), "synced only once");
}

#[test]
fn a_service_that_leaves_a_shared_address_on_incompatible_terms_loses_it() {
    use ironlb_crds::annotations::ALLOW_SHARED_IP;
    let (mut world, mut brain) = mk_started(&[("one", &["198.51.100.7"])]);
    create(
        &mut world,
        &mut brain,
        annotate(mk_service("a", 1), ALLOW_SHARED_IP, "k"),
    );
    let mut b = annotate(mk_service("b", 2), ALLOW_SHARED_IP, "k");
    spec_mut(&mut b).ports.as_mut().unwrap()[0].port = 81;
    create(&mut world, &mut brain, b);
    assert_eq!(shown(&world, "b"), vec![ip("198.51.100.7")]);

    // "b" drops the key and takes a's port: it may not stay on a's address, and there is no
    // other one.
    let out = update(&mut world, &mut brain, mk_service("b", 2));
    assert_eq!(reasons(&out), vec![ALLOCATION_FAILED]);
    assert!(events(&out)[0].1.contains("released"), "{:?}", events(&out));
    assert!(shown(&world, "b").is_empty());
    assert_eq!(shown(&world, "a"), vec![ip("198.51.100.7")]);
}

#[test]
fn a_refused_request_is_met_once_the_address_is_free() {
    let (mut world, mut brain) = mk_started(&[("main", &["198.51.100.0/30"])]);
    create(&mut world, &mut brain, mk_service("holder", 1));
    create(&mut world, &mut brain, mk_service("mover", 2));
    // "mover" asks for the holder's address: refused, it keeps its own meanwhile.
    let out = update(
        &mut world,
        &mut brain,
        annotate(mk_service("mover", 2), LOAD_BALANCER_IPS, "198.51.100.0"),
    );
    assert_eq!(reasons(&out), vec![ALLOCATION_FAILED]);
    assert_eq!(shown(&world, "mover"), vec![ip("198.51.100.1")]);
    // The holder goes away: the mover gets what it asked for without another event of its own.
    world.services.remove(&key("holder"));
    let out = brain.delete_service(&key("holder"));
    world.settle(&mut brain, &out);
    assert_eq!(shown(&world, "mover"), vec![ip("198.51.100.0")]);
}

#[test]
fn a_malformed_service_whose_pool_stops_offering_its_address_is_cleared() {
    let (mut world, mut brain) = mk_started(&[("main", &["198.51.100.8/30"])]);
    create(&mut world, &mut brain, mk_service("web", 1));
    update(
        &mut world,
        &mut brain,
        annotate(mk_service("web", 1), LOAD_BALANCER_IPS, "garbage"),
    );
    assert_eq!(
        shown(&world, "web"),
        vec![ip("198.51.100.8")],
        "kept while malformed"
    );
    let mut moved = mk_pool("main", &["198.51.100.0/30"], 100);
    moved.metadata.generation = Some(2);
    world.add_pool(moved.clone());
    let out = brain.apply_pool(&moved);
    world.settle(&mut brain, &out);
    assert!(shown(&world, "web").is_empty(), "no stale address");
}
