//! RBAC as the API server evaluates it, for the chart's Roles, ClusterRoles and their bindings:
//! what a ServiceAccount is granted, whether a request is allowed, and the comparison of the
//! grants with the requests a component really made ([`compare`]): every request must be
//! allowed, and every granted permission must have been needed. Pure.

use std::collections::BTreeSet;
use std::fmt;

use serde_json::Value;

use super::Error;
use super::manifest::{Manifests, Object};
use super::request_info::{Access, ResourceAccess};

/// Where a grant applies.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// A ClusterRole bound by a ClusterRoleBinding: every namespace and cluster-scoped objects.
    Cluster,
    /// A Role, or a ClusterRole bound by a RoleBinding, in one namespace.
    Namespace(String),
}

/// One permission: a verb on a resource of a group, perhaps on named objects only. Rules are
/// expanded into these; wildcards are refused (least privilege).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Permission {
    pub scope: Scope,
    pub group: String,
    /// `resource` or `resource/subresource`.
    pub resource: String,
    pub verb: String,
    /// `None`: any object.
    pub resource_name: Option<String>,
    /// The role and binding it comes from, for messages.
    pub source: String,
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let group = if self.group.is_empty() {
            "core"
        } else {
            &self.group
        };
        write!(f, "{} {group}/{}", self.verb, self.resource)?;
        if let Some(name) = &self.resource_name {
            write!(f, " named {name}")?;
        }
        match &self.scope {
            Scope::Cluster => write!(f, " cluster-wide")?,
            Scope::Namespace(ns) => write!(f, " in {ns}")?,
        }
        write!(f, " ({})", self.source)
    }
}

impl Permission {
    /// Whether this permission allows the request.
    pub fn allows(&self, access: &ResourceAccess) -> bool {
        let in_scope = match &self.scope {
            Scope::Cluster => true,
            Scope::Namespace(ns) => access.namespace.as_deref() == Some(ns.as_str()),
        };
        in_scope
            && self.group == access.group
            && self.resource == access.rbac_resource()
            && self.verb == access.verb
            && self
                .resource_name
                .as_ref()
                .is_none_or(|n| access.name.as_deref() == Some(n.as_str()))
    }
}

/// Paths every authenticated client may read: what Kubernetes' default ClusterRoles
/// `system:discovery` and `system:public-info-viewer` grant to `system:authenticated`.
pub fn allowed_to_everyone(access: &Access) -> bool {
    let Access::NonResource { verb, path } = access else {
        return false;
    };
    if verb != "get" && verb != "head" {
        return false;
    }
    let exact = [
        "/api", "/apis", "/healthz", "/livez", "/readyz", "/version", "/openapi",
    ];
    let prefixes = ["/api/", "/apis/", "/openapi/", "/version/"];
    exact.contains(&path.as_str()) || prefixes.iter().any(|p| path.starts_with(p))
}

/// Whether RBAC lets a holder of `permissions` make the request, as the API server's
/// authorizer decides: a resource request needs a permission allowing it; a non-resource one
/// is allowed only where the default discovery roles allow everyone.
pub fn authorize(permissions: &[Permission], access: &Access) -> bool {
    match access {
        Access::Resource(r) => permissions.iter().any(|p| p.allows(r)),
        Access::NonResource { .. } => allowed_to_everyone(access),
    }
}

/// A permission a component needs but which one scenario cannot be relied on to exercise.
#[derive(Clone, Debug)]
pub struct Allowance {
    pub group: &'static str,
    pub resource: &'static str,
    pub verb: &'static str,
    pub why: &'static str,
}

