//! Encoding of a [`Ruleset`] as one nfnetlink batch: the bytes the kernel receives.
//!
//! A replace batch is `BATCH_BEGIN, NEWTABLE, DELTABLE, NEWTABLE, NEWCHAIN..., (NEWSET,
//! NEWSETELEM...)..., NEWRULE..., BATCH_END`, the order nft uses: chains exist before map
//! elements jump to them, maps before rules look them up. The first NEWTABLE makes the
//! DELTABLE valid whether or not the table exists; the kernel applies the whole batch as one
//! transaction, so packets see either the old table or the new one, and a message the kernel
//! rejects aborts the batch with nothing changed. A remove batch is
//! `BATCH_BEGIN, NEWTABLE, DELTABLE, BATCH_END`.
//!
//! Only the last message inside the batch asks for an ACK. The kernel reports errors for every
//! failing message and then the ACK (or error) of the last one, so that reply marks the end of
//! the batch's answers without needing one ACK per rule, which would overflow the socket
//! buffer for large rulesets.
//!
//! Netlink headers are in host byte order; nf_tables attribute values are big-endian, except
//! marks, which the kernel keeps in host order.

use ironlb_crds::address::Family;

use super::expr::{Verdict, encode_verdict, lower_rule};
use super::ruleset::{Chain, Hook, MapElement, Policy, Ruleset, VerdictMap};

/// Constants from `linux/netlink.h`, `linux/netfilter/nfnetlink.h`,
/// `linux/netfilter/nf_tables.h` and `linux/netfilter.h`.
pub mod uapi {
    pub const NLMSG_HDRLEN: usize = 16;
    pub const NLMSG_ERROR: u16 = 2;
    pub const NLM_F_REQUEST: u16 = 0x1;
    pub const NLM_F_ACK: u16 = 0x4;
    pub const NLM_F_CREATE: u16 = 0x400;
    pub const NLM_F_APPEND: u16 = 0x800;
    pub const NLM_F_CAPPED: u16 = 0x100;
    pub const NLM_F_ACK_TLVS: u16 = 0x200;
    pub const NLMSGERR_ATTR_MSG: u16 = 1;
    pub const NLA_F_NESTED: u16 = 0x8000;
    pub const NLA_TYPE_MASK: u16 = 0x3fff;

    pub const NFNL_SUBSYS_NFTABLES: u16 = 10;
    pub const NFNL_MSG_BATCH_BEGIN: u16 = 16;
    pub const NFNL_MSG_BATCH_END: u16 = 17;
    pub const NFNETLINK_V0: u8 = 0;

    pub const NFT_MSG_NEWTABLE: u16 = 0;
    pub const NFT_MSG_DELTABLE: u16 = 2;
    pub const NFT_MSG_NEWCHAIN: u16 = 3;
    pub const NFT_MSG_NEWRULE: u16 = 6;
    pub const NFT_MSG_NEWSET: u16 = 9;
    pub const NFT_MSG_NEWSETELEM: u16 = 12;

    pub const NFPROTO_INET: u8 = 1;
    pub const NFPROTO_IPV4: u32 = 2;
    pub const NFPROTO_IPV6: u32 = 10;

    pub const NF_INET_PRE_ROUTING: u32 = 0;
    pub const NF_INET_LOCAL_OUT: u32 = 3;
    pub const NF_INET_POST_ROUTING: u32 = 4;
    pub const NF_DROP: u32 = 0;
    pub const NF_ACCEPT: u32 = 1;

    pub const NFTA_TABLE_NAME: u16 = 1;
    pub const NFTA_TABLE_FLAGS: u16 = 2;
    pub const NFTA_CHAIN_TABLE: u16 = 1;
    pub const NFTA_CHAIN_NAME: u16 = 3;
    pub const NFTA_CHAIN_HOOK: u16 = 4;
    pub const NFTA_CHAIN_POLICY: u16 = 5;
    pub const NFTA_CHAIN_TYPE: u16 = 7;
    pub const NFTA_HOOK_HOOKNUM: u16 = 1;
    pub const NFTA_HOOK_PRIORITY: u16 = 2;
    pub const NFTA_RULE_TABLE: u16 = 1;
    pub const NFTA_RULE_CHAIN: u16 = 2;
    pub const NFTA_RULE_EXPRESSIONS: u16 = 4;
    pub const NFTA_LIST_ELEM: u16 = 1;
    pub const NFTA_EXPR_NAME: u16 = 1;
    pub const NFTA_EXPR_DATA: u16 = 2;
    pub const NFTA_DATA_VALUE: u16 = 1;
    pub const NFTA_DATA_VERDICT: u16 = 2;
    pub const NFTA_VERDICT_CODE: u16 = 1;
    pub const NFTA_VERDICT_CHAIN: u16 = 2;
    pub const NFT_RETURN: u32 = -5i32 as u32;
    pub const NFT_GOTO: u32 = -4i32 as u32;
    pub const NFT_JUMP: u32 = -3i32 as u32;

