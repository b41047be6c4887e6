//! A deterministic simulated network of [`Protocol`] members, for tests and the simulation
//! benchmark: a shared virtual clock, per-datagram loss and delay, partitions, crashes, restarts,
//! graceful leaves, and an attacker's tap and injection point. Same seed, same run.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap};
use std::net::{Ipv6Addr, SocketAddr};
use std::time::Duration;

use super::Result;
use super::config::Config;
use super::key::Key;
use super::protocol::{Event, Identity, Peer, Protocol};
use super::rng::SplitMix64;

/// How the simulated network treats each datagram.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkModel {
    /// Probability that a datagram is lost.
    pub loss: f64,
    pub min_delay: Duration,
    pub max_delay: Duration,
}

impl LinkModel {
    /// A quiet LAN: no loss, 100–300 µs one way.
    pub fn lan() -> Self {
        Self {
            loss: 0.0,
            min_delay: Duration::from_micros(100),
            max_delay: Duration::from_micros(300),
        }
    }

    /// The LAN with a loss rate.
    pub fn lossy(loss: f64) -> Self {
        Self {
            loss,
            ..Self::lan()
        }
    }

    /// Largest difference between two one-way delays; it adds to the detection bound.
    pub fn jitter(&self) -> Duration {
        self.max_delay.saturating_sub(self.min_delay)
    }
}

/// A datagram seen on the wire, for replay tests.
#[derive(Debug, Clone)]
pub struct Captured {
    pub at: Duration,
    pub from: usize,
    pub to: usize,
    pub bytes: Vec<u8>,
}

/// A datagram on its way: (arrival time, send order for ties, destination, bytes).
type InFlight = Reverse<(Duration, u64, usize, Vec<u8>)>;

struct Node {
    name: String,
    addr: SocketAddr,
    protocol: Option<Protocol>,
    history: Vec<(Duration, Event)>,
}

/// The simulated cluster.
pub struct Cluster {
    config: Config,
    key: Key,
    link: LinkModel,
    rng: SplitMix64,
    now: Duration,
    nodes: Vec<Node>,
    by_addr: HashMap<SocketAddr, usize>,
    in_flight: BinaryHeap<InFlight>,
    /// Each running node's next timer, refreshed whenever the node is touched.
    deadlines: Vec<Option<Duration>>,
    order: u64,
    cut: BTreeSet<(usize, usize)>,
    capture: Option<Vec<Captured>>,
    dropped_by_network: u64,
    retired_sent: u64,
    bytes_sent: u64,
}

impl Cluster {
    /// `n` members named `node-000`…, all started at time zero and knowing each other.
    pub fn new(n: usize, config: Config, link: LinkModel, seed: u64) -> Result<Self> {
        config.validate()?;
        let key = Key::from_file_contents(b"simulated-cluster-key-0123456789")
            .unwrap_or_else(|_| unreachable!("the literal key is long enough"));
        let mut cluster = Self {
            config,
            key,
            link,
            rng: SplitMix64::new(seed),
            now: Duration::ZERO,
            nodes: Vec::new(),
            by_addr: HashMap::new(),
            in_flight: BinaryHeap::new(),
            deadlines: vec![None; n],
            order: 0,
            cut: BTreeSet::new(),
            capture: None,
            dropped_by_network: 0,
            retired_sent: 0,
            bytes_sent: 0,
        };
        for i in 0..n {
            // Documentation prefix; nothing is ever sent to it.
            let ip = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, i as u16 + 1);
            let addr = SocketAddr::new(ip.into(), 7946);
            cluster.by_addr.insert(addr, i);
            cluster.nodes.push(Node {
                name: format!("node-{i:03}"),
                addr,
                protocol: None,
                history: Vec::new(),
            });
        }
        for i in 0..n {
            cluster.start(i)?;
        }
        Ok(cluster)
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn now(&self) -> Duration {
        self.now
    }

    pub fn key(&self) -> &Key {
        &self.key
    }

    pub fn name(&self, i: usize) -> &str {
        &self.nodes[i].name
    }

    pub fn protocol(&self, i: usize) -> Option<&Protocol> {
        self.nodes[i].protocol.as_ref()
    }

    /// The alive set as node `i` sees it, or `None` if it is not running.
    pub fn view(&self, i: usize) -> Option<BTreeSet<String>> {
        self.protocol(i).map(Protocol::alive_members)
    }

    /// Every state change node `i` went through, with its time.
    pub fn history(&self, i: usize) -> &[(Duration, Event)] {
        &self.nodes[i].history
    }

    pub fn set_link(&mut self, link: LinkModel) {
        self.link = link;
    }

    /// Datagrams sent by all members so far, including members since crashed or restarted.
    pub fn datagrams_sent(&self) -> u64 {
        self.retired_sent
            + self
                .nodes
                .iter()
                .filter_map(|n| n.protocol.as_ref())
                .map(|p| p.counters().datagrams_sent)
                .sum::<u64>()
    }

    /// Bytes of every datagram sent so far (UDP payload).
    pub fn bytes_sent(&self) -> u64 {
        self.bytes_sent
    }

    pub fn dropped_by_network(&self) -> u64 {
        self.dropped_by_network
    }

