//! The API calls of the writer: one function per kind of write, each returning what is left
//! to do when it fails.

use std::sync::atomic::Ordering;

use ironlb_crds::IPAddressPool;
use k8s_openapi::api::core::v1::{ObjectReference, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder};

use super::retry::{Failure, classify};
use super::{Feedback, Inner, MANAGER, Unfinished, Work, body};
use crate::allocator::ServiceKey;
use crate::brain::{EventIntent, EventKind, StatusWrite};

/// Attempts for one Event before it is dropped.
const EVENT_ATTEMPTS: u32 = 3;

impl Inner {
    /// Runs one request unless cancelled first.
    async fn request<T>(&self, request: impl Future<Output = T>) -> Option<T> {
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

    pub(super) async fn write_service(
        &self,
        key: &ServiceKey,
        mut work: Work,
    ) -> Result<(), Unfinished> {
        let api: Api<Service> = Api::namespaced(self.client.clone(), &key.namespace);
        let params = PatchParams::apply(MANAGER).force();
        let target = key.to_string();
        if let Some(write) = work.status.clone() {
            let with_ip_mode = self.ip_mode.load(Ordering::Relaxed);
            let body = body::service_status(key, &write, with_ip_mode);
            let Some(result) = self
                .request(api.patch_status(&key.name, &params, &Patch::Apply(&body)))
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
                    .request(api.patch_status(
                        &key.name,
                        &PatchParams::default(),
                        &Patch::Merge(&patch),
                    ))
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
                .request(api.patch(&key.name, &params, &Patch::Apply(&body)))
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

    pub(super) async fn write_pool(
        &self,
        namespace: &str,
        name: &str,
        work: Work,
    ) -> Result<(), Unfinished> {
        let Some(status) = &work.pool else {
            return Ok(());
        };
        let api: Api<IPAddressPool> = Api::namespaced(self.client.clone(), namespace);
        let now = Time(Timestamp::now());
        let body = body::pool_status(namespace, name, status, &now);
        let params = PatchParams::apply(MANAGER).force();
        let Some(result) = self
            .request(api.patch_status(name, &params, &Patch::Apply(&body)))
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

    pub(super) async fn publish(&self, event: EventIntent) {
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
                    let pause = tokio::time::sleep(self.config.backoff.delay(attempt));
                    tokio::select! {
                        () = self.cancel.cancelled() => return,
                        () = pause => {}
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
