//! What `lab up` does through the Kubernetes API once the API server answers: wait for
//! readiness, install the ironlb namespace, the membership Secret and the CRDs, and wait for
//! the nodes. Plain kube-rs client code, so it works against any API server.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Namespace, Node, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, GroupVersionKind, ObjectMeta, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config, ResourceExt};
use serde::Deserialize;

use super::{Error, Result};

const FIELD_MANAGER: &str = "ironlb-lab";
const POLL: Duration = Duration::from_millis(100);

/// A client for the kubeconfig at `path`.
pub async fn client_for(path: &Path) -> Result<Client> {
    let bad = |message: String| Error::Kubeconfig {
        path: path.to_path_buf(),
        message,
    };
    let kubeconfig = Kubeconfig::read_from(path).map_err(|e| bad(e.to_string()))?;
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|e| bad(e.to_string()))?;
    Ok(Client::try_from(config)?)
}

/// Waits until the kubeconfig exists and the API server's `/readyz` answers `ok`.
pub async fn wait_api_ready(
    kubeconfig: &Path,
    timeout: Duration,
    mut still_alive: impl FnMut() -> Result<()>,
) -> Result<Client> {
    let deadline = Instant::now() + timeout;
    let mut last = String::from("no kubeconfig yet");
    loop {
        still_alive()?;
        if kubeconfig.exists() {
            match ready(kubeconfig).await {
                Ok(client) => return Ok(client),
                Err(e) => last = e.to_string(),
            }
        }
        if Instant::now() >= deadline {
            return Err(Error::Timeout {
                what: "the API server's /readyz".into(),
                after: timeout,
                last,
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

async fn ready(kubeconfig: &Path) -> Result<Client> {
    let client = client_for(kubeconfig).await?;
    let request = http::Request::get("/readyz")
        .body(Vec::new())
        .expect("a static request is valid");
    let body = tokio::time::timeout(Duration::from_secs(2), client.request_text(request))
        .await
        .map_err(|_| Error::BadArgument("/readyz did not answer in 2s".into()))??;
    if body.trim() == "ok" {
        Ok(client)
    } else {
        Err(Error::BadArgument(format!("/readyz said {body:?}")))
    }
}

pub async fn ensure_namespace(client: &Client, name: &str) -> Result<()> {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            ..Default::default()
        },
        ..Default::default()
    };
    api.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&ns),
    )
    .await?;
    Ok(())
}

/// The Secret the chart generates for the speakers' membership key.
pub async fn ensure_secret(
    client: &Client,
    namespace: &str,
    name: &str,
    key: &str,
    value: &[u8],
) -> Result<()> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(namespace.to_string()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            key.to_string(),
            ByteString(value.to_vec()),
        )])),
        type_: Some("Opaque".into()),
        ..Default::default()
    };
    api.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&secret),
    )
    .await?;
    Ok(())
}

/// The YAML manifests of a directory, in name order (what `kubectl apply -f DIR` reads).
pub fn manifests_in(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(format!("listing {}", dir.display()), e)),
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .is_some_and(|x| x == "yaml" || x == "yml" || x == "json")
        })
        .collect();
    files.sort();
    Ok(files)
}

