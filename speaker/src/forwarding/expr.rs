//! Kernel nf_tables expressions, and the lowering of model [`Expr`]s into them.
//!
//! The kernel knows no "ip daddr": it runs small register programs. A match loads a field into
//! a register (`meta`, `payload`), optionally masks it (`bitwise`) and compares it (`cmp`); a
//! verdict is an `immediate` into the verdict register; DNAT loads address and port into
//! registers and hands them to `nat`. The lowering here mirrors what nft emits for the same
//! rule text, so `nft list` prints our rules back in the usual syntax.
//!
//! Pure: encoding writes attributes into a byte buffer, nothing else.

use std::net::IpAddr;

use super::entry::{SourceRange, family_bits};
use super::netlink_msg::{AttrWriter, uapi};
use super::ruleset::{Expr, Rule};

/// A register number (`enum nft_registers`, the 16-byte legacy registers).
pub type Register = u32;

/// Which header a `payload` expression reads from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PayloadBase {
    Network,
    Transport,
}

/// What a `meta` expression loads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetaKey {
    /// The netfilter family of the packet (IPv4 or IPv6 in an inet table).
    NfProto,
    /// The transport protocol number, past any IPv6 extension headers.
    L4Proto,
}

/// A verdict an `immediate` can set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VerdictCode {
    Accept,
    Drop,
}

/// What an `immediate` loads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImmediateData {
    Value(Vec<u8>),
    Verdict(VerdictCode),
}

/// One kernel expression, with the values nft would send for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KernelExpr {
    Meta {
        key: MetaKey,
        dreg: Register,
    },
    /// Only equality is needed by ironlb.
    CmpEq {
        sreg: Register,
        data: Vec<u8>,
    },
    Payload {
        base: PayloadBase,
        offset: u32,
        len: u32,
        dreg: Register,
    },
    /// `dreg = (sreg & mask) ^ xor`.
    Bitwise {
        sreg: Register,
        dreg: Register,
        mask: Vec<u8>,
        xor: Vec<u8>,
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
}

/// Network-header offsets of the addresses, per family.
fn address_offsets(ip: IpAddr) -> (u32, u32, u32) {
    // (source offset, destination offset, address length)
    match ip {
        IpAddr::V4(_) => (12, 16, 4),
        IpAddr::V6(_) => (8, 24, 16),
    }
}

fn nfproto_of(ip: IpAddr) -> u32 {
    match ip {
        IpAddr::V4(_) => uapi::NFPROTO_IPV4,
        IpAddr::V6(_) => uapi::NFPROTO_IPV6,
    }
}

fn octets(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    }
}

