//! Persistence of the object store in a directory, so the process can be SIGKILLed and
//! restarted without losing acknowledged writes (like an API server over etcd).
//!
//! Layout: `state/snapshot.jsonl` (a header line with the resourceVersion it covers, then one
//! object per line) and `state/wal.jsonl` (one line per write since then: a put with the object,
//! or a delete). A single writer thread appends each batch of writes with one `write` call, in
//! commit order, and then acknowledges it; handlers wait for that acknowledgement outside the
//! store lock. When the log outgrows the live data, the writer writes a fresh snapshot (to a
//! temporary file, renamed into place) and starts a new log.
//!
//! Crash safety without fsync (the data must survive the process, not the machine): a killed
//! writer can leave at most one partial last log line, which was never acknowledged; loading
//! stops there and cuts it off. Log lines at or below the snapshot's resourceVersion (a crash
//! between the snapshot rename and the log reset) are skipped.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;

use serde_json::{Value, json};
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
    done: oneshot::Sender<()>,
}

/// `(storage, namespace, name)`.
pub type Key = (String, String, String);

/// What was on disk at start-up.
pub struct Loaded {
    pub objects: Vec<(String, String, String, Arc<Value>)>,
    /// The highest resourceVersion ever acknowledged (objects and deletions).
    pub max_rv: u64,
    /// Lines that could not be read, with the reason.
    pub skipped: Vec<(PathBuf, String)>,
}

/// Handle to the writer thread.
#[derive(Clone)]
pub struct Persister {
    tx: mpsc::Sender<Batch>,
}

const STATE_DIR: &str = "state";
const SNAPSHOT: &str = "snapshot.jsonl";
const WAL: &str = "wal.jsonl";
/// The log is compacted once it holds this many lines and more than twice the live objects.
const COMPACT_AFTER: usize = 20_000;

fn parse_key(v: &Value) -> Option<Key> {
    Some((
        v["s"].as_str()?.to_string(),
        v["ns"].as_str()?.to_string(),
        v["n"].as_str()?.to_string(),
    ))
}

