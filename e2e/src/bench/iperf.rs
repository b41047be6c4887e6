//! iperf3's JSON report (`iperf3 -c ... -J`) and the throughput ratio of two paths measured in
//! alternating rounds. Pure: the benchmark runs iperf3, this module reads what it printed.
//!
//! For TCP the figure that counts is what the receiver got (`end.sum_received`): the sender's
//! count includes bytes still queued when the test stopped.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum IperfError {
    #[error("iperf3 printed no JSON: {0}")]
    NotJson(String),
    #[error("iperf3 reported an error: {0}")]
    Reported(String),
    #[error("iperf3's report has no {0}")]
    Missing(&'static str),
    #[error("iperf3's {field} is {value}, not a finite non-negative number")]
    BadNumber { field: &'static str, value: String },
}

/// One iperf3 TCP run, as its client reported it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Run {
    /// Bits per second the receiver got.
    pub received_bps: f64,
    /// Bits per second the sender sent.
    pub sent_bps: f64,
    /// How long the receiver measured, in seconds.
    pub seconds: f64,
    /// TCP retransmissions seen by the sender, when the platform reports them.
    pub retransmits: Option<u64>,
}

fn number(v: &Value, pointer: &str, field: &'static str) -> Result<f64, IperfError> {
    let value = v.pointer(pointer).ok_or(IperfError::Missing(field))?;
    match value.as_f64() {
        Some(n) if n.is_finite() && n >= 0.0 => Ok(n),
        _ => Err(IperfError::BadNumber {
            field,
            value: value.to_string(),
        }),
    }
}

/// Reads the report iperf3 `-J` printed. A run that failed (iperf3 still prints JSON, with an
/// `error` field and often no `end`) is an error naming iperf3's reason.
pub fn parse(text: &str) -> Result<Run, IperfError> {
    let v: Value = serde_json::from_str(text.trim()).map_err(|e| {
        let head: String = text.chars().take(120).collect();
        IperfError::NotJson(format!("{e}: {head:?}"))
    })?;
    if let Some(error) = v.get("error") {
        let reason = error
            .as_str()
            .map_or_else(|| error.to_string(), str::to_string);
        return Err(IperfError::Reported(reason));
    }
    if !v.is_object() {
        return Err(IperfError::Missing("top-level object"));
    }
    let retransmits = match v.pointer("/end/sum_sent/retransmits") {
        None => None,
        Some(r) => Some(r.as_u64().ok_or(IperfError::BadNumber {
            field: "end.sum_sent.retransmits",
            value: r.to_string(),
        })?),
    };
    Ok(Run {
        received_bps: number(
            &v,
            "/end/sum_received/bits_per_second",
            "end.sum_received.bits_per_second",
        )?,
        sent_bps: number(
            &v,
            "/end/sum_sent/bits_per_second",
            "end.sum_sent.bits_per_second",
        )?,
        seconds: number(&v, "/end/sum_received/seconds", "end.sum_received.seconds")?,
        retransmits,
    })
}

/// Throughput of one path against another, from rounds run alternately in the same session.
#[derive(Debug, Clone, PartialEq)]
pub struct Ratio {
    /// Mean received bits per second over the rounds, of the path under test and of the
    /// reference.
    pub tested_bps: f64,
    pub reference_bps: f64,
    /// `tested_bps / reference_bps`.
    pub ratio: f64,
    /// Each round's own ratio (pairs in order), to show the spread.
    pub per_round: Vec<f64>,
}

