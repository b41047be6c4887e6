//! Brain tests: plain `#[test]`s with `mk_*` builders. Objects are applied to a brain and the
//! test asserts on the intents it returns. [`World`] plays the API server: it applies intents
//! to the objects as the writer would, and feeds the results back, so tests can check that the
//! brain converges and that a fresh brain (a restart) finds nothing to do.

mod events_once;
mod malformed;
mod pools;
mod props;
mod restart;
mod services;

use std::collections::BTreeMap;
use std::net::IpAddr;

use ironlb_crds::IPAddressPool;
use ironlb_crds::annotations::IpMode;
use ironlb_crds::class::ClassFilter;
use ironlb_crds::v1beta1::IPAddressPoolSpec;
use k8s_openapi::api::core::v1::{
    LoadBalancerIngress, LoadBalancerStatus, Namespace, Service, ServicePort, ServiceSpec,
    ServiceStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;

use super::*;

pub(super) const POOL_NS: &str = "ironlb-system";

pub(super) fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

pub(super) fn at(seconds: i64) -> Time {
    Time(Timestamp::from_second(seconds).unwrap())
}

pub(super) fn key(name: &str) -> ServiceKey {
    ServiceKey::new("default", name)
}

/// A single-stack IPv4 LoadBalancer Service on TCP/80 in `default`, created at `created`.
pub(super) fn mk_service(name: &str, created: i64) -> Service {
    mk_service_in("default", name, created)
}

pub(super) fn mk_service_in(namespace: &str, name: &str, created: i64) -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(namespace.into()),
            uid: Some(format!("uid-{namespace}-{name}")),
            creation_timestamp: Some(at(created)),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            type_: Some("LoadBalancer".into()),
            ip_families: Some(vec!["IPv4".into()]),
            ip_family_policy: Some("SingleStack".into()),
            ports: Some(vec![ServicePort {
                port: 80,
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        status: None,
    }
}

pub(super) fn annotate(mut svc: Service, key: &str, value: &str) -> Service {
    svc.metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(key.into(), value.into());
    svc
}

pub(super) fn spec_mut(svc: &mut Service) -> &mut ServiceSpec {
    svc.spec.get_or_insert_with(Default::default)
}

/// The Service with `status.loadBalancer.ingress` showing `ips` with `mode`.
pub(super) fn showing(mut svc: Service, ips: &[&str], mode: Option<&str>) -> Service {
    svc.status = Some(ServiceStatus {
        load_balancer: Some(LoadBalancerStatus {
            ingress: Some(
                ips.iter()
                    .map(|i| LoadBalancerIngress {
                        ip: Some(i.to_string()),
                        ip_mode: mode.map(str::to_string),
                        ..Default::default()
                    })
                    .collect(),
            ),
        }),
        ..Default::default()
    });
    svc
}

pub(super) fn mk_pool(name: &str, addresses: &[&str], created: i64) -> IPAddressPool {
    mk_pool_spec(
        name,
        IPAddressPoolSpec {
            addresses: addresses.iter().map(|s| s.to_string()).collect(),
            auto_assign: true,
            avoid_buggy_ips: false,
            service_allocation: None,
        },
        created,
    )
}

pub(super) fn mk_pool_spec(name: &str, spec: IPAddressPoolSpec, created: i64) -> IPAddressPool {
    let mut pool = IPAddressPool::new(name, spec);
    pool.metadata.namespace = Some(POOL_NS.into());
    pool.metadata.uid = Some(format!("uid-pool-{name}"));
    pool.metadata.generation = Some(1);
    pool.metadata.creation_timestamp = Some(at(created));
    pool
}

pub(super) fn mk_namespace(name: &str, labels: &[(&str, &str)]) -> Namespace {
    Namespace {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..Default::default()
        },
        ..Default::default()
    }
}

pub(super) fn mk_brain() -> Brain {
    Brain::new(BrainConfig::default())
}

pub(super) fn mk_brain_with(ip_mode: IpMode, supported: bool, ignore_unclassed: bool) -> Brain {
    Brain::new(BrainConfig {
        class: ClassFilter::new(ironlb_crds::class::DEFAULT_LB_CLASS, ignore_unclassed).unwrap(),
        default_ip_mode: ip_mode,
        ip_mode_supported: supported,
    })
}

/// The events in `out`, as (reason, note).
pub(super) fn events(out: &Output) -> Vec<(&'static str, String)> {
    out.intents
        .iter()
        .filter_map(|i| match i {
            Intent::Event(e) => Some((e.reason, e.note.clone())),
            _ => None,
        })
        .collect()
}

pub(super) fn reasons(out: &Output) -> Vec<&'static str> {
    events(out).into_iter().map(|(r, _)| r).collect()
}

