//! The writer: turns the brain's intents into API writes.
//!
//! - Writes run concurrently and never two at once for one object: each object has a slot
//!   holding the latest desired state of each of its parts (Service status, Service annotation,
//!   pool status). A new intent replaces the part it touches, so however many intents arrive,
//!   the object ends with the latest one.
//! - Service status writes (what `kubectl get svc` shows as EXTERNAL-IP) have `concurrency`
//!   requests in flight of their own; annotation and pool status writes share
//!   `background_concurrency`, and Events `event_concurrency`, so that a burst of those never
//!   queues ahead of a status write.
//! - A failed write goes back into its slot (under anything newer) and is retried with
//!   exponential backoff. Writes the server rejects as invalid are given up and reported back,
//!   so the brain tries again on the next event; writes to deleted objects are dropped.
//! - Pool status writes are coalesced: at most one per pool per `pool_status_interval`, always
//!   ending with the latest counts.
//! - If the server does not know `status.loadBalancer.ingress[].ipMode`, the writer turns it
//!   off for the life of the process, logs that once, tells the brain, and writes without it.
//! - Events go out on their own, with a smaller concurrency, and are best effort.
//!
//! Everything stops when the cancellation token fires (leadership lost or shutdown).

mod body;
mod retry;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ironlb_crds::IPAddressPool;
use k8s_openapi::api::core::v1::{ObjectReference, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::allocator::ServiceKey;
use crate::brain::{EventIntent, EventKind, Intent, PoolStatusWrite, StatusWrite};
use crate::metrics::Metrics;

pub use retry::{Backoff, Failure, classify, classify_status};

/// The field manager of every apply, and the reporting controller of Events.
pub const MANAGER: &str = "ironlb-controller";

/// Attempts for one Event before it is dropped.
const EVENT_ATTEMPTS: u32 = 3;

/// Tuning of the writer.
#[derive(Clone, Debug)]
pub struct WriterConfig {
    /// Service status writes in flight at most.
    pub concurrency: usize,
    /// Annotation and pool status writes in flight at most.
    pub background_concurrency: usize,
    /// Events in flight at most.
    pub event_concurrency: usize,
    /// Minimum time between two status writes of one pool.
    pub pool_status_interval: Duration,
    pub backoff: Backoff,
    /// Whether to write `ipMode` (from the server's version; may be turned off later).
    pub ip_mode: bool,
    /// This replica's name, for the Events' `reportingInstance`.
    pub instance: String,
}

impl Default for WriterConfig {
    fn default() -> Self {
        WriterConfig {
            concurrency: 32,
            background_concurrency: 8,
            event_concurrency: 8,
            pool_status_interval: Duration::from_secs(1),
            backoff: Backoff::default(),
            ip_mode: true,
            instance: MANAGER.to_string(),
        }
    }
}

/// What the writer tells the brain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Feedback {
    /// A Service status write was given up.
    StatusAbandoned(ServiceKey),
    /// An annotation write was given up.
    AnnotationAbandoned(ServiceKey),
    /// A pool status write was given up.
    PoolStatusAbandoned(String),
    /// The server has no `ipMode`; the writer no longer sends it.
    IpModeUnsupported,
}

/// An object the writer writes to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Target {
    Service(ServiceKey),
    Pool { namespace: String, name: String },
}

/// The latest desired state of each part of one object, not yet written.
#[derive(Clone, Debug, Default)]
struct Work {
    status: Option<StatusWrite>,
    annotation: Option<Option<String>>,
    pool: Option<PoolStatusWrite>,
    /// When the oldest part arrived, for the reconcile duration.
    since: Option<Instant>,
}

impl Work {
    fn is_empty(&self) -> bool {
        self.status.is_none() && self.annotation.is_none() && self.pool.is_none()
    }

