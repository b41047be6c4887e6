//! The validated form of an `IPAddressPoolSpec`: what the controller and the speaker work with.
//!
//! [`Pool::from_spec`] checks everything the API server's schema cannot, and collects **every**
//! problem (each with the path of the field it concerns) rather than stopping at the first, so
//! that one `Invalid` condition tells the user all there is to fix. A pool with any problem is
//! not used at all: handing out part of a pool the user got wrong is worse than none.
//!
//! Overlaps *between* pools are a separate question (the older pool wins); see
//! [`Pool::first_overlap`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

use crate::address::{AddressError, AddressRange, Family, parse_address_entry};
use crate::names::{NameError, check_dns1123_label};
use crate::selector::{Selector, any_matches};
use crate::selector_field::{SelectorFieldError, compile_selector_field};
use crate::v1beta1::IPAddressPoolSpec;

/// One problem in an IPAddressPool spec.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    #[error("spec.addresses: the pool has no addresses")]
    NoAddresses,
    #[error("spec.addresses[{index}]: {source}")]
    Address { index: usize, source: AddressError },
    #[error(
        "spec.addresses[{index}] ({entry}) overlaps spec.addresses[{other_index}] ({other_entry})"
    )]
    Overlap {
        index: usize,
        entry: String,
        other_index: usize,
        other_entry: String,
    },
    #[error("spec.serviceAllocation.priority: {priority} is negative; use 0 or more")]
    NegativePriority { priority: i32 },
    #[error("spec.serviceAllocation.namespaces[{index}]: {source}")]
    Namespace { index: usize, source: NameError },
    #[error(transparent)]
    Selector(#[from] SelectorFieldError),
}

/// Every problem found in one spec, in field order. Displays as one line, `; `-separated, fit
/// for a condition message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct PoolErrors(pub Vec<PoolError>);

impl fmt::Display for PoolErrors {
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

/// A pool whose spec passed every check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pool {
    ranges: Vec<AddressRange>,
    auto_assign: bool,
    avoid_buggy_ips: bool,
    allocation: Option<Allocation>,
}

/// The compiled `spec.serviceAllocation`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Allocation {
    priority: u32,
    namespaces: BTreeSet<String>,
    namespace_selectors: Vec<Selector>,
    service_selectors: Vec<Selector>,
}

impl Pool {
    /// Validates a spec. On failure, returns every problem found.
    pub fn from_spec(spec: &IPAddressPoolSpec) -> Result<Pool, PoolErrors> {
        let mut errors = Vec::new();
        let ranges = parse_ranges(&spec.addresses, &mut errors);
        let allocation = spec.service_allocation.as_ref().map(|a| {
            let priority = u32::try_from(a.priority).unwrap_or_else(|_| {
                errors.push(PoolError::NegativePriority {
                    priority: a.priority,
                });
                0
            });
            let mut namespaces = BTreeSet::new();
            for (index, ns) in a.namespaces.iter().enumerate() {
                match check_dns1123_label(ns) {
                    Ok(()) => {
                        namespaces.insert(ns.clone());
                    }
                    Err(source) => errors.push(PoolError::Namespace { index, source }),
                }
            }
            let mut selector_errors = Vec::new();
            let namespace_selectors = compile_selector_field(
                "spec.serviceAllocation.namespaceSelectors",
                &a.namespace_selectors,
                &mut selector_errors,
            );
            let service_selectors = compile_selector_field(
                "spec.serviceAllocation.serviceSelectors",
                &a.service_selectors,
                &mut selector_errors,
            );
            errors.extend(selector_errors.into_iter().map(PoolError::Selector));
            Allocation {
                priority,
                namespaces,
                namespace_selectors,
                service_selectors,
            }
        });
        if !errors.is_empty() {
            return Err(PoolErrors(errors));
        }
        Ok(Pool {
            ranges,
            auto_assign: spec.auto_assign,
            avoid_buggy_ips: spec.avoid_buggy_ips,
            allocation,
        })
    }

    /// The pool's ranges, sorted by family and then by first address; they never overlap.
    pub fn ranges(&self) -> &[AddressRange] {
        &self.ranges
    }

    /// The ranges of one family, sorted.
    pub fn ranges_of(&self, family: Family) -> impl Iterator<Item = &AddressRange> {
        self.ranges.iter().filter(move |r| r.family() == family)
    }

    /// The families the pool has addresses of, IPv4 first.
    pub fn families(&self) -> BTreeSet<Family> {
        self.ranges.iter().map(AddressRange::family).collect()
    }

