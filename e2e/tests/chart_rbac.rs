//! The chart's RBAC is exactly what the binaries use, derived from their real API calls.
//!
//! A lab runs the real `ironlb-controller` (two replicas, as the chart's Deployment) and one
//! real `ironlb-speaker` per node, each started with the args and environment the chart's pod
//! templates give it. They reach the API server only through the recording proxy
//! (`e2e::chart::audit`), one listener per component, which enforces the chart's rendered
//! Roles and ClusterRoles for that component's ServiceAccount: a request they do not allow is
//! answered 403 and never reaches the server. The test then drives every code path that talks
//! to the API (allocation, pool status, events, Lease create/renew/handover, announcement,
//! takeover and loss, ServiceL2Status create/update/delete, releases, shutdown) and compares,
//! both ways, the (group, resource, subresource, verb, namespace, name) each binary used with
//! what the chart grants it:
//!
//! - every request was allowed (nothing refused, nothing missing);
//! - every granted permission was used, but for [`ALLOWANCES`];
//! - no cluster-wide grant was only needed in the release namespace.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use e2e::chart::audit::{self, AuditLog, Identity};
use e2e::chart::helm::NAMESPACE;
use e2e::chart::launch::{PodContext, process_spec};
use e2e::chart::manifest::container;
use e2e::chart::rbac::{Allowance, Permission, compare, permissions_for};
use e2e::chart::running::Running;
use e2e::chart::{Helm, Manifests, Object, all_features_values, bin_dir};
use e2e::harness::{Cluster, LabOptions, wait_for};
use e2e::lab::plan::HostPlan;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// How long a Service may take to show its EXTERNAL-IP.
const IP_WAIT: Duration = Duration::from_secs(20);

/// Permissions the chart grants that the scenario below is not required to exercise, each
/// with why it is still needed. Empty: the scenario reaches every grant, including the
/// rarely used ones (`create` of the Lease happens on the fresh lab's first start; `create`
/// of a ServiceL2Status is authorized when a server-side apply creates it; `patch` of an
/// Event when a speaker announces a Service again). Add an entry only with its reason.
const ALLOWANCES: &[Allowance] = &[];

const POOL: &str = r#"apiVersion: ironlb.io/v1beta1
kind: IPAddressPool
metadata:
  name: rbac
  namespace: ironlb-system
spec:
  addresses:
  - 198.51.100.40-198.51.100.49
---
apiVersion: ironlb.io/v1beta1
kind: L2Advertisement
metadata:
  name: rbac
  namespace: ironlb-system
spec:
  ipAddressPools: [rbac]
"#;

fn service(name: &str, class: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: default\nspec:\n  type: LoadBalancer\n  loadBalancerClass: {class}\n  selector:\n    app: web\n  ports:\n  - name: http\n    port: 80\n    targetPort: 8080\n"
    )
}

