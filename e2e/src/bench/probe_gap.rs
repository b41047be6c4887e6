//! The client-visible gap of a failover, from the timeline of a prober that sends a request to
//! the VIP every few milliseconds. Pure: the benchmark records when answers arrived (and which
//! node sent each), this module finds the outage.
//!
//! The gap is the longest silence between two consecutive answers, counted from the last
//! answer at or before the event (the moment the benchmark failed or stopped the owner). With
//! nothing lost it equals the probe interval, so a figure close to the interval means "no
//! probe lost", not "zero".

use std::time::Duration;

/// One answered probe: when its answer arrived, from the prober's start, and who answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub at: Duration,
    pub responder: String,
}

/// The longest silence after an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outage {
    /// The answer that opened the silence.
    pub last_before: Duration,
    /// The answer that ended it.
    pub first_after: Duration,
    /// `first_after - last_before`.
    pub gap: Duration,
    /// Who answered at the event, and at the end of the timeline.
    pub responder_before: String,
    pub responder_after: String,
    /// The longest interval between answers before the event: the prober's own resolution
    /// while nothing failed.
    pub baseline: Duration,
    /// The first answer after the event from another node than the one answering at it.
    pub moved_at: Option<Duration>,
}

impl Outage {
    /// Whether another node answers at the end than at the event.
    pub fn moved(&self) -> bool {
        self.responder_before != self.responder_after
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GapError {
    #[error(
        "no probe was answered at or before the event (at {event:?}); the VIP did not answer to begin with"
    )]
    NoAnswerBefore { event: Duration },
    #[error(
        "no probe was answered after {last:?}, the last answer before the event: the VIP never came back"
    )]
    NoAnswerAfter { last: Duration },
    #[error(
        "answer {index} arrived at {at:?}, before the one ahead of it: the timeline is not in time order"
    )]
    Unordered { index: usize, at: Duration },
}

/// Finds the longest silence in `answers` (in arrival order) that starts at or after the last
/// answer before `event`.
pub fn outage(answers: &[Answer], event: Duration) -> Result<Outage, GapError> {
    if let Some(index) = answers.windows(2).position(|w| w[1].at < w[0].at) {
        return Err(GapError::Unordered {
            index: index + 1,
            at: answers[index + 1].at,
        });
    }
    let start = answers
        .iter()
        .rposition(|a| a.at <= event)
        .ok_or(GapError::NoAnswerBefore { event })?;
    let tail = &answers[start..];
    let (longest, pair) = tail
        .windows(2)
        .map(|w| (w[1].at - w[0].at, w))
        // The first of equally long silences: the one the event caused.
        .fold(
            None,
            |best: Option<(Duration, &[Answer])>, (d, w)| match best {
                Some((b, _)) if b >= d => best,
                _ => Some((d, w)),
            },
        )
        .ok_or(GapError::NoAnswerAfter {
            last: answers[start].at,
        })?;
    let baseline = answers[..=start]
        .windows(2)
        .map(|w| w[1].at - w[0].at)
        .max()
        .unwrap_or_default();
    Ok(Outage {
        last_before: pair[0].at,
        first_after: pair[1].at,
        gap: longest,
        responder_before: answers[start].responder.clone(),
        responder_after: answers[answers.len() - 1].responder.clone(),
        baseline,
        moved_at: answers[start..]
            .iter()
            .find(|a| a.responder != answers[start].responder)
            .map(|a| a.at),
    })
}

/// Whether the prober can stop: since `event` the answers have moved to another responder
/// than the one answering at the event, and the new one has answered alone for `hold`.
pub fn moved_and_held(answers: &[Answer], event: Duration, hold: Duration) -> bool {
    let Some(before) = answers.iter().rev().find(|a| a.at <= event) else {
        return false;
    };
    let Some(last) = answers.last() else {
        return false;
    };
    if last.responder == before.responder {
        return false;
    }
    let run_start = answers
        .iter()
        .rposition(|a| a.responder != last.responder)
        .map_or(answers[0].at, |i| answers[i + 1].at);
    run_start > event && last.at - run_start >= hold
}

/// The node a reply of the lab's kube-proxy stand-in names (`node=node2 pod=... client=...`).
pub fn responder_of(reply: &str) -> Option<&str> {
    reply
        .split_whitespace()
        .find_map(|field| field.strip_prefix("node="))
        .filter(|node| !node.is_empty())
}

