//! Process plumbing shared by both binaries (feature `runtime`): the admin HTTP endpoint
//! (`/metrics`, `/healthz`, `/readyz`), the log set-up, the parsing of duration flags, the
//! shutdown signal and the one-line fatal error.
//!
//! It lives here because the product's top level has no room for a third library crate, and
//! both `ironlb-controller` and `ironlb-speaker` already depend on this one. The default build
//! of the crate stays pure; only the binaries enable `runtime`.

pub mod admin;
pub mod duration;
pub mod process;
pub mod telemetry;
