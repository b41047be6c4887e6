//! The membership protocol as a sans-io state machine: fed with the time, received datagrams and
//! the peer list; produces datagrams to send, state-change events and the alive set. It owns no
//! socket and reads no clock, so it runs identically under the tokio driver and the simulator.
//!
//! Per probe interval, each member:
//! - probes the `monitors` members after it on the ring (see [`super::ring`]): a `Ping`; after the
//!   ack timeout a second `Ping` and `PingReq`s to `indirect_probes` other members; if no ack by
//!   the end of the indirect timeout, it *suspects* the member and sends the suspicion to all;
//! - pings every member suspected by anyone: an ack from the suspect, which has raised its
//!   incarnation after seeing that it is suspected, refutes the suspicion for this prober;
//! - pings members it holds as dead, left or unknown once per rejoin interval.
//!
//! A suspicion that nobody refutes within the suspicion timeout becomes death, at every member
//! that heard of it, from its own timer. Members that raised the suspicion also send the death to
//! all, so members that missed the suspicion learn it at the same moment.
//!
//! Liveness evidence only comes from acks to the member's own nonces (or from relays it asked);
//! unsolicited datagrams pass the [`super::replay`] guard, whose baselines are themselves set by
//! such acks. The recipient's view of the sender ("your status") in each datagram lets a member
//! learn that it is suspected or declared dead and refute with a higher incarnation.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use super::config::Config;
use super::key::Key;
use super::piggyback::Piggyback;
use super::replay::{Freshness, ReplayGuard};
use super::ring::{monitor_targets_placed, ring_position};
use super::rng::SplitMix64;
use super::state::{MemberState, Status, Update};
use super::wire::{self, Body, Message};
use super::{Error, Result};

/// A speaker that should take part in membership, as listed by the API.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Peer {
    pub name: String,
    pub addr: SocketAddr,
}

/// Who this process is: its node name, a random epoch for this start, and a random seed for
/// nonces. Both numbers must differ between starts of the same node.
#[derive(Debug, Clone)]
pub struct Identity {
    pub name: String,
    pub epoch: u64,
    pub seed: u64,
}

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub to: SocketAddr,
    pub bytes: Vec<u8>,
}

/// A change of what this member believes about another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    StateChanged {
        member: String,
        status: Status,
    },
    /// The member is no longer in the peer list.
    Removed {
        member: String,
    },
}

/// Message and drop counters, for metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counters {
    pub datagrams_sent: u64,
    pub datagrams_received: u64,
    /// Truncated, oversized, wrong magic or version, bad fields.
    pub malformed: u64,
    /// Wrong or missing authentication tag.
    pub auth_failures: u64,
    /// Authenticated but not newer than what was already accepted from the sender.
    pub replayed: u64,
    /// Authenticated but from a sender (or sender epoch) not yet verified by a challenge.
    pub unverified: u64,
    /// Authenticated but addressed to another member.
    pub misaddressed: u64,
    /// Authenticated but from a name not in the peer list.
    pub unknown_sender: u64,
    /// Acks that match no outstanding probe (late, duplicated or replayed).
    pub unexpected_acks: u64,
    /// Suspicions this member raised after a failed probe.
    pub suspicions_raised: u64,
    /// Times this member refuted a suspicion or death about itself.
    pub refutations: u64,
    /// Messages that could not be encoded (a bug if ever non-zero).
    pub encode_failures: u64,
}

#[derive(Debug, Clone)]
struct Member {
    addr: SocketAddr,
    ring_position: u64,
    status: Status,
    suspect_deadline: Option<Duration>,
    /// This member's own probe failed during the current suspicion, so it announces the death.
    witnessed: bool,
    next_rejoin_probe: Duration,
    last_challenge: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Purpose {
    /// A ring target, or a member reported dead at an older incarnation than we know.
    Monitor,
    /// First contact with a member just added to the peer list.
    Hello,
    /// A member suspected by someone; only the ack matters.
    Verify,
    /// A member we hold as dead or left.
    Rejoin,
    /// A sender whose datagrams we cannot accept until it answers one of our nonces.
    Challenge,
    /// A probe on behalf of `requester`, who sent a `PingReq`.
    Relay {
        requester: String,
        requester_nonce: u64,
    },
}

#[derive(Debug, Clone)]
struct Probe {
    nonce: u64,
    target: String,
    purpose: Purpose,
    started: Duration,
    /// When the second ping and the indirect probes went out.
    escalated: Option<Duration>,
    relays: Vec<String>,
}

impl Probe {
    fn escalates(&self) -> bool {
        matches!(self.purpose, Purpose::Monitor | Purpose::Hello)
    }
}

/// One member's protocol state.
pub struct Protocol {
    config: Config,
    key: Key,
    me: String,
    my_ring_position: u64,
    epoch: u64,
    seq: u64,
    incarnation: u64,
    rng: SplitMix64,
    peers: BTreeMap<String, Member>,
    peers_known: bool,
    replay: ReplayGuard,
    probes: Vec<Probe>,
    piggyback: Piggyback,
    next_tick: Duration,
    left: bool,
    outbox: Vec<Outgoing>,
    events: Vec<Event>,
    counters: Counters,
}

impl Protocol {
    pub fn new(config: Config, key: Key, identity: Identity, now: Duration) -> Result<Self> {
        config.validate()?;
        if !wire::valid_name(&identity.name) {
            return Err(Error::InvalidName(identity.name));
        }
        let mut rng = SplitMix64::new(identity.seed);
        // A random phase keeps members from probing in lockstep.
        let phase = rng.below(config.probe_interval.as_nanos() as u64);
        Ok(Self {
            next_tick: now + Duration::from_nanos(phase),
            config,
            key,
            my_ring_position: ring_position(&identity.name),
            me: identity.name,
            epoch: identity.epoch,
            seq: 0,
            incarnation: 0,
            rng,
            peers: BTreeMap::new(),
            peers_known: false,
            replay: ReplayGuard::default(),
            probes: Vec::new(),
            piggyback: Piggyback::default(),
            left: false,
            outbox: Vec::new(),
            events: Vec::new(),
            counters: Counters::default(),
        })
    }

