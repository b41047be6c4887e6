//! What the API server we talk to supports, detected from the server itself.
//!
//! `status.loadBalancer.ingress[].ipMode` exists from Kubernetes 1.29 (alpha, then beta and on by
//! default in 1.30). Before that the field is not in the schema, and a server-side apply that
//! sets it is rejected, so on older servers the controller writes the status without it.

use k8s_openapi::apimachinery::pkg::version::Info;

/// The first minor version of Kubernetes 1.x whose Service schema has `ipMode`.
pub const FIRST_MINOR_WITH_IP_MODE: u32 = 29;

/// Capabilities of the API server that change what the controller writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerCaps {
    pub ip_mode: bool,
}

impl ServerCaps {
    /// Reads the capabilities from the server's `/version`. A version we cannot parse is assumed
    /// recent: a wrong guess is caught by [`is_unknown_ip_mode_error`] at the first write.
    pub fn from_version(info: &Info) -> ServerCaps {
        let ip_mode = match parse_minor(info) {
            Some((1, minor)) => minor >= FIRST_MINOR_WITH_IP_MODE,
            _ => true,
        };
        ServerCaps { ip_mode }
    }
}

/// Parses `major`/`minor` as the server reports them; managed clusters append `+` to the minor.
fn parse_minor(info: &Info) -> Option<(u32, u32)> {
    let digits = |s: &str| -> Option<u32> {
        let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        s[..end].parse().ok()
    };
    match (digits(&info.major), digits(&info.minor)) {
        (Some(major), Some(minor)) => Some((major, minor)),
        _ => {
            // Fall back on gitVersion, e.g. "v1.27.3".
            let mut parts = info.git_version.trim_start_matches('v').split('.');
            Some((digits(parts.next()?)?, digits(parts.next()?)?))
        }
    }
}

/// True when a write failed because the server does not know `ipMode`.
pub fn is_unknown_ip_mode_error(message: &str) -> bool {
    message.contains("ipMode")
        && (message.contains("not declared in schema") || message.contains("unknown field"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(major: &str, minor: &str, git: &str) -> Info {
        Info {
            major: major.into(),
            minor: minor.into(),
            git_version: git.into(),
            ..Info::default()
        }
    }

    #[test]
    fn versions_before_1_29_have_no_ip_mode() {
        assert!(!ServerCaps::from_version(&info("1", "27", "v1.27.3")).ip_mode);
        assert!(!ServerCaps::from_version(&info("1", "28+", "v1.28.9-eks")).ip_mode);
        assert!(ServerCaps::from_version(&info("1", "29", "v1.29.0")).ip_mode);
        assert!(ServerCaps::from_version(&info("1", "35", "v1.35.1")).ip_mode);
    }

    #[test]
    fn git_version_is_the_fallback() {
        assert!(!ServerCaps::from_version(&info("", "", "v1.27.3")).ip_mode);
        assert!(ServerCaps::from_version(&info("", "", "v1.31.0")).ip_mode);
    }

    #[test]
    fn unparsable_versions_are_assumed_recent() {
        assert!(ServerCaps::from_version(&info("x", "y", "garbage")).ip_mode);
    }

    #[test]
    fn schema_errors_about_ip_mode_are_recognised() {
        assert!(is_unknown_ip_mode_error(
            ".status.loadBalancer.ingress[0].ipMode: field not declared in schema"
        ));
        assert!(!is_unknown_ip_mode_error(
            "field not declared in schema: .spec.foo"
        ));
    }
}
