//! ironlb's API: the CRD types of group `ironlb.io`, version `v1beta1`, and what they mean.
//!
//! This crate is pure: no I/O, no kube client, no tokio. Both binaries and the tests share its
//! one definition of what a valid object is. Like every library built on k8s-openapi, it
//! enables no Kubernetes version feature; the binaries do (`cargo test` gets one through
//! the dev-dependencies).
//!
//! # Map
//!
//! | module | owns |
//! |---|---|
//! | [`v1beta1`] | the kinds [`IPAddressPool`], [`L2Advertisement`], [`ServiceL2Status`] (kube `CustomResource`s with schemars schemas), the ServiceL2Status label keys, [`v1beta1::saturating_count`] |
//! | [`pool`] | [`pool::Pool::from_spec`]: a validated pool (sorted disjoint ranges, compiled `serviceAllocation`), every problem as a [`pool::PoolError`] |
//! | [`advertisement`] | [`advertisement::Advertisement::compile`]: `selects_pool`, `selects_node`, `selects_service`, `interfaces` |
//! | [`annotations`] | the Service annotation keys (ironlb's and MetalLB's) and [`annotations::parse_service`] → [`annotations::ServiceRequest`] |
//! | [`class`] | `loadBalancerClass` handling: [`class::DEFAULT_LB_CLASS`], [`class::ClassFilter`], [`class::is_load_balancer`] |
//! | [`conditions`] | the pool condition types and reasons, and [`conditions::set_condition`] |
//! | [`events`] | the Event reasons (`IPAllocated`, `nodeAssigned`, ...) |
//! | [`address`] | parsing of one `spec.addresses` entry into an [`address::AddressRange`]; [`address::Family`]; `u128` address arithmetic |
//! | [`selector`] | compiled label selectors ([`selector::Selector`]) and the any-of rule of selector lists |
//! | [`selector_field`] | compiling a selector-list field with every problem named by its path |
//! | [`names`] | checks for namespace and object names, label keys and values, interface names, and the matching schema patterns |
//! | [`schema`] | the bounds, patterns and CEL rules the types put into their CRD schemas |
//! | [`generate`] | the CRDs as the chart's YAML files (used by the `crdgen` binary) |
//!
//! # Validation happens in two places
//!
//! There is no admission webhook. The CRD schemas make the API server reject malformed objects:
//! types, bounds on every list and string, patterns (address entries, names, interfaces), enums
//! and a few CEL rules. They install on Kubernetes 1.27 and newer, so the CEL uses only the
//! standard library. What a schema cannot say (a range that starts after it ends, overlapping
//! entries, a malformed IPv6 address) is checked by [`pool::Pool::from_spec`] and
//! [`advertisement::Advertisement::compile`], which repeat the schema's checks too, so a stale
//! CRD or a lenient API server cannot slip a bad object past the controller. Their errors name
//! the field (`spec.addresses[2]: ...`) and are meant for conditions and Warning events
//! verbatim; the `*Errors` types join every problem into one line.
//!
//! # Using it
//!
//! The controller, for a pool and a Service:
//!
//! ```
//! use ironlb_crds::address::Family;
//! use ironlb_crds::annotations::{self, IpSource};
//! use ironlb_crds::pool::Pool;
//! use ironlb_crds::v1beta1::IPAddressPoolSpec;
//! use std::collections::BTreeMap;
//!
//! let spec: IPAddressPoolSpec = serde_json::from_value(serde_json::json!({
//!     "addresses": ["192.0.2.240-192.0.2.250", "2001:db8::/64"]
//! })).unwrap();
//! let pool = Pool::from_spec(&spec).expect("valid pool");
//! assert!(pool.auto_assign()); // the default
//! assert_eq!(pool.size(Family::V4), 11);
//! assert_eq!(pool.size(Family::V6), 1 << 64);
//!
//! let bad: IPAddressPoolSpec = serde_json::from_value(serde_json::json!({
//!     "addresses": ["192.0.2.9-192.0.2.1", "banana"]
//! })).unwrap();
//! let errors = Pool::from_spec(&bad).unwrap_err();
//! assert_eq!(errors.0.len(), 2); // every problem, for the Invalid condition's message
//!
//! let annotations = BTreeMap::from([(
//!     "metallb.universe.tf/loadBalancerIPs".to_string(),
//!     "192.0.2.240".to_string(),
//! )]);
//! let request = annotations::parse_annotations(&annotations, None).unwrap();
//! assert_eq!(request.ips, ["192.0.2.240".parse::<std::net::IpAddr>().unwrap()]);
//! assert_eq!(request.ips_from, Some(IpSource::Annotation("metallb.universe.tf/loadBalancerIPs")));
//! assert_eq!(request.translated.len(), 1); // one MetalLBAnnotation event
//! ```
//!
//! The speaker, for an advertisement:
//!
//! ```
//! use ironlb_crds::advertisement::Advertisement;
//! use ironlb_crds::v1beta1::L2AdvertisementSpec;
//! use std::collections::BTreeMap;
//!
//! let spec = L2AdvertisementSpec { ip_address_pools: vec!["gold".into()], ..Default::default() };
//! let ad = Advertisement::compile(&spec).expect("valid advertisement");
//! let no_labels = BTreeMap::new();
//! assert!(ad.selects_pool("gold", &no_labels));
//! assert!(!ad.selects_pool("silver", &no_labels));
//! assert!(ad.selects_node(&no_labels)); // no nodeSelectors: every node
//! assert!(ad.interfaces().is_empty()); // announce on the InternalIP's interface
//! ```
//!
//! # Conventions the other components rely on
//!
//! - Status counts are `int64` and saturate at `i64::MAX` (an IPv6 /64 has 2^64 addresses):
//!   fill them with [`v1beta1::IPAddressPoolStatus::set_counts`].
//! - Pool `conditions` are a map keyed by `type` for server-side apply; update them with
//!   [`conditions::set_condition`], which keeps `lastTransitionTime` while the status holds.
//! - ServiceL2Status objects carry the labels [`v1beta1::LABEL_NODE`],
//!   [`v1beta1::LABEL_SERVICE_NAME`] and [`v1beta1::LABEL_SERVICE_NAMESPACE`]; their data is
//!   in the status subresource, their spec is empty.
//! - The chart's CRDs are generated: after changing a type, run `cargo run --bin crdgen` from the
//!   repository root and commit `charts/ironlb/crds/`. A test fails until you do. Build CRDs
//!   for a cluster with [`generate::crds`], not `Kind::crd()`, so that descriptions match.

pub mod address;
pub mod advertisement;
pub mod annotations;
pub mod class;
pub mod conditions;
pub mod events;
pub mod generate;
pub mod names;
pub mod pool;
pub mod schema;
pub mod selector;
pub mod selector_field;
pub mod v1beta1;

pub use v1beta1::{IPAddressPool, L2Advertisement, ServiceL2Status};

#[cfg(feature = "runtime")]
pub mod runtime;
