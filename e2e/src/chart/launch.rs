//! Running a chart's container as a plain process, the way the kubelet would start it: its
//! args with `$(VAR)` references expanded, its environment with downward-API fields filled in
//! from the pod it would be, and its volume mounts mapped to host directories. Scenario tests use
//! this to run the real binaries with exactly the flags the chart gives them. Pure.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;

use super::Error;
use super::manifest::container;

/// The pod a container would run in.
#[derive(Clone, Debug, Default)]
pub struct PodContext {
    pub pod_name: String,
    pub namespace: String,
    pub node_name: String,
    pub pod_ip: String,
    /// Host directory standing in for each volume mount path.
    pub mounts: BTreeMap<String, PathBuf>,
}

/// What to start: the image's entrypoint with these args and this environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessSpec {
    /// The container's `command`, when it overrides the image's entrypoint.
    pub command: Option<Vec<String>>,
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
}

pub fn process_spec(
    pod_spec: &Value,
    container_name: &str,
    pod: &PodContext,
) -> Result<ProcessSpec, Error> {
    let c = container(pod_spec, container_name)?;
    let mut mounts: Vec<(String, String)> = Vec::new();
    for m in c
        .get("volumeMounts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let path = m
            .get("mountPath")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::Launch("a volumeMount without mountPath".into()))?;
        let host = pod
            .mounts
            .get(path)
            .or_else(|| pod.mounts.get(path.trim_end_matches('/')))
            .ok_or_else(|| {
                Error::Launch(format!("no host directory stands in for the mount {path}"))
            })?;
        mounts.push((
            path.trim_end_matches('/').to_string(),
            host.display().to_string(),
        ));
    }
    let remap = |text: &str| -> String {
        let mut out = text.to_string();
        for (path, host) in &mounts {
            out = out.replace(&format!("{path}/"), &format!("{host}/"));
            if out == *path || out.ends_with(&format!("={path}")) {
                out = format!("{}{host}", &out[..out.len() - path.len()]);
            }
        }
        out
    };

    let mut env = BTreeMap::new();
    for e in c.get("env").and_then(Value::as_array).into_iter().flatten() {
        let name = e
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| Error::Launch("an env entry without a name".into()))?;
        let value = match (e.get("value"), e.get("valueFrom")) {
            (Some(v), None) => v
                .as_str()
                .ok_or_else(|| Error::Launch(format!("env {name}: value is not a string")))?
                .to_string(),
            (None, Some(from)) => field_ref(name, from, pod)?,
            (None, None) => String::new(),
            (Some(_), Some(_)) => {
                return Err(Error::Launch(format!(
                    "env {name}: both value and valueFrom"
                )));
            }
        };
        let value = expand(&value, &env);
        env.insert(name.to_string(), remap(&value));
    }

    let strings = |key: &str| -> Result<Option<Vec<String>>, Error> {
        match c.get(key) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(|s| remap(&expand(s, &env)))
                        .ok_or_else(|| Error::Launch(format!("{key} holds a non-string")))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(_) => Err(Error::Launch(format!("{key} is not a list"))),
        }
    };
    Ok(ProcessSpec {
        command: strings("command")?,
        args: strings("args")?.unwrap_or_default(),
        env,
    })
}

fn field_ref(name: &str, from: &Value, pod: &PodContext) -> Result<String, Error> {
    let Some(path) = from.pointer("/fieldRef/fieldPath").and_then(Value::as_str) else {
        return Err(Error::Launch(format!(
            "env {name}: only fieldRef is supported in valueFrom, got {from}"
        )));
    };
    let value = match path {
        "metadata.name" => &pod.pod_name,
        "metadata.namespace" => &pod.namespace,
        "spec.nodeName" => &pod.node_name,
        "status.podIP" | "status.hostIP" => &pod.pod_ip,
        other => {
            return Err(Error::Launch(format!(
                "env {name}: unsupported fieldPath {other}"
            )));
        }
    };
    Ok(value.clone())
}

/// Kubernetes' `$(VAR)` expansion: defined variables are replaced, undefined references and
/// `$$` (an escaped `$`) are kept or unescaped as the kubelet does.
fn expand(text: &str, env: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(')
            && let Some(end) = inner.find(')')
        {
            let var = &inner[..end];
            match env.get(var) {
                Some(v) => out.push_str(v),
                None => out.push_str(&format!("$({var})")),
            }
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod() -> PodContext {
        PodContext {
            pod_name: "ironlb-speaker-x1".into(),
            namespace: "ironlb-system".into(),
            node_name: "node1".into(),
            pod_ip: "192.0.2.11".into(),
            mounts: BTreeMap::from([("/etc/key".to_string(), PathBuf::from("/tmp/lab/key"))]),
        }
    }

    fn spec(container: Value) -> Value {
        json!({"containers": [container]})
    }

    #[test]
    fn fills_the_downward_api_and_expands_references() {
        let s = spec(json!({
            "name": "speaker",
            "args": ["--node=$(NODE_NAME)", "--key-file=/etc/key/key", "--cost=$$5", "--x=$(UNSET)"],
            "env": [
                {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "ADDR", "value": "$(POD).$(NODE_NAME)"},
                {"name": "EMPTY"}
            ],
            "volumeMounts": [{"name": "k", "mountPath": "/etc/key"}]
        }));
        let p = process_spec(&s, "speaker", &pod()).unwrap();
        assert_eq!(p.command, None);
        assert_eq!(
            p.args,
            [
                "--node=node1",
                "--key-file=/tmp/lab/key/key",
                "--cost=$5",
                "--x=$(UNSET)"
            ]
        );
        assert_eq!(p.env["NODE_NAME"], "node1");
        assert_eq!(p.env["ADDR"], "ironlb-speaker-x1.node1");
        assert_eq!(p.env["EMPTY"], "");
    }

    #[test]
    fn a_flag_naming_the_mount_itself_is_remapped() {
        let s = spec(json!({
            "name": "c", "args": ["--dir=/etc/key"],
            "volumeMounts": [{"name": "k", "mountPath": "/etc/key/"}]
        }));
        assert_eq!(
            process_spec(&s, "c", &pod()).unwrap().args,
            ["--dir=/tmp/lab/key"]
        );
    }

    #[test]
    fn what_a_process_cannot_stand_in_for_is_an_error() {
        for c in [
            json!({"name": "c", "volumeMounts": [{"name": "v", "mountPath": "/elsewhere"}]}),
            json!({"name": "c", "env": [{"name": "S", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]}),
            json!({"name": "c", "env": [{"name": "L", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['x']"}}}]}),
            json!({"name": "c", "env": [{"value": "nameless"}]}),
            json!({"name": "c", "env": [{"name": "N", "value": 5}]}),
            json!({"name": "c", "env": [{"name": "B", "value": "x", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]}),
            json!({"name": "c", "args": "--not-a-list"}),
            json!({"name": "c", "args": [1]}),
        ] {
            let result = process_spec(&spec(c.clone()), "c", &pod());
            assert!(matches!(result, Err(Error::Launch(_))), "{c}: {result:?}");
        }
        assert!(process_spec(&spec(json!({"name": "c"})), "other", &pod()).is_err());
    }

    #[test]
    fn expansion_edge_cases() {
        let env = BTreeMap::from([("A".to_string(), "1".to_string())]);
        assert_eq!(expand("$(A)$(A)", &env), "11");
        assert_eq!(expand("$", &env), "$");
        assert_eq!(expand("$(A", &env), "$(A");
        assert_eq!(expand("a$b", &env), "a$b");
        assert_eq!(expand("$$(A)", &env), "$(A)");
    }
}
