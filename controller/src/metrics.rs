//! The controller's Prometheus metrics (DESIGN.md "Metrics"), registered on a process-owned
//! registry that `main` creates and the admin endpoint serves.

use prometheus::{
    Gauge, GaugeVec, Histogram, HistogramOpts, IntCounter, IntCounterVec, Opts, Registry,
};

/// Every metric the controller exports.
#[derive(Clone)]
pub struct Metrics {
    pub addresses_total: GaugeVec,
    pub addresses_in_use: GaugeVec,
    pub reconciles: IntCounterVec,
    pub reconcile_duration: Histogram,
    pub allocation_failures: IntCounterVec,
    pub is_leader: Gauge,
    pub watch_restarts: IntCounter,
}

impl Metrics {
    /// Creates the metrics and registers them on `registry`.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let metrics = Metrics {
            addresses_total: GaugeVec::new(
                Opts::new(
                    "ironlb_allocator_addresses_total",
                    "Addresses a pool can hand out, per IP family (saturates above 2^53 as a float).",
                ),
                &["pool", "family"],
            )?,
            addresses_in_use: GaugeVec::new(
                Opts::new(
                    "ironlb_allocator_addresses_in_use",
                    "Addresses of a pool currently assigned to Services, per IP family.",
                ),
                &["pool", "family"],
            )?,
            reconciles: IntCounterVec::new(
                Opts::new(
                    "ironlb_controller_reconciles_total",
                    "Service reconciliations, by result (ok or error).",
                ),
                &["result"],
            )?,
            reconcile_duration: Histogram::with_opts(
                HistogramOpts::new(
                    "ironlb_controller_reconcile_duration_seconds",
                    "Time taken to reconcile one Service, API writes included.",
                )
                .buckets(vec![
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                ]),
            )?,
            allocation_failures: IntCounterVec::new(
                Opts::new(
                    "ironlb_controller_allocation_failures_total",
                    "Failed IP allocations, by reason.",
                ),
                &["reason"],
            )?,
            is_leader: Gauge::new(
                "ironlb_controller_is_leader",
                "1 while this replica holds the leader Lease, else 0.",
            )?,
            watch_restarts: IntCounter::new(
                "ironlb_k8s_watch_restarts_total",
                "Watches that failed and were restarted (API server restarts, 410 Gone, drops).",
            )?,
        };
        registry.register(Box::new(metrics.addresses_total.clone()))?;
        registry.register(Box::new(metrics.addresses_in_use.clone()))?;
        registry.register(Box::new(metrics.reconciles.clone()))?;
        registry.register(Box::new(metrics.reconcile_duration.clone()))?;
        registry.register(Box::new(metrics.allocation_failures.clone()))?;
        registry.register(Box::new(metrics.is_leader.clone()))?;
        registry.register(Box::new(metrics.watch_restarts.clone()))?;
        Ok(metrics)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_metric_is_exported() {
        let registry = Registry::new();
        let m = Metrics::register(&registry).unwrap();
        m.addresses_total
            .with_label_values(&["p", "ipv4"])
            .set(11.0);
        m.addresses_in_use
            .with_label_values(&["p", "ipv4"])
            .set(2.0);
        m.reconciles.with_label_values(&["ok"]).inc();
        m.reconcile_duration.observe(0.001);
        m.allocation_failures
            .with_label_values(&["exhausted"])
            .inc();
        let names: Vec<String> = registry
            .gather()
            .iter()
            .map(|f| f.name().to_string())
            .collect();
        for want in [
            "ironlb_allocator_addresses_total",
            "ironlb_allocator_addresses_in_use",
            "ironlb_controller_reconciles_total",
            "ironlb_controller_reconcile_duration_seconds",
            "ironlb_controller_allocation_failures_total",
            "ironlb_controller_is_leader",
            "ironlb_k8s_watch_restarts_total",
        ] {
            assert!(
                names.iter().any(|n| n == want),
                "{want} missing from {names:?}"
            );
        }
    }
}
