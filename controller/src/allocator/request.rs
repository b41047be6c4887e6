//! What the allocator needs to know about a Service, as plain data.
//!
//! The controller builds a [`Request`] from a Service, its Namespace and its annotations; the
//! allocator never sees a Kubernetes object. [`Request::validate`] rejects requests that cannot
//! describe a real Service (a family listed twice, two requested IPs of one family, ...), so the
//! allocation rules only ever deal with well-formed input.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

use ironlb_crds::address::Family;

use super::error::AllocError;

/// Identifies a Service: `namespace/name`.
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

/// A Service port's protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        })
    }
}

/// One (protocol, port) pair a Service exposes; two services sharing an IP must not overlap.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Port {
    pub protocol: Protocol,
    pub port: u16,
}

impl Port {
    pub fn new(protocol: Protocol, port: u16) -> Self {
        Port { protocol, port }
    }
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.protocol, self.port)
    }
}

/// Where a Service's traffic ends up, as far as IP sharing is concerned.
///
/// Two services on one IP are announced by one node, so they must agree on which nodes may
/// announce: with `Cluster` any node can; with `Local` only nodes running the selected pods can,
/// hence identical pod selectors.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum Backend {
    /// `externalTrafficPolicy: Cluster`.
    #[default]
    Cluster,
    /// `externalTrafficPolicy: Local`, with the Service's pod selector.
    Local { selector: BTreeMap<String, String> },
}

/// `spec.ipFamilyPolicy` with `spec.ipFamilies` (the order matters: the first is preferred).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FamilyPolicy {
    SingleStack(Family),
    PreferDualStack([Family; 2]),
    RequireDualStack([Family; 2]),
}

/// A small, ordered set of families that one allocation attempt must cover.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FamilySet {
    families: [Family; 2],
    len: usize,
}

impl FamilySet {
    fn one(family: Family) -> Self {
        FamilySet {
            families: [family, family],
            len: 1,
        }
    }

    fn two(families: [Family; 2]) -> Self {
        FamilySet { families, len: 2 }
    }

    pub(crate) fn as_slice(&self) -> &[Family] {
        &self.families[..self.len]
    }
}

impl FamilyPolicy {
    /// The families of the Service, in `spec.ipFamilies` order.
    pub fn families(&self) -> &[Family] {
        match self {
            FamilyPolicy::SingleStack(f) => std::slice::from_ref(f),
            FamilyPolicy::PreferDualStack(fs) | FamilyPolicy::RequireDualStack(fs) => fs,
        }
    }

    /// What automatic allocation tries, in order.
    ///
    /// PreferDualStack falls back to the first family and then, as in MetalLB, to the second
    /// one, rather than leaving the Service without an address.
    pub(crate) fn attempts(&self) -> impl Iterator<Item = FamilySet> {
        let (sets, n) = match *self {
            FamilyPolicy::SingleStack(f) => ([FamilySet::one(f); 3], 1),
            FamilyPolicy::PreferDualStack([a, b]) => (
                [FamilySet::two([a, b]), FamilySet::one(a), FamilySet::one(b)],
                3,
            ),
            FamilyPolicy::RequireDualStack(pair) => ([FamilySet::two(pair); 3], 1),
        };
        sets.into_iter().take(n)
    }

    /// True when a Service holding addresses of `held` families satisfies the policy.
    pub(crate) fn accepts(&self, held: &[Family]) -> bool {
        let wanted = self.families();
        let distinct: BTreeSet<Family> = held.iter().copied().collect();
        if distinct.len() != held.len() || held.iter().any(|f| !wanted.contains(f)) {
            return false;
        }
        match self {
            FamilyPolicy::SingleStack(_) | FamilyPolicy::RequireDualStack(_) => {
                held.len() == wanted.len()
            }
            FamilyPolicy::PreferDualStack(_) => !held.is_empty(),
        }
    }

    /// Position of `family` in `spec.ipFamilies`, used to order a Service's addresses.
    pub(crate) fn rank(&self, family: Family) -> usize {
        self.families()
            .iter()
            .position(|&f| f == family)
            .unwrap_or(usize::MAX)
    }

    fn validate(&self) -> Result<(), AllocError> {
        match *self {
            FamilyPolicy::SingleStack(_) => Ok(()),
            FamilyPolicy::PreferDualStack([a, b]) | FamilyPolicy::RequireDualStack([a, b]) => {
                if a == b {
                    Err(AllocError::DuplicateFamily { family: a })
                } else {
                    Ok(())
                }
            }
        }
    }
}

/// Everything the allocator needs to place one Service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// Labels of the Service's Namespace (for `serviceAllocation.namespaceSelectors`).
    pub namespace_labels: BTreeMap<String, String>,
    /// Labels of the Service (for `serviceAllocation.serviceSelectors`).
    pub service_labels: BTreeMap<String, String>,
    /// Requested addresses (annotation or `spec.loadBalancerIP`), at most one per family.
    pub requested_ips: Vec<IpAddr>,
    /// The pool named by the address-pool annotation.
    pub pool: Option<String>,
    /// The allow-shared-ip key. An empty key means no key, as in MetalLB.
    pub sharing_key: Option<String>,
    pub ports: Vec<Port>,
    pub backend: Backend,
    pub families: FamilyPolicy,
}

