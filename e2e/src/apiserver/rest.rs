//! The REST semantics of one resource: get, list, create, update, patch (all four kinds),
//! delete (finalizers, graceful pod deletion, namespace termination) and deletecollection.
//!
//! Every write runs the same pipeline: build the candidate object (body, patch or apply), check
//! identity, reset what the addressed scope may not change, prune and type-check by schema,
//! default, carry server-owned metadata, record field ownership, validate, apply kind side
//! effects (allocations), and commit with an optimistic-concurrency check, retrying patches on
//! conflicts as the API server does.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::error::{ApiError, ApiResult, FieldError, Subject};
use super::fieldmanager::{self, Scope, Writer, apply::ApplyError};
use super::kinds::{self, KindCtx};
use super::patch::{self, PatchError, PatchType};
use super::registry::{Behavior, ResourceDef};
use super::request::{Query, ResourcePath};
use super::schema::validate::{self as schema_validate, PruneReport};
use super::selector::{FieldSelector, LabelSelector};
use super::state::{ApiServer, SYSTEM_NAMESPACES, new_uid};
use super::store::{CommitError, Expect, object_rv};
use super::time;

const MAX_ATTEMPTS: usize = 8;

/// One request against one resource.
pub struct Req<'a> {
    pub def: Arc<ResourceDef>,
    pub path: &'a ResourcePath,
    pub query: &'a Query,
    pub user_agent: Option<&'a str>,
    /// `Warning` headers for the response.
    pub warnings: Vec<String>,
}

impl Req<'_> {
    pub fn namespace(&self) -> &str {
        if self.def.namespaced {
            self.path.namespace.as_deref().unwrap_or_default()
        } else {
            ""
        }
    }

    fn subject(&self, name: &str) -> Subject {
        Subject::new(&self.def.group, &self.def.plural, name)
    }

    fn scope(&self) -> Scope {
        if self.path.subresource.as_deref() == Some("status") {
            Scope::Status
        } else if self.def.status_subresource {
            Scope::MainWithStatus
        } else {
            Scope::Main
        }
    }

    fn manager(&self) -> String {
        match &self.query.field_manager {
            Some(m) if !m.is_empty() => m.clone(),
            _ => fieldmanager::manager_from_user_agent(self.user_agent),
        }
    }
}

/// How a write builds its candidate.
pub enum Intent {
    Create(Value),
    Replace(Value),
    Patch(PatchType, Vec<u8>),
}

/// Parses a request body as JSON or YAML into an object.
pub fn decode_body(body: &[u8], content_type: Option<&str>) -> ApiResult<Value> {
    let media = content_type
        .and_then(|c| c.split(';').next())
        .map(str::trim)
        .unwrap_or("application/json");
    let v: Value = if media.contains("yaml") {
        serde_yaml::from_slice(body)
            .map_err(|e| ApiError::BadRequest(format!("error decoding YAML: {e}")))?
    } else {
        serde_json::from_slice(body).map_err(|e| {
            ApiError::BadRequest(format!("couldn't get version/kind; json parse error: {e}"))
        })?
    };
    if !v.is_object() {
        return Err(ApiError::BadRequest(
            "the body of the request must be a JSON or YAML object".into(),
        ));
    }
    Ok(v)
}

fn meta_str<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj["metadata"]
        .get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// Equal but for `metadata.resourceVersion`: "did anything change".
fn same_object(a: &Value, b: &Value) -> bool {
    let (Some(am), Some(bm)) = (a.as_object(), b.as_object()) else {
        return a == b;
    };
    if am.len() != bm.len() {
        return false;
    }
    am.iter().all(|(k, av)| match (k.as_str(), bm.get(k)) {
        (_, None) => false,
        ("metadata", Some(bv)) => match (av.as_object(), bv.as_object()) {
            (Some(x), Some(y)) => {
                let skip = |m: &Map<String, Value>| {
                    m.iter().filter(|(k, _)| *k != "resourceVersion").count()
                };
                skip(x) == skip(y)
                    && x.iter()
                        .filter(|(k, _)| *k != "resourceVersion")
                        .all(|(k, v)| y.get(k) == Some(v))
            }
            _ => av == bv,
        },
        (_, Some(bv)) => av == bv,
    })
}

/// Equal outside `metadata` (and `status`, for kinds with a status subresource): changes
/// elsewhere bump `metadata.generation`.
fn same_spec(a: &Value, b: &Value, status_is_separate: bool) -> bool {
    let ignored = |k: &str| {
        matches!(k, "metadata" | "apiVersion" | "kind") || (status_is_separate && k == "status")
    };
    let keys = |v: &Value| -> Vec<String> {
        v.as_object()
            .map(|m| m.keys().filter(|k| !ignored(k)).cloned().collect())
            .unwrap_or_default()
    };
    keys(a) == keys(b) && keys(a).iter().all(|k| a.get(k) == b.get(k))
}

impl ApiServer {
    fn kind_ctx<'a>(&'a self, now: &'a str) -> KindCtx<'a> {
        KindCtx {
            services: &self.services,
            minor_version: self.opts.minor_version,
            now,
        }
    }

    fn storage_def(&self, def: &ResourceDef) -> Arc<ResourceDef> {
        self.registry()
            .storage_def(&def.storage)
            .unwrap_or_else(|| Arc::new(def.clone()))
    }

    /// The object as the request's version shows it.
    pub fn view(&self, def: &ResourceDef, stored: &Value) -> Value {
        kinds::from_storage(def, stored)
    }

    pub fn get(&self, req: &Req) -> ApiResult<Value> {
        let name = req.path.name.as_deref().unwrap_or_default();
        let obj = self
            .store
            .get(&req.def.storage, req.namespace(), name)
            .ok_or_else(|| ApiError::NotFound(req.subject(name)))?;
        if req.path.subresource.as_deref() == Some("scale") {
            return Ok(scale_of(&req.def, &obj));
        }
        Ok(self.view(&req.def, &obj))
    }

    /// Compiles the selectors of a list or watch, checking field labels.
    pub fn selectors(&self, req: &Req) -> ApiResult<(LabelSelector, FieldSelector)> {
        let ls = LabelSelector::parse(req.query.label_selector.as_deref().unwrap_or_default())
            .map_err(|e| ApiError::BadRequest(e.to_string()))?;
        let fs = FieldSelector::parse(req.query.field_selector.as_deref().unwrap_or_default())
            .map_err(|e| ApiError::BadRequest(e.to_string()))?;
        for t in &fs.terms {
            if !req.def.supports_field(&t.field) {
                return Err(ApiError::BadRequest(format!(
                    "field label not supported: {}",
                    t.field
                )));
            }
        }
        Ok((ls, fs))
    }

    pub fn matches(def: &ResourceDef, ls: &LabelSelector, fs: &FieldSelector, obj: &Value) -> bool {
        ls.matches(obj["metadata"].get("labels")) && fs.matches(|f| kinds::field_value(def, obj, f))
    }

