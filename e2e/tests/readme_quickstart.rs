//! The README's kind quickstart, followed as written, is consistent with the chart and the
//! binaries (names, images, values, namespaces, flags, ports, metrics). Docker and kind cannot
//! run here, so the commands are read from the README (`e2e::chart::readme`) and each fact
//! they rely on is checked where it lives:
//!
//! - the images it builds and loads are the ones the chart deploys with the install command's
//!   values, from Dockerfiles that exist;
//! - every `helm ... --set key=value` the README shows names a key of `values.yaml` and
//!   `values.schema.json`, and `helm template` with those flags succeeds; the release, chart
//!   path and namespace are the chart's;
//! - every YAML document it applies parses, and the API server (the lab's stand-in, with the
//!   chart's CRDs) accepts it in a server-side dry run;
//! - the address it says the Service gets is the pool's first;
//! - the flag tables match `--help` of both binaries both ways (env names, defaults), and every
//!   other flag it mentions exists;
//! - the metric tables match the metrics the sources register both ways (types, labels), and
//!   every metric name it mentions exists.

mod apiserver_common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use apiserver_common::{ApiServerProcess, TestNetns, kubectl, kubectl_ok};
use e2e::chart::helm::{NAMESPACE, RELEASE};
use e2e::chart::readme::{
    HelpFlag, Script, code_tokens, fenced_blocks, help_flags, inline_code, option_values, script,
    section, table_rows, words,
};
use e2e::chart::{Helm, Manifests, bin_dir, chart_dir, repo_root};
use regex::Regex;
use serde_json::Value;

const QUICKSTART: &str = "Quickstart on kind";

fn readme() -> String {
    let path = repo_root().join("README.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn scripts(markdown: &str) -> Vec<Script> {
    fenced_blocks(markdown, "sh")
        .iter()
        .map(|b| script(b).unwrap_or_else(|e| panic!("{e}\n{b}")))
        .collect()
}

fn quickstart_commands(text: &str) -> Vec<Vec<String>> {
    let quick = section(text, QUICKSTART).expect("the quickstart section");
    let commands: Vec<Vec<String>> = scripts(quick)
        .into_iter()
        .flat_map(|s| s.commands)
        .collect();
    assert!(!commands.is_empty(), "no ```sh commands in the quickstart");
    commands
}

fn is(command: &[String], prefix: &[&str]) -> bool {
    command.len() >= prefix.len() && command.iter().zip(prefix).all(|(a, b)| a == b)
}

/// `### title` up to the next `### ` or `## ` heading.
fn subsection<'a>(text: &'a str, title: &str) -> &'a str {
    let marker = format!("### {title}\n");
    let start = text
        .find(&marker)
        .unwrap_or_else(|| panic!("the README has no subsection {title:?}"))
        + marker.len();
    let rest = &text[start..];
    let end = rest
        .find("\n### ")
        .or_else(|| rest.find("\n## "))
        .unwrap_or(rest.len());
    &rest[..end]
}

/// The `--set`, `--set-string`, `-f` and `--values` arguments of a helm command, as
/// `helm template` flags.
fn value_flags(command: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for (flag, short) in [
        ("--set", None),
        ("--set-string", None),
        ("--values", Some("-f")),
    ] {
        for v in option_values(command, flag, short) {
            out.push(flag.to_string());
            out.push(v);
        }
    }
    out
}

/// Whether `path` (`a.b.c`, `a.b[0]`) names a key of values.yaml and of the schema.
fn known_value(values: &serde_yaml::Value, schema: &Value, path: &str) -> Result<(), String> {
    let mut v = values;
    let mut s = schema;
    for part in path.split('.') {
        let key = part.split('[').next().unwrap_or(part);
        v = v
            .get(key)
            .ok_or_else(|| format!("values.yaml has no {key:?} in {path:?}"))?;
        s = s
            .pointer(&format!("/properties/{key}"))
            .ok_or_else(|| format!("values.schema.json has no {key:?} in {path:?}"))?;
        if part.contains('[') {
            v = v.get(0).unwrap_or(v);
            s = s.get("items").unwrap_or(s);
        }
    }
    Ok(())
}

fn render(flags: &[String]) -> Result<Manifests, String> {
    let helm = Helm::locate().map_err(|e| e.to_string())?;
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    helm.render(&flags).map_err(|e| e.to_string())
}

