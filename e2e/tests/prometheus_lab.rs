//! A real Prometheus (Debian's package) scrapes ironlb in the lab, configured as the chart's
//! ServiceMonitors and PodMonitors would configure it through the Prometheus Operator, and
//! evaluates the chart's PrometheusRule.
//!
//! The scrape jobs come from the rendered monitors (`e2e::chart::monitors`: Service port ->
//! targetPort -> container port, path, scheme), one target per lab host running the workload:
//! the controller in `cp`, a speaker on every node. If the chart's ports or paths did not match
//! where the binaries serve, targets would be down. The only deviation from the chart is the
//! scrape interval (1 s instead of 30 s), to keep the test short.
//!
//! Prometheus listens on the control plane's lab address only, and is stopped (its data
//! removed with the lab directory) when the test ends, even on failure.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use e2e::chart::helm::NAMESPACE;
use e2e::chart::monitors::{ScrapeEndpoint, endpoints};
use e2e::chart::prometheus::{Job, Prometheus, config};
use e2e::chart::rules::rule_file;
use e2e::chart::{Helm, Manifests};
use e2e::harness::{Cluster, wait_for};

const POOL: &str = r#"apiVersion: ironlb.io/v1beta1
kind: IPAddressPool
metadata:
  name: prom
  namespace: ironlb-system
spec:
  addresses:
  - 198.51.100.60-198.51.100.69
---
apiVersion: ironlb.io/v1beta1
kind: L2Advertisement
metadata:
  name: prom
  namespace: ironlb-system
spec:
  ipAddressPools: [prom]
"#;

const SCRAPE_INTERVAL: Duration = Duration::from_secs(1);

fn service(name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: default\nspec:\n  type: LoadBalancer\n  selector:\n    app: web\n  ports:\n  - port: 80\n    targetPort: 8080\n"
    )
}

/// The lab hosts running each workload's pods: the controller on the control plane, a speaker
/// on every node with a speaker process.
fn hosts_of(cluster: &Cluster, workload: &str) -> Vec<String> {
    let topology = cluster.topology().expect("a lab");
    let running = |prefix: &str| -> Vec<String> {
        topology
            .processes
            .iter()
            .filter(|p| p.name == prefix || p.name.starts_with(&format!("{prefix}-")))
            .filter_map(|p| topology.plan.host(&p.host).ok())
            .map(|h| h.ipv4.to_string())
            .collect()
    };
    match workload.split('/').next() {
        Some("Deployment") => running("controller"),
        Some("DaemonSet") => running("speaker"),
        _ => panic!("no lab hosts for {workload}"),
    }
}

fn jobs(cluster: &Cluster, scrape: &[ScrapeEndpoint]) -> Vec<Job> {
    scrape
        .iter()
        .map(|e| {
            assert_eq!(e.path, "/metrics", "{e:?}");
            assert_eq!(e.scheme, "http", "{e:?}");
            let targets: Vec<String> = hosts_of(cluster, &e.workload)
                .iter()
                .map(|ip| format!("{ip}:{}", e.port))
                .collect();
            assert!(!targets.is_empty(), "{e:?}");
            Job {
                name: e.job.clone(),
                targets,
                labels: BTreeMap::from([
                    ("namespace".to_string(), NAMESPACE.to_string()),
                    ("workload".to_string(), e.workload.clone()),
                ]),
            }
        })
        .collect()
}

fn single_value(prometheus: &Prometheus, query: &str) -> Result<f64, String> {
    let samples = prometheus.query(query).map_err(|e| e.to_string())?;
    match samples.as_slice() {
        [one] => Ok(one.value),
        other => Err(format!("{query}: {other:?}")),
    }
}

fn wait_value(prometheus: &Prometheus, query: &str, want: f64) {
    wait_for(
        &format!("{query} == {want}"),
        Duration::from_secs(30),
        || match single_value(prometheus, query) {
            Ok(v) if v == want => Ok(()),
            Ok(v) => Err(format!("{v}")),
            Err(e) => Err(e),
        },
    )
    .unwrap_or_else(|e| panic!("{e}\nPrometheus log:\n{}", prometheus.log_tail()));
}