    /// Puts `newer` on top of `self`: newer parts win.
    fn overlay(&mut self, newer: Work) {
        if newer.status.is_some() {
            self.status = newer.status;
        }
        if newer.annotation.is_some() {
            self.annotation = newer.annotation;
        }
        if newer.pool.is_some() {
            self.pool = newer.pool;
        }
        self.since = match (self.since, newer.since) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
}

#[derive(Debug, Default)]
struct Slot {
    next: Work,
    running: bool,
    last_write: Option<Instant>,
}

struct Inner {
    client: kube::Client,
    config: WriterConfig,
    permits: Semaphore,
    background_permits: Semaphore,
    event_permits: Semaphore,
    slots: Mutex<HashMap<Target, Slot>>,
    ip_mode: AtomicBool,
    metrics: Metrics,
    feedback: mpsc::UnboundedSender<Feedback>,
    cancel: CancellationToken,
    tracker: TaskTracker,
    reporter: Reporter,
}

/// See the module docs. Cloning shares the writer.
#[derive(Clone)]
pub struct Writer {
    inner: Arc<Inner>,
}

impl Writer {
    /// A writer that stops when `cancel` fires. Feedback for the brain goes to `feedback`.
    pub fn new(
        client: kube::Client,
        config: WriterConfig,
        metrics: Metrics,
        feedback: mpsc::UnboundedSender<Feedback>,
        cancel: CancellationToken,
    ) -> Writer {
        let reporter = Reporter {
            controller: MANAGER.to_string(),
            instance: Some(config.instance.clone()),
        };
        Writer {
            inner: Arc::new(Inner {
                client,
                permits: Semaphore::new(config.concurrency.max(1)),
                background_permits: Semaphore::new(config.background_concurrency.max(1)),
                event_permits: Semaphore::new(config.event_concurrency.max(1)),
                ip_mode: AtomicBool::new(config.ip_mode),
                config,
                slots: Mutex::new(HashMap::new()),
                metrics,
                feedback,
                cancel,
                tracker: TaskTracker::new(),
                reporter,
            }),
        }
    }

    /// Whether `ipMode` is still written.
    pub fn ip_mode(&self) -> bool {
        self.inner.ip_mode.load(Ordering::Relaxed)
    }

    /// Queues an intent. Never blocks.
    pub fn submit(&self, intent: Intent) {
        if self.inner.cancel.is_cancelled() {
            return;
        }
        let now = Some(Instant::now());
        let (target, work) = match intent {
            Intent::Event(event) => {
                let inner = self.inner.clone();
                self.inner
                    .tracker
                    .spawn(async move { inner.publish(event).await });
                return;
            }
            Intent::ServiceStatus { key, write } => (
                Target::Service(key),
                Work {
                    status: Some(write),
                    since: now,
                    ..Work::default()
                },
            ),
            Intent::PoolAnnotation { key, pool } => (
                Target::Service(key),
                Work {
                    annotation: Some(pool),
                    since: now,
                    ..Work::default()
                },
            ),
            Intent::PoolStatus {
                namespace,
                name,
                status,
            } => (
                Target::Pool { namespace, name },
                Work {
                    pool: Some(status),
                    since: now,
                    ..Work::default()
                },
            ),
        };
        let start = {
            let mut slots = self.inner.lock_slots();
            let slot = slots.entry(target.clone()).or_default();
            slot.next.overlay(work);
            !std::mem::replace(&mut slot.running, true)
        };
        if start {
            let inner = self.inner.clone();
            self.inner
                .tracker
                .spawn(async move { inner.run(target).await });
        }
    }

    /// Stops every write and waits for the tasks to end.
    pub async fn shutdown(&self) {
        self.inner.cancel.cancel();
        self.inner.tracker.close();
        self.inner.tracker.wait().await;
    }

