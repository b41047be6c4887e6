//! The lab's address plan: which hosts exist, what their namespaces, links, IPs and MACs are.
//!
//! Pure: it turns a lab slot, a node count and the IPv6 switch into names and addresses, and does
//! no I/O. Everything else (creating links, writing `topology.json`) is driven from a [`LabPlan`].
//! Only documentation ranges are used: the segment is 192.0.2.0/24 (+ 2001:db8::/64), pools are
//! expected in 198.51.100.0/24 (+ 2001:db8:0:100::/64), services and pods come from 203.0.113.0/24
//! (+ 2001:db8:fffe::/108 and 2001:db8:fffd::/64), and the management /30s from 203.0.113.192/26.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

/// Labs that can exist side by side: one management /30 each in 203.0.113.192/26.
pub const MAX_SLOTS: u8 = 16;
/// Nodes are 192.0.2.11 upwards and must stay below the client's 192.0.2.100.
pub const MAX_NODES: u16 = 89;

pub const SEGMENT_V4_PREFIX: &str = "192.0.2.0/24";
pub const SEGMENT_V6_PREFIX: &str = "2001:db8::/64";
/// On-link on the client and the nodes, so that VIPs are resolved on the segment as on a LAN.
pub const POOL_V4_PREFIX: &str = "198.51.100.0/24";
pub const POOL_V6_PREFIX: &str = "2001:db8:0:100::/64";
pub const SERVICE_V4_CIDR: &str = "203.0.113.0/25";
pub const SERVICE_V6_CIDR: &str = "2001:db8:fffe::/108";
pub const POD_V4_CIDR: &str = "203.0.113.128/26";
pub const POD_V6_CIDR: &str = "2001:db8:fffd::/64";

const CP_OCTET: u8 = 2;
const FIRST_NODE_OCTET: u8 = 10;
const CLIENT_OCTET: u8 = 100;
/// The interface every host sees on the segment.
pub const HOST_INTERFACE: &str = "eth0";
pub const BRIDGE: &str = "br0";
/// The control plane's end of the management link from the root namespace.
pub const CP_MGMT_INTERFACE: &str = "mgmt0";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    #[error("a lab needs at least one node")]
    NoNodes,
    #[error("{0} nodes asked for, the segment plan has room for at most {MAX_NODES}")]
    TooManyNodes(u16),
    #[error("lab slot {0} out of range: at most {MAX_SLOTS} labs can exist at once")]
    SlotOutOfRange(u8),
    #[error("unknown host {0:?}: expected cp, client or node1..node{1}")]
    UnknownHost(String, u16),
    #[error("malformed MAC address {0:?}")]
    BadMac(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    ControlPlane,
    Node,
    Client,
}

