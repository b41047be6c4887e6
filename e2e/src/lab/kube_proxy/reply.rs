//! What the stand-in answers, as a pod behind kube-proxy would. Pure.
//!
//! The reply names the node that served and the pod chosen, and echoes the client address
//! seen (so tests can prove the source IP survives the path). A few paths and UDP commands
//! follow agnhost `netexec`, the pod image the same scenarios use on a real cluster:
//! `/hostname` (the pod name), `/clientip` (`ip:port`), `/echo?msg=...`; over UDP the
//! datagrams `hostname`, `clientip` and `echo TEXT`.

use std::net::SocketAddr;

use super::table::{Backend, HealthEntry};

/// Who is answering whom.
#[derive(Debug, Clone)]
pub struct Context<'a> {
    pub node: &'a str,
    pub service: &'a str,
    pub port_name: &'a str,
    pub backend: &'a Backend,
    pub client: SocketAddr,
}

/// The pod's own name, without its namespace.
fn pod_name(backend: &Backend) -> &str {
    backend.pod.rsplit('/').next().unwrap_or(&backend.pod)
}

/// The one-line summary every other request gets.
pub fn summary(ctx: &Context<'_>) -> String {
    format!(
        "node={} pod={} service={} port={} client={}\n",
        ctx.node,
        ctx.backend.pod,
        ctx.service,
        if ctx.port_name.is_empty() {
            "-"
        } else {
            ctx.port_name
        },
        ctx.client
    )
}

fn query_param<'a>(query: &'a str, key: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

/// Status and body for an HTTP request path (with query).
pub fn http(path_and_query: &str, ctx: &Context<'_>) -> (u16, String) {
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    match path {
        "/hostname" => (200, pod_name(ctx.backend).to_string()),
        "/clientip" => (200, ctx.client.to_string()),
        "/echo" => (
            200,
            query_param(query, "msg").unwrap_or_default().to_string(),
        ),
        "/healthz" => (200, "ok".into()),
        _ => (200, summary(ctx)),
    }
}

/// The datagram sent back for a UDP payload.
pub fn udp(payload: &[u8], ctx: &Context<'_>) -> Vec<u8> {
    let text = String::from_utf8_lossy(payload);
    let command = text.trim_end_matches(['\r', '\n']);
    match command.split_once(' ') {
        _ if command == "hostname" => pod_name(ctx.backend).as_bytes().to_vec(),
        _ if command == "clientip" => ctx.client.to_string().into_bytes(),
        Some(("echo", rest)) => rest.as_bytes().to_vec(),
        _ => summary(ctx).into_bytes(),
    }
}

/// A `healthCheckNodePort` answer, shaped like kube-proxy's.
pub fn health_check(entry: &HealthEntry) -> (u16, String) {
    let body = serde_json::json!({
        "service": { "namespace": entry.namespace, "name": entry.name },
        "localEndpoints": entry.local_endpoints,
        "serviceProxyHealthy": true,
    });
    let code = if entry.local_endpoints > 0 { 200 } else { 503 };
    (code, body.to_string())
}

/// The `:10256/healthz` answer.
pub fn proxy_healthz(now_rfc3339: &str) -> (u16, String) {
    let body = serde_json::json!({
        "lastUpdated": now_rfc3339,
        "currentTime": now_rfc3339,
        "nodeEligible": true,
    });
    (200, body.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend() -> Backend {
        Backend {
            pod: "default/web-abc".into(),
            node: Some("node2".into()),
            address: "203.0.113.130".parse().unwrap(),
            port: Some(8080),
        }
    }

    fn with_ctx<T>(f: impl FnOnce(&Context<'_>) -> T) -> T {
        let b = backend();
        f(&Context {
            node: "node1",
            service: "default/web",
            port_name: "http",
            backend: &b,
            client: "192.0.2.100:40000".parse().unwrap(),
        })
    }

    #[test]
    fn summary_names_node_pod_and_client() {
        let body = with_ctx(|c| http("/", c).1);
        assert_eq!(
            body,
            "node=node1 pod=default/web-abc service=default/web port=http client=192.0.2.100:40000\n"
        );
    }

    #[test]
    fn agnhost_style_paths() {
        with_ctx(|c| {
            assert_eq!(http("/hostname", c), (200, "web-abc".into()));
            assert_eq!(http("/clientip", c), (200, "192.0.2.100:40000".into()));
            assert_eq!(http("/echo?msg=hi&x=1", c), (200, "hi".into()));
            assert_eq!(http("/echo", c), (200, "".into()));
            assert!(http("/anything?else", c).1.starts_with("node=node1 "));
        });
    }

    #[test]
    fn udp_commands() {
        with_ctx(|c| {
            assert_eq!(udp(b"hostname", c), b"web-abc");
            assert_eq!(udp(b"hostname\n", c), b"web-abc");
            assert_eq!(udp(b"clientip", c), b"192.0.2.100:40000");
            assert_eq!(udp(b"echo hello there", c), b"hello there");
            assert!(udp(b"\xff\xfe garbage", c).starts_with(b"node=node1 "));
            assert!(udp(b"", c).starts_with(b"node=node1 "));
        });
    }

    #[test]
    fn health_checks_answer_503_without_local_endpoints() {
        let mut e = HealthEntry {
            namespace: "default".into(),
            name: "web".into(),
            local_endpoints: 2,
        };
        let (code, body) = health_check(&e);
        assert_eq!(code, 200);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["localEndpoints"], 2);
        assert_eq!(v["service"]["name"], "web");
        e.local_endpoints = 0;
        assert_eq!(health_check(&e).0, 503);
        assert_eq!(proxy_healthz("2026-01-01T00:00:00Z").0, 200);
    }
}
