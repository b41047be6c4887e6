//! `ironlb-controller`: flags, logging, the admin endpoint, leader election and shutdown.
//!
//! Every replica serves `/metrics`, `/healthz` and `/readyz` (ready once the API server has
//! answered). Only the holder of the Lease runs the leader's work. When the Lease is lost the
//! leader's work is cancelled (its writes stop) and the replica goes back to standby in this
//! same process: the next term starts from a fresh brain, as a restarted process would, and
//! the lab (which has no process supervisor) keeps its two replicas. SIGTERM or SIGINT stops
//! the leader's work, then releases the Lease so a standby takes over at once, and exits 0.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use ironlb_controller::admin::{self, Readiness};
use ironlb_controller::cli::{self, Args};
use ironlb_controller::leader::{LeaderElector, LeadershipEnd};
use ironlb_controller::metrics::Metrics;
use ironlb_controller::runtime::{self, LeaderContext};
use ironlb_controller::server_caps::ServerCaps;
use ironlb_controller::telemetry;
use ironlb_crds::runtime::process::{one_line, stop_on_signal};
use prometheus::Registry;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long to wait for the leader's work to stop before releasing the Lease anyway.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(err) = telemetry::init(&args.log_level, args.log_format) {
        eprintln!("ironlb-controller: {err:#}");
        return ExitCode::from(2);
    }
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{}", one_line(&err));
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let settings = args.settings(&cli::hostname())?;
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        namespace = %settings.namespace,
        lb_class = %settings.brain.class.class(),
        ignore_unclassed = !settings.brain.class.accepts_class(None),
        ip_mode = %settings.brain.default_ip_mode,
        identity = %settings.lease.identity,
        lease = ?settings.lease.lease_duration,
        write_concurrency = settings.writer.concurrency,
        "starting ironlb-controller"
    );
    let registry = Registry::new();
    let metrics = Metrics::register(&registry).context("cannot register the metrics")?;
    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    tracker.spawn(stop_on_signal(shutdown.clone()));

    let readiness = Readiness::default();
    admin::start(
        settings.admin_addr,
        &registry,
        &readiness,
        shutdown.clone(),
        &tracker,
    )
    .await?;

    let client = admin::kube_client().await?;
    let Some(caps) = server_caps(&client, &shutdown).await else {
        return stop(tracker, shutdown).await;
    };
    tracing::info!(
        identity = %settings.lease.identity,
        namespace = %settings.namespace,
        ip_mode = caps.ip_mode,
        "connected to the API server"
    );
    if !caps.ip_mode {
        tracing::info!(
            "the API server is older than Kubernetes 1.29 and has no status.loadBalancer.ingress[].ipMode; writing Service status without it"
        );
    }
    readiness.set(true);

    let ctx = LeaderContext {
        client: client.clone(),
        namespace: settings.namespace.clone(),
        brain: ironlb_controller::brain::BrainConfig {
            ip_mode_supported: caps.ip_mode,
            ..settings.brain.clone()
        },
        writer: settings.writer.clone(),
        metrics: metrics.clone(),
    };
    let elector = LeaderElector::new(client, settings.lease.clone());
    loop {
        metrics.is_leader.set(0.0);
        tracing::info!(lease = %settings.lease.name, "standing by for the leader Lease");
        if !elector.acquire(&shutdown).await {
            break;
        }
        metrics.is_leader.set(1.0);
        tracing::info!(lease = %settings.lease.name, "acquired the leader Lease");

        let leader_cancel = shutdown.child_token();
        let mut work = tracker.spawn(runtime::lead(ctx.clone(), leader_cancel.clone()));
        let hold_cancel = CancellationToken::new();
        let hold = elector.hold(&hold_cancel);
        tokio::pin!(hold);
        let (lost, work_ended) = tokio::select! {
            end = &mut hold => (end == LeadershipEnd::Lost, false),
            () = shutdown.cancelled() => (false, false),
            _ = &mut work => {
                if !shutdown.is_cancelled() {
                    tracing::error!("the leader's work ended by itself; giving up the Lease");
                }
                (false, true)
            }
        };
        // Stop writing before anyone else may lead.
        leader_cancel.cancel();
        if !work_ended && tokio::time::timeout(STOP_TIMEOUT, &mut work).await.is_err() {
            tracing::error!("the leader's work did not stop in time");
        }
        metrics.is_leader.set(0.0);
        if lost {
            tracing::warn!("lost the leader Lease; back to standby");
            continue;
        }
        hold_cancel.cancel();
        hold.await;
        if shutdown.is_cancelled() {
            tracing::info!("released the leader Lease");
            break;
        }
    }
    stop(tracker, shutdown).await
}

/// Reads the server's version, retrying until it answers. `None` if shut down first.
async fn server_caps(client: &kube::Client, shutdown: &CancellationToken) -> Option<ServerCaps> {
    let mut delay = Duration::from_millis(500);
    loop {
        match client.apiserver_version().await {
            Ok(info) => return Some(ServerCaps::from_version(&info)),
            Err(err) => {
                tracing::warn!(error = %err, "cannot reach the API server; retrying");
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return None,
            () = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(10));
    }
}

async fn stop(tracker: TaskTracker, shutdown: CancellationToken) -> anyhow::Result<()> {
    shutdown.cancel();
    tracker.close();
    tracker.wait().await;
    tracing::info!("stopped");
    Ok(())
}
