//! The addresses one pool offers in one family, and which of them are free.
//!
//! With `avoidBuggyIPs`, IPv4 addresses ending in `.0` or `.255` are not part of the pool at all
//! (as in MetalLB: they are neither allocated nor accepted when requested). Rather than skipping
//! them at allocation time, which degenerates into a scan once only such addresses are left, the
//! space is *re-indexed*: each /24 contributes its 254 usable addresses to a dense index, so the
//! free list never contains an unusable address and "lowest free" stays one map lookup.

use std::net::IpAddr;

use ironlb_crds::address::{AddressRange, Family, u128_to_ip};

use super::intervals::IntervalSet;

/// Usable addresses per /24 when `.0` and `.255` are skipped.
const USABLE_PER_BLOCK: u64 = 254;

/// How addresses map to the dense index the free list is kept in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Indexing {
    /// Index = address.
    Identity,
    /// IPv4 with `.0` and `.255` removed from every /24.
    SkipBuggy,
}

impl Indexing {
    fn index_of(self, addr: u128) -> Option<u128> {
        match self {
            Indexing::Identity => Some(addr),
            Indexing::SkipBuggy => {
                // IPv4 only, so u64 arithmetic suffices (u128 division is several times slower).
                let addr = u64::try_from(addr).ok()?;
                let last_octet = addr & 0xff;
                if last_octet == 0 || last_octet == 0xff {
                    None
                } else {
                    Some(u128::from((addr >> 8) * USABLE_PER_BLOCK + last_octet - 1))
                }
            }
        }
    }

    fn addr_of(self, index: u128) -> u128 {
        match self {
            Indexing::Identity => index,
            Indexing::SkipBuggy => {
                // Indices of IPv4 addresses stay below 2^32.
                let index = u64::try_from(index).unwrap_or(u64::MAX);
                u128::from(((index / USABLE_PER_BLOCK) << 8) | (index % USABLE_PER_BLOCK + 1))
            }
        }
    }

    /// Maps an inclusive address range to the inclusive index range of its usable addresses.
    fn index_range(self, first: u128, last: u128) -> Option<(u128, u128)> {
        match self {
            Indexing::Identity => Some((first, last)),
            Indexing::SkipBuggy => {
                let low = match first & 0xff {
                    0 => first + 1,
                    0xff => first + 2,
                    _ => first,
                };
                let high = match last & 0xff {
                    0xff => last.checked_sub(1)?,
                    0 => last.checked_sub(2)?,
                    _ => last,
                };
                if low > high {
                    return None;
                }
                Some((self.index_of(low)?, self.index_of(high)?))
            }
        }
    }
}

/// True for IPv4 addresses ending in `.0` or `.255`.
pub fn is_buggy(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => matches!(v4.octets()[3], 0 | 255),
        IpAddr::V6(_) => false,
    }
}

/// One family of one pool: its ranges and its free list.
#[derive(Clone, Debug)]
pub(crate) struct FamilySpace {
    family: Family,
    indexing: Indexing,
    /// Merged address ranges as configured, in address space (used for overlap and lookups).
    addr_runs: Vec<(u128, u128)>,
    /// Merged usable ranges in index space.
    index_runs: Vec<(u128, u128)>,
    free: IntervalSet,
    total: u128,
}

impl FamilySpace {
    /// Builds the space of `family` from the pool's ranges; `None` when the pool has no range of
    /// that family. A family whose addresses are all skipped exists with a total of 0: it is
    /// still configured (and can overlap other pools), it just offers nothing.
    pub(crate) fn new(family: Family, ranges: &[AddressRange], avoid_buggy: bool) -> Option<Self> {
        let indexing = if avoid_buggy && family == Family::V4 {
            Indexing::SkipBuggy
        } else {
            Indexing::Identity
        };
        let addr_runs = merge(
            ranges
                .iter()
                .filter(|r| r.family() == family)
                .map(|r| (r.first(), r.last()))
                .collect(),
        );
        let index_runs = merge(
            addr_runs
                .iter()
                .filter_map(|&(first, last)| indexing.index_range(first, last))
                .collect(),
        );
        if addr_runs.is_empty() {
            return None;
        }
        let free = IntervalSet::from_sorted_runs(&index_runs);
        let total = free.len();
        Some(FamilySpace {
            family,
            indexing,
            addr_runs,
            index_runs,
            free,
            total,
        })
    }

    pub(crate) fn family(&self) -> Family {
        self.family
    }

    /// The index of `ip` when the pool offers it (right family, in range, not skipped).
    fn index_of(&self, ip: IpAddr) -> Option<u128> {
        if Family::of(ip) != self.family {
            return None;
        }
        let index = self
            .indexing
            .index_of(ironlb_crds::address::ip_to_u128(ip))?;
        run_contains(&self.index_runs, index).then_some(index)
    }

