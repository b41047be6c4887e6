//! The CRD types of `ironlb.io/v1beta1`.
//!
//! Field names and meanings follow MetalLB's `metallb.io/v1beta1`, so a MetalLB manifest moves
//! over by changing its `apiVersion`. Doc comments on the fields become the `description`s that
//! `kubectl explain` shows; they are written for users.
//!
//! The types only describe and (de)serialize. Their meaning (parsed addresses, compiled
//! selectors) lives in [`crate::pool`] and [`crate::advertisement`].

mod ip_address_pool;
mod l2_advertisement;
mod service_l2_status;

pub use ip_address_pool::{
    IPAddressPool, IPAddressPoolSpec, IPAddressPoolStatus, ServiceAllocation, saturating_count,
};
pub use l2_advertisement::{L2Advertisement, L2AdvertisementSpec};
pub use service_l2_status::{
    InterfaceInfo, LABEL_NODE, LABEL_SERVICE_NAME, LABEL_SERVICE_NAMESPACE, ServiceL2Status,
    ServiceL2StatusSpec, ServiceL2StatusStatus,
};

/// The API group of every ironlb kind.
pub const GROUP: &str = "ironlb.io";
/// The API version of this module's kinds.
pub const VERSION: &str = "v1beta1";

/// Deserializes `null` as the type's default. A real API server prunes nulls from custom
/// resources, but one object that fails to deserialize would stall a whole watch, so the types
/// accept them anyway.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de> + Default,
{
    use serde::Deserialize;
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}
