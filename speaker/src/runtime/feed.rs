//! Feeds watch events to the [`State`] in order, and turns relists into deletes.
//!
//! A watcher (re)starts with `Init`, the listed objects (`InitApply`) and `InitDone`. Objects
//! the state knows that were not listed were deleted while the watch was down (an API server
//! restart, a 410 Gone): they are deleted from the state at `InitDone`. The state is told it
//! is synced once every kind has been listed once; before that it decides nothing, so a
//! partial picture never moves an IP.

use std::collections::HashSet;
use std::hash::Hash;

use ironlb_crds::{IPAddressPool, L2Advertisement, ServiceL2Status};
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::watcher::Event;

use crate::state::{ServiceKey, SliceKey, State, views};

/// One watch event of one of the kinds the speaker watches.
// Each value is moved once from a watch stream into the state; boxing would only add an
// allocation per event.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Input {
    Service(Event<Service>),
    Slice(Event<EndpointSlice>),
    Node(Event<Node>),
    Pool(Event<IPAddressPool>),
    Advertisement(Event<L2Advertisement>),
    Status(Event<ServiceL2Status>),
}

/// How the state stores one kind.
trait Kind {
    type Object;
    type Key: Hash + Eq + Clone;
    fn key(object: &Self::Object) -> Self::Key;
    fn apply(state: &mut State, object: &Self::Object);
    fn delete(state: &mut State, key: &Self::Key);
    fn known(state: &State) -> Vec<Self::Key>;
}

fn name_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> String {
    meta.name.clone().unwrap_or_default()
}

struct Services;
impl Kind for Services {
    type Object = Service;
    type Key = ServiceKey;
    fn key(o: &Service) -> ServiceKey {
        views::service_key(o)
    }
    fn apply(s: &mut State, o: &Service) {
        s.apply_service(o)
    }
    fn delete(s: &mut State, k: &ServiceKey) {
        s.delete_service(k)
    }
    fn known(s: &State) -> Vec<ServiceKey> {
        s.service_keys().cloned().collect()
    }
}

struct Slices;
impl Kind for Slices {
    type Object = EndpointSlice;
    type Key = SliceKey;
    fn key(o: &EndpointSlice) -> SliceKey {
        views::slice_key(o)
    }
    fn apply(s: &mut State, o: &EndpointSlice) {
        s.apply_slice(o)
    }
    fn delete(s: &mut State, k: &SliceKey) {
        s.delete_slice(k)
    }
    fn known(s: &State) -> Vec<SliceKey> {
        s.slice_keys().cloned().collect()
    }
}

struct Nodes;
impl Kind for Nodes {
    type Object = Node;
    type Key = String;
    fn key(o: &Node) -> String {
        name_of(&o.metadata)
    }
    fn apply(s: &mut State, o: &Node) {
        s.apply_node(o)
    }
    fn delete(s: &mut State, k: &String) {
        s.delete_node(k)
    }
    fn known(s: &State) -> Vec<String> {
        s.node_names().map(str::to_string).collect()
    }
}

struct Pools;
impl Kind for Pools {
    type Object = IPAddressPool;
    type Key = String;
    fn key(o: &IPAddressPool) -> String {
        name_of(&o.metadata)
    }
    fn apply(s: &mut State, o: &IPAddressPool) {
        s.apply_pool(o)
    }
    fn delete(s: &mut State, k: &String) {
        s.delete_pool(k)
    }
    fn known(s: &State) -> Vec<String> {
        s.pool_names().map(str::to_string).collect()
    }
}

struct Advertisements;
impl Kind for Advertisements {
    type Object = L2Advertisement;
    type Key = String;
    fn key(o: &L2Advertisement) -> String {
        name_of(&o.metadata)
    }
    fn apply(s: &mut State, o: &L2Advertisement) {
        s.apply_advertisement(o)
    }
    fn delete(s: &mut State, k: &String) {
        s.delete_advertisement(k)
    }
    fn known(s: &State) -> Vec<String> {
        s.advertisement_names().map(str::to_string).collect()
    }
}

struct Statuses;
impl Kind for Statuses {
    type Object = ServiceL2Status;
    type Key = String;
    fn key(o: &ServiceL2Status) -> String {
        name_of(&o.metadata)
    }
    fn apply(s: &mut State, o: &ServiceL2Status) {
        s.apply_status(o)
    }
    fn delete(s: &mut State, k: &String) {
        s.delete_status(k)
    }
    fn known(s: &State) -> Vec<String> {
        s.status_names().map(str::to_string).collect()
    }
}

/// The state of one watcher's (re)list.
#[derive(Debug)]
struct Listing<K> {
    /// Keys listed since the last `Init`, while a list is in progress.
    seen: Option<HashSet<K>>,
    /// True once a list has completed.
    done_once: bool,
}

impl<K> Default for Listing<K> {
    fn default() -> Self {
        Listing {
            seen: None,
            done_once: false,
        }
    }
}

impl<K: Hash + Eq + Clone> Listing<K> {
    fn feed<T: Kind<Key = K>>(&mut self, state: &mut State, event: Event<T::Object>) {
        match event {
            Event::Init => self.seen = Some(HashSet::new()),
            Event::InitApply(object) => {
                if let Some(seen) = &mut self.seen {
                    seen.insert(T::key(&object));
                }
                T::apply(state, &object);
            }
            Event::Apply(object) => T::apply(state, &object),
            Event::Delete(object) => T::delete(state, &T::key(&object)),
            Event::InitDone => {
                self.done_once = true;
                if let Some(listed) = self.seen.take() {
                    for key in T::known(state) {
                        if !listed.contains(&key) {
                            T::delete(state, &key);
                        }
                    }
                }
            }
        }
    }
}

