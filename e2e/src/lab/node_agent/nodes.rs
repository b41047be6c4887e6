//! The Node objects the node agent keeps registered, as kubelets would. Pure.
//!
//! Two annotations let tests change a node's health without touching the host:
//! `lab.ironlb.io/ready: "false"` turns condition Ready False, and
//! `lab.ironlb.io/network-unavailable: "true"` sets condition NetworkUnavailable True.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{
    Node, NodeAddress, NodeCondition, NodeSpec as K8sNodeSpec, NodeStatus, NodeSystemInfo, Taint,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

use super::AgentError;
use super::pods::parse_bool_annotation;

pub const READY_ANNOTATION: &str = "lab.ironlb.io/ready";
pub const NETWORK_UNAVAILABLE_ANNOTATION: &str = "lab.ironlb.io/network-unavailable";
pub const CONTROL_PLANE_LABEL: &str = "node-role.kubernetes.io/control-plane";

/// One node the agent plays the kubelet for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSpec {
    pub name: String,
    /// InternalIPs, IPv4 first when both exist.
    pub ips: Vec<IpAddr>,
    pub control_plane: bool,
    /// Reported in the Node's `nodeInfo`; the lab's nodes share the machine's kernel.
    pub kernel_version: String,
}

impl NodeSpec {
    pub fn ip_of_family(&self, v6: bool) -> Option<IpAddr> {
        self.ips.iter().copied().find(|ip| ip.is_ipv6() == v6)
    }
}

/// Parses `--node NAME=IP[,IP]`.
pub fn parse_node_arg(arg: &str) -> Result<NodeSpec, AgentError> {
    let bad = |why: &str| AgentError::BadNodeArg(arg.to_string(), why.to_string());
    let (name, ips) = arg
        .split_once('=')
        .ok_or_else(|| bad("expected NAME=IP[,IP]"))?;
    if name.is_empty()
        || name.len() > 63
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
    {
        return Err(bad("the name must be a lowercase DNS name"));
    }
    let mut parsed: Vec<IpAddr> = Vec::new();
    for ip in ips.split(',') {
        let ip: IpAddr = ip.trim().parse().map_err(|_| bad("not an IP address"))?;
        if parsed.iter().any(|p| p.is_ipv6() == ip.is_ipv6()) {
            return Err(bad("at most one IP per family"));
        }
        parsed.push(ip);
    }
    parsed.sort_by_key(|ip| ip.is_ipv6());
    Ok(NodeSpec {
        name: name.to_string(),
        ips: parsed,
        control_plane: false,
        kernel_version: String::new(),
    })
}

/// What the node's conditions should say, from its annotations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeHealth {
    pub ready: bool,
    pub network_unavailable: bool,
}

/// Reads the health annotations; a malformed value is reported and read as unhealthy.
pub fn node_health(node: Option<&Node>) -> (NodeHealth, Vec<AgentError>) {
    let annotations = node.and_then(|n| n.metadata.annotations.as_ref());
    let get = |key| annotations.and_then(|a| a.get(key)).map(String::as_str);
    let mut errors = Vec::new();
    let ready = match parse_bool_annotation(READY_ANNOTATION, get(READY_ANNOTATION)) {
        Ok(v) => v.unwrap_or(true),
        Err(e) => {
            errors.push(e);
            false
        }
    };
    let network_unavailable = match parse_bool_annotation(
        NETWORK_UNAVAILABLE_ANNOTATION,
        get(NETWORK_UNAVAILABLE_ANNOTATION),
    ) {
        Ok(v) => v.unwrap_or(false),
        Err(e) => {
            errors.push(e);
            true
        }
    };
    (
        NodeHealth {
            ready,
            network_unavailable,
        },
        errors,
    )
}

fn condition(type_: &str, status: bool, reason: &str, message: &str, now: &Time) -> NodeCondition {
    NodeCondition {
        type_: type_.to_string(),
        status: if status { "True" } else { "False" }.to_string(),
        reason: Some(reason.to_string()),
        message: Some(message.to_string()),
        last_heartbeat_time: Some(now.clone()),
        last_transition_time: Some(now.clone()),
    }
}

