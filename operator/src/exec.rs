//! Execution: turns the entries of a [`Plan`] into Docker API calls, in an order that keeps the
//! cluster serving — network and volumes, then Redis and ZooKeeper, then brokers, then NGINX,
//! each tier healthy before the next; NGINX's upstreams change before a broker goes away.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::future::try_join_all;

use crate::desired::{
    Desired, Role, SecretEnv, ServiceSpec, NGINX_CERT_TARGET, NGINX_CONF_TARGET, NGINX_KEY_TARGET,
};
use crate::docker::{ContainerFile, DockerError, Owned};
use crate::hosts::Hosts;
use crate::plan::{Action, Change, Kind, Plan, UpgradePlan, UpgradeStep};
use crate::report::{step, Reporter};
use crate::tls::Material;

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

/// What executing a plan needs besides the plan: the files of NGINX's container and the values
/// of the secrets its new containers take. Made before anything is touched.
pub struct Inputs {
    pub nginx_files: Vec<ContainerFile>,
    pub secrets: BTreeMap<String, String>,
}

/// The files NGINX's container needs: nginx.conf and, with TLS, the certificate and its key
/// (the key readable by its owner only).
pub fn nginx_files(nginx_conf: &str, tls: Option<&Material>) -> Vec<ContainerFile> {
    let file = |path: &str, content: &str, mode| ContainerFile {
        path: path.to_string(),
        content: content.to_string(),
        mode,
    };
    let mut files = vec![file(NGINX_CONF_TARGET, nginx_conf, 0o644)];
    if let Some(m) = tls {
        files.push(file(NGINX_CERT_TARGET, &m.cert_pem, 0o644));
        files.push(file(NGINX_KEY_TARGET, &m.key_pem, 0o600));
    }
    files
}

/// Values of the secrets that executing `plan` needs, read from momctl's environment (never
/// from mom.yaml) or, for the ones momctl generates, from `generated` (the cluster's directory,
/// [`crate::local::LocalState`]). Call it before anything is touched: a missing one stops `up`
/// at once.
pub fn secrets_for(
    plan: &Plan,
    desired: &Desired,
    generated: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, ExecError> {
    read_secrets(generated, plan.needs_secrets(desired))
}

/// The values of `wanted`: environment variables (a missing or empty one is an error) and
/// generated secrets.
fn read_secrets<'a>(
    generated: &BTreeMap<String, String>,
    wanted: impl Iterator<Item = &'a SecretEnv>,
) -> Result<BTreeMap<String, String>, ExecError> {
    let mut secrets = BTreeMap::new();
    for secret in wanted {
        let var = secret.from_env.as_str();
        if secret.generated {
            if let Some(value) = generated.get(var) {
                secrets.insert(var.to_string(), value.clone());
            }
            continue;
        }
        match std::env::var(var) {
            Ok(value) if !value.is_empty() => {
                secrets.insert(var.to_string(), value);
            }
            _ => return Err(ExecError::MissingSecret { var: var.to_string() }),
        }
    }
    Ok(secrets)
}

