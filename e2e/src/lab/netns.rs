//! Building and tearing down the lab's namespaces and links with iproute2.
//!
//! The `ip` commands are rendered from the [`LabPlan`] by pure functions (one batch per
//! namespace, tested below) and then fed to `ip -n NS -batch -`, one process per namespace.
//! Nothing here touches the root namespace except the management veth of the plan.

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use super::plan::{HostPlan, LabPlan, Role, netns_belongs_to};
use super::{Error, Result};

/// Where iproute2 keeps named network namespaces.
const NETNS_RUN_DIR: &str = "/run/netns";

/// A list of `ip` commands to run in one namespace (`None`: the root namespace).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub netns: Option<String>,
    pub lines: Vec<String>,
}

/// Sysctls for one namespace, applied before its links are configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sysctls {
    pub netns: String,
    pub settings: Vec<(String, String)>,
}

pub fn create_namespaces(plan: &LabPlan) -> Batch {
    Batch {
        netns: None,
        lines: plan
            .namespaces()
            .into_iter()
            .map(|ns| format!("netns add {ns}"))
            .collect(),
    }
}

/// The segment: a bridge with one veth per host; the host end is created straight in the
/// host's namespace with its planned MAC.
pub fn lan(plan: &LabPlan) -> Batch {
    let br = &plan.bridge;
    // No STP and no multicast snooping: a plain switch that floods NDP and gratuitous ARP.
    let mut lines = vec![
        "link set lo up".to_string(),
        format!("link add {br} type bridge stp_state 0 mcast_snooping 0"),
        format!("link set {br} up"),
    ];
    for h in &plan.hosts {
        lines.push(format!(
            "link add {port} type veth peer name {ifname} address {mac} netns {ns}",
            port = h.bridge_port,
            ifname = h.interface,
            mac = h.mac,
            ns = h.netns,
        ));
        lines.push(format!("link set {} master {br} up", h.bridge_port));
    }
    Batch {
        netns: Some(plan.lan_netns.clone()),
        lines,
    }
}

/// The management veth: its root end and address, the only lab objects in the root namespace.
pub fn mgmt_root(plan: &LabPlan) -> Batch {
    let m = &plan.mgmt;
    Batch {
        netns: None,
        lines: vec![
            format!(
                "link add {} type veth peer name {} netns {}",
                m.root_link,
                m.cp_link,
                plan.control_plane().netns
            ),
            format!(
                "addr add {}/{} dev {}",
                m.root_ip, m.prefix_len, m.root_link
            ),
            format!("link set {} up", m.root_link),
        ],
    }
}

/// A host's addresses and routes. IPv6 addresses skip duplicate address detection so they are
/// usable at once; the pool prefixes are on-link so the host resolves VIPs on the segment.
pub fn host(plan: &LabPlan, h: &HostPlan) -> Batch {
    let dev = &h.interface;
    let mut lines = vec![
        "link set lo up".to_string(),
        format!("link set {dev} up"),
        format!("addr add {}/24 dev {dev}", h.ipv4),
    ];
    if let Some(v6) = h.ipv6 {
        lines.push(format!("addr add {v6}/64 dev {dev} nodad"));
    }
    if h.role != Role::ControlPlane {
        for prefix in &plan.pool_prefixes {
            lines.push(format!("route add {prefix} dev {dev}"));
        }
    }
    if h.role == Role::ControlPlane {
        let m = &plan.mgmt;
        lines.push(format!(
            "addr add {}/{} dev {}",
            m.cp_ip, m.prefix_len, m.cp_link
        ));
        lines.push(format!("link set {} up", m.cp_link));
    }
    Batch {
        netns: Some(h.netns.clone()),
        lines,
    }
}

/// Kernel settings, namespace by namespace; the root namespace is never touched.
pub fn sysctls(plan: &LabPlan) -> Vec<Sysctls> {
    let mut out = vec![Sysctls {
        netns: plan.lan_netns.clone(),
        // The switch needs no addresses of its own, and no IPv6 chatter from them.
        settings: vec![
            ("net.ipv6.conf.all.disable_ipv6".into(), "1".into()),
            ("net.ipv6.conf.default.disable_ipv6".into(), "1".into()),
        ],
    }];
    for h in &plan.hosts {
        let mut settings = vec![
            ("net.ipv6.conf.default.accept_ra".into(), "0".into()),
            ("net.ipv6.conf.all.accept_ra".into(), "0".into()),
        ];
        if h.role == Role::Node {
            // As on a Kubernetes node.
            settings.push(("net.ipv4.ip_forward".into(), "1".into()));
        }
        out.push(Sysctls {
            netns: h.netns.clone(),
            settings,
        });
    }
    out
}

