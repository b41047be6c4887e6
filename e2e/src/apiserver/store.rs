//! The object store: collections of JSON objects keyed by namespace and name, one global
//! resourceVersion counter, and a bounded per-collection event history that watches read from.
//!
//! Every change happens under one short-lived lock (no I/O, no await, no work proportional to
//! the number of objects except for lists of one collection). Writes are handed to the
//! [`Persister`] in commit order; callers wait for [`Committed::durable`] outside the lock.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Value;
use tokio::sync::{oneshot, watch};

use super::persist::{Loaded, PersistOp, Persister};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change to one object.
#[derive(Debug)]
pub struct WatchEvent {
    pub rv: u64,
    pub kind: EventType,
    pub object: Arc<Value>,
    /// The object before the change (for selector transitions).
    pub prev: Option<Arc<Value>>,
    /// `object` serialized once, shared by every watcher that sends it as stored.
    pub json: std::sync::OnceLock<bytes::Bytes>,
}

impl WatchEvent {
    pub fn object_json(&self) -> &bytes::Bytes {
        self.json.get_or_init(|| {
            bytes::Bytes::from(serde_json::to_vec(&*self.object).unwrap_or_default())
        })
    }
}

type ObjKey = (String, String);

struct Collection {
    objects: BTreeMap<ObjKey, (u64, Arc<Value>)>,
    history: VecDeque<Arc<WatchEvent>>,
    /// Events with `rv <= floor` are no longer available.
    floor: u64,
    notify: watch::Sender<u64>,
}

impl Collection {
    fn new(floor: u64) -> Self {
        Collection {
            objects: BTreeMap::new(),
            history: VecDeque::new(),
            floor,
            notify: watch::channel(floor).0,
        }
    }
}

/// `(storage, namespace, name)` of a stored object.
pub type ObjectId = (String, String, String);

struct Inner {
    rv: u64,
    start_floor: u64,
    collections: HashMap<String, Collection>,
    /// Owner UID → the objects whose `ownerReferences` name it (for garbage collection).
    dependents: HashMap<String, BTreeSet<ObjectId>>,
}

