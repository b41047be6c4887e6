//! Kubernetes label selectors, validated once and then matched without allocation.
//!
//! The CRDs carry `metav1.LabelSelector` values (`serviceAllocation.namespaceSelectors`,
//! `L2Advertisement.nodeSelectors`, ...). They are compiled into a [`Selector`] when the object
//! is read, so a malformed selector is reported once, by name, instead of silently matching
//! nothing at every decision.
//!
//! Semantics follow the API server: every `matchLabels` pair and every `matchExpressions`
//! requirement must hold; an empty selector matches everything.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

/// One compiled requirement of a selector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Requirement {
    In(String, BTreeSet<String>),
    NotIn(String, BTreeSet<String>),
    Exists(String),
    DoesNotExist(String),
}

impl Requirement {
    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        match self {
            Requirement::In(key, values) => labels.get(key).is_some_and(|v| values.contains(v)),
            // As in the API server, a missing key satisfies NotIn.
            Requirement::NotIn(key, values) => labels.get(key).is_none_or(|v| !values.contains(v)),
            Requirement::Exists(key) => labels.contains_key(key),
            Requirement::DoesNotExist(key) => !labels.contains_key(key),
        }
    }
}

/// A validated label selector.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selector {
    requirements: Vec<Requirement>,
}

/// Why a label selector was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    #[error(
        "unknown selector operator {operator:?} for key {key:?}; use In, NotIn, Exists or DoesNotExist"
    )]
    UnknownOperator { key: String, operator: String },
    #[error("selector operator {operator} for key {key:?} needs at least one value")]
    MissingValues { key: String, operator: String },
    #[error("selector operator {operator} for key {key:?} takes no values")]
    UnexpectedValues { key: String, operator: String },
    #[error("selector key {key:?} is empty")]
    EmptyKey { key: String },
}

impl Selector {
    /// A selector that matches every label set.
    pub fn everything() -> Self {
        Selector::default()
    }

    /// Compiles a `metav1.LabelSelector`.
    pub fn from_label_selector(selector: &LabelSelector) -> Result<Self, SelectorError> {
        let mut requirements = Vec::new();
        for (key, value) in selector.match_labels.iter().flatten() {
            check_key(key)?;
            requirements.push(Requirement::In(
                key.clone(),
                BTreeSet::from([value.clone()]),
            ));
        }
        for expr in selector.match_expressions.iter().flatten() {
            requirements.push(compile_expression(expr)?);
        }
        Ok(Selector { requirements })
    }

    /// True when every requirement holds for `labels`.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    /// True for the selector that matches everything.
    pub fn is_everything(&self) -> bool {
        self.requirements.is_empty()
    }

    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }
}

/// Compiles a list of selectors; the list matches when any one of them matches.
///
/// This is how MetalLB reads `namespaceSelectors`, `serviceSelectors` and `nodeSelectors`.
pub fn compile_any_of(selectors: &[LabelSelector]) -> Result<Vec<Selector>, SelectorError> {
    selectors
        .iter()
        .map(Selector::from_label_selector)
        .collect()
}

/// True when `selectors` is empty or any of them matches `labels`.
pub fn any_matches(selectors: &[Selector], labels: &BTreeMap<String, String>) -> bool {
    selectors.is_empty() || selectors.iter().any(|s| s.matches(labels))
}

fn check_key(key: &str) -> Result<(), SelectorError> {
    if key.is_empty() {
        return Err(SelectorError::EmptyKey {
            key: key.to_string(),
        });
    }
    Ok(())
}

