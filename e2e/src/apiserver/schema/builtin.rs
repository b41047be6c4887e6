//! Structural schemas for the built-in kinds, derived from the k8s-openapi types (field names and
//! JSON types) plus the list and map semantics the Kubernetes OpenAPI declares for them
//! (`x-kubernetes-list-type`, `x-kubernetes-list-map-keys`, `x-kubernetes-map-type`).
//!
//! Lists not named in [`LIST_SEMANTICS`] are atomic, as structured-merge-diff treats untagged
//! lists. Schemas are built once per process and shared.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use k8s_openapi::schemars::{JsonSchema, SchemaGenerator, generate::SchemaSettings};
use serde_json::{Map, Value};

use super::{ListType, Schema, Ty};

enum Sem {
    /// Associative list with these keys; the first is the strategic-merge-patch merge key.
    MapList(&'static [&'static str]),
    SetList,
    AtomicMap,
}

/// `(definition, field, semantics)` for the types the stand-in serves. Facts from the
/// Kubernetes API types' `+listType`/`+listMapKey`/`+mapType` markers.
const LIST_SEMANTICS: &[(&str, &str, Sem)] = &[
    (
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
        "ownerReferences",
        Sem::MapList(&["uid"]),
    ),
    (
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
        "finalizers",
        Sem::SetList,
    ),
    (
        "io.k8s.api.core.v1.ServiceSpec",
        "ports",
        Sem::MapList(&["port", "protocol"]),
    ),
    ("io.k8s.api.core.v1.ServiceSpec", "selector", Sem::AtomicMap),
    (
        "io.k8s.api.core.v1.ServiceStatus",
        "conditions",
        Sem::MapList(&["type"]),
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "containers",
        Sem::MapList(&["name"]),
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "initContainers",
        Sem::MapList(&["name"]),
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "ephemeralContainers",
        Sem::MapList(&["name"]),
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "volumes",
        Sem::MapList(&["name"]),
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "imagePullSecrets",
        Sem::MapList(&["name"]),
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "hostAliases",
        Sem::MapList(&["ip"]),
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "topologySpreadConstraints",
        Sem::MapList(&["topologyKey", "whenUnsatisfiable"]),
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "resourceClaims",
        Sem::MapList(&["name"]),
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "schedulingGates",
        Sem::MapList(&["name"]),
    ),
    ("io.k8s.api.core.v1.PodSpec", "nodeSelector", Sem::AtomicMap),
    (
        "io.k8s.api.core.v1.Container",
        "ports",
        Sem::MapList(&["containerPort", "protocol"]),
    ),
    (
        "io.k8s.api.core.v1.Container",
        "env",
        Sem::MapList(&["name"]),
    ),
    (
        "io.k8s.api.core.v1.Container",
        "volumeMounts",
        Sem::MapList(&["mountPath"]),
    ),
    (
        "io.k8s.api.core.v1.Container",
        "volumeDevices",
        Sem::MapList(&["devicePath"]),
    ),
    (
        "io.k8s.api.core.v1.EphemeralContainer",
        "env",
        Sem::MapList(&["name"]),
    ),
    (
        "io.k8s.api.core.v1.EphemeralContainer",
        "volumeMounts",
        Sem::MapList(&["mountPath"]),
    ),
    (
        "io.k8s.api.core.v1.PodStatus",
        "conditions",
        Sem::MapList(&["type"]),
    ),
    (
        "io.k8s.api.core.v1.PodStatus",
        "podIPs",
        Sem::MapList(&["ip"]),
    ),
    (
        "io.k8s.api.core.v1.PodStatus",
        "hostIPs",
        Sem::MapList(&["ip"]),
    ),
    (
        "io.k8s.api.core.v1.NodeStatus",
        "conditions",
        Sem::MapList(&["type"]),
    ),
    (
        "io.k8s.api.core.v1.NodeStatus",
        "addresses",
        Sem::MapList(&["type"]),
    ),
    ("io.k8s.api.core.v1.NodeSpec", "podCIDRs", Sem::SetList),
    (
        "io.k8s.api.core.v1.NamespaceStatus",
        "conditions",
        Sem::MapList(&["type"]),
    ),
    (
        "io.k8s.api.core.v1.ServiceAccount",
        "secrets",
        Sem::MapList(&["name"]),
    ),
    (
        "io.k8s.api.apps.v1.DeploymentStatus",
        "conditions",
        Sem::MapList(&["type"]),
    ),
    (
        "io.k8s.api.apps.v1.DaemonSetStatus",
        "conditions",
        Sem::MapList(&["type"]),
    ),
    (
        "io.k8s.api.apps.v1.StatefulSetStatus",
        "conditions",
        Sem::MapList(&["type"]),
    ),
    (
        "io.k8s.api.apps.v1.ReplicaSetStatus",
        "conditions",
        Sem::MapList(&["type"]),
    ),
    (
        "io.k8s.api.discovery.v1.Endpoint",
        "addresses",
        Sem::SetList,
    ),
    (
        "io.k8s.api.policy.v1.PodDisruptionBudgetStatus",
        "conditions",
        Sem::MapList(&["type"]),
    ),
    (
        "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinitionStatus",
        "conditions",
        Sem::MapList(&["type"]),
    ),
];

