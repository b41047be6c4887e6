//! Watches: a chunked stream of `{"type": ..., "object": ...}` lines read from the store's
//! history. Supports starting from a resourceVersion (410 Gone as an ERROR event when it is
//! older than the history), synthetic ADDED events for "now", streaming lists
//! (`sendInitialEvents`), BOOKMARKs, `timeoutSeconds`, selectors with the ADDED/DELETED
//! transitions the API server emits when an object starts or stops matching, and Table output.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::error::ApiError;
use super::registry::ResourceDef;
use super::selector::{FieldSelector, LabelSelector};
use super::state::ApiServer;
use super::store::{EventType, WatchEvent};
use super::table;

/// Where a watch begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// Synthetic ADDED events for every current object, then changes.
    Snapshot,
    /// `sendInitialEvents=true`: like `Snapshot`, then a BOOKMARK marking the end.
    InitialEvents,
    /// Changes after this resourceVersion.
    From(u64),
}

pub struct WatchSpec {
    pub def: Arc<ResourceDef>,
    pub namespace: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    pub start: Start,
    pub bookmarks: bool,
    pub timeout: Duration,
    /// Table output with this `includeObject` policy.
    pub table: Option<table::IncludeObject>,
}

fn line(kind: &str, object: &Value) -> Bytes {
    let mut v = serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
    v.push(b'\n');
    Bytes::from(v)
}

struct Emitter {
    server: Arc<ApiServer>,
    spec: WatchSpec,
    tx: mpsc::Sender<Bytes>,
    headers_sent: bool,
}

impl Emitter {
    fn matches(&self, obj: &Value) -> bool {
        if let Some(ns) = &self.spec.namespace
            && obj["metadata"]["namespace"].as_str() != Some(ns.as_str())
        {
            return false;
        }
        ApiServer::matches(&self.spec.def, &self.spec.labels, &self.spec.fields, obj)
    }

    fn render(&mut self, stored: &Value) -> Value {
        let view = self.server.view(&self.spec.def, stored);
        match self.spec.table {
            Some(include) => {
                let t = table::table(
                    &self.spec.def,
                    std::slice::from_ref(&view),
                    include,
                    !self.headers_sent,
                    &self.server.store.current_rv().to_string(),
                );
                self.headers_sent = true;
                t
            }
            None => view,
        }
    }

    async fn send(&mut self, kind: &str, stored: &Value) -> bool {
        let obj = self.render(stored);
        self.tx.send(line(kind, &obj)).await.is_ok()
    }

    async fn send_raw(&mut self, kind: &str, obj: &Value) -> bool {
        self.tx.send(line(kind, obj)).await.is_ok()
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> Value {
        let mut meta = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        json!({"kind": self.spec.def.kind, "apiVersion": self.spec.def.api_version(), "metadata": meta})
    }

    /// Sends one change, translated for the selectors. Returns false when the client is gone.
    async fn event(&mut self, ev: &WatchEvent) -> bool {
        let now = self.matches(&ev.object);
        let before = ev.prev.as_ref().is_some_and(|p| self.matches(p));
        let kind = match (ev.kind, before, now) {
            (EventType::Added, _, true) => "ADDED",
            (EventType::Deleted, _, true) => "DELETED",
            (EventType::Modified, true, true) => "MODIFIED",
            (EventType::Modified, false, true) => "ADDED",
            (EventType::Modified, true, false) => "DELETED",
            _ => return true,
        };
        let def = &self.spec.def;
        let as_stored = self.spec.table.is_none()
            && def.behavior != super::registry::Behavior::EventsV1
            && ev.object["apiVersion"].as_str() == Some(def.api_version().as_str())
            && ev.object["kind"].as_str() == Some(def.kind.as_str());
        if as_stored {
            // The common case: every watcher shares one serialization of the object.
            let json = ev.object_json();
            let mut line = Vec::with_capacity(json.len() + 32);
            line.extend_from_slice(b"{\"type\":\"");
            line.extend_from_slice(kind.as_bytes());
            line.extend_from_slice(b"\",\"object\":");
            line.extend_from_slice(json);
            line.extend_from_slice(b"}\n");
            return self.tx.send(Bytes::from(line)).await.is_ok();
        }
        self.send(kind, &ev.object).await
    }
}

/// Starts a watch; the returned channel yields the body's chunks.
pub fn start(server: Arc<ApiServer>, spec: WatchSpec) -> mpsc::Receiver<Bytes> {
    let (tx, rx) = mpsc::channel(256);
    tokio::spawn(async move {
        let guard = server.metrics.watch_guard(&spec.def.plural);
        let mut em = Emitter {
            server: server.clone(),
            spec,
            tx,
            headers_sent: false,
        };
        run(&mut em).await;
        drop(guard);
    });
    rx
}

async fn run(em: &mut Emitter) {
    let server = em.server.clone();
    let storage = em.spec.def.storage.clone();
    let mut notify = server.store.subscribe(&storage);
    let deadline = tokio::time::Instant::now() + em.spec.timeout;
    let mut pos = match em.spec.start {
        Start::From(rv) => rv,
        Start::Snapshot | Start::InitialEvents => {
            let (objs, rv) = server
                .store
                .snapshot(&storage, em.spec.namespace.as_deref());
            for o in objs {
                if em.matches(&o) && !em.send("ADDED", &o).await {
                    return;
                }
            }
            if em.spec.start == Start::InitialEvents {
                let b = em.bookmark(rv, true);
                if !em.send_raw("BOOKMARK", &b).await {
                    return;
                }
            }
            rv
        }
    };
    let mut bookmark_tick = tokio::time::interval_at(
        tokio::time::Instant::now() + server.opts.bookmark_interval,
        server.opts.bookmark_interval,
    );
    let mut caught_up_rv;
    loop {
        match server.store.events_since(&storage, pos) {
            Ok((events, rv)) => {
                for ev in &events {
                    if !em.event(ev).await {
                        return;
                    }
                    pos = ev.rv;
                }
                caught_up_rv = rv.max(pos);
            }
            Err(gone) => {
                let status = ApiError::Gone(gone.to_string()).to_status();
                let _ = em.send_raw("ERROR", &status).await;
                return;
            }
        }
        tokio::select! {
            changed = notify.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            _ = bookmark_tick.tick(), if em.spec.bookmarks && em.spec.table.is_none() => {
                // Everything up to `caught_up_rv` has been delivered for this collection.
                let b = em.bookmark(caught_up_rv, false);
                if !em.send_raw("BOOKMARK", &b).await {
                    return;
                }
                pos = pos.max(caught_up_rv);
            }
            _ = tokio::time::sleep_until(deadline) => return,
            _ = em.tx.closed() => return,
        }
    }
}
