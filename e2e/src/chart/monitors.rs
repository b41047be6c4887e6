//! What the chart's ServiceMonitors and PodMonitors make Prometheus scrape, resolved the way
//! the Prometheus Operator resolves them: a ServiceMonitor selects Services by label, picks the
//! Service port named by each endpoint and follows its `targetPort` to the pods' container
//! port; a PodMonitor selects pod templates by label and names a container port directly. The
//! result is one [`ScrapeEndpoint`] per (monitor endpoint, workload), for a test to turn into a
//! static scrape configuration against the lab's hosts. Pure.

use std::collections::BTreeMap;

use serde_json::Value;

use super::Error;
use super::manifest::{Manifests, Object, containers};

/// One monitor endpoint applied to one workload's pods.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScrapeEndpoint {
    /// The job name the operator gives it: `serviceMonitor/NS/NAME/INDEX` or
    /// `podMonitor/NS/NAME/INDEX`.
    pub job: String,
    /// The workload whose pods are scraped (`Deployment/ironlb-controller`).
    pub workload: String,
    /// The container port on each pod.
    pub port: u16,
    pub path: String,
    pub scheme: String,
}

fn labels(v: Option<&Value>) -> BTreeMap<String, String> {
    v.and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
        .collect()
}

/// Whether `have` carries every label of `want`. An empty `want` selects everything, as in
/// Kubernetes; `matchExpressions` are refused by [`endpoints`] (the chart uses none).
fn selects(want: &BTreeMap<String, String>, have: &BTreeMap<String, String>) -> bool {
    want.iter().all(|(k, v)| have.get(k) == Some(v))
}

fn match_labels(monitor: &Object) -> Result<BTreeMap<String, String>, Error> {
    if monitor
        .0
        .pointer("/spec/selector/matchExpressions")
        .is_some()
    {
        return Err(Error::Manifest(format!(
            "{}: matchExpressions are not resolved here",
            monitor.id()
        )));
    }
    Ok(labels(monitor.0.pointer("/spec/selector/matchLabels")))
}

/// The namespaces a monitor looks in: `namespaceSelector.matchNames`, else its own.
fn namespaces(monitor: &Object) -> Vec<String> {
    let names: Vec<String> = monitor
        .0
        .pointer("/spec/namespaceSelector/matchNames")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect();
    if names.is_empty() {
        monitor
            .namespace()
            .map(str::to_string)
            .into_iter()
            .collect()
    } else {
        names
    }
}

fn in_namespaces(object: &Object, namespaces: &[String]) -> bool {
    namespaces
        .iter()
        .any(|n| object.namespace() == Some(n.as_str()))
}

/// A container port of the pod template, by name or number.
fn container_port(workload: &Object, port: &Value) -> Option<u16> {
    let pod = workload.pod_spec()?;
    let all = containers(pod);
    let ports = all
        .iter()
        .filter_map(|c| c.get("ports").and_then(Value::as_array))
        .flatten();
    match port {
        Value::String(name) => ports
            .filter(|p| p.get("name").and_then(Value::as_str) == Some(name.as_str()))
            .find_map(|p| p.get("containerPort").and_then(Value::as_u64))
            .and_then(|p| u16::try_from(p).ok()),
        Value::Number(n) => n.as_u64().and_then(|p| u16::try_from(p).ok()),
        _ => None,
    }
}

fn pod_labels(workload: &Object) -> BTreeMap<String, String> {
    labels(workload.0.pointer("/spec/template/metadata/labels"))
}

fn endpoint_list<'a>(monitor: &'a Object, key: &str) -> Result<&'a Vec<Value>, Error> {
    monitor
        .0
        .pointer(&format!("/spec/{key}"))
        .and_then(Value::as_array)
        .filter(|l| !l.is_empty())
        .ok_or_else(|| Error::Manifest(format!("{} has no spec.{key}", monitor.id())))
}

fn str_field(v: &Value, key: &str, default: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or(default)
        .to_string()
}