/// The median of a set of gaps (the lower middle of an even count, so it is a measured
/// value), or `None` when there are none.
pub fn median(values: &[Duration]) -> Option<Duration> {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    sorted.get(sorted.len().checked_sub(1)? / 2).copied()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    /// Answers every `step` ms in [from, to), from `who`.
    fn every(from: u64, to: u64, step: u64, who: &str) -> Vec<Answer> {
        (from..to)
            .step_by(step as usize)
            .map(|t| Answer {
                at: ms(t),
                responder: who.to_string(),
            })
            .collect()
    }

    #[test]
    fn a_failover_is_the_silence_between_the_two_owners() {
        let mut answers = every(0, 1000, 10, "node1");
        answers.extend(every(1650, 3000, 10, "node2"));
        let o = outage(&answers, ms(995)).unwrap();
        assert_eq!(o.last_before, ms(990));
        assert_eq!(o.first_after, ms(1650));
        assert_eq!(o.gap, ms(660));
        assert_eq!(o.baseline, ms(10));
        assert_eq!(
            (o.responder_before.as_str(), o.responder_after.as_str()),
            ("node1", "node2")
        );
        assert!(o.moved());
        assert_eq!(o.moved_at, Some(ms(1650)));
    }

    #[test]
    fn the_silence_may_begin_after_the_event() {
        // The owner keeps answering for 40 ms after the benchmark asked for its failure.
        let mut answers = every(0, 540, 10, "node1");
        answers.extend(every(900, 1200, 10, "node3"));
        let o = outage(&answers, ms(500)).unwrap();
        assert_eq!(
            (o.last_before, o.first_after, o.gap),
            (ms(530), ms(900), ms(370))
        );
    }

    #[test]
    fn nothing_lost_gives_the_probe_interval() {
        let mut answers = every(0, 500, 10, "node1");
        answers.extend(every(500, 1000, 10, "node2"));
        let o = outage(&answers, ms(495)).unwrap();
        assert_eq!(o.gap, ms(10));
        assert_eq!(o.moved_at, Some(ms(500)));
        assert_eq!(
            o.last_before,
            ms(490),
            "the first of equal silences is reported"
        );
        assert!(o.moved());
    }

    #[test]
    fn a_silence_before_the_event_is_not_the_outage() {
        let mut answers = every(0, 100, 10, "node1");
        answers.extend(every(400, 1000, 10, "node1"));
        answers.extend(every(1100, 1200, 10, "node2"));
        let o = outage(&answers, ms(995)).unwrap();
        assert_eq!(o.gap, ms(110));
        assert_eq!(
            o.moved_at,
            Some(ms(1100)),
            "the earlier node1-only silence is no move"
        );
        assert_eq!(
            o.baseline,
            ms(310),
            "the earlier silence shows as the baseline"
        );
    }

    #[test]
    fn the_longest_of_several_later_silences_wins() {
        let mut answers = every(0, 100, 10, "node1");
        answers.extend(every(300, 400, 10, "node2"));
        answers.extend(every(900, 1000, 10, "node2"));
        let o = outage(&answers, ms(95)).unwrap();
        assert_eq!((o.last_before, o.first_after), (ms(390), ms(900)));
    }

    #[test]
    fn no_answer_before_or_after_is_an_error() {
        let answers = every(500, 600, 10, "node1");
        assert_eq!(
            outage(&answers, ms(100)),
            Err(GapError::NoAnswerBefore { event: ms(100) })
        );
        assert_eq!(
            outage(&answers, ms(595)),
            Err(GapError::NoAnswerAfter { last: ms(590) })
        );
        assert_eq!(
            outage(&[], ms(1)),
            Err(GapError::NoAnswerBefore { event: ms(1) })
        );
    }

    #[test]
    fn out_of_order_timelines_are_rejected() {
        let mut answers = every(0, 50, 10, "node1");
        answers.swap(2, 3);
        assert_eq!(
            outage(&answers, ms(45)),
            Err(GapError::Unordered {
                index: 3,
                at: ms(20)
            })
        );
    }

    #[test]
    fn stop_once_the_new_owner_has_answered_for_a_while() {
        let mut answers = every(0, 500, 10, "node1");
        assert!(!moved_and_held(&answers, ms(495), ms(300)), "not moved");
        answers.extend(every(900, 1100, 10, "node2"));
        assert!(
            !moved_and_held(&answers, ms(495), ms(300)),
            "not held long enough"
        );
        answers.extend(every(1100, 1300, 10, "node2"));
        assert!(moved_and_held(&answers, ms(495), ms(300)));
        // Flapping back to the old owner restarts the wait.
        answers.extend(every(1300, 1310, 10, "node1"));
        assert!(!moved_and_held(&answers, ms(495), ms(300)));
        // A move that happened before the event is not this event's.
        let mut early = every(0, 100, 10, "node1");
        early.extend(every(100, 600, 10, "node2"));
        assert!(moved_and_held(&early, ms(50), ms(300)));
        assert!(!moved_and_held(&early, ms(200), ms(300)));
        assert!(!moved_and_held(&[], ms(1), ms(1)));
    }

    #[test]
    fn the_stand_ins_reply_names_the_node() {
        assert_eq!(
            responder_of(
                "node=node2 pod=default/web-1 service=default/web port=udp client=192.0.2.100:4000\n"
            ),
            Some("node2")
        );
        assert_eq!(responder_of("pod=x node= client=y"), None);
        assert_eq!(responder_of("hello"), None);
        assert_eq!(responder_of(""), None);
    }

    #[test]
    fn median_is_a_measured_value() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[ms(7)]), Some(ms(7)));
        assert_eq!(median(&[ms(900), ms(100), ms(300)]), Some(ms(300)));
        assert_eq!(median(&[ms(4), ms(1), ms(3), ms(2)]), Some(ms(2)));
    }

    proptest! {
        #[test]
        fn the_gap_is_a_real_interval_no_shorter_than_any_after_the_event(
            steps in proptest::collection::vec(1u64..500, 2..60),
            event_index in 0usize..59,
        ) {
            let mut at = 0;
            let answers: Vec<Answer> = steps.iter().map(|s| {
                at += s;
                Answer { at: ms(at), responder: "n".into() }
            }).collect();
            let start = event_index.min(answers.len() - 2);
            let event = answers[start].at;
            let o = outage(&answers, event).unwrap();
            prop_assert_eq!(o.gap, o.first_after - o.last_before);
            prop_assert!(o.last_before >= event);
            prop_assert!(answers.iter().any(|a| a.at == o.first_after));
            for w in answers[start..].windows(2) {
                prop_assert!(w[1].at - w[0].at <= o.gap);
            }
        }
    }
}
