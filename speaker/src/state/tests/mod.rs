//! Tests of the state: objects go in through the same `apply_*` calls the runtime makes, then
//! assertions are made on what [`State::plan`] decided. `mk_*` builders make the objects.

mod election;
mod forwarding;
mod inputs;
mod props;
mod reports;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ironlb_crds::address::Family;
use ironlb_crds::annotations::IpMode;
use ironlb_crds::class::ClassFilter;
use ironlb_crds::{IPAddressPool, L2Advertisement, ServiceL2Status};
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::{Value, json};

use super::*;

pub fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

pub fn key(name: &str) -> ServiceKey {
    ServiceKey::new("default", name)
}

pub fn mk_node(name: &str, ips: &[&str], labels: &[(&str, &str)]) -> Node {
    let addresses: Vec<Value> = ips
        .iter()
        .map(|a| json!({"type": "InternalIP", "address": a}))
        .chain(std::iter::once(
            json!({"type": "Hostname", "address": name}),
        ))
        .collect();
    let labels: BTreeMap<&str, &str> = labels.iter().copied().collect();
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels},
        "status": {
            "addresses": addresses,
            "conditions": [{"type": "Ready", "status": "True"}]
        }
    }))
    .unwrap()
}

pub fn with_condition(mut node: Node, type_: &str, status: &str) -> Node {
    let conditions = node
        .status
        .as_mut()
        .unwrap()
        .conditions
        .get_or_insert_with(Vec::new);
    conditions.push(serde_json::from_value(json!({"type": type_, "status": status})).unwrap());
    node
}

/// A Service of our class with the given ingress IPs; `spec` fields are merged over a
/// Cluster-policy service with one TCP port 80 -> NodePort 30080.
pub fn mk_service(name: &str, ips: &[&str], spec: Value) -> Service {
    let ingress: Vec<Value> = ips
        .iter()
        .map(|i| json!({"ip": i, "ipMode": "Proxy"}))
        .collect();
    let mut base = json!({
        "type": "LoadBalancer",
        "externalTrafficPolicy": "Cluster",
        "ports": [{"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30080}]
    });
    merge(&mut base, spec);
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}")},
        "spec": base,
        "status": {"loadBalancer": {"ingress": ingress}}
    }))
    .unwrap()
}

/// Replaces the service's ingress list verbatim.
pub fn with_ingress(mut service: Service, ingress: Value) -> Service {
    let status = json!({"loadBalancer": {"ingress": ingress}});
    service.status = Some(serde_json::from_value(status).unwrap());
    service
}

fn merge(base: &mut Value, patch: Value) {
    if let (Value::Object(b), Value::Object(p)) = (base, patch) {
        for (k, v) in p {
            b.insert(k, v);
        }
    }
}

pub fn mk_pool(name: &str, addresses: &[&str], created: &str) -> IPAddressPool {
    serde_json::from_value(json!({
        "apiVersion": "ironlb.io/v1beta1", "kind": "IPAddressPool",
        "metadata": {"name": name, "namespace": "ironlb-system", "creationTimestamp": created},
        "spec": {"addresses": addresses}
    }))
    .unwrap()
}

pub fn mk_ad(name: &str, spec: Value) -> L2Advertisement {
    serde_json::from_value(json!({
        "apiVersion": "ironlb.io/v1beta1", "kind": "L2Advertisement",
        "metadata": {"name": name, "namespace": "ironlb-system"},
        "spec": spec
    }))
    .unwrap()
}

/// A slice of `service` with one endpoint per `(node, ready)`.
pub fn mk_slice(name: &str, service: &str, endpoints: &[(&str, Option<bool>)]) -> EndpointSlice {
    let endpoints: Vec<Value> = endpoints
        .iter()
        .enumerate()
        .map(|(i, (node, ready))| {
            let mut conditions = serde_json::Map::new();
            if let Some(r) = ready {
                conditions.insert("ready".into(), json!(r));
            }
            json!({"addresses": [format!("203.0.113.{}", 130 + i)], "nodeName": node,
                   "conditions": conditions})
        })
        .collect();
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default",
                     "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "endpoints": endpoints
    }))
    .unwrap()
}

