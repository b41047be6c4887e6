//! The membership datagram: a versioned, length-checked, HMAC-authenticated message.
//!
//! Layout (all integers big-endian):
//!
//! ```text
//! magic "ILBM" (4) | version (1) | kind (1) | sender epoch (8) | sequence (8)
//! | your state (1) | your incarnation (8)
//! | sender name (1 + n) | recipient name (1 + n)
//! | body: Ping    nonce (8)
//! |       Ack     nonce (8), incarnation (8)
//! |       PingReq nonce (8), target name (1 + n)
//! |       Gossip  (empty)
//! | update count (1) | updates: state (1), incarnation (8), member name (1 + n)
//! | tag: HMAC-SHA256 over every byte before it (32)
//! ```
//!
//! The recipient's name is inside the authenticated bytes so that a datagram captured on its way
//! to one member cannot be replayed to another. "Your state" is how the sender sees the
//! recipient; it is how a member learns that it is suspected and must refute.
//!
//! Decoding checks, in order: size, magic, version, tag, then the body. Nothing after the version
//! is parsed before the tag is verified.

use super::key::{Key, TAG_LEN};
use super::state::{MemberState, Status, Update};

pub const MAGIC: [u8; 4] = *b"ILBM";
pub const VERSION: u8 = 1;
/// Largest datagram sent or accepted; fits a 1500-byte Ethernet MTU without fragmentation.
pub const MAX_DATAGRAM_LEN: usize = 1400;
/// Longest member name: a Kubernetes node name is a DNS subdomain of at most 253 characters.
pub const MAX_NAME_LEN: usize = 253;

const FIXED_HEADER_LEN: usize = 4 + 1 + 1 + 8 + 8 + 1 + 8;
/// The shortest well-formed datagram: fixed header, two one-byte names, a Gossip body, no updates.
pub const MIN_DATAGRAM_LEN: usize = FIXED_HEADER_LEN + 2 * 2 + 1 + TAG_LEN;

const KIND_PING: u8 = 1;
const KIND_ACK: u8 = 2;
const KIND_PING_REQ: u8 = 3;
const KIND_GOSSIP: u8 = 4;

/// What the datagram asks or answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// "Are you alive?" The recipient answers with an `Ack` echoing `nonce`.
    Ping { nonce: u64 },
    /// The answer to a `Ping` or `PingReq` with the same nonce: the probed member was alive at
    /// `incarnation`.
    Ack { nonce: u64, incarnation: u64 },
    /// "Probe `target` for me and send me an `Ack` with `nonce` if it answers."
    PingReq { nonce: u64, target: String },
    /// Only carries updates: suspicion, death, refutation and leave announcements.
    Gossip,
}

/// One membership datagram, decoded and authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub sender: String,
    pub recipient: String,
    /// Random per process start; a new epoch means the sender restarted.
    pub epoch: u64,
    /// Strictly increasing per sender within an epoch.
    pub seq: u64,
    /// The sender's belief about the recipient.
    pub your_status: Status,
    pub body: Body,
    pub updates: Vec<Update>,
}

/// Why a received datagram was dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("datagram of {len} bytes is longer than the {MAX_DATAGRAM_LEN}-byte maximum")]
    TooLong { len: usize },
    #[error("datagram of {len} bytes is shorter than the {MIN_DATAGRAM_LEN}-byte minimum")]
    TooShort { len: usize },
    #[error("datagram does not start with the membership magic")]
    BadMagic,
    #[error("unsupported membership protocol version {0} (this speaker speaks {VERSION})")]
    UnsupportedVersion(u8),
    #[error("authentication tag does not match (wrong or missing key)")]
    BadTag,
    #[error("unknown message kind {0}")]
    UnknownKind(u8),
    #[error("datagram ends inside the {0} field")]
    Truncated(&'static str),
    #[error("the {0} field is not a valid member name")]
    BadName(&'static str),
    #[error("unknown member state code {0}")]
    UnknownState(u8),
    #[error("an update cannot carry the unknown state")]
    UnknownStateInUpdate,
    #[error("{0} unexpected bytes after the last update")]
    TrailingBytes(usize),
}

impl DecodeError {
    /// Whether the datagram failed authentication (as opposed to being malformed).
    pub fn is_auth_failure(&self) -> bool {
        matches!(self, Self::BadTag)
    }
}

/// Why a message could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("member name {0:?} is empty or longer than {MAX_NAME_LEN} bytes")]
    BadName(String),
    #[error("updates can only carry known states, not {0}")]
    UnknownStateInUpdate(String),
    #[error("encoded message would be {len} bytes, over the {MAX_DATAGRAM_LEN}-byte maximum")]
    TooLong { len: usize },
}