/// The status writes in `out`, by Service.
pub(super) fn status_writes(out: &Output) -> Vec<(ServiceKey, StatusWrite)> {
    out.intents
        .iter()
        .filter_map(|i| match i {
            Intent::ServiceStatus { key, write } => Some((key.clone(), write.clone())),
            _ => None,
        })
        .collect()
}

pub(super) fn annotation_writes(out: &Output) -> Vec<(ServiceKey, Option<String>)> {
    out.intents
        .iter()
        .filter_map(|i| match i {
            Intent::PoolAnnotation { key, pool } => Some((key.clone(), pool.clone())),
            _ => None,
        })
        .collect()
}

pub(super) fn pool_writes(out: &Output) -> Vec<(String, PoolStatusWrite)> {
    out.intents
        .iter()
        .filter_map(|i| match i {
            Intent::PoolStatus { name, status, .. } => Some((name.clone(), status.clone())),
            _ => None,
        })
        .collect()
}

pub(super) fn set_v4(ips: &[&str], mode: Option<IpMode>) -> StatusWrite {
    StatusWrite::Set(
        ips.iter()
            .map(|i| Ingress {
                ip: ip(i),
                ip_mode: mode,
            })
            .collect(),
    )
}

pub(super) fn condition<'a>(status: &'a PoolStatusWrite, type_: &str) -> &'a DesiredCondition {
    status
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .unwrap_or_else(|| panic!("no {type_} condition in {status:?}"))
}

/// A stand-in for the API server: the objects, with intents applied as the writer would.
#[derive(Default)]
pub(super) struct World {
    pub services: BTreeMap<ServiceKey, Service>,
    pub pools: BTreeMap<String, IPAddressPool>,
    pub namespaces: BTreeMap<String, Namespace>,
}

impl World {
    pub fn add_service(&mut self, svc: Service) {
        let view = ServiceView::from_service(&svc).unwrap();
        self.services.insert(view.key, svc);
    }

    pub fn add_pool(&mut self, pool: IPAddressPool) {
        self.pools.insert(pool.metadata.name.clone().unwrap(), pool);
    }

    /// A brain that starts against this world, as after a (re)start: everything listed, then
    /// `synced`.
    pub fn start(&self, mut brain: Brain) -> (Brain, Output) {
        for ns in self.namespaces.values() {
            assert!(brain.apply_namespace(ns).is_empty());
        }
        for pool in self.pools.values() {
            assert!(
                brain.apply_pool(pool).is_empty(),
                "indexing only before sync"
            );
        }
        for svc in self.services.values() {
            assert!(
                brain.apply_service(svc).is_empty(),
                "indexing only before sync"
            );
        }
        let out = brain.synced();
        (brain, out)
    }

    /// Applies the writes of `out` and feeds every changed object back to the brain until
    /// nothing changes. Returns everything the echoes produced.
    pub fn settle(&mut self, brain: &mut Brain, out: &Output) -> Output {
        let mut echoes = Output::default();
        let mut todo = out.clone();
        for _ in 0..10 {
            let changed = self.apply(&todo);
            if changed.is_empty() {
                return echoes;
            }
            let mut next = Output::default();
            for object in changed {
                match object {
                    Changed::Service(key) => next.extend(brain.apply_service(&self.services[&key])),
                    Changed::Pool(name) => next.extend(brain.apply_pool(&self.pools[&name])),
                }
            }
            echoes.extend(next.clone());
            todo = next;
        }
        panic!("the brain did not converge: {todo:?}");
    }

