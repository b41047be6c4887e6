//! Kernel nf_tables expressions, and the lowering of model [`Expr`]s into them.
//!
//! The kernel knows no "ip daddr": it runs small register programs. A match loads a field into
//! a register (`meta`, `ct`, `payload`), optionally masks it (`bitwise`) and compares it
//! (`cmp`); a verdict is an `immediate` into the verdict register; a write loads a value into a
//! register and stores it (`meta`/`ct` with a source register, `payload` with checksum
//! instructions); a map dispatch concatenates fields into consecutive registers and `lookup`s
//! them with the verdict register as destination. The lowering mirrors what nft emits for the
//! same rule text, including the `meta nfproto`/`meta l4proto` checks nft inserts before an
//! address or protocol-specific expression, so `nft list` prints our rules back in the usual
//! syntax and the golden batch matches nft's byte for byte.
//!
//! Pure: encoding writes attributes into a byte buffer, nothing else.

use std::net::IpAddr;

use ironlb_crds::address::Family;

use super::entry::{L4Protocol, SourceRange, family_bits};
use super::mark::MarkBit;
use super::netlink_msg::{AttrWriter, uapi};
use super::ruleset::{Endpoint, Expr, PortHeader, Rule};

/// A register number (`enum nft_registers`): 0 is the verdict, 1-4 the 16-byte registers,
/// 8-23 the 32-bit registers that overlay them.
pub type Register = u32;

/// Which header a `payload` expression reads or writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PayloadBase {
    Network,
    Transport,
}

/// What a `meta` expression loads or stores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetaKey {
    /// The netfilter family of the packet (IPv4 or IPv6 in an inet table).
    NfProto,
    /// The transport protocol number, past any IPv6 extension headers.
    L4Proto,
    /// The packet mark (`skb->mark`), a host-order u32.
    Mark,
}

/// What a `ct` expression loads or stores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CtKey {
    /// 0 for the original direction, 1 for replies.
    Direction,
    /// The connection's mark, a host-order u32.
    Mark,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Neq,
}

/// How a payload write keeps checksums right (`NFTA_PAYLOAD_CSUM_TYPE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChecksumType {
    None,
    /// The internet checksum at `csum_offset` is updated incrementally.
    Inet,
    /// The SCTP CRC32c is recomputed over the whole packet.
    Sctp,
}

/// A verdict an `immediate` sets or a map element holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Accept,
    Drop,
    Return,
    Jump(String),
    Goto(String),
}

/// What an `immediate` loads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImmediateData {
    Value(Vec<u8>),
    Verdict(Verdict),
}

/// One kernel expression, with the values nft would send for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KernelExpr {
    Meta {
        key: MetaKey,
        dreg: Register,
    },
    MetaSet {
        key: MetaKey,
        sreg: Register,
    },
    Ct {
        key: CtKey,
        dreg: Register,
    },
    CtSet {
        key: CtKey,
        sreg: Register,
    },
    Cmp {
        op: CmpOp,
        sreg: Register,
        data: Vec<u8>,
    },
    Payload {
        base: PayloadBase,
        offset: u32,
        len: u32,
        dreg: Register,
    },
    /// A write; `csum_flags` holds `NFT_PAYLOAD_L4CSUM_PSEUDOHDR` for address writes.
    PayloadSet {
        base: PayloadBase,
        offset: u32,
        len: u32,
        sreg: Register,
        csum_type: ChecksumType,
        csum_offset: u32,
        csum_flags: u32,
    },
    /// `dreg = (sreg & mask) ^ xor`. nft names the operation (`NFTA_BITWISE_OP`) for mark
    /// arithmetic but not for prefix masks; the kernel's default is the same boolean op.
    Bitwise {
        sreg: Register,
        dreg: Register,
        mask: Vec<u8>,
        xor: Vec<u8>,
        explicit_op: bool,
    },
    Immediate {
        dreg: Register,
        data: ImmediateData,
    },
    Counter,
    Dnat {
        family: u32,
        reg_addr: Register,
        reg_port: Register,
    },
    /// Looks the registers from `sreg` on up in `set`; a verdict map writes the verdict
    /// register. `set_id` names a set created in the same batch.
    Lookup {
        set: String,
        set_id: Option<u32>,
        sreg: Register,
        dreg: Register,
    },
}

/// Network-header offsets of the addresses, per family: (source, destination, length).
fn address_offsets(family: Family) -> (u32, u32, u32) {
    match family {
        Family::V4 => (12, 16, 4),
        Family::V6 => (8, 24, 16),
    }
}

fn nfproto_of(family: Family) -> u32 {
    match family {
        Family::V4 => uapi::NFPROTO_IPV4,
        Family::V6 => uapi::NFPROTO_IPV6,
    }
}

fn octets(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    }
}

/// The register nft uses for a concatenation field that starts `words` 32-bit words after the
/// start of register 1: the 16-byte register when it is aligned to one, else the 32-bit one.
pub fn concat_register(words: u32) -> Register {
    if words.is_multiple_of(4) {
        uapi::NFT_REG_1 + words / 4
    } else {
        uapi::NFT_REG32_00 + words
    }
}

/// Marks live in registers as host-order u32s.
fn mark_bytes(value: u32) -> Vec<u8> {
    value.to_ne_bytes().to_vec()
}

/// The `meta nfproto`/`meta l4proto` checks already made in a rule, so that each is emitted
/// once, where nft would emit it.
#[derive(Default)]
struct Context {
    family: Option<Family>,
    l4: Option<L4Protocol>,
}

