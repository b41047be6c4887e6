//! The speaker at work: watches feed the [`State`]; its [`Changes`] drive the responders,
//! the kernel's forwarding table and the reporter; membership and kube-proxy health decide
//! whether this node takes part at all.
//!
//! One task owns the state and handles everything in arrival order. It never waits for an API
//! write; it waits only for the kernel (a forwarding transaction, milliseconds) so that a
//! takeover answers ARP only once its traffic can be forwarded.
//!
//! # Order of a change
//!
//! 1. Addresses lost: their responders stop answering (before anything else).
//! 2. Forwarding: the new entries are applied in one transaction; entries of lost addresses
//!    drain for `--forward-drain`.
//! 3. Addresses gained: answered from now on; the first gratuitous ARP / NA goes out at once,
//!    the rest over about 2 s.
//! 4. Metrics, ServiceL2Status writes and Events (handed to the reporter).
//!
//! # Membership and health
//!
//! This node joins membership once the caches are synced, its Node object names an
//! InternalIP, and its kube-proxy answers (see [`health`](crate::health)). While kube-proxy
//! fails, it withdraws: it stops answering, then leaves membership, so the others take its
//! addresses over in milliseconds; it joins again when kube-proxy recovers.
//!
//! # Shutdown (SIGTERM)
//!
//! Stop answering for everything; send the membership leave (the others take over and send
//! their gratuitous ARPs); keep forwarding for `--forward-drain`; remove the table; delete the
//! ServiceL2Statuses that still name this node (with a resourceVersion precondition, so the
//! new owners' objects are never touched); exit.

pub mod feed;
pub mod forward;
pub mod members;
pub mod reporter;
pub mod watches;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use ironlb_crds::ServiceL2Status;
use ironlb_crds::address::Family;
use ironlb_crds::runtime::admin::Readiness;
use kube::api::{Api, DeleteParams, Preconditions};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::cli::Settings;
use crate::health;
use crate::membership::{self, Peer};
use crate::metrics::Metrics;
use crate::responder::Responders;
use crate::responder::socket::interface_holding;
use crate::state::{Changes, Phase, ServiceKey, State, WriteOutcome};

use feed::Feeder;
use forward::Forwarding;
use members::Member;
use reporter::{Reporter, ReporterContext};

/// Inputs taken in one batch before the state plans, so a burst costs one plan.
const BATCH: usize = 1024;
/// How often failed interfaces, forwarding and membership are retried, and counters read.
const RETRY_INTERVAL: Duration = Duration::from_secs(2);
/// Deleting our ServiceL2Statuses at shutdown may take this long at most.
const SHUTDOWN_DELETE_TIMEOUT: Duration = Duration::from_secs(3);

/// Why the speaker stopped on its own.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("the watches ended")]
    WatchesEnded,
}

/// What the runtime needs.
pub struct Context {
    pub settings: Settings,
    pub client: kube::Client,
    pub metrics: Metrics,
    pub readiness: Readiness,
}

/// Runs the speaker until `shutdown` fires, then shuts down gracefully (see the module docs).
pub async fn run(ctx: Context, shutdown: CancellationToken) -> Result<(), RuntimeError> {
    let mut speaker = Speaker::new(&ctx).await;
    let mut inputs = std::pin::pin!(watches::inputs(&ctx.client, &ctx.settings.namespace));
    let (health_tx, mut health_rx) = watch::channel(ctx.settings.kube_proxy_healthz.is_none());
    match ctx.settings.kube_proxy_healthz.clone() {
        Some(url) => {
            tracing::info!(%url, "checking kube-proxy's health before joining");
            tokio::spawn(health::watch_kube_proxy(
                url,
                health_tx,
                shutdown.child_token(),
            ));
        }
        None => tracing::info!("kube-proxy health is not checked (--kube-proxy-healthz is empty)"),
    }
    let mut retry = tokio::time::interval(RETRY_INTERVAL);
    retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut result = Ok(());
    tracing::info!(node = %ctx.settings.state.node, namespace = %ctx.settings.namespace, "watching Services, EndpointSlices, Nodes, IPAddressPools, L2Advertisements and ServiceL2Statuses");
    loop {
        let drain_deadline = speaker.forwarding.next_deadline();
        tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            Some((name, outcome)) = speaker.feedback.recv() => {
                speaker.state.status_written(&name, outcome);
            }
            view = membership_changed(&mut speaker.member) => match view {
                Some(view) => speaker.state.set_membership(view.members, view.settled),
                None => {
                    tracing::error!("membership stopped by itself; rejoining");
                    speaker.member = None;
                    speaker.state.set_phase(Phase::Joining);
                }
            },
            Ok(()) = health_rx.changed() => {}
            item = inputs.next() => match item {
                Some(Ok(input)) => speaker.feeder.feed(&mut speaker.state, input),
                Some(Err(err)) => speaker.watch_failed(&err),
                None => {
                    result = Err(RuntimeError::WatchesEnded);
                    break;
                }
            },
            () = sleep_until(drain_deadline), if drain_deadline.is_some() => {
                speaker.forwarding.tick().await;
            }
            _ = retry.tick() => speaker.retry().await,
        }
        // Take whatever else is ready, so a burst of events is planned once.
        for _ in 0..BATCH {
            match inputs.next().now_or_never() {
                Some(Some(Ok(input))) => speaker.feeder.feed(&mut speaker.state, input),
                Some(Some(Err(err))) => speaker.watch_failed(&err),
                _ => break,
            }
        }
        let healthy = *health_rx.borrow();
        speaker.take_part(healthy).await;
        speaker.step().await;
    }
    speaker.shut_down().await;
    result
}

