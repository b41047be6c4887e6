//! kube-rs (the client ironlb uses) against `lab-apiserver`, inside a network namespace of the
//! test's own: watchers across a SIGKILL and restart (410 Gone, relist), optimistic
//! concurrency, server-side apply conflicts, the status subresource, events through the
//! Recorder, an emulated old server without `ipMode`, streaming lists and bookmarks, paging,
//! selectors, finalizers, and a 1,000-Service burst (timed, printed, not asserted).

mod apiserver_common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use apiserver_common::*;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Event as CoreEvent, Service};
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Resource, ResourceExt};
use serde_json::json;

fn code(e: &kube::Error) -> u16 {
    match e {
        kube::Error::Api(s) => s.code,
        _ => 0,
    }
}

fn message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => s.message.clone(),
        other => other.to_string(),
    }
}

fn service(name: &str) -> Service {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"type": "LoadBalancer", "selector": {"app": name}, "ports": [{"port": 80, "targetPort": 8080}]}
    }))
    .unwrap()
}

async fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[test]
fn watcher_relists_after_a_restart_and_objects_survive_sigkill() {
    let ns = TestNetns::new("krestart");
    let dir = scratch("krestart");
    let mut server = ApiServerProcess::start(&ns, dir.path(), &[]);
    let kubeconfig = server.kubeconfig.clone();
    let server = ns.run(move || async move {
        let c = client(&kubeconfig).await;
        let api: Api<Service> = Api::default_namespaced(c.clone());
        let a = api
            .create(&PostParams::default(), &service("a"))
            .await
            .unwrap();
        let rv_before: u64 = a.resource_version().unwrap().parse().unwrap();

        let (reader, writer) = reflector::store();
        let inits = Arc::new(AtomicUsize::new(0));
        let inits2 = inits.clone();
        let stream = watcher(api.clone(), watcher::Config::default())
            .default_backoff()
            .inspect_ok(move |e| {
                if matches!(e, watcher::Event::Init) {
                    inits2.fetch_add(1, Ordering::SeqCst);
                }
            });
        let task = tokio::spawn(
            reflector(writer, stream)
                .applied_objects()
                .for_each(|_| async {}),
        );
        wait_for("the reflector to list a", Duration::from_secs(10), || {
            reader.state().iter().any(|s| s.name_any() == "a")
        })
        .await;

        server.kill();
        tokio::time::sleep(Duration::from_millis(300)).await;
        server.restart();

        let c2 = client(&server.kubeconfig).await;
        let api2: Api<Service> = Api::default_namespaced(c2);
        let still = api2.get("a").await.expect("objects survive SIGKILL");
        assert_eq!(still.spec, a.spec);
        let b = api2
            .create(&PostParams::default(), &service("b"))
            .await
            .unwrap();
        assert!(
            b.resource_version().unwrap().parse::<u64>().unwrap() > rv_before,
            "resourceVersions keep increasing after a restart"
        );

        // A watch from before the restart is answered with 410 Gone, as an ERROR event.
        let mut old = api2
            .watch(&WatchParams::default(), &rv_before.to_string())
            .await
            .unwrap()
            .boxed();
        match old.next().await {
            Some(Ok(WatchEvent::Error(e))) => assert_eq!(e.code, 410, "{e:?}"),
            other => panic!("expected a 410 ERROR event, got {other:?}"),
        }

        wait_for(
            "the reflector to see b after relisting",
            Duration::from_secs(30),
            || reader.state().iter().any(|s| s.name_any() == "b"),
        )
        .await;
        assert!(inits.load(Ordering::SeqCst) >= 2, "the watcher relisted");
        task.abort();
        server
    });
    let mut server = server;
    assert!(server.terminate().success(), "SIGTERM is a clean exit");
}

