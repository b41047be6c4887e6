//! Applying a structural schema to an object: pruning unknown fields (and reporting them for
//! `fieldValidation`), type checks, defaulting, and the value validations of OpenAPI v3
//! (enum, bounds, lengths, patterns, required, list-map uniqueness, anyOf/oneOf/allOf/not).
//! CEL rules (`x-kubernetes-validations`) are not evaluated.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use super::{ListType, Schema, Ty};
use crate::apiserver::error::FieldError;

/// What pruning found.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct PruneReport {
    /// Paths of fields the schema does not declare (removed).
    pub unknown: Vec<String>,
    /// `(path, expected type, JSON type found)` for values of the wrong type (left in place).
    pub wrong_type: Vec<(String, Ty, &'static str)>,
}

pub fn json_type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() && n.as_f64().is_some_and(|f| f.fract() != 0.0) => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_string()
    } else {
        format!("{path}.{field}")
    }
}

/// True when `v` has the JSON type `schema` asks for.
pub fn type_matches(schema: &Schema, v: &Value) -> bool {
    if schema.int_or_string {
        return v.is_string() || is_integer(v);
    }
    match schema.ty {
        Ty::Any => true,
        Ty::Object => v.is_object(),
        Ty::Array => v.is_array(),
        Ty::String => v.is_string(),
        Ty::Integer => is_integer(v),
        Ty::Number => v.is_number(),
        Ty::Boolean => v.is_boolean(),
    }
}

