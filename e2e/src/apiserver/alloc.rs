//! ClusterIP and NodePort allocation, as the API server's allocators do it: a random free slot
//! in the configured range, or a requested one if it is in range and free. Pure: the callers
//! own locking and roll back on failed writes.

use std::collections::BTreeSet;
use std::net::IpAddr;

use ironlb_crds::address::{AddressRange, Family, parse_address_entry, u128_to_ip};
use rand::Rng;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllocError {
    #[error("provided IP is not in the valid range. The range of valid IPs is {0}")]
    NotInRange(String),
    #[error("provided IP is already allocated")]
    IpInUse,
    #[error("range is full")]
    Full,
    #[error("provided port is not in the valid range. The range of valid ports is {0}")]
    PortNotInRange(String),
    #[error("provided port is already allocated")]
    PortInUse,
    #[error("invalid service CIDR {0:?}: {1}")]
    BadCidr(String, String),
    #[error("invalid node port range {0:?}: expected FROM-TO with 1 <= FROM <= TO <= 65535")]
    BadPortRange(String),
}

/// One service CIDR.
#[derive(Debug, Clone)]
pub struct IpAllocator {
    cidr: String,
    range: AddressRange,
    used: BTreeSet<u128>,
}

impl IpAllocator {
    pub fn new(cidr: &str) -> Result<Self, AllocError> {
        if !cidr.contains('/') {
            return Err(AllocError::BadCidr(
                cidr.into(),
                "expected a CIDR such as 10.96.0.0/12".into(),
            ));
        }
        let range = parse_address_entry(cidr)
            .map_err(|e| AllocError::BadCidr(cidr.into(), e.to_string()))?;
        if range.len() < 4 {
            return Err(AllocError::BadCidr(
                cidr.into(),
                "the range must hold at least 4 addresses".into(),
            ));
        }
        Ok(IpAllocator {
            cidr: cidr.into(),
            range,
            used: BTreeSet::new(),
        })
    }

    pub fn family(&self) -> Family {
        self.range.family()
    }

    pub fn cidr(&self) -> &str {
        &self.cidr
    }

    /// Usable offsets: the network address is never handed out, nor the IPv4 broadcast address.
    fn usable(&self) -> (u128, u128) {
        let first = self.range.first() + 1;
        let last = if self.family() == Family::V4 {
            self.range.last() - 1
        } else {
            self.range.last()
        };
        (first, last)
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let (first, last) = self.usable();
        Family::of(ip) == self.family()
            && (first..=last).contains(&ironlb_crds::address::ip_to_u128(ip))
    }

    pub fn is_allocated(&self, ip: IpAddr) -> bool {
        self.used.contains(&ironlb_crds::address::ip_to_u128(ip))
    }

    pub fn allocate(&mut self, ip: IpAddr) -> Result<(), AllocError> {
        if !self.contains(ip) {
            return Err(AllocError::NotInRange(self.cidr.clone()));
        }
        if !self.used.insert(ironlb_crds::address::ip_to_u128(ip)) {
            return Err(AllocError::IpInUse);
        }
        Ok(())
    }

    /// The first address of the range (given to the `kubernetes` Service).
    pub fn first(&self) -> IpAddr {
        u128_to_ip(self.family(), self.usable().0).expect("in family")
    }

    pub fn allocate_next(&mut self, rng: &mut impl Rng) -> Result<IpAddr, AllocError> {
        let (first, last) = self.usable();
        let size = last - first + 1;
        // `used` only ever holds addresses of the range.
        if self.used.len() as u128 >= size {
            return Err(AllocError::Full);
        }
        // Start at a random offset and take the next free address, wrapping around.
        let start = first + rng.random_range(0..size);
        let mut candidate = start;
        loop {
            if !self.used.contains(&candidate) {
                self.used.insert(candidate);
                return Ok(u128_to_ip(self.family(), candidate).expect("in family"));
            }
            candidate = if candidate == last {
                first
            } else {
                candidate + 1
            };
            if candidate == start {
                return Err(AllocError::Full);
            }
        }
    }

    pub fn release(&mut self, ip: IpAddr) {
        self.used.remove(&ironlb_crds::address::ip_to_u128(ip));
    }

    pub fn used(&self) -> usize {
        self.used.len()
    }
}

/// The NodePort range.
#[derive(Debug, Clone)]
pub struct PortAllocator {
    lo: u16,
    hi: u16,
    used: BTreeSet<u16>,
}

impl PortAllocator {
    pub fn parse(spec: &str) -> Result<Self, AllocError> {
        let bad = || AllocError::BadPortRange(spec.into());
        let (lo, hi) = spec.split_once('-').ok_or_else(bad)?;
        let lo: u16 = lo.trim().parse().map_err(|_| bad())?;
        let hi: u16 = hi.trim().parse().map_err(|_| bad())?;
        if lo == 0 || lo > hi {
            return Err(bad());
        }
        Ok(PortAllocator {
            lo,
            hi,
            used: BTreeSet::new(),
        })
    }

