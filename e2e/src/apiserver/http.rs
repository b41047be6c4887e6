//! HTTP handling: from a request (already read into memory) to a response. Routing, content
//! negotiation, `Warning` headers, watch streaming and metrics. Socket-free, so tests can call
//! [`handle`] with an `http::Request`.

use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::Frame;
use serde_json::{Value, json};

use super::discovery;
use super::error::{ApiError, ApiResult};
use super::patch::PatchType;
use super::request::{Encoding, Query, ResourcePath, Route, negotiate, parse_path};
use super::rest::{DeleteOptions, Intent, Req, decode_body};
use super::state::{ApiServer, version_info};
use super::table::{self, IncludeObject};
use super::watch::{self, Start, WatchSpec};

pub type Body = BoxBody<Bytes, Infallible>;

/// The largest request body accepted, as the API server's limit.
pub const MAX_BODY: usize = 3 * 1024 * 1024;

const TABLE_CONTENT_TYPE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io";

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed()
}

fn json_response(code: u16, v: &Value, content_type: &str, warnings: &[String]) -> Response<Body> {
    let mut r = Response::new(full(serde_json::to_vec(v).unwrap_or_default()));
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(content_type).unwrap_or(HeaderValue::from_static("application/json")),
    );
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, private"),
    );
    for w in warnings {
        let text = format!("299 - \"{}\"", w.replace('\\', "\\\\").replace('"', "\\\""));
        if let Ok(v) = HeaderValue::from_str(&text) {
            r.headers_mut().append(header::WARNING, v);
        }
    }
    r
}

fn error_response(e: &ApiError) -> Response<Body> {
    json_response(e.code(), &e.to_status(), "application/json", &[])
}

