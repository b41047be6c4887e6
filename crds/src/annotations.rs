//! Service annotations: their keys, and a pure parser from a Service to what its owner asked of
//! ironlb ([`ServiceRequest`]).
//!
//! MetalLB's keys under `metallb.io/` and `metallb.universe.tf/` are honoured as twins of
//! ironlb's. When an ironlb key is absent and a twin is set, the twin's value is used and a
//! [`Translation`] records it (the controller emits a Normal `MetalLBAnnotation` event for each).
//! When several of the twins are set they must agree.
//!
//! The parser reports every problem it finds, each naming the annotation and its value. The
//! controller turns them into `InvalidAnnotation` events; a Service with a problem gets no new
//! address, and keeps the one it has.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use k8s_openapi::api::core::v1::Service;

use crate::address::Family;
use crate::names::{NameError, check_dns1123_subdomain};

/// The addresses a Service asks for: a comma-separated list, at most one IPv4 and one IPv6.
pub const LOAD_BALANCER_IPS: &str = "ironlb.io/loadBalancerIPs";
/// The only IPAddressPool a Service may get addresses from.
pub const ADDRESS_POOL: &str = "ironlb.io/address-pool";
/// A sharing key: Services with the same key may share an address (see the design's rules).
pub const ALLOW_SHARED_IP: &str = "ironlb.io/allow-shared-ip";
/// `Proxy` or `VIP`: the `ipMode` written to the Service's ingress status.
pub const IP_MODE: &str = "ironlb.io/ip-mode";
/// Written by the controller: the pool the Service's addresses came from.
pub const IP_ALLOCATED_FROM_POOL: &str = "ironlb.io/ip-allocated-from-pool";

/// MetalLB's current keys.
pub mod metallb {
    pub const LOAD_BALANCER_IPS: &str = "metallb.io/loadBalancerIPs";
    pub const ADDRESS_POOL: &str = "metallb.io/address-pool";
    pub const ALLOW_SHARED_IP: &str = "metallb.io/allow-shared-ip";
    pub const IP_ALLOCATED_FROM_POOL: &str = "metallb.io/ip-allocated-from-pool";
}

/// MetalLB's older keys, still common in manifests.
pub mod metallb_universe {
    pub const LOAD_BALANCER_IPS: &str = "metallb.universe.tf/loadBalancerIPs";
    pub const ADDRESS_POOL: &str = "metallb.universe.tf/address-pool";
    pub const ALLOW_SHARED_IP: &str = "metallb.universe.tf/allow-shared-ip";
    pub const IP_ALLOCATED_FROM_POOL: &str = "metallb.universe.tf/ip-allocated-from-pool";
}

/// The MetalLB keys honoured in place of an ironlb input key, in the order they are consulted.
/// Empty for keys MetalLB has no twin of (`ip-mode`) and for the controller's output key.
pub fn metallb_twins(key: &str) -> &'static [&'static str] {
    match key {
        LOAD_BALANCER_IPS => &[
            metallb::LOAD_BALANCER_IPS,
            metallb_universe::LOAD_BALANCER_IPS,
        ],
        ADDRESS_POOL => &[metallb::ADDRESS_POOL, metallb_universe::ADDRESS_POOL],
        ALLOW_SHARED_IP => &[metallb::ALLOW_SHARED_IP, metallb_universe::ALLOW_SHARED_IP],
        _ => &[],
    }
}

/// The `ipMode` of a load-balancer ingress address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IpMode {
    /// Traffic reaches the node with the VIP as destination and is forwarded to NodePorts;
    /// kube-proxy leaves the VIP alone. The default.
    Proxy,
    /// kube-proxy treats the VIP as a node-local address.
    Vip,
}

impl IpMode {
    /// The value used in annotations and in `status.loadBalancer.ingress[].ipMode`.
    pub fn as_str(self) -> &'static str {
        match self {
            IpMode::Proxy => "Proxy",
            IpMode::Vip => "VIP",
        }
    }
}

