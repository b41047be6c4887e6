//! Validation of the names that appear in ironlb objects: namespace and object names, label keys
//! and values, Linux interface names.
//!
//! Each format has a Rust check with a typed error and a regular expression used in the CRD
//! schema, so that the API server rejects the same strings the controller would. The tests hold
//! the two to agreement.

use std::fmt;

/// Longest DNS-1123 label (a namespace name).
pub const DNS1123_LABEL_MAX: usize = 63;
/// Longest DNS-1123 subdomain (most object names, label-key prefixes).
pub const DNS1123_SUBDOMAIN_MAX: usize = 253;
/// Longest name part of a label key, and longest label value.
pub const LABEL_NAME_MAX: usize = 63;
/// Longest label key: a subdomain prefix, `/`, and a name.
pub const LABEL_KEY_MAX: usize = DNS1123_SUBDOMAIN_MAX + 1 + LABEL_NAME_MAX;
/// Longest Linux interface name (`IFNAMSIZ` minus the terminating NUL).
pub const INTERFACE_NAME_MAX: usize = 15;

/// Schema pattern of a DNS-1123 label (length is checked separately).
pub const DNS1123_LABEL_PATTERN: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
/// Schema pattern of a DNS-1123 subdomain (length is checked separately).
pub const DNS1123_SUBDOMAIN_PATTERN: &str =
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
/// Schema pattern of a label key: an optional subdomain prefix and `/`, then a name of at most
/// 63 characters. The prefix length is bounded only by the key's total length.
pub const LABEL_KEY_PATTERN: &str = r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$";
/// Schema pattern of a label value (which may be empty).
pub const LABEL_VALUE_PATTERN: &str = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$";
/// Schema pattern of an interface name: printable ASCII without `/`, `:` or space. The kernel
/// also refuses `.` and `..`; the schema says so with a CEL rule, for a readable message.
pub const INTERFACE_NAME_PATTERN: &str = "^[!-.0-9;-~]+$";

/// The format a name was checked against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameKind {
    /// A DNS-1123 label, as a namespace name.
    Dns1123Label,
    /// A DNS-1123 subdomain, as most object names.
    Dns1123Subdomain,
    LabelKey,
    LabelValue,
    InterfaceName,
}

impl fmt::Display for NameKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NameKind::Dns1123Label => "DNS-1123 label",
            NameKind::Dns1123Subdomain => "DNS-1123 subdomain",
            NameKind::LabelKey => "label key",
            NameKind::LabelValue => "label value",
            NameKind::InterfaceName => "interface name",
        })
    }
}

/// Why a name was rejected. Every message quotes the value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("{kind} must not be empty")]
    Empty { kind: NameKind },
    #[error("{kind} {value:?} is longer than {max} characters")]
    TooLong {
        kind: NameKind,
        value: String,
        max: usize,
    },
    #[error("{kind} {value:?} is invalid: {rule}")]
    Invalid {
        kind: NameKind,
        value: String,
        rule: &'static str,
    },
}

fn invalid(kind: NameKind, value: &str, rule: &'static str) -> NameError {
    NameError::Invalid {
        kind,
        value: value.to_string(),
        rule,
    }
}

fn check_length(kind: NameKind, value: &str, max: usize) -> Result<(), NameError> {
    if value.is_empty() {
        return Err(NameError::Empty { kind });
    }
    if value.len() > max {
        return Err(NameError::TooLong {
            kind,
            value: value.to_string(),
            max,
        });
    }
    Ok(())
}

/// True for `[a-z0-9]([-a-z0-9]*[a-z0-9])?` (length unchecked).
fn is_label_shaped(s: &str) -> bool {
    let b = s.as_bytes();
    let inner_ok = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-';
    let edge_ok = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    match (b.first(), b.last()) {
        (Some(&first), Some(&last)) => {
            edge_ok(first) && edge_ok(last) && b.iter().all(|&c| inner_ok(c))
        }
        _ => false,
    }
}

const LABEL_RULE: &str =
    "use lowercase letters, digits and '-', starting and ending with a letter or digit";
const SUBDOMAIN_RULE: &str = "use dot-separated parts of lowercase letters, digits and '-', each starting and ending with a letter or digit";

/// Checks a DNS-1123 label, the format of namespace names.
pub fn check_dns1123_label(value: &str) -> Result<(), NameError> {
    let kind = NameKind::Dns1123Label;
    check_length(kind, value, DNS1123_LABEL_MAX)?;
    if !is_label_shaped(value) {
        return Err(invalid(kind, value, LABEL_RULE));
    }
    Ok(())
}