    /// A list: items in the request's version, plus list metadata.
    pub fn list(&self, req: &Req) -> ApiResult<(Vec<Value>, Value)> {
        let (ls, fs) = self.selectors(req)?;
        let def = req.def.clone();
        let ns = req.path.namespace.as_deref().filter(|_| def.namespaced);
        let mut after = None;
        if let Some(tok) = &req.query.continue_token {
            let (rv, key) = decode_continue(tok)?;
            if rv < self.store.floor(&def.storage) {
                return Err(ApiError::Gone(
                    "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.".into(),
                ));
            }
            after = Some(key);
        }
        if let Some(rv) = &req.query.resource_version
            && !rv.is_empty()
            && rv.parse::<u64>().is_err()
        {
            return Err(ApiError::BadRequest(format!(
                "resourceVersion: Invalid value: {rv:?}: must be a valid integer"
            )));
        }
        let limit = req.query.limit.unwrap_or(0);
        let page = self
            .store
            .list(&def.storage, ns, after.as_ref(), limit, &|o| {
                Self::matches(&def, &ls, &fs, o)
            });
        let mut meta = json!({"resourceVersion": page.rv.to_string()});
        if let Some((key, remaining)) = page.next {
            let rv = match &req.query.continue_token {
                Some(tok) => decode_continue(tok)?.0,
                None => page.rv,
            };
            meta["continue"] = json!(encode_continue(rv, &key));
            meta["remainingItemCount"] = json!(remaining);
        }
        let items = page.items.iter().map(|o| self.view(&def, o)).collect();
        Ok((items, meta))
    }

    fn check_namespace_for_create(&self, req: &Req) -> ApiResult<()> {
        if !req.def.namespaced {
            return Ok(());
        }
        let ns = req.namespace();
        if ns.is_empty() {
            return Err(ApiError::BadRequest(
                "the server could not find the requested resource: a namespace is required".into(),
            ));
        }
        match self.store.get("core/namespaces", "", ns) {
            None => Err(ApiError::NotFound(Subject::new("", "namespaces", ns))),
            Some(n) if n["metadata"].get("deletionTimestamp").is_some() => {
                Err(ApiError::Forbidden {
                    subject: Subject::new(&req.def.group, &req.def.plural, ""),
                    message: format!(
                        "unable to create new content in namespace {ns} because it is being terminated"
                    ),
                })
            }
            Some(_) => Ok(()),
        }
    }

    /// Checks `apiVersion`, `kind`, `metadata.name` and `metadata.namespace` of a body against
    /// the request, filling in what is missing.
    fn check_identity(&self, req: &Req, obj: &mut Value, url_name: Option<&str>) -> ApiResult<()> {
        let def = &req.def;
        let expected = def.api_version();
        match obj.get("apiVersion").and_then(Value::as_str) {
            Some(v) if v != expected => {
                return Err(ApiError::BadRequest(format!(
                    "the API version in the data ({v}) does not match the expected API version ({expected})"
                )));
            }
            _ => obj["apiVersion"] = json!(expected),
        }
        match obj.get("kind").and_then(Value::as_str) {
            Some(k) if k != def.kind => {
                return Err(ApiError::BadRequest(format!(
                    "the kind in the data ({k}) does not match the expected kind ({})",
                    def.kind
                )));
            }
            _ => obj["kind"] = json!(def.kind),
        }
        if !obj["metadata"].is_object() {
            obj["metadata"] = json!({});
        }
        if let Some(url_name) = url_name {
            match meta_str(obj, "name") {
                Some(n) if n != url_name => {
                    return Err(ApiError::BadRequest(format!(
                        "the name of the object ({n}) does not match the name on the URL ({url_name})"
                    )));
                }
                _ => obj["metadata"]["name"] = json!(url_name),
            }
        }
        if def.namespaced {
            let ns = req.namespace().to_string();
            match meta_str(obj, "namespace") {
                Some(n) if n != ns => {
                    return Err(ApiError::BadRequest("the namespace of the provided object does not match the namespace sent on the request".into()));
                }
                _ => obj["metadata"]["namespace"] = json!(ns),
            }
        } else if let Some(m) = obj["metadata"].as_object_mut() {
            m.remove("namespace");
        }
        Ok(())
    }

