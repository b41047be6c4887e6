//! What the brain keeps of an IPAddressPool, and the pool's desired status.
//!
//! A pool's spec is validated with [`ironlb_crds::pool::Pool::from_spec`]. A valid spec becomes
//! the allocator's [`PoolConfig`]; an invalid one leaves the last valid version in the allocator,
//! so that Services keep their addresses while the user fixes the pool. After a restart there is
//! no last valid version: the well-formed entries of an invalid pool are then kept as a
//! *salvage* pool that never auto-assigns, so that Services holding its addresses keep them.

use std::collections::BTreeMap;

use ironlb_crds::IPAddressPool;
use ironlb_crds::address::{AddressRange, parse_address_entry};
use ironlb_crds::conditions::{
    REASON_INVALID_SPEC, REASON_NO_OVERLAP, REASON_OVERLAP, REASON_READY, REASON_VALID,
    TYPE_CONFLICT, TYPE_INVALID, TYPE_READY,
};
use ironlb_crds::pool::Pool;
use ironlb_crds::v1beta1::{IPAddressPoolSpec, IPAddressPoolStatus};

use crate::allocator::{PoolConfig, PoolStatus, ServiceAllocation};

use super::intent::{DesiredCondition, PoolStatusWrite};

/// The brain's record of one pool.
#[derive(Clone, Debug)]
pub struct PoolEntry {
    pub namespace: String,
    pub uid: Option<String>,
    pub generation: Option<i64>,
    /// `creationTimestamp` in seconds; `i64::MAX` when unknown (such a pool never wins an
    /// overlap).
    pub created_at: i64,
    pub spec: IPAddressPoolSpec,
    /// The validated spec, or every problem in one line.
    pub parsed: Result<PoolConfig, String>,
    /// The version the allocator has (the last valid one, or a salvage).
    pub in_allocator: Option<PoolConfig>,
    /// The status the object shows.
    pub shown: Option<IPAddressPoolStatus>,
    /// A status handed to the writer and not yet seen on the object.
    pub pending: Option<PoolStatusWrite>,
    /// The conflict a `PoolConflict` event was last emitted for.
    pub noted_conflict: Vec<String>,
    /// The problems an `InvalidPool` event was last emitted for.
    pub noted_invalid: Option<String>,
}

impl PoolEntry {
    /// Reads a pool object. Returns `None` for an object without a name.
    pub fn from_object(pool: &IPAddressPool) -> Option<(String, PoolEntry)> {
        let meta = &pool.metadata;
        let name = meta.name.clone()?;
        let created_at = meta
            .creation_timestamp
            .as_ref()
            .map_or(i64::MAX, |t| t.0.as_second());
        let parsed = Pool::from_spec(&pool.spec)
            .map(|p| to_config(&name, &p, created_at))
            .map_err(|errors| errors.to_string());
        Some((
            name,
            PoolEntry {
                namespace: meta.namespace.clone().unwrap_or_default(),
                uid: meta.uid.clone(),
                generation: meta.generation,
                created_at,
                spec: pool.spec.clone(),
                parsed,
                in_allocator: None,
                shown: pool.status.clone(),
                pending: None,
                noted_conflict: Vec::new(),
                noted_invalid: None,
            },
        ))
    }

    /// The spec's problems, if it is invalid.
    pub fn spec_error(&self) -> Option<&str> {
        self.parsed.as_ref().err().map(String::as_str)
    }

    /// The version to hold addresses with after a restart, when the spec is invalid: its
    /// well-formed entries, never auto-assigned. `None` when no entry parses.
    pub fn salvage(&self, name: &str) -> Option<PoolConfig> {
        let ranges: Vec<AddressRange> = self
            .spec
            .addresses
            .iter()
            .filter_map(|entry| parse_address_entry(entry).ok())
            .collect();
        if ranges.is_empty() {
            return None;
        }
        Some(PoolConfig {
            auto_assign: false,
            avoid_buggy_ips: self.spec.avoid_buggy_ips,
            created_at: self.created_at,
            ..PoolConfig::new(name, ranges)
        })
    }

    /// Notes what the shown status already says, so that a restart does not repeat the
    /// `PoolConflict` and `InvalidPool` events of its predecessor.
    pub fn note_shown_conditions(&mut self) {
        let Some(shown) = &self.shown else { return };
        if let Some(c) = shown.condition(TYPE_INVALID)
            && c.status == "True"
        {
            self.noted_invalid = Some(c.message.clone());
        }
        if let Some(c) = shown.condition(TYPE_CONFLICT)
            && c.status == "True"
        {
            self.noted_conflict = vec![c.message.clone()];
        }
    }
}

