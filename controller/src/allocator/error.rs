//! Why an allocation was refused. Every message says what to change.

use std::net::IpAddr;

use ironlb_crds::address::Family;

use super::request::{Port, ServiceKey};

/// An allocation, restore or request error. Failed operations change nothing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AllocError {
    #[error(
        "spec.ipFamilies lists {family} twice; a dual-stack service needs one IPv4 and one IPv6 family"
    )]
    DuplicateFamily { family: Family },

    #[error(
        "two {family} addresses given ({first} and {second}); give at most one address per family"
    )]
    TooManyIps {
        family: Family,
        first: IpAddr,
        second: IpAddr,
    },

    #[error("requested IP {ip} is not of the service's IP families ({})", families_text(.families))]
    RequestedFamilyNotInService { ip: IpAddr, families: Vec<Family> },

    #[error(
        "the service is RequireDualStack but no {missing} address was requested; request one address of each family, or none"
    )]
    RequestedIpMissingFamily { missing: Family },

    #[error("address pool {pool:?} does not exist")]
    UnknownPool { pool: String },

    #[error("address pool {pool:?} overlaps the older pool(s) {} and is not used until the overlap is removed", .with.join(", "))]
    PoolInConflict { pool: String, with: Vec<String> },

    #[error(
        "address pool {pool:?} is not eligible for this service: its serviceAllocation does not select the service's namespace or labels"
    )]
    PoolNotEligible { pool: String },

    #[error(
        "no address pool is eligible for this service: no pool with autoAssign enabled exists, or every one of them has a serviceAllocation that excludes the service"
    )]
    NoEligiblePool,

    #[error("no eligible address pool has {} addresses", families_text(.families))]
    FamilyUnavailable { families: Vec<Family> },

    #[error("the service is RequireDualStack ({} and {}) but no eligible address pool has addresses of both families", .families[0], .families[1])]
    DualStackUnavailable { families: [Family; 2] },

    #[error("no free address left in address pool(s) {}; add addresses or release services", .pools.join(", "))]
    Exhausted { pools: Vec<String> },

    #[error("{ip} is not in any address pool")]
    IpNotInAnyPool { ip: IpAddr },

    #[error(
        "{ip} is skipped by address pool {pool:?} because it ends in .0 or .255 and the pool sets avoidBuggyIPs"
    )]
    IpAvoided { ip: IpAddr, pool: String },

    #[error(
        "requested IP {ip} belongs to address pool {pool:?}, whose serviceAllocation does not select this service"
    )]
    RequestedIpNotEligible { ip: IpAddr, pool: String },

    #[error("requested IP {ip} is not in address pool {pool:?} named by the address-pool annotation{}", .actual.as_ref().map(|a| format!(" (it belongs to {a:?})")).unwrap_or_default())]
    RequestedIpOutsideAnnotatedPool {
        ip: IpAddr,
        pool: String,
        actual: Option<String>,
    },

    #[error(
        "{first} (pool {first_pool:?}) and {second} (pool {second_pool:?}) are in different address pools; both addresses of a dual-stack service come from one pool"
    )]
    IpsInDifferentPools {
        first: IpAddr,
        first_pool: String,
        second: IpAddr,
        second_pool: String,
    },

    #[error(
        "{ip} is already used by {holder}; to share it, give both services the same allow-shared-ip key"
    )]
    IpInUse { ip: IpAddr, holder: ServiceKey },

    #[error(
        "{ip} is shared by {holder} under the allow-shared-ip key {held:?}, but this service's key is {wanted:?}"
    )]
    SharingKeyMismatch {
        ip: IpAddr,
        holder: ServiceKey,
        held: String,
        wanted: String,
    },

    #[error(
        "{ip} is shared with {holder}, which already uses port {port}; services sharing an IP need distinct (protocol, port) pairs"
    )]
    PortOverlap {
        ip: IpAddr,
        holder: ServiceKey,
        port: Port,
    },

    #[error(
        "{ip} is shared with {holder}, which has another backend; services sharing an IP must both use externalTrafficPolicy Cluster, or both Local with identical pod selectors"
    )]
    BackendMismatch { ip: IpAddr, holder: ServiceKey },

    #[error("no addresses to restore")]
    NothingToRestore,
}

impl AllocError {
    /// A short, stable label for metrics (`ironlb_controller_allocation_failures_total{reason}`).
    pub fn reason(&self) -> &'static str {
        match self {
            AllocError::DuplicateFamily { .. }
            | AllocError::TooManyIps { .. }
            | AllocError::RequestedFamilyNotInService { .. }
            | AllocError::RequestedIpMissingFamily { .. }
            | AllocError::NothingToRestore => "invalid_request",
            AllocError::UnknownPool { .. } => "unknown_pool",
            AllocError::PoolInConflict { .. } => "pool_conflict",
            AllocError::PoolNotEligible { .. } | AllocError::RequestedIpNotEligible { .. } => {
                "pool_not_eligible"
            }
            AllocError::NoEligiblePool => "no_eligible_pool",
            AllocError::FamilyUnavailable { .. } => "family_unavailable",
            AllocError::DualStackUnavailable { .. } => "dual_stack_unavailable",
            AllocError::Exhausted { .. } => "exhausted",
            AllocError::IpNotInAnyPool { .. }
            | AllocError::IpAvoided { .. }
            | AllocError::RequestedIpOutsideAnnotatedPool { .. }
            | AllocError::IpsInDifferentPools { .. } => "ip_not_in_pool",
            AllocError::IpInUse { .. } => "ip_in_use",
            AllocError::SharingKeyMismatch { .. } => "sharing_key_mismatch",
            AllocError::PortOverlap { .. } => "port_overlap",
            AllocError::BackendMismatch { .. } => "backend_mismatch",
        }
    }
}

fn families_text(families: &[Family]) -> String {
    families
        .iter()
        .map(|f| f.k8s_name())
        .collect::<Vec<_>>()
        .join(" or ")
}
