//! The speaker's brain: everything it decides, from what it has been told. Pure: no kube
//! client, no tokio, no sockets.
//!
//! The runtime feeds it watch events (Services, EndpointSlices, Nodes, IPAddressPools,
//! L2Advertisements, ServiceL2Statuses), the membership view and this node's phase, then calls
//! [`State::plan`], which returns what changed. Per ingress IP it decides:
//!
//! - the **pool** of the IP: the oldest valid pool whose ranges hold it (overlapping pools
//!   are settled as the controller settles them);
//! - the **advertisements** that apply: valid L2Advertisements that select the pool and one
//!   of the Services holding the IP (several Services may share one IP);
//! - the **candidates**, one per Node: its labels, `NetworkUnavailable`, membership, and its
//!   health for the IP's Services: with `externalTrafficPolicy: Local`, at least one ready
//!   endpoint on the node in the Services' EndpointSlices (the same fact the
//!   `healthCheckNodePort` reports, seen identically by every speaker); for ipMode Proxy, an
//!   InternalIP of the IP's family to forward to. `Cluster` needs nothing more here: a node
//!   whose kube-proxy is unhealthy leaves membership itself (see the runtime);
//! - the **winner**, by [`election::elect`](crate::election::elect).
//!
//! This node owns an IP when it wins it, the caches are synced, membership is settled and this
//! node is a member. Owned IPs are announced on the interfaces the applicable advertisements
//! name for this node, or on the interface holding the node's InternalIP (which the runtime
//! resolves and passes in with [`State::set_default_interfaces`]).
//!
//! From the owned IPs follow the forwarding entries (ipMode Proxy only), the announced-Service
//! metric, the ServiceL2Status writes ([`report`]) and the Events.
//!
//! # Cost
//!
//! An update recomputes only what it can affect: a Service or EndpointSlice change re-elects
//! the IPs of that Service; a change to a Node (what the election reads of it, not its
//! heartbeats), a pool, an advertisement or membership re-elects every IP. Views are compared
//! before anything is marked, so unchanged updates cost nothing.

pub mod report;
pub mod views;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use ironlb_crds::address::Family;
use ironlb_crds::advertisement::Advertisement;
use ironlb_crds::annotations::IpMode;
use ironlb_crds::class::ClassFilter;
use ironlb_crds::events;
use ironlb_crds::selector::Selector;
use ironlb_crds::{IPAddressPool, L2Advertisement, ServiceL2Status};
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::election::{self, Candidate, NoWinner};
use crate::forwarding::{self, ForwardEntry};

pub use report::{DesiredStatus, EventIntent, EventKind, ServiceRef, StatusAction, status_name};
pub use views::{
    IngressIp, NodeView, ObservedStatus, PoolView, PortView, ServiceKey, ServiceView, SliceKey,
    SliceView,
};

/// What the state is configured with, from the flags.
#[derive(Clone, Debug)]
pub struct StateConfig {
    /// This node's name.
    pub node: String,
    pub class: ClassFilter,
    /// `--ip-mode`: the mode of addresses whose status has no `ipMode`.
    pub default_ip_mode: IpMode,
}

/// Where this node stands in membership.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Not (yet, or again) a member: owns nothing, writes nothing.
    Joining,
    /// A member; owns what it wins once the view is settled.
    Member,
    /// Left membership on purpose (kube-proxy unhealthy, shutting down): owns nothing and
    /// removes the ServiceL2Statuses that still name it.
    Withdrawn,
}

/// Why an IP has no announcing node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unannounced {
    /// The initial lists are not complete yet.
    NotSynced,
    /// No valid IPAddressPool holds the IP.
    NoPool,
    Election(NoWinner),
}

/// The decision for one ingress IP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub winner: Result<String, Unannounced>,
    /// The interfaces this node announces the IP on; empty unless it owns the IP.
    pub interfaces: BTreeSet<String>,
    /// This node owns the IP: it won, and it is a settled member.
    pub mine: bool,
}

