//! Request bodies in the Kubernetes protobuf encoding (`application/vnd.kubernetes.protobuf`),
//! which client-go's typed clients send: Helm's release Secrets and `kubectl create
//! namespace|configmap|secret|serviceaccount|deployment|service|role|rolebinding|...`.
//! Responses are always JSON (those clients accept it).
//!
//! The envelope is the magic `k8s\0` followed by a `runtime.Unknown` message holding the
//! TypeMeta and the object's bytes. Objects are decoded with a table of the messages those
//! clients send (field numbers from the Kubernetes API's protobuf tags). A field the table does
//! not know is an error, never silently dropped. Zero values of non-pointer Go fields are
//! omitted, as Go's JSON encoding omits them.

use serde_json::{Map, Value, json};

pub const CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";
const MAGIC: &[u8] = b"k8s\x00";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtoError {
    #[error("protobuf body does not start with the Kubernetes magic number")]
    NoMagic,
    #[error("truncated or malformed protobuf at byte {0}")]
    Malformed(usize),
    #[error("protobuf encoding of {0} is not supported by lab-apiserver; send JSON")]
    UnsupportedKind(String),
    #[error("protobuf field {field} of {message} is not supported by lab-apiserver; send JSON")]
    UnsupportedField { message: String, field: u64 },
    #[error("protobuf content encoding {0:?} is not supported")]
    Encoding(String),
}

