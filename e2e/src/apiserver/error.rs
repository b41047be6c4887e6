//! API errors as the Kubernetes API server reports them: a typed error that renders into a
//! `meta/v1 Status` object with the same `code`, `reason`, `message` and `details` shape.

use serde_json::{Value, json};

/// Identifies the object an error is about, for `Status.details`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subject {
    /// The API group ("" for core).
    pub group: String,
    /// The plural resource name (`services`), or the kind for `Invalid` errors.
    pub resource: String,
    /// The object's name, when known.
    pub name: String,
}

impl Subject {
    pub fn new(group: &str, resource: &str, name: &str) -> Self {
        Self {
            group: group.into(),
            resource: resource.into(),
            name: name.into(),
        }
    }

    /// `services` or `ipaddresspools.ironlb.io`, as the server qualifies resources in messages.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.resource.clone()
        } else {
            format!("{}.{}", self.resource, self.group)
        }
    }
}

/// The kinds of field error the API server's validation reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldErrorKind {
    Required,
    Invalid,
    NotSupported,
    Forbidden,
    Duplicate,
    TooLong,
    TooMany,
}

impl FieldErrorKind {
    fn cause_reason(self) -> &'static str {
        match self {
            Self::Required => "FieldValueRequired",
            Self::Invalid => "FieldValueInvalid",
            Self::NotSupported => "FieldValueNotSupported",
            Self::Forbidden => "FieldValueForbidden",
            Self::Duplicate => "FieldValueDuplicate",
            Self::TooLong => "FieldValueTooLong",
            Self::TooMany => "FieldValueTooMany",
        }
    }
}

/// One validation failure on one field path (`spec.ports[0].port`).
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    pub kind: FieldErrorKind,
    pub field: String,
    pub value: Option<Value>,
    pub detail: String,
}

impl FieldError {
    pub fn required(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            kind: FieldErrorKind::Required,
            field: field.into(),
            value: None,
            detail: detail.into(),
        }
    }
    pub fn invalid(field: impl Into<String>, value: Value, detail: impl Into<String>) -> Self {
        Self {
            kind: FieldErrorKind::Invalid,
            field: field.into(),
            value: Some(value),
            detail: detail.into(),
        }
    }
    pub fn forbidden(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            kind: FieldErrorKind::Forbidden,
            field: field.into(),
            value: None,
            detail: detail.into(),
        }
    }
    pub fn duplicate(field: impl Into<String>, value: Value) -> Self {
        Self {
            kind: FieldErrorKind::Duplicate,
            field: field.into(),
            value: Some(value),
            detail: String::new(),
        }
    }
    pub fn not_supported(field: impl Into<String>, value: Value, supported: &[&str]) -> Self {
        let detail = format!(
            "supported values: {}",
            supported
                .iter()
                .map(|s| format!("\"{s}\""))
                .collect::<Vec<_>>()
                .join(", ")
        );
        Self {
            kind: FieldErrorKind::NotSupported,
            field: field.into(),
            value: Some(value),
            detail,
        }
    }
    pub fn too_long(field: impl Into<String>, value: Value, max: usize) -> Self {
        Self {
            kind: FieldErrorKind::TooLong,
            field: field.into(),
            value: Some(value),
            detail: format!("may not be more than {max} bytes"),
        }
    }
    pub fn too_many(field: impl Into<String>, count: usize, max: usize) -> Self {
        Self {
            kind: FieldErrorKind::TooMany,
            field: field.into(),
            value: Some(Value::from(count)),
            detail: format!("must have at most {max} items"),
        }
    }

    /// The message without the field path, as in `Status.details.causes[].message`.
    pub fn body(&self) -> String {
        let value = self.value.as_ref().map(render_value);
        let head = match self.kind {
            FieldErrorKind::Required => "Required value".to_string(),
            FieldErrorKind::Invalid => format!("Invalid value: {}", value.unwrap_or_default()),
            FieldErrorKind::NotSupported => {
                format!("Unsupported value: {}", value.unwrap_or_default())
            }
            FieldErrorKind::Forbidden => "Forbidden".to_string(),
            FieldErrorKind::Duplicate => format!("Duplicate value: {}", value.unwrap_or_default()),
            FieldErrorKind::TooLong => "Too long".to_string(),
            FieldErrorKind::TooMany => format!("Too many: {}", value.unwrap_or_default()),
        };
        if self.detail.is_empty() {
            head
        } else {
            format!("{head}: {}", self.detail)
        }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}", self.body())
        } else {
            write!(f, "{}: {}", self.field, self.body())
        }
    }
}

