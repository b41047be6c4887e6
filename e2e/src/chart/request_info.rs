//! What an API request asks for in RBAC's terms: the attributes the API server's authorizer
//! checks (API group, resource, subresource, verb, namespace, name), derived from the HTTP
//! method, path and query exactly as Kubernetes' request-info resolver derives them. Pure.

use std::fmt;

use super::Error;

/// One request, as RBAC sees it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Access {
    Resource(ResourceAccess),
    /// A path outside the resource tree (`/version`, discovery, `/healthz`), with its verb
    /// (`get`, `post`, ...).
    NonResource {
        verb: String,
        path: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ResourceAccess {
    pub verb: String,
    /// `""` for the core group.
    pub group: String,
    pub resource: String,
    pub subresource: Option<String>,
    /// `None` for cluster-scoped objects and for requests across all namespaces.
    pub namespace: Option<String>,
    /// The object's name; for list and watch, the name a `metadata.name` field selector pins.
    pub name: Option<String>,
}

impl ResourceAccess {
    /// `resource` or `resource/subresource`, as RBAC rules spell it.
    pub fn rbac_resource(&self) -> String {
        match &self.subresource {
            Some(sub) => format!("{}/{sub}", self.resource),
            None => self.resource.clone(),
        }
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Access::NonResource { verb, path } => write!(f, "{verb} {path}"),
            Access::Resource(r) => {
                let group = if r.group.is_empty() { "core" } else { &r.group };
                write!(f, "{} {group}/{}", r.verb, r.rbac_resource())?;
                match (&r.namespace, &r.name) {
                    (Some(ns), Some(name)) => write!(f, " {ns}/{name}"),
                    (Some(ns), None) => write!(f, " in {ns}"),
                    (None, Some(name)) => write!(f, " {name}"),
                    (None, None) => write!(f, " (all namespaces)"),
                }
            }
        }
    }
}

/// The subresources of a Namespace object itself (`/api/v1/namespaces/NAME/status`), which
/// must not be read as a resource inside the namespace.
const NAMESPACE_SUBRESOURCES: [&str; 2] = ["status", "finalize"];

/// Classifies a request. `query` is the raw query string without `?`.
pub fn classify(method: &str, path: &str, query: Option<&str>) -> Result<Access, Error> {
    let bad = |why: &str| Error::BadRequestPath {
        path: path.to_string(),
        why: why.to_string(),
    };
    let verb = match method.to_ascii_uppercase().as_str() {
        "GET" | "HEAD" => "get",
        "POST" => "create",
        "PUT" => "update",
        "PATCH" => "patch",
        "DELETE" => "delete",
        _ => return Err(bad(&format!("method {method} has no RBAC verb"))),
    };
    let non_resource = || Access::NonResource {
        verb: method.to_ascii_lowercase(),
        path: path.to_string(),
    };
    if !path.starts_with('/') {
        return Err(bad("the path must start with /"));
    }
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    if segments.iter().any(|s| s.is_empty()) && segments.len() > 1 {
        return Err(bad("empty path segment"));
    }
    // /api/v1/... is the core group; /apis/GROUP/VERSION/... the others. Shorter paths are
    // discovery, which RBAC treats as non-resource URLs.
    let (group, rest) = match segments.as_slice() {
        ["api", _version, rest @ ..] if !rest.is_empty() => ("", rest),
        ["apis", group, _version, rest @ ..] if !rest.is_empty() => (*group, rest),
        _ => return Ok(non_resource()),
    };
    let mut parts: &[&str] = rest;
    let mut verb = verb.to_string();
    // The legacy /watch/ prefix.
    if parts.first() == Some(&"watch") {
        verb = "watch".into();
        parts = &parts[1..];
        if parts.is_empty() {
            return Err(bad("nothing after /watch"));
        }
    }
    let mut namespace = None;
    if parts[0] == "namespaces" && parts.len() > 1 {
        namespace = Some(parts[1].to_string());
        if parts.len() > 2 && !NAMESPACE_SUBRESOURCES.contains(&parts[2]) {
            parts = &parts[2..];
        }
    }
    let (resource, name, subresource) = match parts {
        [resource] => (*resource, None, None),
        [resource, name] => (*resource, Some(*name), None),
        [resource, name, sub] => (*resource, Some(*name), Some(*sub)),
        _ => return Err(bad("too many path segments for a resource")),
    };
    let params = Query::parse(query);
    let mut name = name.map(str::to_string);
    if name.is_none() && verb == "get" {
        verb = "list".into();
    }
    if verb == "list" && params.watch {
        verb = "watch".into();
    }
    if verb == "delete" && name.is_none() {
        verb = "deletecollection".into();
    }
    // A list or watch pinned to one name is authorized against resourceNames.
    if (verb == "list" || verb == "watch") && name.is_none() {
        name = params.pinned_name;
    }
    Ok(Access::Resource(ResourceAccess {
        verb,
        group: group.to_string(),
        resource: resource.to_string(),
        subresource: subresource.map(str::to_string),
        namespace,
        name,
    }))
}

