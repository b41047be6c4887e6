//! `ServiceL2Status`: written by the speaker that announces a Service's addresses, so that
//! `kubectl get servicel2statuses` shows which node answers for which IP.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::null_as_default;
use crate::names::{
    DNS1123_LABEL_MAX, DNS1123_LABEL_PATTERN, DNS1123_SUBDOMAIN_MAX, DNS1123_SUBDOMAIN_PATTERN,
    INTERFACE_NAME_MAX, INTERFACE_NAME_PATTERN,
};
use crate::schema::{MAX_INTERFACES, MAX_IP_LEN, ONE_IP_PER_FAMILY_RULE, ip_pattern};

/// Label on every ServiceL2Status: the name of the announcing node.
pub const LABEL_NODE: &str = "ironlb.io/node";
/// Label on every ServiceL2Status: the name of the announced Service.
pub const LABEL_SERVICE_NAME: &str = "ironlb.io/service-name";
/// Label on every ServiceL2Status: the namespace of the announced Service.
pub const LABEL_SERVICE_NAMESPACE: &str = "ironlb.io/service-namespace";

/// Empty: everything a ServiceL2Status says is in its status.
// Clippy reads the repeated keys of separate `printcolumn(...)` entries as duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "ironlb.io",
    version = "v1beta1",
    kind = "ServiceL2Status",
    plural = "servicel2statuses",
    namespaced,
    status = "ServiceL2StatusStatus",
    derive = "PartialEq",
    derive = "Default",
    category = "ironlb",
    doc = "Which node announces a Service's addresses on layer 2. Written by ironlb's speaker; read-only for users.",
    printcolumn(
        name = "Node",
        type_ = "string",
        json_path = ".status.node",
        description = "The node that answers ARP and NDP for the addresses"
    ),
    printcolumn(
        name = "Service Namespace",
        type_ = "string",
        json_path = ".status.serviceNamespace"
    ),
    printcolumn(
        name = "Service Name",
        type_ = "string",
        json_path = ".status.serviceName"
    ),
    printcolumn(
        name = "IPs",
        type_ = "string",
        json_path = ".status.ips",
        description = "The announced addresses"
    ),
    printcolumn(
        name = "Interfaces",
        type_ = "string",
        json_path = ".status.interfaces[*].name",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
pub struct ServiceL2StatusSpec {}

/// The announcement one speaker makes for one Service.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ServiceL2StatusStatus {
    /// The node that answers ARP and NDP for the Service's addresses.
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    #[schemars(length(max = DNS1123_SUBDOMAIN_MAX), pattern(DNS1123_SUBDOMAIN_PATTERN))]
    pub node: String,

    /// The name of the Service.
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    #[schemars(length(max = DNS1123_LABEL_MAX), pattern(DNS1123_LABEL_PATTERN))]
    pub service_name: String,

    /// The namespace of the Service.
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    #[schemars(length(max = DNS1123_LABEL_MAX), pattern(DNS1123_LABEL_PATTERN))]
    pub service_namespace: String,

    /// The announced addresses: at most one IPv4 and one IPv6 address.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    #[schemars(length(max = 2), inner(length(min = 1, max = MAX_IP_LEN), pattern(ip_pattern())))]
    #[x_kube(validation = Rule::new(ONE_IP_PER_FAMILY_RULE).message("at most one IPv4 and one IPv6 address"))]
    pub ips: Vec<String>,

    /// The interfaces the node announces on.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    #[schemars(length(max = MAX_INTERFACES))]
    pub interfaces: Vec<InterfaceInfo>,
}

/// One interface a speaker announces on.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct InterfaceInfo {
    /// The interface name, as `eth0`.
    #[schemars(length(min = 1, max = INTERFACE_NAME_MAX), pattern(INTERFACE_NAME_PATTERN))]
    pub name: String,
}
