//! The `labelSelector` and `fieldSelector` query parameters: their string syntax, validation
//! and matching against JSON objects.
//!
//! Label selectors support `=`, `==`, `!=`, `in`, `notin`, `key`, `!key`, `>` and `<`, as the
//! API server does. Field selectors support `=`, `==` and `!=` with `\`-escapes; which fields may
//! be used is decided by the resource (see `registry`).

use serde_json::Value;

use super::names::{check_label_value, check_qualified_name};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SelectorError {
    #[error("unable to parse requirement: {0}")]
    Label(String),
    #[error("invalid selector: '{0}'; can't understand '{1}'")]
    Field(String, String),
}

#[derive(Debug, Clone, PartialEq)]
enum LabelOp {
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    DoesNotExist,
    Gt(i64),
    Lt(i64),
}

#[derive(Debug, Clone, PartialEq)]
struct LabelRequirement {
    key: String,
    op: LabelOp,
}

/// A parsed `labelSelector`; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelSelector {
    requirements: Vec<LabelRequirement>,
}

impl LabelSelector {
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let mut requirements = Vec::new();
        for part in split_top_level(s) {
            let part = part.trim();
            if part.is_empty() {
                if s.trim().is_empty() {
                    continue;
                }
                return Err(SelectorError::Label(
                    "found '', expected: identifier".into(),
                ));
            }
            requirements.push(parse_label_requirement(part)?);
        }
        Ok(Self { requirements })
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Matches against an object's `metadata.labels` (a JSON object or absent).
    pub fn matches(&self, labels: Option<&Value>) -> bool {
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.requirements.iter().all(|r| match &r.op {
            LabelOp::In(vals) => get(&r.key).is_some_and(|v| vals.iter().any(|x| x == v)),
            LabelOp::NotIn(vals) => get(&r.key).is_none_or(|v| !vals.iter().any(|x| x == v)),
            LabelOp::Exists => get(&r.key).is_some(),
            LabelOp::DoesNotExist => get(&r.key).is_none(),
            LabelOp::Gt(n) => get(&r.key)
                .and_then(|v| v.parse::<i64>().ok())
                .is_some_and(|v| v > *n),
            LabelOp::Lt(n) => get(&r.key)
                .and_then(|v| v.parse::<i64>().ok())
                .is_some_and(|v| v < *n),
        })
    }
}

/// Splits on commas that are not inside parentheses.
fn split_top_level(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

fn check_key(key: &str) -> Result<(), SelectorError> {
    match check_qualified_name(key) {
        Some(msg) => Err(SelectorError::Label(format!("{key:?}: {msg}"))),
        None => Ok(()),
    }
}

fn check_value(v: &str) -> Result<(), SelectorError> {
    match check_label_value(v) {
        Some(msg) => Err(SelectorError::Label(format!("{v:?}: {msg}"))),
        None => Ok(()),
    }
}

fn parse_label_requirement(part: &str) -> Result<LabelRequirement, SelectorError> {
    if let Some(key) = part.strip_prefix('!') {
        let key = key.trim();
        check_key(key)?;
        return Ok(LabelRequirement {
            key: key.into(),
            op: LabelOp::DoesNotExist,
        });
    }
    // Set-based forms: `key in (a,b)`, `key notin (a,b)`.
    for (word, is_in) in [(" in ", true), (" notin ", false)] {
        if let Some(idx) = part.find(word) {
            let key = part[..idx].trim();
            let rest = part[idx + word.len()..].trim();
            check_key(key)?;
            let inner = rest
                .strip_prefix('(')
                .and_then(|r| r.strip_suffix(')'))
                .ok_or_else(|| {
                    SelectorError::Label(format!("found '{rest}', expected: '('...')'"))
                })?;
            let values: Vec<String> = inner.split(',').map(|v| v.trim().to_string()).collect();
            for v in &values {
                check_value(v)?;
            }
            if values.len() == 1 && values[0].is_empty() && !inner.trim().is_empty() {
                return Err(SelectorError::Label(
                    "for 'in', 'notin' operators, values set can't be empty".into(),
                ));
            }
            let op = if is_in {
                LabelOp::In(values)
            } else {
                LabelOp::NotIn(values)
            };
            return Ok(LabelRequirement {
                key: key.into(),
                op,
            });
        }
    }
    for (sym, kind) in [("!=", 0), ("==", 1), ("=", 1), (">", 2), ("<", 3)] {
        if let Some(idx) = part.find(sym) {
            let key = part[..idx].trim();
            let value = part[idx + sym.len()..].trim();
            check_key(key)?;
            let op = match kind {
                0 => {
                    check_value(value)?;
                    LabelOp::NotIn(vec![value.into()])
                }
                1 => {
                    check_value(value)?;
                    LabelOp::In(vec![value.into()])
                }
                _ => {
                    let n: i64 = value.parse().map_err(|_| {
                        SelectorError::Label(format!(
                            "for 'Gt', 'Lt' operators, the value must be an integer, got {value:?}"
                        ))
                    })?;
                    if kind == 2 {
                        LabelOp::Gt(n)
                    } else {
                        LabelOp::Lt(n)
                    }
                }
            };
            return Ok(LabelRequirement {
                key: key.into(),
                op,
            });
        }
    }
    if part.contains(' ') || part.contains('(') || part.contains(')') {
        return Err(SelectorError::Label(format!(
            "found '{part}', expected: in, notin, =, ==, !=, gt, lt"
        )));
    }
    check_key(part)?;
    Ok(LabelRequirement {
        key: part.into(),
        op: LabelOp::Exists,
    })
}

/// One `field=value` or `field!=value` term.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldTerm {
    pub field: String,
    pub value: String,
    pub negated: bool,
}

