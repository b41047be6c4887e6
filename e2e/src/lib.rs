//! The ironlb lab: a Kubernetes cluster on one machine, built from network namespaces.

pub mod apiserver;
pub mod bench;
pub mod chart;
pub mod harness;
pub mod lab;
