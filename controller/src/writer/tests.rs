//! The writer against an in-memory API: a kube `Client` over a `tower-test` mock whose handler
//! records every request and answers like an API server would.

use std::collections::HashMap;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};

use http::{Request, Response};
use ironlb_crds::annotations::IpMode;
use kube::client::Body;
use prometheus::Registry;
use serde_json::{Value, json};

use super::*;
use crate::brain::{DesiredCondition, EventKind, Ingress, Regarding};

/// One request the fake API server received.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    path: String,
    query: String,
    content_type: String,
    body: Value,
}

/// The fake's answer: HTTP code, JSON body, and how long to take.
struct Answer {
    code: u16,
    body: Value,
    delay: Duration,
}

impl Answer {
    fn ok(body: Value) -> Self {
        Answer {
            code: 200,
            body,
            delay: Duration::ZERO,
        }
    }

    fn error(code: u16, message: &str) -> Self {
        Answer {
            code,
            body: json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                         "message": message, "reason": "Failed", "code": code}),
            delay: Duration::ZERO,
        }
    }

    fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

type Handler = dyn Fn(&Seen, usize) -> Answer + Send + Sync;

#[derive(Clone, Default)]
struct Fake {
    seen: Arc<Mutex<Vec<Seen>>>,
    in_flight: Arc<Mutex<HashMap<String, usize>>>,
    max_per_path: Arc<AtomicUsize>,
    max_total: Arc<AtomicUsize>,
}

impl Fake {
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn paths(&self) -> Vec<String> {
        self.seen().into_iter().map(|s| s.path).collect()
    }
}

/// An echo of the object a write names, so the client can decode the answer.
fn echo(seen: &Seen) -> Value {
    let mut object = seen.body.clone();
    if object.get("kind").is_none() {
        object = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"}});
    }
    if object["kind"] == "IPAddressPool" {
        object["spec"] = json!({"addresses": ["198.51.100.0/29"]});
    }
    object
}

