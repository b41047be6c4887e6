//! The Helm chart ships the CRDs that `crdgen` generates. This test fails when the committed
//! files differ from what the Rust types generate, or when the directory holds a stale file.

use std::collections::BTreeSet;
use std::path::PathBuf;

use ironlb_crds::generate::{DEFAULT_DIR, REGENERATE_COMMAND, crd_files};

fn chart_crd_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(DEFAULT_DIR)
}

#[test]
fn committed_crd_yaml_matches_the_types() {
    let dir = chart_crd_dir();
    let mut stale = Vec::new();
    for file in crd_files().expect("CRDs render") {
        let path = dir.join(&file.file_name);
        match std::fs::read_to_string(&path) {
            Ok(committed) if committed == file.yaml => {}
            Ok(_) => stale.push(format!("{} differs from the generated CRD", path.display())),
            Err(err) => stale.push(format!("{} cannot be read: {err}", path.display())),
        }
    }
    assert!(
        stale.is_empty(),
        "{}\nRegenerate the chart's CRDs with `{REGENERATE_COMMAND}` from the repository root and commit them.",
        stale.join("\n")
    );
}

#[test]
fn chart_crd_dir_holds_no_stale_files() {
    let generated: BTreeSet<String> = crd_files()
        .expect("CRDs render")
        .into_iter()
        .map(|f| f.file_name)
        .collect();
    let present: BTreeSet<String> = std::fs::read_dir(chart_crd_dir())
        .expect("chart CRD directory exists")
        .map(|entry| {
            entry
                .expect("readable entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    let extra: Vec<&String> = present.difference(&generated).collect();
    assert!(
        extra.is_empty(),
        "files in {DEFAULT_DIR} that crdgen does not generate: {extra:?}; delete them or regenerate with `{REGENERATE_COMMAND}`"
    );
}
