//! Service load for the controller benchmark: bounded concurrent creators of LoadBalancer
//! Services, and the benchmark's own watcher, which stamps every event it receives into a
//! shared [`Timeline`] so latencies are measured as a client would see them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use serde_json::json;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::timeline::Timeline;

/// Tells the lab's kube-proxy stand-in to leave a Service alone (no NodePort listeners), so
/// thousands of Services cost the stand-in nothing. A no-op on a real cluster.
pub const KUBE_PROXY_IGNORE: (&str, &str) = ("lab.ironlb.io/kube-proxy", "ignore");

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("creating Service {name}: {source}")]
    Create {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("timed out after {after:?} waiting for {what} ({done} of {total})")]
    Timeout {
        what: String,
        after: Duration,
        done: usize,
        total: usize,
    },
    #[error("the benchmark's Service watch ended: {0}")]
    WatchEnded(String),
    #[error("interrupted")]
    Cancelled,
}

/// A single-stack IPv6 LoadBalancer Service with one TCP port and no selector (no endpoints:
/// only the controller has work to do). `node_ports: false` sets
/// `allocateLoadBalancerNodePorts: false`, which Services beyond the NodePort range's 2,768
/// ports need; the controller then writes ipMode VIP.
pub fn bench_service(namespace: &str, name: &str, node_ports: bool) -> Service {
    let (key, value) = KUBE_PROXY_IGNORE;
    let mut spec = json!({
        "type": "LoadBalancer",
        "ipFamilyPolicy": "SingleStack",
        "ipFamilies": ["IPv6"],
        "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
    });
    if !node_ports {
        spec["allocateLoadBalancerNodePorts"] = json!(false);
    }
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "annotations": {key: value}},
        "spec": spec,
    }))
    .expect("a Service literal deserialises")
}

/// `namespace/name`, the key of the [`Timeline`].
pub fn key(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

fn ingress_ips(svc: &Service) -> Vec<String> {
    svc.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .map(|ingress| ingress.iter().filter_map(|i| i.ip.clone()).collect())
        .unwrap_or_default()
}

/// The benchmark's watcher of one namespace's Services; stopped when dropped.
pub struct ServiceWatch {
    timeline: Arc<Mutex<Timeline>>,
    synced: watch::Receiver<bool>,
    ended: watch::Receiver<Option<String>>,
    task: tokio::task::JoinHandle<()>,
}

impl ServiceWatch {
    pub fn spawn(api: Api<Service>) -> Self {
        let timeline = Arc::new(Mutex::new(Timeline::default()));
        let (synced_tx, synced) = watch::channel(false);
        let (ended_tx, ended) = watch::channel(None);
        let shared = timeline.clone();
        let task = tokio::spawn(async move {
            let mut events = watcher(api, watcher::Config::default())
                .default_backoff()
                .boxed();
            loop {
                let event = match events.try_next().await {
                    Ok(Some(event)) => event,
                    Ok(None) => break,
                    // The backoff retries; a persistent failure shows as a timeout upstream.
                    Err(e) => {
                        tracing::warn!(error = %e, "benchmark watch error; retrying");
                        continue;
                    }
                };
                // Stamped on arrival, before anything else is done with the event.
                let at = Instant::now();
                match event {
                    watcher::Event::Apply(svc) | watcher::Event::InitApply(svc) => {
                        let k = key(&svc.namespace().unwrap_or_default(), &svc.name_any());
                        lock(&shared).observe(&k, at, ingress_ips(&svc));
                    }
                    watcher::Event::Delete(svc) => {
                        let k = key(&svc.namespace().unwrap_or_default(), &svc.name_any());
                        lock(&shared).forget(&k);
                    }
                    watcher::Event::Init => {}
                    watcher::Event::InitDone => {
                        let _ = synced_tx.send(true);
                    }
                }
            }
            let _ = ended_tx.send(Some("the stream ended".into()));
        });
        ServiceWatch {
            timeline,
            synced,
            ended,
            task,
        }
    }

    /// Waits until the initial list has been seen.
    pub async fn wait_synced(&mut self, timeout: Duration) -> Result<(), LoadError> {
        match tokio::time::timeout(timeout, self.synced.wait_for(|s| *s)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(LoadError::WatchEnded("before its first list".into())),
            Err(_) => Err(LoadError::Timeout {
                what: "the benchmark's watch to list Services".into(),
                after: timeout,
                done: 0,
                total: 1,
            }),
        }
    }

    pub fn timeline(&self) -> MutexGuard<'_, Timeline> {
        lock(&self.timeline)
    }

    /// Waits until every one of `keys` shows an ingress IP; returns when that was observed.
    pub async fn wait_all_ingress(
        &self,
        keys: &[String],
        timeout: Duration,
        cancel: &CancellationToken,
    ) -> Result<Instant, LoadError> {
        let deadline = Instant::now() + timeout;
        loop {
            let done = self.timeline().with_ingress(keys);
            if done == keys.len() {
                return Ok(Instant::now());
            }
            if let Some(why) = self.ended.borrow().clone() {
                return Err(LoadError::WatchEnded(why));
            }
            if Instant::now() >= deadline {
                return Err(LoadError::Timeout {
                    what: "Services to show an ingress IP".into(),
                    after: timeout,
                    done,
                    total: keys.len(),
                });
            }
            tokio::select! {
                () = cancel.cancelled() => return Err(LoadError::Cancelled),
                () = tokio::time::sleep(Duration::from_millis(5)) => {}
            }
        }
    }
}

