//! The Service rules: restore at start-up, reconcile a Service of ours or another's, and what
//! a pool change does to Services.

use std::collections::BTreeSet;

use ironlb_crds::annotations;
use ironlb_crds::events;

use super::intent::{EventKind, Ingress, Output, StatusWrite};
use super::{Brain, NO_LABELS, join_ips, namespace_selectors_in_use};
use crate::allocator::{PoolUpdate, ServiceKey};

impl Brain {
    /// Start-up: re-occupies the addresses a Service of ours shows.
    pub(super) fn restore(&mut self, key: &ServiceKey, out: &mut Output) {
        let Some(entry) = self.services.get_mut(key) else {
            return;
        };
        let labels = self.namespaces.get(&key.namespace).unwrap_or(&NO_LABELS);
        let request = entry.view.restore_request(labels);
        let ips = entry.view.shown_ips();
        match self.allocator.restore(key, &request, &ips) {
            Ok(assignment) => {
                entry.held = Some(assignment);
                // The predecessor already noted the translations that got it these addresses.
                if let Ok(asked) = annotations::parse_annotations(
                    &entry.view.annotations.to_map(),
                    entry.view.spec_load_balancer_ip.as_deref(),
                ) {
                    entry.noted_translations = asked
                        .translated
                        .iter()
                        .map(|t| (t.from.to_string(), t.value.clone()))
                        .collect();
                }
            }
            Err(err) => out.problems.push(format!(
                "Service {key}: cannot keep {} shown in its status: {err}",
                join_ips(&ips)
            )),
        }
    }

    pub(super) fn reconcile_service(&mut self, key: &ServiceKey, out: &mut Output) {
        let Some(entry) = self.services.get(key) else {
            return;
        };
        if entry.view.handled_by(&self.config.class) {
            self.reconcile_ours(key, out);
        } else {
            self.reconcile_foreign(key, out);
        }
    }