/// What [`State::plan`] found changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// `(IP, interface)` pairs no longer announced: stop answering for them first.
    pub lost: BTreeSet<(IpAddr, String)>,
    /// `(IP, interface)` pairs newly announced: answer, and send gratuitous ARP / NA.
    pub gained: BTreeSet<(IpAddr, String)>,
    /// IPs this node took over (owned now, not before).
    pub takeovers: Vec<IpAddr>,
    /// IPs this node stopped owning.
    pub losses: Vec<IpAddr>,
    /// The complete new forwarding entries, when they changed.
    pub forwarding: Option<Vec<ForwardEntry>>,
    /// The complete new set of announced `(Service, IP)` pairs, when it changed.
    pub announced: Option<BTreeSet<(ServiceKey, IpAddr)>>,
    /// ServiceL2Status writes to make.
    pub statuses: Vec<StatusAction>,
    /// Events to emit (besides the `nodeAssigned` ones carried by status writes).
    pub events: Vec<EventIntent>,
    /// Problems found in objects since the last plan, for the log.
    pub problems: Vec<String>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        *self == Changes::default()
    }
}

/// How a status write ended, as the runtime reports it back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteOutcome {
    /// The object as the server returned it.
    Applied(ObservedStatus),
    /// The object is gone (deleted by us, or already).
    Deleted,
    /// The write was given up (rejected, or the precondition failed); the watch will say
    /// what the object looks like now.
    Abandoned,
}

/// See the module docs.
#[derive(Debug)]
pub struct State {
    config: StateConfig,
    services: HashMap<ServiceKey, ServiceView>,
    by_ip: BTreeMap<IpAddr, BTreeSet<ServiceKey>>,
    slices: HashMap<SliceKey, SliceView>,
    local_ready: HashMap<ServiceKey, BTreeMap<String, u32>>,
    nodes: BTreeMap<String, NodeView>,
    pools: BTreeMap<String, PoolView>,
    /// Valid pools, oldest first: the first that holds an IP is its pool.
    pool_order: Vec<String>,
    advertisements: BTreeMap<String, Option<Advertisement>>,
    statuses: BTreeMap<String, ObservedStatus>,
    alive: BTreeSet<String>,
    settled: bool,
    phase: Phase,
    synced: bool,
    default_interfaces: BTreeMap<Family, String>,

    decisions: BTreeMap<IpAddr, Decision>,
    dirty_all: bool,
    dirty_ips: BTreeSet<IpAddr>,
    /// Something the forwarding entries read changed (this node's IPs, a Service's ports).
    forwarding_dirty: bool,
    /// Something the status writes read changed.
    reports_dirty: bool,
    forwarding: Vec<ForwardEntry>,
    announced: BTreeSet<(ServiceKey, IpAddr)>,
    /// Status writes handed out and not yet reported back, to hand out each only once.
    requested: BTreeMap<String, StatusAction>,
    /// Conflict warnings already emitted, so they are not repeated while they last.
    reported_conflicts: BTreeSet<String>,
    problems: Vec<String>,
}

impl State {
    pub fn new(config: StateConfig) -> State {
        State {
            config,
            services: HashMap::new(),
            by_ip: BTreeMap::new(),
            slices: HashMap::new(),
            local_ready: HashMap::new(),
            nodes: BTreeMap::new(),
            pools: BTreeMap::new(),
            pool_order: Vec::new(),
            advertisements: BTreeMap::new(),
            statuses: BTreeMap::new(),
            alive: BTreeSet::new(),
            settled: false,
            phase: Phase::Joining,
            synced: false,
            default_interfaces: BTreeMap::new(),
            decisions: BTreeMap::new(),
            dirty_all: false,
            dirty_ips: BTreeSet::new(),
            forwarding_dirty: false,
            reports_dirty: false,
            forwarding: Vec::new(),
            announced: BTreeSet::new(),
            requested: BTreeMap::new(),
            reported_conflicts: BTreeSet::new(),
            problems: Vec::new(),
        }
    }

    pub fn config(&self) -> &StateConfig {
        &self.config
    }

    // ---- inputs ------------------------------------------------------------------------

