//! `lab stop`, `fail` and `restore` of whole hosts, and a dual-stack (`--ipv6`) lab.

use std::time::Duration;

use e2e::harness::{Capability, Cluster, LabOptions, wait_for};

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
  name: web
spec:
  type: NodePort
  ipFamilyPolicy: PreferDualStack
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: 8080}
"#;

fn node_port(cluster: &Cluster) -> String {
    cluster
        .kubectl(&[
            "get",
            "svc",
            "web",
            "-o",
            "jsonpath={.spec.ports[0].nodePort}",
        ])
        .unwrap()
        .trim()
        .to_string()
}

fn answers(cluster: &Cluster, url: &str) -> bool {
    cluster.curl_from_client(url).is_ok()
}

#[test]
fn stopped_and_failed_nodes_go_dark_and_come_back() {
    let cluster = Cluster::start_with(LabOptions {
        nodes: 3,
        ..Default::default()
    })
    .expect("cluster");
    if !cluster.require(Capability::LabOnly) {
        return;
    }
    cluster.apply(APP).unwrap();
    let port = node_port(&cluster);
    let url = |ip: &str| format!("http://{ip}:{port}/hostname");
    for ip in ["192.0.2.12", "192.0.2.13"] {
        wait_for(&format!("{ip} to answer"), Duration::from_secs(20), || {
            cluster
                .curl_from_client(&url(ip))
                .map_err(|e| e.to_string())
        })
        .unwrap();
    }

    // Graceful: the node's kube-proxy exits, the host stays on the segment.
    cluster.stop("node2").unwrap();
    assert!(!answers(&cluster, &url("192.0.2.12")));
    let ping = cluster
        .exec(
            "client",
            &[
                "curl",
                "-s",
                "--max-time",
                "2",
                "http://192.0.2.12:10256/healthz",
            ],
        )
        .unwrap();
    assert!(
        !ping.status.success(),
        "nothing serves healthz on a stopped node"
    );

    // Abrupt: the link goes down too, so not even the kernel answers.
    cluster.fail("node3").unwrap();
    let arp = cluster
        .exec(
            "client",
            &["curl", "-s", "--max-time", "2", &url("192.0.2.13")],
        )
        .unwrap();
    assert!(!arp.status.success());

    cluster.restore("node2").unwrap();
    cluster.restore("node3").unwrap();
    for ip in ["192.0.2.12", "192.0.2.13"] {
        let body = wait_for(
            &format!("{ip} to answer again"),
            Duration::from_secs(20),
            || {
                cluster
                    .curl_from_client(&url(ip))
                    .map_err(|e| e.to_string())
            },
        )
        .unwrap();
        assert_eq!(body, "web-1");
    }
    cluster.down().unwrap();
}

#[test]
fn dual_stack_lab_serves_node_ports_over_ipv6() {
    let cluster = Cluster::start_with(LabOptions {
        nodes: 2,
        ipv6: true,
        ..Default::default()
    })
    .expect("cluster");
    if !cluster.require(Capability::LabOnly) {
        return;
    }
    let nodes = cluster.node_ips().unwrap();
    assert_eq!(
        nodes["node1"]
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ["192.0.2.11", "2001:db8::11"]
    );
    cluster.apply(APP).unwrap();
    let families = cluster
        .kubectl(&["get", "svc", "web", "-o", "jsonpath={.spec.ipFamilies[*]}"])
        .unwrap();
    assert_eq!(families.trim(), "IPv4 IPv6");
    let port = node_port(&cluster);
    let url = format!("http://[2001:db8::12]:{port}/");
    let body = wait_for("node2 to answer over IPv6", Duration::from_secs(20), || {
        cluster.curl_from_client(&url).map_err(|e| e.to_string())
    })
    .unwrap();
    assert!(body.contains("node=node2"), "{body}");
    assert!(body.contains("client=[2001:db8::100]:"), "{body}");
    let slices = cluster
        .kubectl(&[
            "get",
            "endpointslices",
            "-l",
            "kubernetes.io/service-name=web",
            "-o",
            "jsonpath={.items[*].addressType}",
        ])
        .unwrap();
    assert!(slices.contains("IPv6"), "{slices}");
    cluster.down().unwrap();
}

#[test]
fn cli_mistakes_get_clear_errors() {
    let cluster = Cluster::start_with(LabOptions {
        nodes: 1,
        extra_args: vec!["--controller".into(), "no".into()],
        ..Default::default()
    })
    .expect("cluster");
    let Some(dir) = cluster.lab_dir().map(|d| d.to_path_buf()) else {
        return;
    };
    let lab = e2e::harness::cluster::lab_binary().unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(&lab)
            .args(args)
            .arg("--dir")
            .arg(&dir)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} should fail");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    assert!(run(&["up", "--nodes", "1"]).contains("already up"));
    assert!(run(&["fail", "node7"]).contains("unknown target"));
    assert!(run(&["exec", "node7", "--", "true"]).contains("unknown host"));
    let bad_nodes = std::process::Command::new(&lab)
        .args(["up", "--nodes", "0", "--dir"])
        .arg(dir.join("other"))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&bad_nodes.stderr).contains("at least one node"));
    // The lab is untouched by all of that.
    assert_eq!(
        cluster
            .kubectl(&["get", "node", "node1", "-o", "name"])
            .unwrap()
            .trim(),
        "node/node1"
    );
    cluster.down().unwrap();
}
