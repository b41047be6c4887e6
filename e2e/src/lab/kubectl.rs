//! Running the real `kubectl` (the one `e2e/scripts/setup` installs into `e2e/.tools/bin`)
//! against a lab or any kubeconfig.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use super::{Error, Result};

/// `$IRONLB_KUBECTL`, else `e2e/.tools/bin/kubectl` of this checkout.
pub fn kubectl_path() -> PathBuf {
    std::env::var_os("IRONLB_KUBECTL")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/bin/kubectl"))
}

/// kubectl bound to one kubeconfig.
#[derive(Debug, Clone)]
pub struct Kubectl {
    pub program: PathBuf,
    pub kubeconfig: PathBuf,
}

impl Kubectl {
    pub fn new(kubeconfig: &Path) -> Result<Self> {
        let program = kubectl_path();
        if !program.is_file() {
            return Err(Error::MissingBinary(program));
        }
        Ok(Kubectl {
            program,
            kubeconfig: kubeconfig.to_path_buf(),
        })
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.arg("--kubeconfig").arg(&self.kubeconfig).args(args);
        cmd
    }

    /// Runs kubectl, optionally with `stdin`, and returns its output whatever its status.
    pub fn output(&self, args: &[&str], stdin: Option<&str>) -> Result<Output> {
        let mut cmd = self.command(args);
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .map_err(|e| Error::io(format!("running {}", self.program.display()), e))?;
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(input.as_bytes())
                .map_err(|e| Error::io("writing kubectl's stdin", e))?;
        }
        child
            .wait_with_output()
            .map_err(|e| Error::io("waiting for kubectl", e))
    }

    /// Runs kubectl and returns stdout, or an error carrying stderr.
    pub fn run(&self, args: &[&str], stdin: Option<&str>) -> Result<String> {
        let out = self.output(args, stdin)?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(Error::Command {
                command: format!("kubectl {}", args.join(" ")),
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            })
        }
    }
}
