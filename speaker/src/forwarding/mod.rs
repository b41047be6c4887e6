//! Kernel forwarding for ipMode Proxy: on the node that owns a VIP, nftables DNATs
//! `VIP:port/proto` to `thisNodeIP:nodePort` and drops sources outside
//! `loadBalancerSourceRanges`.
//!
//! Layers, from pure to I/O:
//! - [`entry`]: validated [`ForwardEntry`] values, the input;
//! - [`ruleset`]: the [`Ruleset`] model, [`render`] and its nft-syntax `Display`;
//! - [`expr`] and [`netlink_msg`]: lowering to kernel expressions and the nfnetlink batch bytes;
//! - [`reply`]: decoding the kernel's ACKs and errors;
//! - [`nft`]: [`NftBackend`] and [`NetlinkNft`], which talk to the kernel;
//! - [`forwarder`]: [`Forwarder`], which keeps the kernel in step with the entries.
//!
//! ironlb owns exactly one table, `inet ironlb`, and every change replaces it in one atomic
//! transaction.

pub mod entry;
pub mod expr;
pub mod forwarder;
pub mod netlink_msg;
pub mod nft;
pub mod reply;
pub mod ruleset;

pub use entry::{EntryError, ForwardEntry, L4Protocol, SourcePolicy, SourceRange};
pub use forwarder::{Forwarder, SyncOutcome};
pub use nft::{MessageFailure, NetlinkNft, NftBackend, NftError};
pub use ruleset::{EntryConflict, Ruleset, TABLE_NAME, conflicts, render};