    pub const NFT_REG_VERDICT: u32 = 0;
    pub const NFT_REG_1: u32 = 1;
    pub const NFT_REG_2: u32 = 2;
    pub const NFT_REG32_00: u32 = 8;

    pub const NFTA_META_DREG: u16 = 1;
    pub const NFTA_META_KEY: u16 = 2;
    pub const NFTA_META_SREG: u16 = 3;
    pub const NFT_META_MARK: u32 = 3;
    pub const NFT_META_NFPROTO: u32 = 15;
    pub const NFT_META_L4PROTO: u32 = 16;
    pub const NFTA_CT_DREG: u16 = 1;
    pub const NFTA_CT_KEY: u16 = 2;
    pub const NFTA_CT_SREG: u16 = 4;
    pub const NFT_CT_DIRECTION: u32 = 1;
    pub const NFT_CT_MARK: u32 = 3;
    pub const IP_CT_DIR_REPLY: u8 = 1;
    pub const NFTA_CMP_SREG: u16 = 1;
    pub const NFTA_CMP_OP: u16 = 2;
    pub const NFTA_CMP_DATA: u16 = 3;
    pub const NFT_CMP_EQ: u32 = 0;
    pub const NFT_CMP_NEQ: u32 = 1;
    pub const NFTA_PAYLOAD_DREG: u16 = 1;
    pub const NFTA_PAYLOAD_BASE: u16 = 2;
    pub const NFTA_PAYLOAD_OFFSET: u16 = 3;
    pub const NFTA_PAYLOAD_LEN: u16 = 4;
    pub const NFTA_PAYLOAD_SREG: u16 = 5;
    pub const NFTA_PAYLOAD_CSUM_TYPE: u16 = 6;
    pub const NFTA_PAYLOAD_CSUM_OFFSET: u16 = 7;
    pub const NFTA_PAYLOAD_CSUM_FLAGS: u16 = 8;
    pub const NFT_PAYLOAD_NETWORK_HEADER: u32 = 1;
    pub const NFT_PAYLOAD_TRANSPORT_HEADER: u32 = 2;
    pub const NFT_PAYLOAD_CSUM_NONE: u32 = 0;
    pub const NFT_PAYLOAD_CSUM_INET: u32 = 1;
    pub const NFT_PAYLOAD_CSUM_SCTP: u32 = 2;
    pub const NFT_PAYLOAD_L4CSUM_PSEUDOHDR: u32 = 1;
    pub const NFTA_BITWISE_SREG: u16 = 1;
    pub const NFTA_BITWISE_DREG: u16 = 2;
    pub const NFTA_BITWISE_LEN: u16 = 3;
    pub const NFTA_BITWISE_MASK: u16 = 4;
    pub const NFTA_BITWISE_XOR: u16 = 5;
    pub const NFTA_BITWISE_OP: u16 = 6;
    pub const NFT_BITWISE_BOOL: u32 = 0;
    pub const NFTA_LOOKUP_SET: u16 = 1;
    pub const NFTA_LOOKUP_SREG: u16 = 2;
    pub const NFTA_LOOKUP_DREG: u16 = 3;
    pub const NFTA_LOOKUP_SET_ID: u16 = 4;
    pub const NFTA_IMMEDIATE_DREG: u16 = 1;
    pub const NFTA_IMMEDIATE_DATA: u16 = 2;
    pub const NFTA_NAT_TYPE: u16 = 1;
    pub const NFTA_NAT_FAMILY: u16 = 2;
    pub const NFTA_NAT_REG_ADDR_MIN: u16 = 3;
    pub const NFTA_NAT_REG_PROTO_MIN: u16 = 5;
    pub const NFTA_NAT_FLAGS: u16 = 7;
    pub const NFT_NAT_DNAT: u32 = 1;
    pub const NF_NAT_RANGE_PROTO_SPECIFIED: u32 = 2;

    pub const NFTA_SET_TABLE: u16 = 1;
    pub const NFTA_SET_NAME: u16 = 2;
    pub const NFTA_SET_FLAGS: u16 = 3;
    pub const NFTA_SET_KEY_TYPE: u16 = 4;
    pub const NFTA_SET_KEY_LEN: u16 = 5;
    pub const NFTA_SET_DATA_TYPE: u16 = 6;
    pub const NFTA_SET_DATA_LEN: u16 = 7;
    pub const NFTA_SET_ID: u16 = 10;
    pub const NFTA_SET_USERDATA: u16 = 13;
    pub const NFT_SET_MAP: u32 = 0x8;
    pub const NFT_DATA_VERDICT: u32 = 0xffff_ff00;
    pub const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
    pub const NFTA_SET_ELEM_LIST_SET: u16 = 2;
    pub const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
    pub const NFTA_SET_ELEM_LIST_SET_ID: u16 = 4;
    pub const NFTA_SET_ELEM_KEY: u16 = 1;
    pub const NFTA_SET_ELEM_DATA: u16 = 2;
}