fn owner_uids(obj: &Value) -> impl Iterator<Item = &str> {
    obj["metadata"]["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| o["uid"].as_str())
}

impl Inner {
    fn index_owners(&mut self, id: &ObjectId, prev: Option<&Value>, next: Option<&Value>) {
        if let Some(p) = prev {
            for uid in owner_uids(p) {
                if let Some(set) = self.dependents.get_mut(uid) {
                    set.remove(id);
                    if set.is_empty() {
                        self.dependents.remove(uid);
                    }
                }
            }
        }
        if let Some(n) = next {
            for uid in owner_uids(n) {
                self.dependents
                    .entry(uid.to_string())
                    .or_default()
                    .insert(id.clone());
            }
        }
    }
}

impl Inner {
    fn collection(&mut self, storage: &str) -> &mut Collection {
        let floor = self.start_floor;
        self.collections
            .entry(storage.to_string())
            .or_insert_with(|| Collection::new(floor))
    }
}

/// What a write expects to find.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// The object must not exist (create).
    Absent,
    /// The object must exist with this resourceVersion.
    Rv(u64),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommitError {
    #[error("already exists")]
    Exists,
    #[error("not found")]
    NotFound,
    #[error("resourceVersion conflict")]
    Conflict,
}

/// The answer to a watch or list from a resourceVersion older than the history.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("too old resource version: {requested} ({oldest})")]
pub struct Gone {
    pub requested: u64,
    pub oldest: u64,
}

/// A committed write.
pub struct Committed {
    /// The stored object (`None` after a delete).
    pub object: Option<Arc<Value>>,
    pub rv: u64,
    durable: Option<oneshot::Receiver<()>>,
}

impl Committed {
    /// Waits until the write is on disk (immediately without persistence).
    pub async fn durable(self) -> Result<Option<Arc<Value>>, String> {
        if let Some(rx) = self.durable {
            rx.await
                .map_err(|_| "the persistence writer stopped".to_string())?;
        }
        Ok(self.object)
    }
}

pub fn object_rv(obj: &Value) -> u64 {
    obj["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// One page of a list.
pub struct Page {
    pub items: Vec<Arc<Value>>,
    pub rv: u64,
    /// Where the next page starts, and how many matching items remain.
    pub next: Option<((String, String), u64)>,
}

pub struct Store {
    inner: Mutex<Inner>,
    persister: Option<Persister>,
    history_limit: usize,
}

impl Store {
    /// An empty in-memory store (tests).
    pub fn in_memory(history_limit: usize) -> Self {
        Store {
            inner: Mutex::new(Inner {
                rv: 1,
                start_floor: 1,
                collections: HashMap::new(),
                dependents: HashMap::new(),
            }),
            persister: None,
            history_limit,
        }
    }

    /// A store filled from disk. The counter moves past everything ever acknowledged, and the
    /// history starts empty there, so watches from before the restart get 410 Gone.
    pub fn from_loaded(loaded: Loaded, persister: Persister, history_limit: usize) -> Self {
        let start = loaded.max_rv + 1;
        let mut inner = Inner {
            rv: start,
            start_floor: start,
            collections: HashMap::new(),
            dependents: HashMap::new(),
        };
        for (storage, ns, name, obj) in loaded.objects {
            let rv = object_rv(&obj);
            inner.index_owners(
                &(storage.clone(), ns.clone(), name.clone()),
                None,
                Some(&obj),
            );
            inner
                .collection(&storage)
                .objects
                .insert((ns, name), (rv, obj));
        }
        Store {
            inner: Mutex::new(inner),
            persister: Some(persister),
            history_limit,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves consistent data (every mutation is a single
        // insert/remove), so poisoning is not fatal.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn current_rv(&self) -> u64 {
        self.lock().rv
    }

    pub fn get(&self, storage: &str, ns: &str, name: &str) -> Option<Arc<Value>> {
        let inner = self.lock();
        inner
            .collections
            .get(storage)?
            .objects
            .get(&(ns.to_string(), name.to_string()))
            .map(|(_, o)| o.clone())
    }

    /// Lists matching objects in key order, starting after `after`, at most `limit` (0: all).
    pub fn list(
        &self,
        storage: &str,
        ns: Option<&str>,
        after: Option<&(String, String)>,
        limit: usize,
        filter: &dyn Fn(&Value) -> bool,
    ) -> Page {
        use std::ops::Bound;
        let inner = self.lock();
        let rv = inner.rv;
        let Some(c) = inner.collections.get(storage) else {
            return Page {
                items: vec![],
                rv,
                next: None,
            };
        };
        let lower: Bound<ObjKey> = match (after, ns) {
            (Some(a), _) => Bound::Excluded(a.clone()),
            (None, Some(ns)) => Bound::Included((ns.to_string(), String::new())),
            (None, None) => Bound::Unbounded,
        };
        let mut items: Vec<Arc<Value>> = Vec::new();
        let mut last_key: Option<ObjKey> = None;
        let mut next = None;
        let mut remaining = 0u64;
        for ((kns, kname), (_, obj)) in c.objects.range((lower, Bound::Unbounded)) {
            if let Some(ns) = ns
                && kns != ns
            {
                break;
            }
            if !filter(obj) {
                continue;
            }
            if limit > 0 && items.len() >= limit {
                if next.is_none() {
                    next = last_key.clone().map(|k| (k, 0));
                }
                remaining += 1;
                continue;
            }
            last_key = Some((kns.clone(), kname.clone()));
            items.push(obj.clone());
        }
        if let Some((k, _)) = next {
            next = Some((k, remaining));
        }
        Page { items, rv, next }
    }

    /// Whether any object lives in namespace `ns` in any collection.
    pub fn namespace_is_empty(&self, ns: &str, collections: &[String]) -> bool {
        let inner = self.lock();
        collections.iter().all(|s| {
            inner.collections.get(s).is_none_or(|c| {
                c.objects
                    .range((ns.to_string(), String::new())..)
                    .next()
                    .is_none_or(|((kns, _), _)| kns != ns)
            })
        })
    }

    /// Commits a put (`Some(object)`) or a delete (`None`) of `(ns, name)`. The object's
    /// `metadata.resourceVersion` is set to the new revision.
    pub fn commit(
        &self,
        storage: &str,
        ns: &str,
        name: &str,
        expect: Expect,
        new: Option<Value>,
    ) -> Result<Committed, CommitError> {
        let mut inner = self.lock();
        let next_rv = inner.rv + 1;
        let key = (ns.to_string(), name.to_string());
        let history_limit = self.history_limit;
        let c = inner.collection(storage);
        let prev = c.objects.get(&key).cloned();
        match (expect, &prev) {
            (Expect::Absent, Some(_)) => return Err(CommitError::Exists),
            (Expect::Rv(_), None) => return Err(CommitError::NotFound),
            (Expect::Rv(want), Some((have, _))) if *have != want => {
                return Err(CommitError::Conflict);
            }
            _ => {}
        }
        if new.is_none() && prev.is_none() {
            return Err(CommitError::NotFound);
        }
        let (event, stored) = match new {
            Some(mut obj) => {
                obj["metadata"]["resourceVersion"] = Value::String(next_rv.to_string());
                let obj = Arc::new(obj);
                c.objects.insert(key.clone(), (next_rv, obj.clone()));
                let kind = if prev.is_some() {
                    EventType::Modified
                } else {
                    EventType::Added
                };
                (
                    WatchEvent {
                        rv: next_rv,
                        kind,
                        object: obj.clone(),
                        prev: prev.map(|p| p.1),
                        json: Default::default(),
                    },
                    Some(obj),
                )
            }
            None => {
                let (_, old) = c.objects.remove(&key).expect("checked above");
                let mut last = (*old).clone();
                last["metadata"]["resourceVersion"] = Value::String(next_rv.to_string());
                (
                    WatchEvent {
                        rv: next_rv,
                        kind: EventType::Deleted,
                        object: Arc::new(last),
                        prev: Some(old),
                        json: Default::default(),
                    },
                    None,
                )
            }
        };
        let id = (storage.to_string(), ns.to_string(), name.to_string());
        let (prev_obj, next_obj) = (event.prev.clone(), stored.clone());
        c.history.push_back(Arc::new(event));
        while c.history.len() > history_limit {
            if let Some(ev) = c.history.pop_front() {
                c.floor = ev.rv;
            }
        }
        c.notify.send_replace(next_rv);
        inner.rv = next_rv;
        inner.index_owners(&id, prev_obj.as_deref(), next_obj.as_deref());
        let durable = self.persister.as_ref().map(|p| {
            let op = match &stored {
                Some(obj) => PersistOp::Put {
                    storage: storage.into(),
                    namespace: ns.into(),
                    name: name.into(),
                    object: obj.clone(),
                },
                None => PersistOp::Delete {
                    storage: storage.into(),
                    namespace: ns.into(),
                    name: name.into(),
                },
            };
            p.submit(op, next_rv)
        });
        Ok(Committed {
            object: stored,
            rv: next_rv,
            durable,
        })
    }

    /// The objects whose `ownerReferences` name `owner_uid`.
    pub fn dependents(&self, owner_uid: &str) -> Vec<ObjectId> {
        self.lock()
            .dependents
            .get(owner_uid)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// A receiver that changes whenever the collection does.
    pub fn subscribe(&self, storage: &str) -> watch::Receiver<u64> {
        self.lock().collection(storage).notify.subscribe()
    }

    /// Events of `storage` after `from`, and the global revision they bring the reader up to.
    pub fn events_since(
        &self,
        storage: &str,
        from: u64,
    ) -> Result<(Vec<Arc<WatchEvent>>, u64), Gone> {
        let mut inner = self.lock();
        let rv = inner.rv;
        let c = inner.collection(storage);
        if from < c.floor {
            return Err(Gone {
                requested: from,
                oldest: c.floor,
            });
        }
        let start = c.history.partition_point(|e| e.rv <= from);
        Ok((c.history.range(start..).cloned().collect(), rv))
    }

    /// Every object of a collection (optionally one namespace) and the revision of that view.
    pub fn snapshot(&self, storage: &str, ns: Option<&str>) -> (Vec<Arc<Value>>, u64) {
        let page = self.list(storage, ns, None, 0, &|_| true);
        (page.items, page.rv)
    }

    /// The oldest revision a watch of `storage` may start from.
    pub fn floor(&self, storage: &str) -> u64 {
        self.lock().collection(storage).floor
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(ns: &str, name: &str) -> Value {
        json!({"metadata": {"namespace": ns, "name": name}})
    }

    #[test]
    fn create_update_delete_with_preconditions() {
        let s = Store::in_memory(100);
        let c = s
            .commit(
                "svc",
                "default",
                "a",
                Expect::Absent,
                Some(obj("default", "a")),
            )
            .unwrap();
        let rv1 = c.rv;
        assert_eq!(
            s.get("svc", "default", "a").unwrap()["metadata"]["resourceVersion"],
            rv1.to_string()
        );
        assert_eq!(
            s.commit(
                "svc",
                "default",
                "a",
                Expect::Absent,
                Some(obj("default", "a"))
            )
            .err(),
            Some(CommitError::Exists)
        );
        assert_eq!(
            s.commit(
                "svc",
                "default",
                "a",
                Expect::Rv(rv1 + 5),
                Some(obj("default", "a"))
            )
            .err(),
            Some(CommitError::Conflict)
        );
        let rv2 = s
            .commit(
                "svc",
                "default",
                "a",
                Expect::Rv(rv1),
                Some(obj("default", "a")),
            )
            .unwrap()
            .rv;
        assert!(rv2 > rv1);
        assert_eq!(
            s.commit("svc", "default", "b", Expect::Rv(1), None).err(),
            Some(CommitError::NotFound)
        );
        s.commit("svc", "default", "a", Expect::Rv(rv2), None)
            .unwrap();
        assert!(s.get("svc", "default", "a").is_none());
        let (events, _) = s.events_since("svc", 1).unwrap();
        let kinds: Vec<_> = events.iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            [EventType::Added, EventType::Modified, EventType::Deleted]
        );
        assert_eq!(
            events[2].object["metadata"]["resourceVersion"],
            events[2].rv.to_string()
        );
    }

    #[test]
    fn lists_are_paged_and_scoped_to_a_namespace() {
        let s = Store::in_memory(100);
        for (ns, n) in [("a", "1"), ("a", "2"), ("a", "3"), ("b", "1")] {
            s.commit("cm", ns, n, Expect::Absent, Some(obj(ns, n)))
                .unwrap();
        }
        let p = s.list("cm", Some("a"), None, 2, &|_| true);
        assert_eq!(p.items.len(), 2);
        let (after, remaining) = p.next.clone().unwrap();
        assert_eq!(remaining, 1);
        let p2 = s.list("cm", Some("a"), Some(&after), 2, &|_| true);
        assert_eq!(p2.items.len(), 1);
        assert!(p2.next.is_none());
        assert_eq!(s.list("cm", None, None, 0, &|_| true).items.len(), 4);
        assert_eq!(
            s.list("cm", None, None, 0, &|o| o["metadata"]["name"] == "1")
                .items
                .len(),
            2
        );
        assert!(!s.namespace_is_empty("b", &["cm".into()]));
        assert!(s.namespace_is_empty("c", &["cm".into()]));
    }

    #[test]
    fn history_is_bounded_and_old_revisions_are_gone() {
        let s = Store::in_memory(3);
        let mut rvs = vec![];
        for i in 0..6 {
            rvs.push(
                s.commit(
                    "x",
                    "",
                    &i.to_string(),
                    Expect::Absent,
                    Some(obj("", &i.to_string())),
                )
                .unwrap()
                .rv,
            );
        }
        assert!(s.events_since("x", rvs[0]).is_err());
        let (ev, _) = s.events_since("x", rvs[2]).unwrap();
        assert_eq!(ev.len(), 3);
        let gone = s.events_since("x", 0).unwrap_err();
        assert_eq!(gone.oldest, rvs[2]);
    }

    #[tokio::test]
    async fn subscribers_are_notified() {
        let s = Store::in_memory(10);
        let mut rx = s.subscribe("x");
        s.commit("x", "", "a", Expect::Absent, Some(obj("", "a")))
            .unwrap();
        rx.changed().await.unwrap();
        assert_eq!(*rx.borrow(), s.current_rv());
    }
}
