//! Per-kind behaviour: defaults, validation, allocation side effects, version conversion and
//! field-selector values. Dispatches on [`Behavior`]; kinds without special rules are stored as
//! they are written.

pub mod event;
pub mod meta;
pub mod pod;
pub mod service;

use std::sync::Arc;

use serde_json::{Value, json};

use self::service::{Reservation, ServiceNetworks};
use super::crd;
use super::error::FieldError;
use super::registry::{Behavior, ResourceDef};
use super::schema::validate as schema_validate;

/// What the kind hooks need from the server.
pub struct KindCtx<'a> {
    pub services: &'a Arc<ServiceNetworks>,
    pub minor_version: u32,
    pub now: &'a str,
}

/// Side effects to keep (commit) or undo (drop) with the write.
pub enum Prepared {
    Nothing,
    Service(Reservation),
}

impl Prepared {
    pub fn commit(self) {
        if let Prepared::Service(r) = self {
            r.commit();
        }
    }
}

/// Converts an object in `def`'s version into the storage form.
pub fn to_storage(def: &ResourceDef, obj: Value, storage: &ResourceDef) -> Value {
    match def.behavior {
        Behavior::EventsV1 => event::to_core(&obj),
        _ => {
            let mut obj = obj;
            if def.version != storage.version || def.group != storage.group {
                obj["apiVersion"] = json!(storage.api_version());
            }
            obj
        }
    }
}

/// Converts a stored object into `def`'s version.
pub fn from_storage(def: &ResourceDef, obj: &Value) -> Value {
    match def.behavior {
        Behavior::EventsV1 => event::to_events_v1(obj),
        _ => {
            let mut obj = obj.clone();
            obj["apiVersion"] = json!(def.api_version());
            obj["kind"] = json!(def.kind);
            obj
        }
    }
}

/// Defaults applied on every write (storage form).
pub fn apply_defaults(def: &ResourceDef, obj: &mut Value, minor: u32) {
    match def.behavior {
        Behavior::Service => service::apply_defaults(obj, minor),
        Behavior::Custom => {
            if let Some(schema) = &def.schema {
                schema_validate::apply_defaults(obj, schema);
            }
        }
        Behavior::Deployment
        | Behavior::DaemonSet
        | Behavior::StatefulSet
        | Behavior::ReplicaSet => {
            if matches!(
                def.behavior,
                Behavior::Deployment | Behavior::StatefulSet | Behavior::ReplicaSet
            ) && obj["spec"].get("replicas").is_none()
                && obj["spec"].is_object()
            {
                obj["spec"]["replicas"] = json!(1);
            }
            if obj["spec"].get("revisionHistoryLimit").is_none() && obj["spec"].is_object() {
                obj["spec"]["revisionHistoryLimit"] = json!(10);
            }
            if let Some(pod_spec) = obj.pointer_mut("/spec/template/spec") {
                pod::default_pod_spec(pod_spec);
            }
        }
        Behavior::Secret if obj.get("type").is_none_or(Value::is_null) => {
            obj["type"] = json!("Opaque");
        }
        _ => {}
    }
}

/// Adjusts an update before validation, as the API server's PrepareForUpdate does (for
/// Services: keep allocated values the client left out, drop what the new type does not use).
pub fn normalize_update(def: &ResourceDef, old: &Value, new: &mut Value, status_only: bool) {
    if def.behavior == Behavior::Service && !status_only {
        service::carry_over_allocations(old, new);
    }
}

