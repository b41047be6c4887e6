//! Feeds watch events to the brain in order, and turns relists into deletes.
//!
//! A watcher (re)starts with `Init`, the listed objects (`InitApply`) and `InitDone`. Objects
//! the brain knows that were not listed were deleted while the watch was down (an API server
//! restart, a 410 Gone): they are deleted from the brain at `InitDone`, which releases their
//! addresses. The brain is told it is `synced` once all three kinds have been listed once.

use std::collections::HashSet;

use ironlb_crds::IPAddressPool;
use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::ResourceExt;
use kube::runtime::watcher::Event;

use crate::allocator::ServiceKey;
use crate::brain::{Brain, Output};

/// One watch event of one of the kinds the controller watches.
// Each value is moved once from a watch stream into the brain; boxing would only add an
// allocation per event.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Input {
    Service(Event<Service>),
    Pool(Event<IPAddressPool>),
    Namespace(Event<Namespace>),
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

impl<K: std::hash::Hash + Eq> Listing<K> {
    fn begin(&mut self) {
        self.seen = Some(HashSet::new());
    }

    fn saw(&mut self, key: K) {
        if let Some(seen) = &mut self.seen {
            seen.insert(key);
        }
    }

    /// Ends the list; returns the keys listed (`None` if no list was in progress).
    fn end(&mut self) -> Option<HashSet<K>> {
        self.done_once = true;
        self.seen.take()
    }
}

/// See the module docs.
#[derive(Debug, Default)]
pub struct Feeder {
    services: Listing<ServiceKey>,
    pools: Listing<String>,
    namespaces: Listing<String>,
}

fn service_key(svc: &Service) -> ServiceKey {
    ServiceKey::new(svc.namespace().unwrap_or_default(), svc.name_any())
}

impl Feeder {
    /// Applies one event to the brain.
    pub fn feed(&mut self, brain: &mut Brain, input: Input) -> Output {
        let mut out = match input {
            Input::Service(event) => self.feed_service(brain, event),
            Input::Pool(event) => self.feed_pool(brain, event),
            Input::Namespace(event) => self.feed_namespace(brain, event),
        };
        if self.services.done_once
            && self.pools.done_once
            && self.namespaces.done_once
            && !brain.is_synced()
        {
            out.extend(brain.synced());
        }
        out
    }

    fn feed_service(&mut self, brain: &mut Brain, event: Event<Service>) -> Output {
        match event {
            Event::Init => {
                self.services.begin();
                Output::default()
            }
            Event::InitApply(svc) => {
                self.services.saw(service_key(&svc));
                brain.apply_service(&svc)
            }
            Event::Apply(svc) => brain.apply_service(&svc),
            Event::Delete(svc) => brain.delete_service(&service_key(&svc)),
            Event::InitDone => {
                let mut out = Output::default();
                if let Some(listed) = self.services.end() {
                    let gone: Vec<ServiceKey> = brain
                        .service_keys()
                        .filter(|k| !listed.contains(*k))
                        .cloned()
                        .collect();
                    for key in gone {
                        out.extend(brain.delete_service(&key));
                    }
                }
                out
            }
        }
    }

    fn feed_pool(&mut self, brain: &mut Brain, event: Event<IPAddressPool>) -> Output {
        match event {
            Event::Init => {
                self.pools.begin();
                Output::default()
            }
            Event::InitApply(pool) => {
                self.pools.saw(pool.name_any());
                brain.apply_pool(&pool)
            }
            Event::Apply(pool) => brain.apply_pool(&pool),
            Event::Delete(pool) => brain.delete_pool(&pool.name_any()),
            Event::InitDone => {
                let mut out = Output::default();
                if let Some(listed) = self.pools.end() {
                    let gone: Vec<String> = brain
                        .pool_names()
                        .filter(|n| !listed.contains(*n))
                        .map(str::to_string)
                        .collect();
                    for name in gone {
                        out.extend(brain.delete_pool(&name));
                    }
                }
                out
            }
        }
    }

