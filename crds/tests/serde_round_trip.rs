//! The types read and write the same JSON the API server stores: camelCase names (with
//! MetalLB's `IPv4`/`IPv6` spellings), defaults for missing fields, nulls tolerated.

use ironlb_crds::address::Family;
use ironlb_crds::v1beta1::{
    IPAddressPool, IPAddressPoolSpec, IPAddressPoolStatus, InterfaceInfo, L2Advertisement,
    ServiceL2Status, ServiceL2StatusStatus,
};
use kube::Resource;
use serde_json::{Value, json};

/// A MetalLB manifest with only the apiVersion changed, as a migrating user would write it.
const MIGRATED_POOL: &str = r#"
apiVersion: ironlb.io/v1beta1
kind: IPAddressPool
metadata:
  name: production
  namespace: ironlb-system
spec:
  addresses:
  - 192.0.2.240-192.0.2.250
  - 2001:db8::/120
  autoAssign: false
  avoidBuggyIPs: true
  serviceAllocation:
    priority: 50
    namespaces:
    - web
    namespaceSelectors:
    - matchLabels:
        team: a
    serviceSelectors:
    - matchExpressions:
      - key: expose
        operator: In
        values: [public]
"#;

#[test]
fn migrated_metallb_pool_reads_every_field() {
    let pool: IPAddressPool = serde_yaml::from_str(MIGRATED_POOL).unwrap();
    assert_eq!(pool.metadata.name.as_deref(), Some("production"));
    let spec = &pool.spec;
    assert_eq!(
        spec.addresses,
        ["192.0.2.240-192.0.2.250", "2001:db8::/120"]
    );
    assert!(!spec.auto_assign);
    assert!(spec.avoid_buggy_ips);
    let alloc = spec.service_allocation.as_ref().unwrap();
    assert_eq!(alloc.priority, 50);
    assert_eq!(alloc.namespaces, ["web"]);
    assert_eq!(alloc.namespace_selectors.len(), 1);
    let expr = &alloc.service_selectors[0]
        .match_expressions
        .as_ref()
        .unwrap()[0];
    assert_eq!(
        (expr.key.as_str(), expr.operator.as_str()),
        ("expose", "In")
    );
}

#[test]
fn pool_round_trips_with_camel_case_names() {
    let pool: IPAddressPool = serde_yaml::from_str(MIGRATED_POOL).unwrap();
    let json = serde_json::to_value(&pool).unwrap();
    let spec = &json["spec"];
    assert_eq!(spec["autoAssign"], json!(false));
    assert_eq!(spec["avoidBuggyIPs"], json!(true));
    assert_eq!(
        spec["serviceAllocation"]["namespaceSelectors"][0]["matchLabels"]["team"],
        json!("a")
    );
    assert_eq!(
        spec["serviceAllocation"]["serviceSelectors"][0]["matchExpressions"][0]["key"],
        json!("expose")
    );
    let back: IPAddressPool = serde_json::from_value(json).unwrap();
    assert_eq!(back, pool);
}

#[test]
fn missing_fields_take_their_defaults() {
    let pool: IPAddressPool = serde_json::from_value(json!({
        "apiVersion": "ironlb.io/v1beta1",
        "kind": "IPAddressPool",
        "metadata": {"name": "p"},
        "spec": {"addresses": ["192.0.2.0/24"], "serviceAllocation": {}}
    }))
    .unwrap();
    assert!(pool.spec.auto_assign, "autoAssign defaults to true");
    assert!(
        !pool.spec.avoid_buggy_ips,
        "avoidBuggyIPs defaults to false"
    );
    let alloc = pool.spec.service_allocation.unwrap();
    assert_eq!(alloc.priority, 0);
    assert!(alloc.namespaces.is_empty());
    assert!(alloc.namespace_selectors.is_empty() && alloc.service_selectors.is_empty());
    assert_eq!(pool.status, None);
}

#[test]
fn nulls_read_as_defaults() {
    let spec: IPAddressPoolSpec = serde_json::from_value(json!({
        "addresses": ["192.0.2.0/24"],
        "autoAssign": null,
        "avoidBuggyIPs": null,
        "serviceAllocation": {"priority": null, "namespaces": null, "namespaceSelectors": null, "serviceSelectors": null}
    }))
    .unwrap();
    assert!(spec.auto_assign);
    assert!(!spec.avoid_buggy_ips);
    assert_eq!(spec.service_allocation.unwrap().priority, 0);
    let status: IPAddressPoolStatus =
        serde_json::from_value(json!({"assigned": null, "conditions": null})).unwrap();
    assert_eq!(status, IPAddressPoolStatus::default());
    let ad: L2Advertisement = serde_json::from_value(json!({
        "apiVersion": "ironlb.io/v1beta1", "kind": "L2Advertisement", "metadata": {"name": "a"},
        "spec": {"ipAddressPools": null, "interfaces": null, "nodeSelectors": null}
    }))
    .unwrap();
    assert!(ad.spec.ip_address_pools.is_empty() && ad.spec.interfaces.is_empty());
}

