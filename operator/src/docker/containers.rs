//! Containers: created from a [`ServiceSpec`], started, stopped, observed, waited for, their
//! logs, and commands run in them.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::models::{
    ContainerCreateBody, EndpointIpamConfig, EndpointSettings, HealthConfig, HostConfig, NetworkingConfig,
    PortBinding, RestartPolicy, RestartPolicyNameEnum,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder,
    StopContainerOptionsBuilder, TopOptionsBuilder,
};
use bytes::Bytes;
use futures::{Stream, StreamExt};

use crate::desired::{labels, Role, ServiceSpec};
use crate::observed::ObservedContainer;

use super::{api, is_not_found, ContainerFile, ContainerState, DockerError, Engine};

impl Engine {
    async fn observe_container(&self, name: &str) -> Result<Option<ObservedContainer>, DockerError> {
        let inspect = match self.docker.inspect_container(name, None).await {
            Ok(i) => i,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(api(format!("inspect container {name}"))(e)),
        };
        let labels = inspect.config.as_ref().and_then(|c| c.labels.clone()).unwrap_or_default();
        let state = inspect.state.as_ref();
        Ok(Some(ObservedContainer {
            id: inspect.id.clone().unwrap_or_default(),
            name: name.to_string(),
            // This engine's; `Hosts` says which host that is.
            host: 1,
            service: labels.get(labels::SERVICE).cloned(),
            role: labels.get(labels::ROLE).and_then(|r| Role::parse(r)),
            spec_hash: labels.get(labels::SPEC_HASH).cloned(),
            image: inspect.config.as_ref().and_then(|c| c.image.clone()).unwrap_or_default(),
            image_id: inspect.image.clone().unwrap_or_default(),
            state: state.and_then(|s| s.status).map(|s| s.to_string()).unwrap_or_default(),
            health: state
                .and_then(|s| s.health.as_ref())
                .and_then(|h| h.status)
                .map(|h| h.to_string())
                .filter(|h| !h.is_empty() && h != "none"),
            generation: labels.get(labels::GENERATION).and_then(|g| g.parse().ok()).unwrap_or(0),
            previous_image: labels.get(labels::PREVIOUS_IMAGE).cloned(),
            file_image: labels.get(labels::FILE_IMAGE).cloned(),
            restarts: inspect.restart_count.unwrap_or(0),
        }))
    }

    /// The containers of a cluster with their role, state and health.
    pub async fn containers(&self, cluster: &str) -> Result<Vec<ObservedContainer>, DockerError> {
        let mut out = Vec::new();
        for name in self.container_names(cluster).await? {
            if let Some(c) = self.observe_container(&name).await? {
                out.push(c);
            }
        }
        Ok(out)
    }

