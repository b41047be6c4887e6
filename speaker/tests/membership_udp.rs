//! Three real membership drivers on real UDP sockets, inside a throwaway network namespace with
//! the addresses 192.0.2.1-3 on its loopback: they find each other; one is killed without a
//! leave and the others see it gone; forged datagrams from its address with the wrong key don't
//! bring it back; one leaves gracefully; the killed one restarts and rejoins.
//!
//! Needs root (network namespaces) and iproute2; without them it prints why and passes. Nothing
//! touches the root namespace, and the namespace and key file are removed even on failure.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use clap::Parser;
use ironlb_speaker::membership::wire::{Body, Message};
use ironlb_speaker::membership::{
    AliveView, Key, MemberState, Membership, MembershipArgs, Peer, Stats, Status, Update,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const PORT: u16 = 7946;
/// Generous: this checks that failures are seen at all on a loaded CI machine. Detection time
/// is measured and printed, and bounded exactly in the simulation tests.
const PATIENCE: Duration = Duration::from_secs(10);

fn skip_reason() -> Option<String> {
    if !rustix::process::geteuid().is_root() {
        return Some("not root: creating network namespaces needs CAP_SYS_ADMIN".into());
    }
    match Command::new("ip").arg("-V").output() {
        Ok(o) if o.status.success() => None,
        _ => Some("iproute2 `ip` not found".into()),
    }
}

/// The namespace and the key file; both removed on drop.
struct Lab {
    netns: String,
    dir: PathBuf,
}

impl Lab {
    fn new() -> Self {
        let tag = format!(
            "{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos() % 100_000)
        );
        let lab = Self {
            netns: format!("ilb-mbr-{tag}"),
            dir: std::env::temp_dir().join(format!("ironlb-membership-udp-{tag}")),
        };
        ip(&["netns", "add", &lab.netns]);
        ip(&["-n", &lab.netns, "link", "set", "lo", "up"]);
        for i in 1..=3 {
            ip(&[
                "-n",
                &lab.netns,
                "addr",
                "add",
                &format!("192.0.2.{i}/32"),
                "dev",
                "lo",
            ]);
        }
        std::fs::create_dir_all(&lab.dir).expect("key directory");
        std::fs::write(lab.key_file(), "integration-test-membership-key\n").expect("key file");
        lab
    }

    fn key_file(&self) -> PathBuf {
        self.dir.join("key")
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.netns])
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn ip(args: &[&str]) {
    let status = Command::new("ip").args(args).status().expect("run ip");
    assert!(status.success(), "ip {args:?} failed");
}

/// Runs `f` on a fresh thread that has entered the namespace, so every socket it opens lives
/// there.
fn in_netns<T: Send + 'static>(netns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/run/netns/{netns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).expect("open netns");
        rustix::thread::move_into_link_name_space(
            std::os::fd::AsFd::as_fd(&file),
            Some(rustix::thread::LinkNameSpaceType::Network),
        )
        .expect("setns");
        f()
    })
    .join()
    .unwrap_or_else(|e| std::panic::resume_unwind(e))
}

#[derive(Parser)]
struct Flags {
    #[command(flatten)]
    membership: MembershipArgs,
}

fn node_ip(i: u8) -> IpAddr {
    IpAddr::from([192, 0, 2, i])
}

fn name(i: u8) -> String {
    format!("node-{i}")
}

fn peers() -> Vec<Peer> {
    (1..=3)
        .map(|i| Peer {
            name: name(i),
            addr: SocketAddr::new(node_ip(i), PORT),
        })
        .collect()
}

struct Running {
    view: watch::Receiver<AliveView>,
    stats: watch::Receiver<Stats>,
    stop: CancellationToken,
    task: JoinHandle<()>,
    _peers: watch::Sender<Vec<Peer>>,
}

async fn start(i: u8, flags: &MembershipArgs) -> Running {
    let settings = flags.settings(&name(i), node_ip(i)).expect("settings");
    let membership = Membership::bind(settings).await.expect("bind");
    let view = membership.subscribe();
    let stats = membership.stats();
    let (peers_tx, peers_rx) = watch::channel(peers());
    let stop = CancellationToken::new();
    let token = stop.clone();
    let task = tokio::spawn(async move {
        membership
            .run(peers_rx, token)
            .await
            .expect("membership run");
    });
    Running {
        view,
        stats,
        stop,
        task,
        _peers: peers_tx,
    }
}

/// Waits until `node`'s view satisfies `pred`; returns how long it took.
async fn wait_for(node: &mut Running, what: &str, pred: impl Fn(&AliveView) -> bool) -> Duration {
    let started = Instant::now();
    let outcome = tokio::time::timeout(PATIENCE, node.view.wait_for(|v| pred(v)))
        .await
        .map(|r| r.map(|_| ()));
    match outcome {
        Ok(Ok(())) => started.elapsed(),
        Ok(Err(_)) => panic!("membership task ended while waiting for {what}"),
        Err(_) => panic!(
            "timed out waiting for {what}; view {:?}",
            *node.view.borrow()
        ),
    }
}