impl fmt::Display for IpMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `ipMode` of a Service's addresses when its status does not say: the `ip-mode`
/// annotation (`asked`), else `VIP` when the Service has no NodePorts to forward to
/// (`allocateLoadBalancerNodePorts: false`), else the binary's `--ip-mode` (`default`). The
/// controller writes this into the status; the speaker applies the same rule when the API
/// server is too old to store `ipMode`.
pub fn effective_ip_mode(
    asked: Option<IpMode>,
    allocate_node_ports: Option<bool>,
    default: IpMode,
) -> IpMode {
    match asked {
        Some(mode) => mode,
        None if allocate_node_ports == Some(false) => IpMode::Vip,
        None => default,
    }
}

/// The error of [`IpMode::from_str`]: the value is neither `Proxy` nor `VIP`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an IP mode; use Proxy or VIP")]
pub struct BadIpMode(pub String);

impl FromStr for IpMode {
    type Err = BadIpMode;

    /// Parses `Proxy` or `VIP`, exactly as Kubernetes spells them.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "Proxy" => Ok(IpMode::Proxy),
            "VIP" => Ok(IpMode::Vip),
            other => Err(BadIpMode(other.to_string())),
        }
    }
}

/// Where the requested IPs came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpSource {
    /// An annotation (ironlb's, or the MetalLB twin named here).
    Annotation(&'static str),
    /// The deprecated `spec.loadBalancerIP`.
    SpecLoadBalancerIp,
}

/// A MetalLB annotation honoured as its ironlb twin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Translation {
    /// The MetalLB key the value was read from.
    pub from: &'static str,
    /// The ironlb key it stands for.
    pub to: &'static str,
    pub value: String,
}

impl Translation {
    /// The message of the `MetalLBAnnotation` event.
    pub fn message(&self) -> String {
        format!(
            "MetalLB annotation {}={:?} is honoured as {}",
            self.from, self.value, self.to
        )
    }
}

/// What a Service's owner asked of ironlb.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceRequest {
    /// Requested addresses in the order written: at most one per family.
    pub ips: Vec<IpAddr>,
    /// Where `ips` came from; `None` when no address was requested.
    pub ips_from: Option<IpSource>,
    /// The only pool to allocate from.
    pub pool: Option<String>,
    /// The sharing key. An empty annotation means no key, as in MetalLB.
    pub sharing_key: Option<String>,
    /// The requested ipMode; `None` leaves it to the controller's `--ip-mode`.
    pub ip_mode: Option<IpMode>,
    /// The MetalLB annotations that were honoured.
    pub translated: Vec<Translation>,
}

/// One problem in a Service's annotations or `spec.loadBalancerIP`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AnnotationError {
    #[error("annotation {key}: {value:?} has an empty entry; write IPs separated by commas")]
    EmptyIpEntry { key: &'static str, value: String },
    #[error("annotation {key}: {entry:?} in {value:?} is not an IP address")]
    BadIp {
        key: &'static str,
        value: String,
        entry: String,
    },
    #[error(
        "annotation {key}: {value:?} lists {count} addresses; give at most one IPv4 and one IPv6 address"
    )]
    TooManyIps {
        key: &'static str,
        value: String,
        count: usize,
    },
    #[error(
        "annotation {key}: {value:?} lists two {family} addresses; give at most one per family"
    )]
    SameFamilyTwice {
        key: &'static str,
        value: String,
        family: Family,
    },
    #[error("spec.loadBalancerIP {value:?} is not an IP address")]
    BadSpecIp { value: String },
    #[error(
        "both spec.loadBalancerIP ({spec:?}) and annotation {key} ({value:?}) are set; keep only the annotation"
    )]
    SpecAndAnnotation {
        key: &'static str,
        value: String,
        spec: String,
    },
    #[error(
        "annotation {key} is {value:?} but {twin} is {twin_value:?}; remove one or make them equal"
    )]
    TwinMismatch {
        key: &'static str,
        value: String,
        twin: &'static str,
        twin_value: String,
    },
    #[error("annotation {key}: {source}")]
    BadIpMode {
        key: &'static str,
        source: BadIpMode,
    },
    #[error("annotation {key} is empty; name an IPAddressPool or remove the annotation")]
    EmptyPool { key: &'static str },
    #[error("annotation {key}: {source}")]
    BadPoolName {
        key: &'static str,
        source: NameError,
    },
}

