//! What the API server accepts and rejects, field by field, judged against the generated CRD
//! schemas (OpenAPI keywords and CEL rules). Every field a user can write has malformed values
//! here, and each table also holds a valid object so that a rejection is never vacuous.

mod support;

use serde_json::{Value, json};
use support::openapi::rejections;

/// Applies `patch` (a JSON merge patch) to `base`.
fn with(base: &Value, patch: Value) -> Value {
    let mut out = base.clone();
    merge(&mut out, patch);
    out
}

fn merge(target: &mut Value, patch: Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(&k);
                } else {
                    merge(t.entry(k).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p,
    }
}

fn pool(spec: Value) -> Value {
    json!({
        "apiVersion": "ironlb.io/v1beta1",
        "kind": "IPAddressPool",
        "metadata": {"name": "p", "namespace": "ironlb-system"},
        "spec": spec,
    })
}

fn assert_accepted(kind: &str, object: &Value) {
    let errors = rejections(kind, object);
    assert!(
        errors.is_empty(),
        "{kind} should be accepted: {errors:#?}\n{object:#}"
    );
}

/// Each case: a description, the object, and a fragment the rejection must mention.
fn assert_rejected_all(kind: &str, cases: Vec<(&str, Value, &str)>) {
    for (what, object, expect) in cases {
        let errors = rejections(kind, &object);
        assert!(
            errors.iter().any(|e| e.contains(expect)),
            "{kind}: {what}: expected a rejection mentioning {expect:?}, got {errors:#?}"
        );
    }
}

