//! Persistence of the object store in a directory, one JSON file per object, so the process can
//! be SIGKILLed and restarted without losing acknowledged writes.
//!
//! A single writer thread applies writes in commit order (each file written to a temporary name
//! and renamed over the old one, so a file is always whole), records the highest resourceVersion
//! it has written, and then acknowledges the batch. Handlers wait for that acknowledgement before
//! answering, but never hold the store lock while the disk is busy. No fsync: the data must
//! survive the process, not the machine.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;

use serde_json::Value;
use tokio::sync::oneshot;

#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    #[error("data directory {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> PersistError + '_ {
    move |source| PersistError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// One write for the writer thread.
pub enum PersistOp {
    Put {
        storage: String,
        namespace: String,
        name: String,
        object: Arc<Value>,
    },
    Delete {
        storage: String,
        namespace: String,
        name: String,
    },
}

struct Batch {
    op: PersistOp,
    rv: u64,
    done: Option<oneshot::Sender<()>>,
}

/// What was on disk at start-up.
pub struct Loaded {
    /// `(storage, namespace, name, object)`.
    pub objects: Vec<(String, String, String, Value)>,
    /// The highest resourceVersion ever acknowledged (objects and deletions).
    pub max_rv: u64,
    /// Files that could not be read, with the reason; they are left in place.
    pub skipped: Vec<(PathBuf, String)>,
}

/// Handle to the writer thread.
#[derive(Clone)]
pub struct Persister {
    tx: mpsc::Sender<Batch>,
}

const OBJECTS_DIR: &str = "objects";
const RV_FILE: &str = "resource-version";
const CLUSTER_SCOPE_DIR: &str = "_cluster";
const MAX_FILE_STEM: usize = 200;

fn storage_dir(storage: &str) -> String {
    storage.replace('/', "__")
}

fn storage_from_dir(dir: &str) -> String {
    dir.replace("__", "/")
}

/// 64-bit FNV-1a: a stable name for objects whose names are too long for a file name.
fn fnv1a(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn file_stem(name: &str) -> String {
    if name.len() <= MAX_FILE_STEM && !name.starts_with('~') {
        name.to_string()
    } else {
        format!("~{:016x}", fnv1a(name))
    }
}

fn object_path(root: &Path, storage: &str, namespace: &str, name: &str) -> PathBuf {
    let ns = if namespace.is_empty() {
        CLUSTER_SCOPE_DIR
    } else {
        namespace
    };
    root.join(OBJECTS_DIR)
        .join(storage_dir(storage))
        .join(ns)
        .join(format!("{}.json", file_stem(name)))
}

fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    match fs::write(&tmp, bytes) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent)?;
            }
            fs::write(&tmp, bytes)?;
        }
        Err(e) => return Err(e),
    }
    fs::rename(&tmp, path)
}

/// Reads the data directory.
pub fn load(root: &Path) -> Result<Loaded, PersistError> {
    let mut loaded = Loaded {
        objects: vec![],
        max_rv: 0,
        skipped: vec![],
    };
    let rv_path = root.join(RV_FILE);
    match fs::read_to_string(&rv_path) {
        Ok(s) => loaded.max_rv = s.trim().parse().unwrap_or(0),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(&rv_path)(e)),
    }
    let objects = root.join(OBJECTS_DIR);
    let storages = match fs::read_dir(&objects) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(loaded),
        Err(e) => return Err(io_err(&objects)(e)),
    };
    for storage in storages {
        let storage = storage.map_err(io_err(&objects))?;
        let storage_name = storage_from_dir(&storage.file_name().to_string_lossy());
        let sp = storage.path();
        for ns in fs::read_dir(&sp).map_err(io_err(&sp))? {
            let ns = ns.map_err(io_err(&sp))?;
            let ns_name = ns.file_name().to_string_lossy().to_string();
            let ns_name = if ns_name == CLUSTER_SCOPE_DIR {
                String::new()
            } else {
                ns_name
            };
            let np = ns.path();
            for f in fs::read_dir(&np).map_err(io_err(&np))? {
                let path = f.map_err(io_err(&np))?.path();
                if path.extension().and_then(|e| e.to_str()) != Some("json") {
                    // Leftover temporary files from a killed writer: the rename never happened.
                    if path.to_string_lossy().ends_with(".json.tmp") {
                        let _ = fs::remove_file(&path);
                    }
                    continue;
                }
                let parsed = fs::read(&path)
                    .map_err(|e| e.to_string())
                    .and_then(|b| serde_json::from_slice::<Value>(&b).map_err(|e| e.to_string()));
                match parsed {
                    Ok(obj) => {
                        let Some(name) = obj["metadata"]["name"].as_str().map(str::to_string)
                        else {
                            loaded.skipped.push((path, "no metadata.name".into()));
                            continue;
                        };
                        let rv = obj["metadata"]["resourceVersion"]
                            .as_str()
                            .and_then(|s| s.parse::<u64>().ok())
                            .unwrap_or(0);
                        loaded.max_rv = loaded.max_rv.max(rv);
                        loaded
                            .objects
                            .push((storage_name.clone(), ns_name.clone(), name, obj));
                    }
                    Err(e) => loaded.skipped.push((path, e)),
                }
            }
        }
    }
    Ok(loaded)
}

