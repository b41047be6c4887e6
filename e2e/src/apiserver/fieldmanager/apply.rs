//! Server-side apply: merge an applied configuration into the live object by the schema
//! (associative lists by key, sets by value, atomic lists and maps replaced), detect conflicts
//! with other managers, and remove what the applier no longer specifies.

use serde_json::{Map, Value};

use super::set::{self, FieldSet, SetError, display_path, item_key, value_key};
use super::{ManagedEntry, Writer, read, scoped, write};
use crate::apiserver::schema::{ListType, Schema};

/// Why an apply failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    /// Other managers own fields whose values the apply would change.
    #[error("{}", conflict_message(.0))]
    Conflicts(Vec<Conflict>),
    #[error(transparent)]
    Set(#[from] SetError),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub manager: String,
    /// `using v1` for Update managers.
    pub api_version: Option<String>,
    /// The path as conflict messages show it.
    pub path: String,
    /// The path as field-set elements.
    pub elements: Vec<String>,
}

impl Conflict {
    pub fn owner(&self) -> String {
        match &self.api_version {
            Some(v) => format!("conflict with \"{}\" using {v}", self.manager),
            None => format!("conflict with \"{}\"", self.manager),
        }
    }
}

fn conflict_message(cs: &[Conflict]) -> String {
    if cs.len() == 1 {
        return format!(
            "Apply failed with 1 conflict: {}: {}",
            cs[0].owner(),
            cs[0].path
        );
    }
    let mut s = format!("Apply failed with {} conflicts: ", cs.len());
    let mut owners: Vec<String> = cs.iter().map(Conflict::owner).collect();
    owners.dedup();
    for o in owners {
        s.push_str(&format!(
            "{}:\n",
            o.replacen("conflict with", "conflicts with", 1)
        ));
        for c in cs.iter().filter(|c| c.owner() == o) {
            s.push_str(&format!("- {}\n", c.path));
        }
    }
    s.trim_end().to_string()
}

fn child<'a>(schema: Option<&'a Schema>, name: &str) -> Option<&'a Schema> {
    let s = schema?;
    if s.keeps_unknown_fields() && s.properties.is_empty() && s.additional.is_none() {
        return None;
    }
    s.child(name).map(|a| &**a)
}

/// Merges `config` into `live` (both JSON values) following the schema.
pub fn merge(live: &Value, config: &Value, schema: Option<&Schema>) -> Result<Value, SetError> {
    match (live, config) {
        (Value::Object(lm), Value::Object(cm)) if schema.is_none_or(|s| !s.map_atomic) => {
            let mut out = lm.clone();
            for (k, cv) in cm {
                let merged = match lm.get(k) {
                    Some(lv) => merge(lv, cv, child(schema, k))?,
                    None => cv.clone(),
                };
                out.insert(k.clone(), merged);
            }
            Ok(Value::Object(out))
        }
        (Value::Array(la), Value::Array(ca)) => match schema.map(|s| &s.list_type) {
            Some(ListType::Map(keys)) => {
                let is = schema.and_then(|s| s.items.as_deref());
                let mut out: Vec<Value> = la.clone();
                let live_keys: Vec<Option<String>> =
                    la.iter().map(|i| item_key(i, keys, is, "").ok()).collect();
                for (i, item) in ca.iter().enumerate() {
                    let key = item_key(item, keys, is, &format!("[{i}]"))?;
                    match live_keys
                        .iter()
                        .position(|k| k.as_deref() == Some(key.as_str()))
                    {
                        Some(pos) => out[pos] = merge(&la[pos], item, is)?,
                        None => out.push(item.clone()),
                    }
                }
                Ok(Value::Array(out))
            }
            Some(ListType::Set) => {
                let mut out = la.clone();
                for v in ca {
                    if !out.contains(v) {
                        out.push(v.clone());
                    }
                }
                Ok(Value::Array(out))
            }
            _ => Ok(config.clone()),
        },
        _ => Ok(config.clone()),
    }
}