    pub fn name(&self) -> &str {
        &self.me
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// This member's current incarnation; it rises each time it refutes a suspicion.
    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Whether [`Protocol::leave`] was called.
    pub fn has_left(&self) -> bool {
        self.left
    }

    /// The members counted as alive, this member included: alive and suspected peers.
    pub fn alive_members(&self) -> BTreeSet<String> {
        self.peers
            .iter()
            .filter(|(_, m)| m.status.state.is_live())
            .map(|(n, _)| n.clone())
            .chain(std::iter::once(self.me.clone()))
            .collect()
    }

    /// What this member believes about `name`.
    pub fn status_of(&self, name: &str) -> Option<Status> {
        self.peers.get(name).map(|m| m.status)
    }

    /// Every peer and what this member believes about it.
    pub fn members(&self) -> impl Iterator<Item = (&str, Status)> {
        self.peers.iter().map(|(n, m)| (n.as_str(), m.status))
    }

    /// Whether the peer list has been received and every peer has been either heard from or
    /// found unreachable. Until then the alive set may be missing live members.
    pub fn is_settled(&self) -> bool {
        self.peers_known
            && self
                .peers
                .values()
                .all(|m| m.status.state != MemberState::Unknown)
    }

    /// Datagrams produced since the last call.
    pub fn drain_outgoing(&mut self) -> Vec<Outgoing> {
        std::mem::take(&mut self.outbox)
    }

    /// Events produced since the last call.
    pub fn drain_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// When [`Protocol::handle_timeout`] must next be called.
    pub fn next_deadline(&self) -> Option<Duration> {
        if self.left {
            return None;
        }
        let probes = self.probes.iter().map(|p| self.probe_deadline(p));
        let suspicions = self.peers.values().filter_map(|m| m.suspect_deadline);
        probes.chain(suspicions).chain([self.next_tick]).min()
    }

    /// Replaces the peer list (from the API). This member's own entry, if listed, is ignored.
    pub fn set_peers(&mut self, now: Duration, peers: impl IntoIterator<Item = Peer>) {
        if self.left {
            return;
        }
        self.peers_known = true;
        let mut listed = BTreeMap::new();
        for p in peers {
            if p.name != self.me && wire::valid_name(&p.name) {
                listed.insert(p.name, p.addr);
            }
        }
        let removed: Vec<String> = self
            .peers
            .keys()
            .filter(|n| !listed.contains_key(*n))
            .cloned()
            .collect();
        for name in removed {
            self.peers.remove(&name);
            self.replay.forget(&name);
            self.piggyback.forget(&name);
            self.probes.retain(|p| p.target != name);
            self.events.push(Event::Removed { member: name });
        }
        let mut added = Vec::new();
        for (name, addr) in listed {
            match self.peers.get_mut(&name) {
                Some(m) => m.addr = addr,
                None => {
                    self.peers.insert(
                        name.clone(),
                        Member {
                            addr,
                            ring_position: ring_position(&name),
                            status: Status::UNKNOWN,
                            suspect_deadline: None,
                            witnessed: false,
                            next_rejoin_probe: now + self.config.rejoin_interval,
                            last_challenge: None,
                        },
                    );
                    added.push(name);
                }
            }
        }
        for name in added {
            self.start_probe(now, name, Purpose::Hello);
        }
    }

    /// Announces a graceful leave to every peer. Each announcement is sent twice, so one lost
    /// datagram does not turn a graceful handover into failure detection. The member then stays
    /// silent.
    pub fn leave(&mut self) {
        if self.left {
            return;
        }
        let left = Update {
            member: self.me.clone(),
            status: Status::new(MemberState::Left, self.incarnation),
        };
        let everyone: Vec<String> = self.peers.keys().cloned().collect();
        for _ in 0..2 {
            for name in &everyone {
                self.send(name, Body::Gossip, Some(left.clone()));
            }
        }
        self.left = true;
        self.probes.clear();
    }

    /// Runs every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Duration) {
        if self.left {
            return;
        }
        let due: Vec<u64> = self
            .probes
            .iter()
            .filter(|p| self.probe_deadline(p) <= now)
            .map(|p| p.nonce)
            .collect();
        for nonce in due {
            self.probe_timed_out(now, nonce);
        }

        let expired: Vec<String> = self
            .peers
            .iter()
            .filter(|(_, m)| m.suspect_deadline.is_some_and(|d| d <= now))
            .map(|(n, _)| n.clone())
            .collect();
        for name in expired {
            self.suspicion_expired(now, &name);
        }

        if now >= self.next_tick {
            self.tick(now);
            self.next_tick += self.config.probe_interval;
            if self.next_tick <= now {
                // The driver was stalled; don't fire a burst of missed ticks.
                self.next_tick = now + self.config.probe_interval;
            }
        }
    }

