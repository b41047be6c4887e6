//! A reader for the Prometheus text exposition format, enough for benchmarks to read figures
//! from the API-server stand-in's and ironlb's `/metrics`: one [`Sample`] per line, comments
//! and blank lines skipped, label values unescaped. Pure; malformed lines are typed errors.

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PromTextError {
    #[error("line {line}: no metric name")]
    MissingName { line: usize },
    #[error("line {line}: malformed labels: {reason}")]
    BadLabels { line: usize, reason: &'static str },
    #[error("line {line}: no value")]
    MissingValue { line: usize },
    #[error("line {line}: value {value:?} is not a number")]
    BadValue { line: usize, value: String },
}

/// One sample: `name{labels} value [timestamp]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

impl Sample {
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.get(key).map(String::as_str)
    }
}

/// Every sample of an exposition, in order.
pub fn parse(text: &str) -> Result<Vec<Sample>, PromTextError> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
        .map(|(line, l)| parse_line(line, l))
        .collect()
}

/// The value of the first sample called `name` whose labels include every pair of `labels`.
pub fn value_of(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| s.name == name && labels.iter().all(|(k, v)| s.label(k) == Some(*v)))
        .map(|s| s.value)
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

fn parse_line(line: usize, text: &str) -> Result<Sample, PromTextError> {
    let name_end = text.find(|c| !is_name_char(c)).unwrap_or(text.len());
    let name = &text[..name_end];
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(PromTextError::MissingName { line });
    }
    let mut rest = &text[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(after_brace) = rest.strip_prefix('{') {
        let (parsed, remainder) = parse_labels(line, after_brace)?;
        labels = parsed;
        rest = remainder;
    }
    if !rest.is_empty() && !rest.starts_with([' ', '\t']) {
        return Err(PromTextError::BadLabels {
            line,
            reason: "unexpected character after the name",
        });
    }
    let mut fields = rest.split_whitespace();
    let raw = fields.next().ok_or(PromTextError::MissingValue { line })?;
    let value = parse_value(raw).ok_or_else(|| PromTextError::BadValue {
        line,
        value: raw.to_string(),
    })?;
    // An optional integer timestamp may follow; anything more is malformed.
    let timestamp_ok = fields.next().is_none_or(|t| t.parse::<i64>().is_ok());
    if !timestamp_ok || fields.next().is_some() {
        return Err(PromTextError::BadValue {
            line,
            value: rest.trim().to_string(),
        });
    }
    Ok(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

fn parse_value(raw: &str) -> Option<f64> {
    match raw {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        // Rust also accepts "inf", "infinity" and "nan" in any case; the format does not.
        _ if raw
            .chars()
            .any(|c| c.is_ascii_alphabetic() && c != 'e' && c != 'E') =>
        {
            None
        }
        _ => raw.parse().ok(),
    }
}

/// Parses `k="v",k2="v2"}` (the opening brace already consumed); returns the labels and what
/// follows the closing brace.
fn parse_labels(
    line: usize,
    mut s: &str,
) -> Result<(BTreeMap<String, String>, &str), PromTextError> {
    let bad = |reason| PromTextError::BadLabels { line, reason };
    let mut labels = BTreeMap::new();
    loop {
        s = s.trim_start();
        if let Some(rest) = s.strip_prefix('}') {
            return Ok((labels, rest));
        }
        let key_end = s.find(|c| !is_name_char(c)).unwrap_or(s.len());
        let key = &s[..key_end];
        if key.is_empty() {
            return Err(bad("a label has no name"));
        }
        s = s[key_end..]
            .trim_start()
            .strip_prefix('=')
            .ok_or(bad("a label has no `=`"))?
            .trim_start()
            .strip_prefix('"')
            .ok_or(bad("a label value is not quoted"))?;
        let mut value = String::new();
        let mut chars = s.char_indices();
        let close = loop {
            match chars.next() {
                None => return Err(bad("a label value is not terminated")),
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c @ ('\\' | '"'))) => value.push(c),
                    _ => return Err(bad("a label value has a bad escape")),
                },
                Some((_, c)) => value.push(c),
            }
        };
        if labels.insert(key.to_string(), value).is_some() {
            return Err(bad("a label is repeated"));
        }
        s = s[close + 1..].trim_start();
        if let Some(rest) = s.strip_prefix(',') {
            s = rest;
        } else if !s.starts_with('}') {
            return Err(bad("labels are not separated by `,`"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_samples_with_and_without_labels() {
        let text = "# HELP x a counter\n# TYPE x counter\n\nx 3\n\
                    apiserver_request_total{client=\"192.0.2.2\",code=\"200\",verb=\"patch\"} 12\n\
                    up{} 1 1700000000000\n";
        let samples = parse(text).unwrap();
        assert_eq!(samples.len(), 3);
        assert_eq!(samples[0].name, "x");
        assert!(samples[0].labels.is_empty());
        assert_eq!(samples[0].value, 3.0);
        assert_eq!(samples[1].label("client"), Some("192.0.2.2"));
        assert_eq!(samples[1].label("verb"), Some("patch"));
        assert_eq!(samples[1].value, 12.0);
        assert_eq!(samples[2].value, 1.0);
    }

    #[test]
    fn unescapes_label_values_and_tolerates_a_trailing_comma() {
        let samples = parse(r#"m{a="x\"y",b="back\\slash",c="two\nlines",} 1"#).unwrap();
        let s = &samples[0];
        assert_eq!(s.label("a"), Some("x\"y"));
        assert_eq!(s.label("b"), Some("back\\slash"));
        assert_eq!(s.label("c"), Some("two\nlines"));
    }

    #[test]
    fn a_brace_or_space_inside_a_value_is_not_the_end() {
        let s = &parse(r#"m{ua="kubectl/v1.35 (linux) {x}"} 2"#).unwrap()[0];
        assert_eq!(s.label("ua"), Some("kubectl/v1.35 (linux) {x}"));
        assert_eq!(s.value, 2.0);
    }

    #[test]
    fn special_values() {
        let samples = parse("a +Inf\nb -Inf\nc NaN\nd 1.5e3\ne -0.25").unwrap();
        assert_eq!(samples[0].value, f64::INFINITY);
        assert_eq!(samples[1].value, f64::NEG_INFINITY);
        assert!(samples[2].value.is_nan());
        assert_eq!(samples[3].value, 1500.0);
        assert_eq!(samples[4].value, -0.25);
    }

    #[test]
    fn value_of_matches_a_subset_of_labels() {
        let samples = parse(
            "ironlb_allocator_addresses_in_use{family=\"IPv4\",pool=\"p\"} 3\n\
             ironlb_allocator_addresses_in_use{family=\"IPv6\",pool=\"p\"} 10000\n",
        )
        .unwrap();
        let in_use = |family| {
            value_of(
                &samples,
                "ironlb_allocator_addresses_in_use",
                &[("pool", "p"), ("family", family)],
            )
        };
        assert_eq!(in_use("IPv6"), Some(10000.0));
        assert_eq!(in_use("IPv4"), Some(3.0));
        assert_eq!(in_use("dual"), None);
        assert_eq!(value_of(&samples, "other", &[]), None);
    }

    #[test]
    fn malformed_lines_are_typed_errors_with_their_line_number() {
        use PromTextError::*;
        let cases: &[(&str, PromTextError)] = &[
            ("{a=\"b\"} 1", MissingName { line: 1 }),
            ("9lives 1", MissingName { line: 1 }),
            ("m", MissingValue { line: 1 }),
            ("m{a=\"b\"}", MissingValue { line: 1 }),
            (
                "m one",
                BadValue {
                    line: 1,
                    value: "one".into(),
                },
            ),
            (
                "m inf",
                BadValue {
                    line: 1,
                    value: "inf".into(),
                },
            ),
            (
                "m 1 2 3",
                BadValue {
                    line: 1,
                    value: "1 2 3".into(),
                },
            ),
            (
                "m 1 later",
                BadValue {
                    line: 1,
                    value: "1 later".into(),
                },
            ),
            (
                "m{a=\"b\" 1",
                BadLabels {
                    line: 1,
                    reason: "labels are not separated by `,`",
                },
            ),
            (
                "m{a=\"b} 1",
                BadLabels {
                    line: 1,
                    reason: "a label value is not terminated",
                },
            ),
            (
                "m{a=b} 1",
                BadLabels {
                    line: 1,
                    reason: "a label value is not quoted",
                },
            ),
            (
                "m{a} 1",
                BadLabels {
                    line: 1,
                    reason: "a label has no `=`",
                },
            ),
            (
                "m{=\"b\"} 1",
                BadLabels {
                    line: 1,
                    reason: "a label has no name",
                },
            ),
            (
                "m{a=\"\\t\"} 1",
                BadLabels {
                    line: 1,
                    reason: "a label value has a bad escape",
                },
            ),
            (
                "m{a=\"1\",a=\"2\"} 1",
                BadLabels {
                    line: 1,
                    reason: "a label is repeated",
                },
            ),
            (
                "m-x 1",
                BadLabels {
                    line: 1,
                    reason: "unexpected character after the name",
                },
            ),
        ];
        for (text, want) in cases {
            assert_eq!(parse(text).unwrap_err(), *want, "{text:?}");
        }
        let err = parse("# ok\nfine 1\nbroken{ 2").unwrap_err();
        assert!(matches!(err, BadLabels { line: 3, .. }), "{err}");
    }
}
