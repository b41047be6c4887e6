//! What every lab benchmark's `main` shares: logging and the exit status, the binaries the lab
//! runs (built with the benchmark's own profile) and where they are, the machine's load.

use std::path::PathBuf;
use std::process::{Command, ExitCode};

use anyhow::{Context, ensure};

/// Builds every binary of the lab and of ironlb with the profile this benchmark was built
/// with, so that `lab up` next to it runs fresh binaries. `who` names the caller in the log.
pub fn build(who: &str) -> anyhow::Result<()> {
    let cargo = std::env::var_os("CARGO")
        .or_else(|| option_env!("CARGO").map(Into::into))
        .unwrap_or_else(|| "cargo".into());
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&workspace).arg("build");
    if !cfg!(debug_assertions) {
        cmd.arg("--release");
    }
    // `--bin NAME` would apply to every `-p` and silently skip the controller's and the
    // speaker's binaries, so all binaries of the three packages are built.
    cmd.args([
        "-p",
        "e2e",
        "-p",
        "ironlb-controller",
        "-p",
        "ironlb-speaker",
        "--bins",
    ]);
    println!("{who}: building the lab and ironlb binaries ({cmd:?})");
    let status = cmd.status().context("running cargo build")?;
    ensure!(status.success(), "cargo build failed ({status})");
    Ok(())
}

/// The directory of the running benchmark, where [`build`] put `lab` and the components.
pub fn dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating this binary")?;
    exe.parent()
        .map(PathBuf::from)
        .context("this binary has no directory")
}

/// The machine's 1, 5 and 15 minute load averages, printed next to figures it may skew.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// Runs a benchmark: warnings (or `RUST_LOG`) to stderr, and a failure as one line naming `who`
/// with a non-zero exit status.
pub fn main(who: &str, run: impl FnOnce() -> anyhow::Result<()>) -> ExitCode {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("{who}: {err:#}");
            ExitCode::FAILURE
        }
    }
}
