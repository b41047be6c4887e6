//! Malformed input: a clear event naming the problem, never a panic, nothing lost.

use ironlb_crds::annotations::{ADDRESS_POOL, IP_MODE, IpMode, LOAD_BALANCER_IPS, metallb};
use ironlb_crds::conditions::TYPE_INVALID;
use ironlb_crds::events::{ALLOCATION_FAILED, INVALID_ANNOTATION, INVALID_POOL};

use super::*;

fn started() -> (World, Brain) {
    mk_started(&[("main", &["198.51.100.0/29", "2001:db8::/64"])])
}

#[test]
fn malformed_load_balancer_ips_annotations_are_reported_and_allocate_nothing() {
    let cases = [
        ("garbage", "banana", "\"banana\" is not an IP address"),
        (
            "three IPs",
            "198.51.100.1,198.51.100.2,2001:db8::1",
            "lists 3 addresses",
        ),
        (
            "two of one family",
            "198.51.100.1,198.51.100.2",
            "two IPv4 addresses",
        ),
        ("empty entry", "198.51.100.1,", "empty entry"),
    ];
    for (what, value, expected) in cases {
        let (mut world, mut brain) = started();
        let out = create(
            &mut world,
            &mut brain,
            annotate(mk_service("web", 1), LOAD_BALANCER_IPS, value),
        );
        assert_eq!(reasons(&out), vec![INVALID_ANNOTATION], "{what}");
        let note = &events(&out)[0].1;
        assert!(note.contains(LOAD_BALANCER_IPS), "{what}: {note}");
        assert!(note.contains(expected), "{what}: {note}");
        assert!(note.contains("no IP is allocated"), "{what}: {note}");
        assert!(status_writes(&out).is_empty(), "{what}");
        assert_eq!(out.failures, vec!["invalid_annotation"], "{what}");
    }
}

#[test]
fn both_spec_load_balancer_ip_and_the_annotation_is_a_clear_error() {
    let (mut world, mut brain) = started();
    let mut svc = annotate(mk_service("web", 1), LOAD_BALANCER_IPS, "198.51.100.1");
    spec_mut(&mut svc).load_balancer_ip = Some("198.51.100.2".into());
    let out = create(&mut world, &mut brain, svc);
    assert_eq!(reasons(&out), vec![INVALID_ANNOTATION]);
    let note = &events(&out)[0].1;
    assert!(
        note.contains(
            "both spec.loadBalancerIP (\"198.51.100.2\") and annotation ironlb.io/loadBalancerIPs"
        ),
        "{note}"
    );
    assert!(shown(&world, "web").is_empty());
}

#[test]
fn an_unknown_pool_in_the_annotation_fails_with_its_name() {
    let (mut world, mut brain) = started();
    let out = create(
        &mut world,
        &mut brain,
        annotate(mk_service("web", 1), ADDRESS_POOL, "nope"),
    );
    assert_eq!(reasons(&out), vec![ALLOCATION_FAILED]);
    assert!(
        events(&out)[0]
            .1
            .contains("address pool \"nope\" does not exist"),
        "{:?}",
        events(&out)
    );
    assert_eq!(out.failures, vec!["unknown_pool"]);
    // A malformed pool name is an annotation error instead.
    let out = create(
        &mut world,
        &mut brain,
        annotate(mk_service("api", 2), ADDRESS_POOL, "Not_A_Name"),
    );
    assert_eq!(reasons(&out), vec![INVALID_ANNOTATION]);
}

