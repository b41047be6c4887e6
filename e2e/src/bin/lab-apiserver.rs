//! `lab-apiserver`: the Kubernetes API server stand-in the lab runs in its control-plane
//! namespace. See `e2e::apiserver` for what it serves.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use e2e::apiserver::{self, Config, KubeconfigOut, ServerOptions};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Parser)]
#[command(
    name = "lab-apiserver",
    about = "A Kubernetes API server stand-in for the ironlb lab"
)]
struct Args {
    /// Directory for objects, the resourceVersion and the CA (kept across restarts).
    #[arg(long)]
    data_dir: PathBuf,
    /// Address to serve HTTPS on.
    #[arg(long, default_value = "0.0.0.0:6443")]
    listen: SocketAddr,
    /// Subject alternative names (IPs or DNS names) for the serving certificate; repeatable.
    #[arg(long = "tls-san")]
    tls_san: Vec<String>,
    /// PATH=URL: write a kubeconfig for URL to PATH once listening; repeatable.
    #[arg(long = "kubeconfig-out")]
    kubeconfig_out: Vec<KubeconfigOut>,
    /// Service CIDRs, comma-separated, at most one per IP family; the first is primary.
    #[arg(long, default_value = "10.96.0.0/16")]
    service_cluster_ip_range: String,
    /// NodePort range FROM-TO.
    #[arg(long, default_value = "30000-32767")]
    service_node_port_range: String,
    /// Kubernetes version to report and to follow for version-dependent fields (1.MINOR).
    #[arg(long, default_value = "1.35")]
    emulate_version: String,
    /// Address the default/kubernetes Service's endpoints name (default: the first IP SAN).
    #[arg(long)]
    advertise_address: Option<std::net::IpAddr>,
    /// How long events are kept, in seconds.
    #[arg(long, default_value_t = 3600)]
    event_ttl: u64,
    /// Seconds between watch BOOKMARK events.
    #[arg(long, default_value_t = 15, hide = true)]
    watch_bookmark_interval: u64,
    /// Log format: text or json.
    #[arg(long, env = "LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    /// Log filter (RUST_LOG syntax).
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    log_level: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log_level).context("--log-level")?;
    if args.log_format == "json" {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
    } else {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
    }
    let minor = apiserver::parse_emulated_version(&args.emulate_version)
        .map_err(anyhow::Error::msg)
        .context("--emulate-version")?;
    let advertise = args
        .advertise_address
        .or_else(|| args.tls_san.iter().find_map(|s| s.parse().ok()));
    let config = Config {
        data_dir: args.data_dir,
        listen: args.listen,
        tls_sans: args.tls_san,
        kubeconfigs: args.kubeconfig_out,
        options: ServerOptions {
            minor_version: minor,
            service_cidrs: args.service_cluster_ip_range,
            node_port_range: args.service_node_port_range,
            bookmark_interval: Duration::from_secs(args.watch_bookmark_interval.max(1)),
            advertise_address: advertise,
            secure_port: args.listen.port(),
            event_ttl: Duration::from_secs(args.event_ttl),
            ..ServerOptions::default()
        },
    };
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return,
            };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        stop.cancel();
    });
    apiserver::serve(config, shutdown)
        .await
        .context("lab-apiserver")?;
    Ok(())
}
