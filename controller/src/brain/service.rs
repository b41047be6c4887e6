//! What the brain keeps of a Service: a compact view extracted from the object, and the
//! translation of that view into an allocator [`Request`] and a desired ingress list.
//!
//! Only the fields the controller decides on are kept (no managedFields, no
//! `last-applied-configuration`), so that 10,000 Services cost little memory. Problems in the
//! spec that the API server normally prevents (an unknown IP family, a port out of range) are
//! kept as typed errors and reported on the Service, never panicked on.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ironlb_crds::address::Family;
use ironlb_crds::annotations::{self, IpMode};
use ironlb_crds::class::{ClassFilter, LOAD_BALANCER_TYPE};
use k8s_openapi::api::core::v1::Service;

use crate::allocator::{Backend, FamilyPolicy, Port, Protocol, Request, ServiceKey};

use super::error::SpecError;
use super::intent::Ingress;

/// Annotation prefixes the controller reads; every other annotation is dropped from the view.
const KEPT_ANNOTATION_PREFIXES: [&str; 3] = ["ironlb.io/", "metallb.io/", "metallb.universe.tf/"];

/// A short list of key/value pairs sorted by key: labels and annotations, kept compactly (a
/// `BTreeMap` allocates a node for eleven entries even for one pair, which adds up over
/// 10,000 Services).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pairs(Vec<(String, String)>);

impl Pairs {
    /// Collects pairs; a map's iteration order is already sorted.
    pub fn from_sorted(pairs: impl IntoIterator<Item = (String, String)>) -> Pairs {
        let mut list: Vec<(String, String)> = pairs.into_iter().collect();
        list.sort();
        list.shrink_to_fit();
        Pairs(list)
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .binary_search_by(|(k, _)| k.as_str().cmp(key))
            .ok()
            .map(|i| self.0[i].1.as_str())
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn to_map(&self) -> BTreeMap<String, String> {
        self.0.iter().cloned().collect()
    }
}

/// One entry of `status.loadBalancer.ingress` as the object shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShownIngress {
    /// The parsed `ip`; `None` for an entry without a parsable IP (a hostname, garbage).
    pub ip: Option<IpAddr>,
    pub ip_mode: Option<String>,
}

/// The parts of a Service the controller decides on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceView {
    pub key: ServiceKey,
    pub uid: Option<String>,
    /// `creationTimestamp` in nanoseconds since the epoch; `i128::MAX` when unknown, so that
    /// such a Service sorts last.
    pub created: i128,
    pub type_: Option<String>,
    pub class: Option<String>,
    pub labels: Pairs,
    /// Only the `ironlb.io/`, `metallb.io/` and `metallb.universe.tf/` annotations.
    pub annotations: Pairs,
    pub spec_load_balancer_ip: Option<String>,
    pub families: Result<FamilyPolicy, SpecError>,
    pub ports: Result<Vec<Port>, SpecError>,
    pub backend: Backend,
    pub allocate_node_ports: Option<bool>,
    pub shown_ingress: Vec<ShownIngress>,
}