#[test]
fn the_quickstart_builds_loads_and_installs_the_images_the_chart_runs() {
    let text = readme();
    let commands = quickstart_commands(&text);

    // The kind cluster: one name, used by every kind command.
    let names: BTreeSet<String> = commands
        .iter()
        .filter(|c| c.first().map(String::as_str) == Some("kind"))
        .flat_map(|c| option_values(c, "--name", Some("-n")))
        .collect();
    assert_eq!(names.len(), 1, "kind commands name clusters {names:?}");
    assert!(
        commands
            .iter()
            .any(|c| is(c, &["kind", "create", "cluster"]))
    );

    // The install command: the chart's release name, path and namespace.
    let installs: Vec<&Vec<String>> = commands
        .iter()
        .filter(|c| is(c, &["helm", "install"]))
        .collect();
    assert_eq!(installs.len(), 1, "one helm install in the quickstart");
    let install = installs[0];
    assert_eq!(install[2], RELEASE, "{install:?}");
    assert_eq!(
        repo_root().join(&install[3]),
        chart_dir(),
        "the chart path: {install:?}"
    );
    assert_eq!(
        option_values(install, "--namespace", Some("-n")),
        [NAMESPACE],
        "{install:?}"
    );
    assert!(
        install.iter().any(|w| w == "--create-namespace"),
        "the namespace does not exist on a new cluster: {install:?}"
    );
    for c in commands
        .iter()
        .filter(|c| c.first().map(String::as_str) == Some("kubectl"))
    {
        for ns in option_values(c, "--namespace", Some("-n")) {
            assert_eq!(ns, NAMESPACE, "{c:?}");
        }
    }

    // The images built are the ones the chart deploys with the install's values, and all of
    // them are loaded into the cluster.
    let rendered = render(&value_flags(install)).expect("helm template with the install's values");
    let deployed: BTreeMap<String, String> = rendered
        .images()
        .into_iter()
        .map(|(_, container, image)| (container, image))
        .collect();
    let mut built = BTreeMap::new();
    for c in commands.iter().filter(|c| is(c, &["docker", "build"])) {
        let file = option_values(c, "--file", Some("-f"));
        let tags = option_values(c, "--tag", Some("-t"));
        assert!(file.len() == 1 && tags.len() == 1, "{c:?}");
        assert_eq!(
            c.last().map(String::as_str),
            Some("."),
            "builds from the root: {c:?}"
        );
        assert!(repo_root().join(&file[0]).is_file(), "no {}", file[0]);
        let component = file[0].split('/').next().unwrap_or_default().to_string();
        built.insert(component, tags[0].clone());
    }
    assert_eq!(
        built, deployed,
        "docker build tags (by Dockerfile directory) vs the chart's images (by container)"
    );
    let loaded: BTreeSet<String> = commands
        .iter()
        .filter(|c| is(c, &["kind", "load", "docker-image"]))
        .flat_map(|c| c[3..].iter().filter(|w| !w.starts_with('-')).cloned())
        .filter(|w| !names.contains(w))
        .collect();
    let built_set: BTreeSet<String> = built.values().cloned().collect();
    assert_eq!(loaded, built_set, "kind load must load every built image");

    // The test workload: the Service's target port is the port the pods serve.
    let http_port = commands
        .iter()
        .filter(|c| is(c, &["kubectl", "create", "deployment"]))
        .flat_map(|c| option_values(c, "--http-port", None))
        .next()
        .expect("the quickstart deployment's --http-port");
    let target = commands
        .iter()
        .filter(|c| is(c, &["kubectl", "expose"]))
        .flat_map(|c| option_values(c, "--target-port", None))
        .next()
        .expect("kubectl expose --target-port");
    assert_eq!(http_port, target);
}

#[test]
fn the_quickstart_ip_is_the_first_address_of_its_pool() {
    let text = readme();
    let quick = section(&text, QUICKSTART).unwrap();
    let blocks = fenced_blocks(quick, "sh");
    let pool = scripts(quick)
        .into_iter()
        .flat_map(|s| s.heredocs)
        .flat_map(|doc| Manifests::parse(&doc).expect("YAML").objects)
        .find(|o| o.kind() == "IPAddressPool")
        .expect("the quickstart creates a pool");
    let first = pool.0["spec"]["addresses"][0]
        .as_str()
        .expect("an address entry");
    let range = ironlb_crds::address::parse_address_entry(first).expect("a valid entry");
    let ip = range.start().to_string();
    let said = Regex::new(r"EXTERNAL-IP: (\S+)").unwrap();
    let curl = Regex::new(r"curl\s+\S*?https?://([^/:\s]+)").unwrap();
    let mut seen = 0;
    for block in &blocks {
        for cap in said.captures_iter(block).chain(curl.captures_iter(block)) {
            assert_eq!(
                cap[1], ip,
                "the lowest free address of the pool is handed out first"
            );
            seen += 1;
        }
    }
    assert!(
        seen >= 2,
        "the quickstart shows the EXTERNAL-IP and curls it"
    );
}