impl Drop for ServiceWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock(timeline: &Mutex<Timeline>) -> MutexGuard<'_, Timeline> {
    // A panic while holding the lock leaves a usable timeline (each update is one call).
    timeline
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What a round of creations measured.
#[derive(Debug, Default)]
pub struct Created {
    /// `namespace/name` → when its create call returned.
    pub returned: HashMap<String, Instant>,
    /// Duration of each create call.
    pub calls: Vec<Duration>,
    pub elapsed: Duration,
}

/// Creates `services` with at most `concurrency` calls in flight; stops at the first error.
pub async fn create_all(
    api: &Api<Service>,
    services: Vec<Service>,
    concurrency: usize,
    cancel: &CancellationToken,
) -> Result<Created, LoadError> {
    let started = Instant::now();
    let params = PostParams::default();
    let results: Vec<(String, Instant, Duration)> = futures::stream::iter(services)
        .map(|svc| {
            let params = &params;
            async move {
                if cancel.is_cancelled() {
                    return Err(LoadError::Cancelled);
                }
                let name = svc.meta().name.clone().unwrap_or_default();
                let namespace = svc.meta().namespace.clone().unwrap_or_default();
                let call = Instant::now();
                api.create(params, &svc)
                    .await
                    .map_err(|source| LoadError::Create {
                        name: name.clone(),
                        source,
                    })?;
                let returned = Instant::now();
                Ok((key(&namespace, &name), returned, returned - call))
            }
        })
        .buffer_unordered(concurrency.max(1))
        .try_collect()
        .await?;
    let mut created = Created {
        elapsed: started.elapsed(),
        ..Created::default()
    };
    for (k, returned, call) in results {
        created.returned.insert(k, returned);
        created.calls.push(call);
    }
    Ok(created)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{LoadBalancerIngress, LoadBalancerStatus, ServiceStatus};

    #[test]
    fn bench_services_are_single_stack_ipv6_load_balancers_the_stand_in_ignores() {
        let svc = bench_service("bench", "b-1", true);
        let spec = svc.spec.as_ref().unwrap();
        assert_eq!(spec.type_.as_deref(), Some("LoadBalancer"));
        assert_eq!(spec.ip_families.as_deref(), Some(&["IPv6".to_string()][..]));
        assert_eq!(spec.ip_family_policy.as_deref(), Some("SingleStack"));
        assert_eq!(spec.allocate_load_balancer_node_ports, None);
        assert!(spec.selector.is_none());
        assert_eq!(svc.annotations()[KUBE_PROXY_IGNORE.0], KUBE_PROXY_IGNORE.1);
        assert_eq!(svc.namespace().as_deref(), Some("bench"));
        let no_ports = bench_service("bench", "b-2", false);
        assert_eq!(
            no_ports.spec.unwrap().allocate_load_balancer_node_ports,
            Some(false)
        );
    }

    #[test]
    fn ingress_ips_read_every_entry_with_an_ip() {
        let mut svc = bench_service("bench", "b", true);
        assert!(ingress_ips(&svc).is_empty());
        svc.status = Some(ServiceStatus {
            load_balancer: Some(LoadBalancerStatus {
                ingress: Some(vec![
                    LoadBalancerIngress {
                        ip: Some("2001:db8:0:100::".into()),
                        ..Default::default()
                    },
                    LoadBalancerIngress {
                        hostname: Some("lb.example".into()),
                        ..Default::default()
                    },
                ]),
            }),
            ..Default::default()
        });
        assert_eq!(ingress_ips(&svc), ["2001:db8:0:100::"]);
    }
}