/// Structs the API declares `+structType=atomic`: owned and replaced as a whole.
const ATOMIC_STRUCTS: &[&str] = &[
    "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector",
    "io.k8s.api.core.v1.LocalObjectReference",
    "io.k8s.api.core.v1.ObjectReference",
    "io.k8s.api.core.v1.NodeSelector",
];

/// Definitions kept free-form (recursive, or opaque on purpose).
const FREE_FORM: &[&str] = &[
    "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSONSchemaProps",
    "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSON",
    "io.k8s.apimachinery.pkg.apis.meta.v1.FieldsV1",
    "io.k8s.apimachinery.pkg.runtime.RawExtension",
];

/// Defaults that associative-list keys get from the API server, so that an applied item
/// without them still has a complete key.
const KEY_DEFAULTS: &[(&str, &str, &str)] = &[
    ("io.k8s.api.core.v1.ServicePort", "protocol", "TCP"),
    ("io.k8s.api.core.v1.ContainerPort", "protocol", "TCP"),
];

struct Converter<'a> {
    defs: &'a Map<String, Value>,
    done: HashMap<String, Arc<Schema>>,
    in_progress: Vec<String>,
}

impl Converter<'_> {
    fn convert_ref(&mut self, name: &str) -> Arc<Schema> {
        if let Some(s) = self.done.get(name) {
            return s.clone();
        }
        if FREE_FORM.contains(&name) || self.in_progress.iter().any(|n| n == name) {
            return Arc::new(Schema::any());
        }
        let Some(def) = self.defs.get(name) else {
            return Arc::new(Schema::any());
        };
        self.in_progress.push(name.to_string());
        let mut s = self.convert(def, Some(name));
        self.in_progress.pop();
        if ATOMIC_STRUCTS.contains(&name) {
            s.map_atomic = true;
        }
        let s = Arc::new(s);
        self.done.insert(name.to_string(), s.clone());
        s
    }

    fn convert_value(&mut self, v: &Value) -> Arc<Schema> {
        if let Some(r) = v.get("$ref").and_then(Value::as_str) {
            let name = r.rsplit('/').next().unwrap_or(r);
            return self.convert_ref(name);
        }
        Arc::new(self.convert(v, None))
    }

    fn convert(&mut self, v: &Value, def_name: Option<&str>) -> Schema {
        let mut s = Schema::default();
        let ty = match v.get("type") {
            Some(Value::String(t)) => Some(t.as_str()),
            Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).find(|t| *t != "null"),
            _ => None,
        };
        s.ty = match ty {
            Some("object") => Ty::Object,
            Some("array") => Ty::Array,
            Some("string") => Ty::String,
            Some("integer") => Ty::Integer,
            Some("number") => Ty::Number,
            Some("boolean") => Ty::Boolean,
            _ => Ty::Any,
        };
        s.format = v.get("format").and_then(Value::as_str).map(str::to_string);
        s.int_or_string = v
            .get("x-kubernetes-int-or-string")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if let Some(props) = v.get("properties").and_then(Value::as_object) {
            for (k, child) in props {
                let mut child_schema = self.convert_value(child);
                if let Some(def) = def_name {
                    child_schema = apply_semantics(def, k, child_schema);
                }
                s.properties.insert(k.clone(), child_schema);
            }
        }
        if let Some(add) = v.get("additionalProperties")
            && add.is_object()
        {
            s.additional = Some(self.convert_value(add));
        }
        if let Some(items) = v.get("items")
            && items.is_object()
        {
            s.items = Some(self.convert_value(items));
        }
        if let Some(req) = v.get("required").and_then(Value::as_array) {
            s.required = req
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect();
        }
        if let Some(def) = def_name {
            for (d, field, value) in KEY_DEFAULTS {
                if *d == def
                    && let Some(p) = s.properties.get_mut(*field)
                {
                    let mut inner = (**p).clone();
                    inner.default = Some(Value::String(value.to_string()));
                    *p = Arc::new(inner);
                }
            }
        }
        if s.ty == Ty::Object && s.properties.is_empty() && s.additional.is_none() {
            s.preserve_unknown = true;
        }
        s
    }
}

