//! `lab-node-agent`: the lab's kubelet, EndpointSlice-controller and Deployment-controller
//! stand-in. An ordinary API client: it reads `KUBECONFIG` (or in-cluster config).

use clap::Parser;
use e2e::lab::node_agent::{self, Config, nodes::parse_node_arg};
use tokio_util::sync::CancellationToken;

/// Registers lab nodes, runs the pods placed on them, and keeps EndpointSlices in sync.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// A node to play the kubelet for: NAME=IP[,IP] (one IP per family). Repeatable.
    #[arg(long = "node", required = true, value_parser = parse_node)]
    nodes: Vec<node_agent::nodes::NodeSpec>,
    /// A --node name that is a control-plane node (labelled and tainted as such). Repeatable.
    #[arg(long = "control-plane")]
    control_planes: Vec<String>,
    /// Pod addresses come from these CIDRs (at most one per family). Repeatable.
    #[arg(long = "pod-cidr", required = true)]
    pod_cidrs: Vec<String>,
    /// Log filter, as RUST_LOG.
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    log_level: String,
}

fn parse_node(s: &str) -> Result<node_agent::nodes::NodeSpec, String> {
    parse_node_arg(s).map_err(|e| e.to_string())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(args.log_level.as_str())
        .init();
    let config = Config::new(args.nodes, &args.control_planes, args.pod_cidrs)?;
    let client = kube::Client::try_default().await?;
    let cancel = CancellationToken::new();
    let on_signal = cancel.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        on_signal.cancel();
    });
    node_agent::run(client, config, cancel).await
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
