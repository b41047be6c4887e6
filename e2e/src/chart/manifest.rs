//! Rendered manifests: the documents `helm template` prints, as JSON values, with the lookups
//! the chart tests need (objects by kind and name, pod templates, containers, images and the
//! security settings a container really runs with). Pure.

use std::collections::BTreeSet;

use serde::Deserialize;
use serde_json::Value;

use super::Error;

/// One rendered object.
#[derive(Clone, Debug, PartialEq)]
pub struct Object(pub Value);

impl Object {
    fn str_at(&self, pointer: &str) -> &str {
        self.0
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    pub fn kind(&self) -> &str {
        self.str_at("/kind")
    }

    pub fn api_version(&self) -> &str {
        self.str_at("/apiVersion")
    }

    pub fn name(&self) -> &str {
        self.str_at("/metadata/name")
    }

    pub fn namespace(&self) -> Option<&str> {
        self.0
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
    }

    /// `Kind/name`, for messages.
    pub fn id(&self) -> String {
        format!("{}/{}", self.kind(), self.name())
    }

    /// The pod spec of a workload (Deployment, DaemonSet, StatefulSet, Job, ...).
    pub fn pod_spec(&self) -> Option<&Value> {
        self.0.pointer("/spec/template/spec")
    }
}

/// Every object of one rendering, in output order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Manifests {
    pub objects: Vec<Object>,
}

impl Manifests {
    /// Parses a multi-document YAML stream; empty documents are skipped.
    pub fn parse(yaml: &str) -> Result<Self, Error> {
        let mut objects = Vec::new();
        for (index, doc) in serde_yaml::Deserializer::from_str(yaml).enumerate() {
            let value = Value::deserialize(doc).map_err(|source| Error::Yaml {
                what: format!("document {index} of the rendered chart"),
                source,
            })?;
            match value {
                Value::Null => {}
                Value::Object(_) => {
                    let object = Object(value);
                    if object.kind().is_empty() || object.api_version().is_empty() {
                        return Err(Error::Manifest(format!(
                            "document {index} has no kind or apiVersion"
                        )));
                    }
                    objects.push(object);
                }
                other => {
                    return Err(Error::Manifest(format!(
                        "document {index} is not an object: {other}"
                    )));
                }
            }
        }
        Ok(Manifests { objects })
    }

    pub fn of_kind<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Object> + 'a {
        self.objects.iter().filter(move |o| o.kind() == kind)
    }

    /// The object of this kind and name; an error naming what exists when it is missing.
    pub fn get(&self, kind: &str, name: &str) -> Result<&Object, Error> {
        let same_kind = || self.objects.iter().filter(|o| o.kind() == kind);
        same_kind().find(|o| o.name() == name).ok_or_else(|| {
            let present: Vec<String> = same_kind().map(|o| o.name().to_string()).collect();
            Error::Manifest(format!(
                "no {kind} named {name:?} in the rendered chart (present: {present:?})"
            ))
        })
    }

    /// Every object with a pod template.
    pub fn workloads(&self) -> impl Iterator<Item = &Object> {
        self.objects.iter().filter(|o| o.pod_spec().is_some())
    }

    /// `(owner, container, image)` for every container and init container of every workload.
    pub fn images(&self) -> Vec<(String, String, String)> {
        let mut out = Vec::new();
        for w in self.workloads() {
            for c in containers(w.pod_spec().unwrap_or(&Value::Null)) {
                out.push((
                    w.id(),
                    c.get("name")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                    c.get("image")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                ));
            }
        }
        out
    }
}

/// Containers and init containers of a pod spec.
pub fn containers(pod_spec: &Value) -> Vec<&Value> {
    ["initContainers", "containers", "ephemeralContainers"]
        .iter()
        .filter_map(|k| pod_spec.get(*k).and_then(Value::as_array))
        .flatten()
        .collect()
}

/// The container of this name in a pod spec.
pub fn container<'a>(pod_spec: &'a Value, name: &str) -> Result<&'a Value, Error> {
    containers(pod_spec)
        .into_iter()
        .find(|c| c.get("name").and_then(Value::as_str) == Some(name))
        .ok_or_else(|| Error::Manifest(format!("no container named {name:?}")))
}

/// What a container runs with once the pod's securityContext and its own are merged (the
/// container's fields win, as in Kubernetes).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EffectiveSecurity {
    pub run_as_non_root: bool,
    pub run_as_user: Option<i64>,
    pub read_only_root_filesystem: bool,
    /// Kubernetes' default is true unless set.
    pub allow_privilege_escalation: bool,
    pub privileged: bool,
    pub capabilities_add: BTreeSet<String>,
    pub capabilities_drop: BTreeSet<String>,
    pub seccomp_profile: Option<String>,
}

