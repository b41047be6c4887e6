//! One membership term: bound to the node IP, running until this node leaves (kube-proxy
//! unhealthy, or shutdown). Leaving sends the signed leave; joining again later binds a new
//! endpoint with a new epoch, which the others accept as a comeback.

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::membership::{self, AliveView, Membership, Peer, Settings, Stats};

/// How long a leave may take to be sent before the term is abandoned.
const LEAVE_TIMEOUT: Duration = Duration::from_secs(1);

pub struct Member {
    cancel: CancellationToken,
    task: JoinHandle<membership::Result<()>>,
    pub view: watch::Receiver<AliveView>,
    pub stats: watch::Receiver<Stats>,
}

impl Member {
    /// Binds the membership socket and starts the protocol with the peer list `peers`.
    pub async fn join(
        settings: Settings,
        peers: watch::Receiver<Vec<Peer>>,
    ) -> membership::Result<Member> {
        let bind = settings.bind;
        let endpoint = Membership::bind(settings).await?;
        tracing::info!(%bind, "membership: joined");
        let view = endpoint.subscribe();
        let stats = endpoint.stats();
        let cancel = CancellationToken::new();
        let task = tokio::spawn(endpoint.run(peers, cancel.clone()));
        Ok(Member {
            cancel,
            task,
            view,
            stats,
        })
    }

    /// True while the protocol runs.
    pub fn is_running(&self) -> bool {
        !self.task.is_finished()
    }

    /// Announces the leave and waits until it is sent.
    pub async fn leave(self) {
        self.cancel.cancel();
        match tokio::time::timeout(LEAVE_TIMEOUT, self.task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(err))) => tracing::warn!(error = %err, "membership ended with an error"),
            Ok(Err(err)) => tracing::warn!(error = %err, "membership task failed"),
            Err(_) => tracing::warn!("membership did not finish its leave in time"),
        }
    }
}