#[test]
fn optimistic_concurrency_and_leases() {
    let ns = TestNetns::new("kocc");
    let dir = scratch("kocc");
    let server = ApiServerProcess::start(&ns, dir.path(), &[]);
    let kubeconfig = server.kubeconfig.clone();
    ns.run(move || async move {
        let c = client(&kubeconfig).await;
        let cms: Api<ConfigMap> = Api::default_namespaced(c.clone());
        let mut cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "cfg"}, "data": {"a": "1"}})).unwrap();
        let created = cms.create(&PostParams::default(), &cm).await.unwrap();
        let err = cms.create(&PostParams::default(), &cm).await.unwrap_err();
        assert_eq!(code(&err), 409);
        assert!(message(&err).contains("already exists"), "{err}");

        cm = created.clone();
        cm.data.as_mut().unwrap().insert("a".into(), "2".into());
        let updated = cms.replace("cfg", &PostParams::default(), &cm).await.unwrap();
        assert_ne!(updated.resource_version(), created.resource_version());
        // The same stale object again: 409 Conflict.
        let err = cms.replace("cfg", &PostParams::default(), &cm).await.unwrap_err();
        assert_eq!(code(&err), 409);
        assert!(message(&err).contains("the object has been modified"), "{err}");
        // A no-op update keeps the resourceVersion.
        let same = cms.replace("cfg", &PostParams::default(), &updated).await.unwrap();
        assert_eq!(same.resource_version(), updated.resource_version());
        let err = cms.get("missing").await.unwrap_err();
        assert_eq!(code(&err), 404);

        let leases: Api<Lease> = Api::namespaced(c.clone(), "kube-system");
        let lease: Lease = serde_json::from_value(json!({"metadata": {"name": "ironlb-controller"},
            "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15, "acquireTime": "2030-01-01T00:00:00.000000Z", "renewTime": "2030-01-01T00:00:00.000000Z"}})).unwrap();
        let l1 = leases.create(&PostParams::default(), &lease).await.unwrap();
        let mut by_b = l1.clone();
        by_b.spec.as_mut().unwrap().holder_identity = Some("b".into());
        let mut by_c = l1.clone();
        by_c.spec.as_mut().unwrap().holder_identity = Some("c".into());
        leases.replace("ironlb-controller", &PostParams::default(), &by_b).await.unwrap();
        let err = leases.replace("ironlb-controller", &PostParams::default(), &by_c).await.unwrap_err();
        assert_eq!(code(&err), 409, "only one candidate wins a lease round");
        assert_eq!(leases.get("ironlb-controller").await.unwrap().spec.unwrap().holder_identity.as_deref(), Some("b"));
        let mut bad = l1.clone();
        bad.metadata.resource_version = None;
        bad.spec.as_mut().unwrap().lease_duration_seconds = Some(-1);
        let err = leases.replace("ironlb-controller", &PostParams::default(), &bad).await.unwrap_err();
        assert_eq!(code(&err), 422, "{err}");
    });
    drop(server);
}