fn has(v: &AliveView, members: &[u8]) -> bool {
    v.settled && v.members == members.iter().map(|&i| name(i)).collect()
}

/// Datagrams an attacker without the key sends from the dead node's address: "I am alive" and
/// pings, signed with a guessed key.
fn forgeries(seq: u64) -> Vec<Vec<u8>> {
    let wrong = Key::from_file_contents(b"not-the-cluster-membership-key").unwrap();
    let alive = Message {
        sender: name(3),
        recipient: name(1),
        epoch: 1,
        seq,
        your_status: Status::new(MemberState::Alive, 0),
        body: Body::Gossip,
        updates: vec![Update {
            member: name(3),
            status: Status::new(MemberState::Alive, 99),
        }],
    };
    let ping = Message {
        body: Body::Ping { nonce: seq },
        updates: vec![],
        ..alive.clone()
    };
    vec![alive.encode(&wrong).unwrap(), ping.encode(&wrong).unwrap()]
}

#[test]
fn three_drivers_detect_a_kill_ignore_forgeries_see_a_leave_and_a_rejoin() {
    if let Some(why) = skip_reason() {
        eprintln!("skipping membership UDP test: {why}");
        return;
    }
    let lab = Lab::new();
    let key_file = lab.key_file();
    in_netns(&lab.netns, move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let flags = Flags::parse_from([
                "speaker",
                "--membership-key-file",
                key_file.to_str().unwrap(),
            ])
            .membership;
            let mut n1 = start(1, &flags).await;
            let mut n2 = start(2, &flags).await;
            let n3 = start(3, &flags).await;
            let t = wait_for(&mut n1, "node-1 to see all three", |v| has(v, &[1, 2, 3])).await;
            wait_for(&mut n2, "node-2 to see all three", |v| has(v, &[1, 2, 3])).await;
            println!("converged after {t:?}");

            // Abrupt failure: the task and its socket vanish without a leave.
            n3.task.abort();
            let _ = n3.task.await;
            let d1 = wait_for(&mut n1, "node-1 to drop node-3", |v| has(v, &[1, 2])).await;
            let d2 = wait_for(&mut n2, "node-2 to drop node-3", |v| has(v, &[1, 2])).await;
            println!("abrupt failure seen after {d1:?} and {d2:?} (default bound 450 ms)");

            // An attacker on node-3's address keeps claiming it is alive, with the wrong key.
            let auth_before = n1.stats.borrow().counters.auth_failures;
            let forger = tokio::net::UdpSocket::bind(SocketAddr::new(node_ip(3), PORT))
                .await
                .expect("bind forger");
            let mut sent = 0;
            for seq in 0..100 {
                for d in forgeries(1_000 + seq) {
                    forger
                        .send_to(&d, SocketAddr::new(node_ip(1), PORT))
                        .await
                        .expect("send forgery");
                    sent += 1;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
                assert!(has(&n1.view.borrow(), &[1, 2]), "forgery revived node-3");
            }
            // Let node-1 drain its socket.
            let counted = tokio::time::timeout(PATIENCE, async {
                loop {
                    let c = n1.stats.borrow().counters.auth_failures - auth_before;
                    if c >= sent {
                        return c;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            })
            .await
            .expect("every forgery counted");
            assert_eq!(counted, sent);
            drop(forger);

            // Graceful leave: announced at once, no failure detection needed.
            n2.stop.cancel();
            n2.task.await.expect("node-2 stopped cleanly");
            let l = wait_for(&mut n1, "node-1 to drop node-2", |v| has(v, &[1])).await;
            println!("graceful leave seen after {l:?}");

            // node-3 restarts and rejoins; node-2 is still gone.
            let mut n3 = start(3, &flags).await;
            let r = wait_for(&mut n1, "node-1 to see node-3 again", |v| has(v, &[1, 3])).await;
            wait_for(&mut n3, "node-3 to settle", |v| has(v, &[1, 3])).await;
            println!("restart rejoined after {r:?}");

            for n in [&n1, &n3] {
                let s = *n.stats.borrow();
                assert!(s.counters.datagrams_sent > 0 && s.counters.datagrams_received > 0);
                assert_eq!(s.counters.malformed, 0);
                assert_eq!(s.counters.encode_failures, 0);
            }
            n1.stop.cancel();
            n3.stop.cancel();
            n1.task.await.expect("node-1 stopped");
            n3.task.await.expect("node-3 stopped");
        });
    });
}
