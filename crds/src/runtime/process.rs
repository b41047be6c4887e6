//! Process life: the shutdown signal and how a fatal error is logged.

use tokio_util::sync::CancellationToken;

/// The error and its causes on one line, skipping causes whose text an outer message already
/// repeats (many library errors print their source themselves).
pub fn one_line(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if !line.contains(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
    }
    line
}

/// Cancels `shutdown` on SIGTERM or SIGINT; returns early if it is cancelled otherwise.
pub async fn stop_on_signal(shutdown: CancellationToken) {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(err) => {
            tracing::error!(error = %err, "cannot listen for SIGTERM");
            return;
        }
    };
    tokio::select! {
        () = shutdown.cancelled() => return,
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
    }
    shutdown.cancel();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot bind 0.0.0.0:1: permission denied")]
    struct Repeats(#[source] std::io::Error);

    #[test]
    fn causes_are_joined_without_repeats() {
        let inner = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "permission denied");
        let err = anyhow::Error::new(Repeats(inner)).context("starting");
        assert_eq!(
            one_line(&err),
            "starting: cannot bind 0.0.0.0:1: permission denied"
        );
        let plain = anyhow::anyhow!("alone");
        assert_eq!(one_line(&plain), "alone");
    }

    #[tokio::test]
    async fn an_outside_cancel_ends_the_wait() {
        let token = CancellationToken::new();
        token.cancel();
        stop_on_signal(token.clone()).await;
        assert!(token.is_cancelled());
    }
}