    /// Number of addresses of `family`, before `avoidBuggyIPs` is applied. Saturates at
    /// `u128::MAX`, which only `::/0` reaches.
    pub fn size(&self, family: Family) -> u128 {
        self.ranges_of(family)
            .fold(0u128, |sum, r| sum.saturating_add(r.len()))
    }

    /// True when `ip` lies in one of the pool's ranges. Does not consider `avoidBuggyIPs`.
    pub fn contains(&self, ip: IpAddr) -> bool {
        // Ranges are sorted and disjoint: find the last one starting at or before `ip`.
        let family = Family::of(ip);
        let value = crate::address::ip_to_u128(ip);
        let idx = self
            .ranges
            .partition_point(|r| (r.family(), r.first()) <= (family, value));
        idx > 0 && self.ranges[idx - 1].contains(ip)
    }

    pub fn auto_assign(&self) -> bool {
        self.auto_assign
    }

    pub fn avoid_buggy_ips(&self) -> bool {
        self.avoid_buggy_ips
    }

    /// The compiled `serviceAllocation`, if the spec has one.
    pub fn allocation(&self) -> Option<&Allocation> {
        self.allocation.as_ref()
    }

    /// The first pair of overlapping ranges between this pool and `other`, if any: this pool's
    /// range first. Linear in the number of ranges of both pools.
    pub fn first_overlap(&self, other: &Pool) -> Option<(AddressRange, AddressRange)> {
        let (mut i, mut j) = (0, 0);
        while i < self.ranges.len() && j < other.ranges.len() {
            let (a, b) = (self.ranges[i], other.ranges[j]);
            if a.overlaps(&b) {
                return Some((a, b));
            }
            if (a.family(), a.last()) < (b.family(), b.last()) {
                i += 1;
            } else {
                j += 1;
            }
        }
        None
    }
}

impl Allocation {
    /// The priority: lower is tried first, and 0 sorts after every positive priority.
    pub fn priority(&self) -> u32 {
        self.priority
    }

    /// Namespaces listed in `namespaces`.
    pub fn namespaces(&self) -> &BTreeSet<String> {
        &self.namespaces
    }

    /// Compiled `namespaceSelectors`.
    pub fn namespace_selectors(&self) -> &[Selector] {
        &self.namespace_selectors
    }

    /// Compiled `serviceSelectors`.
    pub fn service_selectors(&self) -> &[Selector] {
        &self.service_selectors
    }

    /// The key that orders matching pools as the design says: positive priorities ascending,
    /// then 0; callers break ties by pool name.
    pub fn order_key(&self) -> (bool, u32) {
        (self.priority == 0, self.priority)
    }

    /// True when a Service in `namespace` (whose labels are `namespace_labels`) with labels
    /// `service_labels` is one this pool is meant for.
    ///
    /// `namespaces` and `namespaceSelectors` together name the eligible namespaces (a namespace
    /// qualifies through either); with both empty, every namespace does. `serviceSelectors`,
    /// when set, must also match.
    pub fn matches(
        &self,
        namespace: &str,
        namespace_labels: &BTreeMap<String, String>,
        service_labels: &BTreeMap<String, String>,
    ) -> bool {
        let namespace_ok = (self.namespaces.is_empty() && self.namespace_selectors.is_empty())
            || self.namespaces.contains(namespace)
            || self
                .namespace_selectors
                .iter()
                .any(|s| s.matches(namespace_labels));
        namespace_ok && any_matches(&self.service_selectors, service_labels)
    }

    /// True when the allocation restricts by namespace labels, so that the caller knows it
    /// must look the namespace's labels up.
    pub fn uses_namespace_labels(&self) -> bool {
        !self.namespace_selectors.is_empty()
    }
}

