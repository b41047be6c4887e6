//! A small in-memory API server for the runtime tests, behind a kube `Client` over a
//! `tower-test` mock. It answers exactly the calls the leader makes: list and watch (with a
//! resourceVersion history, so no event is lost between a list and its watch) of Services,
//! IPAddressPools and Namespaces; server-side apply of Service status, Service annotations and
//! pool status; merge patch of Service status; Event creation. Tests act as users through
//! [`FakeApi::create`], [`FakeApi::update`] and [`FakeApi::delete`], and can break watches with
//! a 410 Gone or delete objects without telling the watchers, as happens across a watch gap.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http::{Request, Response};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use ironlb_crds::annotations::IP_ALLOCATED_FROM_POOL;
use kube::client::Body;
use serde_json::{Value, json};
use tokio::sync::mpsc;

type ResponseBody = UnsyncBoxBody<Bytes, Infallible>;

/// The kinds the fake serves lists and watches of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Service,
    Pool,
    Namespace,
}

/// A write the controller made.
#[derive(Clone, Debug)]
pub struct Write {
    pub method: String,
    pub path: String,
    pub content_type: String,
    pub body: Value,
}

#[derive(Default)]
struct State {
    rv: u64,
    objects: BTreeMap<(Kind, String, String), Value>,
    history: Vec<(u64, Kind, &'static str, Value)>,
    watchers: Vec<(Kind, mpsc::UnboundedSender<Bytes>)>,
    writes: Vec<Write>,
    events: Vec<Value>,
}

impl State {
    /// Stamps a new resourceVersion on `object` and tells the watchers of `kind`.
    fn record(&mut self, kind: Kind, type_: &'static str, object: &mut Value) {
        self.rv += 1;
        object["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        self.history.push((self.rv, kind, type_, object.clone()));
        let line = watch_line(type_, object);
        self.watchers
            .retain(|(k, tx)| *k != kind || tx.send(line.clone()).is_ok());
    }
}

fn watch_line(type_: &str, object: &Value) -> Bytes {
    let mut line = serde_json::to_vec(&json!({"type": type_, "object": object})).unwrap();
    line.push(b'\n');
    Bytes::from(line)
}

fn key_of(kind: Kind, object: &Value) -> (Kind, String, String) {
    let meta = &object["metadata"];
    (
        kind,
        meta["namespace"].as_str().unwrap_or_default().to_string(),
        meta["name"].as_str().unwrap_or_default().to_string(),
    )
}

/// See the module docs. Cloning shares the server.
#[derive(Clone, Default)]
pub struct FakeApi {
    state: Arc<Mutex<State>>,
}

impl FakeApi {
    /// A client whose requests this fake answers.
    pub fn client(&self) -> kube::Client {
        let (mock, mut handle) = tower_test::mock::pair::<Request<Body>, Response<ResponseBody>>();
        let fake = self.clone();
        tokio::spawn(async move {
            while let Some((request, respond)) = handle.next_request().await {
                let fake = fake.clone();
                tokio::spawn(async move {
                    let response = fake.handle(request).await;
                    respond.send_response(response);
                });
            }
        });
        kube::Client::new(mock, "default")
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }

    pub fn create(&self, kind: Kind, mut object: Value) {
        let mut state = self.lock();
        state.record(kind, "ADDED", &mut object);
        state.objects.insert(key_of(kind, &object), object);
    }

    /// Replaces an object's spec and metadata as a user would; the status is kept, and so is
    /// the annotation the controller wrote.
    pub fn update(&self, kind: Kind, mut object: Value) {
        let mut state = self.lock();
        let key = key_of(kind, &object);
        if let Some(old) = state.objects.get(&key) {
            if let Some(status) = old.get("status") {
                object["status"] = status.clone();
            }
            if let Some(pool) = old["metadata"]["annotations"].get(IP_ALLOCATED_FROM_POOL) {
                object["metadata"]["annotations"][IP_ALLOCATED_FROM_POOL] = pool.clone();
            }
        }
        state.record(kind, "MODIFIED", &mut object);
        state.objects.insert(key, object);
    }

