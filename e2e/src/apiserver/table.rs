//! Server-side printing (`meta.k8s.io/v1 Table`): the columns `kubectl get` shows for each kind,
//! computed as the API server's printers do, and CRD `additionalPrinterColumns`.

use serde_json::{Value, json};

use super::jsonpath::JsonPath;
use super::registry::{Behavior, PrinterColumn, ResourceDef};
use super::time::{age_of, parse_rfc3339};

/// The `includeObject` query parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncludeObject {
    None,
    Metadata,
    Object,
}

impl IncludeObject {
    pub fn parse(v: Option<&str>) -> Result<Self, String> {
        match v {
            None | Some("") | Some("Metadata") => Ok(IncludeObject::Metadata),
            Some("None") => Ok(IncludeObject::None),
            Some("Object") => Ok(IncludeObject::Object),
            Some(other) => Err(format!(
                "includeObject: Unsupported value: {other:?}: supported values: \"Metadata\", \"None\", \"Object\""
            )),
        }
    }
}

struct Col(&'static str, &'static str, i64, &'static str);

fn col_defs(cols: &[Col]) -> Vec<Value> {
    cols.iter()
        .map(|Col(name, ty, priority, description)| {
            let format = if *name == "Name" { "name" } else { "" };
            json!({"name": name, "type": ty, "format": format, "description": description, "priority": priority})
        })
        .collect()
}

fn s<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or_default()
}

fn or_none(x: String) -> String {
    if x.is_empty() { "<none>".into() } else { x }
}

fn age(obj: &Value) -> Value {
    json!(age_of(obj["metadata"]["creationTimestamp"].as_str()))
}

fn name(obj: &Value) -> Value {
    obj["metadata"]["name"].clone()
}

