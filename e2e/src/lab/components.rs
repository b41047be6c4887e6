//! The command lines of every process the lab starts, in one place.
//!
//! The ironlb binaries' flags are still moving; adjusting them means editing only
//! [`controller`] and [`speaker`] here. Pure: builds argument lists from the plan and the lab
//! directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::plan::{HostPlan, LabPlan, Role};
use super::topology::{Desired, ProcessRecord};

/// The namespace ironlb is installed in, as the Helm chart would.
pub const IRONLB_NAMESPACE: &str = "ironlb-system";
/// The Secret holding the speakers' membership key, as the chart names it.
pub const MEMBERLIST_SECRET: &str = "ironlb-memberlist";
pub const MEMBERLIST_KEY_FILE: &str = "memberlist.key";
pub const APISERVER_PORT: u16 = 6443;
/// kube-proxy's default `--healthz-bind-address` port.
pub const KUBE_PROXY_HEALTHZ_PORT: u16 = 10256;

pub const APISERVER_BIN: &str = "lab-apiserver";
pub const NODE_AGENT_BIN: &str = "lab-node-agent";
pub const KUBE_PROXY_BIN: &str = "lab-kube-proxy";
pub const CONTROLLER_BIN: &str = "ironlb-controller";
pub const SPEAKER_BIN: &str = "ironlb-speaker";

/// Where binaries are found and logs go.
#[derive(Debug, Clone)]
pub struct Env<'a> {
    pub plan: &'a LabPlan,
    pub dir: &'a Path,
    pub bin_dir: &'a Path,
}

impl Env<'_> {
    fn record(
        &self,
        name: &str,
        host: &str,
        program: PathBuf,
        args: Vec<String>,
        env: BTreeMap<String, String>,
    ) -> ProcessRecord {
        ProcessRecord {
            name: name.to_string(),
            host: host.to_string(),
            program,
            args,
            env,
            log: self.dir.join("logs").join(format!("{name}.log")),
            pid: None,
            desired: Desired::Running,
        }
    }

    fn internal_kubeconfig_env(&self) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        env.insert(
            "KUBECONFIG".to_string(),
            self.dir.join("kubeconfig.internal").display().to_string(),
        );
        env
    }

    pub fn bin(&self, name: &str) -> PathBuf {
        self.bin_dir.join(name)
    }

    /// The API-server stand-in, with both kubeconfigs written by it once it listens.
    pub fn apiserver(&self) -> ProcessRecord {
        let cp = self.plan.control_plane();
        let mgmt = self.plan.mgmt.cp_ip;
        let dir = self.dir.display();
        let args = vec![
            "--data-dir".into(),
            format!("{dir}/apiserver"),
            "--listen".into(),
            format!("0.0.0.0:{APISERVER_PORT}"),
            "--tls-san".into(),
            cp.ipv4.to_string(),
            "--tls-san".into(),
            mgmt.to_string(),
            "--kubeconfig-out".into(),
            format!("{dir}/kubeconfig={}", self.plan.external_api_url()),
            "--kubeconfig-out".into(),
            format!("{dir}/kubeconfig.internal={}", self.plan.internal_api_url()),
            "--service-cluster-ip-range".into(),
            self.plan.service_cidrs.join(","),
        ];
        self.record(
            "apiserver",
            &cp.name,
            self.bin(APISERVER_BIN),
            args,
            BTreeMap::new(),
        )
    }

    /// The kubelet and EndpointSlice-controller stand-in, for every Kubernetes node.
    pub fn node_agent(&self) -> ProcessRecord {
        let mut args = Vec::new();
        for h in self.plan.hosts.iter().filter(|h| h.is_kube_node()) {
            let ips: Vec<String> = h.ips().iter().map(ToString::to_string).collect();
            args.push("--node".into());
            args.push(format!("{}={}", h.name, ips.join(",")));
            if h.role == Role::ControlPlane {
                args.push("--control-plane".into());
                args.push(h.name.clone());
            }
        }
        for cidr in &self.plan.pod_cidrs {
            args.push("--pod-cidr".into());
            args.push(cidr.clone());
        }
        let cp = &self.plan.control_plane().name;
        let env = self.internal_kubeconfig_env();
        self.record("node-agent", cp, self.bin(NODE_AGENT_BIN), args, env)
    }

    /// The kube-proxy stand-in of one Kubernetes node.
    pub fn kube_proxy(&self, host: &HostPlan) -> ProcessRecord {
        let mut args = vec!["--node-name".into(), host.name.clone()];
        for ip in host.ips() {
            args.push("--node-ip".into());
            args.push(ip.to_string());
        }
        let env = self.internal_kubeconfig_env();
        let name = format!("kube-proxy-{}", host.name);
        self.record(&name, &host.name, self.bin(KUBE_PROXY_BIN), args, env)
    }

    /// `ironlb-controller`, as the chart runs it but as a single replica.
    pub fn controller(&self) -> ProcessRecord {
        let args = vec!["--namespace".into(), IRONLB_NAMESPACE.into()];
        let mut env = self.internal_kubeconfig_env();
        env.insert("RUST_LOG".into(), "info".into());
        let cp = &self.plan.control_plane().name;
        self.record("controller", cp, self.bin(CONTROLLER_BIN), args, env)
    }

    /// `ironlb-speaker` on one worker node.
    pub fn speaker(&self, host: &HostPlan) -> ProcessRecord {
        let key = self.dir.join(MEMBERLIST_KEY_FILE);
        let args = vec![
            "--namespace".into(),
            IRONLB_NAMESPACE.into(),
            "--membership-key-file".into(),
            key.display().to_string(),
        ];
        let mut env = self.internal_kubeconfig_env();
        env.insert("NODE_NAME".into(), host.name.clone());
        env.insert("RUST_LOG".into(), "info".into());
        let name = format!("speaker-{}", host.name);
        self.record(&name, &host.name, self.bin(SPEAKER_BIN), args, env)
    }
}