    /// Processes one received datagram.
    pub fn handle_datagram(&mut self, now: Duration, datagram: &[u8]) {
        if self.left {
            return;
        }
        self.counters.datagrams_received += 1;
        let msg = match Message::decode(datagram, &self.key) {
            Ok(m) => m,
            Err(e) if e.is_auth_failure() => {
                self.counters.auth_failures += 1;
                return;
            }
            Err(_) => {
                self.counters.malformed += 1;
                return;
            }
        };
        if msg.recipient != self.me {
            self.counters.misaddressed += 1;
            return;
        }
        if !self.peers.contains_key(&msg.sender) {
            self.counters.unknown_sender += 1;
            return;
        }
        if let Body::Ack { nonce, incarnation } = msg.body {
            self.on_ack(now, &msg, nonce, incarnation);
            return;
        }
        match self.replay.check(&msg.sender, msg.epoch, msg.seq) {
            Freshness::Fresh => {
                self.replay.accept(&msg.sender, msg.epoch, msg.seq);
                self.absorb(now, &msg);
                match &msg.body {
                    Body::Ping { nonce } => self.send_ack(&msg.sender, *nonce),
                    Body::PingReq { nonce, target } => self.relay(now, &msg.sender, *nonce, target),
                    Body::Gossip | Body::Ack { .. } => {}
                }
            }
            Freshness::Stale => {
                self.counters.replayed += 1;
                // A ping overtaken by a later datagram still deserves its ack; its content is
                // ignored. Answering a replay is harmless: the ack echoes a nonce nobody awaits.
                if let Body::Ping { nonce } = msg.body {
                    self.send_ack(&msg.sender, nonce);
                }
            }
            Freshness::Unverified => {
                self.counters.unverified += 1;
                // A restarted sender needs our ack to verify us; its content waits until it has
                // answered our challenge.
                if let Body::Ping { nonce } = msg.body {
                    self.send_ack(&msg.sender, nonce);
                }
                self.challenge(now, &msg.sender);
            }
        }
    }

    fn probe_deadline(&self, p: &Probe) -> Duration {
        let c = &self.config;
        match p.purpose {
            Purpose::Relay { .. } => p.started + c.indirect_timeout,
            // Measured from the escalation, so that a stalled process still gives the indirect
            // probes their full time before suspecting anyone.
            _ if p.escalates() => match p.escalated {
                None => p.started + c.ack_timeout,
                Some(at) => at + c.indirect_timeout,
            },
            _ => p.started + c.ack_timeout + c.indirect_timeout,
        }
    }

    fn probing(&self, target: &str) -> bool {
        self.probes
            .iter()
            .any(|p| p.target == target && !matches!(p.purpose, Purpose::Relay { .. }))
    }

    fn tick(&mut self, now: Duration) {
        let live = self
            .peers
            .iter()
            .filter(|(_, m)| m.status.state.is_live())
            .map(|(n, m)| (m.ring_position, n.as_str()));
        let me = (self.my_ring_position, self.me.as_str());
        let targets: Vec<String> = monitor_targets_placed(me, live, self.config.monitors)
            .into_iter()
            .map(str::to_owned)
            .collect();
        for t in &targets {
            if !self.probing(t) {
                self.start_probe(now, t.clone(), Purpose::Monitor);
            }
        }
        let mut starts = Vec::new();
        for (name, m) in &mut self.peers {
            if m.status.state.is_live() && !self.replay.knows(name) {
                // Known alive only through others (or through relays): get a baseline, so that
                // its announcements, a leave above all, are accepted when they come.
                starts.push((name.clone(), Purpose::Challenge));
                continue;
            }
            let purpose = match m.status.state {
                MemberState::Suspect if !targets.contains(name) => Purpose::Verify,
                MemberState::Unknown | MemberState::Dead | MemberState::Left
                    if now >= m.next_rejoin_probe =>
                {
                    m.next_rejoin_probe = now + self.config.rejoin_interval;
                    if m.status.state == MemberState::Unknown {
                        Purpose::Hello
                    } else {
                        Purpose::Rejoin
                    }
                }
                _ => continue,
            };
            starts.push((name.clone(), purpose));
        }
        for (name, purpose) in starts {
            if purpose == Purpose::Challenge {
                self.challenge(now, &name);
            } else if !self.probing(&name) {
                self.start_probe(now, name, purpose);
            }
        }
    }

