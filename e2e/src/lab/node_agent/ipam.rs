//! Pod IP allocation: one address per configured pod CIDR (one per family), lowest free
//! first. Pure; the agent rebuilds the used set from pods' statuses, so a restart of the agent
//! never hands out an address twice.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

use ironlb_crds::address::{AddressRange, Family, ip_to_u128, parse_address_entry, u128_to_ip};

use super::AgentError;

#[derive(Debug, Clone)]
pub struct PodIpam {
    /// Usable addresses per family: the network and (IPv4) broadcast addresses excluded.
    ranges: Vec<(Family, u128, u128)>,
    /// Addresses held, by pod uid.
    held: HashMap<String, Vec<IpAddr>>,
    used: BTreeSet<u128>,
}

impl PodIpam {
    pub fn new(cidrs: &[String]) -> Result<Self, AgentError> {
        let mut ranges = Vec::new();
        for cidr in cidrs {
            let bad = |why: &str| AgentError::BadPodCidr(cidr.clone(), why.to_string());
            if !cidr.contains('/') {
                return Err(bad("expected a CIDR"));
            }
            let range: AddressRange = parse_address_entry(cidr).map_err(|e| bad(&e.to_string()))?;
            let family = range.family();
            if ranges.iter().any(|(f, _, _)| *f == family) {
                return Err(bad("at most one pod CIDR per family"));
            }
            let first = range.first() + 1;
            let last = match family {
                Family::V4 => range.last().saturating_sub(1),
                Family::V6 => range.last(),
            };
            if first > last {
                return Err(bad("too small for any pod"));
            }
            ranges.push((family, first, last));
        }
        if ranges.is_empty() {
            return Err(AgentError::BadPodCidr(
                String::new(),
                "no pod CIDR given".into(),
            ));
        }
        Ok(PodIpam {
            ranges,
            held: HashMap::new(),
            used: BTreeSet::new(),
        })
    }

    pub fn families(&self) -> Vec<Family> {
        self.ranges.iter().map(|(f, _, _)| *f).collect()
    }

    /// Records addresses a pod already has (from its status).
    pub fn adopt(&mut self, uid: &str, ips: &[IpAddr]) {
        if self.held.contains_key(uid) || ips.is_empty() {
            return;
        }
        for ip in ips {
            self.used.insert(ip_to_u128(*ip));
        }
        self.held.insert(uid.to_string(), ips.to_vec());
    }

    /// The pod's addresses, allocating them on first use; `None` when a range is full.
    pub fn ips_for(&mut self, uid: &str) -> Option<Vec<IpAddr>> {
        if let Some(ips) = self.held.get(uid) {
            return Some(ips.clone());
        }
        let mut ips = Vec::new();
        for &(family, first, last) in &self.ranges {
            let free = (first..=last).find(|v| !self.used.contains(v))?;
            ips.push(u128_to_ip(family, free)?);
        }
        for ip in &ips {
            self.used.insert(ip_to_u128(*ip));
        }
        self.held.insert(uid.to_string(), ips.clone());
        Some(ips)
    }

    /// Frees the addresses of pods that no longer exist.
    pub fn retain(&mut self, live_uids: &BTreeSet<String>) {
        let gone: Vec<String> = self
            .held
            .keys()
            .filter(|uid| !live_uids.contains(*uid))
            .cloned()
            .collect();
        for uid in gone {
            for ip in self.held.remove(&uid).unwrap_or_default() {
                self.used.remove(&ip_to_u128(ip));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipam(cidrs: &[&str]) -> PodIpam {
        PodIpam::new(&cidrs.iter().map(|c| c.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn allocates_lowest_free_per_family_and_reuses_freed() {
        let mut ipam = ipam(&["203.0.113.128/26", "2001:db8:fffd::/64"]);
        let a = ipam.ips_for("a").unwrap();
        assert_eq!(a[0].to_string(), "203.0.113.129");
        assert_eq!(a[1].to_string(), "2001:db8:fffd::1");
        assert_eq!(ipam.ips_for("a").unwrap(), a, "stable per pod");
        let b = ipam.ips_for("b").unwrap();
        assert_eq!(b[0].to_string(), "203.0.113.130");
        ipam.retain(&BTreeSet::from(["b".to_string()]));
        assert_eq!(ipam.ips_for("c").unwrap()[0].to_string(), "203.0.113.129");
    }

    #[test]
    fn adopted_addresses_are_not_handed_out_again() {
        let mut ipam = ipam(&["203.0.113.128/26"]);
        ipam.adopt("old", &["203.0.113.129".parse().unwrap()]);
        assert_eq!(ipam.ips_for("new").unwrap()[0].to_string(), "203.0.113.130");
    }

    #[test]
    fn a_full_range_says_so() {
        let mut ipam = ipam(&["203.0.113.128/30"]);
        assert!(ipam.ips_for("a").is_some());
        assert!(ipam.ips_for("b").is_some());
        assert_eq!(ipam.ips_for("c"), None);
    }

    #[test]
    fn rejects_malformed_cidrs() {
        for bad in [
            vec!["203.0.113.1"],
            vec!["203.0.113.0/33"],
            vec!["banana/8"],
            vec!["203.0.113.0/31"],
            vec!["203.0.113.0/26", "198.51.100.0/24"],
            vec![],
        ] {
            let cidrs: Vec<String> = bad.iter().map(|c| c.to_string()).collect();
            assert!(
                matches!(PodIpam::new(&cidrs), Err(AgentError::BadPodCidr(..))),
                "{bad:?}"
            );
        }
    }
}
