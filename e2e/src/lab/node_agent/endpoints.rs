//! The EndpointSlice controller's part: the slices a Service with a selector should have,
//! given the pods. Pure.
//!
//! One slice per Service and address family (`<service>-ipv4`, `<service>-ipv6`), labelled
//! `kubernetes.io/service-name` and managed-by the lab agent. Endpoints follow Kubernetes'
//! conditions: `serving` is the pod's readiness, `ready` is serving and not terminating (or
//! always, with `publishNotReadyAddresses`), `terminating` is a deletion in progress.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{ObjectReference, Pod, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::pods::{is_ready, is_terminal, is_terminating, pod_ips};

pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
/// Not the real controller's value, so the two never fight over a slice.
pub const MANAGED_BY: &str = "lab-node-agent.ironlb.io";

/// The families a Service uses, from `spec.ipFamilies` (IPv4 when unset).
pub fn service_families(svc: &Service) -> Vec<&'static str> {
    let families = svc.spec.as_ref().and_then(|s| s.ip_families.as_ref());
    match families {
        Some(f) if !f.is_empty() => f
            .iter()
            .filter_map(|f| match f.as_str() {
                "IPv4" => Some("IPv4"),
                "IPv6" => Some("IPv6"),
                _ => None,
            })
            .collect(),
        _ => vec!["IPv4"],
    }
}

pub fn slice_name(service: &str, address_type: &str) -> String {
    format!("{service}-{}", address_type.to_ascii_lowercase())
}