impl Context {
    fn require_family(&mut self, out: &mut Vec<KernelExpr>, family: Family) {
        if self.family != Some(family) {
            out.push(KernelExpr::Meta {
                key: MetaKey::NfProto,
                dreg: uapi::NFT_REG_1,
            });
            out.push(KernelExpr::Cmp {
                op: CmpOp::Eq,
                sreg: uapi::NFT_REG_1,
                data: vec![nfproto_of(family) as u8],
            });
            self.family = Some(family);
        }
    }

    fn require_l4(&mut self, out: &mut Vec<KernelExpr>, protocol: L4Protocol) {
        if self.l4 != Some(protocol) {
            out.extend(l4proto_match(protocol));
            self.l4 = Some(protocol);
        }
    }
}

fn l4proto_match(protocol: L4Protocol) -> [KernelExpr; 2] {
    [
        KernelExpr::Meta {
            key: MetaKey::L4Proto,
            dreg: uapi::NFT_REG_1,
        },
        KernelExpr::Cmp {
            op: CmpOp::Eq,
            sreg: uapi::NFT_REG_1,
            data: vec![protocol.number()],
        },
    ]
}

/// `(reg & bit) == bit` on a loaded mark.
fn mark_test(bit: MarkBit) -> [KernelExpr; 2] {
    [
        KernelExpr::Bitwise {
            sreg: uapi::NFT_REG_1,
            dreg: uapi::NFT_REG_1,
            mask: mark_bytes(bit.value()),
            xor: mark_bytes(0),
            explicit_op: true,
        },
        KernelExpr::Cmp {
            op: CmpOp::Eq,
            sreg: uapi::NFT_REG_1,
            data: mark_bytes(bit.value()),
        },
    ]
}

/// `reg = (reg & ~bit) ^ (bit if set)`: sets or clears one bit, keeping the others.
fn mark_update(bit: MarkBit, set: bool) -> KernelExpr {
    KernelExpr::Bitwise {
        sreg: uapi::NFT_REG_1,
        dreg: uapi::NFT_REG_1,
        mask: mark_bytes(bit.others()),
        xor: mark_bytes(if set { bit.value() } else { 0 }),
        explicit_op: true,
    }
}

fn verdict(v: Verdict) -> KernelExpr {
    KernelExpr::Immediate {
        dreg: uapi::NFT_REG_VERDICT,
        data: ImmediateData::Verdict(v),
    }
}

/// Writes an address: the IPv4 header checksum is updated in place, and the L4 checksum for
/// the pseudo-header change (the kernel skips UDP datagrams whose checksum is 0).
fn address_write(ip: IpAddr, endpoint: Endpoint) -> [KernelExpr; 2] {
    let family = Family::of(ip);
    let (saddr, daddr, len) = address_offsets(family);
    let offset = match endpoint {
        Endpoint::Source => saddr,
        Endpoint::Destination => daddr,
    };
    let (csum_type, csum_offset) = match family {
        Family::V4 => (ChecksumType::Inet, 10),
        Family::V6 => (ChecksumType::None, 0),
    };
    [
        KernelExpr::Immediate {
            dreg: uapi::NFT_REG_1,
            data: ImmediateData::Value(octets(ip)),
        },
        KernelExpr::PayloadSet {
            base: PayloadBase::Network,
            offset,
            len,
            sreg: uapi::NFT_REG_1,
            csum_type,
            csum_offset,
            csum_flags: uapi::NFT_PAYLOAD_L4CSUM_PSEUDOHDR,
        },
    ]
}

/// Writes a port, with the checksum update its header implies.
fn port_write(port: u16, header: PortHeader, endpoint: Endpoint) -> [KernelExpr; 2] {
    let offset = match endpoint {
        Endpoint::Source => 0,
        Endpoint::Destination => 2,
    };
    let (csum_type, csum_offset) = match header {
        PortHeader::Transport => (ChecksumType::None, 0),
        PortHeader::Protocol(L4Protocol::Tcp) => (ChecksumType::Inet, 16),
        PortHeader::Protocol(L4Protocol::Udp) => (ChecksumType::Inet, 6),
        PortHeader::Protocol(L4Protocol::Sctp) => (ChecksumType::Sctp, 8),
    };
    [
        KernelExpr::Immediate {
            dreg: uapi::NFT_REG_1,
            data: ImmediateData::Value(port.to_be_bytes().to_vec()),
        },
        KernelExpr::PayloadSet {
            base: PayloadBase::Transport,
            offset,
            len: 2,
            sreg: uapi::NFT_REG_1,
            csum_type,
            csum_offset,
            csum_flags: 0,
        },
    ]
}

/// `addr . meta l4proto . th port` into registers 1.., looked up in `map` for a verdict.
fn map_lookup(
    endpoint: Endpoint,
    family: Family,
    map: &str,
    set_id: Option<u32>,
) -> [KernelExpr; 4] {
    let (saddr, daddr, len) = address_offsets(family);
    let (addr_offset, port_offset) = match endpoint {
        Endpoint::Source => (saddr, 0),
        Endpoint::Destination => (daddr, 2),
    };
    let words = len / 4;
    [
        KernelExpr::Payload {
            base: PayloadBase::Network,
            offset: addr_offset,
            len,
            dreg: uapi::NFT_REG_1,
        },
        KernelExpr::Meta {
            key: MetaKey::L4Proto,
            dreg: concat_register(words),
        },
        KernelExpr::Payload {
            base: PayloadBase::Transport,
            offset: port_offset,
            len: 2,
            dreg: concat_register(words + 1),
        },
        KernelExpr::Lookup {
            set: map.to_string(),
            set_id,
            sreg: uapi::NFT_REG_1,
            dreg: uapi::NFT_REG_VERDICT,
        },
    ]
}