fn text_response(code: u16, text: String, content_type: &'static str) -> Response<Body> {
    let mut r = Response::new(full(text));
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// Who made a request, for metrics.
#[derive(Debug, Clone)]
pub struct Client {
    pub ip: Option<IpAddr>,
}

/// Handles one request.
pub async fn handle(server: Arc<ApiServer>, req: Request<Bytes>, client: Client) -> Response<Body> {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query_raw = req.uri().query().map(str::to_string);
    let ua = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let route = parse_path(&path);
    let (verb, resource, is_watch) = describe(&method, route.as_ref(), query_raw.as_deref());
    let response = match route {
        None => error_response(&ApiError::NoRoute),
        Some(route) => match dispatch(&server, route, &req, query_raw.as_deref(), &ua).await {
            Ok(r) => r,
            Err(e) => error_response(&e),
        },
    };
    let ip = client
        .ip
        .map(|i| i.to_string())
        .unwrap_or_else(|| "local".into());
    let seconds = (!is_watch).then(|| started.elapsed().as_secs_f64());
    server.metrics.observe(
        &verb,
        &resource,
        response.status().as_u16(),
        &ip,
        &ua,
        seconds,
    );
    tracing::debug!(%method, %path, code = response.status().as_u16(), elapsed_us = started.elapsed().as_micros() as u64, "request");
    response
}

fn describe(method: &Method, route: Option<&Route>, query: Option<&str>) -> (String, String, bool) {
    let Some(Route::Resource(rp)) = route else {
        let what = match route {
            Some(Route::Healthz) => "healthz",
            Some(Route::Metrics) => "metrics",
            Some(Route::Version) => "version",
            Some(_) => "discovery",
            None => "unknown",
        };
        return (method.as_str().to_ascii_lowercase(), what.into(), false);
    };
    let watching = rp.watch_prefix || Query::parse(query).map(|q| q.watch).unwrap_or(false);
    let verb = match (method, rp.name.is_some()) {
        (&Method::GET, _) if watching => "watch",
        (&Method::GET, true) => "get",
        (&Method::GET, false) => "list",
        (&Method::POST, _) => "create",
        (&Method::PUT, _) => "update",
        (&Method::PATCH, _) => "patch",
        (&Method::DELETE, true) => "delete",
        (&Method::DELETE, false) => "deletecollection",
        _ => "other",
    };
    let resource = match &rp.subresource {
        Some(s) => format!("{}/{s}", rp.plural),
        None => rp.plural.clone(),
    };
    (verb.into(), resource, watching)
}

async fn dispatch(
    server: &Arc<ApiServer>,
    route: Route,
    req: &Request<Bytes>,
    query: Option<&str>,
    ua: &str,
) -> ApiResult<Response<Body>> {
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok());
    let get_only = |m: &Method| {
        if m == Method::GET || m == Method::HEAD {
            Ok(())
        } else {
            Err(ApiError::MethodNotAllowed)
        }
    };
    match route {
        Route::Healthz => Ok(text_response(200, "ok".into(), "text/plain; charset=utf-8")),
        Route::Metrics => Ok(text_response(
            200,
            server.metrics.render(),
            "text/plain; version=0.0.4",
        )),
        Route::Version => {
            get_only(req.method())?;
            Ok(json_response(
                200,
                &version_info(server.opts.minor_version),
                "application/json",
                &[],
            ))
        }
        Route::CoreVersions | Route::Groups => {
            get_only(req.method())?;
            let registry = server.registry();
            let core = route == Route::CoreVersions;
            if discovery::wants_aggregated(accept) {
                return Ok(json_response(
                    200,
                    &discovery::aggregated(&registry, core),
                    discovery::AGGREGATED_CONTENT_TYPE,
                    &[],
                ));
            }
            let host = req
                .headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or_default();
            let doc = if core {
                discovery::core_versions(host)
            } else {
                discovery::group_list(&registry)
            };
            Ok(json_response(200, &doc, "application/json", &[]))
        }
        Route::Group(g) => {
            get_only(req.method())?;
            let doc = discovery::group(&server.registry(), &g).ok_or(ApiError::NoRoute)?;
            Ok(json_response(200, &doc, "application/json", &[]))
        }
        Route::GroupVersion(g, v) => {
            get_only(req.method())?;
            let doc =
                discovery::resource_list(&server.registry(), &g, &v).ok_or(ApiError::NoRoute)?;
            Ok(json_response(200, &doc, "application/json", &[]))
        }
        Route::OpenApiV2 => Err(ApiError::NoRoute),
        Route::OpenApiV3Root => {
            get_only(req.method())?;
            Ok(json_response(
                200,
                &super::openapi::root(&server.registry()),
                "application/json",
                &[],
            ))
        }
        Route::OpenApiV3(path) => {
            get_only(req.method())?;
            let doc = super::openapi::group_version_doc(&server.registry(), &path)
                .ok_or(ApiError::NoRoute)?;
            Ok(json_response(200, &doc, "application/json", &[]))
        }
        Route::Resource(rp) => resource(server, rp, req, query, ua, accept).await,
    }
}

