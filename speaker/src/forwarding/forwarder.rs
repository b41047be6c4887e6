//! [`Forwarder`]: keeps the kernel's ironlb table equal to the entries this node owns.
//!
//! It owns the one piece of state the runtime needs, what it last put in the kernel, so that
//! an unchanged set of entries costs no netlink traffic, an empty set removes the table, and a
//! failed or uncertain transaction is retried on the next sync.

use super::entry::ForwardEntry;
use super::mark::MarkBit;
use super::nft::{NftBackend, NftError};
use super::render::render;
use super::ruleset::{Ruleset, TABLE_NAME};

/// What the kernel holds, as far as the forwarder knows.
#[derive(Clone, Debug, PartialEq, Eq)]
enum TableState {
    /// At start-up (a previous run may have left a table) or after an uncertain transaction.
    Unknown,
    Absent,
    Present(Ruleset),
}

/// What a [`Forwarder::sync`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncOutcome {
    /// The kernel already held this ruleset; nothing was sent.
    Unchanged,
    /// The table was replaced; it now holds `rules` rules.
    Applied { rules: usize },
    /// The node forwards nothing; the table was removed.
    Removed,
}

pub struct Forwarder<B> {
    backend: B,
    mark: MarkBit,
    state: TableState,
}

impl<B: NftBackend> Forwarder<B> {
    /// `mark` is the bit of the packet and conntrack marks that ironlb borrows
    /// ([`MarkBit::DEFAULT`], `0x2000`, unless the node's other software uses it; see
    /// [`mark`](super::mark)). The first [`sync`](Self::sync) always writes, which also clears
    /// a table left behind by a previous run.
    pub fn new(backend: B, mark: MarkBit) -> Self {
        Forwarder {
            backend,
            mark,
            state: TableState::Unknown,
        }
    }

    /// The mark bit this forwarder renders with.
    pub fn mark(&self) -> MarkBit {
        self.mark
    }

    /// Makes the kernel forward exactly `entries`. Entries that conflict are resolved as
    /// [`render`] documents; report them with [`conflicts`](super::render::conflicts).
    pub fn sync(&mut self, entries: &[ForwardEntry]) -> Result<SyncOutcome, NftError> {
        if entries.is_empty() {
            if self.state == TableState::Absent {
                return Ok(SyncOutcome::Unchanged);
            }
            self.write(None)?;
            return Ok(SyncOutcome::Removed);
        }
        let ruleset = render(entries, self.mark);
        if matches!(&self.state, TableState::Present(current) if *current == ruleset) {
            return Ok(SyncOutcome::Unchanged);
        }
        let rules = ruleset.rule_count();
        self.write(Some(ruleset))?;
        Ok(SyncOutcome::Applied { rules })
    }

    /// Removes the table, whatever the forwarder believes is there. For shutdown.
    pub fn remove(&mut self) -> Result<(), NftError> {
        self.write(None)
    }

    fn write(&mut self, ruleset: Option<Ruleset>) -> Result<(), NftError> {
        let result = match &ruleset {
            Some(ruleset) => self.backend.replace(ruleset),
            None => self.backend.remove(TABLE_NAME),
        };
        match result {
            Ok(()) => {
                self.state = match ruleset {
                    Some(ruleset) => TableState::Present(ruleset),
                    None => TableState::Absent,
                };
                Ok(())
            }
            // A refused transaction changed nothing, so what we knew still holds.
            Err(err) if !err.is_outcome_unknown() => Err(err),
            Err(err) => {
                self.state = TableState::Unknown;
                Err(err)
            }
        }
    }

    /// Rules the kernel holds for ironlb (the `ironlb_forward_rules` gauge); 0 when unknown.
    pub fn rule_count(&self) -> usize {
        match &self.state {
            TableState::Present(ruleset) => ruleset.rule_count(),
            _ => 0,
        }
    }

    /// The ruleset in the kernel, when known.
    pub fn current(&self) -> Option<&Ruleset> {
        match &self.state {
            TableState::Present(ruleset) => Some(ruleset),
            _ => None,
        }
    }

    pub fn backend(&self) -> &B {
        &self.backend
    }

