//! The reporter: makes the ServiceL2Status writes and Events the state asks for.
//!
//! - Each object has one slot holding its latest wanted write; a newer write replaces an older
//!   one not yet started, and an object is never written by two requests at once.
//! - At most [`CONCURRENCY`] writes are in flight. A failed write is retried with an
//!   exponential backoff unless the server rejected it as invalid; a delete whose precondition
//!   failed (the object now belongs to another node) is dropped.
//! - Every finished write is reported back, with the object the server returned, so the state
//!   sees its own write at once and does not ask for it again before the watch echoes it.
//! - A `nodeAssigned` Event goes out after the apply that carries it succeeded. Events are
//!   best effort: a few attempts, then they are dropped.
//!
//! Status writes: a server-side apply (field manager `ironlb-speaker`, forced) of the object
//! with its labels, then of its status subresource.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use ironlb_crds::ServiceL2Status;
use ironlb_crds::v1beta1::{GROUP, VERSION};
use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::events::{Event, EventType, Recorder, Reporter as EventReporter};
use serde_json::json;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::state::{EventIntent, EventKind, ObservedStatus, StatusAction, WriteOutcome};

/// The field manager of every apply, and the reporting controller of Events.
pub const MANAGER: &str = "ironlb-speaker";
/// Status writes in flight at most.
pub const CONCURRENCY: usize = 4;
const EVENT_ATTEMPTS: u32 = 3;
const BACKOFF_MIN: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Kubernetes refuses Event notes longer than this.
const NOTE_MAX: usize = 1024;

/// What to do after a failed write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    Retry,
    /// The object is not there (delete) or no longer what we meant to delete (409).
    Moot,
    /// The server rejected the request as invalid; sending it again cannot help.
    GiveUp,
}

/// Classifies an API error by HTTP status code, for a write of `kind`.
pub fn classify_status(code: u16, delete: bool) -> Failure {
    match code {
        404 | 409 if delete => Failure::Moot,
        400 | 405 | 413 | 415 | 422 => Failure::GiveUp,
        _ => Failure::Retry,
    }
}

fn classify(err: &kube::Error, delete: bool) -> Failure {
    match err {
        kube::Error::Api(status) => classify_status(status.code, delete),
        _ => Failure::Retry,
    }
}

/// The wait before retry number `attempt` (from 1).
pub fn backoff(attempt: u32) -> Duration {
    let factor = 1u32
        .checked_shl(attempt.saturating_sub(1))
        .unwrap_or(u32::MAX);
    BACKOFF_MIN.saturating_mul(factor).min(BACKOFF_MAX)
}

/// `note` cut to what Kubernetes accepts.
pub fn event_note(note: &str) -> String {
    if note.len() <= NOTE_MAX {
        return note.to_string();
    }
    let mut end = NOTE_MAX - 3;
    while !note.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &note[..end])
}

/// The body of the object apply: metadata and labels (the spec is empty).
pub fn object_body(name: &str, namespace: &str, action: &StatusAction) -> serde_json::Value {
    let labels = match action {
        StatusAction::Apply { desired, .. } => desired.labels(),
        StatusAction::Delete { .. } => BTreeMap::new(),
    };
    json!({
        "apiVersion": format!("{GROUP}/{VERSION}"),
        "kind": "ServiceL2Status",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {}
    })
}

enum Job {
    Status(StatusAction),
    Event(EventIntent),
}

/// Hands writes to the reporter task.
#[derive(Clone)]
pub struct Reporter {
    tx: mpsc::UnboundedSender<Job>,
}

/// What the reporter task needs.
#[derive(Clone)]
pub struct ReporterContext {
    pub client: kube::Client,
    pub namespace: String,
    /// This node, the Events' reporting instance.
    pub node: String,
    pub metrics: Metrics,
}

struct Pending {
    action: StatusAction,
    attempt: u32,
    not_before: Instant,
}

type Finished = (String, StatusAction, u32, Result<WriteOutcome, Failure>);

impl Reporter {
    /// Starts the reporter task. Finished writes are reported on `feedback`.
    pub fn spawn(
        ctx: ReporterContext,
        feedback: mpsc::UnboundedSender<(String, WriteOutcome)>,
        cancel: CancellationToken,
    ) -> (Reporter, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(ctx, rx, feedback, cancel));
        (Reporter { tx }, task)
    }

    pub fn status(&self, action: StatusAction) {
        let _ = self.tx.send(Job::Status(action));
    }

    pub fn event(&self, event: EventIntent) {
        let _ = self.tx.send(Job::Event(event));
    }
}

