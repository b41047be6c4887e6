//! Whole-cluster behaviour of the membership protocol in the deterministic simulator: failure
//! detection within the bound, graceful leave, rejoin, loss, partitions and load. All times are
//! simulated, so these tests are exact and not timing-sensitive.

use std::collections::BTreeSet;
use std::time::Duration;

use ironlb_speaker::membership::sim::{Cluster, LinkModel};
use ironlb_speaker::membership::{Config, MemberState};

const MS: Duration = Duration::from_millis(1);

/// A cluster of `n` that has converged: everyone sees everyone, settled.
fn converged(n: usize, link: LinkModel, seed: u64) -> Cluster {
    converged_with(n, Config::default(), link, seed)
}

fn converged_with(n: usize, config: Config, link: LinkModel, seed: u64) -> Cluster {
    let mut c = Cluster::new(n, config, link, seed).expect("valid simulation");
    c.run_for(Duration::from_secs(1));
    let everyone = names(&c);
    for i in 0..n {
        assert_eq!(c.view(i).unwrap(), everyone, "node {i} after start-up");
        assert!(c.protocol(i).unwrap().is_settled(), "node {i} settled");
    }
    c
}

fn names(c: &Cluster) -> BTreeSet<String> {
    (0..c.len()).map(|i| c.name(i).to_owned()).collect()
}

/// Kills `victim` at the current time and returns the worst detection delay over all others.
fn kill_and_measure(c: &mut Cluster, victim: usize) -> Duration {
    let killed_at = c.now();
    c.kill(victim);
    c.run_for(Duration::from_secs(2));
    let name = c.name(victim).to_owned();
    (0..c.len())
        .filter(|&i| i != victim)
        .map(|i| {
            c.time_declared_down(i, &name, killed_at)
                .unwrap_or_else(|| panic!("{} never declared {name} down", c.name(i)))
                - killed_at
        })
        .max()
        .unwrap_or_default()
}

fn assert_no_false_downs(c: &Cluster, since: Duration, except: &[usize]) {
    let excluded: Vec<&str> = except.iter().map(|&i| c.name(i)).collect();
    for i in 0..c.len() {
        if except.contains(&i) {
            continue;
        }
        let wrong: Vec<_> = c
            .downs_seen(i, since)
            .into_iter()
            .filter(|(_, m)| !excluded.contains(&m.as_str()))
            .collect();
        assert!(
            wrong.is_empty(),
            "{} falsely saw down: {wrong:?}",
            c.name(i)
        );
    }
}

#[test]
fn a_killed_member_is_declared_dead_by_all_within_the_bound() {
    let bound = Config::default().detection_bound() + LinkModel::lan().jitter();
    for n in [3, 5, 10, 50] {
        for seed in 0..4u64 {
            let mut c = converged(n, LinkModel::lan(), seed);
            // Die at an arbitrary point in the probe cycle.
            c.run_for(Duration::from_micros(seed * 37_000 + 1_234));
            let start = c.now();
            let victim = (seed as usize * 7) % n;
            let worst = kill_and_measure(&mut c, victim);
            assert!(
                worst <= bound,
                "n={n} seed={seed}: detected after {worst:?}, bound {bound:?}"
            );
            assert_no_false_downs(&c, start, &[victim]);
            for i in (0..n).filter(|&i| i != victim) {
                assert_eq!(
                    c.protocol(i)
                        .unwrap()
                        .status_of(c.name(victim))
                        .unwrap()
                        .state,
                    MemberState::Dead
                );
            }
        }
    }
}

#[test]
fn the_bound_is_tight_over_every_phase_of_the_probe_cycle() {
    // With one monitor, dying right after answering its probe is the worst case: the next probe
    // is a whole interval away. Sweeping the moment of death over one interval hits it.
    let config = Config {
        monitors: 1,
        ..Config::default()
    };
    let bound = config.detection_bound() + LinkModel::lan().jitter();
    let mut worst = Duration::ZERO;
    for offset_ms in 0..100u64 {
        let mut c = converged_with(4, config.clone(), LinkModel::lan(), 99);
        c.run_for(Duration::from_millis(offset_ms));
        worst = worst.max(kill_and_measure(&mut c, 1));
    }
    assert!(worst <= bound, "worst {worst:?} > bound {bound:?}");
    assert!(
        worst + 2 * MS >= config.detection_bound(),
        "worst {worst:?}: the sweep should reach the bound"
    );
}

