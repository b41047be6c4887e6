//! Latency summaries for benchmark tables: p50, p90, p99 and max of a set of durations, by the
//! nearest-rank method (every reported figure is one that was actually measured).

use std::time::Duration;

/// The percentiles a benchmark row shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub count: usize,
    pub p50: Duration,
    pub p90: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl Summary {
    /// `None` when there is nothing to summarise.
    pub fn of(samples: &[Duration]) -> Option<Summary> {
        if samples.is_empty() {
            return None;
        }
        let mut sorted = samples.to_vec();
        sorted.sort_unstable();
        Some(Summary {
            count: sorted.len(),
            p50: nearest_rank(&sorted, 50),
            p90: nearest_rank(&sorted, 90),
            p99: nearest_rank(&sorted, 99),
            max: sorted[sorted.len() - 1],
        })
    }
}

/// The smallest sample with at least `percent` % of the samples at or below it.
/// `sorted` is non-empty and ascending; `percent` is in 1..=100.
fn nearest_rank(sorted: &[Duration], percent: usize) -> Duration {
    let rank = (percent * sorted.len()).div_ceil(100).max(1);
    sorted[rank - 1]
}

/// Milliseconds with a fractional part, as the tables and the JSON line print them.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn millis(values: &[u64]) -> Vec<Duration> {
        values.iter().map(|&v| Duration::from_millis(v)).collect()
    }

    #[test]
    fn nothing_to_summarise() {
        assert_eq!(Summary::of(&[]), None);
    }

    #[test]
    fn one_sample_is_every_percentile() {
        let s = Summary::of(&millis(&[7])).unwrap();
        assert_eq!(s.count, 1);
        assert_eq!([s.p50, s.p90, s.p99, s.max], [Duration::from_millis(7); 4]);
    }

    #[test]
    fn hundred_samples_pick_the_ranked_ones_whatever_the_order() {
        // 100, 99, ..., 1 ms: p50 is the 50th smallest, p99 the 99th.
        let samples: Vec<Duration> = (1..=100).rev().map(Duration::from_millis).collect();
        let s = Summary::of(&samples).unwrap();
        assert_eq!(s.p50, Duration::from_millis(50));
        assert_eq!(s.p90, Duration::from_millis(90));
        assert_eq!(s.p99, Duration::from_millis(99));
        assert_eq!(s.max, Duration::from_millis(100));
    }

    #[test]
    fn an_outlier_shows_in_max_and_p99_of_few_samples_only() {
        let mut samples = millis(&[1; 999]);
        samples.push(Duration::from_secs(5));
        let s = Summary::of(&samples).unwrap();
        assert_eq!(s.p99, Duration::from_millis(1));
        assert_eq!(s.max, Duration::from_secs(5));
        let s = Summary::of(&millis(&[1, 1, 1, 900])).unwrap();
        assert_eq!(s.p50, Duration::from_millis(1));
        assert_eq!(s.p90, Duration::from_millis(900));
    }

    #[test]
    fn ms_keeps_fractions() {
        assert_eq!(ms(Duration::from_micros(1500)), 1.5);
    }

    proptest! {
        #[test]
        fn percentiles_are_ordered_samples(values in proptest::collection::vec(0u64..10_000, 1..300)) {
            let samples = millis(&values);
            let s = Summary::of(&samples).unwrap();
            prop_assert!(s.p50 <= s.p90 && s.p90 <= s.p99 && s.p99 <= s.max);
            prop_assert_eq!(s.max, *samples.iter().max().unwrap());
            for p in [s.p50, s.p90, s.p99] {
                prop_assert!(samples.contains(&p));
            }
            // At least half the samples are at or below p50.
            let at_or_below = samples.iter().filter(|d| **d <= s.p50).count();
            prop_assert!(at_or_below * 2 >= samples.len());
        }
    }
}