#[derive(Debug, Clone, Copy)]
enum K {
    Str,
    Bytes,
    Int,
    Bool,
    Msg(&'static str),
    Time,
    IntOrString,
    Quantity,
    MapStr,
    MapBytes,
    MapQuantity,
    /// A list field holding `K`.
    List(&'static K),
    /// Read and ignored: status the server resets on create anyway.
    Skip,
}

/// One field: number, JSON name, kind, and whether the Go field is a pointer (its zero value
/// is meaningful and kept).
struct F(u64, &'static str, K, bool);

const STR: K = K::Str;
const MSGS: &[(&str, &[F])] = &[
    (
        "ObjectMeta",
        &[
            F(1, "name", K::Str, false),
            F(2, "generateName", K::Str, false),
            F(3, "namespace", K::Str, false),
            F(4, "selfLink", K::Str, false),
            F(5, "uid", K::Str, false),
            F(6, "resourceVersion", K::Str, false),
            F(7, "generation", K::Int, false),
            F(8, "creationTimestamp", K::Time, false),
            F(9, "deletionTimestamp", K::Time, false),
            F(10, "deletionGracePeriodSeconds", K::Int, true),
            F(11, "labels", K::MapStr, false),
            F(12, "annotations", K::MapStr, false),
            F(
                13,
                "ownerReferences",
                K::List(&K::Msg("OwnerReference")),
                false,
            ),
            F(14, "finalizers", K::List(&STR), false),
        ],
    ),
    (
        "OwnerReference",
        &[
            F(1, "kind", K::Str, false),
            F(3, "name", K::Str, false),
            F(4, "uid", K::Str, false),
            F(5, "apiVersion", K::Str, false),
            F(6, "controller", K::Bool, true),
            F(7, "blockOwnerDeletion", K::Bool, true),
        ],
    ),
    (
        "LabelSelector",
        &[
            F(1, "matchLabels", K::MapStr, false),
            F(
                2,
                "matchExpressions",
                K::List(&K::Msg("LabelSelectorRequirement")),
                false,
            ),
        ],
    ),
    (
        "LabelSelectorRequirement",
        &[
            F(1, "key", K::Str, false),
            F(2, "operator", K::Str, false),
            F(3, "values", K::List(&STR), false),
        ],
    ),
    (
        "DeleteOptions",
        &[
            F(1, "gracePeriodSeconds", K::Int, true),
            F(2, "preconditions", K::Msg("Preconditions"), false),
            F(3, "orphanDependents", K::Bool, true),
            F(4, "propagationPolicy", K::Str, true),
            F(5, "dryRun", K::List(&STR), false),
        ],
    ),
    (
        "Preconditions",
        &[
            F(1, "uid", K::Str, true),
            F(2, "resourceVersion", K::Str, true),
        ],
    ),
    (
        "Namespace",
        &[
            F(1, "metadata", K::Msg("ObjectMeta"), false),
            F(2, "spec", K::Msg("NamespaceSpec"), false),
            F(3, "status", K::Skip, false),
        ],
    ),
    ("NamespaceSpec", &[F(1, "finalizers", K::List(&STR), false)]),
    (
        "ConfigMap",
        &[
            F(1, "metadata", K::Msg("ObjectMeta"), false),
            F(2, "data", K::MapStr, false),
            F(3, "binaryData", K::MapBytes, false),
            F(4, "immutable", K::Bool, true),
        ],
    ),
    (
        "Secret",
        &[
            F(1, "metadata", K::Msg("ObjectMeta"), false),
            F(2, "data", K::MapBytes, false),
            F(3, "type", K::Str, false),
            F(4, "stringData", K::MapStr, false),
            F(5, "immutable", K::Bool, true),
        ],
    ),
    (
        "ServiceAccount",
        &[
            F(1, "metadata", K::Msg("ObjectMeta"), false),
            F(2, "secrets", K::List(&K::Msg("ObjectReference")), false),
            F(
                3,
                "imagePullSecrets",
                K::List(&K::Msg("LocalObjectReference")),
                false,
            ),
            F(4, "automountServiceAccountToken", K::Bool, true),
        ],
    ),
    (
        "ObjectReference",
        &[
            F(1, "kind", K::Str, false),
            F(2, "namespace", K::Str, false),
            F(3, "name", K::Str, false),
            F(4, "uid", K::Str, false),
            F(5, "apiVersion", K::Str, false),
            F(6, "resourceVersion", K::Str, false),
            F(7, "fieldPath", K::Str, false),
        ],
    ),
    ("LocalObjectReference", &[F(1, "name", K::Str, false)]),
    (
        "Service",
        &[
            F(1, "metadata", K::Msg("ObjectMeta"), false),
            F(2, "spec", K::Msg("ServiceSpec"), false),
            F(3, "status", K::Skip, false),
        ],
    ),
    (
        "ServiceSpec",
        &[
            F(1, "ports", K::List(&K::Msg("ServicePort")), false),
            F(2, "selector", K::MapStr, false),
            F(3, "clusterIP", K::Str, false),
            F(4, "type", K::Str, false),
            F(5, "externalIPs", K::List(&STR), false),
            F(7, "sessionAffinity", K::Str, false),
            F(8, "loadBalancerIP", K::Str, false),
            F(9, "loadBalancerSourceRanges", K::List(&STR), false),
            F(10, "externalName", K::Str, false),
            F(11, "externalTrafficPolicy", K::Str, false),
            F(12, "healthCheckNodePort", K::Int, false),
            F(13, "publishNotReadyAddresses", K::Bool, false),
            F(17, "ipFamilyPolicy", K::Str, true),
            F(18, "clusterIPs", K::List(&STR), false),
            F(19, "ipFamilies", K::List(&STR), false),
            F(20, "allocateLoadBalancerNodePorts", K::Bool, true),
            F(21, "loadBalancerClass", K::Str, true),
            F(22, "internalTrafficPolicy", K::Str, true),
            F(23, "trafficDistribution", K::Str, true),
        ],
    ),
    (
        "ServicePort",
        &[
            F(1, "name", K::Str, false),
            F(2, "protocol", K::Str, false),
            F(3, "port", K::Int, false),
            F(4, "targetPort", K::IntOrString, false),
            F(5, "nodePort", K::Int, false),
            F(6, "appProtocol", K::Str, true),
        ],
    ),
    (
        "Deployment",
        &[
            F(1, "metadata", K::Msg("ObjectMeta"), false),
            F(2, "spec", K::Msg("DeploymentSpec"), false),
            F(3, "status", K::Skip, false),
        ],
    ),
    (
        "DeploymentSpec",
        &[
            F(1, "replicas", K::Int, true),
            F(2, "selector", K::Msg("LabelSelector"), false),
            F(3, "template", K::Msg("PodTemplateSpec"), false),
            F(4, "strategy", K::Msg("DeploymentStrategy"), false),
            F(5, "minReadySeconds", K::Int, false),
            F(6, "revisionHistoryLimit", K::Int, true),
            F(7, "paused", K::Bool, false),
            F(9, "progressDeadlineSeconds", K::Int, true),
        ],
    ),
    (
        "DeploymentStrategy",
        &[
            F(1, "type", K::Str, false),
            F(2, "rollingUpdate", K::Msg("RollingUpdateDeployment"), false),
        ],
    ),
    (
        "RollingUpdateDeployment",
        &[
            F(1, "maxUnavailable", K::IntOrString, false),
            F(2, "maxSurge", K::IntOrString, false),
        ],
    ),
    (
        "PodTemplateSpec",
        &[
            F(1, "metadata", K::Msg("ObjectMeta"), false),
            F(2, "spec", K::Msg("PodSpec"), false),
        ],
    ),
    (
        "PodSpec",
        &[
            F(2, "containers", K::List(&K::Msg("Container")), false),
            F(3, "restartPolicy", K::Str, false),
            F(4, "terminationGracePeriodSeconds", K::Int, true),
            F(5, "activeDeadlineSeconds", K::Int, true),
            F(6, "dnsPolicy", K::Str, false),
            F(7, "nodeSelector", K::MapStr, false),
            F(8, "serviceAccountName", K::Str, false),
            F(9, "serviceAccount", K::Str, false),
            F(10, "nodeName", K::Str, false),
            F(11, "hostNetwork", K::Bool, false),
            F(12, "hostPID", K::Bool, false),
            F(13, "hostIPC", K::Bool, false),
            F(14, "securityContext", K::Msg("PodSecurityContext"), false),
            F(
                15,
                "imagePullSecrets",
                K::List(&K::Msg("LocalObjectReference")),
                false,
            ),
            F(16, "hostname", K::Str, false),
            F(17, "subdomain", K::Str, false),
            F(19, "schedulerName", K::Str, false),
            F(20, "initContainers", K::List(&K::Msg("Container")), false),
            F(21, "automountServiceAccountToken", K::Bool, true),
            F(22, "tolerations", K::List(&K::Msg("Toleration")), false),
            F(24, "priorityClassName", K::Str, false),
            F(25, "priority", K::Int, true),
            F(30, "enableServiceLinks", K::Bool, true),
            F(31, "preemptionPolicy", K::Str, true),
        ],
    ),
    (
        "PodSecurityContext",
        &[
            F(2, "runAsUser", K::Int, true),
            F(3, "runAsNonRoot", K::Bool, true),
            F(4, "supplementalGroups", K::List(&K::Int), false),
            F(5, "fsGroup", K::Int, true),
            F(6, "runAsGroup", K::Int, true),
        ],
    ),
    (
        "Toleration",
        &[
            F(1, "key", K::Str, false),
            F(2, "operator", K::Str, false),
            F(3, "value", K::Str, false),
            F(4, "effect", K::Str, false),
            F(5, "tolerationSeconds", K::Int, true),
        ],
    ),
    (
        "Container",
        &[
            F(1, "name", K::Str, false),
            F(2, "image", K::Str, false),
            F(3, "command", K::List(&STR), false),
            F(4, "args", K::List(&STR), false),
            F(5, "workingDir", K::Str, false),
            F(6, "ports", K::List(&K::Msg("ContainerPort")), false),
            F(7, "env", K::List(&K::Msg("EnvVar")), false),
            F(8, "resources", K::Msg("ResourceRequirements"), false),
            F(13, "terminationMessagePath", K::Str, false),
            F(14, "imagePullPolicy", K::Str, false),
            F(16, "stdin", K::Bool, false),
            F(17, "stdinOnce", K::Bool, false),
            F(18, "tty", K::Bool, false),
            F(20, "terminationMessagePolicy", K::Str, false),
        ],
    ),
    (
        "ContainerPort",
        &[
            F(1, "name", K::Str, false),
            F(2, "hostPort", K::Int, false),
            F(3, "containerPort", K::Int, false),
            F(4, "protocol", K::Str, false),
            F(5, "hostIP", K::Str, false),
        ],
    ),
    (
        "EnvVar",
        &[F(1, "name", K::Str, false), F(2, "value", K::Str, false)],
    ),
    (
        "ResourceRequirements",
        &[
            F(1, "limits", K::MapQuantity, false),
            F(2, "requests", K::MapQuantity, false),
        ],
    ),
    (
        "Role",
        &[
            F(1, "metadata", K::Msg("ObjectMeta"), false),
            F(2, "rules", K::List(&K::Msg("PolicyRule")), false),
        ],
    ),
    (
        "ClusterRole",
        &[
            F(1, "metadata", K::Msg("ObjectMeta"), false),
            F(2, "rules", K::List(&K::Msg("PolicyRule")), false),
            F(3, "aggregationRule", K::Msg("AggregationRule"), false),
        ],
    ),
    (
        "AggregationRule",
        &[F(
            1,
            "clusterRoleSelectors",
            K::List(&K::Msg("LabelSelector")),
            false,
        )],
    ),
    (
        "PolicyRule",
        &[
            F(1, "verbs", K::List(&STR), false),
            F(2, "apiGroups", K::List(&STR), false),
            F(3, "resources", K::List(&STR), false),
            F(4, "resourceNames", K::List(&STR), false),
            F(5, "nonResourceURLs", K::List(&STR), false),
        ],
    ),
    (
        "RoleBinding",
        &[
            F(1, "metadata", K::Msg("ObjectMeta"), false),
            F(2, "subjects", K::List(&K::Msg("Subject")), false),
            F(3, "roleRef", K::Msg("RoleRef"), false),
        ],
    ),
    (
        "ClusterRoleBinding",
        &[
            F(1, "metadata", K::Msg("ObjectMeta"), false),
            F(2, "subjects", K::List(&K::Msg("Subject")), false),
            F(3, "roleRef", K::Msg("RoleRef"), false),
        ],
    ),
    (
        "Subject",
        &[
            F(1, "kind", K::Str, false),
            F(2, "apiGroup", K::Str, false),
            F(3, "name", K::Str, false),
            F(4, "namespace", K::Str, false),
        ],
    ),
    (
        "RoleRef",
        &[
            F(1, "apiGroup", K::Str, false),
            F(2, "kind", K::Str, false),
            F(3, "name", K::Str, false),
        ],
    ),
];

/// Kinds accepted at the top level.
const ROOT_KINDS: &[&str] = &[
    "Namespace",
    "ConfigMap",
    "Secret",
    "ServiceAccount",
    "Service",
    "Deployment",
    "Role",
    "ClusterRole",
    "RoleBinding",
    "ClusterRoleBinding",
    "DeleteOptions",
];

fn message(name: &str) -> Option<&'static [F]> {
    MSGS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    base: usize,
}

enum Wire<'a> {
    Varint(u64),
    Fixed64,
    Bytes(&'a [u8], usize),
    Fixed32,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8], base: usize) -> Self {
        Reader { buf, pos: 0, base }
    }

