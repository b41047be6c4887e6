//! The leader's work end to end against an in-memory API ([`fake_api::FakeApi`]): real
//! watchers, the real brain and the real writer, no cluster.

mod fake_api;

use std::time::Duration;

use prometheus::Registry;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::writer::Backoff;
use fake_api::{FakeApi, Kind};

const NS: &str = "ironlb-system";

fn service(name: &str, created: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"),
                     "creationTimestamp": created},
        "spec": {"type": "LoadBalancer", "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
                 "ports": [{"port": 80, "protocol": "TCP"}]}
    })
}

fn pool(name: &str, addresses: &[&str], created: &str) -> Value {
    json!({
        "apiVersion": "ironlb.io/v1beta1", "kind": "IPAddressPool",
        "metadata": {"name": name, "namespace": NS, "uid": format!("uid-{name}"),
                     "generation": 1, "creationTimestamp": created},
        "spec": {"addresses": addresses}
    })
}

fn namespace(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
}

struct Leader {
    cancel: CancellationToken,
    task: JoinHandle<()>,
    metrics: Metrics,
}

impl Leader {
    fn start(api: &FakeApi) -> Leader {
        let metrics = Metrics::register(&Registry::new()).unwrap();
        let ctx = LeaderContext {
            client: api.client(),
            namespace: NS.into(),
            brain: BrainConfig::default(),
            writer: WriterConfig {
                pool_status_interval: Duration::from_millis(20),
                backoff: Backoff {
                    min: Duration::from_millis(5),
                    max: Duration::from_millis(50),
                },
                ..WriterConfig::default()
            },
            metrics: metrics.clone(),
        };
        let cancel = CancellationToken::new();
        let task = tokio::spawn(lead(ctx, cancel.clone()));
        Leader {
            cancel,
            task,
            metrics,
        }
    }

    async fn stop(self) {
        self.cancel.cancel();
        tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .expect("the leader's work stops promptly")
            .unwrap();
    }

    fn in_use(&self, pool: &str) -> f64 {
        self.metrics
            .addresses_in_use
            .with_label_values(&[pool, "ipv4"])
            .get()
    }
}

/// A cluster with the default namespaces and the given pools.
fn cluster(pools: &[(&str, &[&str])]) -> FakeApi {
    let api = FakeApi::default();
    for ns in ["default", NS] {
        api.create(Kind::Namespace, namespace(ns));
    }
    for (i, (name, addresses)) in pools.iter().enumerate() {
        api.create(
            Kind::Pool,
            pool(name, addresses, &format!("2024-01-01T00:00:0{i}Z")),
        );
    }
    api
}

fn pool_assigned(api: &FakeApi, name: &str) -> Option<i64> {
    api.get(Kind::Pool, NS, name)
        .and_then(|p| p["status"]["assigned"].as_i64())
}

