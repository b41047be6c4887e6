//! The Helm chart, rendered by the real helm: lint, templates with default and all-features
//! values, the security properties of both workloads, configurable images, the values schema,
//! the CRDs shipped verbatim, and the flags the chart passes being ones the binaries accept.

use std::collections::BTreeSet;

use clap::Parser;
use e2e::chart::manifest::{container, containers, effective_security, flags};
use e2e::chart::{Helm, Manifests, all_features_values, bin_dir, chart_dir};
use serde_json::Value;

fn helm() -> Helm {
    Helm::locate().expect("helm (run e2e/scripts/setup)")
}

fn all_features() -> String {
    all_features_values().display().to_string()
}

/// Renders with default values and with the all-features file.
fn both_renderings() -> Vec<(&'static str, Manifests)> {
    let h = helm();
    vec![
        ("default values", h.render(&[]).expect("default render")),
        (
            "all-features values",
            h.render(&["-f", &all_features()])
                .expect("all-features render"),
        ),
    ]
}

fn controller_pod(m: &Manifests) -> &Value {
    m.of_kind("Deployment")
        .next()
        .expect("a controller Deployment")
        .pod_spec()
        .expect("a pod template")
}

fn speaker_pod(m: &Manifests) -> &Value {
    m.of_kind("DaemonSet")
        .next()
        .expect("a speaker DaemonSet")
        .pod_spec()
        .expect("a pod template")
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

/// The value of `--flag=value` in a container's args.
fn arg(container: &Value, flag: &str) -> Option<String> {
    let prefix = format!("{flag}=");
    strings(container.get("args"))
        .into_iter()
        .find_map(|a| a.strip_prefix(&prefix).map(str::to_string))
}

#[test]
fn lint_strict_passes_with_default_and_all_features_values() {
    let h = helm();
    h.lint_strict(&[])
        .expect("helm lint --strict (default values)");
    h.lint_strict(&["-f", &all_features()])
        .expect("helm lint --strict (all-features values)");
}

#[test]
fn templates_render_every_expected_object() {
    let h = helm();
    let default = h.render(&[]).unwrap();
    let kinds = |m: &Manifests| -> BTreeSet<String> {
        m.objects.iter().map(|o| o.kind().to_string()).collect()
    };
    let base: BTreeSet<String> = [
        "ClusterRole",
        "ClusterRoleBinding",
        "DaemonSet",
        "Deployment",
        "PodDisruptionBudget",
        "Role",
        "RoleBinding",
        "Secret",
        "ServiceAccount",
    ]
    .map(String::from)
    .into();
    assert_eq!(kinds(&default), base, "default values");

    let all = h.render(&["-f", &all_features()]).unwrap();
    let mut expected = base.clone();
    expected.extend(
        [
            "ConfigMap",
            "IPAddressPool",
            "L2Advertisement",
            "PodMonitor",
            "PrometheusRule",
            "Service",
            "ServiceMonitor",
        ]
        .map(String::from),
    );
    assert_eq!(kinds(&all), expected, "all-features values");
    // Monitors and rules for both components, in the namespaces asked for.
    assert_eq!(all.of_kind("ServiceMonitor").count(), 2);
    assert_eq!(all.of_kind("PodMonitor").count(), 2);
    assert!(
        all.of_kind("PodMonitor")
            .all(|o| o.namespace() == Some("monitoring"))
    );
    let dashboard = all.of_kind("ConfigMap").next().unwrap();
    assert_eq!(dashboard.namespace(), Some("monitoring"));
    let json = dashboard
        .0
        .pointer("/data/ironlb.json")
        .and_then(Value::as_str)
        .unwrap();
    serde_json::from_str::<Value>(json).expect("the dashboard is valid JSON");

    // Every namespaced object goes to the release namespace unless a value says otherwise.
    for o in &default.objects {
        if !o.kind().starts_with("Cluster") {
            assert_eq!(o.namespace(), Some("ironlb-system"), "{}", o.id());
        }
    }
}

#[test]
fn the_speaker_has_only_net_raw_and_net_admin_and_the_host_network() {
    for (what, m) in both_renderings() {
        let pod = speaker_pod(&m);
        assert_eq!(pod.get("hostNetwork"), Some(&Value::Bool(true)), "{what}");
        assert_eq!(
            pod.get("dnsPolicy").and_then(Value::as_str),
            Some("ClusterFirstWithHostNet"),
            "{what}: a hostNetwork pod needs this to resolve Service names"
        );
        for forbidden in ["hostPID", "hostIPC"] {
            assert_ne!(
                pod.get(forbidden),
                Some(&Value::Bool(true)),
                "{what}: {forbidden}"
            );
        }
        let all = containers(pod);
        assert_eq!(
            all.len(),
            1,
            "{what}: one container, no helpers with other rights"
        );
        let sec = effective_security(pod, all[0]);
        assert_eq!(
            sec.capabilities_add,
            BTreeSet::from(["NET_ADMIN".to_string(), "NET_RAW".to_string()]),
            "{what}"
        );
        assert_eq!(
            sec.capabilities_drop,
            BTreeSet::from(["ALL".to_string()]),
            "{what}"
        );
        assert!(!sec.privileged, "{what}: privileged");
        assert!(
            !sec.allow_privilege_escalation,
            "{what}: privilege escalation"
        );
        assert!(
            sec.read_only_root_filesystem,
            "{what}: writable root filesystem"
        );
        assert_eq!(
            sec.seccomp_profile.as_deref(),
            Some("RuntimeDefault"),
            "{what}"
        );
        // The only volume is the membership key, read-only.
        let volumes = pod.get("volumes").and_then(Value::as_array).unwrap();
        assert_eq!(volumes.len(), 1, "{what}");
        assert!(
            volumes[0].get("hostPath").is_none(),
            "{what}: no host paths"
        );
        assert!(volumes[0].pointer("/secret/secretName").is_some(), "{what}");

        // Runs on control-plane nodes (kind's only node is one) and hands over gracefully.
        let tolerates_control_plane = pod
            .get("tolerations")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(|t| {
                (t.get("key").and_then(Value::as_str)
                    == Some("node-role.kubernetes.io/control-plane")
                    || t.get("key").is_none())
                    && t.get("operator").and_then(Value::as_str) == Some("Exists")
            });
        assert!(tolerates_control_plane, "{what}");
        let grace = pod
            .get("terminationGracePeriodSeconds")
            .and_then(Value::as_i64)
            .unwrap();
        assert!(
            grace >= 5,
            "{what}: {grace}s is too short for a ~3 s handover"
        );

        let c = container(pod, "speaker").unwrap();
        assert_eq!(
            c.pointer("/livenessProbe/httpGet/path")
                .and_then(Value::as_str),
            Some("/healthz"),
            "{what}"
        );
        assert_eq!(
            c.pointer("/readinessProbe/httpGet/path")
                .and_then(Value::as_str),
            Some("/readyz"),
            "{what}"
        );
        let node_name = c
            .get("env")
            .and_then(Value::as_array)
            .unwrap()
            .iter()
            .find(|e| e.get("name").and_then(Value::as_str) == Some("NODE_NAME"))
            .and_then(|e| e.pointer("/valueFrom/fieldRef/fieldPath"))
            .and_then(Value::as_str);
        assert_eq!(node_name, Some("spec.nodeName"), "{what}");
    }
}

#[test]
fn the_controller_runs_as_non_root_with_a_read_only_root_filesystem() {
    for (what, m) in both_renderings() {
        let deployment = m.of_kind("Deployment").next().unwrap();
        let replicas = deployment
            .0
            .pointer("/spec/replicas")
            .and_then(Value::as_i64);
        assert!(
            replicas >= Some(2),
            "{what}: {replicas:?} replicas; leader election wants 2+"
        );
        let pod = controller_pod(&m);
        assert_ne!(pod.get("hostNetwork"), Some(&Value::Bool(true)), "{what}");
        for c in containers(pod) {
            let sec = effective_security(pod, c);
            assert!(sec.run_as_non_root, "{what}: runAsNonRoot");
            assert!(
                sec.run_as_user.is_some_and(|u| u > 0),
                "{what}: {:?}",
                sec.run_as_user
            );
            assert!(
                sec.read_only_root_filesystem,
                "{what}: readOnlyRootFilesystem"
            );
            assert!(!sec.allow_privilege_escalation, "{what}");
            assert!(!sec.privileged, "{what}");
            assert!(
                sec.capabilities_add.is_empty(),
                "{what}: {:?}",
                sec.capabilities_add
            );
            assert_eq!(
                sec.capabilities_drop,
                BTreeSet::from(["ALL".to_string()]),
                "{what}"
            );
            assert_eq!(
                sec.seccomp_profile.as_deref(),
                Some("RuntimeDefault"),
                "{what}"
            );
        }
        let c = container(pod, "controller").unwrap();
        for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
            assert_eq!(
                c.pointer(&format!("/{probe}/httpGet/path"))
                    .and_then(Value::as_str),
                Some(path),
                "{what}"
            );
            assert_eq!(
                c.pointer(&format!("/{probe}/httpGet/port"))
                    .and_then(Value::as_str),
                Some("metrics"),
                "{what}"
            );
        }
        for kind in ["requests", "limits"] {
            assert!(
                c.pointer(&format!("/resources/{kind}/memory")).is_some(),
                "{what}: resources.{kind}.memory"
            );
        }
        let identity = c
            .get("env")
            .and_then(Value::as_array)
            .unwrap()
            .iter()
            .find(|e| e.get("name").and_then(Value::as_str) == Some("POD_NAME"))
            .and_then(|e| e.pointer("/valueFrom/fieldRef/fieldPath"))
            .and_then(Value::as_str);
        assert_eq!(
            identity,
            Some("metadata.name"),
            "{what}: the Lease identity"
        );
    }
}