#[test]
fn every_documented_helm_value_exists_and_renders() {
    let text = readme();
    let values: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(chart_dir().join("values.yaml")).unwrap())
            .unwrap();
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(chart_dir().join("values.schema.json")).unwrap(),
    )
    .unwrap();
    let mut helm_commands: Vec<Vec<String>> = scripts(&text)
        .into_iter()
        .flat_map(|s| s.commands)
        .filter(|c| c.first().map(String::as_str) == Some("helm"))
        .collect();
    // Inline commands and bare `--set ...` hints in the prose.
    for span in inline_code(&text) {
        let Ok(w) = words(&span) else { continue };
        if w.first().map(String::as_str) == Some("helm")
            || w.first().map(String::as_str) == Some("--set")
        {
            helm_commands.push(w);
        }
    }
    let mut checked = 0;
    for command in &helm_commands {
        if is(command, &["helm", "install"]) || is(command, &["helm", "upgrade"]) {
            assert_eq!(command[2], RELEASE, "{command:?}");
            assert_eq!(repo_root().join(&command[3]), chart_dir(), "{command:?}");
            assert_eq!(
                option_values(command, "--namespace", Some("-n")),
                [NAMESPACE],
                "{command:?}"
            );
        }
        let flags = value_flags(command);
        let mut placeholder = false;
        for set in option_values(command, "--set", None) {
            let (path, value) = set
                .split_once('=')
                .unwrap_or_else(|| panic!("--set {set:?} has no value: {command:?}"));
            known_value(&values, &schema, path).unwrap_or_else(|e| panic!("{e}: {command:?}"));
            placeholder |= value.starts_with('<');
            checked += 1;
        }
        // `--set loadBalancerClass=<that class>` is a template for the reader, not a value.
        if !placeholder && !flags.is_empty() {
            render(&flags).unwrap_or_else(|e| panic!("{command:?}:\n{e}"));
        }
    }
    assert!(
        checked >= 3,
        "the README shows --set values: {helm_commands:?}"
    );
}

