//! Leader election on a `coordination.k8s.io/v1` Lease: one writer among the replicas.
//!
//! The decision of what to do with a Lease is the pure function [`decide`]; the async
//! [`LeaderElector`] only reads and writes the Lease around it.
//!
//! Expiry is judged by the *local* clock from the moment this replica last saw the Lease change
//! (its resourceVersion), as client-go does, so clock skew between nodes cannot make a standby
//! take over early. A leader that cannot renew within the renew deadline gives up; the process
//! then exits and comes back as a standby (see `main`).

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Timing of the election. Defaults follow client-go's (15 s / 10 s / 2 s).
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    pub name: String,
    pub namespace: String,
    pub identity: String,
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
}

/// What a replica knows about the Lease it last read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseState {
    pub holder: Option<String>,
    pub duration: Duration,
    /// The Lease's resourceVersion; any change means its holder is alive.
    pub version: String,
}

/// What to do next with the Lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// No Lease exists: create it with us as holder.
    Create,
    /// We hold it (perhaps from before a restart): renew it.
    Renew,
    /// Nobody holds it, or the holder stopped renewing: take it over.
    TakeOver,
    /// Someone else holds a live Lease: check again after this long.
    Wait(Duration),
}

/// Decides what to do, given the Lease (if any) and how long it has been unchanged as seen
/// from here.
pub fn decide(me: &str, lease: Option<&LeaseState>, unchanged_for: Duration) -> Decision {
    let Some(lease) = lease else {
        return Decision::Create;
    };
    match lease.holder.as_deref() {
        Some(holder) if holder == me => Decision::Renew,
        None | Some("") => Decision::TakeOver,
        Some(_) if unchanged_for >= lease.duration => Decision::TakeOver,
        Some(_) => Decision::Wait(lease.duration - unchanged_for),
    }
}

/// Why leadership ended.
#[derive(Debug, PartialEq, Eq)]
pub enum LeadershipEnd {
    /// Shutdown was requested; the Lease was released for a fast hand-over.
    Cancelled,
    /// Renewal failed past the renew deadline, or another replica took the Lease.
    Lost,
}

/// Acquires and holds the Lease.
pub struct LeaderElector {
    api: Api<Lease>,
    config: LeaseConfig,
}

/// When the Lease was last seen to change, by local clock.
struct Observation {
    version: String,
    since: Instant,
}

impl LeaderElector {
    pub fn new(client: kube::Client, config: LeaseConfig) -> Self {
        let api = Api::namespaced(client, &config.namespace);
        LeaderElector { api, config }
    }

    pub fn identity(&self) -> &str {
        &self.config.identity
    }