    /// Prunes unknown fields and type-checks by schema, following `fieldValidation`.
    fn decode_by_schema(&self, req: &mut Req, obj: &mut Value) -> ApiResult<()> {
        let Some(schema) = req.def.schema.clone() else {
            return Ok(());
        };
        let mut report = PruneReport::default();
        schema_validate::prune(obj, &schema, &mut report);
        if !report.wrong_type.is_empty() && req.def.behavior != Behavior::Custom {
            let (path, want, found) = &report.wrong_type[0];
            return Err(ApiError::BadRequest(format!(
                "{kind} in version \"{v}\" cannot be handled as a {kind}: json: cannot unmarshal {found} into Go struct field .{path} of type {}",
                go_type(*want),
                kind = req.def.kind,
                v = req.def.version
            )));
        }
        if !report.unknown.is_empty() {
            match req.query.validation() {
                "Strict" => {
                    let list: Vec<String> = report
                        .unknown
                        .iter()
                        .map(|p| format!("unknown field \"{p}\""))
                        .collect();
                    return Err(ApiError::BadRequest(format!(
                        "{kind} in version \"{v}\" cannot be handled as a {kind}: strict decoding error: {}",
                        list.join(", "),
                        kind = req.def.kind,
                        v = req.def.version
                    )));
                }
                "Warn" => {
                    for p in &report.unknown {
                        req.warnings.push(format!("unknown field \"{p}\""));
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Create, update or patch.
    pub async fn write(&self, req: &mut Req<'_>, intent: Intent) -> ApiResult<(u16, Value)> {
        let mut generated_attempts = 0;
        for _ in 0..MAX_ATTEMPTS {
            match self.write_once(req, &intent).await {
                Err(WriteFailure::Retry) => continue,
                Err(WriteFailure::NameTaken) if generated_attempts < 5 => {
                    generated_attempts += 1;
                    continue;
                }
                Err(WriteFailure::NameTaken) => {
                    return Err(ApiError::AlreadyExists(req.subject("")));
                }
                Err(WriteFailure::Api(e)) => return Err(e),
                Ok(r) => return Ok(r),
            }
        }
        Err(ApiError::Internal(
            "too many concurrent modifications; please retry".into(),
        ))
    }

    async fn write_once(
        &self,
        req: &mut Req<'_>,
        intent: &Intent,
    ) -> Result<(u16, Value), WriteFailure> {
        let def = req.def.clone();
        let storage_def = self.storage_def(&def);
        let ns = req.namespace().to_string();
        let now = time::now_time();
        let scope = req.scope();
        let status_only = scope == Scope::Status;
        let manager = req.manager();

        // 1. The candidate, in the request's version.
        let (mut candidate, current, is_create, applied) = match intent {
            Intent::Create(body) => {
                if req.path.subresource.is_some() {
                    return Err(ApiError::MethodNotAllowed.into());
                }
                self.check_namespace_for_create(req)?;
                let mut obj = body.clone();
                self.check_identity(req, &mut obj, None)?;
                let name = match meta_str(&obj, "name") {
                    Some(n) => n.to_string(),
                    None => match meta_str(&obj, "generateName") {
                        Some(prefix) => super::names::generate_name(prefix),
                        None => {
                            return Err(ApiError::invalid(
                                &def.kind,
                                req.subject(""),
                                FieldError::required(
                                    "metadata.name",
                                    "name or generateName is required",
                                ),
                            )
                            .into());
                        }
                    },
                };
                obj["metadata"]["name"] = json!(name);
                (obj, None, true, false)
            }
            Intent::Replace(body) => {
                let name = req.path.name.clone().unwrap_or_default();
                let mut obj = body.clone();
                self.check_identity(req, &mut obj, Some(&name))?;
                let current = self.store.get(&def.storage, &ns, &name);
                match &current {
                    None if def.create_on_update && !status_only => {
                        self.check_namespace_for_create(req)?;
                        (obj, None, true, false)
                    }
                    None => return Err(ApiError::NotFound(req.subject(&name)).into()),
                    Some(cur) => {
                        match meta_str(&obj, "resourceVersion") {
                            Some(rv) if rv != object_rv(cur).to_string() => {
                                return Err(ApiError::modified(req.subject(&name)).into());
                            }
                            Some(_) => {}
                            None if !def.unconditional_update => {
                                return Err(ApiError::invalid(
                                    &def.kind,
                                    req.subject(&name),
                                    FieldError::invalid(
                                        "metadata.resourceVersion",
                                        json!(0),
                                        "must be specified for an update",
                                    ),
                                )
                                .into());
                            }
                            None => {}
                        }
                        (obj, current.clone(), false, false)
                    }
                }
            }
            Intent::Patch(kind, body) => {
                let name = req.path.name.clone().unwrap_or_default();
                let current = self.store.get(&def.storage, &ns, &name);
                if *kind == PatchType::Strategic && matches!(def.behavior, Behavior::Custom) {
                    return Err(ApiError::UnsupportedMediaType(
                        "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml".into(),
                    )
                    .into());
                }
                if *kind == PatchType::Apply {
                    let config = decode_body(body, Some("application/apply-patch+yaml"))?;
                    let obj = self.apply_config(req, current.as_deref(), config, &manager, &now)?;
                    if current.is_none() {
                        self.check_namespace_for_create(req)?;
                    }
                    let is_create = current.is_none();
                    (obj, current, is_create, true)
                } else {
                    let Some(cur) = current.clone() else {
                        return Err(ApiError::NotFound(req.subject(&name)).into());
                    };
                    let cur_view = self.view(&def, &cur);
                    let mut obj = patch::apply_patch(*kind, &cur_view, body, def.schema.as_deref())
                        .map_err(|e| match e {
                            PatchError::BadRequest(m) => ApiError::BadRequest(m),
                            PatchError::Invalid(m) => ApiError::invalid(
                                &def.kind,
                                req.subject(&name),
                                FieldError::invalid(
                                    "patch",
                                    Value::String(String::from_utf8_lossy(body).into_owned()),
                                    m,
                                ),
                            ),
                        })?;
                    if !obj.is_object() {
                        return Err(ApiError::BadRequest(
                            "the patch produced something that is not an object".into(),
                        )
                        .into());
                    }
                    if let Some(rv) = meta_str(&obj, "resourceVersion")
                        && rv != object_rv(&cur).to_string()
                    {
                        return Err(ApiError::modified(req.subject(&name)).into());
                    }
                    self.check_identity(req, &mut obj, Some(&name))?;
                    (obj, current, false, false)
                }
            }
        };
        let name = meta_str(&candidate, "name").unwrap_or_default().to_string();
        let current_view = current.as_ref().map(|c| self.view(&def, c));

        // 2. What this scope may not change.
        if let Some(cur) = &current_view {
            match scope {
                Scope::Status => {
                    let mut merged = cur.clone();
                    merged["status"] = candidate.get("status").cloned().unwrap_or(Value::Null);
                    if merged["status"].is_null()
                        && let Some(m) = merged.as_object_mut()
                    {
                        m.remove("status");
                    }
                    if let Some(mf) = candidate["metadata"].get("managedFields") {
                        merged["metadata"]["managedFields"] = mf.clone();
                    }
                    candidate = merged;
                }
                Scope::MainWithStatus => match cur.get("status") {
                    Some(s) => candidate["status"] = s.clone(),
                    None => {
                        if let Some(m) = candidate.as_object_mut() {
                            m.remove("status");
                        }
                    }
                },
                Scope::Main => {}
            }
        } else if status_only {
            return Err(ApiError::NotFound(req.subject(&name)).into());
        }

        // 3. Schema: prune unknown fields, check types.
        self.decode_by_schema(req, &mut candidate)?;

        // 4. Defaults.
        kinds::apply_defaults(&def, &mut candidate, self.opts.minor_version);

        // 5. Server-owned metadata.
        match &current_view {
            None => {
                let m = candidate["metadata"]
                    .as_object_mut()
                    .expect("metadata is an object");
                m.insert("uid".into(), json!(new_uid()));
                m.insert("creationTimestamp".into(), json!(now));
                m.remove("deletionTimestamp");
                m.remove("deletionGracePeriodSeconds");
                m.remove("resourceVersion");
                m.remove("selfLink");
                if def.tracks_generation {
                    m.insert("generation".into(), json!(1));
                } else {
                    m.remove("generation");
                }
            }
            Some(cur) => {
                for k in [
                    "uid",
                    "creationTimestamp",
                    "deletionTimestamp",
                    "deletionGracePeriodSeconds",
                    "generateName",
                ] {
                    match cur["metadata"].get(k) {
                        Some(v) => candidate["metadata"][k] = v.clone(),
                        None => {
                            if let Some(m) = candidate["metadata"].as_object_mut() {
                                m.remove(k);
                            }
                        }
                    }
                }
                if cur["metadata"].get("deletionTimestamp").is_some() {
                    let old: Vec<Value> = cur["metadata"]["finalizers"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default();
                    if let Some(new) = candidate["metadata"]["finalizers"].as_array()
                        && new.iter().any(|f| !old.contains(f))
                    {
                        return Err(ApiError::invalid(
                            &def.kind,
                            req.subject(&name),
                            FieldError::forbidden(
                                "metadata.finalizers",
                                "no new finalizers can be added if the object is being deleted",
                            ),
                        )
                        .into());
                    }
                }
                if def.tracks_generation {
                    let mut generation = cur["metadata"]["generation"].as_i64().unwrap_or(1);
                    if !same_spec(cur, &candidate, def.status_subresource) {
                        generation += 1;
                    }
                    candidate["metadata"]["generation"] = json!(generation);
                } else if let Some(m) = candidate["metadata"].as_object_mut() {
                    m.remove("generation");
                }
                candidate["metadata"]["resourceVersion"] =
                    cur["metadata"]["resourceVersion"].clone();
            }
        }

        // 6. Field ownership (apply already recorded its own).
        if !applied {
            let writer = Writer {
                manager: &manager,
                api_version: &def.api_version(),
                scope,
                now: &now,
            };
            fieldmanager::track_update(
                current_view.as_ref(),
                &mut candidate,
                def.schema.as_deref(),
                &writer,
            )
            .map_err(|e| ApiError::Internal(format!("failed to update managed fields: {e}")))?;
        }

        // 7. Validation.
        // Only events.k8s.io events differ between the request's form and storage.
        let view_copy = (def.behavior == Behavior::EventsV1).then(|| candidate.clone());
        let mut stored = kinds::to_storage(&def, candidate, &storage_def);
        if let Some(cur) = &current {
            kinds::normalize_update(&def, cur, &mut stored, status_only);
        }
        let errs = kinds::validate(&def, view_copy.as_ref().unwrap_or(&stored), &stored);
        if !errs.is_empty() {
            return Err(ApiError::Invalid {
                kind: def.kind.clone(),
                subject: req.subject(&name),
                errors: errs,
            }
            .into());
        }

        // 8. Kind side effects.
        let ctx = self.kind_ctx(&now);
        let prepared = match &current {
            None => kinds::prepare_create(&def, &mut stored, &ctx),
            Some(cur) => kinds::prepare_update(&def, cur, &mut stored, &ctx, status_only),
        }
        .map_err(|errors| ApiError::Invalid {
            kind: def.kind.clone(),
            subject: req.subject(&name),
            errors,
        })?;

        // 9. No-op updates change nothing, not even the resourceVersion.
        if let Some(cur) = &current
            && same_object(cur, &stored)
        {
            drop(prepared);
            return Ok((200, self.view(&def, cur)));
        }
        if req.query.dry_run {
            drop(prepared);
            return Ok((if is_create { 201 } else { 200 }, self.view(&def, &stored)));
        }

        // 10. Commit.
        let expect = match &current {
            None => Expect::Absent,
            Some(cur) => Expect::Rv(object_rv(cur)),
        };
        let committed = match self
            .store
            .commit(&def.storage, &ns, &name, expect, Some(stored))
        {
            Ok(c) => c,
            Err(CommitError::Exists) if matches!(intent, Intent::Create(_)) => {
                drop(prepared);
                if req.path.name.is_none() && intent_generates(intent) {
                    return Err(WriteFailure::NameTaken);
                }
                return Err(ApiError::AlreadyExists(req.subject(&name)).into());
            }
            Err(CommitError::Conflict | CommitError::NotFound | CommitError::Exists) => {
                drop(prepared);
                return Err(WriteFailure::Retry);
            }
        };
        prepared.commit();
        let obj = committed
            .durable()
            .await
            .map_err(ApiError::Internal)?
            .expect("a put stores an object");
        self.after_write(&def, &obj).await;
        // An update that removed the last finalizer of a deleted object completes the deletion.
        if obj["metadata"].get("deletionTimestamp").is_some()
            && obj["metadata"]["finalizers"]
                .as_array()
                .is_none_or(Vec::is_empty)
            && !is_pod_in_grace(&def, &obj)
        {
            self.finish_delete(&def, &obj)
                .await
                .map_err(WriteFailure::Api)?;
        }
        Ok((if is_create { 201 } else { 200 }, self.view(&def, &obj)))
    }

    /// Runs server-side apply against the current object.
    fn apply_config(
        &self,
        req: &Req,
        current: Option<&Value>,
        mut config: Value,
        manager: &str,
        now: &str,
    ) -> ApiResult<Value> {
        let def = &req.def;
        let name = req.path.name.clone().unwrap_or_default();
        if req.query.field_manager.as_deref().is_none_or(str::is_empty) {
            return Err(ApiError::invalid(
                &def.kind,
                req.subject(&name),
                FieldError::required("fieldManager", "is required for apply patch"),
            ));
        }
        for k in ["apiVersion", "kind"] {
            if config
                .get(k)
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                return Err(ApiError::BadRequest(format!(
                    "error decoding YAML: Object '{}' is missing in '{}'",
                    if k == "kind" { "Kind" } else { "apiVersion" },
                    config
                )));
            }
        }
        self.check_identity(req, &mut config, Some(&name))?;
        if let Some(schema) = &def.schema {
            let mut probe = config.clone();
            let mut report = PruneReport::default();
            schema_validate::prune(&mut probe, schema, &mut report);
            let gvk = if def.group.is_empty() {
                format!("/{}, Kind={}", def.version, def.kind)
            } else {
                format!("{}/{}, Kind={}", def.group, def.version, def.kind)
            };
            let ns = req.namespace();
            let problem = match (report.unknown.first(), report.wrong_type.first()) {
                (Some(p), _) => Some(format!(".{p}: field not declared in schema")),
                (None, Some((p, want, found))) => {
                    Some(format!(".{p}: expected {}, got {found}", want.name()))
                }
                (None, None) => None,
            };
            if let Some(problem) = problem {
                let msg =
                    format!("failed to create typed patch object ({ns}/{name}; {gvk}): {problem}");
                return Err(if req.query.validation() == "Strict" {
                    ApiError::BadRequest(msg)
                } else {
                    ApiError::Internal(msg)
                });
            }
        }
        let current_view = current.map(|c| self.view(def, c));
        let writer = Writer {
            manager,
            api_version: &def.api_version(),
            scope: req.scope(),
            now,
        };
        let mut result = fieldmanager::apply::apply(
            current_view.as_ref(),
            &config,
            def.schema.as_deref(),
            req.query.force,
            &writer,
        );
        if let (Err(ApplyError::Conflicts(cs)), Some(live)) = (&result, &current_view)
            && manager == "kubectl"
            && fieldmanager::apply::allowed_by_last_applied(live, cs, def.schema.as_deref())
        {
            result = fieldmanager::apply::apply(
                current_view.as_ref(),
                &config,
                def.schema.as_deref(),
                true,
                &writer,
            );
        }
        let mut merged = result.map_err(|e| match e {
            ApplyError::Conflicts(cs) => ApiError::ApplyConflict {
                subject: req.subject(&name),
                message: ApplyError::Conflicts(cs.clone()).to_string(),
                causes: cs.iter().map(|c| (c.owner(), c.path.clone())).collect(),
            },
            ApplyError::Set(e) => ApiError::invalid(
                &def.kind,
                req.subject(&name),
                FieldError::invalid("", Value::Null, e.to_string()),
            ),
        })?;
        if let Some(cur) = &current_view {
            merged["metadata"]["resourceVersion"] = cur["metadata"]["resourceVersion"].clone();
        }
        Ok(merged)
    }

    /// Hooks after a committed write: CRDs change what is served.
    async fn after_write(&self, def: &ResourceDef, _obj: &Value) {
        if def.behavior == Behavior::Crd {
            self.rebuild_registry();
        }
    }

    /// Deletes a stored object for good and runs the kind's clean-up.
    async fn finish_delete(&self, def: &ResourceDef, obj: &Value) -> ApiResult<Option<Value>> {
        let ns = meta_str(obj, "namespace").unwrap_or_default().to_string();
        let name = meta_str(obj, "name").unwrap_or_default().to_string();
        let storage_def = self.storage_def(def);
        match self
            .store
            .commit(&def.storage, &ns, &name, Expect::Rv(object_rv(obj)), None)
        {
            Ok(c) => {
                c.durable().await.map_err(ApiError::Internal)?;
                let now = time::now_time();
                kinds::on_deleted(&storage_def, obj, &self.kind_ctx(&now));
                if let Some(uid) = meta_str(obj, "uid") {
                    self.gc_queue
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push_back(uid.to_string());
                    self.gc_wake.notify_one();
                }
                if def.behavior == Behavior::Crd {
                    self.delete_custom_resources(obj).await;
                    self.rebuild_registry();
                }
                Ok(Some(obj.clone()))
            }
            Err(CommitError::NotFound) => Ok(None),
            Err(_) => Err(ApiError::modified(Subject::new(
                &def.group,
                &def.plural,
                &name,
            ))),
        }
    }

    /// Removes `owner_uid` from the owner references of its dependents (orphaning them).
    async fn orphan_dependents(&self, owner_uid: &str) {
        for (storage, ns, name) in self.store.dependents(owner_uid) {
            for _ in 0..MAX_ATTEMPTS {
                let Some(cur) = self.store.get(&storage, &ns, &name) else {
                    break;
                };
                let mut next = (*cur).clone();
                if let Some(refs) = next["metadata"]
                    .get_mut("ownerReferences")
                    .and_then(Value::as_array_mut)
                {
                    refs.retain(|r| r["uid"].as_str() != Some(owner_uid));
                    if refs.is_empty()
                        && let Some(m) = next["metadata"].as_object_mut()
                    {
                        m.remove("ownerReferences");
                    }
                }
                if let Ok(c) = self.store.commit(
                    &storage,
                    &ns,
                    &name,
                    Expect::Rv(object_rv(&cur)),
                    Some(next),
                ) {
                    let _ = c.durable().await;
                    break;
                }
            }
        }
    }

    /// The garbage collector: dependents of deleted owners are deleted when no owner remains,
    /// and lose the dangling reference otherwise (background propagation).
    pub async fn collect_garbage(&self) {
        self.collect_dependents().await;
        self.finish_foreground_deletions().await;
    }

    /// Owners deleted in the foreground go once nothing depends on them any more.
    async fn finish_foreground_deletions(&self) {
        let waiting: Vec<(String, String, String, String)> = self
            .foreground
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let registry = self.registry();
        for entry in waiting {
            let (storage, ns, name, uid) = &entry;
            let done = match self.store.get(storage, ns, name) {
                None => true,
                Some(obj) if meta_str(&obj, "uid") != Some(uid.as_str()) => true,
                Some(_) if !self.store.dependents(uid).is_empty() => false,
                Some(obj) => {
                    let mut next = (*obj).clone();
                    if let Some(f) = next["metadata"]
                        .get_mut("finalizers")
                        .and_then(Value::as_array_mut)
                    {
                        f.retain(|x| x != "foregroundDeletion");
                    }
                    match self.store.commit(
                        storage,
                        ns,
                        name,
                        Expect::Rv(object_rv(&obj)),
                        Some(next),
                    ) {
                        Ok(c) => {
                            if let Ok(Some(stored)) = c.durable().await
                                && stored["metadata"]["finalizers"]
                                    .as_array()
                                    .is_none_or(Vec::is_empty)
                                && let Some(def) = registry.storage_def(storage)
                            {
                                let _ = self.finish_delete(&def, &stored).await;
                            }
                            true
                        }
                        Err(_) => false,
                    }
                }
            };
            if done {
                self.foreground
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .retain(|e| e != &entry);
            }
        }
    }

    async fn collect_dependents(&self) {
        loop {
            let Some(uid) = self
                .gc_queue
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .pop_front()
            else {
                return;
            };
            let registry = self.registry();
            for (storage, ns, name) in self.store.dependents(&uid) {
                let Some(obj) = self.store.get(&storage, &ns, &name) else {
                    continue;
                };
                let others = obj["metadata"]["ownerReferences"]
                    .as_array()
                    .map(|r| {
                        r.iter()
                            .filter(|o| o["uid"].as_str() != Some(uid.as_str()))
                            .count()
                    })
                    .unwrap_or(0);
                let others_alive = others > 0 && self.any_owner_alive(&obj, &uid, &registry);
                if others_alive {
                    self.orphan_one(&storage, &ns, &name, &uid).await;
                    continue;
                }
                let Some(def) = registry.storage_def(&storage) else {
                    continue;
                };
                let path = ResourcePath {
                    group: def.group.clone(),
                    version: def.version.clone(),
                    namespace: Some(ns.clone()).filter(|n| !n.is_empty()),
                    plural: def.plural.clone(),
                    name: Some(name.clone()),
                    subresource: None,
                    watch_prefix: false,
                };
                let query = Query::default();
                let req = Req {
                    def: def.clone(),
                    path: &path,
                    query: &query,
                    user_agent: Some("garbage-collector"),
                    warnings: vec![],
                };
                let _ = self.delete(&req, &DeleteOptions::default()).await;
            }
        }
    }

    fn any_owner_alive(
        &self,
        obj: &Value,
        gone_uid: &str,
        registry: &super::registry::Registry,
    ) -> bool {
        let ns = meta_str(obj, "namespace").unwrap_or_default();
        obj["metadata"]["ownerReferences"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|o| o["uid"].as_str() != Some(gone_uid))
            .any(|o| {
                let (Some(api_version), Some(kind), Some(name), Some(uid)) = (
                    o["apiVersion"].as_str(),
                    o["kind"].as_str(),
                    o["name"].as_str(),
                    o["uid"].as_str(),
                ) else {
                    return false;
                };
                let Some(def) = registry.by_kind(api_version, kind) else {
                    return false;
                };
                let owner_ns = if def.namespaced { ns } else { "" };
                self.store
                    .get(&def.storage, owner_ns, name)
                    .is_some_and(|owner| meta_str(&owner, "uid") == Some(uid))
            })
    }

    async fn orphan_one(&self, storage: &str, ns: &str, name: &str, owner_uid: &str) {
        for _ in 0..MAX_ATTEMPTS {
            let Some(cur) = self.store.get(storage, ns, name) else {
                return;
            };
            let mut next = (*cur).clone();
            if let Some(refs) = next["metadata"]
                .get_mut("ownerReferences")
                .and_then(Value::as_array_mut)
            {
                refs.retain(|r| r["uid"].as_str() != Some(owner_uid));
            }
            if let Ok(c) =
                self.store
                    .commit(storage, ns, name, Expect::Rv(object_rv(&cur)), Some(next))
            {
                let _ = c.durable().await;
                return;
            }
        }
    }

    /// Deletes events last seen longer ago than the event TTL.
    pub async fn expire_events(&self) {
        let (events, _) = self.store.snapshot("events", None);
        let cutoff = time::now_micros() - self.opts.event_ttl.as_micros() as i64;
        for e in events {
            let last = [
                "/series/lastObservedTime",
                "/lastTimestamp",
                "/eventTime",
                "/metadata/creationTimestamp",
            ]
            .iter()
            .find_map(|p| {
                e.pointer(p)
                    .and_then(Value::as_str)
                    .and_then(time::parse_rfc3339)
            });
            if last.is_some_and(|t| t < cutoff) {
                let ns = meta_str(&e, "namespace").unwrap_or_default().to_string();
                let name = meta_str(&e, "name").unwrap_or_default().to_string();
                if let Ok(c) =
                    self.store
                        .commit("events", &ns, &name, Expect::Rv(object_rv(&e)), None)
                {
                    let _ = c.durable().await;
                }
            }
        }
    }

    async fn delete_custom_resources(&self, crd: &Value) {
        let group = crd["spec"]["group"].as_str().unwrap_or_default();
        let plural = crd["spec"]["names"]["plural"].as_str().unwrap_or_default();
        let storage = format!("{group}/{plural}");
        let (objs, _) = self.store.snapshot(&storage, None);
        for o in objs {
            let ns = meta_str(&o, "namespace").unwrap_or_default().to_string();
            let name = meta_str(&o, "name").unwrap_or_default().to_string();
            if let Ok(c) = self
                .store
                .commit(&storage, &ns, &name, Expect::Rv(object_rv(&o)), None)
            {
                let _ = c.durable().await;
            }
        }
    }

    /// DELETE of one object.
    pub async fn delete(&self, req: &Req<'_>, options: &DeleteOptions) -> ApiResult<(u16, Value)> {
        let def = req.def.clone();
        let ns = req.namespace().to_string();
        let name = req.path.name.clone().unwrap_or_default();
        for _ in 0..MAX_ATTEMPTS {
            let Some(cur) = self.store.get(&def.storage, &ns, &name) else {
                return Err(ApiError::NotFound(req.subject(&name)));
            };
            if let Some(uid) = &options.uid
                && Some(uid.as_str()) != meta_str(&cur, "uid")
            {
                return Err(ApiError::Conflict {
                    subject: req.subject(&name),
                    detail: format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                        meta_str(&cur, "uid").unwrap_or_default()
                    ),
                });
            }
            if let Some(rv) = &options.resource_version
                && *rv != object_rv(&cur).to_string()
            {
                return Err(ApiError::Conflict {
                    subject: req.subject(&name),
                    detail: format!(
                        "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                        object_rv(&cur)
                    ),
                });
            }
            let now = time::now_time();
            let mut pending: Option<Value> = None;
            match def.behavior {
                Behavior::Namespace => {
                    if SYSTEM_NAMESPACES.contains(&name.as_str()) && name != "kube-node-lease" {
                        return Err(ApiError::Forbidden {
                            subject: req.subject(&name),
                            message: format!(
                                "namespaces \"{name}\" is forbidden: this namespace may not be deleted"
                            ),
                        });
                    }
                    let mut next = (*cur).clone();
                    if next["metadata"].get("deletionTimestamp").is_none() {
                        next["metadata"]["deletionTimestamp"] = json!(now);
                        next["metadata"]["deletionGracePeriodSeconds"] = json!(0);
                    }
                    next["status"]["phase"] = json!("Terminating");
                    pending = Some(next);
                }
                Behavior::Pod if kinds::pod::needs_graceful_deletion(&cur) => {
                    let grace = options
                        .grace_period_seconds
                        .unwrap_or_else(|| {
                            cur["spec"]["terminationGracePeriodSeconds"]
                                .as_i64()
                                .unwrap_or(30)
                        })
                        .max(0);
                    if grace > 0 {
                        let current_grace = cur["metadata"]["deletionGracePeriodSeconds"].as_i64();
                        if current_grace.is_some_and(|g| g <= grace) {
                            return Ok((200, self.view(&def, &cur)));
                        }
                        let mut next = (*cur).clone();
                        next["metadata"]["deletionTimestamp"] =
                            json!(time::format_time(time::now_micros() + grace * 1_000_000));
                        next["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
                        pending = Some(next);
                    }
                }
                _ => {}
            }
            // Foreground deletion: the owner waits, marked, until its dependents are gone.
            let uid = meta_str(&cur, "uid").unwrap_or_default().to_string();
            if pending.is_none()
                && options.propagation_policy.as_deref() == Some("Foreground")
                && !self.store.dependents(&uid).is_empty()
            {
                let mut next = (*cur).clone();
                if next["metadata"].get("deletionTimestamp").is_none() {
                    next["metadata"]["deletionTimestamp"] = json!(now);
                    next["metadata"]["deletionGracePeriodSeconds"] = json!(0);
                }
                let mut fins: Vec<Value> = next["metadata"]["finalizers"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                if !fins.iter().any(|f| f == "foregroundDeletion") {
                    fins.push(json!("foregroundDeletion"));
                }
                next["metadata"]["finalizers"] = Value::Array(fins);
                if !options.dry_run {
                    if self
                        .store
                        .commit(
                            &def.storage,
                            &ns,
                            &name,
                            Expect::Rv(object_rv(&cur)),
                            Some(next.clone()),
                        )
                        .is_err()
                    {
                        continue;
                    }
                    self.foreground
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push((def.storage.clone(), ns.clone(), name.clone(), uid.clone()));
                    self.gc_queue
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push_back(uid);
                    self.gc_wake.notify_one();
                }
                return Ok((200, self.view(&def, &next)));
            }
            let has_finalizers = cur["metadata"]["finalizers"]
                .as_array()
                .is_some_and(|f| !f.is_empty());
            if pending.is_none() && has_finalizers {
                if cur["metadata"].get("deletionTimestamp").is_some() {
                    return Ok((200, self.view(&def, &cur)));
                }
                let mut next = (*cur).clone();
                next["metadata"]["deletionTimestamp"] = json!(now);
                next["metadata"]["deletionGracePeriodSeconds"] = json!(0);
                if def.tracks_generation {
                    next["metadata"]["generation"] =
                        json!(next["metadata"]["generation"].as_i64().unwrap_or(1) + 1);
                }
                pending = Some(next);
            }
            if options.dry_run {
                return Ok((200, self.view(&def, pending.as_ref().unwrap_or(&cur))));
            }
            if let Some(next) = pending {
                if same_object(&next, &cur) {
                    return Ok((200, self.view(&def, &cur)));
                }
                match self.store.commit(
                    &def.storage,
                    &ns,
                    &name,
                    Expect::Rv(object_rv(&cur)),
                    Some(next),
                ) {
                    Ok(c) => {
                        let obj = c.durable().await.map_err(ApiError::Internal)?.expect("put");
                        return Ok((200, self.view(&def, &obj)));
                    }
                    Err(_) => continue,
                }
            }
            let orphan = options.propagation_policy.as_deref() == Some("Orphan")
                || (options.propagation_policy.is_none()
                    && options.orphan_dependents == Some(true));
            if orphan && let Some(uid) = meta_str(&cur, "uid") {
                self.orphan_dependents(uid).await;
            }
            match self.finish_delete(&def, &cur).await {
                Ok(Some(obj)) => {
                    return Ok((
                        200,
                        if returns_deleted_object(&def) {
                            self.view(&def, &obj)
                        } else {
                            success_status(&def, &obj)
                        },
                    ));
                }
                Ok(None) => return Err(ApiError::NotFound(req.subject(&name))),
                Err(_) => continue,
            }
        }
        Err(ApiError::Internal(
            "too many concurrent modifications; please retry".into(),
        ))
    }

    /// DELETE of a collection: every object the selectors match.
    pub async fn delete_collection(
        &self,
        req: &Req<'_>,
        options: &DeleteOptions,
    ) -> ApiResult<(u16, Value)> {
        let (items, _) = self.list(req)?;
        for item in items {
            let name = meta_str(&item, "name").unwrap_or_default().to_string();
            let ns = meta_str(&item, "namespace").map(str::to_string);
            let path = ResourcePath {
                name: Some(name),
                namespace: ns.or(req.path.namespace.clone()),
                ..req.path.clone()
            };
            let one = Req {
                def: req.def.clone(),
                path: &path,
                query: req.query,
                user_agent: req.user_agent,
                warnings: vec![],
            };
            match self.delete(&one, options).await {
                Ok(_) | Err(ApiError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok((
            200,
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}),
        ))
    }

    /// One pass of the namespace controller: empties terminating namespaces and removes them.
    pub async fn reconcile_namespaces(&self) {
        let (namespaces, _) = self.store.snapshot("core/namespaces", None);
        for ns in namespaces
            .iter()
            .filter(|n| n["metadata"].get("deletionTimestamp").is_none())
        {
            self.ensure_namespace_defaults(meta_str(ns, "name").unwrap_or_default())
                .await;
        }
        let registry = self.registry();
        let mut storages: Vec<(String, Arc<ResourceDef>)> = Vec::new();
        for d in registry.all().filter(|d| d.namespaced) {
            if !storages.iter().any(|(s, _)| *s == d.storage)
                && let Some(sd) = registry.storage_def(&d.storage)
            {
                storages.push((d.storage.clone(), sd));
            }
        }
        for ns in namespaces
            .iter()
            .filter(|n| n["metadata"].get("deletionTimestamp").is_some())
        {
            let ns_name = meta_str(ns, "name").unwrap_or_default().to_string();
            let query = Query::default();
            for (storage, def) in &storages {
                let (objs, _) = self.store.snapshot(storage, Some(&ns_name));
                for o in objs {
                    let path = ResourcePath {
                        group: def.group.clone(),
                        version: def.version.clone(),
                        namespace: Some(ns_name.clone()),
                        plural: def.plural.clone(),
                        name: meta_str(&o, "name").map(str::to_string),
                        subresource: None,
                        watch_prefix: false,
                    };
                    let req = Req {
                        def: def.clone(),
                        path: &path,
                        query: &query,
                        user_agent: Some("namespace-controller"),
                        warnings: vec![],
                    };
                    if o["metadata"].get("deletionTimestamp").is_none() {
                        let _ = self.delete(&req, &DeleteOptions::default()).await;
                    }
                }
            }
            let names: Vec<String> = storages.iter().map(|(s, _)| s.clone()).collect();
            if self.store.namespace_is_empty(&ns_name, &names) {
                let mut done = (**ns).clone();
                done["spec"]["finalizers"] = json!([]);
                let rv = object_rv(ns);
                if done["metadata"]["finalizers"]
                    .as_array()
                    .is_none_or(Vec::is_empty)
                {
                    if let Ok(c) =
                        self.store
                            .commit("core/namespaces", "", &ns_name, Expect::Rv(rv), None)
                    {
                        let _ = c.durable().await;
                    }
                } else if let Ok(c) =
                    self.store
                        .commit("core/namespaces", "", &ns_name, Expect::Rv(rv), Some(done))
                {
                    let _ = c.durable().await;
                }
            }
        }
    }

    /// What the service-account and root-CA controllers put in every namespace: the `default`
    /// ServiceAccount and the `kube-root-ca.crt` ConfigMap.
    async fn ensure_namespace_defaults(&self, ns: &str) {
        let now = time::now_time();
        if self
            .store
            .get("core/serviceaccounts", ns, "default")
            .is_none()
        {
            let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount",
                "metadata": {"name": "default", "namespace": ns, "uid": new_uid(), "creationTimestamp": now}});
            if let Ok(c) = self.store.commit(
                "core/serviceaccounts",
                ns,
                "default",
                Expect::Absent,
                Some(sa),
            ) {
                let _ = c.durable().await;
            }
        }
        if let Some(ca) = self.root_ca.get()
            && self
                .store
                .get("core/configmaps", ns, "kube-root-ca.crt")
                .is_none()
        {
            let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "kube-root-ca.crt", "namespace": ns, "uid": new_uid(), "creationTimestamp": now,
                             "annotations": {"kubernetes.io/description": "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters."}},
                "data": {"ca.crt": ca}});
            if let Ok(c) = self.store.commit(
                "core/configmaps",
                ns,
                "kube-root-ca.crt",
                Expect::Absent,
                Some(cm),
            ) {
                let _ = c.durable().await;
            }
        }
    }

    /// POST `pods/{name}/binding`: assigns a pod to a node, once.
    pub async fn bind_pod(&self, req: &Req<'_>, binding: &Value) -> ApiResult<(u16, Value)> {
        let ns = req.namespace().to_string();
        let name = req.path.name.clone().unwrap_or_default();
        let node = binding["target"]["name"]
            .as_str()
            .filter(|n| !n.is_empty())
            .ok_or_else(|| {
                ApiError::invalid(
                    "Binding",
                    Subject::new("", "bindings", &name),
                    FieldError::required("target.name", ""),
                )
            })?;
        for _ in 0..MAX_ATTEMPTS {
            let Some(cur) = self.store.get("core/pods", &ns, &name) else {
                return Err(ApiError::NotFound(Subject::new("", "pods", &name)));
            };
            if let Some(existing) = cur["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) {
                return Err(ApiError::Conflict {
                    subject: Subject::new("", "pods", &name),
                    detail: format!("pod {name} is already assigned to node \"{existing}\""),
                });
            }
            let mut next = (*cur).clone();
            next["spec"]["nodeName"] = json!(node);
            if self
                .store
                .commit(
                    "core/pods",
                    &ns,
                    &name,
                    Expect::Rv(object_rv(&cur)),
                    Some(next),
                )
                .is_ok()
            {
                return Ok((
                    201,
                    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
                ));
            }
        }
        Err(ApiError::Internal(
            "too many concurrent modifications; please retry".into(),
        ))
    }
}

fn intent_generates(intent: &Intent) -> bool {
    match intent {
        Intent::Create(b) => meta_str(b, "name").is_none() && meta_str(b, "generateName").is_some(),
        _ => false,
    }
}

fn is_pod_in_grace(def: &ResourceDef, obj: &Value) -> bool {
    def.behavior == Behavior::Pod
        && obj["metadata"]["deletionGracePeriodSeconds"]
            .as_i64()
            .is_some_and(|g| g > 0)
}

/// Kinds whose DELETE answers with the deleted object rather than a `Status`.
fn returns_deleted_object(def: &ResourceDef) -> bool {
    matches!(
        def.behavior,
        Behavior::Pod
            | Behavior::Service
            | Behavior::Namespace
            | Behavior::Custom
            | Behavior::Crd
            | Behavior::Node
            | Behavior::Secret
            | Behavior::ConfigMap
            | Behavior::Deployment
            | Behavior::DaemonSet
    )
}

fn success_status(def: &ResourceDef, obj: &Value) -> Value {
    let mut details =
        json!({"name": meta_str(obj, "name"), "kind": def.plural, "uid": meta_str(obj, "uid")});
    if !def.group.is_empty() {
        details["group"] = json!(def.group);
    }
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details})
}