impl Request {
    /// A request for an automatic address of the given policy, with no labels, ports or options.
    pub fn new(families: FamilyPolicy) -> Self {
        Request {
            namespace_labels: BTreeMap::new(),
            service_labels: BTreeMap::new(),
            requested_ips: Vec::new(),
            pool: None,
            sharing_key: None,
            ports: Vec::new(),
            backend: Backend::Cluster,
            families,
        }
    }

    /// Rejects requests no real Service can make; see the module docs.
    pub fn validate(&self) -> Result<(), AllocError> {
        self.families.validate()?;
        check_one_per_family(&self.requested_ips)?;
        let wanted = self.families.families();
        if let Some(&ip) = self
            .requested_ips
            .iter()
            .find(|ip| !wanted.contains(&Family::of(**ip)))
        {
            return Err(AllocError::RequestedFamilyNotInService {
                ip,
                families: wanted.to_vec(),
            });
        }
        if let FamilyPolicy::RequireDualStack(pair) = self.families
            && !self.requested_ips.is_empty()
            && let Some(&missing) = pair
                .iter()
                .find(|f| !self.requested_ips.iter().any(|ip| Family::of(*ip) == **f))
        {
            return Err(AllocError::RequestedIpMissingFamily { missing });
        }
        Ok(())
    }

    pub(crate) fn terms(&self) -> Terms {
        Terms {
            sharing_key: self.sharing_key.clone().filter(|k| !k.is_empty()),
            backend: self.backend.clone(),
            ports: self.ports.iter().copied().collect(),
        }
    }
}

/// Fails when two addresses of one family are given.
pub(crate) fn check_one_per_family(ips: &[IpAddr]) -> Result<(), AllocError> {
    for (i, &first) in ips.iter().enumerate() {
        if let Some(&second) = ips[i + 1..]
            .iter()
            .find(|ip| Family::of(**ip) == Family::of(first))
        {
            return Err(AllocError::TooManyIps {
                family: Family::of(first),
                first,
                second,
            });
        }
    }
    Ok(())
}

/// The terms under which a Service holds its addresses: what decides whether it may share.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Terms {
    pub(crate) sharing_key: Option<String>,
    pub(crate) backend: Backend,
    pub(crate) ports: BTreeSet<Port>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use Family::{V4, V6};

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn attempts_follow_the_policy() {
        let list = |p: FamilyPolicy| -> Vec<Vec<Family>> {
            p.attempts().map(|s| s.as_slice().to_vec()).collect()
        };
        assert_eq!(list(FamilyPolicy::SingleStack(V6)), vec![vec![V6]]);
        assert_eq!(
            list(FamilyPolicy::PreferDualStack([V6, V4])),
            vec![vec![V6, V4], vec![V6], vec![V4]]
        );
        assert_eq!(
            list(FamilyPolicy::RequireDualStack([V4, V6])),
            vec![vec![V4, V6]]
        );
    }

    #[test]
    fn accepts_held_families() {
        let single = FamilyPolicy::SingleStack(V4);
        assert!(single.accepts(&[V4]));
        assert!(!single.accepts(&[V6]));
        assert!(!single.accepts(&[V4, V6]));
        let prefer = FamilyPolicy::PreferDualStack([V4, V6]);
        assert!(prefer.accepts(&[V4]) && prefer.accepts(&[V6]) && prefer.accepts(&[V6, V4]));
        assert!(!prefer.accepts(&[]));
        assert!(!prefer.accepts(&[V4, V4]));
        let require = FamilyPolicy::RequireDualStack([V4, V6]);
        assert!(require.accepts(&[V6, V4]));
        assert!(!require.accepts(&[V4]));
    }

    #[test]
    fn malformed_requests_are_rejected() {
        let mut req = Request::new(FamilyPolicy::RequireDualStack([V4, V4]));
        assert_eq!(
            req.validate(),
            Err(AllocError::DuplicateFamily { family: V4 })
        );

        req.families = FamilyPolicy::PreferDualStack([V4, V6]);
        req.requested_ips = vec![ip("198.51.100.1"), ip("2001:db8::1"), ip("198.51.100.2")];
        assert_eq!(
            req.validate(),
            Err(AllocError::TooManyIps {
                family: V4,
                first: ip("198.51.100.1"),
                second: ip("198.51.100.2"),
            })
        );

        req.families = FamilyPolicy::SingleStack(V4);
        req.requested_ips = vec![ip("2001:db8::1")];
        assert_eq!(
            req.validate(),
            Err(AllocError::RequestedFamilyNotInService {
                ip: ip("2001:db8::1"),
                families: vec![V4],
            })
        );

        req.families = FamilyPolicy::RequireDualStack([V6, V4]);
        req.requested_ips = vec![ip("2001:db8::1")];
        assert_eq!(
            req.validate(),
            Err(AllocError::RequestedIpMissingFamily { missing: V4 })
        );

        req.requested_ips = vec![ip("2001:db8::1"), ip("198.51.100.1")];
        assert_eq!(req.validate(), Ok(()));
    }

    #[test]
    fn empty_sharing_key_means_none() {
        let mut req = Request::new(FamilyPolicy::SingleStack(V4));
        req.sharing_key = Some(String::new());
        assert_eq!(req.terms().sharing_key, None);
        req.sharing_key = Some("k".into());
        assert_eq!(req.terms().sharing_key.as_deref(), Some("k"));
    }

    #[test]
    fn display_forms() {
        assert_eq!(ServiceKey::new("web", "front").to_string(), "web/front");
        assert_eq!(Port::new(Protocol::Sctp, 9).to_string(), "SCTP/9");
    }
}
