//! Compiling a field that holds a list of label selectors (`serviceAllocation.namespaceSelectors`,
//! `nodeSelectors`, ...), with every problem named by its path in the object.
//!
//! [`crate::selector`] owns the matching semantics; this module adds what a field needs on top:
//! label keys and values are checked too (a selector on an impossible key would silently match
//! nothing), and all problems are collected instead of stopping at the first.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::names::{NameError, check_label_key, check_label_value};
use crate::selector::{Selector, SelectorError};

/// What is wrong with one selector.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SelectorProblem {
    #[error(transparent)]
    Selector(#[from] SelectorError),
    #[error(transparent)]
    Label(#[from] NameError),
}

/// A problem in one selector of a selector-list field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {problem}")]
pub struct SelectorFieldError {
    /// Path of the selector in the object, as `spec.nodeSelectors[1]`.
    pub path: String,
    pub problem: SelectorProblem,
}

/// Compiles every selector of the field at `path`. Selectors with problems are left out of the
/// result and reported in `errors`, one entry per problem.
pub fn compile_selector_field(
    path: &str,
    selectors: &[LabelSelector],
    errors: &mut Vec<SelectorFieldError>,
) -> Vec<Selector> {
    let mut compiled = Vec::with_capacity(selectors.len());
    for (index, selector) in selectors.iter().enumerate() {
        let item_path = format!("{path}[{index}]");
        let before = errors.len();
        for problem in label_problems(selector) {
            errors.push(SelectorFieldError {
                path: item_path.clone(),
                problem: problem.into(),
            });
        }
        match Selector::from_label_selector(selector) {
            Ok(selector) if errors.len() == before => compiled.push(selector),
            Ok(_) => {}
            Err(err) => errors.push(SelectorFieldError {
                path: item_path,
                problem: err.into(),
            }),
        }
    }
    compiled
}

/// Every invalid label key or value in a selector. Empty keys are left to
/// [`Selector::from_label_selector`], which reports them itself.
fn label_problems(selector: &LabelSelector) -> Vec<NameError> {
    let mut problems = Vec::new();
    for (key, value) in selector.match_labels.iter().flatten() {
        if !key.is_empty() {
            problems.extend(check_label_key(key).err());
        }
        problems.extend(check_label_value(value).err());
    }
    for expr in selector.match_expressions.iter().flatten() {
        if !expr.key.is_empty() {
            problems.extend(check_label_key(&expr.key).err());
        }
        for value in expr.values.iter().flatten() {
            problems.extend(check_label_value(value).err());
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;
    use std::collections::BTreeMap;

    fn match_labels(pairs: &[(&str, &str)]) -> LabelSelector {
        LabelSelector {
            match_labels: Some(
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            match_expressions: None,
        }
    }

    fn expression(key: &str, operator: &str, values: &[&str]) -> LabelSelector {
        LabelSelector {
            match_labels: None,
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: key.into(),
                operator: operator.into(),
                values: Some(values.iter().map(|v| v.to_string()).collect()),
            }]),
        }
    }

    #[test]
    fn valid_selectors_compile_in_order() {
        let mut errors = Vec::new();
        let compiled = compile_selector_field(
            "spec.nodeSelectors",
            &[
                match_labels(&[("zone", "a")]),
                expression("ironlb.io/role", "In", &["edge"]),
            ],
            &mut errors,
        );
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(compiled.len(), 2);
        let zone_a: BTreeMap<String, String> = [("zone".to_string(), "a".to_string())].into();
        assert!(compiled[0].matches(&zone_a));
        assert!(!compiled[1].matches(&zone_a));
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let mut errors = Vec::new();
        let compiled = compile_selector_field(
            "spec.nodeSelectors",
            &[
                match_labels(&[("zone", "a")]),
                match_labels(&[("bad key", "a"), ("ok", "-bad-value")]),
                expression("tier", "Equals", &["x"]),
                expression("tier", "In", &["not valid"]),
            ],
            &mut errors,
        );
        assert_eq!(compiled.len(), 1, "only the valid selector is kept");
        let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(messages.len(), 4, "{messages:#?}");
        assert!(messages[0].starts_with("spec.nodeSelectors[1]: label key \"bad key\""));
        assert!(messages[1].starts_with("spec.nodeSelectors[1]: label value \"-bad-value\""));
        assert!(messages[2].starts_with("spec.nodeSelectors[2]: unknown selector operator"));
        assert!(messages[3].starts_with("spec.nodeSelectors[3]: label value \"not valid\""));
    }

    #[test]
    fn empty_key_is_reported_once() {
        let mut errors = Vec::new();
        compile_selector_field("s", &[expression("", "Exists", &[])], &mut errors);
        assert_eq!(
            errors,
            vec![SelectorFieldError {
                path: "s[0]".into(),
                problem: SelectorError::EmptyKey { key: "".into() }.into(),
            }]
        );
    }
}