impl Persister {
    /// Starts the writer thread for `root`.
    pub fn start(root: &Path) -> Result<Self, PersistError> {
        fs::create_dir_all(root.join(OBJECTS_DIR)).map_err(io_err(root))?;
        let (tx, rx) = mpsc::channel::<Batch>();
        let root = root.to_path_buf();
        std::thread::Builder::new()
            .name("apiserver-persist".into())
            .spawn(move || writer(root, rx))
            .map_err(io_err(Path::new("<thread>")))?;
        Ok(Persister { tx })
    }

    /// Queues a write; the receiver fires once it is on disk.
    pub fn submit(&self, op: PersistOp, rv: u64) -> oneshot::Receiver<()> {
        let (done, rx) = oneshot::channel();
        // A closed channel means the writer died; the receiver then reports an error.
        let _ = self.tx.send(Batch {
            op,
            rv,
            done: Some(done),
        });
        rx
    }
}

fn writer(root: PathBuf, rx: mpsc::Receiver<Batch>) {
    let mut last_rv = 0u64;
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while let Ok(more) = rx.try_recv() {
            batch.push(more);
            if batch.len() >= 512 {
                break;
            }
        }
        let mut max_rv = last_rv;
        for b in &batch {
            max_rv = max_rv.max(b.rv);
            let result = match &b.op {
                PersistOp::Put {
                    storage,
                    namespace,
                    name,
                    object,
                } => {
                    let path = object_path(&root, storage, namespace, name);
                    serde_json::to_vec(&**object)
                        .map_err(io::Error::other)
                        .and_then(|bytes| write_atomically(&path, &bytes))
                }
                PersistOp::Delete {
                    storage,
                    namespace,
                    name,
                } => match fs::remove_file(object_path(&root, storage, namespace, name)) {
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                    other => other,
                },
            };
            if let Err(e) = result {
                tracing::error!(error = %e, "persisting an object failed");
            }
        }
        if max_rv != last_rv {
            if let Err(e) = write_atomically(&root.join(RV_FILE), max_rv.to_string().as_bytes()) {
                tracing::error!(error = %e, "persisting the resourceVersion failed");
            }
            last_rv = max_rv;
        }
        for b in batch {
            if let Some(d) = b.done {
                let _ = d.send(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tmpdir(tag: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("apiserver-persist-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[tokio::test]
    async fn writes_then_loads_objects_and_the_resource_version() {
        let dir = tmpdir("roundtrip");
        let p = Persister::start(&dir).unwrap();
        let obj = Arc::new(
            json!({"metadata": {"name": "web", "namespace": "default", "resourceVersion": "7"}}),
        );
        p.submit(
            PersistOp::Put {
                storage: "core/services".into(),
                namespace: "default".into(),
                name: "web".into(),
                object: obj,
            },
            7,
        )
        .await
        .unwrap();
        let node = Arc::new(json!({"metadata": {"name": "n1", "resourceVersion": "8"}}));
        p.submit(
            PersistOp::Put {
                storage: "core/nodes".into(),
                namespace: "".into(),
                name: "n1".into(),
                object: node,
            },
            8,
        )
        .await
        .unwrap();
        p.submit(
            PersistOp::Delete {
                storage: "core/nodes".into(),
                namespace: "".into(),
                name: "n1".into(),
            },
            9,
        )
        .await
        .unwrap();
        let long = "x".repeat(250);
        let lobj = Arc::new(json!({"metadata": {"name": long, "resourceVersion": "10"}}));
        p.submit(
            PersistOp::Put {
                storage: "rbac.authorization.k8s.io/clusterroles".into(),
                namespace: "".into(),
                name: long.clone(),
                object: lobj,
            },
            10,
        )
        .await
        .unwrap();
        let loaded = load(&dir).unwrap();
        assert_eq!(loaded.max_rv, 10);
        let mut names: Vec<_> = loaded
            .objects
            .iter()
            .map(|(s, ns, n, _)| (s.clone(), ns.clone(), n.len()))
            .collect();
        names.sort();
        assert_eq!(
            names,
            vec![
                ("core/services".to_string(), "default".to_string(), 3),
                (
                    "rbac.authorization.k8s.io/clusterroles".into(),
                    "".into(),
                    250
                )
            ]
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn corrupt_files_are_skipped_not_fatal() {
        let dir = tmpdir("corrupt");
        let p = object_path(&dir, "core/configmaps", "default", "bad");
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, b"{not json").unwrap();
        fs::write(p.with_extension("json.tmp"), b"partial").unwrap();
        let loaded = load(&dir).unwrap();
        assert!(loaded.objects.is_empty());
        assert_eq!(loaded.skipped.len(), 1);
        assert!(!p.with_extension("json.tmp").exists());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn file_names_are_stable_and_bounded() {
        assert_eq!(file_stem("web"), "web");
        let long = "a".repeat(253);
        assert_eq!(file_stem(&long), file_stem(&long));
        assert!(file_stem(&long).len() < 20);
        assert_ne!(file_stem("~x"), "~x");
        assert_eq!(
            storage_from_dir(&storage_dir("ironlb.io/ipaddresspools")),
            "ironlb.io/ipaddresspools"
        );
    }
}
