//! ironlb-controller: assigns external IPs from IPAddressPools to LoadBalancer Services.
//!
//! # Map
//!
//! | module | owns |
//! |---|---|
//! | [`allocator`] | which Service holds which address (pure, O(log n) per operation) |
//! | [`brain`] | every decision: an index of Services, pools and Namespaces around the allocator, turning objects into [`brain::Intent`]s (pure, no I/O) |
//! | [`writer`] | every API write: server-side apply of Service status, the pool annotation and pool status, and Events; per-object coalescing, bounded concurrency, retries, the ipMode fallback |
//! | [`runtime`] | the leader's work: watches feeding the brain in order, relists, metrics |
//! | [`leader`] | the Lease election ([`leader::decide`] is pure) |
//! | [`cli`] | the flags (each with an env fallback) and their validation |
//! | [`admin`] | `/metrics`, `/healthz`, `/readyz` |
//! | [`metrics`] | the `ironlb_*` metrics on a process-owned registry |
//! | [`server_caps`] | what the API server supports (ipMode), from `/version` |
//! | [`telemetry`] | log set-up |
//!
//! State flows one way: watch events → [`runtime::Feeder`] → [`brain::Brain`] →
//! [`brain::Output`] → [`writer::Writer`] → API server, whose watch events close the loop. The
//! brain compares what it wants with what each object shows, so the echoes of its own writes
//! and resyncs produce nothing.

pub mod allocator;
pub mod brain;
pub mod cli;
pub mod leader;
pub mod metrics;
pub mod runtime;
pub mod server_caps;
pub mod writer;

// The admin endpoint and log set-up are shared with the speaker.
pub use ironlb_crds::runtime::{admin, telemetry};
