//! The chart's manifests are accepted by the API server: `helm template --include-crds`, with
//! the default values and with the all-features values, fed to the lab's API-server stand-in
//! with the real `kubectl apply`, as a GitOps tool or `helm template | kubectl apply -f -` user
//! would. Each object must then be stored as rendered: nothing rejected, no field pruned or
//! changed by the server.
//!
//! ServiceMonitor, PodMonitor and PrometheusRule need the Prometheus Operator's CRDs. The test
//! applies [`monitoring_crds`] first: a subset of the operator's `monitoring.coreos.com/v1`
//! schemas holding, with upstream names and types, every field the chart can set. A field the
//! chart misspells is refused by kubectl's strict field validation; one the server would drop
//! or change fails the stored-as-rendered check.
//!
//! The server runs in a network namespace of the test's own (no lab, no lab lock).

mod apiserver_common;

use std::path::Path;

use apiserver_common::{ApiServerProcess, TestNetns, kubectl, kubectl_ok};
use e2e::chart::helm::NAMESPACE;
use e2e::chart::{Helm, Manifests, Object, all_features_values};
use serde_json::{Value, json};

/// Structural subsets of the Prometheus Operator's CRDs (monitoring.coreos.com/v1), as one
/// YAML stream.
fn monitoring_crds() -> String {
    let duration = json!({
        "type": "string",
        "pattern": "^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"
    });
    let strings = json!({"type": "array", "items": {"type": "string"}});
    let string_map = json!({"type": "object", "additionalProperties": {"type": "string"}});
    let relabelings = json!({
        "type": "array",
        "items": {
            "type": "object",
            "properties": {
                "action": {
                    "type": "string",
                    "default": "replace",
                    "enum": ["replace", "Replace", "keep", "Keep", "drop", "Drop", "hashmod",
                        "HashMod", "labelmap", "LabelMap", "labeldrop", "LabelDrop", "labelkeep",
                        "LabelKeep", "lowercase", "Lowercase", "uppercase", "Uppercase",
                        "keepequal", "KeepEqual", "dropequal", "DropEqual"]
                },
                "modulus": {"type": "integer", "format": "int64"},
                "regex": {"type": "string"},
                "replacement": {"type": "string"},
                "separator": {"type": "string"},
                "sourceLabels": {
                    "type": "array",
                    "items": {"type": "string", "pattern": "^[a-zA-Z_][a-zA-Z0-9_]*$"}
                },
                "targetLabel": {"type": "string"}
            }
        }
    });
    let endpoints = json!({
        "type": "array",
        "items": {
            "type": "object",
            "properties": {
                "port": {"type": "string"},
                "targetPort": {"x-kubernetes-int-or-string": true},
                "path": {"type": "string"},
                "scheme": {"type": "string", "enum": ["http", "https", "HTTP", "HTTPS"]},
                "interval": duration,
                "scrapeTimeout": duration,
                "honorLabels": {"type": "boolean"},
                "relabelings": relabelings,
                "metricRelabelings": relabelings
            }
        }
    });
    let selector = json!({
        "type": "object",
        "x-kubernetes-map-type": "atomic",
        "properties": {
            "matchLabels": string_map,
            "matchExpressions": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["key", "operator"],
                    "properties": {
                        "key": {"type": "string"},
                        "operator": {"type": "string"},
                        "values": strings
                    }
                }
            }
        }
    });
    let namespace_selector = json!({
        "type": "object",
        "properties": {"any": {"type": "boolean"}, "matchNames": strings}
    });
    let groups = json!({
        "type": "array",
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["name"],
        "items": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "minLength": 1},
                "interval": duration,
                "limit": {"type": "integer"},
                "rules": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["expr"],
                        "properties": {
                            "record": {"type": "string"},
                            "alert": {"type": "string"},
                            "expr": {"x-kubernetes-int-or-string": true},
                            "for": duration,
                            "keep_firing_for": duration,
                            "labels": string_map,
                            "annotations": string_map
                        }
                    }
                }
            }
        }
    });
    let crd = |kind: &str, short: &str, spec: Value| {
        let plural = format!("{}s", kind.to_ascii_lowercase());
        json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": format!("{plural}.monitoring.coreos.com")},
            "spec": {
                "group": "monitoring.coreos.com",
                "scope": "Namespaced",
                "names": {
                    "kind": kind,
                    "listKind": format!("{kind}List"),
                    "plural": plural,
                    "singular": kind.to_ascii_lowercase(),
                    "shortNames": [short]
                },
                "versions": [{
                    "name": "v1",
                    "served": true,
                    "storage": true,
                    "schema": {"openAPIV3Schema": {
                        "type": "object",
                        "required": ["spec"],
                        "properties": {
                            "apiVersion": {"type": "string"},
                            "kind": {"type": "string"},
                            "metadata": {"type": "object"},
                            "spec": spec
                        }
                    }}
                }]
            }
        })
    };
    let crds = [
        crd(
            "ServiceMonitor",
            "smon",
            json!({
                "type": "object",
                "required": ["selector"],
                "properties": {
                    "jobLabel": {"type": "string"},
                    "namespaceSelector": namespace_selector,
                    "selector": selector,
                    "endpoints": endpoints
                }
            }),
        ),
        crd(
            "PodMonitor",
            "pmon",
            json!({
                "type": "object",
                "properties": {
                    "jobLabel": {"type": "string"},
                    "namespaceSelector": namespace_selector,
                    "selector": selector,
                    "podMetricsEndpoints": endpoints
                }
            }),
        ),
        crd(
            "PrometheusRule",
            "promrule",
            json!({"type": "object", "properties": {"groups": groups}}),
        ),
    ];
    crds.iter()
        .map(|c| serde_yaml::to_string(c).expect("YAML"))
        .collect::<Vec<_>>()
        .join("---\n")
}