/// A container's secret environment (its variable → value) from the values read.
fn secret_env(
    spec: &ServiceSpec,
    secrets: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, ExecError> {
    let mut env = BTreeMap::new();
    for secret in &spec.secret_env {
        let value = secrets
            .get(&secret.from_env)
            .ok_or_else(|| ExecError::MissingSecret { var: secret.from_env.clone() })?;
        env.insert(secret.name.clone(), value.clone());
    }
    Ok(env)
}

/// " on host K" when the cluster spans several hosts.
fn on(hosts: &Hosts, host: u32) -> String {
    if hosts.count() > 1 {
        format!(" on host {host}")
    } else {
        String::new()
    }
}

/// Executes `plan` (from [`crate::plan::diff`] of the same `desired`).
pub async fn apply(
    hosts: &Hosts,
    desired: &Desired,
    plan: &Plan,
    inputs: &Inputs,
    report: &dyn Reporter,
) -> Result<(), ExecError> {
    let of_kind = |kind: Kind| plan.changes.iter().filter(move |c| c.kind == kind);

    if of_kind(Kind::Swarm).next().is_some() {
        step(
            report,
            format!("Swarm of the {} hosts' engines (host 1 manages it, the others join)", hosts.count()),
            false,
            hosts.join_swarm(desired.network.subnet),
        )
        .await?;
    }
    for change in of_kind(Kind::Network) {
        step(
            report,
            format!(
                "create network {} ({}{})",
                change.name,
                desired.network.subnet,
                if desired.network.overlay { ", overlay across the hosts" } else { "" }
            ),
            false,
            async { hosts.engine(1).create_network(&desired.network).await },
        )
        .await?;
    }
    for change in of_kind(Kind::Volume) {
        if let Some(volume) = desired.volumes.iter().find(|v| v.name == change.name) {
            step(
                report,
                format!("create volume {}{}", change.name, on(hosts, volume.host)),
                false,
                hosts.engine(volume.host).create_volume(volume),
            )
            .await?;
        }
    }

    for (host, _) in hosts.all() {
        let images: Vec<&str> = of_kind(Kind::Container)
            .filter(|c| matches!(c.action, Action::Create | Action::Replace))
            .filter_map(|c| c.service.as_deref().and_then(|s| desired.service(s)))
            .filter(|s| s.host == host)
            .map(|s| s.image.as_str())
            .collect();
        if !images.is_empty() {
            ensure_images(hosts, host, &images, report).await?;
        }
    }

    for tier in 0..=2u8 {
        let mut touched: Vec<&ServiceSpec> = Vec::new();
        for change in of_kind(Kind::Container).filter(|c| c.action != Action::Remove) {
            let spec = service_of(desired, change)?;
            if spec.role.tier() != tier {
                continue;
            }
            converge_container(hosts, desired, spec, change, inputs, report).await?;
            touched.push(spec);
        }
        if !touched.is_empty() {
            let names: Vec<&str> = touched.iter().map(|s| s.service.as_str()).collect();
            step(report, format!("wait until healthy: {}", names.join(", ")), true, async {
                try_join_all(touched.iter().map(|s| {
                    let timeout = Duration::from_secs(u64::from(s.health.start_period_s) + 60);
                    hosts.of(s).wait_healthy(&s.container_name, timeout)
                }))
                .await
            })
            .await?;
        }
    }

    for change in of_kind(Kind::Config) {
        let files = &inputs.nginx_files;
        let engine = hosts.of(service_of(desired, change)?);
        step(
            report,
            format!("update {NGINX_CONF_TARGET} in {} and reload NGINX", change.name),
            false,
            async {
                for file in files {
                    engine.write_file_mode(&change.name, &file.path, &file.content, file.mode).await?;
                }
                engine.exec(&change.name, &["nginx", "-t", "-q"]).await?;
                engine.reload_nginx(&change.name, NGINX_RELOAD_TIMEOUT).await
            },
        )
        .await?;
    }

    for change in of_kind(Kind::Container).filter(|c| c.action == Action::Remove) {
        let host = change.host.unwrap_or(1);
        // A broker drains on SIGTERM; give it the time it may take.
        step(report, format!("stop and remove container {}{}", change.name, on(hosts, host)), true, async {
            hosts.engine(host).stop_and_remove(&change.name, 35).await
        })
        .await?;
    }
    Ok(())
}

/// Copies the images the containers about to be made on `host` need there, when it lacks them
/// (remote hosts).
async fn ensure_images(
    hosts: &Hosts,
    host: u32,
    images: &[&str],
    report: &dyn Reporter,
) -> Result<(), DockerError> {
    let missing = hosts.missing_images(host, images).await?;
    if missing.is_empty() {
        return Ok(());
    }
    let what =
        format!("copy {} to host {host} (docker save | docker load, no registry needed)", missing.join(", "));
    step(report, what, true, hosts.copy_images(host, &missing)).await
}

fn service_of<'a>(desired: &'a Desired, change: &Change) -> Result<&'a ServiceSpec, ExecError> {
    change
        .service
        .as_deref()
        .and_then(|s| desired.service(s))
        .ok_or_else(|| ExecError::UnknownService { change: change.to_string() })
}

