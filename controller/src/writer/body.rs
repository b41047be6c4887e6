//! The bodies of our server-side apply requests.
//!
//! Each body names only the fields the controller owns, with `apiVersion` and `kind`, so that
//! applying it with our field manager sets exactly those fields and removes the ones we owned
//! before and no longer send (that is how a status or an annotation is cleared).

use ironlb_crds::annotations::IP_ALLOCATED_FROM_POOL;
use serde_json::{Map, Value, json};

use crate::allocator::ServiceKey;
use crate::brain::{Ingress, PoolStatusWrite, StatusWrite};

/// The status apply for a Service. `with_ip_mode` false drops `ipMode` for servers that lack
/// it. A clear sends no `status` at all.
pub fn service_status(key: &ServiceKey, write: &StatusWrite, with_ip_mode: bool) -> Value {
    let mut body = service_stub(key);
    if let StatusWrite::Set(entries) = write {
        let ingress: Vec<Value> = entries.iter().map(|i| ingress(i, with_ip_mode)).collect();
        body["status"] = json!({ "loadBalancer": { "ingress": ingress } });
    }
    body
}

fn ingress(entry: &Ingress, with_ip_mode: bool) -> Value {
    let mut value = Map::new();
    value.insert("ip".into(), Value::String(entry.ip.to_string()));
    if with_ip_mode && let Some(mode) = entry.ip_mode {
        value.insert("ipMode".into(), Value::String(mode.as_str().into()));
    }
    Value::Object(value)
}

/// The merge patch that removes ingress entries another field manager wrote (used only after
/// a clear of a Service that is ours alone).
pub fn drop_ingress() -> Value {
    json!({ "status": { "loadBalancer": { "ingress": null } } })
}

/// The apply of the `ip-allocated-from-pool` annotation; `None` sends none, which removes ours.
pub fn pool_annotation(key: &ServiceKey, pool: Option<&str>) -> Value {
    let mut body = service_stub(key);
    if let Some(pool) = pool {
        body["metadata"]["annotations"] = json!({ IP_ALLOCATED_FROM_POOL: pool });
    }
    body
}

/// The status apply for an IPAddressPool.
pub fn pool_status(
    namespace: &str,
    name: &str,
    status: &PoolStatusWrite,
    now: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time,
) -> Value {
    json!({
        "apiVersion": "ironlb.io/v1beta1",
        "kind": "IPAddressPool",
        "metadata": { "name": name, "namespace": namespace },
        "status": status.to_status(now),
    })
}

fn service_stub(key: &ServiceKey) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": { "name": key.name, "namespace": key.namespace },
    })
}

/// Cuts an Event note to the API's 1 kB limit, on a character boundary.
pub fn event_note(note: &str) -> String {
    const MAX: usize = 1024;
    if note.len() <= MAX {
        return note.to_string();
    }
    let mut end = MAX - "...".len();
    while !note.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &note[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use ironlb_crds::annotations::IpMode;

    fn key() -> ServiceKey {
        ServiceKey::new("shop", "web")
    }

    #[test]
    fn status_body_lists_ingress_in_order_with_ip_mode() {
        let write = StatusWrite::Set(vec![
            Ingress {
                ip: "2001:db8::5".parse().unwrap(),
                ip_mode: Some(IpMode::Vip),
            },
            Ingress {
                ip: "198.51.100.5".parse().unwrap(),
                ip_mode: Some(IpMode::Vip),
            },
        ]);
        assert_eq!(
            service_status(&key(), &write, true),
            json!({
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "web", "namespace": "shop"},
                "status": {"loadBalancer": {"ingress": [
                    {"ip": "2001:db8::5", "ipMode": "VIP"},
                    {"ip": "198.51.100.5", "ipMode": "VIP"}
                ]}}
            })
        );
        assert_eq!(
            service_status(&key(), &write, false)["status"]["loadBalancer"]["ingress"][0],
            json!({"ip": "2001:db8::5"})
        );
    }

    #[test]
    fn a_clear_sends_no_status() {
        let body = service_status(&key(), &StatusWrite::Clear { exclusive: true }, true);
        assert_eq!(
            body,
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "shop"}})
        );
    }

    #[test]
    fn annotation_bodies() {
        assert_eq!(
            pool_annotation(&key(), Some("gold"))["metadata"]["annotations"],
            json!({"ironlb.io/ip-allocated-from-pool": "gold"})
        );
        assert!(
            pool_annotation(&key(), None)["metadata"]
                .get("annotations")
                .is_none()
        );
    }

    #[test]
    fn long_notes_are_cut_on_a_char_boundary() {
        assert_eq!(event_note("short"), "short");
        let long = "é".repeat(1000);
        let cut = event_note(&long);
        assert!(cut.len() <= 1024);
        assert!(cut.ends_with("..."));
    }
}