/// The value of `--flag=value` in the workload's container args.
fn arg(workload: &Object, container_name: &str, flag: &str) -> String {
    let pod = workload.pod_spec().expect("a pod template");
    container(pod, container_name).expect("the container")["args"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .find_map(|a| a.strip_prefix(&format!("{flag}=")))
        .unwrap_or_else(|| panic!("the chart passes no {flag} to {container_name}"))
        .to_string()
}

/// The container port named `metrics` (the admin endpoint with /readyz).
fn admin_port(workload: &Object, container_name: &str) -> u16 {
    let pod = workload.pod_spec().expect("a pod template");
    container(pod, container_name).expect("the container")["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == "metrics")
        .and_then(|p| p["containerPort"].as_u64())
        .and_then(|p| u16::try_from(p).ok())
        .expect("a metrics port")
}

/// The recording, enforcing proxy, serving from inside a lab namespace on a thread that entered
/// it; stopped on drop.
struct Proxy {
    log: AuditLog,
    /// Component -> the URL its kubeconfig points at.
    urls: BTreeMap<String, String>,
    cancel: CancellationToken,
    thread: Option<JoinHandle<()>>,
}

impl Proxy {
    fn start(netns: &str, bind: IpAddr, upstream: &Path, identities: Vec<Identity>) -> Proxy {
        let log = AuditLog::default();
        let cancel = CancellationToken::new();
        let (tx, rx) = mpsc::channel();
        let (netns, upstream) = (netns.to_string(), upstream.to_path_buf());
        let (thread_log, thread_cancel) = (log.clone(), cancel.clone());
        let thread = std::thread::spawn(move || {
            let fail = |tx: &mpsc::Sender<Result<_, String>>, why: String| {
                let _ = tx.send(Err(why));
            };
            let handle = match std::fs::File::open(format!("/var/run/netns/{netns}")) {
                Ok(h) => h,
                Err(e) => return fail(&tx, format!("opening netns {netns}: {e}")),
            };
            // Sockets opened by this thread and the runtime's workers live in the namespace.
            if let Err(e) = rustix::thread::move_into_link_name_space(
                handle.as_fd(),
                Some(rustix::thread::LinkNameSpaceType::Network),
            ) {
                return fail(&tx, format!("entering {netns}: {e}"));
            }
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => return fail(&tx, format!("runtime: {e}")),
            };
            runtime.block_on(async move {
                let client = match audit::upstream(&upstream).await {
                    Ok(c) => c,
                    Err(e) => return fail(&tx, e.to_string()),
                };
                let mut urls = BTreeMap::new();
                for identity in identities {
                    let listener = match tokio::net::TcpListener::bind((bind, 0)).await {
                        Ok(l) => l,
                        Err(e) => return fail(&tx, format!("bind {bind}: {e}")),
                    };
                    let addr = listener.local_addr().map_err(|e| e.to_string());
                    let Ok(addr) = addr else {
                        return fail(&tx, "no local address".into());
                    };
                    urls.insert(identity.component.clone(), format!("http://{addr}"));
                    tokio::spawn(audit::serve(
                        listener,
                        identity,
                        client.clone(),
                        thread_log.clone(),
                        thread_cancel.clone(),
                    ));
                }
                let _ = tx.send(Ok(urls));
                thread_cancel.cancelled().await;
            });
            runtime.shutdown_timeout(Duration::from_secs(2));
        });
        let urls = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the proxy thread answers")
            .expect("the proxy starts");
        Proxy {
            log,
            urls,
            cancel,
            thread: Some(thread),
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cancel.cancel();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One chart container run as a lab process.
struct Launcher<'a> {
    dir: &'a Path,
    workload: &'a Object,
    container: &'a str,
    kubeconfig: PathBuf,
    mounts: BTreeMap<String, PathBuf>,
}

impl Launcher<'_> {
    fn start(&self, name: &str, pod_name: &str, host: &HostPlan) -> Running {
        let pod = PodContext {
            pod_name: pod_name.into(),
            namespace: NAMESPACE.into(),
            node_name: host.name.clone(),
            pod_ip: host.ipv4.to_string(),
            mounts: self.mounts.clone(),
        };
        let pod_spec = self.workload.pod_spec().expect("a pod template");
        let spec = process_spec(pod_spec, self.container, &pod).expect("a runnable container");
        assert_eq!(
            spec.command, None,
            "the chart runs the image's entrypoint, the binary itself"
        );
        let binary = format!("ironlb-{}", self.container);
        let mut env = spec.env.clone();
        env.insert("KUBECONFIG".into(), self.kubeconfig.display().to_string());
        Running::start(
            name,
            &host.netns,
            &bin_dir().join(binary),
            &spec.args,
            &env,
            &self.dir.join("logs").join(format!("{name}.log")),
        )
        .expect("start")
    }
}

fn service_account(workload: &Object) -> String {
    workload
        .pod_spec()
        .and_then(|p| p.get("serviceAccountName"))
        .and_then(Value::as_str)
        .expect("serviceAccountName")
        .to_string()
}

fn kubectl_json(cluster: &Cluster, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    serde_json::from_str(&cluster.kubectl(&all).unwrap_or_default()).unwrap_or(Value::Null)
}

/// The node in the Service's ServiceL2Status, or "" when there is none.
fn announcer(cluster: &Cluster, name: &str) -> String {
    cluster
        .kubectl(&[
            "get",
            "servicel2statuses",
            "-n",
            NAMESPACE,
            "-l",
            &format!("ironlb.io/service-name={name}"),
            "-o",
            "jsonpath={.items[*].status.node}",
        ])
        .unwrap_or_default()
        .trim()
        .to_string()
}

fn wait_announcer(cluster: &Cluster, name: &str, ok: impl Fn(&str) -> bool, what: &str) -> String {
    wait_for(what, Duration::from_secs(20), || {
        let node = announcer(cluster, name);
        if ok(&node) { Ok(node) } else { Err(node) }
    })
    .unwrap()
}

/// `reason` Events (events.k8s.io) about Service `default/name`, with their `series.count`.
fn events(cluster: &Cluster, name: &str, reason: &str) -> Vec<Value> {
    let list = kubectl_json(cluster, &["get", "events.events.k8s.io", "-n", "default"]);
    list.get("items")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|e| {
            e.pointer("/regarding/name").and_then(Value::as_str) == Some(name)
                && e.get("reason").and_then(Value::as_str) == Some(reason)
        })
        .cloned()
        .collect()
}

fn lease_holder(cluster: &Cluster, lease: &str) -> String {
    cluster
        .kubectl(&[
            "get",
            "lease",
            lease,
            "-n",
            NAMESPACE,
            "-o",
            "jsonpath={.spec.holderIdentity}",
        ])
        .unwrap_or_default()
        .trim()
        .to_string()
}

fn readyz(cluster: &Cluster, ip: &str, port: u16) -> Result<(), String> {
    let out = cluster
        .exec(
            "client",
            &[
                "curl",
                "-sf",
                "--max-time",
                "2",
                &format!("http://{ip}:{port}/readyz"),
            ],
        )
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{ip}:{port}/readyz not ready"))
    }
}

