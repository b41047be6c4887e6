//! Data-path sanity of the lab, from the client host: NodePorts reach the kube-proxy stand-in
//! on every node for `externalTrafficPolicy: Cluster` and only on endpoint nodes for `Local`,
//! over TCP and UDP; `healthCheckNodePort` says 200 or 503; the readiness toggle moves the
//! endpoint; the client's address is seen unchanged.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use e2e::harness::{Capability, Cluster, wait_for};

const APP: &str = r#"apiVersion: v1
kind: Pod
metadata:
  name: web-1
  labels: {app: web}
spec:
  nodeName: node1
  containers:
  - {name: web, image: registry.k8s.io/e2e-test-images/agnhost:2.53}
---
apiVersion: v1
kind: Service
metadata:
  name: web-cluster
spec:
  type: LoadBalancer
  externalTrafficPolicy: Cluster
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: 8080, protocol: TCP}
  - {name: dns, port: 53, targetPort: 5353, protocol: UDP}
---
apiVersion: v1
kind: Service
metadata:
  name: web-local
spec:
  type: LoadBalancer
  externalTrafficPolicy: Local
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: 8080, protocol: TCP}
"#;

const SECOND_POD: &str = r#"apiVersion: v1
kind: Pod
metadata:
  name: web-2
  labels: {app: web}
spec:
  nodeName: node2
  containers:
  - {name: web, image: registry.k8s.io/e2e-test-images/agnhost:2.53}
"#;

fn jsonpath(cluster: &Cluster, args: &[&str]) -> String {
    cluster.kubectl(args).unwrap().trim().to_string()
}

/// `key=value` pairs of the stand-in's summary line.
fn fields(body: &str) -> BTreeMap<String, String> {
    body.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// HTTP status of a GET from the client (0 when nothing answered).
fn status_from_client(cluster: &Cluster, url: &str) -> u16 {
    let out = cluster
        .exec(
            "client",
            &[
                "curl",
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--max-time",
                "2",
                url,
            ],
        )
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

#[test]
fn node_ports_health_checks_and_readiness_from_the_client() {
    let cluster = Cluster::start().expect("cluster");
    if !cluster.require(Capability::LabOnly) {
        return;
    }
    cluster.apply(APP).unwrap();
    let http_port = jsonpath(
        &cluster,
        &[
            "get",
            "svc",
            "web-cluster",
            "-o",
            "jsonpath={.spec.ports[0].nodePort}",
        ],
    );
    let udp_port = jsonpath(
        &cluster,
        &[
            "get",
            "svc",
            "web-cluster",
            "-o",
            "jsonpath={.spec.ports[1].nodePort}",
        ],
    );
    let local_port = jsonpath(
        &cluster,
        &[
            "get",
            "svc",
            "web-local",
            "-o",
            "jsonpath={.spec.ports[0].nodePort}",
        ],
    );
    let hc_port = jsonpath(
        &cluster,
        &[
            "get",
            "svc",
            "web-local",
            "-o",
            "jsonpath={.spec.healthCheckNodePort}",
        ],
    );
    assert!(
        !hc_port.is_empty(),
        "a Local LoadBalancer gets a healthCheckNodePort"
    );
    let node_ip = |n: &str| {
        cluster
            .topology()
            .unwrap()
            .plan
            .host(n)
            .unwrap()
            .ipv4
            .to_string()
    };

    // Cluster policy: every node answers, naming itself and the pod, and sees the client.
    for node in ["node1", "node2", "node3"] {
        let url = format!("http://{}:{http_port}/", node_ip(node));
        let body = wait_for(&format!("{url} to answer"), Duration::from_secs(20), || {
            cluster.curl_from_client(&url).map_err(|e| e.to_string())
        })
        .unwrap();
        let f = fields(&body);
        assert_eq!(f["node"], node, "{body}");
        assert_eq!(f["pod"], "default/web-1", "{body}");
        assert_eq!(f["service"], "default/web-cluster");
        assert!(
            f["client"].starts_with("192.0.2.100:"),
            "client IP preserved: {body}"
        );
        let hostname = cluster
            .curl_from_client(&format!("http://{}:{http_port}/hostname", node_ip(node)))
            .unwrap();
        assert_eq!(hostname, "web-1");
        let udp = cluster
            .udp_from_client(&format!("{}:{udp_port}", node_ip(node)), "hostname")
            .unwrap();
        assert_eq!(udp.trim(), "web-1");
    }

    // Local policy: only the endpoint's node answers; the health check agrees.
    let local = |node: &str| format!("http://{}:{local_port}/", node_ip(node));
    let hc = |node: &str| format!("http://{}:{hc_port}/", node_ip(node));
    wait_for(
        "node1 to serve the Local service",
        Duration::from_secs(20),
        || {
            cluster
                .curl_from_client(&local("node1"))
                .map_err(|e| e.to_string())
        },
    )
    .unwrap();
    assert!(cluster.curl_from_client(&local("node2")).is_err());
    assert!(cluster.curl_from_client(&local("node3")).is_err());
    assert_eq!(status_from_client(&cluster, &hc("node1")), 200);
    assert_eq!(status_from_client(&cluster, &hc("node2")), 503);
    let hc_body = cluster.curl_from_client(&hc("node1")).unwrap();
    assert!(hc_body.contains("\"localEndpoints\":1"), "{hc_body}");

    // Readiness toggle: the endpoint leaves, then comes back.
    cluster
        .kubectl(&["annotate", "pod", "web-1", "lab.ironlb.io/ready=false"])
        .unwrap();
    wait_for(
        "node1's health check to fail",
        Duration::from_secs(20),
        || match status_from_client(&cluster, &hc("node1")) {
            503 => Ok(()),
            other => Err(other.to_string()),
        },
    )
    .unwrap();
    assert!(cluster.curl_from_client(&local("node1")).is_err());
    let ready = jsonpath(
        &cluster,
        &[
            "get",
            "pod",
            "web-1",
            "-o",
            r#"jsonpath={.status.conditions[?(@.type=="Ready")].status}"#,
        ],
    );
    assert_eq!(ready, "False");
    cluster
        .kubectl(&[
            "annotate",
            "--overwrite",
            "pod",
            "web-1",
            "lab.ironlb.io/ready=true",
        ])
        .unwrap();
    wait_for(
        "node1's health check to pass again",
        Duration::from_secs(20),
        || match status_from_client(&cluster, &hc("node1")) {
            200 => Ok(()),
            other => Err(other.to_string()),
        },
    )
    .unwrap();

    // A second pod on node2: Cluster traffic through any node round-robins over both.
    cluster.apply(SECOND_POD).unwrap();
    wait_for(
        "node2 to serve the Local service",
        Duration::from_secs(20),
        || {
            cluster
                .curl_from_client(&local("node2"))
                .map_err(|e| e.to_string())
        },
    )
    .unwrap();
    let url = format!("http://{}:{http_port}/hostname", node_ip("node3"));
    let seen: BTreeSet<String> = (0..6)
        .map(|_| cluster.curl_from_client(&url).unwrap())
        .collect();
    assert_eq!(
        seen,
        BTreeSet::from(["web-1".to_string(), "web-2".to_string()])
    );

    cluster.down().unwrap();
}