/// Lowers a model rule to kernel expressions. Like nft in an inet table, an address match is
/// preceded by a `meta nfproto` check, emitted once per rule and family.
pub fn lower_rule(rule: &Rule) -> Vec<KernelExpr> {
    let mut out = Vec::new();
    let mut checked_family: Option<u32> = None;
    let mut require_family = |out: &mut Vec<KernelExpr>, ip: IpAddr| {
        let nfproto = nfproto_of(ip);
        if checked_family != Some(nfproto) {
            out.push(KernelExpr::Meta {
                key: MetaKey::NfProto,
                dreg: uapi::NFT_REG_1,
            });
            out.push(KernelExpr::CmpEq {
                sreg: uapi::NFT_REG_1,
                data: vec![nfproto as u8],
            });
            checked_family = Some(nfproto);
        }
    };
    for expr in &rule.exprs {
        match expr {
            Expr::DestAddr(ip) => {
                require_family(&mut out, *ip);
                let (_, daddr, len) = address_offsets(*ip);
                out.push(KernelExpr::Payload {
                    base: PayloadBase::Network,
                    offset: daddr,
                    len,
                    dreg: uapi::NFT_REG_1,
                });
                out.push(KernelExpr::CmpEq {
                    sreg: uapi::NFT_REG_1,
                    data: octets(*ip),
                });
            }
            Expr::SourcePrefix(range) => {
                require_family(&mut out, range.network());
                out.extend(lower_source_prefix(range));
            }
            Expr::L4Proto(proto) => {
                out.push(KernelExpr::Meta {
                    key: MetaKey::L4Proto,
                    dreg: uapi::NFT_REG_1,
                });
                out.push(KernelExpr::CmpEq {
                    sreg: uapi::NFT_REG_1,
                    data: vec![proto.number()],
                });
            }
            Expr::DestPort(port) => {
                out.push(KernelExpr::Payload {
                    base: PayloadBase::Transport,
                    offset: 2,
                    len: 2,
                    dreg: uapi::NFT_REG_1,
                });
                out.push(KernelExpr::CmpEq {
                    sreg: uapi::NFT_REG_1,
                    data: port.to_be_bytes().to_vec(),
                });
            }
            Expr::Counter => out.push(KernelExpr::Counter),
            Expr::Accept => out.push(KernelExpr::Immediate {
                dreg: uapi::NFT_REG_VERDICT,
                data: ImmediateData::Verdict(VerdictCode::Accept),
            }),
            Expr::Drop => out.push(KernelExpr::Immediate {
                dreg: uapi::NFT_REG_VERDICT,
                data: ImmediateData::Verdict(VerdictCode::Drop),
            }),
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
                    family: nfproto_of(*addr),
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
fn lower_source_prefix(range: &SourceRange) -> Vec<KernelExpr> {
    let network = octets(range.network());
    let (saddr, _, full_len) = address_offsets(range.network());
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
            KernelExpr::CmpEq {
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
        },
        KernelExpr::CmpEq {
            sreg: uapi::NFT_REG_1,
            data: network,
        },
    ]
}

impl KernelExpr {
    /// The expression's name as the kernel registers it.
    pub fn name(&self) -> &'static str {
        match self {
            KernelExpr::Meta { .. } => "meta",
            KernelExpr::CmpEq { .. } => "cmp",
            KernelExpr::Payload { .. } => "payload",
            KernelExpr::Bitwise { .. } => "bitwise",
            KernelExpr::Immediate { .. } => "immediate",
            KernelExpr::Counter => "counter",
            KernelExpr::Dnat { .. } => "nat",
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
                let key = match key {
                    MetaKey::NfProto => uapi::NFT_META_NFPROTO,
                    MetaKey::L4Proto => uapi::NFT_META_L4PROTO,
                };
                w.u32_be(uapi::NFTA_META_KEY, key);
                w.u32_be(uapi::NFTA_META_DREG, *dreg);
            }
            KernelExpr::CmpEq { sreg, data } => {
                w.u32_be(uapi::NFTA_CMP_SREG, *sreg);
                w.u32_be(uapi::NFTA_CMP_OP, uapi::NFT_CMP_EQ);
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
                let base = match base {
                    PayloadBase::Network => uapi::NFT_PAYLOAD_NETWORK_HEADER,
                    PayloadBase::Transport => uapi::NFT_PAYLOAD_TRANSPORT_HEADER,
                };
                w.u32_be(uapi::NFTA_PAYLOAD_DREG, *dreg);
                w.u32_be(uapi::NFTA_PAYLOAD_BASE, base);
                w.u32_be(uapi::NFTA_PAYLOAD_OFFSET, *offset);
                w.u32_be(uapi::NFTA_PAYLOAD_LEN, *len);
            }
            KernelExpr::Bitwise {
                sreg,
                dreg,
                mask,
                xor,
            } => {
                w.u32_be(uapi::NFTA_BITWISE_SREG, *sreg);
                w.u32_be(uapi::NFTA_BITWISE_DREG, *dreg);
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
                    ImmediateData::Verdict(code) => {
                        let code = match code {
                            VerdictCode::Accept => uapi::NF_ACCEPT,
                            VerdictCode::Drop => uapi::NF_DROP,
                        };
                        w.nested(uapi::NFTA_DATA_VERDICT, |w| {
                            w.u32_be(uapi::NFTA_VERDICT_CODE, code)
                        });
                    }
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
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forwarding::entry::L4Protocol;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn encoded(expr: &KernelExpr) -> Vec<u8> {
        let mut w = AttrWriter::default();
        expr.encode(&mut w);
        w.into_bytes()
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
                KernelExpr::CmpEq {
                    sreg: 1,
                    data: vec![0x00, 0x50],
                },
                "2c00 0180  0800 0100 636d7000  2000 0280  0800 0100 00000001  0800 0200 00000000  0c00 0380 0600 0100 0050 0000",
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
                KernelExpr::Bitwise {
                    sreg: 1,
                    dreg: 1,
                    mask: vec![0xff, 0xff, 0xff, 0x80],
                    xor: vec![0; 4],
                },
                "4400 0180  0c00 0100 6269747769736500  3400 0280  0800 0100 00000001  0800 0200 00000001  0800 0300 00000004  0c00 0480 0800 0100 ffffff80  0c00 0580 0800 0100 00000000",
            ),
            (
                KernelExpr::Immediate {
                    dreg: 0,
                    data: ImmediateData::Verdict(VerdictCode::Drop),
                },
                "3000 0180  0e00 0100 696d6d65646961746500 0000  1c00 0280  0800 0100 00000000  1000 0280 0c00 0280 0800 0100 00000000",
            ),
            (
                KernelExpr::Immediate {
                    dreg: 0,
                    data: ImmediateData::Verdict(VerdictCode::Accept),
                },
                "3000 0180  0e00 0100 696d6d65646961746500 0000  1c00 0280  0800 0100 00000000  1000 0280 0c00 0280 0800 0100 00000001",
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
        ];
        for (expr, expected) in cases {
            assert_eq!(encoded(&expr), hex(expected), "{expr:?}");
        }
    }

    #[test]
    fn address_matches_check_the_family_once() {
        let rule = Rule {
            exprs: vec![
                Expr::DestAddr(ip("198.51.100.10")),
                Expr::SourcePrefix("203.0.113.0/24".parse().unwrap()),
            ],
        };
        let lowered = lower_rule(&rule);
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
            KernelExpr::CmpEq {
                sreg: 1,
                data: vec![2]
            },
            "IPv4 is NFPROTO_IPV4 = 2"
        );
        assert_eq!(
            lowered[2],
            KernelExpr::Payload {
                base: PayloadBase::Network,
                offset: 16,
                len: 4,
                dreg: 1
            }
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
        assert_eq!(
            lowered[5],
            KernelExpr::CmpEq {
                sreg: 1,
                data: vec![203, 0, 113]
            }
        );
        assert_eq!(lowered.len(), 6);
    }

    #[test]
    fn source_prefixes_lower_per_length() {
        let lower = |s: &str| lower_source_prefix(&s.parse().unwrap());
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
                KernelExpr::CmpEq {
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
                xor: vec![0; 4]
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
                xor: vec![0; 16]
            }
        );
        assert_eq!(
            v6[2],
            KernelExpr::CmpEq {
                sreg: 1,
                data: ip("2001:db8:80::")
                    .to_string()
                    .parse::<std::net::Ipv6Addr>()
                    .unwrap()
                    .octets()
                    .to_vec()
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
        let rule = Rule {
            exprs: vec![
                Expr::L4Proto(L4Protocol::Udp),
                Expr::Dnat {
                    addr: ip("2001:db8::1"),
                    port: 30053,
                },
            ],
        };
        let lowered = lower_rule(&rule);
        assert_eq!(
            lowered[1],
            KernelExpr::CmpEq {
                sreg: 1,
                data: vec![17]
            }
        );
        assert_eq!(
            lowered[2],
            KernelExpr::Immediate {
                dreg: 1,
                data: ImmediateData::Value(
                    ip("2001:db8::1")
                        .to_string()
                        .parse::<std::net::Ipv6Addr>()
                        .unwrap()
                        .octets()
                        .to_vec()
                )
            }
        );
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