fn go_type(t: super::schema::Ty) -> &'static str {
    use super::schema::Ty;
    match t {
        Ty::Object => "map[string]interface {}",
        Ty::Array => "[]interface {}",
        Ty::String => "string",
        Ty::Integer => "int32",
        Ty::Number => "float64",
        Ty::Boolean => "bool",
        Ty::Any => "interface {}",
    }
}

/// The `autoscaling/v1 Scale` view of an object with a scale subresource.
fn scale_of(def: &ResourceDef, obj: &Value) -> Value {
    let labels = obj["spec"]["selector"]["matchLabels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    json!({
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {"name": obj["metadata"]["name"], "namespace": obj["metadata"]["namespace"], "uid": obj["metadata"]["uid"],
                     "resourceVersion": obj["metadata"]["resourceVersion"], "creationTimestamp": obj["metadata"]["creationTimestamp"]},
        "spec": {"replicas": obj["spec"]["replicas"].as_i64().unwrap_or(if def.behavior == Behavior::DaemonSet { 0 } else { 1 })},
        "status": {"replicas": obj["status"]["replicas"].as_i64().unwrap_or(0), "selector": labels}
    })
}

/// `DeleteOptions` from the query and the body.
#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    pub grace_period_seconds: Option<i64>,
    pub orphan_dependents: Option<bool>,
    pub propagation_policy: Option<String>,
    pub uid: Option<String>,
    pub resource_version: Option<String>,
    pub dry_run: bool,
}