impl ServiceView {
    /// Extracts the view. Returns `None` for an object without a name.
    pub fn from_service(service: &Service) -> Option<ServiceView> {
        let meta = &service.metadata;
        let name = meta.name.clone()?;
        let namespace = meta.namespace.clone().unwrap_or_else(|| "default".into());
        let spec = service.spec.as_ref();
        let annotations = Pairs::from_sorted(
            meta.annotations
                .iter()
                .flatten()
                .filter(|(k, _)| KEPT_ANNOTATION_PREFIXES.iter().any(|p| k.starts_with(p)))
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        let backend = match spec.and_then(|s| s.external_traffic_policy.as_deref()) {
            Some("Local") => Backend::Local {
                selector: spec.and_then(|s| s.selector.clone()).unwrap_or_default(),
            },
            _ => Backend::Cluster,
        };
        let shown_ingress = service
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.as_ref())
            .into_iter()
            .flatten()
            .map(|entry| ShownIngress {
                ip: entry.ip.as_deref().and_then(|ip| ip.trim().parse().ok()),
                ip_mode: entry.ip_mode.clone(),
            })
            .collect();
        Some(ServiceView {
            key: ServiceKey::new(namespace, name),
            uid: meta.uid.clone(),
            created: meta
                .creation_timestamp
                .as_ref()
                .map_or(i128::MAX, |t| t.0.as_nanosecond()),
            type_: spec.and_then(|s| s.type_.clone()),
            class: spec.and_then(|s| s.load_balancer_class.clone()),
            labels: Pairs::from_sorted(
                meta.labels
                    .iter()
                    .flatten()
                    .map(|(k, v)| (k.clone(), v.clone())),
            ),
            annotations,
            spec_load_balancer_ip: spec.and_then(|s| s.load_balancer_ip.clone()),
            families: family_policy(
                spec.and_then(|s| s.ip_family_policy.as_deref()),
                spec.and_then(|s| s.ip_families.as_deref()).unwrap_or(&[]),
            ),
            ports: ports(spec.and_then(|s| s.ports.as_deref()).unwrap_or(&[])),
            backend,
            allocate_node_ports: spec.and_then(|s| s.allocate_load_balancer_node_ports),
            shown_ingress,
        })
    }

    pub fn is_load_balancer(&self) -> bool {
        self.type_.as_deref() == Some(LOAD_BALANCER_TYPE)
    }

    /// True when the Service is ours under `filter`.
    pub fn handled_by(&self, filter: &ClassFilter) -> bool {
        self.is_load_balancer() && filter.accepts_class(self.class.as_deref())
    }

    /// The addresses the status shows, when every entry is a parsable IP.
    pub fn shown_ips(&self) -> Vec<IpAddr> {
        self.shown_ingress.iter().filter_map(|i| i.ip).collect()
    }

    /// The pool the `ip-allocated-from-pool` annotation names.
    pub fn shown_pool(&self) -> Option<&str> {
        self.annotations.get(annotations::IP_ALLOCATED_FROM_POOL)
    }

    /// The allocator request for this Service, given what the owner asked for.
    pub fn request(
        &self,
        asked: &annotations::ServiceRequest,
        namespace_labels: &BTreeMap<String, String>,
    ) -> Result<Request, SpecError> {
        let families = self.families.clone()?;
        let ports = self.ports.clone()?;
        Ok(Request {
            namespace_labels: namespace_labels.clone(),
            service_labels: self.labels.to_map(),
            requested_ips: asked.ips.clone(),
            pool: asked.pool.clone(),
            sharing_key: asked.sharing_key.clone(),
            ports,
            backend: self.backend.clone(),
            families,
        })
    }

    /// A request good enough to re-occupy addresses at start-up, even when the annotations are
    /// malformed: only the sharing terms matter there, so the sharing key is read on its own.
    pub fn restore_request(&self, namespace_labels: &BTreeMap<String, String>) -> Request {
        let sharing_only: BTreeMap<String, String> = self
            .annotations
            .iter()
            .filter(|(k, _)| {
                *k == annotations::ALLOW_SHARED_IP
                    || annotations::metallb_twins(annotations::ALLOW_SHARED_IP).contains(k)
            })
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let sharing_key = annotations::parse_annotations(&sharing_only, None)
            .ok()
            .and_then(|r| r.sharing_key);
        // Restore checks only that the addresses can be held; any policy that admits them will
        // do, and the next reconcile applies the real one.
        let families = self
            .families
            .clone()
            .unwrap_or(FamilyPolicy::PreferDualStack([Family::V4, Family::V6]));
        Request {
            namespace_labels: namespace_labels.clone(),
            service_labels: self.labels.to_map(),
            requested_ips: Vec::new(),
            pool: None,
            sharing_key,
            ports: self.ports.clone().unwrap_or_default(),
            backend: self.backend.clone(),
            families,
        }
    }

