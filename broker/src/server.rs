//! Wires the pieces together and runs them until the node has drained. No logic lives here.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::meta::{Meta, NodeRecord};
use crate::metrics::Metrics;
use crate::model::{now_ms, rfc3339_ms};
use crate::service::auth::Bootstrap;
use crate::service::Broker;
use crate::store::Redis;
use crate::{grpc, http, listen, shutdown};

/// How often the leader runs the cluster's periodic upkeep.
const SWEEP_EVERY: Duration = Duration::from_secs(5);

pub async fn run(config: Config) -> anyhow::Result<()> {
    let listener =
        listen::bind(config.listen).with_context(|| format!("cannot listen on {}", config.listen))?;
    let grpc_listener = match config.grpc_listen {
        Some(addr) => Some(listen::bind(addr).with_context(|| format!("cannot listen for gRPC on {addr}"))?),
        None => None,
    };
    let address = config.advertise.clone().unwrap_or_else(|| config.listen.to_string());
    let node = NodeRecord {
        id: config.node_id(),
        address,
        version: env!("CARGO_PKG_VERSION").to_string(),
        started_at: rfc3339_ms(now_ms()),
        announcements: crate::meta::ANNOUNCEMENTS,
    };
    tracing::info!(node = %node.id, listen = %config.listen, "starting mom-broker");

    let metrics = Arc::new(Metrics::new());
    let meta = Arc::new(
        Meta::new(
            &config.zk_connect,
            &config.zk_root,
            Duration::from_millis(config.zk_session_timeout_ms),
            node,
        )
        .with_jwt_secret(config.jwt_secret.clone().map(String::into_bytes))
        .with_auth(config.zk_auth.clone())
        .with_resync_counter(metrics.metadata_resyncs.clone()),
    );
    // The URL may hold a password: redis' parse errors name the fault, never the URL.
    let redis = Redis::new(
        &config.redis_url,
        config.redis_password.as_deref(),
        config.redis_sentinel_password.as_deref(),
        &config.redis_prefix,
        config.redis_options(),
    )
    .context("invalid --redis-url")?;
    let broker = Broker::shared(meta.clone(), redis.clone(), metrics.clone(), config.broker_settings());
    // One bound on client connections for both listeners, under the open-files limit.
    let connections = listen::ConnectionLimit::new(listen::fit_fd_limit(config.max_connections), metrics);

    // Background work stops after the listener closed.
    let stop = CancellationToken::new();
    tokio::spawn(redis.clone().run(stop.clone()));
    tokio::spawn(redis.listen(broker.waiters.clone(), stop.clone()));
    tokio::spawn({
        let (meta, stop) = (meta.clone(), stop.clone());
        async move { meta.run(stop).await }
    });
    tokio::spawn(sweep(broker.clone(), stop.clone()));
    tokio::spawn(bootstrap(broker.clone(), config.admin_user.clone(), config.admin_password.clone()));

    // SIGTERM drains both servers within the one drain timeout (`shutdown.rs`).
    let drain = shutdown::Drain::on_signal(broker.clone(), config.drain_timeout());
    let grpc = grpc_listener.map(|listener| {
        tracing::info!(listen = ?config.grpc_listen, "serving gRPC");
        // The listener closes itself (taking its accept queue first); tonic then ends with the
        // incoming stream and finishes the calls in flight.
        let incoming = listen::grpc_incoming(listener, connections.clone(), drain.grpc_closes());
        tokio::spawn(grpc::serve(broker.clone(), incoming, config.max_request_bytes()))
    });
    let sqs =
        crate::sqs::SqsSettings { public_url: config.public_url.clone(), region: config.region.clone() };
    let app = http::router(broker, sqs, config.body_limit());
    let server = listen::serve_http(listener, connections, app, config.header_read_timeout(), drain.http());
    drain.run(server, grpc).await;
    stop.cancel();
    tracing::info!("stopped");
    Ok(())
}

/// The leader's periodic upkeep, fenced by its token; the other nodes idle.
async fn sweep(broker: Arc<Broker>, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(SWEEP_EVERY) => {}
            _ = stop.cancelled() => return,
        }
        let Some(token) = broker.meta.leadership() else { continue };
        if broker.fenced(token).await {
            broker.sweep(token).await;
        }
    }
}

/// Once metadata is loaded, makes sure an admin exists; exits the process when none can be made,
/// since a cluster nobody can log in to is useless. While ZooKeeper is unreachable it cannot
/// tell, so it waits (and the node stays unready).
async fn bootstrap(broker: Arc<Broker>, user: String, password: Option<String>) {
    while !broker.meta.is_loaded() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    loop {
        match broker.ensure_admin(&user, password.clone()).await {
            Ok(()) => {
                broker.set_bootstrapped();
                return;
            }
            Err(Bootstrap::Retry(e)) => {
                tracing::warn!(error = %e, "cannot check for an admin yet");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(Bootstrap::Fatal(msg)) => {
                tracing::error!("{msg}");
                eprintln!("mom-broker: {msg}");
                std::process::exit(2);
            }
        }
    }
}
