//! The real kubectl (v1.35, from `e2e/scripts/setup`) against `lab-apiserver`, inside a network
//! namespace of the test's own: apply (client-side and server-side), get -w, the three patch
//! types, describe with events, delete, raw discovery, Pods, EndpointSlices, CRDs, namespaces.

mod apiserver_common;

use std::io::Read;
use std::process::Stdio;
use std::time::Duration;

use apiserver_common::*;

fn setup(tag: &str) -> (TestNetns, ApiServerProcess, tempfile::TempDir) {
    let ns = TestNetns::new(tag);
    let dir = scratch(tag);
    let server = ApiServerProcess::start(&ns, dir.path(), &[]);
    (ns, server, dir)
}

const SERVICE: &str = "
apiVersion: v1
kind: Service
metadata:
  name: web
  labels: {app: web}
spec:
  type: LoadBalancer
  selector: {app: web}
  ports:
  - port: 80
    targetPort: 8080
";

#[test]
fn apply_client_side_then_server_side_with_changes() {
    let (ns, s, _dir) = setup("apply");
    let k = &s.kubeconfig;
    assert!(
        kubectl_ok(&ns, k, &["apply", "-f", "-"], Some(SERVICE)).contains("service/web created")
    );
    assert!(
        kubectl_ok(&ns, k, &["apply", "-f", "-"], Some(SERVICE)).contains("service/web unchanged")
    );
    let changed = SERVICE.replace("8080", "9090");
    assert!(
        kubectl_ok(&ns, k, &["apply", "-f", "-"], Some(&changed))
            .contains("service/web configured")
    );
    assert_eq!(
        kubectl_ok(
            &ns,
            k,
            &[
                "get",
                "svc",
                "web",
                "-o",
                "jsonpath={.spec.ports[0].targetPort}"
            ],
            None
        ),
        "9090"
    );

    // Server-side apply takes over from client-side apply without conflicts, twice.
    let ssa = SERVICE.replace("8080", "7070");
    assert!(
        kubectl_ok(&ns, k, &["apply", "--server-side", "-f", "-"], Some(&ssa))
            .contains("serverside-applied")
    );
    assert!(
        kubectl_ok(&ns, k, &["apply", "--server-side", "-f", "-"], Some(&ssa))
            .contains("serverside-applied")
    );
    assert_eq!(
        kubectl_ok(
            &ns,
            k,
            &[
                "get",
                "svc",
                "web",
                "-o",
                "jsonpath={.spec.ports[0].targetPort}"
            ],
            None
        ),
        "7070"
    );
    let managers = kubectl_ok(
        &ns,
        k,
        &[
            "get",
            "svc",
            "web",
            "--show-managed-fields",
            "-o",
            "jsonpath={.metadata.managedFields[*].manager}",
        ],
        None,
    );
    assert!(managers.split(' ').any(|m| m == "kubectl"), "{managers}");

    // Another manager changing an owned field conflicts, and --force-conflicts wins.
    let other = ssa.replace("LoadBalancer", "NodePort");
    let err = kubectl_err(
        &ns,
        k,
        &["apply", "--server-side", "--field-manager=other", "-f", "-"],
        Some(&other),
    );
    assert!(
        err.contains("conflict with \"kubectl\"") && err.contains(".spec.type"),
        "{err}"
    );
    kubectl_ok(
        &ns,
        k,
        &[
            "apply",
            "--server-side",
            "--field-manager=other",
            "--force-conflicts",
            "-f",
            "-",
        ],
        Some(&other),
    );
    let out = kubectl_ok(
        &ns,
        k,
        &[
            "get",
            "svc",
            "web",
            "-o",
            "jsonpath={.spec.type} {.spec.ports[0].nodePort}",
        ],
        None,
    );
    let (ty, node_port) = out.split_once(' ').unwrap();
    assert_eq!(ty, "NodePort");
    assert!(
        (30000..=32767).contains(&node_port.parse::<u32>().unwrap()),
        "{out}"
    );

    // A field removed from the applied configuration goes away when nobody else owns it.
    let fewer = "apiVersion: v1\nkind: Service\nmetadata:\n  name: two\nspec:\n  ports:\n  - {name: a, port: 80}\n  - {name: b, port: 81}\n";
    kubectl_ok(&ns, k, &["apply", "--server-side", "-f", "-"], Some(fewer));
    let one = "apiVersion: v1\nkind: Service\nmetadata:\n  name: two\nspec:\n  ports:\n  - {name: a, port: 80}\n";
    kubectl_ok(&ns, k, &["apply", "--server-side", "-f", "-"], Some(one));
    assert_eq!(
        kubectl_ok(
            &ns,
            k,
            &["get", "svc", "two", "-o", "jsonpath={.spec.ports[*].port}"],
            None
        ),
        "80"
    );
}