/// The query parameters that change RBAC attributes.
#[derive(Default)]
struct Query {
    watch: bool,
    pinned_name: Option<String>,
}

impl Query {
    fn parse(query: Option<&str>) -> Query {
        let mut q = Query::default();
        for pair in query.unwrap_or_default().split('&') {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_decode(value);
            match key {
                "watch" => q.watch = value == "1" || value.eq_ignore_ascii_case("true"),
                "fieldSelector" => {
                    // Only a selector that is exactly `metadata.name=X` pins a name.
                    let value = value.replace("==", "=");
                    if let Some(name) = value.strip_prefix("metadata.name=")
                        && !name.contains(',')
                        && !name.is_empty()
                    {
                        q.pinned_name = Some(name.to_string());
                    }
                }
                _ => {}
            }
        }
        q
    }
}

/// Decodes `%XX` escapes and `+`; malformed escapes are kept as they are.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(access: Access) -> ResourceAccess {
        match access {
            Access::Resource(r) => r,
            other => panic!("expected a resource access, got {other:?}"),
        }
    }

    fn row(method: &str, path: &str, query: Option<&str>) -> (String, String, String, String) {
        let r = res(classify(method, path, query).unwrap());
        (
            r.verb.clone(),
            format!("{}:{}", r.group, r.rbac_resource()),
            r.namespace.unwrap_or_else(|| "-".into()),
            r.name.unwrap_or_else(|| "-".into()),
        )
    }

    #[test]
    fn verbs_follow_the_method_the_name_and_the_query() {
        let cases = [
            (
                "GET",
                "/api/v1/services",
                None,
                ("list", ":services", "-", "-"),
            ),
            (
                "GET",
                "/api/v1/services",
                Some("watch=true&resourceVersion=5&allowWatchBookmarks=true"),
                ("watch", ":services", "-", "-"),
            ),
            (
                "GET",
                "/api/v1/services",
                Some("watch=1"),
                ("watch", ":services", "-", "-"),
            ),
            (
                "GET",
                "/api/v1/services",
                Some("watch=false"),
                ("list", ":services", "-", "-"),
            ),
            (
                "GET",
                "/api/v1/watch/namespaces/default/services",
                None,
                ("watch", ":services", "default", "-"),
            ),
            (
                "GET",
                "/api/v1/namespaces/default/services/web",
                None,
                ("get", ":services", "default", "web"),
            ),
            (
                "HEAD",
                "/api/v1/namespaces/default/services/web",
                None,
                ("get", ":services", "default", "web"),
            ),
            (
                "PATCH",
                "/api/v1/namespaces/default/services/web/status",
                Some("fieldManager=ironlb&force=true"),
                ("patch", ":services/status", "default", "web"),
            ),
            (
                "POST",
                "/apis/events.k8s.io/v1/namespaces/default/events",
                None,
                ("create", "events.k8s.io:events", "default", "-"),
            ),
            (
                "PUT",
                "/apis/coordination.k8s.io/v1/namespaces/ironlb-system/leases/ironlb-controller",
                None,
                (
                    "update",
                    "coordination.k8s.io:leases",
                    "ironlb-system",
                    "ironlb-controller",
                ),
            ),
            (
                "DELETE",
                "/apis/ironlb.io/v1beta1/namespaces/x/servicel2statuses/a",
                None,
                ("delete", "ironlb.io:servicel2statuses", "x", "a"),
            ),
            (
                "DELETE",
                "/apis/ironlb.io/v1beta1/namespaces/x/servicel2statuses",
                Some("labelSelector=a%3Db"),
                ("deletecollection", "ironlb.io:servicel2statuses", "x", "-"),
            ),
        ];
        for (method, path, query, (verb, resource, ns, name)) in cases {
            assert_eq!(
                row(method, path, query),
                (verb.into(), resource.into(), ns.into(), name.into()),
                "{method} {path}?{query:?}"
            );
        }
    }

    #[test]
    fn namespaces_themselves_are_cluster_scoped_objects() {
        // The namespace object: its own name is both the name and the namespace, as upstream.
        assert_eq!(
            row("GET", "/api/v1/namespaces", Some("watch=true")),
            ("watch".into(), ":namespaces".into(), "-".into(), "-".into())
        );
        assert_eq!(
            row("GET", "/api/v1/namespaces/kube-system", None),
            (
                "get".into(),
                ":namespaces".into(),
                "kube-system".into(),
                "kube-system".into()
            )
        );
        assert_eq!(
            row("PUT", "/api/v1/namespaces/old/finalize", None),
            (
                "update".into(),
                ":namespaces/finalize".into(),
                "old".into(),
                "old".into()
            )
        );
    }

    #[test]
    fn a_field_selector_on_the_name_pins_list_and_watch() {
        assert_eq!(
            row(
                "GET",
                "/apis/coordination.k8s.io/v1/namespaces/n/leases",
                Some("fieldSelector=metadata.name%3Dleader&watch=true")
            )
            .3,
            "leader"
        );
        assert_eq!(
            row(
                "GET",
                "/api/v1/nodes",
                Some("fieldSelector=metadata.name%3D%3Dnode1")
            )
            .3,
            "node1"
        );
        // Anything more than one name is not a pin.
        assert_eq!(
            row(
                "GET",
                "/api/v1/nodes",
                Some("fieldSelector=metadata.name%3Dnode1%2Cspec.unschedulable%3Dfalse")
            )
            .3,
            "-"
        );
    }

    #[test]
    fn discovery_and_other_paths_are_non_resource_urls() {
        for (method, path) in [
            ("GET", "/version"),
            ("GET", "/api"),
            ("GET", "/api/v1"),
            ("GET", "/apis"),
            ("GET", "/apis/ironlb.io"),
            ("GET", "/apis/ironlb.io/v1beta1"),
            ("GET", "/healthz"),
            ("GET", "/"),
            ("POST", "/openapi/v3"),
        ] {
            assert_eq!(
                classify(method, path, None).unwrap(),
                Access::NonResource {
                    verb: method.to_ascii_lowercase(),
                    path: path.into()
                }
            );
        }
    }

    #[test]
    fn malformed_requests_are_errors() {
        for (method, path) in [
            ("GET", "api/v1/services"),
            ("GET", "/api/v1/watch"),
            ("GET", "/api/v1/namespaces/a/services/b/status/extra"),
            ("GET", "/api//v1/services"),
            ("CONNECT", "/api/v1/services"),
            ("OPTIONS", "/version"),
        ] {
            let err = classify(method, path, None).unwrap_err();
            assert!(
                matches!(err, Error::BadRequestPath { .. }),
                "{method} {path}: {err}"
            );
        }
    }

    #[test]
    fn percent_decoding_keeps_malformed_escapes() {
        assert_eq!(percent_decode("a%3Db"), "a=b");
        assert_eq!(percent_decode("a+b"), "a b");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
        assert_eq!(percent_decode("%4"), "%4");
    }

    #[test]
    fn display_names_group_resource_and_scope() {
        let access = classify(
            "PATCH",
            "/api/v1/namespaces/default/services/web/status",
            None,
        )
        .unwrap();
        assert_eq!(access.to_string(), "patch core/services/status default/web");
        let all = classify("GET", "/apis/discovery.k8s.io/v1/endpointslices", None).unwrap();
        assert_eq!(
            all.to_string(),
            "list discovery.k8s.io/endpointslices (all namespaces)"
        );
    }
}
