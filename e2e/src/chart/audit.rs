//! A recording API proxy: components under test get a kubeconfig pointing here (plain HTTP on a
//! lab address) and every request is logged with the client's address before it goes on to
//! the real API server with the lab's credentials. Watches stream through.
//!
//! The log is the ground truth for "which calls does this binary make": it sees the real
//! binaries' real requests, whatever client library or code path made them, and it records
//! the full path, so API groups (core `events` vs `events.k8s.io`) are never confused.
//!
//! Each listener serves one [`Identity`] (a component and its ServiceAccount). With the
//! identity's permissions set, the proxy also enforces RBAC as the API server would: a request
//! the permissions do not allow is answered 403 Forbidden and never reaches the server, so the
//! binaries run with exactly the chart's grants.

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
use super::rbac::{Permission, authorize};
use super::request_info::{Access, classify};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type ProxyBody = UnsyncBoxBody<Bytes, BoxError>;

/// Who is behind one listener, and what it may do.
#[derive(Clone, Debug, Default)]
pub struct Identity {
    /// The component, as recorded (`controller`, `speaker`).
    pub component: String,
    /// The user the API server would see (`system:serviceaccount:NS:NAME`), for messages.
    pub user: String,
    /// `None` records only; `Some` also refuses, with 403, what these do not allow.
    pub permissions: Option<Vec<Permission>>,
}

/// One proxied request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recorded {
    /// The [`Identity::component`] of the listener it came in on.
    pub component: String,
    pub client: IpAddr,
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// The API server's answer; 502 when it could not be reached, 403 when the proxy refused
    /// it ([`Recorded::refused`]).
    pub status: u16,
    /// The proxy refused it: the identity's permissions do not allow it.
    pub refused: bool,
}

impl Recorded {
    /// What the request needed from RBAC. A server-side apply that created its object (201)
    /// needs `create` as well as `patch`: the API server authorizes that creation separately.
    pub fn accesses(&self) -> Result<Vec<Access>, Error> {
        let access = classify(&self.method, &self.path, self.query.as_deref())?;
        let mut out = vec![access.clone()];
        if self.method.eq_ignore_ascii_case("PATCH")
            && self.status == 201
            && let Access::Resource(mut r) = access
        {
            r.verb = "create".into();
            out.push(Access::Resource(r));
        }
        Ok(out)
    }
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

    /// The distinct RBAC requests among the entries `which` accepts.
    pub fn accesses(&self, which: impl Fn(&Recorded) -> bool) -> Result<BTreeSet<Access>, Error> {
        let mut out = BTreeSet::new();
        for entry in self.entries().iter().filter(|e| which(e)) {
            out.extend(entry.accesses()?);
        }
        Ok(out)
    }

    /// The requests the proxy refused.
    pub fn refused(&self) -> Vec<Recorded> {
        self.entries().into_iter().filter(|e| e.refused).collect()
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

/// Serves `identity`'s clients until `cancel` fires, recording into `log`.
pub async fn serve(
    listener: TcpListener,
    identity: Identity,
    upstream: kube::Client,
    log: AuditLog,
    cancel: CancellationToken,
) {
    let identity = Arc::new(identity);
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
        let identity = identity.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                forward(
                    req,
                    peer.ip(),
                    identity.clone(),
                    upstream.clone(),
                    log.clone(),
                )
            });
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
    identity: Arc<Identity>,
    upstream: kube::Client,
    log: AuditLog,
) -> Result<Response<ProxyBody>, Infallible> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let query = parts.uri.query().map(str::to_string);
    let record = |status: u16| Recorded {
        component: identity.component.clone(),
        client,
        method: parts.method.to_string(),
        path: path.clone(),
        query: query.clone(),
        status,
        refused: false,
    };
    if let Some(permissions) = &identity.permissions {
        let access = classify(parts.method.as_str(), &path, query.as_deref());
        let denial = match &access {
            Ok(a) if authorize(permissions, a) => None,
            Ok(a) => Some(format!("{} cannot {a}", identity.user)),
            Err(e) => Some(e.to_string()),
        };
        if let Some(message) = denial {
            log.push(Recorded {
                refused: true,
                ..record(403)
            });
            return Ok(forbidden(&message));
        }
    }
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

/// A 403 as the API server words it, so clients report it the usual way.
fn forbidden(message: &str) -> Response<ProxyBody> {
    let status = serde_json::json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": format!("forbidden: {message}"),
        "reason": "Forbidden",
        "code": 403,
    });
    let mut response = plain(StatusCode::FORBIDDEN, status.to_string());
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
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

    fn entry(component: &str, method: &str, path: &str, status: u16) -> Recorded {
        Recorded {
            component: component.into(),
            client: "192.0.2.2".parse().unwrap(),
            method: method.into(),
            path: path.into(),
            query: None,
            status,
            refused: false,
        }
    }

    #[test]
    fn accesses_are_filtered_by_component_and_deduplicated() {
        let log = AuditLog::default();
        for (component, method, path) in [
            ("controller", "GET", "/api/v1/services"),
            ("controller", "GET", "/api/v1/services"),
            ("speaker", "GET", "/api/v1/nodes"),
        ] {
            log.push(entry(component, method, path, 200));
        }
        let controller = log.accesses(|e| e.component == "controller").unwrap();
        assert_eq!(controller.len(), 1);
        assert_eq!(
            controller.iter().next().unwrap().to_string(),
            "list core/services (all namespaces)"
        );
        log.push(entry("controller", "TRACE", "/api/v1/services", 405));
        assert!(
            log.accesses(|e| e.component == "controller").is_err(),
            "an unclassifiable request is an error"
        );
        assert!(log.refused().is_empty());
    }

    #[test]
    fn an_apply_that_created_its_object_also_needs_create() {
        let path = "/apis/ironlb.io/v1beta1/namespaces/sys/servicel2statuses/web";
        let verbs = |status: u16| -> Vec<String> {
            entry("speaker", "PATCH", path, status)
                .accesses()
                .unwrap()
                .iter()
                .map(ToString::to_string)
                .collect()
        };
        assert_eq!(
            verbs(201),
            [
                "patch ironlb.io/servicel2statuses sys/web",
                "create ironlb.io/servicel2statuses sys/web"
            ]
        );
        assert_eq!(verbs(200), ["patch ironlb.io/servicel2statuses sys/web"]);
        // A POST that created is a create already; nothing is added.
        let post = entry("speaker", "POST", "/api/v1/namespaces/a/events", 201);
        assert_eq!(post.accesses().unwrap().len(), 1);
    }

    #[test]
    fn a_refusal_reads_like_the_api_servers() {
        let response = forbidden("system:serviceaccount:sys:ctl cannot delete core/services a/b");
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            response.headers().get(header::CONTENT_TYPE).unwrap(),
            "application/json"
        );
    }
}
