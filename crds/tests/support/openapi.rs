//! A small stand-in for the API server's validation of custom resources, enough to test our
//! generated schemas offline: the OpenAPI keywords our CRDs use (with strict field validation,
//! as `kubectl` requests by default) and the CEL rules, which `kube-cel` evaluates.

use std::collections::BTreeSet;

use ironlb_crds::generate::crds;
use kube_cel::{ErrorKind, Validator};
use regex::Regex;
use serde_json::Value;

/// The `openAPIV3Schema` of the CRD of `kind`, as JSON.
pub fn schema_of(kind: &str) -> Value {
    let crd = crds()
        .into_iter()
        .find(|c| c.spec.names.kind == kind)
        .unwrap_or_else(|| panic!("no CRD for {kind}"));
    let schema = crd.spec.versions[0]
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .expect("CRD has a schema");
    serde_json::to_value(schema).expect("schema serializes")
}

/// Every reason the API server would reject `object` (empty when it would accept it). Each
/// entry starts with the JSON path of the offending field.
pub fn rejections(kind: &str, object: &Value) -> Vec<String> {
    let schema = schema_of(kind);
    let mut errors = Vec::new();
    check(&schema, object, "", &mut errors);
    // Metadata, apiVersion and kind are validated by the API server itself, not our schema.
    if let Err(cel) = Validator::new().validate(&schema, object, None) {
        let schema_valid = errors.is_empty();
        for err in cel.into_vec() {
            // On a schema-valid object, a rule that cannot be evaluated is a broken rule, not a
            // rejection. (On an invalid one, say with a required field missing, the API server
            // rejects the object either way.)
            if schema_valid {
                assert_eq!(
                    err.kind,
                    ErrorKind::ValidationFailure,
                    "CEL rule {:?} could not be evaluated: {err}",
                    err.rule
                );
            }
            errors.push(format!("{err}"));
        }
    }
    errors
}

fn check(schema: &Value, value: &Value, path: &str, errors: &mut Vec<String>) {
    if value.is_null() {
        if schema.get("nullable") != Some(&Value::Bool(true)) {
            errors.push(format!("{path}: null is not allowed"));
        }
        return;
    }
    let type_ok = match schema.get("type").and_then(Value::as_str) {
        Some("object") => value.is_object(),
        Some("array") => value.is_array(),
        Some("string") => value.is_string(),
        Some("integer") => value.is_i64() || value.is_u64(),
        Some("number") => value.is_number(),
        Some("boolean") => value.is_boolean(),
        _ => true,
    };
    if !type_ok {
        errors.push(format!("{path}: expected {}", schema["type"]));
        return;
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        errors.push(format!("{path}: {value} is not one of {allowed:?}"));
    }
    match value {
        Value::String(s) => check_string(schema, s, path, errors),
        Value::Number(n) => {
            let n = n.as_f64().unwrap_or(f64::NAN);
            if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
                && n < min
            {
                errors.push(format!("{path}: {n} is below the minimum {min}"));
            }
            if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
                && n > max
            {
                errors.push(format!("{path}: {n} is above the maximum {max}"));
            }
        }
        Value::Array(items) => check_array(schema, items, path, errors),
        Value::Object(fields) => {
            for required in schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                if !fields.contains_key(required) {
                    errors.push(format!("{path}.{required}: required"));
                }
            }
            if let Some(max) = schema.get("maxProperties").and_then(Value::as_u64)
                && fields.len() as u64 > max
            {
                errors.push(format!("{path}: more than {max} properties"));
            }
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties");
            for (name, field) in fields {
                let field_path = format!("{path}.{name}");
                if let Some(sub) = properties.and_then(|p| p.get(name)) {
                    check(sub, field, &field_path, errors);
                } else if let Some(sub) = additional.filter(|a| a.is_object()) {
                    check(sub, field, &field_path, errors);
                } else if path.is_empty()
                    && matches!(name.as_str(), "apiVersion" | "kind" | "metadata")
                {
                    // Checked by the API server itself.
                } else {
                    errors.push(format!("{field_path}: unknown field"));
                }
            }
        }
        _ => {}
    }
}

fn check_string(schema: &Value, s: &str, path: &str, errors: &mut Vec<String>) {
    let len = s.chars().count() as u64;
    if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
        && len < min
    {
        errors.push(format!("{path}: shorter than {min}"));
    }
    if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
        && len > max
    {
        errors.push(format!("{path}: longer than {max}"));
    }
    if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
        let re = Regex::new(pattern).unwrap_or_else(|e| panic!("bad pattern {pattern}: {e}"));
        if !re.is_match(s) {
            errors.push(format!("{path}: {s:?} does not match {pattern}"));
        }
    }
}

fn check_array(schema: &Value, items: &[Value], path: &str, errors: &mut Vec<String>) {
    let len = items.len() as u64;
    if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
        && len < min
    {
        errors.push(format!("{path}: fewer than {min} items"));
    }
    if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
        && len > max
    {
        errors.push(format!("{path}: more than {max} items"));
    }
    match schema.get("x-kubernetes-list-type").and_then(Value::as_str) {
        Some("set") => {
            let mut seen = BTreeSet::new();
            for item in items {
                if !seen.insert(item.to_string()) {
                    errors.push(format!("{path}: duplicate value {item}"));
                }
            }
        }
        Some("map") => {
            let keys: Vec<&str> = schema["x-kubernetes-list-map-keys"]
                .as_array()
                .expect("map lists name their keys")
                .iter()
                .filter_map(Value::as_str)
                .collect();
            let mut seen = BTreeSet::new();
            for item in items {
                let key: Vec<String> = keys.iter().map(|k| item[*k].to_string()).collect();
                if !seen.insert(key.clone()) {
                    errors.push(format!("{path}: duplicate entry with key {key:?}"));
                }
            }
        }
        _ => {}
    }
    if let Some(item_schema) = schema.get("items") {
        for (i, item) in items.iter().enumerate() {
            check(item_schema, item, &format!("{path}[{i}]"), errors);
        }
    }
}