#[test]
fn the_bound_follows_tuned_timers() {
    let config = Config {
        probe_interval: Duration::from_millis(200),
        ack_timeout: Duration::from_millis(50),
        indirect_timeout: Duration::from_millis(100),
        suspicion_timeout: Duration::from_millis(600),
        ..Config::default()
    };
    let bound = config.detection_bound() + LinkModel::lan().jitter();
    let mut worst_seen = Duration::ZERO;
    for seed in 0..6u64 {
        let mut c = converged_with(8, config.clone(), LinkModel::lan(), seed);
        c.run_for(Duration::from_micros(seed * 61_000));
        let worst = kill_and_measure(&mut c, seed as usize % 8);
        assert!(worst <= bound, "seed {seed}: {worst:?} > {bound:?}");
        worst_seen = worst_seen.max(worst);
    }
    // Slower timers really are slower: the suspicion timeout alone exceeds the default bound.
    assert!(worst_seen > Config::default().detection_bound());
}

#[test]
fn two_simultaneous_failures_are_both_detected_within_the_bound() {
    let bound = Config::default().detection_bound() + LinkModel::lan().jitter();
    for seed in 0..4u64 {
        let mut c = converged(12, LinkModel::lan(), seed);
        let at = c.now();
        c.kill(3);
        c.kill(4);
        c.run_for(Duration::from_secs(2));
        for victim in [3, 4] {
            let name = c.name(victim).to_owned();
            for i in (0..12).filter(|i| ![3, 4].contains(i)) {
                let t = c.time_declared_down(i, &name, at).expect("declared down");
                assert!(
                    t - at <= bound,
                    "seed {seed}: {name} seen down by node {i} after {:?}",
                    t - at
                );
            }
        }
        assert_no_false_downs(&c, at, &[3, 4]);
    }
}

#[test]
fn a_leaving_member_is_removed_at_once() {
    let link = LinkModel::lan();
    let mut c = converged(10, link, 1);
    let at = c.now();
    c.leave(6);
    c.run_for(Duration::from_millis(5));
    let name = c.name(6).to_owned();
    for i in (0..10).filter(|&i| i != 6) {
        let t = c
            .time_declared_down(i, &name, at)
            .expect("leave seen within 5 ms");
        assert!(
            t - at <= link.max_delay,
            "node {i} saw the leave after {:?}",
            t - at
        );
        assert_eq!(
            c.protocol(i).unwrap().status_of(&name).unwrap().state,
            MemberState::Left
        );
    }
    assert_no_false_downs(&c, at, &[6]);
}

#[test]
fn a_leave_survives_the_loss_of_one_announcement() {
    // With 30 % loss, a single announcement would miss about 3 of 9 members; two copies miss ~1.
    // Whoever misses both still detects the failure within the bound.
    let bound = Config::default().detection_bound() + LinkModel::lan().jitter();
    let mut c = converged(10, LinkModel::lan(), 2);
    c.set_link(LinkModel::lossy(0.3));
    let at = c.now();
    c.leave(0);
    c.set_link(LinkModel::lan());
    c.run_for(Duration::from_secs(1));
    let name = c.name(0).to_owned();
    for i in 1..10 {
        let t = c.time_declared_down(i, &name, at).expect("declared down");
        assert!(t - at <= bound);
    }
}

#[test]
fn a_restarted_member_rejoins_everywhere() {
    let mut c = converged(10, LinkModel::lan(), 3);
    kill_and_measure(&mut c, 2);
    let dead_incarnation = c
        .protocol(0)
        .unwrap()
        .status_of(c.name(2))
        .unwrap()
        .incarnation;
    let restarted_at = c.now();
    c.start(2).expect("restart");
    c.run_for(Duration::from_millis(100));
    let everyone = names(&c);
    for i in 0..10 {
        assert_eq!(c.view(i).unwrap(), everyone, "node {i} after the restart");
    }
    let p = c.protocol(2).unwrap();
    assert!(p.is_settled());
    assert!(
        p.incarnation() > dead_incarnation,
        "the comeback outranks the death"
    );
    assert_no_false_downs(&c, restarted_at, &[]);
}

