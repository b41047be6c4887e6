//! Who holds an address, and whether one more service may join them.
//!
//! An address held by several services is held under one set of terms: all holders carry the
//! same allow-shared-ip key and the same backend, and their (protocol, port) pairs are
//! disjoint. [`IpEntry::admits`] is the only gate into that state.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use super::error::AllocError;
use super::request::{Backend, Port, ServiceKey, Terms};

/// The holders of one address.
#[derive(Clone, Debug)]
pub(crate) struct IpEntry {
    pub(crate) pool: Arc<str>,
    pub(crate) sharing_key: Option<String>,
    pub(crate) backend: Backend,
    /// Sorted, never empty while the entry exists. Usually one service, so a Vec.
    pub(crate) holders: Vec<Arc<ServiceKey>>,
    pub(crate) ports: BTreeMap<Port, Arc<ServiceKey>>,
}

impl IpEntry {
    pub(crate) fn new(pool: Arc<str>, terms: &Terms) -> Self {
        IpEntry {
            pool,
            sharing_key: terms.sharing_key.clone(),
            backend: terms.backend.clone(),
            holders: Vec::new(),
            ports: BTreeMap::new(),
        }
    }

    /// Checks that a service with `terms` may hold `ip` alongside the current holders.
    pub(crate) fn admits(&self, ip: IpAddr, terms: &Terms) -> Result<(), AllocError> {
        let Some(holder) = self.holders.first() else {
            return Ok(());
        };
        let (Some(held), Some(wanted)) = (&self.sharing_key, &terms.sharing_key) else {
            return Err(AllocError::IpInUse {
                ip,
                holder: ServiceKey::clone(holder),
            });
        };
        if held != wanted {
            return Err(AllocError::SharingKeyMismatch {
                ip,
                holder: ServiceKey::clone(holder),
                held: held.clone(),
                wanted: wanted.clone(),
            });
        }
        if self.backend != terms.backend {
            return Err(AllocError::BackendMismatch {
                ip,
                holder: ServiceKey::clone(holder),
            });
        }
        if let Some((port, holder)) = terms.ports.iter().find_map(|p| self.ports.get_key_value(p)) {
            return Err(AllocError::PortOverlap {
                ip,
                holder: ServiceKey::clone(holder),
                port: *port,
            });
        }
        Ok(())
    }

    pub(crate) fn add(&mut self, key: &Arc<ServiceKey>, terms: &Terms) {
        if let Err(at) = self.holders.binary_search(key) {
            self.holders.insert(at, key.clone());
        }
        for port in &terms.ports {
            self.ports.insert(*port, key.clone());
        }
    }

    /// Removes a holder; returns true when nobody holds the address any more.
    pub(crate) fn remove(&mut self, key: &ServiceKey, terms: &Terms) -> bool {
        if let Ok(at) = self.holders.binary_search_by(|h| (**h).cmp(key)) {
            self.holders.remove(at);
        }
        for port in &terms.ports {
            if self.ports.get(port).is_some_and(|h| **h == *key) {
                self.ports.remove(port);
            }
        }
        self.holders.is_empty()
    }
}