    /// Waits until this replica holds the Lease. Returns false if cancelled first.
    pub async fn acquire(&self, cancel: &CancellationToken) -> bool {
        let mut observed: Option<Observation> = None;
        loop {
            let pause = match self.try_acquire(&mut observed).await {
                Ok(None) => return true,
                Ok(Some(wait)) => wait.min(self.config.retry_period),
                Err(err) => {
                    tracing::warn!(error = %err, lease = %self.config.name, "cannot read or write the leader Lease");
                    self.config.retry_period
                }
            };
            tokio::select! {
                () = cancel.cancelled() => return false,
                () = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// One acquisition attempt. `Ok(None)` means we now hold the Lease.
    async fn try_acquire(
        &self,
        observed: &mut Option<Observation>,
    ) -> Result<Option<Duration>, kube::Error> {
        let current = self.api.get_opt(&self.config.name).await?;
        let state = current.as_ref().map(lease_state);
        let now = Instant::now();
        let unchanged_for = match (&state, observed.as_ref()) {
            (Some(s), Some(o)) if o.version == s.version => now.duration_since(o.since),
            _ => Duration::ZERO,
        };
        if let Some(s) = &state
            && observed.as_ref().is_none_or(|o| o.version != s.version)
        {
            *observed = Some(Observation {
                version: s.version.clone(),
                since: now,
            });
        }
        match decide(&self.config.identity, state.as_ref(), unchanged_for) {
            Decision::Wait(wait) => Ok(Some(wait)),
            Decision::Create => {
                let lease = self.our_lease(None, None);
                match self.api.create(&PostParams::default(), &lease).await {
                    Ok(_) => Ok(None),
                    Err(err) if is_conflict(&err) => Ok(Some(Duration::ZERO)),
                    Err(err) => Err(err),
                }
            }
            decision @ (Decision::Renew | Decision::TakeOver) => {
                let Some(current) = current else {
                    return Ok(Some(Duration::ZERO));
                };
                let transitions = current
                    .spec
                    .as_ref()
                    .and_then(|s| s.lease_transitions)
                    .unwrap_or(0);
                let transitions = if decision == Decision::TakeOver {
                    transitions + 1
                } else {
                    transitions
                };
                let lease = self.our_lease(Some(&current), Some(transitions));
                match self
                    .api
                    .replace(&self.config.name, &PostParams::default(), &lease)
                    .await
                {
                    Ok(_) => Ok(None),
                    Err(err) if is_conflict(&err) => Ok(Some(Duration::ZERO)),
                    Err(err) => Err(err),
                }
            }
        }
    }

    /// Renews the Lease until cancelled (then releases it) or until leadership is lost.
    pub async fn hold(&self, cancel: &CancellationToken) -> LeadershipEnd {
        let mut last_renewal = Instant::now();
        loop {
            tokio::select! {
                () = cancel.cancelled() => {
                    self.release().await;
                    return LeadershipEnd::Cancelled;
                }
                () = tokio::time::sleep(self.config.retry_period) => {}
            }
            match self.renew().await {
                Ok(true) => last_renewal = Instant::now(),
                Ok(false) => {
                    tracing::warn!(lease = %self.config.name, "another replica took the leader Lease");
                    return LeadershipEnd::Lost;
                }
                Err(err) => {
                    tracing::warn!(error = %err, "failed to renew the leader Lease");
                    if last_renewal.elapsed() >= self.config.renew_deadline {
                        return LeadershipEnd::Lost;
                    }
                }
            }
        }
    }

    /// Renews; `Ok(false)` when the Lease is no longer ours.
    async fn renew(&self) -> Result<bool, kube::Error> {
        let Some(current) = self.api.get_opt(&self.config.name).await? else {
            return Ok(false);
        };
        if lease_state(&current).holder.as_deref() != Some(self.config.identity.as_str()) {
            return Ok(false);
        }
        let transitions = current.spec.as_ref().and_then(|s| s.lease_transitions);
        let lease = self.our_lease(Some(&current), transitions);
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(true),
            Err(err) if is_conflict(&err) => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// Gives the Lease up so a standby takes over at once instead of after expiry.
    async fn release(&self) {
        let Ok(Some(current)) = self.api.get_opt(&self.config.name).await else {
            return;
        };
        if lease_state(&current).holder.as_deref() != Some(self.config.identity.as_str()) {
            return;
        }
        let mut lease = current.clone();
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        if let Err(err) = self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            tracing::warn!(error = %err, "failed to release the leader Lease");
        }
    }

    fn our_lease(&self, current: Option<&Lease>, transitions: Option<i32>) -> Lease {
        let now = MicroTime(Timestamp::now());
        let previous = current.and_then(|l| l.spec.as_ref());
        let keep_acquire_time = previous
            .is_some_and(|s| s.holder_identity.as_deref() == Some(self.config.identity.as_str()));
        Lease {
            metadata: ObjectMeta {
                name: Some(self.config.name.clone()),
                namespace: Some(self.config.namespace.clone()),
                resource_version: current.and_then(|l| l.metadata.resource_version.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(self.config.identity.clone()),
                lease_duration_seconds: Some(
                    i32::try_from(self.config.lease_duration.as_secs()).unwrap_or(i32::MAX),
                ),
                acquire_time: if keep_acquire_time {
                    previous.and_then(|s| s.acquire_time.clone())
                } else {
                    Some(now.clone())
                },
                renew_time: Some(now),
                lease_transitions: transitions.or(Some(0)),
                ..LeaseSpec::default()
            }),
        }
    }
}

fn lease_state(lease: &Lease) -> LeaseState {
    let spec = lease.spec.as_ref();
    LeaseState {
        holder: spec.and_then(|s| s.holder_identity.clone()),
        duration: Duration::from_secs(
            spec.and_then(|s| s.lease_duration_seconds)
                .and_then(|d| u64::try_from(d).ok())
                .unwrap_or(15),
        ),
        version: lease.metadata.resource_version.clone().unwrap_or_default(),
    }
}

fn is_conflict(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(status) if status.code == 409)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held_by(holder: Option<&str>, secs: u64) -> LeaseState {
        LeaseState {
            holder: holder.map(str::to_string),
            duration: Duration::from_secs(secs),
            version: "7".into(),
        }
    }

    #[test]
    fn no_lease_is_created() {
        assert_eq!(decide("a", None, Duration::ZERO), Decision::Create);
    }

    #[test]
    fn our_own_lease_is_renewed_even_after_a_restart() {
        let lease = held_by(Some("a"), 15);
        assert_eq!(decide("a", Some(&lease), Duration::ZERO), Decision::Renew);
        assert_eq!(
            decide("a", Some(&lease), Duration::from_secs(60)),
            Decision::Renew
        );
    }

    #[test]
    fn a_live_holder_is_waited_for_until_expiry() {
        let lease = held_by(Some("b"), 15);
        assert_eq!(
            decide("a", Some(&lease), Duration::from_secs(4)),
            Decision::Wait(Duration::from_secs(11))
        );
        assert_eq!(
            decide("a", Some(&lease), Duration::from_secs(15)),
            Decision::TakeOver
        );
    }

    #[test]
    fn a_released_lease_is_taken_at_once() {
        assert_eq!(
            decide("a", Some(&held_by(None, 1)), Duration::ZERO),
            Decision::TakeOver
        );
        assert_eq!(
            decide("a", Some(&held_by(Some(""), 15)), Duration::ZERO),
            Decision::TakeOver
        );
    }
}