    fn varint(&mut self) -> Result<u64, ProtoError> {
        let mut v = 0u64;
        for i in 0..10 {
            let b = *self
                .buf
                .get(self.pos)
                .ok_or(ProtoError::Malformed(self.base + self.pos))?;
            self.pos += 1;
            v |= ((b & 0x7f) as u64) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(ProtoError::Malformed(self.base + self.pos))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ProtoError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.buf.len())
            .ok_or(ProtoError::Malformed(self.base + self.pos))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn field(&mut self) -> Result<Option<(u64, Wire<'a>)>, ProtoError> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let (num, wt) = (key >> 3, key & 7);
        if num == 0 {
            return Err(ProtoError::Malformed(self.base + self.pos));
        }
        let w = match wt {
            0 => Wire::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Wire::Fixed64
            }
            2 => {
                let len = self.varint()? as usize;
                let at = self.base + self.pos;
                Wire::Bytes(self.take(len)?, at)
            }
            5 => {
                self.take(4)?;
                Wire::Fixed32
            }
            _ => return Err(ProtoError::Malformed(self.base + self.pos)),
        };
        Ok(Some((num, w)))
    }
}

fn bytes_of(w: Wire<'_>, at: usize) -> Result<(&[u8], usize), ProtoError> {
    match w {
        Wire::Bytes(b, pos) => Ok((b, pos)),
        _ => Err(ProtoError::Malformed(at)),
    }
}

