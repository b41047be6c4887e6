//! The kube-proxy stand-in's sockets: a TCP (HTTP/1.1) or UDP listener per NodePort, HTTP
//! listeners for health. Listeners look the current [`ProxyTable`] up on every request, so a
//! change of endpoints needs no rebind.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, UdpSocket};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::reply::{self, Context};
use super::table::{self, Proto, ProxyTable};

/// kube-proxy's default healthz port.
pub const HEALTHZ_PORT: u16 = 10256;

/// State shared by all listeners of the process.
pub struct Shared {
    node: String,
    table: RwLock<Arc<ProxyTable>>,
    counters: Mutex<HashMap<(Proto, SocketAddr), usize>>,
}

impl Shared {
    pub fn new(node: String) -> Self {
        Shared {
            node,
            table: RwLock::new(Arc::new(ProxyTable::default())),
            counters: Mutex::new(HashMap::new()),
        }
    }

    pub fn set_table(&self, t: ProxyTable) {
        *self.table.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(t);
    }

    pub fn table(&self) -> Arc<ProxyTable> {
        self.table.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn next(&self, key: (Proto, SocketAddr)) -> usize {
        let mut counters = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        let n = counters.entry(key).or_default();
        let current = *n;
        *n = n.wrapping_add(1);
        current
    }

    /// The reply for one request on `local`, or `None` when there is nobody to answer.
    fn answer<T>(
        &self,
        proto: Proto,
        local: SocketAddr,
        client: SocketAddr,
        f: impl FnOnce(&Context<'_>) -> T,
    ) -> Option<T> {
        let t = self.table();
        let entry = t.ports.get(&(proto, local))?;
        let n = self.next((proto, local));
        let backend = table::pick(&entry.backends, n)?;
        Some(f(&Context {
            node: &self.node,
            service: &entry.service,
            port_name: &entry.port_name,
            backend,
            client,
        }))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    Tcp(SocketAddr),
    Udp(SocketAddr),
    HealthCheck(u16),
}

/// The running listeners, brought in line with the table by [`Listeners::sync`].
pub struct Listeners {
    shared: Arc<Shared>,
    cancel: CancellationToken,
    running: HashMap<Key, CancellationToken>,
}

fn text(code: u16, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_default()
}

fn json(code: u16, body: String) -> Response<Full<Bytes>> {
    let mut r = text(code, body);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    r
}

impl Listeners {
    pub fn new(shared: Arc<Shared>, cancel: CancellationToken) -> Self {
        Listeners {
            shared,
            cancel,
            running: HashMap::new(),
        }
    }

    fn desired(&self) -> Vec<Key> {
        let t = self.shared.table();
        let mut keys: Vec<Key> = t
            .ports
            .iter()
            .filter_map(|((proto, addr), entry)| match proto {
                // No endpoint, no listener: the client sees a refused connection.
                Proto::Tcp if entry.backends.is_empty() => None,
                Proto::Tcp => Some(Key::Tcp(*addr)),
                Proto::Udp => Some(Key::Udp(*addr)),
            })
            .collect();
        keys.extend(t.health_checks.keys().map(|p| Key::HealthCheck(*p)));
        keys
    }

    /// Starts missing listeners and stops unwanted ones. A bind failure is logged and
    /// retried on the next sync.
    pub fn sync(&mut self) {
        let desired = self.desired();
        self.running.retain(|key, token| {
            let keep = desired.contains(key);
            if !keep {
                token.cancel();
            }
            keep
        });
        for key in desired {
            if self.running.contains_key(&key) {
                continue;
            }
            let token = self.cancel.child_token();
            let started = match key {
                Key::Tcp(addr) => spawn_tcp(addr, self.shared.clone(), token.clone()),
                Key::Udp(addr) => spawn_udp(addr, self.shared.clone(), token.clone()),
                Key::HealthCheck(port) => {
                    spawn_health_check(port, self.shared.clone(), token.clone())
                }
            };
            match started {
                Ok(()) => {
                    self.running.insert(key, token);
                }
                Err(e) => warn!(?key, error = %e, "cannot listen; will retry"),
            }
        }
    }

    /// `:10256/healthz` on all IPv4 addresses and the node's IPv6 addresses.
    pub fn start_healthz(&mut self, node_ips: &[IpAddr]) {
        let mut addrs = vec![SocketAddr::new(
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            HEALTHZ_PORT,
        )];
        addrs.extend(
            node_ips
                .iter()
                .filter(|ip| ip.is_ipv6())
                .map(|ip| SocketAddr::new(*ip, HEALTHZ_PORT)),
        );
        for addr in addrs {
            let token = self.cancel.child_token();
            let std = match std::net::TcpListener::bind(addr)
                .and_then(|l| l.set_nonblocking(true).map(|_| l))
            {
                Ok(l) => l,
                Err(e) => {
                    warn!(%addr, error = %e, "cannot serve healthz");
                    continue;
                }
            };
            let Ok(listener) = TcpListener::from_std(std) else {
                continue;
            };
            serve_http(listener, token, |req: Request<Incoming>, _local, _peer| {
                let now = k8s_openapi::jiff::Timestamp::now().to_string();
                match req.uri().path() {
                    "/healthz" | "/livez" => {
                        let (code, body) = reply::proxy_healthz(&now);
                        json(code, body)
                    }
                    _ => text(404, "not found\n".into()),
                }
            });
        }
    }
}

fn bind_tcp(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let std = std::net::TcpListener::bind(addr)?;
    std.set_nonblocking(true)?;
    TcpListener::from_std(std)
}

/// Serves HTTP/1.1 on the listener until cancelled; `handle` gets the request and the
/// connection's local and peer addresses.
fn serve_http<F>(listener: TcpListener, cancel: CancellationToken, handle: F)
where
    F: Fn(Request<Incoming>, SocketAddr, SocketAddr) -> Response<Full<Bytes>>
        + Send
        + Sync
        + Clone
        + 'static,
{
    tokio::spawn(async move {
        loop {
            let (stream, peer) = tokio::select! {
                _ = cancel.cancelled() => return,
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        debug!(error = %e, "accept failed");
                        continue;
                    }
                },
            };
            let Ok(local) = stream.local_addr() else {
                continue;
            };
            let handle = handle.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    let response = handle(req, local, peer);
                    async move { Ok::<_, Infallible>(response) }
                });
                if let Err(e) = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await
                {
                    debug!(error = %e, "connection ended with an error");
                }
            });
        }
    });
}

