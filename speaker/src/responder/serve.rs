//! The receive loop of one responder socket, on its own thread: each frame goes to
//! [`decide`](super::decide()) with the interface's current owned set, and the reply (if any)
//! goes straight back out. pnet's receive blocks, so this is a thread, not a task; it wakes at
//! least every [`READ_TIMEOUT`](super::socket::READ_TIMEOUT) to see whether it must stop.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::decide::{Decision, DropReason, decide};
use super::owned::OwnedCell;
use super::socket::{Receiver, Sender};
use crate::metrics::Metrics;
use crate::packet::MacAddr;

/// Conflicts (another MAC claiming one of our IPs) are logged at most this often per socket.
const CONFLICT_LOG_INTERVAL: Duration = Duration::from_secs(10);
/// Consecutive receive errors after which the socket is given up (the interface is gone).
const MAX_ERRORS: u32 = 50;

/// Everything one receive loop needs.
pub struct Loop {
    pub interface: String,
    pub mac: MacAddr,
    pub rx: Receiver,
    pub tx: Arc<Mutex<Sender>>,
    pub owned: Arc<OwnedCell>,
    pub metrics: Metrics,
    pub stop: Arc<AtomicBool>,
}

impl Loop {
    /// Runs until `stop` is set or the socket fails for good.
    pub fn run(mut self) {
        let mut errors = 0u32;
        let mut last_conflict_log: Option<Instant> = None;
        while !self.stop.load(Ordering::Relaxed) {
            let frame = match self.rx.next() {
                Ok(frame) => frame,
                Err(err) if is_timeout(&err) => continue,
                Err(err) => {
                    errors += 1;
                    if errors >= MAX_ERRORS {
                        tracing::error!(interface = %self.interface, error = %err, "responder socket keeps failing; giving up on this interface");
                        return;
                    }
                    tracing::debug!(interface = %self.interface, error = %err, "responder receive failed");
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
            };
            errors = 0;
            self.metrics.requests_received.inc();
            let owned = self.owned.load();
            match decide(frame, self.mac, &*owned) {
                Decision::Reply(reply) => {
                    let sent = self
                        .tx
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .send_to(&reply.frame, None);
                    match sent {
                        Some(Ok(())) => self.metrics.responses_sent.inc(),
                        Some(Err(err)) => {
                            self.metrics.send_errors.inc();
                            tracing::debug!(interface = %self.interface, ip = %reply.ip, error = %err, "cannot send a reply");
                        }
                        None => self.metrics.send_errors.inc(),
                    }
                }
                Decision::Drop(reason) => {
                    self.metrics.dropped(reason);
                    if reason == DropReason::Conflict
                        && last_conflict_log.is_none_or(|t| t.elapsed() >= CONFLICT_LOG_INTERVAL)
                    {
                        last_conflict_log = Some(Instant::now());
                        tracing::warn!(interface = %self.interface, "another host announces an address this node announces (counted in ironlb_l2_requests_dropped_total{{reason=\"conflict\"}})");
                    }
                }
            }
        }
    }
}

fn is_timeout(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}
