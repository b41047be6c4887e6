//! Just enough of the Deployment controller for `kubectl create deployment` and
//! `kubectl expose deployment` to work in the lab: pods are created from the template and
//! owned by the Deployment (no ReplicaSet layer), scaled to `spec.replicas`, replaced when the
//! template changes (new pods first; old ones go once the new ones are ready), and the
//! Deployment's status counts them. Pure: it decides, the agent acts.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use super::pods::{is_ready, is_terminal, is_terminating};

pub const TEMPLATE_HASH_LABEL: &str = "pod-template-hash";
/// Kubernetes' alphabet for generated name suffixes (no vowels, no confusable digits).
const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// A stable 10-character hash of the pod template, as a label value.
pub fn template_hash(deployment: &Deployment) -> String {
    let template = &deployment.spec.template;
    let text = serde_json::to_string(&template).unwrap_or_default();
    // FNV-1a: stable across runs and processes (std's hasher is randomly seeded).
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (0..10)
        .map(|i| ALPHABET[((h >> (i * 6)) % ALPHABET.len() as u64) as usize] as char)
        .collect()
}

/// A generated-name suffix from random bytes.
pub fn suffix(random: [u8; 5]) -> String {
    random
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

pub fn owned_by(pod: &Pod, deployment: &Deployment) -> bool {
    let uid = deployment.metadata.uid.as_deref();
    uid.is_some()
        && pod
            .metadata
            .owner_references
            .iter()
            .flatten()
            .any(|o| o.controller == Some(true) && Some(o.uid.as_str()) == uid)
}

fn hash_of(pod: &Pod) -> Option<&str> {
    pod.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(TEMPLATE_HASH_LABEL))
        .map(String::as_str)
}

/// What the Deployment needs done now.
#[derive(Debug, Default, PartialEq)]
pub struct DeploymentPlan {
    /// Pods to create (names already generated).
    pub create: Vec<Pod>,
    /// Pods to delete, by name.
    pub delete: Vec<String>,
    pub status: Option<DeploymentStatus>,
}

/// Plans one Deployment. `pending` counts pods created but not yet seen in `pods`;
/// `random` supplies name suffixes.
pub fn plan(
    deployment: &Deployment,
    pods: &[&Pod],
    pending: usize,
    mut random: impl FnMut() -> [u8; 5],
) -> DeploymentPlan {
    let mut out = DeploymentPlan::default();
    let spec = &deployment.spec;
    if deployment.metadata.deletion_timestamp.is_some() {
        return out;
    }
    let name = deployment.metadata.name.clone().unwrap_or_default();
    let replicas = spec.replicas.unwrap_or(1).max(0) as usize;
    let hash = template_hash(deployment);

    let owned: Vec<&Pod> = pods
        .iter()
        .copied()
        .filter(|p| owned_by(p, deployment) && !is_terminating(p) && !is_terminal(p))
        .collect();
    let (mut current, old): (Vec<&Pod>, Vec<&Pod>) = owned
        .iter()
        .partition(|p| hash_of(p) == Some(hash.as_str()));
    let current_ready = current.iter().filter(|p| is_ready(p)).count();

    let have = current.len() + pending;
    if have < replicas {
        for _ in have..replicas {
            out.create
                .push(new_pod(deployment, &name, &hash, &suffix(random())));
        }
    } else if current.len() > replicas {
        // Scale down: not-ready pods first, then the newest names.
        current.sort_by_key(|p| (is_ready(p), std::cmp::Reverse(p.metadata.name.clone())));
        let extra = current.len() - replicas;
        out.delete.extend(
            current
                .iter()
                .take(extra)
                .filter_map(|p| p.metadata.name.clone()),
        );
    }
    if current_ready >= replicas {
        out.delete
            .extend(old.iter().filter_map(|p| p.metadata.name.clone()));
    }

    let ready_all = owned.iter().filter(|p| is_ready(p)).count() as i32;
    let available = current_ready.min(replicas) as i32;
    let status = DeploymentStatus {
        observed_generation: deployment.metadata.generation,
        replicas: Some(owned.len() as i32),
        updated_replicas: Some(current.len() as i32),
        ready_replicas: Some(ready_all),
        available_replicas: Some(available),
        unavailable_replicas: Some((replicas as i32 - available).max(0)),
        conditions: Some(vec![DeploymentCondition {
            type_: Some("Available".into()),
            status: Some(
                if available as usize >= replicas {
                    "True"
                } else {
                    "False"
                }
                .into(),
            ),
            reason: Some(
                if available as usize >= replicas {
                    "MinimumReplicasAvailable"
                } else {
                    "MinimumReplicasUnavailable"
                }
                .into(),
            ),
            ..Default::default()
        }]),
        ..Default::default()
    };
    let live = deployment.status.as_ref();
    let changed = live.map(|s| {
        (
            s.observed_generation,
            s.replicas,
            s.updated_replicas,
            s.ready_replicas,
            s.available_replicas,
        )
    }) != Some((
        status.observed_generation,
        status.replicas,
        status.updated_replicas,
        status.ready_replicas,
        status.available_replicas,
    ));
    if changed {
        out.status = Some(status);
    }
    out
}

