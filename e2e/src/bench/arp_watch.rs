//! Who answered ARP for a VIP while it changed hands: from the times a watcher on the client
//! sent who-has requests (one every few milliseconds) and the replies it heard, the most
//! distinct MACs that answered one request, and how many requests two or more MACs answered.
//! Pure: the benchmark captures, this module judges.
//!
//! A reply belongs to the latest request sent before it arrived (the window of a request runs
//! until the next one, and the last for one more interval). On the lab's bridge a reply takes
//! well under a millisecond, so a reply that strays into the next window would take longer
//! than the whole interval.

use std::collections::BTreeSet;
use std::time::Duration;

use ironlb_speaker::packet::MacAddr;

/// A reply to one of the watcher's requests, when it arrived (from the watcher's start).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heard {
    pub at: Duration,
    pub mac: MacAddr,
}

/// What the replies say about the handover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watch {
    pub requests: usize,
    /// Requests that got at least one reply.
    pub answered: usize,
    /// The most distinct MACs that answered one request (1 for a clean handover).
    pub max_macs: usize,
    /// Requests answered by two or more MACs.
    pub overlaps: usize,
    /// When the first such request was sent.
    pub first_overlap: Option<Duration>,
    /// The longest run of consecutive unanswered requests, as time from the first of them to
    /// the next answered one (zero when every request was answered).
    pub longest_silence: Duration,
    /// Every MAC that answered, in the order they first did.
    pub macs: Vec<MacAddr>,
    /// Replies that came before the first request (not counted anywhere else).
    pub unmatched: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WatchError {
    #[error("request times are not in ascending order at index {0}")]
    UnorderedRequests(usize),
    #[error("replies are not in arrival order at index {0}")]
    UnorderedReplies(usize),
    #[error("no request was sent")]
    NoRequests,
}