fn start(handler: Box<Handler>) -> (kube::Client, Fake) {
    let (mock, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let fake = Fake::default();
    let state = fake.clone();
    let handler: Arc<Handler> = Arc::from(handler);
    tokio::spawn(async move {
        let mut count = 0usize;
        while let Some((request, respond)) = handle.next_request().await {
            let (parts, body) = request.into_parts();
            let bytes = body.collect_bytes().await.unwrap_or_default();
            let seen = Seen {
                method: parts.method.to_string(),
                path: parts.uri.path().to_string(),
                query: parts.uri.query().unwrap_or_default().to_string(),
                content_type: parts
                    .headers
                    .get(http::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string(),
                body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            };
            let answer = handler(&seen, count);
            count += 1;
            state.seen.lock().unwrap().push(seen.clone());
            let state = state.clone();
            tokio::spawn(async move {
                {
                    let mut flight = state.in_flight.lock().unwrap();
                    let here = flight.entry(seen.path.clone()).or_default();
                    *here += 1;
                    state.max_per_path.fetch_max(*here, Ordering::SeqCst);
                    let total: usize = flight.values().sum();
                    state.max_total.fetch_max(total, Ordering::SeqCst);
                }
                tokio::time::sleep(answer.delay).await;
                *state.in_flight.lock().unwrap().get_mut(&seen.path).unwrap() -= 1;
                let response = Response::builder()
                    .status(answer.code)
                    .header(http::header::CONTENT_TYPE, "application/json")
                    .body(Body::from(serde_json::to_vec(&answer.body).unwrap()))
                    .unwrap();
                respond.send_response(response);
            });
        }
    });
    (kube::Client::new(mock, "default"), fake)
}

struct Harness {
    writer: Writer,
    fake: Fake,
    feedback: mpsc::UnboundedReceiver<Feedback>,
    metrics: Metrics,
}

fn harness(config: WriterConfig, handler: Box<Handler>) -> Harness {
    let (client, fake) = start(handler);
    let (tx, feedback) = mpsc::unbounded_channel();
    let metrics = Metrics::register(&Registry::new()).unwrap();
    let writer = Writer::new(
        client,
        config,
        metrics.clone(),
        tx,
        CancellationToken::new(),
    );
    Harness {
        writer,
        fake,
        feedback,
        metrics,
    }
}

fn echo_all() -> Box<Handler> {
    Box::new(|seen, _| Answer::ok(echo(seen)))
}

fn fast() -> WriterConfig {
    WriterConfig {
        backoff: Backoff {
            min: Duration::from_millis(5),
            max: Duration::from_millis(20),
        },
        pool_status_interval: Duration::from_millis(100),
        ..WriterConfig::default()
    }
}

fn web() -> ServiceKey {
    ServiceKey::new("shop", "web")
}

fn set(ip: &str, mode: Option<IpMode>) -> StatusWrite {
    StatusWrite::Set(vec![Ingress {
        ip: ip.parse().unwrap(),
        ip_mode: mode,
    }])
}

fn mk_pool_status(assigned: u128) -> PoolStatusWrite {
    let mut counts = ironlb_crds::v1beta1::IPAddressPoolStatus::default();
    counts.set_counts(ironlb_crds::address::Family::V4, assigned, 8 - assigned);
    PoolStatusWrite {
        counts,
        conditions: vec![DesiredCondition {
            type_: "Ready",
            status: true,
            reason: "Ready",
            message: "the pool hands out addresses".into(),
            observed_generation: Some(4),
            since: None,
        }],
    }
}

fn pool_intent(assigned: u128) -> Intent {
    Intent::PoolStatus {
        namespace: "ironlb-system".into(),
        name: "main".into(),
        status: mk_pool_status(assigned),
    }
}

const STATUS_PATH: &str = "/api/v1/namespaces/shop/services/web/status";
const SERVICE_PATH: &str = "/api/v1/namespaces/shop/services/web";

fn is_forced_apply(seen: &Seen) -> bool {
    seen.method == "PATCH"
        && seen.content_type == "application/apply-patch+yaml"
        && seen.query.contains("fieldManager=ironlb-controller")
        && seen.query.contains("force=true")
}

#[tokio::test]
async fn allocation_writes_the_status_then_the_annotation_by_server_side_apply() {
    let h = harness(fast(), echo_all());
    h.writer.submit(Intent::ServiceStatus {
        key: web(),
        write: set("198.51.100.7", Some(IpMode::Proxy)),
    });
    h.writer.submit(Intent::PoolAnnotation {
        key: web(),
        pool: Some("main".into()),
    });
    h.writer.idle().await;

    let seen = h.fake.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0].path, STATUS_PATH);
    assert!(is_forced_apply(&seen[0]), "{:?}", seen[0]);
    assert_eq!(
        seen[0].body,
        json!({"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": "web", "namespace": "shop"},
               "status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.7", "ipMode": "Proxy"}]}}})
    );
    assert_eq!(seen[1].path, SERVICE_PATH);
    assert!(is_forced_apply(&seen[1]));
    assert_eq!(
        seen[1].body,
        json!({"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": "web", "namespace": "shop",
                            "annotations": {"ironlb.io/ip-allocated-from-pool": "main"}}})
    );
    assert_eq!(h.metrics.reconciles.with_label_values(&["ok"]).get(), 2);
    assert_eq!(h.metrics.reconcile_duration.get_sample_count(), 1);
}

#[tokio::test]
async fn a_clear_applies_without_the_fields_we_owned() {
    let h = harness(fast(), echo_all());
    h.writer.submit(Intent::ServiceStatus {
        key: web(),
        write: StatusWrite::Clear { exclusive: false },
    });
    h.writer.submit(Intent::PoolAnnotation {
        key: web(),
        pool: None,
    });
    h.writer.idle().await;
    let seen = h.fake.seen();
    assert_eq!(h.fake.paths(), vec![STATUS_PATH, SERVICE_PATH]);
    let stub = json!({"apiVersion": "v1", "kind": "Service",
                      "metadata": {"name": "web", "namespace": "shop"}});
    assert_eq!(seen[0].body, stub);
    assert_eq!(seen[1].body, stub);
    assert!(seen.iter().all(is_forced_apply));
}

