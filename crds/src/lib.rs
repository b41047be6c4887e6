//! ironlb's API, group `ironlb.io`, version `v1beta1`.

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