    /// Creates the container of `spec` (not started). `secrets` are the values of its
    /// `secret_env`; `files` are copied in before it is started.
    pub async fn create_container(
        &self,
        spec: &ServiceSpec,
        network: &str,
        secrets: &BTreeMap<String, String>,
        files: &[ContainerFile],
    ) -> Result<(), DockerError> {
        let secs = |s: u32| i64::from(s) * 1_000_000_000;
        let env: Vec<String> =
            spec.env.iter().chain(secrets.iter()).map(|(k, v)| format!("{k}={v}")).collect();
        let port_bindings: HashMap<String, Option<Vec<PortBinding>>> = spec
            .ports
            .iter()
            .map(|p| {
                (
                    format!("{}/tcp", p.container_port),
                    Some(vec![PortBinding {
                        host_ip: Some(p.host_ip.to_string()),
                        host_port: Some(p.host_port.to_string()),
                    }]),
                )
            })
            .collect();
        let body = ContainerCreateBody {
            hostname: Some(spec.service.clone()),
            image: Some(spec.image.clone()),
            cmd: (!spec.command.is_empty()).then(|| spec.command.clone()),
            env: Some(env),
            labels: Some(spec.labels.clone().into_iter().collect()),
            exposed_ports: (!spec.ports.is_empty())
                .then(|| spec.ports.iter().map(|p| format!("{}/tcp", p.container_port)).collect()),
            healthcheck: Some(HealthConfig {
                test: Some(spec.health.test.clone()),
                interval: Some(secs(spec.health.interval_s)),
                timeout: Some(secs(spec.health.timeout_s)),
                retries: Some(i64::from(spec.health.retries)),
                start_period: Some(secs(spec.health.start_period_s)),
                start_interval: None,
            }),
            stop_timeout: Some(i64::from(spec.stop_grace_s)),
            host_config: Some(HostConfig {
                binds: Some(spec.mounts.iter().map(|m| format!("{}:{}", m.volume, m.target)).collect()),
                port_bindings: (!port_bindings.is_empty()).then_some(port_bindings),
                cap_add: (!spec.cap_add.is_empty()).then(|| spec.cap_add.clone()),
                restart_policy: Some(RestartPolicy {
                    name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
                    maximum_retry_count: None,
                }),
                ..Default::default()
            }),
            networking_config: Some(NetworkingConfig {
                endpoints_config: Some(HashMap::from([(
                    network.to_string(),
                    EndpointSettings {
                        ipam_config: Some(EndpointIpamConfig {
                            ipv4_address: Some(spec.ipv4.to_string()),
                            ..Default::default()
                        }),
                        aliases: Some(spec.aliases.clone()),
                        ..Default::default()
                    },
                )])),
            }),
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::default().name(&spec.container_name).build();
        self.docker
            .create_container(Some(options), body)
            .await
            .map_err(api(format!("create container {}", spec.container_name)))?;
        for file in files {
            self.write_file_mode(&spec.container_name, &file.path, &file.content, file.mode).await?;
        }
        Ok(())
    }

    pub async fn start_container(&self, name: &str) -> Result<(), DockerError> {
        self.docker.start_container(name, None).await.map_err(api(format!("start container {name}")))
    }

    /// Stops (SIGTERM, then SIGKILL after `grace_s`) and removes a container; absent is fine.
    pub async fn stop_and_remove(&self, name: &str, grace_s: u32) -> Result<(), DockerError> {
        let grace = i32::try_from(grace_s).unwrap_or(i32::MAX);
        match self
            .docker
            .stop_container(name, Some(StopContainerOptionsBuilder::default().t(grace).build()))
            .await
        {
            Ok(()) => {}
            Err(e) if is_not_found(&e) => return Ok(()),
            // 304: already stopped.
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 304, .. }) => {}
            Err(e) => return Err(api(format!("stop container {name}"))(e)),
        }
        self.remove_container(name).await
    }

    /// Removes a container at once (killing it if it runs); absent is fine.
    pub async fn remove_container(&self, name: &str) -> Result<(), DockerError> {
        let options = RemoveContainerOptionsBuilder::default().force(true).v(false).build();
        match self.docker.remove_container(name, Some(options)).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(api(format!("remove container {name}"))(e)),
        }
    }

    pub async fn state(&self, name: &str) -> Result<Option<ContainerState>, DockerError> {
        Ok(self.observe_container(name).await?.map(|c| ContainerState {
            state: c.state,
            health: c.health,
            restarts: c.restarts,
        }))
    }

    /// Waits until the container's health check passes. A container that stops, or is not
    /// healthy within `timeout`, is an error that carries its last log lines.
    pub async fn wait_healthy(&self, name: &str, timeout: Duration) -> Result<Duration, DockerError> {
        self.wait_until_healthy(name, timeout, false).await
    }

    /// [`Engine::wait_healthy`] for a container started beside a serving one (a rolling
    /// upgrade): one that Docker is restarting has crashed, which fails at once too.
    pub async fn wait_ready(&self, name: &str, timeout: Duration) -> Result<Duration, DockerError> {
        self.wait_until_healthy(name, timeout, true).await
    }

    async fn wait_until_healthy(
        &self,
        name: &str,
        timeout: Duration,
        restarting_fails: bool,
    ) -> Result<Duration, DockerError> {
        let started = Instant::now();
        loop {
            let state = self.state(name).await?;
            let problem = match &state {
                None => Some("is gone".to_string()),
                Some(s) if restarting_fails && (s.state == "restarting" || s.restarts > 0) => {
                    Some("exited and is being restarted".to_string())
                }
                Some(s) if matches!(s.state.as_str(), "exited" | "dead") => {
                    Some(format!("stopped ({})", s.state))
                }
                Some(s) if s.health.as_deref() == Some("healthy") => return Ok(started.elapsed()),
                // No health check: running is the best there is.
                Some(s) if s.health.is_none() && s.state == "running" => return Ok(started.elapsed()),
                Some(_) if started.elapsed() > timeout => {
                    Some(format!("is not healthy after {} s", timeout.as_secs()))
                }
                Some(_) => None,
            };
            if let Some(problem) = problem {
                let logs = self.tail_logs(name, 20).await.unwrap_or_else(|e| format!("(no logs: {e})"));
                return Err(DockerError::Unhealthy { container: name.to_string(), problem, logs });
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// The last `lines` lines a container wrote.
    pub async fn tail_logs(&self, name: &str, lines: u32) -> Result<String, DockerError> {
        let mut stream = Box::pin(self.logs(name, false, Some(lines)));
        let mut out = String::new();
        while let Some(chunk) = stream.next().await {
            out.push_str(&String::from_utf8_lossy(&chunk?));
        }
        Ok(out)
    }

    /// A container's output (stdout and stderr), optionally followed.
    pub fn logs(
        &self,
        name: &str,
        follow: bool,
        tail: Option<u32>,
    ) -> impl Stream<Item = Result<Bytes, DockerError>> + use<> {
        let tail = tail.map(|t| t.to_string()).unwrap_or_else(|| "all".to_string());
        let options =
            LogsOptionsBuilder::default().follow(follow).stdout(true).stderr(true).tail(&tail).build();
        let what = format!("logs of {name}");
        self.docker.logs(name, Some(options)).map(move |item| match item {
            Ok(
                LogOutput::StdOut { message }
                | LogOutput::StdErr { message }
                | LogOutput::Console { message },
            ) => Ok(message),
            Ok(LogOutput::StdIn { .. }) => Ok(Bytes::new()),
            Err(source) => Err(DockerError::Api { what: what.clone(), source }),
        })
    }

    /// Runs a command in a running container; Err when it exits non-zero.
    pub async fn exec(&self, container: &str, cmd: &[&str]) -> Result<String, DockerError> {
        let what = || format!("run `{}` in {container}", cmd.join(" "));
        let created = self
            .docker
            .create_exec(
                container,
                CreateExecOptions {
                    cmd: Some(cmd.to_vec()),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    ..Default::default()
                },
            )
            .await
            .map_err(api(what()))?;
        let mut output = String::new();
        if let StartExecResults::Attached { output: mut stream, .. } =
            self.docker.start_exec(&created.id, None).await.map_err(api(what()))?
        {
            while let Some(chunk) = stream.next().await {
                output.push_str(&chunk.map_err(api(what()))?.to_string());
            }
        }
        let inspect = self.docker.inspect_exec(&created.id).await.map_err(api(what()))?;
        match inspect.exit_code {
            Some(0) => Ok(output),
            code => Err(DockerError::Exec {
                container: container.to_string(),
                command: cmd.join(" "),
                code: code.unwrap_or(-1),
                output: output.trim().to_string(),
            }),
        }
    }

    /// The processes of a running container as (pid, command line with its title), as
    /// `docker top` shows them: NGINX's workers show there whether they still serve or are
    /// shutting down after a reload.
    pub async fn processes(&self, container: &str) -> Result<Vec<(String, String)>, DockerError> {
        let options = TopOptionsBuilder::default().ps_args("-o pid,args").build();
        let top = self
            .docker
            .top_processes(container, Some(options))
            .await
            .map_err(api(format!("list the processes of {container}")))?;
        Ok(top
            .processes
            .unwrap_or_default()
            .into_iter()
            .filter_map(|p| {
                let mut fields = p.into_iter();
                Some((fields.next()?, fields.next().unwrap_or_default()))
            })
            .collect())
    }

    /// Reloads NGINX's configuration and returns once the reload took effect: workers of the
    /// new configuration run and every worker of the old one is shutting down or gone, so no
    /// old worker takes a new connection. (`nginx -s reload` only signals the master; until
    /// then the old workers may still route a new request to a broker that the new file left
    /// out, so the caller stops such a broker only after this.)
    pub async fn reload_nginx(&self, container: &str, timeout: Duration) -> Result<(), DockerError> {
        const WORKER: &str = "nginx: worker process";
        let serving = |procs: &[(String, String)]| -> Vec<String> {
            procs.iter().filter(|(_, cmd)| cmd.trim() == WORKER).map(|(pid, _)| pid.clone()).collect()
        };
        let old = serving(&self.processes(container).await?);
        self.exec(container, &["nginx", "-s", "reload"]).await?;
        let started = Instant::now();
        loop {
            let now = serving(&self.processes(container).await?);
            let new_started = now.iter().any(|pid| !old.contains(pid));
            let old_serving = now.iter().any(|pid| old.contains(pid));
            if new_started && !old_serving {
                return Ok(());
            }
            if started.elapsed() > timeout {
                return Err(DockerError::Timeout {
                    container: container.to_string(),
                    problem: format!(
                        "NGINX's reload did not take effect within {} s (workers before: {old:?}, now: {now:?})",
                        timeout.as_secs()
                    ),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