/// Applies `config` as `w.manager`. `live` is `None` when the object is being created.
/// Returns the new object with updated `managedFields`.
pub fn apply(
    live: Option<&Value>,
    config: &Value,
    schema: Option<&Schema>,
    force: bool,
    w: &Writer,
) -> Result<Value, ApplyError> {
    super::require_object(config)?;
    if let Some(l) = live {
        super::require_object(l)?;
    }
    let empty = Value::Object(Map::new());
    let live_v = live.unwrap_or(&empty);
    let mut entries: Vec<ManagedEntry> = live.map(read).unwrap_or_default();
    let sub = w.scope.subresource();

    let config_set = scoped(&set::set_of_strict(config, schema)?, w.scope);
    let mut merged = merge(live_v, config, schema)?;
    if let Some(m) = merged["metadata"].as_object_mut() {
        // The applied configuration never carries ownership records.
        m.remove("managedFields");
    }
    if let Some(lm) = live_v["metadata"].get("managedFields") {
        merged["metadata"]["managedFields"] = lm.clone();
    }

    // Conflicts: fields the apply changes that someone else owns.
    let (changed, _) = set::diff(Some(live_v), Some(&merged), schema)?;
    let changed = scoped(&changed, w.scope).intersection(&config_set);
    let mut conflicts = Vec::new();
    for e in &entries {
        if e.manager == w.manager && e.operation == "Apply" && e.subresource == sub {
            continue;
        }
        let overlap = e.fields.intersection(&changed);
        for p in overlap.members() {
            conflicts.push((
                e.manager.clone(),
                (e.operation == "Update").then(|| e.api_version.clone()),
                p,
            ));
        }
    }
    if !conflicts.is_empty() {
        if !force {
            return Err(ApplyError::Conflicts(
                conflicts
                    .into_iter()
                    .map(|(manager, api_version, p)| Conflict {
                        manager,
                        api_version,
                        path: display_path(&p),
                        elements: p,
                    })
                    .collect(),
            ));
        }
        for e in entries.iter_mut() {
            if !(e.manager == w.manager && e.operation == "Apply" && e.subresource == sub) {
                e.fields = e.fields.difference(&changed);
            }
        }
    }

    // Fields this manager applied before but no longer does, that nobody else owns.
    let previous = entries
        .iter()
        .find(|e| e.manager == w.manager && e.operation == "Apply" && e.subresource == sub)
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    let dropped = previous.difference(&config_set);
    if !dropped.is_empty() {
        let mut others = FieldSet::default();
        for e in &entries {
            if !(e.manager == w.manager && e.operation == "Apply" && e.subresource == sub) {
                others.union(&e.fields);
            }
        }
        let mut removable = FieldSet::default();
        for p in dropped.members() {
            // An item or object goes only when nobody owns anything inside it.
            if !others.has_at_or_below(&p) {
                insert_member(&mut removable, &p);
            }
        }
        set::remove(&mut merged, &removable, schema);
    }

    let changed_own = previous != config_set;
    match entries
        .iter_mut()
        .find(|e| e.manager == w.manager && e.operation == "Apply" && e.subresource == sub)
    {
        Some(e) => {
            e.fields = config_set;
            if changed_own {
                e.time = Some(w.now.to_string());
            }
        }
        None => entries.push(ManagedEntry {
            manager: w.manager.to_string(),
            operation: "Apply".into(),
            api_version: w.api_version.to_string(),
            time: Some(w.now.to_string()),
            subresource: sub.to_string(),
            fields: config_set,
        }),
    }
    write(&mut merged, entries);
    Ok(merged)
}

fn insert_member(set: &mut FieldSet, path: &[String]) {
    let mut cur = set;
    for p in path {
        cur = cur.children.entry(p.clone()).or_default();
    }
    cur.member = true;
}

