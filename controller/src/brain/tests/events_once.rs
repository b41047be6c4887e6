//! Events are emitted once per distinct fact, not at every resync.

use ironlb_crds::annotations::{LOAD_BALANCER_IPS, metallb, metallb_universe};
use ironlb_crds::events::{INVALID_ANNOTATION, IP_ALLOCATED, METALLB_ANNOTATION};

use super::*;

#[test]
fn a_metallb_annotation_is_noted_once() {
    let (mut world, mut brain) = mk_started(&[("main", &["198.51.100.0/29"])]);
    let svc = annotate(
        mk_service("web", 1),
        metallb::LOAD_BALANCER_IPS,
        "198.51.100.4",
    );
    let out = create(&mut world, &mut brain, svc.clone());
    assert_eq!(reasons(&out), vec![METALLB_ANNOTATION, IP_ALLOCATED]);
    assert_eq!(
        events(&out)[0].1,
        "MetalLB annotation metallb.io/loadBalancerIPs=\"198.51.100.4\" is honoured as ironlb.io/loadBalancerIPs"
    );
    assert_eq!(shown(&world, "web"), vec![ip("198.51.100.4")]);

    // Resyncs and unrelated updates: no second event.
    assert!(brain.apply_service(&world.services[&key("web")]).is_empty());
    let mut relabelled = svc.clone();
    relabelled.metadata.labels = Some([("app".to_string(), "web".to_string())].into());
    assert!(events(&update(&mut world, &mut brain, relabelled)).is_empty());

    // A restart: the predecessor already noted it.
    let (_, out) = world.start(mk_brain());
    assert!(out.intents.is_empty(), "{out:?}");

    // A new value is a new translation.
    let out = update(
        &mut world,
        &mut brain,
        annotate(
            mk_service("web", 1),
            metallb::LOAD_BALANCER_IPS,
            "198.51.100.5",
        ),
    );
    assert_eq!(reasons(&out), vec![METALLB_ANNOTATION, IP_ALLOCATED]);
}

#[test]
fn each_metallb_key_gets_its_own_event() {
    let (mut world, mut brain) = mk_started(&[("main", &["198.51.100.0/29"])]);
    let svc = annotate(
        annotate(mk_service("web", 1), metallb_universe::ADDRESS_POOL, "main"),
        metallb::ALLOW_SHARED_IP,
        "k",
    );
    let out = create(&mut world, &mut brain, svc);
    assert_eq!(
        reasons(&out),
        vec![METALLB_ANNOTATION, METALLB_ANNOTATION, IP_ALLOCATED]
    );
}

#[test]
fn an_invalid_annotation_is_reported_once_per_distinct_problem() {
    let (mut world, mut brain) = mk_started(&[("main", &["198.51.100.0/29"])]);
    let out = create(
        &mut world,
        &mut brain,
        annotate(mk_service("web", 1), LOAD_BALANCER_IPS, "x"),
    );
    assert_eq!(reasons(&out), vec![INVALID_ANNOTATION]);
    assert!(
        brain
            .apply_service(&world.services[&key("web")])
            .intents
            .is_empty()
    );
    let out = update(
        &mut world,
        &mut brain,
        annotate(mk_service("web", 1), LOAD_BALANCER_IPS, "y"),
    );
    assert_eq!(reasons(&out), vec![INVALID_ANNOTATION]);
}