pub fn effective_security(pod_spec: &Value, container: &Value) -> EffectiveSecurity {
    let pod = pod_spec.get("securityContext");
    let own = container.get("securityContext");
    let pick = |key: &str| -> Option<&Value> {
        own.and_then(|c| c.get(key))
            .or_else(|| pod.and_then(|p| p.get(key)))
    };
    let flag = |key: &str| pick(key).and_then(Value::as_bool);
    let caps = |key: &str| -> BTreeSet<String> {
        own.and_then(|c| c.pointer(&format!("/capabilities/{key}")))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect()
    };
    EffectiveSecurity {
        run_as_non_root: flag("runAsNonRoot").unwrap_or(false),
        run_as_user: pick("runAsUser").and_then(Value::as_i64),
        read_only_root_filesystem: own
            .and_then(|c| c.get("readOnlyRootFilesystem"))
            .and_then(Value::as_bool)
            .unwrap_or(false),
        allow_privilege_escalation: own
            .and_then(|c| c.get("allowPrivilegeEscalation"))
            .and_then(Value::as_bool)
            .unwrap_or(true),
        privileged: own
            .and_then(|c| c.get("privileged"))
            .and_then(Value::as_bool)
            .unwrap_or(false),
        capabilities_add: caps("add"),
        capabilities_drop: caps("drop"),
        seccomp_profile: pick("seccompProfile")
            .and_then(|s| s.get("type"))
            .and_then(Value::as_str)
            .map(str::to_string),
    }
}

/// The `--flag` names in a container's command and args (`--a=b` and `--a b` both give `--a`).
pub fn flags(container: &Value) -> Vec<String> {
    ["command", "args"]
        .iter()
        .filter_map(|k| container.get(*k).and_then(Value::as_array))
        .flatten()
        .filter_map(Value::as_str)
        .filter(|a| a.starts_with("--") && a.len() > 2)
        .map(|a| a.split('=').next().unwrap_or(a).to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const RENDERED: &str = r#"---
# Source: x/templates/a.yaml
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: speaker
  namespace: ns
spec:
  template:
    spec:
      securityContext:
        runAsNonRoot: true
        runAsUser: 1000
        seccompProfile: {type: RuntimeDefault}
      initContainers:
        - name: init
          image: busybox:1
      containers:
        - name: main
          image: example.com/main:1
          args: ["--a=1", "--b", "2", "-c", "--"]
          securityContext:
            runAsUser: 0
            readOnlyRootFilesystem: true
            capabilities: {add: [NET_RAW], drop: [ALL]}
---
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: sa
"#;

    #[test]
    fn parses_documents_and_skips_empty_ones() {
        let m = Manifests::parse(RENDERED).unwrap();
        assert_eq!(m.objects.len(), 2);
        assert_eq!(
            m.get("DaemonSet", "speaker").unwrap().namespace(),
            Some("ns")
        );
        assert_eq!(m.get("ServiceAccount", "sa").unwrap().api_version(), "v1");
        let err = m.get("ServiceAccount", "nope").unwrap_err().to_string();
        assert!(err.contains("\"sa\""), "{err}");
    }

    #[test]
    fn lists_every_image_including_init_containers() {
        let m = Manifests::parse(RENDERED).unwrap();
        assert_eq!(
            m.images(),
            vec![
                (
                    "DaemonSet/speaker".into(),
                    "init".into(),
                    "busybox:1".into()
                ),
                (
                    "DaemonSet/speaker".into(),
                    "main".into(),
                    "example.com/main:1".into()
                ),
            ]
        );
    }

    #[test]
    fn container_settings_override_the_pod_ones() {
        let m = Manifests::parse(RENDERED).unwrap();
        let pod = m.get("DaemonSet", "speaker").unwrap().pod_spec().unwrap();
        let main = effective_security(pod, container(pod, "main").unwrap());
        assert_eq!(main.run_as_user, Some(0));
        assert!(main.run_as_non_root, "inherited from the pod");
        assert!(main.read_only_root_filesystem);
        assert!(main.allow_privilege_escalation, "the default when unset");
        assert_eq!(
            main.capabilities_add,
            BTreeSet::from(["NET_RAW".to_string()])
        );
        assert_eq!(main.seccomp_profile.as_deref(), Some("RuntimeDefault"));
        let init = effective_security(pod, container(pod, "init").unwrap());
        assert_eq!(init.run_as_user, Some(1000));
        assert!(!init.read_only_root_filesystem);
        assert!(container(pod, "other").is_err());
    }

    #[test]
    fn flags_are_the_double_dash_names() {
        let c = json!({"command": ["/bin/x", "--c"], "args": ["--a=1", "--b", "2", "-c", "--"]});
        assert_eq!(flags(&c), ["--c", "--a", "--b"]);
    }

    #[test]
    fn malformed_documents_are_errors() {
        for bad in [
            "- a\n- b\n",
            "apiVersion: v1\nmetadata: {name: x}\n",
            "kind: [unclosed\n",
            "just text\n",
        ] {
            assert!(Manifests::parse(bad).is_err(), "{bad:?}");
        }
    }
}