/// Checks a DNS-1123 subdomain, the format of most object names (IPAddressPools among them).
pub fn check_dns1123_subdomain(value: &str) -> Result<(), NameError> {
    let kind = NameKind::Dns1123Subdomain;
    check_length(kind, value, DNS1123_SUBDOMAIN_MAX)?;
    if !value.split('.').all(is_label_shaped) {
        return Err(invalid(kind, value, SUBDOMAIN_RULE));
    }
    Ok(())
}

/// True for `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]` (length unchecked).
fn is_label_name_shaped(s: &str) -> bool {
    let b = s.as_bytes();
    let inner_ok = |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.');
    match (b.first(), b.last()) {
        (Some(&first), Some(&last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && b.iter().all(|&c| inner_ok(c))
        }
        _ => false,
    }
}

const LABEL_NAME_RULE: &str =
    "use letters, digits, '-', '_' and '.', starting and ending with a letter or digit";

/// Checks a label key: `name` or `prefix/name`, where the prefix is a DNS-1123 subdomain.
pub fn check_label_key(value: &str) -> Result<(), NameError> {
    let kind = NameKind::LabelKey;
    check_length(kind, value, LABEL_KEY_MAX)?;
    let (prefix, name) = match value.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, value),
    };
    if let Some(prefix) = prefix {
        if prefix.is_empty() || prefix.len() > DNS1123_SUBDOMAIN_MAX {
            return Err(invalid(
                kind,
                value,
                "the prefix before '/' must be a DNS-1123 subdomain of 1 to 253 characters",
            ));
        }
        if !prefix.split('.').all(is_label_shaped) {
            return Err(invalid(
                kind,
                value,
                "the prefix before '/' must be a DNS-1123 subdomain",
            ));
        }
    }
    if name.is_empty() || name.len() > LABEL_NAME_MAX {
        return Err(invalid(
            kind,
            value,
            "the name part must be 1 to 63 characters long",
        ));
    }
    if !is_label_name_shaped(name) {
        return Err(invalid(kind, value, LABEL_NAME_RULE));
    }
    Ok(())
}

/// Checks a label value. The empty value is valid.
pub fn check_label_value(value: &str) -> Result<(), NameError> {
    let kind = NameKind::LabelValue;
    if value.is_empty() {
        return Ok(());
    }
    check_length(kind, value, LABEL_NAME_MAX)?;
    if !is_label_name_shaped(value) {
        return Err(invalid(kind, value, LABEL_NAME_RULE));
    }
    Ok(())
}

