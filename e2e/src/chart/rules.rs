//! The chart's Prometheus content: the rule groups of its PrometheusRule, as a rule file for
//! `promtool` and Prometheus, the queries of its Grafana dashboard, and the `ironlb` metric
//! names they reference, to check against the metrics the binaries define. Pure.

use std::collections::BTreeSet;

use serde_json::Value;

use super::{Error, Manifests};

/// The rule file (`groups:` YAML) made of every PrometheusRule's `spec.groups`.
pub fn rule_file(manifests: &Manifests) -> Result<String, Error> {
    let mut groups = Vec::new();
    for rule in manifests.of_kind("PrometheusRule") {
        let g = rule
            .0
            .pointer("/spec/groups")
            .and_then(Value::as_array)
            .ok_or_else(|| Error::Manifest(format!("{} has no spec.groups", rule.id())))?;
        groups.extend(g.iter().cloned());
    }
    if groups.is_empty() {
        return Err(Error::Manifest(
            "no PrometheusRule with rule groups in the rendered chart".into(),
        ));
    }
    serde_yaml::to_string(&serde_json::json!({ "groups": groups })).map_err(|source| Error::Yaml {
        what: "the rule file".into(),
        source,
    })
}

/// Every rule of a rule file's groups: `(record or alert name, expr)`.
pub fn rules(manifests: &Manifests) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for rule in manifests.of_kind("PrometheusRule") {
        for group in rule
            .0
            .pointer("/spec/groups")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            for r in group
                .get("rules")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let name = r
                    .get("record")
                    .or_else(|| r.get("alert"))
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let expr = r.get("expr").and_then(Value::as_str).unwrap_or("");
                out.push((name.to_string(), expr.to_string()));
            }
        }
    }
    out
}

/// The PromQL of every panel target of a Grafana dashboard JSON.
pub fn dashboard_queries(dashboard: &str) -> Result<Vec<String>, Error> {
    let value: Value = serde_json::from_str(dashboard).map_err(|source| Error::Json {
        what: "the dashboard".into(),
        source,
    })?;
    let panels = value
        .get("panels")
        .and_then(Value::as_array)
        .ok_or_else(|| Error::Manifest("the dashboard has no panels".into()))?;
    let mut out = Vec::new();
    for panel in panels {
        for target in panel
            .get("targets")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(expr) = target.get("expr").and_then(Value::as_str) {
                out.push(expr.to_string());
            }
        }
    }
    Ok(out)
}

/// The `ironlb_*` metric names and `ironlb:*` recorded series a PromQL expression reads, with
/// string literals skipped. Histogram series (`_bucket`, `_sum`, `_count`) are reported as
/// written.
pub fn referenced_metrics(expr: &str) -> Result<BTreeSet<String>, Error> {
    let mut names = BTreeSet::new();
    let bytes = expr.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'"' || b == b'\'' || b == b'`' {
            // Raw (backtick) strings have no escapes.
            let mut j = i + 1;
            let mut closed = false;
            while j < bytes.len() {
                if bytes[j] == b'\\' && b != b'`' {
                    j += 2;
                    continue;
                }
                if bytes[j] == b {
                    closed = true;
                    break;
                }
                j += 1;
            }
            if !closed {
                return Err(Error::PromQl {
                    expr: expr.to_string(),
                    why: "unterminated string".into(),
                });
            }
            i = j + 1;
            continue;
        }
        if b.is_ascii_alphabetic() || b == b'_' || b == b':' {
            let start = i;
            while i < bytes.len()
                && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] == b':')
            {
                i += 1;
            }
            let word = &expr[start..i];
            if word.starts_with("ironlb_") || word.starts_with("ironlb:") {
                names.insert(word.to_string());
            }
            continue;
        }
        i += 1;
    }
    Ok(names)
}

/// The metric name a series name belongs to: `x_bucket`, `x_sum` and `x_count` belong to the
/// histogram `x` when `defined` has it.
pub fn family_of<'a>(series: &'a str, defined: &BTreeSet<String>) -> &'a str {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = series.strip_suffix(suffix)
            && defined.contains(base)
        {
            return base;
        }
    }
    series
}