fn apply_semantics(def: &str, field: &str, schema: Arc<Schema>) -> Arc<Schema> {
    let Some((_, _, sem)) = LIST_SEMANTICS
        .iter()
        .find(|(d, f, _)| *d == def && *f == field)
    else {
        return schema;
    };
    let mut s = (*schema).clone();
    match sem {
        Sem::MapList(keys) => {
            s.list_type = ListType::Map(keys.iter().map(|k| k.to_string()).collect())
        }
        Sem::SetList => s.list_type = ListType::Set,
        Sem::AtomicMap => s.map_atomic = true,
    }
    Arc::new(s)
}

fn generate<T: JsonSchema>() -> Arc<Schema> {
    let mut generator = SchemaGenerator::new(SchemaSettings::draft2020_12());
    let root = generator.subschema_for::<T>().to_value();
    let defs = generator.definitions().clone();
    let mut conv = Converter {
        defs: &defs,
        done: HashMap::new(),
        in_progress: vec![],
    };
    conv.convert_value(&root)
}

type Table = HashMap<(&'static str, &'static str), Arc<Schema>>;

fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| {
        use k8s_openapi::api::{apps, coordination, core, discovery, events, policy, rbac};
        use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
        let mut t: Table = HashMap::new();
        t.insert(("v1", "Namespace"), generate::<core::v1::Namespace>());
        t.insert(("v1", "Service"), generate::<core::v1::Service>());
        t.insert(("v1", "Endpoints"), generate::<core::v1::Endpoints>());
        t.insert(("v1", "Pod"), generate::<core::v1::Pod>());
        t.insert(("v1", "Node"), generate::<core::v1::Node>());
        t.insert(("v1", "Event"), generate::<core::v1::Event>());
        t.insert(("v1", "Secret"), generate::<core::v1::Secret>());
        t.insert(("v1", "ConfigMap"), generate::<core::v1::ConfigMap>());
        t.insert(("v1", "ServiceAccount"), generate::<core::v1::ServiceAccount>());
        t.insert(("discovery.k8s.io/v1", "EndpointSlice"), generate::<discovery::v1::EndpointSlice>());
        t.insert(("coordination.k8s.io/v1", "Lease"), generate::<coordination::v1::Lease>());
        t.insert(("events.k8s.io/v1", "Event"), generate::<events::v1::Event>());
        t.insert(("apps/v1", "Deployment"), generate::<apps::v1::Deployment>());
        t.insert(("apps/v1", "DaemonSet"), generate::<apps::v1::DaemonSet>());
        t.insert(("apps/v1", "StatefulSet"), generate::<apps::v1::StatefulSet>());
        t.insert(("apps/v1", "ReplicaSet"), generate::<apps::v1::ReplicaSet>());
        t.insert(("rbac.authorization.k8s.io/v1", "Role"), generate::<rbac::v1::Role>());
        t.insert(("rbac.authorization.k8s.io/v1", "RoleBinding"), generate::<rbac::v1::RoleBinding>());
        t.insert(("rbac.authorization.k8s.io/v1", "ClusterRole"), generate::<rbac::v1::ClusterRole>());
        t.insert(("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"), generate::<rbac::v1::ClusterRoleBinding>());
        t.insert(("policy/v1", "PodDisruptionBudget"), generate::<policy::v1::PodDisruptionBudget>());
        t.insert(("apiextensions.k8s.io/v1", "CustomResourceDefinition"), generate::<CustomResourceDefinition>());
        t
    })
}

/// The schema of a built-in kind, or `None` for kinds the table does not know.
pub fn schema_for(group: &str, version: &str, kind: &str) -> Option<Arc<Schema>> {
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    table()
        .iter()
        .find(|((g, k), _)| *g == gv && *k == kind)
        .map(|(_, s)| s.clone())
}