    /// Waits until nothing is queued or in flight (tests and benchmarks).
    pub async fn idle(&self) {
        loop {
            let busy = self.inner.lock_slots().values().any(|s| s.running);
            if !busy && self.inner.tracker.is_empty() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

/// Why one piece of work did not complete.
struct Unfinished {
    rest: Work,
    failure: Failure,
}

impl Inner {
    fn lock_slots(&self) -> std::sync::MutexGuard<'_, HashMap<Target, Slot>> {
        // A panic while holding the lock cannot leave a slot half-updated in a way that
        // matters (every update is one assignment), so a poisoned lock is still usable.
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes the slot of `target` until it is empty.
    async fn run(self: Arc<Self>, target: Target) {
        let mut attempt = 0u32;
        loop {
            if self.cancel.is_cancelled() {
                return;
            }
            if let Target::Pool { .. } = target {
                let last = self.lock_slots().get(&target).and_then(|s| s.last_write);
                if let Some(last) = last {
                    let due = last + self.config.pool_status_interval;
                    if !self.sleep_until(due).await {
                        return;
                    }
                }
            }
            let work = {
                let mut slots = self.lock_slots();
                let Some(slot) = slots.get_mut(&target) else {
                    return;
                };
                let work = std::mem::take(&mut slot.next);
                if work.is_empty() {
                    slot.running = false;
                    if let Target::Service(_) = target {
                        slots.remove(&target);
                    }
                    return;
                }
                if work.pool.is_some() {
                    slot.last_write = Some(Instant::now());
                }
                work
            };
            let since = work.since;
            let outcome = match &target {
                Target::Service(key) => self.write_service(key, work).await,
                Target::Pool { namespace, name } => self.write_pool(namespace, name, work).await,
            };
            let Err(Unfinished { rest, failure }) = outcome else {
                attempt = 0;
                if let Some(since) = since {
                    self.metrics
                        .reconcile_duration
                        .observe(since.elapsed().as_secs_f64());
                }
                continue;
            };
            match failure {
                Failure::Gone => {}
                Failure::GiveUp => self.abandon(&target, &rest),
                Failure::NoIpMode | Failure::Retry => {
                    {
                        let mut slots = self.lock_slots();
                        if let Some(slot) = slots.get_mut(&target) {
                            let newer = std::mem::take(&mut slot.next);
                            slot.next = rest;
                            slot.next.overlay(newer);
                        }
                    }
                    if failure == Failure::Retry {
                        attempt = attempt.saturating_add(1);
                        if !self.sleep(self.config.backoff.delay(attempt)).await {
                            return;
                        }
                    }
                }
            }
        }
    }

    fn abandon(&self, target: &Target, rest: &Work) {
        let mut notes = Vec::new();
        match target {
            Target::Service(key) => {
                if rest.status.is_some() {
                    notes.push(Feedback::StatusAbandoned(key.clone()));
                }
                if rest.annotation.is_some() {
                    notes.push(Feedback::AnnotationAbandoned(key.clone()));
                }
            }
            Target::Pool { name, .. } => notes.push(Feedback::PoolStatusAbandoned(name.clone())),
        }
        for note in notes {
            let _ = self.feedback.send(note);
        }
    }

    /// Sleeps unless cancelled first; returns false when cancelled.
    async fn sleep(&self, duration: Duration) -> bool {
        self.sleep_until(Instant::now() + duration).await
    }

    async fn sleep_until(&self, due: Instant) -> bool {
        tokio::select! {
            () = self.cancel.cancelled() => false,
            () = tokio::time::sleep_until(due) => true,
        }
    }

    /// Runs one request under a permit. `None` when cancelled.
    async fn with_permit<T>(
        &self,
        permits: &Semaphore,
        request: impl Future<Output = T>,
    ) -> Option<T> {
        let _permit = tokio::select! {
            () = self.cancel.cancelled() => return None,
            permit = permits.acquire() => permit.ok()?,
        };
        tokio::select! {
            () = self.cancel.cancelled() => None,
            result = request => Some(result),
        }
    }

    /// Counts a write's result; returns how the failure is handled.
    fn record<T>(
        &self,
        what: &str,
        target: &str,
        result: &Result<T, kube::Error>,
    ) -> Option<Failure> {
        match result {
            Ok(_) => {
                self.metrics.reconciles.with_label_values(&["ok"]).inc();
                None
            }
            Err(err) => {
                self.metrics.reconciles.with_label_values(&["error"]).inc();
                let failure = classify(err);
                match failure {
                    Failure::Gone => tracing::debug!(%target, "{what}: the object is gone"),
                    Failure::NoIpMode => {}
                    Failure::GiveUp => {
                        tracing::warn!(%target, error = %err, "{what} rejected; giving up until the object changes")
                    }
                    Failure::Retry => {
                        tracing::warn!(%target, error = %err, "{what} failed; retrying")
                    }
                }
                Some(failure)
            }
        }
    }

    /// Turns ipMode off; the first caller logs it and tells the brain.
    fn ip_mode_unsupported(&self) {
        if self.ip_mode.swap(false, Ordering::Relaxed) {
            tracing::warn!(
                "the API server does not know status.loadBalancer.ingress[].ipMode (Kubernetes before 1.29); writing Service status without it from now on"
            );
            let _ = self.feedback.send(Feedback::IpModeUnsupported);
        }
    }

    async fn write_service(&self, key: &ServiceKey, mut work: Work) -> Result<(), Unfinished> {
        let api: Api<Service> = Api::namespaced(self.client.clone(), &key.namespace);
        let params = PatchParams::apply(MANAGER).force();
        let target = key.to_string();
        if let Some(write) = work.status.clone() {
            let with_ip_mode = self.ip_mode.load(Ordering::Relaxed);
            let body = body::service_status(key, &write, with_ip_mode);
            let Some(result) = self
                .with_permit(
                    &self.permits,
                    api.patch_status(&key.name, &params, &Patch::Apply(&body)),
                )
                .await
            else {
                return Ok(());
            };
            match self.record("Service status write", &target, &result) {
                None => {}
                Some(Failure::NoIpMode) if !with_ip_mode => {
                    // We sent no ipMode and the server still complains about it.
                    return Err(Unfinished {
                        rest: work,
                        failure: Failure::GiveUp,
                    });
                }
                Some(Failure::NoIpMode) => {
                    self.ip_mode_unsupported();
                    return Err(Unfinished {
                        rest: work,
                        failure: Failure::NoIpMode,
                    });
                }
                Some(failure) => {
                    return Err(Unfinished {
                        rest: work,
                        failure,
                    });
                }
            }
            if let (Ok(written), StatusWrite::Clear { exclusive: true }) = (&result, &write)
                && shows_ingress(written)
            {
                // Another field manager owns entries on a Service that is ours alone.
                let patch = body::drop_ingress();
                let Some(result) = self
                    .with_permit(
                        &self.permits,
                        api.patch_status(&key.name, &PatchParams::default(), &Patch::Merge(&patch)),
                    )
                    .await
                else {
                    return Ok(());
                };
                if let Some(failure) = self.record("Service status clear", &target, &result) {
                    return Err(Unfinished {
                        rest: work,
                        failure,
                    });
                }
            }
            work.status = None;
        }
        if let Some(pool) = work.annotation.clone() {
            let body = body::pool_annotation(key, pool.as_deref());
            let Some(result) = self
                .with_permit(
                    &self.background_permits,
                    api.patch(&key.name, &params, &Patch::Apply(&body)),
                )
                .await
            else {
                return Ok(());
            };
            if let Some(failure) = self.record("Service annotation write", &target, &result) {
                return Err(Unfinished {
                    rest: work,
                    failure,
                });
            }
        }
        Ok(())
    }

    async fn write_pool(&self, namespace: &str, name: &str, work: Work) -> Result<(), Unfinished> {
        let Some(status) = &work.pool else {
            return Ok(());
        };
        let api: Api<IPAddressPool> = Api::namespaced(self.client.clone(), namespace);
        let now = Time(Timestamp::now());
        let body = body::pool_status(namespace, name, status, &now);
        let params = PatchParams::apply(MANAGER).force();
        let Some(result) = self
            .with_permit(
                &self.background_permits,
                api.patch_status(name, &params, &Patch::Apply(&body)),
            )
            .await
        else {
            return Ok(());
        };
        match self.record(
            "IPAddressPool status write",
            &format!("{namespace}/{name}"),
            &result,
        ) {
            None => Ok(()),
            Some(failure) => Err(Unfinished {
                rest: work,
                failure,
            }),
        }
    }

    async fn publish(&self, event: EventIntent) {
        let Ok(_permit) = self.event_permits.acquire().await else {
            return;
        };
        let recorder = Recorder::new(self.client.clone(), self.reporter.clone());
        let reference = ObjectReference {
            api_version: Some(event.regarding.kind.api_version().into()),
            kind: Some(event.regarding.kind.kind().into()),
            name: Some(event.regarding.name.clone()),
            namespace: Some(event.regarding.namespace.clone()),
            uid: event.regarding.uid.clone(),
            ..ObjectReference::default()
        };
        let k8s_event = Event {
            type_: match event.kind {
                EventKind::Normal => EventType::Normal,
                EventKind::Warning => EventType::Warning,
            },
            reason: event.reason.into(),
            note: Some(body::event_note(&event.note)),
            action: event.action.into(),
            secondary: None,
        };
        for attempt in 1..=EVENT_ATTEMPTS {
            let result = tokio::select! {
                () = self.cancel.cancelled() => return,
                result = recorder.publish(&k8s_event, &reference) => result,
            };
            match result {
                Ok(()) => return,
                Err(err) if attempt == EVENT_ATTEMPTS || classify(&err) != Failure::Retry => {
                    tracing::warn!(regarding = %event.regarding, reason = event.reason, error = %err, "cannot emit an Event");
                    return;
                }
                Err(_) => {
                    if !self.sleep(self.config.backoff.delay(attempt)).await {
                        return;
                    }
                }
            }
        }
    }
}

fn shows_ingress(service: &Service) -> bool {
    service
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .is_some_and(|i| !i.is_empty())
}
