//! `IPAddressPool`: a set of addresses the controller hands out to LoadBalancer Services.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::null_as_default;
use crate::address::Family;
use crate::names::{DNS1123_LABEL_MAX, DNS1123_LABEL_PATTERN};
use crate::schema::{
    MAX_ADDRESS_LEN, MAX_ADDRESSES, MAX_CONDITIONS, MAX_NAMES, address_entry_pattern, selector_list,
};

/// The addresses of an IPAddressPool and the rules for handing them out.
// Clippy reads the repeated keys of separate `printcolumn(...)` entries as duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "ironlb.io",
    version = "v1beta1",
    kind = "IPAddressPool",
    namespaced,
    status = "IPAddressPoolStatus",
    derive = "PartialEq",
    category = "ironlb",
    doc = "A pool of external IP addresses that ironlb assigns to Services of type LoadBalancer. Create pools in the namespace ironlb is installed in.",
    printcolumn(
        name = "Addresses",
        type_ = "string",
        json_path = ".spec.addresses",
        description = "The address entries of the pool"
    ),
    printcolumn(
        name = "Auto Assign",
        type_ = "boolean",
        json_path = ".spec.autoAssign",
        description = "Whether Services that do not ask for this pool get addresses from it"
    ),
    printcolumn(
        name = "Assigned",
        type_ = "integer",
        json_path = ".status.assigned",
        description = "Addresses assigned to Services"
    ),
    printcolumn(
        name = "Available",
        type_ = "integer",
        json_path = ".status.available",
        description = "Addresses still free"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status",
        description = "Whether the pool is valid and in use"
    ),
    printcolumn(
        name = "Avoid Buggy IPs",
        type_ = "boolean",
        json_path = ".spec.avoidBuggyIPs",
        priority = 1
    ),
    printcolumn(
        name = "Assigned IPv4",
        type_ = "integer",
        json_path = ".status.assignedIPv4",
        priority = 1
    ),
    printcolumn(
        name = "Available IPv4",
        type_ = "integer",
        json_path = ".status.availableIPv4",
        priority = 1
    ),
    printcolumn(
        name = "Assigned IPv6",
        type_ = "integer",
        json_path = ".status.assignedIPv6",
        priority = 1
    ),
    printcolumn(
        name = "Available IPv6",
        type_ = "integer",
        json_path = ".status.availableIPv6",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct IPAddressPoolSpec {
    /// The addresses of the pool. Each entry is a CIDR (`192.0.2.0/24`, `2001:db8::/64`), an
    /// inclusive range `start-end` (`192.0.2.10-192.0.2.20`) or a single address
    /// (`192.0.2.7`). IPv4 and IPv6 entries may be mixed in one pool, but both ends of a range
    /// must be of one family. A CIDR must name its network: `192.0.2.5/24` is rejected. Entries
    /// must not overlap each other or another pool's; an overlapping pool is marked `Conflict`
    /// and not used.
    #[schemars(
        length(min = 1, max = MAX_ADDRESSES),
        inner(length(min = 1, max = MAX_ADDRESS_LEN), pattern(address_entry_pattern())),
        extend("x-kubernetes-list-type" = "set")
    )]
    pub addresses: Vec<String>,

    /// Whether Services that do not name this pool get addresses from it. Set it to false to
    /// keep the pool for Services that ask for it with the `ironlb.io/address-pool` annotation
    /// or for one of its addresses. Defaults to true.
    #[serde(default = "default_true", deserialize_with = "null_as_default_true")]
    pub auto_assign: bool,

    /// Skip IPv4 addresses ending in `.0` or `.255`, which some old or buggy network equipment
    /// drops. Defaults to false.
    #[serde(
        default,
        rename = "avoidBuggyIPs",
        deserialize_with = "null_as_default"
    )]
    pub avoid_buggy_ips: bool,

    /// Restricts the pool to some namespaces or Services and orders it before other pools for
    /// them. Without it the pool serves every Service (when `autoAssign` is true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_allocation: Option<ServiceAllocation>,
}

fn default_true() -> bool {
    true
}

fn null_as_default_true<'de, D>(deserializer: D) -> Result<bool, D::Error>
where
    D: serde::Deserializer<'de>,
{
    Ok(Option::<bool>::deserialize(deserializer)?.unwrap_or(true))
}

