//! Reasons of the Kubernetes Events ironlb emits, shared by the controller, the speaker and the
//! tests that look for them.

/// On a Service: an address was assigned (Normal).
pub const IP_ALLOCATED: &str = "IPAllocated";
/// On a Service: no address could be assigned; the message says why (Warning).
pub const ALLOCATION_FAILED: &str = "AllocationFailed";
/// On a Service: its address was released (Normal).
pub const IP_RELEASED: &str = "IPReleased";
/// On a Service: an annotation is malformed; the message names it (Warning).
pub const INVALID_ANNOTATION: &str = "InvalidAnnotation";
/// On a Service: a MetalLB annotation was honoured as its ironlb twin (Normal).
pub const METALLB_ANNOTATION: &str = "MetalLBAnnotation";
/// On an IPAddressPool: it overlaps an older pool and is not used (Warning).
pub const POOL_CONFLICT: &str = "PoolConflict";
/// On an IPAddressPool: its spec has problems; the message lists them (Warning).
pub const INVALID_POOL: &str = "InvalidPool";
/// On a Service: a node took over announcing its address (Normal). Spelled as MetalLB does.
pub const NODE_ASSIGNED: &str = "nodeAssigned";
/// On a Service: one of its ports cannot be forwarded because another Service already uses
/// the same address and port, or the same NodePort (Warning).
pub const FORWARD_CONFLICT: &str = "ForwardConflict";
