//! What the speaker tells the API: the ServiceL2Status objects it owns, the Events it emits,
//! and the writes that bring the observed objects in line. Pure.
//!
//! # One object per Service and family
//!
//! Each IP is elected on its own, so a dual-stack Service's IPv4 and IPv6 addresses may be
//! announced by two nodes. One object per Service and family (named by [`status_name`]) gives
//! every object exactly one writer, the owner of that IP, so two speakers never overwrite each
//! other's object in turn. A single-stack Service has one object.
//!
//! # Who writes what
//!
//! - The owner of an IP applies the object (server-side apply, forced) when the observed one
//!   differs from what it announces. A new owner therefore overwrites the object a dead node
//!   left behind; when the node in it changes, a `nodeAssigned` Event goes to the Service.
//! - A node deletes an object that names it but that it no longer owns, with the observed
//!   `resourceVersion` as precondition, so it never deletes the new owner's object.
//! - An object nobody should own (its Service or IP is gone) that names a node which is not a
//!   member is deleted by one janitor: the first alive member by name.
//! - Nothing is written when the objects already say what they should, so a settled cluster
//!   makes no writes at all, and a restarted speaker rewrites nothing.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ironlb_crds::address::Family;
use ironlb_crds::names::check_label_value;
use ironlb_crds::v1beta1::{
    InterfaceInfo, LABEL_NODE, LABEL_SERVICE_NAME, LABEL_SERVICE_NAMESPACE, ServiceL2StatusStatus,
};
use sha2::{Digest, Sha256};

use super::views::ServiceKey;

/// Longest readable prefix kept in a name; the rest of the 253 characters is for the suffix.
const NAME_PREFIX_MAX: usize = 200;

/// The name of the ServiceL2Status for `service`'s addresses of `family`:
/// `<namespace>-<name>-<ipv4|ipv6>-<10 hex digits of sha256("namespace/name")>`.
///
/// The hash keeps names unique when the readable part is ambiguous (`a-b`/`c` and `a`/`b-c`)
/// or shortened. The result is a valid DNS-1123 subdomain of at most 253 characters whatever
/// the input.
pub fn status_name(service: &ServiceKey, family: Family) -> String {
    let digest = Sha256::digest(format!("{}/{}", service.namespace, service.name).as_bytes());
    let hash: String = digest[..5].iter().map(|b| format!("{b:02x}")).collect();
    let mut prefix: String = format!("{}-{}", service.namespace, service.name)
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            }
        })
        .take(NAME_PREFIX_MAX)
        .collect();
    let trimmed = prefix.trim_matches('-').len();
    if trimmed == 0 {
        prefix = "service".into();
    } else {
        prefix = prefix.trim_matches('-').to_string();
    }
    format!("{prefix}-{}-{hash}", family.label())
}

/// A Service as the target of an Event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceRef {
    pub key: ServiceKey,
    pub uid: Option<String>,
}

/// The object a node wants for one Service and family.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredStatus {
    pub service: ServiceRef,
    pub node: String,
    pub ips: Vec<IpAddr>,
    pub interfaces: Vec<String>,
}

impl DesiredStatus {
    /// The object's status subresource.
    pub fn status(&self) -> ServiceL2StatusStatus {
        ServiceL2StatusStatus {
            node: self.node.clone(),
            service_name: self.service.key.name.clone(),
            service_namespace: self.service.key.namespace.clone(),
            ips: self.ips.iter().map(ToString::to_string).collect(),
            interfaces: self
                .interfaces
                .iter()
                .map(|name| InterfaceInfo { name: name.clone() })
                .collect(),
        }
    }

    /// The object's labels. A value that is not a valid label value (a node name longer than
    /// 63 characters) is left out rather than failing the write.
    pub fn labels(&self) -> BTreeMap<String, String> {
        [
            (LABEL_NODE, self.node.as_str()),
            (LABEL_SERVICE_NAME, self.service.key.name.as_str()),
            (LABEL_SERVICE_NAMESPACE, self.service.key.namespace.as_str()),
        ]
        .into_iter()
        .filter(|(_, v)| check_label_value(v).is_ok())
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }
}

