//! Controller scenarios on the user's path: a pool, LoadBalancer Services, `kubectl get svc`,
//! and restarts of the controller and of the API server that must not move any IP.

use std::time::Duration;

use e2e::harness::{Capability, Cluster, LabOptions, wait_for};

/// How long a Service may take to show its EXTERNAL-IP.
const IP_WAIT: Duration = Duration::from_secs(20);

const POOL: &str = r#"apiVersion: ironlb.io/v1beta1
kind: IPAddressPool
metadata:
  name: scenario
  namespace: ironlb-system
spec:
  addresses:
  - 198.51.100.10-198.51.100.19
---
apiVersion: ironlb.io/v1beta1
kind: L2Advertisement
metadata:
  name: scenario
  namespace: ironlb-system
spec:
  ipAddressPools: [scenario]
"#;

fn service(name: &str, class: Option<&str>) -> String {
    let class = class
        .map(|c| format!("  loadBalancerClass: {c}\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: default\nspec:\n  type: LoadBalancer\n{class}  selector:\n    app: web\n  ports:\n  - port: 80\n    targetPort: 8080\n"
    )
}

/// Skips (with a message) when no controller runs in the lab yet.
fn controller_running(cluster: &Cluster) -> bool {
    let running = cluster
        .topology()
        .is_none_or(|t| t.processes.iter().any(|p| p.name == "controller"));
    if !running {
        eprintln!("skipping: the lab runs no ironlb-controller (binary missing or a placeholder)");
    }
    running
}

#[test]
fn services_get_pool_ips_in_order_and_give_them_back() {
    let cluster = Cluster::start().expect("cluster");
    if !controller_running(&cluster) {
        return;
    }
    cluster.apply(POOL).unwrap();

    cluster.apply(&service("first", None)).unwrap();
    assert_eq!(
        cluster.wait_external_ip("first", IP_WAIT).unwrap(),
        "198.51.100.10"
    );
    let table = cluster.kubectl(&["get", "svc", "first"]).unwrap();
    assert!(
        table.contains("198.51.100.10"),
        "kubectl get svc shows it:\n{table}"
    );

    cluster.apply(&service("second", None)).unwrap();
    assert_eq!(
        cluster.wait_external_ip("second", IP_WAIT).unwrap(),
        "198.51.100.11"
    );

    // A Service of another class is never touched; the one created after it is served,
    // so by then the controller has had its chance.
    cluster
        .apply(&service("foreign", Some("example.com/other")))
        .unwrap();
    cluster.apply(&service("third", None)).unwrap();
    assert_eq!(
        cluster.wait_external_ip("third", IP_WAIT).unwrap(),
        "198.51.100.12"
    );
    assert_eq!(cluster.external_ip("foreign"), "");

    // Deleting a Service frees its IP for the next one.
    cluster.kubectl(&["delete", "svc", "first"]).unwrap();
    wait_for(
        "first's IP to be free again",
        Duration::from_secs(20),
        || {
            cluster
                .apply(&service("fourth", None))
                .map_err(|e| e.to_string())?;
            let ip = cluster.external_ip("fourth");
            if ip == "198.51.100.10" {
                Ok(())
            } else {
                Err(ip)
            }
        },
    )
    .unwrap();
    cluster.down().unwrap();
}

#[test]
fn controller_and_api_server_restarts_move_no_ip() {
    let cluster = Cluster::start().expect("cluster");
    if !cluster.require(Capability::LabOnly) || !controller_running(&cluster) {
        return;
    }
    cluster.apply(POOL).unwrap();
    let names = ["a", "b", "c"];
    for name in names {
        cluster.apply(&service(name, None)).unwrap();
    }
    let before: Vec<String> = names
        .iter()
        .map(|n| cluster.wait_external_ip(n, IP_WAIT).unwrap())
        .collect();

    // The controller dies; a Service created meanwhile waits; nothing moves on restart.
    cluster.fail("controller").unwrap();
    cluster.apply(&service("while-down", None)).unwrap();
    cluster.restore("controller").unwrap();
    assert_eq!(
        cluster.wait_external_ip("while-down", IP_WAIT).unwrap(),
        "198.51.100.13"
    );
    let after: Vec<String> = names.iter().map(|n| cluster.external_ip(n)).collect();
    assert_eq!(after, before);

    // The API server is killed and comes back with its state; the controller recovers.
    cluster.fail("apiserver").unwrap();
    cluster.restore("apiserver").unwrap();
    cluster.apply(&service("after-apiserver", None)).unwrap();
    assert_eq!(
        cluster
            .wait_external_ip("after-apiserver", IP_WAIT)
            .unwrap(),
        "198.51.100.14"
    );
    let after: Vec<String> = names.iter().map(|n| cluster.external_ip(n)).collect();
    assert_eq!(after, before);
    cluster.down().unwrap();
}

#[test]
fn on_a_1_27_api_server_the_status_has_no_ip_mode_and_the_controller_says_so_once() {
    // The stand-in serves the API of Kubernetes 1.27 (no `ipMode` in Service status); the
    // controller must find that out from the server and still assign addresses.
    let cluster = Cluster::start_with(LabOptions {
        nodes: 1,
        extra_args: vec!["--apiserver-arg=--emulate-version=1.27".into()],
        ..LabOptions::default()
    })
    .expect("cluster");
    if !cluster.require(Capability::LabOnly) || !controller_running(&cluster) {
        return;
    }
    let version = cluster
        .kubectl(&["get", "--raw", "/version"])
        .expect("kubectl get --raw /version");
    assert!(
        version.contains("\"minor\": \"27\"") || version.contains("\"minor\":\"27\""),
        "{version}"
    );

    cluster.apply(POOL).unwrap();
    cluster.apply(&service("old-server", None)).unwrap();
    cluster.apply(&service("old-server-2", None)).unwrap();
    assert_eq!(
        cluster.wait_external_ip("old-server", IP_WAIT).unwrap(),
        "198.51.100.10"
    );
    assert_eq!(
        cluster.wait_external_ip("old-server-2", IP_WAIT).unwrap(),
        "198.51.100.11"
    );
    let ingress = cluster
        .kubectl(&[
            "get",
            "svc",
            "old-server",
            "-o",
            "jsonpath={.status.loadBalancer.ingress}",
        ])
        .unwrap();
    assert!(ingress.contains("198.51.100.10"), "{ingress}");
    assert!(
        !ingress.contains("ipMode"),
        "a 1.27 server has no ipMode: {ingress}"
    );

    let log_path = cluster.lab_dir().unwrap().join("logs/controller.log");
    let log = std::fs::read_to_string(&log_path).expect("the controller's log");
    let mentions = log
        .matches("has no status.loadBalancer.ingress[].ipMode")
        .count();
    assert_eq!(mentions, 1, "said once, not per Service:\n{log}");
}