    fn start_probe(&mut self, now: Duration, target: String, purpose: Purpose) {
        let nonce = self.rng.next_u64();
        self.send(&target, Body::Ping { nonce }, None);
        self.probes.push(Probe {
            nonce,
            target,
            purpose,
            started: now,
            escalated: None,
            relays: Vec::new(),
        });
    }

    fn probe_timed_out(&mut self, now: Duration, nonce: u64) {
        let Some(i) = self.probes.iter().position(|p| p.nonce == nonce) else {
            return;
        };
        if self.probes[i].escalates() && self.probes[i].escalated.is_none() {
            self.escalate(now, i);
            return;
        }
        let probe = self.probes.swap_remove(i);
        match probe.purpose {
            Purpose::Monitor => self.raise_suspicion(now, &probe.target),
            Purpose::Hello => {
                // Never heard from: unreachable for now. This is a local conclusion, not news
                // for others, so it is not disseminated.
                if let Some(m) = self.peers.get(&probe.target)
                    && m.status.state == MemberState::Unknown
                {
                    let dead = Status::new(MemberState::Dead, m.status.incarnation);
                    self.set_status(now, &probe.target, dead, false);
                }
            }
            _ => {}
        }
    }

    /// Second direct ping plus indirect probes through randomly chosen alive members.
    fn escalate(&mut self, now: Duration, i: usize) {
        let target = self.probes[i].target.clone();
        let nonce = self.probes[i].nonce;
        let mut candidates: Vec<String> = self
            .peers
            .iter()
            .filter(|(n, m)| m.status.state == MemberState::Alive && **n != target)
            .map(|(n, _)| n.clone())
            .collect();
        let k = self.config.indirect_probes.min(candidates.len());
        for j in 0..k {
            let pick = j + self.rng.below((candidates.len() - j) as u64) as usize;
            candidates.swap(j, pick);
        }
        candidates.truncate(k);
        self.send(&target, Body::Ping { nonce }, None);
        for relay in &candidates {
            self.send(
                relay,
                Body::PingReq {
                    nonce,
                    target: target.clone(),
                },
                None,
            );
        }
        let probe = &mut self.probes[i];
        probe.escalated = Some(now);
        probe.relays = candidates;
    }

    fn relay(&mut self, now: Duration, requester: &str, requester_nonce: u64, target: &str) {
        if target == self.me || !self.peers.contains_key(target) {
            return;
        }
        self.start_probe(
            now,
            target.to_owned(),
            Purpose::Relay {
                requester: requester.to_owned(),
                requester_nonce,
            },
        );
    }

    fn challenge(&mut self, now: Duration, sender: &str) {
        let Some(m) = self.peers.get_mut(sender) else {
            return;
        };
        // At most one challenge per probe interval: replays must not make us flood a peer.
        if m.last_challenge
            .is_some_and(|t| now < t + self.config.probe_interval)
        {
            return;
        }
        m.last_challenge = Some(now);
        if !self.probing(sender) {
            self.start_probe(now, sender.to_owned(), Purpose::Challenge);
        }
    }

    fn on_ack(&mut self, now: Duration, msg: &Message, nonce: u64, incarnation: u64) {
        let Some(i) = self.probes.iter().position(|p| {
            p.nonce == nonce && (p.target == msg.sender || p.relays.contains(&msg.sender))
        }) else {
            self.counters.unexpected_acks += 1;
            return;
        };
        let probe = self.probes.swap_remove(i);
        // The ack echoes our own nonce, so it is fresh: it verifies the sender's epoch.
        self.replay.establish(&msg.sender, msg.epoch, msg.seq);
        self.absorb(now, msg);
        self.set_status_if_newer(
            now,
            &probe.target,
            Status::new(MemberState::Alive, incarnation),
        );
        if let Purpose::Relay {
            requester,
            requester_nonce,
        } = probe.purpose
            && self.peers.contains_key(&requester)
        {
            self.send(
                &requester,
                Body::Ack {
                    nonce: requester_nonce,
                    incarnation,
                },
                None,
            );
        }
    }

