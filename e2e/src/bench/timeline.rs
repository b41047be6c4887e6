//! What a benchmark's watcher saw of each Service: when it first appeared, when it first showed
//! an ingress IP, which IPs it shows now and how often they changed after the first. Pure: the
//! watcher passes the instant at which it received each event.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// One Service as the watcher saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub first_seen: Instant,
    pub first_ingress: Option<Instant>,
    /// The ingress IPs it shows now, sorted.
    pub ips: Vec<String>,
    /// Changes of a non-empty ingress to anything else (another IP, or none).
    pub moves: u32,
}

/// Every watched Service, by `namespace/name`.
#[derive(Debug, Default)]
pub struct Timeline {
    services: HashMap<String, Seen>,
    moves: u64,
}

impl Timeline {
    /// Records one watch event (added or modified) for `key`, showing `ips`, received `at`.
    pub fn observe(&mut self, key: &str, at: Instant, mut ips: Vec<String>) {
        ips.sort();
        ips.dedup();
        let seen = self.services.entry(key.to_string()).or_insert(Seen {
            first_seen: at,
            first_ingress: None,
            ips: Vec::new(),
            moves: 0,
        });
        if ips == seen.ips {
            return;
        }
        if !seen.ips.is_empty() {
            seen.moves += 1;
            self.moves += 1;
        }
        if seen.first_ingress.is_none() && !ips.is_empty() {
            seen.first_ingress = Some(at);
        }
        seen.ips = ips;
    }

    /// A deleted Service is forgotten (its moves stay counted in [`Timeline::total_moves`]).
    pub fn forget(&mut self, key: &str) {
        self.services.remove(key);
    }

    pub fn get(&self, key: &str) -> Option<&Seen> {
        self.services.get(key)
    }

    /// How many of `keys` show an ingress IP now.
    pub fn with_ingress<'a>(&self, keys: impl IntoIterator<Item = &'a String>) -> usize {
        keys.into_iter()
            .filter(|k| self.services.get(*k).is_some_and(|s| !s.ips.is_empty()))
            .count()
    }

    /// Every ingress change after a first assignment, over the whole run.
    pub fn total_moves(&self) -> u64 {
        self.moves
    }

    /// For each of `keys` that got an ingress: first seen → first ingress.
    pub fn seen_to_ingress<'a>(&self, keys: impl IntoIterator<Item = &'a String>) -> Vec<Duration> {
        keys.into_iter()
            .filter_map(|k| {
                let s = self.services.get(k)?;
                Some(s.first_ingress?.saturating_duration_since(s.first_seen))
            })
            .collect()
    }

    /// For each Service in `created` (key → when its create call returned) that got an
    /// ingress: create returned → first ingress seen. Zero when the watcher saw the ingress
    /// before the create call returned.
    pub fn created_to_ingress(&self, created: &HashMap<String, Instant>) -> Vec<Duration> {
        created
            .iter()
            .filter_map(|(k, returned)| {
                let ingress = self.services.get(k)?.first_ingress?;
                Some(ingress.saturating_duration_since(*returned))
            })
            .collect()
    }

    /// The IPs each Service shows now.
    pub fn snapshot(&self) -> HashMap<String, Vec<String>> {
        self.services
            .iter()
            .map(|(k, s)| (k.clone(), s.ips.clone()))
            .collect()
    }
}

