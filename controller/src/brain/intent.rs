//! Intents: what the brain decided should be written to the API, as plain data.
//!
//! The brain never writes; it hands these to the writer, which turns them into server-side
//! apply requests and Events. Each intent carries the whole desired state of what it touches
//! (not a delta), so the writer may drop all but the latest intent for one object.

use std::fmt;
use std::net::IpAddr;

use ironlb_crds::annotations::IpMode;
use ironlb_crds::v1beta1::IPAddressPoolStatus;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::allocator::ServiceKey;

/// One `status.loadBalancer.ingress` entry to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ingress {
    pub ip: IpAddr,
    /// `None` when the API server has no `ipMode` field.
    pub ip_mode: Option<IpMode>,
}

/// The desired `status.loadBalancer` of a Service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StatusWrite {
    /// Write these entries, in `spec.ipFamilies` order.
    Set(Vec<Ingress>),
    /// Remove what we wrote. `exclusive` means no other controller may own the field either
    /// (the Service is ours, or no longer a LoadBalancer), so entries written by another field
    /// manager are removed too; otherwise only our own entries go.
    Clear { exclusive: bool },
}

impl StatusWrite {
    /// The entries this write leaves in the status, as far as we decide it.
    pub fn entries(&self) -> &[Ingress] {
        match self {
            StatusWrite::Set(entries) => entries,
            StatusWrite::Clear { .. } => &[],
        }
    }

    /// The same write without `ipMode` (for API servers that lack the field).
    pub fn without_ip_mode(&self) -> StatusWrite {
        match self {
            StatusWrite::Set(entries) => StatusWrite::Set(
                entries
                    .iter()
                    .map(|i| Ingress {
                        ip: i.ip,
                        ip_mode: None,
                    })
                    .collect(),
            ),
            clear => clear.clone(),
        }
    }
}

/// A pool condition to write. `since` is the `lastTransitionTime` to keep; `None` means the
/// status changed and the writer stamps the time of the write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredCondition {
    pub type_: &'static str,
    pub status: bool,
    pub reason: &'static str,
    pub message: String,
    pub observed_generation: Option<i64>,
    pub since: Option<Time>,
}

impl DesiredCondition {
    /// True when `shown` says the same thing (the transition time aside).
    pub fn matches(&self, shown: &Condition) -> bool {
        shown.type_ == self.type_
            && shown.status == ironlb_crds::conditions::status_str(self.status)
            && shown.reason == self.reason
            && shown.message == self.message
            && shown.observed_generation == self.observed_generation
    }

    /// The API form; `now` stands in for a missing transition time.
    pub fn to_condition(&self, now: &Time) -> Condition {
        ironlb_crds::conditions::condition(
            self.type_,
            self.status,
            self.reason,
            self.message.clone(),
            self.observed_generation,
            self.since.clone().unwrap_or_else(|| now.clone()),
        )
    }
}

/// The desired status of an IPAddressPool: counts per family and the three conditions.
#[derive(Clone, Debug, PartialEq)]
pub struct PoolStatusWrite {
    /// Counts only; `conditions` is left empty here and filled from [`Self::conditions`].
    pub counts: IPAddressPoolStatus,
    pub conditions: Vec<DesiredCondition>,
}

impl PoolStatusWrite {
    /// True when `shown` says the same (transition times aside).
    pub fn matches(&self, shown: &IPAddressPoolStatus) -> bool {
        let counts_equal = shown.assigned == self.counts.assigned
            && shown.available == self.counts.available
            && shown.assigned_ipv4 == self.counts.assigned_ipv4
            && shown.assigned_ipv6 == self.counts.assigned_ipv6
            && shown.available_ipv4 == self.counts.available_ipv4
            && shown.available_ipv6 == self.counts.available_ipv6;
        counts_equal
            && shown.conditions.len() == self.conditions.len()
            && self
                .conditions
                .iter()
                .all(|want| shown.conditions.iter().any(|c| want.matches(c)))
    }

    /// True when both say the same (transition times aside).
    pub fn same_as(&self, other: &PoolStatusWrite) -> bool {
        self.counts == other.counts
            && self.conditions.len() == other.conditions.len()
            && self.conditions.iter().zip(&other.conditions).all(|(a, b)| {
                DesiredCondition {
                    since: b.since.clone(),
                    ..a.clone()
                } == *b
            })
    }

    /// The full status to apply, stamping `now` on conditions that changed.
    pub fn to_status(&self, now: &Time) -> IPAddressPoolStatus {
        IPAddressPoolStatus {
            conditions: self
                .conditions
                .iter()
                .map(|c| c.to_condition(now))
                .collect(),
            ..self.counts.clone()
        }
    }
}

/// Severity of an Event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    Normal,
    Warning,
}

/// The kind of object an Event is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ObjectKind {
    Service,
    IPAddressPool,
}

impl ObjectKind {
    pub fn api_version(self) -> &'static str {
        match self {
            ObjectKind::Service => "v1",
            ObjectKind::IPAddressPool => "ironlb.io/v1beta1",
        }
    }

    pub fn kind(self) -> &'static str {
        match self {
            ObjectKind::Service => "Service",
            ObjectKind::IPAddressPool => "IPAddressPool",
        }
    }
}

/// The object an Event is about.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Regarding {
    pub kind: ObjectKind,
    pub namespace: String,
    pub name: String,
    pub uid: Option<String>,
}

impl fmt::Display for Regarding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}/{}", self.kind.kind(), self.namespace, self.name)
    }
}

/// An Event to emit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventIntent {
    pub regarding: Regarding,
    pub kind: EventKind,
    /// One of the constants of `ironlb_crds::events`.
    pub reason: &'static str,
    /// What the controller did, for the Event's `action` field.
    pub action: &'static str,
    pub note: String,
}

/// One thing to write.
#[derive(Clone, Debug, PartialEq)]
pub enum Intent {
    /// Apply a Service's `status.loadBalancer`.
    ServiceStatus {
        key: ServiceKey,
        write: StatusWrite,
    },
    /// Apply (`Some`) or drop (`None`) the `ironlb.io/ip-allocated-from-pool` annotation.
    PoolAnnotation {
        key: ServiceKey,
        pool: Option<String>,
    },
    /// Apply an IPAddressPool's status.
    PoolStatus {
        namespace: String,
        name: String,
        status: PoolStatusWrite,
    },
    Event(EventIntent),
}

/// Usage of one pool, for the `ironlb_allocator_*` gauges.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolGauge {
    pub pool: String,
    /// `(family label, total, in use)`; empty when the pool is gone.
    pub families: Vec<(&'static str, u128, u128)>,
}

/// Everything one brain call decided.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Output {
    pub intents: Vec<Intent>,
    /// Pools whose usage was recomputed.
    pub gauges: Vec<PoolGauge>,
    /// Reasons of failed allocations (`ironlb_controller_allocation_failures_total{reason}`).
    pub failures: Vec<&'static str>,
    /// Problems found that no Event reports (one line each, for the log).
    pub problems: Vec<String>,
}

impl Output {
    pub fn is_empty(&self) -> bool {
        self.intents.is_empty()
    }

    pub fn extend(&mut self, other: Output) {
        self.intents.extend(other.intents);
        self.gauges.extend(other.gauges);
        self.failures.extend(other.failures);
        self.problems.extend(other.problems);
    }
}
