//! The ironlb lab: a Kubernetes cluster on one machine, built from network namespaces.

pub mod lab;
