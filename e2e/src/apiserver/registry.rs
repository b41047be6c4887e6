//! The resource registry: which group/version/resources the server serves, with everything
//! discovery, routing, storage and printing need to know about each one.
//!
//! The registry is immutable once built; CRD changes build a new one (`Registry::with_crds`)
//! that the server swaps in atomically, so requests never see a half-updated set of resources.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde_json::Value;

use super::crd::{self, CrdVersion};
use super::schema::{Schema, builtin};

/// Per-kind behaviour hooks (defaults, validation, allocation, printing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behavior {
    Generic,
    Namespace,
    Service,
    Pod,
    Node,
    Endpoints,
    EndpointSlice,
    Lease,
    /// core/v1 Events: the storage form.
    CoreEvent,
    /// events.k8s.io/v1 Events: a converted view of the same storage.
    EventsV1,
    ConfigMap,
    Secret,
    ServiceAccount,
    Deployment,
    DaemonSet,
    StatefulSet,
    ReplicaSet,
    Rbac,
    Crd,
    Custom,
}

/// One served group/version/resource.
#[derive(Debug, Clone)]
pub struct ResourceDef {
    pub group: String,
    pub version: String,
    pub plural: String,
    pub singular: String,
    pub kind: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub verbs: Vec<&'static str>,
    /// The collection that holds the objects; two views of one store share it.
    pub storage: String,
    pub status_subresource: bool,
    pub scale_subresource: bool,
    pub behavior: Behavior,
    pub tracks_generation: bool,
    /// PUT without `metadata.resourceVersion` is allowed.
    pub unconditional_update: bool,
    /// PUT to a missing object creates it.
    pub create_on_update: bool,
    /// Extra field-selector labels besides `metadata.name`/`metadata.namespace`.
    pub field_labels: Vec<String>,
    pub schema: Option<Arc<Schema>>,
    /// CRD printer columns (name, type, jsonPath, priority, format, description).
    pub printer_columns: Vec<PrinterColumn>,
    /// True for the version objects are persisted in (CRDs); built-ins keep their only version.
    pub storage_version: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PrinterColumn {
    pub name: String,
    pub type_: String,
    pub format: String,
    pub description: String,
    pub priority: i64,
    pub json_path: String,
}

impl ResourceDef {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    pub fn supports_field(&self, field: &str) -> bool {
        field == "metadata.name"
            || (self.namespaced && field == "metadata.namespace")
            || self.field_labels.iter().any(|f| f == field)
    }

    /// The group-qualified plural (`ipaddresspools.ironlb.io`).
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }
}

const ALL_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

struct B {
    def: ResourceDef,
}

