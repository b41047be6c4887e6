//! `metadata` rules shared by every kind: name syntax per kind, labels, annotations,
//! finalizers and owner references.

use serde_json::{Value, json};

use crate::apiserver::error::FieldError;
use crate::apiserver::names::{
    check_dns1035_label, check_dns1123_label, check_dns1123_subdomain, check_label_value,
    check_path_segment_name, check_qualified_name,
};
use crate::apiserver::registry::{Behavior, ResourceDef};

const MAX_ANNOTATIONS_BYTES: usize = 256 * 1024;

/// The name rule of a kind, as the API server's validation for it.
pub fn check_name(def: &ResourceDef, name: &str) -> Option<String> {
    match def.behavior {
        Behavior::Namespace => check_dns1123_label(name),
        Behavior::Service => check_dns1035_label(name),
        Behavior::Rbac => check_path_segment_name(name),
        _ => check_dns1123_subdomain(name),
    }
}

pub fn validate(def: &ResourceDef, obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let meta = &obj["metadata"];
    if let Some(name) = meta["name"].as_str()
        && def.behavior != Behavior::Service
        && let Some(msg) = check_name(def, name)
    {
        errs.push(FieldError::invalid("metadata.name", json!(name), msg));
    }
    if let Some(labels) = meta.get("labels").filter(|v| !v.is_null()) {
        match labels.as_object() {
            Some(map) => {
                for (k, v) in map {
                    if let Some(msg) = check_qualified_name(k) {
                        errs.push(FieldError::invalid("metadata.labels", json!(k), msg));
                    }
                    match v.as_str() {
                        Some(s) => {
                            if let Some(msg) = check_label_value(s) {
                                errs.push(FieldError::invalid("metadata.labels", json!(s), msg));
                            }
                        }
                        None => errs.push(FieldError::invalid(
                            format!("metadata.labels.{k}"),
                            v.clone(),
                            "must be a string",
                        )),
                    }
                }
            }
            None => errs.push(FieldError::invalid(
                "metadata.labels",
                labels.clone(),
                "must be a map of strings",
            )),
        }
    }
    if let Some(ann) = meta.get("annotations").filter(|v| !v.is_null()) {
        match ann.as_object() {
            Some(map) => {
                let mut total = 0;
                for (k, v) in map {
                    if let Some(msg) = check_qualified_name(&k.to_ascii_lowercase()) {
                        errs.push(FieldError::invalid("metadata.annotations", json!(k), msg));
                    }
                    total += k.len() + v.as_str().map(str::len).unwrap_or(0);
                    if !v.is_string() {
                        errs.push(FieldError::invalid(
                            format!("metadata.annotations.{k}"),
                            v.clone(),
                            "must be a string",
                        ));
                    }
                }
                if total > MAX_ANNOTATIONS_BYTES {
                    errs.push(FieldError::too_long(
                        "metadata.annotations",
                        Value::Null,
                        MAX_ANNOTATIONS_BYTES,
                    ));
                }
            }
            None => errs.push(FieldError::invalid(
                "metadata.annotations",
                ann.clone(),
                "must be a map of strings",
            )),
        }
    }
    if let Some(fins) = meta["finalizers"].as_array() {
        for (i, f) in fins.iter().enumerate() {
            match f.as_str() {
                Some(s) if check_qualified_name(s).is_none() => {}
                _ => errs.push(FieldError::invalid(
                    format!("metadata.finalizers[{i}]"),
                    f.clone(),
                    "must be a qualified name",
                )),
            }
        }
    }
    if let Some(owners) = meta["ownerReferences"].as_array() {
        for (i, o) in owners.iter().enumerate() {
            for k in ["apiVersion", "kind", "name", "uid"] {
                if o.get(k).and_then(Value::as_str).is_none_or(str::is_empty) {
                    errs.push(FieldError::required(
                        format!("metadata.ownerReferences[{i}].{k}"),
                        "",
                    ));
                }
            }
        }
        let controllers = owners
            .iter()
            .filter(|o| o["controller"].as_bool() == Some(true))
            .count();
        if controllers > 1 {
            errs.push(FieldError::invalid(
                "metadata.ownerReferences",
                Value::Null,
                "Only one reference can have Controller set to true",
            ));
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::registry::{Registry, RegistryOptions};

    fn def(group: &str, plural: &str) -> std::sync::Arc<ResourceDef> {
        Registry::builtin(&RegistryOptions { minor_version: 35 })
            .get(group, "v1", plural)
            .unwrap()
    }

    #[test]
    fn names_follow_the_kind() {
        assert!(check_name(&def("", "namespaces"), "a.b").is_some());
        assert!(check_name(&def("", "configmaps"), "a.b").is_none());
        assert!(
            check_name(
                &def("rbac.authorization.k8s.io", "clusterroles"),
                "system:x"
            )
            .is_none()
        );
        assert!(check_name(&def("", "configmaps"), "Bad").is_some());
    }

    #[test]
    fn labels_annotations_finalizers_owners() {
        let d = def("", "configmaps");
        let good = json!({"metadata": {"name": "a", "labels": {"app.kubernetes.io/name": "x"}, "annotations": {"Example.com/Note": "free text"}, "finalizers": ["ironlb.io/x"]}});
        assert!(validate(&d, &good).is_empty());
        let bad = json!({"metadata": {"name": "a", "labels": {"bad key": "x", "ok": "bad value!", "n": 5}, "annotations": {"x": 1}, "finalizers": ["no good"],
            "ownerReferences": [{"apiVersion": "v1", "kind": "X", "name": "n"}, {"apiVersion": "v1", "kind": "X", "name": "n", "uid": "u", "controller": true}, {"apiVersion": "v1", "kind": "X", "name": "m", "uid": "v", "controller": true}]}});
        let fields: Vec<String> = validate(&d, &bad).into_iter().map(|e| e.field).collect();
        assert!(fields.contains(&"metadata.labels".to_string()));
        assert!(fields.contains(&"metadata.labels.n".to_string()));
        assert!(fields.contains(&"metadata.annotations.x".to_string()));
        assert!(fields.contains(&"metadata.finalizers[0]".to_string()));
        assert!(fields.contains(&"metadata.ownerReferences[0].uid".to_string()));
        assert!(fields.contains(&"metadata.ownerReferences".to_string()));
        let huge = json!({"metadata": {"name": "a", "annotations": {"k": "x".repeat(300_000)}}});
        assert!(!validate(&d, &huge).is_empty());
    }
}