/// A write to one ServiceL2Status object.
// Few of these exist (one per takeover or loss) and each is moved once, so boxing the large
// variant would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StatusAction {
    /// Server-side apply of the object. `announce` is the `nodeAssigned` Event to emit once it
    /// is written (the object named another node, or none).
    Apply {
        name: String,
        desired: DesiredStatus,
        announce: Option<EventIntent>,
    },
    /// Delete, only if the object still has `resource_version`.
    Delete {
        name: String,
        resource_version: Option<String>,
    },
}

impl StatusAction {
    pub fn name(&self) -> &str {
        match self {
            StatusAction::Apply { name, .. } | StatusAction::Delete { name, .. } => name,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Normal,
    Warning,
}

/// An Event about a Service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventIntent {
    pub service: ServiceRef,
    pub kind: EventKind,
    pub reason: &'static str,
    pub note: String,
}

/// The note of the `nodeAssigned` Event.
pub fn node_assigned_note(node: &str, ips: &[IpAddr], interfaces: &[String]) -> String {
    let ips: Vec<String> = ips.iter().map(ToString::to_string).collect();
    let on = if interfaces.is_empty() {
        "no interface (none is configured or found)".to_string()
    } else if interfaces.len() == 1 {
        format!("interface {}", interfaces[0])
    } else {
        format!("interfaces {}", interfaces.join(", "))
    };
    format!("announcing {} from node {node} on {on}", ips.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ironlb_crds::names::check_dns1123_subdomain;

    fn key(ns: &str, name: &str) -> ServiceKey {
        ServiceKey::new(ns, name)
    }

    #[test]
    fn names_are_readable_stable_and_per_family() {
        let web = key("default", "web");
        let v4 = status_name(&web, Family::V4);
        let v6 = status_name(&web, Family::V6);
        assert!(v4.starts_with("default-web-ipv4-"), "{v4}");
        assert!(v6.starts_with("default-web-ipv6-"), "{v6}");
        assert_eq!(v4.len(), "default-web-ipv4-".len() + 10);
        assert_eq!(v4, status_name(&web, Family::V4), "deterministic");
        // Same hash for both families: it covers namespace/name only.
        assert_eq!(v4[v4.len() - 10..], v6[v6.len() - 10..]);
    }

    #[test]
    fn ambiguous_readable_parts_get_different_hashes() {
        let a = status_name(&key("a-b", "c"), Family::V4);
        let b = status_name(&key("a", "b-c"), Family::V4);
        assert!(a.starts_with("a-b-c-ipv4-") && b.starts_with("a-b-c-ipv4-"));
        assert_ne!(a, b);
    }

    #[test]
    fn any_input_gives_a_valid_bounded_name() {
        let long = "x".repeat(300);
        let cases = [
            key("default", "web"),
            key(&long, &long),
            key("", ""),
            key("UPPER", "Case.With_Dots"),
            key("-", "-"),
            key("ns", "ünïcode"),
        ];
        for k in cases {
            for family in [Family::V4, Family::V6] {
                let name = status_name(&k, family);
                assert!(name.len() <= 253, "{name}");
                check_dns1123_subdomain(&name).unwrap_or_else(|e| panic!("{name:?}: {e}"));
            }
        }
    }

    #[test]
    fn labels_skip_values_kubernetes_would_refuse() {
        let desired = DesiredStatus {
            service: ServiceRef {
                key: key("default", "web"),
                uid: None,
            },
            node: "n".repeat(70),
            ips: vec!["198.51.100.1".parse().unwrap()],
            interfaces: vec!["eth0".into()],
        };
        let labels = desired.labels();
        assert!(!labels.contains_key(LABEL_NODE));
        assert_eq!(labels[LABEL_SERVICE_NAME], "web");
        assert_eq!(labels[LABEL_SERVICE_NAMESPACE], "default");
        let status = desired.status();
        assert_eq!(status.ips, ["198.51.100.1"]);
        assert_eq!(status.interfaces[0].name, "eth0");
    }

    #[test]
    fn node_assigned_note_names_node_and_interface() {
        let ip: IpAddr = "198.51.100.1".parse().unwrap();
        assert_eq!(
            node_assigned_note("node1", &[ip], &["eth0".into()]),
            "announcing 198.51.100.1 from node node1 on interface eth0"
        );
        assert!(node_assigned_note("node1", &[ip], &[]).contains("no interface"));
        assert!(
            node_assigned_note("node1", &[ip], &["eth0".into(), "eth1".into()])
                .ends_with("interfaces eth0, eth1")
        );
    }
}
