//! A real Prometheus (Debian's package) in a lab namespace: its configuration ([`config`],
//! pure), the server ([`Prometheus`], stopped on drop) and its HTTP API, reached with curl
//! from inside the namespace so that nothing leaves the lab.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::Error;
use super::running::Running;

/// One scrape job with static targets and the labels Prometheus Operator would add.
#[derive(Clone, Debug)]
pub struct Job {
    pub name: String,
    pub targets: Vec<String>,
    pub labels: BTreeMap<String, String>,
}

/// A Prometheus configuration scraping `jobs` every `interval` and loading `rule_files`.
pub fn config(interval: Duration, jobs: &[Job], rule_files: &[PathBuf]) -> String {
    let interval = format!("{}ms", interval.as_millis());
    let config = serde_json::json!({
        "global": {
            "scrape_interval": interval,
            "scrape_timeout": interval,
            "evaluation_interval": interval,
        },
        "rule_files": rule_files.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
        "scrape_configs": jobs.iter().map(|j| serde_json::json!({
            "job_name": j.name,
            "metrics_path": "/metrics",
            "static_configs": [{"targets": j.targets, "labels": j.labels}],
        })).collect::<Vec<_>>(),
    });
    serde_yaml::to_string(&config).unwrap_or_default()
}

/// One sample of an instant query.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// One alert and its state (`pending` or `firing`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alert {
    pub name: String,
    pub state: String,
    pub labels: BTreeMap<String, String>,
}

/// One rule's evaluation state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleHealth {
    pub name: String,
    /// `ok`, `err` or `unknown` (not evaluated yet).
    pub health: String,
    pub last_error: String,
}

/// One scrape target's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub job: String,
    pub instance: String,
    pub health: String,
    pub last_error: String,
}

pub struct Prometheus {
    netns: String,
    url: String,
    process: Running,
}

