//! The speaker's Prometheus metrics (DESIGN.md "Metrics"), registered on a process-owned
//! registry that `main` creates and the admin endpoint serves.

use prometheus::{IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

use crate::responder::DropReason;

/// Every metric the speaker exports. Cloning shares the metrics.
#[derive(Clone)]
pub struct Metrics {
    pub announced: IntGaugeVec,
    pub requests_received: IntCounter,
    pub responses_sent: IntCounter,
    pub requests_dropped: IntCounterVec,
    pub gratuitous_sent: IntCounter,
    pub send_errors: IntCounter,
    pub members: IntGauge,
    pub takeovers: IntCounter,
    pub forward_rules: IntGauge,
    pub watch_restarts: IntCounter,
    pub api_writes: IntCounterVec,
    pub membership_rejected: IntCounterVec,
    pub kube_proxy_healthy: IntGauge,
}

impl Metrics {
    /// Creates the metrics and registers them on `registry`.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let metrics = Metrics {
            announced: IntGaugeVec::new(
                Opts::new(
                    "ironlb_speaker_announced",
                    "1 for each Service address this node announces (answers ARP/NDP for).",
                ),
                &["service", "ip", "node"],
            )?,
            requests_received: IntCounter::new(
                "ironlb_l2_requests_received_total",
                "ARP and NDP frames received on the announcing interfaces.",
            )?,
            responses_sent: IntCounter::new(
                "ironlb_l2_responses_sent_total",
                "ARP replies and Neighbor Advertisements sent in answer to requests.",
            )?,
            requests_dropped: IntCounterVec::new(
                Opts::new(
                    "ironlb_l2_requests_dropped_total",
                    "ARP and NDP frames not answered, by reason (not_owned is the usual one; malformed, conflict and bad_source deserve a look).",
                ),
                &["reason"],
            )?,
            gratuitous_sent: IntCounter::new(
                "ironlb_l2_gratuitous_sent_total",
                "Gratuitous ARP and unsolicited Neighbor Advertisement frames sent on takeover.",
            )?,
            send_errors: IntCounter::new(
                "ironlb_l2_send_errors_total",
                "Frames the kernel refused to send.",
            )?,
            members: IntGauge::new(
                "ironlb_speaker_members",
                "Speakers this node sees alive in membership, itself included (0 while it is not a member).",
            )?,
            takeovers: IntCounter::new(
                "ironlb_speaker_takeovers_total",
                "Addresses this node started announcing.",
            )?,
            forward_rules: IntGauge::new(
                "ironlb_forward_rules",
                "Rules in this node's nftables table (0 when there is none or its content is unknown).",
            )?,
            watch_restarts: IntCounter::new(
                "ironlb_k8s_watch_restarts_total",
                "Watches that failed and were restarted (API server restarts, 410 Gone, drops).",
            )?,
            api_writes: IntCounterVec::new(
                Opts::new(
                    "ironlb_speaker_api_writes_total",
                    "Writes this speaker made to the API server, by kind (none at steady state).",
                ),
                &["kind"],
            )?,
            membership_rejected: IntCounterVec::new(
                Opts::new(
                    "ironlb_speaker_membership_rejected_total",
                    "Membership datagrams ignored, by reason (auth_failure: wrong or missing key).",
                ),
                &["reason"],
            )?,
            kube_proxy_healthy: IntGauge::new(
                "ironlb_speaker_kube_proxy_healthy",
                "1 while this node's kube-proxy healthz answers (or is not checked), else 0.",
            )?,
        };
        registry.register(Box::new(metrics.announced.clone()))?;
        registry.register(Box::new(metrics.requests_received.clone()))?;
        registry.register(Box::new(metrics.responses_sent.clone()))?;
        registry.register(Box::new(metrics.requests_dropped.clone()))?;
        registry.register(Box::new(metrics.gratuitous_sent.clone()))?;
        registry.register(Box::new(metrics.send_errors.clone()))?;
        registry.register(Box::new(metrics.members.clone()))?;
        registry.register(Box::new(metrics.takeovers.clone()))?;
        registry.register(Box::new(metrics.forward_rules.clone()))?;
        registry.register(Box::new(metrics.watch_restarts.clone()))?;
        registry.register(Box::new(metrics.api_writes.clone()))?;
        registry.register(Box::new(metrics.membership_rejected.clone()))?;
        registry.register(Box::new(metrics.kube_proxy_healthy.clone()))?;
        Ok(metrics)
    }

    /// Counts a frame the responder did not answer.
    pub fn dropped(&self, reason: DropReason) {
        self.requests_dropped
            .with_label_values(&[reason.label()])
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::Encoder;

    #[test]
    fn every_design_metric_is_exported() {
        let registry = Registry::new();
        let m = Metrics::register(&registry).unwrap();
        m.announced
            .with_label_values(&["default/web", "198.51.100.1", "node1"])
            .set(1);
        m.dropped(DropReason::NotOwned);
        m.api_writes.with_label_values(&["status_apply"]).inc();
        m.membership_rejected
            .with_label_values(&["auth_failure"])
            .inc();
        let mut text = Vec::new();
        prometheus::TextEncoder::new()
            .encode(&registry.gather(), &mut text)
            .unwrap();
        let text = String::from_utf8(text).unwrap();
        for name in [
            "ironlb_speaker_announced{ip=\"198.51.100.1\",node=\"node1\",service=\"default/web\"} 1",
            "ironlb_l2_requests_received_total 0",
            "ironlb_l2_responses_sent_total 0",
            "ironlb_l2_gratuitous_sent_total 0",
            "ironlb_l2_requests_dropped_total{reason=\"not_owned\"} 1",
            "ironlb_speaker_members 0",
            "ironlb_speaker_takeovers_total 0",
            "ironlb_forward_rules 0",
            "ironlb_k8s_watch_restarts_total 0",
        ] {
            assert!(text.contains(name), "{name} missing:\n{text}");
        }
        // A second registration on the same registry is refused, not silently doubled.
        assert!(Metrics::register(&registry).is_err());
    }
}
