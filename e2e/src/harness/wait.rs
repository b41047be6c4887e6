//! Polling with a deadline: the only way scenario tests wait. A condition is checked every
//! 50 ms until it holds or the timeout passes; the error then carries the last observation.

use std::time::{Duration, Instant};

use super::HarnessError;

const POLL: Duration = Duration::from_millis(50);

/// Calls `check` until it returns `Ok`; `Err(observation)` means "not yet".
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Result<T, String>,
) -> Result<T, HarnessError> {
    let deadline = Instant::now() + timeout;
    loop {
        match check() {
            Ok(v) => return Ok(v),
            Err(last) if Instant::now() >= deadline => {
                return Err(HarnessError::Timeout {
                    what: what.to_string(),
                    after: timeout,
                    last,
                });
            }
            Err(_) => std::thread::sleep(POLL),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_the_first_success() {
        let mut n = 0;
        let v = wait_for("n to reach 3", Duration::from_secs(5), || {
            n += 1;
            if n >= 3 { Ok(n) } else { Err(format!("n={n}")) }
        })
        .unwrap();
        assert_eq!(v, 3);
    }

    #[test]
    fn times_out_with_the_last_observation() {
        let err = wait_for::<()>("never", Duration::from_millis(120), || {
            Err("still no".into())
        })
        .unwrap_err();
        match err {
            HarnessError::Timeout { what, last, .. } => {
                assert_eq!(what, "never");
                assert_eq!(last, "still no");
            }
            other => panic!("unexpected {other}"),
        }
    }
}