const fn align4(len: usize) -> usize {
    (len + 3) & !3
}

/// Appends netlink attributes (`struct nlattr` + payload, 4-byte aligned) to a buffer.
#[derive(Debug, Default)]
pub struct AttrWriter {
    buf: Vec<u8>,
}

impl AttrWriter {
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Appends already encoded attributes.
    pub fn raw(&mut self, attrs: &[u8]) {
        self.buf.extend_from_slice(attrs);
        self.pad();
    }

    pub fn bytes(&mut self, attr_type: u16, payload: &[u8]) {
        let len = 4 + payload.len();
        self.buf.extend_from_slice(&attr_len(len).to_ne_bytes());
        self.buf.extend_from_slice(&attr_type.to_ne_bytes());
        self.buf.extend_from_slice(payload);
        self.pad();
    }

    /// A NUL-terminated string, as NLA_STRING attributes are sent by nft.
    pub fn str(&mut self, attr_type: u16, value: &str) {
        let mut payload = Vec::with_capacity(value.len() + 1);
        payload.extend_from_slice(value.as_bytes());
        payload.push(0);
        self.bytes(attr_type, &payload);
    }

    pub fn u32_be(&mut self, attr_type: u16, value: u32) {
        self.bytes(attr_type, &value.to_be_bytes());
    }

    /// A nested attribute (NLA_F_NESTED set) whose children `fill` writes.
    pub fn nested(&mut self, attr_type: u16, fill: impl FnOnce(&mut AttrWriter)) {
        let start = self.buf.len();
        self.buf.extend_from_slice(&[0; 4]);
        fill(self);
        let len = attr_len(self.buf.len() - start);
        self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
        self.buf[start + 2..start + 4]
            .copy_from_slice(&(attr_type | uapi::NLA_F_NESTED).to_ne_bytes());
    }

    fn pad(&mut self) {
        let padded = align4(self.buf.len());
        self.buf.resize(padded, 0);
    }
}

/// nlattr lengths are u16. ironlb's attributes are bounded (names, addresses, a rule's
/// expressions), far below 64 KiB; saturating keeps a corrupt caller from wrapping silently,
/// and the kernel then rejects the message.
fn attr_len(len: usize) -> u16 {
    u16::try_from(len).unwrap_or(u16::MAX)
}

/// What a message in a batch does, to name it in errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageRole {
    BatchBegin,
    /// The NEWTABLE that makes the following delete valid.
    EnsureTable,
    DeleteTable,
    CreateTable,
    Chain {
        chain: usize,
    },
    Map {
        map: usize,
    },
    /// One message of a map's elements; large maps take several.
    MapElements {
        map: usize,
        first: usize,
        count: usize,
    },
    Rule {
        chain: usize,
        rule: usize,
    },
    BatchEnd,
}

impl MessageRole {
    /// A human description, with the chain, map and rule text taken from the ruleset.
    pub fn describe(&self, table: &str, ruleset: Option<&Ruleset>) -> String {
        let chain_name = |i: usize| {
            ruleset
                .and_then(|r| r.chains.get(i))
                .map_or_else(|| format!("#{i}"), |c| c.name.clone())
        };
        let map_name = |i: usize| {
            ruleset
                .and_then(|r| r.maps.get(i))
                .map_or_else(|| format!("#{i}"), |m| m.name.clone())
        };
        match self {
            MessageRole::BatchBegin => "batch begin".to_string(),
            MessageRole::EnsureTable => format!("add table inet {table}"),
            MessageRole::DeleteTable => format!("delete table inet {table}"),
            MessageRole::CreateTable => format!("create table inet {table}"),
            MessageRole::Chain { chain } => format!("add chain {}", chain_name(*chain)),
            MessageRole::Map { map } => format!("add map {}", map_name(*map)),
            MessageRole::MapElements { map, first, count } => format!(
                "elements {}-{} of map {}",
                first + 1,
                first + count,
                map_name(*map)
            ),
            MessageRole::Rule { chain, rule } => {
                let text = ruleset
                    .and_then(|r| r.chains.get(*chain))
                    .and_then(|c| c.rules.get(*rule))
                    .map(|r| r.to_string())
                    .unwrap_or_default();
                format!("rule {} of chain {}: {text}", rule + 1, chain_name(*chain))
            }
            MessageRole::BatchEnd => "batch end".to_string(),
        }
    }
}

