//! The writer: turns the brain's intents into API writes.
//!
//! - Each object has a slot holding the latest desired state of each of its parts (Service
//!   status, Service annotation, pool status). A new intent replaces the part it touches, so
//!   however many intents arrive, the object ends with the latest one, and an object is never
//!   written by two workers at once.
//! - A fixed set of workers drains two queues of objects: `concurrency` workers write Service
//!   status (what `kubectl get svc` shows as EXTERNAL-IP) and nothing else, and
//!   `background_concurrency` workers write annotations and pool status, so a burst of those
//!   never delays a status. `event_concurrency` workers emit Events. A backlog costs a queue
//!   entry per object, not a task.
//! - A failed write goes back into its slot (under anything newer) and is retried after an
//!   exponential backoff. Writes the server rejects as invalid are given up and reported back,
//!   so the brain tries again on the next event; writes to deleted objects are dropped.
//! - Pool status writes are coalesced: at most one per pool per `pool_status_interval`, always
//!   ending with the latest counts.
//! - If the server does not know `status.loadBalancer.ingress[].ipMode`, the writer turns it
//!   off for the life of the process, logs that once, tells the brain, and writes without it.
//!
//! Everything stops when the cancellation token fires (leadership lost or shutdown).

mod body;
mod requests;
mod retry;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use kube::runtime::events::Reporter;
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::allocator::ServiceKey;
use crate::brain::{EventIntent, Intent, PoolStatusWrite, StatusWrite};
use crate::metrics::Metrics;

pub use retry::{Backoff, Failure, classify, classify_status};

/// The field manager of every apply, and the reporting controller of Events.
pub const MANAGER: &str = "ironlb-controller";

/// Events waiting beyond this many are dropped (they are best effort; writes are not).
const MAX_QUEUED_EVENTS: usize = 20_000;

/// Tuning of the writer.
#[derive(Clone, Debug)]
pub struct WriterConfig {
    /// Workers writing Service status.
    pub concurrency: usize,
    /// Workers writing annotations and pool status.
    pub background_concurrency: usize,
    /// Workers emitting Events.
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
    }
}

/// Where an object's slot stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum SlotState {
    /// Nothing to write.
    #[default]
    Idle,
    /// In a queue, waiting for a worker.
    Queued,
    /// A worker is writing it.
    Running,
    /// Waiting for a backoff or the pool status interval to pass.
    Waiting,
}

#[derive(Debug, Default)]
struct Slot {
    next: Work,
    state: SlotState,
    /// Failed attempts in a row, for the backoff.
    attempt: u32,
    /// When a pool status was last written.
    last_pool_write: Option<Instant>,
    /// When the oldest unwritten part arrived, for the reconcile duration.
    since: Option<Instant>,
}

/// Which workers a queue feeds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lane {
    /// Service status only.
    Status,
    /// Everything else: annotations, pool status (and a status that is already due).
    Background,
}

#[derive(Debug, Default)]
struct Queues {
    slots: HashMap<Target, Slot>,
    status: VecDeque<Target>,
    background: VecDeque<Target>,
    events: VecDeque<EventIntent>,
    /// Workers in the middle of a write or an Event.
    busy: usize,
}

