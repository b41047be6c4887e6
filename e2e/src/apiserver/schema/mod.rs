//! Structural schemas: the one type model behind decoding (pruning unknown fields), CRD
//! validation and defaulting, strategic merge patch (merge keys) and server-side apply
//! (associative list keys, atomic lists and maps).
//!
//! Schemas come from two places: a CRD's `openAPIV3Schema` ([`Schema::from_openapi`]) and, for
//! built-in kinds, the k8s-openapi types plus a table of list semantics ([`builtin`]).

pub mod builtin;
pub mod validate;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

/// The JSON type a node accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ty {
    Object,
    Array,
    String,
    Integer,
    Number,
    Boolean,
    /// No constraint on the type (int-or-string, preserve-unknown-fields, free-form objects).
    #[default]
    Any,
}

impl Ty {
    pub fn name(self) -> &'static str {
        match self {
            Ty::Object => "object",
            Ty::Array => "array",
            Ty::String => "string",
            Ty::Integer => "integer",
            Ty::Number => "number",
            Ty::Boolean => "boolean",
            Ty::Any => "any",
        }
    }
}

/// How a list merges under server-side apply and strategic merge patch.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ListType {
    /// Replaced as a whole.
    #[default]
    Atomic,
    /// A set of scalars, merged by value.
    Set,
    /// An associative list keyed by these fields.
    Map(Vec<String>),
}

/// A compiled `pattern`.
#[derive(Debug, Clone)]
pub struct Pattern {
    pub source: String,
    pub regex: regex::Regex,
}

/// One node of a structural schema.
#[derive(Debug, Clone, Default)]
pub struct Schema {
    pub ty: Ty,
    pub properties: BTreeMap<String, Arc<Schema>>,
    /// Map values (`additionalProperties`).
    pub additional: Option<Arc<Schema>>,
    pub items: Option<Arc<Schema>>,
    pub list_type: ListType,
    /// `x-kubernetes-map-type: atomic` / `x-kubernetes-struct-type: atomic`.
    pub map_atomic: bool,
    pub required: Vec<String>,
    pub nullable: bool,
    pub default: Option<Value>,
    pub enumeration: Option<Vec<Value>>,
    pub format: Option<String>,
    pub pattern: Option<Pattern>,
    pub minimum: Option<f64>,
    pub maximum: Option<f64>,
    pub exclusive_minimum: bool,
    pub exclusive_maximum: bool,
    pub min_length: Option<u64>,
    pub max_length: Option<u64>,
    pub min_items: Option<u64>,
    pub max_items: Option<u64>,
    pub unique_items: bool,
    pub min_properties: Option<u64>,
    pub max_properties: Option<u64>,
    pub int_or_string: bool,
    pub preserve_unknown: bool,
    pub embedded_resource: bool,
    /// Value-validation alternatives (`anyOf`, `oneOf`, `allOf`, `not`), checked but never used
    /// for pruning, as in structural schemas.
    pub any_of: Vec<Arc<Schema>>,
    pub one_of: Vec<Arc<Schema>>,
    pub all_of: Vec<Arc<Schema>>,
    pub not: Option<Arc<Schema>>,
}

/// Why an `openAPIV3Schema` could not be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct SchemaError {
    pub path: String,
    pub message: String,
}

fn err(path: &str, message: impl Into<String>) -> SchemaError {
    SchemaError {
        path: path.into(),
        message: message.into(),
    }
}

impl Schema {
    /// A node that accepts anything and keeps every field.
    pub fn any() -> Self {
        Schema {
            preserve_unknown: true,
            ..Default::default()
        }
    }

    /// Whether this node keeps fields it does not declare.
    pub fn keeps_unknown_fields(&self) -> bool {
        self.preserve_unknown
            || (self.ty == Ty::Any && self.properties.is_empty() && self.additional.is_none())
    }

    /// The schema of a named child of an object node (a property, or a map value).
    pub fn child(&self, name: &str) -> Option<&Arc<Schema>> {
        self.properties.get(name).or(self.additional.as_ref())
    }

    /// True for maps and structs whose fields are tracked one by one.
    pub fn is_granular_object(&self) -> bool {
        !self.map_atomic
            && (self.ty == Ty::Object || !self.properties.is_empty() || self.additional.is_some())
    }