fn selector_string(sel: &Value) -> String {
    sel.as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

fn service_row(o: &Value) -> Vec<Value> {
    let spec = &o["spec"];
    let ty = s(spec, "/type");
    let cluster_ip = match s(spec, "/clusterIP") {
        "" => "<none>".to_string(),
        ip => ip.to_string(),
    };
    let external_ips: Vec<String> = spec["externalIPs"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let external = match ty {
        "ClusterIP" | "NodePort" => or_none(external_ips.join(",")),
        "LoadBalancer" => {
            let mut ing: Vec<String> = o
                .pointer("/status/loadBalancer/ingress")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|i| i["ip"].as_str().or(i["hostname"].as_str()))
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            ing.extend(external_ips);
            if ing.is_empty() {
                "<pending>".into()
            } else {
                ing.join(",")
            }
        }
        "ExternalName" => s(spec, "/externalName").to_string(),
        _ => "<unknown>".into(),
    };
    let ports: Vec<String> = spec["ports"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .map(|p| {
                    let proto = p["protocol"].as_str().unwrap_or("TCP");
                    match p["nodePort"].as_i64().filter(|n| *n > 0) {
                        Some(np) => format!("{}:{np}/{proto}", p["port"]),
                        None => format!("{}/{proto}", p["port"]),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    vec![
        name(o),
        json!(ty),
        json!(cluster_ip),
        json!(external),
        json!(or_none(ports.join(","))),
        age(o),
        json!(or_none(selector_string(&spec["selector"]))),
    ]
}

fn pod_row(o: &Value) -> Vec<Value> {
    let statuses = o["status"]["containerStatuses"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let total = o["spec"]["containers"]
        .as_array()
        .map(Vec::len)
        .unwrap_or(0);
    let ready = statuses
        .iter()
        .filter(|c| c["ready"].as_bool() == Some(true))
        .count();
    let restarts: i64 = statuses
        .iter()
        .filter_map(|c| c["restartCount"].as_i64())
        .sum();
    let mut reason = o["status"]["reason"]
        .as_str()
        .or(o["status"]["phase"].as_str())
        .unwrap_or("Unknown")
        .to_string();
    for c in &statuses {
        if let Some(r) = c
            .pointer("/state/waiting/reason")
            .and_then(Value::as_str)
            .filter(|r| !r.is_empty())
        {
            reason = r.to_string();
        } else if let Some(r) = c
            .pointer("/state/terminated/reason")
            .and_then(Value::as_str)
            .filter(|r| !r.is_empty())
        {
            reason = r.to_string();
        }
    }
    if o["metadata"].get("deletionTimestamp").is_some() {
        reason = if o["status"]["reason"] == "NodeLost" {
            "Unknown".into()
        } else {
            "Terminating".into()
        };
    }
    let ip = or_none(s(o, "/status/podIP").to_string());
    let node = or_none(s(o, "/spec/nodeName").to_string());
    let nominated = or_none(s(o, "/status/nominatedNodeName").to_string());
    vec![
        name(o),
        json!(format!("{ready}/{total}")),
        json!(reason),
        json!(restarts),
        age(o),
        json!(ip),
        json!(node),
        json!(nominated),
        json!("<none>"),
    ]
}

fn node_row(o: &Value) -> Vec<Value> {
    let ready = o["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
        .map(|c| c["status"].as_str().unwrap_or_default().to_string());
    let mut status = match ready.as_deref() {
        Some("True") => "Ready".to_string(),
        Some("False") => "NotReady".to_string(),
        _ => "Unknown".to_string(),
    };
    if o["spec"]["unschedulable"].as_bool() == Some(true) {
        status.push_str(",SchedulingDisabled");
    }
    let roles: Vec<String> = o["metadata"]["labels"]
        .as_object()
        .map(|l| {
            l.keys()
                .filter_map(|k| k.strip_prefix("node-role.kubernetes.io/"))
                .filter(|r| !r.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let addr = |t: &str| -> String {
        o["status"]["addresses"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["type"] == t))
            .and_then(|x| x["address"].as_str())
            .unwrap_or("<none>")
            .to_string()
    };
    let info = &o["status"]["nodeInfo"];
    vec![
        name(o),
        json!(status),
        json!(or_none(roles.join(","))),
        age(o),
        json!(s(info, "/kubeletVersion")),
        json!(addr("InternalIP")),
        json!(addr("ExternalIP")),
        json!(or_none(s(info, "/osImage").to_string())),
        json!(or_none(s(info, "/kernelVersion").to_string())),
        json!(or_none(s(info, "/containerRuntimeVersion").to_string())),
    ]
}

fn slice_row(o: &Value) -> Vec<Value> {
    let ports: Vec<String> = o["ports"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .filter_map(|p| p["port"].as_i64())
                .map(|p| p.to_string())
                .collect()
        })
        .unwrap_or_default();
    let addrs: Vec<String> = o["endpoints"]
        .as_array()
        .map(|es| {
            es.iter()
                .flat_map(|e| e["addresses"].as_array().cloned().unwrap_or_default())
                .filter_map(|a| a.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let endpoints = if addrs.is_empty() {
        "<unset>".to_string()
    } else if addrs.len() > 3 {
        format!("{} + {} more...", addrs[..3].join(","), addrs.len() - 3)
    } else {
        addrs.join(",")
    };
    vec![
        name(o),
        json!(s(o, "/addressType")),
        json!(if ports.is_empty() {
            "<unset>".into()
        } else {
            ports.join(",")
        }),
        json!(endpoints),
        age(o),
    ]
}

fn endpoints_row(o: &Value) -> Vec<Value> {
    let mut list = Vec::new();
    for sub in o["subsets"].as_array().cloned().unwrap_or_default() {
        let ports: Vec<i64> = sub["ports"]
            .as_array()
            .map(|p| p.iter().filter_map(|x| x["port"].as_i64()).collect())
            .unwrap_or_default();
        for a in sub["addresses"].as_array().cloned().unwrap_or_default() {
            let ip = a["ip"].as_str().unwrap_or_default();
            if ports.is_empty() {
                list.push(ip.to_string());
            }
            for p in &ports {
                list.push(format!("{ip}:{p}"));
            }
        }
    }
    let shown = if list.len() > 3 {
        format!("{} + {} more...", list[..3].join(","), list.len() - 3)
    } else {
        or_none(list.join(","))
    };
    vec![name(o), json!(shown), age(o)]
}

fn event_row(o: &Value) -> Vec<Value> {
    let last = o["series"]["lastObservedTime"]
        .as_str()
        .or(o["lastTimestamp"].as_str())
        .or(o["eventTime"].as_str())
        .or(o["metadata"]["creationTimestamp"].as_str());
    let first = o["firstTimestamp"]
        .as_str()
        .or(o["eventTime"].as_str())
        .or(o["metadata"]["creationTimestamp"].as_str());
    let kind = o["involvedObject"]["kind"]
        .as_str()
        .unwrap_or_default()
        .to_ascii_lowercase();
    let object = format!("{kind}/{}", s(o, "/involvedObject/name"));
    let source = match (s(o, "/source/component"), s(o, "/reportingComponent")) {
        ("", "") => "<none>".to_string(),
        ("", rc) => rc.to_string(),
        (c, _) => match s(o, "/source/host") {
            "" => c.to_string(),
            h => format!("{c}, {h}"),
        },
    };
    let count = o["series"]["count"]
        .as_i64()
        .or(o["count"].as_i64())
        .unwrap_or(1);
    let last_age = if last.and_then(parse_rfc3339).is_some() {
        age_of(last)
    } else {
        "<unknown>".into()
    };
    vec![
        json!(last_age),
        json!(s(o, "/type")),
        json!(s(o, "/reason")),
        json!(object),
        json!(s(o, "/involvedObject/fieldPath")),
        json!(source),
        json!(s(o, "/message").trim()),
        json!(age_of(first)),
        json!(count),
        name(o),
    ]
}

fn count_of(v: &Value) -> usize {
    v.as_object().map(|m| m.len()).unwrap_or(0)
}

type RowFn = fn(&Value) -> Vec<Value>;

fn generic_columns(def: &ResourceDef) -> (Vec<Value>, RowFn) {
    use Behavior as B;
    match def.behavior {
        B::Service => (
            col_defs(&[
                Col(
                    "Name",
                    "string",
                    0,
                    "Name must be unique within a namespace.",
                ),
                Col("Type", "string", 0, "The type of service."),
                Col("Cluster-IP", "string", 0, "IP address of the service."),
                Col(
                    "External-IP",
                    "string",
                    0,
                    "External IP addresses of the service.",
                ),
                Col("Port(s)", "string", 0, "The ports the service exposes."),
                Col("Age", "string", 0, "Time since the object was created."),
                Col(
                    "Selector",
                    "string",
                    1,
                    "Route service traffic to pods with label keys and values matching this selector.",
                ),
            ]),
            service_row,
        ),
        B::Pod => (
            col_defs(&[
                Col(
                    "Name",
                    "string",
                    0,
                    "Name must be unique within a namespace.",
                ),
                Col(
                    "Ready",
                    "string",
                    0,
                    "The aggregate readiness state of this pod for accepting traffic.",
                ),
                Col(
                    "Status",
                    "string",
                    0,
                    "The aggregate status of the containers in this pod.",
                ),
                Col(
                    "Restarts",
                    "string",
                    0,
                    "The number of times the containers in this pod have been restarted.",
                ),
                Col("Age", "string", 0, "Time since the object was created."),
                Col("IP", "string", 1, "IP address allocated to the pod."),
                Col(
                    "Node",
                    "string",
                    1,
                    "Name of the Node this pod is assigned to.",
                ),
                Col(
                    "Nominated Node",
                    "string",
                    1,
                    "Name of the node nominated for this pod.",
                ),
                Col(
                    "Readiness Gates",
                    "string",
                    1,
                    "Readiness gates of the pod.",
                ),
            ]),
            pod_row,
        ),
        B::Node => (
            col_defs(&[
                Col("Name", "string", 0, "Name must be unique."),
                Col("Status", "string", 0, "The status of the node."),
                Col("Roles", "string", 0, "The roles of the node."),
                Col("Age", "string", 0, "Time since the object was created."),
                Col(
                    "Version",
                    "string",
                    0,
                    "Kubelet Version reported by the node.",
                ),
                Col("Internal-IP", "string", 1, "List of internal IPs."),
                Col("External-IP", "string", 1, "List of external IPs."),
                Col("OS-Image", "string", 1, "OS Image reported by the node."),
                Col(
                    "Kernel-Version",
                    "string",
                    1,
                    "Kernel Version reported by the node.",
                ),
                Col(
                    "Container-Runtime",
                    "string",
                    1,
                    "Container Runtime Version reported by the node.",
                ),
            ]),
            node_row,
        ),
        B::Namespace => (
            col_defs(&[
                Col("Name", "string", 0, "Name must be unique."),
                Col("Status", "string", 0, "The status of the namespace."),
                Col("Age", "string", 0, "Time since the object was created."),
            ]),
            |o| {
                vec![
                    name(o),
                    json!(o["status"]["phase"].as_str().unwrap_or("Active")),
                    age(o),
                ]
            },
        ),
        B::EndpointSlice => (
            col_defs(&[
                Col(
                    "Name",
                    "string",
                    0,
                    "Name must be unique within a namespace.",
                ),
                Col(
                    "AddressType",
                    "string",
                    0,
                    "The type of address held by the EndpointSlice.",
                ),
                Col("Ports", "string", 0, "The ports of the EndpointSlice."),
                Col("Endpoints", "string", 0, "The addresses of the endpoints."),
                Col("Age", "string", 0, "Time since the object was created."),
            ]),
            slice_row,
        ),
        B::Endpoints => (
            col_defs(&[
                Col(
                    "Name",
                    "string",
                    0,
                    "Name must be unique within a namespace.",
                ),
                Col("Endpoints", "string", 0, "Endpoints of the service."),
                Col("Age", "string", 0, "Time since the object was created."),
            ]),
            endpoints_row,
        ),
        B::Lease => (
            col_defs(&[
                Col(
                    "Name",
                    "string",
                    0,
                    "Name must be unique within a namespace.",
                ),
                Col("Holder", "string", 0, "The holder of the lease."),
                Col("Age", "string", 0, "Time since the object was created."),
            ]),
            |o| vec![name(o), json!(s(o, "/spec/holderIdentity")), age(o)],
        ),
        B::CoreEvent | B::EventsV1 => (
            col_defs(&[
                Col(
                    "Last Seen",
                    "string",
                    0,
                    "Time since the most recent occurrence.",
                ),
                Col("Type", "string", 0, "Type of this event (Normal, Warning)."),
                Col("Reason", "string", 0, "Why the action was taken."),
                Col("Object", "string", 0, "The object this event is about."),
                Col(
                    "Subobject",
                    "string",
                    1,
                    "The part of the object this event is about.",
                ),
                Col("Source", "string", 1, "The component reporting this event."),
                Col(
                    "Message",
                    "string",
                    0,
                    "A human-readable description of the status of this operation.",
                ),
                Col(
                    "First Seen",
                    "string",
                    1,
                    "Time since the first occurrence.",
                ),
                Col(
                    "Count",
                    "string",
                    1,
                    "The number of times this event has occurred.",
                ),
                Col(
                    "Name",
                    "string",
                    1,
                    "Name must be unique within a namespace.",
                ),
            ]),
            event_row,
        ),
        B::ConfigMap => (
            col_defs(&[
                Col(
                    "Name",
                    "string",
                    0,
                    "Name must be unique within a namespace.",
                ),
                Col("Data", "string", 0, "Number of keys."),
                Col("Age", "string", 0, "Time since the object was created."),
            ]),
            |o| {
                vec![
                    name(o),
                    json!(count_of(&o["data"]) + count_of(&o["binaryData"])),
                    age(o),
                ]
            },
        ),
        B::Secret => (
            col_defs(&[
                Col(
                    "Name",
                    "string",
                    0,
                    "Name must be unique within a namespace.",
                ),
                Col("Type", "string", 0, "The type of secret."),
                Col("Data", "string", 0, "Number of keys."),
                Col("Age", "string", 0, "Time since the object was created."),
            ]),
            |o| {
                vec![
                    name(o),
                    json!(o["type"].as_str().unwrap_or("Opaque")),
                    json!(count_of(&o["data"])),
                    age(o),
                ]
            },
        ),
        B::ServiceAccount => (
            col_defs(&[
                Col(
                    "Name",
                    "string",
                    0,
                    "Name must be unique within a namespace.",
                ),
                Col("Secrets", "string", 0, "Number of secrets."),
                Col("Age", "string", 0, "Time since the object was created."),
            ]),
            |o| {
                vec![
                    name(o),
                    json!(o["secrets"].as_array().map(Vec::len).unwrap_or(0)),
                    age(o),
                ]
            },
        ),
        B::Deployment => (
            col_defs(&[
                Col(
                    "Name",
                    "string",
                    0,
                    "Name must be unique within a namespace.",
                ),
                Col(
                    "Ready",
                    "string",
                    0,
                    "Number of ready replicas out of desired.",
                ),
                Col("Up-to-date", "string", 0, "Updated replicas."),
                Col("Available", "string", 0, "Available replicas."),
                Col("Age", "string", 0, "Time since the object was created."),
            ]),
            |o| {
                let st = &o["status"];
                let n = |k: &str| st[k].as_i64().unwrap_or(0);
                vec![
                    name(o),
                    json!(format!(
                        "{}/{}",
                        n("readyReplicas"),
                        o["spec"]["replicas"].as_i64().unwrap_or(1)
                    )),
                    json!(n("updatedReplicas")),
                    json!(n("availableReplicas")),
                    age(o),
                ]
            },
        ),
        B::DaemonSet => (
            col_defs(&[
                Col(
                    "Name",
                    "string",
                    0,
                    "Name must be unique within a namespace.",
                ),
                Col("Desired", "string", 0, "Desired number of scheduled pods."),
                Col("Current", "string", 0, "Currently scheduled pods."),
                Col("Ready", "string", 0, "Ready pods."),
                Col("Up-to-date", "string", 0, "Updated pods."),
                Col("Available", "string", 0, "Available pods."),
                Col(
                    "Node Selector",
                    "string",
                    0,
                    "The node selector of the pods.",
                ),
                Col("Age", "string", 0, "Time since the object was created."),
            ]),
            |o| {
                let st = &o["status"];
                let n = |k: &str| st[k].as_i64().unwrap_or(0);
                vec![
                    name(o),
                    json!(n("desiredNumberScheduled")),
                    json!(n("currentNumberScheduled")),
                    json!(n("numberReady")),
                    json!(n("updatedNumberScheduled")),
                    json!(n("numberAvailable")),
                    json!(or_none(selector_string(
                        &o["spec"]["template"]["spec"]["nodeSelector"]
                    ))),
                    age(o),
                ]
            },
        ),
        B::Rbac if def.kind.ends_with("Binding") => (
            col_defs(&[
                Col("Name", "string", 0, "Name must be unique."),
                Col("Role", "string", 0, "The role the binding grants."),
                Col("Age", "string", 0, "Time since the object was created."),
            ]),
            |o| {
                vec![
                    name(o),
                    json!(format!(
                        "{}/{}",
                        s(o, "/roleRef/kind"),
                        s(o, "/roleRef/name")
                    )),
                    age(o),
                ]
            },
        ),
        B::Rbac | B::Crd => (
            col_defs(&[
                Col("Name", "string", 0, "Name must be unique."),
                Col("Created At", "date", 0, "Time the object was created."),
            ]),
            |o| vec![name(o), o["metadata"]["creationTimestamp"].clone()],
        ),
        _ => (
            col_defs(&[
                Col(
                    "Name",
                    "string",
                    0,
                    "Name must be unique within a namespace.",
                ),
                Col("Age", "string", 0, "Time since the object was created."),
            ]),
            |o| vec![name(o), age(o)],
        ),
    }
}

/// A CRD column's cell: strings as found (other JSON printed as JSON), typed values typed,
/// dates as ages, nothing as `null` (which kubectl prints as `<none>`).
fn custom_cell(col: &PrinterColumn, path: &Option<JsonPath>, obj: &Value) -> Value {
    let Some(path) = path else { return Value::Null };
    let Some(v) = path.find(obj).into_iter().next() else {
        return Value::Null;
    };
    match col.type_.as_str() {
        "integer" => v
            .as_i64()
            .map(Value::from)
            .or_else(|| v.as_f64().map(|f| json!(f as i64)))
            .unwrap_or(Value::Null),
        "number" => v.as_f64().map(Value::from).unwrap_or(Value::Null),
        "boolean" => v.as_bool().map(Value::from).unwrap_or(Value::Null),
        "date" => match v.as_str() {
            Some(t) if parse_rfc3339(t).is_some() => json!(age_of(Some(t))),
            _ => Value::Null,
        },
        _ => match v {
            Value::String(s) => json!(s),
            Value::Null => Value::Null,
            other => json!(other.to_string()),
        },
    }
}

fn custom_columns(def: &ResourceDef) -> (Vec<Value>, Vec<(PrinterColumn, Option<JsonPath>)>) {
    let mut defs = vec![
        json!({"name": "Name", "type": "string", "format": "name", "description": "Name must be unique within a namespace.", "priority": 0}),
    ];
    let cols: Vec<(PrinterColumn, Option<JsonPath>)> = def
        .printer_columns
        .iter()
        .map(|c| (c.clone(), JsonPath::parse(&c.json_path).ok()))
        .collect();
    for (c, _) in &cols {
        defs.push(json!({"name": c.name, "type": c.type_, "format": c.format, "description": c.description, "priority": c.priority}));
    }
    (defs, cols)
}

fn row_object(obj: &Value, include: IncludeObject) -> Option<Value> {
    match include {
        IncludeObject::None => None,
        IncludeObject::Object => Some(obj.clone()),
        IncludeObject::Metadata => Some(
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]}),
        ),
    }
}

/// A Table of `objs` (already in the request's version).
pub fn table(
    def: &ResourceDef,
    objs: &[Value],
    include: IncludeObject,
    with_headers: bool,
    rv: &str,
) -> Value {
    let (columns, rows): (Vec<Value>, Vec<Vec<Value>>) =
        if def.behavior == Behavior::Custom && !def.printer_columns.is_empty() {
            let (defs, cols) = custom_columns(def);
            let rows = objs
                .iter()
                .map(|o| {
                    std::iter::once(name(o))
                        .chain(cols.iter().map(|(c, p)| custom_cell(c, p, o)))
                        .collect()
                })
                .collect();
            (defs, rows)
        } else {
            let (defs, f) = generic_columns(def);
            // Events are printed from their core form whichever version was asked for.
            let rows = objs
                .iter()
                .map(|o| {
                    if def.behavior == Behavior::EventsV1 {
                        f(&super::kinds::event::to_core(o))
                    } else {
                        f(o)
                    }
                })
                .collect();
            (defs, rows)
        };
    let rows: Vec<Value> = objs
        .iter()
        .zip(rows)
        .map(|(o, cells)| {
            let mut r = json!({"cells": cells});
            if let Some(obj) = row_object(o, include) {
                r["object"] = obj;
            }
            r
        })
        .collect();
    let mut t = json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": rv}, "rows": rows});
    if with_headers {
        t["columnDefinitions"] = Value::Array(columns);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::registry::{Registry, RegistryOptions};
    use crate::apiserver::time::now_time;

    fn def(group: &str, plural: &str) -> std::sync::Arc<ResourceDef> {
        Registry::builtin(&RegistryOptions { minor_version: 35 })
            .get(group, "v1", plural)
            .unwrap()
    }

    fn cells(t: &Value) -> Vec<Value> {
        t["rows"][0]["cells"].as_array().unwrap().clone()
    }

    #[test]
    fn services_print_like_kubectl() {
        let svc = json!({"metadata": {"name": "web", "creationTimestamp": now_time()},
            "spec": {"type": "LoadBalancer", "clusterIP": "203.0.113.10", "selector": {"app": "web"},
                     "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}, {"port": 53, "protocol": "UDP", "nodePort": 30053}]},
            "status": {"loadBalancer": {}}});
        let t = table(
            &def("", "services"),
            std::slice::from_ref(&svc),
            IncludeObject::Metadata,
            true,
            "5",
        );
        let names: Vec<&str> = t["columnDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "Name",
                "Type",
                "Cluster-IP",
                "External-IP",
                "Port(s)",
                "Age",
                "Selector"
            ]
        );
        let c = cells(&t);
        assert_eq!(c[3], "<pending>");
        assert_eq!(c[4], "80:30080/TCP,53:30053/UDP");
        assert_eq!(c[6], "app=web");
        assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
        let mut assigned = svc.clone();
        assigned["status"]["loadBalancer"]["ingress"] =
            json!([{"ip": "198.51.100.1", "ipMode": "VIP"}]);
        let c = cells(&table(
            &def("", "services"),
            &[assigned],
            IncludeObject::None,
            false,
            "5",
        ));
        assert_eq!(c[3], "198.51.100.1");
        let cip =
            json!({"metadata": {"name": "c"}, "spec": {"type": "ClusterIP", "clusterIP": "None"}});
        let c = cells(&table(
            &def("", "services"),
            &[cip],
            IncludeObject::None,
            false,
            "5",
        ));
        assert_eq!(
            (c[2].as_str(), c[3].as_str(), c[4].as_str()),
            (Some("None"), Some("<none>"), Some("<none>"))
        );
    }

    #[test]
    fn pods_nodes_and_slices() {
        let pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}, {"name": "b"}], "nodeName": "node1"},
            "status": {"phase": "Running", "podIP": "10.0.0.5", "containerStatuses": [{"ready": true, "restartCount": 2}, {"ready": false, "restartCount": 1}]}});
        let c = cells(&table(
            &def("", "pods"),
            &[pod],
            IncludeObject::None,
            true,
            "1",
        ));
        assert_eq!(
            &c[..4],
            &[json!("p"), json!("1/2"), json!("Running"), json!(3)]
        );
        assert_eq!(c[6], "node1");
        let node = json!({"metadata": {"name": "node1", "labels": {"node-role.kubernetes.io/control-plane": ""}},
            "spec": {"unschedulable": true},
            "status": {"conditions": [{"type": "Ready", "status": "True"}], "nodeInfo": {"kubeletVersion": "v1.35.0"}, "addresses": [{"type": "InternalIP", "address": "192.0.2.11"}]}});
        let c = cells(&table(
            &def("", "nodes"),
            &[node],
            IncludeObject::None,
            true,
            "1",
        ));
        assert_eq!(c[1], "Ready,SchedulingDisabled");
        assert_eq!(c[2], "control-plane");
        assert_eq!(c[4], "v1.35.0");
        assert_eq!(c[5], "192.0.2.11");
        let slice = json!({"metadata": {"name": "web-abc"}, "addressType": "IPv4", "ports": [{"port": 80}],
            "endpoints": [{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2"]}, {"addresses": ["10.0.0.3"]}, {"addresses": ["10.0.0.4"]}]});
        let c = cells(&table(
            &Registry::builtin(&RegistryOptions { minor_version: 35 })
                .get("discovery.k8s.io", "v1", "endpointslices")
                .unwrap(),
            &[slice],
            IncludeObject::None,
            true,
            "1",
        ));
        assert_eq!(c[3], "10.0.0.1,10.0.0.2,10.0.0.3 + 1 more...");
    }

    #[test]
    fn events_print_object_and_message() {
        let ev = json!({"metadata": {"name": "web.1", "creationTimestamp": now_time()}, "type": "Normal", "reason": "IPAllocated", "message": "Assigned IP",
            "involvedObject": {"kind": "Service", "name": "web"}, "reportingComponent": "ironlb", "eventTime": now_time()});
        let c = cells(&table(
            &def("", "events"),
            &[ev],
            IncludeObject::None,
            true,
            "1",
        ));
        assert_eq!(c[1], "Normal");
        assert_eq!(c[3], "service/web");
        assert_eq!(c[5], "ironlb");
        assert_eq!(c[6], "Assigned IP");
    }

    #[test]
    fn custom_resources_use_printer_columns() {
        let mut d = (*def("", "configmaps")).clone();
        d.behavior = Behavior::Custom;
        d.printer_columns = vec![
            PrinterColumn {
                name: "Addresses".into(),
                type_: "string".into(),
                format: "".into(),
                description: "".into(),
                priority: 0,
                json_path: ".spec.addresses".into(),
            },
            PrinterColumn {
                name: "Auto".into(),
                type_: "boolean".into(),
                format: "".into(),
                description: "".into(),
                priority: 0,
                json_path: ".spec.autoAssign".into(),
            },
            PrinterColumn {
                name: "Assigned".into(),
                type_: "integer".into(),
                format: "".into(),
                description: "".into(),
                priority: 0,
                json_path: ".status.assigned".into(),
            },
            PrinterColumn {
                name: "Ready".into(),
                type_: "string".into(),
                format: "".into(),
                description: "".into(),
                priority: 0,
                json_path: ".status.conditions[?(@.type==\"Ready\")].status".into(),
            },
            PrinterColumn {
                name: "Age".into(),
                type_: "date".into(),
                format: "".into(),
                description: "".into(),
                priority: 0,
                json_path: ".metadata.creationTimestamp".into(),
            },
        ];
        let obj = json!({"metadata": {"name": "pool", "creationTimestamp": now_time()}, "spec": {"addresses": ["198.51.100.0/24"], "autoAssign": true},
                         "status": {"assigned": 3, "conditions": [{"type": "Ready", "status": "True"}]}});
        let t = table(&d, &[obj], IncludeObject::Object, true, "1");
        let c = cells(&t);
        assert_eq!(c[1], "[\"198.51.100.0/24\"]");
        assert_eq!(c[2], true);
        assert_eq!(c[3], 3);
        assert_eq!(c[4], "True");
        assert!(c[5].as_str().unwrap().ends_with('s'));
        assert_eq!(t["columnDefinitions"].as_array().unwrap().len(), 6);
        let empty = json!({"metadata": {"name": "p2"}, "spec": {}});
        assert_eq!(
            cells(&table(&d, &[empty], IncludeObject::None, false, "1"))[4],
            Value::Null
        );
    }

    #[test]
    fn include_object_values() {
        assert_eq!(IncludeObject::parse(None).unwrap(), IncludeObject::Metadata);
        assert_eq!(
            IncludeObject::parse(Some("Object")).unwrap(),
            IncludeObject::Object
        );
        assert!(IncludeObject::parse(Some("All")).is_err());
    }
}
