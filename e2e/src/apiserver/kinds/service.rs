//! Services as the API server treats them: defaults, validation, ClusterIP and NodePort
//! allocation (with `ipFamilies`/`ipFamilyPolicy` resolution), carrying allocated values over
//! updates that omit them, dropping type-dependent fields on type changes, and `ipMode` rules by
//! emulated version.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use ironlb_crds::address::Family;
use serde_json::{Value, json};

use crate::apiserver::alloc::{AllocError, IpAllocator, PortAllocator};
use crate::apiserver::error::FieldError;
use crate::apiserver::names::{
    check_dns1035_label, check_dns1123_label, check_dns1123_subdomain, check_qualified_name,
};

const TYPES: &[&str] = &["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"];
const PROTOCOLS: &[&str] = &["TCP", "UDP", "SCTP"];
const POLICIES: &[&str] = &["SingleStack", "PreferDualStack", "RequireDualStack"];

struct Nets {
    ips: Vec<IpAllocator>,
    ports: PortAllocator,
}

/// The cluster's service networks and the allocations in them.
pub struct ServiceNetworks {
    nets: Mutex<Nets>,
    families: Vec<Family>,
}

/// Allocations made for one write. Dropping it without [`Reservation::commit`] gives back what
/// it took; committing gives back what the object no longer uses.
pub struct Reservation {
    nets: Arc<ServiceNetworks>,
    taken_ips: Vec<IpAddr>,
    taken_ports: Vec<u16>,
    freed_ips: Vec<IpAddr>,
    freed_ports: Vec<u16>,
    committed: bool,
}

impl Reservation {
    fn new(nets: Arc<ServiceNetworks>) -> Self {
        Reservation {
            nets,
            taken_ips: vec![],
            taken_ports: vec![],
            freed_ips: vec![],
            freed_ports: vec![],
            committed: false,
        }
    }

    pub fn commit(mut self) {
        self.committed = true;
        let mut n = self.nets.lock();
        for ip in &self.freed_ips {
            release_ip(&mut n, *ip);
        }
        for p in &self.freed_ports {
            n.ports.release(*p);
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        let mut n = self.nets.lock();
        for ip in &self.taken_ips {
            release_ip(&mut n, *ip);
        }
        for p in &self.taken_ports {
            n.ports.release(*p);
        }
    }
}

fn release_ip(n: &mut Nets, ip: IpAddr) {
    for a in n.ips.iter_mut() {
        if a.family() == Family::of(ip) {
            a.release(ip);
        }
    }
}

fn s<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v.get(k).and_then(Value::as_str)
}

