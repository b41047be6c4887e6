//! `ironlb-speaker`: flags, logging, the admin endpoint, and the runtime until SIGTERM.
//!
//! The admin endpoint (`/metrics`, `/healthz`, `/readyz`) serves until the graceful shutdown
//! has finished, so the drain stays observable. `/readyz` answers 200 once the caches are
//! synced and membership has settled.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;
use ironlb_crds::runtime::admin::{self, Readiness};
use ironlb_crds::runtime::process::{one_line, stop_on_signal};
use ironlb_crds::runtime::telemetry;
use ironlb_speaker::cli::Args;
use ironlb_speaker::metrics::Metrics;
use ironlb_speaker::runtime::{self, Context};
use prometheus::Registry;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(err) = telemetry::init(&args.log_level, args.log_format) {
        eprintln!("ironlb-speaker: {err:#}");
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
    let settings = args.settings()?;
    let registry = Registry::new();
    let metrics = Metrics::register(&registry).context("cannot register the metrics")?;
    let shutdown = CancellationToken::new();
    let admin_stop = CancellationToken::new();
    let tracker = TaskTracker::new();
    tracker.spawn(stop_on_signal(shutdown.clone()));

    let readiness = Readiness::default();
    admin::start(
        settings.admin_addr,
        &registry,
        &readiness,
        admin_stop.clone(),
        &tracker,
    )
    .await?;

    let client = admin::kube_client().await?;
    tracing::info!(
        node = %settings.state.node,
        namespace = %settings.namespace,
        class = settings.state.class.class(),
        "ironlb-speaker starting"
    );
    let result = runtime::run(
        Context {
            settings,
            client,
            metrics,
            readiness,
        },
        shutdown.clone(),
    )
    .await;
    shutdown.cancel();
    admin_stop.cancel();
    tracker.close();
    tracker.wait().await;
    Ok(result?)
}