async fn converge_container(
    hosts: &Hosts,
    desired: &Desired,
    spec: &ServiceSpec,
    change: &Change,
    inputs: &Inputs,
    report: &dyn Reporter,
) -> Result<(), ExecError> {
    let name = &spec.container_name;
    let engine = hosts.of(spec);
    if change.action == Action::Start {
        step(report, format!("start container {name}"), false, engine.start_container(name)).await?;
        return Ok(());
    }
    if change.action == Action::Replace {
        step(
            report,
            format!("stop and remove old container {name} ({})", change.reason),
            true,
            // Wherever it runs: a container that moves host is removed from the old one.
            try_join_all(hosts.all().map(|(_, e)| e.stop_and_remove(name, spec.stop_grace_s))),
        )
        .await?;
    }
    let env = secret_env(spec, &inputs.secrets)?;
    let files: &[ContainerFile] = if spec.role == Role::Nginx { &inputs.nginx_files } else { &[] };
    step(
        report,
        format!("create and start container {name} ({}){}", spec.image, on(hosts, spec.host)),
        false,
        async {
            engine.create_container(spec, &desired.network.name, &env, files).await?;
            engine.start_container(name).await
        },
    )
    .await?;
    Ok(())
}

/// Removes everything labelled with the cluster: containers (of every host), then networks, then
/// volumes.
pub async fn teardown(hosts: &Hosts, owned: &[(u32, Owned)], report: &dyn Reporter) -> Result<(), ExecError> {
    for kind in ["container", "network", "volume"] {
        for (host, owned) in owned {
            let names = match kind {
                "container" => &owned.containers,
                "network" => &owned.networks,
                _ => &owned.volumes,
            };
            let engine = hosts.engine(*host);
            for name in names {
                step(report, format!("remove {kind} {name}{}", on(hosts, *host)), false, async {
                    match kind {
                        "container" => engine.remove_container(name).await,
                        "network" => engine.remove_network(name).await,
                        _ => engine.remove_volume(name).await,
                    }
                })
                .await?;
            }
        }
    }
    Ok(())
}

/// How long NGINX's master may take to start the workers of a new configuration and tell the old
/// ones to finish what they hold (it takes milliseconds; a reload that never takes effect, e.g. a
/// master that cannot read the file, fails the step instead of stopping a broker still in use).
const NGINX_RELOAD_TIMEOUT: Duration = Duration::from_secs(10);

/// One broker's part of a rolling upgrade.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BrokerUpgrade {
    pub service: String,
    pub from_image: String,
    pub to_image: String,
    pub old_container: String,
    pub new_container: String,
    /// `upgraded` or `failed`.
    pub outcome: String,
    /// From start until the new container's `/readyz` answered 200.
    pub ready_s: f64,
    /// The old container's drain (SIGTERM until it exited and was removed).
    pub drain_s: f64,
    pub total_s: f64,
}

/// What `momctl upgrade`/`rollback` did (`--output json`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct UpgradeSummary {
    pub cluster: String,
    pub image: String,
    pub ok: bool,
    pub brokers: Vec<BrokerUpgrade>,
    /// Brokers that already ran the image.
    pub unchanged: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The last log lines of the new container that never got ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_logs: Option<String>,
    pub took_s: f64,
}

/// How long after a new generation got ready the old one keeps serving alone: NGINX tries a
/// failed upstream slot again after its `fail_timeout` (3 s, `nginx.conf.tera`), so by then it
/// sends requests to the new one.
const TAKE_OVER: Duration = Duration::from_secs(4);

