//! `lab demo`: the README's first command. Brings a lab up, walks the user's path with the
//! real kubectl (a pool, a 3-replica Deployment, `kubectl expose --type=LoadBalancer`,
//! `kubectl get svc`, a curl from the client) and takes the lab down again.

use std::process::Command;
use std::time::{Duration, Instant};

use super::kubectl::Kubectl;
use super::lifecycle::{self, UpOptions};
use super::topology::Topology;
use super::{Error, Result};

const POOL: &str = r#"apiVersion: ironlb.io/v1beta1
kind: IPAddressPool
metadata:
  name: demo
  namespace: ironlb-system
spec:
  addresses:
  - 198.51.100.240-198.51.100.250
---
apiVersion: ironlb.io/v1beta1
kind: L2Advertisement
metadata:
  name: demo
  namespace: ironlb-system
spec:
  ipAddressPools:
  - demo
"#;

/// A pod image that answers HTTP like the lab's kube-proxy stand-in does, for when the same
/// commands are run on a real cluster.
const IMAGE: &str = "registry.k8s.io/e2e-test-images/agnhost:2.53";

fn step(text: &str) {
    println!("\n$ {text}");
}

fn show(kubectl: &Kubectl, args: &[&str], stdin: Option<&str>) -> Result<String> {
    step(&format!("kubectl {}", args.join(" ")));
    let out = kubectl.run(args, stdin)?;
    print!("{out}");
    Ok(out)
}

fn poll<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Where the demo's curl goes: through the VIP when speakers run to announce it, else (until
/// the speaker exists) straight to the first node's NodePort. The one place to switch.
fn curl_url(t: &Topology, external_ip: Option<&str>, node_port: &str) -> (String, &'static str) {
    let speakers_running = t.processes.iter().any(|p| p.name.starts_with("speaker-"));
    match external_ip {
        Some(ip) if speakers_running => (format!("http://{ip}/"), "through the VIP"),
        _ => {
            let node = t.plan.nodes().next().expect("a lab has a node");
            (
                format!("http://{}:{node_port}/", node.ipv4),
                "to node1's NodePort (no speaker announces the VIP yet)",
            )
        }
    }
}

pub async fn run(opts: &UpOptions, keep: bool) -> Result<()> {
    println!(
        "== ironlb lab demo: a {}-node cluster on this machine ==",
        opts.nodes
    );
    step(&format!(
        "lab up --nodes {} --dir {}",
        opts.nodes,
        opts.dir.display()
    ));
    let t = lifecycle::up(opts).await?;
    println!("lab {} is up", t.plan.id);
    let result = walk(&t);
    if keep {
        println!(
            "\nThe lab stays up: export KUBECONFIG={}; `lab down --dir {}` when done.",
            t.kubeconfig.display(),
            t.dir.display()
        );
    } else {
        step(&format!("lab down --dir {}", t.dir.display()));
        lifecycle::down(&t.dir, false)?;
        println!("lab {} is down", t.plan.id);
    }
    result
}

fn walk(t: &Topology) -> Result<()> {
    let kubectl = Kubectl::new(&t.kubeconfig)?;
    show(&kubectl, &["get", "nodes", "-o", "wide"], None)?;

    let have_crds = kubectl
        .run(&["get", "crd", "ipaddresspools.ironlb.io"], None)
        .is_ok();
    if have_crds {
        show(&kubectl, &["apply", "-f", "-"], Some(POOL))?;
    } else {
        println!("\n(the ironlb CRDs are not installed yet: skipping the IPAddressPool)");
    }
    show(
        &kubectl,
        &[
            "create",
            "deployment",
            "web",
            "--image",
            IMAGE,
            "--replicas=3",
            "--port=8080",
            "--",
            "/agnhost",
            "netexec",
            "--http-port=8080",
        ],
        None,
    )?;
    show(
        &kubectl,
        &[
            "expose",
            "deployment",
            "web",
            "--type=LoadBalancer",
            "--port=80",
            "--target-port=8080",
        ],
        None,
    )?;

    let ready = poll(Duration::from_secs(30), || {
        let out = kubectl
            .run(&["get", "pods", "-l", "app=web", "-o",
                   "jsonpath={range .items[*]}{.status.conditions[?(@.type==\"Ready\")].status}{\"\\n\"}{end}"], None)
            .ok()?;
        (out.lines().filter(|l| *l == "True").count() >= 3).then_some(())
    });
    if ready.is_none() {
        return Err(Error::Timeout {
            what: "3 ready web pods".into(),
            after: Duration::from_secs(30),
            last: String::new(),
        });
    }
    show(&kubectl, &["get", "pods", "-o", "wide"], None)?;

    let controller_running = t.processes.iter().any(|p| p.name == "controller");
    let external_ip = poll(
        Duration::from_secs(if controller_running { 15 } else { 0 }),
        || {
            let ip = kubectl
                .run(
                    &[
                        "get",
                        "svc",
                        "web",
                        "-o",
                        "jsonpath={.status.loadBalancer.ingress[0].ip}",
                    ],
                    None,
                )
                .ok()?;
            (!ip.trim().is_empty()).then(|| ip.trim().to_string())
        },
    );
    show(&kubectl, &["get", "svc", "web"], None)?;
    if external_ip.is_none() {
        println!("(EXTERNAL-IP stays <pending> until ironlb-controller runs in the lab)");
    }
    let node_port = kubectl.run(
        &[
            "get",
            "svc",
            "web",
            "-o",
            "jsonpath={.spec.ports[0].nodePort}",
        ],
        None,
    )?;

    let (url, how) = curl_url(t, external_ip.as_deref(), node_port.trim());
    println!("\nFrom the client host, {how}:");
    step(&format!("lab exec client -- curl -s {url}"));
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &t.plan.host("client")?.netns,
            "curl",
            "-sS",
            "--max-time",
            "5",
            &url,
        ])
        .output()
        .map_err(|e| Error::io("running curl in the client namespace", e))?;
    print!("{}", String::from_utf8_lossy(&out.stdout));
    if !out.status.success() {
        return Err(Error::Command {
            command: format!("curl {url}"),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(())
}