/// Validation of the whole object in the version it was written in (`view`) and in storage
/// form.
pub fn validate(def: &ResourceDef, view: &Value, stored: &Value) -> Vec<FieldError> {
    let mut errs = meta::validate(def, stored);
    match def.behavior {
        Behavior::Service => errs.extend(service::validate(stored)),
        Behavior::Pod => errs.extend(pod::validate(stored)),
        Behavior::EventsV1 => errs.extend(event::validate_events_v1(view)),
        Behavior::CoreEvent => errs.extend(event::validate_core(stored)),
        Behavior::Crd => errs.extend(crd::validate(stored)),
        Behavior::Custom => {
            if let Some(schema) = &def.schema {
                let mut without_meta = stored.clone();
                if let Some(m) = without_meta.as_object_mut() {
                    m.remove("metadata");
                    m.remove("apiVersion");
                    m.remove("kind");
                }
                errs.extend(schema_validate::validate(&without_meta, schema, ""));
            }
        }
        Behavior::Lease => {
            for k in ["leaseDurationSeconds", "leaseTransitions"] {
                if let Some(n) = stored["spec"][k].as_i64()
                    && n < 0
                {
                    errs.push(FieldError::invalid(
                        format!("spec.{k}"),
                        json!(n),
                        "must be greater than or equal to 0",
                    ));
                }
            }
            if stored["spec"]["leaseDurationSeconds"].as_i64() == Some(0) {
                errs.push(FieldError::invalid(
                    "spec.leaseDurationSeconds",
                    json!(0),
                    "must be greater than 0",
                ));
            }
        }
        _ => {}
    }
    errs
}

