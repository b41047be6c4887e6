//! The ARP/NDP responder: answers for the IPs this node owns on an interface.
//!
//! [`decide()`] holds the policy and is pure; the socket loop that feeds it lives beside it.

pub mod decide;

pub use decide::{Decision, DropReason, OwnedAddrs, Reply, ReplyKind, decide};
