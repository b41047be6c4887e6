//! Parsing of request paths and query parameters into what the handlers work with.

use super::error::ApiError;

/// What a path addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Version,
    Healthz,
    Metrics,
    /// `/api`
    CoreVersions,
    /// `/apis`
    Groups,
    /// `/apis/{group}`
    Group(String),
    /// `/api/v1` or `/apis/{group}/{version}`
    GroupVersion(String, String),
    OpenApiV2,
    OpenApiV3Root,
    OpenApiV3(String),
    Resource(ResourcePath),
}

/// A path to a collection, an object, or a subresource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourcePath {
    pub group: String,
    pub version: String,
    pub namespace: Option<String>,
    pub plural: String,
    pub name: Option<String>,
    pub subresource: Option<String>,
    /// The legacy `/watch/` prefix was used.
    pub watch_prefix: bool,
}

fn segments(path: &str) -> Vec<&str> {
    path.split('/').filter(|s| !s.is_empty()).collect()
}

/// Maps a request path to a route, or `None` for paths the server does not serve.
pub fn parse_path(path: &str) -> Option<Route> {
    let segs = segments(path);
    match segs.as_slice() {
        ["version"] => return Some(Route::Version),
        ["healthz" | "readyz" | "livez", ..] => return Some(Route::Healthz),
        ["metrics"] => return Some(Route::Metrics),
        ["api"] => return Some(Route::CoreVersions),
        ["apis"] => return Some(Route::Groups),
        ["apis", g] => return Some(Route::Group(g.to_string())),
        ["api", v] => return Some(Route::GroupVersion(String::new(), v.to_string())),
        ["apis", g, v] => return Some(Route::GroupVersion(g.to_string(), v.to_string())),
        ["openapi", "v2"] | ["swagger.json"] => return Some(Route::OpenApiV2),
        ["openapi", "v3"] => return Some(Route::OpenApiV3Root),
        ["openapi", "v3", rest @ ..] => return Some(Route::OpenApiV3(rest.join("/"))),
        _ => {}
    }
    let (group, version, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] => (String::new(), v.to_string(), rest),
        ["apis", g, v, rest @ ..] => (g.to_string(), v.to_string(), rest),
        _ => return None,
    };
    let (watch_prefix, rest) = match rest {
        ["watch", rest @ ..] => (true, rest),
        _ => (false, rest),
    };
    let mk = |namespace: Option<&str>, plural: &str, name: Option<&str>, sub: Option<&str>| {
        Some(Route::Resource(ResourcePath {
            group: group.clone(),
            version: version.clone(),
            namespace: namespace.map(str::to_string),
            plural: plural.to_string(),
            name: name.map(str::to_string),
            subresource: sub.map(str::to_string),
            watch_prefix,
        }))
    };
    match rest {
        [] => None,
        ["namespaces", ns, sub @ ("status" | "finalize")] if group.is_empty() => {
            mk(None, "namespaces", Some(ns), Some(sub))
        }
        ["namespaces", ns, plural] => mk(Some(ns), plural, None, None),
        ["namespaces", ns, plural, name] => mk(Some(ns), plural, Some(name), None),
        ["namespaces", ns, plural, name, sub] => mk(Some(ns), plural, Some(name), Some(sub)),
        [plural] => mk(None, plural, None, None),
        [plural, name] => mk(None, plural, Some(name), None),
        [plural, name, sub] => mk(None, plural, Some(name), Some(sub)),
        _ => None,
    }
}

/// The query parameters the API server understands.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    pub watch: bool,
    pub resource_version: Option<String>,
    pub resource_version_match: Option<String>,
    pub timeout_seconds: Option<u64>,
    pub allow_watch_bookmarks: bool,
    pub send_initial_events: bool,
    pub label_selector: Option<String>,
    pub field_selector: Option<String>,
    pub limit: Option<usize>,
    pub continue_token: Option<String>,
    pub field_manager: Option<String>,
    pub force: bool,
    pub dry_run: bool,
    pub field_validation: Option<String>,
    pub include_object: Option<String>,
    pub propagation_policy: Option<String>,
    pub grace_period_seconds: Option<i64>,
    pub orphan_dependents: Option<bool>,
}