#[test]
fn every_image_reference_is_configurable() {
    let h = helm();
    let defaults: BTreeSet<String> = h
        .render(&[])
        .unwrap()
        .images()
        .into_iter()
        .map(|(_, _, image)| image)
        .collect();
    assert_eq!(
        defaults,
        BTreeSet::from([
            "ghcr.io/ironlb/ironlb-controller:0.1.0".to_string(),
            "ghcr.io/ironlb/ironlb-speaker:0.1.0".to_string(),
        ])
    );

    let overridden = h
        .render(&[
            "--set=controller.image.registry=registry.test:5000",
            "--set=controller.image.repository=team/ctl",
            "--set=controller.image.tag=t1",
            "--set=controller.image.pullPolicy=Never",
            "--set=speaker.image.registry=",
            "--set=speaker.image.repository=spk",
            "--set=speaker.image.digest=sha256:1111111111111111111111111111111111111111111111111111111111111111",
            "--set=speaker.image.pullPolicy=Always",
        ])
        .unwrap();
    let pull = |pod: &Value| -> Vec<(String, String)> {
        containers(pod)
            .into_iter()
            .map(|c| {
                (
                    c["image"].as_str().unwrap_or("").to_string(),
                    c["imagePullPolicy"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    };
    assert_eq!(
        pull(controller_pod(&overridden)),
        [(
            "registry.test:5000/team/ctl:t1".to_string(),
            "Never".to_string()
        )]
    );
    assert_eq!(
        pull(speaker_pod(&overridden)),
        [(
            "spk@sha256:1111111111111111111111111111111111111111111111111111111111111111"
                .to_string(),
            "Always".to_string()
        )]
    );
    // No container keeps a default image: every reference comes from values.
    for (owner, name, image) in overridden.images() {
        assert!(
            !defaults.contains(&image),
            "{owner} {name} still uses {image}"
        );
    }

    // A mirror for everything at once.
    let mirrored = h
        .render(&["--set=global.imageRegistry=mirror.test"])
        .unwrap();
    for (owner, name, image) in mirrored.images() {
        assert!(
            image.starts_with("mirror.test/ironlb/"),
            "{owner} {name}: {image}"
        );
    }
    let secrets = h
        .render(&["--set=imagePullSecrets[0].name=regcred"])
        .unwrap();
    for w in secrets.workloads() {
        assert_eq!(
            w.pod_spec().unwrap().pointer("/imagePullSecrets/0/name"),
            Some(&Value::from("regcred")),
            "{}",
            w.id()
        );
    }
}

#[test]
fn the_values_schema_rejects_wrong_types_and_unknown_keys() {
    let h = helm();
    let refused = |args: &[&str], expect: &str| {
        let err = h
            .template(args)
            .expect_err(&format!("{args:?} was accepted"));
        let text = err.to_string();
        assert!(text.contains(expect), "{args:?}: {text}");
        // lint applies the schema too.
        assert!(h.lint_strict(args).is_err(), "helm lint accepted {args:?}");
    };
    refused(&["--set", "notAValue=1"], "notAValue");
    refused(&["--set", "controller.replicaCount=two"], "replicaCount");
    refused(&["--set", "controller.replicaCout=2"], "replicaCout");
    refused(&["--set", "ipMode=Direct"], "ipMode");
    refused(&["--set", "logFormat=xml"], "logFormat");
    refused(&["--set", "speaker.memberlist.port=70000"], "port");
    refused(
        &["--set", "speaker.terminationGracePeriodSeconds=1"],
        "terminationGracePeriodSeconds",
    );
    refused(
        &["--set", "controller.image.pullPolicy=Sometimes"],
        "pullPolicy",
    );
    refused(&["--set", "controller.image.digest=latest"], "digest");
    refused(
        &["--set", "controller.leaderElection.leaseDuration=soon"],
        "leaseDuration",
    );
    refused(
        &["--set", "metrics.serviceMonitor.interval=often"],
        "interval",
    );
    refused(&["--set", "controller.extraArgs[0]=no-dashes"], "extraArgs");
    refused(&["--set", "quickstart.enabled=true"], "addresses");
    refused(
        &[
            "--set",
            "metrics.prometheusRule.poolUsage.thresholds[0].percent=150",
        ],
        "percent",
    );
    // Kubernetes-shaped values pass through.
    h.template(&[
        "--set",
        "controller.resources.requests.cpu=1",
        "--set",
        "speaker.affinity.nodeAffinity.x=y",
    ])
    .expect("free-form Kubernetes fields are accepted");
}

#[test]
fn crds_are_shipped_verbatim_and_never_templated() {
    let dir = chart_dir().join("crds");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert_eq!(files.len(), 3, "{files:?}");
    let with_crds = helm().template(&["--include-crds"]).unwrap();
    let without = helm().template(&[]).unwrap();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        assert!(
            !text.contains("{{"),
            "{} holds template syntax",
            f.display()
        );
        // helm copies crds/ files byte for byte (crds/tests checks they equal crdgen's output).
        let body = text.trim_end();
        assert!(
            with_crds.contains(body),
            "{} is not in the output verbatim",
            f.display()
        );
    }
    assert!(!without.contains("kind: CustomResourceDefinition"));
    for t in std::fs::read_dir(chart_dir().join("templates")).unwrap() {
        let text = std::fs::read_to_string(t.unwrap().path()).unwrap();
        assert!(
            !text.contains("CustomResourceDefinition"),
            "a template makes CRDs"
        );
    }
}

#[test]
fn the_membership_key_is_generated_and_an_existing_secret_can_replace_it() {
    let h = helm();
    let key = |m: &Manifests| -> String {
        let secret = m.get("Secret", "ironlb-memberlist").unwrap();
        let b64 = secret
            .0
            .pointer("/data/key")
            .and_then(Value::as_str)
            .unwrap();
        // Standard base64 read with the URL-safe decoder.
        let bytes = e2e::apiserver::base64::decode_url(&b64.replace('+', "-").replace('/', "_"))
            .expect("base64");
        String::from_utf8(bytes).unwrap()
    };
    let (a, b) = (h.render(&[]).unwrap(), h.render(&[]).unwrap());
    let (ka, kb) = (key(&a), key(&b));
    assert_eq!(ka.len(), 64);
    assert!(ka.chars().all(|c| c.is_ascii_alphanumeric()));
    // Without a cluster to look it up in, each rendering draws a new key.
    assert_ne!(ka, kb);
    let secret_ref = |m: &Manifests| {
        speaker_pod(m)
            .pointer("/volumes/0/secret/secretName")
            .and_then(Value::as_str)
            .unwrap()
            .to_string()
    };
    assert_eq!(secret_ref(&a), "ironlb-memberlist");

    let own = h
        .render(&["--set=speaker.memberlist.existingSecret=my-key"])
        .unwrap();
    assert_eq!(own.of_kind("Secret").count(), 0);
    assert_eq!(secret_ref(&own), "my-key");
}

#[test]
fn the_leader_lease_rule_follows_the_lease_name() {
    for (what, m) in both_renderings() {
        let c = container(controller_pod(&m), "controller").unwrap();
        let lease = arg(c, "--lease-name").expect("--lease-name");
        let role = m
            .of_kind("Role")
            .find(|r| r.name().ends_with("-controller"))
            .unwrap();
        let names: Vec<String> = role.0["rules"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| strings(r.get("resourceNames")))
            .collect();
        assert_eq!(names, [lease], "{what}");
    }
}

#[test]
fn the_controller_accepts_every_flag_the_chart_passes() {
    for (what, m) in both_renderings() {
        let c = container(controller_pod(&m), "controller").unwrap();
        let args = strings(c.get("args"));
        let parsed = ironlb_controller::cli::Args::try_parse_from(
            std::iter::once("ironlb-controller".to_string()).chain(args.clone()),
        )
        .unwrap_or_else(|e| panic!("{what}: {args:?}: {e}"));
        let settings = parsed
            .settings("pod")
            .unwrap_or_else(|e| panic!("{what}: {args:?}: {e}"));
        assert_eq!(settings.namespace, "ironlb-system", "{what}");
        assert_eq!(settings.admin_addr.port(), 7472, "{what}");
    }
    // The lease timings must keep their order; the binary refuses the chart otherwise.
    let bad = helm()
        .render(&["--set=controller.leaderElection.renewDeadline=20s"])
        .unwrap();
    let args = strings(
        container(controller_pod(&bad), "controller")
            .unwrap()
            .get("args"),
    );
    let parsed = ironlb_controller::cli::Args::try_parse_from(
        std::iter::once("ironlb-controller".to_string()).chain(args),
    )
    .unwrap();
    assert!(parsed.settings("pod").is_err());
}

/// The speaker's `--help`, or `None` while the binary is still a placeholder.
fn speaker_help() -> Option<String> {
    let bin = bin_dir().join("ironlb-speaker");
    let out = std::process::Command::new(&bin)
        .arg("--help")
        .output()
        .ok()?;
    let help = String::from_utf8_lossy(&out.stdout).into_owned();
    help.contains("--namespace").then_some(help)
}

#[test]
fn the_speaker_knows_every_flag_and_variable_the_chart_passes() {
    let Some(help) = speaker_help() else {
        eprintln!(
            "NOT CHECKED: {} is missing or a placeholder (its --help lists no --namespace); build it with cargo build --workspace --bins",
            bin_dir().join("ironlb-speaker").display()
        );
        return;
    };
    for (what, m) in both_renderings() {
        let c = container(speaker_pod(&m), "speaker").unwrap();
        for flag in flags(c) {
            assert!(
                help.contains(&flag),
                "{what}: ironlb-speaker --help lacks {flag}"
            );
        }
        assert!(
            help.contains("NODE_NAME"),
            "the speaker does not read NODE_NAME"
        );
    }
}

#[test]
fn ports_agree_between_flags_container_ports_and_probes() {
    for (what, m) in both_renderings() {
        for (pod, name) in [
            (controller_pod(&m), "controller"),
            (speaker_pod(&m), "speaker"),
        ] {
            let c = container(pod, name).unwrap();
            let admin = arg(c, "--admin-addr").unwrap();
            let port: i64 = admin.rsplit(':').next().unwrap().parse().unwrap();
            let metrics = c["ports"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == "metrics")
                .unwrap();
            assert_eq!(
                metrics["containerPort"].as_i64(),
                Some(port),
                "{what} {name}"
            );
            assert_eq!(metrics["protocol"], "TCP");
        }
        let speaker = container(speaker_pod(&m), "speaker").unwrap();
        let member: i64 = arg(speaker, "--membership-port").unwrap().parse().unwrap();
        let udp = speaker["ports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["protocol"] == "UDP")
            .unwrap();
        assert_eq!(udp["containerPort"].as_i64(), Some(member), "{what}");
        // The key file flag names the mounted Secret.
        let key_file = arg(speaker, "--membership-key-file").unwrap();
        let mount = speaker
            .pointer("/volumeMounts/0/mountPath")
            .and_then(Value::as_str)
            .unwrap();
        assert!(
            key_file.starts_with(&format!("{mount}/")),
            "{what}: {key_file} vs {mount}"
        );
    }
}

#[test]
fn the_quickstart_pool_and_advertisement_come_from_values() {
    let m = helm()
        .render(&[
            "--set=quickstart.enabled=true",
            "--set=quickstart.pool.addresses={192.0.2.240-192.0.2.250,2001:db8::/120}",
        ])
        .unwrap();
    let pool = m.get("IPAddressPool", "default").unwrap();
    assert_eq!(
        strings(pool.0.pointer("/spec/addresses")),
        ["192.0.2.240-192.0.2.250", "2001:db8::/120"]
    );
    assert_eq!(pool.0.pointer("/spec/autoAssign"), Some(&Value::Bool(true)));
    let adv = m.get("L2Advertisement", "default").unwrap();
    assert_eq!(strings(adv.0.pointer("/spec/ipAddressPools")), ["default"]);
    assert!(
        helm()
            .render(&[])
            .unwrap()
            .of_kind("IPAddressPool")
            .next()
            .is_none()
    );
}

#[test]
fn the_notes_tell_the_next_steps() {
    let notes = helm()
        .run(
            &[
                "install",
                "ironlb",
                &chart_dir().display().to_string(),
                "--namespace",
                "ironlb-system",
                "--dry-run=client",
            ],
            None,
        )
        .unwrap();
    for needle in [
        "kind: IPAddressPool",
        "namespace: ironlb-system",
        "kubectl expose deployment web --type=LoadBalancer --port=80",
        "kubectl get servicel2statuses -A",
        "port 7472",
    ] {
        assert!(notes.contains(needle), "NOTES lack {needle:?}:\n{notes}");
    }
}

#[test]
fn extra_args_add_flags_or_replace_the_charts_own() {
    let m = helm()
        .render(&[
            "--set=controller.extraArgs={--pool-status-interval=9s,--ip-mode=VIP}",
            "--set=speaker.extraArgs={--log-format=json}",
        ])
        .unwrap();
    let args = strings(
        container(controller_pod(&m), "controller")
            .unwrap()
            .get("args"),
    );
    let named = |prefix: &str| {
        args.iter()
            .filter(|a| a.starts_with(prefix))
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(
        named("--pool-status-interval"),
        ["--pool-status-interval=9s"]
    );
    assert_eq!(named("--ip-mode"), ["--ip-mode=VIP"]);
    assert_eq!(named("--lease-name"), ["--lease-name=ironlb-controller"]);
    let speaker = strings(container(speaker_pod(&m), "speaker").unwrap().get("args"));
    assert_eq!(
        speaker
            .iter()
            .filter(|a| a.starts_with("--log-format"))
            .collect::<Vec<_>>(),
        ["--log-format=json"]
    );
}