    pub fn backend_mut(&mut self) -> &mut B {
        &mut self.backend
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forwarding::entry::L4Protocol;
    use crate::forwarding::mark::MarkBit;
    use crate::forwarding::netlink_msg::MessageRole;
    use crate::forwarding::nft::MessageFailure;
    use std::collections::VecDeque;
    use std::time::Duration;

    #[derive(Debug, PartialEq, Eq)]
    enum Call {
        Replace(Ruleset),
        Remove(String),
    }

    /// Records calls; answers with queued results, `Ok` when none is queued.
    #[derive(Default)]
    struct FakeBackend {
        calls: Vec<Call>,
        results: VecDeque<Result<(), NftError>>,
    }

    impl NftBackend for FakeBackend {
        fn replace(&mut self, ruleset: &Ruleset) -> Result<(), NftError> {
            self.calls.push(Call::Replace(ruleset.clone()));
            self.results.pop_front().unwrap_or(Ok(()))
        }

        fn remove(&mut self, table: &str) -> Result<(), NftError> {
            self.calls.push(Call::Remove(table.to_string()));
            self.results.pop_front().unwrap_or(Ok(()))
        }
    }

    fn entry(port: u16) -> ForwardEntry {
        ForwardEntry::new(
            "198.51.100.10".parse().unwrap(),
            L4Protocol::Tcp,
            port,
            "192.0.2.1".parse().unwrap(),
            30000 + port,
            vec![],
        )
        .unwrap()
    }

    fn rendered(entries: &[ForwardEntry]) -> Ruleset {
        render(entries, MarkBit::DEFAULT)
    }

    fn applied(entries: &[ForwardEntry]) -> SyncOutcome {
        SyncOutcome::Applied {
            rules: rendered(entries).rule_count(),
        }
    }

    fn rejected() -> NftError {
        NftError::Rejected {
            failures: vec![MessageFailure {
                seq: 5,
                role: MessageRole::Rule { chain: 0, rule: 0 },
                what: "rule 1 of chain to_nodeports".into(),
                errno: 95,
                kernel_message: None,
            }],
        }
    }

    #[test]
    fn applies_once_then_skips_unchanged_entries() {
        let mut fwd = Forwarder::new(FakeBackend::default(), MarkBit::DEFAULT);
        let both = [entry(80), entry(443)];
        assert_eq!(fwd.sync(&both).unwrap(), applied(&both));
        assert_eq!(
            fwd.sync(&[entry(443), entry(80)]).unwrap(),
            SyncOutcome::Unchanged
        );
        assert_eq!(fwd.rule_count(), rendered(&both).rule_count());
        assert_eq!(fwd.sync(&[entry(80)]).unwrap(), applied(&[entry(80)]));
        assert_eq!(
            fwd.backend().calls,
            vec![
                Call::Replace(rendered(&both)),
                Call::Replace(rendered(&[entry(80)]))
            ]
        );
    }

    #[test]
    fn owning_nothing_removes_the_table_once() {
        let mut fwd = Forwarder::new(FakeBackend::default(), MarkBit::DEFAULT);
        // Unknown at start: a leftover table from a previous run must go.
        assert_eq!(fwd.sync(&[]).unwrap(), SyncOutcome::Removed);
        assert_eq!(fwd.sync(&[]).unwrap(), SyncOutcome::Unchanged);
        fwd.sync(&[entry(80)]).unwrap();
        assert_eq!(fwd.sync(&[]).unwrap(), SyncOutcome::Removed);
        assert_eq!(fwd.rule_count(), 0);
        assert_eq!(
            fwd.backend().calls,
            vec![
                Call::Remove("ironlb".into()),
                Call::Replace(rendered(&[entry(80)])),
                Call::Remove("ironlb".into())
            ]
        );
    }

    #[test]
    fn a_refused_transaction_keeps_the_known_state() {
        let mut fwd = Forwarder::new(FakeBackend::default(), MarkBit::DEFAULT);
        fwd.sync(&[entry(80)]).unwrap();
        fwd.backend_mut().results.push_back(Err(rejected()));
        assert!(matches!(
            fwd.sync(&[entry(81)]),
            Err(NftError::Rejected { .. })
        ));
        // The kernel still holds the port-80 ruleset, so asking for it again sends nothing.
        assert_eq!(fwd.current(), Some(&rendered(&[entry(80)])));
        assert_eq!(fwd.sync(&[entry(80)]).unwrap(), SyncOutcome::Unchanged);
        // Retrying the refused change sends it again.
        assert_eq!(fwd.sync(&[entry(81)]).unwrap(), applied(&[entry(81)]));
    }

    #[test]
    fn an_uncertain_transaction_is_retried() {
        let mut fwd = Forwarder::new(FakeBackend::default(), MarkBit::DEFAULT);
        fwd.sync(&[entry(80)]).unwrap();
        fwd.backend_mut()
            .results
            .push_back(Err(NftError::Timeout(Duration::from_secs(5))));
        assert!(fwd.sync(&[entry(81)]).is_err());
        assert_eq!(fwd.rule_count(), 0);
        assert_eq!(fwd.sync(&[entry(80)]).unwrap(), applied(&[entry(80)]));
    }

    #[test]
    fn renders_with_its_own_mark_bit() {
        let bit = MarkBit::new(0x0040_0000).unwrap();
        let mut fwd = Forwarder::new(FakeBackend::default(), bit);
        assert_eq!(fwd.mark(), bit);
        fwd.sync(&[entry(80)]).unwrap();
        assert_eq!(fwd.current(), Some(&render(&[entry(80)], bit)));
        assert_ne!(fwd.current(), Some(&rendered(&[entry(80)])));
    }

    #[test]
    fn remove_always_reaches_the_kernel() {
        let mut fwd = Forwarder::new(FakeBackend::default(), MarkBit::DEFAULT);
        fwd.sync(&[]).unwrap();
        fwd.remove().unwrap();
        assert_eq!(fwd.backend().calls.len(), 2);
    }

    #[test]
    fn errors_name_the_refused_message() {
        let text = rejected().to_string();
        assert!(text.contains("rule 1 of chain to_nodeports"), "{text}");
        assert!(text.contains("nothing was changed"), "{text}");
        assert_eq!(rejected().first_errno(), Some(95));
        assert!(!rejected().is_outcome_unknown());
        assert!(NftError::RepliesLost.is_outcome_unknown());
    }
}