#[test]
fn get_watch_prints_updates_and_patches_of_every_type() {
    let (ns, s, _dir) = setup("watch");
    let k = &s.kubeconfig;
    kubectl_ok(&ns, k, &["apply", "-f", "-"], Some(SERVICE));
    let mut watch = ns
        .command(KUBECTL)
        .arg("--kubeconfig")
        .arg(k)
        .args(["get", "svc", "web", "-w", "--request-timeout=20s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("kubectl get -w");
    std::thread::sleep(Duration::from_millis(700));

    kubectl_ok(
        &ns,
        k,
        &[
            "patch",
            "svc",
            "web",
            "--type=merge",
            "-p",
            r#"{"spec":{"type":"NodePort"}}"#,
        ],
        None,
    );
    kubectl_ok(
        &ns,
        k,
        &[
            "patch",
            "svc",
            "web",
            "--type=json",
            "-p",
            r#"[{"op":"replace","path":"/spec/ports/0/targetPort","value":1111}]"#,
        ],
        None,
    );
    kubectl_ok(
        &ns,
        k,
        &[
            "patch",
            "svc",
            "web",
            "--type=strategic",
            "-p",
            r#"{"spec":{"ports":[{"port":80,"name":"http"},{"port":443,"name":"https"}]}}"#,
        ],
        None,
    );
    std::thread::sleep(Duration::from_millis(700));
    let _ = watch.kill();
    let mut text = String::new();
    watch
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    let _ = watch.wait();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("NAME"), "{text}");
    assert!(lines.iter().any(|l| l.contains("LoadBalancer")), "{text}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("NodePort") && l.contains("443:")),
        "the watch printed the last update: {text}"
    );

    let ports = kubectl_ok(
        &ns,
        k,
        &[
            "get",
            "svc",
            "web",
            "-o",
            "jsonpath={range .spec.ports[*]}{.name}:{.port}:{.targetPort} {end}",
        ],
        None,
    );
    assert_eq!(ports.trim(), "http:80:1111 https:443:443");
    // Malformed patches are clear client errors.
    let err = kubectl_err(
        &ns,
        k,
        &[
            "patch",
            "svc",
            "web",
            "--type=json",
            "-p",
            r#"[{"op":"remove","path":"/spec/nope"}]"#,
        ],
        None,
    );
    assert!(err.contains("invalid"), "{err}");
    let err = kubectl_err(
        &ns,
        k,
        &[
            "patch",
            "svc",
            "web",
            "--type=merge",
            "-p",
            r#"{"spec":{"ports":[{"port":0}]}}"#,
        ],
        None,
    );
    assert!(err.contains("spec.ports[0].port"), "{err}");
}

#[test]
fn describe_shows_events_written_through_events_k8s_io() {
    let (ns, s, _dir) = setup("describe");
    let k = &s.kubeconfig;
    kubectl_ok(&ns, k, &["apply", "-f", "-"], Some(SERVICE));
    let uid = kubectl_ok(
        &ns,
        k,
        &["get", "svc", "web", "-o", "jsonpath={.metadata.uid}"],
        None,
    );
    let event = format!(
        "apiVersion: events.k8s.io/v1\nkind: Event\nmetadata: {{name: web.1, namespace: default}}\neventTime: \"2030-01-01T00:00:00.000000Z\"\nreportingController: ironlb.io/controller\nreportingInstance: ctl-0\naction: Allocate\nreason: IPAllocated\ntype: Normal\nnote: Assigned IP 198.51.100.1\nregarding: {{apiVersion: v1, kind: Service, name: web, namespace: default, uid: {uid}}}\n"
    );
    kubectl_ok(&ns, k, &["create", "-f", "-"], Some(&event));
    let described = kubectl_ok(&ns, k, &["describe", "svc", "web"], None);
    assert!(
        described.contains("IPAllocated")
            && described.contains("Assigned IP 198.51.100.1")
            && described.contains("ironlb.io/controller"),
        "{described}"
    );
    let core = kubectl_ok(
        &ns,
        k,
        &[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=web",
            "-o",
            "jsonpath={.items[0].message}",
        ],
        None,
    );
    assert_eq!(core, "Assigned IP 198.51.100.1");
    // events.k8s.io/v1 writes must carry the fields that version requires.
    let incomplete = "apiVersion: events.k8s.io/v1\nkind: Event\nmetadata: {name: bad, namespace: default}\nreason: X\n";
    let err = kubectl_err(&ns, k, &["create", "-f", "-"], Some(incomplete));
    assert!(err.contains("eventTime: Required value"), "{err}");
}

#[test]
fn raw_discovery_and_deletes() {
    let (ns, s, _dir) = setup("raw");
    let k = &s.kubeconfig;
    let apis = kubectl_ok(&ns, k, &["get", "--raw", "/apis"], None);
    for g in [
        "discovery.k8s.io",
        "coordination.k8s.io",
        "events.k8s.io",
        "apps",
        "rbac.authorization.k8s.io",
        "apiextensions.k8s.io",
    ] {
        assert!(
            apis.contains(&format!("\"name\":\"{g}\"")),
            "{g} missing: {apis}"
        );
    }
    let v1 = kubectl_ok(&ns, k, &["get", "--raw", "/api/v1"], None);
    assert!(v1.contains("\"name\":\"services/status\""));
    kubectl_ok(&ns, k, &["apply", "-f", "-"], Some(SERVICE));
    assert!(kubectl_ok(&ns, k, &["delete", "svc", "web"], None).contains("deleted"));
    let err = kubectl_err(&ns, k, &["get", "svc", "web"], None);
    assert!(
        err.contains("NotFound") || err.contains("not found"),
        "{err}"
    );
    let names = kubectl_ok(&ns, k, &["get", "svc", "-o", "name"], None);
    assert_eq!(names.trim(), "service/kubernetes");
}

#[test]
fn pods_and_endpoint_slices() {
    let (ns, s, _dir) = setup("pods");
    let k = &s.kubeconfig;
    let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: web-1, labels: {app: web}}\nspec:\n  nodeName: node1\n  containers:\n  - {name: web, image: nginx:1.27, ports: [{containerPort: 80}]}\n";
    kubectl_ok(&ns, k, &["apply", "-f", "-"], Some(pod));
    let listed = kubectl_ok(&ns, k, &["get", "pods", "-o", "wide"], None);
    assert!(
        listed.contains("web-1") && listed.contains("Pending") && listed.contains("node1"),
        "{listed}"
    );
    kubectl_ok(
        &ns,
        k,
        &[
            "patch",
            "pod",
            "web-1",
            "--subresource=status",
            "--type=merge",
            "-p",
            r#"{"status":{"phase":"Running","podIP":"10.244.1.5","containerStatuses":[{"name":"web","ready":true,"restartCount":0,"image":"nginx:1.27","imageID":"","started":true,"state":{"running":{}}}]}}"#,
        ],
        None,
    );
    let listed = kubectl_ok(&ns, k, &["get", "pods", "-o", "wide"], None);
    assert!(
        listed.contains("1/1") && listed.contains("Running") && listed.contains("10.244.1.5"),
        "{listed}"
    );
    let by_node = kubectl_ok(
        &ns,
        k,
        &[
            "get",
            "pods",
            "--field-selector",
            "spec.nodeName=node1",
            "-o",
            "name",
        ],
        None,
    );
    assert_eq!(by_node.trim(), "pod/web-1");
    let err = kubectl_err(
        &ns,
        k,
        &[
            "patch",
            "pod",
            "web-1",
            "--type=merge",
            "-p",
            r#"{"spec":{"nodeName":"node2"}}"#,
        ],
        None,
    );
    assert!(err.contains("pod updates may not change fields"), "{err}");

    // A bound, running pod is deleted gracefully: it stays Terminating until forced.
    kubectl_ok(&ns, k, &["delete", "pod", "web-1", "--wait=false"], None);
    let listed = kubectl_ok(&ns, k, &["get", "pods"], None);
    assert!(listed.contains("Terminating"), "{listed}");
    kubectl_ok(
        &ns,
        k,
        &["delete", "pod", "web-1", "--grace-period=0", "--force"],
        None,
    );
    eventually("pod gone", Duration::from_secs(5), || {
        kubectl_ok(&ns, k, &["get", "pods", "-o", "name"], None)
            .trim()
            .is_empty()
            .then_some(())
    });

    let slice = "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: web-abc\n  labels: {kubernetes.io/service-name: web}\naddressType: IPv4\nports: [{name: '', port: 80, protocol: TCP}]\nendpoints:\n- addresses: [10.244.1.5]\n  nodeName: node1\n  conditions: {ready: true}\n";
    kubectl_ok(&ns, k, &["apply", "-f", "-"], Some(slice));
    let listed = kubectl_ok(&ns, k, &["get", "endpointslices"], None);
    assert!(
        listed.contains("web-abc") && listed.contains("IPv4") && listed.contains("10.244.1.5"),
        "{listed}"
    );
    kubectl_ok(
        &ns,
        k,
        &["apply", "-f", "-"],
        Some(&slice.replace("10.244.1.5", "10.244.2.7")),
    );
    let addrs = kubectl_ok(
        &ns,
        k,
        &[
            "get",
            "endpointslice",
            "web-abc",
            "-o",
            "jsonpath={.endpoints[*].addresses[*]}",
        ],
        None,
    );
    assert_eq!(addrs, "10.244.2.7");
    kubectl_ok(&ns, k, &["delete", "endpointslice", "web-abc"], None);
}