impl DeleteOptions {
    pub fn parse(query: &Query, body: &[u8]) -> ApiResult<Self> {
        let mut o = DeleteOptions {
            grace_period_seconds: query.grace_period_seconds,
            orphan_dependents: query.orphan_dependents,
            propagation_policy: query.propagation_policy.clone(),
            uid: None,
            resource_version: None,
            dry_run: query.dry_run,
        };
        if !body.iter().all(u8::is_ascii_whitespace) {
            let v: Value = serde_json::from_slice(body)
                .map_err(|e| ApiError::BadRequest(format!("error decoding DeleteOptions: {e}")))?;
            if !v.is_object() {
                return Err(ApiError::BadRequest(
                    "DeleteOptions must be an object".into(),
                ));
            }
            if let Some(g) = v.get("gracePeriodSeconds").filter(|g| !g.is_null()) {
                o.grace_period_seconds = Some(g.as_i64().ok_or_else(|| {
                    ApiError::BadRequest("gracePeriodSeconds must be an integer".into())
                })?);
            }
            if let Some(orphan) = v.get("orphanDependents").and_then(Value::as_bool) {
                o.orphan_dependents = Some(orphan);
            }
            if let Some(p) = v.get("propagationPolicy").and_then(Value::as_str) {
                o.propagation_policy = Some(p.to_string());
            }
            o.uid = v
                .pointer("/preconditions/uid")
                .and_then(Value::as_str)
                .map(str::to_string);
            o.resource_version = v
                .pointer("/preconditions/resourceVersion")
                .and_then(Value::as_str)
                .map(str::to_string);
            if v["dryRun"]
                .as_array()
                .is_some_and(|d| d.iter().any(|x| x == "All"))
            {
                o.dry_run = true;
            }
        }
        if let Some(p) = &o.propagation_policy
            && !matches!(p.as_str(), "Orphan" | "Background" | "Foreground")
        {
            return Err(ApiError::Invalid {
                kind: "DeleteOptions".into(),
                subject: Subject::default(),
                errors: vec![FieldError::not_supported(
                    "propagationPolicy",
                    json!(p),
                    &["Foreground", "Background", "Orphan"],
                )],
            });
        }
        Ok(o)
    }
}