    /// The `ipMode` to write: the annotation, else VIP when the Service has no NodePorts to
    /// forward to, else the controller's default. `None` when the server has no `ipMode`.
    pub fn ip_mode(
        &self,
        asked: Option<IpMode>,
        default: IpMode,
        supported: bool,
    ) -> Option<IpMode> {
        if !supported {
            return None;
        }
        Some(annotations::effective_ip_mode(
            asked,
            self.allocate_node_ports,
            default,
        ))
    }

    /// True when the status shows exactly `desired`.
    pub fn shows(&self, desired: &[Ingress]) -> bool {
        self.shown_ingress.len() == desired.len()
            && self.shown_ingress.iter().zip(desired).all(|(shown, want)| {
                shown.ip == Some(want.ip)
                    && shown.ip_mode.as_deref() == want.ip_mode.map(IpMode::as_str)
            })
    }
}

/// `spec.ipFamilyPolicy` and `spec.ipFamilies` as an allocator policy.
///
/// One listed family means single stack whatever the policy says (PreferDualStack on a
/// single-stack cluster lists one family). No family at all happens only with API servers that
/// do not default the field; IPv4 is assumed, as Kubernetes does on an IPv4 cluster.
pub fn family_policy(policy: Option<&str>, families: &[String]) -> Result<FamilyPolicy, SpecError> {
    let mut parsed = Vec::with_capacity(families.len());
    for (index, name) in families.iter().enumerate() {
        let family = Family::from_k8s_name(name).ok_or_else(|| SpecError::UnknownFamily {
            index,
            value: name.clone(),
        })?;
        parsed.push(family);
    }
    match (policy, parsed.as_slice()) {
        (_, []) => Ok(FamilyPolicy::SingleStack(Family::V4)),
        (_, [one]) => Ok(FamilyPolicy::SingleStack(*one)),
        (_, [a, b]) if a == b => Err(SpecError::DuplicateFamily { family: *a }),
        (None | Some("SingleStack"), [a, _]) => Ok(FamilyPolicy::SingleStack(*a)),
        (Some("PreferDualStack"), [a, b]) => Ok(FamilyPolicy::PreferDualStack([*a, *b])),
        (Some("RequireDualStack"), [a, b]) => Ok(FamilyPolicy::RequireDualStack([*a, *b])),
        (Some(other), [_, _]) => Err(SpecError::UnknownFamilyPolicy {
            value: other.to_string(),
        }),
        (_, more) => Err(SpecError::TooManyFamilies { count: more.len() }),
    }
}