/// The allocator's form of a validated pool.
pub fn to_config(name: &str, pool: &Pool, created_at: i64) -> PoolConfig {
    PoolConfig {
        name: name.to_string(),
        ranges: pool.ranges().to_vec(),
        auto_assign: pool.auto_assign(),
        avoid_buggy_ips: pool.avoid_buggy_ips(),
        service_allocation: pool.allocation().map(|a| ServiceAllocation {
            priority: a.priority(),
            namespaces: a.namespaces().clone(),
            namespace_selectors: a.namespace_selectors().to_vec(),
            service_selectors: a.service_selectors().to_vec(),
        }),
        created_at,
    }
}

/// The message of a `Conflict` condition and `PoolConflict` event: which older pools overlap
/// this one, and where.
pub fn conflict_message(
    name: &str,
    older: &[String],
    pools: &BTreeMap<String, PoolEntry>,
) -> String {
    let ranges_of = |pool: &str| -> &[AddressRange] {
        pools
            .get(pool)
            .and_then(|e| e.in_allocator.as_ref())
            .map_or(&[], |c| c.ranges.as_slice())
    };
    let mine = ranges_of(name);
    let described: Vec<String> = older
        .iter()
        .map(|other| {
            let theirs = ranges_of(other);
            match first_overlap(mine, theirs) {
                Some((a, b)) => format!("{other:?} ({a} overlaps {b})"),
                None => format!("{other:?}"),
            }
        })
        .collect();
    format!(
        "IPAddressPool {name:?} overlaps the older pool(s) {}, which keep the addresses; this pool is not used until the overlap is removed",
        described.join(", ")
    )
}

fn first_overlap(a: &[AddressRange], b: &[AddressRange]) -> Option<(AddressRange, AddressRange)> {
    a.iter()
        .find_map(|x| b.iter().find(|y| x.overlaps(y)).map(|y| (*x, *y)))
}

/// The status a pool should show.
///
/// `usage` is the allocator's view (`None` when the pool is not in the allocator);
/// `conflict` the message of an overlap, if any.
pub fn desired_status(
    entry: &PoolEntry,
    usage: Option<&PoolStatus>,
    conflict: Option<&str>,
) -> PoolStatusWrite {
    let mut counts = IPAddressPoolStatus::default();
    for family in usage.map(|u| u.usage.as_slice()).unwrap_or(&[]) {
        counts.set_counts(family.family, family.in_use, family.available());
    }
    let invalid = entry.spec_error();
    let in_use = usage.is_some();
    let (ready, ready_reason, ready_message) = match (invalid, conflict) {
        (Some(_), _) if in_use => (
            false,
            REASON_INVALID_SPEC,
            "the spec is invalid (see the Invalid condition); the last valid version stays in use for the addresses already assigned",
        ),
        (Some(_), _) => (
            false,
            REASON_INVALID_SPEC,
            "the spec is invalid (see the Invalid condition); the pool is not used",
        ),
        (None, Some(_)) => (
            false,
            REASON_OVERLAP,
            "the pool overlaps an older pool (see the Conflict condition) and is not used",
        ),
        (None, None) => (true, REASON_READY, "the pool hands out addresses"),
    };
    let generation = entry.generation;
    let conditions = vec![
        mk_condition(entry, TYPE_READY, ready, ready_reason, ready_message.into()),
        match invalid {
            Some(problems) => mk_condition(
                entry,
                TYPE_INVALID,
                true,
                REASON_INVALID_SPEC,
                problems.to_string(),
            ),
            None => mk_condition(
                entry,
                TYPE_INVALID,
                false,
                REASON_VALID,
                "the spec is valid".into(),
            ),
        },
        match conflict {
            Some(message) => {
                mk_condition(entry, TYPE_CONFLICT, true, REASON_OVERLAP, message.into())
            }
            None => mk_condition(
                entry,
                TYPE_CONFLICT,
                false,
                REASON_NO_OVERLAP,
                "the pool overlaps no older pool".into(),
            ),
        },
    ];
    debug_assert!(
        conditions
            .iter()
            .all(|c| c.observed_generation == generation)
    );
    PoolStatusWrite { counts, conditions }
}

fn mk_condition(
    entry: &PoolEntry,
    type_: &'static str,
    status: bool,
    reason: &'static str,
    message: String,
) -> DesiredCondition {
    // Keep the shown transition time while the status holds, as meta.SetStatusCondition does.
    let since = entry
        .shown
        .as_ref()
        .and_then(|s| s.condition(type_))
        .filter(|c| c.status == ironlb_crds::conditions::status_str(status))
        .map(|c| c.last_transition_time.clone());
    DesiredCondition {
        type_,
        status,
        reason,
        message,
        observed_generation: entry.generation,
        since,
    }
}
