//! The compiled form of an `L2AdvertisementSpec`: which pools, nodes and Services it covers and on
//! which interfaces it announces.
//!
//! Selection rules (MetalLB's):
//! - pools: a pool is selected when it is named in `ipAddressPools` or matches one of
//!   `ipAddressPoolSelectors`; with both empty, every pool is;
//! - nodes and Services: with no selectors, all are; otherwise one selector must match;
//! - interfaces: an empty list means "the interface that holds the node's InternalIP", which
//!   only the speaker can resolve.
//!
//! [`Advertisement::compile`] collects every problem, each naming its field.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::names::{NameError, check_dns1123_subdomain, check_interface_name};
use crate::selector::{Selector, any_matches};
use crate::selector_field::{SelectorFieldError, compile_selector_field};
use crate::v1beta1::L2AdvertisementSpec;

/// One problem in an L2Advertisement spec.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AdvertisementError {
    #[error("spec.ipAddressPools[{index}]: {source}")]
    PoolName { index: usize, source: NameError },
    #[error("spec.interfaces[{index}]: {source}")]
    Interface { index: usize, source: NameError },
    #[error(transparent)]
    Selector(#[from] SelectorFieldError),
}

/// Every problem found in one spec. Displays as one `; `-separated line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct AdvertisementErrors(pub Vec<AdvertisementError>);

impl fmt::Display for AdvertisementErrors {
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

/// A validated L2Advertisement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Advertisement {
    pools: BTreeSet<String>,
    pool_selectors: Vec<Selector>,
    node_selectors: Vec<Selector>,
    service_selectors: Vec<Selector>,
    interfaces: Vec<String>,
}

impl Advertisement {
    /// Validates and compiles a spec. On failure, returns every problem found.
    pub fn compile(spec: &L2AdvertisementSpec) -> Result<Advertisement, AdvertisementErrors> {
        let mut errors = Vec::new();
        let mut pools = BTreeSet::new();
        for (index, name) in spec.ip_address_pools.iter().enumerate() {
            match check_dns1123_subdomain(name) {
                Ok(()) => {
                    pools.insert(name.clone());
                }
                Err(source) => errors.push(AdvertisementError::PoolName { index, source }),
            }
        }
        let mut selector_errors = Vec::new();
        let pool_selectors = compile_selector_field(
            "spec.ipAddressPoolSelectors",
            &spec.ip_address_pool_selectors,
            &mut selector_errors,
        );
        let node_selectors = compile_selector_field(
            "spec.nodeSelectors",
            &spec.node_selectors,
            &mut selector_errors,
        );
        let service_selectors = compile_selector_field(
            "spec.serviceSelectors",
            &spec.service_selectors,
            &mut selector_errors,
        );
        errors.extend(
            selector_errors
                .into_iter()
                .map(AdvertisementError::Selector),
        );
        let mut interfaces = Vec::new();
        for (index, name) in spec.interfaces.iter().enumerate() {
            match check_interface_name(name) {
                Ok(()) if !interfaces.contains(name) => interfaces.push(name.clone()),
                Ok(()) => {}
                Err(source) => errors.push(AdvertisementError::Interface { index, source }),
            }
        }
        if !errors.is_empty() {
            return Err(AdvertisementErrors(errors));
        }
        Ok(Advertisement {
            pools,
            pool_selectors,
            node_selectors,
            service_selectors,
            interfaces,
        })
    }

    /// True when this advertisement announces the pool `name` whose labels are `labels`.
    pub fn selects_pool(&self, name: &str, labels: &BTreeMap<String, String>) -> bool {
        if self.pools.is_empty() && self.pool_selectors.is_empty() {
            return true;
        }
        self.pools.contains(name) || self.pool_selectors.iter().any(|s| s.matches(labels))
    }

    /// True when a node with these labels may announce for this advertisement.
    pub fn selects_node(&self, labels: &BTreeMap<String, String>) -> bool {
        any_matches(&self.node_selectors, labels)
    }

    /// The compiled `nodeSelectors` (empty: every node), as the speaker's election takes them.
    pub fn node_selectors(&self) -> &[Selector] {
        &self.node_selectors
    }

    /// True when a Service with these labels is announced by this advertisement.
    pub fn selects_service(&self, labels: &BTreeMap<String, String>) -> bool {
        any_matches(&self.service_selectors, labels)
    }

