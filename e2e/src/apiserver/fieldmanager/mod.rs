//! `metadata.managedFields`: who owns which field. Ordinary writes (`Update`) take ownership of
//! what they change; server-side apply (`Apply`) owns exactly what the applied configuration
//! specifies, conflicts with other owners unless forced, and removes fields a manager stopped
//! applying when nobody else owns them.

pub mod apply;
pub mod set;

use serde_json::{Value, json};

use self::set::{FieldSet, SetError};
use crate::apiserver::schema::Schema;

/// One `managedFields` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct ManagedEntry {
    pub manager: String,
    pub operation: String,
    pub api_version: String,
    pub time: Option<String>,
    pub subresource: String,
    pub fields: FieldSet,
}

impl ManagedEntry {
    fn same_owner(
        &self,
        manager: &str,
        operation: &str,
        subresource: &str,
        api_version: &str,
    ) -> bool {
        self.manager == manager
            && self.operation == operation
            && self.subresource == subresource
            && (operation == "Apply" || self.api_version == api_version)
    }

    fn to_value(&self) -> Value {
        let mut v = json!({
            "manager": self.manager,
            "operation": self.operation,
            "apiVersion": self.api_version,
            "fieldsType": "FieldsV1",
            "fieldsV1": self.fields.to_fields_v1(),
        });
        if let Some(t) = &self.time {
            v["time"] = json!(t);
        }
        if !self.subresource.is_empty() {
            v["subresource"] = json!(self.subresource);
        }
        v
    }
}

/// Reads `metadata.managedFields`, dropping malformed entries (the API server resets what it
/// cannot read rather than failing the write).
pub fn read(obj: &Value) -> Vec<ManagedEntry> {
    let Some(list) = obj["metadata"]["managedFields"].as_array() else {
        return vec![];
    };
    list.iter()
        .filter_map(|e| {
            let fields = FieldSet::from_fields_v1(e.get("fieldsV1")?).ok()?;
            Some(ManagedEntry {
                manager: e.get("manager")?.as_str()?.to_string(),
                operation: e.get("operation")?.as_str()?.to_string(),
                api_version: e
                    .get("apiVersion")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                time: e.get("time").and_then(Value::as_str).map(str::to_string),
                subresource: e
                    .get("subresource")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                fields,
            })
        })
        .collect()
}

/// Writes the entries back in the API server's order: Apply before Update, then by time, then
/// by manager.
pub fn write(obj: &mut Value, mut entries: Vec<ManagedEntry>) {
    entries.retain(|e| !e.fields.is_empty());
    entries.sort_by(|a, b| {
        let op = |e: &ManagedEntry| if e.operation == "Apply" { 0 } else { 1 };
        op(a)
            .cmp(&op(b))
            .then_with(|| a.time.cmp(&b.time))
            .then_with(|| a.manager.cmp(&b.manager))
    });
    let Some(root) = obj.as_object_mut() else {
        return;
    };
    let meta = root
        .entry("metadata")
        .or_insert_with(|| Value::Object(Default::default()));
    let Some(meta) = meta.as_object_mut() else {
        return;
    };
    if entries.is_empty() {
        meta.remove("managedFields");
    } else {
        meta.insert(
            "managedFields".into(),
            Value::Array(entries.iter().map(ManagedEntry::to_value).collect()),
        );
    }
}

fn require_object(v: &Value) -> Result<(), SetError> {
    let meta_ok = v.get("metadata").is_none_or(Value::is_object);
    if v.is_object() && meta_ok {
        Ok(())
    } else {
        Err(SetError::Malformed {
            path: String::new(),
            message: "an object with an object `metadata` is required".into(),
        })
    }
}

/// Which part of the object a write addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The main resource of a kind with a status subresource: `status` is not owned here.
    MainWithStatus,
    /// The main resource of a kind without a status subresource.
    Main,
    /// The `status` subresource: only `status` is owned here.
    Status,
}

impl Scope {
    pub fn subresource(self) -> &'static str {
        if self == Scope::Status { "status" } else { "" }
    }
}

const NEVER_OWNED: &[&[&str]] = &[
    &["f:apiVersion"],
    &["f:kind"],
    &["f:metadata", "f:name"],
    &["f:metadata", "f:namespace"],
    &["f:metadata", "f:uid"],
    &["f:metadata", "f:resourceVersion"],
    &["f:metadata", "f:generation"],
    &["f:metadata", "f:creationTimestamp"],
    &["f:metadata", "f:deletionTimestamp"],
    &["f:metadata", "f:deletionGracePeriodSeconds"],
    &["f:metadata", "f:managedFields"],
    &["f:metadata", "f:selfLink"],
];

/// Strips fields nobody owns through this scope.
pub fn scoped(set: &FieldSet, scope: Scope) -> FieldSet {
    let s = set.without_subtrees(NEVER_OWNED);
    match scope {
        Scope::Main => s,
        Scope::MainWithStatus => s.without_subtrees(&[&["f:status"]]),
        Scope::Status => s.only_subtree(&["f:status"]),
    }
}

/// Who writes, for managedFields bookkeeping.
#[derive(Debug, Clone)]
pub struct Writer<'a> {
    pub manager: &'a str,
    pub api_version: &'a str,
    pub scope: Scope,
    pub now: &'a str,
}

