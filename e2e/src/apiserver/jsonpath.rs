//! The simple JSONPath forms CRD printer columns use: `.a.b`, `.a[0]`, `.a[*].b`,
//! `.a[?(@.type=="Ready")].status` (with `==` or `!=`, string or number literals), optionally
//! wrapped in `{}`.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
enum Step {
    Field(String),
    Index(usize),
    All,
    Filter {
        path: Vec<String>,
        value: Value,
        negate: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid JSONPath {path:?}: {message}")]
pub struct PathError {
    pub path: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct JsonPath {
    steps: Vec<Step>,
}

impl JsonPath {
    pub fn parse(src: &str) -> Result<JsonPath, PathError> {
        let err = |m: &str| PathError {
            path: src.into(),
            message: m.into(),
        };
        let mut s = src.trim();
        if let Some(inner) = s.strip_prefix('{').and_then(|x| x.strip_suffix('}')) {
            s = inner.trim();
        }
        let s = s.strip_prefix('$').unwrap_or(s);
        let b = s.as_bytes();
        let mut i = 0;
        let mut steps = Vec::new();
        while i < b.len() {
            match b[i] {
                b'.' => {
                    i += 1;
                    let start = i;
                    while i < b.len() && b[i] != b'.' && b[i] != b'[' {
                        i += 1;
                    }
                    if start == i {
                        return Err(err("empty field name"));
                    }
                    steps.push(Step::Field(s[start..i].to_string()));
                }
                b'[' => {
                    let close = find_close(s, i).ok_or_else(|| err("unterminated '['"))?;
                    let inner = s[i + 1..close].trim();
                    i = close + 1;
                    if inner == "*" {
                        steps.push(Step::All);
                    } else if let Some(filter) =
                        inner.strip_prefix("?(").and_then(|f| f.strip_suffix(')'))
                    {
                        steps.push(parse_filter(filter).ok_or_else(|| err("unsupported filter"))?);
                    } else if let Some(quoted) =
                        inner.strip_prefix('\'').and_then(|q| q.strip_suffix('\''))
                    {
                        steps.push(Step::Field(quoted.to_string()));
                    } else {
                        let n: usize = inner.parse().map_err(|_| err("unsupported subscript"))?;
                        steps.push(Step::Index(n));
                    }
                }
                _ => return Err(err("expected '.' or '['")),
            }
        }
        Ok(JsonPath { steps })
    }

    /// Every value the path selects, in document order.
    pub fn find<'a>(&self, root: &'a Value) -> Vec<&'a Value> {
        let mut cur = vec![root];
        for step in &self.steps {
            let mut next = Vec::new();
            for v in cur {
                match step {
                    Step::Field(f) => {
                        if let Some(x) = v.get(f.as_str()) {
                            next.push(x);
                        }
                    }
                    Step::Index(n) => {
                        if let Some(x) = v.as_array().and_then(|a| a.get(*n)) {
                            next.push(x);
                        }
                    }
                    Step::All => match v {
                        Value::Array(a) => next.extend(a.iter()),
                        Value::Object(m) => next.extend(m.values()),
                        _ => {}
                    },
                    Step::Filter {
                        path,
                        value,
                        negate,
                    } => {
                        if let Some(a) = v.as_array() {
                            for item in a {
                                let mut x = Some(item);
                                for p in path {
                                    x = x.and_then(|x| x.get(p.as_str()));
                                }
                                let eq = x == Some(value);
                                if eq != *negate {
                                    next.push(item);
                                }
                            }
                        }
                    }
                }
            }
            cur = next;
        }
        cur
    }
}

fn find_close(s: &str, open: usize) -> Option<usize> {
    let mut depth = 0;
    let mut quote: Option<char> = None;
    for (i, c) in s[open..].char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '[') => depth += 1,
            (None, ']') => {
                depth -= 1;
                if depth == 0 {
                    return Some(open + i);
                }
            }
            _ => {}
        }
    }
    None
}

fn parse_filter(f: &str) -> Option<Step> {
    let (lhs, rhs, negate) = if let Some((l, r)) = f.split_once("!=") {
        (l, r, true)
    } else {
        let (l, r) = f.split_once("==")?;
        (l, r, false)
    };
    let path: Vec<String> = lhs
        .trim()
        .strip_prefix("@.")?
        .split('.')
        .map(str::to_string)
        .collect();
    if path.iter().any(String::is_empty) {
        return None;
    }
    let rhs = rhs.trim();
    let value = if let Some(s) = rhs
        .strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .or_else(|| rhs.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')))
    {
        Value::String(s.to_string())
    } else {
        serde_json::from_str(rhs).ok()?
    };
    Some(Step::Filter {
        path,
        value,
        negate,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc() -> Value {
        json!({"spec": {"addresses": ["a", "b"], "autoAssign": true},
               "status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "Invalid", "status": "False"}], "assigned": {"ipv4": 3}}})
    }

    #[test]
    fn simple_paths() {
        let d = doc();
        assert_eq!(
            JsonPath::parse(".spec.autoAssign").unwrap().find(&d),
            vec![&json!(true)]
        );
        assert_eq!(
            JsonPath::parse("{.spec.addresses[1]}").unwrap().find(&d),
            vec![&json!("b")]
        );
        assert_eq!(
            JsonPath::parse(".spec.addresses[*]")
                .unwrap()
                .find(&d)
                .len(),
            2
        );
        assert_eq!(
            JsonPath::parse(".status.assigned['ipv4']")
                .unwrap()
                .find(&d),
            vec![&json!(3)]
        );
        assert!(JsonPath::parse(".spec.nope").unwrap().find(&d).is_empty());
    }

    #[test]
    fn filters() {
        let d = doc();
        assert_eq!(
            JsonPath::parse(".status.conditions[?(@.type==\"Ready\")].status")
                .unwrap()
                .find(&d),
            vec![&json!("True")]
        );
        assert_eq!(
            JsonPath::parse(".status.conditions[?(@.type=='Invalid')].status")
                .unwrap()
                .find(&d),
            vec![&json!("False")]
        );
        assert_eq!(
            JsonPath::parse(".status.conditions[?(@.type!=\"Ready\")].type")
                .unwrap()
                .find(&d),
            vec![&json!("Invalid")]
        );
        assert!(
            JsonPath::parse(".status.conditions[?(@.type==\"Gone\")].status")
                .unwrap()
                .find(&d)
                .is_empty()
        );
    }

    #[test]
    fn malformed_paths() {
        for bad in [
            "spec",
            ".",
            ".a[",
            ".a[x]",
            ".a[?(@.t=)]",
            ".a[?(type==1)]",
            ".a..b",
        ] {
            assert!(JsonPath::parse(bad).is_err(), "{bad}");
        }
    }
}
