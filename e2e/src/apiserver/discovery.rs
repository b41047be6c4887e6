//! Discovery documents: `/api`, `/apis`, `/apis/{group}`, the group/version resource lists,
//! and the aggregated form (`apidiscovery.k8s.io/v2`) kubectl asks for first.

use serde_json::{Value, json};

use super::registry::{Registry, ResourceDef};

fn group_version(group: &str, version: &str) -> String {
    if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    }
}

/// `/api`
pub fn core_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]
    })
}

fn api_group(registry: &Registry, group: &str) -> Value {
    let versions: Vec<Value> = registry
        .versions(group)
        .iter()
        .map(|v| json!({"groupVersion": group_version(group, v), "version": v}))
        .collect();
    let preferred = versions.first().cloned().unwrap_or(Value::Null);
    json!({"name": group, "versions": versions, "preferredVersion": preferred})
}

/// `/apis`
pub fn group_list(registry: &Registry) -> Value {
    let groups: Vec<Value> = registry
        .group_names()
        .filter(|g| !g.is_empty())
        .map(|g| api_group(registry, g))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/{group}`, or `None` for unknown groups.
pub fn group(registry: &Registry, group: &str) -> Option<Value> {
    if group.is_empty() || registry.versions(group).is_empty() {
        return None;
    }
    let mut g = api_group(registry, group);
    g["kind"] = json!("APIGroup");
    g["apiVersion"] = json!("v1");
    Some(g)
}

fn subresources(d: &ResourceDef) -> Vec<(&'static str, &'static str, Vec<&'static str>)> {
    let mut subs = Vec::new();
    if d.status_subresource {
        subs.push(("status", "", vec!["get", "patch", "update"]));
    }
    if d.scale_subresource {
        subs.push(("scale", "Scale", vec!["get", "patch", "update"]));
    }
    if d.plural == "pods" && d.group.is_empty() {
        subs.push(("binding", "Binding", vec!["create"]));
    }
    subs
}

/// `/api/v1` or `/apis/{group}/{version}`, or `None` when not served.
pub fn resource_list(registry: &Registry, group: &str, version: &str) -> Option<Value> {
    let defs = registry.resources(group, version);
    if defs.is_empty() {
        return None;
    }
    let mut resources = Vec::new();
    for d in &defs {
        let mut r = json!({
            "name": d.plural,
            "singularName": d.singular,
            "namespaced": d.namespaced,
            "kind": d.kind,
            "verbs": d.verbs,
        });
        if !d.short_names.is_empty() {
            r["shortNames"] = json!(d.short_names);
        }
        if !d.categories.is_empty() {
            r["categories"] = json!(d.categories);
        }
        resources.push(r);
        for (sub, kind, verbs) in subresources(d) {
            let mut s = json!({"name": format!("{}/{sub}", d.plural), "singularName": "", "namespaced": d.namespaced, "kind": if kind.is_empty() { d.kind.as_str() } else { kind }, "verbs": verbs});
            if sub == "scale" {
                s["group"] = json!("autoscaling");
                s["version"] = json!("v1");
            }
            resources.push(s);
        }
    }
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version(group, version), "resources": resources}),
    )
}

/// The Content-Type of an aggregated discovery answer.
pub const AGGREGATED_CONTENT_TYPE: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// True when the client prefers aggregated discovery (v2) first.
pub fn wants_aggregated(accept: Option<&str>) -> bool {
    let Some(first) = accept.and_then(|a| a.split(',').next()) else {
        return false;
    };
    first.contains("as=APIGroupDiscoveryList")
        && first.contains("g=apidiscovery.k8s.io")
        && first.contains("v=v2")
        && !first.contains("v=v2beta1")
}

fn aggregated_group(registry: &Registry, group: &str) -> Value {
    let versions: Vec<Value> = registry
        .versions(group)
        .iter()
        .map(|v| {
            let resources: Vec<Value> = registry
                .resources(group, v)
                .iter()
                .map(|d| {
                    let mut r = json!({
                        "resource": d.plural,
                        "responseKind": {"group": d.group, "version": d.version, "kind": d.kind},
                        "scope": if d.namespaced { "Namespaced" } else { "Cluster" },
                        "singularResource": d.singular,
                        "verbs": d.verbs,
                    });
                    if !d.short_names.is_empty() {
                        r["shortNames"] = json!(d.short_names);
                    }
                    if !d.categories.is_empty() {
                        r["categories"] = json!(d.categories);
                    }
                    let subs: Vec<Value> = subresources(d)
                        .into_iter()
                        .map(|(sub, kind, verbs)| {
                            let rk = match sub {
                                "scale" => json!({"group": "autoscaling", "version": "v1", "kind": kind}),
                                _ => json!({"group": d.group, "version": d.version, "kind": if kind.is_empty() { d.kind.as_str() } else { kind }}),
                            };
                            json!({"subresource": sub, "responseKind": rk, "verbs": verbs})
                        })
                        .collect();
                    if !subs.is_empty() {
                        r["subresources"] = json!(subs);
                    }
                    r
                })
                .collect();
            json!({"version": v, "resources": resources, "freshness": "Current"})
        })
        .collect();
    json!({"metadata": {"name": group}, "versions": versions})
}

/// Aggregated discovery for `/api` (`core = true`) or `/apis`.
pub fn aggregated(registry: &Registry, core: bool) -> Value {
    let items: Vec<Value> = if core {
        vec![aggregated_group(registry, "")]
    } else {
        registry
            .group_names()
            .filter(|g| !g.is_empty())
            .map(|g| aggregated_group(registry, g))
            .collect()
    };
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::registry::RegistryOptions;

    fn reg() -> Registry {
        Registry::builtin(&RegistryOptions { minor_version: 35 })
    }

    #[test]
    fn group_list_has_preferred_versions() {
        let l = group_list(&reg());
        let apps = l["groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["name"] == "apps")
            .unwrap();
        assert_eq!(apps["preferredVersion"]["groupVersion"], "apps/v1");
        assert!(
            l["groups"]
                .as_array()
                .unwrap()
                .iter()
                .all(|g| g["name"] != "")
        );
        assert!(group(&reg(), "nope").is_none());
        assert_eq!(group(&reg(), "events.k8s.io").unwrap()["kind"], "APIGroup");
    }

    #[test]
    fn resource_lists_carry_verbs_short_names_and_subresources() {
        let l = resource_list(&reg(), "", "v1").unwrap();
        let rs = l["resources"].as_array().unwrap();
        let svc = rs.iter().find(|r| r["name"] == "services").unwrap();
        assert_eq!(svc["shortNames"], json!(["svc"]));
        assert_eq!(svc["categories"], json!(["all"]));
        assert_eq!(svc["namespaced"], true);
        assert!(rs.iter().any(|r| r["name"] == "services/status"));
        assert!(rs.iter().any(|r| r["name"] == "pods/binding"));
        let nodes = rs.iter().find(|r| r["name"] == "nodes").unwrap();
        assert_eq!(nodes["namespaced"], false);
        assert!(resource_list(&reg(), "", "v2").is_none());
    }

    #[test]
    fn aggregated_discovery() {
        assert!(wants_aggregated(Some(
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
        )));
        assert!(!wants_aggregated(Some("application/json")));
        let a = aggregated(&reg(), false);
        let apps = a["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["metadata"]["name"] == "apps")
            .unwrap();
        let deploy = apps["versions"][0]["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["resource"] == "deployments")
            .unwrap();
        assert_eq!(deploy["scope"], "Namespaced");
        assert!(
            deploy["subresources"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s["subresource"] == "scale")
        );
        let core = aggregated(&reg(), true);
        assert_eq!(core["items"][0]["metadata"]["name"], "");
    }
}