    fn feed_namespace(&mut self, brain: &mut Brain, event: Event<Namespace>) -> Output {
        match event {
            Event::Init => {
                self.namespaces.begin();
                Output::default()
            }
            Event::InitApply(ns) => {
                self.namespaces.saw(ns.name_any());
                brain.apply_namespace(&ns)
            }
            Event::Apply(ns) => brain.apply_namespace(&ns),
            Event::Delete(ns) => brain.delete_namespace(&ns.name_any()),
            Event::InitDone => {
                let mut out = Output::default();
                if let Some(listed) = self.namespaces.end() {
                    let gone: Vec<String> = brain
                        .namespace_names()
                        .filter(|n| !listed.contains(*n))
                        .map(str::to_string)
                        .collect();
                    for name in gone {
                        out.extend(brain.delete_namespace(&name));
                    }
                }
                out
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::brain::{BrainConfig, Intent};
    use serde_json::json;

    fn svc(name: &str) -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default", "uid": name,
                         "creationTimestamp": "2024-01-01T00:00:00Z"},
            "spec": {"type": "LoadBalancer", "ipFamilies": ["IPv4"], "ports": [{"port": 80}]}
        }))
        .unwrap()
    }

    fn pool(name: &str, addresses: &[&str]) -> IPAddressPool {
        serde_json::from_value(json!({
            "apiVersion": "ironlb.io/v1beta1", "kind": "IPAddressPool",
            "metadata": {"name": name, "namespace": "ironlb-system",
                         "creationTimestamp": "2024-01-01T00:00:00Z"},
            "spec": {"addresses": addresses}
        }))
        .unwrap()
    }

    fn list_all(
        feeder: &mut Feeder,
        brain: &mut Brain,
        pools: &[IPAddressPool],
        services: &[Service],
    ) -> Output {
        let mut out = Output::default();
        out.extend(feeder.feed(brain, Input::Namespace(Event::Init)));
        out.extend(feeder.feed(brain, Input::Namespace(Event::InitDone)));
        out.extend(feeder.feed(brain, Input::Pool(Event::Init)));
        for p in pools {
            out.extend(feeder.feed(brain, Input::Pool(Event::InitApply(p.clone()))));
        }
        out.extend(feeder.feed(brain, Input::Pool(Event::InitDone)));
        out.extend(feeder.feed(brain, Input::Service(Event::Init)));
        for s in services {
            out.extend(feeder.feed(brain, Input::Service(Event::InitApply(s.clone()))));
        }
        out.extend(feeder.feed(brain, Input::Service(Event::InitDone)));
        out
    }

    fn statuses(out: &Output) -> usize {
        out.intents
            .iter()
            .filter(|i| matches!(i, Intent::ServiceStatus { .. }))
            .count()
    }

    #[test]
    fn the_brain_is_synced_only_when_every_kind_is_listed() {
        let mut brain = Brain::new(BrainConfig::default());
        let mut feeder = Feeder::default();
        let p = pool("main", &["198.51.100.0/29"]);
        assert!(feeder.feed(&mut brain, Input::Pool(Event::Init)).is_empty());
        assert!(
            feeder
                .feed(&mut brain, Input::Pool(Event::InitApply(p)))
                .is_empty()
        );
        assert!(
            feeder
                .feed(&mut brain, Input::Pool(Event::InitDone))
                .is_empty()
        );
        assert!(
            feeder
                .feed(&mut brain, Input::Service(Event::Init))
                .is_empty()
        );
        assert!(
            feeder
                .feed(&mut brain, Input::Service(Event::InitApply(svc("a"))))
                .is_empty()
        );
        assert!(
            feeder
                .feed(&mut brain, Input::Service(Event::InitDone))
                .is_empty()
        );
        assert!(!brain.is_synced());
        assert!(
            feeder
                .feed(&mut brain, Input::Namespace(Event::Init))
                .is_empty()
        );
        let out = feeder.feed(&mut brain, Input::Namespace(Event::InitDone));
        assert!(brain.is_synced());
        assert_eq!(statuses(&out), 1, "service a allocated at sync");
    }

    #[test]
    fn a_relist_releases_services_deleted_while_the_watch_was_down() {
        let mut brain = Brain::new(BrainConfig::default());
        let mut feeder = Feeder::default();
        let p = pool("main", &["198.51.100.0/31"]);
        list_all(&mut feeder, &mut brain, &[p], &[svc("a"), svc("b")]);
        assert!(brain.assignment(&ServiceKey::new("default", "a")).is_some());

        // The watch broke; "a" was deleted in the gap; the relist shows only "b" and "c".
        feeder.feed(&mut brain, Input::Service(Event::Init));
        feeder.feed(&mut brain, Input::Service(Event::InitApply(svc("b"))));
        let out = feeder.feed(&mut brain, Input::Service(Event::InitApply(svc("c"))));
        assert_eq!(statuses(&out), 0, "the pool is full until a is released");
        let out = feeder.feed(&mut brain, Input::Service(Event::InitDone));
        assert!(brain.assignment(&ServiceKey::new("default", "a")).is_none());
        // The address "a" held goes to the waiting "c" at once.
        assert_eq!(statuses(&out), 1);
        assert_eq!(
            brain
                .assignment(&ServiceKey::new("default", "c"))
                .map(|a| a.ips),
            Some(vec!["198.51.100.0".parse().unwrap()])
        );
    }

    #[test]
    fn a_relist_removes_pools_deleted_while_the_watch_was_down() {
        let mut brain = Brain::new(BrainConfig::default());
        let mut feeder = Feeder::default();
        let pools = [
            pool("a", &["198.51.100.0/30"]),
            pool("b", &["198.51.100.8/30"]),
        ];
        list_all(&mut feeder, &mut brain, &pools, &[]);
        feeder.feed(&mut brain, Input::Pool(Event::Init));
        feeder.feed(&mut brain, Input::Pool(Event::InitApply(pools[1].clone())));
        feeder.feed(&mut brain, Input::Pool(Event::InitDone));
        assert_eq!(brain.pool_names().collect::<Vec<_>>(), vec!["b"]);
    }

    #[test]
    fn plain_deletes_are_passed_on() {
        let mut brain = Brain::new(BrainConfig::default());
        let mut feeder = Feeder::default();
        list_all(
            &mut feeder,
            &mut brain,
            &[pool("a", &["198.51.100.0/30"])],
            &[svc("x")],
        );
        feeder.feed(&mut brain, Input::Service(Event::Delete(svc("x"))));
        assert!(brain.assignment(&ServiceKey::new("default", "x")).is_none());
    }
}