/// Compares rounds of the tested path with rounds of the reference; `None` when either has no
/// round or the reference moved nothing.
pub fn ratio(tested: &[Run], reference: &[Run]) -> Option<Ratio> {
    if tested.is_empty() || reference.is_empty() {
        return None;
    }
    let mean = |runs: &[Run]| runs.iter().map(|r| r.received_bps).sum::<f64>() / runs.len() as f64;
    let (t, r) = (mean(tested), mean(reference));
    if r <= 0.0 {
        return None;
    }
    let per_round = tested
        .iter()
        .zip(reference)
        .filter(|(_, r)| r.received_bps > 0.0)
        .map(|(t, r)| t.received_bps / r.received_bps)
        .collect();
    Some(Ratio {
        tested_bps: t,
        reference_bps: r,
        ratio: t / r,
        per_round,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape of `iperf3 -c ... -J` (3.12) for TCP, trimmed to what matters.
    const REPORT: &str = r#"{
      "start": {"connected": [{"socket": 5, "local_host": "192.0.2.100", "remote_host": "198.51.100.10", "remote_port": 5201}],
                "test_start": {"protocol": "TCP", "num_streams": 1, "duration": 5}},
      "intervals": [{"sum": {"start": 0, "end": 1.0, "bits_per_second": 9.1e9}}],
      "end": {
        "sum_sent": {"start": 0, "end": 5.0002, "seconds": 5.0002, "bytes": 5710000000, "bits_per_second": 9135634574.6, "retransmits": 12, "sender": true},
        "sum_received": {"start": 0, "end": 5.0006, "seconds": 5.0006, "bytes": 5709000000, "bits_per_second": 9133172019.4, "sender": true}
      }
    }"#;

    fn run(bps: f64) -> Run {
        Run {
            received_bps: bps,
            sent_bps: bps,
            seconds: 5.0,
            retransmits: None,
        }
    }

    #[test]
    fn reads_the_receiver_figure() {
        let r = parse(REPORT).unwrap();
        assert_eq!(r.received_bps, 9133172019.4);
        assert_eq!(r.sent_bps, 9135634574.6);
        assert_eq!(r.seconds, 5.0006);
        assert_eq!(r.retransmits, Some(12));
    }

    #[test]
    fn retransmits_are_optional() {
        let text = REPORT.replace(r#""retransmits": 12, "#, "");
        assert_eq!(parse(&text).unwrap().retransmits, None);
    }

    #[test]
    fn a_failed_run_names_iperfs_reason() {
        let text = r#"{"start": {"connected": []}, "intervals": [], "end": {},
                       "error": "unable to connect to server: Connection refused"}"#;
        assert_eq!(
            parse(text),
            Err(IperfError::Reported(
                "unable to connect to server: Connection refused".into()
            ))
        );
        assert_eq!(
            parse(r#"{"error": 3}"#),
            Err(IperfError::Reported("3".into()))
        );
    }

    #[test]
    fn malformed_reports_are_typed_errors() {
        assert!(matches!(parse(""), Err(IperfError::NotJson(_))));
        assert!(matches!(
            parse("iperf3: error - unable to connect"),
            Err(IperfError::NotJson(_))
        ));
        assert!(matches!(parse("{\"end\": "), Err(IperfError::NotJson(_))));
        assert_eq!(
            parse("[1, 2]"),
            Err(IperfError::Missing("top-level object"))
        );
        assert_eq!(
            parse(r#"{"end": {}}"#),
            Err(IperfError::Missing("end.sum_received.bits_per_second"))
        );
        let negative = REPORT.replace("9133172019.4", "-1");
        assert!(matches!(
            parse(&negative),
            Err(IperfError::BadNumber {
                field: "end.sum_received.bits_per_second",
                ..
            })
        ));
        let text = REPORT.replace("9135634574.6", "\"fast\"");
        assert!(matches!(
            parse(&text),
            Err(IperfError::BadNumber {
                field: "end.sum_sent.bits_per_second",
                ..
            })
        ));
        let text = REPORT.replace(r#""retransmits": 12"#, r#""retransmits": -3"#);
        assert!(matches!(
            parse(&text),
            Err(IperfError::BadNumber {
                field: "end.sum_sent.retransmits",
                ..
            })
        ));
    }

    #[test]
    fn ratio_of_means_and_per_round() {
        let tested = [run(9.0e9), run(8.0e9)];
        let reference = [run(10.0e9), run(8.0e9)];
        let r = ratio(&tested, &reference).unwrap();
        assert_eq!(r.tested_bps, 8.5e9);
        assert_eq!(r.reference_bps, 9.0e9);
        assert!((r.ratio - 8.5 / 9.0).abs() < 1e-12);
        assert_eq!(r.per_round, vec![0.9, 1.0]);
    }

    #[test]
    fn no_ratio_without_rounds_or_reference_traffic() {
        assert_eq!(ratio(&[], &[run(1.0)]), None);
        assert_eq!(ratio(&[run(1.0)], &[]), None);
        assert_eq!(ratio(&[run(1.0)], &[run(0.0)]), None);
    }
}