pub fn mk_status(name: &str, node: &str, service: &str, ips: &[&str], rv: &str) -> ServiceL2Status {
    serde_json::from_value(json!({
        "apiVersion": "ironlb.io/v1beta1", "kind": "ServiceL2Status",
        "metadata": {"name": name, "namespace": "ironlb-system", "resourceVersion": rv,
                     "labels": {"ironlb.io/node": node, "ironlb.io/service-name": service,
                                "ironlb.io/service-namespace": "default"}},
        "spec": {},
        "status": {"node": node, "serviceName": service, "serviceNamespace": "default",
                   "ips": ips, "interfaces": [{"name": "eth0"}]}
    }))
    .unwrap()
}

pub const NODES: [&str; 3] = ["node1", "node2", "node3"];

pub fn node_ip(name: &str) -> String {
    let n: u8 = name.trim_start_matches("node").parse().unwrap();
    format!("192.0.2.{}", 10 + n)
}

pub fn node_ip6(name: &str) -> String {
    let n: u8 = name.trim_start_matches("node").parse().unwrap();
    format!("2001:db8::{}", 10 + n)
}

pub fn config(me: &str) -> StateConfig {
    StateConfig {
        node: me.to_string(),
        class: ClassFilter::default(),
        default_ip_mode: IpMode::Proxy,
    }
}

/// A state for node `me` that knows three dual-stack nodes, a pool with an advertisement,
/// is synced, a settled member, and announces by default on `eth0`.
pub fn mk_world(me: &str) -> State {
    let mut state = State::new(config(me));
    for n in NODES {
        state.apply_node(&mk_node(n, &[&node_ip(n), &node_ip6(n)], &[]));
    }
    state.apply_pool(&mk_pool(
        "main",
        &["198.51.100.0/24", "2001:db8:0:100::/64"],
        "2024-01-01T00:00:00Z",
    ));
    state.apply_advertisement(&mk_ad("main", json!({})));
    state.set_default_interfaces(BTreeMap::from([
        (Family::V4, "eth0".to_string()),
        (Family::V6, "eth0".to_string()),
    ]));
    state.set_synced();
    state.set_phase(Phase::Member);
    state.set_membership(all_alive(), true);
    state.plan();
    state
}

pub fn all_alive() -> BTreeSet<String> {
    NODES.iter().map(|n| n.to_string()).collect()
}

pub fn alive(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| n.to_string()).collect()
}

/// The node election ranks first for `ip` among `names`: computed from the hash directly.
pub fn expected_winner(ip_text: &str, names: &[&str]) -> String {
    names
        .iter()
        .max_by_key(|n| crate::election::score(n, ip(ip_text)))
        .unwrap()
        .to_string()
}

/// One state per node, fed the same objects: what the cluster as a whole decides.
pub struct Cluster {
    pub states: BTreeMap<String, State>,
}

impl Cluster {
    pub fn new() -> Cluster {
        Cluster {
            states: NODES.iter().map(|n| (n.to_string(), mk_world(n))).collect(),
        }
    }

    pub fn each(&mut self, mut f: impl FnMut(&mut State)) -> BTreeMap<String, Changes> {
        self.states
            .iter_mut()
            .map(|(n, s)| {
                f(s);
                (n.clone(), s.plan())
            })
            .collect()
    }

    /// The nodes that own `ip`.
    pub fn owners(&self, ip_text: &str) -> Vec<String> {
        self.states
            .iter()
            .filter(|(_, s)| s.decision(ip(ip_text)).is_some_and(|d| d.mine))
            .map(|(n, _)| n.clone())
            .collect()
    }
}