    pub fn range_string(&self) -> String {
        format!("{}-{}", self.lo, self.hi)
    }

    pub fn contains(&self, port: i64) -> bool {
        (self.lo as i64..=self.hi as i64).contains(&port)
    }

    pub fn is_allocated(&self, port: u16) -> bool {
        self.used.contains(&port)
    }

    pub fn allocate(&mut self, port: i64) -> Result<(), AllocError> {
        if !self.contains(port) {
            return Err(AllocError::PortNotInRange(self.range_string()));
        }
        if !self.used.insert(port as u16) {
            return Err(AllocError::PortInUse);
        }
        Ok(())
    }

    pub fn allocate_next(&mut self, rng: &mut impl Rng) -> Result<u16, AllocError> {
        let size = (self.hi - self.lo) as u32 + 1;
        if self.used.len() as u32 >= size {
            return Err(AllocError::Full);
        }
        let start = self.lo as u32 + rng.random_range(0..size);
        let mut p = start;
        loop {
            if self.used.insert(p as u16) {
                return Ok(p as u16);
            }
            p = if p == self.hi as u32 {
                self.lo as u32
            } else {
                p + 1
            };
            if p == start {
                return Err(AllocError::Full);
            }
        }
    }

    pub fn release(&mut self, port: u16) {
        self.used.remove(&port);
    }

    pub fn used(&self) -> usize {
        self.used.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ipv4_ranges_skip_network_and_broadcast() {
        let mut a = IpAllocator::new("203.0.113.0/30").unwrap();
        let mut rng = rand::rng();
        let x = a.allocate_next(&mut rng).unwrap();
        let y = a.allocate_next(&mut rng).unwrap();
        let mut got = [x.to_string(), y.to_string()];
        got.sort();
        assert_eq!(got, ["203.0.113.1", "203.0.113.2"]);
        assert_eq!(a.allocate_next(&mut rng), Err(AllocError::Full));
        a.release(x);
        assert_eq!(a.allocate_next(&mut rng).unwrap(), x);
    }

    #[test]
    fn requested_ips_must_be_in_range_and_free() {
        let mut a = IpAllocator::new("2001:db8:fffe::/108").unwrap();
        assert_eq!(a.family(), Family::V6);
        let ip: IpAddr = "2001:db8:fffe::10".parse().unwrap();
        a.allocate(ip).unwrap();
        assert_eq!(a.allocate(ip), Err(AllocError::IpInUse));
        assert!(matches!(
            a.allocate("2001:db8:ffff::1".parse().unwrap()),
            Err(AllocError::NotInRange(_))
        ));
        assert!(matches!(
            a.allocate("2001:db8:fffe::".parse().unwrap()),
            Err(AllocError::NotInRange(_))
        ));
        assert!(matches!(
            a.allocate("203.0.113.1".parse().unwrap()),
            Err(AllocError::NotInRange(_))
        ));
        assert_eq!(a.first().to_string(), "2001:db8:fffe::1");
    }

    #[test]
    fn bad_cidrs_and_port_ranges() {
        for bad in [
            "203.0.113.0",
            "203.0.113.1/25",
            "x/24",
            "203.0.113.0/31",
            "203.0.113.0/33",
        ] {
            assert!(IpAllocator::new(bad).is_err(), "{bad}");
        }
        for bad in ["", "30000", "0-10", "20-10", "a-b", "1-70000"] {
            assert!(PortAllocator::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn node_ports() {
        let mut p = PortAllocator::parse("30000-30002").unwrap();
        let mut rng = rand::rng();
        p.allocate(30001).unwrap();
        assert_eq!(p.allocate(30001), Err(AllocError::PortInUse));
        assert!(matches!(p.allocate(80), Err(AllocError::PortNotInRange(_))));
        let a = p.allocate_next(&mut rng).unwrap();
        let b = p.allocate_next(&mut rng).unwrap();
        let mut got = [a, b];
        got.sort();
        assert_eq!(got, [30000, 30002]);
        assert_eq!(p.allocate_next(&mut rng), Err(AllocError::Full));
    }

    proptest! {
        #[test]
        fn allocations_are_unique_in_range_and_fill_exactly(n in 1usize..300) {
            let mut a = IpAllocator::new("203.0.113.0/24").unwrap();
            let mut rng = rand::rng();
            let mut seen = BTreeSet::new();
            for _ in 0..n.min(254) {
                let ip = a.allocate_next(&mut rng).unwrap();
                prop_assert!(a.contains(ip));
                prop_assert!(seen.insert(ip));
            }
            if n >= 254 {
                prop_assert_eq!(a.allocate_next(&mut rng), Err(AllocError::Full));
            }
            prop_assert_eq!(a.used(), n.min(254));
        }
    }
}