/// Records an ordinary write (`operation: Update`): the writer takes the fields that changed
/// between `old` and `new`, and removed fields leave every owner.
pub fn track_update(
    old: Option<&Value>,
    new: &mut Value,
    schema: Option<&Schema>,
    w: &Writer,
) -> Result<(), SetError> {
    require_object(new)?;
    if let Some(o) = old {
        require_object(o)?;
    }
    let mut entries = if new["metadata"].get("managedFields").is_some() {
        read(new)
    } else {
        old.map(read).unwrap_or_default()
    };
    let (changed, removed) = set::diff(old, Some(new), schema)?;
    let changed = scoped(&changed, w.scope);
    let removed = scoped(&removed, w.scope);
    if changed.is_empty() && removed.is_empty() {
        write(new, entries);
        return Ok(());
    }
    for e in entries.iter_mut() {
        let before = e.fields.clone();
        e.fields = e.fields.difference(&changed).difference(&removed);
        if e.fields != before
            && e.same_owner(w.manager, "Update", w.scope.subresource(), w.api_version)
        {
            e.time = Some(w.now.to_string());
        }
    }
    match entries
        .iter_mut()
        .find(|e| e.same_owner(w.manager, "Update", w.scope.subresource(), w.api_version))
    {
        Some(e) => {
            e.fields.union(&changed);
            e.time = Some(w.now.to_string());
        }
        None if !changed.is_empty() => entries.push(ManagedEntry {
            manager: w.manager.to_string(),
            operation: "Update".into(),
            api_version: w.api_version.to_string(),
            time: Some(w.now.to_string()),
            subresource: w.scope.subresource().to_string(),
            fields: changed,
        }),
        None => {}
    }
    write(new, entries);
    Ok(())
}

/// The manager name the API server derives from a User-Agent when `fieldManager` is absent:
/// the part before the first `/`.
pub fn manager_from_user_agent(ua: Option<&str>) -> String {
    let ua = ua.unwrap_or_default();
    let name = ua.split('/').next().unwrap_or_default().trim();
    if name.is_empty() {
        "unknown".into()
    } else {
        name.chars().take(128).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::schema::builtin;

    fn w(manager: &str) -> Writer<'_> {
        Writer {
            manager,
            api_version: "v1",
            scope: Scope::MainWithStatus,
            now: "2024-01-01T00:00:00Z",
        }
    }

    #[test]
    fn create_records_every_field_except_identity_and_status() {
        let sch = builtin::schema_for("", "v1", "Service").unwrap();
        let mut new = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "labels": {"app": "web"}}, "spec": {"type": "ClusterIP"}, "status": {"loadBalancer": {}}});
        track_update(None, &mut new, Some(&sch), &w("kubectl-create")).unwrap();
        let mf = &new["metadata"]["managedFields"];
        assert_eq!(mf.as_array().unwrap().len(), 1);
        assert_eq!(mf[0]["manager"], "kubectl-create");
        assert_eq!(mf[0]["operation"], "Update");
        assert_eq!(
            mf[0]["fieldsV1"],
            json!({"f:metadata": {"f:labels": {"f:app": {}}}, "f:spec": {"f:type": {}}})
        );
    }

    #[test]
    fn an_update_takes_changed_fields_from_other_managers() {
        let sch = builtin::schema_for("", "v1", "Service").unwrap();
        let mut v1 = json!({"metadata": {"name": "web"}, "spec": {"type": "ClusterIP", "sessionAffinity": "None"}});
        track_update(None, &mut v1, Some(&sch), &w("a")).unwrap();
        let mut v2 = v1.clone();
        v2["spec"]["type"] = json!("NodePort");
        track_update(Some(&v1), &mut v2, Some(&sch), &w("b")).unwrap();
        let entries = read(&v2);
        let a = entries.iter().find(|e| e.manager == "a").unwrap();
        let b = entries.iter().find(|e| e.manager == "b").unwrap();
        assert_eq!(
            a.fields.to_fields_v1(),
            json!({"f:spec": {"f:sessionAffinity": {}}})
        );
        assert_eq!(b.fields.to_fields_v1(), json!({"f:spec": {"f:type": {}}}));
        // Removing a field drops it from its owner; an owner left with nothing disappears.
        let mut v3 = v2.clone();
        v3["spec"]
            .as_object_mut()
            .unwrap()
            .remove("sessionAffinity");
        track_update(Some(&v2), &mut v3, Some(&sch), &w("b")).unwrap();
        let managers: Vec<String> = read(&v3).into_iter().map(|e| e.manager).collect();
        assert_eq!(managers, ["b"]);
    }

    #[test]
    fn status_writes_own_only_status() {
        let sch = builtin::schema_for("", "v1", "Service").unwrap();
        let old = json!({"metadata": {"name": "web"}, "spec": {"type": "LoadBalancer"}});
        let mut new = old.clone();
        new["status"] = json!({"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}});
        let writer = Writer {
            manager: "ctl",
            api_version: "v1",
            scope: Scope::Status,
            now: "t",
        };
        track_update(Some(&old), &mut new, Some(&sch), &writer).unwrap();
        let e = &read(&new)[0];
        assert_eq!(e.subresource, "status");
        assert_eq!(
            e.fields.to_fields_v1(),
            json!({"f:status": {"f:loadBalancer": {"f:ingress": {}}}})
        );
    }

    #[test]
    fn managers_from_user_agents() {
        assert_eq!(
            manager_from_user_agent(Some("kubectl/v1.35.2 (linux/amd64) kubernetes/abc")),
            "kubectl"
        );
        assert_eq!(manager_from_user_agent(None), "unknown");
    }

    #[test]
    fn malformed_entries_are_dropped() {
        let obj = json!({"metadata": {"managedFields": [{"manager": "x", "operation": "Update", "fieldsV1": {"bad": {}}}, {"manager": "y", "operation": "Apply", "fieldsV1": {"f:a": {}}}]}});
        let e = read(&obj);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].manager, "y");
    }
}