/// Conflicts kubectl's own first server-side apply may override: fields whose live value is
/// still what the client-side `last-applied-configuration` annotation recorded. This is how the
/// API server lets `kubectl apply --server-side` take over objects `kubectl apply` created.
pub fn allowed_by_last_applied(
    live: &Value,
    conflicts: &[Conflict],
    schema: Option<&Schema>,
) -> bool {
    let Some(text) =
        live["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .as_str()
    else {
        return false;
    };
    let Ok(last) = serde_json::from_str::<Value>(text) else {
        return false;
    };
    let Ok(last_set) = set::set_of(&last, schema) else {
        return false;
    };
    let Ok((differs, _)) = set::diff(Some(&last), Some(live), schema) else {
        return false;
    };
    let allowed = last_set.difference(&differs);
    conflicts.iter().all(|c| {
        let mut cur = &allowed;
        for e in &c.elements {
            match cur.children.get(e) {
                Some(n) => cur = n,
                None => return false,
            }
        }
        cur.member
    })
}

/// The `v:` element for a set value (re-exported for tests).
pub fn set_element(v: &Value) -> String {
    value_key(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::fieldmanager::Scope;
    use crate::apiserver::schema::builtin;
    use serde_json::json;

    fn writer(m: &str) -> Writer<'_> {
        Writer {
            manager: m,
            api_version: "v1",
            scope: Scope::MainWithStatus,
            now: "2024-01-01T00:00:00Z",
        }
    }

    fn sch() -> std::sync::Arc<Schema> {
        builtin::schema_for("", "v1", "Service").unwrap()
    }

    fn cfg(ports: Value, labels: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "labels": labels}, "spec": {"ports": ports}})
    }

    #[test]
    fn first_apply_creates_and_records_ownership() {
        let s = sch();
        let c = cfg(
            json!([{"port": 80, "protocol": "TCP"}]),
            json!({"app": "web"}),
        );
        let out = apply(None, &c, Some(&s), false, &writer("kubectl")).unwrap();
        assert_eq!(out["spec"]["ports"][0]["port"], 80);
        let mf = &out["metadata"]["managedFields"][0];
        assert_eq!(mf["operation"], "Apply");
        assert_eq!(mf["manager"], "kubectl");
        assert!(
            mf["fieldsV1"]["f:spec"]["f:ports"]
                .get("k:{\"port\":80,\"protocol\":\"TCP\"}")
                .is_some()
        );
    }

    #[test]
    fn dropping_a_field_removes_it_unless_someone_else_owns_it() {
        let s = sch();
        let c1 = cfg(
            json!([{"port": 80, "protocol": "TCP"}, {"port": 81, "protocol": "TCP", "name": "b"}]),
            json!({"app": "web", "x": "1"}),
        );
        let live = apply(None, &c1, Some(&s), false, &writer("a")).unwrap();
        // Manager b also applies label x.
        let cb = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "labels": {"x": "1"}}});
        let live = apply(Some(&live), &cb, Some(&s), false, &writer("b")).unwrap();
        let c2 = cfg(
            json!([{"port": 80, "protocol": "TCP"}]),
            json!({"app": "web"}),
        );
        let out = apply(Some(&live), &c2, Some(&s), false, &writer("a")).unwrap();
        assert_eq!(
            out["spec"]["ports"].as_array().unwrap().len(),
            1,
            "port 81 was only a's"
        );
        assert_eq!(out["metadata"]["labels"]["x"], "1", "label x is still b's");
    }

    #[test]
    fn conflicting_values_fail_without_force_and_move_ownership_with_it() {
        let s = sch();
        let live = apply(None, &json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}, "spec": {"type": "ClusterIP"}}), Some(&s), false, &writer("a")).unwrap();
        let other = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}, "spec": {"type": "NodePort"}});
        let err = apply(Some(&live), &other, Some(&s), false, &writer("b")).unwrap_err();
        match &err {
            ApplyError::Conflicts(cs) => {
                assert_eq!(cs.len(), 1);
                assert_eq!(cs[0].manager, "a");
                assert_eq!(cs[0].path, ".spec.type");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            err.to_string(),
            "Apply failed with 1 conflict: conflict with \"a\": .spec.type"
        );
        // Same value: shared ownership, no conflict.
        let same = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}, "spec": {"type": "ClusterIP"}});
        let shared = apply(Some(&live), &same, Some(&s), false, &writer("b")).unwrap();
        assert_eq!(read(&shared).len(), 2);
        // Forced: b wins and a loses the field.
        let forced = apply(Some(&live), &other, Some(&s), true, &writer("b")).unwrap();
        assert_eq!(forced["spec"]["type"], "NodePort");
        let entries = read(&forced);
        assert!(entries.iter().all(|e| e.manager != "a"));
    }

    #[test]
    fn update_managers_conflict_with_their_api_version() {
        let s = sch();
        let mut live = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}, "spec": {"type": "ClusterIP"}});
        super::super::track_update(None, &mut live, Some(&s), &writer("kubectl-create")).unwrap();
        let c = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}, "spec": {"type": "NodePort"}});
        let err = apply(Some(&live), &c, Some(&s), false, &writer("kubectl")).unwrap_err();
        assert!(
            err.to_string()
                .contains("conflict with \"kubectl-create\" using v1: .spec.type"),
            "{err}"
        );
    }

    #[test]
    fn atomic_lists_are_replaced_and_associative_lists_merged() {
        let s = sch();
        let live = json!({"spec": {"clusterIPs": ["10.0.0.1"], "ports": [{"port": 80, "protocol": "TCP", "name": "a"}]}});
        let c = json!({"spec": {"clusterIPs": ["10.0.0.2"], "ports": [{"port": 80, "targetPort": 8080}, {"port": 443, "protocol": "TCP"}]}});
        let m = merge(&live, &c, Some(&s)).unwrap();
        assert_eq!(m["spec"]["clusterIPs"], json!(["10.0.0.2"]));
        assert_eq!(
            m["spec"]["ports"],
            json!([{"port": 80, "protocol": "TCP", "name": "a", "targetPort": 8080}, {"port": 443, "protocol": "TCP"}])
        );
    }

    #[test]
    fn status_applies_only_touch_status() {
        let s = sch();
        let live = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}, "spec": {"type": "LoadBalancer"}});
        let c = json!({"apiVersion": "v1", "kind": "Service", "status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.1", "ipMode": "VIP"}]}}});
        let w = Writer {
            manager: "ironlb",
            api_version: "v1",
            scope: Scope::Status,
            now: "t",
        };
        let out = apply(Some(&live), &c, Some(&s), true, &w).unwrap();
        assert_eq!(
            out["status"]["loadBalancer"]["ingress"][0]["ip"],
            "198.51.100.1"
        );
        let e = &read(&out)[0];
        assert_eq!(e.subresource, "status");
        assert_eq!(
            e.fields.to_fields_v1(),
            json!({"f:status": {"f:loadBalancer": {"f:ingress": {}}}})
        );
    }

    #[test]
    fn reapplying_the_same_config_keeps_the_entry_time() {
        let s = sch();
        let c = cfg(json!([{"port": 80}]), json!({"a": "b"}));
        let live = apply(None, &c, Some(&s), false, &writer("m")).unwrap();
        let w2 = Writer {
            now: "2030-01-01T00:00:00Z",
            ..writer("m")
        };
        let again = apply(Some(&live), &c, Some(&s), false, &w2).unwrap();
        assert_eq!(
            again["metadata"]["managedFields"],
            live["metadata"]["managedFields"]
        );
    }

    #[test]
    fn set_lists_union() {
        let s = sch();
        let live = json!({"metadata": {"finalizers": ["a"]}});
        let c = json!({"metadata": {"finalizers": ["b"]}});
        assert_eq!(
            merge(&live, &c, Some(&s)).unwrap()["metadata"]["finalizers"],
            json!(["a", "b"])
        );
        assert_eq!(set_element(&json!("a")), "v:\"a\"");
    }

    #[test]
    fn kubectl_takes_over_fields_it_applied_client_side() {
        let s = sch();
        let la = r#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"web"},"spec":{"ports":[{"port":80,"targetPort":9090}],"type":"LoadBalancer"}}"#;
        let mut live = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "annotations": {"kubectl.kubernetes.io/last-applied-configuration": la}},
                              "spec": {"type": "LoadBalancer", "ports": [{"port": 80, "protocol": "TCP", "targetPort": 9090}]}});
        super::super::track_update(
            None,
            &mut live,
            Some(&s),
            &writer("kubectl-client-side-apply"),
        )
        .unwrap();
        let c = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}, "spec": {"type": "LoadBalancer", "ports": [{"port": 80, "targetPort": 7070}]}});
        let ApplyError::Conflicts(cs) =
            apply(Some(&live), &c, Some(&s), false, &writer("kubectl")).unwrap_err()
        else {
            panic!()
        };
        assert!(allowed_by_last_applied(&live, &cs, Some(&s)));
        // A field someone changed after the client-side apply is a real conflict.
        let mut edited = live.clone();
        edited["spec"]["ports"][0]["targetPort"] = json!(1234);
        let ApplyError::Conflicts(cs) =
            apply(Some(&edited), &c, Some(&s), false, &writer("kubectl")).unwrap_err()
        else {
            panic!()
        };
        assert!(!allowed_by_last_applied(&edited, &cs, Some(&s)));
        let mut no_annotation = live.clone();
        no_annotation["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("annotations");
        assert!(!allowed_by_last_applied(&no_annotation, &cs, Some(&s)));
    }
}
