//! ironlb-speaker: elects one node per external IP, answers ARP/NDP for it and forwards to NodePorts.

pub mod election;
pub mod forwarding;
pub mod membership;
pub mod packet;
pub mod responder;
pub mod state;