fn render_value(v: &Value) -> String {
    match v {
        Value::String(s) => format!("\"{s}\""),
        Value::Null => "null".into(),
        other => other.to_string(),
    }
}

/// An error answered to a client, rendered as a `Status`.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    #[error("{} \"{}\" not found", .0.qualified(), .0.name)]
    NotFound(Subject),
    #[error("{} \"{}\" already exists", .0.qualified(), .0.name)]
    AlreadyExists(Subject),
    /// An optimistic-concurrency or precondition failure.
    #[error("Operation cannot be fulfilled on {} \"{}\": {detail}", .subject.qualified(), .subject.name)]
    Conflict { subject: Subject, detail: String },
    /// Server-side apply found fields owned by other managers.
    #[error("{message}")]
    ApplyConflict {
        subject: Subject,
        message: String,
        causes: Vec<(String, String)>,
    },
    /// Validation failed; `kind` is the object's kind (`Service`).
    #[error("{}", invalid_message(.kind, .subject, .errors))]
    Invalid {
        kind: String,
        subject: Subject,
        errors: Vec<FieldError>,
    },
    #[error("{0}")]
    BadRequest(String),
    #[error("{message}")]
    Forbidden { subject: Subject, message: String },
    #[error("the server does not allow this method on the requested resource")]
    MethodNotAllowed,
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    NotAcceptable(String),
    /// The requested resourceVersion is older than the retained history.
    #[error("{0}")]
    Gone(String),
    #[error("the server could not find the requested resource")]
    NoRoute,
    #[error("{0}")]
    Internal(String),
    #[error("{0}")]
    TooLarge(String),
}

fn invalid_message(kind: &str, subject: &Subject, errors: &[FieldError]) -> String {
    let rendered: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    let list = if rendered.len() == 1 {
        rendered[0].clone()
    } else {
        format!("[{}]", rendered.join(", "))
    };
    format!("{kind} \"{}\" is invalid: {list}", subject.name)
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn code(&self) -> u16 {
        match self {
            Self::NotFound(_) | Self::NoRoute => 404,
            Self::AlreadyExists(_) | Self::Conflict { .. } | Self::ApplyConflict { .. } => 409,
            Self::Invalid { .. } => 422,
            Self::BadRequest(_) => 400,
            Self::Forbidden { .. } => 403,
            Self::MethodNotAllowed => 405,
            Self::UnsupportedMediaType(_) => 415,
            Self::NotAcceptable(_) => 406,
            Self::Gone(_) => 410,
            Self::Internal(_) => 500,
            Self::TooLarge(_) => 413,
        }
    }

    pub fn reason(&self) -> &'static str {
        match self {
            Self::NotFound(_) | Self::NoRoute => "NotFound",
            Self::AlreadyExists(_) => "AlreadyExists",
            Self::Conflict { .. } | Self::ApplyConflict { .. } => "Conflict",
            Self::Invalid { .. } => "Invalid",
            Self::BadRequest(_) => "BadRequest",
            Self::Forbidden { .. } => "Forbidden",
            Self::MethodNotAllowed => "MethodNotAllowed",
            Self::UnsupportedMediaType(_) => "UnsupportedMediaType",
            Self::NotAcceptable(_) => "NotAcceptable",
            Self::Gone(_) => "Expired",
            Self::Internal(_) => "InternalError",
            Self::TooLarge(_) => "RequestEntityTooLarge",
        }
    }

    /// Shorthand for an `Invalid` error with one field error.
    pub fn invalid(kind: &str, subject: Subject, error: FieldError) -> Self {
        Self::Invalid {
            kind: kind.into(),
            subject,
            errors: vec![error],
        }
    }

    /// The standard "object has been modified" conflict.
    pub fn modified(subject: Subject) -> Self {
        Self::Conflict {
            subject,
            detail: "the object has been modified; please apply your changes to the latest version and try again"
                .into(),
        }
    }

    /// The `Status` object the server answers with.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.to_string(),
            "reason": self.reason(),
            "code": self.code(),
        });
        let details = match self {
            Self::NotFound(s)
            | Self::AlreadyExists(s)
            | Self::Conflict { subject: s, .. }
            | Self::Forbidden { subject: s, .. } => Some(subject_details(s, &s.resource)),
            Self::ApplyConflict {
                subject, causes, ..
            } => {
                let mut d = subject_details(subject, &subject.resource);
                d["causes"] = causes
                    .iter()
                    .map(|(message, field)| json!({"reason": "FieldManagerConflict", "message": message, "field": field}))
                    .collect();
                Some(d)
            }
            Self::Invalid {
                kind,
                subject,
                errors,
            } => {
                let mut d = subject_details(subject, kind);
                d["causes"] = errors
                    .iter()
                    .map(|e| json!({"reason": e.kind.cause_reason(), "message": e.body(), "field": e.field}))
                    .collect();
                Some(d)
            }
            _ => None,
        };
        if let Some(d) = details {
            status["details"] = d;
        }
        if matches!(self, Self::NoRoute) {
            status["details"] = json!({"causes": [{"reason": "UnexpectedServerResponse", "message": "404 page not found"}]});
        }
        status
    }
}