struct Inner {
    client: kube::Client,
    config: WriterConfig,
    queues: Mutex<Queues>,
    status_ready: Notify,
    background_ready: Notify,
    events_ready: Notify,
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
    /// A writer whose workers stop when `cancel` fires. Feedback for the brain goes to
    /// `feedback`. Must be called inside a tokio runtime.
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
        let inner = Arc::new(Inner {
            client,
            ip_mode: AtomicBool::new(config.ip_mode),
            config,
            queues: Mutex::new(Queues::default()),
            status_ready: Notify::new(),
            background_ready: Notify::new(),
            events_ready: Notify::new(),
            metrics,
            feedback,
            cancel,
            tracker: TaskTracker::new(),
            reporter,
        });
        for _ in 0..inner.config.concurrency.max(1) {
            inner
                .tracker
                .spawn(inner.clone().write_worker(Lane::Status));
        }
        for _ in 0..inner.config.background_concurrency.max(1) {
            inner
                .tracker
                .spawn(inner.clone().write_worker(Lane::Background));
        }
        for _ in 0..inner.config.event_concurrency.max(1) {
            inner.tracker.spawn(inner.clone().event_worker());
        }
        Writer { inner }
    }

    /// Whether `ipMode` is still written.
    pub fn ip_mode(&self) -> bool {
        self.inner.ip_mode.load(Ordering::Relaxed)
    }

    /// Queues an intent. Never blocks on I/O.
    pub fn submit(&self, intent: Intent) {
        if self.inner.cancel.is_cancelled() {
            return;
        }
        let (target, work) = match intent {
            Intent::Event(event) => {
                let mut queues = self.inner.lock();
                if queues.events.len() >= MAX_QUEUED_EVENTS {
                    tracing::debug!(regarding = %event.regarding, reason = event.reason, "too many Events queued; dropping one");
                    return;
                }
                queues.events.push_back(event);
                drop(queues);
                self.inner.events_ready.notify_one();
                return;
            }
            Intent::ServiceStatus { key, write } => (
                Target::Service(key),
                Work {
                    status: Some(write),
                    ..Work::default()
                },
            ),
            Intent::PoolAnnotation { key, pool } => (
                Target::Service(key),
                Work {
                    annotation: Some(pool),
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
                    ..Work::default()
                },
            ),
        };
        let urgent = work.status.is_some();
        let mut queues = self.inner.lock();
        let slot = queues.slots.entry(target.clone()).or_default();
        slot.next.overlay(work);
        slot.since.get_or_insert_with(Instant::now);
        let lane = match slot.state {
            SlotState::Idle => {
                slot.state = SlotState::Queued;
                Some(lane_of(&slot.next))
            }
            // Queued for the background lane only: a status makes it urgent.
            SlotState::Queued if urgent => Some(Lane::Status),
            // A worker or a timer requeues it when done.
            SlotState::Queued | SlotState::Running | SlotState::Waiting => None,
        };
        if let Some(lane) = lane {
            self.inner.push(&mut queues, target, lane);
        }
    }

    /// Stops every worker and waits for them to end.
    pub async fn shutdown(&self) {
        self.inner.cancel.cancel();
        self.inner.tracker.close();
        self.inner.tracker.wait().await;
    }

    /// Waits until nothing is queued, waiting or in flight (tests and benchmarks).
    pub async fn idle(&self) {
        loop {
            {
                let queues = self.inner.lock();
                let quiet = queues.busy == 0
                    && queues.events.is_empty()
                    && queues.slots.values().all(|s| s.state == SlotState::Idle);
                if quiet {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

/// The lane a slot's pending work belongs in.
fn lane_of(work: &Work) -> Lane {
    if work.status.is_some() {
        Lane::Status
    } else {
        Lane::Background
    }
}

/// Why one piece of work did not complete.
struct Unfinished {
    rest: Work,
    failure: Failure,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Queues> {
        // Every update under the lock is a few assignments that cannot panic half-way, so a
        // poisoned lock still holds consistent data.
        self.queues.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, queues: &mut Queues, target: Target, lane: Lane) {
        match lane {
            Lane::Status => {
                queues.status.push_back(target);
                self.status_ready.notify_one();
            }
            Lane::Background => {
                queues.background.push_back(target);
                self.background_ready.notify_one();
            }
        }
    }

    /// Takes the next queued object of `lane`, marking it running. Stale entries (an object
    /// queued twice, or already taken) are skipped.
    fn pop(&self, lane: Lane) -> Option<Target> {
        let mut queues = self.lock();
        loop {
            let target = match lane {
                Lane::Status => queues.status.pop_front()?,
                Lane::Background => queues.background.pop_front()?,
            };
            if let Some(slot) = queues.slots.get_mut(&target)
                && slot.state == SlotState::Queued
            {
                slot.state = SlotState::Running;
                queues.busy += 1;
                return Some(target);
            }
        }
    }

    async fn write_worker(self: Arc<Self>, lane: Lane) {
        let ready = match lane {
            Lane::Status => &self.status_ready,
            Lane::Background => &self.background_ready,
        };
        loop {
            let notified = ready.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match self.pop(lane) {
                Some(target) => self.process(target, lane).await,
                None => tokio::select! {
                    () = self.cancel.cancelled() => return,
                    () = &mut notified => {}
                },
            }
            if self.cancel.is_cancelled() {
                return;
            }
        }
    }

    async fn event_worker(self: Arc<Self>) {
        loop {
            let notified = self.events_ready.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let event = {
                let mut queues = self.lock();
                let event = queues.events.pop_front();
                if event.is_some() {
                    queues.busy += 1;
                }
                event
            };
            match event {
                Some(event) => {
                    self.publish(event).await;
                    self.lock().busy -= 1;
                }
                None => tokio::select! {
                    () = self.cancel.cancelled() => return,
                    () = &mut notified => {}
                },
            }
            if self.cancel.is_cancelled() {
                return;
            }
        }
    }

    /// Writes what `lane` handles of one running object, then requeues, parks or idles it.
    async fn process(self: &Arc<Self>, target: Target, lane: Lane) {
        let work = {
            let mut queues = self.lock();
            let Some(slot) = queues.slots.get_mut(&target) else {
                queues.busy -= 1;
                return;
            };
            if lane == Lane::Background
                && slot.next.pool.is_some()
                && let Some(last) = slot.last_pool_write
                && last.elapsed() < self.config.pool_status_interval
            {
                // Too soon for this pool: come back when the interval has passed.
                let due = last + self.config.pool_status_interval;
                slot.state = SlotState::Waiting;
                queues.busy -= 1;
                drop(queues);
                self.wake_at(target, due);
                return;
            }
            let work = match lane {
                Lane::Status => Work {
                    status: slot.next.status.take(),
                    ..Work::default()
                },
                Lane::Background => std::mem::take(&mut slot.next),
            };
            if work.pool.is_some() {
                slot.last_pool_write = Some(Instant::now());
            }
            work
        };
        let outcome = match &target {
            _ if work.is_empty() => Ok(()),
            Target::Service(key) => self.write_service(key, work).await,
            Target::Pool { namespace, name } => self.write_pool(namespace, name, work).await,
        };

        let mut queues = self.lock();
        queues.busy -= 1;
        let Some(slot) = queues.slots.get_mut(&target) else {
            return;
        };
        let mut backoff = None;
        match outcome {
            Ok(()) => {
                slot.attempt = 0;
                if slot.next.is_empty()
                    && let Some(since) = slot.since.take()
                {
                    self.metrics
                        .reconcile_duration
                        .observe(since.elapsed().as_secs_f64());
                }
            }
            Err(Unfinished { rest, failure }) => match failure {
                Failure::Gone => {}
                Failure::GiveUp => self.abandon(&target, &rest),
                Failure::NoIpMode | Failure::Retry => {
                    let newer = std::mem::take(&mut slot.next);
                    slot.next = rest;
                    slot.next.overlay(newer);
                    if failure == Failure::Retry {
                        slot.attempt = slot.attempt.saturating_add(1);
                        backoff = Some(self.config.backoff.delay(slot.attempt));
                    }
                }
            },
        }
        if let Some(delay) = backoff {
            slot.state = SlotState::Waiting;
            drop(queues);
            self.wake_at(target, Instant::now() + delay);
        } else if slot.next.is_empty() {
            slot.state = SlotState::Idle;
            slot.since = None;
            // Pool slots stay, to remember when the pool was last written.
            if matches!(target, Target::Service(_)) {
                queues.slots.remove(&target);
            }
        } else {
            slot.state = SlotState::Queued;
            let lane = lane_of(&slot.next);
            self.push(&mut queues, target, lane);
        }
    }

    /// Requeues a waiting object at `due`.
    fn wake_at(self: &Arc<Self>, target: Target, due: Instant) {
        let inner = self.clone();
        self.tracker.spawn(async move {
            tokio::select! {
                () = inner.cancel.cancelled() => {}
                () = tokio::time::sleep_until(due) => {
                    let mut queues = inner.lock();
                    if let Some(slot) = queues.slots.get_mut(&target)
                        && slot.state == SlotState::Waiting
                    {
                        slot.state = SlotState::Queued;
                        let lane = lane_of(&slot.next);
                        inner.push(&mut queues, target, lane);
                    }
                }
            }
        });
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
}
