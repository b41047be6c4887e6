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
//!
//! # What the node needs
//! - CAP_NET_ADMIN in the node's network namespace (hostNetwork).
//! - No sysctl: the DNAT happens in prerouting, before routing, and turns the VIP into a local
//!   address, so neither `ip_forward` nor IPv6 forwarding, `route_localnet` or a relaxed
//!   `rp_filter` is involved (the kernel tests run with a fresh namespace's defaults).
//! - Kernel support for nf_tables with the inet family, the `nat` chain type and expression
//!   (`nft_chain_nat`, `nft_nat`), conntrack with NAT (`nf_conntrack`, `nf_nat`,
//!   `nf_defrag_ipv4/6`) and, for SCTP ports, SCTP conntrack. The kernel loads missing modules
//!   itself on the first transaction when the host has them; no `nft` binary is used.
//!
//! # Known limit
//! The DNAT target is `nodeIP:nodePort`, delivered locally. The kernel runs only the first
//! nat chain that binds a connection, so kube-proxy's own NodePort DNAT (iptables or nftables
//! mode) never sees these packets. It works where a local socket serves the NodePort (the lab's
//! stand-in) and should work with kube-proxy's IPVS mode (untested), but not with its iptables
//! or nftables modes; there, use ipMode VIP, where kube-proxy handles the VIP itself.

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
