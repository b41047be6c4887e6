//! Field sets in the `FieldsV1` trie format of structured-merge-diff, and the schema-guided walks
//! that build them from objects (`set_of`), compare objects (`diff`) and remove owned fields
//! (`remove`).
//!
//! Path elements are kept in their wire spelling: `f:name` (struct field or map key),
//! `k:{"port":80,"protocol":"TCP"}` (associative-list item), `v:"value"` (set item) and `i:3`
//! (list index). A node is a member when it is a leaf (`{}`) or carries `".": {}`.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::apiserver::schema::{ListType, Schema};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSet {
    pub member: bool,
    pub children: BTreeMap<String, FieldSet>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetError {
    #[error(
        "{path}: associative list with keys has an element that omits key field {key:?} (and doesn't have default value)"
    )]
    MissingKey { path: String, key: String },
    #[error("{path}: duplicate entries for key {key}")]
    DuplicateKey { path: String, key: String },
    #[error("{path}: {message}")]
    Malformed { path: String, message: String },
}

impl FieldSet {
    pub fn leaf() -> Self {
        FieldSet {
            member: true,
            children: BTreeMap::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        !self.member && self.children.values().all(FieldSet::is_empty)
    }

    fn child(&mut self, key: String) -> &mut FieldSet {
        self.children.entry(key).or_default()
    }

    /// Parses `fieldsV1`.
    pub fn from_fields_v1(v: &Value) -> Result<FieldSet, SetError> {
        fn go(v: &Value, path: &str) -> Result<FieldSet, SetError> {
            let map = v.as_object().ok_or_else(|| SetError::Malformed {
                path: path.into(),
                message: "expected an object".into(),
            })?;
            let mut s = FieldSet::default();
            if map.is_empty() {
                s.member = true;
                return Ok(s);
            }
            for (k, child) in map {
                if k == "." {
                    s.member = true;
                    continue;
                }
                let valid = ["f:", "k:", "v:", "i:"].iter().any(|p| k.starts_with(p));
                if !valid {
                    return Err(SetError::Malformed {
                        path: path.into(),
                        message: format!("unknown path element {k:?}"),
                    });
                }
                s.children
                    .insert(k.clone(), go(child, &format!("{path}/{k}"))?);
            }
            Ok(s)
        }
        go(v, "")
    }

    /// Renders `fieldsV1`.
    pub fn to_fields_v1(&self) -> Value {
        let mut map = Map::new();
        if self.member && !self.children.is_empty() {
            map.insert(".".into(), Value::Object(Map::new()));
        }
        for (k, c) in &self.children {
            if !c.is_empty() {
                map.insert(k.clone(), c.to_fields_v1());
            }
        }
        Value::Object(map)
    }

    pub fn union(&mut self, other: &FieldSet) {
        self.member |= other.member;
        for (k, c) in &other.children {
            self.child(k.clone()).union(c);
        }
    }

    /// Members of `self` that are not members of `other`.
    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet {
            member: self.member && !other.member,
            children: BTreeMap::new(),
        };
        for (k, c) in &self.children {
            let d = match other.children.get(k) {
                Some(oc) => c.difference(oc),
                None => c.clone(),
            };
            if !d.is_empty() {
                out.children.insert(k.clone(), d);
            }
        }
        out
    }

    pub fn intersection(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet {
            member: self.member && other.member,
            children: BTreeMap::new(),
        };
        for (k, c) in &self.children {
            if let Some(oc) = other.children.get(k) {
                let i = c.intersection(oc);
                if !i.is_empty() {
                    out.children.insert(k.clone(), i);
                }
            }
        }
        out
    }

    /// Removes whole subtrees named by `prefixes` (each a path of elements).
    pub fn without_subtrees(&self, prefixes: &[&[&str]]) -> FieldSet {
        let mut out = self.clone();
        for p in prefixes {
            out.remove_subtree(p);
        }
        out
    }

    fn remove_subtree(&mut self, path: &[&str]) {
        match path {
            [] => {}
            [last] => {
                self.children.remove(*last);
            }
            [head, rest @ ..] => {
                if let Some(c) = self.children.get_mut(*head) {
                    c.remove_subtree(rest);
                }
            }
        }
    }