/// Runs a rolling upgrade, one broker at a time: start the new container beside the old one (in
/// the broker's other upstream slot: NGINX's configuration lists both generations' addresses
/// and does not change), wait for its `/readyz` (at most `ready_timeout`; it does not listen
/// before, so NGINX cannot send it a request earlier), give NGINX [`TAKE_OVER`] to find it,
/// then SIGTERM the old one (it drains: its listener closes, NGINX passes refused connections
/// on) and remove it once it exited. NGINX is not reloaded, so no client connection is closed;
/// only a cluster whose NGINX still runs another configuration (made by an older momctl) gets
/// it first, with one reload. A new container that never gets ready is removed and the upgrade
/// stops there, the old ones still serving. Never returns early without a summary: the caller
/// reports it and picks the exit code.
pub async fn upgrade(
    hosts: &Hosts,
    desired: &Desired,
    plan: &UpgradePlan,
    nginx_confs: &[String],
    secrets: &BTreeMap<String, String>,
    ready_timeout: Duration,
    report: &dyn Reporter,
) -> UpgradeSummary {
    let started = Instant::now();
    let mut summary = UpgradeSummary {
        cluster: plan.cluster.clone(),
        image: plan.image.clone(),
        ok: true,
        brokers: Vec::new(),
        unchanged: plan.unchanged.clone(),
        error: None,
        failed_logs: None,
        took_s: 0.0,
    };
    let nginx = desired.services.iter().find(|s| s.role == Role::Nginx);
    // Every step's configuration is the same (both slots of every broker); only one NGINX that
    // does not run it yet needs it, before the first new container.
    if let (Some(nginx), Some(conf)) = (nginx, nginx_confs.first()) {
        if let Err(e) = ensure_nginx_slots(hosts, nginx, conf, report).await {
            summary.ok = false;
            summary.error = Some(format!("updating NGINX's configuration failed: {e}"));
            summary.took_s = started.elapsed().as_secs_f64();
            return summary;
        }
    }
    for step in &plan.steps {
        let (record, failure) = upgrade_one(hosts, desired, step, secrets, ready_timeout, report).await;
        summary.brokers.push(record);
        if let Some((error, logs)) = failure {
            summary.ok = false;
            summary.error = Some(error);
            summary.failed_logs = logs;
            break;
        }
    }
    summary.took_s = started.elapsed().as_secs_f64();
    summary
}