fn selector_cases<'a>(field: &str, wrap: impl Fn(Value) -> Value) -> Vec<(&'a str, Value, String)> {
    let many_values: Vec<String> = (0..65).map(|i| format!("v{i}")).collect();
    let many_labels: serde_json::Map<String, Value> =
        (0..33).map(|i| (format!("k{i}"), json!("v"))).collect();
    let many_exprs: Vec<Value> = (0..17)
        .map(|i| json!({"key": format!("k{i}"), "operator": "Exists"}))
        .collect();
    let many_selectors: Vec<Value> = (0..17).map(|_| json!({})).collect();
    vec![
        (
            "not a list",
            wrap(json!({"matchLabels": {"a": "b"}})),
            format!("{field}: expected"),
        ),
        (
            "too many selectors",
            wrap(json!(many_selectors)),
            format!("{field}: more than 16"),
        ),
        (
            "bad label value",
            wrap(json!([{"matchLabels": {"app": "-web"}}])),
            "does not match".into(),
        ),
        (
            "too many labels",
            wrap(json!([{"matchLabels": many_labels}])),
            "more than 32 properties".into(),
        ),
        (
            "unknown operator",
            wrap(
                json!([{"matchExpressions": [{"key": "a", "operator": "Like", "values": ["x"]}]}]),
            ),
            "is not one of".into(),
        ),
        (
            "In without values",
            wrap(json!([{"matchExpressions": [{"key": "a", "operator": "In"}]}])),
            "operators In and NotIn need at least one value".into(),
        ),
        (
            "NotIn with empty values",
            wrap(json!([{"matchExpressions": [{"key": "a", "operator": "NotIn", "values": []}]}])),
            "operators In and NotIn need at least one value".into(),
        ),
        (
            "Exists with values",
            wrap(
                json!([{"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}]),
            ),
            "Exists and DoesNotExist take none".into(),
        ),
        (
            "bad key",
            wrap(json!([{"matchExpressions": [{"key": "bad key", "operator": "Exists"}]}])),
            "does not match".into(),
        ),
        (
            "missing operator",
            wrap(json!([{"matchExpressions": [{"key": "a"}]}])),
            "operator: required".into(),
        ),
        (
            "too many expressions",
            wrap(json!([{"matchExpressions": many_exprs}])),
            "more than 16 items".into(),
        ),
        (
            "too many values",
            wrap(
                json!([{"matchExpressions": [{"key": "a", "operator": "In", "values": many_values}]}]),
            ),
            "more than 64 items".into(),
        ),
        (
            "bad value",
            wrap(
                json!([{"matchExpressions": [{"key": "a", "operator": "In", "values": ["not valid"]}]}]),
            ),
            "does not match".into(),
        ),
        (
            "unknown selector field",
            wrap(json!([{"matchLabel": {"a": "b"}}])),
            "unknown field".into(),
        ),
    ]
}

#[test]
fn ip_address_pool_valid_objects() {
    assert_accepted(
        "IPAddressPool",
        &pool(json!({"addresses": ["192.0.2.240-192.0.2.250"]})),
    );
    assert_accepted(
        "IPAddressPool",
        &pool(json!({
            "addresses": ["192.0.2.0/24", "2001:db8::/64", "198.51.100.7", "2001:db8:1::1-2001:db8:1::ff"],
            "autoAssign": false,
            "avoidBuggyIPs": true,
            "serviceAllocation": {
                "priority": 10,
                "namespaces": ["web", "team-a"],
                "namespaceSelectors": [{"matchLabels": {"team": "a"}}],
                "serviceSelectors": [{"matchExpressions": [
                    {"key": "ironlb.io/expose", "operator": "In", "values": ["public", ""]},
                    {"key": "internal", "operator": "DoesNotExist"}
                ]}]
            }
        })),
    );
    let status = with(
        &pool(json!({"addresses": ["192.0.2.0/24"]})),
        json!({"status": {
            "assigned": 1, "available": 255, "assignedIPv4": 1, "availableIPv4": 255,
            "assignedIPv6": 0, "availableIPv6": i64::MAX,
            "conditions": [
                {"type": "Ready", "status": "True", "reason": "Ready", "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"},
                {"type": "Invalid", "status": "False", "reason": "Valid", "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}
            ]
        }}),
    );
    assert_accepted("IPAddressPool", &status);
}

#[test]
fn ip_address_pool_malformed_values_are_rejected() {
    let base = pool(json!({"addresses": ["192.0.2.0/24"]}));
    let spec = |patch: Value| with(&base, json!({"spec": patch}));
    let too_many: Vec<String> = (0..1025).map(|i| format!("2001:db8::{i:x}")).collect();
    let mut cases: Vec<(&str, Value, String)> = vec![
        (
            "no spec",
            with(&base, json!({"spec": null})),
            ".spec: required".into(),
        ),
        (
            "no addresses",
            pool(json!({})),
            ".spec.addresses: required".into(),
        ),
        (
            "empty addresses",
            spec(json!({"addresses": []})),
            "fewer than 1 items".into(),
        ),
        (
            "addresses not a list",
            spec(json!({"addresses": "192.0.2.0/24"})),
            "expected".into(),
        ),
        (
            "address not a string",
            spec(json!({"addresses": [5]})),
            "expected".into(),
        ),
        (
            "too many addresses",
            spec(json!({"addresses": too_many})),
            "more than 1024 items".into(),
        ),
        (
            "duplicate address",
            spec(json!({"addresses": ["192.0.2.1", "192.0.2.1"]})),
            "duplicate value".into(),
        ),
        (
            "autoAssign not a bool",
            spec(json!({"autoAssign": "yes"})),
            ".spec.autoAssign: expected".into(),
        ),
        (
            "avoidBuggyIPs not a bool",
            spec(json!({"avoidBuggyIPs": 1})),
            ".spec.avoidBuggyIPs: expected".into(),
        ),
        (
            "unknown spec field",
            spec(json!({"autoassign": true})),
            ".spec.autoassign: unknown field".into(),
        ),
        (
            "serviceAllocation not an object",
            spec(json!({"serviceAllocation": []})),
            "expected".into(),
        ),
        (
            "negative priority",
            spec(json!({"serviceAllocation": {"priority": -1}})),
            "below the minimum 0".into(),
        ),
        (
            "priority not a number",
            spec(json!({"serviceAllocation": {"priority": "high"}})),
            "priority: expected".into(),
        ),
        (
            "fractional priority",
            spec(json!({"serviceAllocation": {"priority": 1.5}})),
            "priority: expected".into(),
        ),
        (
            "namespace with capitals",
            spec(json!({"serviceAllocation": {"namespaces": ["Web"]}})),
            "does not match".into(),
        ),
        (
            "namespace with underscore",
            spec(json!({"serviceAllocation": {"namespaces": ["a_b"]}})),
            "does not match".into(),
        ),
        (
            "empty namespace",
            spec(json!({"serviceAllocation": {"namespaces": [""]}})),
            "shorter than 1".into(),
        ),
        (
            "long namespace",
            spec(json!({"serviceAllocation": {"namespaces": ["a".repeat(64)]}})),
            "longer than 63".into(),
        ),
        (
            "duplicate namespace",
            spec(json!({"serviceAllocation": {"namespaces": ["a", "a"]}})),
            "duplicate value".into(),
        ),
        (
            "too many namespaces",
            spec(
                json!({"serviceAllocation": {"namespaces": (0..257).map(|i| format!("n{i}")).collect::<Vec<_>>()}}),
            ),
            "more than 256 items".into(),
        ),
    ];
    for entry in [
        "",
        "banana",
        " 192.0.2.1",
        "192.0.2.1 - 192.0.2.5",
        "192.0.2.256",
        "192.0.2",
        "192.0.2.01",
        "192.0.2.0/33",
        "192.0.2.0/",
        "2001:db8::/129",
        "192.0.2.1-2001:db8::1",
        "2001:db8::1-192.0.2.1",
        "2001:db8::g",
        "fe80::1%eth0",
    ] {
        cases.push((
            "malformed address",
            spec(json!({"addresses": [entry]})),
            ".spec.addresses[0]".into(),
        ));
    }
    cases.push((
        "overlong address",
        spec(json!({"addresses": [format!("2001:db8::1-{}", "0".repeat(90))]})),
        "longer than 91".into(),
    ));
    for field in ["namespaceSelectors", "serviceSelectors"] {
        for (what, object, expect) in selector_cases(field, |sel| {
            spec(json!({"serviceAllocation": {field: sel}}))
        }) {
            cases.push((what, object, expect));
        }
    }
    cases.push((
        "negative status count",
        with(&base, json!({"status": {"assigned": -1}})),
        "below the minimum 0".into(),
    ));
    cases.push((
        "duplicate condition type",
        with(&base, json!({"status": {"conditions": [
            {"type": "Ready", "status": "True", "reason": "Ready", "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"},
            {"type": "Ready", "status": "False", "reason": "Ready", "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}
        ]}})),
        "duplicate entry".into(),
    ));
    cases.push((
        "condition without reason",
        with(&base, json!({"status": {"conditions": [
            {"type": "Ready", "status": "True", "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}
        ]}})),
        "reason: required".into(),
    ));
    assert_rejected_all(
        "IPAddressPool",
        cases
            .iter()
            .map(|(w, o, e)| (*w, o.clone(), e.as_str()))
            .collect(),
    );
}

fn advertisement(spec: Value) -> Value {
    json!({
        "apiVersion": "ironlb.io/v1beta1",
        "kind": "L2Advertisement",
        "metadata": {"name": "l2", "namespace": "ironlb-system"},
        "spec": spec,
    })
}

#[test]
fn l2_advertisement_valid_objects() {
    assert_accepted("L2Advertisement", &advertisement(json!({})));
    assert_accepted(
        "L2Advertisement",
        &advertisement(json!({
            "ipAddressPools": ["gold", "silver.v2"],
            "ipAddressPoolSelectors": [{"matchLabels": {"tier": "bronze"}}],
            "nodeSelectors": [{"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "NotIn", "values": ["node3"]}]}],
            "serviceSelectors": [{}],
            "interfaces": ["eth0", "br-lan", "veth.1", "..."]
        })),
    );
}

#[test]
fn l2_advertisement_malformed_values_are_rejected() {
    let spec = |patch: Value| advertisement(patch);
    let mut cases: Vec<(&str, Value, String)> = vec![
        (
            "pool name with capitals",
            spec(json!({"ipAddressPools": ["Gold"]})),
            "does not match".into(),
        ),
        (
            "empty pool name",
            spec(json!({"ipAddressPools": [""]})),
            "shorter than 1".into(),
        ),
        (
            "long pool name",
            spec(json!({"ipAddressPools": ["a".repeat(254)]})),
            "longer than 253".into(),
        ),
        (
            "duplicate pool",
            spec(json!({"ipAddressPools": ["a", "a"]})),
            "duplicate value".into(),
        ),
        (
            "too many pools",
            spec(json!({"ipAddressPools": (0..257).map(|i| format!("p{i}")).collect::<Vec<_>>()})),
            "more than 256 items".into(),
        ),
        (
            "pools not a list",
            spec(json!({"ipAddressPools": "gold"})),
            "expected".into(),
        ),
        (
            "interface alias",
            spec(json!({"interfaces": ["eth0:1"]})),
            "does not match".into(),
        ),
        (
            "interface with slash",
            spec(json!({"interfaces": ["a/b"]})),
            "does not match".into(),
        ),
        (
            "interface with space",
            spec(json!({"interfaces": ["eth 0"]})),
            "does not match".into(),
        ),
        (
            "interface non-ASCII",
            spec(json!({"interfaces": ["ethé"]})),
            "does not match".into(),
        ),
        (
            "interface dot",
            spec(json!({"interfaces": ["."]})),
            "'.' and '..' are not interface names".into(),
        ),
        (
            "interface dot dot",
            spec(json!({"interfaces": [".."]})),
            "'.' and '..' are not interface names".into(),
        ),
        (
            "long interface",
            spec(json!({"interfaces": ["averyveryverylongname"]})),
            "longer than 15".into(),
        ),
        (
            "empty interface",
            spec(json!({"interfaces": [""]})),
            "shorter than 1".into(),
        ),
        (
            "duplicate interface",
            spec(json!({"interfaces": ["eth0", "eth0"]})),
            "duplicate value".into(),
        ),
        (
            "too many interfaces",
            spec(json!({"interfaces": (0..33).map(|i| format!("eth{i}")).collect::<Vec<_>>()})),
            "more than 32 items".into(),
        ),
        (
            "unknown field",
            spec(json!({"interface": ["eth0"]})),
            "unknown field".into(),
        ),
    ];
    for field in [
        "ipAddressPoolSelectors",
        "nodeSelectors",
        "serviceSelectors",
    ] {
        for (what, object, expect) in selector_cases(field, |sel| spec(json!({field: sel}))) {
            cases.push((what, object, expect));
        }
    }
    assert_rejected_all(
        "L2Advertisement",
        cases
            .iter()
            .map(|(w, o, e)| (*w, o.clone(), e.as_str()))
            .collect(),
    );
}

fn l2_status(status: Value) -> Value {
    json!({
        "apiVersion": "ironlb.io/v1beta1",
        "kind": "ServiceL2Status",
        "metadata": {"name": "l2-web", "namespace": "ironlb-system"},
        "spec": {},
        "status": status,
    })
}

#[test]
fn service_l2_status_valid_objects() {
    assert_accepted(
        "ServiceL2Status",
        &l2_status(json!({
            "node": "node1.example",
            "serviceName": "web",
            "serviceNamespace": "default",
            "ips": ["192.0.2.240", "2001:db8::f0"],
            "interfaces": [{"name": "eth0"}]
        })),
    );
    assert_accepted("ServiceL2Status", &l2_status(json!({})));
}

#[test]
fn service_l2_status_malformed_values_are_rejected() {
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "three IPs",
            l2_status(json!({"ips": ["192.0.2.1", "2001:db8::1", "198.51.100.1"]})),
            "more than 2 items",
        ),
        (
            "two IPv4",
            l2_status(json!({"ips": ["192.0.2.1", "192.0.2.2"]})),
            "at most one IPv4 and one IPv6 address",
        ),
        (
            "two IPv6",
            l2_status(json!({"ips": ["2001:db8::1", "2001:db8::2"]})),
            "at most one IPv4 and one IPv6 address",
        ),
        (
            "garbage IP",
            l2_status(json!({"ips": ["banana"]})),
            "does not match",
        ),
        (
            "bad IPv4",
            l2_status(json!({"ips": ["192.0.2.256"]})),
            "does not match",
        ),
        (
            "CIDR as IP",
            l2_status(json!({"ips": ["192.0.2.0/24"]})),
            "does not match",
        ),
        (
            "bad node name",
            l2_status(json!({"node": "Node_1"})),
            "does not match",
        ),
        (
            "bad service name",
            l2_status(json!({"serviceName": "Web"})),
            "does not match",
        ),
        (
            "long namespace",
            l2_status(json!({"serviceNamespace": "a".repeat(64)})),
            "longer than 63",
        ),
        (
            "bad interface",
            l2_status(json!({"interfaces": [{"name": "eth0:1"}]})),
            "does not match",
        ),
        (
            "interface without name",
            l2_status(json!({"interfaces": [{}]})),
            "name: required",
        ),
        (
            "interface as string",
            l2_status(json!({"interfaces": ["eth0"]})),
            "expected",
        ),
        (
            "spec with fields",
            with(&l2_status(json!({})), json!({"spec": {"node": "x"}})),
            "unknown field",
        ),
    ];
    assert_rejected_all("ServiceL2Status", cases);
}