fn parse_bool(key: &str, v: &str) -> Result<bool, ApiError> {
    match v {
        "true" | "1" | "True" | "t" | "T" | "TRUE" => Ok(true),
        "false" | "0" | "False" | "f" | "F" | "FALSE" | "" => Ok(false),
        other => Err(ApiError::BadRequest(format!(
            "invalid value for {key}: {other:?}: must be a boolean"
        ))),
    }
}

fn parse_num<T: std::str::FromStr>(key: &str, v: &str) -> Result<T, ApiError> {
    v.parse().map_err(|_| {
        ApiError::BadRequest(format!(
            "invalid value for {key}: {v:?}: must be an integer"
        ))
    })
}

impl Query {
    pub fn parse(raw: Option<&str>) -> Result<Query, ApiError> {
        let mut q = Query::default();
        let Some(raw) = raw else { return Ok(q) };
        for (k, v) in form_urlencoded_pairs(raw) {
            match k.as_str() {
                "watch" => q.watch = parse_bool(&k, &v)?,
                "resourceVersion" => q.resource_version = Some(v),
                "resourceVersionMatch" => q.resource_version_match = Some(v),
                "timeoutSeconds" => q.timeout_seconds = Some(parse_num(&k, &v)?),
                "allowWatchBookmarks" => q.allow_watch_bookmarks = parse_bool(&k, &v)?,
                "sendInitialEvents" => q.send_initial_events = parse_bool(&k, &v)?,
                "labelSelector" => q.label_selector = Some(v),
                "fieldSelector" => q.field_selector = Some(v),
                "limit" => q.limit = Some(parse_num(&k, &v)?),
                "continue" => q.continue_token = Some(v).filter(|s| !s.is_empty()),
                "fieldManager" => q.field_manager = Some(v),
                "force" => q.force = parse_bool(&k, &v)?,
                "dryRun" => {
                    q.dry_run = match v.as_str() {
                        "All" => true,
                        "" => false,
                        other => {
                            return Err(ApiError::BadRequest(format!(
                                "dryRun: Unsupported value: {other:?}: supported values: \"All\""
                            )));
                        }
                    }
                }
                "fieldValidation" => q.field_validation = Some(v),
                "includeObject" => q.include_object = Some(v),
                "propagationPolicy" => q.propagation_policy = Some(v),
                "gracePeriodSeconds" => q.grace_period_seconds = Some(parse_num(&k, &v)?),
                "orphanDependents" => q.orphan_dependents = Some(parse_bool(&k, &v)?),
                _ => {}
            }
        }
        if let Some(fv) = &q.field_validation
            && !matches!(fv.as_str(), "Strict" | "Warn" | "Ignore" | "")
        {
            return Err(ApiError::BadRequest(format!(
                "fieldValidation: Unsupported value: {fv:?}: supported values: \"Ignore\", \"Strict\", \"Warn\""
            )));
        }
        Ok(q)
    }

    /// `Strict`, `Warn` (the default) or `Ignore`.
    pub fn validation(&self) -> &str {
        match self.field_validation.as_deref() {
            Some("Strict") => "Strict",
            Some("Ignore") => "Ignore",
            _ => "Warn",
        }
    }
}

/// `application/x-www-form-urlencoded` pairs with percent- and plus-decoding.
pub fn form_urlencoded_pairs(raw: &str) -> Vec<(String, String)> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(c) => {
                        out.push(c);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// How the client wants the response encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Json,
    /// `application/json;as=Table;g=meta.k8s.io;v=v1` (or v1beta1).
    Table,
}

