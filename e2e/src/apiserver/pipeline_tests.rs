//! In-process tests of the whole request pipeline: `http::handle` with `http::Request`s against
//! an in-memory server, no sockets.

use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::BodyExt;
use serde_json::{Value, json};

use super::http::{Client, handle};
use super::state::{ApiServer, ServerOptions};

fn server() -> Arc<ApiServer> {
    ApiServer::in_memory(ServerOptions {
        service_cidrs: "203.0.113.0/25,2001:db8:fffe::/108".into(),
        ..Default::default()
    })
    .unwrap()
}

async fn call(
    s: &Arc<ApiServer>,
    method: Method,
    path: &str,
    body: Option<Value>,
    content_type: &str,
) -> (u16, Value) {
    let bytes = body
        .map(|b| Bytes::from(serde_json::to_vec(&b).unwrap()))
        .unwrap_or_default();
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", content_type)
        .header("user-agent", "unit-test/1.0")
        .body(bytes)
        .unwrap();
    let resp = handle(s.clone(), req, Client { ip: None }).await;
    let code = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (code, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

async fn post(s: &Arc<ApiServer>, path: &str, body: Value) -> (u16, Value) {
    call(s, Method::POST, path, Some(body), "application/json").await
}

async fn get(s: &Arc<ApiServer>, path: &str) -> (u16, Value) {
    call(s, Method::GET, path, None, "application/json").await
}

async fn patch(s: &Arc<ApiServer>, path: &str, body: Value, ct: &str) -> (u16, Value) {
    call(s, Method::PATCH, path, Some(body), ct).await
}

#[tokio::test]
async fn create_get_update_conflict_delete() {
    let s = server();
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": "v"}});
    let (code, created) = post(&s, "/api/v1/namespaces/default/configmaps", cm.clone()).await;
    assert_eq!(code, 201);
    assert!(
        created["metadata"]["uid"].is_string()
            && created["metadata"]["creationTimestamp"].is_string()
    );
    assert_eq!(
        created["metadata"]["managedFields"][0]["manager"],
        "unit-test"
    );
    let (code, dup) = post(&s, "/api/v1/namespaces/default/configmaps", cm.clone()).await;
    assert_eq!((code, dup["reason"].as_str()), (409, Some("AlreadyExists")));
    let (code, _) = post(&s, "/api/v1/namespaces/nope/configmaps", cm.clone()).await;
    assert_eq!(code, 404);

    let mut next = created.clone();
    next["data"]["k"] = json!("w");
    let (code, updated) = call(
        &s,
        Method::PUT,
        "/api/v1/namespaces/default/configmaps/a",
        Some(next.clone()),
        "application/json",
    )
    .await;
    assert_eq!(code, 200);
    assert_ne!(
        updated["metadata"]["resourceVersion"],
        created["metadata"]["resourceVersion"]
    );
    let (code, stale) = call(
        &s,
        Method::PUT,
        "/api/v1/namespaces/default/configmaps/a",
        Some(next),
        "application/json",
    )
    .await;
    assert_eq!((code, stale["reason"].as_str()), (409, Some("Conflict")));

    let (code, list) = get(&s, "/api/v1/namespaces/default/configmaps").await;
    assert_eq!(code, 200);
    assert_eq!(list["kind"], "ConfigMapList");
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    let (code, _) = call(
        &s,
        Method::DELETE,
        "/api/v1/namespaces/default/configmaps/a",
        None,
        "application/json",
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(
        get(&s, "/api/v1/namespaces/default/configmaps/a").await.0,
        404
    );
}

#[tokio::test]
async fn malformed_requests_get_clear_client_errors() {
    let s = server();
    let req = Request::builder()
        .method(Method::POST)
        .uri("/api/v1/namespaces/default/configmaps")
        .header("content-type", "application/json")
        .body(Bytes::from_static(b"{not json"))
        .unwrap();
    let resp = handle(s.clone(), req, Client { ip: None }).await;
    assert_eq!(resp.status().as_u16(), 400);
    let cases: Vec<(Method, &str, Value, &str, u16)> = vec![
        (
            Method::POST,
            "/api/v1/namespaces/default/configmaps",
            json!({"apiVersion": "apps/v1", "kind": "ConfigMap", "metadata": {"name": "x"}}),
            "application/json",
            400,
        ),
        (
            Method::POST,
            "/api/v1/namespaces/default/configmaps",
            json!({"kind": "Secret", "metadata": {"name": "x"}}),
            "application/json",
            400,
        ),
        (
            Method::POST,
            "/api/v1/namespaces/default/configmaps",
            json!({"metadata": {}}),
            "application/json",
            422,
        ),
        (
            Method::POST,
            "/api/v1/namespaces/default/configmaps",
            json!({"metadata": {"name": "Bad_Name"}}),
            "application/json",
            422,
        ),
        (
            Method::POST,
            "/api/v1/namespaces/default/configmaps",
            json!({"metadata": {"name": "x", "namespace": "other"}}),
            "application/json",
            400,
        ),
        (
            Method::POST,
            "/api/v1/namespaces/default/configmaps",
            json!({"metadata": {"name": "x"}, "data": "notamap"}),
            "application/json",
            400,
        ),
        (
            Method::PATCH,
            "/api/v1/namespaces/default/configmaps/missing",
            json!({}),
            "application/merge-patch+json",
            404,
        ),
        (
            Method::PATCH,
            "/api/v1/namespaces/default/configmaps/x",
            json!({}),
            "text/plain",
            415,
        ),
        (
            Method::GET,
            "/api/v1/namespaces/default/nothings",
            json!(null),
            "application/json",
            404,
        ),
        (
            Method::GET,
            "/api/v1/namespaces/default/configmaps?labelSelector=a%20b",
            json!(null),
            "application/json",
            400,
        ),
        (
            Method::GET,
            "/api/v1/namespaces/default/configmaps?fieldSelector=spec.x%3Dy",
            json!(null),
            "application/json",
            400,
        ),
        (
            Method::GET,
            "/api/v1/namespaces/default/configmaps?limit=abc",
            json!(null),
            "application/json",
            400,
        ),
        (
            Method::GET,
            "/api/v1/namespaces/default/configmaps?continue=%21%21",
            json!(null),
            "application/json",
            400,
        ),
        (
            Method::GET,
            "/api/v1/nodes/x/status/extra",
            json!(null),
            "application/json",
            404,
        ),
        (
            Method::PUT,
            "/api/v1/namespaces/default/configmaps",
            json!({}),
            "application/json",
            405,
        ),
    ];
    for (m, path, body, ct, want) in cases {
        let (code, status) = call(
            &s,
            m.clone(),
            path,
            if body.is_null() {
                None
            } else {
                Some(body.clone())
            },
            ct,
        )
        .await;
        assert_eq!(code, want, "{m} {path} {body}: {status}");
        assert_eq!(status["kind"], "Status", "{m} {path}");
    }
}

#[tokio::test]
async fn strategic_merge_and_apply_through_the_handler() {
    let s = server();
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}, "spec": {"ports": [{"port": 80, "name": "http"}]}});
    assert_eq!(
        post(&s, "/api/v1/namespaces/default/services", svc).await.0,
        201
    );
    let (code, out) = patch(
        &s,
        "/api/v1/namespaces/default/services/web",
        json!({"spec": {"ports": [{"port": 443, "name": "https"}]}}),
        "application/strategic-merge-patch+json",
    )
    .await;
    assert_eq!(code, 200, "{out}");
    assert_eq!(out["spec"]["ports"].as_array().unwrap().len(), 2);
    let cfg = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}, "spec": {"type": "NodePort"}});
    // The creator owns the defaulted type: changing it conflicts unless forced.
    let (code, out) = patch(
        &s,
        "/api/v1/namespaces/default/services/web?fieldManager=me",
        cfg.clone(),
        "application/apply-patch+yaml",
    )
    .await;
    assert_eq!(
        (code, out["reason"].as_str()),
        (409, Some("Conflict")),
        "{out}"
    );
    let (code, out) = patch(
        &s,
        "/api/v1/namespaces/default/services/web?fieldManager=me&force=true",
        cfg.clone(),
        "application/apply-patch+yaml",
    )
    .await;
    assert_eq!(code, 200, "{out}");
    assert_eq!(out["spec"]["type"], "NodePort");
    assert!(out["spec"]["ports"][0]["nodePort"].is_number());
    let (code, out) = patch(
        &s,
        "/api/v1/namespaces/default/services/web",
        cfg,
        "application/apply-patch+yaml",
    )
    .await;
    assert_eq!(code, 422, "apply needs a field manager: {out}");
    // Apply creates.
    let new = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "fresh"}, "data": {"a": "b"}});
    let (code, _) = patch(
        &s,
        "/api/v1/namespaces/default/configmaps/fresh?fieldManager=me",
        new,
        "application/apply-patch+yaml",
    )
    .await;
    assert_eq!(code, 201);
}