fn condition(api: &FakeApi, pool: &str, type_: &str) -> Option<String> {
    let object = api.get(Kind::Pool, NS, pool)?;
    object["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
        .and_then(|c| c["status"].as_str().map(str::to_string))
}

#[tokio::test]
async fn allocates_writes_status_annotation_pool_status_and_events_and_ignores_other_classes() {
    let api = cluster(&[("main", &["198.51.100.0/29"])]);
    api.create(Kind::Service, service("web", "2024-01-02T00:00:00Z"));
    let mut other = service("other", "2024-01-02T00:00:00Z");
    other["spec"]["loadBalancerClass"] = json!("example.com/other");
    api.create(Kind::Service, other);

    let leader = Leader::start(&api);
    api.eventually("web's EXTERNAL-IP", |a| {
        a.ingress("default", "web") == ["198.51.100.0"]
    })
    .await;
    api.eventually("the annotation", |a| {
        a.get(Kind::Service, "default", "web").unwrap()["metadata"]["annotations"]
            ["ironlb.io/ip-allocated-from-pool"]
            == "main"
    })
    .await;
    api.eventually("pool counts", |a| pool_assigned(a, "main") == Some(1))
        .await;
    api.eventually("the IPAllocated event", |a| {
        a.events()
            .contains(&("IPAllocated".to_string(), "web".to_string()))
    })
    .await;
    assert_eq!(condition(&api, "main", "Ready").as_deref(), Some("True"));
    assert!(
        api.writes()
            .iter()
            .all(|w| !w.path.contains("/services/other")),
        "another class's Service is never written"
    );
    let status_writes: Vec<_> = api
        .writes()
        .into_iter()
        .filter(|w| w.path == "/api/v1/namespaces/default/services/web/status")
        .collect();
    assert_eq!(
        status_writes.len(),
        1,
        "one write, no echo loop: {status_writes:#?}"
    );
    assert_eq!(status_writes[0].method, "PATCH");
    assert_eq!(
        status_writes[0].content_type,
        "application/apply-patch+yaml"
    );
    assert_eq!(
        status_writes[0].body["status"]["loadBalancer"]["ingress"],
        json!([{"ip": "198.51.100.0", "ipMode": "Proxy"}])
    );
    assert!(api.ingress("default", "other").is_empty());
    assert_eq!(leader.in_use("main"), 1.0);

    // A Service created while leading gets the next address.
    api.create(Kind::Service, service("api", "2024-01-03T00:00:00Z"));
    api.eventually("api's EXTERNAL-IP", |a| {
        a.ingress("default", "api") == ["198.51.100.1"]
    })
    .await;
    leader.stop().await;
}

#[tokio::test]
async fn releases_on_type_change_and_reassigns_when_the_pool_is_deleted() {
    let api = cluster(&[("a", &["198.51.100.0/30"]), ("b", &["198.51.100.8/30"])]);
    api.create(Kind::Service, service("web", "2024-01-02T00:00:00Z"));
    let leader = Leader::start(&api);
    api.eventually("web in a", |a| {
        a.ingress("default", "web") == ["198.51.100.0"]
    })
    .await;

    api.delete(Kind::Pool, NS, "a");
    api.eventually("web moved to b", |a| {
        a.ingress("default", "web") == ["198.51.100.8"]
    })
    .await;
    api.eventually("IPReleased", |a| {
        a.events()
            .contains(&("IPReleased".to_string(), "web".to_string()))
    })
    .await;

    let mut cluster_ip = service("web", "2024-01-02T00:00:00Z");
    cluster_ip["spec"]["type"] = json!("ClusterIP");
    api.update(Kind::Service, cluster_ip);
    api.eventually("status cleared", |a| a.ingress("default", "web").is_empty())
        .await;
    api.eventually("annotation removed", |a| {
        a.get(Kind::Service, "default", "web").unwrap()["metadata"]["annotations"]
            .get("ironlb.io/ip-allocated-from-pool")
            .is_none()
    })
    .await;
    api.eventually("pool b empty", |a| pool_assigned(a, "b") == Some(0))
        .await;
    leader.stop().await;
}

#[tokio::test]
async fn a_conflicting_pool_is_reported_and_not_used() {
    let api = cluster(&[
        ("old", &["198.51.100.0/31"]),
        ("young", &["198.51.100.1/32", "198.51.100.8/30"]),
    ]);
    for (i, name) in ["s1", "s2", "s3"].into_iter().enumerate() {
        api.create(
            Kind::Service,
            service(name, &format!("2024-01-02T00:00:0{i}Z")),
        );
    }
    let leader = Leader::start(&api);
    api.eventually("young in conflict", |a| {
        condition(a, "young", "Conflict").as_deref() == Some("True")
    })
    .await;
    api.eventually("PoolConflict", |a| {
        a.events()
            .contains(&("PoolConflict".to_string(), "young".to_string()))
    })
    .await;
    api.eventually("two services served", |a| {
        a.ingress("default", "s1") == ["198.51.100.0"]
            && a.ingress("default", "s2") == ["198.51.100.1"]
    })
    .await;
    api.eventually("AllocationFailed for s3", |a| {
        a.events()
            .contains(&("AllocationFailed".to_string(), "s3".to_string()))
    })
    .await;
    assert!(
        api.ingress("default", "s3").is_empty(),
        "young's addresses are never used"
    );
    assert_eq!(condition(&api, "young", "Ready").as_deref(), Some("False"));
    leader.stop().await;
}

#[tokio::test]
async fn a_restart_with_existing_statuses_writes_nothing() {
    let api = cluster(&[("main", &["198.51.100.0/29"])]);
    for (i, name) in ["a", "b", "c"].into_iter().enumerate() {
        api.create(
            Kind::Service,
            service(name, &format!("2024-01-02T00:00:0{i}Z")),
        );
    }
    let first = Leader::start(&api);
    api.eventually("all settled", |a| {
        pool_assigned(a, "main") == Some(3)
            && ["a", "b", "c"].iter().all(|n| {
                a.get(Kind::Service, "default", n).unwrap()["metadata"]["annotations"]
                    ["ironlb.io/ip-allocated-from-pool"]
                    == "main"
            })
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    first.stop().await;
    let before = api.writes().len();
    let events_before = api.events().len();
    let shown: Vec<Vec<String>> = ["a", "b", "c"]
        .iter()
        .map(|n| api.ingress("default", n))
        .collect();

    let second = Leader::start(&api);
    // The gauges are set once the new leader has synced.
    for _ in 0..200 {
        if second.in_use("main") == 3.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(second.in_use("main"), 3.0, "the new leader synced");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(api.writes().len(), before, "{:#?}", &api.writes()[before..]);
    assert_eq!(api.events().len(), events_before);
    let after: Vec<Vec<String>> = ["a", "b", "c"]
        .iter()
        .map(|n| api.ingress("default", n))
        .collect();
    assert_eq!(after, shown, "no IP moved");
    second.stop().await;
}

#[tokio::test]
async fn a_410_relist_releases_services_deleted_while_the_watch_was_down() {
    let api = cluster(&[("tiny", &["198.51.100.0/31"])]);
    for (i, name) in ["a", "b", "c"].into_iter().enumerate() {
        api.create(
            Kind::Service,
            service(name, &format!("2024-01-02T00:00:0{i}Z")),
        );
    }
    let leader = Leader::start(&api);
    api.eventually("a and b served", |a| {
        !a.ingress("default", "a").is_empty() && !a.ingress("default", "b").is_empty()
    })
    .await;
    assert!(api.ingress("default", "c").is_empty(), "the pool is full");

    // "a" is deleted while the watch is down; the watch then expires.
    let freed = api.ingress("default", "a");
    api.delete_unseen(Kind::Service, "default", "a");
    api.expire_watches(Kind::Service);
    api.eventually("c gets a's address after the relist", |a| {
        a.ingress("default", "c") == freed
    })
    .await;
    assert!(
        leader.metrics.watch_restarts.get() >= 1,
        "the failed watch is counted"
    );
    leader.stop().await;
}