/// `ironlb_*` names written as string literals in Rust source: the names the binaries
/// register their metrics under.
pub fn metric_literals(source: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = source;
    while let Some(i) = rest.find("\"ironlb_") {
        let tail = &rest[i + 1..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        if tail[end..].starts_with('"') {
            out.insert(tail[..end].to_string());
        }
        rest = &tail[end..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_names_skip_labels_functions_and_strings() {
        let expr = r#"max by (pool, family) (ironlb_allocator_addresses_in_use{namespace="ironlb_fake"} and on (instance) (ironlb_controller_is_leader == 1)) / ironlb:pool_usage:ratio + histogram_quantile(0.99, rate(ironlb_controller_reconcile_duration_seconds_bucket[5m])) offset 5m"#;
        let names: Vec<String> = referenced_metrics(expr).unwrap().into_iter().collect();
        assert_eq!(
            names,
            [
                "ironlb:pool_usage:ratio",
                "ironlb_allocator_addresses_in_use",
                "ironlb_controller_is_leader",
                "ironlb_controller_reconcile_duration_seconds_bucket"
            ]
        );
    }

    #[test]
    fn escaped_quotes_do_not_end_a_string() {
        let names = referenced_metrics(r#"up{job="a\"ironlb_hidden"} + ironlb_seen"#).unwrap();
        assert_eq!(names.into_iter().collect::<Vec<_>>(), ["ironlb_seen"]);
        assert!(referenced_metrics(r#"up{job="open"#).is_err());
        assert!(
            referenced_metrics("ironlb_x{a='b'}")
                .unwrap()
                .contains("ironlb_x")
        );
    }

    #[test]
    fn histogram_series_belong_to_their_family() {
        let defined = BTreeSet::from(["ironlb_d_seconds".to_string()]);
        assert_eq!(
            family_of("ironlb_d_seconds_bucket", &defined),
            "ironlb_d_seconds"
        );
        assert_eq!(
            family_of("ironlb_d_seconds_count", &defined),
            "ironlb_d_seconds"
        );
        assert_eq!(
            family_of("ironlb_other_count", &defined),
            "ironlb_other_count"
        );
    }

    #[test]
    fn literals_are_whole_quoted_names() {
        let src = r#"Opts::new("ironlb_a_total", "help"); let x = "ironlb_b"; // "ironlb_c is"
            format!("ironlb_{x}") "ironlb_d_seconds""#;
        let names: Vec<String> = metric_literals(src).into_iter().collect();
        assert_eq!(names, ["ironlb_a_total", "ironlb_b", "ironlb_d_seconds"]);
    }

    #[test]
    fn the_rule_file_gathers_every_group() {
        let m = Manifests::parse(
            "apiVersion: monitoring.coreos.com/v1\nkind: PrometheusRule\nmetadata: {name: r}\nspec:\n  groups:\n  - name: a\n    rules:\n    - record: ironlb:x\n      expr: sum(ironlb_y)\n  - name: b\n    rules:\n    - alert: A\n      expr: ironlb:x > 1\n",
        )
        .unwrap();
        let file = rule_file(&m).unwrap();
        let v: serde_yaml::Value = serde_yaml::from_str(&file).unwrap();
        assert_eq!(v["groups"].as_sequence().unwrap().len(), 2);
        assert_eq!(
            rules(&m),
            [
                ("ironlb:x".to_string(), "sum(ironlb_y)".to_string()),
                ("A".to_string(), "ironlb:x > 1".to_string())
            ]
        );
        assert!(rule_file(&Manifests::default()).is_err());
        let no_groups = Manifests::parse(
            "apiVersion: monitoring.coreos.com/v1\nkind: PrometheusRule\nmetadata: {name: r}\nspec: {}\n",
        )
        .unwrap();
        assert!(rule_file(&no_groups).is_err());
    }

    #[test]
    fn dashboard_queries_come_from_panel_targets() {
        let q = dashboard_queries(
            r#"{"panels": [{"targets": [{"expr": "a"}, {"refId": "x"}]}, {"title": "text"}]}"#,
        )
        .unwrap();
        assert_eq!(q, ["a"]);
        assert!(dashboard_queries("{").is_err());
        assert!(dashboard_queries("{}").is_err());
    }
}