async fn run(
    ctx: ReporterContext,
    mut rx: mpsc::UnboundedReceiver<Job>,
    feedback: mpsc::UnboundedSender<(String, WriteOutcome)>,
    cancel: CancellationToken,
) {
    let recorder = Arc::new(Recorder::new(
        ctx.client.clone(),
        EventReporter {
            controller: MANAGER.to_string(),
            instance: Some(ctx.node.clone()),
        },
    ));
    let mut pending: BTreeMap<String, Pending> = BTreeMap::new();
    let mut in_flight: HashSet<String> = HashSet::new();
    let mut writes: JoinSet<Finished> = JoinSet::new();
    let mut events: JoinSet<()> = JoinSet::new();
    loop {
        let now = Instant::now();
        let ready: Vec<String> = pending
            .iter()
            .filter(|(name, p)| !in_flight.contains(*name) && p.not_before <= now)
            .map(|(name, _)| name.clone())
            .take(CONCURRENCY.saturating_sub(in_flight.len()))
            .collect();
        for name in ready {
            let Some(p) = pending.remove(&name) else {
                continue;
            };
            in_flight.insert(name.clone());
            let ctx = ctx.clone();
            writes.spawn(async move {
                let result = write(&ctx, &name, &p.action).await;
                (name, p.action, p.attempt, result)
            });
        }
        let next_wake = pending
            .iter()
            .filter(|(name, _)| !in_flight.contains(*name))
            .map(|(_, p)| p.not_before)
            .min();
        tokio::select! {
            () = cancel.cancelled() => break,
            job = rx.recv() => match job {
                Some(Job::Status(action)) => {
                    pending.insert(action.name().to_string(), Pending {
                        action,
                        attempt: 0,
                        not_before: Instant::now(),
                    });
                }
                Some(Job::Event(event)) => {
                    events.spawn(publish(recorder.clone(), ctx.metrics.clone(), event));
                }
                None => break,
            },
            Some(done) = writes.join_next(), if !writes.is_empty() => {
                let Ok((name, action, attempt, result)) = done else {
                    continue;
                };
                in_flight.remove(&name);
                match result {
                    Ok(outcome) => {
                        if let StatusAction::Apply { announce: Some(event), .. } = &action {
                            events.spawn(publish(recorder.clone(), ctx.metrics.clone(), event.clone()));
                        }
                        let _ = feedback.send((name, outcome));
                    }
                    Err(Failure::Retry) if !pending.contains_key(&name) => {
                        let attempt = attempt + 1;
                        pending.insert(name, Pending {
                            action,
                            attempt,
                            not_before: Instant::now() + backoff(attempt),
                        });
                    }
                    Err(Failure::Retry) => {} // a newer write for the object is waiting
                    Err(Failure::Moot | Failure::GiveUp) => {
                        let _ = feedback.send((name, WriteOutcome::Abandoned));
                    }
                }
            }
            Some(_) = events.join_next(), if !events.is_empty() => {}
            () = sleep_until(next_wake), if next_wake.is_some() => {}
        }
    }
    writes.abort_all();
    events.abort_all();
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn write(
    ctx: &ReporterContext,
    name: &str,
    action: &StatusAction,
) -> Result<WriteOutcome, Failure> {
    let api: Api<ServiceL2Status> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    match action {
        StatusAction::Apply { desired, .. } => {
            let params = PatchParams::apply(MANAGER).force();
            ctx.metrics
                .api_writes
                .with_label_values(&["status_apply"])
                .inc();
            let body = object_body(name, &ctx.namespace, action);
            if let Err(err) = api.patch(name, &params, &Patch::Apply(&body)).await {
                return Err(report(name, "ServiceL2Status apply", &err, false));
            }
            ctx.metrics
                .api_writes
                .with_label_values(&["status_apply"])
                .inc();
            let status = json!({
                "apiVersion": format!("{GROUP}/{VERSION}"),
                "kind": "ServiceL2Status",
                "metadata": {"name": name, "namespace": ctx.namespace},
                "status": desired.status(),
            });
            match api
                .patch_status(name, &params, &Patch::Apply(&status))
                .await
            {
                Ok(object) => {
                    tracing::debug!(%name, node = %desired.node, "ServiceL2Status written");
                    Ok(WriteOutcome::Applied(ObservedStatus::from_object(&object)))
                }
                Err(err) => Err(report(name, "ServiceL2Status status apply", &err, false)),
            }
        }
        StatusAction::Delete {
            resource_version, ..
        } => {
            ctx.metrics
                .api_writes
                .with_label_values(&["status_delete"])
                .inc();
            let params = DeleteParams {
                preconditions: Some(Preconditions {
                    resource_version: resource_version.clone(),
                    uid: None,
                }),
                ..DeleteParams::default()
            };
            match api.delete(name, &params).await {
                Ok(_) => {
                    tracing::debug!(%name, "ServiceL2Status deleted");
                    Ok(WriteOutcome::Deleted)
                }
                Err(err) => match report(name, "ServiceL2Status delete", &err, true) {
                    Failure::Moot if is_not_found(&err) => Ok(WriteOutcome::Deleted),
                    failure => Err(failure),
                },
            }
        }
    }
}

fn is_not_found(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(s) if s.code == 404)
}