/// Which Services a pool serves first, and in which order among pools.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAllocation {
    /// Order among the pools whose `serviceAllocation` matches a Service: lower numbers are
    /// tried first, and 0 (the default) comes after every positive number. Pools of equal
    /// priority are tried in name order.
    #[serde(default, deserialize_with = "null_as_default")]
    #[schemars(range(min = 0))]
    pub priority: i32,

    /// Namespaces whose Services this pool serves. A Service matches when its namespace is
    /// listed here or matches one of `namespaceSelectors`; with neither set, every namespace
    /// matches.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    #[schemars(
        length(max = MAX_NAMES),
        inner(length(min = 1, max = DNS1123_LABEL_MAX), pattern(DNS1123_LABEL_PATTERN)),
        extend("x-kubernetes-list-type" = "set")
    )]
    pub namespaces: Vec<String>,

    /// Label selectors on Namespaces. A Service whose namespace matches any of them is served,
    /// in addition to the Services of `namespaces`.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    #[schemars(transform = selector_list)]
    pub namespace_selectors: Vec<LabelSelector>,

    /// Label selectors on Services. When set, a Service must also match one of them.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    #[schemars(transform = selector_list)]
    pub service_selectors: Vec<LabelSelector>,
}

/// What the controller observed about a pool. Counts saturate at 9223372036854775807, the
/// largest value the API can carry: an IPv6 /64 alone holds 2^64 addresses.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct IPAddressPoolStatus {
    /// Addresses of this pool assigned to Services, both families together.
    #[serde(default, deserialize_with = "null_as_default")]
    #[schemars(range(min = 0))]
    pub assigned: i64,

    /// Addresses of this pool still free, both families together. Saturates for IPv6 pools.
    #[serde(default, deserialize_with = "null_as_default")]
    #[schemars(range(min = 0))]
    pub available: i64,

    /// IPv4 addresses of this pool assigned to Services.
    #[serde(default, rename = "assignedIPv4", deserialize_with = "null_as_default")]
    #[schemars(range(min = 0))]
    pub assigned_ipv4: i64,

    /// IPv6 addresses of this pool assigned to Services.
    #[serde(default, rename = "assignedIPv6", deserialize_with = "null_as_default")]
    #[schemars(range(min = 0))]
    pub assigned_ipv6: i64,

    /// IPv4 addresses of this pool still free.
    #[serde(
        default,
        rename = "availableIPv4",
        deserialize_with = "null_as_default"
    )]
    #[schemars(range(min = 0))]
    pub available_ipv4: i64,

    /// IPv6 addresses of this pool still free. Saturates: a /64 reports 9223372036854775807.
    #[serde(
        default,
        rename = "availableIPv6",
        deserialize_with = "null_as_default"
    )]
    #[schemars(range(min = 0))]
    pub available_ipv6: i64,

    /// `Ready` is true while the pool hands out addresses. `Invalid` is true when the spec has
    /// a problem, named in its message. `Conflict` is true when the pool overlaps an older
    /// pool, which keeps the shared addresses.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    #[schemars(length(max = MAX_CONDITIONS))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
}

/// Converts an address count to the API's int64, saturating at `i64::MAX`.
pub fn saturating_count(count: u128) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

impl IPAddressPoolStatus {
    /// Records the counts of one family and recomputes the totals, saturating as documented on
    /// the type.
    pub fn set_counts(&mut self, family: Family, assigned: u128, available: u128) {
        match family {
            Family::V4 => {
                self.assigned_ipv4 = saturating_count(assigned);
                self.available_ipv4 = saturating_count(available);
            }
            Family::V6 => {
                self.assigned_ipv6 = saturating_count(assigned);
                self.available_ipv6 = saturating_count(available);
            }
        }
        self.assigned = self.assigned_ipv4.saturating_add(self.assigned_ipv6);
        self.available = self.available_ipv4.saturating_add(self.available_ipv6);
    }

    /// The condition of type `type_`, if present.
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_saturate_instead_of_wrapping() {
        assert_eq!(saturating_count(0), 0);
        assert_eq!(saturating_count(11), 11);
        assert_eq!(saturating_count(i64::MAX as u128), i64::MAX);
        assert_eq!(saturating_count(1u128 << 64), i64::MAX);
        assert_eq!(saturating_count(u128::MAX), i64::MAX);
    }

    #[test]
    fn set_counts_keeps_totals_consistent() {
        let mut status = IPAddressPoolStatus::default();
        status.set_counts(Family::V4, 3, 8);
        assert_eq!(
            (status.assigned, status.available),
            (3, 8),
            "totals of one family"
        );
        status.set_counts(Family::V6, 2, 1u128 << 64);
        assert_eq!(status.assigned_ipv4, 3);
        assert_eq!(status.assigned_ipv6, 2);
        assert_eq!(status.assigned, 5);
        assert_eq!(status.available_ipv4, 8);
        assert_eq!(status.available_ipv6, i64::MAX);
        assert_eq!(status.available, i64::MAX, "the total saturates too");
        status.set_counts(Family::V6, 0, 0);
        assert_eq!((status.assigned, status.available), (3, 8));
    }
}