/// The next membership view, or `None` when the membership task ended; pending while this
/// node is not a member.
async fn membership_changed(member: &mut Option<Member>) -> Option<membership::AliveView> {
    match member {
        Some(m) => match m.view.changed().await {
            Ok(()) => Some(m.view.borrow_and_update().clone()),
            Err(_) => None,
        },
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

struct Speaker {
    settings: Settings,
    client: kube::Client,
    metrics: Metrics,
    readiness: Readiness,
    state: State,
    feeder: Feeder,
    responders: Responders,
    forwarding: Forwarding,
    reporter: Reporter,
    reporter_cancel: CancellationToken,
    feedback: mpsc::UnboundedReceiver<(String, WriteOutcome)>,
    member: Option<Member>,
    peers: watch::Sender<Vec<Peer>>,
    /// The node IP membership is bound to, while a member.
    bound: Option<IpAddr>,
    /// The node IPs the default interfaces were resolved for.
    resolved_for: Vec<IpAddr>,
    announced: BTreeSet<(ServiceKey, IpAddr)>,
    gratuitous_cancel: CancellationToken,
    counters: membership::Counters,
    warned_no_ip: bool,
    join_error: Option<String>,
}

impl Speaker {
    async fn new(ctx: &Context) -> Speaker {
        let (feedback_tx, feedback) = mpsc::unbounded_channel();
        let reporter_cancel = CancellationToken::new();
        let (reporter, _task) = Reporter::spawn(
            ReporterContext {
                client: ctx.client.clone(),
                namespace: ctx.settings.namespace.clone(),
                node: ctx.settings.state.node.clone(),
                metrics: ctx.metrics.clone(),
            },
            feedback_tx,
            reporter_cancel.clone(),
        );
        let forwarding = Forwarding::start(
            ctx.settings.forward_mark,
            ctx.settings.forward_drain,
            ctx.metrics.clone(),
        )
        .await;
        Speaker {
            settings: ctx.settings.clone(),
            client: ctx.client.clone(),
            metrics: ctx.metrics.clone(),
            readiness: ctx.readiness.clone(),
            state: State::new(ctx.settings.state.clone()),
            feeder: Feeder::default(),
            responders: Responders::new(ctx.metrics.clone()),
            forwarding,
            reporter,
            reporter_cancel,
            feedback,
            member: None,
            peers: watch::Sender::new(Vec::new()),
            bound: None,
            resolved_for: Vec::new(),
            announced: BTreeSet::new(),
            gratuitous_cancel: CancellationToken::new(),
            counters: membership::Counters::default(),
            warned_no_ip: false,
            join_error: None,
        }
    }

    fn watch_failed(&self, err: &kube::runtime::watcher::Error) {
        self.metrics.watch_restarts.inc();
        tracing::warn!(error = %err, "a watch failed; it restarts with a backoff and relists");
    }

    /// Periodic work: reopen failed interfaces, retry forwarding, read membership counters.
    async fn retry(&mut self) {
        if self.responders.has_failures() {
            self.responders.publish(&self.state.owned_by_interface());
        }
        self.forwarding.tick().await;
        if let Some(member) = &self.member {
            let counters = member.stats.borrow().counters;
            let rejected = [
                (
                    "auth_failure",
                    counters.auth_failures,
                    self.counters.auth_failures,
                ),
                ("malformed", counters.malformed, self.counters.malformed),
                ("replayed", counters.replayed, self.counters.replayed),
                ("unverified", counters.unverified, self.counters.unverified),
                (
                    "misaddressed",
                    counters.misaddressed,
                    self.counters.misaddressed,
                ),
                (
                    "unknown_sender",
                    counters.unknown_sender,
                    self.counters.unknown_sender,
                ),
            ];
            for (reason, now, before) in rejected {
                if now > before {
                    self.metrics
                        .membership_rejected
                        .with_label_values(&[reason])
                        .inc_by(now - before);
                }
            }
            self.counters = counters;
        }
    }

    /// The InternalIP membership binds to: IPv4 when the node has one, else IPv6.
    fn membership_ip(&self) -> Option<IpAddr> {
        let node = self.state.my_node()?;
        node.internal_ips
            .iter()
            .find(|ip| ip.is_ipv4())
            .or_else(|| node.internal_ips.first())
            .copied()
    }

    /// Joins or leaves membership as health and the caches allow; keeps the peer list and
    /// the default interfaces current.
    async fn take_part(&mut self, healthy: bool) {
        self.metrics.kube_proxy_healthy.set(i64::from(healthy));
        self.resolve_default_interfaces();
        if let Some(ip) = self.bound {
            let family = Family::of(ip);
            let port = self.settings.membership.port;
            let peers: Vec<Peer> = self
                .state
                .peers(family)
                .into_iter()
                .map(|(name, ip)| Peer {
                    name,
                    addr: SocketAddr::new(ip, port),
                })
                .collect();
            self.peers.send_if_modified(|current| {
                let changed = *current != peers;
                if changed {
                    *current = peers;
                }
                changed
            });
        }
        match (&self.member, healthy) {
            (Some(_), false) => {
                tracing::warn!("withdrawing: announcing nothing, then leaving membership");
                self.state.set_phase(Phase::Withdrawn);
                let changes = self.state.plan();
                self.apply(changes).await;
                if let Some(member) = self.member.take() {
                    member.leave().await;
                }
                self.bound = None;
                self.metrics.members.set(0);
            }
            (None, true) if self.state.is_synced() => self.join().await,
            _ => {}
        }
    }

    async fn join(&mut self) {
        let Some(ip) = self.membership_ip() else {
            if !self.warned_no_ip {
                tracing::warn!(node = %self.settings.state.node, "this node's Node object has no InternalIP yet; not joining membership");
                self.warned_no_ip = true;
            }
            return;
        };
        let settings = match self
            .settings
            .membership
            .settings(&self.settings.state.node, ip)
        {
            Ok(s) => s,
            Err(err) => {
                self.join_failed(&err);
                return;
            }
        };
        let family = Family::of(ip);
        let port = self.settings.membership.port;
        let peers: Vec<Peer> = self
            .state
            .peers(family)
            .into_iter()
            .map(|(name, ip)| Peer {
                name,
                addr: SocketAddr::new(ip, port),
            })
            .collect();
        self.peers.send_replace(peers);
        match Member::join(settings, self.peers.subscribe()).await {
            Ok(member) => {
                self.join_error = None;
                self.counters = membership::Counters::default();
                let view = member.view.borrow().clone();
                self.member = Some(member);
                self.bound = Some(ip);
                self.state.set_phase(Phase::Member);
                self.state.set_membership(view.members, view.settled);
            }
            Err(err) => self.join_failed(&err),
        }
    }

    fn join_failed(&mut self, err: &membership::Error) {
        let text = err.to_string();
        if self.join_error.as_deref() != Some(&text) {
            tracing::error!(error = %text, "cannot join membership; retrying");
            self.join_error = Some(text);
        }
    }

    /// Finds the interfaces that hold this node's InternalIPs, for advertisements that name
    /// no interface.
    fn resolve_default_interfaces(&mut self) {
        let Some(node) = self.state.my_node() else {
            return;
        };
        if node.internal_ips == self.resolved_for {
            return;
        }
        let ips = node.internal_ips.clone();
        let mut interfaces = BTreeMap::new();
        for ip in &ips {
            match interface_holding(*ip) {
                Some(name) => {
                    tracing::info!(%ip, interface = %name, "the node's InternalIP is on this interface");
                    interfaces.insert(Family::of(*ip), name);
                }
                None => {
                    tracing::warn!(%ip, "no interface of this host holds the node's InternalIP; advertisements without interfaces cannot be announced for its family")
                }
            }
        }
        self.state.set_default_interfaces(interfaces);
        self.resolved_for = ips;
    }

    /// Plans and applies, and refreshes readiness.
    async fn step(&mut self) {
        let changes = self.state.plan();
        self.apply(changes).await;
        let ready = self.state.is_synced()
            && self.state.phase() == Phase::Member
            && self.state.is_settled();
        if ready != self.readiness.is_ready() {
            tracing::info!(ready, "readiness changed");
        }
        self.readiness.set(ready);
        let members = match &self.member {
            Some(m) => m.view.borrow().members.len(),
            None => 0,
        };
        self.metrics
            .members
            .set(i64::try_from(members).unwrap_or(i64::MAX));
    }

    /// Carries out one plan, in the order the module docs give.
    async fn apply(&mut self, changes: Changes) {
        for problem in &changes.problems {
            tracing::warn!("{problem}");
        }
        let owned = self.state.owned_by_interface();
        if !changes.lost.is_empty() {
            let mut without_gains = owned.clone();
            for (ip, interface) in &changes.gained {
                if let Some(set) = without_gains.get_mut(interface) {
                    set.remove(ip);
                }
            }
            self.responders.publish(&without_gains);
            for (ip, interface) in &changes.lost {
                tracing::info!(%ip, %interface, "stopped announcing");
            }
        }
        if let Some(entries) = changes.forwarding {
            self.forwarding.set(entries, &changes.losses).await;
        }
        if !changes.gained.is_empty() || !changes.lost.is_empty() {
            self.responders.publish(&owned);
        }
        for (ip, interface) in &changes.gained {
            tracing::info!(%ip, %interface, "announcing");
            match self.responders.gratuitous(interface) {
                Some(sender) => sender.announce(*ip, &self.gratuitous_cancel),
                None => {
                    tracing::warn!(%ip, %interface, "cannot announce: the interface's responder is not running")
                }
            }
        }
        self.metrics
            .takeovers
            .inc_by(changes.takeovers.len() as u64);
        if let Some(announced) = changes.announced {
            let node = self.settings.state.node.clone();
            for (key, ip) in self.announced.difference(&announced) {
                let _ = self.metrics.announced.remove_label_values(&[
                    &key.to_string(),
                    &ip.to_string(),
                    &node,
                ]);
            }
            for (key, ip) in announced.difference(&self.announced) {
                self.metrics
                    .announced
                    .with_label_values(&[&key.to_string(), &ip.to_string(), &node])
                    .set(1);
            }
            self.announced = announced;
        }
        for action in changes.statuses {
            self.reporter.status(action);
        }
        for event in changes.events {
            tracing::warn!(service = %event.service.key, reason = event.reason, "{}", event.note);
            self.reporter.event(event);
        }
    }

    async fn shut_down(mut self) {
        self.readiness.set(false);
        self.gratuitous_cancel.cancel();
        self.responders.silence();
        tracing::info!("shutting down: stopped answering ARP/NDP");
        if let Some(member) = self.member.take() {
            member.leave().await;
            tracing::info!("shutting down: left membership");
        }
        self.metrics.members.set(0);
        if !self.forwarding.is_empty() && !self.settings.forward_drain.is_zero() {
            tracing::info!(drain = ?self.settings.forward_drain, "shutting down: forwarding drains");
            tokio::time::sleep(self.settings.forward_drain).await;
        }
        self.forwarding.remove().await;
        self.reporter_cancel.cancel();
        self.delete_my_statuses().await;
        self.responders.stop();
        tracing::info!("stopped");
    }

    /// Deletes the ServiceL2Statuses that name this node, each only if unchanged since we saw
    /// it (a new owner's object has another resourceVersion).
    async fn delete_my_statuses(&self) {
        let mine = self.state.my_statuses();
        if mine.is_empty() {
            return;
        }
        let api: Api<ServiceL2Status> =
            Api::namespaced(self.client.clone(), &self.settings.namespace);
        let deletes = mine.into_iter().map(|(name, rv)| {
            let api = api.clone();
            let metrics = self.metrics.clone();
            async move {
                metrics
                    .api_writes
                    .with_label_values(&["status_delete"])
                    .inc();
                let params = DeleteParams {
                    preconditions: Some(Preconditions {
                        resource_version: rv,
                        uid: None,
                    }),
                    ..DeleteParams::default()
                };
                match api.delete(&name, &params).await {
                    Ok(_) => tracing::info!(%name, "shutting down: ServiceL2Status deleted"),
                    Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {
                        tracing::debug!(%name, "ServiceL2Status already gone or taken over")
                    }
                    Err(err) => {
                        tracing::warn!(%name, error = %err, "cannot delete a ServiceL2Status")
                    }
                }
            }
        });
        if tokio::time::timeout(SHUTDOWN_DELETE_TIMEOUT, futures::future::join_all(deletes))
            .await
            .is_err()
        {
            tracing::warn!("shutting down: gave up deleting ServiceL2Statuses");
        }
    }
}