impl B {
    fn new(group: &str, version: &str, plural: &str, kind: &str, namespaced: bool) -> Self {
        let storage = if group.is_empty() {
            format!("core/{plural}")
        } else {
            format!("{group}/{plural}")
        };
        B {
            def: ResourceDef {
                group: group.into(),
                version: version.into(),
                plural: plural.into(),
                singular: kind.to_ascii_lowercase(),
                kind: kind.into(),
                namespaced,
                short_names: vec![],
                categories: vec![],
                verbs: ALL_VERBS.to_vec(),
                storage,
                status_subresource: false,
                scale_subresource: false,
                behavior: Behavior::Generic,
                tracks_generation: false,
                unconditional_update: true,
                create_on_update: false,
                field_labels: vec![],
                schema: None,
                printer_columns: vec![],
                storage_version: true,
            },
        }
    }
    fn short(mut self, names: &[&str]) -> Self {
        self.def.short_names = names.iter().map(|s| s.to_string()).collect();
        self
    }
    fn cats(mut self, c: &[&str]) -> Self {
        self.def.categories = c.iter().map(|s| s.to_string()).collect();
        self
    }
    fn status(mut self) -> Self {
        self.def.status_subresource = true;
        self
    }
    fn scale(mut self) -> Self {
        self.def.scale_subresource = true;
        self
    }
    fn behavior(mut self, b: Behavior) -> Self {
        self.def.behavior = b;
        self
    }
    fn generation(mut self) -> Self {
        self.def.tracks_generation = true;
        self
    }
    fn create_on_update(mut self) -> Self {
        self.def.create_on_update = true;
        self
    }
    fn fields(mut self, f: &[&str]) -> Self {
        self.def.field_labels = f.iter().map(|s| s.to_string()).collect();
        self
    }
    fn storage(mut self, s: &str) -> Self {
        self.def.storage = s.into();
        self
    }
    fn verbs(mut self, v: &[&'static str]) -> Self {
        self.def.verbs = v.to_vec();
        self
    }
}

const EVENT_FIELDS: &[&str] = &[
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
];

const EVENTS_V1_FIELDS: &[&str] = &[
    "regarding.kind",
    "regarding.namespace",
    "regarding.name",
    "regarding.uid",
    "regarding.apiVersion",
    "regarding.resourceVersion",
    "regarding.fieldPath",
    "reason",
    "reportingController",
    "type",
];

fn builtin_defs() -> Vec<ResourceDef> {
    use Behavior as K;
    let v = vec![
        B::new("", "v1", "namespaces", "Namespace", false)
            .short(&["ns"])
            .status()
            .behavior(K::Namespace)
            .fields(&["status.phase"])
            .verbs(&[
                "create", "delete", "get", "list", "patch", "update", "watch",
            ]),
        B::new("", "v1", "services", "Service", true)
            .short(&["svc"])
            .cats(&["all"])
            .status()
            .behavior(K::Service)
            .fields(&["spec.clusterIP", "spec.type"])
            .verbs(&[
                "create",
                "delete",
                "deletecollection",
                "get",
                "list",
                "patch",
                "update",
                "watch",
            ]),
        B::new("", "v1", "endpoints", "Endpoints", true)
            .short(&["ep"])
            .behavior(K::Endpoints)
            .create_on_update(),
        B::new("", "v1", "pods", "Pod", true)
            .short(&["po"])
            .cats(&["all"])
            .status()
            .behavior(K::Pod)
            .fields(&[
                "spec.nodeName",
                "spec.restartPolicy",
                "spec.schedulerName",
                "spec.serviceAccountName",
                "spec.hostNetwork",
                "status.phase",
                "status.podIP",
                "status.nominatedNodeName",
            ]),
        B::new("", "v1", "nodes", "Node", false)
            .short(&["no"])
            .status()
            .behavior(K::Node)
            .fields(&["spec.unschedulable"]),
        B::new("", "v1", "events", "Event", true)
            .short(&["ev"])
            .behavior(K::CoreEvent)
            .storage("events")
            .create_on_update()
            .fields(EVENT_FIELDS),
        B::new("", "v1", "secrets", "Secret", true)
            .behavior(K::Secret)
            .fields(&["type"]),
        B::new("", "v1", "configmaps", "ConfigMap", true)
            .short(&["cm"])
            .behavior(K::ConfigMap),
        B::new("", "v1", "serviceaccounts", "ServiceAccount", true)
            .short(&["sa"])
            .behavior(K::ServiceAccount),
        B::new(
            "discovery.k8s.io",
            "v1",
            "endpointslices",
            "EndpointSlice",
            true,
        )
        .behavior(K::EndpointSlice),
        B::new("coordination.k8s.io", "v1", "leases", "Lease", true)
            .behavior(K::Lease)
            .create_on_update(),
        B::new("events.k8s.io", "v1", "events", "Event", true)
            .short(&["ev"])
            .behavior(K::EventsV1)
            .storage("events")
            .create_on_update()
            .fields(EVENTS_V1_FIELDS),
        B::new("apps", "v1", "deployments", "Deployment", true)
            .short(&["deploy"])
            .cats(&["all"])
            .status()
            .scale()
            .generation()
            .behavior(K::Deployment),
        B::new("apps", "v1", "daemonsets", "DaemonSet", true)
            .short(&["ds"])
            .cats(&["all"])
            .status()
            .generation()
            .behavior(K::DaemonSet),
        B::new("apps", "v1", "statefulsets", "StatefulSet", true)
            .short(&["sts"])
            .cats(&["all"])
            .status()
            .scale()
            .generation()
            .behavior(K::StatefulSet),
        B::new("apps", "v1", "replicasets", "ReplicaSet", true)
            .short(&["rs"])
            .cats(&["all"])
            .status()
            .scale()
            .generation()
            .behavior(K::ReplicaSet),
        B::new("rbac.authorization.k8s.io", "v1", "roles", "Role", true)
            .behavior(K::Rbac)
            .create_on_update(),
        B::new(
            "rbac.authorization.k8s.io",
            "v1",
            "rolebindings",
            "RoleBinding",
            true,
        )
        .behavior(K::Rbac)
        .create_on_update(),
        B::new(
            "rbac.authorization.k8s.io",
            "v1",
            "clusterroles",
            "ClusterRole",
            false,
        )
        .behavior(K::Rbac)
        .create_on_update(),
        B::new(
            "rbac.authorization.k8s.io",
            "v1",
            "clusterrolebindings",
            "ClusterRoleBinding",
            false,
        )
        .behavior(K::Rbac)
        .create_on_update(),
        B::new(
            "policy",
            "v1",
            "poddisruptionbudgets",
            "PodDisruptionBudget",
            true,
        )
        .short(&["pdb"])
        .status()
        .generation(),
        B::new(
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
            "CustomResourceDefinition",
            false,
        )
        .short(&["crd", "crds"])
        .cats(&["api-extensions"])
        .status()
        .generation()
        .behavior(K::Crd),
    ];
    v.into_iter()
        .map(|b| {
            let mut def = b.def;
            def.schema = builtin::schema_for(&def.group, &def.version, &def.kind);
            def
        })
        .collect()
}

/// Options that change what the server serves.
#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// The emulated minor version (`1.27` → 27).
    pub minor_version: u32,
}