    fn apply(&mut self, out: &Output) -> Vec<Changed> {
        let mut changed = Vec::new();
        for intent in &out.intents {
            match intent {
                Intent::ServiceStatus { key, write } => {
                    let Some(svc) = self.services.get_mut(key) else {
                        continue;
                    };
                    let ingress: Vec<LoadBalancerIngress> = write
                        .entries()
                        .iter()
                        .map(|i| LoadBalancerIngress {
                            ip: Some(i.ip.to_string()),
                            ip_mode: i.ip_mode.map(|m| m.as_str().to_string()),
                            ..Default::default()
                        })
                        .collect();
                    svc.status = Some(ServiceStatus {
                        load_balancer: Some(LoadBalancerStatus {
                            ingress: (!ingress.is_empty()).then_some(ingress),
                        }),
                        ..Default::default()
                    });
                    changed.push(Changed::Service(key.clone()));
                }
                Intent::PoolAnnotation { key, pool } => {
                    let Some(svc) = self.services.get_mut(key) else {
                        continue;
                    };
                    let annotations = svc.metadata.annotations.get_or_insert_with(BTreeMap::new);
                    match pool {
                        Some(p) => annotations.insert(
                            ironlb_crds::annotations::IP_ALLOCATED_FROM_POOL.into(),
                            p.clone(),
                        ),
                        None => {
                            annotations.remove(ironlb_crds::annotations::IP_ALLOCATED_FROM_POOL)
                        }
                    };
                    changed.push(Changed::Service(key.clone()));
                }
                Intent::PoolStatus { name, status, .. } => {
                    let Some(pool) = self.pools.get_mut(name) else {
                        continue;
                    };
                    pool.status = Some(status.to_status(&at(1_000_000)));
                    changed.push(Changed::Pool(name.clone()));
                }
                Intent::Event(_) => {}
            }
        }
        changed.dedup();
        changed
    }
}

#[derive(PartialEq)]
enum Changed {
    Service(ServiceKey),
    Pool(String),
}

/// A world with one pool `main` (198.51.100.0/29) and a synced brain.
pub(super) fn mk_started(pools: &[(&str, &[&str])]) -> (World, Brain) {
    let mut world = World::default();
    for (i, (name, addresses)) in pools.iter().enumerate() {
        world.add_pool(mk_pool(name, addresses, 100 + i as i64));
    }
    let (mut brain, out) = world.start(mk_brain());
    world.settle(&mut brain, &out);
    (world, brain)
}

/// Adds a Service to the world and the brain, settles, and returns the first output.
pub(super) fn create(world: &mut World, brain: &mut Brain, svc: Service) -> Output {
    world.add_service(svc.clone());
    let out = brain.apply_service(&svc);
    world.settle(brain, &out);
    out
}

/// Replaces a Service in the world (keeping the status the world shows) and in the brain.
pub(super) fn update(world: &mut World, brain: &mut Brain, mut svc: Service) -> Output {
    let key = ServiceView::from_service(&svc).unwrap().key;
    if let Some(old) = world.services.get(&key) {
        svc.status = old.status.clone();
        let ours = ironlb_crds::annotations::IP_ALLOCATED_FROM_POOL;
        if let Some(pool) = old.metadata.annotations.as_ref().and_then(|a| a.get(ours)) {
            svc = annotate(svc, ours, pool);
        }
    }
    world.add_service(svc.clone());
    let out = brain.apply_service(&svc);
    world.settle(brain, &out);
    out
}

/// The IPs the world shows for a Service.
pub(super) fn shown(world: &World, name: &str) -> Vec<IpAddr> {
    ServiceView::from_service(&world.services[&key(name)])
        .unwrap()
        .shown_ips()
}
