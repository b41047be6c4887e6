//! The ARP/NDP responder: answers for the IPs this node owns on each interface, and
//! announces takeovers.
//!
//! [`decide()`] holds the policy and is pure, as is [`filter`] (what the kernel lets through).
//! The I/O around them: [`socket`] opens filtered pnet channels, [`serve`] runs one receive
//! loop per socket on its own thread, [`owned`] shares each interface's owned set with those
//! threads, [`gratuitous`] sends the takeover announcements, and [`manager`] keeps one
//! responder per announcing interface.

pub mod decide;
pub mod filter;
pub mod gratuitous;
pub mod manager;
pub mod owned;
pub mod serve;
pub mod socket;

pub use decide::{Decision, DropReason, OwnedAddrs, Reply, ReplyKind, decide};
pub use gratuitous::GratuitousSender;
pub use manager::Responders;
pub use owned::OwnedCell;