/// Every permission the chart grants the ServiceAccount `namespace/name`.
pub fn permissions_for(
    manifests: &Manifests,
    namespace: &str,
    name: &str,
) -> Result<Vec<Permission>, Error> {
    let mut out = Vec::new();
    for binding in manifests
        .of_kind("RoleBinding")
        .chain(manifests.of_kind("ClusterRoleBinding"))
    {
        if !binds(binding, namespace, name) {
            continue;
        }
        let role_kind = binding
            .0
            .pointer("/roleRef/kind")
            .and_then(Value::as_str)
            .unwrap_or("");
        let role_name = binding
            .0
            .pointer("/roleRef/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        let scope = match binding.kind() {
            "ClusterRoleBinding" => Scope::Cluster,
            _ => Scope::Namespace(binding.namespace().unwrap_or_default().to_string()),
        };
        let role = match (role_kind, &scope) {
            ("ClusterRole", _) => manifests.get("ClusterRole", role_name)?,
            ("Role", Scope::Namespace(ns)) => manifests
                .of_kind("Role")
                .find(|r| r.name() == role_name && r.namespace() == Some(ns.as_str()))
                .ok_or_else(|| {
                    Error::Manifest(format!(
                        "{} refers to Role {ns}/{role_name}, which the chart does not create",
                        binding.id()
                    ))
                })?,
            _ => {
                return Err(Error::Manifest(format!(
                    "{} refers to a {role_kind:?}, which it cannot bind",
                    binding.id()
                )));
            }
        };
        let source = format!("{} via {}", role.id(), binding.id());
        expand(role, &scope, &source, &mut out)?;
    }
    Ok(out)
}

fn binds(binding: &Object, namespace: &str, name: &str) -> bool {
    binding
        .0
        .get("subjects")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|s| {
            s.get("kind").and_then(Value::as_str) == Some("ServiceAccount")
                && s.get("name").and_then(Value::as_str) == Some(name)
                && s.get("namespace").and_then(Value::as_str) == Some(namespace)
        })
}

fn strings(rule: &Value, key: &str) -> Vec<String> {
    rule.get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

fn expand(
    role: &Object,
    scope: &Scope,
    source: &str,
    out: &mut Vec<Permission>,
) -> Result<(), Error> {
    let rules = role
        .0
        .get("rules")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for (index, rule) in rules.iter().enumerate() {
        let where_ = || format!("{} rule {index}", role.id());
        if rule.get("nonResourceURLs").is_some() {
            return Err(Error::Rbac(format!(
                "{}: grants nonResourceURLs, which no ironlb component needs beyond the defaults",
                where_()
            )));
        }
        let groups = strings(rule, "apiGroups");
        let resources = strings(rule, "resources");
        let verbs = strings(rule, "verbs");
        let names = strings(rule, "resourceNames");
        if groups.is_empty() || resources.is_empty() || verbs.is_empty() {
            return Err(Error::Rbac(format!(
                "{}: apiGroups, resources and verbs must not be empty",
                where_()
            )));
        }
        for list in [&groups, &resources, &verbs, &names] {
            if list.iter().any(|v| v.contains('*')) {
                return Err(Error::Rbac(format!(
                    "{}: wildcard in {list:?}; least privilege names every item",
                    where_()
                )));
            }
        }
        let names: Vec<Option<String>> = if names.is_empty() {
            vec![None]
        } else {
            names.into_iter().map(Some).collect()
        };
        for group in &groups {
            for resource in &resources {
                for verb in &verbs {
                    for name in &names {
                        out.push(Permission {
                            scope: scope.clone(),
                            group: group.clone(),
                            resource: resource.clone(),
                            verb: verb.clone(),
                            resource_name: name.clone(),
                            source: source.to_string(),
                        });
                    }
                }
            }
        }
    }
    Ok(())
}

/// The outcome of [`compare`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Comparison {
    /// Requests no permission allows (the component would get 403 Forbidden).
    pub missing: Vec<Access>,
    /// Permissions no request needed.
    pub unused: Vec<Permission>,
    /// Cluster-wide permissions needed only in the home namespace, where a Role would do.
    pub too_broad: Vec<Permission>,
}

impl Comparison {
    pub fn is_exact(&self) -> bool {
        self.missing.is_empty() && self.unused.is_empty() && self.too_broad.is_empty()
    }
}

