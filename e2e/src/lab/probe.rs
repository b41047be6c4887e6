//! A minimal plain-HTTP GET used to check health endpoints from inside a namespace
//! (`lab internal probe URL`), so the lab needs no `curl` to know a host is ready.
//!
//! URL and response parsing are pure and tested; [`get`] does the blocking socket work.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProbeError {
    #[error("not an http:// URL with host and port: {0:?}")]
    BadUrl(String),
    #[error("malformed HTTP response: {0}")]
    BadResponse(String),
    #[error("{0}")]
    Io(String),
}

/// The parts of `http://HOST:PORT/PATH` a GET needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub addr: SocketAddr,
    pub host_header: String,
    pub path: String,
}

pub fn parse_url(url: &str) -> Result<Target, ProbeError> {
    let bad = || ProbeError::BadUrl(url.to_string());
    let rest = url.strip_prefix("http://").ok_or_else(bad)?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() || path.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad());
    }
    let addr = authority
        .to_socket_addrs()
        .map_err(|_| bad())?
        .next()
        .ok_or_else(bad)?;
    Ok(Target {
        addr,
        host_header: authority.to_string(),
        path: path.to_string(),
    })
}

/// Splits a complete HTTP/1.x response into status code and body.
pub fn parse_response(raw: &[u8]) -> Result<(u16, String), ProbeError> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| ProbeError::BadResponse("no end of headers".into()))?;
    let status_line = head.lines().next().unwrap_or_default();
    let mut parts = status_line.split_whitespace();
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(ProbeError::BadResponse(format!(
            "status line {status_line:?}"
        )));
    }
    let code = parts
        .next()
        .and_then(|c| c.parse::<u16>().ok())
        .filter(|c| (100..600).contains(c))
        .ok_or_else(|| ProbeError::BadResponse(format!("status line {status_line:?}")))?;
    Ok((code, body.to_string()))
}

/// GETs the URL with `Connection: close` and returns status and body.
pub fn get(url: &str, timeout: Duration) -> Result<(u16, String), ProbeError> {
    let target = parse_url(url)?;
    let io = |e: std::io::Error| ProbeError::Io(format!("{url}: {e}"));
    let mut stream = TcpStream::connect_timeout(&target.addr, timeout).map_err(io)?;
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    stream.set_write_timeout(Some(timeout)).map_err(io)?;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: ironlb-lab-probe\r\nConnection: close\r\n\r\n",
        target.path, target.host_header
    );
    stream.write_all(request.as_bytes()).map_err(io)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).map_err(io)?;
    parse_response(&raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let t = parse_url("http://192.0.2.11:10256/healthz").unwrap();
        assert_eq!(t.addr, "192.0.2.11:10256".parse().unwrap());
        assert_eq!(t.path, "/healthz");
        assert_eq!(t.host_header, "192.0.2.11:10256");
        let t = parse_url("http://[2001:db8::11]:80").unwrap();
        assert_eq!(t.addr, "[2001:db8::11]:80".parse().unwrap());
        assert_eq!(t.path, "/");
    }

    #[test]
    fn rejects_malformed_urls() {
        for bad in [
            "",
            "https://192.0.2.1:443/",
            "http://",
            "http:///x",
            "http://192.0.2.1/no-port",
            "http://192.0.2.1:99999/",
            "http://192.0.2.1:80/a b",
        ] {
            assert!(
                matches!(parse_url(bad), Err(ProbeError::BadUrl(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn parses_responses() {
        let raw = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 2\r\n\r\nno";
        assert_eq!(parse_response(raw).unwrap(), (503, "no".to_string()));
        let raw = b"HTTP/1.0 200 OK\r\n\r\n";
        assert_eq!(parse_response(raw).unwrap(), (200, String::new()));
    }

    #[test]
    fn rejects_malformed_responses() {
        for bad in [
            &b""[..],
            b"HTTP/1.1 200 OK\r\n",
            b"SSH-2.0-OpenSSH\r\n\r\n",
            b"HTTP/1.1 abc OK\r\n\r\n",
            b"HTTP/1.1 999 Nope\r\n\r\n",
            b"HTTP/1.1\r\n\r\n",
        ] {
            assert!(matches!(
                parse_response(bad),
                Err(ProbeError::BadResponse(_))
            ));
        }
    }
}