    /// Keeps only the subtree at `path`.
    pub fn only_subtree(&self, path: &[&str]) -> FieldSet {
        match path {
            [] => self.clone(),
            [head, rest @ ..] => {
                let mut out = FieldSet::default();
                if let Some(c) = self.children.get(*head) {
                    let sub = c.only_subtree(rest);
                    if !sub.is_empty() {
                        out.children.insert(head.to_string(), sub);
                    }
                }
                out
            }
        }
    }

    /// Paths of every member, each as a list of elements.
    pub fn members(&self) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        fn go(s: &FieldSet, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
            if s.member && !prefix.is_empty() {
                out.push(prefix.clone());
            }
            for (k, c) in &s.children {
                prefix.push(k.clone());
                go(c, prefix, out);
                prefix.pop();
            }
        }
        go(self, &mut Vec::new(), &mut out);
        out
    }

    /// True when the set has any member at or below `path`.
    pub fn has_at_or_below(&self, path: &[String]) -> bool {
        let mut cur = self;
        for p in path {
            match cur.children.get(p) {
                Some(c) => cur = c,
                None => return false,
            }
        }
        !cur.is_empty()
    }
}

/// Renders a path the way conflict messages do: `.spec.ports[port=80,protocol="TCP"].targetPort`.
pub fn display_path(path: &[String]) -> String {
    let mut s = String::new();
    for p in path {
        if let Some(f) = p.strip_prefix("f:") {
            s.push('.');
            s.push_str(f);
        } else if let Some(k) = p.strip_prefix("k:") {
            let parts = serde_json::from_str::<Map<String, Value>>(k)
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_else(|_| k.to_string());
            s.push_str(&format!("[{parts}]"));
        } else if let Some(v) = p.strip_prefix("v:") {
            s.push_str(&format!("[={v}]"));
        } else if let Some(i) = p.strip_prefix("i:") {
            s.push_str(&format!("[{i}]"));
        }
    }
    s
}

fn field_key(name: &str) -> String {
    format!("f:{name}")
}

/// The `k:` element of an associative-list item.
pub fn item_key(
    item: &Value,
    keys: &[String],
    item_schema: Option<&Schema>,
    path: &str,
) -> Result<String, SetError> {
    let mut m = Map::new();
    for k in keys {
        let v = item.get(k).filter(|v| !v.is_null()).cloned().or_else(|| {
            item_schema
                .and_then(|s| s.properties.get(k))
                .and_then(|s| s.default.clone())
        });
        match v {
            Some(v) => {
                m.insert(k.clone(), v);
            }
            None => {
                return Err(SetError::MissingKey {
                    path: path.into(),
                    key: k.clone(),
                });
            }
        }
    }
    Ok(format!("k:{}", Value::Object(m)))
}

pub fn value_key(v: &Value) -> String {
    format!("v:{v}")
}

/// Kind of node a schema makes of a value, for walks.
enum Shape<'a> {
    Granular,
    MapList(&'a [String]),
    SetList,
    Leaf,
}

fn shape<'a>(schema: Option<&'a Schema>, v: &Value) -> Shape<'a> {
    match (schema, v) {
        (Some(s), Value::Object(m))
            if s.is_granular_object() || (s.keeps_unknown_fields() && !s.map_atomic) =>
        {
            if m.is_empty() {
                Shape::Leaf
            } else {
                Shape::Granular
            }
        }
        (None, Value::Object(m)) if !m.is_empty() => Shape::Granular,
        (Some(s), Value::Array(_)) => match &s.list_type {
            ListType::Map(keys) => Shape::MapList(keys),
            ListType::Set => Shape::SetList,
            ListType::Atomic => Shape::Leaf,
        },
        _ => Shape::Leaf,
    }
}

fn child_schema<'a>(schema: Option<&'a Schema>, name: &str) -> Option<&'a Schema> {
    let s = schema?;
    if s.keeps_unknown_fields() && s.properties.is_empty() && s.additional.is_none() {
        return None;
    }
    s.child(name).map(|a| &**a)
}

fn items_schema(schema: Option<&Schema>) -> Option<&Schema> {
    schema.and_then(|s| s.items.as_deref())
}