/// Why one write attempt did not finish.
enum WriteFailure {
    Retry,
    NameTaken,
    Api(ApiError),
}

impl From<ApiError> for WriteFailure {
    fn from(e: ApiError) -> Self {
        WriteFailure::Api(e)
    }
}

fn encode_continue(rv: u64, key: &(String, String)) -> String {
    let raw = json!({"rv": rv, "ns": key.0, "name": key.1}).to_string();
    super::base64::encode_url(raw.as_bytes())
}

fn decode_continue(tok: &str) -> ApiResult<(u64, (String, String))> {
    let bad = || ApiError::BadRequest(format!("continue key is not valid: {tok:?}"));
    let raw = super::base64::decode_url(tok).ok_or_else(bad)?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    let rv = v["rv"].as_u64().ok_or_else(bad)?;
    let ns = v["ns"].as_str().ok_or_else(bad)?.to_string();
    let name = v["name"].as_str().ok_or_else(bad)?.to_string();
    Ok((rv, (ns, name)))
}

/// An empty JSON object, for bodies that carry nothing.
pub fn empty_object() -> Value {
    Value::Object(Map::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip_and_reject_garbage() {
        let t = encode_continue(42, &("default".into(), "web".into()));
        assert_eq!(
            decode_continue(&t).unwrap(),
            (42, ("default".to_string(), "web".to_string()))
        );
        for bad in [
            "",
            "!!!",
            "YWJj",
            &super::super::base64::encode_url(b"{\"rv\":\"x\"}"),
        ] {
            assert!(decode_continue(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn delete_options_from_query_and_body() {
        let q = Query {
            grace_period_seconds: Some(5),
            ..Default::default()
        };
        let o = DeleteOptions::parse(&q, br#"{"kind":"DeleteOptions","apiVersion":"v1","propagationPolicy":"Background","preconditions":{"uid":"u","resourceVersion":"7"}}"#).unwrap();
        assert_eq!(o.grace_period_seconds, Some(5));
        assert_eq!(o.uid.as_deref(), Some("u"));
        assert_eq!(o.resource_version.as_deref(), Some("7"));
        assert!(DeleteOptions::parse(&Query::default(), b"[]").is_err());
        assert!(
            DeleteOptions::parse(&Query::default(), br#"{"propagationPolicy":"Eventually"}"#)
                .is_err()
        );
        assert!(
            DeleteOptions::parse(&Query::default(), br#"{"gracePeriodSeconds":"soon"}"#).is_err()
        );
        assert!(
            DeleteOptions::parse(&Query::default(), b"  ")
                .unwrap()
                .uid
                .is_none()
        );
    }

    #[test]
    fn bodies_decode_from_json_and_yaml() {
        assert_eq!(decode_body(b"{\"a\":1}", None).unwrap()["a"], 1);
        assert_eq!(
            decode_body(b"a: 1\nb: [x]\n", Some("application/yaml")).unwrap()["b"][0],
            "x"
        );
        assert!(decode_body(b"[1]", None).is_err());
        assert!(decode_body(b"{", None).is_err());
        assert!(decode_body(b": :", Some("application/apply-patch+yaml")).is_err());
    }
}
