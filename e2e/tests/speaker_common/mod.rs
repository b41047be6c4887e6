//! What the speaker scenarios share: the pool and advertisement a user applies, Services
//! created the way a user would (kubectl), and the questions every scenario asks: which IP did
//! the Service get, which node announces it (ServiceL2Status and the `nodeAssigned` Event),
//! which MAC the client sends to and who answers ARP for it.
//!
//! Every wait is bounded; the errors carry the last observation.

#![allow(dead_code)] // each scenario file uses a different part

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use e2e::bench::prom_text;
use e2e::harness::l2::{self, Neighbour};
use e2e::harness::{Capability, Cluster, wait_for};

/// The namespace the lab installs ironlb into (ServiceL2Statuses live there).
pub const IRONLB_NS: &str = "ironlb-system";
/// The client's address on the segment, as the backends must see it.
pub const CLIENT_IP: &str = "192.0.2.100";
/// The speaker's admin port inside each node namespace.
pub const SPEAKER_METRICS: &str = "http://127.0.0.1:7473/metrics";
/// How long an IP may take to be announced, or to move after a change.
pub const SETTLE: Duration = Duration::from_secs(15);

/// The start of most scenarios: a lab (these scenarios need its MACs and namespaces), the
/// default pool and a 3-replica `web` LoadBalancer Service, with the IP it got. `None` on a
/// cluster that is not the lab.
pub fn lab_with_web() -> Option<(Cluster, IpAddr)> {
    let cluster = Cluster::start().expect("cluster");
    if !cluster.require(Capability::LabOnly) {
        return None;
    }
    cluster.apply(&default_pool()).unwrap();
    create_web(&cluster, "web", 3);
    let vip = wait_external_ip(&cluster, "web");
    Some((cluster, vip))
}

/// An IPAddressPool and an L2Advertisement for it, as in the README's quick start.
pub fn pool(name: &str, addresses: &[&str]) -> String {
    let list: String = addresses.iter().map(|a| format!("  - {a}\n")).collect();
    format!(
        "apiVersion: ironlb.io/v1beta1\nkind: IPAddressPool\nmetadata:\n  name: {name}\n  namespace: {IRONLB_NS}\nspec:\n  addresses:\n{list}---\napiVersion: ironlb.io/v1beta1\nkind: L2Advertisement\nmetadata:\n  name: {name}\n  namespace: {IRONLB_NS}\nspec:\n  ipAddressPools: [{name}]\n"
    )
}

/// The default pool of the scenarios.
pub fn default_pool() -> String {
    pool("scenario", &["198.51.100.240-198.51.100.250"])
}

/// `kubectl create deployment NAME` (agnhost netexec) and `kubectl expose deployment NAME
/// --type=LoadBalancer --port=80`, the user's path.
pub fn create_web(cluster: &Cluster, name: &str, replicas: u32) {
    cluster
        .kubectl(&[
            "create",
            "deployment",
            name,
            "--image=registry.k8s.io/e2e-test-images/agnhost:2.53",
            &format!("--replicas={replicas}"),
            "--port=8080",
            "--",
            "/agnhost",
            "netexec",
            "--http-port=8080",
            "--udp-port=8080",
        ])
        .expect("kubectl create deployment");
    cluster
        .kubectl(&[
            "expose",
            "deployment",
            name,
            "--type=LoadBalancer",
            "--port=80",
            "--target-port=8080",
        ])
        .expect("kubectl expose");
}

/// A pod pinned to `node`, labelled `app=<app>`, answering like agnhost netexec.
pub fn pinned_pod(name: &str, app: &str, node: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  labels: {{app: {app}}}\nspec:\n  nodeName: {node}\n  containers:\n  - name: web\n    image: registry.k8s.io/e2e-test-images/agnhost:2.53\n    args: [netexec, --http-port=8080, --udp-port=8080]\n"
    )
}

/// The Service's ingress IPs (empty while pending).
pub fn ingress_ips(cluster: &Cluster, service: &str) -> Vec<IpAddr> {
    cluster
        .external_ip(service)
        .split_whitespace()
        .filter_map(|ip| ip.parse().ok())
        .collect()
}

/// Waits for the Service's EXTERNAL-IP (the first ingress IP).
pub fn wait_external_ip(cluster: &Cluster, service: &str) -> IpAddr {
    wait_for(&format!("{service} to get an EXTERNAL-IP"), SETTLE, || {
        ingress_ips(cluster, service)
            .first()
            .copied()
            .ok_or_else(|| "<pending>".to_string())
    })
    .unwrap()
}

/// The nodes named by the ServiceL2Statuses of `service` that list `ip`.
pub fn status_nodes(cluster: &Cluster, service: &str, ip: IpAddr) -> Vec<String> {
    let json = cluster
        .kubectl(&[
            "get",
            "servicel2statuses",
            "-n",
            IRONLB_NS,
            "-l",
            &format!("ironlb.io/service-name={service}"),
            "-o",
            "json",
        ])
        .unwrap_or_default();
    let list: serde_json::Value = serde_json::from_str(&json).unwrap_or_default();
    let ip = ip.to_string();
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|item| {
            item["status"]["ips"]
                .as_array()
                .is_some_and(|ips| ips.iter().any(|i| i.as_str() == Some(ip.as_str())))
        })
        .filter_map(|item| item["status"]["node"].as_str().map(str::to_string))
        .collect()
}