/// Checks a Linux network interface name as the kernel's `dev_valid_name` does, restricted to
/// printable ASCII: 1 to 15 bytes, no `/`, `:` or whitespace, and not `.` or `..`.
pub fn check_interface_name(value: &str) -> Result<(), NameError> {
    let kind = NameKind::InterfaceName;
    check_length(kind, value, INTERFACE_NAME_MAX)?;
    if value == "." || value == ".." {
        return Err(invalid(kind, value, "'.' and '..' are not interface names"));
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_graphic() && b != b'/' && b != b':')
    {
        return Err(invalid(
            kind,
            value,
            "use printable ASCII without '/', ':' or spaces",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use regex::Regex;

    fn matches(pattern: &str, max: usize, value: &str) -> bool {
        // The API server applies maxLength and pattern separately; mirror that.
        value.chars().count() <= max && Regex::new(pattern).unwrap().is_match(value)
    }

    #[test]
    fn dns1123_labels() {
        for ok in ["a", "0", "ironlb-system", "a1-b2", &"a".repeat(63)] {
            assert_eq!(check_dns1123_label(ok), Ok(()), "{ok}");
        }
        let cases = [
            (
                "",
                NameError::Empty {
                    kind: NameKind::Dns1123Label,
                },
            ),
            ("-a", invalid(NameKind::Dns1123Label, "-a", LABEL_RULE)),
            ("a-", invalid(NameKind::Dns1123Label, "a-", LABEL_RULE)),
            ("Web", invalid(NameKind::Dns1123Label, "Web", LABEL_RULE)),
            ("a.b", invalid(NameKind::Dns1123Label, "a.b", LABEL_RULE)),
            ("a_b", invalid(NameKind::Dns1123Label, "a_b", LABEL_RULE)),
            ("é", invalid(NameKind::Dns1123Label, "é", LABEL_RULE)),
            (
                &"a".repeat(64),
                NameError::TooLong {
                    kind: NameKind::Dns1123Label,
                    value: "a".repeat(64),
                    max: 63,
                },
            ),
        ];
        for (value, want) in cases {
            assert_eq!(check_dns1123_label(value), Err(want), "{value:?}");
        }
    }

    #[test]
    fn dns1123_subdomains() {
        for ok in ["a", "pool-a", "gold.pools", "a.b.c", &"a".repeat(253)] {
            assert_eq!(check_dns1123_subdomain(ok), Ok(()), "{ok}");
        }
        for bad in ["", ".a", "a.", "a..b", "A", "a_b", "a/b", &"a".repeat(254)] {
            assert!(check_dns1123_subdomain(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn label_keys() {
        for ok in [
            "app",
            "App.Name_1",
            "ironlb.io/node",
            "kubernetes.io/hostname",
            "node.kubernetes.io/exclude-from-external-load-balancers",
            &"a".repeat(63),
            &format!("{}/{}", "a".repeat(253), "b".repeat(63)),
        ] {
            assert_eq!(check_label_key(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "/app",
            "ironlb.io/",
            "a/b/c",
            "-app",
            "app-",
            "IronLB.io/app",
            "ironlb.io/app name",
            &"a".repeat(64),
            &format!("{}/b", "a".repeat(254)),
        ] {
            assert!(check_label_key(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            check_label_key("app-").unwrap_err().to_string(),
            "label key \"app-\" is invalid: use letters, digits, '-', '_' and '.', starting and ending with a letter or digit"
        );
    }

    #[test]
    fn label_values() {
        for ok in ["", "web", "v1.2_3-x", &"a".repeat(63)] {
            assert_eq!(check_label_value(ok), Ok(()), "{ok}");
        }
        for bad in ["-web", "web-", "a b", "a/b", &"a".repeat(64)] {
            assert!(check_label_value(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn interface_names() {
        for ok in [
            "eth0",
            "br-lan",
            "enp0s31f6",
            "veth.1",
            "...",
            "a",
            &"x".repeat(15),
        ] {
            assert_eq!(check_interface_name(ok), Ok(()), "{ok}");
        }
        let cases = [
            ("", "must not be empty"),
            (".", "'.' and '..'"),
            ("..", "'.' and '..'"),
            ("eth0:1", "without '/', ':'"),
            ("a/b", "without '/', ':'"),
            ("eth 0", "without '/', ':'"),
            ("eth\t0", "without '/', ':'"),
            ("ethé", "without '/', ':'"),
            ("abcdefghijklmnop", "longer than 15"),
        ];
        for (value, want) in cases {
            let err = check_interface_name(value).unwrap_err().to_string();
            assert!(err.contains(want), "{value:?}: {err}");
        }
    }

    /// A table of strings for which the schema pattern and the Rust check must agree.
    fn agreement_inputs() -> Vec<String> {
        let mut inputs: Vec<String> = [
            "",
            "a",
            "A",
            "0",
            "-",
            "a-",
            "-a",
            "a-b",
            "a.b",
            "a..b",
            ".a",
            "a.",
            "a_b",
            "a/b",
            "a/b/c",
            "/a",
            "a/",
            "eth0",
            ".",
            "..",
            "...",
            "eth0:1",
            "a b",
            "é",
            "ironlb.io/node",
            "x.y/Z_1",
            "x.y/_z",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        inputs.push("a".repeat(15));
        inputs.push("a".repeat(16));
        inputs.push("a".repeat(63));
        inputs.push("a".repeat(64));
        inputs.push(format!("{}/b", "a".repeat(253)));
        inputs
    }

    fn assert_agreement(value: &str) {
        assert_eq!(
            check_dns1123_label(value).is_ok(),
            matches(DNS1123_LABEL_PATTERN, DNS1123_LABEL_MAX, value),
            "label {value:?}"
        );
        assert_eq!(
            check_dns1123_subdomain(value).is_ok(),
            matches(DNS1123_SUBDOMAIN_PATTERN, DNS1123_SUBDOMAIN_MAX, value),
            "subdomain {value:?}"
        );
        assert_eq!(
            check_label_value(value).is_ok(),
            matches(LABEL_VALUE_PATTERN, LABEL_NAME_MAX, value),
            "label value {value:?}"
        );
        // Known gap: the schema bounds only the key's total length, so a prefix of 254 to 315
        // characters passes it and is caught by the Rust check. No input here has one.
        assert_eq!(
            check_label_key(value).is_ok(),
            matches(LABEL_KEY_PATTERN, LABEL_KEY_MAX, value),
            "label key {value:?}"
        );
        let schema_ifname = matches(INTERFACE_NAME_PATTERN, INTERFACE_NAME_MAX, value)
            && value != "."
            && value != "..";
        assert_eq!(
            check_interface_name(value).is_ok(),
            schema_ifname,
            "interface {value:?}"
        );
    }

    #[test]
    fn rust_checks_agree_with_schema_patterns() {
        for value in agreement_inputs() {
            assert_agreement(&value);
        }
    }

    proptest! {
        #[test]
        fn agreement_on_generated_names(value in "[a-zA-Z0-9._/: -]{0,20}") {
            assert_agreement(&value);
        }

        #[test]
        fn agreement_on_arbitrary_text(value in "\\PC{0,20}") {
            assert_agreement(&value);
        }
    }
}
