//! Replay protection: which (epoch, sequence) a member will accept next from each sender.
//!
//! Every sender numbers its datagrams with a strictly increasing sequence inside a random
//! per-start epoch. A receiver only accepts unsolicited datagrams from a sender once it holds a
//! *baseline* for it, and a baseline is set only by an `Ack` that echoes a nonce the receiver
//! chose itself. Such an ack cannot be a replay, so everything the sender sent before it (every
//! datagram an attacker could have captured) has a lower sequence or an older epoch and is
//! refused from then on. No clocks are involved, so clock skew between nodes cannot break
//! membership. A receiver that has just started holds no baselines, and so accepts nothing
//! unsolicited until it has challenged the sender: a restarted receiver cannot be fooled by
//! datagrams captured before its restart either.
//!
//! After the baseline, each sequence number is accepted at most once. A window of the last
//! [`WINDOW`] sequence numbers (as in IPsec's anti-replay window) lets datagrams that the network
//! reordered through; anything older than the window is refused.

use std::collections::HashMap;

/// How far behind the highest accepted sequence number a datagram may arrive.
pub const WINDOW: u64 = 64;

/// What a receiver makes of a datagram's (epoch, sequence).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Not accepted before from this sender in its current epoch, and not older than the window.
    Fresh,
    /// A replay, a duplicate, or older than the window.
    Stale,
    /// No baseline for this sender, or a different epoch: the sender must be challenged first.
    Unverified,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Baseline {
    epoch: u64,
    highest: u64,
    /// Bit `i` set: sequence `highest - i` was accepted (or predates the baseline).
    seen: u64,
}

impl Baseline {
    fn is_fresh(&self, seq: u64) -> bool {
        if seq > self.highest {
            return true;
        }
        let behind = self.highest - seq;
        behind < WINDOW && self.seen & (1 << behind) == 0
    }

    fn mark(&mut self, seq: u64) {
        if seq > self.highest {
            let shift = seq - self.highest;
            self.seen = if shift >= WINDOW {
                0
            } else {
                self.seen << shift
            };
            self.seen |= 1;
            self.highest = seq;
        } else if self.highest - seq < WINDOW {
            self.seen |= 1 << (self.highest - seq);
        }
    }
}

/// Per-sender baselines held by one receiver.
#[derive(Debug, Default, Clone)]
pub struct ReplayGuard {
    baselines: HashMap<String, Baseline>,
}

impl ReplayGuard {
    /// Classifies a datagram without recording it.
    pub fn check(&self, sender: &str, epoch: u64, seq: u64) -> Freshness {
        match self.baselines.get(sender) {
            Some(b) if b.epoch == epoch && b.is_fresh(seq) => Freshness::Fresh,
            Some(b) if b.epoch == epoch => Freshness::Stale,
            _ => Freshness::Unverified,
        }
    }

    /// Records an accepted fresh datagram.
    pub fn accept(&mut self, sender: &str, epoch: u64, seq: u64) {
        if let Some(b) = self.baselines.get_mut(sender)
            && b.epoch == epoch
        {
            b.mark(seq);
        }
    }

    /// Records an ack that answered one of our own nonces: proof that `epoch` is the sender's
    /// current life and that it had reached `seq`. A new baseline counts everything up to `seq`
    /// as seen, so nothing sent before the ack can be accepted later.
    pub fn establish(&mut self, sender: &str, epoch: u64, seq: u64) {
        let fresh_baseline = Baseline {
            epoch,
            highest: seq,
            seen: u64::MAX,
        };
        match self.baselines.get_mut(sender) {
            Some(b) if b.epoch == epoch => b.mark(seq),
            Some(b) => *b = fresh_baseline,
            None => {
                self.baselines.insert(sender.to_owned(), fresh_baseline);
            }
        }
    }

    /// Forgets a sender that left the peer list.
    pub fn forget(&mut self, sender: &str) {
        self.baselines.remove(sender);
    }

    /// Whether a baseline is held for `sender` (in any epoch).
    pub fn knows(&self, sender: &str) -> bool {
        self.baselines.contains_key(sender)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn nothing_is_accepted_before_a_challenge_answer() {
        let g = ReplayGuard::default();
        assert_eq!(g.check("a", 1, 100), Freshness::Unverified);
        assert!(!g.knows("a"));
    }

    #[test]
    fn after_the_baseline_only_newer_sequences_pass() {
        let mut g = ReplayGuard::default();
        g.establish("a", 1, 10);
        assert_eq!(g.check("a", 1, 10), Freshness::Stale);
        assert_eq!(g.check("a", 1, 9), Freshness::Stale);
        assert_eq!(g.check("a", 1, 11), Freshness::Fresh);
        g.accept("a", 1, 11);
        assert_eq!(
            g.check("a", 1, 11),
            Freshness::Stale,
            "a duplicate is a replay"
        );
        assert_eq!(g.check("a", 1, 12), Freshness::Fresh);
    }

    #[test]
    fn another_epoch_needs_a_new_challenge_and_replaces_the_old_one() {
        let mut g = ReplayGuard::default();
        g.establish("a", 1, 50);
        assert_eq!(
            g.check("a", 2, 1),
            Freshness::Unverified,
            "restart or replay of another life"
        );
        g.establish("a", 2, 3);
        assert_eq!(
            g.check("a", 1, 51),
            Freshness::Unverified,
            "the old life is over"
        );
        assert_eq!(g.check("a", 2, 4), Freshness::Fresh);
    }

    #[test]
    fn a_reordered_ack_does_not_roll_the_baseline_back() {
        let mut g = ReplayGuard::default();
        g.establish("a", 1, 20);
        g.establish("a", 1, 15);
        assert_eq!(g.check("a", 1, 18), Freshness::Stale);
        assert_eq!(g.check("a", 1, 21), Freshness::Fresh);
    }

    #[test]
    fn forgetting_a_sender_requires_a_new_challenge() {
        let mut g = ReplayGuard::default();
        g.establish("a", 1, 1);
        g.forget("a");
        assert_eq!(g.check("a", 1, 2), Freshness::Unverified);
    }

    proptest! {
        /// Whatever the interleaving, no (epoch, seq) is accepted twice after a baseline.
        #[test]
        fn no_datagram_is_accepted_twice(
            base in 0u64..1000,
            seqs in proptest::collection::vec(0u64..1300, 1..300),
        ) {
            let mut g = ReplayGuard::default();
            g.establish("a", 7, base);
            let mut accepted = std::collections::HashSet::new();
            let mut highest = base;
            for s in seqs {
                if g.check("a", 7, s) == Freshness::Fresh {
                    prop_assert!(s > base, "seq {} predates the baseline {}", s, base);
                    prop_assert!(s + WINDOW > highest, "seq {} is older than the window", s);
                    prop_assert!(accepted.insert(s), "seq {} accepted twice", s);
                    g.accept("a", 7, s);
                    highest = highest.max(s);
                }
            }
        }
    }
}
