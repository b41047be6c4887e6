//! The conditions the controller sets on IPAddressPools, and a helper that updates a condition
//! list the way Kubernetes' `meta.SetStatusCondition` does.
//!
//! A pool always carries all three types:
//! - `Ready`: True while the pool hands out addresses (reason [`REASON_READY`]); False with
//!   the reason of the problem otherwise.
//! - `Invalid`: True when the spec has a problem the schema could not catch
//!   ([`REASON_INVALID_SPEC`], the message lists every problem); False ([`REASON_VALID`]).
//! - `Conflict`: True when the pool overlaps an older pool, which keeps the addresses
//!   ([`REASON_OVERLAP`], the message names the pool and the ranges); False
//!   ([`REASON_NO_OVERLAP`]).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

pub const TYPE_READY: &str = "Ready";
pub const TYPE_INVALID: &str = "Invalid";
pub const TYPE_CONFLICT: &str = "Conflict";

/// `Ready=True`: the pool is valid, conflict-free and in use.
pub const REASON_READY: &str = "Ready";
/// `Invalid=True`, `Ready=False`: the spec has problems.
pub const REASON_INVALID_SPEC: &str = "InvalidSpec";
/// `Invalid=False`.
pub const REASON_VALID: &str = "Valid";
/// `Conflict=True`, `Ready=False`: the pool overlaps an older pool.
pub const REASON_OVERLAP: &str = "OverlapsOtherPool";
/// `Conflict=False`.
pub const REASON_NO_OVERLAP: &str = "NoOverlap";

/// `status` value of a condition.
pub fn status_str(value: bool) -> &'static str {
    if value { "True" } else { "False" }
}

/// Builds a condition. `now` becomes its `lastTransitionTime` unless [`set_condition`] keeps an
/// older one.
pub fn condition(
    type_: &str,
    status: bool,
    reason: &str,
    message: impl Into<String>,
    observed_generation: Option<i64>,
    now: Time,
) -> Condition {
    Condition {
        type_: type_.to_string(),
        status: status_str(status).to_string(),
        reason: reason.to_string(),
        message: message.into(),
        observed_generation,
        last_transition_time: now,
    }
}

/// Puts `new` into `conditions`, replacing the condition of the same type. The old
/// `lastTransitionTime` is kept when the status did not change, so that the time says when the
/// status last flipped. Returns true when anything changed.
pub fn set_condition(conditions: &mut Vec<Condition>, new: Condition) -> bool {
    match conditions.iter_mut().find(|c| c.type_ == new.type_) {
        None => {
            conditions.push(new);
            true
        }
        Some(existing) => {
            let last_transition_time = if existing.status == new.status {
                existing.last_transition_time.clone()
            } else {
                new.last_transition_time.clone()
            };
            let updated = Condition {
                last_transition_time,
                ..new
            };
            let changed = *existing != updated;
            *existing = updated;
            changed
        }
    }
}

/// True when `conditions` holds `type_` with status `True`.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == type_ && c.status == "True")
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn at(seconds: i64) -> Time {
        Time(Timestamp::from_second(seconds).unwrap())
    }

    #[test]
    fn set_adds_then_replaces_by_type() {
        let mut list = Vec::new();
        assert!(set_condition(
            &mut list,
            condition(TYPE_READY, true, REASON_READY, "", Some(1), at(10))
        ));
        assert!(set_condition(
            &mut list,
            condition(TYPE_INVALID, false, REASON_VALID, "", Some(1), at(10))
        ));
        assert_eq!(list.len(), 2);
        assert!(is_true(&list, TYPE_READY));
        assert!(!is_true(&list, TYPE_INVALID));
        assert!(!is_true(&list, TYPE_CONFLICT));
    }

    #[test]
    fn transition_time_moves_only_when_status_flips() {
        let mut list = vec![condition(
            TYPE_READY,
            true,
            REASON_READY,
            "",
            Some(1),
            at(10),
        )];
        // Same status, new generation: time kept, change reported.
        assert!(set_condition(
            &mut list,
            condition(TYPE_READY, true, REASON_READY, "", Some(2), at(20))
        ));
        assert_eq!(list[0].last_transition_time, at(10));
        assert_eq!(list[0].observed_generation, Some(2));
        // Nothing new: no change.
        assert!(!set_condition(
            &mut list,
            condition(TYPE_READY, true, REASON_READY, "", Some(2), at(30))
        ));
        assert_eq!(list[0].last_transition_time, at(10));
        // Flip: time moves.
        assert!(set_condition(
            &mut list,
            condition(
                TYPE_READY,
                false,
                REASON_INVALID_SPEC,
                "bad",
                Some(3),
                at(40)
            )
        ));
        assert_eq!(list[0].last_transition_time, at(40));
        assert_eq!(list[0].status, "False");
        assert_eq!(list[0].reason, REASON_INVALID_SPEC);
        assert_eq!(list.len(), 1);
    }
}