    pub fn delete(&self, kind: Kind, namespace: &str, name: &str) {
        let mut state = self.lock();
        if let Some(mut object) =
            state
                .objects
                .remove(&(kind, namespace.to_string(), name.to_string()))
        {
            state.record(kind, "DELETED", &mut object);
        }
    }

    /// Deletes without a watch event, as if it happened while the watch was down.
    pub fn delete_unseen(&self, kind: Kind, namespace: &str, name: &str) {
        let mut state = self.lock();
        state.rv += 1;
        state
            .objects
            .remove(&(kind, namespace.to_string(), name.to_string()));
    }

    /// Ends every watch of `kind` with a 410 Gone and forgets the history, so the watcher must
    /// list again.
    pub fn expire_watches(&self, kind: Kind) {
        let mut state = self.lock();
        let gone = watch_line(
            "ERROR",
            &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                    "message": "too old resource version", "reason": "Expired", "code": 410}),
        );
        state.watchers.retain(|(k, tx)| {
            if *k == kind {
                let _ = tx.send(gone.clone());
                false
            } else {
                true
            }
        });
        state.history.retain(|(_, k, _, _)| *k != kind);
    }

    pub fn get(&self, kind: Kind, namespace: &str, name: &str) -> Option<Value> {
        self.lock()
            .objects
            .get(&(kind, namespace.to_string(), name.to_string()))
            .cloned()
    }

    /// The IPs a Service's status shows.
    pub fn ingress(&self, namespace: &str, name: &str) -> Vec<String> {
        self.get(Kind::Service, namespace, name)
            .and_then(|s| s["status"]["loadBalancer"]["ingress"].as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|i| i["ip"].as_str().map(str::to_string))
            .collect()
    }

    pub fn writes(&self) -> Vec<Write> {
        self.lock().writes.clone()
    }

