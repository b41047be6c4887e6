//! Property tests over everything that parses client input: whatever a client sends, the
//! answer is a value or a typed error, never a panic. Where an invariant exists it is checked
//! too (merge patches are idempotent, set algebra, base64 round trips).

use proptest::prelude::*;
use serde_json::{Map, Value, json};

use super::fieldmanager::{self, Scope, Writer, set};
use super::jsonpath::JsonPath;
use super::patch::{PatchType, apply_patch, strategic};
use super::schema::{Schema, builtin, validate};
use super::selector::{FieldSelector, LabelSelector};

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        (-1e6f64..1e6).prop_map(|f| json!(f)),
        "[a-zA-Z0-9$/:._ -]{0,12}".prop_map(Value::String),
        prop_oneof![
            Just("delete"),
            Just("replace"),
            Just("merge"),
            Just("ports"),
            Just("name"),
            Just("port"),
            Just("TCP")
        ]
        .prop_map(|s| json!(s)),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        let key = prop_oneof![
            "[a-z]{1,6}".prop_map(String::from),
            Just("$patch".to_string()),
            Just("$retainKeys".to_string()),
            Just("$setElementOrder/ports".to_string()),
            Just("$deleteFromPrimitiveList/finalizers".to_string()),
            Just("spec".to_string()),
            Just("ports".to_string()),
            Just("metadata".to_string()),
            Just("port".to_string()),
            Just("protocol".to_string()),
            Just("finalizers".to_string()),
            Just("status".to_string()),
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(key, inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn service_schema() -> std::sync::Arc<Schema> {
    builtin::schema_for("", "v1", "Service").unwrap()
}

proptest! {
    #[test]
    fn strategic_merge_never_panics(orig in arb_json(), patch in arb_json()) {
        let s = service_schema();
        let _ = strategic::apply(&orig, &patch, Some(&s));
        let _ = strategic::apply(&orig, &patch, None);
    }

    #[test]
    fn merge_patch_is_idempotent(orig in arb_json(), patch in arb_json()) {
        let body = serde_json::to_vec(&patch).unwrap();
        if let Ok(once) = apply_patch(PatchType::Merge, &orig, &body, None) {
            let twice = apply_patch(PatchType::Merge, &once, &body, None).unwrap();
            prop_assert_eq!(once, twice);
        }
    }

    #[test]
    fn json_patch_never_panics(orig in arb_json(), body in prop::collection::vec(any::<u8>(), 0..64), ops in arb_json()) {
        let _ = apply_patch(PatchType::Json, &orig, &body, None);
        let _ = apply_patch(PatchType::Json, &orig, &serde_json::to_vec(&ops).unwrap(), None);
    }

    #[test]
    fn server_side_apply_never_panics(live in arb_json(), config in arb_json(), force in any::<bool>()) {
        let s = service_schema();
        let w = Writer { manager: "fuzz", api_version: "v1", scope: Scope::MainWithStatus, now: "t" };
        let mut config = config;
        if let Some(m) = config.as_object_mut() {
            m.insert("metadata".into(), json!({"name": "x"}));
        }
        let _ = fieldmanager::apply::apply(Some(&live), &config, Some(&s), force, &w);
        let _ = fieldmanager::apply::apply(None, &config, None, force, &w);
        let mut new = config.clone();
        let _ = fieldmanager::track_update(Some(&live), &mut new, Some(&s), &w);
    }

    #[test]
    fn field_sets_obey_their_algebra(a in arb_json(), b in arb_json()) {
        let s = service_schema();
        if let (Ok(x), Ok(y)) = (set::set_of(&a, Some(&s)), set::set_of(&b, Some(&s))) {
            let d = x.difference(&y);
            prop_assert!(d.intersection(&y).is_empty());
            let mut u = d.clone();
            u.union(&x.intersection(&y));
            prop_assert_eq!(u.members().len(), x.members().len());
            let round = set::FieldSet::from_fields_v1(&x.to_fields_v1());
            prop_assert!(round.is_ok());
        }
    }

    #[test]
    fn schema_walks_never_panic(obj in arb_json()) {
        let s = service_schema();
        let mut o = obj.clone();
        let mut report = validate::PruneReport::default();
        validate::prune(&mut o, &s, &mut report);
        validate::apply_defaults(&mut o, &s);
        let _ = validate::validate(&obj, &s, "");
        let _ = Schema::from_openapi(&obj);
    }

    #[test]
    fn selectors_and_paths_never_panic(text in "\\PC{0,40}") {
        let _ = LabelSelector::parse(&text);
        let _ = FieldSelector::parse(&text);
        let _ = JsonPath::parse(&text);
        let _ = super::time::parse_rfc3339(&text);
        let _ = super::request::Query::parse(Some(&text));
        let _ = super::request::parse_path(&text);
        let _ = super::request::negotiate(Some(&text));
        let _ = super::jsonpath::JsonPath::parse(&format!(".a[?(@.b=={text})]"));
    }

    #[test]
    fn rfc3339_near_misses_never_panic(prefix in "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}", tail in "\\PC{0,8}") {
        let _ = super::time::parse_rfc3339(&format!("{prefix}{tail}"));
    }

    #[test]
    fn protobuf_bodies_never_panic(body in prop::collection::vec(any::<u8>(), 0..256)) {
        let mut with_magic = b"k8s\x00".to_vec();
        with_magic.extend_from_slice(&body);
        let _ = super::protobuf::decode(&body);
        let _ = super::protobuf::decode(&with_magic);
    }

    #[test]
    fn base64_round_trips(data in prop::collection::vec(any::<u8>(), 0..64)) {
        prop_assert_eq!(super::base64::decode_url(&super::base64::encode_url(&data)).unwrap(), data);
    }
}

fn arb_method() -> impl Strategy<Value = (http::Method, &'static str)> {
    prop_oneof![
        Just((http::Method::POST, "application/json")),
        Just((http::Method::PUT, "application/json")),
        Just((http::Method::PATCH, "application/merge-patch+json")),
        Just((http::Method::PATCH, "application/json-patch+json")),
        Just((
            http::Method::PATCH,
            "application/strategic-merge-patch+json"
        )),
        Just((http::Method::PATCH, "application/apply-patch+yaml")),
        Just((http::Method::DELETE, "application/json")),
    ]
}

fn arb_path() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        Just("/api/v1/namespaces/default/services"),
        Just("/api/v1/namespaces/default/services/web"),
        Just("/api/v1/namespaces/default/services/web/status?fieldManager=f"),
        Just("/api/v1/namespaces/default/services/web?fieldManager=f&force=true"),
        Just("/api/v1/namespaces/default/pods/p?fieldManager=f"),
        Just("/api/v1/namespaces/default/pods"),
        Just("/apis/events.k8s.io/v1/namespaces/default/events"),
        Just("/apis/apiextensions.k8s.io/v1/customresourcedefinitions"),
        Just("/api/v1/namespaces"),
        Just("/apis/apps/v1/namespaces/default/deployments/d/scale"),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Random requests against a live in-process server: every answer is a Status or an object,
    /// and the only 5xx is server-side apply's documented "failed to create typed patch object".
    #[test]
    fn random_requests_get_statuses_not_panics(reqs in prop::collection::vec((arb_method(), arb_path(), arb_json()), 1..6)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            let s = super::state::ApiServer::in_memory(super::state::ServerOptions { service_cidrs: "203.0.113.0/25".into(), ..Default::default() }).unwrap();
            let seed = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}]}});
            let req = http::Request::builder().method(http::Method::POST).uri("/api/v1/namespaces/default/services").header("content-type", "application/json").body(bytes::Bytes::from(seed.to_string())).unwrap();
            super::http::handle(s.clone(), req, super::http::Client { ip: None }).await;
            for ((method, ct), path, body) in reqs {
                let req = http::Request::builder().method(method).uri(path).header("content-type", ct).body(bytes::Bytes::from(body.to_string())).unwrap();
                let resp = super::http::handle(s.clone(), req, super::http::Client { ip: None }).await;
                let code = resp.status().as_u16();
                let bytes = http_body_util::BodyExt::collect(resp.into_body()).await.unwrap().to_bytes();
                let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                assert!(code < 500 || v["message"].as_str().is_some_and(|m| m.contains("failed to create typed patch object")), "{code}: {v}");
            }
        });
    }
}