impl fmt::Display for Comparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for access in &self.missing {
            writeln!(
                f,
                "  missing: the component made `{access}`, which no rule allows"
            )?;
        }
        for p in &self.unused {
            writeln!(f, "  unused: {p} was never needed")?;
        }
        for p in &self.too_broad {
            writeln!(
                f,
                "  too broad: {p} was only needed in the home namespace; grant it with a Role there"
            )?;
        }
        Ok(())
    }
}

/// Compares the permissions with the requests made, for a component installed in `home`.
///
/// A namespaced permission is needed when it allows some request. A cluster-wide one is needed
/// when it allows a request that no namespaced permission allows; if all such requests were in
/// `home` it is too broad. Allowances exempt rarely exercised permissions from "unused".
pub fn compare(
    permissions: &[Permission],
    accesses: &BTreeSet<Access>,
    home: &str,
    allowances: &[Allowance],
) -> Comparison {
    #[derive(Clone, Copy, PartialEq)]
    enum Need {
        No,
        HomeOnly,
        Yes,
    }
    let mut missing = Vec::new();
    let mut need = vec![Need::No; permissions.len()];
    for access in accesses {
        let Access::Resource(r) = access else {
            if !allowed_to_everyone(access) {
                missing.push(access.clone());
            }
            continue;
        };
        let allowing = |cluster: bool| -> Vec<usize> {
            (0..permissions.len())
                .filter(|&i| {
                    (permissions[i].scope == Scope::Cluster) == cluster && permissions[i].allows(r)
                })
                .collect()
        };
        let namespaced = allowing(false);
        let cluster = allowing(true);
        if namespaced.is_empty() && cluster.is_empty() {
            missing.push(access.clone());
        }
        for &i in &namespaced {
            need[i] = Need::Yes;
        }
        if namespaced.is_empty() {
            let level = if r.namespace.as_deref() == Some(home) {
                Need::HomeOnly
            } else {
                Need::Yes
            };
            for &i in &cluster {
                if need[i] != Need::Yes {
                    need[i] = level;
                }
            }
        }
    }
    let allowed = |p: &Permission| {
        allowances
            .iter()
            .any(|a| a.group == p.group && a.resource == p.resource && a.verb == p.verb)
    };
    let mut unused = Vec::new();
    let mut too_broad = Vec::new();
    for (p, need) in permissions.iter().zip(need) {
        match need {
            Need::No if !allowed(p) => unused.push(p.clone()),
            Need::HomeOnly => too_broad.push(p.clone()),
            _ => {}
        }
    }
    Comparison {
        missing,
        unused,
        too_broad,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chart::request_info::classify;

    const RBAC: &str = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: c}
rules:
  - apiGroups: [""]
    resources: ["services"]
    verbs: ["list", "watch"]
  - apiGroups: [""]
    resources: ["services/status"]
    verbs: ["patch"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: c}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: c}
subjects: [{kind: ServiceAccount, name: ctl, namespace: sys}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: r, namespace: sys}
rules:
  - apiGroups: ["coordination.k8s.io"]
    resources: ["leases"]
    verbs: ["create"]
  - apiGroups: ["coordination.k8s.io"]
    resources: ["leases"]
    resourceNames: ["leader"]
    verbs: ["get", "update"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: r, namespace: sys}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: r}
