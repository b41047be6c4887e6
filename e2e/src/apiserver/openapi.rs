//! A minimal OpenAPI v3 surface. kubectl reads it for one decision: whether the server
//! validates fields itself (`fieldValidation` on PATCH operations), so that it sends
//! `fieldValidation=Strict` instead of downloading schemas to validate client-side. No schemas
//! are published, and PATCH operations do not advertise strategic merge patch, so kubectl
//! computes strategic patches from its compiled-in types, as it does for servers without
//! OpenAPI. `kubectl explain` is not supported.

use serde_json::{Map, Value, json};

use super::registry::Registry;

fn prefix(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The document for one group/version (`api/v1`, `apis/apps/v1`), or `None`.
pub fn group_version_doc(registry: &Registry, path: &str) -> Option<Value> {
    let (group, version) = match path.split('/').collect::<Vec<_>>().as_slice() {
        ["api", v] => (String::new(), v.to_string()),
        ["apis", g, v] => (g.to_string(), v.to_string()),
        _ => return None,
    };
    let defs = registry.resources(&group, &version);
    if defs.is_empty() {
        return None;
    }
    let mut paths = Map::new();
    for d in defs {
        let base = prefix(&d.group, &d.version);
        let item = if d.namespaced {
            format!("/{base}/namespaces/{{namespace}}/{}/{{name}}", d.plural)
        } else {
            format!("/{base}/{}/{{name}}", d.plural)
        };
        let patch = json!({
            "x-kubernetes-group-version-kind": {"group": d.group, "version": d.version, "kind": d.kind},
            "x-kubernetes-action": "patch",
            "parameters": [
                {"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
                {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
                {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
                {"name": "force", "in": "query", "schema": {"type": "boolean", "uniqueItems": true}}
            ],
            "requestBody": {"content": {
                "application/apply-patch+yaml": {"schema": {"type": "object"}},
                "application/json-patch+json": {"schema": {"type": "object"}},
                "application/merge-patch+json": {"schema": {"type": "object"}}
            }},
            "responses": {"200": {"description": "OK"}}
        });
        paths.insert(item, json!({"patch": patch}));
    }
    Some(
        json!({"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "unversioned"}, "paths": paths, "components": {"schemas": {}}}),
    )
}

/// `/openapi/v3`: every group/version with a URL that changes when its content does.
pub fn root(registry: &Registry) -> Value {
    let mut paths = Map::new();
    let mut gvs: Vec<(String, String)> = vec![];
    for g in registry.group_names() {
        for v in registry.versions(g) {
            gvs.push((g.clone(), v.clone()));
        }
    }
    for (g, v) in gvs {
        let p = prefix(&g, &v);
        if let Some(doc) = group_version_doc(registry, &p) {
            let hash = format!("{:016X}", fnv(&doc.to_string()));
            paths.insert(
                p.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={hash}")}),
            );
        }
    }
    json!({"paths": paths})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::registry::RegistryOptions;

    #[test]
    fn patch_operations_declare_field_validation() {
        let r = Registry::builtin(&RegistryOptions { minor_version: 35 });
        let doc = group_version_doc(&r, "api/v1").unwrap();
        let op = &doc["paths"]["/api/v1/namespaces/{namespace}/services/{name}"]["patch"];
        assert_eq!(op["x-kubernetes-group-version-kind"]["kind"], "Service");
        assert!(
            op["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "fieldValidation" && p["in"] == "query")
        );
        assert!(
            op["requestBody"]["content"]
                .get("application/strategic-merge-patch+json")
                .is_none()
        );
        assert!(doc["paths"].get("/api/v1/nodes/{name}").is_some());
        assert!(group_version_doc(&r, "apis/nope/v1").is_none());
        assert!(group_version_doc(&r, "bogus").is_none());
    }

    #[test]
    fn root_lists_group_versions_with_hashes() {
        let r = Registry::builtin(&RegistryOptions { minor_version: 35 });
        let root = root(&r);
        let url = root["paths"]["apis/apps/v1"]["serverRelativeURL"]
            .as_str()
            .unwrap();
        assert!(url.starts_with("/openapi/v3/apis/apps/v1?hash="));
        assert!(root["paths"].get("api/v1").is_some());
    }
}