/// The one node the ServiceL2Status names for `ip`, once there is exactly one.
pub fn wait_owner(cluster: &Cluster, service: &str, ip: IpAddr) -> String {
    wait_owner_where(cluster, service, ip, |_| true)
}

/// Like [`wait_owner`], until the owner satisfies `accept`.
pub fn wait_owner_where(
    cluster: &Cluster,
    service: &str,
    ip: IpAddr,
    accept: impl Fn(&str) -> bool,
) -> String {
    wait_for(
        &format!("a ServiceL2Status naming the node that announces {ip}"),
        SETTLE,
        || match status_nodes(cluster, service, ip).as_slice() {
            [one] if accept(one) => Ok(one.clone()),
            other => Err(format!("{other:?}")),
        },
    )
    .unwrap()
}

/// The messages of the Service's `nodeAssigned` Events, oldest first.
pub fn node_assigned_messages(cluster: &Cluster, service: &str) -> Vec<String> {
    let json = cluster
        .kubectl(&["get", "events", "-n", "default", "-o", "json"])
        .unwrap_or_default();
    let list: serde_json::Value = serde_json::from_str(&json).unwrap_or_default();
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["reason"] == "nodeAssigned" && e["involvedObject"]["name"] == service)
        .filter_map(|e| e["message"].as_str().map(str::to_string))
        .collect()
}

/// The MAC of a lab host, from `topology.json`.
pub fn mac_of(cluster: &Cluster, host: &str) -> String {
    cluster
        .topology()
        .expect("a lab")
        .plan
        .host(host)
        .expect("a host of the lab")
        .mac
        .to_string()
}

/// The lab host whose MAC this is.
pub fn host_with_mac(cluster: &Cluster, mac: &str) -> Option<String> {
    cluster
        .topology()?
        .plan
        .hosts
        .iter()
        .find(|h| h.mac.to_string() == mac)
        .map(|h| h.name.clone())
}

/// The network namespace of a lab host.
pub fn netns_of(cluster: &Cluster, host: &str) -> String {
    cluster
        .topology()
        .expect("a lab")
        .plan
        .host(host)
        .expect("a host of the lab")
        .netns
        .clone()
}

/// The client's neighbour entry for `ip`.
pub fn client_neighbour(cluster: &Cluster, ip: IpAddr) -> Option<Neighbour> {
    l2::neighbour(cluster, "client", ip).expect("ip neigh on the client")
}

/// The MAC the client's neighbour table holds for `ip` (None while unresolved).
pub fn client_neighbour_mac(cluster: &Cluster, ip: IpAddr) -> Option<String> {
    client_neighbour(cluster, ip)
        .and_then(|n| n.mac)
        .map(|m| m.to_string())
}

/// Who answers ARP for `ip` from the client: replies per MAC over a one-second window.
pub fn arp_answers(cluster: &Cluster, ip: IpAddr) -> BTreeMap<String, u32> {
    let IpAddr::V4(v4) = ip else {
        panic!("ARP is for IPv4 addresses, not {ip}");
    };
    l2::arp_responders(
        &netns_of(cluster, "client"),
        "eth0",
        v4,
        4,
        Duration::from_secs(1),
    )
    .expect("ARP from the client")
}

/// `key=value` fields of the stand-in's one-line reply.
pub fn fields(body: &str) -> BTreeMap<String, String> {
    body.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// `curl http://VIP/` from the client until it answers (bounded); the reply's fields.
pub fn curl_vip(cluster: &Cluster, ip: IpAddr, path: &str) -> BTreeMap<String, String> {
    let url = url(ip, 80, path);
    let body = wait_for(&format!("{url} to answer"), SETTLE, || {
        cluster.curl_from_client(&url).map_err(|e| e.to_string())
    })
    .unwrap();
    fields(&body)
}

/// `http://IP:PORT/PATH` with IPv6 literals bracketed.
pub fn url(ip: IpAddr, port: u16, path: &str) -> String {
    let host = match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    };
    if port == 80 {
        format!("http://{host}/{path}")
    } else {
        format!("http://{host}:{port}/{path}")
    }
}

/// One curl from the client, `-g` so IPv6 literals are not read as globs: the body, or the
/// error text.
pub fn curl_once(cluster: &Cluster, url: &str, max_time: &str) -> Result<String, String> {
    let out = cluster
        .exec(
            "client",
            &["curl", "-gsS", "--fail", "--max-time", max_time, url],
        )
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// The samples of a speaker's `/metrics`, read inside its node.
pub fn speaker_metrics(cluster: &Cluster, node: &str) -> Vec<prom_text::Sample> {
    let out = cluster
        .exec(node, &["curl", "-sS", "--max-time", "3", SPEAKER_METRICS])
        .expect("lab exec curl");
    assert!(
        out.status.success(),
        "the speaker on {node} serves /metrics: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    prom_text::parse(&String::from_utf8_lossy(&out.stdout)).expect("Prometheus text")
}

/// One counter or gauge of a speaker (0 when the labelled series does not exist yet).
pub fn speaker_metric(cluster: &Cluster, node: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    prom_text::value_of(&speaker_metrics(cluster, node), name, labels).unwrap_or(0.0)
}

/// Every worker node of the lab (the speakers' nodes).
pub fn worker_nodes(cluster: &Cluster) -> Vec<String> {
    cluster
        .topology()
        .expect("a lab")
        .plan
        .nodes()
        .map(|h| h.name.clone())
        .collect()
}