fn crd_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/ironlb/crds")
}

#[test]
fn crds_are_served_at_once_with_validation_defaults_and_columns() {
    let (ns, s, _dir) = setup("crd");
    let k = &s.kubeconfig;
    let dir = crd_dir();
    assert!(
        dir.join("ironlb.io_ipaddresspools.yaml").exists(),
        "the chart's CRDs are missing"
    );
    kubectl_ok(&ns, k, &["apply", "-f", dir.to_str().unwrap()], None);
    kubectl_ok(
        &ns,
        k,
        &[
            "wait",
            "--for=condition=Established",
            "crd/ipaddresspools.ironlb.io",
            "--timeout=10s",
        ],
        None,
    );
    let apis = kubectl_ok(&ns, k, &["get", "--raw", "/apis"], None);
    assert!(apis.contains("\"name\":\"ironlb.io\""));

    let pool = "apiVersion: ironlb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: default}\nspec:\n  addresses: [198.51.100.0/24]\n";
    kubectl_ok(&ns, k, &["apply", "-f", "-"], Some(pool));
    assert_eq!(
        kubectl_ok(
            &ns,
            k,
            &[
                "get",
                "ipaddresspool",
                "default",
                "-o",
                "jsonpath={.spec.autoAssign}"
            ],
            None
        ),
        "true",
        "schema default applied"
    );
    let table = kubectl_ok(&ns, k, &["get", "ipaddresspools"], None);
    let header = table.lines().next().unwrap();
    assert!(
        header.contains("ADDRESSES") && header.contains("AUTO ASSIGN") && header.contains("READY"),
        "{table}"
    );
    assert!(table.contains("198.51.100.0/24"), "{table}");
    kubectl_ok(
        &ns,
        k,
        &["apply", "--server-side", "-f", "-"],
        Some(&pool.replace("198.51.100.0/24", "198.51.100.0/25")),
    );
    kubectl_ok(
        &ns,
        k,
        &[
            "patch",
            "ipaddresspool",
            "default",
            "--type=merge",
            "-p",
            r#"{"spec":{"avoidBuggyIPs":true}}"#,
        ],
        None,
    );
    let err = kubectl_err(
        &ns,
        k,
        &[
            "patch",
            "ipaddresspool",
            "default",
            "--type=strategic",
            "-p",
            r#"{"spec":{"avoidBuggyIPs":false}}"#,
        ],
        None,
    );
    assert!(
        err.contains("UnsupportedMediaType")
            || err.contains("unknown format")
            || err.contains("strategic"),
        "{err}"
    );

    // Rejected like a real server: pattern and type violations, unknown fields with Strict.
    let bad = "apiVersion: ironlb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: bad}\nspec:\n  addresses: ['not an ip']\n  autoAssign: 'yes'\n";
    let err = kubectl_err(&ns, k, &["apply", "-f", "-"], Some(bad));
    assert!(
        err.contains("spec.addresses[0]")
            && err.contains("should match")
            && err.contains("spec.autoAssign"),
        "{err}"
    );
    let unknown = format!("{pool}  bogus: 1\n");
    let err = kubectl_err(
        &ns,
        k,
        &["apply", "-f", "-"],
        Some(&unknown.replace("name: default", "name: other")),
    );
    assert!(err.contains("unknown field \"spec.bogus\""), "{err}");
    let empty = "apiVersion: ironlb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: empty}\nspec:\n  addresses: []\n";
    let err = kubectl_err(&ns, k, &["apply", "-f", "-"], Some(empty));
    assert!(err.contains("spec.addresses"), "{err}");

    assert!(kubectl_ok(&ns, k, &["delete", "ipaddresspool", "default"], None).contains("deleted"));
    kubectl_ok(&ns, k, &["delete", "-f", dir.to_str().unwrap()], None);
    let err = kubectl_err(&ns, k, &["get", "--raw", "/apis/ironlb.io/v1beta1"], None);
    assert!(
        err.contains("NotFound") || err.contains("not found") || err.contains("could not find"),
        "{err}"
    );
}