    /// Takes in the sender's view of us and its piggybacked updates.
    fn absorb(&mut self, now: Duration, msg: &Message) {
        self.learn_about_me(msg.your_status);
        for update in &msg.updates {
            if update.member == self.me {
                self.learn_about_me(update.status);
                continue;
            }
            let Some(current) = self.peers.get(&update.member).map(|m| m.status) else {
                continue;
            };
            if update.status.supersedes(current) {
                self.set_status(now, &update.member, update.status, true);
            } else if matches!(update.status.state, MemberState::Dead | MemberState::Left)
                && current.state.is_live()
                && update.status.incarnation < current.incarnation
                && !self.probing(&update.member)
            {
                // Someone missed the member's last refutation and declared it dead. Check for
                // ourselves: if it is really gone, our failed probe raises a current suspicion.
                self.start_probe(now, update.member.clone(), Purpose::Monitor);
            }
        }
    }

    fn learn_about_me(&mut self, status: Status) {
        if status.state.is_negative() && status.incarnation >= self.incarnation {
            self.incarnation = status.incarnation + 1;
            self.counters.refutations += 1;
            let alive = Update {
                member: self.me.clone(),
                status: Status::new(MemberState::Alive, self.incarnation),
            };
            self.piggyback.push(alive.clone());
            let everyone: Vec<String> = self.peers.keys().cloned().collect();
            for name in everyone {
                self.send(&name, Body::Gossip, Some(alive.clone()));
            }
        }
    }

    fn raise_suspicion(&mut self, now: Duration, target: &str) {
        let Some(m) = self.peers.get(target) else {
            return;
        };
        if !m.status.state.is_live() || m.witnessed {
            return;
        }
        let suspect = Status::new(MemberState::Suspect, m.status.incarnation);
        if m.status.state == MemberState::Alive {
            self.set_status(now, target, suspect, true);
        }
        if let Some(m) = self.peers.get_mut(target) {
            m.witnessed = true;
        }
        self.counters.suspicions_raised += 1;
        let update = Update {
            member: target.to_owned(),
            status: suspect,
        };
        // Everyone who counts the member as alive, and the member itself so it can refute.
        let recipients: Vec<String> = self
            .peers
            .iter()
            .filter(|(n, m)| m.status.state.is_live() || *n == target)
            .map(|(n, _)| n.clone())
            .collect();
        for name in recipients {
            self.send(&name, Body::Gossip, Some(update.clone()));
        }
    }

    fn suspicion_expired(&mut self, now: Duration, target: &str) {
        let Some(m) = self.peers.get(target) else {
            return;
        };
        let witnessed = m.witnessed;
        let dead = Status::new(MemberState::Dead, m.status.incarnation);
        self.set_status(now, target, dead, true);
        if witnessed {
            let update = Update {
                member: target.to_owned(),
                status: dead,
            };
            let recipients: Vec<String> = self
                .peers
                .iter()
                .filter(|(_, m)| m.status.state.is_live())
                .map(|(n, _)| n.clone())
                .collect();
            for name in recipients {
                self.send(&name, Body::Gossip, Some(update.clone()));
            }
        }
    }

    fn set_status_if_newer(&mut self, now: Duration, name: &str, status: Status) {
        if let Some(m) = self.peers.get(name)
            && status.supersedes(m.status)
        {
            // First contact is not news: every member greets every peer itself.
            let disseminate = m.status.state != MemberState::Unknown;
            self.set_status(now, name, status, disseminate);
        }
    }

    fn set_status(&mut self, now: Duration, name: &str, status: Status, disseminate: bool) {
        let rejoin = now + self.config.rejoin_interval;
        let suspicion_end = now + self.config.suspicion_timeout;
        let Some(m) = self.peers.get_mut(name) else {
            return;
        };
        if m.status == status {
            return;
        }
        m.status = status;
        m.witnessed = false;
        m.suspect_deadline = None;
        match status.state {
            MemberState::Suspect => m.suspect_deadline = Some(suspicion_end),
            MemberState::Dead | MemberState::Left => m.next_rejoin_probe = rejoin,
            MemberState::Alive | MemberState::Unknown => {}
        }
        let update = Update {
            member: name.to_owned(),
            status,
        };
        if disseminate {
            self.piggyback.push(update);
        }
        self.events.push(Event::StateChanged {
            member: name.to_owned(),
            status,
        });
    }

    fn send_ack(&mut self, to: &str, nonce: u64) {
        let incarnation = self.incarnation;
        self.send(to, Body::Ack { nonce, incarnation }, None);
    }

