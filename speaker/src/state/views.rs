//! The parts of each watched object the speaker decides on, extracted once per watch event.
//!
//! Keeping compact views rather than whole objects bounds memory, and comparing a new view with
//! the old one tells the state whether an update matters at all (a Node's heartbeat changes
//! nothing here, so it costs no election). Malformed fields never fail a whole object: the
//! part that cannot be read is left out and named in the view's `problems`.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use ironlb_crds::annotations::{self, IpMode};
use ironlb_crds::class::ClassFilter;
use ironlb_crds::v1beta1::{LABEL_NODE, LABEL_SERVICE_NAME, LABEL_SERVICE_NAMESPACE};
use ironlb_crds::{IPAddressPool, ServiceL2Status};
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::jiff::Timestamp;

use crate::forwarding::{L4Protocol, SourceRange};

/// The label that ties an EndpointSlice to its Service.
pub const SLICE_SERVICE_LABEL: &str = "kubernetes.io/service-name";

/// A Service's namespace and name.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceKey {
    pub namespace: String,
    pub name: String,
}

impl ServiceKey {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        ServiceKey {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// One load-balancer address of a Service and how traffic to it is handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IngressIp {
    pub ip: IpAddr,
    pub mode: IpMode,
}

/// One Service port, as forwarding needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortView {
    pub protocol: L4Protocol,
    pub port: u16,
    /// Absent when the Service has no NodePorts (`allocateLoadBalancerNodePorts: false`).
    pub node_port: Option<u16>,
}

/// An ironlb Service that has at least one ingress IP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceView {
    pub uid: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub ingress: Vec<IngressIp>,
    pub ports: Vec<PortView>,
    /// `loadBalancerSourceRanges`, or why they could not be read (then nothing is forwarded:
    /// a restriction the speaker cannot enforce must not turn into no restriction).
    pub source_ranges: Result<Vec<SourceRange>, String>,
    /// `externalTrafficPolicy: Local`.
    pub local: bool,
    pub problems: Vec<String>,
}

impl ServiceView {
    /// The view of `service`, or `None` when it is not ours (type or class) or has no ingress
    /// IP yet. `default_mode` is `--ip-mode`, used when the status carries no `ipMode`.
    pub fn from_service(
        service: &Service,
        class: &ClassFilter,
        default_mode: IpMode,
    ) -> Option<ServiceView> {
        if !class.handles(service) {
            return None;
        }
        let spec = service.spec.as_ref()?;
        let mut problems = Vec::new();
        let asked = match annotations::parse_service(service) {
            Ok(request) => request.ip_mode,
            Err(_) => None,
        };
        let rule_mode = annotations::effective_ip_mode(
            asked,
            spec.allocate_load_balancer_node_ports,
            default_mode,
        );
        let mut ingress: Vec<IngressIp> = Vec::new();
        let listed = service
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.as_ref());
        for (index, entry) in listed.into_iter().flatten().enumerate() {
            let Some(text) = entry.ip.as_deref() else {
                continue; // hostname-only entries belong to other providers
            };
            let Ok(ip) = text.trim().parse::<IpAddr>() else {
                problems.push(format!(
                    "status.loadBalancer.ingress[{index}].ip {text:?} is not an IP address"
                ));
                continue;
            };
            let mode = match entry.ip_mode.as_deref() {
                None => rule_mode,
                Some(text) => match text.parse::<IpMode>() {
                    Ok(mode) => mode,
                    Err(err) => {
                        // Forwarding for a mode we do not know could be wrong; announcing is not.
                        problems.push(format!(
                            "status.loadBalancer.ingress[{index}].ipMode: {err}; nothing is forwarded for {ip}"
                        ));
                        IpMode::Vip
                    }
                },
            };
            if !ingress.iter().any(|i| i.ip == ip) {
                ingress.push(IngressIp { ip, mode });
            }
        }
        if ingress.is_empty() {
            return None;
        }
        let mut ports = Vec::new();
        for (index, port) in spec.ports.iter().flatten().enumerate() {
            let protocol = match port.protocol.as_deref().unwrap_or("TCP").parse() {
                Ok(protocol) => protocol,
                Err(err) => {
                    problems.push(format!("spec.ports[{index}]: {err}"));
                    continue;
                }
            };
            let Ok(number) = u16::try_from(port.port).map_err(drop).and_then(nonzero) else {
                problems.push(format!(
                    "spec.ports[{index}].port {} is not a port number",
                    port.port
                ));
                continue;
            };
            let node_port = match port.node_port {
                None => None,
                Some(n) => match u16::try_from(n).map_err(drop).and_then(nonzero) {
                    Ok(n) => Some(n),
                    Err(()) => {
                        problems.push(format!(
                            "spec.ports[{index}].nodePort {n} is not a port number"
                        ));
                        None
                    }
                },
            };
            ports.push(PortView {
                protocol,
                port: number,
                node_port,
            });
        }
        let source_ranges = spec
            .load_balancer_source_ranges
            .iter()
            .flatten()
            .enumerate()
            .map(|(index, text)| {
                text.parse::<SourceRange>()
                    .map_err(|err| format!("spec.loadBalancerSourceRanges[{index}]: {err}"))
            })
            .collect::<Result<Vec<_>, _>>();
        if let Err(err) = &source_ranges {
            problems.push(format!("{err}; nothing is forwarded for this Service"));
        }
        Some(ServiceView {
            uid: service.metadata.uid.clone(),
            labels: service.metadata.labels.clone().unwrap_or_default(),
            ingress,
            ports,
            source_ranges,
            local: spec.external_traffic_policy.as_deref() == Some("Local"),
            problems,
        })
    }

    pub fn mode_of(&self, ip: IpAddr) -> Option<IpMode> {
        self.ingress.iter().find(|i| i.ip == ip).map(|i| i.mode)
    }
}