/// Kind-specific work for a new object (after defaults and validation).
pub fn prepare_create(
    def: &ResourceDef,
    obj: &mut Value,
    ctx: &KindCtx,
) -> Result<Prepared, Vec<FieldError>> {
    match def.behavior {
        Behavior::Service => {
            // A new Service starts without status, except what a creator may not set.
            if let Some(m) = obj.as_object_mut() {
                m.remove("status");
            }
            obj["status"] = json!({"loadBalancer": {}});
            ctx.services.allocate(None, obj).map(Prepared::Service)
        }
        Behavior::Pod => {
            pod::prepare_create(obj);
            Ok(Prepared::Nothing)
        }
        Behavior::Namespace => {
            let name = obj["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            obj["metadata"]["labels"]["kubernetes.io/metadata.name"] = json!(name);
            if obj["spec"]["finalizers"]
                .as_array()
                .is_none_or(|f| f.is_empty())
            {
                obj["spec"] = json!({"finalizers": ["kubernetes"]});
            }
            obj["status"] = json!({"phase": "Active"});
            Ok(Prepared::Nothing)
        }
        Behavior::Crd => {
            crd::set_established_status(obj, ctx.now);
            Ok(Prepared::Nothing)
        }
        _ => {
            if def.status_subresource
                && matches!(
                    def.behavior,
                    Behavior::Custom
                        | Behavior::Deployment
                        | Behavior::DaemonSet
                        | Behavior::StatefulSet
                        | Behavior::ReplicaSet
                )
                && let Some(m) = obj.as_object_mut()
            {
                m.remove("status");
            }
            Ok(Prepared::Nothing)
        }
    }
}

/// Kind-specific work for an update of the main resource or of `status`.
pub fn prepare_update(
    def: &ResourceDef,
    old: &Value,
    new: &mut Value,
    ctx: &KindCtx,
    status_only: bool,
) -> Result<Prepared, Vec<FieldError>> {
    match def.behavior {
        Behavior::Service if !status_only => {
            let errs = service::validate_update(old, new);
            if !errs.is_empty() {
                return Err(errs);
            }
            let errs = service::validate(new);
            if !errs.is_empty() {
                return Err(errs);
            }
            ctx.services.allocate(Some(old), new).map(Prepared::Service)
        }
        Behavior::Pod if !status_only => {
            let errs = pod::validate_update(old, new);
            if errs.is_empty() {
                Ok(Prepared::Nothing)
            } else {
                Err(errs)
            }
        }
        Behavior::Namespace => {
            if new["metadata"]["labels"]["kubernetes.io/metadata.name"].is_null() {
                let name = new["metadata"]["name"].clone();
                new["metadata"]["labels"]["kubernetes.io/metadata.name"] = name;
            }
            if !status_only
                && old["spec"] != new["spec"]
                && old["metadata"].get("deletionTimestamp").is_none()
            {
                new["spec"] = old["spec"].clone();
            }
            Ok(Prepared::Nothing)
        }
        Behavior::Crd => {
            crd::set_established_status(new, ctx.now);
            Ok(Prepared::Nothing)
        }
        _ => Ok(Prepared::Nothing),
    }
}

/// Frees what a deleted object held.
pub fn on_deleted(def: &ResourceDef, obj: &Value, ctx: &KindCtx) {
    if def.behavior == Behavior::Service {
        ctx.services.release_all(obj);
    }
}

/// The value of a field-selector label on a stored object.
pub fn field_value(def: &ResourceDef, obj: &Value, field: &str) -> Option<String> {
    match (def.behavior, field) {
        (_, "metadata.name") => obj["metadata"]["name"].as_str().map(str::to_string),
        (_, "metadata.namespace") => obj["metadata"]["namespace"].as_str().map(str::to_string),
        (Behavior::CoreEvent, f) => event::core_field(obj, f),
        (Behavior::EventsV1, f) => {
            let core_name = f
                .strip_prefix("regarding.")
                .map(|r| format!("involvedObject.{r}"))
                .unwrap_or_else(|| match f {
                    "reportingController" => "reportingComponent".into(),
                    other => other.into(),
                });
            event::core_field(obj, &core_name)
        }
        (_, f) => {
            let v = obj.pointer(&format!("/{}", f.replace('.', "/")))?;
            Some(match v {
                Value::String(s) => s.clone(),
                Value::Bool(b) => b.to_string(),
                Value::Number(n) => n.to_string(),
                _ => return None,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::registry::{Registry, RegistryOptions};

    fn reg() -> Registry {
        Registry::builtin(&RegistryOptions { minor_version: 35 })
    }

    #[test]
    fn events_round_trip_through_storage() {
        let r = reg();
        let v1 = r.get("events.k8s.io", "v1", "events").unwrap();
        let core = r.get("", "v1", "events").unwrap();
        let obj = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e", "namespace": "default"}, "note": "hi", "regarding": {"name": "web", "kind": "Service"}});
        let stored = to_storage(&v1, obj.clone(), &core);
        assert_eq!(stored["message"], "hi");
        assert_eq!(from_storage(&v1, &stored), obj);
        assert_eq!(
            from_storage(&core, &stored)["involvedObject"]["name"],
            "web"
        );
        assert_eq!(
            field_value(&v1, &stored, "regarding.name").as_deref(),
            Some("web")
        );
        assert_eq!(
            field_value(&core, &stored, "involvedObject.kind").as_deref(),
            Some("Service")
        );
    }

    #[test]
    fn field_values_of_generic_paths() {
        let r = reg();
        let pods = r.get("", "v1", "pods").unwrap();
        let p = json!({"metadata": {"name": "p", "namespace": "ns"}, "spec": {"nodeName": "n1", "hostNetwork": true}, "status": {"phase": "Running"}});
        assert_eq!(
            field_value(&pods, &p, "spec.nodeName").as_deref(),
            Some("n1")
        );
        assert_eq!(
            field_value(&pods, &p, "spec.hostNetwork").as_deref(),
            Some("true")
        );
        assert_eq!(
            field_value(&pods, &p, "status.phase").as_deref(),
            Some("Running")
        );
        assert_eq!(
            field_value(&pods, &p, "metadata.namespace").as_deref(),
            Some("ns")
        );
        assert_eq!(field_value(&pods, &p, "spec.missing"), None);
    }

    #[test]
    fn namespaces_get_their_name_label_and_finalizer() {
        let r = reg();
        let ns = r.get("", "v1", "namespaces").unwrap();
        let nets = Arc::new(ServiceNetworks::new("203.0.113.0/25", "30000-32767").unwrap());
        let ctx = KindCtx {
            services: &nets,
            minor_version: 35,
            now: "t",
        };
        let mut obj = json!({"metadata": {"name": "team-a"}});
        prepare_create(&ns, &mut obj, &ctx).ok().unwrap();
        assert_eq!(
            obj["metadata"]["labels"]["kubernetes.io/metadata.name"],
            "team-a"
        );
        assert_eq!(obj["spec"]["finalizers"], json!(["kubernetes"]));
        assert_eq!(obj["status"]["phase"], "Active");
    }
}
