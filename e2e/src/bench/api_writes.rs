//! API writes attributed to one client, from two readings of the API-server stand-in's
//! `apiserver_request_total{verb,resource,code,client,user_agent}` (see
//! `e2e/src/apiserver/metrics.rs`). Pure: the benchmark fetches `/metrics`, this module counts.
//!
//! Two clients can share an address (in the lab the node agent runs next to the controller in
//! `cp`), so a count is further limited to the resources the client of interest writes.

use std::collections::BTreeMap;

use super::prom_text::Sample;

/// The counter the stand-in exports.
pub const REQUEST_COUNTER: &str = "apiserver_request_total";

/// Verbs that change state (watch, get and list do not).
pub const WRITE_VERBS: [&str; 5] = ["create", "update", "patch", "delete", "deletecollection"];

/// Write requests per (resource, verb) made from one client address, whatever the response
/// code (a refused write still costs the server).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteCounts(pub BTreeMap<(String, String), u64>);

impl WriteCounts {
    /// The writes `client` made, as read from one `/metrics` exposition.
    pub fn of_client(samples: &[Sample], client: &str) -> Self {
        let mut counts = BTreeMap::new();
        for s in samples.iter().filter(|s| s.name == REQUEST_COUNTER) {
            let (Some(verb), Some(resource)) = (s.label("verb"), s.label("resource")) else {
                continue;
            };
            if s.label("client") != Some(client) || !WRITE_VERBS.contains(&verb) {
                continue;
            }
            // Counters are integers; a negative or fractional reading is not a count.
            if s.value.is_finite() && s.value >= 0.0 {
                *counts
                    .entry((resource.to_string(), verb.to_string()))
                    .or_default() += s.value as u64;
            }
        }
        WriteCounts(counts)
    }

    /// What was written between `before` and `self` (a counter that went down, because the
    /// server restarted, counts from zero).
    pub fn since(&self, before: &WriteCounts) -> WriteCounts {
        let counts = self
            .0
            .iter()
            .filter_map(|(key, &after)| {
                let prior = before.0.get(key).copied().unwrap_or(0);
                let delta = if after >= prior { after - prior } else { after };
                (delta > 0).then(|| (key.clone(), delta))
            })
            .collect();
        WriteCounts(counts)
    }

    /// The part of the counts whose resource passes `keep`.
    pub fn only(&self, keep: impl Fn(&str) -> bool) -> WriteCounts {
        WriteCounts(
            self.0
                .iter()
                .filter(|((resource, _), _)| keep(resource))
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
        )
    }

    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }

    /// `services/status patch 3, leases update 2`, or `none`.
    pub fn describe(&self) -> String {
        if self.0.is_empty() {
            return "none".into();
        }
        self.0
            .iter()
            .map(|((resource, verb), n)| format!("{resource} {verb} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::prom_text::parse;

    fn line(verb: &str, resource: &str, code: u16, client: &str, n: u64) -> String {
        format!(
            "apiserver_request_total{{client=\"{client}\",code=\"{code}\",resource=\"{resource}\",user_agent=\"\",verb=\"{verb}\"}} {n}\n"
        )
    }

    fn counts(text: &str, client: &str) -> WriteCounts {
        WriteCounts::of_client(&parse(text).unwrap(), client)
    }

    #[test]
    fn counts_only_writes_of_the_client_summed_over_codes() {
        let text = [
            line("patch", "services/status", 200, "192.0.2.2", 5),
            line("patch", "services/status", 409, "192.0.2.2", 1),
            line("watch", "services", 200, "192.0.2.2", 4),
            line("list", "services", 200, "192.0.2.2", 2),
            line("create", "events", 201, "192.0.2.2", 3),
            line("patch", "services/status", 200, "192.0.2.11", 7),
            "apiserver_request_duration_seconds_count{resource=\"services\",verb=\"patch\"} 99\n"
                .to_string(),
        ]
        .concat();
        let c = counts(&text, "192.0.2.2");
        assert_eq!(c.total(), 9);
        assert_eq!(
            c.0.get(&("services/status".to_string(), "patch".to_string())),
            Some(&6)
        );
        assert_eq!(c.describe(), "events create 3, services/status patch 6");
        assert_eq!(counts(&text, "192.0.2.11").total(), 7);
        assert_eq!(counts(&text, "198.51.100.1").describe(), "none");
    }

    #[test]
    fn since_keeps_only_what_grew() {
        let before = counts(
            &[
                line("patch", "services/status", 200, "c", 10),
                line("update", "leases", 200, "c", 4),
            ]
            .concat(),
            "c",
        );
        let after = counts(
            &[
                line("patch", "services/status", 200, "c", 10),
                line("update", "leases", 200, "c", 6),
                line("create", "leases", 201, "c", 1),
            ]
            .concat(),
            "c",
        );
        let delta = after.since(&before);
        assert_eq!(delta.describe(), "leases create 1, leases update 2");
        assert_eq!(delta.only(|r| r != "leases").total(), 0);
        assert_eq!(after.since(&after).total(), 0);
    }

    #[test]
    fn a_counter_reset_counts_from_zero() {
        let before = counts(&line("patch", "services/status", 200, "c", 50), "c");
        let after = counts(&line("patch", "services/status", 200, "c", 3), "c");
        assert_eq!(after.since(&before).total(), 3);
    }

    #[test]
    fn samples_without_verb_or_resource_or_with_odd_values_are_ignored() {
        let text = "apiserver_request_total{client=\"c\",verb=\"patch\"} 3\n\
                    apiserver_request_total{client=\"c\",resource=\"services\"} 3\n\
                    apiserver_request_total{client=\"c\",resource=\"services\",verb=\"patch\"} NaN\n\
                    apiserver_request_total{client=\"c\",resource=\"services\",verb=\"patch\"} -1\n";
        assert_eq!(counts(text, "c").total(), 0);
    }
}