/// An encoded batch plus the sequence numbers of its messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    pub bytes: Vec<u8>,
    /// `(seq, role)` of every message, in order.
    pub messages: Vec<(u32, MessageRole)>,
}

impl Batch {
    pub fn role_of(&self, seq: u32) -> Option<MessageRole> {
        self.messages
            .iter()
            .find(|(s, _)| *s == seq)
            .map(|(_, role)| *role)
    }

    pub fn begin_seq(&self) -> u32 {
        self.messages.first().map_or(0, |(seq, _)| *seq)
    }

    /// The sequence number of the last message inside the batch: the one that asks for an ACK.
    pub fn acked_seq(&self) -> u32 {
        let inner = self.messages.len().saturating_sub(2);
        self.messages.get(inner).map_or(0, |(seq, _)| *seq)
    }
}

/// Builds a batch message by message, numbering them from `first_seq`.
struct BatchBuilder {
    bytes: Vec<u8>,
    messages: Vec<(u32, MessageRole)>,
    next_seq: u32,
    last_offset: usize,
}

impl BatchBuilder {
    fn new(first_seq: u32) -> Self {
        let mut builder = BatchBuilder {
            bytes: Vec::new(),
            messages: Vec::new(),
            next_seq: first_seq,
            last_offset: 0,
        };
        builder.batch_marker(uapi::NFNL_MSG_BATCH_BEGIN, MessageRole::BatchBegin);
        builder
    }

    /// BATCH_BEGIN/END carry the subsystem in `res_id`, big-endian.
    fn batch_marker(&mut self, msg_type: u16, role: MessageRole) {
        self.push(
            msg_type,
            uapi::NLM_F_REQUEST,
            0,
            uapi::NFNL_SUBSYS_NFTABLES,
            role,
            AttrWriter::default(),
        );
    }

    fn nftables(&mut self, msg: u16, flags: u16, role: MessageRole, attrs: AttrWriter) {
        self.push(
            (uapi::NFNL_SUBSYS_NFTABLES << 8) | msg,
            uapi::NLM_F_REQUEST | flags,
            uapi::NFPROTO_INET,
            0,
            role,
            attrs,
        );
    }

    fn push(
        &mut self,
        msg_type: u16,
        flags: u16,
        family: u8,
        res_id: u16,
        role: MessageRole,
        attrs: AttrWriter,
    ) {
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        let payload = attrs.into_bytes();
        let len = uapi::NLMSG_HDRLEN + 4 + payload.len();
        self.last_offset = self.bytes.len();
        self.bytes
            .extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_ne_bytes());
        self.bytes.extend_from_slice(&msg_type.to_ne_bytes());
        self.bytes.extend_from_slice(&flags.to_ne_bytes());
        self.bytes.extend_from_slice(&seq.to_ne_bytes());
        self.bytes.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel
        self.bytes.push(family);
        self.bytes.push(uapi::NFNETLINK_V0);
        self.bytes.extend_from_slice(&res_id.to_be_bytes());
        self.bytes.extend_from_slice(&payload);
        self.messages.push((seq, role));
    }

    fn table(&mut self, msg: u16, name: &str, with_flags: bool, role: MessageRole) {
        let mut w = AttrWriter::default();
        w.str(uapi::NFTA_TABLE_NAME, name);
        if with_flags {
            w.u32_be(uapi::NFTA_TABLE_FLAGS, 0);
        }
        self.nftables(msg, 0, role, w);
    }

    /// Ends the batch, first setting NLM_F_ACK on the last message inside it.
    fn finish(mut self) -> Batch {
        if self.messages.len() > 1 {
            let at = self.last_offset + 6;
            let flags = u16::from_ne_bytes([self.bytes[at], self.bytes[at + 1]]);
            self.bytes[at..at + 2].copy_from_slice(&(flags | uapi::NLM_F_ACK).to_ne_bytes());
        }
        self.batch_marker(uapi::NFNL_MSG_BATCH_END, MessageRole::BatchEnd);
        Batch {
            bytes: self.bytes,
            messages: self.messages,
        }
    }
}

fn hook_number(hook: Hook) -> u32 {
    match hook {
        Hook::Prerouting => uapi::NF_INET_PRE_ROUTING,
        Hook::Output => uapi::NF_INET_LOCAL_OUT,
        Hook::Postrouting => uapi::NF_INET_POST_ROUTING,
    }
}

