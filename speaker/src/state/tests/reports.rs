//! ServiceL2Status writes and Events: written on takeover, nothing at steady state, deleted on
//! loss with a precondition, orphans cleaned by one janitor, withdrawal and dedupe.

use super::*;

const VIP: &str = "198.51.100.10";

fn owner_state() -> (State, String) {
    let winner = expected_winner(VIP, &NODES);
    let mut state = mk_world(&winner);
    state.apply_service(&mk_service("web", &[VIP], json!({})));
    (state, winner)
}

fn applies(changes: &Changes) -> Vec<&DesiredStatus> {
    changes
        .statuses
        .iter()
        .filter_map(|a| match a {
            StatusAction::Apply { desired, .. } => Some(desired),
            _ => None,
        })
        .collect()
}

/// What the server would return for an apply.
fn observed(desired: &DesiredStatus, rv: &str) -> ObservedStatus {
    ObservedStatus {
        resource_version: Some(rv.into()),
        node: desired.node.clone(),
        service: desired.service.key.clone(),
        ips: desired.ips.clone(),
        interfaces: desired.interfaces.clone(),
        labels: desired.labels(),
    }
}

#[test]
fn the_owner_writes_its_status_once_with_a_node_assigned_event() {
    let (mut state, winner) = owner_state();
    let changes = state.plan();
    let [
        StatusAction::Apply {
            name,
            desired,
            announce,
        },
    ] = changes.statuses.as_slice()
    else {
        panic!("one apply expected: {:?}", changes.statuses);
    };
    assert_eq!(*name, status_name(&key("web"), Family::V4));
    assert_eq!(desired.node, winner);
    assert_eq!(desired.ips, [ip(VIP)]);
    assert_eq!(desired.interfaces, ["eth0"]);
    assert_eq!(desired.service.uid.as_deref(), Some("uid-web"));
    let event = announce.as_ref().expect("nodeAssigned");
    assert_eq!(event.reason, "nodeAssigned");
    assert_eq!(
        event.note,
        format!("announcing {VIP} from node {winner} on interface eth0")
    );

    // Handed out once, even if asked again before the write finishes.
    assert!(state.plan().statuses.is_empty());
    state.apply_service(&mk_service("other", &["198.51.100.99"], json!({})));
    assert!(
        applies(&state.plan())
            .iter()
            .all(|d| d.service.key.name != "web")
    );

    // Written: the echo changes nothing, and neither do later plans.
    let name = name.clone();
    let desired = desired.clone();
    state.status_written(&name, WriteOutcome::Applied(observed(&desired, "7")));
    assert!(
        state
            .plan()
            .statuses
            .iter()
            .all(|a| a.name() != name.as_str())
    );
    let echo = mk_status(&name, &winner, "web", &[VIP], "7");
    state.apply_status(&echo);
    assert!(
        state
            .plan()
            .statuses
            .iter()
            .all(|a| a.name() != name.as_str())
    );
}

#[test]
fn a_restarted_owner_finding_its_status_in_place_writes_nothing() {
    let winner = expected_winner(VIP, &NODES);
    let mut state = State::new(config(&winner));
    let name = status_name(&key("web"), Family::V4);
    state.apply_status(&mk_status(&name, &winner, "web", &[VIP], "3"));
    for n in NODES {
        state.apply_node(&mk_node(n, &[&node_ip(n)], &[]));
    }
    state.apply_pool(&mk_pool(
        "main",
        &["198.51.100.0/24"],
        "2024-01-01T00:00:00Z",
    ));
    state.apply_advertisement(&mk_ad("main", json!({})));
    state.apply_service(&mk_service("web", &[VIP], json!({})));
    state.set_default_interfaces(BTreeMap::from([(Family::V4, "eth0".to_string())]));
    state.set_synced();
    state.set_phase(Phase::Member);
    assert!(state.plan().statuses.is_empty(), "not settled: no writes");
    state.set_membership(all_alive(), true);
    let changes = state.plan();
    assert_eq!(changes.takeovers, [ip(VIP)]);
    assert!(changes.statuses.is_empty(), "{:?}", changes.statuses);
}