fn is_integer(v: &Value) -> bool {
    match v {
        Value::Number(n) => {
            n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        _ => false,
    }
}

/// Removes fields the schema does not declare and nulls it does not allow.
pub fn prune(value: &mut Value, schema: &Schema, report: &mut PruneReport) {
    prune_at(value, schema, "", report, true);
}

fn prune_at(value: &mut Value, schema: &Schema, path: &str, report: &mut PruneReport, root: bool) {
    if value.is_null() {
        return;
    }
    if !type_matches(schema, value) {
        report
            .wrong_type
            .push((path.to_string(), schema.ty, json_type_name(value)));
        return;
    }
    match value {
        Value::Object(map) => {
            if schema.keeps_unknown_fields()
                && schema.properties.is_empty()
                && schema.additional.is_none()
            {
                return;
            }
            let keys: Vec<String> = map.keys().cloned().collect();
            for k in keys {
                let keep_meta = (root || schema.embedded_resource)
                    && matches!(k.as_str(), "apiVersion" | "kind" | "metadata");
                let child_schema = schema.properties.get(&k).or(schema.additional.as_ref());
                let child_path = join(path, &k);
                match child_schema {
                    Some(cs) => {
                        let child = map.get_mut(&k).expect("key listed above");
                        if child.is_null() && !cs.nullable {
                            map.remove(&k);
                            continue;
                        }
                        prune_at(child, cs, &child_path, report, false);
                    }
                    None if keep_meta || schema.preserve_unknown => {}
                    None => {
                        report.unknown.push(child_path);
                        map.remove(&k);
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = &schema.items {
                for (i, item) in items.iter_mut().enumerate() {
                    prune_at(item, item_schema, &format!("{path}[{i}]"), report, false);
                }
            }
        }
        _ => {}
    }
}

/// Fills in `default`s for absent properties of objects that are present.
pub fn apply_defaults(value: &mut Value, schema: &Schema) {
    match value {
        Value::Object(map) => {
            for (k, cs) in &schema.properties {
                match map.get_mut(k) {
                    Some(child) if !child.is_null() => apply_defaults(child, cs),
                    Some(_) => {
                        if !cs.nullable
                            && let Some(d) = &cs.default
                        {
                            map.insert(k.clone(), d.clone());
                        }
                    }
                    None => {
                        if let Some(d) = &cs.default {
                            let mut d = d.clone();
                            apply_defaults(&mut d, cs);
                            map.insert(k.clone(), d);
                        }
                    }
                }
            }
            if let Some(add) = &schema.additional {
                for (k, child) in map.iter_mut() {
                    if !schema.properties.contains_key(k) {
                        apply_defaults(child, add);
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(is) = &schema.items {
                for item in items {
                    apply_defaults(item, is);
                }
            }
        }
        _ => {}
    }
}

/// All value validations, as `FieldError`s with `spec.x[0].y` paths.
pub fn validate(value: &Value, schema: &Schema, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    validate_at(value, schema, path, &mut errs);
    errs
}

fn validate_at(value: &Value, schema: &Schema, path: &str, errs: &mut Vec<FieldError>) {
    if value.is_null() {
        if !schema.nullable && schema.ty != Ty::Any {
            errs.push(FieldError::invalid(
                path,
                Value::Null,
                format!(
                    "{path} in body must be of type {}: \"null\"",
                    schema.ty.name()
                ),
            ));
        }
        return;
    }
    if !type_matches(schema, value) {
        let expected = if schema.int_or_string {
            "integer,string"
        } else {
            schema.ty.name()
        };
        let found = json_type_name(value);
        errs.push(FieldError::invalid(
            path,
            Value::String(found.into()),
            format!("{path} in body must be of type {expected}: \"{found}\""),
        ));
        return;
    }
    if let Some(choices) = &schema.enumeration
        && !choices.contains(value)
    {
        let supported: Vec<String> = choices
            .iter()
            .map(|c| {
                c.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| c.to_string())
            })
            .collect();
        let refs: Vec<&str> = supported.iter().map(String::as_str).collect();
        errs.push(FieldError::not_supported(path, value.clone(), &refs));
    }
    match value {
        Value::Number(n) => validate_number(n.as_f64().unwrap_or(0.0), value, schema, path, errs),
        Value::String(s) => validate_string(s, schema, path, errs),
        Value::Array(items) => validate_array(items, schema, path, errs),
        Value::Object(map) => validate_object(map, schema, path, errs),
        _ => {}
    }
    validate_combinators(value, schema, path, errs);
}

fn fmt_num(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}

fn validate_number(x: f64, value: &Value, schema: &Schema, path: &str, errs: &mut Vec<FieldError>) {
    if let Some(min) = schema.minimum {
        let bad = if schema.exclusive_minimum {
            x <= min
        } else {
            x < min
        };
        if bad {
            let rel = if schema.exclusive_minimum {
                "greater than"
            } else {
                "greater than or equal to"
            };
            errs.push(FieldError::invalid(
                path,
                value.clone(),
                format!("{path} in body should be {rel} {}", fmt_num(min)),
            ));
        }
    }
    if let Some(max) = schema.maximum {
        let bad = if schema.exclusive_maximum {
            x >= max
        } else {
            x > max
        };
        if bad {
            let rel = if schema.exclusive_maximum {
                "less than"
            } else {
                "less than or equal to"
            };
            errs.push(FieldError::invalid(
                path,
                value.clone(),
                format!("{path} in body should be {rel} {}", fmt_num(max)),
            ));
        }
    }
    match schema.format.as_deref() {
        Some("int32") if !(i32::MIN as f64..=i32::MAX as f64).contains(&x) => {
            errs.push(FieldError::invalid(
                path,
                value.clone(),
                format!("{path} in body must be of type int32"),
            ));
        }
        _ => {}
    }
}

fn validate_string(s: &str, schema: &Schema, path: &str, errs: &mut Vec<FieldError>) {
    let len = s.chars().count() as u64;
    if let Some(max) = schema.max_length
        && len > max
    {
        errs.push(FieldError {
            kind: crate::apiserver::error::FieldErrorKind::TooLong,
            field: path.to_string(),
            value: None,
            detail: format!("may not be more than {max} bytes"),
        });
    }
    if let Some(min) = schema.min_length
        && len < min
    {
        errs.push(FieldError::invalid(
            path,
            Value::String(s.into()),
            format!("{path} in body should be at least {min} chars long"),
        ));
    }
    if let Some(p) = &schema.pattern
        && !p.regex.is_match(s)
    {
        errs.push(FieldError::invalid(
            path,
            Value::String(s.into()),
            format!("{path} in body should match '{}'", p.source),
        ));
    }
    if schema.int_or_string {
        return;
    }
    let bad_format = match schema.format.as_deref() {
        Some("date-time") => crate::apiserver::time::parse_rfc3339(s).is_none(),
        Some("ipv4") => s.parse::<std::net::Ipv4Addr>().is_err(),
        Some("ipv6") => s.parse::<std::net::Ipv6Addr>().is_err(),
        Some("byte") => !is_base64(s),
        _ => false,
    };
    if bad_format {
        let f = schema.format.as_deref().unwrap_or_default();
        errs.push(FieldError::invalid(
            path,
            Value::String(s.into()),
            format!("{path} in body must be of type {f}: \"{s}\""),
        ));
    }
}

fn is_base64(s: &str) -> bool {
    let s = s.trim_end_matches('=');
    s.bytes()
        .all(|c| c.is_ascii_alphanumeric() || c == b'+' || c == b'/')
}

fn validate_array(items: &[Value], schema: &Schema, path: &str, errs: &mut Vec<FieldError>) {
    let n = items.len() as u64;
    if let Some(max) = schema.max_items
        && n > max
    {
        errs.push(FieldError::too_many(path, items.len(), max as usize));
    }
    if let Some(min) = schema.min_items
        && n < min
    {
        errs.push(FieldError::invalid(
            path,
            Value::from(n),
            format!("{path} in body should have at least {min} items"),
        ));
    }
    match &schema.list_type {
        ListType::Set => push_duplicates(items.iter().map(|v| v.to_string()), items, path, errs),
        ListType::Map(keys) => {
            let ks = items.iter().map(|item| {
                let key: Map<String, Value> = keys
                    .iter()
                    .filter_map(|k| item.get(k).map(|v| (k.clone(), v.clone())))
                    .collect();
                Value::Object(key).to_string()
            });
            push_duplicates(ks, items, path, errs)
        }
        ListType::Atomic if schema.unique_items => {
            push_duplicates(items.iter().map(|v| v.to_string()), items, path, errs)
        }
        ListType::Atomic => {}
    }
    if let Some(is) = &schema.items {
        for (i, item) in items.iter().enumerate() {
            validate_at(item, is, &format!("{path}[{i}]"), errs);
        }
    }
}

fn push_duplicates(
    keys: impl Iterator<Item = String>,
    items: &[Value],
    path: &str,
    errs: &mut Vec<FieldError>,
) {
    let mut seen = BTreeSet::new();
    for (i, k) in keys.enumerate() {
        if !seen.insert(k) {
            errs.push(FieldError::duplicate(
                format!("{path}[{i}]"),
                items[i].clone(),
            ));
        }
    }
}

fn validate_object(
    map: &Map<String, Value>,
    schema: &Schema,
    path: &str,
    errs: &mut Vec<FieldError>,
) {
    for r in &schema.required {
        if map.get(r).is_none_or(Value::is_null)
            && !(schema.properties.get(r).is_some_and(|s| s.nullable) && map.contains_key(r))
        {
            errs.push(FieldError::required(join(path, r), ""));
        }
    }
    let n = map.len() as u64;
    if let Some(max) = schema.max_properties
        && n > max
    {
        errs.push(FieldError::too_many(path, map.len(), max as usize));
    }
    if let Some(min) = schema.min_properties
        && n < min
    {
        errs.push(FieldError::invalid(
            path,
            Value::from(n),
            format!("{path} in body should have at least {min} properties"),
        ));
    }
    for (k, child) in map {
        if let Some(cs) = schema.properties.get(k).or(schema.additional.as_ref()) {
            validate_at(child, cs, &join(path, k), errs);
        }
    }
}

/// Whether `value` satisfies a value-validation-only schema (used inside anyOf/oneOf/...).
fn satisfies(value: &Value, schema: &Schema, path: &str) -> bool {
    let mut e = Vec::new();
    validate_at(value, schema, path, &mut e);
    e.is_empty()
}

fn validate_combinators(value: &Value, schema: &Schema, path: &str, errs: &mut Vec<FieldError>) {
    for s in &schema.all_of {
        validate_at(value, s, path, errs);
    }
    if !schema.any_of.is_empty() && !schema.any_of.iter().any(|s| satisfies(value, s, path)) {
        errs.push(FieldError::invalid(
            path,
            value.clone(),
            format!("{path} in body must match at least one schema (anyOf)"),
        ));
    }
    if !schema.one_of.is_empty() {
        let n = schema
            .one_of
            .iter()
            .filter(|s| satisfies(value, s, path))
            .count();
        if n != 1 {
            errs.push(FieldError::invalid(
                path,
                value.clone(),
                format!("{path} in body must match exactly one schema (oneOf)"),
            ));
        }
    }
    if let Some(not) = &schema.not
        && satisfies(value, not, path)
    {
        errs.push(FieldError::invalid(
            path,
            value.clone(),
            format!("{path} in body should not match the schema (not)"),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::error::FieldErrorKind;
    use serde_json::json;

    fn schema() -> Schema {
        Schema::from_openapi(&json!({
            "type": "object",
            "properties": {
                "spec": {"type": "object", "required": ["addresses"], "properties": {
                    "addresses": {"type": "array", "minItems": 1, "items": {"type": "string", "pattern": "^[0-9./:a-f-]+$"}},
                    "autoAssign": {"type": "boolean", "default": true},
                    "priority": {"type": "integer", "minimum": 0, "maximum": 100},
                    "mode": {"type": "string", "enum": ["Proxy", "VIP"]},
                    "name": {"type": "string", "maxLength": 5, "minLength": 1},
                    "conds": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"],
                              "items": {"type": "object", "properties": {"type": {"type": "string"}, "status": {"type": "string"}}}},
                    "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
                    "nested": {"type": "object", "default": {}, "properties": {"depth": {"type": "integer", "default": 3}}},
                    "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                    "choice": {"type": "string", "anyOf": [{"enum": ["a"]}, {"enum": ["b"]}]}
                }},
                "status": {"type": "object", "properties": {"ok": {"type": "boolean"}}}
            }
        }))
        .unwrap()
    }

    #[test]
    fn prune_removes_unknown_fields_and_reports_paths() {
        let s = schema();
        let mut v = json!({"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "a"},
            "spec": {"addresses": ["1.2.3.4"], "bogus": 1, "extra": {"anything": {"goes": true}},
                     "conds": [{"type": "A", "junk": 2}]},
            "other": 5});
        let mut r = PruneReport::default();
        prune(&mut v, &s, &mut r);
        assert_eq!(
            r.unknown,
            vec![
                "other".to_string(),
                "spec.bogus".into(),
                "spec.conds[0].junk".into()
            ]
        );
        assert_eq!(v["spec"]["extra"]["anything"]["goes"], true);
        assert!(v.get("other").is_none());
        assert_eq!(v["metadata"]["name"], "a");
    }

    #[test]
    fn prune_reports_wrong_types_without_removing() {
        let s = schema();
        let mut v = json!({"spec": {"addresses": "1.2.3.4", "autoAssign": "yes"}});
        let mut r = PruneReport::default();
        prune(&mut v, &s, &mut r);
        assert_eq!(r.wrong_type.len(), 2);
        assert_eq!(
            r.wrong_type[0],
            ("spec.addresses".to_string(), Ty::Array, "string")
        );
    }

    #[test]
    fn defaults_fill_absent_fields_recursively() {
        let s = schema();
        let mut v = json!({"spec": {"addresses": ["a"]}});
        apply_defaults(&mut v, &s);
        assert_eq!(v["spec"]["autoAssign"], true);
        assert_eq!(v["spec"]["nested"]["depth"], 3);
        let mut explicit = json!({"spec": {"addresses": ["a"], "autoAssign": false}});
        apply_defaults(&mut explicit, &s);
        assert_eq!(explicit["spec"]["autoAssign"], false);
        // No status object: nothing invented below it.
        assert!(v.get("status").is_none());
    }

    #[test]
    fn validation_reports_every_kind_of_violation() {
        let s = schema();
        let v = json!({"spec": {
            "addresses": [],
            "priority": 101,
            "mode": "Bogus",
            "name": "toolong",
            "conds": [{"type": "A"}, {"type": "A"}],
            "tags": ["x", "x"],
            "autoAssign": "yes",
            "choice": "c"
        }});
        let errs = validate(&v, &s, "");
        let by_field = |f: &str| errs.iter().filter(|e| e.field == f).collect::<Vec<_>>();
        assert_eq!(
            by_field("spec.addresses")[0].to_string(),
            "spec.addresses: Invalid value: 0: spec.addresses in body should have at least 1 items"
        );
        assert_eq!(
            by_field("spec.priority")[0].to_string(),
            "spec.priority: Invalid value: 101: spec.priority in body should be less than or equal to 100"
        );
        assert_eq!(by_field("spec.mode")[0].kind, FieldErrorKind::NotSupported);
        assert_eq!(by_field("spec.name")[0].kind, FieldErrorKind::TooLong);
        assert_eq!(by_field("spec.conds[1]")[0].kind, FieldErrorKind::Duplicate);
        assert_eq!(by_field("spec.tags[1]")[0].kind, FieldErrorKind::Duplicate);
        assert_eq!(
            by_field("spec.autoAssign")[0].to_string(),
            "spec.autoAssign: Invalid value: \"string\": spec.autoAssign in body must be of type boolean: \"string\""
        );
        assert_eq!(by_field("spec.choice").len(), 1);
    }

    #[test]
    fn required_and_pattern() {
        let s = schema();
        let errs = validate(&json!({"spec": {}}), &s, "");
        assert_eq!(errs[0].to_string(), "spec.addresses: Required value");
        let errs = validate(&json!({"spec": {"addresses": ["not an ip!"]}}), &s, "");
        assert_eq!(errs[0].field, "spec.addresses[0]");
        assert!(
            errs[0]
                .to_string()
                .contains("should match '^[0-9./:a-f-]+$'")
        );
        assert!(
            validate(
                &json!({"spec": {"addresses": ["192.0.2.0/24"], "choice": "b"}}),
                &s,
                ""
            )
            .is_empty()
        );
    }

    #[test]
    fn integers_accept_whole_floats_only() {
        let s = Schema::from_openapi(&json!({"type": "integer"})).unwrap();
        assert!(validate(&json!(3), &s, "x").is_empty());
        assert!(validate(&json!(3.0), &s, "x").is_empty());
        assert!(!validate(&json!(3.5), &s, "x").is_empty());
        let ios = Schema::from_openapi(&json!({"x-kubernetes-int-or-string": true})).unwrap();
        assert!(validate(&json!("http"), &ios, "x").is_empty());
        assert!(validate(&json!(8080), &ios, "x").is_empty());
        assert!(!validate(&json!(true), &ios, "x").is_empty());
    }
}