async fn resource(
    server: &Arc<ApiServer>,
    rp: ResourcePath,
    req: &Request<Bytes>,
    query_raw: Option<&str>,
    ua: &str,
    accept: Option<&str>,
) -> ApiResult<Response<Body>> {
    let registry = server.registry();
    let def = registry
        .get(&rp.group, &rp.version, &rp.plural)
        .ok_or(ApiError::NoRoute)?;
    if !def.namespaced && rp.namespace.is_some() {
        return Err(ApiError::NoRoute);
    }
    match rp.subresource.as_deref() {
        None => {}
        Some("status") if def.status_subresource => {}
        Some("scale") if def.scale_subresource => {}
        Some("binding") if def.plural == "pods" && def.group.is_empty() => {}
        Some(_) => return Err(ApiError::NoRoute),
    }
    let mut query = Query::parse(query_raw)?;
    if rp.watch_prefix {
        query.watch = true;
    }
    let encoding = negotiate(accept)?;
    let include =
        IncludeObject::parse(query.include_object.as_deref()).map_err(ApiError::BadRequest)?;
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if req.body().len() > MAX_BODY {
        return Err(ApiError::TooLarge("the request is too large".into()));
    }
    // Typed Go clients send protobuf; everything below works on JSON.
    let converted: Bytes;
    let is_protobuf = content_type
        .as_deref()
        .is_some_and(|c| c.starts_with(super::protobuf::CONTENT_TYPE));
    let (body, content_type) = if is_protobuf && !req.body().is_empty() {
        let v = super::protobuf::decode(req.body()).map_err(|e| match e {
            super::protobuf::ProtoError::NoMagic | super::protobuf::ProtoError::Malformed(_) => {
                ApiError::BadRequest(e.to_string())
            }
            other => ApiError::UnsupportedMediaType(other.to_string()),
        })?;
        converted = Bytes::from(serde_json::to_vec(&v).unwrap_or_default());
        (&converted, Some("application/json".to_string()))
    } else {
        (req.body(), content_type)
    };
    let mut r = Req {
        def: def.clone(),
        path: &rp,
        query: &query,
        user_agent: Some(ua),
        warnings: vec![],
    };
    let rv_now = || server.store.current_rv().to_string();
    let respond = |code: u16, obj: Value, warnings: &[String]| -> Response<Body> {
        if encoding == Encoding::Table
            && obj.get("kind").and_then(Value::as_str) != Some("Status")
            && rp.subresource.is_none()
        {
            let t = table::table(&def, std::slice::from_ref(&obj), include, true, &rv_now());
            json_response(code, &t, TABLE_CONTENT_TYPE, warnings)
        } else {
            json_response(code, &obj, "application/json", warnings)
        }
    };
    match (req.method().clone(), rp.name.is_some()) {
        (Method::GET, true) if !query.watch => {
            let obj = server.get(&r)?;
            Ok(respond(200, obj, &[]))
        }
        (Method::GET, _) if query.watch => watch_response(server, &r, encoding, include),
        (Method::GET, false) => {
            let (items, meta) = server.list(&r)?;
            if encoding == Encoding::Table {
                let mut t = table::table(
                    &def,
                    &items,
                    include,
                    true,
                    meta["resourceVersion"].as_str().unwrap_or_default(),
                );
                t["metadata"] = meta;
                return Ok(json_response(200, &t, TABLE_CONTENT_TYPE, &[]));
            }
            let items: Vec<Value> = items;
            let list = json!({"kind": def.list_kind(), "apiVersion": def.api_version(), "metadata": meta, "items": items});
            Ok(json_response(200, &list, "application/json", &[]))
        }
        (Method::POST, false) => {
            let obj = decode_body(body, content_type.as_deref())?;
            let (code, out) = server.write(&mut r, Intent::Create(obj)).await?;
            Ok(respond(code, out, &r.warnings))
        }
        (Method::POST, true) if rp.subresource.as_deref() == Some("binding") => {
            let binding = decode_body(body, content_type.as_deref())?;
            let (code, out) = server.bind_pod(&r, &binding).await?;
            Ok(json_response(code, &out, "application/json", &[]))
        }
        (Method::PUT, true) if rp.subresource.as_deref() == Some("scale") => {
            scale_write(server, &rp, &query, ua, body, None).await
        }
        (Method::PATCH, true) if rp.subresource.as_deref() == Some("scale") => {
            let kind = PatchType::from_content_type(content_type.as_deref())
                .ok_or_else(|| unsupported_patch(content_type.as_deref()))?;
            scale_write(server, &rp, &query, ua, body, Some(kind)).await
        }
        (Method::PUT, true) => {
            let obj = decode_body(body, content_type.as_deref())?;
            let (code, out) = server.write(&mut r, Intent::Replace(obj)).await?;
            Ok(respond(code, out, &r.warnings))
        }
        (Method::PATCH, true) => {
            let kind = PatchType::from_content_type(content_type.as_deref())
                .ok_or_else(|| unsupported_patch(content_type.as_deref()))?;
            let (code, out) = server
                .write(&mut r, Intent::Patch(kind, body.to_vec()))
                .await?;
            Ok(respond(code, out, &r.warnings))
        }
        (Method::DELETE, true) if rp.subresource.is_none() => {
            let opts = DeleteOptions::parse(&query, body)?;
            let (code, out) = server.delete(&r, &opts).await?;
            Ok(json_response(code, &out, "application/json", &[]))
        }
        (Method::DELETE, false) => {
            let opts = DeleteOptions::parse(&query, body)?;
            let (code, out) = server.delete_collection(&r, &opts).await?;
            Ok(json_response(code, &out, "application/json", &[]))
        }
        _ => Err(ApiError::MethodNotAllowed),
    }
}

