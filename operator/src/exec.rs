//! Execution: turns the entries of a [`Plan`] into Docker API calls, in an order that keeps the
//! cluster serving — network and volumes, then Redis and ZooKeeper, then brokers, then NGINX,
//! each tier healthy before the next; NGINX's upstreams change before a broker goes away.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::future::try_join_all;

use crate::desired::{Desired, Role, ServiceSpec, NGINX_CONF_TARGET};
use crate::docker::{DockerError, Engine, Owned};
use crate::plan::{Action, Change, Kind, Plan};

/// Where progress goes: the CLI prints a line per step with its duration.
pub trait Reporter: Sync {
    /// A step begins; `long` when it may take a while (waiting for health).
    fn started(&self, what: &str, long: bool);
    fn finished(&self, what: &str, took: Duration);
}

/// A reporter that says nothing (library callers, tests).
pub struct Silent;

impl Reporter for Silent {
    fn started(&self, _: &str, _: bool) {}
    fn finished(&self, _: &str, _: Duration) {}
}

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error(
        "the environment variable {var} is not set; it holds the first admin's password \
         (mom.yaml secrets.admin_password_env) and is needed to create brokers"
    )]
    MissingSecret { var: String },
    #[error("{change}: no such service in mom.yaml")]
    UnknownService { change: String },
    #[error(transparent)]
    Docker(#[from] DockerError),
}

/// Values of the secrets that executing `plan` needs, read from momctl's environment (never
/// from mom.yaml). Call it before anything is touched: a missing one stops `up` at once.
pub fn secrets_from_env(
    plan: &Plan,
    desired: &Desired,
) -> Result<BTreeMap<String, String>, ExecError> {
    let mut secrets = BTreeMap::new();
    for var in plan.needs_secrets(desired) {
        match std::env::var(var) {
            Ok(value) if !value.is_empty() => {
                secrets.insert(var.to_string(), value);
            }
            _ => {
                return Err(ExecError::MissingSecret {
                    var: var.to_string(),
                })
            }
        }
    }
    Ok(secrets)
}

async fn step<T, E, F>(report: &dyn Reporter, what: String, long: bool, action: F) -> Result<T, E>
where
    F: std::future::Future<Output = Result<T, E>>,
{
    report.started(&what, long);
    tracing::debug!(step = %what, "started");
    let started = Instant::now();
    let value = action.await?;
    tracing::debug!(step = %what, took_ms = started.elapsed().as_millis() as u64, "finished");
    report.finished(&what, started.elapsed());
    Ok(value)
}

/// Executes `plan` (from [`crate::plan::diff`] of the same `desired`).
pub async fn apply(
    engine: &Engine,
    desired: &Desired,
    plan: &Plan,
    nginx_conf: &str,
    secrets: &BTreeMap<String, String>,
    report: &dyn Reporter,
) -> Result<(), ExecError> {
    let of_kind = |kind: Kind| plan.changes.iter().filter(move |c| c.kind == kind);

    for change in of_kind(Kind::Network) {
        step(
            report,
            format!(
                "create network {} ({})",
                change.name, desired.network.subnet
            ),
            false,
            async { engine.create_network(&desired.network).await },
        )
        .await?;
    }
    for change in of_kind(Kind::Volume) {
        if let Some(volume) = desired.volumes.iter().find(|v| v.name == change.name) {
            step(
                report,
                format!("create volume {}", change.name),
                false,
                engine.create_volume(volume),
            )
            .await?;
        }
    }

    for tier in 0..=2u8 {
        let mut touched: Vec<&ServiceSpec> = Vec::new();
        for change in of_kind(Kind::Container).filter(|c| c.action != Action::Remove) {
            let spec = service_of(desired, change)?;
            if spec.role.tier() != tier {
                continue;
            }
            converge_container(engine, desired, spec, change, nginx_conf, secrets, report).await?;
            touched.push(spec);
        }
        if !touched.is_empty() {
            let names: Vec<&str> = touched.iter().map(|s| s.service.as_str()).collect();
            step(
                report,
                format!("wait until healthy: {}", names.join(", ")),
                true,
                async {
                    try_join_all(touched.iter().map(|s| {
                        let timeout = Duration::from_secs(u64::from(s.health.start_period_s) + 60);
                        engine.wait_healthy(&s.container_name, timeout)
                    }))
                    .await
                },
            )
            .await?;
        }
    }

    for change in of_kind(Kind::Config) {
        step(
            report,
            format!(
                "update {NGINX_CONF_TARGET} in {} and reload NGINX",
                change.name
            ),
            false,
            async {
                engine
                    .write_file(&change.name, NGINX_CONF_TARGET, nginx_conf)
                    .await?;
                engine.exec(&change.name, &["nginx", "-t", "-q"]).await?;
                engine.exec(&change.name, &["nginx", "-s", "reload"]).await
            },
        )
        .await?;
    }

    for change in of_kind(Kind::Container).filter(|c| c.action == Action::Remove) {
        // A broker drains on SIGTERM; give it the time it may take.
        step(
            report,
            format!("stop and remove container {}", change.name),
            true,
            async { engine.stop_and_remove(&change.name, 35).await },
        )
        .await?;
    }
    Ok(())
}

fn service_of<'a>(desired: &'a Desired, change: &Change) -> Result<&'a ServiceSpec, ExecError> {
    change
        .service
        .as_deref()
        .and_then(|s| desired.service(s))
        .ok_or_else(|| ExecError::UnknownService {
            change: change.to_string(),
        })
}

async fn converge_container(
    engine: &Engine,
    desired: &Desired,
    spec: &ServiceSpec,
    change: &Change,
    nginx_conf: &str,
    secrets: &BTreeMap<String, String>,
    report: &dyn Reporter,
) -> Result<(), ExecError> {
    let name = &spec.container_name;
    if change.action == Action::Start {
        step(
            report,
            format!("start container {name}"),
            false,
            engine.start_container(name),
        )
        .await?;
        return Ok(());
    }
    if change.action == Action::Replace {
        step(
            report,
            format!("stop and remove old container {name} ({})", change.reason),
            true,
            async { engine.stop_and_remove(name, spec.stop_grace_s).await },
        )
        .await?;
    }
    let mut env = BTreeMap::new();
    for secret in &spec.secret_env {
        let value = secrets
            .get(&secret.from_env)
            .ok_or_else(|| ExecError::MissingSecret {
                var: secret.from_env.clone(),
            })?;
        env.insert(secret.name.clone(), value.clone());
    }
    let files: Vec<(String, String)> = if spec.role == Role::Nginx {
        vec![(NGINX_CONF_TARGET.to_string(), nginx_conf.to_string())]
    } else {
        Vec::new()
    };
    step(
        report,
        format!("create and start container {name} ({})", spec.image),
        false,
        async {
            engine
                .create_container(spec, &desired.network.name, &env, &files)
                .await?;
            engine.start_container(name).await
        },
    )
    .await?;
    Ok(())
}

/// Removes everything labelled with the cluster: containers, then networks, then volumes.
pub async fn teardown(
    engine: &Engine,
    owned: &Owned,
    report: &dyn Reporter,
) -> Result<(), ExecError> {
    let kinds = [
        ("container", &owned.containers),
        ("network", &owned.networks),
        ("volume", &owned.volumes),
    ];
    for (kind, names) in kinds {
        for name in names {
            step(report, format!("remove {kind} {name}"), false, async {
                match kind {
                    "container" => engine.remove_container(name).await,
                    "network" => engine.remove_network(name).await,
                    _ => engine.remove_volume(name).await,
                }
            })
            .await?;
        }
    }
    Ok(())
}