    pub(super) fn reconcile_ours(&mut self, key: &ServiceKey, out: &mut Output) {
        self.touched.insert(key.clone());
        // A Service in a Namespace whose event has not arrived yet (both were just created):
        // the Namespace's labels decide which pools it may use, so wait for them;
        // `apply_namespace` reconciles it.
        let labels_unknown = !self.namespaces.contains_key(&key.namespace)
            && namespace_selectors_in_use(&self.pools);
        let Some(entry) = self.services.get_mut(key) else {
            return;
        };
        let asked = match annotations::parse_annotations(
            &entry.view.annotations.to_map(),
            entry.view.spec_load_balancer_ip.as_deref(),
        ) {
            Ok(asked) => {
                entry.noted_invalid = None;
                asked
            }
            Err(errors) => {
                let consequence = match &entry.held {
                    Some(held) => format!(
                        "the Service keeps {} until this is fixed",
                        join_ips(&held.ips)
                    ),
                    None => "no IP is allocated until this is fixed".to_string(),
                };
                let note = format!("{errors}; {consequence}");
                if entry.noted_invalid.as_deref() != Some(note.as_str()) {
                    out.failures.push("invalid_annotation");
                    out.intents.push(entry.event(
                        EventKind::Warning,
                        events::INVALID_ANNOTATION,
                        "Allocate",
                        note.clone(),
                    ));
                    entry.noted_invalid = Some(note);
                }
                // It needs a fix from its owner, not a free address.
                self.waiting.remove(key);
                if entry.held.is_none() {
                    // Nothing held (never allocated, or its pool no longer offers the address):
                    // a status showing an address would be stale.
                    entry.sync_status(StatusWrite::Clear { exclusive: true }, out);
                    entry.sync_annotation(None, out);
                }
                return;
            }
        };

        let current: BTreeSet<(String, String)> = asked
            .translated
            .iter()
            .map(|t| (t.from.to_string(), t.value.clone()))
            .collect();
        for t in &asked.translated {
            if !entry
                .noted_translations
                .contains(&(t.from.to_string(), t.value.clone()))
            {
                out.intents.push(entry.event(
                    EventKind::Normal,
                    events::METALLB_ANNOTATION,
                    "Translate",
                    t.message(),
                ));
            }
        }
        entry.noted_translations = current;

        if labels_unknown && entry.held.is_none() {
            return;
        }
        let labels = self.namespaces.get(&key.namespace).unwrap_or(&NO_LABELS);
        // The allocator refused the request: what it asks may fit once addresses free up.
        let mut unsatisfied = false;
        match entry.view.request(&asked, labels) {
            Err(err) => {
                let consequence = match &entry.held {
                    Some(held) => format!("the Service keeps {}", join_ips(&held.ips)),
                    None => "no IP is allocated".to_string(),
                };
                entry.note_failure("invalid_spec", format!("{err}; {consequence}"), out);
            }
            Ok(request) => {
                let before = entry.held.clone();
                let terms = terms_fingerprint(&request);
                if before.is_some() && entry.terms != Some(terms) {
                    // Others may now share (or no longer share) this Service's address.
                    self.room_changed = true;
                }
                entry.terms = Some(terms);
                match self.allocator.assign(key, &request) {
                    Ok(assignment) => {
                        entry.noted_failure = None;
                        if before.as_ref() != Some(&assignment) {
                            if let Some(before) = &before {
                                self.dirty_pools.insert(before.pool.clone());
                                self.room_changed = true;
                            }
                            self.dirty_pools.insert(assignment.pool.clone());
                            let shown = entry.view.shown_ips();
                            let was = match &before {
                                Some(b) => format!(" (was {})", join_ips(&b.ips)),
                                None if !shown.is_empty() && shown != assignment.ips => {
                                    format!(" (the status showed {})", join_ips(&shown))
                                }
                                None => String::new(),
                            };
                            out.intents.push(entry.event(
                                EventKind::Normal,
                                events::IP_ALLOCATED,
                                "Allocate",
                                format!(
                                    "Assigned {} from IPAddressPool {:?}{was}",
                                    join_ips(&assignment.ips),
                                    assignment.pool
                                ),
                            ));
                        }
                        entry.held = Some(assignment);
                    }
                    Err(err) => {
                        unsatisfied = true;
                        // The allocator kept what the Service held, on the terms it was
                        // given. Keep it only if the new spec may still hold it: a Service
                        // that dropped its sharing key or took a port its co-holders use must
                        // not stay on their address.
                        let consequence = match self.allocator.release(key) {
                            None => "the Service stays pending".to_string(),
                            Some(kept) => match self.allocator.restore(key, &request, &kept.ips) {
                                Ok(_) => format!("the Service keeps {}", join_ips(&kept.ips)),
                                Err(conflict) => {
                                    self.dirty_pools.insert(kept.pool.clone());
                                    self.room_changed = true;
                                    format!(
                                        "{} released because the Service can no longer hold it: {conflict}",
                                        join_ips(&kept.ips)
                                    )
                                }
                            },
                        };
                        entry.held = self.allocator.assignment(key);
                        entry.note_failure(err.reason(), format!("{err}; {consequence}"), out);
                    }
                }
            }
        }

        let mode = entry.view.ip_mode(
            asked.ip_mode,
            self.config.default_ip_mode,
            self.config.ip_mode_supported,
        );
        let (status, pool) = match &entry.held {
            Some(held) => (
                StatusWrite::Set(
                    held.ips
                        .iter()
                        .map(|&ip| Ingress { ip, ip_mode: mode })
                        .collect(),
                ),
                Some(held.pool.clone()),
            ),
            None => (StatusWrite::Clear { exclusive: true }, None),
        };
        entry.sync_status(status, out);
        entry.sync_annotation(pool, out);
        if unsatisfied {
            self.waiting.insert(key.clone());
        } else {
            self.waiting.remove(key);
        }
    }