fn utf8(b: &[u8], at: usize) -> Result<String, ProtoError> {
    String::from_utf8(b.to_vec()).map_err(|_| ProtoError::Malformed(at))
}

fn time_of(b: &[u8], at: usize) -> Result<Option<Value>, ProtoError> {
    let mut r = Reader::new(b, at);
    let (mut secs, mut nanos) = (0i64, 0i64);
    while let Some((n, w)) = r.field()? {
        match (n, w) {
            (1, Wire::Varint(v)) => secs = v as i64,
            (2, Wire::Varint(v)) => nanos = v as i32 as i64,
            _ => return Err(ProtoError::Malformed(at)),
        }
    }
    if secs == 0 && nanos == 0 {
        return Ok(None);
    }
    Ok(Some(json!(super::time::format_time(
        secs * 1_000_000 + nanos / 1000
    ))))
}

fn int_or_string(b: &[u8], at: usize) -> Result<Value, ProtoError> {
    let mut r = Reader::new(b, at);
    let (mut ty, mut int, mut s) = (0u64, 0i64, String::new());
    while let Some((n, w)) = r.field()? {
        match (n, w) {
            (1, Wire::Varint(v)) => ty = v,
            (2, Wire::Varint(v)) => int = v as i32 as i64,
            (3, Wire::Bytes(b, pos)) => s = utf8(b, pos)?,
            _ => return Err(ProtoError::Malformed(at)),
        }
    }
    Ok(if ty == 1 { json!(s) } else { json!(int) })
}