    /// Reasons of the Events created, with the name of the object they regard.
    pub fn events(&self) -> Vec<(String, String)> {
        self.lock()
            .events
            .iter()
            .map(|e| {
                (
                    e["reason"].as_str().unwrap_or_default().to_string(),
                    e["regarding"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                )
            })
            .collect()
    }

    /// Polls `check` until it holds; panics after 5 s.
    pub async fn eventually(&self, what: &str, check: impl Fn(&FakeApi) -> bool) {
        for _ in 0..1000 {
            if check(self) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("timed out waiting for {what}; writes: {:#?}", self.writes());
    }

    async fn handle(&self, request: Request<Body>) -> Response<ResponseBody> {
        let (parts, body) = request.into_parts();
        let bytes = body.collect_bytes().await.unwrap_or_default();
        let path = parts.uri.path().to_string();
        let query: HashMap<String, String> = parts
            .uri
            .query()
            .unwrap_or_default()
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let method = parts.method.as_str().to_string();
        let content_type = parts
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();

        let collection = match segments.as_slice() {
            ["api", "v1", "services"] => Some(Kind::Service),
            ["api", "v1", "namespaces"] => Some(Kind::Namespace),
            [
                "apis",
                "ironlb.io",
                "v1beta1",
                "namespaces",
                _,
                "ipaddresspools",
            ] => Some(Kind::Pool),
            _ => None,
        };
        if method == "GET"
            && let Some(kind) = collection
        {
            return if query.get("watch").is_some_and(|w| w == "true" || w == "1") {
                let since: u64 = query
                    .get("resourceVersion")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                self.watch(kind, since)
            } else {
                self.list(kind)
            };
        }

        if method == "PATCH" || method == "POST" {
            self.lock().writes.push(Write {
                method: method.clone(),
                path: path.clone(),
                content_type: content_type.clone(),
                body: body.clone(),
            });
        }
        match (method.as_str(), segments.as_slice()) {
            ("PATCH", ["api", "v1", "namespaces", ns, "services", name, "status"]) => {
                self.patch(Kind::Service, ns, name, |object| {
                    if content_type == "application/merge-patch+json" {
                        if body["status"]["loadBalancer"]["ingress"].is_null() {
                            object["status"]["loadBalancer"] = json!({});
                        }
                    } else {
                        // Server-side apply: what we send is what we own; what we omit goes.
                        object["status"]["loadBalancer"] = body["status"]["loadBalancer"].clone();
                        if object["status"]["loadBalancer"].is_null() {
                            object["status"]["loadBalancer"] = json!({});
                        }
                    }
                })
            }
            ("PATCH", ["api", "v1", "namespaces", ns, "services", name]) => self.patch(
                Kind::Service,
                ns,
                name,
                |object| match body["metadata"]["annotations"].get(IP_ALLOCATED_FROM_POOL) {
                    Some(pool) => {
                        if !object["metadata"]["annotations"].is_object() {
                            object["metadata"]["annotations"] = json!({});
                        }
                        object["metadata"]["annotations"][IP_ALLOCATED_FROM_POOL] = pool.clone();
                    }
                    None => {
                        if let Some(map) = object["metadata"]["annotations"].as_object_mut() {
                            map.remove(IP_ALLOCATED_FROM_POOL);
                        }
                    }
                },
            ),
            (
                "PATCH",
                [
                    "apis",
                    "ironlb.io",
                    "v1beta1",
                    "namespaces",
                    ns,
                    "ipaddresspools",
                    name,
                    "status",
                ],
            ) => self.patch(Kind::Pool, ns, name, |object| {
                object["status"] = body["status"].clone();
            }),
            ("POST", ["apis", "events.k8s.io", "v1", "namespaces", _, "events"]) => {
                self.lock().events.push(body.clone());
                respond(201, &body)
            }
            _ => not_found(&path),
        }
    }

    fn patch(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
        change: impl FnOnce(&mut Value),
    ) -> Response<ResponseBody> {
        let mut state = self.lock();
        let key = (kind, namespace.to_string(), name.to_string());
        let Some(mut object) = state.objects.get(&key).cloned() else {
            return not_found(name);
        };
        change(&mut object);
        state.record(kind, "MODIFIED", &mut object);
        state.objects.insert(key, object.clone());
        respond(200, &object)
    }

    fn list(&self, kind: Kind) -> Response<ResponseBody> {
        let state = self.lock();
        let items: Vec<Value> = state
            .objects
            .iter()
            .filter(|((k, _, _), _)| *k == kind)
            .map(|(_, v)| v.clone())
            .collect();
        respond(
            200,
            &json!({"apiVersion": "v1", "kind": "List",
                    "metadata": {"resourceVersion": state.rv.to_string()}, "items": items}),
        )
    }

    fn watch(&self, kind: Kind, since: u64) -> Response<ResponseBody> {
        let (tx, rx) = mpsc::unbounded_channel();
        {
            let mut state = self.lock();
            for (rv, k, type_, object) in &state.history {
                if *k == kind && *rv > since {
                    let _ = tx.send(watch_line(type_, object));
                }
            }
            state.watchers.push((kind, tx));
        }
        let stream = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|line| (line, rx))
        })
        .map(|line| Ok::<_, Infallible>(Frame::data(line)));
        Response::builder()
            .status(200)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(StreamBody::new(stream).boxed_unsync())
            .unwrap()
    }
}

fn respond(code: u16, body: &Value) -> Response<ResponseBody> {
    Response::builder()
        .status(code)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(serde_json::to_vec(body).unwrap())).boxed_unsync())
        .unwrap()
}

fn not_found(what: &str) -> Response<ResponseBody> {
    respond(
        404,
        &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                "message": format!("{what} not found"), "reason": "NotFound", "code": 404}),
    )
}
