//! Tests of the allocator as a whole: `mk_*` builders, one file per area, and property tests.
//! The building blocks (interval sets, address spaces, requests) test themselves next to
//! their code.

mod dual_stack;
mod moves;
mod pools;
mod props;
mod restore;
mod rules;
mod sharing;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ironlb_crds::address::{Family, parse_address_entry};
use ironlb_crds::selector::Selector;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::*;

pub(super) fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

pub(super) fn ips(list: &[&str]) -> Vec<IpAddr> {
    list.iter().map(|s| ip(s)).collect()
}

/// A service in namespace `default`.
pub(super) fn key(name: &str) -> ServiceKey {
    ServiceKey::new("default", name)
}

pub(super) fn key_in(namespace: &str, name: &str) -> ServiceKey {
    ServiceKey::new(namespace, name)
}

pub(super) fn mk_pool(name: &str, entries: &[&str]) -> PoolConfig {
    PoolConfig::new(
        name,
        entries
            .iter()
            .map(|e| parse_address_entry(e).unwrap())
            .collect(),
    )
}

pub(super) fn mk_pool_at(name: &str, entries: &[&str], created_at: i64) -> PoolConfig {
    PoolConfig {
        created_at,
        ..mk_pool(name, entries)
    }
}

pub(super) fn mk_alloc(pools: Vec<PoolConfig>) -> Allocator {
    let mut alloc = Allocator::new();
    for pool in pools {
        let update = alloc.set_pool(pool);
        assert!(update.displaced.is_empty());
    }
    alloc
}

/// A SingleStack IPv4 request with no options.
pub(super) fn v4() -> Request {
    Request::new(FamilyPolicy::SingleStack(Family::V4))
}

pub(super) fn v6() -> Request {
    Request::new(FamilyPolicy::SingleStack(Family::V6))
}

pub(super) fn mk_req(families: FamilyPolicy) -> Request {
    Request::new(families)
}

pub(super) fn tcp(port: u16) -> Port {
    Port::new(Protocol::Tcp, port)
}

pub(super) fn udp(port: u16) -> Port {
    Port::new(Protocol::Udp, port)
}

/// A request sharing under `sharing_key` with the given ports and a Cluster backend.
pub(super) fn shared(sharing_key: &str, ports: &[Port]) -> Request {
    Request {
        sharing_key: Some(sharing_key.into()),
        ports: ports.to_vec(),
        ..v4()
    }
}

pub(super) fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub(super) fn mk_selector(pairs: &[(&str, &str)]) -> Selector {
    Selector::from_label_selector(&LabelSelector {
        match_labels: Some(labels(pairs)),
        match_expressions: None,
    })
    .unwrap()
}

pub(super) fn mk_allocation(priority: u32) -> ServiceAllocation {
    ServiceAllocation {
        priority,
        ..ServiceAllocation::default()
    }
}

pub(super) fn namespaces(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| n.to_string()).collect()
}

/// Assigns and returns the addresses, failing the test with the error otherwise.
#[track_caller]
pub(super) fn assign_ips(alloc: &mut Allocator, key: &ServiceKey, req: &Request) -> Vec<IpAddr> {
    match alloc.assign(key, req) {
        Ok(a) => a.ips,
        Err(e) => panic!("assign {key} failed: {e}"),
    }
}

pub(super) fn usage(alloc: &Allocator, pool: &str, family: Family) -> (u128, u128) {
    let status = alloc.pool_status(pool).expect("pool exists");
    let u = status
        .usage
        .iter()
        .find(|u| u.family == family)
        .expect("family present");
    (u.total, u.in_use)
}