fn spawn_tcp(
    addr: SocketAddr,
    shared: Arc<Shared>,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    let listener = bind_tcp(addr)?;
    serve_http(listener, cancel, move |req, local, peer| {
        let path = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/")
            .to_string();
        shared
            .answer(Proto::Tcp, local, peer, |ctx| {
                let (code, body) = reply::http(&path, ctx);
                text(code, body)
            })
            .unwrap_or_else(|| text(503, "no endpoints\n".into()))
    });
    Ok(())
}

fn spawn_udp(
    addr: SocketAddr,
    shared: Arc<Shared>,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    let std = std::net::UdpSocket::bind(addr)?;
    std.set_nonblocking(true)?;
    let socket = UdpSocket::from_std(std)?;
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        loop {
            let (len, peer) = tokio::select! {
                _ = cancel.cancelled() => return,
                r = socket.recv_from(&mut buf) => match r {
                    Ok(r) => r,
                    Err(e) => {
                        debug!(error = %e, "udp receive failed");
                        continue;
                    }
                },
            };
            if let Some(answer) =
                shared.answer(Proto::Udp, addr, peer, |ctx| reply::udp(&buf[..len], ctx))
                && let Err(e) = socket.send_to(&answer, peer).await
            {
                debug!(error = %e, "udp send failed");
            }
        }
    });
    Ok(())
}

fn spawn_health_check(
    port: u16,
    shared: Arc<Shared>,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    let listener = bind_tcp(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port))?;
    serve_http(listener, cancel, move |_req, _local, _peer| {
        let t = shared.table();
        match t.health_checks.get(&port) {
            Some(entry) => {
                let (code, body) = reply::health_check(entry);
                json(code, body)
            }
            None => text(503, "no such service\n".into()),
        }
    });
    Ok(())
}
