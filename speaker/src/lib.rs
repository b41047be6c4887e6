//! ironlb-speaker: elects one node per external IP, answers ARP/NDP for it and forwards to NodePorts.

pub mod cli;
pub mod election;
pub mod forwarding;
pub mod health;
pub mod membership;
pub mod metrics;
pub mod packet;
pub mod responder;
pub mod runtime;
pub mod state;