/// Every scrape endpoint of every ServiceMonitor and PodMonitor in the rendering.
pub fn endpoints(manifests: &Manifests) -> Result<Vec<ScrapeEndpoint>, Error> {
    let mut out = Vec::new();
    for monitor in manifests.of_kind("ServiceMonitor") {
        let want = match_labels(monitor)?;
        let within = namespaces(monitor);
        let services: Vec<&Object> = manifests
            .of_kind("Service")
            .filter(|s| {
                in_namespaces(s, &within)
                    && selects(&want, &labels(s.0.pointer("/metadata/labels")))
            })
            .collect();
        if services.is_empty() {
            return Err(Error::Manifest(format!(
                "{} selects no Service",
                monitor.id()
            )));
        }
        for (index, endpoint) in endpoint_list(monitor, "endpoints")?.iter().enumerate() {
            let port_name = str_field(endpoint, "port", "");
            for service in &services {
                let port = service
                    .0
                    .pointer("/spec/ports")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .find(|p| p.get("name").and_then(Value::as_str) == Some(port_name.as_str()))
                    .ok_or_else(|| {
                        Error::Manifest(format!(
                            "{} endpoint {index}: {} has no port named {port_name:?}",
                            monitor.id(),
                            service.id()
                        ))
                    })?;
                // Kubernetes: an unset targetPort is the port itself.
                let target = port
                    .get("targetPort")
                    .or_else(|| port.get("port"))
                    .cloned()
                    .unwrap_or(Value::Null);
                let selector = labels(service.0.pointer("/spec/selector"));
                let workloads: Vec<&Object> = manifests
                    .workloads()
                    .filter(|w| {
                        w.namespace() == service.namespace()
                            && !selector.is_empty()
                            && selects(&selector, &pod_labels(w))
                    })
                    .collect();
                if workloads.is_empty() {
                    return Err(Error::Manifest(format!(
                        "{} selects no workload's pods",
                        service.id()
                    )));
                }
                for workload in workloads {
                    let port = container_port(workload, &target).ok_or_else(|| {
                        Error::Manifest(format!(
                            "{}: targetPort {target} is no container port of {}",
                            service.id(),
                            workload.id()
                        ))
                    })?;
                    out.push(ScrapeEndpoint {
                        job: format!(
                            "serviceMonitor/{}/{}/{index}",
                            monitor.namespace().unwrap_or_default(),
                            monitor.name()
                        ),
                        workload: workload.id(),
                        port,
                        path: str_field(endpoint, "path", "/metrics"),
                        scheme: str_field(endpoint, "scheme", "http"),
                    });
                }
            }
        }
    }
    for monitor in manifests.of_kind("PodMonitor") {
        let want = match_labels(monitor)?;
        let within = namespaces(monitor);
        let workloads: Vec<&Object> = manifests
            .workloads()
            .filter(|w| in_namespaces(w, &within) && selects(&want, &pod_labels(w)))
            .collect();
        if workloads.is_empty() {
            return Err(Error::Manifest(format!(
                "{} selects no workload's pods",
                monitor.id()
            )));
        }
        for (index, endpoint) in endpoint_list(monitor, "podMetricsEndpoints")?
            .iter()
            .enumerate()
        {
            let port_name = Value::String(str_field(endpoint, "port", ""));
            for workload in &workloads {
                let port = container_port(workload, &port_name).ok_or_else(|| {
                    Error::Manifest(format!(
                        "{} endpoint {index}: {} has no container port {port_name}",
                        monitor.id(),
                        workload.id()
                    ))
                })?;
                out.push(ScrapeEndpoint {
                    job: format!(
                        "podMonitor/{}/{}/{index}",
                        monitor.namespace().unwrap_or_default(),
                        monitor.name()
                    ),
                    workload: workload.id(),
                    port,
                    path: str_field(endpoint, "path", "/metrics"),
                    scheme: str_field(endpoint, "scheme", "http"),
                });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RENDERED: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: ctl, namespace: sys}
spec:
  template:
    metadata: {labels: {app: x, component: controller}}
    spec:
      containers:
        - name: c
          ports: [{name: metrics, containerPort: 7472}]
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: spk, namespace: sys}
spec:
  template:
    metadata: {labels: {app: x, component: speaker}}
    spec:
      containers:
        - name: s
          ports: [{name: metrics, containerPort: 9473}, {name: memberlist, containerPort: 7946}]
---
apiVersion: v1
kind: Service
metadata: {name: ctl-metrics, namespace: sys, labels: {app: x, component: controller, extra: "1"}}
spec:
  selector: {app: x, component: controller}
  ports: [{name: metrics, port: 7472, targetPort: metrics}]
---
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata: {name: ctl, namespace: sys}
spec:
  namespaceSelector: {matchNames: [sys]}
  selector: {matchLabels: {app: x, component: controller}}
  endpoints: [{port: metrics, path: /metrics}]
---
apiVersion: monitoring.coreos.com/v1
kind: PodMonitor
metadata: {name: spk, namespace: monitoring}
spec:
  namespaceSelector: {matchNames: [sys]}
  selector: {matchLabels: {component: speaker}}
  podMetricsEndpoints: [{port: metrics}]
"#;

    #[test]
    fn service_and_pod_monitors_resolve_to_container_ports() {
        let m = Manifests::parse(RENDERED).unwrap();
        let e = endpoints(&m).unwrap();
        assert_eq!(
            e,
            [
                ScrapeEndpoint {
                    job: "serviceMonitor/sys/ctl/0".into(),
                    workload: "Deployment/ctl".into(),
                    port: 7472,
                    path: "/metrics".into(),
                    scheme: "http".into(),
                },
                ScrapeEndpoint {
                    job: "podMonitor/monitoring/spk/0".into(),
                    workload: "DaemonSet/spk".into(),
                    port: 9473,
                    path: "/metrics".into(),
                    scheme: "http".into(),
                },
            ]
        );
    }

    #[test]
    fn broken_references_are_errors() {
        for (from, to) in [
            // The ServiceMonitor selects no Service.
            (
                "matchLabels: {app: x, component: controller}}\n  endpoints",
                "matchLabels: {app: y}}\n  endpoints",
            ),
            // The endpoint names a port the Service lacks.
            (
                "endpoints: [{port: metrics, path",
                "endpoints: [{port: admin, path",
            ),
            // The Service's targetPort names no container port.
            ("targetPort: metrics}", "targetPort: admin}"),
            // The Service selects no pods.
            (
                "selector: {app: x, component: controller}\n  ports",
                "selector: {app: z}\n  ports",
            ),
            // The PodMonitor names a port the pods lack.
            (
                "podMetricsEndpoints: [{port: metrics}]",
                "podMetricsEndpoints: [{port: admin}]",
            ),
            // The PodMonitor has no endpoints.
            (
                "podMetricsEndpoints: [{port: metrics}]",
                "podMetricsEndpoints: []",
            ),
            // Expressions are not resolved.
            (
                "selector: {matchLabels: {component: speaker}}",
                "selector: {matchExpressions: [{key: a, operator: Exists}]}",
            ),
        ] {
            let text = RENDERED.replacen(from, to, 1);
            assert_ne!(text, RENDERED, "{from:?} not found");
            let m = Manifests::parse(&text).unwrap();
            assert!(endpoints(&m).is_err(), "{to:?} accepted");
        }
    }

    #[test]
    fn a_numeric_target_port_and_an_unset_one_are_followed() {
        let text = RENDERED.replacen("targetPort: metrics}", "targetPort: 7000}", 1);
        let e = endpoints(&Manifests::parse(&text).unwrap()).unwrap();
        assert_eq!(e[0].port, 7000);
        let text = RENDERED.replacen(", targetPort: metrics}", "}", 1);
        let e = endpoints(&Manifests::parse(&text).unwrap()).unwrap();
        assert_eq!(e[0].port, 7472);
    }
}
