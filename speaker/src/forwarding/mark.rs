//! [`MarkBit`]: the one bit of the packet mark and the conntrack mark that ironlb borrows to
//! recognise the connections it rewrote.
//!
//! Packets to a VIP get the bit in their packet mark before conntrack sees them; right after
//! conntrack the bit moves into the connection's ct mark and is cleared from the packet, so the
//! bit never reaches kube-proxy's chains. Replies of connections whose ct mark carries the bit
//! get the VIP back as their source. Every read and write is masked to this bit, so whatever
//! other software keeps in the other 31 bits of either mark is preserved.
//!
//! The default, `0x2000` (bit 13), is free in the mark layouts of the usual node software:
//! kube-proxy uses `0x4000` (masquerade) and `0x8000` (drop), Calico's default mark mask is
//! `0xffff0000`, Cilium's magic values live in `0x0f00`, Istio ambient uses `0x0040`-`0x0220`,
//! the AWS VPC CNI `0x80`, Tailscale `0x00ff0000`. Clusters that already use bit 13 choose
//! another bit; it must be free in both the packet mark and the ct mark.

use std::fmt;
use std::str::FromStr;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MarkBitError {
    #[error("mark bit {value:#x} must have exactly one bit set (e.g. 0x2000)")]
    NotOneBit { value: u32 },
    #[error("mark bit {text:?} is not a number: write it as hex (0x2000) or decimal (8192)")]
    NotANumber { text: String },
}

/// A single bit, as a mask (`0x2000`, not the bit index 13).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MarkBit(u32);

impl MarkBit {
    /// Bit 13: see the module documentation for why.
    pub const DEFAULT: MarkBit = MarkBit(0x2000);

    pub fn new(value: u32) -> Result<Self, MarkBitError> {
        if value.count_ones() == 1 {
            Ok(MarkBit(value))
        } else {
            Err(MarkBitError::NotOneBit { value })
        }
    }

    /// The bit as a mask.
    pub fn value(self) -> u32 {
        self.0
    }

    /// Every other bit: what a masked write keeps.
    pub fn others(self) -> u32 {
        !self.0
    }
}

impl Default for MarkBit {
    fn default() -> Self {
        MarkBit::DEFAULT
    }
}

impl FromStr for MarkBit {
    type Err = MarkBitError;

    /// Accepts `0x2000` (any case of the prefix and digits) or decimal `8192`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let trimmed = text.trim();
        let not_a_number = || MarkBitError::NotANumber {
            text: text.to_string(),
        };
        let parsed = match trimmed
            .strip_prefix("0x")
            .or_else(|| trimmed.strip_prefix("0X"))
        {
            Some(hex) if !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
                u32::from_str_radix(hex, 16)
            }
            Some(_) => return Err(not_a_number()),
            None if !trimmed.is_empty() && trimmed.bytes().all(|b| b.is_ascii_digit()) => {
                trimmed.parse()
            }
            None => return Err(not_a_number()),
        };
        MarkBit::new(parsed.map_err(|_| not_a_number())?)
    }
}

/// The way nft prints marks: `0x00002000`.
impl fmt::Display for MarkBit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#010x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn default_is_bit_13_and_clear_of_kube_proxy() {
        assert_eq!(MarkBit::default().value(), 0x2000);
        assert_eq!(MarkBit::DEFAULT.value() & (0x4000 | 0x8000), 0);
        assert_eq!(MarkBit::DEFAULT.others(), 0xffff_dfff);
        assert_eq!(MarkBit::DEFAULT.to_string(), "0x00002000");
    }

    #[test]
    fn parses_hex_and_decimal() {
        assert_eq!("0x2000".parse(), Ok(MarkBit(0x2000)));
        assert_eq!("0X00100000".parse(), Ok(MarkBit(0x0010_0000)));
        assert_eq!(" 8192 ".parse(), Ok(MarkBit(0x2000)));
        assert_eq!("0x80000000".parse(), Ok(MarkBit(0x8000_0000)));
        assert_eq!("1".parse(), Ok(MarkBit(1)));
    }

    #[test]
    fn rejects_malformed_and_multi_bit_values() {
        for bad in [
            "",
            "0x",
            "0xg",
            "-1",
            "+8192",
            "0x1_0",
            "bit13",
            "0x100000000",
            "1e3",
        ] {
            assert_eq!(
                bad.parse::<MarkBit>(),
                Err(MarkBitError::NotANumber { text: bad.into() }),
                "{bad:?}"
            );
        }
        for (text, value) in [
            ("0", 0),
            ("0x6000", 0x6000),
            ("3", 3),
            ("0xffffffff", u32::MAX),
        ] {
            assert_eq!(
                text.parse::<MarkBit>(),
                Err(MarkBitError::NotOneBit { value }),
                "{text:?}"
            );
        }
        assert!(
            MarkBitError::NotOneBit { value: 0x6000 }
                .to_string()
                .contains("0x6000")
        );
    }

    proptest! {
        #[test]
        fn every_single_bit_round_trips(index in 0u32..32) {
            let bit = MarkBit::new(1 << index).unwrap();
            prop_assert_eq!(bit.to_string().parse::<MarkBit>(), Ok(bit));
            prop_assert_eq!(bit.value() | bit.others(), u32::MAX);
            prop_assert_eq!(bit.value() & bit.others(), 0);
        }
    }
}