/// The set of fields a value specifies.
///
/// Stored objects may repeat an associative-list key (a dual-stack Node has two `InternalIP`
/// addresses): the items sharing a key are then owned together, as structured-merge-diff does.
pub fn set_of(v: &Value, schema: Option<&Schema>) -> Result<FieldSet, SetError> {
    let mut out = FieldSet::default();
    walk(v, schema, &mut out, "", false)?;
    Ok(out)
}

/// Like [`set_of`], but a repeated associative-list key is an error (applied configurations
/// must name each item once).
pub fn set_of_strict(v: &Value, schema: Option<&Schema>) -> Result<FieldSet, SetError> {
    let mut out = FieldSet::default();
    walk(v, schema, &mut out, "", true)?;
    Ok(out)
}

fn walk_set(
    v: &Value,
    schema: Option<&Schema>,
    node: &mut FieldSet,
    path: &str,
) -> Result<(), SetError> {
    walk(v, schema, node, path, false)
}

fn walk(
    v: &Value,
    schema: Option<&Schema>,
    node: &mut FieldSet,
    path: &str,
    strict: bool,
) -> Result<(), SetError> {
    match shape(schema, v) {
        Shape::Granular => {
            for (k, child) in v.as_object().expect("granular is an object") {
                walk(
                    child,
                    child_schema(schema, k),
                    node.child(field_key(k)),
                    &format!("{path}.{k}"),
                    strict,
                )?;
            }
        }
        Shape::MapList(keys) => {
            let is = items_schema(schema);
            for (i, item) in v.as_array().expect("list").iter().enumerate() {
                let key = item_key(item, keys, is, &format!("{path}[{i}]"))?;
                if strict && node.children.get(&key).is_some_and(|c| c.member) {
                    return Err(SetError::DuplicateKey {
                        path: path.into(),
                        key: display_path(&[key]),
                    });
                }
                let c = node.child(key);
                c.member = true;
                if let Value::Object(fields) = item {
                    for (k, child) in fields {
                        walk(
                            child,
                            child_schema(is, k),
                            c.child(field_key(k)),
                            &format!("{path}[{i}].{k}"),
                            strict,
                        )?;
                    }
                }
            }
        }
        Shape::SetList => {
            for item in v.as_array().expect("list") {
                node.child(value_key(item)).member = true;
            }
        }
        Shape::Leaf => node.member = true,
    }
    Ok(())
}

/// Compares two versions of a value: the fields `new` adds or changes, and the fields `old` had
/// that `new` lacks.
pub fn diff(
    old: Option<&Value>,
    new: Option<&Value>,
    schema: Option<&Schema>,
) -> Result<(FieldSet, FieldSet), SetError> {
    let mut changed = FieldSet::default();
    let mut removed = FieldSet::default();
    walk_diff(old, new, schema, &mut changed, &mut removed, "")?;
    Ok((changed, removed))
}