    /// The interfaces to announce on, in spec order without duplicates. Empty means the
    /// interface that holds the node's InternalIP.
    pub fn interfaces(&self) -> &[String] {
        &self.interfaces
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn selector(pairs: &[(&str, &str)]) -> LabelSelector {
        LabelSelector {
            match_labels: Some(labels(pairs)),
            match_expressions: None,
        }
    }

    fn mk_ad(spec: L2AdvertisementSpec) -> Advertisement {
        Advertisement::compile(&spec).unwrap()
    }

    #[test]
    fn empty_spec_selects_everything() {
        let ad = mk_ad(L2AdvertisementSpec::default());
        assert!(ad.selects_pool("any", &labels(&[])));
        assert!(ad.selects_node(&labels(&[("zone", "a")])));
        assert!(ad.selects_service(&labels(&[])));
        assert!(ad.interfaces().is_empty());
    }

    #[test]
    fn pools_by_name_or_selector() {
        let ad = mk_ad(L2AdvertisementSpec {
            ip_address_pools: vec!["gold".into()],
            ip_address_pool_selectors: vec![selector(&[("tier", "silver")])],
            ..Default::default()
        });
        assert!(ad.selects_pool("gold", &labels(&[])));
        assert!(ad.selects_pool("other", &labels(&[("tier", "silver")])));
        assert!(!ad.selects_pool("other", &labels(&[("tier", "bronze")])));
        assert!(!ad.selects_pool("other", &labels(&[])));
    }

    #[test]
    fn a_pool_list_alone_selects_only_those_pools() {
        let ad = mk_ad(L2AdvertisementSpec {
            ip_address_pools: vec!["gold".into()],
            ..Default::default()
        });
        assert!(ad.selects_pool("gold", &labels(&[])));
        assert!(!ad.selects_pool("silver", &labels(&[])));
    }

    #[test]
    fn pool_selectors_alone_select_by_label() {
        let ad = mk_ad(L2AdvertisementSpec {
            ip_address_pool_selectors: vec![selector(&[("tier", "silver")])],
            ..Default::default()
        });
        assert!(!ad.selects_pool("gold", &labels(&[])));
        assert!(ad.selects_pool("x", &labels(&[("tier", "silver")])));
    }

    #[test]
    fn node_and_service_selectors() {
        let ad = mk_ad(L2AdvertisementSpec {
            node_selectors: vec![
                selector(&[("zone", "a")]),
                LabelSelector {
                    match_labels: None,
                    match_expressions: Some(vec![LabelSelectorRequirement {
                        key: "edge".into(),
                        operator: "Exists".into(),
                        values: None,
                    }]),
                },
            ],
            service_selectors: vec![selector(&[("expose", "l2")])],
            ..Default::default()
        });
        assert!(ad.selects_node(&labels(&[("zone", "a")])));
        assert!(ad.selects_node(&labels(&[("edge", "")])));
        assert!(!ad.selects_node(&labels(&[("zone", "b")])));
        assert!(ad.selects_service(&labels(&[("expose", "l2")])));
        assert!(!ad.selects_service(&labels(&[])));
    }

    #[test]
    fn interfaces_keep_order_and_drop_duplicates() {
        let ad = mk_ad(L2AdvertisementSpec {
            interfaces: vec!["eth1".into(), "eth0".into(), "eth1".into()],
            ..Default::default()
        });
        assert_eq!(ad.interfaces(), ["eth1", "eth0"]);
    }

    #[test]
    fn every_problem_is_reported() {
        let err = Advertisement::compile(&L2AdvertisementSpec {
            ip_address_pools: vec!["gold".into(), "Gold_Pool".into()],
            ip_address_pool_selectors: vec![selector(&[("bad key", "x")])],
            node_selectors: vec![LabelSelector {
                match_labels: None,
                match_expressions: Some(vec![LabelSelectorRequirement {
                    key: "zone".into(),
                    operator: "In".into(),
                    values: None,
                }]),
            }],
            service_selectors: vec![],
            interfaces: vec![
                "eth0".into(),
                "eth0:1".into(),
                "averyveryverylongname".into(),
                "..".into(),
            ],
        })
        .unwrap_err();
        let messages: Vec<String> = err.0.iter().map(ToString::to_string).collect();
        assert_eq!(
            messages,
            [
                "spec.ipAddressPools[1]: DNS-1123 subdomain \"Gold_Pool\" is invalid: use dot-separated parts of lowercase letters, digits and '-', each starting and ending with a letter or digit",
                "spec.ipAddressPoolSelectors[0]: label key \"bad key\" is invalid: use letters, digits, '-', '_' and '.', starting and ending with a letter or digit",
                "spec.nodeSelectors[0]: selector operator In for key \"zone\" needs at least one value",
                "spec.interfaces[1]: interface name \"eth0:1\" is invalid: use printable ASCII without '/', ':' or spaces",
                "spec.interfaces[2]: interface name \"averyveryverylongname\" is longer than 15 characters",
                "spec.interfaces[3]: interface name \"..\" is invalid: '.' and '..' are not interface names",
            ]
        );
        assert_eq!(err.to_string(), messages.join("; "));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_specs_never_panic(
            pools in proptest::collection::vec("\\PC{0,12}", 0..3),
            interfaces in proptest::collection::vec("\\PC{0,18}", 0..3),
        ) {
            let spec = L2AdvertisementSpec { ip_address_pools: pools, interfaces, ..Default::default() };
            if let Err(errors) = Advertisement::compile(&spec) {
                proptest::prop_assert!(!errors.0.is_empty());
            }
        }
    }
}
