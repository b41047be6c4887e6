//! Node health for `externalTrafficPolicy: Cluster`: is this node's kube-proxy serving?
//!
//! Each speaker probes **its own** node's kube-proxy healthz (`--kube-proxy-healthz`, by
//! default `http://127.0.0.1:10256/healthz`) once a second. While it fails, the speaker leaves
//! membership with a signed leave, so the other speakers stop electing it within
//! milliseconds, and it joins again once kube-proxy answers. Nobody probes anybody else's
//! kube-proxy: N speakers make N probes, not N², and the verdict reaches the others through
//! membership, which they already trust.
//!
//! The rule ([`Verdict`]): a speaker starts unhealthy and becomes healthy at the first 2xx
//! answer; a healthy speaker turns unhealthy after [`FAILURES_TO_WITHDRAW`] failed probes in
//! a row, so one slow answer does not move every address of the node.
//!
//! `externalTrafficPolicy: Local` needs no probe: a node is healthy for such a Service when
//! the Service's EndpointSlices list a ready endpoint on it (the fact its
//! `healthCheckNodePort` reports), which every speaker reads from the API alike (see
//! [`state`](crate::state)).

pub mod http;

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub use http::{HealthzUrl, HealthzUrlError};

/// Time between probes.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(1);
/// Time one probe may take, connection included.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// Failed probes in a row that turn a healthy node unhealthy.
pub const FAILURES_TO_WITHDRAW: u32 = 3;

/// The health verdict from a run of probe results. Pure.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    healthy: bool,
    failures: u32,
}

impl Verdict {
    pub fn is_healthy(&self) -> bool {
        self.healthy
    }

    /// Takes one probe result; returns the new verdict when it changed.
    pub fn observe(&mut self, ok: bool) -> Option<bool> {
        if ok {
            self.failures = 0;
            if !self.healthy {
                self.healthy = true;
                return Some(true);
            }
        } else {
            self.failures = self.failures.saturating_add(1);
            if self.healthy && self.failures >= FAILURES_TO_WITHDRAW {
                self.healthy = false;
                return Some(false);
            }
        }
        None
    }
}

/// Why a probe failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("cannot resolve {0}")]
    Resolve(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Response(#[from] http::ResponseError),
}

/// One probe: the HTTP status code of `url`.
pub async fn probe(url: &HealthzUrl, timeout: Duration) -> Result<u16, ProbeError> {
    tokio::time::timeout(timeout, probe_inner(url))
        .await
        .map_err(|_| ProbeError::Timeout(timeout))?
}

async fn probe_inner(url: &HealthzUrl) -> Result<u16, ProbeError> {
    let mut stream = match url.ip() {
        Some(ip) => TcpStream::connect((ip, url.port())).await?,
        None => {
            let mut addrs = tokio::net::lookup_host((url.host(), url.port()))
                .await
                .map_err(|_| ProbeError::Resolve(url.host().to_string()))?;
            let addr = addrs
                .next()
                .ok_or_else(|| ProbeError::Resolve(url.host().to_string()))?;
            TcpStream::connect(addr).await?
        }
    };
    stream.write_all(url.request().as_bytes()).await?;
    let mut head = Vec::with_capacity(256);
    let mut buf = [0u8; 256];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(http::status_code(&head)?);
        }
        head.extend_from_slice(&buf[..n]);
        match http::status_code(&head) {
            Err(http::ResponseError::Incomplete) if head.len() < 1024 => continue,
            result => return Ok(result?),
        }
    }
}

/// Probes `url` every [`PROBE_INTERVAL`] until `cancel` fires, publishing the verdict on
/// `healthy` (which starts `false`).
pub async fn watch_kube_proxy(
    url: HealthzUrl,
    healthy: watch::Sender<bool>,
    cancel: CancellationToken,
) {
    let mut verdict = Verdict::default();
    let mut last_error = String::new();
    loop {
        let result = probe(&url, PROBE_TIMEOUT).await;
        let ok = matches!(result, Ok(200..=299));
        if !ok {
            let error = match &result {
                Ok(code) => format!("answered HTTP {code}"),
                Err(err) => err.to_string(),
            };
            if error != last_error {
                tracing::warn!(%url, %error, "kube-proxy health check failed");
                last_error = error;
            }
        } else {
            last_error.clear();
        }
        if let Some(now) = verdict.observe(ok) {
            if now {
                tracing::info!(%url, "kube-proxy is healthy");
            } else {
                tracing::warn!(
                    %url,
                    failures = FAILURES_TO_WITHDRAW,
                    "kube-proxy is unhealthy: leaving membership until it recovers"
                );
            }
            healthy.send_replace(now);
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(PROBE_INTERVAL) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_success_makes_healthy_and_three_failures_withdraw() {
        let mut v = Verdict::default();
        assert!(!v.is_healthy());
        assert_eq!(v.observe(false), None, "unhealthy from the start");
        assert_eq!(v.observe(true), Some(true));
        assert_eq!(v.observe(true), None);
        assert_eq!(v.observe(false), None);
        assert_eq!(v.observe(false), None);
        assert_eq!(v.observe(true), None, "a success resets the count");
        assert_eq!(v.observe(false), None);
        assert_eq!(v.observe(false), None);
        assert_eq!(v.observe(false), Some(false));
        assert_eq!(v.observe(false), None);
        assert_eq!(v.observe(true), Some(true), "one success rejoins");
    }

    /// A one-shot HTTP server on loopback answering `answer`.
    async fn serve_once(answer: &'static [u8]) -> HealthzUrl {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 512];
            let _ = stream.read(&mut request).await;
            let _ = stream.write_all(answer).await;
        });
        format!("http://127.0.0.1:{port}/healthz").parse().unwrap()
    }

    #[tokio::test]
    async fn probes_read_the_status_code() {
        let url = serve_once(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").await;
        assert_eq!(probe(&url, PROBE_TIMEOUT).await.unwrap(), 200);
        let url = serve_once(b"HTTP/1.1 503 Service Unavailable\r\n\r\n").await;
        assert_eq!(probe(&url, PROBE_TIMEOUT).await.unwrap(), 503);
        let url = serve_once(b"garbage\r\n").await;
        assert!(matches!(
            probe(&url, PROBE_TIMEOUT).await,
            Err(ProbeError::Response(_))
        ));
        let url = serve_once(b"HTTP/1.1 200").await;
        assert!(matches!(
            probe(&url, PROBE_TIMEOUT).await,
            Err(ProbeError::Response(http::ResponseError::Incomplete))
        ));
    }

    #[tokio::test]
    async fn a_closed_port_fails() {
        // Bind then drop: nothing listens there any more.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let url: HealthzUrl = format!("http://127.0.0.1:{port}/healthz").parse().unwrap();
        assert!(matches!(
            probe(&url, PROBE_TIMEOUT).await,
            Err(ProbeError::Io(_))
        ));
    }
}
