//! The kube-proxy stand-in of one lab node: it answers on `nodeIP:nodePort` for every
//! Service port as kube-proxy in front of a pod would, and serves kube-proxy's health
//! endpoints (`:10256/healthz` and each `healthCheckNodePort`).
//!
//! [`table`] decides what to serve from Services and EndpointSlices and [`reply`] what to
//! answer (both pure); [`serve`] owns the sockets; [`run`] watches the API and keeps the
//! listeners in line with the table.
//!
//! Where it differs from kube-proxy: with no usable endpoint a TCP NodePort is not listened
//! on, so clients get a connection refused (kube-proxy rejects for `Cluster` but silently
//! drops for `Local`); UDP stays silent in both cases. SCTP, ClusterIPs and `ipMode: VIP`
//! load-balancer IPs are not served.

pub mod reply;
pub mod serve;
pub mod table;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Client;
use kube::api::Api;
use kube::runtime::reflector::{self, reflector};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProxyError {
    #[error(
        "service {service}: annotation lab.ironlb.io/kube-proxy must be \"ignore\", not {value:?}"
    )]
    BadAnnotation { service: String, value: String },
    #[error("{0}")]
    Unsupported(String),
}

#[derive(Debug, Clone)]
pub struct Config {
    pub node_name: String,
    pub node_ips: Vec<IpAddr>,
}

const DEBOUNCE: Duration = Duration::from_millis(10);
const RESYNC: Duration = Duration::from_secs(5);

/// Runs until `cancel` fires.
pub async fn run(client: Client, config: Config, cancel: CancellationToken) -> anyhow::Result<()> {
    let changed = Arc::new(Notify::new());
    let (services, svc_writer) = reflector::store::<Service>();
    let (slices, slice_writer) = reflector::store::<EndpointSlice>();
    let svc_stream = reflector(
        svc_writer,
        watcher(
            Api::<Service>::all(client.clone()),
            watcher::Config::default(),
        ),
    )
    .default_backoff();
    let slice_stream = reflector(
        slice_writer,
        watcher(
            Api::<EndpointSlice>::all(client.clone()),
            watcher::Config::default(),
        ),
    )
    .default_backoff();
    for stream in [
        svc_stream.map(|e| e.map(drop)).boxed(),
        slice_stream.map(|e| e.map(drop)).boxed(),
    ] {
        let changed = changed.clone();
        tokio::spawn(async move {
            futures::pin_mut!(stream);
            while let Some(event) = stream.next().await {
                if let Err(e) = event {
                    debug!(error = %e, "watch error; retrying");
                }
                changed.notify_one();
            }
        });
    }
    services.wait_until_ready().await?;
    slices.wait_until_ready().await?;

    let shared = Arc::new(serve::Shared::new(config.node_name.clone()));
    let mut listeners = serve::Listeners::new(shared.clone(), cancel.clone());
    let mut reported = std::collections::BTreeSet::new();
    let mut healthz_started = false;
    loop {
        let svc_state = services.state();
        let slice_state = slices.state();
        let svcs: Vec<&Service> = svc_state.iter().map(|s| s.as_ref()).collect();
        let sls: Vec<&EndpointSlice> = slice_state.iter().map(|s| s.as_ref()).collect();
        let (t, problems) = table::build(&svcs, &sls, &config.node_name, &config.node_ips);
        for p in problems {
            if reported.insert(p.to_string()) {
                warn!("{p}");
            }
        }
        shared.set_table(t);
        listeners.sync();
        if !healthz_started {
            // Healthy once the first sync is done, like kube-proxy.
            listeners.start_healthz(&config.node_ips);
            healthz_started = true;
            info!(node = %config.node_name, "kube-proxy stand-in synced");
        }
        tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            _ = changed.notified() => tokio::time::sleep(DEBOUNCE).await,
            _ = tokio::time::sleep(RESYNC) => {}
        }
    }
}