/// Services whose IPs differ between two snapshots (missing counts as no IP), sorted.
pub fn moved(
    before: &HashMap<String, Vec<String>>,
    after: &HashMap<String, Vec<String>>,
) -> Vec<String> {
    let mut keys: Vec<String> = before
        .keys()
        .chain(after.keys())
        .filter(|k| {
            let none = Vec::new();
            before.get(*k).unwrap_or(&none) != after.get(*k).unwrap_or(&none)
        })
        .cloned()
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ips(v: &[&str]) -> Vec<String> {
        v.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn first_seen_and_first_ingress() {
        let t0 = Instant::now();
        let mut t = Timeline::default();
        t.observe("bench/a", t0, vec![]);
        t.observe("bench/a", t0 + Duration::from_millis(3), vec![]);
        t.observe(
            "bench/a",
            t0 + Duration::from_millis(12),
            ips(&["2001:db8:0:100::"]),
        );
        // A later echo with the same IP changes nothing.
        t.observe(
            "bench/a",
            t0 + Duration::from_millis(40),
            ips(&["2001:db8:0:100::"]),
        );
        let a = t.get("bench/a").unwrap();
        assert_eq!(a.first_seen, t0);
        assert_eq!(a.first_ingress, Some(t0 + Duration::from_millis(12)));
        assert_eq!(a.moves, 0);
        let keys = ips(&["bench/a", "bench/missing"]);
        assert_eq!(t.seen_to_ingress(&keys), [Duration::from_millis(12)]);
        assert_eq!(t.with_ingress(&keys), 1);
    }

    #[test]
    fn a_service_first_seen_with_its_ip_took_no_time() {
        let t0 = Instant::now();
        let mut t = Timeline::default();
        t.observe("x", t0, ips(&["198.51.100.1"]));
        assert_eq!(t.seen_to_ingress(&ips(&["x"])), [Duration::ZERO]);
    }

    #[test]
    fn pending_services_have_no_latency() {
        let mut t = Timeline::default();
        t.observe("p", Instant::now(), vec![]);
        assert!(t.seen_to_ingress(&ips(&["p"])).is_empty());
        assert_eq!(t.with_ingress(&ips(&["p"])), 0);
    }

    #[test]
    fn created_to_ingress_saturates_when_the_watch_was_faster() {
        let t0 = Instant::now();
        let mut t = Timeline::default();
        t.observe("fast", t0, ips(&["2001:db8:0:100::1"]));
        t.observe("slow", t0, vec![]);
        t.observe(
            "slow",
            t0 + Duration::from_millis(30),
            ips(&["2001:db8:0:100::2"]),
        );
        let created = HashMap::from([
            ("fast".to_string(), t0 + Duration::from_millis(2)),
            ("slow".to_string(), t0 + Duration::from_millis(5)),
            ("never-seen".to_string(), t0),
        ]);
        let mut got = t.created_to_ingress(&created);
        got.sort();
        assert_eq!(got, [Duration::ZERO, Duration::from_millis(25)]);
    }

    #[test]
    fn changes_after_the_first_ip_are_moves() {
        let t0 = Instant::now();
        let mut t = Timeline::default();
        t.observe("s", t0, ips(&["2001:db8:0:100::1"]));
        t.observe("s", t0, ips(&["2001:db8:0:100::2"]));
        t.observe("s", t0, vec![]);
        t.observe("s", t0, ips(&["2001:db8:0:100::2"]));
        assert_eq!(
            t.get("s").unwrap().moves,
            2,
            "cleared counts, re-assigned does not"
        );
        assert_eq!(t.total_moves(), 2);
        // Order and duplicates in the event do not matter.
        t.observe("d", t0, ips(&["2001:db8::2", "192.0.2.1"]));
        t.observe("d", t0, ips(&["192.0.2.1", "2001:db8::2", "192.0.2.1"]));
        assert_eq!(t.get("d").unwrap().moves, 0);
        t.forget("s");
        assert!(t.get("s").is_none());
        assert_eq!(t.total_moves(), 2);
    }

    #[test]
    fn moved_compares_snapshots() {
        let before = HashMap::from([
            ("a".to_string(), ips(&["1"])),
            ("b".to_string(), ips(&["2"])),
            ("c".to_string(), ips(&["3"])),
        ]);
        let mut after = before.clone();
        assert!(moved(&before, &after).is_empty());
        after.insert("b".into(), ips(&["9"]));
        after.remove("c");
        after.insert("d".into(), ips(&["4"]));
        assert_eq!(moved(&before, &after), ips(&["b", "c", "d"]));
        after.insert("e".into(), vec![]);
        assert_eq!(
            moved(&before, &after),
            ips(&["b", "c", "d"]),
            "no IP either way"
        );
    }
}
