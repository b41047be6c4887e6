//! bench-alloc: ironlb's allocator against a MetalLB-style linear-cursor allocator.
//!
//! For an IPv4 /16 and an IPv6 /64 pool it allocates 10,000 services with both, in the same
//! run, checks that both hand out exactly the same addresses, and prints ns per allocation and
//! the ratio baseline/ironlb. Extra rows: the same with avoidBuggyIPs, and steady-state churn
//! (release one service, allocate another). Then it prints the free-list size of a /24 and a /64
//! after the same allocation pattern. The last line is one JSON object with the figures.
//!
//! `cargo run --release -p e2e --bin bench-alloc [-- --services N]`. No network access: the
//! pools are documentation and benchmarking ranges and nothing is sent anywhere.

use std::hint::black_box;
use std::net::IpAddr;
use std::time::Instant;

use anyhow::{Context, bail, ensure};
use e2e::bench::linear_cursor::LinearCursorAllocator;
use ironlb_controller::allocator::{Allocator, FamilyPolicy, PoolConfig, Request, ServiceKey};
use ironlb_crds::address::{AddressRange, Family, parse_address_entry};

/// Timed windows for ironlb's allocator. One window fills (then churns) `OURS_BATCH` fresh
/// allocators, so that it lasts about 100 ms: schedstat's CPU time is only brought up to date at
/// scheduler ticks and context switches, so a window must be long next to a tick.
const OURS_ROUNDS: usize = 3;
const OURS_BATCH: usize = 12;
/// Timed windows for the baseline; one fill already takes seconds.
const BASELINE_ROUNDS: usize = 2;

struct Case {
    label: &'static str,
    json_prefix: &'static str,
    entry: &'static str,
    avoid_buggy_ips: bool,
}

const CASES: [Case; 3] = [
    Case {
        label: "IPv4 /16",
        json_prefix: "v4",
        entry: "198.18.0.0/16",
        avoid_buggy_ips: false,
    },
    Case {
        label: "IPv6 /64",
        json_prefix: "v6",
        entry: "2001:db8::/64",
        avoid_buggy_ips: false,
    },
    Case {
        label: "IPv4 /16 avoidBuggyIPs",
        json_prefix: "v4_avoid_buggy",
        entry: "198.18.0.0/16",
        avoid_buggy_ips: true,
    },
];

/// One measured row.
struct Row {
    label: String,
    ours_ns: f64,
    baseline_ns: f64,
    ours_wall_ns: f64,
    baseline_wall_ns: f64,
}

impl Row {
    fn ratio(&self) -> f64 {
        self.baseline_ns / self.ours_ns
    }
}

struct Services {
    keys: Vec<ServiceKey>,
    names: Vec<String>,
}

impl Services {
    fn new(count: usize, prefix: &str) -> Self {
        let keys: Vec<ServiceKey> = (0..count)
            .map(|i| ServiceKey::new(format!("bench-{}", i % 50), format!("{prefix}-{i}")))
            .collect();
        let names = keys.iter().map(ToString::to_string).collect();
        Services { keys, names }
    }
}

