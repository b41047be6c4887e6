//! `lab-apiserver`: a Kubernetes API server stand-in for the lab, faithful enough that kube-rs
//! clients and kubectl cannot tell the difference for what ironlb uses.
//!
//! Layers, bottom up:
//! - [`store`] and [`persist`]: JSON objects, one resourceVersion counter, bounded event
//!   history, one file per object on disk;
//! - [`registry`], [`crd`], [`schema`]: what is served and each kind's structural schema;
//! - [`fieldmanager`], [`patch`]: managedFields, server-side apply, merge/JSON/strategic patches;
//! - [`kinds`], [`alloc`]: per-kind defaults, validation and ClusterIP/NodePort allocation;
//! - [`rest`], [`watch`], [`table`], [`discovery`]: the REST semantics and their encodings;
//! - [`http`], [`tls`], [`kubeconfig`], [`metrics`]: the wire; [`serve`] runs it all.
//!
//! What a real API server does that this one does too: legacy and aggregated discovery, a
//! minimal OpenAPI v3 (enough for kubectl's server-side field validation), JSON, YAML and
//! protobuf request bodies (JSON responses), Tables, watches with bookmarks, streaming lists,
//! 410 Gone and selector transitions, list paging, optimistic concurrency, managedFields and
//! server-side apply (conflicts, force, removal of dropped fields, kubectl's client-side to
//! server-side takeover), strategic merge patch, status and scale subresources, finalizers,
//! graceful pod deletion, pod binding, namespace termination, garbage collection by owner
//! references (background, foreground and orphan), event expiry, the `default` ServiceAccount and
//! `kube-root-ca.crt` in every namespace, CRDs with structural-schema validation, pruning and
//! defaulting, and the Service allocators.
//!
//! What it does not do: authentication and authorization (any bearer token is admin), CEL
//! validation rules, conversion webhooks, admission webhooks, protobuf responses,
//! `log`/`exec`/`portforward`, consistent snapshots across list pages (pages read the current
//! state), and no controllers beyond the ones named above (a Deployment gets no ReplicaSet or
//! Pods; the lab's node agent plays the kubelet and the EndpointSlice controller).

pub mod alloc;
pub mod base64;
pub mod crd;
pub mod discovery;
pub mod error;
pub mod fieldmanager;
#[cfg(test)]
mod fuzz_tests;
pub mod http;
pub mod jsonpath;
pub mod kinds;
pub mod kubeconfig;
pub mod metrics;
pub mod names;
pub mod openapi;
pub mod patch;
pub mod persist;
#[cfg(test)]
mod pipeline_tests;
pub mod protobuf;
pub mod registry;
pub mod request;
pub mod rest;
pub mod schema;
pub mod selector;
pub mod state;
pub mod store;
pub mod table;
pub mod time;
pub mod tls;
pub mod watch;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use self::kubeconfig::KubeconfigOut;
pub use self::state::{ApiServer, ServerOptions};

/// Everything `lab-apiserver` is started with.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub tls_sans: Vec<String>,
    pub kubeconfigs: Vec<KubeconfigOut>,
    pub options: ServerOptions,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Start(#[from] state::StartError),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error(transparent)]
    Kubeconfig(#[from] kubeconfig::KubeconfigError),
    #[error("listening on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Parses `--emulate-version` (`1.27`, `v1.35`, `1.29.3`) into the minor version.
pub fn parse_emulated_version(v: &str) -> Result<u32, String> {
    let v = v.trim().trim_start_matches('v');
    let mut parts = v.split('.');
    let (major, minor) = (parts.next(), parts.next());
    match (major, minor.and_then(|m| m.parse::<u32>().ok())) {
        (Some("1"), Some(minor)) if (20..=99).contains(&minor) => Ok(minor),
        _ => Err(format!(
            "invalid version {v:?}: expected 1.MINOR with MINOR from 20, for example 1.27"
        )),
    }
}

/// Runs the server until `shutdown` is cancelled. The kubeconfigs are written once the socket
/// is listening.
pub async fn serve(config: Config, shutdown: CancellationToken) -> Result<(), ServeError> {
    let server = ApiServer::open(&config.data_dir, config.options.clone())?;
    let mut sans = config.tls_sans.clone();
    sans.push(server.services.first_ip().to_string());
    let pki = tls::load_or_create(&config.data_dir, &sans)?;
    let _ = server.root_ca.set(pki.ca_pem.clone());
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServeError::Listen {
            addr: config.listen,
            source,
        })?;
    let acceptor = tokio_rustls::TlsAcceptor::from(pki.server_config.clone());
    for k in &config.kubeconfigs {
        kubeconfig::write(k, &pki.ca_pem)?;
    }
    tracing::info!(listen = %config.listen, rv = server.store.current_rv(), "lab-apiserver is serving");

    // The controllers a real control plane runs for the API objects themselves: namespace
    // deletion, garbage collection by owner references, and event expiry.
    let bg = server.clone();
    let bg_stop = shutdown.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        let mut last_expiry = std::time::Instant::now();
        loop {
            tokio::select! {
                _ = tick.tick() => bg.reconcile_namespaces().await,
                _ = bg.gc_wake.notified() => {}
                _ = bg_stop.cancelled() => return,
            }
            bg.collect_garbage().await;
            if last_expiry.elapsed() > Duration::from_secs(30) {
                bg.expire_events().await;
                last_expiry = std::time::Instant::now();
            }
        }
    });

    loop {
        let (tcp, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let server = server.clone();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            let tls =
                match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                    Ok(Ok(t)) => t,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => return,
                };
            let client = http::Client {
                ip: Some(peer.ip()),
            };
            let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let server = server.clone();
                let client = client.clone();
                async move {
                    let (parts, body) = req.into_parts();
                    let bytes: Bytes = match Limited::new(body, http::MAX_BODY + 1).collect().await
                    {
                        Ok(c) => c.to_bytes(),
                        Err(_) => {
                            let e = error::ApiError::TooLarge(
                                "the request body is too large or was cut off".into(),
                            );
                            let mut r = hyper::Response::new(
                                http_body_util::Full::new(Bytes::from(
                                    serde_json::to_vec(&e.to_status()).unwrap_or_default(),
                                ))
                                .boxed(),
                            );
                            *r.status_mut() = hyper::StatusCode::PAYLOAD_TOO_LARGE;
                            return Ok::<_, std::convert::Infallible>(r);
                        }
                    };
                    Ok(
                        http::handle(server, hyper::Request::from_parts(parts, bytes), client)
                            .await,
                    )
                }
            });
            let conn = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            tokio::select! {
                r = conn.serve_connection(TokioIo::new(tls), svc) => {
                    if let Err(e) = r {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                }
                _ = stop.cancelled() => {}
            }
        });
    }
    tracing::info!("lab-apiserver stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emulated_versions() {
        assert_eq!(parse_emulated_version("1.27"), Ok(27));
        assert_eq!(parse_emulated_version("v1.35.2"), Ok(35));
        for bad in ["", "1", "2.27", "1.x", "1.5", "27"] {
            assert!(parse_emulated_version(bad).is_err(), "{bad}");
        }
    }
}