/// nft's datatype ids (`enum datatypes`), combined for a concatenation as
/// `(type << 6) | next`.
const TYPE_IPADDR: u32 = 7;
const TYPE_IP6ADDR: u32 = 8;
const TYPE_INET_PROTOCOL: u32 = 12;
const TYPE_INET_SERVICE: u32 = 13;
const TYPE_BITS: u32 = 6;

/// The key type of `ipv4_addr . inet_proto . inet_service` (or `ipv6_addr . ...`).
pub fn map_key_type(family: Family) -> u32 {
    let addr = match family {
        Family::V4 => TYPE_IPADDR,
        Family::V6 => TYPE_IP6ADDR,
    };
    (((addr << TYPE_BITS) | TYPE_INET_PROTOCOL) << TYPE_BITS) | TYPE_INET_SERVICE
}

/// Key bytes: each field padded to 4 bytes, as in the registers the lookup reads.
fn map_key(family: Family, element: &MapElement) -> Vec<u8> {
    let mut key = match element.addr {
        std::net::IpAddr::V4(v4) => v4.octets().to_vec(),
        std::net::IpAddr::V6(v6) => v6.octets().to_vec(),
    };
    debug_assert_eq!(Family::of(element.addr), family);
    key.extend_from_slice(&[element.protocol.number(), 0, 0, 0]);
    key.extend_from_slice(&element.port.to_be_bytes());
    key.extend_from_slice(&[0, 0]);
    key
}

fn map_key_len(family: Family) -> u32 {
    match family {
        Family::V4 => 12,
        Family::V6 => 24,
    }
}

/// The user data nft 1.0.6 attaches to such a map (key and data byte order, the key's type
/// description, no data interval). The kernel stores it for nft, which reads it back to print
/// the map; sending the same bytes keeps `nft list` output identical to nft's own.
const MAP_USERDATA: [u8; 28] = [
    0x00, 0x04, 0x00, 0x00, 0x00, 0x00, // key byte order
    0x01, 0x04, 0x00, 0x00, 0x00, 0x00, // data byte order
    0x03, 0x08, 0x00, 0x04, 0x0d, 0x00, 0x00, 0x00, 0x01, 0x00, // key type description
    0x06, 0x04, 0x00, 0x00, 0x00, 0x00, // data interval: no
];

/// Elements per NEWSETELEM message are bounded by bytes so that the element list, a nested
/// attribute with a u16 length, stays far below 64 KiB.
const ELEMENTS_BYTES_PER_MESSAGE: usize = 32 * 1024;

impl BatchBuilder {
    fn chain(&mut self, table: &str, index: usize, chain: &Chain) {
        let mut w = AttrWriter::default();
        w.str(uapi::NFTA_CHAIN_TABLE, table);
        w.str(uapi::NFTA_CHAIN_NAME, &chain.name);
        if let Some(base) = &chain.base {
            w.str(uapi::NFTA_CHAIN_TYPE, base.chain_type.nft_name());
            w.u32_be(
                uapi::NFTA_CHAIN_POLICY,
                match base.policy {
                    Policy::Accept => uapi::NF_ACCEPT,
                    Policy::Drop => uapi::NF_DROP,
                },
            );
            w.nested(uapi::NFTA_CHAIN_HOOK, |w| {
                w.u32_be(uapi::NFTA_HOOK_HOOKNUM, hook_number(base.hook));
                // The kernel reads the priority as a big-endian s32.
                w.u32_be(uapi::NFTA_HOOK_PRIORITY, base.priority as u32);
            });
        }
        self.nftables(
            uapi::NFT_MSG_NEWCHAIN,
            uapi::NLM_F_CREATE,
            MessageRole::Chain { chain: index },
            w,
        );
    }

