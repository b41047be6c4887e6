//! Takeover announcements: gratuitous ARP (both the request and the reply form, since hosts
//! differ in which one updates their cache) for IPv4, an unsolicited Neighbor Advertisement
//! with the Override flag to all-nodes for IPv6.
//!
//! The first round goes out at once, the rest follow [`SCHEDULE`] (about 2 s in all), so a
//! client that missed one frame, or whose neighbour entry was too fresh to be replaced
//! (Linux's `locktime`), still moves. Every round first checks that the IP is still owned on
//! the interface: an IP lost in the meantime is never announced again.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::owned::OwnedCell;
use super::socket::Sender;
use crate::metrics::Metrics;
use crate::packet::MacAddr;
use crate::packet::build::{self, GratuitousForm};

/// When each round goes out, from the takeover.
pub const SCHEDULE: [Duration; 5] = [
    Duration::ZERO,
    Duration::from_millis(200),
    Duration::from_millis(500),
    Duration::from_millis(1000),
    Duration::from_millis(2000),
];

/// The frames of one round for `ip`.
pub fn round_frames(mac: MacAddr, ip: IpAddr) -> Vec<Vec<u8>> {
    match ip {
        IpAddr::V4(v4) => vec![
            build::gratuitous_arp(mac, v4, GratuitousForm::Request).to_bytes(),
            build::gratuitous_arp(mac, v4, GratuitousForm::Reply).to_bytes(),
        ],
        IpAddr::V6(v6) => vec![build::unsolicited_neighbor_advert(mac, v6).to_bytes()],
    }
}

/// Sends announcements on one interface.
#[derive(Clone)]
pub struct GratuitousSender {
    pub interface: String,
    pub mac: MacAddr,
    pub arp_tx: Arc<Mutex<Sender>>,
    pub ndp_tx: Arc<Mutex<Sender>>,
    pub owned: Arc<OwnedCell>,
    pub metrics: Metrics,
}

impl GratuitousSender {
    /// Sends one round for `ip` if it is still owned here; false when it is not.
    pub fn send_round(&self, ip: IpAddr) -> bool {
        if !self.owned.owns(ip) {
            return false;
        }
        let tx = if ip.is_ipv4() {
            &self.arp_tx
        } else {
            &self.ndp_tx
        };
        let mut tx = tx.lock().unwrap_or_else(|p| p.into_inner());
        for frame in round_frames(self.mac, ip) {
            match tx.send_to(&frame, None) {
                Some(Ok(())) => self.metrics.gratuitous_sent.inc(),
                Some(Err(err)) => {
                    self.metrics.send_errors.inc();
                    tracing::warn!(interface = %self.interface, %ip, error = %err, "cannot send a gratuitous announcement");
                }
                None => self.metrics.send_errors.inc(),
            }
        }
        true
    }

    /// Sends the first round now and schedules the others; they stop early when the IP is
    /// lost or `cancel` fires.
    pub fn announce(&self, ip: IpAddr, cancel: &CancellationToken) {
        if !self.send_round(ip) {
            return;
        }
        let sender = self.clone();
        let cancel = cancel.clone();
        tokio::spawn(async move {
            let start = tokio::time::Instant::now();
            for at in &SCHEDULE[1..] {
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep_until(start + *at) => {}
                }
                if !sender.send_round(ip) {
                    return;
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::{Frame, Payload, arp};

    const MAC: MacAddr = MacAddr([2, 0x1b, 0, 0, 0, 0x11]);

    #[test]
    fn ipv4_rounds_send_both_gratuitous_forms() {
        let frames = round_frames(MAC, "198.51.100.7".parse().unwrap());
        assert_eq!(frames.len(), 2);
        let ops: Vec<arp::Operation> = frames
            .iter()
            .map(|f| match Frame::parse(f).unwrap().payload {
                Payload::Arp(a) => {
                    assert!(a.is_gratuitous());
                    assert_eq!(a.sender_mac, MAC);
                    a.operation
                }
                _ => panic!("not ARP"),
            })
            .collect();
        assert_eq!(ops, [arp::Operation::Request, arp::Operation::Reply]);
    }

    #[test]
    fn ipv6_rounds_send_one_overriding_advert() {
        let frames = round_frames(MAC, "2001:db8:0:100::7".parse().unwrap());
        assert_eq!(frames.len(), 1);
        let frame = Frame::parse(&frames[0]).unwrap();
        assert_eq!(frame.src, MAC);
        assert!(matches!(frame.payload, Payload::Ndp(_)));
    }

    #[test]
    fn the_schedule_starts_at_once_and_spans_about_two_seconds() {
        assert_eq!(SCHEDULE[0], Duration::ZERO);
        assert!(SCHEDULE.windows(2).all(|w| w[0] < w[1]));
        let last = *SCHEDULE.last().unwrap();
        assert!(last >= Duration::from_millis(1500) && last <= Duration::from_millis(2500));
    }
}