fn walk_diff(
    old: Option<&Value>,
    new: Option<&Value>,
    schema: Option<&Schema>,
    ch: &mut FieldSet,
    rm: &mut FieldSet,
    path: &str,
) -> Result<(), SetError> {
    match (old, new) {
        (None, None) => Ok(()),
        (Some(o), None) => walk_set(o, schema, rm, path),
        (None, Some(n)) => walk_set(n, schema, ch, path),
        (Some(o), Some(n)) => {
            if o == n {
                return Ok(());
            }
            match (shape(schema, o), shape(schema, n)) {
                (Shape::Granular, Shape::Granular) => {
                    let (om, nm) = (
                        o.as_object().expect("object"),
                        n.as_object().expect("object"),
                    );
                    for (k, nv) in nm {
                        let key = field_key(k);
                        let mut c = FieldSet::default();
                        let mut r = FieldSet::default();
                        walk_diff(
                            om.get(k),
                            Some(nv),
                            child_schema(schema, k),
                            &mut c,
                            &mut r,
                            &format!("{path}.{k}"),
                        )?;
                        merge_into(ch, key.clone(), c);
                        merge_into(rm, key, r);
                    }
                    for (k, ov) in om {
                        if !nm.contains_key(k) {
                            walk_set(
                                ov,
                                child_schema(schema, k),
                                rm.child(field_key(k)),
                                &format!("{path}.{k}"),
                            )?;
                        }
                    }
                    Ok(())
                }
                (Shape::MapList(keys), Shape::MapList(_)) => {
                    let is = items_schema(schema);
                    let index = |list: &Value| -> Result<BTreeMap<String, Vec<Value>>, SetError> {
                        let mut m: BTreeMap<String, Vec<Value>> = BTreeMap::new();
                        for (i, item) in list.as_array().expect("list").iter().enumerate() {
                            m.entry(item_key(item, keys, is, &format!("{path}[{i}]"))?)
                                .or_default()
                                .push(item.clone());
                        }
                        Ok(m)
                    };
                    let (oi, ni) = (index(o)?, index(n)?);
                    for (k, nvs) in &ni {
                        match oi.get(k) {
                            None => {
                                let c = ch.child(k.clone());
                                c.member = true;
                                for nv in nvs {
                                    if let Value::Object(fields) = nv {
                                        for (fk, fv) in fields {
                                            walk_set(
                                                fv,
                                                child_schema(is, fk),
                                                c.child(field_key(fk)),
                                                path,
                                            )?;
                                        }
                                    }
                                }
                            }
                            // Items sharing a key change together.
                            Some(ovs) if ovs.len() > 1 || nvs.len() > 1 => {
                                if ovs != nvs {
                                    ch.child(k.clone()).member = true;
                                }
                            }
                            Some(ovs) => {
                                let (ov, nv) = (&ovs[0], &nvs[0]);
                                let (om, nm) = (
                                    ov.as_object().cloned().unwrap_or_default(),
                                    nv.as_object().cloned().unwrap_or_default(),
                                );
                                for (fk, fv) in &nm {
                                    let mut c = FieldSet::default();
                                    let mut r = FieldSet::default();
                                    walk_diff(
                                        om.get(fk),
                                        Some(fv),
                                        child_schema(is, fk),
                                        &mut c,
                                        &mut r,
                                        path,
                                    )?;
                                    merge_into(ch.child(k.clone()), field_key(fk), c);
                                    merge_into(rm.child(k.clone()), field_key(fk), r);
                                }
                                for (fk, fv) in &om {
                                    if !nm.contains_key(fk) {
                                        walk_set(
                                            fv,
                                            child_schema(is, fk),
                                            rm.child(k.clone()).child(field_key(fk)),
                                            path,
                                        )?;
                                    }
                                }
                            }
                        }
                    }
                    for (k, ovs) in &oi {
                        if !ni.contains_key(k) {
                            let r = rm.child(k.clone());
                            r.member = true;
                            for ov in ovs {
                                if let Value::Object(fields) = ov {
                                    for (fk, fv) in fields {
                                        walk_set(
                                            fv,
                                            child_schema(is, fk),
                                            r.child(field_key(fk)),
                                            path,
                                        )?;
                                    }
                                }
                            }
                        }
                    }
                    Ok(())
                }
                (Shape::SetList, Shape::SetList) => {
                    let (oa, na) = (o.as_array().expect("list"), n.as_array().expect("list"));
                    for v in na {
                        if !oa.contains(v) {
                            ch.child(value_key(v)).member = true;
                        }
                    }
                    for v in oa {
                        if !na.contains(v) {
                            rm.child(value_key(v)).member = true;
                        }
                    }
                    Ok(())
                }
                _ => {
                    // Changed shape or a changed leaf: the new value is owned anew.
                    walk_set(n, schema, ch, path)?;
                    let mut old_set = FieldSet::default();
                    walk_set(o, schema, &mut old_set, path)?;
                    let mut new_set = FieldSet::default();
                    walk_set(n, schema, &mut new_set, path)?;
                    rm.union(&old_set.difference(&new_set));
                    Ok(())
                }
            }
        }
    }
}

fn merge_into(parent: &mut FieldSet, key: String, sub: FieldSet) {
    if !sub.is_empty() {
        parent.child(key).union(&sub);
    }
}

