//! What the brain keeps per Service, and the rule that turns a desired state into an intent
//! only when the object does not show it and the same write is not already on its way.

use std::collections::BTreeSet;

use ironlb_crds::events;

use super::intent::{EventIntent, EventKind, Intent, ObjectKind, Output, Regarding, StatusWrite};
use super::service::ServiceView;
use crate::allocator::Assignment;

/// What the brain keeps per Service.
#[derive(Clone, Debug)]
pub(super) struct ServiceEntry {
    pub(super) view: ServiceView,
    /// What the allocator gave this Service, mirrored to describe changes in Events.
    pub(super) held: Option<Assignment>,
    /// A status write handed to the writer and not yet seen on the object.
    pub(super) status_pending: Option<StatusWrite>,
    /// An annotation write handed to the writer and not yet seen on the object.
    pub(super) annotation_pending: Option<Option<String>>,
    /// MetalLB annotations (key, value) a `MetalLBAnnotation` event was emitted for.
    pub(super) noted_translations: BTreeSet<(String, String)>,
    /// The last `InvalidAnnotation` message emitted.
    pub(super) noted_invalid: Option<String>,
    /// The last `AllocationFailed` message emitted.
    pub(super) noted_failure: Option<String>,
    /// Fingerprint of the sharing terms of the last request, to notice when they change.
    pub(super) terms: Option<u64>,
}

impl ServiceEntry {
    pub(super) fn new(view: ServiceView) -> Self {
        ServiceEntry {
            view,
            held: None,
            status_pending: None,
            annotation_pending: None,
            noted_translations: BTreeSet::new(),
            noted_invalid: None,
            noted_failure: None,
            terms: None,
        }
    }

    /// Replaces the view, and forgets pending writes the object now shows.
    pub(super) fn observe(&mut self, view: ServiceView) {
        self.view = view;
        if self
            .status_pending
            .as_ref()
            .is_some_and(|p| self.view.shows(p.entries()))
        {
            self.status_pending = None;
        }
        if self
            .annotation_pending
            .as_ref()
            .is_some_and(|p| p.as_deref() == self.view.shown_pool())
        {
            self.annotation_pending = None;
        }
    }

    pub(super) fn regarding(&self) -> Regarding {
        Regarding {
            kind: ObjectKind::Service,
            namespace: self.view.key.namespace.clone(),
            name: self.view.key.name.clone(),
            uid: self.view.uid.clone(),
        }
    }

    pub(super) fn event(
        &self,
        kind: EventKind,
        reason: &'static str,
        action: &'static str,
        note: String,
    ) -> Intent {
        Intent::Event(EventIntent {
            regarding: self.regarding(),
            kind,
            reason,
            action,
            note,
        })
    }

    /// Emits the status write unless the object shows it or it is already on its way.
    pub(super) fn sync_status(&mut self, desired: StatusWrite, out: &mut Output) {
        if self.status_pending.as_ref() == Some(&desired) {
            return;
        }
        if self.status_pending.is_none() && self.view.shows(desired.entries()) {
            return;
        }
        // Either the object differs, or another write is queued that must be overridden.
        self.status_pending = Some(desired.clone());
        out.intents.push(Intent::ServiceStatus {
            key: self.view.key.clone(),
            write: desired,
        });
    }

    pub(super) fn sync_annotation(&mut self, desired: Option<String>, out: &mut Output) {
        if self.annotation_pending.as_ref() == Some(&desired) {
            return;
        }
        if self.annotation_pending.is_none() && self.view.shown_pool() == desired.as_deref() {
            return;
        }
        self.annotation_pending = Some(desired.clone());
        out.intents.push(Intent::PoolAnnotation {
            key: self.view.key.clone(),
            pool: desired,
        });
    }

    /// Emits `AllocationFailed` and counts the failure, unless the same message was the last
    /// one emitted: the metric counts failures, not retries of a Service still waiting.
    pub(super) fn note_failure(&mut self, reason: &'static str, message: String, out: &mut Output) {
        if self.noted_failure.as_deref() == Some(message.as_str()) {
            return;
        }
        out.failures.push(reason);
        out.intents.push(self.event(
            EventKind::Warning,
            events::ALLOCATION_FAILED,
            "Allocate",
            message.clone(),
        ));
        self.noted_failure = Some(message);
    }
}
