//! Decoding of what the kernel answers to a batch: `NLMSG_ERROR` messages, which are ACKs
//! when their error code is 0.
//!
//! A datagram holds one or more netlink messages. Malformed input (a header shorter than 16
//! bytes, a length that runs past the datagram, an error message too short for its code) is a
//! typed error, never a panic. Other message types are returned as [`Reply::Other`] for the
//! caller to ignore.
//!
//! Pure: bytes in, values out.

use super::netlink_msg::uapi;

/// One decoded message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// The message with sequence number `seq` succeeded.
    Ack { seq: u32 },
    /// The message with sequence number `seq` failed with `errno` (positive), and the kernel's
    /// extended-ACK text when it sent one.
    Error {
        seq: u32,
        errno: i32,
        message: Option<String>,
    },
    /// Any other message type.
    Other { msg_type: u16, seq: u32 },
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    #[error("netlink reply truncated: {len} bytes left at offset {offset}, need a 16-byte header")]
    TruncatedHeader { offset: usize, len: usize },
    #[error("netlink message at offset {offset} claims {claimed} bytes, {available} available")]
    BadLength {
        offset: usize,
        claimed: usize,
        available: usize,
    },
    #[error("netlink error message at offset {offset} is too short ({len} bytes)")]
    ShortError { offset: usize, len: usize },
}