#[test]
fn a_new_owner_overwrites_the_dead_owners_object_and_announces_it() {
    let winner = expected_winner(VIP, &NODES);
    let rest: Vec<&str> = NODES.iter().copied().filter(|n| *n != winner).collect();
    let second = expected_winner(VIP, &rest);
    let mut state = mk_world(&second);
    let name = status_name(&key("web"), Family::V4);
    state.apply_service(&mk_service("web", &[VIP], json!({})));
    state.apply_status(&mk_status(&name, &winner, "web", &[VIP], "3"));
    assert!(
        state.plan().statuses.is_empty(),
        "the winner's object is right"
    );

    state.set_membership(alive(&rest), true);
    let changes = state.plan();
    let [
        StatusAction::Apply {
            desired, announce, ..
        },
    ] = changes.statuses.as_slice()
    else {
        panic!("{:?}", changes.statuses);
    };
    assert_eq!(desired.node, second);
    assert!(announce.as_ref().unwrap().note.contains(&second));
}

#[test]
fn a_node_that_loses_the_ip_deletes_its_object_with_a_precondition() {
    let (mut state, winner) = owner_state();
    let changes = state.plan();
    let name = changes.statuses[0].name().to_string();
    state.status_written(&name, WriteOutcome::Abandoned);
    state.apply_status(&mk_status(&name, &winner, "web", &[VIP], "11"));
    state.plan();

    state.apply_service(&mk_service(
        "web",
        &[VIP],
        json!({"externalTrafficPolicy": "Local"}),
    ));
    let changes = state.plan();
    assert_eq!(
        changes.losses,
        [ip(VIP)],
        "no endpoints: nobody may announce"
    );
    assert_eq!(
        changes.statuses,
        [StatusAction::Delete {
            name: name.clone(),
            resource_version: Some("11".into())
        }]
    );
    // Someone else's object is never deleted by us while its node is alive.
    state.status_written(&name, WriteOutcome::Abandoned);
    let other = NODES.iter().find(|n| **n != winner).unwrap();
    state.apply_status(&mk_status(&name, other, "web", &[VIP], "12"));
    assert!(state.plan().statuses.is_empty());
}

#[test]
fn orphans_of_dead_nodes_are_deleted_by_the_first_alive_member_only() {
    let name = status_name(&key("gone"), Family::V4);
    let orphan = mk_status(&name, "node3", "gone", &["198.51.100.77"], "5");
    let mut cluster = Cluster::new();
    let changes = cluster.each(|s| {
        s.apply_status(&orphan);
        s.set_membership(alive(&["node1", "node2"]), true);
    });
    assert_eq!(
        changes["node1"].statuses,
        [StatusAction::Delete {
            name: name.clone(),
            resource_version: Some("5".into())
        }]
    );
    assert!(changes["node2"].statuses.is_empty());

    // While node3 is alive, its object is its own business.
    let mut cluster = Cluster::new();
    let changes = cluster.each(|s| s.apply_status(&orphan));
    assert!(changes["node1"].statuses.is_empty());
    assert!(changes["node2"].statuses.is_empty());
    assert_eq!(
        changes["node3"].statuses.len(),
        1,
        "node3 deletes its own stale object"
    );

    // An object whose Service still has an elected IP is left for its owner to overwrite.
    let mut cluster = Cluster::new();
    let live = mk_status(
        &status_name(&key("web"), Family::V4),
        "node3",
        "web",
        &[VIP],
        "6",
    );
    let changes = cluster.each(|s| {
        s.apply_service(&mk_service("web", &[VIP], json!({})));
        s.apply_status(&live);
        s.set_membership(alive(&["node1", "node2"]), true);
    });
    // (node3 is dead: what its own state would do does not happen.)
    let deletes = ["node1", "node2"]
        .iter()
        .flat_map(|n| &changes[*n].statuses)
        .filter(|a| matches!(a, StatusAction::Delete { .. }))
        .count();
    assert_eq!(deletes, 0);
}

#[test]
fn withdrawing_deletes_own_objects_and_joining_writes_nothing() {
    let (mut state, winner) = owner_state();
    let name = state.plan().statuses[0].name().to_string();
    state.status_written(&name, WriteOutcome::Abandoned);
    state.apply_status(&mk_status(&name, &winner, "web", &[VIP], "9"));
    state.plan();

    state.set_phase(Phase::Joining);
    let changes = state.plan();
    assert_eq!(changes.losses, [ip(VIP)]);
    assert!(changes.statuses.is_empty(), "a joining node cannot judge");

    state.set_phase(Phase::Withdrawn);
    assert_eq!(
        state.plan().statuses,
        [StatusAction::Delete {
            name: name.clone(),
            resource_version: Some("9".into())
        }]
    );
    assert_eq!(state.my_statuses(), [(name, Some("9".to_string()))]);
}