/// Parses every entry, then reports entries that overlap each other (duplicates included).
fn parse_ranges(entries: &[String], errors: &mut Vec<PoolError>) -> Vec<AddressRange> {
    if entries.is_empty() {
        errors.push(PoolError::NoAddresses);
        return Vec::new();
    }
    let mut parsed: Vec<(usize, AddressRange)> = Vec::with_capacity(entries.len());
    for (index, entry) in entries.iter().enumerate() {
        match parse_address_entry(entry) {
            Ok(range) => parsed.push((index, range)),
            Err(source) => errors.push(PoolError::Address { index, source }),
        }
    }
    parsed.sort_by_key(|(index, r)| (r.family(), r.first(), r.last(), *index));
    // After sorting by start, an entry overlaps an earlier one exactly when it starts at or
    // before the furthest end seen so far; report it against the entry that reached furthest.
    let mut furthest: Option<(usize, AddressRange)> = None;
    for &(index, range) in &parsed {
        if let Some((other_index, other)) = furthest
            && other.overlaps(&range)
        {
            let (first, second) = if other_index < index {
                ((other_index, other), (index, range))
            } else {
                ((index, range), (other_index, other))
            };
            errors.push(PoolError::Overlap {
                index: second.0,
                entry: entries[second.0].clone(),
                other_index: first.0,
                other_entry: entries[first.0].clone(),
            });
        }
        let extends =
            furthest.is_none_or(|(_, f)| f.family() != range.family() || range.last() > f.last());
        if extends {
            furthest = Some((index, range));
        }
    }
    errors.sort_by_key(error_order);
    parsed.into_iter().map(|(_, r)| r).collect()
}