fn u16_at(buf: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(buf.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(buf: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(buf.get(at..at + 4)?.try_into().ok()?))
}

/// Decodes every message in one received datagram.
pub fn parse_replies(buf: &[u8]) -> Result<Vec<Reply>, ReplyError> {
    let mut out = Vec::new();
    let mut offset = 0;
    while offset < buf.len() {
        let rest = &buf[offset..];
        if rest.len() < uapi::NLMSG_HDRLEN {
            return Err(ReplyError::TruncatedHeader {
                offset,
                len: rest.len(),
            });
        }
        let header = |at| u32_at(rest, at).unwrap_or(0);
        let len = header(0) as usize;
        if len < uapi::NLMSG_HDRLEN || len > rest.len() {
            return Err(ReplyError::BadLength {
                offset,
                claimed: len,
                available: rest.len(),
            });
        }
        let msg = &rest[..len];
        let msg_type = u16_at(msg, 4).unwrap_or(0);
        let flags = u16_at(msg, 6).unwrap_or(0);
        let seq = header(8);
        if msg_type == uapi::NLMSG_ERROR {
            out.push(parse_error(msg, flags, offset)?);
        } else {
            out.push(Reply::Other { msg_type, seq });
        }
        // The last message of a datagram may omit its padding.
        offset += ((len + 3) & !3).min(rest.len());
    }
    Ok(out)
}

/// `struct nlmsgerr { int error; struct nlmsghdr msg; }`, then (unless capped) the rest of the
/// original message, then extended-ACK attributes when NLM_F_ACK_TLVS is set. The sequence
/// number that matters is the original message's.
fn parse_error(msg: &[u8], flags: u16, offset: usize) -> Result<Reply, ReplyError> {
    let body = &msg[uapi::NLMSG_HDRLEN..];
    let short = || ReplyError::ShortError {
        offset,
        len: msg.len(),
    };
    if body.len() < 4 + uapi::NLMSG_HDRLEN {
        return Err(short());
    }
    let error = i32::from_ne_bytes(body[0..4].try_into().map_err(|_| short())?);
    let original_len = u32_at(body, 4).ok_or_else(short)? as usize;
    let seq = u32_at(body, 12).ok_or_else(short)?;
    if error == 0 {
        return Ok(Reply::Ack { seq });
    }
    let echoed = if flags & uapi::NLM_F_CAPPED != 0 {
        uapi::NLMSG_HDRLEN
    } else {
        (original_len.max(uapi::NLMSG_HDRLEN) + 3) & !3
    };
    let message = if flags & uapi::NLM_F_ACK_TLVS != 0 {
        body.get(4 + echoed..).and_then(extack_message)
    } else {
        None
    };
    Ok(Reply::Error {
        seq,
        errno: error.saturating_neg(),
        message,
    })
}

/// Finds NLMSGERR_ATTR_MSG in the extended-ACK attributes; tolerant of garbage.
fn extack_message(mut attrs: &[u8]) -> Option<String> {
    while attrs.len() >= 4 {
        let len = usize::from(u16_at(attrs, 0)?);
        let attr_type = u16_at(attrs, 2)? & uapi::NLA_TYPE_MASK;
        if len < 4 || len > attrs.len() {
            return None;
        }
        if attr_type == uapi::NLMSGERR_ATTR_MSG {
            let text = &attrs[4..len];
            let text = text.split(|b| *b == 0).next().unwrap_or(text);
            return Some(String::from_utf8_lossy(text).into_owned());
        }
        attrs = attrs.get((len + 3) & !3..).unwrap_or(&[]);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn nlmsghdr(len: u32, msg_type: u16, flags: u16, seq: u32) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&len.to_ne_bytes());
        v.extend_from_slice(&msg_type.to_ne_bytes());
        v.extend_from_slice(&flags.to_ne_bytes());
        v.extend_from_slice(&seq.to_ne_bytes());
        v.extend_from_slice(&1234u32.to_ne_bytes());
        v
    }

    /// An error/ACK as the kernel builds it with NETLINK_CAP_ACK set.
    fn capped_error(reply_seq: u32, error: i32, original_seq: u32, tlvs: &[u8]) -> Vec<u8> {
        let flags = uapi::NLM_F_CAPPED
            | if tlvs.is_empty() {
                0
            } else {
                uapi::NLM_F_ACK_TLVS
            };
        let len = (16 + 4 + 16 + tlvs.len()) as u32;
        let mut v = nlmsghdr(len, uapi::NLMSG_ERROR, flags, reply_seq);
        v.extend_from_slice(&error.to_ne_bytes());
        v.extend_from_slice(&nlmsghdr(600, 0x0a06, 0x0c05, original_seq));
        v.extend_from_slice(tlvs);
        v
    }

    fn msg_tlv(text: &str) -> Vec<u8> {
        let mut v = Vec::new();
        let len = 4 + text.len() + 1;
        v.extend_from_slice(&(len as u16).to_ne_bytes());
        v.extend_from_slice(&uapi::NLMSGERR_ATTR_MSG.to_ne_bytes());
        v.extend_from_slice(text.as_bytes());
        v.push(0);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v
    }

    #[test]
    fn decodes_acks_errors_and_others_in_one_datagram() {
        let mut datagram = capped_error(9, 0, 9, &[]);
        datagram.extend(capped_error(5, -95, 5, &msg_tlv("Operation not supported")));
        datagram.extend(nlmsghdr(16, 3, 0, 2)); // NLMSG_DONE
        assert_eq!(
            parse_replies(&datagram).unwrap(),
            vec![
                Reply::Ack { seq: 9 },
                Reply::Error {
                    seq: 5,
                    errno: 95,
                    message: Some("Operation not supported".into())
                },
                Reply::Other {
                    msg_type: 3,
                    seq: 2
                },
            ]
        );
    }

    #[test]
    fn uncapped_errors_skip_the_echoed_message() {
        // Without NETLINK_CAP_ACK the kernel echoes the whole original message.
        let original_payload = [0xaau8; 8];
        let mut original = nlmsghdr(24, 0x0a06, 0x0c05, 77);
        original.extend_from_slice(&original_payload);
        let tlv = msg_tlv("bad");
        let len = (16 + 4 + original.len() + tlv.len()) as u32;
        let mut v = nlmsghdr(len, uapi::NLMSG_ERROR, uapi::NLM_F_ACK_TLVS, 77);
        v.extend_from_slice(&(-22i32).to_ne_bytes());
        v.extend_from_slice(&original);
        v.extend_from_slice(&tlv);
        assert_eq!(
            parse_replies(&v).unwrap(),
            vec![Reply::Error {
                seq: 77,
                errno: 22,
                message: Some("bad".into())
            }]
        );
    }

    #[test]
    fn malformed_replies_are_typed_errors() {
        let ack = capped_error(1, 0, 1, &[]);
        let cases: Vec<(Vec<u8>, ReplyError)> = vec![
            (
                ack[..10].to_vec(),
                ReplyError::TruncatedHeader { offset: 0, len: 10 },
            ),
            (
                {
                    let mut v = ack.clone();
                    v[0..4].copy_from_slice(&100u32.to_ne_bytes());
                    v
                },
                ReplyError::BadLength {
                    offset: 0,
                    claimed: 100,
                    available: 36,
                },
            ),
            (
                {
                    let mut v = ack.clone();
                    v[0..4].copy_from_slice(&8u32.to_ne_bytes());
                    v
                },
                ReplyError::BadLength {
                    offset: 0,
                    claimed: 8,
                    available: 36,
                },
            ),
            (
                {
                    let mut v = nlmsghdr(24, uapi::NLMSG_ERROR, 0, 1);
                    v.extend_from_slice(&[0; 8]);
                    v
                },
                ReplyError::ShortError { offset: 0, len: 24 },
            ),
            (
                {
                    let mut v = ack.clone();
                    v.extend_from_slice(&[1, 2, 3]);
                    v
                },
                ReplyError::TruncatedHeader { offset: 36, len: 3 },
            ),
        ];
        for (bytes, expected) in cases {
            assert_eq!(parse_replies(&bytes), Err(expected.clone()), "{expected}");
        }
    }

    #[test]
    fn garbage_extack_attributes_are_ignored() {
        let bad_tlv = [200u8, 0, 1, 0, b'x', 0, 0, 0]; // length past the end
        let v = capped_error(3, -1, 3, &bad_tlv);
        assert_eq!(
            parse_replies(&v).unwrap(),
            vec![Reply::Error {
                seq: 3,
                errno: 1,
                message: None
            }]
        );
        let zero_len = [0u8, 0, 1, 0];
        let v = capped_error(3, -1, 3, &zero_len);
        assert_eq!(
            parse_replies(&v).unwrap(),
            vec![Reply::Error {
                seq: 3,
                errno: 1,
                message: None
            }]
        );
    }

    #[test]
    fn empty_datagram_has_no_replies() {
        assert_eq!(parse_replies(&[]), Ok(vec![]));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            let _ = parse_replies(&bytes);
        }

        #[test]
        fn corrupted_valid_replies_never_panic(
            index in 0usize..64,
            value in any::<u8>(),
            errno in -200i32..=0,
        ) {
            let mut v = capped_error(1, errno, 1, &msg_tlv("some text"));
            let at = index % v.len();
            v[at] = value;
            let _ = parse_replies(&v);
        }
    }
}