/// Lowers a model rule to kernel expressions. `set_id` gives the batch-local id of a map
/// created in the same transaction (`None` for a map the kernel already holds).
pub fn lower_rule(rule: &Rule, set_id: &dyn Fn(&str) -> Option<u32>) -> Vec<KernelExpr> {
    let mut out = Vec::new();
    let mut ctx = Context::default();
    for expr in &rule.exprs {
        match expr {
            Expr::DestAddr(ip) => {
                let family = Family::of(*ip);
                ctx.require_family(&mut out, family);
                let (_, daddr, len) = address_offsets(family);
                out.push(KernelExpr::Payload {
                    base: PayloadBase::Network,
                    offset: daddr,
                    len,
                    dreg: uapi::NFT_REG_1,
                });
                out.push(KernelExpr::Cmp {
                    op: CmpOp::Eq,
                    sreg: uapi::NFT_REG_1,
                    data: octets(*ip),
                });
            }
            Expr::SourcePrefix(range) => {
                ctx.require_family(&mut out, range.family());
                out.extend(lower_source_prefix(range, CmpOp::Eq));
            }
            Expr::L4Proto(proto) => {
                out.extend(l4proto_match(*proto));
                ctx.l4 = Some(*proto);
            }
            Expr::DestPort(port) => {
                out.push(KernelExpr::Payload {
                    base: PayloadBase::Transport,
                    offset: 2,
                    len: 2,
                    dreg: uapi::NFT_REG_1,
                });
                out.push(KernelExpr::Cmp {
                    op: CmpOp::Eq,
                    sreg: uapi::NFT_REG_1,
                    data: port.to_be_bytes().to_vec(),
                });
            }
            Expr::UdpChecksumZero(zero) => {
                ctx.require_l4(&mut out, L4Protocol::Udp);
                out.push(KernelExpr::Payload {
                    base: PayloadBase::Transport,
                    offset: 6,
                    len: 2,
                    dreg: uapi::NFT_REG_1,
                });
                out.push(KernelExpr::Cmp {
                    op: if *zero { CmpOp::Eq } else { CmpOp::Neq },
                    sreg: uapi::NFT_REG_1,
                    data: vec![0, 0],
                });
            }
            Expr::Lookup {
                endpoint,
                family,
                map,
            } => {
                ctx.require_family(&mut out, *family);
                out.extend(map_lookup(*endpoint, *family, map, set_id(map)));
            }
            Expr::CtDirectionReply => {
                out.push(KernelExpr::Ct {
                    key: CtKey::Direction,
                    dreg: uapi::NFT_REG_1,
                });
                out.push(KernelExpr::Cmp {
                    op: CmpOp::Eq,
                    sreg: uapi::NFT_REG_1,
                    data: vec![uapi::IP_CT_DIR_REPLY],
                });
            }
            Expr::MarkHas(bit) => {
                out.push(KernelExpr::Meta {
                    key: MetaKey::Mark,
                    dreg: uapi::NFT_REG_1,
                });
                out.extend(mark_test(*bit));
            }
            Expr::MarkAdd(bit) | Expr::MarkClear(bit) => {
                out.push(KernelExpr::Meta {
                    key: MetaKey::Mark,
                    dreg: uapi::NFT_REG_1,
                });
                out.push(mark_update(*bit, matches!(expr, Expr::MarkAdd(_))));
                out.push(KernelExpr::MetaSet {
                    key: MetaKey::Mark,
                    sreg: uapi::NFT_REG_1,
                });
            }
            Expr::CtMarkHas(bit) => {
                out.push(KernelExpr::Ct {
                    key: CtKey::Mark,
                    dreg: uapi::NFT_REG_1,
                });
                out.extend(mark_test(*bit));
            }
            Expr::CtMarkAdd(bit) => {
                out.push(KernelExpr::Ct {
                    key: CtKey::Mark,
                    dreg: uapi::NFT_REG_1,
                });
                out.push(mark_update(*bit, true));
                out.push(KernelExpr::CtSet {
                    key: CtKey::Mark,
                    sreg: uapi::NFT_REG_1,
                });
            }
            Expr::SetDestAddr(ip) => {
                ctx.require_family(&mut out, Family::of(*ip));
                out.extend(address_write(*ip, Endpoint::Destination));
            }
            Expr::SetSourceAddr(ip) => {
                ctx.require_family(&mut out, Family::of(*ip));
                out.extend(address_write(*ip, Endpoint::Source));
            }
            Expr::SetDestPort { port, header } | Expr::SetSourcePort { port, header } => {
                if let PortHeader::Protocol(proto) = header {
                    ctx.require_l4(&mut out, *proto);
                }
                let endpoint = match expr {
                    Expr::SetDestPort { .. } => Endpoint::Destination,
                    _ => Endpoint::Source,
                };
                out.extend(port_write(*port, *header, endpoint));
            }
            Expr::Counter => out.push(KernelExpr::Counter),
            Expr::Accept => out.push(verdict(Verdict::Accept)),
            Expr::Drop => out.push(verdict(Verdict::Drop)),
            Expr::Return => out.push(verdict(Verdict::Return)),
            Expr::Jump(chain) => out.push(verdict(Verdict::Jump(chain.clone()))),
            Expr::Dnat { addr, port } => {
                out.push(KernelExpr::Immediate {
                    dreg: uapi::NFT_REG_1,
                    data: ImmediateData::Value(octets(*addr)),
                });
                out.push(KernelExpr::Immediate {
                    dreg: uapi::NFT_REG_2,
                    data: ImmediateData::Value(port.to_be_bytes().to_vec()),
                });
                out.push(KernelExpr::Dnat {
                    family: nfproto_of(Family::of(*addr)),
                    reg_addr: uapi::NFT_REG_1,
                    reg_port: uapi::NFT_REG_2,
                });
            }
        }
    }
    out
}