    /// True when the pool offers `ip` (it may be free or held).
    pub(crate) fn offers(&self, ip: IpAddr) -> bool {
        self.index_of(ip).is_some()
    }

    /// True when `ip` lies in the configured ranges, usable or not.
    pub(crate) fn covers(&self, ip: IpAddr) -> bool {
        Family::of(ip) == self.family
            && run_contains(&self.addr_runs, ironlb_crds::address::ip_to_u128(ip))
    }

    /// The lowest free address.
    pub(crate) fn lowest_free(&self) -> Option<IpAddr> {
        let index = self.free.first()?;
        u128_to_ip(self.family, self.indexing.addr_of(index))
    }

    /// Marks `ip` as held; false when it was not free or not offered.
    pub(crate) fn take(&mut self, ip: IpAddr) -> bool {
        self.index_of(ip).is_some_and(|i| self.free.remove(i))
    }

    /// Marks `ip` as free again; a no-op for addresses the pool does not offer.
    pub(crate) fn put(&mut self, ip: IpAddr) {
        if let Some(index) = self.index_of(ip) {
            self.free.insert(index);
        }
    }

    /// Number of usable addresses (saturating at `u128::MAX`).
    pub(crate) fn total(&self) -> u128 {
        self.total
    }

    pub(crate) fn in_use(&self) -> u128 {
        self.total - self.free.len()
    }

    /// Address ranges as configured, merged, in ascending order.
    pub(crate) fn addr_runs(&self) -> &[(u128, u128)] {
        &self.addr_runs
    }

    pub(crate) fn free_run_count(&self) -> usize {
        self.free.run_count()
    }

    /// True when the two spaces share at least one configured address.
    pub(crate) fn overlaps(&self, other: &FamilySpace) -> bool {
        if self.family != other.family {
            return false;
        }
        let (mut a, mut b) = (
            self.addr_runs.iter().peekable(),
            other.addr_runs.iter().peekable(),
        );
        while let (Some(&&(a_first, a_last)), Some(&&(b_first, b_last))) = (a.peek(), b.peek()) {
            if a_first <= b_last && b_first <= a_last {
                return true;
            }
            if a_last < b_last {
                a.next();
            } else {
                b.next();
            }
        }
        false
    }
}

/// Sorts and merges overlapping or adjacent runs.
fn merge(mut runs: Vec<(u128, u128)>) -> Vec<(u128, u128)> {
    runs.sort_unstable();
    let mut merged: Vec<(u128, u128)> = Vec::with_capacity(runs.len());
    for (first, last) in runs {
        match merged.last_mut() {
            Some(prev) if prev.1 == u128::MAX || first <= prev.1 + 1 => prev.1 = prev.1.max(last),
            _ => merged.push((first, last)),
        }
    }
    merged
}