#[test]
fn deleting_a_namespace_deletes_its_objects() {
    let (ns, s, _dir) = setup("ns");
    let k = &s.kubeconfig;
    kubectl_ok(&ns, k, &["create", "namespace", "team-a"], None);
    // As in a real cluster, controllers fill a new namespace with its defaults.
    eventually(
        "the default ServiceAccount and kube-root-ca.crt",
        Duration::from_secs(5),
        || {
            let sa = kubectl(
                &ns,
                k,
                &["-n", "team-a", "get", "serviceaccount", "default"],
                None,
            );
            let ca = kubectl(
                &ns,
                k,
                &[
                    "-n",
                    "team-a",
                    "get",
                    "configmap",
                    "kube-root-ca.crt",
                    "-o",
                    "jsonpath={.data.ca\\.crt}",
                ],
                None,
            );
            (sa.status.success()
                && String::from_utf8_lossy(&ca.stdout).contains("BEGIN CERTIFICATE"))
            .then_some(())
        },
    );
    kubectl_ok(
        &ns,
        k,
        &[
            "-n",
            "team-a",
            "create",
            "configmap",
            "cfg",
            "--from-literal=a=b",
        ],
        None,
    );
    kubectl_ok(&ns, k, &["-n", "team-a", "apply", "-f", "-"], Some(SERVICE));
    kubectl_ok(
        &ns,
        k,
        &["delete", "namespace", "team-a", "--timeout=20s"],
        None,
    );
    let err = kubectl_err(&ns, k, &["get", "namespace", "team-a"], None);
    assert!(err.contains("not found"), "{err}");
    let err = kubectl_err(
        &ns,
        k,
        &["-n", "team-a", "create", "configmap", "again"],
        None,
    );
    assert!(err.contains("not found"), "{err}");
    let err = kubectl_err(&ns, k, &["delete", "namespace", "default"], None);
    assert!(err.contains("may not be deleted"), "{err}");
}

