//! Strategic merge patch, approximated from the schema: lists the API declares associative are
//! merged by their (first) key, sets by value, everything else is replaced; maps merge.
//!
//! Directives: `$patch: replace|delete|merge` (in maps and list items), `$retainKeys`,
//! `$setElementOrder/<field>` and `$deleteFromPrimitiveList/<field>`.

use serde_json::{Map, Value};

use super::PatchError;
use crate::apiserver::schema::{ListType, Schema};

const PATCH: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ORDER: &str = "$setElementOrder/";
const DELETE_PRIMITIVE: &str = "$deleteFromPrimitiveList/";

fn bad(msg: impl Into<String>) -> PatchError {
    PatchError::BadRequest(msg.into())
}

/// Applies `patch` to `original`.
pub fn apply(
    original: &Value,
    patch: &Value,
    schema: Option<&Schema>,
) -> Result<Value, PatchError> {
    let patch = patch.as_object().ok_or_else(|| {
        bad("error decoding patch: a strategic merge patch must be a JSON object")
    })?;
    let orig = original.as_object().cloned().unwrap_or_default();
    match merge_map(&orig, patch, schema)? {
        Some(m) => Ok(Value::Object(m)),
        None => Ok(Value::Object(Map::new())),
    }
}

fn child<'a>(schema: Option<&'a Schema>, name: &str) -> Option<&'a Schema> {
    let s = schema?;
    if s.keeps_unknown_fields() && s.properties.is_empty() && s.additional.is_none() {
        return None;
    }
    s.child(name).map(|a| &**a)
}

