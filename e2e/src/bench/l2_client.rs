//! The client end of the L2 benchmark, inside the lab's `client` namespace: a UDP prober that
//! asks the VIP every few milliseconds who answers, and packet sockets that ask for the VIP
//! by ARP or NDP and time the answers.
//!
//! Sockets are opened by a short-lived thread that entered the namespace (`setns` changes only
//! the calling thread); a socket stays in the namespace it was created in, so the benchmark
//! uses them from any thread afterwards. Every loop here is bounded in count and in time, and
//! sends only to the VIP (UDP) or on the client's own segment (ARP/NDP).
//!
//! Times are user-space `Instant`s taken around the system calls, so a figure includes the
//! client's own scheduling; on a loaded machine that shows as a longer tail.

use std::fs::File;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsFd;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ironlb_speaker::responder::socket::{self, Kind, Receiver, Sender};

use super::arp_watch::Heard;
use super::neighbor_probe::Answer as NeighborAnswer;
use super::probe_gap::{Answer, responder_of};

/// Runs `open` on a thread that entered the network namespace `netns` (as `ip netns` names
/// it) and returns what it made.
pub fn open_in_netns<T: Send + 'static>(
    netns: &str,
    open: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    let path = format!("/var/run/netns/{netns}");
    std::thread::spawn(move || {
        let handle = File::open(&path)
            .map_err(|e| io::Error::new(e.kind(), format!("opening {path}: {e}")))?;
        rustix::thread::move_into_link_name_space(
            handle.as_fd(),
            Some(rustix::thread::LinkNameSpaceType::Network),
        )
        .map_err(|e| io::Error::other(format!("entering {path}: {e}")))?;
        open()
    })
    .join()
    .map_err(|_| io::Error::other("the namespace thread panicked"))?
}

/// What a UDP probing session did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProbeCounts {
    pub sent: u64,
    pub answered: u64,
    /// Send or receive errors (ICMP unreachable shows here as a refused receive).
    pub errors: u64,
}

/// A UDP socket in the client namespace, connected to the VIP's UDP port.
pub struct UdpProber {
    socket: UdpSocket,
}

/// The datagram the prober sends: not one of the stand-in's commands, so it answers with its
/// one-line summary, which names the node.
const PROBE_PAYLOAD: &[u8] = b"ironlb bench-l2 probe";

impl UdpProber {
    pub fn open(netns: &str, target: SocketAddr) -> io::Result<Self> {
        let socket = open_in_netns(netns, move || {
            let bind: SocketAddr = if target.is_ipv6() {
                "[::]:0".parse().expect("literal")
            } else {
                "0.0.0.0:0".parse().expect("literal")
            };
            let socket = UdpSocket::bind(bind)?;
            socket.connect(target)?;
            Ok(socket)
        })?;
        Ok(UdpProber { socket })
    }

    /// Sends a probe every `interval` and appends each answer (time since `start`, node named
    /// in the reply) to `answers`, until `stop` is set or `limit` has passed since the call.
    pub fn run(
        &self,
        start: Instant,
        interval: Duration,
        limit: Duration,
        answers: &Mutex<Vec<Answer>>,
        stop: &AtomicBool,
    ) -> io::Result<ProbeCounts> {
        let mut counts = ProbeCounts::default();
        let began = Instant::now();
        let mut next = began;
        let mut buf = [0u8; 512];
        while !stop.load(Ordering::Relaxed) && began.elapsed() < limit {
            match self.socket.send(PROBE_PAYLOAD) {
                Ok(_) => counts.sent += 1,
                Err(_) => counts.errors += 1,
            }
            next += interval;
            // Receive until the next send is due; answers to earlier probes count when they
            // arrive.
            loop {
                let now = Instant::now();
                if now >= next {
                    break;
                }
                self.socket.set_read_timeout(Some(next - now))?;
                match self.socket.recv(&mut buf) {
                    Ok(n) => {
                        let at = start.elapsed();
                        let text = String::from_utf8_lossy(&buf[..n]);
                        let responder = responder_of(&text).unwrap_or("?").to_string();
                        counts.answered += 1;
                        answers
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push(Answer { at, responder });
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                        ) => {}
                    Err(_) => {
                        counts.errors += 1;
                        // A refused receive returns at once: do not spin until the next send.
                        std::thread::sleep(next.saturating_duration_since(Instant::now()));
                    }
                }
            }
        }
        Ok(counts)
    }
}