    pub fn apply_service(&mut self, service: &Service) {
        let key = views::service_key(service);
        match ServiceView::from_service(service, &self.config.class, self.config.default_ip_mode) {
            Some(view) => {
                if self.services.get(&key) == Some(&view) {
                    return;
                }
                for problem in &view.problems {
                    self.problems.push(format!("Service {key}: {problem}"));
                }
                self.remove_service_ips(&key);
                for ingress in &view.ingress {
                    self.by_ip
                        .entry(ingress.ip)
                        .or_default()
                        .insert(key.clone());
                    self.dirty_ips.insert(ingress.ip);
                }
                self.services.insert(key, view);
                self.forwarding_dirty = true;
                self.reports_dirty = true;
            }
            None => self.delete_service(&key),
        }
    }

    pub fn delete_service(&mut self, key: &ServiceKey) {
        if self.services.contains_key(key) {
            self.remove_service_ips(key);
            self.services.remove(key);
            self.forwarding_dirty = true;
            self.reports_dirty = true;
        }
    }

    fn remove_service_ips(&mut self, key: &ServiceKey) {
        let Some(old) = self.services.get(key) else {
            return;
        };
        for ingress in &old.ingress {
            self.dirty_ips.insert(ingress.ip);
            if let Some(keys) = self.by_ip.get_mut(&ingress.ip) {
                keys.remove(key);
                if keys.is_empty() {
                    self.by_ip.remove(&ingress.ip);
                }
            }
        }
    }

    pub fn service_keys(&self) -> impl Iterator<Item = &ServiceKey> {
        self.services.keys()
    }

    pub fn apply_slice(&mut self, slice: &EndpointSlice) {
        let key = views::slice_key(slice);
        match SliceView::from_slice(slice) {
            Some(view) => {
                if self.slices.get(&key) == Some(&view) {
                    return;
                }
                let old = self.slices.insert(key, view.clone());
                if let Some(old) = old {
                    self.count_slice(&old, false);
                }
                self.count_slice(&view, true);
            }
            None => self.delete_slice(&key),
        }
    }

    pub fn delete_slice(&mut self, key: &SliceKey) {
        if let Some(old) = self.slices.remove(key) {
            self.count_slice(&old, false);
        }
    }

    pub fn slice_keys(&self) -> impl Iterator<Item = &SliceKey> {
        self.slices.keys()
    }

    /// Adds or removes a slice's ready endpoints to its Service's per-node counts, and marks
    /// the Service's IPs when a node's count crosses zero.
    fn count_slice(&mut self, slice: &SliceView, add: bool) {
        let counts = self.local_ready.entry(slice.service.clone()).or_default();
        let mut crossed = false;
        for (node, n) in &slice.ready_by_node {
            let count = counts.entry(node.clone()).or_insert(0);
            let before = *count;
            *count = if add {
                count.saturating_add(*n)
            } else {
                count.saturating_sub(*n)
            };
            crossed |= (before == 0) != (*count == 0);
            if *count == 0 {
                counts.remove(node);
            }
        }
        if counts.is_empty() {
            self.local_ready.remove(&slice.service);
        }
        if crossed
            && let Some(view) = self.services.get(&slice.service)
            && view.local
        {
            self.dirty_ips.extend(view.ingress.iter().map(|i| i.ip));
        }
    }

    pub fn apply_node(&mut self, node: &Node) {
        let name = node.metadata.name.clone().unwrap_or_default();
        let view = NodeView::from_node(node);
        if self.nodes.get(&name) == Some(&view) {
            return;
        }
        if name == self.config.node {
            self.forwarding_dirty = true;
        }
        self.nodes.insert(name, view);
        self.dirty_all = true;
    }

    pub fn delete_node(&mut self, name: &str) {
        if self.nodes.remove(name).is_some() {
            if name == self.config.node {
                self.forwarding_dirty = true;
            }
            self.dirty_all = true;
        }
    }

    pub fn node_names(&self) -> impl Iterator<Item = &str> {
        self.nodes.keys().map(String::as_str)
    }

    pub fn node(&self, name: &str) -> Option<&NodeView> {
        self.nodes.get(name)
    }