fn quantity(b: &[u8], at: usize) -> Result<Value, ProtoError> {
    let mut r = Reader::new(b, at);
    let mut s = String::new();
    while let Some((n, w)) = r.field()? {
        match (n, w) {
            (1, Wire::Bytes(b, pos)) => s = utf8(b, pos)?,
            _ => return Err(ProtoError::Malformed(at)),
        }
    }
    Ok(json!(s))
}

fn map_entry(b: &[u8], at: usize, value: K) -> Result<(String, Value), ProtoError> {
    let mut r = Reader::new(b, at);
    let (mut k, mut v) = (String::new(), json!(""));
    while let Some((n, w)) = r.field()? {
        match n {
            1 => {
                let (b, pos) = bytes_of(w, at)?;
                k = utf8(b, pos)?;
            }
            2 => {
                let (b, pos) = bytes_of(w, at)?;
                v = match value {
                    K::Bytes => json!(super::base64::encode(b)),
                    K::Quantity => quantity(b, pos)?,
                    _ => json!(utf8(b, pos)?),
                };
            }
            _ => return Err(ProtoError::Malformed(at)),
        }
    }
    Ok((k, v))
}

fn scalar(kind: K, w: Wire<'_>, at: usize) -> Result<Option<Value>, ProtoError> {
    Ok(Some(match (kind, w) {
        (K::Str, Wire::Bytes(b, pos)) => json!(utf8(b, pos)?),
        (K::Bytes, Wire::Bytes(b, _)) => json!(super::base64::encode(b)),
        (K::Int, Wire::Varint(v)) => json!(v as i64),
        (K::Bool, Wire::Varint(v)) => json!(v != 0),
        (K::Msg(name), Wire::Bytes(b, pos)) => Value::Object(decode_message(name, b, pos)?),
        (K::Time, Wire::Bytes(b, pos)) => return time_of(b, pos),
        (K::IntOrString, Wire::Bytes(b, pos)) => int_or_string(b, pos)?,
        (K::Quantity, Wire::Bytes(b, pos)) => quantity(b, pos)?,
        _ => return Err(ProtoError::Malformed(at)),
    }))
}