/// Every problem found in one Service. Displays as one `; `-separated line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct AnnotationErrors(pub Vec<AnnotationError>);

impl fmt::Display for AnnotationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, err) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{err}")?;
        }
        Ok(())
    }
}

/// Reads what a Service asks of ironlb from its annotations and `spec.loadBalancerIP`.
pub fn parse_service(service: &Service) -> Result<ServiceRequest, AnnotationErrors> {
    let empty = BTreeMap::new();
    let annotations = service.metadata.annotations.as_ref().unwrap_or(&empty);
    let spec_ip = service
        .spec
        .as_ref()
        .and_then(|s| s.load_balancer_ip.as_deref());
    parse_annotations(annotations, spec_ip)
}

/// The core of [`parse_service`]: `annotations` are the Service's, `spec_load_balancer_ip` its
/// `spec.loadBalancerIP`. An empty `spec.loadBalancerIP` counts as unset.
pub fn parse_annotations(
    annotations: &BTreeMap<String, String>,
    spec_load_balancer_ip: Option<&str>,
) -> Result<ServiceRequest, AnnotationErrors> {
    let mut errors = Vec::new();
    let mut request = ServiceRequest::default();

    if let Some((key, ips)) = resolve(
        annotations,
        LOAD_BALANCER_IPS,
        parse_ip_list,
        &mut errors,
        &mut request.translated,
    ) {
        request.ips = ips.0;
        request.ips_from = Some(IpSource::Annotation(key));
    }
    match spec_load_balancer_ip
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        None => {}
        Some(spec) => {
            if let Some(IpSource::Annotation(key)) = request.ips_from {
                errors.push(AnnotationError::SpecAndAnnotation {
                    key,
                    value: annotations.get(key).cloned().unwrap_or_default(),
                    spec: spec.to_string(),
                });
            } else if annotation_present(annotations, LOAD_BALANCER_IPS) {
                // The annotation is set but malformed (already reported): still say both are set.
                let key = present_keys(annotations, LOAD_BALANCER_IPS)[0];
                errors.push(AnnotationError::SpecAndAnnotation {
                    key,
                    value: annotations[key].clone(),
                    spec: spec.to_string(),
                });
            } else {
                match spec.parse::<IpAddr>() {
                    Ok(ip) => {
                        request.ips = vec![ip];
                        request.ips_from = Some(IpSource::SpecLoadBalancerIp);
                    }
                    Err(_) => errors.push(AnnotationError::BadSpecIp {
                        value: spec.to_string(),
                    }),
                }
            }
        }
    }

    request.pool = resolve(
        annotations,
        ADDRESS_POOL,
        parse_pool,
        &mut errors,
        &mut request.translated,
    )
    .map(|(_, pool)| pool);
    request.sharing_key = resolve(
        annotations,
        ALLOW_SHARED_IP,
        parse_sharing_key,
        &mut errors,
        &mut request.translated,
    )
    .and_then(|(_, key)| key);
    request.ip_mode = resolve(
        annotations,
        IP_MODE,
        parse_ip_mode,
        &mut errors,
        &mut request.translated,
    )
    .map(|(_, mode)| mode);

    if errors.is_empty() {
        Ok(request)
    } else {
        Err(AnnotationErrors(errors))
    }
}