fn subject_details(s: &Subject, kind: &str) -> Value {
    let mut d = serde_json::Map::new();
    if !s.name.is_empty() {
        d.insert("name".into(), s.name.clone().into());
    }
    if !s.group.is_empty() {
        d.insert("group".into(), s.group.clone().into());
    }
    d.insert("kind".into(), kind.into());
    Value::Object(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_renders_like_the_api_server() {
        let e = ApiError::NotFound(Subject::new("", "services", "web"));
        let s = e.to_status();
        assert_eq!(s["code"], 404);
        assert_eq!(s["reason"], "NotFound");
        assert_eq!(s["message"], "services \"web\" not found");
        assert_eq!(s["details"]["kind"], "services");
        assert_eq!(s["details"]["name"], "web");
        assert!(s["details"].get("group").is_none());
    }

    #[test]
    fn grouped_resources_are_qualified() {
        let e = ApiError::AlreadyExists(Subject::new("ironlb.io", "ipaddresspools", "p"));
        assert_eq!(
            e.to_string(),
            "ipaddresspools.ironlb.io \"p\" already exists"
        );
        assert_eq!(e.to_status()["details"]["group"], "ironlb.io");
    }

    #[test]
    fn invalid_lists_every_cause() {
        let e = ApiError::Invalid {
            kind: "Service".into(),
            subject: Subject::new("", "services", "web"),
            errors: vec![
                FieldError::invalid(
                    "spec.ports[0].port",
                    json!(0),
                    "must be between 1 and 65535, inclusive",
                ),
                FieldError::required("spec.ports", ""),
            ],
        };
        assert_eq!(
            e.to_string(),
            "Service \"web\" is invalid: [spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive, spec.ports: Required value]"
        );
        let s = e.to_status();
        assert_eq!(s["code"], 422);
        assert_eq!(s["details"]["kind"], "Service");
        assert_eq!(s["details"]["causes"][0]["reason"], "FieldValueInvalid");
        assert_eq!(s["details"]["causes"][1]["field"], "spec.ports");
    }

    #[test]
    fn not_supported_names_the_choices() {
        let e = FieldError::not_supported("spec.type", json!("Foo"), &["ClusterIP", "NodePort"]);
        assert_eq!(
            e.to_string(),
            "spec.type: Unsupported value: \"Foo\": supported values: \"ClusterIP\", \"NodePort\""
        );
    }

    #[test]
    fn conflict_message_matches_client_expectations() {
        let e = ApiError::modified(Subject::new("coordination.k8s.io", "leases", "l"));
        assert_eq!(e.code(), 409);
        assert!(e.to_string().starts_with("Operation cannot be fulfilled on leases.coordination.k8s.io \"l\": the object has been modified"));
    }
}