/// Picks the first acceptable media type: a Table if asked for first, else JSON.
pub fn negotiate(accept: Option<&str>) -> Result<Encoding, ApiError> {
    let Some(accept) = accept else {
        return Ok(Encoding::Json);
    };
    for part in accept.split(',') {
        let mut params = part.split(';').map(str::trim);
        let media = params.next().unwrap_or_default();
        let params: Vec<&str> = params.collect();
        let has = |k: &str, v: &str| {
            params.iter().any(|p| {
                p.split_once('=')
                    .is_some_and(|(pk, pv)| pk.trim() == k && pv.trim() == v)
            })
        };
        if media == "application/json"
            || media == "*/*"
            || media == "application/*"
            || media.is_empty()
        {
            if has("as", "Table") && has("g", "meta.k8s.io") {
                return Ok(Encoding::Table);
            }
            if params.iter().any(|p| p.starts_with("as=")) {
                // PartialObjectMetadata and other conversions: not served; try the next type.
                continue;
            }
            return Ok(Encoding::Json);
        }
        if media == "application/yaml" {
            return Ok(Encoding::Json);
        }
    }
    if accept.contains("application/vnd.kubernetes.protobuf") {
        // Clients that ask for protobuf also accept JSON when it is the only thing offered.
        return Ok(Encoding::Json);
    }
    Err(ApiError::NotAcceptable(format!(
        "only the following media types are accepted: application/json, application/yaml (got {accept:?})"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(path: &str) -> ResourcePath {
        match parse_path(path) {
            Some(Route::Resource(r)) => r,
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn paths() {
        let r = res("/api/v1/namespaces/default/services/web");
        assert_eq!(
            (
                r.group.as_str(),
                r.version.as_str(),
                r.namespace.as_deref(),
                r.plural.as_str(),
                r.name.as_deref()
            ),
            ("", "v1", Some("default"), "services", Some("web"))
        );
        let r = res("/apis/ironlb.io/v1beta1/namespaces/x/ipaddresspools/p/status");
        assert_eq!(r.subresource.as_deref(), Some("status"));
        let r = res("/api/v1/namespaces/kube-system");
        assert_eq!(
            (r.plural.as_str(), r.name.as_deref(), r.namespace),
            ("namespaces", Some("kube-system"), None)
        );
        let r = res("/api/v1/namespaces/kube-system/status");
        assert_eq!(r.subresource.as_deref(), Some("status"));
        let r = res("/api/v1/nodes");
        assert!(r.name.is_none() && r.namespace.is_none());
        let r = res("/api/v1/watch/namespaces/default/pods");
        assert!(r.watch_prefix);
        assert_eq!(parse_path("/apis"), Some(Route::Groups));
        assert_eq!(
            parse_path("/apis/apps/v1"),
            Some(Route::GroupVersion("apps".into(), "v1".into()))
        );
        assert_eq!(
            parse_path("/api/v1"),
            Some(Route::GroupVersion("".into(), "v1".into()))
        );
        assert_eq!(
            parse_path("/openapi/v3/api/v1"),
            Some(Route::OpenApiV3("api/v1".into()))
        );
        assert_eq!(parse_path("/readyz/ping"), Some(Route::Healthz));
        assert_eq!(parse_path("/nope"), None);
        assert_eq!(parse_path("/api/v1/a/b/c/d"), None);
    }

    #[test]
    fn query_parsing() {
        let q = Query::parse(Some("watch=1&resourceVersion=10&labelSelector=app%3Dweb%2Ctier+in+(a)&timeoutSeconds=290&allowWatchBookmarks=true&limit=500&fieldManager=kubectl&force=true&dryRun=All")).unwrap();
        assert!(q.watch && q.allow_watch_bookmarks && q.force && q.dry_run);
        assert_eq!(q.resource_version.as_deref(), Some("10"));
        assert_eq!(q.label_selector.as_deref(), Some("app=web,tier in (a)"));
        assert_eq!(q.timeout_seconds, Some(290));
        assert_eq!(q.limit, Some(500));
        for bad in [
            "watch=maybe",
            "limit=-1",
            "timeoutSeconds=x",
            "dryRun=Some",
            "fieldValidation=Loose",
            "gracePeriodSeconds=soon",
        ] {
            assert!(Query::parse(Some(bad)).is_err(), "{bad}");
        }
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }

    #[test]
    fn content_negotiation() {
        assert_eq!(negotiate(None).unwrap(), Encoding::Json);
        assert_eq!(negotiate(Some("application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json")).unwrap(), Encoding::Table);
        assert_eq!(
            negotiate(Some(
                "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io,application/json"
            ))
            .unwrap(),
            Encoding::Json
        );
        assert_eq!(
            negotiate(Some("application/vnd.kubernetes.protobuf, */*")).unwrap(),
            Encoding::Json
        );
        assert!(negotiate(Some("text/html")).is_err());
    }
}