fn main() -> anyhow::Result<()> {
    let services = parse_services_arg()?;
    println!(
        "bench-alloc: {services} services per pool, ironlb allocator vs MetalLB-style linear cursor"
    );
    println!(
        "best of {OURS_ROUNDS} rounds for ironlb ({OURS_BATCH} pools each) and {BASELINE_ROUNDS} for the baseline; both must hand out identical addresses"
    );
    let clock = if thread_cpu_ns().is_some() {
        "CPU time of the benchmark thread (/proc/thread-self/schedstat)"
    } else {
        "wall clock (schedstat unavailable)"
    };
    println!("times are {clock}; wall-clock figures are in the JSON line");
    let load_before = load_average();
    println!("load average at start: {load_before}\n");

    // One untimed round first, so that growing the heap is not charged to the first case.
    {
        let range = parse_address_entry(CASES[0].entry).context("bench pool")?;
        let warm = Services::new(services, "warm-up");
        black_box(run_ours(&CASES[0], range, &warm, &warm)?);
    }

    let mut fill_rows = Vec::new();
    let mut churn_rows = Vec::new();
    for case in &CASES {
        let range = parse_address_entry(case.entry).context("bench pool")?;
        let fill = Services::new(services, "svc");
        // Churn costs the baseline as much per operation as filling; a fifth of the services
        // gives a stable average and keeps the run short.
        let churn = Services::new(services.div_ceil(5), "churn");

        let (ours_fill, ours_churn) =
            best_of(OURS_ROUNDS, || run_ours(case, range, &fill, &churn))?;
        let (base_fill, base_churn) =
            best_of(BASELINE_ROUNDS, || run_baseline(case, range, &fill, &churn))?;
        ensure!(
            ours_fill.ips == base_fill.ips && ours_churn.ips == base_churn.ips,
            "{}: ironlb and the baseline handed out different addresses",
            case.label
        );
        fill_rows.push(Row {
            label: case.label.to_string(),
            ours_ns: ours_fill.ns_per_op,
            baseline_ns: base_fill.ns_per_op,
            ours_wall_ns: ours_fill.wall_ns_per_op,
            baseline_wall_ns: base_fill.wall_ns_per_op,
        });
        churn_rows.push(Row {
            label: case.label.to_string(),
            ours_ns: ours_churn.ns_per_op,
            baseline_ns: base_churn.ns_per_op,
            ours_wall_ns: ours_churn.wall_ns_per_op,
            baseline_wall_ns: base_churn.wall_ns_per_op,
        });
    }

    print_table(
        &format!("allocate {services} services into an empty pool (ns per allocation)"),
        &fill_rows,
    );
    print_table(
        &format!(
            "churn: {} x (release a random service, allocate a new one) in a pool holding {services} (ns per release+allocate)",
            services.div_ceil(5)
        ),
        &churn_rows,
    );
    let memory = measure_free_lists()?;
    let load_after = load_average();
    println!(
        "load average at end: {load_after} (other load inflates wall-clock figures, and CPU time a little through cache misses)\n"
    );
    print_memory(&memory);

    let mut json = serde_json::Map::new();
    json.insert("services".into(), services.into());
    json.insert("load_average_start".into(), load_before.into());
    json.insert("load_average_end".into(), load_after.into());
    for (case, row) in CASES.iter().zip(&fill_rows) {
        let p = case.json_prefix;
        json.insert(format!("{p}_ns_per_alloc"), round1(row.ours_ns).into());
        json.insert(
            format!("{p}_baseline_ns_per_alloc"),
            round1(row.baseline_ns).into(),
        );
        json.insert(format!("{p}_ratio"), round1(row.ratio()).into());
        json.insert(
            format!("{p}_wall_ns_per_alloc"),
            round1(row.ours_wall_ns).into(),
        );
        json.insert(
            format!("{p}_baseline_wall_ns_per_alloc"),
            round1(row.baseline_wall_ns).into(),
        );
    }
    for (case, row) in CASES.iter().zip(&churn_rows) {
        let p = case.json_prefix;
        json.insert(format!("{p}_churn_ns_per_op"), round1(row.ours_ns).into());
        json.insert(format!("{p}_churn_ratio"), round1(row.ratio()).into());
    }
    for m in &memory {
        json.insert(format!("{}_free_runs", m.json_key), m.runs.into());
    }
    println!("{}", serde_json::Value::Object(json));
    Ok(())
}

fn parse_services_arg() -> anyhow::Result<usize> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [] => Ok(10_000),
        [flag, n] if flag == "--services" => {
            let n: usize = n.parse().context("--services takes a number")?;
            // The baseline is quadratic; keep the run bounded in time.
            ensure!(
                (1..=50_000).contains(&n),
                "--services must be from 1 to 50000"
            );
            Ok(n)
        }
        _ => bail!("usage: bench-alloc [--services N]"),
    }
}

struct Measured {
    /// CPU time of the benchmark thread per operation.
    ns_per_op: f64,
    wall_ns_per_op: f64,
    ips: Vec<IpAddr>,
}

impl Measured {
    fn new((ns_per_op, wall_ns_per_op): (f64, f64), ips: Vec<IpAddr>) -> Self {
        Measured {
            ns_per_op,
            wall_ns_per_op,
            ips,
        }
    }
}