/// Orders address errors by the index they concern, so messages follow the spec.
fn error_order(err: &PoolError) -> usize {
    match err {
        PoolError::Address { index, .. } | PoolError::Overlap { index, .. } => *index,
        _ => usize::MAX,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::selector::SelectorError;
    use crate::selector_field::SelectorProblem;
    use crate::v1beta1::ServiceAllocation;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
    use proptest::prelude::*;

    fn mk_spec(addresses: &[&str]) -> IPAddressPoolSpec {
        IPAddressPoolSpec {
            addresses: addresses.iter().map(|s| s.to_string()).collect(),
            auto_assign: true,
            avoid_buggy_ips: false,
            service_allocation: None,
        }
    }

    fn mk_pool(addresses: &[&str]) -> Pool {
        Pool::from_spec(&mk_spec(addresses)).unwrap()
    }

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

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn valid_pool_sorts_ranges_and_counts_per_family() {
        let pool = mk_pool(&[
            "2001:db8::/64",
            "192.0.2.240-192.0.2.250",
            "198.51.100.0/24",
            "192.0.2.7",
        ]);
        let written: Vec<String> = pool.ranges().iter().map(ToString::to_string).collect();
        assert_eq!(
            written,
            [
                "192.0.2.7",
                "192.0.2.240-192.0.2.250",
                "198.51.100.0-198.51.100.255",
                "2001:db8::-2001:db8::ffff:ffff:ffff:ffff"
            ]
        );
        assert_eq!(pool.size(Family::V4), 1 + 11 + 256);
        assert_eq!(pool.size(Family::V6), 1u128 << 64);
        assert_eq!(pool.families(), BTreeSet::from([Family::V4, Family::V6]));
        assert!(pool.contains(ip("192.0.2.245")));
        assert!(pool.contains(ip("192.0.2.7")));
        assert!(!pool.contains(ip("192.0.2.8")));
        assert!(pool.contains(ip("2001:db8::ffff")));
        assert!(!pool.contains(ip("2001:db8:1::")));
        assert!(pool.auto_assign());
        assert!(!pool.avoid_buggy_ips());
        assert!(pool.allocation().is_none());
    }

    #[test]
    fn every_bad_entry_is_reported_in_order() {
        let err = Pool::from_spec(&mk_spec(&[
            "192.0.2.0/24",
            "banana",
            "192.0.2.9-192.0.2.1",
            "192.0.2.1-2001:db8::1",
            "192.0.2.5/24",
        ]))
        .unwrap_err();
        let indices: Vec<usize> = err
            .0
            .iter()
            .map(|e| match e {
                PoolError::Address { index, .. } => *index,
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(indices, [1, 2, 3, 4]);
        assert_eq!(
            err.to_string(),
            "spec.addresses[1]: \"banana\" in address entry \"banana\" is not a valid IP address; \
             spec.addresses[2]: range \"192.0.2.9-192.0.2.1\" starts after it ends; \
             spec.addresses[3]: range \"192.0.2.1-2001:db8::1\" mixes IPv4 and IPv6; \
             spec.addresses[4]: CIDR \"192.0.2.5/24\" has host bits set; write its network 192.0.2.0/24 or a start-end range instead"
        );
    }

    #[test]
    fn empty_address_list_is_an_error() {
        assert_eq!(
            Pool::from_spec(&mk_spec(&[])),
            Err(PoolErrors(vec![PoolError::NoAddresses]))
        );
    }

    #[test]
    fn overlapping_entries_are_reported_pairwise() {
        let err = Pool::from_spec(&mk_spec(&[
            "192.0.2.0/28",
            "198.51.100.1",
            "192.0.2.10-192.0.2.20",
            "198.51.100.1",
            "2001:db8::/64",
            "2001:db8::5",
        ]))
        .unwrap_err();
        assert_eq!(
            err.0,
            vec![
                PoolError::Overlap {
                    index: 2,
                    entry: "192.0.2.10-192.0.2.20".into(),
                    other_index: 0,
                    other_entry: "192.0.2.0/28".into(),
                },
                PoolError::Overlap {
                    index: 3,
                    entry: "198.51.100.1".into(),
                    other_index: 1,
                    other_entry: "198.51.100.1".into(),
                },
                PoolError::Overlap {
                    index: 5,
                    entry: "2001:db8::5".into(),
                    other_index: 4,
                    other_entry: "2001:db8::/64".into(),
                },
            ]
        );
        assert!(err.to_string().starts_with(
            "spec.addresses[2] (192.0.2.10-192.0.2.20) overlaps spec.addresses[0] (192.0.2.0/28)"
        ));
    }

    #[test]
    fn adjacent_entries_and_same_value_in_other_family_do_not_overlap() {
        let pool = mk_pool(&["192.0.2.0/28", "192.0.2.16/28", "::c000:200/124"]);
        assert_eq!(pool.ranges().len(), 3);
    }

    #[test]
    fn service_allocation_problems_are_all_reported() {
        let mut spec = mk_spec(&["192.0.2.0/24", "nope"]);
        spec.service_allocation = Some(ServiceAllocation {
            priority: -1,
            namespaces: vec!["web".into(), "Bad_NS".into(), "".into()],
            namespace_selectors: vec![LabelSelector {
                match_labels: None,
                match_expressions: Some(vec![LabelSelectorRequirement {
                    key: "team".into(),
                    operator: "Like".into(),
                    values: Some(vec!["x".into()]),
                }]),
            }],
            service_selectors: vec![selector(&[("app", "-x")])],
        });
        let err = Pool::from_spec(&spec).unwrap_err();
        let messages: Vec<String> = err.0.iter().map(ToString::to_string).collect();
        assert_eq!(messages.len(), 6, "{messages:#?}");
        assert!(messages[0].starts_with("spec.addresses[1]:"));
        assert_eq!(
            messages[1],
            "spec.serviceAllocation.priority: -1 is negative; use 0 or more"
        );
        assert!(
            messages[2]
                .starts_with("spec.serviceAllocation.namespaces[1]: DNS-1123 label \"Bad_NS\"")
        );
        assert_eq!(
            messages[3],
            "spec.serviceAllocation.namespaces[2]: DNS-1123 label must not be empty"
        );
        assert_eq!(
            err.0[4],
            PoolError::Selector(SelectorFieldError {
                path: "spec.serviceAllocation.namespaceSelectors[0]".into(),
                problem: SelectorProblem::Selector(SelectorError::UnknownOperator {
                    key: "team".into(),
                    operator: "Like".into()
                }),
            })
        );
        assert!(
            messages[5]
                .starts_with("spec.serviceAllocation.serviceSelectors[0]: label value \"-x\"")
        );
    }

    #[test]
    fn allocation_matching() {
        let mut spec = mk_spec(&["192.0.2.0/24"]);
        spec.service_allocation = Some(ServiceAllocation {
            priority: 5,
            namespaces: vec!["web".into()],
            namespace_selectors: vec![selector(&[("team", "edge")])],
            service_selectors: vec![selector(&[("expose", "public")])],
        });
        let pool = Pool::from_spec(&spec).unwrap();
        let alloc = pool.allocation().unwrap();
        let public = labels(&[("expose", "public")]);
        let none = labels(&[]);
        let edge = labels(&[("team", "edge")]);
        assert!(alloc.matches("web", &none, &public), "listed namespace");
        assert!(alloc.matches("other", &edge, &public), "selected namespace");
        assert!(!alloc.matches("other", &none, &public), "neither");
        assert!(
            !alloc.matches("web", &none, &none),
            "service selector fails"
        );
        assert!(alloc.uses_namespace_labels());
        assert_eq!(alloc.priority(), 5);
    }

    #[test]
    fn allocation_without_namespace_restrictions_matches_every_namespace() {
        let mut spec = mk_spec(&["192.0.2.0/24"]);
        spec.service_allocation = Some(ServiceAllocation {
            priority: 0,
            ..Default::default()
        });
        let pool = Pool::from_spec(&spec).unwrap();
        let alloc = pool.allocation().unwrap();
        assert!(alloc.matches("any", &labels(&[]), &labels(&[("a", "b")])));
        assert!(!alloc.uses_namespace_labels());
    }

    #[test]
    fn priority_zero_orders_last() {
        let key = |p: i32| {
            let mut spec = mk_spec(&["192.0.2.0/24"]);
            spec.service_allocation = Some(ServiceAllocation {
                priority: p,
                ..Default::default()
            });
            Pool::from_spec(&spec)
                .unwrap()
                .allocation()
                .unwrap()
                .order_key()
        };
        let mut keys = vec![(key(0), "zero"), (key(10), "ten"), (key(1), "one")];
        keys.sort();
        let order: Vec<&str> = keys.into_iter().map(|(_, n)| n).collect();
        assert_eq!(order, ["one", "ten", "zero"]);
    }

    #[test]
    fn first_overlap_between_pools() {
        let a = mk_pool(&["192.0.2.0/28", "2001:db8::/120"]);
        let b = mk_pool(&["192.0.2.16/28", "2001:db8::80-2001:db8::90"]);
        let c = mk_pool(&["192.0.2.32/28"]);
        assert_eq!(
            a.first_overlap(&b)
                .map(|(x, y)| (x.to_string(), y.to_string())),
            Some((
                "2001:db8::-2001:db8::ff".to_string(),
                "2001:db8::80-2001:db8::90".to_string()
            ))
        );
        assert!(b.first_overlap(&a).is_some());
        assert_eq!(a.first_overlap(&c), None);
        assert_eq!(b.first_overlap(&c), None);
    }

    fn v4_entry() -> impl Strategy<Value = String> {
        (0u32..64, 0u32..8).prop_map(|(start, len)| {
            let base = u32::from(std::net::Ipv4Addr::new(192, 0, 2, 0));
            let a = std::net::Ipv4Addr::from(base + start);
            let b = std::net::Ipv4Addr::from(base + start + len);
            if len == 0 {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        })
    }

    proptest! {
        // Overlap detection agrees with a brute-force pairwise check.
        #[test]
        fn overlap_reports_match_brute_force(entries in proptest::collection::vec(v4_entry(), 1..8)) {
            let refs: Vec<&str> = entries.iter().map(String::as_str).collect();
            let ranges: Vec<AddressRange> = refs.iter().map(|e| parse_address_entry(e).unwrap()).collect();
            let any_overlap = (0..ranges.len()).any(|i| (0..i).any(|j| ranges[i].overlaps(&ranges[j])));
            match Pool::from_spec(&mk_spec(&refs)) {
                Ok(pool) => {
                    prop_assert!(!any_overlap);
                    for w in pool.ranges().windows(2) {
                        prop_assert!(w[0].last() < w[1].first());
                    }
                }
                Err(errs) => {
                    prop_assert!(any_overlap);
                    for e in &errs.0 {
                        match e {
                            PoolError::Overlap { index, other_index, .. } => {
                                prop_assert!(ranges[*index].overlaps(&ranges[*other_index]));
                                prop_assert!(other_index < index);
                            }
                            other => prop_assert!(false, "unexpected {:?}", other),
                        }
                    }
                }
            }
        }

        #[test]
        fn arbitrary_specs_never_panic(
            entries in proptest::collection::vec("[0-9a-f:./ -]{0,24}|\\PC{0,12}", 0..6),
            namespaces in proptest::collection::vec("\\PC{0,12}", 0..3),
            priority in any::<i32>(),
        ) {
            let mut spec = mk_spec(&entries.iter().map(String::as_str).collect::<Vec<_>>());
            spec.service_allocation = Some(ServiceAllocation {
                priority,
                namespaces,
                ..Default::default()
            });
            if let Err(errors) = Pool::from_spec(&spec) {
                prop_assert!(!errors.0.is_empty());
                prop_assert!(!errors.to_string().is_empty());
            }
        }

        #[test]
        fn contains_agrees_with_ranges(entries in proptest::collection::vec(v4_entry(), 1..4), probe in 0u32..80) {
            let refs: Vec<&str> = entries.iter().map(String::as_str).collect();
            if let Ok(pool) = Pool::from_spec(&mk_spec(&refs)) {
                let base = u32::from(std::net::Ipv4Addr::new(192, 0, 2, 0));
                let ip = IpAddr::V4(std::net::Ipv4Addr::from(base + probe));
                prop_assert_eq!(pool.contains(ip), pool.ranges().iter().any(|r| r.contains(ip)));
            }
        }
    }
}
