//! What one node's kube-proxy stand-in should serve, computed from Services and
//! EndpointSlices. Pure.
//!
//! For every NodePort of every Service port (TCP and UDP) on each node IP of the Service's
//! families, the usable endpoints: all ready ones for `externalTrafficPolicy: Cluster`, only
//! this node's for `Local`. Plus each `healthCheckNodePort` with this node's ready endpoint
//! count. A Service annotated `lab.ironlb.io/kube-proxy: ignore` is skipped entirely, so a
//! benchmark can run its own server on its NodePort.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

use super::ProxyError;

pub const IGNORE_ANNOTATION: &str = "lab.ironlb.io/kube-proxy";
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Proto {
    Tcp,
    Udp,
}

/// One endpoint traffic can be sent to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    /// `namespace/name` of the pod, or the endpoint address when it names none.
    pub pod: String,
    pub node: Option<String>,
    pub address: IpAddr,
    pub port: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortEntry {
    /// `namespace/name`.
    pub service: String,
    pub port_name: String,
    pub local_only: bool,
    pub backends: Vec<Backend>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthEntry {
    pub namespace: String,
    pub name: String,
    pub local_endpoints: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyTable {
    pub ports: BTreeMap<(Proto, SocketAddr), PortEntry>,
    pub health_checks: BTreeMap<u16, HealthEntry>,
}

/// Whether the Service asks the stand-in to leave it alone; malformed values are reported
/// and do not opt out.
pub fn ignored(svc: &Service) -> Result<bool, ProxyError> {
    match svc
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(IGNORE_ANNOTATION))
        .map(String::as_str)
    {
        None => Ok(false),
        Some("ignore") => Ok(true),
        Some(other) => Err(ProxyError::BadAnnotation {
            service: key(svc),
            value: other.to_string(),
        }),
    }
}

fn key(svc: &Service) -> String {
    format!(
        "{}/{}",
        svc.metadata.namespace.as_deref().unwrap_or_default(),
        svc.metadata.name.as_deref().unwrap_or_default()
    )
}

fn families(svc: &Service) -> (bool, bool) {
    let fams = svc
        .spec
        .as_ref()
        .and_then(|s| s.ip_families.clone())
        .unwrap_or_default();
    if fams.is_empty() {
        return (true, false);
    }
    (
        fams.iter().any(|f| f == "IPv4"),
        fams.iter().any(|f| f == "IPv6"),
    )
}

/// Builds the table; also returns the problems found on the way (reported by the caller).
pub fn build(
    services: &[&Service],
    slices: &[&EndpointSlice],
    node_name: &str,
    node_ips: &[IpAddr],
) -> (ProxyTable, Vec<ProxyError>) {
    let mut table = ProxyTable::default();
    let mut problems = Vec::new();

    let mut by_service: BTreeMap<(String, String), Vec<&EndpointSlice>> = BTreeMap::new();
    for slice in slices {
        let Some(svc_name) = slice
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(SERVICE_NAME_LABEL))
        else {
            continue;
        };
        let ns = slice.metadata.namespace.clone().unwrap_or_default();
        by_service
            .entry((ns, svc_name.clone()))
            .or_default()
            .push(slice);
    }

    for svc in services {
        match ignored(svc) {
            Ok(true) => continue,
            Ok(false) => {}
            Err(e) => problems.push(e),
        }
        let Some(spec) = svc.spec.as_ref() else {
            continue;
        };
        let ns = svc.metadata.namespace.clone().unwrap_or_default();
        let name = svc.metadata.name.clone().unwrap_or_default();
        let local_only = spec.external_traffic_policy.as_deref() == Some("Local");
        let svc_slices = by_service
            .get(&(ns.clone(), name.clone()))
            .cloned()
            .unwrap_or_default();
        let (v4, v6) = families(svc);

        let backends_for = |port_name: &str, want_v6: bool, local: bool| -> Vec<Backend> {
            let mut out = Vec::new();
            for slice in &svc_slices {
                if (slice.address_type == "IPv6") != want_v6 || slice.address_type == "FQDN" {
                    continue;
                }
                let port = slice
                    .ports
                    .iter()
                    .flatten()
                    .find(|p| p.name.as_deref().unwrap_or_default() == port_name)
                    .and_then(|p| p.port);
                for ep in slice.endpoints.iter().flatten() {
                    let ready = ep.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
                    if !ready || (local && ep.node_name.as_deref() != Some(node_name)) {
                        continue;
                    }
                    let Some(address) = ep.addresses.first().and_then(|a| a.parse::<IpAddr>().ok())
                    else {
                        continue;
                    };
                    let pod = ep
                        .target_ref
                        .as_ref()
                        .and_then(|t| {
                            Some(format!(
                                "{}/{}",
                                t.namespace.as_deref().unwrap_or(&ns),
                                t.name.as_deref()?
                            ))
                        })
                        .unwrap_or_else(|| address.to_string());
                    out.push(Backend {
                        pod,
                        node: ep.node_name.clone(),
                        address,
                        port,
                    });
                }
            }
            out.sort_by(|a, b| a.pod.cmp(&b.pod));
            out
        };

        for sp in spec.ports.iter().flatten() {
            let Some(node_port) = sp.node_port.and_then(|p| u16::try_from(p).ok()) else {
                continue;
            };
            let proto = match sp.protocol.as_deref().unwrap_or("TCP") {
                "TCP" => Proto::Tcp,
                "UDP" => Proto::Udp,
                other => {
                    problems.push(ProxyError::Unsupported(format!(
                        "{}: protocol {other} is not served by the stand-in",
                        key(svc)
                    )));
                    continue;
                }
            };
            let port_name = sp.name.clone().unwrap_or_default();
            for ip in node_ips {
                if (ip.is_ipv4() && !v4) || (ip.is_ipv6() && !v6) {
                    continue;
                }
                table.ports.insert(
                    (proto, SocketAddr::new(*ip, node_port)),
                    PortEntry {
                        service: key(svc),
                        port_name: port_name.clone(),
                        local_only,
                        backends: backends_for(&port_name, ip.is_ipv6(), local_only),
                    },
                );
            }
        }

        if let Some(hc) = spec
            .health_check_node_port
            .and_then(|p| u16::try_from(p).ok())
        {
            // Count distinct local pods across families.
            let mut local: Vec<String> = [false, true]
                .iter()
                .flat_map(|v6| backends_for_any_port(&svc_slices, *v6, node_name))
                .collect();
            local.sort();
            local.dedup();
            table.health_checks.insert(
                hc,
                HealthEntry {
                    namespace: ns.clone(),
                    name: name.clone(),
                    local_endpoints: local.len(),
                },
            );
        }
    }
    (table, problems)
}