fn run_contains(runs: &[(u128, u128)], value: u128) -> bool {
    let after = runs.partition_point(|&(first, _)| first <= value);
    after > 0 && value <= runs[after - 1].1
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use ironlb_crds::address::{ip_to_u128, parse_address_entry};
    use proptest::prelude::*;

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn space(entries: &[&str], family: Family, avoid_buggy: bool) -> Option<FamilySpace> {
        let ranges: Vec<AddressRange> = entries
            .iter()
            .map(|e| parse_address_entry(e).unwrap())
            .collect();
        FamilySpace::new(family, &ranges, avoid_buggy)
    }

    #[test]
    fn only_the_requested_family_is_kept() {
        let v4 = space(&["198.51.100.0/30", "2001:db8::/126"], Family::V4, false).unwrap();
        assert_eq!(v4.total(), 4);
        let v6 = space(&["198.51.100.0/30", "2001:db8::/126"], Family::V6, false).unwrap();
        assert_eq!(v6.total(), 4);
        assert!(space(&["198.51.100.0/30"], Family::V6, false).is_none());
    }

    #[test]
    fn overlapping_entries_are_merged() {
        let s = space(
            &[
                "198.51.100.0/28",
                "198.51.100.8-198.51.100.20",
                "198.51.100.21",
            ],
            Family::V4,
            false,
        )
        .unwrap();
        assert_eq!(s.total(), 22);
        assert_eq!(s.free_run_count(), 1);
    }

    #[test]
    fn skip_buggy_removes_dot_zero_and_dot_255() {
        let s = space(&["198.51.100.0/23"], Family::V4, true).unwrap();
        assert_eq!(s.total(), 2 * 254);
        assert_eq!(s.lowest_free(), Some(ip("198.51.100.1")));
        assert!(!s.offers(ip("198.51.100.0")));
        assert!(!s.offers(ip("198.51.100.255")));
        assert!(!s.offers(ip("198.51.101.0")));
        assert!(s.offers(ip("198.51.101.254")));
        assert!(s.covers(ip("198.51.100.255")), "still configured");
        assert_eq!(s.free_run_count(), 1, "the index space is dense");
    }

    #[test]
    fn skip_buggy_range_of_only_buggy_addresses_offers_nothing() {
        for entry in ["198.51.100.255-198.51.101.0", "0.0.0.0", "255.255.255.255"] {
            let s = space(&[entry], Family::V4, true).unwrap();
            assert_eq!(s.total(), 0, "{entry}");
            assert_eq!(s.lowest_free(), None, "{entry}");
            assert!(s.covers(ip(entry.split('-').next().unwrap())));
        }
        let whole = space(&["0.0.0.0/0"], Family::V4, true).unwrap();
        assert_eq!(whole.total(), (1 << 24) * 254);
    }

    #[test]
    fn skip_buggy_does_not_touch_ipv6() {
        let s = space(&["2001:db8::ff-2001:db8::100"], Family::V6, true).unwrap();
        assert_eq!(s.total(), 2);
        assert_eq!(s.lowest_free(), Some(ip("2001:db8::ff")));
    }

    #[test]
    fn take_and_put() {
        let mut s = space(&["198.51.100.10-198.51.100.12"], Family::V4, false).unwrap();
        assert!(s.take(ip("198.51.100.10")));
        assert!(!s.take(ip("198.51.100.10")), "already held");
        assert!(!s.take(ip("198.51.100.13")), "not offered");
        assert!(!s.take(ip("2001:db8::1")), "other family");
        assert_eq!(s.in_use(), 1);
        assert_eq!(s.lowest_free(), Some(ip("198.51.100.11")));
        s.put(ip("198.51.100.10"));
        s.put(ip("198.51.100.99"));
        assert_eq!(s.in_use(), 0);
        assert_eq!(s.lowest_free(), Some(ip("198.51.100.10")));
    }

    #[test]
    fn overlap_walks_both_run_lists() {
        let a = space(&["198.51.100.0/28", "198.51.100.64/28"], Family::V4, false).unwrap();
        let b = space(&["198.51.100.32/28", "198.51.100.79"], Family::V4, false).unwrap();
        let c = space(&["198.51.100.32/28", "198.51.100.80"], Family::V4, false).unwrap();
        assert!(a.overlaps(&b) && b.overlaps(&a));
        assert!(!a.overlaps(&c) && !c.overlaps(&a));
    }

    proptest! {
        /// The dense index preserves order and skips exactly the buggy addresses.
        #[test]
        fn skip_buggy_indexing_is_monotone_and_exact(a in any::<u32>(), b in any::<u32>()) {
            let (first, last) = (u128::from(a.min(b)), u128::from(a.max(b)));
            let idx = Indexing::SkipBuggy;
            for addr in [first, last] {
                match idx.index_of(addr) {
                    Some(i) => prop_assert_eq!(idx.addr_of(i), addr),
                    None => prop_assert!(is_buggy(IpAddr::V4(Ipv4Addr::from(addr as u32)))),
                }
            }
            // Over a bounded window, the usable count equals a brute-force count.
            let window_last = last.min(first + 600);
            let brute = (first..=window_last)
                .filter(|&v| !is_buggy(IpAddr::V4(Ipv4Addr::from(v as u32))))
                .count() as u128;
            let mapped = idx
                .index_range(first, window_last)
                .map_or(0, |(lo, hi)| hi - lo + 1);
            prop_assert_eq!(mapped, brute);
        }

        /// Lowest free always returns an offered, non-buggy address, and draining the space
        /// yields its addresses in ascending order.
        #[test]
        fn draining_yields_ascending_usable_addresses(start in 0u32..2000, len in 1u32..700) {
            let first = Ipv4Addr::from(0xC633_6400u32 + start); // 198.51.100.0 + start
            let last = Ipv4Addr::from(0xC633_6400u32 + start + len - 1);
            let range = AddressRange::new(first.into(), last.into()).unwrap();
            let mut s = FamilySpace::new(Family::V4, &[range], true).unwrap();
            let mut prev = None;
            let mut count = 0u128;
            while let Some(next) = s.lowest_free() {
                prop_assert!(!is_buggy(next));
                prop_assert!(range.contains(next));
                if let Some(p) = prev {
                    prop_assert!(ip_to_u128(p) < ip_to_u128(next));
                }
                prop_assert!(s.take(next));
                prev = Some(next);
                count += 1;
            }
            prop_assert_eq!(count, s.total());
            prop_assert_eq!(s.in_use(), s.total());
        }
    }
}