/// Runs `ip [-n NS] -batch -` with the batch on stdin.
pub fn run_batch(batch: &Batch) -> Result<()> {
    let mut cmd = Command::new("ip");
    if let Some(ns) = &batch.netns {
        cmd.args(["-n", ns]);
    }
    cmd.args(["-batch", "-"]);
    let mut input = batch.lines.join("\n");
    input.push('\n');
    run_with_input(cmd, &input)
}

fn run_with_input(mut cmd: Command, input: &str) -> Result<()> {
    let shown = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::io(format!("starting {shown}"), e))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input.as_bytes())
            .map_err(|e| Error::io(format!("writing to {shown}"), e))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| Error::io(format!("waiting for {shown}"), e))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::Command {
            command: format!("{shown} <<< {input:?}"),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// Runs a command to completion and returns its stdout.
pub fn run(cmd: &mut Command) -> Result<String> {
    let shown = format!("{cmd:?}");
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::io(format!("running {shown}"), e))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(Error::Command {
            command: shown,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// Writes sysctls from inside the namespace (through `lab internal sysctl`, so that no
/// `sysctl` binary is needed), since `/proc/sys/net` shows the reader's own namespace.
pub fn apply_sysctls(lab_binary: &Path, s: &Sysctls) -> Result<()> {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &s.netns])
        .arg(lab_binary)
        .args(["internal", "sysctl"]);
    for (key, value) in &s.settings {
        cmd.arg(format!("{key}={value}"));
    }
    run(&mut cmd).map(drop)
}

/// Sets one sysctl in the calling process's namespace.
pub fn write_sysctl(key: &str, value: &str) -> Result<()> {
    if key.is_empty() || key.contains("..") || key.contains('/') {
        return Err(Error::BadArgument(format!("not a sysctl name: {key:?}")));
    }
    let path = Path::new("/proc/sys").join(key.replace('.', "/"));
    fs::write(&path, value).map_err(|e| Error::io(format!("writing {}", path.display()), e))
}

/// The named namespaces that exist now.
pub fn list_namespaces() -> Result<BTreeSet<String>> {
    match fs::read_dir(NETNS_RUN_DIR) {
        Ok(entries) => Ok(entries
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeSet::new()),
        Err(e) => Err(Error::io(format!("listing {NETNS_RUN_DIR}"), e)),
    }
}

/// The namespaces of a lab that exist now, whatever the plan says (a crashed `up` may have
/// created only some).
pub fn lab_namespaces(id: &str) -> Result<Vec<String>> {
    Ok(list_namespaces()?
        .into_iter()
        .filter(|ns| netns_belongs_to(ns, id))
        .collect())
}

/// Whether a link of this name exists in the root namespace.
pub fn root_link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

pub fn delete_root_link(name: &str) -> Result<()> {
    if !root_link_exists(name) {
        return Ok(());
    }
    match run(Command::new("ip").args(["link", "del", name])) {
        Ok(_) => Ok(()),
        // Deleting a namespace takes its veth peers along, possibly while we look.
        Err(_) if !root_link_exists(name) => Ok(()),
        Err(e) => Err(e),
    }
}

pub fn delete_namespace(ns: &str) -> Result<()> {
    match run(Command::new("ip").args(["netns", "delete", ns])) {
        Ok(_) => Ok(()),
        Err(_) if !list_namespaces()?.contains(ns) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Sets a link up or down in a namespace.
pub fn set_link(netns: &str, link: &str, up: bool) -> Result<()> {
    let state = if up { "up" } else { "down" };
    run(Command::new("ip").args(["-n", netns, "link", "set", link, state])).map(drop)
}

/// Pids of every process whose network namespace is `ns`.
pub fn namespace_pids(ns: &str) -> Result<Vec<u32>> {
    let out = run(Command::new("ip").args(["netns", "pids", ns]))?;
    Ok(out
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> LabPlan {
        LabPlan::new(1, 2, true).unwrap()
    }

    #[test]
    fn namespaces_are_created_in_the_root_namespace() {
        let b = create_namespaces(&plan());
        assert_eq!(b.netns, None);
        assert_eq!(
            b.lines,
            [
                "netns add ilb1-cp",
                "netns add ilb1-node1",
                "netns add ilb1-node2",
                "netns add ilb1-client",
                "netns add ilb1-lan"
            ]
        );
    }

    #[test]
    fn lan_has_a_bridge_and_a_port_per_host() {
        let b = lan(&plan());
        assert_eq!(b.netns.as_deref(), Some("ilb1-lan"));
        assert!(
            b.lines
                .contains(&"link add br0 type bridge stp_state 0 mcast_snooping 0".into())
        );
        assert!(b.lines.contains(
            &"link add node2 type veth peer name eth0 address 02:1b:01:00:00:0c netns ilb1-node2"
                .into()
        ));
        assert!(b.lines.contains(&"link set client master br0 up".into()));
        let ports = b.lines.iter().filter(|l| l.contains("master br0")).count();
        assert_eq!(ports, 4);
    }

    #[test]
    fn only_the_management_link_is_in_the_root_namespace() {
        let b = mgmt_root(&plan());
        assert_eq!(b.netns, None);
        assert_eq!(
            b.lines,
            [
                "link add ilb1-mgmt type veth peer name mgmt0 netns ilb1-cp",
                "addr add 203.0.113.197/30 dev ilb1-mgmt",
                "link set ilb1-mgmt up"
            ]
        );
    }

    #[test]
    fn client_and_nodes_get_on_link_pool_routes_and_cp_the_mgmt_address() {
        let p = plan();
        let client = host(&p, p.host("client").unwrap());
        assert!(
            client
                .lines
                .contains(&"route add 198.51.100.0/24 dev eth0".into())
        );
        assert!(
            client
                .lines
                .contains(&"route add 2001:db8:0:100::/64 dev eth0".into())
        );
        assert!(
            client
                .lines
                .contains(&"addr add 2001:db8::100/64 dev eth0 nodad".into())
        );
        let node = host(&p, p.host("node1").unwrap());
        assert!(
            node.lines
                .contains(&"addr add 192.0.2.11/24 dev eth0".into())
        );
        assert!(
            node.lines
                .iter()
                .any(|l| l.starts_with("route add 198.51.100.0/24"))
        );
        let cp = host(&p, p.control_plane());
        assert!(
            cp.lines
                .contains(&"addr add 203.0.113.198/30 dev mgmt0".into())
        );
        assert!(!cp.lines.iter().any(|l| l.starts_with("route add")));
    }

    #[test]
    fn sysctls_cover_every_namespace_and_only_the_switch_loses_ipv6() {
        let p = LabPlan::new(0, 1, false).unwrap();
        let all = sysctls(&p);
        assert_eq!(all.len(), p.hosts.len() + 1);
        let lan = all.iter().find(|s| s.netns == "ilb0-lan").unwrap();
        assert!(
            lan.settings
                .contains(&("net.ipv6.conf.all.disable_ipv6".into(), "1".into()))
        );
        let node = all.iter().find(|s| s.netns == "ilb0-node1").unwrap();
        assert!(
            node.settings
                .contains(&("net.ipv4.ip_forward".into(), "1".into()))
        );
        // Hosts keep IPv6: components may listen on [::] even in an IPv4-only lab.
        for s in all.iter().filter(|s| s.netns != "ilb0-lan") {
            assert!(
                !s.settings.iter().any(|(k, _)| k.contains("disable_ipv6")),
                "{}",
                s.netns
            );
        }
        let client = all.iter().find(|s| s.netns == "ilb0-client").unwrap();
        assert!(
            !client
                .settings
                .iter()
                .any(|(k, _)| k == "net.ipv4.ip_forward")
        );
    }

    #[test]
    fn sysctl_names_cannot_escape_proc_sys() {
        for bad in ["", "../etc/passwd", "net/ipv4/ip_forward", "net..x"] {
            assert!(
                matches!(write_sysctl(bad, "1"), Err(Error::BadArgument(_))),
                "{bad}"
            );
        }
    }
}