#[test]
fn a_malformed_annotation_on_a_service_with_an_ip_keeps_the_ip() {
    let (mut world, mut brain) = started();
    create(&mut world, &mut brain, mk_service("web", 1));
    assert_eq!(shown(&world, "web"), vec![ip("198.51.100.0")]);

    let out = update(
        &mut world,
        &mut brain,
        annotate(mk_service("web", 1), IP_MODE, "Turbo"),
    );
    assert_eq!(reasons(&out), vec![INVALID_ANNOTATION]);
    let note = &events(&out)[0].1;
    assert!(
        note.contains("ironlb.io/ip-mode") && note.contains("Turbo"),
        "{note}"
    );
    assert!(note.contains("keeps 198.51.100.0"), "{note}");
    assert!(status_writes(&out).is_empty());
    assert!(annotation_writes(&out).is_empty());
    assert_eq!(shown(&world, "web"), vec![ip("198.51.100.0")]);

    // Twin annotations that disagree are reported too, and the IP still stays.
    let out = update(
        &mut world,
        &mut brain,
        annotate(
            annotate(mk_service("web", 1), ADDRESS_POOL, "main"),
            metallb::ADDRESS_POOL,
            "other",
        ),
    );
    assert_eq!(reasons(&out), vec![INVALID_ANNOTATION]);
    assert!(events(&out)[0].1.contains(metallb::ADDRESS_POOL));
    assert_eq!(shown(&world, "web"), vec![ip("198.51.100.0")]);

    // Fixed: back to normal, with no move.
    let out = update(&mut world, &mut brain, mk_service("web", 1));
    assert!(out.intents.is_empty(), "{out:?}");
}

#[test]
fn spec_fields_the_api_server_should_have_refused_are_reported() {
    let (mut world, mut brain) = started();
    let mut svc = mk_service("web", 1);
    spec_mut(&mut svc).ip_families = Some(vec!["IPv5".into()]);
    let out = create(&mut world, &mut brain, svc);
    assert_eq!(reasons(&out), vec![ALLOCATION_FAILED]);
    assert!(
        events(&out)[0].1.contains("spec.ipFamilies[0]"),
        "{:?}",
        events(&out)
    );
    assert_eq!(out.failures, vec!["invalid_spec"]);

    let mut svc = mk_service("ports", 2);
    spec_mut(&mut svc).ports.as_mut().unwrap()[0].protocol = Some("QUIC".into());
    let out = create(&mut world, &mut brain, svc);
    assert!(events(&out)[0].1.contains("spec.ports[0].protocol"));
}

#[test]
fn odd_objects_never_panic() {
    let (mut world, mut brain) = started();
    assert!(brain.apply_service(&Service::default()).is_empty());
    let mut nameless = mk_pool("x", &["198.51.100.0/29"], 1);
    nameless.metadata.name = None;
    assert!(brain.apply_pool(&nameless).is_empty());
    assert!(brain.apply_namespace(&Namespace::default()).is_empty());
    // A status showing garbage and hostnames is replaced by what we decide.
    let mut svc = mk_service("web", 1);
    svc.status = Some(k8s_openapi::api::core::v1::ServiceStatus {
        load_balancer: Some(k8s_openapi::api::core::v1::LoadBalancerStatus {
            ingress: Some(vec![
                k8s_openapi::api::core::v1::LoadBalancerIngress {
                    ip: Some("not-an-ip".into()),
                    ..Default::default()
                },
                k8s_openapi::api::core::v1::LoadBalancerIngress {
                    hostname: Some("lb.example".into()),
                    ..Default::default()
                },
            ]),
        }),
        ..Default::default()
    });
    let out = create(&mut world, &mut brain, svc);
    assert_eq!(
        status_writes(&out),
        vec![(key("web"), set_v4(&["198.51.100.0"], Some(IpMode::Proxy)))]
    );
    // Deleting unknown objects is harmless.
    assert!(brain.delete_service(&key("ghost")).intents.is_empty());
    assert!(brain.delete_pool("ghost").is_empty());
    assert!(brain.delete_namespace("ghost").is_empty());
}

#[test]
fn bad_cidrs_and_ranges_make_the_pool_invalid_with_every_problem_named() {
    let mut world = World::default();
    world.add_pool(mk_pool(
        "bad",
        &[
            "198.51.100.5/24",
            "198.51.100.9-198.51.100.1",
            "198.51.100.1-2001:db8::1",
        ],
        1,
    ));
    let (mut brain, out) = world.start(mk_brain());
    world.settle(&mut brain, &out);
    assert_eq!(reasons(&out), vec![INVALID_POOL]);
    let status = world.pools["bad"].status.clone().unwrap();
    let message = &status.condition(TYPE_INVALID).unwrap().message;
    for index in 0..3 {
        assert!(
            message.contains(&format!("spec.addresses[{index}]")),
            "{message}"
        );
    }
}
