//! The `crdgen` binary: its three ways of running, and its refusal of bad arguments.

use std::path::PathBuf;
use std::process::Command;

use ironlb_crds::generate::crd_files;
use serde::Deserialize;

fn crdgen() -> Command {
    Command::new(env!("CARGO_BIN_EXE_crdgen"))
}

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("ironlb-crdgen-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn dir_flag_writes_one_file_per_crd() {
    let dir = TempDir::new("dir");
    let out = crdgen().arg("--dir").arg(&dir.0).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for file in crd_files().unwrap() {
        let written = std::fs::read_to_string(dir.0.join(&file.file_name)).unwrap();
        assert_eq!(written, file.yaml, "{}", file.file_name);
    }
    assert_eq!(std::fs::read_dir(&dir.0).unwrap().count(), 3);
}

#[test]
fn stdout_flag_prints_a_multi_document_stream() {
    let out = crdgen().arg("--stdout").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let kinds: Vec<String> = serde_yaml::Deserializer::from_str(&text)
        .map(|doc| {
            let value = serde_yaml::Value::deserialize(doc).unwrap();
            value["spec"]["names"]["kind"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(
        kinds,
        ["IPAddressPool", "L2Advertisement", "ServiceL2Status"]
    );
}

#[test]
fn default_dir_is_refused_outside_the_repository_root() {
    let dir = TempDir::new("cwd");
    std::fs::create_dir_all(&dir.0).unwrap();
    let out = crdgen().current_dir(&dir.0).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("run crdgen from the repository root or pass --dir"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_dir(&dir.0).unwrap().count(),
        0,
        "nothing written"
    );
}

#[test]
fn bad_arguments_fail_with_usage() {
    for args in [vec!["--bogus"], vec!["--dir"]] {
        let out = crdgen().args(&args).output().unwrap();
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("usage: crdgen"), "{args:?}: {err}");
    }
    let help = crdgen().arg("--help").output().unwrap();
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("--stdout"));
}