/// Judges the replies `heard` to requests sent at `sent`; the last request's window is
/// `last_window` long.
pub fn judge(
    sent: &[Duration],
    heard: &[Heard],
    last_window: Duration,
) -> Result<Watch, WatchError> {
    if sent.is_empty() {
        return Err(WatchError::NoRequests);
    }
    if let Some(i) = sent.windows(2).position(|w| w[1] < w[0]) {
        return Err(WatchError::UnorderedRequests(i + 1));
    }
    if let Some(i) = heard.windows(2).position(|w| w[1].at < w[0].at) {
        return Err(WatchError::UnorderedReplies(i + 1));
    }
    let mut per_request: Vec<BTreeSet<MacAddr>> = vec![BTreeSet::new(); sent.len()];
    let mut macs: Vec<MacAddr> = Vec::new();
    let mut unmatched = 0;
    let end = sent[sent.len() - 1] + last_window;
    for h in heard {
        // The latest request sent at or before the reply.
        let index = sent.partition_point(|&t| t <= h.at);
        if index == 0 || h.at >= end {
            unmatched += 1;
            continue;
        }
        per_request[index - 1].insert(h.mac);
        if !macs.contains(&h.mac) {
            macs.push(h.mac);
        }
    }
    let counts: Vec<usize> = per_request.iter().map(BTreeSet::len).collect();
    let overlapping: Vec<usize> = (0..counts.len()).filter(|&i| counts[i] > 1).collect();
    let mut longest_silence = Duration::ZERO;
    let mut silent_since: Option<Duration> = None;
    for (i, &n) in counts.iter().enumerate() {
        match (n, silent_since) {
            (0, None) => silent_since = Some(sent[i]),
            (0, Some(_)) => {}
            (_, Some(since)) => {
                longest_silence = longest_silence.max(sent[i] - since);
                silent_since = None;
            }
            (_, None) => {}
        }
    }
    if let Some(since) = silent_since {
        longest_silence = longest_silence.max(end - since);
    }
    Ok(Watch {
        requests: sent.len(),
        answered: counts.iter().filter(|&&n| n > 0).count(),
        max_macs: counts.iter().copied().max().unwrap_or(0),
        overlaps: overlapping.len(),
        first_overlap: overlapping.first().map(|&i| sent[i]),
        longest_silence,
        macs,
        unmatched,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const OLD: MacAddr = MacAddr([2, 0x1b, 0, 0, 0, 11]);
    const NEW: MacAddr = MacAddr([2, 0x1b, 0, 0, 0, 12]);

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    fn us(v: u64) -> Duration {
        Duration::from_micros(v)
    }

    /// Requests every 10 ms for `n` requests.
    fn requests(n: u64) -> Vec<Duration> {
        (0..n).map(|i| ms(i * 10)).collect()
    }

    fn heard(at: Duration, mac: MacAddr) -> Heard {
        Heard { at, mac }
    }

    #[test]
    fn a_clean_handover_has_one_mac_per_request() {
        let sent = requests(10);
        let mut replies: Vec<Heard> = (0..5).map(|i| heard(ms(i * 10) + us(300), OLD)).collect();
        replies.extend((6..10).map(|i| heard(ms(i * 10) + us(400), NEW)));
        let w = judge(&sent, &replies, ms(10)).unwrap();
        assert_eq!(w.requests, 10);
        assert_eq!(w.answered, 9);
        assert_eq!(w.max_macs, 1);
        assert_eq!(w.overlaps, 0);
        assert_eq!(w.first_overlap, None);
        assert_eq!(w.longest_silence, ms(10));
        assert_eq!(w.macs, vec![OLD, NEW]);
    }

    #[test]
    fn two_macs_answering_one_request_is_an_overlap() {
        let sent = requests(6);
        let replies = vec![
            heard(us(200), OLD),
            heard(ms(10) + us(200), OLD),
            heard(ms(20) + us(200), OLD),
            heard(ms(20) + us(350), NEW),
            heard(ms(30) + us(200), NEW),
            heard(ms(30) + us(250), OLD),
            heard(ms(40) + us(200), NEW),
            heard(ms(50) + us(200), NEW),
        ];
        let w = judge(&sent, &replies, ms(10)).unwrap();
        assert_eq!((w.max_macs, w.overlaps), (2, 2));
        assert_eq!(w.first_overlap, Some(ms(20)));
        assert_eq!(w.longest_silence, Duration::ZERO);
    }

    #[test]
    fn the_same_mac_twice_is_not_an_overlap() {
        // A reply and a gratuitous-looking duplicate from the same speaker.
        let sent = requests(2);
        let replies = vec![heard(us(100), OLD), heard(us(900), OLD)];
        let w = judge(&sent, &replies, ms(10)).unwrap();
        assert_eq!((w.max_macs, w.overlaps, w.answered), (1, 0, 1));
    }

    #[test]
    fn replies_outside_every_window_are_unmatched() {
        let sent = vec![ms(10), ms(20)];
        let replies = vec![heard(ms(5), OLD), heard(ms(25), OLD), heard(ms(31), NEW)];
        let w = judge(&sent, &replies, ms(10)).unwrap();
        assert_eq!(w.unmatched, 2);
        assert_eq!(w.macs, vec![OLD]);
        assert_eq!(w.longest_silence, ms(10));
    }

    #[test]
    fn a_silence_at_the_end_counts_to_the_end_of_the_last_window() {
        let sent = requests(5);
        let replies = vec![heard(us(100), OLD)];
        let w = judge(&sent, &replies, ms(10)).unwrap();
        assert_eq!(w.longest_silence, ms(40));
        assert_eq!(w.max_macs, 1);
    }

    #[test]
    fn bad_input_is_an_error() {
        assert_eq!(judge(&[], &[], ms(10)), Err(WatchError::NoRequests));
        assert_eq!(
            judge(&[ms(10), ms(5)], &[], ms(10)),
            Err(WatchError::UnorderedRequests(1))
        );
        assert_eq!(
            judge(&[ms(0)], &[heard(ms(3), OLD), heard(ms(2), NEW)], ms(10)),
            Err(WatchError::UnorderedReplies(1))
        );
    }

    #[test]
    fn no_replies_at_all() {
        let w = judge(&requests(3), &[], ms(10)).unwrap();
        assert_eq!((w.answered, w.max_macs, w.overlaps), (0, 0, 0));
        assert_eq!(w.longest_silence, ms(30));
    }

    proptest! {
        #[test]
        fn counts_are_consistent(
            replies in proptest::collection::vec((0u64..200, 0u8..3), 0..80),
        ) {
            let sent = requests(18);
            let mut heard_list: Vec<Heard> = replies
                .iter()
                .map(|&(t, m)| heard(ms(t), MacAddr([2, 0, 0, 0, 0, m])))
                .collect();
            heard_list.sort_by_key(|h| h.at);
            let w = judge(&sent, &heard_list, ms(10)).unwrap();
            prop_assert!(w.answered <= w.requests);
            prop_assert!(w.overlaps <= w.answered);
            prop_assert!(w.max_macs <= w.macs.len());
            prop_assert_eq!(w.overlaps > 0, w.max_macs > 1);
            prop_assert_eq!(w.first_overlap.is_some(), w.overlaps > 0);
            // A single MAC can never overlap itself.
            let one: Vec<Heard> = heard_list.iter().map(|h| heard(h.at, OLD)).collect();
            prop_assert_eq!(judge(&sent, &one, ms(10)).unwrap().overlaps, 0);
        }
    }
}