#[test]
fn server_side_apply_conflicts_status_and_events() {
    let ns = TestNetns::new("kssa");
    let dir = scratch("kssa");
    let server = ApiServerProcess::start(&ns, dir.path(), &[]);
    let kubeconfig = server.kubeconfig.clone();
    ns.run(move || async move {
        let c = client(&kubeconfig).await;
        let svcs: Api<Service> = Api::default_namespaced(c.clone());
        let cfg = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
                         "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}});
        let svc = svcs.patch("web", &PatchParams::apply("team-a"), &Patch::Apply(&cfg)).await.unwrap();
        assert!(svc.spec.as_ref().unwrap().cluster_ip.is_some());
        let other = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}, "spec": {"type": "NodePort", "ports": [{"port": 80}]}});
        let err = svcs.patch("web", &PatchParams::apply("team-b"), &Patch::Apply(&other)).await.unwrap_err();
        assert_eq!(code(&err), 409);
        assert!(message(&err).contains("conflict with \"team-a\"") && message(&err).contains(".spec.type"), "{err}");
        let forced = svcs.patch("web", &PatchParams::apply("team-b").force(), &Patch::Apply(&other)).await.unwrap();
        assert_eq!(forced.spec.as_ref().unwrap().type_.as_deref(), Some("NodePort"));

        // Status: written through /status with server-side apply, invisible to main-resource writes.
        let status = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
                            "status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.7", "ipMode": "Proxy"}]}}});
        let with_status = svcs.patch_status("web", &PatchParams::apply("ironlb-controller").force(), &Patch::Apply(&status)).await.unwrap();
        let ingress = &with_status.status.as_ref().unwrap().load_balancer.as_ref().unwrap().ingress.as_ref().unwrap()[0];
        assert_eq!(ingress.ip.as_deref(), Some("198.51.100.7"));
        assert_eq!(ingress.ip_mode.as_deref(), Some("Proxy"));
        assert_eq!(with_status.spec, forced.spec);
        let wipe = json!({"status": {"loadBalancer": {"ingress": []}}, "spec": {"sessionAffinity": "ClientIP"}});
        let after = svcs.patch("web", &PatchParams::default(), &Patch::Merge(&wipe)).await.unwrap();
        assert_eq!(after.status, with_status.status, "main-resource writes do not change status");
        assert_eq!(after.spec.unwrap().session_affinity.as_deref(), Some("ClientIP"));
        let bad = json!({"apiVersion": "v1", "kind": "Service", "status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.7", "ipMode": "Fast"}]}}});
        let err = svcs.patch_status("web", &PatchParams::apply("ironlb-controller").force(), &Patch::Apply(&bad)).await.unwrap_err();
        assert_eq!(code(&err), 422, "{err}");

        // Events through kube's Recorder, read back as core/v1 events by field selector.
        let recorder = Recorder::new(c.clone(), Reporter { controller: "ironlb-test".into(), instance: None });
        let reference = svc.object_ref(&());
        let ev = Event { type_: EventType::Normal, reason: "IPAllocated".into(), note: Some("Assigned IP 198.51.100.7".into()), action: "Allocate".into(), secondary: None };
        recorder.publish(&ev, &reference).await.unwrap();
        recorder.publish(&ev, &reference).await.unwrap();
        let events: Api<CoreEvent> = Api::default_namespaced(c.clone());
        let listed = events.list(&ListParams::default().fields("involvedObject.name=web,involvedObject.kind=Service")).await.unwrap();
        assert_eq!(listed.items.len(), 1, "a repeated event is one object with a series");
        let e = &listed.items[0];
        assert_eq!(e.reason.as_deref(), Some("IPAllocated"));
        assert_eq!(e.message.as_deref(), Some("Assigned IP 198.51.100.7"));
        assert_eq!(e.series.as_ref().and_then(|s| s.count), Some(2));
        let none = events.list(&ListParams::default().fields("involvedObject.name=other")).await.unwrap();
        assert!(none.items.is_empty());
        let err = events.list(&ListParams::default().fields("spec.bogus=1")).await.unwrap_err();
        assert_eq!(code(&err), 400);
    });
    drop(server);
}

#[test]
fn emulated_1_27_has_no_ip_mode() {
    let ns = TestNetns::new("kold");
    let dir = scratch("kold");
    let server = ApiServerProcess::start(&ns, dir.path(), &["--emulate-version", "1.27"]);
    let kubeconfig = server.kubeconfig.clone();
    ns.run(move || async move {
        let c = client(&kubeconfig).await;
        let v = c.apiserver_version().await.unwrap();
        assert_eq!((v.major.as_str(), v.minor.as_str()), ("1", "27"));
        let svcs: Api<Service> = Api::default_namespaced(c.clone());
        svcs.create(&PostParams::default(), &service("web")).await.unwrap();
        let with_mode = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
                               "status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.7", "ipMode": "VIP"}]}}});
        let err = svcs.patch_status("web", &PatchParams::apply("ironlb-controller").force(), &Patch::Apply(&with_mode)).await.unwrap_err();
        assert_eq!(code(&err), 500, "{err}");
        assert!(message(&err).contains(".status.loadBalancer.ingress[0].ipMode: field not declared in schema"), "{err}");
        let merged = svcs.patch_status("web", &PatchParams::default(), &Patch::Merge(&json!({"status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.7", "ipMode": "VIP"}]}}}))).await.unwrap();
        let ingress = &merged.status.unwrap().load_balancer.unwrap().ingress.unwrap()[0];
        assert_eq!(ingress.ip.as_deref(), Some("198.51.100.7"));
        assert_eq!(ingress.ip_mode, None, "other writes drop the unknown field");
        let without = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}, "status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.8"}]}}});
        svcs.patch_status("web", &PatchParams::apply("ironlb-controller").force(), &Patch::Apply(&without)).await.unwrap();
    });
    drop(server);
}