fn is_zero(v: &Value) -> bool {
    match v {
        Value::String(s) => s.is_empty(),
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::Bool(b) => !b,
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => m.is_empty(),
        Value::Null => true,
    }
}

fn decode_message(name: &str, buf: &[u8], base: usize) -> Result<Map<String, Value>, ProtoError> {
    let fields = message(name).ok_or_else(|| ProtoError::UnsupportedKind(name.into()))?;
    let mut out = Map::new();
    let mut r = Reader::new(buf, base);
    while let Some((num, w)) = r.field()? {
        let at = base + r.pos;
        let F(_, json_name, kind, _) =
            fields
                .iter()
                .find(|f| f.0 == num)
                .ok_or_else(|| ProtoError::UnsupportedField {
                    message: name.into(),
                    field: num,
                })?;
        match kind {
            K::Skip => {}
            K::MapStr | K::MapBytes | K::MapQuantity => {
                let (b, pos) = bytes_of(w, at)?;
                let value = match kind {
                    K::MapBytes => K::Bytes,
                    K::MapQuantity => K::Quantity,
                    _ => K::Str,
                };
                let (k, v) = map_entry(b, pos, value)?;
                let m = out
                    .entry(json_name.to_string())
                    .or_insert_with(|| json!({}));
                m[k] = v;
            }
            K::List(item) => {
                let list = out
                    .entry(json_name.to_string())
                    .or_insert_with(|| json!([]));
                let Value::Array(items) = list else {
                    return Err(ProtoError::Malformed(at));
                };
                match (item, w) {
                    // Packed repeated varints.
                    (K::Int | K::Bool, Wire::Bytes(b, pos)) => {
                        let mut pr = Reader::new(b, pos);
                        while pr.pos < b.len() {
                            let v = pr.varint()?;
                            items.push(if matches!(item, K::Bool) {
                                json!(v != 0)
                            } else {
                                json!(v as i64)
                            });
                        }
                    }
                    (_, w) => {
                        if let Some(v) = scalar(**item, w, at)? {
                            items.push(v);
                        }
                    }
                }
            }
            _ => {
                if let Some(v) = scalar(*kind, w, at)? {
                    out.insert(json_name.to_string(), v);
                }
            }
        }
    }
    // Non-pointer zero values are omitted, as Go's JSON encoding does with `omitempty`.
    out.retain(|k, v| fields.iter().find(|f| f.1 == k).is_some_and(|f| f.3) || !is_zero(v));
    Ok(out)
}