#[test]
fn prometheus_scrapes_the_controller_and_every_speaker_as_the_charts_monitors_say() {
    let rendered: Manifests = Helm::locate()
        .expect("helm")
        .render(&[
            "--set",
            "metrics.serviceMonitor.enabled=true",
            "--set",
            "metrics.podMonitor.enabled=true",
            "--set",
            "metrics.prometheusRule.enabled=true",
        ])
        .expect("helm template");
    let scrape = endpoints(&rendered).expect("the monitors resolve to container ports");
    let workloads: Vec<&str> = scrape.iter().map(|e| e.workload.as_str()).collect();
    for kind in ["Deployment/", "DaemonSet/"] {
        for monitor in ["serviceMonitor/", "podMonitor/"] {
            assert!(
                scrape
                    .iter()
                    .any(|e| e.workload.starts_with(kind) && e.job.starts_with(monitor)),
                "no {monitor} endpoint for the {kind}: {workloads:?}"
            );
        }
    }

    let cluster = Cluster::start().expect("lab");
    if !cluster.is_lab() {
        eprintln!("skipping: this test runs its own Prometheus in the lab");
        return;
    }
    let topology = cluster.topology().expect("a lab").clone();
    let cp = topology.plan.control_plane();
    let jobs = jobs(&cluster, &scrape);
    let targets: usize = jobs.iter().map(|j| j.targets.len()).sum();
    assert_eq!(
        targets,
        2 * (1 + topology.plan.node_count() as usize),
        "two monitors per component: the controller once, a speaker per node: {jobs:?}"
    );

    let dir = topology.dir.join("prometheus");
    std::fs::create_dir_all(&dir).unwrap();
    let rules = dir.join("ironlb-rules.yaml");
    std::fs::write(&rules, rule_file(&rendered).expect("the chart's rules")).unwrap();
    let listen = SocketAddr::new(cp.ipv4.into(), 9090);
    let mut prometheus = Prometheus::start(
        &cp.netns,
        listen,
        &dir,
        &config(SCRAPE_INTERVAL, &jobs, &[rules]),
    )
    .expect("prometheus starts");
    prometheus
        .wait_ready(Duration::from_secs(30))
        .expect("prometheus ready");

    // Every target is up, in every job.
    wait_for("every target up", Duration::from_secs(30), || {
        let states = prometheus.targets().map_err(|e| e.to_string())?;
        let up = states.iter().filter(|t| t.health == "up").count();
        if states.len() == targets && up == targets {
            Ok(())
        } else {
            Err(format!("{states:?}"))
        }
    })
    .unwrap();
    let up = prometheus.query("up").expect("up");
    assert_eq!(up.len(), targets, "{up:?}");
    assert!(up.iter().all(|s| s.value == 1.0), "{up:?}");

    // The pool is known with nothing in use, then two Services take two addresses.
    cluster.apply(POOL).unwrap();
    let controller_jobs: Vec<&Job> = jobs
        .iter()
        .filter(|j| j.labels["workload"].starts_with("Deployment/"))
        .collect();
    for job in &controller_jobs {
        let sel = format!(r#"pool="prom",job="{}""#, job.name);
        wait_value(
            &prometheus,
            &format!("sum(ironlb_allocator_addresses_total{{{sel}}})"),
            10.0,
        );
        wait_value(
            &prometheus,
            &format!("sum(ironlb_allocator_addresses_in_use{{{sel}}})"),
            0.0,
        );
    }
    cluster
        .kubectl(&[
            "create",
            "deployment",
            "web",
            "--image=registry.k8s.io/e2e-test-images/agnhost:2.53",
            "--replicas=2",
            "--",
            "/agnhost",
            "netexec",
            "--http-port=8080",
        ])
        .unwrap();
    for name in ["web-a", "web-b"] {
        cluster.apply(&service(name)).unwrap();
    }
    for job in &controller_jobs {
        wait_value(
            &prometheus,
            &format!(
                r#"sum(ironlb_allocator_addresses_in_use{{pool="prom",job="{}"}})"#,
                job.name
            ),
            2.0,
        );
    }
    // Each address is announced by exactly one speaker.
    for job in jobs
        .iter()
        .filter(|j| j.labels["workload"].starts_with("DaemonSet/"))
    {
        wait_value(
            &prometheus,
            &format!(
                r#"count(ironlb_speaker_announced{{job="{}"}} == 1)"#,
                job.name
            ),
            2.0,
        );
    }

    // The chart's rules evaluate against the real series without errors.
    wait_for("every rule evaluated", Duration::from_secs(20), || {
        let rules = prometheus.rules().map_err(|e| e.to_string())?;
        let bad: Vec<_> = rules.iter().filter(|r| r.health != "ok").collect();
        if !rules.is_empty() && bad.is_empty() {
            Ok(())
        } else {
            Err(format!("{bad:?}"))
        }
    })
    .unwrap();

    drop(prometheus);
    cluster.down().unwrap();
}
