//! The admin HTTP endpoint: `/metrics` (Prometheus text format), `/healthz` and `/readyz`.
//!
//! It serves a process-owned [`prometheus::Registry`] (never the global default) and a
//! readiness flag that the rest of the process flips. Liveness is "the runtime answers".

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context as _;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use prometheus::{Encoder, Registry, TextEncoder};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Readiness as reported on `/readyz`. Cloning shares the flag.
#[derive(Clone, Debug, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Relaxed);
    }

    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Answers one admin request. Kept free of sockets so it is tested directly.
pub fn respond(
    method: &Method,
    path: &str,
    registry: &Registry,
    readiness: &Readiness,
) -> Response<Full<Bytes>> {
    if method != Method::GET && method != Method::HEAD {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    }
    match path {
        "/metrics" => {
            let encoder = TextEncoder::new();
            let mut body = Vec::new();
            match encoder.encode(&registry.gather(), &mut body) {
                Ok(()) => Response::builder()
                    .header(header::CONTENT_TYPE, encoder.format_type())
                    .body(Full::new(Bytes::from(body)))
                    .unwrap_or_default(),
                Err(err) => plain(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &format!("cannot encode metrics: {err}\n"),
                ),
            }
        }
        "/healthz" | "/livez" => plain(StatusCode::OK, "ok\n"),
        "/readyz" if readiness.is_ready() => plain(StatusCode::OK, "ok\n"),
        "/readyz" => plain(StatusCode::SERVICE_UNAVAILABLE, "not ready\n"),
        _ => plain(StatusCode::NOT_FOUND, "not found\n"),
    }
}

fn plain(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap_or_default()
}

/// Binds `addr` before returning, so that a bad or busy address fails start-up at once
/// (naming the `--admin-addr` flag), then serves admin requests on `tracker` until `cancel`
/// fires.
pub async fn start(
    addr: SocketAddr,
    registry: &Registry,
    readiness: &Readiness,
    cancel: CancellationToken,
    tracker: &TaskTracker,
) -> anyhow::Result<()> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on --admin-addr {addr}"))?;
    tracker.spawn(serve(listener, registry.clone(), readiness.clone(), cancel));
    Ok(())
}

/// The Kubernetes client of both binaries: from KUBECONFIG (or ~/.kube/config), else the
/// in-cluster service account.
pub async fn kube_client() -> anyhow::Result<kube::Client> {
    kube::Client::try_default()
        .await
        .context("cannot configure a Kubernetes client: set KUBECONFIG or run inside a cluster")
}

/// Serves admin requests until `cancel` fires.
pub async fn serve(
    listener: TcpListener,
    registry: Registry,
    readiness: Readiness,
    cancel: CancellationToken,
) {
    let registry = Arc::new(registry);
    loop {
        let accepted = tokio::select! {
            () = cancel.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, _) = match accepted {
            Ok(conn) => conn,
            Err(err) => {
                tracing::warn!(error = %err, "admin endpoint: accept failed");
                continue;
            }
        };
        let registry = registry.clone();
        let readiness = readiness.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let response = respond(req.method(), req.uri().path(), &registry, &readiness);
                async move { Ok::<_, Infallible>(response) }
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            if let Err(err) = builder
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(error = %err, "admin connection ended with an error");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use prometheus::IntCounter;

    async fn body(resp: Response<Full<Bytes>>) -> String {
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn metrics_come_from_the_given_registry() {
        let registry = Registry::new();
        let counter = IntCounter::new("ironlb_test_total", "a test counter").unwrap();
        registry.register(Box::new(counter.clone())).unwrap();
        counter.inc_by(3);
        let resp = respond(&Method::GET, "/metrics", &registry, &Readiness::default());
        assert_eq!(resp.status(), StatusCode::OK);
        assert!(body(resp).await.contains("ironlb_test_total 3"));
    }

    #[test]
    fn readiness_follows_the_flag() {
        let registry = Registry::new();
        let ready = Readiness::default();
        let status = |r: &Readiness| respond(&Method::GET, "/readyz", &registry, r).status();
        assert_eq!(status(&ready), StatusCode::SERVICE_UNAVAILABLE);
        ready.set(true);
        assert_eq!(status(&ready), StatusCode::OK);
        assert_eq!(
            respond(&Method::GET, "/healthz", &registry, &ready).status(),
            StatusCode::OK
        );
    }

    #[test]
    fn unknown_paths_and_methods_are_refused() {
        let registry = Registry::new();
        let ready = Readiness::default();
        assert_eq!(
            respond(&Method::GET, "/nope", &registry, &ready).status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            respond(&Method::POST, "/metrics", &registry, &ready).status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
    }
}
