//! Pods: the defaults the API server and its admission plugins set, the initial `Pending`
//! status, container validation, the immutability of most of `spec`, and binding to a node.

use serde_json::{Value, json};

use crate::apiserver::error::FieldError;
use crate::apiserver::names::check_dns1123_label;

/// Defaults for a pod spec (also used for the templates of workloads).
pub fn default_pod_spec(spec: &mut Value) {
    if !spec.is_object() {
        return;
    }
    let set = |spec: &mut Value, k: &str, v: Value| {
        if spec.get(k).is_none_or(Value::is_null) {
            spec[k] = v;
        }
    };
    set(spec, "restartPolicy", json!("Always"));
    set(spec, "dnsPolicy", json!("ClusterFirst"));
    set(spec, "schedulerName", json!("default-scheduler"));
    set(spec, "terminationGracePeriodSeconds", json!(30));
    set(spec, "securityContext", json!({}));
    set(spec, "enableServiceLinks", json!(true));
    set(spec, "serviceAccountName", json!("default"));
    if let Some(sa) = spec.get("serviceAccountName").cloned() {
        set(spec, "serviceAccount", sa);
    }
    for list in ["containers", "initContainers"] {
        if let Some(cs) = spec.get_mut(list).and_then(Value::as_array_mut) {
            for c in cs {
                if !c.is_object() {
                    continue;
                }
                if c.get("imagePullPolicy").is_none_or(Value::is_null) {
                    let image = c["image"].as_str().unwrap_or_default();
                    let tag_latest = !image.contains('@')
                        && image
                            .rsplit('/')
                            .next()
                            .is_none_or(|last| !last.contains(':') || last.ends_with(":latest"));
                    c["imagePullPolicy"] =
                        json!(if tag_latest { "Always" } else { "IfNotPresent" });
                }
                if c.get("terminationMessagePath").is_none_or(Value::is_null) {
                    c["terminationMessagePath"] = json!("/dev/termination-log");
                }
                if c.get("terminationMessagePolicy").is_none_or(Value::is_null) {
                    c["terminationMessagePolicy"] = json!("File");
                }
                if c.get("resources").is_none_or(Value::is_null) {
                    c["resources"] = json!({});
                }
                if let Some(ports) = c.get_mut("ports").and_then(Value::as_array_mut) {
                    for p in ports {
                        if p.is_object() && p.get("protocol").is_none_or(Value::is_null) {
                            p["protocol"] = json!("TCP");
                        }
                    }
                }
            }
        }
    }
}

/// The tolerations the DefaultTolerationSeconds admission plugin adds.
fn default_tolerations(spec: &mut Value) {
    let mut tolerations = spec["tolerations"].as_array().cloned().unwrap_or_default();
    for key in [
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
    ] {
        if !tolerations.iter().any(|t| t["key"] == key) {
            tolerations.push(json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}));
        }
    }
    spec["tolerations"] = Value::Array(tolerations);
}

/// A new pod: spec defaults and the status the API server starts it with.
pub fn prepare_create(pod: &mut Value) {
    default_pod_spec(&mut pod["spec"]);
    default_tolerations(&mut pod["spec"]);
    let qos = qos_class(&pod["spec"]);
    pod["status"] = json!({"phase": "Pending", "qosClass": qos});
}

fn qos_class(spec: &Value) -> &'static str {
    let containers = spec["containers"].as_array().cloned().unwrap_or_default();
    let any_resources = containers.iter().any(|c| {
        c["resources"]["requests"]
            .as_object()
            .is_some_and(|m| !m.is_empty())
            || c["resources"]["limits"]
                .as_object()
                .is_some_and(|m| !m.is_empty())
    });
    if !any_resources {
        return "BestEffort";
    }
    let guaranteed = containers.iter().all(|c| {
        let l = &c["resources"]["limits"];
        let r = &c["resources"]["requests"];
        ["cpu", "memory"]
            .iter()
            .all(|k| l.get(*k).is_some() && (r.get(*k).is_none() || r.get(*k) == l.get(*k)))
    });
    if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