    /// NEWSET for a verdict map, then its elements in as many NEWSETELEM messages as needed.
    /// `set_id` names the map within the batch, for the rules that look it up.
    fn map(&mut self, table: &str, index: usize, map: &VerdictMap, set_id: u32) {
        let mut w = AttrWriter::default();
        w.str(uapi::NFTA_SET_TABLE, table);
        w.str(uapi::NFTA_SET_NAME, &map.name);
        w.u32_be(uapi::NFTA_SET_FLAGS, uapi::NFT_SET_MAP);
        w.u32_be(uapi::NFTA_SET_KEY_TYPE, map_key_type(map.family));
        w.u32_be(uapi::NFTA_SET_KEY_LEN, map_key_len(map.family));
        w.u32_be(uapi::NFTA_SET_DATA_TYPE, uapi::NFT_DATA_VERDICT);
        w.u32_be(uapi::NFTA_SET_DATA_LEN, 0);
        w.u32_be(uapi::NFTA_SET_ID, set_id);
        w.bytes(uapi::NFTA_SET_USERDATA, &MAP_USERDATA);
        self.nftables(
            uapi::NFT_MSG_NEWSET,
            uapi::NLM_F_CREATE,
            MessageRole::Map { map: index },
            w,
        );

        let mut first = 0;
        while first < map.elements.len() {
            let mut elements = AttrWriter::default();
            let mut count = 0;
            for element in &map.elements[first..] {
                if count > 0 && elements.len() >= ELEMENTS_BYTES_PER_MESSAGE {
                    break;
                }
                count += 1;
                // Elements are numbered from 1 within each message, as nft does.
                elements.nested(count as u16, |w| {
                    w.nested(uapi::NFTA_SET_ELEM_KEY, |w| {
                        w.bytes(uapi::NFTA_DATA_VALUE, &map_key(map.family, element))
                    });
                    w.nested(uapi::NFTA_SET_ELEM_DATA, |w| {
                        encode_verdict(w, &Verdict::Goto(element.goto.clone()))
                    });
                });
            }
            let mut w = AttrWriter::default();
            w.str(uapi::NFTA_SET_ELEM_LIST_TABLE, table);
            w.str(uapi::NFTA_SET_ELEM_LIST_SET, &map.name);
            w.u32_be(uapi::NFTA_SET_ELEM_LIST_SET_ID, set_id);
            w.nested(uapi::NFTA_SET_ELEM_LIST_ELEMENTS, |w| {
                w.raw(&elements.into_bytes())
            });
            self.nftables(
                uapi::NFT_MSG_NEWSETELEM,
                uapi::NLM_F_CREATE,
                MessageRole::MapElements {
                    map: index,
                    first,
                    count,
                },
                w,
            );
            first += count;
        }
    }
}

/// Encodes the batch that atomically replaces table `ruleset.table` with `ruleset`.
pub fn encode_replace(ruleset: &Ruleset, first_seq: u32) -> Batch {
    let mut b = BatchBuilder::new(first_seq);
    b.table(
        uapi::NFT_MSG_NEWTABLE,
        &ruleset.table,
        true,
        MessageRole::EnsureTable,
    );
    b.table(
        uapi::NFT_MSG_DELTABLE,
        &ruleset.table,
        false,
        MessageRole::DeleteTable,
    );
    b.table(
        uapi::NFT_MSG_NEWTABLE,
        &ruleset.table,
        true,
        MessageRole::CreateTable,
    );
    for (index, chain) in ruleset.chains.iter().enumerate() {
        b.chain(&ruleset.table, index, chain);
    }
    // Set ids are local to the batch; nft numbers its sets from 1 as well.
    let set_id = |name: &str| {
        ruleset
            .maps
            .iter()
            .position(|m| m.name == name)
            .map(|i| i as u32 + 1)
    };
    for (index, map) in ruleset.maps.iter().enumerate() {
        b.map(&ruleset.table, index, map, index as u32 + 1);
    }
    for (chain_index, chain) in ruleset.chains.iter().enumerate() {
        for (rule_index, rule) in chain.rules.iter().enumerate() {
            let mut w = AttrWriter::default();
            w.str(uapi::NFTA_RULE_TABLE, &ruleset.table);
            w.str(uapi::NFTA_RULE_CHAIN, &chain.name);
            w.nested(uapi::NFTA_RULE_EXPRESSIONS, |w| {
                for expr in lower_rule(rule, &set_id) {
                    expr.encode(w);
                }
            });
            b.nftables(
                uapi::NFT_MSG_NEWRULE,
                uapi::NLM_F_CREATE | uapi::NLM_F_APPEND,
                MessageRole::Rule {
                    chain: chain_index,
                    rule: rule_index,
                },
                w,
            );
        }
    }
    b.finish()
}