    /// This node, once its Node object is known.
    pub fn my_node(&self) -> Option<&NodeView> {
        self.nodes.get(&self.config.node)
    }

    /// Every Node's name and InternalIP of `family`: the membership peer list. Nodes without
    /// an address of that family cannot be reached and are left out.
    pub fn peers(&self, family: Family) -> Vec<(String, IpAddr)> {
        self.nodes
            .iter()
            .filter_map(|(name, view)| {
                view.internal_ips
                    .iter()
                    .find(|ip| Family::of(**ip) == family)
                    .map(|ip| (name.clone(), *ip))
            })
            .collect()
    }

    pub fn apply_pool(&mut self, pool: &IPAddressPool) {
        let name = pool.metadata.name.clone().unwrap_or_default();
        let (view, problem) = PoolView::from_pool(pool);
        if self.pools.get(&name) == Some(&view) {
            return;
        }
        if let Some(problem) = problem {
            self.problems.push(format!(
                "IPAddressPool {name} is invalid and not announced: {problem}"
            ));
        }
        self.pools.insert(name, view);
        self.order_pools();
    }

    pub fn delete_pool(&mut self, name: &str) {
        if self.pools.remove(name).is_some() {
            self.order_pools();
        }
    }

    pub fn pool_names(&self) -> impl Iterator<Item = &str> {
        self.pools.keys().map(String::as_str)
    }

    fn order_pools(&mut self) {
        let mut valid: Vec<(&String, &PoolView)> = self
            .pools
            .iter()
            .filter(|(_, view)| view.pool.is_some())
            .collect();
        // Oldest first, then by name, as the controller resolves overlaps. An unknown creation
        // time sorts last.
        valid.sort_by(|a, b| {
            (a.1.created.is_none(), a.1.created, a.0).cmp(&(
                b.1.created.is_none(),
                b.1.created,
                b.0,
            ))
        });
        self.pool_order = valid.into_iter().map(|(name, _)| name.clone()).collect();
        self.dirty_all = true;
    }

    pub fn apply_advertisement(&mut self, advertisement: &L2Advertisement) {
        let name = advertisement.metadata.name.clone().unwrap_or_default();
        let compiled = match Advertisement::compile(&advertisement.spec) {
            Ok(compiled) => Some(compiled),
            Err(errors) => {
                self.problems.push(format!(
                    "L2Advertisement {name} is invalid and ignored: {errors}"
                ));
                None
            }
        };
        if self.advertisements.get(&name) == Some(&compiled) {
            return;
        }
        self.advertisements.insert(name, compiled);
        self.dirty_all = true;
    }

    pub fn delete_advertisement(&mut self, name: &str) {
        if self.advertisements.remove(name).is_some() {
            self.dirty_all = true;
        }
    }

    pub fn advertisement_names(&self) -> impl Iterator<Item = &str> {
        self.advertisements.keys().map(String::as_str)
    }

    pub fn apply_status(&mut self, object: &ServiceL2Status) {
        let name = object.metadata.name.clone().unwrap_or_default();
        let view = ObservedStatus::from_object(object);
        if self.statuses.get(&name) != Some(&view) {
            self.statuses.insert(name, view);
            self.reports_dirty = true;
        }
    }

    pub fn delete_status(&mut self, name: &str) {
        if self.statuses.remove(name).is_some() {
            self.reports_dirty = true;
        }
    }

    pub fn status_names(&self) -> impl Iterator<Item = &str> {
        self.statuses.keys().map(String::as_str)
    }

    /// The ServiceL2Statuses that name this node, with their resourceVersions: what a
    /// shutdown deletes.
    pub fn my_statuses(&self) -> Vec<(String, Option<String>)> {
        self.statuses
            .iter()
            .filter(|(_, s)| s.node == self.config.node)
            .map(|(name, s)| (name.clone(), s.resource_version.clone()))
            .collect()
    }

