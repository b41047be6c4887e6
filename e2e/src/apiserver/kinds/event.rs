//! Events are stored once, in the core/v1 shape, and served in two versions: core/v1 (which
//! `kubectl describe` reads by field selector) and events.k8s.io/v1 (which controllers write).
//! This module owns the conversion between the two and the events.k8s.io/v1 write rules.

use serde_json::{Map, Value, json};

use crate::apiserver::error::FieldError;

/// `(events.k8s.io/v1 field, core/v1 field)` pairs that are renames of one another.
const RENAMES: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
];

/// Fields both versions share under the same name.
const SHARED: &[&str] = &[
    "metadata",
    "reason",
    "type",
    "action",
    "related",
    "reportingInstance",
    "eventTime",
    "series",
];

fn rename(obj: &Value, to_core: bool, api_version: &str) -> Value {
    let mut out = Map::new();
    out.insert("apiVersion".into(), json!(api_version));
    out.insert("kind".into(), json!("Event"));
    let Some(src) = obj.as_object() else {
        return Value::Object(out);
    };
    for key in SHARED {
        if let Some(v) = src.get(*key) {
            out.insert(key.to_string(), v.clone());
        }
    }
    for (v1, core) in RENAMES {
        let (from, to) = if to_core { (v1, core) } else { (core, v1) };
        if let Some(v) = src.get(*from) {
            out.insert(to.to_string(), v.clone());
        }
    }
    Value::Object(out)
}

/// events.k8s.io/v1 → storage (core/v1).
pub fn to_core(v1: &Value) -> Value {
    let mut core = rename(v1, true, "v1");
    // The core series has no separate state; counts and times carry over as they are.
    if let Some(series) = core.get_mut("series").and_then(Value::as_object_mut) {
        series.retain(|k, _| k == "count" || k == "lastObservedTime");
    }
    core
}

/// Storage (core/v1) → events.k8s.io/v1.
pub fn to_events_v1(core: &Value) -> Value {
    rename(core, false, "events.k8s.io/v1")
}

/// The rules the API server applies to events written through events.k8s.io/v1.
pub fn validate_events_v1(v1: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let req = |errs: &mut Vec<FieldError>, field: &str| {
        if v1
            .get(field)
            .is_none_or(|x| x.is_null() || x.as_str() == Some(""))
        {
            errs.push(FieldError::required(field, ""));
        }
    };
    req(&mut errs, "eventTime");
    req(&mut errs, "reportingController");
    req(&mut errs, "reportingInstance");
    req(&mut errs, "action");
    req(&mut errs, "reason");
    if let Some(t) = v1.get("type").and_then(Value::as_str)
        && t != "Normal"
        && t != "Warning"
    {
        errs.push(FieldError::not_supported(
            "type",
            json!(t),
            &["Normal", "Warning"],
        ));
    }
    if let Some(note) = v1.get("note").and_then(Value::as_str)
        && note.len() > 1024
    {
        errs.push(FieldError::too_long("note", Value::Null, 1024));
    }
    for (field, max) in [
        ("action", 128),
        ("reason", 128),
        ("reportingController", 253),
        ("reportingInstance", 128),
    ] {
        if let Some(s) = v1.get(field).and_then(Value::as_str)
            && s.len() > max
        {
            errs.push(FieldError::too_long(field, Value::Null, max));
        }
    }
    errs.extend(validate_namespace(v1, "regarding"));
    errs
}

/// Core events: the involved object must be in the event's namespace (or the event in
/// `default` for cluster-scoped objects).
pub fn validate_core(core: &Value) -> Vec<FieldError> {
    let mut errs = validate_namespace(core, "involvedObject");
    if let Some(t) = core.get("type").and_then(Value::as_str)
        && !t.is_empty()
        && t != "Normal"
        && t != "Warning"
    {
        errs.push(FieldError::not_supported(
            "type",
            json!(t),
            &["Normal", "Warning"],
        ));
    }
    errs
}