/// Ready endpoints of this node, by pod name, whatever the port.
fn backends_for_any_port(slices: &[&EndpointSlice], v6: bool, node_name: &str) -> Vec<String> {
    slices
        .iter()
        .filter(|s| (s.address_type == "IPv6") == v6)
        .flat_map(|s| s.endpoints.iter().flatten())
        .filter(|ep| ep.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true))
        .filter(|ep| ep.node_name.as_deref() == Some(node_name))
        .map(|ep| {
            ep.target_ref
                .as_ref()
                .and_then(|t| t.name.clone())
                .unwrap_or_else(|| ep.addresses.first().cloned().unwrap_or_default())
        })
        .collect()
}

/// Round-robin choice: the `n`th request goes to backend `n mod len`.
pub fn pick(backends: &[Backend], n: usize) -> Option<&Backend> {
    if backends.is_empty() {
        None
    } else {
        backends.get(n % backends.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ObjectReference, ServicePort, ServiceSpec};
    use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn mk_service(policy: &str, ports: &[(&str, &str, i32)], hc: Option<i32>) -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("default".into()),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                type_: Some("LoadBalancer".into()),
                external_traffic_policy: Some(policy.into()),
                health_check_node_port: hc,
                ports: Some(
                    ports
                        .iter()
                        .map(|(name, proto, np)| ServicePort {
                            name: Some(name.to_string()),
                            protocol: Some(proto.to_string()),
                            port: 80,
                            node_port: Some(*np),
                            ..Default::default()
                        })
                        .collect(),
                ),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn mk_slice(family: &str, endpoints: &[(&str, &str, &str, bool)]) -> EndpointSlice {
        EndpointSlice {
            metadata: ObjectMeta {
                name: Some(format!("web-{family}")),
                namespace: Some("default".into()),
                labels: Some(BTreeMap::from([(SERVICE_NAME_LABEL.into(), "web".into())])),
                ..Default::default()
            },
            address_type: family.into(),
            endpoints: Some(
                endpoints
                    .iter()
                    .map(|(pod, node, ip, ready)| Endpoint {
                        addresses: vec![ip.to_string()],
                        conditions: Some(EndpointConditions {
                            ready: Some(*ready),
                            ..Default::default()
                        }),
                        node_name: Some(node.to_string()),
                        target_ref: Some(ObjectReference {
                            name: Some(pod.to_string()),
                            namespace: Some("default".into()),
                            ..Default::default()
                        }),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ports: Some(vec![
                EndpointPort {
                    name: Some("http".into()),
                    port: Some(8080),
                    ..Default::default()
                },
                EndpointPort {
                    name: Some("dns".into()),
                    port: Some(5353),
                    ..Default::default()
                },
            ]),
        }
    }

    fn node1() -> Vec<IpAddr> {
        vec!["192.0.2.11".parse().unwrap()]
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn pods(entry: &PortEntry) -> Vec<&str> {
        entry.backends.iter().map(|b| b.pod.as_str()).collect()
    }

    #[test]
    fn cluster_policy_serves_every_ready_endpoint_on_tcp_and_udp() {
        let svc = mk_service(
            "Cluster",
            &[("http", "TCP", 30080), ("dns", "UDP", 30053)],
            None,
        );
        let slice = mk_slice(
            "IPv4",
            &[
                ("b", "node2", "203.0.113.130", true),
                ("a", "node1", "203.0.113.129", true),
                ("c", "node3", "203.0.113.131", false),
            ],
        );
        let (t, problems) = build(&[&svc], &[&slice], "node1", &node1());
        assert!(problems.is_empty());
        let http = &t.ports[&(Proto::Tcp, addr("192.0.2.11:30080"))];
        assert_eq!(pods(http), ["default/a", "default/b"]);
        assert_eq!(http.backends[0].port, Some(8080));
        assert_eq!(http.service, "default/web");
        let dns = &t.ports[&(Proto::Udp, addr("192.0.2.11:30053"))];
        assert_eq!(dns.backends[1].port, Some(5353));
        assert!(t.health_checks.is_empty());
    }

    #[test]
    fn local_policy_serves_only_this_node_s_endpoints_and_reports_them() {
        let svc = mk_service("Local", &[("http", "TCP", 30080)], Some(32000));
        let slice = mk_slice(
            "IPv4",
            &[
                ("a", "node1", "203.0.113.129", true),
                ("b", "node2", "203.0.113.130", true),
                ("c", "node1", "203.0.113.131", false),
            ],
        );
        let (on1, _) = build(&[&svc], &[&slice], "node1", &node1());
        assert_eq!(
            pods(&on1.ports[&(Proto::Tcp, addr("192.0.2.11:30080"))]),
            ["default/a"]
        );
        assert_eq!(on1.health_checks[&32000].local_endpoints, 1);
        let (on3, _) = build(
            &[&svc],
            &[&slice],
            "node3",
            &["192.0.2.13".parse().unwrap()],
        );
        assert!(
            on3.ports[&(Proto::Tcp, addr("192.0.2.13:30080"))]
                .backends
                .is_empty()
        );
        assert_eq!(on3.health_checks[&32000].local_endpoints, 0);
    }

    #[test]
    fn families_pick_node_ips_and_slices() {
        let mut svc = mk_service("Cluster", &[("http", "TCP", 30080)], None);
        svc.spec.as_mut().unwrap().ip_families = Some(vec!["IPv6".into()]);
        let v4 = mk_slice("IPv4", &[("a", "node1", "203.0.113.129", true)]);
        let v6 = mk_slice("IPv6", &[("a", "node1", "2001:db8:fffd::1", true)]);
        let ips = vec![
            "192.0.2.11".parse().unwrap(),
            "2001:db8::11".parse().unwrap(),
        ];
        let (t, _) = build(&[&svc], &[&v4, &v6], "node1", &ips);
        assert_eq!(t.ports.len(), 1);
        let entry = &t.ports[&(Proto::Tcp, addr("[2001:db8::11]:30080"))];
        assert_eq!(entry.backends[0].address.to_string(), "2001:db8:fffd::1");
    }

    #[test]
    fn ignored_services_and_unsupported_protocols() {
        let mut svc = mk_service(
            "Cluster",
            &[("http", "TCP", 30080), ("s", "SCTP", 30081)],
            None,
        );
        let (t, problems) = build(&[&svc], &[], "node1", &node1());
        assert_eq!(t.ports.len(), 1);
        assert!(matches!(problems[..], [ProxyError::Unsupported(_)]));
        svc.metadata.annotations = Some(BTreeMap::from([(
            IGNORE_ANNOTATION.into(),
            "ignore".into(),
        )]));
        let (t, _) = build(&[&svc], &[], "node1", &node1());
        assert!(t.ports.is_empty());
        svc.metadata.annotations = Some(BTreeMap::from([(IGNORE_ANNOTATION.into(), "yes".into())]));
        let (t, problems) = build(&[&svc], &[], "node1", &node1());
        assert_eq!(t.ports.len(), 1, "a malformed opt-out does not opt out");
        assert!(
            problems
                .iter()
                .any(|p| matches!(p, ProxyError::BadAnnotation { .. }))
        );
    }

    #[test]
    fn services_without_node_ports_are_not_served() {
        let mut svc = mk_service("Cluster", &[("http", "TCP", 30080)], None);
        svc.spec.as_mut().unwrap().ports.as_mut().unwrap()[0].node_port = None;
        assert!(build(&[&svc], &[], "node1", &node1()).0.ports.is_empty());
        svc.spec.as_mut().unwrap().ports.as_mut().unwrap()[0].node_port = Some(-1);
        assert!(build(&[&svc], &[], "node1", &node1()).0.ports.is_empty());
    }

    #[test]
    fn pick_round_robins() {
        let b = |p: &str| Backend {
            pod: p.into(),
            node: None,
            address: "203.0.113.129".parse().unwrap(),
            port: None,
        };
        let backends = vec![b("a"), b("b"), b("c")];
        let picked: Vec<&str> = (0..5)
            .map(|n| pick(&backends, n).unwrap().pod.as_str())
            .collect();
        assert_eq!(picked, ["a", "b", "c", "a", "b"]);
        assert!(pick(&[], 3).is_none());
    }
}