#[tokio::test]
async fn garbage_collection_follows_owner_references() {
    let s = server();
    let (_, owner) = post(
        &s,
        "/api/v1/namespaces/default/configmaps",
        json!({"metadata": {"name": "owner"}}),
    )
    .await;
    let uid = owner["metadata"]["uid"].as_str().unwrap().to_string();
    let (_, other) = post(
        &s,
        "/api/v1/namespaces/default/configmaps",
        json!({"metadata": {"name": "other"}}),
    )
    .await;
    let other_uid = other["metadata"]["uid"].as_str().unwrap().to_string();
    let owned =
        |name: &str, refs: Value| json!({"metadata": {"name": name, "ownerReferences": refs}});
    let r =
        |n: &str, u: &str| json!({"apiVersion": "v1", "kind": "ConfigMap", "name": n, "uid": u});
    post(
        &s,
        "/api/v1/namespaces/default/configmaps",
        owned("child", json!([r("owner", &uid)])),
    )
    .await;
    post(
        &s,
        "/api/v1/namespaces/default/configmaps",
        owned("shared", json!([r("owner", &uid), r("other", &other_uid)])),
    )
    .await;
    post(
        &s,
        "/api/v1/namespaces/default/configmaps",
        owned("grandchild", json!([r("child", "will-be-set")])),
    )
    .await;
    let (_, child) = get(&s, "/api/v1/namespaces/default/configmaps/child").await;
    let child_uid = child["metadata"]["uid"].as_str().unwrap().to_string();
    patch(
        &s,
        "/api/v1/namespaces/default/configmaps/grandchild",
        json!({"metadata": {"ownerReferences": [r("child", &child_uid)]}}),
        "application/merge-patch+json",
    )
    .await;

    call(
        &s,
        Method::DELETE,
        "/api/v1/namespaces/default/configmaps/owner",
        None,
        "application/json",
    )
    .await;
    s.collect_garbage().await;
    assert_eq!(
        get(&s, "/api/v1/namespaces/default/configmaps/child")
            .await
            .0,
        404
    );
    assert_eq!(
        get(&s, "/api/v1/namespaces/default/configmaps/grandchild")
            .await
            .0,
        404,
        "deletion cascades"
    );
    let (code, shared) = get(&s, "/api/v1/namespaces/default/configmaps/shared").await;
    assert_eq!(code, 200, "an object with a live owner stays");
    assert_eq!(
        shared["metadata"]["ownerReferences"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Orphan propagation keeps dependents and drops the reference.
    post(
        &s,
        "/api/v1/namespaces/default/configmaps",
        owned("orphan", json!([r("other", &other_uid)])),
    )
    .await;
    call(
        &s,
        Method::DELETE,
        "/api/v1/namespaces/default/configmaps/other?propagationPolicy=Orphan",
        None,
        "application/json",
    )
    .await;
    s.collect_garbage().await;
    let (code, orphan) = get(&s, "/api/v1/namespaces/default/configmaps/orphan").await;
    assert_eq!(code, 200);
    assert!(orphan["metadata"].get("ownerReferences").is_none());
}

#[tokio::test]
async fn namespaces_terminate_and_empty() {
    let s = server();
    post(
        &s,
        "/api/v1/namespaces",
        json!({"metadata": {"name": "team"}}),
    )
    .await;
    post(
        &s,
        "/api/v1/namespaces/team/configmaps",
        json!({"metadata": {"name": "c", "finalizers": ["example.com/x"]}}),
    )
    .await;
    let (code, ns) = call(
        &s,
        Method::DELETE,
        "/api/v1/namespaces/team",
        None,
        "application/json",
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(ns["status"]["phase"], "Terminating");
    let (code, refused) = post(
        &s,
        "/api/v1/namespaces/team/configmaps",
        json!({"metadata": {"name": "d"}}),
    )
    .await;
    assert_eq!((code, refused["reason"].as_str()), (403, Some("Forbidden")));
    s.reconcile_namespaces().await;
    assert_eq!(
        get(&s, "/api/v1/namespaces/team").await.0,
        200,
        "a finalizer holds the namespace"
    );
    patch(
        &s,
        "/api/v1/namespaces/team/configmaps/c",
        json!({"metadata": {"finalizers": null}}),
        "application/merge-patch+json",
    )
    .await;
    s.reconcile_namespaces().await;
    assert_eq!(get(&s, "/api/v1/namespaces/team").await.0, 404);
    assert_eq!(
        call(
            &s,
            Method::DELETE,
            "/api/v1/namespaces/kube-system",
            None,
            "application/json"
        )
        .await
        .0,
        403
    );
}

#[tokio::test]
async fn events_expire_after_the_ttl() {
    let s = ApiServer::in_memory(ServerOptions {
        service_cidrs: "203.0.113.0/25".into(),
        event_ttl: std::time::Duration::from_secs(60),
        ..Default::default()
    })
    .unwrap();
    let ev = |name: &str, t: &str| json!({"metadata": {"name": name}, "involvedObject": {"kind": "Service", "name": "web", "namespace": "default"}, "reason": "X", "message": "m", "type": "Normal", "lastTimestamp": t});
    post(
        &s,
        "/api/v1/namespaces/default/events",
        ev("old", "2020-01-01T00:00:00Z"),
    )
    .await;
    post(
        &s,
        "/api/v1/namespaces/default/events",
        ev("new", &super::time::now_time()),
    )
    .await;
    s.expire_events().await;
    assert_eq!(
        get(&s, "/api/v1/namespaces/default/events/old").await.0,
        404
    );
    assert_eq!(
        get(&s, "/api/v1/namespaces/default/events/new").await.0,
        200
    );
    let (code, v1) = get(&s, "/apis/events.k8s.io/v1/namespaces/default/events/new").await;
    assert_eq!(code, 200);
    assert_eq!(v1["regarding"]["name"], "web");
    assert_eq!(v1["note"], "m");
}

#[tokio::test]
async fn tables_and_discovery() {
    let s = server();
    let req = Request::builder()
        .uri("/api/v1/namespaces/default/services")
        .header(
            "accept",
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
        )
        .body(Bytes::new())
        .unwrap();
    let resp = handle(s.clone(), req, Client { ip: None }).await;
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .contains("as=Table")
    );
    let t: Value =
        serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(t["kind"], "Table");
    assert_eq!(t["rows"][0]["cells"][0], "kubernetes");
    let (code, apis) = get(&s, "/apis").await;
    assert_eq!(code, 200);
    assert_eq!(apis["kind"], "APIGroupList");
    let (code, version) = get(&s, "/version").await;
    assert_eq!((code, version["minor"].as_str()), (200, Some("35")));
    let (code, root) = get(&s, "/openapi/v3").await;
    assert_eq!(code, 200);
    assert!(root["paths"].get("api/v1").is_some());
}

async fn next_line(body: &mut super::http::Body) -> Value {
    let frame = tokio::time::timeout(std::time::Duration::from_secs(5), body.frame())
        .await
        .expect("a watch event in time")
        .expect("stream open")
        .unwrap();
    let data = frame.into_data().unwrap();
    serde_json::from_slice(&data).unwrap()
}

#[tokio::test]
async fn watches_follow_selectors_and_report_gone() {
    let s = server();
    let rv = s.store.current_rv();
    let req = Request::builder()
        .uri(format!("/api/v1/namespaces/default/configmaps?watch=true&labelSelector=app%3Da&resourceVersion={rv}"))
        .body(Bytes::new())
        .unwrap();
    let mut body = handle(s.clone(), req, Client { ip: None })
        .await
        .into_body();
    post(
        &s,
        "/api/v1/namespaces/default/configmaps",
        json!({"metadata": {"name": "x", "labels": {"app": "a"}}}),
    )
    .await;
    post(
        &s,
        "/api/v1/namespaces/default/configmaps",
        json!({"metadata": {"name": "other", "labels": {"app": "z"}}}),
    )
    .await;
    let relabel = |app: &str| json!({"metadata": {"labels": {"app": app}}});
    patch(
        &s,
        "/api/v1/namespaces/default/configmaps/x",
        relabel("b"),
        "application/merge-patch+json",
    )
    .await;
    patch(
        &s,
        "/api/v1/namespaces/default/configmaps/x",
        relabel("a"),
        "application/merge-patch+json",
    )
    .await;
    call(
        &s,
        Method::DELETE,
        "/api/v1/namespaces/default/configmaps/x",
        None,
        "application/json",
    )
    .await;
    let mut seen = vec![];
    for _ in 0..4 {
        let ev = next_line(&mut body).await;
        assert_eq!(ev["object"]["metadata"]["name"], "x");
        seen.push(ev["type"].as_str().unwrap().to_string());
    }
    assert_eq!(
        seen,
        ["ADDED", "DELETED", "ADDED", "DELETED"],
        "leaving and entering the selector are DELETED and ADDED"
    );

    let small = ApiServer::in_memory(ServerOptions {
        service_cidrs: "203.0.113.0/25".into(),
        history_limit: 2,
        ..Default::default()
    })
    .unwrap();
    let start = small.store.current_rv();
    for i in 0..5 {
        post(
            &small,
            "/api/v1/namespaces/default/configmaps",
            json!({"metadata": {"name": format!("c{i}")}}),
        )
        .await;
    }
    let req = Request::builder()
        .uri(format!(
            "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={start}"
        ))
        .body(Bytes::new())
        .unwrap();
    let mut body = handle(small.clone(), req, Client { ip: None })
        .await
        .into_body();
    let ev = next_line(&mut body).await;
    assert_eq!(ev["type"], "ERROR");
    assert_eq!(ev["object"]["code"], 410);
    assert_eq!(ev["object"]["reason"], "Expired");
}

fn widget_crd(status_subresource: bool) -> Value {
    let mut v = json!({"name": "v1", "served": true, "storage": true,
        "schema": {"openAPIV3Schema": {"type": "object", "properties": {
            "spec": {"type": "object", "required": ["size"], "properties": {
                "size": {"type": "integer", "minimum": 1, "maximum": 10},
                "color": {"type": "string", "enum": ["red", "blue"], "default": "red"}}},
            "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}}}}}});
    if status_subresource {
        v["subresources"] = json!({"status": {}});
    }
    json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.io"},
        "spec": {"group": "example.io", "scope": "Namespaced", "names": {"plural": "widgets", "kind": "Widget"}, "versions": [v]}})
}

#[tokio::test]
async fn custom_resources_validation_defaults_generation_and_status() {
    let s = server();
    let (code, crd) = post(
        &s,
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        widget_crd(true),
    )
    .await;
    assert_eq!(code, 201, "{crd}");
    assert_eq!(crd["status"]["conditions"][1]["type"], "Established");
    let (code, list) = get(&s, "/apis/example.io/v1").await;
    assert_eq!(code, 200);
    assert!(
        list["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "widgets/status")
    );

    let base = "/apis/example.io/v1/namespaces/default/widgets";
    let (code, bad) = post(&s, base, json!({"apiVersion": "example.io/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 11, "color": "green"}})).await;
    assert_eq!(code, 422, "{bad}");
    let fields: Vec<&str> = bad["details"]["causes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["spec.color", "spec.size"]);
    let (code, bad) = post(&s, base, json!({"apiVersion": "example.io/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {}})).await;
    assert_eq!(
        (code, bad["details"]["causes"][0]["field"].as_str()),
        (422, Some("spec.size"))
    );

    let (code, w) = post(&s, base, json!({"apiVersion": "example.io/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 3}, "status": {"ready": true}})).await;
    assert_eq!(code, 201);
    assert_eq!(w["spec"]["color"], "red", "defaulted");
    assert!(
        w.get("status").is_none(),
        "status is not set through the main resource"
    );
    assert_eq!(w["metadata"]["generation"], 1);
    let (_, st) = patch(
        &s,
        &format!("{base}/w/status"),
        json!({"status": {"ready": true}, "spec": {"size": 9}}),
        "application/merge-patch+json",
    )
    .await;
    assert_eq!(
        (
            st["status"]["ready"].as_bool(),
            st["spec"]["size"].as_i64(),
            st["metadata"]["generation"].as_i64()
        ),
        (Some(true), Some(3), Some(1))
    );
    let (_, sp) = patch(
        &s,
        &format!("{base}/w"),
        json!({"spec": {"size": 4}}),
        "application/merge-patch+json",
    )
    .await;
    assert_eq!(sp["metadata"]["generation"], 2);
    let (_, meta) = patch(
        &s,
        &format!("{base}/w"),
        json!({"metadata": {"labels": {"a": "b"}}}),
        "application/merge-patch+json",
    )
    .await;
    assert_eq!(
        meta["metadata"]["generation"], 2,
        "metadata changes do not bump generation"
    );
    // A PUT without a resourceVersion is refused for custom resources.
    let mut replace = meta.clone();
    replace["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("resourceVersion");
    let (code, _) = call(
        &s,
        Method::PUT,
        &format!("{base}/w"),
        Some(replace),
        "application/json",
    )
    .await;
    assert_eq!(code, 422);

    // Deleting the CRD deletes its objects and stops serving it.
    call(
        &s,
        Method::DELETE,
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.io",
        None,
        "application/json",
    )
    .await;
    assert_eq!(get(&s, "/apis/example.io/v1").await.0, 404);
    assert!(s.store.get("example.io/widgets", "default", "w").is_none());
}

#[tokio::test]
async fn without_a_status_subresource_status_is_part_of_the_object() {
    let s = server();
    post(
        &s,
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        widget_crd(false),
    )
    .await;
    let base = "/apis/example.io/v1/namespaces/default/widgets";
    let (_, w) = post(&s, base, json!({"apiVersion": "example.io/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 3}, "status": {"ready": true}})).await;
    assert_eq!(w["status"]["ready"], true);
    let (_, w) = patch(
        &s,
        &format!("{base}/w"),
        json!({"status": {"ready": false}}),
        "application/merge-patch+json",
    )
    .await;
    assert_eq!(w["metadata"]["generation"], 2);
    assert_eq!(get(&s, &format!("{base}/w/status")).await.0, 404);
}

#[tokio::test]
async fn dual_stack_node_status_by_merge_and_strategic_patch() {
    let s = server();
    let (code, _) = post(&s, "/api/v1/nodes", json!({"metadata": {"name": "node1"}})).await;
    assert_eq!(code, 201);
    let status = json!({"status": {"addresses": [
        {"type": "InternalIP", "address": "192.0.2.11"}, {"type": "InternalIP", "address": "2001:db8::11"}, {"type": "Hostname", "address": "node1"}]}});
    let (code, out) = patch(
        &s,
        "/api/v1/nodes/node1/status",
        status.clone(),
        "application/merge-patch+json",
    )
    .await;
    assert_eq!(code, 200, "{out}");
    assert_eq!(out["status"]["addresses"].as_array().unwrap().len(), 3);
    let (code, again) = patch(
        &s,
        "/api/v1/nodes/node1/status",
        status.clone(),
        "application/merge-patch+json",
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(
        again["metadata"]["resourceVersion"], out["metadata"]["resourceVersion"],
        "unchanged: a no-op"
    );
    let (code, out) = patch(
        &s,
        "/api/v1/nodes/node1/status",
        status,
        "application/strategic-merge-patch+json",
    )
    .await;
    assert_eq!(code, 200, "{out}");
    assert_eq!(out["status"]["addresses"].as_array().unwrap().len(), 3);
    // Server-side apply still requires each key once in what is applied.
    let cfg = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node1"}, "status": {"addresses": [
        {"type": "InternalIP", "address": "192.0.2.11"}, {"type": "InternalIP", "address": "2001:db8::11"}]}});
    let (code, _) = patch(
        &s,
        "/api/v1/nodes/node1/status?fieldManager=agent&force=true",
        cfg,
        "application/apply-patch+yaml",
    )
    .await;
    assert_eq!(code, 422);
}

#[tokio::test]
async fn foreground_deletion_waits_for_dependents() {
    let s = server();
    let (_, owner) = post(
        &s,
        "/api/v1/namespaces/default/configmaps",
        json!({"metadata": {"name": "owner"}}),
    )
    .await;
    let uid = owner["metadata"]["uid"].as_str().unwrap().to_string();
    let r = json!([{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid, "blockOwnerDeletion": true}]);
    post(
        &s,
        "/api/v1/namespaces/default/configmaps",
        json!({"metadata": {"name": "plain", "ownerReferences": r}}),
    )
    .await;
    post(&s, "/api/v1/namespaces/default/configmaps", json!({"metadata": {"name": "held", "ownerReferences": r, "finalizers": ["example.com/hold"]}})).await;
    let (code, marked) = call(
        &s,
        Method::DELETE,
        "/api/v1/namespaces/default/configmaps/owner?propagationPolicy=Foreground",
        None,
        "application/json",
    )
    .await;
    assert_eq!(code, 200);
    assert!(marked["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(
        marked["metadata"]["finalizers"],
        json!(["foregroundDeletion"])
    );
    s.collect_garbage().await;
    assert_eq!(
        get(&s, "/api/v1/namespaces/default/configmaps/plain")
            .await
            .0,
        404
    );
    assert_eq!(
        get(&s, "/api/v1/namespaces/default/configmaps/owner")
            .await
            .0,
        200,
        "a dependent is still held"
    );
    patch(
        &s,
        "/api/v1/namespaces/default/configmaps/held",
        json!({"metadata": {"finalizers": null}}),
        "application/merge-patch+json",
    )
    .await;
    s.collect_garbage().await;
    assert_eq!(
        get(&s, "/api/v1/namespaces/default/configmaps/held")
            .await
            .0,
        404
    );
    assert_eq!(
        get(&s, "/api/v1/namespaces/default/configmaps/owner")
            .await
            .0,
        404
    );
}