fn unsupported_patch(ct: Option<&str>) -> ApiError {
    ApiError::UnsupportedMediaType(format!(
        "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {:?})",
        ct.unwrap_or_default()
    ))
}

/// PUT/PATCH on `scale`: computes the new replica count and writes it to the object.
async fn scale_write(
    server: &Arc<ApiServer>,
    rp: &ResourcePath,
    query: &Query,
    ua: &str,
    body: &Bytes,
    patch: Option<PatchType>,
) -> ApiResult<Response<Body>> {
    let registry = server.registry();
    let def = registry
        .get(&rp.group, &rp.version, &rp.plural)
        .ok_or(ApiError::NoRoute)?;
    let r = Req {
        def: def.clone(),
        path: rp,
        query,
        user_agent: Some(ua),
        warnings: vec![],
    };
    let current = server.get(&r)?;
    let next = match patch {
        None => decode_body(body, Some("application/json"))?,
        Some(kind) => super::patch::apply_patch(kind, &current, body, None)
            .map_err(|e| ApiError::BadRequest(e.to_string()))?,
    };
    let replicas = next["spec"]["replicas"]
        .as_i64()
        .ok_or_else(|| ApiError::BadRequest("spec.replicas must be an integer".into()))?;
    if replicas < 0 {
        return Err(ApiError::invalid(
            "Scale",
            super::error::Subject::new(
                "autoscaling",
                "scale",
                rp.name.as_deref().unwrap_or_default(),
            ),
            super::error::FieldError::invalid(
                "spec.replicas",
                json!(replicas),
                "must be greater than or equal to 0",
            ),
        ));
    }
    let main = ResourcePath {
        subresource: None,
        ..rp.clone()
    };
    let mut mr = Req {
        def,
        path: &main,
        query,
        user_agent: Some(ua),
        warnings: vec![],
    };
    let merge = serde_json::to_vec(&json!({"spec": {"replicas": replicas}})).unwrap_or_default();
    server
        .write(&mut mr, Intent::Patch(PatchType::Merge, merge))
        .await?;
    let updated = server.get(&r)?;
    Ok(json_response(200, &updated, "application/json", &[]))
}

fn watch_response(
    server: &Arc<ApiServer>,
    r: &Req,
    encoding: Encoding,
    include: IncludeObject,
) -> ApiResult<Response<Body>> {
    let (labels, fields) = server.selectors(r)?;
    let q = r.query;
    let start = if q.send_initial_events {
        if q.resource_version_match.as_deref() != Some("NotOlderThan") || !q.allow_watch_bookmarks {
            return Err(ApiError::Invalid {
                kind: "ListOptions".into(),
                subject: Default::default(),
                errors: vec![super::error::FieldError::forbidden(
                    "sendInitialEvents",
                    "sendInitialEvents is forbidden for watch unless resourceVersionMatch is set to NotOlderThan and allowWatchBookmarks is true",
                )],
            });
        }
        Start::InitialEvents
    } else {
        match q.resource_version.as_deref() {
            None | Some("") | Some("0") => Start::Snapshot,
            Some(rv) => Start::From(rv.parse().map_err(|_| {
                ApiError::BadRequest(format!(
                    "resourceVersion: Invalid value: {rv:?}: must be a valid integer"
                ))
            })?),
        }
    };
    let timeout = match q.timeout_seconds {
        Some(t) => Duration::from_secs(t),
        // The API server picks a random timeout between the minimum request timeout and twice it.
        None => Duration::from_secs(1800 + rand::random::<u64>() % 1800),
    };
    let spec = WatchSpec {
        def: r.def.clone(),
        namespace: r.path.namespace.clone().filter(|_| r.def.namespaced),
        labels,
        fields,
        start,
        bookmarks: q.allow_watch_bookmarks,
        timeout,
        table: (encoding == Encoding::Table).then_some(include),
    };
    let rx = watch::start(server.clone(), spec);
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
    });
    let mut resp = Response::new(BodyExt::boxed(StreamBody::new(stream)));
    let ct = if encoding == Encoding::Table {
        TABLE_CONTENT_TYPE
    } else {
        "application/json"
    };
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, private"),
    );
    Ok(resp)
}