const HELM: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/.tools/bin/helm");

/// A chart with the kinds ironlb's chart uses: CRDs, RBAC, a Deployment, a DaemonSet, a Secret.
fn write_chart(dir: &std::path::Path) {
    let t = dir.join("templates");
    std::fs::create_dir_all(&t).unwrap();
    std::fs::create_dir_all(dir.join("crds")).unwrap();
    std::fs::write(
        dir.join("Chart.yaml"),
        "apiVersion: v2\nname: demo\nversion: 0.1.0\n",
    )
    .unwrap();
    std::fs::write(dir.join("values.yaml"), "replicas: 2\n").unwrap();
    for f in std::fs::read_dir(crd_dir()).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, dir.join("crds").join(f.file_name().unwrap())).unwrap();
    }
    std::fs::write(
        t.join("all.yaml"),
        r#"apiVersion: v1
kind: ServiceAccount
metadata: {name: demo-controller}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: demo-controller}
rules:
- apiGroups: [""]
  resources: [services, services/status, events]
  verbs: [get, list, watch, patch, create]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: demo-controller}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: demo-controller}
subjects: [{kind: ServiceAccount, name: demo-controller, namespace: {{ .Release.Namespace }}}]
---
apiVersion: v1
kind: Secret
metadata: {name: demo-memberlist}
type: Opaque
data: {key: {{ "secret" | b64enc }}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: demo-controller, labels: {app: demo}}
spec:
  replicas: {{ .Values.replicas }}
  selector: {matchLabels: {app: demo}}
  template:
    metadata: {labels: {app: demo}}
    spec:
      serviceAccountName: demo-controller
      securityContext: {runAsNonRoot: true, runAsUser: 65532}
      containers:
      - name: controller
        image: example.com/ironlb-controller:0.1.0
        args: [--lb-class=ironlb.io/ironlb]
        ports: [{name: metrics, containerPort: 7472}]
        securityContext: {readOnlyRootFilesystem: true, allowPrivilegeEscalation: false}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: demo-speaker}
