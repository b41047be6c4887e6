//! CustomResourceDefinitions: validation of the CRD object itself, the resources it serves
//! (one [`ResourceDef`] per served version, all sharing one storage collection), and the status
//! the API server reports (`NamesAccepted`, `Established`, `acceptedNames`, `storedVersions`).

use std::sync::Arc;

use serde_json::{Value, json};

use super::error::FieldError;
use super::registry::{Behavior, PrinterColumn, ResourceDef};
use super::schema::{Schema, Ty, builtin};

/// One served version of a CRD.
pub struct CrdVersion {
    pub def: ResourceDef,
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(*p)?;
    }
    cur.as_str()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Validates a CRD object, returning field errors in the API server's shape.
pub fn validate(crd: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let name = str_at(crd, &["metadata", "name"]).unwrap_or_default();
    let group = str_at(crd, &["spec", "group"]).unwrap_or_default();
    let plural = str_at(crd, &["spec", "names", "plural"]).unwrap_or_default();
    if group.is_empty() {
        errs.push(FieldError::required("spec.group", ""));
    } else if !group.contains('.') {
        errs.push(FieldError::invalid(
            "spec.group",
            json!(group),
            "should be a domain with at least one dot",
        ));
    }
    if plural.is_empty() {
        errs.push(FieldError::required("spec.names.plural", ""));
    }
    if str_at(crd, &["spec", "names", "kind"])
        .unwrap_or_default()
        .is_empty()
    {
        errs.push(FieldError::required("spec.names.kind", ""));
    }
    if !group.is_empty() && !plural.is_empty() && name != format!("{plural}.{group}") {
        errs.push(FieldError::invalid(
            "metadata.name",
            json!(name),
            "must be spec.names.plural+\".\"+spec.group",
        ));
    }
    match str_at(crd, &["spec", "scope"]) {
        Some("Namespaced" | "Cluster") => {}
        Some(other) => errs.push(FieldError::not_supported(
            "spec.scope",
            json!(other),
            &["Cluster", "Namespaced"],
        )),
        None => errs.push(FieldError::required("spec.scope", "")),
    }
    let versions = crd["spec"]["versions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if versions.is_empty() {
        errs.push(FieldError::required(
            "spec.versions",
            "must have exactly one version marked as storage version",
        ));
    }
    let storage_count = versions
        .iter()
        .filter(|v| v["storage"].as_bool() == Some(true))
        .count();
    if !versions.is_empty() && storage_count != 1 {
        errs.push(FieldError::invalid(
            "spec.versions",
            json!(versions.len()),
            "must have exactly one version marked as storage version",
        ));
    }
    for (i, v) in versions.iter().enumerate() {
        if v["name"].as_str().unwrap_or_default().is_empty() {
            errs.push(FieldError::required(format!("spec.versions[{i}].name"), ""));
        }
        match v.pointer("/schema/openAPIV3Schema") {
            None => errs.push(FieldError::required(
                format!("spec.versions[{i}].schema.openAPIV3Schema"),
                "schemas are required",
            )),
            Some(s) => {
                if let Err(e) = Schema::from_openapi(s) {
                    errs.push(FieldError::invalid(
                        format!("spec.versions[{i}].schema.openAPIV3Schema"),
                        Value::String(String::new()),
                        e.to_string(),
                    ));
                }
            }
        }
    }
    errs
}

/// The root schema of a custom resource: the CRD's schema with `metadata` replaced by the
/// shared ObjectMeta schema, as the API server does.
fn root_schema(openapi: &Value) -> Option<Arc<Schema>> {
    let mut s = Schema::from_openapi(openapi).ok()?;
    s.ty = Ty::Object;
    s.properties
        .insert("metadata".into(), builtin::object_meta());
    let string = Arc::new(Schema {
        ty: Ty::String,
        ..Default::default()
    });
    s.properties.insert("apiVersion".into(), string.clone());
    s.properties.insert("kind".into(), string);
    Some(Arc::new(s))
}