/// A locally administered unicast MAC address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Mac(pub [u8; 6]);

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl std::str::FromStr for Mac {
    type Err = PlanError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || PlanError::BadMac(s.to_string());
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for byte in &mut out {
            let part = parts.next().ok_or_else(bad)?;
            if part.len() != 2 {
                return Err(bad());
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(Mac(out))
    }
}

impl Serialize for Mac {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Mac {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// One host of the lab: a network namespace with a veth into the segment bridge.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostPlan {
    /// The short name used on the command line and as the Kubernetes node name.
    pub name: String,
    pub role: Role,
    pub netns: String,
    pub interface: String,
    /// The veth end in the bridge namespace, enslaved to the bridge.
    pub bridge_port: String,
    pub mac: Mac,
    pub ipv4: Ipv4Addr,
    pub ipv6: Option<Ipv6Addr>,
}

impl HostPlan {
    /// The host's segment addresses, IPv4 first.
    pub fn ips(&self) -> Vec<IpAddr> {
        let mut ips = vec![IpAddr::V4(self.ipv4)];
        ips.extend(self.ipv6.map(IpAddr::V6));
        ips
    }

    /// Whether the host runs a kubelet-like node: the control plane and the workers.
    pub fn is_kube_node(&self) -> bool {
        self.role != Role::Client
    }
}

/// The link that lets the host's kubectl reach the API server: the only lab object in the
/// root namespace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MgmtPlan {
    pub root_link: String,
    pub root_ip: Ipv4Addr,
    pub cp_link: String,
    pub cp_ip: Ipv4Addr,
    pub prefix_len: u8,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabPlan {
    /// `ilb<slot>`: the prefix of every namespace and root link of this lab.
    pub id: String,
    pub slot: u8,
    pub ipv6: bool,
    /// The namespace holding the segment bridge, so nothing of it is in the root namespace.
    pub lan_netns: String,
    pub bridge: String,
    pub mgmt: MgmtPlan,
    /// Control plane first, then node1..nodeN, then the client.
    pub hosts: Vec<HostPlan>,
    pub segment_prefixes: Vec<String>,
    pub pool_prefixes: Vec<String>,
    pub service_cidrs: Vec<String>,
    pub pod_cidrs: Vec<String>,
}

/// The lab id for a slot; also the prefix of all its namespaces.
pub fn lab_id(slot: u8) -> String {
    format!("ilb{slot}")
}

/// The host part of a segment address, shared by IPv4 and IPv6 (`.11` and `::11`).
fn ipv6_with_host_part(octet: u8) -> Ipv6Addr {
    // The decimal digits of the IPv4 host part are reused as hex digits so the two read alike.
    let digits = u16::from_str_radix(&octet.to_string(), 16).unwrap_or(u16::from(octet));
    Ipv6Addr::new(0x2001, 0x0db8, 0, 0, 0, 0, 0, digits)
}

fn host(slot: u8, name: &str, role: Role, octet: u8, ipv6: bool) -> HostPlan {
    let id = lab_id(slot);
    HostPlan {
        name: name.to_string(),
        role,
        netns: format!("{id}-{name}"),
        interface: HOST_INTERFACE.to_string(),
        bridge_port: name.to_string(),
        mac: Mac([0x02, 0x1b, slot, 0, 0, octet]),
        ipv4: Ipv4Addr::new(192, 0, 2, octet),
        ipv6: ipv6.then(|| ipv6_with_host_part(octet)),
    }
}

impl LabPlan {
    pub fn new(slot: u8, nodes: u16, ipv6: bool) -> Result<Self, PlanError> {
        if slot >= MAX_SLOTS {
            return Err(PlanError::SlotOutOfRange(slot));
        }
        if nodes == 0 {
            return Err(PlanError::NoNodes);
        }
        if nodes > MAX_NODES {
            return Err(PlanError::TooManyNodes(nodes));
        }
        let id = lab_id(slot);
        let mut hosts = vec![host(slot, "cp", Role::ControlPlane, CP_OCTET, ipv6)];
        for i in 1..=nodes {
            // nodes <= MAX_NODES keeps this below the client's octet.
            let octet = FIRST_NODE_OCTET + i as u8;
            hosts.push(host(slot, &format!("node{i}"), Role::Node, octet, ipv6));
        }
        hosts.push(host(slot, "client", Role::Client, CLIENT_OCTET, ipv6));

        let base = 192 + 4 * slot;
        let mgmt = MgmtPlan {
            root_link: format!("{id}-mgmt"),
            root_ip: Ipv4Addr::new(203, 0, 113, base + 1),
            cp_link: CP_MGMT_INTERFACE.to_string(),
            cp_ip: Ipv4Addr::new(203, 0, 113, base + 2),
            prefix_len: 30,
        };
        let dual = |v4: &str, v6: &str| {
            let mut v = vec![v4.to_string()];
            if ipv6 {
                v.push(v6.to_string());
            }
            v
        };
        Ok(LabPlan {
            lan_netns: format!("{id}-lan"),
            id,
            slot,
            ipv6,
            bridge: BRIDGE.to_string(),
            mgmt,
            hosts,
            segment_prefixes: dual(SEGMENT_V4_PREFIX, SEGMENT_V6_PREFIX),
            pool_prefixes: dual(POOL_V4_PREFIX, POOL_V6_PREFIX),
            service_cidrs: dual(SERVICE_V4_CIDR, SERVICE_V6_CIDR),
            pod_cidrs: dual(POD_V4_CIDR, POD_V6_CIDR),
        })
    }

    pub fn host(&self, name: &str) -> Result<&HostPlan, PlanError> {
        self.hosts
            .iter()
            .find(|h| h.name == name)
            .ok_or_else(|| PlanError::UnknownHost(name.to_string(), self.node_count()))
    }

    pub fn control_plane(&self) -> &HostPlan {
        &self.hosts[0]
    }

    pub fn nodes(&self) -> impl Iterator<Item = &HostPlan> {
        self.hosts.iter().filter(|h| h.role == Role::Node)
    }

    pub fn node_count(&self) -> u16 {
        self.nodes().count() as u16
    }

    /// Every namespace of the lab, the bridge namespace last (it outlives the hosts' veths).
    pub fn namespaces(&self) -> Vec<String> {
        let mut all: Vec<String> = self.hosts.iter().map(|h| h.netns.clone()).collect();
        all.push(self.lan_netns.clone());
        all
    }

    /// The API server URL for in-cluster components.
    pub fn internal_api_url(&self) -> String {
        format!("https://{}:6443", self.control_plane().ipv4)
    }

    /// The API server URL for the host's kubectl, over the management link.
    pub fn external_api_url(&self) -> String {
        format!("https://{}:6443", self.mgmt.cp_ip)
    }
}

/// Whether a namespace name belongs to the lab with this id (`ilb3-node1` belongs to `ilb3`).
pub fn netns_belongs_to(netns: &str, id: &str) -> bool {
    netns
        .strip_prefix(id)
        .is_some_and(|rest| rest.starts_with('-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_node_plan_has_the_documented_addresses() {
        let plan = LabPlan::new(3, 3, false).unwrap();
        assert_eq!(plan.id, "ilb3");
        let names: Vec<_> = plan.hosts.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["cp", "node1", "node2", "node3", "client"]);
        assert_eq!(plan.host("cp").unwrap().ipv4, Ipv4Addr::new(192, 0, 2, 2));
        assert_eq!(
            plan.host("node1").unwrap().ipv4,
            Ipv4Addr::new(192, 0, 2, 11)
        );
        assert_eq!(
            plan.host("node3").unwrap().ipv4,
            Ipv4Addr::new(192, 0, 2, 13)
        );
        assert_eq!(
            plan.host("client").unwrap().ipv4,
            Ipv4Addr::new(192, 0, 2, 100)
        );
        assert_eq!(plan.host("node2").unwrap().netns, "ilb3-node2");
        assert_eq!(plan.lan_netns, "ilb3-lan");
        assert!(plan.hosts.iter().all(|h| h.ipv6.is_none()));
        assert_eq!(plan.service_cidrs, ["203.0.113.0/25"]);
        assert_eq!(plan.pool_prefixes, ["198.51.100.0/24"]);
    }

    #[test]
    fn ipv6_hosts_reuse_the_ipv4_host_part() {
        let plan = LabPlan::new(0, 2, true).unwrap();
        let ip = |n| plan.host(n).unwrap().ipv6.unwrap().to_string();
        assert_eq!(ip("cp"), "2001:db8::2");
        assert_eq!(ip("node1"), "2001:db8::11");
        assert_eq!(ip("client"), "2001:db8::100");
        assert_eq!(
            plan.service_cidrs,
            ["203.0.113.0/25", "2001:db8:fffe::/108"]
        );
        assert_eq!(plan.pool_prefixes.len(), 2);
    }

    #[test]
    fn management_link_uses_the_slot_s_slash_30() {
        let first = LabPlan::new(0, 1, false).unwrap().mgmt;
        assert_eq!(first.root_ip, Ipv4Addr::new(203, 0, 113, 193));
        assert_eq!(first.cp_ip, Ipv4Addr::new(203, 0, 113, 194));
        assert_eq!(first.root_link, "ilb0-mgmt");
        let last = LabPlan::new(MAX_SLOTS - 1, 1, false).unwrap().mgmt;
        assert_eq!(last.root_ip, Ipv4Addr::new(203, 0, 113, 253));
        assert_eq!(last.cp_ip, Ipv4Addr::new(203, 0, 113, 254));
    }

    #[test]
    fn link_names_fit_the_kernel_limit() {
        let plan = LabPlan::new(MAX_SLOTS - 1, MAX_NODES, true).unwrap();
        assert!(plan.mgmt.root_link.len() <= 15);
        for h in &plan.hosts {
            assert!(h.bridge_port.len() <= 15, "{}", h.bridge_port);
            assert!(h.interface.len() <= 15);
        }
    }

    #[test]
    fn addresses_and_macs_are_unique() {
        let plan = LabPlan::new(7, MAX_NODES, true).unwrap();
        let mut v4: Vec<_> = plan.hosts.iter().map(|h| h.ipv4).collect();
        let mut v6: Vec<_> = plan.hosts.iter().map(|h| h.ipv6.unwrap()).collect();
        let mut macs: Vec<_> = plan.hosts.iter().map(|h| h.mac.0).collect();
        let n = plan.hosts.len();
        v4.sort();
        v4.dedup();
        v6.sort();
        v6.dedup();
        macs.sort();
        macs.dedup();
        assert_eq!((v4.len(), v6.len(), macs.len()), (n, n, n));
        for mac in macs {
            assert_eq!(mac[0] & 0x03, 0x02, "locally administered unicast");
        }
    }

    #[test]
    fn out_of_range_inputs_are_rejected() {
        assert_eq!(LabPlan::new(0, 0, false), Err(PlanError::NoNodes));
        assert_eq!(
            LabPlan::new(0, MAX_NODES + 1, false),
            Err(PlanError::TooManyNodes(MAX_NODES + 1))
        );
        assert_eq!(
            LabPlan::new(MAX_SLOTS, 1, false),
            Err(PlanError::SlotOutOfRange(MAX_SLOTS))
        );
        let plan = LabPlan::new(0, 2, false).unwrap();
        assert!(matches!(
            plan.host("node3"),
            Err(PlanError::UnknownHost(_, 2))
        ));
        assert!(plan.host("").is_err());
    }

    #[test]
    fn mac_round_trips_and_rejects_garbage() {
        let mac: Mac = "02:1b:03:00:00:0b".parse().unwrap();
        assert_eq!(mac, Mac([2, 0x1b, 3, 0, 0, 11]));
        assert_eq!(mac.to_string(), "02:1b:03:00:00:0b");
        for bad in [
            "",
            "02:1b:03:00:00",
            "02:1b:03:00:00:0b:00",
            "02:1b:03:00:00:zz",
            "2:1b:3:0:0:b",
        ] {
            assert!(bad.parse::<Mac>().is_err(), "{bad}");
        }
        let json = serde_json::to_string(&mac).unwrap();
        assert_eq!(json, "\"02:1b:03:00:00:0b\"");
        assert!(serde_json::from_str::<Mac>("\"nope\"").is_err());
    }

    #[test]
    fn namespace_ownership_needs_the_dash() {
        assert!(netns_belongs_to("ilb1-node1", "ilb1"));
        assert!(!netns_belongs_to("ilb10-node1", "ilb1"));
        assert!(!netns_belongs_to("other", "ilb1"));
    }
}