/// Removes from `v` every member of `set`: fields, list items, set values.
pub fn remove(v: &mut Value, set: &FieldSet, schema: Option<&Schema>) {
    for (k, sub) in &set.children {
        if let Some(name) = k.strip_prefix("f:") {
            let Value::Object(map) = v else { continue };
            if sub.member {
                map.remove(name);
            } else if let Some(child) = map.get_mut(name) {
                remove(child, sub, child_schema(schema, name));
            }
        } else if k.starts_with("k:") {
            let Some(ListType::Map(keys)) = schema.map(|s| &s.list_type) else {
                continue;
            };
            let is = items_schema(schema);
            let Value::Array(items) = v else { continue };
            if sub.member {
                items.retain(|item| {
                    item_key(item, keys, is, "").ok().as_deref() != Some(k.as_str())
                });
            } else {
                for item in items.iter_mut() {
                    if item_key(item, keys, is, "").ok().as_deref() == Some(k.as_str()) {
                        remove(item, sub, is);
                    }
                }
            }
        } else if k.starts_with("v:")
            && sub.member
            && let Value::Array(items) = v
        {
            items.retain(|item| value_key(item) != *k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::schema::builtin;
    use serde_json::json;

    fn svc_schema() -> std::sync::Arc<Schema> {
        builtin::schema_for("", "v1", "Service").unwrap()
    }

    #[test]
    fn fields_v1_round_trip() {
        let v = json!({"f:metadata": {"f:labels": {"f:app": {}}}, "f:spec": {"f:ports": {"k:{\"port\":80,\"protocol\":\"TCP\"}": {".": {}, "f:port": {}}}}});
        let s = FieldSet::from_fields_v1(&v).unwrap();
        assert_eq!(s.to_fields_v1(), v);
        assert!(FieldSet::from_fields_v1(&json!({"x:bad": {}})).is_err());
        assert!(FieldSet::from_fields_v1(&json!({"f:a": 1})).is_err());
    }

    #[test]
    fn set_of_a_service_uses_list_keys_and_defaults() {
        let svc = json!({"metadata": {"labels": {"app": "web"}}, "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}], "type": "LoadBalancer"}});
        let s = set_of(&svc, Some(&svc_schema())).unwrap();
        assert_eq!(
            s.to_fields_v1(),
            json!({"f:metadata": {"f:labels": {"f:app": {}}},
                   "f:spec": {"f:ports": {"k:{\"port\":80,\"protocol\":\"TCP\"}": {".": {}, "f:port": {}, "f:targetPort": {}}},
                              "f:selector": {}, "f:type": {}}})
        );
    }

    #[test]
    fn missing_and_duplicate_keys_are_errors() {
        let sch = svc_schema();
        let no_port = json!({"spec": {"ports": [{"targetPort": 80}]}});
        assert!(matches!(
            set_of(&no_port, Some(&sch)),
            Err(SetError::MissingKey { .. })
        ));
        let dup = json!({"spec": {"ports": [{"port": 80}, {"port": 80, "protocol": "TCP"}]}});
        assert!(matches!(
            set_of_strict(&dup, Some(&sch)),
            Err(SetError::DuplicateKey { .. })
        ));
        assert!(
            set_of(&dup, Some(&sch)).is_ok(),
            "stored objects may repeat a key"
        );
    }

    #[test]
    fn diff_reports_changed_and_removed_fields() {
        let sch = svc_schema();
        let old = json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}, {"port": 81, "protocol": "TCP"}]}});
        let new = json!({"metadata": {"labels": {"a": "1", "c": "3"}}, "spec": {"ports": [{"port": 80, "protocol": "TCP", "targetPort": 8080}]}});
        let (ch, rm) = diff(Some(&old), Some(&new), Some(&sch)).unwrap();
        let p80 = "k:{\"port\":80,\"protocol\":\"TCP\"}";
        let p81 = "k:{\"port\":81,\"protocol\":\"TCP\"}";
        assert_eq!(
            ch.to_fields_v1(),
            json!({"f:metadata": {"f:labels": {"f:c": {}}}, "f:spec": {"f:ports": {p80: {"f:targetPort": {}}}}})
        );
        assert_eq!(
            rm.to_fields_v1(),
            json!({"f:metadata": {"f:labels": {"f:b": {}}}, "f:spec": {"f:ports": {p81: {".": {}, "f:port": {}, "f:protocol": {}}}}})
        );
    }

    #[test]
    fn set_algebra() {
        let a = FieldSet::from_fields_v1(&json!({"f:spec": {"f:a": {}, "f:b": {}}})).unwrap();
        let b = FieldSet::from_fields_v1(&json!({"f:spec": {"f:b": {}, "f:c": {}}})).unwrap();
        assert_eq!(
            a.difference(&b).to_fields_v1(),
            json!({"f:spec": {"f:a": {}}})
        );
        assert_eq!(
            a.intersection(&b).to_fields_v1(),
            json!({"f:spec": {"f:b": {}}})
        );
        let mut u = a.clone();
        u.union(&b);
        assert_eq!(u.members().len(), 3);
        assert!(u.has_at_or_below(&["f:spec".into()]));
        assert!(!u.has_at_or_below(&["f:status".into()]));
        assert_eq!(u.without_subtrees(&[&["f:spec", "f:a"]]).members().len(), 2);
        assert_eq!(
            u.only_subtree(&["f:spec", "f:c"]).members(),
            vec![vec!["f:spec".to_string(), "f:c".into()]]
        );
    }

    #[test]
    fn remove_drops_fields_items_and_values() {
        let sch = svc_schema();
        let mut v = json!({"metadata": {"finalizers": ["a", "b"], "labels": {"x": "1", "y": "2"}}, "spec": {"ports": [{"port": 80, "protocol": "TCP"}, {"port": 81, "protocol": "TCP", "name": "b"}]}});
        let set = FieldSet::from_fields_v1(&json!({
            "f:metadata": {"f:finalizers": {"v:\"a\"": {}}, "f:labels": {"f:x": {}}},
            "f:spec": {"f:ports": {"k:{\"port\":80,\"protocol\":\"TCP\"}": {}, "k:{\"port\":81,\"protocol\":\"TCP\"}": {"f:name": {}}}}
        }))
        .unwrap();
        remove(&mut v, &set, Some(&sch));
        assert_eq!(
            v,
            json!({"metadata": {"finalizers": ["b"], "labels": {"y": "2"}}, "spec": {"ports": [{"port": 81, "protocol": "TCP"}]}})
        );
    }

    #[test]
    fn paths_display_like_conflict_messages() {
        let p = vec![
            "f:spec".to_string(),
            "f:ports".into(),
            "k:{\"port\":80,\"protocol\":\"TCP\"}".into(),
            "f:targetPort".into(),
        ];
        assert_eq!(
            display_path(&p),
            ".spec.ports[port=80,protocol=\"TCP\"].targetPort"
        );
        assert_eq!(
            display_path(&[
                "f:metadata".to_string(),
                "f:finalizers".into(),
                "v:\"x\"".into()
            ]),
            ".metadata.finalizers[=\"x\"]"
        );
    }

    #[test]
    fn dual_stack_node_addresses_share_a_key() {
        let node = builtin::schema_for("", "v1", "Node").unwrap();
        let v4 = json!({"status": {"addresses": [{"type": "InternalIP", "address": "192.0.2.11"}, {"type": "Hostname", "address": "node1"}]}});
        let dual = json!({"status": {"addresses": [{"type": "InternalIP", "address": "192.0.2.11"}, {"type": "InternalIP", "address": "2001:db8::11"}, {"type": "Hostname", "address": "node1"}]}});
        let (ch, rm) = diff(Some(&v4), Some(&dual), Some(&node)).unwrap();
        assert_eq!(
            ch.to_fields_v1(),
            json!({"f:status": {"f:addresses": {"k:{\"type\":\"InternalIP\"}": {}}}})
        );
        assert!(rm.is_empty());
        let (ch, _) = diff(Some(&dual), Some(&dual), Some(&node)).unwrap();
        assert!(ch.is_empty());
        let (_, rm) = diff(Some(&dual), Some(&v4), Some(&node)).unwrap();
        assert!(rm.is_empty(), "the key stays, with one item");
    }
}