/// Splits a multi-document YAML file into objects, skipping empty documents.
pub fn parse_manifest(path: &Path, text: &str) -> Result<Vec<DynamicObject>> {
    let mut out = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(text) {
        let value = serde_yaml::Value::deserialize(doc).map_err(|e| Error::BadManifest {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        if value.is_null() {
            continue;
        }
        let obj: DynamicObject = serde_yaml::from_value(value).map_err(|e| Error::BadManifest {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        if obj.types.is_none() || obj.metadata.name.is_none() {
            return Err(Error::BadManifest {
                path: path.to_path_buf(),
                message: "every object needs apiVersion, kind and metadata.name".into(),
            });
        }
        out.push(obj);
    }
    Ok(out)
}

/// Server-side applies every object of the files; returns the names of the CRDs among them.
pub async fn apply_files(client: &Client, files: &[PathBuf]) -> Result<Vec<String>> {
    let mut crds = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        for obj in parse_manifest(path, &text)? {
            let types = obj.types.clone().expect("checked by parse_manifest");
            let gvk = GroupVersionKind::try_from(&types).map_err(|e| Error::BadManifest {
                path: path.clone(),
                message: e.to_string(),
            })?;
            let name = obj.name_any();
            let (resource, caps) = kube::discovery::pinned_kind(client, &gvk).await?;
            let api: Api<DynamicObject> = if caps.scope == kube::discovery::Scope::Namespaced {
                let ns = obj.namespace().unwrap_or_else(|| "default".into());
                Api::namespaced_with(client.clone(), &ns, &resource)
            } else {
                Api::all_with(client.clone(), &resource)
            };
            let params = PatchParams::apply(FIELD_MANAGER).force();
            api.patch(&name, &params, &Patch::Apply(&obj)).await?;
            if gvk.kind == "CustomResourceDefinition" {
                crds.push(name);
            }
        }
    }
    Ok(crds)
}

/// Waits until every named CRD reports `Established`.
pub async fn wait_crds_established(
    client: &Client,
    names: &[String],
    timeout: Duration,
) -> Result<()> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let deadline = Instant::now() + timeout;
    for name in names {
        loop {
            let established = api.get_opt(name).await?.is_some_and(|crd| {
                crd.status
                    .and_then(|s| s.conditions)
                    .unwrap_or_default()
                    .iter()
                    .any(|c| c.type_ == "Established" && c.status == "True")
            });
            if established {
                break;
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout {
                    what: format!("CRD {name} to be Established"),
                    after: timeout,
                    last: String::new(),
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }
    Ok(())
}

/// Waits until every named Node exists with condition Ready=True.
pub async fn wait_nodes_ready(
    client: &Client,
    names: &[String],
    timeout: Duration,
    mut still_alive: impl FnMut() -> Result<()>,
) -> Result<()> {
    let api: Api<Node> = Api::all(client.clone());
    let deadline = Instant::now() + timeout;
    loop {
        still_alive()?;
        let nodes = api.list(&Default::default()).await?;
        let ready: Vec<String> = nodes
            .items
            .iter()
            .filter(|n| {
                n.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            })
            .map(|n| n.name_any())
            .collect();
        let missing: Vec<&String> = names.iter().filter(|n| !ready.contains(n)).collect();
        if missing.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(Error::Timeout {
                what: "nodes to be Ready".into(),
                after: timeout,
                last: format!("not ready: {missing:?}"),
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_multi_document_manifests() {
        let text = "---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n---\n\n---\napiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: ipaddresspools.ironlb.io\n";
        let objs = parse_manifest(Path::new("x.yaml"), text).unwrap();
        assert_eq!(objs.len(), 2);
        assert_eq!(objs[1].name_any(), "ipaddresspools.ironlb.io");
        assert_eq!(
            objs[1].types.as_ref().unwrap().kind,
            "CustomResourceDefinition"
        );
    }

    #[test]
    fn rejects_objects_without_kind_or_name_and_bad_yaml() {
        for bad in [
            "metadata:\n  name: a\n",
            "apiVersion: v1\nkind: Namespace\nmetadata: {}\n",
            "apiVersion: v1\nkind: [unclosed\n",
            "- just\n- a list\n",
        ] {
            assert!(
                matches!(
                    parse_manifest(Path::new("x.yaml"), bad),
                    Err(Error::BadManifest { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn lists_only_manifests_in_name_order() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["b.yaml", "a.yml", "notes.txt", "c.json"] {
            std::fs::write(dir.path().join(name), "").unwrap();
        }
        let names: Vec<String> = manifests_in(dir.path())
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["a.yml", "b.yaml", "c.json"]);
        assert!(manifests_in(&dir.path().join("absent")).unwrap().is_empty());
    }
}
