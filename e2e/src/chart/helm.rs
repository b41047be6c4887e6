//! The real `helm` (v4, installed by `e2e/scripts/setup` into `e2e/.tools/bin`), run on the
//! chart.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use super::{Error, Manifests, chart_dir, repo_root};

/// The release name and namespace the tests render with, as the README's install command.
pub const RELEASE: &str = "ironlb";
pub const NAMESPACE: &str = "ironlb-system";

#[derive(Clone, Debug)]
pub struct Helm {
    pub binary: PathBuf,
}

impl Helm {
    /// `$HELM`, else `e2e/.tools/bin/helm`.
    pub fn locate() -> Result<Self, Error> {
        let binary = std::env::var_os("HELM")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo_root().join("e2e/.tools/bin/helm"));
        if !binary.is_file() {
            return Err(Error::Launch(format!(
                "no helm at {}: run e2e/scripts/setup (or set HELM)",
                binary.display()
            )));
        }
        Ok(Helm { binary })
    }

    /// Runs helm with `args`; the output whatever the exit status. `kubeconfig` is for the
    /// commands that talk to a cluster.
    pub fn output(&self, args: &[&str], kubeconfig: Option<&Path>) -> Result<Output, Error> {
        let mut cmd = Command::new(&self.binary);
        cmd.args(args).stdin(Stdio::null());
        // No user configuration or cache may change what the tests see.
        let scratch = std::env::temp_dir().join(format!("ironlb-helm-{}", std::process::id()));
        cmd.env("HELM_CONFIG_HOME", scratch.join("config"))
            .env("HELM_CACHE_HOME", scratch.join("cache"))
            .env("HELM_DATA_HOME", scratch.join("data"));
        match kubeconfig {
            Some(k) => cmd.env("KUBECONFIG", k),
            // An empty kubeconfig: `helm template` must not read a real cluster.
            None => cmd.env("KUBECONFIG", "/dev/null"),
        };
        cmd.output()
            .map_err(|e| Error::io(format!("running {}", self.binary.display()), e))
    }

    /// Runs helm and returns stdout; a non-zero exit is an error carrying both streams.
    pub fn run(&self, args: &[&str], kubeconfig: Option<&Path>) -> Result<String, Error> {
        let out = self.output(args, kubeconfig)?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(Error::Command {
                command: format!("helm {}", args.join(" ")),
                status: out.status.to_string(),
                output: format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ),
            })
        }
    }

    /// `helm template ironlb charts/ironlb -n ironlb-system EXTRA...`.
    pub fn template(&self, extra: &[&str]) -> Result<String, Error> {
        let chart = chart_dir();
        let chart = chart.to_string_lossy();
        let mut args = vec!["template", RELEASE, &chart, "--namespace", NAMESPACE];
        args.extend_from_slice(extra);
        self.run(&args, None)
    }

    /// [`Helm::template`], parsed.
    pub fn render(&self, extra: &[&str]) -> Result<Manifests, Error> {
        Manifests::parse(&self.template(extra)?)
    }

    /// `helm lint --strict charts/ironlb EXTRA...`.
    pub fn lint_strict(&self, extra: &[&str]) -> Result<String, Error> {
        let chart = chart_dir();
        let chart = chart.to_string_lossy();
        let mut args = vec!["lint", "--strict", &chart];
        args.extend_from_slice(extra);
        self.run(&args, None)
    }
}