subjects: [{kind: ServiceAccount, name: ctl, namespace: sys}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: other, namespace: sys}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: c}
subjects: [{kind: ServiceAccount, name: someone-else, namespace: sys}]
"#;

    fn perms() -> Vec<Permission> {
        permissions_for(&Manifests::parse(RBAC).unwrap(), "sys", "ctl").unwrap()
    }

    fn access(method: &str, path: &str, query: Option<&str>) -> Access {
        classify(method, path, query).unwrap()
    }

    fn set(items: &[Access]) -> BTreeSet<Access> {
        items.iter().cloned().collect()
    }

    fn used_by_the_controller() -> Vec<Access> {
        vec![
            access("GET", "/api/v1/services", None),
            access("GET", "/api/v1/services", Some("watch=true")),
            access(
                "PATCH",
                "/api/v1/namespaces/default/services/web/status",
                None,
            ),
            access(
                "POST",
                "/apis/coordination.k8s.io/v1/namespaces/sys/leases",
                None,
            ),
            access(
                "GET",
                "/apis/coordination.k8s.io/v1/namespaces/sys/leases/leader",
                None,
            ),
            access(
                "PUT",
                "/apis/coordination.k8s.io/v1/namespaces/sys/leases/leader",
                None,
            ),
            access("GET", "/version", None),
        ]
    }

    #[test]
    fn only_the_service_accounts_own_bindings_count() {
        let p = perms();
        assert_eq!(p.len(), 6, "{p:#?}");
        assert!(p.iter().all(|p| !p.source.contains("RoleBinding/other")));
        assert!(
            permissions_for(&Manifests::parse(RBAC).unwrap(), "sys", "nobody")
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn exactly_matching_grants_compare_clean() {
        let c = compare(&perms(), &set(&used_by_the_controller()), "sys", &[]);
        assert!(c.is_exact(), "{c}");
    }

    #[test]
    fn a_request_outside_the_grants_is_missing() {
        let mut used = used_by_the_controller();
        // Another Lease name, a write in a namespace the Role does not cover, a new verb.
        used.push(access(
            "PUT",
            "/apis/coordination.k8s.io/v1/namespaces/sys/leases/other",
            None,
        ));
        used.push(access(
            "POST",
            "/apis/coordination.k8s.io/v1/namespaces/default/leases",
            None,
        ));
        used.push(access(
            "DELETE",
            "/api/v1/namespaces/default/services/web",
            None,
        ));
        used.push(access("POST", "/version", None));
        let c = compare(&perms(), &set(&used), "sys", &[]);
        let missing: Vec<String> = c.missing.iter().map(ToString::to_string).collect();
        assert_eq!(
            missing,
            [
                "create coordination.k8s.io/leases in default",
                "delete core/services default/web",
                "update coordination.k8s.io/leases sys/other",
                "post /version",
            ],
            "{c}"
        );
    }

    #[test]
    fn a_grant_nothing_used_is_unused_unless_allowed() {
        let used: Vec<Access> = used_by_the_controller()
            .into_iter()
            .filter(|a| !a.to_string().starts_with("watch"))
            .collect();
        let c = compare(&perms(), &set(&used), "sys", &[]);
        assert_eq!(c.unused.len(), 1, "{c}");
        assert_eq!(c.unused[0].verb, "watch");
        let allowance = Allowance {
            group: "",
            resource: "services",
            verb: "watch",
            why: "test",
        };
        assert!(compare(&perms(), &set(&used), "sys", &[allowance]).is_exact());
    }

    #[test]
    fn a_cluster_grant_needed_only_in_the_home_namespace_is_too_broad() {
        let rbac = RBAC
            .replace(
                "kind: Role\nmetadata: {name: r, namespace: sys}",
                "kind: ClusterRole\nmetadata: {name: r}",
            )
            .replace(
                "kind: RoleBinding\nmetadata: {name: r, namespace: sys}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: r}",
                "kind: ClusterRoleBinding\nmetadata: {name: r}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: r}",
            );
        let p = permissions_for(&Manifests::parse(&rbac).unwrap(), "sys", "ctl").unwrap();
        let c = compare(&p, &set(&used_by_the_controller()), "sys", &[]);
        assert!(c.missing.is_empty() && c.unused.is_empty(), "{c}");
        let broad: Vec<String> = c
            .too_broad
            .iter()
            .map(|p| format!("{} {}", p.verb, p.resource))
            .collect();
        assert_eq!(
            broad,
            ["create leases", "get leases", "update leases"],
            "{c}"
        );
        assert!(c.to_string().contains("grant it with a Role there"));

        // Used in another namespace too: cluster-wide is justified.
        let mut used = used_by_the_controller();
        used.push(access(
            "POST",
            "/apis/coordination.k8s.io/v1/namespaces/other/leases",
            None,
        ));
        let c = compare(&p, &set(&used), "sys", &[]);
        assert_eq!(c.too_broad.len(), 2, "{c}");

        // The same permission granted in the namespace and cluster-wide: the cluster one is
        // unused.
        let both = format!(
            "{RBAC}---\n{}",
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: wide}\nrules:\n  - apiGroups: [coordination.k8s.io]\n    resources: [leases]\n    verbs: [create]\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: wide}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: wide}\nsubjects: [{kind: ServiceAccount, name: ctl, namespace: sys}]\n"
        );
        let p = permissions_for(&Manifests::parse(&both).unwrap(), "sys", "ctl").unwrap();
        let c = compare(&p, &set(&used_by_the_controller()), "sys", &[]);
        assert_eq!(c.unused.len(), 1, "{c}");
        assert_eq!(c.unused[0].scope, Scope::Cluster);
    }

    #[test]
    fn wildcards_and_broken_bindings_are_refused() {
        for (from, to) in [
            ("verbs: [\"list\", \"watch\"]", "verbs: [\"*\"]"),
            (
                "apiGroups: [\"\"]\n    resources: [\"services\"]",
                "apiGroups: [\"*\"]\n    resources: [\"services\"]",
            ),
            ("resourceNames: [\"leader\"]", "resourceNames: [\"lead*\"]"),
            ("kind: Role, name: r}", "kind: Role, name: missing}"),
            ("verbs: [\"create\"]", "verbs: []"),
            (
                "kind: ClusterRole, name: c}\nsubjects: [{kind: ServiceAccount, name: ctl",
                "kind: ClusterRole, name: nope}\nsubjects: [{kind: ServiceAccount, name: ctl",
            ),
        ] {
            let rbac = RBAC.replacen(from, to, 1);
            assert_ne!(rbac, RBAC, "{from:?} not found");
            let result = permissions_for(&Manifests::parse(&rbac).unwrap(), "sys", "ctl");
            assert!(result.is_err(), "{to:?} accepted: {result:?}");
        }
        let non_resource = RBAC.replacen(
            "  - apiGroups: [\"\"]\n    resources: [\"services/status\"]",
            "  - nonResourceURLs: [\"/metrics\"]\n    verbs: [\"get\"]\n  - apiGroups: [\"\"]\n    resources: [\"services/status\"]",
            1,
        );
        assert!(permissions_for(&Manifests::parse(&non_resource).unwrap(), "sys", "ctl").is_err());
    }

    #[test]
    fn authorize_follows_the_grants_scope_and_names() {
        let p = perms();
        for ok in [
            access("GET", "/api/v1/services", Some("watch=1")),
            access("PATCH", "/api/v1/namespaces/x/services/web/status", None),
            access(
                "PUT",
                "/apis/coordination.k8s.io/v1/namespaces/sys/leases/leader",
                None,
            ),
            access("GET", "/version", None),
        ] {
            assert!(authorize(&p, &ok), "{ok}");
        }
        for no in [
            // The Role is for its namespace and the named Lease only.
            access(
                "PUT",
                "/apis/coordination.k8s.io/v1/namespaces/other/leases/leader",
                None,
            ),
            access(
                "PUT",
                "/apis/coordination.k8s.io/v1/namespaces/sys/leases/other",
                None,
            ),
            access("PATCH", "/api/v1/namespaces/x/services/web", None),
            access("GET", "/metrics", None),
        ] {
            assert!(!authorize(&p, &no), "{no}");
        }
        assert!(!authorize(&[], &access("GET", "/api/v1/services", None)));
    }

    #[test]
    fn discovery_is_allowed_to_everyone_but_not_writes_or_metrics() {
        for ok in [
            "/version",
            "/api",
            "/api/v1",
            "/apis/ironlb.io/v1beta1",
            "/openapi/v3",
        ] {
            assert!(allowed_to_everyone(&access("GET", ok, None)), "{ok}");
        }
        for no in ["/metrics", "/logs", "/versionx"] {
            assert!(!allowed_to_everyone(&access("GET", no, None)), "{no}");
        }
        assert!(!allowed_to_everyone(&access("POST", "/version", None)));
    }
}
