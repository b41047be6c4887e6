//! The validations we declare must be in the generated CRDs, and must install on Kubernetes
//! 1.27. A refactor that drops a bound, a pattern or a CEL rule fails here.

// Only the schema lookup of the shared support is used here.
#[allow(dead_code)]
mod support;

use ironlb_crds::generate::crds;
use ironlb_crds::names::{
    DNS1123_LABEL_PATTERN, DNS1123_SUBDOMAIN_PATTERN, INTERFACE_NAME_PATTERN, LABEL_KEY_PATTERN,
    LABEL_VALUE_PATTERN,
};
use ironlb_crds::schema::{
    INTERFACE_NAME_RULE, ONE_IP_PER_FAMILY_RULE, REQUIREMENT_VALUES_RULE, address_entry_pattern,
    ip_pattern,
};
use kube_cel::{ScopeContext, WarningKind, analyze_rule, compile_schema};
use serde_json::{Value, json};
use support::openapi::schema_of;

fn at<'a>(schema: &'a Value, pointer: &str) -> &'a Value {
    schema
        .pointer(pointer)
        .unwrap_or_else(|| panic!("schema has nothing at {pointer}"))
}

fn rules_at(schema: &Value, pointer: &str) -> Vec<String> {
    at(schema, pointer)["x-kubernetes-validations"]
        .as_array()
        .unwrap_or_else(|| panic!("no CEL rules at {pointer}"))
        .iter()
        .map(|r| r["rule"].as_str().unwrap().to_string())
        .collect()
}

const SPEC: &str = "/properties/spec/properties";
const STATUS: &str = "/properties/status/properties";

/// Checks the bounds, patterns and rules every selector-list field carries.
fn assert_selector_list(schema: &Value, pointer: &str) {
    assert_eq!(
        at(schema, &format!("{pointer}/maxItems")),
        &json!(16),
        "{pointer}"
    );
    let sel = format!("{pointer}/items/properties");
    assert_eq!(
        at(schema, &format!("{sel}/matchLabels/maxProperties")),
        &json!(32)
    );
    assert_eq!(
        at(
            schema,
            &format!("{sel}/matchLabels/additionalProperties/pattern")
        ),
        &json!(LABEL_VALUE_PATTERN)
    );
    let expr = format!("{sel}/matchExpressions");
    assert_eq!(at(schema, &format!("{expr}/maxItems")), &json!(16));
    assert_eq!(
        rules_at(schema, &format!("{expr}/items")),
        [REQUIREMENT_VALUES_RULE]
    );
    let fields = format!("{expr}/items/properties");
    assert_eq!(
        at(schema, &format!("{fields}/key/pattern")),
        &json!(LABEL_KEY_PATTERN)
    );
    assert_eq!(at(schema, &format!("{fields}/key/maxLength")), &json!(317));
    assert_eq!(
        at(schema, &format!("{fields}/operator/enum")),
        &json!(["In", "NotIn", "Exists", "DoesNotExist"])
    );
    assert_eq!(at(schema, &format!("{fields}/values/maxItems")), &json!(64));
    assert_eq!(
        at(schema, &format!("{fields}/values/items/pattern")),
        &json!(LABEL_VALUE_PATTERN)
    );
}

#[test]
fn ip_address_pool_schema_declares_its_validations() {
    let s = schema_of("IPAddressPool");
    let addresses = format!("{SPEC}/addresses");
    assert_eq!(at(&s, "/properties/spec/required"), &json!(["addresses"]));
    assert_eq!(at(&s, &format!("{addresses}/minItems")), &json!(1));
    assert_eq!(at(&s, &format!("{addresses}/maxItems")), &json!(1024));
    assert_eq!(
        at(&s, &format!("{addresses}/x-kubernetes-list-type")),
        &json!("set")
    );
    assert_eq!(at(&s, &format!("{addresses}/items/maxLength")), &json!(91));
    assert_eq!(
        at(&s, &format!("{addresses}/items/pattern")),
        &json!(address_entry_pattern())
    );
    assert_eq!(at(&s, &format!("{SPEC}/autoAssign/default")), &json!(true));
    assert_eq!(
        at(&s, &format!("{SPEC}/avoidBuggyIPs/default")),
        &json!(false)
    );
    let alloc = format!("{SPEC}/serviceAllocation/properties");
    assert_eq!(at(&s, &format!("{alloc}/priority/minimum")), &json!(0.0));
    assert_eq!(at(&s, &format!("{alloc}/namespaces/maxItems")), &json!(256));
    assert_eq!(
        at(&s, &format!("{alloc}/namespaces/items/pattern")),
        &json!(DNS1123_LABEL_PATTERN)
    );
    assert_eq!(
        at(&s, &format!("{alloc}/namespaces/items/maxLength")),
        &json!(63)
    );
    assert_selector_list(&s, &format!("{alloc}/namespaceSelectors"));
    assert_selector_list(&s, &format!("{alloc}/serviceSelectors"));
    for count in [
        "assigned",
        "available",
        "assignedIPv4",
        "assignedIPv6",
        "availableIPv4",
        "availableIPv6",
    ] {
        assert_eq!(
            at(&s, &format!("{STATUS}/{count}/minimum")),
            &json!(0.0),
            "{count}"
        );
        assert_eq!(
            at(&s, &format!("{STATUS}/{count}/format")),
            &json!("int64"),
            "{count}"
        );
    }
    let conditions = format!("{STATUS}/conditions");
    assert_eq!(
        at(&s, &format!("{conditions}/x-kubernetes-list-type")),
        &json!("map")
    );
    assert_eq!(
        at(&s, &format!("{conditions}/x-kubernetes-list-map-keys")),
        &json!(["type"])
    );
    assert_eq!(at(&s, &format!("{conditions}/maxItems")), &json!(16));
}

