//! Smoke test of the lab as a newcomer meets it: `lab up --nodes 3`, then the real kubectl
//! from the host. (The API-server stand-in's own tests go deeper.)

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use e2e::harness::{Capability, Cluster, wait_for};

const SERVICE: &str = r#"apiVersion: v1
kind: Service
metadata:
  name: smoke
  namespace: default
  labels:
    stage: one
spec:
  type: NodePort
  selector:
    app: smoke
  ports:
  - name: http
    port: 80
    targetPort: 8080
"#;

const POD: &str = r#"apiVersion: v1
kind: Pod
metadata:
  name: smoke-1
  namespace: default
  labels:
    app: smoke
spec:
  containers:
  - name: web
    image: registry.k8s.io/e2e-test-images/agnhost:2.53
    args: ["netexec", "--http-port=8080"]
"#;

#[test]
fn kubectl_works_against_a_three_node_lab() {
    let cluster = Cluster::start().expect("cluster");

    if cluster.require(Capability::LabOnly) {
        let nodes = cluster.node_ips().unwrap();
        for (name, ip) in [
            ("cp", "192.0.2.2"),
            ("node1", "192.0.2.11"),
            ("node2", "192.0.2.12"),
            ("node3", "192.0.2.13"),
        ] {
            assert_eq!(nodes[name][0].to_string(), ip, "{nodes:?}");
        }
        let roles = cluster
            .kubectl(&[
                "get",
                "nodes",
                "-l",
                "node-role.kubernetes.io/control-plane",
                "-o",
                "name",
            ])
            .unwrap();
        assert_eq!(roles.trim(), "node/cp");
        let apis = cluster.kubectl(&["get", "--raw", "/apis"]).unwrap();
        assert!(apis.contains("discovery.k8s.io"), "{apis}");
        assert!(
            apis.contains("ironlb.io"),
            "the chart's CRDs are installed: {apis}"
        );
        let ns = cluster
            .kubectl(&["get", "namespace", "ironlb-system", "-o", "name"])
            .unwrap();
        assert_eq!(ns.trim(), "namespace/ironlb-system");
        let secret = cluster
            .kubectl(&[
                "get",
                "secret",
                "-n",
                "ironlb-system",
                "ironlb-memberlist",
                "-o",
                "jsonpath={.data.key}",
            ])
            .unwrap();
        assert!(!secret.is_empty());
    }

    // Client-side apply, then a watch that sees a server-side apply change it.
    cluster.apply(SERVICE).unwrap();
    let mut watch = Command::new(e2e::lab::kubectl::kubectl_path())
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig())
        .args([
            "get",
            "svc",
            "smoke",
            "-w",
            "-o",
            "jsonpath={.metadata.labels.stage}{\"\\n\"}",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout = watch.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), "one");
    let changed = SERVICE.replace("stage: one", "stage: two");
    let out = cluster
        .kubectl_output(
            &["apply", "--server-side", "--force-conflicts", "-f", "-"],
            Some(&changed),
        )
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen = wait_for(
        "the watch to print stage two",
        Duration::from_secs(10),
        || match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) if line == "two" => Ok(()),
            Ok(line) => Err(line),
            Err(e) => Err(e.to_string()),
        },
    );
    let _ = watch.kill();
    let _ = watch.wait();
    seen.unwrap();

    // The three patch types.
    cluster
        .kubectl(&[
            "patch",
            "svc",
            "smoke",
            "--type=merge",
            "-p",
            r#"{"metadata":{"labels":{"merge":"yes"}}}"#,
        ])
        .unwrap();
    cluster
        .kubectl(&[
            "patch",
            "svc",
            "smoke",
            "--type=json",
            "-p",
            r#"[{"op":"add","path":"/metadata/labels/json","value":"yes"}]"#,
        ])
        .unwrap();
    cluster
        .kubectl(&[
            "patch",
            "svc",
            "smoke",
            "--type=strategic",
            "-p",
            r#"{"spec":{"ports":[{"name":"metrics","port":9090,"targetPort":9090}]}}"#,
        ])
        .unwrap();
    let labels = cluster
        .kubectl(&["get", "svc", "smoke", "-o", "jsonpath={.metadata.labels}"])
        .unwrap();
    assert!(
        labels.contains("\"merge\":\"yes\"") && labels.contains("\"json\":\"yes\""),
        "{labels}"
    );
    let ports = cluster
        .kubectl(&[
            "get",
            "svc",
            "smoke",
            "-o",
            "jsonpath={.spec.ports[*].name}",
        ])
        .unwrap();
    assert_eq!(
        ports, "http metrics",
        "strategic merge keeps the existing port"
    );
    let node_ports = cluster
        .kubectl(&[
            "get",
            "svc",
            "smoke",
            "-o",
            "jsonpath={.spec.ports[*].nodePort}",
        ])
        .unwrap();
    assert_eq!(
        node_ports.split_whitespace().count(),
        2,
        "NodePorts allocated: {node_ports}"
    );

    // A pod becomes Running and Ready, and lands in the Service's EndpointSlice.
    cluster.apply(POD).unwrap();
    wait_for("smoke-1 to be ready", Duration::from_secs(20), || {
        let ready = cluster
            .kubectl(&[
                "get",
                "pod",
                "smoke-1",
                "-o",
                r#"jsonpath={.status.conditions[?(@.type=="Ready")].status}"#,
            ])
            .map_err(|e| e.to_string())?;
        if ready == "True" { Ok(()) } else { Err(ready) }
    })
    .unwrap();
    wait_for(
        "the EndpointSlice to list smoke-1",
        Duration::from_secs(20),
        || {
            let names = cluster
                .kubectl(&[
                    "get",
                    "endpointslices",
                    "-l",
                    "kubernetes.io/service-name=smoke",
                    "-o",
                    "jsonpath={.items[*].endpoints[*].targetRef.name}",
                ])
                .map_err(|e| e.to_string())?;
            if names.contains("smoke-1") {
                Ok(())
            } else {
                Err(names)
            }
        },
    )
    .unwrap();

    let described = cluster.kubectl(&["describe", "svc", "smoke"]).unwrap();
    assert!(
        described.contains("smoke") && described.contains("NodePort"),
        "{described}"
    );

    cluster
        .kubectl(&["delete", "pod", "smoke-1", "--wait=true", "--timeout=30s"])
        .unwrap();
    cluster.delete(SERVICE).unwrap();
    let gone = cluster
        .kubectl_output(&["get", "svc", "smoke"], None)
        .unwrap();
    assert!(!gone.status.success());
    assert!(String::from_utf8_lossy(&gone.stderr).contains("NotFound"));
    wait_for("the EndpointSlice to go", Duration::from_secs(20), || {
        let left = cluster
            .kubectl(&[
                "get",
                "endpointslices",
                "-l",
                "kubernetes.io/service-name=smoke",
                "-o",
                "name",
            ])
            .map_err(|e| e.to_string())?;
        if left.trim().is_empty() {
            Ok(())
        } else {
            Err(left)
        }
    })
    .unwrap();
    cluster.down().unwrap();
}