/// Reads the data directory, cutting off a partial last log line.
pub fn load(root: &Path) -> Result<Loaded, PersistError> {
    let dir = root.join(STATE_DIR);
    let mut objects: HashMap<Key, Arc<Value>> = HashMap::new();
    let mut skipped = Vec::new();
    let mut snapshot_rv = 0u64;
    let snap_path = dir.join(SNAPSHOT);
    match fs::read_to_string(&snap_path) {
        Ok(text) => {
            let mut lines = text.lines();
            if let Some(header) = lines.next() {
                snapshot_rv = serde_json::from_str::<Value>(header)
                    .ok()
                    .and_then(|h| h["rv"].as_u64())
                    .unwrap_or(0);
            }
            for (i, line) in lines.enumerate() {
                match serde_json::from_str::<Value>(line)
                    .ok()
                    .and_then(|v| Some((parse_key(&v)?, v)))
                {
                    Some((key, mut v)) => {
                        objects.insert(key, Arc::new(v["o"].take()));
                    }
                    None => skipped.push((
                        snap_path.clone(),
                        format!("line {}: not a stored object", i + 2),
                    )),
                }
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(&snap_path)(e)),
    }
    let mut max_rv = snapshot_rv;
    let wal_path = dir.join(WAL);
    match fs::read(&wal_path) {
        Ok(bytes) => {
            let mut offset = 0usize;
            let mut cut = None;
            while offset < bytes.len() {
                let Some(nl) = bytes[offset..].iter().position(|b| *b == b'\n') else {
                    cut = Some(offset);
                    break;
                };
                let line = &bytes[offset..offset + nl];
                let parsed = serde_json::from_slice::<Value>(line)
                    .ok()
                    .and_then(|v| Some((parse_key(&v)?, v["rv"].as_u64()?, v)));
                let Some((key, rv, mut v)) = parsed else {
                    cut = Some(offset);
                    break;
                };
                offset += nl + 1;
                if rv <= snapshot_rv {
                    continue;
                }
                max_rv = max_rv.max(rv);
                if v["del"].as_bool() == Some(true) {
                    objects.remove(&key);
                } else {
                    objects.insert(key, Arc::new(v["o"].take()));
                }
            }
            if let Some(at) = cut {
                skipped.push((
                    wal_path.clone(),
                    format!("cut a partial write at byte {at}"),
                ));
                let f = OpenOptions::new()
                    .write(true)
                    .open(&wal_path)
                    .map_err(io_err(&wal_path))?;
                f.set_len(at as u64).map_err(io_err(&wal_path))?;
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(&wal_path)(e)),
    }
    let objects = objects
        .into_iter()
        .map(|((s, ns, n), o)| (s, ns, n, o))
        .collect();
    Ok(Loaded {
        objects,
        max_rv,
        skipped,
    })
}

struct Writer {
    dir: PathBuf,
    wal: File,
    wal_lines: usize,
    live: HashMap<Key, Arc<Value>>,
    rv: u64,
}

impl Writer {
    fn append(&mut self, batch: &[Batch]) -> io::Result<()> {
        let mut buf = Vec::with_capacity(batch.len() * 2048);
        for b in batch {
            let line = match &b.op {
                PersistOp::Put {
                    storage,
                    namespace,
                    name,
                    object,
                } => {
                    self.live.insert(
                        (storage.clone(), namespace.clone(), name.clone()),
                        object.clone(),
                    );
                    json!({"rv": b.rv, "s": storage, "ns": namespace, "n": name, "o": &**object})
                }
                PersistOp::Delete {
                    storage,
                    namespace,
                    name,
                } => {
                    self.live
                        .remove(&(storage.clone(), namespace.clone(), name.clone()));
                    json!({"rv": b.rv, "s": storage, "ns": namespace, "n": name, "del": true})
                }
            };
            serde_json::to_writer(&mut buf, &line).map_err(io::Error::other)?;
            buf.push(b'\n');
            self.rv = self.rv.max(b.rv);
        }
        self.wal.write_all(&buf)?;
        self.wal_lines += batch.len();
        if self.wal_lines > COMPACT_AFTER && self.wal_lines > 2 * self.live.len() {
            self.compact()?;
        }
        Ok(())
    }

    /// Writes every live object to a new snapshot and starts an empty log.
    fn compact(&mut self) -> io::Result<()> {
        let tmp = self.dir.join("snapshot.jsonl.tmp");
        let mut out = io::BufWriter::new(File::create(&tmp)?);
        serde_json::to_writer(&mut out, &json!({"rv": self.rv})).map_err(io::Error::other)?;
        out.write_all(b"\n")?;
        for ((s, ns, n), o) in &self.live {
            serde_json::to_writer(&mut out, &json!({"s": s, "ns": ns, "n": n, "o": &**o}))
                .map_err(io::Error::other)?;
            out.write_all(b"\n")?;
        }
        out.flush()?;
        drop(out);
        fs::rename(&tmp, self.dir.join(SNAPSHOT))?;
        self.wal = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(self.dir.join(WAL))?;
        self.wal_lines = 0;
        Ok(())
    }
}

impl Persister {
    /// Starts the writer thread for `root`, which already holds `loaded`.
    pub fn start(root: &Path, loaded: &Loaded) -> Result<Self, PersistError> {
        let dir = root.join(STATE_DIR);
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let wal_path = dir.join(WAL);
        let wal = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&wal_path)
            .map_err(io_err(&wal_path))?;
        let wal_lines = fs::read(&wal_path)
            .map(|b| b.iter().filter(|c| **c == b'\n').count())
            .unwrap_or(0);
        let live = loaded
            .objects
            .iter()
            .map(|(s, ns, n, o)| ((s.clone(), ns.clone(), n.clone()), o.clone()))
            .collect();
        let mut writer = Writer {
            dir,
            wal,
            wal_lines,
            live,
            rv: loaded.max_rv,
        };
        let (tx, rx) = mpsc::channel::<Batch>();
        std::thread::Builder::new()
            .name("apiserver-persist".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let mut batch = vec![first];
                    while batch.len() < 1024
                        && let Ok(more) = rx.try_recv()
                    {
                        batch.push(more);
                    }
                    if let Err(e) = writer.append(&batch) {
                        // Unacknowledged: the waiting requests fail with an internal error.
                        tracing::error!(error = %e, "persisting a batch of writes failed");
                        continue;
                    }
                    for b in batch {
                        let _ = b.done.send(());
                    }
                }
            })
            .map_err(io_err(root))?;
        Ok(Persister { tx })
    }

    /// Queues a write; the receiver fires once it is on disk.
    pub fn submit(&self, op: PersistOp, rv: u64) -> oneshot::Receiver<()> {
        let (done, rx) = oneshot::channel();
        // A closed channel means the writer died; the receiver then reports an error.
        let _ = self.tx.send(Batch { op, rv, done });
        rx
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(tag: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("apiserver-persist-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    fn put(name: &str, ns: &str, rv: u64) -> PersistOp {
        let object = Arc::new(
            json!({"metadata": {"name": name, "namespace": ns, "resourceVersion": rv.to_string()}}),
        );
        PersistOp::Put {
            storage: "core/configmaps".into(),
            namespace: ns.into(),
            name: name.into(),
            object,
        }
    }

    fn names(l: &Loaded) -> Vec<String> {
        let mut v: Vec<String> = l
            .objects
            .iter()
            .map(|(_, ns, n, _)| format!("{ns}/{n}"))
            .collect();
        v.sort();
        v
    }

    #[tokio::test]
    async fn writes_survive_a_restart() {
        let dir = tmpdir("roundtrip");
        let empty = load(&dir).unwrap();
        assert!(empty.objects.is_empty() && empty.max_rv == 0);
        let p = Persister::start(&dir, &empty).unwrap();
        p.submit(put("a", "default", 2), 2).await.unwrap();
        p.submit(put("b", "default", 3), 3).await.unwrap();
        p.submit(
            PersistOp::Delete {
                storage: "core/configmaps".into(),
                namespace: "default".into(),
                name: "a".into(),
            },
            4,
        )
        .await
        .unwrap();
        let l = load(&dir).unwrap();
        assert_eq!(l.max_rv, 4, "deletes count toward the resourceVersion");
        assert_eq!(names(&l), ["default/b"]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn a_partial_last_line_is_cut_off() {
        let dir = tmpdir("partial");
        let p = Persister::start(&dir, &load(&dir).unwrap()).unwrap();
        p.submit(put("a", "x", 5), 5).await.unwrap();
        drop(p);
        let wal = dir.join(STATE_DIR).join(WAL);
        let mut f = OpenOptions::new().append(true).open(&wal).unwrap();
        f.write_all(b"{\"rv\":6,\"s\":\"core/configmaps\",\"ns\":\"x\",\"n\":\"b\",\"o\":{\"meta")
            .unwrap();
        drop(f);
        let l = load(&dir).unwrap();
        assert_eq!(names(&l), ["x/a"]);
        assert_eq!(l.max_rv, 5);
        assert_eq!(l.skipped.len(), 1);
        // The cut leaves a clean log for the next writer.
        let p = Persister::start(&dir, &l).unwrap();
        p.submit(put("c", "x", 7), 7).await.unwrap();
        assert_eq!(names(&load(&dir).unwrap()), ["x/a", "x/c"]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn compaction_keeps_exactly_the_live_objects() {
        let dir = tmpdir("compact");
        let p = Persister::start(&dir, &load(&dir).unwrap()).unwrap();
        let mut rv = 1;
        for round in 0..3 {
            for i in 0..(COMPACT_AFTER / 2) {
                rv += 1;
                let rx = p.submit(put(&format!("o{i}"), "n", rv), rv);
                if i + 1 == COMPACT_AFTER / 2 {
                    rx.await.unwrap();
                }
            }
            let _ = round;
        }
        rv += 1;
        p.submit(
            PersistOp::Delete {
                storage: "core/configmaps".into(),
                namespace: "n".into(),
                name: "o0".into(),
            },
            rv,
        )
        .await
        .unwrap();
        assert!(
            dir.join(STATE_DIR).join(SNAPSHOT).exists(),
            "the log was compacted"
        );
        let l = load(&dir).unwrap();
        assert_eq!(l.objects.len(), COMPACT_AFTER / 2 - 1);
        assert_eq!(l.max_rv, rv);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn stale_log_lines_below_the_snapshot_are_skipped() {
        let dir = tmpdir("stale");
        let state = dir.join(STATE_DIR);
        fs::create_dir_all(&state).unwrap();
        fs::write(state.join(SNAPSHOT), "{\"rv\":10}\n{\"s\":\"core/configmaps\",\"ns\":\"n\",\"n\":\"kept\",\"o\":{\"metadata\":{\"name\":\"kept\"}}}\nnot json\n").unwrap();
        fs::write(state.join(WAL), "{\"rv\":9,\"s\":\"core/configmaps\",\"ns\":\"n\",\"n\":\"kept\",\"del\":true}\n{\"rv\":11,\"s\":\"core/configmaps\",\"ns\":\"n\",\"n\":\"new\",\"o\":{}}\n").unwrap();
        let l = load(&dir).unwrap();
        assert_eq!(names(&l), ["n/kept", "n/new"]);
        assert_eq!(l.max_rv, 11);
        assert_eq!(
            l.skipped.len(),
            1,
            "the malformed snapshot line is reported"
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}