#[test]
fn streaming_lists_bookmarks_paging_selectors_and_finalizers() {
    let ns = TestNetns::new("kwatch");
    let dir = scratch("kwatch");
    let server = ApiServerProcess::start(&ns, dir.path(), &["--watch-bookmark-interval", "1"]);
    let kubeconfig = server.kubeconfig.clone();
    ns.run(move || async move {
        let c = client(&kubeconfig).await;
        let cms: Api<ConfigMap> = Api::default_namespaced(c.clone());
        for i in 0..25 {
            let tier = if i % 2 == 0 { "a" } else { "b" };
            let mut labels = json!({"app": "web", "tier": tier});
            if i % 5 == 0 {
                labels["legacy"] = json!("true");
            }
            let cm: ConfigMap = serde_json::from_value(
                json!({"metadata": {"name": format!("cm-{i:02}"), "labels": labels}}),
            )
            .unwrap();
            cms.create(&PostParams::default(), &cm).await.unwrap();
        }
        // Paging.
        let mut names = Vec::new();
        let mut lp = ListParams::default().labels("app=web").limit(10);
        loop {
            let page = cms.list(&lp).await.unwrap();
            names.extend(page.items.iter().map(|c| c.name_any()));
            match page.metadata.continue_.filter(|c| !c.is_empty()) {
                Some(token) => lp = lp.continue_token(&token),
                None => break,
            }
        }
        assert_eq!(names.len(), 25);
        assert_eq!(names.iter().collect::<BTreeSet<_>>().len(), 25);
        // Selectors.
        let sel = cms
            .list(&ListParams::default().labels("app=web,tier in (a),!legacy"))
            .await
            .unwrap();
        assert_eq!(sel.items.len(), 10, "13 in tier a, 3 of them legacy");
        let err = cms
            .list(&ListParams::default().labels("tier in (a"))
            .await
            .unwrap_err();
        assert_eq!(code(&err), 400);

        // A streaming list (sendInitialEvents) delivers the current objects, then changes.
        let (reader, writer) = reflector::store();
        let stream = watcher(
            cms.clone(),
            watcher::Config::default()
                .labels("tier=b")
                .streaming_lists(),
        )
        .default_backoff();
        let task = tokio::spawn(
            reflector(writer, stream)
                .applied_objects()
                .for_each(|_| async {}),
        );
        wait_for("the streamed initial list", Duration::from_secs(10), || {
            reader.state().len() == 12
        })
        .await;
        let extra: ConfigMap =
            serde_json::from_value(json!({"metadata": {"name": "late", "labels": {"tier": "b"}}}))
                .unwrap();
        cms.create(&PostParams::default(), &extra).await.unwrap();
        wait_for("the late object", Duration::from_secs(10), || {
            reader.state().len() == 13
        })
        .await;
        // Relabelling out of the selector is a delete for this watcher.
        cms.patch(
            "late",
            &PatchParams::default(),
            &Patch::Merge(&json!({"metadata": {"labels": {"tier": "c"}}})),
        )
        .await
        .unwrap();
        wait_for(
            "the relabelled object to leave",
            Duration::from_secs(10),
            || reader.state().len() == 12,
        )
        .await;
        task.abort();

        // Bookmarks arrive periodically on an idle watch.
        let rv = cms
            .list(&ListParams::default().limit(1))
            .await
            .unwrap()
            .metadata
            .resource_version
            .unwrap();
        let mut w = cms
            .watch(&WatchParams::default().timeout(20), &rv)
            .await
            .unwrap()
            .boxed();
        let got = tokio::time::timeout(Duration::from_secs(5), w.next())
            .await
            .expect("an event within 5s");
        assert!(matches!(got, Some(Ok(WatchEvent::Bookmark(_)))), "{got:?}");

        // Finalizers hold a deleted object until they are removed.
        let held: ConfigMap = serde_json::from_value(
            json!({"metadata": {"name": "held", "finalizers": ["example.com/hold"]}}),
        )
        .unwrap();
        cms.create(&PostParams::default(), &held).await.unwrap();
        cms.delete("held", &DeleteParams::default()).await.unwrap();
        let pending = cms.get("held").await.unwrap();
        assert!(pending.metadata.deletion_timestamp.is_some());
        let err = cms
            .patch(
                "held",
                &PatchParams::default(),
                &Patch::Merge(
                    &json!({"metadata": {"finalizers": ["example.com/hold", "example.com/more"]}}),
                ),
            )
            .await
            .unwrap_err();
        assert_eq!(code(&err), 422, "no new finalizers while deleting");
        cms.patch(
            "held",
            &PatchParams::default(),
            &Patch::Merge(&json!({"metadata": {"finalizers": null}})),
        )
        .await
        .unwrap();
        assert_eq!(code(&cms.get("held").await.unwrap_err()), 404);

        // generateName and deletecollection.
        let generated: ConfigMap = serde_json::from_value(
            json!({"metadata": {"generateName": "gen-", "labels": {"batch": "x"}}}),
        )
        .unwrap();
        let made = cms
            .create(&PostParams::default(), &generated)
            .await
            .unwrap();
        assert!(made.name_any().starts_with("gen-") && made.name_any().len() == 9);
        cms.delete_collection(
            &DeleteParams::default(),
            &ListParams::default().labels("tier=a"),
        )
        .await
        .unwrap();
        assert!(
            cms.list(&ListParams::default().labels("tier=a"))
                .await
                .unwrap()
                .items
                .is_empty()
        );
        assert_eq!(
            cms.list(&ListParams::default().labels("batch=x"))
                .await
                .unwrap()
                .items
                .len(),
            1
        );
    });
    drop(server);
}