#[tokio::test]
async fn an_exclusive_clear_also_drops_entries_another_manager_owns() {
    let h = harness(
        fast(),
        Box::new(|seen, _| {
            let mut object = echo(seen);
            if seen.content_type == "application/apply-patch+yaml" {
                // The server kept entries written by another field manager.
                object["status"] = json!({"loadBalancer": {"ingress": [{"ip": "198.51.100.99"}]}});
            }
            Answer::ok(object)
        }),
    );
    h.writer.submit(Intent::ServiceStatus {
        key: web(),
        write: StatusWrite::Clear { exclusive: true },
    });
    h.writer.idle().await;
    let seen = h.fake.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[1].path, STATUS_PATH);
    assert_eq!(seen[1].content_type, "application/merge-patch+json");
    assert_eq!(
        seen[1].body,
        json!({"status": {"loadBalancer": {"ingress": null}}})
    );
}

#[tokio::test]
async fn pool_status_is_applied_to_the_status_subresource() {
    let h = harness(fast(), echo_all());
    h.writer.submit(pool_intent(3));
    h.writer.idle().await;
    let seen = h.fake.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].path,
        "/apis/ironlb.io/v1beta1/namespaces/ironlb-system/ipaddresspools/main/status"
    );
    assert!(is_forced_apply(&seen[0]));
    let body = &seen[0].body;
    assert_eq!(body["apiVersion"], "ironlb.io/v1beta1");
    assert_eq!(body["kind"], "IPAddressPool");
    assert_eq!(body["status"]["assignedIPv4"], 3);
    assert_eq!(body["status"]["availableIPv4"], 5);
    assert_eq!(body["status"]["conditions"][0]["type"], "Ready");
    assert_eq!(body["status"]["conditions"][0]["observedGeneration"], 4);
    assert!(
        body["status"]["conditions"][0]["lastTransitionTime"].is_string(),
        "a changed condition is stamped: {body}"
    );
}