/// A packet socket pair on the client's segment interface, for ARP or for NDP.
pub struct NeighborSocket {
    pub tx: Sender,
    pub rx: Receiver,
}

impl NeighborSocket {
    /// Opens a socket for `kind` frames on `interface` in `netns`. It receives incoming
    /// frames only (the speaker's kernel filter), so the client's own requests do not echo.
    pub fn open(netns: &str, interface: &str, kind: Kind) -> io::Result<Self> {
        let interface = interface.to_string();
        let (tx, rx) = open_in_netns(netns, move || {
            let iface = socket::find_interface(&interface).ok_or_else(|| {
                io::Error::new(io::ErrorKind::NotFound, format!("no interface {interface}"))
            })?;
            socket::open(&iface, kind)
        })?;
        Ok(NeighborSocket { tx, rx })
    }

    pub fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        self.tx
            .send_to(frame, None)
            .unwrap_or_else(|| Err(io::Error::other("the packet socket sent nothing")))
    }

    /// Waits up to `timeout` for a frame that `matches` accepts as a reply; announcements and
    /// other frames are skipped. The receive itself wakes at least every
    /// [`socket::READ_TIMEOUT`], so the wait may overrun `timeout` by that much.
    pub fn wait_reply(
        &mut self,
        timeout: Duration,
        matches: &impl Fn(&[u8]) -> Option<NeighborAnswer>,
    ) -> Option<(Instant, NeighborAnswer)> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let Ok(frame) = self.rx.next() else {
                continue;
            };
            let at = Instant::now();
            if let Some(answer @ NeighborAnswer::Reply(_)) = matches(frame) {
                return Some((at, answer));
            }
        }
        None
    }

    /// Reads and drops whatever arrives for `period` (stale replies after a lost request).
    pub fn drain(&mut self, period: Duration) {
        let until = Instant::now() + period;
        while Instant::now() < until {
            let _ = self.rx.next();
        }
    }
}

/// Reply latencies of sequential request/reply exchanges.
#[derive(Debug, Clone, Default)]
pub struct Exchanges {
    pub latencies: Vec<Duration>,
    pub sent: usize,
    pub lost: usize,
    pub send_errors: usize,
}

/// Sends `request` up to `count` times, one at a time (each waits for its reply or
/// `timeout`), with `pause` between exchanges, and stops early at `limit` or on `cancel`.
#[allow(clippy::too_many_arguments)]
pub fn exchange(
    socket: &mut NeighborSocket,
    request: &[u8],
    matches: &impl Fn(&[u8]) -> Option<NeighborAnswer>,
    count: usize,
    timeout: Duration,
    pause: Duration,
    limit: Duration,
    cancel: &AtomicBool,
) -> Exchanges {
    let began = Instant::now();
    let mut out = Exchanges::default();
    for _ in 0..count {
        if began.elapsed() >= limit || cancel.load(Ordering::Relaxed) {
            break;
        }
        let sent_at = Instant::now();
        if socket.send(request).is_err() {
            out.send_errors += 1;
            std::thread::sleep(pause);
            continue;
        }
        out.sent += 1;
        match socket.wait_reply(timeout, matches) {
            Some((at, _)) => out.latencies.push(at - sent_at),
            None => {
                out.lost += 1;
                socket.drain(Duration::from_millis(20));
            }
        }
        std::thread::sleep(pause);
    }
    out
}

/// What a burst of requests at a fixed rate got back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Load {
    pub sent: usize,
    pub replies: usize,
    pub send_errors: usize,
    /// How long the sending took.
    pub elapsed: Duration,
}