/// The Node's metadata and spec, applied with the agent's field manager (labels other
/// managers add stay).
pub fn desired_node(spec: &NodeSpec) -> Node {
    let mut labels = BTreeMap::from([
        ("kubernetes.io/hostname".to_string(), spec.name.clone()),
        ("kubernetes.io/os".to_string(), "linux".to_string()),
        (
            "kubernetes.io/arch".to_string(),
            std::env::consts::ARCH.replace("x86_64", "amd64"),
        ),
    ]);
    let mut taints = None;
    if spec.control_plane {
        labels.insert(CONTROL_PLANE_LABEL.to_string(), String::new());
        taints = Some(vec![Taint {
            key: CONTROL_PLANE_LABEL.to_string(),
            effect: "NoSchedule".to_string(),
            ..Default::default()
        }]);
    }
    Node {
        metadata: ObjectMeta {
            name: Some(spec.name.clone()),
            labels: Some(labels),
            ..Default::default()
        },
        spec: Some(K8sNodeSpec {
            taints,
            ..Default::default()
        }),
        status: None,
    }
}

/// The Node's status as a kubelet would post it.
pub fn desired_status(spec: &NodeSpec, health: NodeHealth, now: &Time) -> NodeStatus {
    let mut addresses: Vec<NodeAddress> = spec
        .ips
        .iter()
        .map(|ip| NodeAddress {
            type_: "InternalIP".into(),
            address: ip.to_string(),
        })
        .collect();
    addresses.push(NodeAddress {
        type_: "Hostname".into(),
        address: spec.name.clone(),
    });
    let mut conditions = vec![
        condition(
            "MemoryPressure",
            false,
            "KubeletHasSufficientMemory",
            "lab node",
            now,
        ),
        condition(
            "DiskPressure",
            false,
            "KubeletHasNoDiskPressure",
            "lab node",
            now,
        ),
        condition(
            "PIDPressure",
            false,
            "KubeletHasSufficientPID",
            "lab node",
            now,
        ),
        if health.ready {
            condition(
                "Ready",
                true,
                "KubeletReady",
                "lab node agent is posting ready status",
                now,
            )
        } else {
            condition(
                "Ready",
                false,
                "KubeletNotReady",
                "set by annotation lab.ironlb.io/ready",
                now,
            )
        },
    ];
    if health.network_unavailable {
        conditions.push(condition(
            "NetworkUnavailable",
            true,
            "NoRouteCreated",
            "set by annotation lab.ironlb.io/network-unavailable",
            now,
        ));
    } else {
        conditions.push(condition(
            "NetworkUnavailable",
            false,
            "RouteCreated",
            "lab segment",
            now,
        ));
    }
    let capacity = BTreeMap::from([
        ("cpu".to_string(), Quantity("2".into())),
        ("memory".to_string(), Quantity("4Gi".into())),
        ("pods".to_string(), Quantity("110".into())),
    ]);
    NodeStatus {
        addresses: Some(addresses),
        conditions: Some(conditions),
        allocatable: Some(capacity.clone()),
        capacity: Some(capacity),
        node_info: Some(NodeSystemInfo {
            architecture: "amd64".into(),
            container_runtime_version: "lab://0".into(),
            kernel_version: spec.kernel_version.clone(),
            kube_proxy_version: String::new(),
            kubelet_version: "v1.35.0-lab".into(),
            operating_system: "linux".into(),
            os_image: "ironlb lab".into(),
            boot_id: String::new(),
            machine_id: String::new(),
            system_uuid: String::new(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Whether the live node already says what `desired` says (ignoring timestamps).
pub fn status_matches(live: Option<&Node>, desired: &NodeStatus) -> bool {
    let Some(status) = live.and_then(|n| n.status.as_ref()) else {
        return false;
    };
    let key = |s: &NodeStatus| {
        let conditions: BTreeMap<String, String> = s
            .conditions
            .iter()
            .flatten()
            .map(|c| (c.type_.clone(), c.status.clone()))
            .collect();
        let addresses: Vec<(String, String)> = s
            .addresses
            .iter()
            .flatten()
            .map(|a| (a.type_.clone(), a.address.clone()))
            .collect();
        (conditions, addresses)
    };
    key(status) == key(desired)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Time {
        Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH)
    }

    fn mk_node(annotations: &[(&str, &str)]) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some("node1".into()),
                annotations: Some(
                    annotations
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn parses_node_args() {
        let n = parse_node_arg("node1=2001:db8::11,192.0.2.11").unwrap();
        assert_eq!(n.name, "node1");
        assert_eq!(
            n.ips,
            [
                "192.0.2.11".parse::<IpAddr>().unwrap(),
                "2001:db8::11".parse().unwrap()
            ]
        );
        assert_eq!(n.ip_of_family(true).unwrap().to_string(), "2001:db8::11");
    }

    #[test]
    fn rejects_malformed_node_args() {
        for bad in [
            "node1",
            "=192.0.2.1",
            "Node1=192.0.2.1",
            "node1=",
            "node1=192.0.2.300",
            "node1=192.0.2.1,192.0.2.2",
            "node_1=192.0.2.1",
        ] {
            assert!(
                matches!(parse_node_arg(bad), Err(AgentError::BadNodeArg(..))),
                "{bad}"
            );
        }
    }

    #[test]
    fn control_plane_is_labelled_and_tainted() {
        let mut spec = parse_node_arg("cp=192.0.2.2").unwrap();
        spec.control_plane = true;
        let node = desired_node(&spec);
        let labels = node.metadata.labels.unwrap();
        assert_eq!(labels["kubernetes.io/hostname"], "cp");
        assert_eq!(labels[CONTROL_PLANE_LABEL], "");
        assert_eq!(node.spec.unwrap().taints.unwrap()[0].effect, "NoSchedule");
        let worker = desired_node(&parse_node_arg("node1=192.0.2.11").unwrap());
        assert!(
            !worker
                .metadata
                .labels
                .unwrap()
                .contains_key(CONTROL_PLANE_LABEL)
        );
        assert!(worker.spec.unwrap().taints.is_none());
    }

    #[test]
    fn annotations_drive_conditions() {
        let spec = parse_node_arg("node1=192.0.2.11").unwrap();
        let cond = |node: Node| {
            let (health, errors) = node_health(Some(&node));
            let status = desired_status(&spec, health, &now());
            let get = |t: &str| {
                status
                    .conditions
                    .as_ref()
                    .unwrap()
                    .iter()
                    .find(|c| c.type_ == t)
                    .unwrap()
                    .status
                    .clone()
            };
            (get("Ready"), get("NetworkUnavailable"), errors.len())
        };
        assert_eq!(cond(mk_node(&[])), ("True".into(), "False".into(), 0));
        assert_eq!(
            cond(mk_node(&[(READY_ANNOTATION, "false")])),
            ("False".into(), "False".into(), 0)
        );
        assert_eq!(
            cond(mk_node(&[(NETWORK_UNAVAILABLE_ANNOTATION, "true")])),
            ("True".into(), "True".into(), 0)
        );
        // Malformed values are reported and read as unhealthy.
        assert_eq!(
            cond(mk_node(&[
                (READY_ANNOTATION, "yes please"),
                (NETWORK_UNAVAILABLE_ANNOTATION, "?")
            ])),
            ("False".into(), "True".into(), 2)
        );
    }

    #[test]
    fn status_match_ignores_timestamps_but_not_conditions() {
        let spec = parse_node_arg("node1=192.0.2.11").unwrap();
        let healthy = NodeHealth {
            ready: true,
            network_unavailable: false,
        };
        let mut live = mk_node(&[]);
        assert!(!status_matches(
            Some(&live),
            &desired_status(&spec, healthy, &now())
        ));
        live.status = Some(desired_status(&spec, healthy, &now()));
        let later = Time(k8s_openapi::jiff::Timestamp::from_second(1_000_000).unwrap());
        assert!(status_matches(
            Some(&live),
            &desired_status(&spec, healthy, &later)
        ));
        let sick = NodeHealth {
            ready: false,
            network_unavailable: false,
        };
        assert!(!status_matches(
            Some(&live),
            &desired_status(&spec, sick, &now())
        ));
        assert!(!status_matches(
            None,
            &desired_status(&spec, healthy, &now())
        ));
    }
}
