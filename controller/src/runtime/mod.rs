//! The leader's work: watch Services, IPAddressPools and Namespaces, feed the brain, hand its
//! intents to the writer, and keep the metrics.
//!
//! One task owns the brain and processes events strictly in arrival order; it never waits for
//! a write. The writer runs the writes concurrently. A fresh brain and writer are built for
//! every leadership term, so a replica that lost the Lease and wins it again starts from the
//! API's state exactly like a restarted process.

mod feed;
#[cfg(test)]
mod tests;

use std::pin::Pin;

use futures::{Stream, StreamExt, TryStreamExt};
use ironlb_crds::IPAddressPool;
use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::brain::{Brain, BrainConfig, EventKind, Intent, Output};
use crate::metrics::Metrics;
use crate::writer::{Feedback, Writer, WriterConfig};

pub use feed::{Feeder, Input};

/// What the leader's work needs.
#[derive(Clone)]
pub struct LeaderContext {
    pub client: kube::Client,
    /// Where the IPAddressPools live.
    pub namespace: String,
    pub brain: BrainConfig,
    pub writer: WriterConfig,
    pub metrics: Metrics,
}

type InputStream = Pin<Box<dyn Stream<Item = Result<Input, watcher::Error>> + Send>>;

/// The three watches, merged. Each backs off on its own after an error.
fn inputs(ctx: &LeaderContext) -> impl Stream<Item = Result<Input, watcher::Error>> + Send {
    let config = watcher::Config::default();
    let services: InputStream = Box::pin(
        watcher(Api::<Service>::all(ctx.client.clone()), config.clone())
            .default_backoff()
            .map_ok(Input::Service),
    );
    let pools: InputStream = Box::pin(
        watcher(
            Api::<IPAddressPool>::namespaced(ctx.client.clone(), &ctx.namespace),
            config.clone(),
        )
        .default_backoff()
        .map_ok(Input::Pool),
    );
    let namespaces: InputStream = Box::pin(
        watcher(Api::<Namespace>::all(ctx.client.clone()), config)
            .default_backoff()
            .map_ok(Input::Namespace),
    );
    futures::stream::select_all([services, pools, namespaces])
}

/// Runs the leader's work until `cancel` fires; returns once every write has stopped.
pub async fn lead(ctx: LeaderContext, cancel: CancellationToken) {
    let (feedback_tx, mut feedback) = mpsc::unbounded_channel();
    let writer_config = WriterConfig {
        ip_mode: ctx.brain.ip_mode_supported,
        ..ctx.writer.clone()
    };
    let writer = Writer::new(
        ctx.client.clone(),
        writer_config,
        ctx.metrics.clone(),
        feedback_tx,
        cancel.child_token(),
    );
    let mut brain = Brain::new(ctx.brain.clone());
    let mut feeder = Feeder::default();
    let mut inputs = std::pin::pin!(inputs(&ctx));
    tracing::info!(namespace = %ctx.namespace, "leading: watching Services, IPAddressPools and Namespaces");
    loop {
        tokio::select! {
            biased;
            () = cancel.cancelled() => break,
            Some(note) = feedback.recv() => match note {
                Feedback::StatusAbandoned(key) => brain.status_write_abandoned(&key),
                Feedback::AnnotationAbandoned(key) => brain.annotation_write_abandoned(&key),
                Feedback::PoolStatusAbandoned(name) => brain.pool_status_write_abandoned(&name),
                Feedback::IpModeUnsupported => brain.disable_ip_mode(),
            },
            item = inputs.next() => match item {
                Some(Ok(input)) => {
                    let was_synced = brain.is_synced();
                    let out = feeder.feed(&mut brain, input);
                    if !was_synced && brain.is_synced() {
                        tracing::info!(
                            intents = out.intents.len(),
                            "initial lists complete: addresses restored, reconciling"
                        );
                    }
                    dispatch(out, &writer, &ctx.metrics);
                }
                Some(Err(err)) => {
                    ctx.metrics.watch_restarts.inc();
                    tracing::warn!(error = %err, "a watch failed; it restarts with a backoff and relists");
                }
                None => break,
            },
        }
    }
    writer.shutdown().await;
    tracing::info!("stopped leading");
}

/// Hands intents to the writer and updates the metrics.
pub fn dispatch(out: Output, writer: &Writer, metrics: &Metrics) {
    for gauge in &out.gauges {
        for family in ["ipv4", "ipv6"] {
            let labels = [gauge.pool.as_str(), family];
            match gauge.families.iter().find(|(f, _, _)| *f == family) {
                Some(&(_, total, in_use)) => {
                    // f64 loses precision above 2^53; the metric's help says so.
                    metrics
                        .addresses_total
                        .with_label_values(&labels)
                        .set(total as f64);
                    metrics
                        .addresses_in_use
                        .with_label_values(&labels)
                        .set(in_use as f64);
                }
                None => {
                    let _ = metrics.addresses_total.remove_label_values(&labels);
                    let _ = metrics.addresses_in_use.remove_label_values(&labels);
                }
            }
        }
    }
    for reason in &out.failures {
        metrics
            .allocation_failures
            .with_label_values(&[reason])
            .inc();
    }
    for problem in &out.problems {
        tracing::warn!("{problem}");
    }
    for intent in out.intents {
        if let Intent::Event(event) = &intent {
            match event.kind {
                EventKind::Warning => {
                    tracing::warn!(regarding = %event.regarding, reason = event.reason, "{}", event.note)
                }
                EventKind::Normal => {
                    tracing::info!(regarding = %event.regarding, reason = event.reason, "{}", event.note)
                }
            }
        }
        writer.submit(intent);
    }
}
