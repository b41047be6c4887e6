//! The Dockerfiles, checked without a container engine: each builds the binary Cargo defines,
//! copies it to the path its ENTRYPOINT runs, runs as the user the chart expects, exposes the
//! ports the chart uses, and its documented `docker build -t` tag is the chart's default image.

use std::path::Path;
use std::process::Command;

use e2e::chart::dockerfile::Dockerfile;
use e2e::chart::manifest::{container, effective_security};
use e2e::chart::{Helm, Manifests, repo_root};
use serde_json::Value;

struct Component {
    dir: &'static str,
    binary: &'static str,
    workload: &'static str,
    container: &'static str,
}

const COMPONENTS: [Component; 2] = [
    Component {
        dir: "controller",
        binary: "ironlb-controller",
        workload: "Deployment",
        container: "controller",
    },
    Component {
        dir: "speaker",
        binary: "ironlb-speaker",
        workload: "DaemonSet",
        container: "speaker",
    },
];

fn cargo_metadata() -> Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
            "--manifest-path",
        ])
        .arg(repo_root().join("Cargo.toml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The package in `dir/` and whether it has a binary target named `binary`.
fn package_of(meta: &Value, dir: &str, binary: &str) -> (String, bool) {
    let manifest = repo_root().join(dir).join("Cargo.toml");
    let pkg = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| Path::new(p["manifest_path"].as_str().unwrap()) == manifest)
        .unwrap_or_else(|| panic!("no package in {dir}/"));
    let has_bin =
        pkg["targets"].as_array().unwrap().iter().any(|t| {
            t["name"] == binary && t["kind"].as_array().unwrap().iter().any(|k| k == "bin")
        });
    (pkg["name"].as_str().unwrap().to_string(), has_bin)
}

fn version_at_least(have: &str, want: &str) -> bool {
    let parse = |v: &str| -> Vec<u64> { v.split('.').map(|p| p.parse().unwrap_or(0)).collect() };
    let (mut h, mut w) = (parse(have), parse(want));
    h.resize(3, 0);
    w.resize(3, 0);
    h >= w
}

fn dockerfile(c: &Component) -> (Dockerfile, String) {
    let path = repo_root().join(c.dir).join("Dockerfile");
    let text = std::fs::read_to_string(&path).unwrap();
    (
        Dockerfile::parse(&path.display().to_string(), &text).unwrap(),
        text,
    )
}

fn rendered() -> Manifests {
    Helm::locate().unwrap().render(&[]).unwrap()
}

#[test]
fn each_image_builds_the_binary_cargo_defines_and_runs_it() {
    let meta = cargo_metadata();
    let rust_version = meta["packages"][0]["rust_version"]
        .as_str()
        .unwrap_or("1.0")
        .to_string();
    for c in &COMPONENTS {
        let (d, _) = dockerfile(c);
        let (package, has_bin) = package_of(&meta, c.dir, c.binary);
        assert!(has_bin, "package {package} has no binary {}", c.binary);
        assert!(d.stages.len() >= 2, "{}: not multi-stage", d.file);

        let build = d
            .stage("build")
            .unwrap_or_else(|| panic!("{}: no stage named build", d.file));
        assert!(
            build.base.contains("rust:"),
            "{}: builds on {}",
            d.file,
            build.base
        );
        let toolchain = d.global_args.get("RUST_VERSION").expect("ARG RUST_VERSION");
        assert!(
            version_at_least(toolchain, &rust_version),
            "{}: Rust {toolchain} is older than the workspace's rust-version {rust_version}",
            d.file
        );
        let run: String = build.all("RUN").collect::<Vec<_>>().join("\n");
        let command = format!(
            "cargo build --release --locked -p {package} --bin {}",
            c.binary
        );
        assert!(
            run.contains(&command),
            "{}: no `{command}` in\n{run}",
            d.file
        );
        let built = format!("target/release/{} /out/{}", c.binary, c.binary);
        assert!(
            run.contains(&built),
            "{}: the binary is not taken from target/release",
            d.file
        );

        let last = d.final_stage();
        assert!(
            last.base.starts_with("gcr.io/distroless/"),
            "{}: runtime image {} is not minimal",
            d.file,
            last.base
        );
        let copies = last.copies_from("build");
        assert_eq!(copies.len(), 1, "{}: {copies:?}", d.file);
        let (src, dst) = &copies[0];
        assert_eq!(src, &format!("/out/{}", c.binary), "{}", d.file);
        let entrypoint = last.entrypoint().unwrap().expect("an ENTRYPOINT");
        assert_eq!(
            entrypoint,
            std::slice::from_ref(dst),
            "{}: the entrypoint runs something else",
            d.file
        );
        assert!(dst.ends_with(&format!("/{}", c.binary)));
        // The chart passes every flag as args; the image adds none.
        assert_eq!(last.all("CMD").count(), 0, "{}", d.file);
    }
}

#[test]
fn image_users_match_what_the_chart_runs_them_as() {
    let m = rendered();
    for c in &COMPONENTS {
        let (d, _) = dockerfile(c);
        let user = d.final_stage().user().expect("USER").to_string();
        let uid: i64 = user
            .split(':')
            .next()
            .unwrap()
            .parse()
            .expect("a numeric USER");
        let pod = m.of_kind(c.workload).next().unwrap().pod_spec().unwrap();
        let sec = effective_security(pod, container(pod, c.container).unwrap());
        assert_eq!(
            sec.run_as_user,
            Some(uid),
            "{}: chart and image disagree on the user",
            d.file
        );
        match c.dir {
            // runAsNonRoot needs a numeric non-zero USER in the image.
            "controller" => {
                assert!(uid > 0, "{}", d.file);
                assert!(d.final_stage().base.ends_with(":nonroot"), "{}", d.file);
            }
            // Root only for the two capabilities the chart leaves it.
            _ => assert_eq!(uid, 0, "{}", d.file),
        }
    }
}

#[test]
fn exposed_ports_are_the_charts_and_the_binaries_defaults() {
    let m = rendered();
    let controller_help = {
        use clap::CommandFactory;
        ironlb_controller::cli::Args::command()
            .render_long_help()
            .to_string()
    };
    for c in &COMPONENTS {
        let (d, _) = dockerfile(c);
        let exposed = d.final_stage().exposed();
        let pod = m.of_kind(c.workload).next().unwrap().pod_spec().unwrap();
        let ports = container(pod, c.container).unwrap()["ports"]
            .as_array()
            .unwrap()
            .clone();
        let wanted: Vec<String> = ports
            .iter()
            .map(|p| {
                format!(
                    "{}/{}",
                    p["containerPort"].as_i64().unwrap(),
                    p["protocol"].as_str().unwrap().to_ascii_lowercase()
                )
            })
            .collect();
        let mut sorted = exposed.clone();
        sorted.sort();
        let mut wanted_sorted = wanted.clone();
        wanted_sorted.sort();
        assert_eq!(sorted, wanted_sorted, "{}", d.file);
    }
    assert!(
        controller_help.contains("0.0.0.0:7472"),
        "the controller's default admin port moved"
    );
}

#[test]
fn the_documented_build_tags_are_the_charts_default_images() {
    let images: Vec<String> = rendered().images().into_iter().map(|(_, _, i)| i).collect();
    for c in &COMPONENTS {
        let (d, text) = dockerfile(c);
        let line = text
            .lines()
            .find(|l| l.contains("docker build"))
            .unwrap_or_else(|| panic!("{}: no documented docker build command", d.file));
        let words: Vec<&str> = line.trim_start_matches('#').split_whitespace().collect();
        let tag = words
            .windows(2)
            .find(|w| w[0] == "-t")
            .map(|w| w[1])
            .unwrap_or_else(|| panic!("{}: no -t in {line}", d.file));
        assert!(
            images.iter().any(|i| i == tag),
            "{}: {tag} is not among {images:?}",
            d.file
        );
        let file = words
            .windows(2)
            .find(|w| w[0] == "-f")
            .map(|w| w[1])
            .unwrap();
        assert_eq!(file, format!("{}/Dockerfile", c.dir), "{}", d.file);
        assert_eq!(
            words.last(),
            Some(&"."),
            "{}: the context must be the repository root",
            d.file
        );
    }
}

#[test]
fn the_dockerignore_keeps_the_workspace_and_drops_build_output() {
    let text = std::fs::read_to_string(repo_root().join(".dockerignore")).unwrap();
    let patterns: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    for dropped in ["target", ".git", "e2e/.tools"] {
        assert!(patterns.contains(&dropped), ".dockerignore keeps {dropped}");
    }
    // Cargo needs every workspace member's manifest and sources, and the lock file.
    for needed in [
        "Cargo.toml",
        "Cargo.lock",
        "crds",
        "controller",
        "speaker",
        "e2e",
        "e2e/src",
    ] {
        for p in &patterns {
            let p = p.trim_end_matches('/');
            assert!(
                !(p == needed
                    || p == "*"
                    || p == "**"
                    || (p.ends_with("/*") && needed.starts_with(p.trim_end_matches("/*")))),
                ".dockerignore pattern {p:?} drops {needed}"
            );
        }
    }
}