/// ironlb-controller's admin port (its `--admin-addr` default).
pub const CONTROLLER_ADMIN_PORT: u16 = 7472;

/// Where the controller reports readiness, reachable from the segment.
pub fn controller_readyz(plan: &LabPlan) -> String {
    format!(
        "http://{}:{CONTROLLER_ADMIN_PORT}/readyz",
        plan.control_plane().ipv4
    )
}

/// The URL on which a kube-proxy stand-in reports health, reachable from the segment.
pub fn kube_proxy_healthz(host: &HostPlan) -> String {
    format!("http://{}:{KUBE_PROXY_HEALTHZ_PORT}/healthz", host.ipv4)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_env<T>(f: impl FnOnce(&Env<'_>) -> T) -> T {
        let plan = LabPlan::new(0, 2, true).unwrap();
        f(&Env {
            plan: &plan,
            dir: Path::new("/d"),
            bin_dir: Path::new("/bin-dir"),
        })
    }

    fn flag<'a>(args: &'a [String], name: &str) -> Vec<&'a str> {
        args.windows(2)
            .filter(|w| w[0] == name)
            .map(|w| w[1].as_str())
            .collect()
    }

    #[test]
    fn apiserver_gets_both_kubeconfigs_and_service_ranges() {
        let r = with_env(|e| e.apiserver());
        assert_eq!(r.program, Path::new("/bin-dir/lab-apiserver"));
        assert_eq!(r.host, "cp");
        assert_eq!(r.log, Path::new("/d/logs/apiserver.log"));
        assert_eq!(flag(&r.args, "--tls-san"), ["192.0.2.2", "203.0.113.194"]);
        assert_eq!(
            flag(&r.args, "--kubeconfig-out"),
            [
                "/d/kubeconfig=https://203.0.113.194:6443",
                "/d/kubeconfig.internal=https://192.0.2.2:6443"
            ]
        );
        assert_eq!(
            flag(&r.args, "--service-cluster-ip-range"),
            ["203.0.113.0/25,2001:db8:fffe::/108"]
        );
        assert_eq!(flag(&r.args, "--data-dir"), ["/d/apiserver"]);
    }

    #[test]
    fn node_agent_knows_every_kube_node_but_not_the_client() {
        let r = with_env(|e| e.node_agent());
        assert_eq!(
            flag(&r.args, "--node"),
            [
                "cp=192.0.2.2,2001:db8::2",
                "node1=192.0.2.11,2001:db8::11",
                "node2=192.0.2.12,2001:db8::12"
            ]
        );
        assert_eq!(flag(&r.args, "--control-plane"), ["cp"]);
        assert_eq!(r.env["KUBECONFIG"], "/d/kubeconfig.internal");
    }

    #[test]
    fn speaker_and_kube_proxy_are_per_node() {
        let (speaker, proxy) = with_env(|e| {
            let node2 = e.plan.host("node2").unwrap();
            (e.speaker(node2), e.kube_proxy(node2))
        });
        assert_eq!(speaker.name, "speaker-node2");
        assert_eq!(speaker.env["NODE_NAME"], "node2");
        assert_eq!(flag(&speaker.args, "--namespace"), ["ironlb-system"]);
        assert_eq!(
            flag(&speaker.args, "--membership-key-file"),
            ["/d/memberlist.key"]
        );
        assert_eq!(proxy.name, "kube-proxy-node2");
        assert_eq!(
            flag(&proxy.args, "--node-ip"),
            ["192.0.2.12", "2001:db8::12"]
        );
    }
}
