//! `/metrics`: request counts by verb, resource, code and client (peer IP and User-Agent), so
//! benchmarks can attribute API load to the component that made it, plus latency and open
//! watches.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    watches: IntGaugeVec,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "apiserver_request_total",
                "Requests served, by verb, resource, HTTP code and client.",
            ),
            &["verb", "resource", "code", "client", "user_agent"],
        )
        .expect("valid metric");
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "apiserver_request_duration_seconds",
                "Time to answer non-watch requests.",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
            &["verb", "resource"],
        )
        .expect("valid metric");
        let watches = IntGaugeVec::new(
            Opts::new(
                "apiserver_longrunning_requests",
                "Open watches, by resource.",
            ),
            &["resource"],
        )
        .expect("valid metric");
        for c in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(latency.clone()),
            Box::new(watches.clone()),
        ] {
            registry.register(c).expect("unique metric");
        }
        Metrics {
            registry,
            requests,
            latency,
            watches,
        }
    }

    pub fn observe(
        &self,
        verb: &str,
        resource: &str,
        code: u16,
        client: &str,
        user_agent: &str,
        seconds: Option<f64>,
    ) {
        self.requests
            .with_label_values(&[verb, resource, &code.to_string(), client, user_agent])
            .inc();
        if let Some(s) = seconds {
            self.latency.with_label_values(&[verb, resource]).observe(s);
        }
    }

    /// Counts an open watch until the guard drops.
    pub fn watch_guard(&self, resource: &str) -> WatchGuard {
        let g = self.watches.with_label_values(&[resource]);
        g.inc();
        WatchGuard(g)
    }

    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

pub struct WatchGuard(prometheus::IntGauge);

impl Drop for WatchGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_labelled_by_client() {
        let m = Metrics::new();
        m.observe(
            "patch",
            "services",
            200,
            "192.0.2.11",
            "ironlb-speaker/0.1",
            Some(0.001),
        );
        m.observe(
            "patch",
            "services",
            200,
            "192.0.2.11",
            "ironlb-speaker/0.1",
            None,
        );
        {
            let _g = m.watch_guard("services");
            assert!(
                m.render()
                    .contains("apiserver_longrunning_requests{resource=\"services\"} 1")
            );
        }
        let text = m.render();
        assert!(text.contains("apiserver_request_total{client=\"192.0.2.11\",code=\"200\",resource=\"services\",user_agent=\"ironlb-speaker/0.1\",verb=\"patch\"} 2"), "{text}");
        assert!(text.contains("apiserver_longrunning_requests{resource=\"services\"} 0"));
    }
}
