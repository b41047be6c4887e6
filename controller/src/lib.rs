//! ironlb-controller: assigns external IPs from IPAddressPools to LoadBalancer Services.

pub mod allocator;
pub mod admin;
pub mod leader;
pub mod telemetry;
pub mod metrics;
pub mod server_caps;