fn annotate_node(cluster: &Cluster, node: &str, value: &str) {
    cluster
        .kubectl(&[
            "annotate",
            "node",
            node,
            "--overwrite",
            &format!("lab.ironlb.io/network-unavailable={value}"),
        ])
        .unwrap();
}

#[test]
fn rbac_grants_exactly_what_the_binaries_use_with_default_values() {
    scenario(&[]);
}

/// Other ServiceAccount and Lease names, another class with --ignore-unclassed, ipMode VIP,
/// other ports: the grants must follow the values.
#[test]
fn rbac_grants_exactly_what_the_binaries_use_with_all_features_values() {
    let values = all_features_values().display().to_string();
    scenario(&["-f", &values]);
}

fn scenario(values: &[&str]) {
    let manifests: Manifests = Helm::locate()
        .expect("helm")
        .render(values)
        .expect("helm template");
    let deployment = manifests
        .of_kind("Deployment")
        .next()
        .expect("the controller Deployment");
    let daemonset = manifests
        .of_kind("DaemonSet")
        .next()
        .expect("the speaker DaemonSet");
    let controller_sa = service_account(deployment);
    let speaker_sa = service_account(daemonset);
    let controller_perms = permissions_for(&manifests, NAMESPACE, &controller_sa).unwrap();
    let speaker_perms = permissions_for(&manifests, NAMESPACE, &speaker_sa).unwrap();
    assert!(!controller_perms.is_empty() && !speaker_perms.is_empty());
    let lease_name = arg(deployment, "controller", "--lease-name");
    let class = arg(deployment, "controller", "--lb-class");
    let vip_mode = arg(deployment, "controller", "--ip-mode") == "VIP";
    let (controller_port, speaker_port) = (
        admin_port(deployment, "controller"),
        admin_port(daemonset, "speaker"),
    );

    let cluster = Cluster::lab(LabOptions {
        nodes: 3,
        ipv6: false,
        extra_args: vec![
            "--controller".into(),
            "no".into(),
            "--speaker".into(),
            "no".into(),
        ],
    })
    .expect("lab");
    let topology = cluster.topology().expect("a lab").clone();
    let dir = topology.dir.clone();
    let cp = topology.plan.control_plane().clone();
    let nodes: Vec<HostPlan> = topology.plan.nodes().cloned().collect();

    let identity = |component: &str, sa: &str, perms: &[Permission]| Identity {
        component: component.into(),
        user: format!("system:serviceaccount:{NAMESPACE}:{sa}"),
        permissions: Some(perms.to_vec()),
    };
    let proxy = Proxy::start(
        &cp.netns,
        IpAddr::V4(cp.ipv4),
        &topology.kubeconfig_internal,
        vec![
            identity("controller", &controller_sa, &controller_perms),
            identity("speaker", &speaker_sa, &speaker_perms),
        ],
    );
    let kubeconfig = |component: &str| {
        let path = dir.join(format!("{component}.audit.kubeconfig"));
        std::fs::write(&path, audit::kubeconfig(&proxy.urls[component])).unwrap();
        path
    };
    // The membership key, where the chart mounts the Secret the lab created.
    let key_dir = dir.join("memberlist-mount");
    std::fs::create_dir_all(&key_dir).unwrap();
    std::fs::copy(dir.join("memberlist.key"), key_dir.join("key")).unwrap();

    let controllers = Launcher {
        dir: &dir,
        workload: deployment,
        container: "controller",
        kubeconfig: kubeconfig("controller"),
        mounts: BTreeMap::new(),
    };
    let speakers = Launcher {
        dir: &dir,
        workload: daemonset,
        container: "speaker",
        kubeconfig: kubeconfig("speaker"),
        mounts: BTreeMap::from([("/etc/ironlb/memberlist".to_string(), key_dir.clone())]),
    };

    // Two controller replicas, as the Deployment: one on the control plane, one on node1 (a
    // pod has its own network namespace, so both bind the admin port).
    let replica_hosts = [&cp, &nodes[0]];
    let mut replicas: Vec<Running> = replica_hosts
        .iter()
        .enumerate()
        .map(|(i, host)| {
            controllers.start(
                &format!("chart-controller-{i}"),
                &format!("ironlb-controller-lab-{i}"),
                host,
            )
        })
        .collect();
    let mut speaker_procs: BTreeMap<String, Running> = nodes
        .iter()
        .map(|n| {
            let name = format!("chart-speaker-{}", n.name);
            (
                n.name.clone(),
                speakers.start(&name, &format!("ironlb-speaker-{}", n.name), n),
            )
        })
        .collect();
    let logs = |procs: &[&Running]| -> String {
        procs
            .iter()
            .map(|p| format!("--- {}\n{}", p.name, p.log_tail(20)))
            .collect::<Vec<_>>()
            .join("\n")
    };
    for host in replica_hosts {
        wait_for(
            "a controller replica to be ready",
            Duration::from_secs(30),
            || readyz(&cluster, &host.ipv4.to_string(), controller_port),
        )
        .unwrap_or_else(|e| panic!("{e}\n{}", logs(&replicas.iter().collect::<Vec<_>>())));
    }
    for n in &nodes {
        wait_for("a speaker to be ready", Duration::from_secs(30), || {
            readyz(&cluster, &n.ipv4.to_string(), speaker_port)
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", logs(&speaker_procs.values().collect::<Vec<_>>())));
    }

    // Allocation, pool status, events, announcement.
    cluster.apply(POOL).unwrap();
    cluster
        .kubectl(&[
            "create",
            "deployment",
            "web",
            "--image=registry.k8s.io/e2e-test-images/agnhost:2.53",
            "--replicas=3",
            "--",
            "/agnhost",
            "netexec",
            "--http-port=8080",
        ])
        .unwrap();
    for name in ["web-a", "web-b"] {
        cluster.apply(&service(name, &class)).unwrap();
    }
    let ip_a = cluster.wait_external_ip("web-a", IP_WAIT).unwrap();
    cluster.wait_external_ip("web-b", IP_WAIT).unwrap();
    let owner_a = wait_announcer(&cluster, "web-a", |n| !n.is_empty(), "web-a announced");
    let owner_b = wait_announcer(&cluster, "web-b", |n| !n.is_empty(), "web-b announced");
    // In VIP mode kube-proxy, not the speaker, serves the address; the stand-in does not.
    if !vip_mode {
        let body = cluster
            .curl_from_client(&format!("http://{ip_a}/hostname"))
            .expect("the VIP answers under the chart's RBAC");
        assert!(body.starts_with("web-"), "{body}");
    }
    wait_for(
        "the pool status to count 2",
        Duration::from_secs(20),
        || {
            let pool = kubectl_json(&cluster, &["get", "ipaddresspool", "rbac", "-n", NAMESPACE]);
            match pool.pointer("/status/assigned").and_then(Value::as_i64) {
                Some(2) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .unwrap();
    for reason in ["IPAllocated", "nodeAssigned"] {
        wait_for(reason, Duration::from_secs(20), || {
            if events(&cluster, "web-a", reason).is_empty() {
                Err("none yet".to_string())
            } else {
                Ok(())
            }
        })
        .unwrap();
    }
    // The leader renews its Lease every retry period (2 s by default).
    let leader = lease_holder(&cluster, &lease_name);
    assert!(leader.starts_with("ironlb-controller-lab-"), "{leader:?}");
    std::thread::sleep(Duration::from_secs(3));

    // Loss and return without a restart: the announcing node's network becomes unavailable, a
    // peer takes over, and the first node takes the address back, announcing it again with
    // the same Event (which the event recorder turns into a series update).
    annotate_node(&cluster, &owner_a, "true");
    let peer = wait_announcer(
        &cluster,
        "web-a",
        |n| !n.is_empty() && n != owner_a,
        "a peer to take web-a over",
    );
    annotate_node(&cluster, &owner_a, "false");
    wait_announcer(
        &cluster,
        "web-a",
        |n| n == owner_a,
        "web-a back on its first node",
    );
    eprintln!("web-a: {owner_a} -> {peer} -> {owner_a}");

    // A speaker stops (SIGTERM) and comes back: takeover, then its own announcement again.
    let stopped = speaker_procs
        .get_mut(&owner_b)
        .expect("the announcer's speaker");
    assert!(
        stopped.stop(Duration::from_secs(10)),
        "the speaker stops on SIGTERM"
    );
    wait_announcer(
        &cluster,
        "web-b",
        |n| !n.is_empty() && n != owner_b,
        "a peer to take web-b over",
    );
    let host = nodes.iter().find(|n| n.name == owner_b).unwrap();
    *speaker_procs.get_mut(&owner_b).unwrap() = speakers.start(
        &format!("chart-speaker-{owner_b}-again"),
        &format!("ironlb-speaker-{owner_b}-2"),
        host,
    );
    wait_announcer(
        &cluster,
        "web-b",
        |n| n == owner_b,
        "web-b back on its node",
    );

    // Releases: a type change (status and annotation cleared) and a deletion; the speakers
    // delete the ServiceL2Statuses.
    cluster
        .kubectl(&[
            "patch",
            "svc",
            "web-a",
            "--type=merge",
            "-p",
            r#"{"spec":{"type":"ClusterIP","loadBalancerClass":null}}"#,
        ])
        .unwrap();
    cluster.kubectl(&["delete", "svc", "web-b"]).unwrap();
    for name in ["web-a", "web-b"] {
        wait_announcer(&cluster, name, str::is_empty, "the ServiceL2Status to go");
    }
    wait_for(
        "web-a's status to be cleared",
        Duration::from_secs(20),
        || {
            let ip = cluster.external_ip("web-a");
            if ip.is_empty() { Ok(()) } else { Err(ip) }
        },
    )
    .unwrap();

    // Leader handover: the leader stops (releasing the Lease), the standby takes over and
    // allocates.
    let leader_index: usize = leader
        .rsplit('-')
        .next()
        .and_then(|i| i.parse().ok())
        .expect("a replica index");
    assert!(
        replicas[leader_index].stop(Duration::from_secs(15)),
        "leader stops"
    );
    wait_for("the standby to lead", Duration::from_secs(30), || {
        let holder = lease_holder(&cluster, &lease_name);
        if !holder.is_empty() && holder != leader {
            Ok(())
        } else {
            Err(holder)
        }
    })
    .unwrap();
    cluster.apply(&service("web-c", &class)).unwrap();
    cluster.wait_external_ip("web-c", IP_WAIT).unwrap();

    // Everything stops gracefully, so shutdown calls are recorded too.
    for p in replicas.iter_mut().chain(speaker_procs.values_mut()) {
        p.stop(Duration::from_secs(15));
    }

    let refused: Vec<String> = proxy
        .log
        .refused()
        .iter()
        .map(|r| {
            format!(
                "{} {} {}{}",
                r.component,
                r.method,
                r.path,
                r.query
                    .as_deref()
                    .map(|q| format!("?{q}"))
                    .unwrap_or_default()
            )
        })
        .collect();
    let mut failures = Vec::new();
    if !refused.is_empty() {
        failures.push(format!(
            "refused by the chart's RBAC:\n  {}",
            refused.join("\n  ")
        ));
    }
    for (component, perms) in [
        ("controller", &controller_perms),
        ("speaker", &speaker_perms),
    ] {
        let used = proxy
            .log
            .accesses(|r| r.component == component)
            .expect("classifiable requests");
        eprintln!("{component} used:");
        for access in &used {
            eprintln!("  {access}");
        }
        let comparison = compare(perms, &used, NAMESPACE, ALLOWANCES);
        if !comparison.is_exact() {
            failures.push(format!("{component}:\n{comparison}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    drop(proxy);
    cluster.down().unwrap();
}
