//! [`OwnedCell`]: the IPs one interface answers for, shared between the runtime (which
//! replaces the set) and the responder threads (which read it for every frame).
//!
//! A read takes a shared lock just long enough to clone an `Arc`; a replacement is visible to
//! the next frame, so a lost IP stops being answered at once.

use std::collections::{BTreeSet, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, RwLock};

#[derive(Debug, Default)]
pub struct OwnedCell(RwLock<Arc<HashSet<IpAddr>>>);

impl OwnedCell {
    /// The current set.
    pub fn load(&self) -> Arc<HashSet<IpAddr>> {
        // A panic elsewhere cannot leave a half-written Arc behind, so a poisoned lock is fine.
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Replaces the set; returns true when it changed.
    pub fn store(&self, ips: &BTreeSet<IpAddr>) -> bool {
        let mut guard = self.0.write().unwrap_or_else(|p| p.into_inner());
        if guard.len() == ips.len() && ips.iter().all(|ip| guard.contains(ip)) {
            return false;
        }
        *guard = Arc::new(ips.iter().copied().collect());
        true
    }

    pub fn owns(&self, ip: IpAddr) -> bool {
        self.load().contains(&ip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replaced_set_is_seen_by_the_next_read_and_old_readers_keep_theirs() {
        let cell = OwnedCell::default();
        let a: IpAddr = "198.51.100.1".parse().unwrap();
        let b: IpAddr = "198.51.100.2".parse().unwrap();
        assert!(!cell.owns(a));
        assert!(cell.store(&BTreeSet::from([a, b])));
        let snapshot = cell.load();
        assert!(!cell.store(&BTreeSet::from([b, a])), "same set");
        assert!(cell.store(&BTreeSet::from([b])));
        assert!(!cell.owns(a));
        assert!(cell.owns(b));
        assert!(snapshot.contains(&a), "a reader keeps the set it loaded");
        assert!(cell.store(&BTreeSet::new()));
        assert!(cell.load().is_empty());
    }
}