/// Encodes the batch that removes `table` if it exists and does nothing otherwise.
pub fn encode_remove(table: &str, first_seq: u32) -> Batch {
    let mut b = BatchBuilder::new(first_seq);
    b.table(
        uapi::NFT_MSG_NEWTABLE,
        table,
        true,
        MessageRole::EnsureTable,
    );
    b.table(
        uapi::NFT_MSG_DELTABLE,
        table,
        false,
        MessageRole::DeleteTable,
    );
    b.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forwarding::entry::L4Protocol;
    use crate::forwarding::mark::MarkBit;
    use crate::forwarding::render::render;
    use crate::forwarding::render::tests::{golden_entries, mk};

    fn parse_hex_file(text: &str) -> Vec<u8> {
        text.lines()
            .filter(|line| !line.starts_with('#'))
            .flat_map(|line| line.split_whitespace())
            .map(|byte| u8::from_str_radix(byte, 16).unwrap())
            .collect()
    }

    /// `(offset, len, type, flags, seq)` of each message.
    fn headers(bytes: &[u8]) -> Vec<(usize, usize, u16, u16, u32)> {
        let mut out = Vec::new();
        let mut offset = 0;
        while offset < bytes.len() {
            let len = u32::from_ne_bytes(bytes[offset..offset + 4].try_into().unwrap()) as usize;
            let msg_type = u16::from_ne_bytes(bytes[offset + 4..offset + 6].try_into().unwrap());
            let flags = u16::from_ne_bytes(bytes[offset + 6..offset + 8].try_into().unwrap());
            let seq = u32::from_ne_bytes(bytes[offset + 8..offset + 12].try_into().unwrap());
            out.push((offset, len, msg_type, flags, seq));
            offset += align4(len);
        }
        assert_eq!(offset, bytes.len(), "messages tile the batch exactly");
        out
    }

    /// The golden file is nft's batch for `testdata/golden.nft`, whose text is what `render`
    /// prints for the golden entries (checked in `render`'s tests); regenerate it with
    /// `testdata/capture_golden.py`.
    #[test]
    #[cfg(target_endian = "little")]
    fn replace_batch_matches_what_nft_sends() {
        let golden = parse_hex_file(include_str!("testdata/nft_replace_golden.hex"));
        let ruleset = render(&golden_entries(), MarkBit::DEFAULT);
        let batch = encode_replace(&ruleset, 0);
        let ours = headers(&batch.bytes);
        let theirs = headers(&golden);
        assert_eq!(ours.len(), theirs.len());
        // Everything but NLM_F_ACK is byte-identical to nft's batch.
        let mut normalised = batch.bytes.clone();
        for (i, (offset, _, _, flags, _)) in ours.iter().enumerate() {
            let acked = flags & uapi::NLM_F_ACK != 0;
            assert_eq!(
                acked,
                i == ours.len() - 2,
                "only the last inner message asks for an ACK"
            );
            normalised[offset + 6..offset + 8]
                .copy_from_slice(&(flags & !uapi::NLM_F_ACK).to_ne_bytes());
        }
        for (i, ((o1, l1, ..), (o2, l2, ..))) in ours.iter().zip(&theirs).enumerate() {
            assert_eq!(
                &normalised[*o1..o1 + l1],
                &golden[*o2..o2 + l2],
                "message {i} ({}) differs from nft's",
                batch.messages[i].1.describe("ironlb", Some(&ruleset))
            );
        }
        assert_eq!(normalised, golden);
    }

    #[test]
    fn replace_batch_orders_and_numbers_its_messages() {
        let ruleset = render(&golden_entries(), MarkBit::DEFAULT);
        let batch = encode_replace(&ruleset, 41);
        let roles: Vec<MessageRole> = batch.messages.iter().map(|(_, r)| *r).collect();
        let mut expected = vec![
            MessageRole::BatchBegin,
            MessageRole::EnsureTable,
            MessageRole::DeleteTable,
            MessageRole::CreateTable,
        ];
        expected.extend((0..ruleset.chains.len()).map(|chain| MessageRole::Chain { chain }));
        for (map, m) in ruleset.maps.iter().enumerate() {
            expected.push(MessageRole::Map { map });
            expected.push(MessageRole::MapElements {
                map,
                first: 0,
                count: m.elements.len(),
            });
        }
        for (chain, c) in ruleset.chains.iter().enumerate() {
            expected.extend((0..c.rules.len()).map(|rule| MessageRole::Rule { chain, rule }));
        }
        expected.push(MessageRole::BatchEnd);
        assert_eq!(roles, expected);

        let seqs: Vec<u32> = batch.messages.iter().map(|(s, _)| *s).collect();
        assert_eq!(seqs, (41..41 + roles.len() as u32).collect::<Vec<_>>());
        assert_eq!(batch.begin_seq(), 41);
        assert_eq!(batch.acked_seq(), 41 + roles.len() as u32 - 2);
        let parsed: Vec<u32> = headers(&batch.bytes).iter().map(|h| h.4).collect();
        assert_eq!(parsed, seqs);

        let describe = |role: MessageRole| role.describe("ironlb", Some(&ruleset));
        let to_nodeports = ruleset
            .chains
            .iter()
            .position(|c| c.name == "to_nodeports")
            .unwrap();
        assert_eq!(
            describe(MessageRole::Rule {
                chain: to_nodeports,
                rule: 0
            }),
            "rule 1 of chain to_nodeports: ip daddr . meta l4proto . th dport vmap @to_nodeports_v4"
        );
        assert_eq!(
            describe(MessageRole::MapElements {
                map: 0,
                first: 0,
                count: 3
            }),
            "elements 1-3 of map to_nodeports_v4"
        );
        assert_eq!(describe(MessageRole::Map { map: 9 }), "add map #9");
        assert_eq!(batch.role_of(9999), None);
    }

    #[test]
    fn large_maps_are_split_below_the_attribute_limit() {
        let entries: Vec<_> = (0..3000u32)
            .map(|i| {
                mk(
                    &format!("2001:db8:100::{:x}", i / 64 + 1),
                    L4Protocol::Tcp,
                    (i % 64 + 1) as u16,
                    "2001:db8::1",
                    (30000 + i) as u16,
                    &[],
                )
            })
            .collect();
        let ruleset = render(&entries, MarkBit::DEFAULT);
        let batch = encode_replace(&ruleset, 1);
        let mut per_map = vec![0usize; ruleset.maps.len()];
        let mut next_first = vec![0usize; ruleset.maps.len()];
        for ((_, role), (_, len, msg_type, ..)) in batch.messages.iter().zip(headers(&batch.bytes))
        {
            if let MessageRole::MapElements { map, first, count } = role {
                assert_eq!(
                    msg_type,
                    (uapi::NFNL_SUBSYS_NFTABLES << 8) | uapi::NFT_MSG_NEWSETELEM
                );
                assert!(len < 40 * 1024, "{len} bytes in one element message");
                assert_eq!(*first, next_first[*map], "chunks are contiguous");
                next_first[*map] += count;
                per_map[*map] += 1;
            }
        }
        for (i, map) in ruleset.maps.iter().enumerate() {
            assert_eq!(next_first[i], map.elements.len());
            assert!(per_map[i] > 1, "3,000 elements take several messages");
        }
    }

    #[test]
    fn map_keys_pad_each_field_to_four_bytes() {
        let element = MapElement {
            addr: "198.51.100.10".parse().unwrap(),
            protocol: L4Protocol::Udp,
            port: 53,
            goto: "x".into(),
        };
        assert_eq!(
            map_key(Family::V4, &element),
            vec![198, 51, 100, 10, 17, 0, 0, 0, 0, 53, 0, 0]
        );
        assert_eq!(map_key_type(Family::V4), 0x730d);
        assert_eq!(map_key_type(Family::V6), 0x830d);
        assert_eq!(map_key_len(Family::V6), 24);
    }

    #[test]
    fn sequence_numbers_wrap() {
        let batch = encode_remove("ironlb", u32::MAX - 1);
        let seqs: Vec<u32> = batch.messages.iter().map(|(s, _)| *s).collect();
        assert_eq!(seqs, vec![u32::MAX - 1, u32::MAX, 0, 1]);
    }

    /// Hand-assembled from the uapi layout: nlmsghdr (len, type, flags, seq, pid), nfgenmsg
    /// (family, version, res_id big-endian), then attributes.
    #[test]
    #[cfg(target_endian = "little")]
    fn remove_batch_bytes() {
        let expected = hex_lines(&[
            // BATCH_BEGIN seq 7, res_id = NFNL_SUBSYS_NFTABLES
            "14000000 1000 0100 07000000 00000000 00 00 000a",
            // NEWTABLE inet, name ironlb, flags 0
            "28000000 000a 0100 08000000 00000000 01 00 0000 0b00 0100 69726f6e6c620000 0800 0200 00000000",
            // DELTABLE inet, name ironlb, with NLM_F_ACK
            "20000000 020a 0500 09000000 00000000 01 00 0000 0b00 0100 69726f6e6c620000",
            // BATCH_END seq 10
            "14000000 1100 0100 0a000000 00000000 00 00 000a",
        ]);
        let batch = encode_remove("ironlb", 7);
        assert_eq!(batch.bytes, expected);
        assert_eq!(batch.acked_seq(), 9);
    }

    fn hex_lines(lines: &[&str]) -> Vec<u8> {
        let digits: String = lines
            .concat()
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        (0..digits.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn chain_priority_is_a_big_endian_signed_value() {
        let ruleset = render(&golden_entries(), MarkBit::DEFAULT);
        let batch = encode_replace(&ruleset, 0);
        let needle = [0x08, 0x00, 0x02, 0x00, 0xff, 0xff, 0xfe, 0xd4]; // -300
        assert!(batch.bytes.windows(8).any(|w| w == needle));
    }

    #[test]
    fn attr_writer_pads_and_nests() {
        let mut w = AttrWriter::default();
        w.nested(3, |w| {
            w.str(1, "ab");
            w.bytes(2, &[]);
        });
        w.raw(&[1, 2, 3]);
        assert_eq!(
            w.into_bytes(),
            vec![
                16, 0, 3, 0x80, 7, 0, 1, 0, b'a', b'b', 0, 0, 4, 0, 2, 0, 1, 2, 3, 0
            ]
        );
    }
}