#[tokio::test]
async fn pool_status_writes_are_coalesced_and_end_with_the_latest_counts() {
    let config = WriterConfig {
        pool_status_interval: Duration::from_millis(500),
        ..fast()
    };
    let h = harness(config, echo_all());
    for assigned in 0..=8u128 {
        for _ in 0..100 {
            h.writer.submit(pool_intent(assigned));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    h.writer.idle().await;
    let seen = h.fake.seen();
    assert!(
        seen.len() <= 3,
        "900 intents over ~45 ms with a 500 ms interval: {} writes",
        seen.len()
    );
    assert_eq!(seen.last().unwrap().body["status"]["assignedIPv4"], 8);
}

#[tokio::test]
async fn one_object_is_never_written_twice_at_once_and_ends_with_the_latest_state() {
    let h = harness(
        fast(),
        Box::new(|seen, _| Answer::ok(echo(seen)).after(Duration::from_millis(15))),
    );
    for last_octet in 0..40 {
        h.writer.submit(Intent::ServiceStatus {
            key: web(),
            write: set(&format!("198.51.100.{last_octet}"), None),
        });
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    h.writer.idle().await;
    let seen = h.fake.seen();
    assert_eq!(h.fake.max_per_path.load(Ordering::SeqCst), 1);
    assert!(
        seen.len() < 40,
        "superseded writes were skipped: {}",
        seen.len()
    );
    assert_eq!(
        seen.last().unwrap().body["status"]["loadBalancer"]["ingress"][0]["ip"],
        "198.51.100.39"
    );
}

#[tokio::test]
async fn writes_run_concurrently_up_to_the_limit() {
    let config = WriterConfig {
        concurrency: 4,
        ..fast()
    };
    let h = harness(
        config,
        Box::new(|seen, _| Answer::ok(echo(seen)).after(Duration::from_millis(10))),
    );
    for i in 0..40 {
        h.writer.submit(Intent::ServiceStatus {
            key: ServiceKey::new("shop", format!("svc-{i}")),
            write: set("198.51.100.1", None),
        });
    }
    h.writer.idle().await;
    assert_eq!(h.fake.seen().len(), 40);
    assert_eq!(h.fake.max_total.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn failures_are_retried_with_backoff_and_counted() {
    let h = harness(
        fast(),
        Box::new(|seen, n| {
            if n < 2 {
                Answer::error(503, "the server is restarting")
            } else {
                Answer::ok(echo(seen))
            }
        }),
    );
    h.writer.submit(Intent::ServiceStatus {
        key: web(),
        write: set("198.51.100.7", None),
    });
    h.writer.idle().await;
    assert_eq!(h.fake.seen().len(), 3);
    assert_eq!(h.metrics.reconciles.with_label_values(&["error"]).get(), 2);
    assert_eq!(h.metrics.reconciles.with_label_values(&["ok"]).get(), 1);
}

#[tokio::test]
async fn a_newer_intent_replaces_a_failing_one() {
    let h = harness(
        fast(),
        Box::new(|seen, n| {
            if n == 0 {
                Answer::error(500, "boom").after(Duration::from_millis(10))
            } else {
                Answer::ok(echo(seen))
            }
        }),
    );
    h.writer.submit(Intent::ServiceStatus {
        key: web(),
        write: set("198.51.100.1", None),
    });
    tokio::time::sleep(Duration::from_millis(2)).await;
    h.writer.submit(Intent::ServiceStatus {
        key: web(),
        write: set("198.51.100.2", None),
    });
    h.writer.idle().await;
    let seen = h.fake.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(
        seen[1].body["status"]["loadBalancer"]["ingress"][0]["ip"],
        "198.51.100.2"
    );
}

#[tokio::test]
async fn rejected_writes_are_given_up_and_reported_and_deleted_objects_dropped() {
    let mut h = harness(
        fast(),
        Box::new(|seen, _| {
            if seen.path.contains("/services/invalid") {
                Answer::error(422, "Service \"invalid\" is invalid")
            } else {
                Answer::error(404, "not found")
            }
        }),
    );
    h.writer.submit(Intent::ServiceStatus {
        key: ServiceKey::new("shop", "invalid"),
        write: set("198.51.100.1", None),
    });
    h.writer.submit(Intent::PoolAnnotation {
        key: ServiceKey::new("shop", "gone"),
        pool: Some("main".into()),
    });
    h.writer.idle().await;
    assert_eq!(h.fake.seen().len(), 2, "no retries");
    assert_eq!(
        h.feedback.try_recv(),
        Ok(Feedback::StatusAbandoned(ServiceKey::new(
            "shop", "invalid"
        )))
    );
    assert!(
        h.feedback.try_recv().is_err(),
        "nothing for the deleted one"
    );
}

/// Captures log lines of the current thread.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn without_ip_mode_in_the_schema_the_writer_falls_back_once_and_logs_once() {
    let logs = Logs::default();
    let sink = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let mut h = harness(
        fast(),
        Box::new(|seen, _| {
            let has_mode = seen.body["status"]["loadBalancer"]["ingress"]
                .as_array()
                .is_some_and(|a| a.iter().any(|i| i.get("ipMode").is_some()));
            if has_mode {
                Answer::error(
                    500,
                    "failed to create typed patch object (/v1, Kind=Service): .status.loadBalancer.ingress[0].ipMode: field not declared in schema",
                )
            } else {
                Answer::ok(echo(seen))
            }
        }),
    );
    for name in ["a", "b", "c"] {
        h.writer.submit(Intent::ServiceStatus {
            key: ServiceKey::new("shop", name),
            write: set("198.51.100.1", Some(IpMode::Vip)),
        });
    }
    h.writer.idle().await;
    assert!(!h.writer.ip_mode());
    let seen = h.fake.seen();
    let written: Vec<&Seen> = seen
        .iter()
        .filter(|s| {
            s.body["status"]["loadBalancer"]["ingress"][0]
                .get("ipMode")
                .is_none()
        })
        .collect();
    assert_eq!(
        written.len(),
        3,
        "each Service written without ipMode: {seen:?}"
    );
    assert_eq!(h.feedback.try_recv(), Ok(Feedback::IpModeUnsupported));
    assert!(h.feedback.try_recv().is_err(), "told once");

    // Later writes go out without ipMode straight away.
    let before = h.fake.seen().len();
    h.writer.submit(Intent::ServiceStatus {
        key: ServiceKey::new("shop", "d"),
        write: set("198.51.100.2", Some(IpMode::Vip)),
    });
    h.writer.idle().await;
    assert_eq!(h.fake.seen().len(), before + 1);

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert_eq!(
        text.matches("does not know status.loadBalancer.ingress[].ipMode")
            .count(),
        1,
        "{text}"
    );
}

#[tokio::test]
async fn events_are_created_with_the_events_api() {
    let h = harness(fast(), echo_all());
    h.writer.submit(Intent::Event(EventIntent {
        regarding: Regarding {
            kind: crate::brain::ObjectKind::Service,
            namespace: "shop".into(),
            name: "web".into(),
            uid: Some("u-1".into()),
        },
        kind: EventKind::Normal,
        reason: ironlb_crds::events::IP_ALLOCATED,
        action: "Allocate",
        note: "Assigned 198.51.100.7 from IPAddressPool \"main\"".into(),
    }));
    h.writer.idle().await;
    let seen = h.fake.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "POST");
    assert_eq!(
        seen[0].path,
        "/apis/events.k8s.io/v1/namespaces/shop/events"
    );
    let body = &seen[0].body;
    assert_eq!(body["reason"], "IPAllocated");
    assert_eq!(body["type"], "Normal");
    assert_eq!(body["reportingController"], "ironlb-controller");
    assert_eq!(body["regarding"]["kind"], "Service");
    assert_eq!(body["regarding"]["uid"], "u-1");
    assert_eq!(
        body["note"],
        "Assigned 198.51.100.7 from IPAddressPool \"main\""
    );
}

#[tokio::test]
async fn shutdown_stops_pending_retries() {
    let h = harness(
        WriterConfig {
            backoff: Backoff {
                min: Duration::from_secs(60),
                max: Duration::from_secs(60),
            },
            ..fast()
        },
        Box::new(|_, _| Answer::error(503, "down")),
    );
    h.writer.submit(Intent::ServiceStatus {
        key: web(),
        write: set("198.51.100.7", None),
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    tokio::time::timeout(Duration::from_secs(2), h.writer.shutdown())
        .await
        .expect("shutdown does not wait for the backoff");
    h.writer.submit(Intent::ServiceStatus {
        key: web(),
        write: set("198.51.100.8", None),
    });
    assert_eq!(h.fake.seen().len(), 1);
}

// Runs on tokio's paused clock: the fake API's delays are virtual, so the bound below checks
// scheduling order, not the speed of a loaded machine.
#[tokio::test(start_paused = true)]
async fn background_writes_never_hold_up_status_writes() {
    let config = WriterConfig {
        concurrency: 1,
        background_concurrency: 1,
        ..fast()
    };
    let h = harness(
        config,
        Box::new(|seen, _| {
            let delay = if seen.path.ends_with("/status") {
                0
            } else {
                100
            };
            Answer::ok(echo(seen)).after(Duration::from_millis(delay))
        }),
    );
    for i in 0..3 {
        h.writer.submit(Intent::PoolAnnotation {
            key: ServiceKey::new("shop", format!("slow-{i}")),
            pool: Some("main".into()),
        });
    }
    tokio::time::sleep(Duration::from_millis(10)).await;
    let started = Instant::now();
    h.writer.submit(Intent::ServiceStatus {
        key: web(),
        write: set("198.51.100.7", None),
    });
    while !h.fake.paths().iter().any(|p| p == STATUS_PATH) {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert!(
        started.elapsed() < Duration::from_millis(90),
        "the status write waited for annotation writes: {:?}",
        started.elapsed()
    );
    h.writer.idle().await;
    assert_eq!(h.fake.max_total.load(Ordering::SeqCst), 2);
}