impl Prometheus {
    /// Starts `prometheus` in `netns`, listening on `listen`, with its data in `dir`.
    pub fn start(
        netns: &str,
        listen: SocketAddr,
        dir: &Path,
        config_yaml: &str,
    ) -> Result<Self, Error> {
        let program = which("prometheus")?;
        std::fs::create_dir_all(dir.join("data"))
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        let config_file = dir.join("prometheus.yml");
        std::fs::write(&config_file, config_yaml)
            .map_err(|e| Error::io(format!("writing {}", config_file.display()), e))?;
        let args = vec![
            format!("--config.file={}", config_file.display()),
            format!("--storage.tsdb.path={}", dir.join("data").display()),
            format!("--web.listen-address={listen}"),
            "--storage.tsdb.retention.time=1h".to_string(),
            "--log.level=warn".to_string(),
        ];
        let process = Running::start(
            "prometheus",
            netns,
            &program,
            &args,
            &BTreeMap::new(),
            &dir.join("prometheus.log"),
        )?;
        Ok(Prometheus {
            netns: netns.to_string(),
            url: format!("http://{listen}"),
            process,
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn log_tail(&self) -> String {
        self.process.log_tail(30)
    }

    /// GET on the API from inside the namespace; the `data` of a successful answer.
    fn api(&self, path: &str, query: Option<&str>) -> Result<Value, Error> {
        let mut cmd = Command::new("ip");
        cmd.args([
            "netns",
            "exec",
            &self.netns,
            "curl",
            "-sS",
            "--max-time",
            "5",
            "-G",
        ])
        .arg(format!("{}{path}", self.url));
        if let Some(q) = query {
            cmd.arg("--data-urlencode").arg(format!("query={q}"));
        }
        let out = cmd
            .output()
            .map_err(|e| Error::io("running curl in the lab", e))?;
        if !out.status.success() {
            return Err(Error::Prometheus(format!(
                "GET {path}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        let body: Value = serde_json::from_slice(&out.stdout).map_err(|source| Error::Json {
            what: format!("Prometheus' answer to {path}"),
            source,
        })?;
        if body.get("status").and_then(Value::as_str) != Some("success") {
            return Err(Error::Prometheus(format!("GET {path}: {body}")));
        }
        Ok(body.get("data").cloned().unwrap_or(Value::Null))
    }

    /// Waits until the server answers `/-/ready`.
    pub fn wait_ready(&mut self, timeout: Duration) -> Result<(), Error> {
        let deadline = Instant::now() + timeout;
        loop {
            if !self.process.is_running() {
                return Err(Error::Prometheus(format!(
                    "exited during start-up:\n{}",
                    self.log_tail()
                )));
            }
            let out = Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &self.netns,
                    "curl",
                    "-sf",
                    "--max-time",
                    "2",
                ])
                .arg(format!("{}/-/ready", self.url))
                .output()
                .map_err(|e| Error::io("running curl in the lab", e))?;
            if out.status.success() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Error::Prometheus(format!(
                    "not ready after {timeout:?}:\n{}",
                    self.log_tail()
                )));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// An instant query.
    pub fn query(&self, promql: &str) -> Result<Vec<Sample>, Error> {
        let data = self.api("/api/v1/query", Some(promql))?;
        parse_vector(&data).map_err(|why| Error::PromQl {
            expr: promql.to_string(),
            why,
        })
    }

    /// The active scrape targets.
    pub fn targets(&self) -> Result<Vec<Target>, Error> {
        let data = self.api("/api/v1/targets", None)?;
        Ok(data
            .get("activeTargets")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|t| {
                let s = |p: &str| {
                    t.pointer(p)
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string()
                };
                Target {
                    job: s("/labels/job"),
                    instance: s("/labels/instance"),
                    health: s("/health"),
                    last_error: s("/lastError"),
                }
            })
            .collect())
    }

    /// Every metric name Prometheus has.
    pub fn metric_names(&self) -> Result<Vec<String>, Error> {
        let data = self.api("/api/v1/label/__name__/values", None)?;
        Ok(data
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect())
    }

    /// Every loaded rule and whether its last evaluation worked.
    pub fn rules(&self) -> Result<Vec<RuleHealth>, Error> {
        let data = self.api("/api/v1/rules", None)?;
        Ok(data
            .get("groups")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|g| g.get("rules").and_then(Value::as_array))
            .flatten()
            .map(|r| {
                let s = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or("").to_string();
                RuleHealth {
                    name: s("name"),
                    health: s("health"),
                    last_error: s("lastError"),
                }
            })
            .collect())
    }

    /// Alerts and their state (`pending`, `firing`).
    pub fn alerts(&self) -> Result<Vec<Alert>, Error> {
        let data = self.api("/api/v1/alerts", None)?;
        Ok(data
            .get("alerts")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|a| {
                let labels = labels(a.get("labels"));
                Alert {
                    name: labels.get("alertname").cloned().unwrap_or_default(),
                    state: a
                        .get("state")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                    labels,
                }
            })
            .collect())
    }
}

fn labels(v: Option<&Value>) -> BTreeMap<String, String> {
    v.and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
        .collect()
}

/// The samples of an instant-vector answer.
pub fn parse_vector(data: &Value) -> Result<Vec<Sample>, String> {
    if data.get("resultType").and_then(Value::as_str) != Some("vector") {
        return Err(format!("not an instant vector: {data}"));
    }
    data.get("result")
        .and_then(Value::as_array)
        .ok_or_else(|| format!("no result: {data}"))?
        .iter()
        .map(|r| {
            let value = r
                .pointer("/value/1")
                .and_then(Value::as_str)
                .ok_or_else(|| format!("a sample without a value: {r}"))?;
            Ok(Sample {
                labels: labels(r.get("metric")),
                value: value
                    .parse()
                    .map_err(|_| format!("{value:?} is not a number"))?,
            })
        })
        .collect()
}

/// A program on PATH.
pub fn which(program: &str) -> Result<PathBuf, Error> {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            Error::Launch(format!(
                "{program} is not installed: run e2e/scripts/setup (Debian package prometheus)"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn config_scrapes_every_job_with_its_labels() {
        let text = config(
            Duration::from_millis(500),
            &[Job {
                name: "ironlb-controller".into(),
                targets: vec!["192.0.2.2:7472".into()],
                labels: BTreeMap::from([("namespace".to_string(), "ironlb-system".to_string())]),
            }],
            &[PathBuf::from("/tmp/rules.yaml")],
        );
        let v: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        assert_eq!(v["global"]["scrape_interval"].as_str(), Some("500ms"));
        let job = &v["scrape_configs"][0];
        assert_eq!(job["job_name"].as_str(), Some("ironlb-controller"));
        assert_eq!(
            job["static_configs"][0]["targets"][0].as_str(),
            Some("192.0.2.2:7472")
        );
        assert_eq!(
            job["static_configs"][0]["labels"]["namespace"].as_str(),
            Some("ironlb-system")
        );
        assert_eq!(v["rule_files"][0].as_str(), Some("/tmp/rules.yaml"));
    }

    #[test]
    fn vectors_parse_and_bad_answers_are_errors() {
        let data = json!({"resultType": "vector", "result": [
            {"metric": {"pool": "a"}, "value": [1.5, "2"]},
            {"metric": {}, "value": [1.5, "NaN"]}
        ]});
        let s = parse_vector(&data).unwrap();
        assert_eq!(s[0].labels["pool"], "a");
        assert_eq!(s[0].value, 2.0);
        assert!(s[1].value.is_nan());
        for bad in [
            json!({"resultType": "matrix", "result": []}),
            json!({"resultType": "vector"}),
            json!({"resultType": "vector", "result": [{"metric": {}, "value": [1]}]}),
            json!({"resultType": "vector", "result": [{"metric": {}, "value": [1, "two"]}]}),
        ] {
            assert!(parse_vector(&bad).is_err(), "{bad}");
        }
    }
}