/// `spec.ports` as (protocol, port) pairs. The protocol defaults to TCP.
pub fn ports(ports: &[k8s_openapi::api::core::v1::ServicePort]) -> Result<Vec<Port>, SpecError> {
    ports
        .iter()
        .enumerate()
        .map(|(index, p)| {
            let protocol = match p.protocol.as_deref() {
                None | Some("TCP") => Protocol::Tcp,
                Some("UDP") => Protocol::Udp,
                Some("SCTP") => Protocol::Sctp,
                Some(other) => {
                    return Err(SpecError::UnknownProtocol {
                        index,
                        value: other.to_string(),
                    });
                }
            };
            let port =
                u16::try_from(p.port)
                    .ok()
                    .filter(|&n| n != 0)
                    .ok_or(SpecError::BadPort {
                        index,
                        value: p.port,
                    })?;
            Ok(Port::new(protocol, port))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ServicePort;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn family_policies() {
        use Family::{V4, V6};
        assert_eq!(family_policy(None, &[]), Ok(FamilyPolicy::SingleStack(V4)));
        assert_eq!(
            family_policy(Some("PreferDualStack"), &names(&["IPv6"])),
            Ok(FamilyPolicy::SingleStack(V6))
        );
        assert_eq!(
            family_policy(Some("PreferDualStack"), &names(&["IPv6", "IPv4"])),
            Ok(FamilyPolicy::PreferDualStack([V6, V4]))
        );
        assert_eq!(
            family_policy(Some("RequireDualStack"), &names(&["IPv4", "IPv6"])),
            Ok(FamilyPolicy::RequireDualStack([V4, V6]))
        );
        assert_eq!(
            family_policy(Some("SingleStack"), &names(&["IPv4", "IPv6"])),
            Ok(FamilyPolicy::SingleStack(V4))
        );
    }

    #[test]
    fn malformed_family_fields_are_typed_errors() {
        assert_eq!(
            family_policy(None, &names(&["IPv5"])),
            Err(SpecError::UnknownFamily {
                index: 0,
                value: "IPv5".into()
            })
        );
        assert_eq!(
            family_policy(Some("RequireDualStack"), &names(&["IPv4", "IPv4"])),
            Err(SpecError::DuplicateFamily { family: Family::V4 })
        );
        assert_eq!(
            family_policy(Some("Sometimes"), &names(&["IPv4", "IPv6"])),
            Err(SpecError::UnknownFamilyPolicy {
                value: "Sometimes".into()
            })
        );
        assert_eq!(
            family_policy(None, &names(&["IPv4", "IPv6", "IPv4"])),
            Err(SpecError::TooManyFamilies { count: 3 })
        );
    }

    fn port(protocol: Option<&str>, port: i32) -> ServicePort {
        ServicePort {
            protocol: protocol.map(str::to_string),
            port,
            ..Default::default()
        }
    }

    #[test]
    fn ports_default_to_tcp() {
        assert_eq!(
            ports(&[port(None, 80), port(Some("UDP"), 53), port(Some("SCTP"), 9)]),
            Ok(vec![
                Port::new(Protocol::Tcp, 80),
                Port::new(Protocol::Udp, 53),
                Port::new(Protocol::Sctp, 9)
            ])
        );
    }

    #[test]
    fn malformed_ports_are_typed_errors() {
        assert_eq!(
            ports(&[port(None, 80), port(Some("QUIC"), 443)]),
            Err(SpecError::UnknownProtocol {
                index: 1,
                value: "QUIC".into()
            })
        );
        for bad in [0, -1, 65536] {
            assert_eq!(
                ports(&[port(None, bad)]),
                Err(SpecError::BadPort {
                    index: 0,
                    value: bad
                })
            );
        }
    }

    #[test]
    fn pairs_look_up_by_key() {
        let pairs = Pairs::from_sorted([
            ("b".to_string(), "2".to_string()),
            ("a".to_string(), "1".to_string()),
            ("c".to_string(), "3".to_string()),
        ]);
        assert_eq!(pairs.get("a"), Some("1"));
        assert_eq!(pairs.get("c"), Some("3"));
        assert_eq!(pairs.get("d"), None);
        assert_eq!(pairs.len(), 3);
        assert_eq!(pairs.to_map().keys().collect::<Vec<_>>(), ["a", "b", "c"]);
        assert!(Pairs::default().is_empty());
    }

    #[test]
    fn only_our_annotations_are_kept() {
        let svc: Service = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "shop", "annotations": {
                "kubectl.kubernetes.io/last-applied-configuration": "{...}",
                "ironlb.io/address-pool": "gold",
                "metallb.universe.tf/allow-shared-ip": "k"
            }},
            "spec": {"type": "LoadBalancer"},
            "status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.1", "ipMode": "Proxy"}, {"hostname": "lb.example"}]}}
        }))
        .unwrap();
        let view = ServiceView::from_service(&svc).unwrap();
        assert_eq!(view.key, ServiceKey::new("shop", "web"));
        assert_eq!(view.annotations.len(), 2);
        assert_eq!(
            view.shown_ips(),
            vec!["198.51.100.1".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(view.shown_ingress[1].ip, None);
        assert!(!view.shows(&[Ingress {
            ip: "198.51.100.1".parse().unwrap(),
            ip_mode: Some(IpMode::Proxy)
        }]));
        assert!(ServiceView::from_service(&Service::default()).is_none());
    }
}