    /// Starts (or restarts) node `i` with a fresh epoch, as a new process would.
    pub fn start(&mut self, i: usize) -> Result<()> {
        self.retire(i);
        let identity = Identity {
            name: self.nodes[i].name.clone(),
            epoch: self.rng.next_u64(),
            seed: self.rng.next_u64(),
        };
        let mut p = Protocol::new(self.config.clone(), self.key.clone(), identity, self.now)?;
        let peers: Vec<Peer> = self
            .nodes
            .iter()
            .map(|n| Peer {
                name: n.name.clone(),
                addr: n.addr,
            })
            .collect();
        p.set_peers(self.now, peers);
        self.nodes[i].protocol = Some(p);
        self.flush(i);
        Ok(())
    }

    /// Crashes node `i`: it stops sending and receiving at once, without a leave.
    pub fn kill(&mut self, i: usize) {
        self.retire(i);
    }

    /// Stops node `i` gracefully: it announces its leave, then stops.
    pub fn leave(&mut self, i: usize) {
        if let Some(p) = self.nodes[i].protocol.as_mut() {
            p.leave();
        }
        self.flush(i);
        self.retire(i);
    }

    fn retire(&mut self, i: usize) {
        self.deadlines[i] = None;
        if let Some(p) = self.nodes[i].protocol.take() {
            self.retired_sent += p.counters().datagrams_sent;
        }
    }

    /// Drops every datagram between the two groups, both ways.
    pub fn partition(&mut self, a: &[usize], b: &[usize]) {
        for &x in a {
            for &y in b {
                self.cut.insert((x, y));
                self.cut.insert((y, x));
            }
        }
    }

    pub fn heal(&mut self) {
        self.cut.clear();
    }

    /// Starts recording every datagram sent from now on.
    pub fn start_capture(&mut self) {
        self.capture = Some(Vec::new());
    }

    /// Stops recording and returns what was captured.
    pub fn take_capture(&mut self) -> Vec<Captured> {
        self.capture.take().unwrap_or_default()
    }

    /// Delivers attacker-supplied bytes to node `to` after the minimum delay.
    pub fn inject(&mut self, to: usize, bytes: Vec<u8>) {
        let at = self.now + self.link.min_delay;
        self.enqueue(at, to, bytes);
    }

    pub fn run_for(&mut self, d: Duration) {
        self.run_until(self.now + d);
    }

    /// Advances the virtual clock to `end`, delivering datagrams and firing timers in order.
    pub fn run_until(&mut self, end: Duration) {
        loop {
            let next_datagram = self.in_flight.peek().map(|Reverse((t, ..))| *t);
            let next_timer = self.deadlines.iter().flatten().min().copied();
            let next = match (next_datagram, next_timer) {
                (Some(a), Some(b)) => a.min(b),
                (a, b) => match a.or(b) {
                    Some(t) => t,
                    None => break,
                },
            };
            if next > end {
                break;
            }
            self.now = self.now.max(next);
            while let Some(Reverse((t, ..))) = self.in_flight.peek() {
                if *t > self.now {
                    break;
                }
                let Some(Reverse((_, _, to, bytes))) = self.in_flight.pop() else {
                    break;
                };
                if let Some(p) = self.nodes[to].protocol.as_mut() {
                    p.handle_datagram(self.now, &bytes);
                    self.flush(to);
                }
            }
            for i in 0..self.nodes.len() {
                if self.deadlines[i].is_some_and(|d| d <= self.now) {
                    if let Some(p) = self.nodes[i].protocol.as_mut() {
                        p.handle_timeout(self.now);
                    }
                    self.flush(i);
                }
            }
        }
        self.now = self.now.max(end);
    }

    fn flush(&mut self, from: usize) {
        let Some(p) = self.nodes[from].protocol.as_mut() else {
            return;
        };
        self.deadlines[from] = p.next_deadline();
        let out = p.drain_outgoing();
        let events = p.drain_events();
        let now = self.now;
        self.nodes[from]
            .history
            .extend(events.into_iter().map(|e| (now, e)));
        for o in out {
            self.bytes_sent += o.bytes.len() as u64;
            let Some(&to) = self.by_addr.get(&o.to) else {
                continue;
            };
            if let Some(cap) = self.capture.as_mut() {
                cap.push(Captured {
                    at: now,
                    from,
                    to,
                    bytes: o.bytes.clone(),
                });
            }
            if self.cut.contains(&(from, to)) || self.rng.chance(self.link.loss) {
                self.dropped_by_network += 1;
                continue;
            }
            let spread = self.link.jitter().as_nanos() as u64;
            let delay = self.link.min_delay + Duration::from_nanos(self.rng.below(spread + 1));
            self.enqueue(now + delay, to, o.bytes);
        }
    }

    fn enqueue(&mut self, at: Duration, to: usize, bytes: Vec<u8>) {
        self.order += 1;
        self.in_flight.push(Reverse((at, self.order, to, bytes)));
    }

    /// The first time at or after `since` when node `observer` stopped counting `member` as
    /// alive, if it did.
    pub fn time_declared_down(
        &self,
        observer: usize,
        member: &str,
        since: Duration,
    ) -> Option<Duration> {
        self.nodes[observer]
            .history
            .iter()
            .find(|(t, e)| {
                *t >= since
                    && matches!(e, Event::StateChanged { member: m, status }
                        if m == member && !status.state.is_live())
            })
            .map(|(t, _)| *t)
    }

    /// Every time node `observer` stopped counting some member as alive, since `since`.
    pub fn downs_seen(&self, observer: usize, since: Duration) -> Vec<(Duration, String)> {
        self.nodes[observer]
            .history
            .iter()
            .filter_map(|(t, e)| match e {
                Event::StateChanged { member, status }
                    if *t >= since && !status.state.is_live() =>
                {
                    Some((*t, member.clone()))
                }
                _ => None,
            })
            .collect()
    }
}