fn selects(selector: &BTreeMap<String, String>, pod: &Pod) -> bool {
    let labels = pod.metadata.labels.as_ref();
    selector
        .iter()
        .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

/// The container port a Service port targets on this pod (named ports are resolved).
fn target_port(port: &k8s_openapi::api::core::v1::ServicePort, pod: &Pod) -> Option<i32> {
    match &port.target_port {
        None => Some(port.port),
        Some(IntOrString::Int(p)) => Some(*p),
        Some(IntOrString::String(name)) => pod
            .spec
            .as_ref()?
            .containers
            .iter()
            .flat_map(|c| c.ports.iter().flatten())
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .map(|p| p.container_port),
    }
}

/// The slices the Service should have; empty for a Service without a selector (its slices
/// are someone else's to manage).
pub fn desired_slices(svc: &Service, pods: &[&Pod]) -> Vec<EndpointSlice> {
    let Some(spec) = svc.spec.as_ref() else {
        return Vec::new();
    };
    let Some(selector) = spec.selector.as_ref().filter(|s| !s.is_empty()) else {
        return Vec::new();
    };
    if spec.type_.as_deref() == Some("ExternalName") {
        return Vec::new();
    }
    let namespace = svc.metadata.namespace.clone().unwrap_or_default();
    let service_name = svc.metadata.name.clone().unwrap_or_default();
    let publish_not_ready = spec.publish_not_ready_addresses.unwrap_or(false);

    let mut members: Vec<&Pod> = pods
        .iter()
        .copied()
        .filter(|p| p.metadata.namespace.as_deref() == Some(namespace.as_str()))
        .filter(|p| selects(selector, p) && !is_terminal(p))
        .filter(|p| p.spec.as_ref().is_some_and(|s| s.node_name.is_some()))
        .collect();
    members.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));

    let ports: Vec<EndpointPort> = spec
        .ports
        .iter()
        .flatten()
        .filter_map(|sp| {
            let port =
                members
                    .iter()
                    .find_map(|p| target_port(sp, p))
                    .or(match &sp.target_port {
                        Some(IntOrString::String(_)) => None,
                        _ => target_port(sp, &Pod::default()),
                    })?;
            Some(EndpointPort {
                name: Some(sp.name.clone().unwrap_or_default()),
                port: Some(port),
                protocol: Some(sp.protocol.clone().unwrap_or_else(|| "TCP".into())),
                app_protocol: sp.app_protocol.clone(),
            })
        })
        .collect();

    let owner = OwnerReference {
        api_version: "v1".into(),
        kind: "Service".into(),
        name: service_name.clone(),
        uid: svc.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    };

    service_families(svc)
        .into_iter()
        .map(|address_type| {
            let v6 = address_type == "IPv6";
            let endpoints: Vec<Endpoint> = members
                .iter()
                .filter_map(|pod| {
                    let ip: IpAddr = pod_ips(pod).into_iter().find(|ip| ip.is_ipv6() == v6)?;
                    let serving = is_ready(pod);
                    let terminating = is_terminating(pod);
                    Some(Endpoint {
                        addresses: vec![ip.to_string()],
                        conditions: Some(EndpointConditions {
                            ready: Some(publish_not_ready || (serving && !terminating)),
                            serving: Some(serving),
                            terminating: Some(terminating),
                        }),
                        node_name: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
                        target_ref: Some(ObjectReference {
                            kind: Some("Pod".into()),
                            name: pod.metadata.name.clone(),
                            namespace: pod.metadata.namespace.clone(),
                            uid: pod.metadata.uid.clone(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    })
                })
                .collect();
            EndpointSlice {
                metadata: ObjectMeta {
                    name: Some(slice_name(&service_name, address_type)),
                    namespace: Some(namespace.clone()),
                    labels: Some(BTreeMap::from([
                        (SERVICE_NAME_LABEL.to_string(), service_name.clone()),
                        (MANAGED_BY_LABEL.to_string(), MANAGED_BY.to_string()),
                    ])),
                    owner_references: Some(vec![owner.clone()]),
                    ..Default::default()
                },
                address_type: address_type.to_string(),
                endpoints: Some(endpoints),
                ports: Some(ports.clone()),
            }
        })
        .collect()
}

/// Whether a live slice already carries the desired content.
pub fn slice_matches(live: &EndpointSlice, desired: &EndpointSlice) -> bool {
    let labels_ok = desired
        .metadata
        .labels
        .iter()
        .flatten()
        .all(|(k, v)| live.metadata.labels.as_ref().and_then(|l| l.get(k)) == Some(v));
    let norm_endpoints = |s: &EndpointSlice| {
        s.endpoints
            .iter()
            .flatten()
            .map(|e| {
                let c = e.conditions.clone().unwrap_or_default();
                (
                    e.addresses.clone(),
                    e.node_name.clone(),
                    e.target_ref.as_ref().and_then(|t| t.name.clone()),
                    c.ready.unwrap_or(true),
                    c.serving.unwrap_or(true),
                    c.terminating.unwrap_or(false),
                )
            })
            .collect::<Vec<_>>()
    };
    let norm_ports = |s: &EndpointSlice| {
        s.ports
            .iter()
            .flatten()
            .map(|p| {
                (
                    p.name.clone().unwrap_or_default(),
                    p.port,
                    p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                )
            })
            .collect::<Vec<_>>()
    };
    labels_ok
        && live.address_type == desired.address_type
        && norm_endpoints(live) == norm_endpoints(desired)
        && norm_ports(live) == norm_ports(desired)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        Container, ContainerPort, PodCondition, PodIP, PodSpec, PodStatus, ServicePort, ServiceSpec,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn mk_service(families: &[&str], target: IntOrString) -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("default".into()),
                uid: Some("svc-uid".into()),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                selector: Some(BTreeMap::from([("app".into(), "web".into())])),
                ip_families: Some(families.iter().map(|f| f.to_string()).collect()),
                ports: Some(vec![ServicePort {
                    name: Some("http".into()),
                    port: 80,
                    target_port: Some(target),
                    protocol: Some("TCP".into()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn mk_pod(name: &str, node: &str, ips: &[&str], ready: bool) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                uid: Some(format!("uid-{name}")),
                labels: Some(BTreeMap::from([("app".into(), "web".into())])),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: Some(node.into()),
                containers: vec![Container {
                    name: "c".into(),
                    ports: Some(vec![ContainerPort {
                        name: Some("http-alt".into()),
                        container_port: 8080,
                        ..Default::default()
                    }]),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: Some("Running".into()),
                pod_ips: Some(ips.iter().map(|ip| PodIP { ip: ip.to_string() }).collect()),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: if ready { "True" } else { "False" }.into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        }
    }

    fn conditions(slice: &EndpointSlice) -> Vec<(String, bool, bool, bool)> {
        slice
            .endpoints
            .iter()
            .flatten()
            .map(|e| {
                let c = e.conditions.clone().unwrap();
                (
                    e.target_ref.as_ref().unwrap().name.clone().unwrap(),
                    c.ready.unwrap(),
                    c.serving.unwrap(),
                    c.terminating.unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn one_slice_per_family_with_ready_pods_and_node_names() {
        let svc = mk_service(&["IPv4", "IPv6"], IntOrString::Int(8080));
        let a = mk_pod("a", "node1", &["203.0.113.129", "2001:db8:fffd::1"], true);
        let b = mk_pod("b", "node2", &["203.0.113.130", "2001:db8:fffd::2"], false);
        let slices = desired_slices(&svc, &[&b, &a]);
        assert_eq!(slices.len(), 2);
        let v4 = &slices[0];
        assert_eq!(v4.metadata.name.as_deref(), Some("web-ipv4"));
        assert_eq!(v4.address_type, "IPv4");
        assert_eq!(
            v4.metadata.labels.as_ref().unwrap()[SERVICE_NAME_LABEL],
            "web"
        );
        assert_eq!(
            v4.endpoints.as_ref().unwrap()[0].addresses,
            ["203.0.113.129"]
        );
        assert_eq!(
            v4.endpoints.as_ref().unwrap()[0].node_name.as_deref(),
            Some("node1")
        );
        assert_eq!(
            conditions(v4),
            [
                ("a".into(), true, true, false),
                ("b".into(), false, false, false)
            ]
        );
        assert_eq!(
            slices[1].endpoints.as_ref().unwrap()[1].addresses,
            ["2001:db8:fffd::2"]
        );
        let port = &v4.ports.as_ref().unwrap()[0];
        assert_eq!(
            (port.name.as_deref(), port.port),
            (Some("http"), Some(8080))
        );
    }

    #[test]
    fn terminating_pods_stay_serving_but_not_ready() {
        let svc = mk_service(&["IPv4"], IntOrString::Int(8080));
        let mut a = mk_pod("a", "node1", &["203.0.113.129"], true);
        a.metadata.deletion_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH));
        let slices = desired_slices(&svc, &[&a]);
        assert_eq!(conditions(&slices[0]), [("a".into(), false, true, true)]);
        let mut publish = svc.clone();
        publish.spec.as_mut().unwrap().publish_not_ready_addresses = Some(true);
        let b = mk_pod("b", "node1", &["203.0.113.130"], false);
        assert_eq!(
            conditions(&desired_slices(&publish, &[&b])[0]),
            [("b".into(), true, false, false)]
        );
    }

    #[test]
    fn named_target_ports_resolve_from_the_pods() {
        let svc = mk_service(&["IPv4"], IntOrString::String("http-alt".into()));
        let a = mk_pod("a", "node1", &["203.0.113.129"], true);
        assert_eq!(
            desired_slices(&svc, &[&a])[0].ports.as_ref().unwrap()[0].port,
            Some(8080)
        );
        // Without a pod to resolve it from, the port is left out rather than guessed.
        assert!(
            desired_slices(&svc, &[])[0]
                .ports
                .as_ref()
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn unselected_unscheduled_terminal_or_foreign_pods_are_left_out() {
        let svc = mk_service(&["IPv4"], IntOrString::Int(8080));
        let mut other = mk_pod("other", "node1", &["203.0.113.131"], true);
        other.metadata.labels = Some(BTreeMap::from([("app".into(), "db".into())]));
        let mut unscheduled = mk_pod("pending", "node1", &[], true);
        unscheduled.spec.as_mut().unwrap().node_name = None;
        let mut done = mk_pod("done", "node1", &["203.0.113.132"], false);
        done.status.as_mut().unwrap().phase = Some("Succeeded".into());
        let mut foreign = mk_pod("foreign", "node1", &["203.0.113.133"], true);
        foreign.metadata.namespace = Some("other".into());
        let slices = desired_slices(&svc, &[&other, &unscheduled, &done, &foreign]);
        assert!(slices[0].endpoints.as_ref().unwrap().is_empty());
    }

    #[test]
    fn services_without_selector_get_no_slices() {
        let mut svc = mk_service(&["IPv4"], IntOrString::Int(80));
        svc.spec.as_mut().unwrap().selector = None;
        assert!(desired_slices(&svc, &[]).is_empty());
        svc.spec.as_mut().unwrap().selector = Some(BTreeMap::new());
        assert!(desired_slices(&svc, &[]).is_empty());
    }

    #[test]
    fn slice_match_sees_condition_changes() {
        let svc = mk_service(&["IPv4"], IntOrString::Int(8080));
        let ready = mk_pod("a", "node1", &["203.0.113.129"], true);
        let not_ready = mk_pod("a", "node1", &["203.0.113.129"], false);
        let live = desired_slices(&svc, &[&ready]).remove(0);
        assert!(slice_matches(&live, &desired_slices(&svc, &[&ready])[0]));
        assert!(!slice_matches(
            &live,
            &desired_slices(&svc, &[&not_ready])[0]
        ));
        assert!(!slice_matches(&live, &desired_slices(&svc, &[])[0]));
    }
}
