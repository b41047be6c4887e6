//! ironlb-controller: assigns external IPs from IPAddressPools to LoadBalancer Services.

pub mod admin;
pub mod leader;
pub mod telemetry;