#[test]
fn burst_of_1000_load_balancer_services() {
    let ns = TestNetns::new("kburst");
    let dir = scratch("kburst");
    // IPv6 only: a /108 holds the 1,000 cluster IPs (no packet is ever sent to them).
    let server = ApiServerProcess::start(
        &ns,
        dir.path(),
        &["--service-cluster-ip-range", "2001:db8:fffe::/108"],
    );
    let kubeconfig = server.kubeconfig.clone();
    let cpu_before = server.cpu_seconds();
    ns.run(move || async move {
        let c = client(&kubeconfig).await;
        let svcs: Api<Service> = Api::default_namespaced(c.clone());
        let started = Instant::now();
        let results: Vec<(Service, Duration)> = futures::stream::iter(0..1000)
            .map(|i| {
                let svcs = svcs.clone();
                async move {
                    let t = Instant::now();
                    let s = svcs.create(&PostParams::default(), &service(&format!("svc-{i:04}"))).await.unwrap();
                    (s, t.elapsed())
                }
            })
            .buffer_unordered(64)
            .collect()
            .await;
        let total = started.elapsed();
        let mut lat: Vec<Duration> = results.iter().map(|(_, d)| *d).collect();
        lat.sort();
        let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
        println!(
            "lab-apiserver: 1000 LoadBalancer Services created in {:.0} ms ({:.0}/s, 64 in flight); per create p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            total.as_secs_f64() * 1e3,
            1000.0 / total.as_secs_f64(),
            pct(0.5).as_secs_f64() * 1e3,
            pct(0.99).as_secs_f64() * 1e3,
            lat.last().unwrap().as_secs_f64() * 1e3
        );
        // Server-side time per create, from the stand-in's own metrics.
        let metrics = c.request_text(http::Request::get("/metrics").body(Vec::new()).unwrap()).await.unwrap();
        let value = |name: &str| -> f64 {
            metrics
                .lines()
                .find(|l| l.starts_with(name) && l.contains("resource=\"services\"") && l.contains("verb=\"create\""))
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|v| v.parse().ok())
                .unwrap_or(f64::NAN)
        };
        let (sum, count) = (value("apiserver_request_duration_seconds_sum"), value("apiserver_request_duration_seconds_count"));
        println!("lab-apiserver: server-side time per Service create (mean over {count}): {:.2} ms", sum / count * 1e3);
        let ips: BTreeSet<String> = results.iter().map(|(s, _)| s.spec.as_ref().unwrap().cluster_ip.clone().unwrap()).collect();
        assert_eq!(ips.len(), 1000, "every Service has its own cluster IP");
        let node_ports: BTreeSet<i32> = results.iter().map(|(s, _)| s.spec.as_ref().unwrap().ports.as_ref().unwrap()[0].node_port.unwrap()).collect();
        assert_eq!(node_ports.len(), 1000, "and its own node port");
    });
    let cpu = server.cpu_seconds() - cpu_before;
    println!(
        "lab-apiserver: server CPU time for the burst: {:.0} ms, {:.0} µs per Service create (TLS and JSON included)",
        cpu * 1e3,
        cpu * 1e3
    );
    drop(server);
}