/// Sends `request` at `per_ms` frames every millisecond for `duration` (bounded by `max`
/// frames) while another thread counts replies, and waits `grace` for late ones.
pub fn load(
    socket: NeighborSocket,
    request: &[u8],
    matches: impl Fn(&[u8]) -> Option<NeighborAnswer> + Sync,
    per_ms: usize,
    duration: Duration,
    max: usize,
    grace: Duration,
) -> Load {
    let NeighborSocket { mut tx, mut rx } = socket;
    let done = AtomicBool::new(false);
    let mut result = Load::default();
    let began = Instant::now();
    let replies = std::thread::scope(|s| {
        let counter = s.spawn(|| {
            let mut replies = 0usize;
            let mut quiet_until: Option<Instant> = None;
            loop {
                if done.load(Ordering::Relaxed) {
                    let until = *quiet_until.get_or_insert_with(|| Instant::now() + grace);
                    if Instant::now() >= until {
                        break;
                    }
                }
                if let Ok(frame) = rx.next()
                    && matches!(matches(frame), Some(NeighborAnswer::Reply(_)))
                {
                    replies += 1;
                }
            }
            replies
        });
        let mut tick = Instant::now();
        while tick.duration_since(began) < duration && result.sent + result.send_errors < max {
            for _ in 0..per_ms {
                match tx.send_to(request, None) {
                    Some(Ok(())) => result.sent += 1,
                    _ => result.send_errors += 1,
                }
            }
            tick += Duration::from_millis(1);
            std::thread::sleep(tick.saturating_duration_since(Instant::now()));
        }
        result.elapsed = began.elapsed();
        done.store(true, Ordering::Relaxed);
        counter.join().unwrap_or(0)
    });
    result.replies = replies;
    result
}

/// Who-has requests every `interval` on `tx` and every reply and announcement heard on `rx`,
/// until `stop` or `limit`; for judging a handover with [`super::arp_watch::judge`].
#[derive(Debug, Clone, Default)]
pub struct Capture {
    pub sent: Vec<Duration>,
    pub replies: Vec<Heard>,
    pub announcements: Vec<Heard>,
}

#[allow(clippy::too_many_arguments)]
pub fn capture(
    socket: NeighborSocket,
    request: &[u8],
    matches: impl Fn(&[u8]) -> Option<NeighborAnswer> + Sync,
    start: Instant,
    interval: Duration,
    limit: Duration,
    stop: &AtomicBool,
    live: &Mutex<Vec<Heard>>,
) -> Capture {
    let NeighborSocket { mut tx, mut rx } = socket;
    let began = Instant::now();
    let finished = AtomicBool::new(false);
    std::thread::scope(|s| {
        let listener = s.spawn(|| {
            let mut replies = Vec::new();
            let mut announcements = Vec::new();
            // The receive wakes every READ_TIMEOUT at least, so this notices the end.
            while !finished.load(Ordering::Relaxed) {
                let Ok(frame) = rx.next() else {
                    continue;
                };
                let at = start.elapsed();
                match matches(frame) {
                    Some(NeighborAnswer::Reply(mac)) => {
                        let heard = Heard { at, mac };
                        replies.push(heard);
                        live.lock().unwrap_or_else(|p| p.into_inner()).push(heard);
                    }
                    Some(NeighborAnswer::Announcement(mac)) => {
                        announcements.push(Heard { at, mac })
                    }
                    None => {}
                }
            }
            (replies, announcements)
        });
        let mut sent = Vec::new();
        let mut next = Instant::now();
        while !stop.load(Ordering::Relaxed) && began.elapsed() < limit {
            let at = start.elapsed();
            if let Some(Ok(())) = tx.send_to(request, None) {
                sent.push(at);
            }
            next += interval;
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
        }
        // One more interval for the last request's replies.
        std::thread::sleep(interval);
        finished.store(true, Ordering::Relaxed);
        let (replies, announcements) = listener.join().unwrap_or_default();
        Capture {
            sent,
            replies,
            announcements,
        }
    })
}