#[test]
fn every_yaml_document_of_the_readme_is_accepted_by_the_api_server() {
    let text = readme();
    let docs: Vec<String> = scripts(&text)
        .into_iter()
        .flat_map(|s| s.heredocs)
        .collect();
    assert!(!docs.is_empty(), "the README applies YAML");
    let mut objects = Vec::new();
    for doc in &docs {
        let parsed = Manifests::parse(doc).unwrap_or_else(|e| panic!("{e}:\n{doc}"));
        for object in parsed.objects {
            if object.api_version().starts_with("kind.x-k8s.io/") {
                // kind's own configuration, read by `kind create cluster`.
                assert_eq!(object.kind(), "Cluster", "{doc}");
                continue;
            }
            objects.push(object);
        }
    }
    let namespaces: BTreeSet<String> = objects
        .iter()
        .filter_map(|o| o.namespace().map(str::to_string))
        .collect();
    for o in objects
        .iter()
        .filter(|o| o.api_version().starts_with("ironlb.io/"))
    {
        assert_eq!(
            o.namespace(),
            Some(NAMESPACE),
            "{}: the release namespace",
            o.id()
        );
    }
    let pools: BTreeSet<&str> = objects
        .iter()
        .filter(|o| o.kind() == "IPAddressPool")
        .map(|o| o.name())
        .collect();
    for adv in objects.iter().filter(|o| o.kind() == "L2Advertisement") {
        for p in adv.0["spec"]["ipAddressPools"]
            .as_array()
            .into_iter()
            .flatten()
        {
            assert!(
                pools.contains(p.as_str().unwrap_or_default()),
                "{} names pool {p}, which the README does not create",
                adv.id()
            );
        }
    }

    let ns = TestNetns::new("readme");
    let dir = tempfile::Builder::new()
        .prefix("ironlb-readme-")
        .tempdir()
        .unwrap();
    let server = ApiServerProcess::start(&ns, dir.path(), &[]);
    let k = &server.kubeconfig;
    let crds = chart_dir().join("crds");
    kubectl_ok(&ns, k, &["apply", "-f", &crds.display().to_string()], None);
    kubectl_ok(
        &ns,
        k,
        &[
            "wait",
            "--for=condition=Established",
            "--timeout=30s",
            "crd",
            "--all",
        ],
        None,
    );
    for namespace in &namespaces {
        let _ = kubectl(&ns, k, &["create", "namespace", namespace], None);
    }
    for object in &objects {
        let yaml = serde_yaml::to_string(&object.0).unwrap();
        let out = kubectl(
            &ns,
            k,
            &["apply", "--dry-run=server", "-f", "-"],
            Some(&yaml),
        );
        assert!(
            out.status.success(),
            "{} from the README is refused:\n{}\n{yaml}",
            object.id(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The check can fail: a malformed pool is refused the same way.
    let mut bad = objects
        .iter()
        .find(|o| o.kind() == "IPAddressPool")
        .expect("a pool")
        .0
        .clone();
    bad["spec"]["addresses"] = serde_json::json!(["not-an-address"]);
    let out = kubectl(
        &ns,
        k,
        &["apply", "--dry-run=server", "-f", "-"],
        Some(&serde_yaml::to_string(&bad).unwrap()),
    );
    assert!(!out.status.success(), "a malformed pool was accepted");
}

fn help(binary: &str, args: &[&str]) -> String {
    let path = bin_dir().join(binary);
    let out = Command::new(&path)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e} (build it first)", path.display()));
    assert!(out.status.success(), "{binary} {args:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Compares one flag table with `--help`, both ways.
fn check_flag_table(table: &str, binary: &str, help: &BTreeMap<String, HelpFlag>) -> Vec<String> {
    let mut problems = Vec::new();
    let mut documented = BTreeSet::new();
    for row in table_rows(table).iter().skip(1) {
        let flags: Vec<String> = code_tokens(&row[0])
            .into_iter()
            .filter(|t| t.starts_with("--"))
            .collect();
        let envs = row.get(1).map(|c| code_tokens(c)).unwrap_or_default();
        let defaults = row.get(2).map(|c| code_tokens(c)).unwrap_or_default();
        for (i, flag) in flags.iter().enumerate() {
            documented.insert(flag.clone());
            let Some(h) = help.get(flag) else {
                problems.push(format!("{binary}: {flag} is documented but does not exist"));
                continue;
            };
            // A row may document several flags with one env and default each, in order.
            if let Some(env) = envs.get(i).filter(|_| envs.len() == flags.len())
                && h.env.as_deref() != Some(env.as_str())
            {
                problems.push(format!(
                    "{binary}: {flag} env {env}, --help says {:?}",
                    h.env
                ));
            }
            if let (Some(default), Some(actual)) = (
                defaults.get(i).filter(|_| defaults.len() == flags.len()),
                &h.default,
            ) && default != actual
            {
                problems.push(format!(
                    "{binary}: {flag} default {default}, --help says {actual}"
                ));
            }
        }
    }
    for flag in help.keys() {
        if !["--help", "--version"].contains(&flag.as_str()) && !documented.contains(flag) {
            problems.push(format!(
                "{binary}: {flag} is missing from the README's table"
            ));
        }
    }
    problems
}

#[test]
fn documented_flags_match_both_binaries_help() {
    let text = readme();
    let reference = section(&text, "Reference").expect("a Reference section");
    let controller = help_flags(&help("ironlb-controller", &["--help"]));
    let speaker = help_flags(&help("ironlb-speaker", &["--help"]));
    assert!(controller.contains_key("--lease-name") && speaker.contains_key("--node-name"));
    let mut problems = check_flag_table(
        subsection(reference, "`ironlb-controller` flags"),
        "ironlb-controller",
        &controller,
    );
    problems.extend(check_flag_table(
        subsection(reference, "`ironlb-speaker` flags"),
        "ironlb-speaker",
        &speaker,
    ));

    // Flags named anywhere else in the prose: ironlb's binaries', the lab's (`lab up`), or
    // helm's --set (whose values the test above checks). Commands of other tools are theirs.
    let lab = help_flags(&help("lab", &["up", "--help"]));
    for span in inline_code(&text) {
        let Ok(w) = words(&span) else { continue };
        if !w.first().is_some_and(|f| f.starts_with("--")) {
            continue;
        }
        for flag in w.iter().filter(|x| x.starts_with("--")) {
            let name = flag.split('=').next().unwrap_or(flag);
            let known = controller.contains_key(name)
                || speaker.contains_key(name)
                || lab.contains_key(name)
                || name == "--set";
            if !known {
                problems.push(format!("`{span}`: {name} is no flag of ironlb's binaries"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// `name -> (type, labels)` of every metric a metrics.rs registers, read from the source.
fn source_metrics(file: &Path) -> BTreeMap<String, (String, BTreeSet<String>)> {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let ctor =
        Regex::new(r#"(\w+)::(?:new|with_opts)\(\s*(?:\w*Opts::new\(\s*)?"(ironlb_[a-z0-9_]+)""#)
            .unwrap();
    let labels = Regex::new(r#"&\[((?:\s*"[a-z_]+"\s*,?)+)\]"#).unwrap();
    let quoted = Regex::new(r#""([a-z_]+)""#).unwrap();
    let found: Vec<_> = ctor.captures_iter(&text).collect();
    let mut out = BTreeMap::new();
    for (i, cap) in found.iter().enumerate() {
        let whole = cap.get(0).unwrap();
        let end = found
            .get(i + 1)
            .map(|n| n.get(0).unwrap().start())
            .unwrap_or(text.len());
        // The constructor ends at its `)?`; labels after it belong to other code.
        let window = &text[whole.end()..end];
        let window = &window[..window.find(")?").unwrap_or(window.len())];
        let names: BTreeSet<String> = labels
            .captures(window)
            .map(|l| {
                quoted
                    .captures_iter(&l[1])
                    .map(|q| q[1].to_string())
                    .collect()
            })
            .unwrap_or_default();
        let kind = &cap[1];
        let kind = if kind.contains("Histogram") {
            "histogram"
        } else if kind.contains("Counter") {
            "counter"
        } else if kind.contains("Gauge") {
            "gauge"
        } else {
            kind
        };
        out.insert(cap[2].to_string(), (kind.to_string(), names));
    }
    out
}

#[test]
fn documented_metrics_match_what_the_binaries_register() {
    let text = readme();
    let mut defined = source_metrics(&repo_root().join("controller/src/metrics.rs"));
    defined.extend(source_metrics(&repo_root().join("speaker/src/metrics.rs")));
    assert!(
        defined.contains_key("ironlb_allocator_addresses_in_use")
            && defined.contains_key("ironlb_speaker_announced"),
        "the metric sources were not understood: {defined:?}"
    );
    let metrics = subsection(section(&text, "Reference").unwrap(), "Metrics");
    let mut problems = Vec::new();
    let mut documented = BTreeSet::new();
    for row in table_rows(metrics) {
        let name = code_tokens(&row[0]);
        let Some(name) = name.first().filter(|n| n.starts_with("ironlb_")) else {
            continue;
        };
        documented.insert(name.clone());
        let Some((kind, labels)) = defined.get(name) else {
            problems.push(format!("{name} is documented but not registered"));
            continue;
        };
        if row.get(1) != Some(kind) {
            problems.push(format!(
                "{name}: documented as {:?}, registered as {kind}",
                row.get(1)
            ));
        }
        let doc_labels: BTreeSet<String> = row
            .get(2)
            .map(|c| code_tokens(c))
            .unwrap_or_default()
            .into_iter()
            .collect();
        if &doc_labels != labels {
            problems.push(format!(
                "{name}: documented labels {doc_labels:?}, registered {labels:?}"
            ));
        }
    }
    for name in defined.keys() {
        if !documented.contains(name) {
            problems.push(format!(
                "{name} is registered but missing from the README's tables"
            ));
        }
    }
    // Any other mention; `ironlb_controller=debug` in a log filter names a crate, not a metric.
    let crates = ["ironlb_controller", "ironlb_speaker", "ironlb_crds"];
    let mention = Regex::new(r"ironlb_[a-z0-9_]+").unwrap();
    for m in mention.find_iter(&text) {
        let name = m.as_str();
        if !crates.contains(&name) && !defined.contains_key(name) {
            problems.push(format!(
                "the README mentions {name}, which no binary registers"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