fn validate_namespace(ev: &Value, reference: &str) -> Vec<FieldError> {
    let ns = ev["metadata"]["namespace"].as_str().unwrap_or_default();
    let obj_ns = ev[reference]["namespace"].as_str().unwrap_or_default();
    if !obj_ns.is_empty() && obj_ns != ns {
        return vec![FieldError::invalid(
            format!("{reference}.namespace"),
            json!(obj_ns),
            "does not match event.namespace",
        )];
    }
    vec![]
}

/// Field-selector values for core events (`source` means `source.component`).
pub fn core_field(ev: &Value, field: &str) -> Option<String> {
    let v = match field {
        "source" => ev.pointer("/source/component"),
        "reportingComponent" => ev.get("reportingComponent"),
        other => ev.pointer(&format!("/{}", other.replace('.', "/"))),
    }?;
    Some(
        v.as_str()
            .map(str::to_string)
            .unwrap_or_else(|| v.to_string()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v1_event() -> Value {
        json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "web.17a", "namespace": "default"},
            "eventTime": "2024-01-01T00:00:00.000000Z",
            "reportingController": "ironlb.io/controller", "reportingInstance": "ctl-0",
            "action": "Allocate", "reason": "IPAllocated", "type": "Normal",
            "note": "Assigned IP 198.51.100.1",
            "regarding": {"kind": "Service", "namespace": "default", "name": "web", "uid": "u1", "apiVersion": "v1"},
            "series": {"count": 2, "lastObservedTime": "2024-01-01T00:01:00.000000Z"}
        })
    }

    #[test]
    fn v1_converts_to_core_and_back_losslessly() {
        let v1 = v1_event();
        let core = to_core(&v1);
        assert_eq!(core["apiVersion"], "v1");
        assert_eq!(core["involvedObject"]["name"], "web");
        assert_eq!(core["message"], "Assigned IP 198.51.100.1");
        assert_eq!(core["reportingComponent"], "ironlb.io/controller");
        assert_eq!(core["series"]["count"], 2);
        assert_eq!(to_events_v1(&core), v1);
    }

    #[test]
    fn core_converts_to_v1() {
        let core = json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "x", "namespace": "default"},
            "involvedObject": {"kind": "Pod", "name": "p"}, "message": "m", "reason": "Started",
            "source": {"component": "kubelet"}, "firstTimestamp": "t1", "lastTimestamp": "t2", "count": 3, "type": "Normal"});
        let v1 = to_events_v1(&core);
        assert_eq!(v1["regarding"]["name"], "p");
        assert_eq!(v1["note"], "m");
        assert_eq!(v1["deprecatedSource"]["component"], "kubelet");
        assert_eq!(v1["deprecatedCount"], 3);
        assert_eq!(to_core(&v1), core);
    }

    #[test]
    fn events_v1_writes_need_the_new_fields() {
        assert!(validate_events_v1(&v1_event()).is_empty());
        let mut bad = v1_event();
        for k in ["eventTime", "reportingController", "action"] {
            bad.as_object_mut().unwrap().remove(k);
        }
        bad["type"] = json!("Fatal");
        bad["regarding"]["namespace"] = json!("other");
        let fields: Vec<String> = validate_events_v1(&bad)
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(
            fields,
            [
                "eventTime",
                "reportingController",
                "action",
                "type",
                "regarding.namespace"
            ]
        );
    }

    #[test]
    fn field_selector_values() {
        let core = to_core(&v1_event());
        assert_eq!(
            core_field(&core, "involvedObject.name").as_deref(),
            Some("web")
        );
        assert_eq!(
            core_field(&core, "involvedObject.kind").as_deref(),
            Some("Service")
        );
        assert_eq!(core_field(&core, "reason").as_deref(), Some("IPAllocated"));
        assert_eq!(core_field(&core, "source"), None);
    }
}