spec:
  selector: {matchLabels: {app: speaker}}
  template:
    metadata: {labels: {app: speaker}}
    spec:
      hostNetwork: true
      tolerations: [{operator: Exists}]
      containers:
      - name: speaker
        image: example.com/ironlb-speaker:0.1.0
        securityContext: {capabilities: {add: [NET_RAW, NET_ADMIN], drop: [ALL]}}
"#,
    )
    .unwrap();
}

#[test]
fn helm_installs_upgrades_and_uninstalls_a_chart() {
    let (ns, s, dir) = setup("helm");
    let k = &s.kubeconfig;
    let chart = dir.path().join("chart");
    write_chart(&chart);
    let helm = |args: &[&str]| {
        let out = ns
            .command(HELM)
            .arg("--kubeconfig")
            .arg(k)
            .args(args)
            .output()
            .expect("helm");
        assert!(
            out.status.success(),
            "helm {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let chart_path = chart.to_str().unwrap();
    helm(&[
        "install",
        "demo",
        chart_path,
        "-n",
        "demo-system",
        "--create-namespace",
        "--wait=false",
    ]);
    assert!(helm(&["list", "-n", "demo-system"]).contains("deployed"));
    assert_eq!(
        kubectl_ok(
            &ns,
            k,
            &[
                "-n",
                "demo-system",
                "get",
                "deploy",
                "demo-controller",
                "-o",
                "jsonpath={.spec.replicas}"
            ],
            None
        ),
        "2"
    );
    assert!(
        kubectl_ok(&ns, k, &["get", "crd", "-o", "name"], None)
            .contains("ipaddresspools.ironlb.io")
    );
    helm(&[
        "upgrade",
        "demo",
        chart_path,
        "-n",
        "demo-system",
        "--set",
        "replicas=3",
        "--wait=false",
    ]);
    assert_eq!(
        kubectl_ok(
            &ns,
            k,
            &[
                "-n",
                "demo-system",
                "get",
                "deploy",
                "demo-controller",
                "-o",
                "jsonpath={.spec.replicas}"
            ],
            None
        ),
        "3"
    );
    assert!(
        helm(&["history", "demo", "-n", "demo-system"])
            .lines()
            .count()
            >= 3
    );
    helm(&["uninstall", "demo", "-n", "demo-system", "--wait=false"]);
    let left = kubectl_ok(
        &ns,
        k,
        &[
            "-n",
            "demo-system",
            "get",
            "deploy,ds,secret,sa",
            "-o",
            "name",
        ],
        None,
    );
    assert!(
        !left.contains("demo-controller")
            && !left.contains("demo-speaker")
            && !left.contains("sh.helm.release"),
        "{left}"
    );
}
