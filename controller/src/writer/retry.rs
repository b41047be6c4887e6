//! What to do after a failed write, and how long to wait before the next attempt.

use std::time::Duration;

use crate::server_caps::is_unknown_ip_mode_error;

/// The fate of a failed write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// Try again after a backoff: the server is busy, restarting, or refused us for now
    /// (conflicts, throttling, RBAC being fixed, connection errors).
    Retry,
    /// The object is gone; there is nothing to write to.
    Gone,
    /// The server does not know `ipMode`: write again without it.
    NoIpMode,
    /// The server rejected the request as invalid; sending it again cannot help.
    GiveUp,
}

/// Classifies a kube client error.
pub fn classify(err: &kube::Error) -> Failure {
    match err {
        kube::Error::Api(status) => classify_status(status.code, &status.message),
        _ => Failure::Retry,
    }
}

/// Classifies an API error by HTTP code and message. The ipMode check comes first: servers
/// before 1.29 answer an unknown field in an apply with 500 or 400 depending on the version.
pub fn classify_status(code: u16, message: &str) -> Failure {
    if is_unknown_ip_mode_error(message) {
        return Failure::NoIpMode;
    }
    match code {
        404 | 410 => Failure::Gone,
        400 | 405 | 413 | 415 | 422 => Failure::GiveUp,
        _ => Failure::Retry,
    }
}

/// Exponential backoff between `min` and `max` for the `attempt`-th retry (from 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    pub min: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            min: Duration::from_millis(100),
            max: Duration::from_secs(30),
        }
    }
}

impl Backoff {
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempt.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.min.saturating_mul(factor).min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_errors_are_classified() {
        assert_eq!(classify_status(409, "conflict"), Failure::Retry);
        assert_eq!(classify_status(429, "slow down"), Failure::Retry);
        assert_eq!(classify_status(503, "unavailable"), Failure::Retry);
        assert_eq!(classify_status(403, "forbidden"), Failure::Retry);
        assert_eq!(classify_status(404, "not found"), Failure::Gone);
        assert_eq!(classify_status(422, "invalid"), Failure::GiveUp);
        assert_eq!(
            classify_status(
                500,
                "failed to create typed patch object: .status.loadBalancer.ingress[0].ipMode: field not declared in schema"
            ),
            Failure::NoIpMode
        );
        assert_eq!(
            classify_status(
                400,
                ".status.loadBalancer.ingress[0].ipMode: field not declared in schema"
            ),
            Failure::NoIpMode
        );
    }

    #[test]
    fn transport_errors_are_retried() {
        let err = kube::Error::Service("connection refused".into());
        assert_eq!(classify(&err), Failure::Retry);
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let b = Backoff::default();
        assert_eq!(b.delay(1), Duration::from_millis(100));
        assert_eq!(b.delay(2), Duration::from_millis(200));
        assert_eq!(b.delay(5), Duration::from_millis(1600));
        assert_eq!(b.delay(20), Duration::from_secs(30));
        assert_eq!(b.delay(u32::MAX), Duration::from_secs(30));
    }
}