#[test]
fn unknown_fields_from_newer_versions_are_ignored() {
    let spec: IPAddressPoolSpec =
        serde_json::from_value(json!({"addresses": ["192.0.2.1"], "futureField": 1})).unwrap();
    assert_eq!(spec.addresses, ["192.0.2.1"]);
}

#[test]
fn wrongly_typed_fields_are_errors_not_panics() {
    for bad in [
        json!({"addresses": "192.0.2.0/24"}),
        json!({"addresses": [1]}),
        json!({"addresses": ["192.0.2.0/24"], "autoAssign": "yes"}),
        json!({"addresses": ["192.0.2.0/24"], "serviceAllocation": {"priority": "high"}}),
        json!({"addresses": ["192.0.2.0/24"], "serviceAllocation": {"priority": 3_000_000_000u64}}),
        json!({}),
    ] {
        assert!(
            serde_json::from_value::<IPAddressPoolSpec>(bad.clone()).is_err(),
            "{bad}"
        );
    }
}

#[test]
fn pool_status_uses_metallb_field_names() {
    let mut status = IPAddressPoolStatus::default();
    status.set_counts(Family::V4, 3, 8);
    status.set_counts(Family::V6, 1, 1u128 << 64);
    let json = serde_json::to_value(&status).unwrap();
    assert_eq!(
        json,
        json!({
            "assigned": 4,
            "available": i64::MAX,
            "assignedIPv4": 3,
            "assignedIPv6": 1,
            "availableIPv4": 8,
            "availableIPv6": i64::MAX,
        })
    );
    assert_eq!(
        serde_json::from_value::<IPAddressPoolStatus>(json).unwrap(),
        status
    );
}

#[test]
fn l2_advertisement_round_trips() {
    let yaml = r#"
apiVersion: ironlb.io/v1beta1
kind: L2Advertisement
metadata: {name: l2, namespace: ironlb-system}
spec:
  ipAddressPools: [production]
  ipAddressPoolSelectors: [{matchLabels: {tier: gold}}]
  nodeSelectors: [{matchLabels: {kubernetes.io/hostname: node1}}]
  serviceSelectors: [{matchLabels: {expose: l2}}]
  interfaces: [eth0]
"#;
    let ad: L2Advertisement = serde_yaml::from_str(yaml).unwrap();
    assert_eq!(ad.spec.ip_address_pools, ["production"]);
    assert_eq!(ad.spec.interfaces, ["eth0"]);
    let json = serde_json::to_value(&ad).unwrap();
    for key in [
        "ipAddressPools",
        "ipAddressPoolSelectors",
        "nodeSelectors",
        "serviceSelectors",
        "interfaces",
    ] {
        assert!(json["spec"].get(key).is_some(), "{key}");
    }
    assert_eq!(serde_json::from_value::<L2Advertisement>(json).unwrap(), ad);
    // An empty advertisement writes an empty spec, not a list of empty lists.
    let empty = L2Advertisement::new("all", Default::default());
    assert_eq!(serde_json::to_value(&empty).unwrap()["spec"], json!({}));
}

#[test]
fn service_l2_status_round_trips() {
    let mut obj = ServiceL2Status::new("l2-web", Default::default());
    obj.status = Some(ServiceL2StatusStatus {
        node: "node1".into(),
        service_name: "web".into(),
        service_namespace: "default".into(),
        ips: vec!["192.0.2.240".into()],
        interfaces: vec![InterfaceInfo {
            name: "eth0".into(),
        }],
    });
    let json = serde_json::to_value(&obj).unwrap();
    assert_eq!(json["apiVersion"], json!("ironlb.io/v1beta1"));
    assert_eq!(json["kind"], json!("ServiceL2Status"));
    assert_eq!(json["spec"], json!({}));
    assert_eq!(
        json["status"],
        json!({
            "node": "node1",
            "serviceName": "web",
            "serviceNamespace": "default",
            "ips": ["192.0.2.240"],
            "interfaces": [{"name": "eth0"}],
        })
    );
    assert_eq!(
        serde_json::from_value::<ServiceL2Status>(json).unwrap(),
        obj
    );
}

#[test]
fn kinds_know_their_api_coordinates() {
    assert_eq!(IPAddressPool::api_version(&()), "ironlb.io/v1beta1");
    assert_eq!(IPAddressPool::plural(&()), "ipaddresspools");
    assert_eq!(L2Advertisement::plural(&()), "l2advertisements");
    assert_eq!(ServiceL2Status::plural(&()), "servicel2statuses");
    let value: Value = serde_json::to_value(IPAddressPool::new(
        "p",
        IPAddressPoolSpec {
            addresses: vec!["192.0.2.0/24".into()],
            auto_assign: true,
            avoid_buggy_ips: false,
            service_allocation: None,
        },
    ))
    .unwrap();
    assert_eq!(
        value["spec"],
        json!({"addresses": ["192.0.2.0/24"], "autoAssign": true, "avoidBuggyIPs": false})
    );
}
