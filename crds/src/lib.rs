//! ironlb's API, group `ironlb.io`, version `v1beta1`.
//!
//! This crate owns the CRD types and their semantics: address parsing, selectors and the
//! Service annotations. It does no I/O, so both binaries and the tests share one definition
//! of what a valid object is.

pub mod address;
pub mod selector;
