//! A MetalLB-style allocator, the baseline of `bench-alloc`.
//!
//! MetalLB picks an address by walking a cursor from the first address of the pool and checking
//! each candidate against its in-use maps until one is free, so one allocation costs O(addresses
//! already in use below the answer). This baseline does the same walk with one hash-map check per
//! candidate. It is kinder than MetalLB, which also formats every candidate into a string before
//! its map lookups, so ratios measured against it understate ironlb's advantage.

use std::collections::HashMap;
use std::net::IpAddr;

use ironlb_crds::address::{AddressRange, Family, u128_to_ip};

/// One pool of one range, allocated by linear scan.
pub struct LinearCursorAllocator {
    family: Family,
    first: u128,
    last: u128,
    avoid_buggy_ips: bool,
    in_use: HashMap<IpAddr, String>,
    allocated: HashMap<String, IpAddr>,
}

impl LinearCursorAllocator {
    pub fn new(range: AddressRange, avoid_buggy_ips: bool) -> Self {
        LinearCursorAllocator {
            family: range.family(),
            first: range.first(),
            last: range.last(),
            avoid_buggy_ips,
            in_use: HashMap::new(),
            allocated: HashMap::new(),
        }
    }

    /// Gives `service` the lowest free address, or the one it already has.
    pub fn allocate(&mut self, service: &str) -> Option<IpAddr> {
        if let Some(ip) = self.allocated.get(service) {
            return Some(*ip);
        }
        let mut cursor = self.first;
        while cursor <= self.last {
            let ip = u128_to_ip(self.family, cursor)?;
            let skipped = self.avoid_buggy_ips && is_buggy(ip);
            if !skipped && !self.in_use.contains_key(&ip) {
                self.in_use.insert(ip, service.to_string());
                self.allocated.insert(service.to_string(), ip);
                return Some(ip);
            }
            cursor = cursor.checked_add(1)?;
        }
        None
    }

    pub fn release(&mut self, service: &str) -> Option<IpAddr> {
        let ip = self.allocated.remove(service)?;
        self.in_use.remove(&ip);
        Some(ip)
    }
}

fn is_buggy(ip: IpAddr) -> bool {
    matches!(ip, IpAddr::V4(v4) if matches!(v4.octets()[3], 0 | 255))
}

#[cfg(test)]
mod tests {
    use ironlb_crds::address::parse_address_entry;

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn lowest_free_then_reuse() {
        let range = parse_address_entry("198.51.100.254-198.51.101.1").unwrap();
        let mut plain = LinearCursorAllocator::new(range, false);
        assert_eq!(plain.allocate("a"), Some(ip("198.51.100.254")));
        assert_eq!(plain.allocate("b"), Some(ip("198.51.100.255")));
        assert_eq!(
            plain.allocate("a"),
            Some(ip("198.51.100.254")),
            "idempotent"
        );
        assert_eq!(plain.release("a"), Some(ip("198.51.100.254")));
        assert_eq!(plain.allocate("c"), Some(ip("198.51.100.254")));
        assert_eq!(plain.allocate("d"), Some(ip("198.51.101.0")));
        assert_eq!(plain.allocate("e"), Some(ip("198.51.101.1")));
        assert_eq!(plain.allocate("f"), None, "exhausted");
    }

    #[test]
    fn avoid_buggy_skips_dot_zero_and_dot_255() {
        let range = parse_address_entry("198.51.100.254-198.51.101.1").unwrap();
        let mut careful = LinearCursorAllocator::new(range, true);
        assert_eq!(careful.allocate("a"), Some(ip("198.51.100.254")));
        assert_eq!(careful.allocate("b"), Some(ip("198.51.101.1")));
        assert_eq!(careful.allocate("c"), None);
    }

    #[test]
    fn the_top_of_the_ipv6_space_does_not_overflow() {
        let range = parse_address_entry("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff").unwrap();
        let mut top = LinearCursorAllocator::new(range, false);
        assert!(top.allocate("a").is_some());
        assert_eq!(top.allocate("b"), None);
    }
}
