//! Recent membership updates waiting to ride on outgoing datagrams (SWIM's infection-style
//! dissemination). Each update is carried by a bounded number of datagrams, least-sent first.
//!
//! Suspicions, deaths, refutations and leaves are also sent directly to every member when they
//! happen; piggybacking is the repair path for members that lost those datagrams.

use super::state::Update;
use super::wire::update_len;

/// At most this many updates ride on one datagram.
pub const MAX_PER_DATAGRAM: usize = 8;

#[derive(Debug, Default, Clone)]
pub struct Piggyback {
    queue: Vec<(Update, u32)>,
}

impl Piggyback {
    /// Queues `update`, replacing older news about the same member.
    pub fn push(&mut self, update: Update) {
        self.queue.retain(|(u, _)| u.member != update.member);
        self.queue.push((update, 0));
    }

    /// Drops news about a member that left the peer list.
    pub fn forget(&mut self, member: &str) {
        self.queue.retain(|(u, _)| u.member != member);
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Appends to `out` the least-sent updates that fit in `budget` bytes, skipping news about
    /// `skip` (already in `out`), and retires updates sent `limit` times.
    pub fn fill(
        &mut self,
        out: &mut Vec<Update>,
        mut budget: usize,
        skip: Option<&str>,
        limit: u32,
    ) {
        // Stable sort: among equally-sent updates the older one goes first.
        self.queue.sort_by_key(|(_, sent)| *sent);
        let mut taken = 0;
        for (update, sent) in &mut self.queue {
            if taken == MAX_PER_DATAGRAM {
                break;
            }
            if skip == Some(update.member.as_str()) {
                continue;
            }
            let len = update_len(update);
            if len > budget {
                continue;
            }
            budget -= len;
            out.push(update.clone());
            *sent += 1;
            taken += 1;
        }
        self.queue.retain(|(_, sent)| *sent < limit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::membership::state::{MemberState, Status};

    fn up(member: &str, state: MemberState, inc: u64) -> Update {
        Update {
            member: member.into(),
            status: Status::new(state, inc),
        }
    }

    #[test]
    fn newer_news_replaces_older_about_the_same_member() {
        let mut p = Piggyback::default();
        p.push(up("a", MemberState::Suspect, 1));
        p.push(up("a", MemberState::Alive, 2));
        let mut out = vec![];
        p.fill(&mut out, 1000, None, 10);
        assert_eq!(out, vec![up("a", MemberState::Alive, 2)]);
    }

    #[test]
    fn updates_retire_after_limit_sends() {
        let mut p = Piggyback::default();
        p.push(up("a", MemberState::Dead, 1));
        for _ in 0..3 {
            let mut out = vec![];
            p.fill(&mut out, 1000, None, 3);
            assert_eq!(out.len(), 1);
        }
        let mut out = vec![];
        p.fill(&mut out, 1000, None, 3);
        assert!(out.is_empty());
        assert!(p.is_empty());
    }

    #[test]
    fn least_sent_first_within_budget_and_skip() {
        let mut p = Piggyback::default();
        p.push(up("a", MemberState::Dead, 1));
        let mut out = vec![];
        p.fill(&mut out, 1000, None, 10);
        p.push(up("b", MemberState::Dead, 1));
        p.push(up("c", MemberState::Dead, 1));
        let mut out = vec![];
        // Room for exactly one update of a one-letter name.
        p.fill(
            &mut out,
            update_len(&up("b", MemberState::Dead, 1)),
            None,
            10,
        );
        assert_eq!(out, vec![up("b", MemberState::Dead, 1)]);
        let mut out = vec![];
        p.fill(&mut out, 1000, Some("c"), 10);
        assert!(!out.iter().any(|u| u.member == "c"));
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn at_most_max_per_datagram() {
        let mut p = Piggyback::default();
        for i in 0..20 {
            p.push(up(&format!("n{i}"), MemberState::Dead, 1));
        }
        let mut out = vec![];
        p.fill(&mut out, 10_000, None, 10);
        assert_eq!(out.len(), MAX_PER_DATAGRAM);
        p.forget("n0");
        assert_eq!(p.len(), 19);
    }
}
