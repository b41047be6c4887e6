//! `lab-kube-proxy`: the kube-proxy stand-in of one lab node. Reads `KUBECONFIG`.

use std::net::IpAddr;

use clap::Parser;
use e2e::lab::kube_proxy::{self, Config};
use tokio_util::sync::CancellationToken;

/// Answers on nodeIP:nodePort for every Service port, and serves kube-proxy's health ports.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// The Node this runs on (endpoints with this nodeName are local).
    #[arg(long, env = "NODE_NAME")]
    node_name: String,
    /// The node's addresses to serve NodePorts on (one per family). Repeatable.
    #[arg(long = "node-ip", required = true)]
    node_ips: Vec<IpAddr>,
    /// Log filter, as RUST_LOG.
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    log_level: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(args.log_level.as_str())
        .init();
    let client = kube::Client::try_default().await?;
    let cancel = CancellationToken::new();
    let on_signal = cancel.clone();
    tokio::spawn(async move {
        if let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        on_signal.cancel();
    });
    let config = Config {
        node_name: args.node_name,
        node_ips: args.node_ips,
    };
    kube_proxy::run(client, config, cancel).await
}