/// See the module docs.
#[derive(Debug, Default)]
pub struct Feeder {
    services: Listing<ServiceKey>,
    slices: Listing<SliceKey>,
    nodes: Listing<String>,
    pools: Listing<String>,
    advertisements: Listing<String>,
    statuses: Listing<String>,
}

impl Feeder {
    /// Applies one event to the state.
    pub fn feed(&mut self, state: &mut State, input: Input) {
        match input {
            Input::Service(e) => self.services.feed::<Services>(state, e),
            Input::Slice(e) => self.slices.feed::<Slices>(state, e),
            Input::Node(e) => self.nodes.feed::<Nodes>(state, e),
            Input::Pool(e) => self.pools.feed::<Pools>(state, e),
            Input::Advertisement(e) => self.advertisements.feed::<Advertisements>(state, e),
            Input::Status(e) => self.statuses.feed::<Statuses>(state, e),
        }
        if !state.is_synced() && self.all_listed() {
            state.set_synced();
        }
    }

    fn all_listed(&self) -> bool {
        self.services.done_once
            && self.slices.done_once
            && self.nodes.done_once
            && self.pools.done_once
            && self.advertisements.done_once
            && self.statuses.done_once
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::StateConfig;
    use ironlb_crds::annotations::IpMode;
    use ironlb_crds::class::ClassFilter;
    use serde_json::json;

    fn state() -> State {
        State::new(StateConfig {
            node: "node1".into(),
            class: ClassFilter::default(),
            default_ip_mode: IpMode::Proxy,
        })
    }

    fn svc(name: &str) -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"type": "LoadBalancer", "ports": [{"port": 80, "nodePort": 30080}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.1"}]}}
        }))
        .unwrap()
    }

    fn node(name: &str) -> Node {
        serde_json::from_value(json!({"metadata": {"name": name}})).unwrap()
    }

    fn list_empty(feeder: &mut Feeder, state: &mut State, skip: &str) {
        type Listed = (&'static str, fn() -> Input, fn() -> Input);
        let kinds: Vec<Listed> = vec![
            (
                "services",
                || Input::Service(Event::Init),
                || Input::Service(Event::InitDone),
            ),
            (
                "slices",
                || Input::Slice(Event::Init),
                || Input::Slice(Event::InitDone),
            ),
            (
                "nodes",
                || Input::Node(Event::Init),
                || Input::Node(Event::InitDone),
            ),
            (
                "pools",
                || Input::Pool(Event::Init),
                || Input::Pool(Event::InitDone),
            ),
            (
                "advertisements",
                || Input::Advertisement(Event::Init),
                || Input::Advertisement(Event::InitDone),
            ),
            (
                "statuses",
                || Input::Status(Event::Init),
                || Input::Status(Event::InitDone),
            ),
        ];
        for (name, init, done) in kinds {
            if name != skip {
                feeder.feed(state, init());
                feeder.feed(state, done());
            }
        }
    }

    #[test]
    fn synced_only_once_every_kind_is_listed() {
        for last in [
            "services",
            "slices",
            "nodes",
            "pools",
            "advertisements",
            "statuses",
        ] {
            let mut feeder = Feeder::default();
            let mut s = state();
            list_empty(&mut feeder, &mut s, last);
            assert!(!s.is_synced(), "{last} not listed yet");
        }
        let mut feeder = Feeder::default();
        let mut s = state();
        list_empty(&mut feeder, &mut s, "none");
        assert!(s.is_synced());
    }

    #[test]
    fn a_relist_deletes_what_was_not_listed() {
        let mut feeder = Feeder::default();
        let mut s = state();
        feeder.feed(&mut s, Input::Service(Event::Init));
        feeder.feed(&mut s, Input::Service(Event::InitApply(svc("a"))));
        feeder.feed(&mut s, Input::Service(Event::InitApply(svc("b"))));
        feeder.feed(&mut s, Input::Service(Event::InitDone));
        feeder.feed(&mut s, Input::Node(Event::Init));
        feeder.feed(&mut s, Input::Node(Event::InitApply(node("n1"))));
        feeder.feed(&mut s, Input::Node(Event::InitApply(node("n2"))));
        feeder.feed(&mut s, Input::Node(Event::InitDone));
        assert_eq!(s.service_keys().count(), 2);

        // The watch broke; "a" and "n2" were deleted in the gap.
        feeder.feed(&mut s, Input::Service(Event::Init));
        feeder.feed(&mut s, Input::Service(Event::InitApply(svc("b"))));
        assert_eq!(
            s.service_keys().count(),
            2,
            "nothing is deleted before InitDone"
        );
        feeder.feed(&mut s, Input::Service(Event::InitDone));
        let keys: Vec<String> = s.service_keys().map(|k| k.name.clone()).collect();
        assert_eq!(keys, ["b"]);
        feeder.feed(&mut s, Input::Node(Event::Init));
        feeder.feed(&mut s, Input::Node(Event::InitApply(node("n1"))));
        feeder.feed(&mut s, Input::Node(Event::InitDone));
        assert_eq!(s.node_names().collect::<Vec<_>>(), ["n1"]);
    }

    #[test]
    fn plain_events_are_passed_on() {
        let mut feeder = Feeder::default();
        let mut s = state();
        feeder.feed(&mut s, Input::Service(Event::Apply(svc("x"))));
        assert_eq!(s.service_keys().count(), 1);
        feeder.feed(&mut s, Input::Service(Event::Delete(svc("x"))));
        assert_eq!(s.service_keys().count(), 0);
        // A stray InitDone without Init deletes nothing.
        feeder.feed(&mut s, Input::Node(Event::Apply(node("n1"))));
        feeder.feed(&mut s, Input::Node(Event::InitDone));
        assert_eq!(s.node_names().count(), 1);
    }
}
