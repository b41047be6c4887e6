//! `L2Advertisement`: which pools are announced on layer 2, from which nodes, on which
//! interfaces.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::null_as_default;
use crate::names::{
    DNS1123_SUBDOMAIN_MAX, DNS1123_SUBDOMAIN_PATTERN, INTERFACE_NAME_MAX, INTERFACE_NAME_PATTERN,
};
use crate::schema::{INTERFACE_NAME_RULE, MAX_INTERFACES, MAX_NAMES, selector_list};

/// Which addresses are announced with ARP and NDP, and by which nodes.
// Clippy reads the repeated keys of separate `printcolumn(...)` entries as duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "ironlb.io",
    version = "v1beta1",
    kind = "L2Advertisement",
    namespaced,
    derive = "PartialEq",
    derive = "Default",
    category = "ironlb",
    doc = "Announces the addresses of some IPAddressPools on the local network segment: one elected node answers ARP (IPv4) and NDP (IPv6) for each address. Create it in the namespace ironlb is installed in.",
    printcolumn(
        name = "IPAddressPools",
        type_ = "string",
        json_path = ".spec.ipAddressPools",
        description = "Pools announced by name; empty with no selector means all pools"
    ),
    printcolumn(
        name = "IPAddressPool Selectors",
        type_ = "string",
        json_path = ".spec.ipAddressPoolSelectors",
        description = "Pools announced by label"
    ),
    printcolumn(
        name = "Interfaces",
        type_ = "string",
        json_path = ".spec.interfaces",
        description = "Interfaces to announce on; empty means the interface of the node's InternalIP"
    ),
    printcolumn(
        name = "Node Selectors",
        type_ = "string",
        json_path = ".spec.nodeSelectors",
        priority = 1
    ),
    printcolumn(
        name = "Service Selectors",
        type_ = "string",
        json_path = ".spec.serviceSelectors",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct L2AdvertisementSpec {
    /// Names of IPAddressPools, in this namespace, whose addresses are announced. A pool is
    /// announced when it is listed here or matches one of `ipAddressPoolSelectors`. With
    /// neither set, every pool is announced.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    #[schemars(
        length(max = MAX_NAMES),
        inner(length(min = 1, max = DNS1123_SUBDOMAIN_MAX), pattern(DNS1123_SUBDOMAIN_PATTERN)),
        extend("x-kubernetes-list-type" = "set")
    )]
    pub ip_address_pools: Vec<String>,

    /// Label selectors on IPAddressPools whose addresses are announced, in addition to the
    /// pools of `ipAddressPools`.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    #[schemars(transform = selector_list)]
    pub ip_address_pool_selectors: Vec<LabelSelector>,

    /// Label selectors on Nodes that may announce. A node must match one of them; with none
    /// set, every node may. Nodes labelled
    /// `node.kubernetes.io/exclude-from-external-load-balancers` never announce.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    #[schemars(transform = selector_list)]
    pub node_selectors: Vec<LabelSelector>,

    /// Label selectors on Services whose addresses are announced. A Service must match one of
    /// them; with none set, every Service with an address from the selected pools is.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    #[schemars(transform = selector_list)]
    pub service_selectors: Vec<LabelSelector>,

    /// Network interfaces to answer ARP and NDP on, as `eth0`. With none set, the speaker uses
    /// the interface that holds the node's InternalIP.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    #[schemars(
        length(max = MAX_INTERFACES),
        inner(length(min = 1, max = INTERFACE_NAME_MAX), pattern(INTERFACE_NAME_PATTERN)),
        extend("x-kubernetes-list-type" = "set")
    )]
    #[x_kube(validation = Rule::new(INTERFACE_NAME_RULE).message("'.' and '..' are not interface names"))]
    pub interfaces: Vec<String>,
}