pub fn validate(pod: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let spec = &pod["spec"];
    let containers = spec["containers"].as_array().cloned().unwrap_or_default();
    if containers.is_empty() {
        errs.push(FieldError::required("spec.containers", ""));
    }
    let mut names = Vec::new();
    for (list, items) in [
        ("containers", containers),
        (
            "initContainers",
            spec["initContainers"]
                .as_array()
                .cloned()
                .unwrap_or_default(),
        ),
    ] {
        for (i, c) in items.iter().enumerate() {
            let path = format!("spec.{list}[{i}]");
            match c["name"].as_str() {
                None | Some("") => errs.push(FieldError::required(format!("{path}.name"), "")),
                Some(n) => {
                    if let Some(msg) = check_dns1123_label(n) {
                        errs.push(FieldError::invalid(format!("{path}.name"), json!(n), msg));
                    }
                    if names.contains(&n.to_string()) {
                        errs.push(FieldError::duplicate(format!("{path}.name"), json!(n)));
                    }
                    names.push(n.to_string());
                }
            }
            if c["image"].as_str().is_none_or(|s| s.trim().is_empty()) {
                errs.push(FieldError::required(format!("{path}.image"), ""));
            }
            if let Some(ports) = c["ports"].as_array() {
                for (j, p) in ports.iter().enumerate() {
                    if !p["containerPort"]
                        .as_i64()
                        .is_some_and(|n| (1..=65535).contains(&n))
                    {
                        errs.push(FieldError::invalid(
                            format!("{path}.ports[{j}].containerPort"),
                            p["containerPort"].clone(),
                            "must be between 1 and 65535, inclusive",
                        ));
                    }
                }
            }
        }
    }
    if let Some(rp) = spec["restartPolicy"].as_str()
        && !matches!(rp, "Always" | "OnFailure" | "Never")
    {
        errs.push(FieldError::not_supported(
            "spec.restartPolicy",
            json!(rp),
            &["Always", "OnFailure", "Never"],
        ));
    }
    errs
}

/// The parts of a pod spec an update may change.
fn mutable_view(spec: &Value) -> Value {
    let mut s = spec.clone();
    for list in ["containers", "initContainers"] {
        if let Some(cs) = s.get_mut(list).and_then(Value::as_array_mut) {
            for c in cs {
                if let Some(m) = c.as_object_mut() {
                    m.remove("image");
                    m.remove("resources");
                }
            }
        }
    }
    if let Some(m) = s.as_object_mut() {
        for k in [
            "activeDeadlineSeconds",
            "tolerations",
            "terminationGracePeriodSeconds",
            "schedulingGates",
        ] {
            m.remove(k);
        }
    }
    s
}

pub fn validate_update(old: &Value, new: &Value) -> Vec<FieldError> {
    if mutable_view(&old["spec"]) != mutable_view(&new["spec"]) {
        return vec![FieldError::forbidden(
            "spec",
            "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
        )];
    }
    vec![]
}

/// A pod bound to a node that is still running is deleted gracefully (the kubelet finishes it).
pub fn needs_graceful_deletion(pod: &Value) -> bool {
    pod["spec"]["nodeName"]
        .as_str()
        .is_some_and(|n| !n.is_empty())
        && !matches!(
            pod["status"]["phase"].as_str(),
            Some("Succeeded" | "Failed")
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_pods_get_defaults_and_pending_status() {
        let mut p = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "web", "image": "nginx", "ports": [{"containerPort": 80}]}]}});
        prepare_create(&mut p);
        assert_eq!(p["status"]["phase"], "Pending");
        assert_eq!(p["status"]["qosClass"], "BestEffort");
        let c = &p["spec"]["containers"][0];
        assert_eq!(c["imagePullPolicy"], "Always");
        assert_eq!(c["ports"][0]["protocol"], "TCP");
        assert_eq!(p["spec"]["restartPolicy"], "Always");
        assert_eq!(p["spec"]["tolerations"].as_array().unwrap().len(), 2);
        assert!(validate(&p).is_empty());
        let mut tagged =
            json!({"spec": {"containers": [{"name": "a", "image": "registry:5000/nginx:1.27"}]}});
        default_pod_spec(&mut tagged["spec"]);
        assert_eq!(
            tagged["spec"]["containers"][0]["imagePullPolicy"],
            "IfNotPresent"
        );
    }

    #[test]
    fn invalid_pods() {
        let p = json!({"spec": {"containers": [{"name": "Bad_Name"}, {"name": "Bad_Name", "image": "x", "ports": [{"containerPort": 0}]}], "restartPolicy": "Sometimes"}});
        let fields: Vec<String> = validate(&p).into_iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            [
                "spec.containers[0].name",
                "spec.containers[0].image",
                "spec.containers[1].name",
                "spec.containers[1].name",
                "spec.containers[1].ports[0].containerPort",
                "spec.restartPolicy"
            ]
        );
        assert!(!validate(&json!({"spec": {}})).is_empty());
    }

    #[test]
    fn spec_is_mostly_immutable() {
        let old =
            json!({"spec": {"nodeName": "n1", "containers": [{"name": "a", "image": "x:1"}]}});
        let mut new = old.clone();
        new["spec"]["containers"][0]["image"] = json!("x:2");
        assert!(validate_update(&old, &new).is_empty());
        new["spec"]["nodeName"] = json!("n2");
        assert!(!validate_update(&old, &new).is_empty());
    }

    #[test]
    fn graceful_deletion_only_for_running_bound_pods() {
        assert!(needs_graceful_deletion(
            &json!({"spec": {"nodeName": "n1"}, "status": {"phase": "Running"}})
        ));
        assert!(!needs_graceful_deletion(
            &json!({"spec": {}, "status": {"phase": "Pending"}})
        ));
        assert!(!needs_graceful_deletion(
            &json!({"spec": {"nodeName": "n1"}, "status": {"phase": "Succeeded"}})
        ));
    }
}
