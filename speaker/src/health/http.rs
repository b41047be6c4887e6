//! The little HTTP the kube-proxy check needs, without an HTTP client: the URL, the request
//! and the status line of the answer. Pure.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// Why a `--kube-proxy-healthz` value was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HealthzUrlError {
    #[error("{0:?} is not an http:// URL (kube-proxy serves healthz over plain HTTP)")]
    NotHttp(String),
    #[error("{0:?} has no host")]
    NoHost(String),
    #[error("{0:?} has a malformed host or port")]
    BadAuthority(String),
}

/// An `http://host[:port][/path]` URL; the host is an IP address (IPv6 in brackets) or a name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthzUrl {
    host: String,
    port: u16,
    path: String,
}

impl HealthzUrl {
    /// The host as written, without brackets.
    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The request target: the path and query, at least `/`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The host as an address, when it is one.
    pub fn ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }

    /// The complete `GET` request for this URL.
    pub fn request(&self) -> String {
        let host = match self.ip() {
            Some(IpAddr::V6(_)) => format!("[{}]", self.host),
            _ => self.host.clone(),
        };
        format!(
            "GET {} HTTP/1.1\r\nHost: {host}:{}\r\nUser-Agent: ironlb-speaker\r\nAccept: */*\r\nConnection: close\r\n\r\n",
            self.path, self.port
        )
    }
}

impl FromStr for HealthzUrl {
    type Err = HealthzUrlError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let trimmed = text.trim();
        let rest = trimmed
            .strip_prefix("http://")
            .ok_or_else(|| HealthzUrlError::NotHttp(text.to_string()))?;
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let path = if path.starts_with('?') {
            format!("/{path}")
        } else {
            path.to_string()
        };
        if authority.is_empty() {
            return Err(HealthzUrlError::NoHost(text.to_string()));
        }
        let bad = || HealthzUrlError::BadAuthority(text.to_string());
        if authority.contains('@') || path.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad());
        }
        let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
            let (host, after) = bracketed.split_once(']').ok_or_else(bad)?;
            host.parse::<std::net::Ipv6Addr>().map_err(|_| bad())?;
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or_else(bad)?),
            };
            (host, port)
        } else {
            match authority.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(HealthzUrlError::NoHost(text.to_string()));
        }
        let name_ok = host.parse::<IpAddr>().is_ok()
            || host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
        if !name_ok {
            return Err(bad());
        }
        let port = match port {
            None => 80,
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(bad)?
            }
            Some(_) => return Err(bad()),
        };
        Ok(HealthzUrl {
            host: host.to_string(),
            port,
            path,
        })
    }
}

impl fmt::Display for HealthzUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.ip() {
            Some(IpAddr::V6(_)) => write!(f, "http://[{}]:{}{}", self.host, self.port, self.path),
            _ => write!(f, "http://{}:{}{}", self.host, self.port, self.path),
        }
    }
}

/// Why an answer could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    #[error("the answer ended before its status line")]
    Incomplete,
    #[error("malformed status line {0:?}")]
    Malformed(String),
}

/// The status code of an HTTP/1.x answer that starts with `head`. `Incomplete` means more
/// bytes are needed.
pub fn status_code(head: &[u8]) -> Result<u16, ResponseError> {
    let Some(end) = head.windows(2).position(|w| w == b"\r\n") else {
        return Err(ResponseError::Incomplete);
    };
    let line = String::from_utf8_lossy(&head[..end]).into_owned();
    let mut words = line.split(' ');
    let version = words.next().unwrap_or_default();
    let code = words.next().unwrap_or_default();
    let valid_version = version == "HTTP/1.1" || version == "HTTP/1.0";
    if !valid_version || code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ResponseError::Malformed(line));
    }
    code.parse().map_err(|_| ResponseError::Malformed(line))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> HealthzUrl {
        text.parse().unwrap()
    }

    #[test]
    fn urls() {
        let u = url("http://127.0.0.1:10256/healthz");
        assert_eq!(
            (u.host(), u.port(), u.path()),
            ("127.0.0.1", 10256, "/healthz")
        );
        assert_eq!(u.to_string(), "http://127.0.0.1:10256/healthz");
        let u = url("http://[2001:db8::1]:10256/healthz?verbose");
        assert_eq!(u.host(), "2001:db8::1");
        assert_eq!(u.path(), "/healthz?verbose");
        assert_eq!(u.to_string(), "http://[2001:db8::1]:10256/healthz?verbose");
        let u = url("http://kube-proxy.local");
        assert_eq!((u.port(), u.path()), (80, "/"));
        assert_eq!(u.ip(), None);
        assert_eq!(url("http://[::1]").port(), 80);
        assert_eq!(url("http://h?x").path(), "/?x");
    }

    #[test]
    fn malformed_urls_are_named() {
        for (text, want) in [
            ("https://127.0.0.1:10256/healthz", "NotHttp"),
            ("127.0.0.1:10256", "NotHttp"),
            ("http://", "NoHost"),
            ("http:///healthz", "NoHost"),
            ("http://:10256/", "NoHost"),
            ("http://127.0.0.1:port/", "BadAuthority"),
            ("http://127.0.0.1:99999/", "BadAuthority"),
            ("http://127.0.0.1:0/", "BadAuthority"),
            ("http://127.0.0.1:/", "BadAuthority"),
            ("http://[2001:db8::1/", "BadAuthority"),
            ("http://[not-v6]:1/", "BadAuthority"),
            ("http://[::1]x/", "BadAuthority"),
            ("http://user@host/", "BadAuthority"),
            ("http://bad host/", "BadAuthority"),
            ("http://host/with space", "BadAuthority"),
        ] {
            let err = text.parse::<HealthzUrl>().unwrap_err();
            assert!(format!("{err:?}").starts_with(want), "{text}: {err:?}");
        }
    }

    #[test]
    fn requests_name_the_host_and_close() {
        let r = url("http://[::1]:10256/healthz").request();
        assert!(
            r.starts_with("GET /healthz HTTP/1.1\r\nHost: [::1]:10256\r\n"),
            "{r}"
        );
        assert!(r.ends_with("Connection: close\r\n\r\n"));
    }

    #[test]
    fn status_lines() {
        assert_eq!(
            status_code(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"),
            Ok(200)
        );
        assert_eq!(
            status_code(b"HTTP/1.0 503 Service Unavailable\r\n"),
            Ok(503)
        );
        assert_eq!(
            status_code(b"HTTP/1.1 200 OK"),
            Err(ResponseError::Incomplete)
        );
        assert_eq!(status_code(b""), Err(ResponseError::Incomplete));
        for bad in [
            &b"HTTP/2 200\r\n"[..],
            b"SSH-2.0-OpenSSH\r\n",
            b"HTTP/1.1 20 OK\r\n",
            b"HTTP/1.1 2000 OK\r\n",
            b"HTTP/1.1 abc OK\r\n",
            b"\xff\xfe\r\n",
        ] {
            assert!(
                matches!(status_code(bad), Err(ResponseError::Malformed(_))),
                "{bad:?}"
            );
        }
    }
}
