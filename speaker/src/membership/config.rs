//! Protocol timing and fan-out parameters, their defaults, and the detection bound they give.

use std::time::Duration;

/// Why a configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{0} must be greater than zero")]
    Zero(&'static str),
    #[error(
        "ack timeout ({ack:?}) plus indirect timeout ({indirect:?}) must not exceed the probe interval ({interval:?}), so that probes of one member never overlap"
    )]
    ProbeLongerThanInterval {
        ack: Duration,
        indirect: Duration,
        interval: Duration,
    },
}

/// Tunables of the failure detector. The defaults detect a failure within
/// [`Config::detection_bound`] = 450 ms (plus the variation of network delay) on a LAN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// How often each member probes the members it monitors.
    pub probe_interval: Duration,
    /// How long to wait for a direct ack before asking other members to probe indirectly.
    pub ack_timeout: Duration,
    /// How much longer to wait for a direct or indirect ack before suspecting the member.
    pub indirect_timeout: Duration,
    /// How long a suspected member has to refute before it is declared dead.
    pub suspicion_timeout: Duration,
    /// How many members monitor each member (its predecessors on the ring).
    pub monitors: usize,
    /// How many members are asked to probe indirectly after a missed ack.
    pub indirect_probes: usize,
    /// How often members that are dead, left or not yet heard from are probed for a comeback.
    pub rejoin_interval: Duration,
    /// Each update is piggybacked on `retransmit_multiplier * ceil(log2(members + 1))` datagrams.
    pub retransmit_multiplier: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            probe_interval: Duration::from_millis(100),
            ack_timeout: Duration::from_millis(40),
            indirect_timeout: Duration::from_millis(60),
            suspicion_timeout: Duration::from_millis(250),
            monitors: 3,
            indirect_probes: 3,
            rejoin_interval: Duration::from_secs(1),
            retransmit_multiplier: 3,
        }
    }
}

impl Config {
    /// Checks the invariants the protocol relies on.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let positive = [
            ("probe interval", self.probe_interval),
            ("ack timeout", self.ack_timeout),
            ("indirect timeout", self.indirect_timeout),
            ("suspicion timeout", self.suspicion_timeout),
            ("rejoin interval", self.rejoin_interval),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, d)| d.is_zero()) {
            return Err(ConfigError::Zero(name));
        }
        if self.monitors == 0 {
            return Err(ConfigError::Zero("monitors"));
        }
        if self.retransmit_multiplier == 0 {
            return Err(ConfigError::Zero("retransmit multiplier"));
        }
        if self.ack_timeout + self.indirect_timeout > self.probe_interval {
            return Err(ConfigError::ProbeLongerThanInterval {
                ack: self.ack_timeout,
                indirect: self.indirect_timeout,
                interval: self.probe_interval,
            });
        }
        Ok(())
    }

    /// Time from the moment a member stops answering until every member that hears of it has
    /// declared it dead, not counting network delay variation:
    ///
    /// - up to one probe interval until a monitor's next probe reaches the silent member;
    /// - the ack and indirect timeouts until the probe fails and the monitor announces the
    ///   suspicion to everyone;
    /// - the suspicion timeout, which every member runs from the moment the announcement
    ///   reaches it.
    ///
    /// The monitor's announcement and every member's own timer are offset by the same one-way
    /// delay, so only its variation (jitter) adds to the bound. It holds whatever the cluster
    /// size, because every member is probed by `monitors` members every interval.
    pub fn detection_bound(&self) -> Duration {
        self.probe_interval + self.ack_timeout + self.indirect_timeout + self.suspicion_timeout
    }

    /// Number of datagrams each update is piggybacked on, for a cluster of `members`.
    pub fn retransmit_limit(&self, members: usize) -> u32 {
        let log2 = usize::BITS - members.max(1).leading_zeros(); // ceil(log2(members + 1))
        self.retransmit_multiplier * log2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_detect_within_half_a_second() {
        let c = Config::default();
        c.validate().unwrap();
        assert_eq!(c.detection_bound(), Duration::from_millis(450));
        assert!(c.detection_bound() < Duration::from_millis(500));
    }

    #[test]
    fn invalid_configurations_are_named() {
        let mut c = Config {
            probe_interval: Duration::ZERO,
            ..Config::default()
        };
        assert_eq!(c.validate(), Err(ConfigError::Zero("probe interval")));
        c = Config {
            monitors: 0,
            ..Config::default()
        };
        assert_eq!(c.validate(), Err(ConfigError::Zero("monitors")));
        c = Config {
            suspicion_timeout: Duration::ZERO,
            ..Config::default()
        };
        assert_eq!(c.validate(), Err(ConfigError::Zero("suspicion timeout")));
        c = Config {
            ack_timeout: Duration::from_millis(80),
            ..Config::default()
        };
        assert!(matches!(
            c.validate(),
            Err(ConfigError::ProbeLongerThanInterval { .. })
        ));
    }

    #[test]
    fn retransmit_limit_grows_with_log_of_cluster_size() {
        let c = Config::default();
        assert_eq!(c.retransmit_limit(1), 3);
        assert_eq!(c.retransmit_limit(3), 6);
        assert_eq!(c.retransmit_limit(4), 9);
        assert_eq!(c.retransmit_limit(100), 21);
    }
}