/// One broker; the record, and on failure the error and the new container's last log lines.
#[allow(clippy::too_many_arguments)]
async fn upgrade_one(
    hosts: &Hosts,
    desired: &Desired,
    one: &UpgradeStep,
    secrets: &BTreeMap<String, String>,
    ready_timeout: Duration,
    report: &dyn Reporter,
) -> (BrokerUpgrade, Option<(String, Option<String>)>) {
    let started = Instant::now();
    let new = &one.new;
    let mut record = BrokerUpgrade {
        service: one.service.clone(),
        from_image: one.old_image.clone(),
        to_image: one.new_image.clone(),
        old_container: one.old_container.clone(),
        new_container: one.new_container.clone(),
        outcome: "failed".to_string(),
        ready_s: 0.0,
        drain_s: 0.0,
        total_s: 0.0,
    };
    let env = match secret_env(new, secrets) {
        Ok(env) => env,
        Err(e) => return (record, Some((e.to_string(), None))),
    };
    let name = &new.container_name;
    // Both generations run on the broker's host.
    let engine = hosts.of(new);
    if let Err(e) = ensure_images(hosts, new.host, &[new.image.as_str()], report).await {
        return (record, Some((e.to_string(), None)));
    }
    let started_new =
        step(report, format!("{}: create and start {name} ({})", one.service, new.image), false, async {
            // A container of that name left by an interrupted upgrade is not serving.
            engine.remove_container(name).await?;
            engine.create_container(new, &desired.network.name, &env, &[]).await?;
            engine.start_container(name).await
        })
        .await;
    let ready = match started_new {
        Ok(()) => {
            step(
                report,
                format!("{}: wait until {name} is ready (/readyz)", one.service),
                true,
                engine.wait_ready(name, ready_timeout),
            )
            .await
        }
        Err(e) => Err(e),
    };
    record.ready_s = started.elapsed().as_secs_f64();
    if let Err(e) = ready {
        let logs = match &e {
            DockerError::Unhealthy { logs, .. } => Some(logs.clone()),
            _ => None,
        };
        let removed = step(
            report,
            format!("{}: remove {name}; {} keeps serving", one.service, one.old_container),
            false,
            engine.remove_container(name),
        )
        .await;
        let mut error = format!("{}: {name} did not get ready: {}", one.service, short(&e));
        if let Err(r) = removed {
            error.push_str(&format!(" (and removing it failed: {r})"));
        }
        record.total_s = started.elapsed().as_secs_f64();
        return (record, Some((error, logs)));
    }
    // NGINX finds the new one by itself (its slot stops refusing); the old one serves until
    // then.
    step(
        report,
        format!("{}: NGINX takes {name} in ({} s)", one.service, TAKE_OVER.as_secs()),
        false,
        async {
            tokio::time::sleep(TAKE_OVER).await;
            Ok::<(), DockerError>(())
        },
    )
    .await
    .ok();
    let drain_started = Instant::now();
    let stopped = step(
        report,
        format!("{}: stop {} (SIGTERM: it drains) and remove it", one.service, one.old_container),
        true,
        engine.stop_and_remove(&one.old_container, new.stop_grace_s),
    )
    .await;
    record.drain_s = drain_started.elapsed().as_secs_f64();
    record.total_s = started.elapsed().as_secs_f64();
    if let Err(e) = stopped {
        return (record, Some((format!("{}: removing the old container: {e}", one.service), None)));
    }
    record.outcome = "upgraded".to_string();
    report.finished(
        &format!(
            "{} upgraded: {} -> {} (ready in {:.1} s, drained in {:.1} s)",
            one.service, one.old_image, one.new_image, record.ready_s, record.drain_s
        ),
        started.elapsed(),
    );
    (record, None)
}

/// Makes NGINX run `nginx_conf` (both upstream slots of every broker) when it runs another
/// configuration: checks and reloads it, once, before an upgrade of a cluster made by an older
/// momctl. Nothing when it already does (the usual case: no reload).
async fn ensure_nginx_slots(
    hosts: &Hosts,
    nginx: &ServiceSpec,
    nginx_conf: &str,
    report: &dyn Reporter,
) -> Result<(), DockerError> {
    let (container, engine) = (nginx.container_name.as_str(), hosts.of(nginx));
    if engine.read_file(container, NGINX_CONF_TARGET).await?.as_deref() == Some(nginx_conf) {
        return Ok(());
    }
    let what =
        "NGINX: both upstream slots of every broker (a configuration of an older momctl); reload NGINX";
    step(report, what.to_string(), false, async {
        engine.write_file(container, NGINX_CONF_TARGET, nginx_conf).await?;
        engine.exec(container, &["nginx", "-t", "-q"]).await?;
        engine.reload_nginx(container, NGINX_RELOAD_TIMEOUT).await
    })
    .await
}

/// A Docker error without the log lines it may carry (they are reported on their own).
fn short(e: &DockerError) -> String {
    match e {
        DockerError::Unhealthy { container, problem, .. } => format!("{container} {problem}"),
        other => other.to_string(),
    }
}

/// The secrets a rolling upgrade's new containers need, from momctl's environment and
/// `generated`.
pub fn upgrade_secrets(
    plan: &UpgradePlan,
    generated: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, ExecError> {
    read_secrets(generated, plan.steps.iter().flat_map(|s| s.new.secret_env.iter()))
}
