//! Problems in a Service spec that stop the brain from building an allocation request.
//!
//! The API server normally rejects these; a lenient or older server might not, so the brain
//! reports them in an `AllocationFailed` event instead of trusting the object.

use ironlb_crds::address::Family;

/// A Service field the brain cannot use.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("spec.ipFamilies[{index}]: {value:?} is not an IP family; use IPv4 or IPv6")]
    UnknownFamily { index: usize, value: String },
    #[error("spec.ipFamilies lists {family} twice")]
    DuplicateFamily { family: Family },
    #[error("spec.ipFamilies lists {count} families; a Service has one or two")]
    TooManyFamilies { count: usize },
    #[error(
        "spec.ipFamilyPolicy: {value:?} is not a policy; use SingleStack, PreferDualStack or RequireDualStack"
    )]
    UnknownFamilyPolicy { value: String },
    #[error("spec.ports[{index}].protocol: {value:?} is not a protocol; use TCP, UDP or SCTP")]
    UnknownProtocol { index: usize, value: String },
    #[error("spec.ports[{index}].port: {value} is not a port number (1-65535)")]
    BadPort { index: usize, value: i32 },
}