/// A prefix on a byte boundary compares just its leading bytes; any other prefix loads the
/// whole address and masks it first. A /0 matches every address of the family, so the family
/// check alone is enough.
fn lower_source_prefix(range: &SourceRange, op: CmpOp) -> Vec<KernelExpr> {
    let network = octets(range.network());
    let (saddr, _, full_len) = address_offsets(range.family());
    let prefix = range.prefix_len();
    if prefix == 0 {
        return Vec::new();
    }
    if prefix.is_multiple_of(8) {
        let len = u32::from(prefix / 8);
        return vec![
            KernelExpr::Payload {
                base: PayloadBase::Network,
                offset: saddr,
                len,
                dreg: uapi::NFT_REG_1,
            },
            KernelExpr::Cmp {
                op,
                sreg: uapi::NFT_REG_1,
                data: network[..len as usize].to_vec(),
            },
        ];
    }
    debug_assert!(prefix < family_bits(range.family()));
    let mask: Vec<u8> = (0..full_len as usize)
        .map(|i| {
            let bits_in_byte = (usize::from(prefix)).saturating_sub(i * 8).min(8);
            if bits_in_byte == 0 {
                0
            } else {
                0xffu8 << (8 - bits_in_byte)
            }
        })
        .collect();
    vec![
        KernelExpr::Payload {
            base: PayloadBase::Network,
            offset: saddr,
            len: full_len,
            dreg: uapi::NFT_REG_1,
        },
        KernelExpr::Bitwise {
            sreg: uapi::NFT_REG_1,
            dreg: uapi::NFT_REG_1,
            xor: vec![0; mask.len()],
            mask,
            explicit_op: false,
        },
        KernelExpr::Cmp {
            op,
            sreg: uapi::NFT_REG_1,
            data: network,
        },
    ]
}

fn payload_base(base: PayloadBase) -> u32 {
    match base {
        PayloadBase::Network => uapi::NFT_PAYLOAD_NETWORK_HEADER,
        PayloadBase::Transport => uapi::NFT_PAYLOAD_TRANSPORT_HEADER,
    }
}

fn meta_key(key: MetaKey) -> u32 {
    match key {
        MetaKey::NfProto => uapi::NFT_META_NFPROTO,
        MetaKey::L4Proto => uapi::NFT_META_L4PROTO,
        MetaKey::Mark => uapi::NFT_META_MARK,
    }
}

fn ct_key(key: CtKey) -> u32 {
    match key {
        CtKey::Direction => uapi::NFT_CT_DIRECTION,
        CtKey::Mark => uapi::NFT_CT_MARK,
    }
}

/// Writes the body of an `NFTA_DATA_VERDICT` attribute.
pub fn encode_verdict(w: &mut AttrWriter, v: &Verdict) {
    let (code, chain) = match v {
        Verdict::Accept => (uapi::NF_ACCEPT, None),
        Verdict::Drop => (uapi::NF_DROP, None),
        Verdict::Return => (uapi::NFT_RETURN, None),
        Verdict::Jump(chain) => (uapi::NFT_JUMP, Some(chain)),
        Verdict::Goto(chain) => (uapi::NFT_GOTO, Some(chain)),
    };
    w.nested(uapi::NFTA_DATA_VERDICT, |w| {
        w.u32_be(uapi::NFTA_VERDICT_CODE, code);
        if let Some(chain) = chain {
            w.str(uapi::NFTA_VERDICT_CHAIN, chain);
        }
    });
}

