//! ironlb-controller: assigns external IPs from IPAddressPools to LoadBalancer Services.

pub mod admin;
pub mod allocator;
pub mod brain;
pub mod cli;
pub mod leader;
pub mod metrics;
pub mod runtime;
pub mod server_caps;
pub mod telemetry;
pub mod writer;