    /// How a status write handed out by [`State::plan`] ended.
    pub fn status_written(&mut self, name: &str, outcome: WriteOutcome) {
        self.requested.remove(name);
        match outcome {
            WriteOutcome::Applied(observed) => {
                self.statuses.insert(name.to_string(), observed);
                self.reports_dirty = true;
            }
            WriteOutcome::Deleted => {
                self.statuses.remove(name);
                self.reports_dirty = true;
            }
            WriteOutcome::Abandoned => {}
        }
    }

    /// All initial lists are complete: decisions may be made.
    pub fn set_synced(&mut self) {
        if !self.synced {
            self.synced = true;
            self.dirty_all = true;
            self.reports_dirty = true;
        }
    }

    pub fn is_synced(&self) -> bool {
        self.synced
    }

    /// The membership view: alive members (this node included while it is a member) and
    /// whether the view has settled.
    pub fn set_membership(&mut self, alive: BTreeSet<String>, settled: bool) {
        if self.alive != alive || self.settled != settled {
            self.alive = alive;
            self.settled = settled;
            self.dirty_all = true;
            self.reports_dirty = true;
        }
    }

    pub fn is_settled(&self) -> bool {
        self.settled
    }

    pub fn set_phase(&mut self, phase: Phase) {
        if self.phase != phase {
            self.phase = phase;
            if phase != Phase::Member {
                self.settled = false;
            }
            self.dirty_all = true;
            self.reports_dirty = true;
        }
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The interface that holds this node's InternalIP, per family, for advertisements that
    /// name no interface.
    pub fn set_default_interfaces(&mut self, interfaces: BTreeMap<Family, String>) {
        if self.default_interfaces != interfaces {
            self.default_interfaces = interfaces;
            self.dirty_all = true;
        }
    }

    // ---- queries -----------------------------------------------------------------------

    pub fn decision(&self, ip: IpAddr) -> Option<&Decision> {
        self.decisions.get(&ip)
    }

    /// Every ingress IP's decision, by IP.
    pub fn decisions(&self) -> &BTreeMap<IpAddr, Decision> {
        &self.decisions
    }

    /// The owned IPs on each interface.
    pub fn owned_by_interface(&self) -> BTreeMap<String, BTreeSet<IpAddr>> {
        let mut out: BTreeMap<String, BTreeSet<IpAddr>> = BTreeMap::new();
        for (ip, decision) in &self.decisions {
            for interface in &decision.interfaces {
                out.entry(interface.clone()).or_default().insert(*ip);
            }
        }
        out
    }

    /// The forwarding entries of the owned IPs, as last planned.
    pub fn forwarding(&self) -> &[ForwardEntry] {
        &self.forwarding
    }

    // ---- planning ----------------------------------------------------------------------

    /// Re-decides what the updates since the last call can affect, and returns what changed.
    pub fn plan(&mut self) -> Changes {
        let mut changes = Changes {
            problems: std::mem::take(&mut self.problems),
            ..Changes::default()
        };
        let ips: Vec<IpAddr> = if std::mem::take(&mut self.dirty_all) {
            self.dirty_ips.clear();
            self.by_ip
                .keys()
                .chain(self.decisions.keys())
                .copied()
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect()
        } else {
            std::mem::take(&mut self.dirty_ips).into_iter().collect()
        };
        let recomputed = !ips.is_empty();
        for ip in ips {
            let new = self.decide_ip(ip);
            let old_interfaces = self
                .decisions
                .get(&ip)
                .map(|d| d.interfaces.clone())
                .unwrap_or_default();
            let was_mine = self.decisions.get(&ip).is_some_and(|d| d.mine);
            let new_interfaces = new
                .as_ref()
                .map(|d| d.interfaces.clone())
                .unwrap_or_default();
            let is_mine = new.as_ref().is_some_and(|d| d.mine);
            for gone in old_interfaces.difference(&new_interfaces) {
                changes.lost.insert((ip, gone.clone()));
            }
            for added in new_interfaces.difference(&old_interfaces) {
                changes.gained.insert((ip, added.clone()));
            }
            match (was_mine, is_mine) {
                (false, true) => changes.takeovers.push(ip),
                (true, false) => changes.losses.push(ip),
                _ => {}
            }
            match new {
                Some(decision) => {
                    self.decisions.insert(ip, decision);
                }
                None => {
                    self.decisions.remove(&ip);
                }
            }
        }
        let forwarding_dirty = std::mem::take(&mut self.forwarding_dirty);
        let reports_dirty = std::mem::take(&mut self.reports_dirty);
        if recomputed || forwarding_dirty {
            let entries = self.forward_entries();
            if entries != self.forwarding {
                changes.events.extend(self.conflict_events(&entries));
                changes.forwarding = Some(entries.clone());
                self.forwarding = entries;
            }
            let announced = self.announced_pairs();
            if announced != self.announced {
                changes.announced = Some(announced.clone());
                self.announced = announced;
            }
        }
        if recomputed || reports_dirty {
            changes.statuses = self.status_actions();
        }
        changes
    }

    /// The decision for `ip`, or `None` when no Service holds it any more.
    fn decide_ip(&self, ip: IpAddr) -> Option<Decision> {
        let keys = self.by_ip.get(&ip)?;
        let services: Vec<(&ServiceKey, &ServiceView)> = keys
            .iter()
            .filter_map(|k| self.services.get(k).map(|v| (k, v)))
            .collect();
        let winner = self.elect(ip, &services);
        let mine = self.phase == Phase::Member
            && self.settled
            && winner.as_deref().is_ok_and(|w| w == self.config.node);
        let interfaces = if mine {
            self.my_interfaces(ip, &services)
        } else {
            BTreeSet::new()
        };
        Some(Decision {
            winner,
            interfaces,
            mine,
        })
    }

    /// The pool that holds `ip`: the oldest valid one.
    fn pool_of(&self, ip: IpAddr) -> Option<(&str, &PoolView)> {
        self.pool_order.iter().find_map(|name| {
            let view = self.pools.get(name)?;
            view.pool
                .as_ref()
                .is_some_and(|p| p.contains(ip))
                .then_some((name.as_str(), view))
        })
    }

    /// The valid advertisements that announce `ip` for `services`.
    fn advertisements_for(
        &self,
        ip: IpAddr,
        services: &[(&ServiceKey, &ServiceView)],
    ) -> Vec<&Advertisement> {
        let Some((pool_name, pool)) = self.pool_of(ip) else {
            return Vec::new();
        };
        self.advertisements
            .values()
            .flatten()
            .filter(|ad| ad.selects_pool(pool_name, &pool.labels))
            .filter(|ad| services.iter().any(|(_, s)| ad.selects_service(&s.labels)))
            .collect()
    }

    fn elect(
        &self,
        ip: IpAddr,
        services: &[(&ServiceKey, &ServiceView)],
    ) -> Result<String, Unannounced> {
        if !self.synced {
            return Err(Unannounced::NotSynced);
        }
        if self.pool_of(ip).is_none() {
            return Err(Unannounced::NoPool);
        }
        let ads = self.advertisements_for(ip, services);
        let selectors: Vec<&[Selector]> = ads.iter().map(|ad| ad.node_selectors()).collect();
        let candidates: Vec<Candidate<'_>> = self
            .nodes
            .iter()
            .map(|(name, view)| Candidate {
                name,
                labels: &view.labels,
                network_unavailable: view.network_unavailable,
                alive: self.alive.contains(name),
                healthy: self.healthy(name, view, ip, services),
            })
            .collect();
        election::elect(ip, &selectors, &candidates)
            .map(str::to_string)
            .map_err(Unannounced::Election)
    }

    /// Whether `node` can serve `ip` for all of `services` (see the module docs).
    fn healthy(
        &self,
        node: &str,
        view: &NodeView,
        ip: IpAddr,
        services: &[(&ServiceKey, &ServiceView)],
    ) -> bool {
        services.iter().all(|(key, service)| {
            let needs_address = service.mode_of(ip) == Some(IpMode::Proxy);
            if needs_address && view.ip_like(ip).is_none() {
                return false;
            }
            if !service.local {
                return true;
            }
            // Services sharing an IP with Local policy have identical selectors, so this is
            // the same answer for each of them.
            self.local_ready
                .get(*key)
                .and_then(|counts| counts.get(node))
                .is_some_and(|n| *n > 0)
        })
    }

    /// Where this node announces `ip`: the interfaces of the applicable advertisements that
    /// select it, or the InternalIP's interface for those that name none.
    fn my_interfaces(
        &self,
        ip: IpAddr,
        services: &[(&ServiceKey, &ServiceView)],
    ) -> BTreeSet<String> {
        let labels = self.my_node().map(|n| n.labels.clone()).unwrap_or_default();
        let mut out = BTreeSet::new();
        for ad in self.advertisements_for(ip, services) {
            if !ad.selects_node(&labels) {
                continue;
            }
            if ad.interfaces().is_empty() {
                let family = Family::of(ip);
                let other = match family {
                    Family::V4 => Family::V6,
                    Family::V6 => Family::V4,
                };
                if let Some(name) = self
                    .default_interfaces
                    .get(&family)
                    .or_else(|| self.default_interfaces.get(&other))
                {
                    out.insert(name.clone());
                }
            } else {
                out.extend(ad.interfaces().iter().cloned());
            }
        }
        out
    }

    /// The entries to forward: every port of every ipMode Proxy Service on each owned IP,
    /// to this node's InternalIP of the IP's family.
    fn forward_entries(&self) -> Vec<ForwardEntry> {
        let Some(me) = self.my_node() else {
            return Vec::new();
        };
        let mut entries = Vec::new();
        for (ip, decision) in &self.decisions {
            if !decision.mine {
                continue;
            }
            let Some(node_ip) = me.ip_like(*ip) else {
                continue;
            };
            for key in self.by_ip.get(ip).into_iter().flatten() {
                let Some(service) = self.services.get(key) else {
                    continue;
                };
                if service.mode_of(*ip) != Some(IpMode::Proxy) {
                    continue;
                }
                let Ok(ranges) = &service.source_ranges else {
                    continue;
                };
                for port in &service.ports {
                    let Some(node_port) = port.node_port else {
                        continue;
                    };
                    if let Ok(entry) = ForwardEntry::new(
                        *ip,
                        port.protocol,
                        port.port,
                        node_ip,
                        node_port,
                        ranges.clone(),
                    ) {
                        entries.push(entry);
                    }
                }
            }
        }
        entries
    }

    /// Warnings for entries the renderer will skip, each once while it lasts.
    fn conflict_events(&mut self, entries: &[ForwardEntry]) -> Vec<EventIntent> {
        let mut current = BTreeSet::new();
        let mut out = Vec::new();
        for conflict in forwarding::conflicts(entries) {
            let dropped = &conflict.dropped;
            let what = match conflict.kind {
                forwarding::ConflictKind::SameVipPort => format!(
                    "{}:{}/{} is already forwarded to NodePort {}",
                    dropped.vip(),
                    dropped.port(),
                    dropped.protocol(),
                    conflict.kept.node_port()
                ),
                forwarding::ConflictKind::SameNodePort => format!(
                    "NodePort {}/{} already receives {}:{}",
                    dropped.node_port(),
                    dropped.protocol(),
                    conflict.kept.vip(),
                    conflict.kept.port()
                ),
            };
            let note = format!(
                "{}:{}/{} is not forwarded: {what}",
                dropped.vip(),
                dropped.port(),
                dropped.protocol()
            );
            current.insert(note.clone());
            if self.reported_conflicts.contains(&note) {
                continue;
            }
            for key in self.by_ip.get(&dropped.vip()).into_iter().flatten() {
                let Some(service) = self.services.get(key) else {
                    continue;
                };
                let uses_port = service
                    .ports
                    .iter()
                    .any(|p| p.port == dropped.port() && p.protocol == dropped.protocol());
                if uses_port {
                    out.push(EventIntent {
                        service: ServiceRef {
                            key: key.clone(),
                            uid: service.uid.clone(),
                        },
                        kind: EventKind::Warning,
                        reason: events::FORWARD_CONFLICT,
                        note: note.clone(),
                    });
                }
            }
        }
        self.reported_conflicts = current;
        out
    }

    fn announced_pairs(&self) -> BTreeSet<(ServiceKey, IpAddr)> {
        self.decisions
            .iter()
            .filter(|(_, d)| d.mine)
            .flat_map(|(ip, _)| {
                self.by_ip
                    .get(ip)
                    .into_iter()
                    .flatten()
                    .map(move |key| (key.clone(), *ip))
            })
            .collect()
    }

    /// The objects this node should hold, by name.
    fn desired_statuses(&self) -> BTreeMap<String, DesiredStatus> {
        let mut out: BTreeMap<String, DesiredStatus> = BTreeMap::new();
        for (ip, decision) in self.decisions.iter().filter(|(_, d)| d.mine) {
            for key in self.by_ip.get(ip).into_iter().flatten() {
                let Some(service) = self.services.get(key) else {
                    continue;
                };
                let name = status_name(key, Family::of(*ip));
                let entry = out.entry(name).or_insert_with(|| DesiredStatus {
                    service: ServiceRef {
                        key: key.clone(),
                        uid: service.uid.clone(),
                    },
                    node: self.config.node.clone(),
                    ips: Vec::new(),
                    interfaces: Vec::new(),
                });
                entry.ips.push(*ip);
                for interface in &decision.interfaces {
                    if !entry.interfaces.contains(interface) {
                        entry.interfaces.push(interface.clone());
                    }
                }
            }
        }
        for desired in out.values_mut() {
            desired.ips.sort();
            desired.interfaces.sort();
        }
        out
    }

    /// Whether some node should hold the object `name` (its Service has an IP of its family
    /// with a winner); that node overwrites it, so it is not garbage.
    fn has_owner(&self, name: &str, observed: &ObservedStatus) -> bool {
        let Some(service) = self.services.get(&observed.service) else {
            return false;
        };
        service.ingress.iter().any(|i| {
            status_name(&observed.service, Family::of(i.ip)) == name
                && self.decisions.get(&i.ip).is_some_and(|d| d.winner.is_ok())
        })
    }

    fn status_actions(&mut self) -> Vec<StatusAction> {
        if !self.synced {
            return Vec::new();
        }
        let member = self.phase == Phase::Member && self.settled;
        let desired = match self.phase {
            Phase::Member if self.settled => self.desired_statuses(),
            Phase::Withdrawn => BTreeMap::new(),
            // Until the view settles this node cannot tell which objects are still its own.
            _ => return Vec::new(),
        };
        let me = self.config.node.clone();
        let mut actions = Vec::new();
        for (name, want) in &desired {
            let observed = self.statuses.get(name);
            let current = observed.is_some_and(|o| {
                o.node == want.node
                    && o.service == want.service.key
                    && o.ips == want.ips
                    && o.interfaces == want.interfaces
                    && o.labels == want.labels()
            });
            if current {
                continue;
            }
            let announce =
                (observed.map(|o| o.node.as_str()) != Some(me.as_str())).then(|| EventIntent {
                    service: want.service.clone(),
                    kind: EventKind::Normal,
                    reason: events::NODE_ASSIGNED,
                    note: report::node_assigned_note(&me, &want.ips, &want.interfaces),
                });
            actions.push(StatusAction::Apply {
                name: name.clone(),
                desired: want.clone(),
                announce,
            });
        }
        let janitor = self.alive.iter().next().is_some_and(|first| *first == me);
        for (name, observed) in &self.statuses {
            if desired.contains_key(name) {
                continue;
            }
            let mine = observed.node == me;
            let orphan = member
                && janitor
                && !self.alive.contains(&observed.node)
                && !self.has_owner(name, observed);
            if mine || orphan {
                actions.push(StatusAction::Delete {
                    name: name.clone(),
                    resource_version: observed.resource_version.clone(),
                });
            }
        }
        actions.retain(|action| {
            if self.requested.get(action.name()) == Some(action) {
                return false;
            }
            self.requested
                .insert(action.name().to_string(), action.clone());
            true
        });
        actions
    }
}
