//! Forwarding glue: keeps the kernel's `inet ironlb` table equal to the state's entries plus
//! the entries still draining, through [`Forwarder`] over [`NetlinkNft`] on a blocking
//! thread.
//!
//! When an IP is lost its entries stay for `--forward-drain` (2 s by default): clients that
//! still have this node's MAC in their neighbour cache keep reaching the Service until the new
//! owner's gratuitous ARP has moved them. A draining entry gives way at once to a current
//! entry for the same address and port or the same NodePort.
//!
//! A failed transaction is logged, counted in the rule gauge as unknown, and retried on the
//! next change or retry tick.

use std::net::IpAddr;
use std::time::Duration;

use tokio::time::Instant;

use crate::forwarding::{ForwardEntry, Forwarder, MarkBit, NetlinkNft, NftError, SyncOutcome};
use crate::metrics::Metrics;

/// The current entries plus the draining ones that do not collide with them. Pure.
pub fn effective(current: &[ForwardEntry], draining: &[ForwardEntry]) -> Vec<ForwardEntry> {
    let mut out = current.to_vec();
    for entry in draining {
        let collides = current.iter().any(|c| {
            (c.vip() == entry.vip() && c.protocol() == entry.protocol() && c.port() == entry.port())
                || (c.node_ip() == entry.node_ip()
                    && c.protocol() == entry.protocol()
                    && c.node_port() == entry.node_port())
        });
        if !collides && !out.contains(entry) {
            out.push(entry.clone());
        }
    }
    out
}

pub struct Forwarding {
    forwarder: Option<Forwarder<NetlinkNft>>,
    mark: MarkBit,
    drain: Duration,
    metrics: Metrics,
    current: Vec<ForwardEntry>,
    draining: Vec<(ForwardEntry, Instant)>,
    /// The last sync failed (or the socket could not be opened): try again.
    failed: bool,
    last_error: Option<String>,
}

impl Forwarding {
    /// Opens the netlink socket and removes whatever table a previous run left behind.
    pub async fn start(mark: MarkBit, drain: Duration, metrics: Metrics) -> Forwarding {
        let mut forwarding = Forwarding {
            forwarder: None,
            mark,
            drain,
            metrics,
            current: Vec::new(),
            draining: Vec::new(),
            failed: true,
            last_error: None,
        };
        forwarding.sync().await;
        forwarding
    }

    /// The state's new entries; the entries of `lost` IPs that disappear start draining.
    pub async fn set(&mut self, entries: Vec<ForwardEntry>, lost: &[IpAddr]) {
        let until = Instant::now() + self.drain;
        for old in &self.current {
            if lost.contains(&old.vip()) && !entries.contains(old) && !self.drain.is_zero() {
                self.draining.push((old.clone(), until));
            }
        }
        self.current = entries;
        self.sync().await;
    }

    /// When the next draining entry expires.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.draining.iter().map(|(_, t)| *t).min()
    }

    /// Drops expired draining entries, and retries a failed sync.
    pub async fn tick(&mut self) {
        let now = Instant::now();
        let before = self.draining.len();
        self.draining.retain(|(_, t)| *t > now);
        if self.draining.len() != before || self.failed {
            self.sync().await;
        }
    }

    /// Whether the kernel holds any of our rules (as far as we know).
    pub fn is_empty(&self) -> bool {
        self.current.is_empty() && self.draining.is_empty()
    }

    /// Removes the table (shutdown).
    pub async fn remove(&mut self) {
        self.current.clear();
        self.draining.clear();
        let Some(mut forwarder) = self.take_forwarder().await else {
            return;
        };
        let joined = tokio::task::spawn_blocking(move || {
            let result = forwarder.remove();
            (forwarder, result)
        })
        .await;
        let Ok((forwarder, result)) = joined else {
            tracing::error!("forwarding: the netlink thread failed; the table may remain");
            return;
        };
        match result {
            Ok(()) => tracing::info!("forwarding: table removed"),
            Err(err) => tracing::error!(error = %err, "forwarding: cannot remove the table"),
        }
        self.metrics.forward_rules.set(0);
        self.forwarder = Some(forwarder);
    }

    async fn take_forwarder(&mut self) -> Option<Forwarder<NetlinkNft>> {
        if let Some(f) = self.forwarder.take() {
            return Some(f);
        }
        let mark = self.mark;
        match tokio::task::spawn_blocking(NetlinkNft::open).await {
            Ok(Ok(nft)) => Some(Forwarder::new(nft, mark)),
            Ok(Err(err)) => {
                self.note_error(&err);
                None
            }
            Err(err) => {
                tracing::error!(error = %err, "forwarding: cannot open netlink");
                None
            }
        }
    }

    fn note_error(&mut self, err: &NftError) {
        let text = err.to_string();
        if self.last_error.as_deref() != Some(&text) {
            tracing::error!(error = %text, "forwarding: the kernel table could not be updated; retrying");
            self.last_error = Some(text);
        }
        self.failed = true;
    }

    async fn sync(&mut self) {
        let draining: Vec<ForwardEntry> = self.draining.iter().map(|(e, _)| e.clone()).collect();
        let entries = effective(&self.current, &draining);
        let Some(mut forwarder) = self.take_forwarder().await else {
            return;
        };
        let joined = tokio::task::spawn_blocking(move || {
            let result = forwarder.sync(&entries);
            (forwarder, result)
        })
        .await;
        let Ok((forwarder, result)) = joined else {
            // The forwarder is lost with the thread; a fresh one starts from an unknown table.
            tracing::error!("forwarding: the netlink thread failed; retrying with a new socket");
            self.failed = true;
            return;
        };
        match result {
            Ok(outcome) => {
                if self.failed && self.last_error.is_some() {
                    tracing::info!("forwarding: the kernel table is up to date again");
                }
                self.failed = false;
                self.last_error = None;
                match outcome {
                    SyncOutcome::Applied { rules } => {
                        tracing::debug!(rules, "forwarding: table replaced")
                    }
                    SyncOutcome::Removed => tracing::debug!("forwarding: table removed"),
                    SyncOutcome::Unchanged => {}
                }
            }
            Err(err) => self.note_error(&err),
        }
        self.metrics
            .forward_rules
            .set(i64::try_from(forwarder.rule_count()).unwrap_or(i64::MAX));
        self.forwarder = Some(forwarder);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forwarding::L4Protocol;

    fn entry(vip: &str, port: u16, node_port: u16) -> ForwardEntry {
        ForwardEntry::new(
            vip.parse().unwrap(),
            L4Protocol::Tcp,
            port,
            "192.0.2.11".parse().unwrap(),
            node_port,
            vec![],
        )
        .unwrap()
    }

    #[test]
    fn draining_entries_are_added_unless_they_collide() {
        let current = [entry("198.51.100.1", 80, 30080)];
        let draining = [
            entry("198.51.100.2", 80, 30081),  // kept
            entry("198.51.100.1", 80, 30099),  // same VIP and port: gives way
            entry("198.51.100.3", 443, 30080), // same NodePort: gives way
            entry("198.51.100.1", 80, 30080),  // identical: once
        ];
        let out = effective(&current, &draining);
        assert_eq!(
            out,
            [
                entry("198.51.100.1", 80, 30080),
                entry("198.51.100.2", 80, 30081)
            ]
        );
        assert_eq!(effective(&[], &draining[..1]), draining[..1]);
    }
}