/// The resources a CRD serves. Errors name the first malformed part.
pub fn served_versions(crd: &Value) -> Result<Vec<CrdVersion>, String> {
    let spec = &crd["spec"];
    let group = spec["group"].as_str().ok_or("spec.group missing")?;
    let names = &spec["names"];
    let plural = names["plural"]
        .as_str()
        .ok_or("spec.names.plural missing")?;
    let kind = names["kind"].as_str().ok_or("spec.names.kind missing")?;
    let singular = names["singular"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| kind.to_ascii_lowercase());
    let namespaced = spec["scope"].as_str() == Some("Namespaced");
    let mut out = Vec::new();
    let versions = spec["versions"].as_array().ok_or("spec.versions missing")?;
    for v in versions {
        if v["served"].as_bool() != Some(true) {
            continue;
        }
        let version = v["name"].as_str().ok_or("version name missing")?;
        let schema = v.pointer("/schema/openAPIV3Schema").and_then(root_schema);
        let subresources = &v["subresources"];
        let printer_columns = v["additionalPrinterColumns"]
            .as_array()
            .map(|cols| {
                cols.iter()
                    .map(|c| PrinterColumn {
                        name: c["name"].as_str().unwrap_or_default().to_string(),
                        type_: c["type"].as_str().unwrap_or("string").to_string(),
                        format: c["format"].as_str().unwrap_or_default().to_string(),
                        description: c["description"].as_str().unwrap_or_default().to_string(),
                        priority: c["priority"].as_i64().unwrap_or(0),
                        json_path: c["jsonPath"].as_str().unwrap_or_default().to_string(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut field_labels: Vec<String> = v["selectableFields"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|f| f["jsonPath"].as_str())
                    .map(|p| p.trim_start_matches('.').to_string())
                    .collect()
            })
            .unwrap_or_default();
        field_labels.sort();
        out.push(CrdVersion {
            def: ResourceDef {
                group: group.into(),
                version: version.into(),
                plural: plural.into(),
                singular: singular.clone(),
                kind: kind.into(),
                namespaced,
                short_names: strings(&names["shortNames"]),
                categories: strings(&names["categories"]),
                verbs: vec![
                    "delete",
                    "deletecollection",
                    "get",
                    "list",
                    "patch",
                    "create",
                    "update",
                    "watch",
                ],
                storage: format!("{group}/{plural}"),
                status_subresource: subresources.get("status").is_some(),
                scale_subresource: subresources.get("scale").is_some(),
                behavior: Behavior::Custom,
                tracks_generation: true,
                unconditional_update: false,
                create_on_update: false,
                field_labels,
                schema,
                printer_columns,
                storage_version: v["storage"].as_bool() == Some(true),
            },
        });
    }
    Ok(out)
}

/// Sets the status a real API server converges to once the names are accepted.
pub fn set_established_status(crd: &mut Value, now: &str) {
    let names = crd["spec"]["names"].clone();
    let mut accepted = names.clone();
    if accepted.get("singular").is_none()
        && let Some(k) = names["kind"].as_str()
    {
        accepted["singular"] = json!(k.to_ascii_lowercase());
    }
    if accepted.get("listKind").is_none()
        && let Some(k) = names["kind"].as_str()
    {
        accepted["listKind"] = json!(format!("{k}List"));
    }
    let storage: Vec<Value> = crd["spec"]["versions"]
        .as_array()
        .map(|vs| {
            vs.iter()
                .filter(|v| v["storage"].as_bool() == Some(true))
                .filter_map(|v| v.get("name").cloned())
                .collect()
        })
        .unwrap_or_default();
    let mut stored: Vec<Value> = crd["status"]["storedVersions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for s in storage {
        if !stored.contains(&s) {
            stored.push(s);
        }
    }
    let keep_time = |t: &str| -> String {
        crd["status"]["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == t && c["status"] == "True"))
            .and_then(|c| c["lastTransitionTime"].as_str())
            .unwrap_or(now)
            .to_string()
    };
    let conditions = json!([
        {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": keep_time("NamesAccepted")},
        {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": keep_time("Established")},
    ]);
    crd["status"] =
        json!({"acceptedNames": accepted, "conditions": conditions, "storedVersions": stored});
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crd() -> Value {
        json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.io"},
            "spec": {"group": "example.io", "scope": "Namespaced",
                "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
                "versions": [
                    {"name": "v1", "served": true, "storage": true,
                     "subresources": {"status": {}},
                     "additionalPrinterColumns": [{"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"}],
                     "schema": {"openAPIV3Schema": {"type": "object", "properties": {"spec": {"type": "object"}}}}},
                    {"name": "v1alpha1", "served": false, "storage": false,
                     "schema": {"openAPIV3Schema": {"type": "object"}}}
                ]}
        })
    }

    #[test]
    fn served_versions_become_resources() {
        let vs = served_versions(&crd()).unwrap();
        assert_eq!(vs.len(), 1);
        let d = &vs[0].def;
        assert_eq!(
            (
                d.group.as_str(),
                d.version.as_str(),
                d.plural.as_str(),
                d.kind.as_str()
            ),
            ("example.io", "v1", "widgets", "Widget")
        );
        assert!(d.namespaced && d.status_subresource && !d.scale_subresource);
        assert_eq!(d.short_names, ["wd"]);
        assert_eq!(d.printer_columns[0].name, "Ready");
        let schema = d.schema.as_ref().unwrap();
        assert!(
            schema.properties["metadata"]
                .properties
                .contains_key("labels")
        );
    }

    #[test]
    fn validation_catches_bad_crds() {
        assert!(validate(&crd()).is_empty());
        let mut bad = crd();
        bad["metadata"]["name"] = json!("wrong");
        bad["spec"]["scope"] = json!("Global");
        bad["spec"]["versions"][0]["storage"] = json!(false);
        let errs = validate(&bad);
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert!(fields.contains(&"metadata.name"));
        assert!(fields.contains(&"spec.scope"));
        assert!(fields.contains(&"spec.versions"));
        let mut no_schema = crd();
        no_schema["spec"]["versions"][0]["schema"]["openAPIV3Schema"] = json!({"type": "array"});
        assert!(!validate(&no_schema).is_empty());
    }

    #[test]
    fn status_is_established_with_accepted_names() {
        let mut c = crd();
        set_established_status(&mut c, "2024-01-01T00:00:00Z");
        assert_eq!(c["status"]["conditions"][1]["type"], "Established");
        assert_eq!(c["status"]["conditions"][1]["status"], "True");
        assert_eq!(c["status"]["acceptedNames"]["listKind"], "WidgetList");
        assert_eq!(c["status"]["storedVersions"], json!(["v1"]));
        // Transition times stay put on later updates.
        set_established_status(&mut c, "2030-01-01T00:00:00Z");
        assert_eq!(
            c["status"]["conditions"][0]["lastTransitionTime"],
            "2024-01-01T00:00:00Z"
        );
    }
}
