//! The PATCH body formats: JSON merge patch (RFC 7386), JSON patch (RFC 6902) and strategic
//! merge patch. Server-side apply lives in `fieldmanager::apply`.

pub mod strategic;

use serde_json::Value;

use super::schema::Schema;

/// A PATCH content type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    Merge,
    Json,
    Strategic,
    Apply,
}

impl PatchType {
    pub fn from_content_type(ct: Option<&str>) -> Option<PatchType> {
        let media = ct?.split(';').next()?.trim();
        match media {
            "application/merge-patch+json" => Some(PatchType::Merge),
            "application/json-patch+json" => Some(PatchType::Json),
            "application/strategic-merge-patch+json" => Some(PatchType::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+json" => {
                Some(PatchType::Apply)
            }
            _ => None,
        }
    }
}

/// Why a patch could not be applied. `BadRequest` for undecodable patches, `Invalid` for
/// patches that decode but cannot apply to this object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Invalid(String),
}

/// Applies a merge, JSON or strategic patch to `original`.
pub fn apply_patch(
    kind: PatchType,
    original: &Value,
    body: &[u8],
    schema: Option<&Schema>,
) -> Result<Value, PatchError> {
    match kind {
        PatchType::Merge => {
            let patch: Value = serde_json::from_slice(body)
                .map_err(|e| PatchError::BadRequest(format!("error decoding patch: {e}")))?;
            if !patch.is_object() {
                return Err(PatchError::BadRequest(
                    "error decoding patch: a merge patch must be a JSON object".into(),
                ));
            }
            let mut out = original.clone();
            json_patch::merge(&mut out, &patch);
            Ok(out)
        }
        PatchType::Json => {
            let patch: json_patch::Patch = serde_json::from_slice(body)
                .map_err(|e| PatchError::BadRequest(format!("error decoding patch: {e}")))?;
            let mut out = original.clone();
            json_patch::patch(&mut out, &patch.0)
                .map_err(|e| PatchError::Invalid(e.to_string()))?;
            Ok(out)
        }
        PatchType::Strategic => {
            let patch: Value = serde_json::from_slice(body)
                .map_err(|e| PatchError::BadRequest(format!("error decoding patch: {e}")))?;
            strategic::apply(original, &patch, schema)
        }
        PatchType::Apply => Err(PatchError::BadRequest(
            "apply patches are handled by server-side apply".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn content_types() {
        assert_eq!(
            PatchType::from_content_type(Some("application/merge-patch+json")),
            Some(PatchType::Merge)
        );
        assert_eq!(
            PatchType::from_content_type(Some("application/apply-patch+yaml; charset=utf-8")),
            Some(PatchType::Apply)
        );
        assert_eq!(PatchType::from_content_type(Some("application/json")), None);
        assert_eq!(PatchType::from_content_type(None), None);
    }

    #[test]
    fn merge_patch_sets_and_removes() {
        let orig = json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"x": [1, 2]}});
        let out = apply_patch(
            PatchType::Merge,
            &orig,
            br#"{"metadata":{"labels":{"a":null,"c":"3"}},"spec":{"x":[3]}}"#,
            None,
        )
        .unwrap();
        assert_eq!(
            out,
            json!({"metadata": {"labels": {"b": "2", "c": "3"}}, "spec": {"x": [3]}})
        );
    }

    #[test]
    fn json_patch_ops_and_failures() {
        let orig = json!({"spec": {"ports": [{"port": 80}]}});
        let out = apply_patch(PatchType::Json, &orig, br#"[{"op":"replace","path":"/spec/ports/0/port","value":81},{"op":"add","path":"/spec/type","value":"NodePort"}]"#, None).unwrap();
        assert_eq!(
            out,
            json!({"spec": {"ports": [{"port": 81}], "type": "NodePort"}})
        );
        assert!(matches!(
            apply_patch(
                PatchType::Json,
                &orig,
                br#"[{"op":"remove","path":"/spec/nope"}]"#,
                None
            ),
            Err(PatchError::Invalid(_))
        ));
        assert!(matches!(
            apply_patch(
                PatchType::Json,
                &orig,
                br#"[{"op":"test","path":"/spec/ports/0/port","value":1}]"#,
                None
            ),
            Err(PatchError::Invalid(_))
        ));
        assert!(matches!(
            apply_patch(PatchType::Json, &orig, br#"{"op":"add"}"#, None),
            Err(PatchError::BadRequest(_))
        ));
        assert!(matches!(
            apply_patch(
                PatchType::Json,
                &orig,
                br#"[{"op":"frobnicate","path":"/a"}]"#,
                None
            ),
            Err(PatchError::BadRequest(_))
        ));
    }

    #[test]
    fn malformed_merge_patches_are_bad_requests() {
        let orig = json!({});
        for bad in [&b"not json"[..], b"[1,2]", b"\"x\"", b""] {
            assert!(
                matches!(
                    apply_patch(PatchType::Merge, &orig, bad, None),
                    Err(PatchError::BadRequest(_))
                ),
                "{bad:?}"
            );
        }
    }
}
