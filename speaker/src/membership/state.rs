//! What one member believes about another, and the rule that orders conflicting beliefs.
//!
//! A member's status is a pair (incarnation, state). Only the member itself raises its
//! incarnation, to refute a suspicion or to come back after being declared dead. Beliefs merge as
//! a max-register over (incarnation, state rank) with Alive < Suspect < Dead < Left, which is the
//! SWIM precedence: a newer incarnation wins, and at equal incarnation bad news wins. Because the
//! merge is a maximum, members converge whatever order the reports arrive in.

use std::fmt;

/// A member's state as seen by another member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MemberState {
    /// Listed by the API but not heard from yet: not counted as alive.
    Unknown,
    /// Answers probes.
    Alive,
    /// Missed a probe; still counted as alive until the suspicion timeout.
    Suspect,
    /// Did not refute a suspicion in time.
    Dead,
    /// Announced that it is shutting down.
    Left,
}

impl MemberState {
    /// Whether this state counts the member as alive (owning IPs).
    pub fn is_live(self) -> bool {
        matches!(self, Self::Alive | Self::Suspect)
    }

    /// Whether this is news that the member itself must refute if it is not true.
    pub fn is_negative(self) -> bool {
        matches!(self, Self::Suspect | Self::Dead | Self::Left)
    }

    /// The wire code. `Unknown` is 0 and is only valid in a sender's view of the recipient.
    pub fn code(self) -> u8 {
        match self {
            Self::Unknown => 0,
            Self::Alive => 1,
            Self::Suspect => 2,
            Self::Dead => 3,
            Self::Left => 4,
        }
    }

    /// Decodes a wire code.
    pub fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            0 => Self::Unknown,
            1 => Self::Alive,
            2 => Self::Suspect,
            3 => Self::Dead,
            4 => Self::Left,
            _ => return None,
        })
    }
}

impl fmt::Display for MemberState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Unknown => "unknown",
            Self::Alive => "alive",
            Self::Suspect => "suspect",
            Self::Dead => "dead",
            Self::Left => "left",
        })
    }
}

/// A belief about one member: its state at an incarnation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Status {
    pub state: MemberState,
    pub incarnation: u64,
}

impl Status {
    pub const UNKNOWN: Status = Status {
        state: MemberState::Unknown,
        incarnation: 0,
    };

    pub fn new(state: MemberState, incarnation: u64) -> Self {
        Self { state, incarnation }
    }

    fn rank(self) -> (u64, MemberState) {
        (self.incarnation, self.state)
    }

    /// Whether `self` replaces `current` under the SWIM precedence.
    pub fn supersedes(self, current: Status) -> bool {
        // Unknown is the bottom: it never replaces a belief, and any report replaces it.
        if self.state == MemberState::Unknown {
            return false;
        }
        if current.state == MemberState::Unknown {
            return true;
        }
        self.rank() > current.rank()
    }

    /// The merged belief.
    pub fn merge(self, other: Status) -> Status {
        if other.supersedes(self) { other } else { self }
    }
}

/// A piece of membership news carried in datagrams.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Update {
    pub member: String,
    pub status: Status,
}

#[cfg(test)]
mod tests {
    use super::*;
    use MemberState::*;
    use proptest::prelude::*;

    fn s(state: MemberState, inc: u64) -> Status {
        Status::new(state, inc)
    }

    #[test]
    fn swim_precedence_table() {
        // (incoming, current, incoming wins?)
        let cases = [
            (s(Alive, 2), s(Alive, 1), true),
            (s(Alive, 1), s(Alive, 1), false),
            (s(Alive, 2), s(Suspect, 1), true),
            (s(Alive, 1), s(Suspect, 1), false),
            (s(Alive, 2), s(Dead, 1), true),
            (s(Alive, 1), s(Dead, 1), false),
            (s(Suspect, 1), s(Alive, 1), true),
            (s(Suspect, 0), s(Alive, 1), false),
            (s(Suspect, 1), s(Suspect, 1), false),
            (s(Suspect, 1), s(Dead, 1), false),
            (s(Dead, 1), s(Alive, 1), true),
            (s(Dead, 1), s(Suspect, 1), true),
            (s(Dead, 0), s(Alive, 1), false),
            (s(Left, 1), s(Dead, 1), true),
            (s(Dead, 1), s(Left, 1), false),
            (s(Dead, 0), Status::UNKNOWN, true),
            (s(Alive, 0), Status::UNKNOWN, true),
            (Status::UNKNOWN, Status::UNKNOWN, false),
            (Status::UNKNOWN, s(Alive, 0), false),
        ];
        for (incoming, current, wins) in cases {
            assert_eq!(
                incoming.supersedes(current),
                wins,
                "{incoming:?} over {current:?}"
            );
        }
    }

    #[test]
    fn wire_codes_round_trip_and_reject_unknown_codes() {
        for state in [Unknown, Alive, Suspect, Dead, Left] {
            assert_eq!(MemberState::from_code(state.code()), Some(state));
        }
        for code in 5..=255u8 {
            assert_eq!(MemberState::from_code(code), None);
        }
    }

    fn arb_status() -> impl Strategy<Value = Status> {
        (0u8..5, 0u64..4).prop_map(|(c, inc)| s(MemberState::from_code(c).unwrap_or(Alive), inc))
    }

    proptest! {
        /// Members converge: merging the same reports in any order gives the same belief.
        #[test]
        fn merge_is_order_independent(
            reports in proptest::collection::vec(arb_status(), 0..12),
            seed in any::<u64>(),
        ) {
            let forward = reports.iter().fold(Status::UNKNOWN, |acc, r| acc.merge(*r));
            let mut shuffled = reports.clone();
            // Fisher-Yates with a fixed-seed LCG, so the permutation comes from proptest's input.
            let mut x = seed;
            for i in (1..shuffled.len()).rev() {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                shuffled.swap(i, (x >> 33) as usize % (i + 1));
            }
            let permuted = shuffled.iter().fold(Status::UNKNOWN, |acc, r| acc.merge(*r));
            prop_assert_eq!(forward, permuted);
        }

        /// A report never loses to one it supersedes, and never supersedes itself.
        #[test]
        fn supersedes_is_a_strict_order(a in arb_status(), b in arb_status()) {
            prop_assert!(!a.supersedes(a));
            prop_assert!(!(a.supersedes(b) && b.supersedes(a)));
        }
    }
}