/// Runs `round` `n` times and keeps, per phase, the fastest round: the one least disturbed by
/// anything else running on the machine. The same rule applies to both allocators.
fn best_of(
    n: usize,
    mut round: impl FnMut() -> anyhow::Result<(Measured, Measured)>,
) -> anyhow::Result<(Measured, Measured)> {
    let mut best: Option<(Measured, Measured)> = None;
    for _ in 0..n {
        let (fill, churn) = round()?;
        best = Some(match best {
            None => (fill, churn),
            Some((best_fill, best_churn)) => (
                if fill.ns_per_op < best_fill.ns_per_op {
                    fill
                } else {
                    best_fill
                },
                if churn.ns_per_op < best_churn.ns_per_op {
                    churn
                } else {
                    best_churn
                },
            ),
        });
    }
    best.context("no rounds")
}

/// Reads this thread's CPU time in ns from `/proc/thread-self/schedstat` (its first field).
fn thread_cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Times a phase by the thread's CPU time, which waiting for a busy CPU does not inflate, and by
/// the wall clock. Falls back to the wall clock where schedstat is unavailable.
struct Stopwatch {
    wall: Instant,
    cpu: Option<u64>,
}

impl Stopwatch {
    fn start() -> Self {
        Stopwatch {
            cpu: thread_cpu_ns(),
            wall: Instant::now(),
        }
    }

    /// (cpu ns per op, wall ns per op)
    fn per_op(&self, ops: usize) -> (f64, f64) {
        let wall = self.wall.elapsed().as_nanos() as f64 / ops as f64;
        let cpu = match (self.cpu, thread_cpu_ns()) {
            (Some(a), Some(b)) if b >= a => (b - a) as f64 / ops as f64,
            _ => wall,
        };
        (cpu, wall)
    }
}