/// Removes directive keys from a value taken from the patch as a whole.
fn strip(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), strip(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(
            a.iter()
                .filter(|i| {
                    !i.as_object().is_some_and(|m| {
                        m.get(PATCH)
                            .is_some_and(|p| p == "delete" || p == "replace")
                            && m.len() <= 2
                    })
                })
                .map(strip)
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Merges a map; `None` means the map is deleted (`$patch: delete`).
fn merge_map(
    orig: &Map<String, Value>,
    patch: &Map<String, Value>,
    schema: Option<&Schema>,
) -> Result<Option<Map<String, Value>>, PatchError> {
    match patch.get(PATCH) {
        None => {}
        Some(Value::String(s)) if s == "merge" => {}
        Some(Value::String(s)) if s == "replace" => {
            return Ok(Some(
                strip(&Value::Object(patch.clone()))
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            ));
        }
        Some(Value::String(s)) if s == "delete" => return Ok(None),
        Some(other) => {
            return Err(bad(format!(
                "unknown patch type: {other} in map: {}",
                Value::Object(patch.clone())
            )));
        }
    }
    let mut out = orig.clone();
    let mut orders: Vec<(String, Vec<Value>)> = Vec::new();
    for (k, pv) in patch {
        if let Some(field) = k.strip_prefix(SET_ORDER) {
            let order = pv
                .as_array()
                .ok_or_else(|| bad(format!("invalid {k}: must be a list")))?;
            orders.push((field.to_string(), order.clone()));
            continue;
        }
        if let Some(field) = k.strip_prefix(DELETE_PRIMITIVE) {
            let drop = pv
                .as_array()
                .ok_or_else(|| bad(format!("invalid {k}: must be a list")))?;
            if let Some(Value::Array(items)) = out.get_mut(field) {
                items.retain(|i| !drop.contains(i));
            }
            continue;
        }
        if k == PATCH || k == RETAIN_KEYS {
            continue;
        }
        if k.starts_with('$') {
            return Err(bad(format!(
                "unknown strategic merge patch directive {k:?}"
            )));
        }
        if pv.is_null() {
            out.remove(k);
            continue;
        }
        let cs = child(schema, k);
        let merged = match out.get(k) {
            Some(ov) => merge_value(ov, pv, cs)?,
            None => Some(insert_value(pv, cs)?),
        };
        match merged {
            Some(v) => {
                out.insert(k.clone(), v);
            }
            None => {
                out.remove(k);
            }
        }
    }
    if let Some(retain) = patch.get(RETAIN_KEYS) {
        let keep: Vec<&str> = retain
            .as_array()
            .ok_or_else(|| bad("$retainKeys must be a list of strings"))?
            .iter()
            .map(|v| {
                v.as_str()
                    .ok_or_else(|| bad("$retainKeys must be a list of strings"))
            })
            .collect::<Result<_, _>>()?;
        for k in patch.keys().filter(|k| !k.starts_with('$')) {
            if !patch[k].is_null() && !keep.contains(&k.as_str()) {
                return Err(PatchError::Invalid(format!(
                    "$retainKeys does not contain field {k:?} set in the patch"
                )));
            }
        }
        out.retain(|k, _| keep.contains(&k.as_str()));
    }
    for (field, order) in orders {
        let key = match child(schema, &field).map(|s| &s.list_type) {
            Some(ListType::Map(keys)) => keys.first().cloned(),
            _ => None,
        };
        if let Some(Value::Array(items)) = out.get_mut(&field) {
            reorder(items, &order, key.as_deref());
        }
    }
    Ok(Some(out))
}

/// A value new to the original: nested lists still honour delete directives.
fn insert_value(pv: &Value, schema: Option<&Schema>) -> Result<Value, PatchError> {
    match pv {
        Value::Object(pm) => Ok(merge_map(&Map::new(), pm, schema)?
            .map(Value::Object)
            .unwrap_or(Value::Object(Map::new()))),
        _ => Ok(strip(pv)),
    }
}

fn merge_value(
    orig: &Value,
    pv: &Value,
    schema: Option<&Schema>,
) -> Result<Option<Value>, PatchError> {
    match (orig, pv) {
        (Value::Object(om), Value::Object(pm)) => Ok(merge_map(om, pm, schema)?.map(Value::Object)),
        (Value::Array(oa), Value::Array(pa)) => {
            let list_type = schema.map(|s| s.list_type.clone()).unwrap_or_default();
            Ok(Some(Value::Array(merge_list(
                oa,
                pa,
                &list_type,
                schema.and_then(|s| s.items.as_deref()),
            )?)))
        }
        (_, Value::Object(pm)) => Ok(merge_map(&Map::new(), pm, schema)?.map(Value::Object)),
        _ => Ok(Some(strip(pv))),
    }
}

fn merge_list(
    orig: &[Value],
    patch: &[Value],
    list_type: &ListType,
    items: Option<&Schema>,
) -> Result<Vec<Value>, PatchError> {
    // A `{"$patch": "replace"}` element replaces the whole list with the other elements.
    if patch
        .iter()
        .any(|i| i.get(PATCH).and_then(Value::as_str) == Some("replace"))
    {
        return Ok(patch
            .iter()
            .filter(|i| i.get(PATCH).is_none())
            .map(strip)
            .collect());
    }
    match list_type {
        ListType::Map(keys) => {
            let key = keys.first().map(String::as_str).unwrap_or("name");
            let mut out: Vec<Value> = orig.to_vec();
            // A key that several items share (a dual-stack Node's two InternalIP addresses)
            // cannot be merged item by item: the patch's items for it replace the original's.
            let count = |list: &[Value], k: &Value| {
                list.iter()
                    .filter(|i| i.get(PATCH).is_none() && i.get(key) == Some(k))
                    .count()
            };
            let mut replaced: Vec<Value> = Vec::new();
            for p in patch {
                if let Some(pk) = p.get(key).filter(|_| p.get(PATCH).is_none())
                    && (count(patch, pk) > 1 || count(orig, pk) > 1)
                {
                    if !replaced.contains(pk) {
                        out.retain(|o| o.get(key) != Some(pk));
                        replaced.push(pk.clone());
                    }
                    out.push(strip(p));
                    continue;
                }
                let pm = p.as_object().ok_or_else(|| {
                    bad(format!(
                        "invalid list item {p}: expected an object with merge key {key:?}"
                    ))
                })?;
                let pk = pm.get(key).ok_or_else(|| {
                    PatchError::Invalid(format!(
                        "map: {p} does not contain declared merge key: {key}"
                    ))
                })?;
                let pos = out.iter().position(|o| o.get(key) == Some(pk));
                match (pm.get(PATCH).and_then(Value::as_str), pos) {
                    (Some("delete"), Some(i)) => {
                        out.remove(i);
                    }
                    (Some("delete"), None) => {}
                    (_, Some(i)) => {
                        let om = out[i].as_object().cloned().unwrap_or_default();
                        match merge_map(&om, pm, items)? {
                            Some(m) => out[i] = Value::Object(m),
                            None => {
                                out.remove(i);
                            }
                        }
                    }
                    (_, None) => {
                        if let Some(m) = merge_map(&Map::new(), pm, items)? {
                            out.push(Value::Object(m));
                        }
                    }
                }
            }
            Ok(out)
        }
        ListType::Set => {
            let mut out: Vec<Value> = orig.to_vec();
            for p in patch {
                if p.is_object() || p.is_array() {
                    return Err(bad(format!("invalid item {p} for a list of scalars")));
                }
                if !out.contains(p) {
                    out.push(p.clone());
                }
            }
            Ok(out)
        }
        ListType::Atomic => Ok(patch.iter().map(strip).collect()),
    }
}

/// Orders `items` as `order` lists them; items it does not mention keep their place after.
fn reorder(items: &mut Vec<Value>, order: &[Value], key: Option<&str>) {
    let ident = |v: &Value| -> Value {
        match key {
            Some(k) => v.get(k).cloned().unwrap_or(Value::Null),
            None => v.clone(),
        }
    };
    let wanted: Vec<Value> = order.iter().map(&ident).collect();
    let mut sorted: Vec<Value> = Vec::with_capacity(items.len());
    for w in &wanted {
        if let Some(pos) = items.iter().position(|i| ident(i) == *w) {
            sorted.push(items.remove(pos));
        }
    }
    sorted.append(items);
    *items = sorted;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::schema::builtin;
    use serde_json::json;

    fn pod() -> std::sync::Arc<Schema> {
        builtin::schema_for("", "v1", "Pod").unwrap()
    }

    fn smp(orig: Value, patch: Value) -> Result<Value, PatchError> {
        apply(&orig, &patch, Some(&pod()))
    }

    #[test]
    fn containers_merge_by_name() {
        let orig = json!({"spec": {"containers": [{"name": "a", "image": "x:1"}, {"name": "b", "image": "y:1"}]}});
        let out = smp(orig, json!({"spec": {"containers": [{"name": "b", "image": "y:2"}, {"name": "c", "image": "z"}]}})).unwrap();
        assert_eq!(
            out["spec"]["containers"],
            json!([{"name": "a", "image": "x:1"}, {"name": "b", "image": "y:2"}, {"name": "c", "image": "z"}])
        );
    }

    #[test]
    fn delete_and_replace_directives() {
        let orig = json!({"spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}], "nodeSelector": {"k": "v"}}});
        let out = smp(
            orig.clone(),
            json!({"spec": {"containers": [{"name": "a", "$patch": "delete"}]}}),
        )
        .unwrap();
        assert_eq!(
            out["spec"]["containers"],
            json!([{"name": "b", "image": "y"}])
        );
        let out = smp(
            orig.clone(),
            json!({"spec": {"containers": [{"$patch": "replace"}, {"name": "z", "image": "q"}]}}),
        )
        .unwrap();
        assert_eq!(
            out["spec"]["containers"],
            json!([{"name": "z", "image": "q"}])
        );
        let out = smp(
            orig.clone(),
            json!({"spec": {"nodeSelector": {"$patch": "replace", "n": "m"}}}),
        )
        .unwrap();
        assert_eq!(out["spec"]["nodeSelector"], json!({"n": "m"}));
        let out = smp(
            orig,
            json!({"spec": {"nodeSelector": {"$patch": "delete"}}}),
        )
        .unwrap();
        assert!(out["spec"].get("nodeSelector").is_none());
    }

    #[test]
    fn env_and_ports_merge_and_atomic_lists_replace() {
        let orig = json!({"spec": {"containers": [{"name": "a", "env": [{"name": "X", "value": "1"}], "ports": [{"containerPort": 80}]}], "tolerations": [{"key": "a"}]}});
        let out = smp(
            orig,
            json!({"spec": {"containers": [{"name": "a", "env": [{"name": "Y", "value": "2"}], "ports": [{"containerPort": 443}]}], "tolerations": [{"key": "b"}]}}),
        )
        .unwrap();
        let c = &out["spec"]["containers"][0];
        assert_eq!(
            c["env"],
            json!([{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}])
        );
        assert_eq!(
            c["ports"],
            json!([{"containerPort": 80}, {"containerPort": 443}])
        );
        assert_eq!(out["spec"]["tolerations"], json!([{"key": "b"}]));
    }

    #[test]
    fn set_element_order_retain_keys_and_primitive_deletes() {
        let orig = json!({"metadata": {"finalizers": ["a", "b", "c"]}, "spec": {"containers": [{"name": "a"}, {"name": "b"}], "volumes": [{"name": "v", "emptyDir": {}, "hostPath": {"path": "/x"}}]}});
        let out = smp(
            orig,
            json!({
                "metadata": {"$deleteFromPrimitiveList/finalizers": ["b"]},
                "spec": {"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}],
                         "volumes": [{"name": "v", "$retainKeys": ["name", "hostPath"], "hostPath": {"path": "/y"}}]}
            }),
        )
        .unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!(["a", "c"]));
        assert_eq!(
            out["spec"]["containers"],
            json!([{"name": "b"}, {"name": "a"}])
        );
        assert_eq!(
            out["spec"]["volumes"],
            json!([{"name": "v", "hostPath": {"path": "/y"}}])
        );
    }

    #[test]
    fn service_ports_merge_by_port() {
        let svc = builtin::schema_for("", "v1", "Service").unwrap();
        let orig = json!({"spec": {"ports": [{"port": 80, "targetPort": 80}, {"port": 443}]}});
        let out = apply(
            &orig,
            &json!({"spec": {"ports": [{"port": 80, "targetPort": 8080}]}}),
            Some(&svc),
        )
        .unwrap();
        assert_eq!(
            out["spec"]["ports"],
            json!([{"port": 80, "targetPort": 8080}, {"port": 443}])
        );
    }

    #[test]
    fn malformed_patches_are_errors() {
        let orig = json!({"spec": {"containers": [{"name": "a"}]}});
        assert!(matches!(
            smp(
                orig.clone(),
                json!({"spec": {"containers": [{"image": "no-name"}]}})
            ),
            Err(PatchError::Invalid(_))
        ));
        assert!(matches!(
            smp(orig.clone(), json!({"spec": {"containers": ["str"]}})),
            Err(PatchError::BadRequest(_))
        ));
        assert!(matches!(
            smp(orig.clone(), json!({"spec": {"$patch": "explode"}})),
            Err(PatchError::BadRequest(_))
        ));
        assert!(matches!(
            smp(orig.clone(), json!({"spec": {"$bogus": 1}})),
            Err(PatchError::BadRequest(_))
        ));
        assert!(matches!(
            smp(orig.clone(), json!({"spec": {"$retainKeys": "x"}})),
            Err(PatchError::BadRequest(_))
        ));
        assert!(matches!(
            smp(
                orig.clone(),
                json!({"spec": {"$retainKeys": ["a"], "b": 1}})
            ),
            Err(PatchError::Invalid(_))
        ));
        assert!(matches!(
            smp(
                json!({"metadata": {"finalizers": ["a"]}}),
                json!({"metadata": {"finalizers": [{"x": 1}]}})
            ),
            Err(PatchError::BadRequest(_))
        ));
        assert!(apply(&orig, &json!([1]), None).is_err());
    }

    #[test]
    fn untyped_fields_merge_like_json_merge_patch() {
        let orig = json!({"data": {"a": "1"}, "list": [1, 2]});
        let out = apply(
            &orig,
            &json!({"data": {"b": "2", "a": null}, "list": [3]}),
            None,
        )
        .unwrap();
        assert_eq!(out, json!({"data": {"b": "2"}, "list": [3]}));
    }

    #[test]
    fn items_sharing_a_merge_key_are_replaced_together() {
        let node = builtin::schema_for("", "v1", "Node").unwrap();
        let orig = json!({"status": {"addresses": [{"type": "InternalIP", "address": "192.0.2.11"}, {"type": "Hostname", "address": "node1"}]}});
        let patch = json!({"status": {"addresses": [{"type": "InternalIP", "address": "192.0.2.11"}, {"type": "InternalIP", "address": "2001:db8::11"}]}});
        let out = apply(&orig, &patch, Some(&node)).unwrap();
        assert_eq!(
            out["status"]["addresses"],
            json!([{"type": "Hostname", "address": "node1"}, {"type": "InternalIP", "address": "192.0.2.11"}, {"type": "InternalIP", "address": "2001:db8::11"}])
        );
        // And back to one address of that type.
        let single =
            json!({"status": {"addresses": [{"type": "InternalIP", "address": "192.0.2.12"}]}});
        let out = apply(&out, &single, Some(&node)).unwrap();
        let internal: Vec<&Value> = out["status"]["addresses"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["type"] == "InternalIP")
            .collect();
        assert_eq!(
            internal,
            [&json!({"type": "InternalIP", "address": "192.0.2.12"})]
        );
    }
}