#[test]
fn a_quick_restart_before_detection_keeps_membership_stable() {
    // A pod restarted in less than the detection bound comes back with a new epoch.
    let mut c = converged(6, LinkModel::lan(), 4);
    let at = c.now();
    c.kill(1);
    c.run_for(Duration::from_millis(30));
    c.start(1).expect("restart");
    c.run_for(Duration::from_secs(3));
    let everyone = names(&c);
    for i in 0..6 {
        assert_eq!(c.view(i).unwrap(), everyone);
    }
    // Either never declared dead, or back within the run: no one else was ever seen down.
    assert_no_false_downs(&c, at, &[1]);
}

#[test]
fn no_false_positives_under_a_few_percent_loss() {
    for (n, loss, seed) in [
        (3, 0.03, 10),
        (10, 0.03, 11),
        (10, 0.05, 12),
        (30, 0.02, 13),
    ] {
        let mut c = converged(n, LinkModel::lan(), seed);
        c.set_link(LinkModel::lossy(loss));
        let at = c.now();
        c.run_for(Duration::from_secs(60));
        assert!(c.dropped_by_network() > 0);
        assert_no_false_downs(&c, at, &[]);
        let everyone = names(&c);
        for i in 0..n {
            assert_eq!(c.view(i).unwrap(), everyone, "n={n} loss={loss}");
        }
    }
}

#[test]
fn failures_are_still_detected_under_loss() {
    let bound = Config::default().detection_bound() + LinkModel::lan().jitter();
    for seed in 0..5u64 {
        let mut c = converged(10, LinkModel::lan(), 20 + seed);
        c.set_link(LinkModel::lossy(0.03));
        c.run_for(Duration::from_millis(500 + seed * 13));
        let at = c.now();
        let worst = kill_and_measure(&mut c, seed as usize);
        assert!(worst <= bound, "seed {seed}: {worst:?}");
        assert_no_false_downs(&c, at, &[seed as usize]);
    }
}

#[test]
fn a_partition_splits_the_views_and_healing_merges_them() {
    let mut c = converged(5, LinkModel::lan(), 5);
    let (a, b) = ([0, 1, 2], [3, 4]);
    c.partition(&a, &b);
    c.run_for(Duration::from_secs(1));
    let side_a: BTreeSet<String> = a.iter().map(|&i| c.name(i).to_owned()).collect();
    let side_b: BTreeSet<String> = b.iter().map(|&i| c.name(i).to_owned()).collect();
    for i in a {
        assert_eq!(c.view(i).unwrap(), side_a);
    }
    for i in b {
        assert_eq!(c.view(i).unwrap(), side_b);
    }
    c.heal();
    // Dead members are re-probed once per rejoin interval.
    c.run_for(Config::default().rejoin_interval + Duration::from_millis(200));
    let everyone = names(&c);
    for i in 0..5 {
        assert_eq!(c.view(i).unwrap(), everyone, "node {i} after healing");
    }
}

#[test]
fn a_member_that_starts_after_a_death_settles_without_it() {
    let mut c = converged(6, LinkModel::lan(), 6);
    kill_and_measure(&mut c, 5);
    c.kill(0);
    c.start(0).expect("restart");
    assert!(!c.protocol(0).unwrap().is_settled());
    c.run_for(Duration::from_millis(150));
    let p = c.protocol(0).unwrap();
    assert!(p.is_settled());
    assert!(!p.alive_members().contains(c.name(5)));
    assert_eq!(p.alive_members().len(), 5);
}

#[test]
fn load_per_member_stays_flat_as_the_cluster_grows() {
    let rate = |n: usize| {
        let mut c = converged(n, LinkModel::lan(), 7);
        let before = c.datagrams_sent();
        c.run_for(Duration::from_secs(10));
        (c.datagrams_sent() - before) as f64 / n as f64 / 10.0
    };
    let small = rate(5);
    let large = rate(60);
    // Each member probes 3 others and answers 3 probers per 100 ms: 60 datagrams/s.
    assert!((55.0..=65.0).contains(&small), "{small}");
    assert!(
        (large - small).abs() / small < 0.05,
        "5 members: {small:.1}/s each, 60 members: {large:.1}/s each"
    );
}