/// Decodes a protobuf request body into the object's JSON form.
pub fn decode(body: &[u8]) -> Result<Value, ProtoError> {
    let rest = body.strip_prefix(MAGIC).ok_or(ProtoError::NoMagic)?;
    let mut r = Reader::new(rest, MAGIC.len());
    let (mut api_version, mut kind, mut raw, mut raw_at) =
        (String::new(), String::new(), &[][..], 0);
    while let Some((num, w)) = r.field()? {
        let at = MAGIC.len() + r.pos;
        match num {
            1 => {
                let (b, pos) = bytes_of(w, at)?;
                let mut tr = Reader::new(b, pos);
                while let Some((n, w)) = tr.field()? {
                    let (s, p) = bytes_of(w, pos)?;
                    match n {
                        1 => api_version = utf8(s, p)?,
                        2 => kind = utf8(s, p)?,
                        _ => return Err(ProtoError::Malformed(p)),
                    }
                }
            }
            2 => (raw, raw_at) = bytes_of(w, at)?,
            3 => {
                let (b, pos) = bytes_of(w, at)?;
                let enc = utf8(b, pos)?;
                if !enc.is_empty() {
                    return Err(ProtoError::Encoding(enc));
                }
            }
            4 => {}
            _ => return Err(ProtoError::Malformed(at)),
        }
    }
    if !ROOT_KINDS.contains(&kind.as_str()) {
        return Err(ProtoError::UnsupportedKind(if kind.is_empty() {
            "an object without a kind".into()
        } else {
            kind
        }));
    }
    let mut obj = decode_message(&kind, raw, raw_at)?;
    obj.insert("apiVersion".into(), json!(api_version));
    obj.insert("kind".into(), json!(kind));
    Ok(Value::Object(obj))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }

    fn bytes_field(num: u64, b: &[u8], out: &mut Vec<u8>) {
        varint(num << 3 | 2, out);
        varint(b.len() as u64, out);
        out.extend_from_slice(b);
    }

    fn varint_field(num: u64, v: u64, out: &mut Vec<u8>) {
        varint(num << 3, out);
        varint(v, out);
    }

    fn entry(k: &str, v: &[u8]) -> Vec<u8> {
        let mut e = vec![];
        bytes_field(1, k.as_bytes(), &mut e);
        bytes_field(2, v, &mut e);
        e
    }

    fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
        let mut tm = vec![];
        bytes_field(1, api_version.as_bytes(), &mut tm);
        bytes_field(2, kind.as_bytes(), &mut tm);
        let mut u = vec![];
        bytes_field(1, &tm, &mut u);
        bytes_field(2, raw, &mut u);
        bytes_field(3, b"", &mut u);
        bytes_field(4, b"", &mut u);
        let mut out = MAGIC.to_vec();
        out.extend(u);
        out
    }

    /// A Secret as Helm's storage driver sends it.
    fn helm_secret() -> Vec<u8> {
        let mut meta = vec![];
        bytes_field(1, b"sh.helm.release.v1.demo.v1", &mut meta);
        bytes_field(2, b"", &mut meta);
        bytes_field(3, b"demo-ns", &mut meta);
        varint_field(7, 0, &mut meta);
        bytes_field(8, b"", &mut meta);
        bytes_field(11, &entry("owner", b"helm"), &mut meta);
        bytes_field(11, &entry("status", b"pending-install"), &mut meta);
        let mut secret = vec![];
        bytes_field(1, &meta, &mut secret);
        bytes_field(2, &entry("release", b"\x00\xffbinary"), &mut secret);
        bytes_field(3, b"helm.sh/release.v1", &mut secret);
        envelope("v1", "Secret", &secret)
    }

    #[test]
    fn decodes_a_helm_release_secret() {
        let v = decode(&helm_secret()).unwrap();
        assert_eq!(v["apiVersion"], "v1");
        assert_eq!(v["kind"], "Secret");
        assert_eq!(v["type"], "helm.sh/release.v1");
        assert_eq!(v["metadata"]["name"], "sh.helm.release.v1.demo.v1");
        assert_eq!(
            v["metadata"]["labels"],
            json!({"owner": "helm", "status": "pending-install"})
        );
        assert_eq!(
            v["data"]["release"],
            json!(super::super::base64::encode(b"\x00\xffbinary"))
        );
        // Zero values of plain fields are omitted, as in Go's JSON.
        let meta = v["metadata"].as_object().unwrap();
        assert!(
            !meta.contains_key("generateName")
                && !meta.contains_key("generation")
                && !meta.contains_key("creationTimestamp")
        );
    }

    #[test]
    fn decodes_a_deployment_keeping_pointer_zeros() {
        let mut c = vec![];
        bytes_field(1, b"web", &mut c);
        bytes_field(2, b"nginx", &mut c);
        bytes_field(8, b"", &mut c);
        let mut ps = vec![];
        bytes_field(2, &c, &mut ps);
        let mut tmeta = vec![];
        bytes_field(11, &entry("app", b"web"), &mut tmeta);
        let mut tpl = vec![];
        bytes_field(1, &tmeta, &mut tpl);
        bytes_field(2, &ps, &mut tpl);
        let mut sel = vec![];
        bytes_field(1, &entry("app", b"web"), &mut sel);
        let mut spec = vec![];
        varint_field(1, 0, &mut spec);
        bytes_field(2, &sel, &mut spec);
        bytes_field(3, &tpl, &mut spec);
        let mut ios = vec![];
        varint_field(1, 1, &mut ios);
        bytes_field(3, b"25%", &mut ios);
        let mut ru = vec![];
        bytes_field(1, &ios, &mut ru);
        let mut strat = vec![];
        bytes_field(2, &ru, &mut strat);
        bytes_field(4, &strat, &mut spec);
        let mut meta = vec![];
        bytes_field(1, b"web", &mut meta);
        let mut d = vec![];
        bytes_field(1, &meta, &mut d);
        bytes_field(2, &spec, &mut d);
        bytes_field(3, b"", &mut d);
        let v = decode(&envelope("apps/v1", "Deployment", &d)).unwrap();
        assert_eq!(
            v["spec"]["replicas"], 0,
            "a pointer field's zero is meaningful"
        );
        assert_eq!(v["spec"]["selector"]["matchLabels"]["app"], "web");
        assert_eq!(
            v["spec"]["template"]["spec"]["containers"][0],
            json!({"name": "web", "image": "nginx"})
        );
        assert_eq!(
            v["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"],
            "25%"
        );
        assert!(v.get("status").is_none());
    }

    #[test]
    fn delete_options() {
        let mut pre = vec![];
        bytes_field(1, b"uid-1", &mut pre);
        let mut d = vec![];
        varint_field(1, 0, &mut d);
        bytes_field(2, &pre, &mut d);
        bytes_field(4, b"Background", &mut d);
        let v = decode(&envelope("v1", "DeleteOptions", &d)).unwrap();
        assert_eq!(v["gracePeriodSeconds"], 0);
        assert_eq!(v["preconditions"]["uid"], "uid-1");
        assert_eq!(v["propagationPolicy"], "Background");
    }

    #[test]
    fn malformed_and_unsupported_bodies_are_errors() {
        assert_eq!(decode(b"{}"), Err(ProtoError::NoMagic));
        let good = helm_secret();
        for cut in [5, 10, good.len() - 3] {
            assert!(
                matches!(decode(&good[..cut]), Err(ProtoError::Malformed(_))),
                "cut at {cut}"
            );
        }
        assert!(matches!(
            decode(&envelope("v1", "Pod", b"")),
            Err(ProtoError::UnsupportedKind(_))
        ));
        let mut odd = vec![];
        bytes_field(99, b"x", &mut odd);
        assert_eq!(
            decode(&envelope("v1", "ConfigMap", &odd)),
            Err(ProtoError::UnsupportedField {
                message: "ConfigMap".into(),
                field: 99
            })
        );
        let mut wrong_wire = vec![];
        varint_field(1, 5, &mut wrong_wire);
        assert!(matches!(
            decode(&envelope("v1", "ConfigMap", &wrong_wire)),
            Err(ProtoError::Malformed(_))
        ));
        let mut huge_len = MAGIC.to_vec();
        huge_len.extend([0x12, 0xff, 0xff, 0xff, 0xff, 0x0f]);
        assert!(matches!(decode(&huge_len), Err(ProtoError::Malformed(_))));
    }
}
