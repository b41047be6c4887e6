//! A recording API proxy: components under test get a kubeconfig pointing here (plain HTTP on a
//! lab address) and every request is logged with the client's address before it goes on to
//! the real API server with the lab's credentials. Watches stream through.
//!
//! The log is the ground truth for "which calls does this binary make": it sees the real
//! binaries' real requests, whatever client library or code path made them, and it records
//! the full path, so API groups (core `events` vs `events.k8s.io`) are never confused.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderName, Request, Response, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::Error;
use super::request_info::{Access, classify};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type ProxyBody = UnsyncBoxBody<Bytes, BoxError>;

/// One proxied request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recorded {
    pub client: IpAddr,
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// The API server's answer; 502 when it could not be reached.
    pub status: u16,
}

/// The shared log. Cloning shares it.
#[derive(Clone, Debug, Default)]
pub struct AuditLog(Arc<Mutex<Vec<Recorded>>>);

impl AuditLog {
    fn push(&self, entry: Recorded) {
        if let Ok(mut entries) = self.0.lock() {
            entries.push(entry);
        }
    }

    pub fn entries(&self) -> Vec<Recorded> {
        self.0.lock().map(|e| e.clone()).unwrap_or_default()
    }

    /// The distinct RBAC requests made by the clients `from` accepts.
    pub fn accesses(&self, from: impl Fn(IpAddr) -> bool) -> Result<BTreeSet<Access>, Error> {
        self.entries()
            .iter()
            .filter(|e| from(e.client))
            .map(|e| classify(&e.method, &e.path, e.query.as_deref()))
            .collect()
    }
}

/// A kubeconfig for components to reach the proxy at `url` (no credentials: the proxy adds
/// the lab's).
pub fn kubeconfig(url: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: audit\n  cluster:\n    server: {url}\nusers:\n- name: audit\n  user: {{}}\ncontexts:\n- name: audit\n  context:\n    cluster: audit\n    user: audit\n    namespace: default\ncurrent-context: audit\n"
    )
}

/// A client for the real API server, from the lab's kubeconfig.
pub async fn upstream(kubeconfig: &Path) -> Result<kube::Client, Error> {
    crate::lab::kube_setup::client_for(kubeconfig)
        .await
        .map_err(|e| Error::Kube(e.to_string()))
}

/// Serves until `cancel` fires, recording into `log`.
pub async fn serve(
    listener: TcpListener,
    upstream: kube::Client,
    log: AuditLog,
    cancel: CancellationToken,
) {
    loop {
        let (stream, peer) = tokio::select! {
            () = cancel.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(err) => {
                    tracing::warn!(error = %err, "audit proxy: accept failed");
                    continue;
                }
            },
        };
        let upstream = upstream.clone();
        let log = log.clone();
        let cancel = cancel.clone();
        tokio::spawn(async move {
            let service =
                service_fn(move |req| forward(req, peer.ip(), upstream.clone(), log.clone()));
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                () = cancel.cancelled() => {}
                result = conn => if let Err(err) = result {
                    tracing::debug!(error = %err, "audit proxy: connection ended");
                },
            }
        });
    }
}

/// Headers that belong to one hop, or that the upstream client sets itself.
const NOT_FORWARDED: [HeaderName; 5] = [
    header::HOST,
    header::AUTHORIZATION,
    header::CONNECTION,
    header::CONTENT_LENGTH,
    header::TRANSFER_ENCODING,
];

async fn forward(
    req: Request<Incoming>,
    client: IpAddr,
    upstream: kube::Client,
    log: AuditLog,
) -> Result<Response<ProxyBody>, Infallible> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let query = parts.uri.query().map(str::to_string);
    let record = |status: u16| Recorded {
        client,
        method: parts.method.to_string(),
        path: path.clone(),
        query: query.clone(),
        status,
    };
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(err) => {
            log.push(record(400));
            return Ok(plain(
                StatusCode::BAD_REQUEST,
                format!("reading the body: {err}"),
            ));
        }
    };
    let target = parts
        .uri
        .path_and_query()
        .map(|pq| pq.as_str().to_string())
        .unwrap_or_else(|| path.clone());
    let mut builder = Request::builder().method(parts.method.clone()).uri(target);
    for (name, value) in &parts.headers {
        if !NOT_FORWARDED.contains(name) {
            builder = builder.header(name, value);
        }
    }
    let request = match builder.body(kube::client::Body::from(body.to_vec())) {
        Ok(r) => r,
        Err(err) => {
            log.push(record(400));
            return Ok(plain(StatusCode::BAD_REQUEST, err.to_string()));
        }
    };
    match upstream.send(request).await {
        Ok(response) => {
            log.push(record(response.status().as_u16()));
            Ok(response.map(|b| b.map_err(|e| Box::new(e) as BoxError).boxed_unsync()))
        }
        Err(err) => {
            log.push(record(502));
            Ok(plain(StatusCode::BAD_GATEWAY, format!("upstream: {err}")))
        }
    }
}

fn plain(status: StatusCode, text: String) -> Response<ProxyBody> {
    let mut response = Response::new(
        Full::new(Bytes::from(text))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = status;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kubeconfig_points_at_the_proxy_without_credentials() {
        let text = kubeconfig("http://192.0.2.2:7000");
        let value: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        assert_eq!(
            value["clusters"][0]["cluster"]["server"].as_str(),
            Some("http://192.0.2.2:7000")
        );
        assert_eq!(value["current-context"].as_str(), Some("audit"));
        assert!(!text.contains("token") && !text.contains("client-key"));
    }

    #[test]
    fn accesses_are_filtered_by_client_and_deduplicated() {
        let log = AuditLog::default();
        let a: IpAddr = "192.0.2.2".parse().unwrap();
        let b: IpAddr = "192.0.2.11".parse().unwrap();
        for (client, method, path) in [
            (a, "GET", "/api/v1/services"),
            (a, "GET", "/api/v1/services"),
            (b, "GET", "/api/v1/nodes"),
        ] {
            log.push(Recorded {
                client,
                method: method.into(),
                path: path.into(),
                query: None,
                status: 200,
            });
        }
        let from_a = log.accesses(|ip| ip == a).unwrap();
        assert_eq!(from_a.len(), 1);
        assert_eq!(
            from_a.iter().next().unwrap().to_string(),
            "list core/services (all namespaces)"
        );
        log.push(Recorded {
            client: a,
            method: "TRACE".into(),
            path: "/api/v1/services".into(),
            query: None,
            status: 405,
        });
        assert!(
            log.accesses(|ip| ip == a).is_err(),
            "an unclassifiable request is an error"
        );
    }
}