fn new_pod(deployment: &Deployment, name: &str, hash: &str, suffix: &str) -> Pod {
    let template = deployment.spec.template.clone();
    let mut labels: BTreeMap<String, String> = template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    labels.insert(TEMPLATE_HASH_LABEL.into(), hash.into());
    Pod {
        metadata: ObjectMeta {
            name: Some(format!("{name}-{hash}-{suffix}")),
            namespace: deployment.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: template
                .metadata
                .as_ref()
                .and_then(|m| m.annotations.clone()),
            owner_references: Some(vec![OwnerReference {
                api_version: "apps/v1".into(),
                kind: "Deployment".into(),
                name: name.into(),
                uid: deployment.metadata.uid.clone().unwrap_or_default(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            ..Default::default()
        },
        spec: template.spec,
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::DeploymentSpec;
    use k8s_openapi::api::core::v1::{
        Container, PodCondition, PodSpec, PodStatus, PodTemplateSpec,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

    fn mk_deployment(replicas: i32, image: &str) -> Deployment {
        let labels = BTreeMap::from([("app".to_string(), "web".to_string())]);
        Deployment {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("default".into()),
                uid: Some("dep-uid".into()),
                generation: Some(1),
                ..Default::default()
            },
            spec: DeploymentSpec {
                replicas: Some(replicas),
                selector: LabelSelector {
                    match_labels: Some(labels.clone()),
                    ..Default::default()
                },
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(labels),
                        ..Default::default()
                    }),
                    spec: Some(PodSpec {
                        containers: vec![Container {
                            name: "web".into(),
                            image: Some(image.into()),
                            ..Default::default()
                        }],
                        ..Default::default()
                    }),
                },
                ..Default::default()
            },
            status: None,
        }
    }

    fn realise(d: &Deployment, pods: Vec<Pod>, ready: bool) -> Vec<Pod> {
        pods.into_iter()
            .map(|mut p| {
                p.status = Some(PodStatus {
                    conditions: Some(vec![PodCondition {
                        type_: "Ready".into(),
                        status: if ready { "True" } else { "False" }.into(),
                        ..Default::default()
                    }]),
                    ..Default::default()
                });
                assert!(owned_by(&p, d));
                p
            })
            .collect()
    }

    fn counter() -> impl FnMut() -> [u8; 5] {
        let mut n = 0u8;
        move || {
            n += 1;
            [n, n, n, n, n]
        }
    }

    #[test]
    fn creates_missing_replicas_with_template_labels_and_owner() {
        let d = mk_deployment(3, "agnhost:1");
        let p = plan(&d, &[], 0, counter());
        assert_eq!(p.create.len(), 3);
        let pod = &p.create[0];
        let labels = pod.metadata.labels.as_ref().unwrap();
        assert_eq!(labels["app"], "web");
        assert_eq!(labels[TEMPLATE_HASH_LABEL], template_hash(&d));
        assert!(
            pod.metadata
                .name
                .as_ref()
                .unwrap()
                .starts_with(&format!("web-{}-", template_hash(&d)))
        );
        assert_ne!(p.create[0].metadata.name, p.create[1].metadata.name);
        // Pods created but not yet seen are not created twice.
        assert!(plan(&d, &[], 3, counter()).create.is_empty());
    }

    #[test]
    fn scales_down_not_ready_pods_first() {
        let d = mk_deployment(3, "agnhost:1");
        let mut pods = realise(&d, plan(&d, &[], 0, counter()).create, true);
        pods[1]
            .status
            .as_mut()
            .unwrap()
            .conditions
            .as_mut()
            .unwrap()[0]
            .status = "False".into();
        let mut two = d.clone();
        two.spec.replicas = Some(2);
        let refs: Vec<&Pod> = pods.iter().collect();
        let p = plan(&two, &refs, 0, counter());
        assert_eq!(p.delete, [pods[1].metadata.name.clone().unwrap()]);
        assert!(p.create.is_empty());
    }

    #[test]
    fn template_change_replaces_pods_once_new_ones_are_ready() {
        let d1 = mk_deployment(2, "agnhost:1");
        let old = realise(&d1, plan(&d1, &[], 0, counter()).create, true);
        let d2 = mk_deployment(2, "agnhost:2");
        assert_ne!(template_hash(&d1), template_hash(&d2));
        let refs: Vec<&Pod> = old.iter().collect();
        let p = plan(&d2, &refs, 0, counter());
        assert_eq!(p.create.len(), 2);
        assert!(
            p.delete.is_empty(),
            "old pods stay until the new ones are ready"
        );
        let new = realise(&d2, p.create, true);
        let all: Vec<&Pod> = old.iter().chain(new.iter()).collect();
        let p = plan(&d2, &all, 0, counter());
        assert!(p.create.is_empty());
        assert_eq!(p.delete.len(), 2);
    }

    #[test]
    fn status_counts_ready_and_available_and_is_only_written_on_change() {
        let mut d = mk_deployment(2, "agnhost:1");
        let pods = realise(&d, plan(&d, &[], 0, counter()).create, true);
        let refs: Vec<&Pod> = pods.iter().collect();
        let status = plan(&d, &refs, 0, counter()).status.unwrap();
        assert_eq!(status.ready_replicas, Some(2));
        assert_eq!(status.available_replicas, Some(2));
        assert_eq!(
            status.conditions.as_ref().unwrap()[0].status.as_deref(),
            Some("True")
        );
        d.status = Some(status);
        assert_eq!(plan(&d, &refs, 0, counter()).status, None);
    }

    #[test]
    fn foreign_pods_and_deleting_deployments_are_ignored() {
        let d = mk_deployment(1, "agnhost:1");
        let mut stranger = plan(&d, &[], 0, counter()).create.remove(0);
        stranger.metadata.owner_references = None;
        let p = plan(&d, &[&stranger], 0, counter());
        assert_eq!(p.create.len(), 1);
        let mut gone = d.clone();
        gone.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
            ));
        assert_eq!(plan(&gone, &[], 0, counter()), DeploymentPlan::default());
    }

    #[test]
    fn hash_and_suffix_use_the_kubernetes_alphabet() {
        let d = mk_deployment(1, "x");
        let h = template_hash(&d);
        assert_eq!(h.len(), 10);
        assert_eq!(h, template_hash(&d.clone()));
        assert!(h.bytes().all(|b| ALPHABET.contains(&b)));
        assert!(
            suffix([0, 255, 26, 27, 100])
                .bytes()
                .all(|b| ALPHABET.contains(&b))
        );
    }
}