fn compile_expression(expr: &LabelSelectorRequirement) -> Result<Requirement, SelectorError> {
    check_key(&expr.key)?;
    let key = expr.key.clone();
    let values: BTreeSet<String> = expr.values.iter().flatten().cloned().collect();
    let operator = expr.operator.as_str();
    let needs_values = |values: BTreeSet<String>| {
        if values.is_empty() {
            Err(SelectorError::MissingValues {
                key: key.clone(),
                operator: operator.to_string(),
            })
        } else {
            Ok(values)
        }
    };
    let no_values = || {
        if values.is_empty() {
            Ok(())
        } else {
            Err(SelectorError::UnexpectedValues {
                key: key.clone(),
                operator: operator.to_string(),
            })
        }
    };
    match operator {
        "In" => Ok(Requirement::In(key.clone(), needs_values(values.clone())?)),
        "NotIn" => Ok(Requirement::NotIn(
            key.clone(),
            needs_values(values.clone())?,
        )),
        "Exists" => no_values().map(|()| Requirement::Exists(key.clone())),
        "DoesNotExist" => no_values().map(|()| Requirement::DoesNotExist(key.clone())),
        other => Err(SelectorError::UnknownOperator {
            key: key.clone(),
            operator: other.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn expr(key: &str, op: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: if values.is_empty() {
                None
            } else {
                Some(values.iter().map(|v| v.to_string()).collect())
            },
        }
    }

    fn selector(match_labels: &[(&str, &str)], exprs: Vec<LabelSelectorRequirement>) -> Selector {
        Selector::from_label_selector(&LabelSelector {
            match_labels: Some(labels(match_labels)),
            match_expressions: Some(exprs),
        })
        .unwrap()
    }

    #[test]
    fn empty_selector_matches_everything() {
        let s = Selector::from_label_selector(&LabelSelector::default()).unwrap();
        assert!(s.is_everything());
        assert!(s.matches(&labels(&[])));
        assert!(s.matches(&labels(&[("a", "b")])));
    }

    #[test]
    fn match_labels_need_every_pair() {
        let s = selector(&[("team", "web"), ("env", "prod")], vec![]);
        assert!(s.matches(&labels(&[("team", "web"), ("env", "prod"), ("x", "y")])));
        assert!(!s.matches(&labels(&[("team", "web")])));
        assert!(!s.matches(&labels(&[("team", "web"), ("env", "dev")])));
    }

    #[test]
    fn operators() {
        let l = labels(&[("tier", "front"), ("zone", "a")]);
        assert!(selector(&[], vec![expr("tier", "In", &["front", "back"])]).matches(&l));
        assert!(!selector(&[], vec![expr("tier", "In", &["back"])]).matches(&l));
        assert!(selector(&[], vec![expr("tier", "NotIn", &["back"])]).matches(&l));
        assert!(!selector(&[], vec![expr("tier", "NotIn", &["front"])]).matches(&l));
        assert!(selector(&[], vec![expr("missing", "NotIn", &["x"])]).matches(&l));
        assert!(selector(&[], vec![expr("zone", "Exists", &[])]).matches(&l));
        assert!(!selector(&[], vec![expr("missing", "Exists", &[])]).matches(&l));
        assert!(selector(&[], vec![expr("missing", "DoesNotExist", &[])]).matches(&l));
        assert!(!selector(&[], vec![expr("zone", "DoesNotExist", &[])]).matches(&l));
    }

    #[test]
    fn malformed_selectors_are_rejected_by_name() {
        let compile = |e: LabelSelectorRequirement| {
            Selector::from_label_selector(&LabelSelector {
                match_labels: None,
                match_expressions: Some(vec![e]),
            })
        };
        assert_eq!(
            compile(expr("a", "Equals", &["x"])),
            Err(SelectorError::UnknownOperator {
                key: "a".into(),
                operator: "Equals".into()
            })
        );
        assert_eq!(
            compile(expr("a", "In", &[])),
            Err(SelectorError::MissingValues {
                key: "a".into(),
                operator: "In".into()
            })
        );
        assert_eq!(
            compile(expr("a", "Exists", &["x"])),
            Err(SelectorError::UnexpectedValues {
                key: "a".into(),
                operator: "Exists".into()
            })
        );
        assert_eq!(
            compile(expr("", "Exists", &[])),
            Err(SelectorError::EmptyKey { key: "".into() })
        );
        let err = compile(expr("a", "Equals", &["x"])).unwrap_err();
        assert!(
            err.to_string()
                .contains("use In, NotIn, Exists or DoesNotExist")
        );
    }

    #[test]
    fn any_of_lists() {
        let web = selector(&[("team", "web")], vec![]);
        let db = selector(&[("team", "db")], vec![]);
        assert!(any_matches(&[], &labels(&[])));
        assert!(any_matches(
            &[web.clone(), db.clone()],
            &labels(&[("team", "db")])
        ));
        assert!(!any_matches(&[web, db], &labels(&[("team", "ops")])));
    }
}