#[test]
fn l2_advertisement_schema_declares_its_validations() {
    let s = schema_of("L2Advertisement");
    let pools = format!("{SPEC}/ipAddressPools");
    assert_eq!(
        at(&s, &format!("{pools}/items/pattern")),
        &json!(DNS1123_SUBDOMAIN_PATTERN)
    );
    assert_eq!(at(&s, &format!("{pools}/items/maxLength")), &json!(253));
    assert_eq!(at(&s, &format!("{pools}/maxItems")), &json!(256));
    assert_eq!(
        at(&s, &format!("{pools}/x-kubernetes-list-type")),
        &json!("set")
    );
    for field in [
        "ipAddressPoolSelectors",
        "nodeSelectors",
        "serviceSelectors",
    ] {
        assert_selector_list(&s, &format!("{SPEC}/{field}"));
    }
    let interfaces = format!("{SPEC}/interfaces");
    assert_eq!(
        at(&s, &format!("{interfaces}/items/pattern")),
        &json!(INTERFACE_NAME_PATTERN)
    );
    assert_eq!(at(&s, &format!("{interfaces}/items/maxLength")), &json!(15));
    assert_eq!(at(&s, &format!("{interfaces}/maxItems")), &json!(32));
    assert_eq!(rules_at(&s, &interfaces), [INTERFACE_NAME_RULE]);
}

#[test]
fn service_l2_status_schema_declares_its_validations() {
    let s = schema_of("ServiceL2Status");
    let ips = format!("{STATUS}/ips");
    assert_eq!(at(&s, &format!("{ips}/maxItems")), &json!(2));
    assert_eq!(
        at(&s, &format!("{ips}/items/pattern")),
        &json!(ip_pattern())
    );
    assert_eq!(rules_at(&s, &ips), [ONE_IP_PER_FAMILY_RULE]);
    assert_eq!(
        at(&s, &format!("{STATUS}/node/pattern")),
        &json!(DNS1123_SUBDOMAIN_PATTERN)
    );
    assert_eq!(
        at(&s, &format!("{STATUS}/serviceName/pattern")),
        &json!(DNS1123_LABEL_PATTERN)
    );
    assert_eq!(
        at(&s, &format!("{STATUS}/serviceNamespace/pattern")),
        &json!(DNS1123_LABEL_PATTERN)
    );
    assert_eq!(
        at(
            &s,
            &format!("{STATUS}/interfaces/items/properties/name/pattern")
        ),
        &json!(INTERFACE_NAME_PATTERN)
    );
}

#[test]
fn crd_metadata_names_columns_and_subresources() {
    let expected = [
        (
            "IPAddressPool",
            "ipaddresspools",
            true,
            vec!["Addresses", "Auto Assign", "Assigned", "Available", "Ready"],
        ),
        (
            "L2Advertisement",
            "l2advertisements",
            false,
            vec!["IPAddressPools", "IPAddressPool Selectors", "Interfaces"],
        ),
        (
            "ServiceL2Status",
            "servicel2statuses",
            true,
            vec!["Node", "Service Namespace", "Service Name", "IPs"],
        ),
    ];
    let crds = crds();
    assert_eq!(crds.len(), expected.len());
    for (crd, (kind, plural, has_status, columns)) in crds.iter().zip(expected) {
        assert_eq!(crd.spec.names.kind, kind);
        assert_eq!(crd.spec.names.plural, plural);
        assert_eq!(
            crd.metadata.name.as_deref(),
            Some(format!("{plural}.ironlb.io").as_str())
        );
        assert_eq!(crd.spec.group, "ironlb.io");
        assert_eq!(crd.spec.scope, "Namespaced");
        assert_eq!(
            crd.spec.names.categories.as_deref(),
            Some(&["ironlb".to_string()][..])
        );
        let version = &crd.spec.versions[0];
        assert_eq!(version.name, "v1beta1");
        assert!(version.served && version.storage);
        assert_eq!(
            version
                .subresources
                .as_ref()
                .and_then(|s| s.status.as_ref())
                .is_some(),
            has_status,
            "{kind} status subresource"
        );
        let shown: Vec<&str> = version
            .additional_printer_columns
            .iter()
            .flatten()
            .filter(|c| c.priority.unwrap_or(0) == 0)
            .map(|c| c.name.as_str())
            .collect();
        for column in columns {
            assert!(
                shown.contains(&column),
                "{kind} lacks column {column}: {shown:?}"
            );
        }
        // selectableFields needs Kubernetes 1.30.
        assert!(version.selectable_fields.is_none(), "{kind}");
    }
}