    fn send(&mut self, to: &str, body: Body, primary: Option<Update>) {
        let Some(m) = self.peers.get(to) else {
            return;
        };
        let addr = m.addr;
        self.seq += 1;
        let mut msg = Message {
            sender: self.me.clone(),
            recipient: to.to_owned(),
            epoch: self.epoch,
            seq: self.seq,
            your_status: m.status,
            body,
            updates: Vec::new(),
        };
        let skip = primary.as_ref().map(|u| u.member.clone());
        msg.updates.extend(primary);
        let budget = wire::MAX_DATAGRAM_LEN.saturating_sub(msg.encoded_len());
        let limit = self.config.retransmit_limit(self.peers.len() + 1);
        self.piggyback
            .fill(&mut msg.updates, budget, skip.as_deref(), limit);
        match msg.encode(&self.key) {
            Ok(bytes) => {
                self.counters.datagrams_sent += 1;
                self.outbox.push(Outgoing { to: addr, bytes });
            }
            Err(_) => self.counters.encode_failures += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    //! Single-member behaviour, driven by hand-made datagrams. Whole-cluster behaviour is tested
    //! with the simulator in `speaker/tests/membership_sim.rs`.
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn key() -> Key {
        Key::from_file_contents(b"protocol-test-key-0123").unwrap()
    }

    fn addr(i: u8) -> SocketAddr {
        SocketAddr::from(([192, 0, 2, i], 7946))
    }

    fn peers(names: &[&str]) -> Vec<Peer> {
        names
            .iter()
            .enumerate()
            .map(|(i, n)| Peer {
                name: n.to_string(),
                addr: addr(i as u8 + 1),
            })
            .collect()
    }

    fn mk(name: &str, all: &[&str]) -> Protocol {
        let mut p = Protocol::new(
            Config::default(),
            key(),
            Identity {
                name: name.into(),
                epoch: 1,
                seed: 1,
            },
            Duration::ZERO,
        )
        .unwrap();
        p.set_peers(Duration::ZERO, peers(all));
        p
    }

    fn decode_all(out: &[Outgoing]) -> Vec<Message> {
        out.iter()
            .map(|o| Message::decode(&o.bytes, &key()).unwrap())
            .collect()
    }

    /// A datagram from `sender` (epoch 9) to `recipient`.
    fn dgram(sender: &str, recipient: &str, seq: u64, body: Body, updates: Vec<Update>) -> Vec<u8> {
        Message {
            sender: sender.into(),
            recipient: recipient.into(),
            epoch: 9,
            seq,
            your_status: Status::new(MemberState::Alive, 0),
            body,
            updates,
        }
        .encode(&key())
        .unwrap()
    }

    /// Answers every ping `a` sent to `b` with an ack from `b`.
    fn answer_pings(a: &mut Protocol, b: &str, seq: &mut u64, now: Duration) {
        let out = a.drain_outgoing();
        answer(a, &out, b, seq, now);
    }

    /// Answers the pings in `out` that were sent to `b`.
    fn answer(a: &mut Protocol, out: &[Outgoing], b: &str, seq: &mut u64, now: Duration) {
        for m in decode_all(out) {
            if let (Body::Ping { nonce }, true) = (&m.body, m.recipient == b) {
                *seq += 1;
                let ack = dgram(
                    b,
                    a.name(),
                    *seq,
                    Body::Ack {
                        nonce: *nonce,
                        incarnation: 0,
                    },
                    vec![],
                );
                a.handle_datagram(now, &ack);
            }
        }
    }

    #[test]
    fn new_peers_are_greeted_and_become_alive_on_ack() {
        let mut a = mk("a", &["a", "b"]);
        assert!(!a.is_settled());
        assert_eq!(a.status_of("b"), Some(Status::UNKNOWN));
        assert_eq!(a.alive_members(), BTreeSet::from(["a".to_string()]));
        let mut seq = 0;
        answer_pings(&mut a, "b", &mut seq, MS);
        assert_eq!(a.status_of("b"), Some(Status::new(MemberState::Alive, 0)));
        assert!(a.is_settled());
        assert_eq!(
            a.drain_events(),
            vec![Event::StateChanged {
                member: "b".into(),
                status: Status::new(MemberState::Alive, 0)
            }]
        );
    }

    #[test]
    fn an_unanswered_greeting_marks_the_peer_dead_locally() {
        let mut a = mk("a", &["a", "b"]);
        a.drain_outgoing();
        let mut now = Duration::ZERO;
        while now < Duration::from_millis(150) {
            now += MS;
            a.handle_timeout(now);
        }
        assert_eq!(a.status_of("b").unwrap().state, MemberState::Dead);
        assert!(a.is_settled());
        // No gossip of a conclusion drawn without ever having seen the member.
        assert!(
            decode_all(&a.drain_outgoing())
                .iter()
                .all(|m| m.updates.is_empty())
        );
    }

    #[test]
    fn unsolicited_datagrams_wait_for_a_challenge_answer() {
        let mut a = mk("a", &["a", "b", "c"]);
        let greetings = a.drain_outgoing();
        // "b says c is dead", before a has verified b.
        let dead_c = Update {
            member: "c".into(),
            status: Status::new(MemberState::Dead, 0),
        };
        a.handle_datagram(MS, &dgram("b", "a", 5, Body::Gossip, vec![dead_c.clone()]));
        assert_eq!(a.counters().unverified, 1);
        assert_eq!(a.status_of("c"), Some(Status::UNKNOWN));
        // The same from a verified b is accepted, but only once.
        let mut seq = 10;
        answer(&mut a, &greetings, "b", &mut seq, 2 * MS);
        let fresh = dgram("b", "a", seq + 1, Body::Gossip, vec![dead_c]);
        a.handle_datagram(3 * MS, &fresh);
        assert_eq!(a.status_of("c").unwrap().state, MemberState::Dead);
        a.handle_datagram(3 * MS, &fresh);
        assert_eq!(a.counters().replayed, 1);
    }

    #[test]
    fn pings_from_unverified_senders_are_answered_and_challenged() {
        let mut a = mk("a", &["a", "b"]);
        a.drain_outgoing();
        a.handle_datagram(MS, &dgram("b", "a", 1, Body::Ping { nonce: 77 }, vec![]));
        let out = decode_all(&a.drain_outgoing());
        assert!(out.iter().any(|m| m.body
            == Body::Ack {
                nonce: 77,
                incarnation: 0
            }));
        // Already greeting b, so no second ping.
        assert!(!out.iter().any(|m| matches!(m.body, Body::Ping { .. })));
    }

    #[test]
    fn wrong_recipient_unknown_sender_and_wrong_key_are_counted_and_ignored() {
        let mut a = mk("a", &["a", "b"]);
        a.handle_datagram(MS, &dgram("b", "c", 1, Body::Gossip, vec![]));
        a.handle_datagram(MS, &dgram("zed", "a", 1, Body::Gossip, vec![]));
        let forged = Message::decode(&dgram("b", "a", 1, Body::Gossip, vec![]), &key())
            .unwrap()
            .encode(&Key::from_file_contents(b"not-the-cluster-key!").unwrap())
            .unwrap();
        a.handle_datagram(MS, &forged);
        a.handle_datagram(MS, b"garbage");
        let c = a.counters();
        assert_eq!(
            (
                c.misaddressed,
                c.unknown_sender,
                c.auth_failures,
                c.malformed
            ),
            (1, 1, 1, 1)
        );
        assert_eq!(c.datagrams_received, 4);
    }

    #[test]
    fn a_suspected_member_refutes_with_a_higher_incarnation() {
        let mut a = mk("a", &["a", "b", "c"]);
        let mut seq = 0;
        answer_pings(&mut a, "b", &mut seq, MS);
        let mut m = Message::decode(
            &dgram("b", "a", 50, Body::Ping { nonce: 3 }, vec![]),
            &key(),
        )
        .unwrap();
        m.your_status = Status::new(MemberState::Suspect, 0);
        a.handle_datagram(2 * MS, &m.encode(&key()).unwrap());
        assert_eq!(a.incarnation(), 1);
        assert_eq!(a.counters().refutations, 1);
        let out = decode_all(&a.drain_outgoing());
        let alive_a = Update {
            member: "a".into(),
            status: Status::new(MemberState::Alive, 1),
        };
        // The refutation goes to everyone, and the ack carries the new incarnation.
        for peer in ["b", "c"] {
            assert!(
                out.iter()
                    .any(|m| m.recipient == peer && m.updates.contains(&alive_a))
            );
        }
        assert!(out.iter().any(|m| m.body
            == Body::Ack {
                nonce: 3,
                incarnation: 1
            }));
        // An older suspicion does not raise it again.
        m.seq = 51;
        a.handle_datagram(3 * MS, &m.encode(&key()).unwrap());
        assert_eq!(a.incarnation(), 1);
    }

    #[test]
    fn acks_must_come_from_the_probed_member_or_its_relays() {
        let mut a = mk("a", &["a", "b", "c"]);
        let pings = decode_all(&a.drain_outgoing());
        let to_b = pings.iter().find(|m| m.recipient == "b").unwrap();
        let Body::Ping { nonce } = to_b.body else {
            panic!("greeting is a ping")
        };
        // c answers b's nonce: not accepted.
        let ack = dgram(
            "c",
            "a",
            1,
            Body::Ack {
                nonce,
                incarnation: 0,
            },
            vec![],
        );
        a.handle_datagram(MS, &ack);
        assert_eq!(a.status_of("b"), Some(Status::UNKNOWN));
        assert_eq!(a.counters().unexpected_acks, 1);
    }

    #[test]
    fn leave_is_announced_twice_to_everyone_then_silence() {
        let mut a = mk("a", &["a", "b", "c"]);
        a.drain_outgoing();
        a.leave();
        let out = decode_all(&a.drain_outgoing());
        assert_eq!(out.len(), 4);
        assert!(out.iter().all(|m| m.updates[0]
            == Update {
                member: "a".into(),
                status: Status::new(MemberState::Left, 0)
            }));
        a.handle_timeout(Duration::from_secs(5));
        a.handle_datagram(
            Duration::from_secs(5),
            &dgram("b", "a", 1, Body::Ping { nonce: 1 }, vec![]),
        );
        assert!(a.drain_outgoing().is_empty());
        assert_eq!(a.next_deadline(), None);
    }

    #[test]
    fn removed_peers_leave_the_alive_set() {
        let mut a = mk("a", &["a", "b", "c"]);
        let mut seq = 0;
        answer_pings(&mut a, "b", &mut seq, MS);
        assert!(a.alive_members().contains("b"));
        a.set_peers(2 * MS, peers(&["a", "c"]));
        assert!(!a.alive_members().contains("b"));
        assert!(
            a.drain_events()
                .contains(&Event::Removed { member: "b".into() })
        );
    }

    #[test]
    fn invalid_identity_and_config_are_refused() {
        let id = |name: &str| Identity {
            name: name.into(),
            epoch: 1,
            seed: 1,
        };
        assert!(matches!(
            Protocol::new(Config::default(), key(), id(""), Duration::ZERO),
            Err(Error::InvalidName(_))
        ));
        let bad = Config {
            monitors: 0,
            ..Config::default()
        };
        assert!(matches!(
            Protocol::new(bad, key(), id("a"), Duration::ZERO),
            Err(Error::Config(_))
        ));
    }

    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        fn arb_name() -> impl Strategy<Value = String> {
            prop_oneof![
                Just("a".to_string()),
                Just("b".to_string()),
                Just("c".to_string()),
                "[a-z]{1,4}"
            ]
        }

        fn arb_status() -> impl Strategy<Value = Status> {
            (0u8..5, 0u64..4).prop_map(|(c, i)| {
                Status::new(MemberState::from_code(c).unwrap_or(MemberState::Alive), i)
            })
        }

        /// A correctly signed datagram with arbitrary content: what a buggy or compromised key
        /// holder could send.
        fn arb_signed() -> impl Strategy<Value = Vec<u8>> {
            let body = prop_oneof![
                (0u64..4).prop_map(|nonce| Body::Ping { nonce }),
                (0u64..4, 0u64..4)
                    .prop_map(|(nonce, incarnation)| Body::Ack { nonce, incarnation }),
                (0u64..4, arb_name()).prop_map(|(nonce, target)| Body::PingReq { nonce, target }),
                Just(Body::Gossip),
            ];
            let update = (arb_name(), arb_status())
                .prop_filter("updates carry known states", |(_, s)| {
                    s.state != MemberState::Unknown
                })
                .prop_map(|(member, status)| Update { member, status });
            (
                arb_name(),
                arb_name(),
                0u64..3,
                0u64..50,
                arb_status(),
                body,
                proptest::collection::vec(update, 0..4),
            )
                .prop_map(
                    |(sender, recipient, epoch, seq, your_status, body, updates)| {
                        Message {
                            sender,
                            recipient,
                            epoch,
                            seq,
                            your_status,
                            body,
                            updates,
                        }
                        .encode(&key())
                        .unwrap_or_default()
                    },
                )
        }

        proptest! {
            /// Arbitrary traffic, signed or not, interleaved with time passing: no panic, this
            /// member always counts itself alive, its incarnation never goes down, and every
            /// datagram it sends decodes.
            #[test]
            fn arbitrary_traffic_keeps_invariants(
                inputs in proptest::collection::vec(
                    prop_oneof![
                        arb_signed().prop_map(Some),
                        proptest::collection::vec(any::<u8>(), 0..200).prop_map(Some),
                        Just(None),
                    ],
                    1..60,
                ),
                steps in proptest::collection::vec(1u64..150, 60),
            ) {
                let mut a = mk("a", &["a", "b", "c"]);
                let mut now = Duration::ZERO;
                let mut incarnation = 0;
                for (input, step) in inputs.into_iter().zip(steps) {
                    match input {
                        Some(bytes) => a.handle_datagram(now, &bytes),
                        None => {
                            now += Duration::from_millis(step);
                            a.handle_timeout(now);
                            // Nothing is left overdue after the timers ran.
                            prop_assert!(a.next_deadline().is_none_or(|d| d > now));
                        }
                    }
                    prop_assert!(a.alive_members().contains("a"));
                    prop_assert!(a.incarnation() >= incarnation);
                    incarnation = a.incarnation();
                    for out in a.drain_outgoing() {
                        prop_assert!(Message::decode(&out.bytes, &key()).is_ok());
                    }
                }
                prop_assert_eq!(a.counters().encode_failures, 0);
            }
        }
    }
}