    /// A Service that is not (or no longer) ours: release what it held and remove what we wrote.
    pub(super) fn reconcile_foreign(&mut self, key: &ServiceKey, out: &mut Output) {
        let Some(entry) = self.services.get_mut(key) else {
            return;
        };
        let released = self.allocator.release(key);
        entry.held = None;
        self.waiting.remove(key);
        if let Some(old) = &released {
            self.dirty_pools.insert(old.pool.clone());
            self.room_changed = true;
            let why = if !entry.view.is_load_balancer() {
                "the Service is no longer of type LoadBalancer".to_string()
            } else {
                match entry.view.class.as_deref().filter(|c| !c.is_empty()) {
                    Some(class) => format!(
                        "its loadBalancerClass {class:?} is not handled by this controller ({:?})",
                        self.config.class.class()
                    ),
                    None => {
                        "it has no loadBalancerClass and the controller ignores unclassed Services"
                            .to_string()
                    }
                }
            };
            out.intents.push(entry.event(
                EventKind::Normal,
                events::IP_RELEASED,
                "Release",
                format!(
                    "Released {} (IPAddressPool {:?}): {why}",
                    join_ips(&old.ips),
                    old.pool
                ),
            ));
        }
        if released.is_some() || entry.view.shown_pool().is_some() {
            // Another class's controller may own the status now: remove only our entries then.
            let exclusive = !entry.view.is_load_balancer();
            entry.sync_status(StatusWrite::Clear { exclusive }, out);
            entry.sync_annotation(None, out);
        }
        let done = entry.view.shown_pool().is_none()
            && entry.status_pending.is_none()
            && entry.annotation_pending.is_none();
        if done {
            self.services.remove(key);
        }
    }

    /// Puts the pool's current valid spec into the allocator (an invalid spec leaves the last
    /// valid version there) and reconciles what that changes.
    pub(super) fn load_pool(&mut self, name: &str, out: &mut Output) {
        self.dirty_pools.insert(name.to_string());
        let Some(entry) = self.pools.get_mut(name) else {
            return;
        };
        let Ok(config) = &entry.parsed else { return };
        if entry.in_allocator.as_ref() == Some(config) {
            return;
        }
        let config = config.clone();
        entry.in_allocator = Some(config.clone());
        let update = self.allocator.set_pool(config);
        self.after_pool_change(
            update,
            &format!("IPAddressPool {name:?} changed and no longer offers it, or now overlaps an older pool"),
            out,
        );
    }

    /// After a pool was added, changed or removed: tells displaced Services why, then
    /// reconciles every Service (pending ones may now fit, eligibility may have changed).
    pub(super) fn after_pool_change(&mut self, update: PoolUpdate, why: &str, out: &mut Output) {
        for key in &update.displaced {
            if let Some(entry) = self.services.get_mut(key)
                && let Some(old) = entry.held.take()
            {
                self.dirty_pools.insert(old.pool.clone());
                out.intents.push(entry.event(
                    EventKind::Normal,
                    events::IP_RELEASED,
                    "Release",
                    format!("Released {}: {why}", join_ips(&old.ips)),
                ));
            }
        }
        // Every pool: a conflict's message names the older pool's ranges, which may have
        // changed even when the list of conflicts did not.
        self.dirty_pools.extend(update.conflicts_changed);
        self.dirty_pools.extend(self.pools.keys().cloned());
        let keys: Vec<ServiceKey> = self.services.keys().cloned().collect();
        for key in self.by_age(keys) {
            self.reconcile_service(&key, out);
        }
    }
}

/// A fingerprint of what decides whether a Service may share an address (sharing key, ports,
/// backend), to notice when it changes without keeping the whole request.
fn terms_fingerprint(request: &crate::allocator::Request) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    request.sharing_key.hash(&mut hasher);
    request.ports.hash(&mut hasher);
    request.backend.hash(&mut hasher);
    hasher.finish()
}