    /// Compiles a CRD `openAPIV3Schema` (or any node of one).
    pub fn from_openapi(v: &Value) -> Result<Schema, SchemaError> {
        compile(v, "openAPIV3Schema")
    }
}

fn get_u64(
    o: &serde_json::Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<u64>, SchemaError> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .map(Some)
            .ok_or_else(|| err(&format!("{path}.{key}"), "must be a non-negative integer")),
    }
}

fn get_f64(
    o: &serde_json::Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<f64>, SchemaError> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_f64()
            .map(Some)
            .ok_or_else(|| err(&format!("{path}.{key}"), "must be a number")),
    }
}

fn get_bool(
    o: &serde_json::Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<bool, SchemaError> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(err(&format!("{path}.{key}"), "must be a boolean")),
    }
}

fn compile_list(
    o: &serde_json::Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Vec<Arc<Schema>>, SchemaError> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(vec![]),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, s)| compile(s, &format!("{path}.{key}[{i}]")).map(Arc::new))
            .collect(),
        Some(_) => Err(err(&format!("{path}.{key}"), "must be an array of schemas")),
    }
}

fn compile(v: &Value, path: &str) -> Result<Schema, SchemaError> {
    let o = v
        .as_object()
        .ok_or_else(|| err(path, "must be an object"))?;
    let mut s = Schema {
        ty: match o.get("type").and_then(Value::as_str) {
            None => Ty::Any,
            Some("object") => Ty::Object,
            Some("array") => Ty::Array,
            Some("string") => Ty::String,
            Some("integer") => Ty::Integer,
            Some("number") => Ty::Number,
            Some("boolean") => Ty::Boolean,
            Some(other) => {
                return Err(err(
                    &format!("{path}.type"),
                    format!("unsupported type {other:?}"),
                ));
            }
        },
        ..Default::default()
    };
    if let Some(t) = o.get("type")
        && !t.is_string()
    {
        return Err(err(&format!("{path}.type"), "must be a string"));
    }
    if let Some(props) = o.get("properties") {
        let props = props
            .as_object()
            .ok_or_else(|| err(&format!("{path}.properties"), "must be an object"))?;
        for (k, child) in props {
            s.properties.insert(
                k.clone(),
                Arc::new(compile(child, &format!("{path}.properties[{k}]"))?),
            );
        }
    }
    match o.get("additionalProperties") {
        None | Some(Value::Null) | Some(Value::Bool(false)) => {}
        Some(Value::Bool(true)) => s.additional = Some(Arc::new(Schema::any())),
        Some(child) => {
            s.additional = Some(Arc::new(compile(
                child,
                &format!("{path}.additionalProperties"),
            )?))
        }
    }
    if let Some(items) = o.get("items")
        && !items.is_null()
    {
        s.items = Some(Arc::new(compile(items, &format!("{path}.items"))?));
    }
    if let Some(req) = o.get("required") {
        let req = req
            .as_array()
            .ok_or_else(|| err(&format!("{path}.required"), "must be an array"))?;
        for r in req {
            s.required.push(
                r.as_str()
                    .ok_or_else(|| err(&format!("{path}.required"), "must hold strings"))?
                    .to_string(),
            );
        }
    }
    s.nullable = get_bool(o, "nullable", path)?;
    s.default = o.get("default").cloned();
    if let Some(e) = o.get("enum") {
        s.enumeration = Some(
            e.as_array()
                .ok_or_else(|| err(&format!("{path}.enum"), "must be an array"))?
                .clone(),
        );
    }
    s.format = o.get("format").and_then(Value::as_str).map(str::to_string);
    if let Some(p) = o.get("pattern") {
        let src = p
            .as_str()
            .ok_or_else(|| err(&format!("{path}.pattern"), "must be a string"))?;
        let regex = regex::Regex::new(src).map_err(|e| {
            err(
                &format!("{path}.pattern"),
                format!("invalid regular expression: {e}"),
            )
        })?;
        s.pattern = Some(Pattern {
            source: src.to_string(),
            regex,
        });
    }
    s.minimum = get_f64(o, "minimum", path)?;
    s.maximum = get_f64(o, "maximum", path)?;
    s.exclusive_minimum = get_bool(o, "exclusiveMinimum", path)?;
    s.exclusive_maximum = get_bool(o, "exclusiveMaximum", path)?;
    s.min_length = get_u64(o, "minLength", path)?;
    s.max_length = get_u64(o, "maxLength", path)?;
    s.min_items = get_u64(o, "minItems", path)?;
    s.max_items = get_u64(o, "maxItems", path)?;
    s.unique_items = get_bool(o, "uniqueItems", path)?;
    s.min_properties = get_u64(o, "minProperties", path)?;
    s.max_properties = get_u64(o, "maxProperties", path)?;
    s.int_or_string = get_bool(o, "x-kubernetes-int-or-string", path)?;
    s.preserve_unknown = get_bool(o, "x-kubernetes-preserve-unknown-fields", path)?;
    s.embedded_resource = get_bool(o, "x-kubernetes-embedded-resource", path)?;
    s.map_atomic = matches!(
        o.get("x-kubernetes-map-type").and_then(Value::as_str),
        Some("atomic")
    );
    s.list_type = match o.get("x-kubernetes-list-type").and_then(Value::as_str) {
        None | Some("atomic") => ListType::Atomic,
        Some("set") => ListType::Set,
        Some("map") => {
            let keys = o
                .get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default();
            if keys.is_empty() {
                return Err(err(
                    &format!("{path}.x-kubernetes-list-map-keys"),
                    "must not be empty if x-kubernetes-list-type is map",
                ));
            }
            ListType::Map(keys)
        }
        Some(other) => {
            return Err(err(
                &format!("{path}.x-kubernetes-list-type"),
                format!("unsupported value {other:?}"),
            ));
        }
    };
    s.any_of = compile_list(o, "anyOf", path)?;
    s.one_of = compile_list(o, "oneOf", path)?;
    s.all_of = compile_list(o, "allOf", path)?;
    if let Some(n) = o.get("not") {
        s.not = Some(Arc::new(compile(n, &format!("{path}.not"))?));
    }
    if s.ty == Ty::Array && s.items.is_none() {
        return Err(err(
            &format!("{path}.items"),
            "must be specified for arrays",
        ));
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn compiles_types_lists_and_constraints() {
        let s = Schema::from_openapi(&json!({
            "type": "object",
            "required": ["spec"],
            "properties": {
                "spec": {"type": "object", "properties": {
                    "addresses": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                    "mode": {"type": "string", "enum": ["A", "B"], "default": "A"},
                    "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                    "name": {"type": "string", "pattern": "^[a-z]+$"},
                    "conds": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"],
                              "items": {"type": "object", "properties": {"type": {"type": "string"}}}},
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                    "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                    "ios": {"x-kubernetes-int-or-string": true}
                }}
            }
        }))
        .unwrap();
        let spec = &s.properties["spec"];
        assert_eq!(s.required, ["spec"]);
        assert_eq!(spec.properties["addresses"].min_items, Some(1));
        assert_eq!(spec.properties["mode"].default, Some(json!("A")));
        assert_eq!(
            spec.properties["conds"].list_type,
            ListType::Map(vec!["type".into()])
        );
        assert!(spec.properties["labels"].additional.is_some());
        assert!(spec.properties["free"].keeps_unknown_fields());
        assert!(spec.properties["ios"].int_or_string);
        assert!(
            spec.properties["name"]
                .pattern
                .as_ref()
                .unwrap()
                .regex
                .is_match("abc")
        );
    }

    #[test]
    fn malformed_schemas_are_errors() {
        for bad in [
            json!("string"),
            json!({"type": "wat"}),
            json!({"type": 5}),
            json!({"type": "array"}),
            json!({"type": "string", "pattern": "("}),
            json!({"type": "array", "items": {}, "x-kubernetes-list-type": "map"}),
            json!({"type": "object", "properties": []}),
            json!({"type": "integer", "minimum": "x"}),
            json!({"type": "object", "required": "spec"}),
        ] {
            assert!(Schema::from_openapi(&bad).is_err(), "{bad}");
        }
    }
}
