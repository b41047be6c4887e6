//! Benchmark helpers: baselines that ironlb is measured against, in the same run, and what the
//! lab benchmarks measure with (latency percentiles, `/proc` and `/metrics` readers, Service
//! load and a timestamping watcher).

pub mod api_requests;
pub mod arp_watch;
pub mod iperf;
pub mod l2_client;
pub mod latency;
pub mod linear_cursor;
pub mod neighbor_probe;
pub mod probe_gap;
pub mod proc_usage;
pub mod prom_text;
pub mod runner;
pub mod service_load;
pub mod timeline;