fn kubectl_stdin(ns: &TestNetns, kubeconfig: &Path, args: &[&str], stdin: &str) -> String {
    let out = kubectl(ns, kubeconfig, args, Some(stdin));
    assert!(
        out.status.success(),
        "kubectl {args:?} refused the chart:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every leaf of `rendered` that is not the same in `stored`, as JSON pointers.
fn differences(rendered: &Value, stored: &Value, at: &str, out: &mut Vec<String>) {
    match (rendered, stored) {
        (Value::Object(r), Value::Object(s)) => {
            for (k, v) in r {
                let here = format!("{at}/{k}");
                match s.get(k) {
                    Some(sv) => differences(v, sv, &here, out),
                    None if v.is_null() => {}
                    None => out.push(format!("{here}: dropped (was {v})")),
                }
            }
        }
        (Value::Array(r), Value::Array(s)) if r.len() == s.len() => {
            for (i, (rv, sv)) in r.iter().zip(s).enumerate() {
                differences(rv, sv, &format!("{at}/{i}"), out);
            }
        }
        (Value::Number(r), Value::Number(s)) if r.as_f64() == s.as_f64() => {}
        // YAML 1.1 octal (`defaultMode: 0400`), which Kubernetes reads and serde_yaml keeps
        // as text.
        (Value::String(r), Value::Number(s))
            if r.len() > 1
                && r.starts_with('0')
                && u64::from_str_radix(&r[1..], 8).ok() == s.as_u64() => {}
        (r, s) if r == s => {}
        (r, s) => out.push(format!("{at}: rendered {r}, stored {s}")),
    }
}

/// The stored object, or why it is missing.
fn stored(ns: &TestNetns, kubeconfig: &Path, object: &Object) -> Result<Value, String> {
    let kind = format!(
        "{}.{}",
        object.kind(),
        object.api_version().split('/').next().unwrap_or_default()
    );
    // The core group has no dot form: `Secret.v1` would not resolve.
    let resource = if object.api_version().contains('/') {
        kind
    } else {
        object.kind().to_string()
    };
    let mut args = vec!["get", &resource, object.name(), "-o", "json"];
    if let Some(namespace) = object.namespace() {
        args.extend(["-n", namespace]);
    }
    let out = kubectl(ns, kubeconfig, &args, None);
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())
}

fn apply_rendering(ns: &TestNetns, kubeconfig: &Path, label: &str, values: &[&str]) -> usize {
    let helm = Helm::locate().expect("helm");
    let mut args = vec!["--include-crds"];
    args.extend_from_slice(values);
    let yaml = helm.template(&args).expect("helm template");
    let manifests = Manifests::parse(&yaml).expect("rendered YAML");

    // helm's own text goes to kubectl, document by document: re-serialising would read it
    // with another YAML dialect (`0400` is octal to Kubernetes, not to serde_yaml).
    let documents: Vec<&str> = yaml
        .split("\n---")
        .filter(|d| {
            Manifests::parse(d)
                .map(|m| !m.objects.is_empty())
                .unwrap_or(false)
        })
        .collect();
    assert_eq!(documents.len(), manifests.objects.len());
    // CRDs first and established, as helm does: kubectl resolves every kind of a stream
    // before it applies any of it.
    let (crds, rest): (Vec<&str>, Vec<&str>) = documents
        .iter()
        .partition(|d| d.contains("\nkind: CustomResourceDefinition\n"));
    assert_eq!(crds.len(), 3, "{label}: the chart ships three CRDs");
    let stream = |docs: &[&str]| -> String { docs.join("\n---\n") };
    kubectl_stdin(ns, kubeconfig, &["apply", "-f", "-"], &stream(&crds));
    kubectl_ok(
        ns,
        kubeconfig,
        &[
            "wait",
            "--for=condition=Established",
            "--timeout=30s",
            "crd",
            "--all",
        ],
        None,
    );
    let applied = kubectl_stdin(ns, kubeconfig, &["apply", "-f", "-"], &stream(&rest));
    eprintln!("{label}:\n{applied}");

    let mut problems = Vec::new();
    for object in &manifests.objects {
        match stored(ns, kubeconfig, object) {
            Err(why) => problems.push(format!("{}: not stored: {why}", object.id())),
            Ok(stored) => {
                let mut diff = Vec::new();
                differences(&object.0, &stored, "", &mut diff);
                problems.extend(diff.into_iter().map(|d| format!("{} {d}", object.id())));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{label}: the server did not keep the chart's objects as rendered:\n{}",
        problems.join("\n")
    );
    manifests.objects.len()
}

#[test]
fn the_rendered_chart_is_accepted_by_kubectl_apply_with_default_and_all_features_values() {
    let ns = TestNetns::new("chartapply");
    let dir = tempfile::Builder::new()
        .prefix("ironlb-chart-apply-")
        .tempdir()
        .unwrap();
    let server = ApiServerProcess::start(&ns, dir.path(), &[]);
    let k = &server.kubeconfig;

    // `helm install --create-namespace` creates the release namespace; `helm template` does
    // not. The all-features values put monitors and the dashboard in `monitoring`.
    for namespace in [NAMESPACE, "monitoring"] {
        kubectl_ok(&ns, k, &["create", "namespace", namespace], None);
    }
    kubectl_stdin(&ns, k, &["apply", "-f", "-"], &monitoring_crds());
    kubectl_ok(
        &ns,
        k,
        &[
            "wait",
            "--for=condition=Established",
            "--timeout=30s",
            "crd",
            "--all",
        ],
        None,
    );

    let default = apply_rendering(&ns, k, "default values", &[]);
    let all_values = all_features_values().display().to_string();
    let all = apply_rendering(&ns, k, "all-features values", &["-f", &all_values]);
    assert!(
        all > default,
        "all features render more objects ({all}) than the defaults ({default})"
    );

    // The server really checks the monitoring kinds: kubectl's strict field validation
    // refuses a misspelt field, and the schema a wrong type.
    let misspelt = "apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata: {name: misspelt, namespace: ironlb-system}\nspec:\n  selector: {}\n  endpoints: [{port: metrics, intervall: 30s}]\n";
    let out = kubectl(&ns, k, &["apply", "-f", "-"], Some(misspelt));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("unknown field"),
        "a misspelt ServiceMonitor field was accepted: {err}"
    );
    let bad = "apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata: {name: bad, namespace: ironlb-system}\nspec:\n  selector: {}\n  endpoints: [{port: metrics, interval: often}]\n";
    let out = kubectl(&ns, k, &["apply", "-f", "-"], Some(bad));
    assert!(
        !out.status.success(),
        "a malformed ServiceMonitor was accepted"
    );
}
