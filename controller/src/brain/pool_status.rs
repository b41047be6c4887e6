//! Pool status: recomputing the status and gauges of pools whose usage or configuration
//! changed, with their `PoolConflict` and `InvalidPool` events.

use ironlb_crds::events;

use super::intent::{EventIntent, EventKind, Intent, ObjectKind, Output, PoolGauge, Regarding};
use super::{Brain, pool};

impl Brain {
    /// Recomputes the status and gauges of dirty pools and emits what changed.
    pub(super) fn flush(&mut self, out: &mut Output) {
        let dirty = std::mem::take(&mut self.dirty_pools);
        for name in dirty {
            let usage = self
                .pools
                .get(&name)
                .filter(|e| e.in_allocator.is_some())
                .and_then(|_| self.allocator.pool_status(&name));
            let conflict = usage
                .as_ref()
                .filter(|u| !u.conflicts_with.is_empty())
                .map(|u| pool::conflict_message(&name, &u.conflicts_with, &self.pools));
            out.gauges.push(PoolGauge {
                pool: name.clone(),
                families: usage
                    .iter()
                    .flat_map(|u| &u.usage)
                    .map(|f| (f.family.label(), f.total, f.in_use))
                    .collect(),
            });
            let Some(entry) = self.pools.get_mut(&name) else {
                continue;
            };
            let regarding = Regarding {
                kind: ObjectKind::IPAddressPool,
                namespace: entry.namespace.clone(),
                name: name.clone(),
                uid: entry.uid.clone(),
            };
            match &conflict {
                Some(message) if entry.noted_conflict != [message.clone()] => {
                    out.intents.push(Intent::Event(EventIntent {
                        regarding: regarding.clone(),
                        kind: EventKind::Warning,
                        reason: events::POOL_CONFLICT,
                        action: "Validate",
                        note: message.clone(),
                    }));
                    entry.noted_conflict = vec![message.clone()];
                }
                Some(_) => {}
                None => entry.noted_conflict.clear(),
            }
            match entry.spec_error() {
                Some(problems) if entry.noted_invalid.as_deref() != Some(problems) => {
                    let consequence = if entry.in_allocator.is_some() {
                        "the addresses of its previous version stay in use"
                    } else {
                        "the pool is not used"
                    };
                    out.intents.push(Intent::Event(EventIntent {
                        regarding,
                        kind: EventKind::Warning,
                        reason: events::INVALID_POOL,
                        action: "Validate",
                        note: format!("{problems}; {consequence}"),
                    }));
                    entry.noted_invalid = Some(problems.to_string());
                }
                Some(_) => {}
                None => entry.noted_invalid = None,
            }
            let desired = pool::desired_status(entry, usage.as_ref(), conflict.as_deref());
            if entry.pending.as_ref().is_some_and(|p| p.same_as(&desired)) {
                continue;
            }
            let shown = entry.shown.as_ref().is_some_and(|s| desired.matches(s));
            if entry.pending.is_none() && shown {
                continue;
            }
            entry.pending = Some(desired.clone());
            out.intents.push(Intent::PoolStatus {
                namespace: entry.namespace.clone(),
                name: name.clone(),
                status: desired,
            });
        }
    }
}