/// `key` followed by its MetalLB twins, keeping those that are set.
fn present_keys(annotations: &BTreeMap<String, String>, key: &'static str) -> Vec<&'static str> {
    std::iter::once(key)
        .chain(metallb_twins(key).iter().copied())
        .filter(|k| annotations.contains_key(*k))
        .collect()
}

fn annotation_present(annotations: &BTreeMap<String, String>, key: &'static str) -> bool {
    !present_keys(annotations, key).is_empty()
}

/// Reads `key` or, when it is absent, its MetalLB twins. Every present spelling is parsed; they
/// must agree. Returns the key that was used and its value.
fn resolve<T: PartialEq>(
    annotations: &BTreeMap<String, String>,
    key: &'static str,
    parse: fn(&'static str, &str) -> Result<T, AnnotationError>,
    errors: &mut Vec<AnnotationError>,
    translated: &mut Vec<Translation>,
) -> Option<(&'static str, T)> {
    let mut parsed: Vec<(&'static str, T)> = Vec::new();
    let mut failed = false;
    for present in present_keys(annotations, key) {
        match parse(present, &annotations[present]) {
            Ok(value) => parsed.push((present, value)),
            Err(err) => {
                errors.push(err);
                failed = true;
            }
        }
    }
    if failed {
        return None;
    }
    let mut values = parsed.into_iter();
    let (used, value) = values.next()?;
    let mut agree = true;
    for (twin, other) in values {
        if other != value {
            errors.push(AnnotationError::TwinMismatch {
                key: used,
                value: annotations[used].clone(),
                twin,
                twin_value: annotations[twin].clone(),
            });
            agree = false;
        }
    }
    if !agree {
        return None;
    }
    if used != key {
        translated.push(Translation {
            from: used,
            to: key,
            value: annotations[used].clone(),
        });
    }
    Some((used, value))
}

/// Parses a comma-separated IP list, keeping the written order. Spaces around entries are
/// allowed.
fn parse_ips(key: &'static str, value: &str) -> Result<Vec<IpAddr>, AnnotationError> {
    let mut ips = Vec::new();
    for entry in value.split(',').map(str::trim) {
        if entry.is_empty() {
            return Err(AnnotationError::EmptyIpEntry {
                key,
                value: value.to_string(),
            });
        }
        let ip = entry
            .parse::<IpAddr>()
            .map_err(|_| AnnotationError::BadIp {
                key,
                value: value.to_string(),
                entry: entry.to_string(),
            })?;
        ips.push(ip);
    }
    if ips.len() > 2 {
        return Err(AnnotationError::TooManyIps {
            key,
            value: value.to_string(),
            count: ips.len(),
        });
    }
    if let [a, b] = ips[..]
        && Family::of(a) == Family::of(b)
    {
        return Err(AnnotationError::SameFamilyTwice {
            key,
            value: value.to_string(),
            family: Family::of(a),
        });
    }
    Ok(ips)
}

/// A parsed IP list whose equality ignores order, so that twins may list the two families in
/// either order.
#[derive(Debug)]
struct IpList(Vec<IpAddr>);

impl PartialEq for IpList {
    fn eq(&self, other: &Self) -> bool {
        let mut a = self.0.clone();
        let mut b = other.0.clone();
        a.sort();
        b.sort();
        a == b
    }
}

fn parse_ip_list(key: &'static str, value: &str) -> Result<IpList, AnnotationError> {
    parse_ips(key, value).map(IpList)
}

fn parse_pool(key: &'static str, value: &str) -> Result<String, AnnotationError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(AnnotationError::EmptyPool { key });
    }
    check_dns1123_subdomain(value)
        .map_err(|source| AnnotationError::BadPoolName { key, source })?;
    Ok(value.to_string())
}

fn parse_sharing_key(_key: &'static str, value: &str) -> Result<Option<String>, AnnotationError> {
    let value = value.trim();
    Ok((!value.is_empty()).then(|| value.to_string()))
}

fn parse_ip_mode(key: &'static str, value: &str) -> Result<IpMode, AnnotationError> {
    value
        .trim()
        .parse()
        .map_err(|source| AnnotationError::BadIpMode { key, source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ServiceSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn mk_annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn parse(
        pairs: &[(&str, &str)],
        spec_ip: Option<&str>,
    ) -> Result<ServiceRequest, AnnotationErrors> {
        parse_annotations(&mk_annotations(pairs), spec_ip)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn no_annotations_ask_for_nothing() {
        assert_eq!(parse(&[], None), Ok(ServiceRequest::default()));
        assert_eq!(
            parse(&[("unrelated", "x")], Some("")),
            Ok(ServiceRequest::default())
        );
    }

    #[test]
    fn ironlb_annotations() {
        let req = parse(
            &[
                (LOAD_BALANCER_IPS, "2001:db8::7, 192.0.2.7"),
                (ADDRESS_POOL, "gold"),
                (ALLOW_SHARED_IP, "web"),
                (IP_MODE, "VIP"),
                (IP_ALLOCATED_FROM_POOL, "ignored: written by the controller"),
            ],
            None,
        )
        .unwrap();
        assert_eq!(req.ips, [ip("2001:db8::7"), ip("192.0.2.7")]);
        assert_eq!(req.ips_from, Some(IpSource::Annotation(LOAD_BALANCER_IPS)));
        assert_eq!(req.pool.as_deref(), Some("gold"));
        assert_eq!(req.sharing_key.as_deref(), Some("web"));
        assert_eq!(req.ip_mode, Some(IpMode::Vip));
        assert!(req.translated.is_empty());
    }

    #[test]
    fn deprecated_spec_load_balancer_ip() {
        let req = parse(&[], Some("192.0.2.9")).unwrap();
        assert_eq!(req.ips, [ip("192.0.2.9")]);
        assert_eq!(req.ips_from, Some(IpSource::SpecLoadBalancerIp));
    }

    #[test]
    fn metallb_twins_are_translated() {
        let req = parse(
            &[
                (metallb_universe::LOAD_BALANCER_IPS, "192.0.2.7"),
                (metallb::ADDRESS_POOL, "gold"),
                (metallb_universe::ALLOW_SHARED_IP, "k"),
            ],
            None,
        )
        .unwrap();
        assert_eq!(req.ips, [ip("192.0.2.7")]);
        assert_eq!(
            req.ips_from,
            Some(IpSource::Annotation(metallb_universe::LOAD_BALANCER_IPS))
        );
        assert_eq!(req.pool.as_deref(), Some("gold"));
        assert_eq!(req.sharing_key.as_deref(), Some("k"));
        let pairs: Vec<(&str, &str)> = req.translated.iter().map(|t| (t.from, t.to)).collect();
        assert_eq!(
            pairs,
            [
                (metallb_universe::LOAD_BALANCER_IPS, LOAD_BALANCER_IPS),
                (metallb::ADDRESS_POOL, ADDRESS_POOL),
                (metallb_universe::ALLOW_SHARED_IP, ALLOW_SHARED_IP),
            ]
        );
        assert_eq!(
            req.translated[1].message(),
            "MetalLB annotation metallb.io/address-pool=\"gold\" is honoured as ironlb.io/address-pool"
        );
    }

    #[test]
    fn agreeing_twins_are_fine_and_ironlb_wins_without_translation() {
        let req = parse(
            &[
                (ADDRESS_POOL, "gold"),
                (metallb::ADDRESS_POOL, "gold"),
                (LOAD_BALANCER_IPS, "192.0.2.7,2001:db8::7"),
                (
                    metallb_universe::LOAD_BALANCER_IPS,
                    "2001:db8::7, 192.0.2.7",
                ),
            ],
            None,
        )
        .unwrap();
        assert_eq!(req.pool.as_deref(), Some("gold"));
        assert_eq!(req.ips, [ip("192.0.2.7"), ip("2001:db8::7")]);
        assert!(req.translated.is_empty());
    }

    #[test]
    fn empty_sharing_key_means_none() {
        let req = parse(&[(ALLOW_SHARED_IP, "  ")], None).unwrap();
        assert_eq!(req.sharing_key, None);
    }

    #[test]
    fn effective_ip_mode_rule() {
        use IpMode::{Proxy, Vip};
        let cases = [
            (Some(Vip), None, Proxy, Vip),
            (Some(Proxy), Some(false), Vip, Proxy),
            (None, Some(false), Proxy, Vip),
            (None, Some(true), Proxy, Proxy),
            (None, None, Proxy, Proxy),
            (None, None, Vip, Vip),
        ];
        for (asked, node_ports, default, want) in cases {
            assert_eq!(
                effective_ip_mode(asked, node_ports, default),
                want,
                "{asked:?} {node_ports:?} {default:?}"
            );
        }
    }

    #[test]
    fn ip_mode_values() {
        assert_eq!("Proxy".parse::<IpMode>(), Ok(IpMode::Proxy));
        assert_eq!("VIP".parse::<IpMode>(), Ok(IpMode::Vip));
        for mode in [IpMode::Proxy, IpMode::Vip] {
            assert_eq!(mode.to_string().parse::<IpMode>(), Ok(mode));
        }
        assert_eq!(
            parse(&[(IP_MODE, " Proxy ")], None).unwrap().ip_mode,
            Some(IpMode::Proxy)
        );
    }

    /// Every malformed value, with the exact message the user will read.
    #[test]
    fn malformed_values_name_the_annotation_and_value() {
        // (annotations, spec.loadBalancerIP, the whole error message)
        type Case<'a> = (Vec<(&'a str, &'a str)>, Option<&'a str>, &'a str);
        let cases: Vec<Case> = vec![
            (
                vec![(LOAD_BALANCER_IPS, "192.0.2.300")],
                None,
                "annotation ironlb.io/loadBalancerIPs: \"192.0.2.300\" in \"192.0.2.300\" is not an IP address",
            ),
            (
                vec![(LOAD_BALANCER_IPS, "banana")],
                None,
                "annotation ironlb.io/loadBalancerIPs: \"banana\" in \"banana\" is not an IP address",
            ),
            (
                vec![(LOAD_BALANCER_IPS, "192.0.2.0/24")],
                None,
                "annotation ironlb.io/loadBalancerIPs: \"192.0.2.0/24\" in \"192.0.2.0/24\" is not an IP address",
            ),
            (
                vec![(LOAD_BALANCER_IPS, "")],
                None,
                "annotation ironlb.io/loadBalancerIPs: \"\" has an empty entry; write IPs separated by commas",
            ),
            (
                vec![(LOAD_BALANCER_IPS, "192.0.2.1,")],
                None,
                "annotation ironlb.io/loadBalancerIPs: \"192.0.2.1,\" has an empty entry; write IPs separated by commas",
            ),
            (
                vec![(LOAD_BALANCER_IPS, "192.0.2.1,2001:db8::1,198.51.100.1")],
                None,
                "annotation ironlb.io/loadBalancerIPs: \"192.0.2.1,2001:db8::1,198.51.100.1\" lists 3 addresses; give at most one IPv4 and one IPv6 address",
            ),
            (
                vec![(LOAD_BALANCER_IPS, "192.0.2.1,192.0.2.2")],
                None,
                "annotation ironlb.io/loadBalancerIPs: \"192.0.2.1,192.0.2.2\" lists two IPv4 addresses; give at most one per family",
            ),
            (
                vec![(LOAD_BALANCER_IPS, "2001:db8::1,2001:db8::2")],
                None,
                "annotation ironlb.io/loadBalancerIPs: \"2001:db8::1,2001:db8::2\" lists two IPv6 addresses; give at most one per family",
            ),
            (
                vec![],
                Some("not-an-ip"),
                "spec.loadBalancerIP \"not-an-ip\" is not an IP address",
            ),
            (
                vec![(LOAD_BALANCER_IPS, "192.0.2.1")],
                Some("192.0.2.1"),
                "both spec.loadBalancerIP (\"192.0.2.1\") and annotation ironlb.io/loadBalancerIPs (\"192.0.2.1\") are set; keep only the annotation",
            ),
            (
                vec![(metallb::LOAD_BALANCER_IPS, "192.0.2.1")],
                Some("192.0.2.2"),
                "both spec.loadBalancerIP (\"192.0.2.2\") and annotation metallb.io/loadBalancerIPs (\"192.0.2.1\") are set; keep only the annotation",
            ),
            (
                vec![(ADDRESS_POOL, "gold"), (metallb::ADDRESS_POOL, "silver")],
                None,
                "annotation ironlb.io/address-pool is \"gold\" but metallb.io/address-pool is \"silver\"; remove one or make them equal",
            ),
            (
                vec![
                    (metallb::ALLOW_SHARED_IP, "a"),
                    (metallb_universe::ALLOW_SHARED_IP, "b"),
                ],
                None,
                "annotation metallb.io/allow-shared-ip is \"a\" but metallb.universe.tf/allow-shared-ip is \"b\"; remove one or make them equal",
            ),
            (
                vec![
                    (LOAD_BALANCER_IPS, "192.0.2.1"),
                    (metallb_universe::LOAD_BALANCER_IPS, "192.0.2.2"),
                ],
                None,
                "annotation ironlb.io/loadBalancerIPs is \"192.0.2.1\" but metallb.universe.tf/loadBalancerIPs is \"192.0.2.2\"; remove one or make them equal",
            ),
            (
                vec![(IP_MODE, "vip")],
                None,
                "annotation ironlb.io/ip-mode: \"vip\" is not an IP mode; use Proxy or VIP",
            ),
            (
                vec![(IP_MODE, "")],
                None,
                "annotation ironlb.io/ip-mode: \"\" is not an IP mode; use Proxy or VIP",
            ),
            (
                vec![(ADDRESS_POOL, "")],
                None,
                "annotation ironlb.io/address-pool is empty; name an IPAddressPool or remove the annotation",
            ),
            (
                vec![(metallb_universe::ADDRESS_POOL, " ")],
                None,
                "annotation metallb.universe.tf/address-pool is empty; name an IPAddressPool or remove the annotation",
            ),
            (
                vec![(ADDRESS_POOL, "Gold Pool")],
                None,
                "annotation ironlb.io/address-pool: DNS-1123 subdomain \"Gold Pool\" is invalid: use dot-separated parts of lowercase letters, digits and '-', each starting and ending with a letter or digit",
            ),
        ];
        for (pairs, spec_ip, want) in cases {
            let got = parse(&pairs, spec_ip);
            match got {
                Err(errs) => assert_eq!(errs.to_string(), want, "{pairs:?} {spec_ip:?}"),
                Ok(req) => panic!("{pairs:?} {spec_ip:?} parsed as {req:?}"),
            }
        }
    }

    #[test]
    fn malformed_annotation_and_spec_ip_are_both_reported() {
        let errs = parse(&[(LOAD_BALANCER_IPS, "x")], Some("192.0.2.1")).unwrap_err();
        assert_eq!(errs.0.len(), 2);
        assert!(matches!(errs.0[0], AnnotationError::BadIp { .. }));
        assert!(matches!(
            errs.0[1],
            AnnotationError::SpecAndAnnotation { .. }
        ));
    }

    #[test]
    fn every_problem_is_collected() {
        let errs = parse(
            &[
                (LOAD_BALANCER_IPS, "x"),
                (ADDRESS_POOL, ""),
                (IP_MODE, "DSR"),
            ],
            None,
        )
        .unwrap_err();
        assert_eq!(errs.0.len(), 3, "{errs}");
    }

    #[test]
    fn parse_service_reads_metadata_and_spec() {
        let service = Service {
            metadata: ObjectMeta {
                annotations: Some(mk_annotations(&[(ADDRESS_POOL, "gold")])),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                load_balancer_ip: Some("198.51.100.4".into()),
                ..Default::default()
            }),
            status: None,
        };
        let req = parse_service(&service).unwrap();
        assert_eq!(req.pool.as_deref(), Some("gold"));
        assert_eq!(req.ips, [ip("198.51.100.4")]);
        assert_eq!(
            parse_service(&Service::default()),
            Ok(ServiceRequest::default())
        );
    }

    #[test]
    fn twins_table_covers_every_input_key() {
        assert_eq!(metallb_twins(LOAD_BALANCER_IPS).len(), 2);
        assert_eq!(metallb_twins(ADDRESS_POOL).len(), 2);
        assert_eq!(metallb_twins(ALLOW_SHARED_IP).len(), 2);
        assert!(metallb_twins(IP_MODE).is_empty());
        assert!(metallb_twins(IP_ALLOCATED_FROM_POOL).is_empty());
    }

    proptest::proptest! {
        #[test]
        fn never_panics(value in "\\PC{0,40}", spec in proptest::option::of("\\PC{0,20}")) {
            for key in [LOAD_BALANCER_IPS, ADDRESS_POOL, ALLOW_SHARED_IP, IP_MODE, metallb::LOAD_BALANCER_IPS] {
                let _ = parse(&[(key, value.as_str())], spec.as_deref());
            }
        }
    }
}