/// Whether `name` can be carried on the wire.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_NAME_LEN
}

/// Encoded size of one update.
pub fn update_len(update: &Update) -> usize {
    1 + 8 + 1 + update.member.len()
}

impl Message {
    /// Encoded size including the tag.
    pub fn encoded_len(&self) -> usize {
        let body = match &self.body {
            Body::Ping { .. } => 8,
            Body::Ack { .. } => 16,
            Body::PingReq { target, .. } => 8 + 1 + target.len(),
            Body::Gossip => 0,
        };
        FIXED_HEADER_LEN
            + 1
            + self.sender.len()
            + 1
            + self.recipient.len()
            + body
            + 1
            + self.updates.iter().map(update_len).sum::<usize>()
            + TAG_LEN
    }

    /// Serialises and signs the message.
    pub fn encode(&self, key: &Key) -> Result<Vec<u8>, EncodeError> {
        let mut names = vec![&self.sender, &self.recipient];
        if let Body::PingReq { target, .. } = &self.body {
            names.push(target);
        }
        names.extend(self.updates.iter().map(|u| &u.member));
        if let Some(bad) = names.into_iter().find(|n| !valid_name(n)) {
            return Err(EncodeError::BadName(bad.clone()));
        }
        if let Some(u) = self
            .updates
            .iter()
            .find(|u| u.status.state == MemberState::Unknown)
        {
            return Err(EncodeError::UnknownStateInUpdate(u.member.clone()));
        }
        if self.updates.len() > usize::from(u8::MAX) {
            return Err(EncodeError::TooLong {
                len: self.encoded_len(),
            });
        }
        let len = self.encoded_len();
        if len > MAX_DATAGRAM_LEN {
            return Err(EncodeError::TooLong { len });
        }

        let mut out = Vec::with_capacity(len);
        out.extend_from_slice(&MAGIC);
        out.push(VERSION);
        out.push(match self.body {
            Body::Ping { .. } => KIND_PING,
            Body::Ack { .. } => KIND_ACK,
            Body::PingReq { .. } => KIND_PING_REQ,
            Body::Gossip => KIND_GOSSIP,
        });
        out.extend_from_slice(&self.epoch.to_be_bytes());
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.push(self.your_status.state.code());
        out.extend_from_slice(&self.your_status.incarnation.to_be_bytes());
        put_name(&mut out, &self.sender);
        put_name(&mut out, &self.recipient);
        match &self.body {
            Body::Ping { nonce } => out.extend_from_slice(&nonce.to_be_bytes()),
            Body::Ack { nonce, incarnation } => {
                out.extend_from_slice(&nonce.to_be_bytes());
                out.extend_from_slice(&incarnation.to_be_bytes());
            }
            Body::PingReq { nonce, target } => {
                out.extend_from_slice(&nonce.to_be_bytes());
                put_name(&mut out, target);
            }
            Body::Gossip => {}
        }
        // Checked above: at most 255 updates.
        out.push(self.updates.len() as u8);
        for u in &self.updates {
            out.push(u.status.state.code());
            out.extend_from_slice(&u.status.incarnation.to_be_bytes());
            put_name(&mut out, &u.member);
        }
        let tag = key.tag(&out);
        out.extend_from_slice(&tag);
        debug_assert_eq!(out.len(), len);
        Ok(out)
    }

    /// Checks, authenticates and parses a received datagram.
    pub fn decode(datagram: &[u8], key: &Key) -> Result<Message, DecodeError> {
        let len = datagram.len();
        if len > MAX_DATAGRAM_LEN {
            return Err(DecodeError::TooLong { len });
        }
        if len < MIN_DATAGRAM_LEN {
            return Err(DecodeError::TooShort { len });
        }
        if datagram[..4] != MAGIC {
            return Err(DecodeError::BadMagic);
        }
        if datagram[4] != VERSION {
            return Err(DecodeError::UnsupportedVersion(datagram[4]));
        }
        let (signed, tag) = datagram.split_at(len - TAG_LEN);
        if !key.verify(signed, tag) {
            return Err(DecodeError::BadTag);
        }

        let mut r = Reader { buf: &signed[5..] };
        let kind = r.u8("kind")?;
        let epoch = r.u64("epoch")?;
        let seq = r.u64("sequence")?;
        let your_state = r.state("your state")?;
        let your_incarnation = r.u64("your incarnation")?;
        let sender = r.name("sender")?;
        let recipient = r.name("recipient")?;
        let body = match kind {
            KIND_PING => Body::Ping {
                nonce: r.u64("nonce")?,
            },
            KIND_ACK => Body::Ack {
                nonce: r.u64("nonce")?,
                incarnation: r.u64("incarnation")?,
            },
            KIND_PING_REQ => Body::PingReq {
                nonce: r.u64("nonce")?,
                target: r.name("target")?,
            },
            KIND_GOSSIP => Body::Gossip,
            other => return Err(DecodeError::UnknownKind(other)),
        };
        let count = r.u8("update count")?;
        let mut updates = Vec::with_capacity(usize::from(count));
        for _ in 0..count {
            let state = r.state("update state")?;
            if state == MemberState::Unknown {
                return Err(DecodeError::UnknownStateInUpdate);
            }
            let incarnation = r.u64("update incarnation")?;
            let member = r.name("update member")?;
            updates.push(Update {
                member,
                status: Status::new(state, incarnation),
            });
        }
        if !r.buf.is_empty() {
            return Err(DecodeError::TrailingBytes(r.buf.len()));
        }
        Ok(Message {
            sender,
            recipient,
            epoch,
            seq,
            your_status: Status::new(your_state, your_incarnation),
            body,
            updates,
        })
    }
}