impl KernelExpr {
    /// The expression's name as the kernel registers it.
    pub fn name(&self) -> &'static str {
        match self {
            KernelExpr::Meta { .. } | KernelExpr::MetaSet { .. } => "meta",
            KernelExpr::Ct { .. } | KernelExpr::CtSet { .. } => "ct",
            KernelExpr::Cmp { .. } => "cmp",
            KernelExpr::Payload { .. } | KernelExpr::PayloadSet { .. } => "payload",
            KernelExpr::Bitwise { .. } => "bitwise",
            KernelExpr::Immediate { .. } => "immediate",
            KernelExpr::Counter => "counter",
            KernelExpr::Dnat { .. } => "nat",
            KernelExpr::Lookup { .. } => "lookup",
        }
    }

    /// Writes one `NFTA_LIST_ELEM` holding this expression, attributes in nft's order.
    pub fn encode(&self, w: &mut AttrWriter) {
        w.nested(uapi::NFTA_LIST_ELEM, |w| {
            w.str(uapi::NFTA_EXPR_NAME, self.name());
            w.nested(uapi::NFTA_EXPR_DATA, |w| self.encode_data(w));
        });
    }

    fn encode_data(&self, w: &mut AttrWriter) {
        match self {
            KernelExpr::Meta { key, dreg } => {
                w.u32_be(uapi::NFTA_META_KEY, meta_key(*key));
                w.u32_be(uapi::NFTA_META_DREG, *dreg);
            }
            KernelExpr::MetaSet { key, sreg } => {
                w.u32_be(uapi::NFTA_META_KEY, meta_key(*key));
                w.u32_be(uapi::NFTA_META_SREG, *sreg);
            }
            KernelExpr::Ct { key, dreg } => {
                w.u32_be(uapi::NFTA_CT_KEY, ct_key(*key));
                w.u32_be(uapi::NFTA_CT_DREG, *dreg);
            }
            KernelExpr::CtSet { key, sreg } => {
                w.u32_be(uapi::NFTA_CT_KEY, ct_key(*key));
                w.u32_be(uapi::NFTA_CT_SREG, *sreg);
            }
            KernelExpr::Cmp { op, sreg, data } => {
                w.u32_be(uapi::NFTA_CMP_SREG, *sreg);
                let op = match op {
                    CmpOp::Eq => uapi::NFT_CMP_EQ,
                    CmpOp::Neq => uapi::NFT_CMP_NEQ,
                };
                w.u32_be(uapi::NFTA_CMP_OP, op);
                w.nested(uapi::NFTA_CMP_DATA, |w| {
                    w.bytes(uapi::NFTA_DATA_VALUE, data)
                });
            }
            KernelExpr::Payload {
                base,
                offset,
                len,
                dreg,
            } => {
                w.u32_be(uapi::NFTA_PAYLOAD_DREG, *dreg);
                w.u32_be(uapi::NFTA_PAYLOAD_BASE, payload_base(*base));
                w.u32_be(uapi::NFTA_PAYLOAD_OFFSET, *offset);
                w.u32_be(uapi::NFTA_PAYLOAD_LEN, *len);
            }
            KernelExpr::PayloadSet {
                base,
                offset,
                len,
                sreg,
                csum_type,
                csum_offset,
                csum_flags,
            } => {
                w.u32_be(uapi::NFTA_PAYLOAD_SREG, *sreg);
                w.u32_be(uapi::NFTA_PAYLOAD_BASE, payload_base(*base));
                w.u32_be(uapi::NFTA_PAYLOAD_OFFSET, *offset);
                w.u32_be(uapi::NFTA_PAYLOAD_LEN, *len);
                // nft leaves out the checksum attributes that are zero.
                let csum_type = match csum_type {
                    ChecksumType::None => uapi::NFT_PAYLOAD_CSUM_NONE,
                    ChecksumType::Inet => uapi::NFT_PAYLOAD_CSUM_INET,
                    ChecksumType::Sctp => uapi::NFT_PAYLOAD_CSUM_SCTP,
                };
                for (attr, value) in [
                    (uapi::NFTA_PAYLOAD_CSUM_TYPE, csum_type),
                    (uapi::NFTA_PAYLOAD_CSUM_OFFSET, *csum_offset),
                    (uapi::NFTA_PAYLOAD_CSUM_FLAGS, *csum_flags),
                ] {
                    if value != 0 {
                        w.u32_be(attr, value);
                    }
                }
            }
            KernelExpr::Bitwise {
                sreg,
                dreg,
                mask,
                xor,
                explicit_op,
            } => {
                w.u32_be(uapi::NFTA_BITWISE_SREG, *sreg);
                w.u32_be(uapi::NFTA_BITWISE_DREG, *dreg);
                if *explicit_op {
                    w.u32_be(uapi::NFTA_BITWISE_OP, uapi::NFT_BITWISE_BOOL);
                }
                w.u32_be(uapi::NFTA_BITWISE_LEN, mask.len() as u32);
                w.nested(uapi::NFTA_BITWISE_MASK, |w| {
                    w.bytes(uapi::NFTA_DATA_VALUE, mask)
                });
                w.nested(uapi::NFTA_BITWISE_XOR, |w| {
                    w.bytes(uapi::NFTA_DATA_VALUE, xor)
                });
            }
            KernelExpr::Immediate { dreg, data } => {
                w.u32_be(uapi::NFTA_IMMEDIATE_DREG, *dreg);
                w.nested(uapi::NFTA_IMMEDIATE_DATA, |w| match data {
                    ImmediateData::Value(bytes) => w.bytes(uapi::NFTA_DATA_VALUE, bytes),
                    ImmediateData::Verdict(v) => encode_verdict(w, v),
                });
            }
            // An empty NFTA_EXPR_DATA: the kernel starts counting from zero.
            KernelExpr::Counter => {}
            KernelExpr::Dnat {
                family,
                reg_addr,
                reg_port,
            } => {
                w.u32_be(uapi::NFTA_NAT_TYPE, uapi::NFT_NAT_DNAT);
                w.u32_be(uapi::NFTA_NAT_FAMILY, *family);
                w.u32_be(uapi::NFTA_NAT_REG_ADDR_MIN, *reg_addr);
                w.u32_be(uapi::NFTA_NAT_REG_PROTO_MIN, *reg_port);
                w.u32_be(uapi::NFTA_NAT_FLAGS, uapi::NF_NAT_RANGE_PROTO_SPECIFIED);
            }
            KernelExpr::Lookup {
                set,
                set_id,
                sreg,
                dreg,
            } => {
                w.u32_be(uapi::NFTA_LOOKUP_SREG, *sreg);
                w.u32_be(uapi::NFTA_LOOKUP_DREG, *dreg);
                w.str(uapi::NFTA_LOOKUP_SET, set);
                if let Some(id) = set_id {
                    w.u32_be(uapi::NFTA_LOOKUP_SET_ID, *id);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn encoded(expr: &KernelExpr) -> Vec<u8> {
        let mut w = AttrWriter::default();
        expr.encode(&mut w);
        w.into_bytes()
    }

    fn lower(exprs: Vec<Expr>) -> Vec<KernelExpr> {
        lower_rule(&Rule { exprs }, &|_| Some(7))
    }

    /// Hex with spaces and newlines ignored, for readable expected bytes.
    fn hex(s: &str) -> Vec<u8> {
        let digits: String = s.chars().filter(|c| c.is_ascii_hexdigit()).collect();
        (0..digits.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).unwrap())
            .collect()
    }

    /// Each expression's bytes, hand-assembled from the uapi layout: nlattr {len u16, type
    /// u16} in host order (little-endian here), NLA_F_NESTED = 0x8000, values big-endian.
    #[test]
    #[cfg(target_endian = "little")]
    fn each_expression_encodes_as_the_uapi_layout() {
        let cases: Vec<(KernelExpr, &str)> = vec![
            (
                KernelExpr::Meta {
                    key: MetaKey::L4Proto,
                    dreg: 1,
                },
                "2400 0180  0900 0100 6d657461 00 000000  1400 0280  0800 0200 00000010  0800 0100 00000001",
            ),
            (
                KernelExpr::MetaSet {
                    key: MetaKey::Mark,
                    sreg: 1,
                },
                "2400 0180  0900 0100 6d657461 00 000000  1400 0280  0800 0200 00000003  0800 0300 00000001",
            ),
            (
                KernelExpr::Ct {
                    key: CtKey::Direction,
                    dreg: 1,
                },
                "2000 0180  0700 0100 637400 00  1400 0280  0800 0200 00000001  0800 0100 00000001",
            ),
            (
                KernelExpr::CtSet {
                    key: CtKey::Mark,
                    sreg: 1,
                },
                "2000 0180  0700 0100 637400 00  1400 0280  0800 0200 00000003  0800 0400 00000001",
            ),
            (
                KernelExpr::Cmp {
                    op: CmpOp::Eq,
                    sreg: 1,
                    data: vec![0x00, 0x50],
                },
                "2c00 0180  0800 0100 636d7000  2000 0280  0800 0100 00000001  0800 0200 00000000  0c00 0380 0600 0100 0050 0000",
            ),
            (
                KernelExpr::Cmp {
                    op: CmpOp::Neq,
                    sreg: 1,
                    data: vec![0, 0],
                },
                "2c00 0180  0800 0100 636d7000  2000 0280  0800 0100 00000001  0800 0200 00000001  0c00 0380 0600 0100 0000 0000",
            ),
            (
                KernelExpr::Payload {
                    base: PayloadBase::Transport,
                    offset: 2,
                    len: 2,
                    dreg: 1,
                },
                "3400 0180  0c00 0100 7061796c6f616400  2400 0280  0800 0100 00000001  0800 0200 00000002  0800 0300 00000002  0800 0400 00000002",
            ),
            (
                // An IPv4 destination write: IP checksum at 10, and the pseudo-header flag.
                KernelExpr::PayloadSet {
                    base: PayloadBase::Network,
                    offset: 16,
                    len: 4,
                    sreg: 1,
                    csum_type: ChecksumType::Inet,
                    csum_offset: 10,
                    csum_flags: 1,
                },
                "4c00 0180  0c00 0100 7061796c6f616400  3c00 0280  0800 0500 00000001  0800 0200 00000001  0800 0300 00000010  0800 0400 00000004  0800 0600 00000001  0800 0700 0000000a  0800 0800 00000001",
            ),
            (
                // `th dport set`: no checksum attributes at all.
                KernelExpr::PayloadSet {
                    base: PayloadBase::Transport,
                    offset: 2,
                    len: 2,
                    sreg: 1,
                    csum_type: ChecksumType::None,
                    csum_offset: 0,
                    csum_flags: 0,
                },
                "3400 0180  0c00 0100 7061796c6f616400  2400 0280  0800 0500 00000001  0800 0200 00000002  0800 0300 00000002  0800 0400 00000002",
            ),
            (
                KernelExpr::Bitwise {
                    sreg: 1,
                    dreg: 1,
                    mask: vec![0xff, 0xff, 0xff, 0x80],
                    xor: vec![0; 4],
                    explicit_op: false,
                },
                "4400 0180  0c00 0100 6269747769736500  3400 0280  0800 0100 00000001  0800 0200 00000001  0800 0300 00000004  0c00 0480 0800 0100 ffffff80  0c00 0580 0800 0100 00000000",
            ),
            (
                KernelExpr::Bitwise {
                    sreg: 1,
                    dreg: 1,
                    mask: vec![0xff, 0xdf, 0xff, 0xff],
                    xor: vec![0x00, 0x20, 0x00, 0x00],
                    explicit_op: true,
                },
                "4c00 0180  0c00 0100 6269747769736500  3c00 0280  0800 0100 00000001  0800 0200 00000001  0800 0600 00000000  0800 0300 00000004  0c00 0480 0800 0100 ffdfffff  0c00 0580 0800 0100 00200000",
            ),
            (
                KernelExpr::Immediate {
                    dreg: 0,
                    data: ImmediateData::Verdict(Verdict::Drop),
                },
                "3000 0180  0e00 0100 696d6d65646961746500 0000  1c00 0280  0800 0100 00000000  1000 0280 0c00 0280 0800 0100 00000000",
            ),
            (
                KernelExpr::Immediate {
                    dreg: 0,
                    data: ImmediateData::Verdict(Verdict::Return),
                },
                "3000 0180  0e00 0100 696d6d65646961746500 0000  1c00 0280  0800 0100 00000000  1000 0280 0c00 0280 0800 0100 fffffffb",
            ),
            (
                KernelExpr::Immediate {
                    dreg: 0,
                    data: ImmediateData::Verdict(Verdict::Jump("ab".into())),
                },
                "3800 0180  0e00 0100 696d6d65646961746500 0000  2400 0280  0800 0100 00000000  1800 0280 1400 0280 0800 0100 fffffffd  0700 0200 616200 00",
            ),
            (
                KernelExpr::Immediate {
                    dreg: 2,
                    data: ImmediateData::Value(vec![0x75, 0x80]),
                },
                "2c00 0180  0e00 0100 696d6d65646961746500 0000  1800 0280  0800 0100 00000002  0c00 0280 0600 0100 7580 0000",
            ),
            (
                KernelExpr::Counter,
                "1400 0180  0c00 0100 636f756e74657200  0400 0280",
            ),
            (
                KernelExpr::Dnat {
                    family: 10,
                    reg_addr: 1,
                    reg_port: 2,
                },
                "3800 0180  0800 0100 6e617400  2c00 0280  0800 0100 00000001  0800 0200 0000000a  0800 0300 00000001  0800 0500 00000002  0800 0700 00000002",
            ),
            (
                KernelExpr::Lookup {
                    set: "m".into(),
                    set_id: Some(3),
                    sreg: 1,
                    dreg: 0,
                },
                "3400 0180  0b00 0100 6c6f6f6b757000 00  2400 0280  0800 0200 00000001  0800 0300 00000000  0600 0100 6d00 0000  0800 0400 00000003",
            ),
        ];
        for (expr, expected) in cases {
            assert_eq!(encoded(&expr), hex(expected), "{expr:?}");
        }
    }

    #[test]
    fn concatenations_use_the_registers_nft_uses() {
        // IPv4: address in reg 1 (32-bit reg 8), then 32-bit regs 9 and 10.
        assert_eq!([0, 1, 2].map(concat_register), [uapi::NFT_REG_1, 9, 10]);
        // IPv6: the address fills reg 1; the protocol starts reg 2; the port is reg 13.
        assert_eq!([4, 5].map(concat_register), [uapi::NFT_REG_2, 13]);
        let lowered = lower(vec![Expr::Lookup {
            endpoint: Endpoint::Source,
            family: Family::V6,
            map: "from_nodeports_v6".into(),
        }]);
        assert_eq!(
            &lowered[2..],
            &[
                KernelExpr::Payload {
                    base: PayloadBase::Network,
                    offset: 8,
                    len: 16,
                    dreg: 1
                },
                KernelExpr::Meta {
                    key: MetaKey::L4Proto,
                    dreg: 2
                },
                KernelExpr::Payload {
                    base: PayloadBase::Transport,
                    offset: 0,
                    len: 2,
                    dreg: 13
                },
                KernelExpr::Lookup {
                    set: "from_nodeports_v6".into(),
                    set_id: Some(7),
                    sreg: 1,
                    dreg: 0
                },
            ]
        );
    }

    #[test]
    fn address_matches_check_the_family_once() {
        let lowered = lower(vec![
            Expr::DestAddr(ip("198.51.100.10")),
            Expr::SourcePrefix("203.0.113.0/24".parse().unwrap()),
            Expr::SetDestAddr(ip("192.0.2.1")),
        ]);
        let family_checks = lowered
            .iter()
            .filter(|e| {
                matches!(
                    e,
                    KernelExpr::Meta {
                        key: MetaKey::NfProto,
                        ..
                    }
                )
            })
            .count();
        assert_eq!(family_checks, 1);
        assert_eq!(
            lowered[1],
            KernelExpr::Cmp {
                op: CmpOp::Eq,
                sreg: 1,
                data: vec![2]
            },
            "IPv4 is NFPROTO_IPV4 = 2"
        );
        assert_eq!(
            lowered[4],
            KernelExpr::Payload {
                base: PayloadBase::Network,
                offset: 12,
                len: 3,
                dreg: 1
            },
            "a /24 compares three bytes without a mask"
        );
        assert_eq!(lowered.len(), 8);
    }

    #[test]
    fn protocol_specific_writes_check_the_protocol_once() {
        let udp = lower(vec![
            Expr::UdpChecksumZero(false),
            Expr::SetSourcePort {
                port: 53,
                header: PortHeader::Protocol(L4Protocol::Udp),
            },
        ]);
        let l4_checks = |exprs: &[KernelExpr]| {
            exprs
                .iter()
                .filter(|e| {
                    matches!(
                        e,
                        KernelExpr::Meta {
                            key: MetaKey::L4Proto,
                            ..
                        }
                    )
                })
                .count()
        };
        assert_eq!(l4_checks(&udp), 1);
        assert_eq!(
            udp[3],
            KernelExpr::Cmp {
                op: CmpOp::Neq,
                sreg: 1,
                data: vec![0, 0]
            }
        );
        // A th write needs no protocol; a tcp write after a udp match checks tcp again.
        let th = lower(vec![Expr::SetDestPort {
            port: 1,
            header: PortHeader::Transport,
        }]);
        assert_eq!(l4_checks(&th), 0);
        let mixed = lower(vec![
            Expr::L4Proto(L4Protocol::Udp),
            Expr::SetDestPort {
                port: 1,
                header: PortHeader::Protocol(L4Protocol::Tcp),
            },
        ]);
        assert_eq!(l4_checks(&mixed), 2);
    }

    #[test]
    fn writes_pick_the_checksum_the_header_needs() {
        let write = |expr: Expr| -> KernelExpr { lower(vec![expr]).pop().unwrap() };
        let port = |header| {
            write(Expr::SetDestPort {
                port: 30080,
                header,
            })
        };
        let csum = |e: KernelExpr| match e {
            KernelExpr::PayloadSet {
                csum_type,
                csum_offset,
                csum_flags,
                offset,
                ..
            } => (csum_type, csum_offset, csum_flags, offset),
            other => panic!("not a write: {other:?}"),
        };
        assert_eq!(
            csum(port(PortHeader::Protocol(L4Protocol::Tcp))),
            (ChecksumType::Inet, 16, 0, 2)
        );
        assert_eq!(
            csum(port(PortHeader::Protocol(L4Protocol::Udp))),
            (ChecksumType::Inet, 6, 0, 2)
        );
        assert_eq!(
            csum(port(PortHeader::Protocol(L4Protocol::Sctp))),
            (ChecksumType::Sctp, 8, 0, 2)
        );
        assert_eq!(
            csum(port(PortHeader::Transport)),
            (ChecksumType::None, 0, 0, 2)
        );
        assert_eq!(
            csum(write(Expr::SetSourceAddr(ip("198.51.100.10")))),
            (ChecksumType::Inet, 10, 1, 12)
        );
        assert_eq!(
            csum(write(Expr::SetDestAddr(ip("2001:db8::1")))),
            (ChecksumType::None, 0, 1, 24)
        );
    }

    #[test]
    #[cfg(target_endian = "little")]
    fn mark_arithmetic_keeps_the_other_bits() {
        let bit = MarkBit::new(0x2000).unwrap();
        let add = lower(vec![Expr::MarkAdd(bit)]);
        assert_eq!(
            add[1],
            KernelExpr::Bitwise {
                sreg: 1,
                dreg: 1,
                mask: vec![0xff, 0xdf, 0xff, 0xff],
                xor: vec![0x00, 0x20, 0, 0],
                explicit_op: true
            }
        );
        let clear = lower(vec![Expr::MarkClear(bit)]);
        assert!(
            matches!(&clear[1], KernelExpr::Bitwise { mask, xor, .. } if mask == &vec![0xff, 0xdf, 0xff, 0xff] && xor == &vec![0; 4])
        );
        assert_eq!(
            clear[2],
            KernelExpr::MetaSet {
                key: MetaKey::Mark,
                sreg: 1
            }
        );
        let ct = lower(vec![
            Expr::CtDirectionReply,
            Expr::CtMarkHas(bit),
            Expr::CtMarkAdd(bit),
        ]);
        assert_eq!(
            ct[1],
            KernelExpr::Cmp {
                op: CmpOp::Eq,
                sreg: 1,
                data: vec![1]
            }
        );
        assert_eq!(
            ct.last(),
            Some(&KernelExpr::CtSet {
                key: CtKey::Mark,
                sreg: 1
            })
        );
    }

    #[test]
    fn source_prefixes_lower_per_length() {
        let lower = |s: &str| lower_source_prefix(&s.parse().unwrap(), CmpOp::Eq);
        assert!(lower("0.0.0.0/0").is_empty());
        assert!(lower("::/0").is_empty());
        assert_eq!(
            lower("192.0.2.7/32"),
            vec![
                KernelExpr::Payload {
                    base: PayloadBase::Network,
                    offset: 12,
                    len: 4,
                    dreg: 1
                },
                KernelExpr::Cmp {
                    op: CmpOp::Eq,
                    sreg: 1,
                    data: vec![192, 0, 2, 7]
                },
            ]
        );
        assert_eq!(
            lower("203.0.112.0/20")[1],
            KernelExpr::Bitwise {
                sreg: 1,
                dreg: 1,
                mask: vec![255, 255, 0xf0, 0],
                xor: vec![0; 4],
                explicit_op: false
            }
        );
        let v6 = lower("2001:db8:80::/41");
        assert_eq!(
            v6[0],
            KernelExpr::Payload {
                base: PayloadBase::Network,
                offset: 8,
                len: 16,
                dreg: 1
            }
        );
        let mut mask = vec![0u8; 16];
        mask[..5].fill(0xff);
        mask[5] = 0x80;
        assert_eq!(
            v6[1],
            KernelExpr::Bitwise {
                sreg: 1,
                dreg: 1,
                mask,
                xor: vec![0; 16],
                explicit_op: false
            }
        );
        assert_eq!(
            lower("2001:db8::/48")[0],
            KernelExpr::Payload {
                base: PayloadBase::Network,
                offset: 8,
                len: 6,
                dreg: 1
            }
        );
    }

    #[test]
    fn dnat_loads_address_and_port_registers() {
        let lowered = lower(vec![
            Expr::L4Proto(L4Protocol::Udp),
            Expr::Dnat {
                addr: ip("2001:db8::1"),
                port: 30053,
            },
        ]);
        assert_eq!(
            lowered[3],
            KernelExpr::Immediate {
                dreg: 2,
                data: ImmediateData::Value(vec![0x75, 0x65])
            }
        );
        assert_eq!(
            lowered[4],
            KernelExpr::Dnat {
                family: 10,
                reg_addr: 1,
                reg_port: 2
            }
        );
    }
}