/// A parsed `fieldSelector`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    pub terms: Vec<FieldTerm>,
}

impl FieldSelector {
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let mut terms = Vec::new();
        if s.trim().is_empty() {
            return Ok(Self { terms });
        }
        for raw in split_unescaped(s, ',') {
            let (field, value, negated) = split_field_term(&raw)
                .ok_or_else(|| SelectorError::Field(s.into(), raw.clone()))?;
            terms.push(FieldTerm {
                field: unescape(field.trim()),
                value: unescape(&value),
                negated,
            });
        }
        Ok(Self { terms })
    }

    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// True when every term holds; `lookup` yields the object's value for a field label.
    pub fn matches(&self, lookup: impl Fn(&str) -> Option<String>) -> bool {
        self.terms.iter().all(|t| {
            let v = lookup(&t.field).unwrap_or_default();
            (v == t.value) != t.negated
        })
    }

    /// The value a `metadata.name=...` term pins, for a fast path on single-object watches.
    pub fn pinned(&self, field: &str) -> Option<&str> {
        self.terms
            .iter()
            .find(|t| t.field == field && !t.negated)
            .map(|t| t.value.as_str())
    }
}

fn split_unescaped(s: &str, sep: char) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            cur.push(c);
            if let Some(n) = chars.next() {
                cur.push(n);
            }
        } else if c == sep {
            out.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    out.push(cur);
    out
}

/// Finds the first unescaped operator in a term.
fn split_field_term(term: &str) -> Option<(&str, String, bool)> {
    let bytes = term.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'!' if bytes.get(i + 1) == Some(&b'=') => {
                return Some((&term[..i], term[i + 2..].to_string(), true));
            }
            b'=' => {
                let skip = if bytes.get(i + 1) == Some(&b'=') {
                    2
                } else {
                    1
                };
                return Some((&term[..i], term[i + skip..].to_string(), false));
            }
            _ => i += 1,
        }
    }
    None
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ls(s: &str) -> LabelSelector {
        LabelSelector::parse(s).unwrap()
    }

    #[test]
    fn equality_and_inequality() {
        let labels = json!({"app": "web", "tier": "front"});
        assert!(ls("app=web").matches(Some(&labels)));
        assert!(ls("app==web").matches(Some(&labels)));
        assert!(!ls("app!=web").matches(Some(&labels)));
        assert!(ls("app!=db").matches(Some(&labels)));
        assert!(ls("missing!=x").matches(Some(&labels)));
        assert!(ls("app=web,tier=front").matches(Some(&labels)));
        assert!(!ls("app=web,tier=back").matches(Some(&labels)));
        assert!(ls("").matches(None));
    }

    #[test]
    fn set_based_and_existence() {
        let labels = json!({"env": "prod", "ironlb.io/node": "node1"});
        assert!(ls("env in (prod, staging)").matches(Some(&labels)));
        assert!(!ls("env notin (prod,staging)").matches(Some(&labels)));
        assert!(ls("env in (prod),ironlb.io/node").matches(Some(&labels)));
        assert!(ls("!other").matches(Some(&labels)));
        assert!(!ls("!env").matches(Some(&labels)));
        assert!(!ls("other").matches(None));
        assert!(ls("x notin (a)").matches(None));
    }

    #[test]
    fn numeric_comparisons() {
        let labels = json!({"gen": "5"});
        assert!(ls("gen>4").matches(Some(&labels)));
        assert!(!ls("gen<5").matches(Some(&labels)));
    }

    #[test]
    fn malformed_label_selectors_are_errors() {
        for bad in [
            "app=we b",
            "=x",
            "app in prod",
            "a b",
            "app=(x",
            "Bad Key=x",
            ",",
            "app in (a,b",
            "gen>x",
        ] {
            assert!(LabelSelector::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn field_selectors() {
        let fs = FieldSelector::parse(
            "involvedObject.name=web,involvedObject.kind==Service,type!=Warning",
        )
        .unwrap();
        assert_eq!(fs.terms.len(), 3);
        let obj = |f: &str| match f {
            "involvedObject.name" => Some("web".to_string()),
            "involvedObject.kind" => Some("Service".to_string()),
            "type" => Some("Normal".to_string()),
            _ => None,
        };
        assert!(fs.matches(obj));
        assert_eq!(fs.pinned("involvedObject.name"), Some("web"));
        let esc = FieldSelector::parse(r"metadata.name=a\,b").unwrap();
        assert_eq!(esc.terms[0].value, "a,b");
        assert!(FieldSelector::parse("metadata.name").is_err());
        assert!(FieldSelector::parse("").unwrap().is_empty());
        // An empty value matches an absent field, as in the API server.
        assert!(
            FieldSelector::parse("spec.nodeName=")
                .unwrap()
                .matches(|_| None)
        );
    }
}