fn nonzero(n: u16) -> Result<u16, ()> {
    if n == 0 { Err(()) } else { Ok(n) }
}

/// The key of a Service's object: namespace and name from metadata.
pub fn service_key(service: &Service) -> ServiceKey {
    ServiceKey::new(
        service.metadata.namespace.clone().unwrap_or_default(),
        service.metadata.name.clone().unwrap_or_default(),
    )
}

/// A Node as the election sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeView {
    pub labels: BTreeMap<String, String>,
    pub network_unavailable: bool,
    /// InternalIPs, at most one per family, in the Node's order.
    pub internal_ips: Vec<IpAddr>,
}

impl NodeView {
    pub fn from_node(node: &Node) -> NodeView {
        let status = node.status.as_ref();
        let network_unavailable = status
            .and_then(|s| s.conditions.as_ref())
            .into_iter()
            .flatten()
            .any(|c| c.type_ == "NetworkUnavailable" && c.status == "True");
        let mut internal_ips: Vec<IpAddr> = Vec::new();
        for address in status
            .and_then(|s| s.addresses.as_ref())
            .into_iter()
            .flatten()
        {
            if address.type_ != "InternalIP" {
                continue;
            }
            if let Ok(ip) = address.address.trim().parse::<IpAddr>()
                && !internal_ips.iter().any(|i| i.is_ipv6() == ip.is_ipv6())
            {
                internal_ips.push(ip);
            }
        }
        NodeView {
            labels: node.metadata.labels.clone().unwrap_or_default(),
            network_unavailable,
            internal_ips,
        }
    }

    /// The InternalIP of `ip`'s family.
    pub fn ip_like(&self, ip: IpAddr) -> Option<IpAddr> {
        self.internal_ips
            .iter()
            .copied()
            .find(|i| i.is_ipv6() == ip.is_ipv6())
    }
}

/// The namespace and name of an EndpointSlice.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SliceKey {
    pub namespace: String,
    pub name: String,
}

/// What one EndpointSlice says about where its Service has ready endpoints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SliceView {
    pub service: ServiceKey,
    /// Ready endpoints per node name.
    pub ready_by_node: BTreeMap<String, u32>,
}