/// The `metadata` schema every kind shares (custom resources get this one too).
pub fn object_meta() -> Arc<Schema> {
    static META: OnceLock<Arc<Schema>> = OnceLock::new();
    META.get_or_init(|| {
        schema_for("", "v1", "ConfigMap")
            .and_then(|s| s.properties.get("metadata").cloned())
            .unwrap_or_else(|| Arc::new(Schema::any()))
    })
    .clone()
}

/// The Service schema as an older server has it: before 1.29 `status.loadBalancer.ingress[]`
/// has no `ipMode`.
pub fn for_minor_version(service: &Arc<Schema>, minor: u32) -> Arc<Schema> {
    if minor >= 29 {
        return service.clone();
    }
    let path = ["status", "loadBalancer", "ingress"];
    Arc::new(rewrite(service, &path, &|ingress: &Schema| {
        let mut ingress = ingress.clone();
        if let Some(items) = &ingress.items {
            let mut item = (**items).clone();
            item.properties.remove("ipMode");
            ingress.items = Some(Arc::new(item));
        }
        ingress
    }))
}

fn rewrite(s: &Schema, path: &[&str], f: &dyn Fn(&Schema) -> Schema) -> Schema {
    match path.split_first() {
        None => f(s),
        Some((head, rest)) => {
            let mut out = s.clone();
            if let Some(child) = s.properties.get(*head) {
                out.properties
                    .insert(head.to_string(), Arc::new(rewrite(child, rest, f)));
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at<'a>(s: &'a Arc<Schema>, path: &[&str]) -> &'a Arc<Schema> {
        let mut cur = s;
        for p in path {
            cur = if *p == "[]" {
                cur.items.as_ref().unwrap()
            } else {
                cur.properties.get(*p).unwrap_or_else(|| panic!("no {p}"))
            };
        }
        cur
    }

    #[test]
    fn service_schema_has_types_and_list_keys() {
        let svc = schema_for("", "v1", "Service").unwrap();
        assert_eq!(
            at(&svc, &["spec", "ports"]).list_type,
            ListType::Map(vec!["port".into(), "protocol".into()])
        );
        assert_eq!(at(&svc, &["spec", "ports", "[]", "port"]).ty, Ty::Integer);
        assert_eq!(
            at(&svc, &["spec", "ports", "[]", "protocol"]).default,
            Some(Value::String("TCP".into()))
        );
        assert!(at(&svc, &["spec", "ports", "[]", "targetPort"]).int_or_string);
        assert!(at(&svc, &["spec", "selector"]).map_atomic);
        assert_eq!(
            at(&svc, &["spec", "clusterIPs"]).list_type,
            ListType::Atomic
        );
        assert!(
            at(&svc, &["status", "loadBalancer", "ingress", "[]"])
                .properties
                .contains_key("ipMode")
        );
        assert_eq!(
            at(&svc, &["metadata", "finalizers"]).list_type,
            ListType::Set
        );
        assert!(at(&svc, &["metadata", "managedFields", "[]", "fieldsV1"]).keeps_unknown_fields());
    }

    #[test]
    fn old_servers_have_no_ip_mode() {
        let svc = schema_for("", "v1", "Service").unwrap();
        let old = for_minor_version(&svc, 27);
        assert!(
            !at(&old, &["status", "loadBalancer", "ingress", "[]"])
                .properties
                .contains_key("ipMode")
        );
        assert!(
            at(&old, &["status", "loadBalancer", "ingress", "[]"])
                .properties
                .contains_key("ip")
        );
        let new = for_minor_version(&svc, 29);
        assert!(
            at(&new, &["status", "loadBalancer", "ingress", "[]"])
                .properties
                .contains_key("ipMode")
        );
    }

    #[test]
    fn recursive_and_free_form_types_terminate() {
        let crd = schema_for("apiextensions.k8s.io", "v1", "CustomResourceDefinition").unwrap();
        let s = at(
            &crd,
            &["spec", "versions", "[]", "schema", "openAPIV3Schema"],
        );
        assert!(s.keeps_unknown_fields());
        let pod = schema_for("", "v1", "Pod").unwrap();
        assert_eq!(
            at(&pod, &["spec", "containers", "[]", "ports"]).list_type,
            ListType::Map(vec!["containerPort".into(), "protocol".into()])
        );
        assert!(at(&pod, &["spec", "affinity", "podAffinity"]).is_granular_object());
    }
}