fn ips_of(spec: &Value) -> Vec<IpAddr> {
    spec["clusterIPs"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .filter_map(|s| s.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

fn node_ports_of(spec: &Value) -> Vec<u16> {
    let mut v: Vec<u16> = spec["ports"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .filter_map(|p| p["nodePort"].as_u64())
                .filter(|p| *p > 0 && *p <= 65535)
                .map(|p| p as u16)
                .collect()
        })
        .unwrap_or_default();
    if let Some(h) = spec["healthCheckNodePort"]
        .as_u64()
        .filter(|p| *p > 0 && *p <= 65535)
    {
        v.push(h as u16);
    }
    v.sort();
    v.dedup();
    v
}

fn needs_cluster_ip(spec: &Value) -> bool {
    s(spec, "type") != Some("ExternalName")
}

fn needs_node_ports(spec: &Value) -> bool {
    match s(spec, "type") {
        Some("NodePort") => true,
        Some("LoadBalancer") => spec["allocateLoadBalancerNodePorts"].as_bool() != Some(false),
        _ => false,
    }
}

fn needs_health_check(spec: &Value) -> bool {
    s(spec, "type") == Some("LoadBalancer") && s(spec, "externalTrafficPolicy") == Some("Local")
}

impl ServiceNetworks {
    /// `cidrs`: comma-separated, at most one per family; the first is the primary family.
    pub fn new(cidrs: &str, node_ports: &str) -> Result<Self, AllocError> {
        let mut ips = Vec::new();
        for c in cidrs.split(',').map(str::trim).filter(|c| !c.is_empty()) {
            let a = IpAllocator::new(c)?;
            if ips.iter().any(|x: &IpAllocator| x.family() == a.family()) {
                return Err(AllocError::BadCidr(
                    cidrs.into(),
                    "at most one range per IP family".into(),
                ));
            }
            ips.push(a);
        }
        if ips.is_empty() {
            return Err(AllocError::BadCidr(
                cidrs.into(),
                "at least one range is required".into(),
            ));
        }
        let families = ips.iter().map(IpAllocator::family).collect();
        Ok(ServiceNetworks {
            nets: Mutex::new(Nets {
                ips,
                ports: PortAllocator::parse(node_ports)?,
            }),
            families,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Nets> {
        self.nets.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn is_dual_stack(&self) -> bool {
        self.families.len() == 2
    }

    pub fn node_port_range(&self) -> String {
        self.lock().ports.range_string()
    }

    /// The first address of the primary range (the `kubernetes` Service's).
    pub fn first_ip(&self) -> IpAddr {
        self.lock().ips[0].first()
    }

    pub fn primary_family(&self) -> Family {
        self.families[0]
    }

    /// Marks a stored Service's addresses and ports as used (start-up).
    pub fn restore(&self, svc: &Value) {
        let mut n = self.lock();
        for ip in ips_of(&svc["spec"]) {
            for a in n.ips.iter_mut() {
                if a.family() == Family::of(ip) {
                    let _ = a.allocate(ip);
                }
            }
        }
        for p in node_ports_of(&svc["spec"]) {
            let _ = n.ports.allocate(p as i64);
        }
    }

    pub fn usage(&self) -> (usize, usize) {
        let n = self.lock();
        (n.ips.iter().map(IpAllocator::used).sum(), n.ports.used())
    }

    /// Gives back everything a deleted Service held.
    pub fn release_all(&self, svc: &Value) {
        let mut n = self.lock();
        for ip in ips_of(&svc["spec"]) {
            release_ip(&mut n, ip);
        }
        for p in node_ports_of(&svc["spec"]) {
            n.ports.release(p);
        }
    }
}

/// Static defaults applied to every Service write.
pub fn apply_defaults(svc: &mut Value, minor: u32) {
    let spec = &mut svc["spec"];
    if !spec.is_object() {
        *spec = json!({});
    }
    if spec.get("type").is_none_or(Value::is_null) {
        spec["type"] = json!("ClusterIP");
    }
    if spec.get("sessionAffinity").is_none_or(Value::is_null) {
        spec["sessionAffinity"] = json!("None");
    }
    if s(spec, "sessionAffinity") == Some("ClientIP")
        && spec
            .pointer("/sessionAffinityConfig/clientIP/timeoutSeconds")
            .is_none()
    {
        spec["sessionAffinityConfig"] = json!({"clientIP": {"timeoutSeconds": 10800}});
    }
    let ty = s(spec, "type").unwrap_or_default().to_string();
    if ty != "ExternalName" && spec.get("internalTrafficPolicy").is_none_or(Value::is_null) {
        spec["internalTrafficPolicy"] = json!("Cluster");
    }
    if (ty == "NodePort" || ty == "LoadBalancer")
        && spec.get("externalTrafficPolicy").is_none_or(Value::is_null)
    {
        spec["externalTrafficPolicy"] = json!("Cluster");
    }
    if ty == "LoadBalancer"
        && spec
            .get("allocateLoadBalancerNodePorts")
            .is_none_or(Value::is_null)
    {
        spec["allocateLoadBalancerNodePorts"] = json!(true);
    }
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports {
            if !p.is_object() {
                continue;
            }
            if p.get("protocol").is_none_or(Value::is_null) {
                p["protocol"] = json!("TCP");
            }
            if p.get("targetPort").is_none_or(Value::is_null)
                && let Some(port) = p.get("port").cloned()
            {
                p["targetPort"] = port;
            }
        }
    }
    if let Some(ingress) = svc
        .pointer_mut("/status/loadBalancer/ingress")
        .and_then(Value::as_array_mut)
    {
        for ing in ingress {
            let Some(obj) = ing.as_object_mut() else {
                continue;
            };
            match minor {
                // The LoadBalancerIPMode gate was alpha (off) in 1.29: the field is dropped.
                29 => {
                    obj.remove("ipMode");
                }
                m if m >= 30
                    && obj
                        .get("ip")
                        .and_then(Value::as_str)
                        .is_some_and(|ip| !ip.is_empty())
                    && obj.get("ipMode").is_none_or(Value::is_null) =>
                {
                    obj.insert("ipMode".into(), json!("VIP"));
                }
                _ => {}
            }
        }
    }
}

fn is_iana_svc_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 15
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b.iter().any(|c| c.is_ascii_lowercase())
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
        && !s.contains("--")
}

fn enum_check(errs: &mut Vec<FieldError>, v: &Value, key: &str, path: &str, allowed: &[&str]) {
    if let Some(x) = v.get(key).filter(|x| !x.is_null())
        && !x.as_str().is_some_and(|x| allowed.contains(&x))
    {
        errs.push(FieldError::not_supported(
            format!("{path}.{key}"),
            x.clone(),
            allowed,
        ));
    }
}

/// Validation that does not depend on allocation state.
pub fn validate(svc: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Some(name) = svc["metadata"]["name"].as_str()
        && let Some(msg) = check_dns1035_label(name)
    {
        errs.push(FieldError::invalid("metadata.name", json!(name), msg));
    }
    let spec = &svc["spec"];
    enum_check(&mut errs, spec, "type", "spec", TYPES);
    enum_check(
        &mut errs,
        spec,
        "sessionAffinity",
        "spec",
        &["None", "ClientIP"],
    );
    enum_check(
        &mut errs,
        spec,
        "externalTrafficPolicy",
        "spec",
        &["Cluster", "Local"],
    );
    enum_check(
        &mut errs,
        spec,
        "internalTrafficPolicy",
        "spec",
        &["Cluster", "Local"],
    );
    enum_check(&mut errs, spec, "ipFamilyPolicy", "spec", POLICIES);
    let ty = s(spec, "type").unwrap_or("ClusterIP");
    let headless = s(spec, "clusterIP") == Some("None");
    let ports = spec["ports"].as_array().cloned().unwrap_or_default();
    if ty == "ExternalName" {
        match s(spec, "externalName") {
            None | Some("") => errs.push(FieldError::required("spec.externalName", "")),
            Some(n) => {
                if let Some(msg) = check_dns1123_subdomain(n.trim_end_matches('.')) {
                    errs.push(FieldError::invalid("spec.externalName", json!(n), msg));
                }
            }
        }
        if s(spec, "clusterIP").is_some_and(|c| !c.is_empty()) {
            errs.push(FieldError::forbidden(
                "spec.clusterIP",
                "may not be set for ExternalName services",
            ));
        }
    } else if ports.is_empty() && !headless {
        errs.push(FieldError::required("spec.ports", ""));
    }
    let mut names = BTreeMap::new();
    let mut keys = BTreeMap::new();
    for (i, p) in ports.iter().enumerate() {
        let path = format!("spec.ports[{i}]");
        match p["port"].as_i64() {
            Some(n) if (1..=65535).contains(&n) => {}
            Some(n) => errs.push(FieldError::invalid(
                format!("{path}.port"),
                json!(n),
                "must be between 1 and 65535, inclusive",
            )),
            None => errs.push(FieldError::required(format!("{path}.port"), "")),
        }
        enum_check(&mut errs, p, "protocol", &path, PROTOCOLS);
        match s(p, "name") {
            Some(n) if !n.is_empty() => {
                if let Some(msg) = check_dns1123_label(n) {
                    errs.push(FieldError::invalid(format!("{path}.name"), json!(n), msg));
                }
                if names.insert(n.to_string(), i).is_some() {
                    errs.push(FieldError::duplicate(format!("{path}.name"), json!(n)));
                }
            }
            _ if ports.len() > 1 => errs.push(FieldError::required(format!("{path}.name"), "")),
            _ => {}
        }
        let key = (
            p["port"].as_i64(),
            s(p, "protocol").unwrap_or("TCP").to_string(),
        );
        if keys.insert(key, i).is_some() {
            errs.push(FieldError::duplicate(path.clone(), p.clone()));
        }
        match &p["targetPort"] {
            Value::Null => {}
            Value::Number(n) => {
                if !n.as_i64().is_some_and(|n| (1..=65535).contains(&n)) {
                    errs.push(FieldError::invalid(
                        format!("{path}.targetPort"),
                        p["targetPort"].clone(),
                        "must be between 1 and 65535, inclusive",
                    ));
                }
            }
            Value::String(t) => {
                if !is_iana_svc_name(t) {
                    errs.push(FieldError::invalid(format!("{path}.targetPort"), json!(t), "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-), at least one letter, at most 15 characters"));
                }
            }
            other => errs.push(FieldError::invalid(
                format!("{path}.targetPort"),
                other.clone(),
                "must be a port number or name",
            )),
        }
        if let Some(np) = p.get("nodePort").filter(|v| !v.is_null()) {
            let np = np.as_i64().unwrap_or(-1);
            if np != 0 && (ty == "ClusterIP" || ty == "ExternalName") {
                errs.push(FieldError::forbidden(
                    format!("{path}.nodePort"),
                    format!("may not be used when `type` is '{ty}'"),
                ));
            } else if !(0..=65535).contains(&np) {
                errs.push(FieldError::invalid(
                    format!("{path}.nodePort"),
                    json!(np),
                    "must be between 1 and 65535, inclusive",
                ));
            }
        }
    }
    if spec
        .get("allocateLoadBalancerNodePorts")
        .is_some_and(|v| !v.is_null())
        && ty != "LoadBalancer"
    {
        errs.push(FieldError::forbidden(
            "spec.allocateLoadBalancerNodePorts",
            "may only be used when `type` is 'LoadBalancer'",
        ));
    }
    if let Some(cls) = s(spec, "loadBalancerClass") {
        if ty != "LoadBalancer" {
            errs.push(FieldError::forbidden(
                "spec.loadBalancerClass",
                "may only be used when `type` is 'LoadBalancer'",
            ));
        } else if let Some(msg) = check_qualified_name(cls) {
            errs.push(FieldError::invalid(
                "spec.loadBalancerClass",
                json!(cls),
                msg,
            ));
        }
    }
    if let Some(ranges) = spec["loadBalancerSourceRanges"].as_array() {
        if !ranges.is_empty() && ty != "LoadBalancer" {
            errs.push(FieldError::forbidden(
                "spec.loadBalancerSourceRanges",
                "may only be used when `type` is 'LoadBalancer'",
            ));
        }
        for (i, r) in ranges.iter().enumerate() {
            let ok = r.as_str().is_some_and(|r| {
                r.contains('/') && ironlb_crds::address::parse_address_entry(r.trim()).is_ok()
            });
            if !ok {
                errs.push(FieldError::invalid(
                    format!("spec.loadBalancerSourceRanges[{i}]"),
                    r.clone(),
                    "must be a valid CIDR",
                ));
            }
        }
    }
    if let Some(lbip) = s(spec, "loadBalancerIP").filter(|x| !x.is_empty())
        && lbip.parse::<IpAddr>().is_err()
    {
        errs.push(FieldError::invalid(
            "spec.loadBalancerIP",
            json!(lbip),
            "must be a valid IP address",
        ));
    }
    if let Some(ext) = spec["externalIPs"].as_array() {
        for (i, ip) in ext.iter().enumerate() {
            if ip.as_str().is_none_or(|x| x.parse::<IpAddr>().is_err()) {
                errs.push(FieldError::invalid(
                    format!("spec.externalIPs[{i}]"),
                    ip.clone(),
                    "must be a valid IP address",
                ));
            }
        }
    }
    if let Some(h) = spec
        .get("healthCheckNodePort")
        .and_then(Value::as_i64)
        .filter(|h| *h != 0)
        && !(ty == "LoadBalancer" && s(spec, "externalTrafficPolicy") == Some("Local"))
    {
        errs.push(FieldError::invalid(
            "spec.healthCheckNodePort",
            json!(h),
            "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'",
        ));
    }
    if let Some(sel) = spec["selector"].as_object() {
        for (k, v) in sel {
            if let Some(msg) = check_qualified_name(k) {
                errs.push(FieldError::invalid("spec.selector", json!(k), msg));
            }
            if !v.is_string() {
                errs.push(FieldError::invalid(
                    format!("spec.selector.{k}"),
                    v.clone(),
                    "must be a string",
                ));
            }
        }
    }
    errs.extend(validate_status(&svc["status"]));
    errs
}

/// `status.loadBalancer.ingress[]` rules.
pub fn validate_status(status: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(ingress) = status
        .pointer("/loadBalancer/ingress")
        .and_then(Value::as_array)
    else {
        return errs;
    };
    for (i, ing) in ingress.iter().enumerate() {
        let path = format!("status.loadBalancer.ingress[{i}]");
        let ip = s(ing, "ip").filter(|x| !x.is_empty());
        if let Some(ip) = ip
            && ip.parse::<IpAddr>().is_err()
        {
            errs.push(FieldError::invalid(
                format!("{path}.ip"),
                json!(ip),
                "must be a valid IP address",
            ));
        }
        if let Some(h) = s(ing, "hostname")
            && !h.is_empty()
            && h.parse::<IpAddr>().is_ok()
        {
            errs.push(FieldError::invalid(
                format!("{path}.hostname"),
                json!(h),
                "must be a DNS name, not an IP address",
            ));
        }
        if let Some(mode) = ing.get("ipMode").filter(|m| !m.is_null()) {
            if ip.is_none() {
                errs.push(FieldError::forbidden(
                    format!("{path}.ipMode"),
                    "may not be specified when `ip` is not",
                ));
            } else if !mode.as_str().is_some_and(|m| m == "VIP" || m == "Proxy") {
                errs.push(FieldError::not_supported(
                    format!("{path}.ipMode"),
                    mode.clone(),
                    &["Proxy", "VIP"],
                ));
            }
        }
    }
    errs
}

/// Copies values the server allocated from `old` into `new` where `new` leaves them out, and
/// drops values the new type no longer uses (as the API server does on updates).
pub fn carry_over_allocations(old: &Value, new: &mut Value) {
    let (os, ns) = (&old["spec"], &mut new["spec"]);
    if needs_cluster_ip(os) && needs_cluster_ip(ns) {
        if ns
            .get("clusterIP")
            .is_none_or(|v| v.as_str().is_none_or(str::is_empty))
            && os.get("clusterIP").is_some()
        {
            ns["clusterIP"] = os["clusterIP"].clone();
        }
        if ns
            .get("clusterIPs")
            .is_none_or(|v| v.as_array().is_none_or(Vec::is_empty))
            && os.get("clusterIPs").is_some()
        {
            let same_primary = ns["clusterIP"] == os["clusterIP"];
            if same_primary {
                ns["clusterIPs"] = os["clusterIPs"].clone();
            }
        }
        if ns
            .get("ipFamilies")
            .is_none_or(|v| v.as_array().is_none_or(Vec::is_empty))
            && os.get("ipFamilies").is_some()
            && ns["clusterIPs"] == os["clusterIPs"]
        {
            ns["ipFamilies"] = os["ipFamilies"].clone();
        }
        if ns.get("ipFamilyPolicy").is_none_or(Value::is_null)
            && os.get("ipFamilyPolicy").is_some()
            && ns["clusterIPs"] == os["clusterIPs"]
        {
            ns["ipFamilyPolicy"] = os["ipFamilyPolicy"].clone();
        }
    } else if !needs_cluster_ip(ns) && needs_cluster_ip(os) {
        // To ExternalName: allocated fields go unless the client changed them.
        for k in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
            if ns.get(k) == os.get(k)
                && let Some(m) = ns.as_object_mut()
            {
                m.remove(k);
            }
        }
    }
    let old_ports: Vec<Value> = os["ports"].as_array().cloned().unwrap_or_default();
    if needs_node_ports(os) && needs_node_ports(ns) {
        if let Some(ports) = ns.get_mut("ports").and_then(Value::as_array_mut) {
            for p in ports {
                if p["nodePort"].as_i64().unwrap_or(0) != 0 {
                    continue;
                }
                let proto = |x: &Value| s(x, "protocol").unwrap_or("TCP").to_string();
                if let Some(op) = old_ports
                    .iter()
                    .find(|op| op["port"] == p["port"] && proto(op) == proto(p))
                    && op["nodePort"].as_i64().unwrap_or(0) != 0
                {
                    p["nodePort"] = op["nodePort"].clone();
                }
            }
        }
    } else if needs_node_ports(os)
        && !matches!(s(ns, "type"), Some("NodePort" | "LoadBalancer"))
        && let Some(ports) = ns.get_mut("ports").and_then(Value::as_array_mut)
    {
        for p in ports {
            let unchanged = old_ports
                .iter()
                .any(|op| op["port"] == p["port"] && op["nodePort"] == p["nodePort"]);
            if unchanged && let Some(m) = p.as_object_mut() {
                m.remove("nodePort");
            }
        }
    }
    if needs_health_check(os) && needs_health_check(ns) {
        if ns["healthCheckNodePort"].as_i64().unwrap_or(0) == 0
            && os.get("healthCheckNodePort").is_some()
        {
            ns["healthCheckNodePort"] = os["healthCheckNodePort"].clone();
        }
    } else if needs_health_check(os)
        && !needs_health_check(ns)
        && ns.get("healthCheckNodePort") == os.get("healthCheckNodePort")
        && let Some(m) = ns.as_object_mut()
    {
        m.remove("healthCheckNodePort");
    }
    if s(ns, "type") != Some("LoadBalancer")
        && ns.get("allocateLoadBalancerNodePorts") == os.get("allocateLoadBalancerNodePorts")
        && let Some(m) = ns.as_object_mut()
    {
        m.remove("allocateLoadBalancerNodePorts");
    }
    if !matches!(s(ns, "type"), Some("NodePort" | "LoadBalancer"))
        && ns.get("externalTrafficPolicy") == os.get("externalTrafficPolicy")
        && let Some(m) = ns.as_object_mut()
    {
        m.remove("externalTrafficPolicy");
    }
}

/// Checks what may not change on update.
pub fn validate_update(old: &Value, new: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let (os, ns) = (&old["spec"], &new["spec"]);
    if needs_cluster_ip(os) && needs_cluster_ip(ns) {
        let (oc, nc) = (
            s(os, "clusterIP").unwrap_or_default(),
            s(ns, "clusterIP").unwrap_or_default(),
        );
        if !oc.is_empty() && oc != nc {
            errs.push(FieldError::invalid(
                "spec.clusterIPs[0]",
                json!(nc),
                "may not change once set",
            ));
        }
    }
    if let Some(oc) = s(os, "loadBalancerClass")
        && s(ns, "type") == Some("LoadBalancer")
        && s(os, "type") == Some("LoadBalancer")
        && s(ns, "loadBalancerClass") != Some(oc)
    {
        errs.push(FieldError::invalid(
            "spec.loadBalancerClass",
            ns["loadBalancerClass"].clone(),
            "may not change once set",
        ));
    }
    errs
}

fn family_names(fams: &[Family]) -> Value {
    Value::Array(fams.iter().map(|f| json!(f.k8s_name())).collect())
}

impl ServiceNetworks {
    /// Resolves `ipFamilyPolicy`/`ipFamilies` and allocates cluster IPs, node ports and the
    /// health-check node port for `new` (with `old` on updates).
    pub fn allocate(
        self: &Arc<Self>,
        old: Option<&Value>,
        new: &mut Value,
    ) -> Result<Reservation, Vec<FieldError>> {
        let mut r = Reservation::new(self.clone());
        let mut errs = Vec::new();
        let old_spec = old.map(|o| o["spec"].clone()).unwrap_or(Value::Null);
        let old_ips = ips_of(&old_spec);
        let spec = &mut new["spec"];
        let mut rng = rand::rng();

        if needs_cluster_ip(spec) {
            self.resolve_families(spec, &mut errs);
            if !errs.is_empty() {
                return Err(errs);
            }
            let headless = s(spec, "clusterIP") == Some("None");
            let families: Vec<Family> = spec["ipFamilies"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .filter_map(Family::from_k8s_name)
                        .collect()
                })
                .unwrap_or_default();
            if headless {
                spec["clusterIPs"] = json!(["None"]);
            } else {
                let requested: Vec<String> = spec["clusterIPs"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default();
                let mut result = Vec::new();
                let mut n = self.lock();
                for (i, fam) in families.iter().enumerate() {
                    let want = requested.get(i).filter(|x| !x.is_empty());
                    let Some(alloc) = n.ips.iter_mut().find(|a| a.family() == *fam) else {
                        continue;
                    };
                    match want {
                        Some(ip_s) => {
                            let Ok(ip) = ip_s.parse::<IpAddr>() else {
                                errs.push(FieldError::invalid(
                                    format!("spec.clusterIPs[{i}]"),
                                    json!(ip_s),
                                    "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
                                ));
                                continue;
                            };
                            if Family::of(ip) != *fam {
                                errs.push(FieldError::invalid(
                                    format!("spec.clusterIPs[{i}]"),
                                    json!(ip_s),
                                    format!(
                                        "expected an {} value as indicated by `ipFamilies[{i}]`",
                                        fam.k8s_name()
                                    ),
                                ));
                                continue;
                            }
                            if old_ips.contains(&ip) {
                                result.push(ip);
                                continue;
                            }
                            match alloc.allocate(ip) {
                                Ok(()) => {
                                    r.taken_ips.push(ip);
                                    result.push(ip);
                                }
                                Err(e) => errs.push(FieldError::invalid(
                                    "spec.clusterIPs",
                                    json!(requested),
                                    format!("failed to allocate IP {ip}: {e}"),
                                )),
                            }
                        }
                        None => match old_ips.iter().find(|ip| Family::of(**ip) == *fam) {
                            Some(ip) => result.push(*ip),
                            None => match alloc.allocate_next(&mut rng) {
                                Ok(ip) => {
                                    r.taken_ips.push(ip);
                                    result.push(ip);
                                }
                                Err(e) => errs.push(FieldError::invalid(
                                    "spec.clusterIPs",
                                    json!(requested),
                                    format!("failed to allocate a serviceIP: {e}"),
                                )),
                            },
                        },
                    }
                }
                drop(n);
                if !errs.is_empty() {
                    return Err(errs);
                }
                r.freed_ips = old_ips
                    .iter()
                    .filter(|ip| !result.contains(ip))
                    .copied()
                    .collect();
                spec["clusterIPs"] =
                    Value::Array(result.iter().map(|ip| json!(ip.to_string())).collect());
                spec["clusterIP"] =
                    json!(result.first().map(|ip| ip.to_string()).unwrap_or_default());
            }
            if headless {
                spec["clusterIP"] = json!("None");
            }
        } else {
            r.freed_ips = old_ips;
        }

        let old_ports = node_ports_of(&old_spec);
        let mut kept: Vec<u16> = Vec::new();
        // A LoadBalancer without automatic node ports keeps the ones it names.
        let named_only = s(spec, "type") == Some("LoadBalancer") && !needs_node_ports(spec);
        let automatic = needs_node_ports(spec);
        if automatic || named_only {
            let mut by_port: BTreeMap<i64, u16> = BTreeMap::new();
            let mut n = self.lock();
            let ports = spec
                .get_mut("ports")
                .and_then(Value::as_array_mut)
                .map(|p| p.as_mut_slice())
                .unwrap_or_default();
            // Requested ports first, so that automatic ones never take them.
            for (i, p) in ports.iter_mut().enumerate() {
                let Some(np) = p["nodePort"].as_i64().filter(|n| *n != 0) else {
                    continue;
                };
                let port = p["port"].as_i64().unwrap_or(0);
                if by_port.get(&port) == Some(&(np as u16))
                    || kept.contains(&(np as u16)) && old_ports.contains(&(np as u16))
                {
                    continue;
                }
                if old_ports.contains(&(np as u16)) {
                    kept.push(np as u16);
                    by_port.insert(port, np as u16);
                    continue;
                }
                match n.ports.allocate(np) {
                    Ok(()) => {
                        r.taken_ports.push(np as u16);
                        kept.push(np as u16);
                        by_port.insert(port, np as u16);
                    }
                    Err(e) => errs.push(FieldError::invalid(
                        format!("spec.ports[{i}].nodePort"),
                        json!(np),
                        e.to_string(),
                    )),
                }
            }
            for p in ports.iter_mut().filter(|_| automatic) {
                if p["nodePort"].as_i64().unwrap_or(0) != 0 {
                    continue;
                }
                let port = p["port"].as_i64().unwrap_or(0);
                let np = match by_port.get(&port) {
                    Some(np) => *np,
                    None => match n.ports.allocate_next(&mut rng) {
                        Ok(np) => {
                            r.taken_ports.push(np);
                            by_port.insert(port, np);
                            np
                        }
                        Err(e) => {
                            errs.push(FieldError::invalid(
                                "spec.ports",
                                Value::Null,
                                format!("failed to allocate a nodePort: {e}"),
                            ));
                            continue;
                        }
                    },
                };
                kept.push(np);
                p["nodePort"] = json!(np);
            }
        }
        if needs_health_check(spec) {
            let mut n = self.lock();
            match spec["healthCheckNodePort"].as_i64().filter(|h| *h != 0) {
                Some(h) if old_ports.contains(&(h as u16)) => kept.push(h as u16),
                Some(h) => match n.ports.allocate(h) {
                    Ok(()) => {
                        r.taken_ports.push(h as u16);
                        kept.push(h as u16);
                    }
                    Err(e) => errs.push(FieldError::invalid(
                        "spec.healthCheckNodePort",
                        json!(h),
                        e.to_string(),
                    )),
                },
                None => match n.ports.allocate_next(&mut rng) {
                    Ok(h) => {
                        r.taken_ports.push(h);
                        kept.push(h);
                        spec["healthCheckNodePort"] = json!(h);
                    }
                    Err(e) => errs.push(FieldError::invalid(
                        "spec.healthCheckNodePort",
                        Value::Null,
                        format!("failed to allocate a nodePort: {e}"),
                    )),
                },
            }
        }
        if !errs.is_empty() {
            return Err(errs);
        }
        r.freed_ports = old_ports
            .into_iter()
            .filter(|p| !kept.contains(p))
            .collect();
        Ok(r)
    }

    /// Sets `ipFamilyPolicy` and `ipFamilies` from what the client asked for and what the
    /// cluster has.
    fn resolve_families(&self, spec: &mut Value, errs: &mut Vec<FieldError>) {
        let requested_ips: Vec<String> = spec["clusterIPs"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        if let Some(ci) = s(spec, "clusterIP")
            .filter(|c| !c.is_empty())
            .map(str::to_string)
        {
            if requested_ips.is_empty() {
                spec["clusterIPs"] = json!([ci]);
            } else if requested_ips[0] != ci {
                errs.push(FieldError::invalid(
                    "spec.clusterIPs[0]",
                    json!(requested_ips[0]),
                    "must be same as clusterIP",
                ));
                return;
            }
        } else if let Some(first) = requested_ips.first() {
            spec["clusterIP"] = json!(first);
        }
        let requested_ips: Vec<String> = spec["clusterIPs"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let headless = requested_ips.first().is_some_and(|c| c == "None");
        let mut families: Vec<Family> = Vec::new();
        if let Some(fs) = spec["ipFamilies"].as_array() {
            for (i, f) in fs.iter().enumerate() {
                match f.as_str().and_then(Family::from_k8s_name) {
                    Some(fam) if families.contains(&fam) => errs.push(FieldError::duplicate(
                        format!("spec.ipFamilies[{i}]"),
                        f.clone(),
                    )),
                    Some(fam) if !self.families.contains(&fam) && !headless => {
                        errs.push(FieldError::invalid(
                            format!("spec.ipFamilies[{i}]"),
                            f.clone(),
                            "not configured on this cluster",
                        ))
                    }
                    Some(fam) => families.push(fam),
                    None => errs.push(FieldError::not_supported(
                        format!("spec.ipFamilies[{i}]"),
                        f.clone(),
                        &["IPv4", "IPv6"],
                    )),
                }
            }
        }
        let ip_families: Vec<Family> = if headless {
            vec![]
        } else {
            requested_ips
                .iter()
                .filter_map(|c| c.parse::<IpAddr>().ok())
                .map(Family::of)
                .collect()
        };
        if ip_families.len() == 2 && ip_families[0] == ip_families[1] {
            errs.push(FieldError::invalid(
                "spec.clusterIPs[1]",
                json!(requested_ips[1]),
                "may not have the same family as clusterIPs[0]",
            ));
        }
        if requested_ips.len() > 2 {
            errs.push(FieldError::invalid(
                "spec.clusterIPs",
                json!(requested_ips),
                "may only hold up to 2 values",
            ));
        }
        for (i, fam) in ip_families.iter().enumerate() {
            if let Some(f) = families.get(i)
                && f != fam
            {
                errs.push(FieldError::invalid(
                    format!("spec.clusterIPs[{i}]"),
                    json!(requested_ips[i]),
                    format!(
                        "expected an {} value as indicated by `ipFamilies[{i}]`",
                        f.k8s_name()
                    ),
                ));
            }
        }
        if !errs.is_empty() {
            return;
        }
        let has_selector = spec["selector"].as_object().is_some_and(|m| !m.is_empty());
        let policy = match s(spec, "ipFamilyPolicy") {
            Some(p) => p.to_string(),
            None if families.len() == 2 || ip_families.len() == 2 => "RequireDualStack".into(),
            None if headless && !has_selector && self.is_dual_stack() => "RequireDualStack".into(),
            None => "SingleStack".into(),
        };
        if policy == "SingleStack" && (families.len() > 1 || ip_families.len() > 1) {
            errs.push(FieldError::invalid("spec.ipFamilyPolicy", json!(policy), "must be RequireDualStack or PreferDualStack when multiple IP families are specified"));
            return;
        }
        if policy == "RequireDualStack" && !self.is_dual_stack() {
            errs.push(FieldError::invalid(
                "spec.ipFamilyPolicy",
                json!(policy),
                "this cluster is not configured for dual-stack services",
            ));
            return;
        }
        // Pick families: explicit ones first, then the families of requested IPs, then the
        // cluster's order.
        let mut chosen: Vec<Family> = families.clone();
        for f in &ip_families {
            if !chosen.contains(f) {
                chosen.push(*f);
            }
        }
        let want = if policy == "SingleStack" { 1 } else { 2 };
        for f in &self.families {
            if chosen.len() >= want {
                break;
            }
            if !chosen.contains(f) {
                chosen.push(*f);
            }
        }
        chosen.truncate(want);
        if !headless {
            chosen.retain(|f| self.families.contains(f));
        }
        spec["ipFamilyPolicy"] = json!(policy);
        spec["ipFamilies"] = family_names(&chosen);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(cidrs: &str) -> Arc<ServiceNetworks> {
        Arc::new(ServiceNetworks::new(cidrs, "30000-30100").unwrap())
    }

    fn svc(spec: Value) -> Value {
        let mut v = json!({"metadata": {"name": "web", "namespace": "default"}, "spec": spec});
        apply_defaults(&mut v, 35);
        v
    }

    #[test]
    fn cluster_ip_service_gets_one_ip_and_defaults() {
        let n = nets("203.0.113.0/25,2001:db8:fffe::/108");
        let mut s1 = svc(json!({"ports": [{"port": 80}]}));
        assert!(validate(&s1).is_empty());
        n.allocate(None, &mut s1).unwrap().commit();
        let spec = &s1["spec"];
        assert_eq!(spec["ipFamilyPolicy"], "SingleStack");
        assert_eq!(spec["ipFamilies"], json!(["IPv4"]));
        assert_eq!(spec["clusterIPs"].as_array().unwrap().len(), 1);
        assert_eq!(spec["clusterIP"], spec["clusterIPs"][0]);
        assert_eq!(spec["ports"][0]["protocol"], "TCP");
        assert_eq!(spec["ports"][0]["targetPort"], 80);
        assert_eq!(spec["sessionAffinity"], "None");
        assert_eq!(spec["internalTrafficPolicy"], "Cluster");
        assert!(spec.get("externalTrafficPolicy").is_none());
        assert!(spec["ports"][0].get("nodePort").is_none());
    }

    #[test]
    fn dual_stack_policies() {
        let n = nets("203.0.113.0/25,2001:db8:fffe::/108");
        let mut s = svc(json!({"ipFamilyPolicy": "PreferDualStack", "ports": [{"port": 80}]}));
        n.allocate(None, &mut s).unwrap().commit();
        assert_eq!(s["spec"]["ipFamilies"], json!(["IPv4", "IPv6"]));
        assert_eq!(s["spec"]["clusterIPs"].as_array().unwrap().len(), 2);
        let mut v6 = svc(
            json!({"ipFamilies": ["IPv6", "IPv4"], "ipFamilyPolicy": "RequireDualStack", "ports": [{"port": 80}]}),
        );
        n.allocate(None, &mut v6).unwrap().commit();
        assert!(v6["spec"]["clusterIP"].as_str().unwrap().contains(':'));
        let single = nets("203.0.113.0/25");
        let mut req = svc(json!({"ipFamilyPolicy": "RequireDualStack", "ports": [{"port": 80}]}));
        let errs = single.allocate(None, &mut req).err().unwrap();
        assert!(
            errs[0]
                .to_string()
                .contains("not configured for dual-stack")
        );
        let mut prefer = svc(json!({"ipFamilyPolicy": "PreferDualStack", "ports": [{"port": 80}]}));
        single.allocate(None, &mut prefer).unwrap().commit();
        assert_eq!(prefer["spec"]["ipFamilies"], json!(["IPv4"]));
        let mut bad = svc(json!({"ipFamilies": ["IPv6"], "ports": [{"port": 80}]}));
        assert!(single.allocate(None, &mut bad).is_err());
    }

    #[test]
    fn load_balancer_gets_node_ports_and_health_check_port() {
        let n = nets("203.0.113.0/25");
        let mut s = svc(
            json!({"type": "LoadBalancer", "externalTrafficPolicy": "Local", "ports": [{"name": "a", "port": 80}, {"name": "b", "port": 80, "protocol": "UDP"}, {"name": "c", "port": 443}]}),
        );
        assert!(validate(&s).is_empty(), "{:?}", validate(&s));
        n.allocate(None, &mut s).unwrap().commit();
        let p = &s["spec"]["ports"];
        assert_eq!(
            p[0]["nodePort"], p[1]["nodePort"],
            "same port number, different protocols share a node port"
        );
        assert_ne!(p[0]["nodePort"], p[2]["nodePort"]);
        assert!(s["spec"]["healthCheckNodePort"].as_u64().unwrap() >= 30000);
        assert_eq!(s["spec"]["allocateLoadBalancerNodePorts"], true);
        assert_eq!(n.usage(), (1, 3));
        n.release_all(&s);
        assert_eq!(n.usage(), (0, 0));
    }

    #[test]
    fn turning_off_automatic_node_ports_keeps_the_existing_ones() {
        let n = nets("203.0.113.0/25");
        let mut lb = svc(json!({"type": "LoadBalancer", "ports": [{"port": 80}]}));
        n.allocate(None, &mut lb).unwrap().commit();
        let port = lb["spec"]["ports"][0]["nodePort"].clone();
        let mut off = lb.clone();
        off["spec"]["allocateLoadBalancerNodePorts"] = json!(false);
        carry_over_allocations(&lb, &mut off);
        assert_eq!(off["spec"]["ports"][0]["nodePort"], port);
        n.allocate(Some(&lb), &mut off).unwrap().commit();
        assert_eq!(n.usage().1, 1, "still allocated");
        let mut removed = off.clone();
        removed["spec"]["ports"][0]
            .as_object_mut()
            .unwrap()
            .remove("nodePort");
        n.allocate(Some(&off), &mut removed).unwrap().commit();
        assert_eq!(n.usage().1, 0, "released once the client removes it");
    }

    #[test]
    fn no_node_ports_when_disabled() {
        let n = nets("203.0.113.0/25");
        let mut s = svc(
            json!({"type": "LoadBalancer", "allocateLoadBalancerNodePorts": false, "ports": [{"port": 80}]}),
        );
        n.allocate(None, &mut s).unwrap().commit();
        assert!(s["spec"]["ports"][0].get("nodePort").is_none());
    }

    #[test]
    fn conflicts_on_requested_values() {
        let n = nets("203.0.113.0/25");
        let mut a = svc(
            json!({"type": "NodePort", "clusterIP": "203.0.113.10", "ports": [{"port": 80, "nodePort": 30050}]}),
        );
        n.allocate(None, &mut a).unwrap().commit();
        let mut b = svc(
            json!({"type": "NodePort", "clusterIP": "203.0.113.10", "ports": [{"port": 80, "nodePort": 30050}]}),
        );
        let errs = n.allocate(None, &mut b).err().unwrap();
        let msgs: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert!(
            msgs.iter().any(|m| m
                .contains("failed to allocate IP 203.0.113.10: provided IP is already allocated")),
            "{msgs:?}"
        );
        let mut c = svc(json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30050}]}));
        let errs = n.allocate(None, &mut c).err().unwrap();
        assert_eq!(
            errs[0].to_string(),
            "spec.ports[0].nodePort: Invalid value: 30050: provided port is already allocated"
        );
        // Failed reservations gave everything back.
        assert_eq!(n.usage(), (1, 1));
        let mut out_of_range = svc(json!({"clusterIP": "198.51.100.1", "ports": [{"port": 80}]}));
        assert!(n.allocate(None, &mut out_of_range).is_err());
    }

    #[test]
    fn type_change_releases_node_ports_and_updates_keep_allocations() {
        let n = nets("203.0.113.0/25");
        let mut lb = svc(json!({"type": "LoadBalancer", "ports": [{"port": 80}]}));
        n.allocate(None, &mut lb).unwrap().commit();
        let ip = lb["spec"]["clusterIP"].clone();
        // An update that omits allocated values keeps them.
        let mut same = svc(json!({"type": "LoadBalancer", "ports": [{"port": 80}]}));
        carry_over_allocations(&lb, &mut same);
        assert!(validate_update(&lb, &same).is_empty());
        n.allocate(Some(&lb), &mut same).unwrap().commit();
        assert_eq!(same["spec"]["clusterIP"], ip);
        assert_eq!(
            same["spec"]["ports"][0]["nodePort"],
            lb["spec"]["ports"][0]["nodePort"]
        );
        assert_eq!(n.usage(), (1, 1));
        // To ClusterIP: node ports go.
        let mut cip = same.clone();
        cip["spec"]["type"] = json!("ClusterIP");
        carry_over_allocations(&same, &mut cip);
        assert!(cip["spec"]["ports"][0].get("nodePort").is_none());
        assert!(cip["spec"].get("allocateLoadBalancerNodePorts").is_none());
        assert!(validate(&cip).is_empty(), "{:?}", validate(&cip));
        n.allocate(Some(&same), &mut cip).unwrap().commit();
        assert_eq!(n.usage(), (1, 0));
        // Changing the cluster IP is refused.
        let mut moved = cip.clone();
        let other = if cip["spec"]["clusterIP"] == "203.0.113.99" {
            "203.0.113.98"
        } else {
            "203.0.113.99"
        };
        moved["spec"]["clusterIP"] = json!(other);
        assert!(!validate_update(&cip, &moved).is_empty(), "{cip}");
    }

    #[test]
    fn validation_rejects_malformed_services() {
        let cases = [
            (
                json!({"type": "Bogus", "ports": [{"port": 80}]}),
                "spec.type",
            ),
            (json!({"ports": [{"port": 0}]}), "spec.ports[0].port"),
            (
                json!({"ports": [{"port": 80, "protocol": "ICMP"}]}),
                "spec.ports[0].protocol",
            ),
            (
                json!({"ports": [{"port": 80}, {"port": 81}]}),
                "spec.ports[0].name",
            ),
            (
                json!({"ports": [{"port": 80, "name": "a"}, {"port": 80, "name": "b"}]}),
                "spec.ports[1]",
            ),
            (
                json!({"ports": [{"port": 80, "targetPort": "Not_A_Name"}]}),
                "spec.ports[0].targetPort",
            ),
            (
                json!({"ports": [{"port": 80, "nodePort": 30001}]}),
                "spec.ports[0].nodePort",
            ),
            (json!({"ports": []}), "spec.ports"),
            (json!({"type": "ExternalName"}), "spec.externalName"),
            (
                json!({"ports": [{"port": 80}], "loadBalancerClass": "x"}),
                "spec.loadBalancerClass",
            ),
            (
                json!({"type": "LoadBalancer", "ports": [{"port": 80}], "loadBalancerSourceRanges": ["10.0.0.0"]}),
                "spec.loadBalancerSourceRanges[0]",
            ),
            (
                json!({"ports": [{"port": 80}], "healthCheckNodePort": 30000}),
                "spec.healthCheckNodePort",
            ),
            (
                json!({"ports": [{"port": 80}], "externalIPs": ["nope"]}),
                "spec.externalIPs[0]",
            ),
        ];
        for (spec, field) in cases {
            let errs = validate(&svc(spec.clone()));
            assert!(errs.iter().any(|e| e.field == field), "{spec}: {errs:?}");
        }
        let mut bad_name = svc(json!({"ports": [{"port": 80}]}));
        bad_name["metadata"]["name"] = json!("1web");
        assert!(
            validate(&bad_name)
                .iter()
                .any(|e| e.field == "metadata.name")
        );
    }

    #[test]
    fn ip_mode_rules_follow_the_version() {
        let status = json!({"loadBalancer": {"ingress": [{"ip": "198.51.100.1"}]}});
        let mut new = json!({"spec": {"type": "LoadBalancer"}, "status": status.clone()});
        apply_defaults(&mut new, 35);
        assert_eq!(new["status"]["loadBalancer"]["ingress"][0]["ipMode"], "VIP");
        let mut old = json!({"spec": {}, "status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.1", "ipMode": "Proxy"}]}}});
        apply_defaults(&mut old, 29);
        assert!(
            old["status"]["loadBalancer"]["ingress"][0]
                .get("ipMode")
                .is_none()
        );
        let errs = validate_status(
            &json!({"loadBalancer": {"ingress": [{"hostname": "x.example", "ipMode": "VIP"}, {"ip": "1.2.3.4", "ipMode": "Fast"}, {"ip": "nope"}]}}),
        );
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "status.loadBalancer.ingress[0].ipMode",
                "status.loadBalancer.ingress[1].ipMode",
                "status.loadBalancer.ingress[2].ip"
            ]
        );
    }

    #[test]
    fn headless_services() {
        let n = nets("203.0.113.0/25,2001:db8:fffe::/108");
        let mut h =
            svc(json!({"clusterIP": "None", "selector": {"app": "x"}, "ports": [{"port": 80}]}));
        n.allocate(None, &mut h).unwrap().commit();
        assert_eq!(h["spec"]["clusterIPs"], json!(["None"]));
        assert_eq!(n.usage(), (0, 0));
        let mut nosel = svc(json!({"clusterIP": "None"}));
        assert!(validate(&nosel).is_empty());
        n.allocate(None, &mut nosel).unwrap().commit();
        assert_eq!(nosel["spec"]["ipFamilyPolicy"], "RequireDualStack");
        assert_eq!(nosel["spec"]["ipFamilies"], json!(["IPv4", "IPv6"]));
    }
}