fn report(name: &str, what: &str, err: &kube::Error, delete: bool) -> Failure {
    let failure = classify(err, delete);
    match failure {
        Failure::Moot => tracing::debug!(%name, error = %err, "{what}: nothing to do"),
        Failure::GiveUp => tracing::warn!(%name, error = %err, "{what} rejected; giving up"),
        Failure::Retry => tracing::warn!(%name, error = %err, "{what} failed; retrying"),
    }
    failure
}

async fn publish(recorder: Arc<Recorder>, metrics: Metrics, event: EventIntent) {
    let reference = ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Service".into()),
        name: Some(event.service.key.name.clone()),
        namespace: Some(event.service.key.namespace.clone()),
        uid: event.service.uid.clone(),
        ..ObjectReference::default()
    };
    let k8s_event = Event {
        type_: match event.kind {
            EventKind::Normal => EventType::Normal,
            EventKind::Warning => EventType::Warning,
        },
        reason: event.reason.into(),
        note: Some(event_note(&event.note)),
        action: match event.kind {
            EventKind::Normal => "Announce".into(),
            EventKind::Warning => "Forward".into(),
        },
        secondary: None,
    };
    for attempt in 1..=EVENT_ATTEMPTS {
        metrics.api_writes.with_label_values(&["event"]).inc();
        match recorder.publish(&k8s_event, &reference).await {
            Ok(()) => return,
            Err(err) if attempt == EVENT_ATTEMPTS || classify(&err, false) != Failure::Retry => {
                tracing::warn!(service = %event.service.key, reason = event.reason, error = %err, "cannot emit an Event");
                return;
            }
            Err(_) => tokio::time::sleep(backoff(attempt)).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{DesiredStatus, ServiceKey, ServiceRef};

    #[test]
    fn failures_are_classified() {
        assert_eq!(
            classify_status(409, true),
            Failure::Moot,
            "precondition failed"
        );
        assert_eq!(classify_status(404, true), Failure::Moot);
        assert_eq!(
            classify_status(404, false),
            Failure::Retry,
            "namespace not there yet"
        );
        assert_eq!(classify_status(409, false), Failure::Retry);
        assert_eq!(classify_status(422, false), Failure::GiveUp);
        assert_eq!(classify_status(400, true), Failure::GiveUp);
        assert_eq!(
            classify_status(403, false),
            Failure::Retry,
            "RBAC may be fixed"
        );
        assert_eq!(classify_status(503, false), Failure::Retry);
        let transport = kube::Error::Service("connection refused".into());
        assert_eq!(classify(&transport, true), Failure::Retry);
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        assert_eq!(backoff(1), Duration::from_millis(200));
        assert_eq!(backoff(2), Duration::from_millis(400));
        assert_eq!(backoff(6), Duration::from_millis(6400));
        assert_eq!(backoff(20), BACKOFF_MAX);
        assert_eq!(backoff(u32::MAX), BACKOFF_MAX);
    }

    #[test]
    fn long_notes_are_cut_on_a_character_boundary() {
        assert_eq!(event_note("short"), "short");
        let long = "é".repeat(800);
        let cut = event_note(&long);
        assert!(cut.len() <= NOTE_MAX && cut.ends_with("..."));
    }

    #[test]
    fn the_object_body_carries_the_labels() {
        let action = StatusAction::Apply {
            name: "default-web-ipv4-0123456789".into(),
            desired: DesiredStatus {
                service: ServiceRef {
                    key: ServiceKey::new("default", "web"),
                    uid: None,
                },
                node: "node1".into(),
                ips: vec!["198.51.100.1".parse().unwrap()],
                interfaces: vec!["eth0".into()],
            },
            announce: None,
        };
        let body = object_body("default-web-ipv4-0123456789", "ironlb-system", &action);
        assert_eq!(body["apiVersion"], "ironlb.io/v1beta1");
        assert_eq!(body["metadata"]["namespace"], "ironlb-system");
        assert_eq!(body["metadata"]["labels"]["ironlb.io/node"], "node1");
        assert_eq!(body["metadata"]["labels"]["ironlb.io/service-name"], "web");
        assert_eq!(body["spec"], json!({}));
    }
}
