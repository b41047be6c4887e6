//! Every API request (reads and writes) a set of clients made, from two readings of the
//! API-server stand-in's `apiserver_request_total{verb,resource,code,client,user_agent}` (see
//! `e2e/src/apiserver/metrics.rs`). Pure: the benchmark fetches `/metrics`, this module counts.
//! Counts are kept per resource so that requests from another component at the same address
//! (in the lab the node agent runs next to the controller in `cp`) can be told apart.
//!
//! A watch counts once, when it is opened (that is what the stand-in counts); a watch held
//! open costs no further requests.

use std::collections::BTreeMap;

use super::prom_text::Sample;

/// The counter the stand-in exports.
pub const REQUEST_COUNTER: &str = "apiserver_request_total";

/// Verbs that change state (watch, get and list do not).
pub const WRITE_VERBS: [&str; 5] = ["create", "update", "patch", "delete", "deletecollection"];

/// Requests per (resource, verb), whatever the response code.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestCounts(pub BTreeMap<(String, String), u64>);

impl RequestCounts {
    /// The requests made from any address in `clients`, as read from one exposition.
    pub fn of_clients(samples: &[Sample], clients: &[&str]) -> Self {
        let mut counts = BTreeMap::new();
        for s in samples.iter().filter(|s| s.name == REQUEST_COUNTER) {
            let (Some(verb), Some(resource), Some(client)) =
                (s.label("verb"), s.label("resource"), s.label("client"))
            else {
                continue;
            };
            if !clients.contains(&client) || !s.value.is_finite() || s.value < 0.0 {
                continue;
            }
            *counts
                .entry((resource.to_string(), verb.to_string()))
                .or_default() += s.value as u64;
        }
        RequestCounts(counts)
    }

    /// What was requested between `before` and `self` (a counter that went down, because
    /// the server restarted, counts from zero).
    pub fn since(&self, before: &RequestCounts) -> RequestCounts {
        RequestCounts(
            self.0
                .iter()
                .filter_map(|(key, &after)| {
                    let prior = before.0.get(key).copied().unwrap_or(0);
                    let delta = if after >= prior { after - prior } else { after };
                    (delta > 0).then(|| (key.clone(), delta))
                })
                .collect(),
        )
    }

    fn filtered(&self, keep: impl Fn(&str, &str) -> bool) -> RequestCounts {
        RequestCounts(
            self.0
                .iter()
                .filter(|((resource, verb), _)| keep(resource, verb))
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
        )
    }

    /// Only the state-changing requests.
    pub fn writes(&self) -> RequestCounts {
        self.filtered(|_, verb| WRITE_VERBS.contains(&verb))
    }

    /// Only get, list and watch (and anything else that is not a write).
    pub fn reads(&self) -> RequestCounts {
        self.filtered(|_, verb| !WRITE_VERBS.contains(&verb))
    }

    /// The part whose resource passes `keep`.
    pub fn only(&self, keep: impl Fn(&str) -> bool) -> RequestCounts {
        self.filtered(|resource, _| keep(resource))
    }

    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }

    /// `services watch 3, nodes list 1`, or `none`.
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

    fn counts(lines: &[String], clients: &[&str]) -> RequestCounts {
        RequestCounts::of_clients(&parse(&lines.concat()).unwrap(), clients)
    }

    #[test]
    fn sums_every_listed_client_and_splits_reads_from_writes() {
        let lines = [
            line("watch", "services", 200, "192.0.2.11", 2),
            line("watch", "services", 200, "192.0.2.12", 3),
            line("list", "nodes", 200, "192.0.2.11", 1),
            line("create", "servicel2statuses", 201, "192.0.2.12", 1),
            line("patch", "servicel2statuses", 409, "192.0.2.12", 2),
            line("patch", "services/status", 200, "192.0.2.2", 9),
        ];
        let c = counts(&lines, &["192.0.2.11", "192.0.2.12", "192.0.2.13"]);
        assert_eq!(c.total(), 9);
        assert_eq!(c.reads().describe(), "nodes list 1, services watch 5");
        assert_eq!(
            c.writes().describe(),
            "servicel2statuses create 1, servicel2statuses patch 2"
        );
        assert_eq!(c.only(|r| r == "services").total(), 5);
        assert_eq!(counts(&lines, &["192.0.2.2"]).writes().total(), 9);
        assert_eq!(counts(&lines, &[]).describe(), "none");
    }

    #[test]
    fn since_counts_growth_and_restarts_from_zero() {
        let before = counts(
            &[
                line("watch", "services", 200, "a", 4),
                line("patch", "events", 200, "a", 10),
            ],
            &["a"],
        );
        let after = counts(
            &[
                line("watch", "services", 200, "a", 4),
                line("watch", "nodes", 200, "a", 1),
                line("patch", "events", 200, "a", 2),
            ],
            &["a"],
        );
        let d = after.since(&before);
        assert_eq!(d.describe(), "events patch 2, nodes watch 1");
        assert_eq!(after.since(&after).total(), 0);
    }

    #[test]
    fn samples_missing_labels_or_with_odd_values_are_ignored() {
        let text = "apiserver_request_total{client=\"a\",verb=\"get\"} 3\n\
                    apiserver_request_total{resource=\"nodes\",verb=\"get\"} 3\n\
                    apiserver_request_total{client=\"a\",resource=\"nodes\",verb=\"get\"} NaN\n\
                    apiserver_request_total{client=\"a\",resource=\"nodes\",verb=\"get\"} -2\n\
                    apiserver_longrunning_requests{client=\"a\",resource=\"nodes\",verb=\"watch\"} 5\n";
        assert_eq!(
            RequestCounts::of_clients(&parse(text).unwrap(), &["a"]).total(),
            0
        );
    }
}