#[test]
fn dual_stack_services_get_one_object_per_family() {
    let vip6 = "2001:db8:0:100::10";
    let mut state = mk_world("node1");
    state.set_membership(alive(&["node1"]), true);
    state.apply_service(&mk_service("web", &[VIP, vip6], json!({})));
    let changes = state.plan();
    let mut names: Vec<String> = changes
        .statuses
        .iter()
        .map(|a| a.name().to_string())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            status_name(&key("web"), Family::V4),
            status_name(&key("web"), Family::V6)
        ]
    );
    for desired in applies(&changes) {
        assert_eq!(desired.ips.len(), 1);
    }
}

#[test]
fn shared_ips_give_every_service_its_object() {
    let mut state = mk_world("node1");
    state.set_membership(alive(&["node1"]), true);
    state.apply_service(&mk_service("a", &[VIP], json!({})));
    state.apply_service(&mk_service(
        "b",
        &[VIP],
        json!({"ports": [{"port": 53, "protocol": "UDP", "nodePort": 30053}]}),
    ));
    let changes = state.plan();
    let services: BTreeSet<String> = applies(&changes)
        .iter()
        .map(|d| d.service.key.name.clone())
        .collect();
    assert_eq!(services, BTreeSet::from(["a".into(), "b".into()]));
    assert_eq!(
        changes.announced,
        Some(BTreeSet::from([(key("a"), ip(VIP)), (key("b"), ip(VIP))]))
    );
}

#[test]
fn an_object_changed_by_someone_else_is_put_back() {
    let (mut state, winner) = owner_state();
    let changes = state.plan();
    let name = changes.statuses[0].name().to_string();
    let StatusAction::Apply { desired, .. } = &changes.statuses[0] else {
        panic!()
    };
    state.status_written(&name, WriteOutcome::Applied(observed(desired, "2")));
    state.plan();
    // Someone edits the interfaces: rewritten, without a new nodeAssigned event.
    let mut edited = mk_status(&name, &winner, "web", &[VIP], "3");
    edited.status.as_mut().unwrap().interfaces[0].name = "eth9".into();
    state.apply_status(&edited);
    let changes = state.plan();
    let [StatusAction::Apply { announce, .. }] = changes.statuses.as_slice() else {
        panic!("{:?}", changes.statuses);
    };
    assert!(announce.is_none());
    // Someone deletes it: recreated, with the event again.
    state.status_written(&name, WriteOutcome::Abandoned);
    state.delete_status(&name);
    let changes = state.plan();
    let [StatusAction::Apply { announce, .. }] = changes.statuses.as_slice() else {
        panic!("{:?}", changes.statuses);
    };
    assert!(announce.is_some());
}

#[test]
fn an_object_whose_status_is_not_written_yet_is_not_taken_for_an_orphan() {
    // The owner creates the object (labels) before it writes its status; the janitor must read
    // the owner from the labels in between, or it deletes the owner's fresh object.
    let vip = (10..60)
        .map(|n| format!("198.51.100.{n}"))
        .find(|ip| expected_winner(ip, &NODES) != "node1")
        .expect("some address is won by another node than the janitor");
    let winner = expected_winner(&vip, &NODES);
    let name = status_name(&key("web"), Family::V4);
    let mut half_written = mk_status(&name, &winner, "web", &[&vip], "7");
    half_written.status = None;

    let observed = ObservedStatus::from_object(&half_written);
    assert_eq!(observed.node, winner);
    assert_eq!(observed.service, key("web"));

    let mut cluster = Cluster::new();
    let changes = cluster.each(|s| {
        s.apply_service(&mk_service("web", &[&vip], json!({})));
        s.apply_status(&half_written);
    });
    for node in NODES.iter().filter(|n| **n != winner) {
        assert!(
            !changes[*node]
                .statuses
                .iter()
                .any(|a| matches!(a, StatusAction::Delete { .. })),
            "{node} deleted the owner's object: {:?}",
            changes[*node].statuses
        );
    }
}