/// Everything the server serves right now.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    by_gvr: HashMap<(String, String, String), Arc<ResourceDef>>,
    /// Group → versions in preference order (first is preferred).
    groups: BTreeMap<String, Vec<String>>,
    /// Group order for `/apis` (built-ins first, then CRD groups by name).
    group_order: Vec<String>,
    /// Storage collection → the definition objects are persisted as.
    storage_defs: HashMap<String, Arc<ResourceDef>>,
}

impl Registry {
    pub fn builtin(opts: &RegistryOptions) -> Self {
        let mut r = Registry::default();
        for mut def in builtin_defs() {
            if def.behavior == Behavior::Service
                && let Some(schema) = &def.schema
            {
                def.schema = Some(builtin::for_minor_version(schema, opts.minor_version));
            }
            r.insert(def);
        }
        r
    }

    fn insert(&mut self, def: ResourceDef) {
        let def = Arc::new(def);
        if !self.groups.contains_key(&def.group) {
            self.group_order.push(def.group.clone());
        }
        let versions = self.groups.entry(def.group.clone()).or_default();
        if !versions.contains(&def.version) {
            versions.push(def.version.clone());
        }
        if def.storage_version {
            // events: the core view is the storage form.
            let keep_existing = self
                .storage_defs
                .get(&def.storage)
                .is_some_and(|d| d.behavior == Behavior::CoreEvent);
            if !keep_existing {
                self.storage_defs.insert(def.storage.clone(), def.clone());
            }
        }
        self.by_gvr.insert(
            (def.group.clone(), def.version.clone(), def.plural.clone()),
            def,
        );
    }

    /// A new registry: the built-ins of `self` plus the resources of every established CRD.
    pub fn with_crds(base: &Registry, crds: &[Arc<Value>]) -> Self {
        let mut r = base.clone();
        let mut sorted: Vec<&Arc<Value>> = crds.iter().collect();
        sorted.sort_by_key(|c| c["spec"]["group"].as_str().unwrap_or("").to_string());
        for crd_obj in sorted {
            if crd_obj["metadata"].get("deletionTimestamp").is_some() {
                continue;
            }
            let Ok(versions) = crd::served_versions(crd_obj) else {
                continue;
            };
            for CrdVersion { def, .. } in versions {
                if r.by_gvr.contains_key(&(
                    def.group.clone(),
                    def.version.clone(),
                    def.plural.clone(),
                )) {
                    continue;
                }
                r.insert(def);
            }
        }
        r
    }

    pub fn get(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceDef>> {
        self.by_gvr
            .get(&(group.to_string(), version.to_string(), plural.to_string()))
            .cloned()
    }

    /// The definition whose version objects are stored in, for a collection.
    pub fn storage_def(&self, storage: &str) -> Option<Arc<ResourceDef>> {
        self.storage_defs.get(storage).cloned()
    }

    pub fn group_names(&self) -> impl Iterator<Item = &String> {
        self.group_order.iter()
    }

    pub fn versions(&self, group: &str) -> &[String] {
        self.groups.get(group).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Resources of one group/version, sorted by plural.
    pub fn resources(&self, group: &str, version: &str) -> Vec<Arc<ResourceDef>> {
        let mut v: Vec<_> = self
            .by_gvr
            .values()
            .filter(|d| d.group == group && d.version == version)
            .cloned()
            .collect();
        v.sort_by(|a, b| a.plural.cmp(&b.plural));
        v
    }

    /// Every definition, for iteration over collections (namespace deletion).
    pub fn all(&self) -> impl Iterator<Item = &Arc<ResourceDef>> {
        self.by_gvr.values()
    }

    /// The definition for a kind in a group/version (`Service` in `v1`).
    pub fn by_kind(&self, api_version: &str, kind: &str) -> Option<Arc<ResourceDef>> {
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", api_version),
        };
        self.by_gvr
            .values()
            .find(|d| d.group == group && d.version == version && d.kind == kind)
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_ins_are_served_and_events_share_storage() {
        let r = Registry::builtin(&RegistryOptions { minor_version: 35 });
        let core = r.get("", "v1", "events").unwrap();
        let v1 = r.get("events.k8s.io", "v1", "events").unwrap();
        assert_eq!(core.storage, v1.storage);
        assert_eq!(
            r.storage_def("events").unwrap().behavior,
            Behavior::CoreEvent
        );
        assert!(r.get("", "v1", "services").unwrap().status_subresource);
        assert_eq!(r.versions("apps"), ["v1"]);
        assert!(r.group_names().any(|g| g == "discovery.k8s.io"));
        assert!(r.get("", "v1", "nope").is_none());
        assert_eq!(
            r.by_kind("coordination.k8s.io/v1", "Lease").unwrap().plural,
            "leases"
        );
    }

    #[test]
    fn field_labels_are_per_resource() {
        let r = Registry::builtin(&RegistryOptions { minor_version: 35 });
        let ev = r.get("", "v1", "events").unwrap();
        assert!(ev.supports_field("involvedObject.name"));
        assert!(ev.supports_field("metadata.namespace"));
        let nodes = r.get("", "v1", "nodes").unwrap();
        assert!(!nodes.supports_field("metadata.namespace"));
        assert!(!nodes.supports_field("spec.nodeName"));
    }
}
