//! Speaker membership: which speakers are alive, learned over authenticated UDP between the
//! speakers themselves, never through the API (no API writes at all).
//!
//! The peer list (node name and IP of every speaker) comes from the API through the runtime; this
//! module decides which of them are alive and publishes that set for the election.
//!
//! # Protocol
//!
//! A SWIM-style failure detector ([`protocol`]), written here rather than wrapping `foca` because
//! it needs three things that a wrapper around a random-probing SWIM cannot give:
//!
//! - **A hard, size-independent detection bound.** SWIM probes random members, so the time until
//!   a dead member is first probed is only bounded in expectation. Here each member probes the
//!   `monitors` members after it on a hashed ring ([`ring`]) every probe interval, so every member
//!   is probed `monitors` times per interval at any cluster size. A failure is declared by every
//!   member within [`Config::detection_bound`] (450 ms by default) plus network jitter, and each
//!   member sends about `2 × monitors` datagrams per interval whatever the cluster size.
//! - **Fast, loss-tolerant dissemination.** SWIM's suspicion, refutation by incarnation number,
//!   indirect probes and piggybacked updates are kept. In addition, suspicions, deaths,
//!   refutations and leaves are sent directly to every member when they happen (rare events, so
//!   the steady-state load stays flat), and every member that hears of a suspicion pings the
//!   suspect itself, so one lost refutation cannot cause a false death.
//! - **Replay protection woven into the protocol** (see [`replay`]): liveness is only ever
//!   concluded from an ack that echoes a nonce the member (or a relay it asked) chose, and other
//!   datagrams are accepted only with a per-sender sequence number above a baseline set by such
//!   an ack. A captured genuine datagram replayed later is therefore refused by every member,
//!   including members that restarted since. No clocks are compared between nodes, so clock skew
//!   cannot split the cluster. Incarnation numbers order beliefs from different members.
//!
//! Every datagram carries an HMAC-SHA256 tag under a shared key ([`key`], [`wire`]); datagrams
//! with a wrong or missing tag are dropped and counted, so a forged "node X is alive" has no
//! effect. The recipient's name is authenticated too, so a datagram cannot be redirected.
//!
//! # Layout
//!
//! Pure (no I/O, no clock): [`wire`], [`key`], [`state`], [`replay`], [`ring`], [`piggyback`],
//! [`config`], [`protocol`], and the network simulator [`sim`]. I/O: [`driver`] (tokio UDP) and
//! [`args`] (flags, key file).

pub mod args;
pub mod config;
pub mod driver;
pub mod key;
pub mod piggyback;
pub mod protocol;
pub mod replay;
pub mod ring;
mod rng;
pub mod sim;
pub mod state;
pub mod wire;

use std::net::SocketAddr;
use std::path::PathBuf;

pub use args::MembershipArgs;
pub use config::{Config, ConfigError};
pub use driver::{AliveView, Membership, Settings, Stats};
pub use key::{Key, KeyError};
pub use protocol::{Counters, Event, Identity, Outgoing, Peer, Protocol};
pub use state::{MemberState, Status, Update};

/// Why membership could not be set up or run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid membership configuration: {0}")]
    Config(#[from] ConfigError),
    #[error("invalid membership key: {0}")]
    Key(#[from] KeyError),
    #[error("cannot read the membership key file {path}: {source}")]
    KeyFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("node name {0:?} is empty or longer than 253 bytes")]
    InvalidName(String),
    #[error("cannot bind the membership socket to {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
