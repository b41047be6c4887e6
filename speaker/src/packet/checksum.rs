//! The Internet checksum (RFC 1071) over the ICMPv6 pseudo-header (RFC 8200 section 8.1).

use std::net::Ipv6Addr;

use super::ipv6::NEXT_HEADER_ICMPV6;

/// Offset of the checksum field in every ICMPv6 message.
pub const FIELD: std::ops::Range<usize> = 2..4;

/// The checksum `message`, sent from `src` to `dst`, must carry. The checksum field itself is
/// read as zero, so this works both for emitting and for verifying. `message` is at least 4
/// bytes long (every ICMPv6 view checks that).
pub fn icmpv6(src: Ipv6Addr, dst: Ipv6Addr, message: &[u8]) -> u16 {
    let mut sum = sum_words(&src.octets(), 0);
    sum = sum_words(&dst.octets(), sum);
    // Upper-layer length is 32 bits; NDP messages are bounded by a 16-bit payload length.
    sum += (message.len() as u32) >> 16;
    sum += (message.len() as u32) & 0xffff;
    sum += u32::from(NEXT_HEADER_ICMPV6);
    sum = sum_words(&message[..FIELD.start], sum);
    sum = sum_words(&message[FIELD.end..], sum);
    !fold(sum)
}

/// True when `stored` is a correct encoding of `expected`. One's complement has two zeroes,
/// and a receiver must accept either (RFC 1624 section 3).
pub fn matches(stored: u16, expected: u16) -> bool {
    stored == expected || (expected == 0 && stored == 0xffff)
}

fn sum_words(bytes: &[u8], mut sum: u32) -> u32 {
    let mut chunks = bytes.chunks_exact(2);
    for word in &mut chunks {
        sum += u32::from(u16::from_be_bytes([word[0], word[1]]));
        // Fold early so a 64 KiB message cannot overflow the accumulator.
        sum = (sum & 0xffff) + (sum >> 16);
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    sum
}

fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example_words() {
        // RFC 1071 section 3: the words 0001 f203 f4f5 f6f7 sum to ddf2 (before complement).
        assert_eq!(
            fold(sum_words(
                &[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7],
                0
            )),
            0xddf2
        );
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(sum_words(&[0x12, 0x34, 0x56], 0), 0x1234 + 0x5600);
    }

    #[test]
    fn checksum_field_is_read_as_zero() {
        let src: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let dst: Ipv6Addr = "2001:db8::2".parse().unwrap();
        let mut message = vec![135, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5];
        let value = icmpv6(src, dst, &message);
        message[FIELD].copy_from_slice(&value.to_be_bytes());
        assert_eq!(icmpv6(src, dst, &message), value);
        // The classic check: summing everything, checksum included, gives all ones.
        let mut with_pseudo = src.octets().to_vec();
        with_pseudo.extend_from_slice(&dst.octets());
        with_pseudo.extend_from_slice(&[0, 0, 0, message.len() as u8, 0, 0, 0, 58]);
        with_pseudo.extend_from_slice(&message);
        assert_eq!(fold(sum_words(&with_pseudo, 0)), 0xffff);
        message[12] ^= 1;
        assert_ne!(icmpv6(src, dst, &message), value);
    }

    #[test]
    fn both_zeroes_are_accepted() {
        assert!(matches(0x1234, 0x1234));
        assert!(!matches(0x1234, 0x1235));
        assert!(matches(0xffff, 0));
        assert!(matches(0, 0));
        assert!(!matches(0, 0xffff));
    }
}