fn put_name(out: &mut Vec<u8>, name: &str) {
    // Callers have checked valid_name, so the length fits a byte.
    out.push(name.len() as u8);
    out.extend_from_slice(name.as_bytes());
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(DecodeError::Truncated(field));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        Ok(self.take(1, field)?[0])
    }

    fn u64(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        let bytes = self.take(8, field)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(bytes);
        Ok(u64::from_be_bytes(a))
    }

    fn state(&mut self, field: &'static str) -> Result<MemberState, DecodeError> {
        let code = self.u8(field)?;
        MemberState::from_code(code).ok_or(DecodeError::UnknownState(code))
    }

    fn name(&mut self, field: &'static str) -> Result<String, DecodeError> {
        let len = usize::from(self.u8(field)?);
        let bytes = self.take(len, field)?;
        match std::str::from_utf8(bytes) {
            Ok(s) if valid_name(s) => Ok(s.to_owned()),
            _ => Err(DecodeError::BadName(field)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key() -> Key {
        Key::from_file_contents(b"ironlb-test-key-0123456789").unwrap()
    }

    fn ping() -> Message {
        Message {
            sender: "a".into(),
            recipient: "b".into(),
            epoch: 0x0102030405060708,
            seq: 9,
            your_status: Status::new(MemberState::Suspect, 3),
            body: Body::Ping { nonce: 0xAABB },
            updates: vec![Update {
                member: "c".into(),
                status: Status::new(MemberState::Dead, 2),
            }],
        }
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Re-signs a (possibly corrupted) datagram body so that body checks are reached.
    fn resign(mut d: Vec<u8>) -> Vec<u8> {
        let n = d.len() - TAG_LEN;
        let tag = key().tag(&d[..n]);
        d[n..].copy_from_slice(&tag);
        d
    }

    #[test]
    fn ping_golden_bytes() {
        let bytes = ping().encode(&key()).unwrap();
        let (signed, tag) = bytes.split_at(bytes.len() - TAG_LEN);
        assert_eq!(
            hex(signed),
            concat!(
                "494c424d",
                "01",
                "01",               // magic, version, kind Ping
                "0102030405060708", // epoch
                "0000000000000009", // sequence
                "02",
                "0000000000000003", // your status: suspect at 3
                "0161",
                "0162",             // sender "a", recipient "b"
                "000000000000aabb", // nonce
                "01",
                "03",
                "0000000000000002",
                "0163", // one update: c dead at 2
            )
        );
        assert_eq!(tag, key().tag(signed));
        assert_eq!(bytes.len(), ping().encoded_len());
    }

    #[test]
    fn ack_ping_req_and_gossip_golden_bytes() {
        let mut m = ping();
        m.updates.clear();
        m.your_status = Status::new(MemberState::Alive, 0);
        m.body = Body::Ack {
            nonce: 1,
            incarnation: 7,
        };
        let b = m.encode(&key()).unwrap();
        assert_eq!(
            hex(&b[..b.len() - TAG_LEN]),
            "494c424d0102010203040506070800000000000000090100000000000000000161016200000000000000010000000000000007 00"
                .replace(' ', "")
        );
        m.body = Body::PingReq {
            nonce: 2,
            target: "zz".into(),
        };
        let b = m.encode(&key()).unwrap();
        assert_eq!(hex(&b[5..6]), "03", "kind byte of PingReq");
        assert!(hex(&b[..b.len() - TAG_LEN]).ends_with("0000000000000002027a7a00"));
        m.body = Body::Gossip;
        let b = m.encode(&key()).unwrap();
        assert_eq!(b.len(), MIN_DATAGRAM_LEN);
        assert_eq!(b[5], 4);
    }

    #[test]
    fn every_body_round_trips() {
        let bodies = [
            Body::Ping { nonce: u64::MAX },
            Body::Ack {
                nonce: 5,
                incarnation: 6,
            },
            Body::PingReq {
                nonce: 7,
                target: "node-3".into(),
            },
            Body::Gossip,
        ];
        for body in bodies {
            let mut m = ping();
            m.body = body;
            let bytes = m.encode(&key()).unwrap();
            assert_eq!(Message::decode(&bytes, &key()).unwrap(), m);
        }
    }

    #[test]
    fn malformed_datagrams_get_typed_errors() {
        let good = ping().encode(&key()).unwrap();
        let mut long_message = ping();
        long_message.updates = vec![long_message.updates[0].clone(); 5];
        let long = long_message.encode(&key()).unwrap();
        let mut cases: Vec<(&str, Vec<u8>, DecodeError)> = vec![
            ("empty", vec![], DecodeError::TooShort { len: 0 }),
            (
                "oversized",
                vec![0; MAX_DATAGRAM_LEN + 1],
                DecodeError::TooLong {
                    len: MAX_DATAGRAM_LEN + 1,
                },
            ),
            (
                "truncated below minimum",
                good[..MIN_DATAGRAM_LEN - 1].to_vec(),
                DecodeError::TooShort {
                    len: MIN_DATAGRAM_LEN - 1,
                },
            ),
            (
                "tag missing from a short datagram",
                good[..good.len() - TAG_LEN].to_vec(),
                DecodeError::TooShort {
                    len: good.len() - TAG_LEN,
                },
            ),
            (
                "tag missing from a long datagram",
                long[..long.len() - TAG_LEN].to_vec(),
                DecodeError::BadTag,
            ),
            (
                "truncated by one byte",
                good[..good.len() - 1].to_vec(),
                DecodeError::BadTag,
            ),
        ];
        let mut bad_magic = good.clone();
        bad_magic[0] = b'X';
        cases.push(("bad magic", bad_magic, DecodeError::BadMagic));
        let mut bad_version = good.clone();
        bad_version[4] = 2;
        cases.push((
            "bad version",
            bad_version,
            DecodeError::UnsupportedVersion(2),
        ));
        let mut flipped = good.clone();
        flipped[20] ^= 1;
        cases.push(("bit flip in sequence", flipped, DecodeError::BadTag));
        let mut flipped_tag = good.clone();
        let last = flipped_tag.len() - 1;
        flipped_tag[last] ^= 0x80;
        cases.push(("bit flip in tag", flipped_tag, DecodeError::BadTag));
        let wrong_key = Key::from_file_contents(b"another-key-entirely-xx").unwrap();
        cases.push((
            "signed with another key",
            ping().encode(&wrong_key).unwrap(),
            DecodeError::BadTag,
        ));

        // Body errors behind a valid tag: corrupt, then re-sign.
        let mut kind = good.clone();
        kind[5] = 9;
        cases.push(("unknown kind", resign(kind), DecodeError::UnknownKind(9)));
        let mut state = good.clone();
        state[22] = 7;
        cases.push((
            "unknown your-state",
            resign(state),
            DecodeError::UnknownState(7),
        ));
        let mut name_len = good.clone();
        name_len[31] = 0;
        cases.push((
            "empty sender name",
            resign(name_len),
            DecodeError::BadName("sender"),
        ));
        let mut utf8 = good.clone();
        utf8[32] = 0xff;
        cases.push((
            "sender not UTF-8",
            resign(utf8),
            DecodeError::BadName("sender"),
        ));
        let mut lying_len = good.clone();
        lying_len[33] = 200;
        cases.push((
            "recipient length past the end",
            resign(lying_len),
            DecodeError::Truncated("recipient"),
        ));
        let count_at = good.len() - TAG_LEN - update_len(&ping().updates[0]) - 1;
        let mut count = good.clone();
        count[count_at] = 2;
        cases.push((
            "update count larger than the updates",
            resign(count),
            DecodeError::Truncated("update state"),
        ));
        let mut zero = good.clone();
        zero[count_at] = 0;
        cases.push((
            "update count smaller than the updates",
            resign(zero),
            DecodeError::TrailingBytes(update_len(&ping().updates[0])),
        ));
        let mut unknown_update = good.clone();
        unknown_update[count_at + 1] = 0;
        cases.push((
            "update with unknown state",
            resign(unknown_update),
            DecodeError::UnknownStateInUpdate,
        ));

        for (what, bytes, want) in cases {
            assert_eq!(Message::decode(&bytes, &key()), Err(want), "{what}");
        }
    }

    #[test]
    fn auth_failures_are_told_apart_from_malformed() {
        assert!(DecodeError::BadTag.is_auth_failure());
        assert!(!DecodeError::BadMagic.is_auth_failure());
        assert!(!DecodeError::TooShort { len: 0 }.is_auth_failure());
    }

    #[test]
    fn encode_refuses_bad_names_unknown_updates_and_oversize() {
        let mut m = ping();
        m.sender = String::new();
        assert!(matches!(m.encode(&key()), Err(EncodeError::BadName(_))));
        let mut m = ping();
        m.recipient = "x".repeat(MAX_NAME_LEN + 1);
        assert!(matches!(m.encode(&key()), Err(EncodeError::BadName(_))));
        let mut m = ping();
        m.updates[0].status.state = MemberState::Unknown;
        assert!(matches!(
            m.encode(&key()),
            Err(EncodeError::UnknownStateInUpdate(_))
        ));
        let mut m = ping();
        m.updates = (0..10)
            .map(|i| Update {
                member: format!("{i}{}", "n".repeat(200)),
                status: Status::new(MemberState::Alive, 1),
            })
            .collect();
        assert!(matches!(m.encode(&key()), Err(EncodeError::TooLong { .. })));
        // A maximal-length name is fine.
        let mut m = ping();
        m.sender = "s".repeat(MAX_NAME_LEN);
        let b = m.encode(&key()).unwrap();
        assert_eq!(Message::decode(&b, &key()).unwrap().sender, m.sender);
    }

    fn arb_name() -> impl Strategy<Value = String> {
        "[a-z0-9.-]{1,40}"
    }

    fn arb_status() -> impl Strategy<Value = Status> {
        (1u8..5, any::<u64>()).prop_map(|(c, i)| {
            Status::new(MemberState::from_code(c).unwrap_or(MemberState::Alive), i)
        })
    }

    fn arb_message() -> impl Strategy<Value = Message> {
        let body = prop_oneof![
            any::<u64>().prop_map(|nonce| Body::Ping { nonce }),
            (any::<u64>(), any::<u64>())
                .prop_map(|(nonce, incarnation)| Body::Ack { nonce, incarnation }),
            (any::<u64>(), arb_name()).prop_map(|(nonce, target)| Body::PingReq { nonce, target }),
            Just(Body::Gossip),
        ];
        let update =
            (arb_name(), arb_status()).prop_map(|(member, status)| Update { member, status });
        (
            arb_name(),
            arb_name(),
            any::<u64>(),
            any::<u64>(),
            (0u8..5, any::<u64>()),
            body,
            proptest::collection::vec(update, 0..8),
        )
            .prop_map(
                |(sender, recipient, epoch, seq, (c, i), body, updates)| Message {
                    sender,
                    recipient,
                    epoch,
                    seq,
                    your_status: Status::new(
                        MemberState::from_code(c).unwrap_or(MemberState::Alive),
                        i,
                    ),
                    body,
                    updates,
                },
            )
    }

    proptest! {
        #[test]
        fn round_trip(m in arb_message()) {
            let bytes = m.encode(&key()).unwrap();
            prop_assert_eq!(bytes.len(), m.encoded_len());
            prop_assert_eq!(Message::decode(&bytes, &key()).unwrap(), m);
        }

        /// Arbitrary bytes never panic and never authenticate.
        #[test]
        fn arbitrary_bytes_are_rejected(bytes in proptest::collection::vec(any::<u8>(), 0..1600)) {
            prop_assert!(Message::decode(&bytes, &key()).is_err());
        }

        /// Arbitrary bytes with the right framing and a valid tag never panic.
        #[test]
        fn arbitrary_signed_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut d = MAGIC.to_vec();
            d.push(VERSION);
            d.extend_from_slice(&body);
            d.extend_from_slice(&[0; TAG_LEN]);
            if d.len() >= MIN_DATAGRAM_LEN {
                let _ = Message::decode(&resign(d), &key());
            }
        }

        /// Any single-bit change of a genuine datagram is rejected.
        #[test]
        fn bit_flips_are_rejected(m in arb_message(), bit in any::<proptest::sample::Index>()) {
            let mut bytes = m.encode(&key()).unwrap();
            let i = bit.index(bytes.len() * 8);
            bytes[i / 8] ^= 1 << (i % 8);
            prop_assert!(Message::decode(&bytes, &key()).is_err());
        }
    }
}