/// A deterministic shuffle of `0..n` (xorshift), so both allocators see the same releases.
fn release_order(n: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    for i in (1..n).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let j = (state % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    order
}

/// Fills an empty pool with `fill`, then churns: releases `fill` in a shuffled order, each
/// release followed by allocating one service of `churn`. Both phases are timed, over
/// `OURS_BATCH` allocators at once; the addresses of the first are returned for comparison.
fn run_ours(
    case: &Case,
    range: AddressRange,
    fill: &Services,
    churn: &Services,
) -> anyhow::Result<(Measured, Measured)> {
    let mut allocs: Vec<Allocator> = (0..OURS_BATCH)
        .map(|_| {
            let mut alloc = Allocator::new();
            alloc.set_pool(PoolConfig {
                avoid_buggy_ips: case.avoid_buggy_ips,
                ..PoolConfig::new("bench", vec![range])
            });
            alloc
        })
        .collect();
    let request = Request::new(FamilyPolicy::SingleStack(range.family()));

    let mut fill_ips = with_capacities(OURS_BATCH, fill.keys.len());
    let start = Stopwatch::start();
    for (alloc, ips) in allocs.iter_mut().zip(&mut fill_ips) {
        for key in &fill.keys {
            ips.push(alloc.assign(key, &request)?.ips[0]);
        }
    }
    let fill_ns = start.per_op(OURS_BATCH * fill.keys.len());

    let order = release_order(fill.keys.len());
    let mut churn_ips = with_capacities(OURS_BATCH, churn.keys.len());
    let start = Stopwatch::start();
    for (alloc, ips) in allocs.iter_mut().zip(&mut churn_ips) {
        for (victim, key) in order.iter().zip(&churn.keys) {
            alloc.release(&fill.keys[*victim]);
            ips.push(alloc.assign(key, &request)?.ips[0]);
        }
    }
    let churn_ns = start.per_op(OURS_BATCH * churn.keys.len());
    black_box(&allocs);
    ensure!(
        fill_ips.windows(2).all(|w| w[0] == w[1]) && churn_ips.windows(2).all(|w| w[0] == w[1]),
        "ironlb is not deterministic"
    );
    Ok((
        Measured::new(fill_ns, fill_ips.swap_remove(0)),
        Measured::new(churn_ns, churn_ips.swap_remove(0)),
    ))
}

/// `count` empty vectors that each hold `capacity` addresses without reallocating, so that no
/// timed loop pays for growth.
fn with_capacities(count: usize, capacity: usize) -> Vec<Vec<IpAddr>> {
    (0..count).map(|_| Vec::with_capacity(capacity)).collect()
}

/// [`run_ours`] for the baseline.
fn run_baseline(
    case: &Case,
    range: AddressRange,
    fill: &Services,
    churn: &Services,
) -> anyhow::Result<(Measured, Measured)> {
    let mut alloc = LinearCursorAllocator::new(range, case.avoid_buggy_ips);

    let mut fill_ips = Vec::with_capacity(fill.names.len());
    let start = Stopwatch::start();
    for name in &fill.names {
        fill_ips.push(alloc.allocate(name).context("baseline pool exhausted")?);
    }
    let fill_ns = start.per_op(fill.names.len());

    let order = release_order(fill.names.len());
    let mut churn_ips = Vec::with_capacity(churn.names.len());
    let start = Stopwatch::start();
    for (victim, name) in order.iter().zip(&churn.names) {
        alloc.release(&fill.names[*victim]);
        churn_ips.push(alloc.allocate(name).context("baseline pool exhausted")?);
    }
    let churn_ns = start.per_op(churn.names.len());
    black_box(&alloc);
    Ok((
        Measured::new(fill_ns, fill_ips),
        Measured::new(churn_ns, churn_ips),
    ))
}

/// The 1-minute load average, to judge how disturbed the wall-clock figures are.
fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

struct FreeList {
    label: &'static str,
    state: &'static str,
    json_key: String,
    runs: usize,
}

/// Free-list sizes of a /24 and a /64 after identical allocation patterns. Each run is one
/// `BTreeMap<u128, u128>` entry (32 bytes of payload, plus the map's node overhead); nothing
/// else in a pool grows with the pool's size.
fn measure_free_lists() -> anyhow::Result<Vec<FreeList>> {
    let mut out = Vec::new();
    let patterns: [(&str, &str, usize, usize); 2] = [
        ("after 200 allocations", "fill", 200, 0),
        ("200 allocated, every 3rd released", "holes", 200, 3),
    ];
    for (state, key_suffix, count, release_every) in patterns {
        for (label, json_pool, entry, family) in [
            ("IPv4 /24", "v4_24", "198.51.100.0/24", Family::V4),
            ("IPv6 /64", "v6_64", "2001:db8::/64", Family::V6),
        ] {
            let range = parse_address_entry(entry).context("pool")?;
            let mut alloc = Allocator::new();
            alloc.set_pool(PoolConfig::new("p", vec![range]));
            let request = Request::new(FamilyPolicy::SingleStack(family));
            let keys: Vec<ServiceKey> = (0..count)
                .map(|i| ServiceKey::new("mem", format!("s{i}")))
                .collect();
            for key in &keys {
                alloc.assign(key, &request)?;
            }
            if release_every > 0 {
                for key in keys.iter().step_by(release_every) {
                    alloc.release(key);
                }
            }
            let runs = alloc.free_runs("p").context("pool exists")?;
            out.push(FreeList {
                label,
                state,
                json_key: format!("{json_pool}_{key_suffix}"),
                runs,
            });
        }
    }
    Ok(out)
}

fn print_table(title: &str, rows: &[Row]) {
    println!("{title}");
    println!(
        "  {:<24} {:>14} {:>18} {:>10}",
        "pool", "ironlb ns", "linear cursor ns", "ratio"
    );
    for row in rows {
        println!(
            "  {:<24} {:>14.1} {:>18.1} {:>9.1}x",
            row.label,
            row.ours_ns,
            row.baseline_ns,
            row.ratio()
        );
    }
    println!();
}

fn print_memory(lists: &[FreeList]) {
    println!(
        "memory: free-list runs per pool (32 B of payload each; does not grow with pool size)"
    );
    println!(
        "  {:<10} {:<36} {:>6} {:>9}",
        "pool", "state", "runs", "payload"
    );
    for m in lists {
        println!(
            "  {:<10} {:<36} {:>6} {:>7} B",
            m.label,
            m.state,
            m.runs,
            m.runs * 32
        );
    }
    println!();
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}