/// Every CEL rule with the JSON pointer of the schema node that carries it.
fn all_rules(schema: &Value, pointer: String, out: &mut Vec<(String, Value)>) {
    let Some(object) = schema.as_object() else {
        return;
    };
    if let Some(rules) = object
        .get("x-kubernetes-validations")
        .and_then(Value::as_array)
    {
        for rule in rules {
            out.push((pointer.clone(), rule.clone()));
        }
    }
    for (key, child) in object {
        match key.as_str() {
            "properties" => {
                for (name, prop) in child.as_object().into_iter().flatten() {
                    all_rules(prop, format!("{pointer}/properties/{name}"), out);
                }
            }
            "items" | "additionalProperties" => all_rules(child, format!("{pointer}/{key}"), out),
            _ => {}
        }
    }
}

/// Fails unless every list and string in `schema` is bounded.
fn assert_bounded(schema: &Value, pointer: &str) {
    match schema.get("type").and_then(Value::as_str) {
        Some("array") => assert!(
            schema.get("maxItems").is_some(),
            "{pointer} has no maxItems"
        ),
        Some("string") if schema.get("enum").is_none() && schema.get("format").is_none() => {
            assert!(
                schema.get("maxLength").is_some(),
                "{pointer} has no maxLength"
            )
        }
        Some("object") if schema.get("additionalProperties").is_some() => {
            assert!(
                schema.get("maxProperties").is_some(),
                "{pointer} has no maxProperties"
            )
        }
        _ => {}
    }
    for (key, child) in schema.as_object().into_iter().flatten() {
        match key.as_str() {
            "properties" => {
                for (name, prop) in child.as_object().into_iter().flatten() {
                    // Free-text fields that no rule reads are allowed to be unbounded.
                    if !matches!(name.as_str(), "message" | "reason" | "type" | "status") {
                        assert_bounded(prop, &format!("{pointer}/{name}"));
                    }
                }
            }
            "items" | "additionalProperties" => assert_bounded(child, &format!("{pointer}/{key}")),
            _ => {}
        }
    }
}

/// Functions CRD validation gained after Kubernetes 1.27, which our rules must not use.
const NEWER_THAN_1_27: &[&str] = &[
    "ip(",
    "cidr(",
    "isIP",
    "isCIDR",
    "quantity(",
    "isQuantity",
    "format(",
    "sets.",
    "semver",
    "isSemver",
    ".reverse(",
    "strings.quote",
    "optMap",
    "orValue",
    "hasValue",
    "cel.bind",
];

#[test]
fn cel_rules_compile_are_cheap_and_install_on_1_27() {
    let mut count = 0;
    for crd in crds() {
        let kind = crd.spec.names.kind.clone();
        let schema = schema_of(&kind);
        let mut rules = Vec::new();
        all_rules(&schema, String::new(), &mut rules);
        for (pointer, rule) in rules {
            count += 1;
            let keys: Vec<&String> = rule.as_object().unwrap().keys().collect();
            assert_eq!(
                keys,
                ["message", "rule"],
                "{kind}{pointer}: 1.27 knows only rule and message"
            );
            let text = rule["rule"].as_str().unwrap();
            for newer in NEWER_THAN_1_27 {
                assert!(
                    !text.contains(newer),
                    "{kind}{pointer}: {text:?} uses {newer}"
                );
            }
            let node = schema.pointer(&pointer).unwrap();
            let compiled = compile_schema(node);
            assert!(
                !compiled.has_errors(),
                "{kind}{pointer}: {:?}",
                compiled.compilation_errors()
            );
            // kube-cel's scope check counts comprehension variables (`i` in `self.all(i, ...)`)
            // as unknown; evaluation in api_server_validation proves the rules' scope instead.
            let warnings: Vec<_> = analyze_rule(text, &compiled, ScopeContext::CrdValidation)
                .into_iter()
                .filter(|w| w.kind != WarningKind::WrongScope)
                .collect();
            assert!(warnings.is_empty(), "{kind}{pointer}: {warnings:?}");
            assert_bounded(node, &format!("{kind}{pointer}"));
        }
    }
    assert_eq!(
        count, 7,
        "rules found: one per selector list (5), interfaces, ips"
    );
}