impl SliceView {
    /// `None` for a slice that belongs to no Service (no `kubernetes.io/service-name`).
    pub fn from_slice(slice: &EndpointSlice) -> Option<SliceView> {
        let service = slice
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(SLICE_SERVICE_LABEL))?;
        let namespace = slice.metadata.namespace.clone().unwrap_or_default();
        let mut ready_by_node = BTreeMap::new();
        for endpoint in slice.endpoints.iter().flatten() {
            // An unknown readiness counts as ready, as the EndpointSlice API asks of consumers.
            let ready = endpoint
                .conditions
                .as_ref()
                .and_then(|c| c.ready)
                .unwrap_or(true);
            if let (true, Some(node)) = (ready, endpoint.node_name.as_ref()) {
                *ready_by_node.entry(node.clone()).or_insert(0u32) += 1;
            }
        }
        Some(SliceView {
            service: ServiceKey::new(namespace, service.clone()),
            ready_by_node,
        })
    }
}

pub fn slice_key(slice: &EndpointSlice) -> SliceKey {
    SliceKey {
        namespace: slice.metadata.namespace.clone().unwrap_or_default(),
        name: slice.metadata.name.clone().unwrap_or_default(),
    }
}

/// An IPAddressPool: its compiled ranges (`None` when invalid), labels and age.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolView {
    pub created: Option<Timestamp>,
    pub labels: BTreeMap<String, String>,
    pub pool: Option<ironlb_crds::pool::Pool>,
}

impl PoolView {
    /// The view, and the problem when the spec is invalid.
    pub fn from_pool(pool: &IPAddressPool) -> (PoolView, Option<String>) {
        let (compiled, problem) = match ironlb_crds::pool::Pool::from_spec(&pool.spec) {
            Ok(compiled) => (Some(compiled), None),
            Err(errors) => (None, Some(errors.to_string())),
        };
        (
            PoolView {
                created: pool.metadata.creation_timestamp.as_ref().map(|t| t.0),
                labels: pool.metadata.labels.clone().unwrap_or_default(),
                pool: compiled,
            },
            problem,
        )
    }
}

/// A ServiceL2Status object as observed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObservedStatus {
    pub resource_version: Option<String>,
    pub node: String,
    pub service: ServiceKey,
    pub ips: Vec<IpAddr>,
    pub interfaces: Vec<String>,
    pub labels: BTreeMap<String, String>,
}

impl ObservedStatus {
    /// Reads an object. Its owner and Service come from the status, or from the labels while
    /// the status is still empty: a speaker writes the object before its status, and an
    /// object naming nobody in between would look abandoned to the speaker that cleans up.
    pub fn from_object(object: &ServiceL2Status) -> ObservedStatus {
        let status = object.status.clone().unwrap_or_default();
        let no_labels = BTreeMap::new();
        let labels = object.metadata.labels.as_ref().unwrap_or(&no_labels);
        let or_label = |value: String, key: &str| {
            if value.is_empty() {
                labels.get(key).cloned().unwrap_or_default()
            } else {
                value
            }
        };
        ObservedStatus {
            resource_version: object.metadata.resource_version.clone(),
            node: or_label(status.node, LABEL_NODE),
            service: ServiceKey::new(
                or_label(status.service_namespace, LABEL_SERVICE_NAMESPACE),
                or_label(status.service_name, LABEL_SERVICE_NAME),
            ),
            ips: status
                .ips
                .iter()
                .filter_map(|ip| ip.trim().parse().ok())
                .collect(),
            interfaces: status.interfaces.into_iter().map(|i| i.name).collect(),
            labels: object
                .metadata
                .labels
                .clone()
                .unwrap_or_default()
                .into_iter()
                .filter(|(k, _)| {
                    k == LABEL_NODE || k == LABEL_SERVICE_NAME || k == LABEL_SERVICE_NAMESPACE
                })
                .collect(),
        }
    }
}
