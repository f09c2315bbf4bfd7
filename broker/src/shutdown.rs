//! Graceful stop. On SIGTERM (or Ctrl-C) the node drains: readiness turns 503 at once, it
//! deregisters from ZooKeeper, held long polls answer with what they have, and it keeps serving
//! what arrives for a moment so load balancers and clients move away; then the listener closes,
//! requests in flight finish, and the process exits — all within the drain timeout.

use std::sync::Arc;
use std::time::Duration;

use crate::service::Broker;

/// How long a draining node keeps accepting new requests after it deregistered.
pub const LINGER: Duration = Duration::from_secs(1);

/// Resolves on SIGTERM or SIGINT.
pub async fn signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = term => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// The drain steps before the listener closes.
pub async fn drain(broker: Arc<Broker>, drain_timeout: Duration) {
    tracing::info!("draining: not ready, deregistering, answering held long polls");
    broker.draining.cancel();
    broker.meta.deregister().await;
    tokio::time::sleep(LINGER.min(drain_timeout / 2)).await;
    tracing::info!("draining: closing the listener; finishing requests in flight");
}
