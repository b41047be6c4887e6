//! Kernel forwarding for ipMode Proxy: on the node that owns a VIP, nftables hands
//! `VIP:port/proto` to `thisNodeIP:nodePort`, where kube-proxy (or whatever serves NodePorts)
//! takes over, and drops sources outside `loadBalancerSourceRanges`.
//!
//! The destination is rewritten statelessly *before conntrack*, and the replies are rewritten
//! back after source NAT, so that conntrack and kube-proxy's own NodePort NAT see an ordinary
//! connection to `nodeIP:nodePort` (the [`render`](mod@render) module describes the chains
//! and why a DNAT cannot do this). The client's source address is preserved.
//!
//! Layers, from pure to I/O:
//! - [`entry`]: validated [`ForwardEntry`] values, the input;
//! - [`mark`]: [`MarkBit`], the mark bit that tags rewritten connections;
//! - [`ruleset`]: the [`Ruleset`] model and its nft-syntax `Display`;
//! - [`render`](render()): entries to ruleset, and [`conflicts`];
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
//! - No sysctl of its own: the rewritten packet is addressed to the node itself, so
//!   `ip_forward`, `route_localnet` and `rp_filter` play no part beyond what kube-proxy needs
//!   anyway (the kernel tests run with a fresh namespace's defaults, plus forwarding where a
//!   simulated pod sits behind the node).
//! - nf_tables with the inet family, verdict maps (`nft_set_hash`, built into `nf_tables`),
//!   the `ct` expression (`nft_ct`, which brings `nf_conntrack` and `nf_defrag_ipv4/6`) and,
//!   for SCTP, SCTP conntrack and `crc32c` for the checksum. No NAT module is used by ironlb.
//!   The kernel loads missing modules itself on the first transaction when the host has them;
//!   no `nft` binary is used.
//! - A free bit in both the packet mark and the conntrack mark ([`MarkBit`], default `0x2000`).
//!
//! # Known limits
//! - kube-proxy replacements that serve NodePorts in eBPF at the network device (Cilium's
//!   kube-proxy replacement, Calico's eBPF data plane) look at the packet before netfilter,
//!   while its destination is still the VIP; the rewrite comes too late for them and the packet
//!   reaches a host stack where nothing listens on `nodeIP:nodePort`. Use ipMode VIP there, so
//!   that the CNI handles the VIP itself. kube-proxy's IPVS mode should work (IPVS undoes its
//!   NAT before postrouting) but is untested.
//! - Per packet the cost is one hash lookup per hook whatever the number of entries, but the
//!   transaction grows with it: about 2.7 KiB of netlink per entry with a source range
//!   (10,000 entries: a 26 MiB batch, held briefly in memory, applied in about 1.5 s).
//! - ICMP errors the node or a router behind it sends about a forwarded connection (port
//!   unreachable, fragmentation needed) quote the NodePort, not the VIP, so the client cannot
//!   match them to its socket: it sees a timeout instead of "refused", and path MTU discovery
//!   through the node relies on a uniform MTU, as on a LAN.
//! - The node's own processes reaching a VIP it owns go through the output hook, which this
//!   table does not handle (as before).
//! - SCTP packets get their CRC32c recomputed after the port rewrite, so a packet corrupted on
//!   the wire before the node is not detected by the receiver's checksum.

pub mod entry;
pub mod expr;
pub mod forwarder;
pub mod mark;
pub mod netlink_msg;
pub mod nft;
pub mod render;
pub mod reply;
pub mod ruleset;

pub use entry::{EntryError, ForwardEntry, L4Protocol, SourcePolicy, SourceRange};
pub use forwarder::{Forwarder, SyncOutcome};
pub use mark::{MarkBit, MarkBitError};
pub use nft::{MessageFailure, NetlinkNft, NftBackend, NftError};
pub use render::{ConflictKind, EntryConflict, conflicts, render};
pub use ruleset::{Ruleset, TABLE_NAME};
